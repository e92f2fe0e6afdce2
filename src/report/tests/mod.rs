//! End-to-end tests of [`build_report`] on small hand-made studies.

use std::collections::BTreeMap;

use tarun_core::manifest::Protocol;

use super::doc::fmt_metric;
use super::grid::grid;
use super::model::{
    AblateInfo, Content, EpochRow, EvalInfo, ModelRole, Provenance, Relearn, RelearnPoint,
    ReportInput, ReportStudy, TrainInfo, TrainParams, Tsne, VectorInfo,
};
use super::timeline::{Frame, MAX_PANELS, timeline};
use super::timing::benchmarks;
use super::{View, build_report};
use crate::kinds::{Candidate, Selection};

mod methods;
mod sharing;
mod timeline;

const ARCH: &str = "vgg11_bn";

fn prov(id: &str, kind: &str, key_digit: char, seconds: f64) -> Provenance {
    Provenance {
        id: id.into(),
        kind: kind.into(),
        key: key_digit.to_string().repeat(64),
        seconds,
        device: "cpu".into(),
        started: "2026-12-04T10:00:00Z".parse().unwrap(),
        run_id: "run".into(),
    }
}

fn train(id: &str, key: char, seconds: f64, expert: bool, params: TrainParams) -> ReportInput {
    let epoch = EpochRow {
        epoch: 0,
        lr: 1e-3,
        mean_loss: 0.5,
        train_accuracy: 0.9,
        steps: 4,
        images: 512,
    };
    ReportInput {
        prov: prov(id, if expert { "expert" } else { "train" }, key, seconds),
        content: Content::Train(TrainInfo {
            expert,
            arch: ARCH.into(),
            width: 0.125,
            train_images: 512,
            epochs: vec![epoch],
            steps: 4,
            images: 512,
            fit_seconds: seconds * 0.9,
            params,
        }),
    }
}

fn candidate(alpha: f64, rho: f64, retain: f64, forget: f64) -> Candidate {
    Candidate {
        id: format!("score[alpha={alpha},rho={rho}]"),
        axes: BTreeMap::from([
            ("arch".to_owned(), ARCH.into()),
            ("alpha".to_owned(), alpha.into()),
            ("rho".to_owned(), rho.into()),
        ]),
        metrics: BTreeMap::from([
            ("retain-acc".to_owned(), retain),
            ("forget-acc".to_owned(), forget),
        ]),
        score: retain - 1.5 * forget,
        passed: retain > 75.0 && forget < 20.0,
    }
}

fn selection() -> Selection {
    let mut candidates = vec![];
    for (i, alpha) in [-1.0, -2.0].into_iter().enumerate() {
        for (j, rho) in [0.5, 0.75, 0.99].into_iter().enumerate() {
            let k = (i * 3 + j) as f64;
            candidates.push(candidate(alpha, rho, 60.0 + 4.0 * k, 30.0 - 5.0 * k));
        }
    }
    let chosen = candidates[5].clone();
    Selection {
        status: "PASSED".into(),
        score: "retain-acc - 1.5 * forget-acc".into(),
        require: vec![],
        chosen,
        candidates,
    }
}

fn eval(id: &str, key: char, model: &str, role: ModelRole, full: bool) -> ReportInput {
    let mut info = EvalInfo {
        model: model.into(),
        arch: ARCH.into(),
        split: Some("test".into()),
        forget: Some(8),
        class_names: tarun_ml::data::CLASS_NAMES.map(str::to_owned).to_vec(),
        metrics: BTreeMap::from([
            ("accuracy".to_owned(), 76.123),
            ("retain-acc".to_owned(), 85.5444),
            ("forget-acc".to_owned(), 0.1),
        ]),
        role,
        ..EvalInfo::default()
    };
    if full {
        add_everything(&mut info);
    }
    ReportInput {
        prov: prov(id, "evaluate", key, 1.0),
        content: Content::Evaluate(Box::new(info)),
    }
}

