//! Numerical parity with PyTorch/torchvision: logits in eval and train mode, the running
//! statistics after one train-mode pass, and one AdamW step, for each architecture at a small width.
//!
//! Weights and inputs come from a closed formula evaluated in f64 by both sides (see `fill` and
//! `inputs`), so no data file or shared RNG is needed. The references were produced once by this
//! script (torch 2.15.0, torchvision 0.29.2, CPU):
//!
//! ```python
//! # Reference values for crates/tarun-ml/tests/models_parity.rs (torch 2.x, torchvision 0.2x, CPU).
//! import math, torch, torch.nn as nn, torchvision
//! from torchvision.models.resnet import BasicBlock
//! from torchvision.models.vgg import VGG, make_layers
//! torch.manual_seed(0)  # unused by the formulas; only fixes dropout, which is disabled here
//! torch.set_printoptions(precision=8)
//!
//! def resnet(w, nc):  # torchvision ResNet-18 layout with the CIFAR stem and scaled widths
//!     class R(nn.Module):
//!         def __init__(s):
//!             super().__init__()
//!             c = [max(1, round(x * w)) for x in (64, 128, 256, 512)]
//!             s.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
//!             s.bn1 = nn.BatchNorm2d(c[0]); s.relu = nn.ReLU(inplace=True)
//!             inp = c[0]
//!             for li, (ch, st) in enumerate(zip(c, (1, 2, 2, 2))):
//!                 ds = None
//!                 if st != 1 or inp != ch:
//!                     ds = nn.Sequential(nn.Conv2d(inp, ch, 1, st, bias=False), nn.BatchNorm2d(ch))
//!                 setattr(s, f"layer{li+1}", nn.Sequential(BasicBlock(inp, ch, st, ds), BasicBlock(ch, ch)))
//!                 inp = ch
//!             s.avgpool = nn.AdaptiveAvgPool2d(1); s.fc = nn.Linear(inp, nc)
//!         def forward(s, x):
//!             x = s.relu(s.bn1(s.conv1(x)))
//!             for l in (s.layer1, s.layer2, s.layer3, s.layer4): x = l(x)
//!             return s.fc(torch.flatten(s.avgpool(x), 1))
//!     return R()
//!
//! def vgg(w, nc):  # torchvision vgg11_bn with scaled conv widths and hidden size
//!     cfg = [c if c == "M" else max(1, round(c * w)) for c in
//!            [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]]
//!     m = VGG(make_layers(cfg, batch_norm=True), num_classes=nc, init_weights=False)
//!     h = max(1, round(4096 * w))
//!     m.classifier = nn.Sequential(nn.Linear(cfg[-2] * 49, h), nn.ReLU(True), nn.Dropout(0.5),
//!                                  nn.Linear(h, h), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(h, nc))
//!     return m
//!
//! def mobilenet(w, nc):
//!     return torchvision.models.mobilenet_v2(width_mult=w, num_classes=nc)
//!
//! def fill(m):  # value of element i of the k-th state-dict entry, computed in float64
//!     with torch.no_grad():
//!         for k, (name, t) in enumerate(m.state_dict().items()):
//!             if name.endswith("num_batches_tracked"):
//!                 t.fill_(3); continue
//!             s = torch.sin(2.3 * torch.arange(t.numel(), dtype=torch.float64) + 0.9 * k)
//!             if name.endswith("running_var"): v = 1.0 + 0.25 * s
//!             elif name.endswith("running_mean"): v = 0.1 * s
//!             elif name.endswith("bias"): v = 0.1 * s
//!             elif t.dim() == 1: v = 1.0 + 0.2 * s  # batch-norm weight
//!             else: v = s * 2.0 / math.sqrt(t.numel() / t.shape[0])
//!             t.copy_(v.reshape(t.shape).to(torch.float32))
//!
//! def inputs():
//!     i = torch.arange(3 * 32 * 32, dtype=torch.float64)  # per image; the smooth term differs
//!     x = [1.5 * torch.cos(1.7 * i + 0.3) + torch.sin(0.01 * i + 2.0 * b) for b in range(4)]
//!     return torch.stack(x).reshape(4, 3, 32, 32).to(torch.float32)
//!
//! def show(label, t):
//!     print(label, "=", [round(float(v), 6) for v in t.flatten()])
//!
//! def no_dropout_train(m):
//!     m.train()
//!     for mod in m.modules():
//!         if isinstance(mod, nn.Dropout): mod.eval()
//!
//! x = inputs()
//! for name, ctor, w in (("resnet18", resnet, 0.125), ("vgg11_bn", vgg, 0.125), ("mobilenet_v2", mobilenet, 0.25)):
//!     m = ctor(w, 10); fill(m)
//!     m.eval(); show(f"{name} eval", m(x).detach())
//!     no_dropout_train(m); show(f"{name} train", m(x).detach())
//!     sd = m.state_dict()
//!     rm = sum(float(v.sum()) for k, v in sd.items() if k.endswith("running_mean"))
//!     rv = sum(float(v.sum()) for k, v in sd.items() if k.endswith("running_var"))
//!     print(f"{name} running sums = {rm:.6f} {rv:.6f}")
//!     # One AdamW step (lr 1e-3, weight decay 0.01) on CE with labels [3, 7, 1, 8], dropout off.
//!     m = ctor(w, 10); fill(m); no_dropout_train(m)
//!     opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
//!     loss = nn.functional.cross_entropy(m(x), torch.tensor([3, 7, 1, 8]))
//!     opt.zero_grad(); loss.backward(); opt.step()
//!     print(f"{name} adamw loss = {float(loss):.6f}")
//!     last_bias = [k for k in m.state_dict() if k.endswith("bias")][-1]
//!     show(f"{name} adamw {last_bias}", m.state_dict()[last_bias])
//!     m.eval(); show(f"{name} adamw eval", m(x).detach())
//!
//! for name, m in (("resnet18", resnet(1.0, 10)), ("vgg11_bn", torchvision.models.vgg11_bn(num_classes=10)),
//!                 ("mobilenet_v2", torchvision.models.mobilenet_v2(num_classes=10))):
//!     sd = m.state_dict()
//!     print(name, "params", sum(p.numel() for p in m.parameters()), "param tensors",
//!           len(list(m.parameters())), "entries", len(sd))
//! ```

