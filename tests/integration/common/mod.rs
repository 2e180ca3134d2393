//! Shared helpers: runtime selection, per-test bundles and state dirs, command
//! execution with timeouts, config editing, and the per-test guard that
//! deletes containers, reaps their init processes and checks for leftovers.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Upper bound for any single runtime invocation.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound when waiting for a container to reach a state or produce output.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// All test cgroups live under this test-owned parent (never under the
/// machine's own cgroups).
pub const CGROUP_PARENT: &str = "rrun-test";
/// Environment variable put into every container process; lets the leftover
/// check find stray container processes of one test.
const TOKEN_VAR: &str = "RRUN_IT_TOKEN";
/// Set in the environment of every runtime invocation; it must not leak into
/// the container (`process.env` is the complete environment).
pub const LEAK_VAR: &str = "RRUN_IT_RUNTIME_ENV_LEAK";

static SUBREAPER: Once = Once::new();
static SEQ: AtomicUsize = AtomicUsize::new(0);
/// Number of live `TestEnv`s; the empty `/rrun-test` parent cgroups are only
/// removed when it drops to zero, so no other test is racing to create a leaf.
static ACTIVE: Mutex<usize> = Mutex::new(0);
static NAMES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// `TestEnv` for the calling test function, named after it.
macro_rules! test_env {
    () => {{
        fn f() {}
        fn type_name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        let full = type_name_of(f);
        let full = full.strip_suffix("::f").unwrap_or(full);
        let name = full.rsplit("::").next().unwrap_or(full);
        $crate::common::TestEnv::new(name)
    }};
}

// ---------------------------------------------------------------------------
// Locations

/// The runtime under test: `$RUNTIME`, else `$RRUN_BIN`, else the `rrun`
/// binary built by cargo for this package.
pub fn runtime_bin() -> PathBuf {
    for var in ["RUNTIME", "RRUN_BIN"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let p = PathBuf::from(v);
            // Commands run in the test's temp dir: anchor relative paths
            // (a bare name is left to the PATH lookup).
            if p.is_relative() && p.components().count() > 1 {
                return fs::canonicalize(&p).unwrap_or(p);
            }
            return p;
        }
    }
    PathBuf::from(env!("CARGO_BIN_EXE_rrun"))
}

pub fn repo_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    fs::canonicalize(&dir).unwrap_or(dir)
}

fn template_path() -> PathBuf {
    repo_root().join("bundles/busybox/config.json")
}

/// The shared, read-only busybox rootfs of `bundles/busybox`.
pub fn shared_rootfs() -> PathBuf {
    // Canonical: runtimes refuse a rootfs path that goes through a symlink.
    let p = repo_root().join("bundles/busybox/rootfs");
    fs::canonicalize(&p).unwrap_or(p)
}

// ---------------------------------------------------------------------------
// Command output

/// Exit status and captured output of one command.
pub struct Out {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics unless the command exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Panics unless the command failed (non-zero exit, or killed).
    #[track_caller]
    pub fn failed(&self) -> &Self {
        assert!(!self.success(), "expected failure:\n{self}");
        self
    }

    /// Panics unless stderr contains (case-insensitively) at least one of
    /// `needles`.
    #[track_caller]
    pub fn stderr_has_any(&self, needles: &[&str]) -> &Self {
        let err = self.stderr.to_lowercase();
        assert!(
            needles.iter().any(|n| err.contains(&n.to_lowercase())),
            "expected stderr to mention one of {needles:?}:\n{self}"
        );
        self
    }

    /// Panics unless stderr contains (case-insensitively) all of `needles`.
    #[track_caller]
    pub fn stderr_has_all(&self, needles: &[&str]) -> &Self {
        let err = self.stderr.to_lowercase();
        for n in needles {
            assert!(
                err.contains(&n.to_lowercase()),
                "expected stderr to mention {n:?}:\n{self}"
            );
        }
        self
    }

    /// Non-empty stdout lines, trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  command: {}", self.what)?;
        writeln!(f, "  status:  {}", self.status)?;
        writeln!(f, "  stdout:  {:?}", self.stdout)?;
        write!(f, "  stderr:  {:?}", self.stderr)
    }
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&format!("{:?}", a.to_string_lossy()));
    }
    s
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

