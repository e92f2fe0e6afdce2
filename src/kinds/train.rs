//! `train` (from scratch) and `expert` (fine-tune a parent checkpoint) nodes.
//!
//! Both train on the study's train split filtered by `only` / `exclude`, with the seed's
//! augmentation, and write `model.safetensors` with torchvision key names. The per-epoch loss
//! and accuracy stream to the progress bar and land in the node record. The literature's
//! unlearning baselines (`objective = "fine-tune" | "l1-sparse" | "scrub" | "salun"`,
//! docs/study.md §5.1) instead split the train split by `forget` into forget, retained and mixed
//! passes for `tarun_ml::unlearn`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tarun_core::engine::{Job, JobError, JobOutput};
use tarun_core::manifest::Protocol;
use tarun_core::manifest::params::{
    self as manifest, ExpertParams, SGD_MOMENTUM, TrainParams, Training, baseline_defaults,
};
use tarun_ml::checkpoint;
use tarun_ml::models::{Arch, Network};
use tarun_ml::train::{
    self, EpochStats, Objective, Optimization, OptimizerKind, RandomLabelRule, Schedule, StepInfo,
    TrainConfig, TrainError, TrainHooks, TrainSummary,
};
use tarun_ml::unlearn::{self, BatchError, Batches, Method, UnlearnConfig, UnlearnData};

use super::data::{self, open_device};
use super::model::{MODEL_FILE, load_model};
use super::{failed, params};

pub const VERSION: u32 = 1;

pub fn run_train(job: &Job) -> Result<JobOutput, JobError> {
    let p: TrainParams = params(job)?;
    let device = open_device(job)?;
    let arch = match p.arch {
        manifest::Arch::Resnet18 => Arch::Resnet18,
        manifest::Arch::Vgg11Bn => Arch::Vgg11Bn,
        manifest::Arch::MobilenetV2 => Arch::MobilenetV2,
    };
    let splits = data::splits(job)?;
    let net = Network::new(
        arch,
        p.width,
        splits.num_classes(),
        p.training.seed,
        &device,
    )
    .map_err(failed)?;
    fit(job, net, &p.training, &splits)
}

pub fn run_expert(job: &Job) -> Result<JobOutput, JobError> {
    let p: ExpertParams = params(job)?;
    let device = open_device(job)?;
    let parent = job
        .input(&p.from)
        .ok_or_else(|| failed(format!("input `{}` missing", p.from)))?;
    let net = load_model(job, parent, &device)?;
    let splits = data::splits(job)?;
    fit(job, net, &p.training, &splits)
}

/// The optimiser and schedule of a `train` or `expert` node, training or unlearning.
fn optimization(r: &Training) -> Optimization {
    Optimization {
        optimizer: match r.optimizer {
            manifest::Optimizer::AdamW => OptimizerKind::AdamW,
            manifest::Optimizer::Sgd => OptimizerKind::Sgd,
        },
        lr: r.lr,
        weight_decay: r.weight_decay,
        // Only sgd reads it; the checkpoint's recipe records this value for adamw too.
        momentum: r.momentum.unwrap_or(SGD_MOMENTUM),
        epochs: r.epochs,
        max_steps: r.steps,
        schedule: match r.schedule {
            manifest::Schedule::Constant => Schedule::Constant,
            manifest::Schedule::Cosine => Schedule::Cosine,
        },
    }
}

/// The training configuration of a `train::fit` objective; `None` for the unlearning baselines.
fn config(job: &Job, r: &Training) -> Option<TrainConfig> {
    let objective = match r.objective {
        manifest::Objective::Ce => Objective::Ce,
        manifest::Objective::GradientAscent => Objective::GradientAscent,
        manifest::Objective::RandomLabels => Objective::RandomLabels {
            rule: match job.study.protocol {
                Protocol::Seed => RandomLabelRule::Seed,
                Protocol::Corrected => RandomLabelRule::Uniform,
            },
        },
        manifest::Objective::FineTune
        | manifest::Objective::L1Sparse
        | manifest::Objective::Scrub
        | manifest::Objective::Salun => return None,
    };
    Some(TrainConfig {
        optim: optimization(r),
        objective,
        seed: r.seed,
    })
}

