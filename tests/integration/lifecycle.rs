//! create / start / state / list / delete, and `run` exit codes.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// `list --format json` and `list -q` both show exactly this container with
/// `status` (and `pid`, when given).
#[track_caller]
fn assert_listed(env: &TestEnv, status: &str, pid: Option<i64>) {
    let list = env.list_json();
    assert_eq!(list.len(), 1, "list --format json: {list:?}");
    assert_eq!(list[0]["id"], env.id.as_str(), "list: {list:?}");
    assert_eq!(list[0]["status"], status, "list: {list:?}");
    if let Some(pid) = pid {
        assert_eq!(list[0]["pid"].as_i64(), Some(pid), "list: {list:?}");
    }
    assert_eq!(env.list_quiet(), vec![env.id.clone()], "list -q");
}

#[track_caller]
fn assert_state(st: &Value, env: &TestEnv, status: &str) {
    assert_eq!(st["id"], env.id.as_str(), "state: {st}");
    assert_eq!(st["status"], status, "state: {st}");
    assert!(st["ociVersion"].is_string(), "state lacks ociVersion: {st}");
    let bundle = st["bundle"].as_str().expect("state.bundle");
    assert_eq!(
        fs::canonicalize(bundle).ok(),
        fs::canonicalize(&env.bundle).ok(),
        "state.bundle: {st}"
    );
}

#[test]
fn full_lifecycle() {
    let env = test_env!();
    // The container signals through a bind-mounted host dir: it touches
    // `started` when its process runs and exits once `go` appears, so the
    // test controls every transition.
    let ctl = env.host_dir("ctl");
    let mut spec = env.spec();
    set_script(
        &mut spec,
        "touch /mnt/started; while [ ! -e /mnt/go ]; do sleep 0.05; done; exit 0",
    );
    add_mount(&mut spec, bind_mount(&ctl, "/mnt", &["rbind", "rw"]));
    env.write_bundle(&spec);

    // create
    env.create(&env.id).ok();
    let st = env.state();
    assert_state(&st, &env, "created");
    let pid = st["pid"].as_i64().expect("created state has a pid");
    assert!(pid > 0, "state: {st}");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_listed(&env, "created", Some(pid));
    // The init is in the configured cgroup.
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = env.cgroups_path();
    assert!(
        cgroups
            .lines()
            .any(|l| l.splitn(3, ':').nth(2) == Some(want.as_str())),
        "init is not in cgroup {want}:\n{cgroups}"
    );
    // The user process must not run before `start`.
    thread::sleep(Duration::from_millis(300));
    assert!(!ctl.join("started").exists(), "process ran before start");

    // start
    env.rt(&["start", &env.id]).ok();
    assert!(
        wait_until(WAIT_TIMEOUT, || ctl.join("started").exists()),
        "process did not run after start"
    );
    let st = env.state();
    assert_state(&st, &env, "running");
    assert_eq!(st["pid"].as_i64(), Some(pid), "pid changed on start");
    assert_listed(&env, "running", Some(pid));

    // the process exits
    fs::write(ctl.join("go"), "").unwrap();
    assert_eq!(env.wait_init(), Exit::Code(0));
    let st = env.state();
    assert_state(&st, &env, "stopped");
    assert_listed(&env, "stopped", None);

    // delete
    env.rt(&["delete", &env.id]).ok();
    env.rt(&["state", &env.id])
        .failed()
        .stderr_has_any(&["does not exist"]);
    assert!(env.list_json().is_empty(), "list after delete");
    assert!(env.list_quiet().is_empty(), "list -q after delete");
    env.assert_clean();
}

#[test]
fn run_exit_code_42() {
    let env = test_env!();
    let out = env.run_capture(&["sh", "-c", "echo before; exit 42"], |_| {});
    assert_eq!(out.code(), Some(42), "{out}");
    assert_eq!(out.stdout, "before\n", "{out}");
}

#[test]
fn run_self_sigkill_gives_137() {
    let env = test_env!();
    // Without its own pid namespace: the init of a pid namespace cannot be
    // SIGKILLed from inside it (the kernel drops the signal, so `sh` would
    // survive `kill -9 $$` and exit normally). 137 = 128 + SIGKILL.
    let out = env.run_capture(&["sh", "-c", "kill -9 $$; echo survived; exit 3"], |s| {
        remove_namespace(s, "pid")
    });
    assert_eq!(out.code(), Some(137), "{out}");
    assert!(!out.stdout.contains("survived"), "{out}");
}

