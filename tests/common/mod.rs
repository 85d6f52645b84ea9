//! Helpers shared by the system tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo` started in the guest crate `dir` (e.g. "guest-programs"), with the outer test
/// build's CARGO_*/RUSTFLAGS environment removed so it cannot leak into the guest build.
pub fn guest_cargo(dir: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root().join(dir));
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTFLAGS" {
            cmd.env_remove(k);
        }
    }
    cmd
}