// The references are PyTorch's printed float32 values, pasted verbatim.
#![allow(clippy::excessive_precision)]

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use tarun_ml::models::{Arch, EntryKind, Mode, Network};
use tarun_ml::train::{Optimizer, OptimizerKind};

/// PyTorch's output for one architecture.
struct Reference {
    arch: Arch,
    width: f64,
    eval: [f32; 40],
    train: [f32; 40],
    /// Sums of all running means and of all running variances after the train-mode pass.
    running_sums: [f64; 2],
    adamw_loss: f64,
    /// The key of the head's bias and its value after the AdamW step.
    head_bias_key: &'static str,
    adamw_head_bias: [f32; 10],
    /// Eval logits after the AdamW step.
    adamw_eval: [f32; 40],
    /// Tolerance for those, relative to their largest magnitude (see `check_adamw`).
    after_step_tol: f32,
}

const RESNET18: Reference = Reference {
    arch: Arch::Resnet18,
    width: 0.125,
    eval: [
        -64.747063,
        139.415207,
        -185.777222,
        194.379501,
        -163.435028,
        99.211456,
        -14.773716,
        -72.676498,
        145.319351,
        -188.365097,
        -69.283501,
        116.500244,
        -140.070587,
        135.175705,
        -102.773102,
        49.427109,
        14.009449,
        -74.605415,
        120.00174,
        -140.949402,
        -49.701466,
        87.668549,
        -107.852165,
        106.122185,
        -82.792496,
        42.582485,
        6.326215,
        -53.956703,
        90.586487,
        -108.749184,
        -46.475483,
        125.77227,
        -179.537262,
        196.811386,
        -174.044235,
        115.840614,
        -34.041264,
        -54.688606,
        132.268936,
        -182.906021,
    ],
    train: [
        -0.718938, 0.460392, -0.152182, -0.168787, 0.475156, -0.72937, 0.8748, -0.850552, 0.624753,
        -0.2256, -0.751106, 0.550175, -0.281323, -0.026549, 0.348745, -0.644492, 0.848715,
        -0.888563, 0.719132, -0.357155, -0.487629, 0.078599, 0.302456, -0.60382, 0.80212,
        -0.881777, 0.821657, -0.602666, 0.232532, 0.231198, -0.657607, 0.47727, -0.243837,
        -0.020994, 0.301278, -0.564765, 0.752941, -0.796218, 0.648994, -0.323486,
    ],
    running_sums: [0.217480, 891.330988],
    adamw_loss: 2.510211,
    head_bias_key: "fc.bias",
    adamw_head_bias: [
        0.086026, -0.093715, 0.038187, 0.043497, -0.096816, 0.084183, -0.018695, -0.060603,
        0.100785, -0.072365,
    ],
    adamw_eval: [
        3.275329, 1.304566, -6.172399, 9.711085, -11.378181, 9.601345, -8.12684, 3.90582, 2.166568,
        -6.666368, -1.469751, 2.800944, -3.877418, 4.153981, -3.643948, 1.660753, -0.753533,
        -1.002824, 3.214359, -4.038251, 4.510632, -1.523594, -2.281858, 5.531927, -7.733116,
        7.471245, -7.438438, 5.038753, -0.796967, -2.714514, 3.09238, 0.645774, -4.734396,
        7.797465, -9.359715, 8.05074, -7.016547, 3.623865, 1.400596, -5.17048,
    ],
    // Stock Candle lands within 1e-2 here and tarun's kernels within 1.5e-2 (their gradients
    // agree with stock Candle's to 2e-3 per tensor, `models_kernels.rs`; Adam's first step
    // turns the remaining float noise into +-lr steps, see `check_adamw_step`).
    after_step_tol: 2e-2,
};

