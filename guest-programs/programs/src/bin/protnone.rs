//! `protnone`: a PROT_NONE page keeps its data but nobody reaches it, not even the kernel
//! on the program's behalf.
//!
//! 1. Write 17 bytes into a fresh page, `mprotect(PROT_NONE)` it.
//! 2. `write(1, p, 17)` must fail with EFAULT (the kernel must not read the page), and
//!    `mincore` still reports the page resident (it is mapped, only inaccessible).
//! 3. Fork while it is PROT_NONE: the child makes it readable and checks the data.
//! 4. `mprotect(PROT_READ)` in the parent: now `write(1, p, 17)` prints the bytes.
//!
//! Exit status 0 if every check held.
#![no_std]
#![no_main]

use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::fs::write;
use vmrt::sys::mm::{mincore, mmap_anonymous, mprotect, munmap, PAGE_SIZE, PROT_NONE, PROT_READ};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};
use vmrt::sys::Errno;

vmrt::entry!(main);

/// What the page holds: 17 bytes, a line of its own.
const DATA: &[u8; 17] = b"protected: 12345\n";

fn main() -> i32 {
    let mut r = Report::new();
    let p = match mmap_anonymous(PAGE_SIZE) {
        Ok(p) => p,
        Err(e) => {
            println!("mmap: {e}");
            return 1;
        }
    };
    // SAFETY: a fresh read-write page.
    unsafe { core::ptr::copy_nonoverlapping(DATA.as_ptr(), p, DATA.len()) };
    // SAFETY: nothing reads the page through Rust references while it is PROT_NONE.
    r.check(
        "mprotect PROT_NONE",
        unsafe { mprotect(p, PAGE_SIZE, PROT_NONE) }.is_ok(),
    );
    // SAFETY: the kernel only reads (or refuses to read) the page.
    let w = write(1, unsafe { core::slice::from_raw_parts(p, DATA.len()) });
    println!("write from a PROT_NONE page: {w:?}");
    r.check("write gives EFAULT", w == Err(Errno::EFAULT));
    let mut vec = [0u8; 1];
    r.check(
        "mincore: still resident",
        mincore(p, PAGE_SIZE, &mut vec).is_ok() && vec[0] & 1 == 1,
    );
    match fork() {
        Ok(Fork::Child) => {
            // SAFETY: making the page readable again, then reading it.
            let ok = unsafe { mprotect(p, PAGE_SIZE, PROT_READ) }.is_ok()
                && unsafe { core::slice::from_raw_parts(p, DATA.len()) } == DATA;
            exit_group(if ok { 0 } else { 1 });
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0);
            r.check(
                "child read the data after fork",
                st.is_ok_and(|(_, s)| s.exited() && s.exit_status() == 0),
            );
        }
        Err(e) => {
            println!("fork: {e}");
            r.fail();
        }
    }
    // SAFETY: readable again; then the kernel reads it.
    r.check(
        "mprotect PROT_READ",
        unsafe { mprotect(p, PAGE_SIZE, PROT_READ) }.is_ok(),
    );
    let w = write(1, unsafe { core::slice::from_raw_parts(p, DATA.len()) });
    r.check("write after PROT_READ", w == Ok(DATA.len()));
    // SAFETY: not used afterwards.
    r.check("munmap", unsafe { munmap(p, PAGE_SIZE) }.is_ok());
    r.exit_status()
}
