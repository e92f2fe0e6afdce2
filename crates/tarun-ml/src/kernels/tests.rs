//! Every kernel against Candle's stock ops (values and autograd gradients) on awkward shapes, and
//! its gradients against central finite differences.

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::simd::Simd;
use super::*;

fn random(shape: &[usize], seed: u64) -> Var {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

/// [`random`] as a flat vector, for the kernels' slice-level functions.
fn random_vec(shape: &[usize], seed: u64) -> Vec<f32> {
    let v = random(shape, seed).as_tensor().flatten_all().unwrap();
    v.to_vec1::<f32>().unwrap()
}

/// `a` equals `b` within `1e-5` of `b`'s largest magnitude (at least 1), element by element.
fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * scale, "{what}[{i}]: {x} vs {y}");
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// `sum(f(inputs) * r)` for a fixed random `r`: a scalar loss with a non-uniform gradient.
fn weighted(y: &Tensor, seed: u64) -> Tensor {
    let r = random(y.dims(), seed);
    (y * r.as_tensor()).unwrap().sum_all().unwrap()
}

/// Our op and the reference agree in value and in the gradients of every input.
fn check_against(
    inputs: &[&Var],
    ours: impl Fn() -> Tensor,
    reference: impl Fn() -> Tensor,
    tol: f32,
    what: &str,
) {
    let (a, b) = (ours(), reference());
    let d = max_diff(&a, &b);
    assert!(d < tol, "{what}: values differ by {d}");
    let ga = weighted(&a, 99).backward().unwrap();
    let gb = weighted(&b, 99).backward().unwrap();
    for (i, v) in inputs.iter().enumerate() {
        let (ga, gb) = (ga.get(v).unwrap(), gb.get(v).unwrap());
        // A kernel gradient sums thousands of products: both sides' rounding grows with its
        // magnitude (Candle's running f32 sum more than our lanes), so the bound scales with it.
        let scale = max_diff(gb, &gb.zeros_like().unwrap()).max(1.0);
        let d = max_diff(ga, gb);
        assert!(
            d < tol * 10.0 * scale,
            "{what}: gradient of input {i} differs by {d} (largest entry {scale})"
        );
    }
}

