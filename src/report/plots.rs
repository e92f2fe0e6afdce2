//! Figures drawn from `evaluate` outputs: confusion matrices, t-SNE embeddings and the
//! relearning curves of the Anamnesis Index. Each section appears only when some input has
//! the data; figures of one architecture sit side by side.

use super::View;
use super::charts::{Heatmap, LineChart, ScatterGroup, Series, heatmap, line_chart, scatter};
use super::doc::{Document, Figure, from_node, slug};
use super::model::{EvalInfo, Provenance, Relearn};
use super::svg::Scale;

const FORGET_RED: &str = "#e63946";
const RETRAINED_BLUE: &str = "#1d6fa5";

/// Adds `make`'s figures for every evaluation, one row of figures per architecture.
fn per_arch(
    doc: &mut Document,
    view: &View<'_>,
    make: impl Fn(&Provenance, &EvalInfo) -> Option<Figure>,
) {
    for (_, evals) in view.evals_by_arch() {
        doc.figures(evals.iter().filter_map(|(p, e)| make(p, e)).collect());
    }
}

fn any(view: &View<'_>, has: impl Fn(&EvalInfo) -> bool) -> bool {
    view.evals.iter().any(|(_, e)| has(e))
}

/// Confusion matrices: Blues for trained models, Reds for unlearned (ablated) ones.
pub fn confusion(doc: &mut Document, view: &View<'_>) {
    if !any(view, |e| e.confusion.is_some()) {
        return;
    }
    doc.heading(2, "Confusion matrices");
    doc.paragraph(
        "Rows are the true class, columns the predicted class, cells the image counts on the \
         evaluated split. Blue: trained models; red: unlearned models.",
    );
    per_arch(doc, view, confusion_figure);
}

fn confusion_figure(p: &Provenance, e: &EvalInfo) -> Option<Figure> {
    let cm = e.confusion.as_ref()?;
    let max = cm.iter().flatten().copied().max().unwrap_or(1).max(1);
    let names: Vec<String> = (0..cm.len()).map(|c| e.class_name(c)).collect();
    let h = Heatmap {
        title: format!("{} ({})", e.model, e.arch),
        rows: names.clone(),
        cols: names,
        values: cm
            .iter()
            .map(|r| r.iter().map(|v| Some(*v as f64)).collect())
            .collect(),
        labels: cm
            .iter()
            .map(|r| r.iter().map(u64::to_string).collect())
            .collect(),
        scale: if e.role.is_unlearned() {
            Scale::Reds
        } else {
            Scale::Blues
        },
        range: (0.0, max as f64),
        x_label: "predicted".into(),
        y_label: "true".into(),
        highlight: None,
        cell: (40.0, 30.0),
        colour_bar: false,
    };
    Some(Figure {
        file: format!("confusion-{}.svg", slug(&p.id)),
        title: format!("Confusion matrix of {}", e.model),
        caption: from_node(p),
        source: Some(p.short().to_owned()),
        svg: heatmap(&h),
    })
}

/// One colour per class (matplotlib's `tab10`, which tells ten classes apart); class `c` is drawn
/// in `CLASS_COLOURS[c % 10]`.
pub const CLASS_COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The ring that marks the forget class's points.
const FORGET_RING: &str = "#111111";

/// t-SNE of the logits: every point coloured by its true class, the forget class ringed in black
/// and drawn on top.
pub fn tsne(doc: &mut Document, view: &View<'_>) {
    if !any(view, |e| e.tsne.is_some()) {
        return;
    }
    doc.heading(2, "t-SNE of the logits");
    doc.paragraph(
        "Each panel is a separate embedding (coordinates are not comparable across panels). \
         Points are coloured by their true class, named in the legend with its number of \
         points; the forget class is ringed in black and drawn on top. A model that forgot a \
         class scatters that class's points among the others instead of keeping them in a \
         cluster of their own.",
    );
    per_arch(doc, view, tsne_figure);
}

