//! How the process is scheduled and where its memory goes: `process.ioPriority`,
//! `process.scheduler`, `linux.personality` and `linux.memoryPolicy`. Validated into plain
//! numbers at plan time (with the JSON path in every error), applied by init and by exec while
//! still root, before the user and capabilities change (SCHED_FIFO and ioprio RT need
//! CAP_SYS_NICE / CAP_SYS_ADMIN), and inherited by whatever the process starts.

use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType,
    Scheduler,
};

#[derive(Debug, Clone, Default)]
pub struct SchedPlan {
    /// ioprio_set value ((class << 13) | level).
    pub io_priority: Option<i32>,
    pub scheduler: Option<SchedAttr>,
    /// personality(2) persona.
    pub personality: Option<libc::c_ulong>,
    /// set_mempolicy(2) mode (with its flags) and node mask.
    pub mempolicy: Option<(i32, Vec<libc::c_ulong>)>,
}

/// `struct sched_attr` of sched_setattr(2) (the 56-byte version, with utilization clamps).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

const SCHED_DEADLINE: u32 = 6;
/// sizeof(struct sched_attr) without the utilization clamps.
const SCHED_ATTR_SIZE_VER0: u32 = 48;

fn err(path: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{path}: {msg}")
}

/// `process.ioPriority`: class and level 0 (highest) to 7.
pub fn io_priority(p: &oci_spec::runtime::LinuxIOPriority, field: &str) -> Result<i32> {
    let path = format!("{field}.ioPriority");
    let level = p.priority();
    if !(0..=7).contains(&level) {
        bail!(err(
            &path,
            format!("priority {level} is out of range (0 to 7)")
        ));
    }
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    Ok((class << 13) | level as i32)
}

/// `process.scheduler`, checked as runc checks it: nice -20..19, a priority only for the
/// real-time policies (1..99), the deadline fields only (and all three) for SCHED_DEADLINE with
/// runtime <= deadline <= period, and SCHED_DEADLINE never with a cpuset limit (the kernel
/// refuses deadline tasks whose CPUs are restricted below the root domain).
pub fn scheduler(s: &Scheduler, field: &str, has_cpuset: bool) -> Result<SchedAttr> {
    let path = format!("{field}.scheduler");
    use LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => bail!(err(
            &format!("{path}.policy"),
            "SCHED_ISO does not exist in Linux (the patch was never merged): use SCHED_OTHER, SCHED_BATCH or SCHED_IDLE"
        )),
        P::SchedIdle => 5,
        P::SchedDeadline => SCHED_DEADLINE,
    };
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!(err(
            &format!("{path}.nice"),
            format!("{nice} is out of range (-20 to 19)")
        ));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(policy, 1 | 2);
    if realtime && !(1..=99).contains(&priority) {
        bail!(err(
            &format!("{path}.priority"),
            format!("{priority}: SCHED_FIFO and SCHED_RR need 1 to 99")
        ));
    }
    if !realtime && priority != 0 {
        bail!(err(
            &format!("{path}.priority"),
            "only SCHED_FIFO and SCHED_RR take a priority"
        ));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy == SCHED_DEADLINE {
        if runtime == 0 || deadline == 0 {
            bail!(err(
                &path,
                "SCHED_DEADLINE needs runtime and deadline (nanoseconds)"
            ));
        }
        let period_or_deadline = if period == 0 { deadline } else { period };
        if runtime > deadline || deadline > period_or_deadline {
            bail!(err(
                &path,
                format!(
                    "SCHED_DEADLINE needs runtime <= deadline <= period (got {runtime}, {deadline}, {period})"
                )
            ));
        }
        if has_cpuset {
            bail!(err(
                &path,
                "SCHED_DEADLINE cannot be used with linux.resources.cpu.cpus (a restricted cpuset)"
            ));
        }
    } else if runtime != 0 || deadline != 0 || period != 0 {
        bail!(err(
            &path,
            "runtime, deadline and period are for SCHED_DEADLINE only"
        ));
    }
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        use LinuxSchedulerFlag as F;
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    // The utilization clamps (Linux 5.3) only when asked: an older kernel refuses the longer
    // struct (E2BIG), and the first 48 bytes are the same.
    let clamps = flags & (0x20 | 0x40) != 0;
    Ok(SchedAttr {
        size: if clamps {
            std::mem::size_of::<SchedAttr>() as u32
        } else {
            SCHED_ATTR_SIZE_VER0
        },
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
        // Clamps unset: the widest range, which leaves the task unclamped.
        util_min: 0,
        util_max: 1024,
    })
}

