//! Mounts: tmpfs options, bind mounts, read-only and read-write rootfs,
//! default devices, masked and read-only paths.
//!
//! Tests that use the shared rootfs only mount on directories that already
//! exist in it (/mnt, /home): a runtime creates missing mount points in the
//! rootfs before making it read-only, which would modify the shared bundle.
//! Tests that need new mount points use a private copy of the rootfs.

use std::fs;
use std::io::Read;

use serde_json::json;

use crate::common::*;

/// The /proc/self/mounts line whose mount point is `mp`.
fn mount_line<'a>(out: &'a Out, mp: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(mp))
        .unwrap_or_else(|| panic!("no mount at {mp}:\n{out}"))
}

#[test]
fn tmpfs_size_and_mode() {
    let env = test_env!();
    // The destination does not exist in the rootfs (hence the private copy):
    // runc before 1.1.8 chmods a tmpfs mounted over an existing directory
    // back to that directory's mode, ignoring `mode=`
    // (opencontainers/runc#3911). The spec passes options to mount(2), so
    // `mode=` must win; this test just avoids the runc bug.
    let rootfs = env.copy_rootfs();
    let out = env.sh_ok(
        "stat -c %a /it-tmpfs; df -k /it-tmpfs | tail -n 1; cat /proc/self/mounts",
        |s| {
            set(s, "/root/path", json!(rootfs.to_str().unwrap()));
            add_mount(
                s,
                json!({
                    "destination": "/it-tmpfs",
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["nosuid", "nodev", "size=2m", "mode=1750"],
                }),
            );
        },
    );
    let lines = out.lines();
    assert_eq!(lines[0], "1750", "{out}");
    let df: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(df[1], "2048", "df 1K-blocks:\n{out}");
    let line = mount_line(&out, "/it-tmpfs");
    let opts: Vec<&str> = line.split_whitespace().nth(3).unwrap().split(',').collect();
    assert!(line.starts_with("tmpfs "), "{line}");
    for want in ["rw", "nosuid", "nodev", "size=2048k", "mode=1750"] {
        assert!(opts.contains(&want), "{want} missing in {line}");
    }
}

