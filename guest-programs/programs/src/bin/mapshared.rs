//! `mapshared`: what a MAP_SHARED file mapping may do follows the file's open mode, as
//! Linux's `do_mmap` computes VM_MAYWRITE from it.
//!
//! The program opens one of the bundled programs (`$VMSCOPE_BIN/hello`, `/bin/hello` in
//! the guest) read-only, then:
//! - `mmap(PROT_READ, MAP_SHARED)` works and shows the ELF magic;
//! - `mprotect(PROT_READ | PROT_WRITE)` on it: EACCES (no VM_MAYWRITE);
//! - `mmap(PROT_READ | PROT_WRITE, MAP_SHARED)`: EACCES;
//! - a MAP_PRIVATE mapping of the same file may become writable (copy-on-write).
//!
//! Exit status 0 if every result is Linux's.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::string::String;

use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::fs::{close, open, O_RDONLY};
use vmrt::sys::mm::{
    mmap, mprotect, munmap, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE,
};
use vmrt::sys::Errno;

vmrt::entry!(main);

fn main() -> i32 {
    let mut r = Report::new();
    let dir = match vmrt::env::var("VMSCOPE_BIN") {
        Some(d) => String::from_utf8_lossy(d.as_bytes()).into_owned(),
        None => String::from("/bin"),
    };
    let Ok(path) = CString::new(alloc::format!("{dir}/hello")) else {
        return 1;
    };
    let fd = match open(&path, O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) => {
            println!("open hello: {e}");
            return 1;
        }
    };
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    let map = |prot, flags| unsafe { mmap(0, PAGE_SIZE, prot, flags, fd, 0) };
    match map(PROT_READ, MAP_SHARED) {
        Ok(p) => {
            // SAFETY: a readable mapping of at least 4 bytes of the file.
            let magic = unsafe { core::slice::from_raw_parts(p, 4) };
            r.check(
                "shared read-only mapping shows the ELF magic",
                magic == b"\x7fELF",
            );
            // SAFETY: asking for write access to a mapping nothing writes.
            let m = unsafe { mprotect(p, PAGE_SIZE, PROT_READ | PROT_WRITE) };
            println!("mprotect(PROT_WRITE) on a MAP_SHARED O_RDONLY mapping: {m:?}");
            r.check("mprotect: EACCES", m == Err(Errno::EACCES));
            // SAFETY: not used afterwards.
            let _ = unsafe { munmap(p, PAGE_SIZE) };
        }
        Err(e) => {
            println!("mmap shared read-only: {e}");
            r.fail();
        }
    }
    let w = map(PROT_READ | PROT_WRITE, MAP_SHARED);
    println!(
        "mmap(PROT_WRITE, MAP_SHARED) of an O_RDONLY file: {:?}",
        w.map(|_| ())
    );
    r.check("mmap: EACCES", w.err() == Some(Errno::EACCES));
    match map(PROT_READ, MAP_PRIVATE) {
        Ok(p) => {
            // SAFETY: a private mapping: writes go to a private copy.
            let ok = unsafe { mprotect(p, PAGE_SIZE, PROT_READ | PROT_WRITE) }.is_ok();
            r.check("private mapping made writable", ok);
            if ok {
                // SAFETY: writable now.
                unsafe { p.write_volatile(b'#') };
                r.check("private copy written", unsafe { p.read_volatile() } == b'#');
            }
            // SAFETY: not used afterwards.
            let _ = unsafe { munmap(p, PAGE_SIZE) };
        }
        Err(e) => {
            println!("mmap private: {e}");
            r.fail();
        }
    }
    let _ = close(fd);
    r.exit_status()
}
