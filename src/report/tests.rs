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

/// A record of run `run` on `device`, started `at` seconds after `day`'s 10:00 UTC.
fn timed(
    id: &str,
    kind: &str,
    run: &str,
    day: &str,
    at: f64,
    seconds: f64,
    device: &str,
) -> ReportInput {
    let day: jiff::Timestamp = format!("{day}T10:00:00Z").parse().unwrap();
    let mut prov = prov(id, kind, 'c', seconds);
    prov.started = day
        .checked_add(jiff::SignedDuration::from_secs_f64(at))
        .unwrap();
    prov.run_id = run.into();
    prov.device = device.into();
    ReportInput {
        prov,
        content: Content::Other,
    }
}

/// The newest run `run-b`: on cpu, `a` [0, 10] and `b` [5, 15] overlap, `c` [20, 25] follows;
/// `d` [2, 24] on cuda:0. Three older runs of 1, 2 and 3 records, the oldest of which is not
/// drawn; their ids do not sort in the order of time.
fn timed_inputs() -> Vec<ReportInput> {
    let new = "2026-12-04";
    vec![
        timed("c", "evaluate", "run-b", new, 20.0, 5.0, "cpu"),
        timed("a", "train", "run-b", new, 0.0, 10.0, "cpu"),
        timed("d", "train", "run-b", new, 2.0, 22.0, "cuda:0"),
        timed("b", "expert", "run-b", new, 5.0, 10.0, "cpu"),
        timed("m", "train", "run-c", "2026-12-03", 0.0, 1.0, "cpu"),
        timed("o1", "train", "run-a", "2026-12-01", 0.0, 1.0, "cpu"),
        timed("o2", "train", "run-a", "2026-12-01", 3.0, 1.0, "cpu"),
        timed("z1", "train", "run-d", "2026-11-20", 0.0, 1.0, "cpu"),
        timed("z2", "train", "run-d", "2026-11-20", 0.0, 1.0, "cpu"),
        timed("z3", "train", "run-d", "2026-11-20", 0.0, 1.0, "cpu"),
    ]
}

#[test]
fn the_timeline_has_a_panel_per_run_newest_first() {
    let inputs = timed_inputs();
    let t = timeline(inputs.iter().map(|i| &i.prov));
    let runs: Vec<&str> = t.panels.iter().map(|p| p.run_id).collect();
    assert_eq!(runs, ["run-b", "run-c", "run-a"]);
    assert_eq!(MAX_PANELS, 3);
    assert_eq!((t.hidden_runs, t.hidden_records), (1, 3));
    let counts: Vec<usize> = t.panels.iter().map(|p| p.records()).collect();
    assert_eq!(counts, [4, 1, 2]);
    // run-a: [0, 1] and [3, 4]: one sub-lane, busy 2 s of a 4 s span.
    let old = &t.panels[2];
    assert_eq!(
        (old.span, old.lanes[0].rows, old.lanes[0].busy),
        (4.0, 1, 2.0)
    );

    let md = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]).markdown;
    assert!(md.contains("## Timeline"), "{md}");
    assert!(
        md.contains("Not drawn: 3 records from 1 older run (at most 3 runs are drawn)."),
        "{md}"
    );
    let order: Vec<usize> = ["### Run `run-b`", "### Run `run-c`", "### Run `run-a`"]
        .iter()
        .map(|h| md.find(h).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(!md.contains("run-d`"));
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    let files: Vec<&str> = report.figures.iter().map(|(f, _)| f.as_str()).collect();
    // Each panel's legend names its own kinds; run-c ran only a `train` node.
    let run_c = &report.figures[1].1;
    assert!(run_c.contains(">train</text>") && !run_c.contains(">expert</text>"));
    assert_eq!(
        files,
        [
            "timeline-run-b.svg",
            "timeline-run-c.svg",
            "timeline-run-a.svg"
        ]
    );
}

#[test]
fn overlapping_jobs_on_a_device_take_separate_sub_lanes() {
    let inputs = timed_inputs();
    let t = timeline(inputs.iter().map(|i| &i.prov));
    let p = &t.panels[0];
    let devices: Vec<&str> = p.lanes.iter().map(|l| l.device).collect();
    assert_eq!(devices, ["cpu", "cuda:0"]);
    let rows = |lane: usize| -> Vec<(&str, usize)> {
        p.lanes[lane]
            .bars
            .iter()
            .map(|b| (b.prov.id.as_str(), b.row))
            .collect()
    };
    // `b` starts before `a` ends; `c` starts after `a` ended and reuses its sub-lane.
    assert_eq!(rows(0), [("a", 0), ("b", 1), ("c", 0)]);
    assert_eq!(rows(1), [("d", 0)]);
    assert_eq!((p.lanes[0].rows, p.lanes[1].rows), (2, 1));
}

