//! `status` and `status --explain` after an edit tried and reverted: causes and key material
//! come from the current key's record, or from the nearest earlier one, never from whichever
//! record happened to be written last.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{SMALL, TINY, run_ok_with, tarun};

const EXPERT: &str = "expert[arch=resnet18,class=8]";
/// The nodes `--target both-eval` runs.
const NODES: [&str; 5] = [
    "base[arch=resnet18]",
    "expert[arch=resnet18,class=3]",
    EXPERT,
    "both",
    "both-eval",
];

fn stdout(store: &Path, args: &[&str]) -> String {
    let out = tarun(store).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The status JSON of the nodes that `--target both-eval` runs.
fn small_nodes(store: &Path, manifest: &str) -> Vec<Value> {
    let status: Value =
        serde_json::from_str(&stdout(store, &["status", manifest, "--json"])).unwrap();
    let nodes: Vec<Value> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| NODES.contains(&n["id"].as_str().unwrap()))
        .cloned()
        .collect();
    assert_eq!(nodes.len(), NODES.len());
    nodes
}

fn first_run_id(store: &Path) -> String {
    let log: Value = serde_json::from_str(&stdout(store, &["log", "--json"])).unwrap();
    let run = &log["runs"][0];
    run["run-id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id in {run}"))
        .to_owned()
}

#[test]
fn a_reverted_set_leaves_no_causes_and_explain_shows_the_current_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    run_ok_with(&store, TINY, &[SMALL], &[]);
    let first = first_run_id(&store);
    // Try a learning rate, then go back to the manifest's: the tried record is the last written.
    run_ok_with(&store, TINY, &[SMALL], &["--set", "recipe.expert.lr=5e-4"]);

    for n in small_nodes(&store, TINY) {
        assert_eq!(n["state"], "fresh", "{n}");
        assert_eq!(n["causes"], serde_json::json!([]), "{n}");
    }
    let text = stdout(&store, &["status", TINY, "--explain", EXPERT]);
    assert!(text.contains(": fresh"), "{text}");
    assert!(!text.contains("because"), "{text}");
    assert!(text.contains("record of the current key"), "{text}");
    assert!(text.contains(&format!("in run {first}")), "{text}");
    assert!(text.contains("0.0003"), "{text}");
    assert!(!text.contains("0.0005"), "{text}");

    // A real edit: the causes name exactly it, against the first run's record.
    let manifest = dir.path().join("tiny.toml");
    let edited = std::fs::read_to_string(TINY)
        .unwrap()
        .replace("epochs = 1\nbatch-size = 16", "epochs = 1\nbatch-size = 8");
    std::fs::write(&manifest, edited).unwrap();
    let manifest = manifest.to_str().unwrap();
    let nodes = small_nodes(&store, manifest);
    let expert = nodes.iter().find(|n| n["id"] == EXPERT).unwrap();
    assert_eq!(expert["state"], "stale", "{expert}");
    let causes: Vec<&str> = expert["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(causes[0].contains("batch-size 16 -> 8"), "{causes:?}");
    assert_eq!(expert["compared-with"]["run"], first.as_str(), "{expert}");

    let text = stdout(&store, &["status", manifest]);
    let line = text.lines().find(|l| l.contains(EXPERT)).unwrap();
    assert!(line.contains("batch-size 16 -> 8"), "{line}");
    assert!(!line.contains("lr"), "{line}");
    assert!(
        line.contains(&format!("compared with the record of run {first}")),
        "{line}"
    );
    let text = stdout(&store, &["status", manifest, "--explain", EXPERT]);
    assert!(text.contains("because params"), "{text}");
    assert!(
        text.contains("compared with the record: ") && text.contains(&first),
        "{text}"
    );
    assert!(
        text.contains("0.0003") && !text.contains("0.0005"),
        "{text}"
    );
}
