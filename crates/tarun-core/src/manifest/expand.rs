//! Stage two: node tables become families, and families become members, one per combination of
//! their `for-each` axes, with `${axis}` substituted and their recipe merged under their own keys.

use super::error::{ErrorKind, Problem, did_you_mean};
use super::matrix::{AxisValue, Matrix};
use super::model::NodeKind;
use super::source::{Origin, Sources};
use super::tree::{Entry, Item, Table, Value};

/// The most nodes a study may expand to. A matrix multiplied out past this is surely a mistake,
/// and expanding it would take minutes and gigabytes: it is refused before any member is built.
pub const MAX_NODES: usize = 100_000;

/// Characters a node name cannot contain, as they would make its ids ambiguous as references.
const RESERVED: &[char] = &['[', ']', ',', '=', '$', '.', ' ', '\t'];

/// One node table (`[train.base]`), before expansion.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) kind: NodeKind,
    pub(crate) name: String,
    /// The `[kind.name]` header.
    pub(crate) header: Origin,
    /// The `for-each` axes, in order.
    pub(crate) axes: Vec<String>,
    /// Indices into the member list.
    pub(crate) members: Vec<usize>,
    /// A family whose `for-each` was invalid has no members; references to it are not reported
    /// again.
    pub(crate) broken: bool,
}

/// One expanded node.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) family: usize,
    pub(crate) id: String,
    /// The member's axis values, in `for-each` order.
    pub(crate) axes: Vec<AxisValue>,
    /// Its keys: substituted, recipe merged, without `for-each` and `recipe`.
    pub(crate) table: Table,
}

/// What expansion needs to read and where it reports.
pub(crate) struct Expander<'a> {
    pub(crate) matrix: &'a Matrix,
    /// The `[recipe]` table, if any.
    pub(crate) recipes: Option<&'a Table>,
    pub(crate) sources: &'a Sources,
    pub(crate) problems: &'a mut Vec<Problem>,
    pub(crate) families: Vec<Family>,
    pub(crate) members: Vec<Member>,
}

impl<'a> Expander<'a> {
    /// Expands the node table `[kind.name]`.
    pub(crate) fn family(&mut self, kind: NodeKind, name: &str, entry: &Entry) {
        let header = entry.item.origin.clone();
        let Value::Table(table) = &entry.item.value else {
            let message = format!("`{kind}.{name}` must be a table");
            let label = format!("expected a table, found {}", entry.item.value.type_name());
            self.problems
                .push(Problem::new(ErrorKind::WrongType, Some(header), message).label(label));
            return;
        };
        if name.is_empty() || name.contains(RESERVED) {
            let p = Problem::new(
                ErrorKind::InvalidValue,
                Some(entry.key.clone()),
                format!("invalid node name `{name}`"),
            )
            .label("names cannot contain `[`, `]`, `,`, `=`, `$`, `.` or spaces");
            self.problems.push(p);
        }
        let mut table = table.clone();
        let for_each = table.remove("for-each");
        let axes = for_each.as_ref().map(|e| self.for_each(&e.item));
        let mut broken = matches!(axes, Some(None));
        let axes = axes.flatten().unwrap_or_default();
        let value_lists: Vec<&[AxisValue]> = axes
            .iter()
            .map(|a| self.matrix.get(a).map_or(&[][..], |a| &a.values[..]))
            .collect();
        if !broken {
            let origin = for_each.as_ref().map_or(&header, |e| &e.item.origin);
            broken = self.too_many(kind, name, &axes, &value_lists, origin);
        }
        let index = self.families.len();
        self.families.push(Family {
            kind,
            name: name.to_owned(),
            header,
            axes: axes.clone(),
            members: Vec::new(),
            broken,
        });
        if broken {
            return;
        }
        let recipe = table.remove("recipe");
        for combination in product(&value_lists) {
            let member = self.member(index, &table, recipe.as_ref(), combination);
            self.families[index].members.push(self.members.len());
            self.members.push(member);
        }
    }

    /// Reports a family that would take the study past [`MAX_NODES`]; true if it does.
    fn too_many(
        &mut self,
        kind: NodeKind,
        name: &str,
        axes: &[String],
        value_lists: &[&[AxisValue]],
        origin: &Origin,
    ) -> bool {
        let count = value_lists
            .iter()
            .try_fold(1usize, |n, l| n.checked_mul(l.len()));
        let room = MAX_NODES.saturating_sub(self.members.len());
        if count.is_some_and(|c| c <= room) {
            return false;
        }
        let count = count.map_or_else(|| "more than 2^64".to_owned(), |c| c.to_string());
        let product = axes
            .iter()
            .zip(value_lists)
            .map(|(a, l)| format!("`{a}` ({})", l.len()))
            .collect::<Vec<_>>()
            .join(" x ");
        let label = if axes.is_empty() {
            "one node too many".to_owned()
        } else {
            format!("{product} = {count} nodes")
        };
        let problem = Problem::new(
            ErrorKind::TooLarge,
            Some(origin.clone()),
            format!(
                "`{kind}.{name}` expands to {count} nodes, and the study has {} before it; a \
                 study may have at most {MAX_NODES}",
                self.members.len()
            ),
        )
        .label(label)
        .help("use fewer axes or fewer values per axis, or split the study");
        self.problems.push(problem);
        true
    }

