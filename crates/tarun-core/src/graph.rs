//! The study as a DAG (petgraph): edges run from an input to the node that uses it.
//!
//! The manifest has already rejected cycles and dangling references, so building the graph
//! cannot fail; this module answers the structural questions: order, ancestors, descendants,
//! and renders the graph as text, Graphviz dot or Mermaid.

use std::collections::BTreeSet;
use std::fmt::Write;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

use crate::manifest::Study;

/// The DAG of a study. Node weights are indices into `study.nodes`.
#[derive(Debug)]
pub struct Graph {
    graph: DiGraph<usize, ()>,
    /// Study node order, which is also a topological order (see [`Graph::topo_order`]).
    order: Vec<usize>,
}

impl Graph {
    pub fn new(study: &Study) -> Self {
        let mut graph = DiGraph::with_capacity(study.nodes.len(), study.nodes.len() * 2);
        for i in 0..study.nodes.len() {
            graph.add_node(i);
        }
        let index = study.index();
        for (i, node) in study.nodes.iter().enumerate() {
            for input in &node.inputs {
                let from = index[input.as_str()];
                graph.add_edge(NodeIndex::new(from), NodeIndex::new(i), ());
            }
        }
        let order = petgraph::algo::toposort(&graph, None)
            .expect("the manifest rejects cycles")
            .into_iter()
            .map(|n| n.index())
            .collect();
        Graph { graph, order }
    }

    /// Node indices such that every node comes after all of its inputs.
    pub fn topo_order(&self) -> &[usize] {
        &self.order
    }

    pub fn inputs(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(node), petgraph::Direction::Incoming)
            .map(|n| n.index())
    }

    pub fn dependents(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(node), petgraph::Direction::Outgoing)
            .map(|n| n.index())
    }

    /// The given nodes and everything they depend on.
    pub fn with_ancestors(&self, nodes: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
        let reversed = Reversed(&self.graph);
        let mut out = BTreeSet::new();
        for start in nodes {
            let mut dfs = Dfs::new(reversed, NodeIndex::new(start));
            while let Some(n) = dfs.next(reversed) {
                out.insert(n.index());
            }
        }
        out
    }

    /// Everything that depends on `node`, directly or not (not `node` itself).
    pub fn descendants(&self, node: usize) -> BTreeSet<usize> {
        let mut dfs = Dfs::new(&self.graph, NodeIndex::new(node));
        let mut out = BTreeSet::new();
        while let Some(n) = dfs.next(&self.graph) {
            out.insert(n.index());
        }
        out.remove(&node);
        out
    }
}

/// Output formats of `tarun dag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Dot,
    Mermaid,
}

/// Renders the study's graph. Text lists each node (in topological order) with its inputs.
pub fn render(study: &Study, graph: &Graph, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Text => {
            for &i in graph.topo_order() {
                let node = &study.nodes[i];
                let _ = write!(out, "{} ({})", node.id, node.kind);
                if !node.inputs.is_empty() {
                    let _ = write!(out, " <- {}", node.inputs.join(", "));
                }
                out.push('\n');
            }
        }
        Format::Dot => {
            let _ = writeln!(out, "digraph {:?} {{\n  rankdir=LR;", study.name);
            for node in &study.nodes {
                let _ = writeln!(out, "  {:?} [shape=box, label={:?}];", node.id, node.id);
            }
            for node in &study.nodes {
                for input in &node.inputs {
                    let _ = writeln!(out, "  {input:?} -> {:?};", node.id);
                }
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for (i, node) in study.nodes.iter().enumerate() {
                let label = node.id.replace('"', "'");
                let _ = writeln!(out, "  n{i}[\"{label}\"]");
            }
            let index = study.index();
            for (i, node) in study.nodes.iter().enumerate() {
                for input in &node.inputs {
                    let _ = writeln!(out, "  n{} --> n{i}", index[input.as_str()]);
                }
            }
        }
    }
    out
}