#[test]
fn the_run_table_gives_span_busy_seconds_and_utilisation() {
    let inputs = timed_inputs();
    let t = timeline(inputs.iter().map(|i| &i.prov));
    let p = &t.panels[0];
    // First start a at 0, last end c at 25.
    assert_eq!(p.span, 25.0);
    // cpu: [0, 15] (a and b) and [20, 25] (c) = 20 s, 80 %; cuda:0: d's 22 s, 88 %.
    assert_eq!((p.lanes[0].busy, p.lanes[1].busy), (20.0, 22.0));
    assert_eq!(p.utilisation(&p.lanes[0]), Some(0.8));
    assert_eq!(p.utilisation(&p.lanes[1]), Some(0.88));
    let md = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]).markdown;
    assert!(
        md.contains("4 nodes on 2 devices, from 2026-12-04 10:00:00 to 2026-12-04 10:00:25 UTC: a span of 25.00 s."),
        "{md}"
    );
    assert!(md.contains("| `cpu` | 3 | 2 | 20.00 | 80.0 % |"), "{md}");
    assert!(md.contains("| `cuda:0` | 1 | 1 | 22.00 | 88.0 % |"), "{md}");
}

/// The x, y and width of the bar whose `<title>` starts with `id`.
fn bar_rect(svg: &str, id: &str) -> (f64, f64, f64) {
    let at = svg.find(&format!("<title>{id}\n")).expect(id);
    let rect = &svg[svg[..at].rfind("<rect ").unwrap()..at];
    let attr = |name: &str| -> f64 {
        let from = rect.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        let len = rect[from..].find('"').unwrap();
        rect[from..from + len].parse().unwrap()
    };
    (attr("x"), attr("y"), attr("width"))
}

