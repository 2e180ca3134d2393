//! Resource usage of a container's cgroup, in the shape `runc events --stats` prints.

use super::{Cgroup, Mode};
use serde_json::{Value, json};
use std::path::Path;

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn num(p: &Path) -> u64 {
    read(p).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// "max" and "-1"-like values read as u64::MAX.
fn limit(p: &Path) -> u64 {
    match read(p) {
        Some(s) if s.trim() == "max" => u64::MAX,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

/// "key value" lines into a JSON object of numbers.
fn kv(p: &Path) -> serde_json::Map<String, Value> {
    read(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                json!(it.next()?.parse::<u64>().ok()?),
            ))
        })
        .collect()
}

fn get(m: &serde_json::Map<String, Value>, k: &str) -> u64 {
    m.get(k).and_then(Value::as_u64).unwrap_or(0)
}

impl Cgroup {
    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.find(controller).map(|h| h.dir.as_path())
    }

    /// Current stats as runc's `events --stats` "data" object.
    pub fn stats(&self) -> Value {
        if self.mode == Mode::V2 {
            self.stats_v2()
        } else {
            self.stats_v1()
        }
    }

    fn stats_v1(&self) -> Value {
        let mut out = json!({});
        if let Some(d) = self.dir_of("cpuacct") {
            let st = kv(&d.join("cpuacct.stat"));
            // USER_HZ ticks to nanoseconds.
            let tick = 1_000_000_000 / 100;
            let percpu: Vec<u64> = read(&d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            out["cpu"] = json!({"usage": {
                "total": num(&d.join("cpuacct.usage")),
                "percpu": percpu,
                "kernel": get(&st, "system") * tick,
                "user": get(&st, "user") * tick,
            }});
        }
        if let Some(d) = self.dir_of("cpu") {
            let st = kv(&d.join("cpu.stat"));
            out["cpu"]["throttling"] = json!({
                "periods": get(&st, "nr_periods"),
                "throttled_periods": get(&st, "nr_throttled"),
                "throttled_time": get(&st, "throttled_time"),
            });
        }
        if let Some(d) = self.dir_of("memory") {
            let entry = |prefix: &str| {
                json!({
                    "limit": num(&d.join(format!("{prefix}.limit_in_bytes"))),
                    "usage": num(&d.join(format!("{prefix}.usage_in_bytes"))),
                    "max": num(&d.join(format!("{prefix}.max_usage_in_bytes"))),
                    "failcnt": num(&d.join(format!("{prefix}.failcnt"))),
                })
            };
            let raw = kv(&d.join("memory.stat"));
            out["memory"] = json!({
                "cache": get(&raw, "total_cache"),
                "usage": entry("memory"),
                "swap": entry("memory.memsw"),
                "kernel": entry("memory.kmem"),
                "kernelTCP": entry("memory.kmem.tcp"),
                "raw": raw,
            });
        }
        if let Some(d) = self.dir_of("pids") {
            out["pids"] = json!({"current": num(&d.join("pids.current")), "limit": limit(&d.join("pids.max"))});
        }
        if let Some(d) = self.dir_of("blkio") {
            let entries = |f: &str| -> Vec<Value> {
                read(&d.join(f))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| {
                        let p: Vec<&str> = l.split_whitespace().collect();
                        let (maj, min) = p.first()?.split_once(':')?;
                        Some(json!({"major": maj.parse::<u64>().ok()?, "minor": min.parse::<u64>().ok()?, "op": p.get(1)?, "value": p.get(2)?.parse::<u64>().ok()?}))
                    })
                    .collect()
            };
            out["blkio"] = json!({
                "ioServiceBytesRecursive": entries("blkio.throttle.io_service_bytes_recursive"),
                "ioServicedRecursive": entries("blkio.throttle.io_serviced_recursive"),
            });
        }
        if let Some(d) = self.dir_of("hugetlb") {
            out["hugetlb"] = hugetlb(d, "usage_in_bytes", "max_usage_in_bytes", "failcnt");
        }
        out
    }

    fn stats_v2(&self) -> Value {
        let d = &self.hierarchies[0].dir;
        let cpu = kv(&d.join("cpu.stat"));
        let mem = kv(&d.join("memory.stat"));
        let mut io_bytes = Vec::new();
        for l in read(&d.join("io.stat")).unwrap_or_default().lines() {
            let mut it = l.split_whitespace();
            let Some((maj, min)) = it.next().and_then(|x| x.split_once(':')) else {
                continue;
            };
            for kvp in it {
                if let Some((k, v)) = kvp.split_once('=') {
                    let op = match k {
                        "rbytes" => "Read",
                        "wbytes" => "Write",
                        _ => continue,
                    };
                    io_bytes.push(json!({"major": maj.parse::<u64>().unwrap_or(0), "minor": min.parse::<u64>().unwrap_or(0), "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
                }
            }
        }
        let events = kv(&d.join("memory.events"));
        json!({
            "cpu": {
                "usage": {
                    "total": get(&cpu, "usage_usec") * 1000,
                    "kernel": get(&cpu, "system_usec") * 1000,
                    "user": get(&cpu, "user_usec") * 1000,
                },
                "throttling": {
                    "periods": get(&cpu, "nr_periods"),
                    "throttled_periods": get(&cpu, "nr_throttled"),
                    "throttled_time": get(&cpu, "throttled_usec") * 1000,
                },
            },
            "memory": {
                "cache": get(&mem, "file"),
                "usage": {
                    "limit": limit(&d.join("memory.max")),
                    "usage": num(&d.join("memory.current")),
                    "max": num(&d.join("memory.peak")),
                    "failcnt": get(&events, "max"),
                },
                "swap": {
                    "limit": limit(&d.join("memory.swap.max")),
                    "usage": num(&d.join("memory.swap.current")),
                },
                "raw": mem,
            },
            "pids": {"current": num(&d.join("pids.current")), "limit": limit(&d.join("pids.max"))},
            "blkio": {"ioServiceBytesRecursive": io_bytes},
            "hugetlb": hugetlb(d, "current", "max", "events"),
        })
    }

    /// How many times the OOM killer fired in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (dir, file) = if self.mode == Mode::V2 {
            (Some(self.hierarchies[0].dir.as_path()), "memory.events")
        } else {
            (self.dir_of("memory"), "memory.oom_control")
        };
        dir.map(|d| get(&kv(&d.join(file)), "oom_kill"))
            .unwrap_or(0)
    }
}

/// hugetlb.<size>.* files of one directory, per page size.
fn hugetlb(d: &Path, usage: &str, max: &str, fail: &str) -> Value {
    let mut out = serde_json::Map::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("hugetlb.") else {
            continue;
        };
        let Some(size) = rest.strip_suffix(&format!(".{usage}")) else {
            continue;
        };
        if size.contains(".rsvd") {
            continue;
        }
        let failcnt = if fail == "events" {
            get(&kv(&d.join(format!("hugetlb.{size}.events"))), "max")
        } else {
            num(&d.join(format!("hugetlb.{size}.{fail}")))
        };
        out.insert(
            size.to_string(),
            json!({"usage": num(&d.join(&name)), "max": num(&d.join(format!("hugetlb.{size}.{max}"))), "failcnt": failcnt}),
        );
    }
    Value::Object(out)
}
