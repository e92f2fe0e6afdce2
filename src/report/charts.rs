//! The report's chart types, drawn with [`super::svg`]: annotated heatmaps, scatter plots
//! without axes (for t-SNE), line charts with reference lines and labelled points on axes.

use super::svg::{Scale, Stroke, Svg, TextStyle, nice_ticks, tick_label};

const TITLE_H: f64 = 30.0;
/// Approximate width of one character of 11 px text, for layout.
const CHAR_W: f64 = 6.2;

/// An annotated heatmap. `values` drive the colours; `labels` are written in the cells.
#[derive(Clone, Debug)]
pub struct Heatmap {
    pub title: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
    pub labels: Vec<Vec<String>>,
    pub scale: Scale,
    /// Values mapped to the two ends of the scale.
    pub range: (f64, f64),
    pub x_label: String,
    pub y_label: String,
    /// A cell to outline (the chosen grid point).
    pub highlight: Option<(usize, usize)>,
    /// Cell width and height.
    pub cell: (f64, f64),
    pub colour_bar: bool,
}

impl Heatmap {
    /// The fill colour of a value.
    pub fn colour(&self, v: f64) -> super::svg::Rgb {
        let (lo, hi) = self.range;
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        self.scale.at(t)
    }
}

fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * CHAR_W * size / 11.0
}

/// Draws a heatmap: rows top to bottom, columns left to right, column labels rotated.
pub fn heatmap(h: &Heatmap) -> String {
    let (cw, ch) = h.cell;
    let widest = |labels: &[String]| {
        labels
            .iter()
            .map(|l| text_width(l, 11.0))
            .fold(0.0, f64::max)
    };
    let col_h = widest(&h.cols) * 0.75;
    let origin = (30.0 + widest(&h.rows) + 8.0, TITLE_H + 10.0);
    let grid = (cw * h.cols.len() as f64, ch * h.rows.len() as f64);
    let bar_w = if h.colour_bar { 70.0 } else { 0.0 };
    let width = (origin.0 + grid.0 + bar_w + 20.0).max(text_width(&h.title, 13.0) + 20.0);
    let mut svg = Svg::new(width, origin.1 + grid.1 + col_h + 44.0);
    let title_style = TextStyle::sized(13.0).anchor("middle").bold();
    svg.text((width / 2.0, 20.0), &h.title, title_style);
    heatmap_cells(&mut svg, h, origin);
    heatmap_labels(&mut svg, h, origin, grid, col_h);
    if h.colour_bar {
        colour_bar(&mut svg, h, (origin.0 + grid.0 + 14.0, origin.1), grid.1);
    }
    svg.finish()
}

/// The coloured, annotated cells and the highlight's outline.
fn heatmap_cells(svg: &mut Svg, h: &Heatmap, (left, top): (f64, f64)) {
    let (cw, ch) = h.cell;
    for (r, row) in h.values.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let (x, y) = (left + c as f64 * cw, top + r as f64 * ch);
            let Some(v) = v else {
                svg.rect(x, y, cw, ch, "#eeeeee", None);
                continue;
            };
            let fill = h.colour(*v);
            svg.rect(x, y, cw, ch, &fill.hex(), None);
            let label = h
                .labels
                .get(r)
                .and_then(|l| l.get(c))
                .map_or("", String::as_str);
            let size = (ch * 0.42)
                .clamp(8.0, 12.0)
                .min(cw / (label.len().max(1) as f64 * 0.62));
            let style = TextStyle::sized(size)
                .anchor("middle")
                .fill(fill.text_colour());
            svg.text((x + cw / 2.0, y + ch / 2.0 + size * 0.36), label, style);
        }
    }
    if let Some((r, c)) = h.highlight {
        let (x, y) = (left + c as f64 * cw + 1.0, top + r as f64 * ch + 1.0);
        let outline = Some(Stroke::solid("#ff00aa", 3.0));
        svg.rect(x, y, cw - 2.0, ch - 2.0, "none", outline);
    }
}

fn heatmap_labels(
    svg: &mut Svg,
    h: &Heatmap,
    (left, top): (f64, f64),
    (gw, gh): (f64, f64),
    col_h: f64,
) {
    let (cw, ch) = h.cell;
    for (r, label) in h.rows.iter().enumerate() {
        let y = top + (r as f64 + 0.5) * ch + 4.0;
        svg.text((left - 6.0, y), label, TextStyle::default().anchor("end"));
    }
    for (c, label) in h.cols.iter().enumerate() {
        let x = left + (c as f64 + 0.5) * cw + 3.0;
        svg.text(
            (x, top + gh + 8.0),
            label,
            TextStyle::default().anchor("end").rotate(-45.0),
        );
    }
    let x_mid = left + gw / 2.0;
    svg.text(
        (x_mid, top + gh + col_h + 24.0),
        &h.x_label,
        TextStyle::sized(12.0).anchor("middle"),
    );
    let y_mid = top + gh / 2.0;
    svg.text(
        (14.0, y_mid),
        &h.y_label,
        TextStyle::sized(12.0).anchor("middle").rotate(-90.0),
    );
}

