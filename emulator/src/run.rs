//! `vmscope run PROGRAM [ARGS...]`: which program, the initramfs and command line that
//! start it under the guest kernel, and how its end is reported back.
//!
//! The kernel, when its init process ends, writes one line to isa-debugcon (port 0x402)
//! and then leaves through isa-debug-exit:
//!
//! | line | exit status of vmscope |
//! |---|---|
//! | `exit N` (N = 0..255) | N |
//! | `signal S` (S = 1..127) | 128 + S, the shell's convention |
//! | `panic` | 144 ([`exit_status::KERNEL_PANIC`]) |
//!
//! isa-debug-exit alone cannot carry this: QEMU exits with `(v << 1) | 1` in 8 bits.

use crate::initramfs;
use crate::machine::exit_status;
use goblin::elf::{header, program_header, Elf};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The kernel command line of `vmscope run`, before the user's extra words: no kernel
/// output on COM1 (it carries only the program's stdout), the kernel log on COM2, and the
/// control file naming the program.
pub const RUN_CMDLINE: &str = "quiet console=ttyS1 rdinit=/etc/vmscope/init";

/// [`RUN_CMDLINE`] plus `extra` (if any).
pub fn cmdline(extra: &str) -> String {
    match extra.trim() {
        "" => RUN_CMDLINE.to_string(),
        e => format!("{RUN_CMDLINE} {e}"),
    }
}

/// How the guest kernel said the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEnd {
    Exit(u8),
    Signal(u8),
    Panic,
}

impl GuestEnd {
    /// vmscope's exit status for it (see the module table).
    pub fn status(self) -> i32 {
        match self {
            GuestEnd::Exit(n) => n as i32,
            GuestEnd::Signal(s) => 128 + s as i32,
            GuestEnd::Panic => exit_status::KERNEL_PANIC,
        }
    }