/// The metrics and outputs of a full evaluation of an unlearned model.
fn add_everything(info: &mut EvalInfo) {
    info.metrics.extend([
        ("kl-forget".to_owned(), 0.970_459),
        ("zrf".to_owned(), 0.8275),
        ("ain".to_owned(), 0.5),
        ("ain-steps-unlearned".to_owned(), 4.0),
    ]);
    let count = |r: u64, c: u64| if r == c { 90 } else { (r + c) % 3 };
    info.confusion = Some(
        (0..10)
            .map(|r| (0..10).map(|c| count(r, c)).collect())
            .collect(),
    );
    info.tsne = Some(Tsne {
        points: (0..40)
            .map(|i| [f64::from(i % 7), f64::from(i / 7)])
            .collect(),
        labels: (0..40).map(|i| i % 10).collect(),
    });
    let curve = |accs: &[f64]| -> Vec<RelearnPoint> {
        let point = |(step, acc): (f64, &f64)| RelearnPoint {
            step,
            forget_acc: *acc,
            retain_acc: None,
        };
        (0..).map(f64::from).zip(accs).map(point).collect()
    };
    info.relearn = Some(Relearn {
        target: 88.5,
        unit: Some("epoch".into()),
        unlearned: curve(&[0.0, 55.0, 90.0]),
        retrained: curve(&[0.0, 10.0, 40.0, 89.0]),
    });
}

fn only(classes: &[u32]) -> TrainParams {
    TrainParams {
        only: classes.to_vec(),
        ..TrainParams::default()
    }
}

fn inputs() -> Vec<ReportInput> {
    let expert_id = "expert[arch=vgg11_bn,class=8]";
    vec![
        train(
            "base[arch=vgg11_bn]",
            '1',
            400.0,
            false,
            TrainParams::default(),
        ),
        train(
            "retrained[arch=vgg11_bn]",
            '2',
            300.0,
            false,
            TrainParams {
                exclude: vec![8],
                ..TrainParams::default()
            },
        ),
        train(expert_id, '3', 20.0, true, only(&[8])),
        ReportInput {
            prov: prov("unlearned[arch=vgg11_bn,class=8]", "ablate", '4', 2.0),
            content: Content::Ablate(AblateInfo {
                arch: ARCH.into(),
                width: 0.125,
                vectors: vec![VectorInfo {
                    expert: expert_id.into(),
                    alpha: -2.0,
                    rho: 0.99,
                }],
                surgery_seconds: 0.5,
            }),
        },
        ReportInput {
            prov: prov("best[arch=vgg11_bn]", "select", '5', 0.1),
            content: Content::Select(selection()),
        },
        eval(
            "base-eval[arch=vgg11_bn]",
            '6',
            "base[arch=vgg11_bn]",
            ModelRole::Base,
            false,
        ),
        eval(
            "unlearned-eval[arch=vgg11_bn]",
            '7',
            "unlearned[arch=vgg11_bn,class=8]",
            ModelRole::Unlearned,
            true,
        ),
    ]
}

fn study(protocol: Protocol, source: &str) -> ReportStudy {
    ReportStudy {
        name: "s".into(),
        title: "T".into(),
        protocol,
        data_source: Some(source.into()),
        seed: 42,
        data: vec![],
        overrides: vec![],
        version: "0.1.0 (abc1234)".into(),
        rendered: "2026-12-04T21:00:00Z".parse().unwrap(),
    }
}

#[test]
fn savings_follow_the_formula_from_the_records() {
    let inputs = inputs();
    let view = View::new(&inputs);
    let found = benchmarks(&view);
    assert_eq!(found.len(), 1);
    let b = &found[0];
    assert_eq!(
        (b.expert.id.as_str(), b.retrain.id.as_str()),
        ("expert[arch=vgg11_bn,class=8]", "retrained[arch=vgg11_bn]")
    );
    let by_hand = 1.0 - (20.0 + 0.5) / 300.0;
    assert!((b.savings().unwrap() - by_hand).abs() < 1e-12);
    let report = build_report(&inputs, &study(Protocol::Seed, "cifar10"), &[]);
    assert!(
        report.markdown.contains("= 1 − (20.00 + 0.5000) / 300\n"),
        "{}",
        report.markdown
    );
    assert!(
        report
            .markdown
            .contains(&format!("= {:.2} %", by_hand * 100.0))
    );
}