fn colour_bar(svg: &mut Svg, h: &Heatmap, (x, top): (f64, f64), height: f64) {
    const STEPS: usize = 40;
    let step_h = height / STEPS as f64;
    for i in 0..STEPS {
        let t = 1.0 - (i as f64 + 0.5) / STEPS as f64;
        svg.rect(
            x,
            top + i as f64 * step_h,
            14.0,
            step_h + 0.5,
            &h.scale.at(t).hex(),
            None,
        );
    }
    svg.rect(
        x,
        top,
        14.0,
        height,
        "none",
        Some(Stroke::solid("#888", 0.5)),
    );
    let (lo, hi) = h.range;
    for v in nice_ticks(lo, hi, 5) {
        let y = top + height * (1.0 - (v - lo) / (hi - lo));
        svg.line((x + 14.0, y), (x + 18.0, y), Stroke::solid("#555", 1.0));
        svg.text((x + 21.0, y + 4.0), &tick_label(v), TextStyle::sized(10.0));
    }
}

/// One group of scatter points, drawn in one style.
#[derive(Clone, Debug)]
pub struct ScatterGroup {
    pub name: String,
    pub colour: String,
    pub opacity: f64,
    pub radius: f64,
    /// A dark ring around each point (and its legend mark), setting the group apart without
    /// changing its colour.
    pub outline: Option<String>,
    pub points: Vec<(f64, f64)>,
}

/// Where each legend entry of a scatter plot goes: entries left to right, wrapping to a new
/// line of `LEGEND_LINE` px when the next would pass `width`. Returns the entries' left edges
/// and baselines' offsets below the title, and the number of lines.
fn legend_layout(labels: &[String], width: f64) -> (Vec<(f64, f64)>, usize) {
    let mut out = vec![];
    let (mut x, mut line) = (0.0, 0usize);
    for label in labels {
        let w = 30.0 + text_width(label, 11.0);
        if x > 0.0 && x + w - 16.0 > width {
            (x, line) = (0.0, line + 1);
        }
        out.push((x, line as f64 * LEGEND_LINE));
        x += w;
    }
    (out, if labels.is_empty() { 0 } else { line + 1 })
}

/// Height of one line of a scatter plot's legend.
const LEGEND_LINE: f64 = 18.0;

/// Draws groups in order (later on top) in a square plot without axes, under a legend that
/// names each group and its number of points.
pub fn scatter(title: &str, groups: &[ScatterGroup], size: f64) -> String {
    let all = || groups.iter().flat_map(|g| g.points.iter().copied());
    let (xs, ys) = (bounds(all().map(|p| p.0)), bounds(all().map(|p| p.1)));
    let labels: Vec<String> = groups
        .iter()
        .map(|g| format!("{} ({})", g.name, g.points.len()))
        .collect();
    let (places, lines) = legend_layout(&labels, size);
    let pad = 12.0;
    let top = TITLE_H + 8.0 + lines as f64 * LEGEND_LINE;
    let mut svg = Svg::new(size + 2.0 * pad, size + top + pad);
    svg.text(
        (size / 2.0 + pad, 20.0),
        title,
        TextStyle::sized(13.0).anchor("middle").bold(),
    );
    for ((g, label), (dx, dy)) in groups.iter().zip(&labels).zip(places) {
        let (lx, ly) = (pad + dx, TITLE_H + dy);
        let ring = g.outline.as_deref().map(|c| Stroke::solid(c, 1.2));
        svg.circle_with(
            (lx + 5.0, ly + 8.0),
            5.0,
            &g.colour,
            g.opacity.max(0.6),
            ring,
        );
        svg.text((lx + 14.0, ly + 12.0), label, TextStyle::sized(11.0));
    }
    svg.rect(
        pad,
        top,
        size,
        size,
        "none",
        Some(Stroke::solid("#ddd", 1.0)),
    );
    let inner = size - 2.0 * 8.0;
    let map = |v: f64, (lo, hi): (f64, f64)| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    for g in groups {
        let ring = g.outline.as_deref().map(|c| Stroke::solid(c, 0.8));
        for &(x, y) in &g.points {
            let px = pad + 8.0 + map(x, xs) * inner;
            let py = top + 8.0 + (1.0 - map(y, ys)) * inner;
            svg.circle_with((px, py), g.radius, &g.colour, g.opacity, ring);
        }
    }
    svg.finish()
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// One line of a line chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub colour: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// A line chart with a shared x axis, optional horizontal reference lines and a legend.
#[derive(Clone, Debug)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// (value, legend text) of dashed horizontal lines.
    pub hlines: Vec<(f64, String)>,
    /// The y range; the data's (with the reference lines) when `None`.
    pub y_range: Option<(f64, f64)>,
}

