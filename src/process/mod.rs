//! Spawning container init: clone3 with the namespaces, then the parent half of the protocol
//! (id maps, Go, the v1 cgroup, wait for Ready). The child half is `init.rs`.

pub mod channel;
pub mod dmz;
pub mod exec;
pub mod init;

use crate::cgroups::Cgroup;
use crate::spec::Plan;
use anyhow::{Result, anyhow, bail};
use channel::{ToInit, ToParent};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::os::fd::OwnedFd;

pub struct InitOpts<'a> {
    pub id: &'a str,
    pub plan: &'a Plan,
    /// init writes why it failed after `start` here (startContainer hooks, execve).
    pub err_file: Option<&'a std::fs::File>,
    /// Socket to send the pty master to (process.terminal).
    pub console: Option<std::os::fd::RawFd>,
    pub cgroup: Option<&'a Cgroup>,
    /// v1 and hybrid: the parent makes the v1 hierarchies after the clone, while init sets up
    /// its namespaces, and sends their `tasks` files ([`Pending::send_cgroup`]); init joins
    /// them before its mounts. Otherwise init is in its whole cgroup from the start.
    pub cgroup_late: bool,
    /// Read end of exec.fifo: init blocks on it until `start`.
    pub fifo: Option<&'a OwnedFd>,
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of joining a new one named after the id.
    pub no_new_keyring: bool,
    /// fds 3 .. 3+extra_fds stay open in the container.
    pub extra_fds: u32,
    /// Environment added to process.env (LISTEN_FDS, LISTEN_PID).
    pub extra_env: Vec<String>,
}

pub struct Spawned {
    pub pid: i32,
    pub start_time: u64,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork-like clone3 with namespace flags, optionally straight into a cgroup v2 directory
/// (CLONE_INTO_CGROUP). Returns 0 in the child.
pub fn clone3_into(flags: CloneFlags, cgroup: Option<&std::fs::File>) -> Result<i32> {
    use std::os::fd::AsRawFd;
    let args = CloneArgs {
        flags: flags.bits() as u64
            | if cgroup.is_some() {
                CLONE_INTO_CGROUP
            } else {
                0
            },
        cgroup: cgroup.map_or(0, |f| f.as_raw_fd() as u64),
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: no stack is given, so the child continues on a copy of our stack like fork();
    // rrun has a single thread here, so no lock can be held by another thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        let e = nix::errno::Errno::last();
        bail!("clone3 with {}: {e}", describe(flags));
    }
    Ok(r as i32)
}

fn describe(flags: CloneFlags) -> String {
    let names: Vec<&str> = flags.iter().map(crate::namespaces::name).collect();
    if names.is_empty() {
        "no new namespaces".into()
    } else {
        format!("new {} namespaces", names.join(", "))
    }
}

fn write_maps(pid: i32, plan: &Plan) -> Result<()> {
    crate::rootless::write_maps(pid, plan.uid_map.as_deref(), plan.gid_map.as_deref())
}

/// Kills and reaps the child if spawning fails part way.
pub struct ChildGuard {
    pub pids: Vec<i32>,
    pub armed: bool,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.armed {
            for &p in &self.pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(p), Some(WaitPidFlag::__WALL));
            }
        }
    }
}

/// Init, cloned and told to go, on its way to Ready.
pub struct Pending<'a, 'o> {
    o: &'o InitOpts<'a>,
    parent: channel::Channel,
    guard: ChildGuard,
    pid: i32,
    _t: Option<crate::logging::Phase>,
}