    fn parse(line: &[u8]) -> Option<GuestEnd> {
        let line = std::str::from_utf8(line).ok()?;
        let num = |s: &str| -> Option<u8> {
            // Plain decimal digits only (`str::parse` would take a `+`).
            s.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        match line.split_once(' ') {
            None if line == "panic" => Some(GuestEnd::Panic),
            Some(("exit", n)) => num(n).map(GuestEnd::Exit),
            Some(("signal", s)) => num(s)
                .filter(|s| (1..128).contains(s))
                .map(GuestEnd::Signal),
            _ => None,
        }
    }
}

/// The last well-formed report among the complete lines the guest wrote to debugcon. A
/// line cut short (no newline) or anything else is ignored.
pub fn decode_debugcon(bytes: &[u8]) -> Option<GuestEnd> {
    let complete = &bytes[..bytes.iter().rposition(|&b| b == b'\n')?];
    complete
        .split(|&b| b == b'\n')
        .rev()
        .find_map(GuestEnd::parse)
}

/// The program to run: its name under /bin and its image.
pub struct Program {
    pub name: String,
    pub image: Vec<u8>,
    /// One of the guest programs embedded in vmscope.
    pub bundled: bool,
    /// What it needs besides itself, by guest path: a script's interpreters, a dynamically
    /// linked program's `ld.so` and libraries ([`crate::sysroot`]).
    pub support: crate::sysroot::Files,
}

/// PROGRAM as given: a path if it contains a `/` (then an x86-64 ELF64 executable, static
/// or dynamically linked, or a `#!` script), else the name of a bundled program. The
/// interpreters and libraries a host program needs come from the host, or from `sysroot`.
pub fn resolve_program(
    arg: &OsStr,
    bundled: &[(&str, &[u8])],
    sysroot: Option<&Path>,
) -> Result<Program, String> {
    let bytes = arg.as_bytes();
    if !bytes.contains(&b'/') {
        let name = arg.to_string_lossy();
        return match bundled.iter().find(|(n, _)| *n == name) {
            Some((n, image)) => Ok(Program {
                name: n.to_string(),
                image: image.to_vec(),
                bundled: true,
                support: Default::default(),
            }),
            None => {
                let names: Vec<&str> = bundled.iter().map(|(n, _)| *n).collect();
                Err(format!(
                    "{name}: no such bundled program (bundled: {}; give a path such as ./{name} for a file)",
                    names.join(", ")
                ))
            }
        };
    }
    let path = Path::new(arg);
    let shown = path.display();
    let name = path
        .file_name()
        .ok_or_else(|| format!("{shown}: not a file name"))?
        .to_str()
        .ok_or_else(|| format!("{shown}: the file name is not UTF-8"))?
        .to_string();
    let image = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut support = crate::sysroot::Files::new();
    let root = crate::sysroot::Root(sysroot);
    // A script runs its interpreter (through a chain of scripts, perhaps), which must be an
    // executable the guest can run; it goes into the guest at its own path.
    let chain = crate::sysroot::interpreters(&image, root).map_err(|e| format!("{shown}: {e}"))?;
    let (elf_path, elf) = match chain.last() {
        Some((p, d)) => (p.clone(), d.as_slice()),
        None => (format!("{}/{name}", initramfs::BIN_DIR), image.as_slice()),
    };
    check_elf(elf).map_err(|e| {
        if chain.is_empty() {
            format!("{shown}: {e}")
        } else {
            format!("{shown}: its interpreter: {e}")
        }
    })?;
    crate::sysroot::dependencies(elf, &elf_path, root, &mut support)
        .map_err(|e| format!("{shown}: {e}"))?;
    for (p, d) in chain {
        support.insert(p, d);
    }
    Ok(Program {
        name,
        image,
        bundled: false,
        support,
    })
}

/// Whether `image` is something the guest kernel can exec: an ELF64 little-endian x86-64
/// executable (ET_EXEC, or ET_DYN for PIEs), statically or dynamically linked (its
/// interpreter is then found by [`crate::sysroot`]), whose loadable segments lie inside
/// the file.
pub fn check_elf(image: &[u8]) -> Result<(), String> {
    if image.len() < 6 || &image[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if image[4] != header::ELFCLASS64 {
        return Err("a 32-bit ELF file; vmscope run needs an x86-64 (ELF64) executable".into());
    }
    if image[5] != header::ELFDATA2LSB {
        return Err("a big-endian ELF file; vmscope run needs an x86-64 executable".into());
    }
    // goblin reports malformed input as errors; the guard only keeps a bug there from
    // becoming a crash with a backtrace.
    let parsed = quietly(|| Elf::parse(image).map(|e| summary(&e, image.len())));
    let s = match parsed {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(format!("malformed ELF: {e}")),
        None => return Err("malformed ELF".into()),
    };
    if s.machine != header::EM_X86_64 {
        return Err(format!(
            "built for {} (e_machine {}); vmscope run needs x86-64",
            header::machine_to_str(s.machine),
            s.machine
        ));
    }
    if s.e_type != header::ET_EXEC && s.e_type != header::ET_DYN {
        return Err(format!(
            "not an executable ({})",
            header::et_to_str(s.e_type)
        ));
    }
    if s.loads == 0 {
        return Err("no loadable segments".into());
    }
    if s.load_outside_file {
        return Err("a loadable segment lies outside the file (truncated?)".into());
    }
    Ok(())
}

struct ElfSummary {
    machine: u16,
    e_type: u16,
    loads: usize,
    load_outside_file: bool,
}

fn summary(elf: &Elf, len: usize) -> ElfSummary {
    let phs = &elf.program_headers;
    let loads = phs.iter().filter(|p| p.p_type == program_header::PT_LOAD);
    ElfSummary {
        machine: elf.header.e_machine,
        e_type: elf.header.e_type,
        loads: loads.clone().count(),
        load_outside_file: loads.clone().any(|p| {
            p.p_offset
                .checked_add(p.p_filesz)
                .is_none_or(|end| end > len as u64)
        }),
    }
}

/// `f()`, or `None` if it panics, without the panic message.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(f).ok();
    std::panic::set_hook(hook);
    r
}

/// The initramfs for `program` with `args`: every bundled program in /bin, plus `program`
/// (replacing a bundled one of the same name).
pub fn initramfs(
    program: &Program,
    args: &[impl AsRef<OsStr>],
    env: &[String],
    bundled: &[(&str, &[u8])],
) -> Result<Vec<u8>, String> {
    let mut files: Vec<(&str, &[u8])> = bundled
        .iter()
        .filter(|(n, _)| *n != program.name)
        .copied()
        .collect();
    files.push((&program.name, &program.image));
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_ref().as_bytes()).collect();
    initramfs::run_image(&files, &program.name, &args, env, &program.support)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_last_complete_report() {
        assert_eq!(decode_debugcon(b"exit 0\n"), Some(GuestEnd::Exit(0)));
        assert_eq!(decode_debugcon(b"exit 255\n"), Some(GuestEnd::Exit(255)));
        assert_eq!(decode_debugcon(b"signal 9\n"), Some(GuestEnd::Signal(9)));
        assert_eq!(decode_debugcon(b"panic\n"), Some(GuestEnd::Panic));
        assert_eq!(decode_debugcon(b"exit 0\npanic\n"), Some(GuestEnd::Panic));
        assert_eq!(
            decode_debugcon(b"noise\nexit 7\nmore noise\n"),
            Some(GuestEnd::Exit(7))
        );
        assert_eq!(decode_debugcon(b"exit 7\nexit 8"), Some(GuestEnd::Exit(7)));
        for bad in [
            &b""[..],
            b"exit 3",
            b"exit 256\n",
            b"exit -1\n",
            b"exit +1\n",
            b"exit\n",
            b"exit  1\n",
            b"exit 1 \n",
            b"EXIT 1\n",
            b"signal 0\n",
            b"signal 128\n",
            b"panic \n",
            b"\xff\n",
        ] {
            assert_eq!(
                decode_debugcon(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(GuestEnd::Exit(0).status(), 0);
        assert_eq!(GuestEnd::Exit(200).status(), 200);
        assert_eq!(GuestEnd::Signal(9).status(), 137);
        assert_eq!(GuestEnd::Signal(11).status(), 139);
        assert_eq!(GuestEnd::Panic.status(), 144);
        assert_eq!(cmdline(""), RUN_CMDLINE);
        assert_eq!(
            cmdline(" loglevel=debug "),
            format!("{RUN_CMDLINE} loglevel=debug")
        );
    }

    /// A minimal ELF64 with one PT_LOAD (and PT_INTERP if `interp`).
    fn elf(class: u8, machine: u16, e_type: u16, interp: bool) -> Vec<u8> {
        let phnum: u16 = if interp { 2 } else { 1 };
        let mut v = vec![0u8; 64];
        v[..4].copy_from_slice(b"\x7fELF");
        v[4] = class;
        v[5] = 1;
        v[6] = 1;
        v[16..18].copy_from_slice(&e_type.to_le_bytes());
        v[18..20].copy_from_slice(&machine.to_le_bytes());
        v[20..24].copy_from_slice(&1u32.to_le_bytes());
        v[24..32].copy_from_slice(&0x401000u64.to_le_bytes());
        v[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        v[52..54].copy_from_slice(&64u16.to_le_bytes());
        v[54..56].copy_from_slice(&56u16.to_le_bytes());
        v[56..58].copy_from_slice(&phnum.to_le_bytes());
        let end = 64 + 56 * phnum as u64;
        let ph = |ty: u32, flags: u32, off: u64, size: u64| {
            let mut p = Vec::new();
            p.extend_from_slice(&ty.to_le_bytes());
            p.extend_from_slice(&flags.to_le_bytes());
            for x in [off, 0x400000 + off, 0x400000 + off, size, size, 0x1000] {
                p.extend_from_slice(&x.to_le_bytes());
            }
            p
        };
        if interp {
            v.extend(ph(program_header::PT_INTERP, 4, end, 16));
        }
        v.extend(ph(program_header::PT_LOAD, 5, 0, end + 16));
        v.extend_from_slice(b"/lib/ld-x.so.2\0\0");
        v
    }

    #[test]
    fn accepts_x86_64_executables_only() {
        use header::{EM_386, EM_AARCH64, EM_X86_64, ET_DYN, ET_EXEC, ET_REL};
        assert_eq!(check_elf(&elf(2, EM_X86_64, ET_EXEC, false)), Ok(()));
        assert_eq!(check_elf(&elf(2, EM_X86_64, ET_DYN, false)), Ok(()));
        // Dynamically linked: the interpreter is looked for separately.
        assert_eq!(check_elf(&elf(2, EM_X86_64, ET_EXEC, true)), Ok(()));
        let err = |v: Vec<u8>| check_elf(&v).unwrap_err();
        assert!(err(elf(2, EM_AARCH64, ET_EXEC, false)).contains("needs x86-64"));
        assert!(err(elf(1, EM_386, ET_EXEC, false)).contains("32-bit"));
        assert!(err(elf(2, EM_X86_64, ET_REL, false)).starts_with("not an executable"));
        assert_eq!(err(b"#!/bin/sh\n".to_vec()), "not an ELF file");
        assert_eq!(err(Vec::new()), "not an ELF file");
        let mut big_endian = elf(2, EM_X86_64, ET_EXEC, false);
        big_endian[5] = 2;
        assert!(err(big_endian).contains("big-endian"));
        let mut no_load = elf(2, EM_X86_64, ET_EXEC, false);
        no_load[64..68].copy_from_slice(&program_header::PT_NOTE.to_le_bytes());
        assert_eq!(err(no_load), "no loadable segments");
        let mut outside = elf(2, EM_X86_64, ET_EXEC, false);
        outside[64 + 32..64 + 40].copy_from_slice(&0x10000u64.to_le_bytes()); // p_filesz
        assert!(err(outside).contains("outside the file"));
    }

    #[test]
    fn damaged_elf_files_are_errors_not_panics() {
        let good = elf(2, header::EM_X86_64, header::ET_EXEC, true);
        for cut in 0..good.len() {
            let _ = check_elf(&good[..cut]);
        }
        let mut s = 0x1234_5678u64;
        for _ in 0..2000 {
            let mut v = good.clone();
            for _ in 0..4 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (s >> 33) as usize % v.len();
                v[i] = (s >> 13) as u8;
            }
            let _ = check_elf(&v);
        }
    }

    #[test]
    fn resolves_bundled_names_and_paths() {
        let bundled: [(&str, &[u8]); 2] = [("hello", b"H"), ("args", b"A")];
        let p = resolve_program(OsStr::new("hello"), &bundled, None).unwrap();
        assert_eq!(
            (p.name.as_str(), p.image.as_slice(), p.bundled),
            ("hello", &b"H"[..], true)
        );
        let e = resolve_program(OsStr::new("nope"), &bundled, None)
            .err()
            .unwrap();
        assert_eq!(
            e,
            "nope: no such bundled program (bundled: hello, args; give a path such as ./nope for a file)"
        );
        let e = resolve_program(OsStr::new("/nonexistent/x"), &bundled, None)
            .err()
            .unwrap();
        assert!(e.starts_with("cannot read /nonexistent/x: "), "{e}");
        assert!(resolve_program(OsStr::new("/"), &bundled, None).is_err());

        let dir = std::env::temp_dir().join(format!("vmscope-run-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hello");
        std::fs::write(&file, elf(2, header::EM_X86_64, header::ET_EXEC, false)).unwrap();
        let p = resolve_program(file.as_os_str(), &bundled, None).unwrap();
        assert_eq!((p.name.as_str(), p.bundled), ("hello", false));
        // The user's program replaces the bundled one of the same name.
        let img = initramfs(
            &p,
            &["x"],
            &crate::initramfs::run_env(&[]).unwrap(),
            &bundled,
        )
        .unwrap();
        let fs = kfs::Ramfs::from_cpio(&img).unwrap();
        let hello = fs.lookup(b"/bin/hello").unwrap();
        assert_eq!(fs.data(hello).unwrap(), p.image.as_slice());
        assert!(fs.lookup(b"/bin/args").is_ok());
        let argv = fs.data(fs.lookup(b"/etc/vmscope/argv").unwrap()).unwrap();
        assert_eq!(argv, b"/bin/hello\0x\0");
        std::fs::write(&file, b"text").unwrap();
        let e = resolve_program(file.as_os_str(), &bundled, None)
            .err()
            .unwrap();
        assert_eq!(e, format!("{}: not an ELF file", file.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
