//! Container init, the child half: linear, from the clone to execve. Every failure goes back
//! to the parent as `Error{msg}` with the whole chain, and init exits.

use super::InitOpts;
use super::channel::{Channel, ToInit, ToParent};
use crate::rootfs::{self, Setup};
use anyhow::{Context, Result, anyhow, bail};
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Uid};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

pub fn run(
    o: &InitOpts,
    chan: Channel,
    ns_files: &[(CloneFlags, std::fs::File, usize)],
    cg_entry: Option<&crate::cgroups::Entry>,
    now: CloneFlags,
    later: CloneFlags,
    fork: bool,
) -> ! {
    let err = match setup(o, &chan, ns_files, cg_entry, now, later, fork) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = chan.send(&ToParent::Error {
        msg: format!("{err:#}"),
    });
    // SAFETY: leave without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(1) }
}

fn prctl(op: i32, arg: u64) -> nix::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(op, arg, 0, 0, 0) };
    nix::errno::Errno::result(r).map(drop)
}

fn setup(
    o: &InitOpts,
    chan: &Channel,
    ns_files: &[(CloneFlags, std::fs::File, usize)],
    cg_entry: Option<&crate::cgroups::Entry>,
    now: CloneFlags,
    later: CloneFlags,
    fork: bool,
) -> Result<Infallible> {
    let plan = o.plan;
    // The state lock belongs to the rrun command, not to the container.
    crate::state::close_lock_in_child();
    // --debug lines after the mount namespace and root change still go to the caller's --log.
    crate::logging::pin_file(3 + o.extra_fds as i32);
    // Until Ready, init dies with the rrun that creates it.
    prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64).context("set the parent-death signal")?;
    // Into the container's cgroup before anything else (v1 and hybrid: into its cgroup2 dir,
    // and the v1 hierarchies once the parent has made them, below).
    if let Some(e) = cg_entry {
        e.enter_self()?;
    }
    // Everything else the clone copied from rrun (cgroup dirs, the cgroup record, a caller's
    // stray fds) goes now: while the container is `created`, a process of it with
    // CAP_SYS_PTRACE could reach init's fds through /proc/1/fd. What stays: the channel, the
    // exec fifo, init.err, the console, namespaces still to join, the --debug log, and the
    // fds passed to the container.
    {
        let mut keep: Vec<i32> = vec![chan.fd.as_raw_fd()];
        keep.extend(o.fifo.map(|f| f.as_raw_fd()));
        keep.extend(o.err_file.map(|f| f.as_raw_fd()));
        keep.extend(o.console);
        keep.extend(ns_files.iter().map(|(_, f, _)| f.as_raw_fd()));
        keep.extend(crate::logging::pinned_fd());
        close_fds_except(3 + o.extra_fds, &keep);
    }
    chan.expect(ToInit::Go)?;
    // Nothing in the container may ptrace or read our memory while we hold host fds.
    prctl(libc::PR_SET_DUMPABLE, 0).context("make init non-dumpable")?;

    crate::namespaces::join_all(ns_files, &plan.ns)?;
    for (_, f, _) in ns_files {
        // Joined: not to be held while the container waits (never dropped here: init ends
        // in execve or _exit).
        // SAFETY: closing our copy of an fd nothing else in this process uses.
        unsafe { libc::close(f.as_raw_fd()) };
    }
    let mut later = later;
    if later.contains(CloneFlags::CLONE_NEWUSER) {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).context("unshare the user namespace")?;
        chan.send(&ToParent::NeedMaps)?;
        chan.expect(ToInit::MapsWritten)?;
        later -= CloneFlags::CLONE_NEWUSER;
    }
    // With the v1 cgroup still to come, the cgroup namespace waits for it.
    let mut cgroup_pending = o.cgroup_late && o.cgroup.is_some();
    let cgroupns = later & CloneFlags::CLONE_NEWCGROUP;
    if cgroup_pending {
        later -= CloneFlags::CLONE_NEWCGROUP;
    }
    if !later.is_empty() {
        let _t = crate::logging::phase("unshare");
        nix::sched::unshare(later).with_context(|| format!("unshare namespaces {later:?}"))?;
    }
    if let Some(off) = &plan.time_offsets {
        crate::sys::write_file("/proc/self/timens_offsets", off).context("linux.timeOffsets")?;
    }
    if fork && cgroup_pending {
        // The real init is forked into the cgroup.
        enter_late_cgroup(chan, cgroupns)?;
        cgroup_pending = false;
    }
    if fork {
        // SAFETY: single-threaded; the child continues with its own copy of everything.
        match unsafe { nix::unistd::fork() }.context("fork into the new pid/time namespace")? {
            ForkResult::Parent { child } => {
                let _ = chan.send(&ToParent::Forked {
                    pid: child.as_raw(),
                });
                // SAFETY: the intermediate process leaves at once.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Child => {}
        }
    }
    let userns = now.contains(CloneFlags::CLONE_NEWUSER) || plan.ns.owns(CloneFlags::CLONE_NEWUSER);
    if userns {
        // Become root of the new user namespace (mapped uid 0), if it is mapped.
        let _ = nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0));
        let _ = nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0));
    }

    if !o.no_new_keyring {
        // A session keyring of its own, so the container cannot see the host's keys.
        let name = CString::new(o.id)?;
        // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, name) with a valid C string.
        let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, name.as_ptr()) };
        match nix::errno::Errno::result(r) {
            Ok(_) | Err(nix::errno::Errno::ENOSYS) => {}
            Err(e) => bail!("join a new session keyring (--no-new-keyring skips it): {e}"),
        }
    }
    if plan.ns.new.contains(CloneFlags::CLONE_NEWNET) {
        loopback_up().context("the new network namespace")?;
    }
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h)
            .map_err(|e| anyhow!("set hostname {}: {e}", crate::util::shorten(h, 64)))?;
    }
    if let Some(d) = &plan.domainname {
        let c = CString::new(d.as_str())?;
        // SAFETY: valid pointer and length.
        let r = unsafe { libc::setdomainname(c.as_ptr(), d.len()) };
        nix::errno::Errno::result(r).map_err(|e| anyhow!("set domainname {d:?}: {e}"))?;
    }
    // Namespaced sysctls go through the host /proc while it is still here: the kernel picks
    // the namespace of the writer, which is already the container's.
    for (k, v) in &plan.sysctl {
        crate::sys::write_file(&crate::sysctl::proc_path(k), v)
            .with_context(|| format!("linux.sysctl.{k}"))?;
    }
    if let Some(adj) = plan.process.oom_score_adj {
        crate::sys::write_file("/proc/self/oom_score_adj", &adj.to_string())
            .context("process.oomScoreAdj")?;
    }

    // A new user namespace's root may not reach a bind source on the host, and id-mapped
    // mounts need the host's privileges: the parent opens and prepares them from inside this
    // mount namespace (rootfs::prepare_sources).
    let mut bind_srcs = Vec::new();
    let mut idmapped = Vec::new();
    if rootfs::parent_opens_bind_sources(
        &plan.mounts,
        &plan.rootfs,
        plan.ns.owns(CloneFlags::CLONE_NEWUSER),
    ) {
        if cgroup_pending {
            // The v1 cgroup the parent sent comes first on the channel.
            enter_late_cgroup(chan, cgroupns)?;
            cgroup_pending = false;
        }
        chan.send(&ToParent::NeedBindSources)?;
        loop {
            match chan.recv::<ToInit>()? {
                Some(ToInit::BindSources { indices }) => {
                    bind_srcs.extend(indices.into_iter().zip(chan.take_fds()));
                }
                Some(ToInit::IdmappedTrees { indices }) => {
                    idmapped.extend(indices.into_iter().zip(chan.take_fds()));
                }
                Some(ToInit::BindSourcesDone) => break,
                other => bail!("init channel: expected BindSources, got {other:?}"),
            }
        }
    }
    // The root filesystem, all before pivot_root.
    let s = Setup {
        rootfs: &plan.rootfs,
        mounts: &plan.mounts,
        devices: &plan.devices,
        propagation: plan.root_propagation,
        cgroup: o.cgroup,
        cgroupns: plan.ns.owns(CloneFlags::CLONE_NEWCGROUP),
        userns: userns || crate::rootless::userns(),
        bind_srcs: &bind_srcs,
        idmapped: &idmapped,
    };
    // Before any of the container's mounts exist.
    let lsm_proc = lsm_proc_handle(&plan.process)?;
    let t = crate::logging::phase("mounts");
    // Without a mount namespace of its own the container runs in the host's mounts (runc):
    // nothing is mounted or made, and the rootfs becomes its root by chroot, not pivot_root.
    let own_mounts = plan.ns.owns(CloneFlags::CLONE_NEWNS);
    let root = if own_mounts {
        rootfs::prepare_root(&s)?
    } else {
        let r = plan.rootfs.to_string_lossy();
        crate::sys::openat2(libc::AT_FDCWD, &r, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
            .map_err(|e| anyhow!("open rootfs {r}: {e}"))?
    };
    if cgroup_pending {
        // Before the mounts: they bind the cgroup's dirs, and a device node is made under
        // the cgroup's device rules.
        enter_late_cgroup(chan, cgroupns)?;
    }
    if own_mounts {
        rootfs::do_mounts(&root, &s)?;
        rootfs::setup_dev(&root, &s)?;
    }
    // Host mounts' handles: gone before anything of the container's can run.
    drop(bind_srcs);
    drop(idmapped);
    if plan.process.terminal {
        let sock = o
            .console
            .ok_or_else(|| anyhow!("process.terminal: no console socket"))?;
        let flags = libc::O_RDWR | libc::O_NOCTTY;
        let ptmx = rootfs::open_in_root(
            &root,
            "/dev/pts/ptmx",
            flags,
            crate::sys::RESOLVE_NO_SYMLINKS,
        )
        .map_err(|e| anyhow!("process.terminal: open the container's /dev/pts/ptmx: {e}"))?;
        let pty = crate::console::open_pty(ptmx, |n| {
            rootfs::open_in_root(&root, n, flags, crate::sys::RESOLVE_NO_SYMLINKS)
        })
        .context("process.terminal")?;
        if let Some(b) = plan.process.console_size {
            crate::console::set_size(pty.master.as_raw_fd(), b.0, b.1)?;
        }
        if own_mounts {
            rootfs::bind_console(&root, &pty.slave)?;
        }
        crate::console::send_master(sock, &pty.master)?;
        drop(pty.master);
        crate::console::become_tty(&pty.slave)?;
    }
    // runc creates a missing cwd; do it while the rootfs may still be writable.
    if own_mounts {
        rootfs::mkdir_all(&root, &plan.process.cwd, 0o755)
            .with_context(|| format!("process.cwd {:?}", plan.process.cwd))?;
    }
    let hooks = plan.hooks.as_ref();
    let mut hook_state = String::new();
    #[allow(deprecated)]
    let any_hooks = hooks.is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    });
    if any_hooks {
        // prestart and createRuntime run in the parent, in the runtime's namespaces.
        chan.send(&ToParent::RunHooks)?;
        hook_state = match chan.recv::<ToInit>()? {
            Some(ToInit::HooksDone { pid }) => {
                crate::hooks::state_json(o.id, "creating", pid, &plan.bundle, &plan.annotations)
            }
            other => bail!("init channel: expected HooksDone, got {other:?}"),
        };
        // createContainer: in the container's namespaces, before pivot_root.
        // Run from the container's root (runc's cwd for them), here before pivot_root, with
        // the process's environment unless they name their own.
        crate::hooks::run_all(
            "createContainer",
            hooks.and_then(|h| h.create_container().as_ref()),
            &hook_state,
            crate::hooks::Ctx {
                env: Some(&dedup_env(
                    plan.process
                        .env
                        .iter()
                        .chain(o.extra_env.iter())
                        .cloned()
                        .collect(),
                )),
                cwd: Some(&plan.rootfs),
            },
        )?;
    }
    if own_mounts {
        rootfs::mask_paths(&root, &plan.masked)?;
        rootfs::readonly_paths(&root, &plan.readonly)?;
        // A read-only /dev was mounted writable for its devices, links and pts: now ro.
        rootfs::finish_dev(&root, &plan.mounts)?;
        if plan.root_readonly {
            rootfs::readonly_root(&root)?;
        }
    }
    drop(t);
    let t = crate::logging::phase("pivot");
    if own_mounts {
        rootfs::enter_root(&root, &plan.rootfs, o.no_pivot)?;
    } else {
        nix::unistd::fchdir(root.as_raw_fd())
            .and_then(|()| nix::unistd::chroot("."))
            .and_then(|()| nix::unistd::chdir("/"))
            .map_err(|e| anyhow!("chroot into the rootfs {}: {e}", plan.rootfs.display()))?;
    }
    drop(root);
    drop(t);
    if let Some(p) = plan.root_propagation.filter(|_| own_mounts) {
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            p | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| anyhow!("linux.rootfsPropagation on the new /: {e}"))?;
    }

    let t = crate::logging::phase("process");
    settle_affinity(None)?;
    let prep = prepare_process(&plan.process, &o.extra_env, chan, lsm_proc.as_ref())?;
    drop(lsm_proc);
    drop(t);

    // Signals that end a created container while it waits for start.
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls _exit, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    prctl(libc::PR_SET_PDEATHSIG, 0).context("clear the parent-death signal")?;
    chan.send(&ToParent::Ready)?;
    if let Some(fifo) = o.fifo {
        wait_for_start(fifo)?;
    }
    // From the start to the execve (startContainer hooks, seccomp, closing fds).
    let exec_phase = crate::logging::phase("exec");
    // startContainer: in the container, after start, before the user's program, and under
    // the container's seccomp filter (as runc runs it).
    // A hook without its own `env` gets the process's (runc), and runs from the root.
    let starting = hook_state.replace("\"creating\"", "\"created\"");
    let e = match prep.install_late().and_then(|()| {
        let start_hooks = hooks.and_then(|h| h.start_container().as_ref());
        // The environment is rebuilt as strings only for a container that has such hooks.
        let env = if start_hooks.is_some_and(|l| !l.is_empty()) {
            prep.env()
        } else {
            Vec::new()
        };
        crate::hooks::run_all(
            "startContainer",
            start_hooks,
            &starting,
            crate::hooks::Ctx {
                env: Some(&env),
                cwd: Some(std::path::Path::new("/")),
            },
        )
    }) {
        Ok(()) => {
            // exec.fifo stays open until execve: `start` sees it close when the program runs.
            let keep: Vec<i32> = o
                .err_file
                .map(|f| f.as_raw_fd())
                .into_iter()
                .chain(o.fifo.map(|f| f.as_raw_fd()))
                .collect();
            exec_prepared(&prep, o.extra_fds, &keep, exec_phase)
        }
        Err(e) => e,
    };
    // The parent is gone by now: `start` reads this file, and the container's stderr shows it.
    if let Some(mut f) = o.err_file {
        use std::io::Write;
        let _ = write!(f, "{e:#}");
    }
    eprintln!("rrun: error: {e:#}");
    // SAFETY: exit without destructors.
    unsafe { libc::_exit(127) }
}

