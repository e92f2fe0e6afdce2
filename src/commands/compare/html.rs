//! `tarun compare --html FILE`: the comparison as one self-contained page (inline CSS and SVG, no
//! external assets), drawn with the report's helpers (`crate::report`): the sides, the counts, the
//! nodes that differ with their causes, every metric per family with A, B and the delta coloured
//! by sign, and each `select` node's (alpha, rho) grids as heatmaps of A, B and B - A.
//!
//! Every metric cell carries its exact value in `data-value` (the text is rounded), so a reader
//! or a script can take the page's numbers back.

use std::fmt::Write as _;
use std::io::Write as _;

use camino::Utf8Path;
use tarun_core::manifest::NodeKind;
use tarun_core::store::Store;

use super::print::{delta_text, value_text};
use super::{Counts, NodeCmp, Side, SideNode, Status};
use crate::commands::Result;
use crate::errors::ExpectedError;
use crate::kinds::Selection;
use crate::report::charts::{Heatmap, heatmap};
use crate::report::doc::fmt_axis;
use crate::report::grid::{Grid, grid};
use crate::report::html::{CSS, inline};
use crate::report::svg::{Scale, escape};

/// The metrics a `select` node's grids are drawn for, as the report draws them.
const GRID_METRICS: [(&str, &str); 2] = [
    ("retain-acc", "retain accuracy"),
    ("forget-acc", "forget accuracy"),
];

/// Colours of a delta cell by sign, on top of the report's stylesheet.
const COMPARE_CSS: &str = "
td.up { background: #dcf1dc; }
td.down { background: #f8dcdc; }
td.flat { color: #777; }
.sides td { white-space: normal; }
";

/// Writes the page to `path` atomically: a temporary file beside it, renamed over it once
/// complete, so a failure leaves no half-written file.
pub(super) fn write(
    path: &Utf8Path,
    a: &Side,
    b: &Side,
    counts: &Counts,
    nodes: &[NodeCmp],
    store: &Store,
) -> Result<()> {
    let page = page(a, b, counts, nodes, store)?;
    let dir = match path.parent() {
        Some(d) if !d.as_str().is_empty() => d,
        _ => Utf8Path::new("."),
    };
    let failed = |e: std::io::Error| {
        ExpectedError::Other(anyhow::anyhow!("--html: cannot write `{path}`: {e}"))
    };
    if !dir.is_dir() {
        return Err(ExpectedError::Other(anyhow::anyhow!(
            "--html: cannot write `{path}`: the folder `{dir}` does not exist"
        )));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tarun-compare-")
        .suffix(".html.tmp")
        .tempfile_in(dir)
        .map_err(failed)?;
    // A temporary file is private (0600); the page gets the mode of the file it replaces, or
    // a new file's usual 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(failed)?;
    }
    tmp.write_all(page.as_bytes()).map_err(failed)?;
    tmp.as_file().sync_all().map_err(failed)?;
    tmp.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

fn page(a: &Side, b: &Side, counts: &Counts, nodes: &[NodeCmp], store: &Store) -> Result<String> {
    let mut body = String::new();
    sides(&mut body, a, b, counts);
    differences(&mut body, nodes);
    metrics(&mut body, nodes);
    grids(&mut body, a, b, nodes, store)?;
    let title = "tarun compare";
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}{COMPARE_CSS}</style>\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n"
    ))
}

/// Opens a table with a header row; the caller writes the rows and `</tbody></table></div>`.
fn table_head(out: &mut String, class: &str, header: &[&str]) {
    let _ = write!(
        out,
        "<div class=\"table-wrap\"><table class=\"{class}\">\n<thead><tr>"
    );
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
}

const TABLE_END: &str = "</tbody></table></div>\n";

fn sides(out: &mut String, a: &Side, b: &Side, counts: &Counts) {
    out.push_str("<h2 id=\"s-sides\">Sides</h2>\n");
    table_head(out, "sides", &["side", "what", "summary"]);
    for (name, side) in [("A", a), ("B", b)] {
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&side.describe()),
            inline(&side.run_summary())
        );
    }
    out.push_str(TABLE_END);
    let _ = writeln!(out, "<p>{}</p>", escape(&counts.line()));
}

