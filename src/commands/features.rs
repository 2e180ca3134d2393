//! `features`: the runtime-spec features document, listing what this rrun really does.

use anyhow::Result;
use serde_json::{Value, json};

pub fn features() -> Value {
    let mut mount_options: Vec<&str> = crate::rootfs::FLAG_OPTIONS
        .iter()
        .map(|(n, _, _)| *n)
        .collect();
    mount_options.extend([
        "bind",
        "rbind",
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "unbindable",
        "runbindable",
        "defaults",
        "tmpcopyup",
    ]);
    // The recursive ones only where mount_setattr exists (EBADF on a bad fd, not ENOSYS).
    struct NoFd;
    impl std::os::fd::AsRawFd for NoFd {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            -1
        }
    }
    let setattr = crate::sys::mount_setattr(&NoFd, 0, 0) != Err(nix::errno::Errno::ENOSYS);
    if setattr {
        mount_options.extend(crate::rootfs::RECURSIVE_OPTIONS.iter().map(|(n, _, _)| *n));
        // Id-mapped bind mounts (MOUNT_ATTR_IDMAP, Linux 5.12).
        mount_options.extend(["idmap", "ridmap"]);
    }
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE",
                ],
                "archs": ["SCMP_ARCH_X86_64"],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                ],
            },
            "apparmor": {"enabled": crate::spec::apparmor_enabled()},
            "selinux": {"enabled": crate::spec::selinux_enabled()},
            "intelRdt": {"enabled": false},
            // Id-mapped bind mounts: where the kernel has mount_setattr(2) (Linux 5.12).
            "mountExtensions": {"idmap": {"enabled": setattr}},
            "memoryPolicy": {
                "modes": [
                    "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL",
                ],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"],
            },
        },
        "annotations": {
            "io.github.rrun.version": env!("CARGO_PKG_VERSION"),
            "io.github.rrun.commit": env!("RRUN_COMMIT"),
        },
    })
}

pub fn run() -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&features())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_the_features_schema() {
        let v = features();
        let f: oci_spec::runtime::Features = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(f.oci_version_max(), crate::spec::OCI_VERSION);
        let hooks = v["hooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 6);
        assert!(
            v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == "time")
        );
        assert!(
            v["mountOptions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == "nosymfollow")
        );
    }
}
