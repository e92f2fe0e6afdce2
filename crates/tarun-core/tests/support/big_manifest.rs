//! A generated ~2,000-node manifest, shared by `tests/manifest_scale.rs` and `benches/scale.rs`.

use std::fmt::Write;

/// Families over a grid (1,800 nodes) plus 200 single nodes referencing each other by name.
pub fn generated() -> String {
    let mut m = String::from(
        r#"[study]
name = "big"

[matrix]
arch = ["resnet18", "vgg11_bn", "mobilenet_v2"]
class = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
alpha = [-0.5, -1.0, -1.5, -2.0, -2.5, -3.0]
rho = { linspace = [0.5, 0.99, 50] }

[recipe.base]
lr = 1e-3
epochs = 3

[train.base]
for-each = ["arch"]
arch = "${arch}"
recipe = "base"

[expert.expert]
for-each = ["arch", "class"]
from = "base[arch=${arch}]"
only = ["${class}"]
lr = 1e-4

[ablate.candidate]
for-each = ["arch", "alpha", "rho"]
base = "base[arch=${arch}]"
vectors = [{ expert = "expert[arch=${arch},class=8]", alpha = "${alpha}", rho = "${rho}" }]

[evaluate.score]
for-each = ["arch", "alpha", "rho"]
model = "candidate[arch=${arch},alpha=${alpha},rho=${rho}]"
forget = 8
metrics = ["forget-acc", "retain-acc"]

[select.best]
for-each = ["arch"]
over = "score[arch=${arch}]"
score = "retain-acc - forget-acc"

[ablate.unlearned]
for-each = ["arch", "class"]
base = "base[arch=${arch}]"
vectors = [{ expert = "expert[arch=${arch},class=${class}]", from-select = "best[arch=${arch}]" }]

[report.all]
inputs = ["best", "unlearned"]
"#,
    );
    for i in 0..100 {
        writeln!(
            m,
            "\n[train.t{i}]\narch = \"resnet18\"\nlr = 0.1\nseed = {i}"
        )
        .unwrap();
        writeln!(
            m,
            "\n[evaluate.e{i}]\nmodel = \"t{i}\"\nbase = \"base[arch=resnet18]\""
        )
        .unwrap();
    }
    m
}
