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
            "echo \"FOO=$FOO\"; echo \"TERM=$TERM\"; echo TERMS=$(env | grep -c '^TERM='); pwd; id; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        ],
    );
    out.ok();
    let lines = out.lines();
    let has = |l: &str| lines.iter().any(|x| x == l);
    assert!(has("FOO=bar baz"), "{out}");
    // -e replaces the config's TERM=xterm: one TERM, the new value.
    assert!(has("TERM=dumb"), "{out}");
    assert!(has("TERMS=1"), "{out}");
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
    // A --pid-file that cannot be written.
    let out = env.rt(&[
        "exec",
        "--pid-file",
        "/nonexistent/dir/pid",
        &env.id,
        "true",
    ]);
    assert_eq!(out.code(), Some(255), "exec with a bad --pid-file: {out}");
    // Nor a program that is not there, in runc's words.
    let out = env.rt(&["exec", &env.id, "/no/such/program"]);
    assert_eq!(out.code(), Some(255), "{out}");
    out.stderr_has_all(&["exec", "/no/such/program", "no such file or directory"]);
    env.rt(&["delete", "--force", &env.id]).ok();
}

/// The `Pid:` a pidfd's fdinfo names.
fn pidfd_pid(fd: &std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap_or_else(|| panic!("not a pidfd: {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// `--pidfd-socket` (runc 1.2): create and exec send a pidfd of the container's init and of
/// the new process over the socket; a socket nobody listens on fails before anything is made.
#[test]
fn pidfd_socket_for_create_and_exec() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.write_bundle(&spec);
    let sock = ConsoleReceiver::bind(env.dir.join("pidfd.sock"));
    env.create_with(&env.id, &["--pidfd-socket", sock.path_str()])
        .ok();
    let (fd, _) = sock.recv();
    assert_eq!(pidfd_pid(&fd), env.init_pid());
    env.rt(&["start", &env.id]).ok();

    let sock2 = ConsoleReceiver::bind(env.dir.join("pidfd2.sock"));
    let pid_file = env.dir.join("exec.pid");
    exec(
        &env,
        &[
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--pidfd-socket",
            sock2.path_str(),
            &env.id,
            "sleep",
            "1000",
        ],
    )
    .ok();
    let (fd2, _) = sock2.recv();
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pidfd_pid(&fd2), pid);

    let nobody = env.dir.join("nobody.sock");
    exec(
        &env,
        &["--pidfd-socket", nobody.to_str().unwrap(), &env.id, "true"],
    )
    .failed()
    .stderr_has_all(&["--pidfd-socket"]);
    env.rt(&["delete", "--force", &env.id]).ok();
    // The exec'd process is ours (the subreaper's) to reap, and init, dying, waits in the
    // kernel until every process of its pid namespace has been reaped.
    reap_if_child(pid, std::time::Duration::from_secs(5));
    env.wait_init();
    env.assert_clean();
}

/// `exec --cgroup` (runc 1.2): PATH alone puts the process in that sub-cgroup of every
/// hierarchy, CONTROLLER:PATH in one hierarchy's; a sub-cgroup that is not there, a path
/// that leaves the container's cgroup, and several PATHs without controllers are refused.
#[test]
fn exec_into_sub_cgroups() {
    let env = test_env!();
    start_container(&env, None, |_| {});
    let dirs = cgroup_dirs(&env.cgroups_path());
    assert!(!dirs.is_empty());
    for d in &dirs {
        fs::create_dir(d.join("sub")).unwrap();
        // A v1 cpuset cgroup takes tasks only once it has CPUs and memory nodes.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = fs::read_to_string(d.join(f)) {
                fs::write(d.join("sub").join(f), v.trim()).unwrap();
            }
        }
    }
    let out = exec(
        &env,
        &["--cgroup", "sub", &env.id, "cat", "/proc/self/cgroup"],
    );
    out.ok();
    let lines = out.lines();
    // Each of the container's hierarchies: its path ends in /sub.
    let cg = env.cgroups_path();
    let mine: Vec<&String> = lines.iter().filter(|l| l.contains(cg.as_str())).collect();
    assert!(!mine.is_empty(), "{lines:?}");
    for l in &mine {
        assert!(l.ends_with(&format!("{cg}/sub")), "{l} (all: {lines:?})");
    }
    // One hierarchy by controller (v1 hosts: pids; v2: the path alone is the only form).
    let v1_pids = dirs.iter().any(|d| d.starts_with("/sys/fs/cgroup/pids"));
    if v1_pids {
        let lines = exec(
            &env,
            &["--cgroup", "pids:sub", &env.id, "cat", "/proc/self/cgroup"],
        )
        .lines();
        for l in lines.iter().filter(|l| l.contains(cg.as_str())) {
            let is_pids = l.split(':').nth(1) == Some("pids");
            assert_eq!(l.ends_with("/sub"), is_pids, "{l} (all: {lines:?})");
        }
    }
    // runc words them "no such file or directory" and "not a sub cgroup path".
    for (args, needles) in [
        (
            vec!["--cgroup", "nope"],
            &["no such cgroup", "no such file"][..],
        ),
        (
            vec!["--cgroup", "../x"],
            &["below the container", "not a sub cgroup"][..],
        ),
        (
            vec!["--cgroup", "sub", "--cgroup", "sub"],
            &["CONTROLLER", "controller"][..],
        ),
    ] {
        let mut a = args.clone();
        a.extend([env.id.as_str(), "true"]);
        exec(&env, &a).failed().stderr_has_any(needles);
    }
    // kill --all reaches the processes of the sub-cgroups too.
    // (Detached: its stdio is /dev/null, not pipes the harness would wait on.)
    let pid_file = env.dir.join("sub.pid");
    let pf = pid_file.to_str().unwrap().to_string();
    let st = env
        .command(&[
            "exec",
            "-d",
            "--cgroup",
            "sub",
            "--pid-file",
            &pf,
            &env.id,
            "sleep",
            "1001",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "exec -d --cgroup sub: {st}");
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    env.rt(&["kill", "--all", &env.id, "TERM"]).ok();
    let ended = reap_if_child(pid, std::time::Duration::from_secs(10));
    assert!(
        ended.is_some(),
        "the sub-cgroup's sleep {pid} outlived kill --all TERM"
    );
    env.rt(&["delete", "--force", &env.id]).ok();
    env.wait_init();
    env.assert_clean();
}

