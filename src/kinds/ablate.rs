//! `ablate`: task arithmetic, theta = base + sum_i alpha_i * mask(tau_i, rho_i) (docs/study.md §4).
//!
//! tau_i = expert_i - base over the learnable tensors; BN running statistics and counters come
//! from the base, as in the seed. alpha and rho are given, or read from a `select` node's choice
//! (`from-select`), so a grid search's result flows into this node's key without copying numbers.
//!
//! The output is a recipe, `ablation.json`, naming the base and expert checkpoints by content
//! digest with the coefficients: whoever loads the model applies the surgery (well under a
//! second), so a 120-point grid over VGG-11-BN does not store 120 copies of 515 MB. The node still
//! performs the surgery once, to validate it and to time it for the compute-savings figure. With
//! `materialize = true` it also writes the weights as `model.safetensors`.

use std::time::Instant;

use candle_core::Device;
use tarun_core::engine::{Job, JobError, JobOutput};
use tarun_core::manifest::params::{AblateParams, Vector};
use tarun_ml::checkpoint;

use super::model::{ABLATION_FILE, MODEL_FILE, apply_recipe, checkpoint_digest};
use super::recipe::{AblationRecipe, RecipeVector};
use super::select::Selection;
use super::{failed, params, write_json};

pub const VERSION: u32 = 1;

pub fn run(job: &Job) -> Result<JobOutput, JobError> {
    let p: AblateParams = params(job)?;
    let input = |id: &str| {
        job.input(id)
            .ok_or_else(|| failed(format!("input `{id}` missing")))
    };
    let mut vectors = vec![];
    for v in &p.vectors {
        let (alpha, rho) = coefficients(job, v)?;
        let expert = checkpoint_digest(input(&v.expert)?)?;
        vectors.push(RecipeVector {
            expert,
            expert_node: v.expert.clone(),
            alpha,
            rho,
        });
    }
    let recipe = AblationRecipe {
        base: checkpoint_digest(input(&p.base)?)?,
        base_node: p.base.clone(),
        vectors,
        quantile: p.quantile,
        seed: job.study.seed,
    };
    let t0 = Instant::now();
    let net = apply_recipe(job, &recipe, &Device::Cpu)?;
    let seconds = t0.elapsed().as_secs_f64();
    write_json(job, ABLATION_FILE, &recipe)?;
    if p.materialize {
        let meta = std::collections::BTreeMap::from([
            ("node".to_owned(), job.node.id.clone()),
            (
                "surgery".to_owned(),
                serde_json::to_string(&recipe).map_err(failed)?,
            ),
        ]);
        checkpoint::save(&net, job.out_dir.join(MODEL_FILE).as_std_path(), &meta)
            .map_err(|e| failed(format!("{e:#}")))?;
    }
    let summary = serde_json::json!({
        "arch": net.arch().name(),
        "width": net.width(),
        "vectors": recipe.vectors.iter().map(|v| serde_json::json!({
            "expert": v.expert_node, "alpha": v.alpha, "rho": v.rho,
        })).collect::<Vec<_>>(),
        "surgery-seconds": seconds,
    });
    Ok(JobOutput {
        summary,
        log: vec![],
    })
}

/// alpha and rho as written, or as chosen by the referenced `select` node.
fn coefficients(job: &Job, v: &Vector) -> Result<(f64, f64), JobError> {
    if let (Some(alpha), Some(rho)) = (v.alpha, v.rho) {
        return Ok((alpha, rho));
    }
    let id = v
        .from_select
        .as_deref()
        .ok_or_else(|| failed("a vector needs alpha and rho, or from-select"))?;
    let input = job
        .input(id)
        .ok_or_else(|| failed(format!("input `{id}` missing")))?;
    let path = input
        .files
        .get("selection.json")
        .ok_or_else(|| failed(format!("`{id}` has no selection")))?;
    let text =
        std::fs::read_to_string(path).map_err(|e| failed(format!("reading `{path}`: {e}")))?;
    let sel: Selection =
        serde_json::from_str(&text).map_err(|e| failed(format!("`{path}`: {e}")))?;
    let axis = |name: &str| {
        sel.chosen
            .axes
            .get(name)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| {
                failed(format!(
                    "`{id}` chose `{}`, which has no numeric `{name}` axis",
                    sel.chosen.id
                ))
            })
    };
    let alpha = match v.alpha {
        Some(a) => a,
        None => axis("alpha")?,
    };
    let rho = match v.rho {
        Some(r) => r,
        None => axis("rho")?,
    };
    Ok((alpha, rho))
}
