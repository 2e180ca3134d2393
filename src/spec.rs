//! Load and validate `config.json` into a `Plan`: pure data decided before the first side
//! effect. A bad config fails here, with its JSON path in the message, and leaves nothing behind.

use crate::caps::CapPlan;
use crate::namespaces::NsPlan;
use crate::rootfs::{DevicePlan, MountPlan};
use crate::util::CpuSet;
use anyhow::{Context, Result, anyhow, bail};
use oci_spec::runtime::{LinuxIdMapping, PosixRlimitType, Spec};
use std::path::{Path, PathBuf};

pub const OCI_VERSION: &str = "1.2.0";

/// Everything init needs to set up the process: pure data.
#[derive(Debug, Clone)]
pub struct ProcPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: Option<u32>,
    /// (resource, soft, hard, config index)
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64, usize)>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub caps: Option<CapPlan>,
    pub terminal: bool,
    /// consoleSize as (rows, columns).
    pub console_size: Option<(u16, u16)>,
    /// AppArmor profile to switch to on exec (only when AppArmor is enabled).
    pub apparmor: Option<String>,
    /// SELinux label for the process (only when SELinux is enabled).
    pub selinux_label: Option<String>,
    /// The container's seccomp filter, compiled here and installed by init / exec.
    pub seccomp: Option<crate::seccomp::Filter>,
    /// execCPUAffinity (initial, final): for `exec` only, as the runtime-spec says.
    pub exec_affinity: (Option<CpuSet>, Option<CpuSet>),
    /// ioPriority, scheduler, and linux.personality / linux.memoryPolicy.
    pub sched: crate::sched::SchedPlan,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub oci_version: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    /// MS_* propagation for `/` (rootfsPropagation), applied with MS_REC.
    pub root_propagation: Option<nix::mount::MsFlags>,
    pub ns: NsPlan,
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    pub time_offsets: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<DevicePlan>,
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    pub sysctl: Vec<(String, String)>,
    pub process: ProcPlan,
    pub cgroups_path: Option<String>,
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// Decode JSON into a typed value, with the JSON path of the first error. The path is tracked
/// only on a second pass after a failure: valid input (every container) skips its cost.
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, data: &[u8]) -> Result<T> {
    if let Ok(v) = serde_json::from_slice(data) {
        return Ok(v);
    }
    // Capabilities this build does not know are warned about and left out, as runc does (a
    // newer kernel's, or a typo: the process simply does not get them).
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(data)
        && drop_unknown_caps(&mut v, what)
        && let Ok(t) = serde_json::from_value(v)
    {
        return Ok(t);
    }
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return anyhow!("{what}: invalid JSON: {inner}");
        }
        let mut msg = inner.to_string();
        // serde says "unknown variant `nett`, expected one of ..." — say what the field is.
        if let Some(rest) = msg.strip_prefix("unknown variant `") {
            let name = rest.split('`').next().unwrap_or_default().to_string();
            if path.starts_with("linux.namespaces") {
                msg = format!("unknown namespace {name:?}");
            } else if path.contains("capabilities") {
                msg = format!("unknown capability {name:?}");
            } else if path.contains("rlimits") {
                msg = format!("unknown rlimit {name:?}");
            }
        }
        // Drop serde's "at line L column C" when we have a path.
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        if path == "." {
            anyhow!("{what}: {msg}")
        } else {
            anyhow!("{what}: {path}: {msg}")
        }
    })
}

/// Remove the capability names oci-spec does not know from `process.capabilities` (config.json)
/// or `capabilities` (process.json), with a warning each; whether any was removed.
fn drop_unknown_caps(v: &mut serde_json::Value, what: &str) -> bool {
    let mut dropped = false;
    for (ptr, field) in [
        ("/process/capabilities", "process.capabilities"),
        ("/capabilities", "capabilities"),
    ] {
        let Some(caps) = v.pointer_mut(ptr).and_then(|c| c.as_object_mut()) else {
            continue;
        };
        for (set, list) in caps.iter_mut() {
            let Some(list) = list.as_array_mut() else {
                continue;
            };
            list.retain(|c| {
                let known =
                    serde_json::from_value::<oci_spec::runtime::Capability>(c.clone()).is_ok();
                if !known && c.is_string() {
                    crate::logging::warn(&format!(
                        "{what}: {field}.{set}: unknown capability {c}: ignored"
                    ));
                    dropped = true;
                    return false;
                }
                true
            });
        }
    }
    dropped
}

