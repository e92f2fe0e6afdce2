//! `tarun compare A B`: two studies side by side, from the store alone (nothing is run). A side is
//! a manifest, a manifest at a git revision (`PATH@REV`, read with `git show` into a temporary
//! folder: no checkout), or either with `--set` overrides; B may be A with `--set-b`. A side may
//! also be a recorded run (its id, or a unique prefix): its journal's keyed entries are its nodes,
//! with the records of those keys.
//!
//! Nodes are matched by id. A node is `same` when both sides give it the same key, `changed` when
//! the keys differ, with the causes `status` gives (`plan::material_causes` over the two key
//! materials: the parameters that differ, the inputs whose outputs or keys changed, data, seed,
//! protocol, algorithm), and `only-a` / `only-b` when one side lacks it. A key that depends on an
//! input not computed yet is the planned key (`plan::planned_keys`), so two sides compare before
//! either has run. For the nodes of both sides, every metric both sides' current records have is
//! listed with the two values and the delta B - A, grouped by family; a side whose current key
//! has no record is `not computed`. Printing is in `print`, the `--html` page in `html`. Output
//! and the JSON schema: docs/compare.md.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use tarun_core::digest::{DataDigest, NodeKey};
use tarun_core::graph::Graph;
use tarun_core::manifest::NodeKind;
use tarun_core::plan::{self, State};
use tarun_core::store::{NodeRecord, Outcome, RunJournal, Store};

use super::results::metrics_of;
use super::runs::find_run;
use super::{Result, shell_word};
use crate::cli::{CompareArgs, CompareFormat};
use crate::errors::ExpectedError;
use crate::kinds;

mod html;
mod print;

const STATES: [State; 4] = [State::Fresh, State::Stale, State::Missing, State::Blocked];

