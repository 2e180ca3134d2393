//! Seccomp: the OCI `linux.seccomp` section compiled to a classic BPF program (in the parent,
//! before clone: [`compile`] is pure) and installed with seccomp(2) in the child
//! ([`Filter::install`], which does not allocate).
//!
//! The program, in order:
//! 1. Checks `seccomp_data.arch`. x86_64 is always handled (libseccomp always adds the native
//!    arch); i386 (`SCMP_ARCH_X86`) and x32 (`SCMP_ARCH_X32`) only when `architectures` lists
//!    them. Any other arch, and x32 syscall numbers (`nr >= 0x40000000` under
//!    `AUDIT_ARCH_X86_64`) when x32 is not listed, get `SECCOMP_RET_KILL_PROCESS`, so no other
//!    ABI can get around the rules. Foreign arches in the list (ARM, s390x, ...) can never be
//!    reported by an x86_64 kernel, so they are accepted and ignored (see [`Filter::warnings`]).
//! 2. Finds the syscall number by binary search over ranges of numbers that share a verdict.
//! 3. For a syscall with argument rules, tries its rules from the most restrictive action to the
//!    least (the kernel's order: KILL_PROCESS, KILL_THREAD, TRAP, ERRNO, USER_NOTIF, TRACE, LOG,
//!    ALLOW) and returns the first whose conditions all hold; if none holds, the default action.
//!    So when several rules match one call the most restrictive wins, as it would across
//!    stacked filters, whatever their order in the profile.
//!
//! As runc does:
//! * syscall names the arch does not know are skipped;
//! * the conditions of a rule are ANDed, except that when two of them test the same argument
//!   runc (bound by libseccomp) adds each condition as a rule of its own, i.e. ORs them: so do we;
//!   several rules for the same syscall are ORed;
//! * `errnoRet` defaults to EPERM for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE`;
//! * when the default action is not ALLOW, LOG or TRACE, syscall numbers above the highest one the
//!   profile names for an arch listed in `architectures` get ENOSYS instead of the default
//!   action, so that libc can fall back from syscalls newer than the profile (clone3 → clone);
//! * `SCMP_ACT_NOTIFY` cannot be the default action nor apply to `write` (init must still be able
//!   to report the listener fd), and needs `listenerPath`; the listener fd goes to
//!   `listenerPath` with the container state ([`send_listener`], [`process_state_json`]);
//! * 32-bit ABIs (i386, x32) compare only the low 32 bits of arguments, as libseccomp does (and
//!   a rule value wider than that is refused when one of them is listed, as libseccomp does), and
//!   `SCMP_CMP_MASKED_EQ` ignores the bits of `valueTwo` outside the mask, as libseccomp does;
//! * on i386, unconditional rules for socket and SysV IPC syscalls also cover their socketcall(2)
//!   and ipc(2) forms (the call number in the first argument; libseccomp also copies argument
//!   conditions onto the multiplexer's raw arguments, which are pointers: not done here).
//!
//! Unlike libseccomp, where the first unconditional rule for a syscall silently beats any later
//! rule for it, the most restrictive matching rule wins. In containers-common's profile this
//! matters for `setns` alone, which is both in the allow list and denied (EPERM) without
//! CAP_SYS_ADMIN: runc allows it, rrun denies it (without CAP_SYS_ADMIN the kernel refuses
//! almost every setns anyway). Checked against libseccomp 2.5.4 with that profile: otherwise the
//! same verdict for every arch, syscall number below 560 and argument sample tried.
//!
//! `make test-seccomp` keeps that proof (tests/seccomp/oracle.py): containers-common's profile
//! and random ones, rrun's program (`rrun debug seccomp --raw`) and libseccomp's in a BPF
//! interpreter, every difference one of the deviations it lists by name.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};

/// What a syscall from an architecture (or ABI) the filter does not handle gets.
const RET_BAD_ARCH: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

mod asm;
pub mod dump;
mod tables;

use asm::*;
use tables::*;

/// A compiled seccomp filter, ready to install.
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<Insn>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2).
    flags: libc::c_ulong,
    notify: bool,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    warnings: Vec<String>,
}

/// Compile the OCI `linux.seccomp` section. Pure: no syscalls, no files.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    if !cfg!(target_arch = "x86_64") {
        bail!("linux.seccomp: seccomp filters are only supported on x86_64 hosts");
    }
    let mut warnings = Vec::new();

    let default_action = s.default_action();
    if default_action == Action::ScmpActNotify {
        bail!("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as the default action");
    }
    let default = action_value(
        default_action,
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    if s.default_errno_ret().is_some() && !takes_errno(default_action) {
        warnings.push(format!(
            "linux.seccomp.defaultErrnoRet: ignored for {default_action}"
        ));
    }

    let mut listed_x86_64 = false;
    let mut listed_i386 = false;
    let mut listed_x32 = false;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        match a {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => listed_x86_64 = true,
            Arch::ScmpArchX86 => listed_i386 = true,
            Arch::ScmpArchX32 => listed_x32 = true,
            other => warnings.push(format!(
                "linux.seccomp.architectures[{i}]: {other} cannot run on an x86_64 kernel; ignored"
            )),
        }
    }

    let listener_path = s
        .listener_path()
        .clone()
        .filter(|p| !p.as_os_str().is_empty());
    let mut notify = false;
    let mut entries = Vec::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let path = format!("linux.seccomp.syscalls[{i}]");
        let action = sc.action();
        let value = action_value(action, sc.errno_ret(), &format!("{path}.errnoRet"))?;
        if sc.errno_ret().is_some() && !takes_errno(action) {
            warnings.push(format!("{path}.errnoRet: ignored for {action}"));
        }
        for (k, name) in sc.names().iter().enumerate() {
            if name.is_empty() {
                bail!("{path}.names[{k}]: empty syscall name");
            }
            if action == Action::ScmpActNotify && name == "write" {
                bail!("{path}.names[{k}]: SCMP_ACT_NOTIFY cannot be used for the write syscall");
            }
        }
        if action == Action::ScmpActNotify {
            if listener_path.is_none() {
                bail!("linux.seccomp.listenerPath: not set, but {path} uses SCMP_ACT_NOTIFY");
            }
            notify = true;
        }
        let mut conds = Vec::new();
        for (j, a) in sc.args().iter().flatten().enumerate() {
            let index = u8::try_from(a.index())
                .ok()
                .filter(|i| *i < 6)
                .ok_or_else(|| {
                    anyhow!(
                        "{path}.args[{j}].index: {} is out of range (syscalls have arguments 0 to 5)",
                        a.index()
                    )
                })?;
            let mut value_two = a.value_two().unwrap_or(0);
            if a.op() == Op::ScmpCmpMaskedEq {
                // As libseccomp: bits of valueTwo outside the mask value are ignored.
                value_two &= a.value();
            }
            // The 32-bit ABIs compare the low 32 bits of an argument: a wider value would be
            // cut silently (libseccomp refuses the rule).
            if listed_i386 || listed_x32 {
                let abi = if listed_i386 {
                    "SCMP_ARCH_X86"
                } else {
                    "SCMP_ARCH_X32"
                };
                let two = if a.op() == Op::ScmpCmpMaskedEq {
                    value_two
                } else {
                    0
                };
                for (field, v) in [("value", a.value()), ("valueTwo", two)] {
                    if v > u32::MAX as u64 {
                        bail!(
                            "{path}.args[{j}].{field}: {v:#x} does not fit the 32-bit arguments of {abi} (listed in linux.seccomp.architectures)"
                        );
                    }
                }
            }
            conds.push(Cond {
                index,
                op: a.op(),
                value: a.value(),
                value_two,
            });
        }
        let shared_index = conds
            .iter()
            .enumerate()
            .any(|(k, c)| conds[..k].iter().any(|d| d.index == c.index));
        let variants = if shared_index {
            conds.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![conds]
        };
        entries.push(Entry {
            index: i,
            names: sc.names(),
            action: value,
            variants,
        });
    }

    // runc's -ENOSYS stub, for the arches `architectures` names explicitly.
    let stub = !matches!(
        default_action,
        Action::ScmpActAllow | Action::ScmpActLog | Action::ScmpActTrace
    ) && default != RET_ENOSYS;

    let mut a = Asm::default();
    a.ld(OFF_ARCH);
    let x86_64 = a.label();
    a.jump_if(JMP_JEQ_K, AUDIT_ARCH_X86_64, x86_64);
    let i386 = listed_i386.then(|| {
        let l = a.label();
        a.jump_if(JMP_JEQ_K, AUDIT_ARCH_I386, l);
        l
    });
    a.ret(RET_BAD_ARCH);

    a.bind(x86_64);
    a.ld(OFF_NR);
    let x32 = a.label();
    a.jump_if(JMP_JGE_K, X32_SYSCALL_BIT, x32);
    let abi = AbiRules::new(Abi::X86_64, &entries, default, stub && listed_x86_64);
    for (i, k, name) in &abi.unknown {
        warnings.push(format!(
            "linux.seccomp.syscalls[{i}].names[{k}]: unknown syscall {name:?} on x86_64; skipped"
        ));
    }
    emit_tree(&mut a, &abi.intervals(), false);
    a.bind(x32);
    if listed_x32 {
        let abi = AbiRules::new(Abi::X32, &entries, default, stub);
        emit_tree(&mut a, &abi.intervals(), true);
    } else {
        // syscall(-1) is no x32 call: it gets what any unknown number gets.
        let bad = a.label();
        a.jump_unless(JMP_JEQ_K, u32::MAX, bad);
        a.ret(abi.fallback(u32::MAX));
        a.bind(bad);
        a.ret(RET_BAD_ARCH);
    }
    if let Some(l) = i386 {
        a.bind(l);
        a.ld(OFF_NR);
        let abi = AbiRules::new(Abi::I386, &entries, default, stub);
        emit_tree(&mut a, &abi.intervals(), true);
    }
    let program = a.assemble()?;
    if program.len() > MAX_INSNS {
        bail!(
            "linux.seccomp: the filter needs {} BPF instructions, more than the kernel's limit of {MAX_INSNS}",
            program.len()
        );
    }

    let mut flags: libc::c_ulong = 0;
    for (i, f) in s.flags().iter().flatten().enumerate() {
        flags |= match f {
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Only meaningful (and only accepted by the kernel) with a listener.
            Flag::SeccompFilterFlagWaitKillableRecv if notify => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            Flag::SeccompFilterFlagWaitKillableRecv => {
                warnings.push(format!(
                    "linux.seccomp.flags[{i}]: {f} ignored: no rule uses SCMP_ACT_NOTIFY"
                ));
                0
            }
        };
    }
    if notify {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            // The kernel refuses TSYNC with NEW_LISTENER unless failures are reported as ESRCH.
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }

    Ok(Filter {
        program,
        flags,
        notify,
        listener_path: if notify { listener_path } else { None },
        listener_metadata: s.listener_metadata().clone(),
        warnings,
    })
}