fn fit(
    job: &Job,
    mut net: Network,
    r: &Training,
    splits: &data::Splits,
) -> Result<JobOutput, JobError> {
    let Some(cfg) = config(job, r) else {
        return unlearn_baseline(job, net, r, splits);
    };
    let only = r.only.as_deref().unwrap_or_default();
    let exclude = r.exclude.as_deref().unwrap_or_default();
    let train_set = Arc::new(splits.train.filter_classes(only, exclude));
    if train_set.is_empty() {
        return Err(failed("the class filter leaves no training images"));
    }
    let per_epoch = train_set.len().div_ceil(r.batch_size) as u64;
    let total = cfg
        .optim
        .max_steps
        .map_or(per_epoch * cfg.optim.epochs, |m| {
            m.min(per_epoch * cfg.optim.epochs)
        });
    job.log(format!(
        "{} images, {} epochs x {per_epoch} steps (batch {}), {} on {}",
        train_set.len(),
        cfg.optim.epochs,
        r.batch_size,
        net.arch().name(),
        job.device
    ));
    let device = net.device().clone();
    let batches = |epoch: u64| {
        data::batches(
            train_set.clone(),
            r.batch_size,
            true,
            r.augment,
            cfg.seed,
            epoch,
            &device,
        )
    };
    let mut hooks = Hooks {
        job,
        total,
        epochs: vec![],
    };
    let summary = train::fit(&mut net, &cfg, batches, &mut hooks).map_err(|e| match e {
        TrainError::Cancelled { .. } => JobError::Cancelled,
        other => failed(format!("{other}")),
    })?;
    let recipe = serde_json::to_string(&cfg).map_err(failed)?;
    finish(
        job,
        &net,
        recipe,
        train_set.len(),
        &summary,
        serde_json::Map::new(),
    )
}

/// Saves the checkpoint (its metadata carry the recipe) and returns the record's summary.
fn finish(
    job: &Job,
    net: &Network,
    recipe: String,
    train_images: usize,
    summary: &TrainSummary,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<JobOutput, JobError> {
    let meta = BTreeMap::from([
        ("recipe".to_owned(), recipe),
        ("node".to_owned(), job.node.id.clone()),
    ]);
    checkpoint::save(net, job.out_dir.join(MODEL_FILE).as_std_path(), &meta)
        .map_err(|e| failed(format!("{e:#}")))?;
    let mut summary = serde_json::json!({
        "arch": net.arch().name(),
        "width": net.width(),
        "train-images": train_images,
        "train": summary,
    });
    summary
        .as_object_mut()
        .expect("a JSON object")
        .extend(extra);
    Ok(JobOutput {
        summary,
        log: vec![],
    })
}

/// The method of an unlearning baseline, with the published settings where the node leaves a
/// key out (docs/study.md §5.1).
fn method(r: &Training) -> Option<Method> {
    use baseline_defaults as d;
    Some(match r.objective {
        manifest::Objective::FineTune => Method::FineTune,
        manifest::Objective::L1Sparse => Method::L1Sparse {
            gamma: r.l1_gamma.unwrap_or(d::L1_GAMMA),
        },
        manifest::Objective::Scrub => Method::Scrub {
            temperature: r.scrub_temperature.unwrap_or(d::SCRUB_TEMPERATURE),
            alpha: r.scrub_alpha.unwrap_or(d::SCRUB_ALPHA),
            gamma: r.scrub_gamma.unwrap_or(d::SCRUB_GAMMA),
            max_epochs: r.scrub_max_epochs.unwrap_or(d::SCRUB_MAX_EPOCHS),
        },
        manifest::Objective::Salun => Method::SalUn {
            sparsity: r.salun_sparsity.unwrap_or(d::SALUN_SPARSITY),
        },
        manifest::Objective::Ce
        | manifest::Objective::GradientAscent
        | manifest::Objective::RandomLabels => return None,
    })
}

/// The train split seen three ways: the forget class, the other classes, and all of it.
struct Sets {
    forget: Arc<data::Dataset>,
    retain: Arc<data::Dataset>,
    mixed: Arc<data::Dataset>,
    batch_size: usize,
    forget_batch_size: usize,
    augment: bool,
    seed: u64,
    device: candle_core::Device,
}

impl Sets {
    fn pass(&self, ds: &Arc<data::Dataset>, batch_size: usize, epoch: u64) -> Batches<'static> {
        let it = data::batches(
            ds.clone(),
            batch_size,
            true,
            self.augment,
            self.seed,
            epoch,
            &self.device,
        );
        Box::new(it.map(|b| b.map_err(|e| Box::new(e) as BatchError)))
    }

    /// Optimizer steps per epoch of `method`, without a step cap.
    fn steps_per_epoch(&self, method: &Method, epoch: u64) -> u64 {
        let steps = |ds: &data::Dataset, b: usize| ds.len().div_ceil(b) as u64;
        match method {
            Method::FineTune | Method::L1Sparse { .. } => steps(&self.retain, self.batch_size),
            Method::Scrub { max_epochs, .. } => {
                let max = if epoch < *max_epochs {
                    steps(&self.forget, self.forget_batch_size)
                } else {
                    0
                };
                max + steps(&self.retain, self.batch_size)
            }
            Method::SalUn { .. } => steps(&self.mixed, self.batch_size),
        }
    }
}

