//! Keys and staleness: what a node's cache key is made of, and why a node must run.
//!
//! A key is blake3 over the canonical JSON of [`KeyMaterial`]: key schema version, node kind, the
//! kind's algorithm version, resolved parameters, the *content* digests of the input artifacts,
//! the data digest, the seed and the protocol. Device, thread count, paths and wall time are not
//! in it. Because inputs enter by content, a rerun that reproduces its output byte for byte leaves
//! its dependents fresh (early cutoff).
//!
//! `status` never reads an artifact: it compares key material with the records in the store.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::digest::{DataDigest, NodeKey, ObjectDigest, digest_value};
use crate::graph::Graph;
use crate::manifest::{NodeKind, NodeSpec, Protocol, Study};
use crate::store::{NodeRecord, Outcome, Store, StoreError};

/// Bump when the shape of [`KeyMaterial`] changes: every key changes with it.
pub const KEY_SCHEMA_VERSION: u32 = 1;

/// Everything a node's key is computed from.
#[derive(Debug, Serialize)]
pub struct KeyMaterial<'a> {
    pub schema: u32,
    pub kind: NodeKind,
    pub algorithm: u32,
    pub params: &'a serde_json::Map<String, serde_json::Value>,
    /// Input id -> output name -> content digest.
    pub inputs: BTreeMap<&'a str, BTreeMap<&'a str, ObjectDigest>>,
    pub data: &'a DataDigest,
    pub seed: u64,
    pub protocol: Protocol,
}

/// What the key depends on besides the study: supplied by the node-kind implementations.
pub trait KeyContext {
    /// The version of a kind's algorithm; bump it when a kind's results would change.
    fn algorithm_version(&self, kind: NodeKind) -> u32;
}

/// Computes a node's key from its inputs' committed records (in `node.inputs` order).
pub fn node_key(
    study: &Study,
    node: &NodeSpec,
    inputs: &[&NodeRecord],
    algorithm: u32,
    data_digest: &DataDigest,
) -> (NodeKey, serde_json::Value) {
    let material = KeyMaterial {
        schema: KEY_SCHEMA_VERSION,
        kind: node.kind,
        algorithm,
        params: &node.params,
        inputs: inputs
            .iter()
            .map(|r| {
                let outs = r
                    .outputs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.digest))
                    .collect();
                (r.id.as_str(), outs)
            })
            .collect(),
        data: data_digest,
        seed: study.seed,
        protocol: study.protocol,
    };
    let value = serde_json::to_value(&material).expect("key material is plain data");
    (digest_value(&value), value)
}

/// Every node's key as far as it is known without running anything, with its key material: a
/// node whose inputs are all fresh gets its key exactly as [`status`] computes it; an input that
/// is not fresh enters by its own planned key (`{"planned": KEY}`) in place of its outputs'
/// digests. Two studies resolved against one store have equal planned keys for a node exactly
/// when its key is or will be the same (up to early cutoff not yet known), so `tarun compare`
/// can tell changed nodes from shared ones before either side has run; [`material_causes`] on
/// two materials says why they differ.
pub fn planned_keys(
    study: &Study,
    graph: &Graph,
    statuses: &[NodeStatus],
    ctx: &dyn KeyContext,
    data_digest: &DataDigest,
) -> Vec<(NodeKey, serde_json::Value)> {
    let mut out: Vec<Option<(NodeKey, serde_json::Value)>> = vec![None; study.nodes.len()];
    for &i in graph.topo_order() {
        let node = &study.nodes[i];
        let fresh: Vec<&NodeRecord> = graph
            .inputs(i)
            .filter_map(|j| statuses[j].record.as_ref())
            .collect();
        let (key, mut material) = node_key(
            study,
            node,
            &fresh,
            ctx.algorithm_version(node.kind),
            data_digest,
        );
        let planned: Vec<usize> = graph
            .inputs(i)
            .filter(|&j| statuses[j].record.is_none())
            .collect();
        let key = if planned.is_empty() {
            key
        } else {
            let inputs = material["inputs"]
                .as_object_mut()
                .expect("key material has inputs");
            for j in planned {
                let (k, _) = out[j].as_ref().expect("topological order");
                inputs.insert(
                    study.nodes[j].id.clone(),
                    serde_json::json!({ "planned": k.to_string() }),
                );
            }
            digest_value(&material)
        };
        debug_assert!(statuses[i].key.is_none_or(|k| k == key), "status's key");
        out[i] = Some((key, material));
    }
    out.into_iter()
        .map(|k| k.expect("every node visited"))
        .collect()
}

/// A node's state as `status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Its record for the current key is in the store with all of its outputs.
    Fresh,
    /// It ran before, but something it depends on changed (or will change).
    Stale,
    /// It never ran.
    Missing,
    /// An input failed in the last run, so it cannot run until that is fixed.
    Blocked,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Stale => "stale",
            State::Missing => "missing",
            State::Blocked => "blocked",
        }
    }
}

