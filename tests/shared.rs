//! Two different studies that share nodes, run at once on one store: both finish, no node is
//! computed twice, no record is lost, and each study's outputs equal those of a run alone.

mod support;

use std::collections::BTreeSet;
use std::process::{Command as StdCommand, Stdio};
use std::time::Instant;

use assert_cmd::cargo::CommandCargoExt;
use support::{SHARED, TINY, assert_intact, fresh_outputs, journals, run_args, run_ok};

/// `tiny.toml`'s `manual-eval` and `both-eval` (7 nodes) and all of `tiny-shared.toml` (7
/// nodes): `base`, `expert[arch=resnet18,class=8]`, `manual` and `manual-eval` are in both.
const TINY_TARGETS: [&str; 2] = ["manual-eval", "both-eval"];

fn spawn(store: &std::path::Path, manifest: &str, targets: &[&str]) -> std::process::Child {
    StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(run_args(manifest, targets))
        .env("TARUN_STORE", store)
        .env_remove("TARUN_FAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_studies_sharing_nodes_run_at_once_without_computing_anything_twice() {
    let dir = tempfile::tempdir().unwrap();
    // Each study alone, on its own store: the results to match.
    let alone = dir.path().join("alone");
    run_ok(&alone.join("tiny"), TINY, &TINY_TARGETS);
    run_ok(&alone.join("shared"), SHARED, &[]);
    let tiny = fresh_outputs(&alone.join("tiny"), TINY);
    let shared = fresh_outputs(&alone.join("shared"), SHARED);
    assert_eq!((tiny.len(), shared.len()), (7, 7));
    let in_both: BTreeSet<&String> = tiny.keys().filter(|id| shared.contains_key(*id)).collect();
    assert_eq!(in_both.len(), 4, "{in_both:?}");
    for id in &in_both {
        assert_eq!(
            tiny[*id], shared[*id],
            "`{id}`: the same node in both studies"
        );
    }

    let store = dir.path().join("store");
    let first = spawn(&store, TINY, &TINY_TARGETS);
    let start = Instant::now();
    while !store.join("store.lock").exists() {
        assert!(
            start.elapsed().as_secs() < 60,
            "the first run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = spawn(&store, SHARED, &[]);
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(a.status.success() && b.status.success(), "{said}");
    assert!(said.contains("waiting for the store lock"), "{said}");

    // Each of the 10 distinct nodes ran exactly once over both runs.
    let mut ran: Vec<String> = journals(&store)
        .iter()
        .flat_map(|j| j["entries"].as_array().unwrap().clone())
        .filter(|e| e["outcome"] == "ran")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    ran.sort();
    let distinct: BTreeSet<&String> = tiny.keys().chain(shared.keys()).collect();
    assert_eq!(ran.len(), 10, "{ran:?}");
    assert_eq!(ran.iter().collect::<BTreeSet<_>>(), distinct);
    // No record lost: one per distinct node, and both studies see all of theirs, unchanged.
    let records = std::fs::read_dir(store.join("records")).unwrap().count();
    assert_eq!(records, 10);
    assert_eq!(fresh_outputs(&store, TINY), tiny);
    assert_eq!(fresh_outputs(&store, SHARED), shared);
    assert_intact(&store, "two studies");
}
