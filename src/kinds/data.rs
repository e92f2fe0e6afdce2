//! The study's data as node kinds see it: the `[data]` table turned into splits (cached per
//! process), batches, logits, and the data digest that enters every key.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use candle_core::{Device, Tensor};
use tarun_core::digest::{DataDigest, Key, digest_json};
use tarun_core::engine::{Job, JobError};
use tarun_core::manifest::Study;
use tarun_core::store::Store;
use tarun_ml::data::{self as mldata, DataSpec, Source};
pub use tarun_ml::data::{Dataset, Splits};
use tarun_ml::models::Network;

use super::failed;
use crate::errors::ExpectedError;

/// Where `tarun data fetch cifar10` puts the data, and where `source = "cifar10"` looks by
/// default (relative to the working directory; `path` in `[data]` overrides it).
pub const DEFAULT_CIFAR_DIR: &str = "data/cifar-10-batches-bin";

static SPLITS: LazyLock<Mutex<HashMap<String, Arc<Splits>>>> = LazyLock::new(Default::default);

/// Translates the manifest's `[data]` table.
pub fn spec(study: &Study) -> Result<DataSpec, String> {
    let d = &study.data;
    let int = |k: &str| d.get(k).and_then(serde_json::Value::as_u64);
    let source = match d
        .get("source")
        .and_then(|v| v.as_str())
        .unwrap_or("synthetic")
    {
        "synthetic" => Source::Synthetic,
        "cifar10" => {
            let dir = match d.get("path").and_then(|v| v.as_str()) {
                Some(p) => study.path.parent().map_or_else(|| p.into(), |m| m.join(p)),
                None => DEFAULT_CIFAR_DIR.into(),
            };
            Source::Cifar10 {
                dir: dir.into_std_path_buf(),
            }
        }
        other => {
            return Err(format!(
                "unknown data source `{other}` (synthetic or cifar10)"
            ));
        }
    };
    Ok(DataSpec {
        source,
        train_per_class: int("train-per-class").map(|v| v as usize),
        test_per_class: int("test-per-class").map(|v| v as usize),
        validation_per_class: int("validation-per-class").unwrap_or(0) as usize,
        seed: int("synthetic-seed").unwrap_or(study.seed),
    })
}

/// The data digest: what the data is, by content. Synthetic data is defined by its generator
/// version and parameters; files are hashed.
pub fn data_digest(study: &Study, _store: &Store) -> Result<DataDigest, ExpectedError> {
    let spec = spec(study).map_err(ExpectedError::Usage)?;
    let content =
        mldata::content_digest(&spec).map_err(|e| ExpectedError::Other(anyhow::anyhow!("{e}")))?;
    let material = serde_json::json!({ "data": study.data, "content": content });
    Ok(digest_json::<Key, _>(&material).to_hex().into())
}

/// [`data_digest`] for commands that only plan (`status`, `run --dry-run`): when the data is not
/// on this machine yet (a GPU-scale study listed on a laptop), says so on stderr and plans with
/// a digest no record has, so that every node shows as due instead of failing.
pub fn planning_digest(study: &Study, store: &Store) -> Result<DataDigest, ExpectedError> {
    match data_digest(study, store) {
        Err(ExpectedError::Other(e)) => {
            eprintln!("note: {e}\nnote: the data is not available, so every node is shown as due");
            Ok(DataDigest::new("data-unavailable"))
        }
        other => other,
    }
}

/// The study's splits, loaded once per process.
pub fn splits(job: &Job) -> Result<Arc<Splits>, JobError> {
    let key = serde_json::to_string(&job.study.data).map_err(failed)?;
    if let Some(s) = SPLITS.lock().expect("not poisoned").get(&key) {
        return Ok(s.clone());
    }
    let spec = spec(&job.study).map_err(failed)?;
    let splits = Arc::new(mldata::load(&spec).map_err(|e| failed(format!("{e}")))?);
    SPLITS
        .lock()
        .expect("not poisoned")
        .insert(key, splits.clone());
    Ok(splits)
}

pub fn open_device(job: &Job) -> Result<Device, JobError> {
    tarun_ml::device::open(&job.device).map_err(failed)
}

/// Batches as `(images, labels)` results, the shape `train::fit` takes.
pub fn batches(
    ds: Arc<Dataset>,
    batch_size: usize,
    shuffle: bool,
    augment: bool,
    seed: u64,
    epoch: u64,
    device: &Device,
) -> impl Iterator<Item = Result<(Tensor, Tensor), JobError>> + use<> {
    mldata::batches(ds, batch_size, shuffle, augment, seed, epoch, device).map(|b| {
        b.map(|b| (b.images, b.labels))
            .map_err(|e| failed(format!("{e}")))
    })
}

/// Eval-mode logits of every image, in dataset order, without augmentation.
pub fn eval_logits(
    net: &Network,
    ds: &Arc<Dataset>,
    device: &Device,
) -> Result<(Vec<f32>, Vec<u32>), JobError> {
    tarun_ml::train::evaluate_logits(net, batches(ds.clone(), 256, false, false, 0, 0, device))
        .map_err(|e| failed(format!("{e}")))
}

/// Eval-mode logits of every image, with the training augmentation when `augmented` (the seed's
/// MIA members arrive augmented and shuffled; order does not matter to an AUC).
pub fn logits_with(
    net: &Network,
    ds: &Arc<Dataset>,
    augmented: bool,
    seed: u64,
    device: &Device,
) -> Result<Vec<f32>, JobError> {
    let it = batches(ds.clone(), 256, augmented, augmented, seed, 0, device);
    tarun_ml::train::evaluate_logits(net, it)
        .map(|(l, _)| l)
        .map_err(|e| failed(format!("{e}")))
}
