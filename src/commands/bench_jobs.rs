//! `tarun bench jobs`: the total training throughput of 1, 2, 4... jobs running at once on one
//! device, as `tarun run` runs them in a device's slots (a thread and an opened device each, on
//! the CPU the cores shared out between them). The speed-up over one job says whether more
//! slots per device help.

use std::process::ExitCode;
use std::sync::Barrier;
use std::time::Instant;

use serde::Serialize;
use tarun_ml::models::{Arch, Kernels};

use super::Result;
use super::bench::{Subject, grid};
use crate::cli::BenchArgs;
use crate::errors::ExpectedError;
use crate::output::outln;

#[derive(Debug, Serialize)]
struct JobsRow {
    arch: String,
    width: f64,
    batch: usize,
    jobs: usize,
    /// Images per second of all jobs together, over the time the slowest took.
    train_images_per_s: f64,
    /// `train_images_per_s` over the one-job figure of the same row.
    speedup: f64,
}

pub fn bench_jobs(args: &BenchArgs) -> Result<ExitCode> {
    let (archs, widths, batches) = grid(args)?;
    let counts = if args.jobs.is_empty() {
        vec![1, 2, 4]
    } else {
        args.jobs.clone()
    };
    if counts.contains(&0) {
        return Err(ExpectedError::Usage("--jobs counts start at 1".into()));
    }
    // A device up front, so that a bad name is a usage error before any thread starts.
    tarun_ml::device::open(&args.device).map_err(ExpectedError::Usage)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let steps = args.steps.max(1) * args.rounds.max(1);
    let mut rows: Vec<JobsRow> = vec![];
    for &arch in &archs {
        for &width in &widths {
            for &batch in &batches {
                let mut single = None;
                for &jobs in &counts {
                    let rate = concurrent(arch, width, batch, jobs, steps, threads, &args.device)?;
                    let base = *single.get_or_insert(if jobs == 1 { rate } else { f64::NAN });
                    if !args.json {
                        eprintln!(
                            "measured {} width {width} batch {batch}: {jobs} jobs",
                            arch.name()
                        );
                    }
                    rows.push(JobsRow {
                        arch: arch.name().to_owned(),
                        width,
                        batch,
                        jobs,
                        train_images_per_s: rate,
                        speedup: rate / base,
                    });
                }
            }
        }
    }
    if args.json {
        let out = serde_json::json!({
            "device": args.device,
            "threads": threads,
            "kernels": Kernels::selected().name(),
            "steps": steps,
            "rows": rows,
        });
        outln!("{}", serde_json::to_string_pretty(&out).expect("json"))?;
    } else {
        outln!(
            "tarun bench jobs: training images/second of N jobs at once on {}, {steps} timed \
             steps each after a warm-up, {threads} threads shared out",
            args.device
        )?;
        outln!("| network | width | batch | jobs | images/s (all jobs) | vs 1 job |")?;
        outln!("|---|---|---|---|---|---|")?;
        for r in &rows {
            outln!(
                "| {} | {} | {} | {} | {:.1} | {:.2} |",
                r.arch,
                r.width,
                r.batch,
                r.jobs,
                r.train_images_per_s,
                r.speedup
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Trains `jobs` copies of one network at once, each on a thread of its own with its own
/// opened device and `threads / jobs` compute threads, and returns their images per second
/// together: all jobs' timed steps over the wall time from a common start to the last one's end.
fn concurrent(
    arch: Arch,
    width: f64,
    batch: usize,
    jobs: usize,
    steps: usize,
    threads: usize,
    device: &str,
) -> Result<f64> {
    tarun_ml::device::release_free_memory();
    let start = Barrier::new(jobs + 1);
    let per_job = (threads / jobs).max(1);
    let elapsed = std::thread::scope(|s| -> anyhow::Result<f64> {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                let start = &start;
                s.spawn(move || {
                    tarun_ml::device::with_threads(per_job, || -> anyhow::Result<Instant> {
                        let prepared = tarun_ml::device::open(device)
                            .map_err(anyhow::Error::msg)
                            .and_then(|d| {
                                let mut me = Subject::new(arch, width, batch, &d)?;
                                me.train_step()?;
                                Ok(me)
                            });
                        // Every job reaches the barrier, failed or not, so that none waits
                        // forever.
                        start.wait();
                        let mut me = prepared?;
                        me.timed(true, steps)?;
                        Ok(Instant::now())
                    })
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let mut last = t0;
        for h in handles {
            let end = h
                .join()
                .map_err(|_| anyhow::anyhow!("a bench job panicked"))??;
            last = last.max(end);
        }
        Ok(last.duration_since(t0).as_secs_f64())
    })?;
    Ok((jobs * steps * batch) as f64 / elapsed)
}
