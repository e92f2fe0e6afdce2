//! SIGTERM and SIGHUP (what Slurm's time limit, systemd, `docker stop`, CI runners and a closed
//! terminal send) stop `tarun run` as the first Ctrl-C does: the running job stops at its next
//! batch, nothing partial is left in `tmp/`, the journal says the run was interrupted and by
//! what, and the run exits 128 + the signal's number (issue 24, item 4). The next run finishes
//! with the results of an uninterrupted one. A run killed outright (SIGKILL) leaves its job
//! directory behind; the next run removes it, because its process is gone.
//!
//! The study is the 3-node `report_study`; `TARUN_INJECT=sleep60:base` holds its first job (in
//! its `tmp/job-*` directory, cancellable) until the signal comes, so no timing is guessed.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;
use support::{journals, report_study, tarun};

/// The manifest, written once for every test of this file, and the outputs of an uninterrupted
/// run of it (see [`results`]).
struct Reference {
    _dir: tempfile::TempDir,
    manifest: PathBuf,
    outputs: BTreeMap<String, Value>,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("signals.toml");
        std::fs::write(&manifest, report_study("signals", "signals")).unwrap();
        let store = dir.path().join("reference");
        run_ok(&store, &manifest);
        let outputs = results(&store, &manifest);
        assert_eq!(outputs.len(), 2, "{outputs:?}");
        Reference {
            _dir: dir,
            manifest,
            outputs,
        }
    })
}

/// The digests of the computed outputs (the network and its metrics), every node fresh. The
/// report is left out: it says when and how long each node ran, which differs between runs.
fn results(store: &Path, manifest: &Path) -> BTreeMap<String, Value> {
    let mut fresh = support::fresh_outputs(store, manifest.to_str().unwrap());
    assert!(
        fresh.remove("summary").is_some(),
        "the report is fresh: {fresh:?}"
    );
    assert_eq!(fresh.len(), 2, "every node is fresh: {fresh:?}");
    fresh
}

fn run_ok(store: &Path, manifest: &Path) -> String {
    let out = tarun(store)
        .arg("run")
        .arg(manifest)
        .arg("--no-progress")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// `tarun run` with its first job held in `tmp/` until cancelled (or for `hold` seconds), SIGHUP
/// ignored or at its default action as `ignore_hup` says (whatever the test runner's own is).
fn spawn_held(store: &Path, manifest: &Path, hold: u32, ignore_hup: bool) -> Child {
    let mut cmd = Command::cargo_bin("tarun").unwrap();
    cmd.arg("run")
        .arg(manifest)
        .arg("--no-progress")
        .env("TARUN_STORE", store)
        .env("TARUN_INJECT", format!("sleep{hold}:base"))
        .env_remove("TARUN_LOG")
        .env_remove("TARUN_FAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let action = if ignore_hup {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    // SAFETY: signal(2) is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGHUP, action);
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// The entries of the store's `tmp/`.
fn tmp_entries(store: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(store.join("tmp")) else {
        return vec![];
    };
    let mut names: Vec<String> = dir
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits (up to a minute) until a job directory is in `tmp/`: a job is running.
fn wait_for_job(store: &Path) {
    let start = Instant::now();
    while !tmp_entries(store).iter().any(|n| n.starts_with("job-")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no job started in {}",
            store.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) to our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Sends `signal` while the first job runs, and checks everything the issue asks of it.
fn interrupt_with(signal: i32, name: &str, code: i32) {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let child = spawn_held(&store, &reference.manifest, 60, false);
    wait_for_job(&store);
    send(&child, signal);
    let sent = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{name}: {:?}\n{err}",
        out.status
    );
    assert!(
        err.contains(&format!("interrupted by {name}")),
        "{name}: no message naming the signal in\n{err}"
    );
    assert!(
        err.contains(&format!("(interrupted by {name})")),
        "{name}: the summary line says so\n{err}"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{name}: stopped promptly"
    );
    assert_eq!(tmp_entries(&store), Vec::<String>::new(), "{name}: tmp/");
    support::assert_intact(&store, name);

    let runs = journals(&store);
    assert_eq!(runs.len(), 1, "{name}: {runs:?}");
    let journal = &runs[0];
    assert_eq!(journal["interrupted"], name, "{name}: {journal}");
    assert_eq!(support::count(journal, "ran"), 0, "{name}: {journal}");
    assert_eq!(support::count(journal, "cancelled"), 3, "{name}: {journal}");
    let log = tarun(&store).arg("log").output().unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.contains(&format!("interrupted by {name}")),
        "{name}: `tarun log` says\n{log}"
    );

    run_ok(&store, &reference.manifest);
    let runs = journals(&store);
    let last = runs.last().unwrap();
    assert_eq!(last.get("interrupted"), None, "{name}: {last}");
    assert_eq!(support::count(last, "ran"), 3, "{name}: {last}");
    assert_eq!(
        results(&store, &reference.manifest),
        reference.outputs,
        "{name}: the next run's results"
    );
    assert_eq!(tmp_entries(&store), Vec::<String>::new(), "{name}: tmp/");
}

#[test]
fn sigterm_stops_a_run_as_ctrl_c_does_and_exits_143() {
    interrupt_with(libc::SIGTERM, "SIGTERM", 143);
}

#[test]
fn sighup_stops_a_run_as_ctrl_c_does_and_exits_129() {
    interrupt_with(libc::SIGHUP, "SIGHUP", 129);
}

/// Ctrl-C itself: as before (exit 130), and now the journal says so too.
#[test]
fn sigint_marks_the_journal_interrupted() {
    interrupt_with(libc::SIGINT, "SIGINT", 130);
}

/// Under `nohup` (SIGHUP ignored by the parent) a hang-up does not stop the run.
#[test]
fn an_ignored_sighup_stays_ignored() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let child = spawn_held(&store, &reference.manifest, 1, true);
    wait_for_job(&store);
    send(&child, libc::SIGHUP);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{err}", out.status);
    assert!(!err.contains("interrupted"), "{err}");
    assert_eq!(results(&store, &reference.manifest), reference.outputs);
}

/// SIGKILL cannot be caught: the job's directory stays in `tmp/`. The next run sees that its
/// process is gone, removes it and says so, then finishes with the reference's results.
#[test]
fn the_next_run_sweeps_what_a_killed_run_left_in_tmp() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut child = spawn_held(&store, &reference.manifest, 60, false);
    wait_for_job(&store);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = tmp_entries(&store);
    let pid = child.id();
    assert!(
        left.iter()
            .any(|n| n.starts_with("job-base@") && n.contains(&format!("@{pid}."))),
        "the killed run's job directory, named after its pid {pid}: {left:?}"
    );

    let err = run_ok(&store, &reference.manifest);
    assert!(err.contains("removed 1 leftovers of ended runs"), "{err}");
    assert_eq!(tmp_entries(&store), Vec::<String>::new());
    assert_eq!(results(&store, &reference.manifest), reference.outputs);
    support::assert_intact(&store, "after the sweep");
}
