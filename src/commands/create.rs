//! `create`: plan, state dir, cgroup, clone init, wait until it is ready, save, pid file.

use crate::cgroups::{Cgroup, Part};
use crate::cli::CreateOpts;
use crate::process::{self, InitOpts};
use crate::state::{Container, Saved};
use anyhow::{Result, anyhow, bail};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

pub fn run(root: &Path, o: &CreateOpts, id: &str) -> Result<()> {
    create(root, o, id, false).map(drop)
}

/// LISTEN_FDS from the caller (socket activation): passed on like runc does. Returns how
/// many fds (3..3+n) and the environment that tells the process about them.
pub fn listen_fds(pid_in_container: Option<i32>) -> (u32, Vec<String>) {
    let n: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if n == 0 {
        return (0, Vec::new());
    }
    let pid = pid_in_container.unwrap_or(1);
    (
        n,
        vec![format!("LISTEN_FDS={n}"), format!("LISTEN_PID={pid}")],
    )
}

/// The user name of our uid from /etc/passwd, as runc looks it up (no NSS modules, no nscd
/// sockets), or the uid as a number.
fn owner() -> String {
    let uid = nix::unistd::geteuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd_name(&passwd, uid).unwrap_or_else(|| uid.to_string())
}

fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse::<u32>().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// Create the container. With `want_master` (foreground `run` without a console socket) the
/// pty master of a terminal container comes back to the caller.
pub fn create(
    root: &Path,
    o: &CreateOpts,
    id: &str,
    want_master: bool,
) -> Result<(Container, Option<OwnedFd>)> {
    crate::state::validate_id(id)?;
    let plan = crate::spec::load(&o.bundle)?;
    if crate::rootless::not_root() && !plan.ns.owns(nix::sched::CloneFlags::CLONE_NEWUSER) {
        bail!(
            "config.json: linux.namespaces: rootless: a container made without root needs a \
             user namespace (add {{\"type\": \"user\"}} and linux.uidMappings/gidMappings, \
             as `rrun spec --rootless` writes)"
        );
    }
    if crate::rootless::unprivileged()
        && let Some(m) = plan.mounts.iter().find(|m| m.idmap.is_some())
    {
        bail!(
            "config.json: mounts[{}]: rootless: id-mapped mounts need root on the host \
             (MOUNT_ATTR_IDMAP on a host filesystem): drop uidMappings/gidMappings and \
             idmap/ridmap from it",
            m.index
        );
    }
    if plan.process.terminal && o.console_socket.is_none() && !want_master {
        bail!(
            "config.json: process.terminal: a terminal needs --console-socket (or `run` in the foreground); rrun will not allocate a tty it cannot hand over"
        );
    }
    if !plan.process.terminal && o.console_socket.is_some() {
        bail!("--console-socket only makes sense with process.terminal: true");
    }
    let pidfd_socket = crate::console::PidfdSocket::connect(o.pidfd_socket.as_deref())?;
    let me = std::process::id() as i32;
    let saved = Saved {
        oci_version: plan.oci_version.clone(),
        id: id.to_string(),
        creating: true,
        pid: 0,
        start_time: 0,
        creator_pid: me,
        creator_start_time: crate::util::proc_stat(me).map(|s| s.1).unwrap_or(0),
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created: crate::util::rfc3339_now(),
        owner: owner(),
        annotations: plan.annotations.clone(),
        cgroup: None,
        hooks: plan.hooks.clone(),
        shared_pidns: !plan.ns.new.contains(nix::sched::CloneFlags::CLONE_NEWPID),
    };
    let mut c = Container::claim(root, id, saved)?;
    match setup(&mut c, &plan, o, pidfd_socket.as_ref()) {
        Ok(master) => Ok((c, master)),
        Err(e) => {
            // The one cleanup path: kill, remove the cgroup, remove the state dir.
            if let Err(ce) = super::delete::destroy(c) {
                crate::logging::warn(&format!("cleanup after the failed create: {ce:#}"));
            }
            Err(e)
        }
    }
}

