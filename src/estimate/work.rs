//! What a node computes, in the units the throughput figures are in: images through a network in
//! training steps (at a batch size) and in inference (evaluation batches of 256), plus host work
//! that is not images (surgery, t-SNE, selection, the report), in seconds.
//!
//! The counts follow the node kinds' code (`src/kinds/train.rs`, `evaluate.rs`, `relearn.rs`);
//! where a count depends on how a run goes (the Anamnesis Index stops when the model has
//! relearned), the maximum is taken, so that the estimate errs long.

use serde_json::Value;
use tarun_core::manifest::{NodeKind, NodeSpec, Protocol, Study};

use crate::kinds;

/// CIFAR-10's images per class: 5,000 training and 1,000 test.
const CIFAR_TRAIN_PER_CLASS: f64 = 5000.0;
const CIFAR_TEST_PER_CLASS: f64 = 1000.0;
/// The synthetic generator's sizes when `[data]` leaves them open (`tarun-ml`'s
/// `SYNTHETIC_DEFAULT`; a test below checks them against the loaded splits).
const SYNTHETIC_TRAIN_PER_CLASS: f64 = 500.0;
const SYNTHETIC_TEST_PER_CLASS: f64 = 100.0;
const CLASSES: f64 = 10.0;

/// Batch of the relearning steps (`relearn::BATCH`).
const RELEARN_BATCH: f64 = 128.0;

/// Surgery (task vector, mask quantile, apply) per parameter and task vector, in seconds:
/// `surgery_perf`'s times for VGG-11-BN width 1 (128.8M parameters, one vector) with the exact
/// and with the seed's sampled quantile (docs/performance.md, sixth round), per parameter,
/// rounded up.
const SURGERY_S_PER_PARAM: f64 = 3e-9;
const SURGERY_SAMPLED_S_PER_PARAM: f64 = 4.5e-9;
/// Reading the checkpoints and writing the result around a surgery.
const SURGERY_FIXED_S: f64 = 0.02;
/// t-SNE's cost per squared point (1,000 iterations over every pair), in seconds.
const TSNE_S_PER_POINT_PAIR: f64 = 2e-6;
/// A `select` node reads its evaluations' records and scores them.
const SELECT_S: f64 = 0.02;
/// A `report` node renders Markdown, HTML, SVG and PNG figures: a fixed part and a part per
/// input record.
const REPORT_FIXED_S: f64 = 0.5;
const REPORT_PER_INPUT_S: f64 = 0.01;

/// Images per class of each split, as the study's `[data]` table makes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DataSizes {
    pub train_per_class: f64,
    pub test_per_class: f64,
    pub validation_per_class: f64,
}

impl DataSizes {
    /// The sizes `tarun-ml`'s `data::load` gives for the study's `[data]` (without loading it:
    /// a dry run of a CIFAR-10 study works where the data is not downloaded yet).
    pub fn of(study: &Study) -> Self {
        let int = |k: &str| study.data.get(k).and_then(Value::as_u64).map(|v| v as f64);
        let validation = int("validation-per-class").unwrap_or(0.0);
        let cifar = study.data.get("source").and_then(Value::as_str) == Some("cifar10");
        let (train, test) = if cifar {
            // Validation is held out of the 5,000 first, the cap applies to what remains.
            let left = CIFAR_TRAIN_PER_CLASS - validation;
            (
                int("train-per-class").map_or(left, |k| k.min(left)),
                int("test-per-class").map_or(CIFAR_TEST_PER_CLASS, |k| k.min(CIFAR_TEST_PER_CLASS)),
            )
        } else {
            (
                int("train-per-class").unwrap_or(SYNTHETIC_TRAIN_PER_CLASS),
                int("test-per-class").unwrap_or(SYNTHETIC_TEST_PER_CLASS),
            )
        };
        DataSizes {
            train_per_class: train,
            test_per_class: test,
            validation_per_class: validation,
        }
    }

