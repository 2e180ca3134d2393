//! The container's root filesystem: the mount plan (pure), and its execution in init.
//!
//! Every path inside the container is resolved from an fd of the rootfs with openat2
//! RESOLVE_IN_ROOT, so a symlink can never lead out of it; mounts target `/proc/self/fd/N` of
//! those fds. All of it happens before pivot_root, while the trusted host /proc is in reach.

use crate::cgroups::Cgroup;
use crate::sys::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, fd_path};
use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct MountPlan {
    pub index: usize,
    /// Absolute, cleaned path inside the container.
    pub dest: String,
    pub typ: String,
    /// Host path for binds (relative sources are taken from the bundle), else the fs source.
    pub source: String,
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: String,
    pub bind: bool,
    /// tmpfs with runc's tmpcopyup: the directory's old contents are copied in.
    pub copy_up: bool,
    /// Flags the options clear by name ("rw", "suid", "dev", "exec", "atime"...): a bind
    /// mount drops them even when its source has them.
    pub cleared: MsFlags,
    /// The recursive options ("rro", "rnosuid"...): MOUNT_ATTR_* (set, clear) for
    /// mount_setattr(AT_RECURSIVE) on the whole tree once it is mounted.
    pub rattr: Option<(u64, u64)>,
    /// An id-mapped bind mount (runtime-spec 1.2: `uidMappings`/`gidMappings` on the mount,
    /// the `idmap` and `ridmap` options).
    pub idmap: Option<IdmapPlan>,
}

/// How an id-mapped mount maps: the parent clones the source tree and sets
/// MOUNT_ATTR_IDMAP with a user namespace of these maps (see [`prepare_sources`]).
#[derive(Debug, Clone, PartialEq)]
pub struct IdmapPlan {
    /// `ridmap`: every mount of an `rbind` tree, not only its top.
    pub recursive: bool,
    pub userns: IdmapUserns,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdmapUserns {
    /// The mount's own `uidMappings`/`gidMappings`, as /proc/PID/{uid,gid}_map text.
    Maps { uid: String, gid: String },
    /// The container's user namespace (`idmap` without mappings, or mappings equal to the
    /// container's): the one init is in.
    Container,
}

#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub index: usize,
    pub path: String,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

pub fn propagation_flag(p: &str) -> Option<MsFlags> {
    Some(match p {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Options that are MS_* flags: (name, clear?, flag).
pub const FLAG_OPTIONS: &[(&str, bool, MsFlags)] = &[
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("suid", true, MsFlags::MS_NOSUID),
    ("nodev", false, MsFlags::MS_NODEV),
    ("dev", true, MsFlags::MS_NODEV),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("atime", true, MsFlags::MS_NOATIME),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("lazytime", false, MsFlags::MS_LAZYTIME),
    ("nolazytime", true, MsFlags::MS_LAZYTIME),
    ("nosymfollow", false, MsFlags::from_bits_retain(0x100)),
    ("symfollow", true, MsFlags::from_bits_retain(0x100)),
];

const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// The recursive mount options (runc's, runtime-spec 1.1): (name, clear?, MOUNT_ATTR_*).
pub const RECURSIVE_OPTIONS: &[(&str, bool, u64)] = &[
    ("rro", false, sys::MOUNT_ATTR_RDONLY),
    ("rrw", true, sys::MOUNT_ATTR_RDONLY),
    ("rnosuid", false, sys::MOUNT_ATTR_NOSUID),
    ("rsuid", true, sys::MOUNT_ATTR_NOSUID),
    ("rnodev", false, sys::MOUNT_ATTR_NODEV),
    ("rdev", true, sys::MOUNT_ATTR_NODEV),
    ("rnoexec", false, sys::MOUNT_ATTR_NOEXEC),
    ("rexec", true, sys::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, sys::MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, sys::MOUNT_ATTR_NODIRATIME),
    ("rrelatime", false, sys::MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, sys::MOUNT_ATTR_RELATIME),
    ("rnoatime", false, sys::MOUNT_ATTR_NOATIME),
    ("ratime", true, sys::MOUNT_ATTR_NOATIME),
    ("rstrictatime", false, sys::MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", true, sys::MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
];

/// Clean an absolute path lexically: no ".", "..", or repeated slashes. ".." stops at "/".
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

impl MountPlan {
    pub fn from_spec(i: usize, m: &oci_spec::runtime::Mount, bundle: &Path) -> Result<MountPlan> {
        let field = format!("config.json: mounts[{i}]");
        let dest = m.destination().to_string_lossy().into_owned();
        if dest.is_empty() {
            bail!("{field}.destination: empty");
        }
        if !dest.starts_with('/') {
            // runc takes it relative to the container's / (with a deprecation warning).
            crate::logging::warn(&format!(
                "{field}.destination: {dest:?} is not absolute: taken as /{dest} (relative \
                 destinations are deprecated)"
            ));
        }
        let dest = clean(&dest);
        if dest == "/" {
            bail!("{field}.destination: mounting over the container's / is not allowed");
        }
        let mut typ = m.typ().clone().unwrap_or_default();
        let mut flags = MsFlags::empty();
        let mut propagation = Vec::new();
        let mut data = Vec::new();
        let mut bind = typ == "bind";
        let mut copy_up = false;
        let mut rec = false;
        let mut cleared = MsFlags::empty();
        let mut rattr: Option<(u64, u64)> = None;
        let mut idmap_opt: Option<bool> = None;
        for o in m.options().as_deref().unwrap_or_default() {
            let o = o.as_str();
            if let Some((_, clear, f)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == o) {
                if *clear {
                    flags.remove(*f);
                    cleared.insert(*f);
                } else {
                    flags.insert(*f);
                    cleared.remove(*f);
                }
            } else if let Some((_, clear, a)) = RECURSIVE_OPTIONS.iter().find(|(n, _, _)| *n == o) {
                let (set, clr) = rattr.get_or_insert((0, 0));
                // An access-time mode replaces the whole atime field, which mount_setattr(2)
                // wants cleared too; relatime (0) is the default the "no" forms go back to.
                let atime = [
                    sys::MOUNT_ATTR_RELATIME,
                    sys::MOUNT_ATTR_NOATIME,
                    sys::MOUNT_ATTR_STRICTATIME,
                ];
                if atime.contains(a) {
                    let v = if *clear { sys::MOUNT_ATTR_RELATIME } else { *a };
                    *set = (*set & !sys::MOUNT_ATTR_ATIME) | v;
                    *clr |= sys::MOUNT_ATTR_ATIME;
                } else if *clear {
                    *set &= !*a;
                    *clr |= *a;
                } else {
                    *set |= *a;
                    *clr &= !*a;
                }
            } else if let Some(f) = propagation_flag(o) {
                propagation.push(f);
            } else if o == "bind" {
                bind = true;
            } else if o == "rbind" {
                bind = true;
                rec = true;
            } else if o == "tmpcopyup" {
                copy_up = true;
            } else if o == "idmap" || o == "ridmap" {
                idmap_opt = Some(o == "ridmap");
            } else if o == "defaults" {
                // "defaults" means no flags.
            } else if o.is_empty() {
                bail!("{field}.options: empty option");
            } else {
                data.push(o.to_string());
            }
        }
        if bind {
            typ = "bind".into();
            if rec {
                flags |= MsFlags::MS_REC;
            }
        } else if typ.is_empty() {
            bail!("{field}.type: missing (and the options ask for no bind)");
        }
        let src = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = if bind {
            if src.is_empty() {
                bail!("{field}.source: a bind mount needs a source");
            }
            if src.starts_with('/') {
                src
            } else {
                bundle.join(src).to_string_lossy().into_owned()
            }
        } else if src.is_empty() {
            typ.clone()
        } else {
            src
        };
        let map_text = |v: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
            v.as_ref().filter(|v| !v.is_empty()).map(|v| {
                v.iter()
                    .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
                    .collect::<String>()
            })
        };
        let (um, gm) = (map_text(m.uid_mappings()), map_text(m.gid_mappings()));
        let idmap = match (um, gm) {
            (Some(uid), Some(gid)) => Some(IdmapPlan {
                recursive: idmap_opt.unwrap_or(false),
                userns: IdmapUserns::Maps { uid, gid },
            }),
            (Some(_), None) => bail!("{field}.gidMappings: missing (uidMappings needs it)"),
            (None, Some(_)) => bail!("{field}.uidMappings: missing (gidMappings needs it)"),
            // Filled in from the container's user namespace, or refused (spec::plan).
            (None, None) => idmap_opt.map(|recursive| IdmapPlan {
                recursive,
                userns: IdmapUserns::Container,
            }),
        };
        if idmap.is_some() && !bind {
            bail!(
                "{field}: id-mapped mounts (uidMappings, gidMappings, idmap, ridmap) are only \
                 supported for bind mounts, not type {typ:?}"
            );
        }
        Ok(MountPlan {
            index: i,
            dest,
            typ,
            source,
            flags,
            propagation,
            data: data.join(","),
            bind,
            copy_up: copy_up && !bind,
            cleared,
            rattr,
            idmap,
        })
    }

    fn what(&self) -> String {
        format!("mounts[{}] {:?} ({})", self.index, self.dest, self.typ)
    }
}

impl DevicePlan {
    pub fn from_spec(i: usize, d: &oci_spec::runtime::LinuxDevice) -> Result<DevicePlan> {
        use oci_spec::runtime::LinuxDeviceType as T;
        let field = format!("config.json: linux.devices[{i}]");
        let path = d.path().to_string_lossy().into_owned();
        if !path.starts_with('/') {
            bail!("{field}.path: {path:?} is not an absolute path");
        }
        let kind = match d.typ() {
            T::C | T::U => SFlag::S_IFCHR,
            T::B => SFlag::S_IFBLK,
            T::P => SFlag::S_IFIFO,
            T::A => bail!("{field}.type: \"a\" is only valid in cgroup device rules"),
        };
        Ok(DevicePlan {
            index: i,
            path: clean(&path),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        })
    }
}

/// The fd of a path inside the rootfs, never leaving it.
pub fn open_in_root(root: &OwnedFd, path: &str, flags: i32, extra: u64) -> nix::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    sys::openat2(
        root.as_raw_fd(),
        rel,
        flags,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra,
    )
}

/// mkdir -p inside the rootfs; returns an O_PATH fd of the directory. A dangling symlink on the
/// way is followed the way the kernel would inside the rootfs: its target is created there.
pub fn mkdir_all(root: &OwnedFd, path: &str, mode: u32) -> Result<OwnedFd> {
    let path = clean(path);
    match open_in_root(root, &path, libc::O_PATH | libc::O_DIRECTORY, 0) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => mkdir_missing(root, path, mode),
        Err(e) => Err(anyhow!("open {path:?} in the rootfs: {e}")),
    }
}

/// mkdir -p of a clean `path` just found missing. Usually only its last component is: then the
/// parent is opened once and the new directory made and opened relative to it; anything else
/// (missing parents, a dangling symlink, a race) takes the component walk.
fn mkdir_missing(root: &OwnedFd, mut path: String, mode: u32) -> Result<OwnedFd> {
    if let Some((parent, name)) = path.rsplit_once('/')
        && !name.is_empty()
        && let Ok(dir) = open_in_root(root, parent, libc::O_PATH | libc::O_DIRECTORY, 0)
        && nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(mode))
            .is_ok()
        && let Ok(fd) = sys::openat2(
            dir.as_raw_fd(),
            name,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            RESOLVE_NO_SYMLINKS,
        )
    {
        return Ok(fd);
    }
    for _ in 0..40 {
        match mkdir_walk(root, &path, mode)? {
            Walk::Done(fd) => return Ok(fd),
            Walk::Redirect(p) => path = p,
        }
    }
    bail!("mkdir {path:?} in the rootfs: too many levels of symlinks")
}

enum Walk {
    Done(OwnedFd),
    Redirect(String),
}

fn mkdir_walk(root: &OwnedFd, path: &str, mode: u32) -> Result<Walk> {
    match open_in_root(root, path, libc::O_PATH | libc::O_DIRECTORY, 0) {
        Ok(fd) => return Ok(Walk::Done(fd)),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(anyhow!("open {path:?} in the rootfs: {e}")),
    }
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = String::new();
    let mut fd = open_in_root(root, "/", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    for (i, comp) in comps.iter().enumerate() {
        let parent = if cur.is_empty() {
            "/".to_string()
        } else {
            cur.clone()
        };
        cur.push('/');
        cur.push_str(comp);
        match open_in_root(root, &cur, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(f) => fd = f,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(
                    Some(fd.as_raw_fd()),
                    *comp,
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        // A dangling symlink: go on at its target, resolved inside the root.
                        let target = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), *comp).map_err(|e| {
                            anyhow!("mkdir {cur:?} in the rootfs: exists and is not a directory: {e}")
                        })?;
                        let target = target.to_string_lossy();
                        let base = if target.starts_with('/') {
                            String::new()
                        } else {
                            parent
                        };
                        let rest = comps[i + 1..].join("/");
                        return Ok(Walk::Redirect(clean(&format!("{base}/{target}/{rest}"))));
                    }
                    Err(e) => return Err(anyhow!("mkdir {cur:?} in the rootfs: {e}")),
                }
                fd = open_in_root(root, &cur, libc::O_PATH | libc::O_DIRECTORY, 0)
                    .map_err(|e| anyhow!("open {cur:?} in the rootfs after mkdir: {e}"))?;
            }
            Err(e) => return Err(anyhow!("open {cur:?} in the rootfs: {e}")),
        }
    }
    Ok(Walk::Done(fd))
}

