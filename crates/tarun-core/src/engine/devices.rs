//! The device pool: named devices, each with a number of job slots and, for accelerators, an
//! optional memory budget that jobs' estimates are counted against, so that small jobs share a
//! GPU and a big one waits for room.

use std::str::FromStr;

use crate::manifest::DeviceRequest;

/// One device, how many jobs may use it at once and (for a GPU) how much memory they may
/// estimate together: `cpu`, `cpu*2`, `cuda:0`, `cuda:0*4@80G`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    pub name: String,
    pub slots: usize,
    /// Megabytes the jobs on it may use together (accelerators only); `None`: count slots only.
    pub memory_mb: Option<u64>,
}

impl DeviceSpec {
    pub fn new(name: impl Into<String>, slots: usize) -> Self {
        DeviceSpec {
            name: name.into(),
            slots,
            memory_mb: None,
        }
    }

    pub fn is_accelerator(&self) -> bool {
        self.name != "cpu"
    }
}

/// Parses a size: `80G`, `512M`, or a number of megabytes.
fn megabytes(s: &str) -> Option<u64> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'G' | b'g' => (&s[..s.len() - 1], 1024),
        b'T' | b't' => (&s[..s.len() - 1], 1024 * 1024),
        b'M' | b'm' => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok().map(|n| n * scale)
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "unknown device `{s}` (expected cpu, cuda:N or metal:N, optionally *SLOTS, and \
                 for a GPU @MEMORY such as @80G)"
            )
        };
        let (rest, memory_mb) = match s.split_once('@') {
            Some((rest, mem)) => (rest, Some(megabytes(mem).ok_or_else(bad)?)),
            None => (s, None),
        };
        let (name, slots) = match rest.split_once('*') {
            Some((n, k)) => (n, k.parse().map_err(|_| bad())?),
            None => (rest, 1),
        };
        let valid = name == "cpu"
            || ["cuda:", "metal:"].iter().any(|p| {
                name.strip_prefix(p)
                    .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            });
        if !valid || slots == 0 || (name == "cpu" && memory_mb.is_some()) {
            return Err(bad());
        }
        Ok(DeviceSpec {
            name: name.to_owned(),
            slots,
            memory_mb,
        })
    }
}

/// What a job asks of the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    pub request: DeviceRequest,
    /// The job's estimated accelerator memory, in megabytes.
    pub memory_mb: Option<u64>,
}

/// A running job's hold on a device: released when the job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    device: usize,
    memory_mb: u64,
}

#[derive(Clone, Debug)]
struct DeviceState {
    spec: DeviceSpec,
    busy: usize,
    used_mb: u64,
}

/// Free slots and memory per device. Accelerators come first, so they are preferred when free.
#[derive(Clone, Debug)]
pub struct DevicePool {
    devices: Vec<DeviceState>,
    cpu_threads: usize,
}

impl DevicePool {
    /// `cores` is the machine's core count, shared among the CPU slots.
    pub fn new(mut devices: Vec<DeviceSpec>, cores: usize) -> Self {
        devices.sort_by_key(|d| !d.is_accelerator());
        let cpu_slots: usize = devices
            .iter()
            .filter(|d| !d.is_accelerator())
            .map(|d| d.slots)
            .sum();
        let cpu_threads = (cores / cpu_slots.max(1)).max(1);
        DevicePool {
            devices: devices
                .into_iter()
                .map(|spec| DeviceState {
                    spec,
                    busy: 0,
                    used_mb: 0,
                })
                .collect(),
            cpu_threads,
        }
    }

    fn serves(d: &DeviceSpec, request: DeviceRequest) -> bool {
        match request {
            DeviceRequest::Any => true,
            DeviceRequest::Cpu => !d.is_accelerator(),
            DeviceRequest::Gpu => d.is_accelerator(),
        }
    }

    /// Whether any device of the pool can ever run such a job.
    pub fn can_serve(&self, request: DeviceRequest) -> bool {
        self.devices.iter().any(|d| Self::serves(&d.spec, request))
    }

    /// A slot for the job, on the first device that serves its request, has a free slot and
    /// has room for its memory estimate (a job alone on a device always has room: an estimate
    /// larger than the budget runs, by itself).
    pub fn acquire(&mut self, demand: Demand) -> Option<Lease> {
        for (i, d) in self.devices.iter_mut().enumerate() {
            if !Self::serves(&d.spec, demand.request) || d.busy >= d.spec.slots {
                continue;
            }
            let memory_mb = if d.spec.is_accelerator() {
                demand.memory_mb.unwrap_or(0)
            } else {
                0
            };
            if let Some(budget) = d.spec.memory_mb
                && d.busy > 0
                && d.used_mb + memory_mb > budget
            {
                continue;
            }
            d.busy += 1;
            d.used_mb += memory_mb;
            return Some(Lease {
                device: i,
                memory_mb,
            });
        }
        None
    }

