//! cgroup v1 resources of real containers, read back from the host's
//! hierarchies (`/sys/fs/cgroup/<controller>/rrun-test/<id>`), plus pause,
//! resume, update, ps, events and cgroup cleanup.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

const V1_ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers every container gets a directory in.
const CONTROLLERS: [&str; 8] = [
    "memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio",
];

/// The container's directory in the v1 hierarchy of `controller`.
fn v1_dir(env: &TestEnv, controller: &str) -> PathBuf {
    assert!(
        Path::new(V1_ROOT)
            .join("memory/memory.limit_in_bytes")
            .exists(),
        "these tests need a cgroup v1 host (no {V1_ROOT}/memory)"
    );
    Path::new(V1_ROOT)
        .join(controller)
        .join(env.cgroups_path().trim_start_matches('/'))
}

/// A file of the container's v1 cgroup, trimmed.
#[track_caller]
fn read_v1(env: &TestEnv, controller: &str, file: &str) -> String {
    let p = v1_dir(env, controller).join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Pids listed in `cgroup.procs` of the container's cgroup.
#[track_caller]
fn cgroup_procs(env: &TestEnv, controller: &str) -> Vec<i32> {
    read_v1(env, controller, "cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A number after `key ` in a flat-keyed file such as `memory.oom_control`.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// CPUs of a cpuset list such as `0-3,6`.
fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

/// `sleep 1000`, created and started.
fn start_sleeper(env: &TestEnv, mutate: impl FnOnce(&mut Value)) {
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    mutate(&mut spec);
    env.create_and_start(&spec);
}

#[test]
fn memory_limit_oom_kills() {
    let env = test_env!();
    let limit: u64 = 32 << 20;
    let mut spec = env.spec();
    // Builds a 100 MB shell variable: `tr` and the shell both hold big
    // buffers, far beyond the 32 MiB limit (without swap: swap == limit).
    set_script(
        &mut spec,
        "a=$(head -c 100000000 /dev/zero | tr '\\0' x); echo \"survived ${#a}\"",
    );
    set(
        &mut spec,
        "/linux/resources/memory",
        json!({"limit": limit, "swap": limit}),
    );
    env.create_ok(&spec);
    assert_eq!(
        read_v1(&env, "memory", "memory.limit_in_bytes"),
        limit.to_string()
    );
    assert_eq!(
        read_v1(&env, "memory", "memory.memsw.limit_in_bytes"),
        limit.to_string()
    );
    env.rt(&["start", &env.id]).ok();
    let exit = env.wait_init();
    let oom = read_v1(&env, "memory", "memory.oom_control");
    // Diagnostics only: with swap == limit the memsw counter is the one that
    // hits its limit, and recent kernels may count neither.
    let failcnt: u64 = read_v1(&env, "memory", "memory.failcnt")
        .parse::<u64>()
        .unwrap()
        + read_v1(&env, "memory", "memory.memsw.failcnt")
            .parse::<u64>()
            .unwrap();
    let max_usage: u64 = read_v1(&env, "memory", "memory.max_usage_in_bytes")
        .parse()
        .unwrap();
    let stdout = env.container_stdout();
    let report = format!(
        "exit {exit:?}, stdout {stdout:?}, failcnt {failcnt}, max usage {max_usage}, oom_control:\n{oom}"
    );
    assert!(
        !stdout.contains("survived 100000000"),
        "allocated 100 MB under a 32 MiB limit: {report}"
    );
    let oom_kills = keyed(&oom, "oom_kill").unwrap_or(0);
    assert!(
        exit == Exit::Signal(libc::SIGKILL) || oom_kills > 0 || failcnt > 0,
        "not OOM-killed: {report}"
    );
    assert!(max_usage <= limit, "usage above the limit: {report}");
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

#[test]
fn pids_limit_makes_fork_fail() {
    let env = test_env!();
    // The spawner shell dies at its first failed fork ("can't fork"); each
    // `started` line is one successful fork. The outer shell only uses
    // builtins afterwards (the sleeps keep the pids in use).
    let script = "sh -c 'i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); echo started; done'; \
                  echo \"spawner exit $?\"";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        set(s, "/linux/resources/pids", json!({"limit": 8}))
    });
    out.ok();
    let started = out.lines().iter().filter(|l| *l == "started").count();
    assert!(
        started < 20,
        "all 20 forks succeeded under pids.limit 8:\n{out}"
    );
    let failures = 20 - started;
    assert!(failures > 0, "{out}");
    // 8 pids: the outer shell, the spawner and at most 6 sleeps.
    assert!(
        started <= 6,
        "{started} forks succeeded under pids.limit 8:\n{out}"
    );
    assert!(
        out.stderr.to_lowercase().contains("fork"),
        "no fork error reported:\n{out}"
    );
}

#[test]
fn pids_limit_read_back() {
    let env = test_env!();
    start_sleeper(&env, |s| {
        set(s, "/linux/resources/pids", json!({"limit": 8}))
    });
    assert_eq!(read_v1(&env, "pids", "pids.max"), "8");
    let current: u64 = read_v1(&env, "pids", "pids.current").parse().unwrap();
    assert!(current >= 1, "pids.current {current}");
}

#[test]
fn cpu_and_cpuset_read_back() {
    let env = test_env!();
    let host_cpus = parse_cpu_list(
        &fs::read_to_string(Path::new(V1_ROOT).join("cpuset/cpuset.effective_cpus"))
            .or_else(|_| fs::read_to_string(Path::new(V1_ROOT).join("cpuset/cpuset.cpus")))
            .unwrap(),
    );
    let host_mems = parse_cpu_list(
        &fs::read_to_string(Path::new(V1_ROOT).join("cpuset/cpuset.effective_mems"))
            .or_else(|_| fs::read_to_string(Path::new(V1_ROOT).join("cpuset/cpuset.mems")))
            .unwrap(),
    );
    // The last CPU: with more than one, that differs from the default.
    let cpu = host_cpus.last().expect("host cpus").to_string();
    let mem = host_mems.first().expect("host mems").to_string();
    let mut spec = env.spec();
    set_script(
        &mut spec,
        "grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status; echo ready; exec sleep 1000",
    );
    set(
        &mut spec,
        "/linux/resources/cpu",
        json!({"shares": 512, "quota": 25000, "period": 50000, "cpus": cpu, "mems": mem}),
    );
    env.create_and_start(&spec);
    assert_eq!(read_v1(&env, "cpu", "cpu.shares"), "512");
    assert_eq!(read_v1(&env, "cpu", "cpu.cfs_quota_us"), "25000");
    assert_eq!(read_v1(&env, "cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(read_v1(&env, "cpuset", "cpuset.cpus"), cpu);
    assert_eq!(read_v1(&env, "cpuset", "cpuset.mems"), mem);
    // ... and the container's process is bound by them.
    env.wait_for_stdout("ready");
    let stdout = env.container_stdout();
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {key} in {stdout:?}"))
    };
    assert_eq!(field("Cpus_allowed_list:"), cpu, "{stdout}");
    assert_eq!(field("Mems_allowed_list:"), mem, "{stdout}");
}

#[test]
fn denied_device_open_eperm() {
    let env = test_env!();
    // The device cgroup allows `mknod` of anything (runc's default `c *:* m`)
    // but opening only the allowed devices. /dev/fuse (c 10:229) needs no
    // capability to open, so EPERM can only come from the device cgroup;
    // /dev/null (a default device) and /dev/loop-control (c 10:237, allowed
    // by the config) are the controls. /tmp is a tmpfs without `nodev`.
    let script = "cd /tmp; \
        mknod fuse c 10 229 && echo mknod-fuse-ok; \
        mknod null c 1 3 && echo mknod-null-ok; \
        mknod lc c 10 237 && echo mknod-lc-ok; \
        for f in fuse null lc; do head -c 0 $f 2>&1; echo \"$f rc=$?\"; done";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        add_mount(
            s,
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "mode=1777", "size=1m"]}),
        );
        for set_name in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set_name]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
        s["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rw"}));
    });
    out.ok();
    let lines = out.lines();
    for l in ["mknod-fuse-ok", "mknod-null-ok", "mknod-lc-ok"] {
        assert!(lines.iter().any(|x| x == l), "{l} missing:\n{out}");
    }
    assert!(
        out.stdout.contains("Operation not permitted"),
        "opening the denied device did not fail with EPERM:\n{out}"
    );
    assert!(lines.iter().any(|x| x == "fuse rc=1"), "{out}");
    assert!(lines.iter().any(|x| x == "null rc=0"), "{out}");
    assert!(lines.iter().any(|x| x == "lc rc=0"), "{out}");
}

