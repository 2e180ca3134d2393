//! `kill` with the three signal spellings, kill after exit, and `delete`
//! with and without `--force`.

use std::time::Duration;

use crate::common::*;

/// Creates and starts `sh -c script`, kills it with `signal`, checks that the
/// container is reported stopped while its init is still an unreaped zombie
/// (a supervisor reaps asynchronously), then reaps the init.
fn kill_and_check(env: &TestEnv, script: &str, ready: Option<&str>, signal: &str) -> Exit {
    let mut spec = env.spec();
    set_script(&mut spec, script);
    env.create_and_start(&spec);
    if let Some(marker) = ready {
        env.wait_for_stdout(marker);
    }
    assert_eq!(env.status(), "running");
    env.rt(&["kill", &env.id, signal]).ok();
    env.wait_for_status("stopped");
    let exit = env.wait_init();
    assert_eq!(env.status(), "stopped");
    exit
}

#[test]
fn kill_signal_name_kill() {
    let env = test_env!();
    let exit = kill_and_check(&env, "exec sleep 1000", None, "KILL");
    assert_eq!(exit, Exit::Signal(libc::SIGKILL));
}

#[test]
fn kill_signal_sigterm() {
    let env = test_env!();
    // The container's pid 1 only receives signals it has a handler for, so
    // the script traps TERM and says when the trap is in place.
    let exit = kill_and_check(
        &env,
        "trap 'exit 7' TERM; echo ready; while true; do sleep 0.05; done",
        Some("ready"),
        "SIGTERM",
    );
    assert_eq!(exit, Exit::Code(7), "TERM handler did not run");
}

#[test]
fn kill_signal_number_9() {
    let env = test_env!();
    let exit = kill_and_check(&env, "exec sleep 1000", None, "9");
    assert_eq!(exit, Exit::Signal(libc::SIGKILL));
}

#[test]
fn kill_stopped_container_not_running() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["true"]);
    env.create_and_start(&spec);
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Code(0));
    // runc: "container not running"
    env.rt(&["kill", &env.id, "KILL"])
        .failed()
        .stderr_has_any(&["not running"]);
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

/// `kill ID 0` checks that the container's init is alive (kill(2)'s signal 0), as runc takes
/// it: success while it runs, "not running" once it stopped.
#[test]
fn kill_signal_zero_checks_liveness() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    env.rt(&["kill", &env.id, "0"]).ok();
    assert_eq!(env.status(), "running", "signal 0 must not end the process");
    env.rt(&["kill", &env.id, "KILL"]).ok();
    env.wait_for_status("stopped");
    env.wait_init();
    env.rt(&["kill", &env.id, "0"])
        .failed()
        .stderr_has_any(&["not running"]);
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

#[test]
fn delete_running_needs_force() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    let pid = env.init_pid();
    // runc: "cannot delete container ID that is not stopped: running"
    env.rt(&["delete", &env.id])
        .failed()
        .stderr_has_any(&["running", "not stopped"]);
    // ... and the failed delete changed nothing.
    let st = env.state();
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
    assert_eq!(proc_state(pid).map(|s| s != 'Z'), Some(true));

    env.rt(&["delete", "--force", &env.id]).ok();
    env.rt(&["state", &env.id])
        .failed()
        .stderr_has_any(&["does not exist"]);
    assert_eq!(env.wait_init(), Exit::Signal(libc::SIGKILL));
    env.assert_clean();
}

/// Pids in the container's cgroup (its first hierarchy).
fn cgroup_pids(env: &TestEnv) -> Vec<i32> {
    let dir = cgroup_dirs(&env.cgroups_path())
        .into_iter()
        .find(|d| d.join("cgroup.procs").exists())
        .expect("the container's cgroup");
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// runc: a container without a pid namespace of its own keeps its other processes when
/// init dies, so `kill KILL` signals every process of its cgroup, also once init is gone
/// (`init_first`: init alone is killed first). runc 1.2 and later; 1.1.5 signals init only.
fn kill_without_pidns(env: &TestEnv, init_first: bool) {
    let mut spec = env.spec();
    remove_namespace(&mut spec, "pid");
    set_script(&mut spec, "sleep 1000 & sleep 1001 & echo ready; wait");
    env.create_and_start(&spec);
    env.wait_for_stdout("ready");
    assert!(
        wait_until(Duration::from_secs(10), || cgroup_pids(env).len() == 3),
        "{:?}",
        cgroup_pids(env)
    );
    let pids = cgroup_pids(env);
    if init_first {
        // SAFETY: kill(2) on the init this test started.
        unsafe { libc::kill(env.init_pid(), libc::SIGKILL) };
        env.wait_for_status("stopped");
    }
    env.rt(&["kill", &env.id, "KILL"]).ok();
    let gone = wait_until(Duration::from_secs(10), || cgroup_pids(env).is_empty());
    for pid in &pids {
        reap_if_child(*pid, Duration::from_secs(2));
    }
    assert!(gone, "left in the cgroup: {:?}", cgroup_pids(env));
    env.wait_for_status("stopped");
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

#[test]
fn kill_without_pidns_reaches_every_process() {
    let env = test_env!();
    kill_without_pidns(&env, false);
}

#[test]
fn kill_without_pidns_after_init_died() {
    let env = test_env!();
    kill_without_pidns(&env, true);
}
