//! Container state under `<root>/<id>/`: exclusive creation, a lock per id, atomic writes, and a
//! status derived from facts (live pid with the saved start time, the exec fifo, the freezer).

use crate::cgroups::Cgroup;
use crate::error;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

pub const STATE_FILE: &str = "state.json";
pub const FIFO: &str = "exec.fifo";
/// Where init writes why it failed after `start` (startContainer hook, execve).
pub const INIT_ERR: &str = "init.err";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What is saved in state.json: the OCI state plus what rrun needs later.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub oci_version: String,
    pub id: String,
    /// Only ever `creating` on disk until init is ready; the live status is derived.
    pub creating: bool,
    pub pid: i32,
    /// Start time of `pid` in clock ticks (field 22 of /proc/<pid>/stat).
    pub start_time: u64,
    /// The rrun process doing the create, so a crashed create is seen as stopped.
    pub creator_pid: i32,
    pub creator_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub cgroup: Option<Cgroup>,
    /// For poststart (in `start`) and poststop (in `delete`).
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// No pid namespace of its own (the host's, or one joined by path): its other processes
    /// outlive init, so `kill KILL` signals the whole cgroup (runc).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_pidns: bool,
}

/// A container directory, locked while `lock` is held (see [`Container::unlock`]).
pub struct Container {
    pub dir: PathBuf,
    lock: Option<Lock>,
    pub saved: Saved,
}

/// An exclusive flock(2) on a state dir, held by this process alone: the fd is close-on-exec,
/// and every child rrun clones closes it first thing ([`close_lock_in_child`]), so a container
/// init or exec process never keeps an id locked after the command that took the lock is gone.
/// Released by closing the fd, never by an explicit unlock (whose failure, EIO say, would have
/// nowhere to go).
pub struct Lock(OwnedFd);

/// The lock fd this process holds, for children to close (-1: none).
static HELD: AtomicI32 = AtomicI32::new(-1);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = HELD.compare_exchange(self.0.as_raw_fd(), -1, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// In a child cloned by rrun (container init, exec): close the copy of the state lock's fd,
/// so the lock lives exactly as long as the rrun command that took it.
pub fn close_lock_in_child() {
    let fd = HELD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: our own copy of the lock fd in this process; nothing else uses it here.
        unsafe { libc::close(fd) };
    }
}

/// How long a command waits for another one's lock on the same id (RRUN_LOCK_TIMEOUT, seconds).
fn lock_timeout() -> std::time::Duration {
    let s = std::env::var("RRUN_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(30.0);
    std::time::Duration::from_secs_f64(s)
}

/// The pid that holds a flock on (dev, ino), from /proc/locks.
fn lock_holder(dev: u64, ino: u64) -> Option<i32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    );
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF" (a blocked waiter has "->").
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str()))
            .then(|| f[4].parse().ok())
            .flatten()
    })
}

pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        bail!(
            "invalid container id {id:?}: it must be non-empty, not \".\" or \"..\", and contain no \"/\""
        );
    }
    if id.len() > 1024 {
        bail!("invalid container id: longer than 1024 bytes");
    }
    Ok(())
}

/// runc's choice: `$XDG_RUNTIME_DIR/rrun` when not root, or root only of a user namespace
/// (rootless podman) whose `$USER` is not root; else /run/rrun.
pub fn default_root() -> PathBuf {
    let userns_user =
        crate::rootless::userns() && std::env::var("USER").map_or(true, |u| u != "root");
    if crate::rootless::not_root() || userns_user {
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => return PathBuf::from(d).join("rrun"),
            // As runc: no per-user fallback in a shared dir (another user could own it first).
            _ => {}
        }
    }
    PathBuf::from("/run/rrun")
}

