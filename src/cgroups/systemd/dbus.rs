//! A small synchronous D-Bus client: enough of the wire protocol (SASL EXTERNAL, the
//! little-endian message format, method calls, replies, errors, signals) to drive systemd's
//! manager from one short-lived process.
//!
//! Why not a crate: zbus pulls an async runtime and ~80 crates into a binary that starts in
//! 0.6 ms; dbus-rs links libdbus (no static-pie). What rrun needs is one connection, a few
//! calls and one signal, which fits in this file and is tested against byte layouts below and
//! against a real systemd in `make test-systemd`.
//!
//! Where it connects: systemd's private socket `/run/systemd/private` when we may (root; no
//! bus daemon in between, no Hello, and systemd sends its signals to such peers without a
//! match rule), else the system bus (`DBUS_SYSTEM_BUS_ADDRESS` or
//! `/run/dbus/system_bus_socket`) with Hello and a match rule for the manager's signals.
//! Rootless: the user's own manager at `$XDG_RUNTIME_DIR/systemd/private`, the same way.

use anyhow::{Context, Result, anyhow, bail};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A D-Bus value. `Array` carries its element signature (an empty array still has a type).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
    Dict(Box<Value>, Box<Value>),
}

impl Value {
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I16(_) => "n".into(),
            Value::U16(_) => "q".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(e, _) => format!("a{e}"),
            Value::Struct(v) => format!("({})", v.iter().map(Value::signature).collect::<String>()),
            Value::Variant(_) => "v".into(),
            Value::Dict(k, v) => format!("{{{}{}}}", k.signature(), v.signature()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }
}

fn align_of(sig: u8) -> usize {
    match sig {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        _ => 8, // x t d ( {
    }
}

fn pad(buf: &mut Vec<u8>, a: usize) {
    while !buf.len().is_multiple_of(a) {
        buf.push(0);
    }
}

