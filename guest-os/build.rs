//! Build script of the kernel:
//!
//! 1. builds the vDSO (`vdso/`, a shared object linked with `../linker/vdso.ld`) with a
//!    nested `cargo build`, and hands its path to the kernel as `VMSCOPE_VDSO_SO`, which
//!    `src/proc/vdso.rs` embeds with `include_bytes!`;
//! 2. links the kernel with `../linker/kernel.ld` as a static, non-PIE ELF executable.
//!
//! The vDSO goes to the target directory named by `VMSCOPE_VDSO_TARGET_DIR` (the emulator's
//! build script sets `target/guest-vdso`, where its tests read the image too), or else to
//! one under this script's `OUT_DIR`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-none";

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

    let vdso = build_vdso(&manifest_dir);
    println!("cargo:rustc-env=VMSCOPE_VDSO_SO={}", vdso.display());
}

/// Builds `vdso/` and returns the path of the shared object.
fn build_vdso(manifest_dir: &Path) -> PathBuf {
    let dir = manifest_dir.join("vdso");
    for p in [
        "src",
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", dir.join(p).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../linker/vdso.ld").display()
    );
    println!("cargo:rerun-if-env-changed=VMSCOPE_VDSO_TARGET_DIR");
    let target_dir = match env::var_os("VMSCOPE_VDSO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("vdso-target"),
    };

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Started in vdso/ so that vdso/.cargo/config.toml (position-independent code) applies.
    cmd.current_dir(&dir)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    // This script runs inside the kernel's cargo build, whose variables (rustflags, target,
    // profile, jobserver) must not reach the vDSO's build.
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let leaks = (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_NET_OFFLINE")
            || k.starts_with("RUSTC")
            || k.starts_with("DEP_")
            || matches!(
                k.as_str(),
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTDOC"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "VMSCOPE_VDSO_TARGET_DIR"
            );
        if leaks {
            cmd.env_remove(&k);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for {}: {e}", dir.display()));
    assert!(
        status.success(),
        "building the vDSO in {} failed",
        dir.display()
    );
    let so = target_dir.join(TARGET).join("release").join("vdso");
    assert!(so.exists(), "the vDSO {} was not built", so.display());
    so
}
