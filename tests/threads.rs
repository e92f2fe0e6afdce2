//! Checkpoints and metrics do not depend on where they were computed: the same evaluation
//! re-run with another number of threads (what `-j` changes, and the nearest this CPU-only
//! machine comes to re-evaluating a CUDA-trained model on the CPU) gives the same metrics within
//! float tolerance, and the records say which thread counts ran.

use std::path::Path;

use serde_json::Value;

mod support;

use support::TINY;

const TARGET: &str = "baseline-eval";

/// The metrics of the fresh `baseline-eval` and the thread count its record names.
fn metrics_and_threads(store: &Path) -> (serde_json::Map<String, Value>, u64) {
    let outputs = support::fresh_outputs(store, TINY);
    let digest = outputs[TARGET]["metrics.json"].as_str().unwrap().to_owned();
    let object = store.join("objects").join(&digest[..2]).join(&digest[2..]);
    let metrics: Value = serde_json::from_slice(&std::fs::read(object).unwrap()).unwrap();
    let records = std::fs::read_dir(store.join("records")).unwrap();
    let record = records
        .map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.unwrap().path()).unwrap()))
        .map(Result::unwrap)
        .find(|r| {
            r["id"] == TARGET && r["outputs"]["metrics.json"]["digest"].as_str() == Some(&digest)
        })
        .expect("the fresh record");
    let threads = record["threads"].as_u64().unwrap();
    (metrics["metrics"].as_object().unwrap().clone(), threads)
}

fn run(store: &Path, extra: &[&str]) {
    support::run_ok_with(store, TINY, &[TARGET], extra);
}

#[test]
fn re_evaluating_with_other_threads_gives_the_same_metrics_within_tolerance() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    run(&store, &["-j", "1"]);
    let (first, all_cores) = metrics_and_threads(&store);
    assert_eq!(all_cores as usize, cores, "-j 1 gives the job every core");
    // Two CPU slots: the re-run evaluation gets half the cores.
    run(&store, &["-j", "2", "--force", TARGET]);
    let (second, half) = metrics_and_threads(&store);
    assert_eq!(half as usize, (cores / 2).max(1));
    if cores < 2 {
        eprintln!("one core: both runs used one thread, the comparison below is trivial");
    }
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["forget-acc", "kl-forget", "kl-retain", "retain-acc"]
    );
    for (name, a) in &first {
        let (a, b) = (a.as_f64().unwrap(), second[name].as_f64().unwrap());
        // Sums of the same float products in another order: a few ulps of f32 per logit.
        let tolerance = 1e-5 * a.abs().max(1.0);
        assert!(
            (a - b).abs() <= tolerance,
            "{name}: {a} with {all_cores} threads, {b} with {half}"
        );
    }
}
