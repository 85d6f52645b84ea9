//! The in-tree system-call fuzzer (`guest-programs/programs/src/bin/fuzz.rs`): a short run
//! with a fixed seed must end with the fuzzer's own exit status (no kernel panic, no hang),
//! at least 20,000 calls made, the kernel self-check `ok` and no page leaked once every
//! child has been reaped. The same run under QEMU (when present) must reach the same
//! verdict; its counts may differ, since calls that read the clock leave different bytes
//! behind for later calls to use.
//!
//! The long run is the same program with a bigger count (README, "System-call fuzzer").

mod common;

use common::{qemu_present, stderr, stdout, vmscope};

/// The suite's run: seed, calls, calls per child.
const SEED: &str = "1";
const CALLS: &str = "20000";
const PER_CHILD: &str = "1000";
/// Generous bound on guest instructions (the run takes about 45 million): a hang
/// becomes status 143 instead of a stuck test.
const MAX_INSNS: &str = "2000000000";

/// The number after `prefix` at the start of a line of `out`.
fn number_after(out: &str, prefix: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn check(out: &str, err: &str, status: Option<i32>, what: &str) {
    assert!(
        !out.contains("Kernel panic") && !err.contains("Kernel panic"),
        "{what}: kernel panic\n{out}{err}"
    );
    assert_eq!(status, Some(0), "{what}: status\n{out}{err}");
    assert!(
        out.starts_with(&format!(
            "fuzz: seed {SEED}, {CALLS} calls, at most {PER_CHILD} per child"
        )),
        "{what}: {out}"
    );
    let calls = number_after(out, "calls: ").expect("a calls line");
    assert!(calls >= 20_000, "{what}: only {calls} calls\n{out}");
    assert!(out.contains("\nchildren: "), "{what}: {out}");
    assert_eq!(
        number_after(out, "leaked pages: "),
        Some(0),
        "{what}: {out}"
    );
    assert!(out.contains("\nselfcheck: ok\n"), "{what}: {out}");
}

#[test]
fn fuzzer_short_run_keeps_the_kernel_consistent() {
    let args = [
        "run",
        "--max-insns",
        MAX_INSNS,
        "fuzz",
        SEED,
        CALLS,
        PER_CHILD,
    ];
    let o = vmscope(&args);
    check(&stdout(&o), &stderr(&o), o.status.code(), "vmscope");
    // Deterministic on vmscope: the same run gives the same report.
    let again = vmscope(&args);
    assert_eq!(stdout(&o), stdout(&again), "two vmscope runs differ");
    if qemu_present() {
        let q = vmscope(&["run", "--qemu", "fuzz", SEED, CALLS, PER_CHILD]);
        check(&stdout(&q), &stderr(&q), q.status.code(), "QEMU");
    }
}

/// On a kernel that is not vmscope's (no /proc/vmscope/selfcheck) the fuzzer refuses to
/// start: it must never fuzz the host it was built on.
#[test]
fn fuzzer_refuses_to_run_natively() {
    let bin = common::root().join("target/guest-programs/x86_64-unknown-none/release/fuzz");
    let o = std::process::Command::new(bin)
        .arg("1")
        .arg("10")
        .output()
        .expect("run the fuzzer natively");
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stdout(&o).contains("refusing"), "{}", stdout(&o));
}
