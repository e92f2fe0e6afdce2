//! `tarun verify`: re-hash every object and re-read every record.

use std::process::ExitCode;

use tarun_core::store::{Store, StoreError};

use super::Result;
use crate::cli::VerifyArgs;
use crate::errors;

pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let store = if args.repair {
        Store::open(args.store.store)?
    } else {
        Store::open_read_only(args.store.store)?
    };
    let _lock = if args.repair {
        Some(store.lock(
            &format!("tarun verify --repair (pid {})", std::process::id()),
            |who| {
                eprintln!("waiting for the store lock, held by {who}");
            },
        )?)
    } else {
        None
    };
    let report = store.verify()?;
    for problem in report.corrupt_objects.iter().chain(&report.bad_records) {
        println!("corrupt: {problem}");
        if args.repair {
            repair(&store, problem)?;
        }
    }
    println!(
        "checked {} objects and {} records: {}",
        report.objects_checked,
        report.records_checked,
        if report.is_clean() {
            "all intact".to_owned()
        } else {
            format!(
                "{} problems",
                report.corrupt_objects.len() + report.bad_records.len()
            )
        }
    );
    if args.repair && !report.is_clean() {
        println!(
            "moved the damaged files to `{}`; `tarun run` recomputes what they held",
            store.root().join("quarantine")
        );
    }
    Ok(if report.is_clean() || args.repair {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(errors::STORE)
    })
}

/// Sets a damaged file aside. A missing object needs nothing: its record already is not fresh.
fn repair(store: &Store, problem: &StoreError) -> Result<()> {
    let path = match problem {
        StoreError::CorruptObject { path, .. } | StoreError::CorruptRecord { path, .. } => path,
        _ => return Ok(()),
    };
    if path.exists() {
        let dest = store.quarantine(path)?;
        println!("moved {path} -> {dest}");
    }
    Ok(())
}
