//! `verify` and `gc`: the store's housekeeping.

use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};
use fs_err as fs;

use super::{Result, Store, StoreError, list_files, owner, sync_dir};
use crate::digest::{NodeKey, ObjectDigest};
use crate::fault;

/// What `tarun verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub objects_checked: usize,
    pub records_checked: usize,
    /// Objects whose bytes no longer hash to their name.
    pub corrupt_objects: Vec<StoreError>,
    /// Records that cannot be read, and records that point at a missing or wrong-sized object.
    pub bad_records: Vec<StoreError>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt_objects.is_empty() && self.bad_records.is_empty()
    }
}

/// What `tarun gc` removed (or would remove, in a dry run).
#[derive(Debug, Default)]
pub struct GcReport {
    pub records: Vec<Utf8PathBuf>,
    pub objects: Vec<Utf8PathBuf>,
    pub temporaries: Vec<Utf8PathBuf>,
    /// Lease files of `locks/` no process held (they are a few bytes each).
    pub locks: Vec<Utf8PathBuf>,
    pub bytes: u64,
}

impl Store {
    /// Every object path in the store.
    pub(crate) fn object_files(&self) -> Result<Vec<Utf8PathBuf>> {
        let mut out = Vec::new();
        let root = self.root.join("objects");
        let fans = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io(root)(e)),
        };
        for fan in fans {
            let fan = fan.map_err(StoreError::io(&root))?;
            if let Ok(dir) = Utf8PathBuf::try_from(fan.path())
                && dir.is_dir()
            {
                out.extend(list_files(&dir)?);
            }
        }
        out.sort();
        Ok(out)
    }

    fn digest_of_object_path(&self, path: &Utf8PathBuf) -> Option<ObjectDigest> {
        let fan = path.parent()?.file_name()?;
        format!("{fan}{}", path.file_name()?).parse().ok()
    }

    /// Re-hashes one object. A corrupt one is moved to `quarantine/` (so that the records
    /// pointing at it stop counting as fresh and their nodes recompute) and reported.
    pub fn check_object(&self, digest: &ObjectDigest) -> Result<()> {
        let path = self.object_path(digest);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::MissingObject { path });
            }
            Err(e) => return Err(StoreError::io(&path)(e)),
        };
        let found = ObjectDigest::of_reader(std::io::BufReader::new(file))
            .map_err(StoreError::io(&path))?;
        if found == *digest {
            return Ok(());
        }
        self.quarantine(&path)?;
        Err(StoreError::CorruptObject {
            path,
            expected: digest.to_hex(),
            found: found.to_hex(),
        })
    }

    /// Moves a damaged file out of the way, keeping it for inspection under `quarantine/`.
    pub fn quarantine(&self, path: &Utf8Path) -> Result<Utf8PathBuf> {
        let dir = self.root.join("quarantine");
        fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        let name = path
            .strip_prefix(&self.root)
            .unwrap_or(path)
            .as_str()
            .replace('/', "_");
        let dest = dir.join(name);
        fs::rename(path, &dest).map_err(StoreError::io(path))?;
        Ok(dest)
    }

    /// Re-hashes every object and re-reads every record.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for path in self.object_files()? {
            report.objects_checked += 1;
            let Some(expected) = self.digest_of_object_path(&path) else {
                report.corrupt_objects.push(StoreError::CorruptObject {
                    path: path.clone(),
                    expected: "a blake3 digest as the file name".into(),
                    found: "a stray file".into(),
                });
                continue;
            };
            let file = fs::File::open(&path).map_err(StoreError::io(&path))?;
            let found = ObjectDigest::of_reader(std::io::BufReader::new(file))
                .map_err(StoreError::io(&path))?;
            if found != expected {
                report.corrupt_objects.push(StoreError::CorruptObject {
                    path,
                    expected: expected.to_hex(),
                    found: found.to_hex(),
                });
            }
        }
        for path in list_files(&self.root.join("records"))? {
            report.records_checked += 1;
            match self.read_record_at(&path) {
                Err(e) => report.bad_records.push(e),
                Ok(None) => {}
                Ok(Some(record)) => {
                    for output in record.outputs.values() {
                        let object = self.object_path(&output.digest);
                        let ok = std::fs::metadata(&object).is_ok_and(|m| m.len() == output.size);
                        if !ok {
                            report
                                .bad_records
                                .push(StoreError::MissingObject { path: object });
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// Removes the entries of `tmp/` whose process is gone: job directories and half-written
    /// files of a run that was killed (SIGKILL, or a second Ctrl-C) or crashed. Only entries
    /// named after a process of this host and pid namespace are judged, by whether that pid
    /// still exists; those of live processes, of other hosts (Slurm jobs write here too) and
    /// without an owner in their name (an older tarun's) are left alone, for `gc`. Removal is
    /// best effort. Returns what was removed.
    pub fn sweep_dead_temporaries(&self) -> Result<Vec<Utf8PathBuf>> {
        let tmp = self.tmp_dir();
        let entries = match fs::read_dir(&tmp) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(StoreError::io(tmp)(e)),
        };
        let mut removed = vec![];
        for entry in entries.flatten() {
            let Ok(path) = Utf8PathBuf::try_from(entry.path()) else {
                continue;
            };
            let name = path.file_name().unwrap_or_default();
            let Some((pid, place)) = owner::parse(name) else {
                continue;
            };
            if place != owner::place() || owner::alive(pid) {
                continue;
            }
            let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if gone.is_ok() {
                removed.push(path);
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Removes every record whose key is not in `keep`, every object no kept record points at,
    /// leftovers in `tmp/` and the lease files of `locks/` no one holds. Call it while holding
    /// the store lock exclusively ([`super::LockMode::Exclusive`]): no run is writing then.
    pub fn gc(&self, keep: &BTreeSet<NodeKey>, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut live = BTreeSet::new();
        for path in list_files(&self.root.join("records"))? {
            let record = self.read_record_at(&path).ok().flatten();
            match record {
                Some(r) if keep.contains(&r.key) => {
                    live.extend(r.outputs.values().map(|o| o.digest));
                }
                _ => report.records.push(path),
            }
        }
        for path in self.object_files()? {
            let keep_it = self
                .digest_of_object_path(&path)
                .is_some_and(|d| live.contains(&d));
            if !keep_it {
                report.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                report.objects.push(path);
            }
        }
        let tmp = self.tmp_dir();
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                if let Ok(path) = Utf8PathBuf::try_from(entry.path()) {
                    report.temporaries.push(path);
                }
            }
        }
        if dry_run {
            report.locks = self.remove_free_leases(true)?;
        } else {
            // Records first, and durably so, before any object: a crash part-way leaves
            // objects without records (swept next time), never a record without its objects.
            // No object a kept record points at is on the list at all.
            for path in &report.records {
                fs::remove_file(path).map_err(StoreError::io(path))?;
                fault::point("gc", "after-record");
            }
            sync_dir(&self.root.join("records"));
            for path in &report.objects {
                fs::remove_file(path).map_err(StoreError::io(path))?;
                fault::point("gc", "after-object");
            }
            fault::point("gc", "before-tmp-sweep");
            report.locks = self.remove_free_leases(false)?;
            for path in &report.temporaries {
                let _ = if path.is_dir() {
                    fs::remove_dir_all(path)
                } else {
                    fs::remove_file(path)
                };
            }
        }
        Ok(report)
    }
}