/// Central finite differences of `weighted(f)` at a few elements of each input, against the
/// analytic gradient.
fn check_finite_differences(inputs: &[&Var], f: impl Fn() -> Tensor, eps: f32, what: &str) {
    let grads = weighted(&f(), 7).backward().unwrap();
    for (i, v) in inputs.iter().enumerate() {
        let g: Vec<f32> = grads
            .get(v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
        let n = base.len();
        for &j in &[0, n / 3, n / 2, n - 1] {
            let at = |delta: f32| {
                let mut p = base.clone();
                p[j] += delta;
                v.set(&Tensor::from_vec(p, v.dims(), &Device::Cpu).unwrap())
                    .unwrap();
                let l: f32 = weighted(&f(), 7).to_scalar().unwrap();
                l as f64
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            at(0.0);
            let an = g[j] as f64;
            let err = (fd - an).abs() / (1.0 + an.abs());
            assert!(
                err < 2e-2,
                "{what}: input {i}[{j}] fd {fd} vs analytic {an}"
            );
        }
    }
}

/// (batch, channels in, height, width, channels out, kernel, stride, padding)
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);

const CONV_CASES: &[ConvCase] = &[
    (2, 3, 7, 7, 4, 3, 1, 1),     // the 3-channel stem, odd size
    (1, 3, 8, 8, 5, 3, 1, 1),     // batch 1
    (3, 4, 9, 9, 6, 3, 2, 1),     // stride 2, odd
    (2, 5, 8, 8, 7, 1, 2, 0),     // 1x1 stride 2 (ResNet's downsample)
    (2, 6, 5, 5, 3, 1, 1, 0),     // pointwise
    (5, 2, 4, 4, 3, 3, 1, 0),     // no padding
    (9, 4, 3, 3, 5, 3, 1, 1),     // small maps: several images per product, ragged last group
    (6, 8, 2, 2, 16, 3, 2, 1),    // 2x2 maps at stride 2
    (4, 2, 5, 5, 3, 5, 1, 2),     // 5x5 kernel
    (2, 3, 6, 9, 4, 3, 1, 1),     // non-square maps, same padding
    (3, 2, 1, 1, 4, 3, 1, 1),     // 1x1 maps under a padded 3x3 kernel
    (2, 2, 2, 3, 3, 5, 1, 2),     // padding as large as the map
    (7, 6, 2, 2, 5, 1, 1, 0),     // pointwise on 2x2 maps: grouped images, ragged last group
    (5, 3, 4, 4, 8, 3, 1, 1),     // 4x4 maps (ResNet-18's last stage): grouped to 64 columns
    (1, 64, 17, 16, 64, 3, 1, 1), // Winograd forward and input gradient (64 channels), odd size
    (1, 256, 3, 2, 256, 3, 1, 1), // Winograd kernel gradient too (256 channels), odd and non-square
];

#[test]
fn conv2d_matches_candle_values_and_gradients() {
    for (i, &(b, c, h, w, co, k, s, p)) in CONV_CASES.iter().enumerate() {
        let x = random(&[b, c, h, w], i as u64);
        let wt = random(&[co, c, k, k], 100 + i as u64);
        check_against(
            &[&x, &wt],
            || conv2d(&x, &wt, s, p).unwrap(),
            || x.conv2d(&wt, p, s, 1, 1).unwrap(),
            1e-4,
            &format!("conv case {i}"),
        );
    }
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    // Candle's own backward fails on the non-square stride-2 case (its transposed convolution
    // gets the width wrong), so that one is checked here only.
    let non_square = (3, 3, 6, 5, 4, 3, 2, 1);
    // On two threads (CI), all three passes of the direct kernel (AVX-512 or AVX2, as
    // `TARUN_CPU_SIMD` picks).
    let direct = (2, 10, 5, 5, 3, 3, 1, 1);
    for &(b, c, h, w, co, k, s, p) in &[
        CONV_CASES[2],
        CONV_CASES[4],
        CONV_CASES[6],
        non_square,
        direct,
    ] {
        let x = random(&[b, c, h, w], 1);
        let wt = random(&[co, c, k, k], 2);
        check_finite_differences(&[&x, &wt], || conv2d(&x, &wt, s, p).unwrap(), 1e-2, "conv");
    }
}

/// The inference-only fused convolution against the convolution followed by Candle's ops for
/// the same affine and activation, on every convolution case (im2col, grouped and Winograd).
#[test]
fn conv2d_affine_is_conv_then_scale_shift_and_activation() {
    for (i, &(b, c, h, w, co, k, s, p)) in CONV_CASES.iter().enumerate() {
        let x = random(&[b, c, h, w], i as u64);
        let wt = random(&[co, c, k, k], 100 + i as u64);
        let y = conv2d(&x, &wt, s, p).unwrap();
        check_affine(&y, i as u64, &format!("conv case {i}"), |affine, act| {
            conv2d_affine(&x, &wt, s, p, affine, act).unwrap()
        });
    }
    for (i, &(b, c, h, w, k, s, p)) in DW_CASES.iter().enumerate() {
        let x = random(&[b, c, h, w], i as u64);
        let wt = random(&[c, 1, k, k], 100 + i as u64);
        let y = depthwise_conv2d(&x, &wt, s, p).unwrap();
        check_affine(
            &y,
            i as u64,
            &format!("depthwise case {i}"),
            |affine, act| depthwise_conv2d_affine(&x, &wt, s, p, affine, act).unwrap(),
        );
    }
}

/// The fused residual against the fused convolution, then the residual added and the activation
/// applied with Candle's ops: the same additions in the same order, so equal to the bit.
#[test]
fn conv2d_affine_residual_adds_before_the_activation() {
    for (i, &(b, c, h, w, co, k, s, p)) in CONV_CASES.iter().enumerate() {
        let x = random(&[b, c, h, w], i as u64);
        let wt = random(&[co, c, k, k], 100 + i as u64);
        let y = conv2d(&x, &wt, s, p).unwrap();
        let r = random(y.dims(), 400 + i as u64);
        let scale = random(&[co], 200 + i as u64);
        let shift = random(&[co], 300 + i as u64);
        let affine = (scale.as_tensor(), shift.as_tensor());
        let plain = conv2d_affine(&x, &wt, s, p, affine, Activation::None).unwrap();
        let sum = (&plain + r.as_tensor()).unwrap();
        for act in [Activation::None, Activation::Relu, Activation::Relu6] {
            let reference = match act {
                Activation::None => sum.clone(),
                Activation::Relu => sum.relu().unwrap(),
                Activation::Relu6 => sum.clamp(0f32, 6f32).unwrap(),
            };
            let fused = conv2d_affine_residual(&x, &wt, (s, p), affine, &r, act).unwrap();
            assert_eq!(max_diff(&fused, &reference), 0.0, "conv case {i} {act:?}");
        }
    }
    let x = random(&[2, 3, 5, 5], 1);
    let wt = random(&[4, 3, 3, 3], 2);
    let (scale, shift) = (random(&[4], 3), random(&[4], 4));
    let wrong = random(&[2, 4, 5, 4], 5);
    let affine = (scale.as_tensor(), shift.as_tensor());
    let err = conv2d_affine_residual(&x, &wt, (1, 1), affine, &wrong, Activation::Relu);
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("residual [2, 4, 5, 4]")
    );
}

