//! `tarun bench`: images per second of a training step and of inference for each network, and
//! PyTorch's on the same machine in the same run when it is installed.
//!
//! Each row builds the network (and, with PyTorch, the same network in three `bench/torch_bench.py
//! --serve` processes with the same thread count, one per way of running it: eager, the default;
//! eager in `channels_last` memory format; `torch.compile` with Inductor), runs the warm-up steps
//! on all (compilation included, so it is never timed), then alternates: `--steps` timed tarun
//! training steps, as many steps of each PyTorch process, then the same for inference, for
//! `--rounds` rounds. The figures are medians over all timed steps; each row's ratios are
//! tarun's against eager PyTorch and against the fastest PyTorch column. A column that fails
//! (`torch.compile` without a C++ compiler, say) is reported unavailable with its reason; only
//! eager PyTorch failing fails the bench. These shared machines speed up and slow down by tens of
//! percent within a minute; alternating in small rounds lets all sides see the same machine,
//! which one block after the other did not. Peak memory is tarun's peak resident set since the
//! row started (Linux resets it through `/proc/self/clear_refs`; the PyTorch processes are not
//! counted), and each PyTorch process's own. The results are saved in the store
//! (`<store>/bench/<device>.json`), where `tarun run --dry-run` prices nodes with them.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use serde_json::Value;
use tarun_core::store::Store;
use tarun_ml::models::{Arch, Kernels, Mode, Network};
use tarun_ml::train::{Optimizer, OptimizerKind};

use super::Result;
use crate::cli::BenchArgs;
use crate::errors::ExpectedError;
use crate::estimate::{self, BenchFile};
use crate::output::{out, outln};

const TORCH_SCRIPT: &str = include_str!("../../bench/torch_bench.py");

/// The ways the PyTorch peer runs each row (`torch_bench.py`'s variants), eager first: PyTorch's
/// default, and the only one whose failure fails the bench.
const TORCH_VARIANTS: [&str; 3] = ["eager", "channels_last", "compile"];

#[derive(Debug, Serialize)]
struct Row {
    arch: String,
    width: f64,
    batch: usize,
    /// CPU threads both tools computed with (`--threads`; the machine's by default).
    threads: usize,
    train_images_per_s: f64,
    infer_images_per_s: f64,
    peak_mb: Option<f64>,
    torch_train_images_per_s: Option<f64>,
    torch_infer_images_per_s: Option<f64>,
    /// The PyTorch process's peak resident set (its own row only: one process per row, torch's
    /// import included).
    torch_peak_mb: Option<f64>,
    /// PyTorch eager with the model and input in `torch.channels_last` memory format.
    torch_channels_last_train_images_per_s: Option<f64>,
    torch_channels_last_infer_images_per_s: Option<f64>,
    torch_channels_last_peak_mb: Option<f64>,
    /// Why the column has no figures, when it was measured and failed.
    torch_channels_last_error: Option<String>,
    /// PyTorch with `torch.compile(model)` (Inductor, default mode; compilation in the warm-up).
    torch_compile_train_images_per_s: Option<f64>,
    torch_compile_infer_images_per_s: Option<f64>,
    /// Its process's peak, compilation included.
    torch_compile_peak_mb: Option<f64>,
    torch_compile_error: Option<String>,
    /// The fastest PyTorch column's variant (`eager`, `channels_last`, `compile`) and figure.
    torch_best_train: Option<&'static str>,
    torch_best_train_images_per_s: Option<f64>,
    torch_best_infer: Option<&'static str>,
    torch_best_infer_images_per_s: Option<f64>,
    /// tarun / eager PyTorch.
    train_ratio: Option<f64>,
    infer_ratio: Option<f64>,
    /// tarun / the fastest PyTorch column.
    train_ratio_best: Option<f64>,
    infer_ratio_best: Option<f64>,
}

