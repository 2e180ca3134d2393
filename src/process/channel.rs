//! The parent <-> init channel: one SOCK_SEQPACKET socketpair, one JSON message per packet,
//! and every wait names the message it expects.
//!
//! | step | from   | message          | meaning                                                   |
//! |------|--------|------------------|-----------------------------------------------------------|
//! | 1    | parent | `Go`             | init is in its cgroup; maps written if clone made a userns |
//! | 2    | init   | `NeedMaps`       | init unshared a user namespace: write its id maps          |
//! | 3    | parent | `MapsWritten`    | done                                                       |
//! | 4    | init   | `Forked{pid}`    | the real init is this child (pid or time namespace)        |
//! | 5    | init   | `RunHooks`       | mounts done, before pivot_root: run prestart/createRuntime |
//! | 6    | parent | `HooksDone{state}` | done; init runs createContainer hooks with that state    |
//! | 7    | init   | `Ready`          | rootfs and process set up; init now waits on exec.fifo     |
//! | any  | init   | `Error{msg}`     | setup failed, with the whole error chain; init exits       |

use anyhow::{Result, anyhow};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, send, socketpair};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ToInit {
    Go,
    MapsWritten,
    HooksDone { state: String },
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ToParent {
    NeedMaps,
    Forked { pid: i32 },
    RunHooks,
    Ready,
    Error { msg: String },
}

pub struct Channel {
    pub fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| anyhow!("socketpair for the init channel: {e}"))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send<T: Serialize>(&self, m: &T) -> Result<()> {
        let data = serde_json::to_vec(m)?;
        send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .map_err(|e| anyhow!("send on the init channel: {e}"))?;
        Ok(())
    }

    /// The next message, or None when the other side closed the channel.
    pub fn recv<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<T>> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(serde_json::from_slice(&buf[..n])?)),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("receive on the init channel: {e}")),
            }
        }
    }

    /// Wait for one named message from the parent.
    pub fn expect(&self, want: ToInit) -> Result<()> {
        match self.recv::<ToInit>()? {
            Some(m) if m == want => Ok(()),
            Some(m) => Err(anyhow!("init channel: expected {want:?}, got {m:?}")),
            None => Err(anyhow!(
                "init channel: the parent went away while init waited for {want:?}"
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
}
