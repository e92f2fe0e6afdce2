//! Throughput figures: images per second of a training step and of inference for a network,
//! width and batch on a kind of device, from `tarun bench`'s saved results or built-in defaults.
//!
//! `tarun bench` writes what it measured to `<store>/bench/<device>.json` (`cpu.json`,
//! `cuda-0.json`; `cpu-candle.json` under `TARUN_KERNELS=candle`, whose figures are not tarun's
//! kernels'), merging with the rows of an earlier run on the same thread count. Without such a
//! file a device kind has built-in defaults: the CPU's are docs/performance.md's sixth-round
//! table (2 threads of an AMD EPYC, Zen 4); CUDA's are one H200's (docs/gpu.md), Metal's half
//! those.

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use tarun_ml::models::Kernels;

/// One measured row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub arch: String,
    pub width: f64,
    pub batch: usize,
    /// `null` when the measurement failed (a NaN in `tarun bench`).
    pub train_images_per_s: Option<f64>,
    pub infer_images_per_s: Option<f64>,
}

/// What `tarun bench` saves: its `--json` output (these fields and the rest of each row, kept
/// as they are), and when it was measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchFile {
    pub device: String,
    pub threads: usize,
    pub kernels: String,
    #[serde(default)]
    pub measured: Option<String>,
    pub rows: Vec<serde_json::Value>,
}

/// `<store>/bench/<device>.json`; on the CPU under Candle's kernels, `cpu-candle.json`.
pub fn bench_path(store: &Utf8Path, device: &str, kernels: Kernels) -> Utf8PathBuf {
    let mut name = device.replace(':', "-");
    if device == "cpu" && kernels != Kernels::Tarun {
        name = format!("{name}-{}", kernels.name());
    }
    store.join("bench").join(format!("{name}.json"))
}

/// Where a figure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    Bench,
    Default,
}

/// The figures of one kind of device.
#[derive(Clone, Debug)]
pub struct Table {
    rows: Vec<(String, f64, f64, f64, f64)>,
    /// Threads the CPU figures were measured with; `None` on a GPU (threads do not matter).
    pub threads: Option<usize>,
    pub origin: Origin,
    /// Where the figures are from, for the summary.
    pub about: String,
}

/// docs/performance.md, sixth round: `(arch, width, batch, train, infer)` images/second on 2
/// threads.
const CPU_DEFAULT: [(&str, f64, f64, f64, f64); 12] = [
    ("resnet18", 0.25, 32.0, 730.0, 2604.9),
    ("resnet18", 0.25, 128.0, 630.8, 2527.6),
    ("resnet18", 1.0, 32.0, 60.9, 228.2),
    ("resnet18", 1.0, 128.0, 66.2, 235.1),
    ("vgg11_bn", 0.25, 32.0, 807.8, 3155.2),
    ("vgg11_bn", 0.25, 128.0, 1293.3, 5660.1),
    ("vgg11_bn", 1.0, 32.0, 86.3, 391.1),
    ("vgg11_bn", 1.0, 128.0, 146.0, 571.7),
    ("mobilenet_v2", 0.25, 32.0, 2439.0, 9240.2),
    ("mobilenet_v2", 0.25, 128.0, 2578.9, 19120.2),
    ("mobilenet_v2", 1.0, 32.0, 759.2, 3290.7),
    ("mobilenet_v2", 1.0, 128.0, 895.2, 5343.3),
];

/// One NVIDIA H200, measured (docs/gpu.md: `tarun bench --device cuda:0`, tarun's cuDNN path,
/// TF32 convolutions, 2026-12-04): `(arch, width, batch, train, infer)` images/second. Other GPUs
/// differ; `tarun bench --device cuda:0` replaces these with the machine's own.
const CUDA_DEFAULT: [(&str, f64, f64, f64, f64); 12] = [
    ("resnet18", 0.25, 32.0, 6819.0, 20982.0),
    ("resnet18", 0.25, 128.0, 18505.0, 74193.0),
    ("resnet18", 1.0, 32.0, 3696.0, 11954.0),
    ("resnet18", 1.0, 128.0, 13803.0, 57045.0),
    ("vgg11_bn", 0.25, 32.0, 6332.0, 34902.0),
    ("vgg11_bn", 0.25, 128.0, 17245.0, 102917.0),
    ("vgg11_bn", 1.0, 32.0, 4483.0, 28917.0),
    ("vgg11_bn", 1.0, 128.0, 7206.0, 75318.0),
    ("mobilenet_v2", 0.25, 32.0, 2154.0, 5975.0),
    ("mobilenet_v2", 0.25, 128.0, 11310.0, 35704.0),
    ("mobilenet_v2", 1.0, 32.0, 3135.0, 8776.0),
    ("mobilenet_v2", 1.0, 128.0, 11130.0, 34954.0),
];

