//! `events`: `--stats` prints one stats object; otherwise a stream of stats every interval,
//! plus an `oom` event whenever the OOM killer fires, until the container stops.

use crate::cli::EventsArgs;
use crate::state::Status;
use anyhow::{Result, anyhow, bail};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow!("invalid duration {s:?} (e.g. 5s, 500ms)"))?;
    if v <= 0.0 {
        bail!("invalid duration {s:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(v * mult))
}

pub fn run(root: &Path, a: &EventsArgs) -> Result<()> {
    let interval = parse_duration(&a.interval)?;
    let (c, cg) = super::live_cgroup(root, &a.id)?;
    let (dir, saved) = (c.dir.clone(), c.saved.clone());
    // Do not hold the lock while streaming: other verbs must go on.
    drop(c);
    let event = |typ: &str, data: serde_json::Value| serde_json::json!({"type": typ, "id": a.id, "data": data});
    if a.stats {
        println!("{}", event("stats", cg.stats()));
        return Ok(());
    }
    let mut ooms = cg.oom_kills();
    let mut out = std::io::stdout();
    loop {
        let status = crate::state::derive_status(&crate::state::facts(&dir, &saved));
        if status == Status::Stopped {
            return Ok(());
        }
        let now = cg.oom_kills();
        if now > ooms {
            ooms = now;
            let _ = writeln!(out, "{}", serde_json::json!({"type": "oom", "id": a.id}));
        }
        if writeln!(out, "{}", event("stats", cg.stats())).is_err() {
            return Ok(());
        }
        let _ = out.flush();
        std::thread::sleep(interval);
    }
}