/// The fastest of PyTorch's columns that have a figure (the first of equals, so eager wins a
/// tie): its variant and images/second.
fn best(columns: &[(&'static str, Option<f64>)]) -> Option<(&'static str, f64)> {
    columns
        .iter()
        .filter_map(|&(name, rate)| rate.filter(|r| r.is_finite()).map(|r| (name, r)))
        .reduce(|a, b| if b.1 > a.1 { b } else { a })
}

/// tarun's images/second over PyTorch's.
fn ratio(tarun: f64, torch: Option<f64>) -> Option<f64> {
    torch.map(|t| tarun / t)
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    match args.suite.as_str() {
        "train" => {}
        "jobs" => return super::bench_jobs::bench_jobs(&args),
        other => {
            return Err(ExpectedError::Usage(format!(
                "unknown bench suite `{other}` (train, jobs)"
            )));
        }
    }
    let (archs, widths, batches) = grid(&args)?;
    let device = tarun_ml::device::open(&args.device).map_err(ExpectedError::Usage)?;
    let torch = !args.no_torch && torch_available();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let counts = if args.threads.is_empty() {
        vec![threads]
    } else {
        args.threads.clone()
    };
    if counts.contains(&0) {
        return Err(ExpectedError::Usage("--threads counts start at 1".into()));
    }
    // The script ships inside the binary, so an installed tarun needs no source tree.
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("torch_bench.py");
    std::fs::write(&script, TORCH_SCRIPT)?;
    let mut rows = vec![];
    for &arch in &archs {
        for &width in &widths {
            for &batch in &batches {
                for &threads in &counts {
                    let mut columns = vec![];
                    if torch {
                        let spec = (arch, width, batch, threads, args.device.as_str());
                        for variant in TORCH_VARIANTS {
                            let peer = TorchPeer::start(&script, spec, variant)?;
                            columns.push(Column::new(variant, peer));
                        }
                    }
                    // Inside a pool of its own, as `tarun run` runs every node: the steps'
                    // thread is then one of the pool's, running its share of each parallel op
                    // itself. From outside, it handed every op to the pool and slept until it
                    // was done, a wake-up and a sleep per op (ResNet-18 width 0.25 batch 32
                    // trained about 12 % slower).
                    let row = tarun_ml::device::with_threads(threads, || {
                        measure(arch, width, batch, threads, &args, &device, columns)
                    })?;
                    if !args.json {
                        eprintln!(
                            "measured {} width {} batch {} on {threads} threads",
                            row.arch, row.width, row.batch
                        );
                    }
                    rows.push(row);
                }
            }
        }
    }
    let out = serde_json::json!({
        "device": args.device,
        "threads": threads,
        "kernels": Kernels::selected().name(),
        "torch": torch,
        "torch_variants": if torch { &TORCH_VARIANTS[..] } else { &[] },
        "steps": args.steps.max(1),
        "rounds": args.rounds.max(1),
        "rows": rows,
    });
    // The measurements are the work: a closed stdout (`| head -1`) ends the printing, never
    // the saving below; the write's error is returned once they are saved.
    let printed = if args.json {
        outln!("{}", serde_json::to_string_pretty(&out).expect("json"))
    } else {
        print_table(&rows, torch, &counts, &args)
    };
    // The estimates price jobs with all of the machine's threads: only those rows are saved.
    let mut full = out.clone();
    full["rows"] = serde_json::to_value(
        rows.iter()
            .filter(|r| r.threads == threads)
            .collect::<Vec<_>>(),
    )
    .expect("json");
    if full["rows"].as_array().is_some_and(|r| r.is_empty()) {
        eprintln!(
            "not saved for `tarun run --dry-run`: its estimates use rows measured on all {threads} threads"
        );
    } else {
        let path = save(&args.store.store, &full)?;
        eprintln!("saved to `{path}`, where `tarun run --dry-run` reads its time estimates from");
    }
    printed?;
    Ok(ExitCode::SUCCESS)
}

/// The networks, widths and batch sizes a bench measures: `--arch`, `--width` and `--batch`,
/// or all three networks at widths 0.25 and 1 with batches 32 and 128.
pub(super) fn grid(args: &BenchArgs) -> Result<(Vec<Arch>, Vec<f64>, Vec<usize>)> {
    let archs: Vec<Arch> = if args.arch.is_empty() {
        Arch::ALL.to_vec()
    } else {
        args.arch
            .iter()
            .map(|a| a.parse().map_err(|e| ExpectedError::Usage(format!("{e}"))))
            .collect::<Result<_>>()?
    };
    let widths = if args.width.is_empty() {
        vec![0.25, 1.0]
    } else {
        args.width.clone()
    };
    let batches = if args.batch.is_empty() {
        vec![32, 128]
    } else {
        args.batch.clone()
    };
    Ok((archs, widths, batches))
}

/// Saves a bench result to `<store>/bench/<device>.json` (see `estimate::bench_path`) for
/// `run --dry-run`'s estimates, with the time it was measured. Rows an earlier run measured on
/// the same thread count and kernels and this one did not are kept, so that a run limited to
/// one network (`--arch`) adds to the file instead of replacing it.
fn save(store: &Utf8Path, out: &Value) -> Result<Utf8PathBuf> {
    let store = Store::open(store)?;
    let device = out["device"].as_str().unwrap_or("cpu");
    let path = estimate::bench_path(store.root(), device, Kernels::selected());
    let mut rows = out["rows"].as_array().cloned().unwrap_or_default();
    let earlier = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<BenchFile>(&text).ok());
    if let Some(old) = earlier
        && Some(old.threads as u64) == out["threads"].as_u64()
        && Some(old.kernels.as_str()) == out["kernels"].as_str()
    {
        let same = |a: &Value, b: &Value| ["arch", "width", "batch"].iter().all(|k| a[k] == b[k]);
        for row in old.rows {
            if !rows.iter().any(|r| same(r, &row)) {
                rows.push(row);
            }
        }
    }
    let order = |r: &Value| {
        let num = |k: &str| r[k].as_f64().unwrap_or(0.0);
        (
            r["arch"].as_str().unwrap_or("").to_owned(),
            num("width"),
            num("batch"),
        )
    };
    rows.sort_by(|a, b| {
        let (x, y) = (order(a), order(b));
        x.0.cmp(&y.0)
            .then(x.1.total_cmp(&y.1))
            .then(x.2.total_cmp(&y.2))
    });
    let mut file = out.clone();
    file["rows"] = Value::Array(rows);
    file["measured"] = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
        .into();
    let dir = path.parent().expect("bench files are in a folder");
    std::fs::create_dir_all(dir)?;
    let mut text = serde_json::to_vec_pretty(&file).expect("json");
    text.push(b'\n');
    store.write_atomic(&path, &text)?;
    Ok(path)
}

/// One row's tarun side: the network, its optimizer and a fixed batch.
pub(super) struct Subject {
    net: Network,
    opt: Optimizer,
    x: Tensor,
    y: Tensor,
    device: Device,
}

impl Subject {
    pub(super) fn new(
        arch: Arch,
        width: f64,
        batch: usize,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let net = Network::new(arch, width, 10, 0, device)?;
        let opt = Optimizer::new(OptimizerKind::AdamW, net.trainable_vars(), 0.01, 0.0)?;
        let x = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), device)?;
        let labels: Vec<u32> = (0..batch).map(|i| (i % 10) as u32).collect();
        let y = Tensor::new(labels.as_slice(), device)?;
        Ok(Self {
            net,
            opt,
            x,
            y,
            device: device.clone(),
        })
    }

    pub(super) fn train_step(&mut self) -> anyhow::Result<()> {
        // The training step's own forward and backward (`Trainer` runs the same).
        let taped = self.net.forward_taped(&self.x, Mode::TRAIN)?;
        let loss = candle_nn::loss::cross_entropy(&taped.logits, &self.y)?;
        self.opt.step(&taped.backward(&loss)?, 1e-4)?;
        // A GPU queues the work: the step is done when the device says so.
        self.device.synchronize()?;
        Ok(())
    }

    fn infer_step(&mut self) -> anyhow::Result<()> {
        self.net
            .forward_inference(&self.x)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()?;
        Ok(())
    }

    pub(super) fn timed(&mut self, train: bool, steps: usize) -> anyhow::Result<Vec<f64>> {
        (0..steps)
            .map(|_| {
                let t0 = Instant::now();
                if train {
                    self.train_step()?;
                } else {
                    self.infer_step()?;
                }
                Ok(t0.elapsed().as_secs_f64())
            })
            .collect()
    }
}

