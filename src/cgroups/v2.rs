//! cgroup v2: OCI `linux.resources` → the ordered list of cgroupfs writes.
//!
//! Everything here is pure: [`writes`] validates the configuration and returns the files
//! to write into the container's cgroup directory, in runc's order: pids, memory, io,
//! cpu, cpuset, hugetlb, rdma, then the `unified` map (so its keys override the typed
//! fields, as in runc). `linux.resources.devices` is ignored here: on v2 device access
//! is enforced by an eBPF program attached elsewhere.
//!
//! The OCI fields are cgroup v1 shaped; conversions follow runc:
//! * `cpu.shares` → `cpu.weight` = 1 + ((shares - 2) * 9999) / 262142 ([`shares_to_weight`]);
//! * `memory.swap` (memory+swap) → `memory.swap.max` = swap - limit ([`swap_max`]);
//! * `blockIO.weight` (10..1000) → `io.weight` = 1 + (w - 10) * 9999 / 990
//!   ([`blkio_weight_to_io_weight`]);
//! * -1 → "max".
//!
//! v1-only fields are errors naming the field when set: `memory.swappiness`,
//! `cpu.realtimeRuntime`, `cpu.realtimePeriod`, `network.classID`, `network.priorities`.
//! Ignored (as runc does): `memory.kernel` and `memory.kernelTCP` (v2 always accounts
//! kernel and socket memory in memory.max), `memory.disableOOMKiller` (no v2 knob),
//! `memory.useHierarchy` (v2 is always hierarchical), `blockIO.leafWeight` and the
//! per-device `leafWeight` (no v2 equivalent).
//!
//! [`apply`] performs the writes with runc's retry rules (see there): `cpu.max.burst`
//! retried after `cpu.max` on EINVAL, `io.weight` falling back to `io.bfq.weight`, and a
//! missing `memory.swap.max` tolerated when it would only lift or disable swap.

// rrun is a binary: whichever of these entry points (controllers_needed,
// check_controllers, apply, ...) the driver does not call would fail
// `clippy --all-targets -D warnings`. The scratch lib build checks them without this.

use std::collections::BTreeMap;
use std::io;

use anyhow::{Result, bail};
use oci_spec::runtime::LinuxResources;

pub use super::v1::Write;
#[allow(unused_imports)] // for `rrun update`, which may live elsewhere
use super::v1::{
    ApplyRules, apply_with, cpu_idle, cpu_quota, cpu_shares, cpuset_writes, device_number,
    hugetlb_writes, memory_value, pids_writes, rdma_writes, swappiness,
};

const RES: &str = "linux.resources";

/// The cgroup v2 writes for `r`, in the order they must be done. See the module docs.
pub fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = typed_writes(r)?;
    out.extend(unified_writes(r)?);
    Ok(out)
}

/// The v2 controllers that `r` needs (to be enabled in the parent's
/// `cgroup.subtree_control`), in [`writes`] order, without duplicates. Core files
/// (`cgroup.*`) need none. An invalid configuration gives an empty list: [`writes`]
/// reports what is wrong with it.
#[cfg(test)]
pub fn controllers_needed(r: &LinuxResources) -> Vec<&'static str> {
    super::v1::distinct_controllers(&writes(r).unwrap_or_default())
}

/// Fails, naming the field, when `r` needs a controller that is not in `available`
/// (e.g. `linux.resources.hugepageLimits: needs the hugetlb controller, which is not
/// available`). Also fails when [`writes`] would.
pub fn check_controllers(r: &LinuxResources, available: &[&str]) -> Result<()> {
    let missing = |w: &Write| !w.controller.is_empty() && !available.contains(&w.controller);
    for w in typed_writes(r)? {
        if missing(&w) {
            bail!(
                "{}: needs the {} controller, which is not available",
                field_of(&w),
                w.controller
            );
        }
    }
    for w in unified_writes(r)? {
        if missing(&w) {
            bail!(
                "{RES}.unified[{:?}]: needs the {} controller, which is not available",
                w.file,
                w.controller
            );
        }
    }
    Ok(())
}

