//! `tarun results`: every evaluate node's metrics as one table, the matrix axes as columns (like
//! `dvc exp show`), or one metric as a grid over two axes (`--rows A --cols B --value M`), from
//! the store alone: nothing is run. A node whose current key has no record shows its state
//! (`missing`, `stale`, `blocked`) and no numbers: a stale node's older numbers are not current,
//! so they are not shown. Formats and the JSON schema: docs/results.md.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use serde_json::{Map, Value};
use tarun_core::manifest::{NodeKind, NodeSpec, Study};
use tarun_core::plan::{self, NodeStatus, State};
use tarun_core::store::{NodeRecord, Store};

use super::{Result, load};
use crate::cli::{ResultsArgs, ResultsFormat};
use crate::errors::ExpectedError;
use crate::kinds;
use crate::output::outln;

mod pivot;

use pivot::pivot;

/// The four states, as `--where state=` takes them.
const STATES: [State; 4] = [State::Fresh, State::Stale, State::Missing, State::Blocked];

pub fn results(args: ResultsArgs) -> Result<ExitCode> {
    let (study, graph) = load(&args.manifest)?;
    let store = Store::open_read_only(args.store.store.clone())?;
    let runner = kinds::StudyRunner;
    let data = kinds::planning_digest(&study, &store)?;
    let statuses = plan::status(&study, &graph, &store, &runner, &data, &BTreeSet::new())?;
    let all = rows(&study, &statuses, &store)?;
    let known = Known::new(&study, &all);
    let filters = parse_filters(&args.filters, &known, &all)?;
    let listed: Vec<&Row> = all
        .iter()
        .filter(|r| filters.iter().all(|f| f.matches(r)))
        .collect();
    let format = if args.json {
        ResultsFormat::Json
    } else {
        args.format
    };
    if let (Some(rows), Some(cols), Some(value)) = (&args.rows, &args.cols, &args.value) {
        let grid = pivot(&study, &known, &listed, rows, cols, value)?;
        let colour = crate::output::colour(crate::output::Stream::Stdout);
        match format {
            ResultsFormat::Table => grid.print_table(colour)?,
            ResultsFormat::Json => grid.print_json(&study)?,
            ResultsFormat::Csv => grid.print_delimited(Delimited::Csv)?,
            ResultsFormat::Md => grid.print_delimited(Delimited::Md)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let columns = if args.columns.is_empty() {
        default_columns(&study, &listed)
    } else {
        args.columns
            .iter()
            .map(|c| known.column(c, "--columns"))
            .collect::<Result<Vec<_>>>()?
    };
    let mut listed = listed;
    if let Some(sort) = &args.sort {
        let (name, descending) = match sort.strip_prefix('-') {
            Some(name) => (name, true),
            None => (sort.as_str(), false),
        };
        let col = known.column(name, "--sort")?;
        // Stable: equal values keep manifest order; rows without a value go last either way.
        listed.sort_by(|a, b| {
            let (x, y) = (a.cell(&col), b.cell(&col));
            match (x.is_empty(), y.is_empty()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                (false, false) if descending => y.cmp_value(&x),
                (false, false) => x.cmp_value(&y),
            }
        });
    }
    match format {
        ResultsFormat::Table => print_table(&columns, &listed)?,
        ResultsFormat::Json => print_json(&study, &columns, &listed)?,
        ResultsFormat::Csv => print_delimited(&columns, &listed, Delimited::Csv)?,
        ResultsFormat::Md => print_delimited(&columns, &listed, Delimited::Md)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One evaluate node.
struct Row<'a> {
    node: &'a NodeSpec,
    state: State,
    /// Axis name -> (value as the id writes it, value as the manifest types it).
    axes: BTreeMap<&'a str, (String, &'a Value)>,
    /// The current key's metrics, flattened (`a.b`); empty unless the node is fresh.
    metrics: BTreeMap<String, Value>,
    /// Metric names of the record a stale node compares against: known columns, never shown.
    old_names: Vec<String>,
}

/// Every evaluate node in manifest order, with its state and (when fresh) its metrics, read from
/// the `metrics.json` its record names.
fn rows<'a>(study: &'a Study, statuses: &[NodeStatus], store: &Store) -> Result<Vec<Row<'a>>> {
    let mut out = Vec::new();
    for (node, status) in study.nodes.iter().zip(statuses) {
        if node.kind != NodeKind::Evaluate {
            continue;
        }
        let metrics = match &status.record {
            Some(record) if status.state == State::Fresh => metrics_of(store, record)?,
            _ => BTreeMap::new(),
        };
        let old_names = status
            .compared
            .as_ref()
            .map(|rec| {
                let mut names = BTreeMap::new();
                flatten(
                    "",
                    rec.summary.get("metrics").unwrap_or(&Value::Null),
                    &mut names,
                );
                names.into_keys().collect()
            })
            .unwrap_or_default();
        out.push(Row {
            node,
            state: status.state,
            axes: node
                .axes
                .iter()
                .map(|(k, v)| (k.as_str(), (axis_text(v), v)))
                .collect(),
            metrics,
            old_names,
        });
    }
    Ok(out)
}