#[test]
fn bars_are_placed_in_proportion_to_time() {
    let inputs = timed_inputs();
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    let svg = &report.figures[0].1;
    let t = timeline(inputs.iter().map(|i| &i.prov));
    let frame = Frame::of(&t.panels[0]);
    // "cuda:0" is narrower than the 40 px minimum label width: the axis runs from x = 60 over
    // 760 - 60 - 24 = 676 px for the 25 s span, 27.04 px a second.
    assert_eq!((frame.left, frame.width, frame.span), (60.0, 676.0, 25.0));
    let close = |got: f64, want: f64| assert!((got - want).abs() < 0.006, "{got} != {want}");
    for (id, start, seconds) in [
        ("a", 0.0, 10.0),
        ("b", 5.0, 10.0),
        ("c", 20.0, 5.0),
        ("d", 2.0, 22.0),
    ] {
        let (x, _, w) = bar_rect(svg, id);
        close(x, 60.0 + start * 27.04);
        close(w, seconds * 27.04);
    }
    // Lanes start under the 34 px title; a sub-lane is 20 px, a bar 15 px centred in it, after
    // 5 px of padding. cpu has two sub-lanes (50 px), so cuda:0's lane starts at 84.
    let ys: Vec<f64> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| bar_rect(svg, id).1)
        .collect();
    assert_eq!(ys, [41.5, 61.5, 41.5, 91.5]);
    let a = svg.find("<title>a\n").unwrap();
    assert!(svg[..a].ends_with(r##"fill="#4e79a7" stroke="white" stroke-width="0.5">"##));
    assert!(
        svg.contains("<title>b\nexpert on cpu, 10.00 s (from +5.00 s)</title>"),
        "{svg}"
    );
    for kind in [">train</text>", ">expert</text>", ">evaluate</text>"] {
        assert!(svg.contains(kind), "legend lacks {kind}");
    }
    assert!(svg.contains(">seconds since the run's first start (2026-12-04 10:00:00 UTC)<"));
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

/// A recipe as the manifest resolves it.
fn recipe(lr: f64, weight_decay: f64, epochs: u64, schedule: &str) -> TrainParams {
    TrainParams {
        objective: Some("ce".into()),
        optimizer: Some("adamw".into()),
        lr: Some(lr),
        weight_decay: Some(weight_decay),
        epochs: Some(epochs),
        batch_size: Some(32),
        schedule: Some(schedule.into()),
        augment: Some(false),
        ..TrainParams::default()
    }
}

/// The `## Setup` section of a markdown report.
fn setup_of(md: &str) -> &str {
    md.split("## Setup")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a setup section")
}

#[test]
fn the_setup_states_study_overrides_version_date_devices_and_recipes() {
    let mut inputs = inputs();
    // The base model on a GPU, and base, retrained and two experts with their recipes.
    inputs[0].prov.device = "cuda:0".into();
    for input in &mut inputs {
        let Content::Train(t) = &mut input.content else {
            continue;
        };
        let (exclude, only) = (t.params.exclude.clone(), t.params.only.clone());
        t.params = if t.expert {
            recipe(2.5e-4, 0.01, 2, "constant")
        } else {
            recipe(1e-3, 1e-4, 4, "cosine")
        };
        (t.params.exclude, t.params.only) = (exclude, only);
    }
    inputs.push(train(
        "expert[arch=vgg11_bn,class=3]",
        '8',
        10.0,
        true,
        TrainParams {
            only: vec![3],
            ..recipe(2.5e-4, 0.01, 2, "constant")
        },
    ));
    let mut s = study(Protocol::Seed, "cifar10");
    s.data = vec![
        ("train-per-class".into(), "200".into()),
        ("test-per-class".into(), "50".into()),
    ];
    s.overrides = vec!["train.base.lr=1e-3".into(), "report.r.title=\"x\"".into()];
    let md = build_report(&inputs, &s, &[]).markdown;
    let setup = setup_of(&md);
    // Records: base 400 s on cuda:0; on cpu retrained 300, experts 20 and 10, ablate 2,
    // select 0.1 and two evaluations of 1 s each: 7 records, 334.1 s.
    for row in [
        "| study | `s` |",
        "| protocol | seed |",
        "| seed | 42 |",
        "| data | `cifar10`; train-per-class 200, test-per-class 50 |",
        "| `--set` overrides | `train.base.lr=1e-3`, `report.r.title=\"x\"` |",
        "| tarun | `0.1.0 (abc1234)` |",
        "| rendered | 2026-12-04 21:00:00 UTC |",
        "| devices | `cpu` (7 records, 334 s), `cuda:0` (1 record, 400 s) |",
        "| `base`, `retrained` | train | vgg11_bn | 0.125 | adamw | 1e-3 | 1e-4 | – | 4 epochs | 32 | cosine | no | ce |",
        "| `expert` (2) | expert | vgg11_bn | 0.125 | adamw | 2.5e-4 | 0.01 | – | 2 epochs | 32 | constant | no | ce |",
    ] {
        assert!(setup.contains(row), "no `{row}` in:\n{setup}");
    }
    // Right after the overview, before the results.
    assert!(md.find("## Setup").unwrap() < md.find("## Summary").unwrap());
    assert!(md.find("protocol **seed**").unwrap() < md.find("## Setup").unwrap());

    s.overrides.clear();
    let md = build_report(&inputs, &s, &[]).markdown;
    assert!(
        setup_of(&md).contains("| `--set` overrides | none |"),
        "{md}"
    );
}

/// Every report of the test inputs, with all sections: seed protocol on CIFAR-10 (published
/// numbers, time benchmark) and the timeline's records.
fn full_report() -> super::Report {
    let mut inputs = inputs();
    inputs.extend(timed_inputs());
    build_report(&inputs, &study(Protocol::Seed, "cifar10"), &[])
}

#[test]
fn the_report_cites_nothing_a_reader_cannot_open() {
    let report = full_report();
    // Design-document sections, repository docs and sources, store and output files, and a
    // script of the original study's code.
    let internal = [
        "seed-spec",
        "§",
        "docs/",
        "src/",
        ".md",
        ".json",
        "store",
        "artifacts/",
        "objects/",
        "script 15",
        "File <code>",
    ];
    for pattern in internal {
        for (name, text) in [("markdown", &report.markdown), ("html", &report.html)] {
            let at = text
                .find(pattern)
                .map(|i| &text[i.saturating_sub(80)..i + 40]);
            assert!(at.is_none(), "`{pattern}` in the {name}: …{}…", at.unwrap());
        }
    }
    // Figure captions cite their record through the provenance table.
    assert!(
        report.html.contains(
            "From the outputs of node <code>unlearned-eval[arch=vgg11_bn]</code>. Record \
             <a href=\"#k-777777777777\"><code>777777777777</code></a>."
        ),
        "{}",
        report.html
    );
}

#[test]
fn the_html_prints_tables_whole_and_figures_within_the_page() {
    let html = full_report().html;
    let print = html
        .split("@media print {")
        .nth(1)
        .expect("print rules")
        .split("\n}\n")
        .next()
        .unwrap();
    for rule in [
        ".table-wrap { overflow: visible; }",
        "position: static",
        "tr, pre, figure { break-inside: avoid; page-break-inside: avoid; }",
        "thead { display: table-header-group; }",
        "figure svg { max-width: 100%; height: auto;",
        "print-color-adjust: exact",
        "body, main { background: #fff; }",
        "nav.toc { display: none; }",
        "a[href^=\"http\"]::after { content: \" (\" attr(href) \")\";",
    ] {
        assert!(print.contains(rule), "no `{rule}` in {print}");
    }
}

/// The values of every `attr="..."` in `html`.
fn attrs<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let open = format!(" {attr}=\"");
    html.split(&open)
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect()
}

#[test]
fn every_anchor_is_unique_and_every_link_lands() {
    let html = full_report().html;
    let ids = attrs(&html, "id");
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "repeated ids in {ids:?}");
    // "Architecture `vgg11_bn`" heads a part of the metrics and of the time benchmark; the
    // ten timeline records share one key, so their provenance rows would share an anchor.
    assert!(ids.contains(&"s-Architecture-vgg11_bn"), "{ids:?}");
    assert!(ids.contains(&"s-Architecture-vgg11_bn-2"), "{ids:?}");
    assert!(ids.contains(&"k-cccccccccccc") && ids.contains(&"k-cccccccccccc-10"));
    let links: Vec<&str> = attrs(&html, "href")
        .into_iter()
        .filter_map(|h| h.strip_prefix('#'))
        .collect();
    assert!(links.contains(&"k-777777777777") && links.contains(&"s-Setup"));
    for target in links {
        assert!(unique.contains(target), "`#{target}` points to no id");
    }
}

