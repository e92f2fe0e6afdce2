//! `evaluate`: the study's metrics for one model (docs/study.md §7; corrected variants from §10).
//!
//! Writes `metrics.json` (every metric, per-class accuracies, confusion matrix, relearning
//! curves, t-SNE coordinates) and keeps the flat scalar metrics in the node record's summary,
//! where `select` and `report` read them.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::Device;
use tarun_core::engine::{Job, JobError, JobOutput};
use tarun_core::manifest::Protocol;
use tarun_core::manifest::params::{EvaluateParams, Metric, Split, scalar};
use tarun_ml::metrics::{self, ConfusionMatrix, Logits, TsneConfig};
use tarun_ml::models::Network;

use super::data::{self, Dataset, Splits, open_device};
use super::model::load_model;
use super::relearn::{self, RelearnSetup};
use super::{failed, params, write_json};

pub const VERSION: u32 = 1;
pub const METRICS_FILE: &str = "metrics.json";

/// What one evaluation has at hand.
struct Ctx<'a> {
    job: &'a Job,
    p: EvaluateParams,
    device: Device,
    splits: Arc<Splits>,
    eval: Arc<Dataset>,
    net: Network,
    logits: Vec<f32>,
    labels: Vec<u32>,
    cm: ConfusionMatrix,
    out: serde_json::Map<String, serde_json::Value>,
    scalars: BTreeMap<String, f64>,
}

pub fn run(job: &Job) -> Result<JobOutput, JobError> {
    let p: EvaluateParams = params(job)?;
    let device = open_device(job)?;
    let splits = data::splits(job)?;
    let eval = Arc::new(match p.split {
        Split::Test => splits.test.clone(),
        Split::Validation if splits.validation.is_empty() => {
            return Err(failed(
                "split = \"validation\" but the data has validation-per-class = 0",
            ));
        }
        Split::Validation => splits.validation.clone(),
    });
    let input = job
        .input(&p.model)
        .ok_or_else(|| failed(format!("input `{}` missing", p.model)))?;
    let net = load_model(job, input, &device)?;
    let (logits, labels) = data::eval_logits(&net, &eval, &device)?;
    let cm = ConfusionMatrix::from_logits(logits_view(&logits, &net)?, &labels).map_err(failed)?;
    let mut ctx = Ctx {
        job,
        p,
        device,
        splits,
        eval,
        net,
        logits,
        labels,
        cm,
        out: serde_json::Map::new(),
        scalars: BTreeMap::new(),
    };
    for metric in ctx.p.metrics.clone() {
        ctx.compute(metric).map_err(|e| match e {
            JobError::Failed(m) => failed(format!("metric `{metric}`: {m}")),
            other => other,
        })?;
        if job.is_cancelled() {
            return Err(JobError::Cancelled);
        }
    }
    ctx.finish()
}

fn logits_view<'a>(data: &'a [f32], net: &Network) -> Result<Logits<'a>, JobError> {
    Logits::new(data, net.num_classes()).map_err(failed)
}

