//! The content-addressed store: objects by digest, node records by key, run journals.
//!
//! Layout under the root (default `artifacts/`):
//!
//! ```text
//! format-version          the store format; a newer one than we know is refused
//! store.lock              OS lock: shared by runs, exclusive for gc and verify --repair; its text
//!                         says who took it last
//! locks/<key>.lock        OS lock per node key, held while a process computes that node (see
//!                         the `lease` module); its text says who took it last
//! objects/ab/cdef...      artifacts, named by the blake3 of their bytes, read-only
//! records/<key>.json      node records; writing one is the commit point of a node
//! heads/<hash>.json       per (study, node id): the key of the last record committed, and the
//!                         keys committed before it (newest first, at most `HEAD_HISTORY`)
//! runs/<run-id>.json      run journals
//! tmp/                    job output directories and files being written, named after their
//!                         process (`job-<node>@<pid>.<host>.*`, `.tmp@<pid>.<host>.*`)
//! slurm/                  the Slurm executor's tasks, job journals, job logs and exit files
//! ```
//!
//! Every file is written to `tmp/` and renamed into place, so a reader sees either nothing or the
//! whole file. Files get the mode a plain `File::create` would (`0666 & !umask`) and directories
//! `0777 & !umask`, so a group sharing a store (umask 022 or 002) can read each other's results;
//! objects are then made read-only. A node's objects are in place before its record is written, so a crash at any
//! point leaves no record that points at something partial; the leftovers in `tmp/` are ignored,
//! and swept by the next run when their process is gone ([`Store::sweep_dead_temporaries`]) or
//! by `gc`.

mod error;
mod lease;
mod maintenance;
mod owner;
mod record;

use std::fs::File;
use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use fs_err as fs;
use serde::{Deserialize, Serialize};

pub use self::error::StoreError;
pub use self::lease::{LeaseTry, LockMode, NodeLease, StoreLock};
pub use self::maintenance::{GcReport, VerifyReport};
pub use self::record::{JournalEntry, NodeRecord, Outcome, OutputRef, RunJournal};
use crate::digest::{Digest, NodeKey, ObjectDigest};
use crate::fault;

/// The store format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A store on disk. Cheap to clone; all methods are safe to call from several threads.
#[derive(Clone, Debug)]
pub struct Store {
    root: Utf8PathBuf,
}

/// How many earlier keys a head remembers besides its own: the records `status` may explain a
/// stale node against (an edit tried and reverted leaves the reverted key among them).
pub const HEAD_HISTORY: usize = 16;

#[derive(Serialize, Deserialize)]
struct Head {
    study: String,
    id: String,
    key: NodeKey,
    /// The keys committed before `key`, newest first (absent in heads of older builds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    previous: Vec<NodeKey>,
}

impl Store {
    /// Opens the store at `root`, creating it if needed, and checks its format version first:
    /// a store of another version is refused before anything in it is touched.
    pub fn open(root: impl Into<Utf8PathBuf>) -> Result<Self> {
        let store = Store { root: root.into() };
        let known = store.read_version()?;
        for dir in ["objects", "records", "heads", "runs", "tmp", "locks"] {
            let path = store.root.join(dir);
            fs::create_dir_all(&path).map_err(StoreError::io(path))?;
        }
        if !known {
            let version = store.version_path();
            let text = format!("{FORMAT_VERSION}\n");
            store.write_atomic_as("format-version", &version, text.as_bytes())?;
        }
        Ok(store)
    }

    /// Opens a store for reading only: nothing is created. A missing store reads as empty.
    pub fn open_read_only(root: impl Into<Utf8PathBuf>) -> Result<Self> {
        let store = Store { root: root.into() };
        store.read_version()?;
        Ok(store)
    }

    fn version_path(&self) -> Utf8PathBuf {
        self.root.join("format-version")
    }

