//! What a report is built from: its inputs as plain data, read from node records and their JSON
//! output files, and the few facts about the study it needs.
//!
//! Nothing here touches the job or the store, so the rendering can be tested with hand-made
//! inputs. [`parse`] turns one [`RawInput`] (a record's summary plus the text of its JSON
//! outputs) into a typed [`ReportInput`].

use std::collections::BTreeMap;

use serde::Deserialize;
use tarun_core::manifest::Protocol;

use crate::kinds::Selection;

/// Where a number comes from: the node that produced it and its record.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub id: String,
    /// The node kind, as written in manifests (`train`, `evaluate`, ...).
    pub kind: String,
    /// The record key, 64 hex digits.
    pub key: String,
    /// Wall-clock seconds of the job that produced the record.
    pub seconds: f64,
    pub device: String,
    /// When the job started.
    pub started: jiff::Timestamp,
    /// The run that computed the record (a cached record keeps the run that first computed it).
    pub run_id: String,
}

impl Provenance {
    /// The first 12 hex digits of the key: how the report cites a record.
    pub fn short(&self) -> &str {
        self.key.get(..12).unwrap_or(&self.key)
    }
}

/// The study-level facts a report states.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportStudy {
    pub name: String,
    pub title: String,
    pub protocol: Protocol,
    /// `[data] source`: `cifar10`, `synthetic`, or absent.
    pub data_source: Option<String>,
    pub seed: u64,
    /// The other `[data]` keys (images per class, ...) with their values as TOML would write
    /// them, in the order given.
    pub data: Vec<(String, String)>,
    /// The `--set` overrides the study was loaded with when the report was rendered, verbatim.
    pub overrides: Vec<String>,
    /// The tarun that rendered the report: its version and the commit it was built from, as
    /// `tarun --version` prints them (`0.1.0 (abc1234)`).
    pub version: String,
    /// When the report was rendered.
    pub rendered: jiff::Timestamp,
}

impl ReportStudy {
    /// Whether the seed's published CIFAR-10 numbers are comparable with this study's.
    pub fn compares_with_published(&self) -> bool {
        self.protocol == Protocol::Seed && self.data_source.as_deref() == Some("cifar10")
    }
}

/// One input of the report, typed by its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportInput {
    pub prov: Provenance,
    pub content: Content,
}

/// What the report understands of an input.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Train(TrainInfo),
    Ablate(AblateInfo),
    Select(Selection),
    Evaluate(Box<EvalInfo>),
    /// A kind the report does not render (another report); it still appears in the provenance.
    Other,
}

/// A `train` or `expert` node: its summary plus the manifest parameters that say what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainInfo {
    pub expert: bool,
    pub arch: String,
    pub width: f64,
    pub train_images: u64,
    pub epochs: Vec<EpochRow>,
    pub steps: u64,
    pub images: u64,
    /// Seconds inside the training loop (the record's wall time also counts loading and saving).
    pub fit_seconds: f64,
    pub params: TrainParams,
}

impl TrainInfo {
    /// A `train` node trained without some classes: the retrained ("native ignorance") model.
    pub fn is_retrained(&self) -> bool {
        !self.expert && !self.params.exclude.is_empty()
    }
}

/// The manifest parameters of a `train` / `expert` node that the report reads: what it trains
/// on and its recipe, as resolved (recipe merged, overrides applied, defaults filled).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct TrainParams {
    pub exclude: Vec<u32>,
    pub only: Vec<u32>,
    pub objective: Option<String>,
    pub from: Option<String>,
    pub optimizer: Option<String>,
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
    /// Only for `sgd`.
    pub momentum: Option<f64>,
    pub epochs: Option<u64>,
    /// When set, training stops after this many optimizer steps instead of `epochs`.
    pub steps: Option<u64>,
    pub batch_size: Option<u64>,
    pub schedule: Option<String>,
    pub augment: Option<bool>,
}

/// One epoch of a training summary, as tarun-ml's trainer records it.
pub use tarun_ml::train::EpochStats as EpochRow;

/// An `ablate` node's summary.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AblateInfo {
    pub arch: String,
    #[serde(default)]
    pub width: f64,
    pub vectors: Vec<VectorInfo>,
    pub surgery_seconds: f64,
}

/// One task vector of an ablation.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct VectorInfo {
    pub expert: String,
    pub alpha: f64,
    pub rho: f64,
}

