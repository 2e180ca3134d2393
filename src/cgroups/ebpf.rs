//! cgroup v2 device control: the OCI device rules compiled into a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program and attached to the container's cgroup directory, as runc's devicefilter does.
//!
//! # Rule semantics
//!
//! The rules are first run through the same emulation of the cgroup v1 devices controller that
//! runc uses (and that the v1 backend writes to `devices.allow`/`devices.deny`), so a rule list
//! means the same thing on every host:
//!
//! * The starting state is "deny everything".
//! * A type `a` rule (or no type) resets the state: allow-all or deny-all, dropping every earlier
//!   rule; its major, minor and access are ignored, as in runc.
//! * A `b`/`c` rule whose action differs from the current default adds an exception (access is
//!   merged with an exception for the very same type/major/minor).
//! * A `b`/`c` rule whose action equals the current default removes access from the exception
//!   with exactly the same type/major/minor. If a *wider* exception (a wildcard major and/or
//!   minor of the same type) holds any of that access the rules are rejected: v1 silently
//!   ignores such "holes", and runc refuses them rather than give a false sense of security.
//!
//! For ordinary lists this is "the last matching rule wins". Exceptions do not depend on order
//! any more, so the program tests them in runc's order (major, minor, type) and the first match
//! returns the opposite of the default; no match returns the default.
//!
//! Access matching follows the kernel's v1 controller: an *allow* exception matches only when it
//! grants every requested access bit (so `r` does not allow an `O_RDWR` open); a *deny*
//! exception (allow-all default) matches when it covers any requested bit (so denying `w` also
//! denies `O_RDWR`). runc's program uses the "every bit" test for deny exceptions too, which lets
//! `O_RDWR` through a `w` deny; rrun does not copy that.
//!
//! Input validation matches the v1 backend and runc: type must be `a`, `b` or `c`; major/minor
//! absent or -1 mean any, other negative values and values above `u32::MAX` are errors; access
//! absent means `rwm`, an empty string or letters other than `r`, `w`, `m` are errors.

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const RES: &str = "linux.resources";
const WILDCARD: i64 = -1;

/// `BPF_DEVCG_ACC_*` and `BPF_DEVCG_DEV_*` of `include/uapi/linux/bpf.h`.
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Instruction encoding (struct bpf_insn).
// ---------------------------------------------------------------------------------------------

/// Instruction classes, sizes, modes, operations and sources of the eBPF encoding.
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

const OP_LDXW: u8 = BPF_LDX | BPF_MEM | BPF_W;
const OP_AND32_K: u8 = BPF_ALU | BPF_AND | BPF_K;
const OP_RSH32_K: u8 = BPF_ALU | BPF_RSH | BPF_K;
const OP_MOV32_K: u8 = BPF_ALU | BPF_MOV | BPF_K;
const OP_MOV32_X: u8 = BPF_ALU | BPF_MOV | BPF_X;
const OP_JEQ_K: u8 = BPF_JMP | BPF_JEQ | BPF_K;
const OP_JNE_K: u8 = BPF_JMP | BPF_JNE | BPF_K;
const OP_JNE_X: u8 = BPF_JMP | BPF_JNE | BPF_X;
const OP_EXIT: u8 = BPF_JMP | BPF_EXIT;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// One eBPF instruction (`struct bpf_insn`): opcode, destination and source register (4 bits
/// each), signed 16-bit offset and signed 32-bit immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8 bytes the kernel expects, in host byte order (the register nibbles are a C
    /// bitfield, whose order follows the byte order).
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0x0f)
        } else {
            (self.dst << 4) | (self.src & 0x0f)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Rule emulation.
// ---------------------------------------------------------------------------------------------

/// The match part of an exception; the derived order is runc's (major, minor, type), with
/// wildcards (-1) first and block (1) before char (2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    major: i64,
    minor: i64,
    kind: u32,
}

#[derive(Debug, Default)]
struct Policy {
    default_allow: bool,
    /// Exceptions to the default with their `ACC_*` bits (never 0).
    exceptions: BTreeMap<Key, u32>,
}

fn rule_number(n: Option<i64>, path: &str) -> Result<i64> {
    match n {
        None | Some(WILDCARD) => Ok(WILDCARD),
        Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n),
        Some(n) => bail!(
            "{path}: must be 0..={}, or -1 / absent for any (got {n})",
            u32::MAX
        ),
    }
}

fn rule_access(access: Option<&str>, path: &str) -> Result<u32> {
    let Some(access) = access else {
        return Ok(ACC_ALL);
    };
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => bail!("{path}.access: {access:?} may only hold the letters r, w and m"),
        };
    }
    if bits == 0 {
        bail!("{path}.access: must not be empty (use some of r, w and m)");
    }
    Ok(bits)
}

fn access_string(bits: u32) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

