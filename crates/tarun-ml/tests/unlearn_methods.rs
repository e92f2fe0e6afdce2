//! The unlearning baselines of `tarun_ml::unlearn` (docs/study.md §5.1).
//!
//! First against PyTorch: a linear classifier takes each method's loss, gradient change and SGD
//! steps through the same functions the network loop uses, and the parameters must match
//! `ref/unlearn_reference.py`'s (constants pasted below). Then on a small network: each method's
//! loop against a run that must give the same weights, and the properties that define it.

use std::convert::Infallible;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tarun_ml::models::{Arch, Network};
use tarun_ml::train::{
    NoHooks, Objective, Optimization, Optimizer, OptimizerKind, Schedule, TrainConfig, TrainError,
    fit,
};
use tarun_ml::unlearn::{
    Batches, Method, SaliencyMask, UnlearnConfig, UnlearnData, add_l1_gradient, distill_kl,
    l1_gamma, l1_norm, unlearn,
};

// From ref/unlearn_reference.py (PyTorch, float64).
const L1_LOSSES: [f64; 2] = [1.920336001e+00, 2.490618921e+00];
const L1_W: [f64; 12] = [
    3.827627662e-01,
    -6.442382295e-02,
    9.808187461e-03,
    9.736629554e-01,
    -6.192239849e-01,
    3.892776058e-01,
    2.496982587e-01,
    -4.423922101e-01,
    1.006045308e-01,
    6.641264071e-01,
    -1.005647698e+00,
    2.077456941e-01,
];
const L1_B: [f64; 3] = [1.494489065e-01, -1.689072065e-01, -7.677720023e-02];
const SCRUB_LOSSES: [f64; 3] = [1.671885766e+00, -1.053909125e-03, 1.016000316e+00];
const SCRUB_W: [f64; 12] = [
    4.481656674e-01,
    -1.347457502e-01,
    -3.507661660e-02,
    9.983274011e-01,
    -6.358196492e-01,
    4.397200904e-01,
    2.820494118e-01,
    -4.413992315e-01,
    6.268904279e-02,
    6.947451718e-01,
    -9.967624292e-01,
    1.928614644e-01,
];
const SCRUB_B: [f64; 3] = [1.424109306e-01, -1.426361954e-01, -9.974668640e-02];
const SALUN_MASK: [f64; 15] = [
    1.000000000e+00,
    0.000000000e+00,
    0.000000000e+00,
    1.000000000e+00,
    0.000000000e+00,
    0.000000000e+00,
    0.000000000e+00,
    0.000000000e+00,
    1.000000000e+00,
    0.000000000e+00,
    1.000000000e+00,
    1.000000000e+00,
    1.000000000e+00,
    0.000000000e+00,
    1.000000000e+00,
];
const SALUN_W: [f64; 12] = [
    4.621627323e-01,
    -2.499637506e-01,
    0.000000000e+00,
    1.006792764e+00,
    -7.498912519e-01,
    4.999275013e-01,
    2.499637506e-01,
    -4.999275013e-01,
    8.942323319e-02,
    7.498912519e-01,
    -9.978029579e-01,
    1.955908955e-01,
];
const SALUN_B: [f64; 3] = [1.062944148e-01, -1.999710005e-01, -6.516069644e-02];

const W0: [f64; 12] = [
    0.5, -0.25, 0.0, 1.0, -0.75, 0.5, 0.25, -0.5, 0.125, 0.75, -1.0, 0.25,
];
const B0: [f64; 3] = [0.1, -0.2, 0.0];
const XF: [f64; 8] = [1.0, 0.5, -0.5, 2.0, 0.25, -1.0, 1.5, 0.5];
const YF: [u32; 2] = [2, 2];
const XR: [f64; 12] = [
    -1.0, 2.0, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5, 2.0, -0.5, -1.0, 1.0,
];
const YR: [u32; 3] = [0, 1, 0];

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn labels(v: &[u32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
}

/// The reference's linear classifier: `x W^T + b`.
struct Linear {
    w: Var,
    b: Var,
}

impl Linear {
    fn new() -> Self {
        Self {
            w: Var::from_tensor(&t(&W0, &[3, 4])).unwrap(),
            b: Var::from_tensor(&t(&B0, &[3])).unwrap(),
        }
    }
    fn vars(&self) -> Vec<Var> {
        vec![self.w.clone(), self.b.clone()]
    }
    fn logits(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.w.as_tensor().t().unwrap())
            .unwrap()
            .broadcast_add(self.b.as_tensor())
            .unwrap()
    }
    fn sgd(&self) -> Optimizer {
        Optimizer::new(OptimizerKind::Sgd, self.vars(), 5e-4, 0.9).unwrap()
    }
}