/// Clone init, which waits until [`Pending::go`]; [`Pending::ready`] drives it the rest of
/// the way. In between the caller may put init in a systemd scope, or (after `go`) make the
/// v1 cgroup and send it ([`InitOpts::cgroup_late`]).
pub fn spawn<'a, 'o>(o: &'o InitOpts<'a>) -> Result<Pending<'a, 'o>> {
    let plan = o.plan;
    let ns_files = crate::namespaces::open_joins(&plan.ns)?;
    let offsets = plan.time_offsets.is_some();
    let (mut now, mut later) = plan.ns.split(offsets);
    let fork = plan.ns.needs_fork(now, offsets);
    if o.cgroup_late {
        // Made by init itself, while the parent makes the cgroup (the network namespace
        // alone takes about as long as the v1 cgroup).
        let moved = plan.ns.deferrable(now);
        now -= moved;
        later |= moved;
    }
    let (parent, child) = channel::pair()?;
    let t = crate::logging::phase("clone");
    // The child enters its cgroup by itself (born in it on v2): see cgroups::Entry.
    let part = if o.cgroup_late {
        crate::cgroups::Part::Unified
    } else {
        crate::cgroups::Part::All
    };
    // A systemd scope is made around init once it exists (the caller, before `go`).
    let entry = o
        .cgroup
        .filter(|c| !c.by_systemd())
        .map(|c| c.entry(part))
        .transpose()?;
    let pid = clone3_into(now, entry.as_ref().and_then(|e| e.v2_dir.as_ref()))?;
    if pid == 0 {
        drop(parent);
        init::run(o, child, &ns_files, entry.as_ref(), now, later, fork);
    }
    drop(t);
    drop(child);
    drop(ns_files);
    drop(entry);
    let guard = ChildGuard {
        pids: vec![pid],
        armed: true,
    };
    if now.contains(CloneFlags::CLONE_NEWUSER) {
        write_maps(pid, plan)?;
    }
    Ok(Pending {
        o,
        parent,
        guard,
        pid,
        _t: crate::logging::phase("init setup"),
    })
}

impl Pending<'_, '_> {
    /// The cloned init's pid (on the host), before it is let go.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Let init go on: until now it waits, in rrun's cgroup and namespaces only.
    pub fn go(&self) -> Result<()> {
        self.parent.send(&ToInit::Go)
    }

    /// Send init the `tasks` files of its v1 cgroup (made after the clone).
    pub fn send_cgroup(&self, e: &crate::cgroups::Entry) -> Result<()> {
        let (fds, tasks) = e.tasks();
        let Err(err) = self.parent.send_fds(&ToInit::Cgroup { tasks }, &fds) else {
            return Ok(());
        };
        let err = err.context("send init its v1 cgroup");
        // Our own send failed (not because init closed its end): that is the error.
        if !matches!(
            crate::error::errno_of(&err),
            Some(libc::EPIPE) | Some(libc::ECONNRESET)
        ) {
            return Err(err);
        }
        // init failed first (the send found its end closed): its own error says why. Our end
        // shut for writing, a live init stops waiting and reports too.
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&self.parent.fd),
            nix::sys::socket::Shutdown::Write,
        );
        while let Ok(Some(m)) = self.parent.recv::<ToParent>() {
            if let ToParent::Error { msg } = m {
                return Err(crate::error::init_failed(msg));
            }
        }
        Err(err)
    }

    /// Serve init's requests until it is Ready (blocked on the exec fifo).
    pub fn ready(mut self) -> Result<Spawned> {
        let (o, plan, pid) = (self.o, self.o.plan, self.pid);
        let parent = &self.parent;
        let mut init_pid = pid;
        loop {
            match parent.recv::<ToParent>()? {
                Some(ToParent::NeedMaps) => {
                    write_maps(pid, plan)?;
                    parent.send(&ToInit::MapsWritten)?;
                }
                Some(ToParent::Forked { pid: p }) => {
                    init_pid = p;
                    self.guard.pids.push(p);
                    // The intermediate process exits once it has forked init.
                    let _ = waitpid(Pid::from_raw(pid), None);
                }
                Some(ToParent::NeedBindSources) => {
                    let _t = crate::logging::phase("bind sources");
                    let got = crate::rootfs::prepare_sources(
                        init_pid,
                        &plan.mounts,
                        &plan.rootfs,
                        plan.ns.owns(CloneFlags::CLONE_NEWUSER),
                    )?;
                    parent.send_indexed(&got.sources, |indices| ToInit::BindSources { indices })?;
                    parent.send_indexed(&got.trees, |indices| ToInit::IdmappedTrees { indices })?;
                    parent.send(&ToInit::BindSourcesDone)?;
                }
                Some(ToParent::RunHooks) => {
                    let hooks = plan.hooks.as_ref();
                    let state = crate::hooks::state_json(
                        o.id,
                        "creating",
                        init_pid,
                        &plan.bundle,
                        &plan.annotations,
                    );
                    let _t = crate::logging::phase("createRuntime hooks");
                    #[allow(deprecated)]
                    crate::hooks::run_all(
                        "prestart",
                        hooks.and_then(|h| h.prestart().as_ref()),
                        &state,
                        crate::hooks::Ctx::host(&plan.bundle),
                    )?;
                    crate::hooks::run_all(
                        "createRuntime",
                        hooks.and_then(|h| h.create_runtime().as_ref()),
                        &state,
                        crate::hooks::Ctx::host(&plan.bundle),
                    )?;
                    parent.send(&ToInit::HooksDone { pid: init_pid })?;
                }
                Some(ToParent::SeccompListener) => {
                    let fd = parent
                        .take_fd()
                        .ok_or_else(|| anyhow!("init sent no seccomp listener fd"))?;
                    hand_listener(
                        plan.process.seccomp.as_ref(),
                        o.id,
                        "creating",
                        init_pid,
                        &plan.bundle,
                        &plan.annotations,
                        &fd,
                    )?;
                }
                Some(ToParent::Ready) => break,
                Some(ToParent::Error { msg }) => return Err(crate::error::init_failed(msg)),
                None => {
                    let how = match waitpid(Pid::from_raw(init_pid), Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(_, c)) => format!("exited with status {c}"),
                        Ok(WaitStatus::Signaled(_, s, _)) => format!("was killed by {s}"),
                        _ => "closed its channel".into(),
                    };
                    return Err(crate::error::init_failed(format!(
                        "container init {how} before it was ready"
                    )));
                }
            }
        }
        let start_time = crate::util::proc_stat(init_pid)
            .map(|s| s.1)
            .ok_or_else(|| anyhow!("container init (pid {init_pid}) died right after setup"))?;
        self.guard.armed = false;
        Ok(Spawned {
            pid: init_pid,
            start_time,
        })
    }
}