/// Create an empty file (a bind target) inside the rootfs if missing; returns an O_PATH fd.
fn ensure_file(root: &OwnedFd, path: &str) -> Result<OwnedFd> {
    let mut path = clean(path);
    for _ in 0..40 {
        if let Ok(fd) = open_in_root(root, &path, libc::O_PATH, 0) {
            return Ok(fd);
        }
        let parent = Path::new(&path)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = mkdir_all(root, &parent, 0o755)?;
        // A dangling symlink (an image's /etc/resolv.conf -> ../run/...): follow it inside the root.
        match nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_str()) {
            Ok(t) => {
                let t = t.to_string_lossy();
                let base = if t.starts_with('/') {
                    String::new()
                } else {
                    parent.clone()
                };
                path = clean(&format!("{base}/{t}"));
                continue;
            }
            Err(_) => break,
        }
    }
    let parent = Path::new(&path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    mkdir_all(root, &parent, 0o755)?;
    let path = path.as_str();
    let f = open_in_root(
        root,
        path,
        libc::O_RDONLY | libc::O_CREAT | libc::O_NOFOLLOW,
        0,
    )
    .or_else(|_| open_in_root(root, path, libc::O_PATH, 0))
    .map_err(|e| anyhow!("create {path:?} in the rootfs: {e}"))?;
    drop(f);
    open_in_root(root, path, libc::O_PATH, 0)
        .map_err(|e| anyhow!("open {path:?} in the rootfs: {e}"))
}