/// Metal GPUs: half the H200's figures, NOT measured.
const METAL_FACTOR: f64 = 0.5;

impl Table {
    /// The built-in figures of a kind of device (`cpu`, `cuda`, `metal`).
    pub fn default_for(kind: &str) -> Table {
        let (rows, factor, threads, about): (&[_], f64, _, &str) = match kind {
            "cpu" => (
                &CPU_DEFAULT,
                1.0,
                Some(2),
                "docs/performance.md's CPU figures (2 threads)",
            ),
            "metal" => (
                &CUDA_DEFAULT,
                METAL_FACTOR,
                None,
                "unmeasured Metal placeholders",
            ),
            _ => (&CUDA_DEFAULT, 1.0, None, "an H200's figures (docs/gpu.md)"),
        };
        Table {
            rows: rows
                .iter()
                .map(|&(a, w, b, t, i)| (a.to_owned(), w, b, t * factor, i * factor))
                .collect(),
            threads,
            origin: Origin::Default,
            about: about.to_owned(),
        }
    }

    /// A saved `tarun bench` result; `None` when it has no usable row.
    pub fn from_bench(file: &BenchFile, path: &Utf8Path) -> Option<Table> {
        let rows: Vec<_> = file
            .rows
            .iter()
            .filter_map(|v| serde_json::from_value::<Row>(v.clone()).ok())
            .filter_map(|r| {
                let (t, i) = (r.train_images_per_s?, r.infer_images_per_s?);
                let good = |x: f64| x.is_finite() && x > 0.0;
                (good(t) && good(i) && r.width > 0.0 && r.batch > 0).then_some((
                    r.arch,
                    r.width,
                    r.batch as f64,
                    t,
                    i,
                ))
            })
            .collect();
        if rows.is_empty() {
            return None;
        }
        let when = file.measured.as_deref().unwrap_or("undated");
        Some(Table {
            rows,
            threads: (file.device == "cpu").then_some(file.threads.max(1)),
            origin: Origin::Bench,
            about: format!("`{path}` ({when}, {} threads)", file.threads),
        })
    }

    pub fn has(&self, arch: &str) -> bool {
        self.rows.iter().any(|r| r.0 == arch)
    }

    /// Images/second of `arch` at `width` and `batch`, training or inference, for a job with
    /// `threads` threads. Between measured widths and batches the figure is interpolated on
    /// log scales; past the widest, it falls with the square of the width (the convolutions'
    /// work); below the narrowest, and outside the measured batches, the nearest figure is
    /// kept (a narrower network is not counted faster). A CPU job with fewer threads than the
    /// figures were measured with is slower in proportion; one with more is not counted faster.
    pub fn rate(
        &self,
        arch: &str,
        width: f64,
        batch: f64,
        train: bool,
        threads: usize,
    ) -> Option<f64> {
        let mut batches: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.0 == arch)
            .map(|r| r.2)
            .collect();
        batches.sort_by(f64::total_cmp);
        batches.dedup();
        let at_batch = |b: f64| -> Option<f64> {
            let points: Vec<(f64, f64)> = self
                .rows
                .iter()
                .filter(|r| r.0 == arch && r.2 == b)
                .map(|r| (r.1, if train { r.3 } else { r.4 }))
                .collect();
            along_width(points, width)
        };
        let rate = interpolate(&batches, batch, at_batch)?;
        let scale = match self.threads {
            Some(measured) => (threads as f64 / measured as f64).min(1.0),
            None => 1.0,
        };
        Some(rate * scale)
    }
}

/// The figure at `x` from figures at the sorted points `xs`: log-log interpolation between the
/// two around it, the nearest one outside them.
fn interpolate(xs: &[f64], x: f64, at: impl Fn(f64) -> Option<f64>) -> Option<f64> {
    let (first, last) = (*xs.first()?, *xs.last()?);
    if x <= first {
        return at(first);
    }
    if x >= last {
        return at(last);
    }
    let hi = xs.iter().position(|&b| b >= x)?;
    let (x0, x1) = (xs[hi - 1], xs[hi]);
    let (y0, y1) = (at(x0)?, at(x1)?);
    let t = (x.ln() - x0.ln()) / (x1.ln() - x0.ln());
    Some((y0.ln() + t * (y1.ln() - y0.ln())).exp())
}

