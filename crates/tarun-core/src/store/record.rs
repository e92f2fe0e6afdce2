//! What the store keeps about a node and about a run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{NodeKey, ObjectDigest};
use crate::manifest::NodeKind;
use crate::memory::PeakRss;

/// One output artifact of a node: its name (the file name the job wrote) and its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRef {
    pub digest: ObjectDigest,
    pub size: u64,
}

/// The commit point of a node: written last, after every output object is in place.
///
/// A record says "these inputs produced these outputs". It is found by its key, and also by the
/// node id through the store's heads (the last records committed for that id), the nearest of
/// which `status` compares against to say why a node is stale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeRecord {
    pub key: NodeKey,
    pub id: String,
    pub kind: NodeKind,
    /// Exactly what was hashed into `key` (see [`crate::plan::KeyMaterial`]).
    pub key_material: serde_json::Value,
    pub outputs: BTreeMap<String, OutputRef>,
    /// What the node kind reports about its work: metrics, per-epoch losses, chosen values.
    pub summary: serde_json::Value,
    pub started: jiff::Timestamp,
    pub seconds: f64,
    pub device: String,
    pub threads: usize,
    pub tarun_version: String,
    pub run_id: String,
    /// Log lines the job emitted.
    #[serde(default)]
    pub log: Vec<String>,
    /// The peak resident set of the process that ran the job, while it ran (absent where the
    /// system does not say, and in records of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss: Option<PeakRss>,
}

/// How one node ended in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Computed and committed in this run.
    Ran,
    /// Its record was already in the store.
    Cached,
    /// The job failed (after its retries).
    Failed,
    /// Not run because an input failed or was skipped.
    Skipped,
    /// Stopped by an interruption (Ctrl-C, SIGTERM, SIGHUP) or `--fail-fast`; nothing committed.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Cached => "cached",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One line of a run's journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JournalEntry {
    pub id: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<NodeKey>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    /// When the driver started the job and when it heard the job end (absent for nodes that did
    /// not run, and in journals of older builds). For a Slurm job this includes its time queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<jiff::Timestamp>,
    /// The job's peak memory, from its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss: Option<PeakRss>,
}

/// A run's journal: what ran, what hit the cache, timings, devices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RunJournal {
    pub run_id: String,
    pub manifest: String,
    pub study: String,
    pub started: jiff::Timestamp,
    pub seconds: f64,
    pub overrides: Vec<String>,
    /// blake3 of the manifest and of every file it includes, as read for this run (see
    /// [`crate::manifest::Study::source_digest`]); absent in journals of older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    pub command: Vec<String>,
    pub entries: Vec<JournalEntry>,
    /// The signal that interrupted the run (`SIGINT`, `SIGTERM`, `SIGHUP`), written as soon as
    /// it arrives; absent for a run that was not interrupted (and in journals of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
}

impl RunJournal {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.entries.iter().filter(|e| e.outcome == outcome).count()
    }
}
