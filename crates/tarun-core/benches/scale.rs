//! Scale benchmark: a ~2,000-node study through the orchestrator's hot paths.
//!
//! Run with `cargo bench -p tarun-core --bench scale`. It generates a manifest (the same one as
//! `tests/manifest_perf.rs`) into a temporary directory, fills a temporary store by running the
//! engine once with a bench-local runner that writes one tiny file per node, then times, over
//! [`REPS`] repetitions each:
//!
//! - manifest load: read + expand + validate (`manifest::load`) and build the graph;
//! - `plan::status` over every node, all of them fresh;
//! - a no-op engine run (every node cached), from building the engine to the journal written.
//!
//! It prints min, median and max per stage against the goal of each stage (< 100 ms). It is a
//! measurement, not a test: a stage over its goal is flagged, not failed.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use tarun_core::engine::{DevicePool, Engine, Executor, Job, JobError, JobOutput, Options, Runner};
use tarun_core::graph::Graph;
use tarun_core::manifest::{self, NodeKind, NodeSpec, Study};
use tarun_core::plan::{self, KeyContext, State};
use tarun_core::store::{Outcome, RunJournal, Store};
use tokio_util::sync::CancellationToken;

/// Timed repetitions per stage; the median is reported.
const REPS: usize = 7;
/// The goal for every stage, in milliseconds.
const GOAL_MS: f64 = 100.0;
/// Stands in for the digest of the study's data: the same for every run, so everything caches.
#[path = "../tests/support/big_manifest.rs"]
mod big_manifest;
use big_manifest::generated;

const DATA_DIGEST: &str = "bench-data";

/// Bench-only node kinds: every node writes `out.txt` holding its id, and nothing else.
struct TouchRunner;

impl KeyContext for TouchRunner {
    fn algorithm_version(&self, _: NodeKind) -> u32 {
        1
    }
}

impl Runner for TouchRunner {
    fn needs_device(&self, _: &NodeSpec) -> bool {
        true
    }

    fn run(&self, job: &Job) -> Result<JobOutput, JobError> {
        std::fs::write(job.out_dir.join("out.txt"), &job.node.id)
            .map_err(|e| JobError::Failed(e.to_string()))?;
        Ok(JobOutput::default())
    }
}

/// Runs the whole study once, as `tarun run` would (two runtime workers, CPU slots).
fn engine_run(
    rt: &tokio::runtime::Runtime,
    study: &Arc<Study>,
    graph: &Arc<Graph>,
    store: &Store,
    run_id: String,
) -> RunJournal {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine {
        study: study.clone(),
        graph: graph.clone(),
        store: store.clone(),
        runner: Arc::new(TouchRunner),
        data_digest: DATA_DIGEST.into(),
        devices: DevicePool::new(vec!["cpu*4".parse().expect("valid device")], 4),
        events: tx,
        cancel: CancellationToken::new(),
        executor: Executor::Local,
    };
    let opts = Options {
        run_id,
        command: vec!["bench".into()],
        ..Default::default()
    };
    let journal = rt.block_on(engine.run(opts)).expect("engine run");
    drop(rx);
    journal
}

/// Min, median and max of `REPS` timed calls of `f`.
fn measure<T>(mut f: impl FnMut() -> T) -> [Duration; 3] {
    let mut times: Vec<Duration> = (0..REPS)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    [times[0], times[REPS / 2], times[REPS - 1]]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Utf8PathBuf::try_from(dir.path().to_owned()).expect("UTF-8 temp dir");
    let path = root.join("big.toml");
    std::fs::write(&path, generated()).expect("write manifest");

    let study = manifest::load(&path, &[]).expect("the generated manifest is valid");
    let graph = Graph::new(&study);
    let nodes = study.nodes.len();
    let edges: usize = study.nodes.iter().map(|n| n.inputs.len()).sum();
    let (study, graph) = (Arc::new(study), Arc::new(graph));

    let store = Store::open(root.join("store")).expect("open store");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    // Fill the store: every node runs once.
    let start = Instant::now();
    let journal = engine_run(&rt, &study, &graph, &store, "fill".into());
    let fill = start.elapsed();
    assert_eq!(journal.count(Outcome::Ran), nodes, "every node ran");

    let load = measure(|| {
        let study = manifest::load(&path, &[]).expect("valid");
        let graph = Graph::new(&study);
        (study, graph)
    });

    let runner = TouchRunner;
    let no_force = BTreeSet::new();
    let status = measure(|| {
        let statuses = plan::status(
            &study,
            &graph,
            &store,
            &runner,
            &DATA_DIGEST.into(),
            &no_force,
        )
        .expect("status");
        assert!(statuses.iter().all(|s| s.state == State::Fresh));
        statuses
    });

    let mut rep = 0;
    let noop = measure(|| {
        rep += 1;
        let journal = engine_run(&rt, &study, &graph, &store, format!("noop-{rep}"));
        assert_eq!(journal.count(Outcome::Cached), nodes, "everything cached");
        journal
    });

    println!();
    println!("tarun-core scale: {nodes} nodes, {edges} edges, {REPS} repetitions per stage");
    println!(
        "(store filled by one engine run in {:.0} ms, not a goal)",
        ms(fill)
    );
    println!();
    println!(
        "{:<34} {:>8} {:>10} {:>8}  goal",
        "stage", "min ms", "median ms", "max ms"
    );
    for (stage, [min, median, max]) in [
        ("manifest load + graph", load),
        ("plan::status, all fresh", status),
        ("no-op engine run, all cached", noop),
    ] {
        let verdict = if ms(median) < GOAL_MS { "ok" } else { "OVER" };
        println!(
            "{stage:<34} {:>8.1} {:>10.1} {:>8.1}  < {GOAL_MS:.0} ms  {verdict}",
            ms(min),
            ms(median),
            ms(max),
        );
    }
}
