//! `process` fields, checked from inside the container.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::json;

use crate::common::*;

/// The value of `key:` in /proc/self/status output, whitespace-normalised.
fn status_field(out: &Out, key: &str) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: line:\n{out}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn user_uid_gid_additional_gids() {
    let env = test_env!();
    let out = env.sh_ok("id -u; id -g; cat /proc/self/status", |s| {
        set(
            s,
            "/process/user",
            json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 65534]}),
        );
    });
    let lines = out.lines();
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "1001", "{out}");
    assert_eq!(status_field(&out, "Uid"), "1000 1000 1000 1000", "{out}");
    assert_eq!(status_field(&out, "Gid"), "1001 1001 1001 1001", "{out}");
    let groups: BTreeSet<u32> = status_field(&out, "Groups")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    // Exactly the additional gids; listing the primary gid too is harmless,
    // anything else (e.g. the runtime's own groups) is not.
    assert!(
        groups.contains(&5) && groups.contains(&65534),
        "groups {groups:?}"
    );
    assert!(
        groups.iter().all(|g| [5, 65534, 1001].contains(g)),
        "groups {groups:?}"
    );
}

#[test]
fn umask_from_config() {
    let env = test_env!();
    let out = env.sh_ok(
        "umask; touch /dev/shm/f; mkdir /dev/shm/d; stat -c %a /dev/shm/f /dev/shm/d",
        |s| set(s, "/process/user/umask", json!(0o027)),
    );
    assert_eq!(out.lines(), vec!["0027", "640", "750"], "{out}");
}

#[test]
fn rlimit_nofile() {
    let env = test_env!();
    // Hard limit stays below the host's, which root cannot exceed without
    // CAP_SYS_RESOURCE.
    let out = env.sh_ok(
        "ulimit -n; ulimit -Hn; grep 'Max open files' /proc/self/limits",
        |s| {
            set(
                s,
                "/process/rlimits",
                json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]),
            );
        },
    );
    let lines = out.lines();
    assert_eq!(lines[0], "512", "{out}");
    assert_eq!(lines[1], "1024", "{out}");
    let limits: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(limits[3..5], ["512", "1024"], "{out}");
}

#[test]
fn no_new_privileges_true() {
    let env = test_env!();
    let out = env.sh_ok("cat /proc/self/status", |s| {
        set(s, "/process/noNewPrivileges", json!(true))
    });
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");
}

#[test]
fn no_new_privileges_false() {
    let env = test_env!();
    // Without noNewPrivileges the flag is whatever the runtime inherited
    // (it can never be cleared); on a normal host that is 0.
    let host = fs::read_to_string("/proc/self/status").unwrap();
    let host = host
        .lines()
        .find_map(|l| l.strip_prefix("NoNewPrivs:"))
        .unwrap()
        .trim()
        .to_string();
    let out = env.sh_ok("cat /proc/self/status", |s| {
        set(s, "/process/noNewPrivileges", json!(false))
    });
    assert_eq!(status_field(&out, "NoNewPrivs"), host, "{out}");
}

#[test]
fn oom_score_adj_from_config() {
    let env = test_env!();
    // Raising is always allowed; lowering below the current value would need
    // CAP_SYS_RESOURCE.
    let own: i64 = fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let want = (own.max(0) + 1000) / 2;
    let out = env.sh_ok("cat /proc/self/oom_score_adj", |s| {
        set(s, "/process/oomScoreAdj", json!(want))
    });
    assert_eq!(out.lines(), vec![want.to_string()], "{out}");
}

#[test]
fn env_is_process_env() {
    let env = test_env!();
    let configured = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FOO=bar baz",
        "EMPTY=",
        "WITH_EQUALS=a=b",
    ];
    let mut spec = env.spec();
    let token = spec["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .find(|v| v.starts_with("RRUN_IT_TOKEN="))
        .unwrap()
        .to_string();
    set(&mut spec, "/process/env", json!(configured));
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!(token));
    // `env` itself is the container process: it prints exactly the
    // environment the runtime set up.
    set_args(&mut spec, &["env"]);
    let out = env.run_spec(&spec);
    out.ok();
    let got: Vec<&str> = out.stdout.lines().collect();
    for want in configured {
        assert!(got.contains(&want), "{want:?} missing:\n{out}");
    }
    assert!(
        !out.stdout.contains(LEAK_VAR),
        "the runtime's environment leaked into the container:\n{out}"
    );
    // runc adds HOME (from /etc/passwd) when the config has none.
    for line in got {
        assert!(
            configured.contains(&line) || line == token || line.starts_with("HOME="),
            "unexpected variable {line:?}:\n{out}"
        );
    }
}

