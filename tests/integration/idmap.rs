//! Id-mapped mounts (runtime-spec 1.2): a bind mount's `uidMappings`/`gidMappings`, the
//! `idmap` (top mount only) and `ridmap` (every mount of an rbind tree) options, and
//! `idmap`/`ridmap` without mappings, which take the container's user namespace.
//!
//! The cases follow runc 1.2's tests/integration/idmap.bats. Each runs `stat -c =%u=%g=`
//! inside the container and compares with what the kernel's id-mapped mount semantics
//! give: a file whose owner on disk is K shows up in a mount id-mapped with "containerID
//! hostID size" as `K - containerID + hostID` (unmapped: the overflow id), which the
//! container's own user namespace (if any, here 0 -> 100000, size 65536) then maps back
//! down. The mountinfo of the container shows which mounts carry the `idmapped` flag.
//!
//! Runtimes whose `features` do not report `linux.mountExtensions.idmap.enabled` (runc
//! before 1.2) skip these tests.
//!
//! The shared rootfs stays untouched: every container gets a tmpfs at /tmp first and the
//! id-mapped mounts go below it. Host source trees live in the test's temp dir; the host
//! bind mounts of the subtree cases are removed (lazily) when the test ends, however it
//! ends, before the leftover check.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::common::*;

/// Whether the runtime under test reports id-mapped mount support in `features`.
fn idmap_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        runtime_features()
            .map(|f| f["linux"]["mountExtensions"]["idmap"]["enabled"] == json!(true))
            .unwrap_or(false)
    })
}

/// Returns from the test (with a note) if the runtime has no id-mapped mounts.
macro_rules! require_idmap {
    () => {
        if !idmap_supported() {
            eprintln!(
                "skipped: {} does not report linux.mountExtensions.idmap.enabled in `features`",
                runtime_bin().display()
            );
            return;
        }
    };
}

/// The container's user namespace of the "[userns]" cases: 0 -> 100000, size 65536.
const USERNS_HOST: u32 = 100000;

