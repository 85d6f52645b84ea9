//! `sparse`: a 16 TiB `MAP_NORESERVE` mapping touched at three pages, forked, and
//! unmapped. Unmapping and forking must cost work proportional to the page tables
//! present, not to the size of the range (16 TiB is 2^32 pages): the system tests time
//! the two system calls in guest instructions from the fault trace.
//!
//! 1. Map 16 TiB read-write, private, anonymous, without reserve; write a byte at its
//!    first page, at 8 TiB and at its last page.
//! 2. Fork; the child reads the three bytes back (copy-on-write copies of the tables),
//!    and exits with their sum.
//! 3. The parent reports the child's status, unmaps the 16 TiB and maps it again to
//!    check the range is free and reads back as zero.
//!
//! With the argument `dense`, instead: 8 MiB are mapped and every page written, then
//! unmapped (the kernel frees them in pieces, rescheduling in between) and mapped again,
//! reading back zero.
//!
//! Exit status 0 if every check held.
#![no_std]
#![no_main]

use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::mm::{
    mmap, munmap, MAP_ANONYMOUS, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, PAGE_SIZE, PROT_NONE,
    PROT_READ, PROT_WRITE,
};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};

vmrt::entry!(main);

/// The mapping's size.
const LEN: usize = 16 << 40;
/// Offsets of the touched bytes and their values.
const TOUCHED: [(usize, u8); 3] = [(0, 1), (LEN / 2, 2), (LEN - PAGE_SIZE, 3)];

fn map() -> *mut u8 {
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    match unsafe {
        mmap(
            0,
            LEN,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    } {
        Ok(p) => p,
        Err(e) => {
            println!("mmap 16 TiB: {e}");
            exit_group(1);
        }
    }
}

/// The dense case's size.
const DENSE_LEN: usize = 8 << 20;

fn dense() -> i32 {
    let mut r = Report::new();
    let Ok(p) = vmrt::sys::mm::mmap_anonymous(DENSE_LEN) else {
        return 1;
    };
    let mut off = 0;
    while off < DENSE_LEN {
        // SAFETY: inside the mapping.
        unsafe { p.add(off).write_volatile(0x5a) };
        off += PAGE_SIZE;
    }
    println!("wrote {} pages", DENSE_LEN / PAGE_SIZE);
    // SAFETY: nothing uses the mapping afterwards.
    r.check(
        "munmap 8 MiB written",
        unsafe { munmap(p, DENSE_LEN) }.is_ok(),
    );
    let Ok(q) = vmrt::sys::mm::mmap_anonymous(DENSE_LEN) else {
        return 1;
    };
    let mut zero = true;
    off = 0;
    while off < DENSE_LEN {
        // SAFETY: inside the new mapping.
        zero &= unsafe { q.add(off).read_volatile() } == 0;
        off += PAGE_SIZE;
    }
    r.check("mapped again, reads zero", zero);
    r.exit_status()
}

fn main() -> i32 {
    if vmrt::env::arg(1).is_some_and(|a| a.as_bytes() == b"dense") {
        return dense();
    }
    let mut r = Report::new();
    let p = map();
    println!("mapped 16 TiB");
    for (off, v) in TOUCHED {
        // SAFETY: inside the mapping.
        unsafe { p.add(off).write_volatile(v) };
    }
    println!("touched {} pages", TOUCHED.len());
    match fork() {
        Ok(Fork::Child) => {
            // SAFETY: inside the mapping (inherited).
            let sum: u8 = TOUCHED
                .iter()
                .map(|&(off, _)| unsafe { p.add(off).read_volatile() })
                .sum();
            exit_group(sum as i32);
        }
        Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
            Ok((_, st)) => {
                println!("child exited with {}", st.exit_status());
                r.check(
                    "child saw the three bytes",
                    st.exited() && st.exit_status() == 6,
                );
            }
            Err(e) => {
                println!("wait4: {e}");
                r.fail();
            }
        },
        Err(e) => {
            println!("fork: {e}");
            r.fail();
        }
    }
    // SAFETY: nothing uses the mapping afterwards.
    match unsafe { munmap(p, LEN) } {
        Ok(()) => println!("munmap 16 TiB: ok"),
        Err(e) => {
            println!("munmap: {e}");
            r.fail();
        }
    }
    let q = map();
    // SAFETY: inside the new mapping.
    let zero = TOUCHED
        .iter()
        .all(|&(off, _)| unsafe { q.add(off).read_volatile() } == 0);
    r.check("mapped again, reads zero", zero);
    // SAFETY: nothing uses it afterwards.
    r.check("munmap again", unsafe { munmap(q, LEN) }.is_ok());
    // MAP_POPULATE of a mapping nothing may access populates nothing: no loop over
    // 2^32 pages.
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    let n = unsafe {
        mmap(
            0,
            LEN,
            PROT_NONE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE,
            -1,
            0,
        )
    };
    r.check("16 TiB PROT_NONE MAP_POPULATE returns", n.is_ok());
    if let Ok(n) = n {
        // SAFETY: nothing uses it afterwards.
        r.check("and unmaps", unsafe { munmap(n, LEN) }.is_ok());
    }
    r.exit_status()
}
