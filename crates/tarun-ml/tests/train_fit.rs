//! `fit` and `evaluate_logits`: determinism, divergence and cancellation errors, step limits and
//! the unlearning objectives.

use std::convert::Infallible;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tarun_ml::models::{Arch, Network};
use tarun_ml::train::{
    EpochStats, NoHooks, Objective, Optimization, OptimizerKind, RandomLabelRule, Schedule,
    StepInfo, TrainConfig, TrainError, TrainHooks, evaluate_logits, fit, random_labels,
};

type Batch = Result<(Tensor, Tensor), Infallible>;

/// `n` random batches of 4 images, the same for a given seed.
fn batches(seed: u64, n: usize) -> Vec<(Tensor, Tensor)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x: Vec<f32> = (0..4 * 3 * 32 * 32)
                .map(|_| rng.random_range(-2.0..2.0))
                .collect();
            let y: Vec<u32> = (0..4).map(|_| rng.random_range(0..10)).collect();
            (
                Tensor::from_vec(x, (4, 3, 32, 32), &Device::Cpu).unwrap(),
                Tensor::from_vec(y, 4, &Device::Cpu).unwrap(),
            )
        })
        .collect()
}

fn config(objective: Objective) -> TrainConfig {
    TrainConfig {
        optim: Optimization {
            optimizer: OptimizerKind::AdamW,
            lr: 1e-3,
            weight_decay: 0.01,
            momentum: 0.0,
            epochs: 2,
            max_steps: None,
            schedule: Schedule::Cosine,
        },
        objective,
        seed: 11,
    }
}

fn source(data: &[(Tensor, Tensor)]) -> impl FnMut(u64) -> std::vec::IntoIter<Batch> + '_ {
    move |_epoch| data.iter().cloned().map(Ok).collect::<Vec<_>>().into_iter()
}

fn train(arch: Arch, cfg: &TrainConfig, data: &[(Tensor, Tensor)]) -> (Network, Vec<EpochStats>) {
    let mut net = Network::new(arch, 0.125, 10, 3, &Device::Cpu).unwrap();
    let summary = fit(&mut net, cfg, source(data), &mut NoHooks).unwrap();
    (net, summary.epochs)
}

fn bytes(net: &Network) -> Vec<(String, Vec<u8>)> {
    let sd = net.state_dict().unwrap();
    sd.into_iter()
        .map(|(k, t)| {
            let v = t
                .flatten_all()
                .unwrap()
                .to_dtype(candle_core::DType::F64)
                .unwrap();
            let v: Vec<f64> = v.to_vec1().unwrap();
            (k, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect()
}

#[test]
fn fixed_seed_gives_identical_weights() {
    let data = batches(1, 3);
    // VGG exercises dropout; MobileNet the depthwise path.
    for arch in [Arch::Vgg11Bn, Arch::MobilenetV2] {
        let cfg = config(Objective::RandomLabels {
            rule: RandomLabelRule::Seed,
        });
        let (a, stats) = train(arch, &cfg, &data);
        let (b, _) = train(arch, &cfg, &data);
        assert_eq!(bytes(&a), bytes(&b), "{arch}");
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].steps, stats[0].images), (3, 12));
        assert!(stats[1].lr < stats[0].lr);
        let fresh = Network::new(arch, 0.125, 10, 3, &Device::Cpu).unwrap();
        assert_ne!(bytes(&a), bytes(&fresh));
    }
}

