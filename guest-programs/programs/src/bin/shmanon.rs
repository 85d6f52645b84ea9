//! `shmanon`: `MAP_SHARED | MAP_ANONYMOUS` memory is one object shared by every process
//! that maps it, whatever they do to their own mappings.
//!
//! 1. Map 4 shared pages: nothing is resident before a touch (`mincore`), one page after
//!    one write.
//! 2. `MADV_DONTNEED` drops this process's mapping, not the data: the page is still
//!    resident (in the object) and reads back what was written.
//! 3. Fork: the child makes the mapping read-only, then read-write again, writes two
//!    pages, drops one with `MADV_DONTNEED` and writes it again. The parent must see
//!    every write (no copy-on-write on shared memory).
//! 4. `MADV_FREE` is accepted on private anonymous memory (0) and refused on shared
//!    memory (EINVAL), as Linux does.
//!
//! Exit status 0 if every check held.
#![no_std]
#![no_main]

use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::mm::{
    madvise, mincore, mmap, mmap_anonymous, mprotect, munmap, MADV_DONTNEED, MADV_FREE,
    MAP_ANONYMOUS, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE,
};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};
use vmrt::sys::Errno;

vmrt::entry!(main);

const PAGES: usize = 4;
const LEN: usize = PAGES * PAGE_SIZE;

/// Resident pages of `[p, p + LEN)`, as a string of 0 and 1.
fn resident(p: *mut u8) -> [u8; PAGES] {
    let mut v = [0u8; PAGES];
    let _ = mincore(p, LEN, &mut v);
    v.map(|b| b'0' + (b & 1))
}

fn show(what: &str, p: *mut u8) {
    let v = resident(p);
    println!(
        "{what}: resident {}",
        core::str::from_utf8(&v).unwrap_or("?")
    );
}

fn child(p: *mut u8) -> ! {
    // SAFETY: the inherited shared mapping; every access stays inside it.
    let ok = unsafe {
        mprotect(p, LEN, PROT_READ).is_ok()
            && mprotect(p, LEN, PROT_READ | PROT_WRITE).is_ok()
            && {
                p.add(PAGE_SIZE).write_volatile(b'B');
                p.write_volatile(b'C');
                madvise(p.add(2 * PAGE_SIZE), PAGE_SIZE, MADV_DONTNEED).is_ok()
            }
            && {
                p.add(2 * PAGE_SIZE).write_volatile(b'D');
                true
            }
    };
    exit_group(if ok { 0 } else { 1 });
}

fn main() -> i32 {
    let mut r = Report::new();
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    let p = match unsafe {
        mmap(
            0,
            LEN,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
    } {
        Ok(p) => p,
        Err(e) => {
            println!("mmap: {e}");
            return 1;
        }
    };
    show("after mmap", p);
    // SAFETY: inside the mapping.
    unsafe { p.write_volatile(b'A') };
    show("after one write", p);
    // SAFETY: drops the mapping of page 0 (shared: the data stays).
    r.check(
        "madvise DONTNEED",
        unsafe { madvise(p, PAGE_SIZE, MADV_DONTNEED) }.is_ok(),
    );
    show("after DONTNEED", p);
    // SAFETY: inside the mapping.
    r.check(
        "data kept after DONTNEED",
        unsafe { p.read_volatile() } == b'A',
    );
    match fork() {
        Ok(Fork::Child) => child(p),
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0);
            r.check(
                "child ran",
                st.is_ok_and(|(_, s)| s.exited() && s.exit_status() == 0),
            );
        }
        Err(e) => {
            println!("fork: {e}");
            r.fail();
        }
    }
    // SAFETY: inside the mapping.
    let seen = unsafe {
        [
            p.read_volatile(),
            p.add(PAGE_SIZE).read_volatile(),
            p.add(2 * PAGE_SIZE).read_volatile(),
        ]
    };
    println!("parent sees {}", core::str::from_utf8(&seen).unwrap_or("?"));
    r.check("child's writes shared", seen == *b"CBD");
    show("after the child", p);
    // SAFETY: advice only.
    let shared_free = unsafe { madvise(p, LEN, MADV_FREE) };
    println!("MADV_FREE on shared memory: {shared_free:?}");
    r.check(
        "MADV_FREE shared: EINVAL",
        shared_free == Err(Errno::EINVAL),
    );
    match mmap_anonymous(LEN) {
        Ok(q) => {
            // SAFETY: inside the private mapping; then advice on it.
            unsafe { q.write_volatile(1) };
            let f = unsafe { madvise(q, LEN, MADV_FREE) };
            println!("MADV_FREE on private memory: {f:?}");
            r.check("MADV_FREE private: 0", f.is_ok());
            // SAFETY: not used afterwards.
            let _ = unsafe { munmap(q, LEN) };
        }
        Err(e) => {
            println!("mmap private: {e}");
            r.fail();
        }
    }
    // SAFETY: not used afterwards.
    r.check("munmap", unsafe { munmap(p, LEN) }.is_ok());
    r.exit_status()
}
