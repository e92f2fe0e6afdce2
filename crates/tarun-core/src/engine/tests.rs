//! Engine tests with a test-only runner whose outputs are strings derived from params and inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use camino::Utf8PathBuf;
use proptest::prelude::*;

use super::*;
use crate::manifest::{Location, NodeKind, NodeSpec, Protocol, Study};
use crate::plan::KeyContext;

/// Writes `out.txt` = "<value>|<inputs' contents>"; fails when `fail` is true; records the order.
#[derive(Default)]
struct FakeRunner {
    ran: Mutex<Vec<String>>,
    fail_first_attempts: u32,
}

impl KeyContext for FakeRunner {
    fn algorithm_version(&self, _: NodeKind) -> u32 {
        1
    }
}

impl Runner for FakeRunner {
    fn needs_device(&self, _: &NodeSpec) -> bool {
        true
    }

    fn run(&self, job: &Job) -> Result<JobOutput, JobError> {
        self.ran.lock().unwrap().push(job.node.id.clone());
        if job.node.params.get("fail") == Some(&serde_json::Value::Bool(true)) {
            return Err(JobError::Failed("asked to fail".into()));
        }
        if job.attempt <= self.fail_first_attempts {
            return Err(JobError::Failed("flaky".into()));
        }
        if job.node.params.get("wait-for-cancel") == Some(&serde_json::Value::Bool(true)) {
            while !job.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            return Err(JobError::Cancelled);
        }
        let mut text = job
            .node
            .params
            .get("value")
            .map(|v| v.to_string())
            .unwrap_or_default();
        for input in &job.inputs {
            text.push('|');
            text.push_str(&std::fs::read_to_string(&input.files["out.txt"]).unwrap());
        }
        std::fs::write(job.out_dir.join("out.txt"), text).unwrap();
        Ok(JobOutput::default())
    }
}

fn node(id: &str, inputs: &[&str], value: i64) -> NodeSpec {
    let mut params = serde_json::Map::new();
    params.insert("value".into(), value.into());
    NodeSpec {
        id: id.into(),
        kind: NodeKind::Train,
        name: id.into(),
        axes: vec![],
        params,
        inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
        retries: 0,
        slurm: serde_json::Map::new(),
        device: Default::default(),
        precision: Default::default(),
        location: Location {
            file: "t.toml".into(),
            line: 1,
            column: 1,
        },
    }
}

fn study(nodes: Vec<NodeSpec>) -> Study {
    Study {
        path: "t.toml".into(),
        name: "t".into(),
        seed: 0,
        protocol: Protocol::Corrected,
        data: serde_json::Map::new(),
        slurm: serde_json::Map::new(),
        cache: serde_json::Map::new(),
        matrix: vec![],
        nodes,
        overrides: vec![],
        files: vec![],
        source_digest: String::new(),
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::try_from(dir.path().join("store")).unwrap();
        Harness {
            store: Store::open(root).unwrap(),
            _dir: dir,
        }
    }

    fn run_with(&self, study: &Study, runner: Arc<FakeRunner>, opts: Options) -> RunJournal {
        let pool = DevicePool::new(vec!["cpu*2".parse().unwrap()], 2);
        self.run_on(study, runner, opts, pool)
    }

    fn run_on(
        &self,
        study: &Study,
        runner: Arc<FakeRunner>,
        opts: Options,
        devices: DevicePool,
    ) -> RunJournal {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let engine = Engine {
            study: Arc::new(study.clone()),
            graph: Arc::new(Graph::new(study)),
            store: self.store.clone(),
            runner,
            data_digest: "data".into(),
            devices,
            events: tx,
            cancel: CancellationToken::new(),
            executor: Executor::Local,
        };
        rt.block_on(engine.run(opts)).unwrap()
    }

    fn run(&self, study: &Study) -> (RunJournal, Vec<String>) {
        let runner = Arc::new(FakeRunner::default());
        let journal = self.run_with(study, runner.clone(), Options::default());
        let ran = runner.ran.lock().unwrap().clone();
        (journal, ran)
    }
}

fn outcomes(j: &RunJournal) -> BTreeMap<String, Outcome> {
    j.entries
        .iter()
        .map(|e| (e.id.clone(), e.outcome))
        .collect()
}

