//! The recipe an `ablate` node writes (`ablation.json`) and whoever loads its model applies: the
//! base and expert checkpoints by content digest, with each task vector's coefficients.
//!
//! Its own module so that `ablate` (which writes it) and `model` (which applies it) both use it
//! without importing each other. Its JSON form is part of every `ablate` node's output.

use serde::{Deserialize, Serialize};
use tarun_core::digest::ObjectDigest;
use tarun_core::manifest::params::Quantile;

/// An unmaterialised model: base + the listed task vectors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct AblationRecipe {
    pub base: ObjectDigest,
    pub base_node: String,
    pub vectors: Vec<RecipeVector>,
    pub quantile: Quantile,
    /// Seeds the quantile sampling of `seed-sample`.
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct RecipeVector {
    pub expert: ObjectDigest,
    pub expert_node: String,
    pub alpha: f64,
    pub rho: f64,
}
