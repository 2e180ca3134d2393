//! `rrun debug seccomp`: what a bundle's `linux.seccomp` becomes. The listing names each
//! instruction, the field of `struct seccomp_data` a load reads, the action a return gives and
//! the syscall a comparison of the number stands for; `--raw` writes the program itself, the
//! `struct sock_filter` array seccomp(2) receives (8 bytes per instruction, host byte order),
//! for other tools (libseccomp's `scmp_bpf_disasm`, a BPF interpreter) to read.

use super::asm::*;
use super::tables::{I386, X86_64};
use super::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, Filter, X32_SYSCALL_BIT};
use anyhow::{Result, anyhow};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Load the bundle's config.json, compile its seccomp section, print it.
pub fn run(bundle: &Path, raw: bool) -> Result<()> {
    let spec = crate::spec::read_spec(bundle)?;
    let s = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .ok_or_else(|| anyhow!("config.json: linux.seccomp: none in {}", bundle.display()))?;
    let f = super::compile(s)?;
    let out = if raw {
        raw_bytes(&f)
    } else {
        listing(&f).into_bytes()
    };
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| anyhow!("write to stdout: {}", crate::sys::io_errno(&e)))
}

/// The program as seccomp(2) takes it.
pub fn raw_bytes(f: &Filter) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.program.len() * 8);
    for i in &f.program {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

/// What a return value does, in libseccomp's words.
fn action(k: u32) -> String {
    let data = k & libc::SECCOMP_RET_DATA;
    match k & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_KILL_PROCESS => "KILL_PROCESS".into(),
        libc::SECCOMP_RET_KILL_THREAD => "KILL_THREAD".into(),
        libc::SECCOMP_RET_TRAP => format!("TRAP({data})"),
        libc::SECCOMP_RET_ERRNO => format!(
            "ERRNO({data}: {})",
            nix::errno::Errno::from_raw(data as i32)
        ),
        libc::SECCOMP_RET_USER_NOTIF => "NOTIFY".into(),
        libc::SECCOMP_RET_TRACE => format!("TRACE({data})"),
        libc::SECCOMP_RET_LOG => "LOG".into(),
        libc::SECCOMP_RET_ALLOW => "ALLOW".into(),
        other => format!("{other:#010x}"),
    }
}

fn field(off: u32) -> String {
    match off {
        0 => "nr".into(),
        4 => "arch".into(),
        8 => "instruction_pointer (low)".into(),
        12 => "instruction_pointer (high)".into(),
        16..=63 => {
            let i = (off - 16) / 8;
            let half = if (off - 16).is_multiple_of(8) {
                "low"
            } else {
                "high"
            };
            format!("args[{i}] ({half})")
        }
        _ => format!("offset {off}"),
    }
}

/// Syscall names for a number under `arch` (both tables where the arch is not known there).
fn names(k: u32, arch: Option<u32>) -> String {
    fn find(t: &'static [(&'static str, u32)], n: u32) -> Option<&'static str> {
        t.iter().find(|(_, v)| *v == n).map(|(s, _)| *s)
    }
    let x86_64 = |k: u32| {
        if k >= X32_SYSCALL_BIT {
            find(X86_64, k & !X32_SYSCALL_BIT).map(|n| format!("x32 {n}"))
        } else {
            find(X86_64, k).map(|n| format!("x86_64 {n}"))
        }
    };
    let i386 = |k: u32| find(I386, k).map(|n| format!("i386 {n}"));
    let v: Vec<String> = match arch {
        Some(AUDIT_ARCH_X86_64) => x86_64(k).into_iter().collect(),
        Some(AUDIT_ARCH_I386) => i386(k).into_iter().collect(),
        _ => x86_64(k).into_iter().chain(i386(k)).collect(),
    };
    v.join(", ")
}

