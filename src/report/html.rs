//! Renders a [`Document`] as one self-contained HTML page: inline CSS, inline SVG figures, a
//! table of contents, and source keys linked to the provenance table.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::doc::{Block, Document, Figure, Table, slug};
use super::svg::escape;

pub(crate) const CSS: &str = "
body { font-family: -apple-system, 'Segoe UI', 'DejaVu Sans', Helvetica, Arial, sans-serif;
       color: #222; background: #fafafa; margin: 0; line-height: 1.5; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #e3e3e3; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-top: 1.5em; }
code { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 0.88em;
       background: #f2f2f2; padding: 1px 4px; border-radius: 3px; }
nav.toc { background: #f5f7fa; border: 1px solid #e1e6ee; padding: 8px 16px; border-radius: 6px; }
nav.toc a { margin-right: 14px; white-space: nowrap; }
.table-wrap { overflow-x: auto; margin: 0.6em 0 1.2em; }
table { border-collapse: collapse; font-size: 0.86em; }
th, td { border-bottom: 1px solid #e6e6e6; padding: 4px 10px; text-align: left; white-space: nowrap; }
th { background: #f3f4f6; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:hover td { background: #fbfbe8; }
td.src a { color: #6a6a6a; text-decoration: none; }
pre { background: #f5f5f5; padding: 10px 14px; border-radius: 6px; overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 0.5em 0; max-width: 100%; display: table; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.82em; color: #555; display: table-caption; caption-side: bottom; }
a { color: #1d6fa5; }
@media print {
  body, main { background: #fff; }
  main { max-width: none; margin: 0; padding: 0; }
  nav.toc { display: none; }
  .table-wrap { overflow: visible; }
  table { font-size: 8pt; }
  @page { margin: 15mm; }
  th, td { white-space: normal; overflow-wrap: anywhere; }
  th { position: static; background: none; border-bottom: 1.5px solid #444; }
  thead { display: table-header-group; }
  tr, pre, figure { break-inside: avoid; page-break-inside: avoid; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  tr:hover td { background: none; }
  code { background: none; padding: 0; }
  pre { background: none; border: 1px solid #bbb; white-space: pre-wrap; }
  .figures { display: block; }
  figure { display: block; width: 100%; }
  figure svg { max-width: 100%; height: auto;
               print-color-adjust: exact; -webkit-print-color-adjust: exact; }
  figcaption { display: block; }
  a { color: inherit; text-decoration: none; }
  a[href^=\"http\"]::after { content: \" (\" attr(href) \")\"; font-size: 0.9em; }
}
";

pub fn render(doc: &Document) -> String {
    let mut ids = Ids::default();
    // Heading anchors first, so that the table of contents links to the same ids.
    let heading_ids: Vec<String> = doc
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading(_, text) => Some(ids.unique(&format!("s-{}", slug(text)))),
            _ => None,
        })
        .collect();
    let mut body = String::new();
    let mut next_heading = heading_ids.iter();
    for block in &doc.blocks {
        match block {
            Block::Heading(level, text) => {
                let id = next_heading.next().map_or("", String::as_str);
                let _ = writeln!(
                    body,
                    "<h{level} id=\"{}\">{}</h{level}>",
                    escape(id),
                    inline(text)
                );
            }
            Block::Paragraph(text) => {
                let _ = writeln!(body, "<p>{}</p>", inline(text));
            }
            Block::Formula(text) => {
                let _ = writeln!(body, "<pre>{}</pre>", escape(text));
            }
            Block::Table(table) => table_html(&mut body, table, &mut ids),
            Block::Figures(indices) => {
                body.push_str("<div class=\"figures\">\n");
                for f in indices.iter().filter_map(|i| doc.figures.get(*i)) {
                    figure_html(&mut body, f);
                }
                body.push_str("</div>\n");
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n{toc}{body}</main>\n</body>\n</html>\n",
        title = inline(&doc.title),
        toc = toc(doc, &heading_ids),
    )
}

/// The ids given out on one page, so that each is used once: headings with the same text (one
/// "Architecture `resnet18`" per section) and rows citing the same record get `-2`, `-3`, ...
#[derive(Default)]
struct Ids {
    used: HashSet<String>,
}

impl Ids {
    /// `base` itself when unused, else the first unused `base-N` from N = 2.
    fn unique(&mut self, base: &str) -> String {
        let mut id = base.to_owned();
        let mut n = 1;
        while self.used.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        self.used.insert(id.clone());
        id
    }
}

/// Links to every level-2 heading; `ids` are the headings' anchors, in document order.
fn toc(doc: &Document, ids: &[String]) -> String {
    let links: Vec<String> = doc
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading(level, text) => Some((*level, text)),
            _ => None,
        })
        .zip(ids)
        .filter(|((level, _), _)| *level == 2)
        .map(|((_, text), id)| format!("<a href=\"#{}\">{}</a>", escape(id), inline(text)))
        .collect();
    if links.is_empty() {
        return String::new();
    }
    format!(
        "<nav class=\"toc\"><strong>Contents</strong> · {}</nav>\n",
        links.join(" ")
    )
}

/// Escapes text and turns `` `code` `` and `**bold**` into tags.
pub fn inline(text: &str) -> String {
    let mut out = String::new();
    let (mut code, mut bold) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = &rest[1..];
        } else if !code && rest.starts_with("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = &rest[2..];
        } else {
            out.push_str(&escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

fn is_number(text: &str) -> bool {
    let t = text.trim().trim_end_matches('%').trim();
    t.parse::<f64>().is_ok() || t == "–"
}

fn table_html(out: &mut String, table: &Table, ids: &mut Ids) {
    let sources = table.has_sources();
    out.push_str("<div class=\"table-wrap\"><table>\n<thead><tr>");
    for h in &table.header {
        let _ = write!(out, "<th>{}</th>", inline(h));
    }
    if sources {
        out.push_str("<th>source</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        match &row.anchor {
            Some(a) => {
                let _ = write!(out, "<tr id=\"{}\">", escape(&ids.unique(a)));
            }
            None => out.push_str("<tr>"),
        }
        for c in &row.cells {
            let class = if is_number(c) { " class=\"num\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", inline(c));
        }
        if sources {
            let link = row.source.as_deref().map(source_link);
            let _ = write!(out, "<td class=\"src\">{}</td>", link.unwrap_or_default());
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

/// A figure with its caption; the record it is drawn from links to its provenance row. The
/// `.svg` file written beside the page is not named: the drawing is inline.
fn figure_html(out: &mut String, f: &Figure) {
    let source = f
        .source
        .as_ref()
        .map(|s| format!(" Record {}.", source_link(s)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<figure>\n{}<figcaption><strong>{}</strong>. {}{source}</figcaption>\n</figure>",
        f.svg,
        inline(&f.title),
        inline(&f.caption),
    );
}

/// A record's short key as a link to its row in the provenance table.
fn source_link(short: &str) -> String {
    format!("<a href=\"#k-{s}\"><code>{s}</code></a>", s = escape(short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_marks_become_tags() {
        assert_eq!(
            inline("a `b<c` **d**"),
            "a <code>b&lt;c</code> <strong>d</strong>"
        );
        assert_eq!(inline("`x**y`"), "<code>x**y</code>");
        assert_eq!(inline("open `code"), "open <code>code</code>");
    }
}