/// `fused(affine, act)` against `act(y * scale + shift)` with Candle's ops, for a random
/// per-channel scale and shift and every activation.
fn check_affine(
    y: &Tensor,
    seed: u64,
    what: &str,
    fused: impl Fn((&Tensor, &Tensor), Activation) -> Tensor,
) {
    let co = y.dim(1).unwrap();
    // A large scale pushes some outputs past 6, so ReLU6's upper clamp is exercised.
    let scale = (random(&[co], 200 + seed).as_tensor() * 8.0).unwrap();
    let shift = random(&[co], 300 + seed).as_tensor().clone();
    let affine = y
        .broadcast_mul(&scale.reshape((1, co, 1, 1)).unwrap())
        .unwrap()
        .broadcast_add(&shift.reshape((1, co, 1, 1)).unwrap())
        .unwrap();
    for act in [Activation::None, Activation::Relu, Activation::Relu6] {
        let reference = match act {
            Activation::None => affine.clone(),
            Activation::Relu => affine.relu().unwrap(),
            Activation::Relu6 => affine.clamp(0f32, 6f32).unwrap(),
        };
        let d = max_diff(&fused((&scale, &shift), act), &reference);
        assert!(d < 1e-3, "{what} {act:?}: differs by {d}");
    }
}

/// Winograd F(2x2, 3x3) against im2col + GEMM, pass by pass, on the shapes its tiling finds
/// awkward: odd and non-square maps (a last tile cut by the edge), maps smaller than a tile,
/// batch 1, batches that split into ragged groups, unequal channel counts.
#[test]
fn winograd_matches_im2col_in_every_pass() {
    // (batch, channels in, height, width, channels out); channel counts below the thresholds,
    // so that `conv`'s passes run im2col.
    let cases = [
        (2, 3, 7, 7, 4),
        (1, 5, 8, 8, 3),
        (3, 4, 5, 6, 6),
        (2, 2, 1, 1, 3),
        (2, 3, 1, 4, 2),
        (2, 3, 2, 2, 5),
        (5, 6, 3, 3, 4),
        (4, 2, 16, 15, 3),
    ];
    for (n, &(b, c, h, w, co)) in cases.iter().enumerate() {
        let g = conv::Geom::new(&[b, c, h, w], &[co, c, 3, 3], 1, 1).unwrap();
        for pass in [conv::choose::Pass::Forward, conv::choose::Pass::KernelGrad] {
            assert!(
                !conv::choose::by_winograd(&g, pass),
                "case {n} would not test im2col"
            );
        }
        let x = random_vec(&[b, c, h, w], n as u64);
        let wt = random_vec(&[co, c, 3, 3], 50 + n as u64);
        let dy = random_vec(&[b, co, h, w], 90 + n as u64);
        let what = format!("case {n} {:?}", (b, c, h, w, co));
        close(
            &conv::winograd::forward(&x, &wt, &g, None),
            &conv::im2col::forward(&x, &wt, &g, None),
            &format!("{what} forward"),
        );
        close(
            &conv::winograd::input_grad(&dy, &wt, &g),
            &conv::im2col::input_grad(&dy, &wt, &g),
            &format!("{what} input gradient"),
        );
        close(
            &conv::winograd::kernel_grad(&x, &dy, &g),
            &conv::im2col::kernel_grad(&x, &dy, &g),
            &format!("{what} kernel gradient"),
        );
    }
}

