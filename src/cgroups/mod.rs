//! cgroups behind one interface: v1 (legacy), hybrid (v1 controllers plus a controller-less
//! unified hierarchy, joined as runc does) and v2. The parent creates and configures the cgroup
//! before init runs user code, puts init in it, and removes only the dirs it created.

pub mod ebpf;
pub mod owned;
mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    V1,
    Hybrid,
    V2,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Directory name inside the container's /sys/fs/cgroup ("cpu", "systemd", "unified").
    pub name: String,
    /// Controllers of this hierarchy (v1: "cpu", "name=systemd"; v2: those enabled).
    pub controllers: Vec<String>,
    /// Mount options to mount this hierarchy again inside a cgroup namespace.
    pub options: String,
    pub mount: PathBuf,
    /// The container's cgroup directory.
    pub dir: PathBuf,
    pub unified: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    pub mode: Mode,
    pub hierarchies: Vec<Hierarchy>,
    /// Directories this container created, parents first: only these are ever removed.
    pub created: Vec<PathBuf>,
    /// O_PATH fds of each hierarchy's container dir, held by `create` for what follows in the
    /// same process (limits, `Entry`): a file is then opened with one lookup instead of a walk
    /// of /sys/fs/cgroup/<controller>/<path>, whose every kernfs component takes the
    /// hierarchy's lock that concurrent creates' mkdirs hold for writing.
    #[serde(skip)]
    dir_fds: Vec<Option<std::sync::Arc<std::os::fd::OwnedFd>>>,
    /// Where `create` records each dir before making it (see [`owned`]).
    #[serde(skip)]
    journal: Option<std::sync::Arc<owned::Journal>>,
    /// The systemd scope this container's cgroup is (`--systemd-cgroup`), once rrun has
    /// started it: `delete` stops it, `update` sets its properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
    /// The scope `create` is to start around init (planned, not yet started).
    #[serde(skip)]
    want_unit: Option<systemd::Unit>,
}

/// Walks of a hierarchy `create` tries when a shared parent vanishes under it.
const WALK_ATTEMPTS: u32 = 10;

/// Which hierarchies a [`Cgroup::create_part`] makes. On v1 and hybrid hosts `create` makes
/// the cgroup in two parts: before the clone only the cgroup2 dir that CLONE_INTO_CGROUP needs
/// (hybrid), after it the v1 hierarchies with the limits, while init sets up its namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    All,
    /// The cgroup2 hierarchy (v2's only one, or hybrid's controller-less one).
    Unified,
    /// The v1 hierarchies, and the limits.
    Legacy,
}

impl Part {
    fn covers(self, h: &Hierarchy) -> bool {
        match self {
            Part::All => true,
            Part::Unified => h.unified,
            Part::Legacy => !h.unified,
        }
    }
}

/// `exec --cgroup` arguments: one path for every hierarchy, or `CONTROLLERS:PATH` each.
#[derive(Debug, Default)]
pub struct SubCgroups {
    pub all: Option<String>,
    pub by_controller: Vec<(String, String)>,
}

impl SubCgroups {
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.by_controller.is_empty()
    }

    /// runc's forms: `PATH` alone (once), or any number of `CTRL[,CTRL]:PATH`. A PATH is
    /// relative to the container's cgroup and may not leave it.
    pub fn parse(args: &[String]) -> Result<SubCgroups> {
        let path = |arg: &str, p: &str| -> Result<String> {
            let rel = p.trim_start_matches('/');
            if rel.is_empty() || rel.split('/').any(|c| c == ".." || c == ".") {
                bail!("--cgroup {arg:?}: the path must name a sub-cgroup below the container's");
            }
            Ok(rel.trim_end_matches('/').to_string())
        };
        let mut out = SubCgroups::default();
        if let [one] = args
            && !one.contains(':')
        {
            out.all = Some(path(one, one)?);
            return Ok(out);
        }
        for a in args {
            let Some((ctrls, p)) = a.split_once(':') else {
                bail!(
                    "invalid --cgroup argument {a:?}: with more than one, each needs a CONTROLLER: prefix"
                );
            };
            let p = path(a, p)?;
            for c in ctrls.split(',') {
                if c.is_empty() {
                    bail!("invalid --cgroup argument {a:?}: empty controller name");
                }
                if out.by_controller.iter().any(|(have, _)| have == c) {
                    bail!("invalid --cgroup argument {a:?}: controller {c} given twice");
                }
                out.by_controller.push((c.to_string(), p.clone()));
            }
        }
        Ok(out)
    }
}

/// How a new process enters the container's cgroup without the parent moving it. Writing a
/// pid to `cgroup.procs` takes the kernel's global cgroup_threadgroup_rwsem for writing, which
/// waits for an RCU grace period (7-14 ms on the bench host, the largest single cost of
/// `create`). A thread that moves only itself (`0` into a v1 `tasks` file) skips that lock, and
/// a v2 cgroup is entered at birth with CLONE_INTO_CGROUP. So the parent opens these before
/// the clone, the single-threaded child writes `0` to each `tasks` file first thing, and the
/// v2 directory (the whole tree on v2, the controller-less unified one on hybrid hosts) goes
/// to clone3.
pub struct Entry {
    /// cgroup2 directory for CLONE_INTO_CGROUP.
    pub v2_dir: Option<std::fs::File>,
    /// Each v1 hierarchy's `tasks` file, opened for writing.
    tasks: Vec<(std::fs::File, PathBuf)>,
}

impl Entry {
    /// The `tasks` files as fds to send to init, with their paths.
    pub fn tasks(&self) -> (Vec<std::os::fd::RawFd>, Vec<PathBuf>) {
        use std::os::fd::AsRawFd;
        self.tasks
            .iter()
            .map(|(f, p)| (f.as_raw_fd(), p.clone()))
            .unzip()
    }

    /// What init received: the `tasks` fds and their paths, in the same order.
    pub fn from_tasks(fds: Vec<std::os::fd::OwnedFd>, paths: Vec<PathBuf>) -> Result<Entry> {
        if fds.len() != paths.len() {
            bail!(
                "enter cgroup: {} tasks files named but {} fds received",
                paths.len(),
                fds.len()
            );
        }
        Ok(Entry {
            v2_dir: None,
            tasks: fds
                .into_iter()
                .map(std::fs::File::from)
                .zip(paths)
                .collect(),
        })
    }

