//! `features`: the document parses as the runtime-spec features schema, and
//! what it lists is real: every listed capability ends up in a container's
//! bounding set, every listed mount option is accepted (and, where visible,
//! applied) by `create`.

use std::collections::BTreeMap;
use std::fs;

use oci_spec::runtime::{Features, LinuxNamespaceType, LinuxSeccompAction};
use serde_json::{Value, json};

use crate::common::*;

/// Capability numbers from linux/capability.h.
const CAPS: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

fn cap_bit(name: &str) -> Option<u32> {
    CAPS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

#[track_caller]
fn features() -> (Features, Value) {
    let out = run_cmd(
        std::process::Command::new(runtime_bin()).arg("features"),
        CMD_TIMEOUT,
    );
    out.ok();
    let raw: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("features output is not JSON ({e}):\n{out}"));
    let typed: Features = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("features output is not the features schema ({e}):\n{out}"));
    (typed, raw)
}

/// A `CapXxx:` mask from /proc/PID/status text.
fn cap_mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex cap mask"))
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
}

fn names_of(mask: u64) -> Vec<&'static str> {
    CAPS.iter()
        .filter(|(_, b)| mask & (1u64 << b) != 0)
        .map(|(n, _)| *n)
        .collect()
}

#[test]
fn features_document_shape() {
    let _env = test_env!();
    let (f, raw) = features();
    assert!(!f.oci_version_min().is_empty(), "{raw:#}");
    assert!(!f.oci_version_max().is_empty(), "{raw:#}");
    assert!(
        f.oci_version_min().starts_with("1."),
        "ociVersionMin {:?}",
        f.oci_version_min()
    );
    let hooks = f.hooks().as_ref().expect("hooks listed");
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(
            hooks.iter().any(|x| x == h),
            "hook {h} not listed: {hooks:?}"
        );
    }
    let mount_options = f.mount_options().as_ref().expect("mountOptions listed");
    for o in ["ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind"] {
        assert!(
            mount_options.iter().any(|x| x == o),
            "mount option {o} not listed: {mount_options:?}"
        );
    }
    let linux = f.linux().as_ref().expect("linux features");
    let ns = linux
        .namespaces()
        .as_ref()
        .expect("linux.namespaces listed");
    for want in [
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Uts,
    ] {
        assert!(ns.contains(&want), "namespace {want:?} not listed: {ns:?}");
    }
    let caps = linux.capabilities().as_ref().expect("capabilities listed");
    assert!(!caps.is_empty());
    for c in caps {
        assert!(cap_bit(c).is_some(), "unknown capability {c:?} listed");
    }
    let mut dedup = caps.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(
        dedup.len(),
        caps.len(),
        "capabilities listed twice: {caps:?}"
    );
    let cg = linux.cgroup().as_ref().expect("linux.cgroup");
    assert!(
        cg.v1().is_some() && cg.v2().is_some(),
        "cgroup v1/v2 unknown: {cg:?}"
    );
    let seccomp = linux.seccomp().as_ref().expect("linux.seccomp");
    assert_eq!(*seccomp.enabled(), Some(true), "{seccomp:?}");
    let actions = seccomp.actions().as_ref().expect("seccomp.actions");
    for a in [
        LinuxSeccompAction::ScmpActAllow,
        LinuxSeccompAction::ScmpActErrno,
        LinuxSeccompAction::ScmpActKill,
        LinuxSeccompAction::ScmpActKillProcess,
        LinuxSeccompAction::ScmpActKillThread,
        LinuxSeccompAction::ScmpActLog,
        LinuxSeccompAction::ScmpActNotify,
        LinuxSeccompAction::ScmpActTrace,
        LinuxSeccompAction::ScmpActTrap,
    ] {
        assert!(actions.contains(&a), "seccomp action {a:?} not listed");
    }
    let ops = seccomp.operators().as_ref().expect("seccomp.operators");
    for o in [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ] {
        assert!(
            ops.iter().any(|x| x == o),
            "operator {o} not listed: {ops:?}"
        );
    }
    let archs = &raw["linux"]["seccomp"]["archs"];
    assert!(
        archs
            .as_array()
            .is_some_and(|a| a.contains(&json!("SCMP_ARCH_X86_64"))),
        "native arch not listed: {archs}"
    );
    // knownFlags/supportedFlags are not in runc 1.1's document; when
    // present, what is supported must be known.
    if let Some(supported) = seccomp.supported_flags() {
        let known = seccomp.known_flags().as_ref().expect("knownFlags");
        for s in supported {
            assert!(known.contains(s), "supported flag {s} not known");
        }
    }
    assert!(linux.apparmor().is_some(), "linux.apparmor missing");
    assert!(linux.selinux().is_some(), "linux.selinux missing");
    // runc 1.1 does not have the intelRdt entry either; rrun does.
    assert!(
        raw["linux"]["intelRdt"].is_object(),
        "linux.intelRdt missing: {raw:#}"
    );
}