/// What the evaluated model is, from the manifest: decides where its numbers are compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ModelRole {
    /// A `train` node on every class.
    Base,
    /// A `train` node with `exclude`.
    Retrained,
    /// An `expert` fine-tuned with cross-entropy.
    Expert,
    /// An `expert` with another objective (`gradient-ascent`, `random-labels`).
    Baseline(String),
    /// An `ablate` node.
    Unlearned,
    #[default]
    Unknown,
}

impl ModelRole {
    /// The role of a model node, from its kind and its parameters.
    pub fn of(kind: &str, params: &TrainParams) -> ModelRole {
        match kind {
            "train" if params.exclude.is_empty() => ModelRole::Base,
            "train" => ModelRole::Retrained,
            "expert" => match params.objective.as_deref() {
                None | Some("ce") => ModelRole::Expert,
                Some(other) => ModelRole::Baseline(other.to_owned()),
            },
            "ablate" => ModelRole::Unlearned,
            _ => ModelRole::Unknown,
        }
    }

    /// Whether the model's confusion matrix is drawn in the "unlearned" colours (Reds).
    pub fn is_unlearned(&self) -> bool {
        matches!(self, ModelRole::Unlearned)
    }
}

/// An `evaluate` node's `metrics.json`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct EvalInfo {
    pub model: String,
    pub model_kind: Option<String>,
    pub arch: String,
    pub split: Option<String>,
    pub forget: Option<u32>,
    pub protocol: Option<String>,
    pub class_names: Vec<String>,
    #[serde(deserialize_with = "numbers_only")]
    pub metrics: BTreeMap<String, f64>,
    pub per_class: Option<Vec<Option<f64>>>,
    pub confusion: Option<Vec<Vec<u64>>>,
    pub relearn: Option<Relearn>,
    pub tsne: Option<Tsne>,
    /// Filled from the manifest, not from the file.
    #[serde(skip)]
    pub role: ModelRole,
}

impl EvalInfo {
    /// The name of class `c`, or its index when the file has no names.
    pub fn class_name(&self, c: usize) -> String {
        self.class_names
            .get(c)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    }
}

/// Relearning curves of the Anamnesis Index.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Relearn {
    pub target: f64,
    /// `epoch` (seed protocol) or `step`.
    pub unit: Option<String>,
    pub unlearned: Vec<RelearnPoint>,
    pub retrained: Vec<RelearnPoint>,
}

/// One measurement during relearning.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RelearnPoint {
    pub step: f64,
    pub forget_acc: f64,
    #[serde(default)]
    pub retain_acc: Option<f64>,
}

/// A 2-D embedding of the model's logits.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Tsne {
    pub points: Vec<[f64; 2]>,
    pub labels: Vec<u32>,
}

/// Keeps the finite numbers of a metrics object; a metric that could not be computed is
/// written as `null` and is simply absent here.
fn numbers_only<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .collect())
}

/// One input as the job hands it over: the record and the text of the JSON outputs the report
/// reads, plus the manifest facts that the files do not carry.
#[derive(Clone, Debug, Default)]
pub struct RawInput {
    pub prov: Option<Provenance>,
    pub summary: serde_json::Value,
    /// `selection.json` of a select node.
    pub selection: Option<String>,
    /// `metrics.json` of an evaluate node.
    pub metrics: Option<String>,
    /// The node's own parameters (train / expert).
    pub params: TrainParams,
    /// The role of the evaluated model (evaluate).
    pub model_role: ModelRole,
}

/// Reads one input. The error says what is missing or malformed.
pub fn parse(raw: RawInput) -> Result<ReportInput, String> {
    let prov = raw.prov.clone().ok_or("no record")?;
    let content = match prov.kind.as_str() {
        "train" | "expert" => Content::Train(parse_train(&raw, prov.kind == "expert")?),
        "ablate" => Content::Ablate(from_value(&raw.summary, "summary")?),
        "select" => {
            let text = raw
                .selection
                .as_deref()
                .ok_or("no `selection.json` output")?;
            Content::Select(from_text(text, "selection.json")?)
        }
        "evaluate" => Content::Evaluate(Box::new(parse_eval(&raw)?)),
        _ => Content::Other,
    };
    Ok(ReportInput { prov, content })
}

