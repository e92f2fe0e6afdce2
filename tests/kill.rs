//! Kill at any moment: `tarun run` is SIGKILLed at several points of the tiny study; after each
//! kill the store verifies clean, the next run reuses every node that had committed, and the
//! final outputs are byte-identical to an uninterrupted run's.
//!
//! `TARUN_KILL_POINTS=N` tries N kill points instead of the default 4.

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::Instant;

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

mod support;

const TARGET: &str = "unlearned-eval[arch=resnet18]";
const RUN: [&str; 5] = [
    "run",
    "tests/fixtures/tiny.toml",
    "--no-progress",
    "--target",
    TARGET,
];

fn tarun(store: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tarun").expect("binary");
    cmd.env("TARUN_STORE", store).env_remove("TARUN_LOG");
    cmd
}

/// `tarun run` of the target in the background, its stderr piped.
fn spawn_run(store: &Path) -> std::process::Child {
    spawn_run_with(store, "")
}

/// The same with `TARUN_INJECT=inject`. `sleep<S>:TARGET` holds the run (and the node's lease) for
/// S more seconds before its last node, stopping early when cancelled: the tiny study trains in
/// well under a second now, so a test that must catch a run in progress cannot rely on timing.
fn spawn_run_with(store: &Path, inject: &str) -> std::process::Child {
    StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(RUN)
        .env("TARUN_STORE", store)
        .env("TARUN_INJECT", inject)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run_to_end(store: &Path) -> Value {
    let out = tarun(store).args(RUN).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = tarun(store).args(["log", "--json"]).output().unwrap();
    let log: Value = serde_json::from_slice(&log.stdout).unwrap();
    log["runs"].as_array().unwrap().last().unwrap().clone()
}

#[test]
fn a_killed_run_loses_nothing_and_resumes_to_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let reference_store = dir.path().join("reference");
    let started = Instant::now();
    run_to_end(&reference_store);
    let full = started.elapsed();
    let reference = support::fresh_outputs(&reference_store, support::TINY);
    assert_eq!(reference.len(), 14, "{reference:?}");

    let points: u32 = std::env::var("TARUN_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut committed_before_kill = vec![];
    for k in 0..points {
        // Spread the kills over the run: from loading to the last evaluations.
        let at = full.mul_f64(f64::from(k + 1) / f64::from(points + 1));
        let store = dir.path().join(format!("killed-{k}"));
        let mut child = spawn_run(&store);
        std::thread::sleep(at);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        if store.join("objects").exists() {
            tarun(&store).arg("verify").assert().success();
        }
        let survived = support::fresh_outputs(&store, support::TINY);
        for (id, outputs) in &survived {
            assert_eq!(
                Some(outputs),
                reference.get(id),
                "kill {k} at {at:?}: `{id}` committed other outputs"
            );
        }
        let resumed = run_to_end(&store);
        let entries = resumed["entries"].as_array().unwrap();
        let cached = entries.iter().filter(|e| e["outcome"] == "cached").count();
        assert_eq!(
            cached,
            survived.len(),
            "kill {k} at {at:?}: every committed node is reused"
        );
        assert_eq!(
            support::fresh_outputs(&store, support::TINY),
            reference,
            "kill {k} at {at:?}"
        );
        committed_before_kill.push(survived.len());
    }
    eprintln!(
        "{points} kill points over a {full:?} run; nodes committed at each kill: \
         {committed_before_kill:?}"
    );
}

/// Ctrl-C: the run stops at the next batch boundary, exits 130, and commits nothing partial;
/// the next run finishes the study with the same results as an uninterrupted one.
#[test]
fn ctrl_c_stops_cleanly_and_the_next_run_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let reference_store = dir.path().join("reference");
    run_to_end(&reference_store);
    let reference = support::fresh_outputs(&reference_store, support::TINY);

    let store = dir.path().join("interrupted");
    // The signal lands in the training of the first networks, or, on a machine fast enough to
    // have trained them all, in the injected wait before the last node: a run in progress either
    // way (the handler is installed right after the lock).
    let child = spawn_run_with(&store, &format!("sleep60:{TARGET}"));
    wait_for(&store.join("store.lock"));
    std::thread::sleep(std::time::Duration::from_millis(800));
    let sent = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        stopped.elapsed().as_secs() < 10,
        "stopped within a batch or so"
    );
    tarun(&store).arg("verify").assert().success();
    let tmp_left = std::fs::read_dir(store.join("tmp")).map_or(0, |d| d.count());
    assert_eq!(tmp_left, 0, "no partial outputs left behind");
    for (id, outputs) in support::fresh_outputs(&store, support::TINY) {
        assert_eq!(Some(&outputs), reference.get(&id), "`{id}`");
    }
    run_to_end(&store);
    assert_eq!(support::fresh_outputs(&store, support::TINY), reference);
}

/// Two runs of one study on one store at once: they do not wait for each other as a whole, but
/// each node is computed under its key's lease, so whichever finds a node's lease held waits for
/// that node, says for whom (`TARUN_LOG=debug`), and takes its record; nothing runs twice.
#[test]
fn a_second_concurrent_run_waits_and_computes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // Whichever computes the last node holds its lease at least 3 s, so the other, a node or
    // so behind, certainly finds it held.
    let spawn = || {
        let mut cmd = StdCommand::cargo_bin("tarun").unwrap();
        cmd.args(RUN)
            .env("TARUN_STORE", &store)
            .env("TARUN_INJECT", format!("sleep3:{TARGET}"))
            .env("TARUN_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let first = spawn();
    wait_for(&store.join("store.lock"));
    let second = spawn();
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
    assert!(!said.contains("waiting for the store lock"), "{said}");
    let waited = format!("waiting for `{TARGET}` (key ");
    assert!(said.contains(&waited), "{said}");
    let log = tarun(&store).args(["log", "--json"]).output().unwrap();
    let log: Value = serde_json::from_slice(&log.stdout).unwrap();
    let ran: usize = log["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["entries"].as_array().unwrap())
        .filter(|e| e["outcome"] == "ran")
        .count();
    assert_eq!(ran, 14, "each node computed once across both runs");
    tarun(&store).arg("verify").assert().success();
}

/// Waits (up to a minute) for `path` to appear.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed().as_secs() < 60,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
