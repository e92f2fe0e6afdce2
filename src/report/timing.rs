//! The time benchmark from provenance (docs/study.md §7.9, corrected): the seconds already in the
//! records of the real pipeline's retrained model, expert and ablation, with no extra training.

use super::View;
use super::doc::{Block, Document, Table, fmt_seconds};
use super::model::{AblateInfo, Provenance, ReportStudy, TrainInfo};
use super::published::TIME_BENCHMARK;

/// The three records of one architecture's benchmark and what they give.
#[derive(Clone, Debug)]
pub struct Benchmark<'a> {
    pub arch: &'a str,
    pub retrain: &'a Provenance,
    pub expert: &'a Provenance,
    pub ablate: &'a Provenance,
    pub t_expert: f64,
    pub t_surgery: f64,
    pub t_retrain: f64,
}

impl Benchmark<'_> {
    /// 1 − (t_expert + t_surgery) / t_retrain, as a fraction; `None` without a retrain time.
    pub fn savings(&self) -> Option<f64> {
        savings(self.t_expert, self.t_surgery, self.t_retrain)
    }
}

/// The seed's formula (docs/study.md §7.9), as a fraction.
pub fn savings(t_expert: f64, t_surgery: f64, t_retrain: f64) -> Option<f64> {
    (t_retrain > 0.0).then(|| 1.0 - (t_expert + t_surgery) / t_retrain)
}

/// One benchmark per retrained model that has an ablation of the same architecture whose task
/// vector comes from an expert among the inputs; an ablation whose expert was fine-tuned on
/// exactly the retrained model's excluded classes is preferred.
pub fn benchmarks<'a>(view: &View<'a>) -> Vec<Benchmark<'a>> {
    let mut out = vec![];
    for &(retrain, r) in view.trains.iter().filter(|(_, t)| t.is_retrained()) {
        if out.iter().any(|b: &Benchmark<'_>| b.arch == r.arch) {
            continue;
        }
        let experts = |a: &AblateInfo| -> Vec<(&'a Provenance, &'a TrainInfo)> {
            a.vectors
                .iter()
                .filter_map(|v| {
                    view.trains
                        .iter()
                        .find(|(p, t)| t.expert && p.id == v.expert)
                        .copied()
                })
                .collect()
        };
        let candidates: Vec<_> = view
            .ablates
            .iter()
            .filter(|(_, a)| a.arch == r.arch)
            .filter_map(|&(p, a)| Some((p, a, *experts(a).first()?)))
            .collect();
        let matched = candidates
            .iter()
            .find(|(_, _, (_, e))| e.params.only == r.params.exclude);
        if let Some(&(ablate, a, (expert, _))) = matched.or(candidates.first()) {
            out.push(Benchmark {
                arch: &r.arch,
                retrain,
                expert,
                ablate,
                t_expert: expert.seconds,
                t_surgery: a.surgery_seconds,
                t_retrain: retrain.seconds,
            });
        }
    }
    out
}

/// The benchmark section, with the published VGG numbers beside ours when they apply.
pub fn section(doc: &mut Document, view: &View<'_>, study: &ReportStudy) {
    let found = benchmarks(view);
    if found.is_empty() {
        return;
    }
    doc.heading(2, "Time benchmark");
    doc.paragraph(
        "Unlearning by task arithmetic costs one expert fine-tuning plus the surgery; the \
         alternative is retraining without the forget class. The seconds are the wall-clock \
         times in the records of the real pipeline (no extra training, unlike the original \
         study's timing script, which trained fresh models only to time them). Base training, \
         the grid search and the other experts are excluded, as in the original study.",
    );
    for b in &found {
        doc.heading(3, format!("Architecture `{}`", b.arch));
        doc.table(table(b));
        doc.blocks.push(Block::Formula(formula(b)));
        if b.expert.device != b.retrain.device {
            doc.paragraph(format!(
                "Caution: the expert ran on `{}` and the retraining on `{}`; the ratio mixes \
                 devices.",
                b.expert.device, b.retrain.device
            ));
        }
        if study.compares_with_published() && b.arch == TIME_BENCHMARK.arch {
            published(doc);
        }
    }
}

/// The three timings, each cited.
fn table(b: &Benchmark<'_>) -> Table {
    let mut table = Table::new(&["step", "node", "seconds", "measured", "device"]);
    let wall = "record wall time";
    let rows = [
        ("expert fine-tuning (t_expert)", b.expert, b.t_expert, wall),
        (
            "surgery (t_surgery)",
            b.ablate,
            b.t_surgery,
            "`surgery-seconds`",
        ),
        ("retraining (t_retrain)", b.retrain, b.t_retrain, wall),
    ];
    for (step, p, seconds, how) in rows {
        let id = format!("`{}`", p.id);
        let cells = vec![
            step.into(),
            id,
            fmt_seconds(seconds),
            how.into(),
            p.device.clone(),
        ];
        table.push(cells, Some(p));
    }
    table
}

fn formula(b: &Benchmark<'_>) -> String {
    let result = b
        .savings()
        .map(|s| format!("{:.2} %", s * 100.0))
        .unwrap_or_else(|| "undefined (no retrain time)".into());
    format!(
        "savings = 1 − (t_expert + t_surgery) / t_retrain\n        = 1 − ({} + {}) / {}\n        = {result}",
        fmt_seconds(b.t_expert),
        fmt_seconds(b.t_surgery),
        fmt_seconds(b.t_retrain)
    )
}

fn published(doc: &mut Document) {
    let t = TIME_BENCHMARK;
    doc.paragraph(format!(
        "Published by the original study (Apple-Silicon MPS): 1 − ({:.2} + {:.2}) / {:.2} = \
         **{:.2} %**. It timed freshly initialised models, an expert loop of 1,955 small-batch \
         steps and a retraining recipe that differs from the one its results used, so only the \
         order of magnitude is comparable.",
        t.expert_seconds, t.surgery_seconds, t.retrain_seconds, t.savings_percent
    ));
}
