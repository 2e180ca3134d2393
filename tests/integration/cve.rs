//! CVE regressions: one test per known container-runtime attack, each
//! asserting that the attack fails and that the host is untouched.
//!
//! The attacks only ever aim at files in the test's temp dir; host procfs
//! files are read (before and after), never written. CVE-2019-5736 (the
//! runtime binary overwritten through /proc/PID/exe, by `exec` and by `run`)
//! is covered in `exec::exec_cve_2019_5736_runtime_binary_not_writable`.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use serde_json::{Value, json};

use crate::common::*;
use crate::security::{BUSYBOX_CAPS, cap_mask, set_caps, status_caps};

/// Host-side lines of /proc/self/mountinfo that mention `needle`.
fn host_mounts_mentioning(needle: &Path) -> Vec<String> {
    let n = needle.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(n))
        .map(str::to_string)
        .collect()
}

/// Everything below `dir` (relative paths), recursively, without following
/// symlinks.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[track_caller]
fn assert_empty_dir(dir: &Path, what: &str) {
    let t = tree(dir);
    assert!(
        t.is_empty(),
        "{what}: {} is not empty: {t:?}",
        dir.display()
    );
    let m = host_mounts_mentioning(dir);
    assert!(m.is_empty(), "{what}: mounts on the host: {m:?}");
}

/// A failed run must say why.
#[track_caller]
fn assert_refused_with_message(out: &Out) {
    out.failed();
    assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
    assert!(
        out.status.code().is_some(),
        "the runtime was killed by a signal:\n{out}"
    );
}

/// Content, mode, owner and group of a host file.
fn snapshot(p: &Path) -> (Vec<u8>, u32, u32, u32) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (fs::read(p).unwrap(), md.mode(), md.uid(), md.gid())
}

fn with_rootfs(spec: &mut Value, rootfs: &Path) {
    set(spec, "/root/path", json!(rootfs.to_str().unwrap()));
}

// ---------------------------------------------------------------------------
// CVE-2024-21626: leaked fds and process.cwd = /proc/self/fd/N

/// runc leaked an fd of the host's /sys/fs/cgroup into the container's
/// init: with `process.cwd` = /proc/self/fd/N the process started in a host
/// directory, and `..` walked out to the host's root. Each attempt, by `run`
/// and by `exec --cwd`, must fail or stay inside: a host file two dozen `..`
/// up from the cwd must not be readable.
#[test]
fn cve_2024_21626_cwd_proc_self_fd() {
    let env = test_env!();
    // Runtimes create a missing cwd in the rootfs: use a private copy.
    let rootfs = env.copy_rootfs();
    let secret = format!("host-secret-{}", std::process::id());
    let marker = env.dir.join("host-marker");
    fs::write(&marker, &secret).unwrap();
    let climb = format!(
        "{}{}",
        "../".repeat(24),
        marker.to_str().unwrap().trim_start_matches('/')
    );
    let script = format!(
        "pwd; ls -a ..; cat {climb} 2>/dev/null && echo ESCAPED; \
         cat {} 2>/dev/null && echo ESCAPED; echo end",
        marker.display()
    );
    let check = |out: &Out, how: &str| {
        assert!(
            !out.stdout.contains(&secret) && !out.stdout.contains("ESCAPED"),
            "{how}: the host file was read from the container:\n{out}"
        );
        if out.success() {
            let pwd = out.lines().first().cloned().unwrap_or_default();
            assert!(
                pwd.starts_with('/') && !pwd.contains("unreachable"),
                "{how}: cwd outside the root:\n{out}"
            );
            assert!(out.stdout.contains("end"), "{how}:\n{out}");
        } else {
            assert!(!out.stderr.trim().is_empty(), "{how}: no message:\n{out}");
            assert!(out.status.code().is_some(), "{how}: killed:\n{out}");
        }
    };
    for n in 3..20 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = env.run_capture(&["sh", "-c", &script], |s| {
            with_rootfs(s, &rootfs);
            set(s, "/process/cwd", json!(cwd));
        });
        check(&out, &format!("run with cwd {cwd}"));
        env.assert_clean();
    }

    let mut spec = env.spec();
    with_rootfs(&mut spec, &rootfs);
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    for n in 3..20 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = env.rt(&["exec", "--cwd", &cwd, &env.id, "sh", "-c", &script]);
        check(&out, &format!("exec --cwd {cwd}"));
    }
    assert_eq!(env.status(), "running");
}