/// Append `v` to `buf`; alignment is relative to the buffer's start (the message's).
pub fn put(buf: &mut Vec<u8>, v: &Value) {
    let sig = v.signature();
    pad(buf, align_of(sig.as_bytes()[0]));
    match v {
        Value::Byte(x) => buf.push(*x),
        Value::Bool(x) => buf.extend_from_slice(&u32::from(*x).to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Double(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Str(s) | Value::Path(s) => {
            buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
            buf.push(0);
        }
        Value::Sig(s) => {
            buf.push(s.len() as u8);
            buf.extend_from_slice(s.as_bytes());
            buf.push(0);
        }
        Value::Array(elem, items) => {
            let at = buf.len();
            buf.extend_from_slice(&[0; 4]);
            pad(buf, align_of(elem.as_bytes()[0]));
            let start = buf.len();
            for i in items {
                put(buf, i);
            }
            let n = (buf.len() - start) as u32;
            buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
        }
        Value::Struct(items) => items.iter().for_each(|i| put(buf, i)),
        Value::Variant(inner) => {
            put(buf, &Value::Sig(inner.signature()));
            put(buf, inner);
        }
        Value::Dict(k, val) => {
            put(buf, k);
            put(buf, val);
        }
    }
}

/// The end of the single complete type that starts `sig`.
fn one_type(sig: &[u8]) -> Result<usize> {
    let Some(&c) = sig.first() else {
        bail!("D-Bus: empty signature");
    };
    Ok(match c {
        b'a' => 1 + one_type(&sig[1..])?,
        b'(' | b'{' => {
            let close = if c == b'(' { b')' } else { b'}' };
            let mut i = 1;
            while sig.get(i) != Some(&close) {
                if i >= sig.len() {
                    bail!(
                        "D-Bus: unbalanced signature {:?}",
                        String::from_utf8_lossy(sig)
                    );
                }
                i += one_type(&sig[i..])?;
            }
            i + 1
        }
        _ => 1,
    })
}

/// Reads values out of a message; positions are relative to the message's start.
pub struct Reader<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| anyhow!("D-Bus: message truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn align(&mut self, a: usize) -> Result<()> {
        let p = self.pos.next_multiple_of(a);
        if p > self.data.len() {
            bail!("D-Bus: message truncated");
        }
        self.pos = p;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn string(&mut self, len: usize) -> Result<String> {
        let s = String::from_utf8(self.take(len)?.to_vec()).context("D-Bus: string not UTF-8")?;
        self.take(1)?;
        Ok(s)
    }

    /// All values of the signature `sig`, in order.
    pub fn values(&mut self, sig: &str) -> Result<Vec<Value>> {
        let b = sig.as_bytes();
        let mut i = 0;
        let mut out = Vec::new();
        while i < b.len() {
            let n = one_type(&b[i..])?;
            out.push(self.value(&sig[i..i + n], 0)?);
            i += n;
        }
        Ok(out)
    }

    fn value(&mut self, sig: &str, depth: u32) -> Result<Value> {
        if depth > 32 {
            bail!("D-Bus: values nested too deeply");
        }
        let c = sig.as_bytes()[0];
        self.align(align_of(c))?;
        let fixed = |r: &mut Self, n: usize| -> Result<Vec<u8>> { Ok(r.take(n)?.to_vec()) };
        Ok(match c {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(self.u32()? != 0),
            b'n' => Value::I16(i16::from_le_bytes(fixed(self, 2)?.try_into().unwrap())),
            b'q' => Value::U16(u16::from_le_bytes(fixed(self, 2)?.try_into().unwrap())),
            b'i' => Value::I32(self.u32()? as i32),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(fixed(self, 8)?.try_into().unwrap())),
            b't' => Value::U64(u64::from_le_bytes(fixed(self, 8)?.try_into().unwrap())),
            b'd' => Value::Double(f64::from_le_bytes(fixed(self, 8)?.try_into().unwrap())),
            b's' | b'o' => {
                let n = self.u32()? as usize;
                let s = self.string(n)?;
                if c == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let n = self.take(1)?[0] as usize;
                Value::Sig(self.string(n)?)
            }
            b'v' => {
                let n = self.take(1)?[0] as usize;
                let s = self.string(n)?;
                if one_type(s.as_bytes())? != s.len() {
                    bail!("D-Bus: variant signature {s:?} is not one type");
                }
                Value::Variant(Box::new(self.value(&s, depth + 1)?))
            }
            b'a' => {
                let n = self.u32()? as usize;
                let elem = &sig[1..1 + one_type(&sig.as_bytes()[1..])?];
                self.align(align_of(elem.as_bytes()[0]))?;
                let end = self.pos + n;
                if end > self.data.len() {
                    bail!("D-Bus: array longer than the message");
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' | b'{' => {
                let inner = &sig[1..sig.len() - 1];
                let mut v = Reader {
                    data: self.data,
                    pos: self.pos,
                }
                .values_at(inner, depth + 1)?;
                self.pos = v.1;
                if c == b'{' {
                    if v.0.len() != 2 {
                        bail!("D-Bus: dict entry of {} values", v.0.len());
                    }
                    let val = v.0.pop().unwrap();
                    let key = v.0.pop().unwrap();
                    Value::Dict(Box::new(key), Box::new(val))
                } else {
                    Value::Struct(v.0)
                }
            }
            _ => bail!("D-Bus: unknown type code {:?}", c as char),
        })
    }

    fn values_at(mut self, sig: &str, depth: u32) -> Result<(Vec<Value>, usize)> {
        let b = sig.as_bytes();
        let mut i = 0;
        let mut out = Vec::new();
        while i < b.len() {
            let n = one_type(&b[i..])?;
            out.push(self.value(&sig[i..i + n], depth)?);
            i += n;
        }
        Ok((out, self.pos))
    }
}

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// A message read off the bus.
#[derive(Debug, Default, Clone)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<Value>,
}

/// A method call: destination, object path, interface, member and arguments.
pub struct Call<'a> {
    pub dest: &'a str,
    pub path: &'a str,
    pub iface: &'a str,
    pub member: &'a str,
    pub args: Vec<Value>,
}

/// The bytes of a method call with `serial`.
pub fn encode_call(c: &Call, serial: u32) -> Vec<u8> {
    let sig: String = c.args.iter().map(Value::signature).collect();
    let mut body = Vec::new();
    for a in &c.args {
        put(&mut body, a);
    }
    let field =
        |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))]);
    let mut fields = vec![
        field(1, Value::Path(c.path.into())),
        field(2, Value::Str(c.iface.into())),
        field(3, Value::Str(c.member.into())),
        field(6, Value::Str(c.dest.into())),
    ];
    if !sig.is_empty() {
        fields.push(field(8, Value::Sig(sig)));
    }
    let mut m = vec![b'l', METHOD_CALL, 0, 1];
    m.extend_from_slice(&(body.len() as u32).to_le_bytes());
    m.extend_from_slice(&serial.to_le_bytes());
    put(&mut m, &Value::Array("(yv)".into(), fields));
    pad(&mut m, 8);
    m.extend_from_slice(&body);
    m
}

