//! Integration tests for rrun: real containers driven through the runc CLI.
//!
//! The tests only use the command-line interface shared by runc and rrun, so
//! the very same suite runs against either binary:
//!
//! ```text
//! RUNTIME=/usr/sbin/runc cargo test --release --test integration -- --test-threads=2
//! RRUN_BIN=target/.../rrun cargo test --release --test integration -- --test-threads=2
//! ```
//!
//! Binary selection: `$RUNTIME`, else `$RRUN_BIN`, else the `rrun` binary that
//! cargo built for this package. The tests need root and the busybox bundle
//! (`make bundles`).
//!
//! Every test builds its own bundle and `--root` state directory under a fresh
//! temporary directory, uses a unique container id and a cgroup under the
//! test-owned `/rrun-test` prefix, and ends with a shared leftover check (state
//! dirs, mounts, cgroups, processes); see `common::TestEnv`.

#[macro_use]
mod common;

mod bad_input;
mod cgroups;
mod crash;
mod cve;
mod exec;
mod features;
mod hooks;
mod idmap;
mod kill_delete;
mod lifecycle;
mod mounts;
mod namespaces;
mod process;
mod rootless;
mod security;
mod terminal;
