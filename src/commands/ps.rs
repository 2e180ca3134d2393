//! `ps`: the host's ps(1) output, kept to the lines of the container's processes; or the pids
//! as JSON.

use crate::cli::PsArgs;
use anyhow::{Result, anyhow, bail};
use std::path::Path;

pub fn run(root: &Path, a: &PsArgs) -> Result<()> {
    let c = crate::state::Container::load(root, &a.id)?;
    // A stopped container has no processes: an empty list, as runc prints, not an error.
    // Without a cgroup (rootless on cgroup v1): init, its pid namespace and descendants.
    let pids = match &c.saved.cgroup {
        _ if c.status() == crate::state::Status::Stopped => Vec::new(),
        Some(cg) => cg.procs()?,
        None => crate::util::pids_by_proc(c.saved.pid, c.saved.start_time, !c.saved.shared_pidns),
    };
    match a.format.as_str() {
        "json" => {
            println!("{}", serde_json::to_string(&pids)?);
            return Ok(());
        }
        "table" => {}
        other => bail!("invalid --format {other:?}: table or json"),
    }
    let args: Vec<String> = if a.ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| anyhow!("run ps {}: {}", args.join(" "), crate::sys::io_errno(&e)))?;
    if !out.status.success() {
        bail!(
            "ps {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow!("ps {}: no PID column in its output", args.join(" ")))?;
    println!("{header}");
    for l in lines {
        if let Some(pid) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
            && pids.contains(&pid)
        {
            println!("{l}");
        }
    }
    Ok(())
}
