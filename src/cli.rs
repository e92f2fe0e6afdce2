//! Command-line arguments.

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// `-V`: the version and the commit built from (when git could tell, at build time).
const VERSION: &str = env!("TARUN_VERSION");
/// `--version`: the same, and the GPU support compiled in (as `tarun devices` reports it).
const LONG_VERSION: &str = concat!(
    env!("TARUN_VERSION"),
    "\nbuilt with: ",
    env!("TARUN_FEATURES")
);

/// The exit codes, for `--help` and the man page (README's list): code, meaning.
pub const EXIT_CODES: &[(&str, &str)] = &[
    (
        "0",
        "success (also when the reader of stdout goes away, as with `| head`)",
    ),
    (
        "1",
        "a node failed (`status --check`: a node would run; `data info`: the data is incomplete)",
    ),
    ("2", "invalid manifest or usage"),
    ("3", "store error"),
    ("4", "other error (a failed write to stdout among them)"),
    ("130", "interrupted by SIGINT (Ctrl-C)"),
    (
        "143",
        "interrupted by SIGTERM (Slurm's time limit, systemd, `docker stop`, CI runners)",
    ),
    (
        "129",
        "interrupted by SIGHUP (the terminal closed; not under `nohup`)",
    ),
];

/// The environment variables tarun reads, for `--help` and the man page: name, meaning.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "TARUN_STORE",
        "the artifact store, when `--store` is not given (default: artifacts)",
    ),
    (
        "TARUN_REMOTE",
        "the remote cache, e.g. `s3://bucket/prefix` (`--remote`; docs/remote.md)",
    ),
    (
        "TARUN_LOG",
        "log filter for stderr, e.g. `debug` (default: warn)",
    ),
    (
        "TARUN_KERNELS",
        "`candle`: use Candle's stock ops instead of tarun's kernels",
    ),
    (
        "TARUN_GPU_PRECISION",
        "`fp32`: exact f32 GPU convolutions instead of TF32",
    ),
    (
        "TARUN_CPU_SIMD",
        "`avx2`: AVX2 CPU kernels on an AVX-512 CPU; `none`: none (default: widest)",
    ),
    (
        "TARUN_HUGE_PAGES",
        "`0`: do not turn on transparent huge pages (glibc)",
    ),
    (
        "NO_COLOR",
        "when set (not empty): no colour with `--color auto` (the default)",
    ),
];

/// After `--help`'s options: what a script around tarun needs to know, from [`EXIT_CODES`] and
/// [`ENV_VARS`].
fn after_long_help() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, meaning) in EXIT_CODES {
        text.push_str(&format!("  {code:<4} {meaning}\n"));
    }
    text.push_str("\nEnvironment variables:\n");
    for (name, meaning) in ENV_VARS {
        text.push_str(&format!("  {name:<20} {meaning}\n"));
    }
    text.truncate(text.trim_end().len());
    text
}

#[derive(Debug, Parser)]
#[command(
    name = "tarun",
    version = VERSION,
    long_version = LONG_VERSION,
    about = "Run machine-learning studies as declarative, cached DAGs",
    after_help = "Exit codes and environment variables: see `tarun --help`.",
    after_long_help = after_long_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to colour output: `results`' heat table on stdout, progress bars and logs on
    /// stderr. `auto`: where the stream is a terminal and `NO_COLOR` is unset.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        global = true,
        value_name = "WHEN"
    )]
    pub color: ColorChoice,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The artifact store (default: `artifacts/` in the current directory).
    #[arg(long, env = "TARUN_STORE", default_value = "artifacts", global = true)]
    pub store: Utf8PathBuf,
}

