//! `start`: release init from the exec fifo. Never hangs: a dead init gives ENXIO.

use crate::state::{Container, Status};
use anyhow::{Result, anyhow};
use std::os::fd::AsRawFd;
use std::path::Path;

pub fn run(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match start(&c) {
        // A startContainer hook or the exec failed: init is gone; clean up like a failed create.
        Err(e) if crate::error::kind_of(&e) == Some(crate::error::Kind::InitFailed) => {
            let _ = super::delete::destroy(c);
            Err(e)
        }
        r => r,
    }
}

pub fn start(c: &Container) -> Result<()> {
    let id = &c.saved.id;
    match c.status() {
        Status::Created => {}
        Status::Stopped => {
            return Err(crate::error::invalid_state(format!(
                "cannot start a container that has stopped: {id}"
            )));
        }
        Status::Running | Status::Paused => {
            return Err(crate::error::invalid_state(format!(
                "cannot start an already running container: {id}"
            )));
        }
        Status::Creating => {
            return Err(crate::error::invalid_state(format!(
                "cannot start a container that is still being created: {id}"
            )));
        }
    }
    let fifo = c.fifo();
    let fd = match crate::sys::openat2(
        libc::AT_FDCWD,
        &fifo.to_string_lossy(),
        libc::O_WRONLY | libc::O_NONBLOCK,
        0,
        0,
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENXIO) => {
            return Err(crate::error::invalid_state(format!(
                "container {id}: init exited before start (no reader on exec.fifo)"
            )));
        }
        Err(e) => return Err(anyhow!("open {}: {e}", fifo.display())),
    };
    nix::unistd::write(&fd, b"0").map_err(|e| anyhow!("write {}: {e}", fifo.display()))?;
    let hooks = c.saved.hooks.as_ref();
    let state = |status: &str| {
        crate::hooks::state_json(
            id,
            status,
            c.saved.pid,
            &c.saved.bundle,
            &c.saved.annotations,
        )
    };
    if hooks
        .and_then(|h| h.start_container().as_ref())
        .is_some_and(|l| !l.is_empty())
    {
        // Init keeps the fifo open until it execs: wait for that, or for it to fail.
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, -1) };
            if r >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                break;
            }
        }
        let why = std::fs::read_to_string(c.dir.join(crate::state::INIT_ERR)).unwrap_or_default();
        if !why.is_empty() {
            let _ = std::fs::remove_file(&fifo);
            return Err(crate::error::init_failed(format!("container {id}: {why}")));
        }
    }
    drop(fd);
    std::fs::remove_file(&fifo)
        .map_err(|e| anyhow!("remove {}: {}", fifo.display(), crate::sys::io_errno(&e)))?;
    crate::hooks::run_all_warn(
        "poststart",
        hooks.and_then(|h| h.poststart().as_ref()),
        &state("running"),
        crate::hooks::Ctx::host(&c.saved.bundle),
    );
    Ok(())
}