    pub fn release(&mut self, lease: Lease) {
        let d = &mut self.devices[lease.device];
        d.busy -= 1;
        d.used_mb -= lease.memory_mb;
    }

    pub fn name(&self, lease: Lease) -> &str {
        &self.devices[lease.device].spec.name
    }

    /// Threads a job may use: the cores shared among CPU slots (a GPU job's host side gets the
    /// same share).
    pub fn threads(&self, _lease: Lease) -> usize {
        self.cpu_threads
    }

    pub fn devices(&self) -> impl Iterator<Item = &DeviceSpec> {
        self.devices.iter().map(|d| &d.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(request: DeviceRequest, memory_mb: Option<u64>) -> Demand {
        Demand { request, memory_mb }
    }

    const ANY: Demand = Demand {
        request: DeviceRequest::Any,
        memory_mb: None,
    };

    #[test]
    fn parses_devices_slots_and_memory() {
        assert_eq!(
            "cpu".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::new("cpu", 1)
        );
        assert_eq!("cuda:1*2".parse::<DeviceSpec>().unwrap().slots, 2);
        let gpu: DeviceSpec = "cuda:0*4@80G".parse().unwrap();
        assert_eq!((gpu.slots, gpu.memory_mb), (4, Some(80 * 1024)));
        assert_eq!(
            "cuda:0@512".parse::<DeviceSpec>().unwrap().memory_mb,
            Some(512)
        );
        for bad in ["gpu", "cuda:", "cpu*0", "cpu@8G", "cuda:0@lots", "cuda:0*x"] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn accelerators_are_handed_out_first() {
        let devs = vec!["cpu*2".parse().unwrap(), "cuda:0".parse().unwrap()];
        let mut pool = DevicePool::new(devs, 8);
        let a = pool.acquire(ANY).unwrap();
        assert_eq!(pool.name(a), "cuda:0");
        let b = pool.acquire(ANY).unwrap();
        assert_eq!((pool.name(b), pool.threads(b)), ("cpu", 4));
        pool.acquire(ANY).unwrap();
        assert!(pool.acquire(ANY).is_none());
        pool.release(a);
        let again = pool.acquire(ANY).unwrap();
        assert_eq!(pool.name(again), "cuda:0");
    }

    #[test]
    fn requests_pick_their_kind_of_device() {
        let devs = vec!["cpu".parse().unwrap(), "cuda:0".parse().unwrap()];
        let mut pool = DevicePool::new(devs, 2);
        let c = pool.acquire(demand(DeviceRequest::Cpu, None)).unwrap();
        assert_eq!(pool.name(c), "cpu");
        assert!(pool.acquire(demand(DeviceRequest::Cpu, None)).is_none());
        let g = pool.acquire(demand(DeviceRequest::Gpu, None)).unwrap();
        assert_eq!(pool.name(g), "cuda:0");
        assert!(pool.acquire(demand(DeviceRequest::Gpu, None)).is_none());
        let cpu_only = DevicePool::new(vec![DeviceSpec::new("cpu", 1)], 2);
        assert!(!cpu_only.can_serve(DeviceRequest::Gpu));
        assert!(cpu_only.can_serve(DeviceRequest::Any));
    }

    #[test]
    fn small_jobs_share_a_gpu_within_its_memory_and_a_big_one_runs_alone() {
        let mut pool = DevicePool::new(vec!["cuda:0*4@10G".parse().unwrap()], 2);
        let gpu = |mb| demand(DeviceRequest::Gpu, Some(mb));
        let a = pool.acquire(gpu(4000)).unwrap();
        let b = pool.acquire(gpu(4000)).unwrap();
        // 8000 + 4000 > 10240: the third waits although a slot is free.
        assert!(pool.acquire(gpu(4000)).is_none());
        let small = pool.acquire(gpu(2000)).unwrap();
        assert!(pool.acquire(gpu(500)).is_none(), "10000 + 500 > 10240");
        pool.release(a);
        pool.release(b);
        pool.release(small);
        let big = pool.acquire(gpu(50_000)).unwrap();
        assert!(
            pool.acquire(gpu(100)).is_none(),
            "the big job has the GPU to itself"
        );
        pool.release(big);
        assert!(pool.acquire(gpu(100)).is_some());
    }
}
