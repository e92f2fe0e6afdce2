//! `tarun log`: past runs from their journals, and one run's timeline (`--trace RUN`).

use std::process::ExitCode;

use serde_json::json;
use tarun_core::store::{JournalEntry, Outcome, RunJournal, Store};

use super::runs::find_run;
use super::{Result, shell_word};
use crate::cli::LogArgs;
use crate::errors::ExpectedError;
use crate::output::outln;

pub fn log(args: LogArgs) -> Result<ExitCode> {
    let store = Store::open_read_only(args.store.store)?;
    let journals = store.journals()?;
    if let Some(given) = &args.trace {
        let run = named_run(&journals, given, &store)?;
        return if args.json {
            print_trace_json(run)
        } else {
            print_trace_tsv(run)
        };
    }
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
        print_run(j)?;
        if n >= detail_from {
            for e in &j.entries {
                print_entry(e)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The run `given` names (see [`find_run`]), or a usage error saying there is none.
fn named_run<'a>(journals: &'a [RunJournal], given: &str, store: &Store) -> Result<&'a RunJournal> {
    find_run(journals, given)?.ok_or_else(|| {
        let what = if given == "last" {
            "no runs recorded".to_owned()
        } else {
            format!("no run `{given}`")
        };
        ExpectedError::Usage(format!(
            "{what} in `{}` (`tarun log` lists the runs)",
            store.root()
        ))
    })
}

/// `RUN  DATE  MANIFEST  12.3s  ran 2, cached 5, ...`, then the command line, the overrides and
/// the manifest's digest (its first 12 hex digits) on lines of their own.
fn print_run(j: &RunJournal) -> Result<()> {
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
    if !j.command.is_empty() {
        let command: Vec<String> = j.command.iter().map(|w| shell_word(w)).collect();
        let command = command.join(" ");
        outln!("    command: {command}")?;
    }
    if !j.overrides.is_empty() {
        outln!("    overrides: {}", j.overrides.join(" "))?;
    }
    if let Some(d) = &j.manifest_digest {
        outln!("    manifest: {}", d.get(..12).unwrap_or(d))?;
    }
    Ok(())
}

/// One node of a run: outcome, seconds, device, peak memory, id and error.
fn print_entry(e: &JournalEntry) -> Result<()> {
    let device = e.device.as_deref().unwrap_or("-");
    let peak = e.peak_rss.map_or_else(
        || "-".to_owned(),
        |p| format!("{:.0} MB{}", p.mb, if p.shared { "*" } else { "" }),
    );
    let err = e
        .error
        .as_deref()
        .map(|m| format!("  ({m})"))
        .unwrap_or_default();
    outln!(
        "    {:<9} {:>8.2}s  {:<8} {:>8}  {}{err}",
        e.outcome.as_str(),
        e.seconds,
        device,
        peak,
        e.id
    )
}

/// The entries that started in this run (not cached or skipped), by start.
fn timed(run: &RunJournal) -> Vec<(&JournalEntry, jiff::Timestamp, jiff::Timestamp)> {
    let mut out: Vec<_> = run
        .entries
        .iter()
        .filter_map(|e| Some((e, e.started?, e.ended?)))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
    out
}

/// Seconds from `from` to `t`.
fn offset(from: jiff::Timestamp, t: jiff::Timestamp) -> f64 {
    t.duration_since(from).as_secs_f64()
}

const TRACE_COLUMNS: [&str; 9] = [
    "node",
    "outcome",
    "device",
    "start-s",
    "end-s",
    "seconds",
    "peak-rss-mb",
    "peak-rss-shared",
    "attempts",
];

/// The run's timeline as tab-separated values, one started node a line, times in seconds from
/// the run's start.
fn print_trace_tsv(run: &RunJournal) -> Result<ExitCode> {
    outln!("{}", TRACE_COLUMNS.join("\t"))?;
    for (e, started, ended) in timed(run) {
        let cells = [
            e.id.clone(),
            e.outcome.as_str().to_owned(),
            e.device.clone().unwrap_or_default(),
            format!("{:.3}", offset(run.started, started)),
            format!("{:.3}", offset(run.started, ended)),
            format!("{:.3}", e.seconds),
            e.peak_rss
                .map(|p| format!("{:.1}", p.mb))
                .unwrap_or_default(),
            e.peak_rss.map(|p| p.shared.to_string()).unwrap_or_default(),
            e.attempts.to_string(),
        ];
        // A tab or newline inside a cell (an id cannot hold one; a device name could) would
        // shift the columns.
        let cells: Vec<String> = cells.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
        outln!("{}", cells.join("\t"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The run's timeline as JSON (the schema is in docs/log.md).
fn print_trace_json(run: &RunJournal) -> Result<ExitCode> {
    let nodes: Vec<_> = timed(run)
        .into_iter()
        .map(|(e, started, ended)| {
            json!({
                "node": e.id,
                "outcome": e.outcome.as_str(),
                "device": e.device,
                "started": started,
                "ended": ended,
                "start-s": offset(run.started, started),
                "end-s": offset(run.started, ended),
                "seconds": e.seconds,
                "peak-rss-mb": e.peak_rss.map(|p| p.mb),
                "peak-rss-shared": e.peak_rss.map(|p| p.shared),
                "attempts": e.attempts,
            })
        })
        .collect();
    let doc = json!({
        "run-id": run.run_id,
        "manifest": run.manifest,
        "manifest-digest": run.manifest_digest,
        "command": run.command,
        "overrides": run.overrides,
        "started": run.started,
        "seconds": run.seconds,
        "nodes": nodes,
    });
    outln!("{}", serde_json::to_string_pretty(&doc).expect("json"))?;
    Ok(ExitCode::SUCCESS)
}
