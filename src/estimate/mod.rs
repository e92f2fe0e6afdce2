//! How long a run would take: `tarun run M --dry-run`'s estimate, per node and per device.
//!
//! Each node that would run gets an estimate on each device it could land on, from the first
//! of these that applies:
//!
//! 1. **record**: a record in the store of the same node id, or else of a node of the same kind
//!    and network (arch, width, batch size; for an evaluation its metrics and split; for an
//!    ablation its vectors and quantile), that ran on the same kind of device. Its wall time
//!    is scaled by the work now over the work then (epochs x training images, images
//!    evaluated, surgery), and on the CPU by its thread count over the job's when the job has
//!    fewer.
//! 2. **bench**: the images/second `tarun bench` measured on this kind of device and saved
//!    in `<store>/bench/` ([`rates`]), times the node's work ([`work`]).
//! 3. **default**: the same with built-in figures (docs/performance.md's CPU table;
//!    one H200's measured figures for CUDA GPUs).
//!
//! Then [`schedule::simulate`] replays the run over the same device pool `run` would use,
//! which gives when each device's last job ends and the whole run's wall time.

mod rates;
mod schedule;
mod work;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tarun_core::engine::{Demand, DevicePool, Runner};
use tarun_core::graph::Graph;
use tarun_core::manifest::{NodeKind, NodeSpec, Study};
use tarun_core::store::{NodeRecord, Store};
use tarun_ml::models::Kernels;

pub use self::rates::{BenchFile, bench_path};
use self::rates::{Origin, Table};
pub use self::schedule::{Placement, Schedule};
use self::schedule::{SimJob, simulate};
use self::work::{DataSizes, Work, work_of};

/// Seconds a device job spends outside its images and surgery: opening the device, reading
/// its inputs' checkpoints, writing and committing its outputs.
const JOB_OVERHEAD_S: f64 = 0.02;

/// Where an estimate came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A record of this node id (`from` is its id) or of a similar node.
    Record { from: String },
    /// `tarun bench` figures saved in the store.
    Bench,
    /// Built-in figures.
    Default,
}

/// One node's estimated wall time on one device.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub seconds: f64,
    pub source: Source,
}

/// The estimate of a dry run: the simulated schedule of the nodes that would run.
pub struct Forecast {
    /// The study index of each simulated job, in the order the listing prints them.
    pub nodes: Vec<usize>,
    pub schedule: Schedule,
    /// Where the figures of non-record estimates came from, for the summary.
    pub figures: BTreeSet<String>,
    /// Whether a built-in default priced images (then `tarun bench` would do better).
    pub used_default_rates: bool,
    /// Bench files that could not be read.
    pub notes: Vec<String>,
}

/// Estimates and simulates the nodes `would_run` (study indices in topological order) on
/// `pool`, the pool `run` would use.
pub fn forecast(
    study: &Study,
    graph: &Graph,
    store: &Store,
    data_digest: &str,
    pool: &DevicePool,
    runner: &dyn Runner,
    would_run: &[usize],
) -> Forecast {
    let position: BTreeMap<usize, usize> =
        would_run.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let jobs: Vec<SimJob> = would_run
        .iter()
        .map(|&i| {
            let node = &study.nodes[i];
            SimJob {
                deps: graph
                    .inputs(i)
                    .filter_map(|j| position.get(&j).copied())
                    .collect(),
                demand: runner.needs_device(node).then(|| Demand {
                    request: node.device,
                    memory_mb: runner.memory_estimate(study, node),
                }),
            }
        })
        .collect();
    let mut estimator = Estimator::new(study, store, data_digest);
    let schedule = simulate(&jobs, pool.clone(), |k, device, threads| {
        estimator.estimate(would_run[k], device, threads)
    });
    Forecast {
        nodes: would_run.to_vec(),
        schedule,
        figures: estimator.figures,
        used_default_rates: estimator.used_default_rates,
        notes: estimator.notes,
    }
}

