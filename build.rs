// Embed the git commit for `rrun --version`; pack the relocations of the static-pie binary.
fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RRUN_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");

    // A static-pie binary relocates itself at every start: ~11,500 RELATIVE entries (270 KiB of
    // .rela.dyn, read and applied by _dl_relocate_static_pie) were the largest single cost of the
    // small verbs and a quarter MiB of peak RSS. DT_RELR (binutils >= 2.38, glibc >= 2.36, both
    // in Debian 12) packs them into ~3.5 KiB. Older linkers ignore an unknown -z keyword.
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" && features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
