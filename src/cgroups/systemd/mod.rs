//! The systemd cgroup driver (`--systemd-cgroup`), as runc's: the container's cgroup is a
//! transient scope unit `<prefix>-<name>.scope` in the slice the `slice:prefix:name`
//! cgroupsPath names, made by systemd with `Delegate=yes` around init's pid, with the limits
//! systemd owns as unit properties (so a `daemon-reload` keeps them); what systemd has no
//! property for is then written to the scope's cgroup files by the cgroupfs code, which
//! also owns everything after the create (exec, update's files, pause, ps, events, kill).
//!
//! Only on a cgroup v2 host (the hosts that run systemd today); v1 and hybrid hosts keep the
//! cgroupfs driver.

pub mod dbus;

use anyhow::{Context, Result, anyhow, bail};
use dbus::Value;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The unit a container's cgroup is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// `<prefix>-<name>.scope`.
    pub name: String,
    /// The slice it is in (`system.slice`).
    pub slice: String,
}

const FIELD: &str = "config.json: linux.cgroupsPath";

static REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--systemd-cgroup` was given (set once, from the command line).
pub fn set_requested(on: bool) {
    REQUESTED.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn requested() -> bool {
    REQUESTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether systemd runs this host (sd_booted(3): /run/systemd/system is a directory).
pub fn running() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// Rootless: the user's own systemd manager (systemd --user), at its private socket
/// `$XDG_RUNTIME_DIR/systemd/private` (no broker, as root's /run/systemd/private).
pub fn user_manager_socket() -> Result<std::path::PathBuf> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "--systemd-cgroup, rootless: XDG_RUNTIME_DIR is not set, so your systemd user \
                 manager cannot be found"
            )
        })?;
    let p = std::path::Path::new(&dir).join("systemd/private");
    if std::fs::symlink_metadata(&p).is_err() {
        bail!(
            "--systemd-cgroup, rootless: your systemd user manager is not running (no {}): \
             start it (loginctl enable-linger), or run without --systemd-cgroup",
            p.display()
        );
    }
    Ok(p)
}

/// Rootless: the cgroup the user's manager runs its units under (its own cgroup, the
/// `user@UID.service` one), from the manager's pid (the peer of its socket): unit cgroups are
/// relative to it.
pub fn user_manager_cgroup(socket: &std::path::Path) -> Result<String> {
    let s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        anyhow!(
            "--systemd-cgroup, rootless: connect {}: {}",
            socket.display(),
            crate::sys::io_errno(&e)
        )
    })?;
    let cred = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| {
            anyhow!(
                "--systemd-cgroup, rootless: SO_PEERCRED of {}: {e}",
                socket.display()
            )
        })?;
    let pid = cred.pid();
    let own = crate::util::read_proc(&format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("--systemd-cgroup, rootless: the user manager (pid {pid})"))?;
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| {
            anyhow!("--systemd-cgroup, rootless: /proc/{pid}/cgroup has no cgroup2 line")
        })?
        .trim();
    Ok(manager_root(path))
}

/// The manager itself sits in `init.scope` of its service: its units go beside that.
fn manager_root(own: &str) -> String {
    match own.rsplit_once('/') {
        Some((up, last)) if last.ends_with(".scope") => up.to_string(),
        _ => own.to_string(),
    }
}

/// The error of `--systemd-cgroup` where systemd does not run, in runc's sense.
pub fn not_running() -> anyhow::Error {
    anyhow!(
        "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system), so \
         it cannot manage the container's cgroup; run without --systemd-cgroup to let rrun \
         manage cgroupfs directly"
    )
}

/// Unit names: systemd's characters, not empty, at most 255 bytes.
fn check_unit_part(what: &str, s: &str, path: &str) -> Result<()> {
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-' | '\\' | '@')))
    {
        bail!(
            "{FIELD}: {path:?}: the {what} {s:?} has {c:?}, which a systemd unit name cannot hold"
        );
    }
    Ok(())
}

/// runc's `slice:prefix:name` (none: `system.slice:rrun:<id>`). An empty slice is
/// `system.slice`; the unit is `<prefix>-<name>.scope` (as runc names it, also with an empty
/// prefix).
pub fn parse_path(cgroups_path: Option<&str>, id: &str) -> Result<Unit> {
    let path = cgroups_path.filter(|p| !p.is_empty());
    let (slice, prefix, name) = match path {
        None => ("", "rrun", id),
        Some(p) => {
            let parts: Vec<&str> = p.split(':').collect();
            if parts.len() != 3 {
                bail!(
                    "{FIELD}: expected \"slice:prefix:name\" for the systemd cgroup driver (--systemd-cgroup), got {p:?}"
                );
            }
            (parts[0], parts[1], parts[2])
        }
    };
    let shown = path.unwrap_or("");
    let slice = if !slice.is_empty() {
        slice
    } else if crate::rootless::active() {
        // A user's manager: runc's default slice for rootless containers.
        "user.slice"
    } else {
        "system.slice"
    };
    if !slice.ends_with(".slice") {
        bail!("{FIELD}: {shown:?}: the slice {slice:?} must end in \".slice\"");
    }
    check_unit_part("slice", slice, shown)?;
    expand_slice(slice).with_context(|| format!("{FIELD}: {shown:?}"))?;
    if name.is_empty() {
        bail!("{FIELD}: {shown:?}: the name part is empty");
    }
    if name.ends_with(".slice") {
        bail!(
            "{FIELD}: {shown:?}: a container's unit is a scope; {name:?} names a slice (give it as the first part)"
        );
    }
    check_unit_part("prefix", prefix, shown)?;
    check_unit_part("name", name, shown)?;
    // runc's name, also without a prefix ("-<name>.scope").
    let unit = format!("{prefix}-{name}.scope");
    if unit.len() > 255 {
        bail!("{FIELD}: {shown:?}: the unit name {unit:?} is longer than systemd allows (255)");
    }
    Ok(Unit {
        name: unit,
        slice: slice.to_string(),
    })
}

/// A slice's cgroup path, as systemd nests them: `a-b-c.slice` is
/// `/a.slice/a-b.slice/a-b-c.slice`, `-.slice` the root.
pub fn expand_slice(slice: &str) -> Result<String> {
    let Some(base) = slice.strip_suffix(".slice") else {
        bail!("{slice:?} is not a slice");
    };
    if base == "-" {
        return Ok("/".into());
    }
    if base.is_empty()
        || base.contains('/')
        || base.starts_with('-')
        || base.ends_with('-')
        || base.contains("--")
    {
        bail!("{slice:?} is not a valid slice name");
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

/// A unit as the create's record names it (`<slice>:<name>`), checked as [`parse_path`] checks.
pub fn unit_from_record(rec: &str) -> Option<Unit> {
    let (slice, name) = rec.split_once(':')?;
    let base = name.strip_suffix(".scope")?;
    if base.is_empty() || !slice.ends_with(".slice") || expand_slice(slice).is_err() {
        return None;
    }
    check_unit_part("slice", slice, rec).ok()?;
    check_unit_part("name", name, rec).ok()?;
    Some(Unit {
        name: name.to_string(),
        slice: slice.to_string(),
    })
}

/// The cgroup (relative to the cgroup2 root) of `unit`.
pub fn cgroup_of(unit: &Unit) -> String {
    let s = expand_slice(&unit.slice).unwrap_or_else(|_| "/".into());
    format!("{}/{}", s.trim_end_matches('/'), unit.name)
}

fn prop(name: &str, v: Value) -> Value {
    Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
}

/// "max" or a number, as the cgroup files say it; max is systemd's infinity.
fn max_or(v: &str) -> Option<u64> {
    if v.trim() == "max" {
        Some(u64::MAX)
    } else {
        v.trim().parse().ok()
    }
}

/// A CPU or memory-node list as systemd's bitmask bytes (bit n of byte n/8).
fn bitmask(list: &str) -> Result<Vec<u8>> {
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>()?, b.trim().parse::<usize>()?),
            None => {
                let n = part.parse::<usize>()?;
                (n, n)
            }
        };
        if a > b || b >= 8192 {
            bail!("{list:?}: bad range {part:?}");
        }
        for n in a..=b {
            if bytes.len() <= n / 8 {
                bytes.resize(n / 8 + 1, 0);
            }
            bytes[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bytes)
}

/// The unit properties systemd owns, from the cgroup v2 writes rrun would make (so the
/// conversions are the cgroupfs driver's: shares to weight, swap, quota): runc's set.
/// Writes without a property are left to the files.
pub fn resource_properties(writes: &[crate::cgroups::v1::Write]) -> Result<Vec<Value>> {
    let mut props = Vec::new();
    for w in writes {
        let v = w.value.trim();
        let field = || format!("linux.resources ({} {v:?})", w.file);
        let num = || max_or(v).ok_or_else(|| anyhow!("{}: not a number", field()));
        match w.file.as_str() {
            "memory.max" => props.push(prop("MemoryMax", Value::U64(num()?))),
            "memory.low" => props.push(prop("MemoryLow", Value::U64(num()?))),
            "memory.high" => props.push(prop("MemoryHigh", Value::U64(num()?))),
            "memory.min" => props.push(prop("MemoryMin", Value::U64(num()?))),
            "memory.swap.max" => props.push(prop("MemorySwapMax", Value::U64(num()?))),
            "pids.max" => props.push(prop("TasksMax", Value::U64(num()?))),
            "cpu.weight" => props.push(prop("CPUWeight", Value::U64(num()?))),
            "io.weight" if !v.contains(' ') || v.starts_with("default ") => {
                let n = v.trim_start_matches("default ").trim();
                let n: u64 = n
                    .parse()
                    .map_err(|_| anyhow!("{}: not a number", field()))?;
                props.push(prop("IOWeight", Value::U64(n)));
            }
            "cpu.max" => {
                let mut f = v.split_whitespace();
                let quota = f.next().unwrap_or("max");
                let period: u64 = match f.next() {
                    Some(p) => p.parse().map_err(|_| anyhow!("{}: bad period", field()))?,
                    None => 100_000,
                };
                if period == 0 {
                    bail!("{}: period 0", field());
                }
                props.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
                let per_sec = match quota {
                    "max" => u64::MAX,
                    q => {
                        let q: u64 = q.parse().map_err(|_| anyhow!("{}: bad quota", field()))?;
                        // systemd takes a quota per second in steps of 10 ms: rounded up,
                        // as runc does (the exact value is written to cpu.max after).
                        let us = q.saturating_mul(1_000_000) / period;
                        us.div_ceil(10_000) * 10_000
                    }
                };
                props.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
            }
            "cpuset.cpus" | "cpuset.mems" if !v.is_empty() => {
                let name = if w.file == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                let bits = bitmask(v).with_context(field)?;
                let bytes = bits.into_iter().map(Value::Byte).collect();
                props.push(prop(name, Value::Array("y".into(), bytes)));
            }
            _ => {}
        }
    }
    Ok(props)
}

/// DevicePolicy and DeviceAllow for the container's device rules.
pub fn device_properties(rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<Vec<Value>> {
    let proc_devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let (policy, allow) = crate::cgroups::ebpf::systemd_policy(rules, &proc_devices)?;
    let allow = allow
        .into_iter()
        .map(|(d, a)| Value::Struct(vec![Value::Str(d), Value::Str(a)]))
        .collect();
    Ok(vec![
        prop("DevicePolicy", Value::Str(policy.into())),
        prop("DeviceAllow", Value::Array("(ss)".into(), allow)),
    ])
}

const ANNOTATION: &str = "org.systemd.property.";

/// `org.systemd.property.<Name>` annotations as unit properties, as runc takes them: the
/// value in GVariant text form (`uint64 123`, `'text'`, `true`, `['a', 'b']`), a
/// `...<lowercase>Sec` name given in seconds becoming `...USec` in microseconds.
pub fn annotation_properties(a: &std::collections::BTreeMap<String, String>) -> Result<Vec<Value>> {
    let keys = a.keys().filter(|k| k.starts_with(ANNOTATION));
    let mut out = Vec::new();
    for k in keys {
        let name = &k[ANNOTATION.len()..];
        let field = format!("config.json: annotations[{k:?}]");
        let mut c = name.chars();
        if name.len() < 2
            || !c.next().is_some_and(|c| c.is_ascii_uppercase())
            || !c.all(|c| c.is_ascii_alphanumeric())
        {
            bail!(
                "{field}: {name:?} is not a systemd property name (a capital letter, then letters and digits)"
            );
        }
        let mut value =
            gvariant::parse(&a[k]).with_context(|| format!("{field}: value {:?}", a[k]))?;
        let mut name = name.to_string();
        if let Some(base) = name.strip_suffix("Sec")
            && base.ends_with(|c: char| c.is_ascii_lowercase())
        {
            let secs = match &value {
                Value::U64(n) => *n as f64,
                Value::U32(n) => f64::from(*n),
                Value::I64(n) if *n >= 0 => *n as f64,
                Value::I32(n) if *n >= 0 => f64::from(*n),
                Value::Double(d) if *d >= 0.0 => *d,
                other => {
                    bail!("{field}: a time in seconds must be a non-negative number, not {other:?}")
                }
            };
            value = Value::U64((secs * 1e6).round() as u64);
            name = format!("{base}USec");
        }
        out.push(prop(&name, value));
    }
    Ok(out)
}

/// The GVariant text format, the part unit properties use.
pub mod gvariant {
    use super::Value;
    use anyhow::{Result, bail};

    pub fn parse(s: &str) -> Result<Value> {
        let mut p = P {
            s: s.as_bytes(),
            i: 0,
        };
        let v = p.value(None)?;
        p.ws();
        if p.i != p.s.len() {
            bail!(
                "unexpected {:?} after the value",
                String::from_utf8_lossy(&p.s[p.i..])
            );
        }
        Ok(v)
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }

        fn word(&mut self) -> &str {
            let st = self.i;
            while self.i < self.s.len()
                && (self.s[self.i].is_ascii_alphanumeric()
                    || matches!(self.s[self.i], b'_' | b'.' | b'-' | b'+' | b'@'))
            {
                self.i += 1;
            }
            std::str::from_utf8(&self.s[st..self.i]).unwrap_or("")
        }

        /// One value; `ty` is the type a prefix or the array's first element gave.
        fn value(&mut self, ty: Option<&str>) -> Result<Value> {
            self.ws();
            match self.s.get(self.i) {
                None => bail!("a value is missing"),
                Some(b'\'' | b'"') => {
                    let s = self.string()?;
                    return Ok(match ty {
                        Some("o") => Value::Path(s),
                        Some("g") => Value::Sig(s),
                        _ => Value::Str(s),
                    });
                }
                Some(b'[') => return self.array(ty),
                _ => {}
            }
            let st = self.i;
            let w = self.word().to_string();
            if let Some(sig) = w.strip_prefix('@') {
                return self.value(Some(sig));
            }
            let typed = match w.as_str() {
                "boolean" => Some("b"),
                "byte" => Some("y"),
                "int16" => Some("n"),
                "uint16" => Some("q"),
                "int32" => Some("i"),
                "uint32" => Some("u"),
                "int64" => Some("x"),
                "uint64" => Some("t"),
                "double" => Some("d"),
                "objectpath" => Some("o"),
                "signature" => Some("g"),
                _ => None,
            };
            if let Some(t) = typed {
                return self.value(Some(t));
            }
            let bad = || anyhow::anyhow!("{w:?} is not a value of type {}", ty.unwrap_or("?"));
            Ok(match (ty, w.as_str()) {
                (None | Some("b"), "true") => Value::Bool(true),
                (None | Some("b"), "false") => Value::Bool(false),
                (Some("y"), _) => Value::Byte(w.parse().map_err(|_| bad())?),
                (Some("n"), _) => Value::I16(w.parse().map_err(|_| bad())?),
                (Some("q"), _) => Value::U16(w.parse().map_err(|_| bad())?),
                (None | Some("i"), _) if w.parse::<i32>().is_ok() => Value::I32(w.parse()?),
                (Some("u"), _) => Value::U32(w.parse().map_err(|_| bad())?),
                (Some("x"), _) => Value::I64(w.parse().map_err(|_| bad())?),
                (Some("t"), _) => Value::U64(w.parse().map_err(|_| bad())?),
                (None | Some("d"), _) if w.parse::<f64>().is_ok() && !w.is_empty() => {
                    Value::Double(w.parse()?)
                }
                _ => {
                    self.i = st;
                    bail!(
                        "cannot read {:?} as a value",
                        String::from_utf8_lossy(&self.s[st..])
                    )
                }
            })
        }

        fn string(&mut self) -> Result<String> {
            let q = self.s[self.i];
            self.i += 1;
            let mut out = Vec::new();
            loop {
                let Some(&c) = self.s.get(self.i) else {
                    bail!("unterminated string");
                };
                self.i += 1;
                match c {
                    b'\\' => {
                        let Some(&e) = self.s.get(self.i) else {
                            bail!("unterminated string");
                        };
                        self.i += 1;
                        out.push(match e {
                            b'n' => b'\n',
                            b't' => b'\t',
                            b'r' => b'\r',
                            other => other,
                        });
                    }
                    c if c == q => break,
                    c => out.push(c),
                }
            }
            Ok(String::from_utf8(out)?)
        }

        fn array(&mut self, ty: Option<&str>) -> Result<Value> {
            self.i += 1;
            let mut elem: Option<String> = ty.and_then(|t| t.strip_prefix('a')).map(String::from);
            let mut items = Vec::new();
            loop {
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    break;
                }
                if !items.is_empty() {
                    if self.s.get(self.i) != Some(&b',') {
                        bail!("expected ',' or ']' in an array");
                    }
                    self.i += 1;
                }
                let v = self.value(elem.as_deref())?;
                match &elem {
                    Some(e) if *e != v.signature() => {
                        bail!("array elements of two types ({e} and {})", v.signature())
                    }
                    Some(_) => {}
                    None => elem = Some(v.signature()),
                }
                items.push(v);
            }
            let Some(elem) = elem else {
                bail!("an empty array needs a type (@as [])");
            };
            Ok(Value::Array(elem, items))
        }
    }
}

/// How long a job may take before rrun gives up on it.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

fn is(e: &anyhow::Error, name: &str) -> bool {
    e.downcast_ref::<dbus::BusError>()
        .is_some_and(|b| b.name == name)
}

/// Wait for the JobRemoved signal of `job`; its result ("done" is success).
fn wait_job(c: &mut dbus::Conn, job: &str, timeout: Duration) -> Result<String> {
    c.wait_signal("JobRemoved", timeout, |m| match m.body.as_slice() {
        [_, Value::Path(p), _, Value::Str(result)] if p == job => Some(result.clone()),
        _ => None,
    })
}

/// Make the scope around `pid` with `props` (besides the ones every container scope has),
/// wait until systemd has started it.
pub fn start(unit: &Unit, pid: i32, description: &str, props: Vec<Value>) -> Result<()> {
    let mut all = vec![
        prop("Description", Value::Str(description.into())),
        prop("Slice", Value::Str(unit.slice.clone())),
        prop("Delegate", Value::Bool(true)),
        prop(
            "PIDs",
            Value::Array("u".into(), vec![Value::U32(pid as u32)]),
        ),
        prop("DefaultDependencies", Value::Bool(false)),
        prop("MemoryAccounting", Value::Bool(true)),
        prop("CPUAccounting", Value::Bool(true)),
        prop("IOAccounting", Value::Bool(true)),
        prop("TasksAccounting", Value::Bool(true)),
    ];
    all.extend(props);
    let mut c = dbus::Conn::systemd()?;
    let call = |c: &mut dbus::Conn| {
        c.call(&dbus::manager_call(
            "StartTransientUnit",
            vec![
                Value::Str(unit.name.clone()),
                Value::Str("replace".into()),
                Value::Array("(sv)".into(), all.clone()),
                Value::Array("(sa(sv))".into(), vec![]),
            ],
        ))
    };
    let reply = match call(&mut c) {
        // A unit of that name left failed (an OOM kill, say) is reset and the start tried
        // once more, as runc does; a live one belongs to someone else.
        Err(e) if is(&e, "org.freedesktop.systemd1.UnitExists") => {
            let _ = c.call(&dbus::manager_call("ResetFailedUnit", vec![Value::Str(unit.name.clone())]));
            call(&mut c).map_err(|e| {
                if is(&e, "org.freedesktop.systemd1.UnitExists") {
                    anyhow!(
                        "{FIELD}: systemd unit {} already exists: another container (or a stale scope) uses this cgroupsPath",
                        unit.name
                    )
                } else {
                    e
                }
            })
        }
        r => r,
    }
    .with_context(|| format!("systemd: start transient unit {} in {} (over {})", unit.name, unit.slice, c.address))?;
    let Some(Value::Path(job)) = reply.first() else {
        bail!(
            "systemd: StartTransientUnit {} answered {reply:?}, not a job",
            unit.name
        );
    };
    let job = job.clone();
    let result = wait_job(&mut c, &job, JOB_TIMEOUT)
        .with_context(|| format!("systemd: wait for the start job of {}", unit.name))?;
    if result != "done" {
        let _ = stop_with(&mut c, unit);
        bail!(
            "systemd: starting unit {} ended \"{result}\" (see `journalctl -u {}`)",
            unit.name,
            unit.name
        );
    }
    Ok(())
}

/// Set properties of the running unit (`update`), for now and after a daemon-reload.
pub fn set(unit: &Unit, props: Vec<Value>) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let mut c = dbus::Conn::systemd()?;
    c.call(&dbus::manager_call(
        "SetUnitProperties",
        vec![
            Value::Str(unit.name.clone()),
            Value::Bool(true),
            Value::Array("(sv)".into(), props),
        ],
    ))
    .with_context(|| format!("systemd: set properties of {}", unit.name))?;
    Ok(())
}

/// Stop the unit and wait for it; a unit already gone is fine. A failed one is reset so
/// that no unit is left behind.
pub fn stop(unit: &Unit) -> Result<()> {
    if !running() {
        // The unit went with the systemd that had it.
        return Ok(());
    }
    let mut c = dbus::Conn::systemd()?;
    stop_with(&mut c, unit)
}

fn stop_with(c: &mut dbus::Conn, unit: &Unit) -> Result<()> {
    let r = c.call(&dbus::manager_call(
        "StopUnit",
        vec![Value::Str(unit.name.clone()), Value::Str("replace".into())],
    ));
    match r {
        Ok(reply) => {
            if let Some(Value::Path(job)) = reply.first() {
                let job = job.clone();
                wait_job(c, &job, JOB_TIMEOUT)
                    .with_context(|| format!("systemd: wait for the stop job of {}", unit.name))?;
            }
        }
        // Gone already (systemd stops and collects a scope once it is empty): nothing to
        // reset either.
        Err(e) if is(&e, "org.freedesktop.systemd1.NoSuchUnit") => return Ok(()),
        Err(e) => return Err(e.context(format!("systemd: stop unit {}", unit.name))),
    }
    match c.call(&dbus::manager_call(
        "ResetFailedUnit",
        vec![Value::Str(unit.name.clone())],
    )) {
        Ok(_) => Ok(()),
        Err(e)
            if is(&e, "org.freedesktop.systemd1.NoSuchUnit")
                || is(&e, "org.freedesktop.systemd1.UnitNotFailed") =>
        {
            Ok(())
        }
        Err(e) if e.downcast_ref::<dbus::BusError>().is_some() => Ok(()),
        Err(e) => Err(e.context(format!("systemd: reset-failed unit {}", unit.name))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_manager_units_go_beside_its_init_scope() {
        assert_eq!(
            manager_root("/user.slice/user-1000.slice/user@1000.service/init.scope"),
            "/user.slice/user-1000.slice/user@1000.service"
        );
        assert_eq!(manager_root("/some/service"), "/some/service");
    }

    #[test]
    fn paths_as_runc_reads_them() {
        let u = parse_path(Some("system.slice:docker:abc"), "x").unwrap();
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(u.slice, "system.slice");
        assert_eq!(cgroup_of(&u), "/system.slice/docker-abc.scope");
        let u = parse_path(Some(":cri-containerd:abc"), "x").unwrap();
        assert_eq!(u.slice, "system.slice");
        let u = parse_path(Some("kubepods-besteffort-pod1.slice::c1"), "x").unwrap();
        assert_eq!(u.name, "-c1.scope");
        assert_eq!(
            cgroup_of(&u),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/-c1.scope"
        );
        let u = parse_path(Some("-.slice:p:n"), "x").unwrap();
        assert_eq!(cgroup_of(&u), "/p-n.scope");
        let u = parse_path(None, "ctr1").unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("rrun-ctr1.scope", "system.slice")
        );
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "x.slice:p:",
            "nope:p:n",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "x.slice:p:n/m",
            "x.slice:p:n.slice",
        ] {
            let e = parse_path(Some(bad), "x").unwrap_err().to_string();
            assert!(
                e.starts_with("config.json: linux.cgroupsPath"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn resources_become_runcs_properties() {
        let res = crate::cgroups::testutil::res(
            r#"{"memory": {"limit": 67108864, "reservation": 1048576, "swap": 134217728},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3", "mems": "0"},
                "pids": {"limit": 99}, "blockIO": {"weight": 500}}"#,
        );
        let writes = crate::cgroups::v2::writes(&res).unwrap();
        let props = resource_properties(&writes).unwrap();
        let get = |n: &str| {
            props.iter().find_map(|p| match p {
                Value::Struct(v) if v[0] == Value::Str(n.into()) => match &v[1] {
                    Value::Variant(x) => Some((**x).clone()),
                    _ => None,
                },
                _ => None,
            })
        };
        assert_eq!(get("MemoryMax"), Some(Value::U64(67108864)));
        assert_eq!(get("MemoryLow"), Some(Value::U64(1048576)));
        assert_eq!(get("MemorySwapMax"), Some(Value::U64(67108864)));
        assert_eq!(get("TasksMax"), Some(Value::U64(99)));
        assert_eq!(get("CPUWeight"), Some(Value::U64(39)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(
            get("AllowedCPUs"),
            Some(Value::Array("y".into(), vec![Value::Byte(0b1011)]))
        );
        assert_eq!(
            get("AllowedMemoryNodes"),
            Some(Value::Array("y".into(), vec![Value::Byte(1)]))
        );
        assert_eq!(get("IOWeight"), Some(Value::U64(4950)));
        // A quota per second systemd cannot say exactly is rounded up to 10 ms.
        let res = crate::cgroups::testutil::res(
            r#"{"cpu": {"quota": 12345, "period": 100000}, "memory": {"limit": -1}, "pids": {"limit": -1}}"#,
        );
        let props = resource_properties(&crate::cgroups::v2::writes(&res).unwrap()).unwrap();
        assert!(props.contains(&prop("CPUQuotaPerSecUSec", Value::U64(130_000))));
        assert!(props.contains(&prop("MemoryMax", Value::U64(u64::MAX))));
        assert!(props.contains(&prop("TasksMax", Value::U64(u64::MAX))));
        assert_eq!(bitmask("9").unwrap(), vec![0, 2]);
    }

    #[test]
    fn device_rules_as_systemd_says_them() {
        let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rw"},
                {"allow": true, "type": "b", "access": "m"}]"#,
        )
        .unwrap();
        let devs = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        let (policy, allow) = crate::cgroups::ebpf::systemd_policy(&rules, devs).unwrap();
        assert_eq!(policy, "strict");
        let allow: Vec<(&str, &str)> = allow
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert!(allow.contains(&("/dev/char/1:3", "rwm")), "{allow:?}");
        assert!(allow.contains(&("char-pts", "rw")), "{allow:?}");
        assert!(allow.contains(&("block-*", "m")), "{allow:?}");
        // A major /proc/devices does not name: systemd cannot say it; its filter stays off.
        let (policy, allow) = crate::cgroups::ebpf::systemd_policy(&rules, "").unwrap();
        assert_eq!((policy, allow.len()), ("auto", 0));
        let open: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow": true, "access": "rwm"}, {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#).unwrap();
        assert_eq!(
            crate::cgroups::ebpf::systemd_policy(&open, devs).unwrap().0,
            "auto"
        );
    }

    #[test]
    fn annotations_in_gvariant_text() {
        let mut a = std::collections::BTreeMap::new();
        a.insert(
            "org.systemd.property.TimeoutStopSec".to_string(),
            "uint64 5".to_string(),
        );
        a.insert(
            "org.systemd.property.CollectMode".to_string(),
            "'inactive-or-failed'".to_string(),
        );
        a.insert(
            "org.systemd.property.After".to_string(),
            "['a.service', \"b.service\"]".to_string(),
        );
        a.insert(
            "org.systemd.property.CPUWeight".to_string(),
            "@t 77".to_string(),
        );
        a.insert("other".to_string(), "x".to_string());
        let p = annotation_properties(&a).unwrap();
        assert_eq!(
            p,
            vec![
                prop(
                    "After",
                    Value::Array(
                        "s".into(),
                        vec![
                            Value::Str("a.service".into()),
                            Value::Str("b.service".into())
                        ]
                    )
                ),
                prop("CPUWeight", Value::U64(77)),
                prop("CollectMode", Value::Str("inactive-or-failed".into())),
                prop("TimeoutStopUSec", Value::U64(5_000_000)),
            ]
        );
        assert_eq!(gvariant::parse("true").unwrap(), Value::Bool(true));
        assert_eq!(gvariant::parse("42").unwrap(), Value::I32(42));
        assert_eq!(gvariant::parse("1.5").unwrap(), Value::Double(1.5));
        assert_eq!(
            gvariant::parse("@as []").unwrap(),
            Value::Array("s".into(), vec![])
        );
        for bad in ["", "'open", "[1, 'a']", "[]", "uint64 -1", "x y"] {
            assert!(gvariant::parse(bad).is_err(), "{bad}");
        }
        let mut b = std::collections::BTreeMap::new();
        b.insert("org.systemd.property.bad-name".to_string(), "1".to_string());
        let e = annotation_properties(&b).unwrap_err().to_string();
        assert!(
            e.contains("annotations[\"org.systemd.property.bad-name\"]"),
            "{e}"
        );
        b.clear();
        b.insert(
            "org.systemd.property.TimeoutStopSec".to_string(),
            "'x'".to_string(),
        );
        assert!(annotation_properties(&b).is_err());
    }
}