fn ce(logits: &Tensor, y: &[u32]) -> Tensor {
    candle_nn::loss::cross_entropy(logits, &labels(y)).unwrap()
}

fn close(name: &str, got: &Tensor, want: &[f64]) {
    let got: Vec<f64> = got.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() < 1e-8,
            "{name}[{i}]: {g} against PyTorch's {w}"
        );
    }
}

fn scalar(x: &Tensor) -> f64 {
    x.to_scalar::<f64>().unwrap()
}

#[test]
fn l1_sparse_steps_match_pytorch() {
    let m = Linear::new();
    let mut opt = m.sgd();
    let gamma = l1_gamma(0.05, 1, 4);
    let xr = t(&XR, &[3, 4]);
    let mut losses = vec![];
    for (x, y) in [
        (xr.clone(), &YR[..]),
        (xr.narrow(0, 0, 2).unwrap(), &YR[..2]),
    ] {
        let penalty = scalar(&l1_norm(&m.vars()).unwrap().unwrap()) * gamma;
        let loss = ce(&m.logits(&x), y);
        losses.push(scalar(&loss) + penalty);
        let mut grads: GradStore = loss.backward().unwrap();
        add_l1_gradient(&m.vars(), &mut grads, gamma).unwrap();
        opt.step(&grads, 0.1).unwrap();
    }
    close("loss", &t(&losses, &[2]), &L1_LOSSES);
    close("W", m.w.as_tensor(), &L1_W);
    close("b", m.b.as_tensor(), &L1_B);
}

#[test]
fn scrub_steps_match_pytorch() {
    let (temperature, alpha, gamma) = (4.0, 0.5, 0.99);
    let teacher = Linear::new();
    let m = Linear::new();
    let mut opt = m.sgd();
    let (xf, xr) = (t(&XF, &[2, 4]), t(&XR, &[3, 4]));
    let steps = [
        ("min", xr.clone(), &YR[..]),
        ("max", xf, &YF[..]),
        ("min", xr.narrow(0, 1, 2).unwrap(), &YR[1..]),
    ];
    let mut losses = vec![];
    for (kind, x, y) in steps {
        let s = m.logits(&x);
        let kl = distill_kl(&s, &teacher.logits(&x).detach(), temperature).unwrap();
        let loss = if kind == "max" {
            kl.neg().unwrap()
        } else {
            ((ce(&s, y) * gamma).unwrap() + (kl * alpha).unwrap()).unwrap()
        };
        losses.push(scalar(&loss));
        opt.step(&loss.backward().unwrap(), 0.1).unwrap();
    }
    close("loss", &t(&losses, &[3]), &SCRUB_LOSSES);
    close("W", m.w.as_tensor(), &SCRUB_W);
    close("b", m.b.as_tensor(), &SCRUB_B);
}