    /// In the child, before it runs anything else: move this (single-threaded) process into
    /// every v1 hierarchy, then close the handles.
    pub fn enter_self(&self) -> Result<()> {
        self.write_tasks()?;
        self.close();
        Ok(())
    }

    /// [`Entry::enter_self`] with handles this process owns (received from the parent):
    /// they close when it is dropped.
    pub fn enter(self) -> Result<()> {
        self.write_tasks()
    }

    fn write_tasks(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        for (f, p) in &self.tasks {
            // SAFETY: write of a 1-byte buffer to an fd we own.
            let r = unsafe { libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            nix::errno::Errno::result(r)
                .map_err(|e| anyhow!("enter cgroup: write 0 to {}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// Close the handles without dropping (the child has a copy of the parent's memory).
    pub fn close(&self) {
        use std::os::fd::AsRawFd;
        for fd in self
            .tasks
            .iter()
            .map(|(f, _)| f.as_raw_fd())
            .chain(self.v2_dir.as_ref().map(|f| f.as_raw_fd()))
        {
            // SAFETY: closing fds of ours that nothing else uses afterwards.
            unsafe { libc::close(fd) };
        }
    }
}

fn open_at(dir: &std::os::fd::OwnedFd, name: &str, flags: i32) -> std::io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let c = std::ffi::CString::new(name)?;
    // SAFETY: a valid C string and a directory fd we hold; the new fd is owned by the File.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is ours.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

fn open_dir_at(dir: &std::os::fd::OwnedFd, name: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    open_at(dir, name, libc::O_PATH | libc::O_DIRECTORY).map(Into::into)
}

/// Whether v2's `cgroup.freeze` says 1 or v1's `freezer.state` is not THAWED.
pub fn frozen_by_file(p: &Path) -> bool {
    let mut buf = [0u8; 64];
    let Some(n) = crate::util::read_small(&p.to_string_lossy(), &mut buf) else {
        return false;
    };
    match std::str::from_utf8(&buf[..n]).map(str::trim) {
        Ok(s) if p.ends_with("cgroup.freeze") => s == "1",
        Ok(s) => s != "THAWED",
        Err(_) => false,
    }
}

fn statfs_magic(p: &str) -> Option<i64> {
    nix::sys::statfs::statfs(p)
        .ok()
        .map(|s| s.filesystem_type().0)
}

pub fn detect() -> Mode {
    const CGROUP2: i64 = 0x6367_7270;
    if statfs_magic(CGROUP_ROOT) == Some(CGROUP2) {
        Mode::V2
    } else if statfs_magic("/sys/fs/cgroup/unified") == Some(CGROUP2) {
        Mode::Hybrid
    } else {
        Mode::V1
    }
}

/// One cgroup mount: (mount root, mount point, fstype, super options).
type CgroupMount = (String, String, String, String);

/// The cgroup mounts from /proc/self/mountinfo.
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        if !seen.insert(pre[2].to_string()) {
            continue; // the same hierarchy mounted twice
        }
        out.push((
            unescape(pre[3]),
            unescape(pre[4]),
            fstype.to_string(),
            post[2].to_string(),
        ));
    }
    out
}

/// The cgroup mounts without /proc/self/mountinfo, when every hierarchy /proc/self/cgroup
/// names is mounted where systemd puts it (`/sys/fs/cgroup/<controllers>`, cgroup2 at
/// `/sys/fs/cgroup` or hybrid's `unified`): statmount(2) of each of those paths. mountinfo
/// costs the kernel a line for every mount of the namespace (hundreds on a busy host: more
/// than a millisecond per create), this a call per hierarchy. None (read mountinfo) when the
/// kernel cannot say or any hierarchy is not found there, mounted whole or not.
fn mounts_where_expected(mode: Mode, own: &str) -> Option<Vec<CgroupMount>> {
    let mut out: Vec<(u64, CgroupMount)> = Vec::new();
    for (ctrls, _) in own_cgroups(own) {
        let (point, fstype) = if ctrls.is_empty() {
            match mode {
                Mode::V2 => (CGROUP_ROOT.to_string(), "cgroup2"),
                Mode::Hybrid => (format!("{CGROUP_ROOT}/unified"), "cgroup2"),
                Mode::V1 => continue,
            }
        } else {
            if mode == Mode::V2 {
                continue;
            }
            let dir = ctrls.join(",");
            let dir = dir.strip_prefix("name=").unwrap_or(&dir);
            (format!("{CGROUP_ROOT}/{dir}"), "cgroup")
        };
        let m = crate::sys::mount_facts(&point)?;
        let opts: Vec<&str> = m.opts.split(',').collect();
        if m.fs_type != fstype
            || m.point != point
            || !ctrls.iter().all(|c| opts.contains(&c.as_str()))
        {
            return None;
        }
        // mountinfo's super options start with the read-only state; the filter drops it.
        out.push((m.id, (m.root, m.point, m.fs_type, m.opts)));
    }
    // Oldest first, as mountinfo lists them.
    out.sort_by_key(|(id, _)| *id);
    Some(out.into_iter().map(|(_, m)| m).collect())
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The caller's own cgroup per hierarchy: (controllers, path) from /proc/self/cgroup.
fn own_cgroups(proc_cgroup: &str) -> Vec<(Vec<String>, String)> {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let ctrls = if ctrls.is_empty() {
                vec![]
            } else {
                ctrls.split(',').map(String::from).collect()
            };
            Some((ctrls, path.to_string()))
        })
        .collect()
}

fn join_under(base: &Path, path: &str) -> PathBuf {
    let cleaned = crate::rootfs::clean(path);
    base.join(cleaned.trim_start_matches('/'))
}

impl Cgroup {
    pub fn is_v2(&self) -> bool {
        self.mode == Mode::V2
    }

    /// Where the container's cgroup goes, as runc does: an absolute cgroupsPath under each
    /// hierarchy's root, a relative one under the caller's cgroup, none as `<caller>/<id>`.
    pub fn plan(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        let mode = detect();
        let own = crate::util::read_proc("/proc/self/cgroup").context("read /proc/self/cgroup")?;
        let mounts = match mounts_where_expected(mode, &own) {
            Some(m) => m,
            None => cgroup_mounts(
                &crate::util::read_proc("/proc/self/mountinfo")
                    .context("read /proc/self/mountinfo")?,
            ),
        };
        Self::plan_with(mode, mounts, &own, cgroups_path, id)
    }

    #[cfg(test)]
    pub fn plan_from(
        mode: Mode,
        mountinfo: &str,
        own: &str,
        cgroups_path: Option<&str>,
        id: &str,
    ) -> Result<Cgroup> {
        Self::plan_with(mode, cgroup_mounts(mountinfo), own, cgroups_path, id)
    }

    fn plan_with(
        mode: Mode,
        mounts: Vec<CgroupMount>,
        own: &str,
        cgroups_path: Option<&str>,
        id: &str,
    ) -> Result<Cgroup> {
        let path = cgroups_path.filter(|p| !p.is_empty()).unwrap_or(id);
        if path.contains(':') && !path.starts_with('/') {
            bail!(
                "config.json: linux.cgroupsPath: {path:?} looks like a systemd slice:prefix:name path: pass --systemd-cgroup to have systemd make the cgroup, or give a cgroupfs path"
            );
        }
        let own = own_cgroups(own);
        let mut hierarchies = Vec::new();
        for (root, mnt, fstype, opts) in mounts {
            let unified = fstype == "cgroup2";
            if unified && mode == Mode::V1 {
                continue;
            }
            if !unified && mode == Mode::V2 {
                continue;
            }
            let controllers: Vec<String> = if unified {
                std::fs::read_to_string(Path::new(&mnt).join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            } else {
                opts.split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro")
                            && !o.starts_with("release_agent")
                            && *o != "clone_children"
                            && *o != "noprefix"
                            && *o != "xattr"
                    })
                    .map(String::from)
                    .collect()
            };
            if !unified && controllers.is_empty() {
                continue;
            }
            let mount = PathBuf::from(&mnt);
            let dir = if path.starts_with('/') {
                join_under(&mount, path)
            } else {
                let mine = own
                    .iter()
                    .find(|(c, _)| {
                        if unified {
                            c.is_empty()
                        } else {
                            !c.is_empty()
                                && c.iter().all(|x| controllers.contains(x))
                                && controllers.iter().all(|x| c.contains(x))
                        }
                    })
                    .map(|(_, p)| p.clone())
                    .unwrap_or_else(|| "/".into());
                // The caller's path is relative to the hierarchy root; strip the mount's root.
                let rel = mine
                    .strip_prefix(root.as_str())
                    .unwrap_or(&mine)
                    .to_string();
                join_under(&join_under(&mount, &rel), path)
            };
            let name = mount
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let options = if unified {
                String::new()
            } else {
                controllers.join(",")
            };
            hierarchies.push(Hierarchy {
                name,
                controllers,
                options,
                mount,
                dir,
                unified,
            });
        }
        if hierarchies.is_empty() {
            bail!("no cgroup hierarchy is mounted under {CGROUP_ROOT}");
        }
        Ok(Cgroup {
            mode,
            hierarchies,
            created: Vec::new(),
            dir_fds: Vec::new(),
            journal: None,
            systemd: None,
            want_unit: None,
        })
    }

    /// The systemd driver's plan (`--systemd-cgroup`): the scope `slice:prefix:name` names,
    /// whose cgroup systemd makes around init once it is cloned ([`Cgroup::start_unit`]).
    pub fn plan_systemd(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        if !systemd::running() {
            return Err(systemd::not_running());
        }
        let unit = systemd::parse_path(cgroups_path, id)?;
        let mode = detect();
        if mode != Mode::V2 {
            bail!(
                "--systemd-cgroup: this host's cgroups are {} (not the unified cgroup v2 \
                 hierarchy); rrun's systemd driver works on cgroup v2 hosts: run without \
                 --systemd-cgroup (rrun then manages cgroupfs itself)",
                if mode == Mode::V1 {
                    "v1"
                } else {
                    "hybrid v1/v2"
                }
            );
        }
        // Rootless: the unit is the user's manager's, under its own cgroup.
        let base = if crate::rootless::active() {
            systemd::user_manager_cgroup(&systemd::user_manager_socket()?)?
        } else {
            String::new()
        };
        let path = format!(
            "{}{}",
            base.trim_end_matches('/'),
            systemd::cgroup_of(&unit)
        );
        let mut cg = Self::plan(Some(&path), id)?;
        cg.want_unit = Some(unit);
        Ok(cg)
    }

    /// Whether systemd makes this cgroup (and moves init into it): nothing to make or enter
    /// before the clone.
    pub fn by_systemd(&self) -> bool {
        self.want_unit.is_some() || self.systemd.is_some()
    }

    /// Start the planned scope around `pid` with the limits systemd owns as its properties
    /// (and `org.systemd.property.*` annotations), then write the rest to its files and load
    /// the device filter, as runc's systemd driver does.
    pub fn start_unit(
        &mut self,
        pid: i32,
        resources: Option<&LinuxResources>,
        devices: &[crate::rootfs::DevicePlan],
        annotations: &std::collections::BTreeMap<String, String>,
        id: &str,
    ) -> Result<()> {
        let Some(unit) = self.want_unit.clone() else {
            bail!("no systemd unit planned for this cgroup");
        };
        let mut res = resources.cloned().unwrap_or_default();
        add_default_devices(&mut res, devices);
        let writes = v2::writes(&res)?;
        v2::check_controllers(
            &res,
            &self.hierarchies[0]
                .controllers
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )?;
        let mut props = systemd::resource_properties(&writes)?;
        let rules = res.devices().clone().unwrap_or_default();
        // A user's manager loads no device programs (nor may we: see ebpf::apply).
        if !crate::rootless::active() {
            props.extend(systemd::device_properties(&rules).context("linux.resources.devices")?);
        }
        props.extend(systemd::annotation_properties(annotations)?);
        systemd::start(&unit, pid, &format!("rrun container {id}"), props)?;
        // Recorded once started (a unit refused as someone else's is never ours to stop). A
        // create killed in between leaves no unit: init dies with it (PDEATHSIG), and systemd
        // stops and collects a scope that has no process left.
        self.systemd = Some(unit.clone());
        if let Some(j) = &self.journal {
            j.record_unit(&unit)?;
            j.record(owned::Kind::Leaf, [self.hierarchies[0].dir.as_path()])?;
        }
        let dir = &self.hierarchies[0].dir;
        let fd: std::os::fd::OwnedFd = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(dir)
                .map_err(|e| {
                    anyhow!(
                        "open cgroup {} of unit {}: {}",
                        dir.display(),
                        unit.name,
                        crate::sys::io_errno(&e)
                    )
                })?
                .into()
        };
        self.dir_fds = vec![Some(std::sync::Arc::new(fd))];
        self.apply(&res)?;
        ebpf::apply(dir, &rules).context("linux.resources.devices")?;
        Ok(())
    }