fn overflow(which: &str) -> u32 {
    let p = format!("/proc/sys/kernel/overflow{which}");
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// `=OVERFLOW_UID=OVERFLOW_GID=`
fn overflow_ids() -> (u32, u32) {
    (overflow("uid"), overflow("gid"))
}

/// One mapping entry.
fn m(container: u32, host: u32, size: u32) -> Value {
    json!({"containerID": container, "hostID": host, "size": size})
}

/// The whole-range mapping 0 -> 100000, size 65536.
fn full_map() -> Value {
    json!([m(0, USERNS_HOST, 65536)])
}

/// A new user namespace mapping container root to host uid/gid 100000 (without the
/// cgroupfs mount, which needs a cgroup namespace there).
fn in_user_namespace(s: &mut Value) {
    add_namespace(s, json!({"type": "user"}));
    set(s, "/linux/uidMappings", full_map());
    set(s, "/linux/gidMappings", full_map());
    remove_mount(s, "/sys/fs/cgroup");
}

/// The test's spec with a tmpfs at /tmp (the id-mapped mounts go below it), in a user
/// namespace or not.
fn base_spec(env: &TestEnv, userns: bool) -> Value {
    let mut s = env.spec();
    add_mount(
        &mut s,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777"]}),
    );
    if userns {
        in_user_namespace(&mut s);
    }
    s
}

/// A bind mount of `src` at `dest` with `options` and the given mappings.
fn idmapped(src: &Path, dest: &str, options: &[&str], uids: Value, gids: Value) -> Value {
    let mut mnt = bind_mount(src, dest, options);
    mnt["uidMappings"] = uids;
    mnt["gidMappings"] = gids;
    mnt
}

/// "basic mount N": source-N/ at /tmp/mount-N, ["bind"], 0:100000:65536 for both. As in
/// runc's bats there is no "type": the "bind" option alone makes it a bind mount.
fn basic_mount(src: &Path, n: u32) -> Value {
    let mut mnt = idmapped(
        src,
        &format!("/tmp/mount-{n}"),
        &["bind"],
        full_map(),
        full_map(),
    );
    mnt.as_object_mut().unwrap().remove("type");
    mnt
}

/// Expected `stat -c =%u=%g=` lines.
fn ids(pairs: &[(u32, u32)]) -> Vec<String> {
    pairs.iter().map(|(u, g)| format!("={u}={g}=")).collect()
}

/// Output of a container that printed `stat -c =%u=%g=` lines, then its mountinfo.
struct StatOut {
    out: Out,
    stats: Vec<String>,
}

impl StatOut {
    /// The mount options field (the 6th) of the container's mount at `dest`.
    fn mount_opts(&self, dest: &str) -> String {
        self.mountinfo_line(dest)
            .split_whitespace()
            .nth(5)
            .unwrap_or("")
            .to_string()
    }

    fn mountinfo_line(&self, dest: &str) -> &str {
        let (_, info) = self.out.stdout.split_once("@@\n").unwrap_or(("", ""));
        info.lines()
            .rfind(|l| l.split_whitespace().nth(4) == Some(dest))
            .unwrap_or_else(|| panic!("no {dest} in the container's mountinfo:\n{}", self.out))
    }

    /// Panics unless the mount at `dest` is (or is not) id-mapped.
    #[track_caller]
    fn assert_idmapped(&self, dest: &str, want: bool) {
        let opts = self.mount_opts(dest);
        assert_eq!(
            opts.split(',').any(|o| o == "idmapped"),
            want,
            "{dest} idmapped should be {want}: {opts}\n{}",
            self.out
        );
    }

    #[track_caller]
    fn assert_stats(&self, want: &[(u32, u32)]) {
        assert_eq!(self.stats, ids(want), "stat =uid=gid= lines:\n{}", self.out);
    }
}

/// Runs `spec` with `stat -c =%u=%g= PATHS...; echo @@; cat /proc/self/mountinfo`; panics
/// unless it succeeds.
#[track_caller]
fn run_stat(env: &TestEnv, mut spec: Value, paths: &[&str]) -> StatOut {
    set_script(
        &mut spec,
        &format!(
            "stat -c =%u=%g= {} && echo @@ && cat /proc/self/mountinfo",
            paths.join(" ")
        ),
    );
    let out = env.run_spec(&spec);
    out.ok();
    let stats = out
        .stdout
        .lines()
        .take_while(|l| *l != "@@")
        .map(|l| l.trim().to_string())
        .collect();
    StatOut { out, stats }
}

fn file(dir: &Path, name: &str, uid: u32, gid: u32) {
    let p = dir.join(name);
    fs::write(&p, "").unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    std::os::unix::fs::chown(&p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

/// The host source trees of runc's idmap.bats.
struct Sources {
    /// foo.txt 0:0
    s1: PathBuf,
    /// foo.txt 1:1
    s2: PathBuf,
    /// {foo,bar,baz}.txt 100:211, 101:222, 102:233
    multi1: PathBuf,
    /// a symlink to `multi1`
    multi1_symlink: PathBuf,
    /// {foo,bar,baz}.txt 200:211, 201:222, 202:233
    multi2: PathBuf,
    /// {foo,bar,baz}.txt 5000528:6000491, 5000133:6000337, 5000999:6000444
    multi3: PathBuf,
    /// {foo,bar,baz}.txt 100:211, 200:222, 300:233, and mount points multi1, multi2
    subtree: PathBuf,
}

impl Sources {
    fn new(env: &TestEnv) -> Sources {
        let s1 = env.host_dir("source-1");
        file(&s1, "foo.txt", 0, 0);
        let s2 = env.host_dir("source-2");
        file(&s2, "foo.txt", 1, 1);
        let multi = |name: &str, owners: [(u32, u32); 3]| {
            let d = env.host_dir(name);
            for (f, (u, g)) in ["foo.txt", "bar.txt", "baz.txt"].iter().zip(owners) {
                file(&d, f, u, g);
            }
            d
        };
        let multi1 = multi("source-multi1", [(100, 211), (101, 222), (102, 233)]);
        let multi2 = multi("source-multi2", [(200, 211), (201, 222), (202, 233)]);
        let multi3 = multi(
            "source-multi3",
            [(5000528, 6000491), (5000133, 6000337), (5000999, 6000444)],
        );
        let multi1_symlink = env.dir.join("source-multi1-symlink");
        std::os::unix::fs::symlink(&multi1, &multi1_symlink).expect("symlink");
        let subtree = multi("mnt-subtree", [(100, 211), (200, 222), (300, 233)]);
        fs::create_dir_all(subtree.join("multi1")).unwrap();
        fs::create_dir_all(subtree.join("multi2")).unwrap();
        Sources {
            s1,
            s2,
            multi1,
            multi1_symlink,
            multi2,
            multi3,
            subtree,
        }
    }
}

/// Host bind mounts source-multi1 -> mnt-subtree/multi1 and source-multi2 ->
/// mnt-subtree/multi2, unmounted (lazily) when dropped, however the test ends. Declare it
/// after the `TestEnv` so it is dropped first.
struct SubtreeBinds(Vec<PathBuf>);

impl SubtreeBinds {
    fn mount(src: &Sources) -> SubtreeBinds {
        let mut binds = SubtreeBinds(Vec::new());
        for (from, name) in [(&src.multi1, "multi1"), (&src.multi2, "multi2")] {
            let to = src.subtree.join(name);
            host(
                "mount",
                &["--bind", from.to_str().unwrap(), to.to_str().unwrap()],
            );
            binds.0.push(to);
        }
        binds
    }
}

impl Drop for SubtreeBinds {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = std::process::Command::new("umount")
                .args(["-l", p.to_str().unwrap()])
                .status();
        }
    }
}

const TREE_FILES: [&str; 9] = [
    "/tmp/mount-tree/foo.txt",
    "/tmp/mount-tree/bar.txt",
    "/tmp/mount-tree/baz.txt",
    "/tmp/mount-tree/multi1/foo.txt",
    "/tmp/mount-tree/multi1/bar.txt",
    "/tmp/mount-tree/multi1/baz.txt",
    "/tmp/mount-tree/multi2/foo.txt",
    "/tmp/mount-tree/multi2/bar.txt",
    "/tmp/mount-tree/multi2/baz.txt",
];

/// `/tmp/mount-N/{foo,bar,baz}.txt`-style paths.
fn three(dir: &str) -> [String; 3] {
    ["foo", "bar", "baz"].map(|f| format!("{dir}/{f}.txt"))
}

/// mnt-subtree/ at /tmp/mount-tree with `options` and the mappings of the tree cases
/// (the same with and without a user namespace).
fn tree_mount(src: &Sources, options: &[&str]) -> Value {
    idmapped(
        &src.subtree,
        "/tmp/mount-tree",
        options,
        json!([m(100, 101000, 3), m(200, 102000, 3), m(300, 103000, 3)]),
        json!([m(210, 101100, 10), m(220, 102200, 10), m(230, 103300, 10)]),
    )
}

/// Runs the subtree at /tmp/mount-tree with `options` (and the tree mappings, unless
/// `implied`), returns the stat lines of all nine files.
fn run_tree(env: &TestEnv, userns: bool, options: &[&str], implied: bool) -> StatOut {
    let src = Sources::new(env);
    let binds = SubtreeBinds::mount(&src);
    let mut spec = base_spec(env, userns);
    let mut mnt = tree_mount(&src, options);
    if implied {
        let o = mnt.as_object_mut().unwrap();
        o.remove("uidMappings");
        o.remove("gidMappings");
    }
    add_mount(&mut spec, mnt);
    let out = run_stat(env, spec, &TREE_FILES);
    drop(binds);
    env.assert_clean();
    out
}

// ---------------------------------------------------------------------------
// Basic mounts

/// The container root (host 100000) sees a root-owned file of an id-mapped mount
/// (0 -> 100000) as its own: the mount turns host 0 into 100000, the user namespace turns
/// that into 0.
#[test]
fn idmap_simple_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, true);
    add_mount(&mut spec, basic_mount(&src.s1, 1));
    let out = run_stat(&env, spec, &["/tmp/mount-1/foo.txt"]);
    out.assert_stats(&[(0, 0)]);
    out.assert_idmapped("/tmp/mount-1", true);
    env.assert_clean();
}

