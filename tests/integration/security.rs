//! Security settings, each proven from inside a real container: capability
//! sets, seccomp (actions, errno values, argument conditions, a profile with
//! a default deny, containers-common's profile, a notify agent), masked
//! paths, sysctl, and the AppArmor/SELinux fields on a host without an LSM.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

// ---------------------------------------------------------------------------
// Capabilities

/// Capability names by number (linux/capability.h), without the `CAP_`
/// prefix.
const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

pub const CAP_CHOWN: u32 = 0;
pub const CAP_KILL: u32 = 5;
pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_AUDIT_WRITE: u32 = 29;

/// The capabilities of `bundles/busybox/config.json`.
pub const BUSYBOX_CAPS: [u32; 3] = [CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE];

/// OCI names (`CAP_...`) of capability numbers.
pub fn cap_names(caps: &[u32]) -> Vec<String> {
    caps.iter()
        .map(|c| format!("CAP_{}", CAP_NAMES[*c as usize]))
        .collect()
}

/// The bit mask of capability numbers, as /proc/PID/status shows it.
pub fn cap_mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | (1u64 << c))
}

/// The highest capability the running kernel knows.
fn cap_last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .expect("read cap_last_cap")
        .trim()
        .parse()
        .expect("cap_last_cap is a number")
}

/// `process.capabilities` with the given sets.
pub fn set_caps(spec: &mut Value, bnd: &[u32], eff: &[u32], inh: &[u32], prm: &[u32], amb: &[u32]) {
    set(
        spec,
        "/process/capabilities",
        json!({
            "bounding": cap_names(bnd),
            "effective": cap_names(eff),
            "inheritable": cap_names(inh),
            "permitted": cap_names(prm),
            "ambient": cap_names(amb),
        }),
    );
}

/// The five `Cap*:` masks of /proc/self/status output.
pub fn status_caps(out: &Out) -> BTreeMap<String, u64> {
    let mut caps = BTreeMap::new();
    for line in out.stdout.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].contains(&k) {
            let v = u64::from_str_radix(v.trim(), 16)
                .unwrap_or_else(|e| panic!("bad {k} value {v:?} ({e}):\n{out}"));
            caps.insert(k.to_string(), v);
        }
    }
    assert_eq!(caps.len(), 5, "missing Cap* lines:\n{out}");
    caps
}

/// Expected masks, in /proc/self/status order.
struct Want {
    inh: u64,
    prm: u64,
    eff: u64,
    bnd: u64,
    amb: u64,
}

