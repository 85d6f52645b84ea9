//! Links every guest binary with the repository's user linker script
//! (`linker/user.ld`): a static, non-PIE ET_EXEC at 0x400000 with W^X segments.
//!
//! The script is located relative to this package's manifest, so the build
//! works from any working directory (including a nested cargo run by the
//! emulator's build script).

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest_dir.join("../../linker/user.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");

    // Only the freestanding guest target uses our script; a host build (e.g.
    // `cargo check` for the host) keeps the platform's default link.
    if env::var("TARGET").as_deref() == Ok("x86_64-unknown-none") {
        require_static_relocation_model();
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        // Keep the output minimal and reproducible.
        println!("cargo:rustc-link-arg-bins=--build-id=none");
    }
}

/// Fails the build unless the guest-programs/.cargo/config.toml rustflags are
/// in effect. Cargo finds that file from the *current directory*, not from
/// `--manifest-path`; without it rustc silently produces a static-PIE
/// (ET_DYN) that our `_start` does not relocate. Run cargo from
/// `guest-programs/` (e.g. `Command::current_dir`), and do not override
/// `RUSTFLAGS` for this build.
fn require_static_relocation_model() {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').collect();
    let is_static = flags
        .windows(2)
        .any(|w| w == ["-C", "relocation-model=static"])
        || flags.contains(&"-Crelocation-model=static");
    if !is_static {
        panic!(
            "guest programs must be built with `-C relocation-model=static`: run cargo from \
             the guest-programs/ directory so that its .cargo/config.toml applies \
             (got rustflags {flags:?})"
        );
    }
}
