//! The validated, expanded study: what the rest of tarun sees of a manifest.
//!
//! Everything here is plain data. Parameters are kept as resolved JSON objects (recipes merged,
//! `${axis}` substituted, defaults filled, references rewritten to node ids) because they are what
//! the cache key hashes and what the node kinds deserialise into their own typed structs.

use std::collections::BTreeMap;
use std::fmt;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

/// The kinds of node a manifest can declare, one top-level table each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    Train,
    Expert,
    Ablate,
    Evaluate,
    Select,
    Report,
}

impl NodeKind {
    pub const ALL: [NodeKind; 6] = [
        NodeKind::Train,
        NodeKind::Expert,
        NodeKind::Ablate,
        NodeKind::Evaluate,
        NodeKind::Select,
        NodeKind::Report,
    ];

    /// The top-level table name, which is also how the kind is written in ids and records.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Train => "train",
            NodeKind::Expert => "expert",
            NodeKind::Ablate => "ablate",
            NodeKind::Evaluate => "evaluate",
            NodeKind::Select => "select",
            NodeKind::Report => "report",
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

choice! {
    /// Which protocol the study follows (docs/study.md §10).
    #[derive(Default)]
    pub enum Protocol {
        /// The original study's protocol, flaws included.
        Seed = "seed",
        /// Held-out validation for selection, clean MIA members, censored AIN, several seeds.
        #[default]
        Corrected = "corrected",
    }
}

choice! {
    /// Which device a node asks for (`device = ...` on the node); not part of its key.
    #[derive(Default)]
    pub enum DeviceRequest {
        /// Whatever is free; accelerators first.
        #[default]
        Any = "any",
        Cpu = "cpu",
        Gpu = "gpu",
    }
}

impl DeviceRequest {
    /// As written in a manifest.
    pub fn as_str(self) -> &'static str {
        self.name()
    }
}

/// The arithmetic a node asks for on GPUs (`precision = ...` on the node); not part of its key.
/// `Default` (the key absent) leaves it to `TARUN_GPU_PRECISION`, else TF32 (PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuPrecision {
    /// Not set on the node.
    #[default]
    Default,
    /// TF32 tensor cores for convolutions where the GPU has them.
    Tf32,
    /// Exact f32.
    Fp32,
}

impl GpuPrecision {
    /// As written in a manifest (`default` for a node that does not set it).
    pub fn as_str(self) -> &'static str {
        match self {
            GpuPrecision::Default => "default",
            GpuPrecision::Tf32 => "tf32",
            GpuPrecision::Fp32 => "fp32",
        }
    }
}

/// A place in a manifest file, 1-based.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: Utf8PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One expanded node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Stable readable id: `NAME` or `NAME[axis=value,...]` (axes in `for-each` order).
    pub id: String,
    pub kind: NodeKind,
    /// The table name (the family name for a `for-each` node).
    pub name: String,
    /// This member's axis values, in `for-each` order.
    pub axes: Vec<(String, serde_json::Value)>,
    /// Resolved parameters with kebab-case keys: recipe merged, substituted, defaults filled,
    /// references replaced by the id (or, for many-valued fields, the list of ids) they match.
    /// `recipe`, `for-each` and `retries` are not in here.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Ids of the nodes this one references, deduplicated, in order of first appearance.
    pub inputs: Vec<String>,
    pub retries: u32,
    /// The node's own `slurm = { ... }` (resources for `--executor slurm`), as validated; like
    /// `retries`, not a parameter and not in the key.
    #[serde(default)]
    pub slurm: serde_json::Map<String, serde_json::Value>,
    /// The node's `device`: `any` (default), `cpu` or `gpu`. Not in the key either.
    #[serde(default)]
    pub device: DeviceRequest,
    /// The node's `precision`: `tf32` or `fp32`, `default` when absent. Not in the key either.
    #[serde(default)]
    pub precision: GpuPrecision,
    /// Where the node's table header is.
    pub location: Location,
}

impl NodeSpec {
    /// The resolved parameters as `T`, the kind's struct of [`super::params`]
    /// ([`super::params::TrainParams`], ...).
    pub fn typed_params<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(serde_json::Value::Object(self.params.clone()))
    }
}

/// A validated study: the whole of a manifest after includes, overrides and expansion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// The manifest file as given.
    pub path: Utf8PathBuf,
    pub name: String,
    pub seed: u64,
    pub protocol: Protocol,
    /// The `[data]` table, resolved (absent keys are simply absent).
    pub data: serde_json::Map<String, serde_json::Value>,
    /// The `[slurm]` table, validated: resource defaults and extra `sbatch` options.
    #[serde(default)]
    pub slurm: serde_json::Map<String, serde_json::Value>,
    /// The `[cache]` table, validated: `remote` (a URL, when set) and `push` (default true).
    /// Where results are shared, not what they are: no key depends on it.
    #[serde(default)]
    pub cache: serde_json::Map<String, serde_json::Value>,
    /// Axes as declared (linspace expanded), in declaration order.
    pub matrix: Vec<(String, Vec<serde_json::Value>)>,
    /// All nodes, in manifest order, families expanded first axis outermost. Ids are unique.
    pub nodes: Vec<NodeSpec>,
    /// The `--set` overrides applied, verbatim.
    pub overrides: Vec<String>,
    /// Every file read (the manifest and its includes), for provenance.
    pub files: Vec<Utf8PathBuf>,
    /// blake3 of the texts of `files`, in order: which version of the manifest this is,
    /// whatever the overrides (they are kept apart, in `overrides`).
    #[serde(default)]
    pub source_digest: String,
}

impl Study {
    pub fn node(&self, id: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Map from id to index in `nodes`.
    pub fn index(&self) -> BTreeMap<&str, usize> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect()
    }
}