/// Join the v1 cgroup the parent made after the clone (its `tasks` files arrive as fds), then
/// unshare the cgroup namespace if the container has a new one.
fn enter_late_cgroup(chan: &Channel, cgroupns: CloneFlags) -> Result<()> {
    let _t = crate::logging::phase("wait for the cgroup");
    let tasks = match chan.recv::<ToInit>()? {
        Some(ToInit::Cgroup { tasks }) => tasks,
        Some(other) => bail!("init channel: expected Cgroup, got {other:?}"),
        None => bail!("init channel: closed by the parent while init waited for its cgroup"),
    };
    crate::cgroups::Entry::from_tasks(chan.take_fds(), tasks)?.enter()?;
    if !cgroupns.is_empty() {
        nix::sched::unshare(cgroupns).context("unshare the cgroup namespace")?;
    }
    Ok(())
}

/// Close every fd from `first` on, except those in `keep`.
pub fn close_fds_except(first: u32, keep: &[i32]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .map(|k| *k as u32)
        .filter(|k| *k >= first)
        .collect();
    keep.sort_unstable();
    let mut from = first;
    for k in keep {
        if k > from {
            crate::sys::close_range(from, k - 1);
        }
        from = from.max(k + 1);
    }
    crate::sys::close_range(from, u32::MAX);
}

