//! Figures drawn from `evaluate` outputs: confusion matrices, t-SNE embeddings and the
//! relearning curves of the Anamnesis Index. Each section appears only when some input has
//! the data; figures of one architecture sit side by side.

use super::View;
use super::charts::{Heatmap, LineChart, ScatterGroup, Series, heatmap, line_chart, scatter};
use super::doc::{Document, Figure, cite, slug};
use super::model::{EvalInfo, Provenance, Relearn};
use super::svg::Scale;

const FORGET_RED: &str = "#e63946";
const OTHER_GREY: &str = "#d3d3d3";
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
        caption: format!("From {}, `metrics.json`.", cite(p)),
        svg: heatmap(&h),
    })
}

/// t-SNE of the logits: the forget class in red on top of the others in light grey.
pub fn tsne(doc: &mut Document, view: &View<'_>) {
    if !any(view, |e| e.tsne.is_some()) {
        return;
    }
    doc.heading(2, "t-SNE of the logits");
    doc.paragraph(
        "Each panel is a separate embedding (coordinates are not comparable across panels). \
         Red: the forget class; grey: every other class.",
    );
    per_arch(doc, view, tsne_figure);
}

fn tsne_figure(p: &Provenance, e: &EvalInfo) -> Option<Figure> {
    let t = e.tsne.as_ref()?;
    let forget = e.forget;
    let pick = |is_forget: bool| -> Vec<(f64, f64)> {
        t.points
            .iter()
            .zip(&t.labels)
            .filter(|(_, l)| (Some(**l) == forget) == is_forget)
            .map(|(pt, _)| (pt[0], pt[1]))
            .collect()
    };
    let forget_name = forget
        .map(|c| e.class_name(c as usize))
        .unwrap_or_else(|| "none".into());
    let groups = [
        ScatterGroup {
            name: "other classes".into(),
            colour: OTHER_GREY.into(),
            opacity: 0.3,
            radius: 2.5,
            points: pick(false),
        },
        ScatterGroup {
            name: format!("forget: {forget_name}"),
            colour: FORGET_RED.into(),
            opacity: 1.0,
            radius: 3.2,
            points: pick(true),
        },
    ];
    Some(Figure {
        file: format!("tsne-{}.svg", slug(&p.id)),
        title: format!("t-SNE of {}", e.model),
        caption: format!("From {}, `metrics.json`.", cite(p)),
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
        caption: format!("From {}, `metrics.json`.", cite(p)),
        svg: line_chart(&chart),
    })
}
