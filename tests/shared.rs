//! Two different studies that share nodes, run at once on one store: both finish, no node is
//! computed twice (each is computed under its key's lease), their other nodes run at the same
//! time, no record is lost, and each study's outputs equal those of a run alone.

mod support;

use std::collections::BTreeSet;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use support::{SHARED, TINY, assert_intact, fresh_outputs, journals, run_args, run_ok};

/// `tiny.toml`'s `manual-eval` and `both-eval` (7 nodes) and all of `tiny-shared.toml` (7
/// nodes): `base`, `expert[arch=resnet18,class=8]`, `manual` and `manual-eval` are in both.
const TINY_TARGETS: [&str; 2] = ["manual-eval", "both-eval"];

/// Injected waits: `base` (the first node of both) long enough that the other run finds its
/// lease held, and one node of each study's own long enough that the two overlap by design.
const SLEEPS: &str = "sleep3:base[arch=resnet18];sleep4:both-eval;sleep4:sharper-eval";

fn spawn(store: &std::path::Path, manifest: &str, targets: &[&str]) -> std::process::Child {
    StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(run_args(manifest, targets))
        .env("TARUN_STORE", store)
        .env("TARUN_INJECT", SLEEPS)
        .env("TARUN_LOG", "debug")
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
    // Neither waited for the other as a whole; one waited for the other's lease of `base`.
    assert!(!said.contains("waiting for the store lock"), "{said}");
    assert!(
        said.contains("waiting for `base[arch=resnet18]` (key "),
        "{said}"
    );

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

    // The nodes of each study's own ran at the same time as the other study's.
    let own = |study: &str| -> Vec<(jiff::Timestamp, jiff::Timestamp)> {
        let journal = journals(&store)
            .into_iter()
            .find(|j| j["study"] == study)
            .unwrap();
        journal["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                let id = e["id"].as_str().unwrap();
                e["outcome"] == "ran" && !in_both.iter().any(|b| b.as_str() == id)
            })
            .map(|e| {
                let at = |f: &str| e[f].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
                (at("started"), at("ended"))
            })
            .collect()
    };
    let (tiny_own, shared_own) = (own("tiny"), own("tiny-shared"));
    assert_eq!((tiny_own.len(), shared_own.len()), (3, 3));
    let overlap: f64 = tiny_own
        .iter()
        .flat_map(|a| shared_own.iter().map(move |b| (a, b)))
        .map(|((s1, e1), (s2, e2))| {
            let span = (*e1).min(*e2).duration_since((*s1).max(*s2));
            span.as_secs_f64().max(0.0)
        })
        .sum();
    eprintln!("the two runs' own nodes overlapped for {overlap:.2} s");
    assert!(overlap > 1.0, "{overlap:.2} s: {tiny_own:?} {shared_own:?}");
}
