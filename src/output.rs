//! Logging set-up: `tracing` to stderr, filtered by `TARUN_LOG` (default: warnings); and the
//! commands' standard output, written fallibly.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe (`tarun status M | head -1`) fails with
//! `BrokenPipe`, and `println!` panics on it. Commands print with [`outln!`] and [`out!`]
//! instead: a closed stdout becomes [`ExpectedError::OutputClosed`], which `main` turns into a
//! quiet exit 0 (as ripgrep does), and any other write error into an ordinary error. A command
//! whose listing accompanies work (`export`) catches the error and finishes the work.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;

use crate::errors::ExpectedError;

/// Logs go to stderr, coloured only where it is a terminal and `NO_COLOR` is unset, so that a
/// log captured to a file or a pipe holds no escape codes.
pub fn init() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("TARUN_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let colour = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .try_init();
}

/// Writes to stdout and flushes, so that a closed pipe is found at this write, not at exit.
pub fn write(args: std::fmt::Arguments<'_>) -> Result<(), ExpectedError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// The error a failed write to stdout becomes.
pub fn stdout_error(e: io::Error) -> ExpectedError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        ExpectedError::OutputClosed
    } else {
        ExpectedError::Other(anyhow::anyhow!("writing to stdout: {e}"))
    }
}

/// `print!` that returns `Result<(), ExpectedError>` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

/// `println!` that returns `Result<(), ExpectedError>` instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_output_closed_and_other_errors_are_not() {
        let closed = stdout_error(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(closed, ExpectedError::OutputClosed));
        assert_eq!(closed.code(), 0);
        let full = stdout_error(io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(full, ExpectedError::Other(_)));
        assert!(full.to_string().contains("writing to stdout"));
    }
}