/// Plot area placement: origin (left, top) and size.
struct Area {
    left: f64,
    top: f64,
    w: f64,
    h: f64,
    xs: (f64, f64),
    ys: (f64, f64),
}

impl Area {
    fn at(&self, (x, y): (f64, f64)) -> (f64, f64) {
        let fx = if self.xs.1 > self.xs.0 {
            (x - self.xs.0) / (self.xs.1 - self.xs.0)
        } else {
            0.5
        };
        let fy = if self.ys.1 > self.ys.0 {
            (y - self.ys.0) / (self.ys.1 - self.ys.0)
        } else {
            0.5
        };
        (self.left + fx * self.w, self.top + (1.0 - fy) * self.h)
    }
}

/// Draws a line chart of 520 x 340 px.
pub fn line_chart(c: &LineChart) -> String {
    let points = || c.series.iter().flat_map(|s| s.points.iter().copied());
    let xs = bounds(points().map(|p| p.0));
    let ys = c.y_range.unwrap_or_else(|| {
        let (lo, hi) = bounds(points().map(|p| p.1).chain(c.hlines.iter().map(|h| h.0)));
        (lo.min(0.0), hi.max(lo + 1.0))
    });
    let xs = if xs.0.is_finite() { xs } else { (0.0, 1.0) };
    let area = Area {
        left: 58.0,
        top: TITLE_H + 28.0,
        w: 440.0,
        h: 230.0,
        xs,
        ys,
    };
    let mut svg = Svg::new(520.0, area.top + area.h + 50.0);
    svg.text(
        (260.0, 20.0),
        &c.title,
        TextStyle::sized(13.0).anchor("middle").bold(),
    );
    axes(&mut svg, &area, &c.x_label, &c.y_label);
    for (v, _) in &c.hlines {
        let (y, x0, x1) = (area.at((xs.0, *v)).1, area.left, area.left + area.w);
        svg.line((x0, y), (x1, y), Stroke::dashed("#444", 1.5));
    }
    for s in &c.series {
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| area.at(*p)).collect();
        let stroke = if s.dashed {
            Stroke::dashed(&s.colour, 2.0)
        } else {
            Stroke::solid(&s.colour, 2.0)
        };
        svg.polyline(&pts, stroke);
        for p in &pts {
            svg.circle(*p, 2.5, &s.colour, 1.0);
        }
    }
    legend(&mut svg, c, TITLE_H + 6.0);
    svg.finish()
}

/// One named point of [`labelled_points`].
#[derive(Clone, Debug)]
pub struct Labelled {
    pub label: String,
    pub colour: String,
    pub x: f64,
    pub y: f64,
    /// An interval of `y`, drawn as a vertical bar through the point.
    pub y_bounds: Option<(f64, f64)>,
}

/// A scatter plot of 520 x 340 px with both axes starting at 0, each point named beside it.
pub fn labelled_points(title: &str, x_label: &str, y_label: &str, points: &[Labelled]) -> String {
    let top = |vals: &mut dyn Iterator<Item = f64>| {
        let hi = vals.filter(|v| v.is_finite()).fold(0.0, f64::max);
        if hi > 0.0 { hi * 1.1 } else { 1.0 }
    };
    let xs = (0.0, top(&mut points.iter().map(|p| p.x)));
    let ys_hi = top(&mut points
        .iter()
        .flat_map(|p| [Some(p.y), p.y_bounds.map(|b| b.1)])
        .flatten());
    let area = Area {
        left: 58.0,
        top: TITLE_H + 10.0,
        w: 440.0,
        h: 250.0,
        xs,
        ys: (0.0, ys_hi),
    };
    let mut svg = Svg::new(520.0, area.top + area.h + 50.0);
    let title_style = TextStyle::sized(13.0).anchor("middle").bold();
    svg.text((260.0, 20.0), title, title_style);
    axes(&mut svg, &area, x_label, y_label);
    for p in points {
        let at = area.at((p.x, p.y));
        if let Some((lo, hi)) = p.y_bounds {
            let (a, b) = (area.at((p.x, lo.max(0.0))), area.at((p.x, hi)));
            svg.line(a, b, Stroke::solid(&p.colour, 1.5));
        }
        svg.circle(at, 4.5, &p.colour, 1.0);
        // Labels in the right quarter go to the point's left, so that they stay in the frame.
        if at.0 > area.left + 0.75 * area.w {
            let style = TextStyle::sized(11.0).anchor("end");
            svg.text((at.0 - 7.0, at.1 - 6.0), &p.label, style);
        } else {
            svg.text((at.0 + 7.0, at.1 - 6.0), &p.label, TextStyle::sized(11.0));
        }
    }
    svg.finish()
}

