//! `select`'s `score` and `require`, checked when the manifest loads: each must parse, and each
//! name it reads must be a scalar that every node of its `over` writes, given their `metrics`,
//! their other keys and the protocol ([`Metric::scalars`]). Otherwise the mistake would surface
//! only when the `select` node runs, after its candidates have been trained and evaluated.

use std::collections::HashMap;

use super::error::{ErrorKind, Problem, did_you_mean, one_of};
use super::expand::Member;
use super::expr::{parse_constraint, parse_expr};
use super::model::{NodeKind, NodeSpec, Protocol};
use super::params::{EvaluateParams, Metric};
use super::tree::{Item, Value};

/// What one candidate (an `evaluate` node) writes.
struct Candidate<'n> {
    id: &'n str,
    params: EvaluateParams,
    scalars: Vec<&'static str>,
}

/// Checks the expressions of every `select` node; `members[i]` is the table `nodes[i]` was
/// validated from.
pub(crate) fn check(
    members: &[Member],
    nodes: &[NodeSpec],
    protocol: Protocol,
    problems: &mut Vec<Problem>,
) {
    let index: HashMap<&str, &NodeSpec> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    // An evaluate node is read by every select over it: what it writes is worked out once.
    let mut written: HashMap<&str, Option<Candidate<'_>>> = HashMap::new();
    for (member, node) in members.iter().zip(nodes) {
        if node.kind != NodeKind::Select {
            continue;
        }
        let over: Vec<&str> = node
            .params
            .get("over")
            .and_then(|o| o.as_array())
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str())
            .collect();
        for id in &over {
            written
                .entry(id)
                .or_insert_with(|| candidate(index.get(id)?, protocol));
        }
        // `None` when an `over` node's own keys are invalid (reported already): its names are
        // then not checked, only the syntax.
        let candidates: Option<Vec<&Candidate<'_>>> =
            over.iter().map(|id| written[id].as_ref()).collect();
        let check = Check {
            candidates: candidates.as_deref().unwrap_or_default(),
            protocol,
        };
        if let Some(entry) = member.table.get("score")
            && let Value::String(src) = &entry.item.value
        {
            match parse_expr(src) {
                Ok(e) => check.names("score", &e.names(), &entry.item, problems),
                Err(msg) => problems.push(invalid("score", &entry.item, msg)),
            }
        }
        if let Some(entry) = member.table.get("require")
            && let Value::Array(items) = &entry.item.value
        {
            for item in items {
                let Value::String(src) = &item.value else {
                    continue;
                };
                match parse_constraint(src) {
                    Ok(c) => check.names("require", &c.names(), item, problems),
                    Err(msg) => problems.push(invalid("require", item, msg)),
                }
            }
        }
    }
}

fn candidate(node: &NodeSpec, protocol: Protocol) -> Option<Candidate<'_>> {
    let params: EvaluateParams = node.typed_params().ok()?;
    let scalars = params.scalars(protocol);
    Some(Candidate {
        id: &node.id,
        params,
        scalars,
    })
}

fn invalid(key: &str, item: &Item, msg: String) -> Problem {
    Problem::new(
        ErrorKind::InvalidValue,
        Some(item.origin.clone()),
        format!("invalid `{key}` expression"),
    )
    .label(msg)
}

struct Check<'c, 'n> {
    candidates: &'c [&'c Candidate<'n>],
    protocol: Protocol,
}

impl Check<'_, '_> {
    /// Each distinct name in `names` must be written by every candidate.
    fn names(&self, key: &str, names: &[&str], item: &Item, problems: &mut Vec<Problem>) {
        let mut seen = Vec::new();
        for &name in names {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let Some(lacking) = self.candidates.iter().find(|c| !c.scalars.contains(&name)) else {
                continue;
            };
            problems.push(self.problem(key, name, lacking, item));
        }
    }

    fn problem(&self, key: &str, name: &str, lacking: &Candidate<'_>, item: &Item) -> Problem {
        let writes = |c: &Candidate<'_>| match c.scalars.as_slice() {
            [] => format!("`{}` writes no scalar metric", c.id),
            list => format!(
                "`{}` writes {}",
                c.id,
                list.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let by = Metric::writing(name);
        let anyone = self.candidates.iter().any(|c| c.scalars.contains(&name));
        if by.is_none() && !anyone {
            let everything: Vec<&str> = self
                .candidates
                .iter()
                .flat_map(|c| c.scalars.iter().copied())
                .chain(
                    Metric::ALL
                        .iter()
                        .flat_map(|m| m.every_scalar().iter().copied()),
                )
                .collect();
            let help = did_you_mean(name, everything.iter().copied())
                .or_else(|| one_of(&lacking.scalars))
                .unwrap_or_else(|| writes(lacking));
            return Problem::new(
                ErrorKind::UnknownMetric,
                Some(item.origin.clone()),
                format!("unknown metric `{name}` in `{key}`"),
            )
            .label("no metric writes this")
            .help(help);
        }
        let help = match by {
            Some(m) if !lacking.params.metrics.contains(&m) => format!(
                "`{name}` is written by the metric `{m}`: add \"{m}\" to the `metrics` of `{}`",
                lacking.id
            ),
            Some(m) => format!(
                "its metric `{m}` writes `{name}` only with other settings (the {} protocol \
                 is in use); {}",
                self.protocol,
                writes(lacking)
            ),
            None => writes(lacking),
        };
        Problem::new(
            ErrorKind::UnknownMetric,
            Some(item.origin.clone()),
            format!(
                "`{key}` reads `{name}`, which `{}` does not write",
                lacking.id
            ),
        )
        .label(format!("not a metric of `{}`", lacking.id))
        .help(help)
    }
}
