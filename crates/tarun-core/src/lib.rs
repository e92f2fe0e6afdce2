//! tarun-core: the orchestrator half of tarun.
//!
//! `manifest` reads and validates a study; `graph` turns it into a DAG; `digest` and `store` keep
//! content-addressed artifacts and node records; `plan` decides what is fresh and what must run;
//! `engine` runs the rest concurrently through the [`engine::Runner`] trait. Nothing here knows
//! about tensors: the node kinds are implemented by the binary.

pub mod digest;
pub mod engine;
pub mod fault;
pub mod graph;
pub mod manifest;
pub mod memory;
pub mod plan;
pub mod remote;
pub mod store;
