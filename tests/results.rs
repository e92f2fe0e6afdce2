//! `tarun results` (issue 19, item 1): every evaluate node's metrics as one table with the matrix
//! axes as columns, `--where`, `--sort`, `--columns`, a pivot grid, and table/json/csv/md output
//! that agree with each other and with the stored `metrics.json` files, read here independently
//! (through `tarun export`). Nothing is run by `results`: missing and stale nodes show as such.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use support::{run_ok, tarun};

/// Two networks, a 2x2 (alpha, rho) grid of scored candidates each, and an evaluation of each
/// base network: 10 evaluate nodes, 22 nodes in all, under a second on the CPU.
const MANIFEST: &str = r#"
[study]
name = "results"
seed = 7
protocol = "seed"

[data]
source = "synthetic"
train-per-class = 16
test-per-class = 10
validation-per-class = 0

[matrix]
arch = ["resnet18", "vgg11_bn"]
alpha = [-1.0, -2.0]
rho = [0.5, 0.9]

[recipe.base]
lr = 3e-3
epochs = 1
batch-size = 32

[train.base]
for-each = ["arch"]
arch = "${arch}"
width = 0.0625
recipe = "base"

[expert.expert]
for-each = ["arch"]
from = "base[arch=${arch}]"
only = [8]
lr = 3e-4
epochs = 1
batch-size = 16

[ablate.candidate]
for-each = ["arch", "alpha", "rho"]
base = "base[arch=${arch}]"
vectors = [{ expert = "expert[arch=${arch}]", alpha = "${alpha}", rho = "${rho}" }]

[evaluate.candidate-score]
for-each = ["arch", "alpha", "rho"]
model = "candidate[arch=${arch},alpha=${alpha},rho=${rho}]"
forget = 8
metrics = ["accuracy", "forget-acc", "retain-acc"]

[evaluate.base-eval]
for-each = ["arch"]
model = "base[arch=${arch}]"
forget = 8
metrics = ["accuracy"]
"#;

const EVALUATE_NODES: usize = 10;

struct Study {
    dir: tempfile::TempDir,
    store: PathBuf,
    manifest: String,
}

