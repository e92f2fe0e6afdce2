//! What the store tests share: running tarun on a store, and reading what it committed.

#![allow(dead_code, reason = "each test file uses a part")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

pub const TINY: &str = "tests/fixtures/tiny.toml";
/// A second study sharing `base`, `expert[.., class=8]`, `manual` and `manual-eval` with `TINY`.
pub const SHARED: &str = "tests/fixtures/tiny-shared.toml";
/// A 5-node part of `TINY` (base, two experts, `both`, `both-eval`): about 2 s on the CPU.
pub const SMALL: &str = "both-eval";

pub fn tarun(store: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tarun").expect("binary");
    cmd.env("TARUN_STORE", store)
        .env_remove("TARUN_LOG")
        .env_remove("TARUN_FAULT")
        .env_remove("TARUN_INJECT");
    cmd
}

/// `tarun run MANIFEST --target T...` (every node when `targets` is empty).
pub fn run(store: &Path, manifest: &str, targets: &[&str]) -> Output {
    tarun(store)
        .args(run_args(manifest, targets))
        .output()
        .unwrap()
}

pub fn run_args(manifest: &str, targets: &[&str]) -> Vec<String> {
    let mut args = vec![
        "run".to_owned(),
        manifest.to_owned(),
        "--no-progress".into(),
    ];
    for t in targets {
        args.extend(["--target".to_owned(), (*t).to_owned()]);
    }
    args
}

/// Runs and asserts success.
pub fn run_ok(store: &Path, manifest: &str, targets: &[&str]) {
    run_ok_with(store, manifest, targets, &[]);
}

/// [`run_ok`] with more arguments (`-j 2`, `--force ID`).
pub fn run_ok_with(store: &Path, manifest: &str, targets: &[&str], extra: &[&str]) {
    let out = tarun(store)
        .args(run_args(manifest, targets))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every run journal of the store, oldest first.
pub fn journals(store: &Path) -> Vec<Value> {
    let out = tarun(store).args(["log", "--json"]).output().unwrap();
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    log["runs"].as_array().unwrap().clone()
}

/// How many entries of a journal have `outcome`.
pub fn count(journal: &Value, outcome: &str) -> usize {
    journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == outcome)
        .count()
}

/// Fresh nodes of a study and their output digests, from `tarun status --json`.
pub fn fresh_outputs(store: &Path, manifest: &str) -> BTreeMap<String, Value> {
    let out = tarun(store)
        .args(["status", manifest, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "fresh")
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n["outputs"].clone()))
        .collect()
}

/// `tarun verify` is clean, and (read here, independently of tarun) every node record parses and
/// every object it names is present with its recorded size.
pub fn assert_intact(store: &Path, context: &str) {
    let verify = tarun(store).arg("verify").output().unwrap();
    assert!(
        verify.status.success(),
        "{context}: verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let Ok(records) = std::fs::read_dir(store.join("records")) else {
        return;
    };
    for entry in records {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let record: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{context}: record {} is partial: {e}", path.display()));
        for (name, output) in record["outputs"].as_object().unwrap() {
            let digest = output["digest"].as_str().unwrap();
            let object = store.join("objects").join(&digest[..2]).join(&digest[2..]);
            let size = std::fs::metadata(&object).map(|m| m.len()).ok();
            assert_eq!(
                size,
                output["size"].as_u64(),
                "{context}: record {} points at a missing or partial `{name}`",
                path.display()
            );
        }
    }
}

/// Files (not directories) left in the store's `tmp/`, at any depth.
pub fn tmp_files(store: &Path) -> Vec<PathBuf> {
    walk(&store.join("tmp"))
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// The smallest study with a record, a head, a journal, objects and a report: one base network,
/// its evaluation and a report titled `title`, named `name`.
pub fn report_study(name: &str, title: &str) -> String {
    format!(
        r#"
[study]
name = "{name}"
seed = 7
protocol = "seed"

[data]
source = "synthetic"
train-per-class = 4
test-per-class = 2
validation-per-class = 1

[recipe.base]
lr = 3e-3
epochs = 1
batch-size = 32

[train.base]
arch = "resnet18"
width = 0.0625
recipe = "base"

[evaluate.base-eval]
model = "base"
forget = 8
metrics = ["accuracy", "forget-acc", "retain-acc"]

[report.summary]
title = "{title}"
inputs = ["base", "base-eval"]
"#
    )
}
