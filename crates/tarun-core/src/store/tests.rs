use std::collections::{BTreeMap, BTreeSet};

use camino::Utf8PathBuf;

use super::*;
use crate::digest::digest_json;
use crate::manifest::NodeKind;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::try_from(dir.path().join("store")).unwrap();
    (dir, Store::open(root).unwrap())
}

fn record(store: &Store, id: &str, content: &[u8]) -> NodeRecord {
    let out = store.put_bytes(content).unwrap();
    NodeRecord {
        key: digest_json(&(id, content)),
        id: id.into(),
        kind: NodeKind::Train,
        key_material: serde_json::json!({"id": id}),
        outputs: BTreeMap::from([("model.safetensors".to_owned(), out)]),
        summary: serde_json::Value::Null,
        started: jiff::Timestamp::UNIX_EPOCH,
        seconds: 1.0,
        device: "cpu".into(),
        threads: 2,
        tarun_version: "test".into(),
        run_id: "r1".into(),
        log: vec![],
        peak_rss: None,
    }
}

#[test]
fn commit_then_read_back_by_key_and_head() {
    let (_d, store) = temp_store();
    let rec = record(&store, "base", b"weights");
    store.commit("s", &rec).unwrap();
    assert_eq!(store.read_record(&rec.key).unwrap().unwrap(), rec);
    assert_eq!(store.head("s", "base").unwrap().unwrap().key, rec.key);
    assert!(store.head("other-study", "base").unwrap().is_none());
    assert!(store.outputs_present(&rec));
}

#[test]
fn the_head_remembers_earlier_keys_newest_first_without_repeats() {
    let (_d, store) = temp_store();
    let a = record(&store, "base", b"a");
    let b = record(&store, "base", b"b");
    for r in [&a, &b, &a] {
        store.commit("s", r).unwrap();
    }
    let keys: Vec<_> = store
        .history("s", "base")
        .unwrap()
        .iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, [a.key, b.key]);
    assert_eq!(store.head("s", "base").unwrap().unwrap().key, a.key);
    assert!(store.history("s", "other").unwrap().is_empty());

    let many: Vec<_> = (0..HEAD_HISTORY + 3)
        .map(|i| record(&store, "base", format!("w{i}").as_bytes()))
        .collect();
    for r in &many {
        store.commit("s", r).unwrap();
    }
    let history = store.history("s", "base").unwrap();
    assert_eq!(history.len(), HEAD_HISTORY + 1);
    assert_eq!(history[0].key, many.last().unwrap().key);
}

#[test]
fn identical_content_is_stored_once() {
    let (_d, store) = temp_store();
    let a = store.put_bytes(b"same").unwrap();
    let b = store.put_bytes(b"same").unwrap();
    assert_eq!(a, b);
    assert_eq!(store.object_files().unwrap().len(), 1);
}

#[test]
fn verify_names_flipped_truncated_and_missing_objects() {
    let (_d, store) = temp_store();
    let r1 = record(&store, "a", b"aaaaaaaa");
    let r2 = record(&store, "b", b"bbbbbbbb");
    let r3 = record(&store, "c", b"cccccccc");
    for r in [&r1, &r2, &r3] {
        store.commit("s", r).unwrap();
    }
    assert!(store.verify().unwrap().is_clean());

    let flip = store.object_path(&r1.outputs["model.safetensors"].digest);
    let mut perms = std::fs::metadata(&flip).unwrap().permissions();
    #[expect(
        clippy::permissions_set_readonly_false,
        reason = "the test corrupts the store"
    )]
    perms.set_readonly(false);
    std::fs::set_permissions(&flip, perms.clone()).unwrap();
    std::fs::write(&flip, b"aaaaaaab").unwrap();
    let trunc = store.object_path(&r2.outputs["model.safetensors"].digest);
    std::fs::set_permissions(&trunc, perms).unwrap();
    std::fs::write(&trunc, b"bbb").unwrap();
    std::fs::remove_file(store.object_path(&r3.outputs["model.safetensors"].digest)).unwrap();
    std::fs::write(
        store.root().join("records").join("garbage.json"),
        b"{not json",
    )
    .unwrap();

    let report = store.verify().unwrap();
    let text: Vec<String> = report
        .corrupt_objects
        .iter()
        .chain(&report.bad_records)
        .map(|e| e.to_string())
        .collect();
    let all = text.join("\n");
    assert!(all.contains(flip.as_str()), "{all}");
    assert!(all.contains(trunc.as_str()), "{all}");
    assert!(all.contains("garbage.json"), "{all}");
    assert!(all.contains("is missing"), "{all}");
    assert_eq!(report.corrupt_objects.len(), 2, "{all}");
    assert!(!store.outputs_present(&r3));
    assert!(!store.outputs_present(&r2));
}