    /// Checks the format version; `Ok(false)` when the store has none yet (a new store).
    fn read_version(&self) -> Result<bool> {
        let path = self.version_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io(path)(e)),
        };
        if text.trim() == FORMAT_VERSION.to_string() {
            Ok(true)
        } else {
            Err(StoreError::FormatVersion {
                root: self.root.clone(),
                path,
                found: text.trim().chars().take(40).collect(),
                supported: FORMAT_VERSION,
            })
        }
    }

    pub fn root(&self) -> &Utf8Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> Utf8PathBuf {
        self.root.join("tmp")
    }

    /// A fresh, empty directory under `tmp/` for a job to write its outputs into, named after
    /// this process (`job-<label>@<pid>.<host>.<random>`) so that a later run can tell whether
    /// it is a leftover.
    pub fn job_dir(&self, label: &str) -> Result<tempfile::TempDir> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(&format!("job-{label}{}", owner::tag()))
            .tempdir_in(&tmp)
            .map_err(StoreError::io(tmp))
    }

    pub fn object_path(&self, digest: &ObjectDigest) -> Utf8PathBuf {
        let hex = digest.to_hex();
        self.root.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    pub fn record_path(&self, key: &NodeKey) -> Utf8PathBuf {
        self.root.join("records").join(format!("{key}.json"))
    }

    fn head_path(&self, study: &str, id: &str) -> Utf8PathBuf {
        let name: NodeKey = Digest::of_bytes(format!("{study}\0{id}").as_bytes());
        self.root.join("heads").join(format!("{name}.json"))
    }

    /// Moves a finished file into the object store and returns its reference. The file is
    /// hashed once, here; identical content already stored is reused.
    pub fn put_file(&self, src: &Utf8Path) -> Result<OutputRef> {
        let file = fs::File::open(src).map_err(StoreError::io(src))?;
        let size = file.metadata().map_err(StoreError::io(src))?.len();
        let digest =
            ObjectDigest::of_reader(std::io::BufReader::new(file)).map_err(StoreError::io(src))?;
        let dest = self.object_path(&digest);
        if dest.exists() {
            fs::remove_file(src).map_err(StoreError::io(src))?;
        } else {
            let parent = dest.parent().expect("objects have a parent");
            fs::create_dir_all(parent).map_err(StoreError::io(parent))?;
            File::open(src)
                .and_then(|f| f.sync_all())
                .map_err(StoreError::io(src))?;
            set_read_only(src)?;
            fault::point("object", "before-rename");
            fs::rename(src, &dest).map_err(StoreError::io(&dest))?;
            fault::point("object", "before-dir-sync");
            sync_dir(parent);
        }
        Ok(OutputRef { digest, size })
    }

    /// Stores bytes as an object (used for small artifacts written by tarun itself).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<OutputRef> {
        let tmp = self.tmp_dir();
        let mut file = temp_file_in(&tmp)?;
        file.write_all(bytes).map_err(StoreError::io(&tmp))?;
        let (_, path) = file.keep().map_err(|e| StoreError::io(&tmp)(e.error))?;
        let path = Utf8PathBuf::try_from(path).expect("store paths are UTF-8");
        self.put_file(&path)
    }

    /// Whether every output of a record is present with its recorded size (a stat, no read).
    pub fn outputs_present(&self, record: &NodeRecord) -> bool {
        record.outputs.values().all(|o| {
            std::fs::metadata(self.object_path(&o.digest)).is_ok_and(|m| m.len() == o.size)
        })
    }

    /// Reads the record for `key`; `Ok(None)` when there is none.
    pub fn read_record(&self, key: &NodeKey) -> Result<Option<NodeRecord>> {
        self.read_record_at(&self.record_path(key))
            .map(|r| r.filter(|r| r.key == *key))
    }

    pub(crate) fn read_record_at(&self, path: &Utf8Path) -> Result<Option<NodeRecord>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::CorruptRecord {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Commits a node: its objects must already be in place. Writes the record, then the head,
    /// which keeps the keys committed before it (an unreadable old head is started afresh).
    pub fn commit(&self, study: &str, record: &NodeRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).expect("records serialise");
        self.write_atomic_as("record", &self.record_path(&record.key), &json)?;
        let mut previous: Vec<NodeKey> = match self.read_head(study, &record.id) {
            Ok(Some(old)) => std::iter::once(old.key).chain(old.previous).collect(),
            _ => vec![],
        };
        let mut seen = std::collections::BTreeSet::from([record.key]);
        previous.retain(|k| seen.insert(*k));
        previous.truncate(HEAD_HISTORY);
        let head = Head {
            study: study.to_owned(),
            id: record.id.clone(),
            key: record.key,
            previous,
        };
        let json = serde_json::to_vec(&head).expect("heads serialise");
        self.write_atomic_as("head", &self.head_path(study, &record.id), &json)
    }

    fn read_head(&self, study: &str, id: &str) -> Result<Option<Head>> {
        let path = self.head_path(study, id);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::CorruptRecord {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(path)(e)),
        }
    }

    /// The last record committed for a node id of a study, if any and if readable.
    pub fn head(&self, study: &str, id: &str) -> Result<Option<NodeRecord>> {
        match self.read_head(study, id)? {
            Some(head) => self.read_record(&head.key),
            None => Ok(None),
        }
    }

    /// The records committed for a node id of a study, newest first: the head's and the
    /// [`HEAD_HISTORY`] before it that are still in the store (`gc` may have removed some).
    pub fn history(&self, study: &str, id: &str) -> Result<Vec<NodeRecord>> {
        let Some(head) = self.read_head(study, id)? else {
            return Ok(vec![]);
        };
        let mut out: Vec<NodeRecord> = self.read_record(&head.key)?.into_iter().collect();
        for key in head.previous {
            // An older record that cannot be read is only one candidate fewer.
            match self.read_record(&key) {
                Ok(rec) => out.extend(rec),
                Err(e) => tracing::warn!("skipping an earlier record of `{id}`: {e}"),
            }
        }
        Ok(out)
    }

    pub fn write_journal(&self, journal: &RunJournal) -> Result<()> {
        let path = self
            .root
            .join("runs")
            .join(format!("{}.json", journal.run_id));
        let json = serde_json::to_vec_pretty(journal).expect("journals serialise");
        self.write_atomic_as("journal", &path, &json)
    }

    /// Every readable journal, oldest first. Unreadable ones are skipped with a warning.
    pub fn journals(&self) -> Result<Vec<RunJournal>> {
        let dir = self.root.join("runs");
        let mut out = Vec::new();
        for path in list_files(&dir)? {
            match fs::read(&path).map(|b| serde_json::from_slice::<RunJournal>(&b)) {
                Ok(Ok(j)) => out.push(j),
                _ => tracing::warn!("skipping unreadable run journal `{path}`"),
            }
        }
        out.sort_by(|a, b| a.started.cmp(&b.started).then(a.run_id.cmp(&b.run_id)));
        Ok(out)
    }

    /// Writes `bytes` to `dest` atomically: a temporary file in `tmp/`, synced, then renamed.
    pub fn write_atomic(&self, dest: &Utf8Path, bytes: &[u8]) -> Result<()> {
        self.write_atomic_as("file", dest, bytes)
    }

    /// [`Store::write_atomic`], with the fault points `<what>-half-written`,
    /// `<what>-before-rename` and `<what>-before-dir-sync` (see [`crate::fault`]).
    fn write_atomic_as(&self, what: &str, dest: &Utf8Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp_dir();
        let mut file = temp_file_in(&tmp)?;
        if fault::reached(what, "half-written") {
            let _ = file.write_all(&bytes[..bytes.len() / 2]);
            let _ = file.as_file().sync_all();
            fault::crash();
        }
        file.write_all(bytes).map_err(StoreError::io(dest))?;
        file.as_file().sync_all().map_err(StoreError::io(dest))?;
        fault::point(what, "before-rename");
        file.persist(dest)
            .map_err(|e| StoreError::io(dest)(e.error))?;
        fault::point(what, "before-dir-sync");
        if let Some(parent) = dest.parent() {
            sync_dir(parent);
        }
        Ok(())
    }
}

