//! CVE-2019-5736 without re-executing rrun: the container's program is never exec'd by a
//! process whose /proc/self/exe is the host rrun binary. Init (and exec) first execs this tiny
//! trampoline from a sealed memfd, which then execs the real program. A container file that
//! says `#!/proc/self/exe` therefore reaches the sealed trampoline (which cannot be written),
//! never rrun.
//!
//! The trampoline is 44 bytes of x86-64, written out here by hand:
//! ```text
//!   mov rax, [rsp]            ; argc
//!   cmp rax, 2
//!   jb  fail                  ; nothing to run
//!   mov rdi, [rsp+8]          ; path   = argv[0]
//!   lea rsi, [rsp+16]         ; argv   = &argv[1]
//!   lea rdx, [rsp+rax*8+16]   ; envp   = &argv[argc+1]
//!   mov eax, 59               ; execve
//!   syscall
//! fail:
//!   mov edi, 127
//!   mov eax, 231              ; exit_group
//!   syscall
//! ```

use anyhow::{Result, anyhow};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const CODE: [u8; 44] = [
    0x48, 0x8b, 0x04, 0x24, // mov rax, [rsp]
    0x48, 0x83, 0xf8, 0x02, // cmp rax, 2
    0x72, 0x16, // jb fail
    0x48, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [rsp+8]
    0x48, 0x8d, 0x74, 0x24, 0x10, // lea rsi, [rsp+16]
    0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16]
    0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59
    0x0f, 0x05, // syscall
    0xbf, 0x7f, 0x00, 0x00, 0x00, // fail: mov edi, 127
    0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231
    0x0f, 0x05, // syscall
];

const BASE: u64 = 0x40_0000;
const HEADERS: usize = 64 + 56;

/// A static ELF64 executable: header, one PT_LOAD (R+X) covering the file, the code.
fn image() -> Vec<u8> {
    let total = (HEADERS + CODE.len()) as u64;
    let mut e = Vec::with_capacity(total as usize);
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    e.extend_from_slice(&(BASE + HEADERS as u64).to_le_bytes()); // e_entry
    e.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    e.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    e.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    e.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    e.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    e.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    e.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    e.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    e.extend_from_slice(&total.to_le_bytes()); // p_filesz
    e.extend_from_slice(&total.to_le_bytes()); // p_memsz
    e.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    e.extend_from_slice(&CODE);
    e
}

/// The trampoline in a sealed, close-on-exec memfd. Made before seccomp and the fd cleanup,
/// so only execveat (or execve) is needed afterwards.
pub fn sealed() -> Result<OwnedFd> {
    // SAFETY: memfd_create with a valid name; the fd is ours.
    let fd = unsafe {
        libc::memfd_create(
            c"rrun-dmz".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(anyhow!(
            "memfd_create for the exec trampoline: {}",
            nix::errno::Errno::last()
        ));
    }
    // SAFETY: a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let img = image();
    let n = nix::unistd::write(&fd, &img).map_err(|e| anyhow!("write the exec trampoline: {e}"))?;
    if n != img.len() {
        return Err(anyhow!("write the exec trampoline: short write"));
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our memfd.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    nix::errno::Errno::result(r).map_err(|e| anyhow!("seal the exec trampoline: {e}"))?;
    Ok(fd)
}

/// execve `exe` with `argv`/`envp` through the trampoline. Returns only on failure.
pub fn exec(dmz: &OwnedFd, exe: &CString, argv: &[CString], envp: &[CString]) -> nix::errno::Errno {
    let mut args: Vec<*const libc::c_char> = Vec::with_capacity(argv.len() + 2);
    args.push(exe.as_ptr());
    args.extend(argv.iter().map(|a| a.as_ptr()));
    args.push(std::ptr::null());
    let mut env: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    env.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings; on success this never returns.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            dmz.as_raw_fd(),
            c"".as_ptr(),
            args.as_ptr(),
            env.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    nix::errno::Errno::last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str]) -> i32 {
        let dmz = sealed().unwrap();
        let exe = CString::new(argv[0]).unwrap();
        let args: Vec<CString> = argv[1..]
            .iter()
            .map(|a| CString::new(*a).unwrap())
            .collect();
        let env = vec![CString::new("A=b").unwrap()];
        // SAFETY: the child only execs or exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let e = exec(&dmz, &exe, &args, &env);
                // SAFETY: leave the forked test process at once.
                unsafe { libc::_exit(200 + e as i32 % 50) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, c) => c,
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn trampoline_execs_with_argv0_and_env() {
        assert_eq!(
            run(&[
                "/bin/sh",
                "sh",
                "-c",
                "[ \"$0\" = sh ] && [ \"$A\" = b ] && exit 7"
            ]),
            7
        );
    }

    #[test]
    fn trampoline_fails_cleanly() {
        // No such program: the trampoline's execve fails and it exits 127.
        assert_eq!(run(&["/nonexistent", "x"]), 127);
    }

    #[test]
    fn sealed_cannot_be_written() {
        let dmz = sealed().unwrap();
        let p = format!("/proc/self/fd/{}", dmz.as_raw_fd());
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(w.is_err());
    }
}
