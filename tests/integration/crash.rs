//! Crash safety (issue 15): a lock never outlives its command, `delete --force` clears an id
//! whatever its state.json says, and nothing waits forever. The state-file tests use rrun's
//! state layout (`<root>/<id>/state.json`); the `make test-faults` sweep kills and fails rrun
//! at every syscall.

use crate::common::*;
use serde_json::json;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Container init must not hold the state dir (and so its lock) open: once the creating
/// command is gone, nothing of it may keep the id locked.
#[test]
fn init_holds_no_state_dir_fd() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_ok(&spec);
    let pid = env.init_pid();
    let dir = env.root.join(&env.id);
    let dir = std::fs::canonicalize(&dir).unwrap();
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        !fds.iter().any(|p| *p == dir.display().to_string()),
        "init {pid} holds the state dir {}: {fds:?}",
        dir.display()
    );
    // And the lock is free: a delete does not wait.
    let t = Instant::now();
    env.rt(&["delete", "--force", &env.id]).ok();
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// delete --force with state.json empty, truncated, garbage or of the wrong shape: init, the
/// cgroup dirs, the fifo and the dir all go; `list` names the container instead of hiding it.
#[test]
fn delete_force_clears_corrupt_state() {
    for (n, corrupt) in [
        "",
        "{\"ociVersion\":\"1.2.0\",\"id\":",
        "\u{1}garbage\u{2}",
        "[1,2,3]",
    ]
    .into_iter()
    .enumerate()
    {
        let env = TestEnv::new(&format!("corrupt-state-{n}"));
        let mut spec = env.spec();
        set_args(&mut spec, &["sleep", "1000"]);
        env.create_ok(&spec);
        let pid = env.init_pid();
        std::fs::write(env.root.join(&env.id).join("state.json"), corrupt).unwrap();
        let list = env.rt(&["list"]);
        assert!(
            list.stderr.contains(&env.id),
            "list does not name the container with a corrupt state: {list}"
        );
        env.rt(&["delete", "--force", &env.id]).ok();
        let _ = pid;
        env.wait_init();
        env.assert_clean();
    }
}

/// A state dir whose state.json was never written (a create killed early) but whose cgroup
/// record names dirs: delete --force removes them.
#[test]
fn delete_force_without_state_uses_the_cgroup_record() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_ok(&spec);
    let pid = env.init_pid();
    std::fs::remove_file(env.root.join(&env.id).join("state.json")).unwrap();
    // Without state.json the id reads as absent...
    env.rt(&["state", &env.id])
        .failed()
        .stderr_has_any(&["does not exist"]);
    // ...but delete --force still finds init through its cgroup.
    env.rt(&["delete", "--force", &env.id]).ok();
    let _ = pid;
    env.wait_init();
    env.assert_clean();
}

/// A command waiting for another's lock gives up with a clear error naming the holder.
#[test]
fn lock_wait_is_bounded_and_names_the_holder() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_ok(&spec);
    let dir = std::fs::File::open(env.root.join(&env.id)).unwrap();
    // SAFETY: flock on a file we own.
    assert_eq!(unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut cmd = env.command(&["kill", &env.id, "KILL"]);
    cmd.env("RRUN_LOCK_TIMEOUT", "1");
    let t = Instant::now();
    let out = run_cmd(&mut cmd, Duration::from_secs(20));
    out.failed().stderr_has_all(&[
        "another rrun command",
        &format!("pid {}", std::process::id()),
        "EWOULDBLOCK",
    ]);
    assert!(t.elapsed() < Duration::from_secs(10));
    drop(dir);
    env.rt(&["delete", "--force", &env.id]).ok();
    env.wait_init();
    env.assert_clean();
}

/// `exec --ignore-paused` into a paused container must not keep `resume` out (it joins the
/// frozen cgroup and waits there).
#[test]
fn exec_ignore_paused_does_not_block_resume() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    env.rt(&["pause", &env.id]).ok();
    let mut exec = env.command(&["exec", "--ignore-paused", &env.id, "true"]);
    exec.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = exec.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    env.rt(&["resume", &env.id]).ok();
    assert!(t.elapsed() < Duration::from_secs(10), "resume waited");
    let st = wait_child(&mut child, "exec --ignore-paused", Duration::from_secs(20));
    assert!(st.success(), "exec after resume: {st:?}");
    env.rt(&["delete", "--force", &env.id]).ok();
}

/// A container cannot be created in a frozen cgroup: refused at once (runc refuses it too),
/// not a create that never returns.
#[test]
fn create_in_frozen_cgroup_is_refused() {
    let env = test_env!();
    let Some(freezer) = cgroup_mountpoints()
        .into_iter()
        .find(|m| m.join("freezer.state").exists() || m.ends_with("freezer"))
    else {
        eprintln!("no v1 freezer hierarchy: skipped");
        return;
    };
    let parent_rel = format!("{CGROUP_PARENT}/{}-frozen", env.id);
    let parent = freezer.join(&parent_rel);
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::write(parent.join("freezer.state"), "FROZEN").unwrap();
    let mut spec = env.spec();
    set_args(&mut spec, &["true"]);
    set(
        &mut spec,
        "/linux/cgroupsPath",
        json!(format!("/{parent_rel}/c")),
    );
    env.write_bundle(&spec);
    let t = Instant::now();
    let out = env.create(&env.id);
    let took = t.elapsed();
    let _ = std::fs::write(parent.join("freezer.state"), "THAWED");
    out.failed().stderr_has_all(&["frozen"]);
    assert!(took < Duration::from_secs(20));
    let left: Vec<_> = cgroup_dirs(&format!("/{parent_rel}/c"));
    assert!(left.is_empty(), "cgroups left: {left:?}");
    env.assert_clean();
    for m in cgroup_mountpoints() {
        let _ = std::fs::remove_dir(m.join(&parent_rel));
    }
}

/// A huge bad value is refused with a short error (not echoed whole, not ECONNRESET).
#[test]
fn huge_hostname_is_refused_briefly() {
    let env = test_env!();
    let mut spec = env.spec();
    set(&mut spec, "/hostname", json!("h".repeat(70_000)));
    env.write_bundle(&spec);
    let out = env.create(&env.id);
    out.failed()
        .stderr_has_all(&["hostname", "longer than the kernel's 64 bytes"]);
    assert!(
        out.stderr.len() < 1000,
        "error of {} bytes",
        out.stderr.len()
    );
    env.assert_clean();
}
