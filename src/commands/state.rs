//! `state`: the OCI state JSON. Reads state.json without the lock, so it never waits.

use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, id: &str) -> Result<()> {
    crate::state::validate_id(id)?;
    let dir = root.join(id);
    let b = crate::state::read_brief(&dir, id, &mut Vec::new())?;
    let v = b.oci_state(crate::state::derive_status(&b.facts(&dir)));
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
