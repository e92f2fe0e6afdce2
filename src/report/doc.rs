//! The report as a renderer-neutral document: headings, paragraphs, tables with provenance and
//! figures. [`super::markdown`] and [`super::html`] turn it into files.
//!
//! Paragraph and cell text may use two inline marks, `` `code` `` and `**bold**`; both
//! renderers understand them and nothing else.

use super::model::Provenance;

/// The whole report.
#[derive(Clone, Debug, Default)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
    /// Every figure, in order of first appearance; blocks refer to them by index.
    pub figures: Vec<Figure>,
}

/// One block of content.
#[derive(Clone, Debug)]
pub enum Block {
    /// Level 2 or 3 (the title is level 1). The anchor is derived from the text.
    Heading(u8, String),
    Paragraph(String),
    /// A displayed formula or computation, shown verbatim.
    Formula(String),
    Table(Table),
    /// Figures shown side by side (indices into [`Document::figures`]).
    Figures(Vec<usize>),
}

/// A table. When any row has a source, renderers add a last column citing it.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: vec![],
        }
    }

    /// Appends a row whose numbers come from `source`.
    pub fn push(&mut self, cells: Vec<String>, source: Option<&Provenance>) {
        self.rows.push(Row {
            cells,
            source: source.map(|p| p.short().to_owned()),
            anchor: None,
        });
    }

    /// Whether the renderers add a `source` column.
    pub fn has_sources(&self) -> bool {
        self.rows.iter().any(|r| r.source.is_some())
    }
}

/// One table row.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub cells: Vec<String>,
    /// The short key of the record every number in the row comes from.
    pub source: Option<String>,
    /// An HTML anchor for this row (the provenance table's rows are link targets).
    pub anchor: Option<String>,
}

/// A figure: an SVG drawing written to its own file and inlined in the HTML.
#[derive(Clone, Debug)]
pub struct Figure {
    /// File name, unique within the report.
    pub file: String,
    pub title: String,
    /// What it shows and which node it is drawn from.
    pub caption: String,
    /// The short key of the record it is drawn from: the renderers cite it after the caption
    /// (the HTML links it to the provenance table).
    pub source: Option<String>,
    pub svg: String,
}

impl Document {
    /// Adds figures and a block showing them side by side.
    pub fn figures(&mut self, figures: Vec<Figure>) {
        if figures.is_empty() {
            return;
        }
        let first = self.figures.len();
        self.figures.extend(figures);
        self.blocks
            .push(Block::Figures((first..self.figures.len()).collect()));
    }

    pub fn heading(&mut self, level: u8, text: impl Into<String>) {
        self.blocks.push(Block::Heading(level, text.into()));
    }

    pub fn paragraph(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Paragraph(text.into()));
    }

    pub fn table(&mut self, table: Table) {
        if !table.rows.is_empty() {
            self.blocks.push(Block::Table(table));
        }
    }
}

/// A figure's caption naming the node it is drawn from: "From the outputs of node `id`."
/// The record's key goes in [`Figure::source`].
pub fn from_node(p: &Provenance) -> String {
    format!("From the outputs of node `{}`.", p.id)
}

/// A file-name-safe slug of a node id: `unlearned-eval[arch=vgg11_bn]` -> `unlearned-eval-arch-vgg11_bn`.
pub fn slug(id: &str) -> String {
    let mut out = String::new();
    for c in id.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// How a metric's value is printed everywhere in the report (tables and the tests agree on it).
pub fn fmt_metric(name: &str, v: f64) -> String {
    let counted =
        name.starts_with("ain-steps") || name.ends_with("neighbour") || name == "ain-reached";
    if counted && v.fract() == 0.0 {
        format!("{v:.0}")
    } else if name.contains("acc")
        || name.contains("gap")
        || name.contains("drop")
        || name.starts_with("mia-efficacy")
        || name == "ain-target"
    {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Seconds, with a precision that suits their size.
pub fn fmt_seconds(s: f64) -> String {
    if s >= 100.0 {
        format!("{s:.0}")
    } else if s >= 1.0 {
        format!("{s:.2}")
    } else {
        format!("{s:.4}")
    }
}

/// A number as written in a manifest axis (`-2.5`, `0.99`, `0.5257894736842105` shortened).
pub fn fmt_axis(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("unlearned-eval[arch=vgg11_bn,class=8]"),
            "unlearned-eval-arch-vgg11_bn-class-8"
        );
        assert_eq!(slug("best[alpha=-2.5]"), "best-alpha-2.5");
    }

    #[test]
    fn numbers_print_by_kind() {
        assert_eq!(fmt_metric("retain-acc", 62.311_11), "62.31");
        assert_eq!(fmt_metric("kl-forget", 3.204_805), "3.2048");
        assert_eq!(fmt_metric("ain-steps-unlearned", 9.0), "9");
        assert_eq!(fmt_axis(-2.5), "-2.5");
        assert_eq!(fmt_axis(0.628_947_368), "0.6289");
        assert_eq!(fmt_seconds(3251.29), "3251");
    }
}