/// Without a user namespace the mount's mapping is all there is: host 0 shows as 100000.
#[test]
fn idmap_simple_no_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, false);
    add_mount(&mut spec, basic_mount(&src.s1, 1));
    let out = run_stat(&env, spec, &["/tmp/mount-1/foo.txt"]);
    out.assert_stats(&[(USERNS_HOST, USERNS_HOST)]);
    out.assert_idmapped("/tmp/mount-1", true);
    env.assert_clean();
}

/// Writes go through the mapping in reverse: a file the container root (host 100000)
/// creates through the mount is owned by 0:0 on the host, and the container sees it as
/// its own. The directory (host 0, so container 0) is the container root's, so no
/// capability is needed.
#[test]
fn idmap_write_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, true);
    add_mount(&mut spec, basic_mount(&src.s1, 1));
    set_script(
        &mut spec,
        "touch /tmp/mount-1/bar && stat -c =%u=%g= /tmp/mount-1/bar",
    );
    let out = env.run_spec(&spec);
    out.ok();
    assert_eq!(out.lines(), ids(&[(0, 0)]), "{out}");
    let md = fs::metadata(src.s1.join("bar")).expect("bar created on the host");
    assert_eq!((md.uid(), md.gid()), (0, 0), "host owner of source-1/bar");
    env.assert_clean();
}

