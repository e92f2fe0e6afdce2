//! Fault injection for the crash tests: `TARUN_FAULT=<point>` kills the process with SIGKILL
//! the first time execution reaches `<point>`, `TARUN_FAULT=<point>@<n>` the n-th time (so
//! `record-before-rename@5` dies writing the fifth node record). `tests/faults.rs` uses them.
//!
//! The points sit between the steps of the store's writes, where a crash is most likely to
//! leave something half done:
//!
//! | point | where |
//! |---|---|
//! | `object-before-rename` | an output file is synced and read-only in `tmp/`, not yet in `objects/` |
//! | `object-before-dir-sync` | the object is renamed into place, its directory not yet synced |
//! | `<file>-half-written` | half of the file's bytes are in its temporary file in `tmp/` |
//! | `<file>-before-rename` | the temporary file is complete and synced, not yet renamed |
//! | `<file>-before-dir-sync` | the file is renamed into place, its directory not yet synced |
//! | `gc-after-record` | `gc` has deleted a record (of those it removes) |
//! | `gc-after-object` | `gc` has deleted every record it removes, and an object |
//! | `gc-before-tmp-sweep` | `gc` has deleted records and objects, not yet `tmp/` |
//!
//! `<file>` is `record` (a node record: writing it commits the node), `head` (written right after
//! the record), `journal` (after every node and at the end of a run), `format-version` (a new
//! store) or `file` (anything else written through [`crate::store::Store::write_atomic`]).
//!
//! The variable is read once; unset, each point costs a load and a branch. It is compiled into
//! every build so that the tests exercise the binary that ships.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The armed point and on which hit it fires.
static ARMED: OnceLock<Option<(String, u32)>> = OnceLock::new();
static HITS: AtomicU32 = AtomicU32::new(0);

fn armed() -> Option<&'static (String, u32)> {
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("TARUN_FAULT").ok()?;
            let (name, nth) = match spec.split_once('@') {
                Some((name, n)) => (name, n.parse().ok()?),
                None => (spec.as_str(), 1),
            };
            Some((name.to_owned(), nth))
        })
        .as_ref()
}

/// Whether this is the armed hit of `what-stage` (e.g. `record` and `before-rename`). The caller
/// may do some partial work before calling [`crash`].
pub fn reached(what: &str, stage: &str) -> bool {
    let Some((name, nth)) = armed() else {
        return false;
    };
    let matches = name
        .strip_prefix(what)
        .and_then(|rest| rest.strip_prefix('-'))
        == Some(stage);
    matches && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth
}

/// Kills the process at `what-stage` if that point is armed.
pub fn point(what: &str, stage: &str) {
    if reached(what, stage) {
        crash();
    }
}

/// Dies at once, as `kill -9` would make it: no destructor, no flush, no exit handler.
pub fn crash() -> ! {
    #[cfg(unix)]
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// Failure and delay injection for the executor tests, read per call from `TARUN_INJECT`:
/// `fail:<node id>` makes every attempt of that node fail (as a node kind's error does, not as a
/// crash); `sleep<S>:<node id>` makes it wait S seconds first, stopping early if cancelled.
/// Several are separated by `;`. Slurm jobs inherit the variable from the driver.
pub fn inject(node: &str, cancel: &tokio_util::sync::CancellationToken) -> Result<(), String> {
    let Ok(spec) = std::env::var("TARUN_INJECT") else {
        return Ok(());
    };
    for item in spec.split(';') {
        let Some((action, target)) = item.split_once(':') else {
            continue;
        };
        if target != node {
            continue;
        }
        if action == "fail" {
            return Err(format!("injected failure (TARUN_INJECT={item})"));
        }
        if let Some(secs) = action
            .strip_prefix("sleep")
            .and_then(|s| s.parse::<f64>().ok())
        {
            // Tests that act during the pause wait for this line (`TARUN_LOG=tarun_core=info`).
            tracing::info!("injected pause of {secs} s at `{node}`");
            let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
            while std::time::Instant::now() < until && !cancel.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    Ok(())
}