/// The changed nodes with their causes, and those only one side has.
fn differences(out: &mut String, nodes: &[NodeCmp]) {
    out.push_str("<h2 id=\"s-changed\">Nodes that differ</h2>\n");
    let differ: Vec<&NodeCmp> = nodes.iter().filter(|n| n.status != Status::Same).collect();
    if differ.is_empty() {
        out.push_str("<p>None: every listed node has the same key on both sides.</p>\n");
        return;
    }
    table_head(out, "nodes", &["status", "node", "A", "B", "causes"]);
    for n in differ {
        let state = |p: &Option<super::Presence>| p.as_ref().map_or("-", |p| p.state);
        let causes: Vec<String> = n.causes.iter().map(|c| inline(c)).collect();
        let _ = writeln!(
            out,
            "<tr data-node=\"{id}\"><td>{}</td><td><code>{id}</code></td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            n.status.as_str(),
            state(&n.a),
            state(&n.b),
            causes.join("<br>"),
            id = escape(&n.id),
        );
    }
    out.push_str(TABLE_END);
}

/// One table per family: every metric row with A, B and the delta, the delta cell coloured by
/// its sign (green up, red down: B - A, whatever the metric's better direction).
fn metrics(out: &mut String, nodes: &[NodeCmp]) {
    out.push_str("<h2 id=\"s-metrics\">Metrics (delta = B - A)</h2>\n");
    let families: Vec<(&str, Vec<&NodeCmp>)> = super::print::by_family(nodes)
        .into_iter()
        .filter(|(_, ns)| ns.iter().any(|n| !n.metrics.is_empty()))
        .collect();
    if families.is_empty() {
        out.push_str("<p>No metrics: no listed node has computed metrics.</p>\n");
        return;
    }
    for (family, members) in families {
        let _ = writeln!(out, "<h3><code>{}</code></h3>", escape(family));
        table_head(out, "metrics", &["node", "metric", "A", "B", "delta"]);
        for n in members {
            for m in &n.metrics {
                let cell = |v: &Option<serde_json::Value>| match v {
                    Some(x) => format!(
                        "<td class=\"num\" data-value=\"{}\">{}</td>",
                        escape(&super::print::exact(v)),
                        escape(&value_text(&Some(x.clone())))
                    ),
                    None => "<td>not computed</td>".to_owned(),
                };
                let delta = match m.delta {
                    Some(d) => {
                        let class = if d > 0.0 {
                            "up"
                        } else if d < 0.0 {
                            "down"
                        } else {
                            "flat"
                        };
                        format!(
                            "<td class=\"num {class}\" data-value=\"{d}\">{}</td>",
                            escape(&delta_text(Some(d)))
                        )
                    }
                    None => "<td class=\"num\">-</td>".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "<tr data-node=\"{id}\" data-metric=\"{metric}\"><td><code>{id}</code></td>\
                     <td>{metric}</td>{}{}{delta}</tr>",
                    cell(&m.a),
                    cell(&m.b),
                    id = escape(&n.id),
                    metric = escape(&m.name),
                );
            }
        }
        out.push_str(TABLE_END);
    }
}

/// For every listed `select` node, the heatmaps of A's and B's grids side by side and, where
/// both have the same (alpha, rho) axes, their difference.
fn grids(out: &mut String, a: &Side, b: &Side, nodes: &[NodeCmp], store: &Store) -> Result<()> {
    let selects: Vec<&NodeCmp> = nodes
        .iter()
        .filter(|n| n.kind == Some(NodeKind::Select))
        .collect();
    if selects.is_empty() {
        return Ok(());
    }
    out.push_str("<h2 id=\"s-grids\">Grid search</h2>\n");
    out.push_str(
        "<p>Each <code>select</code> node's candidates with alpha down and rho across, A and B \
         side by side, then B - A (the colour runs from the most negative difference to the \
         most positive, 0 in the middle); the chosen cell is outlined in magenta.</p>\n",
    );
    for n in selects {
        let _ = writeln!(out, "<h3><code>{}</code></h3>", escape(&n.id));
        let sel_a = selection(a.node(&n.id), store)?;
        let sel_b = selection(b.node(&n.id), store)?;
        for (metric, what) in GRID_METRICS {
            let ga = sel_a.as_ref().and_then(|s| grid(s, metric));
            let gb = sel_b.as_ref().and_then(|s| grid(s, metric));
            if ga.is_none() && gb.is_none() {
                continue;
            }
            out.push_str("<div class=\"figures\">\n");
            for (side, g) in [("A", &ga), ("B", &gb)] {
                match g {
                    Some(g) => figure(out, &side_map(&n.id, side, what, g)),
                    None => {
                        let _ = writeln!(
                            out,
                            "<p>{side}: no grid of {what} (not computed on this side, or its \
                             candidates lack numeric alpha and rho).</p>"
                        );
                    }
                }
            }
            if let (Some(ga), Some(gb)) = (&ga, &gb) {
                match delta_map(&n.id, what, ga, gb) {
                    Some(h) => figure(out, &h),
                    None => {
                        let _ = writeln!(
                            out,
                            "<p>No difference drawn: the two grids have different alpha or rho \
                             values.</p>"
                        );
                    }
                }
            }
            out.push_str("</div>\n");
        }
    }
    Ok(())
}