/// Waits for `child` up to `timeout`; on timeout kills it (it is our own
/// child) and panics.
pub fn wait_child(child: &mut std::process::Child, what: &str, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("timed out after {timeout:?}: {what}");
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured, with a
/// timeout.
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Out {
    run_cmd_with(cmd, None, timeout)
}

/// `run_cmd` with `input` (if any) written to the command's stdin (then closed).
fn run_cmd_with(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Out {
    let what = describe(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    let out_rx = drain(child.stdout.take());
    let err_rx = drain(child.stderr.take());
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_vec();
        // A writer thread: a command that does not read its stdin must not
        // block the test.
        thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let status = wait_child(&mut child, &what, timeout);
    // A process left behind by the command could keep the pipes open; do not
    // hang on it (the leftover check reports such processes).
    let grace = Duration::from_secs(10);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    Out {
        what,
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs a host tool (e.g. `ip`) and panics if it fails.
#[track_caller]
pub fn host(prog: &str, args: &[&str]) -> Out {
    let out = run_cmd(Command::new(prog).args(args), CMD_TIMEOUT);
    out.ok();
    out
}

// ---------------------------------------------------------------------------
// Processes

/// How a process ended, from waitpid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn from_raw(status: i32) -> Exit {
        let s = ExitStatus::from_raw(status);
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            _ => Exit::Code(-1),
        }
    }
}

fn set_subreaper() {
    SUBREAPER.call_once(|| {
        // Detached container inits (after `create` returns) are reparented
        // to the nearest subreaper: this test process.
        // SAFETY: plain prctl call with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(r, 0, "prctl(PR_SET_CHILD_SUBREAPER) failed");
    });
}

/// Start time (field 22 of /proc/PID/stat) identifies a process across pid
/// reuse.
pub fn proc_starttime(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Process state letter (R, S, Z, ...) from /proc/PID/stat.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

fn same_process_exists(pid: i32, starttime: Option<u64>) -> bool {
    match (proc_starttime(pid), starttime) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

enum Reap {
    Exited(Exit),
    NotOurChild,
    TimedOut,
}

/// Reaps exactly `pid` (never -1: other test threads own their children).
fn reap(pid: i32, timeout: Duration) -> Reap {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Reap::Exited(Exit::from_raw(status));
        }
        if r < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Reap::NotOurChild;
        }
        if Instant::now() >= deadline {
            return Reap::TimedOut;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn kill_pid(pid: i32) {
    // SAFETY: sending SIGKILL to a pid that belongs to this test's container.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

fn is_our_child(pid: i32) -> bool {
    let me = std::process::id().to_string();
    fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            s.lines()
                .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(me.as_str()))
        })
        .unwrap_or(false)
}

fn all_pids() -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Processes of container `id`: those carrying its token in their
/// environment, and those in its cgroup.
fn container_processes(id: &str) -> Vec<(i32, String)> {
    let token = format!("{TOKEN_VAR}={id}");
    let cg = format!("/{CGROUP_PARENT}/{id}");
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for pid in all_pids() {
        if pid == me {
            continue;
        }
        let env_hit = fs::read(format!("/proc/{pid}/environ"))
            .map(|env| env.split(|b| *b == 0).any(|kv| kv == token.as_bytes()))
            .unwrap_or(false);
        let cg_hit = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map(|c| {
                c.lines().any(|l| {
                    let path = l.splitn(3, ':').nth(2).unwrap_or("");
                    path == cg || path.starts_with(&format!("{cg}/"))
                })
            })
            .unwrap_or(false);
        if env_hit || cg_hit {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_string()));
        }
    }
    found
}

/// Polls `cond` every 10ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// Mounts and cgroups of the host (the test's mount namespace)

fn mountinfo() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn unescape_mount_path(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Mount points of all cgroup (v1 and v2) hierarchies.
pub fn cgroup_mountpoints() -> Vec<PathBuf> {
    let mut mps = Vec::new();
    for line in mountinfo() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = post.split_whitespace().next().unwrap_or("");
        if (fstype == "cgroup" || fstype == "cgroup2")
            && let Some(mp) = pre.split_whitespace().nth(4)
        {
            mps.push(PathBuf::from(unescape_mount_path(mp)));
        }
    }
    mps
}

/// Existing cgroup directories `<hierarchy>/<cgroups_path>`.
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    cgroup_mountpoints()
        .into_iter()
        .map(|mp| mp.join(rel))
        .filter(|p| p.is_dir())
        .collect()
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..200 {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
                kill_pid(pid);
                if is_our_child(pid) {
                    let _ = reap(pid, Duration::from_millis(100));
                }
            }
        }
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// config.json editing

/// The bundle template, `bundles/busybox/config.json`.
pub fn template() -> Value {
    let path = template_path();
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("template config.json is valid JSON")
}

/// Sets the value at JSON pointer `ptr`, creating missing objects on the way.
pub fn set(spec: &mut Value, ptr: &str, value: Value) {
    let mut cur = spec;
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            Value::Array(a) => {
                let idx: usize = part.parse().expect("array index");
                &mut a[idx]
            }
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                let obj = other.as_object_mut().unwrap();
                obj.entry(part.to_string()).or_insert(Value::Null)
            }
        };
        if last {
            *cur = value;
            return;
        }
    }
}

pub fn set_args(spec: &mut Value, args: &[&str]) {
    set(spec, "/process/args", json!(args));
}

/// `["sh", "-c", script]`
pub fn set_script(spec: &mut Value, script: &str) {
    set_args(spec, &["sh", "-c", script]);
}

