//! The binary end to end on `tests/fixtures/tiny.toml`: every node kind and every metric, in
//! both protocols, and that an edit reruns exactly what it invalidates.

use std::collections::BTreeSet;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/tiny.toml");

fn tarun(store: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tarun").expect("binary");
    cmd.env("TARUN_STORE", store).env_remove("TARUN_LOG");
    cmd
}

/// Writes the fixture (after `edit`) into `dir` and returns the manifest's path.
fn manifest(dir: &Path, edit: impl Fn(&str) -> String) -> String {
    let path = dir.join("tiny.toml");
    std::fs::write(&path, edit(FIXTURE)).expect("write manifest");
    path.to_str().expect("utf-8").to_owned()
}

fn run(store: &Path, manifest: &str, extra: &[&str]) {
    let out = tarun(store)
        .args(["run", manifest, "--no-progress"])
        .args(extra)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "tarun run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(store: &Path, args: &[&str]) -> Value {
    let out = tarun(store).args(args).output().expect("tarun");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// `(id, state)` of every node.
fn states(store: &Path, manifest: &str) -> Vec<(String, String)> {
    let status = json(store, &["status", manifest, "--json"]);
    status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            for key in ["id", "kind", "state", "causes"] {
                assert!(n.get(key).is_some(), "status node without `{key}`: {n}");
            }
            (
                n["id"].as_str().unwrap().to_owned(),
                n["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The ids the last run computed (outcome `ran`) and the number it found cached.
fn last_run(store: &Path) -> (BTreeSet<String>, usize) {
    let log = json(store, &["log", "--json"]);
    let last = log["runs"]
        .as_array()
        .unwrap()
        .last()
        .expect("a run")
        .clone();
    let entries = last["entries"].as_array().unwrap();
    let ran = entries
        .iter()
        .filter(|e| e["outcome"] == "ran")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let cached = entries.iter().filter(|e| e["outcome"] == "cached").count();
    (ran, cached)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_tiny_study_runs_every_kind_and_metric_then_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let m = manifest(dir.path(), str::to_owned);
    run(&store, &m, &[]);

    let nodes = states(&store, &m);
    assert_eq!(nodes.len(), 43);
    assert!(nodes.iter().all(|(_, s)| s == "fresh"), "{nodes:?}");
    let (ran, cached) = last_run(&store);
    assert_eq!((ran.len(), cached), (43, 0));

    // The report names every metric of the seed protocol, with a value.
    let report = store.join("reports/tiny/summary");
    let md = std::fs::read_to_string(report.join("report.md")).expect("report.md");
    for metric in [
        "forget-acc",
        "retain-acc",
        "kl-forget",
        "kl-retain",
        "zrf",
        "mia-auc",
        "over-forgetting-gap",
        "ain",
        "ain-steps-unlearned",
    ] {
        assert!(
            md.contains(&format!("| {metric} |")),
            "no `{metric}` column"
        );
    }
    assert!(md.contains("protocol **seed**"));
    let html = std::fs::read_to_string(report.join("report.html")).expect("report.html");
    assert!(html.contains("<svg"), "figures are inline");
    assert!(!html.contains("src=\"http"), "self-contained");
    for figure in [
        "confusion-",
        "tsne-",
        "relearn-",
        "grid-forget-acc-",
        "timeline-",
    ] {
        let found = std::fs::read_dir(&report)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(figure));
        assert!(found, "no {figure}*.svg");
    }

    // Outputs of fresh nodes can be taken out of the store under their names.
    let out = dir.path().join("export");
    tarun(&store)
        .args(["export", &m, "unlearned[arch=resnet18,class=8]", "--to"])
        .arg(&out)
        .assert()
        .success();
    let exported = out.join("unlearned[arch=resnet18,class=8]");
    assert!(exported.join("model.safetensors").is_file());
    assert!(exported.join("ablation.json").is_file());

    // A second run computes nothing.
    run(&store, &m, &[]);
    assert_eq!(last_run(&store), (BTreeSet::new(), 43));

    // The store is intact and nothing is garbage.
    tarun(&store).arg("verify").assert().success();
    let gc = tarun(&store)
        .args(["gc", &m, "--dry-run"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains("would remove 0 records, 0 objects"),
        "{}",
        String::from_utf8_lossy(&gc.stdout)
    );

    // `precision` is in no key: exact f32 for every training node (through the recipes) and
    // TF32 named on an evaluation leave the whole study fresh.
    let m = manifest(dir.path(), |s| {
        let edited = s
            .replace("[recipe.base]\n", "[recipe.base]\nprecision = \"fp32\"\n")
            .replace(
                "[recipe.expert]\n",
                "[recipe.expert]\nprecision = \"fp32\"\n",
            )
            .replace(
                "[evaluate.manual-eval]\n",
                "[evaluate.manual-eval]\nprecision = \"tf32\"\n",
            );
        assert_eq!(edited.matches("precision = ").count(), 3);
        edited
    });
    let nodes = states(&store, &m);
    assert!(nodes.iter().all(|(_, s)| s == "fresh"), "{nodes:?}");
    run(&store, &m, &[]);
    assert_eq!(last_run(&store), (BTreeSet::new(), 43));
}

#[test]
fn edits_rerun_exactly_what_they_invalidate_in_the_corrected_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let corrected = |s: &str| s.replace("protocol = \"seed\"", "protocol = \"corrected\"");
    let m = manifest(dir.path(), corrected);
    run(&store, &m, &[]);
    let md = std::fs::read_to_string(store.join("reports/tiny/summary/report.md")).unwrap();
    assert!(md.contains("protocol **corrected**"));
    // The corrected variants: ZRF's spread over two teachers, the retrained model's MIA, the
    // change of the over-forgetting gap against the base model.
    for metric in ["zrf-std", "mia-auc-retrained", "over-forgetting-gap-change"] {
        assert!(md.contains(metric), "no `{metric}` in the corrected report");
    }

    // Edit one alpha in the file: status names the change, and only its descendants are due.
    let m = manifest(dir.path(), |s| {
        corrected(s).replace("alpha = -1.5", "alpha = -2.5")
    });
    let due: BTreeSet<String> = states(&store, &m)
        .into_iter()
        .filter(|(_, s)| s != "fresh")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(due, set(&["manual", "manual-eval", "summary"]));
    let status = tarun(&store).args(["status", &m]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("-1.5 -> -2.5"), "{text}");

    run(&store, &m, &[]);
    let (ran, cached) = last_run(&store);
    // The report reruns unless the evaluation's output came out byte-identical (early cutoff).
    assert!(ran.is_superset(&set(&["manual", "manual-eval"])), "{ran:?}");
    assert!(
        ran.is_subset(&set(&["manual", "manual-eval", "summary"])),
        "{ran:?}"
    );
    assert_eq!(ran.len() + cached, 43);

    // A training learning rate through --set: the baseline and what reads it.
    run(&store, &m, &["--set", "expert.gradient-ascent.lr=2e-4"]);
    let (ran, _) = last_run(&store);
    assert!(
        ran.is_superset(&set(&["gradient-ascent", "baseline-eval"])),
        "{ran:?}"
    );
    assert!(
        ran.is_subset(&set(&["gradient-ascent", "baseline-eval", "summary"])),
        "{ran:?}"
    );
}

#[test]
fn manifest_mistakes_exit_2_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let m = manifest(dir.path(), |s| {
        s.replace("epochs = 1\nbatch-size = 32", "epochs = 1\nbatch-sise = 32")
            .replace("model = \"manual\"", "model = \"manul\"")
    });
    let out = tarun(&store).args(["run", &m]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batch-sise"), "{err}");
    assert!(err.contains("manul"), "{err}");
    assert!(err.contains("tiny.toml:"), "no file:line in {err}");
    assert!(
        !store.exists(),
        "a rejected manifest must not touch the store"
    );
}

#[test]
fn dry_run_and_dag_describe_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let m = manifest(dir.path(), str::to_owned);
    let out = tarun(&store)
        .args(["run", &m, "--dry-run", "--target", "manual-eval"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // manual-eval and its ancestors: the base, the expert for class 8, the ablation.
    assert!(text.contains("4 of 4 selected nodes would run"), "{text}");
    assert!(!store.join("records").exists());
    let dot = tarun(&store)
        .args(["dag", &m, "--format", "dot"])
        .output()
        .unwrap();
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("\"manual\" -> \"manual-eval\""), "{dot}");
}
