//! `delete`, and `destroy`: the one cleanup path shared with a failed create.

use crate::cli::DeleteArgs;
use crate::state::{Container, Status};
use anyhow::Result;
use std::os::fd::AsRawFd;
use std::path::Path;

pub fn run(root: &Path, a: &DeleteArgs) -> Result<()> {
    let c = match Container::load(root, &a.id) {
        Ok(c) => c,
        Err(e) if a.force && crate::error::kind_of(&e) == Some(crate::error::Kind::NotFound) => {
            // A create that died before writing state can leave an empty dir behind.
            let _ = std::fs::remove_dir_all(root.join(&a.id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let status = c.status();
    if matches!(status, Status::Running | Status::Paused) && !a.force {
        return Err(crate::error::invalid_state(format!(
            "cannot delete container {} that is not stopped: {}",
            a.id,
            status.as_str()
        )));
    }
    destroy(c)
}

/// Kill init and whatever else is in the cgroup, remove the cgroup dirs rrun created and the
/// state dir. Mounts live in the container's mount namespace and go with its processes.
pub fn destroy(c: Container) -> Result<()> {
    // The pidfd pins the process; the start time proves it is still our init.
    if crate::util::pid_alive(c.saved.pid, c.saved.start_time)
        && let Ok(fd) = crate::sys::pidfd_open(c.saved.pid)
        && crate::util::pid_alive(c.saved.pid, c.saved.start_time)
    {
        let _ = crate::sys::pidfd_send_signal(&fd, libc::SIGKILL);
        // A paused container's tasks only die once thawed.
        if let Some(cg) = &c.saved.cgroup
            && cg.is_frozen()
        {
            let _ = cg.set_frozen(false);
        }
        wait_exit(&fd);
    }
    let s = &c.saved;
    if let Some(h) = s.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
        let state = crate::hooks::state_json(&s.id, "stopped", s.pid, &s.bundle, &s.annotations);
        crate::hooks::run_all_warn("poststop", Some(h), &state);
    }
    let mut res = Ok(());
    if let Some(cg) = &c.saved.cgroup {
        res = cg.destroy();
    }
    let r2 = c.remove();
    res.and(r2)
}

/// A pidfd becomes readable when the process exits (zombie or reaped).
fn wait_exit(fd: &std::os::fd::OwnedFd) {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; bounded wait.
    unsafe { libc::poll(&mut p, 1, 5000) };
}