impl Filter {
    /// Install the filter on the calling thread (all threads with `SECCOMP_FILTER_FLAG_TSYNC`).
    /// Needs `no_new_privs` or `CAP_SYS_ADMIN`; every syscall made after this, up to and including
    /// execve, goes through the filter. Allocates nothing, unless it fails. Returns the notify
    /// listener fd when a rule uses `SCMP_ACT_NOTIFY`.
    pub fn install(&self) -> Result<Option<OwnedFd>> {
        self.install_raw().map_err(|e| {
            let hint = match e {
                Errno::EACCES => " (needs no_new_privs or CAP_SYS_ADMIN)",
                Errno::EINVAL if self.flags != 0 => {
                    " (the kernel may not support one of the requested seccomp flags)"
                }
                Errno::ESRCH => " (another thread could not be synchronized)",
                _ => "",
            };
            anyhow!(
                "install seccomp filter (flags {:#x}): {}{hint}",
                self.flags,
                e.desc()
            )
        })
    }

    fn install_raw(&self) -> std::result::Result<Option<OwnedFd>, Errno> {
        let prog = libc::sock_fprog {
            // compile() keeps programs within BPF_MAXINSNS.
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
        };
        let prog_ptr: *const libc::sock_fprog = &prog;
        // SAFETY: `prog` describes `self.program`, which lives across the call and has the layout
        // of `struct sock_filter` (asserted above); the kernel only reads and copies it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                prog_ptr,
            )
        };
        if r < 0 {
            let e = Errno::last();
            if e == Errno::ENOSYS && self.flags == 0 {
                // SAFETY: as above; prctl(2) takes the same program.
                let r = unsafe {
                    libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                        prog_ptr,
                    )
                };
                return if r == 0 { Ok(None) } else { Err(Errno::last()) };
            }
            return Err(e);
        }
        if self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }));
        }
        if r > 0 {
            // TSYNC without TSYNC_ESRCH: r is the id of a thread that could not be synchronized.
            return Err(Errno::ESRCH);
        }
        Ok(None)
    }

    /// Whether a rule uses `SCMP_ACT_NOTIFY`, so that [`Filter::install`] returns a listener fd.
    pub fn needs_notify(&self) -> bool {
        self.notify
    }

    /// Where the listener fd goes (`linux.seccomp.listenerPath`), when [`Filter::needs_notify`].
    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// `linux.seccomp.listenerMetadata`, for [`process_state_json`].
    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    /// What compile() accepted but ignored: unknown syscall names, foreign arches, errnoRet on
    /// actions without one. runc logs these at debug level.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The `ContainerProcessState` that goes with the listener fd: `state` is the OCI state (runc
/// sends it with status "creating"), `pid` the container process as the runtime sees it.
pub fn process_state_json(pid: i32, metadata: Option<&str>, state: &serde_json::Value) -> Vec<u8> {
    let version = state
        .get("ociVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("1.2.0");
    let mut v = serde_json::json!({
        "ociVersion": version,
        "fds": [oci_spec::runtime::SECCOMP_FD_NAME],
        "pid": pid,
    });
    if let Some(m) = metadata {
        v["metadata"] = m.into();
    }
    v["state"] = state.clone();
    v.to_string().into_bytes()
}

/// Send the listener fd and the state JSON (see [`process_state_json`]) to the seccomp agent
/// listening on the unix socket at `path`: one message, the fd as SCM_RIGHTS, as runc does.
pub fn send_listener(path: &Path, fd: BorrowedFd, state_json: &[u8]) -> Result<()> {
    use nix::sys::socket::{
        AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, send,
        sendmsg, socket,
    };
    if state_json.is_empty() {
        bail!("seccomp listener: empty state");
    }
    let ctx = || format!("seccomp listener {}", path.display());
    let addr = UnixAddr::new(path).with_context(ctx)?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .with_context(ctx)?;
    loop {
        match connect(sock.as_raw_fd(), &addr) {
            Err(Errno::EINTR) => continue,
            r => break r.with_context(|| format!("connect to {}", ctx()))?,
        }
    }
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(state_json)];
    let mut sent = loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            r => break r.with_context(|| format!("send to {}", ctx()))?,
        }
    };
    // A stream socket may take the JSON in pieces; the fd went with the first one.
    while sent < state_json.len() {
        match send(
            sock.as_raw_fd(),
            &state_json[sent..],
            MsgFlags::MSG_NOSIGNAL,
        ) {
            Err(Errno::EINTR) => continue,
            r => sent += r.with_context(|| format!("send to {}", ctx()))?,
        }
    }
    Ok(())
}

/// Turn a containers/common seccomp profile (podman's `/usr/share/containers/seccomp.json`,
/// Docker's `default.json`) into an OCI `linux.seccomp` object for a container with the
/// capabilities `caps` (its bounding set, with or without the `CAP_` prefix) on x86_64:
/// `archMap` becomes `architectures`, and rules whose `includes`/`excludes` (caps, arches,
/// minKernel) do not fit are dropped, as the engines do when they generate config.json.
/// (The runtime itself reads config.json, which engines have already resolved: this is for tests
/// and tools.)
#[cfg_attr(not(test), allow(dead_code))]
pub fn from_containers_profile(
    json: &serde_json::Value,
    caps: &[String],
) -> Result<serde_json::Value> {
    use serde_json::{Map, Value};
    let p = json
        .as_object()
        .context("seccomp profile: not a JSON object")?;
    let mut out = Map::new();
    let default = p
        .get("defaultAction")
        .context("seccomp profile: defaultAction is missing")?;
    out.insert("defaultAction".into(), default.clone());
    for key in [
        "defaultErrnoRet",
        "flags",
        "listenerPath",
        "listenerMetadata",
    ] {
        if let Some(v) = p.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }

    let mut arches = Vec::new();
    if let Some(map) = p.get("archMap").and_then(Value::as_array) {
        for m in map {
            if m.get("architecture").and_then(Value::as_str) == Some("SCMP_ARCH_X86_64") {
                arches.push(Value::from("SCMP_ARCH_X86_64"));
                let subs = m.get("subArchitectures").and_then(Value::as_array);
                arches.extend(subs.into_iter().flatten().cloned());
            }
        }
    } else if let Some(list) = p.get("architectures").and_then(Value::as_array) {
        arches.clone_from(list);
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), Value::Array(arches));
    }

    let have_cap = |c: &str| caps.iter().any(|h| cap_name(h) == cap_name(c));
    let mut kernel = None;
    let mut syscalls = Vec::new();
    for (i, s) in p
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("seccomp profile: syscalls[{i}]");
        let mut names = s
            .get("names")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(n) = s.get("name").and_then(Value::as_str) {
            names.push(n.into());
        }
        names.retain(|n| n.as_str().is_some_and(|n| !n.is_empty()));
        if names.is_empty() {
            continue;
        }
        let inc = s.get("includes").filter(|v| !v.is_null());
        let exc = s.get("excludes").filter(|v| !v.is_null());
        let list = |f: Option<&Value>, key: &str| -> Vec<String> {
            f.and_then(|f| f.get(key))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let is_host_arch = |a: &String| a == "amd64" || a == "x86_64";
        let inc_arches = list(inc, "arches");
        if !inc_arches.is_empty() && !inc_arches.iter().any(is_host_arch) {
            continue;
        }
        if list(exc, "arches").iter().any(is_host_arch) {
            continue;
        }
        if !list(inc, "caps").iter().all(|c| have_cap(c)) {
            continue;
        }
        if list(exc, "caps").iter().any(|c| have_cap(c)) {
            continue;
        }
        if exc
            .and_then(|e| e.get("minKernel"))
            .is_some_and(|v| !v.is_null())
        {
            bail!("{path}.excludes.minKernel: not supported");
        }
        if let Some(min) = inc
            .and_then(|f| f.get("minKernel"))
            .filter(|v| !v.is_null())
        {
            let min = min
                .as_str()
                .and_then(parse_kernel_version)
                .ok_or_else(|| anyhow!("{path}.includes.minKernel: invalid version {min}"))?;
            if kernel.is_none() {
                kernel = Some(running_kernel()?);
            }
            if kernel < Some(min) {
                continue;
            }
        }
        let mut rule = Map::new();
        rule.insert("names".into(), Value::Array(names));
        let action = s
            .get("action")
            .with_context(|| format!("{path}.action is missing"))?;
        rule.insert("action".into(), action.clone());
        if let Some(e) = s.get("errnoRet").filter(|v| !v.is_null()) {
            rule.insert("errnoRet".into(), e.clone());
        }
        let args = s.get("args").and_then(Value::as_array);
        if let Some(args) = args.filter(|a| !a.is_empty()) {
            let args = args
                .iter()
                .map(|a| {
                    let mut m = Map::new();
                    for k in ["index", "value", "valueTwo", "op"] {
                        if let Some(v) = a.get(k) {
                            m.insert(k.into(), v.clone());
                        }
                    }
                    Value::Object(m)
                })
                .collect();
            rule.insert("args".into(), Value::Array(args));
        }
        syscalls.push(Value::Object(rule));
    }
    out.insert("syscalls".into(), Value::Array(syscalls));
    Ok(Value::Object(out))
}