/// Flags of an existing mount that an unprivileged remount must keep (locked flags).
fn locked_flags(fd: &OwnedFd) -> MsFlags {
    let mut out = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::fstatvfs(fd) {
        use nix::sys::statvfs::FsFlags as F;
        let f = st.flags();
        for (sf, mf) in [
            (F::ST_NOSUID, MsFlags::MS_NOSUID),
            (F::ST_NODEV, MsFlags::MS_NODEV),
            (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (F::ST_NOATIME, MsFlags::MS_NOATIME),
            (F::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (F::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(sf) {
                out |= mf;
            }
        }
    }
    out
}

fn sys_mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    mount(src, target, fstype, flags, data)
}

/// Bind-remount `path` (inside root) with `flags`, keeping the locked ones.
fn remount_bind(root: &OwnedFd, path: &str, flags: MsFlags) -> Result<()> {
    let fd =
        open_in_root(root, path, libc::O_PATH, 0).map_err(|e| anyhow!("reopen {path:?}: {e}"))?;
    remount_fd(&fd, path, flags)
}

/// The MOUNT_ATTR_* (set, clear) that change a mount the way a bind remount with `flags` (plus
/// the mount's own nosuid/nodev/noexec/atime flags, see `locked_flags`) does: read-only and
/// nosymfollow follow `flags`, the other flags are added, and cleared only when the options
/// named their opposite (`cleared`: "suid", "dev", "exec"...), atime changes only if
/// `flags` names an atime mode (or "atime" asked for the default). Flags that are not per-mount are ignored, as MS_REMOUNT|MS_BIND
/// ignores them.
fn mount_attrs(flags: MsFlags, cleared: MsFlags) -> (u64, u64) {
    let mut set = 0;
    let mut clear = 0;
    let nosymfollow = MsFlags::from_bits_retain(0x100);
    for (f, a) in [
        (MsFlags::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (nosymfollow, MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if flags.contains(f) {
            set |= a;
        } else {
            clear |= a;
        }
    }
    for (f, a) in [
        (MsFlags::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
    ] {
        if flags.contains(f) {
            set |= a;
        } else if cleared.contains(f) {
            clear |= a;
        }
    }
    let atime = if flags.contains(MsFlags::MS_NOATIME) {
        Some(sys::MOUNT_ATTR_NOATIME)
    } else if flags.contains(MsFlags::MS_STRICTATIME) {
        Some(sys::MOUNT_ATTR_STRICTATIME)
    } else if flags.contains(MsFlags::MS_RELATIME)
        || cleared.intersects(MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME)
    {
        // "atime" / "nostrictatime" alone: the default, relatime.
        Some(sys::MOUNT_ATTR_RELATIME)
    } else {
        None
    };
    if let Some(a) = atime {
        set |= a;
        clear |= sys::MOUNT_ATTR_ATIME;
    }
    (set, clear)
}

/// Errors after which the new mount API is not used and mount(2) does the work (and gives the
/// error, if there is one): a kernel without the call, or a change it refuses where mount(2)
/// may still succeed (flags it cannot express, locked flags in a user namespace).
fn new_api_declined(e: Errno) -> bool {
    matches!(
        e,
        Errno::ENOSYS | Errno::EINVAL | Errno::EPERM | Errno::EOPNOTSUPP
    )
}

/// What a bind mount binds: an O_PATH fd (of this mount namespace), or a host path.
#[derive(Clone, Copy)]
enum BindSrc<'a> {
    Fd(&'a OwnedFd),
    Path(&'a str),
}

/// Bind `src` onto `target`, then give the new mount `flags` (a bind remount's), the target
/// reached through its fd: the new mount API first (no path walks), mount(2) on /proc/self/fd
/// paths if it declines. `reopen` gives a handle on whatever is mounted at the target now (for
/// mount(2)'s remount).
fn bind_fd(
    src: BindSrc,
    target: &OwnedFd,
    recursive: bool,
    flags: Option<MsFlags>,
    cleared: MsFlags,
    reopen: &dyn Fn() -> nix::Result<OwnedFd>,
) -> std::result::Result<(), BindError> {
    let tree = match src {
        BindSrc::Fd(fd) => sys::open_tree_clone(fd.as_raw_fd(), "", recursive),
        BindSrc::Path(p) => sys::open_tree_clone(libc::AT_FDCWD, p, recursive),
    };
    let tree = tree.and_then(|tree| {
        if let Some(f) = flags {
            let (set, clear) = mount_attrs(f, cleared);
            sys::mount_setattr(&tree, set, clear)?;
        }
        Ok(tree)
    });
    match tree {
        // Nothing is attached until move_mount: a refusal before it leaves no trace.
        Ok(tree) => return sys::move_mount_onto(&tree, target).map_err(BindError::Bind),
        Err(e) if new_api_declined(e) => {}
        Err(e) => return Err(BindError::Bind(e)),
    }
    let rec = if recursive {
        MsFlags::MS_REC
    } else {
        MsFlags::empty()
    };
    let source = match src {
        BindSrc::Fd(fd) => fd_path(fd),
        BindSrc::Path(p) => p.to_string(),
    };
    sys_mount(
        Some(&source),
        &fd_path(target),
        None,
        MsFlags::MS_BIND | rec,
        None,
    )
    .map_err(BindError::Bind)?;
    if let Some(f) = flags {
        let top = reopen().map_err(BindError::Reopen)?;
        remount_legacy(&top, f, cleared).map_err(|e| BindError::Remount(f, e))?;
    }
    Ok(())
}

/// Which step of `bind_fd` failed.
#[derive(Debug)]
enum BindError {
    Bind(Errno),
    Reopen(Errno),
    Remount(MsFlags, Errno),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Bind(e) => write!(f, "bind: {e}"),
            BindError::Reopen(e) => write!(f, "reopen after bind: {e}"),
            BindError::Remount(fl, e) => write!(f, "remount with {fl:?}: {e}"),
        }
    }
}

/// Remount the bind mount `fd` is the root of (`path` for messages).
fn remount_fd(fd: &OwnedFd, path: &str, flags: MsFlags) -> Result<()> {
    let (set, clear) = mount_attrs(flags, MsFlags::empty());
    match sys::mount_setattr(fd, set, clear) {
        Ok(()) => return Ok(()),
        Err(e) if new_api_declined(e) => {}
        Err(e) => bail!("remount {path:?} with {flags:?}: {e}"),
    }
    remount_legacy(fd, flags, MsFlags::empty())
        .map_err(|e| anyhow!("remount {path:?} with {flags:?}: {e}"))
}

/// mount(2)'s bind remount of the mount `fd` is the root of, keeping its locked flags.
fn remount_legacy(fd: &OwnedFd, flags: MsFlags, cleared: MsFlags) -> nix::Result<()> {
    let locked = locked_flags(fd);
    let all = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    match sys_mount(
        None,
        &fd_path(fd),
        None,
        (all | (locked - cleared)) - MsFlags::MS_REC,
        None,
    ) {
        // In a user namespace the source's flags are locked: keep them, as runc does.
        Err(Errno::EPERM) if locked.intersects(cleared) => sys_mount(
            None,
            &fd_path(fd),
            None,
            (all | locked) - MsFlags::MS_REC,
            None,
        ),
        r => r,
    }
}

pub struct Setup<'a> {
    pub rootfs: &'a Path,
    pub mounts: &'a [MountPlan],
    pub devices: &'a [DevicePlan],
    pub propagation: Option<MsFlags>,
    pub cgroup: Option<&'a Cgroup>,
    pub cgroupns: bool,
    pub userns: bool,
    /// Bind sources opened for init by the parent (see [`prepare_sources`]): (mounts
    /// index, O_PATH fd of a mount in init's own mount namespace).
    pub bind_srcs: &'a [(usize, OwnedFd)],
    /// Id-mapped mounts, cloned and mapped by the parent: (mounts index, detached tree).
    pub idmapped: &'a [(usize, OwnedFd)],
}

/// Whether init asks the parent for its bind sources ([`prepare_sources`]): bind sources
/// outside the rootfs for a container with a user namespace, new or joined (its root may not
/// reach them, a 0700 host dir; sources inside the rootfs are left to init, in mount order: an earlier
/// mount may make them), and every id-mapped mount (MOUNT_ATTR_IDMAP needs the host's
/// privileges). Not rootless: the container's root is the caller itself, it reaches what the
/// caller reaches (and the caller may not enter init's mounts).
pub fn parent_opens_bind_sources(mounts: &[MountPlan], rootfs: &Path, owns_userns: bool) -> bool {
    if crate::rootless::not_root() {
        return false;
    }
    mounts
        .iter()
        .any(|m| m.idmap.is_some() || (owns_userns && outside_rootfs_bind(m, rootfs)))
}

fn outside_rootfs_bind(m: &MountPlan, rootfs: &Path) -> bool {
    m.bind && !Path::new(&m.source).starts_with(rootfs)
}

/// What the parent hands init for its mounts: (mounts index, fd) of bind sources (O_PATH of
/// the source) and of id-mapped trees (detached mounts, ready to be attached).
pub struct Prepared {
    pub sources: Vec<(usize, OwnedFd)>,
    pub trees: Vec<(usize, OwnedFd)>,
}

/// runc's way to hand init what it cannot make itself: a helper process keeps the host's user
/// namespace and credentials, joins init's mount namespace and there
/// - opens each bind source outside the rootfs (O_PATH), for a user-namespaced init: the fds
///   name mounts of init's own namespace, copies the kernel made with their flags locked, so
///   init binds them as it binds any source. One the helper cannot open is left out: init
///   tries it itself, for its own error;
/// - clones the source of each id-mapped mount (open_tree, recursively for rbind), sets
///   MOUNT_ATTR_IDMAP with the mount's user namespace (recursively for ridmap) and the bind
///   flags: init only attaches it. A failure here is the create's error.
pub fn prepare_sources(
    init_pid: i32,
    mounts: &[MountPlan],
    rootfs: &Path,
    owns_userns: bool,
) -> Result<Prepared> {
    use crate::process::channel::ToInit;
    let ns = std::fs::File::open(format!("/proc/{init_pid}/ns/mnt")).map_err(|e| {
        anyhow!(
            "open init's mount namespace /proc/{init_pid}/ns/mnt: {}",
            sys::io_errno(&e)
        )
    })?;
    // The user namespaces of the id-mapped mounts, made or opened before the helper forks.
    let mut made: Vec<(String, String, std::fs::File)> = Vec::new();
    let mut userns: Vec<(usize, std::fs::File)> = Vec::new();
    for m in mounts {
        let Some(idm) = &m.idmap else { continue };
        let f = match &idm.userns {
            IdmapUserns::Container => std::fs::File::open(format!("/proc/{init_pid}/ns/user"))
                .map_err(|e| {
                    anyhow!(
                        "{}: open the container's user namespace /proc/{init_pid}/ns/user: {}",
                        m.what(),
                        sys::io_errno(&e)
                    )
                })?,
            IdmapUserns::Maps { uid, gid } => {
                if let Some((_, _, f)) = made.iter().find(|(u, g, _)| u == uid && g == gid) {
                    f.try_clone()?
                } else {
                    let f = crate::namespaces::userns_with_maps(uid, gid).with_context(|| {
                        format!("{}: the user namespace of its id mapping", m.what())
                    })?;
                    made.push((uid.clone(), gid.clone(), f.try_clone()?));
                    f
                }
            }
        };
        userns.push((m.index, f));
    }
    drop(made);
    let (ours, theirs) = crate::process::channel::pair()?;
    // SAFETY: rrun is single-threaded here; the child only makes syscalls and _exits.
    match unsafe { nix::unistd::fork() }
        .map_err(|e| anyhow!("fork the mount-source helper: {e}"))?
    {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            let mut got: Vec<(usize, OwnedFd)> = Vec::new();
            let mut trees: Vec<(usize, OwnedFd)> = Vec::new();
            match nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS) {
                Ok(()) => {
                    for m in mounts.iter().filter(|m| {
                        m.idmap.is_none() && owns_userns && outside_rootfs_bind(m, rootfs)
                    }) {
                        if let Ok(fd) = sys::openat2(libc::AT_FDCWD, &m.source, libc::O_PATH, 0, 0)
                        {
                            got.push((m.index, fd));
                        }
                    }
                    for (i, u) in &userns {
                        let Some(m) = mounts.iter().find(|m| m.index == *i) else {
                            continue;
                        };
                        let Some(idm) = &m.idmap else {
                            continue;
                        };
                        match idmapped_tree(m, idm, u) {
                            Ok(t) => trees.push((*i, t)),
                            Err(e) => {
                                let _ = theirs.send(&ToInit::PrepareFailed {
                                    msg: format!("{}: {e:#}", m.what()),
                                });
                                // SAFETY: leave without running the parent's destructors.
                                unsafe { libc::_exit(1) }
                            }
                        }
                    }
                }
                Err(e) if !userns.is_empty() => {
                    let _ = theirs.send(&ToInit::PrepareFailed {
                        msg: format!("id-mapped mounts: join init's mount namespace: {e}"),
                    });
                    // SAFETY: as above.
                    unsafe { libc::_exit(1) }
                }
                Err(_) => {}
            }
            let _ = theirs.send_indexed(&got, |indices| ToInit::BindSources { indices });
            let _ = theirs.send_indexed(&trees, |indices| ToInit::IdmappedTrees { indices });
            let _ = theirs.send(&ToInit::BindSourcesDone);
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            drop(userns);
            let mut out = Prepared {
                sources: Vec::new(),
                trees: Vec::new(),
            };
            let r = loop {
                match ours.recv::<ToInit>() {
                    Ok(Some(ToInit::BindSources { indices })) => {
                        out.sources.extend(indices.into_iter().zip(ours.take_fds()));
                    }
                    Ok(Some(ToInit::IdmappedTrees { indices })) => {
                        out.trees.extend(indices.into_iter().zip(ours.take_fds()));
                    }
                    Ok(Some(ToInit::PrepareFailed { msg })) => break Err(anyhow!(msg)),
                    Ok(Some(ToInit::BindSourcesDone)) => break Ok(()),
                    Ok(None) if out.trees.len() < mounts_idmapped(mounts) => {
                        break Err(anyhow!("the mount-source helper died"));
                    }
                    Ok(None) => break Ok(()),
                    Ok(Some(other)) => break Err(anyhow!("mount-source helper sent {other:?}")),
                    Err(e) => break Err(e.context("mount-source helper")),
                }
            };
            let _ = nix::sys::wait::waitpid(child, None);
            r.map(|()| out)
        }
    }
}

fn mounts_idmapped(mounts: &[MountPlan]) -> usize {
    mounts.iter().filter(|m| m.idmap.is_some()).count()
}

/// The detached, id-mapped clone of an id-mapped mount's source, its bind flags set.
fn idmapped_tree(m: &MountPlan, idm: &IdmapPlan, userns: &std::fs::File) -> Result<OwnedFd> {
    let recursive = m.flags.contains(MsFlags::MS_REC);
    let tree = sys::open_tree_clone(libc::AT_FDCWD, &m.source, recursive)
        .map_err(|e| anyhow!("open_tree(OPEN_TREE_CLONE) {}: {e}", m.source))?;
    sys::mount_setattr_idmap(&tree, userns, idm.recursive).map_err(|e| {
        let hint = match e {
            Errno::EINVAL => {
                " (does the filesystem support id-mapped mounts on this kernel? a tree that \
                 is already id-mapped cannot be mapped again)"
            }
            Errno::ENOSYS => " (id-mapped mounts need Linux 5.12)",
            _ => "",
        };
        anyhow!("set MOUNT_ATTR_IDMAP on {}: {e}{hint}", m.source)
    })?;
    let rest = m.flags - MsFlags::MS_REC - MsFlags::MS_REMOUNT - MsFlags::MS_BIND;
    if !rest.is_empty() || !m.cleared.is_empty() {
        let (set, clear) = mount_attrs(rest, m.cleared);
        sys::mount_setattr(&tree, set, clear)
            .map_err(|e| anyhow!("set the bind flags {rest:?} on {}: {e}", m.source))?;
    }
    Ok(tree)
}

/// Make `/` private, bind the rootfs onto itself, return its fd.
pub fn prepare_root(s: &Setup) -> Result<OwnedFd> {
    // runc's default: host mount events still reach the container, none go back.
    let mut prop = s.propagation.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // An unbindable tree cannot be bound, the rootfs included: private for now, unbindable
    // once the new / is in place (after the pivot, where every propagation is applied).
    if prop.contains(MsFlags::MS_UNBINDABLE) {
        prop = MsFlags::MS_PRIVATE;
    }
    sys_mount(None, "/", None, prop | MsFlags::MS_REC, None)
        .map_err(|e| anyhow!("make / {prop:?} (rootfsPropagation): {e}"))?;
    let r = s.rootfs.to_string_lossy();
    // pivot_root refuses a shared parent: with a shared propagation, make the mount holding
    // the rootfs private (the requested propagation is applied to the new / after the pivot).
    // Any other propagation already left no mount shared, and mountinfo is not read.
    if prop.contains(MsFlags::MS_SHARED)
        && let Some(parent) = mount_point_of(&r)
    {
        sys_mount(None, &parent, None, MsFlags::MS_PRIVATE, None)
            .map_err(|e| anyhow!("make the rootfs's parent mount {parent} private: {e}"))?;
    }
    sys_mount(Some(&r), &r, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
        .map_err(|e| anyhow!("bind rootfs {r} onto itself: {e}"))?;
    sys_mount(None, &r, None, MsFlags::MS_PRIVATE, None)
        .map_err(|e| anyhow!("make the rootfs bind private: {e}"))?;
    let fd = sys::openat2(libc::AT_FDCWD, &r, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(|e| anyhow!("open rootfs {r}: {e}"))?;
    Ok(fd)
}

/// The mount point under which `path` lives (the longest one that is a prefix of it).
fn mount_point_of(path: &str) -> Option<String> {
    let mi = crate::util::read_proc("/proc/self/mountinfo").ok()?;
    mi.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == "/" || path == m || path.starts_with(&format!("{m}/")))
        .max_by_key(|m| m.len())
}

pub fn do_mounts(root: &OwnedFd, s: &Setup) -> Result<()> {
    for m in s.mounts {
        do_mount(root, m, s).with_context(|| m.what())?;
    }
    Ok(())
}

fn do_mount(root: &OwnedFd, m: &MountPlan, s: &Setup) -> Result<()> {
    if m.typ == "cgroup" || m.typ == "cgroup2" {
        return mount_cgroup(root, m, s);
    }
    if let Some((_, tree)) = s.idmapped.iter().find(|(i, _)| *i == m.index) {
        attach_idmapped(root, m, tree)?;
    } else if m.idmap.is_some() {
        bail!("id-mapped mount: the parent sent no tree for it");
    } else if m.bind {
        // One the parent opened for init (user namespaces), else opened here.
        let own;
        let src = match s.bind_srcs.iter().find(|(i, _)| *i == m.index) {
            Some((_, fd)) => fd,
            None => {
                own = sys::openat2(libc::AT_FDCWD, &m.source, libc::O_PATH, 0, 0)
                    .map_err(|e| anyhow!("open bind source {}: {e}", m.source))?;
                &own
            }
        };
        check_proc_bind(&m.dest, src, &m.source)?;
        let st = nix::sys::stat::fstat(src.as_raw_fd())
            .map_err(|e| anyhow!("stat {}: {e}", m.source))?;
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        let target = if is_dir {
            mkdir_all(root, &m.dest, 0o755)?
        } else {
            ensure_file(root, &m.dest)?
        };
        check_target_not_proc(root, &target, &m.dest, is_procfs(src))?;
        let rest = m.flags - MsFlags::MS_REC - MsFlags::MS_REMOUNT;
        bind_fd(
            BindSrc::Fd(src),
            &target,
            m.flags.contains(MsFlags::MS_REC),
            (!rest.is_empty() || !m.cleared.is_empty()).then_some(rest),
            m.cleared,
            &|| open_in_root(root, &m.dest, libc::O_PATH, 0),
        )
        .map_err(|e| anyhow!("{} onto {:?}: {e}", m.source, m.dest))?;
    } else {
        // Kernel filesystems never go onto a symlink: a /proc that is a link is refused.
        let strict = matches!(m.typ.as_str(), "proc" | "sysfs");
        let extra = if strict { RESOLVE_NO_SYMLINKS } else { 0 };
        let mut existed = true;
        let target = match open_in_root(root, &m.dest, libc::O_PATH | libc::O_DIRECTORY, extra) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                existed = false;
                let fd = mkdir_missing(root, m.dest.clone(), 0o755)?;
                if strict {
                    // Reached again with no symlink anywhere on the way.
                    open_in_root(root, &m.dest, libc::O_PATH | libc::O_DIRECTORY, extra)
                        .map_err(|e| anyhow!("open {:?}: {e}", m.dest))?
                } else {
                    fd
                }
            }
            Err(Errno::ELOOP) => bail!(
                "{:?} is a symlink: refusing to mount {} there",
                m.dest,
                m.typ
            ),
            Err(e) => bail!("open {:?} in the rootfs: {e}", m.dest),
        };
        if strict {
            check_plain_dir(&target, &m.dest)?;
        }
        check_target_not_proc(root, &target, &m.dest, m.typ == "proc")?;
        let data = (!m.data.is_empty()).then_some(m.data.as_str());
        let mut flags = m.flags - MsFlags::MS_REC;
        if dev_made_readonly_later(m) {
            // Devices, links and /dev/pts go in first; `finish_dev` makes it read-only.
            flags -= MsFlags::MS_RDONLY;
        }
        // tmpcopyup: keep a handle on the covered directory to copy its contents in.
        let under = if m.copy_up {
            Some(
                open_in_root(root, &m.dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| anyhow!("open {:?} for tmpcopyup: {e}", m.dest))?,
            )
        } else {
            None
        };
        // A tmpfs over an existing directory keeps that directory's mode (as runc does),
        // unless the options set one.
        let keep_mode =
            if existed && m.typ == "tmpfs" && !m.data.split(',').any(|o| o.starts_with("mode=")) {
                nix::sys::stat::fstat(target.as_raw_fd())
                    .ok()
                    .map(|st| st.st_mode & 0o7777)
            } else {
                None
            };
        let r = sys_mount(
            Some(&m.source),
            &fd_path(&target),
            Some(&m.typ),
            flags,
            data,
        );
        match (r, data) {
            (Err(Errno::EINVAL), Some(d))
                if m.typ == "devpts" && d.contains("gid=") && s.userns =>
            {
                // In a user namespace gid 5 may be unmapped: runc retries without gid=.
                let d: Vec<&str> = d.split(',').filter(|o| !o.starts_with("gid=")).collect();
                sys_mount(
                    Some(&m.source),
                    &fd_path(&target),
                    Some(&m.typ),
                    flags,
                    Some(&d.join(",")),
                )
                .map_err(|e| anyhow!("mount {}: {e}", m.typ))?;
            }
            (r, _) => r.map_err(|e| anyhow!("mount {}: {e}", m.typ))?,
        }
        if let Some(mode) = keep_mode {
            let top = open_in_root(root, &m.dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(|e| anyhow!("reopen {:?}: {e}", m.dest))?;
            nix::sys::stat::fchmod(top.as_raw_fd(), Mode::from_bits_truncate(mode))
                .map_err(|e| anyhow!("chmod the tmpfs at {:?}: {e}", m.dest))?;
        }
        if let Some(under) = under {
            let top = open_in_root(root, &m.dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(|e| anyhow!("reopen {:?}: {e}", m.dest))?;
            copy_tree(Path::new(&fd_path(&under)), Path::new(&fd_path(&top)))
                .with_context(|| format!("tmpcopyup into {:?}", m.dest))?;
        }
    }
    for p in &m.propagation {
        let fd =
            open_in_root(root, &m.dest, libc::O_PATH, 0).map_err(|e| anyhow!("reopen: {e}"))?;
        sys_mount(None, &fd_path(&fd), None, *p, None)
            .map_err(|e| anyhow!("set propagation {p:?}: {e}"))?;
    }
    if let Some((set, clear)) = m.rattr {
        let fd =
            open_in_root(root, &m.dest, libc::O_PATH, 0).map_err(|e| anyhow!("reopen: {e}"))?;
        sys::mount_setattr_recursive(&fd, set, clear).map_err(|e| match e {
            Errno::ENOSYS => anyhow!(
                "recursive mount options (rro, rnosuid...) need mount_setattr (Linux 5.12): ENOSYS"
            ),
            e => anyhow!("recursive mount options: mount_setattr: {e}"),
        })?;
    }
    Ok(())
}

/// A rootless container without a cgroup of its own: the host's cgroup tree, bound (read-only
/// when asked; a user namespace keeps the source's locked flags).
fn mount_host_cgroups(root: &OwnedFd, m: &MountPlan) -> Result<()> {
    crate::logging::debug(&format!(
        "{}: the container has no cgroup of its own (rootless): the host's /sys/fs/cgroup is \
         bound there",
        m.what()
    ));
    let target = mkdir_all(root, &m.dest, 0o755)?;
    let rest = m.flags - MsFlags::MS_REC - MsFlags::MS_BIND - MsFlags::MS_REMOUNT;
    bind_fd(
        BindSrc::Path(crate::cgroups::CGROUP_ROOT),
        &target,
        true,
        (!rest.is_empty() || !m.cleared.is_empty()).then_some(rest),
        m.cleared,
        &|| open_in_root(root, &m.dest, libc::O_PATH, 0),
    )
    .map_err(|e| anyhow!("bind the host's {}: {e}", crate::cgroups::CGROUP_ROOT))
}

/// Attach an id-mapped tree the parent prepared (flags and mapping already set) at the
/// mount's destination, made like a bind target (a directory for a directory, else a file).
fn attach_idmapped(root: &OwnedFd, m: &MountPlan, tree: &OwnedFd) -> Result<()> {
    let st =
        nix::sys::stat::fstat(tree.as_raw_fd()).map_err(|e| anyhow!("stat {}: {e}", m.source))?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    let target = if is_dir {
        mkdir_all(root, &m.dest, 0o755)?
    } else {
        ensure_file(root, &m.dest)?
    };
    check_target_not_proc(root, &target, &m.dest, false)?;
    sys::move_mount_onto(tree, &target)
        .map_err(|e| anyhow!("attach the id-mapped {} onto {:?}: {e}", m.source, m.dest))
}

/// Copy a directory tree (files, dirs, symlinks as links; modes and owners kept) — the
/// contents of a rootfs directory into the tmpfs now covering it.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for ent in std::fs::read_dir(from)
        .map_err(|e| anyhow!("read {}: {}", from.display(), sys::io_errno(&e)))?
    {
        let ent = ent?;
        let (src, dst) = (ent.path(), to.join(ent.file_name()));
        let md = std::fs::symlink_metadata(&src)?;
        let ft = md.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| {
                anyhow!(
                    "copy {}: {}",
                    ent.file_name().to_string_lossy(),
                    sys::io_errno(&e)
                )
            })?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
        } else {
            continue; // device nodes, fifos and sockets are not copied
        }
        std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()))?;
    }
    Ok(())
}

