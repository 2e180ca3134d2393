//! Capabilities: OCI names to sets, and applying them so exactly the requested sets remain
//! after execve.

use anyhow::{Context, Result, anyhow, bail};
use caps::{CapSet, Capability, CapsHashSet};
use std::str::FromStr;

#[derive(Debug, Clone, Default)]
pub struct CapPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(set: &Option<oci_spec::runtime::Capabilities>, name: &str) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let s = format!("CAP_{c}");
        let cap =
            Capability::from_str(&s).map_err(|_| anyhow!("{name}: unknown capability {s}"))?;
        out.insert(cap);
    }
    Ok(out)
}

impl CapPlan {
    /// `field` names the capabilities object in messages (`process.capabilities`); `uid` is
    /// the process's.
    pub fn from_spec(
        c: &oci_spec::runtime::LinuxCapabilities,
        field: &str,
        uid: u32,
    ) -> Result<CapPlan> {
        let mut p = CapPlan {
            bounding: convert(c.bounding(), "bounding")?,
            effective: convert(c.effective(), "effective")?,
            inheritable: convert(c.inheritable(), "inheritable")?,
            permitted: convert(c.permitted(), "permitted")?,
            ambient: convert(c.ambient(), "ambient")?,
        };
        p.check_ambient(field, uid);
        Ok(p)
    }

    /// The kernel raises an ambient capability only if it is permitted and inheritable: runc
    /// goes on without the others, and so does this, saying so once, at plan time. A warning
    /// where it matters (a non-root process, whose capabilities after execve come from the
    /// ambient set), a debug line for root (whose permitted set covers it: `rrun spec`'s and
    /// runc's default config lists ambient capabilities without inheritable ones).
    pub fn check_ambient(&mut self, field: &str, uid: u32) {
        let mut bad: Vec<String> = Vec::new();
        self.ambient.retain(|cap| {
            let missing: Vec<&str> = [
                ("inheritable", &self.inheritable),
                ("permitted", &self.permitted),
            ]
            .iter()
            .filter(|(_, set)| !set.contains(cap))
            .map(|(n, _)| *n)
            .collect();
            if missing.is_empty() {
                return true;
            }
            bad.push(format!("{cap} (not {})", missing.join(" or ")));
            false
        });
        if !bad.is_empty() {
            bad.sort();
            let msg = format!(
                "{field}.ambient: not raised, an ambient capability must be inheritable and permitted: {}",
                bad.join(", ")
            );
            if uid == 0 {
                crate::logging::debug(&msg);
            } else {
                crate::logging::warn(&msg);
            }
        }
    }

    /// Drop from the bounding set what is not asked for. Needs CAP_SETPCAP: do it before
    /// changing uid.
    /// One PR_CAPBSET_DROP per capability, no PR_CAPBSET_READ first: dropping one that is
    /// already gone succeeds, and one this kernel does not know (EINVAL) is in no set.
    pub fn apply_bounding(&self) -> Result<()> {
        for cap in caps::all() {
            if self.bounding.contains(&cap) {
                continue;
            }
            // SAFETY: prctl with integer arguments only.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap.index() as libc::c_ulong) };
            match nix::errno::Errno::result(r) {
                Ok(_) | Err(nix::errno::Errno::EINVAL) => {}
                Err(e) => bail!("drop {cap} from the bounding set: {e}"),
            }
        }
        Ok(())
    }

    /// Set permitted, inheritable, effective and ambient, after the uid change (which ran with
    /// keep-caps so the permitted set survived).
    pub fn apply_rest(&self) -> Result<()> {
        capset(&self.effective, &self.permitted, &self.inheritable)?;
        caps::clear(None, CapSet::Ambient).context("clear ambient capabilities")?;
        // Only permitted and inheritable ones are left (see `check_ambient`).
        for cap in &self.ambient {
            caps::raise(None, CapSet::Ambient, *cap)
                .with_context(|| format!("raise {cap} in the ambient set"))?;
        }
        Ok(())
    }
}

fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0u64, |m, c| m | c.bitmask())
}

/// One capset(2) for effective, permitted and inheritable together, so no intermediate state
/// (effective wider than permitted) is ever asked of the kernel.
fn capset(eff: &CapsHashSet, perm: &CapsHashSet, inh: &CapsHashSet) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let (e, p, i) = (mask(eff), mask(perm), mask(inh));
    let mut hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        Data {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        Data {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: a v3 header and two data structs, as capset(2) requires.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
    nix::errno::Errno::result(r).map(drop).map_err(|e| {
        anyhow!("process.capabilities: capset (effective must be within permitted): {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map() {
        let c: oci_spec::runtime::LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_KILL","CAP_NET_RAW","CAP_SYS_ADMIN","CAP_CHECKPOINT_RESTORE"],"effective":["CAP_KILL"]}"#,
        )
        .unwrap();
        let p = CapPlan::from_spec(&c, "process.capabilities", 0).unwrap();
        assert!(p.bounding.contains(&Capability::CAP_NET_RAW));
        assert!(p.bounding.contains(&Capability::CAP_CHECKPOINT_RESTORE));
        assert_eq!(p.effective.len(), 1);
        assert!(p.inheritable.is_empty());
    }

    #[test]
    fn every_oci_name_is_known() {
        for cap in caps::all() {
            let json = format!("{{\"bounding\":[\"{cap}\"]}}");
            let c: oci_spec::runtime::LinuxCapabilities = serde_json::from_str(&json).unwrap();
            let p = CapPlan::from_spec(&c, "process.capabilities", 0).unwrap();
            assert!(p.bounding.contains(&cap), "{cap}");
        }
    }

    #[test]
    fn ambient_needs_inheritable_and_permitted() {
        let c: oci_spec::runtime::LinuxCapabilities = serde_json::from_str(
            r#"{"permitted":["CAP_KILL","CAP_CHOWN"],"inheritable":["CAP_CHOWN","CAP_SYSLOG"],"ambient":["CAP_CHOWN","CAP_KILL","CAP_SYSLOG"]}"#,
        )
        .unwrap();
        let p = CapPlan::from_spec(&c, "process.capabilities", 0).unwrap();
        assert_eq!(
            p.ambient.into_iter().collect::<Vec<_>>(),
            [Capability::CAP_CHOWN]
        );
    }
}
