//! What the engine tells its reporter: one [`Event`] per step of a node's life, sent on an
//! unbounded channel by the loop (planned, cached, finished) and by jobs (started, progress, log).

use crate::store::Outcome;

/// What the reporter hears about a run.
#[derive(Clone, Debug)]
pub enum Event {
    /// The run starts: `total` nodes selected.
    Planned { total: usize },
    /// The node's record was found (here, from another run, or on the remote): it does not run.
    NodeCached { id: String },
    /// An attempt of the node starts on `device` (attempts count from 1).
    NodeStarted {
        id: String,
        device: String,
        attempt: u32,
    },
    /// `done` of `total` units (batches, epochs) with a short message such as the loss.
    NodeProgress {
        id: String,
        done: u64,
        total: u64,
        message: String,
    },
    /// A log line of the node, shown live.
    NodeLog {
        id: String,
        line: String,
        /// A line of detail (one per epoch), shown only on request where space is short.
        detail: bool,
    },
    /// The node ran, failed, was skipped or cancelled; `error` says why when it did not run.
    NodeFinished {
        id: String,
        outcome: Outcome,
        seconds: f64,
        error: Option<String>,
    },
}
