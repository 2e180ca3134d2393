//! Terminals: a pty made inside the container's devpts, its master sent over the
//! `--console-socket` with SCM_RIGHTS (as containerd and conmon expect), the slave made the
//! process's stdio and controlling terminal. Without a console socket, `run` and foreground
//! `exec` receive the master themselves and proxy it to their own stdin/stdout.

use anyhow::{Result, anyhow, bail};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
const TIOCGPTN: libc::c_ulong = 0x8004_5430;
const TIOCSPTLCK: libc::c_ulong = 0x4004_5431;

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a new pty from the devpts instance whose ptmx is `ptmx` (already opened O_RDWR), and
/// its slave through `open_slave(name)`. Both must really be devpts.
pub fn open_pty(ptmx: OwnedFd, open_slave: impl Fn(&str) -> nix::Result<OwnedFd>) -> Result<Pty> {
    let st = nix::sys::statfs::fstatfs(&ptmx).map_err(|e| anyhow!("statfs ptmx: {e}"))?;
    if st.filesystem_type().0 != DEVPTS_SUPER_MAGIC {
        bail!("the container's /dev/pts/ptmx is not on devpts: refusing to use it");
    }
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int.
    let r = unsafe { libc::ioctl(ptmx.as_raw_fd(), TIOCSPTLCK, &mut unlock) };
    nix::errno::Errno::result(r).map_err(|e| anyhow!("unlock pty: {e}"))?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty number into an unsigned int.
    let r = unsafe { libc::ioctl(ptmx.as_raw_fd(), TIOCGPTN, &mut n) };
    nix::errno::Errno::result(r).map_err(|e| anyhow!("get pty number: {e}"))?;
    let name = format!("/dev/pts/{n}");
    let slave = open_slave(&name).map_err(|e| anyhow!("open {name}: {e}"))?;
    let st = nix::sys::statfs::fstatfs(&slave).map_err(|e| anyhow!("statfs {name}: {e}"))?;
    if st.filesystem_type().0 != DEVPTS_SUPER_MAGIC {
        bail!("{name} is not on devpts: refusing to use it");
    }
    clear_onlcr(&slave).map_err(|e| anyhow!("clear ONLCR on {name}: {e}"))?;
    Ok(Pty {
        master: ptmx,
        slave,
    })
}

/// As runc: output lines end in `\n`, not `\r\n` (scripts compare the container's lines).
fn clear_onlcr(fd: &OwnedFd) -> nix::Result<()> {
    // SAFETY: an all-zero termios is a valid buffer for tcgetattr to fill.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr/tcsetattr on a terminal fd we hold, with a termios we own.
    nix::errno::Errno::result(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) })?;
    t.c_oflag &= !libc::ONLCR;
    // SAFETY: as above.
    nix::errno::Errno::result(unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t) })
        .map(drop)
}

pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    nix::errno::Errno::result(r)
        .map(drop)
        .map_err(|e| anyhow!("set the terminal size (process.consoleSize): {e}"))
}

/// Our terminal's size, if we have a terminal with a size.
pub fn get_size(fd: RawFd) -> Option<libc::winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some(ws)
}

/// Send the master over the console socket, with its name as payload (runc's format).
pub fn send_master(sock: RawFd, master: &OwnedFd) -> Result<()> {
    send_fd(sock, master.as_raw_fd(), b"/dev/ptmx")
        .map_err(|e| anyhow!("send the pty master over the console socket: {e}"))
}

/// One fd with SCM_RIGHTS, `name` as the payload (runc sends the file's name).
pub fn send_fd(sock: RawFd, fd: RawFd, name: &[u8]) -> nix::Result<()> {
    let fds = [fd];
    let iov = [IoSlice::new(name)];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
}

/// `--pidfd-socket`: connected before anything is made (a bad path fails first, leaving
/// nothing), used once the process exists.
pub struct PidfdSocket(std::os::unix::net::UnixStream);

impl PidfdSocket {
    pub fn connect(path: Option<&std::path::Path>) -> Result<Option<PidfdSocket>> {
        path.map(|p| {
            std::os::unix::net::UnixStream::connect(p)
                .map(PidfdSocket)
                .map_err(|e| {
                    anyhow!(
                        "connect to --pidfd-socket {}: {}",
                        p.display(),
                        crate::sys::io_errno(&e)
                    )
                })
        })
        .transpose()
    }

    /// Send a pidfd of `pid` (a child or grandchild of ours, not yet reaped).
    pub fn send(&self, pid: i32) -> Result<()> {
        let fd = crate::sys::pidfd_open(pid)
            .map_err(|e| anyhow!("--pidfd-socket: pidfd_open {pid}: {e}"))?;
        send_fd(self.0.as_raw_fd(), fd.as_raw_fd(), b"pidfd")
            .map_err(|e| anyhow!("--pidfd-socket: send the pidfd of {pid}: {e}"))
    }
}