/// Lock a state dir, waiting at most [`lock_timeout`] for the command that holds it. A dir
/// removed while we waited (a concurrent delete) is ENOENT, as if it had never been there;
/// one removed and made anew (a new container with the id) is locked afresh.
pub fn lock_dir(dir: &Path) -> Result<Lock> {
    let deadline = std::time::Instant::now() + lock_timeout();
    let removed = || {
        anyhow::Error::new(nix::errno::Errno::ENOENT).context(format!(
            "lock state dir {}: removed meanwhile",
            dir.display()
        ))
    };
    loop {
        let lock = lock_dir_once(dir, deadline)?;
        let held = nix::sys::stat::fstat(lock.0.as_raw_fd())
            .map_err(|e| anyhow::anyhow!("stat state dir {}: {e}", dir.display()))?;
        if held.st_nlink == 0 {
            return Err(removed());
        }
        match nix::sys::stat::lstat(dir) {
            Ok(now) if now.st_ino == held.st_ino && now.st_dev == held.st_dev => return Ok(lock),
            Ok(_) => continue,
            Err(nix::errno::Errno::ENOENT) => return Err(removed()),
            Err(e) => return Err(anyhow::anyhow!("stat state dir {}: {e}", dir.display())),
        }
    }
}

fn lock_dir_once(dir: &Path, deadline: std::time::Instant) -> Result<Lock> {
    let fd = crate::sys::openat2(
        libc::AT_FDCWD,
        &dir.to_string_lossy(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
        0,
    )
    .with_context(|| format!("open state dir {}", dir.display()))?;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        // SAFETY: flock on an fd we own.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        match nix::errno::Errno::result(r) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EWOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            Err(nix::errno::Errno::EWOULDBLOCK) => {
                let st = nix::sys::stat::fstat(fd.as_raw_fd()).ok();
                let who = st
                    .and_then(|s| lock_holder(s.st_dev, s.st_ino))
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default();
                bail!(
                    "lock state dir {}: another rrun command{who} has held it for {:.0} s (RRUN_LOCK_TIMEOUT): EWOULDBLOCK",
                    dir.display(),
                    lock_timeout().as_secs_f64()
                );
            }
            Err(e) => return Err(anyhow::anyhow!("lock state dir {}: {e}", dir.display())),
        }
    }
    HELD.store(fd.as_raw_fd(), Ordering::SeqCst);
    Ok(Lock(fd))
}

impl Container {
    /// Create `<root>/<id>` exclusively and lock it; AlreadyExists if the id is taken. No
    /// state.json yet: `create` writes it once the cgroup exists. A create that dies before
    /// that leaves a dir without state.json, which `list` skips and `delete --force` removes.
    pub fn claim(root: &Path, id: &str, saved: Saved) -> Result<Container> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("create state root {}", root.display()))?;
        let dir = root.join(id);
        // 0700, as runc: a container's errors (init.err) and state are root's alone.
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(error::already_exists(id));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("create state dir {}", dir.display()));
            }
        }
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        Ok(Container::locked(dir, lock, saved))
    }

    /// Open and lock an existing container. NotFound ("does not exist") if there is none.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = root.join(id);
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(e) if error::errno_of(&e) == Some(libc::ENOENT) => {
                return Err(error::not_found(id));
            }
            Err(e) => return Err(e),
        };
        let saved = read_saved(&dir, id)?;
        Ok(Container::locked(dir, lock, saved))
    }

    /// A container whose dir the caller has locked and whose state it has read.
    pub fn locked(dir: PathBuf, lock: Lock, saved: Saved) -> Container {
        Container {
            dir,
            lock: Some(lock),
            saved,
        }
    }

    /// Let other commands take the id while this one goes on with what it read (`exec`
    /// waiting on a process that joins a frozen cgroup must not keep `resume` out).
    pub fn unlock(&mut self) {
        self.lock = None;
    }

    pub fn save(&self) -> Result<()> {
        let data = serde_json::to_vec(&self.saved).context("encode state")?;
        crate::util::write_atomic(&self.dir.join(STATE_FILE), &data, 0o600)
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join(FIFO)
    }

    pub fn status(&self) -> Status {
        derive_status(&facts(&self.dir, &self.saved))
    }

    /// Remove the state directory (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("remove state dir {}", self.dir.display()))
    }
}

/// Read state.json without taking the lock (for `list`, which must not block on a busy id).
pub fn read_saved(dir: &Path, id: &str) -> Result<Saved> {
    let p = dir.join(STATE_FILE);
    let data = match std::fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(error::not_found(id)),
        Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
    };
    serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))
}

