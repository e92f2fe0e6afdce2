//! `tarun status`'s listing (issue 24, item 8): by default only the nodes that are not fresh and
//! a one-line summary, `--all` for every node, `--state` to choose states, `--check` exiting 1
//! when a run would run anything (for CI), and no line ending in spaces.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::{report_study, run_ok, tarun};

/// The 3-node study (`base`, `base-eval`, `summary`), written to a temporary folder with its
/// store beside it.
struct Study {
    _dir: tempfile::TempDir,
    store: PathBuf,
    manifest: String,
}

impl Study {
    fn new() -> Study {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let manifest = dir.path().join("status.toml");
        std::fs::write(&manifest, report_study("status", "status")).unwrap();
        let manifest = manifest.to_str().unwrap().to_owned();
        Study {
            _dir: dir,
            store,
            manifest,
        }
    }

    /// The study with every node run.
    fn run() -> Study {
        let study = Study::new();
        run_ok(&study.store, &study.manifest, &[]);
        study
    }

    /// `tarun status M ARGS...`.
    fn status(&self, args: &[&str]) -> Output {
        status(&self.store, &self.manifest, args)
    }

    /// `tarun status M ARGS...`'s stdout, asserting exit 0.
    fn text(&self, args: &[&str]) -> String {
        let out = self.status(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

fn status(store: &Path, manifest: &str, args: &[&str]) -> Output {
    tarun(store)
        .args(["status", manifest])
        .args(args)
        .output()
        .unwrap()
}

/// The change that leaves `base` fresh and makes `base-eval` and `summary` stale.
const FORGET_3: [&str; 2] = ["--set", "evaluate.base-eval.forget=3"];

/// Each listed node's (state, id), and the summary: the lines before the blank line, and the
/// last line.
fn parse(text: &str) -> (Vec<(String, String)>, String) {
    let lines: Vec<&str> = text.lines().collect();
    let summary = (*lines.last().unwrap_or_else(|| panic!("no output"))).to_owned();
    let nodes = lines
        .iter()
        .take_while(|l| !l.is_empty())
        .filter(|l| **l != summary)
        .map(|l| {
            let mut words = l.split_whitespace();
            let state = words.next().unwrap().to_owned();
            let id = words.next().unwrap_or_else(|| panic!("no id in `{l}`"));
            (state, id.to_owned())
        })
        .collect();
    (nodes, summary)
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(s, id)| ((*s).to_owned(), (*id).to_owned()))
        .collect()
}

fn json_ids(out: &Output) -> Vec<String> {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn by_default_only_nodes_that_would_run_are_listed_with_a_summary() {
    let study = Study::new();
    let (nodes, summary) = parse(&study.text(&[]));
    assert_eq!(
        nodes,
        pairs(&[
            ("missing", "base"),
            ("missing", "base-eval"),
            ("missing", "summary")
        ])
    );
    assert_eq!(summary, "3 nodes: 3 missing");

    let study = Study::run();
    let text = study.text(&[]);
    assert_eq!(text, "3 nodes: all fresh\n", "one line when all is fresh");

    // A changed evaluation: it and the report it feeds, not the training it reads.
    let text = study.text(&FORGET_3);
    let (nodes, summary) = parse(&text);
    assert_eq!(
        nodes,
        pairs(&[("stale", "base-eval"), ("stale", "summary")]),
        "{text}"
    );
    assert_eq!(summary, "3 nodes: 1 fresh, 2 stale", "{text}");
    let eval = text.lines().find(|l| l.contains("base-eval")).unwrap();
    assert!(eval.contains("forget"), "the cause is kept: {eval}");
}

#[test]
fn all_lists_every_node() {
    let study = Study::run();
    let text = study.text(&["--all"]);
    let (nodes, summary) = parse(&text);
    assert_eq!(
        nodes,
        pairs(&[
            ("fresh", "base"),
            ("fresh", "base-eval"),
            ("fresh", "summary")
        ]),
        "{text}"
    );
    assert_eq!(summary, "3 nodes: all fresh");

    let mut args = vec!["--all"];
    args.extend(FORGET_3);
    let (nodes, summary) = parse(&study.text(&args));
    assert_eq!(
        nodes,
        pairs(&[
            ("fresh", "base"),
            ("stale", "base-eval"),
            ("stale", "summary")
        ])
    );
    assert_eq!(summary, "3 nodes: 1 fresh, 2 stale");
}

#[test]
fn state_chooses_the_states_listed_in_text_and_json() {
    let study = Study::run();
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = FORGET_3.to_vec();
        args.extend(extra);
        args.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<String>>()
    };
    let text = |extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        study.text(&args)
    };

    let (nodes, summary) = parse(&text(&["--state", "fresh"]));
    assert_eq!(nodes, pairs(&[("fresh", "base")]));
    assert_eq!(
        summary, "3 nodes: 1 fresh, 2 stale",
        "the summary is the study's"
    );

    let stale_or_missing = pairs(&[("stale", "base-eval"), ("stale", "summary")]);
    let (nodes, _) = parse(&text(&["--state", "stale,missing"]));
    assert_eq!(nodes, stale_or_missing, "comma list");
    let (nodes, _) = parse(&text(&["--state", "missing", "--state", "stale"]));
    assert_eq!(nodes, stale_or_missing, "repeated");

    // Nothing in that state: the summary alone.
    assert_eq!(text(&["--state", "blocked"]), "3 nodes: 1 fresh, 2 stale\n");

    // JSON lists every node unless `--state` chooses.
    let json = |extra: &[&str]| {
        let mut args = with(extra);
        args.push("--json".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = study.status(&args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        json_ids(&out)
    };
    assert_eq!(json(&[]), ["base", "base-eval", "summary"]);
    assert_eq!(json(&["--state", "fresh"]), ["base"]);
    assert_eq!(json(&["--state", "stale"]), ["base-eval", "summary"]);

    // Unknown states and contradictory options are usage errors.
    for args in [
        &["--state", "gone"][..],
        &["--all", "--state", "fresh"],
        &["--explain", "base", "--state", "fresh"],
    ] {
        let out = study.status(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn check_exits_1_while_anything_would_run_and_0_once_it_ran() {
    let study = Study::new();
    let code = |args: &[&str]| {
        let mut all = vec!["--check"];
        all.extend(args);
        study.status(&all)
    };
    let out = code(&[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("3 nodes: 3 missing\n"),
        "{out:?}"
    );
    let out = code(&["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(json_ids(&out).len(), 3, "--check keeps the output options");

    let out = tarun(&study.store)
        .args(["run", &study.manifest, "--no-progress"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let out = code(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3 nodes: all fresh\n");
    for args in [&["--json"][..], &["--all"], &["--explain", "summary"]] {
        let out = code(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    }

    // Fresh again until a change would rerun something; the listing filter does not matter.
    let out = code(&FORGET_3);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let mut args = FORGET_3.to_vec();
    args.extend(["--state", "fresh"]);
    let out = code(&args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Without --check, status succeeds whatever the states.
    let out = study.status(&FORGET_3);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn no_line_ends_in_whitespace() {
    let study = Study::new();
    let check = |args: &[&str]| {
        let out = study.status(args);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.is_empty(), "{args:?}");
        for line in text.lines() {
            assert_eq!(
                line,
                line.trim_end(),
                "tarun status {args:?}: trailing whitespace in `{line}`"
            );
        }
    };
    check(&[]);
    // Fresh nodes have no causes: their padded id column must not leave spaces behind.
    let out = tarun(&study.store)
        .args(["run", &study.manifest, "--no-progress", "--target", "base"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    check(&[]);
    check(&["--all"]);
    check(&["--state", "fresh"]);
    check(&FORGET_3);
    check(&["--explain", "base"]);
}

/// A `select` whose `score` misspells a metric, and one whose `require` reads a metric its `over`
/// node does not compute, fail when the manifest loads (`status`, `run --dry-run`) with the
/// file, line and column of the expression, before anything runs.
#[test]
fn select_expressions_are_checked_when_the_manifest_loads() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let manifest = dir.path().join("typo.toml");
    // The select's `score` is on line 33 of the file, `require` on 34.
    let text = format!(
        "{}\n[select.best]\nover = \"base-eval\"\nscore = \"retain-ac - forget-acc\"\n\
         require = [\"kl-forget < 1\"]\n",
        report_study("typo", "typo").trim_end()
    );
    std::fs::write(&manifest, text).unwrap();
    let manifest = manifest.to_str().unwrap();
    for args in [vec!["status", manifest], vec!["run", manifest, "--dry-run"]] {
        let out = tarun(&store).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            err.contains("unknown metric `retain-ac` in `score`"),
            "{args:?}: {err}"
        );
        assert!(err.contains("did you mean `retain-acc`?"), "{err}");
        assert!(err.contains("typo.toml:33:9"), "{err}");
        assert!(
            err.contains("`require` reads `kl-forget`, which `base-eval` does not write"),
            "{err}"
        );
        assert!(err.contains("typo.toml:34:12"), "{err}");
        assert!(err.contains("tarun::manifest::unknown_metric"), "{err}");
    }
    assert!(!store.join("records").exists(), "nothing ran");
}
