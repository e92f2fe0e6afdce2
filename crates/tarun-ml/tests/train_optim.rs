//! The optimizers against PyTorch on a separable quadratic, five steps each.
//!
//! References from (torch 2.15.0):
//!
//! ```python
//! import torch
//! def run(make_opt):
//!     p = torch.tensor([0.5, -1.0, 2.0, -0.25, 0.0, 1.5], requires_grad=True)
//!     c = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0, 0.1])
//!     d = torch.tensor([0.1, -0.2, 0.3, 0.0, -0.5, 0.05])
//!     opt = make_opt([p])
//!     for _ in range(5):
//!         opt.zero_grad()
//!         (0.5 * c * p * p + d * p).sum().backward()
//!         opt.step()
//!     return [round(float(v), 7) for v in p.detach()]
//! print("adamw", run(lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.01)))
//! print("sgd", run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)))
//! ```

use candle_core::{Device, Tensor, Var};
use tarun_ml::models::Kernels;
use tarun_ml::train::{Optimizer, OptimizerKind, Schedule};

fn run(kind: OptimizerKind, momentum: f64) -> Vec<f32> {
    let dev = Device::Cpu;
    let p = Var::new(&[0.5f32, -1.0, 2.0, -0.25, 0.0, 1.5], &dev).unwrap();
    let c = Tensor::new(&[1.0f32, 2.0, 0.5, 3.0, 1.0, 0.1], &dev).unwrap();
    let d = Tensor::new(&[0.1f32, -0.2, 0.3, 0.0, -0.5, 0.05], &dev).unwrap();
    let mut opt = Optimizer::new(kind, vec![p.clone()], 0.01, momentum).unwrap();
    descend(&mut opt, &p, &c, &d, 0.1);
    p.as_tensor().to_vec1().unwrap()
}

/// Five steps on `sum(0.5 * c * p^2 + d * p)`.
fn descend(opt: &mut Optimizer, p: &Var, c: &Tensor, d: &Tensor, lr: f64) {
    for _ in 0..5 {
        let quad = ((p.as_tensor() * p.as_tensor()).unwrap() * c).unwrap();
        let loss = ((quad * 0.5).unwrap() + (p.as_tensor() * d).unwrap()).unwrap();
        opt.step(&loss.sum_all().unwrap().backward().unwrap(), lr)
            .unwrap();
    }
}

fn assert_close(got: &[f32], want: &[f32]) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 2e-7, "got {got:?}, PyTorch {want:?}");
    }
}

#[test]
fn adamw_matches_pytorch() {
    let want = [
        0.0180197, -0.5029621, 1.493186, 0.1275316, 0.4712674, 0.9965213,
    ];
    assert_close(&run(OptimizerKind::AdamW, 0.0), &want);
}

#[test]
fn sgd_with_momentum_matches_pytorch() {
    let want = [
        -0.1210625, 0.7415637, 0.465051, 0.194712, 0.5132748, 1.2246683,
    ];
    assert_close(&run(OptimizerKind::Sgd, 0.9), &want);
}

#[test]
fn cosine_schedule_is_per_epoch() {
    assert_eq!(Schedule::Cosine.lr(1e-3, 0, 30), 1e-3);
    assert!((Schedule::Cosine.lr(1.0, 15, 30) - 0.5).abs() < 1e-12);
    assert!((Schedule::Cosine.lr(1.0, 29, 30) - 0.0027390523).abs() < 1e-9);
    assert_eq!(Schedule::Constant.lr(0.1, 29, 30), 0.1);
}

/// Five AdamW steps on a 50,000-element quadratic (several of the fused op's parallel chunks),
/// with the optimizer built under `kernels`.
fn adamw_run(kernels: Kernels, wd: f64) -> Vec<f32> {
    let dev = Device::Cpu;
    let n = 50_000;
    let wave = |a: f32, b: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * a).sin() * b).collect() };
    let p = Var::from_vec(wave(0.37, 2.0), n, &dev).unwrap();
    let c = Tensor::from_vec(wave(0.11, 1.5), n, &dev)
        .unwrap()
        .abs()
        .unwrap();
    let d = Tensor::from_vec(wave(0.05, 0.3), n, &dev).unwrap();
    Kernels::force(Some(kernels));
    let mut opt = Optimizer::new(OptimizerKind::AdamW, vec![p.clone()], wd, 0.0).unwrap();
    Kernels::force(None);
    descend(&mut opt, &p, &c, &d, 0.05);
    p.as_tensor().to_vec1().unwrap()
}

/// The fused in-place AdamW (tarun's kernels) and the tensor-op version (Candle's) do the same
/// f32 operations in the same order: the parameters agree bit for bit.
#[test]
fn fused_adamw_is_the_tensor_version_bit_for_bit() {
    for wd in [0.0, 0.01] {
        let (fused, tensors) = (
            adamw_run(Kernels::Tarun, wd),
            adamw_run(Kernels::Candle, wd),
        );
        let differing = fused
            .iter()
            .zip(&tensors)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differing, 0,
            "weight decay {wd}: {differing} parameters differ"
        );
        assert_ne!(fused[..10], adamw_run(Kernels::Tarun, wd + 0.5)[..10]);
    }
}
