//! `tarun verify`: re-hash every object and re-read every record.

use std::process::ExitCode;

use tarun_core::store::Store;

use super::Result;
use crate::cli::VerifyArgs;
use crate::errors;

pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let store = Store::open_read_only(args.store.store)?;
    let report = store.verify()?;
    for problem in report.corrupt_objects.iter().chain(&report.bad_records) {
        println!("corrupt: {problem}");
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
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(errors::STORE)
    })
}
