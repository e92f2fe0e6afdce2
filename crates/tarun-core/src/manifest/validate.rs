//! Stage three: every table checked against its schema ([`super::kinds`]), defaults filled and
//! references resolved, turning spanned values into the JSON `params` the rest of tarun reads.

use serde_json::{Map, Value as Json};

use super::error::{ErrorKind, Problem, one_of, suggest};
use super::kinds::{Default, Key, Ty};
use super::params::{Metric, Objective, Optimizer, SGD_MOMENTUM, VECTOR};
use super::refs::{Arity, Index};
use super::source::{Origin, Sources};
use super::tree::{Item, Table, Value};

/// A resolved reference: the member it names and where it was written.
pub(crate) type Edge = (usize, Origin);

/// Checks tables and values, collecting problems and the references it resolves.
pub(crate) struct Checker<'a> {
    /// `None` while checking `[study]` and `[data]`, which hold no references.
    pub(crate) index: Option<&'a Index<'a>>,
    pub(crate) sources: &'a Sources,
    pub(crate) problems: &'a mut Vec<Problem>,
    pub(crate) study_seed: u64,
    /// References resolved since the last [`Checker::take_edges`], in order of appearance.
    edges: Vec<Edge>,
}

/// How a table is named in messages.
pub(crate) struct Subject<'s> {
    /// `` `train.base` ``, `` `[study]` ``.
    pub(crate) table: &'s str,
    /// `` `train` nodes ``.
    pub(crate) owner: &'s str,
    /// Where missing keys are reported.
    pub(crate) header: &'s Origin,
    /// Extra known keys, for suggestions only (`for-each`, `recipe`).
    pub(crate) also: &'s [&'static str],
}

impl<'a> Checker<'a> {
    pub(crate) fn new(
        sources: &'a Sources,
        problems: &'a mut Vec<Problem>,
        study_seed: u64,
    ) -> Self {
        Checker {
            index: None,
            sources,
            problems,
            study_seed,
            edges: Vec::new(),
        }
    }

    pub(crate) fn take_edges(&mut self) -> Vec<Edge> {
        std::mem::take(&mut self.edges)
    }