#[test]
fn salun_mask_and_masked_steps_match_pytorch() {
    let m = Linear::new();
    let xf = t(&XF, &[2, 4]);
    let mut sums = vec![
        m.w.as_tensor().zeros_like().unwrap(),
        m.b.as_tensor().zeros_like().unwrap(),
    ];
    for i in 0..2 {
        let loss = ce(&m.logits(&xf.narrow(0, i, 1).unwrap()), &YF[i..=i]);
        let grads = loss.backward().unwrap();
        for (s, v) in sums.iter_mut().zip(m.vars()) {
            *s = (&*s + grads.get(v.as_tensor()).unwrap()).unwrap();
        }
    }
    let mask = SaliencyMask::from_gradients(&m.vars(), &sums, 0.5).unwrap();
    assert_eq!((mask.kept(), mask.total()), (7, 15));
    let flat = Tensor::cat(
        &mask
            .masks()
            .map(|t| t.flatten_all().unwrap())
            .collect::<Vec<_>>(),
        0,
    )
    .unwrap();
    close("mask", &flat, &SALUN_MASK);
    let mut opt = m.sgd();
    let x = Tensor::cat(&[xf, t(&XR, &[3, 4])], 0).unwrap();
    for _ in 0..2 {
        let mut grads = ce(&m.logits(&x), &[0, 1, 0, 1, 0]).backward().unwrap();
        mask.apply(&mut grads).unwrap();
        opt.step(&grads, 0.1).unwrap();
    }
    close("W", m.w.as_tensor(), &SALUN_W);
    close("b", m.b.as_tensor(), &SALUN_B);
}

#[test]
fn distillation_kl_is_zero_for_equal_logits_and_scales_with_t_squared() {
    let s = t(&[1.0, -2.0, 0.5, 3.0, 0.0, -1.0], &[2, 3]);
    assert!(scalar(&distill_kl(&s, &s, 4.0).unwrap()).abs() < 1e-15);
    // T = 1 is the plain mean KL(softmax(t) || softmax(s)); computed by hand for one row.
    let (a, b) = (t(&[0.0, 0.0], &[1, 2]), t(&[0.0, 2f64.ln()], &[1, 2]));
    // teacher p = (1/3, 2/3), student q = (1/2, 1/2): KL = 1/3 ln(2/3) + 2/3 ln(4/3).
    let want = (2.0f64 / 3.0).ln() / 3.0 + 2.0 * (4.0f64 / 3.0).ln() / 3.0;
    assert!((scalar(&distill_kl(&a, &b, 1.0).unwrap()) - want).abs() < 1e-12);
}

// ---- the loop on a small network -------------------------------------------------------------

type Data = Vec<(Tensor, Tensor)>;

/// `n` batches of 4 random images with labels from `classes`.
fn batches(seed: u64, n: usize, classes: &[u32]) -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x: Vec<f32> = (0..4 * 3 * 32 * 32)
                .map(|_| rng.random_range(-2.0..2.0))
                .collect();
            let y: Vec<u32> = (0..4)
                .map(|_| classes[rng.random_range(0..classes.len())])
                .collect();
            (
                Tensor::from_vec(x, (4, 3, 32, 32), &Device::Cpu).unwrap(),
                Tensor::from_vec(y, 4, &Device::Cpu).unwrap(),
            )
        })
        .collect()
}

struct Sets {
    forget: Data,
    retain: Data,
    mixed: Data,
}

fn pass(d: &Data) -> Batches<'_> {
    Box::new(d.iter().cloned().map(Ok))
}

impl UnlearnData for Sets {
    fn forget(&mut self, _: u64) -> Batches<'_> {
        pass(&self.forget)
    }
    fn retain(&mut self, _: u64) -> Batches<'_> {
        pass(&self.retain)
    }
    fn mixed(&mut self, _: u64) -> Batches<'_> {
        pass(&self.mixed)
    }
}

fn sets() -> Sets {
    let retain = batches(2, 3, &[0, 1, 2, 3, 4, 5, 6, 7, 9]);
    let forget = batches(1, 2, &[8]);
    let mixed = forget.iter().chain(&retain).cloned().collect();
    Sets {
        forget,
        retain,
        mixed,
    }
}

fn net() -> Network {
    Network::new(Arch::Resnet18, 0.125, 10, 3, &Device::Cpu).unwrap()
}

fn config(method: Method) -> UnlearnConfig {
    UnlearnConfig {
        method,
        optim: Optimization {
            optimizer: OptimizerKind::Sgd,
            lr: 0.01,
            weight_decay: 5e-4,
            momentum: 0.9,
            epochs: 2,
            max_steps: None,
            schedule: Schedule::Constant,
        },
        forget_classes: vec![8],
        seed: 5,
    }
}

fn run(method: Method) -> Network {
    let mut n = net();
    unlearn(&mut n, &config(method), &mut sets(), &mut NoHooks).unwrap();
    n
}

