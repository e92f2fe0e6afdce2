//! The Anamnesis Index's relearning runs (docs/study.md §7.6 and §10).
//!
//! The seed relearns with AdamW (lr 5e-6, weight decay 0.01) in epochs over the whole augmented
//! train set, keeping only the forget-class samples of each batch of 128 (about 13 images a
//! step), measures forget accuracy after each epoch, and counts epochs until it is within 5 points
//! of the base model's. The corrected protocol counts optimizer steps on forget-class batches,
//! measures every few steps, tracks retain accuracy and reports censored runs as bounds.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use tarun_core::engine::{Job, JobError};
use tarun_core::manifest::Protocol;
use tarun_core::manifest::params::scalar;
use tarun_ml::metrics::{self, AinEstimate, ConfusionMatrix, Logits, RelearnConfig, RelearnCurve};
use tarun_ml::models::{Mode, Network};
use tarun_ml::train::{Optimizer, OptimizerKind};

use super::data::{self, Dataset};
use super::failed;

/// The seed's margin: relearned means within 5 points of the base model's forget accuracy.
const MARGIN_PP: f64 = 5.0;
const BATCH: usize = 128;
const WEIGHT_DECAY: f64 = 0.01;

pub struct RelearnSetup<'a> {
    pub job: &'a Job,
    pub train: &'a Dataset,
    pub eval: &'a Arc<Dataset>,
    pub forget: u32,
    pub lr: f64,
    /// Epochs (seed protocol) or optimizer steps (corrected).
    pub max: u64,
    pub device: &'a Device,
}

pub struct AinResult {
    pub scalars: BTreeMap<String, f64>,
    pub curves: serde_json::Value,
}

pub fn anamnesis(
    s: &RelearnSetup<'_>,
    base: &Network,
    retrained: &Network,
    model: &Network,
) -> Result<AinResult, JobError> {
    let forget_set = Arc::new(s.eval.filter_classes(&[s.forget as u8], &[]));
    let base_acc = accuracy(base, &forget_set, s.device)?;
    let target = metrics::relearn_target(base_acc, MARGIN_PP);
    let seed_protocol = s.job.study.protocol == Protocol::Seed;
    let eval_every = if seed_protocol {
        1
    } else {
        (s.max / 20).max(1)
    };
    let config = RelearnConfig::new(target, s.max, eval_every).map_err(failed)?;
    // The seed relearns the retrained model first, then the unlearned one, on one RNG stream;
    // here each run has its own seed, so neither depends on the other.
    let comparison = run(s, retrained, &config, 1)?;
    let unlearned = run(s, model, &config, 2)?;
    let mut scalars = BTreeMap::new();
    scalars.insert(scalar::AIN_TARGET.into(), target);
    if seed_protocol {
        let ain = metrics::ain_seed(unlearned.seed_count(), comparison.seed_count());
        scalars.insert(scalar::AIN.into(), ain);
        scalars.insert(
            scalar::AIN_REACHED.into(),
            f64::from(u8::from(unlearned.reached)),
        );
    } else {
        let (value, reached) = match metrics::ain_corrected(&unlearned, &comparison) {
            AinEstimate::Exact(v) => (v, 1.0),
            AinEstimate::AtLeast(v) | AinEstimate::AtMost(v) => (v, 0.0),
            AinEstimate::Undefined => (f64::NAN, 0.0),
        };
        if value.is_finite() {
            scalars.insert(scalar::AIN.into(), value);
        }
        scalars.insert(scalar::AIN_REACHED.into(), reached);
    }
    scalars.insert(scalar::AIN_STEPS_UNLEARNED.into(), unlearned.steps as f64);
    scalars.insert(scalar::AIN_STEPS_RETRAINED.into(), comparison.steps as f64);
    let curves = serde_json::json!({
        "target": target,
        "unit": if seed_protocol { "epoch" } else { "step" },
        "unlearned": curve_json(&unlearned),
        "retrained": curve_json(&comparison),
    });
    Ok(AinResult { scalars, curves })
}

fn curve_json(c: &RelearnCurve) -> serde_json::Value {
    c.points
        .iter()
        .map(|p| {
            let mut v = serde_json::json!({ "step": p.step, "forget-acc": p.forget_acc });
            if let Some(r) = p.retain_acc {
                v["retain-acc"] = r.into();
            }
            v
        })
        .collect()
}

