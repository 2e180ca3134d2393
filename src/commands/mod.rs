//! One file per verb: orchestration only.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod run;
mod spec;
mod start;
mod state;
mod update;

use crate::cli::{Cli, Cmd};
use anyhow::{Result, bail};
use std::path::PathBuf;

pub fn root(cli: &Cli) -> PathBuf {
    cli.root.clone().unwrap_or_else(crate::state::default_root)
}

pub fn dispatch(cli: &Cli) -> Result<i32> {
    let Some(cmd) = &cli.cmd else {
        bail!("no command given: see rrun --help");
    };
    crate::cgroups::systemd::set_requested(cli.systemd_cgroup);
    if !matches!(cmd, Cmd::Spec(_)) {
        crate::rootless::set(cli.rootless.as_deref())?;
    }
    let root = root(cli);
    match cmd {
        Cmd::Spec(a) => {
            spec::run(a, cli.rootless.as_deref().is_some_and(|v| v != "false")).map(|_| 0)
        }
        Cmd::Create(a) => create::run(&root, &a.opts, &a.id).map(|_| 0),
        Cmd::Start(a) => start::run(&root, &a.id).map(|_| 0),
        Cmd::State(a) => state::run(&root, &a.id).map(|_| 0),
        Cmd::Kill(a) => kill::run(&root, a).map(|_| 0),
        Cmd::Delete(a) => delete::run(&root, a).map(|_| 0),
        Cmd::Run(a) => run::run(&root, a),
        Cmd::List(a) => list::run(&root, a).map(|_| 0),
        Cmd::Pause(a) => pause::run(&root, &a.id, true).map(|_| 0),
        Cmd::Resume(a) => pause::run(&root, &a.id, false).map(|_| 0),
        Cmd::Ps(a) => ps::run(&root, a).map(|_| 0),
        Cmd::Update(a) => update::run(&root, a).map(|_| 0),
        Cmd::Events(a) => events::run(&root, a).map(|_| 0),
        Cmd::Exec(a) => exec::run(&root, a),
        Cmd::Features => features::run().map(|_| 0),
        Cmd::Debug(crate::cli::DebugCmd::Seccomp(a)) => {
            crate::seccomp::dump::run(&a.bundle, a.raw).map(|_| 0)
        }
    }
}

/// A container that is not stopped, and its cgroup (for ps, update, events).
pub fn live_cgroup(
    root: &std::path::Path,
    id: &str,
) -> Result<(crate::state::Container, crate::cgroups::Cgroup)> {
    let c = crate::state::Container::load(root, id)?;
    if c.status() == crate::state::Status::Stopped {
        return Err(crate::error::invalid_state(format!(
            "container {id}: container not running"
        )));
    }
    let cg = c.saved.cgroup.clone().ok_or_else(|| no_cgroup(id))?;
    Ok((c, cg))
}

/// A container without a cgroup: rootless on cgroup v1, or on v2 without a subtree of its
/// user's.
pub fn no_cgroup(id: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "container {id} has no cgroup (rootless, a container gets one only on cgroup v2: in a \
         subtree delegated to its user, or from the user's systemd manager with \
         --systemd-cgroup)"
    )
}
