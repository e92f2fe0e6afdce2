//! How much accelerator memory a node is expected to take, so that the device pool can put
//! several small jobs on one GPU and keep a large one alone (`--devices cuda:0*4@80G`).
//!
//! An estimate, deliberately generous: parameters with their gradients and AdamW's two moments,
//! the activations a training batch keeps for backward (per image, set above what `tarun bench`'s
//! peak memory on the CPU implies; docs/performance.md has the peaks), a fixed CUDA context and
//! workspace allowance, and half as much again on top.

use serde_json::Value;
use tarun_core::manifest::params::Objective;
use tarun_core::manifest::{NodeKind, NodeSpec, Study};

/// A CUDA context, cuBLAS/cuDNN workspaces and the allocator's slack, in megabytes.
const CONTEXT_MB: f64 = 400.0;
/// The estimate times this.
const MARGIN: f64 = 1.5;
/// Batch of the evaluation forward passes (`data::eval_logits`).
const EVAL_BATCH: f64 = 256.0;
/// Batch of the relearning (AIN) fine-tuning, `relearn::BATCH`.
const RELEARN_BATCH: f64 = 128.0;

/// Parameters of a network at `width` with ten classes: `a w^2 + b w + c`, fitted to the built
/// networks' counts (tested against them below). Also what `run --dry-run` costs surgery by.
pub fn parameters(arch: &str, width: f64) -> Option<f64> {
    let (a, b, c) = match arch {
        "resnet18" => (11_173_962.0, 0.0, 0.0),
        "vgg11_bn" => (128_871_976.0, 0.0, 0.0),
        "mobilenet_v2" => (1_698_816.0, 524_160.0, 13_706.0),
        _ => return None,
    };
    Some(a * width * width + b * width + c)
}

/// Megabytes of activations a training step keeps per image at width 1 (they scale with the
/// width: every layer's channels do).
fn activations_mb(arch: &str) -> f64 {
    match arch {
        "resnet18" => 8.0,
        "vgg11_bn" => 2.0,
        _ => 2.5,
    }
}

/// The `(arch, width)` a node computes with: its own for `train`, else that of the node it
/// starts from (`from`, `base`, `model`), followed up the graph. Also what `run --dry-run`
/// looks throughput figures up by.
pub fn network(study: &Study, node: &NodeSpec) -> Option<(String, f64)> {
    let mut node = node;
    for _ in 0..study.nodes.len() {
        if node.kind == NodeKind::Train {
            let arch = node.params.get("arch")?.as_str()?.to_owned();
            let width = node
                .params
                .get("width")
                .and_then(Value::as_f64)
                .unwrap_or(1.0);
            return Some((arch, width));
        }
        let up = ["from", "base", "model"]
            .iter()
            .find_map(|k| node.params.get(*k).and_then(Value::as_str))?;
        node = study.node(up)?;
    }
    None
}

fn training_mb(arch: &str, width: f64, batch: f64) -> Option<f64> {
    let params = parameters(arch, width)?;
    // Weights, gradients and two AdamW moments, f32.
    Some(params * 16.0 / 1e6 + batch * activations_mb(arch) * width)
}

