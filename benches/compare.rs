//! Scale benchmark of `tarun compare`: two versions of `experiments/paper-corrected.toml` (3,097
//! nodes), both fully computed, side by side.
//!
//! Run with `cargo bench --bench compare`. The root package has no library, so this drives the
//! real binary (`CARGO_BIN_EXE_tarun`), as a user would, in a temporary store:
//!
//! 1. Fill the store without training anything. Each round asks the binary, with
//!    `tarun compare M --set-b OVERRIDE --json`, for every node's current key on both sides (a
//!    key is known once every input is computed), and commits a synthetic record under each key
//!    not computed yet, with the store API of tarun-core: small outputs whose content depends on
//!    the key (so a changed node changes its dependents, as real reruns do), and for evaluate
//!    nodes a `metrics.json` shaped like the real kind's (scalars, per-class accuracies, confusion
//!    matrix, t-SNE points where the node asks for them). Rounds repeat until both sides are
//!    computed: one per level of the DAG. Each record's key material is recomputed here with
//!    `plan::node_key`, as a check that the records are the ones the binary expects (the count of
//!    those that could not be is printed).
//! 2. Time, over [`REPS`] repetitions each, with stdout to /dev/null:
//!    - `tarun status M --json`, the baseline (the cost of loading and planning one side);
//!    - `tarun compare M --set-b OVERRIDE --json`, and the same with `--only-changed`;
//!    - `tarun compare M M --json` (the same study twice, every node `same`);
//!    - `tarun compare M@HEAD M --json`, when the package is in a git work tree (skipped with a
//!      note otherwise).
//!
//! It prints min, median and max per command against the goal (a median under 1 s), and each
//! command's median as a multiple of status's, since shared machines are noisy. It is a
//! measurement, not a test: a command over its goal is flagged, not failed. With
//! `TARUN_BENCH_KEEP=1` the temporary store and working directory are kept, and their paths
//! printed, to profile a command by hand.
//!
//! The binary runs in an empty working directory, so the CIFAR-10 data (`data/`, relative to the
//! working directory) is absent and every side plans with the constant data digest
//! "data-unavailable": the same for every invocation, so the records match. With the data present,
//! each side would also hash it (about 180 MB) on every invocation; that is not measured here.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};
use tarun_core::digest::{NodeKey, ObjectDigest};
use tarun_core::manifest::{self, NodeKind, NodeSpec, Study};
use tarun_core::plan;
use tarun_core::store::{NodeRecord, OutputRef, Store};

/// Timed repetitions per command; the median is reported.
const REPS: usize = 7;
/// The goal for every command's median, in milliseconds.
const GOAL_MS: f64 = 1000.0;
/// The study, relative to the package root.
const MANIFEST: &str = "experiments/paper-corrected.toml";
/// Side B: the resnet18 experts' learning rate (1e-4 in configs/recipes.toml). It changes the
/// 30 resnet18 experts and everything downstream of them.
const OVERRIDE: &str = "recipe.expert.resnet18.lr=3e-4";
/// The planning digest of a study whose data is not on the machine (src/kinds/data.rs).
const DATA_DIGEST: &str = "data-unavailable";
/// Set to keep the temporary store and working directory (for profiling a command by hand).
const KEEP_VAR: &str = "TARUN_BENCH_KEEP";
/// The highest algorithm version tried when recomputing key material.
const MAX_VERSION: u32 = 100;
/// Rounds of filling before giving up: the DAG is about 6 levels deep.
const MAX_ROUNDS: usize = 20;

/// Runs the binary in an empty working directory against the bench's store.
struct Tarun {
    bin: &'static str,
    work: Utf8PathBuf,
    store: Utf8PathBuf,
}

impl Tarun {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.args(args)
            .current_dir(&self.work)
            .env("TARUN_STORE", &self.store)
            .env_remove("TARUN_LOG")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs to completion and returns stdout; panics, with stderr, on failure.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.command(args).output().expect("run tarun");
        assert!(
            out.status.success(),
            "tarun {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("tarun printed JSON")
    }

    /// One timed run with stdout and stderr to /dev/null.
    fn timed(&self, args: &[&str]) -> Duration {
        let start = Instant::now();
        let status = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run tarun");
        let elapsed = start.elapsed();
        assert!(status.success(), "tarun {args:?} failed ({status})");
        elapsed
    }
}

/// One side of the fill: its study, and its records committed so far, by key.
struct Side {
    study: Study,
    index: HashMap<String, usize>,
}

impl Side {
    fn load(path: &Utf8Path, overrides: &[String]) -> Side {
        let study = manifest::load(path, overrides).expect("the study is valid");
        let index = study
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        Side { study, index }
    }
}