/// The `metrics` object of a fresh evaluate node's `metrics.json` (the record's summary holds the
/// same scalars, and is the fallback for a record without the file).
pub(super) fn metrics_of(store: &Store, record: &NodeRecord) -> Result<BTreeMap<String, Value>> {
    let metrics = match record.outputs.get(kinds::METRICS_FILE) {
        Some(output) => {
            let path = store.object_path(&output.digest);
            let unreadable = |e: String| {
                ExpectedError::Other(anyhow::anyhow!(
                    "reading `{path}` ({} of `{}`): {e} (`tarun verify` checks the store)",
                    kinds::METRICS_FILE,
                    record.id
                ))
            };
            let bytes = std::fs::read(&path).map_err(|e| unreadable(e.to_string()))?;
            let file: Value =
                serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
            file.get("metrics").cloned().unwrap_or(Value::Null)
        }
        None => record
            .summary
            .get("metrics")
            .cloned()
            .unwrap_or(Value::Null),
    };
    let mut out = BTreeMap::new();
    flatten("", &metrics, &mut out);
    Ok(out)
}

/// Nested objects and arrays become dotted names (`relearn.steps`, `per-class.3`).
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&join(&i.to_string()), v, out);
            }
        }
        Value::Null if prefix.is_empty() => {}
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

