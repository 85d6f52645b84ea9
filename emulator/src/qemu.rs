//! Running the identical machine under QEMU: the cross-check oracle. The flags give QEMU
//! the same devices vmscope models (COM1 on stdio, isa-debug-exit at 0xf4) and the same RAM,
//! and the same PCI bus: `-vga none -nic none` leave only the chipset, so the virtio disks
//! land at 00:02.0, 00:03.0... as on vmscope.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// QEMU's x86-64 system emulator's name (vmscope answers to it too: `qemu_compat`).
pub const QEMU_BINARY_NAME: &str = "qemu-system-x86_64";

/// The QEMU binary (override with $VMSCOPE_QEMU).
pub fn qemu_binary() -> PathBuf {
    std::env::var_os("VMSCOPE_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| QEMU_BINARY_NAME.into())
}

/// Whether QEMU can be started.
pub fn available() -> bool {
    Command::new(qemu_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The QEMU CPU model closest to vmscope's: QEMU's default `qemu64` plus the paging
/// features vmscope implements and advertises (SMEP, SMAP, 1 GiB pages, protection keys:
/// PKU and PKS, which the page-permission matrix checks on both) and XSAVE with
/// XSAVEOPT (CPUID.(0xd,1):EAX bit 0, which vmscope advertises; QEMU 7.2's TCG also never
/// completes a CR4 write that sets OSXSAVE without it: the guest hangs on the MOV) and
/// SSSE3, SSE4.1 and SSE4.2. NX, the x87, MMX, FXSR, SSE, SSE2 and SSE3 (`pni`) are already in
/// `qemu64`.
pub const QEMU_CPU: &str =
    "qemu64,+smep,+smap,+pdpe1gb,+xsave,+xsaveopt,+ssse3,+sse4.1,+sse4.2,+pku,+pks";

/// The QEMU CPU model that presents vmscope's own CPUID (cpu/cpuid.rs) for the machine
/// without ACPI, where kernels that are not vmscope's (Linux) run and take the
/// vendor-specific paths: GenuineIntel family 6 model 0x3a stepping 9, vmscope's brand
/// string, its leaf 1/7/0x8000_0001 features (no SEP, PSE36 or SVM, which
/// `qemu64` has; MOVBE, POPCNT, FSGSBASE, BMI1/2, ERMS, ABM and RDTSCP, which it lacks).
/// Protection keys (PKU, with the PKRU XSAVE component, and PKS), which QEMU 7.2's TCG
/// implements, are in too: Linux enables CR4.PKE and XSAVE feature 0x200 on both.
/// PCID and INVPCID, which vmscope also advertises, are left out: QEMU 7.2's TCG cannot
/// offer them. The built-in kernel's cross-checks keep [`QEMU_CPU`].
pub const QEMU_CPU_MIRROR: &str = "qemu64,vendor=GenuineIntel,family=6,model=58,stepping=9,\
model-id=vmscope virtual x86-64 CPU,-sep,-pse36,-svm,+movbe,+popcnt,+fsgsbase,\
+bmi1,+bmi2,+erms,+abm,+rdtscp,+smep,+smap,+pdpe1gb,+xsave,+xsaveopt,+ssse3,+sse4.1,+sse4.2,\
+pku,+pks";

/// `qemu-system-x86_64` with the flags of the vmscope machine. `mem_mib` is in MiB; `acpi`
/// false gives `-machine pc,acpi=off` (see `MachineConfig::acpi`).
pub fn command(
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    mem_mib: u64,
    acpi: bool,
) -> Command {
    let mut c = Command::new(qemu_binary());
    if !acpi {
        c.args(["-machine", "pc,acpi=off"]);
    }
    c.arg("-kernel")
        .arg(kernel)
        .args([
            "-serial",
            "stdio",
            "-display",
            "none",
            "-no-reboot",
            "-monitor",
            "none",
            "-vga",
            "none",
            "-nic",
            "none",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        // The same fixed date as vmscope's RTC (devices/rtc.rs), advancing with the guest.
        .args([
            "-rtc",
            &format!("base={},clock=vm", crate::devices::rtc::RTC_BASE),
        ])
        .args(["-cpu", if acpi { QEMU_CPU } else { QEMU_CPU_MIRROR }])
        .args(["-m", &format!("{mem_mib}M")])
        .args(["-append", cmdline]);
    if let Some(i) = initrd {
        c.arg("-initrd").arg(i);
    }
    c.stdin(Stdio::null());
    c
}

/// `--cpus N` for N > 1: `-smp N,sockets=N,cores=1,threads=1`. One CPU per socket is
/// what vmscope's CPUID describes (no HTT, no multi-core leaves), and SeaBIOS lists only
/// the first logical CPU of each package in the MP table: with QEMU 7.2's default
/// topology for `-smp 4` (one socket of four cores) a kernel without ACPI would find one
/// CPU. Nothing is added for one CPU, so that command stays as it was.
pub fn add_cpus(c: &mut Command, cpus: usize) {
    if cpus > 1 {
        c.args(["-smp", &format!("{cpus},sockets={cpus},cores=1,threads=1")]);
    }
}

/// A `--disk`: `-drive file=PATH,format=raw,if=virtio[,readonly=on]`.
pub fn add_disk(c: &mut Command, path: &Path, read_only: bool) {
    // In `-drive` options a comma is written as two.
    let p = path.to_string_lossy().replace(',', ",,");
    let ro = if read_only { ",readonly=on" } else { "" };
    c.arg("-drive")
        .arg(format!("file={p},format=raw,if=virtio{ro}"));
}

/// The devices `vmscope run` adds: COM2 into the file `com2` (QEMU's second `-serial`), and
/// isa-debugcon at 0x402 into the file `debugcon` (its default port would be 0xe9).
pub fn add_run_devices(c: &mut Command, com2: &Path, debugcon: &Path) {
    // In `-chardev` options a comma is written as two.
    let path = debugcon.to_string_lossy().replace(',', ",,");
    c.arg("-serial")
        .arg(format!("file:{}", com2.to_string_lossy()))
        .args(["-chardev", &format!("file,id=vmscope-debugcon,path={path}")])
        .args([
            "-device",
            "isa-debugcon,iobase=0x402,chardev=vmscope-debugcon",
        ]);
}

/// Run QEMU (console on our stdout) and map its status with [`exit_code`]. QEMU's own
/// start-up failures also exit 1, the status of a guest exit with 0, so they are told apart
/// by QEMU's error message on stderr.
pub fn run(mut cmd: Command) -> Result<i32, String> {
    cmd.stdout(Stdio::inherit()).stderr(Stdio::piped());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", qemu_binary().display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    eprint!("{err}");
    if out.status.code() == Some(1) && err.contains("qemu-system") {
        return Err(format!(
            "QEMU failed: {}",
            err.lines().next().unwrap_or("").trim()
        ));
    }
    Ok(exit_code(out.status))
}

/// Map QEMU's exit status to vmscope's convention: odd statuses come from isa-debug-exit
/// (`(v << 1) | 1` → `v`); 0 means QEMU shut down without it (a triple fault with
/// -no-reboot, or a reset); anything else is QEMU's own failure and is passed through.
pub fn exit_code(status: ExitStatus) -> i32 {
    match status.code() {
        Some(raw) if raw & 1 == 1 => raw >> 1,
        Some(0) => crate::machine::exit_status::TRIPLE_FAULT,
        Some(other) => other,
        None => 1,
    }
}