fn weights(net: &Network) -> Vec<Vec<f32>> {
    net.state_dict()
        .unwrap()
        .values()
        .map(|t| {
            t.to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        })
        .collect()
}

fn l1(net: &Network) -> f32 {
    l1_norm(&net.trainable_vars())
        .unwrap()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn fine_tune_is_training_on_the_retained_data() {
    let cfg = config(Method::FineTune);
    let mut reference = net();
    let train = TrainConfig {
        optim: cfg.optim.clone(),
        objective: Objective::Ce,
        seed: cfg.seed,
    };
    let retain = sets().retain;
    let source = |_| {
        retain
            .iter()
            .cloned()
            .map(Ok::<_, Infallible>)
            .collect::<Vec<_>>()
            .into_iter()
    };
    fit(&mut reference, &train, source, &mut NoHooks).unwrap();
    assert_eq!(weights(&run(Method::FineTune)), weights(&reference));
}

#[test]
fn l1_sparse_with_zero_weight_is_fine_tuning_and_otherwise_shrinks_the_weights() {
    let ft = run(Method::FineTune);
    assert_eq!(weights(&run(Method::L1Sparse { gamma: 0.0 })), weights(&ft));
    let sparse = run(Method::L1Sparse { gamma: 1e-2 });
    assert!(l1(&sparse) < l1(&ft), "{} against {}", l1(&sparse), l1(&ft));
}

#[test]
fn scrub_without_max_steps_or_distillation_is_fine_tuning() {
    let plain = Method::Scrub {
        temperature: 4.0,
        alpha: 0.0,
        gamma: 1.0,
        max_epochs: 0,
    };
    assert_eq!(weights(&run(plain)), weights(&run(Method::FineTune)));
    // With max-steps the forget data moves the weights too.
    let full = Method::Scrub {
        temperature: 4.0,
        alpha: 0.001,
        gamma: 0.99,
        max_epochs: 1,
    };
    let mut n = net();
    let s = unlearn(&mut n, &config(full), &mut sets(), &mut NoHooks).unwrap();
    // Epoch 0: 2 forget and 3 retained steps; epoch 1: 3 retained.
    assert_eq!(s.epochs.iter().map(|e| e.steps).collect::<Vec<_>>(), [5, 3]);
    assert_ne!(weights(&n), weights(&run(plain)));
    // A step cap counts max- and min-steps alike.
    let mut capped = config(full);
    capped.optim.max_steps = Some(4);
    let s = unlearn(&mut net(), &capped, &mut sets(), &mut NoHooks).unwrap();
    assert_eq!((s.steps, s.epochs.len()), (4, 1));
}

#[test]
fn salun_updates_only_the_salient_half() {
    let mut cfg = config(Method::SalUn { sparsity: 0.5 });
    cfg.optim.weight_decay = 0.0;
    let before = net();
    let mut after = net();
    unlearn(&mut after, &cfg, &mut sets(), &mut NoHooks).unwrap();
    let names: Vec<String> = before
        .named_trainable_vars()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let (b, a) = (before.state_dict().unwrap(), after.state_dict().unwrap());
    let (mut changed, mut total) = (0usize, 0usize);
    for k in &names {
        let x: Vec<f32> = b[k].flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = a[k].flatten_all().unwrap().to_vec1().unwrap();
        changed += x.iter().zip(&y).filter(|(p, q)| p != q).count();
        total += x.len();
    }
    // Without weight decay a frozen weight cannot move; a salient one almost always does.
    assert!(changed <= total / 2, "{changed} of {total} changed");
    assert!(
        changed > total / 2 - total / 50,
        "{changed} of {total} changed"
    );
}

#[test]
fn invalid_settings_are_refused() {
    for method in [
        Method::SalUn { sparsity: 1.5 },
        Method::L1Sparse { gamma: -1.0 },
        Method::Scrub {
            temperature: 0.0,
            alpha: 1.0,
            gamma: 1.0,
            max_epochs: 1,
        },
    ] {
        let err = unlearn(&mut net(), &config(method), &mut sets(), &mut NoHooks).unwrap_err();
        assert!(matches!(err, TrainError::InvalidConfig(_)), "{err}");
    }
}
