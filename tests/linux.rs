//! Booting Linux kernels: the Linux/x86 boot protocol of `vmscope boot --kernel bzImage`
//! on hand-made bzImages (always run).

mod common;

use common::{stderr, stdout, vmscope, Scratch};

/// Offsets of the setup header (Documentation/arch/x86/boot.rst).
const SETUP_SECTS: usize = 0x1f1;
const BOOT_FLAG: usize = 0x1fe;
const JUMP: usize = 0x200;
const HEADER: usize = 0x202;
const VERSION: usize = 0x206;
const XLOADFLAGS: usize = 0x236;
const CMDLINE_SIZE: usize = 0x238;
const INIT_SIZE: usize = 0x260;
const SECTOR: usize = 512;

/// Code that runs at both entries (no REX prefix: it means the same in 32- and 64-bit
/// mode): if the zero page (ESI/RSI) holds "HdrS" at 0x202, exit with the first byte of the
/// command line (`cmd_line_ptr`, 0x228) minus '0'; else exit with 0x55.
const CHECK_ZERO_PAGE: &[u8] = &[
    0x8b, 0x86, 0x02, 0x02, 0x00, 0x00, // mov eax, [rsi+0x202]
    0x3d, 0x48, 0x64, 0x72, 0x53, // cmp eax, "HdrS"
    0x75, 0x0d, // jne fail
    0x8b, 0x8e, 0x28, 0x02, 0x00, 0x00, // mov ecx, [rsi+0x228]
    0x8a, 0x01, // mov al, [rcx]
    0x2c, 0x30, // sub al, '0'
    0xe6, 0xf4, // out 0xf4, al
    0xf4, // hlt
    0xb0, 0x55, // fail: mov al, 0x55
    0xe6, 0xf4, // out 0xf4, al
    0xf4, // hlt
];

