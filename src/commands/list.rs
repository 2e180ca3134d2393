//! `list`: every container under the root, as runc's table, ids, or JSON.
//!
//! With many containers this is the hot path: each state.json is read into a reused buffer
//! and parsed into a `Brief` (no cgroup tree, no hooks), rows are printed from borrowed
//! fields, and the whole output goes out in one write.

use crate::cli::ListArgs;
use crate::state::{Brief, OciState};
use anyhow::{Result, bail};
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, a: &ListArgs) -> Result<()> {
    if !a.quiet && !matches!(a.format.as_str(), "table" | "json") {
        bail!("invalid --format {:?}: table or json", a.format);
    }
    let mut briefs: Vec<(Brief, crate::state::Status)> = Vec::new();
    let mut buf = Vec::with_capacity(8192);
    if let Ok(rd) = std::fs::read_dir(root) {
        for ent in rd.flatten() {
            let id = ent.file_name().to_string_lossy().into_owned();
            let dir = ent.path();
            let Ok(b) = crate::state::read_brief(&dir, &id, &mut buf) else {
                continue;
            };
            let status = crate::state::derive_status(&b.facts(&dir));
            briefs.push((b, status));
        }
    }
    briefs.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let rows: Vec<OciState> = briefs.iter().map(|(b, s)| b.oci_state(*s)).collect();
    let out = if a.quiet {
        rows.iter().fold(String::new(), |mut o, r| {
            o.push_str(r.id);
            o.push('\n');
            o
        })
    } else if a.format == "json" {
        let mut o = serde_json::to_string(&rows)?;
        o.push('\n');
        o
    } else {
        table(&rows)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// runc's tabwriter layout: minimum cell width 12, padding 3.
fn table(rows: &[OciState]) -> String {
    let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
    let pids: Vec<String> = rows.iter().map(|r| r.pid.to_string()).collect();
    let cells: Vec<[&str; 6]> = std::iter::once(head)
        .chain(rows.iter().zip(&pids).map(|(r, pid)| {
            [
                r.id,
                pid.as_str(),
                r.status,
                r.bundle.to_str().unwrap_or_default(),
                r.created,
                r.owner,
            ]
        }))
        .collect();
    let mut widths = [12usize; 6];
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len() + 3);
        }
    }
    let mut out = String::with_capacity(cells.len() * 128);
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - c.len()));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn table_layout_like_runc() {
        let none = BTreeMap::new();
        let row = |id, pid, status| OciState {
            oci_version: "1.0.2",
            id,
            pid,
            status,
            bundle: Path::new("/b"),
            rootfs: Path::new("/b/rootfs"),
            created: "2026-01-01T00:00:00Z",
            owner: "root",
            annotations: &none,
        };
        let t = table(&[
            row("a", 42, "running"),
            row("a-much-longer-id", 0, "stopped"),
        ]);
        let want = "\
ID                 PID         STATUS      BUNDLE      CREATED                OWNER
a                  42          running     /b          2026-01-01T00:00:00Z   root
a-much-longer-id   0           stopped     /b          2026-01-01T00:00:00Z   root
";
        assert_eq!(t, want);
    }
}
