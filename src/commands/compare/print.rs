//! The printing of `tarun compare`: the aligned table, JSON, CSV and Markdown (docs/compare.md).

use serde_json::{Value, json};

use super::{Counts, MetricRow, NodeCmp, OUTCOMES, Origin, Presence, STATES, Side};
use crate::cli::CompareArgs;
use crate::commands::Result;
use crate::commands::results::{Delimited, compact};
use crate::output::outln;

fn state_text(side: &Option<Presence>) -> &'static str {
    side.as_ref().map_or("-", |p| p.state)
}

/// A value as the table and Markdown print it (numbers compact), `not computed` for none.
pub(super) fn value_text(v: &Option<Value>) -> String {
    match v {
        None => "not computed".into(),
        Some(Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), compact),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// A delta, signed: `+1.5`, `-10`, `0`; `-` for none.
pub(super) fn delta_text(d: Option<f64>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d > 0.0 => format!("+{}", compact(d)),
        Some(d) => compact(d),
    }
}

/// Aligned columns, no trailing spaces; `right[i]` right-aligns column `i`.
fn aligned(lines: &[Vec<String>], right: &[bool], indent: &str) -> Result<()> {
    let cols = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let w = widths[i];
                if right[i] {
                    format!("{t:>w$}")
                } else {
                    format!("{t:<w$}")
                }
            })
            .collect();
        outln!("{indent}{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// Families in the order their first listed node comes, each with its listed nodes.
pub(super) fn by_family(nodes: &[NodeCmp]) -> Vec<(&str, Vec<&NodeCmp>)> {
    let mut out: Vec<(&str, Vec<&NodeCmp>)> = Vec::new();
    for n in nodes {
        match out.iter_mut().find(|(f, _)| *f == n.family) {
            Some((_, members)) => members.push(n),
            None => out.push((&n.family, vec![n])),
        }
    }
    out
}

pub(super) fn print_table(a: &Side, b: &Side, counts: &Counts, nodes: &[NodeCmp]) -> Result<()> {
    outln!("A: {}", a.describe())?;
    outln!("B: {}", b.describe())?;
    outln!("{}", counts.line())?;
    if !nodes.is_empty() {
        outln!()?;
        let mut lines = vec![vec![
            "status".to_owned(),
            "node".into(),
            "A".into(),
            "B".into(),
            "causes".into(),
        ]];
        for n in nodes {
            lines.push(vec![
                n.status.as_str().into(),
                n.id.clone(),
                state_text(&n.a).into(),
                state_text(&n.b).into(),
                n.causes.join("; "),
            ]);
        }
        aligned(&lines, &[false; 5], "")?;
    }
    let families: Vec<(&str, Vec<&NodeCmp>)> = by_family(nodes)
        .into_iter()
        .filter(|(_, ns)| ns.iter().any(|n| !n.metrics.is_empty()))
        .collect();
    if !families.is_empty() {
        outln!()?;
        outln!("metrics (delta = B - A):")?;
        for (family, members) in families {
            outln!("{family}")?;
            let mut lines = vec![vec![
                "node".to_owned(),
                "metric".into(),
                "A".into(),
                "B".into(),
                "delta".into(),
            ]];
            for n in members {
                for m in &n.metrics {
                    lines.push(vec![
                        n.id.clone(),
                        m.name.clone(),
                        value_text(&m.a),
                        value_text(&m.b),
                        delta_text(m.delta),
                    ]);
                }
            }
            aligned(&lines, &[false, false, true, true, true], "  ")?;
        }
    }
    outln!()?;
    outln!("A: {}", a.run_summary())?;
    outln!("B: {}", b.run_summary())?;
    Ok(())
}

fn side_json(side: &Option<Presence>) -> Value {
    match side {
        None => Value::Null,
        Some(p) => json!({
            "state": p.state,
            "computed": p.computed,
            "key": p.key.map(|k| k.to_string()),
        }),
    }
}

/// A side as JSON; a manifest side's `states` are `tarun status` states, a run side's the
/// run's outcomes.
fn side_object(s: &Side) -> Value {
    match &s.origin {
        Origin::Manifest {
            spec,
            study,
            states,
        } => {
            let states: serde_json::Map<String, Value> = STATES
                .iter()
                .zip(states)
                .map(|(st, &c)| (st.as_str().to_owned(), c.into()))
                .collect();
            json!({
                "manifest": spec.path,
                "revision": spec.rev,
                "set": spec.overrides,
                "study": study,
                "nodes": s.nodes.len(),
                "states": states,
                "not-computed": s.not_computed(),
                "run": spec.run_command(),
                "run-id": null,
            })
        }
        Origin::Run(j) => {
            let states: serde_json::Map<String, Value> = OUTCOMES
                .iter()
                .map(|&o| (o.as_str().to_owned(), j.count(o).into()))
                .collect();
            json!({
                "manifest": j.manifest,
                "revision": null,
                "set": j.overrides,
                "study": j.study,
                "nodes": s.nodes.len(),
                "states": states,
                "not-computed": s.not_computed(),
                "run": null,
                "run-id": j.run_id,
                "started": j.started.to_string(),
            })
        }
    }
}

pub(super) fn print_json(
    a: &Side,
    b: &Side,
    counts: &Counts,
    nodes: &[NodeCmp],
    args: &CompareArgs,
) -> Result<()> {
    let mut count_map = serde_json::Map::new();
    for (st, c) in counts.by {
        count_map.insert(st.as_str().into(), c.into());
    }
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let metrics: Vec<Value> = n
                .metrics
                .iter()
                .map(|m| {
                    json!({
                        "metric": m.name, "a": m.a, "b": m.b, "delta": m.delta,
                    })
                })
                .collect();
            json!({
                "node": n.id,
                "family": n.family,
                "kind": n.kind.map(|k| k.as_str()),
                "status": n.status.as_str(),
                "causes": n.causes,
                "a": side_json(&n.a),
                "b": side_json(&n.b),
                "metrics": metrics,
            })
        })
        .collect();
    let doc = json!({
        "a": side_object(a),
        "b": side_object(b),
        "only-changed": args.only_changed,
        "threshold": args.threshold,
        "counts": count_map,
        "nodes": nodes,
    });
    outln!("{}", serde_json::to_string_pretty(&doc).expect("json"))
}

