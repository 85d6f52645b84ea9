//! Interrupt handlers by vector: drivers claim the vectors of external interrupts, IPIs
//! and the NMI here, and `trap::dispatch` runs the claimed handler before it treats the
//! vector as an exception. A handler that serves a local-APIC vector sends the EOI itself
//! (the spurious vector must not be EOI'd, SDM 10.9).

use core::sync::atomic::{AtomicUsize, Ordering};

use super::idt::TrapFrame;

/// An interrupt handler; it may edit the frame like an exception handler can.
pub type Handler = fn(&mut TrapFrame);

/// Handler addresses (0: unclaimed).
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Claim `vector` for `handler`.
pub fn register(vector: u8, handler: Handler) {
    HANDLERS[vector as usize].store(handler as usize, Ordering::SeqCst);
}

/// Release `vector`: it is an unexpected exception again.
pub fn unregister(vector: u8) {
    HANDLERS[vector as usize].store(0, Ordering::SeqCst);
}

/// The handler claimed for `vector`, if any.
pub fn handler(vector: u64) -> Option<Handler> {
    let p = HANDLERS.get(vector as usize)?.load(Ordering::SeqCst);
    if p == 0 {
        return None;
    }
    // SAFETY: non-zero entries are only ever stored from a `Handler` by `register`.
    Some(unsafe { core::mem::transmute::<usize, Handler>(p) })
}
