//! Namespaces: the plan (which are new, which are joined by path) and how init enters them.
//!
//! Clone and continue: the new namespaces go into the one clone3 call when nothing is joined
//! by path that the new user namespace would lock us out of. Otherwise init joins the paths
//! first and unshares after. A fork follows only where the kernel demands it: a PID namespace
//! that was unshared or joined (it applies to children), and a time namespace with offsets.

use anyhow::{Context, Result, anyhow, bail};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::path::PathBuf;

pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

#[derive(Debug, Clone)]
pub struct Join {
    pub flag: CloneFlags,
    pub path: PathBuf,
    pub index: usize,
}

#[derive(Debug, Clone)]
pub struct NsPlan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join, in config order (see [`join_all`] for the order they are joined).
    pub join: Vec<Join>,
}

pub fn flag_of(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CLONE_NEWTIME,
    }
}

pub fn name(f: CloneFlags) -> &'static str {
    match f {
        CloneFlags::CLONE_NEWNS => "mount",
        CloneFlags::CLONE_NEWCGROUP => "cgroup",
        CloneFlags::CLONE_NEWUTS => "uts",
        CloneFlags::CLONE_NEWIPC => "ipc",
        CloneFlags::CLONE_NEWUSER => "user",
        CloneFlags::CLONE_NEWPID => "pid",
        CloneFlags::CLONE_NEWNET => "network",
        f if f == CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

impl NsPlan {
    pub fn from_spec(list: &[LinuxNamespace]) -> Result<NsPlan> {
        let mut plan = NsPlan {
            new: CloneFlags::empty(),
            join: Vec::new(),
        };
        let mut seen = CloneFlags::empty();
        for (i, n) in list.iter().enumerate() {
            let f = flag_of(n.typ());
            if seen.contains(f) {
                bail!(
                    "config.json: linux.namespaces[{i}].type: duplicate namespace {:?}",
                    name(f)
                );
            }
            seen |= f;
            match n.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    if !p.is_absolute() {
                        bail!(
                            "config.json: linux.namespaces[{i}].path: {} is not absolute",
                            p.display()
                        );
                    }
                    plan.join.push(Join {
                        flag: f,
                        path: p.clone(),
                        index: i,
                    });
                }
                _ => plan.new |= f,
            }
        }
        // The user namespace must be joined before the others, so they are joined as its root.
        plan.join
            .sort_by_key(|j| j.flag != CloneFlags::CLONE_NEWUSER);
        Ok(plan)
    }

    /// New or joined: the container has its own namespace of this kind.
    pub fn owns(&self, f: CloneFlags) -> bool {
        self.new.contains(f) || self.join.iter().any(|j| j.flag == f)
    }

    /// Flags for clone3, and flags init unshares after joining paths. The cgroup namespace is
    /// always unshared by init, after the parent has put it in its cgroup.
    pub fn split(&self, time_offsets: bool) -> (CloneFlags, CloneFlags) {
        let mut all = self.new - CloneFlags::CLONE_NEWCGROUP;
        let mut later = self.new & CloneFlags::CLONE_NEWCGROUP;
        let pid_join = self.join.iter().any(|j| j.flag == CloneFlags::CLONE_NEWPID);
        if time_offsets {
            // Offsets can only be written before any process lives in the namespace.
            all -= CLONE_NEWTIME;
            later |= CLONE_NEWTIME;
        }
        if (time_offsets || pid_join) && self.new.contains(CloneFlags::CLONE_NEWPID) {
            // init will be forked: it, not the process that forks it, must be pid 1.
            all -= CloneFlags::CLONE_NEWPID;
            later |= CloneFlags::CLONE_NEWPID;
        }
        let joins_user = self
            .join
            .iter()
            .any(|j| j.flag == CloneFlags::CLONE_NEWUSER);
        let new_user = self.new.contains(CloneFlags::CLONE_NEWUSER);
        if joins_user || (new_user && !self.join.is_empty()) {
            // Joining needs our host privileges: create everything after joining.
            (CloneFlags::empty(), all | later)
        } else {
            (all, later)
        }
    }

    /// Namespaces of `clone_flags` that init can as well unshare itself right after the
    /// clone (network, mount, IPC, UTS), so that making them overlaps the parent's work. Not
    /// with a user namespace: the clone makes it first and owns the others through it.
    pub fn deferrable(&self, clone_flags: CloneFlags) -> CloneFlags {
        if self.owns(CloneFlags::CLONE_NEWUSER) {
            return CloneFlags::empty();
        }
        clone_flags
            & (CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS)
    }

    /// Does init need an extra fork to really be inside its namespaces?
    pub fn needs_fork(&self, clone_flags: CloneFlags, time_offsets: bool) -> bool {
        let pid_later = self.new.contains(CloneFlags::CLONE_NEWPID)
            && !clone_flags.contains(CloneFlags::CLONE_NEWPID);
        let pid_join = self.join.iter().any(|j| j.flag == CloneFlags::CLONE_NEWPID);
        pid_later || pid_join || time_offsets
    }
}

