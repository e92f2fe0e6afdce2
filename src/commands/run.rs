//! `tarun run`: compute what is not cached, concurrently, and say what happened.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use tarun_core::digest::{DataDigest, ObjectDigest};
use tarun_core::engine::slurm::SlurmConfig;
use tarun_core::engine::{DevicePool, DeviceSpec, Engine, Executor, Options};
use tarun_core::graph::Graph;
use tarun_core::manifest::{NodeKind, Study};
use tarun_core::plan::{self, NodeStatus, State};
use tarun_core::store::{LockMode, Outcome, OutputRef, RunJournal, Store};
use tokio_util::sync::CancellationToken;

use super::{Result, load, lock_store, select_nodes, warnings};
use crate::cli::{ExecutorKind, RunArgs};
use crate::errors::{self, ExpectedError};
use crate::output::outln;
use crate::reporter::{Expected, Printer, Reporter, Verbosity};
use crate::{estimate, kinds};

pub fn run(args: RunArgs) -> Result<ExitCode> {
    // Before the manifest: a device this build cannot use is a mistake in the command line,
    // whatever the study.
    let devices = device_pool(&args)?;
    let (study, graph) = load(&args.manifest)?;
    let targets = if args.targets.is_empty() {
        None
    } else {
        Some(select_nodes(&study, &args.targets, "--target")?)
    };
    let force = select_nodes(&study, &args.force, "--force")?;
    let executor = executor(&args)?;
    if args.dry_run {
        let opts = DryRun {
            targets: targets.as_ref(),
            force: &force,
            devices: &devices,
            slurm: matches!(executor, Executor::Slurm(_)),
        };
        return dry_run(&args, &study, &graph, &opts);
    }
    // Jobs on other hosts find the store by its absolute path.
    let store_root = match executor {
        Executor::Local => args.store.store.clone(),
        Executor::Slurm(_) => std::path::absolute(&args.store.store)
            .map_err(anyhow::Error::from)
            .and_then(|p| Utf8PathBuf::try_from(p).map_err(anyhow::Error::from))?,
    };
    let store = Store::open(store_root)?;
    let run_id = format!(
        "{}-{:05}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S"),
        std::process::id() % 100_000
    );
    let holder = format!(
        "run {run_id} of `{}` (pid {})",
        args.manifest.manifest,
        std::process::id()
    );
    // Shared: runs go on side by side, each node computed under its own lease; only `gc` and
    // `verify --repair` take it exclusively.
    let _lock = lock_store(&store, LockMode::Shared, &holder)?;
    sweep_leftovers(&store);
    if matches!(executor, Executor::Local) {
        let unfinished = tarun_core::engine::slurm::Files::new(&store).unfinished();
        if let Some((node, job)) = unfinished.first() {
            eprintln!(
                "warning: {} Slurm jobs of this store have not reported an end (job {job} of \
                 `{node}`...); this local run computes their nodes again, `--executor slurm` \
                 would adopt them",
                unfinished.len()
            );
        }
    }
    let data_digest = kinds::data_digest(&study, &store)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, true) => Verbosity::Verbose,
        (false, false) => Verbosity::Normal,
    };
    let expected = if verbosity > Verbosity::Quiet {
        let targets = targets.as_ref();
        expected(
            &study,
            &graph,
            &store,
            &data_digest,
            &devices,
            targets,
            &force,
        )
    } else {
        Expected::default()
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reporter = Reporter::spawn(rx, !args.no_progress && !args.json, verbosity, expected);
    let cancel = CancellationToken::new();
    let interrupted = Arc::new(OnceLock::new());
    {
        let _in_runtime = runtime.enter();
        let slurm = matches!(executor, Executor::Slurm(_));
        let notices = reporter.printer();
        runtime.spawn(stop_on_signals(
            cancel.clone(),
            interrupted.clone(),
            slurm,
            notices,
        ));
    }
    let remote = super::push::open_remote(&study, &args.remote, args.no_push)?;
    let study = Arc::new(study);
    let engine = Engine {
        study: study.clone(),
        graph: Arc::new(graph),
        store,
        runner: Arc::new(kinds::StudyRunner),
        data_digest,
        devices,
        events: tx,
        cancel: cancel.clone(),
        executor,
    };
    let opts = Options {
        targets,
        force,
        fail_fast: args.fail_fast,
        run_id,
        command: std::env::args().collect(),
        interrupted: interrupted.clone(),
        remote,
    };
    let journal = runtime.block_on(engine.run(opts));
    reporter.finish();
    let journal = journal?;
    if !args.json {
        print_summary(&journal);
    }
    print_warnings(&warnings::of_run(
        &Store::open_read_only(args.store.store.clone())?,
        &study,
        &journal,
    ));
    let reports = export_reports(&Store::open(args.store.store.clone())?, &study, &journal)?;
    let signal = interrupted.get().map(String::as_str);
    let code = exit_code(&journal, cancel.is_cancelled(), signal);
    if args.json {
        // The run is over whatever happens to stdout: a closed pipe only loses the document,
        // and the exit code still says how the run went.
        match print_json(&journal, &reports) {
            Ok(()) | Err(ExpectedError::OutputClosed) => {}
            Err(e) => return Err(e),
        }
    } else {
        for report in &reports {
            eprintln!("report: {report}");
        }
    }
    Ok(code)
}

