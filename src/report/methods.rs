//! Every way of forgetting against the retrained model, in the form unlearning papers report it
//! (docs/study.md §7.10): per network, each method's forget, retain and test accuracy, MIA score
//! and cost, their gaps to the retrained model of the same seed, the average gap and ToW, each as
//! a mean with a Student-t 95 % interval over the seeds; and a plot of cost against average gap.
//! The MIA score is `mia-efficacy` where the retrained model's evaluation has it, otherwise the
//! entropy MIA AUC × 100 with a note under the heading.
//!
//! A method's figures come from the evaluation of its model on the test split that has forget,
//! retain and overall accuracy; its cost is the wall time in its model's record (for task
//! arithmetic, the expert's plus the surgery's, as in the time benchmark). Seeds are the `seed`
//! axis of the evaluated model's node id; without one a method has a single value and no
//! interval.

use tarun_ml::metrics::{Gaps, Interval, MethodFigures, gaps};

use super::View;
use super::charts::{Labelled, labelled_points};
use super::doc::{Document, Figure, Table, fmt_seconds, slug};
use super::model::{EvalInfo, ModelRole, Provenance};

/// How the comparison names a role, in row order; `None` for roles it leaves out.
pub fn method_name(role: &ModelRole) -> Option<(usize, &'static str)> {
    Some(match role {
        ModelRole::Unlearned => (0, "task arithmetic"),
        ModelRole::Baseline(b) => match b.as_str() {
            "gradient-ascent" => (1, "gradient ascent"),
            "random-labels" => (2, "random labels"),
            "fine-tune" => (3, "fine-tuning"),
            "l1-sparse" => (4, "l1-sparse"),
            "scrub" => (5, "SCRUB"),
            "salun" => (6, "SalUn"),
            _ => (7, "other baseline"),
        },
        ModelRole::Retrained => (8, "retrained (reference)"),
        _ => return None,
    })
}

/// One seed of one method.
#[derive(Clone, Debug)]
pub struct SeedRun<'a> {
    pub seed: String,
    pub figures: MethodFigures,
    /// Against the retrained model of the same seed, when there is one.
    pub gaps: Option<Gaps>,
    pub source: &'a Provenance,
}

/// One method on one network, over its seeds.
#[derive(Clone, Debug)]
pub struct MethodRow<'a> {
    pub order: usize,
    pub name: &'static str,
    pub role: ModelRole,
    pub runs: Vec<SeedRun<'a>>,
}

impl MethodRow<'_> {
    /// The interval of one figure over the seeds that have it.
    pub fn interval(&self, f: impl Fn(&SeedRun<'_>) -> Option<f64>) -> Option<Interval> {
        let values: Vec<f64> = self.runs.iter().filter_map(f).collect();
        Interval::of(&values)
    }
}

/// The comparison for one network.
#[derive(Clone, Debug)]
pub struct Comparison<'a> {
    pub arch: &'a str,
    pub forget: u32,
    /// What the MIA column and gap hold.
    pub mia: MiaMeasure,
    pub rows: Vec<MethodRow<'a>>,
}

/// The value of `axis` in a node id such as `unlearned[arch=vgg11_bn,class=8,seed=2]`.
pub fn axis_value(id: &str, axis: &str) -> Option<String> {
    let inner = id.split_once('[')?.1.strip_suffix(']')?;
    inner.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == axis).then(|| v.trim().to_owned())
    })
}

/// Seconds the model cost: its own record's wall time, plus its experts' for an ablation.
pub fn model_cost(view: &View<'_>, model: &str) -> Option<f64> {
    if let Some((p, _)) = view.trains.iter().find(|(p, _)| p.id == model) {
        return Some(p.seconds);
    }
    let (p, a) = view.ablates.iter().find(|(p, _)| p.id == model)?;
    let experts = a
        .vectors
        .iter()
        .map(|v| {
            let e = view.trains.iter().find(|(p, _)| p.id == v.expert);
            e.map(|(p, _)| p.seconds)
        })
        .sum::<Option<f64>>()?;
    Some(p.seconds + experts)
}

/// Which membership-inference figure a comparison's MIA column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MiaMeasure {
    /// `mia-efficacy`, the papers' metric (docs/study.md §7.10).
    Efficacy,
    /// `mia-auc` × 100, the seed study's entropy attack, when the retrained model's evaluation
    /// has no `mia-efficacy`.
    EntropyAuc,
}

impl MiaMeasure {
    /// The measure of the comparison whose reference evaluations are `reference`: efficacy when
    /// one of them has it. Each figure and gap then uses that one measure, never a mix.
    fn of<'e>(mut reference: impl Iterator<Item = &'e EvalInfo>) -> Self {
        if reference.any(|e| e.metrics.contains_key("mia-efficacy")) {
            MiaMeasure::Efficacy
        } else {
            MiaMeasure::EntropyAuc
        }
    }

    /// The figure in percent, if the evaluation has it.
    fn value(self, e: &EvalInfo) -> Option<f64> {
        match self {
            MiaMeasure::Efficacy => e.metrics.get("mia-efficacy").copied(),
            MiaMeasure::EntropyAuc => e.metrics.get("mia-auc").map(|a| 100.0 * a),
        }
    }

    fn column(self) -> &'static str {
        match self {
            MiaMeasure::Efficacy => "MIA-efficacy (%)",
            MiaMeasure::EntropyAuc => "MIA AUC (%)",
        }
    }
}