/// Parse one whole message (`data` is exactly its bytes).
pub fn decode(data: &[u8]) -> Result<Message> {
    if data.len() < 16 || data[0] != b'l' {
        bail!("D-Bus: not a little-endian message");
    }
    let mut r = Reader { data, pos: 4 };
    let body_len = r.u32()? as usize;
    r.u32()?; // the serial: only replies' reply_serial is looked at
    let mut m = Message {
        kind: data[1],
        ..Default::default()
    };
    let fields = r.value("a(yv)", 0)?;
    let mut sig = String::new();
    if let Value::Array(_, items) = fields {
        for f in items {
            let Value::Struct(mut kv) = f else { continue };
            let (Some(Value::Variant(v)), Some(Value::Byte(code))) = (kv.pop(), kv.pop()) else {
                continue;
            };
            match (code, *v) {
                (1, Value::Path(s)) => m.path = Some(s),
                (2, Value::Str(s)) => m.interface = Some(s),
                (3, Value::Str(s)) => m.member = Some(s),
                (4, Value::Str(s)) => m.error_name = Some(s),
                (5, Value::U32(n)) => m.reply_serial = Some(n),
                (8, Value::Sig(s)) => sig = s,
                _ => {}
            }
        }
    }
    r.align(8)?;
    if r.pos + body_len != data.len() {
        bail!("D-Bus: body length does not match the message");
    }
    m.body = r.values(&sig)?;
    Ok(m)
}

/// The whole length of a message from its first 16 bytes.
fn message_len(head: &[u8; 16]) -> Result<usize> {
    if head[0] != b'l' {
        bail!("D-Bus: big-endian messages are not supported");
    }
    let body = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
    let fields = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
    let n = (16 + fields).next_multiple_of(8) + body;
    if n > 128 << 20 {
        bail!("D-Bus: message of {n} bytes");
    }
    Ok(n)
}

/// An error reply, as systemd names it ("org.freedesktop.systemd1.NoSuchUnit") and says it.
#[derive(Debug)]
pub struct BusError {
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for BusError {}

pub struct Conn {
    sock: UnixStream,
    serial: u32,
    /// Signals read while waiting for a reply.
    pending: Vec<Message>,
    /// Where we are connected, for errors.
    pub address: String,
    timeout: Duration,
}

/// systemd's own socket: root only, no broker.
const SYSTEMD_PRIVATE: &str = "/run/systemd/private";
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

impl Conn {
    /// Connect to systemd: its private socket, else the system bus.
    pub fn systemd() -> Result<Conn> {
        if crate::rootless::active() {
            // The user's own manager, at its private socket.
            let p = super::user_manager_socket()?;
            return Conn::open(&p.to_string_lossy(), false);
        }
        let mut errs = Vec::new();
        if nix::unistd::geteuid().is_root() {
            match Conn::open(SYSTEMD_PRIVATE, false) {
                Ok(c) => return Ok(c),
                Err(e) => errs.push(format!("{e:#}")),
            }
        }
        let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .ok()
            .and_then(|a| {
                a.split(';').find_map(|one| {
                    one.strip_prefix("unix:path=")
                        .map(|p| p.split(',').next().unwrap_or(p).to_string())
                })
            })
            .unwrap_or_else(|| SYSTEM_BUS.into());
        let r = Conn::open(&bus, true).and_then(|mut c| {
            // On a bus, systemd's signals reach those who match them and subscribed.
            c.call(&Call {
                dest: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                iface: "org.freedesktop.DBus",
                member: "AddMatch",
                args: vec![Value::Str(
                    "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'".into(),
                )],
            })?;
            c.call(&manager_call("Subscribe", vec![]))?;
            Ok(c)
        });
        match r {
            Ok(c) => Ok(c),
            Err(e) => {
                errs.push(format!("{e:#}"));
                bail!("cannot reach systemd over D-Bus: {}", errs.join("; "))
            }
        }
    }

