//! OCI hooks: order, namespaces and state of all six kinds, what a failing
//! hook of each kind does to the lifecycle, and hook timeouts.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// Records its run: appends its kind to `LOGDIR/order` and writes the state
/// from stdin and its mount and pid namespaces. Args: KIND LOGDIR.
const RECORD: &str = r#"#!/bin/sh
kind=$1
log=$2
cat > "$log/$kind.state"
readlink /proc/self/ns/mnt > "$log/$kind.mnt"
readlink /proc/self/ns/pid > "$log/$kind.pidns"
echo "$kind" >> "$log/order"
"#;

/// Records its run in `LOGDIR/order`, then fails. It reads its stdin
/// first: a hook that does not is covered by `hooks_need_not_read_stdin`.
const FAIL: &str = r#"#!/bin/sh
cat > /dev/null
echo "$1" >> "$2/order"
echo "hook $1 fails on purpose" >&2
exit 1
"#;

/// Records its run in `LOGDIR/order`, then sleeps far past any timeout.
const SLEEP: &str = r#"#!/bin/sh
cat > /dev/null
echo "$1" >> "$2/order"
exec sleep 30
"#;

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Where the log dir is for a hook of `kind`: startContainer hooks run in
/// the container (after pivot_root) and see the host dir at /hooklog; the
/// others see the host path.
fn log_dir_for(kind: &str, host_log: &Path) -> String {
    if kind == "startContainer" {
        "/hooklog".to_string()
    } else {
        host_log.to_str().unwrap().to_string()
    }
}

/// A test's hook set-up: the scripts on the host (in the temp dir) and in a
/// private rootfs copy (for startContainer, whose path resolves in the
/// container), a host log dir bind-mounted at /hooklog, and the spec.
struct Hooks {
    log: PathBuf,
    scripts: PathBuf,
    spec: Value,
}

impl Hooks {
    fn new(env: &TestEnv) -> Hooks {
        let rootfs = env.copy_rootfs();
        let scripts = env.host_dir("hook-scripts");
        for (name, text) in [
            ("record.sh", RECORD),
            ("fail.sh", FAIL),
            ("sleep.sh", SLEEP),
        ] {
            for dir in [&scripts, &rootfs] {
                let p = dir.join(name);
                fs::write(&p, text).unwrap();
                host("chmod", &["755", p.to_str().unwrap()]);
            }
        }
        fs::create_dir_all(rootfs.join("hooklog")).unwrap();
        let log = env.host_dir("hooklog");
        let mut spec = env.spec();
        set(&mut spec, "/root/path", json!(rootfs.to_str().unwrap()));
        set_args(&mut spec, &["sleep", "1000"]);
        add_mount(&mut spec, bind_mount(&log, "/hooklog", &["rbind", "rw"]));
        Hooks { log, scripts, spec }
    }