#[test]
fn newer_format_is_refused() {
    let (_d, store) = temp_store();
    std::fs::write(store.root().join("format-version"), "99\n").unwrap();
    let err = Store::open(store.root().to_owned()).unwrap_err();
    assert!(matches!(err, StoreError::FormatVersion { .. }), "{err}");
    assert!(err.to_string().contains("99"));
}

#[test]
fn gc_keeps_referenced_and_removes_the_rest() {
    let (_d, store) = temp_store();
    let keep = record(&store, "keep", b"kept bytes");
    let drop = record(&store, "drop", b"dropped bytes");
    store.commit("s", &keep).unwrap();
    store.commit("s", &drop).unwrap();
    std::fs::write(store.tmp_dir().join("leftover"), b"x").unwrap();
    let live = BTreeSet::from([keep.key]);

    let dry = store.gc(&live, true).unwrap();
    assert_eq!(
        (dry.records.len(), dry.objects.len(), dry.temporaries.len()),
        (1, 1, 1)
    );
    assert!(
        store.read_record(&drop.key).unwrap().is_some(),
        "dry run removes nothing"
    );

    store.gc(&live, false).unwrap();
    assert!(store.read_record(&drop.key).unwrap().is_none());
    assert!(store.outputs_present(&keep));
    assert!(store.verify().unwrap().is_clean());
}

/// The next run removes what a dead process of this host left in `tmp/`, and nothing else: not
/// a live process's entries, not another host's, not an unnamed one.
#[test]
fn sweep_removes_the_leftovers_of_dead_processes_only() {
    let (_d, store) = temp_store();
    let tmp = store.tmp_dir();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let here = owner::place();
    let dead_dir = tmp.join(format!("job-base@{dead}.{here}.AbC123"));
    std::fs::create_dir(&dead_dir).unwrap();
    std::fs::write(dead_dir.join("model.safetensors"), b"partial").unwrap();
    let dead_file = tmp.join(format!(".tmp@{dead}.{here}.xYz789"));
    std::fs::write(&dead_file, b"half a record").unwrap();
    // Ours (alive), through the store's own constructors.
    let live_dir = store.job_dir("eval").unwrap();
    std::fs::write(live_dir.path().join("metrics.json"), b"{}").unwrap();
    let other_host = tmp.join(format!("job-base@{dead}.another-host_4026531836.AbC123"));
    std::fs::create_dir(&other_host).unwrap();
    let unnamed = tmp.join("job-base-AbC123");
    std::fs::create_dir(&unnamed).unwrap();

    let removed = store.sweep_dead_temporaries().unwrap();
    assert_eq!(removed, [dead_file.clone(), dead_dir.clone()]);
    assert!(!dead_dir.exists() && !dead_file.exists());
    assert!(live_dir.path().join("metrics.json").exists());
    assert!(other_host.exists() && unnamed.exists());
    assert!(store.sweep_dead_temporaries().unwrap().is_empty());
}

#[test]
fn an_exclusive_lock_waits_for_shared_holders_and_names_one() {
    let (_d, store) = temp_store();
    let never = |_: &str| panic!("shared locks must not wait for each other");
    let a = store
        .lock(LockMode::Shared, "run A (pid 1)", never)
        .unwrap();
    let b = store
        .lock(LockMode::Shared, "run B (pid 2)", never)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = store.clone();
    let waiter = std::thread::spawn(move || {
        let _lock = s2
            .lock(LockMode::Exclusive, "gc", |who| {
                tx.send(who.to_owned()).unwrap()
            })
            .unwrap();
    });
    assert_eq!(rx.recv().unwrap(), "run B (pid 2)");
    drop(a);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!waiter.is_finished(), "one run still holds the lock");
    drop(b);
    waiter.join().unwrap();
}