/// linux/magic.h
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// The files under /proc that lxcfs-style tools replace (as runc allows).
const PROC_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Whether `fd` is on procfs (fstatfs).
pub fn is_procfs(fd: &OwnedFd) -> bool {
    nix::sys::statfs::fstatfs(fd).is_ok_and(|s| s.filesystem_type().0 == PROC_SUPER_MAGIC)
}

/// CVE-2019-16884: nothing but procfs may be bound over /proc, and under /proc only the files
/// that lxcfs-style tools replace (as runc allows).
fn check_proc_bind(dest: &str, src: &OwnedFd, source: &str) -> Result<()> {
    if dest != "/proc" && !dest.starts_with("/proc/") {
        return Ok(());
    }
    if is_procfs(src) || (dest != "/proc" && PROC_ALLOWED.contains(&dest)) {
        return Ok(());
    }
    bail!("{source} is not procfs: refusing to bind it over {dest}")
}

/// CVE-2019-16884 / CVE-2025-52881 through a symlink: what a mount lands on is judged by what
/// the opened target *is*, not by the destination string. A target on procfs (`/data` a link
/// to `/proc/1/task/1` in the rootfs, a volume at `/data/attr`) takes only procfs itself or an
/// lxcfs-style file at its real place.
fn check_target_not_proc(
    root: &OwnedFd,
    target: &OwnedFd,
    dest: &str,
    source_is_proc: bool,
) -> Result<()> {
    if source_is_proc || !is_procfs(target) {
        return Ok(());
    }
    // Where it really is, from the trusted host /proc (still in reach before pivot_root).
    let real = |fd: &OwnedFd| std::fs::read_link(fd_path(fd)).ok();
    let at = match (real(root), real(target)) {
        (Some(r), Some(t)) => t
            .strip_prefix(&r)
            .map(|p| format!("/{}", p.display()))
            .unwrap_or_else(|_| t.display().to_string()),
        _ => dest.to_string(),
    };
    if PROC_ALLOWED.contains(&at.as_str()) {
        return Ok(());
    }
    bail!("{dest:?} resolves to {at:?} on procfs: refusing to mount over it")
}

