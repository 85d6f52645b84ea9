//! The TLB's fast entries (ARCHITECTURE.md, "TLB") under real workloads: with
//! `VMSCOPE_TLB_SHADOW=1` every fast hit is re-checked against the modelled TLB (a
//! difference panics), and the run must be the same, output, exit status, instruction
//! count and TLB counters, as under `--tlb check`, which installs no fast entries.

mod common;

use common::{stderr, stdout, VMSCOPE};
use std::process::Command;

/// The lines of `--stats` that the fast entries must leave unchanged.
fn stats(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.starts_with("instructions: ") || l.starts_with("tlb"))
        .filter(|l| !l.starts_with("tlb check"))
        .collect()
}

fn same_with_shadow_as_check(args: &[&str]) {
    // Options go after the subcommand.
    let run = |tlb: &str| {
        let (cmd, rest) = args.split_first().unwrap();
        let mut all = vec![*cmd, "--tlb", tlb, "--stats"];
        all.extend_from_slice(rest);
        Command::new(VMSCOPE)
            .args(&all)
            .env("RUST_LOG", "warn")
            .env("VMSCOPE_TLB_SHADOW", "1")
            .output()
            .expect("run vmscope")
    };
    let fast = run("on");
    let check = run("check");
    let (ef, ec) = (stderr(&fast), stderr(&check));
    assert!(!ef.contains("tlb shadow"), "{args:?}: {ef}");
    assert_eq!(fast.status.code(), check.status.code(), "{args:?}: {ef}");
    assert_eq!(stdout(&fast), stdout(&check), "{args:?}");
    assert!(!stats(&ef).is_empty(), "{args:?}: no --stats in {ef}");
    assert_eq!(stats(&ef), stats(&ec), "{args:?}");
    assert!(ec.contains("tlb check: 0 stale TLB uses"), "{args:?}: {ec}");
}

#[test]
fn programs_under_the_shadow_check() {
    for p in [
        "hello",
        "forkcow",
        "mmap",
        "segv",
        "brk",
        "execchain",
        "mapshared",
        "sparse",
        "vfork",
    ] {
        same_with_shadow_as_check(&["run", p]);
    }
}

#[test]
fn kernel_selftests_under_the_shadow_check() {
    for t in ["selftest=tlb", "selftest=exceptions", "selftest=delivery"] {
        same_with_shadow_as_check(&["boot", "--cmdline", t]);
    }
}

/// The page-permission matrix (U/S, R/W, NX, CR0.WP, SMEP, SMAP with and without
/// RFLAGS.AC, at CPL 0 and 3): about 270 million instructions, the longest case here.
#[test]
fn pagematrix_under_the_shadow_check() {
    same_with_shadow_as_check(&["boot", "--cmdline", "selftest=pagematrix"]);
}
