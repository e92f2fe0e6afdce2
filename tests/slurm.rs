//! The Slurm executor against a real single-node Slurm (slurmctld, slurmd and munge on loopback,
//! started by `.ci/slurm/start.sh`; `SLURM_CONF` names it). Without one these tests say so and
//! pass, unless `TARUN_REQUIRE_SLURM` is set, as `.ci/run` sets it: there they fail.
//!
//! The tests share the one cluster (two CPUs on CI) and run concurrently, so every wait is
//! bounded generously and none asserts a duration.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

mod support;

use support::{TINY, fresh_outputs, journals, tarun};

/// Whether a cluster is reachable; panics when one is required and is not.
fn slurm_ready() -> bool {
    let ok = std::env::var_os("SLURM_CONF").is_some()
        && StdCommand::new("sinfo")
            .args(["-h", "-o", "%t"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !ok {
        assert!(
            std::env::var_os("TARUN_REQUIRE_SLURM").is_none(),
            "TARUN_REQUIRE_SLURM is set but no Slurm answers (SLURM_CONF={:?})",
            std::env::var_os("SLURM_CONF")
        );
        eprintln!("no Slurm here (start one with .ci/slurm/start.sh): skipping");
    }
    ok
}

fn slurm_args(targets: &[&str], extra: &[&str]) -> Vec<String> {
    let mut args = support::run_args(TINY, targets);
    args.extend(["--executor", "slurm", "--poll-interval", "0.2"].map(String::from));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn run_slurm(store: &Path, targets: &[&str], extra: &[&str], inject: Option<&str>) -> Output {
    let mut cmd = tarun(store);
    cmd.args(slurm_args(targets, extra));
    if let Some(spec) = inject {
        cmd.env("TARUN_INJECT", spec);
    }
    cmd.output().unwrap()
}

fn spawn_slurm(store: &Path, targets: &[&str], inject: &str) -> Child {
    StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(slurm_args(targets, &[]))
        .env("TARUN_STORE", store)
        .env("TARUN_INJECT", inject)
        .env_remove("TARUN_FAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every job journal of the store: node id -> job ids, oldest first.
fn job_journals(store: &Path) -> Vec<(String, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir(store.join("slurm/jobs")) else {
        return vec![];
    };
    let mut out: Vec<(String, Vec<String>)> = entries
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let j: Value = serde_json::from_str(&text).unwrap();
            let jobs = j["jobs"].as_array().unwrap();
            let ids = jobs.iter().map(|s| s["job"].as_str().unwrap().to_owned());
            (j["node"].as_str().unwrap().to_owned(), ids.collect())
        })
        .collect();
    out.sort();
    out
}

fn jobs_of(store: &Path, node: &str) -> Vec<String> {
    job_journals(store)
        .into_iter()
        .find(|(n, _)| n == node)
        .map(|(_, jobs)| jobs)
        .unwrap_or_default()
}

fn job_state(job: &str) -> String {
    let out = StdCommand::new("squeue")
        .args(["-h", "-t", "all", "-o", "%T", "-j", job])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits until `node` has a job and the job runs; returns its id.
fn wait_running(store: &Path, node: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Some(job) = jobs_of(store, node).last()
            && job_state(job) == "RUNNING"
        {
            return job.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("`{node}` never ran: {:?}", job_journals(store));
}

/// A driver of the 5-node study whose `both` job runs for two minutes, once that job runs.
fn start_long_job(store: &Path) -> (Child, String) {
    let driver = spawn_slurm(store, &[support::SMALL], "sleep120:both");
    let job = wait_running(store, "both");
    (driver, job)
}

fn wait_exit(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn store_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn the_tiny_study_through_slurm_gives_the_local_executors_artifacts() {
    if !slurm_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (store_in(&dir, "local"), store_in(&dir, "slurm"));
    support::run_ok(&local, TINY, &[]);
    let out = run_slurm(&remote, &[], &[], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut a, mut b) = (fresh_outputs(&local, TINY), fresh_outputs(&remote, TINY));
    assert_eq!(a.len(), 43);
    // The report states how long each node took (the compute saved by unlearning) and draws
    // when each ran (the timeline), which no two runs share; its other figures are compared,
    // its text and timelines are not.
    for outputs in [&mut a, &mut b] {
        let report = outputs.get_mut("summary").unwrap().as_object_mut().unwrap();
        assert!(report.remove("report.md").is_some() && report.remove("report.html").is_some());
        let timelines = report.len();
        report.retain(|name, _| !name.starts_with("timeline-"));
        assert!(report.len() < timelines, "the report draws a timeline");
    }
    for (id, outputs) in &a {
        assert_eq!(
            Some(outputs),
            b.get(id),
            "`{id}` differs between the executors"
        );
    }
    // Every node that trains or evaluates went through Slurm, exactly once; the rest ran here.
    let journal = journals(&remote).pop().unwrap();
    for e in journal["entries"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        let device = e["device"].as_str().unwrap();
        let local_kind = id.starts_with("best[") || id == "summary";
        assert_eq!(
            !device.contains("slurm job"),
            local_kind,
            "{id} ran on {device}"
        );
    }
    let journals = job_journals(&remote);
    assert_eq!(journals.len(), 43 - 3);
    assert!(journals.iter().all(|(_, jobs)| jobs.len() == 1));
    support::assert_intact(&remote, "after the Slurm run");
    // And the local executor finds all of it cached.
    let again = support::run(&remote, TINY, &[]);
    assert!(
        stderr(&again).contains("0 ran, 43 cached"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_failing_job_is_retried_then_reported() {
    if !slurm_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "store");
    let out = run_slurm(
        &store,
        &[support::SMALL],
        &["--set", "ablate.both.retries=1"],
        Some("fail:both"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("failed: both: injected failure (TARUN_INJECT=fail:both) (slurm job"),
        "{err}"
    );
    assert!(err.contains("attempt 1 failed"), "{err}");
    assert_eq!(jobs_of(&store, "both").len(), 2, "one job and one retry");
    let journal = journals(&store).pop().unwrap();
    let entry = |id: &str| {
        journal["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("both")["outcome"], "failed");
    assert_eq!(entry("both")["attempts"], 2);
    assert_eq!(entry("both-eval")["outcome"], "skipped");
    assert_eq!(entry("base[arch=resnet18]")["outcome"], "ran");
}

#[test]
fn a_restarted_driver_adopts_the_jobs_of_a_killed_one() {
    if !slurm_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "store");
    let mut driver = spawn_slurm(&store, &[support::SMALL], "sleep8:both");
    let job = wait_running(&store, "both");
    driver.kill().unwrap();
    driver.wait().unwrap();
    assert_eq!(job_state(&job), "RUNNING", "the job outlives its driver");
    // gc would delete what the orphaned job is about to commit: it refuses.
    let gc = tarun(&store).args(["gc", TINY]).output().unwrap();
    assert_eq!(gc.status.code(), Some(2), "{}", stderr(&gc));
    assert!(
        stderr(&gc).contains(&format!("job {job} of `both`")),
        "{}",
        stderr(&gc)
    );
    let out = run_slurm(&store, &[support::SMALL], &[], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("adopting slurm job {job}")),
        "{}",
        stderr(&out)
    );
    // No node was submitted twice, and none ran twice (one log per job).
    let journals = job_journals(&store);
    assert_eq!(journals.len(), 5, "{journals:?}");
    for (node, jobs) in &journals {
        assert_eq!(jobs.len(), 1, "`{node}` was submitted {jobs:?}");
    }
    let logs = std::fs::read_dir(store.join("slurm/logs")).unwrap().count();
    assert_eq!(logs, 5);
    let last = journals_last(&store);
    assert_eq!(outcome(&last, "both"), "ran");
    assert_eq!(outcome(&last, "base[arch=resnet18]"), "cached");
    support::assert_intact(&store, "after adoption");
    // Once no job runs, gc goes ahead; it keeps the Slurm files of the nodes the manifest it is
    // given still has (the shared study has `base` and the class-8 expert) and removes the rest.
    let gc = tarun(&store)
        .args(["gc", support::SHARED])
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", stderr(&gc));
    let kept: Vec<String> = job_journals(&store).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        kept,
        ["base[arch=resnet18]", "expert[arch=resnet18,class=8]"],
        "{}",
        String::from_utf8_lossy(&gc.stdout)
    );
    let logs = std::fs::read_dir(store.join("slurm/logs")).unwrap().count();
    assert_eq!(logs, 2);
    support::assert_intact(&store, "after gc");
}

#[test]
fn a_job_cancelled_by_hand_fails_its_node() {
    if !slurm_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "store");
    let (driver, job) = start_long_job(&store);
    let cancel = StdCommand::new("scancel").arg(&job).status().unwrap();
    assert!(cancel.success());
    let out = wait_exit(driver);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("failed: both: slurm job {job} ended CANCELLED")),
        "{err}"
    );
    let last = journals_last(&store);
    assert_eq!(outcome(&last, "both-eval"), "skipped");
    assert!(store.join("records").read_dir().unwrap().count() == 3);
}

#[test]
fn ctrl_c_cancels_the_drivers_jobs() {
    a_signal_cancels_the_drivers_jobs("INT", 130);
}

/// SIGTERM (the driver's own time limit, systemd, a CI runner) does what Ctrl-C does.
#[test]
fn sigterm_cancels_the_drivers_jobs() {
    a_signal_cancels_the_drivers_jobs("TERM", 143);
}

fn a_signal_cancels_the_drivers_jobs(signal: &str, code: i32) {
    if !slurm_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "store");
    let (driver, job) = start_long_job(&store);
    let sent = StdCommand::new("kill")
        .args([&format!("-{signal}"), &driver.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = wait_exit(driver);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(
        err.contains(&format!("interrupted by SIG{signal}")) && err.contains("Slurm jobs"),
        "{err}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while job_state(&job) != "CANCELLED" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(job_state(&job), "CANCELLED");
    let last = journals_last(&store);
    assert_eq!(outcome(&last, "both"), "cancelled");
    assert_eq!(last["interrupted"], format!("SIG{signal}"), "{last}");
}

fn journals_last(store: &Path) -> Value {
    journals(store).pop().unwrap()
}

fn outcome(journal: &Value, id: &str) -> String {
    journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no entry for {id}: {journal}"))
}
