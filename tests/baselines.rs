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
metrics = ["accuracy", "forget-acc", "retain-acc", "mia", "mia-efficacy"]

[evaluate.retrained-eval]
for-each = ["seed"]
model = "retrained[seed=${seed}]"
forget = 8
metrics = ["accuracy", "forget-acc", "retain-acc", "mia", "mia-efficacy"]

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
    // The MIA column is the papers' MIA-efficacy, since every evaluation computes it.
    assert!(section.contains("| MIA-efficacy (%) |"), "{section}");
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
        assert!(cells[5].contains(" ± "), "{row}");
        assert!(cells[6] != "—", "{row}");
    }
    assert!(
        store
            .join("reports/baselines/methods/methods-resnet18.svg")
            .exists()
    );
    mia_efficacy_of_the_retrained_model_is_the_same_everywhere(&store, &manifest);
}

/// Under the corrected protocol each baseline's evaluation also reports the retrained model's
/// MIA-efficacy; with the study seed fixing the shadow subset it must equal what the retrained
/// model's own evaluation reports for that seed.
fn mia_efficacy_of_the_retrained_model_is_the_same_everywhere(store: &Path, manifest: &Path) {
    let out = tarun(store)
        .args(["results", manifest.to_str().unwrap(), "--format", "json"])
        .output()
        .expect("results");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let metric = |row: &serde_json::Value, k: &str| row["metrics"][k].as_f64();
    let mut checked = 0;
    for seed in ["0", "1"] {
        let own = rows
            .iter()
            .find(|r| r["node"] == format!("retrained-eval[seed={seed}]"))
            .and_then(|r| metric(r, "mia-efficacy"))
            .expect("the retrained model's MIA-efficacy");
        assert!((0.0..=100.0).contains(&own));
        for r in rows.iter().filter(|r| {
            r["family"] == "baseline-eval"
                && r["node"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("seed={seed}]"))
        }) {
            let e = metric(r, "mia-efficacy").expect("the baseline's MIA-efficacy");
            assert!((0.0..=100.0).contains(&e), "{r}");
            assert_eq!(metric(r, "mia-efficacy-retrained"), Some(own), "{r}");
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}
