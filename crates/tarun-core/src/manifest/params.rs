//! Each node kind's parameters, defined once.
//!
//! A `params!` block below declares, for one kind, both the typed struct the node kinds read
//! (serde, manifest names) and the schema validation checks a manifest against (each key's type,
//! default and allowed values); docs/manifest.md's table of keys is generated from the same
//! schema ([`docs_table`], checked by a test). The enums of allowed values are declared once with
//! `choice!`, which gives both their serde names and the lists the schema offers.
//!
//! Adding a parameter is one field in one block: `#[key("name", TYPE, DEFAULT)] pub name: T,`.
//! Validation fills the default, so the resolved parameters (what the cache key hashes) hold it,
//! and the node kind reads the field. A key with no default (`Default::Absent`) is an `Option`.
//! Adding a value to an enum is one line in its `choice!`; the compiler then points at every
//! `match` that must handle it. `TARUN_BLESS_DOCS=1 cargo test -p tarun-core docs_tables` then
//! rewrites docs/manifest.md's tables.
//!
//! A schema default is written into every node's resolved parameters, so a new key with one
//! changes the cache key of every existing node of its kind. A key whose absence must leave old
//! nodes' keys as they were is `Default::Absent`, an `Option` resolved where it is read.

use serde::{Deserialize, Serialize};

use super::kinds::{Default, Key, NON_NEGATIVE, POSITIVE, Ty};
use super::model::{NodeKind, Protocol};
use super::refs::Arity::{Many, One};

/// A kind's parameters: the struct, and its keys as the schema `$keys`. Each field's doc comment
/// is also its note in docs/manifest.md's table, so keep it to a phrase.
macro_rules! params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident, keys $keys:ident {
            $(
                $(#[doc = $doc:literal])*
                #[key($key:literal, $ty:expr, $default:expr)]
                pub $field:ident : $fty:ty,
            )*
            $( #[flatten] pub $flat:ident : $flatty:ty, )?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $( $(#[doc = $doc])* #[serde(rename = $key)] pub $field: $fty, )*
            $( #[serde(flatten)] pub $flat: $flatty, )?
        }

        pub(crate) const $keys: &[Key] = &[
            $( Key { name: $key, ty: $ty, default: $default, doc: concat!($($doc),*) }, )*
        ];
    };
}

choice! {
    /// A network architecture (`train.arch`).
    pub enum Arch {
        Resnet18 = "resnet18",
        Vgg11Bn = "vgg11_bn",
        MobilenetV2 = "mobilenet_v2",
    }
}

choice! {
    /// `optimizer`.
    pub enum Optimizer {
        AdamW = "adamw",
        Sgd = "sgd",
    }
}

choice! {
    /// `schedule`: the learning rate over the run.
    pub enum Schedule {
        Constant = "constant",
        Cosine = "cosine",
    }
}

choice! {
    /// `objective`: what a training node minimises.
    pub enum Objective {
        /// Cross-entropy on the true labels.
        Ce = "ce",
        /// Cross-entropy ascended: the loss is negated.
        GradientAscent = "gradient-ascent",
        /// Cross-entropy on labels drawn at random (by the protocol's rule).
        RandomLabels = "random-labels",
        /// Cross-entropy on the classes other than `forget`.
        FineTune = "fine-tune",
        /// `fine-tune` plus a decaying l1 penalty on the weights.
        L1Sparse = "l1-sparse",
        /// SCRUB's teacher-student max- and min-steps.
        Scrub = "scrub",
        /// SalUn's saliency-masked random labels.
        Salun = "salun",
    }
}

impl Objective {
    /// Whether it is one of the literature's unlearning baselines, which train from `forget`
    /// rather than from `only` / `exclude` (docs/study.md §5.1).
    pub fn forgets(self) -> bool {
        matches!(
            self,
            Objective::FineTune | Objective::L1Sparse | Objective::Scrub | Objective::Salun
        )
    }

    /// The keys only this objective reads.
    pub fn own_keys(self) -> &'static [&'static str] {
        match self {
            Objective::L1Sparse => &["l1-gamma"],
            Objective::Scrub => &[
                "forget-batch-size",
                "scrub-temperature",
                "scrub-alpha",
                "scrub-gamma",
                "scrub-max-epochs",
            ],
            Objective::Salun => &["forget-batch-size", "salun-sparsity"],
            _ => &[],
        }
    }
}