#[test]
fn readonly_bind_of_host_dir() {
    let env = test_env!();
    let ro = env.host_dir("ro-src");
    let rw = env.host_dir("rw-src");
    fs::write(ro.join("hello"), "from host\n").unwrap();
    let out = env.run_capture(
        &[
            "sh",
            "-c",
            "cat /mnt/hello; touch /mnt/new; echo ro=$?; echo data > /home/new; echo rw=$?",
        ],
        |s| {
            add_mount(s, bind_mount(&ro, "/mnt", &["rbind", "ro"]));
            add_mount(s, bind_mount(&rw, "/home", &["rbind", "rw"]));
        },
    );
    out.ok();
    assert_eq!(out.lines(), vec!["from host", "ro=1", "rw=0"], "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    assert!(!ro.join("new").exists(), "write went through a ro bind");
    assert_eq!(fs::read_to_string(rw.join("new")).unwrap(), "data\n");
    assert_eq!(
        fs::read_dir(&ro).unwrap().count(),
        1,
        "read-only source dir changed"
    );
}

#[test]
fn readonly_rootfs_rejects_writes() {
    let env = test_env!();
    let name = format!("it-ro-{}", std::process::id());
    let out = env.run_capture(&["sh", "-c", &format!("touch /{name}; echo rc=$?")], |s| {
        set(s, "/root/readonly", json!(true))
    });
    out.ok();
    let leaked = shared_rootfs().join(&name);
    if leaked.exists() {
        let _ = fs::remove_file(&leaked);
        panic!("wrote {} through a read-only rootfs", leaked.display());
    }
    assert_eq!(out.lines(), vec!["rc=1"], "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
}

#[test]
fn readwrite_rootfs_accepts_writes() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let out = env.sh_ok("echo written > /it-file && cat /it-file", |s| {
        set(s, "/root/path", json!(rootfs.to_str().unwrap()));
        set(s, "/root/readonly", json!(false));
    });
    assert_eq!(out.stdout, "written\n", "{out}");
    assert_eq!(
        fs::read_to_string(rootfs.join("it-file")).unwrap(),
        "written\n"
    );
}

/// The runtime-spec's default devices (config-linux.md, "Default Devices").
#[test]
fn default_devices_present() {
    let env = test_env!();
    let script = "for d in null zero full random urandom tty; do \
                  if [ -c /dev/$d ]; then echo $d ok; else echo $d missing; fi; done; \
                  echo x > /dev/null && echo write-null ok; \
                  head -c 4 /dev/zero | wc -c; \
                  [ -e /dev/ptmx ] && echo ptmx ok; \
                  for l in fd stdin stdout stderr; do readlink /dev/$l; done";
    let out = env.sh_ok(script, |_| {});
    assert_eq!(
        out.lines(),
        vec![
            "null ok",
            "zero ok",
            "full ok",
            "random ok",
            "urandom ok",
            "tty ok",
            "write-null ok",
            "4",
            "ptmx ok",
            "/proc/self/fd",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2",
        ],
        "{out}"
    );
}

#[test]
fn masked_and_readonly_paths() {
    let env = test_env!();
    // A masked file that exists and has content on this host (which of
    // them exist depends on the kernel config).
    // Only the first byte is read: /proc/kcore would be huge.
    let has_content = |p: &&str| {
        let mut b = [0u8; 1];
        fs::File::open(p)
            .and_then(|mut f| f.read(&mut b))
            .map(|n| n == 1)
            .unwrap_or(false)
    };
    let masked = [
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/keys",
        "/proc/kcore",
    ]
    .into_iter()
    .find(has_content)
    .expect("no maskable /proc file on this host");
    // The domainname sysctl is mode 0644, so only the read-only /proc/sys
    // mount stops root from writing it.
    let script = format!(
        "wc -c < {masked}; \
         echo it > /proc/sys/kernel/domainname; echo rc=$?; \
         grep ' /proc/sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1"
    );
    let out = env.sh_ok(&script, |_| {});
    assert_eq!(out.lines(), vec!["0", "rc=1", "ro"], "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
}

/// linux.rootfsPropagation: a shared / when asked (it needs the mount holding the rootfs made
/// private first, as pivot_root refuses a shared parent), none otherwise (the rootfs bind is
/// private before the pivot, so "slave" has no master left, as with runc). runc 1.1.5 fails
/// the "shared" half: its / stays private whatever rootfsPropagation says.
#[test]
fn rootfs_propagation_modes() {
    let env = test_env!();
    for (mode, want_shared) in [("shared", true), ("slave", false), ("private", false)] {
        let out = env.sh_ok(
            "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo",
            |s| {
                set(s, "/linux/rootfsPropagation", json!(mode));
            },
        );
        let line = out.stdout.lines().next().unwrap_or_default().to_string();
        assert!(!line.is_empty(), "{mode}: no / line in mountinfo:\n{out}");
        assert_eq!(
            line.contains(" shared:"),
            want_shared,
            "{mode}: / is {line:?}"
        );
    }
    env.assert_clean();
}

/// rootfsPropagation "unbindable" (runtime-spec; runc): an unbindable tree cannot be bound,
/// so the rootfs bind happens under a private / and the new / is made unbindable after the
/// pivot.
#[test]
fn rootfs_propagation_unbindable() {
    let env = test_env!();
    let out = env.sh_ok(
        "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo",
        |s| {
            set(s, "/linux/rootfsPropagation", json!("unbindable"));
        },
    );
    let line = out.stdout.lines().next().unwrap_or_default().to_string();
    assert!(line.contains(" unbindable"), "/ is {line:?}\n{out}");
    env.assert_clean();
}

/// maskedPaths and readonlyPaths follow a symlink inside the root to what it names (as
/// runc's mount does), and one that loops is an error naming the field; a relative
/// readonlyPaths entry is taken from the root with a warning (runc).
#[test]
fn masked_symlinks_and_relative_readonly_paths() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    std::os::unix::fs::symlink("/loop", rootfs.join("loop")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", rootfs.join("to-hostname")).unwrap();
    fs::write(rootfs.join("etc/hostname"), "secret\n").unwrap();
    let root = rootfs.to_str().unwrap().to_string();
    let out = env.sh_ok(
        "cat /etc/hostname; echo x > /proc/sys/kernel/domainname && echo writable || echo ro",
        |s| {
            set(s, "/root/path", json!(root));
            set(s, "/linux/maskedPaths", json!(["/to-hostname"]));
            set(s, "/linux/readonlyPaths", json!(["proc/sys"]));
        },
    );
    // /etc/hostname reads empty (masked through the symlink), /proc/sys is read-only.
    assert_eq!(out.stdout, "ro\n", "{out}");
    assert!(
        out.stderr.contains("readonlyPaths[0]") && out.stderr.contains("level=warning"),
        "{out}"
    );
    let mut spec = env.spec();
    set(&mut spec, "/root/path", json!(root));
    set(&mut spec, "/linux/maskedPaths", json!(["/loop"]));
    env.write_bundle(&spec);
    env.create(&env.id)
        .failed()
        .stderr_has_all(&["maskedPaths[0]", "ELOOP"]);
    env.assert_clean();
}

/// Makes open_tree, move_mount and mount_setattr fail with ENOSYS in the process about to
/// exec (and everything it starts), as on a kernel older than the new mount API.
fn without_new_mount_api(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    const SYS_OPEN_TREE: u32 = 428;
    const SYS_MOVE_MOUNT: u32 = 429;
    const SYS_MOUNT_SETATTR: u32 = 442;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        stmt(ld, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH_X86_64, 0, 4),
        stmt(ld, 0), // seccomp_data.nr
        jeq(SYS_OPEN_TREE, 3, 0),
        jeq(SYS_MOVE_MOUNT, 2, 0),
        jeq(SYS_MOUNT_SETATTR, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ];
    // SAFETY: only async-signal-safe prctl calls between fork and exec; the program outlives
    // the call (the kernel copies it).
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Bind mounts go through open_tree/mount_setattr/move_mount where the kernel has them and
/// through mount(2) where it does not: both give the same mounts (read-only binds, read-only
/// and masked paths, the read-only per-controller cgroup binds).
#[test]
fn binds_without_the_new_mount_api() {
    let env = test_env!();
    let ro = env.host_dir("ro-src");
    fs::write(ro.join("hello"), "from host\n").unwrap();
    let masked = ["/proc/timer_list", "/proc/sched_debug", "/proc/keys"]
        .into_iter()
        .find(|p| fs::read(p).is_ok_and(|b| !b.is_empty()))
        .expect("no maskable /proc file on this host");
    let script = format!(
        "cat /mnt/hello; touch /mnt/new 2>/dev/null; echo bind=$?; \
         echo x > /proc/sys/kernel/domainname 2>/dev/null; echo procsys=$?; \
         wc -c < {masked}; \
         mkdir /sys/fs/cgroup/memory/x 2>/dev/null; echo cgroup=$?; \
         echo hi > /probe; cat /probe"
    );
    let mut results = Vec::new();
    for old_kernel in [false, true] {
        let mut spec = env.spec();
        set_args(&mut spec, &["sh", "-c", &script]);
        set(&mut spec, "/root/readonly", json!(false));
        set(
            &mut spec,
            "/root/path",
            json!(env.copy_rootfs().to_str().unwrap()),
        );
        add_mount(&mut spec, bind_mount(&ro, "/mnt", &["rbind", "ro"]));
        env.write_bundle(&spec);
        env.track_id(&env.id);
        let bundle = env.bundle.to_str().unwrap().to_string();
        let mut cmd = env.command(&["run", "--bundle", &bundle, &env.id]);
        if old_kernel {
            without_new_mount_api(&mut cmd);
        }
        let out = run_cmd(&mut cmd, std::time::Duration::from_secs(60));
        out.ok();
        results.push(out.lines());
    }
    assert_eq!(
        results[0],
        vec!["from host", "bind=1", "procsys=1", "0", "cgroup=1", "hi"],
        "with the new mount API"
    );
    assert_eq!(results[0], results[1], "mount(2) fallback differs");
    assert!(!ro.join("new").exists(), "write went through a ro bind");
}

/// A host mount made for one test, unmounted (lazily) when the test ends, however it ends.
struct HostMount(std::path::PathBuf);

impl HostMount {
    fn tmpfs(dir: std::path::PathBuf) -> HostMount {
        fs::create_dir_all(&dir).unwrap();
        host(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "tmpfs",
                dir.to_str().unwrap(),
            ],
        )
        .ok();
        HostMount(dir)
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l", self.0.to_str().unwrap()])
            .status();
    }
}

/// A new user namespace mapping container root to host uid/gid 100000 (without the cgroupfs
/// mount, which needs a cgroup namespace there).
fn in_user_namespace(s: &mut serde_json::Value) {
    add_namespace(s, json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    set(s, "/linux/uidMappings", map.clone());
    set(s, "/linux/gidMappings", map);
    remove_mount(s, "/sys/fs/cgroup");
}

/// The mountinfo options field (the 6th) of the mount at `dest`, from the container's own
/// mountinfo printed by the script.
fn mount_opts_of(out: &Out, dest: &str) -> String {
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(dest))
        .and_then(|l| l.split_whitespace().nth(5).map(String::from))
        .unwrap_or_else(|| panic!("no {dest} in mountinfo:\n{out}"))
}

/// A bind mount gets the flags its options name, whatever the source mount has: a source
/// that is ro,nosuid,nodev,noexec bound "rw,suid,dev,exec" is none of them (runc 1.2+), and
/// one bound with no flag options keeps the source's (nothing is cleared unasked).
#[test]
fn bind_mount_options_clear_what_they_name() {
    let env = test_env!();
    let m = HostMount::tmpfs(env.dir.join("locked-src"));
    fs::write(m.0.join("f"), "x").unwrap();
    host(
        "mount",
        &[
            "-o",
            "remount,bind,ro,nosuid,nodev,noexec",
            m.0.to_str().unwrap(),
        ],
    )
    .ok();
    let src = m.0.to_str().unwrap().to_string();
    let out = env.sh_ok(
        "cat /proc/self/mountinfo; echo y > /mnt/f && echo wrote",
        |s| {
            add_mount(
                s,
                json!({"destination": "/mnt", "type": "bind", "source": src,
                "options": ["bind", "rw", "suid", "dev", "exec"]}),
            );
            add_mount(
                s,
                json!({"destination": "/home", "type": "bind", "source": src,
                "options": ["bind"]}),
            );
        },
    );
    let cleared = mount_opts_of(&out, "/mnt");
    assert!(cleared.starts_with("rw"), "/mnt: {cleared}");
    for f in ["nosuid", "nodev", "noexec"] {
        assert!(!cleared.split(',').any(|o| o == f), "/mnt: {cleared}");
    }
    assert!(out.stdout.contains("wrote"), "{out}");
    let kept = mount_opts_of(&out, "/home");
    for f in ["nosuid", "nodev", "noexec"] {
        assert!(kept.split(',').any(|o| o == f), "/home: {kept}");
    }
    drop(m);
    env.assert_clean();
}

/// The recursive options (rro, rnosuid, rnoexec...) reach every mount of an rbind, the
/// submounts too (mount_setattr AT_RECURSIVE), and `features` lists them.
#[test]
fn recursive_mount_options() {
    let env = test_env!();
    let top = HostMount::tmpfs(env.dir.join("rsrc"));
    let sub = HostMount::tmpfs(top.0.join("sub"));
    let src = top.0.to_str().unwrap().to_string();
    let out = env.sh_ok(
        "cat /proc/self/mountinfo; touch /mnt/x 2>/dev/null || echo top-ro; touch /mnt/sub/x 2>/dev/null || echo sub-ro",
        |s| {
            add_mount(s, json!({"destination": "/mnt", "type": "bind", "source": src,
                "options": ["rbind", "rro", "rnosuid", "rnoexec"]}));
        },
    );
    for dest in ["/mnt", "/mnt/sub"] {
        let o = mount_opts_of(&out, dest);
        for f in ["ro", "nosuid", "noexec"] {
            assert!(o.split(',').any(|x| x == f), "{dest}: {o}");
        }
    }
    assert!(
        out.stdout.contains("top-ro") && out.stdout.contains("sub-ro"),
        "{out}"
    );
    if let Some(f) = runtime_features() {
        let opts = f["mountOptions"].as_array().cloned().unwrap_or_default();
        assert!(opts.iter().any(|o| o == "rro"), "features: {opts:?}");
    }
    drop(sub);
    drop(top);
    env.assert_clean();
}

/// In a user namespace the source's nosuid/nodev/noexec are locked: a bind asking "suid,
/// dev,exec" keeps them instead of failing with EPERM (runc), and "rw" still applies.
#[test]
fn bind_mount_locked_flags_in_a_user_namespace() {
    let env = test_env!();
    let m = HostMount::tmpfs(env.dir.join("userns-src"));
    host(
        "mount",
        &[
            "-o",
            "remount,bind,nosuid,nodev,noexec",
            m.0.to_str().unwrap(),
        ],
    )
    .ok();
    let src = m.0.to_str().unwrap().to_string();
    let out = env.sh_ok("cat /proc/self/mountinfo", |s| {
        in_user_namespace(s);
        add_mount(
            s,
            json!({"destination": "/mnt", "type": "bind", "source": src,
            "options": ["bind", "rw", "suid", "dev", "exec"]}),
        );
    });
    let o = mount_opts_of(&out, "/mnt");
    assert!(o.starts_with("rw"), "/mnt: {o}");
    for f in ["nosuid", "nodev", "noexec"] {
        assert!(
            o.split(',').any(|x| x == f),
            "/mnt lost the locked {f}: {o}"
        );
    }
    drop(m);
    env.assert_clean();
}

/// `/dev` as a read-only tmpfs (runc): its device nodes, symlinks and /dev/pts are made
/// first, then it is remounted read-only; the devices still work.
#[test]
fn dev_read_only_tmpfs() {
    let env = test_env!();
    let out = env.sh_ok(
        "grep ' /dev ' /proc/self/mountinfo; test -d /dev/pts && echo pts; test -L /dev/fd && echo fd-link; echo x > /dev/null && echo null-ok; touch /dev/x 2>/dev/null || echo dev-ro",
        |s| {
            let mounts = s["mounts"].as_array_mut().unwrap();
            let dev = mounts.iter_mut().find(|m| m["destination"] == "/dev").unwrap();
            dev["options"].as_array_mut().unwrap().push(json!("ro"));
        },
    );
    let o = mount_opts_of(&out, "/dev");
    assert!(o.split(',').any(|x| x == "ro"), "/dev: {o}");
    for want in ["pts", "fd-link", "null-ok", "dev-ro"] {
        assert!(out.lines().iter().any(|l| l == want), "{want}: {out}");
    }
    env.assert_clean();
}

/// Mounts happen in order, and a bind source inside the rootfs is resolved when its turn
/// comes: a tmpfs at /mnt, then a bind of the rootfs's /mnt (now that tmpfs) at /home.
#[test]
fn bind_source_inside_the_rootfs_after_earlier_mounts() {
    let env = test_env!();
    let rootfs = shared_rootfs();
    let src = rootfs.join("mnt").to_str().unwrap().to_string();
    let out = env.sh_ok("echo x > /mnt/made-in-tmpfs; ls /home", |s| {
        add_mount(
            s,
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}),
        );
        add_mount(
            s,
            json!({"destination": "/home", "type": "bind", "source": src, "options": ["bind"]}),
        );
    });
    assert_eq!(out.lines(), ["made-in-tmpfs"], "{out}");
    env.assert_clean();
}