/// Open every namespace path up front, so a missing path fails with its config field.
pub fn open_joins(plan: &NsPlan) -> Result<Vec<(CloneFlags, std::fs::File, usize)>> {
    plan.join
        .iter()
        .map(|j| {
            let f = std::fs::File::open(&j.path).map_err(|e| {
                anyhow!(
                    "config.json: linux.namespaces[{}].path: open {}: {}",
                    j.index,
                    j.path.display(),
                    crate::sys::io_errno(&e)
                )
            })?;
            Ok((j.flag, f, j.index))
        })
        .collect()
}

/// setns into each opened namespace, in three passes as runc (1.3) and nsenter(1) do: the
/// others first with our own credentials, leaving those the kernel refuses (EPERM: owned by a
/// user namespace we are not privileged in); then the user namespace; then, as its root,
/// the ones refused before. So a joined user namespace and a network namespace given by path
/// work both when the network namespace belongs to the host (joined before our credentials
/// change) and when it belongs to that user namespace (rootless: joined after).
pub fn join_all(files: &[(CloneFlags, std::fs::File, usize)], plan: &NsPlan) -> Result<()> {
    let what = |flag: CloneFlags, i: usize| {
        format!(
            "join {} namespace {} (linux.namespaces[{i}])",
            name(flag),
            plan.join
                .iter()
                .find(|j| j.index == i)
                .map(|j| j.path.display().to_string())
                .unwrap_or_default()
        )
    };
    let user = CloneFlags::CLONE_NEWUSER;
    let mut refused = Vec::new();
    for e in files.iter().filter(|(f, _, _)| *f != user) {
        match nix::sched::setns(&e.1, e.0) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) => refused.push(e),
            Err(err) => return Err(anyhow!(err).context(what(e.0, e.2))),
        }
    }
    let mut joined_user = false;
    for (flag, f, i) in files.iter().filter(|(f, _, _)| *f == user) {
        nix::sched::setns(f, *flag).with_context(|| what(*flag, *i))?;
        joined_user = true;
    }
    for (flag, f, i) in refused {
        nix::sched::setns(f, *flag).with_context(|| {
            let why = if joined_user {
                "(refused with the host's credentials and as root of the joined user namespace)"
            } else {
                "(it belongs to a user namespace the container does not join)"
            };
            format!("{} {why}", what(*flag, *i))
        })?;
    }
    Ok(())
}

