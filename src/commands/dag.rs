//! `tarun dag`: print the graph.

use std::process::ExitCode;

use tarun_core::graph::{Format, render};

use super::{Result, load};
use crate::cli::{DagArgs, DagFormat};
use crate::output::out;

pub fn dag(args: DagArgs) -> Result<ExitCode> {
    let (study, graph) = load(&args.manifest)?;
    let format = match args.format {
        DagFormat::Text => Format::Text,
        DagFormat::Dot => Format::Dot,
        DagFormat::Mermaid => Format::Mermaid,
    };
    out!("{}", render(&study, &graph, format))?;
    Ok(ExitCode::SUCCESS)
}
