//! Namespaces, observed from inside the container and from the host.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

#[test]
fn pid_namespace_init_is_pid_1() {
    let env = test_env!();
    let out = env.sh_ok("echo $$; ls -d /proc/[0-9]* | wc -l", |_| {});
    let lines = out.lines();
    assert_eq!(lines[0], "1", "{out}");
    // /proc belongs to the new pid namespace: only the container's few
    // processes are visible.
    let n: usize = lines[1].parse().unwrap();
    assert!(n < 10, "{n} processes visible in /proc:\n{out}");
}

#[test]
fn uts_namespace_hostname() {
    let env = test_env!();
    let before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = env.sh_ok("hostname; cat /proc/sys/kernel/hostname", |s| {
        set(s, "/hostname", json!("it-uts-host"));
    });
    assert_eq!(out.lines(), vec!["it-uts-host", "it-uts-host"], "{out}");
    let after = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(before, after, "host hostname changed");
}

#[test]
fn new_network_namespace_has_only_lo() {
    let env = test_env!();
    let out = env.sh_ok(
        "ls /sys/class/net; echo --; tail -n +3 /proc/net/dev | cut -d: -f1",
        |_| {},
    );
    assert_eq!(out.lines(), vec!["lo", "--", "lo"], "{out}");
}

/// Namespaces listed in the config are new; the others are inherited from
/// the runtime (runtime-spec: "If a namespace type is not specified in the
/// namespaces array, the container MUST inherit the runtime namespace of
/// that type").
#[test]
fn namespaces_new_or_inherited_per_config() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_ok(&spec);
    let pid = env.init_pid();
    let ns = |who: &str, name: &str| {
        fs::read_link(format!("/proc/{who}/ns/{name}"))
            .unwrap_or_else(|e| panic!("/proc/{who}/ns/{name}: {e}"))
    };
    let me = std::process::id().to_string();
    let pid = pid.to_string();
    for name in ["pid", "net", "ipc", "uts", "mnt"] {
        assert_ne!(ns(&me, name), ns(&pid, name), "{name} namespace not new");
    }
    for name in ["user", "cgroup", "time"] {
        if Path::new(&format!("/proc/self/ns/{name}")).exists() {
            assert_eq!(ns(&me, name), ns(&pid, name), "{name} namespace changed");
        }
    }
}

/// A new cgroup namespace is made after init has joined its cgroup (on v1 rrun makes that
/// cgroup while init sets up, and init unshares the namespace only once it is in it): every
/// hierarchy then shows the container's cgroup as its root, `/`.
#[test]
fn cgroup_namespace_rooted_at_the_container_cgroup() {
    let env = test_env!();
    let out = env.sh_ok("cat /proc/self/cgroup", |s| {
        add_namespace(s, json!({"type": "cgroup"}));
    });
    let lines = out.lines();
    assert!(!lines.is_empty(), "{out}");
    for l in &lines {
        assert!(
            l.ends_with(":/"),
            "{l:?} is not at the namespace root\n{out}"
        );
    }
}

#[test]
fn user_namespace_mappings() {
    let env = test_env!();
    let out = env.sh_ok(
        "cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; id -g",
        |s| {
            add_namespace(s, json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            set(s, "/linux/uidMappings", map.clone());
            set(s, "/linux/gidMappings", map);
            // Mounting cgroupfs from inside a user namespace is runtime- and
            // cgroup-version-specific (it needs a cgroup namespace for v2,
            // runc bind-mounts the v1 hierarchies); it is not what this test
            // is about.
            remove_mount(s, "/sys/fs/cgroup");
        },
    );
    let lines: Vec<String> = out
        .lines()
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        vec!["0 100000 65536", "0 100000 65536", "0", "0"],
        "{out}"
    );
}