/// Performs `writes` through `write` (which writes one value into one file of the
/// container's cgroup and returns the OS error unchanged), with runc's retry rules:
///
/// * `cpu.max.burst` failing with EINVAL (the new burst does not fit the old quota) is put
///   off and retried right after `cpu.max`, when that comes later in the list.
/// * `io.weight` missing (ENOENT: no io.cost support) is written to `io.bfq.weight`
///   instead, converted back to BFQ's 1..1000 scale ([`io_weight_to_bfq_weight`]), device
///   entries ("maj:min w") included. Note runc prefers `io.bfq.weight` when both exist.
/// * ENOENT is ignored for `memory.swap.max` = "max" or "0" (no swap accounting: nothing
///   to lift or disable) and for `hugetlb.*.rsvd.max`.
///
/// The error names the file and value; the caller adds the cgroup path.
pub fn apply(writes: &[Write], mut write: impl FnMut(&Write) -> io::Result<()>) -> Result<()> {
    apply_with(writes, &mut write, &V2_RULES)
}

const V2_RULES: ApplyRules = ApplyRules {
    partner: |file| (file == "cpu.max.burst").then_some("cpu.max"),
    alternative: |w| {
        if w.file != "io.weight" {
            return None;
        }
        let (device, weight) = match w.value.rsplit_once(' ') {
            Some((device, weight)) => (Some(device), weight),
            None => (None, w.value.as_str()),
        };
        let bfq = io_weight_to_bfq_weight(weight.trim().parse().ok()?);
        let value = match device {
            Some(device) => format!("{device} {bfq}"),
            None => bfq.to_string(),
        };
        let mut bfq = Write::new("io", "io.bfq.weight", value);
        bfq.unified = w.unified;
        Some(bfq)
    },
    missing_ok: |w| {
        (w.file == "memory.swap.max" && (w.value == "max" || w.value == "0"))
            || (w.file.starts_with("hugetlb.") && w.file.ends_with(".rsvd.max"))
    },
    field: field_of,
};

/// runc's cpu.shares (2..=262144) → cpu.weight (1..=10000) conversion; 0 stays 0 (unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// runc's blkio weight (10..=1000) → io.weight (1..=10000) conversion; 0 stays 0 (unset).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

/// The inverse of [`blkio_weight_to_io_weight`] (exact for every weight in 10..=1000),
/// mapping io.weight's 1..=10000 onto BFQ's 10..=1000.
pub fn io_weight_to_bfq_weight(io_weight: u64) -> u64 {
    10 + (io_weight.clamp(1, 10_000) - 1)
        .saturating_mul(990)
        .div_ceil(9999)
}

/// The `memory.swap.max` value for OCI `limit` and `swap` (memory+swap), following runc:
/// * swap unset: "max" if the limit is -1 (unlimited memory means unlimited swap), else
///   no write;
/// * swap -1: "max";
/// * limit -1: swap as is (there is no memory amount to subtract);
/// * swap without a limit: error (the swap share cannot be computed);
/// * swap < limit: error; swap == limit: "0" (no swap);
/// * otherwise swap - limit.
///
/// 0 means unset for both, as in runc.
pub fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>> {
    let limit = memory_value(limit, "limit")?;
    let swap = memory_value(swap, "swap")?;
    Ok(match (limit, swap) {
        (Some(-1), None) | (_, Some(-1)) => Some("max".to_string()),
        (_, None) => None,
        (Some(-1), Some(s)) => Some(s.to_string()),
        (None, Some(s)) => bail!(
            "{RES}.memory.swap: cannot be set without memory.limit on cgroup v2 \
             (swap {s} counts memory+swap; set memory.limit, or swap -1 for unlimited)"
        ),
        (Some(l), Some(s)) if s < l => bail!(
            "{RES}.memory.swap: must be >= memory.limit (swap {s} < limit {l}); swap counts memory+swap"
        ),
        (Some(l), Some(s)) => Some((s - l).to_string()),
    })
}

fn typed_writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    reject_v1_only(r)?;
    pids_writes(r, &mut out);
    memory_writes(r, &mut out)?;
    io_writes(r, &mut out)?;
    cpu_writes(r, &mut out)?;
    // devices: enforced by the eBPF device filter, not by files.
    cpuset_writes(r, &mut out)?;
    hugetlb_writes(r, &mut out, "max", "max")?;
    rdma_writes(r, &mut out)?;
    Ok(out)
}

