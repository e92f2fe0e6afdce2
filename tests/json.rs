//! `--json` on `run`, `gc`, `verify`, `export`, `dag` and `data info` (issue 24, item 11): each
//! document parses, and its values match what is read here independently: the store's files,
//! `tarun log --json`'s journal, blake3 of the exported files, `dag`'s text format.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::{SHARED, SMALL, TINY, tarun, walk};

/// Stdout parsed as JSON; stdout must hold nothing else.
fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}):\n{}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `run TINY --target SMALL --json` on `store`.
fn run_json(store: &Path) -> Output {
    tarun(store)
        .args(["run", TINY, "--target", SMALL, "--json"])
        .output()
        .unwrap()
}

#[test]
fn run_json_matches_the_journal_and_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let first = ok(run_json(store));
    let doc = json(&first);
    let journals = support::journals(store);
    let journal = journals.last().unwrap();
    assert_eq!(doc["run-id"], journal["run-id"]);
    assert_eq!(doc["study"], "tiny");
    let entries = journal["entries"].as_array().unwrap();
    assert_eq!(doc["nodes"].as_array().unwrap().len(), entries.len());
    assert_eq!(entries.len(), 5, "{journal}");
    for outcome in ["ran", "cached", "failed", "skipped", "cancelled"] {
        assert_eq!(
            doc["counts"][outcome].as_u64(),
            Some(support::count(journal, outcome) as u64),
            "{outcome}: {doc}"
        );
    }
    assert_eq!(doc["counts"]["ran"], 5);
    for (node, entry) in doc["nodes"].as_array().unwrap().iter().zip(entries) {
        assert_eq!(node["id"], entry["id"]);
        assert_eq!(node["outcome"], entry["outcome"]);
        assert_eq!(node["seconds"], entry["seconds"]);
        assert_eq!(node["device"], entry["device"]);
    }
    assert_eq!(doc["seconds"], journal["seconds"]);
    // The summary is in the document, not on stderr.
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!stderr.contains(" ran, "), "{stderr}");

    // Everything cached the second time.
    let doc = json(&ok(run_json(store)));
    assert_eq!(doc["counts"]["cached"], 5, "{doc}");
    assert_eq!(doc["counts"]["ran"], 0, "{doc}");

    // A failure: the document still comes, and the exit code is the run's.
    let failed = tarun(store)
        .args(["run", TINY, "--target", SMALL, "--json", "--force", SMALL])
        .env("TARUN_INJECT", format!("fail:{SMALL}"))
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let doc = json(&failed);
    assert_eq!(doc["counts"]["failed"], 1, "{doc}");
    let node = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == SMALL)
        .unwrap();
    assert_eq!(node["outcome"], "failed");
    assert!(
        node["error"].as_str().unwrap().contains("injected failure"),
        "{node}"
    );
}

#[test]
fn run_json_names_the_report_pages() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("study.toml");
    std::fs::write(&manifest, support::report_study("json-report", "JSON")).unwrap();
    let store = dir.path().join("store");
    let out = ok(tarun(&store)
        .args(["run", manifest.to_str().unwrap(), "--json"])
        .output()
        .unwrap());
    let doc = json(&out);
    let reports = doc["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{doc}");
    let page = PathBuf::from(reports[0].as_str().unwrap());
    assert_eq!(
        page,
        store.join("reports/json-report/summary/report.html"),
        "{doc}"
    );
    assert!(page.is_file());
}