pub fn add_mount(spec: &mut Value, mount: Value) {
    spec["mounts"]
        .as_array_mut()
        .expect("mounts array")
        .push(mount);
}

pub fn remove_mount(spec: &mut Value, destination: &str) {
    spec["mounts"]
        .as_array_mut()
        .expect("mounts array")
        .retain(|m| m["destination"] != destination);
}

pub fn bind_mount(source: &Path, destination: &str, options: &[&str]) -> Value {
    json!({
        "destination": destination,
        "type": "bind",
        "source": source.to_str().expect("utf-8 path"),
        "options": options,
    })
}

pub fn namespaces(spec: &mut Value) -> &mut Vec<Value> {
    spec["linux"]["namespaces"]
        .as_array_mut()
        .expect("linux.namespaces array")
}

pub fn add_namespace(spec: &mut Value, ns: Value) {
    namespaces(spec).push(ns);
}

pub fn remove_namespace(spec: &mut Value, typ: &str) {
    namespaces(spec).retain(|n| n["type"] != typ);
}

pub fn push_env(spec: &mut Value, kv: &str) {
    spec["process"]["env"]
        .as_array_mut()
        .expect("process.env array")
        .push(json!(kv));
}

/// The runtime's `features` document, if it implements that command.
pub fn runtime_features() -> Option<Value> {
    let out = run_cmd(Command::new(runtime_bin()).arg("features"), CMD_TIMEOUT);
    if !out.success() {
        return None;
    }
    serde_json::from_str(&out.stdout).ok()
}

// ---------------------------------------------------------------------------
// The per-test environment and guard

struct Init {
    pid: i32,
    starttime: Option<u64>,
    reaped: bool,
}

