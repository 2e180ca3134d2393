//! Thin wrappers over the syscalls the rest of rrun uses, each returning errors that name the
//! errno (`EPERM: Operation not permitted`).

use anyhow::Result;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An io::Error shown with its errno name, like nix errors are.
pub fn io_errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).to_string(),
        None => e.to_string(),
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2): the kernel resolves `path` with the given RESOLVE_* rules.
pub fn openat2(
    dirfd: RawFd,
    path: &str,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let p = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: valid C string and a properly sized open_how struct for this syscall.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                p.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a new fd that we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = Errno::last();
        if e != Errno::EAGAIN && e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// The magic-link path of an fd, for mount(2) targets and sources resolved through fds.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Close fds first..=last; callers make sure no Rust object still owns them.
pub fn close_range(first: u32, last: u32) {
    if first > last {
        return;
    }
    // SAFETY: closing fds nobody uses any more (right before execve).
    unsafe {
        libc::syscall(libc::SYS_close_range, first, last, 0);
    }
}

pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall returning a new fd.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> nix::Result<()> {
    // SAFETY: plain syscall on an fd we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

pub fn write_file(path: &str, data: &str) -> Result<()> {
    std::fs::write(path, data).map_err(|e| anyhow::anyhow!("write {path}: {}", io_errno(&e)))
}

// The new mount API (Linux 5.2; mount_setattr 5.12): mounts cloned, changed and attached
// through fds, with no path walk (a mount(2) target given as /proc/self/fd/N walks procfs, and
// a bind source walks its whole path). Callers fall back to mount(2) on ENOSYS.
pub const OPEN_TREE_CLONE: u32 = 1;
const AT_RECURSIVE: u32 = 0x8000;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub const MOUNT_ATTR_ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

/// open_tree(dirfd, path, OPEN_TREE_CLONE): a detached copy of the mount at `path` relative to
/// `dirfd` (the fd itself if `path` is empty), with its submounts if `recursive`. The mount
/// must be in the caller's mount namespace.
pub fn open_tree_clone(dirfd: RawFd, path: &str, recursive: bool) -> nix::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    if path.is_empty() {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let p = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: a valid C string, plain flags; the kernel checks the fd.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, p.as_ptr(), flags) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// move_mount(tree, "", target, ""): attach a detached tree onto the directory or file `target`.
pub fn move_mount_onto(tree: &impl AsRawFd, target: &impl AsRawFd) -> nix::Result<()> {
    // SAFETY: fds we hold and empty C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(fd, "", AT_EMPTY_PATH): set and clear MOUNT_ATTR_* flags of the mount whose
/// root `fd` is (that mount only, not its submounts).
pub fn mount_setattr(fd: &impl AsRawFd, set: u64, clear: u64) -> nix::Result<()> {
    mount_setattr_flags(fd, set, clear, 0)
}

/// [`mount_setattr`] on the mount and every mount below it (AT_RECURSIVE).
pub fn mount_setattr_recursive(fd: &impl AsRawFd, set: u64, clear: u64) -> nix::Result<()> {
    mount_setattr_flags(fd, set, clear, libc::AT_RECURSIVE)
}

pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// mount_setattr(MOUNT_ATTR_IDMAP) with the user namespace `userns`: the detached mount
/// `fd` (an open_tree clone) shows file owners through that namespace's maps; with
/// `recursive` every mount of the tree does.
pub fn mount_setattr_idmap(
    fd: &impl AsRawFd,
    userns: &impl AsRawFd,
    recursive: bool,
) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr_raw(fd, &attr, if recursive { libc::AT_RECURSIVE } else { 0 })
}

fn mount_setattr_flags(fd: &impl AsRawFd, set: u64, clear: u64, extra: i32) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr_raw(fd, &attr, extra)
}

fn mount_setattr_raw(fd: &impl AsRawFd, attr: &MountAttr, extra: i32) -> nix::Result<()> {
    // SAFETY: an fd we hold, an empty C string and a properly sized mount_attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | extra,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// What statmount(2) says of one mount (the fields rrun reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFacts {
    /// The 64-bit mount id: unique for the life of the system, so it orders mounts by age.
    pub id: u64,
    pub fs_type: String,
    /// The mount's root within its filesystem (mountinfo's 4th field).
    pub root: String,
    /// Where it is mounted, seen from our root (mountinfo's 5th field).
    pub point: String,
    /// The filesystem's own options (cgroup v1: its controllers and `name=`).
    pub opts: String,
}

const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
/// statmount(2): 457 in the shared syscall table (not in the libc crate yet).
const SYS_STATMOUNT: libc::c_long = 457;
const STATMOUNT_MNT_BASIC: u64 = 0x02;
const STATMOUNT_MNT_ROOT: u64 = 0x08;
const STATMOUNT_MNT_POINT: u64 = 0x10;
const STATMOUNT_FS_TYPE: u64 = 0x20;
const STATMOUNT_MNT_OPTS: u64 = 0x80;

/// The mount `path` is on (not following a final symlink), described by statmount(2): one
/// mount, where /proc/self/mountinfo makes the kernel print every mount of the namespace.
/// None where the kernel lacks the calls (before 6.8) or does not fill every field asked
/// for; `opts` is empty when there are none or the kernel cannot give them (before 6.10).
pub fn mount_facts(path: &str) -> Option<MountFacts> {
    let p = CString::new(path).ok()?;
    // SAFETY: an all-zero statx is a valid value for the kernel to overwrite.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statx buffer we own.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            STATX_MNT_ID_UNIQUE,
            &mut stx,
        )
    };
    if r != 0 || stx.stx_mask & STATX_MNT_ID_UNIQUE == 0 {
        return None;
    }
    // struct mnt_id_req, first version: size, spare, mnt_id, param (the request mask).
    let want = STATMOUNT_MNT_BASIC
        | STATMOUNT_MNT_ROOT
        | STATMOUNT_MNT_POINT
        | STATMOUNT_FS_TYPE
        | STATMOUNT_MNT_OPTS;
    let req: [u64; 3] = [24, stx.stx_mnt_id, want];
    // struct statmount is 512 bytes before its strings; the strings of a cgroup mount are short.
    let mut buf = vec![0u64; 4096 / 8];
    // SAFETY: a 24-byte request and a buffer of the size we pass; the kernel writes within it.
    let r = unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            req.as_ptr(),
            buf.as_mut_ptr(),
            buf.len() * 8,
            0u32,
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: u64s reinterpreted as the bytes the kernel wrote.
    let b: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len() * 8) };
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let size = (u32_at(0) as usize).min(b.len());
    // Options are only reported when there are some (cgroup2 often has none).
    let got = u64_at(8);
    if got & (want & !STATMOUNT_MNT_OPTS) != want & !STATMOUNT_MNT_OPTS {
        return None;
    }
    // A string field is an offset into the strings after the 512-byte header.
    let str_at = |o: usize| -> Option<String> {
        let start = 512 + u32_at(o) as usize;
        let s = b.get(start..size)?;
        let end = s.iter().position(|&c| c == 0)?;
        String::from_utf8(s[..end].to_vec()).ok()
    };
    Some(MountFacts {
        id: u64_at(40),
        fs_type: str_at(36)?,
        root: str_at(104)?,
        point: str_at(108)?,
        opts: if got & STATMOUNT_MNT_OPTS != 0 {
            str_at(4)?
        } else {
            String::new()
        },
    })
}