#[track_caller]
fn assert_caps(out: &Out, want: Want) {
    out.ok();
    let got = status_caps(out);
    let show = |m: &BTreeMap<String, u64>| {
        ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
            .iter()
            .map(|k| format!("{k}: {:016x}", m[*k]))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut w = BTreeMap::new();
    for (k, v) in [
        ("CapInh", want.inh),
        ("CapPrm", want.prm),
        ("CapEff", want.eff),
        ("CapBnd", want.bnd),
        ("CapAmb", want.amb),
    ] {
        w.insert(k.to_string(), v);
    }
    assert_eq!(
        got,
        w,
        "capabilities differ\n got:\n{}\n want:\n{}\n{out}",
        show(&got),
        show(&w)
    );
}

/// The container process itself is `cat` (no shell in between), so its own
/// capabilities after the runtime's execve are read.
const CAT_STATUS: [&str; 2] = ["cat", "/proc/self/status"];

#[test]
fn caps_busybox_default_set() {
    let env = test_env!();
    let out = env.run_capture(&CAT_STATUS, |_| {});
    let m = cap_mask(&BUSYBOX_CAPS);
    // The template lists the three caps as ambient too, but not as
    // inheritable: an ambient cap needs both, so none is raised (runc skips
    // them the same way). As root, execve makes permitted = effective =
    // bounding | inheritable.
    assert_caps(
        &out,
        Want {
            inh: 0,
            prm: m,
            eff: m,
            bnd: m,
            amb: 0,
        },
    );
}

#[test]
fn caps_empty_sets() {
    let env = test_env!();
    let out = env.run_capture(&CAT_STATUS, |s| set_caps(s, &[], &[], &[], &[], &[]));
    assert_caps(
        &out,
        Want {
            inh: 0,
            prm: 0,
            eff: 0,
            bnd: 0,
            amb: 0,
        },
    );
}

#[test]
fn caps_all_known_to_the_kernel() {
    let env = test_env!();
    // Every capability the kernel knows and the runtime (started by this
    // test process) holds: a sandbox may have dropped some from the
    // machine's bounding set.
    let own = fs::read_to_string("/proc/self/status").unwrap();
    let own_bnd = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let all: Vec<u32> = (0..=cap_last_cap().min(CAP_NAMES.len() as u32 - 1))
        .filter(|c| own_bnd & (1 << c) != 0)
        .collect();
    let out = env.run_capture(&CAT_STATUS, |s| set_caps(s, &all, &all, &[], &all, &[]));
    let m = cap_mask(&all);
    assert_caps(
        &out,
        Want {
            inh: 0,
            prm: m,
            eff: m,
            bnd: m,
            amb: 0,
        },
    );
}

#[test]
fn caps_ambient_as_root() {
    let env = test_env!();
    let bnd = [CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE];
    let inh = [CAP_NET_BIND_SERVICE, CAP_CHOWN];
    // CAP_KILL is asked as ambient but is not inheritable: skipped.
    let amb = [CAP_NET_BIND_SERVICE, CAP_KILL];
    let out = env.run_capture(&CAT_STATUS, |s| set_caps(s, &bnd, &bnd, &inh, &bnd, &amb));
    assert_caps(
        &out,
        Want {
            inh: cap_mask(&inh),
            prm: cap_mask(&bnd),
            eff: cap_mask(&bnd),
            bnd: cap_mask(&bnd),
            amb: cap_mask(&[CAP_NET_BIND_SERVICE]),
        },
    );
}

/// A non-root process loses its permitted and effective capabilities at
/// execve unless they are ambient; the bounding set stays.
#[test]
fn caps_non_root_user_without_ambient() {
    let env = test_env!();
    let caps = [CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_NET_RAW];
    let out = env.run_capture(&CAT_STATUS, |s| {
        set(s, "/process/user", json!({"uid": 1000, "gid": 1000}));
        set_caps(s, &caps, &caps, &[], &caps, &[]);
    });
    assert!(out.stdout.contains("Uid:\t1000\t1000\t1000\t1000"), "{out}");
    assert_caps(
        &out,
        Want {
            inh: 0,
            prm: 0,
            eff: 0,
            bnd: cap_mask(&caps),
            amb: 0,
        },
    );
}

/// Ambient capabilities survive execve for a non-root user and become
/// permitted and effective.
#[test]
fn caps_non_root_user_with_ambient() {
    let env = test_env!();
    let bnd = [CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_NET_RAW];
    let prm = [CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE];
    let inh = [CAP_KILL, CAP_NET_BIND_SERVICE];
    // CAP_CHOWN is not inheritable: not raised.
    let amb = [CAP_NET_BIND_SERVICE, CAP_CHOWN];
    let out = env.run_capture(&CAT_STATUS, |s| {
        set(s, "/process/user", json!({"uid": 1000, "gid": 1000}));
        set_caps(s, &bnd, &prm, &inh, &prm, &amb);
    });
    assert!(out.stdout.contains("Uid:\t1000\t1000\t1000\t1000"), "{out}");
    let nbs = cap_mask(&[CAP_NET_BIND_SERVICE]);
    assert_caps(
        &out,
        Want {
            inh: cap_mask(&inh),
            prm: nbs,
            eff: nbs,
            bnd: cap_mask(&bnd),
            amb: nbs,
        },
    );
}

/// busybox ping opens a raw ICMP socket (or falls back to an unprivileged
/// ICMP datagram socket, which a new network namespace's default
/// `ping_group_range` does not allow): without CAP_NET_RAW it fails with
/// "permission denied", with it the ping to the container's own loopback
/// goes through. Only 127.0.0.1 in the container's own network namespace.
#[test]
fn caps_net_raw_needed_for_raw_socket() {
    let env = test_env!();
    let script = "ip link set lo up || exit 3; ping -c1 -W2 127.0.0.1";
    let base = [
        CAP_AUDIT_WRITE,
        CAP_KILL,
        CAP_NET_BIND_SERVICE,
        CAP_NET_ADMIN,
    ];
    let out = env.run_capture(&["sh", "-c", script], |s| {
        set_caps(s, &base, &base, &[], &base, &[]);
    });
    assert_eq!(out.code(), Some(1), "ping without CAP_NET_RAW:\n{out}");
    out.stderr_has_any(&["permission denied", "operation not permitted"]);

    let mut with_raw = base.to_vec();
    with_raw.push(CAP_NET_RAW);
    let out = env.run_capture(&["sh", "-c", script], |s| {
        set_caps(s, &with_raw, &with_raw, &[], &with_raw, &[]);
    });
    out.ok();
    assert!(
        out.stdout.contains("1 packets received"),
        "ping with CAP_NET_RAW:\n{out}"
    );
}

// ---------------------------------------------------------------------------
// The process user and its stdio

/// A non-root process can reopen its own stdio (`/dev/stdout` is
/// /proc/self/fd/1): runc chowns the container's stdio to the process user
/// (`fixStdioPermissions`), and images that log to /dev/stdout as non-root
/// depend on it. A stdio that is the host's /dev/null (here: stdin) must not
/// be chowned: that would change the host's device node.
#[test]
fn non_root_user_can_reopen_its_stdio() {
    let env = test_env!();
    let null_before = fs::metadata("/dev/null").unwrap();
    let out = env.run_capture(
        &[
            "sh",
            "-c",
            "echo out > /dev/stdout; echo rc1=$?; echo err > /dev/stderr; echo rc2=$?",
        ],
        |s| set(s, "/process/user", json!({"uid": 1000, "gid": 1000})),
    );
    let null_after = fs::metadata("/dev/null").unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (null_after.uid(), null_after.gid(), null_after.mode()),
        (null_before.uid(), null_before.gid(), null_before.mode()),
        "the host's /dev/null changed"
    );
    out.ok();
    assert_eq!(out.lines(), vec!["out", "rc1=0", "rc2=0"], "{out}");
    // The runtime's own warnings aside (the default capabilities list ambient ones a
    // non-root process cannot get), stderr is the process's.
    let own: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.contains("level=warning"))
        .collect();
    assert_eq!(own, ["err"], "{out}");
}

