//! Before a node computes: its record in this store, then on the remote cache (looked up on the
//! blocking pool, [`REMOTE_LOOKUPS`] at once), then its lease, waited for on a thread of its own
//! when another process holds it. Each path ends with the node cached or queued to compute.

use super::*;

/// What a thread waiting for a node's lease sends back to the loop.
pub(super) enum LeaseNews {
    /// The lease is this run's now, and no record was committed meanwhile (or `--force`).
    /// `None`: the lease could not be taken (an unwritable `locks/`); the node computes
    /// unprotected, as it would have before leases.
    Taken(usize, Option<NodeLease>),
    /// The holder committed the node: it is cached for this run.
    Committed(usize, Box<NodeRecord>),
    /// The run was cancelled while waiting.
    Cancelled,
}

/// What taking a node's lease found.
pub(super) enum Claim {
    Leased(NodeLease),
    /// Another driver committed the node after this run's lookup missed.
    Committed(Box<NodeRecord>),
    /// Another process holds the lease; its description.
    Busy(String),
    /// The lease could not be taken: computed without it.
    Unprotected,
}

/// How many remote lookups run at once: enough to overlap their round trips, few enough that a
/// study of thousands of nodes does not open thousands of connections and threads at once.
pub(super) const REMOTE_LOOKUPS: usize = 8;

/// What a remote lookup of a node that missed here found.
pub(super) struct Looked {
    node: usize,
    /// The record, committed to this store with its objects; `None`: a miss.
    record: Option<Box<NodeRecord>>,
}

impl Engine {
    /// The committed record of node `i`'s key in this store, when all its outputs are there.
    pub(super) fn local_record(&self, i: usize, key: &NodeKey) -> Option<NodeRecord> {
        let id = &self.study.nodes[i].id;
        match self.store.read_record(key) {
            Ok(Some(r)) if self.store.outputs_present(&r) => Some(r),
            Ok(Some(_)) => {
                tracing::debug!("miss: `{id}` has a record but not all its outputs");
                None
            }
            Ok(None) => {
                tracing::debug!("miss: no record of `{id}` under its key");
                None
            }
            Err(e) => {
                tracing::warn!("ignoring unreadable record for `{id}`: {e}");
                None
            }
        }
    }

