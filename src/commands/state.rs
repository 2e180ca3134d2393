//! `state`: the OCI state JSON. Reads state.json without the lock, so it never waits.

use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, id: &str) -> Result<()> {
    crate::state::validate_id(id)?;
    let dir = root.join(id);
    let s = crate::state::read_saved(&dir, id)?;
    let status = crate::state::derive_status(&crate::state::facts(&dir, &s));
    let v = crate::state::oci_state(&s, status);
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
