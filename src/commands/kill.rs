//! `kill`: signal init through a pidfd whose start time is checked, so a recycled pid is never
//! signalled; `--all` (and KILL to a container without its own pid namespace) signals every
//! process of the cgroup.

use crate::cli::KillArgs;
use crate::state::{Container, Status};
use anyhow::{Result, anyhow, bail};
use std::path::Path;

/// "TERM", "SIGTERM", "term" or "15".
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // 0 checks that init is alive, as kill(2) and runc take it.
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let up = s.to_ascii_uppercase();
    // Real-time signals: RTMIN, RTMIN+3, SIGRTMAX-1 ...
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    for (base, n) in [("RTMIN", libc::SIGRTMIN()), ("RTMAX", libc::SIGRTMAX())] {
        if let Some(rest) = bare.strip_prefix(base) {
            let off: i32 = if rest.is_empty() {
                0
            } else {
                rest.parse().map_err(|_| anyhow!("unknown signal {s:?}"))?
            };
            let sig = n + off;
            if sig < libc::SIGRTMIN() || sig > libc::SIGRTMAX() {
                bail!("signal {s:?} is out of the real-time range");
            }
            return Ok(sig);
        }
    }
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| anyhow!("unknown signal {s:?}"))
}

pub fn run(root: &Path, a: &KillArgs) -> Result<()> {
    let sig = parse_signal(&a.signal)?;
    let c = Container::load(root, &a.id)?;
    let status = c.status();
    let not_running =
        || crate::error::invalid_state(format!("container {}: container not running", a.id));
    // Without a pid namespace of its own, KILL to init would leave the rest running: the
    // whole cgroup gets it, also once init is gone (runc).
    let all = a.all || (sig == libc::SIGKILL && c.saved.shared_pidns);
    if status == Status::Creating || (status == Status::Stopped && !all) {
        return Err(not_running());
    }
    match &c.saved.cgroup {
        Some(cg) if all => {
            if cg.signal_all(sig)? == 0 && status == Status::Stopped {
                return Err(not_running());
            }
            Ok(())
        }
        None if all => {
            // No cgroup (rootless on cgroup v1): the processes /proc says are the container's.
            let pids =
                crate::util::pids_by_proc(c.saved.pid, c.saved.start_time, !c.saved.shared_pidns);
            if pids.is_empty() {
                return Err(not_running());
            }
            let r = signal_init(&c.saved, sig);
            for p in pids.into_iter().filter(|&p| p != c.saved.pid) {
                let _ = kill_pid(p, sig);
            }
            r
        }
        _ => {
            let r = signal_init(&c.saved, sig);
            // A frozen process only acts on SIGKILL once thawed (runc thaws too).
            if sig == libc::SIGKILL
                && status == Status::Paused
                && let Some(cg) = &c.saved.cgroup
            {
                cg.set_frozen(false)?;
            }
            r
        }
    }
}

/// Signal one process of the container by pid (pidfd: no signal lands on a reused pid
/// between the open and the send).
pub(super) fn kill_pid(pid: i32, sig: i32) -> Result<()> {
    let fd = crate::sys::pidfd_open(pid).map_err(|e| anyhow!("pidfd_open {pid}: {e}"))?;
    crate::sys::pidfd_send_signal(&fd, sig).map_err(|e| anyhow!("signal {sig} to {pid}: {e}"))
}

pub fn signal_init(s: &crate::state::Saved, sig: i32) -> Result<()> {
    let pid = s.pid;
    let fd = match crate::sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ESRCH) => {
            return Err(crate::error::invalid_state("container not running".into()));
        }
        Err(e) => return Err(anyhow!("pidfd_open {pid}: {e}")),
    };
    // The pidfd pins the process: if its start time is still ours, it is our init.
    if !crate::util::pid_alive(pid, s.start_time) {
        return Err(crate::error::invalid_state("container not running".into()));
    }
    crate::sys::pidfd_send_signal(&fd, sig)
        .map_err(|e| anyhow!("signal {sig} to init (pid {pid}): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_forms() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("kill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_signal("RTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse_signal("SIGRTMAX").unwrap(), libc::SIGRTMAX());
        assert_eq!(parse_signal("SIGRTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        assert!(parse_signal("RTMAX+1").is_err());
        // (Signal 0 was refused before issue 17: runc takes it as a liveness check.)
        assert!(parse_signal("-1").is_err());
        assert!(parse_signal("99").is_err());
    }
}