fn figure(out: &mut String, h: &Heatmap) {
    let _ = writeln!(out, "<figure>\n{}</figure>", heatmap(h));
}

/// The `selection.json` of a side's `select` node, when that side has computed it.
fn selection(node: Option<&SideNode>, store: &Store) -> Result<Option<Selection>> {
    let Some(record) = node.filter(|n| n.computed).and_then(|n| n.record.as_ref()) else {
        return Ok(None);
    };
    let Some(output) = record.outputs.get("selection.json") else {
        return Ok(None);
    };
    let path = store.object_path(&output.digest);
    let unreadable = |e: String| {
        ExpectedError::Other(anyhow::anyhow!(
            "reading `{path}` (selection.json of `{}`): {e} (`tarun verify` checks the store)",
            record.id
        ))
    };
    let bytes = std::fs::read(&path).map_err(|e| unreadable(e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| unreadable(e.to_string()))
}

fn labels(values: &[Vec<Option<f64>>], text: impl Fn(f64) -> String) -> Vec<Vec<String>> {
    values
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| v.map(&text).unwrap_or_default())
                .collect()
        })
        .collect()
}

fn side_map(id: &str, side: &str, what: &str, g: &Grid) -> Heatmap {
    Heatmap {
        title: format!("{side}: {id} — {what} (%)"),
        rows: g.alphas.iter().map(|a| fmt_axis(*a)).collect(),
        cols: g.rhos.iter().map(|r| fmt_axis(*r)).collect(),
        values: g.values.clone(),
        labels: labels(&g.values, |v| format!("{v:.1}")),
        scale: Scale::Viridis,
        range: (0.0, 100.0),
        x_label: "rho".into(),
        y_label: "alpha".into(),
        highlight: g.chosen,
        cell: (40.0, 30.0),
        colour_bar: true,
    }
}

/// B - A cell by cell, when both grids have the same axes; the colour range is symmetric so
/// that 0 is the scale's middle.
fn delta_map(id: &str, what: &str, a: &Grid, b: &Grid) -> Option<Heatmap> {
    if a.alphas != b.alphas || a.rhos != b.rhos {
        return None;
    }
    let values: Vec<Vec<Option<f64>>> = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(ra, rb)| {
            ra.iter()
                .zip(rb)
                .map(|(x, y)| Some((*y)? - (*x)?))
                .collect()
        })
        .collect();
    let most = values
        .iter()
        .flatten()
        .flatten()
        .fold(0.0_f64, |m, v| m.max(v.abs()));
    let most = if most > 0.0 { most } else { 1.0 };
    Some(Heatmap {
        title: format!("B - A: {id} — {what} (points)"),
        rows: a.alphas.iter().map(|v| fmt_axis(*v)).collect(),
        cols: a.rhos.iter().map(|v| fmt_axis(*v)).collect(),
        labels: labels(&values, |v| {
            if v > 0.0 {
                format!("+{v:.1}")
            } else {
                format!("{v:.1}")
            }
        }),
        values,
        scale: Scale::Viridis,
        range: (-most, most),
        x_label: "rho".into(),
        y_label: "alpha".into(),
        highlight: None,
        cell: (40.0, 30.0),
        colour_bar: true,
    })
}
