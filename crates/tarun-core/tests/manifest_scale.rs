//! A generated 2,000-node manifest expands and validates (its speed is measured by
//! `cargo bench -p tarun-core --bench scale`, not asserted here).

#[path = "support/big_manifest.rs"]
mod big_manifest;

use tarun_core::manifest;

#[test]
fn two_thousand_nodes_expand() {
    let study = manifest::parse_str("big.toml", &big_manifest::generated(), &[]).expect("valid");
    assert!(study.nodes.len() >= 2000, "{} nodes", study.nodes.len());
    let ids: std::collections::BTreeSet<&str> = study.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), study.nodes.len(), "ids are unique");
}
