//! Builds the guest side (guest-os and guest-programs, target x86_64-unknown-none) with a
//! nested `cargo build`, so that one `cargo build`/`cargo test` of the emulator does every
//! step. The images are embedded into the `vmscope` binary (see `src/guest.rs`).
//!
//! Each guest crate is built with its own directory as the working directory, so cargo reads
//! that crate's `.cargo/config.toml` (code model, relocation model), and into its own target
//! directory under the workspace's `target/`, so the flag sets never invalidate each other.
//! The kernel's build script builds the vDSO (guest-os/vdso) first, into `target/guest-vdso`
//! as told here; the emulator embeds that shared object too, for its tests.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "x86_64-unknown-none";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    for p in ["guest-os", "guest-programs"] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(p).join("Cargo.toml").display()
        );
    }
    for p in [
        "guest-os/src",
        "guest-os/mm-core",
        "guest-os/kfs",
        "guest-os/build.rs",
        "guest-os/vdso/src",
        "guest-os/vdso/build.rs",
        "guest-os/vdso/Cargo.toml",
        "guest-os/vdso/Cargo.lock",
        "guest-os/vdso/.cargo/config.toml",
        "guest-os/.cargo/config.toml",
        "guest-os/Cargo.lock",
        "guest-programs/rt",
        "guest-programs/programs",
        "guest-programs/.cargo/config.toml",
        "guest-programs/Cargo.lock",
        "linker",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    ensure_target();
    let os_target = root.join("target").join("guest-os");
    let progs_target = root.join("target").join("guest-programs");
    let vdso_target = root.join("target").join("guest-vdso");
    cargo_build(
        &root.join("guest-os"),
        &os_target,
        &[("VMSCOPE_VDSO_TARGET_DIR", &vdso_target)],
    );
    cargo_build(&root.join("guest-programs"), &progs_target, &[]);

    let kernel = os_target.join(GUEST_TARGET).join("release").join("kernel");
    let vdso = vdso_target.join(GUEST_TARGET).join("release").join("vdso");
    assert!(vdso.exists(), "the vDSO {} was not built", vdso.display());
    let mut programs = Vec::new();
    let bin_dir = root.join("guest-programs/programs/src/bin");
    let mut names: Vec<String> = fs::read_dir(&bin_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", bin_dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    for n in names {
        let path = progs_target.join(GUEST_TARGET).join("release").join(&n);
        assert!(
            path.exists(),
            "guest program {} was not built",
            path.display()
        );
        programs.push((n, path));
    }

    let mut src = String::new();
    src += "/// Path of the guest kernel image at build time.\n";
    src += &format!(
        "pub const KERNEL_PATH: &str = {:?};\n",
        kernel.display().to_string()
    );
    src += "/// The guest kernel ELF image.\n";
    src += &format!(
        "pub static KERNEL: &[u8] = include_bytes!({:?});\n",
        kernel.display().to_string()
    );
    src += "/// The vDSO shared object (linux-vdso.so.1) the kernel embeds.\n";
    src += &format!(
        "pub static VDSO: &[u8] = include_bytes!({:?});\n",
        vdso.display().to_string()
    );
    src += "/// Guest user programs by name.\n";
    src += "pub static PROGRAMS: &[(&str, &[u8])] = &[\n";
    for (n, p) in &programs {
        src += &format!(
            "    ({n:?}, include_bytes!({:?})),\n",
            p.display().to_string()
        );
    }
    src += "];\n";
    fs::write(out.join("guest_images.rs"), src).expect("write guest_images.rs");
}

/// `rustup target add x86_64-unknown-none` when the target's standard library is missing
/// (a toolchain file alone does not install targets when RUSTUP_AUTO_INSTALL=0).
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", GUEST_TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir
        .as_deref()
        .is_some_and(|d| d.join("..").exists() && has_rlibs(d))
    {
        return;
    }
    println!("cargo:warning=installing the {GUEST_TARGET} target with rustup");
    let st = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status();
    match st {
        Ok(s) if s.success() => {}
        _ => panic!(
            "the Rust target {GUEST_TARGET} is not installed and `rustup target add {GUEST_TARGET}` failed"
        ),
    }
}

fn has_rlibs(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("libcore"))
        })
        .unwrap_or(false)
}

/// `cargo build --release --target x86_64-unknown-none` in `dir`, with the outer build's
/// environment (target, flags, profile) removed so it cannot leak into the guest build, and
/// `vars` set.
fn cargo_build(dir: &Path, target_dir: &Path, vars: &[(&str, &Path)]) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
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
            );
        if leaks {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for {}: {e}", dir.display()));
    assert!(
        status.success(),
        "building the guest crate in {} failed",
        dir.display()
    );
}