fn rule_string(key: Key, bits: u32) -> String {
    let number = |n: i64| {
        if n == WILDCARD {
            "*".to_string()
        } else {
            n.to_string()
        }
    };
    let kind = if key.kind == DEV_BLOCK { 'b' } else { 'c' };
    format!(
        "{kind} {}:{} {}",
        number(key.major),
        number(key.minor),
        access_string(bits)
    )
}

/// Applies the rules in order the way the v1 devices controller (as emulated by runc) does.
fn emulate(rules: &[LinuxDeviceCgroup]) -> Result<Policy> {
    let mut p = Policy::default();
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("{RES}.devices[{i}]");
        let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C => Some(DEV_CHAR),
            other => bail!(
                "{path}.type: {:?} cannot be used in the devices cgroup (only \"a\", \"b\" and \"c\")",
                other.as_str()
            ),
        };
        let major = rule_number(rule.major(), &format!("{path}.major"))?;
        let minor = rule_number(rule.minor(), &format!("{path}.minor"))?;
        let bits = rule_access(rule.access().as_deref(), &path)?;
        let Some(kind) = kind else {
            p.default_allow = rule.allow();
            p.exceptions.clear();
            continue;
        };
        let key = Key { major, minor, kind };
        if rule.allow() != p.default_allow {
            *p.exceptions.entry(key).or_insert(0) |= bits;
            continue;
        }
        for wider in [
            Key {
                major: WILDCARD,
                ..key
            },
            Key {
                minor: WILDCARD,
                ..key
            },
            Key {
                major: WILDCARD,
                minor: WILDCARD,
                kind,
            },
        ] {
            let overlap = p.exceptions.get(&wider).copied().unwrap_or(0) & bits;
            if wider != key && overlap != 0 {
                bail!(
                    "{path}: cannot {} \"{}\" here: the earlier rule \"{}\" covers it and the \
                     devices cgroup cannot make exceptions to it",
                    if rule.allow() { "allow" } else { "deny" },
                    rule_string(key, bits),
                    rule_string(wider, p.exceptions[&wider]),
                );
            }
        }
        if let Some(held) = p.exceptions.get_mut(&key) {
            *held &= !bits;
            if *held == 0 {
                p.exceptions.remove(&key);
            }
        }
    }
    Ok(p)
}

/// The rules as systemd's `DevicePolicy=` and `DeviceAllow=` properties, for a unit that
/// must agree with the container's own device program: a default-deny rule set becomes
/// `strict` with one entry per allowed exception (`/dev/char/M:N`, `char-<driver>` for a whole
/// major, named in `/proc/devices`, `char-*` for all); a default-allow one, or an exception
/// systemd has no words for, becomes `auto` with no entries: systemd then installs no filter
/// and the container's own program (attached after, replacing systemd's) is the only one.
pub fn systemd_policy(
    rules: &[LinuxDeviceCgroup],
    proc_devices: &str,
) -> Result<(&'static str, Vec<(String, String)>)> {
    let p = emulate(rules)?;
    if p.default_allow {
        return Ok(("auto", Vec::new()));
    }
    let driver = |kind: u32, major: i64| -> Option<String> {
        let section = if kind == DEV_BLOCK {
            "Block devices:"
        } else {
            "Character devices:"
        };
        let mut on = false;
        for l in proc_devices.lines() {
            if l.ends_with(':') {
                on = l.trim() == section;
                continue;
            }
            let mut f = l.split_whitespace();
            if on && f.next()?.parse::<i64>().ok()? == major {
                return f.next().map(String::from);
            }
        }
        None
    };
    let mut allow = Vec::new();
    for (k, bits) in &p.exceptions {
        let kind = if k.kind == DEV_BLOCK { "block" } else { "char" };
        let what = match (k.major, k.minor) {
            (WILDCARD, WILDCARD) => format!("{kind}-*"),
            (WILDCARD, _) => return Ok(("auto", Vec::new())),
            (m, WILDCARD) => match driver(k.kind, m) {
                Some(name) => format!("{kind}-{name}"),
                None => return Ok(("auto", Vec::new())),
            },
            (m, n) => format!("/dev/{kind}/{m}:{n}"),
        };
        allow.push((what, access_string(*bits)));
    }
    Ok(("strict", allow))
}

// ---------------------------------------------------------------------------------------------
// Code generation.
// ---------------------------------------------------------------------------------------------

