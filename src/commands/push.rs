//! `tarun push`: uploads every fresh node's record and objects to the remote cache, objects
//! first and each record only if absent (see `tarun_core::remote`).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;

use tarun_core::graph::Graph;
use tarun_core::manifest::Study;
use tarun_core::plan;
use tarun_core::remote::{RemoteCache, RemoteConfig};
use tarun_core::store::Store;

use super::{Result, load, select_nodes};
use crate::cli::{PushArgs, RemoteArgs};
use crate::errors::{ExpectedError, NODE_FAILED};
use crate::kinds;
use crate::output::outln;

/// The remote cache a command uses (`--remote`, `TARUN_REMOTE`, then `[cache] remote`), opened;
/// `None` when none is configured.
pub(super) fn open_remote(
    study: &Study,
    args: &RemoteArgs,
    no_push: bool,
) -> Result<Option<Arc<RemoteCache>>> {
    let Some(config) = RemoteConfig::resolve(study, args.remote.as_deref(), no_push) else {
        return Ok(None);
    };
    let remote = RemoteCache::open(&config).map_err(|e| ExpectedError::Usage(e.to_string()))?;
    tracing::debug!(
        "remote cache {}{}",
        remote.shown(),
        if remote.push { ", pushing" } else { "" }
    );
    Ok(Some(Arc::new(remote)))
}

/// The remote a `push`/`pull` needs: an error naming the three ways to give one when none is.
pub(super) fn required_remote(study: &Study, args: &RemoteArgs) -> Result<Arc<RemoteCache>> {
    open_remote(study, args, false)?.ok_or_else(|| {
        ExpectedError::Usage(
            "no remote cache: pass --remote URL, set TARUN_REMOTE, or add `[cache] remote = \
             \"...\"` to the manifest (docs/remote.md)"
                .into(),
        )
    })
}

/// The nodes `--target` selects with their ancestors, or every node.
pub(super) fn selection(
    study: &Study,
    graph: &Graph,
    targets: &[String],
) -> Result<BTreeSet<usize>> {
    if targets.is_empty() {
        return Ok((0..study.nodes.len()).collect());
    }
    let t = select_nodes(study, targets, "--target")?;
    Ok(graph.with_ancestors(t))
}

pub fn push(args: PushArgs) -> Result<ExitCode> {
    let (study, graph) = load(&args.manifest)?;
    let remote = required_remote(&study, &args.remote)?;
    let store = Store::open_read_only(args.store.store)?;
    let selected = selection(&study, &graph, &args.targets)?;
    let data = kinds::planning_digest(&study, &store)?;
    let statuses = plan::status(
        &study,
        &graph,
        &store,
        &kinds::StudyRunner,
        &data,
        &BTreeSet::new(),
    )?;
    let (mut nodes, mut already, mut objects, mut bytes, mut failed, mut not_fresh) =
        (0, 0, 0, 0u64, 0, 0);
    for &i in graph.topo_order() {
        if !selected.contains(&i) {
            continue;
        }
        let Some(record) = &statuses[i].record else {
            not_fresh += 1;
            continue;
        };
        match remote.push_record(&store, record) {
            Ok(p) if p.record => {
                nodes += 1;
                objects += p.objects;
                bytes += p.bytes;
            }
            Ok(p) => {
                already += 1;
                objects += p.objects;
                bytes += p.bytes;
            }
            Err(e) => {
                eprintln!("warning: could not push `{}`: {e}", record.id);
                failed += 1;
            }
        }
    }
    let mut line = format!(
        "pushed {nodes} node{} ({objects} object{}, {bytes} bytes) to {}",
        if nodes == 1 { "" } else { "s" },
        if objects == 1 { "" } else { "s" },
        remote.shown()
    );
    if already > 0 {
        line.push_str(&format!("; {already} already there"));
    }
    if not_fresh > 0 {
        line.push_str(&format!("; {not_fresh} not fresh here, not pushed"));
    }
    if failed > 0 {
        line.push_str(&format!("; {failed} failed"));
    }
    outln!("{line}")?;
    Ok(if failed > 0 {
        ExitCode::from(NODE_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
