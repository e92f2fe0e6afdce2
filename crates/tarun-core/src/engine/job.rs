//! The interface between the engine and the node kinds: what a job gets and what it returns.

use std::collections::BTreeMap;
use std::sync::Arc;

use camino::Utf8PathBuf;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::Event;
use crate::digest::{DataDigest, NodeKey, ObjectDigest};
use crate::manifest::{DeviceRequest, NodeKind, NodeSpec, Study};
use crate::plan::KeyContext;
use crate::store::{NodeRecord, Store, StoreError};

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
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
    /// A node kind's own failure, in its words; also a failure another process reported as
    /// text (a Slurm job's exit file).
    #[error("{0}")]
    Failed(String),
    /// A failure the engine itself found around the node kind's work (boxed: it is large, and
    /// every node kind's `Result` carries it).
    #[error(transparent)]
    Engine(Box<EngineError>),
}

impl JobError {
    /// Whether the job failed (rather than being cancelled): a failure may be retried.
    pub fn is_failure(&self) -> bool {
        !matches!(self, JobError::Cancelled)
    }
}

impl From<EngineError> for JobError {
    fn from(e: EngineError) -> Self {
        JobError::Engine(Box::new(e))
    }
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e).into()
    }
}

/// The failures the engine produces itself, locally or in a Slurm job, as opposed to those of
/// the node kinds. Each message is one line: it goes to the journal and the run's summary.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading inputs from the store or committing outputs to it.
    #[error("store: {0}")]
    Store(StoreError),
    /// The job's output directory is not a UTF-8 path.
    #[error("{0}")]
    JobDir(#[from] camino::FromPathBufError),
    /// An input object no longer matches its digest (or is gone); the store set it aside.
    #[error(
        "input `{input}` ({output}): {error}; it was moved to quarantine/, run again to \
         recompute `{input}`"
    )]
    CorruptInput {
        input: String,
        output: String,
        error: StoreError,
    },
    /// A fault injected by `TARUN_INJECT` (tests of failure handling).
    #[error("{0}")]
    Injected(String),
    #[error("node kind panicked: {0}")]
    Panicked(String),
    /// The node asks for a kind of device the local pool lacks.
    #[error(
        "`{node}` asks for device = \"{}\", which this run does not have (see `tarun devices`; \
         build with `--features cuda` or `metal`, or pass --devices)",
        .device.as_str()
    )]
    NoSuchDevice { node: String, device: DeviceRequest },
    /// A Slurm task names a node its study snapshot lacks.
    #[error("node `{0}` is not in the study snapshot")]
    NotInSnapshot(String),
    /// A Slurm worker sees other data than the driver did.
    #[error(
        "the data on this host differs from the driver's (digest {here}, expected {driver}): \
         is the data directory on the shared filesystem?"
    )]
    DataMismatch {
        here: DataDigest,
        driver: DataDigest,
    },
    /// An input a Slurm task names has no record (under the node's id) in the store.
    #[error("input `{input}` (key {key}) has no record")]
    MissingInput { input: String, key: NodeKey },
    #[error("input `{input}`: {error}")]
    UnreadableInput { input: String, error: StoreError },
    /// A Slurm task lists another number of inputs than its node has.
    #[error("the task lists {listed} inputs, `{node}` has {expected}")]
    InputCount {
        listed: usize,
        node: String,
        expected: usize,
    },
    /// A Slurm worker computes another key than the driver: another tarun build, most likely.
    #[error(
        "this tarun computes key {computed} for `{node}`, the driver asked for {asked}: run \
         the same tarun build on the driver and the workers"
    )]
    KeyMismatch {
        node: String,
        computed: NodeKey,
        asked: NodeKey,
    },
    /// Taking the node key's lease failed (an unwritable `locks/`).
    #[error("the lease of `{node}`: {error}")]
    Lease { node: String, error: StoreError },
}
