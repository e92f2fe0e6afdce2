//! `tarun compare A B` (issue 19, item 2): an alpha and a learning rate changed through
//! `--set-b`, and a manifest (and a file it includes) at a git revision. The changed nodes and
//! their causes are checked against what the edit invalidates, and the metric deltas against the
//! stored `metrics.json` files of both sides, read here through `tarun export`. Two recorded runs
//! compare by their ids (item 3) as their manifests do.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::{journals, run_ok_with, tarun};

/// A base network, one expert, two task-arithmetic points and an evaluation of each model:
/// 7 nodes, about a second on the CPU. (At this scale many alphas give the same metrics; -1.5
/// and -2.5 do not.)
const MANIFEST: &str = r#"
[study]
name = "compare"
seed = 7
protocol = "seed"

[data]
source = "synthetic"
train-per-class = 16
test-per-class = 10
validation-per-class = 0

[recipe.base]
lr = 3e-3
epochs = 3
batch-size = 32

[train.base]
arch = "resnet18"
width = 0.0625
recipe = "base"

[expert.expert]
from = "base"
only = [8]
lr = 1e-2
epochs = 3
batch-size = 16

[ablate.manual]
base = "base"
vectors = [{ expert = "expert", alpha = -1.5, rho = 0.8 }]

[ablate.other]
base = "base"
vectors = [{ expert = "expert", alpha = -1.0, rho = 0.5 }]

[evaluate.manual-eval]
model = "manual"
forget = 8
metrics = ["accuracy", "forget-acc", "retain-acc"]

[evaluate.other-eval]
model = "other"
forget = 8
metrics = ["accuracy", "forget-acc", "retain-acc"]

[evaluate.base-eval]
model = "base"
forget = 8
metrics = ["accuracy"]
"#;

const NODES: usize = 7;

/// `manual`'s alpha from -1.5 to -2.5.
const ALPHA: &str = r#"ablate.manual.vectors=[{ expert = "expert", alpha = -2.5, rho = 0.8 }]"#;
/// The expert's learning rate from 1e-2 to 3e-3.
const LR: &str = "expert.expert.lr=3e-3";

struct Study {
    dir: tempfile::TempDir,
    store: PathBuf,
    manifest: String,
}

impl Study {
    fn new() -> Study {
        Study::with(MANIFEST)
    }

    fn with(text: &str) -> Study {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let manifest = dir.path().join("compare.toml");
        std::fs::write(&manifest, text).unwrap();
        let manifest = manifest.to_str().unwrap().to_owned();
        Study {
            dir,
            store,
            manifest,
        }
    }

    /// `tarun run M --set S...`.
    fn run(&self, sets: &[&str]) {
        let extra: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
        run_ok_with(&self.store, &self.manifest, &[], &extra);
    }

    fn compare(&self, args: &[&str]) -> Output {
        tarun(&self.store)
            .arg("compare")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn text(&self, args: &[&str]) -> String {
        let out = self.compare(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.text(&args)).unwrap()
    }

    /// The `metrics` object of each evaluate node's exported `metrics.json`, with `--set S...`.
    fn stored_metrics(&self, sets: &[&str], to: &str) -> BTreeMap<String, Value> {
        self.exported_metrics(sets, to, &["manual-eval", "other-eval", "base-eval"])
    }

    /// [`Study::stored_metrics`] of the nodes (or families) named.
    fn exported_metrics(&self, sets: &[&str], to: &str, nodes: &[&str]) -> BTreeMap<String, Value> {
        let to = self.dir.path().join(to);
        let mut cmd = tarun(&self.store);
        cmd.args(["export", &self.manifest]).args(nodes);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let out = cmd.arg("--to").arg(&to).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut metrics = BTreeMap::new();
        for entry in std::fs::read_dir(&to).unwrap() {
            let dir = entry.unwrap().path();
            let file: Value =
                serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
            let id = dir.file_name().unwrap().to_str().unwrap().to_owned();
            metrics.insert(id, file["metrics"].clone());
        }
        metrics
    }
}

/// Node id -> (status, causes), from `compare --json`.
fn statuses(doc: &Value) -> BTreeMap<String, (String, Vec<String>)> {
    doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let causes = n["causes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            (
                n["node"].as_str().unwrap().to_owned(),
                (n["status"].as_str().unwrap().to_owned(), causes),
            )
        })
        .collect()
}

