//! Link flags of the `berth` binary only (no effect on the dependencies' builds).

fn main() {
    // The binary is a PIE (ASLR for a root daemon): its ~17k relative relocations are applied
    // at every start, including each re-executed shim. Packed (RELR, glibc >= 2.36, GNU ld >=
    // 2.38 or lld >= 15) they take a few kB instead of ~400 kB of .rela.dyn to read.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