pub fn read_spec(bundle: &Path) -> Result<Spec> {
    let p = bundle.join("config.json");
    let data = std::fs::read(&p)
        .map_err(|e| anyhow!("read {}: {}", p.display(), crate::sys::io_errno(&e)))?;
    decode("config.json", &data)
}

/// Load `<bundle>/config.json` and build the plan.
pub fn load(bundle: &Path) -> Result<Plan> {
    let bundle =
        std::path::absolute(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let spec = {
        let _t = crate::logging::phase("parse");
        read_spec(&bundle)?
    };
    let _t = crate::logging::phase("plan");
    plan(&bundle, spec)
}

fn cfg_err(path: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("config.json: {path}: {msg}")
}

fn id_map(m: &[LinuxIdMapping]) -> String {
    m.iter()
        .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
        .collect()
}

/// Id-mapped mounts against the container's user namespace: `idmap`/`ridmap` without
/// mappings take the container's (new or joined); mappings equal to the container's use its
/// user namespace itself (no extra one made); none at all is an error (runtime-spec).
fn idmap_userns(
    mut mounts: Vec<crate::rootfs::MountPlan>,
    ns: &NsPlan,
    uid_map: Option<&str>,
    gid_map: Option<&str>,
) -> Result<Vec<crate::rootfs::MountPlan>> {
    use crate::rootfs::IdmapUserns;
    let userns = ns.owns(nix::sched::CloneFlags::CLONE_NEWUSER);
    for m in &mut mounts {
        let Some(idm) = m.idmap.as_mut() else {
            continue;
        };
        let field = format!("mounts[{}]", m.index);
        match &idm.userns {
            IdmapUserns::Container if !userns => bail!(cfg_err(
                &field,
                "the idmap/ridmap option without uidMappings and gidMappings takes the \
                 container's user namespace, and linux.namespaces has none"
            )),
            IdmapUserns::Maps { uid, gid }
                if Some(uid.as_str()) == uid_map && Some(gid.as_str()) == gid_map =>
            {
                idm.userns = IdmapUserns::Container;
            }
            _ => {}
        }
    }
    Ok(mounts)
}

pub fn plan(bundle: &Path, spec: Spec) -> Result<Plan> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: root: missing"))?;
    if root.path().as_os_str().is_empty() {
        bail!(cfg_err("root.path", "empty"));
    }
    let rootfs = bundle.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| {
        cfg_err(
            "root.path",
            format!("rootfs {}: {}", rootfs.display(), crate::sys::io_errno(&e)),
        )
    })?;
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(cfg_err(
            "root.path",
            format!("{} is not a directory", rootfs.display())
        )),
        Err(e) => bail!(cfg_err(
            "root.path",
            format!("stat {}: {}", rootfs.display(), crate::sys::io_errno(&e))
        )),
    }
    let linux = spec
        .linux()
        .clone()
        .ok_or_else(|| anyhow!("config.json: linux: missing (rrun runs Linux containers)"))?;
    let ns = NsPlan::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;

    let p = spec
        .process()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: process: missing"))?;
    let mut process = proc_plan(p, "process")?;
    linux_sched(&mut process, Some(p), &linux)?;

    // User namespace maps are written by the parent; a new userns without maps is useless.
    let new_user = ns.new.contains(nix::sched::CloneFlags::CLONE_NEWUSER);
    let (mut uid_map, mut gid_map) = (None, None);
    if new_user {
        let u = linux.uid_mappings().as_deref().unwrap_or_default();
        let g = linux.gid_mappings().as_deref().unwrap_or_default();
        if u.is_empty() {
            bail!(cfg_err(
                "linux.uidMappings",
                "a new user namespace needs uid mappings"
            ));
        }
        if g.is_empty() {
            bail!(cfg_err(
                "linux.gidMappings",
                "a new user namespace needs gid mappings"
            ));
        }
        uid_map = Some(id_map(u));
        gid_map = Some(id_map(g));
    } else if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    {
        bail!(cfg_err(
            "linux.uidMappings",
            "id mappings need a new user namespace in linux.namespaces"
        ));
    }

    let time_offsets = match linux.time_offsets() {
        Some(t) if !t.is_empty() => {
            if !ns.new.contains(nix::sched::CloneFlags::from_bits_retain(
                libc::CLONE_NEWTIME,
            )) {
                bail!(cfg_err(
                    "linux.timeOffsets",
                    "needs a new time namespace in linux.namespaces"
                ));
            }
            let mut s = String::new();
            for (clock, off) in t {
                let name = match clock.as_str() {
                    "monotonic" => "monotonic",
                    "boottime" => "boottime",
                    other => bail!(cfg_err(
                        &format!("linux.timeOffsets.{other}"),
                        "unknown clock (monotonic or boottime)"
                    )),
                };
                s.push_str(&format!(
                    "{name} {} {}\n",
                    off.secs().unwrap_or(0),
                    off.nanosecs().unwrap_or(0)
                ));
            }
            Some(s)
        }
        _ => None,
    };

    let has = |f: nix::sched::CloneFlags| ns.new.contains(f) || ns.join.iter().any(|j| j.flag == f);
    if !has(nix::sched::CloneFlags::CLONE_NEWNS) {
        // runc's behaviour: the process stays in the host's mounts; nothing is mounted or
        // made (mounts and devices unused) and the rootfs is entered with chroot. What would have to change
        // the host's mounts to hide or protect something is refused, in runc's words.
        for (field, list) in [
            ("linux.maskedPaths", linux.masked_paths()),
            ("linux.readonlyPaths", linux.readonly_paths()),
        ] {
            if list.as_ref().is_some_and(|l| !l.is_empty()) {
                bail!(cfg_err(
                    field,
                    "unable to restrict sys entries without a private mount namespace (add one to linux.namespaces)"
                ));
            }
        }
        let unused = !spec.mounts().as_deref().unwrap_or_default().is_empty()
            || linux.devices().as_ref().is_some_and(|d| !d.is_empty())
            || spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false)
            || linux.rootfs_propagation().is_some();
        let msg = "linux.namespaces: no mount namespace: the container stays in the host's mounts, chrooted into root.path; mounts, linux.devices, root.readonly and rootfsPropagation are not applied";
        if unused {
            crate::logging::warn(msg);
        } else {
            crate::logging::debug(msg);
        }
    }
    let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
    if hostname.is_some() && !has(nix::sched::CloneFlags::CLONE_NEWUTS) {
        bail!(cfg_err(
            "hostname",
            "setting a hostname needs a new uts namespace"
        ));
    }
    let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
    if domainname.is_some() && !has(nix::sched::CloneFlags::CLONE_NEWUTS) {
        bail!(cfg_err(
            "domainname",
            "setting a domainname needs a new uts namespace"
        ));
    }
    // The kernel takes at most 64 bytes (__NEW_UTS_LEN): said here, not as EINVAL from init.
    for (field, v) in [("hostname", &hostname), ("domainname", &domainname)] {
        if let Some(v) = v.as_deref().filter(|v| v.len() > 64) {
            bail!(cfg_err(
                field,
                format!(
                    "{} is longer than the kernel's 64 bytes",
                    crate::util::shorten(v, 64)
                )
            ));
        }
    }

    let mounts = spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, m)| MountPlan::from_spec(i, m, bundle))
        .collect::<Result<Vec<_>>>()?;
    let mounts = idmap_userns(mounts, &ns, uid_map.as_deref(), gid_map.as_deref())?;
    let devices = linux
        .devices()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, d)| DevicePlan::from_spec(i, d))
        .collect::<Result<Vec<_>>>()?;

    let root_propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => None,
        Some(p) => Some(crate::rootfs::propagation_flag(p).ok_or_else(|| {
            cfg_err(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            )
        })?),
    };

    let mut sysctl: Vec<(String, String)> = linux
        .sysctl()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    sysctl.sort();
    for (k, _) in &sysctl {
        crate::sysctl::check(k, &ns).map_err(|e| cfg_err(&format!("linux.sysctl.{k}"), e))?;
    }

    let check_abs = |field: &str, list: &[String]| -> Result<()> {
        for (i, p) in list.iter().enumerate() {
            if !p.starts_with('/') {
                bail!(cfg_err(
                    &format!("{field}[{i}]"),
                    format!("{p:?} is not an absolute path")
                ));
            }
        }
        Ok(())
    };
    // A mount label only labels mounts: without SELinux there is nothing to label, and crun
    // and youki go on (a process label that cannot be applied stays an error).
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) && !selinux_enabled() {
        crate::logging::debug("linux.mountLabel: ignored, SELinux is not enabled on this host");
    }
    let masked = linux.masked_paths().clone().unwrap_or_default();
    check_abs("linux.maskedPaths", &masked)?;
    // runc takes a relative readonly path from the container's root (with a warning).
    let readonly: Vec<String> = linux
        .readonly_paths()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            if p.starts_with('/') || p.is_empty() {
                return p;
            }
            crate::logging::warn(&format!(
                "config.json: linux.readonlyPaths[{i}]: {p:?} is not absolute: taken as \"/{p}\""
            ));
            format!("/{p}")
        })
        .collect();
    check_abs("linux.readonlyPaths", &readonly)?;

    process.seccomp = linux
        .seccomp()
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()?;
    for w in process.seccomp.iter().flat_map(|f| f.warnings()) {
        crate::logging::debug(&format!("linux.seccomp: {w}"));
    }
    Ok(Plan {
        oci_version: spec.version().clone(),
        bundle: bundle.to_path_buf(),
        rootfs,
        root_readonly: root.readonly().unwrap_or(false),
        root_propagation,
        ns,
        uid_map,
        gid_map,
        time_offsets,
        hostname,
        domainname,
        mounts,
        devices,
        masked,
        readonly,
        sysctl,
        process,
        cgroups_path: linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        resources: linux.resources().clone(),
        hooks: spec.hooks().clone(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// AppArmor is usable when the kernel has it enabled (runc's check).
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

/// SELinux is usable when selinuxfs is mounted.
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// The container-wide parts of a process's scheduling: linux.personality and
/// linux.memoryPolicy, and SCHED_DEADLINE refused with a cpuset limit (runc).
pub fn linux_sched(
    plan: &mut ProcPlan,
    p: Option<&oci_spec::runtime::Process>,
    linux: &oci_spec::runtime::Linux,
) -> Result<()> {
    let cfg = |e: anyhow::Error| anyhow!("config.json: {e:#}");
    plan.sched.personality = linux
        .personality()
        .as_ref()
        .map(crate::sched::personality)
        .transpose()
        .map_err(cfg)?;
    plan.sched.mempolicy = linux
        .memory_policy()
        .as_ref()
        .map(crate::sched::mempolicy)
        .transpose()
        .map_err(cfg)?;
    let cpuset = linux
        .resources()
        .as_ref()
        .and_then(|r| r.cpu().as_ref())
        .and_then(|c| c.cpus().as_ref())
        .is_some_and(|c| !c.trim().is_empty());
    if cpuset && let Some(sc) = p.and_then(|p| p.scheduler().as_ref()) {
        crate::sched::scheduler(sc, "process", true).map_err(cfg)?;
    }
    Ok(())
}

/// Validate `process` (of config.json, or of an exec process.json) into a ProcPlan.
pub fn proc_plan(p: &oci_spec::runtime::Process, field: &str) -> Result<ProcPlan> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        bail!(cfg_err(
            &format!("{field}.args"),
            "must name the program to run"
        ));
    }
    let cwd = p.cwd().to_string_lossy().into_owned();
    if !cwd.starts_with('/') {
        bail!(cfg_err(
            &format!("{field}.cwd"),
            format!("{cwd:?} is not an absolute path")
        ));
    }
    let env = p.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        if !e.contains('=') || e.contains('\0') {
            bail!(cfg_err(
                &format!("{field}.env[{i}]"),
                format!("{e:?} is not KEY=VALUE")
            ));
        }
    }
    let mut rlimits = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, r) in p
        .rlimits()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !seen.insert(rlimit_resource(r.typ())) {
            bail!(cfg_err(
                &format!("{field}.rlimits[{i}].type"),
                format!("duplicate rlimit {:?}", r.typ())
            ));
        }
        if r.soft() > r.hard() {
            bail!(cfg_err(
                &format!("{field}.rlimits[{i}]"),
                format!(
                    "soft limit {} is above the hard limit {}",
                    r.soft(),
                    r.hard()
                )
            ));
        }
        rlimits.push((rlimit_resource(r.typ()), r.soft(), r.hard(), i));
    }
    let user = p.user();
    let caps = match p.capabilities() {
        Some(c) => {
            let f = format!("{field}.capabilities");
            Some(CapPlan::from_spec(c, &f, p.user().uid()).map_err(|e| cfg_err(&f, e))?)
        }
        None => None,
    };
    // As runc: a profile the host cannot enforce is an error, never silently dropped.
    // "unconfined" asks for nothing, so it is fine without AppArmor (as podman treats it).
    let apparmor = p.apparmor_profile().clone().filter(|s| !s.is_empty());
    if let Some(a) = &apparmor
        && a != "unconfined"
        && !apparmor_enabled()
    {
        bail!(cfg_err(
            &format!("{field}.apparmorProfile"),
            format!(
                "{a:?}: AppArmor is not enabled on this host (apparmor: config provided but apparmor not supported)"
            )
        ));
    }
    let selinux_label = p.selinux_label().clone().filter(|s| !s.is_empty());
    if selinux_label.is_some() && !selinux_enabled() {
        bail!(cfg_err(
            &format!("{field}.selinuxLabel"),
            "selinux label is specified in config, but selinux is disabled or not supported"
        ));
    }
    let cpus = |v: Option<&String>, what: &str| {
        v.filter(|s| !s.trim().is_empty())
            .map(|s| {
                CpuSet::parse(s).map_err(|e| cfg_err(&format!("{field}.execCPUAffinity.{what}"), e))
            })
            .transpose()
    };
    let aff = p.exec_cpu_affinity().as_ref();
    let exec_affinity = (
        cpus(aff.and_then(|a| a.initial().as_ref()), "initial")?,
        cpus(aff.and_then(|a| a.cpu_affinity_final().as_ref()), "final")?,
    );
    let sched = crate::sched::SchedPlan {
        io_priority: p
            .io_priority()
            .as_ref()
            .map(|io| crate::sched::io_priority(io, field))
            .transpose()
            .map_err(|e| anyhow!("config.json: {e}"))?,
        scheduler: p
            .scheduler()
            .as_ref()
            .map(|sc| crate::sched::scheduler(sc, field, false))
            .transpose()
            .map_err(|e| anyhow!("config.json: {e}"))?,
        ..Default::default()
    };
    Ok(ProcPlan {
        sched,
        exec_affinity,
        apparmor: apparmor.filter(|a| a != "unconfined" || apparmor_enabled()),
        selinux_label,
        seccomp: None,
        args,
        env,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        rlimits,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        oom_score_adj: p.oom_score_adj(),
        caps,
        terminal: p.terminal().unwrap_or(false),
        console_size: p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn base() -> serde_json::Value {
        serde_json::from_str(include_str!("../bundles/busybox/config.json")).unwrap()
    }

    fn plan_of(v: &serde_json::Value) -> Result<Plan> {
        let spec: Spec = decode("config.json", v.to_string().as_bytes())?;
        plan(Path::new("/"), spec)
    }

    fn with_root(mut v: serde_json::Value) -> serde_json::Value {
        v["root"]["path"] = "/".into();
        v
    }

    #[test]
    fn busybox_config_plans() {
        let p = plan_of(&with_root(base())).unwrap();
        assert_eq!(p.process.args[0], "sh");
        assert_eq!(p.mounts.len(), 7);
        assert!(p.root_readonly);
        assert_eq!(p.hostname.as_deref(), Some("rrun"));
        assert_eq!(
            p.process.rlimits,
            vec![(libc::RLIMIT_NOFILE, 1024, 1024, 0)]
        );
        assert!(p.process.no_new_privileges);
    }

    #[test]
    fn unknown_namespace_names_its_path() {
        let mut v = with_root(base());
        v["linux"]["namespaces"][2]["type"] = "nett".into();
        let e = plan_of(&v).unwrap_err().to_string();
        assert_eq!(
            e,
            "config.json: linux.namespaces[2].type: unknown namespace \"nett\""
        );
    }

    #[test]
    fn duplicate_namespace() {
        let mut v = with_root(base());
        v["linux"]["namespaces"][1]["type"] = "pid".into();
        let e = plan_of(&v).unwrap_err().to_string();
        assert!(
            e.contains("linux.namespaces[1]") && e.contains("duplicate"),
            "{e}"
        );
    }

    /// oci-spec checks execCPUAffinity with a regex (regex-lite through shims/regex): valid
    /// cpu lists still decode and anything else is still refused with its field's path.
    #[test]
    fn exec_cpu_affinity_is_validated() {
        for ok in ["0", "0-3", "0-3,5,7-9"] {
            let mut v = with_root(base());
            v["process"]["execCPUAffinity"] = serde_json::json!({"initial": ok, "final": ok});
            plan_of(&v).unwrap_or_else(|e| panic!("{ok:?}: {e:#}"));
        }
        for bad in ["", "x", "0-", "1,,2", "0-3 ", "\u{0663}"] {
            let mut v = with_root(base());
            v["process"]["execCPUAffinity"] = serde_json::json!({"initial": bad});
            let e = plan_of(&v).unwrap_err().to_string();
            assert!(
                e.contains("process.execCPUAffinity") && e.contains("Invalid execCPUAffinity"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn invalid_json() {
        let e = decode::<Spec>("config.json", b"{\"ociVersion\": ")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config.json: invalid JSON"), "{e}");
    }

    #[test]
    fn idmapped_mounts_and_the_containers_user_namespace() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let idm = serde_json::json!({"destination": "/d", "source": "/s",
            "options": ["rbind", "idmap"]});
        // Implied mappings without a user namespace: refused.
        let mut v = with_root(base());
        v["mounts"].as_array_mut().unwrap().push(idm.clone());
        let e = plan_of(&v).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces has none"), "{e}");
        // With one: the container's.
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        v["linux"]["uidMappings"] = map.clone();
        v["linux"]["gidMappings"] = map.clone();
        let p = plan_of(&v).unwrap();
        let last = p.mounts.last().unwrap().idmap.clone().unwrap();
        assert_eq!(last.userns, crate::rootfs::IdmapUserns::Container);
        // Mappings equal to the container's: its user namespace too, no extra one.
        let mut same = idm.clone();
        same["uidMappings"] = map.clone();
        same["gidMappings"] = map.clone();
        v["mounts"].as_array_mut().unwrap().push(same);
        let mut other = idm;
        other["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 5, "size": 1}]);
        other["gidMappings"] = map;
        v["mounts"].as_array_mut().unwrap().push(other);
        let p = plan_of(&v).unwrap();
        let n = p.mounts.len();
        assert_eq!(
            p.mounts[n - 2].idmap.as_ref().unwrap().userns,
            crate::rootfs::IdmapUserns::Container
        );
        assert!(matches!(
            p.mounts[n - 1].idmap.as_ref().unwrap().userns,
            crate::rootfs::IdmapUserns::Maps { .. }
        ));
    }

    #[test]
    fn relative_mount_destination() {
        let mut v = with_root(base());
        v["mounts"][3]["destination"] = "dev/shm".into();
        let p = plan_of(&v).unwrap();
        assert_eq!(p.mounts[3].dest, "/dev/shm");
    }

    #[test]
    fn missing_rootfs() {
        let mut v = base();
        v["root"]["path"] = "/nonexistent-rootfs-xyz".into();
        let e = plan_of(&v).unwrap_err().to_string();
        assert!(e.contains("root.path") && e.contains("ENOENT"), "{e}");
    }

    #[test]
    fn unknown_capability() {
        // Issue 17: an unknown name is warned about and left out, as runc does (it was an
        // error before); what is not a capability name at all is still an error at its path.
        let mut v = with_root(base());
        v["process"]["capabilities"]["bounding"][1] = "CAP_NOPE".into();
        plan_of(&v).expect("an unknown capability is ignored");
        v["process"]["capabilities"]["bounding"][1] = 7.into();
        let e = plan_of(&v).unwrap_err().to_string();
        assert!(e.contains("process.capabilities.bounding[1]"), "{e}");
    }

    #[test]
    fn rlimit_checks() {
        let mut v = with_root(base());
        v["process"]["rlimits"][0]["soft"] = 4096.into();
        let e = plan_of(&v).unwrap_err().to_string();
        assert!(
            e.contains("process.rlimits[0]") && e.contains("above"),
            "{e}"
        );
    }

    #[test]
    fn user_ns_needs_maps() {
        let mut v = with_root(base());
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let e = plan_of(&v).unwrap_err().to_string();
        assert!(e.contains("linux.uidMappings"), "{e}");
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        let p = plan_of(&v).unwrap();
        assert_eq!(p.uid_map.as_deref(), Some("0 1000 10\n"));
    }

    #[test]
    fn hostname_needs_uts() {
        let mut v = with_root(base());
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "uts");
        let e = plan_of(&v).unwrap_err().to_string();
        assert!(e.contains("hostname"), "{e}");
    }

    #[test]
    fn time_offsets_need_timens() {
        let mut v = with_root(base());
        v["linux"]["timeOffsets"] = serde_json::json!({"monotonic": {"secs": 10, "nanosecs": 0}});
        assert!(
            plan_of(&v)
                .unwrap_err()
                .to_string()
                .contains("linux.timeOffsets")
        );
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "time"}));
        assert_eq!(
            plan_of(&v).unwrap().time_offsets.as_deref(),
            Some("monotonic 10 0\n")
        );
    }
}
