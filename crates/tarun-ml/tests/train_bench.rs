//! Training throughput on this machine's CPU (ignored by default):
//! `cargo test -p tarun-ml --test train_bench -- --ignored --nocapture`.

use std::convert::Infallible;
use std::time::Instant;

use candle_core::{Device, Tensor};
use tarun_ml::models::{Arch, Network};
use tarun_ml::train::{
    NoHooks, Objective, Optimization, OptimizerKind, Schedule, TrainConfig, fit,
};

fn bench(arch: Arch, width: f64, batch: usize, steps: u64) {
    let dev = Device::Cpu;
    let mut net = Network::new(arch, width, 10, 0, &dev).unwrap();
    let x = Tensor::randn(0f32, 1., (batch, 3, 32, 32), &dev).unwrap();
    let y = Tensor::from_vec((0..batch as u32).map(|i| i % 10).collect(), batch, &dev).unwrap();
    let cfg = TrainConfig {
        optim: Optimization {
            optimizer: OptimizerKind::AdamW,
            lr: 1e-3,
            weight_decay: 1e-4,
            momentum: 0.0,
            epochs: 1,
            max_steps: None,
            schedule: Schedule::Constant,
        },
        objective: Objective::Ce,
        seed: 0,
    };
    let data = |n: u64| {
        let (x, y) = (x.clone(), y.clone());
        (0..n).map(move |_| Ok::<_, Infallible>((x.clone(), y.clone())))
    };
    fit(&mut net, &cfg, |_| data(1), &mut NoHooks).unwrap(); // warm-up
    let start = Instant::now();
    let summary = fit(&mut net, &cfg, |_| data(steps), &mut NoHooks).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let rate = summary.images as f64 / secs;
    println!(
        "{arch} width {width} batch {batch}: {rate:.1} images/s ({:.3} s/step)",
        secs / steps as f64
    );

    let eval_start = Instant::now();
    net.forward_t(&x, false).unwrap().to_vec2::<f32>().unwrap();
    println!(
        "  eval forward: {:.1} images/s",
        batch as f64 / eval_start.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "benchmark"]
fn training_throughput() {
    bench(Arch::Resnet18, 0.25, 32, 5);
    bench(Arch::MobilenetV2, 1.0, 32, 5);
    bench(Arch::Resnet18, 1.0, 32, 2);
    bench(Arch::Vgg11Bn, 1.0, 32, 2);
}