/// The remote cache (docs/remote.md).
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The remote cache: `s3://bucket/prefix`, `gs://..`, `az://..`, `https://..` or
    /// `file:///shared/dir` (over the manifest's `[cache] remote`). Credentials come from the
    /// service's usual environment variables.
    #[arg(long, value_name = "URL", env = "TARUN_REMOTE", hide_env_values = true)]
    pub remote: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Only these nodes and their ancestors.
    #[arg(long = "target", value_name = "ID")]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The study manifest, e.g. `experiments/quickstart.toml`.
    pub manifest: Utf8PathBuf,
    /// Override a manifest value: `--set train.base.lr=3e-4` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a study: compute every node that is not cached.
    Run(RunArgs),
    /// Show the nodes a run would run (stale, missing or blocked) and why, then a summary.
    Status(StatusArgs),
    /// Print the study's graph.
    Dag(DagArgs),
    /// Remove from the store what none of the given manifests references.
    Gc(GcArgs),
    /// Copy the outputs of fresh nodes (checkpoints, metrics, reports) out of the store.
    Export(ExportArgs),
    /// Every evaluate node's metrics as one table, the matrix axes as columns, or one metric
    /// as a grid over two axes (nothing is run).
    Results(ResultsArgs),
    /// Compare two studies (two manifests, a manifest at two git revisions, or one with and
    /// without `--set`): the nodes whose keys differ and why, and the metrics of both sides with
    /// their deltas (nothing is run).
    Compare(CompareArgs),
    /// Re-hash every object in the store and name every corrupt one.
    Verify(VerifyArgs),
    /// Upload every fresh node's record and objects to the remote cache (docs/remote.md).
    Push(PushArgs),
    /// Download from the remote cache the nodes this store lacks and the remote has.
    Pull(PushArgs),
    /// List past runs.
    Log(LogArgs),
    /// Fetch data sets, or say where a study's data is found and whether it is complete.
    #[command(subcommand)]
    Data(DataCommand),
    /// Measure training and inference speed of the networks (and PyTorch's, when installed).
    Bench(BenchArgs),
    /// List the devices this build can use, with the slots and memory `run` gives them.
    Devices(DevicesArgs),
    /// Print a completion script for bash, zsh or fish.
    Completions(CompletionsArgs),
    /// Print the man page (roff), or a subcommand's; `--dir`: write them all into a folder.
    Man(ManArgs),
    /// Run one node of a study, as a Slurm job does (`tarun run --executor slurm` submits it).
    #[command(hide = true)]
    ExecNode(ExecNodeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A subcommand, for its own page: `run` for tarun-run(1), `data-info` for
    /// tarun-data-info(1); by default tarun(1).
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "dir")]
    pub command: Option<String>,
    /// Write tarun.1 and every subcommand's page into this folder, e.g.
    /// `~/.local/share/man/man1`, instead of printing one.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<Utf8PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    /// Run nodes in this process, on this machine's devices.
    Local,
    /// Submit each node that needs a device as a Slurm job (the store must be on a filesystem
    /// the cluster's nodes share).
    Slurm,
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print JSON: `{"devices":[{"name":..,"description":..,"memory-mb":..,"slots":..}]}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExecNodeArgs {
    /// The node's key, as the driver wrote it under `<store>/slurm/tasks/`.
    pub key: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Run only these nodes and their ancestors.
    #[arg(long = "target", value_name = "ID")]
    pub targets: Vec<String>,
    /// Rerun these nodes even if they are cached.
    #[arg(long = "force", value_name = "ID")]
    pub force: Vec<String>,
    /// List what would run, and why, with its estimated wall time, without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Devices to use: `cpu`, `cuda:0`, `metal:0`, each optionally `*SLOTS` (default: detected).
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Concurrent jobs on the CPU (default 1: one job uses every core).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Stop at the first failed node instead of finishing independent branches.
    #[arg(long)]
    pub fail_fast: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Do not upload what this run computes to the remote cache (over `[cache] push`).
    #[arg(long)]
    pub no_push: bool,
    /// Hide progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Say only the summary, warnings and failures: no bars, no line per node.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also say when each node starts, and every node's per-epoch lines where stderr is not a
    /// terminal (a log file, a Slurm output; on a terminal they are shown anyway).
    #[arg(short, long)]
    pub verbose: bool,
    /// Where nodes that train or evaluate run: here, or as Slurm jobs.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorKind,
    /// Slurm partition for every job (over the manifest's `[slurm] partition`).
    #[arg(long)]
    pub partition: Option<String>,
    /// Extra `sbatch` option for every job, e.g. `--slurm-opt=--account=abc` (repeatable).
    #[arg(long = "slurm-opt", value_name = "OPTION", allow_hyphen_values = true)]
    pub slurm_opts: Vec<String>,
    /// Seconds between two polls of the Slurm job states.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    pub poll_interval: f64,
    /// At most this many Slurm jobs queued or running at once.
    #[arg(long, default_value_t = 1000)]
    pub max_jobs: usize,
    /// Print one JSON document at the end instead of the summary (docs/json.md): the run id,
    /// counts per outcome, each node's outcome, seconds and device; no progress bars.
    #[arg(long, conflicts_with = "dry_run")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Print JSON: `{"nodes":[{"id":..,"kind":..,"state":..,"causes":[..]}]}`, every node
    /// unless `--state` is given.
    #[arg(long)]
    pub json: bool,
    /// Print the key material of one node.
    #[arg(long, value_name = "ID", conflicts_with_all = ["all", "states"])]
    pub explain: Option<String>,
    /// List every node (by default the text lists only the nodes that are not fresh).
    #[arg(long, conflicts_with = "states")]
    pub all: bool,
    /// List only the nodes in these states (repeatable, or comma-separated).
    #[arg(
        long = "state",
        value_name = "STATE",
        value_enum,
        value_delimiter = ','
    )]
    pub states: Vec<NodeState>,
    /// Exit 1 when any node would run (is not fresh), 0 when every node is fresh (for CI).
    #[arg(long)]
    pub check: bool,
}

/// A node's state, as `status --state` selects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeState {
    Fresh,
    Stale,
    Missing,
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DagFormat {
    /// One line per node with its inputs.
    Text,
    /// Graphviz.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// One JSON object, documented in docs/json.md.
    Json,
}

#[derive(Debug, Args)]
pub struct DagArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: DagFormat,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Manifests whose current nodes are kept.
    #[arg(required = true)]
    pub manifests: Vec<Utf8PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Say what would be removed without removing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was (or would be) removed as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Move corrupt objects and unreadable records to `quarantine/`, so that the nodes they
    /// belonged to show as stale and the next run recomputes them.
    #[arg(long)]
    pub repair: bool,
    /// Print what was checked and each problem as JSON (docs/json.md); the exit code is the
    /// same.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Node ids or family names, e.g. `base[arch=resnet18]` or `expert`.
    #[arg(required = true)]
    pub nodes: Vec<String>,
    /// Where to write: one folder per node, named after its id.
    #[arg(long, default_value = "export")]
    pub to: Utf8PathBuf,
    /// Print the files copied as JSON (docs/json.md): node, name, digest, destination.
    #[arg(long)]
    pub json: bool,
}

/// How `tarun results` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultsFormat {
    /// Aligned columns for the terminal (a pivot's cells coloured by value in a terminal).
    Table,
    /// One JSON object, documented in docs/results.md.
    Json,
    /// Comma-separated values with a header line, numbers at full precision.
    Csv,
    /// A Markdown table.
    Md,
}

/// When to colour output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Where the stream is a terminal and `NO_COLOR` is not set (or empty).
    Auto,
    /// Even into a pipe or a file.
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Keep the rows where KEY is VALUE: an axis (`arch=resnet18`, numbers compared by value),
    /// `node` (a family name or a node id) or `state` (fresh, stale, missing, blocked).
    /// Repeatable: different keys must all match, values of one key are alternatives.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Sort the rows by this column (`-retain-acc`: descending); rows without a value last.
    #[arg(long, value_name = "COLUMN", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// The columns to print, in this order (comma-separated): `node`, `state`, axes, metrics.
    #[arg(long, value_name = "COLUMN,...", value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Pivot: one row per value of this axis (needs `--cols` and `--value`).
    #[arg(
        long,
        value_name = "AXIS",
        requires_all = ["cols", "value"],
        conflicts_with_all = ["sort", "columns"]
    )]
    pub rows: Option<String>,
    /// Pivot: one column per value of this axis.
    #[arg(long, value_name = "AXIS", requires_all = ["rows", "value"])]
    pub cols: Option<String>,
    /// Pivot: the metric in each cell.
    #[arg(long, value_name = "METRIC", requires_all = ["rows", "cols"])]
    pub value: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ResultsFormat,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// How `tarun compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    /// The node list, then each family's metric rows, then what is not computed.
    Table,
    /// One JSON object, documented in docs/compare.md.
    Json,
    /// One row per node and metric (one per node without metric rows), numbers at full precision.
    Csv,
    /// Two Markdown tables: the nodes, then the metrics.
    Md,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Side A: a manifest, `PATH@REV` for the manifest (and the files it includes) at a git
    /// revision, e.g. `experiments/quickstart.toml@HEAD~1`, or a run id as `tarun log` lists it
    /// (or a unique prefix of one, at least 4 characters).
    #[arg(value_name = "A")]
    pub a: String,
    /// Side B, as A; when omitted, B is A's manifest with `--set-b` (which is then required).
    #[arg(value_name = "B")]
    pub b: Option<String>,
    /// Override a value of side A's manifest, as `run --set` does (repeatable).
    #[arg(long = "set-a", value_name = "PATH=VALUE")]
    pub set_a: Vec<String>,
    /// Override a value of side B's manifest (repeatable).
    #[arg(long = "set-b", value_name = "PATH=VALUE")]
    pub set_b: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Hide the nodes both sides share whose metrics are equal.
    #[arg(long)]
    pub only_changed: bool,
    /// Hide the metric rows whose |B - A| is at most this (and equal non-numeric values).
    #[arg(long, value_name = "X", allow_hyphen_values = true)]
    pub threshold: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: CompareFormat,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Also write the comparison as a self-contained HTML page (inline CSS and SVG): the sides,
    /// the changed nodes, every metric per family and the grids of `select` nodes.
    #[arg(long, value_name = "FILE")]
    pub html: Option<Utf8PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Show every node of the last N runs.
    #[arg(long)]
    pub detail: Option<usize>,
    /// Print one run's timeline: every node it started, with device, start and end (seconds
    /// from the run's start), peak memory and attempts, as tab-separated values (`--json`: JSON).
    /// RUN is a run id, a unique prefix of one, or `last`.
    #[arg(long, value_name = "RUN")]
    pub trace: Option<String>,
    /// Print the journals (or with `--trace`, the timeline) as JSON: see docs/log.md.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download CIFAR-10 (binary version), verify its checksum and extract it.
    Fetch {
        /// Only `cifar10` is known.
        dataset: String,
        /// Where to put `cifar-10-batches-bin`.
        #[arg(long, default_value = "data")]
        dest: Utf8PathBuf,
    },
    /// Where a study's data is found and whether it is complete: for CIFAR-10 the folder, each
    /// split's file, image count and size, and whether the files are CIFAR-10's.
    Info(DataInfoArgs),
}