impl Ctx<'_> {
    fn forget(&self) -> Result<u32, JobError> {
        self.p
            .forget
            .map(u32::from)
            .ok_or_else(|| failed("needs `forget`"))
    }

    fn other_model(&self, which: &Option<String>, key: &str) -> Result<Network, JobError> {
        let id = which
            .as_ref()
            .ok_or_else(|| failed(format!("needs `{key}`")))?;
        let input = self
            .job
            .input(id)
            .ok_or_else(|| failed(format!("input `{id}` missing")))?;
        load_model(self.job, input, &self.device)
    }

    fn compute(&mut self, metric: Metric) -> Result<(), JobError> {
        match metric {
            Metric::Accuracy => {
                let acc = self
                    .cm
                    .overall()
                    .require_percent("accuracy")
                    .map_err(failed)?;
                self.scalars.insert(scalar::ACCURACY.into(), acc);
            }
            Metric::PerClass => {
                let per: Vec<Option<f64>> =
                    self.cm.per_class().iter().map(|t| t.percent()).collect();
                self.out.insert("per-class".into(), serde_json::json!(per));
            }
            Metric::ForgetAcc | Metric::RetainAcc => {
                let fr = self.cm.forget_retain(self.forget()?).map_err(failed)?;
                let f = fr
                    .forget
                    .require_percent("forget accuracy")
                    .map_err(failed)?;
                let r = fr
                    .retain
                    .require_percent("retain accuracy")
                    .map_err(failed)?;
                self.scalars.insert(scalar::FORGET_ACC.into(), f);
                self.scalars.insert(scalar::RETAIN_ACC.into(), r);
            }
            Metric::Confusion => {
                self.out
                    .insert("confusion".into(), serde_json::json!(self.cm.to_rows()));
            }
            Metric::Kl => self.kl()?,
            Metric::Zrf => self.zrf()?,
            Metric::Mia => self.mia()?,
            Metric::MiaEfficacy => self.mia_efficacy()?,
            Metric::OverForgetting => self.over_forgetting()?,
            Metric::Ain => self.ain()?,
            Metric::Tsne => self.tsne()?,
        }
        Ok(())
    }

    /// KL(retrained || model) on the forget and retain parts of the split (docs/study.md §7.2).
    fn kl(&mut self) -> Result<(), JobError> {
        let retrained = self.other_model(&self.p.retrained, "retrained")?;
        let (ref_logits, _) = data::eval_logits(&retrained, &self.eval, &self.device)?;
        let split = metrics::kl_forget_retain(
            logits_view(&ref_logits, &self.net)?,
            logits_view(&self.logits, &self.net)?,
            &self.labels,
            self.forget()?,
        )
        .map_err(failed)?;
        self.scalars.insert(scalar::KL_FORGET.into(), split.forget);
        self.scalars.insert(scalar::KL_RETAIN.into(), split.retain);
        Ok(())
    }

    /// ZRF against randomly initialised teachers of the same architecture, on the forget part
    /// (docs/study.md §7.3); the corrected protocol averages several teachers.
    fn zrf(&mut self) -> Result<(), JobError> {
        let forget = Arc::new(self.eval.filter_classes(&[self.forget()? as u8], &[]));
        let (model_logits, _) = data::eval_logits(&self.net, &forget, &self.device)?;
        let teachers = match self.job.study.protocol {
            Protocol::Seed => 1,
            Protocol::Corrected => self.p.zrf_teachers.max(1),
        };
        let mut teacher_logits = vec![];
        for k in 0..teachers {
            let seed = self.job.study.seed.wrapping_add(1 + k);
            let teacher = Network::new(
                self.net.arch(),
                self.net.width(),
                self.net.num_classes(),
                seed,
                &self.device,
            )
            .map_err(failed)?;
            teacher_logits.push(data::eval_logits(&teacher, &forget, &self.device)?.0);
        }
        let views: Vec<Logits<'_>> = teacher_logits
            .iter()
            .map(|t| logits_view(t, &self.net))
            .collect::<Result<_, _>>()?;
        let z =
            metrics::zrf_multi(logits_view(&model_logits, &self.net)?, &views).map_err(failed)?;
        self.scalars.insert(scalar::ZRF.into(), z.mean);
        if teachers > 1 {
            self.scalars.insert(scalar::ZRF_STD.into(), z.std);
        }
        Ok(())
    }

    /// Entropy MIA AUC: forget-class train images (members) against forget-class images of the
    /// split (non-members), docs/study.md §7.4. The seed's members carry training augmentation; the
    /// corrected protocol uses clean images and also reports the retrained model's AUC.
    fn mia(&mut self) -> Result<(), JobError> {
        let f = self.forget()? as u8;
        let members = Arc::new(self.splits.train.filter_classes(&[f], &[]));
        let non_members = Arc::new(self.eval.filter_classes(&[f], &[]));
        let augmented = self.job.study.protocol == Protocol::Seed;
        let auc = |net: &Network| -> Result<f64, JobError> {
            let m = data::logits_with(net, &members, augmented, self.job.study.seed, &self.device)?;
            let n = data::eval_logits(net, &non_members, &self.device)?.0;
            metrics::entropy_mia_auc(logits_view(&m, net)?, logits_view(&n, net)?).map_err(failed)
        };
        let model_auc = auc(&self.net)?;
        self.scalars.insert(scalar::MIA_AUC.into(), model_auc);
        if self.job.study.protocol == Protocol::Corrected && self.p.retrained.is_some() {
            let retrained = self.other_model(&self.p.retrained, "retrained")?;
            self.scalars
                .insert(scalar::MIA_AUC_RETRAINED.into(), auc(&retrained)?);
        }
        Ok(())
    }

    /// MIA-efficacy (docs/study.md §7.10): a confidence-threshold attacker fitted on shadow
    /// members (a seeded subset of the retained classes' training images, as many as the
    /// non-members) against shadow non-members (the retained classes' images of the split), then
    /// applied to the forget class's training images; the percentage it calls non-members. Every
    /// image goes through the test transform. With `retrained` the corrected protocol also
    /// reports the retrained model's value, the target.
    fn mia_efficacy(&mut self) -> Result<(), JobError> {
        let f = self.forget()? as u8;
        let retain_train = self.splits.train.filter_classes(&[], &[f]);
        let non_members = Arc::new(self.eval.filter_classes(&[], &[f]));
        let pick =
            metrics::shadow_subset(retain_train.len(), non_members.len(), self.job.study.seed);
        let members = Arc::new(retain_train.subset(&pick));
        let targets = Arc::new(self.splits.train.filter_classes(&[f], &[]));
        let confidence = |net: &Network, ds: &Arc<Dataset>| -> Result<Vec<f64>, JobError> {
            let (logits, labels) = data::eval_logits(net, ds, &self.device)?;
            metrics::true_label_confidence(logits_view(&logits, net)?, &labels).map_err(failed)
        };
        let efficacy = |net: &Network, non: &[f64]| -> Result<f64, JobError> {
            let m = confidence(net, &members)?;
            let t = confidence(net, &targets)?;
            metrics::mia_efficacy(&m, non, &t).map_err(failed)
        };
        // This model's non-member confidences come from the split's logits already at hand.
        let all =
            metrics::true_label_confidence(logits_view(&self.logits, &self.net)?, &self.labels)
                .map_err(failed)?;
        let non: Vec<f64> = all
            .iter()
            .zip(&self.labels)
            .filter(|&(_, &l)| l != u32::from(f))
            .map(|(&c, _)| c)
            .collect();
        let value = efficacy(&self.net, &non)?;
        self.scalars.insert(scalar::MIA_EFFICACY.into(), value);
        if self.job.study.protocol == Protocol::Corrected && self.p.retrained.is_some() {
            let retrained = self.other_model(&self.p.retrained, "retrained")?;
            let non = confidence(&retrained, &non_members)?;
            self.scalars.insert(
                scalar::MIA_EFFICACY_RETRAINED.into(),
                efficacy(&retrained, &non)?,
            );
        }
        Ok(())
    }

    /// Over-forgetting (docs/study.md §7.5): the seed's fixed neighbour (airplane) and raw gap, or
    /// in the corrected protocol the base model's most-confused neighbour and the change of the
    /// gap.
    fn over_forgetting(&mut self) -> Result<(), JobError> {
        let forget = self.forget()?;
        match self.job.study.protocol {
            Protocol::Seed => {
                let neighbour = if forget == 0 { 1 } else { 0 };
                let o = metrics::over_forgetting(&self.cm, forget, neighbour).map_err(failed)?;
                self.scalars
                    .insert(scalar::OVER_FORGETTING_GAP.into(), o.gap_pp);
                self.scalars.insert(
                    scalar::OVER_FORGETTING_NEIGHBOUR.into(),
                    f64::from(o.neighbour),
                );
            }
            Protocol::Corrected => {
                let base = self.other_model(&self.p.base, "base")?;
                let (bl, blabels) = data::eval_logits(&base, &self.eval, &self.device)?;
                let base_cm = ConfusionMatrix::from_logits(logits_view(&bl, &base)?, &blabels)
                    .map_err(failed)?;
                let o = metrics::over_forgetting_relative(&base_cm, &self.cm, forget, None)
                    .map_err(failed)?;
                self.scalars
                    .insert(scalar::OVER_FORGETTING_GAP.into(), o.unlearned.gap_pp);
                self.scalars
                    .insert(scalar::OVER_FORGETTING_GAP_CHANGE.into(), o.gap_change_pp);
                self.scalars.insert(
                    scalar::OVER_FORGETTING_NEIGHBOUR_DROP.into(),
                    o.neighbour_drop_pp,
                );
                self.scalars.insert(
                    scalar::OVER_FORGETTING_NEIGHBOUR.into(),
                    f64::from(o.unlearned.neighbour),
                );
            }
        }
        Ok(())
    }

    /// The Anamnesis Index (docs/study.md §7.6): how fast the model relearns the forgotten class
    /// compared with the retrained model.
    fn ain(&mut self) -> Result<(), JobError> {
        let forget = self.forget()?;
        let base = self.other_model(&self.p.base, "base")?;
        let retrained = self.other_model(&self.p.retrained, "retrained")?;
        let setup = RelearnSetup {
            job: self.job,
            train: &self.splits.train,
            eval: &self.eval,
            forget,
            lr: self.p.ain_lr,
            max: self.p.ain_max_steps,
            device: &self.device,
        };
        let result = relearn::anamnesis(&setup, &base, &retrained, &self.net)?;
        self.scalars.extend(result.scalars);
        self.out.insert("relearn".into(), result.curves);
        Ok(())
    }

    /// t-SNE of the logits of the first `tsne-points` images of the split (docs/study.md §7.8).
    fn tsne(&mut self) -> Result<(), JobError> {
        let n = self.p.tsne_points.min(self.labels.len());
        let classes = self.net.num_classes();
        let view = logits_view(&self.logits[..n * classes], &self.net)?;
        let emb = metrics::tsne_logits(view, &TsneConfig::default()).map_err(failed)?;
        self.out.insert(
            "tsne".into(),
            serde_json::json!({ "points": emb.coords, "labels": &self.labels[..n] }),
        );
        Ok(())
    }

    fn finish(mut self) -> Result<JobOutput, JobError> {
        // What `select` expressions were checked against when the manifest loaded.
        let declared = self.p.scalars(self.job.study.protocol);
        debug_assert!(
            self.scalars.keys().all(|k| declared.contains(&k.as_str())),
            "`Metric::scalars` does not list {:?} (it lists {declared:?})",
            self.scalars.keys().collect::<Vec<_>>()
        );
        let model_kind = self
            .job
            .input(&self.p.model)
            .map(|i| i.kind.as_str())
            .unwrap_or("train");
        let metrics = serde_json::to_value(&self.scalars).map_err(failed)?;
        self.out.insert("model".into(), self.p.model.clone().into());
        self.out.insert("model-kind".into(), model_kind.into());
        self.out
            .insert("arch".into(), self.net.arch().name().into());
        self.out.insert("split".into(), self.p.split.name().into());
        self.out
            .insert("forget".into(), serde_json::json!(self.p.forget));
        let protocol = serde_json::to_value(self.job.study.protocol).map_err(failed)?;
        self.out.insert("protocol".into(), protocol);
        self.out.insert(
            "class-names".into(),
            serde_json::json!(self.splits.class_names),
        );
        self.out.insert("images".into(), self.labels.len().into());
        self.out.insert("metrics".into(), metrics.clone());
        write_json(self.job, METRICS_FILE, &self.out)?;
        let summary = serde_json::json!({ "metrics": metrics, "model": self.p.model });
        Ok(JobOutput {
            summary,
            log: vec![],
        })
    }
}
