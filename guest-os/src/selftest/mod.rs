//! Built-in self-tests, selected on the kernel command line with `selftest=NAME[,NAME...]`.
//! Each prints one line per case ending in `ok` or `FAIL`, then a summary line; the system
//! tests run them on vmscope and on QEMU and compare the text.

pub mod delivery;
pub mod exceptions;
pub mod inject;
pub mod memcg;
pub mod mm;
pub mod mmbench;
pub mod pagematrix;
pub mod probe;
pub mod testpages;
pub mod timer;
pub mod tlb;
pub mod user;

use crate::kprintln;

pub use crate::cmdline::param as cmdline_param;

/// Run the self-tests named on the command line. Returns false if any case failed or a
/// name is unknown.
pub fn run_from_cmdline(cmdline: &[u8]) -> bool {
    let Some(list) = cmdline_param(cmdline, "selftest") else {
        return true;
    };
    let mut all_ok = true;
    for name in list.split(|&b| b == b',').filter(|n| !n.is_empty()) {
        match name {
            b"exceptions" => {
                let (pass, total) = exceptions::run();
                kprintln!("selftest exceptions: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            b"exceptions-strict" => {
                let (pass, total) = exceptions::run_strict();
                kprintln!("selftest exceptions-strict: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            b"delivery" => {
                let (pass, total) = delivery::run();
                kprintln!("selftest delivery: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            b"inject" => {
                let (pass, total) = inject::run();
                kprintln!("selftest inject: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            b"tlb" | b"tlb-stale" => {
                let (pass, total) = tlb::run(name == b"tlb-stale");
                kprintln!("selftest tlb: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            b"pagematrix" | b"pagematrix-verbose" => {
                let (pass, total) = pagematrix::run(name == b"pagematrix-verbose");
                kprintln!("selftest pagematrix: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            b"mm" => {
                let (pass, total) = mm::run();
                kprintln!("selftest mm: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            b"memcg" => {
                let (pass, total) = memcg::run();
                kprintln!("selftest memcg: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            b"mmbench" => mmbench::run(),
            b"timer" => {
                let (pass, total) = timer::run();
                kprintln!("selftest timer: {pass}/{total} passed");
                all_ok &= pass == total;
            }
            other => {
                kprintln!(
                    "selftest: unknown test {:?}",
                    core::str::from_utf8(other).unwrap_or("?")
                );
                all_ok = false;
            }
        }
    }
    all_ok
}
