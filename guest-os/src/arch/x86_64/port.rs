//! x86 I/O port access (`in`/`out` instructions).
//!
//! All functions are `unsafe`: writing to an I/O port can have arbitrary side effects on the
//! machine (devices may DMA, reset the machine, ...). Callers must know which device owns the
//! port.

use core::arch::asm;

/// Reads a byte from `port`.
///
/// # Safety
/// The caller must own the device at `port` and know that reading it has no harmful effect.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags));
    value
}

/// Writes a byte to `port`.
///
/// # Safety
/// The caller must own the device at `port` and know the effect of the write.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
}

/// Reads a 16-bit word from `port`.
///
/// # Safety
/// See [`inb`].
#[inline]
pub unsafe fn inw(port: u16) -> u16 {
    let value: u16;
    asm!("in ax, dx", out("ax") value, in("dx") port, options(nomem, nostack, preserves_flags));
    value
}

/// Writes a 16-bit word to `port`.
///
/// # Safety
/// See [`outb`].
#[inline]
pub unsafe fn outw(port: u16, value: u16) {
    asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags));
}

/// Reads a 32-bit doubleword from `port`.
///
/// # Safety
/// See [`inb`].
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags));
    value
}

/// Writes a 32-bit doubleword to `port`.
///
/// # Safety
/// See [`outb`].
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags));
}