    /// Every split `factor` times as large.
    pub fn scaled(self, factor: f64) -> Self {
        DataSizes {
            train_per_class: self.train_per_class * factor,
            test_per_class: self.test_per_class * factor,
            validation_per_class: self.validation_per_class * factor,
        }
    }

    /// Images of the split an evaluation runs on.
    pub fn eval_images(&self, split: &str) -> f64 {
        let per_class = if split == "validation" {
            self.validation_per_class
        } else {
            self.test_per_class
        };
        per_class * CLASSES
    }
}

/// One node's work.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Work {
    /// The network the images go through, `(arch, width)`; `None` for nodes without one.
    pub net: Option<(String, f64)>,
    /// Training passes: `(images, batch size)`.
    pub train: Vec<(f64, f64)>,
    /// Images through inference.
    pub infer: f64,
    /// Seconds of work that is not images, the same on every device.
    pub host_seconds: f64,
}

fn num(node: &NodeSpec, key: &str) -> Option<f64> {
    node.params.get(key).and_then(Value::as_f64)
}

fn list_len(node: &NodeSpec, key: &str) -> usize {
    node.params
        .get(key)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Images a `train` or `expert` node trains on in one epoch: its classes of the train split.
pub fn training_set(node: &NodeSpec, sizes: &DataSizes) -> f64 {
    let classes = match (list_len(node, "only"), list_len(node, "exclude")) {
        (0, 0) => CLASSES,
        (0, excluded) => (CLASSES - excluded as f64).max(0.0),
        (only, _) => only as f64,
    };
    classes * sizes.train_per_class
}

/// The node's work. `train_images` overrides the training-set size of a `train` or `expert`
/// node (a record says how many it trained on, whatever the data was then).
pub fn work_of(
    study: &Study,
    node: &NodeSpec,
    sizes: &DataSizes,
    train_images: Option<f64>,
) -> Work {
    let net = kinds::network(study, node);
    let mut work = Work {
        net: net.clone(),
        ..Work::default()
    };
    match node.kind {
        NodeKind::Train | NodeKind::Expert => {
            let n = train_images.unwrap_or_else(|| training_set(node, sizes));
            let batch = num(node, "batch-size").unwrap_or(128.0);
            let epochs = num(node, "epochs").unwrap_or(1.0);
            // `steps` caps the optimizer steps; each step is one batch.
            let images = match num(node, "steps") {
                Some(steps) => (n * epochs).min(steps * batch),
                None => n * epochs,
            };
            work.train.push((images, batch));
        }
        NodeKind::Ablate => work.host_seconds = surgery_seconds(study, node),
        NodeKind::Evaluate => evaluate(study, node, sizes, &mut work),
        NodeKind::Select => work.host_seconds = SELECT_S,
        NodeKind::Report => {
            work.host_seconds = REPORT_FIXED_S + REPORT_PER_INPUT_S * node.inputs.len() as f64;
        }
    }
    work
}

/// Seconds of an `ablate` node's surgery: per parameter and task vector.
fn surgery_seconds(study: &Study, node: &NodeSpec) -> f64 {
    let params = kinds::network(study, node)
        .and_then(|(arch, width)| kinds::parameters(&arch, width))
        .unwrap_or(0.0);
    let per_param = match node.params.get("quantile").and_then(Value::as_str) {
        Some("seed-sample") => SURGERY_SAMPLED_S_PER_PARAM,
        _ => SURGERY_S_PER_PARAM,
    };
    SURGERY_FIXED_S + params * per_param * list_len(node, "vectors").max(1) as f64
}

/// An evaluation: its model over the split, then each metric's extra passes (`evaluate.rs`).
fn evaluate(study: &Study, node: &NodeSpec, sizes: &DataSizes, work: &mut Work) {
    let split = node
        .params
        .get("split")
        .and_then(Value::as_str)
        .unwrap_or("test");
    let all = sizes.eval_images(split);
    // The forget class's images of the split, and of the train split (MIA members).
    let forget = all / CLASSES;
    let members = sizes.train_per_class;
    let corrected = study.protocol == Protocol::Corrected;
    let has = |k: &str| node.params.contains_key(k);
    work.infer = all;
    let metrics: Vec<&str> = node
        .params
        .get("metrics")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for metric in metrics {
        match metric {
            // The retrained model over the split.
            "kl" => work.infer += all,
            // The model and each random teacher over the forget class.
            "zrf" => {
                let teachers = if corrected {
                    num(node, "zrf-teachers").unwrap_or(1.0).max(1.0)
                } else {
                    1.0
                };
                work.infer += forget * (1.0 + teachers);
            }
            // Members and non-members, for the model (and the retrained one, corrected).
            "mia" => {
                let models = if corrected && has("retrained") {
                    2.0
                } else {
                    1.0
                };
                work.infer += models * (members + forget);
            }
            // The base model over the split (corrected only).
            "over-forgetting" if corrected => work.infer += all,
            "ain" => ain(node, corrected, all, forget, members, work),
            "tsne" => {
                let points = num(node, "tsne-points").unwrap_or(1500.0).min(all);
                work.host_seconds += TSNE_S_PER_POINT_PAIR * points * points;
            }
            _ => {}
        }
    }
    // A model that is an unmaterialised ablation is built by its surgery on every load.
    if let Some(model) = node
        .params
        .get("model")
        .and_then(Value::as_str)
        .and_then(|id| study.node(id))
        && model.kind == NodeKind::Ablate
        && model.params.get("materialize").and_then(Value::as_bool) != Some(true)
    {
        work.host_seconds += surgery_seconds(study, model);
    }
}

/// The Anamnesis Index at its maximum: the base model's forget accuracy, then two relearning
/// runs (the retrained model and the unlearned one) to `ain-max-steps`.
fn ain(node: &NodeSpec, corrected: bool, all: f64, forget: f64, members: f64, work: &mut Work) {
    let max = num(node, "ain-max-steps").unwrap_or(200.0);
    work.infer += forget;
    for _run in 0..2 {
        if corrected {
            // Steps on forget-class batches of 128, measured (forget and retain parts, i.e. the
            // whole split) about 20 times.
            let every = (max / 20.0).floor().max(1.0);
            work.train.push((max * RELEARN_BATCH, RELEARN_BATCH));
            work.infer += (max / every).ceil() * all;
        } else {
            // Epochs over the train split keeping the forget class's rows of each batch of 128
            // (about 13 images a step), and the forget accuracy after each.
            work.train.push((max * members, RELEARN_BATCH / CLASSES));
            work.infer += max * forget;
        }
    }
}

#[cfg(test)]
mod tests {
    use tarun_ml::data::{DataSpec, Source};

    use super::*;

    const STUDY: &str = r#"
        [study]
        name = "w"
        protocol = "corrected"
        [data]
        source = "synthetic"
        train-per-class = 40
        test-per-class = 20
        validation-per-class = 5
        [train.base]
        arch = "resnet18"
        width = 0.5
        lr = 0.1
        epochs = 3
        batch-size = 32
        [train.capped]
        arch = "resnet18"
        lr = 0.1
        epochs = 3
        steps = 4
        batch-size = 16
        exclude = [8]
        [expert.e]
        from = "base"
        lr = 0.1
        epochs = 2
        only = [8]
        [ablate.a]
        base = "base"
        vectors = [{ expert = "e", alpha = -1.0, rho = 0.5 }]
        [evaluate.full]
        model = "a"
        forget = 8
        split = "validation"
        retrained = "capped"
        base = "base"
        zrf-teachers = 3
        ain-max-steps = 40
        metrics = ["accuracy", "kl", "zrf", "mia", "over-forgetting", "ain"]
    "#;

    fn study() -> Study {
        tarun_core::manifest::parse_str("w.toml", STUDY, &[]).unwrap()
    }

    #[test]
    fn training_counts_epochs_classes_and_the_step_cap() {
        let s = study();
        let sizes = DataSizes::of(&s);
        let w = |id: &str| work_of(&s, s.node(id).unwrap(), &sizes, None);
        // 10 classes x 40 images x 3 epochs at batch 32, on ResNet-18 at half width.
        assert_eq!(w("base").train, [(1200.0, 32.0)]);
        assert_eq!(w("base").net, Some(("resnet18".into(), 0.5)));
        // 9 classes x 40 x 3 = 1080, capped at 4 steps of 16.
        assert_eq!(w("capped").train, [(64.0, 16.0)]);
        // One class, two epochs, the default batch; the network is its parent's.
        assert_eq!(w("e").train, [(80.0, 128.0)]);
        assert_eq!(w("e").net, Some(("resnet18".into(), 0.5)));
        // A record's training-set size replaces the data's.
        let e = work_of(&s, s.node("e").unwrap(), &sizes, Some(500.0));
        assert_eq!(e.train, [(1000.0, 128.0)]);
    }

    #[test]
    fn an_evaluation_counts_every_metric_pass() {
        let s = study();
        let sizes = DataSizes::of(&s);
        let w = work_of(&s, s.node("full").unwrap(), &sizes, None);
        // The validation split: 5 per class, 50 images; forget class 5; members 40.
        let (all, forget, members) = (50.0, 5.0, 40.0);
        let ain_evals = 20.0; // every 2 of 40 steps
        let infer = all // the model
            + all // kl: the retrained model
            + forget * (1.0 + 3.0) // zrf: the model and three teachers
            + 2.0 * (members + forget) // mia: the model and the retrained one
            + all // over-forgetting: the base model
            + forget + 2.0 * ain_evals * all; // ain: base accuracy, two runs' measurements
        assert_eq!(w.infer, infer);
        assert_eq!(w.train, [(40.0 * 128.0, 128.0), (40.0 * 128.0, 128.0)]);
        // Loading the unmaterialised ablation costs its surgery.
        let params = kinds::parameters("resnet18", 0.5).unwrap();
        let surgery = SURGERY_FIXED_S + params * SURGERY_S_PER_PARAM;
        assert!((w.host_seconds - surgery).abs() < 1e-12);
    }

    #[test]
    fn sizes_match_the_loaded_splits() {
        let s = study();
        let sizes = DataSizes::of(&s);
        let splits = tarun_ml::data::load(&DataSpec {
            source: Source::Synthetic,
            train_per_class: Some(40),
            test_per_class: Some(20),
            validation_per_class: 5,
            seed: 0,
        })
        .unwrap();
        assert_eq!(sizes.train_per_class * CLASSES, splits.train.len() as f64);
        assert_eq!(sizes.eval_images("test"), splits.test.len() as f64);
        assert_eq!(
            sizes.eval_images("validation"),
            splits.validation.len() as f64
        );
        // The generator's own defaults.
        let defaults = tarun_ml::data::load(&DataSpec {
            source: Source::Synthetic,
            train_per_class: None,
            test_per_class: None,
            validation_per_class: 0,
            seed: 0,
        })
        .unwrap();
        let mut open = s.clone();
        open.data.clear();
        let d = DataSizes::of(&open);
        assert_eq!(d.train_per_class * CLASSES, defaults.train.len() as f64);
        assert_eq!(d.eval_images("test"), defaults.test.len() as f64);
        // CIFAR-10: the cap applies after the validation images are held out.
        let mut cifar = s.clone();
        cifar.data = serde_json::json!({"source": "cifar10", "validation-per-class": 500})
            .as_object()
            .unwrap()
            .clone();
        let c = DataSizes::of(&cifar);
        assert_eq!((c.train_per_class, c.test_per_class), (4500.0, 1000.0));
    }
}
