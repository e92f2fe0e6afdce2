//! Locks: the store-wide lock (shared by runs, exclusive for `gc` and `verify --repair`) and a
//! lease per node key, so that several drivers on one store compute each node once and run
//! their other nodes at the same time.
//!
//! Both are OS file locks (`flock`): the kernel drops them when their process ends however it
//! ends, so a lease of a killed run is free by construction and the next taker needs no
//! judgement of pids. The text in a lock file only says who took it last, for a waiter's
//! message. Lease files (`locks/<key>.lock`) stay after release: removing a file others may
//! have opened and be waiting on would let two processes hold "the" lease (one on the removed
//! file, one on a new one). `gc`, which runs while no run holds the store lock, removes them.
//!
//! On a network filesystem the locks are as good as its `flock`: NFSv4 and Linux clients
//! emulate it with byte-range locks that work across hosts; Lustre needs the `flock` mount
//! option; BeeGFS and GPFS support it.

use std::fs::File;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use fs_err as fs;

use super::{Result, Store, StoreError, owner};
use crate::digest::NodeKey;

/// How a store-wide lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Runs (and nothing else) at the same time: they coordinate per node through leases.
    Shared,
    /// `gc` and `verify --repair`, which remove or move what runs may be reading or writing.
    Exclusive,
}

impl LockMode {
    fn as_str(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        }
    }
}

/// Held while a command uses the store; dropping it releases the OS lock.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// The right to compute one node key; dropping it releases the OS lock.
#[derive(Debug)]
pub struct NodeLease {
    _file: File,
}

/// What [`Store::try_lease`] found.
#[derive(Debug)]
pub enum LeaseTry {
    Held(NodeLease),
    /// Another process holds it; its description (`run R pid P on host H`), if it wrote one.
    Busy(String),
}

/// The longest pause between two tries of a busy lease.
const MAX_POLL: Duration = Duration::from_millis(500);

impl Store {
    /// Takes the store-wide lock, waiting while another command holds it in a conflicting mode
    /// (a run waits for `gc`, `gc` for every run). `on_wait` is called once, with the last
    /// taker's description, before waiting.
    pub fn lock(
        &self,
        mode: LockMode,
        holder: &str,
        on_wait: impl FnOnce(&str),
    ) -> Result<StoreLock> {
        let path = self.root.join("store.lock");
        let mut file = open_lock_file(&path)?;
        let taken = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match taken {
            Ok(()) => tracing::debug!("store lock `{path}` taken at once ({})", mode.as_str()),
            Err(std::fs::TryLockError::WouldBlock) => {
                let who = read_holder(&mut file);
                on_wait(&who);
                let t0 = Instant::now();
                match mode {
                    LockMode::Shared => file.lock_shared(),
                    LockMode::Exclusive => file.lock(),
                }
                .map_err(StoreError::io(&path))?;
                tracing::debug!(
                    "store lock `{path}` taken after waiting {:.1} s for {who} ({})",
                    t0.elapsed().as_secs_f64(),
                    mode.as_str()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path)(e)),
        }
        // Say who took the lock last, for whoever waits next. The lock itself is what matters.
        write_holder(&mut file, holder);
        Ok(StoreLock { _file: file })
    }

    fn lease_path(&self, key: &NodeKey) -> Utf8PathBuf {
        self.root.join("locks").join(format!("{key}.lock"))
    }

    /// Tries to take the lease of `key` without waiting. `who` names the taker (`run R`); the
    /// pid and host are added.
    pub fn try_lease(&self, key: &NodeKey, who: &str) -> Result<LeaseTry> {
        let path = self.lease_path(key);
        let mut file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {
                write_holder(&mut file, &describe(who));
                Ok(LeaseTry::Held(NodeLease { _file: file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(LeaseTry::Busy(read_holder(&mut file))),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io(&path)(e)),
        }
    }

    /// Takes the lease of `key`, waiting while another process holds it. The wait polls (every
    /// 20 ms at first, then every half second) so that `cancelled` is heard; `Ok(None)` when it
    /// was. `on_wait` is called once, with the holder's description, before waiting.
    pub fn lease(
        &self,
        key: &NodeKey,
        who: &str,
        cancelled: impl Fn() -> bool,
        on_wait: impl FnOnce(&str),
    ) -> Result<Option<NodeLease>> {
        let mut pause = Duration::from_millis(20);
        let mut on_wait = Some(on_wait);
        loop {
            match self.try_lease(key, who)? {
                LeaseTry::Held(lease) => return Ok(Some(lease)),
                LeaseTry::Busy(holder) => {
                    if let Some(f) = on_wait.take() {
                        f(&holder);
                    }
                }
            }
            if cancelled() {
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Removes the lease files no process holds. For `gc`, under the exclusive store lock:
    /// then no run can be waiting on one of them.
    pub(super) fn remove_free_leases(&self, dry_run: bool) -> Result<Vec<Utf8PathBuf>> {
        let mut removed = vec![];
        for path in super::list_files(&self.root.join("locks"))? {
            let Ok(file) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
            else {
                continue;
            };
            if file.try_lock().is_err() {
                continue;
            }
            if dry_run || std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
        Ok(removed)
    }
}

/// `who pid P on host H`.
fn describe(who: &str) -> String {
    format!("{who} pid {} on host {}", std::process::id(), owner::host())
}

fn open_lock_file(path: &camino::Utf8Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(StoreError::io(parent))?;
    }
    Ok(fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(StoreError::io(path))?
        .into_parts()
        .0)
}

fn read_holder(file: &mut File) -> String {
    let mut who = String::new();
    let _ = file.read_to_string(&mut who);
    let who = who.trim();
    if who.is_empty() {
        "another process".to_owned()
    } else {
        who.to_owned()
    }
}

fn write_holder(file: &mut File, holder: &str) {
    use std::io::{Seek, SeekFrom};
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.write_all(holder.as_bytes());
    let _ = file.flush();
}
