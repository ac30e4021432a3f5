//! Which process owns a run, so that a run left `running` by a process that died (SIGKILL,
//! power loss) can be told apart from one still in progress in another process (the daemon
//! beside a CLI command).
//!
//! A pid alone is not enough: in a container the daemon is pid 1 after every restart. The
//! pid together with the process's start time (in clock ticks since boot, from
//! `/proc/PID/stat`) names one process for the life of the machine.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOwner(String);

impl ProcessOwner {
    pub fn current() -> Self {
        let pid = std::process::id();
        ProcessOwner(match start_time(pid) {
            Some(start) => format!("{pid}:{start}"),
            None => format!("{pid}:?"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the process named by `owner` is certainly gone. `false` when it cannot be
    /// known (no `/proc`), so that a live run is never closed by mistake.
    pub fn is_dead(owner: &str) -> bool {
        let Some((pid, start)) = owner.split_once(':') else {
            return false;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            return false;
        };
        if !std::path::Path::new("/proc/self/stat").exists() {
            return false;
        }
        start_time(pid) != Some(start)
    }
}

impl fmt::Display for ProcessOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Field 22 of `/proc/PID/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_dead() {
        let me = ProcessOwner::current();
        if me.as_str().ends_with(":?") {
            return; // no /proc here: nothing can be known, and nothing is claimed
        }
        assert!(!ProcessOwner::is_dead(me.as_str()));
        let (pid, start) = me.as_str().split_once(':').unwrap();
        let restarted = format!("{pid}:{}", start.parse::<u64>().unwrap() + 1);
        assert!(
            ProcessOwner::is_dead(&restarted),
            "same pid, other start time"
        );
        assert!(!ProcessOwner::is_dead("garbage"));
        assert!(!ProcessOwner::is_dead("12:?"));
    }
}