    /// Adds a hook of `kind` running `script` (record.sh, fail.sh or
    /// sleep.sh).
    fn add(&mut self, env: &TestEnv, kind: &str, script: &str, timeout: Option<u64>) {
        let path = if kind == "startContainer" {
            format!("/{script}")
        } else {
            self.scripts.join(script).to_str().unwrap().to_string()
        };
        let mut hook = json!({
            "path": path,
            "args": [script, kind, log_dir_for(kind, &self.log)],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                // Lets the leftover check find hook processes left running.
                env.token_env(),
            ],
        });
        if let Some(t) = timeout {
            hook["timeout"] = json!(t);
        }
        let hooks = &mut self.spec["hooks"];
        if !hooks.is_object() {
            *hooks = json!({});
        }
        let list = hooks
            .as_object_mut()
            .unwrap()
            .entry(kind)
            .or_insert(json!([]));
        list.as_array_mut().unwrap().push(hook);
    }

    /// Hook kinds in the order they ran.
    fn order(&self) -> Vec<String> {
        fs::read_to_string(self.log.join("order"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn file(&self, kind: &str, ext: &str) -> String {
        let p = self.log.join(format!("{kind}.{ext}"));
        fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    }

    fn state(&self, kind: &str) -> Value {
        let text = self.file(kind, "state");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{kind} hook's stdin is not JSON ({e}): {text:?}"))
    }
}

fn ns_of(pid: &str, name: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{name}: {e}"))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn hooks_order_namespaces_and_state() {
    let env = test_env!();
    let mut h = Hooks::new(&env);
    for kind in KINDS {
        h.add(&env, kind, "record.sh", None);
    }
    set(&mut h.spec, "/annotations", json!({"org.example.k": "v"}));
    env.create_ok(&h.spec);
    let init = env.init_pid();
    assert_eq!(h.order(), ["prestart", "createRuntime", "createContainer"]);
    env.rt(&["start", &env.id]).ok();
    assert_eq!(
        h.order(),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart"
        ]
    );
    env.rt(&["kill", &env.id, "KILL"]).ok();
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Signal(libc::SIGKILL));
    // The last hooks must have finished when the commands returned.
    assert_eq!(h.order().len(), 5, "{:?}", h.order());
    env.rt(&["delete", &env.id]).ok();
    assert_eq!(h.order(), KINDS, "hook order");
    env.assert_clean();

    let me = std::process::id().to_string();
    let (host_mnt, host_pid) = (ns_of(&me, "mnt"), ns_of(&me, "pid"));
    // Recorded while the container lived: its namespaces.
    let in_container = ["createContainer", "startContainer"];
    let mut problems = Vec::new();
    for kind in KINDS {
        let mnt = h.file(kind, "mnt");
        let pidns = h.file(kind, "pidns");
        let st = h.state(kind);
        if in_container.contains(&kind) {
            if mnt == host_mnt {
                problems.push(format!("{kind} ran in the host's mount namespace"));
            }
            if pidns == host_pid {
                problems.push(format!("{kind} ran in the host's pid namespace"));
            }
        } else {
            if mnt != host_mnt {
                problems.push(format!(
                    "{kind} ran in mount namespace {mnt}, not the host's"
                ));
            }
            if pidns != host_pid {
                problems.push(format!(
                    "{kind} ran in pid namespace {pidns}, not the host's"
                ));
            }
        }
        // runtime-spec: the state of the container at that point.
        let want_status = match kind {
            "prestart" | "createRuntime" | "createContainer" => "creating",
            "startContainer" => "created",
            "poststart" => "running",
            _ => "stopped",
        };
        if st["status"] != want_status {
            problems.push(format!(
                "{kind}: status {} (want {want_status})",
                st["status"]
            ));
        }
        if st["id"] != env.id.as_str() {
            problems.push(format!("{kind}: id {}", st["id"]));
        }
        let bundle = st["bundle"].as_str().unwrap_or("");
        if fs::canonicalize(bundle).ok() != fs::canonicalize(&env.bundle).ok() {
            problems.push(format!("{kind}: bundle {:?}", st["bundle"]));
        }
        if !st["ociVersion"].is_string() {
            problems.push(format!("{kind}: no ociVersion"));
        }
        if st["annotations"] != json!({"org.example.k": "v"}) {
            problems.push(format!("{kind}: annotations {}", st["annotations"]));
        }
        // The container's pid as seen by the host (optional once stopped).
        let pid_optional = kind == "poststop" && st["pid"].is_null();
        if !pid_optional && st["pid"].as_i64() != Some(init as i64) {
            problems.push(format!("{kind}: pid {} (init is {init})", st["pid"]));
        }
    }
    assert!(
        problems.is_empty(),
        "hook problems:\n  {}\nstates:\n{}",
        problems.join("\n  "),
        KINDS
            .iter()
            .map(|k| format!("  {k}: {}", h.file(k, "state")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The container namespaces of createContainer/startContainer are the
/// container's own (those of its init), checked while it runs.
#[test]
fn hooks_container_kinds_in_container_namespaces() {
    let env = test_env!();
    let mut h = Hooks::new(&env);
    h.add(&env, "createContainer", "record.sh", None);
    h.add(&env, "startContainer", "record.sh", None);
    env.create_ok(&h.spec);
    let init = env.init_pid().to_string();
    env.rt(&["start", &env.id]).ok();
    for kind in ["createContainer", "startContainer"] {
        assert_eq!(h.file(kind, "mnt"), ns_of(&init, "mnt"), "{kind} mount ns");
        assert_eq!(h.file(kind, "pidns"), ns_of(&init, "pid"), "{kind} pid ns");
    }
}

/// A create-phase hook of `kind` fails: `create` fails, the hooks after it
/// do not run, and nothing is left behind.
fn create_phase_failure(env: &TestEnv, kind: &str) {
    let mut h = Hooks::new(env);
    for k in ["prestart", "createRuntime", "createContainer"] {
        h.add(
            env,
            k,
            if k == kind { "fail.sh" } else { "record.sh" },
            None,
        );
    }
    h.add(env, "startContainer", "record.sh", None);
    h.add(env, "poststart", "record.sh", None);
    env.write_bundle(&h.spec);
    let out = env.create(&env.id);
    out.failed();
    // runc's words (1.2 and later), with the hook's own output.
    out.stderr_has_all(&[
        &format!("error running {kind} hook #0"),
        &format!("hook {kind} fails on purpose"),
    ]);
    let order = h.order();
    assert!(
        order.iter().any(|k| k == kind),
        "the {kind} hook did not run: {order:?}\n{out}"
    );
    let pos = KINDS.iter().position(|k| *k == kind).unwrap();
    for later in &KINDS[pos + 1..5] {
        assert!(
            !order.iter().any(|k| k == later),
            "{later} ran after {kind} failed: {order:?}"
        );
    }
    let left = cgroup_dirs(&env.cgroups_path());
    assert!(left.is_empty(), "cgroups left: {left:?}\n{out}");
    env.assert_clean();
    env.rt(&["state", &env.id])
        .failed()
        .stderr_has_any(&["does not exist"]);
}

#[test]
fn hook_prestart_failure_fails_create() {
    let env = test_env!();
    create_phase_failure(&env, "prestart");
}

#[test]
fn hook_create_runtime_failure_fails_create() {
    let env = test_env!();
    create_phase_failure(&env, "createRuntime");
}

#[test]
fn hook_create_container_failure_fails_create() {
    let env = test_env!();
    create_phase_failure(&env, "createContainer");
}

#[test]
fn hook_start_container_failure_fails_start() {
    let env = test_env!();
    let mut h = Hooks::new(&env);
    h.add(&env, "startContainer", "fail.sh", None);
    h.add(&env, "poststart", "record.sh", None);
    // The user process would say it ran.
    set_script(
        &mut h.spec,
        "echo user-process-ran > /hooklog/ran; exec sleep 1000",
    );
    env.create_ok(&h.spec);
    let init = env.init_pid();
    let out = env.rt(&["start", &env.id]);
    out.failed();
    assert_eq!(h.order(), ["startContainer"], "{out}");
    // The container is stopped (or already gone) and its process is not
    // running: the init exits (and is reaped here, by the subreaper).
    let exit = env.wait_init();
    assert!(
        !Path::new(&format!("/proc/{init}")).exists(),
        "init {init} still exists after {exit:?}"
    );
    assert!(
        !h.log.join("ran").exists(),
        "the user process ran although startContainer failed"
    );
    let st = env.rt(&["state", &env.id]);
    if st.success() {
        let v: Value = serde_json::from_str(&st.stdout).unwrap();
        assert_eq!(v["status"], "stopped", "{st}");
        env.rt(&["delete", &env.id]).ok();
    } else {
        st.stderr_has_any(&["does not exist"]);
    }
    env.assert_clean();
}

#[test]
fn hook_poststart_failure_only_warns() {
    let env = test_env!();
    let mut h = Hooks::new(&env);
    h.add(&env, "poststart", "fail.sh", None);
    h.add(&env, "poststart", "record.sh", None);
    env.create_ok(&h.spec);
    let init = env.init_pid();
    // runtime-spec: "If any poststart hook fails, the runtime MUST log a
    // warning, but the remaining hooks and lifecycle continue as if the hook
    // had succeeded."
    let out = env.rt(&["start", &env.id]);
    out.ok();
    assert_eq!(h.order(), ["poststart", "poststart"], "{out}");
    assert_eq!(env.status(), "running");
    assert_eq!(proc_state(init).map(|s| s != 'Z'), Some(true));
}

#[test]
fn hook_poststop_failure_delete_succeeds() {
    let env = test_env!();
    let mut h = Hooks::new(&env);
    h.add(&env, "poststop", "fail.sh", None);
    h.add(&env, "poststop", "record.sh", None);
    set_args(&mut h.spec, &["true"]);
    env.create_and_start(&h.spec);
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Code(0));
    let out = env.rt(&["delete", &env.id]);
    out.ok();
    // The remaining hooks run too.
    assert_eq!(h.order(), ["poststop", "poststop"], "{out}");
    env.rt(&["state", &env.id])
        .failed()
        .stderr_has_any(&["does not exist"]);
    env.assert_clean();
}

/// A create-phase hook of `kind` that sleeps 30 s with a 1 s timeout is
/// killed (the leftover check finds it by its environment otherwise) and
/// `create` fails well before the 30 s.
fn create_phase_timeout(env: &TestEnv, kind: &str) {
    let mut h = Hooks::new(env);
    h.add(env, kind, "sleep.sh", Some(1));
    env.write_bundle(&h.spec);
    let t = Instant::now();
    let out = env.create(&env.id);
    let took = t.elapsed();
    out.failed();
    assert_eq!(h.order(), [kind], "{out}");
    assert!(
        took < Duration::from_secs(20),
        "create took {took:?} with a 1 s hook timeout\n{out}"
    );
    env.assert_clean();
}

#[test]
fn hook_timeout_create_runtime_killed() {
    let env = test_env!();
    create_phase_timeout(&env, "createRuntime");
}

#[test]
fn hook_timeout_create_container_killed() {
    let env = test_env!();
    create_phase_timeout(&env, "createContainer");
}

/// Hooks need not read the state on their stdin: a hook that exits without
/// reading it (here `true`, with a state bigger than a pipe buffer thanks to
/// a large annotation, so the runtime's write cannot complete before the
/// hook exits) must not break the runtime (e.g. kill it with SIGPIPE).
#[test]
fn hooks_need_not_read_stdin() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    set(
        &mut spec,
        "/annotations",
        json!({"it.big": "x".repeat(200_000)}),
    );
    let mut hooks = serde_json::Map::new();
    for kind in KINDS {
        // createContainer resolves in the runtime's namespace,
        // startContainer in the container's: /bin/true exists in both.
        hooks.insert(
            kind.to_string(),
            json!([{"path": "/bin/true", "args": ["true"], "env": [env.token_env()]}]),
        );
    }
    set(&mut spec, "/hooks", Value::Object(hooks));
    env.write_bundle(&spec);
    env.create(&env.id).ok();
    env.rt(&["start", &env.id]).ok();
    assert_eq!(env.status(), "running");
    env.rt(&["kill", &env.id, "KILL"]).ok();
    env.wait_for_status("stopped");
    assert_eq!(env.wait_init(), Exit::Signal(libc::SIGKILL));
    env.rt(&["delete", &env.id]).ok();
    env.assert_clean();
}

/// Writes `KIND cwd=$(pwd) one=$ONE home=$HOME leak=$RRUN_IT_RUNTIME_ENV_LEAK` to
/// LOGDIR/where. Args: KIND LOGDIR.
const WHERE: &str = r#"#!/bin/sh
cat > /dev/null
echo "$1 cwd=$(pwd) one=$ONE home=$HOME leak=$RRUN_IT_RUNTIME_ENV_LEAK" >> "$2/where"
"#;

/// runc: a hook without `env` inherits the environment of whoever runs it: the runtime's
/// for hooks on the host, the process's for createContainer and startContainer (HOME filled
/// in by then); one with `env` gets only its own. createContainer and startContainer hooks
/// run from the container's root, the hooks on the host from the bundle.
#[test]
fn hooks_env_and_cwd() {
    let env = test_env!();
    let mut h = Hooks::new(&env);
    let rootfs = std::path::PathBuf::from(h.spec["root"]["path"].as_str().unwrap());
    for dir in [&h.scripts, &rootfs] {
        let p = dir.join("where.sh");
        fs::write(&p, WHERE).unwrap();
        host("chmod", &["755", p.to_str().unwrap()]);
    }
    push_env(&mut h.spec, "ONE=two");
    let log = h.log.to_str().unwrap().to_string();
    let script = h.scripts.join("where.sh").to_str().unwrap().to_string();
    let hook = |kind: &str, own_env: bool| {
        let (path, dir) = if kind == "startContainer" {
            ("/where.sh".to_string(), "/hooklog".to_string())
        } else {
            (script.clone(), log.clone())
        };
        let mut v = json!({"path": path, "args": ["where.sh", kind, dir]});
        if own_env {
            v["env"] = json!(["ONE=own"]);
        }
        v
    };
    set(
        &mut h.spec,
        "/hooks",
        json!({
            "prestart": [hook("prestart", false)],
            "createRuntime": [hook("createRuntime", false)],
            "createContainer": [hook("createContainer", false)],
            "startContainer": [hook("startContainer", false), hook("startContainer", true)],
            "poststart": [hook("poststart", false)],
        }),
    );
    env.create_ok(&h.spec);
    env.rt(&["start", &env.id]).ok();
    let bundle = fs::canonicalize(&env.bundle).unwrap();
    let root = fs::canonicalize(&rootfs).unwrap();
    let (b, r) = (bundle.display(), root.display());
    let home = std::env::var("HOME").unwrap_or_default();
    let got = fs::read_to_string(h.log.join("where")).unwrap();
    assert_eq!(
        got,
        format!(
            "prestart cwd={b} one= home={home} leak=leaked\n\
             createRuntime cwd={b} one= home={home} leak=leaked\n\
             createContainer cwd={r} one=two home= leak=\n\
             startContainer cwd=/ one=two home=/root leak=\n\
             startContainer cwd=/ one=own home= leak=\n\
             poststart cwd={b} one= home={home} leak=leaked\n"
        )
    );
    env.rt(&["delete", "--force", &env.id]).ok();
    env.wait_init();
    env.assert_clean();
}
