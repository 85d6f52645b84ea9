//! Basic CPU control instructions (interrupt flag, halt).

use core::arch::asm;

/// Disables maskable interrupts and halts forever.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops this CPU; it touches no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
