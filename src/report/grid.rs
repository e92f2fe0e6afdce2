//! `select` nodes: the chosen point and the (alpha, rho) grids of retain and forget accuracy.

use super::View;
use super::charts::{Heatmap, heatmap};
use super::doc::{Document, Figure, Table, fmt_axis, fmt_metric, from_node, slug};
use super::model::Provenance;
use super::svg::Scale;
use crate::kinds::{Candidate, Selection};

/// One metric of a sweep laid out with alpha down and rho across, both in order of first
/// appearance among the candidates (the manifest's axis order).
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub alphas: Vec<f64>,
    pub rhos: Vec<f64>,
    pub values: Vec<Vec<Option<f64>>>,
    /// The chosen candidate's cell.
    pub chosen: Option<(usize, usize)>,
}

fn axis(c: &Candidate, name: &str) -> Option<f64> {
    c.axes.get(name).and_then(|v| v.as_f64())
}

fn position(list: &mut Vec<f64>, v: f64) -> usize {
    list.iter().position(|x| *x == v).unwrap_or_else(|| {
        list.push(v);
        list.len() - 1
    })
}

/// The grid of `metric`, or `None` when the candidates lack numeric `alpha` and `rho` axes.
/// When two candidates share a cell, the first one fills it.
pub fn grid(sel: &Selection, metric: &str) -> Option<Grid> {
    let (mut alphas, mut rhos) = (vec![], vec![]);
    let mut cells = vec![];
    for c in &sel.candidates {
        let (a, r) = (axis(c, "alpha")?, axis(c, "rho")?);
        cells.push((
            position(&mut alphas, a),
            position(&mut rhos, r),
            c.metrics.get(metric).copied(),
        ));
    }
    let mut values = vec![vec![None; rhos.len()]; alphas.len()];
    for &(i, j, v) in cells.iter().rev() {
        values[i][j] = v;
    }
    let chosen = match (axis(&sel.chosen, "alpha"), axis(&sel.chosen, "rho")) {
        (Some(a), Some(r)) => {
            let i = alphas.iter().position(|x| *x == a);
            i.zip(rhos.iter().position(|x| *x == r))
        }
        _ => None,
    };
    Some(Grid {
        alphas,
        rhos,
        values,
        chosen,
    })
}

/// One subsection per `select` input.
pub fn section(doc: &mut Document, view: &View<'_>) {
    if view.selects.is_empty() {
        return;
    }
    doc.heading(2, "Grid search");
    doc.paragraph(
        "Each `select` node scores every candidate and keeps the best one that meets every \
         requirement (`PASSED`), or the best overall when none does (`BEST_EFFORT`). In the \
         heatmaps rows are alpha, columns rho; the chosen cell is outlined in magenta.",
    );
    for &(p, sel) in &view.selects {
        doc.heading(3, format!("`{}`", p.id));
        let require = if sel.require.is_empty() {
            "none".to_owned()
        } else {
            sel.require.join(", ")
        };
        doc.paragraph(format!(
            "Status **{}** · score `{}` · requirements `{require}` · {} candidates.",
            sel.status,
            sel.score,
            sel.candidates.len()
        ));
        doc.table(chosen_table(p, sel));
        let figures: Vec<Figure> = [
            ("retain-acc", "retain accuracy"),
            ("forget-acc", "forget accuracy"),
        ]
        .iter()
        .filter_map(|(metric, what)| figure(p, sel, metric, what))
        .collect();
        if figures.is_empty() {
            doc.table(top_candidates(p, sel));
        }
        doc.figures(figures);
    }
}

fn candidate_row(c: &Candidate) -> Vec<String> {
    let metric = |m: &str| {
        c.metrics
            .get(m)
            .map(|v| fmt_metric(m, *v))
            .unwrap_or_else(|| "–".into())
    };
    vec![
        format!("`{}`", c.id),
        axis(c, "alpha").map(fmt_axis).unwrap_or_else(|| "–".into()),
        axis(c, "rho").map(fmt_axis).unwrap_or_else(|| "–".into()),
        metric("retain-acc"),
        metric("forget-acc"),
        format!("{:.3}", c.score),
        if c.passed { "yes" } else { "no" }.to_owned(),
    ]
}

const CANDIDATE_HEADER: [&str; 7] = [
    "candidate",
    "alpha",
    "rho",
    "retain-acc",
    "forget-acc",
    "score",
    "passed",
];

fn chosen_table(p: &Provenance, sel: &Selection) -> Table {
    let mut table = Table::new(&CANDIDATE_HEADER);
    table.push(candidate_row(&sel.chosen), Some(p));
    table
}

/// The ten best candidates, for sweeps that are not (alpha, rho) grids.
fn top_candidates(p: &Provenance, sel: &Selection) -> Table {
    let mut sorted: Vec<&Candidate> = sel.candidates.iter().collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut table = Table::new(&CANDIDATE_HEADER);
    for c in sorted.into_iter().take(10) {
        table.push(candidate_row(c), Some(p));
    }
    table
}

fn figure(p: &Provenance, sel: &Selection, metric: &str, what: &str) -> Option<Figure> {
    let g = grid(sel, metric)?;
    if g.values.iter().flatten().all(Option::is_none) {
        return None;
    }
    let labels = g
        .values
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| v.map(|v| format!("{v:.1}")).unwrap_or_default())
                .collect()
        })
        .collect();
    let h = Heatmap {
        title: format!("{} — {what} (%)", p.id),
        rows: g.alphas.iter().map(|a| fmt_axis(*a)).collect(),
        cols: g.rhos.iter().map(|r| format!("{r:.3}")).collect(),
        values: g.values,
        labels,
        scale: Scale::Viridis,
        range: (0.0, 100.0),
        x_label: "rho (fraction of the task vector pruned)".into(),
        y_label: "alpha".into(),
        highlight: g.chosen,
        cell: (40.0, 30.0),
        colour_bar: true,
    };
    Some(Figure {
        file: format!("grid-{metric}-{}.svg", slug(&p.id)),
        title: format!("{what} over the grid of {}", p.id),
        caption: from_node(p),
        source: Some(p.short().to_owned()),
        svg: heatmap(&h),
    })
}
