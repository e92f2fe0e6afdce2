//! `tarun results --rows A --cols B --value M`: one metric as a grid over two matrix axes, in
//! the terminal as a heat table.

use serde_json::Value;
use tarun_core::manifest::Study;
use tarun_core::plan::State;

use std::collections::BTreeSet;

use super::{Cell, Delimited, Known, Row, axis_text, compact, pad};
use crate::commands::Result;
use crate::errors::ExpectedError;
use crate::output::{out, outln};

/// One metric over two axes: `cells[i][j]` is the node at the `i`-th value of `rows` and the
/// `j`-th of `cols`, if any.
pub(super) struct Grid<'a> {
    rows: String,
    cols: String,
    value: String,
    row_values: Vec<(String, &'a Value)>,
    col_values: Vec<(String, &'a Value)>,
    cells: Vec<Vec<Option<&'a Row<'a>>>>,
}

/// Builds the grid of the listed rows that bind both axes; two nodes in one cell are an error
/// that names an axis (or `node`) telling them apart.
pub(super) fn pivot<'a>(
    study: &Study,
    known: &Known,
    listed: &[&'a Row<'a>],
    rows: &str,
    cols: &str,
    value: &str,
) -> Result<Grid<'a>> {
    let rows = known.axis(rows, "--rows")?;
    let cols = known.axis(cols, "--cols")?;
    if rows == cols {
        return Err(ExpectedError::Usage(format!(
            "--rows and --cols are both `{rows}`: name two different axes (axes: {})",
            known.axes.join(", ")
        )));
    }
    let value = known.metric(value, "--value")?;
    let placed: Vec<&Row> = listed
        .iter()
        .copied()
        .filter(|r| r.axes.contains_key(rows.as_str()) && r.axes.contains_key(cols.as_str()))
        .collect();
    // Axis values in the matrix's order, those some placed node has.
    let values_of = |axis: &str| -> Vec<(String, &'a Value)> {
        let declared = study
            .matrix
            .iter()
            .find(|(a, _)| a == axis)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default();
        let mut present: Vec<(String, &'a Value)> = Vec::new();
        for r in &placed {
            let (text, v) = &r.axes[axis];
            if !present.iter().any(|(t, _)| t == text) {
                present.push((text.clone(), *v));
            }
        }
        let rank = |t: &str| {
            declared
                .iter()
                .position(|d| axis_text(d) == t)
                .unwrap_or(usize::MAX)
        };
        present.sort_by_key(|(t, _)| rank(t));
        present
    };
    let row_values = values_of(&rows);
    let col_values = values_of(&cols);
    let mut cells: Vec<Vec<Option<&Row>>> = vec![vec![None; col_values.len()]; row_values.len()];
    for r in &placed {
        let i = row_values
            .iter()
            .position(|(t, _)| *t == r.axes[rows.as_str()].0)
            .expect("collected above");
        let j = col_values
            .iter()
            .position(|(t, _)| *t == r.axes[cols.as_str()].0)
            .expect("collected above");
        if let Some(other) = cells[i][j] {
            return Err(collision(&rows, &cols, other, r, &placed));
        }
        cells[i][j] = Some(r);
    }
    Ok(Grid {
        rows,
        cols,
        value,
        row_values,
        col_values,
        cells,
    })
}

/// The error for two nodes in one cell: which `--where` tells them apart.
fn collision(rows: &str, cols: &str, a: &Row, b: &Row, placed: &[&Row]) -> ExpectedError {
    let cell = format!("{rows}={}, {cols}={}", a.axes[rows].0, b.axes[cols].0);
    let axes: BTreeSet<&str> = a.axes.keys().chain(b.axes.keys()).copied().collect();
    let differing = axes.into_iter().find(|k| {
        *k != rows && *k != cols && a.axes.get(k).map(|v| &v.0) != b.axes.get(k).map(|v| &v.0)
    });
    let hint = match differing {
        Some(axis) => {
            let mut values: Vec<&str> = Vec::new();
            for r in placed {
                if let Some((t, _)) = r.axes.get(axis)
                    && !values.contains(&t.as_str())
                {
                    values.push(t);
                }
            }
            format!(
                "narrow them with --where on `{axis}` (e.g. --where {axis}={}; {axis}: {})",
                values.first().copied().unwrap_or(""),
                values.join(", ")
            )
        }
        None => {
            let mut families: Vec<&str> = Vec::new();
            for r in placed {
                if !families.contains(&r.node.name.as_str()) {
                    families.push(&r.node.name);
                }
            }
            format!(
                "narrow them with --where on `node` (e.g. --where node={}; families: {})",
                a.node.name,
                families.join(", ")
            )
        }
    };
    ExpectedError::Usage(format!(
        "--rows {rows} --cols {cols}: `{}` and `{}` both land in the cell {cell}; {hint}",
        a.node.id, b.node.id
    ))
}

