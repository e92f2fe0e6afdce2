//! The manifest as an owned TOML tree in which every key and value keeps its [`Origin`].
//!
//! `toml::de::DeTable` already carries spans, but borrows its text and knows nothing of files.
//! This tree owns its data, so trees from several files and `--set` arguments can be merged while
//! each value remembers where it was written.

use indexmap::IndexMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ErrorKind, Problem};
use super::source::{Origin, SourceId};

/// A value and where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) value: Value,
    pub(crate) origin: Origin,
}

/// A TOML value whose children are [`Item`]s.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Item>),
    Table(Table),
    /// A value already reported as wrong (a failed `${axis}` substitution): later stages accept
    /// it silently rather than report the same mistake again.
    Broken,
}

/// A key of a table: where the key itself was written, and its value.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) key: Origin,
    pub(crate) item: Item,
}

/// A table in the order its keys were written.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    entries: IndexMap<String, Entry>,
}

impl Table {
    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: String, entry: Entry) {
        self.entries.insert(key, entry);
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        self.entries.shift_remove(key)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, e)| (k.as_str(), e))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Merges `top` over `self`: tables merge key by key, anything else in `top` replaces what is
    /// in `self`. The merged table keeps the first-seen key order.
    pub(crate) fn merge(&mut self, top: Table) {
        for (key, top_entry) in top.entries {
            match self.entries.get_mut(&key) {
                Some(Entry {
                    key: key_origin,
                    item:
                        Item {
                            value: Value::Table(base),
                            origin,
                        },
                }) if matches!(top_entry.item.value, Value::Table(_)) => {
                    let Value::Table(top_table) = top_entry.item.value else {
                        unreachable!()
                    };
                    base.merge(top_table);
                    // The latest definition is the one errors about the table point at.
                    *origin = top_entry.item.origin;
                    *key_origin = top_entry.key;
                }
                _ => {
                    self.entries.insert(key, top_entry);
                }
            }
        }
    }

    /// Adds the keys of `under` that `self` lacks (a recipe under a node's own keys).
    pub(crate) fn fill_from(&mut self, under: &Table) {
        for (key, entry) in &under.entries {
            if !self.entries.contains_key(key) {
                self.entries.insert(key.clone(), entry.clone());
            }
        }
    }
}

impl Value {
    /// The TOML type name, for "expected ..., found ..." messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
            Value::Broken => "an invalid value",
        }
    }

    /// The text of a scalar as it appears in ids and `${axis}` substitution: strings verbatim,
    /// floats in their shortest exact form (integral floats without a fractional part).
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match self {
            Value::String(s) => Some(s.clone()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The value as JSON (for `params`, `data` and axis values). Non-finite floats, which
    /// validation rejects before this is called, become `null`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) | Value::Datetime(s) => serde_json::Value::String(s.clone()),
            Value::Integer(i) => (*i).into(),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
            Value::Bool(b) => (*b).into(),
            Value::Broken => serde_json::Value::Null,
            Value::Array(items) => items.iter().map(|i| i.value.to_json()).collect(),
            Value::Table(t) => serde_json::Value::Object(
                t.iter()
                    .map(|(k, e)| (k.to_owned(), e.item.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Converts a parsed TOML document (or `--set` value) into an owned tree. `offset` shifts spans,
/// for values parsed out of the middle of a `--set` argument.
pub(crate) struct Converter<'p> {
    pub(crate) source: SourceId,
    pub(crate) offset: usize,
    pub(crate) problems: &'p mut Vec<Problem>,
}

impl Converter<'_> {
    fn origin(&self, span: std::ops::Range<usize>) -> Origin {
        Origin::new(
            self.source,
            span.start + self.offset..span.end + self.offset,
        )
    }

    pub(crate) fn table(&mut self, table: &DeTable<'_>) -> Table {
        let mut out = Table::default();
        for (key, value) in table.iter() {
            let entry = Entry {
                key: self.origin(key.span()),
                item: self.item(value),
            };
            out.insert(key.get_ref().to_string(), entry);
        }
        out
    }

    pub(crate) fn item(&mut self, value: &Spanned<DeValue<'_>>) -> Item {
        let origin = self.origin(value.span());
        let value = match value.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(i) => Value::Integer(i),
                Err(_) => {
                    self.problems.push(
                        Problem::new(
                            ErrorKind::WrongType,
                            Some(origin.clone()),
                            "integer out of range",
                        )
                        .label("does not fit in 64 bits"),
                    );
                    Value::Integer(0)
                }
            },
            DeValue::Float(f) => Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(d) => Value::Datetime(d.to_string()),
            DeValue::Array(a) => Value::Array(a.iter().map(|v| self.item(v)).collect()),
            DeValue::Table(t) => Value::Table(self.table(t)),
        };
        Item { value, origin }
    }
}
