//! Our numbers beside the seed's published CIFAR-10 numbers (docs/study.md §8), for studies that
//! ran the seed protocol on CIFAR-10. Ours are looked up by the evaluated model's role (base,
//! expert, baseline, unlearned) and forget class. Headline numbers are always listed (against
//! a dash when no input has them); per-class families only where we have the number.

use super::View;
use super::doc::{Document, Table, fmt_axis, fmt_metric};
use super::model::{ModelRole, Provenance, ReportStudy};
use super::published::{FORGET_CLASS, PUBLISHED, PublishedArch};
use crate::kinds::Selection;

const HEADER: [&str; 4] = ["quantity", "ours", "published", "model"];
const SHIP: Option<u32> = Some(FORGET_CLASS);

/// One published metric and where our counterpart is looked up.
struct Want {
    quantity: String,
    role: ModelRole,
    forget: Option<u32>,
    metric: &'static str,
    published: f64,
    /// Listed even when no input has the number.
    always: bool,
}

impl Want {
    fn new(quantity: &str, role: &ModelRole, forget: Option<u32>, metric: &'static str) -> Want {
        Want {
            quantity: quantity.to_owned(),
            role: role.clone(),
            forget,
            metric,
            published: f64::NAN,
            always: true,
        }
    }

    fn is(self, published: f64) -> Want {
        Want { published, ..self }
    }

    fn if_ours(self) -> Want {
        Want {
            always: false,
            ..self
        }
    }
}

/// Appends a row: quantity, ours, published, the model it was measured on.
fn row(
    table: &mut Table,
    quantity: String,
    ours: Option<(String, &Provenance)>,
    published: String,
) {
    let (ours_text, source) = match ours {
        Some((t, p)) => (t, Some(p)),
        None => ("–".to_owned(), None),
    };
    let model = source.map(|p| format!("`{}`", p.id)).unwrap_or_default();
    table.push(vec![quantity, ours_text, published, model], source);
}

fn add(table: &mut Table, view: &View<'_>, w: Want) {
    let ours = view.metric(&w.role, w.forget, w.metric);
    if ours.is_some() || w.always {
        let ours = ours.map(|(v, p)| (fmt_metric(w.metric, v), p));
        row(table, w.quantity, ours, fmt_metric(w.metric, w.published));
    }
}

/// The comparison section, or a sentence saying why there is none.
pub fn section(doc: &mut Document, view: &View<'_>, study: &ReportStudy) {
    doc.heading(2, "Published numbers");
    if !study.compares_with_published() {
        doc.paragraph(
            "The original study's published numbers apply only to CIFAR-10 under the seed \
             protocol; this study ran a different protocol or data source, so none are shown.",
        );
        return;
    }
    doc.paragraph(
        "The published numbers are those the original study (the seed) released with its \
         code: single runs (seed 42, Apple-Silicon MPS, no error bars), so differences of a few \
         points are within what reruns of the seed itself show. `forget` is ship (class 8) \
         unless a class is named; the base model's retain-acc is derived, as the mean of its \
         nine published per-class accuracies other than ship.",
    );
    for published in PUBLISHED.iter().filter(|p| mentions(view, p.arch)) {
        doc.heading(
            3,
            format!("`{}` (the seed's {})", published.arch, published.seed_name),
        );
        let mut table = Table::new(&HEADER);
        for w in base_and_experts(published) {
            add(&mut table, view, w);
        }
        optimum(&mut table, view, published);
        for w in unlearned(published) {
            add(&mut table, view, w);
        }
        doc.table(table);
    }
}

/// The `arch` axis of a selection's chosen candidate.
fn chosen_arch(s: &Selection) -> Option<&str> {
    s.chosen.axes.get("arch").and_then(|a| a.as_str())
}

fn mentions(view: &View<'_>, arch: &str) -> bool {
    view.evals.iter().any(|(_, e)| e.arch == arch)
        || view.trains.iter().any(|(_, t)| t.arch == arch)
        || view
            .selects
            .iter()
            .any(|(_, s)| chosen_arch(s) == Some(arch))
}

