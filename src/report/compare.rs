//! Our numbers beside the seed's published CIFAR-10 numbers (seed-spec 8), for studies that
//! ran the seed protocol on CIFAR-10. Ours are looked up by the evaluated model's role (base,
//! expert, baseline, unlearned) and forget class. Headline numbers are always listed (against
//! a dash when no input has them); per-class families only where we have the number.

use super::View;
use super::doc::{Document, Table, fmt_axis, fmt_metric};
use super::model::{ModelRole, Provenance, ReportStudy};
use super::published::{FORGET_CLASS, PUBLISHED, PublishedArch};
use crate::kinds::Selection;

const HEADER: [&str; 5] = ["quantity", "ours", "published", "seed-spec", "model"];
const SHIP: Option<u32> = Some(FORGET_CLASS);

/// One published metric and where our counterpart is looked up.
struct Want {
    quantity: String,
    role: ModelRole,
    forget: Option<u32>,
    metric: &'static str,
    published: f64,
    section: &'static str,
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
            section: "",
            always: true,
        }
    }

    fn is(self, published: f64, section: &'static str) -> Want {
        Want {
            published,
            section,
            ..self
        }
    }

    fn if_ours(self) -> Want {
        Want {
            always: false,
            ..self
        }
    }
}

/// Appends a row: quantity, ours, published, section, the model it was measured on.
fn row(
    table: &mut Table,
    quantity: String,
    ours: Option<(String, &Provenance)>,
    published: String,
    section: &str,
) {
    let (ours_text, source) = match ours {
        Some((t, p)) => (t, Some(p)),
        None => ("–".to_owned(), None),
    };
    let model = source.map(|p| format!("`{}`", p.id)).unwrap_or_default();
    table.push(
        vec![quantity, ours_text, published, format!("§{section}"), model],
        source,
    );
}

fn add(table: &mut Table, view: &View<'_>, w: Want) {
    let ours = view.metric(&w.role, w.forget, w.metric);
    if ours.is_some() || w.always {
        let ours = ours.map(|(v, p)| (fmt_metric(w.metric, v), p));
        row(
            table,
            w.quantity,
            ours,
            fmt_metric(w.metric, w.published),
            w.section,
        );
    }
}

/// The comparison section, or a sentence saying why there is none.
pub fn section(doc: &mut Document, view: &View<'_>, study: &ReportStudy) {
    doc.heading(2, "Published numbers");
    if !study.compares_with_published() {
        doc.paragraph(
            "The seed's published numbers (seed-spec 8) apply only to CIFAR-10 under the seed \
             protocol; this study ran a different protocol or data source, so none are shown.",
        );
        return;
    }
    doc.paragraph(
        "The seed's numbers are single runs (seed 42, Apple-Silicon MPS, no error bars); \
         differences of a few points are within what reruns of the seed itself show \
         (seed-spec 10.2). `forget` is ship (class 8) unless a class is named.",
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

/// Base models (8.1, 8.7), experts (8.1) and the two baselines (8.3).
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
        Want::new("base accuracy", base, None, "accuracy").is(p.base_accuracy, "8.1"),
        Want::new("base forget-acc", base, SHIP, "forget-acc").is(p.base_per_class[ship], "8.1"),
        Want::new("base retain-acc", base, SHIP, "retain-acc").is(base_retain, "8.1 (derived)"),
        Want::new("base MIA AUC", base, SHIP, "mia-auc").is(p.mia_base, "8.7"),
    ];
    for (c, acc) in (0u32..).zip(p.expert_accuracy) {
        let quantity = format!("expert {c} accuracy");
        let w = Want::new(&quantity, &ModelRole::Expert, Some(c), "accuracy");
        wants.push(w.is(acc, "8.1").if_ours());
    }
    for (name, (retain, forget)) in [
        ("gradient-ascent", p.gradient_ascent),
        ("random-labels", p.random_labels),
    ] {
        let role = ModelRole::Baseline(name.to_owned());
        let r = Want::new(&format!("{name} retain-acc"), &role, SHIP, "retain-acc");
        let f = Want::new(&format!("{name} forget-acc"), &role, SHIP, "forget-acc");
        wants.extend([r.is(retain, "8.3").if_ours(), f.is(forget, "8.3").if_ours()]);
    }
    wants
}

/// The unlearned ship model (8.5-8.10) and every class forgotten with the ship optimum (8.4).
fn unlearned(p: &PublishedArch) -> Vec<Want> {
    let u = &ModelRole::Unlearned;
    let a = p.anamnesis;
    let mut wants = vec![
        Want::new("unlearned accuracy", u, SHIP, "accuracy").is(p.unlearned_accuracy, "8.10"),
        Want::new("KL forget", u, SHIP, "kl-forget").is(p.kl_forget, "8.5"),
        Want::new("KL retain", u, SHIP, "kl-retain").is(p.kl_retain, "8.5"),
        Want::new("ZRF", u, SHIP, "zrf").is(p.zrf, "8.6"),
        Want::new("unlearned MIA AUC", u, SHIP, "mia-auc").is(p.mia_unlearned, "8.7"),
        Want::new("over-forgetting gap", u, SHIP, "over-forgetting-gap")
            .is(p.over_forgetting_gap, "8.8"),
        Want::new("AIN target", u, SHIP, "ain-target").is(a.target, "8.9"),
        Want::new("AIN relearn (unlearned)", u, SHIP, "ain-steps-unlearned")
            .is(f64::from(a.epochs_unlearned), "8.9"),
        Want::new("AIN relearn (retrained)", u, SHIP, "ain-steps-retrained")
            .is(f64::from(a.epochs_retrained), "8.9"),
        Want::new("AIN", u, SHIP, "ain").is(a.ain, "8.9"),
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
        wants.extend([r.is(retain, "8.4").if_ours(), f.is(forget, "8.4").if_ours()]);
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
        row(table, format!("optimum {name}"), ours, published, "8.2");
    }
}