/// The arch each instruction runs under, where every way to it agrees (jumps only go
/// forward, so one pass in order sees every predecessor first).
fn arches(prog: &[Insn]) -> Vec<Option<u32>> {
    // None: not reached yet; Some(None): unknown or mixed.
    let mut at: Vec<Option<Option<u32>>> = vec![None; prog.len() + 1];
    at[0] = Some(None);
    let mut loaded = u32::MAX;
    let flow = |at: &mut Vec<Option<Option<u32>>>, to: usize, a: Option<u32>| {
        if let Some(slot) = at.get_mut(to) {
            *slot = match *slot {
                None => Some(a),
                Some(b) if b == a => Some(a),
                Some(_) => Some(None),
            };
        }
    };
    for (pc, i) in prog.iter().enumerate() {
        let here = at[pc].flatten();
        match i.code {
            LD_W_ABS => {
                loaded = i.k;
                flow(&mut at, pc + 1, here);
            }
            RET_K => {}
            JMP_JA => flow(&mut at, pc + 1 + i.k as usize, here),
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                let on_true = if i.code == JMP_JEQ_K && loaded == 4 {
                    Some(i.k)
                } else {
                    here
                };
                flow(&mut at, pc + 1 + i.jt as usize, on_true);
                flow(&mut at, pc + 1 + i.jf as usize, here);
            }
            _ => flow(&mut at, pc + 1, here),
        }
    }
    at.into_iter()
        .take(prog.len())
        .map(Option::flatten)
        .collect()
}

/// The readable listing: one line per instruction, jumps as absolute targets.
pub fn listing(f: &Filter) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {} instructions; flags {:#x}{}",
        f.program.len(),
        f.flags,
        if f.notify { "; notify listener" } else { "" }
    );
    for w in &f.warnings {
        let _ = writeln!(s, "# warning: {w}");
    }
    // What the accumulator holds and the arch, to annotate comparisons.
    let mut loaded = u32::MAX;
    let arch = arches(&f.program);
    for (pc, i) in f.program.iter().enumerate() {
        let to = |off: u8| pc + 1 + off as usize;
        let line = match i.code {
            LD_W_ABS => {
                loaded = i.k;
                format!("ld   [{}]{:>14}; {}", i.k, "", field(i.k))
            }
            ALU_AND_K => format!("and  #{:#x}", i.k),
            RET_K => format!("ret  {}", action(i.k)),
            JMP_JA => format!("ja   {:04}", pc + 1 + i.k as usize),
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                let op = match i.code {
                    JMP_JEQ_K => "jeq",
                    JMP_JGT_K => "jgt",
                    _ => "jge",
                };
                let note = match loaded {
                    0 => names(i.k, arch[pc]),
                    4 if i.k == AUDIT_ARCH_X86_64 => "AUDIT_ARCH_X86_64".into(),
                    4 if i.k == AUDIT_ARCH_I386 => "AUDIT_ARCH_I386".into(),
                    _ => String::new(),
                };
                let head = format!("{op}  #{:#x} jt {:04} jf {:04}", i.k, to(i.jt), to(i.jf));
                if note.is_empty() {
                    head
                } else {
                    format!("{head:<34}; {note}")
                }
            }
            other => format!("code {other:#06x} jt {} jf {} k {:#x}", i.jt, i.jf, i.k),
        };
        let _ = writeln!(s, "{pc:04}: {line}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_and_raw_agree_with_the_program() {
        let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let f = super::super::compile(&s).unwrap();
        let raw = raw_bytes(&f);
        assert_eq!(raw.len(), f.program.len() * 8);
        assert_eq!(u16::from_ne_bytes([raw[0], raw[1]]), f.program[0].code);
        let l = listing(&f);
        assert_eq!(
            l.lines().filter(|l| !l.starts_with('#')).count(),
            f.program.len()
        );
        assert!(l.contains("; arch"), "{l}");
        assert!(l.contains("AUDIT_ARCH_X86_64"), "{l}");
        assert!(l.contains("x86_64 open"), "{l}");
        assert!(l.contains("i386 read"), "{l}");
        // Each section names its own arch's syscalls only.
        assert!(
            !l.lines()
                .any(|x| x.contains("x86_64") && x.contains("i386 ")),
            "{l}"
        );
        assert!(l.contains("ret  ALLOW"), "{l}");
        assert!(l.contains("ret  ERRNO(1: EPERM"), "{l}");
    }
}