fn figures(view: &View<'_>, e: &EvalInfo, mia: MiaMeasure) -> Option<MethodFigures> {
    let m = |k: &str| e.metrics.get(k).copied();
    Some(MethodFigures {
        forget_acc: m("forget-acc")?,
        retain_acc: m("retain-acc")?,
        test_acc: m("accuracy")?,
        mia: mia.value(e),
        seconds: model_cost(view, &e.model),
    })
}

/// The comparisons, networks in order of first evaluation; only networks with a retrained model
/// and at least one other method.
pub fn comparisons<'a>(view: &View<'a>) -> Vec<Comparison<'a>> {
    let mut out = vec![];
    for (arch, evals) in view.evals_by_arch() {
        let Some(forget) = evals
            .iter()
            .find(|(_, e)| e.role == ModelRole::Retrained)
            .and_then(|(_, e)| e.forget)
        else {
            continue;
        };
        let eligible = |e: &EvalInfo| {
            e.forget == Some(forget) && e.split.as_deref().is_none_or(|s| s == "test")
        };
        let mia = MiaMeasure::of(
            evals
                .iter()
                .map(|&(_, e)| e)
                .filter(|e| e.role == ModelRole::Retrained && eligible(e)),
        );
        let mut rows: Vec<MethodRow<'a>> = vec![];
        for &(p, e) in &evals {
            let Some((order, name)) = method_name(&e.role) else {
                continue;
            };
            if !eligible(e) {
                continue;
            }
            let Some(fig) = figures(view, e, mia) else {
                continue;
            };
            let seed = axis_value(&e.model, "seed").unwrap_or_default();
            let row = match rows.iter_mut().find(|r| r.role == e.role) {
                Some(r) => r,
                None => {
                    rows.push(MethodRow {
                        order,
                        name,
                        role: e.role.clone(),
                        runs: vec![],
                    });
                    rows.last_mut().expect("just pushed")
                }
            };
            // One evaluation per seed: the first one read, or a later one that has the MIA
            // figure the first lacks.
            let run = SeedRun {
                seed,
                figures: fig,
                gaps: None,
                source: p,
            };
            match row.runs.iter_mut().find(|r| r.seed == run.seed) {
                None => row.runs.push(run),
                Some(r) if r.figures.mia.is_none() && run.figures.mia.is_some() => *r = run,
                Some(_) => {}
            }
        }
        let reference: Vec<(String, MethodFigures)> = rows
            .iter()
            .filter(|r| r.role == ModelRole::Retrained)
            .flat_map(|r| r.runs.iter().map(|s| (s.seed.clone(), s.figures)))
            .collect();
        for row in &mut rows {
            for run in &mut row.runs {
                let r = reference.iter().find(|(s, _)| *s == run.seed);
                run.gaps = r.map(|(_, r)| gaps(&run.figures, r));
            }
        }
        rows.sort_by_key(|r| r.order);
        if rows.len() > 1 && !reference.is_empty() {
            out.push(Comparison {
                arch,
                forget,
                mia,
                rows,
            });
        }
    }
    out
}

/// `mean ± half-width`, or the mean alone for one seed; `—` when no seed has the figure.
pub fn fmt_interval(i: Option<Interval>, decimals: usize) -> String {
    match i {
        None => "—".into(),
        Some(Interval {
            mean,
            half_width: Some(h),
            ..
        }) => format!("{mean:.decimals$} ± {h:.decimals$}"),
        Some(i) => format!("{:.decimals$}", i.mean),
    }
}

pub fn section(doc: &mut Document, view: &View<'_>) {
    let found = comparisons(view);
    if found.is_empty() {
        return;
    }
    doc.heading(2, "Unlearning methods against the retrained model");
    doc.paragraph(
        "Each method beside the model retrained without the forget class, as unlearning papers \
         report them: accuracy on the forget class's test images, on the other classes' test \
         images and on the whole test set; membership-inference efficacy, the percentage of the \
         forget class's training images that a confidence-threshold attacker fitted on retained \
         training images against held-out images calls non-members (higher is more forgotten; \
         docs/study.md §7.10); and the cost, the wall time of the \
         method's own nodes (for task arithmetic the expert fine-tuning plus the surgery; for \
         the reference, the retraining). Gaps are absolute differences from the retrained model \
         of the same seed, in percentage points; **Avg. Gap** is the mean of the four gaps and \
         **ToW** the product of (1 − gap / 100) over the three accuracies (1 is a perfect \
         match). Each cell is the mean over seeds ± the half-width of its 95 % Student-t \
         interval; a single seed shows the value alone.",
    );
    for c in &found {
        doc.heading(3, format!("Architecture `{}`", c.arch));
        if c.mia == MiaMeasure::EntropyAuc {
            doc.paragraph(
                "The retrained model's evaluation has no `mia-efficacy`, so the MIA column holds \
                 the seed study's entropy MIA AUC × 100 instead (forget-class training images \
                 against its test images, docs/study.md §7.4); add `\"mia-efficacy\"` to the \
                 evaluations' metrics for the papers' figure.",
            );
        }
        doc.table(figures_table(c));
        doc.table(gaps_table(c));
        doc.figures(vec![plot(c)]);
    }
}