/// `run --json`: the run id, counts per outcome, seconds, the report pages and each node's
/// outcome, seconds and device, as docs/json.md describes.
fn print_json(j: &RunJournal, reports: &[Utf8PathBuf]) -> Result<()> {
    let outcomes = [
        Outcome::Ran,
        Outcome::Cached,
        Outcome::Failed,
        Outcome::Skipped,
        Outcome::Cancelled,
    ];
    let counts: serde_json::Map<String, serde_json::Value> = outcomes
        .iter()
        .map(|&o| (o.as_str().to_owned(), j.count(o).into()))
        .collect();
    let nodes: Vec<serde_json::Value> = j
        .entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id,
                "outcome": e.outcome.as_str(),
                "seconds": e.seconds,
                "device": e.device,
                "attempts": e.attempts,
                "error": e.error,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "run-id": j.run_id,
        "study": j.study,
        "manifest": j.manifest,
        "seconds": j.seconds,
        "interrupted": j.interrupted,
        "counts": counts,
        "reports": reports,
        "nodes": nodes,
    });
    outln!("{}", serde_json::to_string_pretty(&doc).expect("json"))
}

/// Removes what runs killed before their end left in `tmp/` (their job directories and
/// half-written files), judged by whether the process named in each entry is gone; says so when
/// there was any. A failure here only leaves them for `gc`.
fn sweep_leftovers(store: &Store) {
    match store.sweep_dead_temporaries() {
        Ok(removed) if !removed.is_empty() => eprintln!(
            "removed {} leftovers of ended runs from `{}`",
            removed.len(),
            store.tmp_dir()
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("not sweeping `tmp/`: {e}"),
    }
}

/// The executor the flags ask for. Slurm's tools are checked here, so that a missing `sbatch`
/// is one clear error rather than a failure of every node.
fn executor(args: &RunArgs) -> Result<Executor> {
    if args.executor == ExecutorKind::Local {
        if args.partition.is_some() || !args.slurm_opts.is_empty() {
            return Err(ExpectedError::Usage(
                "--partition and --slurm-opt need --executor slurm".into(),
            ));
        }
        return Ok(Executor::Local);
    }
    if !(args.poll_interval.is_finite() && args.poll_interval > 0.0) || args.max_jobs == 0 {
        return Err(ExpectedError::Usage(
            "--poll-interval must be a positive number of seconds and --max-jobs at least 1".into(),
        ));
    }
    let probe = std::process::Command::new("sbatch")
        .arg("--version")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err(ExpectedError::Usage(
            "--executor slurm: `sbatch --version` does not run here; run tarun on a machine \
             that can submit Slurm jobs"
                .into(),
        ));
    }
    let exe = std::env::current_exe().map_err(anyhow::Error::from)?;
    let workdir = std::env::current_dir().map_err(anyhow::Error::from)?;
    let utf8 = |p: std::path::PathBuf| {
        Utf8PathBuf::try_from(p).map_err(|e| ExpectedError::Usage(format!("{e}")))
    };
    Ok(Executor::Slurm(Arc::new(SlurmConfig {
        exe: utf8(exe)?,
        workdir: utf8(workdir)?,
        partition: args.partition.clone(),
        options: args.slurm_opts.clone(),
        poll: Duration::from_secs_f64(args.poll_interval),
        max_jobs: args.max_jobs,
    })))
}