/// runc's fixStdioPermissions: stdio (pipes from a shim, the pty) belongs to the process's
/// user, so it can reopen /dev/stdout; never the null device, never a gid change.
fn chown_stdio(uid: u32) {
    for fd in 0..3 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let is_null = (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
            && libc::major(st.st_rdev) == 1
            && libc::minor(st.st_rdev) == 3;
        if st.st_uid == uid || is_null {
            continue;
        }
        // EINVAL/EPERM: the owner is not mapped in our user namespace; leave it.
        // SAFETY: fchown on one of our stdio fds.
        unsafe { libc::fchown(fd, uid, u32::MAX) };
    }
}

/// The process, ready for execve: path, argv, envp.
pub struct Prepared {
    /// The sealed exec trampoline (see dmz.rs).
    dmz: OwnedFd,
    /// A filter to install right before execve.
    late: Option<crate::seccomp::Filter>,
    exe: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    arg0: String,
}

/// After the last cgroup move: `final` (execCPUAffinity.final, exec only) or every CPU, which
/// the kernel narrows to the cgroup's cpuset. Since Linux 6.2 a moved task keeps the mask it
/// had (runc's and crun's callers may run pinned), so the reset is runc's default too.
pub fn settle_affinity(final_cpus: Option<&crate::util::CpuSet>) -> Result<()> {
    match final_cpus {
        Some(c) => c
            .apply(0)
            .map_err(|e| anyhow!("process.execCPUAffinity.final {c:?}: sched_setaffinity: {e}")),
        None => {
            let _ = crate::util::CpuSet::all().apply(0);
            Ok(())
        }
    }
}

