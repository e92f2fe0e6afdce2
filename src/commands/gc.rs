//! `tarun gc`: keep what the given manifests' current nodes need, remove the rest.

use std::collections::BTreeSet;
use std::process::ExitCode;

use tarun_core::engine::slurm::{Files, job_states};
use tarun_core::graph::Graph;
use tarun_core::plan;
use tarun_core::store::{LockMode, Store};

use super::{Result, lock_store};
use crate::cli::GcArgs;
use crate::errors::ExpectedError;
use crate::kinds;
use crate::output::outln;

pub fn gc(args: GcArgs) -> Result<ExitCode> {
    let store = Store::open(args.store.store)?;
    // Exclusive: gc deletes, so it waits for every run using the store, and runs wait for it.
    let holder = format!("tarun gc (pid {})", std::process::id());
    let _lock = lock_store(&store, LockMode::Exclusive, &holder)?;
    let runner = kinds::StudyRunner;
    let mut keep = BTreeSet::new();
    for manifest in &args.manifests {
        let study = tarun_core::manifest::load(manifest, &[])?;
        let graph = Graph::new(&study);
        let data = kinds::data_digest(&study, &store)?;
        for s in plan::status(&study, &graph, &store, &runner, &data, &BTreeSet::new())? {
            // A stale node's last record is kept too: it is what `status` explains against.
            if let Some(head) = store.head(&study.name, &s.id)? {
                keep.insert(head.key);
            }
            // And the earlier record its causes were computed against, when that is another.
            keep.extend(s.compared.as_ref().map(|r| r.key));
            keep.extend(s.key);
        }
    }
    let slurm = Files::new(&store);
    refuse_while_jobs_may_run(&slurm.unfinished())?;
    let report = store.gc(&keep, args.dry_run)?;
    let slurm_files = slurm.unreferenced(&keep);
    if !args.dry_run {
        for path in &slurm_files {
            let _ = std::fs::remove_file(path);
        }
    }
    if args.json {
        let paths = |list: &[camino::Utf8PathBuf]| -> Vec<String> {
            list.iter().map(ToString::to_string).collect()
        };
        let doc = serde_json::json!({
            "dry-run": args.dry_run,
            "records": paths(&report.records),
            "objects": paths(&report.objects),
            "object-bytes": report.bytes,
            "temporaries": paths(&report.temporaries),
            "lease-files": paths(&report.locks),
            "slurm-files": paths(&slurm_files),
            // The keys kept that have a record here (the others' nodes were never run).
            "kept-records": keep
                .iter()
                .filter(|k| store.read_record(k).is_ok_and(|r| r.is_some()))
                .count(),
        });
        outln!("{}", serde_json::to_string_pretty(&doc).expect("json"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    // The listing comes after the work, so a reader that stops early (`| head`) cuts only it.
    for path in report.records.iter().chain(&report.objects) {
        outln!("{verb} {path}")?;
    }
    outln!(
        "{verb} {} records, {} objects ({:.1} MB), {} temporary files, {} lease files no \
         process held and {} Slurm task, job and log files; kept {} records",
        report.records.len(),
        report.objects.len(),
        report.bytes as f64 / 1e6,
        report.temporaries.len(),
        report.locks.len(),
        slurm_files.len(),
        keep.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A Slurm job of a killed driver may still be writing into `tmp/` and `objects/`: `gc` would
/// delete what it writes. Refuses while any such job is queued or running, or when Slurm cannot
/// say.
fn refuse_while_jobs_may_run(unfinished: &[(String, String)]) -> Result<()> {
    if unfinished.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = unfinished.iter().map(|(_, job)| job.clone()).collect();
    let name = |jobs: &[&(String, String)]| {
        let list: Vec<String> = jobs
            .iter()
            .take(3)
            .map(|(node, job)| format!("job {job} of `{node}`"))
            .collect();
        list.join(", ")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    match runtime.block_on(job_states(&ids)) {
        Err(e) => Err(ExpectedError::Usage(format!(
            "{} Slurm jobs of this store have not reported an end ({}) and Slurm cannot be \
             asked here ({e}): run gc where `squeue` works, once they are over",
            unfinished.len(),
            name(&unfinished.iter().collect::<Vec<_>>())
        ))),
        Ok(states) => {
            let active: Vec<&(String, String)> = unfinished
                .iter()
                .filter(|(_, job)| states.get(job).is_some_and(|s| s.is_active()))
                .collect();
            if active.is_empty() {
                Ok(())
            } else {
                Err(ExpectedError::Usage(format!(
                    "{} Slurm jobs of this store are still queued or running ({}); gc would \
                     delete what they write: let `tarun run --executor slurm` adopt them, or \
                     `scancel` them, then gc",
                    active.len(),
                    name(&active)
                )))
            }
        }
    }
}