const VGG11_BN: Reference = Reference {
    arch: Arch::Vgg11Bn,
    width: 0.125,
    eval: [
        0.425695, -0.855982, 1.104732, -1.077873, 0.753456, -0.20596, -0.409013, 0.907776,
        -1.146233, 1.070326, 0.425812, -0.856136, 1.104885, -1.077988, 0.753506, -0.205932,
        -0.409112, 0.907922, -1.146391, 1.070457, 0.425818, -0.855811, 1.104308, -1.077298,
        0.752871, -0.205506, -0.409227, 0.907698, -1.145881, 1.069786, 0.425617, -0.855805,
        1.104497, -1.077638, 0.753278, -0.205882, -0.408972, 0.907627, -1.146011, 1.070085,
    ],
    train: [
        0.425906, -0.855943, 1.10445, -1.077418, 0.752938, -0.205505, -0.409296, 0.907818,
        -1.146024, 1.069916, 0.425719, -0.855844, 1.104464, -1.077541, 0.75314, -0.205737,
        -0.40909, 0.907688, -1.146001, 1.070006, 0.425434, -0.855685, 1.104469, -1.077709,
        0.753431, -0.20608, -0.408778, 0.907482, -1.145952, 1.070125, 0.425193, -0.855415,
        1.104236, -1.077569, 0.753418, -0.206197, -0.408559, 0.907214, -1.1457, 1.06995,
    ],
    running_sums: [-0.341612, 396.824140],
    adamw_loss: 3.225646,
    head_bias_key: "classifier.6.bias",
    adamw_head_bias: [
        -0.100696, 0.061624, 0.017911, -0.084824, 0.094454, -0.042373, -0.041322, 0.096105,
        -0.08541, 0.019041,
    ],
    adamw_eval: [
        -2.043184, 1.460252, -0.723115, 0.044131, 0.383794, -2.312953, 0.169512, 0.363059,
        0.867526, -0.289963, -0.957225, 0.428037, 0.093389, -0.446943, 0.518538, -1.419787,
        -0.169312, 0.704423, -0.032644, 0.312048, -3.945159, 3.282423, -2.179095, 0.93622, 0.11672,
        -3.860078, 0.752183, -0.238536, 2.466838, -1.375137, -1.455568, 0.901878, -0.281188,
        -0.222348, 0.458319, -1.828861, -0.010691, 0.54434, 0.380461, 0.036308,
    ],
    after_step_tol: 1e-2,
};