/// With a terminal, the pty (the process's stdio and /dev/console) belongs
/// to the process user, who can reopen /dev/console (runc chowns it).
#[test]
fn non_root_user_owns_its_console() {
    let env = test_env!();
    let mut spec = env.spec();
    set(&mut spec, "/process/terminal", json!(true));
    set(
        &mut spec,
        "/process/user",
        json!({"uid": 1000, "gid": 1000}),
    );
    set_script(
        &mut spec,
        "stat -L -c 'fd0 %u' /proc/self/fd/0; stat -c 'console %u' /dev/console; \
         echo reopened > /dev/console && echo reopen-ok",
    );
    env.write_bundle(&spec);
    let sock = ConsoleReceiver::bind(env.dir.join("console.sock"));
    env.create_with(&env.id, &["--console-socket", sock.path_str()])
        .ok();
    let (master, _) = sock.recv();
    let mut pty = PtyIo::new(master);
    env.rt(&["start", &env.id]).ok();
    pty.read_to_eof(WAIT_TIMEOUT);
    let exit = env.wait_init();
    let text = pty.text();
    assert_eq!(exit, Exit::Code(0), "output:\n{text}");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for want in ["fd0 1000", "console 1000", "reopened", "reopen-ok"] {
        assert!(lines.contains(&want), "no {want:?} line:\n{text}");
    }
}

// ---------------------------------------------------------------------------
// Seccomp

/// A 1 MiB tmpfs on /mnt (an existing directory of the rootfs): somewhere
/// the syscalls under test would succeed without the filter.
fn tmpfs_on_mnt(spec: &mut Value) {
    add_mount(
        spec,
        json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=1m"]}),
    );
}

/// No core dumps from processes killed by SIGSYS.
fn no_core(spec: &mut Value) {
    spec["process"]["rlimits"]
        .as_array_mut()
        .expect("process.rlimits")
        .push(json!({"type": "RLIMIT_CORE", "hard": 0, "soft": 0}));
}

/// The syscalls containers-common's profile allows on x86_64 whatever the
/// capabilities: its allow rules without argument conditions, without
/// `excludes`, and whose `includes` name no capability and no arch but
/// amd64.
fn podman_allow_list() -> Vec<String> {
    let p = containers_common_profile();
    let empty = |v: &Value| v.as_array().is_none_or(|a| a.is_empty());
    let mut names = Vec::new();
    for rule in p["syscalls"].as_array().expect("syscalls") {
        let inc = &rule["includes"];
        let fits = rule["action"] == "SCMP_ACT_ALLOW"
            && empty(&rule["args"])
            && rule["excludes"].as_object().is_none_or(|o| o.is_empty())
            && empty(&inc["caps"])
            && (empty(&inc["arches"])
                || inc["arches"].as_array().unwrap().contains(&json!("amd64")))
            && inc
                .as_object()
                .is_none_or(|o| o.keys().all(|k| k == "caps" || k == "arches"));
        if fits {
            for n in rule["names"].as_array().expect("names") {
                names.push(n.as_str().expect("name").to_string());
            }
        }
    }
    names
}

/// tests/fixtures/seccomp/containers-common.json, podman's default profile.
pub fn containers_common_profile() -> Value {
    let path = repo_root().join("tests/fixtures/seccomp/containers-common.json");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the fixture is JSON")
}

