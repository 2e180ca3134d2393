//! The parent <-> init channel: one SOCK_SEQPACKET socketpair, one JSON message per packet,
//! and every wait names the message it expects.
//!
//! | step | from   | message          | meaning                                                   |
//! |------|--------|------------------|-----------------------------------------------------------|
//! | 1    | parent | `Go`             | maps written if clone made a userns; v2: init is in its cgroup |
//! | 1a   | parent | `Cgroup{tasks}` + fds | v1: the cgroup, made while init set up its namespaces: its `tasks` files |
//! | 2    | init   | `NeedMaps`       | init unshared a user namespace: write its id maps          |
//! | 3    | parent | `MapsWritten`    | done                                                       |
//! | 4    | init   | `Forked{pid}`    | the real init is this child (pid or time namespace)        |
//! | 4a   | init   | `NeedBindSources`| before mounting: bind sources a userns root cannot reach, id-mapped trees |
//! | 4b   | parent | `BindSources{indices}`, `IdmappedTrees{indices}` + fds, then `BindSourcesDone` | |
//! | 5    | init   | `RunHooks`       | mounts done, before pivot_root: run prestart/createRuntime |
//! | 6    | parent | `HooksDone{pid}` | done; init runs createContainer hooks (state with that pid) |
//! | 7    | init   | `Ready`          | rootfs and process set up; init now waits on exec.fifo     |
//! | 7a   | init   | `SeccompListener` + fd | a notify filter is installed: the parent hands its listener to listenerPath |
//! | any  | init   | `Error{msg}`     | setup failed, with the whole error chain; init exits       |

use anyhow::{Result, anyhow};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, send, socketpair};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ToInit {
    Go,
    /// The `tasks` files of the container's v1 cgroups (these paths, for errors), attached
    /// as fds in the same order.
    Cgroup {
        tasks: Vec<std::path::PathBuf>,
    },
    MapsWritten,
    /// The parent ran them; `pid` is init's pid as the host sees it, for the state.
    HooksDone {
        pid: i32,
    },
    /// Bind sources opened in init's mount namespace from the host's user namespace (see
    /// rootfs::prepare_sources): the `mounts` indices, fds attached in the same order.
    BindSources {
        indices: Vec<usize>,
    },
    /// Id-mapped mounts' trees, cloned and mapped by the parent (rootfs::prepare_sources):
    /// the `mounts` indices, detached mount fds attached in the same order.
    IdmappedTrees {
        indices: Vec<usize>,
    },
    /// The helper that prepares them failed (to the parent only, which reports it).
    PrepareFailed {
        msg: String,
    },
    BindSourcesDone,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ToParent {
    NeedMaps,
    Forked {
        pid: i32,
    },
    RunHooks,
    /// Init is about to mount, in a new user namespace: it wants the bind sources.
    NeedBindSources,
    /// Sent with the seccomp notify listener fd attached (SCM_RIGHTS).
    SeccompListener,
    Ready,
    Error {
        msg: String,
    },
}

/// The most fds one message carries (a host has a dozen or so v1 cgroup hierarchies).
pub const MAX_FDS: usize = 32;

pub struct Channel {
    pub fd: OwnedFd,
    /// The fds that arrived with the last message.
    received: std::cell::RefCell<Vec<OwnedFd>>,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| anyhow!("socketpair for the init channel: {e}"))?;
    let ch = |fd| Channel {
        fd,
        received: Default::default(),
    };
    Ok((ch(a), ch(b)))
}

impl Channel {
    pub fn send<T: Serialize>(&self, m: &T) -> Result<()> {
        let data = serde_json::to_vec(m)?;
        send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .map_err(|e| anyhow::Error::new(e).context("send on the init channel"))?;
        Ok(())
    }

    /// Send a message with an fd attached.
    pub fn send_fd<T: Serialize>(&self, m: &T, fd: std::os::fd::RawFd) -> Result<()> {
        self.send_fds(m, &[fd])
    }

    /// Send a message with fds attached (at most [`MAX_FDS`]).
    /// Send (mounts index, fd) pairs as `msg(indices)` messages, at most [`MAX_FDS`] fds
    /// each, the fds attached in the indices' order.
    pub fn send_indexed(
        &self,
        list: &[(usize, OwnedFd)],
        msg: fn(Vec<usize>) -> ToInit,
    ) -> Result<()> {
        for chunk in list.chunks(MAX_FDS) {
            let indices = chunk.iter().map(|(i, _)| *i).collect();
            let fds: Vec<i32> = chunk.iter().map(|(_, f)| f.as_raw_fd()).collect();
            self.send_fds(&msg(indices), &fds)?;
        }
        Ok(())
    }

