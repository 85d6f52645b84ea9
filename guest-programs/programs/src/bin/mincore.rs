//! `mincore`: the kernel checks mincore's arguments before doing any work, and fills the
//! vector in bounded steps however long the range.
//!
//! Two pages are mapped, the first one touched. Then:
//! - `mincore(p, 2 pages)`: `10`;
//! - `mincore(p, 1 << 40)`: ENOMEM (the range runs past the mapping), after filling the
//!   mapped part;
//! - an unaligned address: EINVAL; length 0: 0; an unmapped range: ENOMEM;
//! - a vector pointer the kernel cannot write (NULL + 1, a kernel address): EFAULT;
//! - a range beyond user space: ENOMEM.
//!
//! Exit status 0 if every result is Linux's.
#![no_std]
#![no_main]

use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::mm::{mmap_anonymous, munmap, PAGE_SIZE};
use vmrt::sys::nr::SYS_mincore;
use vmrt::sys::{check, syscall3, Errno, SysResult};

vmrt::entry!(main);

/// The raw call: the runtime's wrapper insists on a big enough vector.
fn mincore(addr: usize, len: usize, vec: usize) -> SysResult<usize> {
    // SAFETY: the kernel validates every argument; callers pass vectors that are either
    // large enough for what the kernel writes before failing or deliberately bad.
    check(unsafe { syscall3(SYS_mincore, addr, len, vec) })
}

/// The mincore vector.
static mut VEC: [u8; 4096] = [0; 4096];

fn show(r: &mut Report, what: &str, got: SysResult<usize>, want: SysResult<usize>) {
    println!("{what}: {got:?}");
    r.check(what, got == want);
}

fn main() -> i32 {
    let mut r = Report::new();
    let p = match mmap_anonymous(2 * PAGE_SIZE) {
        Ok(p) => p as usize,
        Err(e) => {
            println!("mmap: {e}");
            return 1;
        }
    };
    // SAFETY: inside the mapping.
    unsafe { (p as *mut u8).write_volatile(1) };
    // A static vector: far below the top of user space, so `access_ok(vec, 1 << 28)`
    // holds natively and in the guest alike.
    // SAFETY: the only reference to VEC.
    let vec = unsafe { &mut *core::ptr::addr_of_mut!(VEC) };
    *vec = [0xaa; 4096];
    let v = vec.as_mut_ptr() as usize;
    show(&mut r, "two pages", mincore(p, 2 * PAGE_SIZE, v), Ok(0));
    println!("vector: {} {}", vec[0] & 1, vec[1] & 1);
    *vec = [0xaa; 4096];
    show(
        &mut r,
        "1 << 40 bytes",
        mincore(p, 1 << 40, v),
        Err(Errno::ENOMEM),
    );
    println!("vector: {} {}", vec[0] & 1, vec[1] & 1);
    show(
        &mut r,
        "unaligned",
        mincore(p + 1, PAGE_SIZE, v),
        Err(Errno::EINVAL),
    );
    show(&mut r, "length 0", mincore(p, 0, v), Ok(0));
    show(
        &mut r,
        "NULL + 1 vector",
        mincore(p, 2 * PAGE_SIZE, 1),
        Err(Errno::EFAULT),
    );
    show(
        &mut r,
        "kernel vector",
        mincore(p, 2 * PAGE_SIZE, 0xffff_8000_0000_0000),
        Err(Errno::EFAULT),
    );
    show(
        &mut r,
        "beyond user space",
        mincore(p, usize::MAX - p, v),
        Err(Errno::ENOMEM),
    );
    // SAFETY: not used afterwards.
    r.check(
        "munmap",
        unsafe { munmap(p as *mut u8, 2 * PAGE_SIZE) }.is_ok(),
    );
    show(
        &mut r,
        "unmapped",
        mincore(p, PAGE_SIZE, v),
        Err(Errno::ENOMEM),
    );
    r.exit_status()
}