fn setup(
    c: &mut Container,
    plan: &crate::spec::Plan,
    o: &CreateOpts,
    pidfd_socket: Option<&crate::console::PidfdSocket>,
) -> Result<Option<OwnedFd>> {
    let fifo_path = c.fifo();
    nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| anyhow!("mkfifo {}: {e}", fifo_path.display()))?;
    let fifo: OwnedFd = crate::sys::openat2(
        libc::AT_FDCWD,
        &fifo_path.to_string_lossy(),
        libc::O_RDONLY | libc::O_NONBLOCK,
        0,
        0,
    )
    .map_err(|e| anyhow!("open {}: {e}", fifo_path.display()))?;

    // v1 and hybrid: only hybrid's cgroup2 dir (for CLONE_INTO_CGROUP) before the clone, the
    // v1 hierarchies and the limits after it, while init makes its namespaces (not with a
    // user namespace: that path keeps the cgroup first). v2: all of it first. Rootless: maybe
    // none at all (see crate::rootless::cgroup).
    let t = crate::logging::phase("cgroup");
    let mut cg = if crate::rootless::active() {
        crate::rootless::cgroup(
            plan.cgroups_path.as_deref(),
            &c.saved.id,
            plan.resources.as_ref(),
        )?
    } else if crate::cgroups::systemd::requested() {
        Some(Cgroup::plan_systemd(
            plan.cgroups_path.as_deref(),
            &c.saved.id,
        )?)
    } else {
        Some(Cgroup::plan(plan.cgroups_path.as_deref(), &c.saved.id)?)
    };
    let res = plan.resources.as_ref();
    let (mut late, mut by_systemd) = (false, false);
    if let Some(cg) = cg.as_mut() {
        // Every dir is recorded before it is made: a create killed anywhere leaves `delete
        // --force` what it needs, with or without a state.json.
        cg.set_journal(crate::cgroups::owned::Journal::create(&c.dir)?);
        // systemd: the scope is started around init after the clone, before init goes on.
        by_systemd = cg.by_systemd();
        late = !by_systemd
            && cg.split_create()
            && !plan.ns.owns(nix::sched::CloneFlags::CLONE_NEWUSER);
        // Known to the cleanup path (in memory) before the dirs exist.
        c.saved.cgroup = Some(cg.clone());
        if !by_systemd {
            let part = if late { Part::Unified } else { Part::All };
            let r = cg.create_part(res, &plan.devices, part);
            c.saved.cgroup = Some(cg.clone());
            r?;
        }
    }
    drop(t);
    if !late {
        // The first state.json: status "creating", with the cgroup dirs a crash would leave.
        c.save()?;
    }
    let (n, extra_env) = listen_fds(None);
    let err_path = c.dir.join(crate::state::INIT_ERR);
    let err_file = crate::util::create_new(&err_path, 0o600, false).map_err(|e| {
        anyhow!(
            "create {}: {}",
            err_path.display(),
            crate::sys::io_errno(&e)
        )
    })?;
    // The terminal's master goes to the console socket, or back to us (foreground run).
    let (console, ours) =
        crate::console::endpoints(plan.process.terminal, o.console_socket.as_deref())?;
    // init mounts the hierarchies as planned: its copy needs none of what `create` adds.
    let planned = cg.clone();
    let opts = InitOpts {
        console: console.as_ref().map(|f| f.as_raw_fd()),
        id: &c.saved.id,
        err_file: Some(&err_file),
        plan,
        cgroup: planned.as_ref(),
        cgroup_late: late,
        fifo: Some(&fifo),
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        extra_fds: n + o.preserve_fds,
        extra_env,
    };
    let pending = process::spawn(&opts)?;
    if by_systemd && let Some(cg) = cg.as_mut() {
        let t = crate::logging::phase("systemd scope");
        let r = cg.start_unit(
            pending.pid(),
            res,
            &plan.devices,
            &plan.annotations,
            &c.saved.id,
        );
        c.saved.cgroup = Some(cg.clone());
        r?;
        drop(t);
        c.save()?;
    }
    pending.go()?;
    if late && let Some(cg) = cg.as_mut() {
        let t = crate::logging::phase("cgroup v1");
        let r = cg.create_part(res, &plan.devices, Part::Legacy);
        c.saved.cgroup = Some(cg.clone());
        r?;
        pending.send_cgroup(&cg.entry(Part::Legacy)?)?;
        drop(t);
        // The first state.json, while init sets up.
        c.save()?;
    }
    let spawned = pending.ready()?;
    drop(fifo);
    if let Some(cg) = cg.as_mut() {
        cg.created.shrink_to_fit();
    }
    c.saved.pid = spawned.pid;
    c.saved.start_time = spawned.start_time;
    c.saved.creating = false;
    c.save()?;
    if let Some(p) = &o.pid_file {
        let p = std::path::absolute(p)?;
        crate::util::write_atomic(&p, spawned.pid.to_string().as_bytes(), 0o644)?;
    }
    if let Some(s) = pidfd_socket {
        s.send(spawned.pid)?;
    }
    drop(console);
    ours.map(|s| crate::console::recv_fd(s.as_raw_fd()))
        .transpose()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwd_name_by_uid() {
        let p = "root:x:0:0:root:/root:/bin/bash\n# comment\nbad line\nalice:x:1000:1000::/home/a:/bin/sh\n";
        assert_eq!(super::passwd_name(p, 0).as_deref(), Some("root"));
        assert_eq!(super::passwd_name(p, 1000).as_deref(), Some("alice"));
        assert_eq!(super::passwd_name(p, 7), None);
    }
}
