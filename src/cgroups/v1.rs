//! cgroup v1: OCI `linux.resources` → the ordered list of cgroupfs writes.
//!
//! Everything here is pure: [`writes`] validates the configuration and returns the files
//! to write, per controller hierarchy, in the order runc writes them. The caller only
//! has to put each [`Write`] under the container's directory of `controller`
//! (`/sys/fs/cgroup/<controller>/<path>/<file>`).
//!
//! Some writes depend on the cgroup's current values in ways a pure table cannot know.
//! [`apply`] is a small driver that encodes runc's answers to these, given a closure
//! that performs one write (see its documentation for the exact rules):
//!
//! * `memory.limit_in_bytes` must never exceed `memory.memsw.limit_in_bytes`. Both are
//!   emitted limit first, which is right when creating a cgroup (memsw is unlimited) and
//!   when lowering both; when raising both the kernel rejects the limit with EINVAL,
//!   and [`apply`] then writes memsw first and retries the limit (runc reads the current
//!   limit to pick the order; retrying on EINVAL gives the same result without a read).
//! * `cpu.cfs_period_us` / `cpu.cfs_burst_us` before `cpu.cfs_quota_us`, and
//!   `cpu.rt_period_us` before `cpu.rt_runtime_us`: on EINVAL the first one is retried
//!   after its partner, as runc does.
//! * `blkio.weight` / `blkio.weight_device` fall back to `blkio.bfq.weight` /
//!   `blkio.bfq.weight_device` when absent (kernels without CFQ), as runc does.
//! * A missing file is not an error for `memory.memsw.limit_in_bytes` = `-1` (no swap
//!   accounting: nothing to lift) and for `hugetlb.<size>.rsvd.limit_in_bytes` (kernels
//!   before 5.7).
//!
//! Not done here (caller's job): the devices list must already hold everything runc
//! would put in it (the spec's `linux.resources.devices`, then runc's default allowed
//! devices and one `allow rwm` rule per `linux.devices` entry); devices are skipped
//! entirely in a user namespace (pass `devices: None`). `cpuset.cpus`/`cpuset.mems` of a
//! new v1 cpuset cgroup (and of any parent created for it) are empty and must be
//! copied from the parent before a process can join, even when the config sets none.
//! runc also writes the realtime (`cpu.rt_*`) values before moving the process in.

// rrun is a binary: whichever of these entry points (controllers_needed,
// check_controllers, apply, ...) the driver does not call would fail
// `clippy --all-targets -D warnings`. The scratch lib build checks them without this.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

/// One write: (controller, file name, value). For v2 the controller is the one that owns the
/// file ("memory", "cpu", "cpuset", "io", "pids", "hugetlb", "rdma", "misc") or "" for cgroup
/// core files. For v1 it names the hierarchy the file lives in ("memory", "cpu", "cpuset",
/// "devices", "pids", "blkio", "hugetlb", "net_cls", "net_prio", "rdma").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    /// From v2's `unified` map (its key is the file), not from a typed field.
    pub unified: bool,
}

impl Write {
    pub(super) fn new(
        controller: &'static str,
        file: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Write {
            controller,
            file: file.into(),
            value: value.into(),
            unified: false,
        }
    }
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.controller.is_empty() {
            write!(f, "{} = {:?}", self.file, self.value)
        } else {
            write!(f, "{}:{} = {:?}", self.controller, self.file, self.value)
        }
    }
}

const RES: &str = "linux.resources";

/// The cgroup v1 writes for `r`, in the order they must be done.
///
/// Hierarchies come in runc's order: cpuset, devices, memory, cpu, pids, blkio, hugetlb,
/// net_cls, net_prio, rdma. As in runc, a value of 0 means "unset" for the memory, cpu,
/// blkio weight and classID numbers. `memory.kernel` is ignored (runc >= 1.1 ignores
/// kernel memory limits: the knob is deprecated and broken on recent kernels).
/// `memory.checkBeforeUpdate` produces no write (see [`check_before_update`]).
/// A non-empty `unified` map is an error: it requires cgroup v2.
pub fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        bail!(
            "{RES}.unified: invalid configuration: requires cgroup v2 (this host uses cgroup v1)"
        );
    }
    let mut out = Vec::new();
    cpuset_writes(r, &mut out)?;
    if let Some(devices) = r.devices() {
        device_writes(devices, &mut out)?;
    }
    memory_writes(r, &mut out)?;
    cpu_writes(r, &mut out)?;
    pids_writes(r, &mut out);
    blkio_writes(r, &mut out)?;
    hugetlb_writes(r, &mut out, "limit_in_bytes", "-1")?;
    network_writes(r, &mut out)?;
    rdma_writes(r, &mut out)?;
    Ok(out)
}

/// The v1 controllers (hierarchies) that `r` needs, in [`writes`] order, without duplicates.
/// An invalid configuration gives an empty list: [`writes`] reports what is wrong with it.
#[cfg(test)]
pub fn controllers_needed(r: &LinuxResources) -> Vec<&'static str> {
    distinct_controllers(&writes(r).unwrap_or_default())
}

/// Fails, naming the field, when `r` needs a controller that is not in `available`
/// (e.g. `linux.resources.hugepageLimits: needs the hugetlb controller, which is not
/// available`). Also fails when [`writes`] would.
pub fn check_controllers(r: &LinuxResources, available: &[&str]) -> Result<()> {
    for w in writes(r)? {
        if !available.contains(&w.controller) {
            bail!(
                "{}: needs the {} controller, which is not available",
                field_of(&w),
                w.controller
            );
        }
    }
    Ok(())
}

/// `linux.resources.memory.checkBeforeUpdate`: when true, an update must fail (rather than
/// let the kernel reclaim or OOM-kill) if the new memory limit is below current usage.
/// It never produces a write; `rrun update` reads this flag.
pub fn check_before_update(r: &LinuxResources) -> bool {
    r.memory()
        .as_ref()
        .and_then(|m| m.check_before_update())
        .unwrap_or(false)
}

/// Performs `writes` through `write` (which writes one value into one file of the
/// container's cgroup and returns the OS error unchanged), with runc's retry rules:
///
/// * A write that fails with EINVAL while its partner (`memory.memsw.limit_in_bytes` for
///   `memory.limit_in_bytes`, `cpu.cfs_quota_us` for `cpu.cfs_period_us` and
///   `cpu.cfs_burst_us`, `cpu.rt_runtime_us` for `cpu.rt_period_us`) comes later in the
///   list is put off and retried right after the partner succeeds.
/// * `blkio.weight` / `blkio.weight_device` missing (ENOENT): the same value is written to
///   `blkio.bfq.weight` / `blkio.bfq.weight_device` instead.
/// * ENOENT is ignored for `memory.memsw.limit_in_bytes` = `-1` and for
///   `hugetlb.*.rsvd.limit_in_bytes`.
///
/// The error names the controller, file and value; the caller adds the cgroup path.
pub fn apply(writes: &[Write], mut write: impl FnMut(&Write) -> io::Result<()>) -> Result<()> {
    apply_with(writes, &mut write, &V1_RULES)
}