#[test]
fn seccomp_errno_custom_and_default() {
    let env = test_env!();
    let script = "mkdir /mnt/d; echo mkdir=$?; touch /mnt/f; echo touch=$?; \
                  rm /mnt/f; echo rm=$?; ls /mnt";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        tmpfs_on_mnt(s);
        set(
            s,
            "/linux/seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                     "errnoRet": 38},
                    {"names": ["unlink", "unlinkat"], "action": "SCMP_ACT_ERRNO"},
                ],
            }),
        );
    });
    out.ok();
    assert_eq!(
        out.lines(),
        vec!["mkdir=1", "touch=0", "rm=1", "f"],
        "{out}"
    );
    // errnoRet 38 is ENOSYS; without errnoRet SCMP_ACT_ERRNO is EPERM. busybox prints strerror.
    use nix::errno::Errno;
    out.stderr_has_all(&[Errno::ENOSYS.desc(), Errno::EPERM.desc()]);
}

/// KILL (= KILL_THREAD), KILL_THREAD, KILL_PROCESS and TRAP all end the
/// (single-threaded) process with SIGSYS: `run` exits 128 + 31.
#[test]
fn seccomp_kill_actions_give_sigsys() {
    let env = test_env!();
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
    ] {
        let out = env.run_capture(&["mkdir", "/mnt/d"], |s| {
            tmpfs_on_mnt(s);
            no_core(s);
            set(
                s,
                "/linux/seccomp",
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}],
                }),
            );
        });
        assert_eq!(out.code(), Some(159), "{action}:\n{out}");
    }
    // LOG lets the call through (and ALLOW, as a rule, too).
    for action in ["SCMP_ACT_LOG", "SCMP_ACT_ALLOW"] {
        let out = env.run_capture(&["sh", "-c", "mkdir /mnt/d && ls /mnt"], |s| {
            tmpfs_on_mnt(s);
            set(
                s,
                "/linux/seccomp",
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}],
                }),
            );
        });
        out.ok();
        assert_eq!(out.lines(), vec!["d"], "{action}:\n{out}");
    }
}

/// A rule with an argument condition: chmod to exactly 0777 (permission
/// bits masked with 07777) is denied, other modes are not.
#[test]
fn seccomp_argument_condition_masked_eq() {
    let env = test_env!();
    let cond = |index: u32| {
        json!([{"index": index, "value": 0o7777, "valueTwo": 0o777,
                "op": "SCMP_CMP_MASKED_EQ"}])
    };
    let script = "touch /mnt/f; \
                  chmod 755 /mnt/f; echo a=$?; stat -c %a /mnt/f; \
                  chmod 777 /mnt/f; echo b=$?; stat -c %a /mnt/f; \
                  chmod 1777 /mnt/f; echo c=$?; stat -c %a /mnt/f; \
                  chmod 700 /mnt/f; echo d=$?; stat -c %a /mnt/f";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        tmpfs_on_mnt(s);
        set(
            s,
            "/linux/seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [
                    {"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO",
                     "errnoRet": 13, "args": cond(1)},
                    {"names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO",
                     "errnoRet": 13, "args": cond(2)},
                ],
            }),
        );
    });
    out.ok();
    assert_eq!(
        out.lines(),
        vec!["a=0", "755", "b=1", "755", "c=0", "1777", "d=0", "700"],
        "{out}"
    );
    out.stderr_has_all(&["Permission denied"]);
}

/// Default ERRNO (EPERM), an allow list (containers-common's, without the
/// rename family) and a KILL rule: busybox sh works, mv is refused, mkdir
/// kills.
#[test]
fn seccomp_default_errno_allow_list_and_kill() {
    let env = test_env!();
    let denied = ["rename", "renameat", "renameat2", "mkdir", "mkdirat"];
    let allow: Vec<String> = podman_allow_list()
        .into_iter()
        .filter(|n| !denied.contains(&n.as_str()))
        .collect();
    assert!(allow.len() > 250, "allow list too short: {}", allow.len());
    let script = "echo alive; touch /mnt/a; ls /mnt; mv /mnt/a /mnt/b; echo mv=$?; ls /mnt; \
                  exec mkdir /mnt/d";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        tmpfs_on_mnt(s);
        no_core(s);
        set(
            s,
            "/linux/seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [
                    {"names": allow, "action": "SCMP_ACT_ALLOW"},
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"},
                ],
            }),
        );
    });
    assert_eq!(out.code(), Some(159), "mkdir did not kill:\n{out}");
    assert_eq!(out.lines(), vec!["alive", "a", "mv=1", "a"], "{out}");
    out.stderr_has_all(&["Operation not permitted"]);
}

