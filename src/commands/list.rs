//! `list`: every container under the root, as runc's table, ids, or JSON.

use crate::cli::ListArgs;
use anyhow::{Result, bail};
use std::path::Path;

pub fn run(root: &Path, a: &ListArgs) -> Result<()> {
    let mut rows = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for ent in rd.flatten() {
            let id = ent.file_name().to_string_lossy().into_owned();
            let dir = ent.path();
            let Ok(s) = crate::state::read_saved(&dir, &id) else {
                continue;
            };
            let status = crate::state::derive_status(&crate::state::facts(&dir, &s));
            rows.push(crate::state::oci_state(&s, status));
        }
    }
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    if a.quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => println!("{}", serde_json::Value::Array(rows)),
        "table" => print!("{}", table(&rows)),
        other => bail!("invalid --format {other:?}: table or json"),
    }
    Ok(())
}

/// runc's tabwriter layout: minimum cell width 12, padding 3.
fn table(rows: &[serde_json::Value]) -> String {
    let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
    let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let s = |k: &str| match &r[k] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        cells.push(vec![
            s("id"),
            s("pid"),
            s("status"),
            s("bundle"),
            s("created"),
            s("owner"),
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}
