//! The Slurm executor: each node that needs a device becomes one `sbatch` job running
//! `tarun exec-node KEY --store DIR` against the same store on a shared filesystem.
//!
//! The engine's loop is unchanged: it still decides what is ready, cached, failed or skipped.
//! Only a job's body differs: instead of running the node kind on a thread, [`run_remote`]
//! writes a task file, submits, watches the job through one shared [`Poller`], and reads the
//! record the job committed. Every submission is journaled under `slurm/jobs/<key>.json`
//! before the driver waits on it, so a restarted driver adopts a job that is still queued or
//! running instead of submitting the node again; a job that finished while no driver watched
//! has committed its record, and the node is simply cached.

mod client;
mod files;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camino::Utf8PathBuf;
use tokio::sync::{mpsc::UnboundedSender, watch};
use tokio_util::sync::CancellationToken;

pub use self::client::{JobState, states as job_states};
pub use self::files::{Exit, Files, JobJournal, Submission, Task};
use super::{Event, JobError};
use crate::digest::{DataDigest, NodeKey};
use crate::manifest::{DeviceRequest, NodeSpec, Study};
use crate::store::{NodeRecord, Store};

/// How the driver submits.
#[derive(Clone, Debug)]
pub struct SlurmConfig {
    /// The `tarun` binary the jobs run (the driver's own, by default: on a cluster it is on the
    /// shared filesystem too).
    pub exe: Utf8PathBuf,
    /// The jobs' working directory (relative data paths resolve against it).
    pub workdir: Utf8PathBuf,
    /// `--partition` from the command line: wins over the manifest's.
    pub partition: Option<String>,
    /// `--slurm-opt` from the command line, after the manifest's `[slurm] options`.
    pub options: Vec<String>,
    /// How often the driver asks Slurm for its jobs' states.
    pub poll: Duration,
    /// At most this many jobs queued or running at once.
    pub max_jobs: usize,
}

/// The `sbatch` options of one node: `[slurm]` defaults, the node's own `slurm = {..}` over
/// them, the command line's over both.
pub fn sbatch_options(config: &SlurmConfig, study: &Study, node: &NodeSpec) -> Vec<String> {
    let get = |k: &str| -> Option<String> {
        let v = node.slurm.get(k).or_else(|| study.slurm.get(k))?;
        Some(match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let mut out = Vec::new();
    let partition = config.partition.clone().or_else(|| get("partition"));
    if let Some(p) = partition {
        out.push(format!("--partition={p}"));
    }
    if let Some(c) = get("cpus") {
        out.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = get("mem") {
        out.push(format!("--mem={m}"));
    }
    let gpus = gpus(study, node);
    if gpus > 0 {
        out.push(format!("--gpus={gpus}"));
    }
    if let Some(t) = get("time") {
        out.push(format!("--time={t}"));
    }
    let manifest_options = study.slurm.get("options").and_then(|o| o.as_array());
    out.extend(
        manifest_options
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str().map(str::to_owned)),
    );
    out.extend(config.options.iter().cloned());
    out
}

/// Watches the states of the driver's jobs with one `squeue` per interval for all of them.
pub struct Poller {
    watched: Mutex<HashMap<String, watch::Sender<JobState>>>,
    interval: Duration,
}

impl Poller {
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Poller {
            watched: Mutex::new(HashMap::new()),
            interval,
        })
    }

    /// Starts watching `job`; the receiver sees each state change.
    fn watch(&self, job: &str) -> watch::Receiver<JobState> {
        let mut watched = self.watched.lock().expect("not poisoned");
        watched
            .entry(job.to_owned())
            .or_insert_with(|| watch::channel(JobState::Pending("SUBMITTED".into())).0)
            .subscribe()
    }

    fn unwatch(&self, job: &str) {
        self.watched.lock().expect("not poisoned").remove(job);
    }

    /// Polls until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop.cancelled() => return,
            }
            let jobs: Vec<String> = self
                .watched
                .lock()
                .expect("not poisoned")
                .keys()
                .cloned()
                .collect();
            match client::states(&jobs).await {
                Ok(states) => {
                    failures = 0;
                    let watched = self.watched.lock().expect("not poisoned");
                    for (job, state) in states {
                        if let Some(tx) = watched.get(&job) {
                            tx.send_if_modified(|s| {
                                let changed = *s != state;
                                *s = state;
                                changed
                            });
                        }
                    }
                }
                // The controller may be restarting: keep the states we have and ask again.
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!("polling Slurm failed ({failures} times in a row): {e}");
                    }
                }
            }
        }
    }
}