    pub fn send_fds<T: Serialize>(&self, m: &T, fds: &[std::os::fd::RawFd]) -> Result<()> {
        if fds.len() > MAX_FDS {
            return Err(anyhow!(
                "init channel: {} fds in one message (at most {MAX_FDS})",
                fds.len()
            ));
        }
        let data = serde_json::to_vec(m)?;
        let iov = [std::io::IoSlice::new(&data)];
        nix::sys::socket::sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &[nix::sys::socket::ControlMessage::ScmRights(fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| anyhow::Error::new(e).context("send fds on the init channel"))?;
        Ok(())
    }

    /// The first fd that came with the last message received, if any.
    pub fn take_fd(&self) -> Option<OwnedFd> {
        self.take_fds().into_iter().next()
    }

    /// Every fd that came with the last message received, in the order sent.
    pub fn take_fds(&self) -> Vec<OwnedFd> {
        std::mem::take(&mut *self.received.borrow_mut())
    }

    /// The next message, or None when the other side closed the channel.
    pub fn recv<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<T>> {
        use std::os::fd::FromRawFd;
        // The message's size first (a peek with MSG_TRUNC gives the whole length): a buffer of
        // exactly that, not 64 KiB zeroed in a freshly forked process for a few bytes.
        // ECONNRESET: the other side closed with a message of ours unread. What it sent
        // before closing (its Error) is still queued: the error is cleared by being
        // reported, so read on.
        let mut reset = false;
        let len = loop {
            // SAFETY: a zero-length receive into no buffer; only the length comes back.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_PEEK | libc::MSG_TRUNC,
                )
            };
            match nix::errno::Errno::result(r) {
                Ok(n) => break n as usize,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ECONNRESET) if !reset => reset = true,
                Err(nix::errno::Errno::ECONNRESET) => return Ok(None),
                Err(e) => {
                    return Err(anyhow::Error::new(e).context("receive on the init channel"));
                }
            }
        };
        let mut buf = vec![0u8; len.max(1)];
        loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; MAX_FDS]);
            let (n, fds) = match nix::sys::socket::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for c in msg.cmsgs().into_iter().flatten() {
                        if let nix::sys::socket::ControlMessageOwned::ScmRights(got) = c {
                            // SAFETY: the kernel just gave us these fds.
                            fds.extend(got.iter().map(|f| unsafe { OwnedFd::from_raw_fd(*f) }));
                        }
                    }
                    (msg.bytes, fds)
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context("receive on the init channel"));
                }
            };
            if n == 0 {
                return Ok(None);
            }
            *self.received.borrow_mut() = fds;
            return Ok(Some(serde_json::from_slice(&buf[..n])?));
        }
    }

    /// Wait for one named message from the parent.
    pub fn expect(&self, want: ToInit) -> Result<()> {
        match self.recv::<ToInit>()? {
            Some(m) if m == want => Ok(()),
            Some(m) => Err(anyhow!("init channel: expected {want:?}, got {m:?}")),
            None => Err(anyhow!(
                "init channel: closed by the parent while init waited for {want:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let (a, b) = pair().unwrap();
        a.send(&ToParent::Forked { pid: 42 }).unwrap();
        a.send(&ToParent::Error {
            msg: "mount proc: EPERM".into(),
        })
        .unwrap();
        assert_eq!(
            b.recv::<ToParent>().unwrap(),
            Some(ToParent::Forked { pid: 42 })
        );
        assert_eq!(
            b.recv::<ToParent>().unwrap(),
            Some(ToParent::Error {
                msg: "mount proc: EPERM".into()
            })
        );
        b.send(&ToInit::Go).unwrap();
        a.expect(ToInit::Go).unwrap();
        b.send(&ToInit::MapsWritten).unwrap();
        assert!(a.expect(ToInit::Go).is_err());
        drop(b);
        assert_eq!(a.recv::<ToInit>().unwrap(), None);
    }

    #[test]
    fn several_fds_in_one_message() {
        use std::io::{Read, Seek, Write};
        let (a, b) = pair().unwrap();
        let mut files: Vec<std::fs::File> = (0..12)
            .map(|i| {
                let mut f = tempfile_in_tmp(i);
                write!(f, "file {i}").unwrap();
                f
            })
            .collect();
        let raw: Vec<_> = files.iter().map(|f| f.as_raw_fd()).collect();
        let m = ToInit::Cgroup {
            tasks: (0..12).map(|i| format!("/t{i}").into()).collect(),
        };
        a.send_fds(&m, &raw).unwrap();
        assert_eq!(b.recv::<ToInit>().unwrap(), Some(m));
        let got = b.take_fds();
        assert_eq!(got.len(), 12);
        for (i, fd) in got.into_iter().enumerate() {
            let mut f = std::fs::File::from(fd);
            f.rewind().unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            assert_eq!(s, format!("file {i}"));
        }
        assert!(b.take_fds().is_empty());
        files.clear();
        let too_many = vec![raw[0]; MAX_FDS + 1];
        assert!(a.send_fds(&ToInit::Go, &too_many).is_err());
    }

    fn tempfile_in_tmp(i: usize) -> std::fs::File {
        let p = std::env::temp_dir().join(format!("rrun-chan-{}-{i}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        std::fs::remove_file(&p).unwrap();
        f
    }
}
