//! The few error kinds callers branch on. Everything else is an `anyhow` chain with context.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotFound,
    AlreadyExists,
    InvalidState,
    InitFailed,
}

/// A typed error that keeps the phrase shims match on ("does not exist", "container not running").
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub msg: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

pub fn not_found(id: &str) -> anyhow::Error {
    Error {
        kind: Kind::NotFound,
        msg: format!("container \"{id}\" does not exist"),
    }
    .into()
}

pub fn already_exists(id: &str) -> anyhow::Error {
    Error {
        kind: Kind::AlreadyExists,
        msg: format!("container \"{id}\" already exists"),
    }
    .into()
}

pub fn invalid_state(msg: String) -> anyhow::Error {
    Error {
        kind: Kind::InvalidState,
        msg,
    }
    .into()
}

pub fn init_failed(msg: String) -> anyhow::Error {
    Error {
        kind: Kind::InitFailed,
        msg,
    }
    .into()
}

/// The kind of the outermost typed error in a chain, if any.
pub fn kind_of(e: &anyhow::Error) -> Option<Kind> {
    e.chain()
        .find_map(|c| c.downcast_ref::<Error>().map(|e| e.kind))
}

/// The errno inside a chain, if the root cause is an OS error.
pub fn errno_of(e: &anyhow::Error) -> Option<i32> {
    e.chain().find_map(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            .or_else(|| c.downcast_ref::<nix::Error>().map(|n| *n as i32))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kind_survives_context() {
        let e = Err::<(), _>(not_found("x")).context("state").unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::NotFound));
        assert!(format!("{e:#}").contains("does not exist"));
    }

    #[test]
    fn errno_found_in_chain() {
        let e = Err::<(), _>(nix::Error::EPERM)
            .context("mount proc")
            .unwrap_err();
        assert_eq!(errno_of(&e), Some(libc::EPERM));
    }
}