impl Prepared {
    /// The process's final environment (deduplicated, HOME filled).
    pub fn env(&self) -> Vec<String> {
        self.envp
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect()
    }
}

/// Everything about the process before execve, inside the container's root: the executable
/// (PATH lookup), HOME, rlimits, user, groups, capabilities, umask, cwd, no_new_privs.
pub fn prepare_process(
    p: &crate::spec::ProcPlan,
    extra_env: &[String],
    chan: &Channel,
    lsm_proc: Option<&OwnedFd>,
) -> Result<Prepared> {
    // A notify filter's listener goes to the parent the moment the filter is in: any later
    // syscall the profile notifies (fcntl, setgroups, chdir...) waits for an agent that only
    // has the listener once the parent has handed it on.
    let install = |f: &crate::seccomp::Filter| -> Result<()> {
        if let Some(l) = f.install().context("linux.seccomp")? {
            chan.send_fd(&ToParent::SeccompListener, l.as_raw_fd())
                .context("linux.seccomp: hand the notify listener to rrun")?;
        }
        Ok(())
    };
    reopen_dev_null();
    if !p.terminal {
        // Its own session and process group, as runc gives it: a signal to the caller's
        // process group (conmon's, the shim's) never reaches it, nor the reverse.
        let _ = nix::unistd::setsid();
    }
    let mut env = p.env.clone();
    env.extend(extra_env.iter().cloned());
    let mut env = dedup_env(env);
    let exe = find_exe(&p.args[0], &env)?;
    // An empty HOME counts as none (runc): the user's home from the rootfs's passwd.
    if !env
        .iter()
        .any(|e| e.strip_prefix("HOME=").is_some_and(|h| !h.is_empty()))
    {
        env.retain(|e| !e.starts_with("HOME="));
        env.push(format!("HOME={}", home_of(p.uid)));
    }
    for (res, soft, hard, i) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        // SAFETY: valid pointer to an rlimit struct.
        let r = unsafe { libc::setrlimit(*res, &lim) };
        nix::errno::Errno::result(r)
            .map_err(|e| anyhow!("process.rlimits[{i}]: setrlimit soft {soft} hard {hard}: {e}"))?;
    }
    // Scheduling, I/O priority, personality and NUMA policy: as root, before seccomp (a
    // profile may refuse set_mempolicy or sched_setattr) and before the capabilities go.
    p.sched.apply("process")?;
    // Seccomp goes in as late as it can: without no_new_privs it needs CAP_SYS_ADMIN, so
    // before the user and capabilities change; with it, right before execve (or here, after
    // no_new_privs, when its notify listener must still reach the parent).
    let mut late = None;
    if let Some(f) = &p.seccomp {
        if !p.no_new_privileges {
            install(f)?;
        } else if !f.needs_notify() {
            late = Some(f.clone());
        }
    }
    // Made now, before seccomp could refuse memfd_create.
    let dmz = super::dmz::sealed()?;
    chown_stdio(p.uid);
    // The cwd is entered while still root (a 0700 /root as a non-root user's cwd works, as in
    // runc); only a permission error is tried again as the user (a volume only it may enter).
    let chdir = || {
        nix::unistd::chdir(p.cwd.as_str())
            .map_err(|e| anyhow!("process.cwd: chdir {:?}: {e}", p.cwd))
    };
    let again = match nix::unistd::chdir(p.cwd.as_str()) {
        Ok(()) => false,
        Err(nix::errno::Errno::EACCES) | Err(nix::errno::Errno::EPERM) => true,
        Err(e) => bail!("process.cwd: chdir {:?}: {e}", p.cwd),
    };
    set_user(p)?;
    if let Some(m) = p.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    }
    if again {
        chdir()?;
    }
    // CVE-2024-21626: a cwd reached through a leaked fd would be outside the root.
    let cwd = nix::unistd::getcwd().map_err(|e| anyhow!("process.cwd {:?}: getcwd: {e}", p.cwd))?;
    if !cwd.starts_with("/") {
        bail!("process.cwd {:?} is outside the container's root", p.cwd);
    }
    if let Some(a) = &p.apparmor {
        set_exec_attr(lsm_proc, "apparmor/exec", &format!("exec {a}"))
            .context("process.apparmorProfile")?;
    }
    if let Some(l) = &p.selinux_label {
        set_exec_attr(lsm_proc, "exec", l).context("process.selinuxLabel")?;
    }
    if p.no_new_privileges {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1).context("process.noNewPrivileges")?;
        if let Some(f) = p.seccomp.as_ref().filter(|f| f.needs_notify()) {
            install(f)?;
        }
    }
    let cs = |v: &[String]| {
        v.iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Prepared {
        dmz,
        late,
        exe,
        argv: cs(&p.args)?,
        envp: cs(&env)?,
        arg0: p.args[0].clone(),
    })
}

