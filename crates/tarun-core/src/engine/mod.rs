//! The engine: one loop that owns the run's state and dispatches jobs to device slots.
//!
//! The loop keeps the ready queue (Kahn in-degree counts over the selected nodes), the free
//! device slots and every node's state. When a node's inputs are committed the loop computes its
//! key (once per run: the key travels with the node from there) and looks its record up in the
//! store; a miss is looked up on the remote cache, when there is one, on blocking threads a few
//! at once, the answer coming back to the loop as a message. The nodes that must compute run on
//! blocking threads, commit their outputs to the store there, and report back through a
//! channel. Nothing is shared between jobs.
//!
//! Before computing a node, a run takes the node key's lease in the store
//! ([`Store::try_lease`]), so that two drivers on one store compute a shared node once: the one
//! that finds it held waits for it on a thread of its own, holding no device slot, while its
//! other nodes go on; once it has the lease it looks the record up again and takes the other's
//! record when there is one. A Slurm job takes the lease itself, on its host (see
//! [`remote`]): the driver does not hold it for it.
//!
//! A failed node skips its descendants and lets independent branches finish (unless
//! `fail_fast`). Cancellation (Ctrl-C, SIGTERM, SIGHUP) reaches jobs through a token they check
//! between batches; a cancelled job commits nothing.

mod devices;
mod events;
mod job;
mod lookup;
use self::lookup::{LeaseNews, Looked, REMOTE_LOOKUPS};
mod remote;
pub mod slurm;
mod worker;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::devices::{Demand, DevicePool, DeviceSpec, Lease};
pub use self::events::Event;
pub use self::job::{EngineError, Job, JobError, JobInput, JobOutput, Runner};
pub use self::remote::{Placement, RemoteNode, write_exit};
use self::slurm::{Files, Poller, Remote, SlurmConfig};
use crate::digest::{DataDigest, NodeKey};
use crate::graph::Graph;
use crate::manifest::Study;
use crate::plan::node_key;
use crate::store::{
    JournalEntry, LeaseTry, NodeLease, NodeRecord, Outcome, RunJournal, Store, StoreError,
};

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run only these nodes and their ancestors (indices into `study.nodes`); `None`: all.
    pub targets: Option<BTreeSet<usize>>,
    /// Rerun these even if cached.
    pub force: BTreeSet<usize>,
    pub fail_fast: bool,
    pub run_id: String,
    /// The command line, for the journal.
    pub command: Vec<String>,
    /// Set to a signal's name (`SIGTERM`) by whoever cancels the run because of that signal,
    /// before cancelling: the journal then says the run was interrupted, and by what. A
    /// cancellation without it (`fail_fast`) is not an interruption.
    pub interrupted: Arc<OnceLock<String>>,
    /// The remote cache: a node missing here is looked up there before it is computed (and
    /// journalled as cached, device `remote`), and, when it pushes, what a run commits is
    /// uploaded in the background, awaited before the run ends.
    pub remote: Option<Arc<crate::remote::RemoteCache>>,
}

#[derive(Clone, Debug, PartialEq)]
enum NodeState {
    Waiting,
    Running,
    Done(Box<NodeRecord>),
    Failed,
    Skipped,
    Cancelled,
}

/// Where nodes that need a device run.
#[derive(Clone, Debug, Default)]
pub enum Executor {
    /// In this process, on the device pool's slots.
    #[default]
    Local,
    /// As Slurm jobs against the same (shared) store; see [`slurm`].
    Slurm(Arc<SlurmConfig>),
}

/// What a running job holds.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// A slot of the device pool.
    Device(Lease),
    /// A place among the Slurm executor's `max_jobs`.
    Remote,
}

/// What a finished job sends back to the loop.
struct Finished {
    node: usize,
    slot: Option<Slot>,
    result: Result<NodeRecord, JobError>,
    /// When the job was started (`None`: failed without starting), and for how long it ran
    /// (as the driver saw it).
    started: Option<jiff::Timestamp>,
    seconds: f64,
    attempts: u32,
    /// Where it ran: the slot's device, or `slurm job 42` for a job sent elsewhere.
    place: Option<String>,
    /// The record was committed by another process while the (Slurm) job waited for the
    /// node's lease: the node is cached, not ran.
    taken: bool,
}