fn online_cpus() -> usize {
    // SAFETY: sysconf with a valid name.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) as usize }
}

/// `cmd` started on CPU `cpu` only (as a caller pinned by systemd's CPUAffinity= is).
fn pinned(mut cmd: std::process::Command, cpu: usize) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls sched_setaffinity, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn thread_affinity() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is valid; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

fn set_thread_affinity(cpus: &[usize]) {
    // SAFETY: a valid cpu_set_t for sched_setaffinity on this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        let r = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    }
}

fn allowed_list(out: &Out) -> String {
    out.lines()
        .iter()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {out}"))
}

/// execCPUAffinity (runtime-spec 1.2): `final` is the process's affinity; `initial` the
/// runtime's while it starts it. Without `final`, a pinned caller's mask is not inherited:
/// the process (and a container's init) gets every CPU its cgroup allows (runc 1.3.1).
#[test]
fn exec_cpu_affinity() {
    let env = test_env!();
    let n = online_cpus();
    if n < 2 {
        eprintln!("skipped: needs 2 CPUs, {n} online");
        return;
    }
    let all = format!("0-{}", n - 1);
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    // create from this thread pinned to CPU 1 (children inherit the thread's mask).
    let saved = thread_affinity();
    set_thread_affinity(&[1]);
    env.create_ok(&spec);
    set_thread_affinity(&saved);
    env.rt(&["start", &env.id]).ok();
    let init = env.state()["pid"].as_i64().unwrap();
    let st = fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    assert!(
        st.contains(&format!("Cpus_allowed_list:\t{all}\n")),
        "init of a create pinned to CPU 1:\n{st}"
    );
    // exec from a pinned caller, no execCPUAffinity: every CPU.
    let cmd = env.command(&["exec", &env.id, "cat", "/proc/self/status"]);
    let out = run_cmd(&mut pinned(cmd, 1), std::time::Duration::from_secs(30));
    assert_eq!(allowed_list(&out), all, "{out}");
    // final.
    let pj = env.dir.join("process.json");
    let proc = |aff: Value, args: &[&str]| {
        fs::write(
            &pj,
            json!({"args": args, "cwd": "/", "env": ["PATH=/bin:/usr/bin"],
                   "user": {"uid": 0, "gid": 0}, "execCPUAffinity": aff})
            .to_string(),
        )
        .unwrap();
    };
    proc(
        json!({"initial": "0", "final": "1"}),
        &["cat", "/proc/self/status"],
    );
    let out = exec(&env, &["--process", pj.to_str().unwrap(), &env.id]);
    assert_eq!(allowed_list(&out), "1", "{out}");
    // initial: the runtime runs there while it starts the process (seen on the waiting rrun).
    proc(json!({"initial": "1"}), &["sleep", "2"]);
    let mut child = env
        .command(&["exec", "--process", pj.to_str().unwrap(), &env.id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_of = format!("/proc/{}/status", child.id());
    let seen = wait_until(std::time::Duration::from_secs(2), || {
        fs::read_to_string(&status_of).is_ok_and(|s| s.contains("Cpus_allowed_list:\t1\n"))
    });
    let st = wait_child(&mut child, "exec", std::time::Duration::from_secs(30));
    assert!(st.success());
    assert!(seen, "the runtime never ran on CPU 1 alone");
    // A list that is not one: the JSON path in the error.
    proc(json!({"final": "1-0"}), &["true"]);
    exec(&env, &["--process", pj.to_str().unwrap(), &env.id])
        .failed()
        .stderr_has_all(&["execCPUAffinity"]);
    env.rt(&["delete", "--force", &env.id]).ok();
    env.wait_init();
    env.assert_clean();
}

/// An exec'd process gets the container's `process.oomScoreAdj` (runc: every process of the
/// container is judged alike by the OOM killer), with or without `--process`; a process.json
/// with its own value keeps it (runc 1.1.5 ignores it). Found by `make test-cri` (ExecSync
/// saw 1, not 500).
#[test]
fn exec_gets_the_containers_oom_score_adj() {
    let env = test_env!();
    start_container(&env, None, |spec| {
        set(spec, "/process/oomScoreAdj", json!(500));
    });
    let out = exec(&env, &[&env.id, "cat", "/proc/self/oom_score_adj"]);
    out.ok();
    assert_eq!(out.lines(), ["500"], "{out}");
    let pj = env.dir.join("process.json");
    let write = |v: Value| std::fs::write(&pj, v.to_string()).unwrap();
    write(json!({"args": ["cat", "/proc/self/oom_score_adj"], "cwd": "/", "env": ["PATH=/bin"]}));
    let out = env.rt(&["exec", "--process", pj.to_str().unwrap(), &env.id]);
    out.ok();
    assert_eq!(out.lines(), ["500"], "{out}");
    write(
        json!({"args": ["cat", "/proc/self/oom_score_adj"], "cwd": "/", "env": ["PATH=/bin"], "oomScoreAdj": 600}),
    );
    let out = env.rt(&["exec", "--process", pj.to_str().unwrap(), &env.id]);
    out.ok();
    // runc 1.1.5 ignores a process.json's own value (the container's wins).
    let runc = runtime_bin().ends_with("runc");
    let want = if runc { "500" } else { "600" };
    assert_eq!(out.lines(), [want], "{out}");
    env.rt(&["delete", "--force", &env.id]).ok();
}
