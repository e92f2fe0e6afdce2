//! The device pool: named devices, each with a number of job slots.

use std::str::FromStr;

/// One device and how many jobs may use it at once, e.g. `cpu`, `cuda:0`, `cpu*2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    pub name: String,
    pub slots: usize,
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, slots) = match s.split_once('*') {
            Some((n, k)) => (
                n,
                k.parse().map_err(|_| format!("bad slot count in `{s}`"))?,
            ),
            None => (s, 1),
        };
        let valid = name == "cpu"
            || ["cuda:", "metal:"].iter().any(|p| {
                name.strip_prefix(p)
                    .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            });
        if !valid || slots == 0 {
            return Err(format!(
                "unknown device `{s}` (expected cpu, cuda:N or metal:N, optionally *SLOTS)"
            ));
        }
        Ok(DeviceSpec {
            name: name.to_owned(),
            slots,
        })
    }
}

/// Free slots per device. Accelerators come first, so they are preferred when free.
#[derive(Clone, Debug)]
pub struct DevicePool {
    /// One entry per slot: (device index, busy).
    slots: Vec<(usize, bool)>,
    devices: Vec<DeviceSpec>,
    cpu_threads: usize,
}

impl DevicePool {
    /// `cores` is the machine's core count, shared among the CPU slots.
    pub fn new(mut devices: Vec<DeviceSpec>, cores: usize) -> Self {
        devices.sort_by_key(|d| d.name == "cpu");
        let slots = devices
            .iter()
            .enumerate()
            .flat_map(|(i, d)| std::iter::repeat_n((i, false), d.slots))
            .collect();
        let cpu_slots: usize = devices
            .iter()
            .filter(|d| d.name == "cpu")
            .map(|d| d.slots)
            .sum();
        let cpu_threads = (cores / cpu_slots.max(1)).max(1);
        DevicePool {
            slots,
            devices,
            cpu_threads,
        }
    }

    pub fn acquire(&mut self) -> Option<usize> {
        let slot = self.slots.iter().position(|(_, busy)| !busy)?;
        self.slots[slot].1 = true;
        Some(slot)
    }

    pub fn release(&mut self, slot: usize) {
        self.slots[slot].1 = false;
    }

    pub fn name(&self, slot: usize) -> &str {
        &self.devices[self.slots[slot].0].name
    }

    /// Threads a job on this slot may use: the cores shared among CPU slots.
    pub fn threads(&self, slot: usize) -> usize {
        if self.name(slot) == "cpu" {
            self.cpu_threads
        } else {
            self.cpu_threads.max(1)
        }
    }

    pub fn devices(&self) -> &[DeviceSpec] {
        &self.devices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_slots() {
        assert_eq!(
            "cpu".parse::<DeviceSpec>().unwrap(),
            DeviceSpec {
                name: "cpu".into(),
                slots: 1
            }
        );
        assert_eq!("cuda:1*2".parse::<DeviceSpec>().unwrap().slots, 2);
        assert!("gpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:".parse::<DeviceSpec>().is_err());
        assert!("cpu*0".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn accelerators_are_handed_out_first() {
        let devs = vec!["cpu*2".parse().unwrap(), "cuda:0".parse().unwrap()];
        let mut pool = DevicePool::new(devs, 8);
        let a = pool.acquire().unwrap();
        assert_eq!(pool.name(a), "cuda:0");
        let b = pool.acquire().unwrap();
        assert_eq!((pool.name(b), pool.threads(b)), ("cpu", 4));
        pool.acquire().unwrap();
        assert!(pool.acquire().is_none());
        pool.release(a);
        let again = pool.acquire().unwrap();
        assert_eq!(pool.name(again), "cuda:0");
    }
}
