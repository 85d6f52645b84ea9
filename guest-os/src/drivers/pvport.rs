//! The vmscope paravirtual port (`emulator/src/devices/pvport.rs`): detects vmscope and
//! reads its retired-instruction counter, the virtual clock, for benchmarks that count
//! instructions.
//!
//! 32-bit registers at [`BASE`] (0x0e90): +0 the signature "VMSC", +4 the low half of the
//! instruction count (reading it latches the high half), +8 the latched high half;
//! +0x10..+0x1f are reserved for trace annotations. QEMU has no device there and an `in`
//! reads all ones, so [`present`] is false and [`icount`] is `None` under QEMU.

use crate::arch::x86_64::port::inl;

/// The first port of the device.
pub const BASE: u16 = 0x0e90;
/// What the signature register reads on vmscope: "VMSC" as a little-endian `u32`.
pub const SIGNATURE: u32 = u32::from_le_bytes(*b"VMSC");

const SIGNATURE_REG: u16 = BASE;
const ICOUNT_LO: u16 = BASE + 0x4;
const ICOUNT_HI: u16 = BASE + 0x8;

/// Whether the machine is vmscope: the signature register reads [`SIGNATURE`].
pub fn present() -> bool {
    // SAFETY: reading the signature has no side effect on vmscope; on other machines no
    // device decodes the port in QEMU's `pc` (the read floats).
    unsafe { inl(SIGNATURE_REG) == SIGNATURE }
}

/// The number of instructions vmscope retired before the `in` that read the low half, or
/// `None` when not running on vmscope.
///
/// The two halves are consistent: reading the low half latches the high half. The
/// sequence is not atomic against an interrupt handler that reads the counter between the
/// two reads; callers that read it from interrupt context must disable interrupts.
pub fn icount() -> Option<u64> {
    if !present() {
        return None;
    }
    // SAFETY: the device exists (checked above); reading these registers only latches the
    // high half of the count, which this sequence reads next.
    let (lo, hi) = unsafe { (inl(ICOUNT_LO), inl(ICOUNT_HI)) };
    Some(u64::from(hi) << 32 | u64::from(lo))
}
