//! Which process owns a run, when the database is shared by machines: the host name before
//! the process (`host/pid:start-time`, see [`ProcessOwner`]). A process can only tell
//! whether a process of its own machine is gone, so a run is judged only by a process on
//! the machine that started it; runs of other machines are left `running` until hss-scand
//! starts again there. Two machines with the same host name would judge each other's runs by
//! pids that mean nothing here: give replicas distinct host names (pods and containers have
//! them by default).

use crate::store::owner::ProcessOwner;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RunOwner {
    /// `host/`: what every run of this machine starts with.
    prefix: String,
    text: String,
}

impl RunOwner {
    pub(super) fn current() -> RunOwner {
        RunOwner::on(&hostname(), &ProcessOwner::current())
    }

    fn on(host: &str, process: &ProcessOwner) -> RunOwner {
        let prefix = format!("{host}/");
        RunOwner {
            text: format!("{prefix}{process}"),
            prefix,
        }
    }

    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    /// What the owner of every run of this machine starts with.
    pub(super) fn host_prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `owner` is a process of this machine that is certainly gone.
    pub(super) fn is_dead_here(&self, owner: &str) -> bool {
        owner
            .strip_prefix(&self.prefix)
            .is_some_and(ProcessOwner::is_dead)
    }
}

/// This machine's name; `unknown-host` if it has none, so that all such machines at least
/// agree on what they cannot tell apart.
fn hostname() -> String {
    let mut buf = [0_u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    if rc != 0 || name.is_empty() {
        "unknown-host".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_processes_of_this_machine_are_dead() {
        let me = RunOwner::current();
        if ProcessOwner::current().as_str().ends_with(":?") {
            return; // no /proc here: nothing can be known, and nothing is claimed
        }
        assert!(me.as_str().starts_with(me.host_prefix()));
        assert!(!me.is_dead_here(me.as_str()), "this process lives");
        let (pid, start) = ProcessOwner::current()
            .as_str()
            .split_once(':')
            .map(|(p, s)| (p.to_owned(), s.parse::<u64>().unwrap()))
            .unwrap();
        let restarted = format!("{}{pid}:{}", me.host_prefix(), start + 1);
        assert!(me.is_dead_here(&restarted), "same pid, other start time");
        let elsewhere = format!("other-{}{pid}:{}", me.host_prefix(), start + 1);
        assert!(!me.is_dead_here(&elsewhere), "another machine's run");
        assert!(!me.is_dead_here("garbage"));
    }
}