fn measure(
    arch: Arch,
    width: f64,
    batch: usize,
    threads: usize,
    args: &BenchArgs,
    device: &Device,
    mut columns: Vec<Column>,
) -> Result<Row> {
    let (steps, rounds) = (args.steps.max(1), args.rounds.max(1));
    tarun_ml::device::release_free_memory();
    tarun_core::memory::reset_peak();
    let mut me = Subject::new(arch, width, batch, device)?;
    me.train_step()?;
    me.infer_step()?;
    for c in &mut columns {
        c.ask("warmup")?;
    }
    // [tarun train, tarun infer]
    let mut times: [Vec<f64>; 2] = Default::default();
    for _ in 0..rounds {
        for (k, train) in [(0, true), (1, false)] {
            times[k].extend(me.timed(train, steps)?);
            let kind = if train { "train" } else { "infer" };
            for c in &mut columns {
                c.ask(&format!("{kind} {steps}"))?;
            }
        }
    }
    let rate = |t: &mut Vec<f64>| -> Option<f64> {
        t.sort_by(f64::total_cmp);
        (!t.is_empty()).then(|| batch as f64 / t[t.len() / 2])
    };
    let [mut tt, mut ti] = times;
    let (train, infer) = (
        rate(&mut tt).unwrap_or(f64::NAN),
        rate(&mut ti).unwrap_or(f64::NAN),
    );
    // Per variant: train and infer images/second, peak MB, error.
    type Figures = (Option<f64>, Option<f64>, Option<f64>, Option<String>);
    let mut figures: Vec<(&'static str, Figures)> = vec![];
    for mut c in columns {
        let peak = c.finish()?;
        let [mut t, mut i] = std::mem::take(&mut c.times);
        let f = match c.error {
            Some(e) => (None, None, peak, Some(e)),
            None => (rate(&mut t), rate(&mut i), peak, None),
        };
        figures.push((c.variant, f));
    }
    let of = |v: &str| {
        figures
            .iter()
            .find(|(name, _)| *name == v)
            .map_or((None, None, None, None), |(_, f)| f.clone())
    };
    let (eager, cl, compile) = (of("eager"), of("channels_last"), of("compile"));
    let best_train = best(&[
        ("eager", eager.0),
        ("channels_last", cl.0),
        ("compile", compile.0),
    ]);
    let best_infer = best(&[
        ("eager", eager.1),
        ("channels_last", cl.1),
        ("compile", compile.1),
    ]);
    Ok(Row {
        arch: arch.name().to_owned(),
        width,
        batch,
        threads,
        train_images_per_s: train,
        infer_images_per_s: infer,
        peak_mb: tarun_core::memory::peak_mb(),
        torch_train_images_per_s: eager.0,
        torch_infer_images_per_s: eager.1,
        torch_peak_mb: eager.2,
        torch_channels_last_train_images_per_s: cl.0,
        torch_channels_last_infer_images_per_s: cl.1,
        torch_channels_last_peak_mb: cl.2,
        torch_channels_last_error: cl.3,
        torch_compile_train_images_per_s: compile.0,
        torch_compile_infer_images_per_s: compile.1,
        torch_compile_peak_mb: compile.2,
        torch_compile_error: compile.3,
        torch_best_train: best_train.map(|b| b.0),
        torch_best_train_images_per_s: best_train.map(|b| b.1),
        torch_best_infer: best_infer.map(|b| b.0),
        torch_best_infer_images_per_s: best_infer.map(|b| b.1),
        train_ratio: ratio(train, eager.0),
        infer_ratio: ratio(infer, eager.1),
        train_ratio_best: ratio(train, best_train.map(|b| b.1)),
        infer_ratio_best: ratio(infer, best_infer.map(|b| b.1)),
    })
}

/// One PyTorch column of a row: its process while it works, the step times it answered
/// ([train, infer]) and, once it failed, why.
struct Column {
    variant: &'static str,
    peer: Option<TorchPeer>,
    times: [Vec<f64>; 2],
    error: Option<String>,
    peak_mb: Option<f64>,
}

impl Column {
    fn new(variant: &'static str, peer: TorchPeer) -> Self {
        Self {
            variant,
            peer: Some(peer),
            times: Default::default(),
            error: None,
            peak_mb: None,
        }
    }

    /// Eager PyTorch is the reference every earlier table used: its failure fails the bench.
    /// Any other column that fails is left without figures, the reason kept for the report.
    fn required(&self) -> bool {
        self.variant == TORCH_VARIANTS[0]
    }

    fn ask(&mut self, cmd: &str) -> Result<()> {
        let Some(peer) = &mut self.peer else {
            return Ok(());
        };
        match peer.ask(cmd) {
            Ok(times) => {
                self.peak_mb = peer.peak_mb;
                if let Some(k) = ["train", "infer"].iter().position(|k| cmd.starts_with(k)) {
                    self.times[k].extend(times);
                }
                Ok(())
            }
            Err(failed) if self.required() => Err(failed.into_error()),
            Err(failed) => {
                eprintln!(
                    "PyTorch {} unavailable on this row: {}",
                    self.variant, failed.reason
                );
                self.error = Some(failed.reason);
                self.peer = None;
                Ok(())
            }
        }
    }

    /// Ends the process; its peak memory.
    fn finish(&mut self) -> Result<Option<f64>> {
        match self.peer.take().map(TorchPeer::finish) {
            Some(Err(failed)) if self.required() => Err(failed.into_error()),
            Some(Err(failed)) => {
                self.error = Some(failed.reason);
                Ok(self.peak_mb)
            }
            Some(Ok(peak)) => Ok(peak.or(self.peak_mb)),
            None => Ok(self.peak_mb),
        }
    }
}

/// Why a PyTorch process gave no figures: a one-line reason, and its standard error.
struct PeerFailure {
    reason: String,
    stderr: String,
}

impl PeerFailure {
    fn into_error(self) -> ExpectedError {
        ExpectedError::Other(anyhow::anyhow!(
            "torch_bench.py: {}\n{}",
            self.reason,
            self.stderr
        ))
    }
}

/// A `torch_bench.py --serve` process holding one row's PyTorch model.
struct TorchPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: tempfile::NamedTempFile,
    /// The peak resident set the last answer reported.
    peak_mb: Option<f64>,
}

