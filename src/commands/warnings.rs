//! The closing `warnings:` block of a run: nodes that finished but deserve a look before their
//! results are trusted. Read from the run's journal and the records it names, so cached nodes
//! of the study count as much as those this run computed.

use tarun_core::manifest::{NodeKind, Study};
use tarun_core::store::{Outcome, RunJournal, Store};

/// One line per warning, in journal order:
/// - a `select` node that chose `BEST_EFFORT`: no candidate met its `require`;
/// - a node that failed because training diverged (a loss or a statistic became NaN or inf);
/// - a node that ran only after failed attempts.
pub fn of_run(store: &Store, study: &Study, journal: &RunJournal) -> Vec<String> {
    let kinds = study.index();
    let is_select = |id: &str| {
        kinds
            .get(id)
            .is_some_and(|&i| study.nodes[i].kind == NodeKind::Select)
    };
    let mut out = vec![];
    for e in &journal.entries {
        match e.outcome {
            Outcome::Ran | Outcome::Cached => {
                if e.attempts > 1 {
                    out.push(format!(
                        "`{}` ran on attempt {} (the earlier ones failed)",
                        e.id, e.attempts
                    ));
                }
                // Only a selection can be best-effort: other records are not read, so a run
                // that found thousands of nodes cached reads no more than before.
                let Some(key) = e.key.filter(|_| is_select(&e.id)) else {
                    continue;
                };
                let Ok(Some(record)) = store.read_record(&key) else {
                    continue;
                };
                if record.summary["status"].as_str() == Some("BEST_EFFORT") {
                    let chosen = record.summary["chosen"]["id"].as_str().unwrap_or("?");
                    let cached = if e.outcome == Outcome::Cached {
                        " (cached)"
                    } else {
                        ""
                    };
                    out.push(format!(
                        "`{}` chose `{chosen}` as BEST_EFFORT{cached}: no candidate met its \
                         `require`",
                        e.id
                    ));
                }
            }
            Outcome::Failed => {
                if let Some(error) = e.error.as_deref().filter(|m| m.contains("diverged")) {
                    out.push(format!("`{}` diverged: {error}", e.id));
                }
            }
            Outcome::Skipped | Outcome::Cancelled => {}
        }
    }
    out
}
