//! `select`: pick the best point of a sweep by a score under constraints (docs/study.md §4.5).
//!
//! Candidates are visited in family order; a later one replaces the best only with a strictly
//! higher score, so ties go to the first. If no candidate meets every constraint, the best score
//! overall wins with status `BEST_EFFORT`. The chosen candidate's axis values (alpha, rho, ...)
//! are this node's output, which downstream `ablate` nodes read through `from-select`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tarun_core::engine::{Job, JobError, JobOutput};
use tarun_core::manifest::expr::{parse_constraint, parse_expr};
use tarun_core::manifest::params::SelectParams;

use super::{failed, write_json};

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Candidate {
    pub id: String,
    pub axes: BTreeMap<String, serde_json::Value>,
    pub metrics: BTreeMap<String, f64>,
    pub score: f64,
    pub passed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Selection {
    pub status: String,
    pub score: String,
    pub require: Vec<String>,
    pub chosen: Candidate,
    pub candidates: Vec<Candidate>,
}

pub fn run(job: &Job) -> Result<JobOutput, JobError> {
    let p: SelectParams = super::params(job)?;
    // Both parsed, and their names checked against the candidates' metrics, when the manifest
    // loaded; parsed again here to be evaluated.
    let score = parse_expr(&p.score).map_err(failed)?;
    let require_text = p.require.unwrap_or_default();
    let require: Vec<_> = require_text
        .iter()
        .map(|r| parse_constraint(r))
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    let mut candidates = vec![];
    for id in &p.over {
        let input = job
            .input(id)
            .ok_or_else(|| failed(format!("input `{id}` missing")))?;
        let metrics: BTreeMap<String, f64> =
            serde_json::from_value(input.record.summary["metrics"].clone())
                .map_err(|e| failed(format!("`{id}` has no numeric metrics: {e}")))?;
        let axes = job
            .study
            .node(id)
            .map(|n| n.axes.iter().cloned().collect())
            .unwrap_or_default();
        let s = score
            .eval(&metrics)
            .map_err(|e| failed(format!("score of `{id}`: {e}")))?;
        let mut passed = true;
        for c in &require {
            passed &= c
                .holds(&metrics)
                .map_err(|e| failed(format!("`{id}`: {e}")))?;
        }
        candidates.push(Candidate {
            id: id.clone(),
            axes,
            metrics,
            score: s,
            passed,
        });
    }
    let selection = choose(candidates, &p.score, &require_text)
        .ok_or_else(|| failed("`over` matched no candidates"))?;
    job.log(format!(
        "{}: {} (score {:.3})",
        selection.status, selection.chosen.id, selection.chosen.score
    ));
    write_json(job, "selection.json", &selection)?;
    let summary = serde_json::json!({
        "status": selection.status,
        "chosen": selection.chosen,
    });
    Ok(JobOutput {
        summary,
        log: vec![],
    })
}

/// The seed's rule: best strict candidate, else best overall; strictly higher replaces.
pub fn choose(candidates: Vec<Candidate>, score: &str, require: &[String]) -> Option<Selection> {
    let best = |only_passed: bool| {
        let mut best: Option<&Candidate> = None;
        for c in candidates.iter().filter(|c| c.passed || !only_passed) {
            if best.is_none_or(|b| c.score > b.score) {
                best = Some(c);
            }
        }
        best.cloned()
    };
    let (status, chosen) = match best(true) {
        Some(c) => ("PASSED", c),
        None => ("BEST_EFFORT", best(false)?),
    };
    Some(Selection {
        status: status.into(),
        score: score.into(),
        require: require.to_vec(),
        chosen,
        candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, score: f64, passed: bool) -> Candidate {
        Candidate {
            id: id.into(),
            axes: BTreeMap::new(),
            metrics: BTreeMap::new(),
            score,
            passed,
        }
    }

    #[test]
    fn strict_candidates_win_and_ties_go_to_the_first() {
        let s = choose(
            vec![
                cand("a", 90.0, false),
                cand("b", 50.0, true),
                cand("c", 50.0, true),
            ],
            "s",
            &[],
        )
        .unwrap();
        assert_eq!((s.status.as_str(), s.chosen.id.as_str()), ("PASSED", "b"));
    }

    #[test]
    fn falls_back_to_best_effort() {
        let s = choose(vec![cand("a", 1.0, false), cand("b", 3.0, false)], "s", &[]).unwrap();
        assert_eq!(
            (s.status.as_str(), s.chosen.id.as_str()),
            ("BEST_EFFORT", "b")
        );
        assert!(choose(vec![], "s", &[]).is_none());
    }
}