/// (batch, channels, height, width, kernel, stride, padding)
const DW_CASES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (2, 3, 7, 7, 3, 1, 1),
    (1, 4, 8, 8, 3, 2, 1),
    (2, 2, 1, 1, 3, 2, 1),
    (2, 3, 2, 2, 3, 1, 1),
    (3, 2, 6, 6, 3, 1, 0),
    (2, 3, 7, 7, 5, 2, 2),
    // Planes wider than a vector register (the wide sweeps), odd and non-square, stride 2
    // without padding and stride 3.
    (2, 3, 16, 16, 3, 1, 1),
    (2, 3, 15, 17, 3, 2, 1),
    (1, 2, 9, 9, 3, 2, 0),
    (1, 2, 11, 8, 3, 3, 1),
    // Batches that split into several blocks of stacked images, with a shorter last block.
    (5, 2, 40, 40, 3, 1, 1),
    (7, 2, 41, 39, 3, 2, 1),
    // Outputs of at most 4 positions (the in-image taps path): 4x4 to 2x2, 2x2 to 1x1, 1x2.
    (3, 5, 4, 4, 3, 2, 1),
    (2, 4, 2, 2, 3, 2, 1),
    (2, 3, 1, 2, 3, 1, 1),
];

#[test]
fn depthwise_matches_candle_grouped_conv() {
    for (i, &(b, c, h, w, k, s, p)) in DW_CASES.iter().enumerate() {
        let x = random(&[b, c, h, w], i as u64);
        let wt = random(&[c, 1, k, k], 50 + i as u64);
        check_against(
            &[&x, &wt],
            || depthwise_conv2d(&x, &wt, s, p).unwrap(),
            || x.conv2d(&wt, p, s, 1, c).unwrap(),
            1e-5,
            &format!("depthwise case {i}"),
        );
    }
}

#[test]
fn depthwise_gradients_match_finite_differences() {
    let non_square = (3, 5, 9, 6, 3, 2, 1);
    for &(b, c, h, w, k, s, p) in &[DW_CASES[0], DW_CASES[1], non_square] {
        let x = random(&[b, c, h, w], 3);
        let wt = random(&[c, 1, k, k], 4);
        let f = || depthwise_conv2d(&x, &wt, s, p).unwrap();
        check_finite_differences(&[&x, &wt], f, 1e-2, "depthwise");
    }
}

/// Batch norm as the stock Candle ops the networks used before (see `models::layers`).
fn reference_bn(x: &Tensor, gamma: &Tensor, beta: &Tensor, act: Activation, train: bool) -> Tensor {
    let (b, c, h, w) = x.dims4().unwrap();
    let x3 = x.reshape((b, c, h * w)).unwrap();
    let (mean, var) = if train {
        let n = (b * h * w) as f64;
        let mean = (x3.sum_keepdim(2).unwrap().sum_keepdim(0).unwrap() / n).unwrap();
        let centered = x3.broadcast_sub(&mean).unwrap();
        let var = (centered
            .sqr()
            .unwrap()
            .sum_keepdim(2)
            .unwrap()
            .sum_keepdim(0)
            .unwrap()
            / n)
            .unwrap();
        (mean, var)
    } else {
        (
            Tensor::new(&[0.1f32, -0.2, 0.3], &Device::Cpu)
                .unwrap()
                .reshape((1, c, 1))
                .unwrap(),
            Tensor::new(&[0.5f32, 2.0, 1.5], &Device::Cpu)
                .unwrap()
                .reshape((1, c, 1))
                .unwrap(),
        )
    };
    let y = x3
        .broadcast_sub(&mean)
        .unwrap()
        .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(&gamma.reshape((1, c, 1)).unwrap())
        .unwrap()
        .broadcast_add(&beta.reshape((1, c, 1)).unwrap())
        .unwrap()
        .reshape((b, c, h, w))
        .unwrap();
    match act {
        Activation::None => y,
        Activation::Relu => y.relu().unwrap(),
        Activation::Relu6 => y.relu().unwrap().minimum(6f32).unwrap(),
    }
}

