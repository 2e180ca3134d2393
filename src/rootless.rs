//! Rootless: rrun run by a user without root on the host. What changes: where state lives
//! (`$XDG_RUNTIME_DIR/rrun`), how the user namespace's maps are written (directly for the
//! caller's own ids, else through the setuid `newuidmap`/`newgidmap` from the `uidmap` package,
//! within /etc/subuid and /etc/subgid), and cgroups (none on v1; on v2 only a subtree delegated
//! to the user).

use anyhow::{Result, anyhow, bail};
use std::sync::atomic::{AtomicBool, Ordering};

static ACTIVE: AtomicBool = AtomicBool::new(false);
static IN_USERNS: AtomicBool = AtomicBool::new(false);
static NOT_ROOT: AtomicBool = AtomicBool::new(false);

/// `--rootless` as runc reads it: `true`, `false`, or `auto` (the default): rootless when not
/// root, or root only of a user namespace (rrun under rootless podman, rootlesskit). Set once,
/// before anything is cloned (init inherits what is known here).
pub fn set(flag: Option<&str>) -> Result<()> {
    let userns = in_userns();
    IN_USERNS.store(userns, Ordering::Relaxed);
    let root = root_euid();
    NOT_ROOT.store(!root, Ordering::Relaxed);
    let on = decide(flag, root, userns)?;
    ACTIVE.store(on, Ordering::Relaxed);
    Ok(())
}

/// Whether we run as root (euid 0). geteuid(2) cannot fail; under fault injection it may
/// "return" an errno (-4095..-1): no uid anyone runs as, so not taken for rootless (the
/// syscalls that follow report their own errors).
fn root_euid() -> bool {
    let e = nix::unistd::geteuid().as_raw();
    e == 0 || e > (-4096i32) as u32
}

fn decide(flag: Option<&str>, root: bool, userns: bool) -> Result<bool> {
    Ok(match flag.unwrap_or("auto") {
        "true" | "" => true,
        "false" => false,
        "auto" => !root || userns,
        other => bail!("--rootless {other:?}: true, false or auto"),
    })
}

/// Rootless in runc's `--rootless` sense: cgroups are the caller's only if delegated.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Not root at all: a new user namespace is needed, and maps beyond our own ids go through
/// newuidmap/newgidmap. As rrun started (init, root of its user namespace, still knows).
pub fn not_root() -> bool {
    NOT_ROOT.load(Ordering::Relaxed)
}

/// rrun itself runs in a user namespace other than the host's (as root of it, under rootless
/// podman): no device nodes, no host-wide privileges (id-mapped mounts of host filesystems).
pub fn userns() -> bool {
    IN_USERNS.load(Ordering::Relaxed)
}

/// Not the host's root: rootless, or root of a user namespace.
pub fn unprivileged() -> bool {
    not_root() || userns()
}

/// Whether we are in a user namespace other than the initial one: the initial one's inode
/// is fixed (PROC_USER_INIT_INO), so one readlink says it.
fn in_userns() -> bool {
    const INIT: &[u8] = b"user:[4026531837]";
    let mut buf = [0u8; 64];
    // SAFETY: a valid C string and a buffer of the given size.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/ns/user".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    // Unreadable (no /proc): the initial one, as before anything is known.
    n > 0 && &buf[..n as usize] != INIT
}

/// One line of an id map: (inside, outside, count).
type Range = (u32, u32, u32);

fn parse_map(text: &str) -> Vec<Range> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|x| x.parse::<u32>());
            Some((f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?))
        })
        .collect()
}

/// How a map is written: the kernel takes a single range of the writer's own id from an
/// unprivileged writer (and, for gids, only once setgroups is denied); anything else goes
/// through the setuid helper.
#[derive(Debug, PartialEq)]
enum Writer {
    Direct,
    Helper,
}

fn writer(map: &[Range], own: u32, privileged: bool) -> Writer {
    if privileged {
        return Writer::Direct;
    }
    match map {
        [(_, host, 1)] if *host == own => Writer::Direct,
        _ => Writer::Helper,
    }
}

/// Write init's uid and gid maps (`pid` is in the new user namespace).
pub fn write_maps(pid: i32, uid_map: Option<&str>, gid_map: Option<&str>) -> Result<()> {
    let privileged = root_euid();
    if let Some(m) = uid_map {
        let own = nix::unistd::geteuid().as_raw();
        write_one(pid, "uid", m, writer(&parse_map(m), own, privileged))
            .map_err(|e| anyhow!("linux.uidMappings: {e:#}"))?;
    }
    if let Some(m) = gid_map {
        let own = nix::unistd::getegid().as_raw();
        let w = writer(&parse_map(m), own, privileged);
        if w == Writer::Direct && !privileged {
            // Without CAP_SETGID on the host the kernel takes a gid map only from a process
            // that can no longer call setgroups(2) (it could otherwise drop a group that
            // denies it access).
            crate::sys::write_file(&format!("/proc/{pid}/setgroups"), "deny")
                .map_err(|e| anyhow!("linux.gidMappings: {e:#}"))?;
        }
        write_one(pid, "gid", m, w).map_err(|e| anyhow!("linux.gidMappings: {e:#}"))?;
    }
    Ok(())
}

