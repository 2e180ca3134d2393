//! `list`: every container under the root, as runc's table, ids, or JSON.
//!
//! With many containers this is the hot path: each state.json is read into a reused buffer
//! and parsed into a `Brief` (no cgroup tree, no hooks), files are opened relative to open
//! directories, long lists are read by a few threads, rows are printed from borrowed fields,
//! and the whole output goes out in one write.

use crate::cli::ListArgs;
use crate::state::{Brief, OciState, Status};
use anyhow::{Result, bail};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

pub fn run(root: &Path, a: &ListArgs) -> Result<()> {
    if !a.quiet && !matches!(a.format.as_str(), "table" | "json") {
        bail!("invalid --format {:?}: table or json", a.format);
    }
    let mut briefs = read_all(root);
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

/// Every container's brief state and status. Each one costs three opens (state.json,
/// /proc/<pid>/stat, the freezer) of which the kernel's path walks are most of the time: the
/// files are looked up from open fds of the state root and /proc, and a long list is split
/// among threads, one per CPU we may run on (up to 4).
fn read_all(root: &Path) -> Vec<(Brief, Status)> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let ids: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let dir_fd = |p: &str| -> Option<OwnedFd> {
        crate::sys::openat2(libc::AT_FDCWD, p, libc::O_PATH | libc::O_DIRECTORY, 0, 0).ok()
    };
    let Some(root_fd) = dir_fd(&root.to_string_lossy()) else {
        return Vec::new();
    };
    let proc_fd = dir_fd("/proc");
    let some = |ids: &[String]| -> Vec<(Brief, Status)> {
        let mut buf = Vec::with_capacity(8192);
        ids.iter()
            .filter_map(|id| {
                let b = match crate::state::read_brief_at(
                    root_fd.as_raw_fd(),
                    Path::new(id),
                    id,
                    &mut buf,
                ) {
                    Ok(b) => b,
                    // No state.json yet: a create under way (or killed before it wrote one).
                    Err(e) if crate::error::kind_of(&e) == Some(crate::error::Kind::NotFound) => {
                        return None;
                    }
                    // Not hidden: said, as runc does, with what removes it.
                    Err(e) => {
                        crate::logging::warn(&format!(
                            "container {id}: {e:#} (`rrun delete --force {id}` removes it)"
                        ));
                        return None;
                    }
                };
                let f = b.facts_in(root_fd.as_fd(), proc_fd.as_ref().map(|p| p.as_fd()));
                let status = crate::state::derive_status(&f);
                Some((b, status))
            })
            .collect()
    };
    let threads = if ids.len() >= PER_THREAD_MIN * 2 {
        cpus().clamp(1, 4).min(ids.len() / PER_THREAD_MIN)
    } else {
        1
    };
    if threads <= 1 {
        return some(&ids);
    }
    let chunk = ids.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .skip(1)
            .map(|part| s.spawn(move || some(part)))
            .collect();
        let mut all = some(&ids[..chunk]);
        for h in handles {
            // A worker only reads files; should one panic, its containers are missing from
            // the list rather than the whole list failing.
            all.extend(h.join().unwrap_or_default());
        }
        all
    })
}

/// Containers a thread of `list` is worth starting for (a thread costs about as much as
/// reading a few dozen containers).
const PER_THREAD_MIN: usize = 64;

/// CPUs this process may run on (its affinity mask). Not `available_parallelism`, which also
/// reads the cgroup's CPU quota through /proc/self/mountinfo.
fn cpus() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is ourselves; size and pointer describe `set`.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return 1;
    }
    // SAFETY: `set` was filled by the kernel.
    (unsafe { libc::CPU_COUNT(&set) }).max(1) as usize
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

    /// Enough containers for the threaded path: every one is listed once, with the status
    /// its facts give (our own pid and start time: running; an exec.fifo too: created; no
    /// live pid: stopped), and a dir without state.json (a create that died) is skipped.
    #[test]
    fn read_all_threads_see_every_container() {
        let root = std::env::temp_dir().join(format!("rrun-list-{}", std::process::id()));
        let me = std::process::id() as i32;
        let start = crate::util::proc_stat(me).unwrap().1;
        let n = PER_THREAD_MIN * 4 + 3;
        for i in 0..n {
            let id = format!("c{i:04}");
            let dir = root.join(&id);
            std::fs::create_dir_all(&dir).unwrap();
            let (pid, start_time) = if i % 3 == 0 { (0, 0) } else { (me, start) };
            let state = serde_json::json!({
                "ociVersion": "1.2.0", "id": id, "creating": false, "pid": pid,
                "startTime": start_time, "creatorPid": me, "creatorStartTime": start,
                "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z",
                "owner": "root",
            });
            std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
            if i % 3 == 2 {
                std::fs::write(dir.join(crate::state::FIFO), "").unwrap();
            }
        }
        std::fs::create_dir_all(root.join("half-made")).unwrap();
        let mut all = read_all(&root);
        std::fs::remove_dir_all(&root).unwrap();
        all.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        assert_eq!(all.len(), n);
        for (i, (b, status)) in all.iter().enumerate() {
            assert_eq!(b.id, format!("c{i:04}"));
            let want = [Status::Stopped, Status::Running, Status::Created][i % 3];
            assert_eq!(*status, want, "{}", b.id);
        }
    }

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