/// A bzImage of boot protocol `protocol` whose protected-mode part holds
/// [`CHECK_ZERO_PAGE`] at offset 0 (the 32-bit entry) and 0x200 (the 64-bit entry);
/// `entry64` sets XLF_KERNEL_64.
fn bzimage(protocol: u16, entry64: bool) -> Vec<u8> {
    let setup_sects = 4;
    let setup_len = (setup_sects + 1) * SECTOR;
    let mut f = vec![0u8; setup_len + 0x1000];
    let put16 = |f: &mut Vec<u8>, o: usize, v: u16| f[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut Vec<u8>, o: usize, v: u32| f[o..o + 4].copy_from_slice(&v.to_le_bytes());
    f[SETUP_SECTS] = setup_sects as u8;
    put16(&mut f, BOOT_FLAG, 0xaa55);
    f[JUMP] = 0xeb;
    f[JUMP + 1] = 0x6a; // the header ends at 0x26c, as in Linux 6.1
    f[HEADER..HEADER + 4].copy_from_slice(b"HdrS");
    put16(&mut f, VERSION, protocol);
    put16(&mut f, XLOADFLAGS, entry64 as u16);
    put32(&mut f, CMDLINE_SIZE, 2047);
    put32(&mut f, INIT_SIZE, 0x10_0000);
    let pm = setup_len;
    f[pm..pm + CHECK_ZERO_PAGE.len()].copy_from_slice(CHECK_ZERO_PAGE);
    f[pm + 0x200..pm + 0x200 + CHECK_ZERO_PAGE.len()].copy_from_slice(CHECK_ZERO_PAGE);
    f
}

#[test]
fn bzimage_64bit_entry_gets_the_zero_page_and_command_line() {
    let k = Scratch::new("bz64", &bzimage(0x020f, true));
    let o = vmscope(&["boot", "--kernel", k.path(), "--cmdline", "7 console=ttyS0"]);
    assert_eq!(o.status.code(), Some(7), "{}{}", stdout(&o), stderr(&o));
    // The entry ran in 64-bit mode: the stop report of a run cut short says so.
    let o = vmscope(&[
        "boot",
        "--kernel",
        k.path(),
        "--cmdline",
        "7",
        "--max-insns",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(stderr(&o).contains("mode=64-bit"), "{}", stderr(&o));
}

#[test]
fn bzimage_without_xlf_kernel_64_enters_in_32bit_mode() {
    let k = Scratch::new("bz32", &bzimage(0x020b, false));
    let o = vmscope(&["boot", "--kernel", k.path(), "--cmdline", "5"]);
    assert_eq!(o.status.code(), Some(5), "{}{}", stdout(&o), stderr(&o));
    let o = vmscope(&["boot", "--kernel", k.path(), "--max-insns", "1"]);
    assert!(stderr(&o).contains("mode=protected"), "{}", stderr(&o));
}

#[test]
fn bad_bzimages_give_one_line_and_status_2() {
    let check = |img: &[u8], needle: &str, extra: &[&str]| {
        let k = Scratch::new("badbz", img);
        let mut args = vec!["boot", "--kernel", k.path()];
        args.extend_from_slice(extra);
        let o = vmscope(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.lines().filter(|l| !l.is_empty()).count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    };
    let mut img = bzimage(0x020f, true);
    img[BOOT_FLAG] = 0;
    check(&img, "boot flag", &[]);
    check(&bzimage(0x0201, true), "older than 2.02", &[]);
    let mut img = bzimage(0x020f, true);
    img[SETUP_SECTS] = 100;
    check(&img, "malformed bzImage", &[]);
    // A truncated header: "HdrS" present, the rest of the header missing.
    check(&bzimage(0x020f, true)[..0x210], "not a bzImage", &[]);
    let long = "x".repeat(3000);
    check(
        &bzimage(0x020f, true),
        "command line is 3000 bytes",
        &["--cmdline", &long],
    );
    let mut img = bzimage(0x020f, true);
    img[INIT_SIZE + 3] = 0x40; // init_size of 1 GiB
    check(&img, "RAM too small", &[]);
}

// ---- Debian's own kernel -----------------------------------------------------------------
//
// The kernel is the newest `/boot/vmlinuz-*` (`.ci/run` installs Debian's
// `linux-image-amd64`), or VMSCOPE_LINUX_KERNEL. Without one these tests print a visible
// SKIP, unless VMSCOPE_REQUIRE_LINUX=1 (as in CI), when they fail instead.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The bzImage to boot, if there is one.
fn debian_kernel() -> Option<PathBuf> {
    let found = std::env::var_os("VMSCOPE_LINUX_KERNEL")
        .map(PathBuf::from)
        .or_else(|| {
            let mut k: Vec<PathBuf> = std::fs::read_dir("/boot")
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("vmlinuz-"))
                })
                .collect();
            k.sort();
            k.pop()
        })
        .filter(|p| p.is_file());
    if found.is_none() {
        if std::env::var("VMSCOPE_REQUIRE_LINUX").as_deref() == Ok("1") {
            panic!("a Linux kernel is required (VMSCOPE_REQUIRE_LINUX=1): install linux-image-amd64 or set VMSCOPE_LINUX_KERNEL");
        }
        eprintln!("SKIP: no /boot/vmlinuz-* (apt install linux-image-amd64); the Linux boot tests did not run");
    }
    found
}

/// The ELF kernel inside a bzImage (unpacked as vmscope's loader unpacks it for its
/// symbols), written once per test run: its PVH note boots it without the decompressor's
/// billions of instructions, as `qemu -kernel vmlinux` does.
fn kernel_elf(bz: &Path) -> &'static Path {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let img = std::fs::read(bz).expect("read the kernel");
        let elf = vmscope::boot::bzimage::inner_elf(&img)
            .expect("an xz-compressed kernel (CONFIG_KERNEL_XZ) holding an ELF");
        let out = std::env::temp_dir().join(format!("vmscope-test-{}-vmlinux", std::process::id()));
        std::fs::write(&out, &elf).unwrap();
        out
    })
}

/// What /init prints: busybox applets in pipelines, /proc and /sys read, one second
/// slept; then it writes 0 to isa-debug-exit (port 0xf4) through /dev/port, which ends the
/// run with status 0 on vmscope and on QEMU.
const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "== user space: $(uname -sr)"
echo "hello from busybox" | tr a-z A-Z | rev
seq 1 100 | awk '{s += $1} END {print "sum", s}'
grep -c ^processor /proc/cpuinfo
grep MemTotal /proc/meminfo
ls /sys/bus/pci/devices | wc -l
test -c /dev/ttyS0 && echo "ttyS0 present"
sleep 1
echo "== slept"
printf '\000' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
echo "isa-debug-exit did not stop the machine"
"#;