fn figures_table(c: &Comparison<'_>) -> Table {
    let mut t = Table::new(&[
        "method",
        "seeds",
        "forget acc",
        "retain acc",
        "test acc",
        c.mia.column(),
        "cost (s)",
    ]);
    for r in &c.rows {
        let f =
            |g: fn(&MethodFigures) -> Option<f64>| fmt_interval(r.interval(|s| g(&s.figures)), 2);
        let cells = vec![
            r.name.into(),
            r.runs.len().to_string(),
            f(|m| Some(m.forget_acc)),
            f(|m| Some(m.retain_acc)),
            f(|m| Some(m.test_acc)),
            f(|m| m.mia),
            match r.interval(|s| s.figures.seconds) {
                Some(i) if i.half_width.is_none() => fmt_seconds(i.mean),
                other => fmt_interval(other, 1),
            },
        ];
        t.push(cells, r.runs.first().map(|s| s.source));
    }
    t
}

fn gaps_table(c: &Comparison<'_>) -> Table {
    let mut t = Table::new(&[
        "method",
        "forget gap",
        "retain gap",
        "test gap",
        "MIA gap",
        "Avg. Gap",
        "ToW",
    ]);
    for r in c.rows.iter().filter(|r| r.role != ModelRole::Retrained) {
        let g = |f: fn(&Gaps) -> Option<f64>, d| {
            fmt_interval(r.interval(|s| s.gaps.as_ref().and_then(f)), d)
        };
        let cells = vec![
            r.name.into(),
            g(|g| Some(g.forget), 2),
            g(|g| Some(g.retain), 2),
            g(|g| Some(g.test), 2),
            g(|g| g.mia, 2),
            g(|g| Some(g.average), 2),
            g(|g| Some(g.tow), 4),
        ];
        t.push(cells, r.runs.first().map(|s| s.source));
    }
    t
}

/// Colours of the methods, by row order.
const COLOURS: [&str; 9] = [
    "#e63946", "#6c757d", "#adb5bd", "#1d3557", "#457b9d", "#2a9d8f", "#e9c46a", "#8d99ae",
    "#000000",
];

/// Cost against average gap, one point per method with its gap's interval as a vertical bar.
fn plot(c: &Comparison<'_>) -> Figure {
    let points: Vec<Labelled> = c
        .rows
        .iter()
        .filter(|r| r.role != ModelRole::Retrained)
        .filter_map(|r| {
            let cost = r.interval(|s| s.figures.seconds)?;
            let gap = r.interval(|s| s.gaps.map(|g| g.average))?;
            Some(Labelled {
                label: r.name.into(),
                colour: COLOURS[r.order.min(COLOURS.len() - 1)].into(),
                x: cost.mean,
                y: gap.mean,
                y_bounds: gap.half_width.map(|_| gap.bounds()),
            })
        })
        .collect();
    let title = format!("Cost against Avg. Gap, {}", c.arch);
    Figure {
        file: format!("methods-{}.svg", slug(c.arch)),
        title: title.clone(),
        caption: format!(
            "Each method's mean cost over seeds (wall seconds of its nodes) against its mean \
             average gap to the retrained model, forgetting class {}; bars are 95 % intervals \
             of the gap. Lower left is better.",
            c.forget
        ),
        source: c
            .rows
            .iter()
            .find(|r| r.role == ModelRole::Retrained)
            .and_then(|r| r.runs.first())
            .map(|s| s.source.short().to_owned()),
        svg: labelled_points(&title, "cost (s)", "Avg. Gap (pp)", &points),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_values_come_from_the_node_id() {
        let id = "unlearned[arch=vgg11_bn,class=8,seed=2]";
        assert_eq!(axis_value(id, "seed").as_deref(), Some("2"));
        assert_eq!(axis_value(id, "class").as_deref(), Some("8"));
        assert_eq!(axis_value(id, "alpha"), None);
        assert_eq!(axis_value("retrained", "seed"), None);
    }

    #[test]
    fn intervals_print_with_and_without_a_half_width() {
        assert_eq!(fmt_interval(Interval::of(&[1.0, 3.0]), 2), "2.00 ± 12.71");
        assert_eq!(fmt_interval(Interval::of(&[1.0]), 1), "1.0");
        assert_eq!(fmt_interval(None, 2), "—");
    }
}
