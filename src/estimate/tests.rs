//! Records scaled by hand-computed work ratios, and the duration format.

use std::collections::BTreeMap;

use serde_json::json;
use tarun_core::digest::NodeKey;
use tarun_core::store::{NodeRecord, OutputRef, Store};

use super::*;

const STUDY: &str = r#"
    [study]
    name = "est"
    protocol = "seed"
    [data]
    source = "synthetic"
    train-per-class = 40
    test-per-class = 20
    [train.base]
    arch = "resnet18"
    width = 0.5
    lr = 0.1
    epochs = 3
    batch-size = 32
    [expert.e3]
    from = "base"
    lr = 0.1
    only = [3]
    batch-size = 32
    [expert.e5]
    from = "base"
    lr = 0.1
    only = [5]
    batch-size = 32
    [evaluate.ev]
    model = "base"
    metrics = ["accuracy"]
    [report.r]
    inputs = ["ev"]
"#;

fn study() -> Study {
    tarun_core::manifest::parse_str("est.toml", STUDY, &[]).unwrap()
}

/// Commits a record of `id` that ran with `params` changed by `edit`.
#[expect(clippy::too_many_arguments, reason = "a record has this many fields")]
fn commit(
    store: &Store,
    s: &Study,
    id: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
    data: &str,
    seconds: f64,
    device: &str,
    threads: usize,
    summary: Value,
    outputs: BTreeMap<String, OutputRef>,
) {
    let node = s.node(id).unwrap();
    let mut params = node.params.clone();
    edit(&mut params);
    let rec = NodeRecord {
        key: NodeKey::of_bytes(format!("{id}{data}{seconds}").as_bytes()),
        id: id.to_owned(),
        kind: node.kind,
        key_material: json!({ "params": params, "data": data }),
        outputs,
        summary,
        started: jiff::Timestamp::now(),
        seconds,
        device: device.to_owned(),
        threads,
        tarun_version: "test".into(),
        run_id: "r".into(),
        log: vec![],
        peak_rss: None,
    };
    store.commit(&s.name, &rec).unwrap();
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

fn index(s: &Study, id: &str) -> usize {
    s.nodes.iter().position(|n| n.id == id).unwrap()
}

#[test]
fn a_record_scales_with_epochs_and_with_fewer_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(camino::Utf8PathBuf::try_from(dir.path().to_owned()).unwrap()).unwrap();
    let s = study();
    // 100 s for 2 epochs over 400 images with 2 threads; the study now asks for 3 epochs.
    commit(
        &store,
        &s,
        "base",
        |p| {
            p.insert("epochs".into(), json!(2));
        },
        "now",
        100.0,
        "cpu",
        2,
        json!({ "train-images": 400 }),
        BTreeMap::new(),
    );
    let mut est = Estimator::new(&s, &store, "now");
    let base = index(&s, "base");
    let e = est.estimate(base, "cpu", 2);
    // 3 x 400 images against 2 x 400: 150 s.
    assert!(close(e.seconds, 150.0), "{e:?}");
    assert_eq!(
        e.source,
        Source::Record {
            from: "base".into()
        }
    );
    // Each job with 1 thread (`-j 2` on 2 cores): twice as long. More threads: not faster.
    assert!(close(est.estimate(base, "cpu", 1).seconds, 300.0));
    assert!(close(est.estimate(base, "cpu", 8).seconds, 150.0));
    // A CPU record says nothing about a GPU.
    assert_eq!(est.estimate(base, "cuda:0", 2).source, Source::Default);
}

#[test]
fn a_similar_nodes_record_stands_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(camino::Utf8PathBuf::try_from(dir.path().to_owned()).unwrap()).unwrap();
    let s = study();
    // Expert e3 (one class of 40 images, one epoch) took 10 s; e5 has no record but the same
    // network and batch, and twice the epochs now.
    commit(
        &store,
        &s,
        "e3",
        |_| {},
        "now",
        10.0,
        "cpu",
        2,
        json!({ "train-images": 40 }),
        BTreeMap::new(),
    );
    let mut est = Estimator::new(&s, &store, "now");
    let e = est.estimate(index(&s, "e5"), "cpu", 2);
    assert!(close(e.seconds, 10.0), "{e:?}");
    assert_eq!(e.source, Source::Record { from: "e3".into() });
    let mut twice = s.clone();
    let e5 = index(&twice, "e5");
    twice.nodes[e5].params.insert("epochs".into(), json!(2));
    let mut est = Estimator::new(&twice, &store, "now");
    assert!(close(est.estimate(e5, "cpu", 2).seconds, 20.0));
    // A different batch size is not similar: the figures price it.
    let mut other = s.clone();
    other.nodes[e5]
        .params
        .insert("batch-size".into(), json!(64));
    let mut est = Estimator::new(&other, &store, "now");
    assert_eq!(est.estimate(e5, "cpu", 2).source, Source::Default);
}

