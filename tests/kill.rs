//! Kill at any moment: `tarun run` is SIGKILLed at several points of the tiny study; after each
//! kill the store verifies clean, the next run reuses every node that had committed, and the
//! final outputs are byte-identical to an uninterrupted run's.
//!
//! `TARUN_KILL_POINTS=N` tries N kill points instead of the default 4.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::Instant;

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

const TARGET: &str = "unlearned-eval[arch=resnet18]";

fn tarun(store: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tarun").expect("binary");
    cmd.env("TARUN_STORE", store).env_remove("TARUN_LOG");
    cmd
}

fn run_to_end(store: &Path) -> Value {
    let out = tarun(store)
        .args([
            "run",
            "tests/fixtures/tiny.toml",
            "--no-progress",
            "--target",
            TARGET,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = tarun(store).args(["log", "--json"]).output().unwrap();
    let log: Value = serde_json::from_slice(&log.stdout).unwrap();
    log["runs"].as_array().unwrap().last().unwrap().clone()
}

/// Fresh nodes and their output digests.
fn fresh_outputs(store: &Path) -> BTreeMap<String, Value> {
    let out = tarun(store)
        .args(["status", "tests/fixtures/tiny.toml", "--json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "fresh")
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n["outputs"].clone()))
        .collect()
}

#[test]
fn a_killed_run_loses_nothing_and_resumes_to_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let reference_store = dir.path().join("reference");
    let started = Instant::now();
    run_to_end(&reference_store);
    let full = started.elapsed();
    let reference = fresh_outputs(&reference_store);
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
        let mut child = StdCommand::cargo_bin("tarun")
            .unwrap()
            .args([
                "run",
                "tests/fixtures/tiny.toml",
                "--no-progress",
                "--target",
                TARGET,
            ])
            .env("TARUN_STORE", &store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        if store.join("objects").exists() {
            tarun(&store).arg("verify").assert().success();
        }
        let survived = fresh_outputs(&store);
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
        assert_eq!(fresh_outputs(&store), reference, "kill {k} at {at:?}");
        committed_before_kill.push(survived.len());
    }
    eprintln!(
        "{points} kill points over a {full:?} run; nodes committed at each kill: \
         {committed_before_kill:?}"
    );
}
