//! The peak resident set of this process, and of this process while a job runs.
//!
//! Linux keeps the process's high-water mark (`VmHWM` in `/proc/self/status`) and resets it when
//! `5` is written to `/proc/self/clear_refs`. Elsewhere nothing is measured (`None`).
//!
//! Jobs of one run share the process, so a job's peak is the process's: [`PeakWatch`] resets the
//! mark when the first of the running jobs starts and reads it when each ends, and says whether
//! another job ran at the same time (then the figure includes that job's memory too). A Slurm job
//! runs one node per process, so its figure is that node's alone.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The process's peak resident set while a job ran.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeakRss {
    /// Megabytes (2^20 bytes).
    pub mb: f64,
    /// Whether other jobs ran in the same process meanwhile (their memory is in `mb` too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// Resets the process's high-water mark to its current resident set.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set since it started or since the last [`reset_peak`], in MB.
pub fn peak_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Jobs running in this process, and how many have started so far.
struct Jobs {
    running: usize,
    started: u64,
}

static JOBS: Mutex<Jobs> = Mutex::new(Jobs {
    running: 0,
    started: 0,
});

/// Watches the peak memory of one job: created when it starts, read when it ends.
pub struct PeakWatch {
    /// Whether another job was running when this one started.
    overlapped: bool,
    /// The start count including this job: a higher count at the end means another started.
    started: u64,
}

impl PeakWatch {
    pub fn start() -> PeakWatch {
        let mut jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.running == 0 {
            reset_peak();
        }
        jobs.running += 1;
        jobs.started += 1;
        PeakWatch {
            overlapped: jobs.running > 1,
            started: jobs.started,
        }
    }

    /// The peak so far; `None` where the system does not say.
    pub fn peak(&self) -> Option<PeakRss> {
        let mb = peak_mb()?;
        let jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
        Some(PeakRss {
            mb,
            shared: self.overlapped || jobs.started > self.started,
        })
    }
}

impl Drop for PeakWatch {
    fn drop(&mut self) {
        let mut jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
        jobs.running -= 1;
    }
}
