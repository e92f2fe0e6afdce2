//! What the Slurm executor keeps in the store, under `slurm/`:
//!
//! ```text
//! studies/<hash>.json   the resolved study a driver submitted from (content-addressed)
//! tasks/<key>.json      what `tarun exec-node <key>` computes: node, input keys, data digest
//! jobs/<key>.json       the job journal: every job submitted for the key, oldest first
//! logs/<key>.<job>.log  a job's stdout and stderr
//! exits/<job>.json      how `exec-node` ended (absent when it was killed)
//! ```
//!
//! Every file is written atomically through the store (temporary file, rename), so a reader on
//! another host sees all of a file or none of it.

use camino::Utf8PathBuf;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::digest::{DataDigest, Key, NodeKey, digest_json};
use crate::manifest::Study;
use crate::store::Store;

/// One node's work, as the driver hands it to a job.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Task {
    pub key: NodeKey,
    pub node: String,
    /// The hash naming `studies/<hash>.json`.
    pub study: String,
    /// The keys of the input records, in the order of the node's `inputs`.
    pub inputs: Vec<NodeKey>,
    pub data_digest: DataDigest,
    pub run_id: String,
    pub attempt: u32,
    /// GPUs the job was given (then it computes on the first one).
    pub gpus: u32,
}

/// One submitted job.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Submission {
    pub job: String,
    pub attempt: u32,
    pub run_id: String,
    pub submitted: jiff::Timestamp,
}

/// Every job submitted for one key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobJournal {
    pub node: String,
    pub jobs: Vec<Submission>,
}

/// How `exec-node` ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Exit {
    pub key: NodeKey,
    pub ok: bool,
    pub error: Option<String>,
}

/// The paths of `slurm/` in a store.
#[derive(Clone, Debug)]
pub struct Files {
    store: Store,
    root: Utf8PathBuf,
}

impl Files {
    pub fn new(store: &Store) -> Self {
        Files {
            store: store.clone(),
            root: store.root().join("slurm"),
        }
    }

    /// Creates the directories (the driver does, before it submits).
    pub fn create(&self) -> Result<(), String> {
        for dir in ["studies", "tasks", "jobs", "logs", "exits"] {
            let path = self.root.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| format!("creating `{path}`: {e}"))?;
        }
        Ok(())
    }

    pub fn study_path(&self, hash: &str) -> Utf8PathBuf {
        self.root.join("studies").join(format!("{hash}.json"))
    }

    pub fn task_path(&self, key: &NodeKey) -> Utf8PathBuf {
        self.root.join("tasks").join(format!("{key}.json"))
    }

    pub fn jobs_path(&self, key: &NodeKey) -> Utf8PathBuf {
        self.root.join("jobs").join(format!("{key}.json"))
    }

    /// The `--output` pattern of a job (`%j` is the job id).
    pub fn log_pattern(&self, key: &NodeKey) -> Utf8PathBuf {
        self.root.join("logs").join(format!("{key}.%j.log"))
    }

    pub fn log_path(&self, key: &NodeKey, job: &str) -> Utf8PathBuf {
        self.root.join("logs").join(format!("{key}.{job}.log"))
    }

    pub fn exit_path(&self, job: &str) -> Utf8PathBuf {
        self.root.join("exits").join(format!("{job}.json"))
    }

    /// Writes the study snapshot (once per content) and returns its hash.
    pub fn write_study(&self, study: &Study) -> Result<String, String> {
        let hash = digest_json::<Key, _>(study).to_hex();
        let path = self.study_path(&hash);
        if !path.exists() {
            self.write(&path, study)?;
        }
        Ok(hash)
    }

    pub fn write<T: Serialize>(&self, path: &Utf8PathBuf, value: &T) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(value).expect("plain data serialises");
        self.store
            .write_atomic(path, &json)
            .map_err(|e| e.to_string())
    }

    /// Reads a JSON file; `Ok(None)` when it does not exist.
    pub fn read<T: DeserializeOwned>(&self, path: &Utf8PathBuf) -> Result<Option<T>, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("`{path}` is unreadable: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading `{path}`: {e}")),
        }
    }

    /// The last `progress DONE/TOTAL MESSAGE` line `exec-node` wrote to the job's log (it reads
    /// only the log's last 8 KiB).
    pub fn last_progress(&self, key: &NodeKey, job: &str) -> Option<(u64, u64, String)> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(self.log_path(key, job)).ok()?;
        let len = file.metadata().ok()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(8192))).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        text.lines().rev().find_map(parse_progress)
    }

    /// The last `lines` lines of a job's log, for error messages.
    pub fn log_tail(&self, key: &NodeKey, job: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(key, job)).unwrap_or_default();
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join(" | ")
    }
}

