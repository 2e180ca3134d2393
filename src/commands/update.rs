//! `update`: new limits for a running container, from `--resources` JSON and/or flags.

use crate::cli::UpdateArgs;
use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::LinuxResources;
use std::io::Read;
use std::path::Path;

/// "1024", "512k", "100m", "1g" (binary units, as runc), or -1.
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches('b').trim_end_matches('i');
    let (n, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = n
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid size {s:?}"))?;
    if v < 0.0 {
        bail!("invalid size {s:?}");
    }
    Ok((v * mult as f64) as i64)
}

fn merge(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r: LinuxResources = match a.resources.as_deref() {
        None => LinuxResources::default(),
        Some(src) => {
            let mut data = Vec::new();
            if src == "-" {
                std::io::stdin()
                    .read_to_end(&mut data)
                    .map_err(|e| anyhow!("read resources from stdin: {e}"))?;
            } else {
                data = std::fs::read(src)
                    .map_err(|e| anyhow!("read {src}: {}", crate::sys::io_errno(&e)))?;
            }
            crate::spec::decode("resources", &data)?
        }
    };
    // Like runc, update never changes device rules.
    r.set_devices(None);
    let mut mem = (*r.memory()).unwrap_or_default();
    let mut mem_set = r.memory().is_some();
    let size = |v: &Option<String>| v.as_deref().map(parse_size).transpose();
    if let Some(v) = size(&a.memory)? {
        mem.set_limit(Some(v));
        mem_set = true;
    }
    if let Some(v) = size(&a.memory_reservation)? {
        mem.set_reservation(Some(v));
        mem_set = true;
    }
    if let Some(v) = size(&a.memory_swap)? {
        mem.set_swap(Some(v));
        mem_set = true;
    }
    if let Some(v) = size(&a.kernel_memory)? {
        mem.set_kernel(Some(v));
        mem_set = true;
    }
    if let Some(v) = size(&a.kernel_memory_tcp)? {
        mem.set_kernel_tcp(Some(v));
        mem_set = true;
    }
    if mem_set {
        r.set_memory(Some(mem));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    let mut cpu_set = r.cpu().is_some();
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_burst {
        cpu.set_burst(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_idle {
        cpu.set_idle(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    if let Some(v) = a.pids_limit {
        let mut p = (*r.pids()).unwrap_or_default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(v) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(v));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

pub fn run(root: &Path, a: &UpdateArgs) -> Result<()> {
    let r = merge(a)?;
    let (_locked, cg) = super::live_cgroup(root, &a.id)?;
    if crate::cgroups::v1::check_before_update(&r)
        && let Some(limit) = r
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
    {
        let usage = cg.stats()["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
        if (limit as u64) < usage {
            bail!(
                "linux.resources.memory.limit: {limit} is below the container's current memory usage {usage} (checkBeforeUpdate)"
            );
        }
    }
    cg.update(&r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("100m").unwrap(), 100 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn flags_merge_over_json() {
        let a = UpdateArgs {
            memory: Some("64m".into()),
            pids_limit: Some(20),
            cpu_quota: Some(50000),
            ..Default::default()
        };
        let r = merge(&a).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 20);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50000));
        assert!(r.devices().is_none());
    }
}