/// A user namespace with these maps, held by an fd (for MOUNT_ATTR_IDMAP): a child is
/// cloned into a new one, its maps written, its namespace opened, and it is let go. Needs
/// the privileges to write such maps (root on the host).
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| anyhow!("pipe for the id-map user namespace: {e}"))?;
    let pid = crate::process::clone3_into(CloneFlags::CLONE_NEWUSER, None)
        .context("make a user namespace for an id-mapped mount")?;
    if pid == 0 {
        // Wait until the parent is done with us (its end closes), then leave.
        drop(w);
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(r.as_raw_fd(), &mut b);
        // SAFETY: leave without running the parent's destructors.
        unsafe { libc::_exit(0) }
    }
    drop(r);
    let res = (|| {
        crate::sys::write_file(&format!("/proc/{pid}/uid_map"), uid_map).context("uidMappings")?;
        crate::sys::write_file(&format!("/proc/{pid}/gid_map"), gid_map).context("gidMappings")?;
        std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .map_err(|e| anyhow!("open /proc/{pid}/ns/user: {}", crate::sys::io_errno(&e)))
    })();
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(json: &str) -> NsPlan {
        let list: Vec<LinuxNamespace> = serde_json::from_str(json).unwrap();
        NsPlan::from_spec(&list).unwrap()
    }

    #[test]
    fn all_new_go_into_clone() {
        let p = ns(
            r#"[{"type":"pid"},{"type":"network"},{"type":"mount"},{"type":"cgroup"},{"type":"user"}]"#,
        );
        let (now, later) = p.split(false);
        assert!(now.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUSER));
        assert_eq!(later, CloneFlags::CLONE_NEWCGROUP);
        assert!(!p.needs_fork(now, false));
    }

    #[test]
    fn net_mount_ipc_uts_deferrable_without_a_user_namespace() {
        use CloneFlags as F;
        let p = ns(
            r#"[{"type":"pid"},{"type":"network"},{"type":"mount"},{"type":"ipc"},{"type":"uts"},{"type":"cgroup"}]"#,
        );
        let (now, _) = p.split(false);
        let moved = p.deferrable(now);
        assert_eq!(
            moved,
            F::CLONE_NEWNET | F::CLONE_NEWNS | F::CLONE_NEWIPC | F::CLONE_NEWUTS
        );
        // pid 1 must be born in its pid namespace: that stays with the clone.
        assert!((now - moved).contains(F::CLONE_NEWPID));
        assert!(!p.needs_fork(now - moved, false));
        let with_user = ns(r#"[{"type":"pid"},{"type":"network"},{"type":"user"}]"#);
        assert_eq!(with_user.deferrable(with_user.split(false).0), F::empty());
    }

    #[test]
    fn user_plus_path_defers() {
        let p = ns(
            r#"[{"type":"pid"},{"type":"network","path":"/run/netns/x"},{"type":"mount"},{"type":"user"}]"#,
        );
        let (now, later) = p.split(false);
        assert!(now.is_empty());
        assert!(later.contains(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID));
        assert!(p.needs_fork(now, false));
    }

    #[test]
    fn joins_user_first_and_pid_path_forks() {
        let p = ns(
            r#"[{"type":"pid","path":"/proc/1/ns/pid"},{"type":"user","path":"/proc/1/ns/user"},{"type":"mount"}]"#,
        );
        assert_eq!(p.join[0].flag, CloneFlags::CLONE_NEWUSER);
        let (now, _) = p.split(false);
        assert!(p.needs_fork(now, false));
    }

    #[test]
    fn time_offsets_force_unshare_and_fork() {
        let p = ns(r#"[{"type":"time"},{"type":"mount"}]"#);
        let (now, later) = p.split(true);
        assert!(!now.contains(CLONE_NEWTIME) && later.contains(CLONE_NEWTIME));
        let p2 = ns(r#"[{"type":"time"},{"type":"pid"},{"type":"mount"}]"#);
        let (now2, later2) = p2.split(true);
        assert!(
            !now2.contains(CloneFlags::CLONE_NEWPID) && later2.contains(CloneFlags::CLONE_NEWPID)
        );
        assert!(p.needs_fork(now, true));
        let (now, _) = p.split(false);
        assert!(now.contains(CLONE_NEWTIME));
    }

    #[test]
    fn duplicates_and_relative_paths_fail() {
        let list: Vec<LinuxNamespace> =
            serde_json::from_str(r#"[{"type":"pid"},{"type":"pid"}]"#).unwrap();
        assert!(
            NsPlan::from_spec(&list)
                .unwrap_err()
                .to_string()
                .contains("linux.namespaces[1].type: duplicate")
        );
        let list: Vec<LinuxNamespace> =
            serde_json::from_str(r#"[{"type":"network","path":"x"}]"#).unwrap();
        assert!(NsPlan::from_spec(&list).is_err());
    }
}