/// `run` with `--preserve-fds 1`, the caller's fd 3 being `file`.
fn run_preserving_fd3(env: &TestEnv, spec: &Value, file: &fs::File) -> Out {
    env.write_bundle(spec);
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    let mut cmd = env.command(&["run", "--preserve-fds", "1", "--bundle", &bundle, &env.id]);
    let raw = file.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let r = if raw == 3 {
                // Already fd 3: just keep it across exec.
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                // dup2 clears close-on-exec on the new fd.
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_cmd(&mut cmd, CMD_TIMEOUT)
}

/// The container's process holds only its stdio (and the fds explicitly
/// preserved), nothing of the runtime's: `ls /proc/self/fd` shows 0-2 and
/// the directory fd ls itself opened.
#[test]
fn cve_2024_21626_only_stdio_and_preserved_fds() {
    let env = test_env!();
    let out = env.run_capture(&["ls", "/proc/self/fd"], |_| {});
    out.ok();
    assert_eq!(out.lines(), vec!["0", "1", "2", "3"], "{out}");

    let path = env.dir.join("preserved");
    fs::write(&path, "preserved-content\n").unwrap();
    let file = fs::File::open(&path).unwrap();
    let mut spec = env.spec();
    set_args(&mut spec, &["ls", "/proc/self/fd"]);
    let out = run_preserving_fd3(&env, &spec, &file);
    out.ok();
    assert_eq!(out.lines(), vec!["0", "1", "2", "3", "4"], "{out}");
    set_args(&mut spec, &["cat", "/proc/self/fd/3"]);
    let out = run_preserving_fd3(&env, &spec, &file);
    out.ok();
    assert_eq!(out.stdout, "preserved-content\n", "{out}");

    // A process started by `exec` too.
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_and_start(&spec);
    let out = env.rt(&["exec", &env.id, "ls", "/proc/self/fd"]);
    out.ok();
    assert_eq!(out.lines(), vec!["0", "1", "2", "3"], "{out}");
}

// ---------------------------------------------------------------------------
// CVE-2019-19921 / CVE-2023-27561 / CVE-2019-16884: a fake /proc

/// A rootfs whose /proc (or /sys) is a symlink: procfs mounted through it
/// would land elsewhere (another rootfs dir, or a host dir) and the
/// runtime's later writes to /proc/self/... would go to files the image
/// controls. Refused.
#[test]
fn cve_2023_27561_proc_or_sys_symlink_refused() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let host_proc = env.host_dir("host-proc");
    fs::create_dir(rootfs.join("fakeproc")).unwrap();
    for (name, target) in [
        ("proc", Path::new("/fakeproc")),
        ("proc", host_proc.as_path()),
        ("sys", Path::new("/fakeproc")),
        ("sys", host_proc.as_path()),
    ] {
        let link = rootfs.join(name);
        fs::remove_dir(&link).unwrap();
        symlink(target, &link).unwrap();
        let out = env.run_capture(&["true"], |s| with_rootfs(s, &rootfs));
        assert_refused_with_message(&out);
        env.assert_clean();
        fs::remove_file(&link).unwrap();
        fs::create_dir(&link).unwrap();
        assert_empty_dir(&host_proc, &format!("/{name} -> {}", target.display()));
        assert_empty_dir(&rootfs.join("fakeproc"), "/fakeproc");
    }
}