/// One node's status and why.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub id: String,
    pub kind: NodeKind,
    pub state: State,
    pub causes: Vec<String>,
    /// The current key, when every input is fresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<NodeKey>,
    /// The record for the current key, when fresh.
    #[serde(skip)]
    pub record: Option<NodeRecord>,
    /// When not fresh, the record the causes compare against: the current key's when it exists
    /// (forced, or an output missing), else the nearest of the node id's recent records (fewest
    /// differences, the newest of equals), so an edit tried and reverted is not named again.
    #[serde(skip)]
    pub compared: Option<NodeRecord>,
}

/// Computes every node's status. `force` lists node indices to treat as stale.
pub fn status(
    study: &Study,
    graph: &Graph,
    store: &Store,
    ctx: &dyn KeyContext,
    data_digest: &DataDigest,
    force: &BTreeSet<usize>,
) -> Result<Vec<NodeStatus>, StoreError> {
    let failed = last_failures(store)?;
    let mut out: Vec<Option<NodeStatus>> = vec![None; study.nodes.len()];
    for &i in graph.topo_order() {
        let node = &study.nodes[i];
        let inputs: Vec<&NodeStatus> = graph
            .inputs(i)
            .map(|j| out[j].as_ref().expect("topological order"))
            .collect();
        let st = node_status(
            study,
            node,
            &inputs,
            store,
            ctx,
            data_digest,
            &failed,
            force.contains(&i),
        )?;
        out[i] = Some(st);
    }
    Ok(out
        .into_iter()
        .map(|s| s.expect("every node visited"))
        .collect())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
fn node_status(
    study: &Study,
    node: &NodeSpec,
    inputs: &[&NodeStatus],
    store: &Store,
    ctx: &dyn KeyContext,
    data_digest: &DataDigest,
    failed: &BTreeMap<String, String>,
    forced: bool,
) -> Result<NodeStatus, StoreError> {
    let mut st = NodeStatus {
        id: node.id.clone(),
        kind: node.kind,
        state: State::Missing,
        causes: vec![],
        key: None,
        record: None,
        compared: None,
    };
    // The recent records of this id, read only when the node is not fresh: a fresh node's
    // status costs one record read.
    let history = |st: &mut NodeStatus| {
        store.history(&study.name, &node.id).unwrap_or_else(|e| {
            st.causes.push(format!("previous record unreadable: {e}"));
            vec![]
        })
    };
    let algorithm = ctx.algorithm_version(node.kind);
    let blocked: Vec<&str> = inputs
        .iter()
        .filter(|s| {
            matches!(s.state, State::Blocked)
                || failed.contains_key(&s.id) && s.state != State::Fresh
        })
        .map(|s| s.id.as_str())
        .collect();
    let not_fresh: Vec<&&NodeStatus> = inputs.iter().filter(|s| s.state != State::Fresh).collect();
    if !blocked.is_empty() {
        st.state = State::Blocked;
        st.causes
            .extend(blocked.iter().map(|id| format!("input `{id}` failed")));
        return Ok(st);
    }
    if let Some(err) = failed.get(&node.id) {
        st.causes.push(format!("failed in the last run: {err}"));
    }
    if !not_fresh.is_empty() {
        let records = history(&mut st);
        if let Some((prev, causes)) = nearest(records, |r| param_causes(r, node, algorithm)) {
            st.state = State::Stale;
            st.causes.extend(causes);
            st.compared = Some(prev);
            st.causes.extend(
                not_fresh
                    .iter()
                    .map(|s| format!("input `{}` is {}", s.id, s.state.as_str())),
            );
        } else {
            st.causes.push("never run".into());
        }
        return Ok(st);
    }
    let records: Vec<&NodeRecord> = inputs
        .iter()
        .map(|s| s.record.as_ref().expect("fresh inputs have records"))
        .collect();
    let (key, material) = node_key(study, node, &records, algorithm, data_digest);
    st.key = Some(key);
    let current = match store.read_record(&key) {
        Ok(r) => r,
        Err(e) => {
            st.causes.push(format!("record unreadable: {e}"));
            None
        }
    };
    let fresh = current
        .as_ref()
        .is_some_and(|rec| store.outputs_present(rec) && !forced);
    let previous = if fresh || current.is_some() {
        None
    } else {
        let records = history(&mut st);
        nearest(records, |r| material_causes(&r.key_material, &material))
    };
    match (current, previous) {
        (Some(rec), _) if fresh => {
            st.state = State::Fresh;
            st.record = Some(rec);
        }
        (Some(rec), _) => {
            st.state = State::Stale;
            st.causes.push(if forced {
                "forced".into()
            } else {
                "an output object is missing or truncated".into()
            });
            st.compared = Some(rec);
        }
        (None, Some((prev, causes))) => {
            st.state = State::Stale;
            st.causes.extend(causes);
            if forced {
                st.causes.push("forced".into());
            }
            st.compared = Some(prev);
        }
        (None, None) => st.causes.push("never run".into()),
    }
    Ok(st)
}

/// The record with the fewest causes against the current node, the newest of equals (`records`
/// come newest first), with those causes.
fn nearest(
    records: Vec<NodeRecord>,
    causes: impl Fn(&NodeRecord) -> Vec<String>,
) -> Option<(NodeRecord, Vec<String>)> {
    records
        .into_iter()
        .map(|r| {
            let c = causes(&r);
            (r, c)
        })
        .enumerate()
        .min_by_key(|(i, (_, c))| (c.len(), *i))
        .map(|(_, rc)| rc)
}

/// Causes visible without the inputs' digests: parameter and algorithm changes.
fn param_causes(head: &NodeRecord, node: &NodeSpec, algorithm: u32) -> Vec<String> {
    let old = &head.key_material;
    let mut causes = vec![];
    if let Some(a) = old.get("algorithm").and_then(|v| v.as_u64())
        && a != u64::from(algorithm)
    {
        causes.push(format!("algorithm version {a} -> {algorithm}"));
    }
    let new_params = serde_json::Value::Object(node.params.clone());
    diff_values(
        "params",
        old.get("params").unwrap_or(&serde_json::Value::Null),
        &new_params,
        &mut causes,
    );
    causes
}

/// Every difference between the key material of the last record and the current one.
pub fn material_causes(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let mut causes = vec![];
    let get = |v: &serde_json::Value, k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Null);
    for (field, label) in [
        ("schema", "key schema version"),
        ("algorithm", "algorithm version"),
    ] {
        let (a, b) = (get(old, field), get(new, field));
        if a != b {
            causes.push(format!("{label} {a} -> {b}"));
        }
    }
    diff_values(
        "params",
        &get(old, "params"),
        &get(new, "params"),
        &mut causes,
    );
    let (oi, ni) = (get(old, "inputs"), get(new, "inputs"));
    let empty = serde_json::Map::new();
    let (oi, ni) = (
        oi.as_object().unwrap_or(&empty),
        ni.as_object().unwrap_or(&empty),
    );
    for (id, digests) in ni {
        match oi.get(id) {
            None => causes.push(format!("new input `{id}`")),
            Some(old) if old != digests => causes.push(format!("input `{id}` changed")),
            Some(_) => {}
        }
    }
    for id in oi.keys().filter(|id| !ni.contains_key(*id)) {
        causes.push(format!("input `{id}` removed"));
    }
    if get(old, "data") != get(new, "data") {
        causes.push("data changed".into());
    }
    for field in ["seed", "protocol"] {
        let (a, b) = (get(old, field), get(new, field));
        if a != b {
            causes.push(format!("{field} {a} -> {b}"));
        }
    }
    if causes.is_empty() {
        causes.push("key changed".into());
    }
    causes
}

