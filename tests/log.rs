//! `tarun log` (issue 19, item 3): each run's command, overrides and manifest digest, and
//! `--trace RUN`, the timeline of the nodes a run started.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{report_study, run_ok_with, tarun};

/// The 3-node study (`base` -> `base-eval`, both -> `summary`), its recipe in an included file.
struct Study {
    _dir: tempfile::TempDir,
    store: PathBuf,
    manifest: PathBuf,
    include: PathBuf,
}

impl Study {
    fn new() -> Study {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("log.toml");
        let include = dir.path().join("recipes.toml");
        let study =
            report_study("log", "log").replace("[recipe.base]\nlr = 3e-3\n", "[recipe.base]\n");
        let study = study.replace(
            "protocol = \"seed\"\n",
            "protocol = \"seed\"\ninclude = [\"recipes.toml\"]\n",
        );
        std::fs::write(&manifest, study).unwrap();
        std::fs::write(&include, "[recipe.base]\nlr = 3e-3\n").unwrap();
        Study {
            store: dir.path().join("store"),
            _dir: dir,
            manifest,
            include,
        }
    }

    fn manifest(&self) -> &str {
        self.manifest.to_str().unwrap()
    }

    fn log(&self, args: &[&str]) -> std::process::Output {
        tarun(&self.store).arg("log").args(args).output().unwrap()
    }

    fn log_text(&self, args: &[&str]) -> String {
        let out = self.log(args);
        assert_eq!(out.status.code(), Some(0), "log {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The digest `tarun log` shows, computed here from the files: blake3 over each file read (the
/// manifest, then its include), as its length in 8 little-endian bytes and its bytes.
fn files_digest(files: &[&Path]) -> String {
    let mut hasher = blake3::Hasher::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    hasher.finalize().to_hex()[..12].to_owned()
}

/// The lines of the run listed `n`-th (0 = oldest): its header line and its indented facts.
fn run_block(text: &str, n: usize) -> Vec<String> {
    let mut blocks: Vec<Vec<String>> = vec![];
    for line in text.lines() {
        if line.starts_with(' ') {
            blocks.last_mut().unwrap().push(line.trim().to_owned());
        } else {
            blocks.push(vec![line.to_owned()]);
        }
    }
    blocks.swap_remove(n)
}

#[test]
fn each_run_shows_its_command_overrides_and_manifest_digest() {
    let s = Study::new();
    run_ok_with(&s.store, s.manifest(), &[], &[]);
    let first = files_digest(&[&s.manifest, &s.include]);
    run_ok_with(
        &s.store,
        s.manifest(),
        &[],
        &["--set", "evaluate.base-eval.forget=3"],
    );
    // The include changes: another digest, whatever the overrides.
    std::fs::write(&s.include, "[recipe.base]\nlr = 1e-3\n").unwrap();
    run_ok_with(&s.store, s.manifest(), &[], &[]);
    let third = files_digest(&[&s.manifest, &s.include]);
    assert_ne!(first, third);

    let text = s.log_text(&[]);
    let runs: Vec<Vec<String>> = (0..3).map(|n| run_block(&text, n)).collect();
    let command = |args: &str| format!(" run {} --no-progress{args}", s.manifest());
    assert!(runs[0][1].starts_with("command: "), "{:?}", runs[0]);
    assert!(runs[0][1].ends_with(&command("")), "{:?}", runs[0]);
    assert_eq!(runs[0][2], format!("manifest: {first}"));
    assert!(
        runs[1][1].ends_with(&command(" --set evaluate.base-eval.forget=3")),
        "{:?}",
        runs[1]
    );
    assert_eq!(runs[1][2], "overrides: evaluate.base-eval.forget=3");
    assert_eq!(runs[1][3], format!("manifest: {first}"));
    assert_eq!(runs[2][2], format!("manifest: {third}"));

    let json: Value = serde_json::from_str(&s.log_text(&["--json"])).unwrap();
    let digests: Vec<&str> = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["manifest-digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests[0][..12], first);
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[2][..12], third);
}

/// One row of `--trace`'s TSV.
#[derive(Debug)]
struct Row {
    node: String,
    outcome: String,
    device: String,
    start: f64,
    end: f64,
    seconds: f64,
    peak: Option<f64>,
}

fn trace_rows(text: &str) -> Vec<Row> {
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "node\toutcome\tdevice\tstart-s\tend-s\tseconds\tpeak-rss-mb\tpeak-rss-shared\tattempts"
    );
    lines
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 9, "{l}");
            Row {
                node: c[0].into(),
                outcome: c[1].into(),
                device: c[2].into(),
                start: c[3].parse().unwrap(),
                end: c[4].parse().unwrap(),
                seconds: c[5].parse().unwrap(),
                peak: c[6].parse().ok(),
            }
        })
        .collect()
}

#[test]
fn the_trace_is_each_started_node_in_time_after_its_inputs() {
    let s = Study::new();
    run_ok_with(&s.store, s.manifest(), &[], &[]);
    let rows = trace_rows(&s.log_text(&["--trace", "last"]));
    let ids: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(ids, ["base", "base-eval", "summary"]);
    for r in &rows {
        assert_eq!((r.outcome.as_str(), r.device.as_str()), ("ran", "cpu"));
        assert!(0.0 <= r.start && r.start <= r.end, "{r:?}");
        // The driver's span holds the job's time, plus a hand-over of well under a second.
        assert!(r.end - r.start >= r.seconds - 0.002, "{r:?}");
        assert!(r.end - r.start <= r.seconds + 1.0, "{r:?}");
        if cfg!(target_os = "linux") {
            let mb = r.peak.unwrap_or_else(|| panic!("no peak memory: {r:?}"));
            assert!(mb > 1.0 && mb < 64_000.0, "{r:?}");
        }
    }
    // Each node starts after the inputs it waited for ended.
    assert!(rows[1].start >= rows[0].end, "{rows:?}");
    assert!(rows[2].start >= rows[1].end, "{rows:?}");

    // The JSON form holds the same timeline, with timestamps.
    let json: Value = serde_json::from_str(&s.log_text(&["--trace", "last", "--json"])).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for (n, r) in nodes.iter().zip(&rows) {
        assert_eq!(n["node"], r.node.as_str());
        assert!((n["start-s"].as_f64().unwrap() - r.start).abs() < 0.001);
        assert!((n["end-s"].as_f64().unwrap() - r.end).abs() < 0.001);
        assert!(n["started"].as_str().unwrap().ends_with('Z'));
    }
    let run_id = json["run-id"].as_str().unwrap().to_owned();

    // A run that found everything cached started nothing.
    run_ok_with(&s.store, s.manifest(), &[], &[]);
    assert!(trace_rows(&s.log_text(&["--trace", "last"])).is_empty());
    // The first run, by a prefix of its id.
    let by_prefix = trace_rows(&s.log_text(&["--trace", &run_id[..run_id.len() - 1]]));
    assert_eq!(by_prefix.len(), 3);

    let out = s.log(&["--trace", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no run `nope`"), "{err}");
}
