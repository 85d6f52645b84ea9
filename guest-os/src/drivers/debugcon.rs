//! QEMU's `isa-debugcon` (port 0x402): a byte stream to the host. The kernel reports how the
//! machine's one job ended on it (`exit N`, `signal S`, `panic`), because the isa-debug-exit
//! status cannot carry it: QEMU exits with `(value << 1) | 1`, truncated to 8 bits.
//! vmscope implements the same device; `vmscope run` reads the line.

use core::fmt::Write;

use crate::arch::x86_64::port::outb;

/// The debugcon port (QEMU's default `iobase`).
pub const DEBUGCON_PORT: u16 = 0x402;

struct Debugcon;

impl Write for Debugcon {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            // SAFETY: writing the debugcon port only emits a byte to the host.
            unsafe { outb(DEBUGCON_PORT, b) };
        }
        Ok(())
    }
}

/// The init process exited with `status` (0..=255).
pub fn report_exit(status: u8) {
    let _ = writeln!(Debugcon, "exit {status}");
}

/// The init process was killed by signal `sig`.
pub fn report_signal(sig: u8) {
    let _ = writeln!(Debugcon, "signal {sig}");
}

/// The kernel panicked.
pub fn report_panic() {
    let _ = writeln!(Debugcon, "panic");
}
