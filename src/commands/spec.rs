//! `rrun spec`: the same config.json template `runc spec` writes.

use crate::cli::SpecArgs;
use anyhow::{Result, anyhow, bail};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

const TEMPLATE: &str = include_str!("../spec_template.json");

/// runc's template, turned rootless as `runc spec --rootless` does.
pub fn template(rootless: bool) -> String {
    if !rootless {
        return TEMPLATE.to_string();
    }
    let mut v: serde_json::Value = serde_json::from_str(TEMPLATE).expect("valid template");
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    // As runc's ToRootless: every mount stays (the cgroup one too: without a cgroup of its
    // own the container gets the host's tree bound there), uid= and gid= options go.
    let mounts = v["mounts"].as_array_mut().expect("mounts");
    for m in mounts.iter_mut() {
        // (get_mut: indexing a missing key would add "options": null.)
        if let Some(o) = m.get_mut("options").and_then(|o| o.as_array_mut()) {
            o.retain(|x| {
                !x.as_str()
                    .is_some_and(|x| x.starts_with("gid=") || x.starts_with("uid="))
            });
        }
        if m["destination"] == "/sys" {
            m["type"] = "none".into();
            m["source"] = "/sys".into();
            m["options"] = serde_json::json!(["rbind", "nosuid", "noexec", "nodev", "ro"]);
        }
    }
    let linux = v["linux"].as_object_mut().expect("linux");
    linux.shift_remove("resources");
    let rest: Vec<(String, serde_json::Value)> = linux.clone().into_iter().collect();
    linux.clear();
    linux.insert(
        "uidMappings".into(),
        serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]),
    );
    linux.insert(
        "gidMappings".into(),
        serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]),
    );
    for (k, val) in rest {
        linux.insert(k, val);
    }
    let ns = linux["namespaces"].as_array_mut().expect("namespaces");
    ns.retain(|n| n["type"] != "network");
    ns.push(serde_json::json!({"type": "user"}));
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&v, &mut ser).expect("serialize");
    String::from_utf8(out).expect("utf8")
}

pub fn run(a: &SpecArgs, rootless: bool) -> Result<()> {
    let p = a.bundle.join("config.json");
    if std::fs::symlink_metadata(&p).is_ok() {
        bail!("File {} exists. Remove it first", p.display());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&p)
        .map_err(|e| anyhow!("create {}: {}", p.display(), crate::sys::io_errno(&e)))?;
    f.write_all(template(rootless).as_bytes())
        .map_err(|e| anyhow!("write {}: {}", p.display(), crate::sys::io_errno(&e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_a_valid_spec() {
        let s: oci_spec::runtime::Spec =
            crate::spec::decode("config.json", TEMPLATE.as_bytes()).unwrap();
        assert_eq!(s.process().as_ref().unwrap().terminal(), Some(true));
        assert_eq!(
            s.process().as_ref().unwrap().args().as_ref().unwrap(),
            &vec!["sh".to_string()]
        );
        let r: oci_spec::runtime::Spec =
            crate::spec::decode("config.json", template(true).as_bytes()).unwrap();
        let l = r.linux().as_ref().unwrap();
        assert!(l.uid_mappings().is_some());
        assert!(l.resources().is_none());
        let ns = l.namespaces().as_ref().unwrap();
        assert!(
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        );
        assert!(
            !ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
        );
    }

    /// runc's ToRootless: the same mounts (cgroup included), /sys an rbind, no uid=/gid=
    /// options, and nothing added that runc's output lacks (no "options": null).
    #[test]
    fn rootless_mounts_are_runcs() {
        let plain: serde_json::Value = serde_json::from_str(TEMPLATE).unwrap();
        let text = template(true);
        assert!(!text.contains("null"), "{text}");
        let r: serde_json::Value = serde_json::from_str(&text).unwrap();
        let (pm, rm) = (
            plain["mounts"].as_array().unwrap(),
            r["mounts"].as_array().unwrap(),
        );
        assert_eq!(pm.len(), rm.len());
        for (p, m) in pm.iter().zip(rm) {
            assert_eq!(p["destination"], m["destination"]);
            if m["destination"] == "/sys" {
                assert_eq!(m["type"], "none");
                assert_eq!(m["options"][0], "rbind");
                continue;
            }
            assert_eq!(
                p.get("options").is_some(),
                m.get("options").is_some(),
                "{m}"
            );
            for o in m["options"].as_array().into_iter().flatten() {
                let o = o.as_str().unwrap();
                assert!(!o.starts_with("uid=") && !o.starts_with("gid="), "{m}");
            }
        }
        assert!(rm.iter().any(|m| m["destination"] == "/sys/fs/cgroup"));
    }
}
