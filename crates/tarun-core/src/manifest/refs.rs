//! References: `NAME` or `NAME[axis=value,...]`, matched against the expanded families.
//!
//! Families are indexed by name, and each family by axis value, so matching a reference costs
//! the size of its smallest candidate list rather than the size of the study.

use std::collections::HashMap;
use std::ops::Range;

use super::error::{ErrorKind, Problem, did_you_mean};
use super::expand::{Family, Member, quoted};
use super::matrix::canon;
use super::model::NodeKind;
use super::source::{Origin, Sources};
use super::tree::{Item, Value};

/// How many nodes a key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arity {
    One,
    Many,
}

/// A parsed reference; spans are byte ranges in the reference string.
#[derive(Debug)]
struct Reference<'s> {
    name: &'s str,
    /// `(axis, value, span of the pair)`.
    pairs: Vec<(&'s str, &'s str, Range<usize>)>,
}

fn parse(text: &str) -> Result<Reference<'_>, (String, Range<usize>)> {
    let Some(open) = text.find('[') else {
        if let Some(bad) = text.find([']', ',', '=']) {
            return Err((format!("unexpected `{}`", &text[bad..=bad]), bad..bad + 1));
        }
        return Ok(Reference {
            name: text,
            pairs: Vec::new(),
        });
    };
    let name = &text[..open];
    if !text.ends_with(']') {
        return Err(("expected `]` at the end".to_owned(), text.len()..text.len()));
    }
    let mut pairs = Vec::new();
    let mut at = open + 1;
    for part in text[open + 1..text.len() - 1].split(',') {
        let span = at..at + part.len();
        let Some((axis, value)) = part.split_once('=') else {
            return Err(("expected `axis=value`".to_owned(), span));
        };
        let (axis, value) = (axis.trim(), value.trim());
        if axis.is_empty() || value.is_empty() || value.contains(['[', ']', '=']) {
            return Err(("expected `axis=value`".to_owned(), span));
        }
        pairs.push((axis, value, span));
        at += part.len() + 1;
    }
    Ok(Reference { name, pairs })
}

/// One family, indexed by axis value.
#[derive(Debug)]
struct FamilyIndex {
    family: usize,
    /// Per axis: canonical value text -> positions in the family's member list.
    by_value: Vec<HashMap<String, Vec<usize>>>,
    /// Per member position: canonical value text of each axis.
    canon: Vec<Vec<String>>,
}

/// The families by name, for resolving references.
#[derive(Debug)]
pub(crate) struct Index<'m> {
    families: &'m [Family],
    members: &'m [Member],
    by_name: HashMap<&'m str, FamilyIndex>,
}

impl<'m> Index<'m> {
    /// Indexes the families; a name used twice (names are unique across kinds) is reported, and
    /// only its first family can be referenced.
    pub(crate) fn build(
        families: &'m [Family],
        members: &'m [Member],
        problems: &mut Vec<Problem>,
    ) -> Self {
        let mut by_name: HashMap<&str, FamilyIndex> = HashMap::new();
        for (i, family) in families.iter().enumerate() {
            if let Some(first) = by_name.get(family.name.as_str()) {
                problems.push(duplicate(&families[first.family], family));
                continue;
            }
            by_name.insert(&family.name, index_family(i, family, members));
        }
        Index {
            families,
            members,
            by_name,
        }
    }

    /// The id of a member.
    pub(crate) fn id(&self, member: usize) -> &str {
        &self.members[member].id
    }

    /// The members `item` (a reference string) names, checked against `arity` and `kinds`.
    /// `Ok(None)` means the family is broken and already reported.
    pub(crate) fn resolve(
        &self,
        item: &Item,
        arity: Arity,
        kinds: &[NodeKind],
        sources: &Sources,
    ) -> Result<Option<Vec<usize>>, Problem> {
        let Value::String(text) = &item.value else {
            let label = format!(
                "expected a reference (a string), found {}",
                item.value.type_name()
            );
            return Err(Problem::new(
                ErrorKind::WrongType,
                Some(item.origin.clone()),
                "wrong type for a reference",
            )
            .label(label));
        };
        let part = |range: Range<usize>| {
            if sources.is_verbatim(&item.origin, text) {
                item.origin.sub(range.start + 1..range.end + 1)
            } else {
                item.origin.clone()
            }
        };
        let reference = parse(text).map_err(|(label, range)| {
            Problem::new(
                ErrorKind::BadReference,
                Some(part(range)),
                format!("invalid reference `{text}`"),
            )
            .label(label)
            .help("a reference is `NAME` or `NAME[axis=value,...]`")
        })?;
        let Some(index) = self.by_name.get(reference.name) else {
            let help = did_you_mean(reference.name, self.by_name.keys().copied());
            return Err(Problem::new(
                ErrorKind::UnknownNode,
                Some(item.origin.clone()),
                format!("unknown node `{}`", reference.name),
            )
            .label("no node of this name")
            .maybe_help(help));
        };
        let family = &self.families[index.family];
        if family.broken {
            return Ok(None);
        }
        if !kinds.contains(&family.kind) {
            return Err(wrong_kind(item, family, kinds));
        }
        let matched = self.matching(index, &reference, &part)?;
        if arity == Arity::One && matched.len() > 1 {
            return Err(self.ambiguous(item, text, &matched));
        }
        Ok(Some(matched))
    }