/// One test's private world: temp dir, `--root` state dir, bundle, container
/// id and cgroup. Dropping it deletes the containers, reaps their inits,
/// removes the temp dir and asserts that nothing was left behind.
pub struct TestEnv {
    pub name: String,
    /// The container id, `it-<test name>-<pid>`.
    pub id: String,
    /// Private temp dir under /tmp.
    pub dir: PathBuf,
    /// `--root` state dir.
    pub root: PathBuf,
    /// Bundle dir (config.json is written here; rootfs is referenced by an
    /// absolute path).
    pub bundle: PathBuf,
    ids: RefCell<Vec<String>>,
    inits: RefCell<Vec<Init>>,
    creates: Cell<usize>,
    last_create_out: RefCell<Option<PathBuf>>,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        set_subreaper();
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "integration tests need root");
        assert!(
            shared_rootfs().join("bin/busybox").exists(),
            "{} is missing: run `make bundles`",
            shared_rootfs().display()
        );
        let pid = std::process::id();
        // Keep ids (and so state paths) short: some runtimes put unix sockets
        // in the state dir, and sun_path is limited to 108 bytes.
        let short: String = name.chars().take(32).collect();
        assert!(
            NAMES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(short.clone()),
            "test name prefix {short:?} is used twice"
        );
        let id = format!("it-{short}-{pid}");
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/rit-{pid}-{seq}"));
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("remove stale temp dir");
        }
        fs::create_dir_all(&dir).expect("create temp dir");
        fs::write(dir.join("TEST"), format!("{name}\n")).expect("write TEST");
        let root = dir.join("state");
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).expect("create bundle dir");
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let env = TestEnv {
            name: name.to_string(),
            id,
            dir,
            root,
            bundle,
            ids: RefCell::new(Vec::new()),
            inits: RefCell::new(Vec::new()),
            creates: Cell::new(0),
            last_create_out: RefCell::new(None),
        };
        assert!(
            cgroup_dirs(&env.cgroups_path()).is_empty(),
            "cgroup {} exists before the test",
            env.cgroups_path()
        );
        env
    }

    /// `linux.cgroupsPath` of this test's container.
    pub fn cgroups_path(&self) -> String {
        format!("/{CGROUP_PARENT}/{}", self.id)
    }

    /// The bundle template adapted to this test: absolute path to the shared
    /// read-only rootfs, private cgroup, token in the environment.
    pub fn spec(&self) -> Value {
        let mut spec = template();
        set(
            &mut spec,
            "/root/path",
            json!(shared_rootfs().to_str().unwrap()),
        );
        set(&mut spec, "/linux/cgroupsPath", json!(self.cgroups_path()));
        push_env(&mut spec, &format!("{TOKEN_VAR}={}", self.id));
        spec
    }

    /// A private copy (`cp -a`) of the busybox rootfs, for tests that write
    /// to it or make the runtime create paths in it.
    pub fn copy_rootfs(&self) -> PathBuf {
        let dst = self.dir.join("rootfs");
        host(
            "cp",
            &[
                "-a",
                shared_rootfs().to_str().unwrap(),
                dst.to_str().unwrap(),
            ],
        );
        dst
    }

    /// A directory on the host inside the temp dir.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).expect("create host dir");
        d
    }

    pub fn write_bundle(&self, spec: &Value) {
        let text = serde_json::to_string_pretty(spec).unwrap();
        fs::write(self.bundle.join("config.json"), text).expect("write config.json");
    }

    pub fn write_raw_config(&self, text: &str) {
        fs::write(self.bundle.join("config.json"), text).expect("write config.json");
    }

    /// `<runtime> --root <state> ARGS...`, run in the temp dir.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(runtime_bin());
        cmd.arg("--root")
            .arg(&self.root)
            .args(args)
            // Anything a runtime resolves against its cwd lands in the temp
            // dir, where the tests can see it.
            .current_dir(&self.dir)
            .env(LEAK_VAR, "leaked");
        cmd
    }

    /// `<runtime> --root <state> ARGS...` with captured output.
    pub fn rt(&self, args: &[&str]) -> Out {
        run_cmd(&mut self.command(args), CMD_TIMEOUT)
    }

    /// Registers `id` for the guard's `delete --force` (ids that could be
    /// path tricks are never passed back to the runtime).
    pub fn track_id(&self, id: &str) {
        let safe = !id.is_empty()
            && id != "."
            && id != ".."
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let mut ids = self.ids.borrow_mut();
        if safe && !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    /// `create --bundle <bundle> ID`. The container inherits the runtime's
    /// stdio, so stdin is /dev/null and stdout/stderr go to files (pipes
    /// would stay open as long as the container lives). On success the init
    /// pid from `state` is recorded for the guard.
    pub fn create(&self, id: &str) -> Out {
        self.create_with(id, &[])
    }

    /// Writes `spec` as the bundle and creates the container; panics on error.
    pub fn create_ok(&self, spec: &Value) {
        self.write_bundle(spec);
        self.create(&self.id).ok();
    }

    /// create + start; panics on error.
    pub fn create_and_start(&self, spec: &Value) {
        self.create_ok(spec);
        self.rt(&["start", &self.id]).ok();
    }

    /// Everything the container wrote to stdout so far (`create`d containers).
    pub fn container_stdout(&self) -> String {
        self.last_create_out
            .borrow()
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Waits until the container's stdout contains `needle`.
    #[track_caller]
    pub fn wait_for_stdout(&self, needle: &str) {
        assert!(
            wait_until(WAIT_TIMEOUT, || self.container_stdout().contains(needle)),
            "container never printed {needle:?}; stdout so far: {:?}",
            self.container_stdout()
        );
    }

    /// `state ID` parsed; panics if the command fails.
    #[track_caller]
    pub fn state_of(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}):\n{out}"))
    }

    /// `state` of this test's container.
    #[track_caller]
    pub fn state(&self) -> Value {
        self.state_of(&self.id)
    }

    #[track_caller]
    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap_or("").to_string()
    }

    /// Polls `state` until the status is `want`.
    #[track_caller]
    pub fn wait_for_status(&self, want: &str) {
        let mut last = String::new();
        let ok = wait_until(WAIT_TIMEOUT, || {
            last = self.status();
            last == want
        });
        assert!(ok, "container never became {want:?} (last: {last:?})");
    }

    /// `list --format json`; `null` (runc's output for no containers) counts
    /// as empty.
    #[track_caller]
    pub fn list_json(&self) -> Vec<Value> {
        let out = self.rt(&["list", "--format", "json"]);
        out.ok();
        match serde_json::from_str::<Value>(out.stdout.trim()) {
            Ok(Value::Array(a)) => a,
            Ok(Value::Null) => Vec::new(),
            other => panic!("list --format json gave {other:?}:\n{out}"),
        }
    }

    /// `list -q`
    #[track_caller]
    pub fn list_quiet(&self) -> Vec<String> {
        let out = self.rt(&["list", "-q"]);
        out.ok();
        out.lines()
    }

    /// The recorded init pid of the (first) created container.
    #[track_caller]
    pub fn init_pid(&self) -> i32 {
        self.inits
            .borrow()
            .first()
            .map(|i| i.pid)
            .expect("no container init recorded")
    }

    /// Reaps the init of the created container and returns how it ended.
    /// When `create` returns, the detached init must have been reparented to
    /// the caller, a subreaper: that is how containerd's shim collects exit
    /// statuses, so a runtime that keeps some other parent fails here.
    #[track_caller]
    pub fn wait_init(&self) -> Exit {
        let mut inits = self.inits.borrow_mut();
        let init = inits.first_mut().expect("no container init recorded");
        assert!(!init.reaped, "init already reaped");
        match reap(init.pid, WAIT_TIMEOUT) {
            Reap::Exited(e) => {
                init.reaped = true;
                e
            }
            Reap::NotOurChild => panic!(
                "container init {} is not a child of the test process (a subreaper)",
                init.pid
            ),
            Reap::TimedOut => panic!("container init {} did not exit", init.pid),
        }
    }

    /// `run --bundle <bundle> ID` in the foreground with `spec`; the
    /// container's stdout/stderr are the runtime's, captured here.
    pub fn run_spec(&self, spec: &Value) -> Out {
        self.write_bundle(spec);
        self.track_id(&self.id);
        let bundle = self.bundle.to_str().unwrap().to_string();
        let out = self.rt(&["run", "--bundle", &bundle, &self.id]);
        // A foreground `run` deletes its container when it returns, whether
        // the container ran or failed to start.
        let listed = self.rt(&["list", "-q"]);
        assert!(
            !listed.lines().contains(&self.id),
            "container still listed after `run` returned:\n{out}\nlist -q: {listed}"
        );
        out
    }

    /// Panics unless `leftovers()` becomes empty within a few seconds. Used
    /// right after a failed operation, before the guard's `delete --force`
    /// could hide what the failure left behind.
    #[track_caller]
    pub fn assert_clean(&self) {
        let mut problems = Vec::new();
        let clean = wait_until(Duration::from_secs(5), || {
            problems = self.leftovers();
            problems.is_empty()
        });
        assert!(clean, "leftovers:\n  {}", problems.join("\n  "));
    }

    /// `run` with `process.args = args` and then `mutate` applied to the spec.
    pub fn run_capture(&self, args: &[&str], mutate: impl FnOnce(&mut Value)) -> Out {
        let mut spec = self.spec();
        set_args(&mut spec, args);
        mutate(&mut spec);
        self.run_spec(&spec)
    }

    /// Like `run_capture` with `sh -c script`, and panics unless it exits 0.
    #[track_caller]
    pub fn sh_ok(&self, script: &str, mutate: impl FnOnce(&mut Value)) -> Out {
        let out = self.run_capture(&["sh", "-c", script], mutate);
        out.ok();
        out
    }

    /// Leftovers of this test on the host. Also used by tests mid-way.
    pub fn leftovers(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                problems.push(format!("state dir left: {}", e.path().display()));
            }
        }
        let dir = self.dir.to_str().unwrap().to_string();
        let rootfs = shared_rootfs().to_str().unwrap().to_string();
        for line in mountinfo() {
            if line.contains(&dir) || line.contains(&rootfs) {
                problems.push(format!("mount left: {line}"));
            }
        }
        for cg in cgroup_dirs(&self.cgroups_path()) {
            problems.push(format!("cgroup left: {}", cg.display()));
        }
        for (pid, comm) in container_processes(&self.id) {
            problems.push(format!("container process left: {pid} ({comm})"));
        }
        for init in self.inits.borrow().iter() {
            if same_process_exists(init.pid, init.starttime) {
                problems.push(format!(
                    "container init {} still exists (state {:?})",
                    init.pid,
                    proc_state(init.pid)
                ));
            }
        }
        problems
    }

    /// `delete --force` every container this test created, reaping their
    /// inits meanwhile (a runtime's force-delete may wait for the init to
    /// disappear).
    fn force_delete_all(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let ids = self.ids.borrow().clone();
        for id in ids {
            let err_path = self.dir.join(format!("guard-delete-{id}.err"));
            let Ok(err_f) = fs::File::create(&err_path) else {
                continue;
            };
            let mut cmd = self.command(&["delete", "--force", &id]);
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err_f);
            let Ok(mut child) = cmd.spawn() else {
                notes.push(format!("cannot spawn delete --force {id}"));
                continue;
            };
            let deadline = Instant::now() + CMD_TIMEOUT;
            loop {
                self.reap_inits(Duration::ZERO);
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        notes.push(format!("delete --force {id} timed out"));
                        break;
                    }
                }
            }
            let err = fs::read_to_string(&err_path).unwrap_or_default();
            if !err.trim().is_empty() {
                notes.push(format!("delete --force {id} said: {}", err.trim()));
            }
        }
        notes
    }

    fn reap_inits(&self, timeout: Duration) {
        for init in self.inits.borrow_mut().iter_mut().filter(|i| !i.reaped) {
            match reap(init.pid, timeout) {
                Reap::Exited(_) | Reap::NotOurChild => init.reaped = true,
                Reap::TimedOut => {}
            }
        }
    }

    /// Kills and removes whatever the runtime leaked, so one failing test
    /// does not break the others or the machine.
    fn remediate(&self) {
        for (pid, _) in container_processes(&self.id) {
            kill_pid(pid);
            if is_our_child(pid) {
                let _ = reap(pid, Duration::from_secs(2));
            }
        }
        for init in self.inits.borrow_mut().iter_mut() {
            if same_process_exists(init.pid, init.starttime) {
                kill_pid(init.pid);
                if !init.reaped {
                    let _ = reap(init.pid, Duration::from_secs(2));
                    init.reaped = true;
                }
            }
        }
        for cg in cgroup_dirs(&self.cgroups_path()) {
            remove_cgroup_tree(&cg);
        }
        // Unmount leaked mounts below our temp dir (deepest first) before
        // deleting it, so remove_dir_all never walks into a mounted host dir.
        let dir = self.dir.to_str().unwrap().to_string();
        let rootfs = shared_rootfs().to_str().unwrap().to_string();
        let mut mps: Vec<String> = mountinfo()
            .iter()
            .filter_map(|l| l.split_whitespace().nth(4).map(unescape_mount_path))
            .filter(|mp| mp.starts_with(&dir) || mp.starts_with(&rootfs))
            .collect();
        mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mp in mps {
            if let Ok(c) = std::ffi::CString::new(mp) {
                // SAFETY: umount2 with a valid NUL-terminated path.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let notes = self.force_delete_all();
        self.reap_inits(Duration::from_secs(5));
        // Give a runtime's asynchronous teardown a moment before judging.
        let mut problems = Vec::new();
        wait_until(Duration::from_secs(5), || {
            problems = self.leftovers();
            problems.is_empty()
        });
        if !problems.is_empty() {
            self.remediate();
        }
        let dir = self.dir.to_str().unwrap().to_string();
        if mountinfo().iter().any(|l| l.contains(&dir)) {
            problems.push(format!(
                "mounts below {dir} could not be removed; temp dir kept"
            ));
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            problems.push(format!("cannot remove {dir}: {e}"));
        }
        {
            let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
            *active -= 1;
            if *active == 0 {
                // Best effort: the runtime removes the leaf, the parent is ours.
                for mp in cgroup_mountpoints() {
                    let _ = fs::remove_dir(mp.join(CGROUP_PARENT));
                }
            }
        }
        if !problems.is_empty() {
            let msg = format!(
                "test {} ({}) left things behind:\n  {}\n{}",
                self.name,
                self.id,
                problems.join("\n  "),
                notes.join("\n")
            );
            if thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers for the cgroup, exec and hook tests

static FILE_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Like `run_cmd`, with `input` written to the command's stdin (then closed).
pub fn run_cmd_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Out {
    run_cmd_with(cmd, Some(input), timeout)
}

/// Reaps `pid` once it has exited, if it is (or becomes, by reparenting to
/// this subreaper) a child of the test process: e.g. a process started by
/// `exec --detach`. `None` if it is not our child and has gone, or if it is
/// still running when `timeout` passes.
pub fn reap_if_child(pid: i32, timeout: Duration) -> Option<Exit> {
    let deadline = Instant::now() + timeout;
    loop {
        match reap(pid, Duration::ZERO) {
            Reap::Exited(e) => return Some(e),
            Reap::NotOurChild if !Path::new(&format!("/proc/{pid}")).exists() => return None,
            Reap::NotOurChild | Reap::TimedOut => {}
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// sha256 of a file, by `sha256sum`.
#[track_caller]
pub fn sha256_file(path: &Path) -> String {
    let out = host("sha256sum", &[path.to_str().expect("utf-8 path")]);
    out.stdout
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

impl TestEnv {
    /// The `RRUN_IT_TOKEN=<id>` variable every container process carries;
    /// put it into other environments (e.g. hooks') so the leftover check
    /// also finds those processes.
    pub fn token_env(&self) -> String {
        format!("{TOKEN_VAR}={}", self.id)
    }

    /// `rt` with stdout and stderr going to files instead of pipes: for
    /// commands that leave a process holding their stdio (`exec --detach`),
    /// which would keep a pipe open.
    /// `exec --detach --pid-file F <id> ARGS...`: the pid from the pid file.
    pub fn exec_detached(&self, args: &[&str]) -> i32 {
        let pid_file = self.dir.join("exec.pid");
        let mut argv = vec![
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &self.id,
        ];
        argv.extend_from_slice(args);
        self.rt_to_files(&argv).ok();
        let text = fs::read_to_string(&pid_file).expect("pid file written");
        let pid: i32 = text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("pid file {text:?}: {e}"));
        assert!(pid > 0, "pid file {text:?}");
        pid
    }

    pub fn rt_to_files(&self, args: &[&str]) -> Out {
        let n = FILE_SEQ.fetch_add(1, Ordering::SeqCst);
        let out_path = self.dir.join(format!("cmd{n}.out"));
        let err_path = self.dir.join(format!("cmd{n}.err"));
        let out_f = fs::File::create(&out_path).unwrap();
        let err_f = fs::File::create(&err_path).unwrap();
        let mut cmd = self.command(args);
        let what = describe(&cmd);
        cmd.stdin(Stdio::null()).stdout(out_f).stderr(err_f);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        let status = wait_child(&mut child, &what, CMD_TIMEOUT);
        Out {
            what,
            status,
            stdout: fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        }
    }

    /// `rt` with `input` on the runtime's stdin.
    pub fn rt_input(&self, args: &[&str], input: &str) -> Out {
        run_cmd_input(&mut self.command(args), input.as_bytes(), CMD_TIMEOUT)
    }
}

// ---------------------------------------------------------------------------
// Helpers for the terminal tests: a console-socket receiver, ptys

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A `--console-socket`: a unix socket bound in the test's temp dir; a thread
/// accepts one connection and receives the fd sent with SCM_RIGHTS (the pty
/// master) and the message's payload (runc sends "/dev/ptmx").
pub struct ConsoleReceiver {
    pub path: PathBuf,
    rx: mpsc::Receiver<Result<(OwnedFd, String), String>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ConsoleReceiver {
    pub fn bind(path: PathBuf) -> ConsoleReceiver {
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let deadline = Instant::now() + CMD_TIMEOUT;
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if stop2.load(Ordering::SeqCst) || Instant::now() >= deadline {
                            return;
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("accept: {e}")));
                        return;
                    }
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(CMD_TIMEOUT));
            let _ = tx.send(recv_fd_and_payload(stream.as_raw_fd()));
        });
        ConsoleReceiver { path, rx, stop }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }

    /// The received fd and payload, or `None` if nothing came within
    /// `timeout`. Panics if the connection came but carried no fd.
    #[track_caller]
    pub fn try_recv(&self, timeout: Duration) -> Option<(OwnedFd, String)> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => panic!("console socket {}: {e}", self.path.display()),
            Err(_) => None,
        }
    }

    /// The received master; panics unless it arrives within `WAIT_TIMEOUT`.
    #[track_caller]
    pub fn recv(&self) -> (OwnedFd, String) {
        self.try_recv(WAIT_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no fd received on the console socket {}",
                self.path.display()
            )
        })
    }
}

