//! The whole pipeline: files and overrides ([`super::raw`]), top-level tables, expansion
//! ([`super::expand`]), validation ([`super::validate`]) and cycles, ending in a [`Study`] or
//! every error found.

use std::collections::HashSet;

use camino::Utf8Path;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Map, Value as Json};

use super::error::{ErrorKind, ManifestErrors, Problem, suggest};
use super::expand::{Expander, Family, Member};
use super::kinds::{self, Key};
use super::matrix::{self, Matrix};
use super::model::{DeviceRequest, GpuPrecision, NodeKind, NodeSpec, Protocol, Study};
use super::raw::{Loader, apply_overrides};
use super::refs::Index;
use super::scores;
use super::source::{Origin, Sources};
use super::tree::{Entry, Table, Value};
use super::validate::{Checker, Edge, Subject};

const TABLES: &[&str] = &[
    "study", "data", "matrix", "recipe", "train", "expert", "ablate", "evaluate", "select",
    "report", "slurm", "cache",
];

/// Parses `text` (the manifest `path`), follows its includes, applies `overrides` and validates.
pub(crate) fn build(
    path: &Utf8Path,
    text: &str,
    overrides: &[String],
) -> Result<Study, ManifestErrors> {
    let mut sources = Sources::default();
    let mut problems = Vec::new();
    let mut loader = Loader::new(&mut sources, &mut problems);
    let mut doc = loader.load(path, text);
    let syntax_failed = loader.syntax_failed;
    // A file that cannot be read or parsed leaves its recipes and keys out, so what follows
    // would report each of them again as missing: the include is the one error to fix.
    let include_failed = problems.iter().any(|p| {
        matches!(
            p.kind(),
            ErrorKind::IncludeMissing | ErrorKind::IncludeCycle
        )
    });
    let study = if syntax_failed || include_failed {
        None
    } else {
        apply_overrides(&mut doc, overrides, &mut sources, &mut problems);
        interpret(&doc, &sources, &mut problems)
    };
    match study {
        Some(mut study) if problems.is_empty() => {
            study.path = path.to_path_buf();
            study.overrides = overrides.to_vec();
            study.files = sources.files();
            study.source_digest = sources.digest();
            Ok(study)
        }
        _ => Err(into_errors(path, problems, &sources)),
    }
}

/// Sorts problems by place, drops repeats (a mistake in a family template is found once per
/// member) and ties them to their texts.
fn into_errors(path: &Utf8Path, mut problems: Vec<Problem>, sources: &Sources) -> ManifestErrors {
    problems.sort_by_key(|p| p.origin().map(|o| (o.source, o.span.start)));
    let mut seen = HashSet::new();
    problems.retain(|p| seen.insert((p.kind(), p.origin().cloned())));
    ManifestErrors::new(
        path.to_path_buf(),
        problems
            .into_iter()
            .map(|p| p.into_error(sources))
            .collect(),
    )
}

/// Everything after loading. Returns a study (without path, overrides and files) even when
/// problems were found; the caller discards it then.
fn interpret(doc: &Table, sources: &Sources, problems: &mut Vec<Problem>) -> Option<Study> {
    check_tables(doc, problems);
    let root = Origin::new(sources.first(), 0..0);
    let mut checker = Checker::new(sources, problems, 0);
    let study = top_table(
        &mut checker,
        doc.get("study"),
        kinds::STUDY,
        "`[study]`",
        &root,
    );
    let data = top_table(
        &mut checker,
        doc.get("data"),
        kinds::DATA,
        "`[data]`",
        &root,
    )
    .unwrap_or_default();
    let slurm = top_table(
        &mut checker,
        doc.get("slurm"),
        kinds::SLURM,
        "`[slurm]`",
        &root,
    )
    .unwrap_or_default();
    let cache = top_table(
        &mut checker,
        doc.get("cache"),
        kinds::CACHE,
        "`[cache]`",
        &root,
    )
    .unwrap_or_default();
    let seed = study
        .as_ref()
        .and_then(|s| s.get("seed"))
        .and_then(Json::as_u64)
        .unwrap_or(0);
    let matrix = matrix::parse(doc.get("matrix"), problems);
    let recipes = match doc.get("recipe").map(|e| &e.item.value) {
        Some(Value::Table(t)) => Some(t),
        _ => None,
    };
    let mut expander = Expander {
        matrix: &matrix,
        recipes,
        sources,
        problems,
        families: Vec::new(),
        members: Vec::new(),
    };
    for (kind, name, entry) in node_tables(doc) {
        expander.family(kind, name, entry);
    }
    let (families, members) = (expander.families, expander.members);
    let index = Index::build(&families, &members, problems);
    let mut checker = Checker::new(sources, problems, seed);
    checker.index = Some(&index);
    let mut nodes = Vec::with_capacity(members.len());
    let mut edges: Vec<Vec<Edge>> = Vec::with_capacity(members.len());
    let mut references = 0;
    for m in &members {
        let (spec, out) = node(&mut checker, &families[m.family], m);
        references += out.len();
        nodes.push(spec);
        edges.push(out);
        if references > MAX_REFERENCES {
            checker
                .problems
                .push(too_many_references(&families[m.family]));
            return None;
        }
    }
    report_cycles(&members, &edges, problems);
    // Validated above as one of the enum's names, and defaulted.
    let protocol: Protocol = study
        .as_ref()
        .and_then(|s| s.get("protocol"))
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    scores::check(&members, &nodes, protocol, problems);
    let study = study?;
    Some(Study {
        path: Default::default(),
        name: study
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        seed,
        protocol,
        data,
        slurm,
        cache,
        matrix: matrix_json(&matrix),
        nodes,
        overrides: Vec::new(),
        files: Vec::new(),
        source_digest: String::new(),
    })
}