impl Prepared {
    /// The filter that goes in as late as it can (noNewPrivileges, no notify): right before
    /// the startContainer hooks (init) or the execve (exec).
    pub fn install_late(&self) -> Result<()> {
        match &self.late {
            Some(f) => f.install().map(drop).context("linux.seccomp"),
            None => Ok(()),
        }
    }
}

/// Close every fd but 0-2, the `extra_fds` preserved ones (and `keep`, a close-on-exec
/// channel that reports a failed execve), reset signals, and execve. Returns only on failure.
/// `phase` (--debug) is reported right before the execve.
pub fn exec_prepared(
    prep: &Prepared,
    extra_fds: u32,
    keep: &[i32],
    phase: Option<crate::logging::Phase>,
) -> anyhow::Error {
    let first = 3 + extra_fds;
    for fd in 3..first {
        if crate::util::is_placeholder(fd as i32) {
            // A number the caller did not pass: nothing of rrun's sits there, nothing goes.
            // SAFETY: closing our own placeholder.
            unsafe { libc::close(fd as i32) };
            continue;
        }
        // SAFETY: clearing FD_CLOEXEC on an fd number the caller passed us.
        unsafe { libc::fcntl(fd as i32, libc::F_SETFD, 0) };
    }
    // Close everything from `first` on, except the close-on-exec fds in `keep`.
    let mut keep = keep.to_vec();
    keep.push(prep.dmz.as_raw_fd());
    keep.extend(crate::logging::pinned_fd());
    close_fds_except(first, &keep);
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
    ] {
        // SAFETY: restoring the default disposition.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    drop(phase);
    // Through the sealed trampoline: the program never starts from a process whose
    // /proc/self/exe is the host rrun binary (CVE-2019-5736).
    let e = super::dmz::exec(&prep.dmz, &prep.exe, &prep.argv, &prep.envp);
    if e == nix::errno::Errno::EPERM || e == nix::errno::Errno::ENOSYS {
        // A seccomp profile without execveat: the same trampoline through execve.
        if proc_is_procfs() {
            let p =
                CString::new(format!("/proc/self/fd/{}", prep.dmz.as_raw_fd())).expect("no NUL");
            let mut argv = vec![prep.exe.clone()];
            argv.extend(prep.argv.iter().cloned());
            let e = nix::unistd::execve(&p, &argv, &prep.envp).unwrap_err();
            return anyhow!(
                "exec {:?} (through the trampoline, by execve): {e}",
                prep.arg0
            );
        }
    }
    anyhow!("exec {:?} (through the trampoline): {e}", prep.arg0)
}

