//! The timeline of runs: panels, sub-lanes, the run table and bars in proportion to time.

use super::*;

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
pub(super) fn timed_inputs() -> Vec<ReportInput> {
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
