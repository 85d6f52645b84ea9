//! The hardware fault trace (`--fault-trace FILE`, JSON Lines): its content for the
//! delivery self-test (#PF from CPL 3 on RSP0, #DF on IST1 after a stack overflow into a
//! guard page, a self-NMI on IST2), its determinism, and the same events from QEMU's
//! `-d int` log.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use common::{qemu_present, stderr, stdout, vmscope};
use vmscope::trace::{deliveries, read_jsonl, FaultEvent};

/// Run `vmscope boot` with a fault trace; it must exit 0. Returns (console, events, raw
/// trace text).
fn traced(extra: &[&str], cmdline: &str) -> (String, Vec<FaultEvent>, String) {
    let (code, out, events, text) = run_traced(extra, cmdline);
    assert_eq!(code, Some(0), "{out}");
    (out, events, text)
}

/// Run `vmscope boot` with a fault trace: (exit status, console, events, raw trace text).
fn run_traced(extra: &[&str], cmdline: &str) -> (Option<i32>, String, Vec<FaultEvent>, String) {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "vmscope-ft-{}-{}.jsonl",
        std::process::id(),
        RUN.fetch_add(1, Ordering::SeqCst)
    ));
    let p = path.to_str().unwrap();
    let mut args = vec!["boot", "--cmdline", cmdline, "--fault-trace", p];
    args.extend_from_slice(extra);
    let o = vmscope(&args);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("no trace ({e}): {}", stderr(&o)));
    let _ = std::fs::remove_file(&path);
    let events = deliveries(&read_jsonl(&text).unwrap());
    (o.status.code(), stdout(&o), events, text)
}

#[test]
fn delivery_selftest_trace_shows_rsp0_ist1_and_ist2() {
    let (out, ev, _) = traced(&[], "selftest=delivery");
    assert!(out.contains("selftest delivery: 3/3 passed"), "{out}");
    assert_eq!(ev.len(), 4, "{ev:#?}");
    // #PF from user mode: delivered on the RSP0 stack (no IST), user CS and CPL recorded.
    assert_eq!((ev[0].vector, ev[0].cpl, ev[0].cs), (14, 3, 0x23));
    assert_eq!((ev[0].error_code, ev[0].ist), (Some(4), Some(0)));
    assert!(ev[0].stack.unwrap() >= 0xffff_ffff_8000_0000);
    // Stack overflow: the #PF cannot be delivered, the #DF goes to IST1.
    assert_eq!((ev[1].vector, ev[1].delivered), (14, Some(false)));
    assert_eq!(ev[1].error_code, Some(2));
    assert_eq!(
        (ev[2].vector, ev[2].delivered, ev[2].ist),
        (8, Some(true), Some(1))
    );
    assert_eq!(ev[2].error_code, Some(0));
    assert_eq!(ev[1].rip, ev[2].rip);
    // The self-NMI: external, on IST2.
    assert_eq!(
        (ev[3].vector, ev[3].kind.as_str(), ev[3].ist),
        (2, "external", Some(2))
    );
    assert!(ev.iter().all(|e| e.icount.is_some()));
}

#[test]
fn fault_traces_are_byte_identical_across_runs() {
    let cmd = "selftest=exceptions,delivery";
    let (_, ev, a) = traced(&[], cmd);
    let (_, _, b) = traced(&[], cmd);
    assert!(ev.len() > 25);
    assert_eq!(a, b);
}

/// Synchronous events (exceptions, INT n) must agree field for field with QEMU; for
/// external events (NMI, interrupts) the arrival point is implementation timing, so only
/// the vector, kind and privilege level are compared.
#[test]
fn qemu_int_log_gives_the_same_events() {
    if !qemu_present() {
        return;
    }
    let cmd = "selftest=exceptions,delivery";
    let (out, ours, _) = traced(&[], cmd);
    let (qout, theirs, _) = traced(&["--qemu"], cmd);
    assert_eq!(out, qout);
    assert_eq!(ours.len(), theirs.len(), "{ours:#?}\n{theirs:#?}");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a.kind, b.kind, "{a:?} / {b:?}");
        if a.kind == "external" {
            assert_eq!(
                (a.vector, a.cpl, a.cs),
                (b.vector, b.cpl, b.cs),
                "{a:?} / {b:?}"
            );
        } else {
            assert_eq!(a.comparable(), b.comparable(), "{a:?} / {b:?}");
        }
    }
}

/// `--inject nmi@N,mc@N`: events raised from outside reach their IST stacks (NMI: IST2,
/// #MC: IST3). Each case of `selftest=inject` starts with an INT3 marker; the injection is
/// placed 1000 instructions after it, found from a previous run's trace.
#[test]
fn injected_nmi_and_machine_check_land_on_their_ist_stacks() {
    let markers = |ev: &[FaultEvent]| -> Vec<u64> {
        ev.iter()
            .filter(|e| e.vector == 3)
            .map(|e| e.icount.unwrap())
            .collect()
    };
    let (code, out, ev, _) = run_traced(&[], "selftest=inject");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("inject nmi: nothing delivered FAIL"), "{out}");
    let nmi_at = format!("nmi@{}", markers(&ev)[0] + 1000);
    let (_, out, ev, _) = run_traced(&["--inject", &nmi_at], "selftest=inject");
    assert!(out.contains("inject nmi: NMI on ist2 ok"), "{out}");
    let mc_at = format!("mc@{}", markers(&ev)[1] + 1000);
    let both = format!("{nmi_at},{mc_at}");
    let o = vmscope(&["boot", "--cmdline", "selftest=inject", "--inject", &both]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("inject mc: #MC on ist3 ok"), "{out}");
    assert!(out.contains("selftest inject: 2/2 passed"), "{out}");
}

#[test]
fn bad_injection_is_a_usage_error() {
    let o = vmscope(&["boot", "--inject", "smi@5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown event"), "{}", stderr(&o));
}