    /// The members of a family whose axes match every `axis=value` of the reference.
    fn matching(
        &self,
        index: &FamilyIndex,
        r: &Reference<'_>,
        part: &dyn Fn(Range<usize>) -> Origin,
    ) -> Result<Vec<usize>, Problem> {
        let family = &self.families[index.family];
        let mut lists: Vec<(usize, String)> = Vec::new();
        for (axis, value, span) in &r.pairs {
            let Some(pos) = family.axes.iter().position(|a| a == axis) else {
                return Err(unknown_axis(family, axis, part(span.clone())));
            };
            if lists.iter().any(|(p, _)| *p == pos) {
                return Err(Problem::new(
                    ErrorKind::BadReference,
                    Some(part(span.clone())),
                    format!("axis `{axis}` is given twice"),
                )
                .label("repeated here"));
            }
            let canonical = canon(value);
            if !index.by_value[pos].contains_key(&canonical) {
                let values: Vec<&str> = self.axis_texts(family, pos);
                return Err(Problem::new(
                    ErrorKind::UnknownNode,
                    Some(part(span.clone())),
                    format!("no `{}` has {axis}={value}", family.name),
                )
                .label("no member with this value")
                .help(format!("`{axis}` is one of {}", quoted(&values))));
            }
            lists.push((pos, canonical));
        }
        let Some((first, rest)) = lists.split_first() else {
            return Ok(family.members.clone());
        };
        let positions = &index.by_value[first.0][&first.1];
        let matched: Vec<usize> = positions
            .iter()
            .filter(|&&m| rest.iter().all(|(pos, v)| index.canon[m][*pos] == *v))
            .map(|&m| family.members[m])
            .collect();
        if matched.is_empty() {
            let text: Vec<String> = r.pairs.iter().map(|(a, v, _)| format!("{a}={v}")).collect();
            let origin = part(0..0);
            return Err(Problem::new(
                ErrorKind::UnknownNode,
                Some(origin),
                format!("no `{}` has {}", family.name, text.join(", ")),
            )
            .label("no member matches all of these"));
        }
        Ok(matched)
    }

    fn axis_texts(&self, family: &Family, pos: usize) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        family
            .members
            .iter()
            .map(|&m| self.members[m].axes[pos].text.as_str())
            .filter(|text| seen.insert(*text))
            .collect()
    }

    fn ambiguous(&self, item: &Item, text: &str, matched: &[usize]) -> Problem {
        let ids: Vec<&str> = matched
            .iter()
            .take(4)
            .map(|&m| self.members[m].id.as_str())
            .collect();
        let more = if matched.len() > ids.len() {
            ", ..."
        } else {
            ""
        };
        Problem::new(
            ErrorKind::AmbiguousReference,
            Some(item.origin.clone()),
            format!("`{text}` matches {} nodes", matched.len()),
        )
        .label("this key takes exactly one node")
        .help(format!(
            "name one with all its axes; it matches {}{more}",
            quoted(&ids)
        ))
    }
}

fn index_family(family: usize, f: &Family, members: &[Member]) -> FamilyIndex {
    let mut by_value: Vec<HashMap<String, Vec<usize>>> = vec![HashMap::new(); f.axes.len()];
    let mut canon = Vec::with_capacity(f.members.len());
    for (pos, &m) in f.members.iter().enumerate() {
        let values: Vec<String> = members[m].axes.iter().map(|v| v.canon.clone()).collect();
        for (axis, value) in values.iter().enumerate() {
            by_value[axis].entry(value.clone()).or_default().push(pos);
        }
        canon.push(values);
    }
    FamilyIndex {
        family,
        by_value,
        canon,
    }
}

fn duplicate(first: &Family, second: &Family) -> Problem {
    let message = format!("duplicate node name `{}`", second.name);
    Problem::new(ErrorKind::DuplicateId, Some(second.header.clone()), message)
        .label(format!(
            "`{}` is also `[{}.{}]`",
            second.name, first.kind, first.name
        ))
        .help("node names are unique across kinds, since references name nodes without their kind")
        .note(first.header.clone(), "first defined here")
}

fn wrong_kind(item: &Item, family: &Family, kinds: &[NodeKind]) -> Problem {
    let expected: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    Problem::new(
        ErrorKind::WrongKind,
        Some(item.origin.clone()),
        format!(
            "`{}` is {} `{}` node",
            family.name,
            article(family.kind.as_str()),
            family.kind
        ),
    )
    .label(format!("expected a reference to {}", or_list(&expected)))
    .note(family.header.clone(), "defined here")
}

fn unknown_axis(family: &Family, axis: &str, origin: Origin) -> Problem {
    let help = if family.axes.is_empty() {
        format!(
            "`{}` has no `for-each`, so it is referenced by name alone",
            family.name
        )
    } else {
        did_you_mean(axis, family.axes.iter().map(String::as_str)).unwrap_or_else(|| {
            format!("the axes of `{}` are {}", family.name, quoted(&family.axes))
        })
    };
    Problem::new(
        ErrorKind::UnknownAxis,
        Some(origin),
        format!("`{}` has no axis `{axis}`", family.name),
    )
    .label("unknown axis")
    .help(help)
}

/// "an" before a vowel, else "a".
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
fn or_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let r = parse("base[arch=resnet18, class=8]").unwrap();
        assert_eq!(r.name, "base");
        let pairs: Vec<_> = r.pairs.iter().map(|(a, v, _)| (*a, *v)).collect();
        assert_eq!(pairs, [("arch", "resnet18"), ("class", "8")]);
        assert!(parse("base[arch]").is_err());
        assert!(parse("base[arch=x").is_err());
        assert_eq!(parse("base").unwrap().pairs.len(), 0);
    }
}