/// One container with every listed capability in its bounding set (and no
/// other capability set): its CapBnd is exactly the listed mask, as far as
/// the test process itself holds them.
#[test]
fn features_every_capability_in_bounding() {
    let env = test_env!();
    let (f, _) = features();
    let caps = f
        .linux()
        .as_ref()
        .and_then(|l| l.capabilities().clone())
        .expect("capabilities listed");
    let mut listed = 0u64;
    for c in &caps {
        let b = cap_bit(c).unwrap_or_else(|| panic!("unknown capability {c:?} listed"));
        listed |= 1u64 << b;
    }
    // Nothing can grant what the runtime's caller does not have.
    let ours = cap_mask(&fs::read_to_string("/proc/self/status").unwrap(), "CapBnd:");
    let missing = listed & !ours;
    if missing != 0 {
        eprintln!(
            "note: not in the test process's bounding set, so not checked: {:?}",
            names_of(missing)
        );
    }
    let out = env.sh_ok("cat /proc/self/status", |s| {
        set(
            s,
            "/process/capabilities",
            json!({"bounding": caps, "effective": [], "permitted": [],
                   "inheritable": [], "ambient": []}),
        );
    });
    let bnd = cap_mask(&out.stdout, "CapBnd:");
    let want = listed & ours;
    assert_eq!(
        bnd,
        want,
        "CapBnd {bnd:#x}, want {want:#x}; missing {:?}, extra {:?}",
        names_of(want & !bnd),
        names_of(bnd & !want)
    );
}

/// A few containers with a single capability each: exactly that bit, in
/// the bounding set and (root after exec) no other in effective.
#[test]
fn features_single_capability_containers() {
    let env = test_env!();
    let (f, _) = features();
    let caps = f
        .linux()
        .as_ref()
        .and_then(|l| l.capabilities().clone())
        .expect("capabilities listed");
    let ours = cap_mask(&fs::read_to_string("/proc/self/status").unwrap(), "CapBnd:");
    // The lowest, one in the middle, and the highest listed that we hold.
    let mut held: Vec<(&str, u32)> = caps
        .iter()
        .filter_map(|c| cap_bit(c).map(|b| (c.as_str(), b)))
        .filter(|(_, b)| ours & (1u64 << b) != 0)
        .collect();
    held.sort_by_key(|(_, b)| *b);
    assert!(held.len() >= 3, "{held:?}");
    let picks = [held[0], held[held.len() / 2], held[held.len() - 1]];
    for (name, bit) in picks {
        let out = env.sh_ok("cat /proc/self/status", |s| {
            set(
                s,
                "/process/capabilities",
                json!({"bounding": [name], "effective": [name], "permitted": [name],
                       "inheritable": [], "ambient": []}),
            );
        });
        let bnd = cap_mask(&out.stdout, "CapBnd:");
        assert_eq!(
            bnd,
            1u64 << bit,
            "{name}: CapBnd {bnd:#x} = {:?}",
            names_of(bnd)
        );
        let eff = cap_mask(&out.stdout, "CapEff:");
        assert_eq!(eff & !bnd, 0, "{name}: CapEff {eff:#x} beyond CapBnd");
    }
}

