//! Stage one: the manifest file, its includes and its `--set` overrides, merged into one spanned
//! [`Table`] without any interpretation beyond `study.include`.
//!
//! Includes are merged depth-first in the order listed, then the including file on top; `--set`
//! arguments go last. Each value keeps the origin it was written at.

use camino::{Utf8Path, Utf8PathBuf};
use toml::de::{DeTable, DeValue};

use super::error::{ErrorKind, Problem, did_you_mean};
use super::source::{Origin, SourceId, Sources, join_normalized};
use super::tree::{Converter, Entry, Item, Table, Value};

/// Reads a manifest and its includes. `problems` receives every syntax and include error; the
/// returned table is what could be read.
pub(crate) struct Loader<'a> {
    pub(crate) sources: &'a mut Sources,
    pub(crate) problems: &'a mut Vec<Problem>,
    /// Files being loaded, outermost first: (canonical path, path as shown).
    stack: Vec<(Utf8PathBuf, Utf8PathBuf)>,
    /// Whether any text failed to parse: later stages would only report noise.
    pub(crate) syntax_failed: bool,
}

impl<'a> Loader<'a> {
    pub(crate) fn new(sources: &'a mut Sources, problems: &'a mut Vec<Problem>) -> Self {
        Loader {
            sources,
            problems,
            stack: Vec::new(),
            syntax_failed: false,
        }
    }

    /// Loads one file's text (already read) with its includes, merged.
    pub(crate) fn load(&mut self, path: &Utf8Path, text: &str) -> Table {
        let id = self.sources.add(path.as_str(), text, Some(path));
        let (doc, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            self.syntax_failed = true;
            for e in errors {
                let span = e.span().unwrap_or(0..0);
                let problem = Problem::new(
                    ErrorKind::Syntax,
                    Some(Origin::new(id, span)),
                    "invalid TOML",
                );
                self.problems.push(problem.label(e.message().to_owned()));
            }
            return Table::default();
        }
        let own = Converter {
            source: id,
            offset: 0,
            problems: self.problems,
        }
        .table(doc.get_ref());
        let includes = self.include_list(&own);
        self.stack.push((canonical(path), path.to_path_buf()));
        let mut merged = Table::default();
        for (relative, origin) in includes {
            if let Some(table) = self.load_include(path, &relative, origin) {
                merged.merge(table);
            }
        }
        self.stack.pop();
        merged.merge(own);
        merged
    }

