//! The `[matrix]` table: named axes, each a list of distinct scalars or a `linspace`.

use super::error::{ErrorKind, Problem};
use super::source::Origin;
use super::tree::{Entry, Item, Table, Value};

/// More values than this in one `linspace` is surely a typo, and would expand forever.
const MAX_LINSPACE: i64 = 100_000;

/// Characters that would make an axis value impossible to name in a reference or an id.
const RESERVED: &[char] = &['[', ']', ',', '='];

/// One value of an axis.
#[derive(Clone, Debug)]
pub(crate) struct AxisValue {
    /// A scalar: string, integer, float or boolean.
    pub(crate) value: Value,
    /// As written in ids and substituted into longer strings.
    pub(crate) text: String,
    /// What references compare: numbers in canonical form, so `alpha=-1.0` matches `-1`.
    pub(crate) canon: String,
}

/// A named axis of the matrix.
#[derive(Clone, Debug)]
pub(crate) struct Axis {
    pub(crate) name: String,
    pub(crate) values: Vec<AxisValue>,
}

/// The axes, in declaration order.
#[derive(Debug, Default)]
pub(crate) struct Matrix {
    pub(crate) axes: Vec<Axis>,
    /// Axes declared but invalid (already reported): families over them are left unexpanded
    /// without another error.
    pub(crate) invalid: Vec<String>,
}

impl Matrix {
    pub(crate) fn get(&self, name: &str) -> Option<&Axis> {
        self.axes.iter().find(|a| a.name == name)
    }

    pub(crate) fn names(&self) -> Vec<&str> {
        self.axes.iter().map(|a| a.name.as_str()).collect()
    }

    pub(crate) fn to_json(&self) -> Vec<(String, Vec<serde_json::Value>)> {
        self.axes
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    a.values.iter().map(|v| v.value.to_json()).collect(),
                )
            })
            .collect()
    }
}

/// The canonical text of a reference value or axis value: integers and finite floats in Rust's
/// shortest exact form, anything else verbatim.
pub(crate) fn canon(text: &str) -> String {
    if let Ok(i) = text.parse::<i64>() {
        return i.to_string();
    }
    let numeric = text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'));
    match text.parse::<f64>() {
        Ok(f) if numeric && f.is_finite() => f.to_string(),
        _ => text.to_owned(),
    }
}

/// `count` values from `start` to `stop`, both included, as numpy's `linspace` computes them.
pub(crate) fn linspace(start: f64, stop: f64, count: usize) -> Vec<f64> {
    if count == 1 {
        return vec![start];
    }
    let step = (stop - start) / (count - 1) as f64;
    let mut values: Vec<f64> = (0..count).map(|i| i as f64 * step + start).collect();
    values[count - 1] = stop;
    values
}

/// Reads `[matrix]`, reporting every bad axis; bad axes are left out.
pub(crate) fn parse(entry: Option<&Entry>, problems: &mut Vec<Problem>) -> Matrix {
    let mut matrix = Matrix::default();
    let Some(entry) = entry else { return matrix };
    let Value::Table(table) = &entry.item.value else {
        problems.push(wrong_type(&entry.item, "a table of axes"));
        return matrix;
    };
    for (name, axis) in table.iter() {
        let Some(values) = axis_values(name, axis, problems) else {
            matrix.invalid.push(name.to_owned());
            continue;
        };
        matrix.axes.push(Axis {
            name: name.to_owned(),
            values,
        });
    }
    matrix
}

fn axis_values(name: &str, entry: &Entry, problems: &mut Vec<Problem>) -> Option<Vec<AxisValue>> {
    let item = &entry.item;
    let values = match &item.value {
        Value::Array(items) => list(items, problems)?,
        Value::Table(t) => spaced(t, item, problems)?,
        _ => {
            problems.push(
                Problem::new(
                    ErrorKind::InvalidAxis,
                    Some(item.origin.clone()),
                    format!("invalid axis `{name}`"),
                )
                .label(format!(
                    "expected a list of values, found {}",
                    item.value.type_name()
                ))
                .help("an axis is a non-empty list or `{ linspace = [start, stop, count] }`"),
            );
            return None;
        }
    };
    if values.is_empty() {
        problems.push(
            Problem::new(ErrorKind::EmptyAxis, Some(item.origin.clone()), format!("axis `{name}` is empty"))
                .label("no values")
                .help("a family over an empty axis would have no members; remove the axis or give it values"),
        );
        return None;
    }
    Some(values)
}