#[test]
fn runs_in_order_then_hits_the_cache() {
    let h = Harness::new();
    let s = study(vec![
        node("a", &[], 1),
        node("b", &["a"], 2),
        node("c", &["a", "b"], 3),
    ]);
    let (j, ran) = h.run(&s);
    assert_eq!(ran, ["a", "b", "c"]);
    assert_eq!(j.count(Outcome::Ran), 3);
    let (j, ran) = h.run(&s);
    assert!(ran.is_empty());
    assert_eq!(j.count(Outcome::Cached), 3);
}

#[test]
fn a_parameter_change_reruns_exactly_its_descendants() {
    let h = Harness::new();
    let s = study(vec![
        node("a", &[], 1),
        node("b", &["a"], 2),
        node("c", &[], 3),
        node("d", &["b"], 4),
    ]);
    h.run(&s);
    let mut s2 = s.clone();
    s2.nodes[1].params.insert("value".into(), 20.into());
    let (_, ran) = h.run(&s2);
    assert_eq!(ran, ["b", "d"]);
}

#[test]
fn byte_identical_output_leaves_dependents_fresh() {
    let h = Harness::new();
    let s = study(vec![node("a", &[], 1), node("b", &["a"], 2)]);
    h.run(&s);
    // A new parameter that does not change `a`'s output: `a` reruns, `b` stays cached.
    let mut s2 = s.clone();
    s2.nodes[0]
        .params
        .insert("comment".into(), "same output".into());
    let (j, ran) = h.run(&s2);
    assert_eq!(ran, ["a"]);
    assert_eq!(outcomes(&j)["b"], Outcome::Cached);
}

#[test]
fn a_failure_skips_its_descendants_and_independent_branches_finish() {
    let h = Harness::new();
    let mut bad = node("bad", &["a"], 2);
    bad.params.insert("fail".into(), true.into());
    let s = study(vec![
        node("a", &[], 1),
        bad,
        node("child", &["bad"], 3),
        node("other", &["a"], 4),
    ]);
    let (j, _) = h.run(&s);
    let o = outcomes(&j);
    assert_eq!(o["bad"], Outcome::Failed);
    assert_eq!(o["child"], Outcome::Skipped);
    assert_eq!(o["other"], Outcome::Ran);
}

#[test]
fn retries_rerun_a_flaky_node() {
    let h = Harness::new();
    let mut a = node("a", &[], 1);
    a.retries = 2;
    let runner = Arc::new(FakeRunner {
        fail_first_attempts: 2,
        ..Default::default()
    });
    let j = h.run_with(&study(vec![a]), runner.clone(), Options::default());
    assert_eq!(j.entries[0].outcome, Outcome::Ran);
    assert_eq!(j.entries[0].attempts, 3);
}

#[test]
fn targets_run_only_their_ancestors_and_force_reruns() {
    let h = Harness::new();
    let s = study(vec![
        node("a", &[], 1),
        node("b", &["a"], 2),
        node("c", &["a"], 3),
    ]);
    let runner = Arc::new(FakeRunner::default());
    let opts = Options {
        targets: Some(BTreeSet::from([1])),
        ..Default::default()
    };
    h.run_with(&s, runner.clone(), opts);
    assert_eq!(*runner.ran.lock().unwrap(), ["a", "b"]);
    let runner = Arc::new(FakeRunner::default());
    let opts = Options {
        force: BTreeSet::from([0]),
        ..Default::default()
    };
    h.run_with(&s, runner.clone(), opts);
    assert_eq!(*runner.ran.lock().unwrap(), ["a", "c"]);
}

#[test]
fn cancellation_commits_nothing() {
    let h = Harness::new();
    let mut slow = node("slow", &[], 1);
    slow.params.insert("wait-for-cancel".into(), true.into());
    let s = study(vec![slow, node("after", &["slow"], 2)]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let engine = Engine {
        study: Arc::new(s.clone()),
        graph: Arc::new(Graph::new(&s)),
        store: h.store.clone(),
        runner: Arc::new(FakeRunner::default()),
        data_digest: "data".into(),
        devices: DevicePool::new(vec!["cpu".parse().unwrap()], 2),
        events: tx,
        cancel: cancel.clone(),
        executor: Executor::Local,
    };
    let j = rt.block_on(async {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            c.cancel();
        });
        engine.run(Options::default()).await.unwrap()
    });
    let o = outcomes(&j);
    assert_eq!(
        (o["slow"], o["after"]),
        (Outcome::Cancelled, Outcome::Cancelled)
    );
    assert_eq!(
        std::fs::read_dir(h.store.root().join("records"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(j.interrupted, None, "a cancellation without a signal");
}

/// Cancelled because of a signal: the journal, returned and stored, names it.
#[test]
fn an_interrupted_run_names_the_signal_in_its_journal() {
    let h = Harness::new();
    let mut slow = node("slow", &[], 1);
    slow.params.insert("wait-for-cancel".into(), true.into());
    let s = study(vec![slow, node("after", &["slow"], 2)]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let engine = Engine {
        study: Arc::new(s.clone()),
        graph: Arc::new(Graph::new(&s)),
        store: h.store.clone(),
        runner: Arc::new(FakeRunner::default()),
        data_digest: "data".into(),
        devices: DevicePool::new(vec!["cpu".parse().unwrap()], 2),
        events: tx,
        cancel: cancel.clone(),
        executor: Executor::Local,
    };
    let opts = Options {
        run_id: "r-term".into(),
        ..Default::default()
    };
    let interrupted = opts.interrupted.clone();
    let j = rt.block_on(async {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            interrupted.set("SIGTERM".into()).unwrap();
            c.cancel();
        });
        engine.run(opts).await.unwrap()
    });
    assert_eq!(j.interrupted.as_deref(), Some("SIGTERM"));
    assert_eq!(j.count(Outcome::Cancelled), 2);
    let stored = h.store.journals().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0], j);
}