/// With a user namespace, a bind source the container's root cannot reach on the host (in a
/// 0700 root-owned directory) is opened for it from its own mount namespace by a helper that
/// keeps the host's credentials (runc's way), and gets its options ("ro") once mounted. The
/// mount is the kernel's locked copy: a source read-only on the host cannot be remounted
/// read-write from inside, even with CAP_SYS_ADMIN in the container's user namespace.
#[test]
fn userns_bind_source_behind_a_private_dir() {
    let env = test_env!();
    let private = env.host_dir("private");
    let inner = private.join("inner");
    fs::create_dir_all(&inner).unwrap();
    fs::write(inner.join("f"), "hidden\n").unwrap();
    host("chmod", &["700", private.to_str().unwrap()]);
    let ro = HostMount::tmpfs(private.join("ro"));
    fs::write(ro.0.join("g"), "host-ro\n").unwrap();
    host("mount", &["-o", "remount,bind,ro", ro.0.to_str().unwrap()]).ok();
    let (src, ro_src) = (
        inner.to_str().unwrap().to_string(),
        ro.0.to_str().unwrap().to_string(),
    );
    let out = env.sh_ok(
        "cat /mnt/f /home/g; grep ' /mnt ' /proc/self/mountinfo; mount -o remount,bind,rw /home 2>/dev/null && echo home-rw || echo home-stays-ro",
        |s| {
            in_user_namespace(s);
            for set_name in ["bounding", "effective", "permitted"] {
                s["process"]["capabilities"][set_name]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_ADMIN"));
            }
            add_mount(
                s,
                json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
            );
            add_mount(
                s,
                json!({"destination": "/home", "type": "bind", "source": ro_src, "options": ["bind"]}),
            );
        },
    );
    let lines = out.lines();
    assert_eq!(&lines[..2], ["hidden", "host-ro"], "{out}");
    let o = mount_opts_of(&out, "/mnt");
    assert!(o.starts_with("ro"), "/mnt: {o}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("home-stays-ro"),
        "{out}"
    );
    drop(ro);
    env.assert_clean();
}