    /// Reads `for-each`; `None` if it is invalid.
    fn for_each(&mut self, item: &Item) -> Option<Vec<String>> {
        let Value::Array(items) = &item.value else {
            self.problems
                .push(for_each_type(item, "a list of axis names"));
            return None;
        };
        let mut axes = Vec::new();
        let mut ok = true;
        for item in items {
            match self.for_each_axis(item, &axes) {
                Ok(Some(axis)) => axes.push(axis),
                Ok(None) => ok = false,
                Err(problem) => {
                    self.problems.push(problem);
                    ok = false;
                }
            }
        }
        ok.then_some(axes)
    }

    /// One name of `for-each`; `Ok(None)` for an axis that is invalid and already reported.
    fn for_each_axis(&self, item: &Item, seen: &[String]) -> Result<Option<String>, Problem> {
        let Value::String(s) = &item.value else {
            return Err(for_each_type(item, "an axis name"));
        };
        if self.matrix.invalid.contains(s) {
            return Ok(None);
        }
        if self.matrix.get(s).is_none() {
            let help =
                did_you_mean(s, self.matrix.names()).unwrap_or_else(|| axes_help(self.matrix));
            let message = format!("unknown axis `{s}`");
            return Err(
                Problem::new(ErrorKind::UnknownAxis, Some(item.origin.clone()), message)
                    .label("not an axis of `[matrix]`")
                    .help(help),
            );
        }
        if seen.contains(s) {
            let message = format!("axis `{s}` is listed twice");
            return Err(
                Problem::new(ErrorKind::InvalidValue, Some(item.origin.clone()), message)
                    .label("repeated here"),
            );
        }
        Ok(Some(s.clone()))
    }

    fn member(
        &mut self,
        family: usize,
        table: &Table,
        recipe: Option<&Entry>,
        values: Vec<AxisValue>,
    ) -> Member {
        let f = &self.families[family];
        let id = if f.axes.is_empty() {
            f.name.clone()
        } else {
            let parts: Vec<String> = f
                .axes
                .iter()
                .zip(&values)
                .map(|(a, v)| format!("{a}={}", v.text))
                .collect();
            format!("{}[{}]", f.name, parts.join(","))
        };
        let axes: Vec<(String, AxisValue)> =
            f.axes.iter().cloned().zip(values.iter().cloned()).collect();
        let mut table = table.clone();
        if let Some(recipe) = recipe {
            let mut recipe_item = recipe.item.clone();
            self.substitute(&mut recipe_item, &axes);
            if let Some(r) = self.recipe(&recipe_item) {
                table.fill_from(r);
            }
        }
        self.substitute_table(&mut table, &axes);
        Member {
            family,
            id,
            axes: values,
            table,
        }
    }