#[test]
fn dag_json_lists_every_node_after_its_inputs() {
    let doc = json(&ok(tarun(Path::new("unused"))
        .args(["dag", TINY, "--json"])
        .output()
        .unwrap()));
    let same = json(&ok(tarun(Path::new("unused"))
        .args(["dag", TINY, "--format", "json"])
        .output()
        .unwrap()));
    assert_eq!(doc, same);
    assert_eq!(doc["study"], "tiny");
    // The text format: `ID (KIND) <- INPUT, INPUT`, one line per node.
    let text = String::from_utf8(
        ok(tarun(Path::new("unused"))
            .args(["dag", TINY])
            .output()
            .unwrap())
        .stdout,
    )
    .unwrap();
    let mut from_text = BTreeMap::new();
    for line in text.lines() {
        let (head, inputs) = line.split_once(" <- ").unwrap_or((line, ""));
        let (id, kind) = head.rsplit_once(" (").unwrap();
        let inputs: Vec<&str> = inputs.split(", ").filter(|s| !s.is_empty()).collect();
        from_text.insert(
            id.to_owned(),
            (kind.trim_end_matches(')').to_owned(), inputs),
        );
    }
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), from_text.len());
    let mut seen = BTreeSet::new();
    for node in nodes {
        let id = node["id"].as_str().unwrap();
        let (kind, inputs) = &from_text[id];
        assert_eq!(node["kind"], kind.as_str(), "{node}");
        let listed: Vec<&str> = node["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(&listed, inputs, "{id}");
        for input in &listed {
            assert!(seen.contains(*input), "{id} before its input {input}");
        }
        assert_eq!(node["family"], id.split('[').next().unwrap(), "{node}");
        // The axes are the id's bracket, `NAME[a=1,b=2]`.
        let axes = node["axes"].as_object().unwrap();
        let bracket = id
            .split_once('[')
            .map_or("", |(_, b)| b.trim_end_matches(']'));
        assert_eq!(
            axes.len(),
            bracket.split(',').filter(|s| !s.is_empty()).count(),
            "{node}"
        );
        let in_id: BTreeMap<&str, &str> = bracket
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        for (axis, value) in axes {
            let shown = in_id[axis.as_str()];
            match value.as_f64() {
                // `alpha = -2.0` shows as `alpha=-2` in the id.
                Some(number) => assert_eq!(shown.parse::<f64>().ok(), Some(number), "{node}"),
                None => assert_eq!(value.as_str(), Some(shown), "{node}"),
            }
        }
        seen.insert(id);
    }
}

#[test]
fn export_json_digests_are_those_of_the_copied_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    support::run_ok(&store, TINY, &[SMALL]);
    let to = dir.path().join("out");
    let doc = json(&ok(tarun(&store)
        .args(["export", TINY, SMALL, "both", "--json", "--to"])
        .arg(&to)
        .output()
        .unwrap()));
    let fresh = support::fresh_outputs(&store, TINY);
    let files = doc["files"].as_array().unwrap();
    // Every file written is listed, and nothing else.
    let listed: BTreeSet<PathBuf> = files
        .iter()
        .map(|f| PathBuf::from(f["path"].as_str().unwrap()))
        .collect();
    let written: BTreeSet<PathBuf> = walk(&to).into_iter().collect();
    assert_eq!(listed, written);
    assert!(!files.is_empty());
    for f in files {
        let path = Path::new(f["path"].as_str().unwrap());
        let bytes = std::fs::read(path).unwrap();
        let digest = f["digest"].as_str().unwrap();
        assert!(
            digest.ends_with(&blake3::hash(&bytes).to_hex().to_string()),
            "{f}"
        );
        assert_eq!(f["size"].as_u64(), Some(bytes.len() as u64));
        let node = f["node"].as_str().unwrap();
        let name = f["name"].as_str().unwrap();
        assert_eq!(fresh[node][name], digest, "{f}");
        assert_eq!(path, to.join(node).join(name));
    }
}

/// Every file under `store`'s `records/` and `objects/`, with its size.
fn store_files(store: &Path) -> BTreeMap<PathBuf, u64> {
    ["records", "objects"]
        .iter()
        .flat_map(|d| walk(&store.join(d)))
        .map(|p| {
            let size = std::fs::metadata(&p).unwrap().len();
            (p, size)
        })
        .collect()
}

