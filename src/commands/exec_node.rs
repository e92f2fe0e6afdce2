//! `tarun exec-node KEY --store DIR`: the body of a Slurm job. Runs the one node the driver
//! wrote a task for, commits it to the shared store exactly as a local run would, and leaves an
//! exit file saying how it ended. Logs and progress go to stderr (the job's log file).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tarun_core::digest::NodeKey;
use tarun_core::engine::{Event, JobError, Placement, RemoteNode, write_exit};
use tarun_core::store::Store;
use tokio_util::sync::CancellationToken;

use super::Result;
use crate::cli::ExecNodeArgs;
use crate::errors::{self, ExpectedError};
use crate::kinds;

pub fn exec_node(args: ExecNodeArgs) -> Result<ExitCode> {
    let key: NodeKey = args
        .key
        .parse()
        .map_err(|_| ExpectedError::Usage(format!("`{}` is not a node key", args.key)))?;
    let store = Store::open(args.store.store.clone())?;
    let job =
        std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| format!("pid{}", std::process::id()));
    let host = std::env::var("SLURMD_NODENAME").unwrap_or_else(|_| "this host".into());
    eprintln!("tarun exec-node {key}: slurm job {job} on {host}");
    let cancel = CancellationToken::new();
    stop_on_sigterm(cancel.clone());
    let result = run(&store, &key, &job, cancel.clone());
    let code = match &result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if cancel.is_cancelled() => ExitCode::from(errors::INTERRUPTED),
        Err(_) => ExitCode::from(errors::NODE_FAILED),
    };
    if let Err(e) = &result {
        eprintln!("error: {e}");
    }
    // The record, when there is one, is already committed; the exit file only explains.
    if let Err(e) = write_exit(&store, &job, key, &result) {
        eprintln!("warning: could not write the exit file: {e}");
    }
    Ok(code)
}

/// Loads and runs the task; `Err` says why it failed, in one line.
fn run(store: &Store, key: &NodeKey, job: &str, cancel: CancellationToken) -> Result<(), String> {
    let node = RemoteNode::load(store, key)?;
    let data = kinds::data_digest(&node.study, store).map_err(|e| e.to_string())?;
    let device = if node.task.gpus > 0 {
        kinds::detect_devices()
            .into_iter()
            .map(|d| d.name)
            .find(|d| d != "cpu")
            .ok_or("the job was given GPUs but this tarun was built without GPU support")?
    } else {
        "cpu".to_owned()
    };
    let threads = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = std::thread::spawn(move || print_events(rx));
    let t0 = Instant::now();
    eprintln!(
        "running `{}` on {device} with {threads} threads",
        node.task.node
    );
    let placement = Placement {
        job: job.to_owned(),
        device,
        threads,
        cancel,
        events: tx,
    };
    let result = node.execute(store, Arc::new(kinds::StudyRunner), &data, placement);
    let _ = printer.join();
    match result {
        // Another driver (or its job) committed the node while this job waited for its lease.
        Ok(record) if record.run_id != node.task.run_id => {
            eprintln!(
                "`{}` was committed by run {} meanwhile; nothing computed",
                record.id, record.run_id
            );
            Ok(())
        }
        Ok(record) => {
            eprintln!(
                "committed `{}` ({} outputs) in {:.1}s",
                record.id,
                record.outputs.len(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(JobError::Cancelled) => {
            Err("stopped by SIGTERM (scancel, the time limit or preemption)".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Log lines as they come; progress at most every few seconds.
fn print_events(mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let mut last = Instant::now() - Duration::from_secs(60);
    while let Some(event) = rx.blocking_recv() {
        match event {
            Event::NodeLog { line, .. } => eprintln!("{line}"),
            Event::NodeProgress {
                done,
                total,
                message,
                ..
            } if last.elapsed() >= Duration::from_secs(5) || done == total => {
                last = Instant::now();
                eprintln!("progress {done}/{total} {message}");
            }
            _ => {}
        }
    }
}

/// SIGTERM (what `scancel` sends first) stops the node at its next batch; nothing is committed.
fn stop_on_sigterm(cancel: CancellationToken) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            term.recv().await;
            eprintln!("SIGTERM: stopping at the next batch; nothing partial is kept");
            cancel.cancel();
        });
    });
}
