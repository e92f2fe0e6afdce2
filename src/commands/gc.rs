//! `tarun gc`: keep what the given manifests' current nodes need, remove the rest.

use std::collections::BTreeSet;
use std::process::ExitCode;

use tarun_core::graph::Graph;
use tarun_core::plan;
use tarun_core::store::Store;

use super::Result;
use crate::cli::GcArgs;
use crate::kinds;

pub fn gc(args: GcArgs) -> Result<ExitCode> {
    let store = Store::open(args.store.store)?;
    let _lock = store.lock(&format!("tarun gc (pid {})", std::process::id()), |who| {
        eprintln!("waiting for the store lock, held by {who}");
    })?;
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
            keep.extend(s.key);
        }
    }
    let report = store.gc(&keep, args.dry_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for path in report.records.iter().chain(&report.objects) {
        println!("{verb} {path}");
    }
    println!(
        "{verb} {} records, {} objects ({:.1} MB) and {} temporary files; kept {} records",
        report.records.len(),
        report.objects.len(),
        report.bytes as f64 / 1e6,
        report.temporaries.len(),
        keep.len()
    );
    Ok(ExitCode::SUCCESS)
}
