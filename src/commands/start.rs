//! `start`: release init from the exec fifo. Never hangs: a dead init gives ENXIO.

use crate::state::{Container, Status};
use anyhow::{Result, anyhow};
use std::path::Path;

pub fn run(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    start(&c)
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
    drop(fd);
    std::fs::remove_file(&fifo)
        .map_err(|e| anyhow!("remove {}: {}", fifo.display(), crate::sys::io_errno(&e)))?;
    Ok(())
}