pub fn compare(args: CompareArgs) -> Result<ExitCode> {
    if let Some(x) = args.threshold
        && !(x.is_finite() && x >= 0.0)
    {
        return Err(ExpectedError::Usage(format!(
            "--threshold {x}: expected a number at least 0 (rows with |B - A| at most it are hidden)"
        )));
    }
    let store = Store::open_read_only(args.store.store.clone())?;
    let mut journals = None;
    let a = Given::parse(
        &args.a,
        args.set_a.clone(),
        &store,
        &mut journals,
        "A",
        "--set-a",
    )?;
    let b = match &args.b {
        Some(b) => Given::parse(b, args.set_b.clone(), &store, &mut journals, "B", "--set-b")?,
        None if args.set_b.is_empty() => {
            return Err(ExpectedError::Usage(
                "compare needs two sides: `tarun compare A B`, or `tarun compare A --set-b \
                 PATH=VALUE` for A against itself with an override"
                    .into(),
            ));
        }
        None => match &a {
            Given::Manifest(spec) => Given::Manifest(Spec {
                overrides: args.set_b.clone(),
                ..spec.clone()
            }),
            Given::Run(j) => {
                return Err(ExpectedError::Usage(format!(
                    "`{}` is run {}: B can be left out (for A with `--set-b`) only when A is a \
                     manifest; give B, e.g. another run id or `{}`",
                    args.a, j.run_id, j.manifest
                )));
            }
        },
    };
    let mut digests = DataDigests::new();
    let a = a.load(&store, &mut digests)?;
    let b = b.load(&store, &mut digests)?;
    let nodes = compare_nodes(&a, &b, &store)?;
    let counts = Counts::of(&nodes);
    let listed: Vec<NodeCmp> = nodes
        .into_iter()
        .map(|mut n| {
            if let Some(x) = args.threshold {
                n.metrics.retain(|m| m.shown_at(x));
            }
            n
        })
        .filter(|n| !(args.only_changed && n.status == Status::Same && n.metrics_equal()))
        .collect();
    if let Some(path) = &args.html {
        html::write(path, &a, &b, &counts, &listed, &store)?;
    }
    let format = if args.json {
        CompareFormat::Json
    } else {
        args.format
    };
    match format {
        CompareFormat::Table => print::print_table(&a, &b, &counts, &listed)?,
        CompareFormat::Json => print::print_json(&a, &b, &counts, &listed, &args)?,
        CompareFormat::Csv => print::print_csv(&listed)?,
        CompareFormat::Md => print::print_md(&listed)?,
    }
    if let Some(path) = &args.html {
        // On stderr: stdout stays the chosen format alone (JSON, CSV) for pipes.
        eprintln!("wrote {path}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What a side argument names: a manifest (a file, or `PATH@REV`) or a recorded run.
enum Given {
    Manifest(Spec),
    Run(RunJournal),
}

impl Given {
    /// An existing file is a manifest; otherwise a run id (or a unique prefix of one) is that
    /// run; otherwise a manifest path or `PATH@REV`. `journals` is read on first need.
    fn parse(
        given: &str,
        overrides: Vec<String>,
        store: &Store,
        journals: &mut Option<Vec<RunJournal>>,
        side: &str,
        set_flag: &str,
    ) -> Result<Given> {
        if !Utf8Path::new(given).is_file() {
            if journals.is_none() {
                *journals = Some(store.journals()?);
            }
            if let Some(run) = find_run(journals.as_deref().unwrap_or_default(), given)?.cloned() {
                if !overrides.is_empty() {
                    return Err(ExpectedError::Usage(format!(
                        "{set_flag} applies to a manifest, but {side} `{given}` is run {} \
                         (what it ran is fixed; compare its manifest `{}` with the override \
                         instead)",
                        run.run_id, run.manifest
                    )));
                }
                return Ok(Given::Run(run));
            }
        }
        Spec::parse(given, overrides).map(Given::Manifest)
    }

    fn load(self, store: &Store, digests: &mut DataDigests) -> Result<Side> {
        match self {
            Given::Manifest(spec) => Side::load(spec, store, digests),
            Given::Run(journal) => Side::from_run(journal, store),
        }
    }
}

/// A manifest side: a manifest, maybe at a git revision, with its overrides.
#[derive(Clone, Debug)]
struct Spec {
    path: Utf8PathBuf,
    rev: Option<String>,
    overrides: Vec<String>,
}

impl Spec {
    /// `PATH` or `PATH@REV`; a file whose own name holds `@` is taken whole.
    fn parse(given: &str, overrides: Vec<String>) -> Result<Spec> {
        if !Utf8Path::new(given).is_file()
            && let Some((path, rev)) = given.rsplit_once('@')
        {
            if path.is_empty() || rev.is_empty() {
                return Err(ExpectedError::Usage(format!(
                    "`{given}`: expected a manifest path, or PATH@REV for the manifest at a git \
                     revision (e.g. experiments/quickstart.toml@HEAD~1)"
                )));
            }
            return Ok(Spec {
                path: path.into(),
                rev: Some(rev.to_owned()),
                overrides,
            });
        }
        Ok(Spec {
            path: given.into(),
            rev: None,
            overrides,
        })
    }

    /// `M@REV --set k=v` as the side is shown.
    fn describe(&self) -> String {
        let mut s = self.path.to_string();
        if let Some(rev) = &self.rev {
            s.push('@');
            s.push_str(rev);
        }
        for o in &self.overrides {
            s.push_str(" --set ");
            s.push_str(&shell_word(o));
        }
        s
    }

    /// The command that computes this side, when it is the working tree's.
    fn run_command(&self) -> Option<String> {
        if self.rev.is_some() {
            return None;
        }
        let mut s = format!("tarun run {}", shell_word(self.path.as_str()));
        for o in &self.overrides {
            s.push_str(" --set ");
            s.push_str(&shell_word(o));
        }
        Some(s)
    }
}

/// One side, loaded and resolved against the store: its nodes, in its order.
struct Side {
    origin: Origin,
    nodes: Vec<SideNode>,
    index: BTreeMap<String, usize>,
}

/// Where a side's nodes come from.
enum Origin {
    /// A manifest (maybe at a revision, with overrides), planned against the store, with the
    /// count of nodes in each `tarun status` state (in the order of [`STATES`]).
    Manifest {
        spec: Spec,
        study: String,
        states: [usize; 4],
    },
    /// A recorded run: its journal.
    Run(RunJournal),
}

/// One node of a side.
struct SideNode {
    id: String,
    family: String,
    /// `None` for a run's node whose record is no longer in the store.
    kind: Option<NodeKind>,
    /// The `tarun status` state (manifest side) or the run's outcome (run side).
    state: &'static str,
    /// Whether `record` is the node's current record (its metrics are current).
    computed: bool,
    /// The current key: for a manifest, when every input is computed; for a run, its key.
    key: Option<NodeKey>,
    /// The key the sides are compared by (a manifest's planned key) and its material (`None`
    /// for a run's node whose record is gone).
    compared: NodeKey,
    material: Option<Value>,
    record: Option<NodeRecord>,
}

/// The node as one side of a compared node shows it.
#[derive(Clone, Copy)]
struct Presence {
    state: &'static str,
    computed: bool,
    key: Option<NodeKey>,
}

impl Side {
    fn load(spec: Spec, store: &Store, digests: &mut DataDigests) -> Result<Side> {
        let checkout = match &spec.rev {
            Some(rev) => Some(materialise(&spec.path, rev)?),
            None => None,
        };
        let manifest = checkout.as_ref().map_or(&spec.path, |(_, p)| p);
        let mut study = tarun_core::manifest::load(manifest, &spec.overrides)?;
        // Data paths (`[data] path`) stay relative to the working tree's manifest.
        study.path = spec.path.clone();
        drop(checkout);
        let graph = Graph::new(&study);
        let runner = kinds::StudyRunner;
        let data = digests.of(&study, store)?;
        let statuses = plan::status(&study, &graph, store, &runner, &data, &BTreeSet::new())?;
        let planned = plan::planned_keys(&study, &graph, &statuses, &runner, &data);
        let states = STATES.map(|st| statuses.iter().filter(|s| s.state == st).count());
        let nodes = study
            .nodes
            .iter()
            .zip(statuses)
            .zip(planned)
            .map(|((node, status), (compared, material))| {
                let computed = status.state == State::Fresh;
                SideNode {
                    id: node.id.clone(),
                    family: node.name.clone(),
                    kind: Some(node.kind),
                    state: status.state.as_str(),
                    computed,
                    key: status.key,
                    compared,
                    material: Some(material),
                    record: status.record.filter(|_| computed),
                }
            })
            .collect();
        Ok(Side::new(
            Origin::Manifest {
                spec,
                study: study.name,
                states,
            },
            nodes,
        ))
    }

    /// A run's side: every journal entry with a key (`ran`, `cached`), with its record when the
    /// store still has it. Failed, skipped and cancelled entries have no key and are left out
    /// (the run's summary line counts them).
    fn from_run(journal: RunJournal, store: &Store) -> Result<Side> {
        let mut nodes = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in &journal.entries {
            // One node per id: the first entry with a key.
            let Some(key) = entry.key else { continue };
            if !seen.insert(entry.id.as_str()) {
                continue;
            }
            let record = store.read_record(&key)?;
            nodes.push(SideNode {
                id: entry.id.clone(),
                family: family_of(&entry.id).to_owned(),
                kind: record.as_ref().map(|r| r.kind),
                state: entry.outcome.as_str(),
                computed: record.is_some(),
                key: Some(key),
                compared: key,
                material: record.as_ref().map(|r| r.key_material.clone()),
                record,
            });
        }
        Ok(Side::new(Origin::Run(journal), nodes))
    }

    fn new(origin: Origin, nodes: Vec<SideNode>) -> Side {
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        Side {
            origin,
            nodes,
            index,
        }
    }

    fn node(&self, id: &str) -> Option<&SideNode> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }

    fn not_computed(&self) -> usize {
        self.nodes.iter().filter(|n| !n.computed).count()
    }

    /// How the side is named: `M@REV --set k=v`, or `run ID (M --set k=v, DATE)`.
    fn describe(&self) -> String {
        match &self.origin {
            Origin::Manifest { spec, .. } => spec.describe(),
            Origin::Run(j) => {
                let mut m = j.manifest.clone();
                for o in &j.overrides {
                    m.push_str(" --set ");
                    m.push_str(&shell_word(o));
                }
                format!(
                    "run {} ({m}, {})",
                    j.run_id,
                    j.started.strftime("%Y-%m-%d %H:%M:%S")
                )
            }
        }
    }

    /// For a manifest: `5 of 22 nodes not computed (2 stale, 3 missing): `tarun run M` would
    /// compute them`. For a run: `run ID: 2 ran, 5 cached (7 nodes)`, with what is left out.
    fn run_summary(&self) -> String {
        let n = self.nodes.len();
        let (spec, states) = match &self.origin {
            Origin::Manifest { spec, states, .. } => (spec, states),
            Origin::Run(j) => {
                let counts: Vec<String> = OUTCOMES
                    .iter()
                    .map(|&o| (j.count(o), o))
                    .filter(|&(c, _)| c > 0)
                    .map(|(c, o)| format!("{c} {}", o.as_str()))
                    .collect();
                let mut s = format!("run {}: {} ({n} nodes", j.run_id, counts.join(", "));
                if j.entries.len() > n {
                    s.push_str("; those that did not finish have no key and are left out");
                }
                let gone = self.not_computed();
                if gone > 0 {
                    s.push_str(&format!(
                        "; {gone} no longer in the store (`tarun gc` removed their records)"
                    ));
                }
                s.push(')');
                return s;
            }
        };
        let due = self.not_computed();
        if due == 0 {
            return format!("all {n} nodes computed");
        }
        let parts: Vec<String> = STATES
            .iter()
            .zip(states)
            .skip(1)
            .filter(|&(_, &c)| c > 0)
            .map(|(s, c)| format!("{c} {}", s.as_str()))
            .collect();
        let how = match (&spec.run_command(), &spec.rev) {
            (Some(cmd), _) => format!("`{cmd}` would compute them"),
            (None, Some(rev)) => format!(
                "`tarun run {}` at revision {rev} would compute them",
                spec.path
            ),
            (None, None) => unreachable!("a side without a revision has a command"),
        };
        format!(
            "{due} of {n} nodes not computed ({}): {how}",
            parts.join(", ")
        )
    }
}

/// A node id's family: the id without its matrix values (`unlearn[arch=vgg11_bn]` ->
/// `unlearn`), as the manifest expansion builds ids.
fn family_of(id: &str) -> &str {
    id.split_once('[').map_or(id, |(family, _)| family)
}

const OUTCOMES: [Outcome; 5] = [
    Outcome::Ran,
    Outcome::Cached,
    Outcome::Failed,
    Outcome::Skipped,
    Outcome::Cancelled,
];

/// Writes the manifest at `rev`, and every file it includes (transitively), into a temporary
/// folder at their paths in the repository, so that relative includes resolve as they did at
/// that revision. Returns the folder (removed when dropped) and the manifest's path in it.
fn materialise(path: &Utf8Path, rev: &str) -> Result<(tempfile::TempDir, Utf8PathBuf)> {
    let given = format!("{path}@{rev}");
    let usage = |msg: String| ExpectedError::Usage(format!("`{given}`: {msg}"));
    let dir = match path.parent() {
        Some(d) if !d.as_str().is_empty() => d,
        _ => Utf8Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| usage("not a file path".into()))?;
    let prefix = git(dir, &["rev-parse", "--show-prefix"]).map_err(&usage)?;
    let prefix = String::from_utf8_lossy(&prefix).trim().to_owned();
    let tmp = tempfile::Builder::new()
        .prefix("tarun-compare-")
        .tempdir()
        .map_err(|e| ExpectedError::Other(anyhow::anyhow!("creating a temporary folder: {e}")))?;
    let root = Utf8Path::from_path(tmp.path())
        .ok_or_else(|| usage("the temporary folder's path is not UTF-8".into()))?
        .to_path_buf();
    let first = format!("{prefix}{name}");
    let mut queue = vec![first.clone()];
    let mut seen = BTreeSet::new();
    while let Some(file) = queue.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let bytes = git(dir, &["show", &format!("{rev}:{file}")]).map_err(&usage)?;
        let dest = root.join(&file);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ExpectedError::Other(anyhow::anyhow!("creating `{parent}`: {e}")))?;
        }
        std::fs::write(&dest, &bytes)
            .map_err(|e| ExpectedError::Other(anyhow::anyhow!("writing `{dest}`: {e}")))?;
        // A file that does not parse is left to the manifest loader to report.
        let Ok(doc) = String::from_utf8_lossy(&bytes).parse::<toml::Table>() else {
            continue;
        };
        let includes = doc
            .get("study")
            .and_then(|s| s.get("include"))
            .and_then(toml::Value::as_array);
        for include in includes
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
        {
            match in_repository(&file, include) {
                Some(p) => queue.push(p),
                None => {
                    return Err(usage(format!(
                        "`{file}` includes `{include}`, outside the repository: only files in \
                         the repository can be read at a revision"
                    )));
                }
            }
        }
    }
    Ok((tmp, root.join(first)))
}

