//! Error and debug output: plain text on stderr, and `--log` / `--log-format json` lines that
//! containerd's shim and conmon read back (`{"level":"error","msg":...,"time":...}`).

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    path: Option<std::path::PathBuf>,
    format: Format,
    debug: bool,
    t0: Instant,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// The `--log` file opened once by container init, which changes its mount namespace and
/// root: its later (--debug) lines must reach the caller's file, never a path of the same name
/// inside the container. Close-on-exec; -1 when not pinned.
static PINNED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// With --debug (init logs nothing else), open the `--log` file now (see [`PINNED`]), as an
/// fd numbered `min_fd` or above (clear of the fds passed on to the container); call before
/// the first namespace change. Without --debug: nothing, no syscall.
pub fn pin_file(min_fd: i32) {
    use std::os::fd::AsRawFd;
    let Some(p) = LOGGER
        .get()
        .filter(|l| l.debug)
        .and_then(|l| l.path.as_ref())
    else {
        return;
    };
    let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
    else {
        return;
    };
    // SAFETY: duplicating an fd we hold; the new one is ours until execve closes it.
    let fd = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min_fd) };
    if fd >= 0 {
        PINNED.store(fd, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The fd [`pin_file`] opened: to keep open (close-on-exec) while closing the others.
pub fn pinned_fd() -> Option<std::os::fd::RawFd> {
    let fd = PINNED.load(std::sync::atomic::Ordering::Relaxed);
    (fd >= 0).then_some(fd)
}

pub fn init(path: Option<std::path::PathBuf>, format: Format, debug: bool) {
    let _ = LOGGER.set(Logger {
        path,
        format,
        debug,
        t0: Instant::now(),
    });
}

pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

/// `--debug` phase timing: "phase NAME took X ms (at Y ms)".
pub struct Phase {
    name: &'static str,
    start: Instant,
}

pub fn phase(name: &'static str) -> Option<Phase> {
    debug_enabled().then(|| Phase {
        name,
        start: Instant::now(),
    })
}

impl Drop for Phase {
    fn drop(&mut self) {
        let l = LOGGER.get().expect("logger");
        let took = self.start.elapsed().as_secs_f64() * 1e3;
        let at = l.t0.elapsed().as_secs_f64() * 1e3;
        log(
            "debug",
            &format!("phase {} took {took:.3} ms (at {at:.3} ms)", self.name),
        );
    }
}

pub fn debug(msg: &str) {
    if debug_enabled() {
        log("debug", msg);
    }
}

pub fn warn(msg: &str) {
    log("warning", msg);
}

pub fn error(msg: &str) {
    log("error", msg);
}

/// An error goes to stderr for a person as `rrun: error: MSG` (tools grep for "error"), and as
/// a `level=error` line (text or JSON) to --log.
fn log(level: &str, msg: &str) {
    let l = LOGGER.get();
    let to_file = l.and_then(|l| l.path.as_ref());
    let format = l.map_or(Format::Text, |l| l.format);
    let line = match format {
        Format::Json => {
            let v =
                serde_json::json!({"level": level, "msg": msg, "time": crate::util::rfc3339_now()});
            format!("{v}\n")
        }
        Format::Text => format!(
            "time=\"{}\" level={level} msg={}\n",
            crate::util::rfc3339_now(),
            serde_json::Value::from(msg)
        ),
    };
    match to_file {
        Some(p) => {
            let pinned = PINNED.load(std::sync::atomic::Ordering::Relaxed);
            if pinned >= 0 {
                // SAFETY: a write to the fd pin_file opened, which stays open until execve.
                let _ = unsafe { libc::write(pinned, line.as_ptr().cast(), line.len()) };
            } else if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = f.write_all(line.as_bytes());
            }
            // Errors are also shown to a person running rrun by hand.
            if level == "error" {
                let _ = writeln!(std::io::stderr(), "rrun: error: {msg}");
            }
        }
        None => {
            if level == "error" {
                let _ = writeln!(std::io::stderr(), "rrun: error: {msg}");
            } else {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}