fn write_one(pid: i32, kind: &str, map: &str, w: Writer) -> Result<()> {
    if w == Writer::Direct {
        return crate::sys::write_file(&format!("/proc/{pid}/{kind}_map"), map);
    }
    let helper = format!("new{kind}map");
    let mut cmd = std::process::Command::new(&helper);
    cmd.arg(pid.to_string());
    for (inside, outside, n) in parse_map(map) {
        cmd.args([inside.to_string(), outside.to_string(), n.to_string()]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            anyhow!(
                "run {helper} (from the uidmap package; needed to map more than your own {kind} \
             as non-root): {}",
                crate::sys::io_errno(&e)
            )
        })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let file = if kind == "uid" {
            "/etc/subuid"
        } else {
            "/etc/subgid"
        };
        bail!(
            "{helper} {pid} {}: {} (the ranges must be yours in {file})",
            map.trim().replace('\n', " "),
            msg.trim()
        );
    }
    Ok(())
}

/// The cgroup of a rootless container, or none. cgroup v1 is never delegated to users: no
/// cgroup (a debug line; a warning if `linux.resources` asks for limits, which then do not
/// apply), as runc. cgroup v2: the planned dir when its nearest existing ancestor is writable
/// by us (a subtree delegated to this user); otherwise none when no cgroupsPath was asked
/// for, and an error naming the path when one was.
pub fn cgroup(
    cgroups_path: Option<&str>,
    id: &str,
    res: Option<&oci_spec::runtime::LinuxResources>,
) -> Result<Option<crate::cgroups::Cgroup>> {
    use crate::cgroups::{Cgroup, Mode};
    if crate::cgroups::systemd::requested() {
        // The user's own systemd manager makes the scope (a subtree it was delegated).
        return Cgroup::plan_systemd(cgroups_path, id).map(Some);
    }
    // No cgroup: said at debug level, or as a warning when limits were asked for.
    let none = |why: &str| {
        if res.is_some_and(asks_limits) {
            crate::logging::warn(&format!(
                "{why}: the limits in linux.resources are not applied"
            ));
        } else {
            crate::logging::debug(why);
        }
        Ok(None)
    };
    if crate::cgroups::detect() != Mode::V2 {
        return none("rootless: cgroup v1 is not delegated to users, the container gets no cgroup");
    }
    let cg = Cgroup::plan(cgroups_path, id)?;
    let explicit = cgroups_path.is_some_and(|p| !p.is_empty());
    for h in &cg.hierarchies {
        let mut p = h.dir.as_path();
        while !p.exists() {
            match p.parent() {
                Some(up) => p = up,
                None => break,
            }
        }
        if let Err(e) = nix::unistd::access(p, nix::unistd::AccessFlags::W_OK) {
            if explicit {
                bail!(
                    "config.json: linux.cgroupsPath: rootless: cannot make {} ({} is not \
                     writable by uid {}: {e}); delegate a cgroup v2 subtree to this user",
                    h.dir.display(),
                    p.display(),
                    nix::unistd::geteuid()
                );
            }
            return none(&format!(
                "rootless: {} is not writable by uid {} ({e}): the container gets no cgroup",
                p.display(),
                nix::unistd::geteuid()
            ));
        }
    }
    Ok(Some(cg))
}

/// Does `linux.resources` ask for a limit (devices aside: a rootless container cannot make
/// device nodes anyway)?
fn asks_limits(r: &oci_spec::runtime::LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.unified().as_ref().is_some_and(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_flag() {
        assert!(decide(None, false, false).unwrap());
        assert!(!decide(None, true, false).unwrap());
        // Root of a user namespace (rootless podman) is rootless too.
        assert!(decide(Some("auto"), true, true).unwrap());
        assert!(decide(Some("true"), true, false).unwrap());
        assert!(!decide(Some("false"), false, true).unwrap());
        let e = decide(Some("yes"), true, false).unwrap_err().to_string();
        assert!(
            e.contains("--rootless") && e.contains("true, false or auto"),
            "{e}"
        );
    }

    #[test]
    fn who_writes_a_map() {
        let own = [(0, 1000, 1)];
        assert_eq!(writer(&own, 1000, false), Writer::Direct);
        assert_eq!(writer(&own, 1001, false), Writer::Helper);
        assert_eq!(writer(&[(0, 1000, 2)], 1000, false), Writer::Helper);
        assert_eq!(
            writer(&[(0, 1000, 1), (1, 100000, 65536)], 1000, false),
            Writer::Helper
        );
        assert_eq!(writer(&[(0, 5, 70)], 0, true), Writer::Direct);
        assert_eq!(
            parse_map("0 1000 1\n1 100000 65536\n"),
            vec![(0, 1000, 1), (1, 100000, 65536)]
        );
    }
}