/// Without a user namespace the container root is host 0, which the mount (0 -> 100000)
/// cannot map back: creating a file fails. The kernel checks that the caller's fsuid/fsgid
/// have a mapping in the mount before the permission check (may_create), so it is EOVERFLOW
/// (runc's bats expects that); EACCES (the directory shows as 100000's and the bundle's
/// capabilities have no CAP_DAC_OVERRIDE) is accepted too. Either way no file appears on
/// the host.
#[test]
fn idmap_write_no_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, false);
    add_mount(&mut spec, basic_mount(&src.s1, 1));
    set_script(
        &mut spec,
        "touch /tmp/mount-1/bar && stat -c =%u=%g= /tmp/mount-1/bar",
    );
    let out = env.run_spec(&spec);
    out.failed()
        .stderr_has_any(&["Value too large", "Permission denied"]);
    assert!(
        !src.s1.join("bar").exists(),
        "a file was created on the host:\n{out}"
    );
    env.assert_clean();
}

/// A propagation option applies to the id-mapped mount: "shared" gives it a peer group.
#[test]
fn idmap_shared_prop_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, true);
    let mut mnt = basic_mount(&src.s1, 1);
    mnt["options"] = json!(["bind", "shared"]);
    add_mount(&mut spec, mnt);
    let out = run_stat(&env, spec, &["/tmp/mount-1/foo.txt"]);
    out.assert_stats(&[(0, 0)]);
    out.assert_idmapped("/tmp/mount-1", true);
    let line = out.mountinfo_line("/tmp/mount-1");
    assert!(
        line.split_whitespace().any(|f| f.starts_with("shared:")),
        "no shared: peer group: {line}"
    );
    env.assert_clean();
}

/// A relative destination ("tmp/mount-1") is taken from / (runc warns and does the same).
#[test]
fn idmap_relative_dest_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, true);
    let mut mnt = basic_mount(&src.s1, 1);
    mnt["destination"] = json!("tmp/mount-1");
    add_mount(&mut spec, mnt);
    let out = run_stat(&env, spec, &["/tmp/mount-1/foo.txt"]);
    out.assert_stats(&[(0, 0)]);
    out.assert_idmapped("/tmp/mount-1", true);
    env.assert_clean();
}

/// An id-mapped mount and a plain bind mount of the same source: the mapping belongs to
/// the mount, not to the source, so the plain one shows the host owner 0, unmapped in the
/// container's user namespace (overflow).
#[test]
fn idmap_plus_bind_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, true);
    add_mount(
        &mut spec,
        bind_mount(&src.s1, "/tmp/bind-mount-1", &["bind"]),
    );
    add_mount(&mut spec, basic_mount(&src.s1, 1));
    let out = run_stat(
        &env,
        spec,
        &["/tmp/mount-1/foo.txt", "/tmp/bind-mount-1/foo.txt"],
    );
    out.assert_stats(&[(0, 0), overflow_ids()]);
    out.assert_idmapped("/tmp/mount-1", true);
    out.assert_idmapped("/tmp/bind-mount-1", false);
    env.assert_clean();
}

/// The same without a user namespace: 100000 through the id-mapped mount, 0 through the
/// plain one.
#[test]
fn idmap_plus_bind_no_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, false);
    add_mount(
        &mut spec,
        bind_mount(&src.s1, "/tmp/bind-mount-1", &["bind"]),
    );
    add_mount(&mut spec, basic_mount(&src.s1, 1));
    let out = run_stat(
        &env,
        spec,
        &["/tmp/mount-1/foo.txt", "/tmp/bind-mount-1/foo.txt"],
    );
    out.assert_stats(&[(USERNS_HOST, USERNS_HOST), (0, 0)]);
    out.assert_idmapped("/tmp/mount-1", true);
    out.assert_idmapped("/tmp/bind-mount-1", false);
    env.assert_clean();
}