impl Drop for ConsoleReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One recvmsg: the payload (up to 64 KiB) and the fd passed with SCM_RIGHTS, if any.
pub fn recv_with_fd(sock: i32) -> Result<(Vec<u8>, Option<OwnedFd>), String> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([i32; 4]);
    let (n, fds) = {
        let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(|e| format!("recvmsg: {e}"))?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
            if let ControlMessageOwned::ScmRights(f) = c {
                fds.extend(f);
            }
        }
        (msg.bytes, fds)
    };
    // SAFETY: the kernel just installed these fds in this process.
    let mut owned: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    if owned.len() > 1 {
        return Err(format!("expected one fd, got {}", owned.len()));
    }
    buf.truncate(n);
    Ok((buf, owned.pop()))
}

/// The console socket message: exactly one fd, and its payload as text.
fn recv_fd_and_payload(sock: i32) -> Result<(OwnedFd, String), String> {
    let (data, fd) = recv_with_fd(sock)?;
    let fd = fd.ok_or_else(|| "expected one fd, got 0".to_string())?;
    Ok((fd, String::from_utf8_lossy(&data).into_owned()))
}

/// fstat of an open fd.
pub fn fd_stat(fd: &OwnedFd) -> libc::stat {
    // SAFETY: an all-zero stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a valid fd with a valid buffer.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    assert_eq!(r, 0, "fstat: {}", std::io::Error::last_os_error());
    st
}