/// `relative` joined onto the folder of `file` (both relative to the repository's root), `.`
/// and `..` removed; `None` when it leaves the repository.
fn in_repository(file: &str, relative: &str) -> Option<String> {
    if relative.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = file.split('/').collect();
    parts.pop();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Runs `git -C dir ARGS`, returning its stdout, or its stderr as the error.
fn git(dir: &Utf8Path, args: &[&str]) -> std::result::Result<Vec<u8>, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Same,
    Changed,
    OnlyA,
    OnlyB,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Same => "same",
            Status::Changed => "changed",
            Status::OnlyA => "only-a",
            Status::OnlyB => "only-b",
        }
    }
}

/// One node id of either side.
struct NodeCmp {
    id: String,
    family: String,
    /// `None` only for a run's node whose record the store no longer has.
    kind: Option<NodeKind>,
    status: Status,
    causes: Vec<String>,
    /// The node on each side: its state, whether computed, its current key.
    a: Option<Presence>,
    b: Option<Presence>,
    metrics: Vec<MetricRow>,
}

impl NodeCmp {
    /// Whether every row has equal sides (both `not computed` counts as equal: a `same` node
    /// shares its record, or lack of one, between the sides).
    fn metrics_equal(&self) -> bool {
        self.metrics.iter().all(|m| m.a == m.b)
    }
}