#[test]
fn time_namespace_offsets() {
    let env = test_env!();
    // runc 1.1 predates time namespace support (added in runc 1.2); a runtime
    // that says so in its `features` document is skipped, any other runtime
    // must honour linux.timeOffsets.
    if let Some(ns) = runtime_features()
        .as_ref()
        .and_then(|f| f.pointer("/linux/namespaces"))
        .and_then(Value::as_array)
        && !ns.iter().any(|n| n == "time")
    {
        eprintln!(
            "SKIPPED {}: the runtime's `features` does not list the time namespace",
            env.name
        );
        return;
    }
    let ten_days: u64 = 86400 * 10;
    let host_uptime = uptime(&fs::read_to_string("/proc/uptime").unwrap());
    let out = env.sh_ok("cat /proc/uptime; cat /proc/self/timens_offsets", |s| {
        add_namespace(s, json!({"type": "time"}));
        let off = json!({"secs": ten_days, "nanosecs": 0});
        set(
            s,
            "/linux/timeOffsets",
            json!({"monotonic": off, "boottime": off}),
        );
    });
    let inside = uptime(&out.stdout);
    assert!(
        inside >= host_uptime + ten_days as f64,
        "uptime inside {inside}, host {host_uptime}:\n{out}"
    );
    for clock in ["monotonic", "boottime"] {
        assert!(
            out.lines().iter().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() == 3 && f[0] == clock && f[1] == ten_days.to_string()
            }),
            "no {clock} offset in timens_offsets:\n{out}"
        );
    }
}

fn uptime(text: &str) -> f64 {
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse uptime from {text:?}"))
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        host("ip", &["netns", "add", &name]);
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_cmd(
            Command::new("ip").args(["netns", "del", &self.0]),
            CMD_TIMEOUT,
        );
    }
}

#[test]
fn join_existing_network_namespace() {
    // Declared before the TestEnv so it is dropped after the container is
    // deleted.
    let netns = Netns::new(format!("rit-{}-join", std::process::id()));
    let env = test_env!();
    let name = netns.0.clone();
    host(
        "ip",
        &["-n", &name, "addr", "add", "10.231.7.1/32", "dev", "lo"],
    );
    host("ip", &["-n", &name, "link", "set", "lo", "up"]);
    let path = format!("/var/run/netns/{name}");
    let out = env.sh_ok("ip -o addr show; echo --; ls /sys/class/net", |s| {
        for ns in namespaces(s).iter_mut() {
            if ns["type"] == "network" {
                ns["path"] = json!(path);
            }
        }
    });
    assert!(out.stdout.contains("10.231.7.1"), "{out}");
    assert!(out.stdout.ends_with("--\nlo\n"), "{out}");
    // The runtime must leave a joined namespace alone.
    assert!(Path::new(&path).exists(), "{path} disappeared");
    let after = host("ip", &["-n", &name, "-o", "addr", "show", "dev", "lo"]);
    assert!(after.stdout.contains("10.231.7.1"), "{after}");
    drop(env);
}

/// Without a mount namespace the container runs in the host's mounts, chrooted into its
/// rootfs, as runc does (nothing is mounted or pivoted on the host); masked and read-only
/// paths, which would need mounts, are refused as runc refuses them.
#[test]
fn no_mount_namespace_runs_in_the_hosts() {
    let env = test_env!();
    let no_mounts = |s: &mut serde_json::Value| {
        remove_namespace(s, "mount");
        // runc refuses masked and read-only paths it could only apply to the host's mounts.
        set(s, "/linux/maskedPaths", json!([]));
        set(s, "/linux/readonlyPaths", json!([]));
    };
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    no_mounts(&mut spec);
    env.create_and_start(&spec);
    let init = env.init_pid();
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(
        ns(&init.to_string()),
        ns("self"),
        "not the host's mount namespace"
    );
    let root = std::fs::read_link(format!("/proc/{init}/root")).unwrap();
    assert_eq!(
        std::fs::canonicalize(&root).unwrap(),
        std::fs::canonicalize(shared_rootfs()).unwrap(),
        "its root is not the rootfs"
    );
    env.rt(&["delete", "--force", &env.id]).ok();
    env.wait_init();
    // Nothing of the container's went onto the host: no mount on its rootfs (others' mounts
    // come and go as the tests run in parallel, so the table is not compared whole).
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs = shared_rootfs();
    let rootfs = rootfs.to_str().unwrap();
    assert!(
        !after.lines().any(|l| l
            .split_whitespace()
            .nth(4)
            .is_some_and(|m| m.starts_with(rootfs))),
        "a mount on the rootfs in the host's table"
    );
    let mut spec = env.spec();
    remove_namespace(&mut spec, "mount");
    env.write_bundle(&spec);
    env.create(&env.id)
        .failed()
        .stderr_has_all(&["without a private m"]);
    env.assert_clean();
}

/// A process holding namespaces made by `unshare ARGS sleep`, killed and reaped on drop.
struct Holder(std::process::Child);