const V1_RULES: ApplyRules = ApplyRules {
    partner: |file| match file {
        "memory.limit_in_bytes" => Some("memory.memsw.limit_in_bytes"),
        "cpu.cfs_period_us" | "cpu.cfs_burst_us" => Some("cpu.cfs_quota_us"),
        "cpu.rt_period_us" => Some("cpu.rt_runtime_us"),
        _ => None,
    },
    alternative: |w| {
        let file = match w.file.as_str() {
            "blkio.weight" => "blkio.bfq.weight",
            "blkio.weight_device" => "blkio.bfq.weight_device",
            _ => return None,
        };
        Some(Write::new(w.controller, file, w.value.clone()))
    },
    missing_ok: |w| {
        (w.file == "memory.memsw.limit_in_bytes" && w.value == "-1")
            || (w.file.starts_with("hugetlb.") && w.file.ends_with(".rsvd.limit_in_bytes"))
    },
    field: field_of,
};

// ---------------------------------------------------------------------------------------
// The driver shared with v2.

/// Version-specific retry rules for [`apply_with`].
pub(super) struct ApplyRules {
    /// For a file whose write may fail with EINVAL only because another file of the same
    /// batch has not been written yet: that other file.
    pub partner: fn(&str) -> Option<&'static str>,
    /// What to write instead when the file does not exist (ENOENT).
    pub alternative: fn(&Write) -> Option<Write>,
    /// Whether ENOENT (after any alternative) means there is nothing to do.
    pub missing_ok: fn(&Write) -> bool,
    /// The config field a write comes from, for its error.
    pub field: fn(&Write) -> String,
}

pub(super) fn apply_with(
    writes: &[Write],
    write: &mut dyn FnMut(&Write) -> io::Result<()>,
    rules: &ApplyRules,
) -> Result<()> {
    let mut deferred: Vec<(usize, io::Error)> = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        match write_one(w, write, rules) {
            Ok(()) => {
                let mut k = 0;
                while k < deferred.len() {
                    let d = &writes[deferred[k].0];
                    if d.controller == w.controller && (rules.partner)(&d.file) == Some(&w.file) {
                        deferred.remove(k);
                        write_one(d, write, rules).map_err(|(t, e)| {
                            anyhow!("{} (retried after {})", write_error(&t, &e, rules), w.file)
                        })?;
                    } else {
                        k += 1;
                    }
                }
            }
            Err((_, e)) if is_einval(&e) && partner_later(writes, i, rules) => {
                deferred.push((i, e));
            }
            Err((t, e)) => bail!("{}", write_error(&t, &e, rules)),
        }
    }
    // Unreachable in practice: a put-off write's partner either succeeded (and the write
    // was retried) or failed (and we returned), but never leave an error unreported.
    if let Some((i, e)) = deferred.into_iter().next() {
        bail!("{}", write_error(&writes[i], &e, rules));
    }
    Ok(())
}

fn partner_later(writes: &[Write], i: usize, rules: &ApplyRules) -> bool {
    let w = &writes[i];
    (rules.partner)(&w.file).is_some_and(|p| {
        writes[i + 1..]
            .iter()
            .any(|l| l.controller == w.controller && l.file == p)
    })
}

/// One write with its ENOENT handling. The error carries the write that was last tried.
fn write_one(
    w: &Write,
    write: &mut dyn FnMut(&Write) -> io::Result<()>,
    rules: &ApplyRules,
) -> std::result::Result<(), (Write, io::Error)> {
    let mut tried = w.clone();
    let mut result = write(&tried);
    if result.as_ref().is_err_and(is_enoent)
        && let Some(alt) = (rules.alternative)(w)
    {
        tried = alt;
        result = write(&tried);
    }
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_enoent(&e) && (rules.missing_ok)(w) => Ok(()),
        Err(e) => Err((tried, e)),
    }
}

/// `<config field>: writing "<value>" to <file> (<controller> controller): <errno>`.
fn write_error(w: &Write, e: &io::Error, rules: &ApplyRules) -> String {
    let controller = if w.controller.is_empty() {
        String::new()
    } else {
        format!(" ({} controller)", w.controller)
    };
    let field = (rules.field)(w);
    let e = crate::sys::io_errno(e);
    format!(
        "{field}: writing {:?} to {}{controller}: {e}",
        w.value, w.file
    )
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

fn is_enoent(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT) || e.kind() == io::ErrorKind::NotFound
}

#[cfg(test)]
pub(super) fn distinct_controllers(writes: &[Write]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for w in writes {
        if !w.controller.is_empty() && !out.contains(&w.controller) {
            out.push(w.controller);
        }
    }
    out
}

/// The JSON path of the configuration field a v1 write comes from.
fn field_of(w: &Write) -> String {
    let field = match w.controller {
        "cpuset" if w.file == "cpuset.mems" => "cpu.mems",
        "cpuset" => "cpu.cpus",
        "devices" => "devices",
        "memory" => "memory",
        "cpu" => "cpu",
        "pids" => "pids",
        "blkio" => "blockIO",
        "hugetlb" => "hugepageLimits",
        "net_cls" => "network.classID",
        "net_prio" => "network.priorities",
        "rdma" => "rdma",
        other => other,
    };
    format!("{RES}.{field}")
}

// ---------------------------------------------------------------------------------------
// Helpers shared with v2.

/// `cpu.cpus` / `cpu.mems` → `cpuset.cpus` / `cpuset.mems` (same on v1 and v2).
/// Empty strings are unset, as in runc.
pub(super) fn cpuset_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(cpu) = r.cpu() else { return Ok(()) };
    for (name, file, value) in [
        ("cpus", "cpuset.cpus", cpu.cpus()),
        ("mems", "cpuset.mems", cpu.mems()),
    ] {
        let Some(value) = value.as_deref().map(str::trim) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ',' | '-' | ':' | '/'))
        {
            bail!("{RES}.cpu.{name}: {value:?} is not a list like \"0-3,6\"");
        }
        out.push(Write::new("cpuset", file, value));
    }
    Ok(())
}

/// `pids.limit` → `pids.max`; a limit <= 0 means unlimited ("max").
pub(super) fn pids_writes(r: &LinuxResources, out: &mut Vec<Write>) {
    if let Some(pids) = r.pids() {
        let value = match pids.limit() {
            n if n > 0 => n.to_string(),
            _ => "max".to_string(),
        };
        out.push(Write::new("pids", "pids.max", value));
    }
}

