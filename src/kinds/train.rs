//! `train` (from scratch) and `expert` (fine-tune a parent checkpoint) nodes.
//!
//! Both train on the study's train split filtered by `only` / `exclude`, with the seed's
//! augmentation, and write `model.safetensors` with torchvision key names. The per-epoch loss
//! and accuracy stream to the progress bar and land in the node record.

use std::collections::BTreeMap;
use std::sync::Arc;

use tarun_core::engine::{Job, JobError, JobOutput};
use tarun_core::manifest::Protocol;
use tarun_core::manifest::params::{
    self as manifest, ExpertParams, SGD_MOMENTUM, TrainParams, Training,
};
use tarun_ml::checkpoint;
use tarun_ml::models::{Arch, Network};
use tarun_ml::train::{
    self, EpochStats, Objective, OptimizerKind, RandomLabelRule, Schedule, StepInfo, TrainConfig,
    TrainError, TrainHooks,
};

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

fn config(job: &Job, r: &Training) -> TrainConfig {
    let optimizer = match r.optimizer {
        manifest::Optimizer::AdamW => OptimizerKind::AdamW,
        manifest::Optimizer::Sgd => OptimizerKind::Sgd,
    };
    let schedule = match r.schedule {
        manifest::Schedule::Constant => Schedule::Constant,
        manifest::Schedule::Cosine => Schedule::Cosine,
    };
    let objective = match r.objective {
        manifest::Objective::Ce => Objective::Ce,
        manifest::Objective::GradientAscent => Objective::GradientAscent,
        manifest::Objective::RandomLabels => Objective::RandomLabels {
            rule: match job.study.protocol {
                Protocol::Seed => RandomLabelRule::Seed,
                Protocol::Corrected => RandomLabelRule::Uniform,
            },
        },
    };
    TrainConfig {
        optimizer,
        lr: r.lr,
        weight_decay: r.weight_decay,
        // Only sgd reads it; the checkpoint's recipe records this value for adamw too.
        momentum: r.momentum.unwrap_or(SGD_MOMENTUM),
        epochs: r.epochs,
        max_steps: r.steps,
        schedule,
        objective,
        seed: r.seed,
    }
}

fn fit(
    job: &Job,
    mut net: Network,
    r: &Training,
    splits: &data::Splits,
) -> Result<JobOutput, JobError> {
    let cfg = config(job, r);
    let only = r.only.as_deref().unwrap_or_default();
    let exclude = r.exclude.as_deref().unwrap_or_default();
    let train_set = Arc::new(splits.train.filter_classes(only, exclude));
    if train_set.is_empty() {
        return Err(failed("the class filter leaves no training images"));
    }
    let per_epoch = train_set.len().div_ceil(r.batch_size) as u64;
    let total = cfg
        .max_steps
        .map_or(per_epoch * cfg.epochs, |m| m.min(per_epoch * cfg.epochs));
    job.log(format!(
        "{} images, {} epochs x {per_epoch} steps (batch {}), {} on {}",
        train_set.len(),
        cfg.epochs,
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
    let meta = BTreeMap::from([
        (
            "recipe".to_owned(),
            serde_json::to_string(&cfg).map_err(failed)?,
        ),
        ("node".to_owned(), job.node.id.clone()),
    ]);
    checkpoint::save(&net, job.out_dir.join(MODEL_FILE).as_std_path(), &meta)
        .map_err(|e| failed(format!("{e:#}")))?;
    let summary = serde_json::json!({
        "arch": net.arch().name(),
        "width": net.width(),
        "train-images": train_set.len(),
        "train": summary,
    });
    Ok(JobOutput {
        summary,
        log: vec![],
    })
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