/// Block the signals a foreground `run`/`exec` forwards to the container (and SIGCHLD, which
/// ends its wait); the set, for sigwait or a signalfd.
pub fn block_forwarded_signals() -> Result<nix::sys::signal::SigSet> {
    let mut set = nix::sys::signal::SigSet::empty();
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
    Ok(set)
}

/// sigwait(3) for one of `set`. Not nix's `SigSet::wait`: glibc's sigwait returns its error
/// number (not -1 and errno), which nix takes for success and then unwraps an uninitialized
/// signal number (a panic on an EAGAIN or ENOMEM from rt_sigtimedwait).
fn sigwait(set: &nix::sys::signal::SigSet) -> Result<Signal> {
    let mut sig: libc::c_int = 0;
    // SAFETY: a valid sigset and a valid out pointer.
    let r = unsafe { libc::sigwait(set.as_ref(), &mut sig) };
    if r != 0 {
        return Err(anyhow!(
            "wait for a signal: {}",
            nix::errno::Errno::from_raw(r)
        ));
    }
    Signal::try_from(sig).map_err(|e| anyhow!("wait for a signal: signal {sig}: {e}"))
}

/// Wait for `pid`, forwarding the usual signals to it; 128+N when killed by signal N.
pub fn wait_forwarding(pid: i32) -> Result<i32> {
    let set = block_forwarded_signals()?;
    loop {
        match waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(e) => return Err(anyhow!("wait for process {pid}: {e}")),
        }
        match sigwait(&set) {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap_child(pid) {
                    return Ok(code);
                }
            }
            Ok(sig) => {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
            }
            Err(_) => {}
        }
    }
}

/// Send a seccomp notify listener and the container state to listenerPath, as runc does.
pub fn hand_listener(
    f: Option<&crate::seccomp::Filter>,
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::BTreeMap<String, String>,
    fd: &OwnedFd,
) -> Result<()> {
    use std::os::fd::AsFd;
    let f = f.ok_or_else(|| anyhow!("a seccomp listener arrived without a filter"))?;
    let path = f
        .listener_path()
        .ok_or_else(|| anyhow!("linux.seccomp.listenerPath: missing"))?;
    let state: serde_json::Value = serde_json::from_str(&crate::hooks::state_json(
        id,
        status,
        pid,
        bundle,
        annotations,
    ))?;
    let msg = crate::seccomp::process_state_json(pid, f.listener_metadata(), &state);
    crate::seccomp::send_listener(path, fd.as_fd(), &msg)
        .map_err(|e| anyhow!("linux.seccomp.listenerPath: {e:#}"))
}

/// Reap every exited child (we may be a subreaper); the status code of `pid` if it was one.
pub fn reap_child(pid: i32) -> Option<i32> {
    use nix::sys::wait::WaitPidFlag;
    while let Ok(ws) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        match ws {
            WaitStatus::Exited(p, c) if p.as_raw() == pid => return Some(c),
            WaitStatus::Signaled(p, s, _) if p.as_raw() == pid => return Some(128 + s as i32),
            WaitStatus::StillAlive => break,
            _ => {}
        }
    }
    None
}
