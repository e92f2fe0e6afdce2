//! Logging set-up: `tracing` to stderr, filtered by `TARUN_LOG` (default: warnings); whether to
//! colour (`--color`); and the commands' standard output, written fallibly.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe (`tarun status M | head -1`) fails with
//! `BrokenPipe`, and `println!` panics on it. Commands print with [`outln!`] and [`out!`]
//! instead: a closed stdout becomes [`ExpectedError::OutputClosed`], which `main` turns into a
//! quiet exit 0 (as ripgrep does), and any other write error into an ordinary error. A command
//! whose listing accompanies work (`export`) catches the error and finishes the work.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::cli::ColorChoice;
use crate::errors::ExpectedError;

/// `--color`, as given on the command line (`auto` until [`init`] runs).
static COLOR: OnceLock<ColorChoice> = OnceLock::new();

/// A stream colour may go to.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether to write escape codes to `stream`: `--color always` yes, `never` no, `auto` where the
/// stream is a terminal and `NO_COLOR` is unset or empty (no-color.org).
pub fn colour(stream: Stream) -> bool {
    let terminal = match stream {
        Stream::Stdout => io::stdout().is_terminal(),
        Stream::Stderr => io::stderr().is_terminal(),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    decide(
        COLOR.get().copied().unwrap_or(ColorChoice::Auto),
        terminal,
        no_color,
    )
}

fn decide(choice: ColorChoice, terminal: bool, no_color: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && !no_color,
    }
}

/// Records `--color` and sets up logging: `tracing` to stderr, filtered by `TARUN_LOG` (default:
/// warnings), coloured as `--color` says for stderr, so that by default a log captured to a file
/// or a pipe holds no escape codes. Progress bars (indicatif, through `console`) follow the same
/// choice.
pub fn init(choice: ColorChoice) {
    let _ = COLOR.set(choice);
    let stderr_colour = colour(Stream::Stderr);
    // `console` draws only indicatif's bars and the reporter's lines, all on stderr; indicatif
    // styles the bars of a `MultiProgress` by `console`'s stdout flag, so both follow stderr.
    console::set_colors_enabled_stderr(stderr_colour);
    console::set_colors_enabled(stderr_colour);
    let filter = EnvFilter::try_from_env("TARUN_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(stderr_colour)
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
    fn always_and_never_override_the_terminal_and_no_color() {
        for terminal in [false, true] {
            for no_color in [false, true] {
                assert!(decide(ColorChoice::Always, terminal, no_color));
                assert!(!decide(ColorChoice::Never, terminal, no_color));
                assert_eq!(
                    decide(ColorChoice::Auto, terminal, no_color),
                    terminal && !no_color
                );
            }
        }
    }

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
