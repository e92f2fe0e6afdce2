//! The Slurm command-line tools as tarun uses them: `sbatch --parsable` to submit, one `squeue`
//! per poll for every watched job, `sacct` for jobs the controller has forgotten (when
//! accounting is on), `scancel` to cancel. Nothing here keeps state.

use std::collections::BTreeMap;
use std::process::Output;

use tokio::process::Command;

/// What tarun needs to know of a job's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Queued, starting, suspended or requeued: it will run.
    Pending(String),
    Running,
    /// Finished with exit code 0.
    Completed,
    /// Finished otherwise: `FAILED`, `CANCELLED`, `TIMEOUT`, `OUT_OF_MEMORY`, `NODE_FAIL`...
    Ended(String),
    /// Slurm no longer knows the job (purged from the controller, no accounting).
    Unknown,
}

impl JobState {
    /// Parses a state as `squeue %T`, `scontrol` and `sacct` print it (`CANCELLED by 0` too).
    pub fn parse(text: &str) -> JobState {
        let state = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match state {
            "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" => JobState::Running,
            "COMPLETED" => JobState::Completed,
            "PENDING" | "CONFIGURING" | "SUSPENDED" | "REQUEUED" | "REQUEUE_HOLD"
            | "REQUEUE_FED" | "RESIZING" | "STOPPED" | "RESV_DEL_HOLD" => {
                JobState::Pending(state.to_owned())
            }
            "" => JobState::Unknown,
            other => JobState::Ended(other.to_owned()),
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self, JobState::Pending(_) | JobState::Running)
    }
}

/// Runs a Slurm tool; an error names the command and says what it printed.
async fn tool(program: &str, args: &[String]) -> Result<Output, String> {
    Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run `{program}`: {e} (is Slurm installed and on PATH?)"))
}

fn failure(program: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    format!(
        "`{program}` failed ({}): {}",
        out.status,
        stderr.trim().lines().last().unwrap_or("no message")
    )
}

/// Submits a job; returns its id. `args` are `sbatch` options (the script is in them, as
/// `--wrap`).
pub async fn submit(args: &[String]) -> Result<String, String> {
    let mut full = vec!["--parsable".to_owned()];
    full.extend_from_slice(args);
    let out = tool("sbatch", &full).await?;
    if !out.status.success() {
        return Err(failure("sbatch", &out));
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_owned();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return Err(format!("`sbatch` printed no job id: `{}`", text.trim()));
    }
    Ok(id)
}

/// The states of `jobs`, from one `squeue` call; jobs it does not list are asked of `sacct`
/// and otherwise [`JobState::Unknown`]. `Err` when `squeue` itself failed (the controller is
/// unreachable): the caller keeps the states it had.
pub async fn states(jobs: &[String]) -> Result<BTreeMap<String, JobState>, String> {
    let mut out = BTreeMap::new();
    if jobs.is_empty() {
        return Ok(out);
    }
    let args = vec![
        "--noheader".to_owned(),
        "--states=all".to_owned(),
        "--format=%i|%T".to_owned(),
        format!("--jobs={}", jobs.join(",")),
    ];
    let result = tool("squeue", &args).await?;
    let stderr = String::from_utf8_lossy(&result.stderr);
    // When none of the jobs is known any more, squeue fails with this message.
    if !result.status.success() && !stderr.contains("Invalid job id") {
        return Err(failure("squeue", &result));
    }
    for line in String::from_utf8_lossy(&result.stdout).lines() {
        if let Some((id, state)) = line.trim().split_once('|') {
            out.insert(id.to_owned(), JobState::parse(state));
        }
    }
    let missing: Vec<&String> = jobs.iter().filter(|j| !out.contains_key(*j)).collect();
    for job in missing {
        out.insert(job.clone(), accounting(job).await);
    }
    Ok(out)
}

/// A finished job's state from `sacct`, when accounting is configured.
async fn accounting(job: &str) -> JobState {
    let args = [
        "--noheader",
        "--allocations",
        "--parsable2",
        "--format=State",
        "--jobs",
        job,
    ]
    .map(str::to_owned);
    match tool("sacct", &args).await {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map_or(JobState::Unknown, JobState::parse),
        _ => JobState::Unknown,
    }
}

/// Cancels jobs (best effort: a job that already ended is not an error).
pub async fn cancel(jobs: &[String]) -> Result<(), String> {
    if jobs.is_empty() {
        return Ok(());
    }
    let out = tool("scancel", jobs).await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failure("scancel", &out))
    }
}

#[cfg(test)]
mod tests {
    use super::JobState;

    #[test]
    fn states_parse_as_squeue_scontrol_and_sacct_print_them() {
        assert_eq!(JobState::parse("RUNNING"), JobState::Running);
        assert_eq!(JobState::parse("COMPLETING"), JobState::Running);
        assert_eq!(JobState::parse("COMPLETED"), JobState::Completed);
        assert_eq!(
            JobState::parse("PENDING"),
            JobState::Pending("PENDING".into())
        );
        assert_eq!(
            JobState::parse("CANCELLED by 0"),
            JobState::Ended("CANCELLED".into())
        );
        assert_eq!(
            JobState::parse("CANCELLED+"),
            JobState::Ended("CANCELLED".into())
        );
        assert_eq!(
            JobState::parse("OUT_OF_MEMORY"),
            JobState::Ended("OUT_OF_MEMORY".into())
        );
        assert_eq!(JobState::parse(""), JobState::Unknown);
        assert!(JobState::parse("REQUEUED").is_active());
        assert!(!JobState::parse("TIMEOUT").is_active());
    }
}
