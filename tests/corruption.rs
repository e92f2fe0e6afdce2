//! Corrupt stores: a flipped byte, a truncated object, a deleted object and a garbage record
//! are each found by `verify` (naming the path), and the damaged nodes recompute to the same
//! results. A job never reads a corrupt input: it fails, says so, and the next run recovers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

mod support;

const M: &str = "tests/fixtures/tiny.toml";
const TARGET: &str = "unlearned-eval[arch=resnet18]";
const BASE: &str = "base[arch=resnet18]";

fn tarun(store: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tarun").expect("binary");
    cmd.env("TARUN_STORE", store).env_remove("TARUN_LOG");
    cmd
}

fn run(store: &Path, extra: &[&str]) -> std::process::Output {
    tarun(store)
        .args(["run", M, "--no-progress", "--target", TARGET])
        .args(extra)
        .output()
        .unwrap()
}

/// `(state, outputs)` of every node of the target's subgraph.
fn nodes(store: &Path) -> BTreeMap<String, (String, Value)> {
    let out = tarun(store).args(["status", M, "--json"]).output().unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] != "missing")
        .map(|n| {
            let id = n["id"].as_str().unwrap().to_owned();
            (
                id,
                (
                    n["state"].as_str().unwrap().to_owned(),
                    n["outputs"].clone(),
                ),
            )
        })
        .collect()
}

fn object_of(store: &Path, id: &str) -> PathBuf {
    let digest = nodes(store)[id].1["model.safetensors"]
        .as_str()
        .unwrap()
        .to_owned();
    store.join("objects").join(&digest[..2]).join(&digest[2..])
}

#[test]
fn every_kind_of_damage_is_found_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    assert!(run(&pristine, &[]).status.success());
    let reference = nodes(&pristine);
    assert!(object_of(&pristine, BASE).is_file(), "object layout");

    type Damage = fn(&Path);
    let damages: [(&str, Damage); 4] = [
        ("flipped byte", |store| {
            let path = object_of(store, BASE);
            let mut bytes = std::fs::read(&path).unwrap();
            let i = bytes.len() - 10;
            bytes[i] ^= 0x40;
            std::fs::write(&path, bytes).unwrap();
        }),
        ("truncated object", |store| {
            let path = object_of(store, BASE);
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("deleted object", |store| {
            std::fs::remove_file(object_of(store, BASE)).unwrap();
        }),
        ("garbage record", |store| {
            let records = store.join("records");
            let mut files: Vec<_> = walk(&records);
            files.sort();
            let victim = files
                .iter()
                .find(|f| {
                    std::fs::read_to_string(f)
                        .unwrap()
                        .contains("\"best[arch=resnet18]\"")
                })
                .expect("the select node's record")
                .clone();
            std::fs::write(victim, b"{\"key\": garbage").unwrap();
        }),
    ];
    for (name, damage) in damages {
        let store = dir.path().join(name.replace(' ', "-"));
        support::copy_dir(&pristine, &store);
        damage(&store);
        let verify = tarun(&store).arg("verify").output().unwrap();
        assert_eq!(verify.status.code(), Some(3), "{name}: verify must fail");
        let said = String::from_utf8_lossy(&verify.stdout);
        assert!(
            said.contains("corrupt:") && said.contains(store.to_str().unwrap()),
            "{name}: {said}"
        );
        tarun(&store)
            .args(["verify", "--repair"])
            .assert()
            .success();
        let damaged = nodes(&store);
        assert!(
            damaged.values().any(|(state, _)| state != "fresh"),
            "{name}: the damaged node must not look fresh"
        );
        assert!(run(&store, &[]).status.success(), "{name}: rerun");
        assert_eq!(
            nodes(&store),
            reference,
            "{name}: recomputed to the same results"
        );
        tarun(&store).arg("verify").assert().success();
    }

    // A job about to read a corrupt input refuses, and the next run recovers.
    let store = dir.path().join("read-time");
    support::copy_dir(&pristine, &store);
    let path = object_of(&store, BASE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let out = run(&store, &["--force", "expert[arch=resnet18,class=8]"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is corrupt") && err.contains("quarantine"),
        "{err}"
    );
    assert!(run(&store, &[]).status.success());
    assert_eq!(nodes(&store), reference);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A store written by a newer tarun: every command that reads or writes a store refuses it with
/// exit 3, names the store and its `format-version` file and both versions, and changes nothing
/// (not even the directories a new store gets).
#[test]
fn a_newer_store_format_is_refused_by_every_command_without_changing_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("future");
    std::fs::create_dir_all(store.join("objects/ab")).unwrap();
    std::fs::write(store.join("objects/ab/cdef"), b"a version-2 object").unwrap();
    std::fs::write(store.join("format-version"), "2\n").unwrap();
    let before = snapshot(&store);
    let export_to = dir.path().join("export");
    let commands: [&[&str]; 9] = [
        &["run", M, "--no-progress", "--target", BASE],
        &["run", M, "--dry-run"],
        &["status", M],
        &["status", M, "--json"],
        &["gc", M],
        &["verify"],
        &["verify", "--repair"],
        &["log"],
        &["export", M, BASE, "--to", export_to.to_str().unwrap()],
    ];
    for args in commands {
        let out = tarun(&store).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        let version_file = store.join("format-version");
        for needle in [
            store.to_str().unwrap(),
            version_file.to_str().unwrap(),
            "format version 2",
            "reads version 1",
        ] {
            assert!(err.contains(needle), "{args:?}: `{needle}` not in: {err}");
        }
        assert_eq!(snapshot(&store), before, "{args:?} changed the store");
        assert!(!export_to.exists(), "{args:?}");
    }
}

/// Every path under `dir` with its contents (directories as `None`).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
            out.insert(path, None);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.insert(path, Some(bytes));
        }
    }
    out
}
