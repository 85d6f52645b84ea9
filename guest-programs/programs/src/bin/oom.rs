//! `oom`: a program that touches more memory than the machine has is killed by the OOM
//! killer (SIGKILL), and the kernel lives on and gets the memory back.
//!
//! The size comes from `MemTotal` in /proc/meminfo, so the program adapts to the machine:
//! it maps `MemTotal` + 64 MiB (MAP_NORESERVE) and fills it. Modes (the first argument):
//! - none: a child writes one byte per page of private memory;
//! - `uaccess`: the kernel writes the child's memory (`getrandom`, one byte per page), so
//!   the pages run out in the kernel's `copy_to_user`;
//! - `shmem`: the memory is MAP_SHARED|MAP_ANONYMOUS;
//! - `self`: the program itself writes (as init it then ends with status 137);
//! - `victim`: the child first writes 3/4 of MemTotal, then forks a grandchild that
//!   writes the rest: the OOM killer takes the child, the largest process, not the
//!   faulting grandchild, which then has memory again (`grandchild survived`).
//!
//! The parent prints how the child ended (`child killed by signal 9`) and whether MemFree
//! came back to within 2 MiB of what it was before the child. Only meant to run in the
//! guest, whose memory is small: natively it would fill the host's memory.
#![no_std]
#![no_main]

use vmrt::println;
use vmrt::procfs::value;
use vmrt::sys::fs::{pipe2, read, write};
use vmrt::sys::info::getrandom;
use vmrt::sys::mm::{
    mmap, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE,
};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};

vmrt::entry!(main);

/// Touched beyond MemTotal.
const EXTRA: usize = 64 << 20;
/// How far MemFree may stay below its earlier value (slab caches keep some pages).
const SLACK_KB: u64 = 2 << 10;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Private,
    Uaccess,
    Shmem,
}

fn meminfo(key: &str) -> u64 {
    match vmrt::io::read_file(c"/proc/meminfo") {
        Ok(m) => value(&m, key).unwrap_or(0),
        Err(e) => {
            println!("/proc/meminfo: {e}");
            exit_group(1);
        }
    }
}

fn hog(bytes: usize, mode: Mode) -> ! {
    let kind = if mode == Mode::Shmem {
        MAP_SHARED
    } else {
        MAP_PRIVATE
    };
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    let p = match unsafe {
        mmap(
            0,
            bytes,
            PROT_READ | PROT_WRITE,
            kind | MAP_ANONYMOUS | MAP_NORESERVE,
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
        if mode == Mode::Uaccess {
            // SAFETY: one byte inside the mapping, which the kernel writes.
            let buf = unsafe { core::slice::from_raw_parts_mut(p.add(off), 1) };
            let _ = getrandom(buf, 0);
        } else {
            // SAFETY: inside the mapping.
            unsafe { p.add(off).write_volatile(1) };
        }
        off += PAGE_SIZE;
    }
    println!("touched {} MiB and survived", bytes >> 20);
    exit_group(1);
}

/// Write `len` fresh bytes of private memory, one per page.
fn fill(len: usize) -> bool {
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    let Ok(p) = (unsafe {
        mmap(
            0,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    }) else {
        return false;
    };
    let mut off = 0;
    while off < len {
        // SAFETY: inside the mapping.
        unsafe { p.add(off).write_volatile(1) };
        off += PAGE_SIZE;
    }
    true
}

/// The `victim` mode's child: fork a grandchild that waits on a pipe, take 3/4 of
/// memory, then let the grandchild take half: it runs out, and the child is the largest.
fn big_then_small(total: usize) -> ! {
    let Ok((rd, wr)) = pipe2(0) else {
        exit_group(1);
    };
    match fork() {
        Ok(Fork::Child) => {
            let mut b = [0u8; 1];
            let _ = read(rd, &mut b);
            if fill(total / 2) {
                println!("grandchild survived");
            }
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => {
            let ok = fill(total / 4 * 3);
            let _ = write(wr, b"x");
            let _ = wait4(pid, 0);
            exit_group(if ok { 0 } else { 1 });
        }
        Err(_) => exit_group(1),
    }
}

fn main() -> i32 {
    let bytes = ((meminfo("MemTotal") as usize) << 10) + EXTRA;
    let arg = vmrt::env::arg(1).map(|a| a.as_bytes());
    let mode = match arg {
        Some(b"self") => hog(bytes, Mode::Private),
        Some(b"victim") => {
            let total = (meminfo("MemTotal") as usize) << 10;
            return match fork() {
                Ok(Fork::Child) => big_then_small(total),
                Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
                    Ok((_, st)) if st.signaled() => {
                        println!("child killed by signal {}", st.term_signal());
                        // The orphaned grandchild is ours now: wait for it too.
                        let _ = wait4(-1, 0);
                        0
                    }
                    _ => 1,
                },
                Err(_) => 1,
            };
        }
        Some(b"uaccess") => Mode::Uaccess,
        Some(b"shmem") => Mode::Shmem,
        _ => Mode::Private,
    };
    let free_before = meminfo("MemFree");
    let status = match fork() {
        Ok(Fork::Child) => hog(bytes, mode),
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
    };
    let back = meminfo("MemFree") + SLACK_KB >= free_before;
    println!("memory given back: {}", vmrt::io::yes_no(back));
    if back {
        status
    } else {
        1
    }
}