/// What [`run_remote`] needs besides the node.
pub struct Remote {
    pub config: Arc<SlurmConfig>,
    pub poller: Arc<Poller>,
    pub files: Files,
    pub store: Store,
    pub study: Arc<Study>,
    /// The hash of the study snapshot in `slurm/studies/`.
    pub study_hash: String,
    pub events: UnboundedSender<Event>,
    pub cancel: CancellationToken,
}

/// How a remote node ended: the result, the attempts it took and the last job's id.
pub struct RemoteResult {
    pub result: Result<NodeRecord, JobError>,
    pub attempts: u32,
    pub job: Option<String>,
    /// The record is not the job's: another process (a local run, another driver's job)
    /// committed the node while the job waited for its lease, and the job took that record
    /// instead of computing. The driver journals the node as cached, not ran.
    pub taken: bool,
}

/// Runs one node through Slurm: adopts the job a previous driver left running, or submits; waits;
/// retries a failed job up to the node's `retries`; returns the committed record.
pub async fn run_remote(
    r: &Remote,
    node: &NodeSpec,
    key: NodeKey,
    inputs: Vec<NodeKey>,
    data_digest: &DataDigest,
    run_id: &str,
) -> RemoteResult {
    let log = |line: String| {
        let _ = r.events.send(Event::NodeLog {
            id: node.id.clone(),
            line,
            detail: false,
        });
    };
    let mut journal: JobJournal = match r.files.read(&r.files.jobs_path(&key)) {
        Ok(j) => j.unwrap_or_default(),
        Err(e) => {
            log(format!("{e}; starting a new job journal"));
            JobJournal::default()
        }
    };
    journal.node = node.id.clone();
    let mut attempt = 0;
    let mut job = None;
    // The run whose task the job runs: its record carries this run id when the job computed it.
    let mut job_run = run_id.to_owned();
    if let Some(last) = journal.jobs.last() {
        let state = client::states(std::slice::from_ref(&last.job))
            .await
            .ok()
            .and_then(|s| s.get(&last.job).cloned());
        if state.as_ref().is_some_and(JobState::is_active) {
            log(format!(
                "adopting slurm job {} of run {}",
                last.job, last.run_id
            ));
            attempt = 1;
            job = Some(last.job.clone());
            job_run.clone_from(&last.run_id);
        }
    }
    loop {
        let id = match job.take() {
            Some(id) => id,
            None => {
                attempt += 1;
                let task = Task {
                    key,
                    node: node.id.clone(),
                    study: r.study_hash.clone(),
                    inputs: inputs.clone(),
                    data_digest: data_digest.clone(),
                    run_id: run_id.to_owned(),
                    attempt,
                    gpus: gpus(&r.study, node),
                };
                match submit(r, node, &task, &mut journal).await {
                    Ok(id) => {
                        log(format!("submitted slurm job {id} (attempt {attempt})"));
                        job_run = run_id.to_owned();
                        id
                    }
                    Err(e) => {
                        return RemoteResult {
                            result: Err(JobError::Failed(e)),
                            attempts: attempt,
                            job: None,
                            taken: false,
                        };
                    }
                }
            }
        };
        let outcome = wait(r, node, &key, &id, attempt).await;
        let result = match outcome {
            Ok(()) => match r.store.read_record(&key) {
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(JobError::Failed(format!(
                    "slurm job {id} completed but committed no record ({})",
                    r.files.log_path(&key, &id)
                ))),
                Err(e) => Err(JobError::Failed(format!("slurm job {id}: {e}"))),
            },
            Err(e) => Err(e),
        };
        match result {
            Err(JobError::Failed(msg)) if attempt <= node.retries && !r.cancel.is_cancelled() => {
                log(format!("attempt {attempt} failed: {msg}; retrying"));
            }
            other => {
                // The exit file need not exist (its write may fail): the record's run id says
                // who computed it.
                let taken = other.as_ref().is_ok_and(|rec| rec.run_id != job_run);
                if taken && let Ok(rec) = &other {
                    log(format!(
                        "slurm job {id} computed nothing: run {} committed `{}` meanwhile",
                        rec.run_id, rec.id
                    ));
                }
                return RemoteResult {
                    result: other,
                    attempts: attempt,
                    job: Some(id),
                    taken,
                };
            }
        }
    }
}

