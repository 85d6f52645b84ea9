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

/// A host Linux oracle run of a static guest program: `argv0` as its argv[0], an empty
/// environment, only descriptors 0, 1 and 2 open, and a session of its own, as the guest's
/// init starts a program. Whatever started the test runner must not show through:
/// a CI harness leaves descriptors open without close-on-exec (they are closed in the
/// child, or a program that counts its descriptors, RLIMIT_NOFILE or the lowest free slot,
/// would see them), and may start it in a session whose leader is outside its PID
/// namespace, where `getsid(0)` and `getpgrp()` answer 0 (the child calls `setsid`).
pub fn native_command(bin: &Path, argv0: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin);
    cmd.arg0(argv0).env_clear();
    // SAFETY: setsid and close_range are async-signal-safe and touch only the child.
    // Descriptors are marked close-on-exec rather than closed, so std's exec-error pipe
    // (also above 2) keeps working until the exec itself.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::close_range(
                3,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Asserts that a guest run's text equals the oracle's; on a mismatch the message starts
/// with a line diff (`-` oracle, `+` guest), so the difference survives a log that cuts
/// long messages.
pub fn assert_same_text(what: &str, guest: &str, oracle: &str) {
    if guest == oracle {
        return;
    }
    let diff = similar::TextDiff::from_lines(oracle, guest);
    let mut changes = String::new();
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            let sign = match change.tag() {
                similar::ChangeTag::Equal => continue,
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
            };
            changes.push(sign);
            changes.push_str(change.value());
            if change.missing_newline() {
                changes.push('\n');
            }
        }
    }
    panic!("{what}: differs (- oracle, + guest):\n{changes}\nguest:\n{guest}\noracle:\n{oracle}");
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

/// A minimal PVH kernel: one RWX PT_LOAD at 1 MiB holding the headers, the Xen
/// PHYS32_ENTRY note and `code`, which runs in 32-bit protected mode with EBX pointing at
/// `hvm_start_info`.
pub fn pvh_kernel(code: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x10_0000;
    const CODE_OFF: usize = 0x100;
    const NOTE: usize = 0xb0;
    let entry = BASE + CODE_OFF as u64;
    let mut f = vec![0u8; CODE_OFF];
    f.extend_from_slice(code);
    let total = f.len() as u64;
    let put = |f: &mut Vec<u8>, o: usize, v: &[u8]| f[o..o + v.len()].copy_from_slice(v);
    put(&mut f, 0, b"\x7fELF\x02\x01\x01");
    put(&mut f, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut f, 18, &62u16.to_le_bytes()); // EM_X86_64
    put(&mut f, 20, &1u32.to_le_bytes());
    put(&mut f, 24, &entry.to_le_bytes());
    put(&mut f, 32, &0x40u64.to_le_bytes()); // e_phoff
    put(&mut f, 52, &64u16.to_le_bytes());
    put(&mut f, 54, &56u16.to_le_bytes());
    put(&mut f, 56, &2u16.to_le_bytes());
    // PT_LOAD (RWX) of the whole file, and PT_NOTE with the Xen note.
    let load = [0u64, BASE, BASE, total, total, 0x1000];
    let note = [NOTE as u64, 0, 0, 20, 20, 4];
    for (ph, ty, flags, fields) in [(0x40, 1u32, 7u32, load), (0x40 + 56, 4, 4, note)] {
        put(&mut f, ph, &ty.to_le_bytes());
        put(&mut f, ph + 4, &flags.to_le_bytes());
        for (i, v) in fields.iter().enumerate() {
            put(&mut f, ph + 8 + 8 * i, &v.to_le_bytes());
        }
    }
    put(&mut f, NOTE, &4u32.to_le_bytes()); // namesz
    put(&mut f, NOTE + 4, &4u32.to_le_bytes()); // descsz
    put(&mut f, NOTE + 8, &18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    put(&mut f, NOTE + 12, b"Xen\0");
    put(&mut f, NOTE + 16, &(entry as u32).to_le_bytes());
    f
}