/// One metric of a node on both sides; `None` for a side that is not computed.
struct MetricRow {
    name: String,
    a: Option<Value>,
    b: Option<Value>,
    delta: Option<f64>,
}

impl MetricRow {
    /// Whether `--threshold x` keeps the row: a delta above it, different non-numeric values,
    /// or a side not computed.
    fn shown_at(&self, x: f64) -> bool {
        match (self.delta, &self.a, &self.b) {
            (Some(d), _, _) => d.abs() > x,
            (None, Some(a), Some(b)) => a != b,
            _ => true,
        }
    }
}

/// The data digest of each `[data]` table seen, so that two sides with the same data (the usual
/// case) hash it once: CIFAR-10 is 180 MB.
struct DataDigests(BTreeMap<String, DataDigest>);

impl DataDigests {
    fn new() -> DataDigests {
        DataDigests(BTreeMap::new())
    }

    fn of(&mut self, study: &tarun_core::manifest::Study, store: &Store) -> Result<DataDigest> {
        // Relative data paths resolve against the manifest's folder.
        let table = serde_json::json!([study.data, study.path.parent()]).to_string();
        if let Some(d) = self.0.get(&table) {
            return Ok(d.clone());
        }
        let d = kinds::planning_digest(study, store)?;
        self.0.insert(table, d.clone());
        Ok(d)
    }
}

