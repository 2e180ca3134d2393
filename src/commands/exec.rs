//! `exec`: run a new process in a running container, from `--process FILE` or from the
//! container's own process with ARGS and the flags applied over it.

use crate::cli::ExecArgs;
use crate::process::exec::{ExecOpts, spawn};
use crate::state::{Container, Status};
use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::Process;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A process.json without `user` runs as uid 0, gid 0, as runc takes it (the spec's type
/// makes the field required). Anything that is not a JSON object is left to the decoder's
/// error.
fn with_default_user(data: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(&data) {
        Ok(serde_json::Value::Object(mut m)) if !m.contains_key("user") => {
            m.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
            serde_json::to_vec(&m).unwrap_or(data)
        }
        _ => data,
    }
}

fn process_of(c: &Container, a: &ExecArgs) -> Result<crate::spec::ProcPlan> {
    // Read once: the base process (without --process) and the container's seccomp profile.
    let spec = crate::spec::read_spec(&c.saved.bundle)?;
    let mut p: Process = match &a.process {
        Some(f) => {
            let data = std::fs::read(f)
                .map_err(|e| anyhow!("read {}: {}", f.display(), crate::sys::io_errno(&e)))?;
            crate::spec::decode("process.json", &with_default_user(data))?
        }
        None => {
            if a.args.is_empty() {
                bail!("exec needs a command (ARGS) or --process FILE");
            }
            let mut p = spec
                .process()
                .clone()
                .ok_or_else(|| anyhow!("config.json: process: missing"))?;
            p.set_args(Some(a.args.clone()));
            // A new process gets no terminal unless asked for.
            p.set_terminal(Some(a.tty));
            p
        }
    };
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(a.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.into());
    }
    if a.tty {
        p.set_terminal(Some(true));
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow!("--user {u:?}: UID[:GID] must be numbers"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow!("--user {u:?}: UID[:GID] must be numbers"))?,
            );
        }
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    let mut plan = crate::spec::proc_plan(&p, "process")?;
    // An exec'd process is judged by the OOM killer as the container's own (runc applies the
    // container's value to every process of it); a process.json may say otherwise.
    if plan.oom_score_adj.is_none() {
        plan.oom_score_adj = spec.process().as_ref().and_then(|p| p.oom_score_adj());
    }
    if let Some(linux) = spec.linux() {
        crate::spec::linux_sched(&mut plan, Some(&p), linux)?;
    }
    // The container's seccomp profile applies to every process in it.
    plan.seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(crate::seccomp::compile)
        .transpose()?;
    if !a.cap.is_empty() {
        let mut caps = plan.caps.clone().unwrap_or_default();
        for name in &a.cap {
            let cap: caps::Capability = name
                .to_ascii_uppercase()
                .parse()
                .map_err(|_| anyhow!("--cap {name:?}: unknown capability"))?;
            for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted] {
                set.insert(cap);
            }
            // Ambient too where it can be raised (runc since 1.2: only if inheritable).
            if caps.inheritable.contains(&cap) {
                caps.ambient.insert(cap);
            }
        }
        plan.caps = Some(caps);
    }
    if a.apparmor.as_deref().is_some_and(|s| !s.is_empty()) && !crate::spec::apparmor_enabled() {
        bail!("--apparmor: AppArmor is not enabled on this host");
    }
    if a.process_label.as_deref().is_some_and(|s| !s.is_empty()) && !crate::spec::selinux_enabled()
    {
        bail!("--process-label: SELinux is not enabled on this host");
    }
    Ok(plan)
}

pub fn run(root: &Path, a: &ExecArgs) -> Result<i32> {
    let mut c = Container::load(root, &a.id)?;
    match c.status() {
        Status::Running | Status::Created => {}
        Status::Paused if a.ignore_paused => {}
        Status::Paused => {
            return Err(crate::error::invalid_state(format!(
                "cannot exec in a paused container {} (use --ignore-paused)",
                a.id
            )));
        }
        s => {
            return Err(crate::error::invalid_state(format!(
                "cannot exec in a {} container {}: container not running",
                s.as_str(),
                a.id
            )));
        }
    }
    // What follows works from what was read: with --ignore-paused the process joins a frozen
    // cgroup and waits there, and `resume` must be able to take the lock meanwhile.
    c.unlock();
    let t = crate::logging::phase("plan");
    let plan = process_of(&c, a)?;
    let sub_cgroups = crate::cgroups::SubCgroups::parse(&a.cgroup)?;
    if !sub_cgroups.is_empty() && c.saved.cgroup.is_none() {
        bail!("exec --cgroup: container {} has no cgroup", a.id);
    }
    let pidfd_socket = crate::console::PidfdSocket::connect(a.pidfd_socket.as_deref())?;
    drop(t);
    if plan.terminal && a.console_socket.is_none() && a.detach {
        bail!("exec: a terminal with --detach needs --console-socket to hand the pty to");
    }
    if !plan.terminal && a.console_socket.is_some() {
        bail!("--console-socket only makes sense with a terminal (-t or process.terminal)");
    }
    let (console, ours) = crate::console::endpoints(plan.terminal, a.console_socket.as_deref())?;
    // The process is a grandchild: make it ours to wait for (and to reap if it fails: a
    // zombie in the container's pid namespace would keep its init from ever exiting).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // LISTEN_PID is set by the process itself once it knows its pid in the container.
    let (listen_n, mut listen_env) = super::create::listen_fds(None);
    listen_env.retain(|e| !e.starts_with("LISTEN_PID="));
    let pid = spawn(&ExecOpts {
        id: &a.id,
        bundle: &c.saved.bundle,
        init_pid: c.saved.pid,
        init_start_time: c.saved.start_time,
        process: &plan,
        cgroup: c.saved.cgroup.as_ref(),
        sub_cgroups: &sub_cgroups,
        extra_fds: listen_n + a.preserve_fds,
        extra_env: listen_env,
        console: console.as_ref().map(|f| f.as_raw_fd()),
    })?;
    drop(console);
    let master = ours
        .map(|s| crate::console::recv_fd(s.as_raw_fd()))
        .transpose()?;
    drop(c);
    // As runc: a process whose caller cannot be told its pid is ended, not left behind.
    let tell = || -> Result<()> {
        if let Some(p) = &a.pid_file {
            let p = std::path::absolute(p)?;
            crate::util::write_atomic(&p, pid.to_string().as_bytes(), 0o644)?;
        }
        if let Some(s) = &pidfd_socket {
            s.send(pid)?;
        }
        Ok(())
    };
    if let Err(e) = tell() {
        // SAFETY: kill(2) and waitpid(2) on the process we just started (our child: we are
        // its subreaper). Reaped when it is gone within a second; a frozen one (exec
        // --ignore-paused) only dies once thawed, and is not waited for.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            for _ in 0..100 {
                if libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) != 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    match master {
        Some(m) => crate::console::proxy_and_wait(m, pid),
        None => crate::process::wait_forwarding(pid),
    }
}
