//! Resolved parameters, pinned: they are what every node's cache key hashes, so a change to the
//! schema, its defaults or the way validation writes them must not change them by accident. A
//! deliberate change updates the digests here and notes a format version (docs/manifest.md).
//!
//! The manifests are this crate's fixture and one written here with every default, not the
//! repository's studies, which change as the studies do. The same manifests, and one that gives
//! every key, are read back as each kind's typed struct.

use camino::Utf8Path;
use tarun_core::manifest::{self, Study};

/// One line per node, `id <TAB> params as JSON`, hashed.
fn params_digest(study: &Study) -> String {
    let mut text = String::new();
    for node in &study.nodes {
        text.push_str(&node.id);
        text.push('\t');
        text.push_str(&serde_json::to_string(&node.params).expect("JSON"));
        text.push('\n');
    }
    blake3::hash(text.as_bytes()).to_hex()[..16].to_owned()
}

/// Every kind with every default filled, sgd's momentum, `from-select` and a report.
const EVERY_DEFAULT: &str = r#"
[study]
name = "defaults"
seed = 7

[train.base]
arch = "resnet18"
lr = 0.1

[train.sgd]
arch = "mobilenet_v2"
lr = 1
optimizer = "sgd"
only = [1, 2]

[expert.e]
from = "base"
lr = 1e-3
objective = "gradient-ascent"
exclude = [3]

[ablate.a]
base = "base"
vectors = [{ expert = "e", alpha = -1, rho = 0.5 }]

[evaluate.ev]
model = "a"
forget = 3
metrics = ["accuracy", "forget-acc", "kl", "zrf", "mia", "ain", "over-forgetting"]
retrained = "sgd"
base = "base"

[select.s]
over = "ev"
score = "retain-acc - forget-acc"
require = ["retain-acc > 10"]

[ablate.chosen]
base = "base"
vectors = [{ expert = "e", from-select = "s" }]
quantile = "seed-sample"

[report.r]
inputs = ["ev", "s"]
"#;

#[test]
fn resolved_params_are_unchanged() {
    let path = "tests/fixtures/study.toml";
    let study =
        manifest::load(Utf8Path::new(path), &[]).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    assert_eq!(params_digest(&study), "b0da3ff282fa238c");
    let study = manifest::parse_str("defaults.toml", EVERY_DEFAULT, &[]).expect("valid");
    assert_eq!(params_digest(&study), "6d29b81bf56e77d0");
}

/// Every key of every kind given a value (the baselines' keys on an expert of their own).
const EVERY_KEY: &str = r#"
[study]
name = "every-key"
protocol = "seed"

[train.base]
arch = "vgg11_bn"
width = 0.5
optimizer = "sgd"
lr = 0.1
weight-decay = 5e-4
momentum = 0.8
epochs = 3
steps = 10
batch-size = 64
schedule = "cosine"
augment = false
objective = "random-labels"
only = [0, 1, 2]
seed = 5

[expert.e]
from = "base"
lr = 1e-3
exclude = [3]

[expert.scrub]
from = "e"
lr = 1e-3
objective = "scrub"
forget = 3
forget-batch-size = 32
scrub-temperature = 2
scrub-alpha = 0.1
scrub-gamma = 0.5
scrub-max-epochs = 1

[expert.l1]
from = "e"
lr = 1e-3
objective = "l1-sparse"
forget = 3
l1-gamma = 1e-4

[expert.salun]
from = "e"
lr = 1e-3
objective = "salun"
forget = 3
salun-sparsity = 0.25

[ablate.a]
base = "base"
vectors = [{ expert = "e", alpha = -1, rho = 0.5 }]
quantile = "seed-sample"
materialize = true

[evaluate.ev]
model = "a"
forget = 3
split = "validation"
metrics = ["accuracy", "per-class", "forget-acc", "retain-acc", "kl", "zrf", "mia",
           "over-forgetting", "ain", "confusion", "tsne"]
retrained = "base"
base = "base"
zrf-teachers = 2
ain-max-steps = 50
ain-lr = 1e-3
tsne-points = 100

[select.s]
over = "ev"
score = "retain-acc - forget-acc"
require = ["retain-acc > 10", "ain >= 0"]

[ablate.chosen]
base = "base"
vectors = [{ expert = "e", from-select = "s" }]

[report.r]
inputs = ["ev", "s"]
title = "Every key"
"#;

/// Every node's resolved parameters read as its kind's struct, with every key given and with
/// every default: a schema type or default that the struct's field cannot hold fails here, not
/// when a node runs.
#[test]
fn every_node_reads_as_its_kinds_struct() {
    use tarun_core::manifest::NodeKind;
    use tarun_core::manifest::params::{
        AblateParams, EvaluateParams, ExpertParams, ReportParams, SelectParams, TrainParams,
    };
    for (name, text) in [("every-key", EVERY_KEY), ("defaults", EVERY_DEFAULT)] {
        let study = manifest::parse_str("study.toml", text, &[])
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        for node in &study.nodes {
            let read = match node.kind {
                NodeKind::Train => node.typed_params::<TrainParams>().map(drop),
                NodeKind::Expert => node.typed_params::<ExpertParams>().map(drop),
                NodeKind::Ablate => node.typed_params::<AblateParams>().map(drop),
                NodeKind::Evaluate => node.typed_params::<EvaluateParams>().map(drop),
                NodeKind::Select => node.typed_params::<SelectParams>().map(drop),
                NodeKind::Report => node.typed_params::<ReportParams>().map(drop),
            };
            read.unwrap_or_else(|e| panic!("{name}: `{}`: {e}", node.id));
        }
    }
    // Values given arrive in the typed fields.
    let study = manifest::parse_str("study.toml", EVERY_KEY, &[]).unwrap();
    let scrub = study.node("scrub").unwrap();
    let p: ExpertParams = scrub.typed_params().unwrap();
    assert_eq!(p.training.forget, Some(3));
    assert_eq!(p.training.forget_batch_size, Some(32));
    let ev: EvaluateParams = study.node("ev").unwrap().typed_params().unwrap();
    assert_eq!(ev.metrics.len(), 11);
    assert_eq!(ev.tsne_points, 100);
}
