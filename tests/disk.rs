//! A full disk and a read-only store, on a small tmpfs (the tests run as root, so permissions
//! would not stop a write): a clear error naming the path, a nonzero exit, nothing partial
//! committed, and once there is room again the next run finishes with the same results.
//!
//! Mounting needs root (CAP_SYS_ADMIN). Where `mount` fails the test says why on stderr and
//! passes, unless `TARUN_REQUIRE_TMPFS` is set, where it fails instead of skipping. (Root is not
//! always enough: a container without CAP_SYS_ADMIN cannot mount, and a red CI for a missing
//! capability would block every change.)

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{
    SMALL, TINY, assert_intact, count, fresh_outputs, journals, run, run_ok, tarun, tmp_files, walk,
};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, kib: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs {
            dir: dir.to_owned(),
        })
    }

    /// `mount -o remount,OPTIONS`: a new size, `ro` or `rw`; what is on it stays.
    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount,{options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn a_full_or_read_only_store_fails_clearly_and_commits_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    if let Err(why) = Tmpfs::mount(&dir.path().join("probe"), 64) {
        assert!(
            std::env::var_os("TARUN_REQUIRE_TMPFS").is_none(),
            "TARUN_REQUIRE_TMPFS is set, but a tmpfs cannot be mounted: {why}"
        );
        eprintln!("skipped: cannot mount a tmpfs ({why}); run as root to test a full disk");
        return;
    }
    let reference_store = dir.path().join("reference");
    run_ok(&reference_store, TINY, &[SMALL]);
    let reference = fresh_outputs(&reference_store, TINY);
    let total: u64 = walk(&reference_store)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();

    // Too small for anything; room for about one network; for about two of the three.
    let mut seen = vec![];
    for kib in [16, total / 3 / 1024, total * 2 / 3 / 1024] {
        let context = format!("{kib} KiB");
        let mount = Tmpfs::mount(&dir.path().join(format!("full-{kib}")), kib).unwrap();
        let store = mount.dir.join("store");
        let out = run(&store, TINY, &[SMALL]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(1 | 3)),
            "{context}: {:?} {err}",
            out.status
        );
        assert!(err.contains("No space left on device"), "{context}: {err}");
        assert!(err.contains(store.to_str().unwrap()), "{context}: {err}");
        assert_intact(&store, &context);
        let survived = fresh_outputs(&store, TINY);
        for (id, outputs) in &survived {
            assert_eq!(Some(outputs), reference.get(id), "{context}: `{id}`");
        }

        // With room again, the next run reuses what committed and finishes the same.
        mount.remount(&format!("size={}k", total * 4 / 1024));
        run_ok(&store, TINY, &[SMALL]);
        let resumed = journals(&store).pop().unwrap();
        assert_eq!(count(&resumed, "cached"), survived.len(), "{context}");
        assert_eq!(fresh_outputs(&store, TINY), reference, "{context}");
        // Whatever the failure left in tmp/ is swept by gc.
        tarun(&store).args(["gc", TINY]).assert().success();
        assert!(tmp_files(&store).is_empty(), "{context}");
        assert_intact(&store, &context);
        seen.push((kib, out.status.code().unwrap(), survived.len()));
    }
    assert_eq!(seen[0].2, 0, "nothing fits in 16 KiB: {seen:?}");
    assert!(
        seen.iter().any(|s| s.2 > 0),
        "some nodes committed: {seen:?}"
    );
    eprintln!("full disk: (KiB, exit code, nodes committed) = {seen:?}");

    // Nearly full: a rerun of the last node with 0, 1, 2 and 3 pages free runs out of space in
    // its output file or in a store write (record, head or journal), or has room. Its old record
    // must stay whole either way.
    let mount = Tmpfs::mount(&dir.path().join("near-full"), total * 4 / 1024).unwrap();
    let store = mount.dir.join("store");
    support::copy_dir(&reference_store, &store);
    let mut outcomes = vec![];
    for pages in 0..4 {
        let context = format!("{pages} pages free");
        mount.remount(&format!("size={}", used_bytes(&mount.dir) + pages * 4096));
        let out = rerun_last(&store);
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            assert!(err.contains("No space left on device"), "{context}: {err}");
            assert!(err.contains(store.to_str().unwrap()), "{context}: {err}");
        }
        assert_intact(&store, &context);
        assert_eq!(fresh_outputs(&store, TINY), reference, "{context}");
        outcomes.push(out.status.code().unwrap());
    }
    // The sweep must cross from failing to succeeding, or it tested nothing near the edge.
    assert_ne!(outcomes[0], 0, "{outcomes:?}");
    assert_ne!(outcomes[1], 0, "{outcomes:?}");
    assert_eq!(outcomes.last(), Some(&0), "{outcomes:?}");
    mount.remount(&format!("size={}k", total * 4 / 1024));
    assert!(rerun_last(&store).status.success());
    tarun(&store).args(["gc", TINY]).assert().success();
    assert!(tmp_files(&store).is_empty());
    assert_eq!(fresh_outputs(&store, TINY), reference);
    eprintln!("near full: exit codes with 0..4 pages free: {outcomes:?}");
    drop(mount);

    // A read-only store: `run` and `gc` refuse, saying why and where; reading commands work.
    let mount = Tmpfs::mount(&dir.path().join("read-only"), total * 4 / 1024).unwrap();
    let store = mount.dir.join("store");
    run_ok(&store, TINY, &["base[arch=resnet18]"]);
    mount.remount("ro");
    for args in [
        support::run_args(TINY, &[SMALL]),
        vec!["gc".to_owned(), TINY.to_owned()],
    ] {
        let out = tarun(&store).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains("Read-only file system"), "{args:?}: {err}");
        assert!(err.contains(store.to_str().unwrap()), "{args:?}: {err}");
    }
    assert_intact(&store, "read-only");
    assert_eq!(fresh_outputs(&store, TINY).len(), 1);
    mount.remount("rw");
    run_ok(&store, TINY, &[SMALL]);
    let resumed = journals(&store).pop().unwrap();
    assert_eq!(count(&resumed, "cached"), 1);
    assert_eq!(fresh_outputs(&store, TINY), reference);
}

/// Bytes in use on the filesystem of `dir`, as `df` counts them.
fn used_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=used"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap().trim().parse().unwrap()
}

/// `run` of the small target with its last node forced.
fn rerun_last(store: &Path) -> std::process::Output {
    tarun(store)
        .args(support::run_args(TINY, &[SMALL]))
        .args(["--force", SMALL])
        .output()
        .unwrap()
}
