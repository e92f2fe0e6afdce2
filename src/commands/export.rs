//! `tarun export`: copy the outputs of fresh nodes out of the content-addressed store, under
//! their file names, so that a checkpoint or a report can be used elsewhere.

use std::collections::BTreeSet;
use std::process::ExitCode;

use tarun_core::plan::{self, State};
use tarun_core::store::Store;

use super::{Result, load, select_nodes};
use crate::cli::ExportArgs;
use crate::errors::ExpectedError;
use crate::kinds;
use crate::output::outln;

pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let (study, graph) = load(&args.manifest)?;
    let store = Store::open_read_only(args.store.store)?;
    let selected = select_nodes(&study, &args.nodes, "export")?;
    let runner = kinds::StudyRunner;
    let data = kinds::planning_digest(&study, &store)?;
    let statuses = plan::status(&study, &graph, &store, &runner, &data, &BTreeSet::new())?;
    let not_fresh: Vec<String> = selected
        .iter()
        .filter(|&&i| statuses[i].state != State::Fresh)
        .map(|&i| format!("`{}` is {}", statuses[i].id, statuses[i].state.as_str()))
        .collect();
    if !not_fresh.is_empty() {
        return Err(ExpectedError::Usage(format!(
            "only fresh nodes can be exported ({}); run the study first",
            not_fresh.join(", ")
        )));
    }
    // The listing is informational, the copies are the work: a closed or failing stdout
    // (`tarun export M ... | head -1`) ends the listing, never the copying. Once every file is
    // copied, a closed pipe exits 0 quietly and any other write error is reported.
    let mut listing: Result<()> = Ok(());
    // With `--json`, the files copied, printed once all are.
    let mut copied = Vec::new();
    for &i in &selected {
        let record = statuses[i]
            .record
            .as_ref()
            .expect("fresh nodes have records");
        let dir = args.to.join(&record.id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!(
                "creating `{dir}`: {e} (export stopped at `{}`; the nodes before it are copied)",
                record.id
            )
        })?;
        for (name, out) in &record.outputs {
            let dest = dir.join(name);
            std::fs::copy(store.object_path(&out.digest), &dest).map_err(|e| {
                anyhow::anyhow!(
                    "copying to `{dest}`: {e} (export stopped at `{name}` of `{}`; the files \
                     before it are copied)",
                    record.id
                )
            })?;
            if args.json {
                copied.push(serde_json::json!({
                    "node": record.id,
                    "name": name,
                    "digest": out.digest.to_string(),
                    "size": out.size,
                    "path": dest,
                }));
            } else if listing.is_ok() {
                listing = outln!("{dest}");
            }
        }
    }
    if args.json {
        let doc = serde_json::json!({ "to": args.to, "files": copied });
        listing = outln!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    }
    match listing {
        Ok(()) | Err(ExpectedError::OutputClosed) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e),
    }
}