fn reject_v1_only(r: &LinuxResources) -> Result<()> {
    let unsupported = |field: &str| {
        Err(anyhow::anyhow!(
            "{RES}.{field}: not supported on cgroup v2 (remove it from the configuration)"
        ))
    };
    if swappiness(r).is_some() {
        return unsupported("memory.swappiness");
    }
    if let Some(cpu) = r.cpu() {
        if cpu.realtime_runtime().is_some_and(|v| v != 0) {
            return unsupported("cpu.realtimeRuntime");
        }
        if cpu.realtime_period().is_some_and(|v| v != 0) {
            return unsupported("cpu.realtimePeriod");
        }
    }
    if let Some(net) = r.network() {
        if net.class_id().is_some_and(|v| v != 0) {
            return unsupported("network.classID");
        }
        if net.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return unsupported("network.priorities");
        }
    }
    Ok(())
}

fn memory_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(m) = r.memory() else { return Ok(()) };
    // Swap first, as runc does: memory.swap.max and memory.max are independent on v2.
    if let Some(v) = swap_max(m.limit(), m.swap())? {
        out.push(Write::new("memory", "memory.swap.max", v));
    }
    if let Some(l) = memory_value(m.limit(), "limit")? {
        out.push(Write::new("memory", "memory.max", max_or(l)));
    }
    if let Some(v) = memory_value(m.reservation(), "reservation")? {
        out.push(Write::new("memory", "memory.low", max_or(v)));
    }
    // kernel, kernelTCP, disableOOMKiller, useHierarchy: ignored, see the module docs.
    // checkBeforeUpdate: no write, see check_before_update().
    Ok(())
}

fn io_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(b) = r.block_io() else { return Ok(()) };
    let io_weight = |w: u16, path: &str| -> Result<u64> {
        if !(10..=1000).contains(&w) {
            bail!("{path}: must be between 10 and 1000 (got {w})");
        }
        Ok(blkio_weight_to_io_weight(w))
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        let v = io_weight(w, &format!("{RES}.blockIO.weight"))?;
        out.push(Write::new("io", "io.weight", v.to_string()));
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let path = format!("{RES}.blockIO.weightDevice[{i}]");
        let dev = device_number(d.major(), d.minor(), &path)?;
        if let Some(w) = d.weight().filter(|&w| w != 0) {
            let v = io_weight(w, &format!("{path}.weight"))?;
            out.push(Write::new("io", "io.weight", format!("{dev} {v}")));
        }
    }
    for (name, list, key) in [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "rbps",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "wbps",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "riops",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "wiops",
        ),
    ] {
        for (i, t) in list.iter().flatten().enumerate() {
            let dev = device_number(t.major(), t.minor(), &format!("{RES}.blockIO.{name}[{i}]"))?;
            // A rate of 0 removes the limit, as on v1.
            let rate = match t.rate() {
                0 => "max".to_string(),
                n => n.to_string(),
            };
            out.push(Write::new("io", "io.max", format!("{dev} {key}={rate}")));
        }
    }
    Ok(())
}

fn cpu_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    let Some(cpu) = r.cpu() else { return Ok(()) };
    let idle = cpu_idle(r)?;
    if let Some(i) = idle {
        out.push(Write::new("cpu", "cpu.idle", i.to_string()));
    }
    // The kernel refuses cpu.weight while the group is idle.
    if let Some(s) = cpu_shares(r)?.filter(|_| idle.unwrap_or(0) == 0) {
        out.push(Write::new(
            "cpu",
            "cpu.weight",
            shares_to_weight(s).to_string(),
        ));
    }
    // Burst before cpu.max; apply() retries it after cpu.max on EINVAL.
    if let Some(b) = cpu.burst() {
        out.push(Write::new("cpu", "cpu.max.burst", b.to_string()));
    }
    let quota = cpu_quota(r)?;
    let period = cpu.period().filter(|&p| p != 0);
    if quota.is_some() || period.is_some() {
        let quota = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        // The kernel's default period, as runc writes it when only the quota is given.
        let period = period.unwrap_or(100_000);
        out.push(Write::new("cpu", "cpu.max", format!("{quota} {period}")));
    }
    Ok(())
}

/// Controllers whose interface files may be set through `unified`.
const UNIFIED_CONTROLLERS: &[&str] = &[
    "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc", "dmem",
];