fn device_pool(args: &RunArgs) -> Result<DevicePool> {
    let mut specs: Vec<DeviceSpec> = if args.devices.is_empty() {
        kinds::detect_devices()
    } else {
        args.devices
            .iter()
            .map(|d| d.parse().map_err(ExpectedError::Usage))
            .collect::<Result<_>>()?
    };
    // A dry run only plans: it may name devices this build lacks, to estimate them.
    if !args.dry_run {
        for d in &specs {
            check_built_with(&d.name)?;
        }
    }
    if let Some(jobs) = args.jobs {
        if jobs == 0 {
            return Err(ExpectedError::Usage("--jobs must be at least 1".into()));
        }
        for d in specs.iter_mut().filter(|d| d.name == "cpu") {
            d.slots = jobs;
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(DevicePool::new(specs, cores))
}

/// A `cuda:N` or `metal:N` device needs that backend compiled in: without it every job placed
/// there would fail, so say so before anything is planned, and how to build it (a dry run, which
/// runs nothing, may still name it to see the estimate).
fn check_built_with(device: &str) -> Result<()> {
    let (backend, built) = if device.starts_with("cuda:") {
        ("cuda", cfg!(feature = "cuda"))
    } else if device.starts_with("metal:") {
        ("metal", cfg!(feature = "metal"))
    } else {
        return Ok(());
    };
    if built {
        return Ok(());
    }
    Err(ExpectedError::Usage(format!(
        "--devices {device}: this tarun was built without the `{backend}` feature; rebuild with \
         `cargo build --release --features {backend}` (see `tarun devices` for what this build \
         can use)"
    )))
}

/// The nodes `--target` selects with their ancestors; every node without targets.
fn selected(study: &Study, graph: &Graph, targets: Option<&BTreeSet<usize>>) -> BTreeSet<usize> {
    match targets {
        Some(t) => graph.with_ancestors(t.iter().copied()),
        None => (0..study.nodes.len()).collect(),
    }
}

/// The selected nodes that are not fresh, in topological order: what a run computes.
fn would_run(graph: &Graph, statuses: &[NodeStatus], selected: &BTreeSet<usize>) -> Vec<usize> {
    graph
        .topo_order()
        .iter()
        .copied()
        .filter(|i| selected.contains(i) && statuses[*i].state != State::Fresh)
        .collect()
}

/// What the run about to start should take, for its progress: each node's estimate and the
/// simulated wall time, as a dry run prices them. Empty where planning fails (the run itself
/// then says why).
fn expected(
    study: &Study,
    graph: &Graph,
    store: &Store,
    data: &DataDigest,
    devices: &DevicePool,
    targets: Option<&BTreeSet<usize>>,
    force: &BTreeSet<usize>,
) -> Expected {
    let runner = kinds::StudyRunner;
    let Ok(statuses) = plan::status(study, graph, store, &runner, data, force) else {
        return Expected::default();
    };
    let nodes = would_run(graph, &statuses, &selected(study, graph, targets));
    let forecast = estimate::forecast(study, graph, store, data.as_str(), devices, &runner, &nodes);
    let seconds = nodes
        .iter()
        .zip(&forecast.schedule.jobs)
        .filter_map(|(&i, p)| Some((study.nodes[i].id.clone(), p.as_ref()?.estimate.seconds)))
        .collect();
    Expected {
        seconds,
        wall: forecast.schedule.total,
    }
}

/// What a dry run is asked about.
struct DryRun<'a> {
    targets: Option<&'a BTreeSet<usize>>,
    force: &'a BTreeSet<usize>,
    /// The devices the run would use, for the time estimate.
    devices: &'a DevicePool,
    slurm: bool,
}

/// Lists what would run and why, each with its estimated wall time, then the run's estimated
/// wall time per device and in total (`crate::estimate`).
fn dry_run(
    args: &RunArgs,
    study: &tarun_core::manifest::Study,
    graph: &tarun_core::graph::Graph,
    opts: &DryRun<'_>,
) -> Result<ExitCode> {
    let store = Store::open_read_only(args.store.store.clone())?;
    let data = kinds::planning_digest(study, &store)?;
    let runner = kinds::StudyRunner;
    let statuses = plan::status(study, graph, &store, &runner, &data, opts.force)?;
    let selected = selected(study, graph, opts.targets);
    let would_run = would_run(graph, &statuses, &selected);
    let forecast = estimate::forecast(
        study,
        graph,
        &store,
        data.as_str(),
        opts.devices,
        &runner,
        &would_run,
    );
    for (job, &i) in would_run.iter().enumerate() {
        let s = &statuses[i];
        outln!(
            "would run  {}  ({}: {})  {}",
            s.id,
            s.state.as_str(),
            s.causes.join("; "),
            forecast.describe(study, job)
        )?;
    }
    outln!(
        "{} of {} selected nodes would run; the rest are cached",
        would_run.len(),
        selected.len()
    )?;
    for line in forecast.summary(study) {
        outln!("{line}")?;
    }
    if opts.slurm && !would_run.is_empty() {
        outln!(
            "note: with --executor slurm the jobs run on the cluster's nodes; the estimate is \
             for this machine's devices"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The `warnings:` block, after the summary; nothing when there are none.
fn print_warnings(warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    eprintln!("warnings:");
    for w in warnings {
        eprintln!("  - {w}");
    }
}

fn print_summary(j: &RunJournal) {
    for e in j.entries.iter().filter(|e| e.outcome == Outcome::Failed) {
        eprintln!(
            "failed: {}: {}",
            e.id,
            e.error.as_deref().unwrap_or("unknown error")
        );
    }
    let interrupted = j
        .interrupted
        .as_ref()
        .map(|s| format!(" (interrupted by {s})"))
        .unwrap_or_default();
    eprintln!(
        "run {}: {} ran, {} cached, {} failed, {} skipped, {} cancelled in {:.1}s{interrupted}",
        j.run_id,
        j.count(Outcome::Ran),
        j.count(Outcome::Cached),
        j.count(Outcome::Failed),
        j.count(Outcome::Skipped),
        j.count(Outcome::Cancelled),
        j.seconds
    );
}

/// Refreshes `<store>/reports/<study>/<id>/`, where a person can open them, from the outputs of
/// every report node this run produced or found cached: those of the record of the node's current
/// key (the one the journal names), not of the last record committed for the id, which after a
/// revert (`--set`, run, run without it) is the reverted run's. The copies are a view: nothing
/// reads them back. A file whose content already matches (same size and digest) is left alone, so
/// a no-op run writes nothing; any other is written atomically. Returns the `report.html` pages.
fn export_reports(store: &Store, study: &Study, j: &RunJournal) -> Result<Vec<Utf8PathBuf>> {
    let mut pages = Vec::new();
    for e in j
        .entries
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Ran | Outcome::Cached))
    {
        let Some(node) = study.nodes.iter().find(|n| n.id == e.id) else {
            continue;
        };
        if node.kind != NodeKind::Report {
            continue;
        }
        let Some(key) = e.key else {
            continue;
        };
        let Some(record) = store.read_record(&key)? else {
            continue;
        };
        let dir = store.root().join("reports").join(&study.name).join(&e.id);
        std::fs::create_dir_all(&dir).map_err(anyhow::Error::from)?;
        for (name, out) in &record.outputs {
            let dest = dir.join(name);
            if view_matches(&dest, out) {
                continue;
            }
            let bytes =
                std::fs::read(store.object_path(&out.digest)).map_err(anyhow::Error::from)?;
            store.write_atomic(&dest, &bytes)?;
        }
        prune_view(&dir, &record.outputs)?;
        if record.outputs.contains_key("report.html") {
            pages.push(dir.join("report.html"));
        }
    }
    Ok(pages)
}

/// Removes the view's files that the current record does not have (a figure only an older
/// report drew), so that the folder shows one report, not a mix. Folders are left alone: tarun
/// writes none there.
fn prune_view(dir: &Utf8Path, outputs: &BTreeMap<String, OutputRef>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(anyhow::Error::from)? {
        let entry = entry.map_err(anyhow::Error::from)?;
        let name = entry.file_name();
        let ours = name.to_str().is_some_and(|n| outputs.contains_key(n));
        if !ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path()).map_err(anyhow::Error::from)?;
        }
    }
    Ok(())
}