/// The mount point is a real directory of the rootfs (not something a link redirected).
fn check_plain_dir(fd: &OwnedFd, dest: &str) -> Result<()> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| anyhow!("stat {dest:?}: {e}"))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        bail!("{dest:?} is not a directory");
    }
    Ok(())
}

/// `/sys/fs/cgroup` inside: the container's own cgroups. With a cgroup namespace the real
/// filesystems are mounted (they show the namespace root); without one, the container's
/// cgroup dirs are bound from the host.
fn mount_cgroup(root: &OwnedFd, m: &MountPlan, s: &Setup) -> Result<()> {
    let Some(cg) = s.cgroup else {
        return mount_host_cgroups(root, m);
    };
    let flags = m.flags - MsFlags::MS_REC - MsFlags::MS_RDONLY;
    let ro = m.flags.contains(MsFlags::MS_RDONLY);
    let target = mkdir_all(root, &m.dest, 0o755)?;
    if cg.is_v2() {
        let h = &cg.hierarchies[0];
        if s.cgroupns {
            sys_mount(
                Some("cgroup2"),
                &fd_path(&target),
                Some("cgroup2"),
                m.flags - MsFlags::MS_REC,
                None,
            )
            .map_err(|e| anyhow!("mount cgroup2: {e}"))?;
        } else {
            sys_mount(
                Some(&h.dir.to_string_lossy()),
                &fd_path(&target),
                None,
                MsFlags::MS_BIND,
                None,
            )
            .map_err(|e| anyhow!("bind {}: {e}", h.dir.display()))?;
            remount_bind(
                root,
                &m.dest,
                flags
                    | if ro {
                        MsFlags::MS_RDONLY
                    } else {
                        MsFlags::empty()
                    },
            )?;
        }
        return Ok(());
    }
    sys_mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .map_err(|e| anyhow!("mount tmpfs for cgroups: {e}"))?;
    // The tmpfs was just mounted by us and nothing in the container runs yet: its entries are
    // made and opened relative to its root, without resolving the whole path again each time.
    let cg_root = open_in_root(root, &m.dest, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| anyhow!("open {:?} after mounting tmpfs: {e}", m.dest))?;
    let open_entry = |name: &str| -> Result<OwnedFd> {
        sys::openat2(
            cg_root.as_raw_fd(),
            name,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            RESOLVE_NO_SYMLINKS,
        )
        .map_err(|e| anyhow!("open {}/{name}: {e}", m.dest))
    };
    for h in cg.hierarchies.iter().filter(|h| !h.unified) {
        let dest = format!("{}/{}", m.dest, h.name);
        match nix::sys::stat::mkdirat(
            Some(cg_root.as_raw_fd()),
            h.name.as_str(),
            Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => bail!("mkdir {dest:?}: {e}"),
        }
        let t = open_entry(&h.name)?;
        if s.cgroupns {
            let data = h.options.clone();
            let mf = flags
                | if ro {
                    MsFlags::MS_RDONLY
                } else {
                    MsFlags::empty()
                };
            sys_mount(
                Some("cgroup"),
                &fd_path(&t),
                Some("cgroup"),
                mf,
                Some(&data),
            )
            .map_err(|e| anyhow!("mount cgroup {}: {e}", h.name))?;
        } else {
            let f = flags
                | if ro {
                    MsFlags::MS_RDONLY
                } else {
                    MsFlags::empty()
                };
            let src = h.dir.to_string_lossy();
            bind_fd(
                BindSrc::Path(&src),
                &t,
                false,
                Some(f),
                MsFlags::empty(),
                &|| open_entry(&h.name).map_err(|_| Errno::ENOENT),
            )
            .map_err(|e| anyhow!("{} onto {dest:?}: {e}", h.dir.display()))?;
        }
        // "cpu,cpuacct" mounted together: also reachable as cpu and cpuacct.
        if h.name.contains(',') {
            for part in h.name.split(',') {
                let _ = nix::unistd::symlinkat(h.name.as_str(), Some(cg_root.as_raw_fd()), part);
            }
        }
    }
    if ro {
        remount_fd(&cg_root, &m.dest, flags | MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Default devices, linux.devices, and the /dev links. Skipped for a /dev bound from the host.
pub fn setup_dev(root: &OwnedFd, s: &Setup) -> Result<()> {
    if s.mounts.iter().any(|m| m.dest == "/dev" && m.bind) {
        return Ok(());
    }
    let dev = match open_in_root(
        root,
        "/dev",
        libc::O_PATH | libc::O_DIRECTORY,
        RESOLVE_NO_SYMLINKS,
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => mkdir_all(root, "/dev", 0o755)?,
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            bail!("the rootfs's /dev is a symlink or not a directory: refusing it")
        }
        Err(e) => bail!("open /dev in the rootfs: {e}"),
    };
    let old = nix::sys::stat::umask(Mode::empty());
    let mut res = Ok(());
    for (path, major, minor) in DEFAULT_DEVICES {
        if s.devices.iter().any(|d| d.path == *path) {
            continue;
        }
        let d = DevicePlan {
            index: usize::MAX,
            path: path.to_string(),
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        res = res.and_then(|_| make_device(root, &dev, &d, s.userns));
    }
    for d in s.devices {
        res = res.and_then(|_| {
            make_device(root, &dev, d, s.userns)
                .with_context(|| format!("linux.devices[{}] {:?}", d.index, d.path))
        });
    }
    nix::sys::stat::umask(old);
    res?;
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/proc/kcore", "core"),
    ];
    let has_kcore = Path::new("/proc/kcore").exists();
    for (target, name) in links {
        if name == "core" && !has_kcore {
            continue;
        }
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => bail!("symlink /dev/{name} -> {target}: {e}"),
        }
    }
    // /dev/ptmx is the devpts instance's ptmx (replacing a node the rootfs may have).
    let ptmx = || nix::unistd::symlinkat("pts/ptmx", Some(dev.as_raw_fd()), "ptmx");
    match ptmx() {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            let _ = nix::unistd::unlinkat(
                Some(dev.as_raw_fd()),
                "ptmx",
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            ptmx().map_err(|e| anyhow!("symlink /dev/ptmx: {e}"))?;
        }
        Err(e) => bail!("symlink /dev/ptmx: {e}"),
    }
    Ok(())
}

/// Make device node `d` (replacing whatever is at its path). `dev` is the container's /dev,
/// opened by the caller: a node directly in it needs no walk.
fn make_device(root: &OwnedFd, dev: &OwnedFd, d: &DevicePlan, userns: bool) -> Result<()> {
    let p = Path::new(&d.path);
    let parent = p
        .parent()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let name = p
        .file_name()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_default();
    let made;
    let dir = if parent == "/dev" {
        dev
    } else {
        made = mkdir_all(root, &parent, 0o755)?;
        &made
    };
    let remove_old = || match nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name.as_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(anyhow!("remove old {}: {e}", d.path)),
    };
    if userns {
        remove_old()?;
        // mknod is not allowed in a user namespace: bind the host's node instead.
        let f = open_in_root(
            root,
            &d.path,
            libc::O_RDONLY | libc::O_CREAT | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| anyhow!("create {}: {e}", d.path))?;
        drop(f);
        let t = open_in_root(root, &d.path, libc::O_PATH, RESOLVE_NO_SYMLINKS)?;
        return sys_mount(Some(&d.path), &fd_path(&t), None, MsFlags::MS_BIND, None)
            .map_err(|e| anyhow!("bind host {}: {e}", d.path));
    }
    let rdev = libc::makedev(d.major as u32, d.minor as u32);
    let mknod = || {
        nix::sys::stat::mknodat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            d.kind,
            Mode::from_bits_truncate(d.mode),
            rdev,
        )
    };
    // A fresh /dev is empty: try first, replace what is there only when something is.
    match mknod() {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            remove_old()?;
            mknod().map_err(|e| anyhow!("mknod {}: {e}", d.path))?;
        }
        Err(e) => bail!("mknod {}: {e}", d.path),
    }
    // The node just made, by name in its directory, never through a link.
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name.as_str(),
        Some(nix::unistd::Uid::from_raw(d.uid)),
        Some(nix::unistd::Gid::from_raw(d.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| anyhow!("chown {}: {e}", d.path))?;
    Ok(())
}