/// One run of a study over a store.
pub struct Engine {
    pub study: Arc<Study>,
    pub graph: Arc<Graph>,
    pub store: Store,
    pub runner: Arc<dyn Runner>,
    pub data_digest: DataDigest,
    pub devices: DevicePool,
    pub events: mpsc::UnboundedSender<Event>,
    pub cancel: CancellationToken,
    pub executor: Executor,
}

struct RunState {
    states: Vec<NodeState>,
    pending_inputs: Vec<usize>,
    selected: BTreeSet<usize>,
    ready: VecDeque<usize>,
    /// Nodes waiting for a device, one queue per kind of request (any, cpu, gpu), so that a
    /// node waiting for a GPU does not hold back one that any CPU slot could run.
    waiting_for_slot: [VecDeque<(usize, Demand)>; 3],
    running: usize,
    /// Jobs of the Slurm executor queued or running.
    remote_running: usize,
    /// The Slurm executor's context, when it is the executor.
    remote: Option<Arc<Remote>>,
    journal: RunJournal,
    stop_scheduling: bool,
    /// Each node's inputs as node indices, in the order of its `inputs`.
    input_index: Vec<Vec<usize>>,
    /// The leases of nodes this run will compute and has not started yet.
    leases: BTreeMap<usize, NodeLease>,
    /// Nodes whose lease another process holds, each waited for on a blocking thread.
    lease_waits: usize,
    lease_tx: Option<mpsc::UnboundedSender<LeaseNews>>,
    /// The keys of nodes that missed the local cache, kept from [`Engine::dispatch`] through
    /// the remote lookup and the lease until the job (local or Slurm) takes it.
    keys: Vec<Option<Keyed>>,
    /// Remote lookups in flight, each answered through [`Looked`].
    lookups: usize,
    lookup_tx: Option<mpsc::UnboundedSender<Looked>>,
    /// Bounds the remote lookups in flight to [`REMOTE_LOOKUPS`].
    lookup_permits: Arc<tokio::sync::Semaphore>,
}

/// A node's key and the key material it hashes. Computed once per run, in
/// [`Engine::dispatch`] when the node's inputs are committed, and carried from there to the
/// cache lookups, the lease, and the job that writes both into the node's record (or the Slurm
/// task, whose worker recomputes it only to check that it agrees).
#[derive(Clone, Debug)]
pub(crate) struct Keyed {
    pub key: NodeKey,
    pub material: serde_json::Value,
}