#[test]
fn args_passed_verbatim() {
    let env = test_env!();
    let out = env.run_capture(
        &[
            "sh",
            "-c",
            "for a in \"$@\"; do echo \"[$a]\"; done",
            "argv0",
            "a b",
            "",
            "c'd\"e",
            "$HOME",
        ],
        |_| {},
    );
    out.ok();
    assert_eq!(out.stdout, "[a b]\n[]\n[c'd\"e]\n[$HOME]\n", "{out}");
}

#[test]
fn cwd_existing_dir() {
    let env = test_env!();
    let out = env.sh_ok("pwd", |s| set(s, "/process/cwd", json!("/tmp")));
    assert_eq!(out.stdout, "/tmp\n", "{out}");
}

/// A cwd missing from the rootfs: the runtime-spec only says cwd MUST be
/// absolute, not that it must exist. runc creates it (before making the
/// rootfs read-only); failing with a clear error would be compliant too. It
/// must never be created on the host.
#[test]
fn cwd_missing_dir() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let top = format!("/it-cwd-{}", std::process::id());
    let cwd = format!("{top}/sub");
    let out = env.run_capture(&["pwd"], |s| {
        set(s, "/root/path", json!(rootfs.to_str().unwrap()));
        set(s, "/process/cwd", json!(cwd));
    });
    if out.success() {
        assert_eq!(out.stdout, format!("{cwd}\n"), "{out}");
    } else {
        out.stderr_has_any(&["cwd", &cwd, "no such file"]);
    }
    assert!(!Path::new(&top).exists(), "{top} was created on the host");
    assert!(
        !shared_rootfs().join(top.trim_start_matches('/')).exists(),
        "shared rootfs modified"
    );
}

/// The environment has one entry per name, the last value winning (runc's prepareEnv); an
/// empty HOME is filled from the user's passwd entry in the rootfs; `exec --env K=V` replaces
/// the spec's K instead of adding a second one.
#[test]
fn env_duplicates_and_empty_home() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    for kv in ["DUP=first", "HOME=", "DUP=second", "KEEP=1"] {
        push_env(&mut spec, kv);
    }
    env.create_and_start(&spec);
    let out = env.rt(&["exec", &env.id, "env"]);
    out.ok();
    let lines = out.lines();
    let dup: Vec<&String> = lines.iter().filter(|l| l.starts_with("DUP=")).collect();
    assert_eq!(dup, ["DUP=second"], "{out}");
    assert!(lines.iter().any(|l| l == "HOME=/root"), "{out}");
    assert!(!lines.iter().any(|l| l == "HOME="), "{out}");
    let out = env.rt(&["exec", "--env", "KEEP=2", &env.id, "env"]);
    out.ok();
    let keep: Vec<String> = out
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("KEEP="))
        .collect();
    assert_eq!(keep, ["KEEP=2"], "{out}");
    env.rt(&["delete", "--force", &env.id]).ok();
}

/// process.cwd is entered before the process drops to its user (runc): a root-only 0700
/// directory works as the cwd of a non-root process.
#[test]
fn cwd_is_entered_before_the_user_changes() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    std::fs::create_dir_all(rootfs.join("private")).unwrap();
    host("chmod", &["0700", rootfs.join("private").to_str().unwrap()]);
    let mut spec = env.spec();
    set(
        &mut spec,
        "/root/path",
        serde_json::json!(rootfs.to_str().unwrap()),
    );
    set(&mut spec, "/process/cwd", serde_json::json!("/private"));
    set(
        &mut spec,
        "/process/user",
        serde_json::json!({"uid": 1000, "gid": 1000}),
    );
    set_args(&mut spec, &["sh", "-c", "pwd; id -u"]);
    env.write_bundle(&spec);
    let out = env.run_spec(&spec);
    out.ok();
    assert_eq!(out.lines(), ["/private", "1000"], "{out}");
}

