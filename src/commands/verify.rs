//! `tarun verify`: re-hash every object and re-read every record.

use std::process::ExitCode;

use camino::Utf8PathBuf;
use tarun_core::store::{LockMode, Store, StoreError, VerifyReport};

use super::{Result, lock_store};
use crate::cli::VerifyArgs;
use crate::errors::{self, ExpectedError};
use crate::output::outln;

pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let store = if args.repair {
        Store::open(args.store.store)?
    } else {
        Store::open_read_only(args.store.store)?
    };
    let _lock = if args.repair {
        // Exclusive: a repair moves records and objects that a run may be reading.
        Some(lock_store(
            &store,
            LockMode::Exclusive,
            &format!("tarun verify --repair (pid {})", std::process::id()),
        )?)
    } else {
        None
    };
    let report = store.verify()?;
    if args.json {
        return print_json(&store, &report, args.repair);
    }
    // The repairs are the work, the listing comes after them: a reader that stops early
    // (`| head -1`) cuts only the listing, and the exit code still says what was found.
    let mut lines = Vec::new();
    for problem in report.corrupt_objects.iter().chain(&report.bad_records) {
        lines.push(format!("corrupt: {problem}"));
        if args.repair
            && let Some((path, dest)) = repair(&store, problem)?
        {
            lines.push(format!("moved {path} -> {dest}"));
        }
    }
    match print_text(&store, &report, &lines, args.repair) {
        Ok(()) | Err(ExpectedError::OutputClosed) => Ok(exit_code(&report, args.repair)),
        Err(e) => Err(e),
    }
}

/// The problems found (and the repairs), then a summary line.
fn print_text(
    store: &Store,
    report: &VerifyReport,
    lines: &[String],
    repaired: bool,
) -> Result<()> {
    for line in lines {
        outln!("{line}")?;
    }
    outln!(
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
    )?;
    if repaired && !report.is_clean() {
        outln!(
            "moved the damaged files to `{}`; `tarun run` recomputes what they held",
            store.root().join("quarantine")
        )?;
    }
    Ok(())
}

/// Clean, or repaired: 0; damage left in place: the store error's code.
fn exit_code(report: &VerifyReport, repair: bool) -> ExitCode {
    if report.is_clean() || repair {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(errors::STORE)
    }
}

/// `{"objects-checked":..,"records-checked":..,"clean":..,"problems":[..]}` (docs/json.md):
/// each problem with its kind, path, message and, for a corrupt object, the digest its name
/// promises and the one its bytes have; with `--repair`, where it was moved.
fn print_json(store: &Store, report: &VerifyReport, repair_them: bool) -> Result<ExitCode> {
    let mut problems = Vec::new();
    for problem in report.corrupt_objects.iter().chain(&report.bad_records) {
        let mut entry = match problem {
            StoreError::CorruptObject {
                path,
                expected,
                found,
            } => serde_json::json!({
                "kind": "corrupt-object",
                "path": path,
                "expected-digest": expected,
                "found-digest": found,
            }),
            StoreError::CorruptRecord { path, .. } => {
                serde_json::json!({ "kind": "corrupt-record", "path": path })
            }
            StoreError::MissingObject { path } => {
                serde_json::json!({ "kind": "missing-object", "path": path })
            }
            _ => serde_json::json!({ "kind": "other", "path": null }),
        };
        entry["message"] = problem.to_string().into();
        if repair_them {
            entry["moved-to"] = match repair(store, problem)? {
                Some((_, dest)) => dest.to_string().into(),
                None => serde_json::Value::Null,
            };
        }
        problems.push(entry);
    }
    let doc = serde_json::json!({
        "objects-checked": report.objects_checked,
        "records-checked": report.records_checked,
        "clean": report.is_clean(),
        "repaired": repair_them && !report.is_clean(),
        "problems": problems,
    });
    match outln!("{}", serde_json::to_string_pretty(&doc).expect("json")) {
        Ok(()) | Err(ExpectedError::OutputClosed) => Ok(exit_code(report, repair_them)),
        Err(e) => Err(e),
    }
}

/// Sets a damaged file aside and says where from and to. A missing object needs nothing: its
/// record already is not fresh.
fn repair(store: &Store, problem: &StoreError) -> Result<Option<(Utf8PathBuf, Utf8PathBuf)>> {
    let path = match problem {
        StoreError::CorruptObject { path, .. } | StoreError::CorruptRecord { path, .. } => path,
        _ => return Ok(None),
    };
    if !path.exists() {
        return Ok(None);
    }
    let dest = store.quarantine(path)?;
    Ok(Some((path.clone(), dest)))
}
