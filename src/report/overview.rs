//! The report's text sections: the header with the protocol, the training runs, the metric
//! tables per architecture, per-class accuracies, and the provenance of every record.

use tarun_core::manifest::Protocol;

use super::View;
use super::doc::{Document, Table, fmt_metric, fmt_seconds};
use super::model::{EvalInfo, ModelRole, Provenance, ReportStudy, TrainInfo};

/// Metric tables: a title and the metrics it shows, in column order. Metrics named in none of
/// them go to a last "other metrics" table.
const METRIC_GROUPS: [(&str, &[&str]); 3] = [
    ("Accuracy", &["accuracy", "forget-acc", "retain-acc"]),
    (
        "Forgetting and privacy",
        &[
            "kl-forget",
            "kl-retain",
            "zrf",
            "zrf-std",
            "mia-auc",
            "mia-auc-retrained",
        ],
    ),
    (
        "Over-forgetting and relearning",
        &[
            "over-forgetting-gap",
            "over-forgetting-neighbour",
            "over-forgetting-gap-change",
            "over-forgetting-neighbour-drop",
            "ain",
            "ain-reached",
            "ain-target",
            "ain-steps-unlearned",
            "ain-steps-retrained",
        ],
    ),
];

const SEED_PROTOCOL: &str = "This study ran the **seed** protocol: the procedure of the original \
study (*Task Arithmetic for Efficient Machine Unlearning*, called the seed here) with its flaws \
kept on purpose, so that its numbers can be set beside the published ones. The (alpha, rho) grid is scored on the test set that then reports every metric; \
MIA members are augmented training images; ZRF uses one random teacher; over-forgetting is the \
raw accuracy gap to the airplane class; and the Anamnesis Index counts whole epochs of \
forget-class-only relearning, a run that never reaches the target being counted at the cap. \
Read these numbers as a reproduction, not as unbiased estimates.";

const CORRECTED_PROTOCOL: &str = "This study ran the **corrected** protocol, which fixes the \
original study's (the seed's) methodological flaws: candidates are scored on a held-out validation split when the manifest evaluates them there; \
MIA members are scored without augmentation and the retrained model's AUC is reported as the \
reference; ZRF averages several random teachers; over-forgetting is measured as the change \
from the base model, against its most-confused neighbour class; and the Anamnesis Index counts \
optimizer steps, a run that never reaches the target being reported as a bound \
(`ain-reached` = 0). Its numbers are not directly comparable with the published ones.";

/// The protocol statement and what the report was built from.
pub fn header(doc: &mut Document, study: &ReportStudy, view: &View<'_>) {
    let protocol = match study.protocol {
        Protocol::Seed => "seed",
        Protocol::Corrected => "corrected",
    };
    let source = study.data_source.as_deref().unwrap_or("unspecified");
    doc.paragraph(format!(
        "Study `{}` · protocol **{protocol}** · data `{source}` · seed {} · {} inputs.",
        study.name,
        study.seed,
        view.all.len()
    ));
    doc.paragraph(match study.protocol {
        Protocol::Seed => SEED_PROTOCOL,
        Protocol::Corrected => CORRECTED_PROTOCOL,
    });
    doc.paragraph(
        "Every number below is copied from a node record or its output files, never recomputed. \
         The `source` column gives the first 12 hex digits of the record key; the provenance \
         table at the end maps each to its node.",
    );
}

/// A short description of what a training run saw.
fn data_of(t: &TrainInfo) -> String {
    let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let objective = t.params.objective.as_deref().filter(|o| *o != "ce");
    let mut s = match (t.params.only.is_empty(), t.params.exclude.is_empty()) {
        (false, _) => format!("only {}", list(&t.params.only)),
        (true, false) => format!("without {}", list(&t.params.exclude)),
        (true, true) => "all classes".to_owned(),
    };
    if let Some(o) = objective {
        s.push_str(&format!(", {o}"));
    }
    s
}

/// Training and fine-tuning runs: one row per `train` / `expert` input.
pub fn training(doc: &mut Document, view: &View<'_>) {
    if view.trains.is_empty() {
        return;
    }
    doc.heading(2, "Training runs");
    let mut table = Table::new(&[
        "node",
        "kind",
        "arch",
        "data",
        "epochs",
        "steps",
        "final loss",
        "train acc %",
        "wall s",
        "device",
    ]);
    for &(p, t) in &view.trains {
        let last = t.epochs.last();
        table.push(
            vec![
                format!("`{}`", p.id),
                p.kind.clone(),
                t.arch.clone(),
                data_of(t),
                t.epochs.len().to_string(),
                t.steps.to_string(),
                last.map(|e| format!("{:.4}", e.mean_loss))
                    .unwrap_or_else(dash),
                last.map(|e| format!("{:.2}", e.train_accuracy * 100.0))
                    .unwrap_or_else(dash),
                fmt_seconds(p.seconds),
                p.device.clone(),
            ],
            Some(p),
        );
    }
    doc.table(table);
}

fn dash() -> String {
    "–".to_owned()
}

