//! The timeline: which node ran on which device when, as a Gantt chart (like Nextflow's
//! timeline), drawn from the inputs' records alone (`started`, `seconds`, `device`, `run_id`), so
//! the report stays a pure function of its inputs.
//!
//! A record belongs to the run that computed it, and a report over cached nodes gathers records
//! from runs days apart; one chart over all of them would squash every bar into a sliver. So each
//! run gets its own panel, most recent first, at most [`MAX_PANELS`], and the records of the other
//! runs are counted in a line. In a panel every device has a lane; jobs that overlap on one device
//! are stacked into sub-lanes so that no bar hides another.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::View;
use super::doc::{Document, Figure, Table, fmt_seconds, slug};
use super::model::Provenance;
use super::svg::{Stroke, Svg, TextStyle, escape, nice_ticks, tick_label};

/// The most runs drawn; older runs are only counted.
pub const MAX_PANELS: usize = 3;

/// Width of a whole panel's drawing.
const WIDTH: f64 = 760.0;
/// The height of one sub-lane, and of a bar in it.
const ROW_H: f64 = 20.0;
const BAR_H: f64 = 15.0;
/// Space above and below the sub-lanes of a device's lane.
const LANE_PAD: f64 = 5.0;
const TOP: f64 = 34.0;
const RIGHT: f64 = 24.0;
/// Approximate width of one character of 11 px text, for layout.
const CHAR_W: f64 = 6.2;
/// The narrowest bar drawn, so that a job of a few milliseconds still shows.
const MIN_BAR_W: f64 = 1.5;

/// One record's job, placed in its panel.
#[derive(Clone, Debug)]
pub struct Bar<'a> {
    pub prov: &'a Provenance,
    /// Seconds from the panel's first start to the job's start and end.
    pub start: f64,
    pub end: f64,
    /// The sub-lane within the device's lane, 0 at the top.
    pub row: usize,
}

/// One device's jobs in one run.
#[derive(Clone, Debug)]
pub struct Lane<'a> {
    pub device: &'a str,
    /// In order of start.
    pub bars: Vec<Bar<'a>>,
    /// Sub-lanes: the most jobs that ran on the device at one time.
    pub rows: usize,
    /// Seconds in which at least one job ran on the device (overlaps counted once).
    pub busy: f64,
}

/// One run's records.
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    pub run_id: &'a str,
    /// The first start.
    pub origin: jiff::Timestamp,
    /// Seconds from the first start to the last end.
    pub span: f64,
    /// Devices in natural order (`cpu`, `cuda:0`, `cuda:1`, ..., `cuda:10`).
    pub lanes: Vec<Lane<'a>>,
}

impl Panel<'_> {
    pub fn records(&self) -> usize {
        self.lanes.iter().map(|l| l.bars.len()).sum()
    }

    /// The share of the span in which the lane's device was busy; `None` for an empty span.
    pub fn utilisation(&self, lane: &Lane<'_>) -> Option<f64> {
        (self.span > 0.0).then(|| lane.busy / self.span)
    }
}

/// The drawn panels and what was left out.
#[derive(Clone, Debug)]
pub struct Timeline<'a> {
    /// Most recent run first.
    pub panels: Vec<Panel<'a>>,
    /// Records of the runs beyond [`MAX_PANELS`], and how many such runs.
    pub hidden_records: usize,
    pub hidden_runs: usize,
}

/// Splits the records by run, most recent run (by its first start) first, and lays each run out.
pub fn timeline<'a>(records: impl IntoIterator<Item = &'a Provenance>) -> Timeline<'a> {
    let mut runs: BTreeMap<&str, Vec<&Provenance>> = BTreeMap::new();
    for p in records {
        runs.entry(p.run_id.as_str()).or_default().push(p);
    }
    let mut runs: Vec<(&str, Vec<&Provenance>)> = runs.into_iter().collect();
    let first_start = |records: &[&Provenance]| records.iter().map(|p| p.started).min();
    runs.sort_by(|(a, ra), (b, rb)| first_start(rb).cmp(&first_start(ra)).then_with(|| b.cmp(a)));
    let hidden = runs.get(MAX_PANELS..).unwrap_or_default();
    Timeline {
        hidden_records: hidden.iter().map(|(_, r)| r.len()).sum(),
        hidden_runs: hidden.len(),
        panels: runs
            .iter()
            .take(MAX_PANELS)
            .map(|(id, records)| panel(id, records))
            .collect(),
    }
}

/// Seconds from `origin` to `t`.
fn seconds_since(origin: jiff::Timestamp, t: jiff::Timestamp) -> f64 {
    (t.as_nanosecond() - origin.as_nanosecond()) as f64 * 1e-9
}

