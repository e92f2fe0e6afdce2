//! `tarun pull`: downloads from the remote cache the nodes this store lacks: each key computed
//! from its inputs' records (local or just pulled), each object checked against its digest
//! before it enters the store, each record committed locally after its objects.

use std::process::ExitCode;

use tarun_core::remote::{self, Found};
use tarun_core::store::{LockMode, Store};

use super::Result;
use super::push::{required_remote, selection};
use super::{load, lock_store};
use crate::cli::PushArgs;
use crate::kinds;
use crate::output::outln;

pub fn pull(args: PushArgs) -> Result<ExitCode> {
    let (study, graph) = load(&args.manifest)?;
    let remote = required_remote(&study, &args.remote)?;
    let store = Store::open(args.store.store)?;
    // Shared, as a run takes it: pulls and runs go on side by side (a record is committed after
    // its objects either way), while `gc` and `verify --repair`, which delete, wait.
    let holder = format!(
        "pull of `{}` (pid {})",
        args.manifest.manifest,
        std::process::id()
    );
    let _lock = lock_store(&store, LockMode::Shared, &holder)?;
    let selected = selection(&study, &graph, &args.targets)?;
    let data = kinds::planning_digest(&study, &store)?;
    let found = remote::resolve(
        &remote,
        &study,
        &graph,
        &store,
        &kinds::StudyRunner,
        &data,
        &selected,
        true,
    );
    let count = |f: Found| found.iter().flatten().filter(|(_, w)| *w == f).count();
    let (pulled, here) = (count(Found::Remote), count(Found::Local));
    let missing = selected.len() - pulled - here;
    outln!(
        "pulled {pulled} node{} from {}; {here} already here; {missing} neither here nor there",
        if pulled == 1 { "" } else { "s" },
        remote.shown()
    )?;
    Ok(ExitCode::SUCCESS)
}