/// podman's default profile, put into `linux.seccomp` as it is (the
/// engine-only keys `archMap`, `includes`, `excludes` are ignored).
/// swapoff is denied with EPERM by the profile; with CAP_SYS_ADMIN and no
/// filter, swapoff of a file that is not a swap area would give EINVAL.
#[test]
fn seccomp_containers_common_profile() {
    let env = test_env!();
    let mut caps = BUSYBOX_CAPS.to_vec();
    caps.push(CAP_SYS_ADMIN);
    let script = "echo hello; mkdir /mnt/d && echo mkdir-ok; echo data > /mnt/d/f; \
                  mv /mnt/d/f /mnt/d/g && cat /mnt/d/g; ls /proc/self/fd > /dev/null && echo ls-ok; \
                  swapoff /mnt/d/g; echo swapoff=$?";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        tmpfs_on_mnt(s);
        set_caps(s, &caps, &caps, &[], &caps, &[]);
        set(s, "/linux/seccomp", containers_common_profile());
    });
    out.ok();
    assert_eq!(
        out.lines(),
        vec!["hello", "mkdir-ok", "data", "ls-ok", "swapoff=1"],
        "{out}"
    );
    out.stderr_has_all(&["Operation not permitted"]);
    assert!(!out.stderr.contains("Invalid argument"), "{out}");
}

// --- the notify agent

/// `struct seccomp_data`
#[repr(C)]
#[derive(Clone, Copy)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif`
#[repr(C)]
#[derive(Clone, Copy)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

/// `struct seccomp_notif_resp`
#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;

/// One notification the agent answered.
#[derive(Debug)]
struct Seen {
    nr: i32,
    /// /proc/PID/cgroup of the caller, read while it was blocked.
    cgroup: String,
}

struct AgentReport {
    /// The JSON that came with the listener fd.
    state: Value,
    seen: Vec<Seen>,
}

/// A seccomp agent: listens on a unix socket, receives the listener fd and
/// the container state, and answers notifications with `answers` in turn
/// (an errno, 0 for success without doing the call, or -1 to let the call
/// go on: SECCOMP_USER_NOTIF_FLAG_CONTINUE); further notifications get
/// success.
struct NotifyAgent {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Result<AgentReport, String>>,
}

impl NotifyAgent {
    fn start(path: PathBuf, answers: Vec<i32>) -> NotifyAgent {
        let listener =
            UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::spawn(move || agent(listener, answers, &stop2));
        NotifyAgent { path, stop, handle }
    }

    fn finish(self) -> Result<AgentReport, String> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .join()
            .map_err(|_| "agent panicked".to_string())?
    }
}

fn agent(
    listener: UnixListener,
    answers: Vec<i32>,
    stop: &AtomicBool,
) -> Result<AgentReport, String> {
    let deadline = Instant::now() + CMD_TIMEOUT;
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    return Err("the runtime never connected to listenerPath".into());
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(WAIT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let (mut data, fd) = recv_with_fd(stream.as_raw_fd())?;
    let fd = fd.ok_or("no fd came with the state")?;
    // The rest of the JSON, if the stream split it (the connection may stay
    // open: runc keeps it until the container is created).
    let state: Value = loop {
        match serde_json::from_slice(&data) {
            Ok(v) => break v,
            Err(e) if e.is_eof() => {
                let mut more = [0u8; 4096];
                match stream.read(&mut more) {
                    Ok(0) | Err(_) => {
                        return Err(format!(
                            "incomplete state JSON: {:?}",
                            String::from_utf8_lossy(&data)
                        ));
                    }
                    Ok(n) => data.extend_from_slice(&more[..n]),
                }
            }
            Err(e) => {
                return Err(format!(
                    "the state is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&data)
                ));
            }
        }
    };

    let mut seen = Vec::new();
    let mut answers = answers.into_iter();
    loop {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, 50) };
        if r < 0 {
            continue;
        }
        if r == 0 || p.revents & libc::POLLIN == 0 {
            // POLLHUP: no task uses the filter any more.
            if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 || stop.load(Ordering::SeqCst) {
                break;
            }
            if Instant::now() >= deadline {
                return Err("agent timed out".into());
            }
            continue;
        }
        // SAFETY: an all-zero seccomp_notif is what NOTIF_RECV requires.
        let mut n: SeccompNotif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl fills a seccomp_notif.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut n) };
        if r < 0 {
            // ENOENT: the caller went away meanwhile.
            continue;
        }
        let cgroup = fs::read_to_string(format!("/proc/{}/cgroup", n.pid)).unwrap_or_default();
        seen.push(Seen {
            nr: n.data.nr,
            cgroup,
        });
        let errno = answers.next().unwrap_or(0);
        let (error, flags) = if errno < 0 { (0, 1) } else { (-errno, 0) };
        let resp = SeccompNotifResp {
            id: n.id,
            val: 0,
            error,
            flags,
        };
        // SAFETY: the ioctl reads a seccomp_notif_resp.
        unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &resp) };
    }
    Ok(AgentReport { state, seen })
}

