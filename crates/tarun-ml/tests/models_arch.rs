//! Structure of the three networks at width 1.0: parameter counts, key names and shapes as
//! torchvision's state dicts have them (counts from docs/study.md §2, confirmed with
//! torchvision 0.29), plus seeding, width scaling and state-dict handling.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use tarun_ml::models::{Arch, EntryKind, ModelError, Network, is_buffer_key};

fn shape_of(net: &Network, key: &str) -> Vec<usize> {
    let keys = net.keys();
    keys.iter()
        .find(|k| k.0 == key)
        .unwrap_or_else(|| panic!("no key {key}"))
        .1
        .clone()
}

/// (learnable scalars, learnable tensors, state-dict entries) and (key, shape) samples.
fn check(arch: Arch, counts: (usize, usize, usize), samples: &[(&str, &[usize])]) {
    let net = Network::new(arch, 1.0, 10, 0, &Device::Cpu).unwrap();
    assert_eq!(net.num_params(), counts.0, "{arch} parameters");
    assert_eq!(
        net.trainable_vars().len(),
        counts.1,
        "{arch} parameter tensors"
    );
    let keys = net.keys();
    assert_eq!(keys.len(), counts.2, "{arch} state-dict entries");
    for (name, _, kind) in &keys {
        assert_eq!(*kind == EntryKind::Buffer, is_buffer_key(name), "{name}");
    }
    for (key, shape) in samples {
        assert_eq!(shape_of(&net, key), *shape, "{arch} {key}");
    }
}

#[test]
fn resnet18_matches_torchvision() {
    check(
        Arch::Resnet18,
        (11_173_962, 62, 122),
        &[
            ("conv1.weight", &[64, 3, 3, 3]),
            ("bn1.running_mean", &[64]),
            ("layer1.0.bn1.num_batches_tracked", &[]),
            ("layer2.0.downsample.0.weight", &[128, 64, 1, 1]),
            ("layer4.1.conv2.weight", &[512, 512, 3, 3]),
            ("fc.weight", &[10, 512]),
            ("fc.bias", &[10]),
        ],
    );
}

#[test]
fn vgg11_bn_matches_torchvision() {
    check(
        Arch::Vgg11Bn,
        (128_812_810, 38, 62),
        &[
            ("features.0.weight", &[64, 3, 3, 3]),
            ("features.1.running_var", &[64]),
            ("features.25.weight", &[512, 512, 3, 3]),
            ("features.26.bias", &[512]),
            ("classifier.0.weight", &[4096, 25088]),
            ("classifier.3.weight", &[4096, 4096]),
            ("classifier.6.bias", &[10]),
        ],
    );
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    check(
        Arch::MobilenetV2,
        (2_236_682, 158, 314),
        &[
            ("features.0.0.weight", &[32, 3, 3, 3]),
            ("features.1.conv.0.0.weight", &[32, 1, 3, 3]),
            ("features.1.conv.1.weight", &[16, 32, 1, 1]),
            ("features.1.conv.2.running_mean", &[16]),
            ("features.2.conv.0.0.weight", &[96, 16, 1, 1]),
            ("features.2.conv.1.0.weight", &[96, 1, 3, 3]),
            ("features.17.conv.2.weight", &[320, 960, 1, 1]),
            ("features.18.0.weight", &[1280, 320, 1, 1]),
            ("classifier.1.weight", &[10, 1280]),
        ],
    );
}

#[test]
fn widths_scale_channels() {
    let net = Network::new(Arch::Resnet18, 0.25, 10, 0, &Device::Cpu).unwrap();
    assert_eq!(shape_of(&net, "layer4.1.conv2.weight"), [128, 128, 3, 3]);
    let net = Network::new(Arch::Vgg11Bn, 0.125, 7, 0, &Device::Cpu).unwrap();
    assert_eq!(shape_of(&net, "classifier.0.weight"), [512, 64 * 49]);
    assert_eq!(shape_of(&net, "classifier.6.weight"), [7, 512]);
    // torchvision's width_mult: _make_divisible(32 * 0.5) = 16, the last channel stays 1280.
    let net = Network::new(Arch::MobilenetV2, 0.5, 10, 0, &Device::Cpu).unwrap();
    assert_eq!(shape_of(&net, "features.0.0.weight"), [16, 3, 3, 3]);
    assert_eq!(shape_of(&net, "features.18.0.weight"), [1280, 160, 1, 1]);
}

#[test]
fn arch_names_round_trip() {
    for arch in Arch::ALL {
        assert_eq!(arch.to_string().parse::<Arch>().unwrap(), arch);
    }
    assert!(matches!(
        "resnet50".parse::<Arch>(),
        Err(ModelError::UnknownArch(_))
    ));
    assert!(Network::new(Arch::Resnet18, 0.0, 10, 0, &Device::Cpu).is_err());
}

fn equal(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, t)| {
            let u = &b[k];
            t.dims() == u.dims()
                && t.flatten_all()
                    .unwrap()
                    .to_dtype(candle_core::DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
                    == u.flatten_all()
                        .unwrap()
                        .to_dtype(candle_core::DType::F64)
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap()
        })
}