/// The unlearning baselines' published settings (docs/study.md §5.1), used where a manifest
/// leaves the key out.
pub mod baseline_defaults {
    /// `l1-gamma`.
    pub const L1_GAMMA: f64 = 5e-4;
    /// `scrub-temperature`.
    pub const SCRUB_TEMPERATURE: f64 = 4.0;
    /// `scrub-alpha`.
    pub const SCRUB_ALPHA: f64 = 0.001;
    /// `scrub-gamma`.
    pub const SCRUB_GAMMA: f64 = 0.99;
    /// `scrub-max-epochs`.
    pub const SCRUB_MAX_EPOCHS: u64 = 2;
    /// `salun-sparsity`.
    pub const SALUN_SPARSITY: f64 = 0.5;
}

choice! {
    /// `ablate.quantile`: how the magnitude threshold of a task vector's mask is found.
    pub enum Quantile {
        /// Over every value.
        Exact = "exact",
        /// Over a seeded sample, as the seed does.
        SeedSample = "seed-sample",
    }
}

choice! {
    /// `evaluate.split`: the images a model is evaluated on.
    pub enum Split {
        Test = "test",
        Validation = "validation",
    }
}

choice! {
    /// One of `evaluate.metrics`. The scalars each writes are [`Metric::scalars`].
    pub enum Metric {
        Accuracy = "accuracy",
        PerClass = "per-class",
        ForgetAcc = "forget-acc",
        RetainAcc = "retain-acc",
        Kl = "kl",
        Zrf = "zrf",
        Mia = "mia",
        /// The literature's MIA-efficacy (docs/study.md §7.10); needs `forget`.
        MiaEfficacy = "mia-efficacy",
        OverForgetting = "over-forgetting",
        Ain = "ain",
        Confusion = "confusion",
        Tsne = "tsne",
    }
}

/// The names of the scalars `evaluate` writes into its record's `metrics`, which `select`'s
/// expressions and the report read.
pub mod scalar {
    pub const ACCURACY: &str = "accuracy";
    pub const FORGET_ACC: &str = "forget-acc";
    pub const RETAIN_ACC: &str = "retain-acc";
    pub const KL_FORGET: &str = "kl-forget";
    pub const KL_RETAIN: &str = "kl-retain";
    pub const ZRF: &str = "zrf";
    pub const ZRF_STD: &str = "zrf-std";
    pub const MIA_AUC: &str = "mia-auc";
    pub const MIA_AUC_RETRAINED: &str = "mia-auc-retrained";
    pub const MIA_EFFICACY: &str = "mia-efficacy";
    pub const MIA_EFFICACY_RETRAINED: &str = "mia-efficacy-retrained";
    pub const OVER_FORGETTING_GAP: &str = "over-forgetting-gap";
    pub const OVER_FORGETTING_NEIGHBOUR: &str = "over-forgetting-neighbour";
    pub const OVER_FORGETTING_GAP_CHANGE: &str = "over-forgetting-gap-change";
    pub const OVER_FORGETTING_NEIGHBOUR_DROP: &str = "over-forgetting-neighbour-drop";
    pub const AIN: &str = "ain";
    pub const AIN_TARGET: &str = "ain-target";
    pub const AIN_REACHED: &str = "ain-reached";
    pub const AIN_STEPS_UNLEARNED: &str = "ain-steps-unlearned";
    pub const AIN_STEPS_RETRAINED: &str = "ain-steps-retrained";
}

