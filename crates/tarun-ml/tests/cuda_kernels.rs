//! tarun's GPU ops (cuDNN convolutions, its own CUDA kernels) against its CPU kernels, op by op
//! on random shapes and through whole training steps.
//!
//! They need an NVIDIA GPU, so they are `#[ignore]`d: `.ci/gpu-check` runs this binary with
//! `--ignored` on a GPU machine. Every comparison draws fresh random inputs, runs the same op
//! (with its backward, through a random linear loss) on both devices, and compares outputs and
//! gradients by `|gpu - cpu| / max(|cpu|)` per tensor. In exact f32 ([`Precision::Fp32`]) the
//! two differ only in the order of sums: 1e-4. With TF32 (PyTorch's default for convolutions)
//! the inputs are rounded to 10 mantissa bits: 1e-2.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tarun_ml::kernels::{self, Activation, Precision};
use tarun_ml::models::{Arch, Mode, Network};
use tarun_ml::train::{Optimizer, OptimizerKind};

fn gpu() -> Device {
    Device::new_cuda(0).expect("these tests need a CUDA device (run them with --ignored on one)")
}

fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn host(t: &Tensor) -> Vec<f32> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `max |a - b| / max |b|`, NaN-safe (a NaN anywhere fails).
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b
        .iter()
        .fold(0f64, |m, &v| m.max(f64::from(v).abs()))
        .max(1e-12);
    let diff = a.iter().zip(b).fold(0f64, |m, (&x, &y)| {
        let d = (f64::from(x) - f64::from(y)).abs();
        if d.is_nan() { f64::INFINITY } else { m.max(d) }
    });
    diff / scale
}

fn close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f64) {
    assert_eq!(gpu.dims(), cpu.dims(), "{what}: shapes");
    let e = rel_err(&host(gpu), &host(cpu));
    assert!(e <= tol, "{what}: relative error {e:.3e} > {tol:.0e}");
}

