//! `mmap`: anonymous private mappings and how the kernel's VMA list and page
//! faults treat them. Every fact is relative (offsets from a mapping's
//! start, errno names, yes/no), so the output is the same on Linux and under
//! the guest kernel:
//!
//! * a fresh mapping reads as zero and keeps what is written;
//! * `munmap` of two pages in the middle splits the VMA: both remaining
//!   parts keep their contents, the hole faults with `SEGV_MAPERR` at the
//!   exact address (`si_addr`);
//! * `mprotect` to `PROT_READ` / `PROT_NONE` splits the VMA again: writes
//!   (and for `PROT_NONE` reads) fault with `SEGV_ACCERR`; contents survive
//!   the round trip back to read-write; `mprotect` over a hole is `ENOMEM`;
//! * `MAP_FIXED` replaces part of a mapping with fresh zero pages;
//!   `MAP_FIXED_NOREPLACE` refuses (`EEXIST`) over a mapping but fills a hole;
//! * argument checks: unaligned `munmap`/`mprotect` and zero lengths are
//!   `EINVAL`; unmapping nothing succeeds;
//! * `mremap` grows a mapping (`MREMAP_MAYMOVE`) keeping its contents, with
//!   zero pages after them; it cannot grow in place into a neighbour without
//!   `MREMAP_MAYMOVE` (`ENOMEM`); shrinking unmaps the tail;
//! * `madvise(MADV_DONTNEED)` drops private anonymous pages: they read back
//!   as zero, the neighbours are untouched;
//! * `mincore` reports exactly the pages that were written (untouched
//!   anonymous pages have no page; transparent huge pages are disabled for
//!   that mapping so a write cannot populate its neighbours).
//!
//! Faults are caught with [`vmrt::fault`] (a SIGSEGV `SA_SIGINFO` handler
//! that resumes after the faulting access). Exit status 0 if every check
//! passed, 1 otherwise.
#![no_std]
#![no_main]

use core::slice;

use vmrt::fault::{self, Fault};
use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::mm::*;
use vmrt::sys::signal::{SEGV_ACCERR, SEGV_MAPERR, SIGSEGV};
use vmrt::sys::{Errno, SysResult};

vmrt::entry!(main);

const P: usize = PAGE_SIZE;

/// Byte written at offset `i` of a test region (never 0).
fn pattern(i: usize) -> u8 {
    (i % 251) as u8 + 1
}

/// Fills `[base + from, base + from + len)` with [`pattern`] (by offset
/// from `base`).
///
/// # Safety
/// The range must be mapped read-write.
unsafe fn fill(base: *mut u8, from: usize, len: usize) {
    for i in from..from + len {
        base.add(i).write_volatile(pattern(i));
    }
}

/// Whether the range holds [`pattern`].
///
/// # Safety
/// The range must be mapped readable.
unsafe fn has_pattern(base: *const u8, from: usize, len: usize) -> bool {
    slice::from_raw_parts(base.add(from), len)
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(from + i))
}

/// Whether the range is all zero.
///
/// # Safety
/// The range must be mapped readable.
unsafe fn is_zero(base: *const u8, from: usize, len: usize) -> bool {
    slice::from_raw_parts(base.add(from), len)
        .iter()
        .all(|&b| b == 0)
}

/// Prints how an access at `base + off` went and checks that it faulted
/// with SIGSEGV/`code` at exactly that address.
fn expect_fault<T>(
    r: &mut Report,
    what: &str,
    res: Result<T, Fault>,
    base: usize,
    off: usize,
    code: i32,
) {
    match res {
        Ok(_) => {
            println!("{what}: no fault");
            r.fail();
        }
        Err(f) => {
            let rel = f.addr.wrapping_sub(base);
            if rel < (1 << 32) {
                println!("{what}: {f}, si_addr = start + {rel}");
            } else {
                println!("{what}: {f}, si_addr outside the mapping");
            }
            if f.signo != SIGSEGV || f.code != code || rel != off {
                r.fail();
            }
        }
    }
}

/// Prints the outcome of a call expected to fail with `want`.
fn expect_err<T>(r: &mut Report, what: &str, res: SysResult<T>, want: Errno) {
    match res {
        Ok(_) => {
            println!("{what}: succeeded");
            r.fail();
        }
        Err(e) => {
            println!("{what}: {e:?}");
            if e != want {
                r.fail();
            }
        }
    }
}

/// Unwraps a call that must succeed; otherwise reports it and ends the
/// program (later steps depend on it).
fn must<T>(what: &str, res: SysResult<T>) -> T {
    match res {
        Ok(v) => v,
        Err(e) => {
            println!("{what}: failed with {e:?}");
            vmrt::sys::proc::exit_group(1)
        }
    }
}