    /// Checks every key of `table` against `keys` and fills defaults.
    pub(crate) fn table(
        &mut self,
        table: &Table,
        keys: &[&'static Key],
        subject: &Subject<'_>,
    ) -> Map<String, Json> {
        let mut out = Map::new();
        for (name, entry) in table.iter() {
            let Some(key) = keys.iter().find(|k| k.name == name) else {
                let mut names: Vec<&str> = keys.iter().map(|k| k.name).collect();
                names.extend(subject.also);
                let p = Problem::new(
                    ErrorKind::UnknownKey,
                    Some(entry.key.clone()),
                    format!("unknown key `{name}`"),
                )
                .label(format!("not a key of {}", subject.owner))
                .maybe_help(suggest(name, &names));
                self.problems.push(p);
                continue;
            };
            match self.value(key, &entry.item) {
                Ok(json) => {
                    out.insert(name.to_owned(), json);
                }
                Err(p) => self.problems.push(p),
            }
        }
        for key in keys.iter().filter(|k| table.get(k.name).is_none()) {
            if let Some(json) = self.default(key, subject) {
                out.insert(key.name.to_owned(), json);
            }
        }
        out
    }

    fn default(&mut self, key: &Key, subject: &Subject<'_>) -> Option<Json> {
        Some(match key.default {
            Default::Absent | Default::WithSgd(_) => return None,
            Default::Required => {
                let p = Problem::new(
                    ErrorKind::MissingKey,
                    Some(subject.header.clone()),
                    format!("missing key `{}`", key.name),
                )
                .label(format!("{} needs `{}`", subject.table, key.name));
                self.problems.push(p);
                return None;
            }
            Default::Str(s) => s.into(),
            Default::Float(f) => f.into(),
            Default::Int(i) => i.into(),
            Default::Bool(b) => b.into(),
            Default::Strs(list) => list.iter().map(|&s| Json::from(s)).collect(),
            Default::StudySeed => self.study_seed.into(),
        })
    }

    /// Checks one value against its key's type.
    fn value(&mut self, key: &Key, item: &Item) -> Result<Json, Problem> {
        if matches!(item.value, Value::Broken) {
            return Ok(Json::Null);
        }
        match key.ty {
            Ty::Str => string(key, item).map(Json::from),
            Ty::Bool => match item.value {
                Value::Bool(b) => Ok(b.into()),
                _ => Err(wrong_type(key, item, "a boolean")),
            },
            Ty::Float | Ty::PositiveFloat | Ty::UnitFloat => float(key, item).map(Json::from),
            Ty::Int { min, max } => integer(key, item, min, max).map(Json::from),
            Ty::Choice(choices) => choice(key, item, choices).map(Json::from),
            Ty::Class => class(key, item).map(Json::from),
            Ty::Classes => list(key, item, |i| class(key, i).map(Json::from)),
            Ty::Strings => list(key, item, |i| string(key, i).map(Json::from)),
            Ty::Choices(choices) => list(key, item, |i| choice(key, i, choices).map(Json::from)),
            Ty::Ref(arity, kinds) => self.reference(item, arity, kinds),
            Ty::Refs => self.references(key, item),
            Ty::Vectors => self.vectors(key, item),
            Ty::Table(keys) => self.inline_table(key, item, keys),
            Ty::SlurmMem => slurm_value(key, item, "a memory size such as \"16G\"", valid_mem),
            Ty::SlurmTime => slurm_value(
                key,
                item,
                "a time limit such as \"2:00:00\" or \"1-12\"",
                valid_time,
            ),
        }
    }

    fn reference(
        &mut self,
        item: &Item,
        arity: Arity,
        kinds: &[super::model::NodeKind],
    ) -> Result<Json, Problem> {
        let index = self.index.expect("references are only checked in nodes");
        let Some(matched) = index.resolve(item, arity, kinds, self.sources)? else {
            return Ok(Json::Null);
        };
        let ids: Vec<Json> = matched.iter().map(|&m| Json::from(index.id(m))).collect();
        self.edges
            .extend(matched.into_iter().map(|m| (m, item.origin.clone())));
        Ok(match arity {
            Arity::One => ids.into_iter().next().unwrap_or(Json::Null),
            Arity::Many => Json::Array(ids),
        })
    }

    /// `report.inputs`: a list of references to any kind, each matching one or more nodes.
    fn references(&mut self, key: &Key, item: &Item) -> Result<Json, Problem> {
        let Value::Array(items) = &item.value else {
            return Err(wrong_type(key, item, "a list of references"));
        };
        let mut ids: Vec<Json> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for reference in items.iter().filter(|i| !matches!(i.value, Value::Broken)) {
            let matched = self.reference(reference, Arity::Many, &super::model::NodeKind::ALL)?;
            for id in matched.as_array().into_iter().flatten() {
                if seen.insert(id.as_str().unwrap_or_default().to_owned()) {
                    ids.push(id.clone());
                }
            }
        }
        Ok(Json::Array(ids))
    }

    /// An inline table checked against `keys` (a node's `slurm = { cpus = 4 }`).
    fn inline_table(
        &mut self,
        key: &Key,
        item: &Item,
        keys: &'static [Key],
    ) -> Result<Json, Problem> {
        let Value::Table(table) = &item.value else {
            return Err(wrong_type(key, item, "a table"));
        };
        let owner = format!("`{}`", key.name);
        let subject = Subject {
            table: &owner,
            owner: &owner,
            header: &item.origin,
            also: &[],
        };
        let keys: Vec<&'static Key> = keys.iter().collect();
        Ok(Json::Object(self.table(table, &keys, &subject)))
    }

    /// `ablate.vectors`: a non-empty list of `{ expert, alpha, rho }` or `{ expert, from-select }`.
    fn vectors(&mut self, key: &Key, item: &Item) -> Result<Json, Problem> {
        let Value::Array(items) = &item.value else {
            return Err(wrong_type(key, item, "a list of vectors"));
        };
        if items.is_empty() {
            return Err(Problem::new(
                ErrorKind::InvalidValue,
                Some(item.origin.clone()),
                "`vectors` is empty",
            )
            .label("an ablation needs at least one task vector"));
        }
        let keys: Vec<&'static Key> = VECTOR.iter().collect();
        let mut out = Vec::new();
        for element in items {
            let Value::Table(table) = &element.value else {
                return Err(wrong_type(
                    key,
                    element,
                    "a table `{ expert = ..., alpha = ..., rho = ... }`",
                ));
            };
            let subject = Subject {
                table: "a vector",
                owner: "a vector",
                header: &element.origin,
                also: &[],
            };
            let map = self.table(table, &keys, &subject);
            self.vector_rules(table, &element.origin);
            out.push(Json::Object(map));
        }
        Ok(Json::Array(out))
    }

    /// Either both `alpha` and `rho`, or `from-select`.
    fn vector_rules(&mut self, table: &Table, origin: &Origin) {
        let has = |k: &str| table.get(k).is_some();
        let fixed = has("alpha") || has("rho");
        if let (true, Some(e)) = (fixed, table.get("from-select")) {
            let p = Problem::new(
                ErrorKind::Conflict,
                Some(e.key.clone()),
                "`from-select` with `alpha` or `rho`",
            )
            .label("the selection chooses alpha and rho")
            .help("give either `alpha` and `rho`, or `from-select`");
            self.problems.push(p);
        } else if !has("from-select") && (!has("alpha") || !has("rho")) {
            let missing = if has("alpha") {
                "`rho`"
            } else if has("rho") {
                "`alpha`"
            } else {
                "`alpha` and `rho`, or `from-select`"
            };
            let p = Problem::new(
                ErrorKind::MissingKey,
                Some(origin.clone()),
                format!("vector without {missing}"),
            )
            .label(format!("needs {missing}"));
            self.problems.push(p);
        }
    }

    /// Rules between keys of a training node: `momentum` only with sgd (and defaulted then);
    /// not both `only` and `exclude`.
    pub(crate) fn training_rules(&mut self, table: &Table, params: &mut Map<String, Json>) {
        let sgd = params.get("optimizer").and_then(Json::as_str) == Some(Optimizer::Sgd.name());
        match table.get("momentum") {
            Some(e) if !sgd => {
                let p = Problem::new(
                    ErrorKind::Conflict,
                    Some(e.key.clone()),
                    "`momentum` without `optimizer = \"sgd\"`",
                )
                .label("only sgd has momentum")
                .help("remove it, or set `optimizer = \"sgd\"`");
                self.problems.push(p);
            }
            None if sgd => {
                params.insert("momentum".into(), SGD_MOMENTUM.into());
            }
            _ => {}
        }
        if let (Some(_), Some(e)) = (table.get("only"), table.get("exclude")) {
            let p = Problem::new(
                ErrorKind::Conflict,
                Some(e.key.clone()),
                "both `only` and `exclude`",
            )
            .label("give one of them")
            .help("`only` lists the classes to train on; `exclude` the ones to leave out");
            self.problems.push(p);
        }
        let objective = params.get("objective").and_then(Json::as_str);
        if let Some(o) = Objective::ALL.iter().find(|o| Some(o.name()) == objective) {
            self.objective_rules(table, *o);
        }
    }

    /// The literature's unlearning baselines split the data by `forget`, which nothing else
    /// reads; each baseline's own keys need that baseline.
    fn objective_rules(&mut self, table: &Table, objective: Objective) {
        let conflict = |key: &Origin, what: String, label: &str, help: &str| {
            Problem::new(ErrorKind::Conflict, Some(key.clone()), what)
                .label(label.to_owned())
                .help(help.to_owned())
        };
        if objective.forgets() {
            for key in ["only", "exclude"] {
                if let Some(e) = table.get(key) {
                    self.problems.push(conflict(
                        &e.key,
                        format!("`{key}` with `objective = \"{objective}\"`"),
                        "this objective splits the data by `forget`",
                        "remove it; `forget` names the class to forget",
                    ));
                }
            }
            if table.get("forget").is_none()
                && let Some(e) = table.get("objective")
            {
                let p = Problem::new(
                    ErrorKind::MissingKey,
                    Some(e.key.clone()),
                    format!("`objective = \"{objective}\"` without `forget`"),
                )
                .label("needs the class to forget")
                .help("add `forget = CLASS`");
                self.problems.push(p);
            }
        } else if let Some(e) = table.get("forget") {
            self.problems.push(conflict(
                &e.key,
                format!("`forget` with `objective = \"{objective}\"`"),
                "only the unlearning baselines read it",
                "remove it, or use `fine-tune`, `l1-sparse`, `scrub` or `salun`",
            ));
        }
        for other in Objective::ALL.iter().filter(|o| **o != objective) {
            for key in other.own_keys() {
                if objective.own_keys().contains(key) {
                    continue;
                }
                if let Some(e) = table.get(key) {
                    self.problems.push(conflict(
                        &e.key,
                        format!("`{key}` with `objective = \"{objective}\"`"),
                        &format!("only `objective = \"{other}\"` reads it"),
                        "remove it, or change the objective",
                    ));
                }
            }
        }
    }

    /// `kl`, `zrf` and `ain` compare with the retrained model, so they need `retrained`.
    pub(crate) fn evaluate_rules(&mut self, table: &Table) {
        if table.get("retrained").is_some() {
            return;
        }
        let Some(Value::Array(metrics)) = table.get("metrics").map(|e| &e.item.value) else {
            return;
        };
        for metric in metrics {
            let needs = |m: &str| {
                Metric::ALL
                    .iter()
                    .any(|k| k.name() == m && k.needs_retrained())
            };
            if let Value::String(m) = &metric.value
                && needs(m)
            {
                let p = Problem::new(
                    ErrorKind::MissingKey,
                    Some(metric.origin.clone()),
                    format!("metric `{m}` needs `retrained`"),
                )
                .label("compares with the retrained model")
                .help("add `retrained = \"NAME\"`, a reference to a `train` node");
                self.problems.push(p);
            }
        }
    }
}

fn wrong_type(key: &Key, item: &Item, expected: &str) -> Problem {
    let found = match &item.value {
        Value::Integer(i) => format!("{i}"),
        other => other.type_name().to_owned(),
    };
    Problem::new(
        ErrorKind::WrongType,
        Some(item.origin.clone()),
        format!("wrong type for `{}`", key.name),
    )
    .label(format!("expected {expected}, found {found}"))
}

fn invalid(key: &Key, item: &Item, label: String) -> Problem {
    Problem::new(
        ErrorKind::InvalidValue,
        Some(item.origin.clone()),
        format!("invalid `{}`", key.name),
    )
    .label(label)
}

/// A Slurm size or time: a string `valid` accepts, or a non-negative integer (megabytes,
/// minutes), kept as the string `sbatch` is given.
fn slurm_value(
    key: &Key,
    item: &Item,
    expected: &str,
    valid: fn(&str) -> bool,
) -> Result<Json, Problem> {
    match &item.value {
        Value::Integer(i) if *i >= 0 => Ok(Json::from(i.to_string())),
        Value::String(s) if valid(s) => Ok(Json::from(s.as_str())),
        Value::String(_) => Err(invalid(key, item, format!("expected {expected}"))),
        _ => Err(wrong_type(key, item, expected)),
    }
}

/// `sbatch --mem`: digits with an optional unit.
fn valid_mem(s: &str) -> bool {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    s.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `sbatch --time`: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, or `UNLIMITED`.
fn valid_time(s: &str) -> bool {
    let number = |p: &str| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit());
    if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("infinite") {
        return true;
    }
    let (days, rest) = match s.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    days.is_none_or(number) && parts.len() <= 3 && parts.iter().all(|p| number(p))
}

fn string<'i>(key: &Key, item: &'i Item) -> Result<&'i str, Problem> {
    match &item.value {
        Value::String(s) => Ok(s),
        _ => Err(wrong_type(key, item, "a string")),
    }
}

