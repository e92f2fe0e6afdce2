//! The errors the binary expects, each with a stable exit code.

use std::process::ExitCode;

/// Exit codes: 0 success (or stdout closed by its reader), 1 a node failed (or, for
/// `status --check`, would run), 2 invalid manifest or usage, 3 store error, 4 other I/O or data
/// error, 128 + the signal's number for a run a signal interrupted (130 SIGINT, 143 SIGTERM,
/// 129 SIGHUP).
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    #[error(transparent)]
    Manifest(#[from] tarun_core::manifest::ManifestErrors),
    #[error(transparent)]
    Store(#[from] tarun_core::store::StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("{0:#}")]
    Other(anyhow::Error),
    /// Stdout's reader went away (`tarun status M | head`): stop writing and exit 0 quietly,
    /// as ripgrep does (`crate::output`).
    #[error("standard output closed")]
    OutputClosed,
}

pub const NODE_FAILED: u8 = 1;
/// `status --check`: some node is not fresh, so a run would run it.
pub const WOULD_RUN: u8 = 1;
pub const USAGE: u8 = 2;
pub const STORE: u8 = 3;
pub const OTHER: u8 = 4;
/// Interrupted by SIGINT (Ctrl-C); see [`interrupted_by`] for the others.
pub const INTERRUPTED: u8 = 130;

/// The exit code of a run interrupted by signal `number`: 128 + it, what a shell reports for a
/// process the signal killed (130 SIGINT, 129 SIGHUP, 143 SIGTERM).
pub fn interrupted_by(number: i32) -> u8 {
    u8::try_from(128 + number).unwrap_or(INTERRUPTED)
}

impl ExpectedError {
    pub fn code(&self) -> u8 {
        match self {
            ExpectedError::Manifest(_) | ExpectedError::Usage(_) => USAGE,
            ExpectedError::Store(_) => STORE,
            ExpectedError::Other(_) => OTHER,
            ExpectedError::OutputClosed => 0,
        }
    }

    /// Prints the error (with source snippets for manifest errors) and returns the exit code.
    pub fn report(self) -> ExitCode {
        let code = self.code();
        if let ExpectedError::OutputClosed = self {
            // Nothing to say: the reader has what it wanted.
            return ExitCode::from(code);
        }
        // Unwrapped lines: a wrapped message would break the paths it names at their slashes,
        // and a path must survive a copy and paste. The terminal wraps long lines anyway.
        let _ = miette::set_hook(Box::new(|_| {
            Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
        }));
        match self {
            ExpectedError::Manifest(e) => eprintln!("{:?}", miette::Report::new(e)),
            ExpectedError::Store(e) => eprintln!("{:?}", miette::Report::new(e)),
            ExpectedError::Usage(msg) => eprintln!("error: {msg}"),
            ExpectedError::Other(e) => eprintln!("error: {e:#}"),
            ExpectedError::OutputClosed => {}
        }
        ExitCode::from(code)
    }
}

impl From<anyhow::Error> for ExpectedError {
    fn from(e: anyhow::Error) -> Self {
        ExpectedError::Other(e)
    }
}

impl From<std::io::Error> for ExpectedError {
    fn from(e: std::io::Error) -> Self {
        ExpectedError::Other(e.into())
    }
}