fn tsne_figure(p: &Provenance, e: &EvalInfo) -> Option<Figure> {
    let t = e.tsne.as_ref()?;
    let mut classes: Vec<u32> = t.labels.clone();
    classes.sort_unstable();
    classes.dedup();
    // The forget class last, so that its points lie on top.
    classes.sort_by_key(|c| Some(*c) == e.forget);
    let groups: Vec<ScatterGroup> = classes
        .into_iter()
        .map(|c| {
            let forget = Some(c) == e.forget;
            let name = e.class_name(c as usize);
            ScatterGroup {
                name: if forget {
                    format!("{name} (forget)")
                } else {
                    name
                },
                colour: CLASS_COLOURS[c as usize % CLASS_COLOURS.len()].into(),
                opacity: if forget { 0.95 } else { 0.7 },
                radius: if forget { 3.4 } else { 2.6 },
                outline: forget.then(|| FORGET_RING.to_owned()),
                points: t
                    .points
                    .iter()
                    .zip(&t.labels)
                    .filter(|(_, l)| **l == c)
                    .map(|(pt, _)| (pt[0], pt[1]))
                    .collect(),
            }
        })
        .collect();
    Some(Figure {
        file: format!("tsne-{}.svg", slug(&p.id)),
        title: format!("t-SNE of {}", e.model),
        caption: from_node(p),
        source: Some(p.short().to_owned()),
        svg: scatter(&format!("{} ({})", e.model, e.arch), &groups, 380.0),
    })
}

/// Forget accuracy while relearning, for the unlearned and the retrained model.
pub fn relearning(doc: &mut Document, view: &View<'_>) {
    if !any(view, |e| e.relearn.is_some()) {
        return;
    }
    doc.heading(2, "Relearning curves");
    doc.paragraph(
        "Forget-class accuracy while fine-tuning on the forget class (Anamnesis Index). The \
         dashed horizontal line is the target (the base model's accuracy minus 5 points); \
         dashed curves, when present, are retain accuracy.",
    );
    let figures = view
        .evals
        .iter()
        .filter_map(|(p, e)| relearn_figure(p, e))
        .collect();
    doc.figures(figures);
}

fn curve(r: &Relearn, unlearned: bool, retain: bool) -> Vec<(f64, f64)> {
    let points = if unlearned {
        &r.unlearned
    } else {
        &r.retrained
    };
    points
        .iter()
        .filter_map(|p| Some((p.step, if retain { p.retain_acc? } else { p.forget_acc })))
        .collect()
}

fn relearn_figure(p: &Provenance, e: &EvalInfo) -> Option<Figure> {
    let r = e.relearn.as_ref()?;
    let unit = r.unit.as_deref().unwrap_or("step");
    let mut series = vec![];
    for (unlearned, name, colour) in [
        (true, "unlearned", FORGET_RED),
        (false, "retrained", RETRAINED_BLUE),
    ] {
        series.push(Series {
            name: format!("{name}: forget"),
            colour: colour.into(),
            points: curve(r, unlearned, false),
            dashed: false,
        });
        let retain = curve(r, unlearned, true);
        if !retain.is_empty() {
            series.push(Series {
                name: format!("{name}: retain"),
                colour: colour.into(),
                points: retain,
                dashed: true,
            });
        }
    }
    let chart = LineChart {
        title: format!("{} ({})", e.model, e.arch),
        x_label: if unit == "epoch" {
            "epoch".into()
        } else {
            "optimizer step".into()
        },
        y_label: "accuracy (%)".into(),
        series,
        hlines: vec![(r.target, format!("target {:.1}", r.target))],
        y_range: Some((0.0, 100.0)),
    };
    Some(Figure {
        file: format!("relearn-{}.svg", slug(&p.id)),
        title: format!("Relearning of {}", e.model),
        caption: from_node(p),
        source: Some(p.short().to_owned()),
        svg: line_chart(&chart),
    })
}
