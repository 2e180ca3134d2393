//! Terminals: `process.terminal` with `--console-socket` (the pty master
//! handed over with SCM_RIGHTS, consoleSize, /dev/console), `exec -t` with a
//! console socket, foreground `run` and `exec -t` proxying the pty to the
//! runtime's own terminal (raw mode, resizes, exit status, termios restored),
//! and the refusals for a terminal nobody could receive.

use std::fs;
use std::os::fd::AsRawFd;
use std::thread;

use serde_json::{Value, json};

use crate::common::*;

/// The busybox shell's prompt ends so (root: `/ # `).
const PROMPT: &str = "# ";

fn tty_spec(env: &TestEnv, args: &[&str]) -> Value {
    let mut spec = env.spec();
    set_args(&mut spec, args);
    set(&mut spec, "/process/terminal", json!(true));
    spec
}

/// `sleep 1000` with hostname `host`, created and started (no terminal).
fn start_sleeper(env: &TestEnv, host: &str) {
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    set(&mut spec, "/hostname", json!(host));
    env.create_and_start(&spec);
}

fn console_receiver(env: &TestEnv) -> ConsoleReceiver {
    ConsoleReceiver::bind(env.dir.join("console.sock"))
}

/// Checks what a console socket delivered: runc's payload, and a pty master
/// of the container's own devpts instance (not the host's /dev/pts).
#[track_caller]
fn check_master(master: &std::os::fd::OwnedFd, payload: &str) {
    assert_eq!(payload, "/dev/ptmx", "console socket payload");
    // SAFETY: isatty on a valid fd.
    assert_eq!(
        unsafe { libc::isatty(master.as_raw_fd()) },
        1,
        "the received fd is not a terminal"
    );
    let fdinfo =
        fs::read_to_string(format!("/proc/self/fdinfo/{}", master.as_raw_fd())).unwrap_or_default();
    assert!(
        fdinfo.contains("tty-index:"),
        "the received fd is not a pty master:\n{fdinfo}"
    );
    let host_ptmx = fs::metadata("/dev/pts/ptmx").expect("host /dev/pts/ptmx");
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        fd_stat(master).st_dev,
        host_ptmx.dev(),
        "the pty comes from the host's devpts, not the container's"
    );
}

/// The `N` of a `/dev/pts/N` line of `text`.
fn pts_line(text: &str) -> Option<String> {
    text.lines().map(str::trim).find_map(|l| {
        let n = l.strip_prefix("/dev/pts/")?;
        (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit())).then(|| n.to_string())
    })
}

fn has_line(text: &str, want: &str) -> bool {
    text.lines().any(|l| l.trim() == want)
}

