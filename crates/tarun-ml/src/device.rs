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

/// Process-wide settings for CPU speed. Call once, first thing in `main`, before any thread
/// exists (it sets an environment variable). What each setting gained, measured, is in
/// docs/performance.md (second, fourth and sixth rounds).
///
/// * Candle runs its element-wise ops on a pool of its own, sized to the whole machine and
///   spinning between ops, beside rayon's pool where tarun's kernels and gemm run: on a small
///   machine the two fight for the cores, and a job limited to N threads would use them all.
///   `CANDLE_NUM_THREADS=1` (unless the user set it) keeps those ops on the calling thread, which
///   is inside the job's own rayon pool.
/// * glibc serves every allocation above 128 KiB with a fresh `mmap` and returns it on `free`,
///   so every op's output would be page-faulted in again and zeroed by the kernel, with TLB
///   shoot-downs between the threads. A fixed mmap threshold and a lazier trim keep the freed
///   memory for reuse (the resident peak is the same; it is just not handed back between
///   steps). The threshold is 1 GiB, above the largest buffer built anew every step (VGG-11-BN's
///   411 MB classifier weight gradient at width 1), or the largest of 256 MiB and 32 MiB that an
///   older glibc accepts. Below 1 GiB that gradient is mapped and zeroed afresh every step, and
///   at 32 MiB so are ResNet-18 width 1 batch 128's activations (33.5 MB each).
/// * One malloc arena for every thread (`M_ARENA_MAX` 1). glibc gives threads arenas of their
///   own, and a buffer freed by another thread goes back to the arena it came from: with the
///   steps on a pool thread and the ops' outputs allocated on whichever thread ran them, freed
///   memory would sit in one arena while another grew, raising the peak. Small allocations still
///   come from each thread's lock-free cache; large ones are few per op.
/// * Buffers above that threshold are still mapped afresh for every op, 4 KiB page by page.
///   glibc's `glibc.malloc.hugetlb=1` tunable asks for transparent huge pages on those mappings,
///   which cuts their page faults by two orders of magnitude, but glibc reads tunables only at
///   start-up, so the process runs itself again with it added (see
///   [`reexec_with_huge_pages`]).
pub fn tune_process() {
    reexec_with_huge_pages();
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called at the start of `main`, before any other thread reads the environment.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is called before any thread
    // exists and the values are in range.
    unsafe {
        // The largest this glibc accepts of 1 GiB, 256 MiB and 32 MiB.
        for threshold in [1 << 30, 256 << 20, 32 << 20] {
            if libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) != 0 {
                break;
            }
        }
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// The glibc tunable [`tune_process`] adds.
const HUGE_PAGES: &str = "glibc.malloc.hugetlb=1";

/// Set in the re-executed process to the user's own `GLIBC_TUNABLES` (empty if unset): it marks
/// the re-execution as done and lets [`user_environment`] restore the original for children.
const USER_TUNABLES: &str = "TARUN_USER_GLIBC_TUNABLES";

/// Replaces this process with itself (same pid, arguments and descriptors) with
/// `HUGE_PAGES` added to `GLIBC_TUNABLES`, once. Nothing happens where the user already chose
/// a `glibc.malloc.hugetlb` value, with `TARUN_HUGE_PAGES=0`, off glibc, or if `exec` fails (the
/// run then goes on without huge pages).
pub fn reexec_with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let user = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if std::env::var_os(USER_TUNABLES).is_some()
            || user.contains("glibc.malloc.hugetlb")
            || std::env::var("TARUN_HUGE_PAGES").is_ok_and(|v| v == "0")
        {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let tunables = if user.is_empty() {
            HUGE_PAGES.to_owned()
        } else {
            format!("{user}:{HUGE_PAGES}")
        };
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(argv0) = args.next() {
            cmd.arg0(argv0);
        }
        // `exec` returns only if it failed.
        let _failed = cmd
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .env(USER_TUNABLES, user)
            .exec();
    }
}

/// Gives a child process the user's own `GLIBC_TUNABLES` instead of the one
/// [`reexec_with_huge_pages`] added (the PyTorch process of `tarun bench` must run as it would
/// on its own).
pub fn user_environment(cmd: &mut std::process::Command) -> &mut std::process::Command {
    if let Some(user) = std::env::var_os(USER_TUNABLES) {
        if user.is_empty() {
            cmd.env_remove("GLIBC_TUNABLES");
        } else {
            cmd.env("GLIBC_TUNABLES", user);
        }
        cmd.env_remove(USER_TUNABLES);
    }
    cmd
}

/// Hands the kernels' work buffers and the allocator's free memory back to the system (glibc
/// keeps it, see [`tune_process`]), so that a following peak-memory measurement starts from
/// what is really in use.
pub fn release_free_memory() {
    crate::kernels::release_scratch();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
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
        let device = Device::new_cuda(i).map_err(|e| format!("cannot open `{name}`: {e}"))?;
        #[cfg(feature = "cuda")]
        if let Ok(cuda) = device.as_cuda_device() {
            crate::kernels::cuda_keep_freed_memory(cuda)
                .map_err(|e| format!("cannot set up `{name}`'s memory pool: {e}"))?;
        }
        return Ok(device);
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
