//! The report's first table: for each network, how each way of forgetting the study's forget
//! class compares, in one row per method, with the chosen (alpha, rho) and the compute saved.

use super::View;
use super::doc::{Document, Table, fmt_axis, fmt_metric};
use super::model::{EvalInfo, ModelRole, Provenance};
use super::timing;

const COLUMNS: [&str; 8] = [
    "forget-acc",
    "retain-acc",
    "accuracy",
    "kl-forget",
    "zrf",
    "mia-auc",
    "mia-efficacy",
    "ain",
];

/// The methods, in row order: role and how the table names it.
fn methods() -> Vec<(ModelRole, &'static str)> {
    vec![
        (ModelRole::Base, "base (before forgetting)"),
        (ModelRole::Unlearned, "task arithmetic"),
        (
            ModelRole::Baseline("gradient-ascent".into()),
            "gradient ascent",
        ),
        (ModelRole::Baseline("random-labels".into()), "random labels"),
        (ModelRole::Baseline("fine-tune".into()), "fine-tuning"),
        (ModelRole::Baseline("l1-sparse".into()), "l1-sparse"),
        (ModelRole::Baseline("scrub".into()), "SCRUB"),
        (ModelRole::Baseline("salun".into()), "SalUn"),
        (ModelRole::Retrained, "retrained without it (target)"),
    ]
}

/// The forget class the study is about: the one its retrained model never saw, else the first
/// evaluated one.
fn main_forget(view: &View<'_>) -> Option<u32> {
    view.evals
        .iter()
        .find(|(_, e)| e.role == ModelRole::Retrained && e.forget.is_some())
        .or_else(|| view.evals.iter().find(|(_, e)| e.forget.is_some()))
        .and_then(|(_, e)| e.forget)
}

/// Of the evaluations of `role` on `arch` forgetting `forget`, the one with most metrics.
fn best_eval<'a>(
    evals: &[(&'a Provenance, &'a EvalInfo)],
    role: &ModelRole,
    forget: u32,
) -> Option<(&'a Provenance, &'a EvalInfo)> {
    evals
        .iter()
        .filter(|(_, e)| &e.role == role && e.forget == Some(forget))
        .max_by_key(|(_, e)| e.metrics.len())
        .copied()
}

pub fn section(doc: &mut Document, view: &View<'_>) {
    let Some(forget) = main_forget(view) else {
        return;
    };
    let by_arch = view.evals_by_arch();
    if by_arch.is_empty() {
        return;
    }
    let class = by_arch[0].1.first().map_or_else(
        || forget.to_string(),
        |(_, e)| e.class_name(forget as usize),
    );
    doc.heading(2, "Summary");
    doc.paragraph(format!(
        "Forgetting class {forget} ({class}). Accuracies in %; `kl-forget` is KL(retrained ‖ model) \
         on the forget class; the retrained model is what perfect forgetting would look like. \
         The detailed tables below have every metric."
    ));
    let mut header = vec!["arch", "method"];
    header.extend(COLUMNS);
    let mut table = Table::new(&header);
    let benchmarks = timing::benchmarks(view);
    let mut notes = vec![];
    for (arch, evals) in &by_arch {
        for (role, name) in methods() {
            let Some((prov, eval)) = best_eval(evals, &role, forget) else {
                continue;
            };
            let mut method = name.to_owned();
            if role == ModelRole::Unlearned
                && let Some((_, sel)) = view.selects.iter().find(|(_, s)| {
                    s.chosen.axes.get("arch").and_then(|a| a.as_str()) == Some(*arch)
                })
            {
                let axis = |k: &str| {
                    sel.chosen
                        .axes
                        .get(k)
                        .and_then(serde_json::Value::as_f64)
                        .map(fmt_axis)
                };
                if let (Some(a), Some(r)) = (axis("alpha"), axis("rho")) {
                    method = format!("{name} (alpha {a}, rho {r}, {})", sel.status);
                }
            }
            let mut cells = vec![format!("{arch}"), method];
            cells.extend(COLUMNS.iter().map(|m| {
                eval.metrics
                    .get(*m)
                    .map_or_else(|| "–".to_owned(), |v| fmt_metric(m, *v))
            }));
            table.push(cells, Some(prov));
        }
        if let Some(b) = benchmarks.iter().find(|b| b.arch == *arch)
            && let Some(s) = b.savings()
        {
            notes.push(format!(
                "{arch}: unlearning took {:.1} s of expert fine-tuning and surgery against {:.1} s \
                 of retraining, {:.1} % saved",
                b.t_expert + b.t_surgery,
                b.t_retrain,
                s * 100.0
            ));
        }
    }
    doc.table(table);
    if !notes.is_empty() {
        doc.paragraph(format!("Compute saved: {}.", notes.join("; ")));
    }
}
