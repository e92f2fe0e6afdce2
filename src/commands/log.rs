//! `tarun log`: list past runs from their journals.

use std::process::ExitCode;

use tarun_core::store::{Outcome, Store};

use super::Result;
use crate::cli::LogArgs;
use crate::output::outln;

pub fn log(args: LogArgs) -> Result<ExitCode> {
    let store = Store::open_read_only(args.store.store)?;
    let journals = store.journals()?;
    if args.json {
        let json = serde_json::json!({ "runs": journals });
        outln!("{}", serde_json::to_string_pretty(&json).expect("json"))?;
        return Ok(ExitCode::SUCCESS);
    }
    if journals.is_empty() {
        outln!("no runs recorded in `{}`", store.root())?;
    }
    let detail_from = journals.len().saturating_sub(args.detail.unwrap_or(0));
    for (n, j) in journals.iter().enumerate() {
        let interrupted = j
            .interrupted
            .as_ref()
            .map(|s| format!("  interrupted by {s}"))
            .unwrap_or_default();
        outln!(
            "{}  {}  {}  {:.1}s  ran {}, cached {}, failed {}, skipped {}, cancelled {}{interrupted}",
            j.run_id,
            j.started.strftime("%Y-%m-%d %H:%M:%S"),
            j.manifest,
            j.seconds,
            j.count(Outcome::Ran),
            j.count(Outcome::Cached),
            j.count(Outcome::Failed),
            j.count(Outcome::Skipped),
            j.count(Outcome::Cancelled),
        )?;
        if n >= detail_from {
            for e in &j.entries {
                let device = e.device.as_deref().unwrap_or("-");
                let err = e
                    .error
                    .as_deref()
                    .map(|m| format!("  ({m})"))
                    .unwrap_or_default();
                outln!(
                    "    {:<9} {:>8.2}s  {:<8} {}{err}",
                    e.outcome.as_str(),
                    e.seconds,
                    device,
                    e.id
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
