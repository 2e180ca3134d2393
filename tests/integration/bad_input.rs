//! Bad configs, bad ids and wrong-state operations: each must fail with a
//! clear message and leave nothing behind (state dir, cgroup, mounts,
//! processes). Messages are matched loosely: on what any good message names
//! (the offending field or value), or on runc's wording that rrun keeps
//! ("does not exist", "exists", "not running").

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;

/// `create` with `spec` must fail, mention one of `needles`, and leave nothing.
#[track_caller]
fn create_fails(env: &TestEnv, spec: &Value, needles: &[&str]) -> Out {
    env.write_bundle(spec);
    let out = env.create(&env.id);
    out.failed().stderr_has_any(needles);
    env.assert_clean();
    out
}

#[test]
fn invalid_json_config() {
    let env = test_env!();
    // runc: "unexpected EOF" / "invalid character ',' looking for beginning
    // of object key string"; serde_json says "EOF while parsing ..." /
    // "expected ...".
    for text in [
        "{\"ociVersion\": \"1.0.2\", \"process\": {",
        "{\"ociVersion\": \"1.0.2\",, }",
        "",
    ] {
        env.write_raw_config(text);
        let out = env.create(&env.id);
        out.failed()
            .stderr_has_any(&["json", "eof", "invalid character", "expected", "parse"]);
        env.assert_clean();
    }
}

#[test]
fn wrong_type_names_json_path() {
    let env = test_env!();
    // runc: "json: cannot unmarshal string into Go struct field
    // Process.process.args of type []string"
    let mut spec = env.spec();
    set(&mut spec, "/process/args", json!("sh"));
    create_fails(&env, &spec, &["process.args"]);
    // runc: "... Go struct field POSIXRlimit.process.rlimits.soft of type
    // uint64"; a serde path is "process.rlimits[0].soft".
    let mut spec = env.spec();
    set(&mut spec, "/process/rlimits/0/soft", json!("many"));
    let out = create_fails(&env, &spec, &["process.rlimits"]);
    out.stderr_has_all(&["soft"]);
}

#[test]
fn missing_rootfs() {
    let env = test_env!();
    let missing = env.dir.join("no-such-rootfs");
    let mut spec = env.spec();
    set(&mut spec, "/root/path", json!(missing.to_str().unwrap()));
    // runc: "invalid rootfs: stat /tmp/.../no-such-rootfs: no such file or
    // directory"
    create_fails(
        &env,
        &spec,
        &["rootfs", "root.path", missing.to_str().unwrap()],
    );
    assert!(!missing.exists(), "the runtime created the missing rootfs");
}

#[test]
fn unknown_namespace_type() {
    let env = test_env!();
    let mut spec = env.spec();
    add_namespace(&mut spec, json!({"type": "nett"}));
    // runc: namespace {"nett" ""} does not exist
    create_fails(&env, &spec, &["nett"]);
}

#[test]
fn duplicate_namespace() {
    let env = test_env!();
    let mut spec = env.spec();
    add_namespace(&mut spec, json!({"type": "pid"}));
    // runc: malformed spec file: duplicated ns {"pid" ""}
    let out = create_fails(&env, &spec, &["duplicate"]);
    out.stderr_has_all(&["pid"]);
}

#[test]
fn relative_cwd_rejected() {
    let env = test_env!();
    let mut spec = env.spec();
    set(&mut spec, "/process/cwd", json!("tmp"));
    // runtime-spec: cwd "MUST be an absolute path". runc: "Cwd must be an
    // absolute path".
    create_fails(&env, &spec, &["cwd"]);
}