/// The plain files directly under `dir` (sorted), or under its two-level fan-out for objects.
pub(crate) fn list_files(dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StoreError::io(dir))?;
        if let Ok(path) = Utf8PathBuf::try_from(entry.path())
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// A new temporary file in `dir` with the mode `File::create` would give it: `0666 & !umask`,
/// named after this process (`.tmp@<pid>.<host>.<random>`, see [`owner`]).
///
/// `tempfile` creates its files `0600` unless told otherwise, which would keep every record,
/// head, journal and report from the rest of a group sharing the store. Asking `open(2)` for
/// `0666` lets the kernel apply the umask (or the directory's default ACL) exactly as it does for
/// any other file, so the umask is never read, let alone changed under other threads.
fn temp_file_in(dir: &Utf8Path) -> Result<tempfile::NamedTempFile> {
    let prefix = format!(".tmp{}", owner::tag());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir).map_err(StoreError::io(dir))
}

fn set_read_only(path: &Utf8Path) -> Result<()> {
    let mut perms = fs::metadata(path)
        .map_err(StoreError::io(path))?
        .permissions();
    perms.set_readonly(true);
    fs::set_permissions(path, perms).map_err(StoreError::io(path))
}

/// Makes a rename durable. Best effort: not every filesystem supports syncing directories.
fn sync_dir(dir: &Utf8Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests;
