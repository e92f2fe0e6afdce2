//! What `tarun run` says while it goes (issue 24, item 6), where stderr is not a terminal (a
//! log file, CI, a Slurm output): `-q` only the summary, warnings and failures; the default a
//! line for each node's start and end, the end with the study's progress and time left; `-v`
//! also the per-epoch lines. And the closing `warnings:` block.

mod support;

use std::path::Path;

use support::{report_study, tarun};

/// A study with a `select` node whose requirement no candidate meets (`BEST_EFFORT`).
fn study_with_best_effort() -> String {
    report_study("progress", "progress")
        + r#"
[recipe.expert]
lr = 1e-3
epochs = 1
batch-size = 32

[expert.expert]
from = "base"
only = [8]
recipe = "expert"

[ablate.candidate]
base = "base"
vectors = [{ expert = "expert", alpha = -1.0, rho = 0.5 }]

[evaluate.candidate-score]
model = "candidate"
forget = 8
metrics = ["forget-acc", "retain-acc"]

[select.best]
over = "candidate-score"
score = "retain-acc"
require = ["retain-acc > 1000"]
"#
}

fn run(store: &Path, manifest: &Path, extra: &[&str]) -> String {
    let out = tarun(store)
        .arg("run")
        .arg(manifest)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn verbosity_decides_the_lines_and_warnings_close_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("progress.toml");
    std::fs::write(&manifest, study_with_best_effort()).unwrap();

    // -v: each start, each end with the study's count, and the per-epoch lines.
    let verbose = run(&dir.path().join("v"), &manifest, &["-v"]);
    assert!(verbose.contains("start   base on cpu"), "{verbose}");
    assert!(verbose.contains("  base: epoch 1: loss "), "{verbose}");
    let done = verbose
        .lines()
        .find(|l| l.starts_with("done    base "))
        .unwrap_or_else(|| panic!("no line for base's end in\n{verbose}"));
    assert!(done.contains("[1/7 nodes"), "{done}");
    let last = verbose.lines().rfind(|l| l.starts_with("done ")).unwrap();
    assert!(last.contains("[7/7 nodes"), "{last}");
    // The closing block names the best-effort selection and what it chose.
    let warnings = verbose
        .split_once("\nwarnings:\n")
        .unwrap_or_else(|| panic!("no warnings block in\n{verbose}"))
        .1;
    assert!(
        warnings.contains("  - `best` chose `candidate-score` as BEST_EFFORT"),
        "{warnings}"
    );

    // The default: each node's start and end, no per-epoch lines off a terminal.
    let normal = run(&dir.path().join("n"), &manifest, &[]);
    assert!(normal.contains("start   base on cpu"), "{normal}");
    assert!(normal.contains("done    base "), "{normal}");
    assert!(!normal.contains("epoch 1:"), "{normal}");
    assert!(normal.contains("warnings:"), "{normal}");

    // -q: the summary and the warnings only. Cached, the selection still warns.
    let quiet = run(&dir.path().join("n"), &manifest, &["-q"]);
    let lines: Vec<&str> = quiet.lines().collect();
    assert!(lines[0].starts_with("run "), "{quiet}");
    assert!(lines[0].contains("0 ran, 7 cached"), "{quiet}");
    assert_eq!(lines[1], "warnings:", "{quiet}");
    assert!(
        lines[2].contains("`best` chose `candidate-score` as BEST_EFFORT (cached)"),
        "{quiet}"
    );
    assert!(lines[3].starts_with("report: "), "{quiet}");
    assert_eq!(lines.len(), 4, "{quiet}");
}

#[test]
fn quiet_and_verbose_together_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("progress.toml");
    std::fs::write(&manifest, report_study("progress", "progress")).unwrap();
    let out = tarun(&dir.path().join("s"))
        .arg("run")
        .arg(&manifest)
        .args(["-q", "-v"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