/// Every node id of A (in A's order), then those only B has (in B's order).
fn compare_nodes(a: &Side, b: &Side, store: &Store) -> Result<Vec<NodeCmp>> {
    let mut out = Vec::new();
    let ids = a.nodes.iter().map(|n| &n.id).chain(
        b.nodes
            .iter()
            .map(|n| &n.id)
            .filter(|id| !a.index.contains_key(*id)),
    );
    for id in ids {
        let (na, nb) = (a.node(id), b.node(id));
        let node = na.or(nb).expect("on a side");
        let (status, causes) = match (na, nb) {
            (Some(x), Some(y)) if x.compared == y.compared => (Status::Same, vec![]),
            (Some(x), Some(y)) => (
                Status::Changed,
                match (&x.material, &y.material) {
                    (Some(mx), Some(my)) => plan::material_causes(mx, my),
                    _ => vec![
                        "key differs (a run's record is no longer in the store: its key \
                         material is unknown)"
                            .to_owned(),
                    ],
                },
            ),
            (Some(_), None) => (Status::OnlyA, vec![]),
            (None, _) => (Status::OnlyB, vec![]),
        };
        let metrics = match (na, nb) {
            (Some(x), Some(y)) => {
                let mx = side_metrics(x, store)?;
                // A `same` node computed on both sides has one record: read it once.
                let my = if status == Status::Same && x.computed && y.computed && x.key == y.key {
                    mx.clone()
                } else {
                    side_metrics(y, store)?
                };
                metric_rows(x.kind.or(y.kind), mx, my)
            }
            _ => vec![],
        };
        let presence = |n: Option<&SideNode>| {
            n.map(|n| Presence {
                state: n.state,
                computed: n.computed,
                key: n.key,
            })
        };
        out.push(NodeCmp {
            id: id.clone(),
            family: node.family.clone(),
            kind: na.and_then(|n| n.kind).or(nb.and_then(|n| n.kind)),
            status,
            causes,
            a: presence(na),
            b: presence(nb),
            metrics,
        });
    }
    Ok(out)
}

