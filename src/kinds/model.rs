//! Loading the model an upstream node produced: a checkpoint, or an ablation recipe applied on
//! the fly.

use candle_core::Device;
use tarun_core::digest::ObjectDigest;
use tarun_core::engine::{Job, JobError, JobInput};
use tarun_core::manifest::params::Quantile;
use tarun_ml::checkpoint;
use tarun_ml::models::Network;
use tarun_ml::surgery::{self, BufferPolicy, QuantileMode, Term};

use super::failed;
use super::recipe::AblationRecipe;

pub const MODEL_FILE: &str = "model.safetensors";
pub const ABLATION_FILE: &str = "ablation.json";

/// The model of an upstream `train`, `expert` or `ablate` node, on `device`.
pub fn load_model(job: &Job, input: &JobInput, device: &Device) -> Result<Network, JobError> {
    if let Some(path) = input.files.get(MODEL_FILE) {
        return load_checkpoint(path.as_std_path(), device);
    }
    if let Some(path) = input.files.get(ABLATION_FILE) {
        let text =
            std::fs::read_to_string(path).map_err(|e| failed(format!("reading `{path}`: {e}")))?;
        let recipe: AblationRecipe =
            serde_json::from_str(&text).map_err(|e| failed(format!("`{path}`: {e}")))?;
        return apply_recipe(job, &recipe, device);
    }
    Err(failed(format!("`{}` produced no model", input.id)))
}

/// The digest of an upstream node's checkpoint (which an ablation recipe refers to).
pub fn checkpoint_digest(input: &JobInput) -> Result<ObjectDigest, JobError> {
    input
        .record
        .outputs
        .get(MODEL_FILE)
        .map(|o| o.digest)
        .ok_or_else(|| {
            failed(format!(
                "`{}` has no {MODEL_FILE}; task vectors need trained checkpoints",
                input.id
            ))
        })
}

fn load_checkpoint(path: &std::path::Path, device: &Device) -> Result<Network, JobError> {
    checkpoint::load(path, device)
        .map(|(net, _)| net)
        .map_err(|e| failed(format!("{e:#}")))
}

/// Applies an ablation recipe: the surgery on the CPU, then the result moved to `device`.
pub fn apply_recipe(
    job: &Job,
    recipe: &AblationRecipe,
    device: &Device,
) -> Result<Network, JobError> {
    let object = |d: &ObjectDigest, node: &str| {
        job.object_path(d).ok_or_else(|| {
            failed(format!(
                "checkpoint of `{node}` ({}) is missing or corrupt (see this node's log); run \
                 again to recompute `{node}`",
                d.short()
            ))
        })
    };
    let base_net = load_checkpoint(
        object(&recipe.base, &recipe.base_node)?.as_std_path(),
        &Device::Cpu,
    )?;
    let base = base_net.state_dict().map_err(failed)?;
    let mut vectors = vec![];
    for v in &recipe.vectors {
        let path = object(&v.expert, &v.expert_node)?;
        let expert = load_checkpoint(path.as_std_path(), &Device::Cpu)?
            .state_dict()
            .map_err(failed)?;
        vectors.push((
            surgery::task_vector(&base, &expert).map_err(failed)?,
            v.alpha,
            v.rho,
        ));
    }
    let terms: Vec<Term<'_>> = vectors
        .iter()
        .map(|(vector, alpha, rho)| Term {
            vector,
            alpha: *alpha,
            rho: *rho,
        })
        .collect();
    let mode = match recipe.quantile {
        Quantile::Exact => QuantileMode::Exact,
        Quantile::SeedSample => QuantileMode::seed_sample(recipe.seed),
    };
    let state = surgery::apply(&base, &terms, mode, BufferPolicy::FromBase).map_err(failed)?;
    Network::from_state_dict(
        base_net.arch(),
        base_net.width(),
        base_net.num_classes(),
        &state,
        device,
    )
    .map_err(failed)
}