/// The master side of a pty the test talks to: writes input, collects
/// output (with `\r` removed) and finds expected text in it.
pub struct PtyIo {
    pub fd: OwnedFd,
    raw: Vec<u8>,
    /// Offset in `text()` up to which `expect` consumed the output.
    consumed: usize,
    eof: bool,
}

impl PtyIo {
    pub fn new(fd: OwnedFd) -> PtyIo {
        PtyIo {
            fd,
            raw: Vec::new(),
            consumed: 0,
            eof: false,
        }
    }

    /// Everything read so far, as it came (`\r` kept).
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Everything read so far, `\r` removed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).replace('\r', "")
    }

    #[track_caller]
    pub fn write(&self, s: &str) {
        let mut data = s.as_bytes();
        while !data.is_empty() {
            // SAFETY: write from a valid buffer to our fd.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                panic!("write to the pty master: {e}");
            }
            data = &data[n as usize..];
        }
    }

    /// Reads what arrives within `wait`; false once the pty reports EOF
    /// (EIO: no slave is open any more).
    fn read_some(&mut self, wait: Duration) -> bool {
        if self.eof {
            return false;
        }
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r <= 0 {
            return true;
        }
        let mut buf = [0u8; 8192];
        // SAFETY: read into a valid buffer from our fd.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            self.raw.extend_from_slice(&buf[..n as usize]);
            true
        } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            true
        } else {
            self.eof = true;
            false
        }
    }

    /// Reads until `needle` appears after what earlier `expect`s consumed;
    /// false on EOF or timeout.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text();
            if let Some(i) = text[self.consumed.min(text.len())..].find(needle) {
                self.consumed += i + needle.len();
                return true;
            }
            let now = Instant::now();
            if now >= deadline || !self.read_some((deadline - now).min(Duration::from_millis(50))) {
                // One last look at what the final read brought.
                let text = self.text();
                if let Some(i) = text[self.consumed.min(text.len())..].find(needle) {
                    self.consumed += i + needle.len();
                    return true;
                }
                return false;
            }
        }
    }

    /// Waits for a complete output line starting with `prefix` (after what
    /// earlier `expect`s consumed) and returns the rest of it, trimmed.
    pub fn expect_line(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text();
            let start = self.consumed.min(text.len());
            let mut pos = start;
            for line in text[start..].split_inclusive('\n') {
                pos += line.len();
                if !line.ends_with('\n') {
                    break;
                }
                if let Some(rest) = line.trim().strip_prefix(prefix) {
                    self.consumed = pos;
                    return Some(rest.trim().to_string());
                }
            }
            let now = Instant::now();
            if now >= deadline || self.eof {
                return None;
            }
            self.read_some((deadline - now).min(Duration::from_millis(50)));
        }
    }

    /// Reads until EOF; false on timeout.
    pub fn read_to_eof(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.read_some((deadline - now).min(Duration::from_millis(50)));
        }
        true
    }

    /// Sets the pty's window size (TIOCSWINSZ on the master).
    pub fn set_size(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize struct.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// The pty's terminal attributes (the slave's, read through the master).
    pub fn termios(&self) -> libc::termios {
        // SAFETY: an all-zero termios is a valid buffer for tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr on our fd with a valid buffer.
        let r = unsafe { libc::tcgetattr(self.fd.as_raw_fd(), &mut t) };
        assert_eq!(r, 0, "tcgetattr: {}", std::io::Error::last_os_error());
        t
    }
}