/// A plain directory bound over /proc (or over a /proc subtree that is not
/// one of the few files lxcfs-style tools replace) would hide the real
/// procfs from the runtime's own writes (AppArmor's /proc/self/attr/exec).
#[test]
fn cve_2019_16884_bind_over_proc_refused() {
    let env = test_env!();
    let fake = env.host_dir("fake-proc");
    fs::create_dir_all(fake.join("self/attr")).unwrap();
    fs::write(fake.join("self/attr/exec"), "").unwrap();
    for (dest, keep_procfs) in [("/proc", false), ("/proc", true), ("/proc/sys", true)] {
        let out = env.run_capture(&["true"], |s| {
            if !keep_procfs {
                remove_mount(s, "/proc");
            }
            add_mount(s, bind_mount(&fake, dest, &["rbind", "rw"]));
        });
        assert_refused_with_message(&out);
        env.assert_clean();
        assert_eq!(
            tree(&fake),
            vec!["self", "self/attr", "self/attr/exec"],
            "bind over {dest}: the fake proc dir changed"
        );
        assert_eq!(fs::read(fake.join("self/attr/exec")).unwrap(), b"");
    }
}

// ---------------------------------------------------------------------------
// CVE-2025-31133: /dev/null a symlink to a procfs file, used for maskedPaths

/// The rootfs's own /dev is used (no tmpfs on /dev) and its /dev/null links
/// to a procfs file. A runtime that binds "/dev/null" over the masked paths
/// without checking it binds that file there instead, writable, outside the
/// read-only /proc/sys (the real attack links to
/// /proc/sys/kernel/core_pattern: a host-wide setting). The masked files
/// must be the real null device and no mount may show the procfs file.
///
/// The link target is /proc/sys/kernel/domainname, which the container's own
/// UTS namespace scopes: a vulnerable runtime does write through the link
/// (runc 1.1.5 reopens the process's /dev/null stdin through it, and its
/// masks make the file writable), and here that stays in the container. The
/// host's domainname and core_pattern are read before and after, never
/// written.
#[test]
fn cve_2025_31133_dev_null_symlink_and_masked_paths() {
    let env = test_env!();
    let target = Path::new("/proc/sys/kernel/domainname");
    let host_files = [target, Path::new("/proc/sys/kernel/core_pattern")];
    let before: Vec<Vec<u8>> = host_files.iter().map(|p| fs::read(p).unwrap()).collect();
    let rootfs = env.copy_rootfs();
    symlink(target, rootfs.join("dev/null")).unwrap();
    let script = "for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug \
                           /proc/latency_stats /proc/timer_stats; do \
                    [ -e $p ] && stat -c '%n %F %t:%T' $p; \
                  done; \
                  stat -c '%n %F %t:%T' /dev/null; \
                  echo target-mounts=$(grep -c domainname /proc/self/mountinfo); \
                  echo proc-sys=$(awk '$5 == \"/proc/sys\" { split($6, o, \",\"); print o[1] }' \
                                  /proc/self/mountinfo)";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        assert!(
            namespaces(s).iter().any(|n| n["type"] == "uts"),
            "the container needs its own UTS namespace"
        );
        with_rootfs(s, &rootfs);
        remove_mount(s, "/dev");
    });
    if out.success() {
        let lines = out.lines();
        let masked: Vec<&String> = lines.iter().filter(|l| l.starts_with("/proc/")).collect();
        assert!(!masked.is_empty(), "no masked /proc file exists:\n{out}");
        for l in masked
            .iter()
            .copied()
            .chain(lines.iter().filter(|l| l.starts_with("/dev/null")))
        {
            assert!(
                l.ends_with(" character special file 1:3"),
                "not the null device: {l:?}\n{out}"
            );
        }
        assert!(lines.contains(&"target-mounts=0".to_string()), "{out}");
        assert!(lines.contains(&"proc-sys=ro".to_string()), "{out}");
    } else {
        assert_refused_with_message(&out);
        env.assert_clean();
    }
    for (p, b) in host_files.iter().zip(&before) {
        assert_eq!(
            &fs::read(p).unwrap(),
            b,
            "the host's {} changed",
            p.display()
        );
    }
}

// ---------------------------------------------------------------------------
// CVE-2025-52565 (and crun 1.30's): /dev/console, /dev/null symlinks