impl Metric {
    /// The scalars this metric may write for an `evaluate` node with parameters `p` under
    /// `protocol`. `ain` is left out of the record when the relearning runs leave it undefined
    /// (corrected protocol); every other listed scalar is always written.
    pub fn scalars(self, protocol: Protocol, p: &EvaluateParams) -> &'static [&'static str] {
        use scalar::*;
        let corrected = protocol == Protocol::Corrected;
        match self {
            Metric::Accuracy => &[ACCURACY],
            Metric::ForgetAcc | Metric::RetainAcc => &[FORGET_ACC, RETAIN_ACC],
            Metric::PerClass | Metric::Confusion | Metric::Tsne => &[],
            Metric::Kl => &[KL_FORGET, KL_RETAIN],
            Metric::Zrf if corrected && p.zrf_teachers > 1 => &[ZRF, ZRF_STD],
            Metric::Zrf => &[ZRF],
            Metric::Mia if corrected && p.retrained.is_some() => &[MIA_AUC, MIA_AUC_RETRAINED],
            Metric::Mia => &[MIA_AUC],
            Metric::MiaEfficacy if corrected && p.retrained.is_some() => {
                &[MIA_EFFICACY, MIA_EFFICACY_RETRAINED]
            }
            Metric::MiaEfficacy => &[MIA_EFFICACY],
            Metric::OverForgetting if corrected => &[
                OVER_FORGETTING_GAP,
                OVER_FORGETTING_GAP_CHANGE,
                OVER_FORGETTING_NEIGHBOUR_DROP,
                OVER_FORGETTING_NEIGHBOUR,
            ],
            Metric::OverForgetting => &[OVER_FORGETTING_GAP, OVER_FORGETTING_NEIGHBOUR],
            Metric::Ain => &[
                AIN_TARGET,
                AIN,
                AIN_REACHED,
                AIN_STEPS_UNLEARNED,
                AIN_STEPS_RETRAINED,
            ],
        }
    }

    /// Every scalar this metric writes under some protocol and setting (the corrected protocol's
    /// lists are supersets of the seed's).
    pub fn every_scalar(self) -> &'static [&'static str] {
        let most = EvaluateParams {
            model: String::new(),
            forget: None,
            split: Split::Test,
            metrics: vec![self],
            retrained: Some(String::new()),
            base: None,
            zrf_teachers: 2,
            ain_max_steps: 1,
            ain_lr: 1.0,
            tsne_points: 1,
        };
        self.scalars(Protocol::Corrected, &most)
    }

    /// The metric that writes the scalar `name`, if any.
    pub fn writing(name: &str) -> Option<Metric> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.every_scalar().contains(&name))
    }

    /// Metrics that compare with the retrained model, so `evaluate` needs `retrained` with them.
    pub fn needs_retrained(self) -> bool {
        matches!(self, Metric::Kl | Metric::Zrf | Metric::Ain)
    }
}

impl EvaluateParams {
    /// Every scalar this node may write, in the order its metrics are listed.
    pub fn scalars(&self, protocol: Protocol) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for name in self.metrics.iter().flat_map(|m| m.scalars(protocol, self)) {
            if !out.contains(name) {
                out.push(name);
            }
        }
        out
    }
}

/// `momentum`'s value when `optimizer = "sgd"` leaves it out.
pub const SGD_MOMENTUM: f64 = 0.9;

