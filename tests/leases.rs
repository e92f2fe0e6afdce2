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

/// Whether a Slurm cluster answers (`.ci/slurm/start.sh`, `SLURM_CONF`); panics when one is
/// required (`TARUN_REQUIRE_SLURM`) and none does.
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

/// A Slurm driver whose job finds its node's lease held by a local run, waits, and takes the
/// record that run committed: the driver's journal says `cached` for the node (the job computed
/// nothing), on the job's device, and the node ran once over both runs.
#[test]
fn a_slurm_driver_journals_a_node_its_job_took_from_the_store_as_cached() {
    if !slurm_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // The local run holds `base`'s lease for 8 s before computing it: long enough for the
    // driver to submit and the job to start waiting.
    let local = spawn(&store, &format!("sleep8:{BASE}"));
    lease_of(&store, local.id());
    let driver = StdCommand::cargo_bin("tarun")
        .unwrap()
        .args(run_args(TINY, &[BASE]))
        .args(["--executor", "slurm", "--poll-interval", "0.2"])
        .env("TARUN_STORE", &store)
        .env_remove("TARUN_INJECT")
        .env_remove("TARUN_FAULT")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&driver.stderr);
    assert!(driver.status.success(), "{said}");
    let local = local.wait_with_output().unwrap();
    assert!(
        local.status.success(),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    // The driver's journal is the one with `base` alone.
    let runs = journals(&store);
    let driver_run = runs
        .iter()
        .find(|j| j["entries"].as_array().unwrap().len() == 1)
        .expect("the driver's journal");
    let entry = &driver_run["entries"][0];
    assert_eq!(entry["id"], BASE, "{driver_run}");
    assert_eq!(entry["outcome"], "cached", "{driver_run}");
    // Through its job, not the driver's own lookup: the job waited and took the record.
    let device = entry["device"].as_str().unwrap_or_default();
    assert!(device.contains("slurm job"), "{driver_run}");
    let logs: String = std::fs::read_dir(store.join("slurm").join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(logs.contains("meanwhile; nothing computed"), "{logs}");
    assert_eq!(times_ran(&store, BASE), 1);
    support::assert_intact(&store, "a driver's job and a run");
}