#[test]
fn grid_cells_hold_the_candidates_metrics() {
    let g = grid(&selection(), "retain-acc").unwrap();
    assert_eq!(g.alphas, vec![-1.0, -2.0]);
    assert_eq!(g.rhos, vec![0.5, 0.75, 0.99]);
    assert_eq!(g.values[0], vec![Some(60.0), Some(64.0), Some(68.0)]);
    assert_eq!(g.values[1][2], Some(80.0));
    assert_eq!(g.chosen, Some((1, 2)));
    let forget = grid(&selection(), "forget-acc").unwrap();
    assert_eq!(forget.values[1][0], Some(15.0));
}

#[test]
fn every_metric_appears_with_its_provenance_key() {
    let inputs = inputs();
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    for input in &inputs {
        let Content::Evaluate(e) = &input.content else {
            continue;
        };
        for (name, v) in &e.metrics {
            let value = fmt_metric(name, *v);
            let cited = report
                .markdown
                .lines()
                .any(|l| l.contains(&value) && l.contains(input.prov.short()));
            assert!(
                cited,
                "{name} = {value} of {} has no cited row",
                input.prov.id
            );
        }
    }
    for input in &inputs {
        assert!(
            report.markdown.contains(&input.prov.key),
            "{} missing from provenance",
            input.prov.id
        );
    }
}

