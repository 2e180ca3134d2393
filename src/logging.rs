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
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = f.write_all(line.as_bytes());
            }
            // Errors are also shown to a person running rrun by hand.
            if level == "error" {
                let _ = writeln!(std::io::stderr(), "rrun: {msg}");
            }
        }
        None => {
            if level == "error" {
                let _ = writeln!(std::io::stderr(), "rrun: {msg}");
            } else {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}