impl Holder {
    fn new(args: &[&str], kinds: &[&str]) -> Holder {
        let child = std::process::Command::new("unshare")
            .args(args)
            .args(["sleep", "1000"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let h = Holder(child);
        let pid = h.0.id();
        assert!(
            wait_until(std::time::Duration::from_secs(5), || kinds.iter().all(
                |k| {
                    fs::read_link(format!("/proc/{pid}/ns/{k}")).ok()
                        != fs::read_link(format!("/proc/self/ns/{k}")).ok()
                }
            )),
            "unshare {args:?} did not make its namespaces"
        );
        h
    }

    fn ns(&self, kind: &str) -> String {
        format!("/proc/{}/ns/{kind}", self.0.id())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// As root: a user namespace joined by path (with its own maps) and a network namespace
/// of the host's, by path. The network namespace must be joined before the user namespace
/// (from it, the host's is out of reach): runc 1.3 and nsenter(1) join what they can with
/// their own credentials first. runc 1.1 joins the user namespace first and fails
/// (opencontainers/runc#4390).
#[test]
fn userns_by_path_with_the_hosts_netns_by_path() {
    let env = test_env!();
    if runtime_bin().to_string_lossy().ends_with("runc") {
        eprintln!(
            "SKIPPED {}: runc 1.1 joins the user namespace first (runc#4390)",
            env.name
        );
        return;
    }
    let user = Holder::new(&["--user"], &["user"]);
    let pid = user.0.id();
    fs::write(format!("/proc/{pid}/uid_map"), "0 100000 65536\n").unwrap();
    fs::write(format!("/proc/{pid}/gid_map"), "0 100000 65536\n").unwrap();
    let net = Holder::new(&["--net"], &["net"]);
    let net_ino = fs::read_link(net.ns("net")).unwrap();
    let user_ino = fs::read_link(user.ns("user")).unwrap();
    let out = env.sh_ok(
        "cat /proc/self/uid_map; readlink /proc/self/ns/net; readlink /proc/self/ns/user; id -u",
        |s| {
            remove_namespace(s, "network");
            add_namespace(s, json!({"type": "user", "path": user.ns("user")}));
            add_namespace(s, json!({"type": "network", "path": net.ns("net")}));
            // sysfs needs a network namespace of the container's user namespace; cgroupfs
            // from a user namespace is not what this is about.
            remove_mount(s, "/sys/fs/cgroup");
            remove_mount(s, "/sys");
            add_mount(
                s,
                json!({"destination": "/sys", "type": "none", "source": "/sys",
                       "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
            );
        },
    );
    let l = out.lines();
    assert_eq!(
        l[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{out}"
    );
    assert_eq!(l[1], net_ino.to_string_lossy(), "{out}");
    assert_eq!(l[2], user_ino.to_string_lossy(), "{out}");
    assert_eq!(l[3], "0", "{out}");
}

/// A user namespace joined by path, like a new one, gets bind sources its root cannot reach
/// on the host (in a 0700 root-owned dir) opened for it by the runtime with the host's
/// credentials, before its own mounts.
#[test]
fn joined_userns_bind_source_behind_a_private_dir() {
    let env = test_env!();
    let user = Holder::new(&["--user"], &["user"]);
    let pid = user.0.id();
    fs::write(format!("/proc/{pid}/uid_map"), "0 100000 65536\n").unwrap();
    fs::write(format!("/proc/{pid}/gid_map"), "0 100000 65536\n").unwrap();
    let private = env.host_dir("private");
    let inner = private.join("inner");
    fs::create_dir_all(&inner).unwrap();
    fs::write(inner.join("f"), "hidden\n").unwrap();
    Command::new("chmod")
        .args(["700", private.to_str().unwrap()])
        .status()
        .unwrap();
    let src = inner.to_str().unwrap().to_string();
    let out = env.sh_ok("cat /mnt/f; id -u", |s| {
        add_namespace(s, json!({"type": "user", "path": user.ns("user")}));
        // The joined user namespace owns no network namespace the container could make
        // sysfs for; bind the host's.
        remove_mount(s, "/sys/fs/cgroup");
        remove_mount(s, "/sys");
        add_mount(
            s,
            json!({"destination": "/sys", "type": "none", "source": "/sys",
                   "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
        );
        add_mount(
            s,
            json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
        );
    });
    assert_eq!(out.lines(), ["hidden", "0"], "{out}");
}
