//! `tarun completions SHELL`: print a completion script for bash, zsh or fish.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Result;
use crate::cli::{Cli, CompletionShell, CompletionsArgs};
use crate::output;

pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tarun", &mut script);
    output::write(format_args!("{}", String::from_utf8_lossy(&script)))?;
    Ok(ExitCode::SUCCESS)
}