/// /dev/console: a fresh empty file (whatever was there, a symlink included, is removed first)
/// with the pty slave bound onto it.
pub fn bind_console(root: &OwnedFd, slave: &OwnedFd) -> Result<()> {
    let dev = open_in_root(
        root,
        "/dev",
        libc::O_PATH | libc::O_DIRECTORY,
        RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| anyhow!("open the container's /dev: {e}"))?;
    match nix::unistd::unlinkat(
        Some(dev.as_raw_fd()),
        "console",
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => bail!("remove the rootfs's /dev/console: {e}"),
    }
    let f = nix::fcntl::openat(
        Some(dev.as_raw_fd()),
        "console",
        nix::fcntl::OFlag::O_CREAT
            | nix::fcntl::OFlag::O_EXCL
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC
            | nix::fcntl::OFlag::O_RDONLY,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| anyhow!("create /dev/console: {e}"))?;
    let _ = nix::unistd::close(f);
    let t = open_in_root(root, "/dev/console", libc::O_PATH, RESOLVE_NO_SYMLINKS)?;
    sys_mount(
        Some(&fd_path(slave)),
        &fd_path(&t),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .map_err(|e| anyhow!("bind the pty onto /dev/console: {e}"))
}

/// The container's /dev/null, verified to be the real char device 1:3 and not a link.
fn verified_dev_null(root: &OwnedFd) -> Result<OwnedFd> {
    let fd = open_in_root(root, "/dev/null", libc::O_PATH, RESOLVE_NO_SYMLINKS)
        .map_err(|e| anyhow!("open the container's /dev/null: {e}"))?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || libc::major(st.st_rdev) != 1 || libc::minor(st.st_rdev) != 3 {
        bail!("the container's /dev/null is not the null device: refusing to use it");
    }
    Ok(fd)
}

/// maskedPaths: /dev/null over files, an empty read-only tmpfs over directories.
/// A masked or read-only path, resolved in the root: None when it is not there (nothing to
/// hide). A symlink is followed, inside the root, to what it names (a dangling one is not
/// there); one that loops is an error, as in runc, where the mount would fail with ELOOP.
fn open_masked(root: &OwnedFd, p: &str, field: &str) -> Result<Option<OwnedFd>> {
    let fd = match open_in_root(root, p, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => bail!("{field} {p:?}: open: {e}"),
    };
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
        return Ok(Some(fd));
    }
    match open_in_root(root, p, libc::O_PATH, 0) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => bail!("{field} {p:?}: a symlink that cannot be followed: {e}"),
    }
}

