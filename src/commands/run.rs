//! `run`: create + start, then (unless --detach) forward signals, wait, delete, and exit with
//! the container's status (128+N when killed by signal N).

use crate::cli::RunArgs;
use anyhow::{Result, anyhow};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::path::Path;

pub fn run(root: &Path, a: &RunArgs) -> Result<i32> {
    // If init ends up a grandchild (pid namespace joined or unshared later), it is ours to reap.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let c = super::create::create(root, &a.opts, &a.id)?;
    let pid = c.saved.pid;
    if a.detach {
        return super::start::start(&c).map(|_| 0);
    }
    // Block the signals we forward before init can run user code.
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| anyhow!("block signals: {e}"))?;
    if let Err(e) = super::start::start(&c) {
        let _ = super::delete::destroy(c);
        return Err(e);
    }
    // Other verbs (kill, pause, ps...) must be able to lock the container while we wait.
    let saved = c.saved.clone();
    drop(c);
    let code = loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => break 0,
            Err(e) => return Err(anyhow!("wait for container init {pid}: {e}")),
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                // Reap other children we inherited as a subreaper.
                while let Ok(ws) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    match ws {
                        WaitStatus::Exited(p, code) if p.as_raw() == pid => {
                            finish(root, &a.id, a.keep);
                            return Ok(code);
                        }
                        WaitStatus::Signaled(p, sig, _) if p.as_raw() == pid => {
                            finish(root, &a.id, a.keep);
                            return Ok(128 + sig as i32);
                        }
                        WaitStatus::StillAlive => break,
                        _ => {}
                    }
                }
            }
            Ok(sig) => {
                let _ = super::kill::signal_init(&saved, sig as i32);
            }
            Err(_) => {}
        }
    };
    finish(root, &a.id, a.keep);
    Ok(code)
}

fn finish(root: &Path, id: &str, keep: bool) {
    if keep {
        return;
    }
    let r = crate::state::Container::load(root, id).and_then(super::delete::destroy);
    if let Err(e) = r {
        crate::logging::warn(&format!("delete after run: {e:#}"));
    }
}