fn matrix_json(matrix: &Matrix) -> Vec<(String, Vec<Json>)> {
    matrix.to_json()
}

/// Unknown top-level tables, and known ones that are not tables.
fn check_tables(doc: &Table, problems: &mut Vec<Problem>) {
    for (name, entry) in doc.iter() {
        if !TABLES.contains(&name) {
            let p = Problem::new(
                ErrorKind::UnknownTable,
                Some(entry.key.clone()),
                format!("unknown table `{name}`"),
            )
            .label("not a table of a manifest")
            .maybe_help(suggest(name, TABLES));
            problems.push(p);
        } else if !matches!(entry.item.value, Value::Table(_)) {
            let label = format!("expected a table, found {}", entry.item.value.type_name());
            problems.push(
                Problem::new(
                    ErrorKind::WrongType,
                    Some(entry.item.origin.clone()),
                    format!("`{name}` must be a table"),
                )
                .label(label),
            );
        }
    }
}

/// `[study]` or `[data]`, checked. `None` if absent (an error for `[study]`) or not a table.
fn top_table(
    checker: &mut Checker<'_>,
    entry: Option<&Entry>,
    keys: &'static [Key],
    name: &str,
    root: &Origin,
) -> Option<Map<String, Json>> {
    let Some(entry) = entry else {
        if name == "`[study]`" {
            let p = Problem::new(
                ErrorKind::MissingKey,
                Some(root.clone()),
                "missing table `[study]`",
            )
            .label("a manifest needs a `[study]` table")
            .help("add `[study]` with at least `name = \"...\"`");
            checker.problems.push(p);
        }
        return None;
    };
    let Value::Table(table) = &entry.item.value else {
        return None;
    };
    let keys: Vec<&'static Key> = keys.iter().collect();
    let subject = Subject {
        table: name,
        owner: name,
        header: &entry.item.origin,
        also: &[],
    };
    Some(checker.table(table, &keys, &subject))
}

/// The node tables, `(kind, name, entry)`, in the order their headers are written (the
/// manifest's own nodes first, then those of its includes, in the order they were read).
fn node_tables(doc: &Table) -> Vec<(NodeKind, &str, &Entry)> {
    let mut out = Vec::new();
    for kind in NodeKind::ALL {
        let Some(Value::Table(table)) = doc.get(kind.as_str()).map(|e| &e.item.value) else {
            continue;
        };
        out.extend(table.iter().map(|(name, entry)| (kind, name, entry)));
    }
    out.sort_by_key(|(_, _, e)| (e.item.origin.source, e.item.origin.span.start));
    out
}

/// The most references (edges) a study may have, counting a reference once per node it matches.
/// A family whose every member references a whole other family grows with the square of the
/// matrix; this bounds the time and memory that takes.
pub const MAX_REFERENCES: usize = 1_000_000;

fn too_many_references(family: &Family) -> Problem {
    Problem::new(
        ErrorKind::TooLarge,
        Some(family.header.clone()),
        format!(
            "the study has more than {MAX_REFERENCES} references between nodes by `{}.{}`",
            family.kind, family.name
        ),
    )
    .label("its references take the study past the limit")
    .help("reference fewer nodes per node: name axis values (`score[arch=${arch}]`), not families")
}