/// A node's key material, recomputed here with `plan::node_key`: the binary's key is the truth,
/// and this checks that the records committed are the ones it expects. The kinds' algorithm
/// versions live in the binary (src/kinds), so they are found by trying (and remembered per kind).
/// `None` when no version gives the key.
fn key_material(
    study: &Study,
    node: &NodeSpec,
    inputs: &[&NodeRecord],
    key: &NodeKey,
    versions: &mut HashMap<NodeKind, u32>,
) -> Option<Value> {
    let known = versions.get(&node.kind).copied();
    known.into_iter().chain(1..=MAX_VERSION).find_map(|v| {
        let (k, material) = plan::node_key(study, node, inputs, v, &DATA_DIGEST.into());
        (k == *key).then(|| {
            versions.insert(node.kind, v);
            material
        })
    })
}

/// A number in [0, 100) drawn from a key and a salt: synthetic, but fixed per record.
fn number(key: &NodeKey, salt: &str) -> f64 {
    let hex = ObjectDigest::of_bytes(format!("{key}{salt}").as_bytes()).to_hex();
    let x = u32::from_str_radix(&hex[..8], 16).expect("hex");
    (f64::from(x) / f64::from(u32::MAX) * 1e4).round() / 100.0
}

/// `metrics.json` as the evaluate kind writes it, for the metrics the node asks for.
fn metrics_file(node: &NodeSpec, key: &NodeKey) -> (Value, Value) {
    let asked: Vec<&str> = node.params["metrics"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut scalars = serde_json::Map::new();
    let mut out = serde_json::Map::new();
    let mut scalar = |name: &str| {
        scalars.insert(name.into(), json!(number(key, name)));
    };
    for m in &asked {
        match *m {
            "accuracy" | "zrf" => scalar(m),
            "forget-acc" | "retain-acc" => {
                scalar("forget-acc");
                scalar("retain-acc");
            }
            "kl" => {
                scalar("kl-forget");
                scalar("kl-retain");
            }
            "mia" => scalar("mia-auc"),
            "over-forgetting" => scalar("over-forgetting-gap"),
            "ain" => {
                for s in ["ain", "ain-target", "ain-reached", "ain-steps-unlearned"] {
                    scalar(s);
                }
            }
            _ => {}
        }
    }
    if asked.contains(&"zrf") {
        scalar("zrf-std");
    }
    if asked.contains(&"per-class") {
        let per: Vec<f64> = (0..10).map(|c| number(key, &format!("pc{c}"))).collect();
        out.insert("per-class".into(), json!(per));
    }
    if asked.contains(&"confusion") {
        let rows: Vec<Vec<u32>> = (0..10)
            .map(|r| (0..10).map(|c| u32::from(r == c) * 900 + c).collect())
            .collect();
        out.insert("confusion".into(), json!(rows));
    }
    if asked.contains(&"ain") {
        let curve: Vec<f64> = (0..50).map(|s| number(key, &format!("ain{s}"))).collect();
        out.insert(
            "relearn".into(),
            json!({ "unlearned": curve, "retrained": curve }),
        );
    }
    if asked.contains(&"tsne") {
        // 1,500 points, as the kind's default.
        let points: Vec<[f64; 2]> = (0..1500)
            .map(|i| [f64::from(i) * 0.013 - 9.7, f64::from(i % 97) * 0.21 - 10.1])
            .collect();
        let labels: Vec<u32> = (0..1500).map(|i| i % 10).collect();
        out.insert("tsne".into(), json!({ "points": points, "labels": labels }));
    }
    let metrics = Value::Object(scalars);
    for (k, v) in [
        ("model", node.params["model"].clone()),
        ("model-kind", json!("ablate")),
        ("arch", json!("resnet18")),
        (
            "split",
            node.params.get("split").cloned().unwrap_or(json!("test")),
        ),
        (
            "forget",
            node.params.get("forget").cloned().unwrap_or(Value::Null),
        ),
        ("protocol", json!("corrected")),
        ("images", json!(10000)),
        ("metrics", metrics.clone()),
    ] {
        out.insert(k.into(), v);
    }
    let summary = json!({ "metrics": metrics, "model": node.params["model"] });
    (Value::Object(out), summary)
}

/// The output files of a node: what its kind writes, small, with content that depends on the key.
fn outputs(node: &NodeSpec, key: &NodeKey) -> (Vec<(&'static str, Vec<u8>)>, Value) {
    let stub =
        |what: &str| format!("synthetic {what} of `{}` for key {key}\n", node.id).into_bytes();
    match node.kind {
        NodeKind::Train | NodeKind::Expert => (
            vec![("model.safetensors", stub("weights"))],
            json!({ "epochs": 1 }),
        ),
        NodeKind::Ablate => (
            vec![
                ("model.safetensors", stub("weights")),
                ("ablation.json", stub("ablation")),
            ],
            json!({}),
        ),
        NodeKind::Evaluate => {
            let (file, summary) = metrics_file(node, key);
            let bytes = serde_json::to_vec_pretty(&file).expect("json");
            (vec![("metrics.json", bytes)], summary)
        }
        NodeKind::Select => (
            vec![("selection.json", stub("selection"))],
            json!({ "alpha": -1.0, "rho": 0.8 }),
        ),
        NodeKind::Report => (vec![("report.md", stub("report"))], json!({})),
    }
}

/// What the fill did.
#[derive(Default)]
struct Fill {
    rounds: usize,
    records: usize,
    /// Records whose key material could not be recomputed to give the binary's key.
    mismatched: usize,
}

/// Commits a synthetic record for every node whose key the binary knows and which is not
/// computed yet, on both sides, round after round, until both sides are fully computed.
fn fill(tarun: &Tarun, manifest: &str, store: &Store, sides: &[Side; 2]) -> Fill {
    let mut done = Fill::default();
    let mut records: HashMap<NodeKey, NodeRecord> = HashMap::new();
    let mut versions = HashMap::new();
    loop {
        let cmp = tarun.json(&["compare", manifest, "--set-b", OVERRIDE, "--json"]);
        let nodes = cmp["nodes"].as_array().expect("nodes");
        // Each side's known keys by node id.
        let keys: Vec<HashMap<&str, NodeKey>> = ["a", "b"]
            .iter()
            .map(|s| {
                nodes
                    .iter()
                    .filter_map(|n| {
                        let key = n[s]["key"].as_str()?.parse().expect("a key");
                        Some((n["node"].as_str().expect("id"), key))
                    })
                    .collect()
            })
            .collect();
        let mut committed = 0;
        for n in nodes {
            let id = n["node"].as_str().expect("id");
            for (k, (s, side)) in ["a", "b"].into_iter().zip(sides).enumerate() {
                let (Some(key), false) = (keys[k].get(id), n[s]["computed"] == true) else {
                    continue;
                };
                if records.contains_key(key) {
                    continue;
                }
                let node = &side.study.nodes[side.index[id]];
                let inputs: Vec<&NodeRecord> = node
                    .inputs
                    .iter()
                    .map(|i| &records[&keys[k][i.as_str()]])
                    .collect();
                let material = key_material(&side.study, node, &inputs, key, &mut versions)
                    .unwrap_or_else(|| {
                        done.mismatched += 1;
                        json!({ "synthetic": "benches/compare.rs" })
                    });
                let (files, summary) = outputs(node, key);
                let outputs: BTreeMap<&str, OutputRef> = files
                    .into_iter()
                    .map(|(name, bytes)| (name, store.put_bytes(&bytes).expect("store an object")))
                    .collect();
                // Through JSON, so that fields added to records later with a default (as the
                // optional ones are) need no change here.
                let record: NodeRecord = serde_json::from_value(json!({
                    "key": key,
                    "id": id,
                    "kind": node.kind,
                    "key-material": material,
                    "outputs": outputs,
                    "summary": summary,
                    "started": jiff::Timestamp::now(),
                    "seconds": 1.0,
                    "device": "cpu",
                    "threads": 1,
                    "tarun-version": "bench",
                    "run-id": "bench-fill",
                }))
                .expect("a valid record");
                store
                    .commit(&side.study.name, &record)
                    .expect("commit a record");
                records.insert(*key, record);
                committed += 1;
            }
        }
        if committed == 0 {
            let not_computed = |s: &str| cmp[s]["not-computed"].as_u64().expect("count");
            assert_eq!(
                (not_computed("a"), not_computed("b")),
                (0, 0),
                "nothing left to commit, yet not everything is computed"
            );
            return done;
        }
        done.rounds += 1;
        done.records += committed;
        assert!(done.rounds <= MAX_ROUNDS, "the fill does not converge");
    }
}

/// Min, median and max of `REPS` timed runs, after one untimed run (page cache, binary).
fn measure(tarun: &Tarun, args: &[&str]) -> [Duration; 3] {
    tarun.timed(args);
    let mut times: Vec<Duration> = (0..REPS).map(|_| tarun.timed(args)).collect();
    times.sort();
    [times[0], times[REPS / 2], times[REPS - 1]]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn in_git_work_tree(dir: &Path) -> bool {
    Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"true"))
}

fn main() {
    let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join(MANIFEST);
    let mut dir = tempfile::tempdir().expect("temp dir");
    if std::env::var_os(KEEP_VAR).is_some() {
        dir.disable_cleanup(true);
    }
    let tmp = Utf8PathBuf::try_from(dir.path().to_owned()).expect("UTF-8 temp dir");
    let tarun = Tarun {
        bin: env!("CARGO_BIN_EXE_tarun"),
        work: tmp.join("work"),
        store: tmp.join("store"),
    };
    std::fs::create_dir(&tarun.work).expect("work dir");
    let store = Store::open(&tarun.store).expect("open store");

    let sides = [
        Side::load(&manifest, &[]),
        Side::load(&manifest, &[OVERRIDE.to_owned()]),
    ];
    let start = Instant::now();
    let filled = fill(&tarun, manifest.as_str(), &store, &sides);
    let fill_time = start.elapsed();

    // What compare sees: node counts, and the metric files it reads (one per evaluate node and
    // computed side: `metrics_of` for each side's current record).
    let cmp = tarun.json(&["compare", manifest.as_str(), "--set-b", OVERRIDE, "--json"]);
    let counts = &cmp["counts"];
    let nodes = cmp["nodes"].as_array().expect("nodes");
    let metric_files = nodes
        .iter()
        .filter(|n| n["kind"] == "evaluate")
        .map(|n| usize::from(n["a"]["computed"] == true) + usize::from(n["b"]["computed"] == true))
        .sum::<usize>();
    let distinct_metric_files = nodes
        .iter()
        .filter(|n| n["kind"] == "evaluate")
        .map(|n| 1 + usize::from(n["status"] != "same"))
        .sum::<usize>();
    let only = tarun.json(&[
        "compare",
        manifest.as_str(),
        "--set-b",
        OVERRIDE,
        "--only-changed",
        "--json",
    ]);
    let listed_only = only["nodes"].as_array().expect("nodes").len();

    let m = manifest.as_str();
    let at_head = format!("{m}@HEAD");
    let mut cases: Vec<(&str, Vec<&str>)> = vec![
        ("status M --json (baseline)", vec!["status", m, "--json"]),
        (
            "compare M --set-b O --json",
            vec!["compare", m, "--set-b", OVERRIDE, "--json"],
        ),
        (
            "  ... --only-changed",
            vec![
                "compare",
                m,
                "--set-b",
                OVERRIDE,
                "--only-changed",
                "--json",
            ],
        ),
        ("compare M M --json", vec!["compare", m, m, "--json"]),
    ];
    let git = in_git_work_tree(root.as_std_path());
    if git {
        cases.push((
            "compare M@HEAD M --json",
            vec!["compare", &at_head, m, "--json"],
        ));
    }
    let results: Vec<(&str, [Duration; 3])> = cases
        .iter()
        .map(|(name, args)| (*name, measure(&tarun, args)))
        .collect();

    println!();
    println!(
        "tarun compare at scale: {MANIFEST}, {} nodes per side; B = --set {OVERRIDE}",
        cmp["a"]["nodes"]
    );
    println!(
        "  {} same, {} changed, {} only-a, {} only-b; --only-changed lists {listed_only}",
        counts["same"], counts["changed"], counts["only-a"], counts["only-b"]
    );
    println!(
        "  metric files read per compare: {metric_files} ({distinct_metric_files} distinct: \
         a same node's file is read once per side)"
    );
    println!(
        "  store filled with {} synthetic records in {} rounds, {:.1} s (not a goal){}",
        filled.records,
        filled.rounds,
        fill_time.as_secs_f64(),
        if filled.mismatched == 0 {
            String::new()
        } else {
            format!(
                "; {} records' key material could not be recomputed (stand-ins written)",
                filled.mismatched
            )
        }
    );
    println!(
        "  {REPS} repetitions per command, stdout to /dev/null; M = {MANIFEST}, O = {OVERRIDE}"
    );
    if std::env::var_os(KEEP_VAR).is_some() {
        println!(
            "  kept ({KEEP_VAR}): store {}, working directory {}",
            tarun.store, tarun.work
        );
    }
    if !git {
        println!("  (compare M@HEAD M skipped: {root} is not in a git work tree)");
    }
    println!();
    println!(
        "{:<30} {:>8} {:>10} {:>8} {:>9}  goal",
        "command", "min ms", "median ms", "max ms", "x status"
    );
    let baseline = ms(results[0].1[1]);
    for (name, [min, median, max]) in &results {
        let verdict = if ms(*median) < GOAL_MS { "ok" } else { "OVER" };
        println!(
            "{name:<30} {:>8.1} {:>10.1} {:>8.1} {:>9.2}  < {GOAL_MS:.0} ms  {verdict}",
            ms(*min),
            ms(*median),
            ms(*max),
            ms(*median) / baseline,
        );
    }
}