const MOBILENET_V2: Reference = Reference {
    arch: Arch::MobilenetV2,
    width: 0.25,
    eval: [
        -0.112035, -1.188048, 2.415057, -3.407681, 4.014453, -4.140457, 3.777686, -3.002286,
        1.941395, -0.729836, -0.100986, -1.206942, 2.439786, -3.435613, 4.042615, -4.165854,
        3.797613, -3.014623, 1.944829, -0.724002, -0.103338, -1.202895, 2.434473, -3.4296,
        4.036542, -4.160367, 3.793297, -3.011936, 1.944058, -0.725228, -0.112875, -1.186472,
        2.412914, -3.405199, 4.011895, -4.138097, 3.775774, -3.001025, 1.94092, -0.730198,
    ],
    train: [
        -2.291086, 1.205277, 0.062153, -1.345594, 2.462627, -3.264036, 3.669939, -3.674678,
        3.322372, -2.672435, -2.336854, 0.745618, 0.978323, -2.620775, 3.961117, -4.826367,
        5.129848, -4.876803, 4.138784, -3.016252, -2.44865, 1.012158, 0.585405, -2.143292,
        3.449882, -4.335787, 4.712128, -4.576398, 3.987662, -3.030495, -2.5466, 1.151832, 0.41887,
        -1.96762, 3.283768, -4.196907, 4.615263, -4.531856, 4.000183, -3.098747,
    ],
    running_sums: [-1.144288, 5143.945352],
    adamw_loss: 5.460490,
    head_bias_key: "classifier.1.bias",
    adamw_head_bias: [
        -0.087408, 0.096105, -0.041325, -0.04037, 0.094453, -0.086826, 0.017914, 0.061622,
        -0.100696, 0.071228,
    ],
    adamw_eval: [
        0.239369, -1.897516, 2.687625, -3.903809, 3.978559, -4.464854, 3.331504, -2.454999,
        1.304315, -0.406528, 0.248064, -1.904867, 2.692992, -3.904957, 3.978647, -4.460933,
        3.32655, -2.448794, 1.297088, -0.39746, 0.233012, -1.892658, 2.683623, -3.901903, 3.978441,
        -4.467381, 3.335189, -2.460178, 1.310439, -0.413119, 0.252347, -1.908687, 2.696457,
        -3.907521, 3.979883, -4.46068, 3.325069, -2.446041, 1.293355, -0.393272,
    ],
    // Float noise decides the sign of many first Adam steps here (see `check_adamw_step`):
    // summing in another order (AVX-512 instead of AVX2 microkernels) moves the result between
    // 1 and 2 % of the scale.
    after_step_tol: 3e-2,
};

/// The formula of the script's `fill`, entry `k` of the state dict in torchvision order.
fn fill(net: &mut Network) -> BTreeMap<String, Tensor> {
    let mut state = BTreeMap::new();
    for (k, (name, shape, _)) in net.keys().into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let t = if name.ends_with("num_batches_tracked") {
            Tensor::new(3i64, &Device::Cpu).unwrap()
        } else {
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    let s = (2.3 * i as f64 + 0.9 * k as f64).sin();
                    let v = if name.ends_with("running_var") {
                        1.0 + 0.25 * s
                    } else if name.ends_with("running_mean") || name.ends_with("bias") {
                        0.1 * s
                    } else if shape.len() == 1 {
                        1.0 + 0.2 * s
                    } else {
                        s * 2.0 / ((n / shape[0]) as f64).sqrt()
                    };
                    v as f32
                })
                .collect();
            Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap()
        };
        state.insert(name, t);
    }
    net.load_state_dict(&state).unwrap();
    state
}

fn inputs() -> Tensor {
    let n = 3 * 32 * 32;
    let v: Vec<f32> = (0..4 * n)
        .map(|j| {
            let (b, i) = ((j / n) as f64, (j % n) as f64);
            (1.5 * (1.7 * i + 0.3).cos() + (0.01 * i + 2.0 * b).sin()) as f32
        })
        .collect();
    Tensor::from_vec(v, (4, 3, 32, 32), &Device::Cpu).unwrap()
}

fn network(r: &Reference) -> Network {
    let mut net = Network::new(r.arch, r.width, 10, 0, &Device::Cpu).unwrap();
    fill(&mut net);
    net
}

/// Asserts closeness relative to the reference's scale (PyTorch's kernels sum in other orders).
fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}[{i}]: got {g}, PyTorch {w}\n{got:?}"
        );
    }
}

