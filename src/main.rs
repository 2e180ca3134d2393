//! rrun: an OCI container runtime, a drop-in replacement for runc.
// No Rust runtime start-up (lang_start): it reads /proc/self/maps for a main-thread stack
// guard, installs SIGSEGV/SIGBUS handlers on an alternate stack, polls fds 0-2 and ignores
// SIGPIPE, all of which rrun either does not need or undoes (fd_hygiene, SIGPIPE). Arguments
// still come from glibc's init_array hook; `std::process::exit` still flushes stdout.
#![cfg_attr(not(test), no_main)]

mod caps;
mod cgroups;
mod cli;
mod commands;
mod console;
mod error;
#[cfg(test)]
mod fuzz;
mod hooks;
mod logging;
mod namespaces;
mod process;
mod rootfs;
mod rootless;
mod sched;
mod seccomp;
mod spec;
mod state;
mod sys;
mod sysctl;
mod util;

/// fds 0-2 must be open, or a file we open could land on them and reach the container as stdio.
fn fd_hygiene() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on a small integer only queries the fd table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: opening /dev/null; the kernel gives the lowest free fd, which is `fd`.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// For the commands that start a container process (create, run, exec): how many of the
/// caller's fds from 3 on it hands over (--preserve-fds, and LISTEN_FDS for socket activation).
fn passed_fds(cli: &cli::Cli) -> Option<u32> {
    let preserve = match &cli.cmd {
        Some(cli::Cmd::Create(a)) => a.opts.preserve_fds,
        Some(cli::Cmd::Run(a)) => a.opts.preserve_fds,
        Some(cli::Cmd::Exec(a)) => a.preserve_fds,
        _ => return None,
    };
    let listen: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(preserve.saturating_add(listen))
}

/// The C entry point (see the crate attributes): run rrun, never return.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    rrun_main();
    0
}

#[cfg_attr(test, allow(dead_code))]
fn rrun_main() {
    fd_hygiene();
    // A CLI should die quietly on a closed pipe, and an ignored SIGPIPE (from our caller)
    // would be inherited by the container's process through execve.
    // SAFETY: setting a default signal disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = cli::parse();
    if cli.version {
        println!(
            "rrun version {}\ncommit: {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            env!("RRUN_COMMIT"),
            spec::OCI_VERSION
        );
        std::process::exit(0);
    }
    // Before rrun opens anything (the --log file included): see util::reserve_passed_fds.
    if let Some(n) = passed_fds(&cli) {
        util::reserve_passed_fds(n);
    }
    logging::init(cli.log.clone(), cli.log_format, cli.debug);
    let code = match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&format!("{e:#}"));
            // runc: an exec that fails (paused container, bad --pid-file, a process that
            // cannot start) exits 255, which engines tell from the process's own status.
            if matches!(cli.cmd, Some(cli::Cmd::Exec(_))) {
                255
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}
