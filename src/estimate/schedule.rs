//! The run replayed in simulated time: the nodes that would run, list-scheduled greedily over
//! the run's device pool the way the engine dispatches them (`tarun-core`'s `engine/mod.rs`).
//!
//! Ready nodes are taken in order; a node that needs a device waits in its request's queue
//! (any, cpu, gpu) and starts as soon as the pool grants it a slot (accelerators first, within
//! their memory budget: the engine's own `DevicePool`), one without (select, report) starts at
//! once. When nothing more can start, the earliest running job ends (ties in start order), its
//! slot is released and its dependents whose inputs are all done become ready. A node that asks
//! for a kind of device the pool lacks fails at once, and its descendants never start.
//!
//! Jobs sharing a CPU do not slow each other down beyond their estimates: its cores are already
//! split between its slots (the thread count each estimate is given). Jobs sharing a GPU share
//! its throughput: with k of them running, together they progress [`GPU_SHARED_SPEEDUP`] times
//! as fast as one alone (at most k), each at that over k, so a job's end is known only as the
//! others start and end (processor sharing).

use std::collections::VecDeque;

use tarun_core::engine::{Demand, DevicePool, Lease};

use super::Estimate;

/// How many times one job's rate k >= 2 training jobs on one GPU reach together. `tarun bench
/// jobs` on an H200: 1.21-1.23 for ResNet-18 at width 1, batch 128 (2 and 4 jobs), 0.75-0.78 for
/// MobileNetV2 and 0.68-0.71 for narrow networks at batch 32, whose launches contend; short
/// nodes (ablations, scores) spend part of their time off the GPU, which sharing overlaps. One
/// figure for all: the wide case, so that a study of long training jobs is priced about right
/// and a launch-bound one still optimistically.
pub const GPU_SHARED_SPEEDUP: f64 = 1.2;

/// The rate (of one job alone) at which each of `k` jobs sharing a device progresses.
fn shared_rate(gpu: bool, k: usize) -> f64 {
    if !gpu || k <= 1 {
        1.0
    } else {
        GPU_SHARED_SPEEDUP.min(k as f64) / k as f64
    }
}

/// A job in progress in the simulation.
struct Running {
    /// Seconds of work left at the rate of one job alone.
    left: f64,
    order: usize,
    job: usize,
    lease: Option<Lease>,
    /// The GPU it shares, if it runs on one.
    gpu: Option<String>,
}

/// One node to simulate.
#[derive(Clone, Debug)]
pub struct SimJob {
    /// Indices (into the job list) of the inputs that would run too; inputs already cached are
    /// done from the start.
    pub deps: Vec<usize>,
    /// What it asks of the pool; `None` for a node that runs without a device slot.
    pub demand: Option<Demand>,
}

/// Where and when a job ran in the simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The device, or `None` for a job without a slot.
    pub device: Option<String>,
    pub start: f64,
    pub end: f64,
    pub estimate: Estimate,
}

/// One device's share of the simulated run.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceLoad {
    pub name: String,
    pub slots: usize,
    pub jobs: usize,
    /// When its last job ends (0 when it has none).
    pub end: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Per job: where it ran, or `None` when it would not run (see `unservable`).
    pub jobs: Vec<Option<Placement>>,
    /// Jobs that ask for a device the pool lacks: they fail at once, their descendants with them.
    pub unservable: Vec<usize>,
    pub devices: Vec<DeviceLoad>,
    /// When the last job ends.
    pub total: f64,
}