    /// Connect to `path` and authenticate as our uid; on a bus (`hello`), say Hello.
    pub fn open(path: &str, hello: bool) -> Result<Conn> {
        let sock = UnixStream::connect(path)
            .map_err(|e| anyhow!("connect {path}: {}", crate::sys::io_errno(&e)))?;
        let mut c = Conn {
            sock,
            serial: 0,
            pending: Vec::new(),
            address: path.to_string(),
            timeout: Duration::from_secs(30),
        };
        c.auth()?;
        if hello {
            c.call(&Call {
                dest: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                iface: "org.freedesktop.DBus",
                member: "Hello",
                args: vec![],
            })?;
        }
        Ok(c)
    }

    /// SASL EXTERNAL with our uid, pipelined with BEGIN: one round trip.
    fn auth(&mut self) -> Result<()> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let hello = format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n");
        self.sock.write_all(hello.as_bytes()).map_err(|e| {
            anyhow!(
                "D-Bus {}: authenticate: {}",
                self.address,
                crate::sys::io_errno(&e)
            )
        })?;
        let mut line = Vec::new();
        let deadline = Instant::now() + self.timeout;
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            self.wait_readable(deadline)?;
            match self.sock.read(&mut b) {
                Ok(0) => bail!("D-Bus {}: closed during authentication", self.address),
                Ok(_) => line.push(b[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => bail!(
                    "D-Bus {}: authenticate: {}",
                    self.address,
                    crate::sys::io_errno(&e)
                ),
            }
            if line.len() > 512 {
                bail!("D-Bus {}: authentication line too long", self.address);
            }
        }
        if !line.starts_with(b"OK ") {
            bail!(
                "D-Bus {}: authentication refused: {}",
                self.address,
                String::from_utf8_lossy(&line).trim_end()
            );
        }
        Ok(())
    }

    fn wait_readable(&self, deadline: Instant) -> Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "D-Bus {}: no answer within {:?}",
                    self.address,
                    self.timeout
                );
            }
            let mut p = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, ms.max(1)) };
            if r > 0 {
                return Ok(());
            }
            if r < 0 && nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                bail!(
                    "D-Bus {}: poll: {}",
                    self.address,
                    nix::errno::Errno::last()
                );
            }
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            self.wait_readable(deadline)?;
            match self.sock.read(&mut buf[got..]) {
                Ok(0) => bail!("D-Bus {}: connection closed", self.address),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => bail!("D-Bus {}: read: {}", self.address, crate::sys::io_errno(&e)),
            }
        }
        Ok(())
    }

    fn read_message(&mut self, deadline: Instant) -> Result<Message> {
        let mut head = [0u8; 16];
        self.read_exact(&mut head, deadline)?;
        let n = message_len(&head)?;
        let mut data = vec![0u8; n];
        data[..16].copy_from_slice(&head);
        self.read_exact(&mut data[16..], deadline)?;
        decode(&data)
    }

    /// Send a call and wait for its reply; an error reply becomes a [`BusError`].
    pub fn call(&mut self, c: &Call) -> Result<Vec<Value>> {
        self.serial += 1;
        let serial = self.serial;
        let bytes = encode_call(c, serial);
        self.sock.write_all(&bytes).map_err(|e| {
            anyhow!(
                "D-Bus {}: send {}: {}",
                self.address,
                c.member,
                crate::sys::io_errno(&e)
            )
        })?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let m = self.read_message(deadline)?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m.body),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = m
                        .body
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    return Err(BusError {
                        name: m.error_name.unwrap_or_default(),
                        message,
                    }
                    .into());
                }
                SIGNAL => self.pending.push(m),
                _ => {}
            }
        }
    }

    /// Wait for the first signal `member` that `pick` accepts (earlier ones seen while
    /// waiting for replies count), for at most `timeout`.
    pub fn wait_signal<T>(
        &mut self,
        member: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Message) -> Option<T>,
    ) -> Result<T> {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].member.as_deref() == Some(member)
                && let Some(t) = pick(&self.pending[i])
            {
                self.pending.remove(i);
                return Ok(t);
            }
            i += 1;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self
                .read_message(deadline)
                .with_context(|| format!("waiting {timeout:?} for the signal {member}"))?;
            if m.kind == SIGNAL
                && m.member.as_deref() == Some(member)
                && let Some(t) = pick(&m)
            {
                return Ok(t);
            }
        }
    }
}