/// `hugepageLimits` → `hugetlb.<size>.<suffix>` and `hugetlb.<size>.rsvd.<suffix>`
/// (the reservation limit, kernel >= 5.7, written with the same value as runc does;
/// [`apply`] ignores its absence). A limit of -1 is written as `unlimited`.
pub(super) fn hugetlb_writes(
    r: &LinuxResources,
    out: &mut Vec<Write>,
    suffix: &str,
    unlimited: &str,
) -> Result<()> {
    let Some(limits) = r.hugepage_limits() else {
        return Ok(());
    };
    for (i, l) in limits.iter().enumerate() {
        let path = format!("{RES}.hugepageLimits[{i}]");
        let size = l.page_size();
        let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
        let unit = &size[digits.len()..];
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit())
            || !matches!(unit, "KB" | "MB" | "GB")
        {
            bail!("{path}.pageSize: {size:?} is not a page size like \"2MB\" or \"1GB\"");
        }
        let value = match l.limit() {
            -1 => unlimited.to_string(),
            n if n >= 0 => n.to_string(),
            n => bail!("{path}.limit: must be >= 0 or -1 for unlimited (got {n})"),
        };
        out.push(Write::new(
            "hugetlb",
            format!("hugetlb.{size}.{suffix}"),
            value.clone(),
        ));
        out.push(Write::new(
            "hugetlb",
            format!("hugetlb.{size}.rsvd.{suffix}"),
            value,
        ));
    }
    Ok(())
}

/// `rdma` → `rdma.max` "<device> hca_handle=N hca_object=M" (same on v1 and v2), one
/// write per device in name order; unset counts are left out, a device with neither
/// is skipped.
pub(super) fn rdma_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(rdma) = r.rdma() else { return Ok(()) };
    let sorted: BTreeMap<_, _> = rdma.iter().collect();
    for (device, limits) in sorted {
        if device.is_empty() || device.contains(|c: char| c.is_whitespace() || c == '=') {
            bail!("{RES}.rdma[{device:?}]: not an RDMA device name");
        }
        let mut value = device.clone();
        if let Some(n) = limits.hca_handles() {
            value.push_str(&format!(" hca_handle={n}"));
        }
        if let Some(n) = limits.hca_objects() {
            value.push_str(&format!(" hca_object={n}"));
        }
        if value.len() > device.len() {
            out.push(Write::new("rdma", "rdma.max", value));
        }
    }
    Ok(())
}

/// "major:minor" of a block device entry; `path` names the entry for errors.
pub(super) fn device_number(major: i64, minor: i64, path: &str) -> Result<String> {
    if major < 0 {
        bail!("{path}.major: must be >= 0 (got {major})");
    }
    if minor < 0 {
        bail!("{path}.minor: must be >= 0 (got {minor})");
    }
    Ok(format!("{major}:{minor}"))
}

/// Memory sizes: -1 is unlimited, 0 is unset (None), anything below -1 is an error.
pub(super) fn memory_value(value: Option<i64>, field: &str) -> Result<Option<i64>> {
    match value {
        Some(0) | None => Ok(None),
        Some(n) if n >= -1 => Ok(Some(n)),
        Some(n) => bail!("{RES}.memory.{field}: must be >= 0 or -1 for unlimited (got {n})"),
    }
}

/// `cpu.shares` as set: 0 is unset, otherwise the kernel's range 2..=262144.
pub(super) fn cpu_shares(r: &LinuxResources) -> Result<Option<u64>> {
    match r.cpu().as_ref().and_then(|c| c.shares()) {
        None | Some(0) => Ok(None),
        Some(s) if (2..=262_144).contains(&s) => Ok(Some(s)),
        Some(s) => bail!("{RES}.cpu.shares: must be between 2 and 262144 (got {s})"),
    }
}

/// `cpu.idle`: only 0 and 1 exist.
pub(super) fn cpu_idle(r: &LinuxResources) -> Result<Option<i64>> {
    match r.cpu().as_ref().and_then(|c| c.idle()) {
        None => Ok(None),
        Some(i @ (0 | 1)) => Ok(Some(i)),
        Some(i) => bail!("{RES}.cpu.idle: must be 0 or 1 (got {i})"),
    }
}

/// `cpu.quota` as set: 0 is unset, -1 unlimited, below -1 an error.
pub(super) fn cpu_quota(r: &LinuxResources) -> Result<Option<i64>> {
    match r.cpu().as_ref().and_then(|c| c.quota()) {
        None | Some(0) => Ok(None),
        Some(q) if q >= -1 => Ok(Some(q)),
        Some(q) => bail!("{RES}.cpu.quota: must be > 0 or -1 for unlimited (got {q})"),
    }
}

/// `memory.swappiness` as set; u64::MAX is Go's -1, which runc treats as unset.
pub(super) fn swappiness(r: &LinuxResources) -> Option<u64> {
    r.memory()
        .as_ref()
        .and_then(|m| m.swappiness())
        .filter(|&s| s != u64::MAX)
}

// ---------------------------------------------------------------------------------------
// v1 tables.

fn memory_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(m) = r.memory() else { return Ok(()) };
    let limit = memory_value(m.limit(), "limit")?;
    let swap = memory_value(m.swap(), "swap")?;
    let reservation = memory_value(m.reservation(), "reservation")?;
    let kernel_tcp = memory_value(m.kernel_tcp(), "kernelTCP")?;

    // OCI swap is memory+swap, as memory.memsw.limit_in_bytes, which the kernel keeps >=
    // memory.limit_in_bytes.
    match (limit, swap) {
        (Some(-1), Some(s)) if s != -1 => bail!(
            "{RES}.memory.swap: must be >= memory.limit (swap {s} with an unlimited memory.limit); use -1"
        ),
        (Some(l), Some(s)) if l != -1 && s != -1 && s < l => bail!(
            "{RES}.memory.swap: must be >= memory.limit (swap {s} < limit {l}); swap counts memory+swap"
        ),
        _ => {}
    }
    if let Some(l) = limit {
        out.push(Write::new("memory", "memory.limit_in_bytes", l.to_string()));
    }
    match swap {
        Some(s) => out.push(Write::new(
            "memory",
            "memory.memsw.limit_in_bytes",
            s.to_string(),
        )),
        // Unlimited memory with swap not given means unlimited memory+swap too (as runc):
        // otherwise an old memsw limit would make the kernel refuse the new memory limit.
        None if limit == Some(-1) => {
            out.push(Write::new("memory", "memory.memsw.limit_in_bytes", "-1"))
        }
        None => {}
    }
    // memory.kernel (memory.kmem.limit_in_bytes) is ignored, as in runc >= 1.1: kernel
    // memory limits are deprecated, unreliable, and gone from kernels >= 5.16.
    if let Some(v) = reservation {
        out.push(Write::new(
            "memory",
            "memory.soft_limit_in_bytes",
            v.to_string(),
        ));
    }
    if let Some(v) = kernel_tcp {
        out.push(Write::new(
            "memory",
            "memory.kmem.tcp.limit_in_bytes",
            v.to_string(),
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        out.push(Write::new("memory", "memory.oom_control", "1"));
    }
    if let Some(s) = swappiness(r) {
        if s > 100 {
            bail!("{RES}.memory.swappiness: must be between 0 and 100 (got {s})");
        }
        out.push(Write::new("memory", "memory.swappiness", s.to_string()));
    }
    if let Some(h) = m.use_hierarchy() {
        out.push(Write::new(
            "memory",
            "memory.use_hierarchy",
            if h { "1" } else { "0" },
        ));
    }
    // memory.checkBeforeUpdate: no write, see check_before_update().
    Ok(())
}

fn cpu_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(cpu) = r.cpu() else { return Ok(()) };
    if let Some(s) = cpu_shares(r)? {
        out.push(Write::new("cpu", "cpu.shares", s.to_string()));
    }
    // Period and burst before quota; apply() retries them after the quota on EINVAL.
    if let Some(p) = cpu.period().filter(|&p| p != 0) {
        out.push(Write::new("cpu", "cpu.cfs_period_us", p.to_string()));
    }
    if let Some(b) = cpu.burst() {
        out.push(Write::new("cpu", "cpu.cfs_burst_us", b.to_string()));
    }
    if let Some(q) = cpu_quota(r)? {
        out.push(Write::new("cpu", "cpu.cfs_quota_us", q.to_string()));
    }
    // cpu.idle exists on v1 only with kernels >= 5.15 (SCHED_IDLE groups).
    if let Some(i) = cpu_idle(r)? {
        out.push(Write::new("cpu", "cpu.idle", i.to_string()));
    }
    if let Some(p) = cpu.realtime_period().filter(|&p| p != 0) {
        out.push(Write::new("cpu", "cpu.rt_period_us", p.to_string()));
    }
    match cpu.realtime_runtime() {
        None | Some(0) => {}
        Some(rt) if rt >= -1 => out.push(Write::new("cpu", "cpu.rt_runtime_us", rt.to_string())),
        Some(rt) => bail!("{RES}.cpu.realtimeRuntime: must be >= 0 or -1 (got {rt})"),
    }
    Ok(())
}