#[test]
fn pause_resume_freezer() {
    let env = test_env!();
    start_sleeper(&env, |_| {});
    let pid = env.init_pid();
    assert_eq!(read_v1(&env, "freezer", "freezer.state"), "THAWED");

    env.rt(&["pause", &env.id]).ok();
    assert_eq!(read_v1(&env, "freezer", "freezer.state"), "FROZEN");
    assert_eq!(env.status(), "paused");
    let list = env.list_json();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "paused", "{list:?}");
    let table = env.rt(&["list"]);
    table.ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.contains(&env.id) && l.contains("paused")),
        "{table}"
    );
    // Pausing is not killing: the init is still there.
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    env.rt(&["resume", &env.id]).ok();
    assert_eq!(read_v1(&env, "freezer", "freezer.state"), "THAWED");
    assert_eq!(env.status(), "running");
    assert_eq!(env.list_json()[0]["status"], "running");
    assert_eq!(env.state()["pid"].as_i64(), Some(pid as i64));
}

#[test]
fn update_flags_change_live_limits() {
    let env = test_env!();
    start_sleeper(&env, |s| {
        set(
            s,
            "/linux/resources/memory",
            json!({"limit": 64 << 20, "swap": 64 << 20}),
        );
        set(s, "/linux/resources/pids", json!({"limit": 20}));
    });
    assert_eq!(
        read_v1(&env, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    env.rt(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "42",
        "--cpu-share",
        "256",
        &env.id,
    ])
    .ok();
    let m128 = (128u64 << 20).to_string();
    assert_eq!(read_v1(&env, "memory", "memory.limit_in_bytes"), m128);
    assert_eq!(read_v1(&env, "memory", "memory.memsw.limit_in_bytes"), m128);
    assert_eq!(read_v1(&env, "pids", "pids.max"), "42");
    assert_eq!(read_v1(&env, "cpu", "cpu.shares"), "256");
    // Only what was given changes.
    env.rt(&["update", "--pids-limit", "43", &env.id]).ok();
    assert_eq!(read_v1(&env, "pids", "pids.max"), "43");
    assert_eq!(read_v1(&env, "memory", "memory.limit_in_bytes"), m128);
    assert_eq!(read_v1(&env, "cpu", "cpu.shares"), "256");
    assert_eq!(env.status(), "running");
}

#[test]
fn update_resources_from_stdin() {
    let env = test_env!();
    start_sleeper(&env, |s| {
        set(
            s,
            "/linux/resources/memory",
            json!({"limit": 64 << 20, "swap": 64 << 20}),
        );
    });
    // Lowering memory below the current memsw limit and raising both.
    let res = json!({
        "memory": {"limit": 48 << 20, "swap": 96 << 20},
        "pids": {"limit": 17},
        "cpu": {"quota": 30000, "period": 60000}
    });
    env.rt_input(&["update", "--resources", "-", &env.id], &res.to_string())
        .ok();
    assert_eq!(
        read_v1(&env, "memory", "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    assert_eq!(
        read_v1(&env, "memory", "memory.memsw.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    assert_eq!(read_v1(&env, "pids", "pids.max"), "17");
    assert_eq!(read_v1(&env, "cpu", "cpu.cfs_quota_us"), "30000");
    assert_eq!(read_v1(&env, "cpu", "cpu.cfs_period_us"), "60000");
    // ... and from a file.
    let file = env.dir.join("resources.json");
    fs::write(&file, json!({"pids": {"limit": 18}}).to_string()).unwrap();
    env.rt(&["update", "--resources", file.to_str().unwrap(), &env.id])
        .ok();
    assert_eq!(read_v1(&env, "pids", "pids.max"), "18");
    assert_eq!(env.status(), "running");
}

/// `ps` of a stopped container: no processes, an empty list (table: the header alone), exit 0,
/// as runc (1.1.5 prints JSON `null`, newer ones `[]`: both are no pids).
#[test]
fn ps_of_a_stopped_container_is_empty() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["true"]);
    env.create_and_start(&spec);
    env.wait_for_status("stopped");
    env.wait_init();
    let out = env.rt(&["ps", "--format", "json", &env.id]);
    out.ok();
    let pids: Option<Vec<i32>> = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("ps --format json: {e}: {out}"));
    assert!(pids.unwrap_or_default().is_empty(), "{out}");
    let table = env.rt(&["ps", &env.id]);
    table.ok();
    assert_eq!(table.lines().len(), 1, "the header alone: {table}");
    assert!(table.stdout.contains("PID"), "{table}");
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

#[test]
fn ps_lists_container_pids() {
    let env = test_env!();
    let mut spec = env.spec();
    set_script(&mut spec, "sleep 1000 & echo ready; wait");
    env.create_and_start(&spec);
    env.wait_for_stdout("ready");
    let init = env.init_pid();
    let mut procs = Vec::new();
    assert!(
        wait_until(WAIT_TIMEOUT, || {
            procs = cgroup_procs(&env, "pids");
            procs.len() == 2
        }),
        "cgroup.procs: {procs:?}"
    );
    let child = *procs.iter().find(|p| **p != init).expect("child pid");

    let out = env.rt(&["ps", "--format", "json", &env.id]);
    out.ok();
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("ps --format json is not JSON ({e}):\n{out}"));
    let mut got: Vec<i64> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array:\n{out}"))
        .iter()
        .map(|p| p.as_i64().unwrap_or_else(|| panic!("not a pid: {p}")))
        .collect();
    got.sort();
    let mut want = vec![init as i64, child as i64];
    want.sort();
    assert_eq!(got, want, "{out}");

    let out = env.rt(&["ps", &env.id]);
    out.ok();
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap_or("");
    let cols: Vec<&str> = header.split_whitespace().collect();
    let pid_col = cols
        .iter()
        .position(|c| *c == "PID")
        .unwrap_or_else(|| panic!("no PID column:\n{out}"));
    let mut table_pids: Vec<i64> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .nth(pid_col)
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("bad line {l:?}:\n{out}"))
        })
        .collect();
    table_pids.sort();
    assert_eq!(table_pids, want, "{out}");
    assert!(out.stdout.contains("sleep 1000"), "{out}");
}

