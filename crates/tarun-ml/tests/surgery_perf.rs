//! Timing of the surgeon on a VGG-11-BN-sized state dict (128.8M parameters): the t_surgery
//! of docs/study.md §7.9.
//!
//! Ignored by default (it allocates about 2 GB); run it with
//! `cargo test -p tarun-ml --release --test surgery_perf -- --ignored --nocapture`.

mod surgery {
    use std::time::Instant;

    use candle_core::{Device, Tensor};
    use rayon::prelude::*;
    use tarun_ml::surgery::{BufferPolicy, QuantileMode, StateDict, Term, apply, task_vector};

    /// torchvision VGG-11-BN at width 1: (conv index, in, out) of the eight conv layers.
    const CONVS: [(usize, usize, usize); 8] = [
        (0, 3, 64),
        (4, 64, 128),
        (8, 128, 256),
        (11, 256, 256),
        (15, 256, 512),
        (18, 512, 512),
        (22, 512, 512),
        (25, 512, 512),
    ];

    /// Deterministic pseudo-random values in [-scale, scale), generated in parallel.
    fn noise(n: usize, salt: u64, scale: f32) -> Vec<f32> {
        (0..n as u64)
            .into_par_iter()
            .map(|i| {
                let h = (i ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                ((h >> 40) as f32 / 16_777_216.0 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    fn vgg11_bn(salt: u64) -> StateDict {
        let mut dict = StateDict::new();
        let mut add = |name: String, dims: Vec<usize>| {
            let n = dims.iter().product();
            let tensor =
                Tensor::from_vec(noise(n, salt ^ name.len() as u64, 0.01), dims, &Device::Cpu);
            dict.insert(name, tensor.unwrap());
        };
        for (i, cin, cout) in CONVS {
            add(format!("features.{i}.weight"), vec![cout, cin, 3, 3]);
            add(format!("features.{i}.bias"), vec![cout]);
            for leaf in ["weight", "bias", "running_mean", "running_var"] {
                add(format!("features.{}.{leaf}", i + 1), vec![cout]);
            }
        }
        for (i, cin, cout) in [(0, 25_088, 4096), (3, 4096, 4096), (6, 4096, 10)] {
            add(format!("classifier.{i}.weight"), vec![cout, cin]);
            add(format!("classifier.{i}.bias"), vec![cout]);
        }
        dict
    }

    /// Runs `f` `REPEATS` times and returns the fastest wall time: the machine is shared, and the
    /// minimum is the least noisy estimate of the cost itself.
    fn fastest<T>(mut f: impl FnMut() -> T) -> f64 {
        const REPEATS: usize = 5;
        (0..REPEATS)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    #[ignore = "allocates ~2 GB; run explicitly for timings"]
    fn vgg11_bn_surgery_time() {
        let base = vgg11_bn(1);
        let expert = vgg11_bn(2);
        let params: usize = base.values().map(Tensor::elem_count).sum();
        println!("parameters (with buffers): {params}");

        let tau = task_vector(&base, &expert).unwrap();
        let t = fastest(|| task_vector(&base, &expert).unwrap());
        println!("task_vector: {t:.3} s");
        for (label, mode) in [
            ("exact", QuantileMode::Exact),
            ("seed-sample", QuantileMode::seed_sample(42)),
        ] {
            let terms = [Term {
                vector: &tau,
                alpha: -2.5,
                rho: 0.99,
            }];
            let t = fastest(|| apply(&base, &terms, mode, BufferPolicy::FromBase).unwrap());
            println!("apply ({label}): {t:.3} s");
            // The whole seed call: τ from scratch (no cached histogram), then the update.
            let t = fastest(|| {
                let tau = task_vector(&base, &expert).unwrap();
                let terms = [Term {
                    vector: &tau,
                    alpha: -2.5,
                    rho: 0.99,
                }];
                apply(&base, &terms, mode, BufferPolicy::FromBase).unwrap()
            });
            println!("task_vector + apply ({label}): {t:.3} s");
        }
    }

    #[test]
    #[ignore = "timing only"]
    fn quantile_time_on_the_largest_vgg_tensor() {
        let data = noise(25_088 * 4096, 3, 0.01);
        let t = fastest(|| tarun_ml::surgery::abs_quantile(&data, 0.99));
        println!("abs_quantile on 102.8M: {t:.3} s");
        let t = fastest(|| data.to_vec());
        println!("plain copy of 102.8M f32: {t:.3} s");
    }
}
