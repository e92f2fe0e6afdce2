//! `tarun status`: every node's state and why, from the records alone (no weights are read).

use std::collections::BTreeSet;
use std::process::ExitCode;

use tarun_core::plan::{self, State};
use tarun_core::store::Store;

use super::{Result, load, select_nodes};
use crate::cli::StatusArgs;
use crate::kinds;
use crate::output::outln;

pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let (study, graph) = load(&args.manifest)?;
    let store = Store::open_read_only(args.store.store)?;
    let runner = kinds::StudyRunner;
    let data = kinds::planning_digest(&study, &store)?;
    let statuses = plan::status(&study, &graph, &store, &runner, &data, &BTreeSet::new())?;
    if let Some(id) = &args.explain {
        let i = *select_nodes(&study, std::slice::from_ref(id), "--explain")?
            .first()
            .expect("one");
        return explain(&study, &store, &statuses[i]);
    }
    if args.json {
        let nodes: Vec<_> = statuses
            .iter()
            .map(|s| {
                let mut node = serde_json::json!({
                    "id": s.id, "kind": s.kind, "state": s.state, "causes": s.causes,
                });
                // A fresh node's outputs, name -> content digest: what a script compares.
                if let Some(record) = &s.record {
                    let outputs: serde_json::Map<_, _> = record
                        .outputs
                        .iter()
                        .map(|(name, o)| (name.clone(), o.digest.to_string().into()))
                        .collect();
                    node["outputs"] = outputs.into();
                }
                node
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "nodes": nodes })).expect("json")
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = statuses.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for s in &statuses {
        let causes = s.causes.join("; ");
        outln!("{:<8} {:<width$}  {causes}", s.state.as_str(), s.id)?;
    }
    let count = |st: State| statuses.iter().filter(|s| s.state == st).count();
    outln!(
        "\n{} nodes: {} fresh, {} stale, {} missing, {} blocked",
        statuses.len(),
        count(State::Fresh),
        count(State::Stale),
        count(State::Missing),
        count(State::Blocked)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what a node's key is made of, and its last record's, so a surprise can be traced.
fn explain(
    study: &tarun_core::manifest::Study,
    store: &Store,
    status: &plan::NodeStatus,
) -> Result<ExitCode> {
    outln!("{} ({}): {}", status.id, status.kind, status.state.as_str())?;
    for c in &status.causes {
        outln!("  because {c}")?;
    }
    if let Some(key) = &status.key {
        outln!("current key: {key}")?;
    }
    match store.head(&study.name, &status.id)? {
        Some(head) => outln!(
            "last record: {} ({} in run {})\n{}",
            head.key,
            head.device,
            head.run_id,
            serde_json::to_string_pretty(&head.key_material).expect("json")
        )?,
        None => outln!("no record yet")?,
    }
    Ok(ExitCode::SUCCESS)
}