/// The node's estimate in megabytes; `None` for kinds that use no device or unknown networks.
pub fn estimate_mb(study: &Study, node: &NodeSpec) -> Option<u64> {
    let (arch, width) = network(study, node)?;
    let weights_mb = parameters(&arch, width)? * 4.0 / 1e6;
    let count = |k: &str| {
        node.params
            .get(k)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let mb = match node.kind {
        NodeKind::Train | NodeKind::Expert => {
            let batch = node.params.get("batch-size").and_then(Value::as_f64)?;
            // What two unlearning baselines hold besides: SCRUB a frozen teacher and its forward
            // pass; SalUn its mask and the summed saliency gradients, an f32 per weight each.
            let objective = node.params.get("objective").and_then(Value::as_str);
            let besides = if objective == Some(Objective::Scrub.name()) {
                weights_mb + batch * activations_mb(&arch) * width / 4.0
            } else if objective == Some(Objective::Salun.name()) {
                2.0 * weights_mb
            } else {
                0.0
            };
            training_mb(&arch, width, batch)? + besides
        }
        // The base, one expert per vector, the result.
        NodeKind::Ablate => weights_mb * (2 + count("vectors")) as f64,
        NodeKind::Evaluate => {
            let metrics = node.params.get("metrics").and_then(Value::as_array);
            let has = |m: &str| metrics.is_some_and(|ms| ms.iter().any(|v| v == m));
            let teachers = node.params.get("zrf-teachers").and_then(Value::as_f64);
            // The model, the retrained reference, the base, the ZRF teachers.
            let models = 1.0
                + f64::from(u8::from(node.params.contains_key("retrained")))
                + f64::from(u8::from(node.params.contains_key("base")))
                + if has("zrf") {
                    teachers.unwrap_or(1.0)
                } else {
                    0.0
                };
            // A forward pass keeps about a quarter of what a training step does.
            let forward = EVAL_BATCH * activations_mb(&arch) * width / 4.0;
            let relearn = if has("ain") {
                training_mb(&arch, width, RELEARN_BATCH)?
            } else {
                0.0
            };
            models * weights_mb + forward.max(relearn)
        }
        NodeKind::Select | NodeKind::Report => return None,
    };
    Some(((mb + CONTEXT_MB) * MARGIN).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use tarun_ml::models::{Arch, Network};

    use super::*;

    #[test]
    fn the_parameter_formula_matches_the_built_networks() {
        // VGG-11-BN at width 1 (128.8M parameters) is checked at half width: its count is
        // exactly a quarter of width 1's in every layer that dominates.
        for arch in Arch::ALL {
            for width in [0.5, 0.25] {
                let real = Network::new(arch, width, 10, 0, &Device::Cpu)
                    .unwrap()
                    .num_params() as f64;
                let formula = parameters(arch.name(), width).unwrap();
                assert!(
                    (formula - real).abs() / real < 0.02,
                    "{} at {width}: formula {formula}, network {real}",
                    arch.name()
                );
            }
        }
    }

    const STUDY: &str = r#"
        [study]
        name = "m"
        [train.big]
        arch = "resnet18"
        lr = 0.1
        batch-size = 128
        [train.small]
        arch = "resnet18"
        width = 0.25
        lr = 0.1
        batch-size = 32
        [expert.e]
        from = "big"
        lr = 0.1
        batch-size = 64
        [expert.scrub]
        from = "big"
        lr = 0.1
        batch-size = 64
        objective = "scrub"
        forget = 3
        [expert.salun]
        from = "big"
        lr = 0.1
        batch-size = 64
        objective = "salun"
        forget = 3
        [ablate.a]
        base = "big"
        vectors = [{ expert = "e", alpha = -1.0, rho = 0.5 }]
        [evaluate.plain]
        model = "a"
        [evaluate.ain]
        model = "a"
        forget = 3
        retrained = "big"
        metrics = ["ain"]
        [report.r]
        inputs = ["plain"]
    "#;

    #[test]
    fn estimates_follow_width_batch_and_what_a_node_loads() {
        let s = tarun_core::manifest::parse_str("m.toml", STUDY, &[]).unwrap();
        let mb = |id: &str| estimate_mb(&s, s.node(id).unwrap());
        // ResNet-18 width 1 batch 128: 11.2M parameters x 16 B + 128 x 8 MB, plus 400, x 1.5.
        let big: f64 = (11_173_962.0 * 16.0 / 1e6 + 128.0 * 8.0 + 400.0) * 1.5;
        assert_eq!(mb("big"), Some(big.ceil() as u64));
        assert!(mb("small").unwrap() < mb("e").unwrap());
        assert!(
            mb("e").unwrap() < mb("big").unwrap(),
            "the expert inherits width 1, batch 64"
        );
        // Base, expert and result: three copies of 44.7 MB of weights.
        let ablate: f64 = (3.0 * 11_173_962.0 * 4.0 / 1e6 + 400.0) * 1.5;
        assert_eq!(mb("a"), Some(ablate.ceil() as u64));
        assert!(mb("ain").unwrap() > mb("plain").unwrap());
        assert_eq!(mb("r"), None);
        // SCRUB adds a teacher (44.7 MB) and its forward pass (64 x 8 MB / 4); SalUn two f32
        // copies of the weights.
        let expert: f64 = (11_173_962.0 * 16.0 / 1e6 + 64.0 * 8.0 + 400.0) * 1.5;
        assert_eq!(mb("e"), Some(expert.ceil() as u64));
        let scrub: f64 = (11_173_962.0 * 20.0 / 1e6 + 64.0 * 8.0 * 1.25 + 400.0) * 1.5;
        assert_eq!(mb("scrub"), Some(scrub.ceil() as u64));
        let salun: f64 = (11_173_962.0 * 24.0 / 1e6 + 64.0 * 8.0 + 400.0) * 1.5;
        assert_eq!(mb("salun"), Some(salun.ceil() as u64));
    }
}