    /// `update`: the unit's properties first (they outlive a daemon-reload), then the files.
    pub fn update(&self, res: &LinuxResources) -> Result<()> {
        if let Some(unit) = &self.systemd {
            let props = systemd::resource_properties(&v2::writes(res)?)?;
            systemd::set(unit, props)?;
        }
        self.apply(res)
    }

    fn find(&self, controller: &str) -> Option<&Hierarchy> {
        self.find_index(controller).map(|i| &self.hierarchies[i])
    }

    fn find_index(&self, controller: &str) -> Option<usize> {
        if self.mode == Mode::V2 {
            return (!self.hierarchies.is_empty()).then_some(0);
        }
        self.hierarchies
            .iter()
            .position(|h| !h.unified && h.controllers.iter().any(|c| c == controller))
    }

    /// A file of hierarchy `i`'s container dir: through the dir fd `create` holds, else by path.
    fn open_file(&self, i: usize, file: &str, flags: i32) -> std::io::Result<std::fs::File> {
        match self.dir_fds.get(i).and_then(Option::as_ref) {
            Some(fd) => open_at(fd, file, flags),
            None => {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .read(flags & libc::O_ACCMODE == libc::O_RDONLY)
                    .write(flags & libc::O_ACCMODE != libc::O_RDONLY)
                    .custom_flags(flags & !libc::O_ACCMODE)
                    .open(self.hierarchies[i].dir.join(file))
            }
        }
    }