/// A /dev filesystem asked read-only: mounted writable, made read-only by [`finish_dev`].
fn dev_made_readonly_later(m: &MountPlan) -> bool {
    m.dest == "/dev" && !m.bind && m.flags.contains(MsFlags::MS_RDONLY)
}

/// The read-only remount of a /dev whose devices, symlinks and mounts are in place (runc).
pub fn finish_dev(root: &OwnedFd, mounts: &[MountPlan]) -> Result<()> {
    let Some(m) = mounts.iter().rev().find(|m| m.dest == "/dev") else {
        return Ok(());
    };
    if !dev_made_readonly_later(m) {
        return Ok(());
    }
    let fd = open_in_root(
        root,
        "/dev",
        libc::O_PATH | libc::O_DIRECTORY,
        RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| anyhow!("{}: reopen /dev: {e}", m.what()))?;
    remount_fd(&fd, "/dev", m.flags - MsFlags::MS_REC).with_context(|| m.what())
}

pub fn mask_paths(root: &OwnedFd, paths: &[String]) -> Result<()> {
    let mut null = None;
    for (i, p) in paths.iter().enumerate() {
        let Some(fd) = open_masked(root, p, &format!("linux.maskedPaths[{i}]"))? else {
            continue;
        };
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        let r = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            sys_mount(
                Some("tmpfs"),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )
        } else {
            if null.is_none() {
                null = Some(verified_dev_null(root)?);
            }
            let n = null.as_ref().expect("set above");
            bind_fd(BindSrc::Fd(n), &fd, false, None, MsFlags::empty(), &|| {
                Err(Errno::ENOENT)
            })
            .map_err(|e| match e {
                BindError::Bind(e) | BindError::Reopen(e) | BindError::Remount(_, e) => e,
            })
        };
        r.map_err(|e| anyhow!("linux.maskedPaths[{i}] {p:?}: mount: {e}"))?;
    }
    Ok(())
}

/// readonlyPaths: bind each onto itself, then remount read-only.
pub fn readonly_paths(root: &OwnedFd, paths: &[String]) -> Result<()> {
    for (i, p) in paths.iter().enumerate() {
        let Some(fd) = open_masked(root, p, &format!("linux.readonlyPaths[{i}]"))? else {
            continue;
        };
        let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        bind_fd(
            BindSrc::Fd(&fd),
            &fd,
            true,
            Some(ro),
            MsFlags::empty(),
            &|| open_in_root(root, p, libc::O_PATH, 0),
        )
        .map_err(|e| anyhow!("linux.readonlyPaths[{i}] {p:?}: {e}"))?;
    }
    Ok(())
}

/// root.readonly: remount the rootfs bind read-only.
pub fn readonly_root(root: &OwnedFd) -> Result<()> {
    remount_fd(root, "/", MsFlags::MS_RDONLY).context("root.readonly")
}