/// Compiles OCI device rules (see the module docs for their meaning) into a cgroup device
/// program: R2 = device type, R3 = requested access, R4 = major, R5 = minor, then one block per
/// exception that returns the opposite of the default when it matches, then the default.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let policy = emulate(rules)?;
    let mut insns = vec![
        // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; } at R1.
        Insn::new(OP_LDXW, R2, R1, 0, 0),
        Insn::new(OP_AND32_K, R2, 0, 0, 0xffff),
        Insn::new(OP_LDXW, R3, R1, 0, 0),
        Insn::new(OP_RSH32_K, R3, 0, 0, 16),
        Insn::new(OP_LDXW, R4, R1, 4, 0),
        Insn::new(OP_LDXW, R5, R1, 8, 0),
    ];
    let verdict = i32::from(!policy.default_allow);
    for (key, &bits) in &policy.exceptions {
        // Indexes of this block's "no match" jumps, pointed at the next block at the end.
        let mut skips = Vec::new();
        skips.push(insns.len());
        insns.push(Insn::new(OP_JNE_K, R2, 0, 0, key.kind as i32));
        if bits != ACC_ALL {
            insns.push(Insn::new(OP_MOV32_X, R1, R3, 0, 0));
            insns.push(Insn::new(OP_AND32_K, R1, 0, 0, bits as i32));
            skips.push(insns.len());
            if policy.default_allow {
                // Deny exception: matches when any requested bit is denied.
                insns.push(Insn::new(OP_JEQ_K, R1, 0, 0, 0));
            } else {
                // Allow exception: matches only when every requested bit is allowed.
                insns.push(Insn::new(OP_JNE_X, R1, R3, 0, 0));
            }
        }
        for (reg, value) in [(R4, key.major), (R5, key.minor)] {
            if value == WILDCARD {
                continue;
            }
            // Registers hold the zero-extended u32; a 64-bit compare with an immediate
            // sign-extends it, so values above i32::MAX go through a zero-extending mov32.
            let value = value as u32;
            if let Ok(imm) = i32::try_from(value) {
                skips.push(insns.len());
                insns.push(Insn::new(OP_JNE_K, reg, 0, 0, imm));
            } else {
                insns.push(Insn::new(OP_MOV32_K, R1, 0, 0, value as i32));
                skips.push(insns.len());
                insns.push(Insn::new(OP_JNE_X, reg, R1, 0, 0));
            }
        }
        insns.push(Insn::new(OP_MOV32_K, R0, 0, 0, verdict));
        insns.push(Insn::new(OP_EXIT, 0, 0, 0, 0));
        let next = insns.len();
        for at in skips {
            insns[at].off = i16::try_from(next - at - 1)
                .context("device program block too long for a jump offset")?;
        }
    }
    insns.push(Insn::new(
        OP_MOV32_K,
        R0,
        0,
        0,
        i32::from(policy.default_allow),
    ));
    insns.push(Insn::new(OP_EXIT, 0, 0, 0, 0));
    Ok(insns)
}

// ---------------------------------------------------------------------------------------------
// bpf(2).
// ---------------------------------------------------------------------------------------------

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

const LICENSE: &[u8] = b"Apache\0";
/// Shown by `bpftool prog`; letters, digits, '_' and '.' only, at most 15 bytes.
const PROG_NAME: &[u8] = b"rrun_devices";
const LOG_SIZE: usize = 1 << 20;

/// The BPF_PROG_LOAD part of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_PROG_ATTACH / BPF_PROG_DETACH part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The BPF_PROG_QUERY part of `union bpf_attr`, up to `prog_cnt`.
#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

/// The BPF_PROG_GET_FD_BY_ID part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Marks the `#[repr(C)]` `bpf_attr` layouts above, the only types [`bpf`] may pass.
trait BpfAttr {}
impl BpfAttr for ProgLoadAttr {}
impl BpfAttr for ProgAttachAttr {}
impl BpfAttr for ProgQueryAttr {}
impl BpfAttr for GetFdByIdAttr {}

/// bpf(2), retried on EINTR/EAGAIN (which BPF_PROG_LOAD may return transiently).
fn bpf<A: BpfAttr>(cmd: libc::c_long, attr: &mut A) -> Result<libc::c_long, Errno> {
    let mut tries = 0;
    loop {
        // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` prefix of `union
        // bpf_attr` for `cmd` (guaranteed by `BpfAttr`), and its size is passed with it; the
        // kernel zero-fills the rest of the union. Any pointers inside it were set by the caller
        // to buffers that outlive this call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut A as *mut c_void,
                std::mem::size_of::<A>(),
            )
        };
        if r >= 0 {
            return Ok(r);
        }
        let e = Errno::last();
        tries += 1;
        if !matches!(e, Errno::EINTR | Errno::EAGAIN) || tries >= 5 {
            return Err(e);
        }
    }
}

fn fd_u32(fd: &impl AsRawFd) -> u32 {
    // File descriptors are never negative.
    fd.as_raw_fd() as u32
}

