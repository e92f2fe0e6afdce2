//! A minimal SVG writer: shapes, text and colour scales, enough for the report's charts.
//!
//! Drawings use no `id` attributes (several are inlined into one HTML page, where ids would
//! clash) and no external resources; text uses a generic sans-serif font stack.

use std::fmt::Write as _;

const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

/// An SVG drawing under construction, in user units (= CSS pixels at 100 %).
#[derive(Debug)]
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

/// How a piece of text is placed and styled.
#[derive(Clone, Copy, Debug)]
pub struct TextStyle<'a> {
    pub size: f64,
    /// `start`, `middle` or `end`.
    pub anchor: &'a str,
    pub fill: &'a str,
    pub bold: bool,
    /// Degrees, around the text's anchor point.
    pub rotate: f64,
}

impl Default for TextStyle<'_> {
    fn default() -> Self {
        TextStyle {
            size: 11.0,
            anchor: "start",
            fill: "#222",
            bold: false,
            rotate: 0.0,
        }
    }
}

impl<'a> TextStyle<'a> {
    pub fn sized(size: f64) -> Self {
        TextStyle {
            size,
            ..TextStyle::default()
        }
    }
    pub fn anchor(self, anchor: &'a str) -> Self {
        TextStyle { anchor, ..self }
    }
    pub fn fill(self, fill: &'a str) -> Self {
        TextStyle { fill, ..self }
    }
    pub fn bold(self) -> Self {
        TextStyle { bold: true, ..self }
    }
    pub fn rotate(self, rotate: f64) -> Self {
        TextStyle { rotate, ..self }
    }
}

/// A stroke: colour, width and an optional dash pattern.
#[derive(Clone, Copy, Debug)]
pub struct Stroke<'a> {
    pub colour: &'a str,
    pub width: f64,
    pub dash: Option<&'a str>,
}

impl<'a> Stroke<'a> {
    pub fn solid(colour: &'a str, width: f64) -> Self {
        Stroke {
            colour,
            width,
            dash: None,
        }
    }
    pub fn dashed(colour: &'a str, width: f64) -> Self {
        Stroke {
            colour,
            width,
            dash: Some("6 4"),
        }
    }
    fn attrs(&self) -> String {
        let dash = self
            .dash
            .map(|d| format!(r#" stroke-dasharray="{d}""#))
            .unwrap_or_default();
        format!(
            r#"stroke="{}" stroke-width="{}"{dash}"#,
            self.colour,
            num(self.width)
        )
    }
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Svg {
        Svg {
            width,
            height,
            body: String::new(),
        }
    }

    /// A filled rectangle, with an optional outline.
    pub fn rect(
        &mut self,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: &str,
        outline: Option<Stroke<'_>>,
    ) {
        let stroke = outline
            .map(|s| format!(" fill-opacity=\"1\" {}", s.attrs()))
            .unwrap_or_default();
        let _ = writeln!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"{stroke}/>"#,
            num(x),
            num(y),
            num(w),
            num(h)
        );
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: Stroke<'_>) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" {}/>"#,
            num(x1),
            num(y1),
            num(x2),
            num(y2),
            stroke.attrs()
        );
    }

    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke<'_>) {
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{},{}", num(*x), num(*y)))
            .collect();
        let _ = writeln!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke-linejoin="round" {}/>"#,
            pts.join(" "),
            stroke.attrs()
        );
    }

    pub fn circle(&mut self, (cx, cy): (f64, f64), r: f64, fill: &str, opacity: f64) {
        let _ = writeln!(
            self.body,
            r#"<circle cx="{}" cy="{}" r="{}" fill="{fill}" fill-opacity="{}"/>"#,
            num(cx),
            num(cy),
            num(r),
            num(opacity)
        );
    }

    /// A circle with an optional ring around it.
    pub fn circle_with(
        &mut self,
        (cx, cy): (f64, f64),
        r: f64,
        fill: &str,
        opacity: f64,
        ring: Option<Stroke<'_>>,
    ) {
        let Some(ring) = ring else {
            return self.circle((cx, cy), r, fill, opacity);
        };
        let _ = writeln!(
            self.body,
            r#"<circle cx="{}" cy="{}" r="{}" fill="{fill}" fill-opacity="{}" {}/>"#,
            num(cx),
            num(cy),
            num(r),
            num(opacity),
            ring.attrs()
        );
    }

    pub fn text(&mut self, (x, y): (f64, f64), text: &str, style: TextStyle<'_>) {
        let weight = if style.bold {
            r#" font-weight="bold""#
        } else {
            ""
        };
        let rotate = if style.rotate == 0.0 {
            String::new()
        } else {
            format!(
                r#" transform="rotate({} {} {})""#,
                num(style.rotate),
                num(x),
                num(y)
            )
        };
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="{}" text-anchor="{}" fill="{}"{weight}{rotate}>{}</text>"#,
            num(x),
            num(y),
            num(style.size),
            style.anchor,
            style.fill,
            escape(text)
        );
    }

    /// The finished document.
    pub fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body,
            w = num(self.width),
            h = num(self.height),
        )
    }
}