fn main() -> i32 {
    let mut r = Report::new();
    must("install SIGSEGV handler", fault::install());

    // --- A fresh 8-page private anonymous mapping -------------------------
    let p = must("mmap 8 pages", mmap_anonymous(8 * P));
    let base = p as usize;
    // SAFETY (all raw accesses below): they stay within ranges that the
    // preceding calls left mapped with the needed permission.
    r.check("8 fresh pages read as zero", unsafe {
        is_zero(p, 0, 8 * P)
    });
    unsafe { fill(p, 0, 8 * P) };
    r.check("pattern written and read back", unsafe {
        has_pattern(p, 0, 8 * P)
    });

    // --- munmap two pages in the middle: the VMA splits in two -------------
    must("munmap pages 3-4", unsafe { munmap(p.add(3 * P), 2 * P) });
    r.check("pages 0-2 intact after the hole", unsafe {
        has_pattern(p, 0, 3 * P)
    });
    r.check("pages 5-7 intact after the hole", unsafe {
        has_pattern(p, 5 * P, 3 * P)
    });
    expect_fault(
        &mut r,
        "read in the hole (page 3)",
        fault::read_u8(base + 3 * P + 17),
        base,
        3 * P + 17,
        SEGV_MAPERR,
    );
    expect_fault(
        &mut r,
        "write in the hole (page 4)",
        unsafe { fault::write_u8(p.add(5 * P - 1), 1) },
        base,
        5 * P - 1,
        SEGV_MAPERR,
    );

    // --- mprotect: read-only and no-access pieces ---------------------------
    must("mprotect pages 0-1 PROT_READ", unsafe {
        mprotect(p, 2 * P, PROT_READ)
    });
    r.check("read-only pages still readable", unsafe {
        has_pattern(p, 0, 2 * P)
    });
    expect_fault(
        &mut r,
        "write to a PROT_READ page",
        unsafe { fault::write_u8(p.add(100), 0) },
        base,
        100,
        SEGV_ACCERR,
    );
    r.check(
        "page 2 (outside the mprotect) still writable",
        unsafe { fault::write_u8(p.add(2 * P + 5), pattern(2 * P + 5)) }.is_ok(),
    );
    must("mprotect page 1 PROT_NONE", unsafe {
        mprotect(p.add(P), P, PROT_NONE)
    });
    expect_fault(
        &mut r,
        "read of a PROT_NONE page",
        fault::read_u8(base + P + 1),
        base,
        P + 1,
        SEGV_ACCERR,
    );
    must("mprotect pages 0-1 back to read-write", unsafe {
        mprotect(p, 2 * P, PROT_READ | PROT_WRITE)
    });
    r.check(
        "write after restoring PROT_WRITE works",
        unsafe { fault::write_u8(p.add(100), pattern(100)) }.is_ok(),
    );
    r.check("contents survived the protection changes", unsafe {
        has_pattern(p, 0, 3 * P)
    });
    expect_err(
        &mut r,
        "mprotect over the hole",
        unsafe { mprotect(p.add(2 * P), 2 * P, PROT_READ) },
        Errno::ENOMEM,
    );
    expect_err(
        &mut r,
        "mprotect of an unaligned address",
        unsafe { mprotect(p.add(1), P, PROT_READ) },
        Errno::EINVAL,
    );

    // --- MAP_FIXED replaces, MAP_FIXED_NOREPLACE refuses --------------------
    let anon = MAP_PRIVATE | MAP_ANONYMOUS;
    let rw = PROT_READ | PROT_WRITE;
    let q = must("MAP_FIXED over pages 5-6", unsafe {
        mmap(base + 5 * P, 2 * P, rw, anon | MAP_FIXED, -1, 0)
    });
    r.check(
        "MAP_FIXED mapping is at the requested address",
        q == unsafe { p.add(5 * P) },
    );
    r.check("replaced pages read as zero", unsafe {
        is_zero(p, 5 * P, 2 * P)
    });
    r.check("page 7 (not replaced) intact", unsafe {
        has_pattern(p, 7 * P, P)
    });
    expect_err(
        &mut r,
        "MAP_FIXED_NOREPLACE over page 0",
        unsafe { mmap(base, P, rw, anon | MAP_FIXED_NOREPLACE, -1, 0) },
        Errno::EEXIST,
    );
    r.check("page 0 unchanged by the refused mapping", unsafe {
        has_pattern(p, 0, P)
    });
    let h = must("MAP_FIXED_NOREPLACE into the hole", unsafe {
        mmap(base + 3 * P, 2 * P, rw, anon | MAP_FIXED_NOREPLACE, -1, 0)
    });
    r.check(
        "hole filled at the requested address",
        h == unsafe { p.add(3 * P) },
    );
    r.check("filled hole reads as zero", unsafe {
        is_zero(p, 3 * P, 2 * P)
    });

    // --- Argument checks -----------------------------------------------------
    expect_err(
        &mut r,
        "munmap of an unaligned address",
        unsafe { munmap(p.add(1), P) },
        Errno::EINVAL,
    );
    expect_err(
        &mut r,
        "munmap with length 0",
        unsafe { munmap(p, 0) },
        Errno::EINVAL,
    );
    expect_err(
        &mut r,
        "mmap with length 0",
        mmap_anonymous(0),
        Errno::EINVAL,
    );
    must("munmap all 8 pages", unsafe { munmap(p, 8 * P) });
    r.check(
        "munmap of an already unmapped range succeeds",
        unsafe { munmap(p, 8 * P) }.is_ok(),
    );
    expect_fault(
        &mut r,
        "read after munmap",
        fault::read_u8(base),
        base,
        0,
        SEGV_MAPERR,
    );

    // --- mremap ----------------------------------------------------------------
    let a = must("mmap 2 pages", mmap_anonymous(2 * P));
    unsafe { fill(a, 0, 2 * P) };
    let b = must("mremap 2 -> 16 pages (MREMAP_MAYMOVE)", unsafe {
        mremap(a, 2 * P, 16 * P, MREMAP_MAYMOVE, 0)
    });
    r.check("grown mapping keeps the first 2 pages", unsafe {
        has_pattern(b, 0, 2 * P)
    });
    r.check("grown part reads as zero", unsafe {
        is_zero(b, 2 * P, 14 * P)
    });
    r.check(
        "last page of the grown mapping writable",
        unsafe { fault::write_u8(b.add(16 * P - 1), 9) }.is_ok(),
    );
    let c = must("mremap 16 -> 1 page", unsafe { mremap(b, 16 * P, P, 0, 0) });
    r.check("shrinking stays in place", c == b);
    r.check("shrunk mapping keeps page 0", unsafe {
        has_pattern(c, 0, P)
    });
    expect_fault(
        &mut r,
        "read past the shrunk end",
        fault::read_u8(b as usize + P),
        b as usize,
        P,
        SEGV_MAPERR,
    );
    must("munmap the remapped page", unsafe { munmap(c, P) });
    let d = must("mmap 3 pages", mmap_anonymous(3 * P));
    expect_err(
        &mut r,
        "mremap page 0 to 2 pages without MAYMOVE",
        unsafe { mremap(d, P, 2 * P, 0, 0) },
        Errno::ENOMEM,
    );
    must("munmap 3 pages", unsafe { munmap(d, 3 * P) });

    // --- madvise(MADV_DONTNEED) ---------------------------------------------------
    let e = must("mmap 4 pages", mmap_anonymous(4 * P));
    unsafe { fill(e, 0, 4 * P) };
    must("madvise pages 1-2 MADV_DONTNEED", unsafe {
        madvise(e.add(P), 2 * P, MADV_DONTNEED)
    });
    r.check("dropped pages read back as zero", unsafe {
        is_zero(e, P, 2 * P)
    });
    r.check("pages 0 and 3 keep their contents", unsafe {
        has_pattern(e, 0, P) && has_pattern(e, 3 * P, P)
    });
    must("munmap 4 pages", unsafe { munmap(e, 4 * P) });

    // --- mincore ------------------------------------------------------------------
    let m = must("mmap 8 pages", mmap_anonymous(8 * P));
    // With (multi-size) THP a single write could populate a whole folio of
    // neighbours. Kernels without THP reject the advice: that is fine too.
    let _ = unsafe { madvise(m, 8 * P, MADV_NOHUGEPAGE) };
    for page in [0, 2, 5] {
        unsafe { m.add(page * P + 8).write_volatile(1) };
    }
    let mut vec = [0u8; 8];
    must("mincore 8 pages", mincore(m, 8 * P, &mut vec));
    let mut line = [b'-'; 8];
    for (i, v) in vec.iter().enumerate() {
        if v & 1 != 0 {
            line[i] = b'R';
        }
    }
    println!(
        "mincore after writing pages 0, 2, 5: {}",
        core::str::from_utf8(&line).unwrap_or("?")
    );
    if line != *b"R-R--R--" {
        r.fail();
    }
    expect_err(
        &mut r,
        "mincore of an unaligned address",
        mincore(unsafe { m.add(1) }, P, &mut vec),
        Errno::EINVAL,
    );
    must("munmap 8 pages", unsafe { munmap(m, 8 * P) });
    expect_err(
        &mut r,
        "mincore of an unmapped range",
        mincore(m, P, &mut vec),
        Errno::ENOMEM,
    );

    println!("failed checks: {}", r.failures());
    r.exit_status()
}