fn blkio_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(b) = r.block_io() else { return Ok(()) };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        out.push(Write::new("blkio", "blkio.weight", w.to_string()));
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        out.push(Write::new("blkio", "blkio.leaf_weight", w.to_string()));
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let path = format!("{RES}.blockIO.weightDevice[{i}]");
        let dev = device_number(d.major(), d.minor(), &path)?;
        if let Some(w) = d.weight().filter(|&w| w != 0) {
            out.push(Write::new(
                "blkio",
                "blkio.weight_device",
                format!("{dev} {w}"),
            ));
        }
        if let Some(w) = d.leaf_weight().filter(|&w| w != 0) {
            out.push(Write::new(
                "blkio",
                "blkio.leaf_weight_device",
                format!("{dev} {w}"),
            ));
        }
    }
    for (name, list, file) in [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ] {
        for (i, t) in list.iter().flatten().enumerate() {
            let dev = device_number(t.major(), t.minor(), &format!("{RES}.blockIO.{name}[{i}]"))?;
            // A rate of 0 removes the device's limit.
            out.push(Write::new("blkio", file, format!("{dev} {}", t.rate())));
        }
    }
    Ok(())
}

fn network_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(n) = r.network() else { return Ok(()) };
    if let Some(id) = n.class_id().filter(|&id| id != 0) {
        out.push(Write::new("net_cls", "net_cls.classid", id.to_string()));
    }
    for (i, p) in n.priorities().iter().flatten().enumerate() {
        let name = p.name();
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('/') {
            bail!("{RES}.network.priorities[{i}].name: {name:?} is not an interface name");
        }
        out.push(Write::new(
            "net_prio",
            "net_prio.ifpriomap",
            format!("{name} {}", p.priority()),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Devices: emulate the kernel's devices cgroup over the rules, then write the result.
//
// The kernel applies rules one by one: a type "a" rule resets the cgroup to allow-all
// (devices.allow) or deny-all (devices.deny) and drops every exception; any other rule
// adds an exception when it goes against the default, or removes exactly that exception
// (same type, major, minor) when it agrees with it. Like runc, we run the rules through
// that model and write its final state from scratch: the default ("a" into devices.deny
// or devices.allow) first, then the exceptions sorted by (major, minor, type), wildcards
// ("*", sorted first) included. On a new cgroup this is exactly what runc writes.
// Removing permissions that an overlapping wildcard exception grants is an error, as in
// runc: the kernel would silently keep them.

const PERM_R: u8 = 1;
const PERM_W: u8 = 2;
const PERM_M: u8 = 4;
const WILDCARD: i64 = -1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct DeviceKey {
    major: i64,
    minor: i64,
    kind: char,
}

/// Device exceptions with their access bits, in the order they were first named.
#[derive(Default)]
struct Exceptions(Vec<(DeviceKey, u8)>);

impl Exceptions {
    fn entry(&mut self, key: DeviceKey) -> &mut u8 {
        let i = match self.0.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.0.push((key, 0));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    fn get(&self, key: &DeviceKey) -> Option<u8> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, p)| *p)
    }

    /// Remove `perms` from `key`'s, and the entry once none are left.
    fn take_away(&mut self, key: &DeviceKey, perms: u8) {
        if let Some(e) = self.0.iter_mut().find(|(k, _)| k == key) {
            e.1 &= !perms;
        }
        self.0.retain(|(_, p)| *p != 0);
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

fn device_writes(rules: &[LinuxDeviceCgroup], out: &mut Vec<Write>) -> Result<()> {
    let mut default_allow = false;
    // In the config's order: the kernel lists exceptions as they were added, and runc adds
    // them in rule order (devices.list shows the config's first rules first).
    let mut exceptions = Exceptions::default();
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("{RES}.devices[{i}]");
        let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some('b'),
            LinuxDeviceType::C => Some('c'),
            other => bail!(
                "{path}.type: {:?} cannot be used in the devices cgroup (only \"a\", \"b\" and \"c\")",
                other.as_str()
            ),
        };
        let major = device_rule_number(rule.major(), &format!("{path}.major"))?;
        let minor = device_rule_number(rule.minor(), &format!("{path}.minor"))?;
        let perms = device_access(rule.access().as_deref(), &path)?;
        let Some(kind) = kind else {
            default_allow = rule.allow();
            exceptions.clear();
            continue;
        };
        let key = DeviceKey { major, minor, kind };
        if rule.allow() != default_allow {
            *exceptions.entry(key) |= perms;
            continue;
        }
        for wider in [
            DeviceKey {
                major: WILDCARD,
                ..key
            },
            DeviceKey {
                minor: WILDCARD,
                ..key
            },
            DeviceKey {
                major: WILDCARD,
                minor: WILDCARD,
                kind,
            },
        ] {
            let overlap = exceptions.get(&wider).unwrap_or(0) & perms;
            if wider != key && overlap != 0 {
                bail!(
                    "{path}: cannot {} \"{}\" here: the earlier rule \"{}\" covers it and the \
                     devices cgroup cannot make exceptions to it",
                    if rule.allow() { "allow" } else { "deny" },
                    device_rule_string(key, perms),
                    device_rule_string(wider, exceptions.get(&wider).unwrap_or(0)),
                );
            }
        }
        exceptions.take_away(&key, perms);
    }
    let (reset, exception_file) = if default_allow {
        ("devices.allow", "devices.deny")
    } else {
        ("devices.deny", "devices.allow")
    };
    out.push(Write::new("devices", reset, "a"));
    for (key, perms) in exceptions.0 {
        out.push(Write::new(
            "devices",
            exception_file,
            device_rule_string(key, perms),
        ));
    }
    Ok(())
}

fn device_rule_number(n: Option<i64>, path: &str) -> Result<i64> {
    match n {
        None | Some(WILDCARD) => Ok(WILDCARD),
        Some(n) if n >= 0 => Ok(n),
        Some(n) => bail!("{path}: must be >= 0, or -1 / absent for any (got {n})"),
    }
}

fn device_access(access: Option<&str>, path: &str) -> Result<u8> {
    let Some(access) = access else {
        return Ok(PERM_R | PERM_W | PERM_M);
    };
    let mut perms = 0;
    for c in access.chars() {
        perms |= match c {
            'r' => PERM_R,
            'w' => PERM_W,
            'm' => PERM_M,
            _ => bail!("{path}.access: {access:?} may only hold the letters r, w and m"),
        };
    }
    if perms == 0 {
        bail!("{path}.access: must not be empty (use some of r, w and m)");
    }
    Ok(perms)
}

fn device_rule_string(key: DeviceKey, perms: u8) -> String {
    let number = |n: i64| {
        if n == WILDCARD {
            "*".to_string()
        } else {
            n.to_string()
        }
    };
    let mut access = String::new();
    for (bit, c) in [(PERM_R, 'r'), (PERM_W, 'w'), (PERM_M, 'm')] {
        if perms & bit != 0 {
            access.push(c);
        }
    }
    format!(
        "{} {}:{} {access}",
        key.kind,
        number(key.major),
        number(key.minor)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cgroups::testutil::{res, t};

    fn table(json: &str) -> Vec<(&'static str, String, String)> {
        crate::cgroups::testutil::table(writes, json)
    }

    fn err(json: &str) -> String {
        crate::cgroups::testutil::err(writes, json)
    }

    #[test]
    fn empty_resources_and_empty_sections_write_nothing() {
        assert!(table("{}").is_empty());
        assert!(
            table(
                r#"{"memory": {}, "cpu": {}, "blockIO": {}, "network": {}, "hugepageLimits": [],
                    "rdma": {}, "unified": {}}"#
            )
            .is_empty()
        );
        assert!(controllers_needed(&res("{}")).is_empty());
    }

    #[test]
    fn zero_means_unset_as_in_runc() {
        let json = r#"{"memory": {"limit": 0, "swap": 0, "reservation": 0, "kernelTCP": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimePeriod": 0,
                    "realtimeRuntime": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0, "leafWeight": 0}, "network": {"classID": 0}}"#;
        assert!(table(json).is_empty());
    }

    #[test]
    fn memory_all_fields_in_order() {
        let json = r#"{"memory": {"limit": 1000, "swap": 3000, "reservation": 500, "kernel": 77,
            "kernelTCP": 100, "swappiness": 60, "disableOOMKiller": true,
            "useHierarchy": true, "checkBeforeUpdate": true}}"#;
        assert_eq!(
            table(json),
            vec![
                t("memory", "memory.limit_in_bytes", "1000"),
                t("memory", "memory.memsw.limit_in_bytes", "3000"),
                t("memory", "memory.soft_limit_in_bytes", "500"),
                t("memory", "memory.kmem.tcp.limit_in_bytes", "100"),
                t("memory", "memory.oom_control", "1"),
                t("memory", "memory.swappiness", "60"),
                t("memory", "memory.use_hierarchy", "1"),
            ]
        );
        assert!(check_before_update(&res(json)));
        assert!(!check_before_update(&res("{}")));
    }

    #[test]
    fn memory_kernel_and_false_flags_write_nothing() {
        let json = r#"{"memory": {"kernel": 1048576, "disableOOMKiller": false,
            "checkBeforeUpdate": false}}"#;
        assert!(table(json).is_empty());
        assert_eq!(
            table(r#"{"memory": {"useHierarchy": false}}"#),
            vec![t("memory", "memory.use_hierarchy", "0")]
        );
    }

    #[test]
    fn memory_unlimited_limit_implies_unlimited_memsw() {
        assert_eq!(
            table(r#"{"memory": {"limit": -1}}"#),
            vec![
                t("memory", "memory.limit_in_bytes", "-1"),
                t("memory", "memory.memsw.limit_in_bytes", "-1"),
            ]
        );
        assert_eq!(
            table(r#"{"memory": {"limit": -1, "swap": -1}}"#),
            vec![
                t("memory", "memory.limit_in_bytes", "-1"),
                t("memory", "memory.memsw.limit_in_bytes", "-1"),
            ]
        );
        assert_eq!(
            table(r#"{"memory": {"limit": 100, "swap": -1}}"#),
            vec![
                t("memory", "memory.limit_in_bytes", "100"),
                t("memory", "memory.memsw.limit_in_bytes", "-1"),
            ]
        );
        // Swap alone is written alone; the kernel checks it against the current limit.
        assert_eq!(
            table(r#"{"memory": {"swap": 4096}}"#),
            vec![t("memory", "memory.memsw.limit_in_bytes", "4096")]
        );
        // Equal values: no swap at all.
        assert_eq!(
            table(r#"{"memory": {"limit": 4096, "swap": 4096}}"#),
            vec![
                t("memory", "memory.limit_in_bytes", "4096"),
                t("memory", "memory.memsw.limit_in_bytes", "4096"),
            ]
        );
    }

    #[test]
    fn memory_errors_name_the_field() {
        let e = err(r#"{"memory": {"limit": 2000, "swap": 1000}}"#);
        assert!(
            e.starts_with("linux.resources.memory.swap: must be >= memory.limit"),
            "{e}"
        );
        let e = err(r#"{"memory": {"limit": -1, "swap": 1000}}"#);
        assert!(
            e.starts_with("linux.resources.memory.swap: must be >= memory.limit"),
            "{e}"
        );
        let e = err(r#"{"memory": {"limit": -2}}"#);
        assert!(e.starts_with("linux.resources.memory.limit: "), "{e}");
        let e = err(r#"{"memory": {"swap": -5}}"#);
        assert!(e.starts_with("linux.resources.memory.swap: "), "{e}");
        let e = err(r#"{"memory": {"reservation": -3}}"#);
        assert!(e.starts_with("linux.resources.memory.reservation: "), "{e}");
        let e = err(r#"{"memory": {"kernelTCP": -3}}"#);
        assert!(e.starts_with("linux.resources.memory.kernelTCP: "), "{e}");
        let e = err(r#"{"memory": {"swappiness": 101}}"#);
        assert!(e.starts_with("linux.resources.memory.swappiness: "), "{e}");
    }

    #[test]
    fn memory_swappiness_bounds() {
        assert_eq!(
            table(r#"{"memory": {"swappiness": 0}}"#),
            vec![t("memory", "memory.swappiness", "0")]
        );
        assert_eq!(
            table(r#"{"memory": {"swappiness": 100}}"#),
            vec![t("memory", "memory.swappiness", "100")]
        );
        // Go's uint64(-1): unset.
        assert!(table(r#"{"memory": {"swappiness": 18446744073709551615}}"#).is_empty());
    }

    #[test]
    fn cpu_all_fields_in_runc_order() {
        let json = r#"{"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 20000,
            "idle": 1, "realtimeRuntime": 950000, "realtimePeriod": 1000000,
            "cpus": "0-3,6", "mems": "0"}}"#;
        assert_eq!(
            table(json),
            vec![
                t("cpuset", "cpuset.cpus", "0-3,6"),
                t("cpuset", "cpuset.mems", "0"),
                t("cpu", "cpu.shares", "1024"),
                t("cpu", "cpu.cfs_period_us", "100000"),
                t("cpu", "cpu.cfs_burst_us", "20000"),
                t("cpu", "cpu.cfs_quota_us", "50000"),
                t("cpu", "cpu.idle", "1"),
                t("cpu", "cpu.rt_period_us", "1000000"),
                t("cpu", "cpu.rt_runtime_us", "950000"),
            ]
        );
        assert_eq!(controllers_needed(&res(json)), vec!["cpuset", "cpu"]);
    }

    #[test]
    fn cpu_quota_unlimited_and_single_fields() {
        assert_eq!(
            table(r#"{"cpu": {"quota": -1}}"#),
            vec![t("cpu", "cpu.cfs_quota_us", "-1")]
        );
        assert_eq!(
            table(r#"{"cpu": {"period": 250000}}"#),
            vec![t("cpu", "cpu.cfs_period_us", "250000")]
        );
        assert_eq!(
            table(r#"{"cpu": {"idle": 0}}"#),
            vec![t("cpu", "cpu.idle", "0")]
        );
        assert_eq!(
            table(r#"{"cpu": {"realtimeRuntime": -1}}"#),
            vec![t("cpu", "cpu.rt_runtime_us", "-1")]
        );
        assert_eq!(
            table(r#"{"cpu": {"mems": " 0-1 "}}"#),
            vec![t("cpuset", "cpuset.mems", "0-1")]
        );
    }

    #[test]
    fn cpu_errors_name_the_field() {
        for (json, field) in [
            (r#"{"cpu": {"shares": 1}}"#, "linux.resources.cpu.shares: "),
            (
                r#"{"cpu": {"shares": 262145}}"#,
                "linux.resources.cpu.shares: ",
            ),
            (r#"{"cpu": {"quota": -2}}"#, "linux.resources.cpu.quota: "),
            (r#"{"cpu": {"idle": 2}}"#, "linux.resources.cpu.idle: "),
            (
                r#"{"cpu": {"realtimeRuntime": -2}}"#,
                "linux.resources.cpu.realtimeRuntime: ",
            ),
            (
                r#"{"cpu": {"cpus": "0-3\nfoo"}}"#,
                "linux.resources.cpu.cpus: ",
            ),
            (r#"{"cpu": {"mems": "a"}}"#, "linux.resources.cpu.mems: "),
        ] {
            let e = err(json);
            assert!(e.starts_with(field), "{json}: {e}");
        }
        assert_eq!(
            table(r#"{"cpu": {"shares": 2}}"#),
            vec![t("cpu", "cpu.shares", "2")]
        );
        assert_eq!(
            table(r#"{"cpu": {"shares": 262144}}"#),
            vec![t("cpu", "cpu.shares", "262144")]
        );
    }

    #[test]
    fn pids_limit() {
        assert_eq!(
            table(r#"{"pids": {"limit": 42}}"#),
            vec![t("pids", "pids.max", "42")]
        );
        assert_eq!(
            table(r#"{"pids": {"limit": 0}}"#),
            vec![t("pids", "pids.max", "max")]
        );
        assert_eq!(
            table(r#"{"pids": {"limit": -1}}"#),
            vec![t("pids", "pids.max", "max")]
        );
    }

    #[test]
    fn blkio_all_fields() {
        let json = r#"{"blockIO": {"weight": 500, "leafWeight": 300,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 200},
                             {"major": 8, "minor": 16, "weight": 700},
                             {"major": 8, "minor": 32, "leafWeight": 100}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 259, "minor": 0, "rate": 0}]}}"#;
        assert_eq!(
            table(json),
            vec![
                t("blkio", "blkio.weight", "500"),
                t("blkio", "blkio.leaf_weight", "300"),
                t("blkio", "blkio.weight_device", "8:0 600"),
                t("blkio", "blkio.leaf_weight_device", "8:0 200"),
                t("blkio", "blkio.weight_device", "8:16 700"),
                t("blkio", "blkio.leaf_weight_device", "8:32 100"),
                t("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
                t("blkio", "blkio.throttle.write_bps_device", "8:0 2097152"),
                t("blkio", "blkio.throttle.read_iops_device", "8:16 100"),
                t("blkio", "blkio.throttle.write_iops_device", "259:0 0"),
            ]
        );
        let e = err(
            r#"{"blockIO": {"throttleReadIOPSDevice": [{"major": -8, "minor": 0, "rate": 1}]}}"#,
        );
        assert!(
            e.starts_with("linux.resources.blockIO.throttleReadIOPSDevice[0].major: "),
            "{e}"
        );
        let e = err(
            r#"{"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 10}, {"major": 8, "minor": -1}]}}"#,
        );
        assert!(
            e.starts_with("linux.resources.blockIO.weightDevice[1].minor: "),
            "{e}"
        );
    }

    #[test]
    fn hugetlb_limits() {
        let json = r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 209715200},
                                          {"pageSize": "1GB", "limit": -1}]}"#;
        assert_eq!(
            table(json),
            vec![
                t("hugetlb", "hugetlb.2MB.limit_in_bytes", "209715200"),
                t("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes", "209715200"),
                t("hugetlb", "hugetlb.1GB.limit_in_bytes", "-1"),
                t("hugetlb", "hugetlb.1GB.rsvd.limit_in_bytes", "-1"),
            ]
        );
        for bad in ["2M", "MB", "../2MB", "2 MB", "", "2mb", "2TB"] {
            let json = format!(r#"{{"hugepageLimits": [{{"pageSize": "{bad}", "limit": 1}}]}}"#);
            let e = err(&json);
            assert!(
                e.starts_with("linux.resources.hugepageLimits[0].pageSize: "),
                "{bad}: {e}"
            );
        }
        let e = err(r#"{"hugepageLimits": [{"pageSize": "64KB", "limit": -2}]}"#);
        assert!(
            e.starts_with("linux.resources.hugepageLimits[0].limit: "),
            "{e}"
        );
    }

    #[test]
    fn network_class_and_priorities() {
        let json = r#"{"network": {"classID": 1048577,
            "priorities": [{"name": "eth0", "priority": 500}, {"name": "lo", "priority": 0}]}}"#;
        assert_eq!(
            table(json),
            vec![
                t("net_cls", "net_cls.classid", "1048577"),
                t("net_prio", "net_prio.ifpriomap", "eth0 500"),
                t("net_prio", "net_prio.ifpriomap", "lo 0"),
            ]
        );
        assert_eq!(controllers_needed(&res(json)), vec!["net_cls", "net_prio"]);
        let e = err(r#"{"network": {"priorities": [{"name": "eth 0", "priority": 1}]}}"#);
        assert!(
            e.starts_with("linux.resources.network.priorities[0].name: "),
            "{e}"
        );
    }

    #[test]
    fn rdma_limits_sorted_and_partial() {
        let json = r#"{"rdma": {"mlx5_1": {"hcaHandles": 3},
                                "mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000},
                                "mlx5_0": {"hcaObjects": 10},
                                "unset": {}}}"#;
        assert_eq!(
            table(json),
            vec![
                t("rdma", "rdma.max", "mlx4_0 hca_handle=2 hca_object=2000"),
                t("rdma", "rdma.max", "mlx5_0 hca_object=10"),
                t("rdma", "rdma.max", "mlx5_1 hca_handle=3"),
            ]
        );
        let e = err(r#"{"rdma": {"bad dev": {"hcaHandles": 1}}}"#);
        assert!(e.starts_with("linux.resources.rdma[\"bad dev\"]: "), "{e}");
    }

    #[test]
    fn unified_requires_v2() {
        let e = err(r#"{"unified": {"memory.high": "1000"}}"#);
        assert!(
            e.starts_with("linux.resources.unified: invalid configuration: requires cgroup v2"),
            "{e}"
        );
        assert!(table(r#"{"unified": {}}"#).is_empty());
    }

    fn devices(json_rules: &str) -> Vec<(String, String)> {
        writes(&res(&format!(r#"{{"devices": {json_rules}}}"#)))
            .expect("writes")
            .into_iter()
            .map(|w| {
                assert_eq!(w.controller, "devices");
                (w.file, w.value)
            })
            .collect()
    }

    fn d(f: &str, v: &str) -> (String, String) {
        (f.to_string(), v.to_string())
    }

    #[test]
    fn devices_whitelist_formatting_and_order() {
        let rules = r#"[
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "mwr"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"},
            {"allow": true, "type": "b", "minor": 0, "access": "r"},
            {"allow": true, "type": "c", "major": 5, "minor": 0},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}
        ]"#;
        assert_eq!(
            devices(rules),
            // In the config's order (runc's), a repeated device merged into its first place.
            vec![
                d("devices.deny", "a"),
                d("devices.allow", "c 1:3 rwm"),
                d("devices.allow", "c 1:5 rwm"),
                d("devices.allow", "c 136:* rw"),
                d("devices.allow", "b *:0 r"),
                d("devices.allow", "c 5:0 rwm"),
            ]
        );
    }

    #[test]
    fn devices_empty_list_denies_everything_and_none_leaves_alone() {
        assert_eq!(devices("[]"), vec![d("devices.deny", "a")]);
        assert!(table("{}").is_empty());
    }

    #[test]
    fn devices_deny_removes_exception_and_type_a_resets() {
        let rules = r#"[
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"},
            {"allow": false, "type": "c", "major": 10, "minor": 200, "access": "rw"}
        ]"#;
        assert_eq!(
            devices(rules),
            vec![d("devices.deny", "a"), d("devices.allow", "c 1:3 rm")]
        );
        // Privileged: allow everything, then black-list one device.
        let rules = r#"[
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "w"}
        ]"#;
        assert_eq!(
            devices(rules),
            vec![d("devices.allow", "a"), d("devices.deny", "b 8:0 w")]
        );
        // "a" with explicit wildcards, as some configs spell it.
        let rules = r#"[{"allow": true, "type": "a", "major": -1, "minor": -1, "access": "rwm"}]"#;
        assert_eq!(devices(rules), vec![d("devices.allow", "a")]);
    }

    #[test]
    fn devices_errors_name_the_rule() {
        let e = err(r#"{"devices": [{"allow": true, "type": "u", "major": 1, "minor": 3}]}"#);
        assert!(e.starts_with("linux.resources.devices[0].type: "), "{e}");
        let e = err(
            r#"{"devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rx"}]}"#,
        );
        assert!(e.starts_with("linux.resources.devices[0].access: "), "{e}");
        let e = err(
            r#"{"devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": ""}]}"#,
        );
        assert!(e.starts_with("linux.resources.devices[0].access: "), "{e}");
        let e = err(r#"{"devices": [{"allow": true, "type": "c", "major": -7, "minor": 3}]}"#);
        assert!(e.starts_with("linux.resources.devices[0].major: "), "{e}");
        // Punching a hole into a wildcard exception cannot be done on v1.
        let e = err(
            r#"{"devices": [{"allow": true, "type": "c", "major": 136, "access": "rw"},
                            {"allow": false, "type": "c", "major": 136, "minor": 2, "access": "w"}]}"#,
        );
        assert!(
            e.starts_with("linux.resources.devices[1]: cannot deny \"c 136:2 w\""),
            "{e}"
        );
        // ...but removing the wildcard exception itself is fine.
        assert_eq!(
            devices(
                r#"[{"allow": true, "type": "c", "major": 136, "access": "rw"},
                    {"allow": false, "type": "c", "major": 136, "access": "rw"}]"#
            ),
            vec![d("devices.deny", "a")]
        );
    }

    #[test]
    fn every_hierarchy_in_runc_order() {
        let json = r#"{
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 1000}, "cpu": {"shares": 512, "cpus": "0"},
            "pids": {"limit": 10}, "blockIO": {"weight": 100},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "network": {"classID": 1, "priorities": [{"name": "eth0", "priority": 1}]},
            "rdma": {"mlx4_0": {"hcaHandles": 1}}}"#;
        assert_eq!(
            controllers_needed(&res(json)),
            vec![
                "cpuset", "devices", "memory", "cpu", "pids", "blkio", "hugetlb", "net_cls",
                "net_prio", "rdma"
            ]
        );
        let all = [
            "cpuset", "devices", "memory", "cpu", "pids", "blkio", "hugetlb", "net_cls",
            "net_prio", "rdma",
        ];
        check_controllers(&res(json), &all).expect("all available");
        let without = |c: &str| all.iter().copied().filter(|x| *x != c).collect::<Vec<_>>();
        for (missing, field) in [
            ("hugetlb", "linux.resources.hugepageLimits"),
            ("net_prio", "linux.resources.network.priorities"),
            ("net_cls", "linux.resources.network.classID"),
            ("cpuset", "linux.resources.cpu.cpus"),
            ("blkio", "linux.resources.blockIO"),
        ] {
            let e = check_controllers(&res(json), &without(missing)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{field}: needs the {missing} controller, which is not available")
            );
        }
        assert!(controllers_needed(&res(r#"{"cpu": {"shares": 1}}"#)).is_empty());
    }

    // -- apply() -------------------------------------------------------------------------

    /// A fake memory cgroup enforcing the kernel's limit <= memsw rule.
    struct FakeMemory {
        limit: i64,
        memsw: i64,
        has_memsw: bool,
        log: Vec<String>,
    }

    impl FakeMemory {
        fn write(&mut self, w: &Write) -> io::Result<()> {
            let v: i64 = match w.value.parse::<i64>().unwrap() {
                -1 => i64::MAX,
                n => n,
            };
            let ok = match w.file.as_str() {
                "memory.limit_in_bytes" => v <= self.memsw,
                "memory.memsw.limit_in_bytes" if !self.has_memsw => {
                    return Err(io::Error::from_raw_os_error(libc::ENOENT));
                }
                "memory.memsw.limit_in_bytes" => v >= self.limit,
                _ => true,
            };
            if !ok {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            match w.file.as_str() {
                "memory.limit_in_bytes" => self.limit = v,
                "memory.memsw.limit_in_bytes" => self.memsw = v,
                _ => {}
            }
            self.log.push(format!("{}={}", w.file, w.value));
            Ok(())
        }
    }

    fn apply_memory(limit: i64, memsw: i64, json: &str) -> (Result<()>, FakeMemory) {
        let mut fake = FakeMemory {
            limit,
            memsw,
            has_memsw: true,
            log: Vec::new(),
        };
        let ws = writes(&res(json)).unwrap();
        let result = apply(&ws, |w| fake.write(w));
        (result, fake)
    }

    #[test]
    fn apply_memory_pair_in_every_direction() {
        // Create: both unlimited.
        let (r, f) = apply_memory(
            i64::MAX,
            i64::MAX,
            r#"{"memory": {"limit": 100, "swap": 200}}"#,
        );
        r.unwrap();
        assert_eq!((f.limit, f.memsw), (100, 200));
        // Raise both: the limit is put off until memsw is raised.
        let (r, f) = apply_memory(100, 200, r#"{"memory": {"limit": 300, "swap": 400}}"#);
        r.unwrap();
        assert_eq!((f.limit, f.memsw), (300, 400));
        assert_eq!(
            f.log,
            vec![
                "memory.memsw.limit_in_bytes=400",
                "memory.limit_in_bytes=300"
            ]
        );
        // Lower both.
        let (r, f) = apply_memory(300, 400, r#"{"memory": {"limit": 100, "swap": 150}}"#);
        r.unwrap();
        assert_eq!((f.limit, f.memsw), (100, 150));
        // Lift both (implicit memsw -1).
        let (r, f) = apply_memory(100, 150, r#"{"memory": {"limit": -1}}"#);
        r.unwrap();
        assert_eq!((f.limit, f.memsw), (i64::MAX, i64::MAX));
        // A limit above the (kept) memsw fails, naming the file.
        let (r, _) = apply_memory(100, 150, r#"{"memory": {"limit": 300}}"#);
        let e = r.unwrap_err().to_string();
        assert!(
            e.starts_with("linux.resources.memory: writing \"300\" to memory.limit_in_bytes (memory controller): "),
            "{e}"
        );
    }

    #[test]
    fn apply_tolerates_missing_memsw_only_for_unlimited() {
        let mut fake = FakeMemory {
            limit: 100,
            memsw: i64::MAX,
            has_memsw: false,
            log: Vec::new(),
        };
        let ws = writes(&res(r#"{"memory": {"limit": -1}}"#)).unwrap();
        apply(&ws, |w| fake.write(w)).unwrap();
        assert_eq!(fake.log, vec!["memory.limit_in_bytes=-1"]);
        let ws = writes(&res(r#"{"memory": {"limit": 100, "swap": 200}}"#)).unwrap();
        let e = apply(&ws, |w| fake.write(w)).unwrap_err().to_string();
        assert!(e.contains("memory.memsw.limit_in_bytes"), "{e}");
    }

    #[test]
    fn apply_cpu_period_retried_after_quota() {
        // Fake: period may only shrink once the quota fits (quota/period <= 2 CPUs).
        let mut quota = 200_000i64;
        let mut period = 100_000i64;
        let mut log = Vec::new();
        let ws = writes(&res(r#"{"cpu": {"quota": 20000, "period": 10000}}"#)).unwrap();
        apply(&ws, |w| {
            let v: i64 = w.value.parse().unwrap();
            match w.file.as_str() {
                "cpu.cfs_period_us" if quota > 2 * v => {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                }
                "cpu.cfs_period_us" => period = v,
                "cpu.cfs_quota_us" => quota = v,
                _ => {}
            }
            log.push(w.file.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!((quota, period), (20000, 10000));
        assert_eq!(log, vec!["cpu.cfs_quota_us", "cpu.cfs_period_us"]);
    }

    #[test]
    fn apply_blkio_weight_falls_back_to_bfq_and_rsvd_is_optional() {
        let ws = writes(&res(
            r#"{"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 50}]},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#,
        ))
        .unwrap();
        let mut log = Vec::new();
        apply(&ws, |w| {
            if matches!(
                w.file.as_str(),
                "blkio.weight" | "blkio.weight_device" | "hugetlb.2MB.rsvd.limit_in_bytes"
            ) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            log.push(w.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            log,
            vec![
                "blkio:blkio.bfq.weight = \"300\"",
                "blkio:blkio.bfq.weight_device = \"8:0 50\"",
                "hugetlb:hugetlb.2MB.limit_in_bytes = \"4194304\"",
            ]
        );
        // Other missing files are errors, named after the last file tried.
        let e = apply(&ws, |_| Err(io::Error::from_raw_os_error(libc::ENOENT))).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "linux.resources.blockIO: writing \"300\" to blkio.bfq.weight (blkio controller): "
            ),
            "{e}"
        );
    }

    #[test]
    fn apply_stops_at_first_error_and_does_not_retry_without_partner() {
        let ws = writes(&res(r#"{"cpu": {"period": 100000}, "pids": {"limit": 5}}"#)).unwrap();
        let mut n = 0;
        let e = apply(&ws, |_| {
            n += 1;
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        })
        .unwrap_err();
        assert_eq!(n, 1);
        assert!(e.to_string().contains("cpu.cfs_period_us"), "{e}");
    }
}