/// The GPUs a node's job asks for: its `slurm.gpus`, else `[slurm] gpus`, else one when the
/// node says `device = "gpu"` (and none when it says `"cpu"`).
fn gpus(study: &Study, node: &NodeSpec) -> u32 {
    let given = node
        .slurm
        .get("gpus")
        .or_else(|| study.slurm.get("gpus"))
        .and_then(serde_json::Value::as_u64)
        .map(|g| g as u32);
    match node.device {
        DeviceRequest::Cpu => 0,
        DeviceRequest::Gpu => given.unwrap_or(1).max(1),
        DeviceRequest::Any => given.unwrap_or(0),
    }
}

/// Writes the task, submits it and journals the job id.
async fn submit(
    r: &Remote,
    node: &NodeSpec,
    task: &Task,
    journal: &mut JobJournal,
) -> Result<String, String> {
    r.files.write(&r.files.task_path(&task.key), task)?;
    let quote = |s: &str| {
        shlex::try_quote(s)
            .map(|q| q.into_owned())
            .map_err(|e| format!("cannot quote `{s}` for the job's shell: {e}"))
    };
    let store = r.store.root();
    let script = format!(
        "exec {} exec-node {} --store {}",
        quote(r.config.exe.as_str())?,
        task.key,
        quote(store.as_str())?
    );
    let mut args = vec![
        format!("--job-name=tarun:{}", node.id),
        format!("--output={}", r.files.log_pattern(&task.key)),
        format!("--chdir={}", r.config.workdir),
    ];
    args.extend(sbatch_options(&r.config, &r.study, node));
    args.push(format!("--wrap={script}"));
    let id = client::submit(&args).await?;
    journal.jobs.push(Submission {
        job: id.clone(),
        attempt: task.attempt,
        run_id: task.run_id.clone(),
        submitted: jiff::Timestamp::now(),
    });
    // Journaled before anything waits on it: a driver killed from here on is adopted.
    r.files.write(&r.files.jobs_path(&task.key), journal)?;
    Ok(id)
}

