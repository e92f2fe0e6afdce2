//! The interface between the engine and the node kinds: what a job gets and what it returns.

use std::collections::BTreeMap;
use std::sync::Arc;

use camino::Utf8PathBuf;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::Event;
use crate::digest::ObjectDigest;
use crate::manifest::{NodeKind, NodeSpec, Study};
use crate::plan::KeyContext;
use crate::store::{NodeRecord, Store};

/// Implements the node kinds. The engine calls it from blocking threads, one call per job.
pub trait Runner: KeyContext + Send + Sync + 'static {
    /// Whether the node needs a compute device slot (training, evaluation). Nodes that only
    /// combine small results (select, report) run beside them without taking a slot.
    fn needs_device(&self, node: &NodeSpec) -> bool;

    /// The node's estimated accelerator memory in megabytes, so that small jobs can share a
    /// GPU; `None` when unknown (then only the device's slots limit it).
    fn memory_estimate(&self, _study: &Study, _node: &NodeSpec) -> Option<u64> {
        None
    }

    /// Runs one node. Every file the job leaves in `job.out_dir` becomes an output artifact.
    fn run(&self, job: &Job) -> Result<JobOutput, JobError>;
}

/// One upstream artifact set, as the job sees it.
#[derive(Clone, Debug)]
pub struct JobInput {
    pub id: String,
    pub kind: NodeKind,
    pub record: NodeRecord,
    /// Output name -> path of the (read-only) object in the store.
    pub files: BTreeMap<String, Utf8PathBuf>,
}

/// Everything a job needs.
#[derive(Debug)]
pub struct Job {
    pub study: Arc<Study>,
    pub node: NodeSpec,
    /// In the order of `node.inputs`.
    pub inputs: Vec<JobInput>,
    /// An empty directory on the store's filesystem for the outputs.
    pub out_dir: Utf8PathBuf,
    /// `cpu`, `cuda:0`, `metal:0`.
    pub device: String,
    /// How many threads the job may use.
    pub threads: usize,
    /// Starts at 1; higher on retries.
    pub attempt: u32,
    pub cancel: CancellationToken,
    events: UnboundedSender<Event>,
    store: Store,
}

impl Job {
    #[expect(
        clippy::too_many_arguments,
        reason = "built in one place by the engine"
    )]
    pub(crate) fn new(
        study: Arc<Study>,
        node: NodeSpec,
        inputs: Vec<JobInput>,
        out_dir: Utf8PathBuf,
        device: String,
        threads: usize,
        attempt: u32,
        cancel: CancellationToken,
        events: UnboundedSender<Event>,
        store: Store,
    ) -> Self {
        Job {
            study,
            node,
            inputs,
            out_dir,
            device,
            threads,
            attempt,
            cancel,
            events,
            store,
        }
    }

    /// The path of a stored object, for artifacts that refer to other artifacts by digest
    /// (an ablation recipe names its base and expert checkpoints this way). `None` when the
    /// object is not in the store or no longer matches its digest (it is then moved to
    /// `quarantine/`, which makes its node stale, and the job's log says so).
    pub fn object_path(&self, digest: &ObjectDigest) -> Option<Utf8PathBuf> {
        match self.store.check_object(digest) {
            Ok(()) => Some(self.store.object_path(digest)),
            Err(e) => {
                self.log(format!("{e}"));
                None
            }
        }
    }

    /// The input with this id.
    pub fn input(&self, id: &str) -> Option<&JobInput> {
        self.inputs.iter().find(|i| i.id == id)
    }

    /// Reports progress (`done` of `total` units, with a short message such as the loss).
    pub fn progress(&self, done: u64, total: u64, message: impl Into<String>) {
        let _ = self.events.send(Event::NodeProgress {
            id: self.node.id.clone(),
            done,
            total,
            message: message.into(),
        });
    }

    /// Emits a log line for this node, shown live.
    pub fn log(&self, line: impl Into<String>) {
        self.emit(line.into(), false);
    }

    /// Emits a line of detail (one per epoch, say): shown live on a terminal, and elsewhere only
    /// when asked for (`run -v`).
    pub fn detail(&self, line: impl Into<String>) {
        self.emit(line.into(), true);
    }

    fn emit(&self, line: String, detail: bool) {
        let _ = self.events.send(Event::NodeLog {
            id: self.node.id.clone(),
            line,
            detail,
        });
    }

    /// A job that checks this between batches stops promptly on Ctrl-C.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// What a successful job reports besides its files.
#[derive(Clone, Debug, Default)]
pub struct JobOutput {
    /// Metrics, per-epoch losses, chosen values: stored in the node record.
    pub summary: serde_json::Value,
    pub log: Vec<String>,
}

/// Why a job did not produce outputs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}
