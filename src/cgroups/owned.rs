//! What a container's cgroup owns, recorded before it is made, so that a `create` killed at
//! any syscall, or a state.json lost or corrupt, still leaves `delete --force` all it needs.
//!
//! `<state dir>/cgroup.owned` holds NUL-terminated `kind\tpath` records, each appended with
//! one write(2) before the act it announces:
//!
//! | kind      | written                                   | cleanup                          |
//! |-----------|-------------------------------------------|----------------------------------|
//! | `leaf`    | before the walk that makes a part's dirs   | kill what is in it (and nested), remove it bottom-up |
//! | `parent`  | before mkdir of a missing parent (rare)    | remove it if nothing else uses it |
//! | `existed` | after a leaf turned out to exist already   | the leaf is not ours: left alone |
//!
//! A crash between mkdir(leaf) failing with EEXIST and the `existed` record would make a
//! joined, pre-existing leaf look like ours; that window is two syscalls wide.

use anyhow::{Result, anyhow};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The record's file name in the container's state dir.
pub const FILE: &str = "cgroup.owned";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Leaf,
    Parent,
    Existed,
}

/// A systemd unit's record: `unit\t<slice>:<name>` (after systemd started it).
const UNIT: &str = "unit";

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Leaf => "leaf",
            Kind::Parent => "parent",
            Kind::Existed => "existed",
        }
    }
}

/// The open record of one create (append-only).
#[derive(Debug)]
pub struct Journal {
    file: std::fs::File,
    path: PathBuf,
}

impl Journal {
    /// Create `<state_dir>/cgroup.owned` (0600, exclusive: a create starts it).
    pub fn create(state_dir: &Path) -> Result<Journal> {
        let path = state_dir.join(FILE);
        let file = crate::util::create_new(&path, 0o600, true)
            .map_err(|e| anyhow!("create {}: {}", path.display(), crate::sys::io_errno(&e)))?;
        Ok(Journal { file, path })
    }

    /// Record the systemd unit systemd has just started for the container.
    pub fn record_unit(&self, unit: &super::systemd::Unit) -> Result<()> {
        let rec = format!("{UNIT}\t{}:{}\0", unit.slice, unit.name);
        (&self.file).write_all(rec.as_bytes()).map_err(|e| {
            anyhow!(
                "record the systemd unit in {}: {}",
                self.path.display(),
                crate::sys::io_errno(&e)
            )
        })
    }

    /// Append one record per dir, all in one write.
    pub fn record<'a>(&self, kind: Kind, dirs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
        let mut buf = Vec::with_capacity(256);
        for d in dirs {
            buf.extend_from_slice(kind.name().as_bytes());
            buf.push(b'\t');
            buf.extend_from_slice(d.as_os_str().as_bytes());
            buf.push(0);
        }
        if buf.is_empty() {
            return Ok(());
        }
        (&self.file).write_all(&buf).map_err(|e| {
            anyhow!(
                "record the cgroup dirs in {}: {}",
                self.path.display(),
                crate::sys::io_errno(&e)
            )
        })
    }
}

/// The dirs a record names as ours.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owned {
    pub leaves: Vec<PathBuf>,
    pub parents: Vec<PathBuf>,
    /// systemd units started for the container (`--systemd-cgroup`).
    pub units: Vec<super::systemd::Unit>,
}

/// Parse a record; a torn last record (a crash inside the write) and unknown kinds are skipped.
pub fn parse(data: &[u8]) -> Owned {
    use std::os::unix::ffi::OsStringExt;
    let mut o = Owned::default();
    let mut existed = Vec::new();
    let complete = match data.iter().rposition(|&b| b == 0) {
        Some(i) => &data[..i],
        None => return o,
    };
    for rec in complete.split(|&b| b == 0) {
        let Some(tab) = rec.iter().position(|&b| b == b'\t') else {
            continue;
        };
        if &rec[..tab] == UNIT.as_bytes() {
            let text = String::from_utf8_lossy(&rec[tab + 1..]);
            if let Some(u) = super::systemd::unit_from_record(&text)
                && !o.units.contains(&u)
            {
                o.units.push(u);
            }
            continue;
        }
        let path = PathBuf::from(std::ffi::OsString::from_vec(rec[tab + 1..].to_vec()));
        // Only absolute paths under the cgroup root are ever acted on.
        if !path.starts_with(super::CGROUP_ROOT)
            || path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            continue;
        }
        let list = match &rec[..tab] {
            b"leaf" => &mut o.leaves,
            b"parent" => &mut o.parents,
            b"existed" => &mut existed,
            _ => continue,
        };
        if !list.contains(&path) {
            list.push(path);
        }
    }
    o.leaves.retain(|l| !existed.contains(l));
    o
}

