//! The report view `tarun run` prints (`<store>/reports/<study>/<id>/`) follows the current
//! manifest, also when the report node is cached: after `--set`, run, then a run without it, the
//! view holds the first run's report again, not the reverted run's (issue 24, item 1).

mod support;

use std::path::Path;

use support::{count, journals, report_study, tarun};

/// Runs and returns stderr, asserting success.
fn run(store: &Path, manifest: &Path, extra: &[&str]) -> String {
    let out = tarun(store)
        .arg("run")
        .arg(manifest)
        .arg("--no-progress")
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn read(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join("report.html")).unwrap(),
        std::fs::read(dir.join("report.md")).unwrap(),
    )
}

#[test]
fn a_cached_report_refreshes_the_view_after_a_revert() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let manifest = tmp.path().join("view.toml");
    std::fs::write(&manifest, report_study("view", "first title")).unwrap();
    let view = store.join("reports/view/summary");

    let first_err = run(&store, &manifest, &[]);
    let first = read(&view);
    assert!(String::from_utf8_lossy(&first.1).contains("first title"));

    run(
        &store,
        &manifest,
        &["--set", "report.summary.title=\"second title\""],
    );
    let second = read(&view);
    assert!(String::from_utf8_lossy(&second.1).contains("second title"));
    assert_ne!(second, first);

    let third_err = run(&store, &manifest, &[]);
    let runs = journals(&store);
    let last = runs.last().unwrap();
    assert_eq!(count(last, "ran"), 0, "the reverted run computed nodes");
    assert_eq!(
        read(&view),
        first,
        "the view still shows the `--set` run's report"
    );

    // What `tarun export` copies out of the store for the current key is what the view shows.
    let export = tmp.path().join("export");
    let out = tarun(&store)
        .arg("export")
        .arg(&manifest)
        .arg("summary")
        .arg("--to")
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(&export.join("summary")), first);

    // The path printed is the view's, on the cached run as on the first.
    let printed = format!("report: {}", view.join("report.html").display());
    assert!(first_err.contains(&printed), "{first_err}");
    assert!(third_err.contains(&printed), "{third_err}");
}

/// A no-op run leaves view files that already match alone (no rewrite).
#[cfg(unix)]
#[test]
fn a_no_op_run_does_not_rewrite_the_view() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let manifest = tmp.path().join("view.toml");
    std::fs::write(&manifest, report_study("view", "first title")).unwrap();
    let view = store.join("reports/view/summary");
    run(&store, &manifest, &[]);
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    };
    let before = inode(&view.join("report.html"));
    run(&store, &manifest, &[]);
    assert_eq!(
        inode(&view.join("report.html")),
        before,
        "the view was rewritten"
    );
    // A view file edited (or damaged) by hand is put back.
    std::fs::write(view.join("report.md"), b"edited").unwrap();
    run(&store, &manifest, &[]);
    assert_ne!(std::fs::read(view.join("report.md")).unwrap(), b"edited");
}

/// A figure only the older report drew leaves the view when the current report lacks it: the
/// folder shows one report, not a mix of two.
#[test]
fn the_view_holds_only_the_current_reports_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let manifest = tmp.path().join("view.toml");
    std::fs::write(&manifest, report_study("view", "first title")).unwrap();
    let view = store.join("reports/view/summary");
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let store_files = |m: &Path| -> Vec<String> {
        let export = tmp.path().join(format!("export-{}", names(&view).len()));
        let out = tarun(&store)
            .arg("export")
            .arg(m)
            .arg("summary")
            .arg("--to")
            .arg(&export)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        names(&export.join("summary"))
    };

    run(&store, &manifest, &[]);
    let both = names(&view);
    assert!(
        both.iter().any(|n| n.starts_with("timeline-")),
        "two inputs draw a timeline: {both:?}"
    );
    assert_eq!(both, store_files(&manifest));

    // One input: no timeline figure in this report, so none in its view.
    let one = ["--set", "report.summary.inputs=[\"base\"]"];
    run(&store, &manifest, &one);
    let single = names(&view);
    assert!(
        !single.iter().any(|n| n.starts_with("timeline-")),
        "{single:?}"
    );
    assert!(single.contains(&"report.html".to_owned()), "{single:?}");
    // And back: the cached two-input report's files, all of them.
    run(&store, &manifest, &[]);
    assert_eq!(names(&view), both);
}