impl UnlearnData for Sets {
    fn forget(&mut self, epoch: u64) -> Batches<'_> {
        self.pass(&self.forget, self.forget_batch_size, epoch)
    }
    fn retain(&mut self, epoch: u64) -> Batches<'_> {
        self.pass(&self.retain, self.batch_size, epoch)
    }
    fn mixed(&mut self, epoch: u64) -> Batches<'_> {
        self.pass(&self.mixed, self.batch_size, epoch)
    }
}

/// Runs one of the literature's unlearning baselines on `net` (docs/study.md §5.1).
fn unlearn_baseline(
    job: &Job,
    mut net: Network,
    r: &Training,
    splits: &data::Splits,
) -> Result<JobOutput, JobError> {
    let method = method(r).ok_or_else(|| failed(format!("`{}` is not a baseline", r.objective)))?;
    let forget = r
        .forget
        .ok_or_else(|| failed(format!("`objective = \"{}\"` needs `forget`", r.objective)))?;
    let cfg = UnlearnConfig {
        method,
        optim: optimization(r),
        forget_classes: vec![u32::from(forget)],
        seed: r.seed,
    };
    let mut sets = Sets {
        forget: Arc::new(splits.train.filter_classes(&[forget], &[])),
        retain: Arc::new(splits.train.filter_classes(&[], &[forget])),
        mixed: Arc::new(splits.train.filter_classes(&[], &[])),
        batch_size: r.batch_size,
        forget_batch_size: r.forget_batch_size.unwrap_or(r.batch_size),
        augment: r.augment,
        seed: r.seed,
        device: net.device().clone(),
    };
    if sets.forget.is_empty() || sets.retain.is_empty() {
        return Err(failed(format!(
            "forgetting class {forget} leaves {} forget and {} retained training images",
            sets.forget.len(),
            sets.retain.len()
        )));
    }
    let planned: u64 = (0..cfg.optim.epochs)
        .map(|e| sets.steps_per_epoch(&method, e))
        .sum();
    let total = cfg.optim.max_steps.map_or(planned, |m| m.min(planned));
    job.log(format!(
        "{}: forget class {forget} ({} images), {} retained, {} epochs, {total} steps (batch {}), {} on {}",
        method.name(),
        sets.forget.len(),
        sets.retain.len(),
        cfg.optim.epochs,
        r.batch_size,
        net.arch().name(),
        job.device
    ));
    let mut hooks = Hooks {
        job,
        total,
        epochs: vec![],
    };
    let summary = unlearn::unlearn(&mut net, &cfg, &mut sets, &mut hooks).map_err(|e| match e {
        TrainError::Cancelled { .. } => JobError::Cancelled,
        other => failed(format!("{other}")),
    })?;
    let images = match method {
        Method::SalUn { .. } => sets.mixed.len(),
        _ => sets.retain.len(),
    };
    let extra = serde_json::Map::from_iter([
        ("method".to_owned(), method.name().into()),
        ("forget".to_owned(), forget.into()),
    ]);
    let recipe = serde_json::to_string(&cfg).map_err(failed)?;
    finish(job, &net, recipe, images, &summary, extra)
}

struct Hooks<'a> {
    job: &'a Job,
    total: u64,
    epochs: Vec<EpochStats>,
}

impl TrainHooks for Hooks<'_> {
    fn on_step(&mut self, info: &StepInfo) {
        let msg = format!("epoch {} loss {:.4}", info.epoch + 1, info.loss);
        self.job.progress(info.step, self.total, msg);
    }

    fn on_epoch(&mut self, stats: &EpochStats) {
        self.job.detail(format!(
            "epoch {}: loss {:.4}, train accuracy {:.1}%, lr {:.2e}",
            stats.epoch + 1,
            stats.mean_loss,
            100.0 * stats.train_accuracy,
            stats.lr
        ));
        self.epochs.push(stats.clone());
    }

    fn should_stop(&mut self) -> bool {
        self.job.is_cancelled()
    }
}
