//! `brk`: exercises the program break the way Linux defines it, printing
//! only relative facts (differences, yes/no), never addresses, so the output
//! is identical natively and under the guest kernel:
//!
//! * `brk(0)` queries without changing anything; the initial break is
//!   page-aligned and lies at or after the end of `.bss` (`_end`);
//! * growing by 3 pages + 1 byte returns exactly the requested break, and
//!   all 12289 new bytes read as zero, then hold what we write;
//! * shrinking to 1 page keeps that page's contents; growing again gives
//!   zero-filled memory where the released pages were;
//! * requests below the initial break, or far beyond user space, fail by
//!   returning the current break unchanged (the raw syscall never returns
//!   an errno);
//! * shrinking back to the initial break works.
//!
//! This program must not allocate: the global allocator takes its memory
//! from the break.
#![no_std]
#![no_main]

use core::ptr;

use vmrt::println;
use vmrt::sys::mm::{brk, current_brk, PAGE_SIZE};

vmrt::entry!(main);

extern "C" {
    /// End of `.bss`, defined by `linker/user.ld`.
    static _end: u8;
}

/// Bytes the test grows the break by: 3 pages and 1 byte (deliberately not
/// page-aligned).
const GROW: usize = 3 * PAGE_SIZE + 1;

/// An address far beyond the 47-bit user address space.
const FAR_AWAY: usize = 1 << 47;

/// Exit status when a check fails.
const FAILED: i32 = 1;

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The byte written at offset `i` (never 0, so "zero" and "written" differ).
fn pattern(i: usize) -> u8 {
    (i % 251) as u8 + 1
}

/// Whether all `len` bytes at `base + from ..` are zero.
///
/// # Safety
/// The range must be mapped and readable.
unsafe fn all_zero(base: usize, from: usize, len: usize) -> bool {
    (from..from + len).all(|i| ptr::read_volatile((base + i) as *const u8) == 0)
}

/// Whether the bytes at `base + from ..` hold [`pattern`].
///
/// # Safety
/// The range must be mapped and readable.
unsafe fn has_pattern(base: usize, from: usize, len: usize) -> bool {
    (from..from + len).all(|i| ptr::read_volatile((base + i) as *const u8) == pattern(i))
}

fn main() -> i32 {
    let mut ok = true;
    let mut report = |what: &str, good: bool| {
        println!("{what} = {}", yes_no(good));
        ok &= good;
    };

    let b0 = current_brk();
    report("brk(0) is stable", current_brk() == b0);
    report("initial break page-aligned", b0.is_multiple_of(PAGE_SIZE));
    // Taking the address of an extern static is safe; we never read it.
    let end = ptr::addr_of!(_end) as usize;
    report("initial break >= _end", b0 >= end);

    // SAFETY: nothing uses memory above the initial break (no allocation).
    let grown = unsafe { brk(b0 + GROW) };
    report(
        "grow by 3 pages + 1 byte returns the request",
        grown == b0 + GROW,
    );
    println!("brk(0) - initial = {}", current_brk().wrapping_sub(b0));
    if grown != b0 + GROW {
        return FAILED;
    }

    // SAFETY (all accesses below): they stay within the current break.
    report("new memory is zero", unsafe { all_zero(b0, 0, GROW) });
    for i in 0..GROW {
        unsafe { ptr::write_volatile((b0 + i) as *mut u8, pattern(i)) };
    }
    report("wrote and read back every byte", unsafe {
        has_pattern(b0, 0, GROW)
    });

    let shrunk = unsafe { brk(b0 + PAGE_SIZE) };
    report(
        "shrink to 1 page returns the request",
        shrunk == b0 + PAGE_SIZE,
    );
    println!("brk(0) - initial = {}", current_brk().wrapping_sub(b0));
    report("first page kept its contents", unsafe {
        has_pattern(b0, 0, PAGE_SIZE)
    });

    let regrown = unsafe { brk(b0 + 2 * PAGE_SIZE) };
    report(
        "grow to 2 pages returns the request",
        regrown == b0 + 2 * PAGE_SIZE,
    );
    if regrown != b0 + 2 * PAGE_SIZE {
        return FAILED;
    }
    report("released page comes back zero-filled", unsafe {
        all_zero(b0, PAGE_SIZE, PAGE_SIZE)
    });
    report("first page still intact", unsafe {
        has_pattern(b0, 0, PAGE_SIZE)
    });

    let before = current_brk();
    let below = unsafe { brk(b0 - PAGE_SIZE) };
    report(
        "brk below the initial break leaves it unchanged",
        below == before,
    );
    let far = unsafe { brk(FAR_AWAY) };
    report("brk beyond user space leaves it unchanged", far == before);
    println!("brk(0) - initial = {}", current_brk().wrapping_sub(b0));

    let restored = unsafe { brk(b0) };
    report("shrink back to the initial break", restored == b0);
    println!("brk(0) - initial = {}", current_brk().wrapping_sub(b0));

    if ok {
        0
    } else {
        FAILED
    }
}
