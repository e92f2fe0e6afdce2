//! Times tarun's dense convolution on one shape, for tuning its kernels (im2col + GEMM or
//! Winograd, see `kernels/conv/`): the forward pass, the forward with the kernel gradient,
//! and the forward with both gradients, each the best of several runs, as GFLOP/s counted as
//! direct convolution (`2 B Co Ho Wo C k k` per pass).
//!
//! `cargo run --release -p tarun-ml --example convbench -- BATCH C_IN SIZE C_OUT KERNEL STRIDE PAD`
//! (for instance `128 256 8 256 3 1 1`, ResNet-18's third stage at batch 128).

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use tarun_ml::kernels::conv2d;

/// The best of `runs` timings of `f`, in seconds.
fn best(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() -> candle_core::Result<()> {
    tarun_ml::device::tune_process();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("seven whole numbers"))
        .collect();
    let &[b, c, h, co, k, s, p] = args.as_slice() else {
        eprintln!("usage: convbench BATCH C_IN SIZE C_OUT KERNEL STRIDE PAD");
        std::process::exit(2);
    };
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, c, h, h), &Device::Cpu)?)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 1., (co, c, k, k), &Device::Cpu)?)?;
    let ho = (h + 2 * p - k) / s + 1;
    let gflop = 2.0 * (b * co * ho * ho * c * k * k) as f64 / 1e9;
    let (xt, wt) = (x.as_tensor().detach(), w.as_tensor());
    let forward = best(8, || drop(conv2d(&xt, &wt.detach(), s, p).unwrap()));
    let kernel = best(5, || {
        let y = conv2d(&xt, wt, s, p).unwrap();
        drop(y.sum_all().unwrap().backward().unwrap());
    });
    let both = best(5, || {
        let y = conv2d(x.as_tensor(), wt, s, p).unwrap();
        drop(y.sum_all().unwrap().backward().unwrap());
    });
    for (what, secs, passes) in [
        ("forward", forward, 1.0),
        ("forward + kernel gradient", kernel, 2.0),
        ("forward + both gradients", both, 3.0),
    ] {
        println!(
            "{what:<26} {:8.2} ms {:7.1} GFLOP/s",
            secs * 1e3,
            passes * gflop / secs
        );
    }
    Ok(())
}
