//! `tarun status`: every node's state and why, from the records alone (no weights are read).

use std::collections::BTreeSet;
use std::process::ExitCode;

use tarun_core::plan::{self, State};
use tarun_core::store::{NodeRecord, Store};

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
        return explain(&statuses[i]);
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
                // The record a stale node's causes compare against.
                if let Some(rec) = against(s) {
                    node["compared-with"] = serde_json::json!({
                        "key": rec.key.to_string(), "run": rec.run_id, "started": rec.started,
                    });
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
        let mut causes = s.causes.join("; ");
        if let Some(rec) = against(s) {
            causes.push_str(&format!(
                " (compared with the record of run {})",
                rec.run_id
            ));
        }
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

/// The earlier record a stale node's causes were computed against, when it is not the current
/// key's own (that one needs no naming: the causes are then `forced` or a missing output).
fn against(s: &plan::NodeStatus) -> Option<&NodeRecord> {
    s.compared
        .as_ref()
        .filter(|rec| s.key.is_none_or(|k| k != rec.key))
}

/// Prints what a node's key is made of: the current key's record when there is one, else the
/// record its causes compare against, so a surprise can be traced.
fn explain(status: &plan::NodeStatus) -> Result<ExitCode> {
    outln!("{} ({}): {}", status.id, status.kind, status.state.as_str())?;
    for c in &status.causes {
        outln!("  because {c}")?;
    }
    if let Some(key) = &status.key {
        outln!("current key: {key}")?;
    }
    let (what, rec) = match (&status.record, &status.compared) {
        (Some(rec), _) => ("record of the current key", rec),
        (None, Some(rec)) if status.key == Some(rec.key) => ("record of the current key", rec),
        (None, Some(rec)) => ("compared with the record", rec),
        (None, None) => {
            outln!("no record yet")?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    outln!(
        "{what}: {} ({} in run {}, {})\n{}",
        rec.key,
        rec.device,
        rec.run_id,
        rec.started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        serde_json::to_string_pretty(&rec.key_material).expect("json")
    )?;
    Ok(ExitCode::SUCCESS)
}
