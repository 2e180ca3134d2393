//! `run`: create + start, then (unless --detach) forward signals, wait, delete, and exit with
//! the container's status (128+N when killed by signal N).

use crate::cli::RunArgs;
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, a: &RunArgs) -> Result<i32> {
    // If init ends up a grandchild (pid namespace joined or unshared later), it is ours to reap.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let (c, master) = super::create::create(root, &a.opts, &a.id, !a.detach)?;
    let pid = c.saved.pid;
    if a.detach {
        return super::start::start(&c).map(|_| 0);
    }
    let t = crate::logging::phase("start");
    if let Err(e) = super::start::start(&c) {
        let _ = super::delete::destroy(c);
        return Err(e);
    }
    // Other verbs (kill, pause, ps...) must be able to lock the container while we wait.
    drop(c);
    drop(t);
    let t = crate::logging::phase("wait");
    let code = match master {
        Some(m) => crate::console::proxy_and_wait(m, pid),
        None => crate::process::wait_forwarding(pid),
    };
    drop(t);
    let t = crate::logging::phase("delete");
    finish(root, &a.id, a.keep);
    drop(t);
    code
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