impl Engine {
    /// Runs the selected nodes. Returns the journal (also written to the store).
    pub async fn run(mut self, opts: Options) -> Result<RunJournal, StoreError> {
        let started = Instant::now();
        let mut st = self.initial_state(&opts);
        let poller_stop = CancellationToken::new();
        if let Executor::Slurm(config) = &self.executor {
            let remote = self.remote(config.clone()).map_err(|e| StoreError::Io {
                path: self.store.root().join("slurm"),
                error: std::io::Error::other(e),
            })?;
            tokio::spawn(remote.poller.clone().run(poller_stop.clone()));
            st.remote = Some(Arc::new(remote));
        }
        let _stop_poller = poller_stop.drop_guard();
        let _ = self.events.send(Event::Planned {
            total: st.selected.len(),
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<Finished>();
        let (lease_tx, mut lease_rx) = mpsc::unbounded_channel::<LeaseNews>();
        st.lease_tx = Some(lease_tx);
        let (lookup_tx, mut lookup_rx) = mpsc::unbounded_channel::<Looked>();
        st.lookup_tx = Some(lookup_tx);
        loop {
            if self.cancel.is_cancelled() {
                st.stop_scheduling = true;
            }
            self.note_interruption(&mut st, &opts, started)?;
            self.dispatch(&mut st, &opts, &tx)?;
            if st.running == 0
                && st.lease_waits == 0
                && st.lookups == 0
                && (st.stop_scheduling || st.ready.is_empty())
            {
                break;
            }
            tokio::select! {
                Some(done) = rx.recv() => self.finish(&mut st, &opts, done)?,
                Some(news) = lease_rx.recv() => self.lease_news(&mut st, news, &tx),
                Some(looked) = lookup_rx.recv() => self.looked(&mut st, &opts, looked, &tx),
                () = self.cancel.cancelled(), if !st.stop_scheduling => st.stop_scheduling = true,
            }
        }
        let selected: Vec<usize> = st.selected.iter().copied().collect();
        for i in selected {
            if st.states[i] == NodeState::Waiting {
                st.states[i] = NodeState::Cancelled;
                self.journal_entry(&mut st, i, Outcome::Cancelled, None, None);
            }
        }
        if let Some(remote) = &opts.remote {
            let failed = remote.finish_pushes();
            if !failed.is_empty() {
                tracing::warn!(
                    "{} node{} not pushed to {} (`tarun push` uploads them)",
                    failed.len(),
                    if failed.len() == 1 { "" } else { "s" },
                    remote.shown()
                );
            }
        }
        if self.cancel.is_cancelled() && st.journal.interrupted.is_none() {
            st.journal.interrupted = opts.interrupted.get().cloned();
        }
        st.journal.seconds = started.elapsed().as_secs_f64();
        self.store.write_journal(&st.journal)?;
        Ok(st.journal)
    }

    /// Once the run is cancelled because of a signal, says so in the journal at once: a second
    /// signal exits without waiting for the jobs, and the journal must not then read as a run
    /// that merely did less.
    fn note_interruption(
        &self,
        st: &mut RunState,
        opts: &Options,
        started: Instant,
    ) -> Result<(), StoreError> {
        if st.journal.interrupted.is_some() || !self.cancel.is_cancelled() {
            return Ok(());
        }
        let Some(signal) = opts.interrupted.get() else {
            return Ok(());
        };
        st.journal.interrupted = Some(signal.clone());
        st.journal.seconds = started.elapsed().as_secs_f64();
        self.store.write_journal(&st.journal)
    }

    /// The Slurm executor's context: its directories and the study snapshot jobs read.
    fn remote(&self, config: Arc<SlurmConfig>) -> Result<Remote, String> {
        let files = Files::new(&self.store);
        files.create()?;
        let study_hash = files.write_study(&self.study)?;
        Ok(Remote {
            poller: Poller::new(config.poll),
            config,
            files,
            store: self.store.clone(),
            study: self.study.clone(),
            study_hash,
            events: self.events.clone(),
            cancel: self.cancel.clone(),
        })
    }

    fn initial_state(&self, opts: &Options) -> RunState {
        let n = self.study.nodes.len();
        let selected = match &opts.targets {
            Some(t) => self.graph.with_ancestors(t.iter().copied()),
            None => (0..n).collect(),
        };
        let pending_inputs: Vec<usize> = (0..n).map(|i| self.graph.inputs(i).count()).collect();
        let ready = self
            .graph
            .topo_order()
            .iter()
            .copied()
            .filter(|i| selected.contains(i) && pending_inputs[*i] == 0)
            .collect();
        let journal = RunJournal {
            run_id: opts.run_id.clone(),
            manifest: self.study.path.to_string(),
            study: self.study.name.clone(),
            started: jiff::Timestamp::now(),
            seconds: 0.0,
            overrides: self.study.overrides.clone(),
            manifest_digest: Some(self.study.source_digest.clone()).filter(|d| !d.is_empty()),
            command: opts.command.clone(),
            entries: vec![],
            interrupted: None,
        };
        let index = self.study.index();
        let input_index = self
            .study
            .nodes
            .iter()
            .map(|node| node.inputs.iter().map(|id| index[id.as_str()]).collect())
            .collect();
        RunState {
            input_index,
            states: vec![NodeState::Waiting; n],
            pending_inputs,
            selected,
            ready,
            waiting_for_slot: Default::default(),
            running: 0,
            remote_running: 0,
            remote: None,
            journal,
            stop_scheduling: false,
            leases: BTreeMap::new(),
            lease_waits: 0,
            lease_tx: None,
            keys: vec![None; n],
            lookups: 0,
            lookup_tx: None,
            lookup_permits: Arc::new(tokio::sync::Semaphore::new(REMOTE_LOOKUPS)),
        }
    }

    /// Resolves cached nodes and starts jobs while there is work and capacity.
    fn dispatch(
        &mut self,
        st: &mut RunState,
        opts: &Options,
        tx: &mpsc::UnboundedSender<Finished>,
    ) -> Result<(), StoreError> {
        while !st.stop_scheduling {
            if let Some((i, slot)) = self.next_waiting(st) {
                self.start(st, i, Some(slot), tx);
                continue;
            }
            let Some(i) = st.ready.pop_front() else { break };
            let node = &self.study.nodes[i];
            // The one computation of this node's key in this run: its inputs are all committed.
            let algorithm = self.runner.algorithm_version(node.kind);
            let (key, material) = node_key(
                &self.study,
                node,
                &Self::input_refs(st, i),
                algorithm,
                &self.data_digest,
            );
            tracing::debug!(
                "key of `{}`: {key} ({} input{}, algorithm {algorithm}, data {})",
                node.id,
                st.input_index[i].len(),
                if st.input_index[i].len() == 1 {
                    ""
                } else {
                    "s"
                },
                self.data_digest
            );
            let forced = opts.force.contains(&i);
            match self.local_record(i, &key) {
                Some(_) if forced => tracing::debug!("hit for `{}`, ignored: --force", node.id),
                Some(record) => {
                    tracing::debug!("hit: `{}` is cached", node.id);
                    self.cached(st, i, record, None);
                    continue;
                }
                None => {}
            }
            st.keys[i] = Some(Keyed { key, material });
            match &opts.remote {
                Some(remote) if !forced => self.look_up_remote(st, i, key, remote.clone()),
                _ => self.compute(st, opts, i, tx),
            }
        }
        Ok(())
    }

    /// Queues a node to compute for a device slot, or starts it at once when it needs none.
    fn enqueue(&mut self, st: &mut RunState, i: usize, tx: &mpsc::UnboundedSender<Finished>) {
        let node = &self.study.nodes[i];
        if !self.runner.needs_device(node) {
            return self.start(st, i, None, tx);
        }
        let demand = Demand {
            request: node.device,
            memory_mb: self.runner.memory_estimate(&self.study, node),
        };
        tracing::debug!(
            "`{}` waits for a slot ({:?} device, memory estimate {})",
            node.id,
            node.device,
            demand
                .memory_mb
                .map_or("none".into(), |m| format!("{m} MB"))
        );
        st.waiting_for_slot[node.device as usize].push_back((i, demand));
    }

    /// The first waiting node (of any queue) that a free slot can take now, with its slot.
    fn next_waiting(&mut self, st: &mut RunState) -> Option<(usize, Slot)> {
        for q in 0..st.waiting_for_slot.len() {
            if let Some(&(i, demand)) = st.waiting_for_slot[q].front()
                && let Some(slot) = self.acquire(st, demand)
            {
                st.waiting_for_slot[q].pop_front();
                return Some((i, slot));
            }
        }
        None
    }

    /// Reports a node as failed without running it (through the channel, as a job would).
    fn fail_at_once(
        &self,
        st: &mut RunState,
        i: usize,
        tx: &mpsc::UnboundedSender<Finished>,
        error: EngineError,
    ) {
        st.states[i] = NodeState::Running;
        st.running += 1;
        let _ = tx.send(Finished {
            node: i,
            slot: None,
            result: Err(error.into()),
            started: None,
            seconds: 0.0,
            attempts: 0,
            place: None,
            taken: false,
        });
    }

    /// A free slot for a node that needs a device: the pool's, or the Slurm executor's.
    fn acquire(&mut self, st: &mut RunState, demand: Demand) -> Option<Slot> {
        match &self.executor {
            Executor::Local => self.devices.acquire(demand).map(Slot::Device),
            Executor::Slurm(config) if st.remote_running < config.max_jobs => {
                st.remote_running += 1;
                Some(Slot::Remote)
            }
            Executor::Slurm(_) => None,
        }
    }

    /// The records of a ready node's inputs, in the order of its `inputs`.
    fn input_refs(st: &RunState, i: usize) -> Vec<&NodeRecord> {
        st.input_index[i]
            .iter()
            .map(|&j| match &st.states[j] {
                NodeState::Done(r) => &**r,
                other => unreachable!("input {j} of a ready node is {other:?}"),
            })
            .collect()
    }

    /// The key [`Self::dispatch`] computed for a node about to start.
    fn take_key(st: &mut RunState, i: usize) -> Keyed {
        st.keys[i]
            .take()
            .expect("a node that starts was keyed by dispatch")
    }

    /// Owned copies of [`Self::input_refs`], for a job that runs on another thread.
    fn input_records(st: &RunState, i: usize) -> Vec<NodeRecord> {
        Self::input_refs(st, i).into_iter().cloned().collect()
    }

    fn start(
        &mut self,
        st: &mut RunState,
        i: usize,
        slot: Option<Slot>,
        tx: &mpsc::UnboundedSender<Finished>,
    ) {
        st.states[i] = NodeState::Running;
        st.running += 1;
        let (device, threads) = match slot {
            Some(Slot::Device(s)) => (self.devices.name(s).to_owned(), self.devices.threads(s)),
            Some(Slot::Remote) => {
                tracing::debug!("`{}` goes to Slurm", self.study.nodes[i].id);
                return self.start_remote(st, i, tx);
            }
            None => ("cpu".to_owned(), 1),
        };
        tracing::debug!(
            "`{}` placed on {device} with {threads} thread{}{}",
            self.study.nodes[i].id,
            if threads == 1 { "" } else { "s" },
            if slot.is_none() { " (no slot)" } else { "" }
        );
        let inputs = Self::input_records(st, i);
        let work = worker::Work {
            study: self.study.clone(),
            node: i,
            inputs,
            keyed: Self::take_key(st, i),
            store: self.store.clone(),
            runner: self.runner.clone(),
            device,
            threads,
            run_id: st.journal.run_id.clone(),
            cancel: self.cancel.child_token(),
            events: self.events.clone(),
            lease: st.leases.remove(&i),
        };
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || {
            let started = jiff::Timestamp::now();
            let t0 = Instant::now();
            let (result, attempts) = work.run_with_retries();
            let seconds = t0.elapsed().as_secs_f64();
            let place = work.device.clone();
            // The record is committed (or the job ended without one): the lease goes first,
            // so that a driver waiting for it goes on as soon as it can.
            drop(work);
            let _ = tx.send(Finished {
                node: i,
                slot,
                result,
                started: Some(started),
                seconds,
                attempts,
                place: Some(place),
                taken: false,
            });
        });
    }

    /// Starts a node as a Slurm job (adopting one a previous driver left running).
    fn start_remote(&self, st: &mut RunState, i: usize, tx: &mpsc::UnboundedSender<Finished>) {
        let remote = st.remote.clone().expect("set when the executor is Slurm");
        let node = self.study.nodes[i].clone();
        let inputs = Self::input_refs(st, i).iter().map(|r| r.key).collect();
        let key = Self::take_key(st, i).key;
        let data_digest = self.data_digest.clone();
        let run_id = st.journal.run_id.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let started = jiff::Timestamp::now();
            let t0 = Instant::now();
            let r = slurm::run_remote(&remote, &node, key, inputs, &data_digest, &run_id).await;
            let _ = tx.send(Finished {
                node: i,
                slot: Some(Slot::Remote),
                result: r.result,
                started: Some(started),
                seconds: t0.elapsed().as_secs_f64(),
                attempts: r.attempts,
                place: Some(
                    r.job
                        .map_or_else(|| "slurm".into(), |j| format!("slurm job {j}")),
                ),
                taken: r.taken,
            });
        });
    }

    fn finish(&mut self, st: &mut RunState, opts: &Options, f: Finished) -> Result<(), StoreError> {
        st.running -= 1;
        match f.slot {
            Some(Slot::Device(s)) => self.devices.release(s),
            Some(Slot::Remote) => st.remote_running -= 1,
            None => {}
        }
        let id = self.study.nodes[f.node].id.clone();
        let mut entry = JournalEntry {
            id: id.clone(),
            outcome: Outcome::Ran,
            key: None,
            seconds: f.seconds,
            device: f.place.clone(),
            error: None,
            attempts: f.attempts,
            started: f.started,
            ended: f.started.map(|_| jiff::Timestamp::now()),
            peak_rss: None,
        };
        let (outcome, error) = match f.result {
            Ok(record) => {
                // A Slurm job's record names the worker's device: `cuda:0 (slurm job 42)`.
                if let (Some(Slot::Remote), Some(place)) = (f.slot, &f.place) {
                    entry.device = Some(format!("{} ({place})", record.device));
                }
                entry.key = Some(record.key);
                entry.peak_rss = record.peak_rss;
                // Taken from the store: the process that committed it pushes it.
                if let Some(remote) = opts.remote.as_ref().filter(|r| r.push && !f.taken) {
                    remote.push_later(&self.store, &record);
                }
                self.complete(st, f.node, record);
                let outcome = if f.taken {
                    Outcome::Cached
                } else {
                    Outcome::Ran
                };
                (outcome, None)
            }
            Err(JobError::Cancelled) => {
                st.states[f.node] = NodeState::Cancelled;
                (Outcome::Cancelled, None)
            }
            Err(e) => {
                let msg = e.to_string();
                st.states[f.node] = NodeState::Failed;
                entry.error = Some(msg.clone());
                (Outcome::Failed, Some(msg))
            }
        };
        entry.outcome = outcome;
        st.journal.entries.push(entry);
        if outcome == Outcome::Failed {
            self.skip_descendants(st, f.node);
            if opts.fail_fast {
                st.stop_scheduling = true;
                self.cancel.cancel();
            }
        }
        let _ = self.events.send(Event::NodeFinished {
            id,
            outcome,
            seconds: f.seconds,
            error,
        });
        // Keep the journal current so that a killed run still says what it finished.
        self.store.write_journal(&st.journal)
    }

    /// Marks a node done and makes its dependents ready when all their inputs are done.
    fn complete(&mut self, st: &mut RunState, i: usize, record: NodeRecord) {
        st.states[i] = NodeState::Done(Box::new(record));
        for d in self.graph.dependents(i).collect::<Vec<_>>() {
            st.pending_inputs[d] -= 1;
            if st.pending_inputs[d] == 0
                && st.selected.contains(&d)
                && st.states[d] == NodeState::Waiting
            {
                st.ready.push_back(d);
            }
        }
    }

    fn skip_descendants(&mut self, st: &mut RunState, i: usize) {
        for d in self.graph.descendants(i) {
            if st.selected.contains(&d) && st.states[d] == NodeState::Waiting {
                st.states[d] = NodeState::Skipped;
                let id = self.study.nodes[d].id.clone();
                let reason = format!("input `{}` failed", self.study.nodes[i].id);
                self.journal_entry(st, d, Outcome::Skipped, None, Some(&reason));
                let _ = self.events.send(Event::NodeFinished {
                    id,
                    outcome: Outcome::Skipped,
                    seconds: 0.0,
                    error: Some(reason),
                });
            }
        }
    }

    /// The journal line of a node that did not run here: cached, skipped or cancelled early.
    fn journal_entry(
        &self,
        st: &mut RunState,
        i: usize,
        outcome: Outcome,
        record: Option<&NodeRecord>,
        error: Option<&str>,
    ) {
        st.journal.entries.push(JournalEntry {
            id: self.study.nodes[i].id.clone(),
            outcome,
            key: record.map(|r| r.key),
            seconds: 0.0,
            device: None,
            error: error.map(str::to_owned),
            attempts: 0,
            started: None,
            ended: None,
            peak_rss: None,
        });
    }
}

/// The record of `key`, when it is committed with all its outputs.
fn committed(store: &Store, key: &NodeKey) -> Option<NodeRecord> {
    store
        .read_record(key)
        .ok()
        .flatten()
        .filter(|r| store.outputs_present(r))
}

/// Why a node that asks for a device kind the pool lacks cannot run.
fn unservable(node: &crate::manifest::NodeSpec) -> EngineError {
    EngineError::NoSuchDevice {
        node: node.id.clone(),
        device: node.device,
    }
}

#[cfg(test)]
mod tests;