/// An ambient capability the kernel cannot raise (not inheritable, or not permitted) is left
/// out with a warning naming it (runc: "can't raise ambient capability") for a non-root
/// process, whose capabilities come from it; one that is both is raised. Either way the
/// container runs. For root (`spec`'s default lists ambient without inheritable) no warning.
#[test]
fn ambient_capabilities_not_inheritable_warn() {
    let env = test_env!();
    let quiet = env.sh_ok("true", |_| {});
    assert!(!quiet.stderr.contains("ambient"), "{quiet}");
    let out = env.sh_ok("grep CapAmb /proc/self/status", |s| {
        set(s, "/process/user", json!({"uid": 1000, "gid": 1000}));
        set(
            s,
            "/process/capabilities",
            json!({
                "bounding": ["CAP_KILL", "CAP_CHOWN"],
                "effective": ["CAP_KILL", "CAP_CHOWN"],
                "permitted": ["CAP_KILL", "CAP_CHOWN"],
                "inheritable": ["CAP_CHOWN"],
                "ambient": ["CAP_KILL", "CAP_CHOWN"],
            }),
        );
    });
    // CAP_CHOWN is bit 0.
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000001", "{out}");
    let warned = out.stderr.to_lowercase();
    assert!(
        warned.contains("warn") && warned.contains("ambient") && warned.contains("cap_kill"),
        "no warning about CAP_KILL\n{out}"
    );
    assert!(
        !warned.contains("cap_chown"),
        "CAP_CHOWN needs no warning\n{out}"
    );
}

/// process.ioPriority, process.scheduler, linux.personality and linux.memoryPolicy reach
/// the process (runtime-spec 1.2; runc 1.2+), for init and for exec, and a config that
/// cannot be applied fails naming its field and leaves nothing behind.
#[test]
fn scheduler_io_priority_personality_memory_policy() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    set(
        &mut spec,
        "/process/ioPriority",
        json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7}),
    );
    set(
        &mut spec,
        "/process/scheduler",
        json!({"policy": "SCHED_BATCH", "nice": 5}),
    );
    set(
        &mut spec,
        "/linux/personality",
        json!({"domain": "LINUX32"}),
    );
    set(
        &mut spec,
        "/linux/memoryPolicy",
        json!({"mode": "MPOL_BIND", "nodes": "0"}),
    );
    env.create_and_start(&spec);
    let pid = env.init_pid();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 19 (nice) and 41 (policy), counted from 1 with pid and comm first.
    assert_eq!(
        (f[19 - 3], f[41 - 3]),
        ("5", "3"),
        "nice, policy (SCHED_BATCH = 3)"
    );
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/personality"))
            .unwrap()
            .trim(),
        "00000008"
    );
    // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid).
    let io = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid) };
    assert_eq!(io, (3 << 13) | 7, "ioprio class IDLE, level 7");
    let numa = fs::read_to_string(format!("/proc/{pid}/numa_maps")).unwrap_or_default();
    if !numa.is_empty() {
        assert!(numa.contains("bind:0"), "{numa}");
    }
    // exec'd processes get the same.
    let out = env.rt(&[
        "exec",
        &env.id,
        "sh",
        "-c",
        "cat /proc/self/personality; ionice -p $$",
    ]);
    out.ok();
    assert_eq!(out.lines(), ["00000008", "idle"], "{out}");
    env.rt(&["delete", "--force", &env.id]).ok();
    env.wait_init();
    env.assert_clean();

    for (ptr, value, needle) in [
        (
            "/process/scheduler",
            json!({"policy": "SCHED_OTHER", "priority": 3}),
            "process.scheduler.priority",
        ),
        (
            "/process/scheduler",
            json!({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 5}),
            "process.scheduler",
        ),
        (
            "/process/ioPriority",
            json!({"class": "IOPRIO_CLASS_BE", "priority": 8}),
            "process.ioPriority",
        ),
        (
            "/linux/memoryPolicy",
            json!({"mode": "MPOL_BIND"}),
            "linux.memoryPolicy.nodes",
        ),
    ] {
        let mut bad = env.spec();
        set(&mut bad, ptr, value.clone());
        env.write_bundle(&bad);
        env.create(&env.id).failed().stderr_has_all(&[needle]);
        env.assert_clean();
    }
    // SCHED_DEADLINE with a cpuset is refused (runc).
    let mut bad = env.spec();
    set(
        &mut bad,
        "/process/scheduler",
        json!({"policy": "SCHED_DEADLINE", "runtime": 1000000, "deadline": 2000000, "period": 2000000}),
    );
    set(&mut bad, "/linux/resources/cpu", json!({"cpus": "0"}));
    env.write_bundle(&bad);
    env.create(&env.id)
        .failed()
        .stderr_has_all(&["SCHED_DEADLINE", "cpu"]);
    env.assert_clean();
}