/// Two id-mapped mounts with the same mapping next to plain binds of both sources.
#[test]
fn idmap_two_plus_binds_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, true);
    add_mount(
        &mut spec,
        bind_mount(&src.s1, "/tmp/bind-mount-1", &["bind"]),
    );
    add_mount(
        &mut spec,
        bind_mount(&src.s2, "/tmp/bind-mount-2", &["bind"]),
    );
    add_mount(&mut spec, basic_mount(&src.s1, 1));
    add_mount(&mut spec, basic_mount(&src.s2, 2));
    let out = run_stat(
        &env,
        spec,
        &[
            "/tmp/mount-1/foo.txt",
            "/tmp/mount-2/foo.txt",
            "/tmp/bind-mount-1/foo.txt",
            "/tmp/bind-mount-2/foo.txt",
        ],
    );
    let ov = overflow_ids();
    out.assert_stats(&[(0, 0), (1, 1), ov, ov]);
    for d in ["/tmp/mount-1", "/tmp/mount-2"] {
        out.assert_idmapped(d, true);
    }
    for d in ["/tmp/bind-mount-1", "/tmp/bind-mount-2"] {
        out.assert_idmapped(d, false);
    }
    env.assert_clean();
}

// ---------------------------------------------------------------------------
// Several mappings

/// The same source mounted with different mappings: each mount shows its own owners.
/// multi1 (100:211..) with uid 100:100000:100, gid 200:100000:100 -> 0=11..; at
/// mount-multi1-alt with 100:101000:100 / 200:102000:100 -> 1000=2011..; through a
/// symlink with 100:102000:100 / 200:103000:100 -> 2000=3011.. (container ids).
#[test]
fn idmap_same_src_maps_userns() {
    require_idmap!();
    let env = test_env!();
    let out = run_same_source(&env, true);
    out.assert_stats(&[
        (0, 11),
        (1, 22),
        (2, 33),
        (1000, 2011),
        (1001, 2022),
        (1002, 2033),
        (2000, 3011),
        (2001, 3022),
        (2002, 3033),
    ]);
    env.assert_clean();
}

/// The same mounts without a user namespace: the host ids themselves.
#[test]
fn idmap_same_src_maps_no_userns() {
    require_idmap!();
    let env = test_env!();
    let out = run_same_source(&env, false);
    out.assert_stats(&[
        (100000, 100011),
        (100001, 100022),
        (100002, 100033),
        (101000, 102011),
        (101001, 102022),
        (101002, 102033),
        (102000, 103011),
        (102001, 103022),
        (102002, 103033),
    ]);
    env.assert_clean();
}

/// source-multi1 three times (once through a symlink) with three mappings.
fn run_same_source(env: &TestEnv, userns: bool) -> StatOut {
    let src = Sources::new(env);
    let mut spec = base_spec(env, userns);
    let mounts = [
        (&src.multi1, "/tmp/mount-multi1", 100000, 100000),
        (&src.multi1, "/tmp/mount-multi1-alt", 101000, 102000),
        (
            &src.multi1_symlink,
            "/tmp/mount-multi1-alt-sym",
            102000,
            103000,
        ),
    ];
    let mut paths = Vec::new();
    for (s, dest, uh, gh) in mounts {
        add_mount(
            &mut spec,
            idmapped(
                s,
                dest,
                &["bind"],
                json!([m(100, uh, 100)]),
                json!([m(200, gh, 100)]),
            ),
        );
        paths.extend(three(dest));
    }
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = run_stat(env, spec, &paths);
    for (_, dest, _, _) in mounts {
        out.assert_idmapped(dest, true);
    }
    out
}

/// Three sources with different, partial mappings; `base` is added to the host ids (100000
/// with a user namespace, which maps it away again), so the container sees the same ids
/// either way.
fn run_multi_maps(env: &TestEnv, userns: bool) -> StatOut {
    let base = if userns { USERNS_HOST } else { 0 };
    let src = Sources::new(env);
    let mut spec = base_spec(env, userns);
    let mounts = [
        (
            &src.multi1,
            "/tmp/mount-multi1",
            m(100, base + 1100, 3),
            m(200, base + 1900, 50),
        ),
        (
            &src.multi2,
            "/tmp/mount-multi2",
            m(200, base + 2200, 3),
            m(200, base + 2900, 100),
        ),
        (
            &src.multi3,
            "/tmp/mount-multi3",
            m(5000000, base + 3000, 1000),
            m(6000000, base + 3000, 500),
        ),
    ];
    let mut paths = Vec::new();
    for (s, dest, u, g) in &mounts {
        add_mount(
            &mut spec,
            idmapped(s, dest, &["bind"], json!([u]), json!([g])),
        );
        paths.extend(three(dest));
    }
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = run_stat(env, spec, &paths);
    for (_, dest, _, _) in &mounts {
        out.assert_idmapped(dest, true);
    }
    out
}

const MULTI_MAPS_WANT: [(u32, u32); 9] = [
    (1100, 1911),
    (1101, 1922),
    (1102, 1933),
    (2200, 2911),
    (2201, 2922),
    (2202, 2933),
    (3528, 3491),
    (3133, 3337),
    (3999, 3444),
];