/// An axis value as node ids write it: floats in their shortest exact form, `-1` for `-1.0`.
fn axis_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => format!("{f}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Whether `given` names the axis value `text`: numbers compare by value (`-1.0` is `-1`), as
/// references do.
fn same_value(text: &str, given: &str) -> bool {
    match (text.parse::<f64>(), given.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => text == given,
    }
}

/// A column of the table.
#[derive(Clone, Debug, PartialEq)]
enum Column {
    Node,
    State,
    Axis(String),
    Metric(String),
}

impl Column {
    fn name(&self) -> &str {
        match self {
            Column::Node => "node",
            Column::State => "state",
            Column::Axis(a) => a,
            Column::Metric(m) => m,
        }
    }
}

/// The names flags may use: axes some evaluate node binds (in the matrix's order), and metrics
/// some record has or some evaluate node asks for.
struct Known {
    axes: Vec<String>,
    metrics: BTreeSet<String>,
}

impl Known {
    fn new(study: &Study, rows: &[Row]) -> Known {
        let bound: BTreeSet<&str> = rows.iter().flat_map(|r| r.axes.keys().copied()).collect();
        let axes = study
            .matrix
            .iter()
            .map(|(a, _)| a.clone())
            .filter(|a| bound.contains(a.as_str()))
            .collect();
        let mut metrics: BTreeSet<String> = rows
            .iter()
            .flat_map(|r| r.metrics.keys().chain(&r.old_names).cloned())
            .collect();
        for r in rows {
            if let Some(Value::Array(asked)) = r.node.params.get("metrics") {
                metrics.extend(asked.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        Known { axes, metrics }
    }

    fn column(&self, name: &str, flag: &str) -> Result<Column> {
        match name {
            "node" => Ok(Column::Node),
            "state" => Ok(Column::State),
            _ if self.axes.iter().any(|a| a == name) => Ok(Column::Axis(name.to_owned())),
            _ if self.metrics.contains(name) => Ok(Column::Metric(name.to_owned())),
            _ => {
                let mut valid = vec!["node", "state"];
                valid.extend(self.axes.iter().map(String::as_str));
                valid.extend(self.metrics.iter().map(String::as_str));
                Err(ExpectedError::Usage(format!(
                    "{flag} `{name}`: no such column (columns: {})",
                    valid.join(", ")
                )))
            }
        }
    }

    fn axis(&self, name: &str, flag: &str) -> Result<String> {
        if self.axes.iter().any(|a| a == name) {
            Ok(name.to_owned())
        } else {
            Err(ExpectedError::Usage(format!(
                "{flag} `{name}`: no evaluate node has that axis (axes: {})",
                list_or_none(&self.axes)
            )))
        }
    }

    fn metric(&self, name: &str, flag: &str) -> Result<String> {
        if self.metrics.contains(name) {
            Ok(name.to_owned())
        } else {
            let names: Vec<&String> = self.metrics.iter().collect();
            Err(ExpectedError::Usage(format!(
                "{flag} `{name}`: no such metric (metrics: {})",
                list_or_none(&names)
            )))
        }
    }
}

fn list_or_none(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `node`, the axes the listed rows bind (matrix order), `state`, then every metric a listed
/// row's current or compared record has, by name.
fn default_columns(study: &Study, rows: &[&Row]) -> Vec<Column> {
    let mut out = vec![Column::Node];
    let bound: BTreeSet<&str> = rows.iter().flat_map(|r| r.axes.keys().copied()).collect();
    out.extend(
        study
            .matrix
            .iter()
            .filter(|(a, _)| bound.contains(a.as_str()))
            .map(|(a, _)| Column::Axis(a.clone())),
    );
    out.push(Column::State);
    let metrics: BTreeSet<&String> = rows
        .iter()
        .flat_map(|r| r.metrics.keys().chain(&r.old_names))
        .collect();
    out.extend(metrics.into_iter().map(|m| Column::Metric(m.clone())));
    out
}

/// One `--where KEY=VALUE`, its values for one key gathered (alternatives).
enum Filter {
    Node(Vec<String>),
    State(Vec<State>),
    Axis(String, Vec<String>),
}

impl Filter {
    fn matches(&self, row: &Row) -> bool {
        match self {
            Filter::Node(names) => names
                .iter()
                .any(|n| row.node.name == *n || row.node.id == *n),
            Filter::State(states) => states.contains(&row.state),
            Filter::Axis(axis, values) => row
                .axes
                .get(axis.as_str())
                .is_some_and(|(text, _)| values.iter().any(|v| same_value(text, v))),
        }
    }
}

fn parse_filters(given: &[String], known: &Known, rows: &[Row]) -> Result<Vec<Filter>> {
    let mut by_key: Vec<(String, Vec<String>)> = Vec::new();
    for f in given {
        let Some((key, value)) = f
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        else {
            return Err(ExpectedError::Usage(format!(
                "--where `{f}`: expected KEY=VALUE, e.g. `--where {}` (keys: {})",
                known
                    .axes
                    .first()
                    .map(|a| {
                        let v = rows
                            .iter()
                            .find_map(|r| r.axes.get(a.as_str()))
                            .map(|(t, _)| t.as_str())
                            .unwrap_or("VALUE");
                        format!("{a}={v}")
                    })
                    .unwrap_or_else(|| "node=NAME".into()),
                filter_keys(known)
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        match by_key.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value.to_owned()),
            None => by_key.push((key.to_owned(), vec![value.to_owned()])),
        }
    }
    by_key
        .into_iter()
        .map(|(key, values)| filter(&key, values, known, rows))
        .collect()
}

fn filter_keys(known: &Known) -> String {
    let mut keys = vec!["node", "state"];
    keys.extend(known.axes.iter().map(String::as_str));
    keys.join(", ")
}

/// Checks one key's values against what the evaluate nodes have, so that a typo is an error
/// rather than an empty table.
fn filter(key: &str, values: Vec<String>, known: &Known, rows: &[Row]) -> Result<Filter> {
    match key {
        "node" => {
            for v in &values {
                if !rows.iter().any(|r| r.node.name == *v || r.node.id == *v) {
                    let families: BTreeSet<&str> =
                        rows.iter().map(|r| r.node.name.as_str()).collect();
                    let families: Vec<&str> = families.into_iter().collect();
                    return Err(ExpectedError::Usage(format!(
                        "--where `node={v}`: no evaluate node or family of that name \
                         (evaluate families: {})",
                        list_or_none(&families)
                    )));
                }
            }
            Ok(Filter::Node(values))
        }
        "state" => values
            .iter()
            .map(|v| {
                STATES.into_iter().find(|s| s.as_str() == v).ok_or_else(|| {
                    ExpectedError::Usage(format!(
                        "--where `state={v}`: no such state (states: fresh, stale, \
                             missing, blocked)"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Filter::State),
        _ if known.axes.iter().any(|a| a == key) => {
            let mut present: Vec<&str> = Vec::new();
            for r in rows {
                if let Some((text, _)) = r.axes.get(key)
                    && !present.contains(&text.as_str())
                {
                    present.push(text);
                }
            }
            for v in &values {
                if !present.iter().any(|t| same_value(t, v)) {
                    return Err(ExpectedError::Usage(format!(
                        "--where `{key}={v}`: no evaluate node has {key}={v} ({key}: {})",
                        present.join(", ")
                    )));
                }
            }
            Ok(Filter::Axis(key.to_owned(), values))
        }
        _ => Err(ExpectedError::Usage(format!(
            "--where `{key}`: no such key (keys: {})",
            filter_keys(known)
        ))),
    }
}

/// A cell's content, for sorting and printing.
enum Cell<'a> {
    Empty,
    Text(&'a str),
    Json(&'a Value),
}

impl Cell<'_> {
    fn is_empty(&self) -> bool {
        matches!(self, Cell::Empty)
    }

    fn number(&self) -> Option<f64> {
        match self {
            Cell::Json(v) => v.as_f64(),
            Cell::Text(t) => t.parse().ok(),
            Cell::Empty => None,
        }
    }

    /// Numbers by value, before text; text in byte order.
    fn cmp_value(&self, other: &Cell) -> std::cmp::Ordering {
        match (self.number(), other.number()) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => self.text(false).cmp(&other.text(false)),
        }
    }

    /// The text printed: numbers compact (`36.67`) or at full precision (`exact`).
    fn text(&self, exact: bool) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(t) => (*t).to_owned(),
            Cell::Json(Value::Number(n)) => match n.as_f64() {
                Some(x) if exact => format!("{x}"),
                Some(x) => compact(x),
                None => n.to_string(),
            },
            Cell::Json(Value::String(s)) => s.clone(),
            Cell::Json(v) => v.to_string(),
        }
    }
}

impl Row<'_> {
    fn cell(&self, col: &Column) -> Cell<'_> {
        match col {
            Column::Node => Cell::Text(&self.node.id),
            Column::State => Cell::Text(self.state.as_str()),
            Column::Axis(a) => match self.axes.get(a.as_str()) {
                Some((text, _)) => Cell::Text(text),
                None => Cell::Empty,
            },
            Column::Metric(m) => match self.metrics.get(m) {
                Some(Value::Null) | None => Cell::Empty,
                Some(v) => Cell::Json(v),
            },
        }
    }
}

/// A number in at most four significant digits (`36.67`, `0.4031`), integers whole, very large
/// or small ones in scientific notation.
pub(super) fn compact(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let a = x.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Aligned columns: text left, metrics right, `-` for no value, no trailing spaces.
fn print_table(columns: &[Column], rows: &[&Row]) -> Result<()> {
    let header: Vec<String> = columns.iter().map(|c| c.name().to_owned()).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| match r.cell(c) {
                    Cell::Empty => "-".to_owned(),
                    cell => cell.text(false),
                })
                .collect()
        })
        .collect();
    let right: Vec<bool> = columns
        .iter()
        .map(|c| matches!(c, Column::Metric(_)))
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&body)
                .map(|line| line[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in std::iter::once(&header).chain(&body) {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, text)| pad(text, widths[i], right[i]))
            .collect();
        outln!("{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn pad(text: &str, width: usize, right: bool) -> String {
    if right {
        format!("{text:>width$}")
    } else {
        format!("{text:<width$}")
    }
}

/// The table as JSON (schema in docs/results.md): every listed row with its id, family, state,
/// the chosen axes (null where the node does not bind one) and the chosen metrics (null where
/// there is no current value).
fn print_json(study: &Study, columns: &[Column], rows: &[&Row]) -> Result<()> {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut axes = Map::new();
            let mut metrics = Map::new();
            for c in columns {
                match c {
                    Column::Axis(a) => {
                        let v = r.axes.get(a.as_str()).map(|(_, v)| (*v).clone());
                        axes.insert(a.clone(), v.unwrap_or(Value::Null));
                    }
                    Column::Metric(m) => {
                        let v = r.metrics.get(m).cloned();
                        metrics.insert(m.clone(), v.unwrap_or(Value::Null));
                    }
                    Column::Node | Column::State => {}
                }
            }
            serde_json::json!({
                "node": r.node.id,
                "family": r.node.name,
                "state": r.state.as_str(),
                "axes": axes,
                "metrics": metrics,
            })
        })
        .collect();
    let names: Vec<&str> = columns.iter().map(Column::name).collect();
    let doc = serde_json::json!({ "study": study.name, "columns": names, "rows": rows });
    outln!("{}", serde_json::to_string_pretty(&doc).expect("json"))
}

#[derive(Clone, Copy)]
pub(super) enum Delimited {
    Csv,
    Md,
}

impl Delimited {
    pub(super) fn line(self, cells: &[String], right: Option<&[bool]>) -> Result<()> {
        match self {
            Delimited::Csv => outln!(
                "{}",
                cells
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Delimited::Md => {
                outln!(
                    "| {} |",
                    cells
                        .iter()
                        .map(|c| c.replace('|', "\\|"))
                        .collect::<Vec<_>>()
                        .join(" | ")
                )?;
                // After the header: the alignment row.
                if let Some(right) = right {
                    let marks: Vec<&str> = right
                        .iter()
                        .map(|&r| if r { "---:" } else { "---" })
                        .collect();
                    outln!("|{}|", marks.join("|"))?;
                }
                Ok(())
            }
        }
    }

    /// CSV at full precision and empty for no value; Markdown compact, `-` for no value.
    fn cell(self, cell: Cell) -> String {
        match (self, cell) {
            (Delimited::Md, Cell::Empty) => "-".into(),
            (Delimited::Md, c) => c.text(false),
            (Delimited::Csv, c) => c.text(true),
        }
    }
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break (node ids hold commas).
pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn print_delimited(columns: &[Column], rows: &[&Row], how: Delimited) -> Result<()> {
    let header: Vec<String> = columns.iter().map(|c| c.name().to_owned()).collect();
    let right: Vec<bool> = columns
        .iter()
        .map(|c| matches!(c, Column::Metric(_)))
        .collect();
    how.line(&header, Some(&right))?;
    for r in rows {
        let cells: Vec<String> = columns.iter().map(|c| how.cell(r.cell(c))).collect();
        how.line(&cells, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_compactly() {
        assert_eq!(compact(36.666_666), "36.67");
        assert_eq!(compact(0.403_12), "0.4031");
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(-2.0), "-2");
        assert_eq!(compact(123.456), "123.5");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(compact(1.5e-5), "1.500e-5");
        assert_eq!(compact(f64::NAN), "NaN");
    }

    #[test]
    fn axis_values_print_as_ids_write_them() {
        assert_eq!(axis_text(&serde_json::json!(-1.0)), "-1");
        assert_eq!(axis_text(&serde_json::json!(0.5)), "0.5");
        assert_eq!(axis_text(&serde_json::json!(8)), "8");
        assert_eq!(axis_text(&serde_json::json!("resnet18")), "resnet18");
        assert!(same_value("-1", "-1.0"));
        assert!(!same_value("resnet18", "resnet"));
    }

    #[test]
    fn nested_metrics_flatten_to_dotted_names() {
        let mut out = BTreeMap::new();
        flatten(
            "",
            &serde_json::json!({"a": 1.0, "b": {"c": 2, "d": [3, 4]}}),
            &mut out,
        );
        let names: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(names, ["a", "b.c", "b.d.0", "b.d.1"]);
    }

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        assert_eq!(csv_field("a[x=1,y=2]"), "\"a[x=1,y=2]\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