impl Grid<'_> {
    /// The cell's value, when its node is fresh and has the metric.
    fn number(&self, i: usize, j: usize) -> Option<&Value> {
        self.cells[i][j]
            .and_then(|r| r.metrics.get(&self.value))
            .filter(|v| !v.is_null())
    }

    /// What a cell says without a value: its node's state, `-` for no node or no metric.
    fn placeholder(&self, i: usize, j: usize) -> String {
        match self.cells[i][j] {
            Some(r) if r.state != State::Fresh => r.state.as_str().into(),
            _ => "-".into(),
        }
    }

    fn corner(&self) -> String {
        format!("{}\\{}", self.rows, self.cols)
    }

    pub(super) fn print_table(&self, colour: bool) -> Result<()> {
        let numbers: Vec<f64> = (0..self.row_values.len())
            .flat_map(|i| (0..self.col_values.len()).map(move |j| (i, j)))
            .filter_map(|(i, j)| self.number(i, j).and_then(Value::as_f64))
            .collect();
        let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let texts: Vec<Vec<String>> = (0..self.row_values.len())
            .map(|i| {
                (0..self.col_values.len())
                    .map(|j| match self.number(i, j) {
                        Some(v) => Cell::Json(v).text(false),
                        None => self.placeholder(i, j),
                    })
                    .collect()
            })
            .collect();
        let first = std::iter::once(self.corner().chars().count())
            .chain(self.row_values.iter().map(|(t, _)| t.chars().count()))
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = (0..self.col_values.len())
            .map(|j| {
                std::iter::once(self.col_values[j].0.chars().count())
                    .chain(texts.iter().map(|row| row[j].chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        outln!(
            "{} by {} (rows) and {} (columns)",
            self.value,
            self.rows,
            self.cols
        )?;
        let mut header = pad(&self.corner(), first, false);
        for (j, (t, _)) in self.col_values.iter().enumerate() {
            header.push_str("  ");
            header.push_str(&pad(t, widths[j], true));
        }
        outln!("{}", header.trim_end())?;
        for (i, (t, _)) in self.row_values.iter().enumerate() {
            let mut line = pad(t, first, false);
            for (j, text) in texts[i].iter().enumerate() {
                line.push_str("  ");
                let padded = pad(text, widths[j], true);
                match self.number(i, j).and_then(Value::as_f64) {
                    Some(x) if colour => line.push_str(&heat(&padded, x, lo, hi)),
                    _ => line.push_str(&padded),
                }
            }
            outln!("{}", line.trim_end())?;
        }
        if colour && hi > lo {
            out!("scale: {} ", compact(lo))?;
            let steps = HEAT.len();
            let mut bar = String::new();
            for k in 0..steps {
                let x = lo + (hi - lo) * k as f64 / (steps - 1) as f64;
                bar.push_str(&heat(" ", x, lo, hi));
            }
            outln!("{bar} {}", compact(hi))?;
        }
        Ok(())
    }

    pub(super) fn print_json(&self, study: &Study) -> Result<()> {
        let cells: Vec<Vec<Value>> = (0..self.row_values.len())
            .map(|i| {
                (0..self.col_values.len())
                    .map(|j| match self.cells[i][j] {
                        None => Value::Null,
                        Some(r) => serde_json::json!({
                            "node": r.node.id,
                            "state": r.state.as_str(),
                            "value": self.number(i, j).cloned().unwrap_or(Value::Null),
                        }),
                    })
                    .collect()
            })
            .collect();
        let values = |vs: &[(String, &Value)]| -> Vec<Value> {
            vs.iter().map(|(_, v)| (*v).clone()).collect()
        };
        let doc = serde_json::json!({
            "study": study.name,
            "rows": self.rows,
            "cols": self.cols,
            "value": self.value,
            "row-values": values(&self.row_values),
            "col-values": values(&self.col_values),
            "cells": cells,
        });
        outln!("{}", serde_json::to_string_pretty(&doc).expect("json"))
    }

    pub(super) fn print_delimited(&self, how: Delimited) -> Result<()> {
        let mut header = vec![self.corner()];
        header.extend(self.col_values.iter().map(|(t, _)| t.clone()));
        let mut right = vec![false];
        right.extend(self.col_values.iter().map(|_| true));
        how.line(&header, Some(&right))?;
        for (i, (t, _)) in self.row_values.iter().enumerate() {
            let mut line = vec![t.clone()];
            for j in 0..self.col_values.len() {
                line.push(match (how, self.number(i, j)) {
                    (_, Some(v)) => how.cell(Cell::Json(v)),
                    (Delimited::Md, None) => self.placeholder(i, j),
                    (Delimited::Csv, None) => String::new(),
                });
            }
            how.line(&line, None)?;
        }
        Ok(())
    }
}

/// Background colours from cold to hot (xterm's 256 colours), each with a readable foreground.
const HEAT: [(u8, u8); 9] = [
    (25, 231),
    (31, 231),
    (37, 16),
    (72, 16),
    (107, 16),
    (143, 16),
    (179, 16),
    (173, 16),
    (167, 231),
];

/// `text` on the colour of `x` within `lo..=hi` (the middle colour when all values are equal).
fn heat(text: &str, x: f64, lo: f64, hi: f64) -> String {
    let t = if hi > lo { (x - lo) / (hi - lo) } else { 0.5 };
    let k = ((t * (HEAT.len() - 1) as f64).round() as usize).min(HEAT.len() - 1);
    let (bg, fg) = HEAT[k];
    format!("\x1b[48;5;{bg}m\x1b[38;5;{fg}m{text}\x1b[0m")
}