/// Whether the view file at `path` already holds the object `out`: a stat, then a hash only when
/// the size matches.
fn view_matches(path: &Utf8Path, out: &OutputRef) -> bool {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == out.size) {
        return false;
    }
    std::fs::File::open(path)
        .and_then(|f| ObjectDigest::of_reader(std::io::BufReader::new(f)))
        .is_ok_and(|d| d == out.digest)
}

fn exit_code(j: &RunJournal, cancelled: bool, signal: Option<&str>) -> ExitCode {
    if cancelled && j.count(Outcome::Failed) == 0 {
        let code = STOP_SIGNALS
            .iter()
            .find(|s| Some(s.name) == signal)
            .map_or(errors::INTERRUPTED, |s| errors::interrupted_by(s.number));
        ExitCode::from(code)
    } else if j.count(Outcome::Failed) > 0 || j.count(Outcome::Cancelled) > 0 {
        ExitCode::from(errors::NODE_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// A signal that interrupts a run.
struct StopSignal {
    name: &'static str,
    number: i32,
    /// Who sends it, for the message.
    from: &'static str,
}

/// What stops a run as Ctrl-C does: SIGINT itself, SIGTERM (what Slurm's time limit and
/// `scancel`, systemd, `docker stop`, Kubernetes and CI runners send before SIGKILL) and SIGHUP
/// (the terminal closed).
const STOP_SIGNALS: [StopSignal; 3] = [
    StopSignal {
        name: "SIGINT",
        number: libc::SIGINT,
        from: " (Ctrl-C)",
    },
    StopSignal {
        name: "SIGTERM",
        number: libc::SIGTERM,
        from: "",
    },
    StopSignal {
        name: "SIGHUP",
        number: libc::SIGHUP,
        from: " (the terminal closed)",
    },
];

/// The first of [`STOP_SIGNALS`] cancels the jobs at their next batch boundary (and this run's
/// Slurm jobs), after recording its name in `interrupted` for the journal; the run then ends as
/// usual, keeping nothing partial, and exits 128 + the signal's number. A second signal exits at
/// once with its own code. A SIGHUP the parent ignores (`nohup`) stays ignored. Call within the
/// runtime: the handlers are installed before this returns, so that no signal finds the
/// default action (death without a word) once the run has started.
fn stop_on_signals(
    cancel: CancellationToken,
    interrupted: Arc<OnceLock<String>>,
    slurm: bool,
    notices: Printer,
) -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static StopSignal>();
    for s in &STOP_SIGNALS {
        if s.number == libc::SIGHUP && ignored(s.number) {
            continue;
        }
        let Ok(mut stream) = signal(SignalKind::from_raw(s.number)) else {
            tracing::warn!(
                "cannot catch {}: it will end the run without cleaning up",
                s.name
            );
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move { while stream.recv().await.is_some() && tx.send(s).is_ok() {} });
    }
    async move {
        let Some(first) = rx.recv().await else {
            return;
        };
        let _ = interrupted.set(first.name.to_owned());
        let also = if slurm {
            " and cancelling this run's Slurm jobs"
        } else {
            ""
        };
        notices.line(&format!(
            "interrupted by {}{}: stopping running nodes at their next batch{also}; nothing \
             partial is kept (a second signal exits at once)",
            first.name, first.from
        ));
        cancel.cancel();
        if let Some(second) = rx.recv().await {
            std::process::exit(i32::from(errors::interrupted_by(second.number)));
        }
    }
}

/// Whether `number`'s disposition is "ignore", as `nohup` leaves SIGHUP.
fn ignored(number: i32) -> bool {
    // SAFETY: with a null new action, sigaction(2) only reads the current one into `old`, a
    // zeroed `sigaction` we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(number, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}