/// SCMP_ACT_NOTIFY: the runtime hands the listener fd and the container
/// state to the agent at `listenerPath`; the agent answers the first
/// mkdir with EDQUOT and the second with success without creating
/// anything, and the container sees exactly that.
#[test]
fn seccomp_notify_agent_answers() {
    let env = test_env!();
    let agent = NotifyAgent::start(env.dir.join("agent.sock"), vec![libc::EDQUOT, 0]);
    let script = "mkdir /mnt/a; echo rc1=$?; mkdir /mnt/b; echo rc2=$?; \
                  ls /mnt; echo end";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        tmpfs_on_mnt(s);
        set(
            s,
            "/linux/seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": agent.path.to_str().unwrap(),
                "listenerMetadata": "it-metadata",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
            }),
        );
    });
    let report = agent.finish();
    out.ok();
    let report = report.unwrap_or_else(|e| panic!("agent: {e}\n{out}"));
    // Both mkdirs reached the agent, and the second "succeeded" without a
    // directory appearing.
    assert_eq!(out.lines(), vec!["rc1=1", "rc2=0", "end"], "{out}");
    out.stderr_has_all(&["Disk quota exceeded"]);
    assert_eq!(report.seen.len(), 2, "notifications: {:?}", report.seen);
    for s in &report.seen {
        assert!(
            [libc::SYS_mkdir as i32, libc::SYS_mkdirat as i32].contains(&s.nr),
            "notification for syscall {}",
            s.nr
        );
        assert!(
            s.cgroup.contains(&env.cgroups_path()),
            "the caller is not in the container's cgroup: {:?}",
            s.cgroup
        );
    }
    let st = &report.state;
    assert!(st["ociVersion"].is_string(), "state: {st}");
    assert_eq!(st["fds"], json!(["seccompFd"]), "state: {st}");
    assert!(st["pid"].as_i64().is_some_and(|p| p > 0), "state: {st}");
    assert_eq!(st["metadata"], "it-metadata", "state: {st}");
    assert_eq!(st["state"]["id"], json!(env.id), "state: {st}");
    assert!(
        ["creating", "created"].contains(&st["state"]["status"].as_str().unwrap_or("")),
        "state: {st}"
    );
}

/// A notify rule on a syscall rrun itself makes after loading the filter
/// (fcntl: sealing the exec trampoline, F_SETFD) must not deadlock: the
/// listener reaches the agent before any such call, with and without
/// noNewPrivileges (which decides when the filter goes in).
#[test]
fn seccomp_notify_on_fcntl_does_not_deadlock() {
    for nnp in [false, true] {
        let env = TestEnv::new(&format!("notify-fcntl-nnp-{nnp}"));
        // Every fcntl goes on as asked (CONTINUE).
        let agent = NotifyAgent::start(env.dir.join("agent.sock"), vec![-1; 64]);
        let started = Instant::now();
        let out = env.run_capture(&["sh", "-c", "echo fine"], |s| {
            set(s, "/process/noNewPrivileges", json!(nnp));
            set(
                s,
                "/linux/seccomp",
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "listenerPath": agent.path.to_str().unwrap(),
                    "syscalls": [{"names": ["fcntl"], "action": "SCMP_ACT_NOTIFY"}],
                }),
            );
        });
        let report = agent.finish();
        out.ok();
        assert_eq!(out.lines(), vec!["fine"], "noNewPrivileges {nnp}: {out}");
        assert!(started.elapsed() < Duration::from_secs(30));
        let report = report.unwrap_or_else(|e| panic!("agent: {e}\n{out}"));
        assert!(report.state["pid"].as_i64().is_some_and(|p| p > 0));
    }
}

// ---------------------------------------------------------------------------
// Masked paths (the existing `mounts::masked_and_readonly_paths` covers a
// masked /proc file and a read-only /proc/sys)

