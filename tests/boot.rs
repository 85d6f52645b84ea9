//! System tests of `vmscope boot`: the built-in kernel's output and exit status, the error
//! paths, hand-made PVH kernels for the stop reasons, and the QEMU cross-check (same kernel,
//! same flags: identical console text and exit status).
//!
//! QEMU tests print a visible SKIP when qemu-system-x86_64 is missing, unless
//! VMSCOPE_REQUIRE_QEMU=1 (as in CI), when they fail instead.

mod common;

use common::{qemu_present, stderr, stdout, vmscope, Scratch};

/// A minimal PVH kernel: one RWX PT_LOAD at 1 MiB holding the headers, the Xen
/// PHYS32_ENTRY note and `code`, which runs in 32-bit protected mode.
fn pvh_elf(code: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x10_0000;
    const CODE_OFF: u64 = 0x100;
    let entry = BASE + CODE_OFF;
    let mut f = vec![0u8; CODE_OFF as usize];
    f.extend_from_slice(code);
    let total = f.len() as u64;
    // ELF header.
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little endian
    f[6] = 1; // EV_CURRENT
    let put16 = |f: &mut Vec<u8>, o: usize, v: u16| f[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut Vec<u8>, o: usize, v: u32| f[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |f: &mut Vec<u8>, o: usize, v: u64| f[o..o + 8].copy_from_slice(&v.to_le_bytes());
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 62); // EM_X86_64
    put32(&mut f, 20, 1);
    put64(&mut f, 24, entry);
    put64(&mut f, 32, 0x40); // phoff
    put16(&mut f, 52, 64); // ehsize
    put16(&mut f, 54, 56); // phentsize
    put16(&mut f, 56, 2); // phnum
                          // PT_LOAD.
    let ph = 0x40;
    put32(&mut f, ph, 1);
    put32(&mut f, ph + 4, 7); // RWX
    put64(&mut f, ph + 8, 0);
    put64(&mut f, ph + 16, BASE);
    put64(&mut f, ph + 24, BASE);
    put64(&mut f, ph + 32, total);
    put64(&mut f, ph + 40, total);
    put64(&mut f, ph + 48, 0x1000);
    // PT_NOTE with the Xen note.
    let note = 0xb0usize;
    let ph = 0x40 + 56;
    put32(&mut f, ph, 4);
    put32(&mut f, ph + 4, 4);
    put64(&mut f, ph + 8, note as u64);
    put64(&mut f, ph + 32, 20);
    put64(&mut f, ph + 40, 20);
    put64(&mut f, ph + 48, 4);
    put32(&mut f, note, 4); // namesz
    put32(&mut f, note + 4, 4); // descsz
    put32(&mut f, note + 8, 18); // XEN_ELFNOTE_PHYS32_ENTRY
    f[note + 12..note + 16].copy_from_slice(b"Xen\0");
    put32(&mut f, note + 16, entry as u32);
    f
}

/// `mov eax, v; out 0xf4, eax; hlt`.
fn exit_code_kernel(v: u8) -> Vec<u8> {
    pvh_elf(&[0xb8, v, 0, 0, 0, 0xe7, 0xf4, 0xf4])
}

#[test]
fn boot_prints_banner_memory_map_and_exits_0() {
    let o = vmscope(&["boot"]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{}",
        stderr(&o)
    );
    assert!(out.starts_with("vmscope kernel "), "{out}");
    assert!(out.contains("Command line: \n"), "{out}");
    assert!(
        out.contains("BIOS-e820: [mem 0x0000000000100000-0x0000000007fdffff] usable"),
        "{out}"
    );
    assert!(out.contains("Memory: 130559K usable in 2 ranges"), "{out}");
    assert!(out.contains("initrd: none"), "{out}");
    assert!(out.trim_end().ends_with("Boot OK"), "{out}");
}

#[test]
fn cmdline_initrd_and_ram_size_reach_the_guest() {
    let rd = Scratch::new("initrd", &[0x5a; 12345]);
    let o = vmscope(&[
        "boot",
        "--mem",
        "4G",
        "--cmdline",
        "console=ttyS0 vm.debug=1",
        "--initrd",
        rd.path(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("Command line: console=ttyS0 vm.debug=1\n"),
        "{out}"
    );
    assert!(out.contains("initrd: 12345 bytes"), "{out}");
    assert!(out.contains("4193791K usable in 3 ranges"), "{out}");
}

#[test]
fn boot_is_deterministic() {
    let a = vmscope(&["boot", "--cmdline", "x"]);
    let b = vmscope(&["boot", "--cmdline", "x"]);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.status.code(), b.status.code());
}

fn assert_bad_input(args: &[&str], needle: &str) {
    let o = vmscope(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one line, got: {err}");
    assert!(lines[0].contains(needle), "{args:?}: {err}");
}

#[test]
fn bad_inputs_give_one_line_and_status_2() {
    assert_bad_input(&["boot", "--kernel", "/bin/ls"], "no PVH entry point");
    assert_bad_input(
        &["boot", "--kernel", "/nonexistent/kernel"],
        "cannot read kernel",
    );
    assert_bad_input(&["boot", "--mem", "1M"], "RAM too small");
    let txt = Scratch::new("notelf", b"hello, not an ELF\n");
    assert_bad_input(&["boot", "--kernel", txt.path()], "not an ELF file");
    assert_bad_input(
        &["boot", "--initrd", "/nonexistent/initrd"],
        "cannot read initrd",
    );
    let trunc = Scratch::new("trunc", &exit_code_kernel(0)[..0x60]);
    let o = vmscope(&["boot", "--kernel", trunc.path()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn kernel_too_big_for_ram_is_reported() {
    // The built-in kernel loads at 2 MiB: 2 MiB of RAM cannot hold it.
    assert_bad_input(&["boot", "--mem", "2M"], "RAM too small");
}

#[test]
fn guest_exit_value_is_the_exit_status() {
    let k = Scratch::new("exit7", &exit_code_kernel(7));
    let o = vmscope(&["boot", "--kernel", k.path()]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
}

#[test]
fn triple_fault_stops_with_report_and_status_140() {
    // UD2 with an empty IDT: #UD → #GP (IDT limit) → #DF → shutdown.
    let k = Scratch::new("triple", &pvh_elf(&[0x0f, 0x0b]));
    let o = vmscope(&["boot", "--kernel", k.path()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(140), "{err}");
    assert!(err.contains("triple fault"), "{err}");
    assert!(err.contains("rip=0x100100"), "{err}");
    assert!(err.contains("0f 0b"), "{err}");
    assert!(err.contains("eax=") || err.contains("rax="), "{err}");
}

#[test]
fn unimplemented_instruction_stops_with_status_141() {
    // FBLD (packed BCD load): the one x87 load this CPU model does not implement.
    let k = Scratch::new("fpu", &pvh_elf(&[0xdf, 0x20, 0xf4]));
    let o = vmscope(&["boot", "--kernel", k.path()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(141), "{err}");
    assert!(err.contains("unimplemented instruction"), "{err}");
    assert!(err.contains("df 20"), "{err}");
}

#[test]
fn hlt_with_interrupts_off_stops_with_status_142() {
    let k = Scratch::new("hlt", &pvh_elf(&[0xfa, 0xf4]));
    let o = vmscope(&["boot", "--kernel", k.path()]);
    assert_eq!(o.status.code(), Some(142), "{}", stderr(&o));
}

#[test]
fn instruction_limit_stops_with_status_143() {
    // jmp $ forever.
    let k = Scratch::new("loop", &pvh_elf(&[0xeb, 0xfe]));
    let o = vmscope(&["boot", "--kernel", k.path(), "--max-insns", "1000"]);
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("after 1000 instructions"),
        "{}",
        stderr(&o)
    );
}

/// Run the same machine natively and under QEMU; both must print and exit identically.
fn cross_check(args: &[&str]) {
    let mut native = vec!["boot"];
    native.extend_from_slice(args);
    let mut q = native.clone();
    q.push("--qemu");
    let a = vmscope(&native);
    let b = vmscope(&q);
    assert_eq!(
        stdout(&a),
        stdout(&b),
        "console differs for {args:?}; qemu stderr: {}",
        stderr(&b)
    );
    assert_eq!(
        a.status.code(),
        b.status.code(),
        "exit status differs for {args:?}: {} / {}",
        stderr(&a),
        stderr(&b)
    );
}

#[test]
fn qemu_cross_check_built_in_kernel() {
    if !qemu_present() {
        return;
    }
    let rd = Scratch::new("xinitrd", &[1u8; 70000]);
    cross_check(&[]);
    cross_check(&["--mem", "32M", "--cmdline", "console=ttyS0 loglevel=7 a=b"]);
    cross_check(&["--mem", "4G"]);
    cross_check(&["--mem", "3584M", "--initrd", rd.path()]);
}

#[test]
fn qemu_cross_check_exit_status_and_triple_fault() {
    if !qemu_present() {
        return;
    }
    let k = Scratch::new("xexit", &exit_code_kernel(42));
    cross_check(&["--kernel", k.path()]);
    let t = Scratch::new("xtriple", &pvh_elf(&[0x0f, 0x0b]));
    cross_check(&["--kernel", t.path()]);
}

/// The guest's exception self-test: every case must match the SDM on vmscope, including the
/// cases where QEMU's TCG is known to deviate (`exceptions-strict`).
#[test]
fn guest_exception_selftest_passes_on_vmscope() {
    let o = vmscope(&["boot", "--cmdline", "selftest=exceptions,exceptions-strict"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let cases: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("exception "))
        .collect();
    assert!(cases.len() >= 30, "{out}");
    assert!(cases.iter().all(|l| l.ends_with(" ok")), "{out}");
    for needle in [
        "#DE",
        "#DB",
        "#BP",
        "#UD",
        "#GP(0x0)",
        "#SS(0x0)",
        "#AC(0x0)",
        "#PF(0x15)",
        "#DF(0x0)",
        "#NP(0x202)",
    ] {
        assert!(out.contains(needle), "missing {needle}:\n{out}");
    }
}

/// The same exception cases under QEMU: identical vector, error code, RIP and CR2 lines.
#[test]
fn qemu_cross_check_exception_selftest() {
    if !qemu_present() {
        return;
    }
    cross_check(&["--cmdline", "selftest=exceptions"]);
    cross_check(&["--cmdline", "selftest=exceptions", "--tlb", "off"]);
}

#[test]
fn unimplemented_instruction_can_raise_ud_instead() {
    // FBLD with --unimplemented ud: #UD is delivered; with no IDT that escalates to a
    // triple fault, whose report names #UD first.
    let k = Scratch::new("fpu-ud", &pvh_elf(&[0xdf, 0x20, 0xf4]));
    let o = vmscope(&["boot", "--kernel", k.path(), "--unimplemented", "ud"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(140), "{err}");
    assert!(err.contains("triple fault: #UD"), "{err}");
    assert!(err.contains("unimplemented instruction"), "{err}");
}

/// The kernel turns SMEP and SMAP on at boot (both CPUs advertise them), so that it can
/// touch user memory only through its user-access routines (STAC/CLAC around them).
#[test]
fn guest_kernel_turns_smep_and_smap_on() {
    let want = "SMEP true, SMAP true";
    let o = vmscope(&["boot", "--cmdline", "loglevel=info"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(want), "{}", stdout(&o));
    if qemu_present() {
        let q = vmscope(&["boot", "--qemu", "--cmdline", "loglevel=info"]);
        assert_eq!(q.status.code(), Some(0), "{}", stderr(&q));
        assert!(stdout(&q).contains(want), "QEMU: {}", stdout(&q));
    }
}