impl TorchPeer {
    fn start(
        script: &std::path::Path,
        (arch, width, batch, threads, device): (Arch, f64, usize, usize, &str),
        variant: &str,
    ) -> Result<Self> {
        let stderr = tempfile::NamedTempFile::new()?;
        // tarun's device names (`cpu`, `cuda:0`) are PyTorch's.
        let mut child = tarun_ml::device::user_environment(&mut Command::new("python3"))
            .arg(script)
            .arg("--serve")
            .args([arch.name(), &width.to_string(), &batch.to_string()])
            .args([&threads.to_string(), device, variant])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen()?)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Self {
            child,
            stdin,
            stdout,
            stderr,
            peak_mb: None,
        })
    }

    /// Sends one command and returns the step times it answers with.
    fn ask(&mut self, cmd: &str) -> std::result::Result<Vec<f64>, PeerFailure> {
        let mut line = String::new();
        let sent = writeln!(self.stdin, "{cmd}").and_then(|()| self.stdin.flush());
        if sent.is_err() || !matches!(self.stdout.read_line(&mut line), Ok(n) if n > 0) {
            return Err(self.failure(format!("no answer to `{cmd}`"), true));
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| self.failure(format!("bad answer {line:?} to `{cmd}`: {e}"), false))?;
        if let Some(error) = v["error"].as_str() {
            return Err(self.failure(error.to_owned(), false));
        }
        self.peak_mb = v["peak_mb"].as_f64().or(self.peak_mb);
        Ok(v["times"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_f64()).collect())
            .unwrap_or_default())
    }

    /// Ends the process and says why: `reason`, or, for a process that died, the last line it
    /// wrote to its standard error too.
    fn failure(&mut self, mut reason: String, died: bool) -> PeerFailure {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        if died && let Some(last) = stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            reason = format!("{reason} ({})", last.trim());
        }
        PeerFailure { reason, stderr }
    }

    /// Closes the command stream, waits for the process to end and returns its peak memory.
    fn finish(mut self) -> std::result::Result<Option<f64>, PeerFailure> {
        drop(self.stdin);
        let status = self.child.wait().map_err(|e| PeerFailure {
            reason: format!("waiting for it: {e}"),
            stderr: String::new(),
        })?;
        if !status.success() {
            let stderr = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
            return Err(PeerFailure {
                reason: format!("exited with {status}"),
                stderr,
            });
        }
        Ok(self.peak_mb)
    }
}