params! {
    /// The training keys, shared by `train` and `expert`.
    pub struct Training, keys TRAINING {
        #[key("optimizer", Optimizer::ONE, Default::Str(Optimizer::AdamW.name()))]
        pub optimizer: Optimizer,
        #[key("lr", Ty::PositiveFloat, Default::Required)]
        pub lr: f64,
        #[key("weight-decay", Ty::Float, Default::Float(0.01))]
        pub weight_decay: f64,
        /// sgd only
        #[key("momentum", Ty::Float, Default::WithSgd(SGD_MOMENTUM))]
        pub momentum: Option<f64>,
        #[key("epochs", POSITIVE, Default::Int(1))]
        pub epochs: u64,
        /// a cap on optimizer steps
        #[key("steps", POSITIVE, Default::Absent)]
        pub steps: Option<u64>,
        #[key("batch-size", POSITIVE, Default::Int(128))]
        pub batch_size: usize,
        #[key("schedule", Schedule::ONE, Default::Str(Schedule::Constant.name()))]
        pub schedule: Schedule,
        /// random crops and flips
        #[key("augment", Ty::Bool, Default::Bool(true))]
        pub augment: bool,
        #[key("objective", Objective::ONE, Default::Str(Objective::Ce.name()))]
        pub objective: Objective,
        /// the classes to train on
        #[key("only", Ty::Classes, Default::Absent)]
        pub only: Option<Vec<u8>>,
        /// the classes to leave out
        #[key("exclude", Ty::Classes, Default::Absent)]
        pub exclude: Option<Vec<u8>>,
        #[key("seed", NON_NEGATIVE, Default::StudySeed)]
        pub seed: u64,
        /// the class fine-tune, l1-sparse, scrub and salun forget
        #[key("forget", Ty::Class, Default::Absent)]
        pub forget: Option<u8>,
        /// scrub, salun: forget images per max-step or saliency batch; default `batch-size`
        #[key("forget-batch-size", POSITIVE, Default::Absent)]
        pub forget_batch_size: Option<usize>,
        /// l1-sparse: the first epoch's l1 weight; default 5e-4
        #[key("l1-gamma", Ty::Float, Default::Absent)]
        pub l1_gamma: Option<f64>,
        /// scrub: distillation temperature; default 4
        #[key("scrub-temperature", Ty::PositiveFloat, Default::Absent)]
        pub scrub_temperature: Option<f64>,
        /// scrub: KL weight of min-steps; default 0.001
        #[key("scrub-alpha", Ty::Float, Default::Absent)]
        pub scrub_alpha: Option<f64>,
        /// scrub: cross-entropy weight of min-steps; default 0.99
        #[key("scrub-gamma", Ty::Float, Default::Absent)]
        pub scrub_gamma: Option<f64>,
        /// scrub: epochs with max-steps; default 2
        #[key("scrub-max-epochs", NON_NEGATIVE, Default::Absent)]
        pub scrub_max_epochs: Option<u64>,
        /// salun: fraction of weights frozen; default 0.5
        #[key("salun-sparsity", Ty::UnitFloat, Default::Absent)]
        pub salun_sparsity: Option<f64>,
    }
}

params! {
    /// `train`: a network trained from scratch.
    pub struct TrainParams, keys TRAIN {
        #[key("arch", Arch::ONE, Default::Required)]
        pub arch: Arch,
        /// channel multiplier
        #[key("width", Ty::PositiveFloat, Default::Float(1.0))]
        pub width: f64,
        #[flatten]
        pub training: Training,
    }
}

params! {
    /// `expert`: a parent checkpoint fine-tuned.
    pub struct ExpertParams, keys EXPERT {
        #[key("from", Ty::Ref(One, &[NodeKind::Train, NodeKind::Expert]), Default::Required)]
        pub from: String,
        #[flatten]
        pub training: Training,
    }
}

params! {
    /// One element of `ablate.vectors`: either `alpha` and `rho`, or `from-select`.
    pub struct Vector, keys VECTOR {
        #[key("expert", Ty::Ref(One, &[NodeKind::Expert]), Default::Required)]
        pub expert: String,
        #[key("alpha", Ty::Float, Default::Absent)]
        pub alpha: Option<f64>,
        #[key("rho", Ty::UnitFloat, Default::Absent)]
        pub rho: Option<f64>,
        /// alpha and rho as the selection chose them
        #[key("from-select", Ty::Ref(One, &[NodeKind::Select]), Default::Absent)]
        pub from_select: Option<String>,
    }
}

params! {
    /// `ablate`: task arithmetic on a base model.
    pub struct AblateParams, keys ABLATE {
        #[key("base", Ty::Ref(One, &[NodeKind::Train]), Default::Required)]
        pub base: String,
        /// either both `alpha` and `rho`, or `from-select`
        #[key("vectors", Ty::Vectors, Default::Required)]
        pub vectors: Vec<Vector>,
        #[key("quantile", Quantile::ONE, Default::Str(Quantile::Exact.name()))]
        pub quantile: Quantile,
        /// also store the weights; otherwise the output is a recipe that loaders apply on the fly
        #[key("materialize", Ty::Bool, Default::Bool(false))]
        pub materialize: bool,
    }
}