/// With `terminal: true` the runtime creates /dev/console (bind of the pty)
/// and chowns the pty to the process user. A rootfs whose /dev/console,
/// /dev/null, /dev/tty, /dev/ptmx are symlinks to host paths in the temp dir
/// (no tmpfs on /dev, so the rootfs's /dev is used) must not make the
/// runtime create, chown, chmod or write those host files.
#[test]
fn cve_2025_52565_console_and_null_symlinks() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let console_target = env.dir.join("host-console");
    let null_target = env.dir.join("host-null");
    fs::write(&console_target, "console-original\n").unwrap();
    fs::write(&null_target, "null-original\n").unwrap();
    fs::set_permissions(&console_target, fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(&null_target, fs::Permissions::from_mode(0o600)).unwrap();
    let missing = [env.dir.join("host-tty"), env.dir.join("host-ptmx")];
    symlink(&console_target, rootfs.join("dev/console")).unwrap();
    symlink(&null_target, rootfs.join("dev/null")).unwrap();
    symlink(&missing[0], rootfs.join("dev/tty")).unwrap();
    symlink(&missing[1], rootfs.join("dev/ptmx")).unwrap();
    let snaps = [snapshot(&console_target), snapshot(&null_target)];

    let mut spec = env.spec();
    with_rootfs(&mut spec, &rootfs);
    remove_mount(&mut spec, "/dev");
    set(&mut spec, "/process/terminal", json!(true));
    set(
        &mut spec,
        "/process/user",
        json!({"uid": 1000, "gid": 1000}),
    );
    set_script(
        &mut spec,
        "stat -c '%n %F %t:%T' /dev/console /dev/null /dev/tty; \
         echo data > /dev/null; echo console-check-done",
    );
    env.write_bundle(&spec);
    let sock = ConsoleReceiver::bind(env.dir.join("console.sock"));
    let out = env.create_with(&env.id, &["--console-socket", sock.path_str()]);
    let mut text = None;
    if out.success() {
        let (master, _) = sock.recv();
        let mut pty = PtyIo::new(master);
        env.rt(&["start", &env.id]).ok();
        pty.read_to_eof(WAIT_TIMEOUT);
        let exit = env.wait_init();
        text = Some((exit, pty.text()));
    } else {
        assert_refused_with_message(&out);
        env.assert_clean();
    }
    drop(sock);
    // The host first.
    assert_eq!(
        snapshot(&console_target),
        snaps[0],
        "host console target changed"
    );
    assert_eq!(snapshot(&null_target), snaps[1], "host null target changed");
    for m in &missing {
        assert!(!m.exists(), "{} was created on the host", m.display());
    }
    let m = host_mounts_mentioning(&env.dir.join("host-"));
    assert!(m.is_empty(), "host mounts: {m:?}");
    // Then what the container got: the real devices, not the links.
    if let Some((exit, text)) = text {
        assert_eq!(exit, Exit::Code(0), "output:\n{text}");
        assert!(text.contains("console-check-done"), "output:\n{text}");
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} line:\n{text}"))
                .to_string()
        };
        // The console is the pty (a devpts char device, major 136).
        assert!(
            line("/dev/console ").contains(" character special file 88:"),
            "{text}"
        );
        assert!(
            line("/dev/null ").ends_with(" character special file 1:3"),
            "{text}"
        );
        assert!(
            line("/dev/tty ").ends_with(" character special file 5:0"),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------
// runc 1.4.3: /dev a symlink to a host directory

/// A rootfs whose /dev is a symlink to a host directory: with or without a
/// tmpfs on /dev, the devices, /dev/pts, /dev/shm, /dev/mqueue must not end
/// up in (or be mounted on) the host directory.
#[test]
fn dev_symlink_to_host_dir_stays_inside() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let host_dev = env.host_dir("host-dev");
    fs::remove_dir(rootfs.join("dev")).unwrap();
    symlink(&host_dev, rootfs.join("dev")).unwrap();
    for tmpfs_on_dev in [true, false] {
        let out = env.run_capture(
            &["sh", "-c", "stat -c '%n %F %t:%T' /dev/null; echo dev-ok"],
            |s| {
                with_rootfs(s, &rootfs);
                if !tmpfs_on_dev {
                    remove_mount(s, "/dev");
                }
            },
        );
        if out.success() {
            assert_eq!(
                out.lines(),
                vec!["/dev/null character special file 1:3", "dev-ok"],
                "tmpfs on /dev: {tmpfs_on_dev}:\n{out}"
            );
        } else {
            assert_refused_with_message(&out);
        }
        env.assert_clean();
        assert_empty_dir(&host_dev, &format!("tmpfs on /dev: {tmpfs_on_dev}"));
    }
}