/// Asks the shell on `pty` for its terminal size until it reports `want`
/// (a resize reaches the inner pty asynchronously); returns the last answer.
fn wait_for_size(pty: &mut PtyIo, want: &str) -> String {
    let mut last = String::new();
    for i in 0..100 {
        // `$((i))` keeps the echoed input from matching the marker.
        pty.write(&format!("echo sz{i}-$(({i})) $(stty size)\n"));
        match pty.expect_line(&format!("sz{i}-{i} "), WAIT_TIMEOUT) {
            Some(l) if l == want => return l,
            Some(l) => last = l,
            None => panic!("no answer to stty size; output:\n{}", pty.text()),
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
    last
}

/// ECHO and ICANON on: a cooked terminal, as before the runtime's raw mode.
#[track_caller]
fn assert_cooked(pty: &PtyIo, what: &str) {
    let t = pty.termios();
    assert!(
        t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0,
        "{what}: the terminal was left in raw mode (c_lflag {:#o})",
        t.c_lflag
    );
}

#[test]
fn terminal_console_socket_create_start() {
    let env = test_env!();
    let mut spec = tty_spec(&env, &["sh"]);
    set(
        &mut spec,
        "/process/consoleSize",
        json!({"height": 33, "width": 101}),
    );
    env.write_bundle(&spec);
    let rx = console_receiver(&env);
    env.create_with(&env.id, &["--console-socket", rx.path_str()])
        .ok();
    let (master, payload) = rx.recv();
    check_master(&master, &payload);
    assert_eq!(env.status(), "created");
    let mut pty = PtyIo::new(master);
    env.rt(&["start", &env.id]).ok();
    assert!(
        pty.expect(PROMPT, WAIT_TIMEOUT),
        "no shell prompt on the pty:\n{:?}",
        pty.text()
    );
    pty.write("tty; stty size; echo done-$((6*7)); exit 3\n");
    assert!(
        pty.read_to_eof(WAIT_TIMEOUT),
        "the pty never reached EOF:\n{:?}",
        pty.text()
    );
    let text = pty.text();
    assert!(pts_line(&text).is_some(), "tty is not /dev/pts/N:\n{text}");
    assert!(
        has_line(&text, "33 101"),
        "stty size does not match consoleSize 33x101:\n{text}"
    );
    assert!(has_line(&text, "done-42"), "{text}");
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Code(3));
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

#[test]
fn terminal_dev_console_is_the_pty() {
    let env = test_env!();
    let spec = tty_spec(
        &env,
        &[
            "sh",
            "-c",
            "stat -c 'console=%t,%T' /dev/console; \
             [ /dev/console -ef \"$(tty)\" ] && echo console-is-tty; \
             echo via-console-$((40+2)) > /dev/console; \
             [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo stdio-are-ttys; \
             echo \"sid=$(cut -d' ' -f6 /proc/self/stat) pid=$$\"",
        ],
    );
    env.write_bundle(&spec);
    let rx = console_receiver(&env);
    env.create_with(&env.id, &["--console-socket", rx.path_str()])
        .ok();
    let (master, payload) = rx.recv();
    check_master(&master, &payload);
    let mut pty = PtyIo::new(master);
    env.rt(&["start", &env.id]).ok();
    assert!(pty.read_to_eof(WAIT_TIMEOUT), "{:?}", pty.text());
    let text = pty.text();
    // pts devices have major 136 (0x88).
    assert!(
        text.lines().any(|l| l.trim().starts_with("console=88,")),
        "/dev/console is not a pts device:\n{text}"
    );
    assert!(has_line(&text, "console-is-tty"), "{text}");
    assert!(
        has_line(&text, "via-console-42"),
        "writing /dev/console does not reach the master:\n{text}"
    );
    assert!(has_line(&text, "stdio-are-ttys"), "{text}");
    // The process leads its session (it has the pty as controlling
    // terminal): the session id is its own pid.
    let sid_line = text
        .lines()
        .find(|l| l.starts_with("sid="))
        .unwrap_or_else(|| panic!("no sid line:\n{text}"));
    let mut parts = sid_line.split_whitespace();
    let sid = parts.next().unwrap().trim_start_matches("sid=");
    let pid = parts.next().unwrap_or("").trim_start_matches("pid=");
    assert_eq!(sid, pid, "not a session leader:\n{text}");
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Code(0));
}

/// `exec -d -t --console-socket`: the form runc accepts.
#[test]
fn terminal_exec_detached_console_socket() {
    let env = test_env!();
    start_sleeper(&env, "it-tty-exec");
    let rx = console_receiver(&env);
    let pid_file = env.dir.join("exec.pid");
    env.rt_to_files(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        rx.path_str(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &env.id,
        "sh",
    ])
    .ok();
    let (master, payload) = rx.recv();
    check_master(&master, &payload);
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid in pid file");
    let mut pty = PtyIo::new(master);
    assert!(pty.expect(PROMPT, WAIT_TIMEOUT), "{:?}", pty.text());
    pty.write("hostname; tty; echo exec-$((5*5)); exit 4\n");
    assert!(pty.read_to_eof(WAIT_TIMEOUT), "{:?}", pty.text());
    let text = pty.text();
    assert!(has_line(&text, "it-tty-exec"), "{text}");
    assert!(pts_line(&text).is_some(), "{text}");
    assert!(has_line(&text, "exec-25"), "{text}");
    assert_eq!(
        reap_if_child(pid, WAIT_TIMEOUT),
        Some(Exit::Code(4)),
        "exit of the detached exec process {pid}"
    );
    assert_eq!(env.status(), "running");
}

/// `exec -t --console-socket` without --detach: the master goes to the
/// socket and exec waits for the process. (runc refuses this combination:
/// "cannot use console socket if runc will not detach or allocate tty".)
#[test]
fn terminal_exec_foreground_console_socket() {
    let env = test_env!();
    start_sleeper(&env, "it-tty-exec-fg");
    let rx = console_receiver(&env);
    let mut cmd = env.command(&[
        "exec",
        "-t",
        "--console-socket",
        rx.path_str(),
        &env.id,
        "sh",
    ]);
    let exec = thread::spawn(move || run_cmd(&mut cmd, CMD_TIMEOUT));
    let Some((master, payload)) = rx.try_recv(WAIT_TIMEOUT) else {
        panic!(
            "no master on the console socket; exec:\n{}",
            exec.join().unwrap()
        );
    };
    check_master(&master, &payload);
    let mut pty = PtyIo::new(master);
    assert!(pty.expect(PROMPT, WAIT_TIMEOUT), "{:?}", pty.text());
    pty.write("hostname; echo fg-$((7*3)); exit 6\n");
    assert!(pty.read_to_eof(WAIT_TIMEOUT), "{:?}", pty.text());
    let out = exec.join().unwrap();
    assert_eq!(out.code(), Some(6), "{out}");
    let text = pty.text();
    assert!(has_line(&text, "it-tty-exec-fg"), "{text}");
    assert!(has_line(&text, "fg-21"), "{text}");
    assert_eq!(env.status(), "running");
}

/// Foreground `run` on a terminal: the runtime proxies its own pty (raw
/// mode) to the container's, passes its size on at start and on SIGWINCH,
/// returns the process's exit status and restores the terminal.
#[test]
fn terminal_run_foreground_on_pty() {
    let env = test_env!();
    let mut spec = tty_spec(&env, &["sh"]);
    set(&mut spec, "/hostname", json!("it-tty-run"));
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    let (mut child, mut pty) =
        spawn_on_pty(env.command(&["run", "--bundle", &bundle, &env.id]), 40, 120);
    assert!(pty.expect(PROMPT, WAIT_TIMEOUT), "{:?}", pty.text());
    pty.write("tty; hostname\n");
    assert!(pty.expect("it-tty-run\n", WAIT_TIMEOUT), "{:?}", pty.text());
    assert!(pts_line(&pty.text()).is_some(), "{:?}", pty.text());
    // The runtime's terminal size is the container's.
    assert_eq!(wait_for_size(&mut pty, "40 120"), "40 120");
    // A resize of the runtime's terminal reaches the container's.
    pty.set_size(50, 130);
    assert_eq!(wait_for_size(&mut pty, "50 130"), "50 130");
    pty.write("echo hi-$((2+3)); exit 5\n");
    let status = wait_child(&mut child, "rrun run", WAIT_TIMEOUT);
    assert_cooked(&pty, "after `run` returned");
    pty.read_to_eof(WAIT_TIMEOUT);
    let text = pty.text();
    assert!(has_line(&text, "hi-5"), "{text}");
    assert_eq!(status.code(), Some(5), "run's status; output:\n{text}");
    let listed = env.list_quiet();
    assert!(
        !listed.contains(&env.id),
        "container still listed after `run`"
    );
    env.assert_clean();
}

/// Foreground `exec -t` on a terminal, the same way.
#[test]
fn terminal_exec_foreground_on_pty() {
    let env = test_env!();
    start_sleeper(&env, "it-tty-exec-pty");
    let (mut child, mut pty) = spawn_on_pty(env.command(&["exec", "-t", &env.id, "sh"]), 30, 90);
    assert!(pty.expect(PROMPT, WAIT_TIMEOUT), "{:?}", pty.text());
    assert_eq!(wait_for_size(&mut pty, "30 90"), "30 90");
    pty.set_size(31, 91);
    assert_eq!(wait_for_size(&mut pty, "31 91"), "31 91");
    pty.write("hostname; tty; echo x-$((3*4)); exit 6\n");
    let status = wait_child(&mut child, "rrun exec -t", WAIT_TIMEOUT);
    assert_cooked(&pty, "after `exec -t` returned");
    pty.read_to_eof(WAIT_TIMEOUT);
    let text = pty.text();
    assert!(has_line(&text, "it-tty-exec-pty"), "{text}");
    assert!(pts_line(&text).is_some(), "{text}");
    assert!(has_line(&text, "x-12"), "{text}");
    assert_eq!(status.code(), Some(6), "exec's status; output:\n{text}");
    assert_eq!(env.status(), "running");
}

/// A console socket message needle: runc says "console socket", rrun
/// "--console-socket".
const CONSOLE_SOCKET: &[&str] = &["console-socket", "console socket"];

#[test]
fn terminal_create_without_console_socket_refused() {
    let env = test_env!();
    env.write_bundle(&tty_spec(&env, &["sh"]));
    env.create(&env.id).failed().stderr_has_any(CONSOLE_SOCKET);
    env.assert_clean();
    assert!(env.list_quiet().is_empty());
}

#[test]
fn terminal_run_detached_without_console_socket_refused() {
    let env = test_env!();
    env.write_bundle(&tty_spec(&env, &["sh"]));
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    env.rt_to_files(&["run", "-d", "--bundle", &bundle, &env.id])
        .failed()
        .stderr_has_any(CONSOLE_SOCKET);
    env.assert_clean();
    assert!(env.list_quiet().is_empty());
}

/// `--console-socket` without a terminal: runc refuses ("cannot use console
/// socket if runc will not detach or allocate tty"), and so does rrun.
#[test]
fn terminal_console_socket_without_terminal_refused() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["true"]);
    env.write_bundle(&spec);
    let rx = console_receiver(&env);
    env.create_with(&env.id, &["--console-socket", rx.path_str()])
        .failed()
        .stderr_has_any(CONSOLE_SOCKET);
    assert!(
        rx.try_recv(std::time::Duration::from_millis(200)).is_none(),
        "an fd was sent over the console socket"
    );
    env.assert_clean();
}