params! {
    /// `evaluate`: metrics of one model.
    pub struct EvaluateParams, keys EVALUATE {
        #[key("model", Ty::Ref(One, &[NodeKind::Train, NodeKind::Expert, NodeKind::Ablate]), Default::Required)]
        pub model: String,
        /// the class forgotten
        #[key("forget", Ty::Class, Default::Absent)]
        pub forget: Option<u8>,
        #[key("split", Split::ONE, Default::Str(Split::Test.name()))]
        pub split: Split,
        #[key("metrics", Metric::LIST, Default::Strs(&[Metric::Accuracy.name()]))]
        pub metrics: Vec<Metric>,
        /// needed by kl, zrf and ain
        #[key("retrained", Ty::Ref(One, &[NodeKind::Train]), Default::Absent)]
        pub retrained: Option<String>,
        /// the model before unlearning, for ain and the corrected over-forgetting
        #[key("base", Ty::Ref(One, &[NodeKind::Train]), Default::Absent)]
        pub base: Option<String>,
        #[key("zrf-teachers", POSITIVE, Default::Int(1))]
        pub zrf_teachers: u64,
        #[key("ain-max-steps", POSITIVE, Default::Int(200))]
        pub ain_max_steps: u64,
        #[key("ain-lr", Ty::PositiveFloat, Default::Float(1e-4))]
        pub ain_lr: f64,
        #[key("tsne-points", POSITIVE, Default::Int(1500))]
        pub tsne_points: usize,
    }
}

params! {
    /// `select`: the best point of a sweep.
    pub struct SelectParams, keys SELECT {
        #[key("over", Ty::Ref(Many, &[NodeKind::Evaluate]), Default::Required)]
        pub over: Vec<String>,
        /// an expression over metric names, maximised
        #[key("score", Ty::Str, Default::Required)]
        pub score: String,
        /// comparisons such as `"retain-acc > 75"`
        #[key("require", Ty::Strings, Default::Absent)]
        pub require: Option<Vec<String>>,
    }
}

params! {
    /// `report`: the study's write-up.
    pub struct ReportParams, keys REPORT {
        /// in order; each reference may match many nodes
        #[key("inputs", Ty::Refs, Default::Absent)]
        pub inputs: Option<Vec<String>>,
        #[key("title", Ty::Str, Default::Absent)]
        pub title: Option<String>,
    }
}

/// A kind's own keys, then those it shares (the training keys), in documentation order; without
/// the keys every node takes ([`super::kinds::JOB`]).
pub(crate) fn kind_keys(kind: NodeKind) -> (&'static [Key], &'static [Key]) {
    match kind {
        NodeKind::Train => (TRAIN, TRAINING),
        NodeKind::Expert => (EXPERT, TRAINING),
        NodeKind::Ablate => (ABLATE, &[]),
        NodeKind::Evaluate => (EVALUATE, &[]),
        NodeKind::Select => (SELECT, &[]),
        NodeKind::Report => (REPORT, &[]),
    }
}

/// docs/manifest.md's table of the node kinds' keys, from the schema.
pub fn docs_table() -> String {
    let keys = |keys: &[Key]| keys.iter().map(doc_key).collect::<Vec<_>>().join(", ");
    let mut out = String::from("| kind | keys |\n|---|---|\n");
    for kind in NodeKind::ALL {
        let (own, shared) = kind_keys(kind);
        let mut cell = keys(own);
        if !shared.is_empty() {
            cell.push_str(", the training keys");
        }
        out.push_str(&format!("| `{kind}` | {cell} |\n"));
    }
    out.push_str(&format!(
        "| training keys (`train`, `expert`) | {} |\n",
        keys(TRAINING)
    ));
    out.push_str(&format!(
        "| every node (not parameters) | {} |\n",
        keys(super::kinds::JOB)
    ));
    out
}

/// docs/manifest.md's table of the scalars each metric writes, from [`Metric::scalars`].
pub fn scalars_table() -> String {
    let settings = |retrained: bool, zrf_teachers: u64| EvaluateParams {
        model: String::new(),
        forget: None,
        split: Split::Test,
        metrics: vec![],
        retrained: retrained.then(String::new),
        base: None,
        zrf_teachers,
        ain_max_steps: 1,
        ain_lr: 1.0,
        tsne_points: 1,
    };
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from("| metric | scalars |\n|---|---|\n");
    for m in Metric::ALL {
        let seed = m.scalars(Protocol::Seed, &settings(false, 1));
        let corrected = m.scalars(Protocol::Corrected, &settings(false, 1));
        let mut cell = if seed.is_empty() {
            "none (its output is in `metrics.json` only)".to_owned()
        } else {
            list(seed)
        };
        let extra = |more: &[&'static str], base: &[&'static str], when: &str| {
            let new: Vec<&str> = more.iter().copied().filter(|s| !base.contains(s)).collect();
            (!new.is_empty()).then(|| format!("; {when}: also {}", list(&new)))
        };
        let conditions = [
            (corrected, seed, "corrected protocol"),
            (
                m.scalars(Protocol::Corrected, &settings(true, 1)),
                corrected,
                "corrected, with `retrained`",
            ),
            (
                m.scalars(Protocol::Corrected, &settings(false, 2)),
                corrected,
                "corrected, with `zrf-teachers` > 1",
            ),
        ];
        for (more, base, when) in conditions {
            cell.extend(extra(more, base, when));
        }
        out.push_str(&format!("| `{m}` | {cell} |\n"));
    }
    out
}

