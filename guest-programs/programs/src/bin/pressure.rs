//! `pressure FILE MIB`: a file-reading and an anon-touching workload competing for memory,
//! to see how `vm.swappiness` balances reclaim between them. It reads FILE through the
//! page cache, touches MIB MiB of anonymous memory, then reads FILE again and touches the
//! memory again, and prints the reclaim counters of /proc/vmstat: with swappiness 0 the
//! kernel reclaims file pages first (pgsteal_file far above pgsteal_anon), with 200 it
//! swaps anonymous memory first.
//!
//! Kernel-describing: not compared with native Linux.
#![no_std]
#![no_main]

use vmrt::println;
use vmrt::sys::fs::{close, open, read, O_RDONLY};
use vmrt::sys::mm::{mmap, MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE};

vmrt::entry!(main);

/// The /proc/vmstat counters printed at the end.
const REPORTED: [&str; 9] = [
    "pgscan_anon",
    "pgscan_file",
    "pgsteal_anon",
    "pgsteal_file",
    "pswpin",
    "pswpout",
    "workingset_refault_anon",
    "workingset_refault_file",
    "pgmajfault",
];
/// The read buffer.
const CHUNK: usize = 64 << 10;

/// Read `path` to the end; the bytes read.
fn read_file(path: &core::ffi::CStr) -> usize {
    let Ok(fd) = open(path, O_RDONLY, 0) else {
        println!("open {path:?} failed");
        vmrt::sys::proc::exit_group(1);
    };
    let mut buf = [0u8; CHUNK];
    let mut total = 0;
    while let Ok(n) = read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    let _ = close(fd);
    total
}

fn touch(p: *mut u8, len: usize, round: u8) {
    let mut off = 0;
    while off < len {
        // SAFETY: inside the mapping.
        unsafe { p.add(off).write_volatile(round) };
        off += PAGE_SIZE;
    }
}

fn main() -> i32 {
    let Some(path) = vmrt::env::arg(1) else {
        println!("usage: pressure FILE MIB");
        return 2;
    };
    let mib: usize = vmrt::env::arg(2)
        .and_then(|a| core::str::from_utf8(a.as_bytes()).ok())
        .and_then(|a| a.parse().ok())
        .unwrap_or(32);
    let len = mib << 20;
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    let Ok(p) = (unsafe {
        mmap(
            0,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
    }) else {
        println!("mmap failed");
        return 1;
    };
    for round in 1..=2u8 {
        let n = read_file(path.as_cstr());
        touch(p, len, round);
        println!("round {round}: read {} KiB, touched {mib} MiB", n >> 10);
    }
    if let Ok(v) = vmrt::io::read_file(c"/proc/vmstat") {
        let text = core::str::from_utf8(&v).unwrap_or("");
        for l in text.lines() {
            if REPORTED.iter().any(|k| l.split(' ').next() == Some(*k)) {
                println!("{l}");
            }
        }
    }
    0
}
