//! The schema language (a key's type and default) and the keys of the tables that are not node
//! parameters: `[study]`, `[data]`, `[slurm]`, `[cache]` and the keys every node takes besides
//! its parameters. Each node kind's parameters are declared in [`super::params`].
//!
//! Keys are checked against these schemas rather than deserialised into serde structs because
//! serde stops at the first error of a table, and every error of a node must be reported; the
//! typed structs read the parameters once they are valid.

use super::model::{DeviceRequest, NodeKind, Protocol};

/// The type of a key's value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ty {
    Str,
    Bool,
    /// Any finite float; integers are accepted and become floats.
    Float,
    /// A finite float greater than zero.
    PositiveFloat,
    /// A finite float in `[0, 1]`.
    UnitFloat,
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// One of the listed strings.
    Choice(&'static [&'static str]),
    /// A class index, `0..=255`.
    Class,
    /// A list of class indices.
    Classes,
    /// A list of strings.
    Strings,
    /// A list of strings, each one of the listed.
    Choices(&'static [&'static str]),
    /// A reference to nodes of the listed kinds; one node, or as many as it matches.
    Ref(super::refs::Arity, &'static [NodeKind]),
    /// A list of references to nodes of any kind, each matching one or more.
    Refs,
    /// `ablate.vectors`.
    Vectors,
    /// An inline table with these keys (a node's `slurm = { ... }`).
    Table(&'static [Key]),
    /// A Slurm memory size: `16G`, `500M`, or an integer number of megabytes.
    SlurmMem,
    /// A Slurm time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, or an
    /// integer number of minutes.
    SlurmTime,
}

/// What happens when a key is absent.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Default {
    /// It stays absent.
    Absent,
    /// It is an error.
    Required,
    Str(&'static str),
    Float(f64),
    Int(i64),
    Bool(bool),
    Strs(&'static [&'static str]),
    /// The study's `seed`.
    StudySeed,
    /// Absent unless `optimizer = "sgd"`, then this (`training_rules` in validate.rs).
    WithSgd(f64),
}

/// One key of a table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    pub(crate) default: Default,
    /// A phrase for docs/manifest.md's table; may be empty.
    pub(crate) doc: &'static str,
}

const fn key(name: &'static str, ty: Ty, default: Default) -> Key {
    Key {
        name,
        ty,
        default,
        doc: "",
    }
}

impl Key {
    const fn doc(self, doc: &'static str) -> Key {
        Key { doc, ..self }
    }
}

const U32: i64 = u32::MAX as i64;
pub(crate) const NON_NEGATIVE: Ty = Ty::Int {
    min: 0,
    max: i64::MAX,
};
pub(crate) const POSITIVE: Ty = Ty::Int {
    min: 1,
    max: i64::MAX,
};

pub(crate) const STUDY: &[Key] = &[
    key("name", Ty::Str, Default::Required),
    key("seed", NON_NEGATIVE, Default::Int(0)),
    key(
        "protocol",
        Protocol::ONE,
        Default::Str(Protocol::Corrected.name()),
    ),
    // Read while loading files (raw.rs); listed so it is a known key.
    key("include", Ty::Strings, Default::Absent),
];

pub(crate) const DATA: &[Key] = &[
    key(
        "source",
        Ty::Choice(&["synthetic", "cifar10"]),
        Default::Absent,
    ),
    key("path", Ty::Str, Default::Absent),
    key("train-per-class", NON_NEGATIVE, Default::Absent),
    key("test-per-class", NON_NEGATIVE, Default::Absent),
    key("validation-per-class", NON_NEGATIVE, Default::Absent),
    key("synthetic-seed", NON_NEGATIVE, Default::Absent),
];

const RETRIES: Key = key("retries", Ty::Int { min: 0, max: U32 }, Default::Int(0))
    .doc("times a failed job is run again");

/// `[slurm]`: the resources every job asks for by default, then extra `sbatch` options.
pub(crate) const SLURM: &[Key] = &[
    key("partition", Ty::Str, Default::Absent),
    key("cpus", Ty::Int { min: 1, max: U32 }, Default::Absent),
    key("mem", Ty::SlurmMem, Default::Absent),
    key("gpus", Ty::Int { min: 0, max: U32 }, Default::Absent),
    key("time", Ty::SlurmTime, Default::Absent),
    key("options", Ty::Strings, Default::Absent),
];

/// `[cache]`: where a remote cache is (`s3://bucket/prefix`, `file:///shared/dir`, ...) and
/// whether a run uploads what it computes. Not part of any cache key.
pub(crate) const CACHE: &[Key] = &[
    key("remote", Ty::Str, Default::Absent),
    key("push", Ty::Bool, Default::Bool(true)),
];

/// What one node may ask of Slurm (`--executor slurm`): `[slurm]`'s keys but `options`. Not
/// part of any cache key.
pub(crate) const SLURM_RESOURCES: &[Key] = SLURM.split_at(SLURM.len() - 1).0;

/// A node's own `slurm = { ... }`, taken out of its parameters like `retries`.
const SLURM_NODE: Key = key("slurm", Ty::Table(SLURM_RESOURCES), Default::Absent)
    .doc("overrides `[slurm]` for its job");

/// The device a node asks for; taken out of its parameters too.
const DEVICE: Key = key("device", DeviceRequest::ONE, Default::Absent)
    .doc("the kind of device it runs on; any when absent");

/// The arithmetic a node asks for on GPUs; taken out of its parameters too. `default` is what
/// [`GpuPrecision`](super::model::GpuPrecision) calls the key's absence, not a value to write.
const PRECISION: Key = key("precision", Ty::Choice(&["tf32", "fp32"]), Default::Absent)
    .doc("the arithmetic of its convolutions on GPUs");

/// Keys every node takes that are not parameters: they are taken out of the resolved parameters
/// and are part of no key.
pub(crate) const JOB: &[Key] = &[RETRIES, SLURM_NODE, DEVICE, PRECISION];

/// The keys a node of `kind` takes: its parameters ([`super::params`]), then [`JOB`].
/// `for-each` and `recipe` are handled by expansion and never reach validation.
pub(crate) fn node_keys(kind: NodeKind) -> impl Iterator<Item = &'static Key> {
    let (own, shared) = super::params::kind_keys(kind);
    own.iter().chain(shared).chain(JOB)
}