#[derive(Debug, Args)]
pub struct DataInfoArgs {
    /// A study manifest (its `[data]` section), or a folder holding (or inside)
    /// `cifar-10-batches-bin`.
    #[arg(value_name = "MANIFEST|PATH")]
    pub target: Utf8PathBuf,
    /// Print JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: `train` (each network's training and inference, beside PyTorch) or
    /// `jobs` (the training throughput of several jobs at once on one device: `--jobs`).
    #[arg(default_value = "train")]
    pub suite: String,
    /// `train` suite: CPU threads for both tools, e.g. `--threads 1,2,16` for how each scales
    /// with cores (default: all of this machine's). Only rows on all threads are saved for
    /// `run --dry-run`.
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// `jobs` suite: how many jobs at once (default 1,2,4).
    #[arg(long, value_delimiter = ',')]
    pub jobs: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed steps per round (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Rounds per row: each times `--steps` tarun steps, then as many PyTorch steps, so that
    /// both see the same machine state; the figures are medians over all rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Only these networks (default: all three).
    #[arg(long, value_delimiter = ',')]
    pub arch: Vec<String>,
    /// Only these widths.
    #[arg(long, value_delimiter = ',')]
    pub width: Vec<f64>,
    /// Only these batch sizes.
    #[arg(long, value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// Measure tarun alone, even where PyTorch is installed (for profilers).
    #[arg(long)]
    pub no_torch: bool,
    /// Where to measure: `cpu` (default), `cuda:0`, `metal:0` (PyTorch runs on the same device).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The results are also saved to `<store>/bench/<device>.json`, where `tarun run
    /// --dry-run` reads them to estimate how long nodes take.
    #[command(flatten)]
    pub store: StoreArgs,
}
