//! Leaving the machine through QEMU's `isa-debug-exit` device.
//!
//! Writing `value` to the device makes QEMU exit with status `(value << 1) | 1`; the vmscope
//! CLI maps a raw status `r` to `r >> 1`, so both report `value`.

use crate::arch::x86_64::{cpu::halt_forever, port::outl};

/// I/O port of the isa-debug-exit device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Value written on a clean shutdown (QEMU exit status 1).
pub const EXIT_SUCCESS: u32 = 0;
/// Value written when a self-test (`selftest=` on the command line) failed.
pub const EXIT_SELFTEST_FAILED: u32 = 1;
/// Value written after a kernel panic (QEMU exit status 201).
pub const EXIT_KERNEL_PANIC: u32 = 100;

/// Exits the machine with `value`. If no debug-exit device is present, halts forever.
pub fn exit(value: u32) -> ! {
    // SAFETY: port DEBUG_EXIT_PORT belongs to the debug-exit device; writing it ends the VM.
    unsafe { outl(DEBUG_EXIT_PORT, value) };
    halt_forever()
}