fn logits(net: &Network, mode: Mode) -> Vec<f32> {
    net.forward_mode(&inputs(), mode)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Train-mode batch norm without dropout, the script's `no_dropout_train`.
const BN_TRAIN: Mode = Mode {
    batch_stats: true,
    dropout: false,
};

fn check_forward(r: &Reference) {
    let net = network(r);
    assert_close(
        &format!("{} eval", r.arch),
        &logits(&net, Mode::EVAL),
        &r.eval,
        2e-5,
    );
    // Train mode normalises MobileNet's last blocks over 1x1 maps of 4 images, which amplifies
    // rounding: PyTorch's own float32 and float64 results differ by 2.6e-3 of the logit scale
    // here, so the bound is that gap, looser than for eval mode (Candle's stock ops land 5e-4
    // away, tarun's kernels 1e-3; a wiring mistake would be off by the whole scale).
    assert_close(
        &format!("{} train", r.arch),
        &logits(&net, BN_TRAIN),
        &r.train,
        3e-3,
    );
    let state = net.state_dict().unwrap();
    let sum = |suffix: &str| -> f64 {
        state
            .iter()
            .filter(|(k, _)| k.ends_with(suffix))
            .map(|(_, t)| f64::from(t.sum_all().unwrap().to_scalar::<f32>().unwrap()))
            .sum()
    };
    let (rm, rv) = (sum("running_mean"), sum("running_var"));
    assert!(
        (rm - r.running_sums[0]).abs() < 1e-3,
        "{}: running_mean sum {rm}",
        r.arch
    );
    // The same ill-conditioned last blocks feed MobileNet's variance sum: tarun's kernels land
    // 1.3e-6 of it away, Candle's stock ops 2.7e-6.
    assert!(
        (rv - r.running_sums[1]).abs() < 5e-6 * r.running_sums[1],
        "{}: running_var sum {rv}",
        r.arch
    );
    let counter = state
        .iter()
        .find(|(k, _)| k.ends_with("num_batches_tracked"))
        .unwrap()
        .1;
    assert_eq!(
        counter
            .to_dtype(DType::I64)
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        4
    );
}

fn check_adamw(r: &Reference) {
    let net = network(r);
    let vars = net.trainable_vars();
    assert!(
        net.keys()
            .iter()
            .filter(|k| k.2 == EntryKind::Param)
            .count()
            == vars.len()
    );
    let mut opt = Optimizer::new(OptimizerKind::AdamW, vars, 0.01, 0.0).unwrap();
    let labels = Tensor::new(&[3u32, 7, 1, 8], &Device::Cpu).unwrap();
    let out = net.forward_mode(&inputs(), BN_TRAIN).unwrap();
    let loss = candle_nn::loss::cross_entropy(&out, &labels).unwrap();
    let value = f64::from(loss.to_scalar::<f32>().unwrap());
    assert!(
        (value - r.adamw_loss).abs() < 5e-4 * r.adamw_loss.abs().max(1.0),
        "loss {value}"
    );
    opt.step(&loss.backward().unwrap(), 1e-3).unwrap();
    let state = net.state_dict().unwrap();
    let bias: Vec<f32> = state[r.head_bias_key].to_vec1().unwrap();
    assert_close(
        &format!("{} head bias", r.arch),
        &bias,
        &r.adamw_head_bias,
        1e-5,
    );
    // Parameters whose exact gradient is zero (conv biases before batch norm, shifts feeding another
    // batch norm) get float-noise gradients in both frameworks, and Adam's first step turns any
    // nonzero gradient into a step of about ±lr. Those steps differ between frameworks, so the
    // logits after the step only agree to 1-2% (MobileNet has the most such shifts); the exact update rule is checked in
    // `train_optim.rs` on gradients without such noise.
    let after = logits(&net, Mode::EVAL);
    assert_close(
        &format!("{} eval after step", r.arch),
        &after,
        &r.adamw_eval,
        r.after_step_tol,
    );
}

#[test]
fn resnet18_forward_matches_pytorch() {
    check_forward(&RESNET18);
}

#[test]
fn vgg11_bn_forward_matches_pytorch() {
    check_forward(&VGG11_BN);
}

#[test]
fn mobilenet_v2_forward_matches_pytorch() {
    check_forward(&MOBILENET_V2);
}

#[test]
fn resnet18_adamw_step_matches_pytorch() {
    check_adamw(&RESNET18);
}

#[test]
fn vgg11_bn_adamw_step_matches_pytorch() {
    check_adamw(&VGG11_BN);
}

#[test]
fn mobilenet_v2_adamw_step_matches_pytorch() {
    check_adamw(&MOBILENET_V2);
}