// ---------------------------------------------------------------------------
// CVE-2021-30465 / CVE-2024-45310: mount destinations through symlinks

/// rootfs/evil -> <host dir>: a bind on /evil and a tmpfs on /evil/sub
/// resolve inside the rootfs (or are refused); nothing is created or
/// mounted in the host directory.
#[test]
fn cve_2021_30465_mount_dest_symlink_parent() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let outside = env.host_dir("outside");
    let vol = env.host_dir("vol");
    fs::write(vol.join("vol-marker"), "from-the-volume\n").unwrap();
    symlink(&outside, rootfs.join("evil")).unwrap();
    let out = env.run_capture(
        &[
            "sh",
            "-c",
            "cat /evil/vol-marker; echo x > /evil/sub/f && echo sub-ok",
        ],
        |s| {
            with_rootfs(s, &rootfs);
            add_mount(s, bind_mount(&vol, "/evil", &["rbind", "rw"]));
            add_mount(
                s,
                json!({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs",
                       "options": ["size=1m"]}),
            );
        },
    );
    if out.success() {
        assert_eq!(out.lines(), vec!["from-the-volume", "sub-ok"], "{out}");
        // The file went into the tmpfs, not into the volume.
        assert!(
            !vol.join("sub/f").exists(),
            "tmpfs not mounted on /evil/sub"
        );
    } else {
        assert_refused_with_message(&out);
    }
    env.assert_clean();
    assert_empty_dir(&outside, "symlinked mount destination");
    assert_eq!(
        fs::read_to_string(vol.join("vol-marker")).unwrap(),
        "from-the-volume\n"
    );
}

/// `renameat2(RENAME_EXCHANGE)` of two names in `dir`.
fn exchange(dir: &Path, a: &str, b: &str) {
    let c = |n: &str| std::ffi::CString::new(dir.join(n).to_str().unwrap()).unwrap();
    let (a, b) = (c(a), c(b));
    // SAFETY: valid NUL-terminated paths.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        );
    }
}

/// The racing form: while the runtime sets up mounts, a path component of
/// their destinations flips between a directory and a symlink to a host
/// directory (what a container sharing a volume with the new one can do).
/// Whatever the timing, nothing is created in or mounted on the host
/// directory.
#[test]
fn cve_2024_45310_mount_dest_symlink_race() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    let outside = env.host_dir("outside");
    let vol = env.host_dir("vol");
    fs::write(vol.join("file-src"), "file\n").unwrap();
    fs::create_dir(rootfs.join("race")).unwrap();
    symlink(&outside, rootfs.join("race-alt")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let rootfs = rootfs.clone();
        thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::SeqCst) {
                exchange(&rootfs, "race", "race-alt");
                flips += 1;
            }
            flips
        })
    };
    let mut outs = Vec::new();
    for _ in 0..15 {
        let out = env.run_capture(&["true"], |s| {
            with_rootfs(s, &rootfs);
            add_mount(
                s,
                json!({"destination": "/race/a/b", "type": "tmpfs", "source": "tmpfs",
                       "options": ["size=1m"]}),
            );
            add_mount(
                s,
                bind_mount(&vol.join("file-src"), "/race/c/file", &["bind"]),
            );
            add_mount(s, bind_mount(&vol, "/race/d", &["rbind"]));
        });
        assert!(out.status.code().is_some(), "runtime killed:\n{out}");
        outs.push(out.status);
        env.assert_clean();
    }
    stop.store(true, Ordering::SeqCst);
    let flips = flipper.join().unwrap();
    assert!(flips > 0);
    assert_empty_dir(&outside, &format!("race (run results: {outs:?})"));
    assert_eq!(tree(&vol), vec!["file-src"], "the volume changed");
}