fn axes(svg: &mut Svg, a: &Area, x_label: &str, y_label: &str) {
    let grey = Stroke::solid("#e6e6e6", 1.0);
    for v in nice_ticks(a.ys.0, a.ys.1, 5) {
        let y = a.at((a.xs.0, v)).1;
        svg.line((a.left, y), (a.left + a.w, y), grey);
        svg.text(
            (a.left - 6.0, y + 4.0),
            &tick_label(v),
            TextStyle::sized(10.0).anchor("end"),
        );
    }
    for v in nice_ticks(a.xs.0, a.xs.1, 6) {
        let x = a.at((v, a.ys.0)).0;
        svg.line(
            (x, a.top + a.h),
            (x, a.top + a.h + 4.0),
            Stroke::solid("#555", 1.0),
        );
        let style = TextStyle::sized(10.0).anchor("middle");
        svg.text((x, a.top + a.h + 16.0), &tick_label(v), style);
    }
    let axis = Stroke::solid("#555", 1.0);
    svg.line((a.left, a.top), (a.left, a.top + a.h), axis);
    svg.line((a.left, a.top + a.h), (a.left + a.w, a.top + a.h), axis);
    let mid_x = a.left + a.w / 2.0;
    svg.text(
        (mid_x, a.top + a.h + 36.0),
        x_label,
        TextStyle::sized(12.0).anchor("middle"),
    );
    let mid_y = a.top + a.h / 2.0;
    svg.text(
        (16.0, mid_y),
        y_label,
        TextStyle::sized(12.0).anchor("middle").rotate(-90.0),
    );
}

fn legend(svg: &mut Svg, c: &LineChart, y: f64) {
    let mut x = 58.0;
    let entries = c
        .series
        .iter()
        .map(|s| (s.name.as_str(), s.colour.as_str(), s.dashed));
    let refs = c
        .hlines
        .iter()
        .map(|(_, name)| (name.as_str(), "#444", true));
    for (name, colour, dashed) in entries.chain(refs) {
        let stroke = if dashed {
            Stroke::dashed(colour, 2.0)
        } else {
            Stroke::solid(colour, 2.0)
        };
        svg.line((x, y), (x + 22.0, y), stroke);
        svg.text((x + 27.0, y + 4.0), name, TextStyle::sized(11.0));
        x += 40.0 + text_width(name, 11.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heatmap_writes_every_annotation_and_the_highlight() {
        let h = Heatmap {
            title: "t".into(),
            rows: vec!["a".into(), "b".into()],
            cols: vec!["x".into(), "y".into()],
            values: vec![vec![Some(1.0), Some(2.0)], vec![None, Some(4.0)]],
            labels: vec![
                vec!["1".into(), "2".into()],
                vec![String::new(), "4".into()],
            ],
            scale: Scale::Viridis,
            range: (1.0, 4.0),
            x_label: "rho".into(),
            y_label: "alpha".into(),
            highlight: Some((1, 1)),
            cell: (40.0, 28.0),
            colour_bar: true,
        };
        let svg = heatmap(&h);
        for label in [">1<", ">2<", ">4<", ">rho<", ">alpha<", "#ff00aa"] {
            assert!(svg.contains(label), "{label}");
        }
        assert_eq!(h.colour(4.0), Scale::Viridis.at(1.0));
    }

    #[test]
    fn a_line_chart_draws_each_series_and_reference() {
        let c = LineChart {
            title: "t".into(),
            x_label: "epoch".into(),
            y_label: "acc".into(),
            series: vec![Series {
                name: "unlearned".into(),
                colour: "#e63946".into(),
                points: vec![(0.0, 3.0), (1.0, 50.0)],
                dashed: false,
            }],
            hlines: vec![(90.0, "target 90".into())],
            y_range: Some((0.0, 100.0)),
        };
        let svg = line_chart(&c);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("stroke-dasharray") && svg.contains("target 90"));
    }
}