#[test]
fn seed_fixes_initial_weights() {
    let a = Network::new(Arch::MobilenetV2, 0.25, 10, 7, &Device::Cpu).unwrap();
    let b = Network::new(Arch::MobilenetV2, 0.25, 10, 7, &Device::Cpu).unwrap();
    let c = Network::new(Arch::MobilenetV2, 0.25, 10, 8, &Device::Cpu).unwrap();
    assert!(equal(&a.state_dict().unwrap(), &b.state_dict().unwrap()));
    assert!(!equal(&a.state_dict().unwrap(), &c.state_dict().unwrap()));
}

/// Default init statistics: kaiming-normal fan-out std for convs, U(±1/sqrt(fan_in)) for the stem
/// and the head, N(0, 0.01) for VGG's hidden linears.
#[test]
fn initialisation_follows_torchvision() {
    let net = Network::new(Arch::Resnet18, 1.0, 10, 3, &Device::Cpu).unwrap();
    let sd = net.state_dict().unwrap();
    let std = |k: &str| -> f64 {
        let v: Vec<f32> = sd[k].flatten_all().unwrap().to_vec1().unwrap();
        (v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    let max = |k: &str| -> f32 { sd[k].abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
    let want = (2.0f64 / (512.0 * 9.0)).sqrt();
    assert!((std("layer4.1.conv2.weight") / want - 1.0).abs() < 0.01);
    assert!(max("conv1.weight") <= 1.0 / 27f32.sqrt() && max("conv1.weight") > 0.9 / 27f32.sqrt());
    assert!(max("fc.bias") <= 1.0 / 512f32.sqrt());
    assert_eq!(std("bn1.bias"), 0.0);
    assert_eq!(std("bn1.weight"), 1.0);
}

#[test]
fn state_dict_round_trips_and_deep_clone_is_independent() {
    let mut a = Network::new(Arch::Resnet18, 0.125, 10, 1, &Device::Cpu).unwrap();
    let b = Network::new(Arch::Resnet18, 0.125, 10, 2, &Device::Cpu).unwrap();
    let snapshot = b.state_dict().unwrap();
    a.load_state_dict(&snapshot).unwrap();
    assert!(equal(&a.state_dict().unwrap(), &snapshot));

    let copy = a.deep_clone().unwrap();
    let x = Tensor::ones((2, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    a.forward_t(&x, true).unwrap(); // updates a's running statistics only
    assert!(equal(&copy.state_dict().unwrap(), &snapshot));
    assert!(!equal(&a.state_dict().unwrap(), &snapshot));

    let mut bad = snapshot.clone();
    bad.remove("fc.bias");
    assert!(matches!(a.load_state_dict(&bad), Err(ModelError::MissingKey(k)) if k == "fc.bias"));
    bad.insert(
        "fc.bias".into(),
        Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    assert!(matches!(
        a.load_state_dict(&bad),
        Err(ModelError::ShapeMismatch { .. })
    ));
    let mut extra = snapshot.clone();
    extra.insert("resnet.fc.bias".into(), snapshot["fc.bias"].clone());
    assert!(matches!(
        a.load_state_dict(&extra),
        Err(ModelError::UnexpectedKeys(_))
    ));
}

#[test]
fn dropout_acts_only_in_train_mode() {
    let net = Network::new(Arch::MobilenetV2, 0.25, 10, 0, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1., (4, 3, 32, 32), &Device::Cpu).unwrap();
    let mode = tarun_ml::models::Mode {
        batch_stats: false,
        dropout: true,
    };
    let eval = |n: &Network| n.forward_t(&x, false).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(eval(&net), eval(&net));
    let d1 = net
        .forward_mode(&x, mode)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let d2 = net
        .forward_mode(&x, mode)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_ne!(d1, d2);
    assert_ne!(d1, eval(&net));
}

#[test]
fn inference_is_eval_mode_without_a_graph() {
    // VGG (at width 1/8 its maps reach 1x1, so the folded first linear layer runs), ResNet and
    // MobileNetV2: every layer kind reads its parameters through the no-grad switch.
    // A training pass first, so that the running statistics are no longer 0 and 1: inference
    // folds them into the convolutions (`conv_bn`), which must agree with the eval forward's
    // separate batch norm up to rounding.
    for arch in [Arch::Vgg11Bn, Arch::Resnet18, Arch::MobilenetV2] {
        let net = Network::new(arch, 0.125, 10, 0, &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1., (3, 3, 32, 32), &Device::Cpu).unwrap();
        let warm = (Tensor::randn(0f32, 1., (3, 3, 32, 32), &Device::Cpu).unwrap() + 0.5).unwrap();
        net.forward_t(&warm, true).unwrap();
        let graph = net.forward_t(&x, false).unwrap();
        let plain = net.forward_inference(&x).unwrap();
        assert!(graph.track_op(), "{arch:?}: eval forward records a graph");
        assert!(!plain.track_op(), "{arch:?}: inference records none");
        let (g, p) = (graph.flatten_all().unwrap(), plain.flatten_all().unwrap());
        let (g, p) = (g.to_vec1::<f32>().unwrap(), p.to_vec1::<f32>().unwrap());
        let scale = g.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (a, b) in g.iter().zip(&p) {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "{arch:?}: eval {a} vs inference {b}"
            );
        }
        // The switch is off again afterwards: training still gets gradients.
        let loss = net.forward_t(&x, true).unwrap().sum_all().unwrap();
        assert!(loss.backward().is_ok() && loss.track_op(), "{arch:?}");
    }
}