/// Simulates `jobs` (in a topological order) on `pool`. `cost(job, device, threads)` is a
/// job's estimate on a device with that many threads; a job without a slot is costed as the
/// engine runs it, on `cpu` with one thread.
pub fn simulate(
    jobs: &[SimJob],
    mut pool: DevicePool,
    mut cost: impl FnMut(usize, &str, usize) -> Estimate,
) -> Schedule {
    let n = jobs.len();
    let mut dependents = vec![vec![]; n];
    for (i, job) in jobs.iter().enumerate() {
        for &d in &job.deps {
            dependents[d].push(i);
        }
    }
    let mut pending: Vec<usize> = jobs.iter().map(|j| j.deps.len()).collect();
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut waiting: [VecDeque<usize>; 3] = Default::default();
    let mut running: Vec<Running> = vec![];
    let mut placed: Vec<Option<Placement>> = vec![None; n];
    let mut unservable = vec![];
    let mut now = 0.0;
    let mut started = 0;
    loop {
        // Start everything that can start now, as `Engine::dispatch` does.
        loop {
            let mut granted = None;
            for (q, queue) in waiting.iter().enumerate() {
                if let Some(&i) = queue.front()
                    && let Some(lease) = pool.acquire(jobs[i].demand.expect("queued jobs ask"))
                {
                    granted = Some((q, lease));
                    break;
                }
            }
            let (i, lease) = match granted {
                Some((q, lease)) => (waiting[q].pop_front().expect("front"), Some(lease)),
                None => {
                    let Some(i) = ready.pop_front() else { break };
                    match jobs[i].demand {
                        None => (i, None),
                        Some(d) if !pool.can_serve(d.request) => {
                            unservable.push(i);
                            continue;
                        }
                        Some(d) => {
                            waiting[d.request as usize].push_back(i);
                            continue;
                        }
                    }
                }
            };
            let (device, threads) = match lease {
                Some(l) => (Some(pool.name(l).to_owned()), pool.threads(l)),
                None => (None, 1),
            };
            let estimate = cost(i, device.as_deref().unwrap_or("cpu"), threads);
            let gpu = device.clone().filter(|d| !d.starts_with("cpu"));
            running.push(Running {
                left: estimate.seconds,
                order: started,
                job: i,
                lease,
                gpu,
            });
            placed[i] = Some(Placement {
                device,
                start: now,
                end: now,
                estimate,
            });
            started += 1;
        }
        // Each job's rate while the set of running jobs stays as it is.
        let rates: Vec<f64> = running
            .iter()
            .map(|r| {
                let sharing = r.gpu.as_ref().map_or(1, |g| {
                    running.iter().filter(|o| o.gpu.as_ref() == Some(g)).count()
                });
                shared_rate(r.gpu.is_some(), sharing)
            })
            .collect();
        // The earliest end; its dependents may become ready.
        let Some(k) = (0..running.len()).min_by(|&a, &b| {
            let (x, y) = (running[a].left / rates[a], running[b].left / rates[b]);
            x.total_cmp(&y)
                .then(running[a].order.cmp(&running[b].order))
        }) else {
            break;
        };
        let dt = running[k].left / rates[k];
        for (r, rate) in running.iter_mut().zip(&rates) {
            r.left = (r.left - dt * rate).max(0.0);
        }
        now += dt;
        let done = running.swap_remove(k);
        let i = done.job;
        if let Some(p) = placed[i].as_mut() {
            p.end = now;
        }
        if let Some(l) = done.lease {
            pool.release(l);
        }
        for &d in &dependents[i] {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    let devices = pool
        .devices()
        .map(|spec| {
            let on: Vec<&Placement> = placed
                .iter()
                .flatten()
                .filter(|p| p.device.as_deref() == Some(spec.name.as_str()))
                .collect();
            DeviceLoad {
                name: spec.name.clone(),
                slots: spec.slots,
                jobs: on.len(),
                end: on.iter().map(|p| p.end).fold(0.0, f64::max),
            }
        })
        .collect();
    let total = placed.iter().flatten().map(|p| p.end).fold(0.0, f64::max);
    Schedule {
        jobs: placed,
        unservable,
        devices,
        total,
    }
}

#[cfg(test)]
mod tests {
    use tarun_core::engine::DeviceSpec;
    use tarun_core::manifest::DeviceRequest;

    use super::*;
    use crate::estimate::Source;

    fn job(deps: &[usize], request: Option<DeviceRequest>, memory_mb: Option<u64>) -> SimJob {
        SimJob {
            deps: deps.to_vec(),
            demand: request.map(|request| Demand { request, memory_mb }),
        }
    }

    const ANY: Option<DeviceRequest> = Some(DeviceRequest::Any);

    fn pool(specs: &[&str], cores: usize) -> DevicePool {
        let specs: Vec<DeviceSpec> = specs.iter().map(|s| s.parse().unwrap()).collect();
        DevicePool::new(specs, cores)
    }

    /// Costs: `seconds[job]` on a GPU, ten times that on the CPU.
    fn by_table(seconds: &[f64]) -> impl FnMut(usize, &str, usize) -> Estimate + '_ {
        move |i, device, _| Estimate {
            seconds: if device == "cpu" {
                10.0 * seconds[i]
            } else {
                seconds[i]
            },
            source: Source::Default,
        }
    }

    fn span(s: &Schedule, i: usize) -> (Option<&str>, f64, f64) {
        let p = s.jobs[i].as_ref().unwrap();
        (p.device.as_deref(), p.start, p.end)
    }

    #[test]
    fn two_cpu_slots_run_independent_nodes_side_by_side() {
        // a (2 s) and b (3 s) in parallel on cpu*2, c (1 s) after both: 3 + 1.
        let jobs = [
            job(&[], ANY, None),
            job(&[], ANY, None),
            job(&[0, 1], ANY, None),
        ];
        let s = simulate(&jobs, pool(&["cpu*2"], 4), |i, _, threads| {
            assert_eq!(threads, 2, "4 cores over 2 slots");
            Estimate {
                seconds: [2.0, 3.0, 1.0][i],
                source: Source::Default,
            }
        });
        assert_eq!(span(&s, 0), (Some("cpu"), 0.0, 2.0));
        assert_eq!(span(&s, 1), (Some("cpu"), 0.0, 3.0));
        assert_eq!(span(&s, 2), (Some("cpu"), 3.0, 4.0));
        assert_eq!(s.total, 4.0);
        assert_eq!(s.devices[0].jobs, 3);
        assert_eq!(s.devices[0].end, 4.0);
    }

    #[test]
    fn the_gpu_is_taken_first_and_the_cpu_takes_what_does_not_fit() {
        // Three independent 10 s jobs (100 s on the CPU) on cuda:0 and cpu, one slot each:
        // the first and third go to the GPU, the second to the CPU, which ends last.
        let jobs = [
            job(&[], ANY, None),
            job(&[], ANY, None),
            job(&[], ANY, None),
        ];
        let s = simulate(&jobs, pool(&["cpu", "cuda:0"], 2), by_table(&[10.0; 3]));
        assert_eq!(span(&s, 0), (Some("cuda:0"), 0.0, 10.0));
        assert_eq!(span(&s, 1), (Some("cpu"), 0.0, 100.0));
        assert_eq!(span(&s, 2), (Some("cuda:0"), 10.0, 20.0));
        let loads: Vec<(&str, usize, f64)> = s
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.jobs, d.end))
            .collect();
        assert_eq!(loads, [("cuda:0", 2, 20.0), ("cpu", 1, 100.0)]);
        assert_eq!(s.total, 100.0);
    }

    #[test]
    fn memory_estimates_keep_big_jobs_apart_on_a_shared_gpu() {
        // Four slots, 10 GB: two 6 GB jobs cannot share, two 2 GB jobs can.
        let gpu = Some(DeviceRequest::Gpu);
        let jobs = [
            job(&[], gpu, Some(6000)),
            job(&[], gpu, Some(6000)),
            job(&[], gpu, Some(2000)),
        ];
        let s = simulate(
            &jobs,
            pool(&["cuda:0*4@10G"], 2),
            by_table(&[5.0, 5.0, 1.0]),
        );
        assert_eq!(span(&s, 0), (Some("cuda:0"), 0.0, 5.0));
        // The second waits for the first; the small one is behind it in the queue, as in
        // the engine (one queue per kind of request, taken in order). From 5 s the two share
        // the GPU, each at 1.2 / 2 = 0.6: the small one's 1 s of work ends at 5 + 1 / 0.6,
        // when the big one has 5 - 1 = 4 s left alone.
        let (device, start, end) = span(&s, 2);
        assert_eq!((device, start), (Some("cuda:0"), 5.0));
        assert!((end - (5.0 + 1.0 / 0.6)).abs() < 1e-9, "{end}");
        let (_, start, end) = span(&s, 1);
        assert_eq!(start, 5.0);
        assert!((end - (5.0 + 1.0 / 0.6 + 4.0)).abs() < 1e-9, "{end}");
        assert_eq!(s.total, end);
    }

    #[test]
    fn jobs_sharing_a_gpu_share_its_throughput_and_the_cpu_is_unaffected() {
        // Two 10 s jobs on cuda:0*2 progress at 1.2 / 2 each: both end at 20 / 1.2. A third on
        // the CPU (two slots, 10 x 1 s) keeps its own time.
        let jobs = [
            job(&[], Some(DeviceRequest::Gpu), None),
            job(&[], Some(DeviceRequest::Gpu), None),
            job(&[], Some(DeviceRequest::Cpu), None),
        ];
        let s = simulate(
            &jobs,
            pool(&["cpu*2", "cuda:0*2"], 2),
            by_table(&[10.0, 10.0, 1.0]),
        );
        for i in [0, 1] {
            let (device, start, end) = span(&s, i);
            assert_eq!((device, start), (Some("cuda:0"), 0.0));
            assert!((end - 20.0 / GPU_SHARED_SPEEDUP).abs() < 1e-9, "{end}");
        }
        assert_eq!(span(&s, 2), (Some("cpu"), 0.0, 10.0));
        // With one slot the GPU runs them one after the other: 10 + 10.
        let s = simulate(&jobs[..2], pool(&["cuda:0"], 2), by_table(&[10.0, 10.0]));
        assert_eq!(s.total, 20.0);
    }

    #[test]
    fn a_node_the_pool_cannot_serve_fails_and_its_descendants_never_start() {
        let gpu = Some(DeviceRequest::Gpu);
        let jobs = [
            job(&[], gpu, None),
            job(&[0], ANY, None),
            job(&[], ANY, None),
        ];
        let s = simulate(&jobs, pool(&["cpu"], 2), by_table(&[1.0; 3]));
        assert_eq!(s.unservable, [0]);
        assert!(s.jobs[0].is_none() && s.jobs[1].is_none());
        assert_eq!(span(&s, 2), (Some("cpu"), 0.0, 10.0));
        assert_eq!(s.total, 10.0);
    }

    #[test]
    fn nodes_without_a_slot_run_beside_the_jobs() {
        // A 5 s job holds the only slot; a report (no device) after nothing starts at once,
        // and a select after the job starts when it ends.
        let jobs = [
            job(&[], ANY, None),
            job(&[], None, None),
            job(&[0], None, None),
        ];
        let s = simulate(&jobs, pool(&["cpu"], 1), |i, device, threads| {
            if i > 0 {
                assert_eq!((device, threads), ("cpu", 1));
            }
            Estimate {
                seconds: [5.0, 1.0, 0.5][i],
                source: Source::Default,
            }
        });
        assert_eq!(span(&s, 1), (None, 0.0, 1.0));
        assert_eq!(span(&s, 2), (None, 5.0, 5.5));
        assert_eq!(s.total, 5.5);
        assert_eq!(s.devices[0].jobs, 1);
    }

    #[test]
    fn nothing_to_run_takes_no_time() {
        let s = simulate(&[], pool(&["cpu"], 1), by_table(&[]));
        assert_eq!((s.total, s.devices[0].jobs), (0.0, 0));
    }
}