/// Appends `path old -> new` for every leaf that differs.
fn diff_values(
    path: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&sub, x, y, out),
                    (None, Some(y)) => out.push(format!("{sub} added ({y})")),
                    (Some(x), None) => out.push(format!("{sub} removed (was {x})")),
                    (None, None) => {}
                }
            }
        }
        // Same length: name the element that changed (`vectors[0].alpha -1.5 -> -2.5`).
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_values(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path} {a} -> {b}")),
        _ => {}
    }
}

/// Nodes that failed in the most recent run that attempted them, with their error.
fn last_failures(store: &Store) -> Result<BTreeMap<String, String>, StoreError> {
    let mut failed = BTreeMap::new();
    for journal in store.journals()? {
        for e in &journal.entries {
            match e.outcome {
                Outcome::Failed => {
                    failed.insert(e.id.clone(), e.error.clone().unwrap_or_default());
                }
                Outcome::Ran | Outcome::Cached => {
                    failed.remove(&e.id);
                }
                Outcome::Skipped | Outcome::Cancelled => {}
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::diff_values;

    fn diff(old: serde_json::Value, new: serde_json::Value) -> Vec<String> {
        let mut out = vec![];
        diff_values("params", &old, &new, &mut out);
        out
    }

    #[test]
    fn causes_name_the_leaf_that_changed() {
        let old = json!({"lr": 1e-3, "vectors": [{"alpha": -1.5, "rho": 0.8}], "only": [8]});
        let new = json!({"lr": 1e-3, "vectors": [{"alpha": -2.5, "rho": 0.8}], "only": [8, 9]});
        assert_eq!(
            diff(old, new),
            [
                "params.only [8] -> [8,9]",
                "params.vectors[0].alpha -1.5 -> -2.5"
            ]
        );
        assert_eq!(
            diff(json!({"a": 1}), json!({"b": 1})),
            ["params.a removed (was 1)", "params.b added (1)"]
        );
        assert!(diff(json!({"a": [1, 2]}), json!({"a": [1, 2]})).is_empty());
    }
}