    /// Create the directories of the hierarchies of `part` (recording which are new) and,
    /// unless only the cgroup2 one, apply the limits. On failure the dirs made so far stay in
    /// `created`, for the caller to destroy once no process is in them.
    pub fn create_part(
        &mut self,
        resources: Option<&LinuxResources>,
        devices: &[crate::rootfs::DevicePlan],
        part: Part,
    ) -> Result<()> {
        self.create_inner(resources, devices, part)
    }

    /// Whether `create` makes this cgroup in two parts, the v1 one after the clone.
    pub fn split_create(&self) -> bool {
        self.mode != Mode::V2
    }

    fn create_inner(
        &mut self,
        resources: Option<&LinuxResources>,
        devices: &[crate::rootfs::DevicePlan],
        part: Part,
    ) -> Result<()> {
        self.dir_fds.resize(self.hierarchies.len(), None);
        if let Some(j) = &self.journal {
            let leaves = self.hierarchies.iter().filter(|h| part.covers(h));
            j.record(owned::Kind::Leaf, leaves.map(|h| h.dir.as_path()))?;
        }
        for i in 0..self.hierarchies.len() {
            let h = self.hierarchies[i].clone();
            if !part.covers(&h) {
                continue;
            }
            // A shared parent looked up in a walk can be removed by the delete of the
            // container that made it before our dir is in it: walk again, making it anew.
            let mut attempt = 1;
            let fd = loop {
                if let Some(fd) = self.walk(&h, attempt < WALK_ATTEMPTS)? {
                    break fd;
                }
                attempt += 1;
            };
            self.dir_fds[i] = Some(std::sync::Arc::new(fd));
        }
        self.refuse_busy(part)?;
        if part == Part::Unified {
            return Ok(());
        }
        self.refuse_frozen()?;
        let mut res = resources.cloned().unwrap_or_default();
        add_default_devices(&mut res, devices);
        self.apply(&res)?;
        if self.mode == Mode::V2 {
            // v2 has no devices files: the rules become an eBPF program on the cgroup.
            let rules = res.devices().clone().unwrap_or_default();
            ebpf::apply(&self.hierarchies[0].dir, &rules).context("linux.resources.devices")?;
        }
        Ok(())
    }

    /// A cgroup that existed before and has processes belongs to someone else: two containers
    /// in one cgroup would kill, freeze and limit each other. Refused, in runc's words. Only a
    /// dir this create did not make is read (one hierarchy is enough: runc reads one too).
    fn refuse_busy(&self, part: Part) -> Result<()> {
        let Some(i) = (0..self.hierarchies.len()).find(|&i| {
            part.covers(&self.hierarchies[i]) && !self.created.contains(&self.hierarchies[i].dir)
        }) else {
            return Ok(());
        };
        let mut s = String::new();
        if let Ok(mut f) = self.open_file(i, "cgroup.procs", libc::O_RDONLY) {
            use std::io::Read;
            let _ = f.read_to_string(&mut s);
        }
        let n = s.lines().filter(|l| !l.trim().is_empty()).count();
        if n > 0 {
            bail!(
                "container's cgroup is not empty: {n} process(es) found in {} (linux.cgroupsPath names a cgroup in use)",
                self.hierarchies[i].dir.display()
            );
        }
        Ok(())
    }

    /// A container made in a frozen cgroup (its own dir joined while frozen, or a frozen
    /// parent) would never get to run: refused, as runc does.
    fn refuse_frozen(&self) -> Result<()> {
        let (i, file) = if self.mode == Mode::V2 {
            (0, "cgroup.events")
        } else {
            match self.find_index("freezer") {
                Some(i) => (i, "freezer.state"),
                None => return Ok(()),
            }
        };
        let mut s = String::new();
        if let Ok(mut f) = self.open_file(i, file, libc::O_RDONLY) {
            use std::io::Read;
            let _ = f.read_to_string(&mut s);
        }
        let frozen = if self.mode == Mode::V2 {
            s.lines().any(|l| l.trim() == "frozen 1")
        } else {
            matches!(s.trim(), "FROZEN" | "FREEZING")
        };
        if frozen {
            bail!(
                "cgroup {} is frozen ({file}: {}): a container cannot be created in a frozen cgroup; thaw it (or its parent) first",
                self.hierarchies[i].dir.display(),
                if self.mode == Mode::V2 {
                    "frozen 1"
                } else {
                    s.trim()
                }
            );
        }
        Ok(())
    }

