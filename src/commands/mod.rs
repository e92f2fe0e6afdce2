//! One module per subcommand; this one dispatches and holds what they share.

mod bench;
mod bench_jobs;
mod compare;
mod completions;
mod dag;
mod data;
mod devices;
mod exec_node;
mod export;
mod gc;
mod log;
mod man;
mod pull;
mod push;
mod results;
mod run;
mod runs;
mod status;
mod verify;
mod warnings;

use std::collections::BTreeSet;
use std::process::ExitCode;

use tarun_core::graph::Graph;
use tarun_core::manifest::Study;
use tarun_core::store::{LockMode, Store, StoreLock};

use crate::cli::{Cli, Command, ManifestArgs};
use crate::errors::ExpectedError;

pub type Result<T, E = ExpectedError> = std::result::Result<T, E>;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Status(args) => status::status(args),
        Command::Dag(args) => dag::dag(args),
        Command::Gc(args) => gc::gc(args),
        Command::Export(args) => export::export(args),
        Command::Results(args) => results::results(args),
        Command::Compare(args) => compare::compare(args),
        Command::Verify(args) => verify::verify(args),
        Command::Push(args) => push::push(args),
        Command::Pull(args) => pull::pull(args),
        Command::Log(args) => log::log(args),
        Command::Data(cmd) => data::data(cmd),
        Command::Bench(args) => bench::bench(args),
        Command::Devices(args) => devices::devices(&args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => man::man(&args),
        Command::ExecNode(args) => exec_node::exec_node(args),
    }
}

/// Loads and validates a manifest (reporting every mistake) and builds its graph.
pub fn load(args: &ManifestArgs) -> Result<(Study, Graph)> {
    let study = tarun_core::manifest::load(&args.manifest, &args.overrides)?;
    let graph = Graph::new(&study);
    Ok((study, graph))
}

/// Resolves `--target`/`--force` names: an exact node id, or a family name for all its members.
pub fn select_nodes(study: &Study, names: &[String], flag: &str) -> Result<BTreeSet<usize>> {
    let mut out = BTreeSet::new();
    for name in names {
        let before = out.len();
        for (i, node) in study.nodes.iter().enumerate() {
            if node.id == *name || node.name == *name {
                out.insert(i);
            }
        }
        if out.len() == before && !study.nodes.iter().any(|n| n.id == *name || n.name == *name) {
            let mut near: Vec<&str> = study
                .nodes
                .iter()
                .map(|n| n.id.as_str())
                .filter(|id| {
                    id.contains(name.as_str()) || name.contains(id.split('[').next().unwrap_or(""))
                })
                .take(5)
                .collect();
            near.dedup();
            let hint = if near.is_empty() {
                String::new()
            } else {
                format!(" (close: {})", near.join(", "))
            };
            return Err(ExpectedError::Usage(format!(
                "{flag} `{name}`: no such node{hint}"
            )));
        }
    }
    Ok(out)
}

/// A word as a shell reads it back: as it is when it holds only plain characters (`=` and `,`
/// included, so `--set a.b=1` stays readable), else single-quoted.
pub(crate) fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=,:@+%".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// Takes the store lock in `mode` as `holder` (shared for runs and pulls, exclusive for `gc` and
/// `verify --repair`, which delete), saying on stderr whom it waits for when another holds it.
pub(crate) fn lock_store(store: &Store, mode: LockMode, holder: &str) -> Result<StoreLock> {
    Ok(store.lock(mode, holder, |who| {
        eprintln!("waiting for the store lock, held by {who}");
    })?)
}