    fn load_include(&mut self, from: &Utf8Path, relative: &str, origin: Origin) -> Option<Table> {
        let path = join_normalized(from, relative);
        let key = canonical(&path);
        if let Some(pos) = self.stack.iter().position(|(k, _)| *k == key) {
            let chain: Vec<&str> = self.stack[pos..]
                .iter()
                .map(|(_, shown)| shown.as_str())
                .collect();
            let message = format!("include cycle: {} -> {path}", chain.join(" -> "));
            let problem = Problem::new(ErrorKind::IncludeCycle, Some(origin), message);
            self.problems
                .push(problem.label("this include closes the cycle"));
            return None;
        }
        match read_text(&path) {
            Ok(text) => Some(self.load(&path, &text)),
            Err(e) => {
                let message = format!("cannot read include `{path}`");
                let label = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file".to_owned(),
                    std::io::ErrorKind::InvalidInput => e.to_string(),
                    kind => kind.to_string(),
                };
                let problem = Problem::new(ErrorKind::IncludeMissing, Some(origin), message);
                self.problems.push(
                    problem
                        .label(label)
                        .help("include paths are relative to the file that names them"),
                );
                None
            }
        }
    }

    /// The `study.include` entries of one file, type-checked.
    fn include_list(&mut self, file: &Table) -> Vec<(String, Origin)> {
        let Some(Value::Table(study)) = file.get("study").map(|e| &e.item.value) else {
            return Vec::new();
        };
        let Some(entry) = study.get("include") else {
            return Vec::new();
        };
        let wrong = |item: &Item, what: &str| {
            Problem::new(
                ErrorKind::WrongType,
                Some(item.origin.clone()),
                "wrong type for `include`",
            )
            .label(format!("expected {what}, found {}", item.value.type_name()))
        };
        let Value::Array(items) = &entry.item.value else {
            self.problems.push(wrong(&entry.item, "an array of paths"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match &item.value {
                Value::String(s) => out.push((s.clone(), item.origin.clone())),
                _ => self.problems.push(wrong(item, "a path (a string)")),
            }
        }
        out
    }
}

/// The path used to recognise a file met twice: canonical if it exists, else as written.
fn canonical(path: &Utf8Path) -> Utf8PathBuf {
    path.canonicalize_utf8()
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Applies `--set path.to.key=value` arguments to the merged document, in order.
pub(crate) fn apply_overrides(
    doc: &mut Table,
    overrides: &[String],
    sources: &mut Sources,
    problems: &mut Vec<Problem>,
) {
    for arg in overrides {
        let id = sources.add("--set", arg, None);
        if let Err(problem) = apply_override(doc, arg, id, problems) {
            problems.push(problem);
        }
    }
}

fn apply_override(
    doc: &mut Table,
    arg: &str,
    id: SourceId,
    problems: &mut Vec<Problem>,
) -> Result<(), Problem> {
    let Some(eq) = arg.find('=') else {
        return Err(Problem::new(
            ErrorKind::BadOverride,
            Some(Origin::new(id, 0..arg.len())),
            "`--set` needs `path=value`",
        )
        .label("no `=` here")
        .help("for example `--set train.base.lr=3e-4`"));
    };
    let segments = split_path(&arg[..eq], id)?;
    let (last, parents) = segments
        .split_last()
        .expect("split_path returns at least one segment");
    let mut table = doc;
    let mut walked = String::new();
    for (name, origin) in parents {
        walked = if walked.is_empty() {
            name.clone()
        } else {
            format!("{walked}.{name}")
        };
        let candidates: Vec<String> = table.keys().map(str::to_owned).collect();
        match table.get_mut(name).map(|e| &mut e.item.value) {
            Some(Value::Table(inner)) => table = inner,
            Some(_) => {
                return Err(Problem::new(
                    ErrorKind::BadOverride,
                    Some(origin.clone()),
                    format!("`{walked}` is not a table"),
                )
                .label("not a table"));
            }
            None => {
                let help = did_you_mean(name, candidates.iter().map(String::as_str));
                return Err(Problem::new(
                    ErrorKind::BadOverride,
                    Some(origin.clone()),
                    format!("no table `{walked}`"),
                )
                .label("no such table")
                .maybe_help(help));
            }
        }
    }
    let item = override_value(arg, eq + 1, id, problems);
    table.insert(
        last.0.clone(),
        Entry {
            key: last.1.clone(),
            item,
        },
    );
    Ok(())
}

/// Splits `a.b.c` into trimmed segments with their spans in the argument.
fn split_path(path: &str, id: SourceId) -> Result<Vec<(String, Origin)>, Problem> {
    let mut out = Vec::new();
    let mut start = 0;
    for part in path.split('.') {
        let trimmed = part.trim();
        let lead = part.len() - part.trim_start().len();
        let span = start + lead..start + lead + trimmed.len();
        if trimmed.is_empty() {
            let origin = Origin::new(id, start..start + part.len());
            return Err(Problem::new(
                ErrorKind::BadOverride,
                Some(origin),
                "empty key in `--set` path",
            )
            .label("empty key"));
        }
        out.push((trimmed.to_owned(), Origin::new(id, span)));
        start += part.len() + 1;
    }
    Ok(out)
}

/// The value of a `--set`: a TOML value if it parses as one, else the text as a string.
fn override_value(arg: &str, at: usize, id: SourceId, problems: &mut Vec<Problem>) -> Item {
    let raw = &arg[at..];
    let text = raw.trim();
    let offset = at + (raw.len() - raw.trim_start().len());
    match DeValue::parse(text) {
        Ok(value) => Converter {
            source: id,
            offset,
            problems,
        }
        .item(&value),
        Err(_) => Item {
            value: Value::String(text.to_owned()),
            origin: Origin::new(id, offset..offset + text.len()),
        },
    }
}

/// The largest manifest or include tarun reads: far more than any study needs.
const MAX_FILE: u64 = 16 << 20;

/// Reads a manifest file: a regular file of at most 16 MiB, so that `include = ["/dev/zero"]`
/// (or a FIFO, or a huge file) is an error instead of a hang.
pub(crate) fn read_text(path: &Utf8Path) -> std::io::Result<String> {
    use std::io::Read;
    let invalid = |msg: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
    // Before opening: opening a FIFO waits for a writer.
    if !fs_err::metadata(path)?.is_file() {
        return Err(invalid("not a regular file"));
    }
    let file = fs_err::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_FILE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(invalid("larger than 16 MiB"));
    }
    Ok(text)
}
