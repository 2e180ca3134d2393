//! `delete`, and `destroy`: the one cleanup path shared with a failed create.

use crate::cgroups::owned;
use crate::cli::DeleteArgs;
use crate::state::{Container, Status};
use anyhow::{Context, Result};
use std::os::fd::AsRawFd;
use std::path::Path;

pub fn run(root: &Path, a: &DeleteArgs) -> Result<()> {
    crate::state::validate_id(&a.id)?;
    let dir = root.join(&a.id);
    let lock = match crate::state::lock_dir(&dir) {
        Ok(l) => l,
        Err(e) if crate::error::errno_of(&e) == Some(libc::ENOENT) => {
            return if a.force {
                Ok(())
            } else {
                Err(crate::error::not_found(&a.id))
            };
        }
        Err(e) => return Err(e),
    };
    let saved = match crate::state::read_saved(&dir, &a.id) {
        Ok(s) => s,
        // A create killed before its first state.json, or a state.json lost or corrupt:
        // what the container owns is found from the create's record instead.
        Err(e) if a.force => return recover(&dir, lock, &e),
        Err(e) if crate::error::kind_of(&e) == Some(crate::error::Kind::NotFound) => {
            return Err(e);
        }
        Err(e) => {
            return Err(e.context(format!(
                "container {}: its state cannot be read (`delete --force` removes it)",
                a.id
            )));
        }
    };
    let c = Container::locked(dir, lock, saved);
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

/// `delete --force` without a usable state.json: kill and remove every cgroup dir the
/// create recorded (the processes with them), then the state dir.
fn recover(dir: &Path, lock: crate::state::Lock, why: &anyhow::Error) -> Result<()> {
    if crate::error::kind_of(why) != Some(crate::error::Kind::NotFound) {
        crate::logging::warn(&format!(
            "{why:#}: removing what the container's cgroup record ({}) names",
            owned::FILE
        ));
    }
    let o = owned::read(dir);
    owned::remove_owned(&o)
        .with_context(|| format!("the state dir {} stays for a retry", dir.display()))?;
    std::fs::remove_dir_all(dir).with_context(|| format!("remove state dir {}", dir.display()))?;
    drop(lock);
    Ok(())
}

/// Kill init and whatever else is in the cgroup, remove the cgroup dirs rrun created and the
/// state dir. Mounts live in the container's mount namespace and go with its processes.
/// When a cgroup dir cannot be removed the state dir stays, so that a retry can finish.
pub fn destroy(c: Container) -> Result<()> {
    // The pidfd pins the process; the start time proves it is still our init.
    if crate::util::pid_alive(c.saved.pid, c.saved.start_time)
        && let Ok(fd) = crate::sys::pidfd_open(c.saved.pid)
        && crate::util::pid_alive(c.saved.pid, c.saved.start_time)
    {
        // Without a cgroup (rootless on cgroup v1) the rest of the container is what /proc
        // says: its pid namespace, or init's descendants.
        let rest = if c.saved.cgroup.is_none() {
            crate::util::pids_by_proc(c.saved.pid, c.saved.start_time, !c.saved.shared_pidns)
        } else {
            Vec::new()
        };
        let _ = crate::sys::pidfd_send_signal(&fd, libc::SIGKILL);
        for p in rest.into_iter().filter(|&p| p != c.saved.pid) {
            let _ = super::kill::kill_pid(p, libc::SIGKILL);
        }
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
        crate::hooks::run_all_warn(
            "poststop",
            Some(h),
            &state,
            crate::hooks::Ctx::host(&s.bundle),
        );
    }
    // A create that finished saved every dir it made; one that did not (killed, or failed
    // before its last save) left the rest in its record.
    let also = if c.saved.creating || c.saved.cgroup.is_none() {
        owned::read(&c.dir)
    } else {
        owned::Owned::default()
    };
    let res = match &c.saved.cgroup {
        Some(cg) => cg.destroy(&also),
        None => owned::remove_owned(&also),
    };
    res.with_context(|| format!("the state dir {} stays for a retry", c.dir.display()))?;
    c.remove()
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
