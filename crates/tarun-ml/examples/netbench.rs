//! Runs one network's inference or training steps in a loop, for profiling a single phase with
//! `perf record` (`tarun bench` measures both phases and PyTorch too). Prints images/second,
//! the median of the timed steps.
//!
//! `cargo run --release -p tarun-ml --example netbench -- ARCH WIDTH BATCH infer|train STEPS`
//! (for instance `mobilenet_v2 1 128 infer 20`).

use std::time::Instant;

use candle_core::{Device, Tensor};
use tarun_ml::models::{Arch, Mode, Network};
use tarun_ml::train::{Optimizer, OptimizerKind};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    tarun_ml::device::tune_process();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arch, width, batch, phase, steps] = args.as_slice() else {
        eprintln!("usage: netbench ARCH WIDTH BATCH infer|train STEPS");
        std::process::exit(2);
    };
    let arch: Arch = arch.parse().map_err(|e| format!("{e:?}"))?;
    let (width, batch, steps): (f64, usize, usize) =
        (width.parse()?, batch.parse()?, steps.parse()?);
    let train = match phase.as_str() {
        "train" => true,
        "infer" => false,
        other => return Err(format!("phase must be infer or train, got {other}").into()),
    };
    // Inside a pool, as `tarun run` runs every node and `tarun bench` every row.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    tarun_ml::device::with_threads(threads, || {
        run(arch, width, batch, train, steps).map_err(|e| e.to_string())
    })?;
    Ok(())
}

/// Builds the network and times its steps; prints the median.
fn run(arch: Arch, width: f64, batch: usize, train: bool, steps: usize) -> Result<()> {
    let phase = if train { "train" } else { "infer" };
    let net = Network::new(arch, width, 10, 0, &Device::Cpu)?;
    let x = Tensor::randn(0f32, 1., (batch, 3, 32, 32), &Device::Cpu)?;
    let y = Tensor::new(
        (0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(),
        &Device::Cpu,
    )?;
    let mut opt = Optimizer::new(OptimizerKind::AdamW, net.trainable_vars(), 0.01, 0.0)?;
    let mut step = || -> Result<()> {
        if train {
            let taped = net.forward_taped(&x, Mode::TRAIN)?;
            let loss = candle_nn::loss::cross_entropy(&taped.logits, &y)?;
            opt.step(&taped.backward(&loss)?, 1e-4)?;
        } else {
            drop(net.forward_inference(&x)?);
        }
        Ok(())
    };
    step()?;
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{} width {width} batch {batch} {phase}: {:.1} images/second",
        arch.name(),
        batch as f64 / median
    );
    Ok(())
}