impl Study {
    fn new() -> Study {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let manifest = dir.path().join("results.toml");
        std::fs::write(&manifest, MANIFEST).unwrap();
        let manifest = manifest.to_str().unwrap().to_owned();
        Study {
            dir,
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

    /// `tarun results M ARGS...`.
    fn results(&self, args: &[&str]) -> Output {
        tarun(&self.store)
            .arg("results")
            .arg(&self.manifest)
            .args(args)
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    }

    /// Stdout of `tarun results M ARGS...`, asserting exit 0.
    fn text(&self, args: &[&str]) -> String {
        let out = self.results(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `tarun results M ARGS... --json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.text(&args)).unwrap()
    }

    /// Every evaluate node's `metrics` object from its exported `metrics.json`, by node id.
    fn stored_metrics(&self) -> BTreeMap<String, Value> {
        let to = self.dir.path().join("export");
        let out = tarun(&self.store)
            .args([
                "export",
                &self.manifest,
                "candidate-score",
                "base-eval",
                "--to",
            ])
            .arg(&to)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut metrics = BTreeMap::new();
        for entry in std::fs::read_dir(&to).unwrap() {
            let dir = entry.unwrap().path();
            let file: Value =
                serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
            let id = dir.file_name().unwrap().to_str().unwrap().to_owned();
            metrics.insert(id, file["metrics"].clone());
        }
        assert_eq!(metrics.len(), EVALUATE_NODES);
        metrics
    }
}

fn rows(doc: &Value) -> &Vec<Value> {
    doc["rows"].as_array().unwrap()
}

fn ids(doc: &Value) -> Vec<&str> {
    rows(doc)
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect()
}

/// A node id's axis values, as the id writes them: `a[x=1,y=2]` -> {x: 1, y: 2}.
fn id_axes(id: &str) -> BTreeMap<String, String> {
    let Some((_, rest)) = id.split_once('[') else {
        return BTreeMap::new();
    };
    rest.trim_end_matches(']')
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// RFC 4180, enough for tarun's output: quoted fields may hold commas and doubled quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            let mut fields = vec![];
            let mut field = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' if quoted && chars.peek() == Some(&'"') => {
                        field.push('"');
                        chars.next();
                    }
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut field)),
                    c => field.push(c),
                }
            }
            fields.push(field);
            fields
        })
        .collect()
}

/// The cells of a Markdown table, header first, the alignment row left out.
fn parse_md(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.starts_with("|---"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// Whether a compactly printed number (4 significant digits) is `exact`.
fn close(printed: &str, exact: f64) -> bool {
    let p: f64 = printed
        .parse()
        .unwrap_or_else(|_| panic!("`{printed}` is not a number"));
    (p - exact).abs() <= 5e-4 * exact.abs().max(1e-9)
}

#[test]
fn before_a_run_every_row_is_missing_without_numbers() {
    let study = Study::new();
    let doc = study.json(&["--columns", "node,arch,state,retain-acc"]);
    assert_eq!(rows(&doc).len(), EVALUATE_NODES, "{doc:#}");
    for row in rows(&doc) {
        assert_eq!(row["state"], "missing", "{row}");
        assert_eq!(row["metrics"]["retain-acc"], Value::Null, "{row}");
    }
    let text = study.text(&[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + EVALUATE_NODES, "{text}");
    assert!(lines[0].starts_with("node"), "{text}");
    for line in &lines[1..] {
        assert!(line.contains(" missing"), "{line}");
        assert_eq!(line, &line.trim_end(), "trailing spaces in `{line}`");
    }
    // Nothing was run or written.
    assert!(!study.store.join("records").exists());
}

#[test]
fn after_a_run_the_table_holds_the_stored_metrics() {
    let study = Study::run();
    let stored = study.stored_metrics();
    let doc = study.json(&[]);
    assert_eq!(doc["study"], "results");
    assert_eq!(
        doc["columns"],
        serde_json::json!([
            "node",
            "arch",
            "alpha",
            "rho",
            "state",
            "accuracy",
            "forget-acc",
            "retain-acc"
        ])
    );
    assert_eq!(rows(&doc).len(), EVALUATE_NODES);
    for row in rows(&doc) {
        let id = row["node"].as_str().unwrap();
        assert_eq!(row["state"], "fresh", "{row}");
        assert_eq!(row["family"], id.split('[').next().unwrap());
        // The axis columns are the node's own values; a node without an axis has null.
        let axes = id_axes(id);
        for (axis, value) in row["axes"].as_object().unwrap() {
            match axes.get(axis) {
                Some(text) if value.is_number() => {
                    assert_eq!(value.as_f64(), text.parse::<f64>().ok(), "{id} {axis}")
                }
                Some(text) => assert_eq!(value.as_str(), Some(text.as_str()), "{id} {axis}"),
                None => assert!(value.is_null(), "{id} {axis}"),
            }
        }
        // Every metric is the stored file's, exactly; a metric the node lacks is null.
        let file = stored[id].as_object().unwrap();
        for (name, value) in row["metrics"].as_object().unwrap() {
            match file.get(name) {
                Some(v) => assert_eq!(value.as_f64(), v.as_f64(), "{id} {name}"),
                None => assert!(value.is_null(), "{id} {name}"),
            }
        }
        assert!(
            file.keys().all(|k| row["metrics"].get(k).is_some()),
            "{id}: {file:?} vs {row}"
        );
    }
    assert!(
        rows(&doc)
            .iter()
            .filter(|r| r["family"] == "base-eval")
            .all(|r| r["metrics"]["retain-acc"].is_null())
    );
}

#[test]
fn nodes_not_computed_show_their_state_and_are_not_run() {
    let study = Study::new();
    let one = "candidate-score[arch=resnet18,alpha=-1,rho=0.5]";
    run_ok(&study.store, &study.manifest, &[one]);
    let doc = study.json(&[]);
    for row in rows(&doc) {
        let fresh = row["node"] == one;
        assert_eq!(
            row["state"],
            if fresh { "fresh" } else { "missing" },
            "{row}"
        );
        assert_eq!(row["metrics"]["retain-acc"].is_number(), fresh, "{row}");
    }
    // Still only that one: `results` ran nothing.
    let doc = study.json(&["--where", "state=fresh"]);
    assert_eq!(ids(&doc), [one]);
    assert_eq!(
        study.json(&["--where", "state=missing"])["rows"]
            .as_array()
            .unwrap()
            .len(),
        EVALUATE_NODES - 1
    );
}

#[test]
fn a_stale_node_shows_no_old_numbers() {
    let study = Study::run();
    // Another forget class changes the candidate scores' key, not the base evaluations'.
    let doc = study.json(&["--set", "evaluate.candidate-score.forget=3"]);
    for row in rows(&doc) {
        if row["family"] == "candidate-score" {
            assert_eq!(row["state"], "stale", "{row}");
            assert!(
                row["metrics"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(Value::is_null),
                "{row}"
            );
        } else {
            assert_eq!(row["state"], "fresh", "{row}");
            assert!(row["metrics"]["accuracy"].is_number(), "{row}");
        }
    }
    // The metric names are still known columns (from the records the stale nodes compare with).
    let text = study.text(&[
        "--set",
        "evaluate.candidate-score.forget=3",
        "--sort",
        "retain-acc",
    ]);
    assert!(
        text.lines().next().unwrap().contains("retain-acc"),
        "{text}"
    );
}

#[test]
fn where_filters_on_axes_families_and_states() {
    let study = Study::run();
    let doc = study.json(&["--where", "arch=resnet18"]);
    assert_eq!(rows(&doc).len(), 5, "{doc:#}");
    assert!(ids(&doc).iter().all(|id| id.contains("arch=resnet18")));
    // Numbers compare by value; different keys must all match.
    let doc = study.json(&["--where", "alpha=-1.0", "--where", "arch=vgg11_bn"]);
    assert_eq!(
        ids(&doc),
        [
            "candidate-score[arch=vgg11_bn,alpha=-1,rho=0.5]",
            "candidate-score[arch=vgg11_bn,alpha=-1,rho=0.9]"
        ]
    );
    // Values of one key are alternatives.
    let doc = study.json(&["--where", "rho=0.5", "--where", "rho=0.9"]);
    assert_eq!(rows(&doc).len(), 8);
    let doc = study.json(&["--where", "node=base-eval"]);
    assert_eq!(
        ids(&doc),
        ["base-eval[arch=resnet18]", "base-eval[arch=vgg11_bn]"]
    );
    // The columns follow the rows: base evaluations bind no alpha or rho.
    assert_eq!(
        doc["columns"],
        serde_json::json!(["node", "arch", "state", "accuracy"])
    );
    let doc = study.json(&["--where", "node=base-eval[arch=vgg11_bn]"]);
    assert_eq!(ids(&doc), ["base-eval[arch=vgg11_bn]"]);
    assert_eq!(rows(&study.json(&["--where", "state=missing"])).len(), 0);
}

#[test]
fn sort_orders_by_value_both_ways_with_blanks_last() {
    let study = Study::run();
    let values = |doc: &Value| -> Vec<Option<f64>> {
        rows(doc)
            .iter()
            .map(|r| r["metrics"]["retain-acc"].as_f64())
            .collect()
    };
    let up = values(&study.json(&["--sort", "retain-acc"]));
    let down = values(&study.json(&["--sort", "-retain-acc"]));
    for list in [&up, &down] {
        // The two base evaluations have no retain-acc: last either way.
        assert_eq!(list.len(), EVALUATE_NODES);
        assert!(list[..8].iter().all(Option::is_some), "{list:?}");
        assert!(list[8..].iter().all(Option::is_none), "{list:?}");
    }
    let up: Vec<f64> = up.into_iter().flatten().collect();
    let down: Vec<f64> = down.into_iter().flatten().collect();
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "{up:?}");
    assert!(down.windows(2).all(|w| w[0] >= w[1]), "{down:?}");
    assert!(up.first() < up.last(), "the values differ: {up:?}");
    // Axes sort by value too (-2 before -1), stable within equal values.
    let doc = study.json(&["--sort", "alpha", "--where", "node=candidate-score"]);
    let alphas: Vec<f64> = rows(&doc)
        .iter()
        .map(|r| r["axes"]["alpha"].as_f64().unwrap())
        .collect();
    assert_eq!(alphas, [-2.0, -2.0, -2.0, -2.0, -1.0, -1.0, -1.0, -1.0]);
    // The table sorts the same way.
    let text = study.text(&["--sort", "-retain-acc", "--columns", "retain-acc"]);
    let printed: Vec<&str> = text.lines().skip(1).map(str::trim).collect();
    for (p, v) in printed.iter().zip(&down) {
        assert!(close(p, *v), "{p} vs {v}");
    }
    assert_eq!(printed[8..], ["-", "-"]);
}

#[test]
fn columns_choose_and_order_what_is_printed() {
    let study = Study::run();
    let csv = parse_csv(&study.text(&["--columns", "retain-acc,node", "--format", "csv"]));
    assert_eq!(csv[0], ["retain-acc", "node"]);
    assert_eq!(csv.len(), 1 + EVALUATE_NODES);
    assert!(csv.iter().all(|r| r.len() == 2));
    let doc = study.json(&["--columns", "rho,retain-acc"]);
    assert_eq!(doc["columns"], serde_json::json!(["rho", "retain-acc"]));
    for row in rows(&doc) {
        assert_eq!(row["axes"].as_object().unwrap().len(), 1, "{row}");
        assert_eq!(row["metrics"].as_object().unwrap().len(), 1, "{row}");
    }
}

#[test]
fn csv_json_md_and_table_agree() {
    let study = Study::run();
    let doc = study.json(&[]);
    let columns: Vec<&str> = doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let csv = parse_csv(&study.text(&["--format", "csv"]));
    let md = parse_md(&study.text(&["--format", "md"]));
    let table: Vec<Vec<String>> = study
        .text(&["--format", "table"])
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    for (name, grid) in [("csv", &csv), ("md", &md), ("table", &table)] {
        assert_eq!(grid[0], columns, "{name} header");
        assert_eq!(grid.len(), 1 + EVALUATE_NODES, "{name}");
        for (row, line) in rows(&doc).iter().zip(&grid[1..]) {
            assert_eq!(line.len(), columns.len(), "{name}: {line:?}");
            for (col, cell) in columns.iter().zip(line) {
                let expected = match *col {
                    "node" => row["node"].clone(),
                    "state" => row["state"].clone(),
                    c if row["axes"].get(c).is_some() => row["axes"][c].clone(),
                    c => row["metrics"][c].clone(),
                };
                let blank = if name == "csv" { "" } else { "-" };
                match expected {
                    Value::Null => assert_eq!(cell, blank, "{name} {col}: {line:?}"),
                    Value::Number(n) if name == "csv" => {
                        assert_eq!(cell.parse::<f64>().ok(), n.as_f64(), "{name} {col}")
                    }
                    Value::Number(n) => assert!(close(cell, n.as_f64().unwrap()), "{name} {col}"),
                    Value::String(s) => assert_eq!(cell, &s, "{name} {col}"),
                    other => panic!("{other}"),
                }
            }
        }
    }
}

#[test]
fn a_pivot_puts_each_nodes_value_in_its_cell() {
    let study = Study::run();
    let stored = study.stored_metrics();
    for arch in ["resnet18", "vgg11_bn"] {
        let filter = format!("arch={arch}");
        let pivot = ["--rows", "alpha", "--cols", "rho", "--value", "retain-acc"];
        let mut args = pivot.to_vec();
        args.extend(["--where", &filter]);
        let doc = study.json(&args);
        assert_eq!(doc["rows"], "alpha");
        assert_eq!(doc["cols"], "rho");
        assert_eq!(doc["value"], "retain-acc");
        // The matrix's order.
        assert_eq!(doc["row-values"], serde_json::json!([-1.0, -2.0]));
        assert_eq!(doc["col-values"], serde_json::json!([0.5, 0.9]));
        let mut csv_args = args.clone();
        csv_args.extend(["--format", "csv"]);
        let csv = parse_csv(&study.text(&csv_args));
        assert_eq!(csv[0], ["alpha\\rho", "0.5", "0.9"]);
        for (i, alpha) in ["-1", "-2"].iter().enumerate() {
            assert_eq!(csv[i + 1][0], *alpha);
            for (j, rho) in ["0.5", "0.9"].iter().enumerate() {
                let id = format!("candidate-score[arch={arch},alpha={alpha},rho={rho}]");
                let cell = &doc["cells"][i][j];
                assert_eq!(cell["node"], id.as_str());
                assert_eq!(cell["state"], "fresh");
                let expected = stored[&id]["retain-acc"].as_f64();
                assert_eq!(cell["value"].as_f64(), expected, "{id}");
                assert_eq!(csv[i + 1][j + 1].parse::<f64>().ok(), expected, "{id}");
            }
        }
        // Piped, the table has no colour; asked for, it has.
        let table = study.text(&args);
        assert!(!table.contains('\x1b'), "{table}");
        assert!(table.contains("alpha\\rho"), "{table}");
        args.extend(["--color", "always"]);
        let coloured = study.text(&args);
        assert!(coloured.contains("\x1b[48;5;"), "{coloured}");
        // The same cells under the colour.
        let plain: String = coloured
            .split('\x1b')
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    &part[part.find('m').unwrap() + 1..]
                }
            })
            .collect();
        assert!(plain.starts_with(&table), "{plain}\nvs\n{table}");
    }
}

#[test]
fn a_pivot_with_two_nodes_in_a_cell_names_the_axis_to_narrow() {
    let study = Study::run();
    let out = study.results(&["--rows", "alpha", "--cols", "rho", "--value", "retain-acc"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--where") && stderr.contains("`arch`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("resnet18") && stderr.contains("vgg11_bn"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_pivot_of_nodes_not_computed_shows_their_state() {
    let study = Study::new();
    let args = [
        "--rows",
        "rho",
        "--cols",
        "alpha",
        "--value",
        "retain-acc",
        "--where",
        "arch=resnet18",
    ];
    let text = study.text(&args);
    assert!(text.contains("missing"), "{text}");
    let doc = study.json(&args);
    for row in doc["cells"].as_array().unwrap() {
        for cell in row.as_array().unwrap() {
            assert_eq!(cell["state"], "missing");
            assert!(cell["value"].is_null());
        }
    }
}

#[test]
fn bad_flags_are_usage_errors_naming_the_value_and_the_choices() {
    let study = Study::run();
    for (args, named, listed) in [
        (&["--columns", "node,nope"][..], "nope", "retain-acc"),
        (&["--sort", "-nope"][..], "nope", "retain-acc"),
        (&["--where", "arch"][..], "arch", "alpha"),
        (&["--where", "=resnet18"][..], "=resnet18", "arch"),
        (&["--where", "size=3"][..], "size", "arch"),
        (&["--where", "arch=resnet"][..], "resnet", "vgg11_bn"),
        (
            &["--where", "node=candidate"][..],
            "candidate",
            "candidate-score",
        ),
        (&["--where", "state=done"][..], "done", "missing"),
        (
            &["--rows", "size", "--cols", "rho", "--value", "retain-acc"][..],
            "size",
            "alpha",
        ),
        (
            &["--rows", "alpha", "--cols", "rho", "--value", "nope"][..],
            "nope",
            "retain-acc",
        ),
        (
            &[
                "--rows",
                "alpha",
                "--cols",
                "alpha",
                "--value",
                "retain-acc",
            ][..],
            "alpha",
            "rho",
        ),
        (&["--rows", "alpha"][..], "--cols", "--value"),
        (&["--format", "xml"][..], "xml", "csv"),
        (&["--json", "--format", "csv"][..], "--json", "--format"),
    ] {
        let out = study.results(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(stderr.contains(listed), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    let study = Study::run();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tarun"))
        .args(["results", &study.manifest])
        .env("TARUN_STORE", &study.store)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before tarun writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