/// Random DAGs: edges only from lower to higher index, some nodes failing.
fn arb_dag() -> impl Strategy<Value = (Vec<Vec<usize>>, BTreeSet<usize>)> {
    (2usize..14).prop_flat_map(|n| {
        let edges = (0..n)
            .map(|i| proptest::collection::btree_set(0..i.max(1), 0..=i.min(3)))
            .collect::<Vec<_>>();
        let fails = proptest::collection::btree_set(0..n, 0..3);
        (edges, fails).prop_map(move |(edges, fails)| {
            let edges = edges
                .into_iter()
                .enumerate()
                .map(|(i, s)| s.into_iter().filter(|&j| j < i).collect())
                .collect();
            (edges, fails)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn random_dags_respect_order_failures_and_cache((edges, fails) in arb_dag()) {
        let h = Harness::new();
        let ids: Vec<String> = (0..edges.len()).map(|i| format!("n{i}")).collect();
        let nodes: Vec<NodeSpec> = edges.iter().enumerate().map(|(i, ins)| {
            let ins: Vec<&str> = ins.iter().map(|&j| ids[j].as_str()).collect();
            let mut n = node(&ids[i], &ins, i as i64);
            if fails.contains(&i) {
                n.params.insert("fail".into(), true.into());
            }
            n
        }).collect();
        let s = study(nodes);
        let graph = Graph::new(&s);
        let (j, ran) = h.run(&s);
        // No node ran twice, and every node ran after all of its inputs.
        let pos: BTreeMap<&str, usize> = ran.iter().enumerate().map(|(p, id)| (id.as_str(), p)).collect();
        prop_assert_eq!(pos.len(), ran.len());
        for (i, ins) in edges.iter().enumerate() {
            if let Some(p) = pos.get(ids[i].as_str()) {
                for &k in ins {
                    prop_assert!(pos[ids[k].as_str()] < *p);
                }
            }
        }
        // Failures skip exactly their descendants.
        let doomed: BTreeSet<usize> = fails.iter().flat_map(|&f| graph.descendants(f)).collect();
        let o = outcomes(&j);
        for i in 0..edges.len() {
            let expected = if fails.contains(&i) && !doomed.contains(&i) {
                Outcome::Failed
            } else if doomed.contains(&i) {
                Outcome::Skipped
            } else {
                Outcome::Ran
            };
            prop_assert_eq!(o[&ids[i]], expected, "node {}", i);
        }
        // A second run reruns only the failed nodes; cached nodes never rerun.
        let (_, ran2) = h.run(&s);
        let expected: Vec<String> = graph.topo_order().iter()
            .filter(|i| fails.contains(i) && !doomed.contains(i))
            .map(|&i| ids[i].clone()).collect();
        let mut got = ran2.clone();
        got.sort();
        let mut exp = expected.clone();
        exp.sort();
        prop_assert_eq!(got, exp);
    }
}

#[test]
fn a_node_asking_for_a_gpu_on_a_cpu_only_pool_fails_and_the_rest_runs() {
    let h = Harness::new();
    let mut gpu = node("gpu", &[], 1);
    gpu.device = crate::manifest::DeviceRequest::Gpu;
    let mut cpu = node("cpu", &[], 2);
    cpu.device = crate::manifest::DeviceRequest::Cpu;
    let s = study(vec![
        gpu,
        node("after", &["gpu"], 3),
        cpu,
        node("any", &[], 4),
    ]);
    let (j, mut ran) = h.run(&s);
    ran.sort();
    assert_eq!(ran, ["any", "cpu"]);
    let o = outcomes(&j);
    assert_eq!(o["gpu"], Outcome::Failed);
    assert_eq!(o["after"], Outcome::Skipped);
    let error = j
        .entries
        .iter()
        .find(|e| e.id == "gpu")
        .unwrap()
        .error
        .clone();
    assert!(error.unwrap().contains("asks for device = \"gpu\""));
}

#[test]
fn nodes_land_on_the_kind_of_device_they_ask_for() {
    let h = Harness::new();
    let mut gpu = node("gpu", &[], 1);
    gpu.device = crate::manifest::DeviceRequest::Gpu;
    let mut cpu = node("cpu", &[], 2);
    cpu.device = crate::manifest::DeviceRequest::Cpu;
    let s = study(vec![cpu, gpu]);
    let pool = DevicePool::new(
        vec!["cpu".parse().unwrap(), "cuda:0*2@8G".parse().unwrap()],
        2,
    );
    let j = h.run_on(
        &s,
        Arc::new(FakeRunner::default()),
        Options::default(),
        pool,
    );
    let device = |id: &str| {
        let e = j.entries.iter().find(|e| e.id == id).unwrap();
        e.device.clone().unwrap()
    };
    assert_eq!(device("gpu"), "cuda:0");
    assert_eq!(device("cpu"), "cpu");
}

/// A remote cache in a directory (`file://`), as a shared filesystem holds one.
fn dir_remote(dir: &std::path::Path, push: bool) -> Arc<crate::remote::RemoteCache> {
    let config = crate::remote::RemoteConfig {
        url: dir.to_str().unwrap().to_owned(),
        push,
    };
    Arc::new(crate::remote::RemoteCache::open(&config).unwrap())
}

/// Sixteen independent nodes and one that needs two of them, pushed from one store: an empty
/// store pulls every one of them in one run (none computes, each is journalled as cached from
/// the remote, under the same key), and `--force` computes a node the remote has.
#[test]
fn missing_nodes_are_all_pulled_from_the_remote_in_one_run() {
    let remote = tempfile::tempdir().unwrap();
    let mut nodes: Vec<NodeSpec> = (0..16).map(|k| node(&format!("n{k}"), &[], k)).collect();
    nodes.push(node("top", &["n0", "n1"], 99));
    let s = study(nodes);
    let with_remote = |push| Options {
        remote: Some(dir_remote(remote.path(), push)),
        ..Options::default()
    };

    let a = Harness::new();
    let pushed = a.run_with(&s, Arc::default(), with_remote(true));
    assert!(pushed.entries.iter().all(|e| e.outcome == Outcome::Ran));
    let keys = |j: &RunJournal| -> BTreeMap<String, Option<NodeKey>> {
        j.entries.iter().map(|e| (e.id.clone(), e.key)).collect()
    };

    let b = Harness::new();
    let runner = Arc::new(FakeRunner::default());
    let pulled = b.run_with(&s, runner.clone(), with_remote(false));
    assert!(runner.ran.lock().unwrap().is_empty());
    assert_eq!(pulled.entries.len(), 17);
    for e in &pulled.entries {
        assert_eq!(e.outcome, Outcome::Cached, "{}", e.id);
        assert_eq!(e.device.as_deref(), Some("remote"), "{}", e.id);
    }
    assert_eq!(keys(&pulled), keys(&pushed));
    assert_eq!(
        b.run(&s).1,
        Vec::<String>::new(),
        "pulled nodes are local hits"
    );

    let c = Harness::new();
    let runner = Arc::new(FakeRunner::default());
    let forced = c.run_with(
        &s,
        runner.clone(),
        Options {
            force: BTreeSet::from([3]),
            ..with_remote(false)
        },
    );
    assert_eq!(*runner.ran.lock().unwrap(), ["n3"]);
    let o = outcomes(&forced);
    assert_eq!(o["n3"], Outcome::Ran);
    assert_eq!(o["n4"], Outcome::Cached);
}

/// A stand-in for an S3 server on loopback that answers every request, after `delay`, with
/// 404 NoSuchKey (a remote that has nothing), counting the requests and the most it held at once.
struct SlowEmptyS3 {
    port: u16,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    most_at_once: Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowEmptyS3 {
    fn start(delay: std::time::Duration) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let (r, m) = (requests.clone(), most_at_once.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (r, m, now) = (r.clone(), m.clone(), now.clone());
                // One thread per connection; a connection carries requests one after another.
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut header = String::new();
                            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                                return;
                            }
                            let header = header.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        r.fetch_add(1, Ordering::SeqCst);
                        let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                        m.fetch_max(at_once, Ordering::SeqCst);
                        std::thread::sleep(delay);
                        now.fetch_sub(1, Ordering::SeqCst);
                        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                            <Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>";
                        let response = format!(
                            "HTTP/1.1 404 Not Found\r\ncontent-type: application/xml\r\n\
                             content-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(response.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SlowEmptyS3 {
            port,
            requests,
            most_at_once,
        }
    }
}

const LOOKUP_CHILD: &str = "TARUN_TEST_LOOKUP_CHILD";
const OVERLAP_NODES: usize = 8;

/// Eight nodes miss locally and on a remote that takes 300 ms per request: their lookups run
/// at the same time, not one after another. The run happens in a child process (this test
/// binary, running [`remote_lookups_overlap_child`]) because the S3 client reads its endpoint
/// and credentials from the environment, which a test must not change in its own process.
#[test]
fn remote_lookups_of_missing_nodes_overlap() {
    use std::sync::atomic::Ordering;
    let server = SlowEmptyS3::start(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "engine::tests::remote_lookups_overlap_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(LOOKUP_CHILD, "1")
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", server.port))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "tarun-test")
        .env("AWS_SECRET_ACCESS_KEY", "tarun-test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let seconds = t0.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("1 passed"),
        "the child test did not run: {log}"
    );
    let requests = server.requests.load(Ordering::SeqCst);
    let most = server.most_at_once.load(Ordering::SeqCst);
    eprintln!(
        "{OVERLAP_NODES} lookups: {requests} requests, at most {most} at once, {seconds:.2} s \
         in all"
    );
    assert!(requests >= OVERLAP_NODES, "{requests} requests: {log}");
    assert!(
        most >= 2,
        "the lookups ran one at a time ({requests} requests)"
    );
}

/// The run of [`remote_lookups_of_missing_nodes_overlap`], in the environment it sets.
#[test]
#[ignore = "run by remote_lookups_of_missing_nodes_overlap, in the environment it sets"]
fn remote_lookups_overlap_child() {
    if std::env::var_os(LOOKUP_CHILD).is_none() {
        return;
    }
    let s = study(
        (0..OVERLAP_NODES)
            .map(|k| node(&format!("n{k}"), &[], k as i64))
            .collect(),
    );
    let config = crate::remote::RemoteConfig {
        url: "s3://bucket/prefix".into(),
        push: false,
    };
    let remote = Arc::new(crate::remote::RemoteCache::open(&config).unwrap());
    let runner = Arc::new(FakeRunner::default());
    let h = Harness::new();
    let opts = Options {
        remote: Some(remote),
        ..Options::default()
    };
    let j = h.run_with(&s, runner.clone(), opts);
    assert_eq!(runner.ran.lock().unwrap().len(), OVERLAP_NODES);
    assert!(j.entries.iter().all(|e| e.outcome == Outcome::Ran));
}

/// `tarun status` and `pull` look a study's nodes up a depth at a time: each node after all of
/// its inputs, and nodes of one depth together.
#[test]
fn remote_resolve_groups_nodes_by_depth() {
    // a -> b -> d, a -> c, e alone; d also reads c.
    let s = study(vec![
        node("a", &[], 1),
        node("b", &["a"], 2),
        node("c", &["a"], 3),
        node("d", &["b", "c"], 4),
        node("e", &[], 5),
    ]);
    let g = crate::graph::Graph::new(&s);
    let id = |i: &usize| s.nodes[*i].id.as_str();
    let names = |levels: Vec<Vec<usize>>| -> Vec<Vec<&str>> {
        levels
            .iter()
            .map(|l| {
                let mut l: Vec<&str> = l.iter().map(id).collect();
                l.sort_unstable();
                l
            })
            .collect()
    };
    let all: BTreeSet<usize> = (0..5).collect();
    assert_eq!(
        names(crate::remote::depths(&g, &all)),
        vec![vec!["a", "e"], vec!["b", "c"], vec!["d"]]
    );
    // An unselected input does not count: `d` alone (its inputs not selected) is depth 0.
    let d = s.nodes.iter().position(|n| n.id == "d").unwrap();
    assert_eq!(
        names(crate::remote::depths(&g, &BTreeSet::from([d]))),
        vec![vec!["d"]]
    );
}