/// Two seeds of the retrained model, task arithmetic and SCRUB, with round numbers.
fn seeded_inputs() -> Vec<ReportInput> {
    let mut all = vec![];
    let excluded = TrainParams {
        exclude: vec![8],
        ..TrainParams::default()
    };
    let scrub = TrainParams {
        objective: Some("scrub".into()),
        ..TrainParams::default()
    };
    // (seed, retrained s, expert s, scrub s, [retrained, unlearned, scrub] x (forget, retain, test, mia))
    let seeds = [
        (
            0,
            100.0,
            10.0,
            30.0,
            [
                [0.0, 90.0, 81.0, 0.50],
                [10.0, 85.0, 77.0, 0.45],
                [2.0, 88.0, 80.0, 0.50],
            ],
        ),
        (
            1,
            120.0,
            12.0,
            34.0,
            [
                [0.0, 92.0, 83.0, 0.52],
                [14.0, 87.0, 79.0, 0.47],
                [4.0, 88.0, 80.0, 0.50],
            ],
        ),
    ];
    for (seed, t_retrained, t_expert, t_scrub, figures) in seeds {
        let id = |name: &str, extra: &str| format!("{name}[arch={ARCH}{extra},seed={seed}]");
        let expert = id("expert", ",class=8");
        all.push(train(
            &id("retrained", ""),
            'r',
            t_retrained,
            false,
            excluded.clone(),
        ));
        all.push(train(&expert, 'e', t_expert, true, only(&[8])));
        all.push(train(&id("scrub", ""), 's', t_scrub, true, scrub.clone()));
        all.push(ReportInput {
            prov: prov(&id("unlearned", ",class=8"), "ablate", 'u', 1.0),
            content: Content::Ablate(AblateInfo {
                arch: ARCH.into(),
                width: 0.125,
                vectors: vec![VectorInfo {
                    expert,
                    alpha: -1.0,
                    rho: 0.5,
                }],
                surgery_seconds: 0.5,
            }),
        });
        let models = [
            (id("retrained", ""), ModelRole::Retrained),
            (id("unlearned", ",class=8"), ModelRole::Unlearned),
            (id("scrub", ""), ModelRole::Baseline("scrub".into())),
        ];
        for ((model, role), [forget, retain, test, mia]) in models.into_iter().zip(figures) {
            let mut e = eval(&format!("eval-{model}"), 'v', &model, role, false);
            let Content::Evaluate(info) = &mut e.content else {
                unreachable!()
            };
            info.metrics = BTreeMap::from([
                ("forget-acc".to_owned(), forget),
                ("retain-acc".to_owned(), retain),
                ("accuracy".to_owned(), test),
                ("mia-auc".to_owned(), mia),
            ]);
            all.push(e);
        }
    }
    all
}

/// The report's comparison of methods, up to the next level-2 heading.
fn methods_section(md: &str) -> &str {
    let start = md
        .find("## Unlearning methods against the retrained model")
        .expect("the section");
    let section = &md[start..];
    &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)]
}

/// The cells of the markdown table row that starts with `| name |`.
fn row_cells<'a>(section: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("| {name} |");
    let line = section
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row `{name}` in\n{section}"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

