//! sysctl keys: only those namespaced by a namespace the container owns are allowed.

use crate::namespaces::NsPlan;
use anyhow::{Result, bail};
use nix::sched::CloneFlags;

/// Which namespace a sysctl key belongs to, if any (as runc classifies them).
pub fn namespace_of(key: &str) -> Option<CloneFlags> {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    if IPC.contains(&key) || key == "kernel.shm_rmid_forced" || key.starts_with("fs.mqueue.") {
        return Some(CloneFlags::CLONE_NEWIPC);
    }
    if key.starts_with("net.") {
        return Some(CloneFlags::CLONE_NEWNET);
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return Some(CloneFlags::CLONE_NEWUTS);
    }
    None
}

pub fn check(key: &str, ns: &NsPlan) -> Result<()> {
    if key.contains('/') && key.contains("..") {
        bail!("invalid key");
    }
    let Some(flag) = namespace_of(key) else {
        bail!("not a namespaced sysctl: it would change the host");
    };
    if !ns.owns(flag) {
        bail!(
            "needs its own {} namespace in linux.namespaces",
            crate::namespaces::name(flag)
        );
    }
    Ok(())
}

/// The /proc/sys path of a key: dots become slashes (keys with slashes are taken as they are).
pub fn proc_path(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{key}")
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(
            namespace_of("net.ipv4.ip_forward"),
            Some(CloneFlags::CLONE_NEWNET)
        );
        assert_eq!(
            namespace_of("kernel.shmmax"),
            Some(CloneFlags::CLONE_NEWIPC)
        );
        assert_eq!(
            namespace_of("fs.mqueue.queues_max"),
            Some(CloneFlags::CLONE_NEWIPC)
        );
        assert_eq!(
            namespace_of("kernel.domainname"),
            Some(CloneFlags::CLONE_NEWUTS)
        );
        assert_eq!(namespace_of("kernel.panic"), None);
        assert_eq!(namespace_of("vm.swappiness"), None);
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
    }
}