/// `name` keeps the scratch files of tests running at once apart.
fn busybox_initramfs(name: &str) -> Scratch {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (/bin/busybox)");
    let mut w = vmscope::initramfs::CpioWriter::new();
    w.dir("/bin", 0o755).unwrap();
    w.file("/bin/busybox", 0o755, &busybox).unwrap();
    w.file("/init", 0o755, INIT_SCRIPT.as_bytes()).unwrap();
    Scratch::new(&format!("linux-initrd-{name}"), &w.finish())
}

/// A console with the kernel's timestamps masked.
fn masked(console: &str) -> String {
    console
        .lines()
        .map(|l| {
            let l = l.trim_end_matches('\r');
            match (l.starts_with('['), l.find("] ")) {
                (true, Some(i)) if i < 16 => format!("[T]{}", &l[i + 1..]),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Kernel-log lines that depend on QEMU's *host* timing (README, "Differences from
/// QEMU"): under TCG the PIT follows the host clock and the TSC the host's cycle counter,
/// so Linux's TSC calibration fails there and succeeds on vmscope (whose clocks both follow
/// the instruction count), with everything that follows from the clocksource; the APIC
/// timer check; the RTC's second at the moment it is read.
const HOST_TIMING_LINES: &[&str] = &[
    "tsc: ",
    "Calibrating delay loop",
    "BogoMIPS",
    // The clocksource lines, and the clocksource watchdog's when QEMU's host is busy.
    "clocksource:",
    // What a busy host does to QEMU's guest: long timer interrupts, RCU stall reports.
    "hrtimer: interrupt took",
    "rcu: INFO:",
    "sched: RT throttling",
    "sched_clock: Marking stable",
    "Unstable clock detected",
    "If you want to keep using the local clock",
    "\"trace_clock=local\"",
    "on the kernel command line",
    "APIC timer disabled due to verification failure",
    "rtc_cmos rtc_cmos: setting system clock",
];

/// Kernel-log lines whose *place* moves with timing (asynchronous work: the initramfs
/// unpacking, the audit record, the RTC's platform device probe, the keyboard's input
/// line that kseriod prints while rtc_cmos probes: QEMU 7.2 alone, run twice with the
/// same `-cpu`, prints it before or after "rtc_cmos rtc_cmos: registered as rtc0"):
/// compared by count, not by position.
const MOVING_LINES: &[&str] = &[
    "audit: type=2000",
    "Freeing initrd memory",
    "platform rtc_cmos: registered platform RTC device",
    // kseriod prints it while rtc_cmos probes: on a loaded host QEMU's comes after
    // "rtc_cmos rtc_cmos: registered as rtc0" (with one CPU as with four).
    "input: AT Translated Set 2 keyboard",
];

/// How many kernel-log lines hold each of [`MOVING_LINES`].
fn moving_counts(console: &str) -> Vec<usize> {
    moving_counts_of(console, MOVING_LINES)
}

/// How many kernel-log lines hold each of `patterns`.
fn moving_counts_of(console: &str, patterns: &[&str]) -> Vec<usize> {
    patterns
        .iter()
        .map(|p| {
            masked(console)
                .lines()
                .filter(|l| l.starts_with("[T]") && l.contains(p))
                .count()
        })
        .collect()
}

/// The input layer numbers its devices (`input0`, `input1`, ...) in the order their
/// probes finish; the i8042's keyboard and aux-port probes run asynchronously
/// (kseriod), so on a busy host QEMU's keyboard may come second. The number is masked.
fn mask_input_number(line: &str) -> String {
    const DIR: &str = "/input/input";
    match line.find(DIR) {
        Some(i) => {
            let digits = line[i + DIR.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{}{DIR}N{digits}", &line[..i])
        }
        None => line.to_string(),
    }
}

/// The kernel log of a console, timestamps masked, without [`HOST_TIMING_LINES`].
fn kernel_log(console: &str) -> String {
    kernel_log_without(console, &[])
}

/// [`kernel_log`], also without the lines holding one of `more`.
fn kernel_log_without(console: &str, more: &[&str]) -> String {
    masked(console)
        .lines()
        .filter(|l| l.starts_with("[T]"))
        .filter(|l| {
            !HOST_TIMING_LINES
                .iter()
                .chain(MOVING_LINES)
                .chain(more)
                .any(|p| l.contains(p))
        })
        .map(mask_input_number)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn input_device_numbers_are_masked() {
    assert_eq!(
        mask_input_number("[T] input: AT kbd as /devices/platform/i8042/serio0/input/input12"),
        "[T] input: AT kbd as /devices/platform/i8042/serio0/input/inputN"
    );
    assert_eq!(mask_input_number("[T] other"), "[T] other");
}

/// The user-space part of a console: from the first line /init prints.
fn user_lines(console: &str) -> Vec<String> {
    masked(console)
        .lines()
        .skip_while(|l| !l.starts_with("== user space"))
        .filter(|l| !l.starts_with("[T]"))
        .map(str::to_string)
        .collect()
}

#[test]
fn debian_kernel_boots_to_busybox_init() {
    let Some(bz) = debian_kernel() else { return };
    let elf = kernel_elf(&bz);
    let rd = busybox_initramfs("elf");
    let args = [
        "boot",
        "--kernel",
        elf.to_str().unwrap(),
        "--initrd",
        rd.path(),
        "--cmdline",
        "console=ttyS0",
    ];
    let dir = std::env::temp_dir();
    let file = |name: &str| dir.join(format!("vmscope-test-{}-{name}", std::process::id()));
    let (ft_a, ft_b, it_b, it_c) = (file("ft-a"), file("ft-b"), file("it-b"), file("it-c"));
    let with = |extra: &[&str]| {
        let mut v: Vec<&str> = args.to_vec();
        v.extend_from_slice(extra);
        vmscope(&v)
    };
    let o = with(&["--fault-trace", ft_a.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    let user = user_lines(&out);
    assert!(user.iter().any(|l| l == "XOBYSUB MORF OLLEH"), "{out}");
    assert!(user.iter().any(|l| l == "sum 5050"), "{out}");
    assert!(user.iter().any(|l| l == "== slept"), "{out}");
    for bad in ["Call Trace", "unchecked MSR", "BUG:", "Oops", "WARNING:"] {
        assert!(!out.contains(bad), "{bad} in the kernel log:\n{out}");
    }

    // Linux's own page faults in the fault trace, attributed to its tasks (from the
    // kernel's BTF): the first anonymous write fault of a user program (error code 6:
    // user, write, not present) above busybox's image (its heap or stack: a write to its
    // data segment would be a file page's COW instead).
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let image_end = goblin::elf::Elf::parse(&busybox)
        .unwrap()
        .program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|p| p.p_vaddr + p.p_memsz)
        .max()
        .unwrap();
    let trace_a = std::fs::read_to_string(&ft_a).unwrap();
    let hex = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
    };
    let first = trace_a
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| {
            e["event"] == "delivery"
                && e["vector"] == 14
                && e["cpl"] == 3
                && e["error_code"] == 6
                && e["pid"].as_u64().is_some_and(|p| p > 0)
                && hex(&e["cr2"]).is_some_and(|a| a > (image_end + 0xfff) & !0xfff)
        })
        .expect("an anonymous write fault of a user program");
    assert!(
        first["comm"].as_str().is_some_and(|c| !c.is_empty()),
        "{first}"
    );
    assert!(first["cr2"].as_str().is_some(), "{first}");
    let at = format!("@{}", first["icount"].as_u64().unwrap());

    // The kernel's path through that fault, symbolized from the image's own kallsyms;
    // tracing changes nothing (same console, same fault trace), and twice gives the same
    // instruction trace.
    let trace_args = ["--trace-start", &at, "--trace-limit", "6000"];
    let mut b_args = vec![
        "--fault-trace",
        ft_b.to_str().unwrap(),
        "--trace",
        it_b.to_str().unwrap(),
    ];
    b_args.extend_from_slice(&trace_args);
    let b = with(&b_args);
    assert_eq!(stdout(&b), out, "a traced run printed another console");
    assert_eq!(
        std::fs::read_to_string(&ft_b).unwrap(),
        trace_a,
        "two fault traces differ"
    );
    let mut c_args = vec!["--trace", it_c.to_str().unwrap()];
    c_args.extend_from_slice(&trace_args);
    let c = with(&c_args);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    let itrace = std::fs::read_to_string(&it_b).unwrap();
    assert_eq!(
        std::fs::read_to_string(&it_c).unwrap(),
        itrace,
        "two instruction traces differ"
    );
    let first_line = itrace.lines().next().unwrap_or("");
    assert!(first_line.contains("<asm_exc_page_fault>"), "{first_line}");
    // do_anonymous_page is inlined into __handle_mm_fault in Debian's build; its calls
    // (the anon_vma, the folio allocation, the new anonymous rmap) show where it runs.
    for f in [
        "<exc_page_fault",
        "<do_user_addr_fault",
        "<handle_mm_fault",
        "<__handle_mm_fault",
        "<vma_alloc_folio",
        "<page_add_new_anon_rmap",
    ] {
        assert!(
            itrace.contains(f),
            "{f} not in the instruction trace:\n{}",
            &itrace[..itrace.len().min(20000)]
        );
    }
    for f in [ft_a, ft_b, it_b, it_c] {
        let _ = std::fs::remove_file(f);
    }

    if common::qemu_present() {
        let mut q = args.to_vec();
        q.push("--qemu");
        let qo = vmscope(&q);
        let qout = stdout(&qo);
        assert_eq!(qo.status.code(), Some(0), "{qout}\n{}", stderr(&qo));
        common::assert_same_text(
            "user-space output",
            &user.join("\n"),
            &user_lines(&qout).join("\n"),
        );
        common::assert_same_text(
            "kernel log (timestamps masked, host-timing lines left out)",
            &kernel_log(&out),
            &kernel_log(&qout),
        );
        assert_eq!(
            moving_counts(&out),
            moving_counts(&qout),
            "{MOVING_LINES:?}"
        );
    }
}

/// With several CPUs, what else follows QEMU's host timing: an AP's delay-loop
/// calibration (vmscope's TSC is stable and calibrated, so Linux skips it).
const SMP_HOST_TIMING_LINES: &[&str] = &["calibrate_delay_direct()"];

/// `--cpus 4`: the BSP brings up three APs through INIT-SIPI-SIPI and the real-mode
/// trampoline; user space sees four processors; two runs give byte-identical consoles
/// and fault traces (the CPUs are interleaved deterministically), every CPU appears in
/// the trace; and the console is QEMU's with `-smp 4,sockets=4`.
#[test]
fn debian_kernel_boots_with_4_cpus() {
    let Some(bz) = debian_kernel() else { return };
    let elf = kernel_elf(&bz);
    let rd = busybox_initramfs("smp4");
    let args = [
        "boot",
        "--cpus",
        "4",
        "--kernel",
        elf.to_str().unwrap(),
        "--initrd",
        rd.path(),
        "--cmdline",
        "console=ttyS0",
    ];
    let dir = std::env::temp_dir();
    let file = |name: &str| dir.join(format!("vmscope-test-{}-{name}", std::process::id()));
    let (ft_a, ft_b) = (file("smp-ft-a"), file("smp-ft-b"));
    let run = |ft: &Path| {
        let mut v: Vec<&str> = args.to_vec();
        v.extend_from_slice(&["--fault-trace", ft.to_str().unwrap()]);
        vmscope(&v)
    };
    let o = run(&ft_a);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("smp: Brought up 1 node, 4 CPUs"), "{out}");
    let user = user_lines(&out);
    assert!(user.iter().any(|l| l == "sum 5050"), "{out}");
    assert!(user.iter().any(|l| l == "== slept"), "{out}");
    // `grep -c ^processor /proc/cpuinfo`, printed right after the sum.
    let sum = user.iter().position(|l| l == "sum 5050").unwrap();
    assert_eq!(user.get(sum + 1).map(String::as_str), Some("4"), "{out}");
    for bad in [
        "Call Trace",
        "unchecked MSR",
        "BUG:",
        "Oops",
        "WARNING:",
        "stuck",
    ] {
        assert!(!out.contains(bad), "{bad} in the kernel log:\n{out}");
    }
    let b = run(&ft_b);
    assert_eq!(stdout(&b), out, "two runs printed different consoles");
    let trace_a = std::fs::read_to_string(&ft_a).unwrap();
    assert!(
        trace_a == std::fs::read_to_string(&ft_b).unwrap(),
        "two fault traces differ"
    );
    for cpu in 0..4 {
        let tag = format!("\"cpu\":{cpu},");
        assert!(trace_a.contains(&tag), "no event of CPU {cpu} in the trace");
    }
    for f in [ft_a, ft_b] {
        let _ = std::fs::remove_file(f);
    }

    if common::qemu_present() {
        let mut q = args.to_vec();
        q.push("--qemu");
        let qo = vmscope(&q);
        let qout = stdout(&qo);
        assert_eq!(qo.status.code(), Some(0), "{qout}\n{}", stderr(&qo));
        assert!(qout.contains("smp: Brought up 1 node, 4 CPUs"), "{qout}");
        common::assert_same_text(
            "user-space output",
            &user.join("\n"),
            &user_lines(&qout).join("\n"),
        );
        common::assert_same_text(
            "kernel log (timestamps masked, host-timing lines left out)",
            &kernel_log_without(&out, SMP_HOST_TIMING_LINES),
            &kernel_log_without(&qout, SMP_HOST_TIMING_LINES),
        );
        assert_eq!(
            moving_counts(&out),
            moving_counts(&qout),
            "{MOVING_LINES:?}"
        );
    }
}

#[test]
fn debian_bzimage_boots_as_it_is() {
    let Some(bz) = debian_kernel() else { return };
    let rd = busybox_initramfs("bz");
    let o = vmscope(&[
        "boot",
        "--kernel",
        bz.to_str().unwrap(),
        "--initrd",
        rd.path(),
        "--cmdline",
        "console=ttyS0 nokaslr",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("Command line: console=ttyS0 nokaslr"), "{out}");
    assert!(user_lines(&out).iter().any(|l| l == "== slept"), "{out}");
}

/// The console is interactive: host stdin (here a pipe) reaches COM1, a shell on the
/// console runs what arrives, and its output comes back.
#[test]
fn debian_kernel_shell_reads_host_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let Some(bz) = debian_kernel() else { return };
    let elf = kernel_elf(&bz);
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (/bin/busybox)");
    let mut w = vmscope::initramfs::CpioWriter::new();
    w.dir("/bin", 0o755).unwrap();
    w.file("/bin/busybox", 0o755, &busybox).unwrap();
    let init =
        "#!/bin/busybox sh\n/bin/busybox mkdir -p /proc /dev\n/bin/busybox --install -s /bin\n\
                export PATH=/bin\nmount -t proc proc /proc\nmount -t devtmpfs devtmpfs /dev\n\
                echo '== shell ready'\nexec sh\n";
    w.file("/init", 0o755, init.as_bytes()).unwrap();
    let rd = Scratch::new("linux-shell-initrd", &w.finish());
    let mut child = std::process::Command::new(common::VMSCOPE)
        .args([
            "boot",
            "--kernel",
            elf.to_str().unwrap(),
            "--initrd",
            rd.path(),
        ])
        .args(["--cmdline", "console=ttyS0 quiet"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmscope");
    // Type only once the shell is up, as a user would: bytes that arrive while Linux's
    // serial driver starts are dropped with the FIFO it resets (on QEMU too).
    let mut stdout_pipe = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout_pipe.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !String::from_utf8_lossy(&seen).contains("== shell ready") {
        match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(chunk) => seen.extend(chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                if std::time::Instant::now() < deadline => {}
            Err(e) => {
                let _ = child.kill();
                panic!("no shell: {e:?}\n{}", String::from_utf8_lossy(&seen));
            }
        }
    }
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(
            b"echo typed-$((6*7)); grep -c MemTotal /proc/meminfo\n\
              printf '\\000' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null\n",
        )
        .unwrap();
    drop(input);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    seen.extend(rx.try_iter().flatten());
    let out = String::from_utf8_lossy(&seen).into_owned();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("== shell ready"), "{out}");
    // The shell ran the line (echoed input shows `$((6*7))`, only its output shows 42).
    assert!(out.lines().any(|l| l.trim_end() == "typed-42"), "{out}");
}
