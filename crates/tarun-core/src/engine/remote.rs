//! The worker's side of the Slurm executor: `tarun exec-node KEY --store DIR` loads the task the
//! driver wrote, checks that it computes what the driver asked for (same study, same inputs,
//! same data, same key), runs one attempt exactly as the local executor would (same job
//! directory under `tmp/`, same commit: objects first, the record last, each by rename) and
//! leaves an exit file saying how it ended.
//!
//! The job computes under the node key's lease, as a local driver does: when another driver (or
//! another driver's job) holds it, the job waits for it and then takes the record committed
//! meanwhile instead of computing the node again.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::slurm::{Exit, Files, Task};
use super::worker::Work;
use super::{EngineError, Event, JobError, Keyed, Runner};
use crate::digest::{DataDigest, NodeKey};
use crate::manifest::Study;
use crate::plan::node_key;
use crate::store::{NodeRecord, Store};

/// Where and how a job computes: what the engine's device pool gives a local job.
pub struct Placement {
    /// The Slurm job id, for the lease's holder description.
    pub job: String,
    /// `cpu` or `cuda:0`.
    pub device: String,
    pub threads: usize,
    /// SIGTERM (scancel, the time limit) cancels it.
    pub cancel: CancellationToken,
    /// Progress and log lines, for the job's log.
    pub events: UnboundedSender<Event>,
}

/// A task as a job finds it in the store.
pub struct RemoteNode {
    pub task: Task,
    pub study: Arc<Study>,
}

impl RemoteNode {
    /// Reads `slurm/tasks/<key>.json` and the study snapshot it names.
    pub fn load(store: &Store, key: &NodeKey) -> Result<Self, String> {
        let files = Files::new(store);
        let task: Task = files
            .read(&files.task_path(key))?
            .ok_or_else(|| format!("no task for key {key} in `{}`", store.root()))?;
        if task.key != *key {
            return Err(format!("the task file of {key} is for key {}", task.key));
        }
        let study: Study = files
            .read(&files.study_path(&task.study))?
            .ok_or_else(|| format!("the study snapshot {} is missing", task.study))?;
        Ok(RemoteNode {
            task,
            study: Arc::new(study),
        })
    }

    /// Runs the task's one attempt and commits its record. `data_digest` is the digest of the
    /// data as this machine sees it: it must be the driver's.
    pub fn execute(
        &self,
        store: &Store,
        runner: Arc<dyn Runner>,
        data_digest: &DataDigest,
        placement: Placement,
    ) -> Result<NodeRecord, JobError> {
        let t = &self.task;
        let index = self
            .study
            .nodes
            .iter()
            .position(|n| n.id == t.node)
            .ok_or_else(|| EngineError::NotInSnapshot(t.node.clone()))?;
        let node = &self.study.nodes[index];
        if *data_digest != t.data_digest {
            return Err(EngineError::DataMismatch {
                here: data_digest.clone(),
                driver: t.data_digest.clone(),
            }
            .into());
        }
        let mut inputs = Vec::with_capacity(t.inputs.len());
        for (key, id) in t.inputs.iter().zip(&node.inputs) {
            let input = id.clone();
            match store.read_record(key) {
                Ok(Some(r)) if r.id == *id => inputs.push(r),
                Ok(_) => return Err(EngineError::MissingInput { input, key: *key }.into()),
                Err(error) => return Err(EngineError::UnreadableInput { input, error }.into()),
            }
        }
        if inputs.len() != node.inputs.len() {
            return Err(EngineError::InputCount {
                listed: inputs.len(),
                node: node.id.clone(),
                expected: node.inputs.len(),
            }
            .into());
        }
        let refs: Vec<&NodeRecord> = inputs.iter().collect();
        let algorithm = runner.algorithm_version(node.kind);
        let (key, material) = node_key(&self.study, node, &refs, algorithm, data_digest);
        if key != t.key {
            return Err(EngineError::KeyMismatch {
                node: node.id.clone(),
                computed: key,
                asked: t.key,
            }
            .into());
        }
        let who = format!("slurm job {} of run {}", placement.job, t.run_id);
        let lease = store
            .lease(
                &t.key,
                &who,
                || placement.cancel.is_cancelled(),
                |holder| {
                    let line = format!(
                        "waiting for `{}` (key {}), computed by {holder}",
                        node.id, t.key
                    );
                    tracing::debug!("{line}");
                    let _ = placement.events.send(Event::NodeLog {
                        id: node.id.clone(),
                        line,
                        detail: false,
                    });
                },
            )
            .map_err(|error| EngineError::Lease {
                node: node.id.clone(),
                error,
            })?
            .ok_or(JobError::Cancelled)?;
        if let Some(record) = store
            .read_record(&t.key)
            .ok()
            .flatten()
            .filter(|r| store.outputs_present(r))
        {
            // Committed by whoever held the lease; `exec-node` says so.
            return Ok(record);
        }
        let work = Work {
            study: self.study.clone(),
            node: index,
            inputs,
            keyed: Keyed { key, material },
            store: store.clone(),
            runner,
            device: placement.device,
            threads: placement.threads,
            run_id: t.run_id.clone(),
            cancel: placement.cancel,
            events: placement.events,
            lease: Some(lease),
        };
        work.attempt_caught(t.attempt)
    }
}

/// Writes `slurm/exits/<job>.json`, read by the driver when a job fails or is forgotten.
pub fn write_exit(
    store: &Store,
    job: &str,
    key: NodeKey,
    result: &Result<(), String>,
) -> Result<(), String> {
    let files = Files::new(store);
    let exit = Exit {
        key,
        ok: result.is_ok(),
        error: result.as_ref().err().cloned(),
    };
    files.write(&files.exit_path(job), &exit)
}