/// Every listed mount option is accepted by `create`: one config with a
/// mount per option (a tmpfs, or a bind mount for bind-only options), and
/// where the option shows in mountinfo, it is applied.
#[test]
fn features_every_mount_option_accepted() {
    let env = test_env!();
    let (f, _) = features();
    let options = f.mount_options().clone().expect("mountOptions listed");
    let src = env.host_dir("bind-src");
    fs::write(src.join("marker"), "bind-marker\n").unwrap();
    let mut spec = env.spec();
    // A tmpfs to hold the mount points: the shared rootfs stays untouched.
    add_mount(
        &mut spec,
        json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=1m"]}),
    );
    // option -> mount point
    let mut dests = BTreeMap::new();
    for o in &options {
        let dest = match o.as_str() {
            // A remount of a mount point that is not mounted yet has no
            // meaning for a new mount.
            "remount" => continue,
            // Copies the directory's content into the new tmpfs.
            "tmpcopyup" => {
                add_mount(
                    &mut spec,
                    json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                           "options": ["tmpcopyup"]}),
                );
                "/etc".to_string()
            }
            "bind" | "rbind" => {
                let dest = format!("/mnt/o-{o}");
                add_mount(&mut spec, bind_mount(&src, &dest, &[o]));
                dest
            }
            // Id-mapped bind mounts: with mappings of their own (no user namespace here).
            "idmap" | "ridmap" => {
                let dest = format!("/mnt/o-{o}");
                let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                let mut m = bind_mount(&src, &dest, &["rbind", o]);
                m["uidMappings"] = map.clone();
                m["gidMappings"] = map;
                add_mount(&mut spec, m);
                dest
            }
            _ => {
                let dest = format!("/mnt/o-{o}");
                add_mount(
                    &mut spec,
                    json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                           "options": [o]}),
                );
                dest
            }
        };
        dests.insert(o.clone(), dest);
    }
    set_script(
        &mut spec,
        "cat /proc/self/mountinfo; echo; \
         cat /mnt/o-bind/marker /mnt/o-rbind/marker 2>/dev/null; \
         if [ -f /etc/passwd ]; then echo etc-copied-up; fi",
    );
    env.create_ok(&spec);
    env.rt(&["start", &env.id]).ok();
    env.wait_for_status("stopped");
    let out = env.container_stdout();
    assert_eq!(env.wait_init(), Exit::Code(0), "{out}");
    // mountpoint -> (per-mount options, optional fields, fstype, super options)
    let mut mounts = BTreeMap::new();
    for line in out.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split_whitespace().collect();
        let p: Vec<&str> = post.split_whitespace().collect();
        if f.len() < 6 || p.len() < 3 {
            continue;
        }
        mounts.insert(
            f[4].to_string(),
            (
                f[5].split(',').map(str::to_string).collect::<Vec<_>>(),
                f[6..].join(" "),
                p[0].to_string(),
                p[2].split(',').map(str::to_string).collect::<Vec<_>>(),
            ),
        );
    }
    let mut wrong = Vec::new();
    for (o, dest) in &dests {
        let Some((opts, optional, fstype, sopts)) = mounts.get(dest) else {
            wrong.push(format!("option {o}: nothing mounted at {dest}"));
            continue;
        };
        let has = |x: &str| opts.iter().any(|v| v == x);
        let shows = |x: &str| has(x) || sopts.iter().any(|v| v == x);
        let applied = match o.as_str() {
            "ro" | "nosuid" | "nodev" | "noexec" | "noatime" | "nodiratime" | "relatime"
            | "nosymfollow" => has(o),
            "rw" => has("rw"),
            "sync" | "dirsync" | "lazytime" => shows(o),
            "suid" => !has("nosuid"),
            "dev" => !has("nodev"),
            "exec" => !has("noexec"),
            "async" => !shows("sync"),
            "strictatime" => !has("noatime") && !has("relatime"),
            "shared" | "rshared" => optional.contains("shared:"),
            "private" | "rprivate" => {
                !optional.contains("shared:") && !optional.contains("master:")
            }
            "unbindable" | "runbindable" => optional.contains("unbindable"),
            "slave" | "rslave" => !optional.contains("shared:"),
            "tmpcopyup" => fstype == "tmpfs",
            "bind" | "rbind" => fstype != "tmpfs",
            "idmap" | "ridmap" => has("idmapped"),
            // Accepted; nothing to see in mountinfo (or kernel-dependent,
            // like mand, which newer kernels ignore).
            _ => true,
        };
        if !applied {
            wrong.push(format!(
                "option {o} not applied at {dest}: {opts:?} [{optional}] {fstype} {sopts:?}"
            ));
        }
    }
    let binds = ["bind", "rbind"]
        .iter()
        .filter(|o| dests.contains_key(**o))
        .count();
    if out.lines().filter(|l| *l == "bind-marker").count() != binds {
        wrong.push("bind: the source's content is not visible".to_string());
    }
    if dests.contains_key("tmpcopyup") && !out.lines().any(|l| l == "etc-copied-up") {
        wrong.push("tmpcopyup: /etc's content was not copied into the tmpfs".to_string());
    }
    assert!(
        wrong.is_empty(),
        "{}\nmountinfo in the container:\n{out}",
        wrong.join("\n")
    );
}
