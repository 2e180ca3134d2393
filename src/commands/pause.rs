//! `pause` and `resume`: the v1 freezer or v2 cgroup.freeze.

use crate::state::{Container, Status};
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, id: &str, pause: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    let status = c.status();
    let ok = if pause {
        status == Status::Running || status == Status::Created
    } else {
        status == Status::Paused
    };
    if !ok {
        let msg = if pause {
            "container not running"
        } else {
            "container not paused"
        };
        return Err(crate::error::invalid_state(format!(
            "container {id}: {msg} (it is {})",
            status.as_str()
        )));
    }
    let cg = c
        .saved
        .cgroup
        .as_ref()
        .ok_or_else(|| super::no_cgroup(id))?;
    cg.set_frozen(pause)
}
