//! The literature's unlearning baselines end to end (docs/study.md §5.1, §7.10): two seeds of a
//! small network, each baseline from the base model, every method evaluated against the retrained
//! model, and the report's comparison with intervals over the seeds.

use std::path::Path;

use assert_cmd::Command;

const MANIFEST: &str = r#"
[study]
name = "baselines"
seed = 5
protocol = "corrected"

[data]
source = "synthetic"
train-per-class = 16
test-per-class = 8
validation-per-class = 0

[matrix]
seed = [0, 1]
method = ["fine-tune", "l1-sparse", "scrub", "salun"]

[recipe.small]
lr = 3e-3
epochs = 1
batch-size = 32

[train.base]
for-each = ["seed"]
arch = "resnet18"
width = 0.0625
seed = "${seed}"
recipe = "small"

[train.retrained]
for-each = ["seed"]
arch = "resnet18"
width = 0.0625
seed = "${seed}"
recipe = "small"
exclude = [8]

[expert.baseline]
for-each = ["method", "seed"]
from = "base[seed=${seed}]"
seed = "${seed}"
objective = "${method}"
forget = 8
optimizer = "sgd"
lr = 0.01
epochs = 2
batch-size = 32

[evaluate.baseline-eval]
for-each = ["method", "seed"]
model = "baseline[method=${method},seed=${seed}]"
forget = 8
retrained = "retrained[seed=${seed}]"
metrics = ["accuracy", "forget-acc", "retain-acc", "mia"]

[evaluate.retrained-eval]
for-each = ["seed"]
model = "retrained[seed=${seed}]"
forget = 8
metrics = ["accuracy", "forget-acc", "retain-acc", "mia"]

[report.methods]
inputs = ["retrained", "baseline", "baseline-eval", "retrained-eval"]
"#;

fn tarun(store: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tarun").expect("binary");
    cmd.env("TARUN_STORE", store).env_remove("TARUN_LOG");
    cmd
}

#[test]
fn every_baseline_runs_and_the_report_compares_them_over_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("baselines.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let store = dir.path().join("store");
    let out = tarun(&store)
        .args(["run", manifest.to_str().unwrap(), "--no-progress"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "tarun run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(store.join("reports/baselines/methods/report.md")).unwrap();
    let start = md
        .find("## Unlearning methods against the retrained model")
        .expect("the comparison section");
    let section = &md[start..];
    for name in [
        "fine-tuning",
        "l1-sparse",
        "SCRUB",
        "SalUn",
        "retrained (reference)",
    ] {
        let row = section
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{section}"));
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        // Two seeds, so every figure is a mean with an interval; a cost from the record.
        assert_eq!(cells[1], "2", "{row}");
        assert!(cells[2].contains(" ± "), "{row}");
        assert!(cells[6] != "—", "{row}");
    }
    assert!(
        store
            .join("reports/baselines/methods/methods-resnet18.svg")
            .exists()
    );
}