/// pivot_root into the rootfs and detach the old root; or MS_MOVE + chroot with --no-pivot.
/// `--no-pivot` leaves the host's mounts in the namespace, under the chroot. A fully visible
/// procfs or sysfs among them lets a nested user namespace (with its own pid namespace) mount
/// a fresh one: the kernel's "too revealing" check finds the host's. So, as runc does, every
/// full proc and sysfs mount outside the rootfs is detached first (made a slave so the host
/// never sees it), or covered with an empty tmpfs where it cannot be.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| {
        anyhow!(
            "--no-pivot: read /proc/self/mountinfo: {}",
            sys::io_errno(&e)
        )
    })?;
    let mut targets: Vec<String> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split_whitespace().collect();
        let fstype = post.split_whitespace().next().unwrap_or("");
        if f.len() < 5 || f[3] != "/" || !matches!(fstype, "proc" | "sysfs") {
            continue;
        }
        let mp = unescape_mountinfo(f[4]);
        if Path::new(&mp).starts_with(rootfs) {
            continue;
        }
        targets.push(mp);
    }
    for p in targets {
        match sys_mount(None, &p, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None) {
            Ok(()) => {}
            // Gone with an earlier detach (a sysfs under a hidden /proc...).
            Err(Errno::ENOENT) | Err(Errno::EINVAL) => continue,
            Err(e) => bail!("--no-pivot: make {p} a slave before hiding it: {e}"),
        }
        match umount2(p.as_str(), MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL) | Err(Errno::EPERM) => {
                sys_mount(Some("tmpfs"), &p, Some("tmpfs"), MsFlags::empty(), None)
                    .map_err(|e| anyhow!("--no-pivot: cover {p} with a tmpfs: {e}"))?;
            }
            Err(e) => bail!("--no-pivot: detach the host's {p}: {e}"),
        }
    }
    Ok(())
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn enter_root(root: &OwnedFd, rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
        nix::unistd::chdir(rootfs).map_err(|e| anyhow!("chdir {}: {e}", rootfs.display()))?;
        sys_mount(Some("."), "/", None, MsFlags::MS_MOVE, None)
            .map_err(|e| anyhow!("move the rootfs to / (--no-pivot): {e}"))?;
        nix::unistd::chroot(".").map_err(|e| anyhow!("chroot (--no-pivot): {e}"))?;
    } else {
        let old_root = sys::openat2(libc::AT_FDCWD, "/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)
            .map_err(|e| anyhow!("open the old root: {e}"))?;
        nix::unistd::fchdir(root.as_raw_fd()).map_err(|e| anyhow!("chdir to the rootfs: {e}"))?;
        nix::unistd::pivot_root(".", ".")
            .map_err(|e| anyhow!("pivot_root {}: {e}", rootfs.display()))?;
        // Stand on the old root (stacked over the new one) so only it becomes a slave: the new
        // root's mounts keep their propagation (shared mounts stay shared).
        nix::unistd::fchdir(old_root.as_raw_fd())
            .map_err(|e| anyhow!("chdir to the old root: {e}"))?;
        // Keep the old root's unmount from reaching the host.
        sys_mount(None, ".", None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
            .map_err(|e| anyhow!("make the old root a slave: {e}"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| anyhow!("detach the old root: {e}"))?;
    }
    nix::unistd::chdir("/").map_err(|e| anyhow!("chdir /: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(json: &str) -> Result<MountPlan> {
        let m: oci_spec::runtime::Mount = serde_json::from_str(json).unwrap();
        MountPlan::from_spec(0, &m, Path::new("/bundle"))
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape_mountinfo(r"/plain\04"), r"/plain\04");
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let m = mp(r#"{"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]}"#).unwrap();
        assert_eq!(
            m.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(m.data, "mode=1777,size=65536k");
        assert!(!m.bind);
    }

    #[test]
    fn bind_forms() {
        let m = mp(r#"{"destination":"/data","type":"none","source":"data","options":["rbind","ro","rprivate"]}"#).unwrap();
        assert!(m.bind);
        assert_eq!(m.source, "/bundle/data");
        assert_eq!(m.flags, MsFlags::MS_REC | MsFlags::MS_RDONLY);
        assert_eq!(m.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        let m = mp(r#"{"destination":"/x/../y","type":"bind","source":"/h"}"#).unwrap();
        assert_eq!(m.dest, "/y");
    }

    #[test]
    fn idmapped_mount_plans() {
        let map = r#"[{"containerID":0,"hostID":100000,"size":65536}]"#;
        let m = mp(&format!(
            r#"{{"destination":"/d","source":"/s","options":["rbind","ridmap"],"uidMappings":{map},"gidMappings":{map}}}"#
        ))
        .unwrap();
        let idm = m.idmap.unwrap();
        assert!(idm.recursive && m.bind && m.flags.contains(MsFlags::MS_REC));
        assert_eq!(
            idm.userns,
            IdmapUserns::Maps {
                uid: "0 100000 65536\n".into(),
                gid: "0 100000 65536\n".into()
            }
        );
        // No option: the top only. No "idmap"/"ridmap" reaches mount(2)'s data.
        let m = mp(&format!(
            r#"{{"destination":"/d","type":"bind","source":"/s","uidMappings":{map},"gidMappings":{map}}}"#
        ))
        .unwrap();
        assert!(!m.idmap.unwrap().recursive);
        let m = mp(r#"{"destination":"/d","source":"/s","options":["bind","idmap"]}"#).unwrap();
        assert_eq!(m.idmap.unwrap().userns, IdmapUserns::Container);
        assert!(m.data.is_empty());
        assert!(
            mp(r#"{"destination":"/d","source":"/s","options":["bind"]}"#)
                .unwrap()
                .idmap
                .is_none()
        );
        for (json, want) in [
            (
                format!(
                    r#"{{"destination":"/d","source":"/s","options":["bind"],"uidMappings":{map}}}"#
                ),
                "gidMappings: missing",
            ),
            (
                format!(
                    r#"{{"destination":"/d","source":"/s","options":["bind"],"gidMappings":{map}}}"#
                ),
                "uidMappings: missing",
            ),
            (
                r#"{"destination":"/d","type":"tmpfs","source":"tmpfs","options":["idmap"]}"#
                    .into(),
                "only supported for bind mounts",
            ),
        ] {
            let e = mp(&json).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("mounts[0]"), "{e}");
        }
    }

    #[test]
    fn bad_mounts() {
        // Relative: taken from / as runc does (with a warning).
        assert_eq!(
            mp(r#"{"destination":"rel/x","type":"tmpfs"}"#)
                .unwrap()
                .dest,
            "/rel/x"
        );
        assert!(
            mp(r#"{"destination":"","type":"tmpfs"}"#)
                .unwrap_err()
                .to_string()
                .contains("mounts[0].destination")
        );
        assert!(
            mp(r#"{"destination":"/x","type":"bind"}"#)
                .unwrap_err()
                .to_string()
                .contains("source")
        );
        assert!(mp(r#"{"destination":"/","type":"tmpfs"}"#).is_err());
    }

    #[test]
    fn rw_clears_ro() {
        let m = mp(r#"{"destination":"/t","type":"tmpfs","options":["ro","rw"]}"#).unwrap();
        assert!(!m.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn bind_remount_flags_as_mount_attrs() {
        use sys::*;
        // ro,nosuid,nodev,noexec,relatime (a cgroup or readonlyPaths bind).
        let f = MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_RELATIME;
        let (set, clear) = mount_attrs(f, MsFlags::empty());
        assert_eq!(
            set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
        );
        assert_eq!(clear, MOUNT_ATTR_ATIME | 0x0020_0000);
        // No atime named: the mount's own is kept; no ro: a read-only bind becomes writable,
        // as a bind remount without MS_RDONLY makes it.
        let (set, clear) = mount_attrs(MsFlags::MS_NOSUID, MsFlags::empty());
        assert_eq!(set, MOUNT_ATTR_NOSUID);
        assert_eq!(clear, MOUNT_ATTR_RDONLY | 0x0020_0000);
        let (set, clear) =
            mount_attrs(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME, MsFlags::empty());
        assert_eq!(set & MOUNT_ATTR_ATIME, MOUNT_ATTR_NOATIME);
        assert_eq!(clear & MOUNT_ATTR_ATIME, MOUNT_ATTR_ATIME);
        // Superblock flags are not per-mount: a bind remount ignores them, and so does this.
        let (set, _) = mount_attrs(
            MsFlags::MS_SYNCHRONOUS | MsFlags::MS_DIRSYNC,
            MsFlags::empty(),
        );
        assert_eq!(set, 0);
        // Options that name the opposite ("suid", "dev", "exec", "atime") clear.
        let cleared =
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
        let (set, clear) = mount_attrs(MsFlags::empty(), cleared);
        assert_eq!(set, MOUNT_ATTR_RELATIME);
        assert_eq!(
            clear,
            MOUNT_ATTR_RDONLY
                | MOUNT_ATTR_NOSUID
                | MOUNT_ATTR_NODEV
                | MOUNT_ATTR_NOEXEC
                | MOUNT_ATTR_ATIME
                | 0x0020_0000
        );
    }

    #[test]
    fn recursive_options() {
        let m = mp(r#"{"destination":"/d","type":"bind","source":"/s","options":["rbind","rro","rnosuid","rnoatime","rnodev","rdev"]}"#).unwrap();
        let (set, clear) = m.rattr.unwrap();
        assert_eq!(
            set,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOATIME
        );
        assert_eq!(clear, sys::MOUNT_ATTR_ATIME | sys::MOUNT_ATTR_NODEV);
        assert!(m.data.is_empty(), "{:?}", m.data);
        let m = mp(r#"{"destination":"/d","type":"bind","source":"/s","options":["bind","rw","suid","exec"]}"#).unwrap();
        assert_eq!(
            m.cleared,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC
        );
        assert!(m.rattr.is_none());
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("/a//b/./c/"), "/a/b/c");
        assert_eq!(clean("/../../etc"), "/etc");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn in_root_resolution_stays_inside() {
        let dir = std::env::temp_dir().join(format!("rrun-rootfs-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("r")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("r/evil")).unwrap();
        let root = sys::openat2(
            libc::AT_FDCWD,
            dir.join("r").to_str().unwrap(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            0,
        )
        .unwrap();
        mkdir_all(&root, "/evil/sub", 0o755).unwrap();
        assert!(dir.join("r/etc/sub").is_dir(), "created inside the rootfs");
        assert!(!Path::new("/etc/sub").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