fn ours_bn(x: &Tensor, gamma: &Tensor, beta: &Tensor, act: Activation, train: bool) -> Tensor {
    let stats = if train {
        batch_norm_stats(x).unwrap()
    } else {
        Tensor::new(&[[0.1f32, -0.2, 0.3], [0.5, 2.0, 1.5]], &Device::Cpu).unwrap()
    };
    batch_norm(x, gamma, beta, &stats, 1e-5, act, train).unwrap()
}

#[test]
fn batch_norm_matches_candle_ops_in_both_modes() {
    for (i, act) in [Activation::None, Activation::Relu, Activation::Relu6]
        .into_iter()
        .enumerate()
    {
        for train in [true, false] {
            // 7x9 planes: the statistics' 16-wide lanes plus a remainder; 1x1, 2x2 and 2x3
            // planes: the image-by-image path for tiny planes.
            for shape in [
                [4, 3, 5, 5],
                [1, 3, 2, 3],
                [2, 3, 1, 1],
                [6, 3, 2, 2],
                [2, 3, 7, 9],
            ] {
                let x = random(&shape, i as u64);
                // A large gamma pushes some outputs past 6, so ReLU6's upper clamp is exercised.
                let gamma =
                    Var::from_tensor(&(random(&[3], 10).as_tensor() * 8.0).unwrap()).unwrap();
                let beta = random(&[3], 11);
                check_against(
                    &[&x, &gamma, &beta],
                    || ours_bn(&x, &gamma, &beta, act, train),
                    || reference_bn(&x, &gamma, &beta, act, train),
                    1e-4,
                    &format!("batch norm {act:?} train {train} {shape:?}"),
                );
            }
        }
    }
}

#[test]
fn batch_norm_gradients_match_finite_differences() {
    for train in [true, false] {
        let x = random(&[3, 3, 4, 4], 5);
        let gamma = random(&[3], 6);
        let beta = random(&[3], 7);
        let f = || ours_bn(&x, &gamma, &beta, Activation::None, train);
        check_finite_differences(&[&x, &gamma, &beta], f, 1e-2, "batch norm");
    }
}

#[test]
fn batch_norm_stats_are_mean_and_biased_variance() {
    // Channel 0 holds {1, 2, 3, 6} and channel 1 {0, 0, 4, 4} over two images: means 3 and 2,
    // biased variances 3.5 and 4.
    let v = [1f32, 2., 0., 0., 3., 6., 4., 4.];
    let x = Tensor::from_slice(&v, (2, 2, 1, 2), &Device::Cpu).unwrap();
    let s: Vec<Vec<f32>> = batch_norm_stats(&x).unwrap().to_vec2().unwrap();
    assert_eq!(s, vec![vec![3.0, 2.0], vec![3.5, 4.0]]);
}

