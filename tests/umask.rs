//! Files and directories tarun writes get the mode an ordinary `File::create` or `create_dir`
//! would (`0666 & !umask`, `0777 & !umask`; objects are then made read-only), so a group sharing
//! a store can read each other's results.
//!
//! The umask is process-wide, so each run applies its umask in a child shell (`sh -c 'umask 022;
//! exec tarun ...'`) rather than in this (multi-threaded) test process.

#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{report_study, walk};

/// Runs the study on a fresh store under `umask` and returns the store.
fn run_under(dir: &Path, umask: &str) -> PathBuf {
    let store = dir.join("store");
    let manifest = dir.join("umask.toml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&manifest, report_study("umask", "umask")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_tarun"))
        .arg("run")
        .arg(&manifest)
        .arg("--no-progress")
        .env("TARUN_STORE", &store)
        .env_remove("TARUN_LOG")
        .env_remove("TARUN_FAULT")
        .env_remove("TARUN_INJECT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umask {umask}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    store
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every directory under `dir`, `dir` included.
fn dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(dirs(&path));
        }
    }
    out
}

/// The files of each kind tarun writes, each kind present.
fn files(store: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut out = vec![];
    for (kind, sub) in [
        ("record", "records"),
        ("head", "heads"),
        ("journal", "runs"),
        ("report", "reports"),
        ("object", "objects"),
    ] {
        let found = walk(&store.join(sub));
        assert!(!found.is_empty(), "no {kind} written under `{sub}/`");
        out.extend(found.into_iter().map(|p| (kind, p)));
    }
    out.push(("format version", store.join("format-version")));
    out.push(("lock", store.join("store.lock")));
    out
}

#[test]
fn files_and_directories_follow_the_umask() {
    let dir = tempfile::tempdir().unwrap();

    // 022: readable by the group, writable by nobody else.
    let store = run_under(&dir.path().join("022"), "022");
    for (kind, path) in files(&store) {
        let m = mode(&path);
        assert_ne!(m & 0o040, 0, "{kind} `{}` is {m:o}", path.display());
        assert_eq!(m & 0o022, 0, "{kind} `{}` is {m:o}", path.display());
        if kind != "object" {
            assert_eq!(m, 0o644, "{kind} `{}` is {m:o}", path.display());
        }
    }
    for d in dirs(&store) {
        let m = mode(&d);
        assert_eq!(m, 0o755, "directory `{}` is {m:o}", d.display());
    }

    // 002: readable and writable by the group (objects stay read-only by design).
    let store = run_under(&dir.path().join("002"), "002");
    for (kind, path) in files(&store) {
        let m = mode(&path);
        assert_ne!(m & 0o040, 0, "{kind} `{}` is {m:o}", path.display());
        assert_eq!(m & 0o002, 0, "{kind} `{}` is {m:o}", path.display());
        if kind == "object" {
            assert_eq!(m & 0o222, 0, "object `{}` is {m:o}", path.display());
        } else {
            assert_eq!(m, 0o664, "{kind} `{}` is {m:o}", path.display());
        }
    }
    for d in dirs(&store) {
        let m = mode(&d);
        assert_eq!(m, 0o775, "directory `{}` is {m:o}", d.display());
    }
}