/// A call to systemd's manager object.
pub fn manager_call(member: &str, args: Vec<Value>) -> Call<'_> {
    Call {
        dest: "org.freedesktop.systemd1",
        path: "/org/freedesktop/systemd1",
        iface: "org.freedesktop.systemd1.Manager",
        member,
        args,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_bytes_match_the_spec_layout() {
        // Hello on the bus: the header fields array and its padding, no body.
        let m = encode_call(
            &Call {
                dest: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                iface: "org.freedesktop.DBus",
                member: "Hello",
                args: vec![],
            },
            1,
        );
        assert_eq!(&m[..12], b"l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00");
        // First field: code 1, variant "o", the path (length 21), aligned to 8 at 16.
        assert_eq!(&m[16..20], b"\x01\x01o\x00");
        assert_eq!(&m[20..24], &21u32.to_le_bytes());
        assert_eq!(&m[24..45], b"/org/freedesktop/DBus");
        assert_eq!(m.len() % 8, 0);
        let d = decode(&m).unwrap();
        assert_eq!(d.kind, METHOD_CALL);
        assert_eq!(d.member.as_deref(), Some("Hello"));
        assert_eq!(d.path.as_deref(), Some("/org/freedesktop/DBus"));
        assert!(d.body.is_empty());
    }

    #[test]
    fn values_round_trip_with_alignment() {
        let props = Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![
                    Value::Str("PIDs".into()),
                    Value::Variant(Box::new(Value::Array("u".into(), vec![Value::U32(42)]))),
                ]),
                Value::Struct(vec![
                    Value::Str("MemoryMax".into()),
                    Value::Variant(Box::new(Value::U64(1 << 30))),
                ]),
                Value::Struct(vec![
                    Value::Str("AllowedCPUs".into()),
                    Value::Variant(Box::new(Value::Array("y".into(), vec![Value::Byte(3)]))),
                ]),
                Value::Struct(vec![
                    Value::Str("DeviceAllow".into()),
                    Value::Variant(Box::new(Value::Array(
                        "(ss)".into(),
                        vec![Value::Struct(vec![
                            Value::Str("/dev/null".into()),
                            Value::Str("rwm".into()),
                        ])],
                    ))),
                ]),
                Value::Struct(vec![
                    Value::Str("Delegate".into()),
                    Value::Variant(Box::new(Value::Bool(true))),
                ]),
            ],
        );
        let args = vec![
            Value::Str("x.scope".into()),
            Value::Str("replace".into()),
            props,
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let m = encode_call(&manager_call("StartTransientUnit", args.clone()), 7);
        let d = decode(&m).unwrap();
        assert_eq!(&m[8..12], &7u32.to_le_bytes());
        assert_eq!(d.body, args);
        // The signature field says what the body is.
        let sig: String = args.iter().map(Value::signature).collect();
        assert_eq!(sig, "ssa(sv)a(sa(sv))");
    }

    #[test]
    fn known_encoding_of_a_u64_in_a_variant_after_a_string() {
        // "ab" then variant t: s at 0 (len 4 + 2 + NUL = 7), g at 7 ("\x01t\0"), pad to 16.
        let mut b = Vec::new();
        put(&mut b, &Value::Str("ab".into()));
        put(&mut b, &Value::Variant(Box::new(Value::U64(5))));
        assert_eq!(
            b,
            [
                2, 0, 0, 0, b'a', b'b', 0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        // An empty array of 8-aligned elements still pads to its first element's place.
        let mut b = vec![0u8];
        put(&mut b, &Value::Array("(sv)".into(), vec![]));
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn decode_rejects_truncated_and_bad_messages() {
        let m = encode_call(&manager_call("Subscribe", vec![Value::Str("x".into())]), 1);
        assert!(decode(&m[..m.len() - 1]).is_err());
        let mut bad = m.clone();
        bad[0] = b'B';
        assert!(decode(&bad).is_err());
        // A variant claiming two types.
        let mut r = Reader {
            data: b"\x02ss\x00",
            pos: 0,
        };
        assert!(r.values("v").is_err());
        assert_eq!(one_type(b"a(sa(sv))u").unwrap(), 9);
        assert!(one_type(b"(ss").is_err());
    }

    #[test]
    fn job_removed_signal_decodes() {
        // A signal as systemd sends it: (u id, o job, s unit, s result).
        let body = vec![
            Value::U32(9),
            Value::Path("/org/freedesktop/systemd1/job/9".into()),
            Value::Str("rrun-a.scope".into()),
            Value::Str("done".into()),
        ];
        let mut m = encode_call(&manager_call("JobRemoved", body.clone()), 3);
        m[1] = SIGNAL;
        let d = decode(&m).unwrap();
        assert_eq!(d.kind, SIGNAL);
        assert_eq!(d.body, body);
        assert_eq!(message_len(m[..16].try_into().unwrap()).unwrap(), m.len());
    }

    /// The client against a real bus: a private dbus-daemon (Debian's dbus-daemon package).
    #[test]
    fn speaks_to_a_real_dbus_daemon() {
        let daemon = "/usr/bin/dbus-daemon";
        assert!(
            std::path::Path::new(daemon).exists(),
            "{daemon} is missing: apt-get install dbus-daemon (the D-Bus client is tested against it)"
        );
        let dir = std::env::temp_dir().join(format!("rrun-dbus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("bus");
        let conf = dir.join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                "<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
                 <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\
                 <allow eavesdrop=\"true\"/><allow own=\"*\"/><allow user=\"*\"/></policy></busconfig>",
                sock.display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(daemon)
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..500 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let r = (|| -> Result<()> {
            let mut c = Conn::open(sock.to_str().unwrap(), true)?;
            let bus = |member: &'static str, args: Vec<Value>| Call {
                dest: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                iface: "org.freedesktop.DBus",
                member,
                args,
            };
            let id = c.call(&bus("GetId", vec![]))?;
            assert!(
                matches!(id.as_slice(), [Value::Str(s)] if s.len() == 32),
                "{id:?}"
            );
            let names = c.call(&bus("ListNames", vec![]))?;
            assert!(
                matches!(names.as_slice(), [Value::Array(e, v)] if e == "s" && v.contains(&Value::Str("org.freedesktop.DBus".into()))),
                "{names:?}"
            );
            // An error reply, with its name and message.
            let e = c
                .call(&bus("NoSuchMethod", vec![Value::U64(1)]))
                .unwrap_err();
            let b = e.downcast_ref::<BusError>().expect("a bus error");
            assert_eq!(b.name, "org.freedesktop.DBus.Error.UnknownMethod", "{b}");
            // A signal that arrives after the reply that caused it.
            c.call(&bus(
                "AddMatch",
                vec![Value::Str(
                    "type='signal',member='NameOwnerChanged',arg0='org.rrun.Test'".into(),
                )],
            ))?;
            let r = c.call(&bus(
                "RequestName",
                vec![Value::Str("org.rrun.Test".into()), Value::U32(4)],
            ))?;
            assert_eq!(r, vec![Value::U32(1)]);
            let owner = c.wait_signal("NameOwnerChanged", Duration::from_secs(5), |m| {
                match m.body.as_slice() {
                    [Value::Str(n), _, Value::Str(new)] if n == "org.rrun.Test" => {
                        Some(new.clone())
                    }
                    _ => None,
                }
            })?;
            assert!(owner.starts_with(':'), "{owner}");
            // Nothing more comes: a wait times out, with the address in the error.
            let e = c
                .wait_signal("JobRemoved", Duration::from_millis(100), |_| Some(()))
                .unwrap_err();
            assert!(
                format!("{e:#}").contains("waiting 100ms for the signal JobRemoved"),
                "{e:#}"
            );
            Ok(())
        })();
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        r.unwrap();
    }
}