fn float(key: &Key, item: &Item) -> Result<f64, Problem> {
    let f = match item.value {
        Value::Integer(i) => i as f64,
        Value::Float(f) => f,
        _ => return Err(wrong_type(key, item, "a number")),
    };
    match key.ty {
        _ if !f.is_finite() => Err(invalid(key, item, "must be finite".into())),
        Ty::PositiveFloat if f <= 0.0 => Err(invalid(key, item, "must be greater than 0".into())),
        Ty::UnitFloat if !(0.0..=1.0).contains(&f) => {
            Err(invalid(key, item, "must be between 0 and 1".into()))
        }
        _ => Ok(f),
    }
}

fn integer(key: &Key, item: &Item, min: i64, max: i64) -> Result<i64, Problem> {
    let Value::Integer(i) = item.value else {
        let expected = if min >= 0 {
            "a non-negative integer"
        } else {
            "an integer"
        };
        return Err(wrong_type(key, item, expected));
    };
    if i < 0 && min >= 0 {
        return Err(wrong_type(
            key,
            item,
            if min > 0 {
                "a positive integer"
            } else {
                "a non-negative integer"
            },
        ));
    }
    if i < min {
        return Err(invalid(key, item, format!("must be at least {min}")));
    }
    if i > max {
        return Err(invalid(key, item, format!("must be at most {max}")));
    }
    Ok(i)
}

