//! System tests of `vmscope run`: PROGRAM validation (bad input is one line and status 2),
//! and, with hand-made PVH kernels standing in for the guest kernel, everything the host
//! side does: the initramfs and command line the kernel receives, COM1 to stdout, COM2 to
//! stderr, and the debugcon report turned into the exit status, on vmscope and identically
//! under QEMU. Then real programs end to end, against the same binaries run natively.
//!
//! QEMU tests print a visible SKIP when qemu-system-x86_64 is missing, unless
//! VMSCOPE_REQUIRE_QEMU=1 (as in CI), when they fail instead.

mod common;

use common::{
    assert_same_text, native_command, pvh_kernel, qemu_present, root, stderr, stdout, vmscope,
    Scratch,
};
use kfs::Ramfs;
use std::ffi::OsStr;
use std::process::Output;
use vmscope::guest::PROGRAMS;
use vmscope::initramfs::RUN_ENV;
use vmscope::run::{initramfs, resolve_program, RUN_CMDLINE};

fn run(args: &[&str]) -> Output {
    let mut v = vec!["run"];
    v.extend_from_slice(args);
    vmscope(&v)
}

fn assert_bad_input(args: &[&str], needle: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}: output on stdout");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one line, got: {err}");
    assert!(lines[0].starts_with("vmscope: error: "), "{args:?}: {err}");
    assert!(lines[0].contains(needle), "{args:?}: {err}");
}