impl Files {
    /// The last job of every key that has neither a record nor an exit file: a job that may
    /// still be queued or running (or was killed without a word). `(node id, job id)`.
    pub fn unfinished(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for path in files_in(&self.root.join("jobs")) {
            let Some(key) = key_of(&path) else { continue };
            let Ok(Some(journal)) = self.read::<JobJournal>(&path) else {
                continue;
            };
            let Some(last) = journal.jobs.last() else {
                continue;
            };
            let recorded = self.store.read_record(&key).ok().flatten().is_some();
            if !recorded && !self.exit_path(&last.job).exists() {
                out.push((journal.node.clone(), last.job.clone()));
            }
        }
        out
    }

    /// The files of keys not in `keep` (tasks, job journals, logs, exit files) and the study
    /// snapshots no remaining task names: what `gc` removes from `slurm/`.
    pub fn unreferenced(&self, keep: &std::collections::BTreeSet<NodeKey>) -> Vec<Utf8PathBuf> {
        let kept = |k: Option<NodeKey>| k.is_some_and(|k| keep.contains(&k));
        let mut out = Vec::new();
        let mut studies = std::collections::BTreeSet::new();
        for path in files_in(&self.root.join("tasks")) {
            if kept(key_of(&path)) {
                if let Ok(Some(task)) = self.read::<Task>(&path) {
                    studies.insert(task.study);
                }
            } else {
                out.push(path);
            }
        }
        for dir in ["jobs", "logs"] {
            let gone = files_in(&self.root.join(dir)).into_iter();
            out.extend(gone.filter(|p| !kept(key_of(p))));
        }
        for path in files_in(&self.root.join("exits")) {
            let exit = self.read::<Exit>(&path).ok().flatten();
            if !kept(exit.map(|e| e.key)) {
                out.push(path);
            }
        }
        for path in files_in(&self.root.join("studies")) {
            if !path.file_stem().is_some_and(|s| studies.contains(s)) {
                out.push(path);
            }
        }
        out
    }
}

/// `progress 12/40 loss 1.93` -> `(12, 40, "loss 1.93")`: the line `exec-node` prints.
pub fn parse_progress(line: &str) -> Option<(u64, u64, String)> {
    let rest = line.strip_prefix("progress ")?;
    let (counts, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let (done, total) = counts.split_once('/')?;
    Some((done.parse().ok()?, total.parse().ok()?, message.to_owned()))
}

fn files_in(dir: &camino::Utf8Path) -> Vec<Utf8PathBuf> {
    crate::store::list_files(dir).unwrap_or_default()
}

/// The key a `slurm/` file is named after (`<key>.json`, `<key>.<job>.log`).
fn key_of(path: &camino::Utf8Path) -> Option<NodeKey> {
    path.file_name()?.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_lines_parse_as_exec_node_prints_them() {
        assert_eq!(
            super::parse_progress("progress 12/40 loss 1.93"),
            Some((12, 40, "loss 1.93".to_owned()))
        );
        assert_eq!(
            super::parse_progress("progress 3/3"),
            Some((3, 3, String::new()))
        );
        assert_eq!(super::parse_progress("progress x/3 y"), None);
        assert_eq!(super::parse_progress("running `a` on cpu"), None);
    }
}