    /// One walk from `h`'s mount to the container's dir, making what is missing (recorded in
    /// `created`) and filling new v1 cpusets. None when a shared parent vanished under it
    /// and `retry` allows walking again.
    fn walk(&mut self, h: &Hierarchy, retry: bool) -> Result<Option<std::os::fd::OwnedFd>> {
        let rel = h.dir.strip_prefix(&h.mount).unwrap_or(&h.dir);
        let n = rel.components().count();
        let open_err = |p: &Path, e: std::io::Error| {
            anyhow!("open cgroup {}: {}", p.display(), crate::sys::io_errno(&e))
        };
        let vanished = |e: Option<i32>| retry && e == Some(libc::ENOENT);
        let mut cur = h.mount.clone();
        let mut cur_fd: std::os::fd::OwnedFd = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(&cur)
                .map_err(|e| open_err(&cur, e))?
                .into()
        };
        let cpuset = h.controllers.iter().any(|c| c == "cpuset") && !h.unified;
        // The cpus/mems of `cur` when a walk step read them (they were not empty).
        let mut known: Option<Cpuset> = None;
        for (k, comp) in rel.components().enumerate() {
            let parent = cur.clone();
            let parent_fd = cur_fd;
            cur.push(comp);
            let name = comp.as_os_str().to_string_lossy();
            if self.mode == Mode::V2 {
                enable_controllers(&parent_fd, &parent)?;
            }
            // A parent dir (shared by many containers) usually exists: look it up, which
            // takes no lock that concurrent creates' mkdirs in it hold. The container's own
            // dir usually does not: make it at once.
            let mut fresh = false;
            let existing = if k + 1 < n {
                open_dir_at(&parent_fd, &name).ok()
            } else {
                None
            };
            cur_fd = match existing {
                Some(fd) => fd,
                None => {
                    if k + 1 < n
                        && let Some(j) = &self.journal
                    {
                        j.record(owned::Kind::Parent, [cur.as_path()])?;
                    }
                    let c = std::ffi::CString::new(name.as_bytes())?;
                    // SAFETY: a valid C string and a directory fd we hold.
                    let r = unsafe {
                        libc::mkdirat(
                            std::os::fd::AsRawFd::as_raw_fd(&parent_fd),
                            c.as_ptr(),
                            0o755,
                        )
                    };
                    match nix::errno::Errno::result(r) {
                        Ok(_) => {
                            self.created.push(cur.clone());
                            fresh = true;
                        }
                        Err(nix::errno::Errno::EEXIST) => {
                            if k + 1 == n
                                && let Some(j) = &self.journal
                            {
                                j.record(owned::Kind::Existed, [cur.as_path()])?;
                            }
                        }
                        Err(e) if vanished(Some(e as i32)) => return Ok(None),
                        Err(e) => return Err(anyhow!("create cgroup {}: {e}", cur.display())),
                    }
                    match open_dir_at(&parent_fd, &name) {
                        Ok(fd) => fd,
                        Err(e) if vanished(e.raw_os_error()) => return Ok(None),
                        Err(e) => return Err(open_err(&cur, e)),
                    }
                }
            };
            // Also for a parent that exists: another create may have made it a moment ago
            // and not filled it yet (and one being removed refuses the copy: walk again).
            if cpuset {
                let r = copy_cpuset((&parent_fd, &parent), (&cur_fd, &cur), known.take(), fresh);
                match r {
                    Ok(v) => known = Some(v),
                    Err(_) if retry && k + 1 < n => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Some(cur_fd))
    }

    /// Write the limits of `res` into the cgroup files. A controller the config needs but the
    /// host lacks is an error naming the field.
    pub fn apply(&self, res: &LinuxResources) -> Result<()> {
        let available: Vec<&str> = if self.mode == Mode::V2 {
            self.hierarchies[0]
                .controllers
                .iter()
                .map(String::as_str)
                .collect()
        } else {
            self.hierarchies
                .iter()
                .filter(|h| !h.unified)
                .flat_map(|h| h.controllers.iter().map(String::as_str))
                .collect()
        };
        // Consecutive writes to one file (devices.allow gets a rule per write) share an fd.
        let mut last: Option<(PathBuf, std::fs::File)> = None;
        let write = |w: &v1::Write| -> std::io::Result<()> {
            use std::io::Write as _;
            let i = self.find_index(w.controller).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no {} controller", w.controller),
                )
            })?;
            let p = self.hierarchies[i].dir.join(&w.file);
            let f = match &mut last {
                Some((lp, f)) if *lp == p => f,
                _ => {
                    let f =
                        self.open_file(i, &w.file, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
                    &mut last.insert((p, f)).1
                }
            };
            f.write_all(w.value.as_bytes())
        };
        if self.mode == Mode::V2 {
            v2::check_controllers(res, &available)?;
            v2::apply(&v2::writes(res)?, write)
        } else {
            v1::check_controllers(res, &available)?;
            v1::apply(&v1::writes(res)?, write)
        }
    }

    /// Handles for a child to enter the container's cgroup (the hierarchies of `part`) by
    /// itself: see [`Entry`].
    pub fn entry(&self, part: Part) -> Result<Entry> {
        let mut e = Entry {
            v2_dir: None,
            tasks: Vec::new(),
        };
        for (i, h) in self.hierarchies.iter().enumerate() {
            if !part.covers(h) {
                continue;
            }
            if h.unified {
                let f = match self.dir_fds.get(i).and_then(Option::as_ref) {
                    Some(fd) => open_at(fd, ".", libc::O_RDONLY | libc::O_DIRECTORY),
                    None => std::fs::File::open(&h.dir),
                }
                .map_err(|err| {
                    anyhow!(
                        "open cgroup {}: {}",
                        h.dir.display(),
                        crate::sys::io_errno(&err)
                    )
                })?;
                e.v2_dir = Some(f);
            } else {
                let p = h.dir.join("tasks");
                let f = self.open_file(i, "tasks", libc::O_WRONLY).map_err(|err| {
                    anyhow!("open {}: {}", p.display(), crate::sys::io_errno(&err))
                })?;
                e.tasks.push((f, p));
            }
        }
        Ok(e)
    }

    /// [`Cgroup::entry`] into sub-cgroups of the container's (`exec --cgroup`), which must
    /// exist. On a hybrid host the controller-less cgroup2 dir has no such sub-cgroup unless
    /// one was made there too: then the process stays in the container's own.
    pub fn entry_sub(&self, sub: &SubCgroups) -> Result<Entry> {
        if sub.is_empty() {
            return self.entry(Part::All);
        }
        if self.mode == Mode::V2 && sub.all.is_none() {
            bail!(
                "exec --cgroup: CONTROLLER:PATH is for cgroup v1 hierarchies; on cgroup v2 give the path alone"
            );
        }
        let mut e = Entry {
            v2_dir: None,
            tasks: Vec::new(),
        };
        for h in &self.hierarchies {
            let rel = sub.all.as_deref().or_else(|| {
                sub.by_controller
                    .iter()
                    .find(|(c, _)| h.controllers.iter().any(|hc| hc == c))
                    .map(|(_, p)| p.as_str())
            });
            let mut dir = match rel {
                Some(r) => h.dir.join(r),
                None => h.dir.clone(),
            };
            if rel.is_some() && !dir.is_dir() {
                if h.unified && self.mode == Mode::Hybrid {
                    crate::logging::debug(&format!(
                        "exec --cgroup: no {}: staying in {}",
                        dir.display(),
                        h.dir.display()
                    ));
                    dir = h.dir.clone();
                } else {
                    bail!(
                        "exec --cgroup: {}: no such cgroup (make it under the container's first)",
                        dir.display()
                    );
                }
            }
            let open = |p: &Path, w: bool| {
                std::fs::OpenOptions::new()
                    .read(!w)
                    .write(w)
                    .open(p)
                    .map_err(|err| anyhow!("open {}: {}", p.display(), crate::sys::io_errno(&err)))
            };
            if h.unified {
                e.v2_dir = Some(open(&dir, false)?);
            } else {
                let t = dir.join("tasks");
                e.tasks.push((open(&t, true)?, t));
            }
        }
        Ok(e)
    }

    fn main_dir(&self) -> &Path {
        let h = self
            .find("pids")
            .or_else(|| self.find("freezer"))
            .or_else(|| self.find("memory"))
            .unwrap_or(&self.hierarchies[0]);
        &h.dir
    }

    /// Every pid in the container's cgroup.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let p = self.main_dir().join("cgroup.procs");
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(anyhow!(
                "read {}: {}",
                p.display(),
                crate::sys::io_errno(&e)
            )),
        }
    }

    /// Signal every process of the cgroup and its sub-cgroups (`kill --all`, and KILL without
    /// a pid namespace of its own). KILL on v2 is one write to cgroup.kill (nested cgroups
    /// too); otherwise the cgroup is frozen while it is signalled, so no fork escapes the
    /// list, and left frozen only if it was (not after KILL, which a frozen task would not act
    /// on). Returns how many processes were signalled.
    pub fn signal_all(&self, sig: i32) -> Result<usize> {
        if sig == libc::SIGKILL && self.mode == Mode::V2 {
            let f = self.hierarchies[0].dir.join("cgroup.kill");
            if std::fs::write(&f, "1").is_ok() {
                return Ok(self.all_procs().len());
            }
        }
        let was = self.is_frozen();
        // A freeze that did not finish (tasks in D state) may still have been written: thaw
        // whenever one was tried, so the container is never left paused by a kill.
        let tried = sig != 0;
        if tried {
            // Best effort: signalling goes on without a freezer (v1 without the controller).
            let _ = self.set_frozen(true);
        }
        let mut n = 0;
        for pid in self.all_procs() {
            // SAFETY: kill(2) with a pid read from the container's cgroup and a valid signal.
            if unsafe { libc::kill(pid, sig) } == 0 {
                n += 1;
            }
        }
        if tried
            && (!was || sig == libc::SIGKILL)
            && let Err(e) = self.set_frozen(false)
        {
            crate::logging::warn(&format!("thaw after signalling the cgroup: {e:#}"));
        }
        Ok(n)
    }

    /// Every pid of the container's cgroup and of the sub-cgroups below it (`exec --cgroup`).
    fn all_procs(&self) -> Vec<i32> {
        fn walk(dir: &Path, out: &mut Vec<i32>) {
            if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.main_dir(), &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn is_frozen(&self) -> bool {
        if self.mode == Mode::V2 {
            return frozen_by_file(&self.hierarchies[0].dir.join("cgroup.freeze"));
        }
        self.find("freezer")
            .is_some_and(|h| frozen_by_file(&h.dir.join("freezer.state")))
    }

    /// Freeze (pause) or thaw (resume) every process, and wait until the kernel says so.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        let (file, want, check_file): (PathBuf, &str, PathBuf) = if self.mode == Mode::V2 {
            let d = &self.hierarchies[0].dir;
            (
                d.join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
                d.join("cgroup.events"),
            )
        } else {
            let h = self.find("freezer").ok_or_else(|| {
                anyhow!("pause/resume needs the freezer controller, which is not mounted")
            })?;
            let f = h.dir.join("freezer.state");
            (f.clone(), if frozen { "FROZEN" } else { "THAWED" }, f)
        };
        for attempt in 0..1000 {
            // v1 can stay in FREEZING while tasks are busy: write again, as runc does.
            if attempt % 10 == 0 {
                std::fs::write(&file, want).map_err(|e| {
                    anyhow!(
                        "write {want} to {}: {}",
                        file.display(),
                        crate::sys::io_errno(&e)
                    )
                })?;
            }
            let s = std::fs::read_to_string(&check_file).unwrap_or_default();
            let done = if self.mode == Mode::V2 {
                s.lines()
                    .any(|l| l == format!("frozen {}", if frozen { 1 } else { 0 }))
            } else {
                s.trim() == want
            };
            if done {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        bail!("{} did not reach {want}", check_file.display())
    }

    /// Record each dir in `journal` before making it (see [`owned`]).
    pub fn set_journal(&mut self, journal: owned::Journal) {
        self.journal = Some(std::sync::Arc::new(journal));
    }

    /// Kill what is left, then remove the container dirs (nested cgroups first, retrying
    /// EBUSY) and the parents this container created, never one it did not. `also` adds what
    /// the create's record names (a create killed before it saved its `created` list).
    pub fn destroy(&self, also: &owned::Owned) -> Result<()> {
        let mut units: Vec<&systemd::Unit> = also.units.iter().collect();
        if let Some(u) = &self.systemd
            && !units.contains(&u)
        {
            units.push(u);
        }
        if !units.is_empty() {
            // Killed first (a stop would send SIGTERM and wait for what ignores it), then
            // the units stopped and reset, then whatever dir systemd left.
            let dirs: Vec<PathBuf> = units
                .iter()
                .map(|u| join_under(&self.hierarchies[0].mount, &systemd::cgroup_of(u)))
                .collect();
            let r = owned::remove(&dirs, &[]);
            let mut first = r.err();
            for u in &units {
                if let Err(e) = systemd::stop(u) {
                    first.get_or_insert(e);
                }
            }
            if let Err(e) = owned::remove(&dirs, &[]) {
                first.get_or_insert(e);
            }
            if let Some(e) = first {
                return Err(e);
            }
        }
        let mut leaves: Vec<PathBuf> = self
            .hierarchies
            .iter()
            .filter(|h| self.created.contains(&h.dir))
            .map(|h| h.dir.clone())
            .collect();
        let mut parents: Vec<PathBuf> = self
            .created
            .iter()
            .filter(|d| !leaves.contains(d))
            .cloned()
            .collect();
        leaves.extend(
            also.leaves
                .iter()
                .filter(|l| !leaves.contains(l))
                .cloned()
                .collect::<Vec<_>>(),
        );
        parents.extend(also.parents.iter().cloned());
        owned::remove(&leaves, &parents)
    }
}

/// The device rules a container always gets after its own (as runc does): mknod of anything,
/// the default devices, ptys, and every `linux.devices` entry.
fn add_default_devices(res: &mut LinuxResources, devices: &[crate::rootfs::DevicePlan]) {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType as T};
    let rule = |typ: T, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    let mut list = res.devices().clone().unwrap_or_default();
    // FIFOs need no device rule (runc gives them none).
    for d in devices
        .iter()
        .filter(|d| d.kind != nix::sys::stat::SFlag::S_IFIFO)
    {
        let typ = if d.kind == nix::sys::stat::SFlag::S_IFBLK {
            T::B
        } else {
            T::C
        };
        list.push(rule(typ, Some(d.major as i64), Some(d.minor as i64), "rwm"));
    }
    list.push(rule(T::C, None, None, "m"));
    list.push(rule(T::B, None, None, "m"));
    for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        list.push(rule(T::C, Some(maj), Some(min), "rwm"));
    }
    list.push(rule(T::C, Some(136), None, "rwm"));
    res.set_devices(Some(list));
}