/// A side's metrics of a node, when it is computed (its record is current).
fn side_metrics(node: &SideNode, store: &Store) -> Result<Option<BTreeMap<String, Value>>> {
    match &node.record {
        Some(record) if node.computed => metrics_of(store, record).map(Some),
        _ => Ok(None),
    }
}

/// The rows of a node on both sides: the metrics both have (by name), or, when a side is not
/// computed, the other side's metrics against `not computed` (one `-` row for an evaluate node
/// computed on neither side).
fn metric_rows(
    kind: Option<NodeKind>,
    a: Option<BTreeMap<String, Value>>,
    b: Option<BTreeMap<String, Value>>,
) -> Vec<MetricRow> {
    match (a, b) {
        (Some(a), Some(b)) => a
            .into_iter()
            .filter_map(|(name, x)| {
                let y = b.get(&name)?.clone();
                let delta = match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => Some(y - x),
                    _ => None,
                };
                Some(MetricRow {
                    name,
                    a: Some(x),
                    b: Some(y),
                    delta,
                })
            })
            .collect(),
        (Some(a), None) => a
            .into_iter()
            .map(|(name, x)| MetricRow {
                name,
                a: Some(x),
                b: None,
                delta: None,
            })
            .collect(),
        (None, Some(b)) => b
            .into_iter()
            .map(|(name, y)| MetricRow {
                name,
                a: None,
                b: Some(y),
                delta: None,
            })
            .collect(),
        (None, None) if kind == Some(NodeKind::Evaluate) => vec![MetricRow {
            name: "-".into(),
            a: None,
            b: None,
            delta: None,
        }],
        (None, None) => vec![],
    }
}

/// How many nodes have each status (over every node, whatever is listed).
struct Counts {
    a: usize,
    b: usize,
    by: [(Status, usize); 4],
}

impl Counts {
    fn of(nodes: &[NodeCmp]) -> Counts {
        let count = |st: Status| nodes.iter().filter(|n| n.status == st).count();
        Counts {
            a: nodes.iter().filter(|n| n.a.is_some()).count(),
            b: nodes.iter().filter(|n| n.b.is_some()).count(),
            by: [Status::Same, Status::Changed, Status::OnlyA, Status::OnlyB]
                .map(|s| (s, count(s))),
        }
    }

    /// `22 nodes in A, 22 in B: 17 same, 5 changed` (statuses with no node left out).
    fn line(&self) -> String {
        let parts: Vec<String> = self
            .by
            .iter()
            .filter(|(_, c)| *c > 0)
            .map(|(s, c)| format!("{c} {}", s.as_str()))
            .collect();
        format!(
            "{} nodes in A, {} in B: {}",
            self.a,
            self.b,
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_resolve_inside_the_repository() {
        assert_eq!(
            in_repository("experiments/q.toml", "../configs/r.toml").as_deref(),
            Some("configs/r.toml")
        );
        assert_eq!(
            in_repository("q.toml", "./c/r.toml").as_deref(),
            Some("c/r.toml")
        );
        assert_eq!(in_repository("q.toml", "../r.toml"), None);
        assert_eq!(in_repository("q.toml", "/etc/r.toml"), None);
    }

    /// A journal with no entries, as an old build would have written it.

    #[test]
    fn families_are_ids_without_matrix_values() {
        assert_eq!(family_of("unlearn[arch=vgg11_bn,class=8]"), "unlearn");
        assert_eq!(family_of("base"), "base");
    }

    #[test]
    fn sides_parse_paths_and_revisions() {
        let s = Spec::parse("m.toml@HEAD~1", vec![]).unwrap();
        assert_eq!(
            (s.path.as_str(), s.rev.as_deref()),
            ("m.toml", Some("HEAD~1"))
        );
        assert!(Spec::parse("m.toml@", vec![]).is_err());
        let s = Spec::parse("m.toml", vec!["a.b=1".into()]).unwrap();
        assert_eq!(s.rev, None);
        assert_eq!(s.describe(), "m.toml --set a.b=1");
        assert_eq!(shell_word("a b"), "'a b'");
    }
}
