//! `tarun dag`: print the graph (text, Graphviz, Mermaid or JSON).

use std::process::ExitCode;

use tarun_core::graph::{Format, Graph, render};
use tarun_core::manifest::Study;

use super::{Result, load};
use crate::cli::{DagArgs, DagFormat};
use crate::output::{out, outln};

pub fn dag(args: DagArgs) -> Result<ExitCode> {
    let (study, graph) = load(&args.manifest)?;
    let format = match args.format {
        _ if args.json => return print_json(&study, &graph),
        DagFormat::Json => return print_json(&study, &graph),
        DagFormat::Text => Format::Text,
        DagFormat::Dot => Format::Dot,
        DagFormat::Mermaid => Format::Mermaid,
    };
    out!("{}", render(&study, &graph, format))?;
    Ok(ExitCode::SUCCESS)
}

/// `{"study":..,"nodes":[{"id":..,"kind":..,"family":..,"axes":{..},"inputs":[..]}]}`, the
/// nodes in topological order (each after its inputs), as docs/json.md describes.
fn print_json(study: &Study, graph: &Graph) -> Result<ExitCode> {
    let nodes: Vec<serde_json::Value> = graph
        .topo_order()
        .iter()
        .map(|&i| {
            let node = &study.nodes[i];
            let axes: serde_json::Map<String, serde_json::Value> =
                node.axes.iter().cloned().collect();
            serde_json::json!({
                "id": node.id,
                "kind": node.kind,
                "family": node.name,
                "axes": axes,
                "inputs": node.inputs,
            })
        })
        .collect();
    let doc = serde_json::json!({ "study": study.name, "nodes": nodes });
    outln!("{}", serde_json::to_string_pretty(&doc).expect("json"))?;
    Ok(ExitCode::SUCCESS)
}
