//! Container state under `<root>/<id>/`: exclusive creation, a lock per id, atomic writes, and a
//! status derived from facts (live pid with the saved start time, the exec fifo, the freezer).

use crate::cgroups::Cgroup;
use crate::error;
use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

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
}

/// A container directory, locked for the lifetime of this value.
pub struct Container {
    pub dir: PathBuf,
    _lock: Flock<File>,
    pub saved: Saved,
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

pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/rrun");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("rrun"),
        _ => PathBuf::from(format!("/tmp/rrun-{}", nix::unistd::geteuid())),
    }
}

fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    let f = File::open(dir).with_context(|| format!("open state dir {}", dir.display()))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("lock state dir {}", dir.display()))
}

impl Container {
    /// Create `<root>/<id>` exclusively and lock it. Fails with AlreadyExists if the id is taken.
    pub fn create(root: &Path, id: &str, saved: Saved) -> Result<Container> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .with_context(|| format!("create state root {}", root.display()))?;
        let dir = root.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
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
        let c = Container {
            dir,
            _lock: lock,
            saved,
        };
        if let Err(e) = c.save() {
            let _ = std::fs::remove_dir_all(&c.dir);
            return Err(e);
        }
        Ok(c)
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
        Ok(Container {
            dir,
            _lock: lock,
            saved,
        })
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
    let init_alive = crate::util::pid_alive(s.pid, s.start_time);
    Facts {
        creating: s.creating,
        creator_alive: s.creating && crate::util::pid_alive(s.creator_pid, s.creator_start_time),
        init_alive,
        fifo_exists: init_alive && dir.join(FIFO).exists(),
        frozen: init_alive && s.cgroup.as_ref().is_some_and(|c| c.is_frozen()),
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

/// The OCI state JSON printed by `state`, as runc prints it.
pub fn oci_state(s: &Saved, status: Status) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": s.oci_version,
        "id": s.id,
        "pid": if status == Status::Stopped { 0 } else { s.pid },
        "status": status.as_str(),
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": s.owner,
    });
    if !s.annotations.is_empty() {
        v["annotations"] = serde_json::to_value(&s.annotations).unwrap_or_default();
    }
    v
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
        let c = Container::create(&root, "x", saved()).unwrap();
        let e = Container::create(&root, "x", saved()).err().unwrap();
        assert_eq!(error::kind_of(&e), Some(error::Kind::AlreadyExists));
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
        let c = Container::create(&root, "y", s).unwrap();
        assert_eq!(c.status(), Status::Running);
        std::fs::write(c.fifo(), b"").unwrap();
        assert_eq!(c.status(), Status::Created);
        let v = oci_state(&c.saved, c.status());
        assert_eq!(v["status"], "created");
        c.remove().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