fn accuracy(net: &Network, ds: &Arc<Dataset>, device: &Device) -> Result<f64, JobError> {
    let (logits, labels) = data::eval_logits(net, ds, device)?;
    let view = Logits::new(&logits, net.num_classes()).map_err(failed)?;
    let cm = ConfusionMatrix::from_logits(view, &labels).map_err(failed)?;
    cm.overall()
        .require_percent("relearning accuracy")
        .map_err(failed)
}

/// Relearns a copy of `net`; `stream` keeps the two runs' data orders apart.
fn run(
    s: &RelearnSetup<'_>,
    net: &Network,
    config: &RelearnConfig,
    stream: u64,
) -> Result<RelearnCurve, JobError> {
    let net = net.deep_clone().map_err(failed)?;
    let mut opt = Optimizer::new(
        OptimizerKind::AdamW,
        net.trainable_vars(),
        WEIGHT_DECAY,
        0.0,
    )
    .map_err(failed)?;
    let forget_set = Arc::new(s.eval.filter_classes(&[s.forget as u8], &[]));
    let seed = s.job.study.seed.wrapping_mul(31).wrapping_add(stream);
    let f = s.forget as u8;
    let seed_protocol = s.job.study.protocol == Protocol::Seed;
    let train_all = Arc::new(s.train.clone());
    let train_forget = Arc::new(s.train.filter_classes(&[f], &[]));
    let mut epoch = 0u64;
    let mut stream_batches =
        data::batches(train_forget.clone(), BATCH, true, true, seed, 0, s.device);
    let mut step = || -> Result<(), JobError> {
        if s.job.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        if seed_protocol {
            // One step of the loop = one epoch over the full train set, filtered to the class.
            for batch in data::batches(train_all.clone(), BATCH, true, true, seed, epoch, s.device)
            {
                let (x, y) = batch?;
                if let Some((x, y)) = keep_class(&x, &y, s.forget)? {
                    sgd_step(&net, &mut opt, &x, &y, s.lr)?;
                }
            }
            epoch += 1;
        } else {
            let (x, y) = match stream_batches.next() {
                Some(b) => b?,
                None => {
                    epoch += 1;
                    stream_batches = data::batches(
                        train_forget.clone(),
                        BATCH,
                        true,
                        true,
                        seed,
                        epoch,
                        s.device,
                    );
                    stream_batches
                        .next()
                        .ok_or_else(|| failed("no forget-class images to relearn"))??
                }
            };
            sgd_step(&net, &mut opt, &x, &y, s.lr)?;
        }
        Ok(())
    };
    let measure = || accuracy(&net, &forget_set, s.device);
    if seed_protocol {
        metrics::relearn(config, &mut step, measure)
    } else {
        let retain_set = Arc::new(s.eval.filter_classes(&[], &[f]));
        metrics::relearn_tracking_retain(config, &mut step, measure, || {
            accuracy(&net, &retain_set, s.device)
        })
    }
}

/// The forget-class rows of a batch, or `None` when at most one remains (the seed skips those).
fn keep_class(x: &Tensor, y: &Tensor, class: u32) -> Result<Option<(Tensor, Tensor)>, JobError> {
    let labels = y.to_vec1::<u32>().map_err(failed)?;
    let idx: Vec<u32> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == class)
        .map(|(i, _)| i as u32)
        .collect();
    if idx.len() <= 1 {
        return Ok(None);
    }
    let idx = Tensor::new(idx.as_slice(), x.device()).map_err(failed)?;
    Ok(Some((
        x.index_select(&idx, 0).map_err(failed)?,
        y.index_select(&idx, 0).map_err(failed)?,
    )))
}

fn sgd_step(
    net: &Network,
    opt: &mut Optimizer,
    x: &Tensor,
    y: &Tensor,
    lr: f64,
) -> Result<(), JobError> {
    let taped = net.forward_taped(x, Mode::TRAIN).map_err(failed)?;
    let loss = candle_nn::loss::cross_entropy(&taped.logits, y).map_err(failed)?;
    let grads = taped.backward(&loss).map_err(failed)?;
    opt.step(&grads, lr).map_err(failed)
}