/// Waits for the job to end. Cancellation (Ctrl-C) cancels the job.
async fn wait(
    r: &Remote,
    node: &NodeSpec,
    key: &NodeKey,
    job: &str,
    attempt: u32,
) -> Result<(), JobError> {
    let mut rx = r.poller.watch(job);
    let mut started = false;
    let result = loop {
        let state = rx.borrow_and_update().clone();
        match state {
            JobState::Running if !started => {
                started = true;
                let _ = r.events.send(Event::NodeStarted {
                    id: node.id.clone(),
                    device: format!("slurm job {job}"),
                    attempt,
                });
            }
            JobState::Completed => break Ok(()),
            JobState::Ended(state) => break Err(ended(r, key, job, &state)),
            // Purged from the controller with no accounting: the job's own exit file says.
            JobState::Unknown => {
                let exit: Option<Exit> = r.files.read(&r.files.exit_path(job)).ok().flatten();
                break match exit {
                    Some(e) if e.ok => Ok(()),
                    _ => Err(ended(r, key, job, "unknown to Slurm")),
                };
            }
            _ => {}
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                break Err(JobError::Failed("the Slurm poller stopped".into()));
            },
            // While it runs, the job's progress lines reach the driver's bars.
            () = tokio::time::sleep(r.config.poll.max(Duration::from_secs(1))), if started => {
                if let Some((done, total, message)) = r.files.last_progress(key, job) {
                    let _ = r.events.send(Event::NodeProgress {
                        id: node.id.clone(),
                        done,
                        total,
                        message,
                    });
                }
            }
            () = r.cancel.cancelled() => {
                if let Err(e) = client::cancel(&[job.to_owned()]).await {
                    tracing::warn!("cancelling slurm job {job}: {e}");
                }
                break Err(JobError::Cancelled);
            }
        }
    };
    r.poller.unwatch(job);
    result
}

/// The failure of a job that did not complete: what `exec-node` said, or else the job's state
/// and the end of its log.
fn ended(r: &Remote, key: &NodeKey, job: &str, state: &str) -> JobError {
    let exit: Option<Exit> = r.files.read(&r.files.exit_path(job)).ok().flatten();
    let log = r.files.log_path(key, job);
    match exit.and_then(|e| e.error) {
        Some(e) if state == "FAILED" => {
            JobError::Failed(format!("{e} (slurm job {job}, log `{log}`)"))
        }
        Some(e) => JobError::Failed(format!("slurm job {job} ended {state}: {e} (log `{log}`)")),
        None => {
            let tail = r.files.log_tail(key, job, 3);
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!("; its log ends: {tail}")
            };
            JobError::Failed(format!("slurm job {job} ended {state} (log `{log}`){tail}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUDY: &str = r#"
        [study]
        name = "t"

        [slurm]
        partition = "gpu"
        time = "2:00:00"
        cpus = 4
        options = ["--account=abc"]

        [train.base]
        arch = "resnet18"
        lr = 0.1
        slurm = { cpus = 8, gpus = 1, mem = "16G" }

        [train.plain]
        arch = "resnet18"
        lr = 0.1

        [train.on-gpu]
        arch = "resnet18"
        lr = 0.1
        device = "gpu"

        [train.on-cpu]
        arch = "resnet18"
        lr = 0.1
        device = "cpu"
        slurm = { gpus = 2 }
    "#;

    fn config(partition: Option<&str>) -> SlurmConfig {
        SlurmConfig {
            exe: "/bin/tarun".into(),
            workdir: "/work".into(),
            partition: partition.map(str::to_owned),
            options: vec!["--qos=high".into()],
            poll: Duration::from_secs(1),
            max_jobs: 10,
        }
    }

    #[test]
    fn node_resources_override_the_defaults_and_the_command_line_overrides_both() {
        let study = crate::manifest::parse_str("t.toml", STUDY, &[]).unwrap();
        let base = study.node("base").unwrap();
        let plain = study.node("plain").unwrap();
        assert_eq!(
            sbatch_options(&config(None), &study, base),
            [
                "--partition=gpu",
                "--cpus-per-task=8",
                "--mem=16G",
                "--gpus=1",
                "--time=2:00:00",
                "--account=abc",
                "--qos=high"
            ]
        );
        assert_eq!(
            sbatch_options(&config(Some("debug")), &study, plain),
            [
                "--partition=debug",
                "--cpus-per-task=4",
                "--time=2:00:00",
                "--account=abc",
                "--qos=high"
            ]
        );
        assert_eq!(gpus(&study, base), 1);
        assert_eq!(gpus(&study, plain), 0);
        assert_eq!(gpus(&study, study.node("on-gpu").unwrap()), 1);
        assert_eq!(gpus(&study, study.node("on-cpu").unwrap()), 0);
    }
}