#[test]
fn infinite_loss_fails_naming_epoch_and_step() {
    // Head biases of ±f32::MAX make the log-softmax of the odd classes -inf: an infinite loss.
    let data = batches(2, 3);
    let mut net = Network::new(Arch::Resnet18, 0.125, 10, 3, &Device::Cpu).unwrap();
    let mut sd = net.state_dict().unwrap();
    let bias: Vec<f32> = (0..10)
        .map(|i| if i % 2 == 0 { f32::MAX } else { -f32::MAX })
        .collect();
    sd.insert(
        "fc.bias".into(),
        Tensor::from_vec(bias, 10, &Device::Cpu).unwrap(),
    );
    net.load_state_dict(&sd).unwrap();
    let before = net.state_dict().unwrap();
    let err = fit(
        &mut net,
        &config(Objective::Ce),
        source(&data),
        &mut NoHooks,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NonFiniteLoss {
                epoch: 0,
                step: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("epoch 0, step 1"), "{err}");
    // The failed step did not touch the weights.
    let after = net.state_dict().unwrap();
    let w = |sd: &std::collections::BTreeMap<String, Tensor>| {
        sd["fc.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(w(&before), w(&after));
}

#[test]
fn nan_batch_fails_even_when_relu_hides_it_from_the_loss() {
    let mut data = batches(2, 3);
    data[1].0 = Tensor::full(f32::NAN, (4, 3, 32, 32), &Device::Cpu).unwrap();
    let mut net = Network::new(Arch::Resnet18, 0.125, 10, 3, &Device::Cpu).unwrap();
    let err = fit(
        &mut net,
        &config(Objective::Ce),
        source(&data),
        &mut NoHooks,
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainError::NonFiniteStatistics { epoch: 0, step: 2 }),
        "{err}"
    );
}

struct StopAfter {
    steps: Vec<StepInfo>,
    limit: usize,
}

impl TrainHooks for StopAfter {
    fn on_step(&mut self, info: &StepInfo) {
        self.steps.push(*info);
    }
    fn should_stop(&mut self) -> bool {
        self.steps.len() >= self.limit
    }
}

#[test]
fn cancellation_and_step_limit() {
    let data = batches(3, 3);
    let mut net = Network::new(Arch::Resnet18, 0.125, 10, 3, &Device::Cpu).unwrap();
    let mut hooks = StopAfter {
        steps: Vec::new(),
        limit: 4,
    };
    let err = fit(&mut net, &config(Objective::Ce), source(&data), &mut hooks).unwrap_err();
    assert!(
        matches!(err, TrainError::Cancelled { epoch: 1, steps: 4 }),
        "{err}"
    );
    assert_eq!(
        hooks.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    let mut cfg = config(Objective::Ce);
    cfg.optim.max_steps = Some(4);
    let summary = fit(&mut net, &cfg, source(&data), &mut NoHooks).unwrap();
    assert_eq!((summary.steps, summary.images), (4, 16));
    assert_eq!(
        summary.epochs.iter().map(|e| e.steps).collect::<Vec<_>>(),
        [3, 1]
    );
}

#[test]
fn gradient_ascent_reports_negative_loss_and_raises_ce() {
    let data = batches(4, 2);
    let mut cfg = config(Objective::GradientAscent);
    (cfg.optim.epochs, cfg.optim.lr) = (3, 1e-2);
    let (_, stats) = train(Arch::Resnet18, &cfg, &data);
    assert!(stats.iter().all(|s| s.mean_loss < 0.0));
    assert!(stats[2].mean_loss < stats[0].mean_loss, "{stats:?}");
}

#[test]
fn random_label_rules() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let labels = vec![8u32; 100_000];
    for rule in [RandomLabelRule::Seed, RandomLabelRule::Uniform] {
        let drawn = random_labels(&labels, 10, rule, &mut rng);
        let mut counts = [0usize; 10];
        drawn.iter().for_each(|&y| counts[y as usize] += 1);
        assert_eq!(counts[8], 0);
        let share = |c: usize| counts[c] as f64 / labels.len() as f64;
        // The seed's rule moves collisions to (8 + 1) mod 10 = 9, which gets 0.2.
        let want_9 = if rule == RandomLabelRule::Seed {
            0.2
        } else {
            1.0 / 9.0
        };
        let want_0 = if rule == RandomLabelRule::Seed {
            0.1
        } else {
            1.0 / 9.0
        };
        assert!((share(9) - want_9).abs() < 0.01, "{rule:?} {counts:?}");
        assert!((share(0) - want_0).abs() < 0.01, "{rule:?} {counts:?}");
    }
}

#[test]
fn evaluate_logits_is_batched_eval_mode() {
    let data = batches(5, 2);
    let net = Network::new(Arch::Resnet18, 0.125, 10, 3, &Device::Cpu).unwrap();
    let before = net.state_dict().unwrap();
    let (logits, labels) =
        evaluate_logits(&net, data.iter().cloned().map(Ok::<_, Infallible>)).unwrap();
    assert_eq!((logits.len(), labels.len()), (80, 8));
    let direct = net
        .forward_t(&data[1].0, false)
        .unwrap()
        .flatten_all()
        .unwrap();
    assert_eq!(&logits[40..], direct.to_vec1::<f32>().unwrap().as_slice());
    let after = net.state_dict().unwrap();
    let same = |k: &str| before[k].to_vec1::<f32>().unwrap() == after[k].to_vec1::<f32>().unwrap();
    assert!(same("bn1.running_mean"));
}
