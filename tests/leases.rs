//! The locks of a store shared by several processes: a node's lease held by a killed run is free
//! at once for the next, a Slurm job (`exec-node`) waits for a local run's lease and computes
//! nothing twice, `gc` waits for the runs using the store, and a run waits for `gc`.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use support::{TINY, journals, run_args};

/// Five nodes of the tiny study: `base`, `expert` for classes 3 and 8, `both`, `both-eval`.
const TARGET: &str = "both-eval";
const BASE: &str = "base[arch=resnet18]";

fn spawn(store: &Path, inject: &str) -> Child {
    StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(run_args(TINY, &[TARGET]))
        .env("TARUN_STORE", store)
        .env("TARUN_INJECT", inject)
        .env("TARUN_LOG", "debug")
        .env_remove("TARUN_FAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The lease files of the store and their text, once one names `pid` (up to a minute).
fn lease_of(store: &Path, pid: u32) -> (std::path::PathBuf, String) {
    let start = Instant::now();
    loop {
        for entry in std::fs::read_dir(store.join("locks")).into_iter().flatten() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains(&format!(" pid {pid} on host ")) {
                return (path, text);
            }
        }
        assert!(start.elapsed().as_secs() < 60, "no lease of pid {pid}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many times `id` ran over all the store's runs.
fn times_ran(store: &Path, id: &str) -> usize {
    journals(store)
        .iter()
        .flat_map(|j| j["entries"].as_array().unwrap().clone())
        .filter(|e| e["outcome"] == "ran" && e["id"] == id)
        .count()
}

/// A run killed (SIGKILL) while it computes `base` leaves `base`'s lease file behind, naming it;
/// the OS released the lock with the process, so the next run computes `base` at once, without
/// waiting, and `base` is computed once in all (the killed run committed nothing).
#[test]
fn a_lease_of_a_killed_run_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut first = spawn(&store, &format!("sleep120:{BASE}"));
    let (path, holder) = lease_of(&store, first.id());
    assert!(holder.starts_with("run "), "{holder}");
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        path.exists(),
        "the lease file stays; its lock went with the process"
    );

    let t0 = Instant::now();
    let second = spawn(&store, "").wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{said}");
    assert!(!said.contains("waiting for `"), "{said}");
    assert!(t0.elapsed() < Duration::from_secs(100), "it did not wait");
    // The second run computed `base`: the first had not got to commit it.
    let last = journals(&store).pop().unwrap();
    let base = last["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == BASE)
        .unwrap()
        .clone();
    assert_eq!(base["outcome"], "ran", "{last}");
    assert_eq!(times_ran(&store, BASE), 1);
    for id in ["expert[arch=resnet18,class=3]", "both", TARGET] {
        assert_eq!(times_ran(&store, id), 1, "`{id}`");
    }
    support::assert_intact(&store, "after the takeover");
}

/// `gc` takes the store lock exclusively: it waits while a run uses the store (the run holds
/// it shared), says for whom, and removes nothing of what the run committed.
#[test]
fn gc_waits_for_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut run = spawn(&store, &format!("sleep4:{BASE}"));
    lease_of(&store, run.id());
    let mut gc = StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(["gc", TINY])
        .env("TARUN_STORE", &store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Whichever ends first: the run must.
    let start = Instant::now();
    let run_ended = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(
            gc.try_wait().unwrap().is_none(),
            "gc ended while the run was going"
        );
        assert!(start.elapsed().as_secs() < 120, "the run never ended");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(run_ended.success());
    let gc = gc.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&gc.stderr);
    assert!(gc.status.success(), "{said}");
    assert!(
        said.contains("waiting for the store lock, held by run "),
        "{said}"
    );
    // gc kept the study's records, and removed the lease files no one held any more.
    let records = std::fs::read_dir(store.join("records")).unwrap().count();
    assert_eq!(records, 5);
    let locks = std::fs::read_dir(store.join("locks")).unwrap().count();
    assert_eq!(locks, 0);
    // And says so: one lease file per node the run computed.
    let out = String::from_utf8_lossy(&gc.stdout);
    assert!(
        out.contains(", 5 lease files no process held and "),
        "{out}"
    );
    support::assert_intact(&store, "gc after a run");
}

/// A run waits while `gc` holds the store lock exclusively (here the test holds it, as gc
/// does, for as long as it likes), says for whom, computes nothing meanwhile, and then runs.
#[test]
fn a_run_waits_for_gc() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mut gc = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(store.join("store.lock"))
        .unwrap();
    gc.lock().unwrap();
    gc.write_all(b"tarun gc (pid 4242)").unwrap();
    let mut run = spawn(&store, "");
    std::thread::sleep(Duration::from_secs(3));
    assert!(run.try_wait().unwrap().is_none(), "the run did not wait");
    let leases = std::fs::read_dir(store.join("locks")).map_or(0, |d| d.count());
    let records = std::fs::read_dir(store.join("records")).map_or(0, |d| d.count());
    assert_eq!(
        (leases, records),
        (0, 0),
        "nothing computed while gc holds the lock"
    );
    drop(gc);
    let out = run.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("waiting for the store lock") && said.contains("held by tarun gc (pid 4242)"),
        "{said}"
    );
    assert_eq!(times_ran(&store, TARGET), 1);
}

/// A Slurm job of one driver and a local run of another compute a shared node once: the job
/// (`tarun exec-node`, run here by hand on the task a driver wrote) finds the node's lease held by
/// the local run, waits for it, says for whom, and takes the record the run committed.
///
/// The driver submits through a fake `sbatch` (no Slurm here) and is killed once it has written
/// the task; its job is then this test's `exec-node`.
#[test]
fn a_slurm_job_waits_for_a_local_runs_lease_and_computes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, "#!/bin/sh\necho 4242\n").unwrap();
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut driver = StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(run_args(TINY, &[BASE]))
        .args(["--executor", "slurm"])
        .env("TARUN_STORE", &store)
        .env("PATH", &path)
        .env_remove("TARUN_INJECT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tasks = store.join("slurm").join("tasks");
    let start = Instant::now();
    let key = loop {
        let task = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "json"));
        if let Some(task) = task {
            break task.file_stem().unwrap().to_str().unwrap().to_owned();
        }
        assert!(start.elapsed().as_secs() < 60, "the driver wrote no task");
        std::thread::sleep(Duration::from_millis(20));
    };
    driver.kill().unwrap();
    driver.wait().unwrap();

    let local = spawn(&store, &format!("sleep4:{BASE}"));
    lease_of(&store, local.id());
    let job = StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(["exec-node", &key])
        .env("TARUN_STORE", &store)
        .env("SLURM_JOB_ID", "4242")
        .env_remove("TARUN_INJECT")
        .env_remove("TARUN_LOG")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&job.stderr);
    assert!(job.status.success(), "{said}");
    let local = local.wait_with_output().unwrap();
    assert!(local.status.success());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join(format!("records/{key}.json"))).unwrap())
            .unwrap();
    let run = record["run-id"].as_str().unwrap();
    assert!(
        said.contains(&format!(
            "waiting for `{BASE}` (key {key}), computed by run {run} pid"
        )),
        "{said}"
    );
    assert!(said.contains("meanwhile; nothing computed"), "{said}");
    assert_eq!(times_ran(&store, BASE), 1);
    support::assert_intact(&store, "a job and a run");
}