extern "C" fn on_signal(sig: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let mut pfd = libc::pollfd {
        fd: fifo.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r >= 0 {
            break;
        }
        let e = nix::errno::Errno::last();
        if e != nix::errno::Errno::EINTR {
            bail!("wait on exec.fifo: {e}");
        }
    }
    let mut b = [0u8; 1];
    let n =
        nix::unistd::read(fifo.as_raw_fd(), &mut b).map_err(|e| anyhow!("read exec.fifo: {e}"))?;
    if n != 1 {
        bail!("exec.fifo closed without a start");
    }
    Ok(())
}

fn proc_is_procfs() -> bool {
    nix::sys::statfs::statfs("/proc")
        .is_ok_and(|s| s.filesystem_type().0 == rootfs::PROC_SUPER_MAGIC)
}

/// A procfs of rrun's own for the LSM attribute writes: a detached clone of the host's /proc
/// mount (open_tree), taken before any of the container's mounts exist (init) or before
/// joining its mount namespace (exec), so nothing the container mounts can stand in for it.
/// Only taken when the process asks for an LSM label or profile.
pub fn lsm_proc_handle(p: &crate::spec::ProcPlan) -> Result<Option<OwnedFd>> {
    if p.apparmor.is_none() && p.selinux_label.is_none() {
        return Ok(None);
    }
    let fd = crate::sys::open_tree_clone(libc::AT_FDCWD, "/proc", false)
        .map_err(|e| anyhow!("take a private handle on /proc for the LSM attributes: {e}"))?;
    if !rootfs::is_procfs(&fd) {
        bail!("/proc is not procfs: refusing to use it for the LSM attributes");
    }
    Ok(Some(fd))
}