/// exec: a console socket without -t, and -t with --detach but no console
/// socket, are refused and leave the container alone.
#[test]
fn terminal_exec_refusals() {
    let env = test_env!();
    start_sleeper(&env, "it-tty-refuse");
    let rx = console_receiver(&env);
    env.rt(&[
        "exec",
        "--console-socket",
        rx.path_str(),
        &env.id,
        "sh",
        "-c",
        "echo ran > /dev/null",
    ])
    .failed()
    .stderr_has_any(CONSOLE_SOCKET);
    assert!(
        rx.try_recv(std::time::Duration::from_millis(200)).is_none(),
        "an fd was sent over the console socket"
    );
    env.rt_to_files(&["exec", "-d", "-t", &env.id, "sleep", "1000"])
        .failed()
        .stderr_has_any(CONSOLE_SOCKET);
    // Neither exec left a process in the container.
    let procs = fs::read_to_string(format!(
        "/sys/fs/cgroup/pids{}/cgroup.procs",
        env.cgroups_path()
    ))
    .expect("pids cgroup.procs");
    assert_eq!(
        procs.lines().count(),
        1,
        "processes in the container: {procs:?}"
    );
    assert_eq!(env.status(), "running");
    env.rt(&["exec", &env.id, "true"]).ok();
}

/// runc clears ONLCR on the container's pty (Debian's runc 1.1.5 predates it: this test fails
/// against it): what the process prints ends its lines with
/// `\n`, not `\r\n` (tools compare the output of `run -t`/`exec -t` line by line).
#[test]
fn terminal_output_lines_end_in_newline_only() {
    let env = test_env!();
    let spec = tty_spec(&env, &["printf", "one\\ntwo\\n"]);
    env.write_bundle(&spec);
    let rx = console_receiver(&env);
    env.create_with(&env.id, &["--console-socket", rx.path_str()])
        .ok();
    let (master, _) = rx.recv();
    let mut pty = PtyIo::new(master);
    env.rt(&["start", &env.id]).ok();
    assert!(pty.read_to_eof(WAIT_TIMEOUT), "no EOF:\n{:?}", pty.text());
    let text = pty.raw_text();
    assert!(text.contains("one\ntwo\n"), "{text:?}");
    assert!(
        !text.contains('\r'),
        "carriage returns in the output: {text:?}"
    );
    env.wait_for_status("stopped");
    env.wait_init();
    env.rt(&["delete", &env.id]).ok();
}