// ---------------------------------------------------------------------------
// CVE-2022-29162: inheritable capabilities

/// runc gave the container process inheritable capabilities it did not ask
/// for, which execve of a file with inheritable file caps turned into
/// permitted ones. CapInh stays 0 unless the config asks for it: with the
/// default config, for a non-root user, and for an `exec`'d process.
#[test]
fn cve_2022_29162_inheritable_caps_empty() {
    let env = test_env!();
    let out = env.run_capture(&["cat", "/proc/self/status"], |_| {});
    out.ok();
    assert_eq!(status_caps(&out)["CapInh"], 0, "{out}");

    let out = env.run_capture(&["cat", "/proc/self/status"], |s| {
        set(s, "/process/user", json!({"uid": 1000, "gid": 1000}));
    });
    out.ok();
    let caps = status_caps(&out);
    assert_eq!(caps["CapInh"], 0, "{out}");
    assert_eq!(caps["CapPrm"], 0, "{out}");
    assert_eq!(caps["CapAmb"], 0, "{out}");
    assert_eq!(caps["CapBnd"], cap_mask(&BUSYBOX_CAPS), "{out}");

    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    let b = BUSYBOX_CAPS;
    set_caps(&mut spec, &b, &b, &[], &b, &[]);
    env.create_and_start(&spec);
    for user in [None, Some("1000:1000")] {
        let mut args = vec!["exec"];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.extend([env.id.as_str(), "cat", "/proc/self/status"]);
        let out = env.rt(&args);
        out.ok();
        assert_eq!(status_caps(&out)["CapInh"], 0, "exec as {user:?}:\n{out}");
    }
}

// ---------------------------------------------------------------------------
// CVE-2023-25809: /sys/fs/cgroup writable without a cgroup namespace

/// With the default mounts and no cgroup namespace, /sys/fs/cgroup and the
/// hierarchies below it are read-only inside: creating a file fails with
/// EROFS (not EPERM/EACCES from cgroupfs, which would mean the mount is
/// writable). Nothing is ever written: `touch` of a new name only.
#[test]
fn cve_2023_25809_cgroupfs_read_only() {
    let env = test_env!();
    let script = "for d in /sys/fs/cgroup /sys/fs/cgroup/*; do \
                    [ -d \"$d\" ] && [ ! -L \"$d\" ] || continue; \
                    if err=$(touch \"$d/it-probe\" 2>&1); then echo \"WRITABLE $d\"; \
                    else echo \"$d: $err\"; fi; \
                  done; \
                  awk '$2 ~ /^\\/sys\\/fs\\/cgroup/ { split($4, o, \",\"); print \"mount\", $2, o[1] }' \
                    /proc/self/mounts";
    let out = env.run_capture(&["sh", "-c", script], |s| {
        assert!(
            !s["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "cgroup"),
            "the template has a cgroup namespace"
        );
    });
    out.ok();
    let lines = out.lines();
    let probes: Vec<&String> = lines.iter().filter(|l| !l.starts_with("mount ")).collect();
    assert!(probes.len() >= 2, "too few cgroup dirs probed:\n{out}");
    for l in &probes {
        assert!(
            l.contains("Read-only file system"),
            "not read-only: {l:?}\n{out}"
        );
    }
    let mounts: Vec<&String> = lines.iter().filter(|l| l.starts_with("mount ")).collect();
    assert!(!mounts.is_empty(), "no mount under /sys/fs/cgroup:\n{out}");
    for m in mounts {
        assert!(m.ends_with(" ro"), "mount not read-only: {m:?}\n{out}");
    }
}

// ---------------------------------------------------------------------------
// Security hardening (issue 16)

/// `--preserve-fds N` passes the caller's fds 3..3+N, and only those: with none of them
/// open, the container must not get the runtime's own fds there (state dir, exec.fifo,
/// init.err, the cgroup dir, the exec trampoline's memfd, the init channel). CVE-2024-21626
/// pattern: a host directory fd in the container.
#[test]
fn preserve_fds_never_passes_runtime_fds() {
    let env = test_env!();
    let script = "ls -l /proc/$$/fd | sed -n 's/.* \\([0-9]*\\) -> \\(.*\\)/\\1 \\2/p'";
    let mut spec = env.spec();
    set_args(&mut spec, &["sh", "-c", script]);
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    let out = env.rt(&["run", "--preserve-fds", "100", "--bundle", &bundle, &env.id]);
    out.ok();
    let root = env.root.to_str().unwrap().to_string();
    for line in out.lines() {
        let (fd, target) = line.split_once(' ').unwrap_or((&line, ""));
        let fd: i32 = fd.parse().unwrap_or(-1);
        assert!(
            !(target.contains(&root)
                || target.contains("memfd:")
                || target.contains("/sys/fs/cgroup")
                || target.starts_with("socket:")
                || target.contains("exec.fifo")),
            "fd {fd} of the container is the runtime's: {target}\n{out}"
        );
    }
}

/// Every dir and file the runtime makes for a container is root's alone: state dir 0700,
/// state.json, init.err, exec.fifo and the cgroup record 0600 (runc: 0700 root, 0600 files).
#[test]
fn state_files_are_private() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_ok(&spec);
    let dir = env.root.join(&env.id);
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&env.root), 0o700, "state root");
    assert_eq!(mode(&dir), 0o700, "container state dir");
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let m = mode(&e.path());
        assert_eq!(
            m & 0o077,
            0,
            "{} is {m:o}: readable or writable by others",
            e.path().display()
        );
    }
    env.rt(&["delete", "--force", &env.id]).ok();
}