/// Wraps a file descriptor bpf(2) just returned.
fn owned_fd(r: libc::c_long) -> OwnedFd {
    // SAFETY: `r` is a new file descriptor returned by a successful bpf(2) call that nothing
    // else owns, so the OwnedFd becomes its only owner.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

fn load_once(code: &[u64], log: Option<&mut Vec<u8>>) -> Result<OwnedFd, Errno> {
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    bpf(BPF_PROG_LOAD, &mut attr).map(owned_fd)
}

/// Loads the program; the error carries the verifier log when the kernel rejects it.
fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let code: Vec<u64> = insns
        .iter()
        .map(|i| u64::from_ne_bytes(i.to_bytes()))
        .collect();
    let mut result = load_once(&code, None);
    if matches!(result, Err(Errno::EPERM)) {
        // Kernels before 5.11 charge BPF programs to RLIMIT_MEMLOCK: retry with it raised, then
        // put it back so nothing started later inherits the raised limit.
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: getrlimit with a valid pointer to a local rlimit struct.
        let got = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) } == 0;
        // SAFETY: setrlimit with a valid pointer to a local rlimit struct.
        if got && unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } == 0 {
            result = load_once(&code, None);
            // SAFETY: as above. Lowering the limit back cannot fail for lack of privilege, and
            // a failure would only leave the higher limit in place.
            unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
        }
    }
    match result {
        Ok(fd) => Ok(fd),
        Err(e) if e == Errno::EPERM => {
            bail!("load device program ({} instructions): {e}", code.len())
        }
        Err(e) => {
            let mut log = vec![0u8; LOG_SIZE];
            let detail = match load_once(&code, Some(&mut log)) {
                // Only failed transiently the first time.
                Ok(fd) => return Ok(fd),
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    let text = text.trim();
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!("; verifier log:\n{text}")
                    }
                }
            };
            bail!(
                "load device program ({} instructions): {e}{detail}",
                code.len()
            )
        }
    }
}

/// Ids of the device programs attached directly to the cgroup.
fn attached(dir: &OwnedFd) -> Result<Vec<u32>, Errno> {
    let mut ids = vec![0u32; 64];
    for _ in 0..10 {
        let mut attr = ProgQueryAttr {
            target_fd: fd_u32(dir),
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // prog_cnt now holds the real count; programs may have come meanwhile.
            Err(Errno::ENOSPC) => ids.resize(attr.prog_cnt as usize + 8, 0),
            Err(e) => return Err(e),
        }
    }
    Err(Errno::ENOSPC)
}

fn attach_op(cmd: libc::c_long, dir: &OwnedFd, prog: &OwnedFd, flags: u32) -> Result<(), Errno> {
    let mut attr = ProgAttachAttr {
        target_fd: fd_u32(dir),
        attach_bpf_fd: fd_u32(prog),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        ..Default::default()
    };
    bpf(cmd, &mut attr).map(|_| ())
}

/// Compiles the rules, loads the program and attaches it to the cgroup v2 directory
/// (`BPF_CGROUP_DEVICE`, `BPF_F_ALLOW_MULTI`), then detaches the device programs that were
/// attached to that directory before, so a later call (`update`) replaces the filter. As in
/// runc, old programs this process may not open (EPERM/EACCES, e.g. an LSM policy) are left
/// alone: programs can only narrow access, never widen it.
pub fn apply(cgroup_dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let d = cgroup_dir.display();
    let insns = program(rules)?;
    if crate::rootless::active() {
        // As runc: an unprivileged user cannot load or attach a cgroup device program; a
        // rootless container makes no device nodes anyway (they are bound from the host,
        // whose permissions apply).
        crate::logging::debug(&format!(
            "rootless: linux.resources.devices is not applied to {d} (no device programs \
             without privileges)"
        ));
        return Ok(());
    }
    let dir: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(cgroup_dir)
        .map_err(|e| anyhow::anyhow!("open cgroup directory {d}: {}", io_errno(&e)))?
        .into();
    let old = attached(&dir).map_err(|e| anyhow::anyhow!("query device programs of {d}: {e}"))?;
    let prog = load(&insns).with_context(|| format!("device filter for {d}"))?;
    attach_op(BPF_PROG_ATTACH, &dir, &prog, BPF_F_ALLOW_MULTI)
        .map_err(|e| anyhow::anyhow!("attach device program to {d}: {e}"))?;
    for id in old {
        let mut attr = GetFdByIdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old_prog = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
            Ok(fd) => owned_fd(fd),
            // Gone meanwhile, or not ours to touch.
            Err(Errno::ENOENT | Errno::EPERM | Errno::EACCES) => continue,
            Err(e) => bail!("open old device program {id} of {d}: {e}"),
        };
        match attach_op(BPF_PROG_DETACH, &dir, &old_prog, 0) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => bail!("detach old device program {id} from {d}: {e}"),
        }
    }
    Ok(())
}