/// A bundled guest program's image as built (the same bytes vmscope embeds).
fn built_program(name: &str) -> Vec<u8> {
    let p = root()
        .join("target/guest-programs/x86_64-unknown-none/release")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn help_describes_program_and_args() {
    let o = vmscope(&["run", "--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "PROGRAM",
        "ARGS",
        "--mem",
        "--kernel",
        "--cmdline",
        "--qemu",
        "--max-insns",
        "--tlb",
        "--fault-trace",
        "144",
    ] {
        assert!(out.contains(needle), "no {needle} in:\n{out}");
    }
    let o = vmscope(&["--help"]);
    assert!(stdout(&o).contains("run"), "{}", stdout(&o));
}

#[test]
fn bad_programs_give_one_line_and_status_2() {
    assert_bad_input(&["/nonexistent/prog"], "cannot read /nonexistent/prog");
    assert_bad_input(&["nosuchprogram"], "no such bundled program");
    let dir = std::env::temp_dir();
    assert_bad_input(&[dir.to_str().unwrap()], "cannot read");
    let txt = Scratch::new("run-text", b"echo not an ELF, no #! line\n");
    assert_bad_input(&[txt.path()], "not an ELF file");
    let empty = Scratch::new("run-empty", b"");
    assert_bad_input(&[empty.path()], "not an ELF file");
    // A script whose interpreter the host does not have, or that is not an executable.
    let script = Scratch::new("run-script", b"#!/nonexistent/interp -x\necho\n");
    assert_bad_input(
        &[script.path()],
        "#! interpreter: cannot read /nonexistent/interp",
    );
    let interp = Scratch::new("run-notelf", b"plain text\n");
    let script = Scratch::new("run-script2", format!("#!{}\n", interp.path()).as_bytes());
    assert_bad_input(&[script.path()], "its interpreter: not an ELF file");
    // A PVH kernel is an ELF64 x86-64 executable, but truncated it is malformed.
    let k = pvh_kernel(&[0xf4]);
    let trunc = Scratch::new("run-trunc", &k[..0x60]);
    assert_bad_input(&[trunc.path()], trunc.path());
    let mut elf32 = built_program("hello");
    elf32[4] = 1;
    let elf32 = Scratch::new("run-elf32", &elf32);
    assert_bad_input(&[elf32.path()], "32-bit");
    // A bad kernel or RAM size for a good program.
    assert_bad_input(
        &["--kernel", "/nonexistent/kernel", "hello"],
        "cannot read kernel",
    );
    assert_bad_input(&["--mem", "1M", "hello"], "RAM too small");
    // Clap's own usage errors use status 2 too.
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
}

// ---- hand-made kernels ---------------------------------------------------------------------

/// `mov dx, port`, then `mov al, b; out dx, al` for each byte.
fn out_bytes(code: &mut Vec<u8>, port: u16, bytes: &[u8]) {
    code.extend_from_slice(&[0x66, 0xba]);
    code.extend_from_slice(&port.to_le_bytes());
    for &b in bytes {
        code.extend_from_slice(&[0xb0, b, 0xee]);
    }
}

/// `h = rol(h + word, 5)` over the module's little-endian 32-bit words, as the
/// [`kernel`] with `dump` computes it (a full dump over a serial port would take long for
/// megabytes).
fn digest(m: &[u8]) -> u32 {
    assert!(
        m.len().is_multiple_of(4),
        "cpio archives are padded to 4 bytes"
    );
    m.chunks_exact(4).fold(0u32, |h, w| {
        h.wrapping_add(u32::from_le_bytes(w.try_into().unwrap()))
            .rotate_left(5)
    })
}

/// Write the command line, a newline, then module 0's size and [`digest`] (4 bytes each,
/// little endian) to COM1.
fn dump_code(code: &mut Vec<u8>) {
    // out dx, al; then three times shr eax, 8; out dx, al
    let out_eax = [
        0xee, 0xc1, 0xe8, 0x08, 0xee, 0xc1, 0xe8, 0x08, 0xee, 0xc1, 0xe8, 0x08, 0xee,
    ];
    code.extend_from_slice(&[
        0x8b, 0x73, 0x18, // mov esi, [ebx+24]      cmdline_paddr
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0x8a, 0x06, // 1: mov al, [esi]
        0x84, 0xc0, // test al, al
        0x74, 0x04, // jz 2f
        0xee, // out dx, al
        0x46, // inc esi
        0xeb, 0xf6, // jmp 1b
        0xb0, b'\n', 0xee, // 2: newline
        0x8b, 0x73, 0x10, // mov esi, [ebx+16]      modlist_paddr
        0x8b, 0x4e, 0x08, // mov ecx, [esi+8]       module 0 size
        0x8b, 0x36, // mov esi, [esi]            module 0 paddr
        0x89, 0xc8, // mov eax, ecx
    ]);
    code.extend_from_slice(&out_eax);
    code.extend_from_slice(&[
        0xc1, 0xe9, 0x02, // shr ecx, 2
        0x31, 0xff, // xor edi, edi
        0xad, // 3: lodsd
        0x01, 0xc7, // add edi, eax
        0xc1, 0xc7, 0x05, // rol edi, 5
        0xe2, 0xf8, // loop 3b
        0x89, 0xf8, // mov eax, edi
    ]);
    code.extend_from_slice(&out_eax);
}

/// A stand-in for the guest kernel: optionally dump what it was given, write `out` to COM1,
/// `err` to COM2 and `report` to debugcon, then `code_tail` (default: isa-debug-exit
/// with `exit`).
fn kernel(
    dump: bool,
    out: &[u8],
    err: &[u8],
    report: &[u8],
    tail: Option<&[u8]>,
    exit: u8,
) -> Vec<u8> {
    let mut code = Vec::new();
    if dump {
        dump_code(&mut code);
    }
    out_bytes(&mut code, 0x3f8, out);
    out_bytes(&mut code, 0x2f8, err);
    out_bytes(&mut code, 0x402, report);
    match tail {
        Some(t) => code.extend_from_slice(t),
        None => code.extend_from_slice(&[0xb8, exit, 0, 0, 0, 0xe7, 0xf4, 0xf4]),
    }
    pvh_kernel(&code)
}

/// `run --kernel K ARGS...` on vmscope, and under QEMU when `qemu`; the same output and
/// status from both, which is returned.
fn run_both(k: &[u8], tag: &str, args: &[&str], qemu: bool) -> Output {
    // Tests run in parallel: the QEMU variant needs its own files.
    let k = Scratch::new(&format!("{tag}-{}", if qemu { "q" } else { "v" }), k);
    let mut v = vec!["--kernel", k.path()];
    v.extend_from_slice(args);
    let a = run(&v);
    if qemu {
        v.insert(0, "--qemu");
        let b = run(&v);
        assert!(
            a.stdout == b.stdout,
            "stdout differs for {args:?} ({} / {} bytes); qemu stderr: {}",
            a.stdout.len(),
            b.stdout.len(),
            stderr(&b)
        );
        assert_eq!(stderr(&a), stderr(&b), "stderr differs for {args:?}");
        assert_eq!(
            a.status.code(),
            b.status.code(),
            "status differs for {args:?}"
        );
    }
    a
}

fn check_statuses(qemu: bool) {
    let cases: [(&[u8], u8, i32); 6] = [
        (b"exit 0\n", 0, 0),
        (b"exit 200\n", 0, 200),
        (b"signal 9\n", 0, 137),
        (b"signal 11\n", 1, 139),
        (b"panic\n", 100, 144),
        (b"exit 1\npanic\n", 0, 144),
    ];
    for (i, (report, exit, want)) in cases.into_iter().enumerate() {
        let k = kernel(false, b"to stdout\n", b"to stderr\n", report, None, exit);
        let o = run_both(&k, &format!("run-status{i}"), &["hello"], qemu);
        assert_eq!(
            o.status.code(),
            Some(want),
            "{:?}: {}",
            String::from_utf8_lossy(report),
            stderr(&o)
        );
        assert_eq!(stdout(&o), "to stdout\n");
        assert_eq!(stderr(&o), "to stderr\n");
    }
}

#[test]
fn debugcon_report_is_the_exit_status() {
    check_statuses(false);
}

#[test]
fn qemu_cross_check_debugcon_report_and_streams() {
    if qemu_present() {
        check_statuses(true);
    }
}

fn check_without_report(qemu: bool) {
    // No report: the isa-debug-exit value, with a warning.
    let k = kernel(false, b"", b"log\n", b"", None, 5);
    let o = run_both(&k, "run-noreport", &["hello"], qemu);
    assert_eq!(o.status.code(), Some(5));
    let err = stderr(&o);
    assert!(
        err.starts_with("log\nvmscope: warning: the kernel did not report"),
        "{err}"
    );
    // A cut-off or unknown line is no report either.
    let k = kernel(false, b"", b"", b"nonsense\nexit 3", None, 6);
    assert_eq!(
        run_both(&k, "run-cutoff", &["hello"], qemu).status.code(),
        Some(6)
    );
    // A triple fault (ud2 without an IDT) and no report: 140, as for `boot`.
    let k = kernel(false, b"", b"", b"", Some(&[0x0f, 0x0b]), 0);
    let kf = Scratch::new(if qemu { "run-triple-q" } else { "run-triple-v" }, &k);
    let mut args = vec!["--kernel", kf.path(), "hello"];
    if qemu {
        args.insert(0, "--qemu");
    }
    let o = run(&args);
    assert_eq!(o.status.code(), Some(140), "{}", stderr(&o));
}

#[test]
fn without_a_report_the_machine_status_counts() {
    check_without_report(false);
    // A report, then a machine stop: the report counts, the stop is still reported.
    let k = kernel(false, b"", b"", b"exit 4\n", Some(&[0xeb, 0xfe]), 0);
    let o = run_both(&k, "run-limit", &["--max-insns", "100000", "hello"], false);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("instruction limit"), "{}", stderr(&o));
}

#[test]
fn qemu_cross_check_without_a_report() {
    if qemu_present() {
        check_without_report(true);
    }
}

/// The kernel gets the run command line and, as module 0, the initramfs: a host program
/// named like the file, arguments with spaces, dashes, an empty one and `--`.
fn check_initramfs(qemu: bool) {
    let k = kernel(true, b"", b"", b"exit 0\n", None, 0);
    let prog = Scratch::new(
        if qemu { "myprog-q" } else { "myprog-v" },
        &built_program("hello"),
    );
    let args = ["a b", "--x", "-y", "", "--"];
    let mut cli = vec!["--cmdline", "loglevel=debug", prog.path()];
    cli.extend_from_slice(&args);
    let o = run_both(&k, "run-dump", &cli, qemu);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // What vmscope must have passed, built by the library...
    let program = resolve_program(OsStr::new(prog.path()), PROGRAMS, None).unwrap();
    let image = initramfs(
        &program,
        &args,
        &vmscope::initramfs::run_env(&[]).unwrap(),
        PROGRAMS,
    )
    .unwrap();
    let mut want = format!("{RUN_CMDLINE} loglevel=debug\n").into_bytes();
    want.extend_from_slice(&(image.len() as u32).to_le_bytes());
    want.extend_from_slice(&digest(&image).to_le_bytes());
    assert_eq!(o.stdout, want);

    // ...and what the kernel will find in it.
    let fs = Ramfs::from_cpio(&image).expect("a valid initramfs");
    let read = |p: &str| fs.data(fs.lookup(p.as_bytes()).unwrap()).unwrap().to_vec();
    let name = std::path::Path::new(prog.path()).file_name().unwrap();
    let bin = format!("/bin/{}", name.to_str().unwrap());
    assert_eq!(read("/etc/vmscope/init"), bin.as_bytes());
    assert_eq!(
        read("/etc/vmscope/argv"),
        format!("{bin}\0a b\0--x\0-y\0\0--\0").as_bytes()
    );
    let env: String = RUN_ENV.iter().map(|e| format!("{e}\0")).collect();
    assert_eq!(read("/etc/vmscope/envp"), env.as_bytes());
    assert_eq!(read(&bin), built_program("hello"));
    for (p, image) in PROGRAMS {
        assert_eq!(read(&format!("/bin/{p}")), *image, "/bin/{p}");
    }
}

#[test]
fn kernel_receives_command_line_and_initramfs() {
    check_initramfs(false);
}

#[test]
fn qemu_cross_check_command_line_and_initramfs() {
    if qemu_present() {
        check_initramfs(true);
    }
}

// ---- the real kernel -----------------------------------------------------------------------

/// `vmscope run PROGRAM ARGS` on vmscope, under QEMU (if present) and natively on the host
/// with the same argv[0] and environment: identical stdout, stderr (`quiet` leaves the
/// program's alone on COM2) and status.
fn e2e(program: &str, args: &[&str]) -> Output {
    e2e_with(program, args, &[])
}

/// [`e2e`], with `native_env` overriding variables of the native run only (`execchain`
/// finds the programs it execs through `VMSCOPE_BIN`, which must name the host's build
/// directory natively and `/bin` in the guest).
fn e2e_with(program: &str, args: &[&str], native_env: &[(&str, &str)]) -> Output {
    let mut v = vec![program];
    v.extend_from_slice(args);
    let a = run(&v);
    let native_bin = root()
        .join("target/guest-programs/x86_64-unknown-none/release")
        .join(program);
    let native = native_command(&native_bin, &format!("/bin/{program}"))
        .args(args)
        .envs(RUN_ENV.iter().map(|e| e.split_once('=').unwrap()))
        .envs(native_env.iter().copied())
        .output()
        .expect("run natively");
    assert_same_text(
        &format!("{program} {args:?}: stdout vs native ({})", stderr(&a)),
        &stdout(&a),
        &stdout(&native),
    );
    assert_same_text(
        &format!("{program} {args:?}: stderr vs native"),
        &stderr(&a),
        &stderr(&native),
    );
    // The shell's convention for a process killed by a signal: 128 + signal.
    let native_status = {
        use std::os::unix::process::ExitStatusExt;
        native
            .status
            .code()
            .or_else(|| native.status.signal().map(|s| 128 + s))
    };
    assert_eq!(
        a.status.code(),
        native_status,
        "{program} {args:?}: {}",
        stderr(&a)
    );
    if qemu_present() {
        let mut q = vec!["--qemu"];
        q.extend_from_slice(&v);
        let b = run(&q);
        assert_eq!(
            a.stdout,
            b.stdout,
            "{program} {args:?} under QEMU: {}",
            stderr(&b)
        );
        assert_eq!(
            stderr(&a),
            stderr(&b),
            "{program} {args:?} under QEMU: stderr"
        );
        assert_eq!(
            a.status.code(),
            b.status.code(),
            "{program} {args:?} under QEMU"
        );
    }
    a
}

#[test]
fn hello_runs_under_the_guest_kernel() {
    let o = e2e("hello", &[]);
    assert_eq!(stdout(&o), "Hello, world!\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn args_exitcode_and_brk_match_the_host() {
    e2e("args", &["x", "second arg", "--flag"]);
    assert_eq!(e2e("exitcode", &[]).status.code(), Some(42));
    assert_eq!(e2e("exitcode", &["300"]).status.code(), Some(44));
    assert_eq!(e2e("exitcode", &["nope"]).status.code(), Some(2));
    e2e("brk", &[]);
}

#[test]
fn a_host_program_runs_from_its_path() {
    let prog = Scratch::new("hostprog", &built_program("exitcode"));
    let o = run(&[prog.path(), "7"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
}

/// Memory: anonymous mmap/munmap/mprotect/mremap/madvise/mincore with caught SIGSEGVs, stack
/// growth, signal delivery for every fault kind, and 7,000 bad pointers that must each give
/// EFAULT (the kernel stays up).
#[test]
fn memory_signal_and_efault_programs_match_the_host() {
    e2e("mmap", &[]);
    e2e("stack", &[]);
    e2e("segv", &[]);
    assert_eq!(e2e("segv", &["uncaught"]).status.code(), Some(139));
    e2e("efault", &[]);
}

/// The vDSO: found through AT_SYSINFO_EHDR, parsed as an ELF shared object, its clocks
/// agreeing with the system calls.
#[test]
fn vdso_program_matches_the_host() {
    e2e("vdso", &[]);
}

/// The vDSO image itself, as built from guest-os/vdso with linker/vdso.ld and embedded in the
/// kernel: what a dynamic loader, a debugger or a libc's vDSO lookup expects of
/// `linux-vdso.so.1` on x86-64, and what the kernel needs to map it unrelocated.
#[test]
fn vdso_image_is_a_relocation_free_shared_object() {
    use goblin::elf::dynamic::{
        DF_TEXTREL, DT_FLAGS, DT_GNU_HASH, DT_HASH, DT_JMPREL, DT_NEEDED, DT_REL, DT_RELA,
        DT_SONAME, DT_STRTAB, DT_SYMTAB, DT_TEXTREL, DT_VERDEF, DT_VERSYM,
    };
    use goblin::elf::header::{EM_X86_64, ET_DYN};
    use goblin::elf::note::NT_GNU_BUILD_ID;
    use goblin::elf::program_header::{
        PF_R, PF_W, PF_X, PT_DYNAMIC, PT_GNU_EH_FRAME, PT_INTERP, PT_LOAD, PT_NOTE,
    };
    use goblin::elf::section_header::{SHT_REL, SHT_RELA};
    use goblin::elf::sym::{STB_GLOBAL, STB_WEAK, STT_FUNC};
    use goblin::elf::Elf;
    use vmscope::guest::{KERNEL, VDSO};

    let elf = Elf::parse(VDSO).expect("the vDSO parses as ELF");
    assert!(elf.is_64 && elf.little_endian);
    assert_eq!(elf.header.e_type, ET_DYN, "a shared object");
    assert_eq!(elf.header.e_machine, EM_X86_64);
    assert_eq!(elf.soname, Some("linux-vdso.so.1"));
    assert!(elf.libraries.is_empty(), "DT_NEEDED: {:?}", elf.libraries);

    // Segments: one R+X PT_LOAD from file offset 0 at address 0 (the kernel maps the file as
    // it is), PT_DYNAMIC, PT_NOTE and PT_GNU_EH_FRAME inside it, no interpreter.
    let ph = &elf.program_headers;
    let loads: Vec<_> = ph.iter().filter(|p| p.p_type == PT_LOAD).collect();
    assert_eq!(loads.len(), 1, "one PT_LOAD: {ph:#?}");
    let load = loads[0];
    assert_eq!((load.p_offset, load.p_vaddr), (0, 0));
    assert_eq!(load.p_filesz, load.p_memsz, "no bss");
    assert_eq!(
        load.p_flags & (PF_R | PF_W | PF_X),
        PF_R | PF_X,
        "read-only, executable"
    );
    assert!(load.p_filesz as usize <= VDSO.len());
    for ty in [PT_DYNAMIC, PT_NOTE, PT_GNU_EH_FRAME] {
        let p = ph
            .iter()
            .find(|p| p.p_type == ty)
            .unwrap_or_else(|| panic!("no program header of type {ty:#x}"));
        assert!(
            p.p_vaddr == p.p_offset && p.p_offset + p.p_filesz <= load.p_filesz,
            "{p:?} is not inside the PT_LOAD"
        );
    }
    assert!(ph.iter().all(|p| p.p_type != PT_INTERP));
    assert!(
        VDSO.len() <= 4 * 4096,
        "{} bytes: more than the kernel's MAX_VDSO_PAGES",
        VDSO.len()
    );

    // Relocation-free: nothing would apply a relocation to the shared, read-only image.
    assert!(elf.dynrelas.is_empty() && elf.dynrels.is_empty() && elf.pltrelocs.is_empty());
    assert!(elf
        .section_headers
        .iter()
        .all(|s| s.sh_type != SHT_RELA && s.sh_type != SHT_REL));
    let dyns = &elf.dynamic.as_ref().expect(".dynamic").dyns;
    let has = |tag: u64| dyns.iter().any(|d| d.d_tag == tag);
    for tag in [
        DT_HASH,
        DT_GNU_HASH,
        DT_SYMTAB,
        DT_STRTAB,
        DT_SONAME,
        DT_VERSYM,
        DT_VERDEF,
    ] {
        assert!(has(tag), "no dynamic tag {tag:#x}");
    }
    for tag in [DT_NEEDED, DT_RELA, DT_REL, DT_JMPREL, DT_TEXTREL] {
        assert!(!has(tag), "dynamic tag {tag:#x} present");
    }
    assert!(dyns
        .iter()
        .all(|d| d.d_tag != DT_FLAGS || d.d_val & DF_TEXTREL == 0));

    // Symbol versions: LINUX_2.6 is defined (besides the base version, named by the soname).
    let verdef = elf.verdef.as_ref().expect(".gnu.version_d");
    let mut linux_26 = None;
    for vd in verdef.iter() {
        for aux in vd.iter() {
            if elf.dynstrtab.get_at(aux.vda_name) == Some("LINUX_2.6") {
                linux_26 = Some(vd.vd_ndx);
            }
        }
    }
    let linux_26 = linux_26.expect("version LINUX_2.6 defined");
    let versym = elf.versym.as_ref().expect(".gnu.version");

    // The exported functions: each __vdso_ name global, and its plain name a weak alias at
    // the same address with the same size, all defined with version LINUX_2.6 and inside
    // the PT_LOAD. Nothing is undefined, and nothing else is exported.
    let mut exported = Vec::new();
    for (i, sym) in elf.dynsyms.iter().enumerate().skip(1) {
        let name = elf.dynstrtab.get_at(sym.st_name).expect("symbol name");
        assert_ne!(sym.st_shndx, 0, "{name} is undefined");
        let v = versym.get_at(i).expect("versym entry");
        assert_eq!(v.version(), linux_26, "{name} has version {}", v.version());
        assert!(
            !v.is_hidden(),
            "{name}@LINUX_2.6 is not the default version"
        );
        exported.push((name, sym));
    }
    let find = |name: &str| {
        exported
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("{name} not in .dynsym"))
    };
    for f in ["clock_gettime", "gettimeofday", "time", "getcpu"] {
        let real = find(&format!("__vdso_{f}"));
        let alias = find(f);
        assert_eq!(real.st_bind(), STB_GLOBAL, "__vdso_{f}");
        assert_eq!(real.st_type(), STT_FUNC, "__vdso_{f}");
        assert!(real.st_size > 0 && real.st_value + real.st_size <= load.p_filesz);
        assert_eq!(alias.st_bind(), STB_WEAK, "{f}");
        assert_eq!(alias.st_type(), STT_FUNC, "{f}");
        assert_eq!(
            (alias.st_value, alias.st_size),
            (real.st_value, real.st_size)
        );
    }
    assert_eq!(
        exported.len(),
        8,
        "exports: {:?}",
        exported.iter().map(|e| e.0)
    );

    // The vvar page: the linker script's vvar_page, one page below the image, where the
    // kernel maps [vvar].
    let vvar = elf
        .syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some("vvar_page"))
        .expect("vvar_page in .symtab");
    assert_eq!(vvar.st_value as i64, -4096);

    // Notes: a build ID (a content hash, so the same sources give the same image) and the
    // Linux version note.
    let notes: Vec<_> = elf
        .iter_note_headers(VDSO)
        .expect("PT_NOTE")
        .map(|n| n.expect("well-formed note"))
        .collect();
    assert!(notes
        .iter()
        .any(|n| n.name == "GNU" && n.n_type == NT_GNU_BUILD_ID && n.desc.len() == 20));
    assert!(notes
        .iter()
        .any(|n| n.name == "Linux" && n.n_type == 0 && n.desc == [0, 1, 6, 0]));

    // And the kernel carries exactly this image.
    assert!(
        KERNEL.windows(VDSO.len()).any(|w| w == VDSO),
        "the kernel image does not embed this vDSO"
    );
}

/// Processes: fork with copy-on-write both ways and a shared mapping, wait statuses (exit
/// codes, SIGSEGV and SIGKILL deaths, WNOHANG, ECHILD), exec chains with close-on-exec and
/// signal dispositions.
#[test]
fn process_programs_match_the_host() {
    e2e("forkcow", &[]);
    e2e("wait", &[]);
    let host_bin = root().join("target/guest-programs/x86_64-unknown-none/release");
    e2e_with(
        "execchain",
        &[],
        &[("VMSCOPE_BIN", host_bin.to_str().unwrap())],
    );
    // The vfork parent is in state D until its child exits or execs, here as on Linux.
    let o = e2e_with("vfork", &[], &[("VMSCOPE_BIN", host_bin.to_str().unwrap())]);
    assert_eq!(
        stdout(&o).matches("parent state D").count(),
        2,
        "{}",
        stdout(&o)
    );
}

/// Open-file descriptions shared by dup, fork and exec, fcntl flags and memfds
/// (`fileshare`); the stat family, *at calls, the working directory, the read-only root's
/// errno order, time calls, rlimits, process groups (`syscalls`); sleeps, poll/select and
/// SA_RESTART (`sleep`); futexes; the alternate signal stack catching a stack overflow;
/// RLIMIT_STACK and RLIMIT_AS (`memlimits`); ENOSYS for numbers without a system
/// call.
#[test]
fn file_and_syscall_programs_match_the_host() {
    let host_bin = root().join("target/guest-programs/x86_64-unknown-none/release");
    let env = [("VMSCOPE_BIN", host_bin.to_str().unwrap())];
    e2e_with("fileshare", &[], &env);
    e2e_with("syscalls", &[], &env);
    e2e("sleep", &[]);
    e2e("futex", &[]);
    e2e("altstack", &[]);
    e2e("memlimits", &[]);
    e2e("enosys", &[]);
}

/// rt_sigreturn with a non-canonical RIP or a bad CS in the frame: SIGSEGV (status 139, or
/// the SIGSEGV handler runs), never a kernel panic; privileged RFLAGS bits are dropped.
#[test]
fn sigreturn_with_a_bad_frame_matches_the_host() {
    assert_eq!(e2e("sigreturn", &[]).status.code(), Some(139));
    let o = e2e("sigreturn", &["caught"]);
    assert!(stdout(&o).contains("si_code 128"), "{}", stdout(&o));
    assert_eq!(e2e("sigreturn", &["cs"]).status.code(), Some(139));
    let o = e2e("sigreturn", &["flags"]);
    assert!(stdout(&o).contains("IOPL 0, NT 0"), "{}", stdout(&o));
    // A non-canonical handler address: entering it faults, as Linux's IRET does.
    assert_eq!(e2e("sigreturn", &["handler"]).status.code(), Some(139));
    assert_eq!(e2e("sigreturn", &["segvhandler"]).status.code(), Some(139));
}

/// Every unimplemented number answers ENOSYS and is logged once, by name (at info level,
/// so `quiet` runs stay silent).
#[test]
fn unimplemented_syscalls_are_logged_once() {
    let o = run(&["--cmdline", "loglevel=info", "enosys"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    for name in [
        "181 (getpmsg)",
        "184 (tuxcall)",
        "236 (vserver)",
        "337 (unknown)",
    ] {
        let line = format!("syscall {name} not implemented");
        assert_eq!(err.matches(&line).count(), 1, "{line} in:\n{err}");
    }
    // Numbers past the table share one line.
    assert_eq!(err.matches("(unknown) not implemented").count(), 1, "{err}");
}

/// Files on the writable root's tmpfs (/tmp): data, names, links, unlinked-while-open,
/// private and shared mappings with SIGBUS past the end; the same natively in a scratch
/// directory of the host.
#[test]
fn file_programs_match_the_host() {
    let dir = std::env::temp_dir().join(format!("vmscope-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = e2e_with("files", &[], &[("FILES_DIR", dir.to_str().unwrap())]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!dir.exists(), "files left its directory behind");
}

/// RLIMIT_NPROC: fork fails with EAGAIN at the limit. Not compared with the host, where
/// root is exempt.
#[test]
fn rlimit_nproc_limits_fork() {
    let o = run(&["rlimit"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "setrlimit NPROC 1: Ok(0)\nfork at the limit: EAGAIN\nbelow the limit fork works; the child at it cannot: true\n"
    );
}

/// [07] The memory-management promises under hostile programs, each compared with the host:
/// a sparse 16 TiB MAP_NORESERVE mapping forked and unmapped, PROT_NONE that the kernel
/// cannot read through (`write` gives EFAULT), MAP_SHARED|MAP_ANONYMOUS memory that stays
/// shared after MADV_DONTNEED and a child's mprotect round trip and is not prefaulted,
/// mincore's argument checks with a 1 TiB length, and VM_MAYWRITE following the open mode.
#[test]
fn hostile_mm_programs_match_the_host() {
    e2e("sparse", &[]);
    e2e("sparse", &["dense"]);
    e2e("protnone", &[]);
    e2e("shmanon", &[]);
    e2e("mincore", &[]);
    let host_bin = root().join("target/guest-programs/x86_64-unknown-none/release");
    e2e_with(
        "mapshared",
        &[],
        &[("VMSCOPE_BIN", host_bin.to_str().unwrap())],
    );
    for prog in ["sparse", "protnone", "shmanon"] {
        let o = run(&["--cmdline", "rmap_check", prog]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{prog}: {err}");
        assert!(
            err.lines()
                .filter(|l| l.starts_with("rmap_check"))
                .all(|l| l.ends_with(", 0 mismatches")),
            "{prog}: {err}"
        );
    }
}

/// The longest system call of `program`'s run named `name`, in guest instructions, from
/// the timeline (whose `dur` is instructions / 1000).
fn longest_syscall(program: &str, name: &str) -> f64 {
    let file = std::env::temp_dir().join(format!(
        "vmscope-run-{}-{program}-timeline.json",
        std::process::id()
    ));
    let o = run(&["--timeline", file.to_str().unwrap(), program]);
    assert_eq!(o.status.code(), Some(0), "{program}: {}", stderr(&o));
    let text = std::fs::read_to_string(&file).expect("read the timeline");
    std::fs::remove_file(&file).ok();
    let v: serde_json::Value = serde_json::from_str(&text).expect("timeline JSON");
    let events = v
        .get("traceEvents")
        .and_then(|e| e.as_array())
        .cloned()
        .or_else(|| v.as_array().cloned())
        .expect("trace events");
    events
        .iter()
        .filter(|e| e["ph"] == "X" && e["name"] == name)
        .filter_map(|e| e["dur"].as_f64())
        .fold(0.0, f64::max)
        * 1000.0
}

/// Unmapping and forking a sparse 16 TiB mapping cost work proportional to the page tables
/// present (a few per touched page), not to the range: each under 100,000 instructions.
#[test]
fn sparse_16tib_fork_and_unmap_are_bounded() {
    const BOUND: f64 = 100_000.0;
    for call in ["fork", "munmap"] {
        let n = longest_syscall("sparse", call);
        assert!(n > 0.0, "no {call} in the timeline");
        assert!(
            n < BOUND,
            "{call} of a sparse 16 TiB mapping took {n} instructions"
        );
    }
}

/// Out of memory: a child that touches more than the machine's memory is killed by the
/// OOM killer with SIGKILL (its parent sees signal 9), with Linux's report on the kernel
/// log; as init, the program itself dies with status 137. Guest only: natively this would
/// exhaust the host.
#[test]
fn out_of_memory_kills_with_sigkill() {
    for mode in [None, Some("uaccess"), Some("shmem")] {
        let o = run(&["oom"].into_iter().chain(mode).collect::<Vec<_>>());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{mode:?}: {err}");
        assert_eq!(
            stdout(&o),
            "child killed by signal 9\nmemory given back: yes\n",
            "{mode:?}: {err}"
        );
        let line = err
            .lines()
            .find(|l| l.contains("Out of memory: Killed process 2 (oom) total-vm:"))
            .unwrap_or_else(|| panic!("{mode:?}: no OOM report in\n{err}"));
        for part in [
            "anon-rss:",
            "file-rss:",
            "shmem-rss:",
            "UID:0 pgtables:",
            "oom_score_adj:0",
        ] {
            assert!(line.contains(part), "{line}");
        }
        assert!(!err.contains("panic"), "{mode:?}: {err}");
        if qemu_present() {
            let q = run(&["--qemu", "oom"]
                .into_iter()
                .chain(mode)
                .collect::<Vec<_>>());
            assert_eq!(
                stdout(&q),
                stdout(&o),
                "{mode:?} under QEMU: {}",
                stderr(&q)
            );
            assert_eq!(q.status.code(), Some(0), "{mode:?} under QEMU");
        }
    }
    let o = run(&["oom", "self"]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert!(stderr(&o).contains("Out of memory: Killed process 1 (oom)"));
    // The largest process dies, not the one that faulted; that one then gets its memory
    // (the killer waits for the victim's exit instead of choosing again).
    let o = run(&["oom", "victim"]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("child killed by signal 9\n"), "{out}");
    assert!(out.contains("grandchild survived\n"), "{out}");
    assert_eq!(
        err.matches("Out of memory: Killed process").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("Out of memory: Killed process 2 (oom)"),
        "{err}"
    );
}

/// execve's argv/envp limits as Linux's (1 MiB of arguments runs, one string of
/// MAX_ARG_STRLEN runs, one byte more and 3 MiB are E2BIG, bad pointers EFAULT), and 200
/// failed execs leave MemFree exactly where it was on the guest kernel. The native run gets
/// a tolerance: a busy host's MemFree moves on its own.
#[test]
fn exec_limits_match_the_host_and_failed_execs_free_their_memory() {
    let host_bin = root().join("target/guest-programs/x86_64-unknown-none/release");
    let o = e2e_with(
        "execlimits",
        &[],
        &[
            ("VMSCOPE_BIN", host_bin.to_str().unwrap()),
            ("EXECLIMITS_TOLERANCE_KB", "1048576"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("MemFree unchanged: yes"));
}

/// The tools that describe the kernel itself read /proc: they are not compared with the
/// host, but must run and show this kernel's view (and the same on QEMU).
#[test]
fn proc_tools_show_the_guest_kernel() {
    let check = |prog: &str, needles: &[&str]| {
        let o = run(&[prog]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{prog}: {out}{}", stderr(&o));
        for n in needles {
            assert!(out.contains(n), "{prog}: no {n:?} in\n{out}");
        }
        if qemu_present() {
            let q = run(&["--qemu", prog]);
            assert_eq!(stdout(&q), out, "{prog} under QEMU");
        }
    };
    check("maps", &["r-xp 00003000 00:02", "/bin/maps", "[stack]"]);
    check("ps", &["PID", "PPID", "/bin/ps"]);
    check("pmap", &["/bin/pmap", "[ stack ]", "total"]);
    check("free", &["total", "Mem:", "Swap:"]);
    check("vmstat", &["procs", "free"]);
    let o = run(&["cat", "/proc/self/smaps"]);
    let smaps = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{smaps}");
    for n in [
        "/bin/cat\nSize:",
        "Rss:",
        "Pss:",
        "Private_Dirty:",
        "VmFlags: rd",
        "[stack]",
    ] {
        assert!(smaps.contains(n), "smaps: no {n:?} in\n{smaps}");
    }
}

/// Reverse mapping: with `rmap_check`, the kernel checks at every exit (and after mremap
/// moves pages) that each private page of the process finds its own PTE by reverse walk, and
/// exactly as many mappings as its mapcount says (shared after fork, moved by mremap).
#[test]
fn reverse_mapping_finds_every_pte() {
    for prog in ["forkcow", "wait", "execchain", "mmap", "stopcont"] {
        let o = run(&["--cmdline", "rmap_check", prog]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{prog}: {err}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("rmap_check"))
            .collect();
        assert!(!lines.is_empty(), "{prog}: no rmap_check report\n{err}");
        for l in lines {
            assert!(
                l.starts_with("rmap_check pid ") && l.ends_with(", 0 mismatches"),
                "{prog}: {l}\n{err}"
            );
        }
    }
}

/// `randomize_va_space`: off by default (runs repeat); at 2 the stack, the mmap area (and
/// the vDSO in it) move with the seed, the same seed gives the same layout, `norandmaps`
/// turns it off, and programs behave the same either way.
#[test]
fn address_space_randomisation_is_a_switch() {
    let maps = |cmdline: &str| {
        let o = run(&["--cmdline", cmdline, "maps"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    let line = |text: &str, tag: &str| -> String {
        text.lines()
            .find(|l| l.ends_with(tag))
            .unwrap_or_else(|| panic!("no {tag} in\n{text}"))
            .to_string()
    };
    let off = maps("");
    assert_eq!(off, maps("randomize_va_space=0"));
    let (a, b) = (
        maps("randomize_va_space=2 aslr_seed=1"),
        maps("randomize_va_space=2 aslr_seed=2"),
    );
    assert_eq!(
        a,
        maps("randomize_va_space=2 aslr_seed=1"),
        "same seed, same layout"
    );
    for tag in ["[stack]", "[vdso]", "[vvar]"] {
        assert_ne!(line(&a, tag), line(&b, tag), "{tag} did not move");
        assert_ne!(line(&a, tag), line(&off, tag), "{tag} did not move");
    }
    assert_eq!(off, maps("randomize_va_space=2 aslr_seed=1 norandmaps"));
    let level = |cmdline: &str| {
        stdout(&run(&[
            "--cmdline",
            cmdline,
            "cat",
            "/proc/sys/kernel/randomize_va_space",
        ]))
    };
    assert_eq!(level(""), "0\n");
    assert_eq!(level("randomize_va_space=2"), "2\n");
    for prog in ["mmap", "forkcow", "brk"] {
        let plain = run(&[prog]);
        let random = run(&["--cmdline", "randomize_va_space=2 aslr_seed=3", prog]);
        assert_eq!(stdout(&plain), stdout(&random), "{prog}");
        assert_eq!(plain.status.code(), random.status.code(), "{prog}");
    }
}

/// The guest kernel's system-call table (`guest-os/src/syscall/table.rs`) names every
/// number as Linux's `asm/unistd_64.h` does: checked against the runtime's list generated
/// from that header (`guest-programs/rt/src/sys/nr.rs`, numbers up to 450), and the later
/// additions by hand.
#[test]
fn the_syscall_table_names_match_linux() {
    let table = std::fs::read_to_string(root().join("guest-os/src/syscall/table.rs")).unwrap();
    let names: Vec<&str> = table
        .lines()
        .filter_map(|l| {
            // `"name", // N` (rustfmt pads the comments into a column).
            let rest = l.trim().strip_prefix('"')?;
            let (name, tail) = rest.split_once('"')?;
            let num = tail.trim_start_matches(',').trim().strip_prefix("//")?;
            let n: usize = num.trim().parse().ok()?;
            Some((n, name))
        })
        .enumerate()
        .map(|(i, (n, name))| {
            assert_eq!(i, n, "table entry {i} is commented as {n}");
            name
        })
        .collect();
    assert!(names.len() >= 462, "only {} entries", names.len());
    let nr = std::fs::read_to_string(root().join("guest-programs/rt/src/sys/nr.rs")).unwrap();
    let mut listed = std::collections::BTreeMap::new();
    for l in nr.lines() {
        if let Some(rest) = l.strip_prefix("pub const SYS_") {
            let (name, num) = rest.split_once(": usize = ").unwrap();
            let n: usize = num.trim_end_matches(';').parse().unwrap();
            listed.insert(n, name);
        }
    }
    let max = *listed.keys().max().unwrap();
    for (n, &have) in names.iter().enumerate().take(max + 1) {
        match listed.get(&n) {
            Some(name) => assert_eq!(have, *name, "syscall {n}"),
            // Holes, except the two numbers Linux 6.11 and 6.16 filled after the header.
            None if n == 335 => assert_eq!(have, "uretprobe"),
            None if n == 336 => assert_eq!(have, "uprobe"),
            None => assert_eq!(have, "", "syscall {n} is a hole in Linux's table"),
        }
    }
    for (n, name) in [
        (451, "cachestat"),
        (452, "fchmodat2"),
        (461, "lsm_list_modules"),
        (462, "mseal"),
    ] {
        assert_eq!(names[n], name);
    }
}