/// A value at full precision for CSV, empty for none.
pub(super) fn exact(v: &Option<Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), |x| format!("{x}")),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

pub(super) fn print_csv(nodes: &[NodeCmp]) -> Result<()> {
    let csv = Delimited::Csv;
    csv.line(
        &[
            "family", "node", "status", "state-a", "state-b", "causes", "metric", "a", "b", "delta",
        ]
        .map(str::to_owned),
        None,
    )?;
    for n in nodes {
        let head = vec![
            n.family.clone(),
            n.id.clone(),
            n.status.as_str().to_owned(),
            n.a.as_ref().map_or("", |p| p.state).to_owned(),
            n.b.as_ref().map_or("", |p| p.state).to_owned(),
            n.causes.join("; "),
        ];
        if n.metrics.is_empty() {
            let mut cells = head.clone();
            cells.extend(["", "", "", ""].map(str::to_owned));
            csv.line(&cells, None)?;
        }
        for m in &n.metrics {
            let mut cells = head.clone();
            cells.extend([
                if m.name == "-" {
                    String::new()
                } else {
                    m.name.clone()
                },
                exact(&m.a),
                exact(&m.b),
                m.delta.map(|d| format!("{d}")).unwrap_or_default(),
            ]);
            csv.line(&cells, None)?;
        }
    }
    Ok(())
}

pub(super) fn print_md(nodes: &[NodeCmp]) -> Result<()> {
    let md = Delimited::Md;
    md.line(
        &["status", "node", "A", "B", "causes"].map(str::to_owned),
        Some(&[false; 5]),
    )?;
    for n in nodes {
        md.line(
            &[
                n.status.as_str().to_owned(),
                n.id.clone(),
                state_text(&n.a).to_owned(),
                state_text(&n.b).to_owned(),
                n.causes.join("; "),
            ],
            None,
        )?;
    }
    let rows: Vec<(&str, &NodeCmp, &MetricRow)> = by_family(nodes)
        .into_iter()
        .flat_map(|(f, ns)| {
            ns.into_iter()
                .flat_map(move |n| n.metrics.iter().map(move |m| (f, n, m)))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    outln!()?;
    md.line(
        &["family", "node", "metric", "A", "B", "delta"].map(str::to_owned),
        Some(&[false, false, false, true, true, true]),
    )?;
    for (f, n, m) in rows {
        md.line(
            &[
                f.to_owned(),
                n.id.clone(),
                m.name.clone(),
                value_text(&m.a),
                value_text(&m.b),
                delta_text(m.delta),
            ],
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_print_signed() {
        assert_eq!(delta_text(Some(1.5)), "+1.5");
        assert_eq!(delta_text(Some(-10.0)), "-10");
        assert_eq!(delta_text(Some(0.0)), "0");
        assert_eq!(delta_text(None), "-");
    }
}