    /// Looks up `recipe = "a.b"` in `[recipe]`.
    fn recipe(&mut self, item: &Item) -> Option<&'a Table> {
        let Value::String(path) = &item.value else {
            let label = format!("expected a recipe name, found {}", item.value.type_name());
            self.problems.push(
                Problem::new(
                    ErrorKind::WrongType,
                    Some(item.origin.clone()),
                    "wrong type for `recipe`",
                )
                .label(label),
            );
            return None;
        };
        let mut table = self.recipes;
        for part in path.split('.') {
            table = table
                .and_then(|t| t.get(part))
                .and_then(|e| match &e.item.value {
                    Value::Table(t) => Some(t),
                    _ => None,
                });
        }
        if table.is_none() {
            let names = self.recipes.map(recipe_paths).unwrap_or_default();
            let help = did_you_mean(path, names.iter().map(String::as_str)).unwrap_or_else(|| {
                format!("recipes are the `[recipe.*]` tables: {}", quoted(&names))
            });
            let p = Problem::new(
                ErrorKind::UnknownRecipe,
                Some(item.origin.clone()),
                format!("unknown recipe `{path}`"),
            )
            .label("no `[recipe.*]` table of this name")
            .help(help);
            self.problems.push(p);
            return None;
        }
        let table = table?;
        for key in ["recipe", "for-each"] {
            if let Some(e) = table.get(key) {
                let p = Problem::new(
                    ErrorKind::UnknownKey,
                    Some(e.key.clone()),
                    format!("`{key}` cannot be set in a recipe"),
                )
                .label("not allowed in a recipe");
                self.problems.push(p);
            }
        }
        Some(table)
    }

    fn substitute_table(&mut self, table: &mut Table, axes: &[(String, AxisValue)]) {
        let keys: Vec<String> = table.keys().map(str::to_owned).collect();
        for key in keys {
            if matches!(key.as_str(), "recipe" | "for-each") {
                // Merged from a recipe and already reported.
                table.remove(&key);
                continue;
            }
            if let Some(entry) = table.get_mut(&key) {
                self.substitute(&mut entry.item, axes);
            }
        }
    }

    /// Replaces `${axis}` in every string under `item`.
    fn substitute(&mut self, item: &mut Item, axes: &[(String, AxisValue)]) {
        match &mut item.value {
            Value::String(s) if s.contains("${") => {
                let whole = s
                    .strip_prefix("${")
                    .and_then(|r| r.strip_suffix('}'))
                    .filter(|n| !n.contains('}'));
                if let Some((_, v)) = whole.and_then(|name| axes.iter().find(|(a, _)| a == name)) {
                    item.value = v.value.clone();
                    return;
                }
                item.value = match self.interpolate(s, &item.origin, axes) {
                    Some(text) => Value::String(text),
                    None => Value::Broken,
                };
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.substitute(i, axes)),
            Value::Table(t) => self.substitute_table(t, axes),
            _ => {}
        }
    }

    /// `${axis}` inside a longer string: the value's text. `None` after reporting a problem.
    fn interpolate(
        &mut self,
        s: &str,
        origin: &Origin,
        axes: &[(String, AxisValue)],
    ) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        let mut ok = true;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let at = s.len() - rest.len() + start;
            let Some(len) = rest[start..].find('}') else {
                let p = Problem::new(
                    ErrorKind::InvalidValue,
                    Some(self.part(origin, s, at..s.len())),
                    "unclosed `${`",
                )
                .label("expected `}` after the axis name");
                self.problems.push(p);
                return None;
            };
            let name = &rest[start + 2..start + len];
            match axes.iter().find(|(a, _)| a == name) {
                Some((_, v)) => out.push_str(&v.text),
                None => {
                    let origin = self.part(origin, s, at..at + len + 1);
                    let problem = self.unknown_axis(name, origin, axes);
                    self.problems.push(problem);
                    ok = false;
                }
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        ok.then_some(out)
    }

    fn unknown_axis(&self, name: &str, origin: Origin, axes: &[(String, AxisValue)]) -> Problem {
        let help = if self.matrix.get(name).is_some() {
            format!("`{name}` is an axis of `[matrix]` but not of this node: add it to `for-each`")
        } else if axes.is_empty() {
            "this node has no `for-each`, so it has no axes to substitute".to_owned()
        } else {
            let names: Vec<&str> = axes.iter().map(|(a, _)| a.as_str()).collect();
            did_you_mean(name, names.iter().copied())
                .unwrap_or_else(|| format!("this node's axes are {}", quoted(&names)))
        };
        Problem::new(
            ErrorKind::UnknownAxis,
            Some(origin),
            format!("unknown axis `{name}`"),
        )
        .label("not in this node's `for-each`")
        .help(help)
    }

    /// The part `range` of string `s` written at `origin`, if it is written verbatim.
    fn part(&self, origin: &Origin, s: &str, range: std::ops::Range<usize>) -> Origin {
        if self.sources.is_verbatim(origin, s) {
            origin.sub(range.start + 1..range.end + 1)
        } else {
            origin.clone()
        }
    }
}

fn for_each_type(item: &Item, expected: &str) -> Problem {
    let label = format!("expected {expected}, found {}", item.value.type_name());
    Problem::new(
        ErrorKind::WrongType,
        Some(item.origin.clone()),
        "wrong type for `for-each`",
    )
    .label(label)
}

/// Every combination of one value per list, first list outermost.
fn product(lists: &[&[AxisValue]]) -> Vec<Vec<AxisValue>> {
    let mut out: Vec<Vec<AxisValue>> = vec![Vec::new()];
    for list in lists {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                list.iter()
                    .map(move |v| [prefix.clone(), vec![v.clone()]].concat())
            })
            .collect();
    }
    out
}

/// Every table path under `[recipe]` (`base`, `base.resnet18`, ...).
fn recipe_paths(recipes: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for (name, entry) in recipes.iter() {
        if let Value::Table(t) = &entry.item.value {
            out.push(name.to_owned());
            out.extend(recipe_paths(t).into_iter().map(|p| format!("{name}.{p}")));
        }
    }
    out
}

fn axes_help(matrix: &Matrix) -> String {
    let names = matrix.names();
    if names.is_empty() {
        "`[matrix]` declares no axes".to_owned()
    } else {
        format!("the axes are {}", quoted(&names))
    }
}

/// `` `a`, `b`, `c` ``.
pub(crate) fn quoted<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}