#[test]
fn the_html_is_self_contained() {
    let report = build_report(&inputs(), &study(Protocol::Seed, "cifar10"), &[]);
    for external in ["src=\"http", "href=\"http", "<link", "<script", "url("] {
        assert!(!report.html.contains(external), "{external}");
    }
    assert_eq!(report.html.matches("<svg").count(), report.figures.len());
    let mut files: Vec<&str> = report.figures.iter().map(|(f, _)| f.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    assert_eq!(files.len(), report.figures.len());
    assert!(
        files
            .iter()
            .all(|f| f.ends_with(".svg") && !f.contains('/'))
    );
}

#[test]
fn an_evaluation_without_plots_renders_without_their_sections() {
    let inputs = vec![eval("e", 'a', "m", ModelRole::Base, false)];
    let report = build_report(&inputs, &study(Protocol::Corrected, "cifar10"), &[]);
    for absent in [
        "Confusion matrices",
        "t-SNE",
        "Relearning curves",
        "Time benchmark",
        "Grid search",
        "Timeline",
    ] {
        assert!(!report.markdown.contains(absent), "{absent}");
    }
    assert!(report.figures.is_empty());
    assert!(report.markdown.contains("76.12"));
}

#[test]
fn plots_use_the_role_colours() {
    let report = build_report(&inputs(), &study(Protocol::Seed, "cifar10"), &[]);
    let figure = |prefix: &str| {
        report
            .figures
            .iter()
            .find(|(f, _)| f.starts_with(prefix))
            .map(|(_, s)| s.as_str())
            .unwrap()
    };
    assert!(
        figure("confusion-unlearned").contains("#67000d"),
        "darkest red for the largest count"
    );
    // Class 8 (ship), the forget class, in its class colour with the forget ring.
    assert!(
        figure("tsne-unlearned")
            .contains(r##"fill="#bcbd22" fill-opacity="0.95" stroke="#111111""##)
    );
    assert!(figure("relearn-unlearned").contains("target 88.5"));
    assert!(figure("grid-retain-acc").contains("#ff00aa"));
}

#[test]
fn published_numbers_only_for_the_seed_protocol_on_cifar10() {
    let seed = build_report(&inputs(), &study(Protocol::Seed, "cifar10"), &[]);
    assert!(seed.markdown.contains("protocol **seed**"));
    assert!(
        seed.markdown.contains(
            "| KL forget | 0.9705 | 0.9705 | `unlearned-eval[arch=vgg11_bn]` | `777777777777` |"
        ),
        "{}",
        seed.markdown
    );
    assert!(seed.markdown.contains("88.27 %"));
    for (study, why) in [
        (study(Protocol::Seed, "synthetic"), "source"),
        (study(Protocol::Corrected, "cifar10"), "protocol"),
    ] {
        let report = build_report(&inputs(), &study, &[]);
        assert!(report.markdown.contains("apply only to CIFAR-10"), "{why}");
        assert!(!report.markdown.contains("88.27"), "{why}");
    }
}

#[test]
fn unreadable_inputs_are_listed_as_notes() {
    let report = build_report(
        &[],
        &study(Protocol::Corrected, "cifar10"),
        &["`x` could not be read".into()],
    );
    assert!(
        report.markdown.contains("## Notes") && report.markdown.contains("`x` could not be read")
    );
}

#[test]
fn the_summary_puts_each_method_on_one_row_with_the_chosen_point() {
    let inputs = inputs();
    let md = build_report(&inputs, &study(Protocol::Seed, "synthetic"), &[]).markdown;
    let summary = md
        .split("## Summary")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a summary section");
    assert!(summary.contains("Forgetting class 8 (ship)"), "{summary}");
    // The chosen candidate of `selection()` is the last one: alpha -2, rho 0.99, passed.
    assert!(
        summary
            .contains("| vgg11_bn | task arithmetic (alpha -2, rho 0.99, PASSED) | 0.10 | 85.54 |"),
        "{summary}"
    );
    assert!(
        summary.contains("| vgg11_bn | base (before forgetting) |"),
        "{summary}"
    );
    // 1 - (20 + 0.5) / 300 = 93.17 %, from the records' times.
    assert!(summary.contains("20.5 s of expert fine-tuning and surgery against 300.0 s"));
    assert!(summary.contains("93.2 % saved"), "{summary}");
    // The summary comes before the detailed sections.
    assert!(md.find("## Summary").unwrap() < md.find("## Training runs").unwrap());
}

/// The fill and whether it has a ring, of every `<circle>` whose centre is at `cx`.
fn circles_at(svg: &str, cx: &str) -> Vec<(String, bool)> {
    svg.lines()
        .filter(|l| l.starts_with("<circle ") && l.contains(&format!(" cx=\"{cx}\" ")))
        .map(|l| {
            let from = l.find(" fill=\"").unwrap() + 7;
            let fill = l[from..from + 7].to_owned();
            (fill, l.contains(" stroke="))
        })
        .collect()
}

#[test]
fn tsne_points_take_their_class_colour_and_the_legend_names_the_classes() {
    // Class 0 at x = 0, class 1 at x = 1, class 2 at x = 2: in the 380 px plot the points lie at
    // x = 12 + 8 + {0, 0.5, 1} * 364 = 20, 202 and 384 px, so each circle's class is known.
    let info = EvalInfo {
        model: "m".into(),
        arch: ARCH.into(),
        forget: Some(2),
        class_names: tarun_ml::data::CLASS_NAMES.map(str::to_owned).to_vec(),
        tsne: Some(Tsne {
            points: vec![
                [1.0, 0.0],
                [0.0, 1.0],
                [2.0, 2.0],
                [0.0, 3.0],
                [1.0, 4.0],
                [2.0, 5.0],
            ],
            labels: vec![1, 0, 2, 0, 1, 2],
        }),
        ..EvalInfo::default()
    };
    let inputs = vec![ReportInput {
        prov: prov("e", "evaluate", 'e', 1.0),
        content: Content::Evaluate(Box::new(info)),
    }];
    let report = build_report(&inputs, &study(Protocol::Corrected, "cifar10"), &[]);
    let (_, svg) = report
        .figures
        .iter()
        .find(|(f, _)| f.starts_with("tsne-"))
        .expect("a t-SNE figure");
    let (c0, c1, c2) = ("#1f77b4", "#ff7f0e", "#2ca02c");
    let points = |cx| circles_at(svg, cx);
    assert_eq!(points("20"), vec![(c0.to_owned(), false); 2], "{svg}");
    assert_eq!(points("202"), vec![(c1.to_owned(), false); 2], "{svg}");
    // The forget class keeps its colour and gets a ring.
    assert_eq!(points("384"), vec![(c2.to_owned(), true); 2], "{svg}");
    let fills: std::collections::BTreeSet<_> = svg
        .lines()
        .filter(|l| l.starts_with("<circle "))
        .map(|l| l.split(" fill=\"").nth(1).unwrap()[..7].to_owned())
        .collect();
    assert_eq!(fills.len(), 3, "{fills:?}");
    for name in [">airplane (2)<", ">automobile (2)<", ">bird (forget) (2)<"] {
        assert!(svg.contains(name), "legend lacks {name}: {svg}");
    }
}