fn cap_name(c: &str) -> String {
    let c = c.trim().to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// "5.8" or "5.8.0-rc1" → (5, 8).
fn parse_kernel_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(['.', '-', '+']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

fn running_kernel() -> Result<(u32, u32)> {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("read /proc/sys/kernel/osrelease")?;
    parse_kernel_version(r.trim()).with_context(|| format!("unknown kernel version {r:?}"))
}

// ------------------------------------------------------------------------------------------
// Rules

/// The seccomp return value of an action; `errno_ret` is the data for ERRNO and TRACE.
fn action_value(action: Action, errno_ret: Option<u32>, path: &str) -> Result<u32> {
    let data = || -> Result<u32> {
        let v = errno_ret.unwrap_or(libc::EPERM as u32);
        if v > libc::SECCOMP_RET_DATA {
            bail!("{path}: {v} does not fit in the 16 bits of seccomp return data");
        }
        Ok(v)
    };
    Ok(match action {
        Action::ScmpActKill | Action::ScmpActKillThread => libc::SECCOMP_RET_KILL_THREAD,
        Action::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        Action::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        Action::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data()?,
        Action::ScmpActTrace => libc::SECCOMP_RET_TRACE | data()?,
        Action::ScmpActLog => libc::SECCOMP_RET_LOG,
        Action::ScmpActNotify => libc::SECCOMP_RET_USER_NOTIF,
        Action::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
    })
}

fn takes_errno(a: Action) -> bool {
    matches!(a, Action::ScmpActErrno | Action::ScmpActTrace)
}

/// The kernel's precedence: the smaller (as a signed number), the more restrictive.
fn severity(ret: u32) -> i32 {
    (ret & libc::SECCOMP_RET_ACTION_FULL) as i32
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cond {
    index: u8,
    op: Op,
    value: u64,
    value_two: u64,
}

/// One entry of `linux.seccomp.syscalls`, resolved.
struct Entry<'a> {
    index: usize,
    names: &'a [String],
    action: u32,
    /// Alternative condition lists (ORed), each ANDed.
    variants: Vec<Vec<Cond>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    action: u32,
    conds: Vec<Cond>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Ret(u32),
    /// Try the rules in order (most restrictive first); the number if none matches.
    Rules(Vec<Rule>, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abi {
    X86_64,
    X32,
    I386,
}

impl Abi {
    fn nr(self, name: &str) -> Option<u32> {
        let lookup = |t: &[(&str, u32)]| {
            t.binary_search_by(|(n, _)| (*n).cmp(name))
                .ok()
                .map(|i| t[i].1)
        };
        match self {
            Abi::X86_64 => lookup(X86_64),
            Abi::I386 => lookup(I386),
            Abi::X32 => {
                if let Some(i) = X32_SPECIAL.iter().position(|n| *n == name) {
                    return Some(X32_SYSCALL_BIT + 512 + i as u32);
                }
                if X86_64_ONLY.contains(&name) {
                    return None;
                }
                lookup(X86_64).map(|n| n | X32_SYSCALL_BIT)
            }
        }
    }

    /// The syscall numbers this ABI's part of the program sees.
    fn domain(self) -> (u32, u32) {
        match self {
            Abi::X86_64 => (0, X32_SYSCALL_BIT - 1),
            Abi::X32 => (X32_SYSCALL_BIT, u32::MAX),
            Abi::I386 => (0, u32::MAX),
        }
    }
}

/// The rules of one ABI, by syscall number.
struct AbiRules {
    abi: Abi,
    by_nr: BTreeMap<u32, Vec<Rule>>,
    default: u32,
    /// Numbers above this get ENOSYS (runc's stub).
    enosys_above: Option<u32>,
    /// (syscalls index, names index, name) of names the ABI does not know.
    unknown: Vec<(usize, usize, String)>,
}

impl AbiRules {
    fn new(abi: Abi, entries: &[Entry], default: u32, stub: bool) -> Self {
        let mut by_nr: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
        let mut unknown = Vec::new();
        for e in entries {
            for (k, name) in e.names.iter().enumerate() {
                let direct = abi.nr(name);
                let muxed = if abi == Abi::I386 {
                    I386_MULTIPLEXED.iter().find(|(n, ..)| *n == name)
                } else {
                    None
                };
                if direct.is_none() && muxed.is_none() {
                    unknown.push((e.index, k, name.clone()));
                    continue;
                }
                if let Some(nr) = direct {
                    let rules = by_nr.entry(nr).or_default();
                    for conds in &e.variants {
                        rules.push(Rule {
                            action: e.action,
                            conds: conds.clone(),
                        });
                    }
                }
                // Old i386 binaries reach these through socketcall(2) or ipc(2), whose other
                // arguments are behind a pointer: only unconditional rules carry over.
                if let Some(&(_, mux, call, mask)) = muxed
                    && e.variants.iter().any(Vec::is_empty)
                {
                    by_nr.entry(mux).or_default().push(Rule {
                        action: e.action,
                        conds: vec![Cond {
                            index: 0,
                            op: Op::ScmpCmpMaskedEq,
                            value: mask,
                            value_two: call,
                        }],
                    });
                }
            }
        }
        let enosys_above = if stub {
            by_nr.keys().next_back().copied()
        } else {
            None
        };
        AbiRules {
            abi,
            by_nr,
            default,
            enosys_above,
            unknown,
        }
    }

    /// What a number without rules gets.
    fn fallback(&self, nr: u32) -> u32 {
        match self.enosys_above {
            Some(max) if nr > max => RET_ENOSYS,
            _ => self.default,
        }
    }

    fn verdict(&self, rules: &[Rule]) -> Verdict {
        let mut rules = rules.to_vec();
        // Stable: among rules with the same action, the profile's order.
        rules.sort_by_key(|r| severity(r.action));
        if let Some(i) = rules.iter().position(|r| r.conds.is_empty()) {
            rules.truncate(i + 1);
        }
        // An unconditional rule, now last, is what the others fall back to.
        let fallback = if rules.last().is_some_and(|r| r.conds.is_empty()) {
            rules.pop().map_or(self.default, |r| r.action)
        } else {
            self.default
        };
        while rules.last().is_some_and(|r| r.action == fallback) {
            rules.pop();
        }
        if rules.is_empty() {
            Verdict::Ret(fallback)
        } else {
            Verdict::Rules(rules, fallback)
        }
    }

    /// The ABI's domain cut into ranges `(first number, verdict)`, neighbours differing.
    fn intervals(&self) -> Vec<(u32, Verdict)> {
        let (lo, hi) = self.abi.domain();
        let mut out = Vec::new();
        let mut next = u64::from(lo);
        for (&nr, rules) in self.by_nr.range(lo..=hi) {
            if u64::from(nr) > next {
                self.gap(&mut out, next as u32, nr - 1);
            }
            push_range(&mut out, nr, self.verdict(rules));
            next = u64::from(nr) + 1;
        }
        if next <= u64::from(hi) {
            self.gap(&mut out, next as u32, hi);
        }
        out
    }

    /// Numbers `a..=b`, none of which has rules.
    fn gap(&self, out: &mut Vec<(u32, Verdict)>, a: u32, b: u32) {
        match self.enosys_above {
            Some(max) if b > max => {
                if a <= max {
                    push_range(out, a, Verdict::Ret(self.default));
                }
                push_range(out, a.max(max + 1), Verdict::Ret(RET_ENOSYS));
            }
            _ => push_range(out, a, Verdict::Ret(self.default)),
        }
    }
}

fn push_range(out: &mut Vec<(u32, Verdict)>, start: u32, v: Verdict) {
    if out.last().is_none_or(|(_, last)| *last != v) {
        out.push((start, v));
    }
}

// ------------------------------------------------------------------------------------------
// Code generation

/// Binary search over the ranges; A holds the syscall number.
fn emit_tree(a: &mut Asm, ranges: &[(u32, Verdict)], args32: bool) {
    match ranges {
        [] => a.ret(RET_BAD_ARCH),
        [(_, v)] => emit_verdict(a, v, args32),
        _ => {
            let m = ranges.len() / 2;
            let right = a.label();
            a.jump_if(JMP_JGE_K, ranges[m].0, right);
            emit_tree(a, &ranges[..m], args32);
            a.bind(right);
            emit_tree(a, &ranges[m..], args32);
        }
    }
}

fn emit_verdict(a: &mut Asm, v: &Verdict, args32: bool) {
    match v {
        Verdict::Ret(k) => a.ret(*k),
        Verdict::Rules(rules, fallback) => {
            for r in rules {
                let next = a.label();
                for c in &r.conds {
                    emit_cond(a, c, next, args32);
                }
                a.ret(r.action);
                a.bind(next);
            }
            a.ret(*fallback);
        }
    }
}

/// Falls through when the condition holds, jumps to `fail` otherwise. 64-bit values are
/// compared as (high, low) halves; 32-bit ABIs compare the low half only.
fn emit_cond(a: &mut Asm, c: &Cond, fail: Label, args32: bool) {
    let lo = off_arg_lo(c.index);
    let hi = lo + 4;
    let (vlo, vhi) = (c.value as u32, (c.value >> 32) as u32);
    let pass = a.label();
    match c.op {
        Op::ScmpCmpEq => {
            if !args32 {
                a.ld(hi);
                a.jump_unless(JMP_JEQ_K, vhi, fail);
            }
            a.ld(lo);
            a.jump(JMP_JEQ_K, vlo, pass, fail);
        }
        Op::ScmpCmpNe => {
            if !args32 {
                a.ld(hi);
                a.jump_unless(JMP_JEQ_K, vhi, pass);
            }
            a.ld(lo);
            a.jump(JMP_JEQ_K, vlo, fail, pass);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            if !args32 {
                a.ld(hi);
                a.jump_if(JMP_JGT_K, vhi, pass);
                a.jump_unless(JMP_JEQ_K, vhi, fail);
            }
            a.ld(lo);
            let code = if c.op == Op::ScmpCmpGt {
                JMP_JGT_K
            } else {
                JMP_JGE_K
            };
            a.jump(code, vlo, pass, fail);
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            if !args32 {
                a.ld(hi);
                a.jump_if(JMP_JGT_K, vhi, fail);
                a.jump_unless(JMP_JEQ_K, vhi, pass);
            }
            a.ld(lo);
            // arg < v is !(arg >= v); arg <= v is !(arg > v).
            let code = if c.op == Op::ScmpCmpLt {
                JMP_JGE_K
            } else {
                JMP_JGT_K
            };
            a.jump(code, vlo, fail, pass);
        }
        Op::ScmpCmpMaskedEq => {
            // (arg & value) == valueTwo
            let (dlo, dhi) = (c.value_two as u32, (c.value_two >> 32) as u32);
            if !args32 {
                a.ld(hi);
                a.and(vhi);
                a.jump_unless(JMP_JEQ_K, dhi, fail);
            }
            a.ld(lo);
            a.and(vlo);
            a.jump(JMP_JEQ_K, dlo, pass, fail);
        }
    }
    a.bind(pass);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{IoSliceMut, Read};
    use std::os::fd::AsFd;

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

    fn errno(e: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    fn parse(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("a valid linux.seccomp object")
    }

    fn filter(v: serde_json::Value) -> Filter {
        let f = compile(&parse(v)).expect("compiles");
        verify(&f.program);
        f
    }

    fn compile_err(v: serde_json::Value) -> String {
        format!("{:#}", compile(&parse(v)).expect_err("compile should fail"))
    }

    #[test]
    fn wide_values_are_refused_for_32_bit_abis() {
        let prof = |arches: serde_json::Value, op: &str, v: u64, v2: u64| {
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": arches,
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 1, "value": v, "valueTwo": v2, "op": op}]}]
            })
        };
        let wide = 0x1_0000_0001u64;
        for arch in ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] {
            let e = compile_err(prof(
                json!(["SCMP_ARCH_X86_64", arch]),
                "SCMP_CMP_EQ",
                wide,
                0,
            ));
            assert!(
                e.contains("linux.seccomp.syscalls[0].args[0].value")
                    && e.contains("0x100000001")
                    && e.contains(arch),
                "{e}"
            );
        }
        // The mask of SCMP_CMP_MASKED_EQ too; valueTwo of other ops is not used.
        let e = compile_err(prof(
            json!(["SCMP_ARCH_X86"]),
            "SCMP_CMP_MASKED_EQ",
            u64::MAX,
            wide,
        ));
        assert!(e.contains("args[0].value"), "{e}");
        compile(&parse(prof(
            json!(["SCMP_ARCH_X86"]),
            "SCMP_CMP_EQ",
            7,
            wide,
        )))
        .unwrap();
        // x86_64 alone compares all 64 bits.
        compile(&parse(prof(
            json!(["SCMP_ARCH_X86_64"]),
            "SCMP_CMP_EQ",
            wide,
            0,
        )))
        .unwrap();
    }

    #[test]
    fn x86_64_only_syscalls_have_no_x32_number() {
        assert_eq!(Abi::X86_64.nr("map_shadow_stack"), Some(453));
        assert_eq!(Abi::X32.nr("map_shadow_stack"), None);
        assert_eq!(Abi::X32.nr("read"), Some(X32_SYSCALL_BIT));
    }

    /// What the kernel's checker (sk_chk_filter / seccomp_check_filter) insists on.
    fn verify(prog: &[Insn]) {
        assert!(
            !prog.is_empty() && prog.len() <= MAX_INSNS,
            "length {}",
            prog.len()
        );
        for (pc, i) in prog.iter().enumerate() {
            let after = |off: u32| pc + 1 + off as usize;
            match i.code {
                LD_W_ABS => assert!(i.k % 4 == 0 && i.k < 64, "load at {pc}: {i:?}"),
                ALU_AND_K | RET_K => {}
                JMP_JA => assert!(after(i.k) < prog.len(), "ja at {pc} leaves the program"),
                JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => assert!(
                    after(i.jt.into()) < prog.len() && after(i.jf.into()) < prog.len(),
                    "jump at {pc} leaves the program"
                ),
                _ => panic!("unknown opcode at {pc}: {i:?}"),
            }
        }
        assert_eq!(prog.last().map(|i| i.code), Some(RET_K), "must end in ret");
    }

    /// Run a classic BPF program on a `seccomp_data`, as the kernel does; the verdict.
    fn eval(prog: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut acc: u32 = 0;
        let mut pc = 0;
        loop {
            let i = prog[pc];
            pc += 1;
            let jump = |cond: bool| usize::from(if cond { i.jt } else { i.jf });
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().expect("4 bytes"));
                }
                ALU_AND_K => acc &= i.k,
                JMP_JA => pc += i.k as usize,
                JMP_JEQ_K => pc += jump(acc == i.k),
                JMP_JGT_K => pc += jump(acc > i.k),
                JMP_JGE_K => pc += jump(acc >= i.k),
                RET_K => return i.k,
                _ => panic!("unknown opcode {i:?}"),
            }
        }
    }

    /// The verdict for an x86_64 syscall.
    fn check(f: &Filter, nr: libc::c_long, args: &[u64]) -> u32 {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        eval(&f.program, AUDIT_ARCH_X86_64, nr as u32, a)
    }

    fn nr(abi: Abi, name: &str) -> u32 {
        abi.nr(name).expect("known syscall")
    }

    #[test]
    fn tables_are_sorted_and_match_libc() {
        for t in [X86_64, I386] {
            assert!(
                t.windows(2).all(|w| w[0].0 < w[1].0),
                "sorted, no duplicates"
            );
        }
        for (name, n) in [
            ("read", libc::SYS_read),
            ("mkdir", libc::SYS_mkdir),
            ("getpid", libc::SYS_getpid),
            ("socket", libc::SYS_socket),
            ("personality", libc::SYS_personality),
            ("kexec_load", libc::SYS_kexec_load),
            ("clone3", libc::SYS_clone3),
            ("mseal", libc::SYS_mseal),
        ] {
            assert_eq!(Abi::X86_64.nr(name), Some(n as u32), "{name}");
        }
        assert_eq!(Abi::I386.nr("getpid"), Some(20));
        assert_eq!(Abi::I386.nr("socketcall"), Some(102));
        assert_eq!(Abi::I386.nr("clock_gettime64"), Some(403));
        assert_eq!(Abi::X32.nr("getpid"), Some(X32_SYSCALL_BIT | 39));
        assert_eq!(Abi::X32.nr("rt_sigaction"), Some(X32_SYSCALL_BIT | 512));
        assert_eq!(Abi::X32.nr("pwritev2"), Some(X32_SYSCALL_BIT | 547));
        assert_eq!(Abi::X32.nr("uselib"), None);
        assert_eq!(Abi::X86_64.nr("socketcall"), None);
    }

    #[test]
    fn actions_and_errno_ret() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getppid"], "action": "SCMP_ACT_KILL"},
                {"names": ["gettid"], "action": "SCMP_ACT_KILL_THREAD"},
                {"names": ["getuid"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["getgid"], "action": "SCMP_ACT_TRAP"},
                {"names": ["geteuid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                {"names": ["getegid"], "action": "SCMP_ACT_TRACE"},
                {"names": ["getpgrp"], "action": "SCMP_ACT_LOG"},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            ]
        }));
        assert_eq!(check(&f, libc::SYS_mkdir, &[]), errno(38));
        assert_eq!(check(&f, libc::SYS_rmdir, &[]), errno(libc::EPERM));
        assert_eq!(
            check(&f, libc::SYS_getppid, &[]),
            libc::SECCOMP_RET_KILL_THREAD
        );
        assert_eq!(
            check(&f, libc::SYS_gettid, &[]),
            libc::SECCOMP_RET_KILL_THREAD
        );
        assert_eq!(check(&f, libc::SYS_getuid, &[]), KILL_PROCESS);
        assert_eq!(check(&f, libc::SYS_getgid, &[]), libc::SECCOMP_RET_TRAP);
        assert_eq!(
            check(&f, libc::SYS_geteuid, &[]),
            libc::SECCOMP_RET_TRACE | 7
        );
        assert_eq!(
            check(&f, libc::SYS_getegid, &[]),
            libc::SECCOMP_RET_TRACE | 1
        );
        assert_eq!(check(&f, libc::SYS_getpgrp, &[]), libc::SECCOMP_RET_LOG);
        assert_eq!(check(&f, libc::SYS_getpid, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_openat, &[]), ALLOW);
        assert!(!f.needs_notify());
        assert_eq!(f.flags, 0);
    }

    #[test]
    fn default_action_with_default_errno_ret() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 99,
            "syscalls": [{"names": ["getpid", "write"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert_eq!(check(&f, libc::SYS_getpid, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_write, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_mkdir, &[]), errno(99));
        // No architectures listed: no -ENOSYS stub, as in runc.
        assert_eq!(check(&f, libc::SYS_openat, &[]), errno(99));
        assert_eq!(check(&f, 1000, &[]), errno(99));

        let f = filter(json!({"defaultAction": "SCMP_ACT_ERRNO"}));
        assert_eq!(check(&f, libc::SYS_getpid, &[]), errno(libc::EPERM));
        let f = filter(json!({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": []}));
        assert_eq!(check(&f, libc::SYS_getpid, &[]), KILL_PROCESS);
    }

    #[test]
    fn enosys_above_the_highest_listed_syscall() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "getpid", "openat"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert_eq!(check(&f, libc::SYS_openat, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_mkdir, &[]), errno(libc::EPERM));
        assert_eq!(check(&f, libc::SYS_openat + 1, &[]), errno(libc::ENOSYS));
        assert_eq!(check(&f, libc::SYS_clone3, &[]), errno(libc::ENOSYS));
        assert_eq!(check(&f, -1, &[]), errno(libc::ENOSYS));

        // Not for permissive defaults.
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert_eq!(check(&f, libc::SYS_clone3, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_getpid, &[]), errno(libc::EPERM));
    }

    #[test]
    fn personality_argument_values() {
        let rule = |v: u64| {
            json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
        };
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [rule(0), rule(8), rule(0xffff_ffff)]
        }));
        let p = libc::SYS_personality;
        assert_eq!(check(&f, p, &[0]), ALLOW);
        assert_eq!(check(&f, p, &[8]), ALLOW);
        assert_eq!(check(&f, p, &[0xffff_ffff]), ALLOW);
        assert_eq!(check(&f, p, &[1]), errno(libc::EPERM));
        assert_eq!(check(&f, p, &[0x1_ffff_ffff]), errno(libc::EPERM));
        assert_eq!(check(&f, p, &[u64::MAX]), errno(libc::EPERM));
        assert_eq!(check(&f, p, &[0x1_0000_0000]), errno(libc::EPERM));
    }

    #[test]
    fn conditions_in_one_rule_are_anded() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                "args": [
                    {"index": 0, "value": libc::AF_INET, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": libc::SOCK_RAW, "op": "SCMP_CMP_EQ"}
                ]}]
        }));
        let s = libc::SYS_socket;
        let (inet, unix) = (libc::AF_INET as u64, libc::AF_UNIX as u64);
        let (raw, stream) = (libc::SOCK_RAW as u64, libc::SOCK_STREAM as u64);
        assert_eq!(check(&f, s, &[inet, raw, 0]), errno(libc::EACCES));
        assert_eq!(check(&f, s, &[inet, stream, 0]), ALLOW);
        assert_eq!(check(&f, s, &[unix, raw, 0]), ALLOW);
        assert_eq!(check(&f, libc::SYS_socketpair, &[inet, raw, 0]), ALLOW);
    }

    #[test]
    fn rules_for_one_syscall_are_ored_and_a_shared_argument_splits_like_runc() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                // Two conditions on argument 0: runc makes them two rules.
                {"names": ["tkill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 20, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        let eperm = errno(libc::EPERM);
        assert_eq!(check(&f, libc::SYS_kill, &[5, 9]), eperm);
        assert_eq!(check(&f, libc::SYS_kill, &[1, 15]), eperm);
        assert_eq!(check(&f, libc::SYS_kill, &[5, 15]), ALLOW);
        assert_eq!(check(&f, libc::SYS_tkill, &[10]), eperm);
        assert_eq!(check(&f, libc::SYS_tkill, &[20]), eperm);
        assert_eq!(check(&f, libc::SYS_tkill, &[15]), ALLOW);
    }

    fn reference(op: Op, arg: u64, v: u64, v2: u64) -> bool {
        match op {
            Op::ScmpCmpNe => arg != v,
            Op::ScmpCmpLt => arg < v,
            Op::ScmpCmpLe => arg <= v,
            Op::ScmpCmpEq => arg == v,
            Op::ScmpCmpGe => arg >= v,
            Op::ScmpCmpGt => arg > v,
            Op::ScmpCmpMaskedEq => arg & v == v2 & v,
        }
    }

    #[test]
    fn every_operator_matches_a_64_bit_reference_and_32_bit_abis_use_the_low_half() {
        // Values wider than 32 bits are refused when a 32-bit ABI is listed (issue 16:
        // libseccomp refuses them too; they were cut to their low half before): those are
        // checked against the 64-bit reference with x86_64 alone, the rest on both ABIs.
        let values: &[u64] = &[
            0,
            1,
            2,
            0x7fff_ffff,
            0xffff_fffe,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0001,
            0x1_ffff_ffff,
            0x2_0000_0000,
            0x1234_5678_9abc_def0,
            0x8000_0000_0000_0000,
            u64::MAX - 1,
            u64::MAX,
        ];
        let ops = [
            ("SCMP_CMP_NE", Op::ScmpCmpNe),
            ("SCMP_CMP_LT", Op::ScmpCmpLt),
            ("SCMP_CMP_LE", Op::ScmpCmpLe),
            ("SCMP_CMP_EQ", Op::ScmpCmpEq),
            ("SCMP_CMP_GE", Op::ScmpCmpGe),
            ("SCMP_CMP_GT", Op::ScmpCmpGt),
            ("SCMP_CMP_MASKED_EQ", Op::ScmpCmpMaskedEq),
        ];
        let i386_getpid = nr(Abi::I386, "getpid");
        for (name, op) in ops {
            for &v in values {
                // Mostly inside the mask, sometimes not (libseccomp masks those bits off).
                let v2 = (v & 0x0f0f_0000_f0f0_0001) | (v.rotate_left(3) & 0x8000_0001_0000_0020);
                let wide = v > u32::MAX as u64
                    || (op == Op::ScmpCmpMaskedEq && (v2 & v) > u32::MAX as u64);
                let profile = |arches: serde_json::Value| {
                    json!({
                        "defaultAction": "SCMP_ACT_ALLOW",
                        "architectures": arches,
                        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                            "args": [{"index": 2, "value": v, "valueTwo": v2, "op": name}]}]
                    })
                };
                let both = profile(json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]));
                if wide {
                    assert!(
                        compile_err(both.clone()).contains("does not fit the 32-bit arguments"),
                        "{name} {v:#x}"
                    );
                }
                let f = filter(if wide {
                    profile(json!(["SCMP_ARCH_X86_64"]))
                } else {
                    both
                });
                for &arg in values {
                    let got = check(&f, libc::SYS_getpid, &[0, 0, arg]) == errno(libc::EPERM);
                    assert_eq!(got, reference(op, arg, v, v2), "{name} {arg:#x} vs {v:#x}");
                    if wide {
                        continue;
                    }
                    let low = |x: u64| x & 0xffff_ffff;
                    let got32 = eval(
                        &f.program,
                        AUDIT_ARCH_I386,
                        i386_getpid,
                        [0, 0, arg, 0, 0, 0],
                    ) == errno(libc::EPERM);
                    let want32 = reference(op, low(arg), low(v), low(v2));
                    assert_eq!(got32, want32, "i386 {name} {arg:#x} vs {v:#x}");
                }
            }
        }
    }

    #[test]
    fn masked_eq_tests_flag_bits() {
        // clone with CLONE_NEWUSER denied, other clones allowed.
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": libc::CLONE_NEWUSER, "valueTwo": libc::CLONE_NEWUSER,
                          "op": "SCMP_CMP_MASKED_EQ"}]}]
        }));
        let c = libc::SYS_clone;
        let newuser = libc::CLONE_NEWUSER as u64;
        let sigchld = libc::SIGCHLD as u64;
        assert_eq!(check(&f, c, &[newuser | sigchld]), errno(libc::EPERM));
        assert_eq!(check(&f, c, &[sigchld]), ALLOW);
        assert_eq!(check(&f, c, &[libc::CLONE_NEWNS as u64 | sigchld]), ALLOW);
    }

    #[test]
    fn most_restrictive_matching_rule_wins_whatever_the_order() {
        let mut syscalls = vec![
            json!({"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                   "args": [{"index": 0, "value": libc::AF_INET, "op": "SCMP_CMP_EQ"}]}),
            json!({"names": ["getpid", "kill", "socket", "write"], "action": "SCMP_ACT_ALLOW"}),
            json!({"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
                   "args": [{"index": 1, "value": libc::SIGKILL, "op": "SCMP_CMP_EQ"}]}),
            json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}),
            json!({"names": ["kill"], "action": "SCMP_ACT_TRAP",
                   "args": [{"index": 1, "value": libc::SIGSTOP, "op": "SCMP_CMP_EQ"}]}),
            json!({"names": ["reboot"], "action": "SCMP_ACT_KILL"}),
        ];
        let kill = libc::SYS_kill;
        let (sigkill, sigstop) = (libc::SIGKILL as u64, libc::SIGSTOP as u64);
        for _ in 0..2 {
            let f = filter(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": syscalls}));
            assert_eq!(check(&f, kill, &[5, 15]), ALLOW);
            assert_eq!(check(&f, kill, &[5, sigkill]), KILL_PROCESS);
            assert_eq!(check(&f, kill, &[1, sigkill]), KILL_PROCESS);
            assert_eq!(check(&f, kill, &[1, 15]), errno(libc::EPERM));
            assert_eq!(check(&f, kill, &[5, sigstop]), libc::SECCOMP_RET_TRAP);
            assert_eq!(check(&f, kill, &[1, sigstop]), libc::SECCOMP_RET_TRAP);
            let s = libc::SYS_socket;
            assert_eq!(check(&f, s, &[libc::AF_INET as u64]), errno(libc::EACCES));
            assert_eq!(check(&f, s, &[libc::AF_UNIX as u64]), ALLOW);
            assert_eq!(check(&f, libc::SYS_getpid, &[]), ALLOW);
            assert_eq!(
                check(&f, libc::SYS_reboot, &[]),
                libc::SECCOMP_RET_KILL_THREAD
            );
            assert_eq!(check(&f, libc::SYS_mkdir, &[]), errno(libc::EPERM));
            syscalls.reverse();
        }
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["no_such_syscall", "getpid", "socketcall"],
                          "action": "SCMP_ACT_ERRNO"}]
        }));
        assert_eq!(check(&f, libc::SYS_getpid, &[]), errno(libc::EPERM));
        assert_eq!(check(&f, libc::SYS_getppid, &[]), ALLOW);
        let w = f.warnings().join("\n");
        assert!(
            w.contains("linux.seccomp.syscalls[0].names[0]: unknown syscall \"no_such_syscall\""),
            "{w}"
        );
        // socketcall exists on i386 only.
        assert!(w.contains("names[2]"), "{w}");
        let i386 = |n| eval(&f.program, AUDIT_ARCH_I386, n, [0; 6]);
        assert_eq!(i386(nr(Abi::I386, "socketcall")), errno(libc::EPERM));
        assert_eq!(i386(nr(Abi::I386, "getpid")), errno(libc::EPERM));
        assert_eq!(i386(nr(Abi::I386, "getppid")), ALLOW);
    }

    #[test]
    fn i386_multiplexed_calls_follow_unconditional_rules() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["socket", "semop"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["connect"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        let i386 = |nr, a0| eval(&f.program, AUDIT_ARCH_I386, nr, [a0, 0, 0, 0, 0, 0]);
        let (socketcall, ipc) = (nr(Abi::I386, "socketcall"), nr(Abi::I386, "ipc"));
        let eperm = errno(libc::EPERM);
        assert_eq!(i386(nr(Abi::I386, "socket"), 0), eperm);
        assert_eq!(i386(socketcall, 1), eperm);
        assert_eq!(i386(socketcall, 2), ALLOW);
        assert_eq!(i386(socketcall, 3), ALLOW);
        assert_eq!(i386(ipc, 1), eperm);
        assert_eq!(i386(ipc, 0x1_0001), eperm);
        assert_eq!(i386(ipc, 2), ALLOW);
        assert_eq!(i386(nr(Abi::I386, "connect"), 3), eperm);
        assert_eq!(check(&f, libc::SYS_socket, &[]), eperm);
    }

    #[test]
    fn other_architectures_and_abis_are_killed_unless_listed() {
        let rules = json!([
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["rt_sigaction"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}
        ]);
        let f = filter(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
        assert_eq!(
            eval(&f.program, AUDIT_ARCH_AARCH64, 39, [0; 6]),
            KILL_PROCESS
        );
        assert_eq!(eval(&f.program, AUDIT_ARCH_I386, 20, [0; 6]), KILL_PROCESS);
        let x32_getpid = nr(Abi::X32, "getpid");
        assert_eq!(check(&f, x32_getpid.into(), &[]), KILL_PROCESS);
        assert_eq!(check(&f, nr(Abi::X32, "mkdir").into(), &[]), KILL_PROCESS);
        // syscall(-1) is not an x32 call.
        assert_eq!(check(&f, -1, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_mkdir, &[]), errno(38));

        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                              "SCMP_ARCH_AARCH64"],
            "syscalls": rules
        }));
        assert_eq!(
            eval(&f.program, AUDIT_ARCH_AARCH64, 39, [0; 6]),
            KILL_PROCESS
        );
        let i386 = |name| eval(&f.program, AUDIT_ARCH_I386, nr(Abi::I386, name), [0; 6]);
        assert_eq!(i386("mkdir"), errno(38));
        assert_eq!(i386("rt_sigaction"), errno(5));
        assert_eq!(i386("getpid"), ALLOW);
        let x32 = |name| check(&f, nr(Abi::X32, name).into(), &[]);
        assert_eq!(x32("mkdir"), errno(38));
        assert_eq!(x32("rt_sigaction"), errno(5));
        assert_eq!(x32("getpid"), ALLOW);
        assert_eq!(check(&f, libc::SYS_rt_sigaction, &[]), errno(5));
        let w = f.warnings().join("\n");
        assert!(
            w.contains("linux.seccomp.architectures[3]: SCMP_ARCH_AARCH64"),
            "{w}"
        );
    }

    #[test]
    fn config_errors_name_their_path() {
        let e = compile_err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        assert!(
            e.starts_with("linux.seccomp.syscalls[1].args[0].index: 6 is out of range"),
            "{e}"
        );
        let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}));
        assert!(
            e.starts_with("linux.seccomp.syscalls[0].errnoRet: 70000"),
            "{e}"
        );
        let e = compile_err(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 65536}));
        assert!(e.starts_with("linux.seccomp.defaultErrnoRet: 65536"), "{e}");
        let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid", ""], "action": "SCMP_ACT_ERRNO"}]}));
        assert_eq!(e, "linux.seccomp.syscalls[0].names[1]: empty syscall name");
        let e = compile_err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}));
        assert!(
            e.starts_with("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY"),
            "{e}"
        );
        let e = compile_err(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
        );
        assert!(
            e.starts_with("linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY"),
            "{e}"
        );
        let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}));
        assert!(e.starts_with("linux.seccomp.listenerPath: not set"), "{e}");
        // Unknown actions, operators and arches never get here: oci-spec rejects them.
        for bad in [
            json!({"defaultAction": "SCMP_ACT_FOO"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}),
        ] {
            assert!(serde_json::from_value::<LinuxSeccomp>(bad).is_err());
        }
    }

    #[test]
    fn notify_and_flags() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "meta",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(f.needs_notify());
        assert_eq!(f.listener_path(), Some(Path::new("/run/agent.sock")));
        assert_eq!(f.listener_metadata(), Some("meta"));
        assert_eq!(
            check(&f, libc::SYS_mkdir, &[]),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(check(&f, libc::SYS_rmdir, &[]), ALLOW);
        assert_eq!(
            f.flags,
            libc::SECCOMP_FILTER_FLAG_TSYNC
                | libc::SECCOMP_FILTER_FLAG_LOG
                | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
                | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
                | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
                | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        );

        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert!(!f.needs_notify());
        assert_eq!(f.listener_path(), None);
        assert_eq!(f.flags, libc::SECCOMP_FILTER_FLAG_LOG);
        assert!(
            f.warnings()
                .iter()
                .any(|w| w.starts_with("linux.seccomp.flags[1]"))
        );
    }

    #[test]
    fn far_jumps_go_through_trampolines() {
        // 300 syscalls, each with its own argument rule: jumps much longer than 255.
        let names: Vec<&str> = X86_64.iter().take(300).map(|(n, _)| *n).collect();
        let syscalls: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                json!({"names": [n], "action": "SCMP_ACT_ERRNO", "errnoRet": i + 1,
                       "args": [{"index": 1, "value": i as u64 + 0x1_0000_0000, "op": "SCMP_CMP_EQ"}]})
            })
            .collect();
        let f = filter(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls}));
        assert!(f.program.len() > 2000, "{}", f.program.len());
        assert!(f.program.iter().any(|i| i.code == JMP_JA));
        for (i, n) in names.iter().enumerate() {
            let nr = Abi::X86_64.nr(n).expect("from the table").into();
            assert_eq!(
                check(&f, nr, &[0, i as u64 + 0x1_0000_0000]),
                errno(i as i32 + 1)
            );
            assert_eq!(check(&f, nr, &[0, i as u64]), ALLOW, "{n}");
        }
    }

    #[test]
    fn programs_over_the_kernel_limit_are_refused() {
        // Distinct rules, so that neighbouring syscalls cannot share code.
        let syscalls: Vec<_> = X86_64
            .iter()
            .map(|(n, nr)| {
                let args: Vec<_> = (0..6)
                    .map(|i| json!({"index": i, "value": nr, "op": "SCMP_CMP_LT"}))
                    .collect();
                json!({"names": [n], "action": "SCMP_ACT_ERRNO", "args": args})
            })
            .collect();
        let e = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls}));
        assert!(e.contains("more than the kernel's limit of 4096"), "{e}");
    }

    fn containers_profile() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/seccomp/containers-common.json"
        ))
        .expect("fixture is JSON")
    }

    /// podman's default capabilities.
    fn podman_caps() -> Vec<String> {
        [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_NET_BIND_SERVICE",
            "CAP_SETFCAP",
            "CAP_SETGID",
            "CAP_SETPCAP",
            "CAP_SETUID",
            "CAP_SYS_CHROOT",
        ]
        .map(String::from)
        .to_vec()
    }

    fn podman_filter(caps: &[String]) -> (serde_json::Value, Filter) {
        let oci = from_containers_profile(&containers_profile(), caps).expect("converts");
        let f = filter(oci.clone());
        (oci, f)
    }

    #[test]
    fn containers_profile_converts_and_compiles() {
        let (oci, f) = podman_filter(&podman_caps());
        assert_eq!(
            oci["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert_eq!(oci["defaultErrnoRet"], json!(38));
        let names = |action: &str| -> Vec<String> {
            let rules = oci["syscalls"].as_array().expect("syscalls");
            rules
                .iter()
                .filter(|r| r["action"] == action && r.get("args").is_none())
                .flat_map(|r| r["names"].as_array().expect("names").clone())
                .map(|n| n.as_str().expect("a name").to_string())
                .collect()
        };
        let allowed = names("SCMP_ACT_ALLOW");
        let denied = names("SCMP_ACT_ERRNO");
        for n in ["chroot", "arch_prctl", "modify_ldt", "getpid"] {
            assert!(allowed.iter().any(|a| a == n), "{n} allowed");
        }
        for n in ["bpf", "kexec_load", "acct", "open_by_handle_at"] {
            assert!(denied.iter().any(|a| a == n), "{n} denied");
            assert!(!allowed.iter().any(|a| a == n), "{n} not allowed");
        }
        for n in ["sync_file_range2", "set_tls", "s390_runtime_instr"] {
            assert!(!allowed.iter().any(|a| a == n), "{n} is for other arches");
        }
        assert!(f.program.len() < 1500, "{}", f.program.len());

        let eperm = errno(libc::EPERM);
        let enosys = errno(libc::ENOSYS);
        assert_eq!(check(&f, libc::SYS_getpid, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_openat, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_chroot, &[]), ALLOW);
        assert_eq!(check(&f, libc::SYS_kexec_load, &[]), eperm);
        assert_eq!(check(&f, libc::SYS_bpf, &[]), eperm);
        assert_eq!(check(&f, libc::SYS_add_key, &[]), enosys);
        assert_eq!(check(&f, libc::SYS_futex_waitv, &[]), enosys);
        let (netlink, raw, audit) = (libc::AF_NETLINK as u64, libc::SOCK_RAW as u64, 9);
        let s = libc::SYS_socket;
        assert_eq!(check(&f, s, &[netlink, raw, audit]), errno(libc::EINVAL));
        assert_eq!(check(&f, s, &[netlink, raw, 0]), ALLOW);
        assert_eq!(
            check(&f, s, &[libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0]),
            ALLOW
        );
        assert_eq!(check(&f, libc::SYS_personality, &[8]), ALLOW);
        assert_eq!(check(&f, libc::SYS_personality, &[1]), enosys);
        let i386 = |name| eval(&f.program, AUDIT_ARCH_I386, nr(Abi::I386, name), [0; 6]);
        assert_eq!(i386("getpid"), ALLOW);
        assert_eq!(i386("socketcall"), ALLOW);
        assert_eq!(i386("kexec_load"), eperm);
        let x32 = |name| check(&f, nr(Abi::X32, name).into(), &[]);
        assert_eq!(x32("getpid"), ALLOW);
        assert_eq!(x32("kexec_load"), eperm);
        assert_eq!(
            eval(&f.program, AUDIT_ARCH_AARCH64, 39, [0; 6]),
            KILL_PROCESS
        );

        // More capabilities, fewer denials.
        let mut caps = podman_caps();
        caps.extend(["SYS_ADMIN", "cap_audit_write"].map(String::from));
        let (_, f) = podman_filter(&caps);
        assert_eq!(check(&f, libc::SYS_bpf, &[]), ALLOW);
        assert_eq!(check(&f, s, &[netlink, raw, audit]), ALLOW);
        assert_eq!(check(&f, libc::SYS_kexec_load, &[]), eperm);
    }

    #[test]
    fn containers_profile_filters() {
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"name": "getpid", "action": "SCMP_ACT_ALLOW"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "1.0"}},
                {"names": ["write"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "999.0"}},
                {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
                {"names": ["rmdir"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": [], "action": "SCMP_ACT_ALLOW"}
            ]
        });
        let oci = from_containers_profile(&p, &[]).expect("converts");
        assert_eq!(
            oci,
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
                ]
            })
        );
        let bad = json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                          "includes": {"minKernel": "five"}}]});
        let e = format!(
            "{:#}",
            from_containers_profile(&bad, &[]).expect_err("bad version")
        );
        assert!(e.contains("syscalls[0].includes.minKernel"), "{e}");
    }

    #[test]
    fn process_state_has_runc_shape() {
        let state = json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42,
                           "bundle": "/b"});
        let out = process_state_json(42, Some("meta"), &state);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            v,
            json!({"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 42, "metadata": "meta",
                   "state": state})
        );
        let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["ociVersion", "fds", "pid", "metadata", "state"]);
        let v: serde_json::Value =
            serde_json::from_slice(&process_state_json(1, None, &state)).expect("JSON");
        assert!(v.get("metadata").is_none());
    }

    // ----------------------------------------------------------------------------------
    // Installed for real, in forked children. Children make raw syscalls and leave with _exit.

    /// A syscall's result, or minus its errno.
    fn sys(nr: libc::c_long, a0: u64, a1: u64, a2: u64) -> i64 {
        // SAFETY: test syscalls with integer arguments, or pointers to static strings.
        let r = unsafe { libc::syscall(nr, a0, a1, a2) };
        if r < 0 {
            -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            r
        }
    }

    /// No core files from SIGSYS deaths; no_new_privs so that an unprivileged process may install.
    fn child_setup() -> bool {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscalls with valid arguments, in the forked child.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &no_core) == 0
                && libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
                && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        }
    }

    /// Fork; the child installs `f` (unless None), runs `body` and exits with what it returns.
    /// The child's wait status.
    fn in_child(f: Option<&Filter>, body: impl FnOnce(Option<OwnedFd>) -> i32) -> libc::c_int {
        // SAFETY: the child only makes syscalls (glibc keeps malloc usable after fork for the
        // notify test) and leaves with _exit, never returning into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = if !child_setup() {
                200
            } else {
                match f.map(Filter::install_raw) {
                    None => body(None),
                    Some(Ok(fd)) => body(fd),
                    Some(Err(_)) => 201,
                }
            };
            // SAFETY: ends the child at once, without unwinding or atexit handlers.
            unsafe { libc::_exit(code) }
        }
        wait(pid)
    }

    fn wait(pid: libc::pid_t) -> libc::c_int {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
        status
    }

    fn exited(status: libc::c_int) -> Option<i32> {
        libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
    }

    fn killed_by_sigsys(status: libc::c_int) -> bool {
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS
    }

    /// A bit per failed expectation, so a failing test says which one.
    fn expect(results: &[bool]) -> i32 {
        results
            .iter()
            .enumerate()
            .filter(|(_, ok)| !**ok)
            .fold(0, |acc, (i, _)| acc | 1 << i)
    }

    #[test]
    fn installed_errno_allow_and_flags() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}
            ]
        }));
        let path = c"/nonexistent-rrun-seccomp-test/x".as_ptr() as u64;
        let status = in_child(Some(&f), |_| {
            expect(&[
                sys(libc::SYS_mkdir, path, 0o755, 0) == -38,
                sys(libc::SYS_rmdir, path, 0, 0) == -i64::from(libc::EPERM),
                sys(libc::SYS_getpid, 0, 0, 0) > 0,
                sys(libc::SYS_unlink, path, 0, 0) == -i64::from(libc::ENOENT),
            ])
        });
        assert_eq!(exited(status), Some(0), "status {status:#x}");
    }

    #[test]
    fn installed_kill_and_trap_give_sigsys() {
        for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
            let f = filter(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getppid"], "action": action}]
            }));
            let status = in_child(Some(&f), |_| {
                if sys(libc::SYS_getpid, 0, 0, 0) <= 0 {
                    return 1;
                }
                sys(libc::SYS_getppid, 0, 0, 0);
                2
            });
            assert!(killed_by_sigsys(status), "{action}: status {status:#x}");
        }
    }

    #[test]
    fn installed_argument_conditions() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                "args": [{"index": 0, "value": libc::AF_INET, "op": "SCMP_CMP_EQ"}]}]
        }));
        let status = in_child(Some(&f), |_| {
            let inet = sys(
                libc::SYS_socket,
                libc::AF_INET as u64,
                libc::SOCK_STREAM as u64,
                0,
            );
            let unix = sys(
                libc::SYS_socket,
                libc::AF_UNIX as u64,
                libc::SOCK_STREAM as u64,
                0,
            );
            expect(&[inet == -i64::from(libc::EACCES), unix >= 0])
        });
        assert_eq!(exited(status), Some(0), "status {status:#x}");
    }

    #[test]
    fn installed_containers_profile() {
        let (_, f) = podman_filter(&podman_caps());
        let status = in_child(Some(&f), |_| {
            let audit = sys(
                libc::SYS_socket,
                libc::AF_NETLINK as u64,
                libc::SOCK_RAW as u64,
                9,
            );
            let unix = sys(
                libc::SYS_socket,
                libc::AF_UNIX as u64,
                libc::SOCK_STREAM as u64,
                0,
            );
            expect(&[
                sys(libc::SYS_getpid, 0, 0, 0) > 0,
                sys(libc::SYS_kexec_load, 0, 0, 0) == -i64::from(libc::EPERM),
                sys(libc::SYS_add_key, 0, 0, 0) == -i64::from(libc::ENOSYS),
                sys(libc::SYS_bpf, 0, 0, 0) == -i64::from(libc::EPERM),
                audit == -i64::from(libc::EINVAL),
                unix >= 0,
                sys(libc::SYS_personality, 0xffff_ffff, 0, 0) >= 0,
            ])
        });
        assert_eq!(exited(status), Some(0), "status {status:#x}");
    }

    /// getpid through the i386 ABI (int 0x80) from this 64-bit process.
    fn int80_getpid() -> i32 {
        let ret: i32;
        // SAFETY: i386 getpid takes no arguments and touches no memory; int 0x80 from 64-bit
        // code returns with r8-r11 zeroed, so they are declared clobbered.
        unsafe {
            std::arch::asm!(
                "int 0x80",
                inlateout("eax") 20 => ret,
                lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                options(nostack)
            );
        }
        ret
    }

    #[test]
    fn installed_other_abis_are_killed_unless_listed() {
        let rules = json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]);
        let f = filter(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
        let x32_getpid = nr(Abi::X32, "getpid");
        let status = in_child(Some(&f), |_| {
            sys(x32_getpid.into(), 0, 0, 0);
            1
        });
        assert!(killed_by_sigsys(status), "x32: status {status:#x}");

        // The i386 ABI, where the kernel has it.
        if exited(in_child(None, |_| i32::from(int80_getpid() <= 0))) != Some(0) {
            eprintln!("no i386 syscalls on this kernel: skipping that part");
            return;
        }
        let status = in_child(Some(&f), |_| i32::from(int80_getpid() <= 0) + 1);
        assert!(killed_by_sigsys(status), "i386: status {status:#x}");
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": rules
        }));
        let status = in_child(Some(&f), |_| i32::from(int80_getpid() <= 0));
        assert_eq!(exited(status), Some(0), "i386 listed: status {status:#x}");
    }

    #[test]
    fn installed_notify_sends_the_listener_to_the_agent() {
        let dir = std::env::temp_dir().join(format!("rrun-seccomp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("agent.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "hello",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        let state = json!({"ociVersion": "1.2.0", "id": "c", "status": "creating", "pid": 1,
                           "bundle": "/b"});
        let json = process_state_json(1, f.listener_metadata(), &state);

        // SAFETY: see in_child; this child allocates (send_listener), which glibc allows.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = if !child_setup() {
                200
            } else {
                match f.install() {
                    Ok(Some(fd)) => match send_listener(&sock, fd.as_fd(), &json) {
                        Ok(()) => {
                            drop(fd);
                            i32::from(sys(libc::SYS_getppid, 0, 0, 0) != 4242)
                        }
                        Err(_) => 202,
                    },
                    _ => 201,
                }
            };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) }
        }

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "agent never called");
                    let mut status = 0;
                    // SAFETY: polling our own child.
                    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                    assert_eq!(r, 0, "child ended early: status {status:#x}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        let mut buf = vec![0u8; 64 * 1024];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, fds) = {
            let msg = nix::sys::socket::recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .expect("recvmsg");
            let mut fds = Vec::new();
            for c in msg.cmsgs().expect("cmsgs") {
                if let nix::sys::socket::ControlMessageOwned::ScmRights(r) = c {
                    fds.extend(r);
                }
            }
            (msg.bytes, fds)
        };
        let mut got = buf[..n].to_vec();
        stream.read_to_end(&mut got).expect("rest of the state");
        assert_eq!(got, json);
        assert_eq!(fds.len(), 1);
        // SAFETY: the fd just arrived by SCM_RIGHTS and is ours.
        let notify_fd = unsafe { OwnedFd::from_raw_fd(fds[0]) };

        let mut pfd = libc::pollfd {
            fd: notify_fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 20_000) };
        assert_eq!(ready, 1, "no notification");
        // SAFETY: seccomp_notif is plain data; the kernel wants it zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl fills `req`, which has the size the request encodes.
        let r = unsafe {
            libc::ioctl(
                notify_fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut req,
            )
        };
        assert_eq!(r, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        assert_eq!(req.data.nr, libc::SYS_getppid as i32);
        assert_eq!(req.data.arch, AUDIT_ARCH_X86_64);
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 4242,
            error: 0,
            flags: 0,
        };
        // SAFETY: the ioctl reads `resp`, which has the size the request encodes.
        let r = unsafe {
            libc::ioctl(
                notify_fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp,
            )
        };
        assert_eq!(r, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
        let status = wait(pid);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(exited(status), Some(0), "status {status:#x}");
    }
}