fn class(key: &Key, item: &Item) -> Result<i64, Problem> {
    match item.value {
        Value::Integer(i) if (0..=255).contains(&i) => Ok(i),
        Value::Integer(_) => Err(invalid(
            key,
            item,
            "a class index is between 0 and 255".into(),
        )),
        _ => Err(wrong_type(key, item, "a class index (an integer)")),
    }
}

fn choice<'i>(key: &Key, item: &'i Item, choices: &[&str]) -> Result<&'i str, Problem> {
    let s = string(key, item)?;
    if choices.contains(&s) {
        return Ok(s);
    }
    let help = match super::error::did_you_mean(s, choices.iter().copied()) {
        Some(close) => format!("{close}\n{}", one_of(choices).unwrap_or_default()),
        None => one_of(choices).unwrap_or_default(),
    };
    Err(Problem::new(
        ErrorKind::InvalidValue,
        Some(item.origin.clone()),
        format!("unknown `{}` value `{s}`", key.name),
    )
    .label(format!("not a valid `{}`", key.name))
    .help(help))
}

fn list(
    key: &Key,
    item: &Item,
    mut each: impl FnMut(&Item) -> Result<Json, Problem>,
) -> Result<Json, Problem> {
    let Value::Array(items) = &item.value else {
        return Err(wrong_type(key, item, "a list"));
    };
    let mut checked = |i: &Item| {
        if matches!(i.value, Value::Broken) {
            Ok(Json::Null)
        } else {
            each(i)
        }
    };
    items
        .iter()
        .map(&mut checked)
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Array)
}