fn remove_leaf(dir: &Path) -> Result<()> {
    for attempt in 0..100 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => {
                if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                if attempt == 99 {
                    return Err(anyhow!(
                        "remove cgroup {}: {}",
                        dir.display(),
                        crate::sys::io_errno(&e)
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(if attempt < 10 {
                    2
                } else {
                    20
                }));
            }
            Err(e) => {
                return Err(anyhow!(
                    "remove cgroup {}: {}",
                    dir.display(),
                    crate::sys::io_errno(&e)
                ));
            }
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with no cpus and mems; a task cannot join it until they are
/// copied from the parent.
/// (dir fd, its path for messages) pairs: cpuset.cpus/mems of a new dir start empty on v1 and
/// must be filled from the parent before a task can join.
type DirRef<'a> = (&'a std::os::fd::OwnedFd, &'a Path);

/// A cgroup file relative to its dir fd (see [`crate::util::read_text`]).
fn read_at(d: DirRef, f: &str) -> Result<String> {
    open_at(d.0, f, libc::O_RDONLY)
        .and_then(|mut h| crate::util::read_text(&mut h, 512))
        .map_err(|e| {
            anyhow!(
                "read {}: {}",
                d.1.join(f).display(),
                crate::sys::io_errno(&e)
            )
        })
}

fn write_at(d: DirRef, f: &str, v: &str) -> Result<()> {
    use std::io::Write;
    open_at(d.0, f, libc::O_WRONLY | libc::O_TRUNC)
        .and_then(|mut h| h.write_all(v.as_bytes()))
        .map_err(|e| {
            anyhow!(
                "write {}: {}",
                d.1.join(f).display(),
                crate::sys::io_errno(&e)
            )
        })
}

/// A v1 cpuset's `cpuset.cpus` and `cpuset.mems`, trimmed.
type Cpuset = [String; 2];

/// Make sure `dir` has cpus and mems, copying the parent's where it has none, and return
/// them. `parent_known` holds the parent's when the walk read them one step up; a `fresh`
/// dir (made by this walk) is known to be empty, so it is not read first. Each file costs
/// one open per level instead of three: a kernfs open is most of a cgroup file's price.
fn copy_cpuset(
    parent: DirRef,
    dir: DirRef,
    parent_known: Option<Cpuset>,
    fresh: bool,
) -> Result<Cpuset> {
    const FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];
    let mut out: Cpuset = Default::default();
    for (i, f) in FILES.into_iter().enumerate() {
        if !fresh {
            let cur = read_at(dir, f).unwrap_or_default();
            if !cur.trim().is_empty() {
                out[i] = cur.trim().to_string();
                continue;
            }
        }
        let v = match &parent_known {
            Some(k) => k[i].clone(),
            None => read_at(parent, f)?.trim().to_string(),
        };
        write_at(dir, f, &v)?;
        out[i] = v;
    }
    Ok(out)
}

/// v2: make every available controller usable by the children of `dir`.
fn enable_controllers(fd: &std::os::fd::OwnedFd, dir: &Path) -> Result<()> {
    let d = (fd, dir);
    let avail = read_at(d, "cgroup.controllers").unwrap_or_default();
    let enabled = read_at(d, "cgroup.subtree_control").unwrap_or_default();
    let want: Vec<String> = avail
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    let want = want.join(" ");
    let r = {
        use std::io::Write;
        open_at(fd, "cgroup.subtree_control", libc::O_WRONLY | libc::O_TRUNC)
            .and_then(|mut h| h.write_all(want.as_bytes()))
    };
    match r {
        Ok(()) => Ok(()),
        // Rootless: above the subtree delegated to us, what is enabled is the delegator's
        // choice (a limit whose controller is missing fails on its own file).
        Err(e)
            if crate::rootless::active()
                && matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) =>
        {
            crate::logging::debug(&format!(
                "rootless: controllers {want} not enabled in {} (not ours): {}",
                dir.display(),
                crate::sys::io_errno(&e)
            ));
            Ok(())
        }
        Err(e) => Err(anyhow!(
            "enable controllers {want}: write {}: {}",
            dir.join("cgroup.subtree_control").display(),
            crate::sys::io_errno(&e)
        )),
    }
}

/// Fixtures shared by the v1 and v2 table tests.
#[cfg(test)]
pub(crate) mod testutil {
    use anyhow::Result;
    use oci_spec::runtime::LinuxResources;

    pub type Row = (&'static str, String, String);
    type Writes = fn(&LinuxResources) -> Result<Vec<super::v1::Write>>;

    pub fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).expect("valid LinuxResources JSON")
    }

    pub fn table(writes: Writes, json: &str) -> Vec<Row> {
        writes(&res(json))
            .expect("writes")
            .into_iter()
            .map(|w| (w.controller, w.file, w.value))
            .collect()
    }

    pub fn t(c: &'static str, f: &str, v: &str) -> Row {
        (c, f.to_string(), v.to_string())
    }

    pub fn err(writes: Writes, json: &str) -> String {
        format!("{:#}", writes(&res(json)).expect_err("should fail"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statmount path finds this host's hierarchies exactly as mountinfo does, and the
    /// plans made from either are the same.
    #[test]
    fn statmount_agrees_with_mountinfo() {
        let release = nix::sys::utsname::uname().unwrap();
        let v: Vec<u32> = release
            .release()
            .to_string_lossy()
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let mode = super::detect();
        let own = crate::util::read_proc("/proc/self/cgroup").unwrap();
        let mi = crate::util::read_proc("/proc/self/mountinfo").unwrap();
        let Some(fast) = super::mounts_where_expected(mode, &own) else {
            // statmount with mount options came in 6.10.
            assert!(
                v < vec![6, 10],
                "kernel {v:?} has statmount but the fast path gave up"
            );
            return;
        };
        let slow = super::cgroup_mounts(&mi);
        let key = |m: &super::CgroupMount| (m.0.clone(), m.1.clone(), m.2.clone());
        let fast_keys: Vec<_> = fast.iter().map(key).collect();
        let slow_keys: Vec<_> = slow
            .iter()
            .filter(|m| !(mode == super::Mode::V1 && m.2 == "cgroup2"))
            .map(key)
            .collect();
        assert_eq!(fast_keys, slow_keys);
        let a = super::Cgroup::plan_with(mode, fast, &own, Some("/rrun-x/c"), "c").unwrap();
        let b = super::Cgroup::plan_from(mode, &mi, &own, Some("/rrun-x/c"), "c").unwrap();
        assert_eq!(
            format!("{:?}", a.hierarchies),
            format!("{:?}", b.hierarchies)
        );
        assert!(!a.hierarchies.is_empty());
    }

    const MOUNTINFO: &str = "\
30 24 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
";
    const OWN: &str = "4:memory:/machine/x\n3:name=systemd:/\n1:cpu:/\n5:cpu,cpuacct:/a\n0::/u\n";

    #[test]
    fn absolute_path_under_each_root() {
        let c =
            Cgroup::plan_from(Mode::Hybrid, MOUNTINFO, OWN, Some("/rrun-test/c1"), "c1").unwrap();
        let dirs: Vec<_> = c
            .hierarchies
            .iter()
            .map(|h| h.dir.to_string_lossy().into_owned())
            .collect();
        assert!(dirs.contains(&"/sys/fs/cgroup/memory/rrun-test/c1".to_string()));
        assert!(dirs.contains(&"/sys/fs/cgroup/unified/rrun-test/c1".to_string()));
        let sd = c.hierarchies.iter().find(|h| h.name == "systemd").unwrap();
        assert_eq!(sd.options, "name=systemd");
    }

    #[test]
    fn relative_and_default_paths_under_own_cgroup() {
        let c = Cgroup::plan_from(Mode::Hybrid, MOUNTINFO, OWN, Some("sub/c1"), "c1").unwrap();
        let mem = c.hierarchies.iter().find(|h| h.name == "memory").unwrap();
        assert_eq!(
            mem.dir,
            PathBuf::from("/sys/fs/cgroup/memory/machine/x/sub/c1")
        );
        let c = Cgroup::plan_from(Mode::Hybrid, MOUNTINFO, OWN, None, "c9").unwrap();
        let mem = c.hierarchies.iter().find(|h| h.name == "memory").unwrap();
        assert_eq!(mem.dir, PathBuf::from("/sys/fs/cgroup/memory/machine/x/c9"));
        let cc = c
            .hierarchies
            .iter()
            .find(|h| h.name == "cpu,cpuacct")
            .unwrap();
        assert_eq!(cc.dir, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a/c9"));
        let u = c.hierarchies.iter().find(|h| h.unified).unwrap();
        assert_eq!(u.dir, PathBuf::from("/sys/fs/cgroup/unified/u/c9"));
    }

    #[test]
    fn v1_mode_skips_unified_and_dotdot_stays_under_root() {
        let c = Cgroup::plan_from(Mode::V1, MOUNTINFO, OWN, Some("/../../etc"), "c").unwrap();
        assert!(c.hierarchies.iter().all(|h| !h.unified));
        assert!(c.hierarchies.iter().all(|h| h.dir.starts_with(&h.mount)));
    }

    #[test]
    fn systemd_paths_are_refused() {
        assert!(
            Cgroup::plan_from(Mode::V1, MOUNTINFO, OWN, Some("system.slice:rrun:c1"), "c1")
                .is_err()
        );
    }
}