/// Validates one member into its [`NodeSpec`]; also returns the references it resolved.
fn node(checker: &mut Checker<'_>, family: &Family, member: &Member) -> (NodeSpec, Vec<Edge>) {
    let keys: Vec<&'static Key> = kinds::node_keys(family.kind).collect();
    let table = format!("`{}.{}`", family.kind, family.name);
    let owner = format!("`{}` nodes", family.kind);
    let subject = Subject {
        table: &table,
        owner: &owner,
        header: &family.header,
        also: &["for-each", "recipe"],
    };
    let mut params = checker.table(&member.table, &keys, &subject);
    match family.kind {
        NodeKind::Train | NodeKind::Expert => checker.training_rules(&member.table, &mut params),
        NodeKind::Evaluate => checker.evaluate_rules(&member.table),
        _ => {}
    }
    let retries = params
        .remove("retries")
        .and_then(|r| r.as_u64())
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(0);
    let slurm = match params.remove("slurm") {
        Some(Json::Object(map)) => map,
        _ => Map::new(),
    };
    // Validated above as one of the enum's names.
    let device: DeviceRequest = params
        .remove("device")
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default();
    let precision: GpuPrecision = params
        .remove("precision")
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default();
    let edges = checker.take_edges();
    let index = checker.index.expect("set before nodes are checked");
    // In reference order, without repeats; a set, as a report may take a hundred thousand.
    let mut seen = HashSet::new();
    let inputs: Vec<String> = edges
        .iter()
        .map(|(target, _)| index.id(*target))
        .filter(|id| seen.insert(*id))
        .map(str::to_owned)
        .collect();
    let spec = NodeSpec {
        id: member.id.clone(),
        kind: family.kind,
        name: family.name.clone(),
        axes: family
            .axes
            .iter()
            .cloned()
            .zip(member.axes.iter().map(|v| v.value.to_json()))
            .collect(),
        params,
        inputs,
        retries,
        slurm,
        device,
        precision,
        location: checker.sources.location(&family.header),
    };
    (spec, edges)
}

/// Reports every strongly connected component with more than one node, and every self-reference,
/// as a path `a -> b -> a` pointing at the reference that closes it.
fn report_cycles(members: &[Member], edges: &[Vec<Edge>], problems: &mut Vec<Problem>) {
    let mut graph: DiGraph<usize, Origin> = DiGraph::with_capacity(members.len(), members.len());
    let nodes: Vec<NodeIndex> = (0..members.len()).map(|i| graph.add_node(i)).collect();
    for (from, out) in edges.iter().enumerate() {
        for (to, origin) in out {
            graph.add_edge(nodes[from], nodes[*to], origin.clone());
        }
    }
    for scc in petgraph::algo::tarjan_scc(&graph) {
        let start = *scc.iter().min().expect("components are not empty");
        if scc.len() == 1 && graph.find_edge(start, start).is_none() {
            continue;
        }
        let path = cycle_path(&graph, start, &scc);
        let closing = graph
            .find_edge(*path.last().expect("a path has a node"), start)
            .expect("the path closes");
        let mut names: Vec<&str> = path
            .iter()
            .map(|n| members[graph[*n]].id.as_str())
            .collect();
        names.push(&members[graph[start]].id);
        let p = Problem::new(
            ErrorKind::Cycle,
            Some(graph[closing].clone()),
            format!("cycle: {}", names.join(" -> ")),
        )
        .label("this reference closes the cycle")
        .help("the graph of references must be acyclic");
        problems.push(p);
    }
}

/// A shortest path from `start` through `scc` whose last node has an edge back to `start`.
fn cycle_path(
    graph: &DiGraph<usize, Origin>,
    start: NodeIndex,
    scc: &[NodeIndex],
) -> Vec<NodeIndex> {
    let in_scc: HashSet<NodeIndex> = scc.iter().copied().collect();
    let mut parent = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        if graph.find_edge(n, start).is_some() {
            let mut path = vec![n];
            while let Some(&p) = parent.get(path.last().expect("not empty")) {
                path.push(p);
            }
            path.reverse();
            return path;
        }
        for next in graph.neighbors(n) {
            if in_scc.contains(&next) && next != start && !parent.contains_key(&next) {
                parent.insert(next, n);
                queue.push_back(next);
            }
        }
    }
    vec![start]
}