/// The part of state.json that `state` and `list` print and derive the status from. The rest
/// (the cgroup hierarchies, hooks) is skipped without building it, which keeps `list` of
/// many containers cheap; of the cgroup only the file that says "paused" is kept.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Brief {
    pub oci_version: String,
    pub id: String,
    pub creating: bool,
    pub pid: i32,
    pub start_time: u64,
    pub creator_pid: i32,
    pub creator_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// freezer.state (v1) or cgroup.freeze (v2) of the container's cgroup.
    #[serde(default, rename = "cgroup", deserialize_with = "freeze_file")]
    pub freeze_file: Option<PathBuf>,
}

fn freeze_file<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    struct Cg {
        mode: crate::cgroups::Mode,
        hierarchies: Vec<H>,
    }
    #[derive(Deserialize)]
    struct H {
        controllers: Vec<String>,
        dir: PathBuf,
        #[serde(default)]
        unified: bool,
    }
    let Some(cg) = Option::<Cg>::deserialize(d)? else {
        return Ok(None);
    };
    Ok(if cg.mode == crate::cgroups::Mode::V2 {
        cg.hierarchies.first().map(|h| h.dir.join("cgroup.freeze"))
    } else {
        cg.hierarchies
            .iter()
            .find(|h| !h.unified && h.controllers.iter().any(|c| c == "freezer"))
            .map(|h| h.dir.join("freezer.state"))
    })
}

impl Brief {
    pub fn facts(&self, dir: &Path) -> Facts {
        facts_of(
            self.creating,
            (self.pid, self.start_time),
            (self.creator_pid, self.creator_start_time),
            crate::util::pid_alive,
            || dir.join(FIFO).exists(),
            || self.frozen(),
        )
    }