/// `linux.personality`: LINUX or LINUX32; no flags are defined by the runtime-spec.
pub fn personality(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    if let Some(f) = p.flags().as_ref().filter(|f| !f.is_empty()) {
        bail!(err(
            "linux.personality.flags",
            format!("{f:?}: no personality flags are supported")
        ));
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    })
}

/// `linux.memoryPolicy`: the mode with its flags and the node mask set_mempolicy(2) takes.
/// MPOL_DEFAULT and MPOL_LOCAL take no nodes; the others need some (MPOL_PREFERRED may have
/// none: "local allocation").
pub fn mempolicy(m: &LinuxMemoryPolicy) -> Result<(i32, Vec<libc::c_ulong>)> {
    use MemoryPolicyModeType as M;
    let path = "linux.memoryPolicy";
    let mode = match m.mode() {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    let nodes = m.nodes().as_deref().map(str::trim).unwrap_or("");
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    if !nodes.is_empty() {
        for part in nodes.split(',') {
            let num = |t: &str| -> Result<usize> {
                let n: usize = t.trim().parse().map_err(|_| {
                    err(
                        &format!("{path}.nodes"),
                        format!("{nodes:?}: {t:?} is not a node number"),
                    )
                })?;
                if n >= 4096 {
                    bail!(err(
                        &format!("{path}.nodes"),
                        format!("{nodes:?}: node {n} is out of range")
                    ));
                }
                Ok(n)
            };
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            if a > b {
                bail!(err(
                    &format!("{path}.nodes"),
                    format!("{nodes:?}: range {part:?} runs backwards")
                ));
            }
            let bits = libc::c_ulong::BITS as usize;
            for n in a..=b {
                if mask.len() <= n / bits {
                    mask.resize(n / bits + 1, 0);
                }
                mask[n / bits] |= 1 << (n % bits);
            }
        }
    }
    match mode {
        0 | 4 if !mask.is_empty() => bail!(err(
            &format!("{path}.nodes"),
            format!("{:?} takes no nodes", m.mode().to_string())
        )),
        2 | 3 | 5 | 6 if mask.is_empty() => bail!(err(
            &format!("{path}.nodes"),
            format!("{} needs nodes", m.mode())
        )),
        _ => {}
    }
    let mut flags = 0i32;
    for f in m.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    if flags & (1 << 14) != 0 && flags & (1 << 15) != 0 {
        bail!(err(
            &format!("{path}.flags"),
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other"
        ));
    }
    Ok((mode | flags, mask))
}

impl SchedPlan {
    /// In the process, as root, before the user changes.
    pub fn apply(&self, field: &str) -> Result<()> {
        if let Some(p) = self.personality {
            // SAFETY: personality(2) with an integer persona.
            let r = unsafe { libc::personality(p) };
            nix::errno::Errno::result(r)
                .map_err(|e| anyhow!("linux.personality: personality({p:#x}): {e}"))?;
        }
        if let Some((mode, mask)) = &self.mempolicy {
            // The kernel reads maxnode - 1 bits (libnuma passes one more than it means).
            let maxnode = mask.len() * libc::c_ulong::BITS as usize + 1;
            // SAFETY: set_mempolicy with a mask of `maxnode` bits (or none).
            let r = unsafe {
                libc::syscall(
                    libc::SYS_set_mempolicy,
                    *mode,
                    if mask.is_empty() {
                        std::ptr::null()
                    } else {
                        mask.as_ptr()
                    },
                    maxnode,
                )
            };
            nix::errno::Errno::result(r)
                .map_err(|e| anyhow!("linux.memoryPolicy: set_mempolicy: {e}"))?;
        }
        if let Some(a) = &self.scheduler {
            // SAFETY: sched_setattr(0, attr, 0) with a valid, sized sched_attr.
            let r =
                unsafe { libc::syscall(libc::SYS_sched_setattr, 0, a as *const SchedAttr, 0u32) };
            nix::errno::Errno::result(r).map_err(|e| {
                let hint = if e == nix::errno::Errno::EPERM && matches!(a.policy, 1 | 2) {
                    " (a real-time policy needs real-time time in the container's cgroup: linux.resources.cpu.realtimeRuntime on cgroup v1)"
                } else {
                    ""
                };
                anyhow!("{field}.scheduler: sched_setattr: {e}{hint}")
            })?;
        }
        if let Some(v) = self.io_priority {
            // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, 0 = self, value).
            let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, v) };
            nix::errno::Errno::result(r)
                .map_err(|e| anyhow!("{field}.ioPriority: ioprio_set: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(json: serde_json::Value) -> Result<SchedAttr> {
        scheduler(&serde_json::from_value(json).unwrap(), "process", false)
    }

    #[test]
    fn scheduler_rules() {
        let a = sched(serde_json::json!({"policy": "SCHED_FIFO", "priority": 10})).unwrap();
        assert_eq!((a.policy, a.priority), (1, 10));
        assert_eq!(a.size, 48);
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
        let a = sched(serde_json::json!({"policy": "SCHED_OTHER", "nice": 5,
            "flags": ["SCHED_RESET_ON_FORK"]}))
        .unwrap();
        assert_eq!((a.nice, a.flags), (5, 1));
        for bad in [
            serde_json::json!({"policy": "SCHED_FIFO"}),
            serde_json::json!({"policy": "SCHED_OTHER", "priority": 3}),
            serde_json::json!({"policy": "SCHED_OTHER", "nice": 20}),
            serde_json::json!({"policy": "SCHED_BATCH", "runtime": 5}),
            serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 5}),
        ] {
            let e = sched(bad.clone()).unwrap_err().to_string();
            assert!(e.starts_with("process.scheduler"), "{bad}: {e}");
        }
        let dl: Scheduler = serde_json::from_value(serde_json::json!({"policy": "SCHED_DEADLINE",
            "runtime": 1000000, "deadline": 2000000, "period": 3000000}))
        .unwrap();
        assert!(scheduler(&dl, "process", false).is_ok());
        assert!(
            scheduler(&dl, "process", true)
                .unwrap_err()
                .to_string()
                .contains("cpuset")
        );
    }

    #[test]
    fn mempolicy_rules() {
        let m = |j: serde_json::Value| mempolicy(&serde_json::from_value(j).unwrap());
        let (mode, mask) = m(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0,2-3",
            "flags": ["MPOL_F_STATIC_NODES"]}))
        .unwrap();
        assert_eq!(mode, 2 | (1 << 15));
        assert_eq!(mask, vec![0b1101]);
        assert_eq!(
            m(serde_json::json!({"mode": "MPOL_DEFAULT"})).unwrap(),
            (0, vec![])
        );
        assert!(m(serde_json::json!({"mode": "MPOL_BIND"})).is_err());
        assert!(m(serde_json::json!({"mode": "MPOL_LOCAL", "nodes": "0"})).is_err());
        assert!(m(serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "1-0"})).is_err());
    }

    #[test]
    fn io_priority_values() {
        let p: oci_spec::runtime::LinuxIOPriority = serde_json::from_value(
            serde_json::json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7}),
        )
        .unwrap();
        assert_eq!(io_priority(&p, "process").unwrap(), (3 << 13) | 7);
        let p: oci_spec::runtime::LinuxIOPriority =
            serde_json::from_value(serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 8}))
                .unwrap();
        assert!(io_priority(&p, "process").is_err());
    }
}