/// `` `name` (type, required; note) [default] ``.
fn doc_key(key: &Key) -> String {
    let mut inside = doc_type(key.ty);
    if matches!(key.default, Default::Required) {
        inside.push_str(", required");
    }
    let note = key.doc.trim();
    if !note.is_empty() {
        inside.push_str("; ");
        inside.push_str(note);
    }
    let default = match key.default {
        Default::Absent | Default::Required => String::new(),
        Default::Str(s) => format!(" [{s}]"),
        Default::Float(f) => format!(" [{f:?}]"),
        Default::Int(i) => format!(" [{i}]"),
        Default::Bool(b) => format!(" [{b}]"),
        Default::Strs(list) => format!(" [{}]", list.join(", ")),
        Default::StudySeed => " [the study's seed]".to_owned(),
        Default::WithSgd(f) => format!(" [{f:?} with sgd]"),
    };
    format!("`{}` ({inside}){default}", key.name)
}

/// How a value of type `ty` is described in docs/manifest.md's table.
fn doc_type(ty: Ty) -> String {
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`\"{n}\"`"))
            .collect::<Vec<_>>()
    };
    let kinds = |kinds: &[NodeKind]| {
        let names: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
        match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    };
    let article = |kinds: &[NodeKind]| match kinds.first().map(|k| k.as_str().as_bytes()[0]) {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    };
    match ty {
        Ty::Str => "string".into(),
        Ty::Bool => "bool".into(),
        Ty::Float => "float".into(),
        Ty::PositiveFloat => "float > 0".into(),
        Ty::UnitFloat => "float in [0, 1]".into(),
        Ty::Int { min, .. } if min > 0 => format!("integer >= {min}"),
        Ty::Int { min: 0, .. } => "integer >= 0".into(),
        Ty::Int { .. } => "integer".into(),
        Ty::Choice(names) => quoted(names).join(" \\| "),
        Ty::Class => "class index".into(),
        Ty::Classes => "list of class indices".into(),
        Ty::Strings => "list of strings".into(),
        Ty::Choices(names) => format!("list of {}", quoted(names).join(", ")),
        Ty::Ref(One, k) => format!("reference to {} {} node", article(k), kinds(k)),
        Ty::Ref(Many, k) => format!("reference to many {} nodes", kinds(k)),
        Ty::Refs => "list of references to nodes of any kind".into(),
        Ty::Vectors => format!(
            "non-empty list of tables of {}",
            VECTOR.iter().map(doc_key).collect::<Vec<_>>().join(", ")
        ),
        Ty::Table(keys) => format!(
            "table of {}",
            keys.iter()
                .map(|k| format!("`{}`", k.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ty::SlurmMem => "memory size".into(),
        Ty::SlurmTime => "time limit".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/manifest.md's text between `<!-- NAME: generated ... -->` and `<!-- end of NAME -->`
    /// must be `expected`. With `TARUN_BLESS_DOCS=1` the test writes it there instead.
    fn check_docs(name: &str, expected: &str) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/manifest.md");
        let docs = std::fs::read_to_string(path).expect("docs/manifest.md");
        let begin =
            format!("<!-- {name}: generated from crates/tarun-core/src/manifest/params.rs -->\n");
        let end = format!("<!-- end of {name} -->");
        let table = docs
            .split_once(&begin)
            .and_then(|(_, rest)| rest.split_once(&end))
            .map(|(table, _)| table);
        if let Some(old) = table
            && std::env::var_os("TARUN_BLESS_DOCS").is_some()
        {
            let at = docs.find(&begin).expect("found above") + begin.len();
            let mut new = docs.clone();
            new.replace_range(at..at + old.len(), expected);
            std::fs::write(path, new).expect("writing docs/manifest.md");
            return;
        }
        assert!(
            table == Some(expected),
            "docs/manifest.md's table of {name} differs from the schema (TARUN_BLESS_DOCS=1 \
             rewrites it); between\n{begin}and\n{end}\nit should read:\n\n{expected}"
        );
    }

    #[test]
    fn the_docs_tables_are_the_schema() {
        check_docs("keys", &docs_table());
        check_docs("scalars", &scalars_table());
    }

    #[test]
    fn choice_defaults_are_among_the_choices() {
        for keys in [
            TRAIN, TRAINING, EXPERT, ABLATE, EVALUATE, SELECT, REPORT, VECTOR,
        ] {
            for key in keys {
                if let Default::Str(s) = key.default
                    && let Ty::Choice(names) = key.ty
                {
                    assert!(names.contains(&s), "{}: {s}", key.name);
                }
                if let (Default::Strs(list), Ty::Choices(names)) = (key.default, key.ty) {
                    assert!(list.iter().all(|s| names.contains(s)), "{}", key.name);
                }
            }
        }
    }

    #[test]
    fn choice_names_round_trip_through_serde() {
        for m in Metric::ALL {
            let json = serde_json::to_value(m).unwrap();
            assert_eq!(json, serde_json::Value::from(m.name()));
            assert_eq!(serde_json::from_value::<Metric>(json).unwrap(), *m);
        }
        assert_eq!(
            Objective::NAMES,
            [
                "ce",
                "gradient-ascent",
                "random-labels",
                "fine-tune",
                "l1-sparse",
                "scrub",
                "salun"
            ]
        );
        assert_eq!(
            serde_json::to_value(Arch::MobilenetV2).unwrap(),
            "mobilenet_v2"
        );
    }

    #[test]
    fn metrics_name_the_scalars_they_write() {
        let p: EvaluateParams = serde_json::from_value(serde_json::json!({
            "model": "m", "split": "test", "metrics": ["forget-acc", "retain-acc", "mia", "zrf"],
            "retrained": "r", "zrf-teachers": 3, "ain-max-steps": 1, "ain-lr": 0.1,
            "tsne-points": 1,
        }))
        .unwrap();
        assert_eq!(
            p.scalars(Protocol::Corrected),
            [
                "forget-acc",
                "retain-acc",
                "mia-auc",
                "mia-auc-retrained",
                "zrf",
                "zrf-std"
            ]
        );
        assert_eq!(
            p.scalars(Protocol::Seed),
            ["forget-acc", "retain-acc", "mia-auc", "zrf"]
        );
    }

    #[test]
    fn mia_efficacy_writes_its_own_scalars_and_the_retrained_models_when_corrected() {
        let mut p: EvaluateParams = serde_json::from_value(serde_json::json!({
            "model": "m", "split": "test", "metrics": ["mia", "mia-efficacy"],
            "retrained": "r", "zrf-teachers": 1, "ain-max-steps": 1, "ain-lr": 0.1,
            "tsne-points": 1,
        }))
        .unwrap();
        assert_eq!(p.metrics, [Metric::Mia, Metric::MiaEfficacy]);
        assert_eq!(
            p.scalars(Protocol::Corrected),
            [
                "mia-auc",
                "mia-auc-retrained",
                "mia-efficacy",
                "mia-efficacy-retrained"
            ]
        );
        assert_eq!(p.scalars(Protocol::Seed), ["mia-auc", "mia-efficacy"]);
        p.retrained = None;
        assert_eq!(p.scalars(Protocol::Corrected), ["mia-auc", "mia-efficacy"]);
        assert_eq!(Metric::writing("mia-efficacy"), Some(Metric::MiaEfficacy));
        assert_eq!(
            Metric::writing("mia-efficacy-retrained"),
            Some(Metric::MiaEfficacy)
        );
        // Like `mia`, it compares with the retrained model only when there is one.
        assert!(!Metric::MiaEfficacy.needs_retrained());
    }
}