/// Open `thread-self/attr/<attr>` of our own task for writing, beneath the private procfs
/// handle: no mount crossing, no magic link, and the file checked to be procfs.
pub fn open_exec_attr(proc: &OwnedFd, attr: &str) -> Result<OwnedFd> {
    let path = format!("thread-self/attr/{attr}");
    let fd = crate::sys::openat2(
        proc.as_raw_fd(),
        &path,
        libc::O_WRONLY,
        0,
        crate::sys::RESOLVE_NO_XDEV
            | crate::sys::RESOLVE_NO_MAGICLINKS
            | crate::sys::RESOLVE_BENEATH,
    )
    .map_err(|e| anyhow!("open /proc/{path} (rrun's own procfs handle): {e}"))?;
    if !rootfs::is_procfs(&fd) {
        bail!("/proc/{path} is not on procfs: refusing to write it");
    }
    Ok(fd)
}

/// Write an LSM exec attribute of our own task through rrun's private procfs handle.
fn set_exec_attr(proc: Option<&OwnedFd>, attr: &str, value: &str) -> Result<()> {
    let proc = proc.ok_or_else(|| anyhow!("no procfs handle for the LSM attribute {attr}"))?;
    let fd = open_exec_attr(proc, attr)?;
    nix::unistd::write(&fd, value.as_bytes())
        .map_err(|e| anyhow!("write /proc/thread-self/attr/{attr}: {e}"))?;
    Ok(())
}

/// PATH lookup inside the container, with the process's own PATH.
fn find_exe(arg0: &str, env: &[String]) -> Result<CString> {
    use std::os::unix::fs::PermissionsExt;
    let ok = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if arg0.contains('/') {
        // runc's wording, which engines map to exit codes 127 and 126.
        match std::fs::metadata(arg0) {
            Err(e) => bail!(
                "process.args[0]: exec: {arg0:?}: stat {arg0}: {}",
                io_lower(&e)
            ),
            Ok(_) if !ok(std::path::Path::new(arg0)) => {
                bail!("process.args[0]: exec: {arg0:?}: permission denied")
            }
            Ok(_) => return Ok(CString::new(arg0)?),
        }
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = std::path::Path::new(dir).join(arg0);
        if ok(&p) {
            return Ok(CString::new(p.to_string_lossy().as_bytes())?);
        }
    }
    bail!("process.args[0]: exec: {arg0:?}: executable file not found in $PATH ({path})")
}

