//! Build script: link the kernel with the project's linker script (`../linker/kernel.ld`) as a
//! static, non-PIE ELF executable.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let script = manifest_dir.join("..").join("linker").join("kernel.ld");
    let script = script.canonicalize().unwrap_or(script);

    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg=-T{}", script.display());
    // A static, non-PIE executable: PT_LOAD p_vaddr/p_paddr are final addresses. Passed here
    // rather than in .cargo/config.toml so linking does not depend on the directory cargo is
    // started from (cargo reads .cargo/config.toml relative to its working directory).
    println!("cargo:rustc-link-arg=--no-pie");
    println!("cargo:rustc-link-arg=-static");
}