/// A masked directory is an empty read-only tmpfs, a masked file reads
/// empty (it is /dev/null), writes go nowhere, and the files under the mask
/// are untouched; a masked path that does not exist is skipped, not created.
#[test]
fn masked_dir_and_file_details() {
    let env = test_env!();
    let data = env.host_dir("data");
    fs::create_dir(data.join("secret-dir")).unwrap();
    fs::write(data.join("secret-dir/inner"), "inner\n").unwrap();
    fs::write(data.join("secret-file"), "secret\n").unwrap();
    let script = "ls -A /mnt/secret-dir | wc -l; \
                  awk '$2 == \"/mnt/secret-dir\" { split($4, o, \",\"); print $3, o[1] }' /proc/self/mounts; \
                  touch /mnt/secret-dir/x; echo dir-touch=$?; \
                  wc -c < /mnt/secret-file; \
                  stat -c '%F %t:%T' /mnt/secret-file; \
                  echo overwritten > /mnt/secret-file; \
                  wc -c < /mnt/secret-file; \
                  ls -A /sys/firmware | wc -l; \
                  touch /sys/firmware/x; echo fw-touch=$?; \
                  [ -e /mnt/not-there ] && echo not-there-created || echo not-there-absent";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        add_mount(s, bind_mount(&data, "/mnt", &["rbind", "rw"]));
        let masked = s["linux"]["maskedPaths"].as_array_mut().unwrap();
        for p in ["/mnt/secret-dir", "/mnt/secret-file", "/mnt/not-there"] {
            masked.push(json!(p));
        }
        assert!(masked.contains(&json!("/sys/firmware")));
    });
    out.ok();
    assert_eq!(
        out.lines(),
        vec![
            "0",
            "tmpfs ro",
            "dir-touch=1",
            "0",
            "character special file 1:3",
            "0",
            "0",
            "fw-touch=1",
            "not-there-absent",
        ],
        "{out}"
    );
    assert_eq!(
        out.stderr.matches("Read-only file system").count(),
        2,
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(data.join("secret-file")).unwrap(),
        "secret\n"
    );
    assert_eq!(
        fs::read_to_string(data.join("secret-dir/inner")).unwrap(),
        "inner\n"
    );
    let mut names: Vec<String> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["secret-dir", "secret-file"]);
    assert_eq!(fs::read_dir(data.join("secret-dir")).unwrap().count(), 1);
}

/// A read-only path outside /proc (a directory of a writable bind): writes
/// below it fail with EROFS (in subdirectories too), and the rest of the
/// bind stays writable.
#[test]
fn readonly_path_on_a_bind_subdir() {
    let env = test_env!();
    let data = env.host_dir("data");
    fs::create_dir_all(data.join("ro-dir/sub")).unwrap();
    fs::write(data.join("ro-dir/file"), "original\n").unwrap();
    let script = "echo changed > /mnt/ro-dir/file; echo file=$?; \
                  touch /mnt/ro-dir/new; echo new=$?; \
                  touch /mnt/ro-dir/sub/new; echo sub=$?; \
                  echo ok > /mnt/rw-file; echo rw=$?; \
                  cat /mnt/ro-dir/file";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        add_mount(s, bind_mount(&data, "/mnt", &["rbind", "rw"]));
        s["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/mnt/ro-dir"));
    });
    out.ok();
    assert_eq!(
        out.lines(),
        vec!["file=1", "new=1", "sub=1", "rw=0", "original"],
        "{out}"
    );
    assert_eq!(
        out.stderr.matches("Read-only file system").count(),
        3,
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(data.join("ro-dir/file")).unwrap(),
        "original\n"
    );
    assert!(!data.join("ro-dir/new").exists());
    assert!(!data.join("ro-dir/sub/new").exists());
    assert_eq!(fs::read_to_string(data.join("rw-file")).unwrap(), "ok\n");
}

// ---------------------------------------------------------------------------
// sysctl