impl Forecast {
    /// The estimate part of job `job`'s listing line: `~4.2 s on cpu (default)`.
    pub fn describe(&self, study: &Study, job: usize) -> String {
        match &self.schedule.jobs[job] {
            Some(p) => {
                let source = match &p.estimate.source {
                    Source::Record { from } if *from == study.nodes[self.nodes[job]].id => {
                        "record".to_owned()
                    }
                    Source::Record { from } => format!("record of `{from}`"),
                    Source::Bench => "bench".to_owned(),
                    Source::Default => "default".to_owned(),
                };
                let place = match &p.device {
                    Some(d) => format!("on {d}"),
                    None => "beside the jobs".to_owned(),
                };
                format!("~{} {place} ({source})", human(p.estimate.seconds))
            }
            None if self.schedule.unservable.contains(&job) => format!(
                "would fail at once: device = \"{}\", which this run does not have",
                study.nodes[self.nodes[job]].device.as_str()
            ),
            None => "would not start: an input would fail".to_owned(),
        }
    }

    /// The summary lines printed after the listing.
    pub fn summary(&self, study: &Study) -> Vec<String> {
        let s = &self.schedule;
        let mut out = vec![];
        let placed: Vec<&Placement> = s.jobs.iter().flatten().collect();
        if s.jobs.is_empty() {
            out.push("estimated wall time: 0 s, nothing would run".to_owned());
        } else if placed.is_empty() {
            out.push("estimated wall time: 0 s, nothing that would run can start".to_owned());
        } else {
            let devices: Vec<String> = s
                .devices
                .iter()
                .map(|d| {
                    let slots = format!("{} slot{}", d.slots, if d.slots == 1 { "" } else { "s" });
                    if d.jobs == 0 {
                        format!("{} idle ({slots})", d.name)
                    } else {
                        format!("{} on {} ({slots})", human(d.end), d.name)
                    }
                })
                .collect();
            out.push(format!(
                "estimated wall time: {}; total about {}",
                devices.join(", "),
                human(s.total)
            ));
            let count =
                |f: fn(&Source) -> bool| placed.iter().filter(|p| f(&p.estimate.source)).count();
            let records = count(|s| matches!(s, Source::Record { .. }));
            let bench = count(|s| *s == Source::Bench);
            let default = count(|s| *s == Source::Default);
            let mut line = format!(
                "estimates: {records} from records, {bench} from bench figures, {default} from \
                 built-in defaults"
            );
            if !self.figures.is_empty() {
                let figures: Vec<&str> = self.figures.iter().map(String::as_str).collect();
                line.push_str(&format!(" (figures: {})", figures.join("; ")));
            }
            if self.used_default_rates {
                line.push_str("; `tarun bench [--device D]` measures this machine");
            }
            out.push(line);
        }
        if !s.unservable.is_empty() {
            let ids: Vec<&str> = s
                .unservable
                .iter()
                .take(3)
                .map(|&k| study.nodes[self.nodes[k]].id.as_str())
                .collect();
            let more = if s.unservable.len() > 3 { ", ..." } else { "" };
            let blocked = s.jobs.iter().filter(|p| p.is_none()).count() - s.unservable.len();
            out.push(format!(
                "{} node(s) ask for a kind of device this run lacks and would fail at once \
                 (`{}`{more}), and {blocked} after them would not start; none is counted above",
                s.unservable.len(),
                ids.join("`, `"),
            ));
        }
        out.extend(self.notes.iter().cloned());
        out
    }
}

/// A duration as a person reads it: `0.4 s`, `41 s`, `3 min 20 s`, `14 min`, `2 h 3 min`.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 10.0 {
        return format!("{s:.1} s");
    }
    let whole = s.round() as u64;
    let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60);
    match (h, m) {
        (0, 0) => format!("{sec} s"),
        (0, m) if m < 10 => format!("{m} min {sec} s"),
        (0, m) => format!("{m} min"),
        (h, m) if h < 48 => format!("{h} h {m} min"),
        (h, _) => format!("{} d {} h", h / 24, h % 24),
    }
}

/// `cpu`, `cuda` or `metal`: what a device name's figures and records are shared by.
fn device_kind(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

/// What makes two nodes' records interchangeable up to scaling by their work.
fn similarity(study: &Study, node: &NodeSpec) -> String {
    let net = crate::kinds::network(study, node)
        .map(|(arch, width)| format!("{arch} {width}"))
        .unwrap_or_default();
    let p = |k: &str| node.params.get(k).map_or(Value::Null, Clone::clone);
    let detail = match node.kind {
        NodeKind::Train | NodeKind::Expert => p("batch-size").to_string(),
        NodeKind::Evaluate => format!("{} {}", p("metrics"), p("split")),
        NodeKind::Ablate => {
            let vectors = node
                .params
                .get("vectors")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!("{vectors} {} {}", p("quantile"), p("materialize"))
        }
        NodeKind::Select | NodeKind::Report => String::new(),
    };
    format!("{} {net} {detail}", node.kind)
}

/// The records and figures estimates are made from.
struct Estimator<'a> {
    study: &'a Study,
    store: &'a Store,
    data_digest: &'a str,
    sizes: DataSizes,
    /// The last record of each node id of the study.
    heads: Vec<Option<NodeRecord>>,
    /// Nodes with a record, by similarity and the kind of device the record ran on, in study
    /// order.
    similar: BTreeMap<(String, String), Vec<usize>>,
    /// Bench figures by device name (`None`: no usable file).
    bench: BTreeMap<String, Option<Table>>,
    figures: BTreeSet<String>,
    used_default_rates: bool,
    notes: Vec<String>,
}