#[test]
fn events_stats_memory_usage() {
    let env = test_env!();
    start_sleeper(&env, |_| {});
    let out = env.rt(&["events", "--stats", &env.id]);
    out.ok();
    let first = out
        .stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let v: Value = serde_json::from_str(first)
        .unwrap_or_else(|e| panic!("events --stats is not a JSON line ({e}):\n{out}"));
    assert_eq!(v["type"], "stats", "{out}");
    assert_eq!(v["id"], env.id.as_str(), "{out}");
    let usage = v["data"]["memory"]["usage"]["usage"]
        .as_u64()
        .unwrap_or_else(|| panic!("no data.memory.usage.usage:\n{out}"));
    assert!(usage > 0, "memory usage 0:\n{out}");
    let pids = v["data"]["pids"]["current"].as_u64().unwrap_or(0);
    assert!(pids >= 1, "pids.current {pids}:\n{out}");
    assert!(v["data"]["cpu"].is_object(), "{out}");
}

/// `create` of `spec` fails with one of `needles` in its stderr and, checked as soon as it
/// returns (cleanup is part of the failure), leaves no cgroup, state or process behind.
#[track_caller]
fn failed_create_leaves_nothing(env: &TestEnv, spec: &Value, needles: &[&str]) {
    env.write_bundle(spec);
    let out = env.create(&env.id);
    out.failed().stderr_has_any(needles);
    let left = cgroup_dirs(&env.cgroups_path());
    assert!(
        left.is_empty(),
        "cgroups left after a failed create: {left:?}\n{out}"
    );
    env.assert_clean();
}

