//! `exec`: a new process in a running container. rrun clones a child that joins all of the
//! container's namespaces at once through a pidfd of its init, then forks so the process is
//! inside the pid namespace too. The child enters the container's cgroup first (cgroups::Entry).
//!
//! Protocol: parent `Go` -> child setns + fork -> `Forked{pid}` -> the process prepares and
//! execs; the channel is close-on-exec, so EOF means the exec happened and `Error{msg}` that
//! it did not.

use super::channel::{Channel, ToInit, ToParent};
use crate::cgroups::Cgroup;
use crate::spec::ProcPlan;
use anyhow::{Context, Result, anyhow};
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use std::os::fd::{AsRawFd, OwnedFd};

pub struct ExecOpts<'a> {
    pub id: &'a str,
    pub bundle: &'a std::path::Path,
    pub init_pid: i32,
    pub init_start_time: u64,
    pub process: &'a ProcPlan,
    pub cgroup: Option<&'a Cgroup>,
    /// `--cgroup`: sub-cgroups of the container's to run in.
    pub sub_cgroups: &'a crate::cgroups::SubCgroups,
    pub extra_fds: u32,
    pub extra_env: Vec<String>,
    /// Socket to send the pty master to (process.terminal).
    pub console: Option<std::os::fd::RawFd>,
}

/// The namespaces of `pid` that differ from ours.
fn differing_namespaces(pid: i32) -> CloneFlags {
    use std::os::unix::fs::MetadataExt;
    let mut f = CloneFlags::empty();
    for (name, flag) in [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("time", crate::namespaces::CLONE_NEWTIME),
    ] {
        let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}")).map(|m| m.ino());
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).map(|m| m.ino());
        if let (Ok(t), Ok(o)) = (theirs, ours)
            && t != o
        {
            f |= flag;
        }
    }
    f
}

/// Start the process; returns its pid once it has exec'd.
pub fn spawn(o: &ExecOpts) -> Result<i32> {
    let pidfd = crate::sys::pidfd_open(o.init_pid)
        .map_err(|e| anyhow!("open container init {}: {e}", o.init_pid))?;
    if !crate::util::pid_alive(o.init_pid, o.init_start_time) {
        return Err(crate::error::invalid_state("container not running".into()));
    }
    let flags = differing_namespaces(o.init_pid);
    crate::logging::debug(&format!(
        "exec: joining the namespaces {flags:?} of init {}",
        o.init_pid
    ));
    // execCPUAffinity.initial: where the runtime's side runs before the cgroup move; the
    // child inherits it from this process.
    if let Some(cpus) = &o.process.exec_affinity.0 {
        cpus.apply(0).map_err(|e| {
            anyhow!("process.execCPUAffinity.initial {cpus:?}: sched_setaffinity: {e}")
        })?;
    }
    let (parent, child) = super::channel::pair()?;
    // The child enters the cgroup by itself (born in it on v2): see cgroups::Entry.
    let entry = o.cgroup.map(|c| c.entry_sub(o.sub_cgroups)).transpose()?;
    let pid = super::clone3_into(
        CloneFlags::empty(),
        entry.as_ref().and_then(|e| e.v2_dir.as_ref()),
    )?;
    if pid == 0 {
        drop(parent);
        let e = child_main(o, &child, &pidfd, entry.as_ref(), flags).unwrap_err();
        let _ = child.send(&ToParent::Error {
            msg: format!("{e:#}"),
        });
        // SAFETY: leave without running destructors.
        unsafe { libc::_exit(1) }
    }
    drop(child);
    let mut guard = super::ChildGuard {
        pids: vec![pid],
        armed: true,
    };
    drop(entry);
    parent.send(&ToInit::Go)?;
    let mut proc_pid = None;
    let mut failed = None;
    loop {
        match parent.recv::<ToParent>()? {
            Some(ToParent::Forked { pid: p }) => {
                proc_pid = Some(p);
                guard.pids.push(p);
                let _ = waitpid(Pid::from_raw(pid), None);
            }
            Some(ToParent::SeccompListener) => {
                let fd = parent
                    .take_fd()
                    .ok_or_else(|| anyhow!("exec sent no seccomp listener fd"))?;
                let p = proc_pid.unwrap_or(pid);
                super::hand_listener(
                    o.process.seccomp.as_ref(),
                    o.id,
                    "running",
                    p,
                    o.bundle,
                    &Default::default(),
                    &fd,
                )?;
            }
            // The process may fail before its parent reports its pid: keep reading until both
            // are done, so the guard knows every pid to kill and reap.
            Some(ToParent::Error { msg }) => failed = Some(msg),
            Some(other) => return Err(anyhow!("exec channel: unexpected {other:?}")),
            None => break,
        }
    }
    if let Some(msg) = failed {
        return Err(crate::error::init_failed(msg));
    }
    let p = proc_pid.ok_or_else(|| anyhow!("exec: the process went away before it started"))?;
    guard.armed = false;
    Ok(p)
}