#[test]
fn run_killed_from_outside_gives_137() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.write_bundle(&spec);
    let bundle = env.bundle.to_str().unwrap().to_string();
    env.track_id(&env.id);
    let mut cmd = env.command(&["run", "--bundle", &bundle, &env.id]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn run");
    // `run` in the foreground: the container shows up as running.
    let running = wait_until(WAIT_TIMEOUT, || {
        let out = env.rt(&["state", &env.id]);
        out.success() && out.stdout.contains("\"running\"")
    });
    if !running {
        let _ = child.kill();
        let _ = child.wait();
        panic!("container started by `run` never became running");
    }
    assert_listed(&env, "running", None);
    env.rt(&["kill", &env.id, "KILL"]).ok();
    let status = wait_child(&mut child, "run", CMD_TIMEOUT);
    assert_eq!(status.code(), Some(137), "run exit status {status}");
    // `run` deletes the container when it returns.
    assert!(env.list_quiet().is_empty(), "container left after run");
    env.assert_clean();
}

/// The --debug line format is rrun's own: checked only when the runtime is rrun.
fn debug_lines_are_rrun_s(env: &TestEnv) -> bool {
    let rrun = env.rt(&["--version"]).stdout.starts_with("rrun");
    if !rrun {
        eprintln!("SKIPPED {}: rrun's --debug phase lines", env.name);
    }
    rrun
}

/// `--debug` times each phase (issue 7: "how long parse, plan, cgroup, clone, mounts, pivot and
/// exec each took"), also those init runs after it has changed its mount namespace and root:
/// their lines reach the caller's `--log`, not a file of that name inside the container.
/// rrun's own output format, so only checked for rrun.
#[test]
fn debug_log_times_every_phase() {
    let env = test_env!();
    if !debug_lines_are_rrun_s(&env) {
        return;
    }
    let mut spec = env.spec();
    set_args(&mut spec, &["true"]);
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let log = env.dir.join("debug.log");
    let bundle = env.bundle.to_str().unwrap().to_string();
    let log_s = log.to_str().unwrap().to_string();
    let out = env.rt(&[
        "--debug",
        "--log",
        &log_s,
        "--log-format",
        "json",
        "run",
        "--bundle",
        &bundle,
        &env.id,
    ]);
    out.ok();
    let text = fs::read_to_string(&log).unwrap();
    let phases: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["msg"].as_str().map(String::from))
        .filter_map(|m| {
            let rest = m.strip_prefix("phase ")?;
            Some(rest.split(" took ").next()?.to_string())
        })
        .collect();
    for want in [
        "parse",
        "plan",
        "cgroup",
        "clone",
        "mounts",
        "pivot",
        "process",
        "init setup",
        "exec",
        "wait",
        "delete",
    ] {
        assert!(
            phases.iter().any(|p| p == want),
            "no phase {want:?} in {phases:?}\n{text}"
        );
    }
    let inside = shared_rootfs().join(log.strip_prefix("/").unwrap());
    assert!(
        !inside.exists(),
        "{} written inside the rootfs",
        inside.display()
    );
    env.assert_clean();
}

/// `--debug` on `exec`: debug lines for the exec (what it joins, its phases, the ones from
/// inside the container's namespaces too) in --log (json) or on stderr (text), never in a
/// file of that name inside the container.
#[test]
fn debug_log_for_exec() {
    let env = test_env!();
    if !debug_lines_are_rrun_s(&env) {
        return;
    }
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    let log = env.dir.join("exec-debug.log");
    let log_s = log.to_str().unwrap().to_string();
    env.rt(&[
        "--debug",
        "--log",
        &log_s,
        "--log-format",
        "json",
        "exec",
        &env.id,
        "true",
    ])
    .ok();
    let text = fs::read_to_string(&log).unwrap();
    let msgs: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "debug")
        .filter_map(|v| v["msg"].as_str().map(String::from))
        .collect();
    for want in [
        "phase plan",
        "exec: joining",
        "phase join namespaces",
        "phase process",
    ] {
        assert!(
            msgs.iter().any(|m| m.starts_with(want)),
            "no {want:?} in {msgs:?}"
        );
    }
    let inside = shared_rootfs().join(log.strip_prefix("/").unwrap());
    assert!(
        !inside.exists(),
        "{} written inside the rootfs",
        inside.display()
    );
    // Text on stderr without --log.
    let out = env.rt(&["--debug", "exec", &env.id, "true"]);
    out.ok();
    assert!(
        out.stderr.contains("level=debug msg=\"phase process"),
        "{out}"
    );
    env.rt(&["delete", "--force", &env.id]).ok();
    env.wait_init();
    env.assert_clean();
}