/// The pid file is written through a new file of an unpredictable name made with O_EXCL and
/// O_NOFOLLOW: a symlink planted at the name an older rrun used (`.<name>.<pid>.tmp`) or at
/// any name is never followed, and the target it points to is untouched.
#[test]
fn pid_file_never_follows_a_planted_symlink() {
    let env = test_env!();
    let victim = env.dir.join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let piddir = env.host_dir("piddir");
    // Plant symlinks at every predictable temp name for the next pids.
    let me = std::process::id();
    for pid in me..me + 2000 {
        let _ = symlink(&victim, piddir.join(format!(".pid.{pid}.tmp")));
    }
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.write_bundle(&spec);
    let pidfile = piddir.join("pid");
    env.create_with(&env.id, &["--pid-file", pidfile.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, env.init_pid());
    assert!(
        !fs::symlink_metadata(&pidfile)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    env.rt(&["delete", "--force", &env.id]).ok();
}

/// A bind whose destination reaches procfs through a symlink in the rootfs is refused: the
/// opened target is judged, not the destination string (CVE-2019-16884 / CVE-2025-52881
/// pattern: `/data -> /proc/1/task/1` with a volume at `/data/attr` lands on init's LSM
/// attributes; `/data2 -> /proc/sys/kernel` puts a file over `core_pattern`). runc after its
/// November 2025 fixes refuses both.
#[test]
fn bind_onto_procfs_through_a_symlink_is_refused() {
    let cases: [(&str, &str, &str, bool); 2] = [
        ("data", "/proc/1/task/1", "/data/attr", true),
        ("data2", "/proc/sys/kernel", "/data2/core_pattern", false),
    ];
    for (n, (link, to, dest, dir_source)) in cases.into_iter().enumerate() {
        let env = TestEnv::new(&format!("proc-through-link-{n}"));
        let rootfs = env.copy_rootfs();
        symlink(to, rootfs.join(link)).unwrap();
        let volume = if dir_source {
            env.host_dir("volume")
        } else {
            let f = env.dir.join("pattern");
            fs::write(&f, "|/tmp/evil\n").unwrap();
            f
        };
        let mut spec = env.spec();
        with_rootfs(&mut spec, &rootfs);
        set_args(&mut spec, &["true"]);
        add_mount(&mut spec, bind_mount(&volume, dest, &["rbind"]));
        env.write_bundle(&spec);
        let out = env.create(&env.id);
        out.failed().stderr_has_all(&["procfs", "refusing"]);
        env.assert_clean();
    }
}

/// Fds the caller left open but did not pass (not close-on-exec: a shim's, say) never reach
/// the container, even when its seccomp profile refuses close_range (the runtime's last
/// cleanup before execve).
#[test]
fn unpassed_fds_stay_out_when_close_range_is_refused() {
    let env = test_env!();
    let mut spec = env.spec();
    let script = "ls -l /proc/$$/fd | sed -n 's/.* \\([0-9]*\\) -> \\(.*\\)/\\1 \\2/p'";
    set_args(&mut spec, &["sh", "-c", script]);
    set(&mut spec, "/process/noNewPrivileges", json!(true));
    set(
        &mut spec,
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}],
        }),
    );
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let secret = env.dir.join("secret");
    fs::write(&secret, "host secret\n").unwrap();
    let file = fs::File::open(&secret).unwrap();
    let raw = file.as_raw_fd();
    let bundle = env.bundle.to_str().unwrap().to_string();
    let mut cmd = env.command(&["run", "--bundle", &bundle, &env.id]);
    // SAFETY: only dup2 (async-signal-safe) between fork and exec; dup2 leaves the new fds
    // without close-on-exec, as a careless caller would.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [3, 4] {
                if libc::dup2(raw, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let out = run_cmd(&mut cmd, CMD_TIMEOUT);
    out.ok();
    assert!(
        !out.stdout.contains(secret.to_str().unwrap()),
        "the container got the caller's fds:\n{out}"
    );
}

