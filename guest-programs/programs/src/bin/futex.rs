//! `futex`: FUTEX_WAIT and FUTEX_WAKE with one thread per process. WAIT on a word that
//! changed is EAGAIN, a WAIT with a timeout ends in ETIMEDOUT, a WAKE with nobody waiting
//! wakes 0; argument errors (unaligned, bad pointer, bad timeout, unknown op); and a
//! shared word in MAP_SHARED memory: the parent waits, a child stores and wakes it.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::mm::{mmap, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE};
use vmrt::sys::nr::*;
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};
use vmrt::sys::time::{clock_gettime, CLOCK_MONOTONIC};
use vmrt::sys::{call, Errno};

vmrt::entry!(main);

const FUTEX_WAIT: usize = 0;
const FUTEX_WAKE: usize = 1;
const FUTEX_WAIT_BITSET: usize = 9;
const FUTEX_PRIVATE: usize = 128;

fn futex(addr: usize, op: usize, val: usize, timeout: usize, val3: usize) -> Result<usize, Errno> {
    // SAFETY: addresses are valid or deliberately bad.
    unsafe { call(SYS_futex, &[addr, op, val, timeout, 0, val3]) }
}

fn now() -> u64 {
    clock_gettime(CLOCK_MONOTONIC).map_or(0, |t| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

static WORD: AtomicU32 = AtomicU32::new(7);

fn main() -> i32 {
    let mut r = Report::new();
    let w = WORD.as_ptr() as usize;
    println!(
        "WAIT on a changed word: {:?}",
        futex(w, FUTEX_WAIT | FUTEX_PRIVATE, 8, 0, 0).err()
    );
    let t = [0i64, 20_000_000];
    let t0 = now();
    println!(
        "WAIT with a 20 ms timeout: {:?}",
        futex(w, FUTEX_WAIT | FUTEX_PRIVATE, 7, t.as_ptr() as usize, 0).err()
    );
    r.check("it waited at least 20 ms", now() - t0 >= 20_000_000);
    r.check(
        "WAKE with nobody waiting wakes 0",
        futex(w, FUTEX_WAKE | FUTEX_PRIVATE, 1, 0, 0) == Ok(0),
    );
    r.check("shared WAKE too", futex(w, FUTEX_WAKE, 10, 0, 0) == Ok(0));
    println!(
        "WAIT unaligned: {:?}",
        futex(w + 1, FUTEX_WAIT, 7, 0, 0).err()
    );
    println!(
        "WAIT on a bad pointer: {:?}",
        futex(8, FUTEX_WAIT, 7, 0, 0).err()
    );
    let bad = [0i64, -1];
    println!(
        "WAIT with a bad timeout: {:?}",
        futex(w, FUTEX_WAIT, 7, bad.as_ptr() as usize, 0).err()
    );
    println!(
        "WAIT_BITSET with bitset 0: {:?}",
        futex(w, FUTEX_WAIT_BITSET, 7, 0, 0).err()
    );
    println!("an unknown op: {:?}", futex(w, 99, 0, 0, 0).err());
    // Cross-process: a shared word, the parent waits, the child wakes it.
    // SAFETY: a fresh anonymous shared mapping.
    let Ok(p) = (unsafe {
        mmap(
            0,
            4096,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
    }) else {
        r.fail();
        return 1;
    };
    // SAFETY: the mapping is 4 KiB, aligned, and lives until exit.
    let word = unsafe { &*(p as *const AtomicU32) };
    let p = p as usize;
    word.store(0, Ordering::SeqCst);
    match fork() {
        Ok(Fork::Child) => {
            let t = [0i64, 30_000_000];
            // SAFETY: a valid timespec.
            let _ = unsafe { call(SYS_nanosleep, &[t.as_ptr() as usize, 0]) };
            word.store(1, Ordering::SeqCst);
            let n = futex(p, FUTEX_WAKE, 1, 0, 0);
            exit_group(if n == Ok(1) { 0 } else { 1 });
        }
        Ok(Fork::Parent(pid)) => {
            let mut woke = false;
            for _ in 0..100 {
                match futex(p, FUTEX_WAIT, 0, 0, 0) {
                    Ok(0) => {
                        woke = true;
                        break;
                    }
                    Err(Errno::EAGAIN) => break,
                    _ => {}
                }
            }
            r.check(
                "the parent was woken",
                woke && word.load(Ordering::SeqCst) == 1,
            );
            let st = wait4(pid, 0).map(|(_, s)| s.exit_status());
            r.check("the child's WAKE woke one waiter", st == Ok(0));
        }
        Err(_) => r.fail(),
    }
    r.exit_status()
}
