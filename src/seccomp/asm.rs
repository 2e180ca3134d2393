//! The classic BPF side of the compiler: opcodes, the instruction layout the kernel takes,
//! and a forward-only assembler with labels that routes far conditional jumps.

use anyhow::{Result, bail};

/// `struct seccomp_data`: `int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];`.
pub(super) const OFF_NR: u32 = 0;
pub(super) const OFF_ARCH: u32 = 4;
/// Offset of the low 32 bits of argument `i` (x86 is little-endian; the high half follows).
pub(super) const fn off_arg_lo(i: u8) -> u32 {
    16 + 8 * i as u32
}

// Classic BPF opcodes: class | operation | operand source.
/// `BPF_LD | BPF_W | BPF_ABS`: A = 32 bits of seccomp_data at k.
pub(super) const LD_W_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`: A &= k.
pub(super) const ALU_AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JA`: pc += k.
pub(super) const JMP_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`: pc += (A == k) ? jt : jf.
pub(super) const JMP_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGT | BPF_K`: pc += (A > k) ? jt : jf.
pub(super) const JMP_JGT_K: u16 = 0x25;
/// `BPF_JMP | BPF_JGE | BPF_K`: pc += (A >= k) ? jt : jf.
pub(super) const JMP_JGE_K: u16 = 0x35;
/// `BPF_RET | BPF_K`: return k.
pub(super) const RET_K: u16 = 0x06;
pub(super) const MAX_INSNS: usize = libc::BPF_MAXINSNS as usize;

/// One classic BPF instruction, laid out like the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Insn {
    pub(super) code: u16,
    pub(super) jt: u8,
    pub(super) jf: u8,
    pub(super) k: u32,
}

const _: () = assert!(
    std::mem::size_of::<Insn>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<Insn>() == std::mem::align_of::<libc::sock_filter>()
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Label(usize);

#[derive(Clone, Copy, Debug)]
pub(super) enum Node {
    Bind(Label),
    Ld(u32),
    And(u32),
    Ret(u32),
    Ja(Label),
    Jmp {
        code: u16,
        k: u32,
        jt: Label,
        jf: Label,
    },
}

/// A forward-only assembler with labels.
#[derive(Default)]
pub(super) struct Asm {
    nodes: Vec<Node>,
    labels: usize,
}

impl Asm {
    pub(super) fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub(super) fn bind(&mut self, l: Label) {
        self.nodes.push(Node::Bind(l));
    }

    pub(super) fn ld(&mut self, off: u32) {
        self.nodes.push(Node::Ld(off));
    }

    pub(super) fn and(&mut self, k: u32) {
        self.nodes.push(Node::And(k));
    }

    pub(super) fn ret(&mut self, k: u32) {
        self.nodes.push(Node::Ret(k));
    }

    pub(super) fn jump(&mut self, code: u16, k: u32, jt: Label, jf: Label) {
        self.nodes.push(Node::Jmp { code, k, jt, jf });
    }

    /// To `to` when the condition holds, else on.
    pub(super) fn jump_if(&mut self, code: u16, k: u32, to: Label) {
        let next = self.label();
        self.jump(code, k, to, next);
        self.bind(next);
    }

    /// On when the condition holds, else to `to`.
    pub(super) fn jump_unless(&mut self, code: u16, k: u32, to: Label) {
        let next = self.label();
        self.jump(code, k, next, to);
        self.bind(next);
    }

    /// Instruction index of each label.
    pub(super) fn positions(&self) -> Vec<usize> {
        let mut pos = vec![usize::MAX; self.labels];
        let mut p = 0;
        for n in &self.nodes {
            match n {
                Node::Bind(l) => pos[l.0] = p,
                _ => p += 1,
            }
        }
        pos
    }

    pub(super) fn assemble(mut self) -> Result<Vec<Insn>> {
        // Conditional jumps reach at most 255 instructions ahead: send farther ones through an
        // unconditional jump placed right after them. Repeat, since that moves code.
        loop {
            let pos = self.positions();
            let mut far = Vec::new();
            let mut p = 0;
            for (i, n) in self.nodes.iter().enumerate() {
                match *n {
                    Node::Bind(_) => continue,
                    Node::Jmp { jt, jf, .. } => {
                        if offset(pos[jt.0], p)? > usize::from(u8::MAX) {
                            far.push((i, true));
                        }
                        if offset(pos[jf.0], p)? > usize::from(u8::MAX) {
                            far.push((i, false));
                        }
                    }
                    _ => {}
                }
                p += 1;
            }
            if far.is_empty() {
                break;
            }
            for &(i, on_true) in far.iter().rev() {
                let hop = self.label();
                let Node::Jmp { jt, jf, .. } = &mut self.nodes[i] else {
                    bail!("seccomp: internal error: far jump is not a jump");
                };
                let branch = if on_true { jt } else { jf };
                let target = std::mem::replace(branch, hop);
                self.nodes
                    .splice(i + 1..i + 1, [Node::Bind(hop), Node::Ja(target)]);
            }
        }

        let pos = self.positions();
        let len = self
            .nodes
            .iter()
            .filter(|n| !matches!(n, Node::Bind(_)))
            .count();
        let mut out = Vec::with_capacity(len);
        for n in &self.nodes {
            let at = out.len();
            let to = |l: Label| -> Result<usize> {
                if pos[l.0] >= len {
                    bail!("seccomp: internal error: jump past the end");
                }
                offset(pos[l.0], at)
            };
            let (code, jt, jf, k) = match *n {
                Node::Bind(_) => continue,
                Node::Ld(off) => (LD_W_ABS, 0, 0, off),
                Node::And(k) => (ALU_AND_K, 0, 0, k),
                Node::Ret(k) => (RET_K, 0, 0, k),
                Node::Ja(l) => (JMP_JA, 0, 0, u32::try_from(to(l)?)?),
                Node::Jmp { code, k, jt, jf } => {
                    (code, u8::try_from(to(jt)?)?, u8::try_from(to(jf)?)?, k)
                }
            };
            out.push(Insn { code, jt, jf, k });
        }
        Ok(out)
    }
}

/// Jump offset from the instruction at `at` to `target` (forward only).
pub(super) fn offset(target: usize, at: usize) -> Result<usize> {
    if target == usize::MAX || target <= at {
        bail!("seccomp: internal error: bad jump from {at} to {target}");
    }
    Ok(target - at - 1)
}