/// startContainer hooks run under the container's seccomp filter, as runc runs them: the
/// hook's /proc/self/status says `Seccomp: 2`.
#[test]
fn start_container_hook_runs_under_seccomp() {
    let env = test_env!();
    let rootfs = env.copy_rootfs();
    fs::create_dir_all(rootfs.join("hooklog")).unwrap();
    let log = env.host_dir("hooklog");
    let mut spec = env.spec();
    with_rootfs(&mut spec, &rootfs);
    set_args(&mut spec, &["true"]);
    add_mount(&mut spec, bind_mount(&log, "/hooklog", &["rbind", "rw"]));
    set(&mut spec, "/process/noNewPrivileges", json!(true));
    set(
        &mut spec,
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}],
        }),
    );
    set(
        &mut spec,
        "/hooks",
        json!({"startContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", "grep ^Seccomp: /proc/self/status > /hooklog/status"],
        }]}),
    );
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    env.rt(&["run", "--bundle", &bundle, &env.id]).ok();
    let status = fs::read_to_string(log.join("status")).unwrap_or_default();
    assert_eq!(
        status.split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "2"],
        "{status:?}"
    );
}

/// While a container is `created`, its init holds only what it needs to start (the exec
/// fifo, init.err, the channel, the sealed trampoline): an exec'd process, even one with
/// CAP_SYS_PTRACE (which passes the non-dumpable check on /proc/1/fd), finds no host
/// directory there (no cgroup dir, no state dir) and no cgroup record to forge.
#[test]
fn created_init_holds_no_host_dir_for_an_exec_with_ptrace() {
    let env = test_env!();
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    env.create_ok(&spec);
    let script = "for f in /proc/1/fd/*; do n=${f##*/}; echo \"fd $n $(readlink $f)\"; \
                  if ls $f/ >/dev/null 2>&1; then echo \"DIR $n\"; fi; done; echo end";
    let out = env.rt(&[
        "exec",
        "--cap",
        "CAP_SYS_PTRACE",
        &env.id,
        "sh",
        "-c",
        script,
    ]);
    out.ok();
    let lines = out.lines();
    assert!(
        lines.iter().any(|l| l.starts_with("fd ")),
        "init's fds were not visible at all:\n{out}"
    );
    for l in &lines {
        assert!(
            !l.starts_with("DIR "),
            "a directory fd of init is reachable: {l}\n{out}"
        );
        assert!(
            !l.contains("/sys/fs/cgroup") && !l.contains("cgroup.owned"),
            "init holds a cgroup fd: {l}\n{out}"
        );
    }
    assert_eq!(lines.last().map(String::as_str), Some("end"));
    env.rt(&["delete", "--force", &env.id]).ok();
}
