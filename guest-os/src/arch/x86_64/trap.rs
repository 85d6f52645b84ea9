//! Trap dispatch: what happens after `trap_common` has saved a [`TrapFrame`].
//!
//! Vectors that a driver claimed (external interrupts, IPIs, the NMI; see [`super::irq`])
//! go to their handler. Nothing in the kernel expects exceptions yet, except self-tests,
//! which arm a one-shot [`Catch`]: the next exception is recorded and execution resumes at
//! a chosen kernel address and stack (the way Linux's exception-table fixups resume after
//! a faulting instruction). Any other vector is a kernel bug and panics with the full
//! frame.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use super::gdt::{KERNEL_CS, KERNEL_DS};
use super::idt::{vector, TrapFrame};

/// RFLAGS bit 1 is reserved and always set.
const RFLAGS_FIXED: u64 = 1 << 1;

/// A one-shot exception catcher, written by self-test assembly (hence `repr(C)` and the
/// fixed field offsets in [`catch_offset`]).
#[repr(C)]
pub struct Catch {
    /// Non-zero while armed.
    pub armed: AtomicU64,
    /// Where to resume, on which stack (always kernel mode).
    pub resume_rip: AtomicU64,
    pub resume_rsp: AtomicU64,
    /// Labels around the instruction under test (for fault/trap classification).
    pub insn_start: AtomicU64,
    pub insn_end: AtomicU64,
    // What was caught.
    pub vector: AtomicU64,
    pub error_code: AtomicU64,
    pub rip: AtomicU64,
    pub cs: AtomicU64,
    pub cr2: AtomicU64,
    pub rsp: AtomicU64,
    /// Number of exceptions caught since arming (> 1 would be a bug in a test).
    pub count: AtomicU64,
    /// Address of the saved frame: which stack the handler ran on.
    pub frame: AtomicU64,
}

/// Byte offsets of [`Catch`] fields, for assembly.
pub mod catch_offset {
    pub const ARMED: usize = 0;
    pub const RESUME_RIP: usize = 8;
    pub const RESUME_RSP: usize = 16;
    pub const INSN_START: usize = 24;
    pub const INSN_END: usize = 32;
}

pub static CATCH: Catch = Catch {
    armed: AtomicU64::new(0),
    resume_rip: AtomicU64::new(0),
    resume_rsp: AtomicU64::new(0),
    insn_start: AtomicU64::new(0),
    insn_end: AtomicU64::new(0),
    vector: AtomicU64::new(u64::MAX),
    error_code: AtomicU64::new(0),
    rip: AtomicU64::new(0),
    cs: AtomicU64::new(0),
    cr2: AtomicU64::new(0),
    rsp: AtomicU64::new(0),
    count: AtomicU64::new(0),
    frame: AtomicU64::new(0),
};

/// CR2: the linear address of the last page fault.
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The SDM mnemonic of an exception vector.
pub fn vector_name(v: u64) -> &'static str {
    const NAMES: [&str; 22] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF(9)", "#TS", "#NP",
        "#SS", "#GP", "#PF", "(15)", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];
    NAMES.get(v as usize).copied().unwrap_or("INT")
}

/// Called by `trap_common` with the saved frame; returning resumes from the frame.
pub extern "C" fn dispatch(frame: &mut TrapFrame) {
    if let Some(handler) = super::irq::handler(frame.vector) {
        handler(frame);
        return;
    }
    let cr2 = if frame.vector == vector::PF as u64 {
        read_cr2()
    } else {
        0
    };
    if CATCH.armed.swap(0, Ordering::SeqCst) != 0 {
        CATCH.vector.store(frame.vector, Ordering::SeqCst);
        CATCH.error_code.store(frame.error_code, Ordering::SeqCst);
        CATCH.rip.store(frame.rip, Ordering::SeqCst);
        CATCH.cs.store(frame.cs, Ordering::SeqCst);
        CATCH.cr2.store(cr2, Ordering::SeqCst);
        CATCH.rsp.store(frame.rsp, Ordering::SeqCst);
        CATCH
            .frame
            .store(frame as *mut TrapFrame as u64, Ordering::SeqCst);
        CATCH.count.fetch_add(1, Ordering::SeqCst);
        frame.rip = CATCH.resume_rip.load(Ordering::SeqCst);
        frame.rsp = CATCH.resume_rsp.load(Ordering::SeqCst);
        frame.cs = KERNEL_CS as u64;
        frame.ss = KERNEL_DS as u64;
        // Back to the kernel's state: interrupts off, no TF/AC left over from the test.
        frame.rflags = RFLAGS_FIXED;
        return;
    }
    if frame.vector == vector::DF as u64 && crate::mm::pgtable::is_stack_guard(read_cr2()) {
        panic!(
            "kernel stack overflow: #PF on the guard page at {:#x}, then #DF (rip {:#x}, rsp {:#x})",
            read_cr2(),
            frame.rip,
            frame.rsp
        );
    }
    panic!(
        "unhandled exception {} (vector {}) error {:#x} at {:#x}:{:#x} rflags {:#x} rsp {:#x} cr2 {:#x}",
        vector_name(frame.vector),
        frame.vector,
        frame.error_code,
        frame.cs,
        frame.rip,
        frame.rflags,
        frame.rsp,
        cr2
    );
}