/// Read `<state_dir>/cgroup.owned`; none (an older create, or one killed before it) is empty.
pub fn read(state_dir: &Path) -> Owned {
    std::fs::read(state_dir.join(FILE))
        .map(|d| parse(&d))
        .unwrap_or_default()
}

/// Kill every process in `leaves` and the cgroups nested in them, remove them bottom-up, then
/// the `parents` deepest first where nothing else uses them. Goes on past a failure and
/// returns the first one.
pub fn remove(leaves: &[PathBuf], parents: &[PathBuf]) -> Result<()> {
    let mut first = None;
    for l in leaves {
        // The usual case (delete's kill emptied it, nothing nested): one rmdir.
        match std::fs::remove_dir(l) {
            Ok(()) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => {}
        }
        thaw_tree(l);
        if let Err(e) = remove_tree(l) {
            first.get_or_insert(e);
        }
    }
    let mut ps: Vec<&PathBuf> = parents.iter().filter(|p| !leaves.contains(p)).collect();
    // Deepest first; each once (the state's list and the record name the same ones).
    ps.sort_by(|a, b| {
        b.components()
            .count()
            .cmp(&a.components().count())
            .then_with(|| a.cmp(b))
    });
    ps.dedup();
    for p in ps {
        // A shared parent stays while siblings use it.
        let _ = std::fs::remove_dir(p);
    }
    first.map_or(Ok(()), Err)
}

/// All a record names: the dirs as [`remove`] does (a unit's scope is one of its leaves, so
/// its processes are killed first), then the systemd units stopped and reset.
pub fn remove_owned(o: &Owned) -> Result<()> {
    let mut first = remove(&o.leaves, &o.parents).err();
    for u in &o.units {
        if let Err(e) = super::systemd::stop(u) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The cgroup dirs nested in `dir` (not following anything but real subdirectories).
fn children(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Killed tasks of a frozen cgroup only die once thawed (v1 freezer, v2 cgroup.freeze).
fn thaw_tree(dir: &Path) {
    for (file, v) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
        let p = dir.join(file);
        if p.exists() {
            let _ = std::fs::write(&p, v);
        }
    }
    for c in children(dir) {
        thaw_tree(&c);
    }
}

fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    // v2 (5.14+): one write kills the whole subtree.
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    let mut first = None;
    for c in children(dir) {
        if let Err(e) = remove_tree(&c) {
            first.get_or_insert(e);
        }
    }
    if let Err(e) = super::remove_leaf(dir) {
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_tail_is_skipped() {
        let dir = std::env::temp_dir().join(format!("rrun-owned-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(FILE));
        let j = Journal::create(&dir).unwrap();
        let a = Path::new("/sys/fs/cgroup/memory/t/a");
        let b = Path::new("/sys/fs/cgroup/pids/t/a");
        let p = Path::new("/sys/fs/cgroup/memory/t");
        j.record(Kind::Leaf, [a, b]).unwrap();
        j.record(Kind::Parent, [p]).unwrap();
        j.record(Kind::Existed, [b]).unwrap();
        assert!(Journal::create(&dir).is_err(), "a record is started once");
        let mut data = std::fs::read(dir.join(FILE)).unwrap();
        assert_eq!(
            read(&dir),
            Owned {
                leaves: vec![a.into()],
                parents: vec![p.into()],
                units: vec![],
            }
        );
        // A crash inside the last write: that record is not taken.
        data.extend_from_slice(b"leaf\t/sys/fs/cgroup/cpu/t/");
        assert_eq!(parse(&data).leaves, vec![PathBuf::from(a)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unit_records() {
        let data = b"unit\tsystem.slice:docker-abc.scope\0unit\tsystem.slice:docker-abc.scope\0unit\tbad:x.scope\0unit\tsystem.slice:../x.scope\0unit\ta-b.slice:-c.scope\0leaf\t/sys/fs/cgroup/system.slice/docker-abc.scope\0";
        let o = parse(data);
        let names: Vec<(&str, &str)> = o
            .units
            .iter()
            .map(|u| (u.slice.as_str(), u.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("system.slice", "docker-abc.scope"),
                ("a-b.slice", "-c.scope")
            ]
        );
        assert_eq!(
            o.leaves,
            vec![PathBuf::from(
                "/sys/fs/cgroup/system.slice/docker-abc.scope"
            )]
        );
    }

    #[test]
    fn only_paths_under_the_cgroup_root() {
        let data = b"leaf\t/etc\0leaf\t/sys/fs/cgroup/x/../../../etc\0parent\trelative\0bogus\t/sys/fs/cgroup/y\0leaf\t/sys/fs/cgroup/pids/ok\0";
        let o = parse(data);
        assert_eq!(o.leaves, vec![PathBuf::from("/sys/fs/cgroup/pids/ok")]);
        assert!(o.parents.is_empty());
        assert_eq!(parse(b""), Owned::default());
        assert_eq!(parse(b"garbage without end"), Owned::default());
    }
}