/// How the role of an evaluated model reads in a table.
fn role_label(role: &ModelRole) -> String {
    match role {
        ModelRole::Base => "base".into(),
        ModelRole::Retrained => "retrained".into(),
        ModelRole::Expert => "expert".into(),
        ModelRole::Baseline(o) => o.clone(),
        ModelRole::Unlearned => "unlearned".into(),
        ModelRole::Unknown => "–".into(),
    }
}

/// One table per architecture and metric group, with only the metrics present.
pub fn metric_tables(doc: &mut Document, view: &View<'_>) {
    let groups = view.evals_by_arch();
    if groups.is_empty() {
        return;
    }
    doc.heading(2, "Metrics");
    doc.paragraph(
        "Accuracies are percentages on the evaluated split; `forget` is the forgotten class. \
         KL is KL(retrained ‖ model) in nats; ZRF is 1 − normalised Jensen–Shannon divergence \
         to random networks; MIA is the entropy attack's AUC (0.5 = no signal).",
    );
    for (arch, evals) in groups {
        doc.heading(3, format!("Architecture `{arch}`"));
        let known: Vec<&str> = METRIC_GROUPS
            .iter()
            .flat_map(|(_, m)| m.iter().copied())
            .collect();
        let mut other: Vec<&str> = evals
            .iter()
            .flat_map(|(_, e)| e.metrics.keys().map(String::as_str))
            .filter(|m| !known.contains(m))
            .collect();
        other.sort_unstable();
        other.dedup();
        for (title, names) in METRIC_GROUPS {
            metric_table(doc, title, names, &evals);
        }
        metric_table(doc, "Other metrics", &other, &evals);
    }
}

fn metric_table(
    doc: &mut Document,
    title: &str,
    names: &[&str],
    evals: &[(&Provenance, &EvalInfo)],
) {
    let present: Vec<&str> = names
        .iter()
        .copied()
        .filter(|m| evals.iter().any(|(_, e)| e.metrics.contains_key(*m)))
        .collect();
    if present.is_empty() {
        return;
    }
    let mut header = vec!["model", "role", "forget", "split"];
    header.extend(&present);
    let mut table = Table::new(&header);
    for &(p, e) in evals
        .iter()
        .filter(|(_, e)| present.iter().any(|m| e.metrics.contains_key(*m)))
    {
        let forget = e
            .forget
            .map(|c| e.class_name(c as usize))
            .unwrap_or_else(dash);
        let mut cells = vec![
            format!("`{}`", e.model),
            role_label(&e.role),
            forget,
            e.split.clone().unwrap_or_else(dash),
        ];
        cells.extend(present.iter().map(|m| {
            e.metrics
                .get(*m)
                .map(|v| fmt_metric(m, *v))
                .unwrap_or_else(dash)
        }));
        table.push(cells, Some(p));
    }
    doc.paragraph(format!("**{title}**"));
    doc.table(table);
}

/// Per-class accuracy of every evaluation that recorded it.
pub fn per_class(doc: &mut Document, view: &View<'_>) {
    let with: Vec<_> = view
        .evals
        .iter()
        .filter(|(_, e)| e.per_class.is_some())
        .collect();
    let Some((_, first)) = with.first() else {
        return;
    };
    doc.heading(2, "Per-class accuracy");
    let names: Vec<String> = (0..10).map(|c| first.class_name(c)).collect();
    let mut header = vec!["model", "arch"];
    header.extend(names.iter().map(String::as_str));
    let mut table = Table::new(&header);
    for &&(p, e) in &with {
        let mut cells = vec![format!("`{}`", e.model), e.arch.clone()];
        let values = e.per_class.as_deref().unwrap_or_default();
        cells.extend(
            values
                .iter()
                .map(|v| v.map(|v| format!("{v:.1}")).unwrap_or_else(dash)),
        );
        table.push(cells, Some(p));
    }
    doc.table(table);
}

/// Every input record, and the inputs that could not be read.
pub fn provenance(doc: &mut Document, view: &View<'_>, notes: &[String]) {
    doc.heading(2, "Provenance");
    doc.paragraph(
        "Every record this report was built from. A record's key is a content hash of all that \
         its result depends on (the node's resolved parameters, its kind's algorithm version, \
         the data, and the content of its inputs' outputs), so two records with the same key \
         hold the same computation; the `source` columns and figure captions above cite its \
         first 12 hex digits.",
    );
    let mut table = Table::new(&["key", "node", "kind", "wall s", "device", "full key"]);
    for input in view.all {
        let p = &input.prov;
        table.push(
            vec![
                format!("`{}`", p.short()),
                format!("`{}`", p.id),
                p.kind.clone(),
                fmt_seconds(p.seconds),
                p.device.clone(),
                format!("`{}`", p.key),
            ],
            None,
        );
        if let Some(row) = table.rows.last_mut() {
            row.anchor = Some(format!("k-{}", p.short()));
        }
    }
    doc.table(table);
    if !notes.is_empty() {
        doc.heading(2, "Notes");
        for n in notes {
            doc.paragraph(n.clone());
        }
    }
}