#[test]
fn tiny_plane_statistics_sum_each_plane_then_each_image() {
    // Planes of 1, 4 and 6 elements take the image-by-image path; its sums must have the
    // per-plane path's order: each plane in order from -0.0, then the planes image by image.
    for shape in [[9usize, 70, 1, 1], [5, 13, 2, 2], [3, 5, 2, 3]] {
        let [b, c, h, w] = shape;
        let hw = h * w;
        let x = random_vec(&shape, 31);
        let t = Tensor::from_slice(&x, &shape, &Device::Cpu).unwrap();
        let s: Vec<Vec<f32>> = batch_norm_stats(&t).unwrap().to_vec2().unwrap();
        let n = (b * hw) as f64;
        for ch in 0..c {
            let plane = |i: usize| &x[(i * c + ch) * hw..(i * c + ch + 1) * hw];
            let sum: f64 = (0..b)
                .map(|i| plane(i).iter().map(|&v| v as f64).sum::<f64>())
                .sum();
            let mean = sum / n;
            let sq: f64 = (0..b)
                .map(|i| {
                    plane(i)
                        .iter()
                        .map(|&v| (v as f64 - mean).powi(2))
                        .sum::<f64>()
                })
                .sum();
            assert_eq!(
                s[0][ch].to_bits(),
                (mean as f32).to_bits(),
                "{shape:?} mean {ch}"
            );
            assert_eq!(
                s[1][ch].to_bits(),
                ((sq / n) as f32).to_bits(),
                "{shape:?} var {ch}"
            );
        }
    }
}

