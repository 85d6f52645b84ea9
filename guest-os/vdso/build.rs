//! Links the vDSO as a shared object with the project's linker script (`linker/vdso.ld`):
//! `-shared` with soname `linux-vdso.so.1`, both hash tables, the symbol version `LINUX_2.6`
//! (from the script's VERSION block) and a build ID.
//!
//! The script sits relative to this package's manifest, so the link does not depend on the
//! directory cargo runs in; the rustflags do (see `.cargo/config.toml`), and
//! [`require_pic`] fails the build when they were not applied.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let script = manifest_dir.join("../../linker/vdso.ld");
    let script = script.canonicalize().unwrap_or(script);
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");

    require_pic();
    for arg in [
        format!("-T{}", script.display()),
        // rustc links a binary of this target as a static PIE; undo that and make a shared
        // object instead.
        "--no-pie".into(),
        "-shared".into(),
        "-soname=linux-vdso.so.1".into(),
        // DT_HASH for old loaders, DT_GNU_HASH for current ones, as Linux's vDSO has.
        "--hash-style=both".into(),
        // The image's own references bind inside it.
        "-Bsymbolic".into(),
        "--no-undefined".into(),
        // A dynamic relocation in the read-only image is an error (nothing would apply it).
        "-z".into(),
        "text".into(),
        // One read-only segment; no PT_GNU_RELRO (the script's PHDRS lists the segments).
        "-z".into(),
        "norelro".into(),
        // A content hash: stable from build to build.
        "--build-id=sha1".into(),
        // No DWARF from the precompiled core; .symtab stays (the kernel reads vvar_page).
        "--strip-debug".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// The last `-C relocation-model=` and `-C code-model=` in effect must be `pic` and `small`:
/// the kernel's .cargo/config.toml (static, kernel) is read too when cargo starts in
/// guest-os/vdso, and a build started elsewhere would miss this package's flags altogether.
fn require_pic() {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').collect();
    let last = |opt: &str| {
        let mut v = None;
        for (i, f) in flags.iter().enumerate() {
            let f = if *f == "-C" {
                flags.get(i + 1).copied().unwrap_or("")
            } else if let Some(rest) = f.strip_prefix("-C") {
                rest
            } else {
                continue;
            };
            if let Some(val) = f.strip_prefix(opt) {
                v = Some(val.to_string());
            }
        }
        v
    };
    let (reloc, model) = (last("relocation-model="), last("code-model="));
    if reloc.as_deref() != Some("pic") || model.as_deref() != Some("small") {
        panic!(
            "the vDSO must be built with `-C relocation-model=pic -C code-model=small`: run \
             cargo from guest-os/vdso/ so that its .cargo/config.toml applies, and do not \
             override RUSTFLAGS (got rustflags {flags:?})"
        );
    }
}
