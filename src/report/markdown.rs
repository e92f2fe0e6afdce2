//! Renders a [`Document`] as GitHub-flavoured Markdown; figures are linked as the `.svg` files
//! written beside `report.md`.

use std::fmt::Write as _;

use super::doc::{Block, Document, Table};

pub fn render(doc: &Document) -> String {
    let mut out = format!("# {}\n\n", doc.title);
    for block in &doc.blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(usize::from(*level)));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Block::Formula(text) => {
                let _ = writeln!(out, "```text\n{text}\n```\n");
            }
            Block::Table(table) => table_md(&mut out, table),
            Block::Figures(indices) => {
                for f in indices.iter().filter_map(|i| doc.figures.get(*i)) {
                    let source = f
                        .source
                        .as_ref()
                        .map(|s| format!(" Record `{s}`."))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "![{}]({})\n\n*{}* {}{source}\n",
                        f.title, f.file, f.title, f.caption
                    );
                }
            }
        }
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn table_md(out: &mut String, table: &Table) {
    let sources = table.has_sources();
    let mut header: Vec<String> = table.header.iter().map(|h| cell(h)).collect();
    if sources {
        header.push("source".into());
    }
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in &table.rows {
        let mut cells: Vec<String> = row.cells.iter().map(|c| cell(c)).collect();
        if sources {
            cells.push(
                row.source
                    .as_ref()
                    .map(|s| format!("`{s}`"))
                    .unwrap_or_default(),
            );
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}
