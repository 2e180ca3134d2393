//! rrun: an OCI container runtime, a drop-in replacement for runc.

mod caps;
mod cgroups;
mod cli;
mod commands;
mod console;
mod error;
mod hooks;
mod logging;
mod namespaces;
mod process;
mod rootfs;
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

fn main() {
    fd_hygiene();
    // Rust ignores SIGPIPE; a CLI should die quietly on a closed pipe, and an ignored SIGPIPE
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
        return;
    }
    logging::init(cli.log.clone(), cli.log_format, cli.debug);
    let code = match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&format!("{e:#}"));
            1
        }
    };
    std::process::exit(code);
}
