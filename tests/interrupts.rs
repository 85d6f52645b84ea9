//! System tests of the interrupt sources: the guest kernel's `selftest=timer` (local APIC
//! timer in periodic and one-shot mode, LVT masking, TPR and CR8, fixed self-IPIs, a
//! self-NMI on its IST stack) on vmscope, its determinism, and the QEMU cross-check (same
//! console text and exit status).
//!
//! QEMU tests print a visible SKIP when qemu-system-x86_64 is missing, unless
//! VMSCOPE_REQUIRE_QEMU=1 (as in CI), when they fail instead.

use std::process::{Command, Output};

const VMSCOPE: &str = env!("CARGO_BIN_EXE_vmscope");
/// The cases `selftest=timer` runs, in order.
const CASES: [&str; 12] = [
    "pic-masked",
    "periodic",
    "one-shot",
    "masked-lvt",
    "tpr",
    "cr8",
    "self-ipi",
    "priority",
    "nesting",
    "self-nmi",
    "nmi-blocking",
    "no-spurious-or-errors",
];

fn vmscope(args: &[&str]) -> Output {
    Command::new(VMSCOPE)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run vmscope")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn qemu_present() -> bool {
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

#[test]
fn timer_selftest_passes_on_vmscope() {
    let o = vmscope(&["boot", "--cmdline", "selftest=timer"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("timer ")).collect();
    let want: Vec<String> = CASES.iter().map(|c| format!("timer {c}: ok")).collect();
    assert_eq!(lines, want, "{out}");
    assert!(
        out.lines().any(|l| l == "selftest timer: 12/12 passed"),
        "{out}"
    );
}

#[test]
fn timer_selftest_is_deterministic() {
    // The timer's interrupts land on the same instructions: the same output, the same
    // exit, and the same instruction count at the end.
    let run = || {
        Command::new(VMSCOPE)
            .args(["boot", "--cmdline", "selftest=timer"])
            .env("RUST_LOG", "info")
            .output()
            .expect("run vmscope")
    };
    let (a, b) = (run(), run());
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(a.status.code(), b.status.code());
    let stopped = |o: &Output| {
        stderr(o)
            .lines()
            .find(|l| l.contains("stopped after"))
            .map(str::to_owned)
    };
    assert_eq!(stopped(&a), stopped(&b));
}

#[test]
fn timer_selftest_runs_alongside_the_exception_selftest() {
    // The timer test gives its vectors back: the exception cases still see exceptions.
    let o = vmscope(&["boot", "--cmdline", "selftest=timer,exceptions"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("selftest timer: 12/12 passed"), "{out}");
    assert!(out.contains("selftest exceptions: "), "{out}");
}

/// The same kernel and command line on QEMU: identical console text and exit status.
#[test]
fn qemu_cross_check_timer_selftest() {
    if !qemu_present() {
        return;
    }
    let args = ["boot", "--cmdline", "selftest=timer"];
    let a = vmscope(&args);
    let b = vmscope(&[&args[..], &["--qemu"]].concat());
    assert_eq!(
        stdout(&a),
        stdout(&b),
        "console differs; qemu stderr: {}",
        stderr(&b)
    );
    assert_eq!(
        a.status.code(),
        b.status.code(),
        "exit status differs: {} / {}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(b.status.code(), Some(0));
}