#[test]
fn gc_json_lists_exactly_the_files_that_disappear() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    support::run_ok(&store, TINY, &[SMALL]);
    let before = store_files(&store);
    // SHARED keeps some of TINY's nodes, not all.
    let gc = |extra: &[&str]| {
        json(&ok(tarun(&store)
            .args(["gc", SHARED, "--json"])
            .args(extra)
            .output()
            .unwrap()))
    };
    let dry = gc(&["--dry-run"]);
    assert_eq!(dry["dry-run"], true);
    assert_eq!(store_files(&store), before, "a dry run removes nothing");
    let done = gc(&[]);
    assert_eq!(done["dry-run"], false);
    for key in ["records", "objects", "object-bytes"] {
        assert_eq!(dry[key], done[key], "{key}");
    }
    let after = store_files(&store);
    let gone: BTreeSet<&PathBuf> = before.keys().filter(|p| !after.contains_key(*p)).collect();
    let paths = |key: &str| -> Vec<PathBuf> {
        done[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| PathBuf::from(p.as_str().unwrap()))
            .collect()
    };
    let (records, objects) = (paths("records"), paths("objects"));
    assert!(!records.is_empty() && !objects.is_empty(), "{done}");
    let listed: BTreeSet<&PathBuf> = records.iter().chain(&objects).collect();
    assert_eq!(listed, gone);
    let bytes: u64 = objects.iter().map(|p| before[p]).sum();
    assert_eq!(done["object-bytes"].as_u64(), Some(bytes));
    // The records kept are those still there.
    let kept = after
        .keys()
        .filter(|p| p.starts_with(store.join("records")))
        .count();
    assert_eq!(done["kept-records"].as_u64(), Some(kept as u64), "{done}");
}

#[test]
fn verify_json_counts_the_store_and_names_a_corrupt_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    support::run_ok(&store, TINY, &[SMALL]);
    let verify = || tarun(&store).args(["verify", "--json"]).output().unwrap();
    let clean = json(&ok(verify()));
    let objects = walk(&store.join("objects"));
    let records = walk(&store.join("records"));
    assert_eq!(
        clean["objects-checked"].as_u64(),
        Some(objects.len() as u64)
    );
    assert_eq!(
        clean["records-checked"].as_u64(),
        Some(records.len() as u64)
    );
    assert_eq!(clean["clean"], true);
    assert_eq!(clean["problems"], serde_json::json!([]));

    // One byte of one object changed: its name no longer is its digest.
    let victim = &objects[0];
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(victim, &bytes).unwrap();
    let out = verify();
    assert_eq!(
        out.status.code(),
        Some(3),
        "the exit code is a store error's"
    );
    let doc = json(&out);
    assert_eq!(doc["clean"], false);
    let problems = doc["problems"].as_array().unwrap();
    let corrupt: Vec<&Value> = problems
        .iter()
        .filter(|p| p["kind"] == "corrupt-object")
        .collect();
    assert_eq!(corrupt.len(), 1, "{doc}");
    let p = corrupt[0];
    assert_eq!(Path::new(p["path"].as_str().unwrap()), victim.as_path());
    // The name is `objects/ab/cdef...`: the digest the object should have.
    let name = format!(
        "{}{}",
        victim
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap(),
        victim.file_name().unwrap().to_str().unwrap()
    );
    assert!(
        p["expected-digest"].as_str().unwrap().ends_with(&name),
        "{p}"
    );
    let found = blake3::hash(&bytes).to_hex().to_string();
    assert!(p["found-digest"].as_str().unwrap().ends_with(&found), "{p}");

    // --repair moves it aside and says where; the exit code is then 0.
    let repaired = tarun(&store)
        .args(["verify", "--json", "--repair"])
        .output()
        .unwrap();
    let doc = json(&ok(repaired));
    assert_eq!(doc["repaired"], true);
    let moved = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "corrupt-object")
        .unwrap()["moved-to"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(std::fs::read(&moved).unwrap(), bytes);
    assert!(!victim.exists());
}

