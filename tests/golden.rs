//! Golden fault traces: every bundled program runs under `vmscope run --fault-trace`, and
//! its trace, normalised with the golden preset (no instruction counts, kernel addresses
//! as "kernel", no timer interrupts or CR3/CR4 values; see `tracediff::Normalize::golden`),
//! must equal `tests/golden/NAME.jsonl`. A difference fails with `vmscope trace diff`'s
//! report: the first divergent event with context, and a summary.
//!
//! After a deliberate change, re-bless with `UPDATE_GOLDEN=1 cargo test --release --test
//! golden` and review `git diff tests/golden`.

mod common;

use common::{root, VMSCOPE};
use std::process::Command;
use vmscope::tracediff::{diff, Normalize, Trace};

/// (golden name, program, arguments).
const CASES: &[(&str, &str, &[&str])] = &[
    ("hello", "hello", &[]),
    ("args", "args", &["x", "second arg", "--flag"]),
    ("exitcode", "exitcode", &[]),
    ("brk", "brk", &[]),
    ("mmap", "mmap", &[]),
    ("stack", "stack", &[]),
    ("segv", "segv", &[]),
    ("segv-uncaught", "segv", &["uncaught"]),
    ("efault", "efault", &[]),
    ("vdso", "vdso", &[]),
    ("forkcow", "forkcow", &[]),
    ("wait", "wait", &[]),
    ("execchain", "execchain", &[]),
    ("stopcont", "stopcont", &[]),
    ("vfork", "vfork", &[]),
    ("maps", "maps", &[]),
    ("ps", "ps", &[]),
    ("pmap", "pmap", &[]),
    ("free", "free", &[]),
    ("vmstat", "vmstat", &[]),
    ("cat-smaps", "cat", &["/proc/self/smaps"]),
    ("fileshare", "fileshare", &[]),
    ("sigreturn", "sigreturn", &[]),
    ("sparse", "sparse", &[]),
    ("protnone", "protnone", &[]),
    ("shmanon", "shmanon", &[]),
];

/// Run one case and return its raw JSON Lines trace. Every run is also under `--tlb check`:
/// no bundled program may use a stale TLB entry (a missing INVLPG in the guest kernel).
fn trace_of(name: &str, program: &str, args: &[&str]) -> String {
    let file = std::env::temp_dir().join(format!(
        "vmscope-golden-{}-{name}.jsonl",
        std::process::id()
    ));
    let o = Command::new(VMSCOPE)
        .arg("run")
        .arg("--fault-trace")
        .arg(&file)
        .args(["--tlb", "check"])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run vmscope");
    let code = o.status.code().unwrap_or(-1);
    assert!(
        code < 140,
        "{name}: vmscope stopped with status {code}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tlb check: 0 stale TLB uses"),
        "{name}: the TLB checker found stale uses:\n{err}"
    );
    let text = std::fs::read_to_string(&file).expect("read the trace");
    std::fs::remove_file(&file).ok();
    text
}

#[test]
fn every_program_matches_its_golden_fault_trace() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let dir = root().join("tests/golden");
    let norm = Normalize::golden();
    let mut failures = Vec::new();
    for (name, program, args) in CASES {
        let fresh = Trace::parse(&trace_of(name, program, args), &norm).expect("parse the trace");
        assert!(!fresh.is_empty(), "{name}: empty trace");
        let path = dir.join(format!("{name}.jsonl"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, fresh.to_jsonl()).unwrap();
            continue;
        }
        let golden = match std::fs::read_to_string(&path) {
            Ok(t) => Trace::parse(&t, &norm).expect("parse the golden trace"),
            Err(e) => {
                failures.push(format!(
                    "{name}: no golden trace {} ({e}); run with UPDATE_GOLDEN=1",
                    path.display()
                ));
                continue;
            }
        };
        let golden_name = format!("tests/golden/{name}.jsonl");
        let r = diff(&golden, &fresh, (&golden_name, "this run"), 3);
        if !r.equal {
            let cmd: Vec<&str> = std::iter::once(*program)
                .chain(args.iter().copied())
                .collect();
            failures.push(format!(
                "{name} (vmscope run {}):\n{}",
                cmd.join(" "),
                r.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden fault traces differ (UPDATE_GOLDEN=1 re-blesses after a deliberate change):\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn two_runs_give_byte_identical_fault_traces() {
    let a = trace_of("twice-a", "forkcow", &[]);
    let b = trace_of("twice-b", "forkcow", &[]);
    assert!(a.lines().count() > 50);
    assert!(a == b, "two runs of forkcow gave different fault traces");
    // And the annotations are there: fork, COW copies, exit.
    for needle in [
        "\"what\":\"fork\"",
        "\"outcome\":\"cow_copy\"",
        "\"what\":\"exit\"",
    ] {
        assert!(a.contains(needle), "no {needle} in the trace");
    }
}