/// A coordinate as SVG text: at most two decimals, no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// Escapes text for XML content and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Black or white, whichever reads better on this colour.
    pub fn text_colour(self) -> &'static str {
        let l = 0.299 * f64::from(self.0) + 0.587 * f64::from(self.1) + 0.114 * f64::from(self.2);
        if l > 150.0 { "#111" } else { "#fff" }
    }
}

/// A sequential colour scale (ColorBrewer Blues/Reds, matplotlib viridis), sampled at 0..=1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Blues,
    Reds,
    Viridis,
}

impl Scale {
    fn anchors(self) -> &'static [Rgb] {
        match self {
            Scale::Blues => &[
                Rgb(0xf7, 0xfb, 0xff),
                Rgb(0xde, 0xeb, 0xf7),
                Rgb(0xc6, 0xdb, 0xef),
                Rgb(0x9e, 0xca, 0xe1),
                Rgb(0x6b, 0xae, 0xd6),
                Rgb(0x42, 0x92, 0xc6),
                Rgb(0x21, 0x71, 0xb5),
                Rgb(0x08, 0x51, 0x9c),
                Rgb(0x08, 0x30, 0x6b),
            ],
            Scale::Reds => &[
                Rgb(0xff, 0xf5, 0xf0),
                Rgb(0xfe, 0xe0, 0xd2),
                Rgb(0xfc, 0xbb, 0xa1),
                Rgb(0xfc, 0x92, 0x72),
                Rgb(0xfb, 0x6a, 0x4a),
                Rgb(0xef, 0x3b, 0x2c),
                Rgb(0xcb, 0x18, 0x1d),
                Rgb(0xa5, 0x0f, 0x15),
                Rgb(0x67, 0x00, 0x0d),
            ],
            Scale::Viridis => &[
                Rgb(0x44, 0x01, 0x54),
                Rgb(0x48, 0x28, 0x78),
                Rgb(0x3e, 0x4a, 0x89),
                Rgb(0x31, 0x68, 0x8e),
                Rgb(0x26, 0x82, 0x8e),
                Rgb(0x1f, 0x9e, 0x89),
                Rgb(0x35, 0xb7, 0x79),
                Rgb(0x6d, 0xcd, 0x59),
                Rgb(0xb4, 0xde, 0x2c),
                Rgb(0xfd, 0xe7, 0x25),
            ],
        }
    }

    /// The colour at `t` (clamped to 0..=1), linearly interpolated between anchors.
    pub fn at(self, t: f64) -> Rgb {
        let anchors = self.anchors();
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let pos = t * (anchors.len() - 1) as f64;
        let i = (pos.floor() as usize).min(anchors.len() - 2);
        let f = pos - i as f64;
        let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
        let (a, b) = (anchors[i], anchors[i + 1]);
        Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }
}

/// About `n` round tick values covering `lo..=hi` (1, 2 or 5 times a power of ten apart).
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).ceil() as i64;
    let end = (hi / step + 1e-9).floor() as i64;
    (start..=end).map(|k| k as f64 * step).collect()
}

/// Tick text without needless decimals.
pub fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_run_from_light_to_dark() {
        assert_eq!(Scale::Blues.at(0.0), Rgb(0xf7, 0xfb, 0xff));
        assert_eq!(Scale::Reds.at(1.0), Rgb(0x67, 0x00, 0x0d));
        assert_eq!(Scale::Reds.at(f64::NAN), Scale::Reds.at(0.0));
        assert_eq!(Scale::Blues.at(1.0).text_colour(), "#fff");
        assert_eq!(Scale::Blues.at(0.0).text_colour(), "#111");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(0.0, 7.0, 4), vec![0.0, 2.0, 4.0, 6.0]);
        assert_eq!(tick_label(0.5), "0.5");
    }

    #[test]
    fn text_is_escaped() {
        let mut s = Svg::new(10.0, 10.0);
        s.text((0.0, 0.0), "a<b & \"c\"", TextStyle::default());
        assert!(s.finish().contains("a&lt;b &amp; &quot;c&quot;"));
    }
}
