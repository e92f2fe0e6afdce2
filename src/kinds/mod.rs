//! The node kinds: the only place where tarun-core's jobs meet tarun-ml's computations.
//!
//! Each kind reads its resolved parameters (the manifest's JSON, with defaults filled) into its
//! typed struct of `tarun_core::manifest::params`, loads its inputs from the store, computes, and writes its outputs into the job's
//! directory. The algorithm versions below are part of every key: bump one when the kind's
//! results would change, and every node of that kind (and its dependents) becomes stale.

mod ablate;
pub mod data;
mod evaluate;
mod memory;
mod model;
mod recipe;
mod relearn;
mod report;
mod select;
mod train;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tarun_core::engine::{DeviceSpec, Job, JobError, JobOutput, Runner};
use tarun_core::manifest::{GpuPrecision, NodeKind, NodeSpec, Study};
use tarun_core::plan::KeyContext;
use tarun_ml::kernels::Precision;

pub use self::data::{data_digest, planning_digest};
pub use self::evaluate::METRICS_FILE;
pub use self::memory::{network, parameters};
pub use self::select::{Candidate, Selection};

/// The shipped node kinds.
#[derive(Debug, Default)]
pub struct StudyRunner;

impl KeyContext for StudyRunner {
    fn algorithm_version(&self, kind: NodeKind) -> u32 {
        match kind {
            NodeKind::Train | NodeKind::Expert => train::VERSION,
            NodeKind::Ablate => ablate::VERSION,
            NodeKind::Evaluate => evaluate::VERSION,
            NodeKind::Select => select::VERSION,
            NodeKind::Report => report::VERSION,
        }
    }
}

impl Runner for StudyRunner {
    fn needs_device(&self, node: &NodeSpec) -> bool {
        !matches!(node.kind, NodeKind::Select | NodeKind::Report)
    }

    fn memory_estimate(&self, study: &Study, node: &NodeSpec) -> Option<u64> {
        memory::estimate_mb(study, node)
    }

    fn run(&self, job: &Job) -> Result<JobOutput, JobError> {
        // The job's share of the cores (all of them with `-j 1`, half each with `-j 2`...).
        tarun_ml::device::with_threads(job.threads, || {
            // Inside the pool: the precision is set for the thread the job runs on.
            let work = || {
                let mut output = match job.node.kind {
                    NodeKind::Train => train::run_train(job),
                    NodeKind::Expert => train::run_expert(job),
                    NodeKind::Ablate => ablate::run(job),
                    NodeKind::Evaluate => evaluate::run(job),
                    NodeKind::Select => select::run(job),
                    NodeKind::Report => report::run(job),
                }?;
                output.log.extend(used_precision(job));
                Ok(output)
            };
            match node_precision(job.node.precision) {
                Some(p) => p.with(work),
                None => work(),
            }
        })
    }
}

/// The precision a node sets with `precision = ...`; `None` leaves it to tarun-ml
/// (`TARUN_GPU_PRECISION`, else TF32).
fn node_precision(p: GpuPrecision) -> Option<Precision> {
    match p {
        GpuPrecision::Default => None,
        GpuPrecision::Tf32 => Some(Precision::Tf32),
        GpuPrecision::Fp32 => Some(Precision::Fp32),
    }
}

/// The line the node record's log keeps about the precision of a job that ran convolutions on a
/// CUDA GPU (the only place it changes anything), read inside the job's [`Precision::with`].
fn used_precision(job: &Job) -> Option<String> {
    let convolves = matches!(
        job.node.kind,
        NodeKind::Train | NodeKind::Expert | NodeKind::Evaluate
    );
    (convolves && job.device.starts_with("cuda"))
        .then(|| format!("gpu precision: {}", Precision::current().name()))
}

/// Jobs that may share one GPU whose memory is known: the memory estimates decide within that.
pub const GPU_SLOTS: usize = 4;

/// The devices this build can use: the CPU (one job at a time, all cores), plus CUDA or Metal
/// devices when compiled in. A GPU whose memory the driver reports takes up to [`GPU_SLOTS`]
/// jobs whose estimates fit in 90 % of it; others one job at a time.
pub fn detect_devices() -> Vec<DeviceSpec> {
    tarun_ml::device::describe()
        .into_iter()
        .map(|d| match d.memory_mb {
            Some(mb) if d.name != "cpu" => DeviceSpec {
                name: d.name,
                slots: GPU_SLOTS,
                memory_mb: Some(mb / 10 * 9),
            },
            _ => DeviceSpec::new(d.name, 1),
        })
        .collect()
}

/// The node's parameters as a typed struct.
fn params<T: DeserializeOwned>(job: &Job) -> Result<T, JobError> {
    serde_json::from_value(serde_json::Value::Object(job.node.params.clone()))
        .map_err(|e| failed(format!("parameters of `{}`: {e}", job.node.id)))
}

fn failed(msg: impl std::fmt::Display) -> JobError {
    JobError::Failed(msg.to_string())
}

/// Writes a JSON output file into the job's directory.
fn write_json<T: Serialize>(job: &Job, name: &str, value: &T) -> Result<(), JobError> {
    let json = serde_json::to_vec_pretty(value).map_err(failed)?;
    let path = job.out_dir.join(name);
    std::fs::write(&path, json).map_err(|e| failed(format!("writing `{path}`: {e}")))
}
