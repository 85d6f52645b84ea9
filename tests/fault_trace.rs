//! The hardware fault trace (`--fault-trace FILE`, JSON Lines): its content for the
//! delivery self-test (#PF from CPL 3 on RSP0, #DF on IST1 after a stack overflow into a
//! guard page, a self-NMI on IST2), its determinism, and the same events from QEMU's
//! `-d int` log.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use common::{qemu_present, stderr, stdout, vmscope};
use vmscope::trace::{read_jsonl, FaultEvent};

/// Run `vmscope boot` with a fault trace and return (console, events, raw trace text).
fn traced(extra: &[&str], cmdline: &str) -> (String, Vec<FaultEvent>, String) {
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
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let events = read_jsonl(&text).unwrap();
    (stdout(&o), events, text)
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