/// runtime-spec 1.0 said a mount destination MUST be absolute; runtime-spec
/// 1.1 (opencontainers/runtime-spec#1225) relaxed that for Linux because
/// runc never managed to enforce it without breaking users: a relative
/// destination MAY be supported and then MUST be interpreted relative to
/// "/". runc 1.1.5 accepts it with a deprecation warning and mounts at
/// /relative/path. So: either a clear rejection, or the mount lands at
/// /relative/path in the container -- never relative to the process cwd,
/// the runtime's cwd or the bundle.
#[test]
fn relative_mount_destination() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let mut spec = env.spec();
    set(&mut spec, "/root/path", json!(rootfs.to_str().unwrap()));
    set(&mut spec, "/process/cwd", json!("/tmp"));
    set_script(&mut spec, "cat /proc/self/mounts");
    add_mount(
        &mut spec,
        json!({"destination": "relative/path", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=1m"]}),
    );
    let out = env.run_spec(&spec);
    if out.success() {
        let mps: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert!(
            mps.contains(&"/relative/path"),
            "relative destination not anchored at /:\n{out}"
        );
        assert!(!mps.contains(&"/tmp/relative/path"), "{out}");
    } else {
        out.stderr_has_any(&["relative/path", "absolute", "destination"]);
    }
    env.assert_clean();
    for base in [&env.dir, &env.bundle] {
        assert!(
            !base.join("relative").exists(),
            "created {}/relative on the host",
            base.display()
        );
    }
}

/// Mount destinations that are symlinks to absolute host paths must be
/// resolved inside the rootfs (or refused). Escaping would mount over the
/// host directory in the container's mount namespace (`/evil`, target
/// exists) or create directories on the host (`/evil2`, target missing).
#[test]
fn symlink_mount_destination_outside_rootfs() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let existing = env.host_dir("host-target");
    let missing = env.dir.join("host-missing/sub");
    std::os::unix::fs::symlink(&existing, rootfs.join("evil")).unwrap();
    std::os::unix::fs::symlink(&missing, rootfs.join("evil2")).unwrap();
    let mut spec = env.spec();
    set(&mut spec, "/root/path", json!(rootfs.to_str().unwrap()));
    // The rootfs is read-only: a write only works where a tmpfs is mounted.
    set_script(
        &mut spec,
        "for d in evil evil2; do \
           if echo inside > /$d/marker; then echo $d WROTE; else echo $d NOWRITE; fi; \
         done",
    );
    for dest in ["/evil", "/evil2"] {
        add_mount(
            &mut spec,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                   "options": ["size=1m"]}),
        );
    }
    let out = env.run_spec(&spec);
    if out.success() {
        assert_eq!(
            out.lines(),
            vec!["evil WROTE", "evil2 WROTE"],
            "a tmpfs is not where its destination resolves in the container:\n{out}"
        );
    } else {
        assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
    }
    env.assert_clean();
    assert_eq!(
        fs::read_dir(&existing).unwrap().count(),
        0,
        "something was created in the host directory"
    );
    assert!(
        !env.dir.join("host-missing").exists(),
        "the runtime created the symlink target on the host"
    );
}

/// `..` in a mount destination cannot climb out of the rootfs: the
/// destination names a host path (missing on the host) after enough `..`.
#[test]
fn dotdot_mount_destination() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let target = env.dir.join("dotdot-missing/sub");
    let dest = format!("/../../../../../../..{}", target.display());
    let mut spec = env.spec();
    set(&mut spec, "/root/path", json!(rootfs.to_str().unwrap()));
    set_script(
        &mut spec,
        &format!(
            "if echo inside > {}/marker; then echo WROTE; else echo NOWRITE; fi",
            target.display()
        ),
    );
    add_mount(
        &mut spec,
        json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
               "options": ["size=1m"]}),
    );
    let out = env.run_spec(&spec);
    if out.success() {
        assert_eq!(out.stdout, "WROTE\n", "{out}");
    } else {
        assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
    }
    env.assert_clean();
    assert!(
        !env.dir.join("dotdot-missing").exists(),
        "the runtime created the destination on the host"
    );
}

#[test]
fn bad_container_ids() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["true"]);
    env.write_bundle(&spec);
    let entries = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for id in ["", "a/b", ".", "..", "../escape", "a/../../escape"] {
        // runc: "container id cannot be empty" / "invalid container ID format"
        env.create(id)
            .failed()
            .stderr_has_any(&["id"])
            .stderr_has_any(&["invalid", "empty"]);
        for verb in [
            &["state", id][..],
            &["kill", id, "KILL"],
            &["delete", "--force", id],
        ] {
            env.rt(verb).failed();
        }
        env.assert_clean();
        assert!(env.bundle.join("config.json").exists(), "bundle damaged");
        assert!(!env.dir.join("escape").exists(), "state escaped --root");
        let top = entries(&env.dir);
        assert!(
            top.iter()
                .all(|e| e == "TEST" || e == "bundle" || e == "state" || e.starts_with("create")),
            "unexpected entries in the temp dir: {top:?}"
        );
        assert!(entries(&env.root).is_empty(), "state dir not empty");
    }
}