/// The `unified` map in key order: one write per key, to the file of that name.
fn unified_writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(unified) = r.unified() else {
        return Ok(Vec::new());
    };
    let sorted: BTreeMap<_, _> = unified.iter().collect();
    let mut out = Vec::new();
    for (key, value) in sorted {
        let mut w = Write::new(unified_controller(key)?, key.clone(), value.clone());
        w.unified = true;
        out.push(w);
    }
    Ok(out)
}

/// The controller owning the file `key` ("" for cgroup core files), or an error when
/// `key` is not a plain "<controller>.<name>" file name.
fn unified_controller(key: &str) -> Result<&'static str> {
    let path = format!("{RES}.unified[{key:?}]");
    if key.contains('/') || key.contains("..") {
        bail!("{path}: must be a file name in the container's cgroup (no '/' or '..')");
    }
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c.is_control()) {
        bail!("{path}: not a cgroup file name");
    }
    let Some((prefix, rest)) = key.split_once('.') else {
        bail!("{path}: must be of the form <controller>.<file>, like \"memory.high\"");
    };
    if rest.is_empty() {
        bail!("{path}: must be of the form <controller>.<file>, like \"memory.high\"");
    }
    if prefix == "cgroup" {
        return Ok("");
    }
    UNIFIED_CONTROLLERS
        .iter()
        .copied()
        .find(|c| *c == prefix)
        .ok_or_else(|| {
            anyhow::anyhow!("{path}: {prefix:?} is not a cgroup v2 controller with files to set")
        })
}

/// The JSON path of the configuration field a v2 write comes from.
fn field_of(w: &Write) -> String {
    if w.unified {
        return format!("{RES}.unified[{:?}]", w.file);
    }
    let field = match w.controller {
        "cpuset" if w.file == "cpuset.mems" => "cpu.mems",
        "cpuset" => "cpu.cpus",
        "io" => "blockIO",
        "hugetlb" => "hugepageLimits",
        other => other,
    };
    format!("{RES}.{field}")
}