/// A new pty pair, both ends close-on-exec (other test threads spawn
/// processes all the time; an inherited slave would keep the pty open).
pub fn new_pty(rows: u16, cols: u16) -> (PtyIo, OwnedFd) {
    // SAFETY: plain libc pty calls; every result is checked.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0, "grantpt");
        assert_eq!(libc::unlockpt(m), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(m, name.as_mut_ptr(), name.len()),
            0,
            "ptsname_r"
        );
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(
            s >= 0,
            "open pty slave: {}",
            std::io::Error::last_os_error()
        );
        let slave = OwnedFd::from_raw_fd(s);
        let pty = PtyIo::new(master);
        pty.set_size(rows, cols);
        (pty, slave)
    }
}

/// Spawns `cmd` in a new session with a new pty (`rows` x `cols`) as its
/// stdin, stdout, stderr and controlling terminal; the test keeps the master.
pub fn spawn_on_pty(mut cmd: Command, rows: u16, cols: u16) -> (std::process::Child, PtyIo) {
    use std::os::unix::process::CommandExt;
    let what = describe(&cmd);
    let (pty, slave) = new_pty(rows, cols);
    for f in 0..3 {
        let fd = slave.try_clone().expect("dup pty slave");
        match f {
            0 => cmd.stdin(Stdio::from(fd)),
            1 => cmd.stdout(Stdio::from(fd)),
            _ => cmd.stderr(Stdio::from(fd)),
        };
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    // Only the child may hold the slave: its close is the master's EOF.
    drop(cmd);
    drop(slave);
    (child, pty)
}

impl TestEnv {
    /// Like `create`, with `extra` options (e.g. `--console-socket S`)
    /// before the id.
    pub fn create_with(&self, id: &str, extra: &[&str]) -> Out {
        let n = self.creates.get();
        self.creates.set(n + 1);
        let out_path = self.dir.join(format!("create{n}.out"));
        let err_path = self.dir.join(format!("create{n}.err"));
        let out_f = fs::File::create(&out_path).unwrap();
        let err_f = fs::File::create(&err_path).unwrap();
        let bundle = self.bundle.to_str().unwrap().to_string();
        let mut args = vec!["create", "--bundle", &bundle];
        args.extend_from_slice(extra);
        args.push(id);
        let mut cmd = self.command(&args);
        let what = describe(&cmd);
        cmd.stdin(Stdio::null()).stdout(out_f).stderr(err_f);
        self.track_id(id);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        let status = wait_child(&mut child, &what, CMD_TIMEOUT);
        let out = Out {
            what,
            status,
            stdout: fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        };
        if out.success() {
            *self.last_create_out.borrow_mut() = Some(out_path);
            let st = self.rt(&["state", id]);
            if let Ok(v) = serde_json::from_str::<Value>(&st.stdout)
                && let Some(pid) = v["pid"].as_i64().filter(|p| *p > 0)
            {
                let pid = pid as i32;
                self.inits.borrow_mut().push(Init {
                    pid,
                    starttime: proc_starttime(pid),
                    reaped: false,
                });
            }
        }
        out
    }
}