fn list(items: &[Item], problems: &mut Vec<Problem>) -> Option<Vec<AxisValue>> {
    let mut out: Vec<AxisValue> = Vec::new();
    let mut ok = true;
    for item in items {
        match scalar(item) {
            Ok(v) if out.iter().any(|o| o.canon == v.canon) => {
                let message = format!("axis value `{}` is listed twice", v.text);
                problems.push(
                    Problem::new(ErrorKind::InvalidAxis, Some(item.origin.clone()), message)
                        .label("repeated here"),
                );
                ok = false;
            }
            Ok(v) => out.push(v),
            Err(p) => {
                problems.push(p);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn scalar(item: &Item) -> Result<AxisValue, Problem> {
    let invalid = |label: String| {
        Problem::new(
            ErrorKind::InvalidAxis,
            Some(item.origin.clone()),
            "invalid axis value",
        )
        .label(label)
    };
    match &item.value {
        Value::Float(f) if !f.is_finite() => {
            return Err(invalid("axis values must be finite".into()));
        }
        Value::String(s) if s.contains(RESERVED) || s.contains("${") => {
            return Err(invalid(
                "`[`, `]`, `,`, `=` and `${` cannot appear in an axis value".into(),
            ));
        }
        Value::String(s) if s.is_empty() => {
            return Err(invalid("an axis value cannot be empty".into()));
        }
        _ => {}
    }
    let Some(text) = item.value.scalar_text() else {
        return Err(invalid(format!(
            "expected a string, number or boolean, found {}",
            item.value.type_name()
        )));
    };
    Ok(AxisValue {
        value: item.value.clone(),
        canon: canon(&text),
        text,
    })
}

/// `{ linspace = [start, stop, count] }`.
fn spaced(table: &Table, item: &Item, problems: &mut Vec<Problem>) -> Option<Vec<AxisValue>> {
    let mut result = None;
    for (key, entry) in table.iter() {
        if key != "linspace" {
            let p = Problem::new(
                ErrorKind::UnknownKey,
                Some(entry.key.clone()),
                format!("unknown key `{key}`"),
            )
            .label("not part of an axis")
            .help("an axis table is `{ linspace = [start, stop, count] }`");
            problems.push(p);
            continue;
        }
        match linspace_args(&entry.item) {
            Ok(args) => result = Some(args),
            Err(p) => problems.push(p),
        }
    }
    let Some((start, stop, count)) = result else {
        if table.get("linspace").is_none() {
            let p = Problem::new(
                ErrorKind::InvalidAxis,
                Some(item.origin.clone()),
                "invalid axis",
            )
            .label("expected `linspace`");
            problems.push(p);
        }
        return None;
    };
    let values = linspace(start, stop, count)
        .into_iter()
        .map(|f| AxisValue {
            value: Value::Float(f),
            text: f.to_string(),
            canon: f.to_string(),
        })
        .collect();
    Some(values)
}

fn linspace_args(item: &Item) -> Result<(f64, f64, usize), Problem> {
    let bad = |origin: &Origin, label: &str| {
        Problem::new(
            ErrorKind::InvalidAxis,
            Some(origin.clone()),
            "invalid `linspace`",
        )
        .label(label.to_owned())
        .help("`linspace = [start, stop, count]`: both ends included, count at least 1")
    };
    let Value::Array(args) = &item.value else {
        return Err(bad(&item.origin, "expected `[start, stop, count]`"));
    };
    let [start, stop, count] = args.as_slice() else {
        return Err(bad(&item.origin, "expected three values"));
    };
    let number = |i: &Item| match i.value {
        Value::Integer(n) => Ok(n as f64),
        Value::Float(f) if f.is_finite() => Ok(f),
        _ => Err(bad(&i.origin, "expected a finite number")),
    };
    let (start, stop) = (number(start)?, number(stop)?);
    match count.value {
        Value::Integer(0) => Err(Problem::new(
            ErrorKind::EmptyAxis,
            Some(count.origin.clone()),
            "`linspace` with no values",
        )
        .label("count is 0")),
        Value::Integer(n) if (1..=MAX_LINSPACE).contains(&n) => Ok((start, stop, n as usize)),
        _ => Err(bad(&count.origin, "expected a count between 1 and 100000")),
    }
}

fn wrong_type(item: &Item, expected: &str) -> Problem {
    Problem::new(
        ErrorKind::WrongType,
        Some(item.origin.clone()),
        "wrong type for `matrix`",
    )
    .label(format!(
        "expected {expected}, found {}",
        item.value.type_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        let v = linspace(0.5, 0.99, 20);
        assert_eq!(v.len(), 20);
        assert_eq!(v[0], 0.5);
        assert_eq!(v[1].to_string(), "0.5257894736842105");
        assert_eq!(v[19], 0.99);
        assert_eq!(linspace(2.0, 3.0, 1), vec![2.0]);
    }

    #[test]
    fn canon_compares_numbers_by_value() {
        assert_eq!(canon("-1.0"), "-1");
        assert_eq!(canon("-1"), "-1");
        assert_eq!(canon("0.50"), "0.5");
        assert_eq!(canon("resnet18"), "resnet18");
        assert_eq!(canon("inf"), "inf");
    }
}