fn child_main(
    o: &ExecOpts,
    chan: &Channel,
    pidfd: &OwnedFd,
    cg_entry: Option<&crate::cgroups::Entry>,
    flags: CloneFlags,
) -> Result<std::convert::Infallible> {
    // The state lock belongs to the rrun command, not to the process.
    crate::state::close_lock_in_child();
    // --debug lines from inside the container's mount namespace still reach the caller's log.
    crate::logging::pin_file(3 + o.extra_fds as i32);
    // SAFETY: prctl with integer arguments: die with rrun until exec.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if let Some(e) = cg_entry {
        e.enter_self()?;
    }
    chan.expect(ToInit::Go)?;
    // No fd of rrun's (the state dir lock, the log) may come along into the container.
    let mut keep = vec![chan.fd.as_raw_fd(), pidfd.as_raw_fd()];
    keep.extend(o.console);
    keep.extend(crate::logging::pinned_fd());
    super::init::close_fds_except(3 + o.extra_fds, &keep);
    // Nothing in the container may read our memory or /proc/<pid>/exe (CVE-2019-5736).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // Inherited by the fork below; written while /proc is still the host's.
    if let Some(adj) = o.process.oom_score_adj {
        crate::sys::write_file("/proc/self/oom_score_adj", &adj.to_string())
            .context("process.oomScoreAdj")?;
    }
    // Before joining the container's mount namespace.
    let lsm_proc = super::init::lsm_proc_handle(o.process)?;
    if !flags.is_empty() {
        let _t = crate::logging::phase("join namespaces");
        nix::sched::setns(pidfd, flags)
            .with_context(|| format!("join the container's namespaces {flags:?}"))?;
    }
    drop_fd(pidfd);
    // SAFETY: single-threaded; the child continues with its own copy.
    match unsafe { nix::unistd::fork() }.context("fork into the container's pid namespace")? {
        ForkResult::Parent { child } => {
            let _ = chan.send(&ToParent::Forked {
                pid: child.as_raw(),
            });
            // SAFETY: the intermediate leaves at once.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => {}
    }
    // SAFETY: prctl with integer arguments. Still non-dumpable after fork.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let t = crate::logging::phase("process");
    super::init::settle_affinity(o.process.exec_affinity.1.as_ref())?;
    if o.process.terminal {
        let sock = o
            .console
            .ok_or_else(|| anyhow!("process.terminal: no console socket"))?;
        // We are in the container's mount namespace: its root is our root.
        let root =
            crate::sys::openat2(libc::AT_FDCWD, "/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)?;
        let flags = libc::O_RDWR | libc::O_NOCTTY;
        let no_links = crate::sys::RESOLVE_NO_SYMLINKS;
        let ptmx = crate::rootfs::open_in_root(&root, "/dev/pts/ptmx", flags, no_links)
            .map_err(|e| anyhow!("process.terminal: open the container's /dev/pts/ptmx: {e}"))?;
        let pty = crate::console::open_pty(ptmx, |n| {
            crate::rootfs::open_in_root(&root, n, flags, no_links)
        })?;
        if let Some(b) = o.process.console_size {
            crate::console::set_size(pty.master.as_raw_fd(), b.0, b.1)?;
        }
        crate::console::send_master(sock, &pty.master)?;
        drop(pty.master);
        crate::console::become_tty(&pty.slave)?;
    }
    let mut env = o.extra_env.clone();
    if env.iter().any(|e| e.starts_with("LISTEN_FDS=")) {
        env.push(format!("LISTEN_PID={}", nix::unistd::getpid()));
    }
    let prep = super::init::prepare_process(o.process, &env, chan, lsm_proc.as_ref())?;
    drop(lsm_proc);
    drop(t);
    prep.install_late()?;
    let exec_phase = crate::logging::phase("exec");
    Err(super::init::exec_prepared(
        &prep,
        o.extra_fds,
        &[chan.fd.as_raw_fd()],
        exec_phase,
    ))
}

fn drop_fd(fd: &OwnedFd) {
    // The pidfd was cloned into this process; close our copy so the container never sees it.
    let _ = nix::unistd::close(fd.as_raw_fd());
}
