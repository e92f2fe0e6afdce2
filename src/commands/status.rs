//! `tarun status`: each node's state and why, from the records alone (no weights are read). The
//! text lists what is not fresh (`--all`: every node; `--state`: the states asked for) and a
//! one-line summary; `--check` exits 1 when a run would run anything.

use std::collections::BTreeSet;
use std::process::ExitCode;

use tarun_core::plan::{self, State};
use tarun_core::remote::{self, Found};
use tarun_core::store::{NodeRecord, Store};

use super::{Result, load, select_nodes};
use crate::cli::{NodeState, StatusArgs};
use crate::output::outln;
use crate::{errors, kinds};

pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let (study, graph) = load(&args.manifest)?;
    let store = Store::open_read_only(args.store.store)?;
    let runner = kinds::StudyRunner;
    let data = kinds::planning_digest(&study, &store)?;
    let statuses = plan::status(&study, &graph, &store, &runner, &data, &BTreeSet::new())?;
    // With a remote cache, the nodes not fresh here whose current key it has (records only:
    // nothing is downloaded). Without one, nothing more is read.
    let mut on_remote: BTreeSet<&str> = BTreeSet::new();
    let mut remote_shown = String::new();
    if statuses.iter().any(|s| s.state != State::Fresh)
        && let Some(remote) = super::push::open_remote(&study, &args.remote, true)?
    {
        let all = (0..study.nodes.len()).collect();
        let found = remote::resolve(&remote, &study, &graph, &store, &runner, &data, &all, false);
        for (i, f) in found.iter().enumerate() {
            if matches!(f, Some((_, Found::Remote))) && statuses[i].state != State::Fresh {
                on_remote.insert(study.nodes[i].id.as_str());
            }
        }
        remote_shown = remote.shown().to_owned();
    }
    // `--check`: whether a run would run anything, whatever is listed.
    let code = if args.check && statuses.iter().any(|s| s.state != State::Fresh) {
        ExitCode::from(errors::WOULD_RUN)
    } else {
        ExitCode::SUCCESS
    };
    if let Some(id) = &args.explain {
        let i = *select_nodes(&study, std::slice::from_ref(id), "--explain")?
            .first()
            .expect("one");
        explain(&statuses[i])?;
        return Ok(code);
    }
    // What is listed: the states asked for; else every node (`--all`, and JSON, which scripts
    // read whole); else what is not fresh, the part worth reading.
    let wanted: Vec<State> = args.states.iter().map(|&s| state(s)).collect();
    let listed: Vec<&plan::NodeStatus> = statuses
        .iter()
        .filter(|s| {
            if !wanted.is_empty() {
                wanted.contains(&s.state)
            } else {
                args.all || args.json || s.state != State::Fresh
            }
        })
        .collect();
    if args.json {
        let nodes: Vec<_> = listed
            .iter()
            .map(|s| {
                let mut node = serde_json::json!({
                    "id": s.id, "kind": s.kind, "state": s.state, "causes": s.causes,
                });
                if on_remote.contains(s.id.as_str()) {
                    node["remote"] = true.into();
                }
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
        return Ok(code);
    }
    let width = listed.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for s in &listed {
        let mut causes = s.causes.join("; ");
        if let Some(rec) = against(s) {
            causes.push_str(&format!(
                " (compared with the record of run {})",
                rec.run_id
            ));
        }
        // Padded columns, but no trailing spaces where a node has no causes.
        let state = if on_remote.contains(s.id.as_str()) {
            format!("{} (on remote)", s.state.as_str())
        } else {
            s.state.as_str().to_owned()
        };
        let line = format!("{state:<8} {:<width$}  {causes}", s.id);
        outln!("{}", line.trim_end())?;
    }
    if !listed.is_empty() {
        outln!()?;
    }
    outln!("{}", summary(&statuses))?;
    if !on_remote.is_empty() {
        let n = on_remote.len();
        outln!(
            "{n} of them on the remote cache {remote_shown} (`tarun pull` downloads {})",
            if n == 1 { "it" } else { "them" }
        )?;
    }
    Ok(code)
}

fn state(s: NodeState) -> State {
    match s {
        NodeState::Fresh => State::Fresh,
        NodeState::Stale => State::Stale,
        NodeState::Missing => State::Missing,
        NodeState::Blocked => State::Blocked,
    }
}

/// One line for the whole study: `223 nodes: 200 fresh, 20 stale, 3 missing` (states with no
/// node left out), or `223 nodes: all fresh`.
fn summary(statuses: &[plan::NodeStatus]) -> String {
    let n = statuses.len();
    let nodes = if n == 1 { "node" } else { "nodes" };
    let count = |st: State| statuses.iter().filter(|s| s.state == st).count();
    if n > 0 && count(State::Fresh) == n {
        return format!("{n} {nodes}: all fresh");
    }
    let counts: Vec<String> = [State::Fresh, State::Stale, State::Missing, State::Blocked]
        .into_iter()
        .map(|st| (count(st), st))
        .filter(|&(c, _)| c > 0)
        .map(|(c, st)| format!("{c} {}", st.as_str()))
        .collect();
    if counts.is_empty() {
        format!("{n} {nodes}")
    } else {
        format!("{n} {nodes}: {}", counts.join(", "))
    }
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
fn explain(status: &plan::NodeStatus) -> Result<()> {
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
            return Ok(());
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
    Ok(())
}
