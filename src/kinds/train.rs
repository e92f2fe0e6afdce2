//! `train` (from scratch) and `expert` (fine-tune a parent checkpoint) nodes.
//!
//! Both train on the study's train split filtered by `only` / `exclude`, with the seed's
//! augmentation, and write `model.safetensors` with torchvision key names. The per-epoch loss
//! and accuracy stream to the progress bar and land in the node record.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use tarun_core::engine::{Job, JobError, JobOutput};
use tarun_core::manifest::Protocol;
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

/// Training keys shared by `train` and `expert` (docs/manifest.md).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Recipe {
    #[serde(default = "adamw")]
    optimizer: String,
    lr: f64,
    #[serde(default = "default_wd")]
    weight_decay: f64,
    #[serde(default = "default_momentum")]
    momentum: f64,
    #[serde(default = "one")]
    epochs: u64,
    #[serde(default)]
    steps: Option<u64>,
    #[serde(default = "default_batch")]
    batch_size: usize,
    #[serde(default = "constant")]
    schedule: String,
    #[serde(default = "yes")]
    augment: bool,
    #[serde(default = "ce")]
    objective: String,
    #[serde(default)]
    only: Vec<u8>,
    #[serde(default)]
    exclude: Vec<u8>,
    #[serde(default)]
    seed: Option<u64>,
}

fn adamw() -> String {
    "adamw".into()
}
fn default_wd() -> f64 {
    0.01
}
fn default_momentum() -> f64 {
    0.9
}
fn one() -> u64 {
    1
}
fn default_batch() -> usize {
    128
}
fn constant() -> String {
    "constant".into()
}
fn yes() -> bool {
    true
}
fn ce() -> String {
    "ce".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TrainParams {
    arch: String,
    #[serde(default = "unit_width")]
    width: f64,
    #[serde(flatten)]
    recipe: Recipe,
}

fn unit_width() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ExpertParams {
    from: String,
    #[serde(flatten)]
    recipe: Recipe,
}

pub fn run_train(job: &Job) -> Result<JobOutput, JobError> {
    let p: TrainParams = params(job)?;
    let device = open_device(job)?;
    let arch: Arch = p.arch.parse().map_err(failed)?;
    let splits = data::splits(job)?;
    let seed = p.recipe.seed.unwrap_or(job.study.seed);
    let net = Network::new(arch, p.width, splits.num_classes(), seed, &device).map_err(failed)?;
    fit(job, net, &p.recipe, &splits)
}

pub fn run_expert(job: &Job) -> Result<JobOutput, JobError> {
    let p: ExpertParams = params(job)?;
    let device = open_device(job)?;
    let parent = job
        .input(&p.from)
        .ok_or_else(|| failed(format!("input `{}` missing", p.from)))?;
    let net = load_model(job, parent, &device)?;
    let splits = data::splits(job)?;
    fit(job, net, &p.recipe, &splits)
}

fn config(job: &Job, r: &Recipe) -> Result<TrainConfig, JobError> {
    let optimizer = match r.optimizer.as_str() {
        "adamw" => OptimizerKind::AdamW,
        "sgd" => OptimizerKind::Sgd,
        other => return Err(failed(format!("unknown optimizer `{other}`"))),
    };
    let schedule = match r.schedule.as_str() {
        "constant" => Schedule::Constant,
        "cosine" => Schedule::Cosine,
        other => return Err(failed(format!("unknown schedule `{other}`"))),
    };
    let objective = match r.objective.as_str() {
        "ce" => Objective::Ce,
        "gradient-ascent" => Objective::GradientAscent,
        "random-labels" => Objective::RandomLabels {
            rule: match job.study.protocol {
                Protocol::Seed => RandomLabelRule::Seed,
                Protocol::Corrected => RandomLabelRule::Uniform,
            },
        },
        other => return Err(failed(format!("unknown objective `{other}`"))),
    };
    Ok(TrainConfig {
        optimizer,
        lr: r.lr,
        weight_decay: r.weight_decay,
        momentum: r.momentum,
        epochs: r.epochs,
        max_steps: r.steps,
        schedule,
        objective,
        seed: r.seed.unwrap_or(job.study.seed),
    })
}

fn fit(
    job: &Job,
    mut net: Network,
    r: &Recipe,
    splits: &data::Splits,
) -> Result<JobOutput, JobError> {
    let cfg = config(job, r)?;
    let train_set = Arc::new(splits.train.filter_classes(&r.only, &r.exclude));
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