impl<'a> Estimator<'a> {
    fn new(study: &'a Study, store: &'a Store, data_digest: &'a str) -> Self {
        // An unreadable head is no estimate; `status` reports it.
        let heads: Vec<Option<NodeRecord>> = study
            .nodes
            .iter()
            .map(|n| store.head(&study.name, &n.id).ok().flatten())
            .collect();
        let mut similar: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (i, head) in heads.iter().enumerate() {
            if let Some(rec) = head {
                let then = spec_of(&study.nodes[i], rec);
                let key = (
                    similarity(study, &then),
                    device_kind(&rec.device).to_owned(),
                );
                similar.entry(key).or_default().push(i);
            }
        }
        Estimator {
            study,
            store,
            data_digest,
            sizes: DataSizes::of(study),
            heads,
            similar,
            bench: BTreeMap::new(),
            figures: BTreeSet::new(),
            used_default_rates: false,
            notes: vec![],
        }
    }

    /// Node `i` on `device`, as a job with `threads` threads.
    fn estimate(&mut self, i: usize, device: &str, threads: usize) -> Estimate {
        let node = &self.study.nodes[i];
        let now = work_of(self.study, node, &self.sizes, None);
        if let Some(e) = self.record_estimate(i, &now, device, threads) {
            return e;
        }
        let (seconds, origin) = self.price(&now, device, threads, true);
        let overhead = if is_job(node.kind) {
            JOB_OVERHEAD_S
        } else {
            0.0
        };
        Estimate {
            seconds: seconds + overhead,
            source: match origin {
                Origin::Bench => Source::Bench,
                Origin::Default => Source::Default,
            },
        }
    }

    /// From a record of this node or of a similar one on the same kind of device, scaled.
    fn record_estimate(
        &mut self,
        i: usize,
        now: &Work,
        device: &str,
        threads: usize,
    ) -> Option<Estimate> {
        let node = &self.study.nodes[i];
        let job = is_job(node.kind);
        let kind = device_kind(device);
        // Nodes without a slot run on the host whatever the devices: any record will do.
        let usable = |rec: &NodeRecord| !job || device_kind(&rec.device) == kind;
        let mut candidates: Vec<usize> = vec![];
        if self.heads[i].as_ref().is_some_and(usable) {
            candidates.push(i);
        }
        let key = (similarity(self.study, node), kind.to_owned());
        let similar = self.similar.get(&key).cloned().unwrap_or_default();
        candidates.extend(similar.into_iter().filter(|&j| j != i));
        for j in candidates {
            let Some(rec) = self.heads[j].clone() else {
                continue;
            };
            if !(usable(&rec) && rec.seconds.is_finite() && rec.seconds >= 0.0) {
                continue;
            }
            let Some(then) = self.record_work(j, &rec) else {
                continue;
            };
            let (t_now, _) = self.price(now, device, threads, false);
            let (t_then, _) = self.price(&then, device, threads, false);
            let ratio = if t_then > 0.0 { t_now / t_then } else { 1.0 };
            let fewer_threads = if job && kind == "cpu" && rec.threads > threads {
                rec.threads as f64 / threads.max(1) as f64
            } else {
                1.0
            };
            return Some(Estimate {
                seconds: rec.seconds * ratio * fewer_threads,
                source: Source::Record { from: rec.id },
            });
        }
        None
    }