/// The figure at `width` from `(width, figure)` points of one batch size.
fn along_width(mut points: Vec<(f64, f64)>, width: f64) -> Option<f64> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let &(widest, at_widest) = points.last()?;
    if width > widest {
        return Some(at_widest * (widest / width).powi(2));
    }
    let widths: Vec<f64> = points.iter().map(|p| p.0).collect();
    interpolate(&widths, width, |w| {
        points.iter().find(|p| p.0 == w).map(|p| p.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(threads: Option<usize>) -> Table {
        Table {
            rows: vec![
                ("net".into(), 0.25, 32.0, 800.0, 3200.0),
                ("net".into(), 1.0, 32.0, 50.0, 200.0),
                ("net".into(), 0.25, 128.0, 1600.0, 6400.0),
                ("net".into(), 1.0, 128.0, 100.0, 400.0),
            ],
            threads,
            origin: Origin::Bench,
            about: String::new(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn figures_interpolate_on_log_scales_and_clamp_outside() {
        let t = table(None);
        let r = |w, b, train| t.rate("net", w, b, train, 1).unwrap();
        assert!(close(r(1.0, 32.0, true), 50.0));
        assert!(close(r(0.25, 128.0, false), 6400.0));
        // Width 0.5 is halfway between 0.25 and 1 in log scale: sqrt(800 * 50) = 200.
        assert!(close(r(0.5, 32.0, true), 200.0));
        // Batch 64 halfway between 32 and 128: sqrt(50 * 100) at width 1.
        assert!(close(r(1.0, 64.0, true), (50.0f64 * 100.0).sqrt()));
        // Narrower than measured: not faster; wider: slower by the square.
        assert!(close(r(0.125, 32.0, true), 800.0));
        assert!(close(r(2.0, 32.0, true), 50.0 / 4.0));
        // Batches outside: the nearest measured.
        assert!(close(r(1.0, 8.0, true), 50.0));
        assert!(close(r(1.0, 256.0, false), 400.0));
        assert!(t.rate("other", 1.0, 32.0, true, 1).is_none());
    }

    #[test]
    fn cpu_figures_scale_down_with_fewer_threads_only() {
        let t = table(Some(4));
        assert!(close(t.rate("net", 1.0, 32.0, true, 2).unwrap(), 25.0));
        assert!(close(t.rate("net", 1.0, 32.0, true, 4).unwrap(), 50.0));
        assert!(close(t.rate("net", 1.0, 32.0, true, 16).unwrap(), 50.0));
    }

    #[test]
    fn defaults_cover_every_network_on_every_kind() {
        for kind in ["cpu", "cuda", "metal"] {
            let t = Table::default_for(kind);
            for arch in ["resnet18", "vgg11_bn", "mobilenet_v2"] {
                assert!(
                    t.rate(arch, 1.0, 128.0, true, 2).unwrap() > 0.0,
                    "{kind} {arch}"
                );
            }
        }
        let cuda = Table::default_for("cuda").rate("resnet18", 1.0, 128.0, true, 1);
        let metal = Table::default_for("metal").rate("resnet18", 1.0, 128.0, true, 1);
        assert_eq!(metal.unwrap() * 2.0, cuda.unwrap());
    }

    #[test]
    fn bench_files_are_named_after_the_device_and_kernels() {
        let root = Utf8Path::new("s");
        assert_eq!(bench_path(root, "cpu", Kernels::Tarun), "s/bench/cpu.json");
        assert_eq!(
            bench_path(root, "cpu", Kernels::Candle),
            "s/bench/cpu-candle.json"
        );
        assert_eq!(
            bench_path(root, "cuda:1", Kernels::Candle),
            "s/bench/cuda-1.json"
        );
        let file: BenchFile = serde_json::from_value(serde_json::json!({
            "device": "cpu", "threads": 8, "kernels": "tarun", "measured": "today",
            "rows": [
                {"arch": "resnet18", "width": 1.0, "batch": 32,
                 "train_images_per_s": 10.0, "infer_images_per_s": 40.0, "peak_mb": 5.0},
                {"arch": "vgg11_bn", "width": 1.0, "batch": 32,
                 "train_images_per_s": null, "infer_images_per_s": 40.0}
            ]
        }))
        .unwrap();
        let t = Table::from_bench(&file, root).unwrap();
        assert_eq!((t.threads, t.origin), (Some(8), Origin::Bench));
        assert!(
            t.has("resnet18") && !t.has("vgg11_bn"),
            "a failed row is left out"
        );
        assert!(close(t.rate("resnet18", 1.0, 32.0, true, 4).unwrap(), 5.0));
    }
}