fn host_sysctl(key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn sysctl_set_in_own_net_and_ipc_namespaces() {
    let env = test_env!();
    let fwd_before = host_sysctl("net.ipv4.ip_forward");
    let shm_before = host_sysctl("kernel.shmmax");
    // Values that differ from the host's, so they must have been set.
    let fwd = if fwd_before == "1" { "0" } else { "1" };
    let shm = if shm_before == "123456789" {
        "987654321"
    } else {
        "123456789"
    };
    let out = env.sh_ok(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
        |s| {
            set(
                s,
                "/linux/sysctl",
                json!({"net.ipv4.ip_forward": fwd, "kernel.shmmax": shm}),
            );
        },
    );
    assert_eq!(out.lines(), vec![fwd, shm], "{out}");
    assert_eq!(host_sysctl("net.ipv4.ip_forward"), fwd_before);
    assert_eq!(host_sysctl("kernel.shmmax"), shm_before);
}

/// Keys no namespace covers would change the host: refused, naming the key.
/// The value asked for is the host's current one, so even a runtime that
/// wrongly wrote it would not change the machine.
#[test]
fn sysctl_not_namespaced_rejected() {
    let env = test_env!();
    for key in ["kernel.panic", "vm.swappiness"] {
        let before = host_sysctl(key);
        let out = env.run_capture(&["true"], |s| {
            set(s, "/linux/sysctl", json!({ key: before }));
        });
        out.failed();
        out.stderr_has_all(&[key]);
        env.assert_clean();
        assert_eq!(host_sysctl(key), before);
    }
}

/// A namespaced key whose namespace the container does not own (it shares
/// the host's) is refused too.
#[test]
fn sysctl_without_its_namespace_rejected() {
    let env = test_env!();
    for (key, ns) in [("net.ipv4.ip_forward", "network"), ("kernel.shmmax", "ipc")] {
        let before = host_sysctl(key);
        let out = env.run_capture(&["true"], |s| {
            remove_namespace(s, ns);
            set(s, "/linux/sysctl", json!({ key: before }));
        });
        out.failed();
        out.stderr_has_all(&[key]);
        env.assert_clean();
        assert_eq!(host_sysctl(key), before);
    }
}

// ---------------------------------------------------------------------------
// AppArmor and SELinux (this host has neither)

fn lsm_enabled(name: &str) -> bool {
    fs::read_to_string("/sys/kernel/security/lsm")
        .map(|l| l.split(',').any(|m| m.trim() == name))
        .unwrap_or(false)
}

#[test]
fn apparmor_profile_refused_without_apparmor() {
    let env = test_env!();
    if lsm_enabled("apparmor") {
        eprintln!("AppArmor is enabled on this host: skipped");
        return;
    }
    let out = env.run_capture(&["true"], |s| {
        set(s, "/process/apparmorProfile", json!("foo"));
    });
    out.failed();
    out.stderr_has_all(&["apparmor"]);
    env.assert_clean();
}

#[test]
fn apparmor_unconfined_accepted() {
    let env = test_env!();
    let out = env.sh_ok("echo ran", |s| {
        set(s, "/process/apparmorProfile", json!("unconfined"));
    });
    assert_eq!(out.lines(), vec!["ran"], "{out}");
}

#[test]
fn selinux_label_refused_without_selinux() {
    let env = test_env!();
    if lsm_enabled("selinux") {
        eprintln!("SELinux is enabled on this host: skipped");
        return;
    }
    let out = env.run_capture(&["true"], |s| {
        set(
            s,
            "/process/selinuxLabel",
            json!("system_u:system_r:container_t:s0"),
        );
    });
    out.failed();
    out.stderr_has_all(&["selinux"]);
    env.assert_clean();
}

/// A capability name the runtime does not know is warned about and left out, as runc does
/// (a newer kernel's name in a shared config must not stop the container).
#[test]
fn unknown_capabilities_are_warned_and_ignored() {
    let env = test_env!();
    let out = env.run_capture(&["sh", "-c", "grep CapBnd /proc/self/status"], |s| {
        let caps = &mut s["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            caps[set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_NOT_A_REAL_ONE"));
        }
    });
    out.ok();
    out.stderr_has_all(&["CAP_NOT_A_REAL_ONE"]);
    assert!(out.stdout.contains("CapBnd"), "{out}");
}

/// `--no-pivot`: the host's /proc and /sys stay in the mount namespace under the chroot, and
/// a fully visible procfs there would let a nested user namespace mount a fresh one (the
/// kernel's mount_too_revealing check passes). runc hides those mounts before the chroot;
/// so does rrun: the nested mount is refused.
#[test]
fn no_pivot_nested_userns_cannot_mount_procfs() {
    let env = test_env!();
    let mut spec = env.spec();
    // A nested user namespace with its own pid namespace, as a container with CAP_SETFCAP
    // (needed to map root, Linux 5.12) can make; with pivot_root it cannot mount a procfs.
    set_script(
        &mut spec,
        "unshare -U -r -m -p -f sh -c 'mkdir -p /tmp/p; mount -t proc proc /tmp/p 2>/dev/null && echo mounted || echo refused'",
    );
    for set_name in ["bounding", "effective", "permitted"] {
        spec["process"]["capabilities"][set_name]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SETFCAP"));
    }
    add_mount(
        &mut spec,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}),
    );
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    for pivot in [&[][..], &["--no-pivot"][..]] {
        let mut args = vec!["run"];
        args.extend_from_slice(pivot);
        args.extend(["--bundle", &bundle, &env.id]);
        let out = env.rt(&args);
        out.ok();
        assert_eq!(out.lines(), ["refused"], "{pivot:?}: {out}");
    }
    env.assert_clean();
}
