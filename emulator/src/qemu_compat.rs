//! `qemu-system-x86_64` command lines run on vmscope, for test suites written for QEMU
//! (kvm-unit-tests' `run_tests.sh` with `QEMU=` pointing at vmscope): `vmscope
//! qemu-compat ARGS...`, or vmscope invoked through a link named `qemu-system-x86_64`.
//!
//! The options of a `pc` machine that vmscope models are translated to `vmscope boot`
//! options; options that only concern QEMU's host side (display, monitor, accelerator
//! tuning) are accepted and ignored; anything else is refused with QEMU's exit status 1,
//! so a suite never runs a test on a machine other than the one it asked for. The exit
//! status is QEMU's: isa-debug-exit's `(v << 1) | 1`, 0 for a shutdown or a reset under
//! `-no-reboot`.

use crate::machine::Outcome;

/// What `-h` prints first (suites parse the version from it). vmscope models QEMU 7.2's
/// `pc` machine; the text says it is not QEMU.
pub const VERSION_LINE: &str =
    "QEMU emulator version 7.2.0 (vmscope qemu-compat mode: a vmscope machine, not QEMU)";

/// The `-device` names vmscope accepts, as `-device help` lists them.
pub const DEVICES: &[(&str, &str)] = &[
    (
        "isa-debug-exit",
        "bus ISA (only iobase=0xf4,iosize=0x4, always present)",
    ),
    ("pc-testdev", "bus ISA"),
];

/// A QEMU command line, translated.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `-h`/`--help`/`-version`: print this text and exit 0.
    Print(String),
    /// Run the machine: these are the arguments of `vmscope boot`.
    Boot(Vec<String>),
}

/// Why a command line is refused (QEMU's status 1 and a message like QEMU's).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, opt: &str) -> Result<&'a String, Refused> {
    it.next()
        .ok_or_else(|| Refused(format!("-{opt}: requires an argument")))
}

/// `-m`: `SIZE` or `size=SIZE[,...]`, MiB without a suffix.
fn mem_arg(v: &str) -> String {
    let size = v
        .split(',')
        .find_map(|p| p.strip_prefix("size="))
        .unwrap_or_else(|| v.split(',').next().unwrap_or(v));
    if size.chars().all(|c| c.is_ascii_digit()) {
        format!("{size}M")
    } else {
        size.to_string()
    }
}

/// `-smp`: `N` or `[cpus=]N[,maxcpus=..,sockets=..]`.
fn smp_arg(v: &str) -> Result<String, Refused> {
    let first = v.split(',').next().unwrap_or("");
    let n = v
        .split(',')
        .find_map(|p| p.strip_prefix("cpus="))
        .unwrap_or(first);
    n.parse::<u32>()
        .map(|n| n.to_string())
        .map_err(|_| Refused(format!("-smp {v}: expected a CPU count")))
}

/// A `-device` argument: the machine options it maps to.
fn device_arg(v: &str, out: &mut Vec<String>) -> Result<(), Refused> {
    let mut parts = v.split(',');
    let name = parts.next().unwrap_or("");
    let props: Vec<&str> = parts.collect();
    match name {
        "isa-debug-exit" => {
            let ok = props.iter().all(|p| {
                matches!(
                    *p,
                    "iobase=0xf4" | "iobase=244" | "iosize=0x4" | "iosize=0x04" | "iosize=4"
                )
            });
            if !ok {
                return Err(Refused(format!(
                    "-device {v}: vmscope's isa-debug-exit is at iobase=0xf4,iosize=0x4 only"
                )));
            }
        }
        "pc-testdev" if props.is_empty() => {
            out.extend(["--device".into(), "pc-testdev".into()]);
        }
        _ => {
            return Err(Refused(format!(
                "-device {v}: not a device vmscope models (see -device help)"
            )))
        }
    }
    Ok(())
}