fn panel<'a>(run_id: &'a str, records: &[&'a Provenance]) -> Panel<'a> {
    let origin = records
        .iter()
        .map(|p| p.started)
        .min()
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let mut lanes: BTreeMap<(&str, u64, &str), Vec<Bar<'a>>> = BTreeMap::new();
    for &p in records {
        let start = seconds_since(origin, p.started);
        let seconds = if p.seconds.is_finite() {
            p.seconds.max(0.0)
        } else {
            0.0
        };
        let bar = Bar {
            prov: p,
            start,
            end: start + seconds,
            row: 0,
        };
        lanes.entry(device_order(&p.device)).or_default().push(bar);
    }
    let span = lanes.values().flatten().map(|b| b.end).fold(0.0, f64::max);
    let lanes = lanes
        .into_iter()
        .map(|((_, _, device), mut bars)| {
            let rows = stack(&mut bars);
            Lane {
                device,
                busy: busy(&bars),
                bars,
                rows,
            }
        })
        .collect();
    Panel {
        run_id,
        origin,
        span,
        lanes,
    }
}

/// Sorts devices as `cpu`, `cuda:0`, `cuda:2`, `cuda:10`: by name, then by index as a number.
fn device_order(device: &str) -> (&str, u64, &str) {
    match device.split_once(':') {
        Some((name, index)) => (name, index.parse().unwrap_or(u64::MAX), device),
        None => (device, 0, device),
    }
}

/// Sorts the bars by start and gives each the first sub-lane that is free by then; returns the
/// number of sub-lanes. Taking bars in order of start, first fit needs no more sub-lanes than
/// the most bars overlapping at one time. A bar that starts as another ends shares its sub-lane.
fn stack(bars: &mut [Bar<'_>]) -> usize {
    bars.sort_by(|a, b| {
        a.start
            .total_cmp(&b.start)
            .then(a.end.total_cmp(&b.end))
            .then_with(|| a.prov.id.cmp(&b.prov.id))
    });
    let mut ends: Vec<f64> = vec![];
    for bar in bars.iter_mut() {
        match ends.iter().position(|&end| end <= bar.start) {
            Some(row) => {
                bar.row = row;
                ends[row] = bar.end;
            }
            None => {
                bar.row = ends.len();
                ends.push(bar.end);
            }
        }
    }
    ends.len()
}

/// The length of the union of the bars' intervals; the bars are sorted by start.
fn busy(bars: &[Bar<'_>]) -> f64 {
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for b in bars {
        current = match current {
            Some((s, e)) if b.start <= e => Some((s, e.max(b.end))),
            Some((s, e)) => {
                total += e - s;
                Some((b.start, b.end))
            }
            None => Some((b.start, b.end)),
        };
    }
    total + current.map_or(0.0, |(s, e)| e - s)
}

/// The kinds in the order of the legend, each with its colour (Tableau 10); other kinds take
/// the remaining colours in alphabetical order.
const KIND_COLOURS: [(&str, &str); 6] = [
    ("train", "#4e79a7"),
    ("expert", "#f28e2b"),
    ("ablate", "#e15759"),
    ("select", "#59a14f"),
    ("evaluate", "#76b7b2"),
    ("report", "#edc948"),
];
const OTHER_COLOURS: [&str; 4] = ["#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/// The kinds present in the panels, in legend order, with their colours.
fn colours(panels: &[Panel<'_>]) -> Vec<(String, &'static str)> {
    let mut kinds: Vec<&str> = panels
        .iter()
        .flat_map(|p| &p.lanes)
        .flat_map(|l| &l.bars)
        .map(|b| b.prov.kind.as_str())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut out: Vec<(String, &'static str)> = KIND_COLOURS
        .iter()
        .filter(|(k, _)| kinds.contains(k))
        .map(|(k, c)| ((*k).to_owned(), *c))
        .collect();
    let others = kinds
        .iter()
        .filter(|k| !KIND_COLOURS.iter().any(|(known, _)| known == *k));
    for (i, k) in others.enumerate() {
        out.push(((*k).to_owned(), OTHER_COLOURS[i % OTHER_COLOURS.len()]));
    }
    out
}

/// The unit of the x axis: seconds for short runs, minutes, then hours.
fn time_unit(span: f64) -> (f64, &'static str) {
    if span < 180.0 {
        (1.0, "seconds")
    } else if span < 3.0 * 3600.0 {
        (60.0, "minutes")
    } else {
        (3600.0, "hours")
    }
}

/// Where a panel's lanes and time axis lie in its drawing.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// x of the run's first start.
    pub left: f64,
    /// Width of the time axis, from the first start to the last end.
    pub width: f64,
    /// The span the width stands for (1 s when the span is empty).
    pub span: f64,
}

impl Frame {
    pub fn of(panel: &Panel<'_>) -> Frame {
        let widest = panel
            .lanes
            .iter()
            .map(|l| l.device.chars().count() as f64 * CHAR_W)
            .fold(40.0, f64::max);
        let left = widest + 20.0;
        Frame {
            left,
            width: WIDTH - left - RIGHT,
            span: if panel.span > 0.0 { panel.span } else { 1.0 },
        }
    }

    pub fn x(&self, seconds: f64) -> f64 {
        self.left + seconds / self.span * self.width
    }

    /// The bar's rectangle: x and width from its times, y from its lane's top and sub-lane.
    pub fn bar(&self, bar: &Bar<'_>, lane_top: f64) -> (f64, f64, f64, f64) {
        let x = self.x(bar.start);
        let w = (self.x(bar.end) - x).max(MIN_BAR_W);
        let y = lane_top + LANE_PAD + bar.row as f64 * ROW_H + (ROW_H - BAR_H) / 2.0;
        (x, y, w, BAR_H)
    }
}

fn lane_height(lane: &Lane<'_>) -> f64 {
    lane.rows.max(1) as f64 * ROW_H + 2.0 * LANE_PAD
}

/// One run's chart: lanes, bars with their `<title>`, the time axis and the legend.
/// `colours` maps every kind of every panel, so a kind has one colour throughout the report; the
/// legend lists the kinds of this panel.
pub fn draw(panel: &Panel<'_>, colours: &[(String, &'static str)]) -> String {
    let legend: Vec<(String, &'static str)> = colours
        .iter()
        .filter(|(kind, _)| {
            panel
                .lanes
                .iter()
                .flat_map(|l| &l.bars)
                .any(|b| &b.prov.kind == kind)
        })
        .cloned()
        .collect();
    let frame = Frame::of(panel);
    let lanes_h: f64 = panel.lanes.iter().map(lane_height).sum();
    let axis_y = TOP + lanes_h;
    let legend_rows = legend_layout(&legend, frame.left);
    let legend_y = axis_y + 58.0;
    let height = legend_y + legend_rows.len() as f64 * 18.0 + 8.0;
    let mut svg = Svg::new(WIDTH, height);
    let title = format!("Run {}", panel.run_id);
    let title_style = TextStyle::sized(13.0).anchor("middle").bold();
    svg.text((WIDTH / 2.0, 20.0), &title, title_style);

    let (unit, unit_name) = time_unit(panel.span);
    let ticks = nice_ticks(0.0, frame.span / unit, 6);
    for &t in &ticks {
        let x = frame.x(t * unit);
        svg.line((x, TOP), (x, axis_y), Stroke::solid("#e4e4e4", 1.0));
        svg.line((x, axis_y), (x, axis_y + 4.0), Stroke::solid("#444", 1.0));
        let style = TextStyle::default().anchor("middle");
        svg.text((x, axis_y + 16.0), &tick_label(t), style);
    }
    let axis_end = frame.left + frame.width;
    svg.line(
        (frame.left, axis_y),
        (axis_end, axis_y),
        Stroke::solid("#444", 1.0),
    );
    let origin = panel.origin.strftime("%Y-%m-%d %H:%M:%S UTC");
    svg.text(
        (frame.left + frame.width / 2.0, axis_y + 34.0),
        &format!("{unit_name} since the run's first start ({origin})"),
        TextStyle::sized(12.0).anchor("middle"),
    );

    let colour = |kind: &str| {
        colours
            .iter()
            .find(|(k, _)| k == kind)
            .map_or("#888888", |(_, c)| *c)
    };
    let mut bars = String::new();
    let mut top = TOP;
    for (i, lane) in panel.lanes.iter().enumerate() {
        let h = lane_height(lane);
        if i % 2 == 1 {
            svg.rect(frame.left, top, frame.width, h, "#f6f6f6", None);
        }
        if i > 0 {
            svg.line((4.0, top), (axis_end, top), Stroke::solid("#cccccc", 1.0));
        }
        let style = TextStyle::default().anchor("end").bold();
        svg.text((frame.left - 8.0, top + h / 2.0 + 4.0), lane.device, style);
        for bar in &lane.bars {
            bar_markup(&mut bars, frame.bar(bar, top), bar, colour(&bar.prov.kind));
        }
        top += h;
    }

    for (row, items) in legend_rows.iter().enumerate() {
        let y = legend_y + row as f64 * 18.0;
        for &(x, i) in items {
            let (kind, fill) = &legend[i];
            svg.rect(x, y - 10.0, 12.0, 12.0, fill, None);
            svg.text((x + 17.0, y), kind, TextStyle::default());
        }
    }
    // The helpers write no `<title>` children, so the bars (with theirs) go in last, on top.
    let mut out = svg.finish();
    let end = out.rfind("</svg>").unwrap_or(out.len());
    out.insert_str(end, &bars);
    out
}

/// A bar as a `<rect>` with a `<title>` (shown on hover): node id, kind, device and duration.
fn bar_markup(out: &mut String, (x, y, w, h): (f64, f64, f64, f64), bar: &Bar<'_>, fill: &str) {
    let p = bar.prov;
    let title = format!(
        "{}\n{} on {}, {} s (from +{} s)",
        p.id,
        p.kind,
        p.device,
        fmt_seconds(bar.end - bar.start),
        fmt_seconds(bar.start)
    );
    let _ = writeln!(
        out,
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}" stroke="white" stroke-width="0.5"><title>{}</title></rect>"#,
        num(x),
        num(y),
        num(w),
        num(h),
        escape(&title)
    );
}

/// A coordinate with at most two decimals, as the SVG helpers write them.
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// The legend's entries wrapped into rows: each row lists (x, index into `legend`).
fn legend_layout(legend: &[(String, &'static str)], left: f64) -> Vec<Vec<(f64, usize)>> {
    let mut rows: Vec<Vec<(f64, usize)>> = vec![vec![]];
    let mut x = left;
    for (i, (kind, _)) in legend.iter().enumerate() {
        let w = 17.0 + kind.chars().count() as f64 * CHAR_W + 18.0;
        if x + w > WIDTH - RIGHT && x > left {
            rows.push(vec![]);
            x = left;
        }
        if let Some(row) = rows.last_mut() {
            row.push((x, i));
        }
        x += w;
    }
    rows
}

/// The run's totals per device.
fn table(panel: &Panel<'_>) -> Table {
    let mut table = Table::new(&[
        "device",
        "nodes",
        "most at once",
        "busy seconds",
        "utilisation",
    ]);
    for lane in &panel.lanes {
        let utilisation = panel
            .utilisation(lane)
            .map_or_else(|| "n/a".to_owned(), |u| format!("{:.1} %", u * 100.0));
        let cells = vec![
            format!("`{}`", lane.device),
            lane.bars.len().to_string(),
            lane.rows.to_string(),
            fmt_seconds(lane.busy),
            utilisation,
        ];
        table.push(cells, None);
    }
    table
}

/// The timeline section; absent with fewer than two records (one bar says nothing that the
/// provenance table does not).
pub fn section(doc: &mut Document, view: &View<'_>) {
    if view.all.len() < 2 {
        return;
    }
    let t = timeline(view.all.iter().map(|i| &i.prov));
    doc.heading(2, "Timeline");
    doc.paragraph(
        "Which node ran on which device when, from the inputs' records (`started`, `seconds`, \
         `device`, `run-id`): one lane per device, jobs that overlapped on a device stacked \
         below each other, bars coloured by node kind (in the HTML, hovering a bar names its \
         node, kind, device and duration). A record belongs to the run that computed it, so \
         each run is drawn on its own, most recent first. Busy seconds count the time in which \
         at least one job ran on the device; utilisation is that over the run's span, from its \
         first start to its last end.",
    );
    let colours = colours(&t.panels);
    for panel in &t.panels {
        doc.heading(3, format!("Run `{}`", panel.run_id));
        let last_end = panel
            .origin
            .checked_add(jiff::SignedDuration::from_secs_f64(panel.span))
            .unwrap_or(panel.origin);
        let format = "%Y-%m-%d %H:%M:%S";
        doc.paragraph(format!(
            "{} on {}, from {} to {} UTC: a span of {} s.",
            counted(panel.records(), "node"),
            counted(panel.lanes.len(), "device"),
            panel.origin.strftime(format),
            last_end.strftime(format),
            fmt_seconds(panel.span)
        ));
        doc.figures(vec![Figure {
            file: format!("timeline-{}.svg", slug(panel.run_id)),
            title: format!("Timeline of run {}", panel.run_id),
            caption: format!(
                "From the `started`, `seconds` and `device` of the {} records of run `{}`.",
                panel.records(),
                panel.run_id
            ),
            svg: draw(panel, &colours),
            source: None,
        }]);
        doc.table(table(panel));
    }
    if t.hidden_runs > 0 {
        doc.paragraph(format!(
            "Not drawn: {} from {} (at most {MAX_PANELS} runs are drawn).",
            counted(t.hidden_records, "record"),
            counted(t.hidden_runs, "older run"),
        ));
    }
}

/// `1 node`, `2 nodes`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
