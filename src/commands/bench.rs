//! `tarun bench`: images per second of a training step and of inference for each network, and
//! PyTorch's on the same machine in the same run when it is installed.
//!
//! Each row builds the network, runs one warm-up step, then times `--steps` steps and reports the
//! median. Peak memory is the process's peak resident set since the row started (Linux resets
//! it through `/proc/self/clear_refs`). The PyTorch rows come from `bench/torch_bench.py`, run
//! with the same thread count, interleaved row by row so that both see the same machine state.

use std::process::{Command, ExitCode};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use tarun_ml::models::{Arch, Kernels, Network};
use tarun_ml::train::{Optimizer, OptimizerKind};

use super::Result;
use crate::cli::BenchArgs;
use crate::errors::ExpectedError;

const TORCH_SCRIPT: &str = include_str!("../../bench/torch_bench.py");

#[derive(Debug, Serialize)]
struct Row {
    arch: String,
    width: f64,
    batch: usize,
    train_images_per_s: f64,
    infer_images_per_s: f64,
    peak_mb: Option<f64>,
    torch_train_images_per_s: Option<f64>,
    torch_infer_images_per_s: Option<f64>,
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    if args.suite != "train" {
        return Err(ExpectedError::Usage(format!(
            "unknown bench suite `{}` (train)",
            args.suite
        )));
    }
    let archs: Vec<Arch> = if args.arch.is_empty() {
        Arch::ALL.to_vec()
    } else {
        args.arch
            .iter()
            .map(|a| a.parse().map_err(|e| ExpectedError::Usage(format!("{e}"))))
            .collect::<Result<_>>()?
    };
    let widths = if args.width.is_empty() {
        vec![0.25, 1.0]
    } else {
        args.width.clone()
    };
    let batches = if args.batch.is_empty() {
        vec![32, 128]
    } else {
        args.batch.clone()
    };
    let device = tarun_ml::device::open(&args.device).map_err(ExpectedError::Usage)?;
    let torch = torch_available();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = vec![];
    for &arch in &archs {
        for &width in &widths {
            for &batch in &batches {
                let mut row = measure(arch, width, batch, args.steps, &device)?;
                if torch {
                    let (t, i) = torch_row(arch, width, batch, args.steps, threads, &args.device)?;
                    row.torch_train_images_per_s = Some(t);
                    row.torch_infer_images_per_s = Some(i);
                }
                if !args.json {
                    eprintln!(
                        "measured {} width {} batch {}",
                        row.arch, row.width, row.batch
                    );
                }
                rows.push(row);
            }
        }
    }
    if args.json {
        let out = serde_json::json!({
            "device": args.device,
            "threads": threads,
            "kernels": Kernels::selected().name(),
            "torch": torch,
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        print_table(&rows, torch, threads, &args.device);
    }
    Ok(ExitCode::SUCCESS)
}

fn measure(
    arch: Arch,
    width: f64,
    batch: usize,
    steps: usize,
    device: &Device,
) -> anyhow::Result<Row> {
    reset_peak_memory();
    let net = Network::new(arch, width, 10, 0, device)?;
    let mut opt = Optimizer::new(OptimizerKind::AdamW, net.trainable_vars(), 0.01, 0.0)?;
    let x = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), device)?;
    let labels: Vec<u32> = (0..batch).map(|i| (i % 10) as u32).collect();
    let y = Tensor::new(labels.as_slice(), device)?;
    let mut train_step = || -> anyhow::Result<()> {
        let logits = net.forward_t(&x, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        opt.step(&loss.backward()?, 1e-4)?;
        // A GPU queues the work: the step is done when the device says so.
        device.synchronize()?;
        Ok(())
    };
    let train = median_rate(batch, steps, &mut train_step)?;
    let mut infer_step = || -> anyhow::Result<()> {
        net.forward_t(&x, false)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()?;
        Ok(())
    };
    let infer = median_rate(batch, steps, &mut infer_step)?;
    Ok(Row {
        arch: arch.name().to_owned(),
        width,
        batch,
        train_images_per_s: train,
        infer_images_per_s: infer,
        peak_mb: peak_memory_mb(),
        torch_train_images_per_s: None,
        torch_infer_images_per_s: None,
    })
}

/// Images per second: median over `steps` timed steps after one warm-up step.
fn median_rate(
    batch: usize,
    steps: usize,
    step: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    step()?;
    let mut times = vec![];
    for _ in 0..steps.max(1) {
        let t0 = Instant::now();
        step()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(batch as f64 / times[times.len() / 2])
}

fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, torchvision"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the same row in PyTorch through the shipped script.
fn torch_row(
    arch: Arch,
    width: f64,
    batch: usize,
    steps: usize,
    threads: usize,
    device: &str,
) -> Result<(f64, f64)> {
    // The script ships inside the binary, so an installed tarun needs no source tree.
    // tarun's device names (`cpu`, `cuda:0`) are PyTorch's.
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("torch_bench.py");
    std::fs::write(&script, TORCH_SCRIPT)?;
    let out = Command::new("python3")
        .arg(&script)
        .args([
            arch.name(),
            &width.to_string(),
            &batch.to_string(),
            &steps.to_string(),
        ])
        .arg(threads.to_string())
        .arg(device)
        .output()?;
    if !out.status.success() {
        return Err(ExpectedError::Other(anyhow::anyhow!(
            "torch_bench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(anyhow::Error::from)?;
    let get = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok((get("train_images_per_s"), get("infer_images_per_s")))
}

fn print_table(rows: &[Row], torch: bool, threads: usize, device: &str) {
    println!(
        "tarun bench: images/second on {device}, {threads} threads (median of timed steps after \
         warm-up), {} kernels (TARUN_KERNELS)",
        Kernels::selected().name()
    );
    if !torch {
        println!(
            "PyTorch not found (python3 -c 'import torch, torchvision' failed): tarun's figures only"
        );
    }
    println!(
        "| network | width | batch | train | infer | peak MB |{}",
        if torch {
            " torch train | torch infer | train ratio | infer ratio |"
        } else {
            ""
        }
    );
    println!(
        "|---|---|---|---|---|---|{}",
        if torch { "---|---|---|---|" } else { "" }
    );
    for r in rows {
        let peak = r.peak_mb.map_or("-".into(), |m| format!("{m:.0}"));
        print!(
            "| {} | {} | {} | {:.1} | {:.1} | {} |",
            r.arch, r.width, r.batch, r.train_images_per_s, r.infer_images_per_s, peak
        );
        if let (Some(t), Some(i)) = (r.torch_train_images_per_s, r.torch_infer_images_per_s) {
            print!(
                " {t:.1} | {i:.1} | {:.2} | {:.2} |",
                r.train_images_per_s / t,
                r.infer_images_per_s / i
            );
        }
        println!();
    }
}
