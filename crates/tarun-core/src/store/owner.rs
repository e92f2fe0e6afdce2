//! Who made an entry of `tmp/`. Every job directory and temporary file the store creates there is
//! named after its process: `job-<node>@<pid>.<place>.<random>` and `.tmp@<pid>.<place>.<random>`,
//! where `<place>` is the host name and, on Linux, the pid namespace, for a pid means something
//! only there. A run removes the entries of its own place whose process is gone
//! ([`super::Store::sweep_dead_temporaries`]); the store's other writers (Slurm jobs on other
//! hosts) are never judged by this host's pids.

use std::sync::OnceLock;

/// `@<pid>.<place>.`: what this process puts in the names of its entries, before the random part.
pub(super) fn tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| format!("@{}.{}.", std::process::id(), place()))
}

/// This host and pid namespace, as the one word of an entry's name: the host name with every
/// character other than an ASCII letter, digit or `-` as `_` (at most 64), then `_` and the pid
/// namespace's inode where `/proc` says it.
pub(super) fn place() -> &'static str {
    static PLACE: OnceLock<String> = OnceLock::new();
    PLACE.get_or_init(|| {
        let mut place: String = host_name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        if place.is_empty() {
            place.push_str("localhost");
        }
        if let Ok(ns) = std::fs::read_link("/proc/self/ns/pid") {
            let inode: String = ns
                .to_string_lossy()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            if !inode.is_empty() {
                place.push('_');
                place.push_str(&inode);
            }
        }
        place
    })
}

/// This host's name, as `gethostname` gives it (empty when it fails).
pub(super) fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(host_name)
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into a buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// The pid and place an entry's name carries; `None` for a name without them (an entry of an
/// older tarun, or anything else).
pub(super) fn parse(name: &str) -> Option<(i32, &str)> {
    let (_, owner) = name.split_once('@')?;
    let mut parts = owner.splitn(3, '.');
    let pid = parts.next()?.parse::<i32>().ok().filter(|&p| p > 0)?;
    let place = parts.next().filter(|p| !p.is_empty())?;
    parts.next().filter(|random| !random.is_empty())?;
    Some((pid, place))
}

/// Whether `pid` (of this place) names a process that still exists: `kill(pid, 0)` fails with
/// `ESRCH` only when none does. A zombie, or a process of another user, counts as alive.
pub(super) fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_name_parses_back_to_its_owner() {
        let name = format!("job-train_a_{}abc123", tag());
        let (pid, place) = parse(&name).unwrap();
        assert_eq!(pid, i32::try_from(std::process::id()).unwrap());
        assert_eq!(place, super::place());
        assert!(alive(pid));
        let file = format!(".tmp{}Xy9z01", tag());
        assert_eq!(parse(&file), Some((pid, super::place())));
    }

    #[test]
    fn names_without_an_owner_are_not_parsed() {
        for name in [
            "job-train-abc123",
            ".tmpAbc123",
            "leftover",
            "job-x@.host.abc",
            "job-x@12.host",
            "job-x@12..abc",
            "job-x@-3.host.abc",
            "job-x@0.host.abc",
            "job-x@pid.host.abc",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
    }

    #[test]
    fn a_reaped_child_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