    /// Looks node `i` up on the remote cache after it missed here. The lookup (a record read,
    /// then the download of its objects on a hit) runs on a blocking thread, at most
    /// [`REMOTE_LOOKUPS`] at once, while the loop goes on: a study with many missing nodes
    /// pays for their round trips side by side, not one after another. The loop hears the
    /// answer through [`Looked`].
    pub(super) fn look_up_remote(
        &self,
        st: &mut RunState,
        i: usize,
        key: NodeKey,
        remote: Arc<crate::remote::RemoteCache>,
    ) {
        st.lookups += 1;
        let store = self.store.clone();
        let study = self.study.name.clone();
        let id = self.study.nodes[i].id.clone();
        let permits = st.lookup_permits.clone();
        let tx = st.lookup_tx.clone().expect("set by run");
        tokio::spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let fetched = tokio::task::spawn_blocking({
                let id = id.clone();
                move || remote.fetch(&store, &study, &id, &key)
            })
            .await;
            let record = match fetched {
                Ok(crate::remote::Fetched::Hit(record)) => Some(record),
                Ok(crate::remote::Fetched::Miss) => None,
                Err(e) => {
                    tracing::warn!("looking up `{id}` on the remote failed: {e}");
                    None
                }
            };
            let _ = tx.send(Looked { node: i, record });
        });
    }

    /// What a remote lookup found: the node is cached (its record and objects are now in this
    /// store), or it computes.
    pub(super) fn looked(
        &mut self,
        st: &mut RunState,
        opts: &Options,
        looked: Looked,
        tx: &mpsc::UnboundedSender<Finished>,
    ) {
        st.lookups -= 1;
        let i = looked.node;
        match looked.record {
            Some(record) => {
                tracing::debug!("hit: `{}` pulled from the remote", self.study.nodes[i].id);
                self.cached(st, i, *record, Some("remote"));
            }
            // A node left waiting when the run stops is journalled as cancelled at the end.
            None if st.stop_scheduling => {}
            None => self.compute(st, opts, i, tx),
        }
    }

    /// Sends a node that missed every cache on to compute: its lease first (waiting for it
    /// when another process holds it), then a device slot.
    pub(super) fn compute(
        &mut self,
        st: &mut RunState,
        opts: &Options,
        i: usize,
        tx: &mpsc::UnboundedSender<Finished>,
    ) {
        let node = &self.study.nodes[i];
        let key = st.keys[i].as_ref().expect("keyed by dispatch").key;
        let forced = opts.force.contains(&i);
        let local = matches!(self.executor, Executor::Local);
        let needs_device = self.runner.needs_device(node);
        if local && needs_device && !self.devices.can_serve(node.device) {
            return self.fail_at_once(st, i, tx, unservable(node));
        }
        // A Slurm job takes its lease itself, on its host.
        if local || !needs_device {
            match self.claim(st, i, key, forced) {
                Claim::Leased(lease) => {
                    st.leases.insert(i, lease);
                }
                Claim::Unprotected => {}
                Claim::Committed(record) => return self.cached_elsewhere(st, i, *record),
                Claim::Busy(holder) => return self.wait_for_lease(st, i, key, &holder, forced),
            }
        }
        self.enqueue(st, i, tx);
    }

    /// The description a lease of this run says it is held by.
    pub(super) fn lease_holder(st: &RunState) -> String {
        format!("run {}", st.journal.run_id)
    }

    /// Takes the lease of node `i`'s key without waiting; once taken, looks the record up again,
    /// for another driver may have committed it since this run's lookup.
    pub(super) fn claim(&self, st: &RunState, i: usize, key: NodeKey, force: bool) -> Claim {
        let id = &self.study.nodes[i].id;
        match self.store.try_lease(&key, &Self::lease_holder(st)) {
            Ok(LeaseTry::Held(lease)) => match committed(&self.store, &key) {
                Some(record) if !force => Claim::Committed(Box::new(record)),
                _ => Claim::Leased(lease),
            },
            Ok(LeaseTry::Busy(holder)) => Claim::Busy(holder),
            Err(e) => {
                tracing::warn!("computing `{id}` without its lease: {e}");
                Claim::Unprotected
            }
        }
    }

    /// Waits for node `i`'s lease on a blocking thread, holding no slot; the loop hears how
    /// it ended through [`LeaseNews`].
    pub(super) fn wait_for_lease(
        &self,
        st: &mut RunState,
        i: usize,
        key: NodeKey,
        holder: &str,
        force: bool,
    ) {
        let id = self.study.nodes[i].id.clone();
        tracing::debug!("waiting for `{id}` (key {key}), computed by {holder}");
        st.lease_waits += 1;
        let store = self.store.clone();
        let cancel = self.cancel.clone();
        let who = Self::lease_holder(st);
        let tx = st.lease_tx.clone().expect("set by run");
        tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let news = match store.lease(&key, &who, || cancel.is_cancelled(), |_| {}) {
                Ok(None) => LeaseNews::Cancelled,
                Ok(Some(lease)) => {
                    tracing::debug!(
                        "lease of `{id}` taken after waiting {:.1} s",
                        t0.elapsed().as_secs_f64()
                    );
                    match committed(&store, &key) {
                        Some(record) if !force => LeaseNews::Committed(i, Box::new(record)),
                        _ => LeaseNews::Taken(i, Some(lease)),
                    }
                }
                Err(e) => {
                    tracing::warn!("computing `{id}` without its lease: {e}");
                    LeaseNews::Taken(i, None)
                }
            };
            let _ = tx.send(news);
        });
    }

    /// What a lease wait ended with.
    pub(super) fn lease_news(
        &mut self,
        st: &mut RunState,
        news: LeaseNews,
        tx: &mpsc::UnboundedSender<Finished>,
    ) {
        st.lease_waits -= 1;
        match news {
            // A node left waiting when the run stops is journalled as cancelled at the end.
            LeaseNews::Cancelled => {}
            LeaseNews::Taken(_, _) if st.stop_scheduling => {}
            LeaseNews::Taken(i, lease) => {
                if let Some(lease) = lease {
                    st.leases.insert(i, lease);
                }
                self.enqueue(st, i, tx);
            }
            LeaseNews::Committed(i, record) => self.cached_elsewhere(st, i, *record),
        }
    }

    /// A node another process committed while this run looked: cached, as a lookup would say.
    pub(super) fn cached_elsewhere(&mut self, st: &mut RunState, i: usize, record: NodeRecord) {
        tracing::debug!(
            "hit: `{}` was committed by another run",
            self.study.nodes[i].id
        );
        self.cached(st, i, record, None);
    }

    /// A node whose record was found: journalled as cached (with `device` `remote` when it was
    /// pulled from there), and done.
    pub(super) fn cached(
        &mut self,
        st: &mut RunState,
        i: usize,
        record: NodeRecord,
        device: Option<&str>,
    ) {
        st.keys[i] = None;
        let _ = self.events.send(Event::NodeCached {
            id: self.study.nodes[i].id.clone(),
        });
        self.journal_entry(st, i, Outcome::Cached, Some(&record), None);
        if let Some(device) = device
            && let Some(entry) = st.journal.entries.last_mut()
        {
            entry.device = Some(device.into());
        }
        self.complete(st, i, record);
    }
}