#[test]
fn a_run_waits_for_an_exclusive_holder() {
    let (_d, store) = temp_store();
    let gc = store
        .lock(LockMode::Exclusive, "tarun gc (pid 9)", |_| panic!("free"))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = store.clone();
    let waiter = std::thread::spawn(move || {
        let _lock = s2
            .lock(LockMode::Shared, "run A", |who| {
                tx.send(who.to_owned()).unwrap()
            })
            .unwrap();
    });
    assert_eq!(rx.recv().unwrap(), "tarun gc (pid 9)");
    drop(gc);
    waiter.join().unwrap();
}

#[test]
fn a_lease_is_held_once_names_its_holder_and_is_free_after_release() {
    let (_d, store) = temp_store();
    let key = record(&store, "base", b"weights").key;
    let LeaseTry::Held(lease) = store.try_lease(&key, "run A").unwrap() else {
        panic!("a fresh lease is free");
    };
    let LeaseTry::Busy(who) = store.try_lease(&key, "run B").unwrap() else {
        panic!("a held lease is busy, even within one process");
    };
    let pid = std::process::id();
    assert!(
        who.starts_with(&format!("run A pid {pid} on host ")),
        "{who}"
    );
    // A waiter hears who holds it, and gets it once it is released.
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = store.clone();
    let waiter = std::thread::spawn(move || {
        s2.lease(
            &key,
            "run B",
            || false,
            |who| tx.send(who.to_owned()).unwrap(),
        )
        .unwrap()
        .is_some()
    });
    assert!(rx.recv().unwrap().starts_with("run A pid"));
    drop(lease);
    assert!(waiter.join().unwrap());
    // A cancelled wait gives up.
    let _held = store.try_lease(&key, "run C").unwrap();
    let gave_up = store.lease(&key, "run D", || true, |_| {}).unwrap();
    assert!(gave_up.is_none());
}

#[test]
fn gc_removes_the_lease_files_no_one_holds() {
    let (_d, store) = temp_store();
    let free = record(&store, "a", b"a").key;
    let held = record(&store, "b", b"b").key;
    drop(store.try_lease(&free, "run A").unwrap());
    let _lease = store.try_lease(&held, "run B").unwrap();
    let report = store.gc(&BTreeSet::from([free, held]), false).unwrap();
    assert_eq!(
        report.locks,
        [store.root().join(format!("locks/{free}.lock"))]
    );
    assert!(store.root().join(format!("locks/{held}.lock")).exists());
}

/// Records, heads, journals and files written through the store get the mode `File::create`
/// gives under the process's umask (not `tempfile`'s 0600); objects that mode made read-only.
/// (The umask is left as it is: tests run in threads. `tests/umask.rs` sets 022 and 002.)
#[cfg(unix)]
#[test]
fn written_files_get_the_mode_file_create_would() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Utf8Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;

    let (_d, store) = temp_store();
    let plain = store.root().join("plain");
    std::fs::File::create(&plain).unwrap();
    let expected = mode(&plain);

    let rec = record(&store, "base", b"weights");
    store.commit("s", &rec).unwrap();
    let journal = RunJournal {
        run_id: "r1".into(),
        manifest: "m.toml".into(),
        study: "s".into(),
        started: jiff::Timestamp::UNIX_EPOCH,
        seconds: 0.0,
        overrides: vec![],
        manifest_digest: None,
        command: vec![],
        entries: vec![],
        interrupted: None,
    };
    store.write_journal(&journal).unwrap();
    let other = store.root().join("other.txt");
    store.write_atomic(&other, b"text").unwrap();

    let written = [
        store.record_path(&rec.key),
        store.head_path("s", "base"),
        store.root().join("runs/r1.json"),
        store.root().join("format-version"),
        other,
    ];
    for path in &written {
        assert_eq!(mode(path), expected, "`{path}`");
    }
    let object = store.object_path(&rec.outputs["model.safetensors"].digest);
    assert_eq!(mode(&object), expected & !0o222, "`{object}`");
}