fn max_or(v: i64) -> String {
    if v == -1 {
        "max".to_string()
    } else {
        v.to_string()
    }
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
                    "rdma": {}, "unified": {}, "devices": []}"#
            )
            .is_empty()
        );
        assert!(controllers_needed(&res("{}")).is_empty());
    }

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(
            table(r#"{"cpu": {"shares": 1024}}"#),
            vec![t("cpu", "cpu.weight", "39")]
        );
        assert_eq!(
            table(r#"{"cpu": {"shares": 512}}"#),
            vec![t("cpu", "cpu.weight", "20")]
        );
        let e = err(r#"{"cpu": {"shares": 1}}"#);
        assert!(e.starts_with("linux.resources.cpu.shares: "), "{e}");
        let e = err(r#"{"cpu": {"shares": 262145}}"#);
        assert!(e.starts_with("linux.resources.cpu.shares: "), "{e}");
    }

    #[test]
    fn swap_arithmetic() {
        let s = |l: Option<i64>, w: Option<i64>| swap_max(l, w).unwrap();
        assert_eq!(s(Some(100), Some(300)), Some("200".into()));
        assert_eq!(s(Some(100), Some(100)), Some("0".into()));
        assert_eq!(s(Some(100), Some(-1)), Some("max".into()));
        assert_eq!(s(Some(-1), None), Some("max".into()));
        assert_eq!(s(Some(-1), Some(-1)), Some("max".into()));
        assert_eq!(s(Some(-1), Some(500)), Some("500".into()));
        assert_eq!(s(Some(100), None), None);
        assert_eq!(s(None, None), None);
        assert_eq!(s(Some(100), Some(0)), None);
        assert_eq!(s(None, Some(-1)), Some("max".into()));
        let e = |l, w| format!("{:#}", swap_max(l, w).unwrap_err());
        assert!(
            e(Some(300), Some(100))
                .starts_with("linux.resources.memory.swap: must be >= memory.limit")
        );
        assert!(
            e(None, Some(100)).starts_with("linux.resources.memory.swap: cannot be set without")
        );
        assert!(
            e(Some(0), Some(100)).starts_with("linux.resources.memory.swap: cannot be set without")
        );
        assert!(e(Some(-2), Some(100)).starts_with("linux.resources.memory.limit: "));
        assert!(e(Some(100), Some(-2)).starts_with("linux.resources.memory.swap: "));
    }

    #[test]
    fn memory_writes_in_runc_order() {
        let json = r#"{"memory": {"limit": 1000, "swap": 3000, "reservation": 500,
            "kernel": 5, "kernelTCP": 6, "disableOOMKiller": true, "useHierarchy": true,
            "checkBeforeUpdate": true}}"#;
        assert_eq!(
            table(json),
            vec![
                t("memory", "memory.swap.max", "2000"),
                t("memory", "memory.max", "1000"),
                t("memory", "memory.low", "500"),
            ]
        );
        assert!(super::super::v1::check_before_update(&res(json)));
        assert_eq!(
            table(r#"{"memory": {"limit": -1, "reservation": -1}}"#),
            vec![
                t("memory", "memory.swap.max", "max"),
                t("memory", "memory.max", "max"),
                t("memory", "memory.low", "max"),
            ]
        );
        let e = err(r#"{"memory": {"limit": 3000, "swap": 1000}}"#);
        assert!(
            e.starts_with("linux.resources.memory.swap: must be >= memory.limit"),
            "{e}"
        );
        let e = err(r#"{"memory": {"reservation": -9}}"#);
        assert!(e.starts_with("linux.resources.memory.reservation: "), "{e}");
    }

    #[test]
    fn v1_only_fields_are_errors_naming_the_field() {
        for (json, field) in [
            (r#"{"memory": {"swappiness": 0}}"#, "memory.swappiness"),
            (
                r#"{"cpu": {"realtimeRuntime": 1000}}"#,
                "cpu.realtimeRuntime",
            ),
            (r#"{"cpu": {"realtimePeriod": 1000}}"#, "cpu.realtimePeriod"),
            (r#"{"network": {"classID": 7}}"#, "network.classID"),
            (
                r#"{"network": {"priorities": [{"name": "eth0", "priority": 1}]}}"#,
                "network.priorities",
            ),
        ] {
            let e = err(json);
            assert_eq!(
                e,
                format!(
                    "linux.resources.{field}: not supported on cgroup v2 (remove it from the configuration)"
                ),
                "{json}"
            );
        }
        // Unset-like values are accepted.
        assert!(
            table(
                r#"{"memory": {"swappiness": 18446744073709551615}, "network": {"classID": 0,
                    "priorities": []}, "cpu": {"realtimeRuntime": 0, "realtimePeriod": 0}}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn cpu_max_combinations() {
        let cpu = |json: &str| table(&format!(r#"{{"cpu": {json}}}"#));
        assert_eq!(
            cpu(r#"{"quota": 50000, "period": 100000}"#),
            vec![t("cpu", "cpu.max", "50000 100000")]
        );
        assert_eq!(
            cpu(r#"{"quota": 20000}"#),
            vec![t("cpu", "cpu.max", "20000 100000")]
        );
        assert_eq!(
            cpu(r#"{"period": 50000}"#),
            vec![t("cpu", "cpu.max", "max 50000")]
        );
        assert_eq!(
            cpu(r#"{"quota": -1, "period": 50000}"#),
            vec![t("cpu", "cpu.max", "max 50000")]
        );
        assert_eq!(
            cpu(r#"{"quota": -1}"#),
            vec![t("cpu", "cpu.max", "max 100000")]
        );
        assert!(cpu(r#"{"quota": 0, "period": 0}"#).is_empty());
        let e = err(r#"{"cpu": {"quota": -5}}"#);
        assert!(e.starts_with("linux.resources.cpu.quota: "), "{e}");
    }

    #[test]
    fn cpu_all_fields_in_runc_order() {
        let json = r#"{"cpu": {"shares": 1024, "quota": 50000, "period": 100000,
            "burst": 10000, "idle": 0, "cpus": "0-1", "mems": "0"}}"#;
        assert_eq!(
            table(json),
            vec![
                t("cpu", "cpu.idle", "0"),
                t("cpu", "cpu.weight", "39"),
                t("cpu", "cpu.max.burst", "10000"),
                t("cpu", "cpu.max", "50000 100000"),
                t("cpuset", "cpuset.cpus", "0-1"),
                t("cpuset", "cpuset.mems", "0"),
            ]
        );
        // An idle group takes no weight.
        assert_eq!(
            table(r#"{"cpu": {"shares": 1024, "idle": 1}}"#),
            vec![t("cpu", "cpu.idle", "1")]
        );
        let e = err(r#"{"cpu": {"idle": -1}}"#);
        assert!(e.starts_with("linux.resources.cpu.idle: "), "{e}");
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
    fn blkio_weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        for w in 10..=1000u16 {
            assert_eq!(
                io_weight_to_bfq_weight(blkio_weight_to_io_weight(w)),
                u64::from(w),
                "{w}"
            );
        }
        assert_eq!(io_weight_to_bfq_weight(100), 20);
        assert_eq!(io_weight_to_bfq_weight(0), 10);
        assert_eq!(io_weight_to_bfq_weight(u64::MAX), 1000);
    }

    #[test]
    fn io_all_fields() {
        let json = r#"{"blockIO": {"weight": 500, "leafWeight": 300,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 1000, "leafWeight": 200},
                             {"major": 8, "minor": 32, "leafWeight": 100}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 259, "minor": 0, "rate": 0}]}}"#;
        assert_eq!(
            table(json),
            vec![
                t("io", "io.weight", "4950"),
                t("io", "io.weight", "8:0 10000"),
                t("io", "io.max", "8:0 rbps=1048576"),
                t("io", "io.max", "8:0 wbps=2097152"),
                t("io", "io.max", "8:16 riops=100"),
                t("io", "io.max", "259:0 wiops=max"),
            ]
        );
        let e = err(r#"{"blockIO": {"weight": 5}}"#);
        assert!(e.starts_with("linux.resources.blockIO.weight: "), "{e}");
        let e = err(r#"{"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 1001}]}}"#);
        assert!(
            e.starts_with("linux.resources.blockIO.weightDevice[0].weight: "),
            "{e}"
        );
        let e = err(
            r#"{"blockIO": {"throttleWriteBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}}"#,
        );
        assert!(
            e.starts_with("linux.resources.blockIO.throttleWriteBpsDevice[0].major: "),
            "{e}"
        );
    }

    #[test]
    fn hugetlb_rdma_and_devices() {
        let json = r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152},
                                          {"pageSize": "1GB", "limit": -1}],
            "rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}},
            "devices": [{"allow": false, "access": "rwm"}]}"#;
        assert_eq!(
            table(json),
            vec![
                t("hugetlb", "hugetlb.2MB.max", "2097152"),
                t("hugetlb", "hugetlb.2MB.rsvd.max", "2097152"),
                t("hugetlb", "hugetlb.1GB.max", "max"),
                t("hugetlb", "hugetlb.1GB.rsvd.max", "max"),
                t("rdma", "rdma.max", "mlx4_0 hca_handle=2 hca_object=2000"),
            ]
        );
        let e = err(r#"{"hugepageLimits": [{"pageSize": "2MB/../x", "limit": 1}]}"#);
        assert!(
            e.starts_with("linux.resources.hugepageLimits[0].pageSize: "),
            "{e}"
        );
    }

    #[test]
    fn unified_keys_map_to_controllers_after_typed_writes() {
        let json = r#"{"pids": {"limit": 10}, "unified": {"memory.high": "1000000",
            "cgroup.freeze": "0", "io.weight": "default 200", "misc.max": "res_a 1",
            "memory.oom.group": "1"}}"#;
        assert_eq!(
            table(json),
            vec![
                t("pids", "pids.max", "10"),
                t("", "cgroup.freeze", "0"),
                t("io", "io.weight", "default 200"),
                t("memory", "memory.high", "1000000"),
                t("memory", "memory.oom.group", "1"),
                t("misc", "misc.max", "res_a 1"),
            ]
        );
        assert_eq!(
            controllers_needed(&res(json)),
            vec!["pids", "io", "memory", "misc"]
        );
    }

    #[test]
    fn unified_key_validation() {
        for bad in [
            "../memory.max",
            "memory.max/../../x",
            "foo/bar",
            "memory..max",
            "..",
            "",
            "memory",
            "memory.",
            "memory.max\n",
            "memory .max",
            "net_cls.classid",
            "bogus.file",
        ] {
            let json = serde_json::json!({ "unified": { bad: "1" } }).to_string();
            let e = err(&json);
            assert!(
                e.starts_with(&format!("linux.resources.unified[{bad:?}]: ")),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn check_controllers_names_the_field() {
        let json = r#"{"memory": {"limit": 100}, "cpu": {"mems": "0"},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}], "blockIO": {"weight": 100},
            "unified": {"misc.max": "x 1", "cgroup.max.depth": "3"}}"#;
        let all = ["memory", "cpuset", "hugetlb", "io", "misc"];
        check_controllers(&res(json), &all).expect("all available");
        let without = |c: &str| all.iter().copied().filter(|x| *x != c).collect::<Vec<_>>();
        for (missing, field) in [
            ("hugetlb", "linux.resources.hugepageLimits"),
            ("cpuset", "linux.resources.cpu.mems"),
            ("io", "linux.resources.blockIO"),
            ("memory", "linux.resources.memory"),
            ("misc", "linux.resources.unified[\"misc.max\"]"),
        ] {
            let e = check_controllers(&res(json), &without(missing)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{field}: needs the {missing} controller, which is not available")
            );
        }
    }

    // -- apply() -------------------------------------------------------------------------

    #[test]
    fn apply_retries_burst_after_cpu_max() {
        // Fake kernel: burst must not exceed the quota.
        let mut quota = 10_000u64;
        let mut log = Vec::new();
        let ws = writes(&res(r#"{"cpu": {"quota": 50000, "burst": 40000}}"#)).unwrap();
        apply(&ws, |w| {
            match w.file.as_str() {
                "cpu.max.burst" if w.value.parse::<u64>().unwrap() > quota => {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                }
                "cpu.max" => quota = w.value.split(' ').next().unwrap().parse().unwrap(),
                _ => {}
            }
            log.push(w.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            log,
            vec![
                "cpu:cpu.max = \"50000 100000\"",
                "cpu:cpu.max.burst = \"40000\""
            ]
        );
        // Burst alone has no partner: the EINVAL is the answer.
        let ws = writes(&res(r#"{"cpu": {"burst": 40000}}"#)).unwrap();
        let e = apply(&ws, |_| Err(io::Error::from_raw_os_error(libc::EINVAL))).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "linux.resources.cpu: writing \"40000\" to cpu.max.burst (cpu controller): "
            ),
            "{e}"
        );
    }

    #[test]
    fn apply_io_weight_falls_back_to_bfq() {
        let ws = writes(&res(
            r#"{"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}]}}"#,
        ))
        .unwrap();
        let mut log = Vec::new();
        apply(&ws, |w| {
            if w.file == "io.weight" {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            log.push(w.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            log,
            vec![
                "io:io.bfq.weight = \"500\"",
                "io:io.bfq.weight = \"8:0 300\""
            ]
        );
        // Both missing: the error names the last file tried.
        let e = apply(&ws, |_| Err(io::Error::from_raw_os_error(libc::ENOENT))).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "linux.resources.blockIO: writing \"500\" to io.bfq.weight (io controller): "
            ),
            "{e}"
        );
    }

    #[test]
    fn apply_tolerates_missing_swap_only_when_lifting_or_disabling() {
        let enoent_swap = |w: &Write| {
            if w.file == "memory.swap.max" || w.file.ends_with(".rsvd.max") {
                Err(io::Error::from_raw_os_error(libc::ENOENT))
            } else {
                Ok(())
            }
        };
        for json in [
            r#"{"memory": {"limit": -1}}"#,
            r#"{"memory": {"limit": 100, "swap": 100}}"#,
            r#"{"memory": {"limit": 100, "swap": -1}}"#,
            r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}"#,
        ] {
            apply(&writes(&res(json)).unwrap(), enoent_swap).expect(json);
        }
        let ws = writes(&res(r#"{"memory": {"limit": 100, "swap": 300}}"#)).unwrap();
        let e = apply(&ws, enoent_swap).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "linux.resources.memory: writing \"200\" to memory.swap.max (memory controller): "
            ),
            "{e}"
        );
    }

    #[test]
    fn apply_core_file_error_has_no_controller() {
        let ws = writes(&res(r#"{"unified": {"cgroup.max.depth": "2"}}"#)).unwrap();
        let e = apply(&ws, |_| Err(io::Error::from_raw_os_error(libc::EACCES))).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "linux.resources.unified[\"cgroup.max.depth\"]: writing \"2\" to cgroup.max.depth: "
            ),
            "{e}"
        );
    }
}