/// A `cifar-10-batches-bin` folder of six small files of valid records (`per_file` each).
fn fake_cifar(dir: &Path, per_file: usize) -> PathBuf {
    let folder = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    for (f, name) in FILES.iter().enumerate() {
        let mut bytes = Vec::new();
        for r in 0..per_file {
            bytes.push(((f + r) % 10) as u8);
            bytes.extend((0..3072).map(|i| ((i * 7 + r * 13 + f) % 251) as u8));
        }
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    folder
}

const FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// The data digest as `splits::content_digest` defines it: blake3 over `train\0`, each training
/// file's name, `\0` and bytes, then `test\0` and the test file the same way.
fn content_digest(folder: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    for (tag, files) in [("train\0", &FILES[..5]), ("test\0", &FILES[5..])] {
        hasher.update(tag.as_bytes());
        for name in files {
            hasher.update(name.as_bytes());
            hasher.update(b"\0");
            hasher.update(&std::fs::read(folder.join(name)).unwrap());
        }
    }
    format!("blake3:{}", hasher.finalize().to_hex())
}

fn data_info(target: &Path) -> Output {
    tarun(Path::new("unused"))
        .args(["data", "info", "--json"])
        .arg(target)
        .output()
        .unwrap()
}

#[test]
fn data_info_reports_a_cifar_folder_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = fake_cifar(dir.path(), 3);
    // The folder itself, or the one `data fetch --dest` would have made.
    for target in [dir.path(), folder.as_path()] {
        let doc = json(&ok(data_info(target)));
        assert_eq!(doc["source"], "cifar10");
        assert_eq!(Path::new(doc["folder"].as_str().unwrap()), folder);
        assert_eq!(doc["complete"], true);
        assert_eq!(
            doc["official"], false,
            "3 images a file is not CIFAR-10's 10,000"
        );
        let files = doc["files"].as_array().unwrap();
        assert_eq!(files.len(), 6);
        for (f, name) in files.iter().zip(FILES) {
            assert_eq!(f["name"], name);
            assert_eq!(
                f["split"],
                if name == "test_batch.bin" {
                    "test"
                } else {
                    "train"
                }
            );
            assert_eq!(f["images"], 3);
            assert_eq!(f["bytes"], 3 * 3073);
            assert_eq!(f["valid"], true);
        }
        assert_eq!(doc["content-digest"], content_digest(&folder));
    }

    // A damaged file and a missing one: incomplete, exit 1, each named.
    std::fs::write(folder.join("data_batch_2.bin"), vec![3u8; 100]).unwrap();
    std::fs::remove_file(folder.join("test_batch.bin")).unwrap();
    let out = data_info(&folder);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let doc = json(&out);
    assert_eq!(doc["complete"], false);
    assert_eq!(doc["content-digest"], Value::Null);
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files[1]["valid"], false);
    assert!(
        files[1]["error"].as_str().unwrap().contains("truncated"),
        "{}",
        files[1]
    );
    assert_eq!(files[5]["present"], false);
    assert_eq!(files[0]["valid"], true);
    // The text names the way out.
    let text = tarun(Path::new("unused"))
        .args(["data", "info"])
        .arg(&folder)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("tarun data fetch cifar10"), "{text}");
    assert!(
        text.contains("test_batch.bin") && text.contains("missing"),
        "{text}"
    );
}

#[test]
fn data_info_of_a_manifest_gives_its_split_sizes() {
    // tiny.toml: synthetic, 16 training, 4 validation and 10 test images per class, 10 classes.
    let doc = json(&ok(data_info(Path::new(TINY))));
    assert_eq!(doc["study"], "tiny");
    assert_eq!(doc["source"], "synthetic");
    assert_eq!(doc["complete"], true);
    assert_eq!(
        doc["splits"],
        serde_json::json!({ "train": 160, "validation": 40, "test": 100 })
    );
    assert!(
        doc["content-digest"]
            .as_str()
            .unwrap()
            .starts_with("synthetic-v")
    );

    // A cifar10 study whose `path` (relative to the manifest) holds the fake folder.
    let dir = tempfile::tempdir().unwrap();
    let folder = fake_cifar(dir.path(), 20);
    let manifest = dir.path().join("m.toml");
    let text = std::fs::read_to_string(TINY).unwrap().replace(
        "source = \"synthetic\"",
        "source = \"cifar10\"\npath = \"cifar-10-batches-bin\"",
    );
    std::fs::write(&manifest, text).unwrap();
    let doc = json(&ok(data_info(&manifest)));
    assert_eq!(doc["source"], "cifar10");
    assert_eq!(Path::new(doc["folder"].as_str().unwrap()), folder);
    assert_eq!(doc["content-digest"], content_digest(&folder));
    // 100 training images, 10 per class (labels cycle 0-9): 4 per class held out, the 6 left
    // of each class train (at most 16 asked); 20 test images, 2 per class (at most 10 asked).
    assert_eq!(
        doc["splits"],
        serde_json::json!({ "train": 60, "validation": 40, "test": 20 })
    );
}