#[test]
fn methods_compare_with_the_retrained_model_seed_by_seed_with_t_intervals() {
    let report = build_report(
        &seeded_inputs(),
        &study(Protocol::Corrected, "synthetic"),
        &[],
    );
    let section = methods_section(&report.markdown);
    // Figures: mean ± t(0.975, 1) * s / sqrt(2); costs are the record wall times (task
    // arithmetic: expert + ablation, 11 and 13 s). Values computed by hand (Python).
    let ta = row_cells(section, "task arithmetic");
    assert_eq!(
        &ta[1..7],
        [
            "2",
            "12.00 ± 25.41",
            "86.00 ± 12.71",
            "78.00 ± 12.71",
            "46.00 ± 12.71",
            "12.0 ± 12.7"
        ]
    );
    let reference = row_cells(section, "retrained (reference)");
    assert_eq!(reference[2], "0.00 ± 0.00");
    assert_eq!(reference[6], "110.0 ± 127.1");
    // Gaps, Avg. Gap and ToW: per seed against that seed's retrained model, then averaged.
    // The second row of each method is its row of the gaps table.
    let gaps_of = |name: &str| -> Vec<&str> {
        let prefix = format!("| {name} |");
        let line = section
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .nth(1)
            .unwrap_or_else(|| panic!("no gaps row for {name}"));
        line.trim_matches('|').split('|').map(str::trim).collect()
    };
    assert_eq!(
        &gaps_of("task arithmetic")[1..7],
        [
            "12.00 ± 25.41",
            "5.00 ± 0.00",
            "4.00 ± 0.00",
            "5.00 ± 0.00",
            "6.50 ± 6.35",
            "0.8026 ± 0.2318"
        ]
    );
    let scrub = gaps_of("SCRUB");
    assert_eq!(&scrub[1..3], ["3.00 ± 12.71", "3.00 ± 12.71"]);
    assert_eq!(&scrub[5..7], ["2.25 ± 12.71", "0.9224 ± 0.3611"]);
    // The plot: one labelled point per method, the reference left out.
    let (_, svg) = report
        .figures
        .iter()
        .find(|(f, _)| f == "methods-vgg11_bn.svg")
        .expect("the cost plot");
    assert!(svg.contains(">task arithmetic<") && svg.contains(">SCRUB<"));
    assert!(!svg.contains(">retrained (reference)<"));
}

#[test]
fn one_seed_shows_values_without_intervals() {
    let inputs: Vec<ReportInput> = seeded_inputs()
        .into_iter()
        .filter(|i| !i.prov.id.contains("seed=1"))
        .collect();
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    let ta = row_cells(methods_section(&report.markdown), "task arithmetic");
    assert_eq!(
        &ta[1..7],
        ["1", "10.00", "85.00", "77.00", "45.00", "11.00"]
    );
    assert!(!report.markdown.contains("25.41"));
}

#[test]
fn methods_use_mia_efficacy_when_the_reference_has_it_and_say_so_when_not() {
    // Without `mia-efficacy` the column is the entropy AUC × 100, with a note.
    let inputs = seeded_inputs();
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    let section = methods_section(&report.markdown);
    assert!(section.contains("| MIA AUC (%) |"), "{section}");
    assert!(section.contains("has no `mia-efficacy`"));
    // With it (retrained 20 and 24, task arithmetic 30 and 38 over the two seeds), the column
    // and the MIA gap use it: mean 34 ± t(0.975, 1) · s / √2 with s = √32, i.e. ± 50.82; gaps
    // 10 and 14, mean 12 ± 12.71 · √8 / √2 = 25.41.
    let mut inputs = seeded_inputs();
    for i in &mut inputs {
        let Content::Evaluate(info) = &mut i.content else {
            continue;
        };
        let seed1 = info.model.contains("seed=1");
        let value = match (&info.role, seed1) {
            (ModelRole::Retrained, false) => 20.0,
            (ModelRole::Retrained, true) => 24.0,
            (ModelRole::Unlearned, false) => 30.0,
            (ModelRole::Unlearned, true) => 38.0,
            _ => 21.0,
        };
        info.metrics.insert("mia-efficacy".into(), value);
    }
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    let section = methods_section(&report.markdown);
    assert!(section.contains("| MIA-efficacy (%) |"), "{section}");
    assert!(!section.contains("has no `mia-efficacy`"));
    let ta = row_cells(section, "task arithmetic");
    assert_eq!(ta[5], "34.00 ± 50.82");
    let gaps: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| task arithmetic |"))
        .nth(1)
        .expect("the gaps row")
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(gaps[4], "12.00 ± 25.41");
}