#[test]
fn a_record_on_other_data_scales_by_the_images_it_saw() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(camino::Utf8PathBuf::try_from(dir.path().to_owned()).unwrap()).unwrap();
    let s = study();
    // The base trained 3 epochs over 2,000 images in 100 s; now 400 images (40 per class).
    commit(
        &store,
        &s,
        "base",
        |_| {},
        "old",
        100.0,
        "cpu",
        2,
        json!({ "train-images": 2000 }),
        BTreeMap::new(),
    );
    // The evaluation saw 400 test images in 8 s; now 200 (20 per class).
    let metrics = store
        .put_bytes(br#"{"images": 400, "split": "test"}"#)
        .unwrap();
    let outputs = BTreeMap::from([(crate::kinds::METRICS_FILE.to_owned(), metrics)]);
    commit(
        &store,
        &s,
        "ev",
        |_| {},
        "old",
        8.0,
        "cpu",
        2,
        json!({}),
        outputs,
    );
    let mut est = Estimator::new(&s, &store, "now");
    assert!(close(
        est.estimate(index(&s, "base"), "cpu", 2).seconds,
        20.0
    ));
    assert!(close(est.estimate(index(&s, "ev"), "cpu", 2).seconds, 4.0));
}

#[test]
fn without_records_the_figures_price_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(camino::Utf8PathBuf::try_from(dir.path().to_owned()).unwrap()).unwrap();
    let s = study();
    let mut est = Estimator::new(&s, &store, "now");
    // 1,200 training images at batch 32 and width 0.5 on 2 threads: the CPU table gives
    // sqrt(730 x 60.9) images/second (halfway between widths 0.25 and 1 in log scale).
    let e = est.estimate(index(&s, "base"), "cpu", 2);
    let rate = (730.0f64 * 60.9).sqrt();
    assert!(close(e.seconds, 1200.0 / rate + JOB_OVERHEAD_S), "{e:?}");
    assert_eq!(e.source, Source::Default);
    assert!(est.used_default_rates);
    // Saved bench figures take over: 8 threads, twice the defaults' speed for ResNet-18.
    let file = json!({
        "device": "cpu", "threads": 8, "kernels": "tarun", "measured": "now",
        "rows": [
            {"arch": "resnet18", "width": 0.25, "batch": 32,
             "train_images_per_s": 1460.0, "infer_images_per_s": 5000.0},
            {"arch": "resnet18", "width": 1.0, "batch": 32,
             "train_images_per_s": 121.8, "infer_images_per_s": 400.0}
        ]
    });
    let path = bench_path(store.root(), "cpu", Kernels::selected());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, file.to_string()).unwrap();
    let mut est = Estimator::new(&s, &store, "now");
    let e = est.estimate(index(&s, "base"), "cpu", 8);
    assert!(
        close(e.seconds, 1200.0 / (2.0 * rate) + JOB_OVERHEAD_S),
        "{e:?}"
    );
    assert_eq!(e.source, Source::Bench);
    // The report runs beside the jobs, from built-in constants.
    let r = est.estimate(index(&s, "r"), "cpu", 1);
    assert_eq!(r.source, Source::Default);
}

#[test]
fn durations_read_as_a_person_would_say_them() {
    assert_eq!(human(0.04), "0.0 s");
    assert_eq!(human(4.26), "4.3 s");
    assert_eq!(human(41.4), "41 s");
    assert_eq!(human(200.0), "3 min 20 s");
    assert_eq!(human(14.0 * 60.0 + 20.0), "14 min");
    assert_eq!(human(2.0 * 3600.0 + 3.0 * 60.0 + 10.0), "2 h 3 min");
    assert_eq!(human(50.0 * 3600.0), "2 d 2 h");
}