#[test]
fn failed_create_leaves_no_cgroup() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["/no/such/binary"]);
    set(&mut spec, "/linux/resources/pids", json!({"limit": 10}));
    // runc looks the binary up in `create` (before reporting the container
    // created), so the failure shows there.
    failed_create_leaves_nothing(&env, &spec, &["/no/such/binary", "no such file"]);
}

/// A limit the kernel refuses: on v1 rrun writes the limits after the clone, while init
/// sets up its namespaces, so the failure must also end that init (waiting for its cgroup)
/// and leave no cgroup, state or process behind.
#[test]
fn refused_limit_fails_create_and_leaves_nothing() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["true"]);
    set(&mut spec, "/linux/resources/pids", json!({"limit": 10}));
    // No host has CPU 4095: the kernel refuses the cpuset.
    set(&mut spec, "/linux/resources/cpu", json!({"cpus": "4095"}));
    failed_create_leaves_nothing(&env, &spec, &["cpuset.cpus"]);
}

/// Runs whose cgroups share a parent that is removed whenever it is empty (as the delete of
/// the container that made it does): a create that looked the parent up just before it went
/// must walk again and make it anew, not fail with ENOENT.
#[test]
fn creates_survive_a_vanishing_parent() {
    let env = test_env!();
    // runc 1.1.5 makes each path component once and fails this race ("unable to apply cgroup
    // configuration: mkdir ...: no such file or directory"): a known runc limitation.
    if env.rt(&["--version"]).stdout.starts_with("runc") {
        eprintln!("SKIPPED {}: runc fails when a parent vanishes", env.name);
        return;
    }
    let (threads, per) = (2, 15);
    let mut batches = Vec::new();
    for t in 0..threads {
        let mut cmds = Vec::new();
        for i in 0..per {
            let id = format!("{}-t{t}-{i}", env.id);
            let dir = env.dir.join(format!("bundle-{t}-{i}"));
            fs::create_dir_all(&dir).unwrap();
            let mut spec = env.spec();
            set_args(&mut spec, &["true"]);
            let cg = format!("{}/{id}", env.cgroups_path());
            set(&mut spec, "/linux/cgroupsPath", json!(cg));
            fs::write(dir.join("config.json"), spec.to_string()).unwrap();
            env.track_id(&id);
            cmds.push(env.command(&["run", "--bundle", dir.to_str().unwrap(), &id]));
        }
        batches.push(cmds);
    }
    let parents: Vec<PathBuf> = cgroup_mountpoints()
        .into_iter()
        .map(|m| m.join(env.cgroups_path().trim_start_matches('/')))
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let outs: Vec<Out> = std::thread::scope(|s| {
        // Other containers' deletes, every fraction of a millisecond: rmdir succeeds only
        // while the parent is empty.
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for p in &parents {
                    let _ = fs::remove_dir(p);
                }
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        });
        let handles: Vec<_> = batches
            .into_iter()
            .map(|cmds| {
                s.spawn(move || {
                    cmds.into_iter()
                        .map(|mut c| run_cmd(&mut c, CMD_TIMEOUT))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let outs = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        outs
    });
    for out in &outs {
        out.ok();
    }
    for p in &parents {
        let _ = fs::remove_dir(p);
    }
    env.assert_clean();
}

#[test]
fn delete_removes_all_cgroup_dirs() {
    let env = test_env!();
    start_sleeper(&env, |_| {});
    for c in CONTROLLERS {
        let d = v1_dir(&env, c);
        assert!(d.is_dir(), "no cgroup dir {}", d.display());
        assert!(
            cgroup_procs(&env, c).contains(&env.init_pid()),
            "init not in {}",
            d.display()
        );
    }
    env.rt(&["kill", &env.id, "KILL"]).ok();
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Signal(libc::SIGKILL));
    env.rt(&["delete", &env.id]).ok();
    let left = cgroup_dirs(&env.cgroups_path());
    assert!(left.is_empty(), "cgroup dirs left after delete: {left:?}");
    for c in CONTROLLERS {
        assert!(!v1_dir(&env, c).exists());
    }
    env.assert_clean();
}

#[test]
fn delete_force_paused_container() {
    let env = test_env!();
    start_sleeper(&env, |_| {});
    env.rt(&["pause", &env.id]).ok();
    assert_eq!(env.status(), "paused");
    env.rt(&["delete", "--force", &env.id]).ok();
    env.rt(&["state", &env.id])
        .failed()
        .stderr_has_any(&["does not exist"]);
    assert_eq!(env.wait_init(), Exit::Signal(libc::SIGKILL));
    let left = cgroup_dirs(&env.cgroups_path());
    assert!(left.is_empty(), "cgroup dirs left: {left:?}");
    env.assert_clean();
}

/// `/proc/<pid>/cgroup` as (hierarchy controllers, path) pairs.
fn proc_cgroups(pid: i32) -> Vec<(String, String)> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"))
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

/// init and an exec'd process enter the container's cgroup in every hierarchy the host has
/// (v1 controllers, named ones, and a hybrid host's unified cgroup2) — rrun has the child
/// enter by itself (`tasks`, CLONE_INTO_CGROUP) instead of writing its pid to cgroup.procs.
#[test]
fn init_and_exec_join_every_hierarchy() {
    let env = test_env!();
    start_sleeper(&env, |_| {});
    let exec_pid = env.exec_detached(&["sleep", "1000"]);
    let hierarchies = cgroup_mountpoints().len();
    for pid in [env.init_pid(), exec_pid] {
        let cgs = proc_cgroups(pid);
        assert_eq!(cgs.len(), hierarchies, "pid {pid}: {cgs:?}");
        for (ctrl, path) in &cgs {
            assert_eq!(
                path,
                &env.cgroups_path(),
                "pid {pid}, hierarchy {ctrl:?}: {cgs:?}"
            );
        }
        assert!(
            cgroup_procs(&env, "memory").contains(&pid),
            "pid {pid} not in memory cgroup.procs"
        );
    }
    // The detached exec'd process was reparented to the test (a subreaper): reap it so the
    // pid namespace's init can finish exiting.
    env.rt(&["kill", &env.id, "KILL"]).ok();
    reap_if_child(exec_pid, WAIT_TIMEOUT);
    env.wait_for_status("stopped");
    env.wait_init();
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

/// A second container whose cgroupsPath names the (busy) cgroup of a running one is refused
/// in runc's words, and its failed create leaves the first container and its cgroup alone.
#[test]
fn second_container_in_a_busy_cgroup_refused() {
    let env = test_env!();
    start_sleeper(&env, |_| {});
    let second = format!("{}-2", env.id);
    let out = env.create(&second);
    out.failed()
        .stderr_has_all(&["container's cgroup is not empty"]);
    assert_eq!(env.status(), "running", "{out}");
    assert!(!cgroup_dirs(&env.cgroups_path()).is_empty());
    env.rt(&["state", &second])
        .failed()
        .stderr_has_any(&["does not exist"]);
    env.rt(&["delete", "--force", &env.id]).ok();
    env.wait_init();
    env.assert_clean();
}

/// `linux.resources.unified` needs cgroup v2: on v1 (and hybrid) it is an invalid
/// configuration, as runc says it.
#[test]
fn unified_resources_on_v1_invalid() {
    let env = test_env!();
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!("SKIPPED {}: a cgroup v2 host", env.name);
        return;
    }
    let mut spec = env.spec();
    set(
        &mut spec,
        "/linux/resources/unified",
        json!({"pids.max": "10"}),
    );
    failed_create_leaves_nothing(&env, &spec, &["invalid configuration"]);
}

/// `update` takes runc's -1 (unlimited) for --memory and --cpu-quota, and --cpu-burst and
/// --cpu-idle, each read back from the cgroup files.
#[test]
fn update_unlimited_burst_and_idle() {
    let env = test_env!();
    start_sleeper(&env, |s| {
        set(s, "/linux/resources/memory", json!({"limit": 64 << 20}));
        set(
            s,
            "/linux/resources/cpu",
            json!({"quota": 50000, "period": 100000}),
        );
    });
    env.rt(&["update", "--memory", "-1", "--cpu-quota", "-1", &env.id])
        .ok();
    let unlimited = read_v1(&env, "memory", "memory.limit_in_bytes");
    assert!(
        unlimited.parse::<u64>().unwrap() > 1 << 60,
        "memory.limit_in_bytes {unlimited}"
    );
    assert_eq!(read_v1(&env, "cpu", "cpu.cfs_quota_us"), "-1");
    let has = |f: &str| v1_dir(&env, "cpu").join(f).exists();
    if has("cpu.cfs_burst_us") {
        env.rt(&[
            "update",
            "--cpu-quota",
            "50000",
            "--cpu-burst",
            "20000",
            &env.id,
        ])
        .ok();
        assert_eq!(read_v1(&env, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read_v1(&env, "cpu", "cpu.cfs_burst_us"), "20000");
    }
    if has("cpu.idle") {
        env.rt(&["update", "--cpu-idle", "1", &env.id]).ok();
        assert_eq!(read_v1(&env, "cpu", "cpu.idle"), "1");
        env.rt(&["update", "--cpu-idle", "2", &env.id])
            .failed()
            .stderr_has_all(&["cpu.idle"]);
    }
    assert_eq!(env.status(), "running");
}

/// v1 devices: after the default deny, the config's rules are written in the order given
/// (devices.list shows them first, then the runtime's defaults), and a host device the rules
/// do not allow (/dev/kmsg, bound in) cannot be written.
#[test]
fn device_rules_in_config_order_and_kmsg_denied() {
    let env = test_env!();
    if !Path::new("/sys/fs/cgroup/devices").is_dir() || !Path::new("/dev/kmsg").exists() {
        eprintln!(
            "SKIPPED {}: no v1 devices controller or no /dev/kmsg",
            env.name
        );
        return;
    }
    let out = env.sh_ok(
        "echo test > /dev/kmsg 2>/dev/null && echo kmsg-written || echo kmsg-denied",
        |s| {
            set(
                s,
                "/linux/resources/devices",
                json!([
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                    {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"},
                ]),
            );
            add_mount(
                s,
                json!({"destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]}),
            );
            // Keeps the container (and its cgroup) alive long enough to read devices.list.
            let args = s["process"]["args"].clone();
            let script = format!(
                "{}; cat /sys/fs/cgroup/devices/devices.list",
                args[2].as_str().unwrap()
            );
            set_script(s, &script);
        },
    );
    let lines = out.lines();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("kmsg-denied"),
        "{out}"
    );
    assert_eq!(
        &lines[1..3],
        ["c 10:229 rw", "b 8:0 r"],
        "devices.list does not start with the config's rules: {out}"
    );
    env.assert_clean();
}

/// `update --resources` with device rules, even an access string like "rwa" the devices
/// cgroup has no letter for, is accepted and leaves the device rules alone: runc's update has
/// skipped devices since 1.0 (a running container's rules are never reset under it); the
/// other resources in the same JSON are applied.
#[test]
fn update_accepts_and_skips_device_rules() {
    let env = test_env!();
    start_sleeper(&env, |_| {});
    let before = read_v1(&env, "devices", "devices.list");
    let res = json!({
        "devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwa"}],
        "pids": {"limit": 31}
    });
    env.rt_input(&["update", "--resources", "-", &env.id], &res.to_string())
        .ok();
    assert_eq!(read_v1(&env, "pids", "pids.max"), "31");
    assert_eq!(read_v1(&env, "devices", "devices.list"), before);
    assert_eq!(env.status(), "running");
}

/// `--systemd-cgroup` where systemd does not run (this host; runc refuses it too): a clear
/// error that says so, and nothing left behind. With systemd the driver is tested in the
/// systemd guest (`make test-systemd`).
#[test]
fn systemd_cgroup_without_systemd_is_refused() {
    let env = test_env!();
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("SKIPPED {}: systemd runs here", env.name);
        return;
    }
    let mut spec = env.spec();
    set(
        &mut spec,
        "/linux/cgroupsPath",
        json!(format!("system.slice:rrun-test:{}", env.id)),
    );
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    let out = env.rt(&["--systemd-cgroup", "create", "--bundle", &bundle, &env.id]);
    out.failed()
        .stderr_has_any(&["systemd is not running", "systemd not running on this host"]);
    env.rt(&["state", &env.id]).failed();
    env.assert_clean();
}
