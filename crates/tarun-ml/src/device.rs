//! Device names (`cpu`, `cuda:N`, `metal:N`) and what this build can use.

use candle_core::Device;

/// The devices available to this build: always `cpu`; CUDA and Metal devices when compiled with
/// those features and present.
pub fn available() -> Vec<String> {
    #[allow(unused_mut, reason = "only the accelerator features push more")]
    let mut out = vec!["cpu".to_owned()];
    #[cfg(feature = "cuda")]
    for i in 0..16 {
        if Device::new_cuda(i).is_err() {
            break;
        }
        out.push(format!("cuda:{i}"));
    }
    #[cfg(feature = "metal")]
    if Device::new_metal(0).is_ok() {
        out.push("metal:0".to_owned());
    }
    out
}

/// What tarun knows of a device it can use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// `cpu`, `cuda:0`, `metal:0`.
    pub name: String,
    /// The hardware, in words.
    pub description: String,
    /// Device memory in megabytes (accelerators, when the driver says).
    pub memory_mb: Option<u64>,
}

/// [`available`], described.
pub fn describe() -> Vec<DeviceInfo> {
    available()
        .into_iter()
        .map(|name| {
            if name == "cpu" {
                return DeviceInfo {
                    description: cpu_description(),
                    name,
                    memory_mb: None,
                };
            }
            let (description, memory_mb) = accelerator_info(&name);
            DeviceInfo {
                name,
                description,
                memory_mb,
            }
        })
        .collect()
}

fn cpu_description() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[allow(unused_mut, reason = "only x86-64 pushes features")]
    let mut features: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            features.push("AVX-512");
        } else if std::arch::is_x86_feature_detected!("avx2") {
            features.push("AVX2");
        }
    }
    let features = if features.is_empty() {
        String::new()
    } else {
        format!(", {}", features.join(", "))
    };
    format!("{cores} cores ({}{features})", std::env::consts::ARCH)
}

/// Name and memory of a CUDA device; Metal devices are named only.
fn accelerator_info(name: &str) -> (String, Option<u64>) {
    #[cfg(feature = "cuda")]
    if let Ok(device) = open(name)
        && let Ok(cuda) = device.as_cuda_device()
    {
        let stream = cuda.cuda_stream();
        let context = stream.context();
        let model = context.name().unwrap_or_else(|_| "CUDA device".to_owned());
        let memory = context.total_mem().ok().map(|b| b as u64 / (1024 * 1024));
        return (model, memory);
    }
    (format!("{name} (no details from this build)"), None)
}

/// Runs `f` with at most `threads` CPU threads for everything parallel inside it (tarun's
/// kernels, gemm, Candle's CPU ops and tarun-ml's own loops all use rayon's current pool), so
/// that concurrent CPU jobs share the cores instead of each taking all of them. Falls back to the
/// global pool if a pool cannot be built.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("tarun-job-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Opens a device by name.
pub fn open(name: &str) -> Result<Device, String> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let index = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|i| i.parse::<usize>().ok())
    };
    if let Some(i) = index("cuda:") {
        return Device::new_cuda(i).map_err(|e| format!("cannot open `{name}`: {e}"));
    }
    if let Some(i) = index("metal:") {
        return Device::new_metal(i).map_err(|e| format!("cannot open `{name}`: {e}"));
    }
    Err(format!("unknown device `{name}`"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn jobs_run_with_the_threads_they_were_given() {
        for n in [1, 2, 3] {
            assert_eq!(super::with_threads(n, rayon::current_num_threads), n);
        }
    }

    #[test]
    fn the_cpu_is_described_with_its_cores() {
        let d = super::describe();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(d[0].name, "cpu");
        assert!(
            d[0].description.starts_with(&format!("{cores} cores (")),
            "{d:?}"
        );
    }

    #[test]
    fn cpu_is_always_there() {
        assert_eq!(super::available()[0], "cpu");
        assert!(super::open("cpu").is_ok());
        assert!(super::open("tpu:0").is_err());
    }
}