/// "no such file or directory": the strerror text in lower case, as Go prints it.
fn io_lower(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// runc's reOpenDevNull: stdio that is the null device is reopened read-write from the
/// container's own /dev/null (a shim may pass a read-only one).
fn reopen_dev_null() {
    let is_null = |st: &libc::stat| {
        (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
            && libc::major(st.st_rdev) == 1
            && libc::minor(st.st_rdev) == 3
    };
    let mut null = None;
    for fd in 0..3 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        if !is_null(&st) {
            continue;
        }
        if null.is_none() {
            let Ok(root) =
                crate::sys::openat2(libc::AT_FDCWD, "/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)
            else {
                return;
            };
            let Ok(f) = crate::rootfs::open_in_root(
                &root,
                "/dev/null",
                libc::O_RDWR,
                crate::sys::RESOLVE_NO_SYMLINKS,
            ) else {
                return;
            };
            match nix::sys::stat::fstat(f.as_raw_fd()) {
                Ok(st) if is_null(&st) => null = Some(f),
                _ => return,
            }
        }
        if let Some(n) = &null {
            let _ = nix::unistd::dup2(n.as_raw_fd(), fd);
        }
    }
}

/// A new network namespace starts with lo down: bring it up (the kernel then gives it
/// 127.0.0.1 and ::1), as runc does.
fn loopback_up() -> Result<()> {
    // SAFETY: a plain datagram socket for interface ioctls.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        bail!("socket for lo: {}", nix::errno::Errno::last());
    }
    // SAFETY: the fd is ours.
    let s = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(s) };
    // SAFETY: an all-zero ifreq is valid; the name fits.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            bail!("get lo flags: {}", nix::errno::Errno::last());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            bail!("bring lo up: {}", nix::errno::Errno::last());
        }
    }
    Ok(())
}

/// HOME from the container's /etc/passwd, "/" when absent.
/// One entry per name, the last value winning, in the order of those last entries (runc's
/// prepareEnv): `exec --env K=V` replaces the spec's K instead of adding a second one.
fn dedup_env(env: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out: Vec<String> = env
        .into_iter()
        .rev()
        .filter(|kv| seen.insert(kv.split('=').next().unwrap_or_default().to_string()))
        .collect();
    out.reverse();
    out
}

fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into())
}

/// Groups, gid, uid and capabilities, ordered so exactly the requested sets are left.
fn set_user(p: &crate::spec::ProcPlan) -> Result<()> {
    if let Some(c) = &p.caps {
        c.apply_bounding()?;
    }
    prctl(libc::PR_SET_KEEPCAPS, 1).context("set keep-caps")?;
    let groups: Vec<Gid> = p.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    match nix::unistd::setgroups(&groups) {
        Ok(()) => {}
        // A user namespace with setgroups denied: only an empty list was possible anyway.
        Err(nix::errno::Errno::EPERM) if groups.is_empty() => {}
        Err(e) => bail!("process.user.additionalGids {:?}: setgroups: {e}", p.groups),
    }
    let g = Gid::from_raw(p.gid);
    nix::unistd::setresgid(g, g, g)
        .map_err(|e| anyhow!("process.user.gid {}: setresgid: {e}", p.gid))?;
    let u = Uid::from_raw(p.uid);
    nix::unistd::setresuid(u, u, u)
        .map_err(|e| anyhow!("process.user.uid {}: setresuid: {e}", p.uid))?;
    prctl(libc::PR_SET_KEEPCAPS, 0).context("clear keep-caps")?;
    if let Some(c) = &p.caps {
        c.apply_rest()?;
    }
    Ok(())
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn last_value_wins_once_in_order() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            super::dedup_env(e(&["A=1", "B=2", "A=3", "C=", "B=4"])),
            e(&["A=3", "C=", "B=4"])
        );
        assert_eq!(super::dedup_env(e(&["PATH=/bin"])), e(&["PATH=/bin"]));
    }
}

#[cfg(test)]
mod lsm_tests {
    /// The private procfs handle (a detached clone of /proc) reaches our own task's attr
    /// files beneath it, and only when an LSM field asks for it.
    #[test]
    fn lsm_attr_opens_through_the_private_handle() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("needs root (open_tree): skipped");
            return;
        }
        let mut p = oci_spec::runtime::Process::default();
        p.set_args(Some(vec!["sh".into()]));
        let none = crate::spec::proc_plan(&p, "process").unwrap();
        assert!(super::lsm_proc_handle(&none).unwrap().is_none());
        let mut plan = none.clone();
        plan.apparmor = Some("p".into());
        let h = super::lsm_proc_handle(&plan).unwrap().expect("a handle");
        let fd = super::open_exec_attr(&h, "exec").unwrap();
        assert!(crate::rootfs::is_procfs(&fd));
    }
}