fn node<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {doc:#}"))
}

/// Asserts that exactly `changed` (id -> causes) are changed, and every other node is same.
fn assert_changed(doc: &Value, changed: &[(&str, &[&str])]) {
    let got = statuses(doc);
    assert_eq!(got.len(), NODES, "{doc:#}");
    for (id, (status, causes)) in &got {
        match changed.iter().find(|(c, _)| c == id) {
            Some((_, expected)) => {
                assert_eq!(status, "changed", "{id}");
                assert_eq!(causes, expected, "{id}");
            }
            None => {
                assert_eq!(status, "same", "{id}: {causes:?}");
                assert!(causes.is_empty(), "{id}: {causes:?}");
            }
        }
    }
    assert_eq!(doc["counts"]["changed"], changed.len(), "{doc:#}");
    assert_eq!(doc["counts"]["same"], NODES - changed.len());
}

/// Every metric row of every evaluate node is B - A of the exported files, all present.
fn assert_deltas(
    doc: &Value,
    a: &BTreeMap<String, Value>,
    b: &BTreeMap<String, Value>,
    changed: &[&str],
) {
    let mut some_nonzero = false;
    for (id, ma) in a {
        let mb = &b[id];
        let n = node(doc, id);
        assert_eq!(n["a"]["computed"], true, "{id}");
        assert_eq!(n["b"]["computed"], true, "{id}");
        let rows = n["metrics"].as_array().unwrap();
        let names: Vec<&str> = ma.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(rows.len(), names.len(), "{id}: {rows:?}");
        for name in names {
            let row = rows.iter().find(|r| r["metric"] == name).unwrap();
            let (x, y) = (ma[name].as_f64().unwrap(), mb[name].as_f64().unwrap());
            assert_eq!(row["a"].as_f64(), Some(x), "{id} {name}");
            assert_eq!(row["b"].as_f64(), Some(y), "{id} {name}");
            assert_eq!(row["delta"].as_f64(), Some(y - x), "{id} {name}");
            some_nonzero |= y != x;
            if !changed.contains(&id.as_str()) {
                assert_eq!(x, y, "{id} {name}: same node, same record");
            }
        }
    }
    assert!(some_nonzero, "the edit changed no metric: {doc:#}");
}