/// Translate a `qemu-system-x86_64` command line (without the program name).
pub fn translate(args: &[String]) -> Result<Request, Refused> {
    let mut boot: Vec<String> = Vec::new();
    let mut kernel = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        // QEMU accepts `--opt` as `-opt`.
        let opt = a.strip_prefix("--").or_else(|| a.strip_prefix('-'));
        let Some(opt) = opt else {
            return Err(Refused(format!(
                "{a}: a disk image: vmscope takes -kernel only"
            )));
        };
        match opt {
            "h" | "help" => {
                let mut t = format!("{VERSION_LINE}\nusage: qemu-system-x86_64 [options]\n");
                t.push_str("vmscope accepts -kernel -initrd -append -m -smp -cpu -device -machine accel=tcg\n");
                return Ok(Request::Print(t));
            }
            "version" => return Ok(Request::Print(format!("{VERSION_LINE}\n"))),
            "kernel" => kernel = Some(value(&mut it, opt)?.clone()),
            "initrd" => {
                boot.extend(["--initrd".into(), value(&mut it, opt)?.clone()]);
            }
            "append" => boot.extend(["--cmdline".into(), value(&mut it, opt)?.clone()]),
            "m" => boot.extend(["--mem".into(), mem_arg(value(&mut it, opt)?)]),
            // One CPU is the default; `--cpus` only when more are asked for.
            "smp" => match smp_arg(value(&mut it, opt)?)?.as_str() {
                "1" => {}
                n => boot.extend(["--cpus".into(), n.into()]),
            },
            "device" => {
                let v = value(&mut it, opt)?;
                if v == "?" || v == "help" {
                    let mut t = String::from("Misc devices:\n");
                    for (name, desc) in DEVICES {
                        t.push_str(&format!("name \"{name}\", {desc}\n"));
                    }
                    return Ok(Request::Print(t));
                }
                device_arg(v, &mut boot)?;
            }
            "machine" | "M" => {
                let v = value(&mut it, opt)?;
                for p in v.split(',') {
                    match p {
                        "pc" | "accel=tcg" | "" => {}
                        p if p.starts_with("accel=tcg") => {}
                        _ => {
                            return Err(Refused(format!(
                                "-machine {v}: vmscope is the TCG-like `pc` machine only ({p})"
                            )))
                        }
                    }
                }
            }
            // The CPU model: vmscope has one (its CPUID is documented in the README);
            // feature requests beyond it are not emulated.
            "cpu" => {
                let v = value(&mut it, opt)?;
                log::info!("qemu-compat: -cpu {v}: vmscope runs its own CPU model");
            }
            // Host-side options with nothing to do on vmscope.
            "nodefaults" | "no-reboot" | "nographic" | "no-shutdown" => {}
            "display" | "vga" | "monitor" | "nic" | "global" | "name" | "rtc" => {
                value(&mut it, opt)?;
            }
            "serial" => {
                let v = value(&mut it, opt)?;
                if v != "stdio" && v != "mon:stdio" {
                    return Err(Refused(format!(
                        "-serial {v}: vmscope's COM1 is stdio only"
                    )));
                }
            }
            "enable-kvm" => return Err(Refused("-enable-kvm: vmscope is not KVM".into())),
            _ => return Err(Refused(format!("{a}: option not supported by vmscope"))),
        }
    }
    let kernel =
        kernel.ok_or_else(|| Refused("no -kernel: vmscope boots -kernel images".into()))?;
    let mut out = vec!["--kernel".to_string(), kernel];
    out.extend(boot);
    Ok(Request::Boot(out))
}

/// QEMU's exit status for an outcome: the raw isa-debug-exit value, 0 after a shutdown
/// or a reset under `-no-reboot`; vmscope's own codes for what QEMU has no status for.
pub fn exit_status(o: &Outcome) -> i32 {
    match o {
        Outcome::Exit { raw } => (*raw & 0xff) as i32,
        Outcome::Reset | Outcome::Stop(crate::cpu::CpuStop::TripleFault { .. }) => 0,
        Outcome::Stop(crate::cpu::CpuStop::Shutdown { .. }) => 0,
        other => other.exit_code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn kvm_unit_tests_command_line_translates() {
        let a = args(
            "--no-reboot -nodefaults -global kvm-pit.lost_tick_policy=discard -device pc-testdev \
             -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -serial stdio \
             -machine accel=tcg -kernel x86/sieve.flat -smp 2 -m 256 -initrd env",
        );
        assert_eq!(
            translate(&a).unwrap(),
            Request::Boot(args(
                "--kernel x86/sieve.flat --device pc-testdev --cpus 2 --mem 256M --initrd env"
            ))
        );
    }

    #[test]
    fn unknown_devices_and_accelerators_are_refused() {
        assert!(translate(&args("-kernel k -device pci-testdev")).is_err());
        assert!(translate(&args("-kernel k -machine q35")).is_err());
        assert!(translate(&args("-kernel k -enable-kvm")).is_err());
        assert!(translate(&args("-kernel k -bogus")).is_err());
        assert!(translate(&args("-device isa-debug-exit,iobase=0x501 -kernel k")).is_err());
        assert!(
            matches!(translate(&args("-device ?")), Ok(Request::Print(t)) if t.contains("\"pc-testdev\""))
        );
        assert!(
            matches!(translate(&args("-h")), Ok(Request::Print(t)) if t.starts_with("QEMU emulator version 7.2.0"))
        );
    }
}
