//! A closed stdout (`tarun status M | head -1`) ends a command quietly with exit 0, as ripgrep
//! does, instead of a panic (exit 101 and a backtrace); `export` still copies every file.
//!
//! Each test closes the read end of stdout's pipe before the child can write anything (it has
//! to start and load a manifest first), so the command's first write fails with `BrokenPipe`
//! whatever the size of its output.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{SMALL, TINY, report_study};

/// A store in which `SMALL`'s five nodes are fresh.
fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::run_ok(dir.path(), TINY, &[SMALL]);
    dir
}

/// `tarun ARGS` on `store`, with backtraces on, so that a panic cannot go unnoticed.
fn tarun(store: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarun"));
    cmd.env("TARUN_STORE", store)
        .env_remove("TARUN_LOG")
        .env_remove("TARUN_FAULT")
        .env_remove("TARUN_INJECT")
        .env("RUST_BACKTRACE", "1")
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Runs tarun with its stdout closed by the reader, and asserts that it exits 0 without a
/// panic.
fn with_closed_stdout(store: &Path, args: &[&str]) -> Output {
    let mut child = tarun(store, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "tarun {args:?} with stdout closed: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "tarun {args:?} with stdout closed panicked: {stderr}"
    );
    out
}

#[test]
fn status_stops_quietly() {
    let store = store();
    with_closed_stdout(store.path(), &["status", TINY]);
}

#[test]
fn status_json_stops_quietly() {
    let store = store();
    with_closed_stdout(store.path(), &["status", TINY, "--json"]);
}

#[test]
fn status_explain_stops_quietly() {
    let store = store();
    with_closed_stdout(store.path(), &["status", TINY, "--explain", SMALL]);
}

#[test]
fn log_stops_quietly() {
    let store = store();
    with_closed_stdout(store.path(), &["log", "--detail", "1"]);
    with_closed_stdout(store.path(), &["log", "--json"]);
}

#[test]
fn dry_run_stops_quietly() {
    let store = store();
    with_closed_stdout(store.path(), &["run", TINY, "--dry-run"]);
}

#[test]
fn dag_stops_quietly() {
    let store = store();
    for format in ["text", "dot", "mermaid", "json"] {
        with_closed_stdout(store.path(), &["dag", TINY, "--format", format]);
    }
}

#[test]
fn devices_stops_quietly() {
    let store = store();
    with_closed_stdout(store.path(), &["devices"]);
    with_closed_stdout(store.path(), &["devices", "--json"]);
}

/// `man --dir` writes every page before listing them: a closed stdout cuts only the listing.
#[test]
fn man_stops_quietly_after_writing_every_page() {
    let dir = tempfile::tempdir().unwrap();
    with_closed_stdout(dir.path(), &["man"]);
    let pages = dir.path().join("man1");
    with_closed_stdout(dir.path(), &["man", "--dir", pages.to_str().unwrap()]);
    let written = support::walk(&pages);
    let all = tarun(dir.path(), &["man", "--dir", pages.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(all.status.success(), "{all:?}");
    let listed = String::from_utf8(all.stdout).unwrap();
    assert_eq!(
        written.len(),
        listed.lines().count(),
        "{written:?}\n{listed}"
    );
    assert!(written.len() > 10, "{written:?}");
}

/// gc lists what it removed after removing it: a closed stdout cuts the listing, not the work.
#[test]
fn gc_stops_quietly_after_its_work() {
    let store = store();
    with_closed_stdout(store.path(), &["gc", "--dry-run", TINY]);
    let records = |dir: &Path| std::fs::read_dir(dir.join("records")).unwrap().count();
    assert!(records(store.path()) > 0);
    // A manifest with nothing in common keeps nothing: every record goes, listed or not.
    let other = store.path().join("other.toml");
    std::fs::write(&other, report_study("other", "other")).unwrap();
    with_closed_stdout(store.path(), &["gc", other.to_str().unwrap()]);
    assert_eq!(records(store.path()), 0);
}

/// verify's exit code says what it found even when its listing is cut, and `--repair` moves every
/// damaged object aside first.
#[test]
fn verify_stops_quietly_and_keeps_its_verdict() {
    let store = store();
    with_closed_stdout(store.path(), &["verify"]);
    with_closed_stdout(store.path(), &["verify", "--json"]);
    let objects = support::walk(&store.path().join("objects"));
    for victim in &objects[..2] {
        let mut bytes = std::fs::read(victim).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(victim, bytes).unwrap();
    }
    for json in [false, true] {
        let mut args = vec!["verify"];
        if json {
            args.push("--json");
        }
        let mut child = tarun(store.path(), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "json {json}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    with_closed_stdout(store.path(), &["verify", "--repair"]);
    for victim in &objects[..2] {
        assert!(!victim.exists(), "{} was not repaired", victim.display());
    }
    let quarantined = support::walk(&store.path().join("quarantine"));
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
}

/// The listing is informational, the copies are the work: every file of every node is copied.
#[test]
fn export_copies_every_file_when_its_listing_is_cut() {
    let store = store();
    let status = support::tarun(store.path())
        .args(["status", TINY, "--json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let mut nodes = vec![];
    let mut expected = vec![];
    for node in status["nodes"].as_array().unwrap() {
        if node["state"] != "fresh" {
            continue;
        }
        let id = node["id"].as_str().unwrap().to_owned();
        for name in node["outputs"].as_object().unwrap().keys() {
            expected.push(Path::new(&id).join(name));
        }
        nodes.push(id);
    }
    assert_eq!(nodes.len(), 5, "{status}");
    assert!(expected.len() >= 5, "{expected:?}");
    let dest = store.path().join("exported");
    let mut args = vec!["export", TINY, "--to", dest.to_str().unwrap()];
    args.extend(nodes.iter().map(String::as_str));
    with_closed_stdout(store.path(), &args);
    for file in &expected {
        assert!(
            dest.join(file).is_file(),
            "export with stdout closed left `{}` uncopied",
            file.display()
        );
    }
}

/// Any other stdout error (here a full disk) is an error, exit 4, not a panic; `export` still
/// copies every file first.
#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_is_an_error_and_export_still_copies() {
    let store = store();
    let full = || std::fs::File::create("/dev/full").unwrap();
    let status = tarun(store.path(), &["status", TINY])
        .stdout(full())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("writing to stdout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let dest = store.path().join("exported");
    let nodes = [
        "base[arch=resnet18]",
        "expert[arch=resnet18,class=3]",
        "expert[arch=resnet18,class=8]",
    ];
    let mut args = vec!["export", TINY, "--to", dest.to_str().unwrap()];
    args.extend(nodes);
    let export = tarun(store.path(), &args).stdout(full()).output().unwrap();
    let stderr = String::from_utf8_lossy(&export.stderr);
    assert_eq!(export.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("writing to stdout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let copied: Vec<_> = support::walk(&dest);
    assert_eq!(copied.len(), 3, "{copied:?}");
}
