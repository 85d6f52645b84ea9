//! `memlimits`: the memory resource limits.
//!
//! `RLIMIT_STACK` bounds how far the stack may grow. Each case runs in a
//! child: it sets its soft stack limit, then writes one byte some depth below
//! its stack pointer, which the kernel must satisfy by extending the
//! grows-down stack mapping (Linux's `expand_stack`, checked against the
//! limit at fault time) or refuse with SIGSEGV. The parent prints how each
//! child ended.
//!
//! `RLIMIT_AS` bounds the address space (`may_expand_vm`): in a child with a
//! 64 MiB limit, mmap, brk and mremap asking for 128 MiB more fail (ENOMEM;
//! brk leaves the break where it was), a 1 MiB mmap works.
//!
//! The output is the same on Linux and on the guest kernel:
//!
//! ```text
//! limit 8 MiB (default), 1 MiB below the stack pointer: exited 0
//! limit 256 KiB, 1 MiB below the stack pointer: killed by SIGSEGV
//! limit 4 MiB, 1 MiB below the stack pointer: exited 0
//! limit 4 MiB, 6 MiB below the stack pointer: killed by SIGSEGV
//! RLIMIT_AS 64 MiB: mmap 128 MiB: ENOMEM
//! RLIMIT_AS 64 MiB: brk +128 MiB: refused
//! RLIMIT_AS 64 MiB: mremap to 128 MiB: ENOMEM
//! RLIMIT_AS 64 MiB: mmap 1 MiB: ok
//! ```
#![no_std]
#![no_main]

use core::arch::asm;

use vmrt::println;
use vmrt::sys::mm::{brk, current_brk, mmap_anonymous, mremap, MREMAP_MAYMOVE};
use vmrt::sys::proc::{
    exit_group, fork, getrlimit, setrlimit, wait4, Fork, Rlimit, RLIMIT_AS, RLIMIT_STACK,
};
use vmrt::sys::Errno;

vmrt::entry!(main);

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Write one byte `depth` bytes below the stack pointer.
fn touch_below_sp(depth: u64) {
    let sp: u64;
    // SAFETY: reads RSP only.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    // SAFETY: the address is below the stack; the kernel grows the stack to it or
    // the process dies of SIGSEGV, which is what the case checks.
    unsafe { core::ptr::write_volatile((sp - depth) as *mut u8, 1) };
}

/// Run one case in a child; the child's fate as text.
fn case(limit: Option<u64>, depth: u64) -> &'static str {
    match fork() {
        Ok(Fork::Child) => {
            if let Some(cur) = limit {
                let max = getrlimit(RLIMIT_STACK).map_or(cur, |r| r.max);
                if setrlimit(RLIMIT_STACK, Rlimit { cur, max }).is_err() {
                    exit_group(2);
                }
            }
            touch_below_sp(depth);
            exit_group(0)
        }
        Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
            Ok((_, s)) if s.exited() && s.exit_status() == 0 => "exited 0",
            Ok((_, s)) if s.exited() => "exited with an error",
            Ok((_, s)) if s.signaled() && s.term_signal() == 11 => "killed by SIGSEGV",
            Ok(_) => "killed by another signal",
            Err(_) => "wait4 failed",
        },
        Err(_) => "fork failed",
    }
}

fn size(bytes: u64) -> (u64, &'static str) {
    if bytes >= MIB {
        (bytes / MIB, "MiB")
    } else {
        (bytes / KIB, "KiB")
    }
}

/// The RLIMIT_AS cases, in a child (its limit must not reach the parent).
fn address_space_limit() {
    const LIMIT: u64 = 64 * MIB;
    const BIG: usize = 128 << 20;
    match fork() {
        Ok(Fork::Child) => {
            let max = getrlimit(RLIMIT_AS).map_or(LIMIT, |r| r.max);
            if setrlimit(RLIMIT_AS, Rlimit { cur: LIMIT, max }).is_err() {
                exit_group(2);
            }
            let show = |r: Result<*mut u8, Errno>| match r {
                Ok(_) => "ok",
                Err(Errno::ENOMEM) => "ENOMEM",
                Err(_) => "another error",
            };
            println!(
                "RLIMIT_AS 64 MiB: mmap 128 MiB: {}",
                show(mmap_anonymous(BIG))
            );
            let old = current_brk();
            // SAFETY: a refused brk changes nothing; a granted one only adds memory.
            let new = unsafe { brk(old + BIG) };
            println!(
                "RLIMIT_AS 64 MiB: brk +128 MiB: {}",
                if new == old { "refused" } else { "granted" }
            );
            let small = mmap_anonymous(4096);
            let grown = small.and_then(|p| {
                // SAFETY: the page is this child's own fresh mapping.
                unsafe { mremap(p, 4096, BIG, MREMAP_MAYMOVE, 0) }
            });
            println!("RLIMIT_AS 64 MiB: mremap to 128 MiB: {}", show(grown));
            println!(
                "RLIMIT_AS 64 MiB: mmap 1 MiB: {}",
                show(mmap_anonymous(1 << 20))
            );
            exit_group(0)
        }
        Ok(Fork::Parent(pid)) => {
            let _ = wait4(pid, 0);
        }
        Err(_) => println!("fork failed"),
    }
}

fn main() -> i32 {
    let cases: [(Option<u64>, u64); 4] = [
        (None, MIB),
        (Some(256 * KIB), MIB),
        (Some(4 * MIB), MIB),
        (Some(4 * MIB), 6 * MIB),
    ];
    for (limit, depth) in cases {
        let (d, du) = size(depth);
        let fate = case(limit, depth);
        match limit {
            None => println!("limit 8 MiB (default), {d} {du} below the stack pointer: {fate}"),
            Some(l) => {
                let (n, u) = size(l);
                println!("limit {n} {u}, {d} {du} below the stack pointer: {fate}");
            }
        }
    }
    address_space_limit();
    0
}