    /// [`Brief::facts`] for `list`: the container's files are looked up from the open state
    /// root (`<id>/exec.fifo`) and pids from the open `/proc`.
    pub fn facts_in(&self, root: BorrowedFd, proc: Option<BorrowedFd>) -> Facts {
        facts_of(
            self.creating,
            (self.pid, self.start_time),
            (self.creator_pid, self.creator_start_time),
            |pid, start| crate::util::pid_alive_in(proc, pid, start),
            || {
                let rel = format!("{}/{FIFO}", self.id);
                nix::sys::stat::fstatat(
                    Some(root.as_raw_fd()),
                    rel.as_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .is_ok()
            },
            || self.frozen(),
        )
    }

    fn frozen(&self) -> bool {
        self.freeze_file
            .as_deref()
            .is_some_and(crate::cgroups::frozen_by_file)
    }

    /// The OCI state printed by `state` (and a row of `list`), as runc prints it.
    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

/// The OCI state JSON, borrowed from a [`Brief`]; serialized in runc's key order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

/// Read the brief state without taking the lock (`state`, `list`: they never wait on a busy id).
pub fn read_brief(dir: &Path, id: &str, buf: &mut Vec<u8>) -> Result<Brief> {
    read_brief_at(libc::AT_FDCWD, dir, id, buf)
}

/// [`read_brief`] with `dir` relative to the directory `at` (`list`: `<id>` under the open
/// state root). `buf` is reused between calls by `list`.
pub fn read_brief_at(at: RawFd, dir: &Path, id: &str, buf: &mut Vec<u8>) -> Result<Brief> {
    let p = dir.join(STATE_FILE);
    match crate::util::read_into_at(at, &p, buf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(error::not_found(id)),
        Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
    }
    serde_json::from_slice(buf).with_context(|| format!("parse {}", p.display()))
}

/// The facts status is derived from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Facts {
    pub creating: bool,
    pub creator_alive: bool,
    pub init_alive: bool,
    pub fifo_exists: bool,
    pub frozen: bool,
}

pub fn facts(dir: &Path, s: &Saved) -> Facts {
    facts_of(
        s.creating,
        (s.pid, s.start_time),
        (s.creator_pid, s.creator_start_time),
        crate::util::pid_alive,
        || dir.join(FIFO).exists(),
        || s.cgroup.as_ref().is_some_and(|c| c.is_frozen()),
    )
}

/// (pid, start time) pairs of init and of the creating rrun. Only the facts the status table
/// reads are looked up: no fifo for a dead init, no freezer for a created one (its fifo
/// decides).
fn facts_of(
    creating: bool,
    init: (i32, u64),
    creator: (i32, u64),
    alive: impl Fn(i32, u64) -> bool,
    fifo_exists: impl FnOnce() -> bool,
    frozen: impl FnOnce() -> bool,
) -> Facts {
    let init_alive = alive(init.0, init.1);
    let fifo_exists = init_alive && fifo_exists();
    Facts {
        creating,
        creator_alive: creating && alive(creator.0, creator.1),
        init_alive,
        fifo_exists,
        frozen: init_alive && !fifo_exists && frozen(),
    }
}

/// Pure status table.
pub fn derive_status(f: &Facts) -> Status {
    if f.creating {
        return if f.creator_alive {
            Status::Creating
        } else {
            Status::Stopped
        };
    }
    if !f.init_alive {
        Status::Stopped
    } else if f.fifo_exists {
        Status::Created
    } else if f.frozen {
        Status::Paused
    } else {
        Status::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Saved {
        Saved {
            oci_version: "1.2.0".into(),
            id: "x".into(),
            creating: false,
            pid: 0,
            start_time: 0,
            creator_pid: 0,
            creator_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: crate::util::rfc3339_now(),
            owner: "".into(),
            annotations: BTreeMap::new(),
            cgroup: None,
            hooks: None,
            shared_pidns: false,
        }
    }

    #[test]
    fn status_table() {
        let f = |creating, creator_alive, init_alive, fifo_exists, frozen| Facts {
            creating,
            creator_alive,
            init_alive,
            fifo_exists,
            frozen,
        };
        assert_eq!(
            derive_status(&f(true, true, false, false, false)),
            Status::Creating
        );
        assert_eq!(
            derive_status(&f(true, false, false, false, false)),
            Status::Stopped
        );
        assert_eq!(
            derive_status(&f(false, false, true, true, false)),
            Status::Created
        );
        assert_eq!(
            derive_status(&f(false, false, true, false, false)),
            Status::Running
        );
        assert_eq!(
            derive_status(&f(false, false, true, false, true)),
            Status::Paused
        );
        assert_eq!(
            derive_status(&f(false, false, false, true, false)),
            Status::Stopped
        );
    }

    #[test]
    fn ids() {
        for bad in ["", ".", "..", "a/b", "/x"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a.b", "abc-123_x", "..."] {
            assert!(validate_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn create_is_exclusive_and_locked() {
        let root = std::env::temp_dir().join(format!("rrun-state-test-{}", std::process::id()));
        let c = Container::claim(&root, "x", saved()).unwrap();
        let e = Container::claim(&root, "x", saved()).err().unwrap();
        assert_eq!(error::kind_of(&e), Some(error::Kind::AlreadyExists));
        assert!(
            !c.dir.join(STATE_FILE).exists(),
            "claim writes no state yet"
        );
        c.save().unwrap();
        assert!(c.dir.join(STATE_FILE).exists());
        // A recycled or dead pid is stopped; pid 0 is never alive.
        assert_eq!(c.status(), Status::Stopped);
        drop(c);
        let c = Container::load(&root, "x").unwrap();
        assert_eq!(c.saved.id, "x");
        c.remove().unwrap();
        let e = Container::load(&root, "x").err().unwrap();
        assert!(format!("{e:#}").contains("does not exist"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn live_pid_with_fifo_is_created() {
        let root = std::env::temp_dir().join(format!("rrun-state-test2-{}", std::process::id()));
        let mut s = saved();
        s.pid = std::process::id() as i32;
        s.start_time = crate::util::proc_stat(s.pid).unwrap().1;
        let c = Container::claim(&root, "y", s).unwrap();
        c.save().unwrap();
        assert_eq!(c.status(), Status::Running);
        std::fs::write(c.fifo(), b"").unwrap();
        assert_eq!(c.status(), Status::Created);
        let mut buf = Vec::new();
        let b = read_brief(&c.dir, "y", &mut buf).unwrap();
        assert!(b.facts(&c.dir).fifo_exists);
        let v = serde_json::to_value(b.oci_state(c.status())).unwrap();
        assert_eq!(v["status"], "created");
        assert_eq!(v["pid"], c.saved.pid);
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "ociVersion",
                "id",
                "pid",
                "status",
                "bundle",
                "rootfs",
                "created",
                "owner"
            ]
        );
        assert_eq!(b.freeze_file, None);
        c.remove().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