#[test]
fn add_relu_matches_candle_and_has_pytorchs_gradient_at_zero() {
    let a = random(&[3, 4, 5, 5], 20);
    let b = random(&[3, 4, 5, 5], 21);
    check_against(
        &[&a, &b],
        || add_relu(&a, &b).unwrap(),
        || (a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap(),
        1e-6,
        "add_relu",
    );
    // relu(1 + -1) = 0: PyTorch passes no gradient there (Candle's own relu would).
    let a = Var::new(&[1f32, 2.0, -3.0], &Device::Cpu).unwrap();
    let b = Var::new(&[-1f32, 1.0, 1.0], &Device::Cpu).unwrap();
    let g = add_relu(&a, &b)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let ga: Vec<f32> = g.get(&a).unwrap().to_vec1().unwrap();
    let gb: Vec<f32> = g.get(&b).unwrap().to_vec1().unwrap();
    assert_eq!((ga, gb), (vec![0.0, 1.0, 0.0], vec![0.0, 1.0, 0.0]));
}

#[test]
fn channel_bias_matches_candle_broadcast_add() {
    // 7x9 planes: the per-plane sums' 8-wide lanes plus a remainder; 1x1 planes; batch 1.
    for (i, shape) in [[3, 4, 7, 9], [5, 2, 1, 1], [1, 3, 4, 4]]
        .into_iter()
        .enumerate()
    {
        let x = random(&shape, 30 + i as u64);
        let b = random(&[shape[1]], 40 + i as u64);
        check_against(
            &[&x, &b],
            || add_channel_bias(&x, &b).unwrap(),
            || {
                x.as_tensor()
                    .broadcast_add(&b.as_tensor().reshape((1, (), 1, 1)).unwrap())
                    .unwrap()
            },
            1e-6,
            &format!("bias {shape:?}"),
        );
    }
}

/// The direct "same" convolution against im2col + GEMM, with and without an epilogue (affine,
/// residual, activation), on the shapes its tiling finds awkward: maps whose positions are not
/// a multiple of 16 (a vector crosses rows, the last one is partial), maps of one vector per
/// image (several images per tile), output channels not a multiple of the 8 per tile, batches
/// that leave a ragged last group, 1x1 to 7x7 kernels, non-square maps and the 3-channel stem.
/// Run in every instruction set this CPU has (AVX-512 and AVX2 + FMA, whatever
/// `TARUN_CPU_SIMD` says), each against the reference and AVX2 against AVX-512 too; on a CPU
/// with neither the kernel does not run and neither does this test.
#[test]
fn direct_convolution_matches_im2col() {
    let sets: Vec<Simd> = Simd::ALL.into_iter().filter(|s| s.supported()).collect();
    if sets.is_empty() {
        eprintln!("no AVX-512 or AVX2 here: the direct convolution is not used, not tested");
        return;
    }
    for simd in sets {
        direct_matches_im2col_in(simd);
    }
}

fn direct_matches_im2col_in(simd: Simd) {
    // (batch, channels in, height, width, channels out, kernel, stride, padding)
    let cases = [
        (2, 3, 32, 32, 16, 3, 1, 1),
        (3, 16, 8, 8, 12, 3, 1, 1),
        (5, 7, 4, 4, 9, 3, 1, 1),
        (2, 5, 7, 9, 8, 3, 1, 1),
        (4, 4, 5, 5, 3, 5, 1, 2),
        (3, 6, 6, 6, 17, 7, 1, 3),
        (2, 9, 4, 6, 5, 1, 1, 0),
        (7, 2, 16, 1, 4, 3, 1, 1),
        (3, 20, 3, 17, 24, 3, 1, 1),
        (3, 6, 16, 16, 10, 3, 2, 1), // stride 2 (ResNet's downsampling)
        (2, 5, 9, 11, 7, 3, 2, 1),   // stride 2 on odd sizes: phases past the input
        (3, 8, 8, 8, 9, 1, 2, 0),    // 1x1 stride 2 (not run so, but the same code)
        (2, 4, 13, 10, 6, 5, 2, 2),  // 5x5 stride 2
        (2, 64, 5, 5, 7, 3, 1, 1),   // four vectors of input channels (the gradient's blocks)
        (2, 40, 6, 4, 5, 3, 2, 1),   // three vectors of input channels, the last part empty
        (2, 32, 5, 32, 6, 3, 1, 1),  // the gradient's input copy by 16 x 16 blocks
    ];
    for (n, &(b, c, h, w, co, k, s, p)) in cases.iter().enumerate() {
        let g = conv::Geom::new(&[b, c, h, w], &[co, c, k, k], s, p).unwrap();
        let (ho, wo) = (g.ho, g.wo);
        assert!(
            conv::direct::fits(&g) || k == 1 || b < threads() || ho * wo < 16,
            "case {n}"
        );
        let (x, wt) = (
            random_vec(&[b, c, h, w], n as u64),
            random_vec(&[co, c, k, k], 50 + n as u64),
        );
        let what = format!("{} case {n} {:?}", simd.name(), (b, c, h, w, co, k, s, p));
        let reference = conv::im2col::forward(&x, &wt, &g, None);
        let y = conv::direct::forward_in(simd, &x, &wt, &g, None);
        close(&y, &reference, &what);
        // AVX2 against AVX-512, where the CPU has both.
        let widest = Simd::ALL.into_iter().find(|s| s.supported()).unwrap();
        if widest != simd {
            let wide = conv::direct::forward_in(widest, &x, &wt, &g, None);
            close(&y, &wide, &format!("{what} against {}", widest.name()));
        }
        let dy = random_vec(&[b, co, ho, wo], 90 + n as u64);
        if let Some(dx) = conv::direct::input_grad_in(simd, &dy, &wt, &g) {
            let reference = conv::im2col::input_grad(&dy, &wt, &g);
            close(&dx, &reference, &format!("{what} input gradient"));
        } else {
            assert!(
                s > 1 || k == 1 || b < threads() || h * w < 16,
                "{what}: no direct input gradient"
            );
        }
        let (scale, shift) = (random(&[co], 60 + n as u64), random(&[co], 70 + n as u64));
        if let Some(dw) = conv::direct::kernel_grad_in(simd, &x, &dy, &g) {
            let reference = conv::im2col::kernel_grad(&x, &dy, &g);
            close(&dw, &reference, &format!("{what} kernel gradient"));
        } else {
            assert!(
                k == 1
                    || 2 * c <= c.div_ceil(simd.lanes()) * simd.lanes()
                    || b < threads()
                    || ho * wo < 16,
                "{what}: no direct kernel gradient"
            );
        }
        let r = random_vec(&[b, co, ho, wo], 80 + n as u64);
        let epi = conv::Epilogue::new(
            "test",
            co,
            (scale.as_tensor(), shift.as_tensor()),
            Activation::Relu,
        )
        .unwrap();
        for epi in [epi.with_residual(&r), epi] {
            close(
                &conv::direct::forward_in(simd, &x, &wt, &g, Some(&epi)),
                &conv::im2col::forward(&x, &wt, &g, Some(&epi)),
                &format!("{what} with an epilogue"),
            );
        }
    }
}
