//! `oom`: a program that touches more memory than the machine has is killed by the OOM
//! killer (SIGKILL), and the kernel lives on.
//!
//! The size comes from `MemTotal` in /proc/meminfo, so the program adapts to the machine:
//! it maps `MemTotal` + 64 MiB (MAP_NORESERVE) and writes one byte per page. Without an
//! argument a child does this and the parent reports how the child ended
//! (`child killed by signal 9`); with `self` the program does it itself (as init it then
//! ends with status 137). Only meant to run in the guest, whose memory is small: natively
//! it would fill the host's memory.
#![no_std]
#![no_main]

use vmrt::println;
use vmrt::procfs::value;
use vmrt::sys::mm::{
    mmap, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE,
};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};

vmrt::entry!(main);

/// Touched beyond MemTotal.
const EXTRA: usize = 64 << 20;

fn hog(bytes: usize) -> ! {
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    let p = match unsafe {
        mmap(
            0,
            bytes,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    } {
        Ok(p) => p,
        Err(e) => {
            println!("mmap: {e}");
            exit_group(1);
        }
    };
    let mut off = 0;
    while off < bytes {
        // SAFETY: inside the mapping.
        unsafe { p.add(off).write_volatile(1) };
        off += PAGE_SIZE;
    }
    println!("touched {} MiB and survived", bytes >> 20);
    exit_group(1);
}

fn main() -> i32 {
    let total_kb = match vmrt::io::read_file(c"/proc/meminfo") {
        Ok(m) => value(&m, "MemTotal").unwrap_or(0) as usize,
        Err(e) => {
            println!("/proc/meminfo: {e}");
            return 1;
        }
    };
    let bytes = (total_kb << 10) + EXTRA;
    if vmrt::env::arg(1).is_some_and(|a| a.as_bytes() == b"self") {
        hog(bytes);
    }
    match fork() {
        Ok(Fork::Child) => hog(bytes),
        Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
            Ok((_, st)) if st.signaled() => {
                println!("child killed by signal {}", st.term_signal());
                0
            }
            Ok((_, st)) => {
                println!("child exited with {}", st.exit_status());
                1
            }
            Err(e) => {
                println!("wait4: {e}");
                1
            }
        },
        Err(e) => {
            println!("fork: {e}");
            1
        }
    }
}
