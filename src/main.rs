//! `tarun`: run machine-learning studies as declarative, cached DAGs.

mod cli;
mod commands;
mod errors;
mod estimate;
mod kinds;
mod output;
mod report;
mod reporter;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tarun_ml::device::tune_process();
    let cli = cli::Cli::parse();
    output::init(cli.color);
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
