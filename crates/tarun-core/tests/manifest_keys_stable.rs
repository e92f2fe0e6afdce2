//! Resolved parameters, pinned: they are what every node's cache key hashes, so a change to the
//! schema, its defaults or the way validation writes them must not change them by accident. A
//! deliberate change updates the digests here and notes a format version (docs/manifest.md).
//!
//! The manifests are this crate's fixture and one written here with every default, not the
//! repository's studies, which change as the studies do.

use camino::Utf8Path;
use tarun_core::manifest::{self, Study};

/// One line per node, `id <TAB> params as JSON`, hashed.
fn params_digest(study: &Study) -> String {
    let mut text = String::new();
    for node in &study.nodes {
        text.push_str(&node.id);
        text.push('\t');
        text.push_str(&serde_json::to_string(&node.params).expect("JSON"));
        text.push('\n');
    }
    blake3::hash(text.as_bytes()).to_hex()[..16].to_owned()
}

/// Every kind with every default filled, sgd's momentum, `from-select` and a report.
const EVERY_DEFAULT: &str = r#"
[study]
name = "defaults"
seed = 7

[train.base]
arch = "resnet18"
lr = 0.1

[train.sgd]
arch = "mobilenet_v2"
lr = 1
optimizer = "sgd"
only = [1, 2]

[expert.e]
from = "base"
lr = 1e-3
objective = "gradient-ascent"
exclude = [3]

[ablate.a]
base = "base"
vectors = [{ expert = "e", alpha = -1, rho = 0.5 }]

[evaluate.ev]
model = "a"
forget = 3
metrics = ["accuracy", "forget-acc", "kl", "zrf", "mia", "ain", "over-forgetting"]
retrained = "sgd"
base = "base"

[select.s]
over = "ev"
score = "retain-acc - forget-acc"
require = ["retain-acc > 10"]

[ablate.chosen]
base = "base"
vectors = [{ expert = "e", from-select = "s" }]
quantile = "seed-sample"

[report.r]
inputs = ["ev", "s"]
"#;

#[test]
fn resolved_params_are_unchanged() {
    let path = "tests/fixtures/study.toml";
    let study =
        manifest::load(Utf8Path::new(path), &[]).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    assert_eq!(params_digest(&study), "b0da3ff282fa238c");
    let study = manifest::parse_str("defaults.toml", EVERY_DEFAULT, &[]).expect("valid");
    assert_eq!(params_digest(&study), "6d29b81bf56e77d0");
}
