//! Helpers shared by the system tests.

#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

pub const VMSCOPE: &str = env!("CARGO_BIN_EXE_vmscope");

pub fn vmscope(args: &[&str]) -> Output {
    Command::new(VMSCOPE)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run vmscope")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn qemu_present() -> bool {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("VMSCOPE_REQUIRE_QEMU").as_deref() == Ok("1") {
            panic!("qemu-system-x86_64 is required (VMSCOPE_REQUIRE_QEMU=1) but was not found");
        }
        eprintln!("SKIP: qemu-system-x86_64 not found; the QEMU cross-check did not run");
    }
    ok
}

/// A scratch file that is removed afterwards.
pub struct Scratch(PathBuf);
impl Scratch {
    pub fn new(name: &str, data: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!("vmscope-test-{}-{name}", std::process::id()));
        std::fs::write(&p, data).unwrap();
        Scratch(p)
    }
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