/// Several mounts, each with its own mappings (uid and gid ranges differ in start and size).
#[test]
fn idmap_multi_maps_userns() {
    require_idmap!();
    let env = test_env!();
    run_multi_maps(&env, true).assert_stats(&MULTI_MAPS_WANT);
    env.assert_clean();
}

/// The same with host ids 1100.. and no user namespace.
#[test]
fn idmap_multi_maps_no_userns() {
    require_idmap!();
    let env = test_env!();
    run_multi_maps(&env, false).assert_stats(&MULTI_MAPS_WANT);
    env.assert_clean();
}

/// Mappings of several single-id (uid) and ten-id (gid) ranges, each file in another one.
fn run_complicated(env: &TestEnv, userns: bool) -> StatOut {
    let base = if userns { USERNS_HOST } else { 0 };
    let src = Sources::new(env);
    let mut spec = base_spec(env, userns);
    add_mount(
        &mut spec,
        idmapped(
            &src.multi1,
            "/tmp/mount-multi1",
            &["bind"],
            json!([
                m(100, base + 1000, 1),
                m(101, base + 2000, 1),
                m(102, base + 3000, 1)
            ]),
            json!([
                m(210, base + 1100, 10),
                m(220, base + 2200, 10),
                m(230, base + 3300, 10)
            ]),
        ),
    );
    let paths = three("/tmp/mount-multi1");
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = run_stat(env, spec, &paths);
    out.assert_idmapped("/tmp/mount-multi1", true);
    out
}

/// foo 100:211 -> 1000=1101, bar 101:222 -> 2000=2202, baz 102:233 -> 3000=3303.
#[test]
fn idmap_complicated_userns() {
    require_idmap!();
    let env = test_env!();
    run_complicated(&env, true).assert_stats(&[(1000, 1101), (2000, 2202), (3000, 3303)]);
    env.assert_clean();
}

/// The same with host ids 1000.. and no user namespace.
#[test]
fn idmap_complicated_no_userns() {
    require_idmap!();
    let env = test_env!();
    run_complicated(&env, false).assert_stats(&[(1000, 1101), (2000, 2202), (3000, 3303)]);
    env.assert_clean();
}

// ---------------------------------------------------------------------------
// Trees of mounts: idmap (the top only) and ridmap (every mount)

/// The top of the subtree through the tree mappings: 100:211 -> 101000:101101, 200:222 ->
/// 102000:102202, 300:233 -> 103000:103303 on the host, minus `base` in the container.
fn tree_top(base: u32) -> Vec<(u32, u32)> {
    [(101000, 101101), (102000, 102202), (103000, 103303)]
        .iter()
        .map(|(u, g)| (u - base, g - base))
        .collect()
}

/// The host bind mounts below the top through the tree mappings (ridmap): multi1
/// 100..102:211..233 and multi2 200..202:211..233, minus `base` in the container.
fn tree_children_mapped(base: u32) -> Vec<(u32, u32)> {
    [
        (101000, 101101),
        (101001, 102202),
        (101002, 103303),
        (102000, 101101),
        (102001, 102202),
        (102002, 103303),
    ]
    .iter()
    .map(|(u, g)| (u - base, g - base))
    .collect()
}

/// The host owners of the bind mounts below the top (not id-mapped).
const TREE_CHILDREN_RAW: [(u32, u32); 6] = [
    (100, 211),
    (101, 222),
    (102, 233),
    (200, 211),
    (201, 222),
    (202, 233),
];

/// Runs a tree case and checks the nine files and which mounts are id-mapped.
#[track_caller]
fn tree_case(
    env: &TestEnv,
    userns: bool,
    options: &[&str],
    implied: bool,
    want_top: &[(u32, u32)],
    want_children: &[(u32, u32)],
    children_idmapped: bool,
) {
    let out = run_tree(env, userns, options, implied);
    let want: Vec<(u32, u32)> = want_top.iter().chain(want_children).copied().collect();
    out.assert_stats(&want);
    out.assert_idmapped("/tmp/mount-tree", true);
    for c in ["/tmp/mount-tree/multi1", "/tmp/mount-tree/multi2"] {
        out.assert_idmapped(c, children_idmapped);
    }
}

/// Mappings with neither idmap nor ridmap on an rbind: only the top mount is id-mapped;
/// the submounts keep the host owners, unmapped in the container (overflow).
#[test]
fn idmap_tree_plain_userns() {
    require_idmap!();
    let env = test_env!();
    let ov = overflow_ids();
    tree_case(
        &env,
        true,
        &["rbind"],
        false,
        &tree_top(USERNS_HOST),
        &[ov; 6],
        false,
    );
}

