//! Kills at chosen points: `TARUN_FAULT=<point>@<n>` (see `crates/tarun-core/src/fault.rs`)
//! SIGKILLs tarun between two steps of a store write, or in the middle of `gc`. After each kill
//! the store verifies clean, no record points at a missing or partial object, the next run
//! reuses every node that had committed, and the final outputs are byte-identical to an
//! uninterrupted run's.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use support::{
    SHARED, SMALL, TINY, assert_intact, copy_dir, count, fresh_outputs, journals, run_args, run_ok,
    tarun, tmp_files,
};

/// Runs `args` with the fault armed and asserts that it hit the point and died of SIGKILL.
fn crash_at(store: &Path, point: &str, args: &[String]) {
    let out = tarun(store)
        .env("TARUN_FAULT", point)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "`{point}` was never reached ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Points in the write path of `tarun run` of the 5-node part of the tiny study. Each node
/// commits one object per output, then its record, then its head; the journal is rewritten after
/// every node and at the end.
const RUN_POINTS: [&str; 10] = [
    "object-before-rename@1",
    "object-before-dir-sync@3",
    "record-half-written@1",
    "record-half-written@4",
    "record-before-rename@2",
    "record-before-dir-sync@3",
    "head-before-rename@1",
    "head-before-rename@5",
    "journal-half-written@2",
    "journal-before-rename@6",
];

#[test]
fn a_crash_at_each_step_of_a_commit_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reference_store = dir.path().join("reference");
    run_ok(&reference_store, TINY, &[SMALL]);
    let reference = fresh_outputs(&reference_store, TINY);
    assert_eq!(reference.len(), 5, "{reference:?}");

    let mut committed = vec![];
    for point in RUN_POINTS {
        let store = dir.path().join(point.replace('@', "-"));
        crash_at(&store, point, &run_args(TINY, &[SMALL]));
        assert_intact(&store, point);
        let survived = fresh_outputs(&store, TINY);
        for (id, outputs) in &survived {
            assert_eq!(
                Some(outputs),
                reference.get(id),
                "{point}: `{id}` committed other outputs"
            );
        }
        run_ok(&store, TINY, &[SMALL]);
        let resumed = journals(&store).pop().unwrap();
        assert_eq!(
            count(&resumed, "cached"),
            survived.len(),
            "{point}: every committed node is reused"
        );
        assert_eq!(count(&resumed, "ran"), 5 - survived.len(), "{point}");
        assert_eq!(fresh_outputs(&store, TINY), reference, "{point}");
        assert_intact(&store, point);
        committed.push(survived.len());
    }
    // The points must spread over the run, or they test one moment many times.
    assert_eq!(committed.first(), Some(&0), "{committed:?}");
    assert_eq!(committed.last(), Some(&5), "{committed:?}");
    assert!(committed.iter().any(|&c| c > 0 && c < 5), "{committed:?}");
    eprintln!(
        "{} kill points; nodes committed at each: {committed:?}",
        RUN_POINTS.len()
    );
}

/// Points inside `gc`. The store holds both studies; `gc` of the second removes what only the
/// first needs (three records and their objects) and a leftover in `tmp/`.
const GC_POINTS: [&str; 5] = [
    "gc-after-record@1",
    "gc-after-record@2",
    "gc-after-object@1",
    "gc-after-object@2",
    "gc-before-tmp-sweep",
];

#[test]
fn a_crash_inside_gc_never_loses_a_kept_node() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    run_ok(&pristine, SHARED, &[]);
    run_ok(&pristine, TINY, &[SMALL]);
    let shared = fresh_outputs(&pristine, SHARED);
    let tiny = fresh_outputs(&pristine, TINY);
    assert_eq!((shared.len(), tiny.len()), (7, 7), "{shared:?} {tiny:?}");
    std::fs::write(pristine.join("tmp").join("leftover"), b"from a killed run").unwrap();

    let gc = ["gc".to_owned(), SHARED.to_owned()];
    let mut removed_before_kill = vec![];
    for point in GC_POINTS {
        let store = dir.path().join(point.replace('@', "-"));
        copy_dir(&pristine, &store);
        crash_at(&store, point, &gc);
        assert_intact(&store, point);
        assert_eq!(
            fresh_outputs(&store, SHARED),
            shared,
            "{point}: gc lost a node it keeps"
        );
        let survived = fresh_outputs(&store, TINY);
        for (id, outputs) in &survived {
            assert_eq!(Some(outputs), tiny.get(id), "{point}: `{id}`");
        }
        removed_before_kill.push(records(&pristine) - records(&store));

        // The next run recomputes what gc removed, to the same bytes. (A node whose record
        // survived while an input's was removed shows as stale, but is found cached once the
        // input is recomputed to the same bytes: more may be cached than `survived` says.)
        run_ok(&store, TINY, &[SMALL]);
        let resumed = journals(&store).pop().unwrap();
        let small_survivors = survived.keys().filter(|id| !id.contains("manual")).count();
        let cached = count(&resumed, "cached");
        assert!(cached >= small_survivors, "{point}: {cached} cached");
        assert_eq!(cached + count(&resumed, "ran"), 5, "{point}");
        assert_eq!(fresh_outputs(&store, TINY), tiny, "{point}");

        // And a gc that is not killed finishes the job.
        tarun(&store).args(&gc).assert().success();
        assert_intact(&store, point);
        assert_eq!(fresh_outputs(&store, SHARED), shared, "{point}");
        assert!(tmp_files(&store).is_empty(), "{point}: tmp/ swept");
    }
    assert_eq!(
        removed_before_kill.first(),
        Some(&1),
        "{removed_before_kill:?}"
    );
    assert_eq!(
        removed_before_kill.last(),
        Some(&3),
        "{removed_before_kill:?}"
    );
    eprintln!(
        "{} gc kill points; records removed at each: {removed_before_kill:?}",
        GC_POINTS.len()
    );
}

fn records(store: &Path) -> usize {
    std::fs::read_dir(store.join("records")).unwrap().count()
}