/// Receive one fd sent with SCM_RIGHTS.
pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| anyhow!("receive the pty master: {e}"))?;
    for c in msg
        .cmsgs()
        .map_err(|e| anyhow!("receive the pty master: {e}"))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just gave us this fd.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    bail!("the console socket message carried no fd")
}

/// Where a terminal's master goes: (the fd the process sends it on, our end to receive it).
/// With a console socket, the process sends it there; otherwise (foreground `run`/`exec`)
/// to us over a socketpair. No terminal: neither.
pub fn endpoints(
    terminal: bool,
    socket: Option<&std::path::Path>,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !terminal {
        return Ok((None, None));
    }
    if let Some(p) = socket {
        let s = std::os::unix::net::UnixStream::connect(p).map_err(|e| {
            anyhow!(
                "connect to --console-socket {}: {}",
                p.display(),
                crate::sys::io_errno(&e)
            )
        })?;
        return Ok((Some(OwnedFd::from(s)), None));
    }
    let (a, b) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| anyhow!("socketpair for the terminal: {e}"))?;
    Ok((Some(a), Some(b)))
}

/// In the process: new session, the slave as controlling terminal and as stdio.
pub fn become_tty(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().map_err(|e| anyhow!("setsid: {e}"))?;
    // SAFETY: TIOCSCTTY with an integer argument.
    let r = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(r)
        .map_err(|e| anyhow!("make the pty the controlling terminal: {e}"))?;
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd)
            .map_err(|e| anyhow!("dup2 the pty to fd {fd}: {e}"))?;
    }
    Ok(())
}

/// Raw mode on our own terminal for the proxy; restored on drop.
pub struct RawMode {
    fd: RawFd,
    saved: Option<libc::termios>,
}

impl RawMode {
    pub fn enter(fd: RawFd) -> RawMode {
        // SAFETY: an all-zero termios is a valid buffer for tcgetattr to fill.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr on an fd with a valid buffer.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return RawMode { fd, saved: None };
        }
        let saved = t;
        // SAFETY: cfmakeraw edits the struct in place; tcsetattr reads it.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        RawMode {
            fd,
            saved: Some(saved),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: restoring the attributes we read.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, t) };
        }
    }
}

/// Copy stdin -> master and master -> stdout until the pty closes; SIGWINCH resizes; other
/// signals go to `pid`. Returns the wait status code of `pid` (128+N when killed by N).
pub fn proxy_and_wait(master: OwnedFd, pid: i32) -> Result<i32> {
    use nix::sys::signal::Signal;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let set = crate::process::block_forwarded_signals()?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| anyhow!("signalfd: {e}"))?;
    let _raw = RawMode::enter(0);
    if let Some(ws) = get_size(0) {
        let _ = set_size(master.as_raw_fd(), ws.ws_row, ws.ws_col);
    }
    let m = master.as_raw_fd();
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    let mut status = None;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: m,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: three valid pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) };
        if r < 0 {
            continue;
        }
        if fds[1].revents != 0 {
            match nix::unistd::read(m, &mut buf) {
                Ok(0) | Err(_) => break, // EIO: every slave is closed, the process is gone
                Ok(n) => write_all(1, &buf[..n]),
            }
        }
        if stdin_open && fds[0].revents != 0 {
            match nix::unistd::read(0, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => write_all(m, &buf[..n]),
            }
        }
        if fds[2].revents != 0 {
            while let Ok(Some(si)) = sfd.read_signal() {
                match Signal::try_from(si.ssi_signo as i32) {
                    Ok(Signal::SIGWINCH) => {
                        if let Some(ws) = get_size(0) {
                            let _ = set_size(m, ws.ws_row, ws.ws_col);
                        }
                    }
                    Ok(Signal::SIGCHLD) => {
                        if let Some(code) = crate::process::reap_child(pid) {
                            status = Some(code);
                        }
                    }
                    Ok(s) => {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s);
                    }
                    Err(_) => {}
                }
            }
        }
        if status.is_some() {
            // Drain what the process wrote last.
            while let Ok(n) = nix::unistd::read(m, &mut buf) {
                if n == 0 {
                    break;
                }
                write_all(1, &buf[..n]);
                let mut p = libc::pollfd {
                    fd: m,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut p, 1, 0) } <= 0 {
                    break;
                }
            }
            break;
        }
    }
    drop(master);
    match status {
        Some(c) => Ok(c),
        None => crate::process::wait_forwarding(pid),
    }
}

fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: the fd is open for the duration of the call.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        match nix::unistd::write(b, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => return,
        }
    }
}