/// The same without a user namespace: the submounts show the raw host owners.
#[test]
fn idmap_tree_plain_no_userns() {
    require_idmap!();
    let env = test_env!();
    tree_case(
        &env,
        false,
        &["rbind"],
        false,
        &tree_top(0),
        &TREE_CHILDREN_RAW,
        false,
    );
}

/// `idmap` (non-recursive, explicit): as without the option.
#[test]
fn idmap_tree_idmap_userns() {
    require_idmap!();
    let env = test_env!();
    let ov = overflow_ids();
    tree_case(
        &env,
        true,
        &["rbind", "idmap"],
        false,
        &tree_top(USERNS_HOST),
        &[ov; 6],
        false,
    );
}

/// `idmap` without a user namespace: as without the option.
#[test]
fn idmap_tree_idmap_no_userns() {
    require_idmap!();
    let env = test_env!();
    tree_case(
        &env,
        false,
        &["rbind", "idmap"],
        false,
        &tree_top(0),
        &TREE_CHILDREN_RAW,
        false,
    );
}

/// `ridmap`: the submounts are id-mapped with the same mappings.
#[test]
fn idmap_tree_ridmap_userns() {
    require_idmap!();
    let env = test_env!();
    tree_case(
        &env,
        true,
        &["rbind", "ridmap"],
        false,
        &tree_top(USERNS_HOST),
        &tree_children_mapped(USERNS_HOST),
        true,
    );
}

/// `ridmap` without a user namespace: host ids 101000.. everywhere.
#[test]
fn idmap_tree_ridmap_no_userns() {
    require_idmap!();
    let env = test_env!();
    tree_case(
        &env,
        false,
        &["rbind", "ridmap"],
        false,
        &tree_top(0),
        &tree_children_mapped(0),
        true,
    );
}

// ---------------------------------------------------------------------------
// Implied mappings: the container's user namespace

/// `idmap` without mappings takes the container's user namespace (0 -> 100000): host 100
/// shows as 100100 in the mount, which the user namespace maps back to 100, so the
/// container sees the host owners on the top mount; the submounts are not id-mapped
/// (overflow).
#[test]
fn idmap_implied_userns() {
    require_idmap!();
    let env = test_env!();
    let ov = overflow_ids();
    tree_case(
        &env,
        true,
        &["rbind", "idmap"],
        true,
        &[(100, 211), (200, 222), (300, 233)],
        &[ov; 6],
        false,
    );
}

/// `ridmap` without mappings: the submounts too show the host owners.
#[test]
fn ridmap_implied_userns() {
    require_idmap!();
    let env = test_env!();
    tree_case(
        &env,
        true,
        &["rbind", "ridmap"],
        true,
        &[(100, 211), (200, 222), (300, 233)],
        &TREE_CHILDREN_RAW,
        true,
    );
}

/// `idmap` without mappings in a container that joins another container's user namespace
/// by path (and has no uidMappings/gidMappings of its own): the joined namespace's mapping
/// (0 -> 100000) is used, so the result is that of `idmap_implied_userns`.
#[test]
fn idmap_implied_userns_join() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let binds = SubtreeBinds::mount(&src);

    // The first container owns the user namespace and just sleeps.
    let first = format!("{}-ns", env.id);
    let first_cg = format!("{}-ns", env.cgroups_path());
    let mut spec1 = env.spec();
    in_user_namespace(&mut spec1);
    set_args(&mut spec1, &["sleep", "1000"]);
    set(&mut spec1, "/linux/cgroupsPath", json!(first_cg));
    env.write_bundle(&spec1);
    env.create(&first).ok();
    env.rt(&["start", &first]).ok();
    let pid = env.state_of(&first)["pid"]
        .as_i64()
        .expect("pid of the first container");
    let userns_path = format!("/proc/{pid}/ns/user");

    let mut spec = base_spec(&env, false);
    remove_mount(&mut spec, "/sys/fs/cgroup");
    add_namespace(&mut spec, json!({"type": "user", "path": userns_path}));
    let mut mnt = tree_mount(&src, &["rbind", "idmap"]);
    let o = mnt.as_object_mut().unwrap();
    o.remove("uidMappings");
    o.remove("gidMappings");
    add_mount(&mut spec, mnt);
    let out = run_stat(&env, spec, &TREE_FILES);
    let ov = overflow_ids();
    let mut want = vec![(100, 211), (200, 222), (300, 233)];
    want.extend([ov; 6]);
    out.assert_stats(&want);
    out.assert_idmapped("/tmp/mount-tree", true);
    out.assert_idmapped("/tmp/mount-tree/multi1", false);

    env.rt(&["delete", "--force", &first]).ok();
    assert_eq!(env.wait_init(), Exit::Signal(libc::SIGKILL));
    assert!(
        cgroup_dirs(&first_cg).is_empty(),
        "cgroup {first_cg} left behind"
    );
    drop(binds);
    env.assert_clean();
}