/// Base models (docs/study.md §8.1, §8.7), experts (§8.1) and the two baselines (§8.3).
fn base_and_experts(p: &PublishedArch) -> Vec<Want> {
    let ship = FORGET_CLASS as usize;
    let others = p
        .base_per_class
        .iter()
        .enumerate()
        .filter(|(c, _)| *c != ship);
    let base_retain = others.map(|(_, v)| v).sum::<f64>() / 9.0;
    let base = &ModelRole::Base;
    let mut wants = vec![
        Want::new("base accuracy", base, None, "accuracy").is(p.base_accuracy),
        Want::new("base forget-acc", base, SHIP, "forget-acc").is(p.base_per_class[ship]),
        Want::new("base retain-acc (derived)", base, SHIP, "retain-acc").is(base_retain),
        Want::new("base MIA AUC", base, SHIP, "mia-auc").is(p.mia_base),
    ];
    for (c, acc) in (0u32..).zip(p.expert_accuracy) {
        let quantity = format!("expert {c} accuracy");
        let w = Want::new(&quantity, &ModelRole::Expert, Some(c), "accuracy");
        wants.push(w.is(acc).if_ours());
    }
    for (name, (retain, forget)) in [
        ("gradient-ascent", p.gradient_ascent),
        ("random-labels", p.random_labels),
    ] {
        let role = ModelRole::Baseline(name.to_owned());
        let r = Want::new(&format!("{name} retain-acc"), &role, SHIP, "retain-acc");
        let f = Want::new(&format!("{name} forget-acc"), &role, SHIP, "forget-acc");
        wants.extend([r.is(retain).if_ours(), f.is(forget).if_ours()]);
    }
    wants
}

/// The unlearned ship model (docs/study.md §8.5-8.10) and every class forgotten with the ship
/// optimum (§8.4).
fn unlearned(p: &PublishedArch) -> Vec<Want> {
    let u = &ModelRole::Unlearned;
    let a = p.anamnesis;
    let mut wants = vec![
        Want::new("unlearned accuracy", u, SHIP, "accuracy").is(p.unlearned_accuracy),
        Want::new("KL forget", u, SHIP, "kl-forget").is(p.kl_forget),
        Want::new("KL retain", u, SHIP, "kl-retain").is(p.kl_retain),
        Want::new("ZRF", u, SHIP, "zrf").is(p.zrf),
        Want::new("unlearned MIA AUC", u, SHIP, "mia-auc").is(p.mia_unlearned),
        Want::new("over-forgetting gap", u, SHIP, "over-forgetting-gap").is(p.over_forgetting_gap),
        Want::new("AIN target", u, SHIP, "ain-target").is(a.target),
        Want::new("AIN relearn (unlearned)", u, SHIP, "ain-steps-unlearned")
            .is(f64::from(a.epochs_unlearned)),
        Want::new("AIN relearn (retrained)", u, SHIP, "ain-steps-retrained")
            .is(f64::from(a.epochs_retrained)),
        Want::new("AIN", u, SHIP, "ain").is(a.ain),
    ];
    for (c, (retain, forget)) in (0u32..).zip(p.ablation) {
        let r = Want::new(
            &format!("class {c} forgotten: retain-acc"),
            u,
            Some(c),
            "retain-acc",
        );
        let f = Want::new(
            &format!("class {c} forgotten: forget-acc"),
            u,
            Some(c),
            "forget-acc",
        );
        wants.extend([r.is(retain).if_ours(), f.is(forget).if_ours()]);
    }
    wants
}

/// The grid optimum of the `select` input whose chosen candidate is of this architecture.
fn optimum(table: &mut Table, view: &View<'_>, p: &PublishedArch) {
    let found = view
        .selects
        .iter()
        .find(|(_, s)| chosen_arch(s) == Some(p.arch));
    let o = p.optimum;
    let ours = |text: Option<String>| Some((text?, found?.0));
    let chosen = found.map(|(_, s)| &s.chosen);
    let axis = |name: &str| ours(chosen?.axes.get(name)?.as_f64().map(fmt_axis));
    let metric = |name: &str| ours(chosen?.metrics.get(name).map(|v| fmt_metric(name, *v)));
    let score = ours(chosen.map(|c| format!("{:.3}", c.score)));
    let status = ours(found.map(|(_, s)| s.status.clone()));
    let rows = [
        ("alpha", axis("alpha"), fmt_axis(o.alpha)),
        ("rho", axis("rho"), fmt_axis(o.rho)),
        (
            "retain-acc",
            metric("retain-acc"),
            fmt_metric("retain-acc", o.retain),
        ),
        (
            "forget-acc",
            metric("forget-acc"),
            fmt_metric("forget-acc", o.forget),
        ),
        ("score", score, format!("{:.3}", o.score)),
        ("status", status, o.status.to_owned()),
    ];
    for (name, ours, published) in rows {
        row(table, format!("optimum {name}"), ours, published);
    }
}