#[test]
fn an_alpha_through_set_changes_its_node_and_downstream_with_deltas_from_the_stored_metrics() {
    let s = Study::new();
    s.run(&[]);
    let changed: &[(&str, &[&str])] = &[
        ("manual", &["params.vectors[0].alpha -1.5 -> -2.5"]),
        ("manual-eval", &["input `manual` changed"]),
    ];
    // B not run yet: the same nodes change, B's are not computed and the summary says what a
    // run would compute.
    let before = s.json(&[&s.manifest, "--set-b", ALPHA]);
    assert_changed(&before, changed);
    assert_eq!(before["b"]["not-computed"], 2);
    assert_eq!(before["a"]["not-computed"], 0);
    assert_eq!(before["b"]["set"], serde_json::json!([ALPHA]));
    let eval = node(&before, "manual-eval");
    assert_eq!(eval["b"]["computed"], false);
    assert!(
        eval["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| { m["b"].is_null() && m["delta"].is_null() && m["a"].is_number() })
    );
    let text = s.text(&[&s.manifest, "--set-b", ALPHA]);
    assert!(
        text.contains("7 nodes in A, 7 in B: 5 same, 2 changed"),
        "{text}"
    );
    assert!(text.contains("not computed"), "{text}");
    assert!(text.contains("A: all 7 nodes computed"), "{text}");
    assert!(
        text.contains("B: 2 of 7 nodes not computed (2 stale): `tarun run "),
        "{text}"
    );

    // Both sides run: the same causes, and every delta is B - A of the stored files.
    s.run(&[ALPHA]);
    let after = s.json(&[&s.manifest, "--set-b", ALPHA]);
    assert_changed(&after, changed);
    assert_eq!(after["b"]["not-computed"], 0);
    let a = s.stored_metrics(&[], "a");
    let b = s.stored_metrics(&[ALPHA], "b");
    assert_deltas(&after, &a, &b, &["manual-eval"]);

    // The same comparison the other way round: A's alpha overridden, B the manifest.
    let reverse = s.json(&[&s.manifest, &s.manifest, "--set-a", ALPHA]);
    assert_eq!(
        statuses(&reverse)["manual"].1,
        ["params.vectors[0].alpha -2.5 -> -1.5"]
    );

    // --only-changed drops the same nodes; --threshold the rows at most that far apart.
    let only = s.json(&[&s.manifest, "--set-b", ALPHA, "--only-changed"]);
    let ids: Vec<&str> = only["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["manual", "manual-eval"]);
    assert_eq!(only["counts"]["same"], 5, "counts are over every node");
    let rows = node(&after, "manual-eval")["metrics"]
        .as_array()
        .unwrap()
        .clone();
    let biggest = rows
        .iter()
        .map(|r| r["delta"].as_f64().unwrap().abs())
        .fold(0.0, f64::max);
    let cut = s.json(&[
        &s.manifest,
        "--set-b",
        ALPHA,
        "--threshold",
        &format!("{}", biggest / 2.0),
    ]);
    for n in cut["nodes"].as_array().unwrap() {
        for m in n["metrics"].as_array().unwrap() {
            assert!(m["delta"].as_f64().unwrap().abs() > biggest / 2.0, "{m}");
        }
    }
    assert!(
        !node(&cut, "manual-eval")["metrics"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        node(&cut, "base-eval")["metrics"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The other formats carry the same rows.
    let csv = s.text(&[&s.manifest, "--set-b", ALPHA, "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("family,node,status,state-a,state-b,causes,metric,a,b,delta")
    );
    let manual_rows = csv
        .lines()
        .filter(|l| l.starts_with("manual-eval,manual-eval,changed,fresh,fresh"))
        .count();
    assert_eq!(manual_rows, a["manual-eval"].as_object().unwrap().len());
    let md = s.text(&[&s.manifest, "--set-b", ALPHA, "--format", "md"]);
    assert!(
        md.contains("| changed | manual | fresh | fresh | params.vectors[0].alpha -1.5 -> -2.5 |"),
        "{md}"
    );
    assert!(
        md.contains("| family | node | metric | A | B | delta |"),
        "{md}"
    );
}

#[test]
fn a_learning_rate_through_set_changes_the_expert_and_everything_built_on_it() {
    let s = Study::new();
    s.run(&[]);
    s.run(&[LR]);
    let doc = s.json(&[&s.manifest, "--set-b", LR]);
    assert_changed(
        &doc,
        &[
            ("expert", &["params.lr 0.01 -> 0.003"]),
            ("manual", &["input `expert` changed"]),
            ("other", &["input `expert` changed"]),
            ("manual-eval", &["input `manual` changed"]),
            ("other-eval", &["input `other` changed"]),
        ],
    );
    let a = s.stored_metrics(&[], "a");
    let b = s.stored_metrics(&[LR], "b");
    assert_deltas(&doc, &a, &b, &["manual-eval", "other-eval"]);
}

/// The ids of the recorded runs, oldest first, and each run's node id -> key, from `tarun log`.
fn runs(s: &Study) -> Vec<(String, BTreeMap<String, String>)> {
    journals(&s.store)
        .iter()
        .map(|j| {
            let keys = j["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["key"].is_string())
                .map(|e| {
                    (
                        e["id"].as_str().unwrap().to_owned(),
                        e["key"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (j["run-id"].as_str().unwrap().to_owned(), keys)
        })
        .collect()
}

#[test]
fn two_runs_of_one_study_compare_by_their_ids() {
    let s = Study::new();
    s.run(&[]);
    s.run(&[ALPHA]);
    let runs = runs(&s);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let ((one, keys_one), (two, keys_two)) = (&runs[0], &runs[1]);
    let changed: &[(&str, &[&str])] = &[
        ("manual", &["params.vectors[0].alpha -1.5 -> -2.5"]),
        ("manual-eval", &["input `manual` changed"]),
    ];
    let doc = s.json(&[one, two]);
    assert_changed(&doc, changed);
    for (side, id, keys) in [("a", one, keys_one), ("b", two, keys_two)] {
        assert_eq!(doc[side]["run-id"], id.as_str());
        assert_eq!(doc[side]["manifest"], s.manifest.as_str());
        assert_eq!(doc[side]["study"], "compare");
        assert_eq!(doc[side]["run"], Value::Null);
        assert_eq!(doc[side]["not-computed"], 0);
        assert_eq!(doc[side]["nodes"], NODES);
        for (node_id, key) in keys {
            assert_eq!(
                node(&doc, node_id)[side]["key"],
                key.as_str(),
                "{side} {node_id}"
            );
        }
    }
    assert_eq!(doc["b"]["set"], serde_json::json!([ALPHA]));
    // The first run computed every node; the second only what the alpha changed.
    assert_eq!(doc["a"]["states"]["ran"], NODES);
    assert_eq!(doc["b"]["states"]["ran"], 2);
    assert_eq!(doc["b"]["states"]["cached"], NODES - 2);
    assert_eq!(node(&doc, "manual")["b"]["state"], "ran");
    assert_eq!(node(&doc, "base")["b"]["state"], "cached");
    assert_eq!(node(&doc, "manual-eval")["family"], "manual-eval");
    // Every delta is B - A of the metrics files each run stored.
    let a = s.stored_metrics(&[], "a");
    let b = s.stored_metrics(&[ALPHA], "b");
    assert_deltas(&doc, &a, &b, &["manual-eval"]);

    // The same with unique prefixes of the ids, and in the table.
    let common = one
        .chars()
        .zip(two.chars())
        .take_while(|(x, y)| x == y)
        .count();
    let unique = |id: &str| id[..(common + 1).max(4)].to_owned();
    let by_prefix = s.json(&[&unique(one), &unique(two)]);
    assert_eq!(statuses(&by_prefix), statuses(&doc));
    let text = s.text(&[one, two]);
    assert!(
        text.contains(&format!("A: run {one} ({}, ", s.manifest)),
        "{text}"
    );
    assert!(
        text.contains(&format!("B: run {two} ({} --set '{ALPHA}', ", s.manifest)),
        "{text}"
    );
    assert!(
        text.contains("7 nodes in A, 7 in B: 5 same, 2 changed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("B: run {two}: 2 ran, 5 cached (7 nodes)")),
        "{text}"
    );
    let manual_eval = &a["manual-eval"]["forget-acc"];
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("manual-eval  forget-acc"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&manual_eval.as_f64().unwrap().to_string()),
        "{line}"
    );

    // A run against a manifest: the run's keys against the manifest's planned ones.
    let mixed = s.json(&[one, &s.manifest, "--set-b", ALPHA]);
    assert_changed(&mixed, changed);
    assert_eq!(mixed["b"]["run-id"], Value::Null);
    let same = s.json(&[two, &s.manifest, "--set-b", ALPHA]);
    assert_changed(&same, &[]);

    // A prefix of both ids names neither; overrides do not apply to a run.
    let prefix = &one[..common.max(4)];
    if two.starts_with(prefix) {
        let out = s.compare(&[prefix, two]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(one.as_str()) && err.contains(two.as_str()),
            "{err}"
        );
    }
    for args in [
        vec![one.as_str(), two, "--set-a", LR],
        vec![one.as_str(), "--set-b", LR],
    ] {
        let out = s.compare(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(one.as_str()), "{args:?}: {err}");
    }
}

/// [`MANIFEST`]'s base and expert, and a 2 x 2 (alpha, rho) grid of task-arithmetic candidates,
/// each evaluated, that a `select` node chooses from: 11 nodes.
const GRID: &str = r#"
[study]
name = "grid"
seed = 7
protocol = "seed"

[data]
source = "synthetic"
train-per-class = 16
test-per-class = 10
validation-per-class = 0

[matrix]
alpha = [-1.0, -2.5]
rho = [0.5, 0.8]

[train.base]
arch = "resnet18"
width = 0.0625
lr = 3e-3
epochs = 3
batch-size = 32

[expert.expert]
from = "base"
only = [8]
lr = 1e-2
epochs = 3
batch-size = 16

[ablate.candidate]
for-each = ["alpha", "rho"]
base = "base"
vectors = [{ expert = "expert", alpha = "${alpha}", rho = "${rho}" }]

[evaluate.candidate-score]
for-each = ["alpha", "rho"]
model = "candidate[alpha=${alpha},rho=${rho}]"
forget = 8
metrics = ["forget-acc", "retain-acc"]

[select.best]
over = "candidate-score"
score = "retain-acc - 1.5 * forget-acc"
require = ["retain-acc > 75", "forget-acc < 20"]
"#;

#[test]
fn an_html_page_holds_both_sides_the_deltas_and_the_grids() {
    let s = Study::with(GRID);
    s.run(&[]);
    s.run(&[LR]);
    let runs = runs(&s);
    let (one, two) = (runs[0].0.as_str(), runs[1].0.as_str());
    let page = s.dir.path().join("compare.html");
    let out = s.compare(&[one, two, "--html", page.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("wrote {}", page.display())), "{err}");
    // The terminal output is the same as without --html.
    assert_eq!(String::from_utf8(out.stdout).unwrap(), s.text(&[one, two]));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(html.contains(&format!("run {one} (")) && html.contains(&format!("run {two} (")));
    assert!(
        html.contains("11 nodes in A, 11 in B: 1 same, 10 changed"),
        "{html}"
    );
    assert!(html.contains("params.lr 0.01 -&gt; 0.003"), "{html}");

    // Every candidate's metrics: A and B from the files each run stored, and B - A.
    let a = s.exported_metrics(&[], "a", &["candidate-score"]);
    let b = s.exported_metrics(&[LR], "b", &["candidate-score"]);
    assert_eq!(a.len(), 4);
    let mut signs = BTreeMap::new();
    for (id, ma) in &a {
        for (name, x) in ma.as_object().unwrap() {
            let (x, y) = (x.as_f64().unwrap(), b[id][name].as_f64().unwrap());
            let start = format!("<tr data-node=\"{id}\" data-metric=\"{name}\">");
            let at = html
                .find(&start)
                .unwrap_or_else(|| panic!("{start} in {html}"));
            let row = &html[at..at + html[at..].find("</tr>").unwrap()];
            let cells: Vec<&str> = row.split("<td").skip(3).collect();
            assert_eq!(cells.len(), 3, "{row}");
            assert!(cells[0].contains(&format!("data-value=\"{x}\"")), "{row}");
            assert!(cells[1].contains(&format!("data-value=\"{y}\"")), "{row}");
            assert!(
                cells[2].contains(&format!("data-value=\"{}\"", y - x)),
                "{row}"
            );
            let class = match (y - x).partial_cmp(&0.0).unwrap() {
                std::cmp::Ordering::Greater => "up",
                std::cmp::Ordering::Less => "down",
                std::cmp::Ordering::Equal => "flat",
            };
            assert!(
                cells[2].contains(&format!("class=\"num {class}\"")),
                "{row}"
            );
            *signs.entry(class).or_insert(0) += 1;
        }
    }
    assert!(
        signs.keys().any(|c| *c != "flat"),
        "the edit changed no metric: {signs:?}"
    );
    // One select node, two metrics: A, B and B - A of each.
    assert_eq!(html.matches("<svg").count(), 6, "{html}");
    for title in ["A: best", "B: best", "B - A: best"] {
        assert!(html.contains(title), "{title}");
    }

    // Into a folder that does not exist: an error naming the path, and no file.
    let missing = s.dir.path().join("nosuch").join("compare.html");
    let out = s.compare(&[one, two, "--html", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing printed before the page is written"
    );
    assert!(!missing.exists());
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[test]
fn a_manifest_and_its_include_at_a_git_revision_compare_like_the_same_edit_through_set() {
    let s = Study::new();
    let repo = s.dir.path().join("repo");
    std::fs::create_dir_all(repo.join("experiments")).unwrap();
    std::fs::create_dir_all(repo.join("configs")).unwrap();
    // The base recipe moves to an included file, so that the revision needs it too.
    let (head, recipe) = MANIFEST.split_once("[recipe.base]").unwrap();
    let (recipe, rest) = recipe.split_once("\n\n").unwrap();
    let head = head.replace(
        "protocol = \"seed\"",
        "protocol = \"seed\"\ninclude = [\"../configs/recipes.toml\"]",
    );
    let manifest = repo.join("experiments/m.toml");
    std::fs::write(&manifest, format!("{head}{rest}")).unwrap();
    std::fs::write(
        repo.join("configs/recipes.toml"),
        format!("[recipe.base]{recipe}\n"),
    )
    .unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    // Commit two: manual's alpha, as ALPHA sets it.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let edited = text.replace("alpha = -1.5", "alpha = -2.5");
    assert_ne!(text, edited);
    std::fs::write(&manifest, edited).unwrap();
    git(&repo, &["commit", "-q", "-am", "two"]);
    // The working tree: the included recipe's lr (not committed).
    let recipes = repo.join("configs/recipes.toml");
    let r = std::fs::read_to_string(&recipes).unwrap();
    std::fs::write(&recipes, r.replace("lr = 3e-3", "lr = 1e-3")).unwrap();

    let cmp = |args: &[&str]| -> Value {
        let out = tarun(&s.store)
            .arg("compare")
            .args(args)
            .arg("--json")
            .current_dir(&repo)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let m = "experiments/m.toml";
    let by_revision = cmp(&["experiments/m.toml@HEAD~1", "experiments/m.toml@HEAD"]);
    let by_set = cmp(&["experiments/m.toml@HEAD~1", "--set-b", ALPHA]);
    assert_eq!(statuses(&by_revision), statuses(&by_set));
    assert_changed(
        &by_revision,
        &[
            ("manual", &["params.vectors[0].alpha -1.5 -> -2.5"]),
            ("manual-eval", &["input `manual` changed"]),
        ],
    );
    assert_eq!(by_revision["a"]["revision"], "HEAD~1");
    assert_eq!(by_revision["a"]["run"], Value::Null);
    // HEAD against the working tree: the included file's edit changes every node under base.
    let tree = cmp(&[&format!("{m}@HEAD"), m]);
    let got = statuses(&tree);
    assert_eq!(
        got["base"],
        ("changed".into(), vec!["params.lr 0.003 -> 0.001".into()])
    );
    assert!(
        got.values().all(|(status, _)| status == "changed"),
        "{got:?}"
    );
    assert_eq!(got["expert"].1, ["input `base` changed"]);
}

#[test]
fn sides_not_computed_are_reported_with_what_run_would_compute() {
    let s = Study::new();
    let doc = s.json(&[&s.manifest, "--set-b", LR]);
    for side in ["a", "b"] {
        assert_eq!(doc[side]["not-computed"], NODES);
        assert_eq!(doc[side]["states"]["missing"], NODES);
    }
    assert_eq!(
        doc["b"]["run"],
        format!("tarun run {} --set {LR}", s.manifest)
    );
    let eval = node(&doc, "manual-eval");
    assert_eq!(eval["a"]["computed"], false);
    assert_eq!(eval["a"]["state"], "missing");
    assert_eq!(eval["metrics"][0]["metric"], "-");
    assert!(eval["metrics"][0]["a"].is_null() && eval["metrics"][0]["b"].is_null());
    // Keys are planned: the base network is the only node shared.
    assert_eq!(statuses(&doc)["base"].0, "same");
    assert_eq!(doc["counts"]["changed"], 5);
    let only = s.json(&[&s.manifest, "--set-b", LR, "--only-changed"]);
    assert!(
        only["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "changed"),
        "same nodes computed on neither side are hidden too: {only:#}"
    );
    let text = s.text(&[&s.manifest, "--set-b", LR]);
    assert!(
        text.contains("A: 7 of 7 nodes not computed (7 missing): `tarun run "),
        "{text}"
    );
    assert!(text.contains("not computed  not computed"), "{text}");
}

#[test]
fn two_manifests_name_the_nodes_only_one_side_has() {
    let s = Study::new();
    s.run(&[]);
    // B: `other-eval` removed, `extra` added, `base-eval` asks for one more metric.
    let (kept, _) = MANIFEST.split_once("[evaluate.other-eval]").unwrap();
    let b = format!(
        "{kept}[evaluate.extra]\nmodel = \"other\"\nmetrics = [\"accuracy\"]\n\n\
         [evaluate.base-eval]\nmodel = \"base\"\nforget = 8\nmetrics = [\"accuracy\", \"forget-acc\"]\n"
    );
    let b_path = s.dir.path().join("b.toml");
    std::fs::write(&b_path, b).unwrap();
    let doc = s.json(&[&s.manifest, b_path.to_str().unwrap()]);
    let got = statuses(&doc);
    assert_eq!(got["other-eval"].0, "only-a");
    assert_eq!(got["extra"].0, "only-b");
    assert_eq!(
        got["base-eval"].1,
        ["params.metrics [\"accuracy\"] -> [\"accuracy\",\"forget-acc\"]"]
    );
    assert_eq!(node(&doc, "other-eval")["b"], Value::Null);
    assert_eq!(node(&doc, "extra")["a"], Value::Null);
    assert!(
        node(&doc, "extra")["metrics"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let counts = &doc["counts"];
    assert_eq!(
        (
            &counts["same"],
            &counts["changed"],
            &counts["only-a"],
            &counts["only-b"]
        ),
        (&5.into(), &1.into(), &1.into(), &1.into()),
        "{doc:#}"
    );
    // B's not computed: base-eval's A metrics stand against `not computed`.
    let rows = node(&doc, "base-eval")["metrics"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["a"].is_number() && rows[0]["b"].is_null());
    assert_eq!(doc["b"]["not-computed"], 2);
}

#[test]
fn usage_errors_exit_2() {
    let s = Study::new();
    let m = s.manifest.as_str();
    for (args, says) in [
        (vec![m], "compare needs two sides"),
        (vec![m, "--set-b", LR, "--threshold", "-1"], "--threshold"),
        (vec![m, "--set-b", "nosuch.table.key=1"], ""),
        (vec!["nosuch.toml", m], ""),
        (vec![&*format!("{m}@HEAD"), m], "git"),
        (vec![&*format!("{m}@"), m], "PATH@REV"),
        (vec![m, m, "--format", "xml"], ""),
    ] {
        let out = s.compare(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