// ---------------------------------------------------------------------------
// Refused configurations: an error at create, nothing left behind

/// uidMappings without gidMappings is an error naming the missing field.
#[test]
fn idmap_uid_without_gid_refused() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, false);
    let mut mnt = basic_mount(&src.s1, 1);
    mnt.as_object_mut().unwrap().remove("gidMappings");
    add_mount(&mut spec, mnt);
    set_args(&mut spec, &["true"]);
    env.run_spec(&spec)
        .failed()
        .stderr_has_all(&["gidMappings"]);
    env.assert_clean();
}

/// Id-mapped mounts are bind mounts only: `idmap` with mappings on a tmpfs is refused.
#[test]
fn idmap_on_tmpfs_refused() {
    require_idmap!();
    let env = test_env!();
    let mut spec = base_spec(&env, true);
    add_mount(
        &mut spec,
        json!({"destination": "/tmp/mount-1", "type": "tmpfs", "source": "tmpfs",
               "options": ["idmap"], "uidMappings": full_map(), "gidMappings": full_map()}),
    );
    set_args(&mut spec, &["true"]);
    env.run_spec(&spec).failed().stderr_has_all(&["bind"]);
    env.assert_clean();
}

/// `idmap` without mappings needs the container's user namespace; without one it is an
/// error.
#[test]
fn idmap_implied_no_userns_refused() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, false);
    add_mount(
        &mut spec,
        bind_mount(&src.s1, "/tmp/mount-1", &["rbind", "idmap"]),
    );
    set_args(&mut spec, &["true"]);
    env.run_spec(&spec)
        .failed()
        .stderr_has_any(&["user namespace", "userns"]);
    env.assert_clean();
}

/// `features` lists the idmap and ridmap mount options and
/// `linux.mountExtensions.idmap.enabled` (this kernel supports id-mapped mounts).
#[test]
fn idmap_in_features() {
    let Some(f) = runtime_features() else {
        eprintln!(
            "skipped: {} has no `features` command",
            runtime_bin().display()
        );
        return;
    };
    let ext = &f["linux"]["mountExtensions"]["idmap"];
    if ext.is_null() {
        eprintln!(
            "skipped: {} reports no linux.mountExtensions.idmap",
            runtime_bin().display()
        );
        return;
    }
    assert_eq!(ext["enabled"], json!(true), "features: {f}");
    let opts = f["mountOptions"].as_array().cloned().unwrap_or_default();
    for want in ["idmap", "ridmap"] {
        assert!(
            opts.iter().any(|o| o == want),
            "{want} missing in mountOptions: {opts:?}"
        );
    }
}

/// Bind options combine with the mapping: `ro` and `nosuid` on an id-mapped mount (set on the
/// detached copy with the mapping) show in mountinfo, and a write is refused as read-only,
/// while the owners are still mapped.
#[test]
fn idmap_with_bind_options_userns() {
    require_idmap!();
    let env = test_env!();
    let src = Sources::new(&env);
    let mut spec = base_spec(&env, true);
    add_mount(
        &mut spec,
        idmapped(
            &src.s1,
            "/tmp/mount-1",
            &["rbind", "ro", "nosuid", "idmap"],
            full_map(),
            full_map(),
        ),
    );
    set_script(
        &mut spec,
        "stat -c =%u=%g= /tmp/mount-1/foo.txt; grep ' /tmp/mount-1 ' /proc/self/mountinfo; \
         touch /tmp/mount-1/x 2>&1 || true",
    );
    let out = env.run_spec(&spec);
    out.ok();
    let l = out.lines();
    assert_eq!(l[0], "=0=0=", "{out}");
    let opts = l[1]
        .split_whitespace()
        .nth(5)
        .unwrap_or_default()
        .to_string();
    for o in ["ro", "nosuid", "idmapped"] {
        assert!(opts.split(',').any(|x| x == o), "{o} not in {opts}: {out}");
    }
    assert!(out.stdout.contains("Read-only file system"), "{out}");
    assert!(!src.s1.join("x").exists());
    env.assert_clean();
}
