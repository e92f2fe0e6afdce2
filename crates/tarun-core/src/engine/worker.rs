//! The blocking side of a job: run the node kind, then commit its outputs and record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use camino::Utf8PathBuf;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::{EngineError, Event, Job, JobError, JobInput, Keyed, Runner};
use crate::manifest::Study;
use crate::memory::PeakWatch;
use crate::store::{NodeLease, NodeRecord, Store};

pub(super) struct Work {
    pub study: Arc<Study>,
    pub node: usize,
    pub inputs: Vec<NodeRecord>,
    /// The node's key and key material, as the engine computed them from `inputs`.
    pub keyed: Keyed,
    pub store: Store,
    pub runner: Arc<dyn Runner>,
    pub device: String,
    pub threads: usize,
    pub run_id: String,
    pub cancel: CancellationToken,
    pub events: UnboundedSender<Event>,
    /// The node key's lease, held from before the job starts until it is dropped with the
    /// `Work`, after the record is committed or the last attempt ended without one. `None`
    /// where it could not be taken (see the engine).
    #[expect(dead_code, reason = "held, never read: dropping it releases the lease")]
    pub lease: Option<NodeLease>,
}

impl Work {
    /// Runs the job up to `1 + retries` times; returns the committed record or the last error.
    pub fn run_with_retries(&self) -> (Result<NodeRecord, JobError>, u32) {
        let node = &self.study.nodes[self.node];
        let mut attempt = 1;
        loop {
            let _ = self.events.send(Event::NodeStarted {
                id: node.id.clone(),
                device: self.device.clone(),
                attempt,
            });
            let result = self.attempt_caught(attempt);
            match result {
                Err(e)
                    if e.is_failure() && attempt <= node.retries && !self.cancel.is_cancelled() =>
                {
                    let _ = self.events.send(Event::NodeLog {
                        id: node.id.clone(),
                        line: format!("attempt {attempt} failed: {e}; retrying"),
                        detail: false,
                    });
                    attempt += 1;
                }
                other => return (other, attempt),
            }
        }
    }

    /// One attempt; a panic in a node kind is a failed node, not a crashed run.
    pub fn attempt_caught(&self, attempt: u32) -> Result<NodeRecord, JobError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.attempt(attempt)))
            .unwrap_or_else(|panic| Err(EngineError::Panicked(panic_message(&panic)).into()))
    }

    fn attempt(&self, attempt: u32) -> Result<NodeRecord, JobError> {
        let node = &self.study.nodes[self.node];
        let dir = self.store.job_dir(&sanitize(&node.id))?;
        let out_dir = Utf8PathBuf::try_from(dir.path().to_owned()).map_err(EngineError::from)?;
        let job = Job::new(
            self.study.clone(),
            node.clone(),
            self.job_inputs(),
            out_dir.clone(),
            self.device.clone(),
            self.threads,
            attempt,
            self.cancel.clone(),
            self.events.clone(),
            self.store.clone(),
        );
        // Never trust an input's bytes: a corrupt object is set aside, which makes its node
        // stale, and this node fails with a message saying what to do.
        for r in &self.inputs {
            for (name, o) in &r.outputs {
                self.store
                    .check_object(&o.digest)
                    .map_err(|error| EngineError::CorruptInput {
                        input: r.id.clone(),
                        output: name.clone(),
                        error,
                    })?;
            }
        }
        crate::fault::inject(&node.id, &self.cancel).map_err(EngineError::Injected)?;
        let started = jiff::Timestamp::now();
        let t0 = Instant::now();
        let watch = PeakWatch::start();
        let output = self.runner.run(&job)?;
        let peak_rss = watch.peak();
        drop(watch);
        if self.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let seconds = t0.elapsed().as_secs_f64();
        let outputs = self.commit_outputs(&out_dir)?;
        let record = NodeRecord {
            key: self.keyed.key,
            id: node.id.clone(),
            kind: node.kind,
            key_material: self.keyed.material.clone(),
            outputs,
            summary: output.summary,
            started,
            seconds,
            device: self.device.clone(),
            threads: self.threads,
            tarun_version: env!("CARGO_PKG_VERSION").to_owned(),
            run_id: self.run_id.clone(),
            log: output.log,
            peak_rss,
        };
        self.store.commit(&self.study.name, &record)?;
        Ok(record)
    }

    fn job_inputs(&self) -> Vec<JobInput> {
        self.inputs
            .iter()
            .map(|r| JobInput {
                id: r.id.clone(),
                kind: r.kind,
                record: r.clone(),
                files: r
                    .outputs
                    .iter()
                    .map(|(name, o)| (name.clone(), self.store.object_path(&o.digest)))
                    .collect(),
            })
            .collect()
    }

    /// Moves every file of the job's directory into the object store.
    fn commit_outputs(
        &self,
        dir: &Utf8PathBuf,
    ) -> Result<BTreeMap<String, crate::store::OutputRef>, crate::store::StoreError> {
        let mut outputs = BTreeMap::new();
        for path in crate::store::list_files(dir)? {
            let name = path
                .file_name()
                .expect("listed files have names")
                .to_owned();
            outputs.insert(name, self.store.put_file(&path)?);
        }
        Ok(outputs)
    }
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(48)
        .collect()
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
