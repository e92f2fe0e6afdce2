//! Naming a recorded run on the command line (`tarun log --trace RUN`, `tarun compare RUN_A
//! RUN_B`): `last`, its id as `tarun log` lists it, or a unique prefix of the id.

use tarun_core::store::RunJournal;

use super::Result;
use crate::errors::ExpectedError;

/// The fewest characters of a run id taken as a prefix (`20261204`), so that a short word
/// (a manifest's name) is not read as one.
const RUN_PREFIX: usize = 4;

/// The journal of the run `given` names among `journals` (oldest first): `last`, an id, or a
/// unique prefix of at least [`RUN_PREFIX`] characters. `None` when no run matches; a prefix of
/// several ids is a usage error naming them.
pub fn find_run<'a>(journals: &'a [RunJournal], given: &str) -> Result<Option<&'a RunJournal>> {
    if given == "last" {
        return Ok(journals.last());
    }
    if let Some(j) = journals.iter().find(|j| j.run_id == given) {
        return Ok(Some(j));
    }
    if given.chars().count() < RUN_PREFIX {
        return Ok(None);
    }
    let matches: Vec<&RunJournal> = journals
        .iter()
        .filter(|j| j.run_id.starts_with(given))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(ExpectedError::Usage(format!(
            "`{given}` is the start of {} run ids: {} (give more of the id; `tarun log` lists \
             the runs)",
            many.len(),
            many.iter()
                .map(|j| j.run_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(id: &str) -> RunJournal {
        serde_json::from_value(serde_json::json!({
            "run-id": id, "manifest": "m.toml", "study": "s", "started": "2026-12-04T20:40:04Z",
            "seconds": 0.0, "overrides": [], "command": [], "entries": []
        }))
        .unwrap()
    }

    #[test]
    fn runs_are_found_by_id_a_unique_prefix_or_last() {
        let runs = [
            journal("20261204T204004-31665"),
            journal("20261204T204005-31701"),
            journal("20261205T090000-00001"),
        ];
        let found = |given: &str| find_run(&runs, given).map(|j| j.map(|j| j.run_id.clone()));
        assert_eq!(
            found("20261204T204005-31701").unwrap().as_deref(),
            Some("20261204T204005-31701")
        );
        assert_eq!(
            found("20261205").unwrap().as_deref(),
            Some("20261205T090000-00001")
        );
        assert_eq!(
            found("last").unwrap().as_deref(),
            Some("20261205T090000-00001")
        );
        assert_eq!(find_run(&[], "last").unwrap(), None);
        // Too short to be taken as a prefix, and no run at all.
        assert_eq!(found("202").unwrap(), None);
        assert_eq!(found("m.toml").unwrap(), None);
        let Err(ExpectedError::Usage(msg)) = found("20261204T2040") else {
            panic!("an ambiguous prefix is a usage error");
        };
        assert!(msg.contains("20261204T204004-31665") && msg.contains("20261204T204005-31701"));
        assert!(!msg.contains("20261205T090000-00001"), "{msg}");
    }
}