/// Runs `op` on the CPU and the GPU over the same inputs (as variables), with the loss
/// `sum(y * r)` for a random `r`, and compares the output and every input's gradient.
fn check(
    what: &str,
    inputs: &[Tensor],
    tol: f64,
    op: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) {
    let dev = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(what.len() as u64 + 17);
    let mut run = |device: &Device, r: Option<&Tensor>| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_device(device).unwrap()).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = op(&ts).unwrap();
        let r = match r {
            Some(r) => r.to_device(device).unwrap(),
            None => random(&mut rng, y.dims()).to_device(device).unwrap(),
        };
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<Option<Tensor>> = vars.iter().map(|v| grads.get(v).cloned()).collect();
        (y, g, r)
    };
    let (y_cpu, g_cpu, r) = run(&Device::Cpu, None);
    let (y_gpu, g_gpu, _) = run(&dev, Some(&r));
    close(&format!("{what}: output"), &y_gpu, &y_cpu, tol);
    for (i, (a, b)) in g_gpu.iter().zip(&g_cpu).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => close(&format!("{what}: gradient of input {i}"), a, b, tol),
            (None, None) => {}
            _ => panic!("{what}: gradient of input {i} on one device only"),
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn convolutions_match_the_cpu_on_random_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for case in 0..24 {
        let (k, stride) = [(3, 1), (3, 2), (1, 1), (1, 2)][case % 4];
        let pad = if k == 3 { 1 } else { 0 };
        let (b, c, co) = (
            rng.random_range(1..5),
            rng.random_range(1..40),
            rng.random_range(1..40),
        );
        let side = rng.random_range(2..18);
        let x = random(&mut rng, &[b, c, side, side]);
        let w = random(&mut rng, &[co, c, k, k]);
        for (precision, tol) in [(Precision::Fp32, 1e-4), (Precision::Tf32, 1e-2)] {
            let what =
                format!("conv {b}x{c}x{side}x{side} -> {co}, k{k} s{stride} p{pad}, {precision:?}");
            precision.with(|| {
                check(&what, &[x.clone(), w.clone()], tol, |t| {
                    kernels::conv2d(&t[0], &t[1], stride, pad)
                })
            });
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn depthwise_convolutions_match_the_cpu_on_random_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for case in 0..12 {
        let stride = 1 + case % 2;
        let (b, c, side) = (
            rng.random_range(1..5),
            rng.random_range(1..70),
            rng.random_range(2..20),
        );
        let x = random(&mut rng, &[b, c, side, side]);
        let w = random(&mut rng, &[c, 1, 3, 3]);
        let what = format!("depthwise {b}x{c}x{side}x{side} s{stride}");
        Precision::Fp32.with(|| {
            check(&what, &[x, w], 1e-4, |t| {
                kernels::depthwise_conv2d(&t[0], &t[1], stride, 1)
            })
        });
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn batch_norm_matches_the_cpu_in_both_modes_and_every_activation() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Random small shapes (one block per channel) and large maps of few channels, whose
    // per-channel sums are split over several blocks (and, at 64x8x32x32, 16 segments).
    let large = [(64, 8, 32), (33, 3, 17), (128, 40, 8)];
    for act in [Activation::None, Activation::Relu, Activation::Relu6] {
        for batch_stats in [true, false] {
            let (b, c, side) = (
                rng.random_range(2..6),
                rng.random_range(1..50),
                rng.random_range(1..12),
            );
            let shapes = std::iter::once((b, c, side)).chain(large);
            for (b, c, side) in shapes {
                let x = (random(&mut rng, &[b, c, side, side]) * 3.0).unwrap();
                let gamma = random(&mut rng, &[c]);
                let beta = random(&mut rng, &[c]);
                let var = (random(&mut rng, &[c]).abs().unwrap() + 0.5).unwrap();
                let mean = random(&mut rng, &[c]);
                let fixed = Tensor::stack(&[mean, var], 0).unwrap();
                let what =
                    format!("batch norm {b}x{c}x{side}x{side} {act:?} batch_stats={batch_stats}");
                check(&what, &[x, gamma, beta], 1e-4, |t| {
                    let stats = if batch_stats {
                        kernels::batch_norm_stats(&t[0])?
                    } else {
                        fixed.to_device(t[0].device())?
                    };
                    kernels::batch_norm(&t[0], &t[1], &t[2], &stats, 1e-5, act, batch_stats)
                });
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn residual_and_bias_match_the_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (a, b) = (
        random(&mut rng, &[3, 5, 7, 7]),
        random(&mut rng, &[3, 5, 7, 7]),
    );
    check("add_relu", &[a.clone(), b], 1e-5, |t| {
        kernels::add_relu(&t[0], &t[1])
    });
    let bias = random(&mut rng, &[5]);
    check("bias", &[a, bias], 1e-5, |t| {
        kernels::add_channel_bias(&t[0], &t[1])
    });
    // A bias gradient summed over several blocks per channel.
    let (a, bias) = (random(&mut rng, &[96, 4, 24, 24]), random(&mut rng, &[4]));
    check("bias 96x4x24x24", &[a, bias], 1e-5, |t| {
        kernels::add_channel_bias(&t[0], &t[1])
    });
}

/// One training step (forward in train mode, loss, backward) of each network on both devices
/// from the same weights: logits, loss, every parameter's gradient and the updated running
/// statistics agree. Exact f32, so that only the order of sums (and cuDNN's choice of
/// algorithm) differs. This is the wiring check (a wrong stride, padding or mode moves a
/// gradient by its own size); the per-op tests above are the precision checks.
///
/// Gradients are compared per parameter by `|gpu - cpu| / |cpu|` over the whole tensor (L2
/// norms), within 5e-2 plus a floor of 1e-5 of the network's largest gradient norm
/// (parameters whose exact gradient is zero carry only float noise). The gradients of a
/// freshly initialised network at batch 8 are that sensitive to rounding: on the CPU, input
/// images perturbed by a relative 1e-6 moved ResNet-18's gradients by up to 5.7e-3 and by 1e-5
/// up to 1.9e-2 (ReLU kinks switching sides, batch norm's mean-subtracting backward), while
/// logits moved by less than 1e-5. On an H200 the stem's gradient differed by 3e-3.
#[test]
#[ignore = "needs a CUDA GPU"]
fn a_training_step_matches_the_cpu_for_every_network() {
    let dev = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random(&mut rng, &[8, 3, 32, 32]);
    let labels: Vec<u32> = (0..8).map(|i| (i * 3) % 10).collect();
    let y = Tensor::from_vec(labels, 8, &Device::Cpu).unwrap();
    for arch in Arch::ALL {
        let step = |device: &Device| {
            Precision::Fp32.with(|| {
                let net = Network::new(arch, 0.25, 10, 7, device).unwrap();
                let mode = Mode {
                    batch_stats: true,
                    dropout: false,
                };
                let (x, y) = (x.to_device(device).unwrap(), y.to_device(device).unwrap());
                let taped = net.forward_taped(&x, mode).unwrap();
                let loss = candle_nn::loss::cross_entropy(&taped.logits, &y).unwrap();
                let grads = taped.backward(&loss).unwrap();
                let grads: Vec<(String, Vec<f32>)> = net
                    .named_trainable_vars()
                    .into_iter()
                    .map(|(k, v)| (k, host(grads.get(v.as_tensor()).expect("a gradient"))))
                    .collect();
                (taped.logits.clone(), loss, grads, net.state_dict().unwrap())
            })
        };
        let (logits_cpu, loss_cpu, grads_cpu, state_cpu) = step(&Device::Cpu);
        let (logits_gpu, loss_gpu, grads_gpu, state_gpu) = step(&dev);
        close(&format!("{arch}: logits"), &logits_gpu, &logits_cpu, 1e-4);
        close(&format!("{arch}: loss"), &loss_gpu, &loss_cpu, 1e-5);
        let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let largest = grads_cpu.iter().map(|(_, g)| norm(g)).fold(0f64, f64::max);
        let mut worst = (0f64, String::new());
        for ((key, gpu), (_, cpu)) in grads_gpu.iter().zip(&grads_cpu) {
            let diff: Vec<f32> = gpu.iter().zip(cpu).map(|(a, b)| a - b).collect();
            let (d, own) = (norm(&diff), norm(cpu));
            assert!(
                d <= 5e-2 * own + 1e-5 * largest,
                "{arch}: gradient of {key}: |gpu - cpu| {d:.3e}, |cpu| {own:.3e}"
            );
            if own > 1e-5 * largest && d / own > worst.0 {
                worst = (d / own, key.clone());
            }
        }
        eprintln!(
            "{arch}: largest relative gradient difference {:.2e} ({})",
            worst.0, worst.1
        );
        for (key, cpu) in &state_cpu {
            if let Some(layer) = key.strip_suffix(".running_mean") {
                // A batch's mean is known to rounding relative to the batch's spread, not to
                // the mean itself: where a layer's inputs have zero mean per channel (in
                // MobileNetV2 a 1x1 convolution of a residual stream of batch-normed outputs)
                // both running means are 0.1 x noise of about 1e-8. So the scale is the larger
                // of the running mean and 0.1 x the batch's standard deviation, which the
                // running variance holds: 0.9 x 1 + 0.1 x var after one step.
                let var = host(&state_cpu[&format!("{layer}.running_var")]);
                let spread = var
                    .iter()
                    .fold(0f64, |m, &v| m.max((f64::from(v) - 0.9) / 0.1));
                let (gpu, cpu) = (host(&state_gpu[key]), host(cpu));
                let mean = cpu.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
                let scale = mean.max(0.1 * spread.max(0.0).sqrt());
                let diff = gpu.iter().zip(&cpu).fold(0f64, |m, (&a, &b)| {
                    m.max((f64::from(a) - f64::from(b)).abs())
                });
                assert!(
                    diff <= 1e-4 * scale,
                    "{arch}: {key}: |gpu - cpu| {diff:.3e} > 1e-4 x {scale:.3e}"
                );
            } else if key.contains("running_") {
                close(&format!("{arch}: {key}"), &state_gpu[key], cpu, 1e-4);
            } else if key.ends_with("num_batches_tracked") {
                assert_eq!(host(&state_gpu[key]), host(cpu), "{arch}: {key}");
            }
        }
    }
}

/// AdamW on the GPU (one kernel per tensor) against the CPU's fused update, over three steps
/// with the same gradients: the same f32 operations in the same order, so equal to rounding.
#[test]
#[ignore = "needs a CUDA GPU"]
fn adamw_matches_the_cpu() {
    let dev = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let theta = random(&mut rng, &[1000, 37]);
    let grads: Vec<Tensor> = (0..3).map(|_| random(&mut rng, &[1000, 37])).collect();
    let run = |device: &Device| {
        let var = Var::from_tensor(&theta.to_device(device).unwrap()).unwrap();
        let mut opt = Optimizer::new(OptimizerKind::AdamW, vec![var.clone()], 0.01, 0.9).unwrap();
        for g in &grads {
            // A gradient store holding `g` for `var`: the gradient of sum(var * g).
            let loss = (var.as_tensor() * g.to_device(device).unwrap())
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap(), 1e-2).unwrap();
        }
        var.as_tensor().clone()
    };
    close(
        "adamw after three steps",
        &run(&dev),
        &run(&Device::Cpu),
        1e-6,
    );
}

/// Inference (`forward_inference`, batch norm on running statistics) of a trained-looking
/// network gives the CPU's logits.
#[test]
#[ignore = "needs a CUDA GPU"]
fn inference_matches_the_cpu_for_every_network() {
    let dev = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = random(&mut rng, &[16, 3, 32, 32]);
    for arch in Arch::ALL {
        let cpu = Network::new(arch, 0.5, 10, 9, &Device::Cpu).unwrap();
        // Move the running statistics off their initial values with two training passes.
        for _ in 0..2 {
            cpu.forward_t(&x, true).unwrap();
        }
        let state = cpu.state_dict().unwrap();
        let gpu_net = Network::from_state_dict(arch, 0.5, 10, &state, &dev).unwrap();
        let want = cpu.forward_inference(&x).unwrap();
        let got = Precision::Fp32.with(|| {
            gpu_net
                .forward_inference(&x.to_device(&dev).unwrap())
                .unwrap()
        });
        close(&format!("{arch}: inference logits"), &got, &want, 1e-4);
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn dropout_masks_are_the_same_on_both_devices() {
    for (n, p, seed) in [(7, 0.2, 3), (1000, 0.5, 1), (524_288, 0.5, u64::MAX)] {
        let g = host(&kernels::dropout_mask(n, p, seed, &gpu()).unwrap());
        let c = host(&kernels::dropout_mask(n, p, seed, &Device::Cpu).unwrap());
        assert_eq!(g, c, "{n} elements, p {p}, seed {seed}");
    }
}