fn io_errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: u32 = ACC_READ;
    const W: u32 = ACC_WRITE;
    const M: u32 = ACC_MKNOD;
    const RW: u32 = ACC_READ | ACC_WRITE;
    const C: u32 = 'c' as u32;
    const B: u32 = 'b' as u32;

    /// Runs the program on one request: type 'c' or 'b' (as u32), major, minor, ACC_* bits.
    /// Supports exactly the instructions `program` emits; anything else is a test failure.
    fn eval(prog: &[Insn], dev_type: u32, major: u32, minor: u32, access: u32) -> bool {
        const CTX: u64 = 0x1000;
        let kind = match char::from_u32(dev_type) {
            Some('c') => DEV_CHAR,
            Some('b') => DEV_BLOCK,
            other => panic!("device type must be 'c' or 'b', got {other:?}"),
        };
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        r[1] = CTX;
        let mut pc = 0usize;
        loop {
            let i = prog
                .get(pc)
                .unwrap_or_else(|| panic!("pc {pc} out of program"));
            pc += 1;
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            let jump = |taken: bool, pc: &mut usize| {
                if taken {
                    assert!(i.off >= 0, "backward jump at {}", *pc - 1);
                    *pc += i.off as usize;
                }
            };
            match i.code {
                OP_LDXW => {
                    let at = r[s].wrapping_add(i.off as i64 as u64).wrapping_sub(CTX);
                    assert!(at < 12 && at % 4 == 0, "bad ctx load at {}", pc - 1);
                    r[d] = u64::from(ctx[at as usize / 4]);
                }
                OP_AND32_K => r[d] = u64::from(r[d] as u32 & i.imm as u32),
                OP_RSH32_K => r[d] = u64::from((r[d] as u32) >> i.imm),
                OP_MOV32_K => r[d] = u64::from(i.imm as u32),
                OP_MOV32_X => r[d] = u64::from(r[s] as u32),
                OP_JEQ_K => jump(r[d] == i.imm as i64 as u64, &mut pc),
                OP_JNE_K => jump(r[d] != i.imm as i64 as u64, &mut pc),
                OP_JNE_X => jump(r[d] != r[s], &mut pc),
                OP_EXIT => {
                    return match r[0] {
                        0 => false,
                        1 => true,
                        v => panic!("program returned {v}"),
                    };
                }
                op => panic!("unexpected opcode {op:#x} at {}", pc - 1),
            }
        }
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).expect("valid device rules JSON")
    }

    fn prog(json: &str) -> Vec<Insn> {
        program(&rules(json)).expect("program compiles")
    }

    fn err(json: &str) -> String {
        format!(
            "{:#}",
            program(&rules(json)).expect_err("rules should be rejected")
        )
    }

    /// runc's AllowedDevices, which rrun appends to every container's rules.
    const DEFAULTS: &str = r#"[
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "access": "m"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
    ]"#;

    #[test]
    fn encoding_matches_the_kernel_layout() {
        let p = prog("[]");
        let bytes: Vec<[u8; 8]> = p.iter().map(|i| i.to_bytes()).collect();
        if cfg!(target_endian = "little") {
            // ldxw r2, [r1+0]; and32 r2, 0xffff; ...; ldxw r4, [r1+4]
            assert_eq!(bytes[0], [0x61, 0x12, 0, 0, 0, 0, 0, 0]);
            assert_eq!(bytes[1], [0x54, 0x02, 0, 0, 0xff, 0xff, 0, 0]);
            assert_eq!(bytes[3], [0x74, 0x03, 0, 0, 16, 0, 0, 0]);
            assert_eq!(bytes[4], [0x61, 0x14, 4, 0, 0, 0, 0, 0]);
        }
        // mov32 r0, 0; exit
        assert_eq!(p[6], Insn::new(0xb4, 0, 0, 0, 0));
        assert_eq!(p[7], Insn::new(0x95, 0, 0, 0, 0));
        assert_eq!(p.len(), 8);
    }

    #[test]
    fn same_program_as_runc_for_its_test_cases() {
        let prologue = [
            Insn::new(OP_LDXW, R2, R1, 0, 0),
            Insn::new(OP_AND32_K, R2, 0, 0, 0xffff),
            Insn::new(OP_LDXW, R3, R1, 0, 0),
            Insn::new(OP_RSH32_K, R3, 0, 0, 16),
            Insn::new(OP_LDXW, R4, R1, 4, 0),
            Insn::new(OP_LDXW, R5, R1, 8, 0),
        ];
        let ret = |v| {
            [
                Insn::new(OP_MOV32_K, R0, 0, 0, v),
                Insn::new(OP_EXIT, 0, 0, 0, 0),
            ]
        };
        // runc TestDeviceFilter_Privileged.
        let p = prog(r#"[{"allow": true, "type": "a", "access": "rwm"}]"#);
        assert_eq!(p, [&prologue[..], &ret(1)].concat());
        // runc TestDeviceFilter_Weird: 8:1 ends up allowed, only 8:2 denied.
        let p = prog(
            r#"[{"allow": false, "type": "b", "major": 8, "minor": 1, "access": "rwm"},
                {"allow": true, "type": "a", "access": "rwm"},
                {"allow": false, "type": "b", "major": 8, "minor": 2, "access": "rwm"}]"#,
        );
        let block = [
            Insn::new(OP_JNE_K, R2, 0, 4, 1),
            Insn::new(OP_JNE_K, R4, 0, 3, 8),
            Insn::new(OP_JNE_K, R5, 0, 2, 2),
        ];
        assert_eq!(p, [&prologue[..], &block, &ret(0), &ret(1)].concat());
        // runc TestDeviceFilter_BuiltInAllowList: 64 instructions, blocks in runc's order.
        let p = prog(DEFAULTS);
        assert_eq!(p.len(), 64);
        let block_starts = [6, 12, 18, 23, 28, 33, 38, 43, 48, 53, 58, 62];
        let firsts: Vec<i32> = block_starts[..11].iter().map(|&i| p[i].imm).collect();
        assert_eq!(firsts, [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
        let majors: Vec<i32> = [19, 24, 29, 34, 39, 44, 49, 54, 59]
            .map(|i| p[i].imm)
            .to_vec();
        assert_eq!(majors, [1, 1, 1, 1, 1, 5, 5, 10, 136]);
        let minors: Vec<i32> = [20, 25, 30, 35, 40, 45, 50, 55].map(|i| p[i].imm).to_vec();
        assert_eq!(minors, [3, 5, 7, 8, 9, 0, 2, 200]);
        assert_eq!(&p[62..], &ret(0));
    }

    #[test]
    fn no_rules_deny_everything() {
        for p in [prog("[]"), prog(r#"[{"allow": false}]"#)] {
            for (t, maj, min) in [(C, 1, 3), (B, 8, 0), (C, 0, 0)] {
                for acc in [R, W, M, RW, ACC_ALL] {
                    assert!(!eval(&p, t, maj, min, acc));
                }
            }
        }
    }

    #[test]
    fn allow_list() {
        let p = prog(DEFAULTS);
        for (maj, min) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (10, 200),
        ] {
            assert!(eval(&p, C, maj, min, RW), "{maj}:{min}");
            assert!(eval(&p, C, maj, min, ACC_ALL), "{maj}:{min}");
        }
        assert!(eval(&p, C, 136, 0, RW));
        assert!(eval(&p, C, 136, 12345, RW));
        // Anything else: mknod only.
        assert!(eval(&p, C, 4, 1, M));
        assert!(eval(&p, B, 8, 0, M));
        assert!(!eval(&p, C, 4, 1, R));
        assert!(!eval(&p, B, 8, 0, RW));
        assert!(!eval(&p, C, 1, 4, W));
        assert!(!eval(&p, C, 5, 1, RW));
    }

    #[test]
    fn last_matching_rule_wins() {
        // Allowed, then denied again.
        let p = prog(
            r#"[{"allow": true, "type": "c", "major": 1, "minor": 3},
                {"allow": false, "type": "c", "major": 1, "minor": 3}]"#,
        );
        assert!(!eval(&p, C, 1, 3, R));
        // Denied, then allowed.
        let p = prog(
            r#"[{"allow": false, "type": "c", "major": 1, "minor": 3},
                {"allow": true, "type": "c", "major": 1, "minor": 3}]"#,
        );
        assert!(eval(&p, C, 1, 3, RW));
        // Allow-all, then one device denied.
        let p = prog(
            r#"[{"allow": true, "access": "rwm"},
                {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "rwm"}]"#,
        );
        assert!(!eval(&p, B, 8, 0, R));
        assert!(eval(&p, B, 8, 1, R));
        assert!(eval(&p, C, 8, 0, RW));
        // A later "a" rule wipes out everything before it.
        let p = prog(
            r#"[{"allow": true, "type": "c", "major": 1, "minor": 3},
                {"allow": false, "type": "a"}]"#,
        );
        assert!(!eval(&p, C, 1, 3, R));
        let p = prog(
            r#"[{"allow": false, "type": "b", "major": 8, "minor": 1},
                {"allow": true, "type": "a"},
                {"allow": false, "type": "b", "major": 8, "minor": 2}]"#,
        );
        assert!(eval(&p, B, 8, 1, RW));
        assert!(!eval(&p, B, 8, 2, R));
        // Access given back piece by piece.
        let p = prog(
            r#"[{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "w"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "m"}]"#,
        );
        assert!(eval(&p, C, 1, 3, RW));
        assert!(!eval(&p, C, 1, 3, M));
    }

    #[test]
    fn cgroup_v1_quirks_are_kept() {
        // A narrower rule cannot punch a hole into a wider exception: rejected like runc.
        let e = err(
            r#"[{"allow": true, "type": "c", "major": 1, "access": "rw"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
        );
        assert!(e.contains("linux.resources.devices[1]"), "{e}");
        assert!(e.contains("\"c 1:* rw\""), "{e}");
        // No overlap in access: fine.
        let p = prog(
            r#"[{"allow": true, "type": "c", "major": 1, "access": "r"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
        );
        assert!(eval(&p, C, 1, 3, R));
        // A wider rule with the default's action only removes the identical exception, as
        // the v1 controller (and runc) do: 1:3 stays allowed.
        let p = prog(
            r#"[{"allow": true, "type": "c", "major": 1, "minor": 3},
                {"allow": false, "type": "c"}]"#,
        );
        assert!(eval(&p, C, 1, 3, RW));
        assert!(!eval(&p, C, 1, 4, R));
    }

    #[test]
    fn wildcard_major_and_minor() {
        let p = prog(
            r#"[{"allow": true, "type": "c", "major": 4, "access": "rw"},
                {"allow": true, "type": "c", "minor": 7, "access": "rw"},
                {"allow": true, "type": "b", "major": -1, "minor": -1, "access": "r"}]"#,
        );
        assert!(eval(&p, C, 4, 0, RW));
        assert!(eval(&p, C, 4, 99, R));
        assert!(eval(&p, C, 9, 7, W));
        assert!(!eval(&p, C, 9, 8, R));
        assert!(eval(&p, B, 8, 0, R));
        assert!(eval(&p, B, 259, 3, R));
        assert!(!eval(&p, B, 8, 0, W));
    }

    #[test]
    fn type_a_and_absent_type() {
        let all = prog(r#"[{"allow": true, "type": "a", "access": "rwm"}]"#);
        let untyped = prog(r#"[{"allow": true}]"#);
        for p in [&all, &untyped] {
            assert!(eval(p, C, 1, 5, RW));
            assert!(eval(p, B, 8, 0, ACC_ALL));
        }
        // Like runc, an "a" rule is always a full reset: its access is not looked at.
        let p = prog(r#"[{"allow": true, "type": "a", "access": "r"}]"#);
        assert!(eval(&p, B, 8, 0, W));
    }

    #[test]
    fn access_subsets() {
        let p = prog(
            r#"[{"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"},
                {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rw"},
                {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "m"},
                {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "r"},
                {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "w"}]"#,
        );
        assert!(eval(&p, C, 1, 5, R));
        assert!(!eval(&p, C, 1, 5, W));
        assert!(!eval(&p, C, 1, 5, RW));
        assert!(!eval(&p, C, 1, 5, M));
        assert!(eval(&p, C, 1, 7, RW));
        assert!(!eval(&p, C, 1, 7, M));
        assert!(eval(&p, C, 1, 8, M));
        assert!(!eval(&p, C, 1, 8, R));
        // Merged access of two rules for the same device.
        assert!(eval(&p, C, 1, 9, RW));
        // Deny exceptions catch any overlap: denying w denies O_RDWR, not O_RDONLY.
        let p = prog(
            r#"[{"allow": true, "type": "a"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
        );
        assert!(eval(&p, C, 1, 3, R));
        assert!(!eval(&p, C, 1, 3, W));
        assert!(!eval(&p, C, 1, 3, RW));
        assert!(eval(&p, C, 1, 3, M));
    }

    #[test]
    fn block_and_char_are_distinct() {
        let p = prog(r#"[{"allow": true, "type": "b", "major": 8, "minor": 0}]"#);
        assert!(eval(&p, B, 8, 0, RW));
        assert!(!eval(&p, C, 8, 0, R));
        let p = prog(r#"[{"allow": true, "type": "c", "major": 8, "minor": 0}]"#);
        assert!(eval(&p, C, 8, 0, RW));
        assert!(!eval(&p, B, 8, 0, R));
    }

    #[test]
    fn numbers_above_i32_max_compare_unsigned() {
        let p = prog(r#"[{"allow": true, "type": "c", "major": 4294967295, "minor": 2147483648}]"#);
        assert!(eval(&p, C, u32::MAX, 1 << 31, RW));
        assert!(!eval(&p, C, u32::MAX, 0, RW));
        assert!(!eval(&p, C, 0x7fff_ffff, 1 << 31, RW));
    }

    #[test]
    fn bad_rules_are_rejected() {
        let e = err(r#"[{"allow": true, "type": "p"}]"#);
        assert!(e.contains("devices[0].type") && e.contains("\"p\""), "{e}");
        let e = err(r#"[{"allow": true, "type": "u"}]"#);
        assert!(e.contains("devices[0].type"), "{e}");
        let e = err(r#"[{"allow": true, "type": "c", "major": -2}]"#);
        assert!(e.contains("devices[0].major"), "{e}");
        let e = err(r#"[{"allow": true, "type": "c", "minor": 4294967296}]"#);
        assert!(e.contains("devices[0].minor"), "{e}");
        let e = err(r#"[{"allow": true}, {"allow": true, "type": "c", "access": "rx"}]"#);
        assert!(e.contains("devices[1].access"), "{e}");
        let e = err(r#"[{"allow": true, "type": "c", "access": ""}]"#);
        assert!(e.contains("must not be empty"), "{e}");
    }

    // -----------------------------------------------------------------------------------------
    // Real kernel (root, cgroup2 at /sys/fs/cgroup/unified).
    // -----------------------------------------------------------------------------------------

    const UNIFIED: &str = "/sys/fs/cgroup/unified";

    /// Removes the test cgroup (created by the test itself) on every exit path.
    struct TestCgroup(std::path::PathBuf);

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            for _ in 0..100 {
                match std::fs::remove_dir(&self.0) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => return,
                }
            }
        }
    }

    #[derive(Debug, PartialEq)]
    enum Open {
        Ok,
        Eperm,
        Other,
    }

    /// Forks a child that moves itself into `procs` (a cgroup.procs file), opens each
    /// (path, flags) and reports how that went. The child only makes raw syscalls.
    fn probe(procs: &std::ffi::CStr, opens: &[(&std::ffi::CStr, libc::c_int)]) -> Vec<Open> {
        assert!(opens.len() <= 3);
        // SAFETY: fork() in a (possibly multi-threaded) test process; the child calls only
        // async-signal-safe functions (open, write, close, _exit) on memory prepared before
        // the fork, then exits without returning.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", Errno::last());
        if pid == 0 {
            // SAFETY: raw syscalls on valid NUL-terminated paths and a local buffer; the
            // child never returns from this block.
            unsafe {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(255);
                }
                libc::close(fd);
                let mut code = 0;
                for (n, (path, flags)) in opens.iter().enumerate() {
                    let fd = libc::open(path.as_ptr(), flags | libc::O_CLOEXEC);
                    let result = if fd >= 0 {
                        libc::close(fd);
                        0
                    } else if *libc::__errno_location() == libc::EPERM {
                        1
                    } else {
                        2
                    };
                    code |= result << (2 * n);
                }
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above, with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", Errno::last());
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        let code = libc::WEXITSTATUS(status);
        assert_ne!(code, 255, "child could not join {procs:?}");
        (0..opens.len())
            .map(|n| match (code >> (2 * n)) & 3 {
                0 => Open::Ok,
                1 => Open::Eperm,
                _ => Open::Other,
            })
            .collect()
    }

    fn attached_to(dir: &Path) -> Vec<u32> {
        let fd: OwnedFd = std::fs::File::open(dir).expect("open test cgroup").into();
        attached(&fd).expect("query attached programs")
    }

    #[test]
    fn real_kernel_attach_update_and_deny() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping real_kernel_attach_update_and_deny: not root");
            return;
        }
        let is_cgroup2 = nix::sys::statfs::statfs(UNIFIED)
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false);
        if !is_cgroup2 {
            eprintln!("skipping real_kernel_attach_update_and_deny: {UNIFIED} is not cgroup2");
            return;
        }
        let devices_v1 = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        if let Some(line) = devices_v1.lines().find(|l| l.contains(":devices:")) {
            eprintln!("note: this process is in v1 devices cgroup {line:?}");
        }
        let dir = Path::new(UNIFIED).join(format!("rrun-ebpf-test-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("create test cgroup");
        let cg = TestCgroup(dir);
        let procs = std::ffi::CString::new(
            cg.0.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("path without NUL");
        let opens: [(&std::ffi::CStr, libc::c_int); 3] = [
            (c"/dev/null", libc::O_RDWR),
            (c"/dev/zero", libc::O_RDONLY),
            (c"/dev/full", libc::O_WRONLY),
        ];

        // Baseline: nothing attached, so the v1 devices controller lets everything through.
        assert!(attached_to(&cg.0).is_empty());
        assert_eq!(probe(&procs, &opens), [Open::Ok, Open::Ok, Open::Ok]);

        // Allow list without /dev/zero; /dev/full read-only; numbers above i32::MAX.
        let first = rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "access": "m"},
                {"allow": true, "type": "b", "access": "m"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "r"},
                {"allow": true, "type": "c", "major": 136, "access": "rwm"},
                {"allow": true, "type": "c", "major": 4294967295, "minor": 4294967295}]"#,
        );
        apply(&cg.0, &first).expect("apply allow list");
        assert_eq!(attached_to(&cg.0).len(), 1);
        assert_eq!(probe(&procs, &opens), [Open::Ok, Open::Eperm, Open::Eperm]);
        assert_eq!(probe(&procs, &[(c"/dev/full", libc::O_RDONLY)]), [Open::Ok]);

        // Update: allow everything except writing /dev/null; the old program must be gone.
        let second = rules(
            r#"[{"allow": true, "type": "a"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
        );
        apply(&cg.0, &second).expect("apply deny list");
        assert_eq!(attached_to(&cg.0).len(), 1);
        assert_eq!(probe(&procs, &opens), [Open::Eperm, Open::Ok, Open::Ok]);
        assert_eq!(probe(&procs, &[(c"/dev/null", libc::O_RDONLY)]), [Open::Ok]);

        // Errors name the directory and the errno.
        let missing = cg.0.join("missing");
        let e = format!(
            "{:#}",
            apply(&missing, &second).expect_err("no such cgroup")
        );
        assert!(
            e.contains(&missing.display().to_string()) && e.contains("ENOENT"),
            "{e}"
        );
    }
}