#[test]
fn create_existing_id_fails() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_ok(&spec);
    let pid = env.init_pid();
    // runc: "container with given ID already exists"
    env.create(&env.id).failed().stderr_has_any(&["exists"]);
    // The first container is untouched and still works.
    let st = env.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
    assert!(
        !cgroup_dirs(&env.cgroups_path()).is_empty(),
        "the failed create removed the first container's cgroup"
    );
    env.rt(&["start", &env.id]).ok();
    assert_eq!(env.status(), "running");
    assert_eq!(env.list_quiet(), vec![env.id.clone()]);
}

#[test]
fn start_twice_fails() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    let pid = env.init_pid();
    // runc: "cannot start an already running container"
    env.rt(&["start", &env.id])
        .failed()
        .stderr_has_any(&["running", "created"]);
    let st = env.state();
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
}

#[test]
fn unknown_id_does_not_exist() {
    let env = test_env!();
    let id = format!("it-unknown-{}", std::process::id());
    // runc: "container does not exist"
    for verb in [
        &["state", &id][..],
        &["start", &id],
        &["kill", &id, "KILL"],
        &["kill", &id, "9"],
        &["delete", &id],
    ] {
        env.rt(verb).failed().stderr_has_any(&["does not exist"]);
    }
    env.assert_clean();
}

/// A failure printed for a person says it is an error (tools grep stderr for "error"), as
/// runc's `level=error msg=...` lines do.
#[test]
fn human_error_lines_say_error() {
    let env = test_env!();
    let out = env.rt(&["state", "no-such-container"]);
    out.failed();
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("error") && l.contains("does not exist")),
        "{out}"
    );
}

/// Every verb has help (`VERB -h`, `VERB --help`, `help VERB`) on stdout, exit 0; an
/// unknown verb says there is no such command, also when asked for its help.
#[test]
fn help_for_every_verb_and_unknown_verbs() {
    let env = test_env!();
    let verbs = [
        "spec", "create", "start", "state", "kill", "delete", "run", "list", "pause", "resume",
        "ps", "update", "events", "exec", "features",
    ];
    for verb in verbs {
        for args in [vec![verb, "-h"], vec![verb, "--help"], vec!["help", verb]] {
            let out = env.rt(&args);
            out.ok();
            assert!(
                out.stdout.contains(verb) && out.stdout.to_lowercase().contains("usage"),
                "{args:?}: no help text\n{out}"
            );
        }
    }
    for args in [
        vec!["no-such-verb"],
        vec!["no-such-verb", "-h"],
        vec!["help", "no-such-verb"],
    ] {
        let out = env.rt(&args);
        out.failed();
        let err = out.stderr.to_lowercase();
        // runc says "No help topic for 'x'"; rrun "no such command".
        assert!(
            err.contains("no-such-verb")
                && (err.contains("no such command") || err.contains("no help topic")),
            "{args:?}\n{out}"
        );
    }
}

/// `linux.mountLabel` on a host without SELinux labels nothing: ignored, as crun and youki
/// do (a process label that cannot be applied is still refused).
#[test]
fn mount_label_without_selinux_ignored() {
    let env = test_env!();
    if Path::new("/sys/fs/selinux/enforce").exists() {
        eprintln!("SKIPPED {}: SELinux is enabled here", env.name);
        return;
    }
    let out = env.sh_ok("echo ran", |s| {
        set(
            s,
            "/linux/mountLabel",
            json!("system_u:object_r:container_file_t:s0:c1,c2"),
        );
    });
    assert_eq!(out.lines(), ["ran"], "{out}");
    let mut spec = env.spec();
    set(
        &mut spec,
        "/process/selinuxLabel",
        json!("system_u:system_r:container_t:s0:c1,c2"),
    );
    create_fails(&env, &spec, &["selinux"]);
}