    /// The work a record did: its own parameters, on the data it had.
    fn record_work(&self, j: usize, rec: &NodeRecord) -> Option<Work> {
        let then = spec_of(&self.study.nodes[j], rec);
        let same_data =
            rec.key_material.get("data").and_then(Value::as_str) == Some(self.data_digest);
        let mut sizes = self.sizes;
        let mut train_images = None;
        match then.kind {
            // What it trained on is in its summary, whatever the data was.
            NodeKind::Train | NodeKind::Expert => {
                train_images = rec.summary.get("train-images").and_then(Value::as_f64);
                if train_images.is_none() && !same_data {
                    return None;
                }
            }
            // Other data: scale every split by how many images it evaluated then.
            NodeKind::Evaluate if !same_data => {
                let metrics = rec.outputs.get(crate::kinds::METRICS_FILE)?;
                let bytes = std::fs::read(self.store.object_path(&metrics.digest)).ok()?;
                let v: Value = serde_json::from_slice(&bytes).ok()?;
                let images = v.get("images").and_then(Value::as_f64)?;
                let split = v.get("split").and_then(Value::as_str).unwrap_or("test");
                let now = self.sizes.eval_images(split);
                if now <= 0.0 {
                    return None;
                }
                sizes = self.sizes.scaled(images / now);
            }
            _ => {}
        }
        Some(work_of(self.study, &then, &sizes, train_images))
    }

    /// Seconds of `work`'s images and host work on `device` (without the job overhead), and
    /// whether any figure was a default. `note` records which figures were used.
    fn price(&mut self, work: &Work, device: &str, threads: usize, note: bool) -> (f64, Origin) {
        let mut seconds = work.host_seconds;
        let mut origin = Origin::Default;
        let Some((arch, width)) = &work.net else {
            return (seconds, origin);
        };
        let passes = work
            .train
            .iter()
            .map(|&(images, batch)| (images, batch, true))
            .chain(std::iter::once((work.infer, 256.0, false)))
            .filter(|p| p.0 > 0.0);
        let bench = self.bench_table(device).filter(|t| t.has(arch));
        let default = Table::default_for(device_kind(device));
        let table = bench.as_ref().unwrap_or(&default);
        let mut priced = false;
        for (images, batch, train) in passes {
            // An unknown network (never after validation) is priced as ResNet-18, the slowest.
            let rate = table
                .rate(arch, *width, batch, train, threads)
                .or_else(|| table.rate("resnet18", *width, batch, train, threads))
                .unwrap_or(1.0);
            seconds += images / rate;
            priced = true;
        }
        if priced {
            origin = table.origin;
            if note {
                self.figures.insert(table.about.clone());
                self.used_default_rates |= table.origin == Origin::Default;
            }
        }
        (seconds, origin)
    }

    /// `tarun bench`'s saved figures for `device`, or for another device of its kind.
    fn bench_table(&mut self, device: &str) -> Option<Table> {
        if let Some(t) = self.bench.get(device) {
            return t.clone();
        }
        let kernels = Kernels::selected();
        let own = bench_path(self.store.root(), device, kernels);
        let mut paths = vec![own.clone()];
        // `cuda:1` may use what `cuda:0` measured.
        if device != "cpu"
            && let Ok(entries) = std::fs::read_dir(self.store.root().join("bench"))
        {
            let prefix = format!("{}-", device_kind(device));
            let mut others: Vec<_> = entries
                .flatten()
                .filter_map(|e| camino::Utf8PathBuf::try_from(e.path()).ok())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
                })
                .filter(|p| *p != own)
                .collect();
            others.sort();
            paths.extend(others);
        }
        let mut table = None;
        for path in paths {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(_) => continue,
            };
            match serde_json::from_str::<BenchFile>(&text) {
                Ok(file) => {
                    table = Table::from_bench(&file, &path);
                    if table.is_some() {
                        break;
                    }
                }
                Err(e) => self.notes.push(format!(
                    "note: ignoring `{path}`, not a `tarun bench` result: {e}"
                )),
            }
        }
        self.bench.insert(device.to_owned(), table.clone());
        table
    }
}

/// Whether a kind's nodes take a device slot (the engine's `needs_device`).
fn is_job(kind: NodeKind) -> bool {
    !matches!(kind, NodeKind::Select | NodeKind::Report)
}

/// The node as its record ran it: the record's parameters in the current node's place.
fn spec_of(node: &NodeSpec, rec: &NodeRecord) -> NodeSpec {
    let mut then = node.clone();
    if let Some(params) = rec.key_material.get("params").and_then(Value::as_object) {
        then.params = params.clone();
    }
    then
}

#[cfg(test)]
mod tests;
