//! OCI hooks: run `path` with `args` and `env`, the container state JSON on stdin, within
//! `timeout` seconds. A hook that times out is killed and counts as failed.

use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::Hook;
use std::io::{Read, Seek, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The state a hook reads on stdin.
pub fn state_json(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut v = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": id,
        "status": status,
        "bundle": bundle,
    });
    if pid > 0 {
        v["pid"] = pid.into();
    }
    if !annotations.is_empty() {
        v["annotations"] = serde_json::to_value(annotations).unwrap_or_default();
    }
    v.to_string()
}

/// Where and with what a hook runs, beyond its own fields.
#[derive(Default, Clone, Copy)]
pub struct Ctx<'a> {
    /// The environment of a hook without `env`: createContainer and startContainer get the
    /// process's; None is rrun's own (hooks on the host), as runc's hooks inherit runc's.
    pub env: Option<&'a [String]>,
    /// Its working directory: the bundle for hooks on the host, the container's root for
    /// createContainer and startContainer. None keeps rrun's own (a bundle since removed).
    pub cwd: Option<&'a std::path::Path>,
}

impl<'a> Ctx<'a> {
    /// Hooks on the host run in the bundle directory (runc's cwd), when it still exists.
    pub fn host(bundle: &'a std::path::Path) -> Ctx<'a> {
        Ctx {
            env: None,
            cwd: bundle.is_dir().then_some(bundle),
        }
    }
}

/// runc's words for a failed hook, which tools match: `error running <kind> hook #<n>`.
fn failed(kind: &str, i: usize, h: &Hook, e: &anyhow::Error) -> String {
    format!(
        "error running {kind} hook #{i} ({}): {e:#}",
        h.path().display()
    )
}

/// Run every hook of one kind in order; the first failure stops and is returned.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state: &str, ctx: Ctx) -> Result<()> {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        run_one(h, state, ctx).map_err(|e| anyhow!(failed(kind, i, h, &e)))?;
    }
    Ok(())
}

/// Run every hook of one kind; failures are logged as warnings and the lifecycle goes on.
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state: &str, ctx: Ctx) {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        if let Err(e) = run_one(h, state, ctx) {
            crate::logging::warn(&failed(kind, i, h, &e));
        }
    }
}

fn memfd() -> Result<std::fs::File> {
    // SAFETY: memfd_create with a valid C string; the fd is ours.
    let fd = unsafe { libc::memfd_create(c"rrun-hook".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        bail!("memfd_create: {}", nix::errno::Errno::last());
    }
    // SAFETY: a new fd nobody else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

fn run_one(h: &Hook, state: &str, ctx: Ctx) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args().as_ref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    if let Some(env) = h.env().as_deref().or(ctx.env) {
        cmd.env_clear();
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    if let Some(d) = ctx.cwd {
        cmd.current_dir(d);
    }
    let out = memfd()?;
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone()?)
        .stderr(out.try_clone()?);
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow!("start: {}", crate::sys::io_errno(&e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: EPIPE, not SIGPIPE, while we write.
        // SAFETY: swapping a signal disposition; rrun is single-threaded.
        let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let _ = stdin.write_all(state.as_bytes());
        drop(stdin);
        // SAFETY: restoring the previous disposition.
        unsafe { libc::signal(libc::SIGPIPE, old) };
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut nap = Duration::from_micros(200);
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| anyhow!("wait: {e}"))? {
            break st;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "timed out after {}s and was killed",
                h.timeout().unwrap_or(0)
            );
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    };
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut out = out;
    let _ = out.rewind();
    let _ = out.take(4096).read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        bail!("{status}")
    } else {
        bail!("{status}, output: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn state_reaches_stdin_and_env_is_exact() {
        let dir = std::env::temp_dir().join(format!("rrun-hook-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {0}; echo \"$FOO $0\" >> {0}"],"env":["FOO=bar"]}}"#,
            out.display()
        ));
        run_all("prestart", Some(&vec![h]), "{\"id\":\"x\"}", Ctx::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"x\"}bar sh\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failure_and_timeout() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo boom >&2; exit 3"]}"#);
        let e = run_all("createRuntime", Some(&vec![h]), "{}", Ctx::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("error running createRuntime hook #0 (/bin/sh): ") && e.contains("boom"),
            "{e}"
        );
        let h = hook(r#"{"path":"/bin/sleep","args":["sleep","5"],"timeout":1}"#);
        let t = Instant::now();
        let e = run_all("poststart", Some(&vec![h]), "{}", Ctx::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        let h = hook(r#"{"path":"/nonexistent/hook"}"#);
        assert!(
            run_all("poststop", Some(&vec![h]), "{}", Ctx::default())
                .unwrap_err()
                .to_string()
                .contains("ENOENT")
        );
    }

    #[test]
    fn env_inherited_only_without_its_own_and_cwd_set() {
        let dir = std::env::temp_dir().join(format!("rrun-hook-ctx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!("echo \"$ONE $(pwd)\" >> {}", out.display());
        let inherit = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c",{script:?}]}}"#
        ));
        let own = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c",{script:?}],"env":["ONE=own"]}}"#
        ));
        let env = vec!["ONE=two".to_string()];
        let ctx = Ctx {
            env: Some(&env),
            cwd: Some(&dir),
        };
        run_all("startContainer", Some(&vec![inherit, own]), "{}", ctx).unwrap();
        let d = dir.display();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("two {d}\nown {d}\n")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
