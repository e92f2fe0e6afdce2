//! `TARUN_LOG=debug` shows why each node runs or not: its key, the cache's answer, where it is
//! placed, and the store lock (taken at once, or after a wait for another run).

mod support;

use std::time::{Duration, Instant};

use support::{report_study, tarun};

fn stderr_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn debug_logs_keys_cache_answers_placement_and_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let manifest = dir.path().join("debug.toml");
    std::fs::write(&manifest, report_study("debug", "debug")).unwrap();
    let manifest = manifest.to_str().unwrap();
    let run = || {
        tarun(&store)
            .args(["run", manifest, "--no-progress"])
            .env("TARUN_LOG", "debug")
            .output()
            .unwrap()
    };
    let first = stderr_of(&run());
    for line in [
        "store lock",
        "taken at once",
        "key of `base`: ",
        "key of `base-eval`: ",
        "(1 input, algorithm",
        "miss: no record of `base` under its key",
        "`base` waits for a slot",
        "`base` placed on cpu with",
        "`summary` placed on cpu with 1 thread (no slot)",
    ] {
        assert!(first.contains(line), "missing {line:?} in:\n{first}");
    }
    assert!(!first.contains('\u{1b}'), "escape codes in a captured log");
    // The key logged is the key the record is stored under.
    let key = first
        .lines()
        .find_map(|l| l.split("key of `base`: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(
        store.join("records").join(format!("{key}.json")).is_file(),
        "no record under the logged key {key}"
    );

    let second = stderr_of(&run());
    for id in ["base", "base-eval", "summary"] {
        assert!(
            second.contains(&format!("hit: `{id}` is cached")),
            "{second}"
        );
    }
    assert!(!second.contains("miss:"), "{second}");

    // Another process holds the store lock for a while: the run says it waited, and how long.
    let lock = std::fs::File::options()
        .write(true)
        .open(store.join("store.lock"))
        .unwrap();
    lock.lock().unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tarun"))
        .args(["run", manifest, "--no-progress"])
        .env("TARUN_STORE", &store)
        .env("TARUN_LOG", "debug")
        .env_remove("TARUN_FAULT")
        .env_remove("TARUN_INJECT")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    lock.unlock().unwrap();
    let waited = stderr_of(&child.wait_with_output().unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(700));
    assert!(waited.contains("taken after waiting"), "{waited}");
}