fn torch_available() -> bool {
    tarun_ml::device::user_environment(&mut Command::new("python3"))
        .args(["-c", "import torch, torchvision"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn print_table(rows: &[Row], torch: bool, counts: &[usize], args: &BenchArgs) -> Result<()> {
    let several = counts.len() > 1;
    let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
    outln!(
        "tarun bench: images/second on {}, {} threads, median of {} rounds x {} timed \
         steps after warm-up{}, {} kernels (TARUN_KERNELS)",
        args.device,
        counts.join(", "),
        args.rounds.max(1),
        args.steps.max(1),
        if torch {
            ", tarun and PyTorch alternating"
        } else {
            ""
        },
        Kernels::selected().name()
    )?;
    if torch {
        outln!(
            "PyTorch: torch = eager (its default), cl = eager in channels_last memory format, \
             compiled = torch.compile (Inductor; compiling is in the warm-up, not timed); \
             peak MB eager/cl/compiled; ratios are tarun / eager PyTorch and tarun / the fastest \
             PyTorch column (named)"
        )?;
    } else {
        outln!(
            "PyTorch not found (python3 -c 'import torch, torchvision' failed): tarun's figures only"
        )?;
    }
    let threads_col = if several { " threads |" } else { "" };
    outln!(
        "| network | width | batch |{threads_col} train | infer | peak MB |{}",
        if torch {
            " torch train | torch infer | cl train | cl infer | compiled train | compiled infer \
             | torch peak MB | train ratio | infer ratio | train vs best | infer vs best |"
        } else {
            ""
        }
    )?;
    outln!(
        "|---|---|---|{}---|---|---|{}",
        if several { "---|" } else { "" },
        if torch {
            "---|---|---|---|---|---|---|---|---|---|---|"
        } else {
            ""
        }
    )?;
    let num = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    for r in rows {
        let peak = num(r.peak_mb, 0);
        let threads = if several {
            format!(" {} |", r.threads)
        } else {
            String::new()
        };
        out!(
            "| {} | {} | {} |{threads} {:.1} | {:.1} | {} |",
            r.arch,
            r.width,
            r.batch,
            r.train_images_per_s,
            r.infer_images_per_s,
            peak
        )?;
        if torch {
            let peaks = [
                r.torch_peak_mb,
                r.torch_channels_last_peak_mb,
                r.torch_compile_peak_mb,
            ]
            .map(|m| num(m, 0))
            .join("/");
            let vs_best = |ratio: Option<f64>, name: Option<&str>| match (ratio, name) {
                (Some(x), Some(n)) => format!("{x:.2} ({})", short(n)),
                _ => "-".into(),
            };
            out!(
                " {} | {} | {} | {} | {} | {} | {peaks} | {} | {} | {} | {} |",
                num(r.torch_train_images_per_s, 1),
                num(r.torch_infer_images_per_s, 1),
                num(r.torch_channels_last_train_images_per_s, 1),
                num(r.torch_channels_last_infer_images_per_s, 1),
                num(r.torch_compile_train_images_per_s, 1),
                num(r.torch_compile_infer_images_per_s, 1),
                num(r.train_ratio, 2),
                num(r.infer_ratio, 2),
                vs_best(r.train_ratio_best, r.torch_best_train),
                vs_best(r.infer_ratio_best, r.torch_best_infer),
            )?;
        }
        outln!()?;
    }
    for r in rows {
        for (name, error) in [
            ("channels_last", &r.torch_channels_last_error),
            ("torch.compile", &r.torch_compile_error),
        ] {
            if let Some(e) = error {
                outln!(
                    "{} width {} batch {}{}: PyTorch {name} unavailable: {e}",
                    r.arch,
                    r.width,
                    r.batch,
                    if several {
                        format!(" on {} threads", r.threads)
                    } else {
                        String::new()
                    }
                )?;
            }
        }
    }
    Ok(())
}

/// A PyTorch variant's name in the table's columns.
fn short(variant: &str) -> &str {
    match variant {
        "eager" => "torch",
        "channels_last" => "cl",
        "compile" => "compiled",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_pytorch_column_and_the_ratios_against_it() {
        // tarun trains 300 images/s; PyTorch eager 250, channels_last 320, compile failed.
        let train = [
            ("eager", Some(250.0)),
            ("channels_last", Some(320.0)),
            ("compile", None),
        ];
        let b = best(&train);
        assert_eq!(b, Some(("channels_last", 320.0)));
        // 300 / 250 = 1.2 against eager, 300 / 320 = 0.9375 against the best.
        assert_eq!(ratio(300.0, Some(250.0)), Some(1.2));
        assert_eq!(ratio(300.0, b.map(|b| b.1)), Some(0.9375));
        // Inference: compile 1,000 > eager 800 > channels_last 640; tarun 1,200 is 1.2x the
        // best and 1.5x eager.
        let infer = [
            ("eager", Some(800.0)),
            ("channels_last", Some(640.0)),
            ("compile", Some(1000.0)),
        ];
        assert_eq!(best(&infer), Some(("compile", 1000.0)));
        assert_eq!(ratio(1200.0, Some(1000.0)), Some(1.2));
        assert_eq!(ratio(1200.0, Some(800.0)), Some(1.5));
        // A tie goes to the first column (eager); NaN and missing figures never win.
        assert_eq!(
            best(&[("eager", Some(5.0)), ("channels_last", Some(5.0))]),
            Some(("eager", 5.0))
        );
        assert_eq!(
            best(&[("eager", Some(f64::NAN)), ("compile", Some(2.0))]),
            Some(("compile", 2.0))
        );
        assert_eq!(best(&[("eager", None), ("compile", None)]), None);
        assert_eq!(ratio(300.0, None), None);
    }
}