fn parse_train(raw: &RawInput, expert: bool) -> Result<TrainInfo, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct Summary {
        arch: String,
        #[serde(default)]
        width: f64,
        #[serde(default)]
        train_images: u64,
        train: Fit,
    }
    #[derive(Deserialize)]
    struct Fit {
        epochs: Vec<EpochRow>,
        steps: u64,
        images: u64,
        seconds: f64,
    }
    let s: Summary = from_value(&raw.summary, "summary")?;
    Ok(TrainInfo {
        expert,
        arch: s.arch,
        width: s.width,
        train_images: s.train_images,
        epochs: s.train.epochs,
        steps: s.train.steps,
        images: s.train.images,
        fit_seconds: s.train.seconds,
        params: raw.params.clone(),
    })
}

/// `metrics.json` when present; otherwise the flat metrics of the summary.
fn parse_eval(raw: &RawInput) -> Result<EvalInfo, String> {
    let mut info: EvalInfo = match &raw.metrics {
        Some(text) => from_text(text, "metrics.json")?,
        None => EvalInfo {
            model: raw.summary["model"].as_str().unwrap_or_default().to_owned(),
            metrics: from_value::<EvalInfo>(&raw.summary, "summary")?.metrics,
            ..EvalInfo::default()
        },
    };
    info.role = raw.model_role.clone();
    Ok(info)
}

fn from_value<T: serde::de::DeserializeOwned>(
    v: &serde_json::Value,
    what: &str,
) -> Result<T, String> {
    T::deserialize(v).map_err(|e| format!("{what}: {e}"))
}

fn from_text<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov(kind: &str) -> Option<Provenance> {
        Some(Provenance {
            id: "n".into(),
            kind: kind.into(),
            key: "ab".repeat(32),
            seconds: 1.0,
            device: "cpu".into(),
            started: jiff::Timestamp::UNIX_EPOCH,
            run_id: "r".into(),
        })
    }

    #[test]
    fn reads_a_train_summary() {
        let summary = serde_json::json!({"arch": "vgg11_bn", "width": 0.5, "train-images": 10,
            "train": {"epochs": [{"epoch": 0, "lr": 0.1, "mean_loss": 2.0, "train_accuracy": 0.3,
            "steps": 3, "images": 10}], "steps": 3, "images": 10, "seconds": 4.5}});
        let raw = RawInput {
            prov: prov("train"),
            summary,
            ..RawInput::default()
        };
        let Content::Train(t) = parse(raw).unwrap().content else {
            panic!()
        };
        assert_eq!(
            (t.arch.as_str(), t.steps, t.fit_seconds),
            ("vgg11_bn", 3, 4.5)
        );
        assert_eq!(prov("x").unwrap().short(), "abababababab");
    }

    #[test]
    fn null_metrics_are_dropped_and_missing_parts_are_none() {
        let text = r#"{"model": "m", "arch": "resnet18", "metrics": {"ain": null, "zrf": 0.5}}"#;
        let raw = RawInput {
            prov: prov("evaluate"),
            metrics: Some(text.into()),
            model_role: ModelRole::Unlearned,
            ..RawInput::default()
        };
        let Content::Evaluate(e) = parse(raw).unwrap().content else {
            panic!()
        };
        assert_eq!(e.metrics, BTreeMap::from([("zrf".to_owned(), 0.5)]));
        assert!(e.confusion.is_none() && e.tsne.is_none() && e.relearn.is_none());
        assert_eq!(e.role, ModelRole::Unlearned);
    }

    #[test]
    fn a_select_without_its_file_is_an_error() {
        let raw = RawInput {
            prov: prov("select"),
            ..RawInput::default()
        };
        assert!(parse(raw).unwrap_err().contains("selection.json"));
    }

    #[test]
    fn roles_follow_kind_and_parameters() {
        let p = |exclude: Vec<u32>, objective: Option<&str>| TrainParams {
            exclude,
            objective: objective.map(str::to_owned),
            ..TrainParams::default()
        };
        assert_eq!(ModelRole::of("train", &p(vec![], None)), ModelRole::Base);
        assert_eq!(
            ModelRole::of("train", &p(vec![8], None)),
            ModelRole::Retrained
        );
        assert_eq!(
            ModelRole::of("expert", &p(vec![], Some("ce"))),
            ModelRole::Expert
        );
        let ga = ModelRole::of("expert", &p(vec![], Some("gradient-ascent")));
        assert_eq!(ga, ModelRole::Baseline("gradient-ascent".into()));
    }
}
