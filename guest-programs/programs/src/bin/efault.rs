//! `efault`: system calls given bad user pointers must fail with `EFAULT`
//! (never crash the kernel, never succeed, never kill the caller).
//!
//! A fixed-seed xorshift generator picks 1000 bad pointers from four
//! classes:
//!
//! * **kernel**: the upper canonical half (`0xffff_8000_0000_0000..`);
//! * **unmapped**: inside a 1 MiB hole the program mapped and unmapped
//!   again (nothing is mapped there afterwards);
//! * **non-canonical**: top byte neither 0x00 nor 0xff (non-canonical with
//!   both 4- and 5-level paging);
//! * **NULL + offset**: the first 60 KiB, below any mapping.
//!
//! Each pointer (with a random length of 1..=4096 where there is one) goes
//! to seven calls whose Linux result for a bad pointer is `EFAULT`:
//! `write` to a pipe (empty, so nothing blocks), `read` from a pipe holding
//! one byte (so there is data to copy), `uname`, `fstat`, `clock_gettime`
//! (the system call, not the vDSO), `pipe2` (the kernel must also release
//! the two descriptors it allocated) and `openat` (a bad path pointer).
//! Both pipes are non-blocking so a kernel bug shows as a wrong errno, not
//! a hang.
//!
//! Prints the count of pointers per class, `EFAULT` counts per call, a
//! final `1000/1000 EFAULT`, and checks that the pipes' contents and the
//! descriptor table are unchanged. Exit status 0 if all of it held.
#![no_std]
#![no_main]

use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::fs::{close, pipe2, read, write, AT_FDCWD, O_NONBLOCK, O_RDONLY};
use vmrt::sys::mm::{mmap_anonymous, munmap};
use vmrt::sys::nr::*;
use vmrt::sys::time::CLOCK_MONOTONIC;
use vmrt::sys::{check, syscall2, syscall3, syscall4, Errno, SysResult};

vmrt::entry!(main);

/// Number of bad pointers.
const N: u32 = 1000;
/// Size of the unmapped hole.
const HOLE: usize = 1 << 20;
/// Longest buffer passed to read/write.
const MAX_LEN: u64 = 4096;

/// xorshift64* (Vigna): small, fast and fully deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const CLASSES: [&str; 4] = ["kernel", "unmapped", "non-canonical", "NULL + offset"];
const CALLS: [&str; 7] = [
    "write",
    "read",
    "uname",
    "fstat",
    "clock_gettime",
    "pipe2",
    "openat",
];

/// A bad pointer of class `class`; `hole` is the unmapped region's start.
fn bad_pointer(rng: &mut Rng, class: usize, hole: usize) -> usize {
    let r = rng.next();
    match class {
        0 => (0xffff_8000_0000_0000 | r) as usize,
        1 => hole + (r as usize % (HOLE - MAX_LEN as usize)),
        2 => {
            let top = 1 + (r >> 56) % 254; // 0x01..=0xfe
            ((r & 0x00ff_ffff_ffff_ffff) | (top << 56)) as usize
        }
        _ => (r % (0xf000 - MAX_LEN)) as usize,
    }
}

/// Issues call number `call` with the bad pointer `p`.
fn bad_call(call: usize, p: usize, len: usize, fds: &Fds) -> SysResult<usize> {
    // SAFETY: every pointer argument is unusable by construction; the
    // kernel must reject it without touching our memory.
    unsafe {
        check(match call {
            0 => syscall3(SYS_write, fds.empty_w as usize, p, len),
            1 => syscall3(SYS_read, fds.full_r as usize, p, len),
            2 => syscall2(SYS_uname, p, 0),
            3 => syscall2(SYS_fstat, fds.full_r as usize, p),
            4 => syscall2(SYS_clock_gettime, CLOCK_MONOTONIC as usize, p),
            5 => syscall2(SYS_pipe2, p, 0),
            _ => syscall4(SYS_openat, AT_FDCWD as usize, p, O_RDONLY as usize, 0),
        })
    }
}

/// The two pipes: one kept empty (written to), one holding a byte (read).
struct Fds {
    empty_r: i32,
    empty_w: i32,
    full_r: i32,
    full_w: i32,
}

fn main() -> i32 {
    let mut r = Report::new();
    let setup = || -> SysResult<(Fds, usize, (i32, i32))> {
        // The lowest free descriptors, to compare with at the end.
        let probe = pipe2(0)?;
        close(probe.0)?;
        close(probe.1)?;
        let (empty_r, empty_w) = pipe2(O_NONBLOCK)?;
        let (full_r, full_w) = pipe2(O_NONBLOCK)?;
        write(full_w, b"x")?;
        let hole = mmap_anonymous(HOLE)?;
        // SAFETY: nothing uses the fresh mapping.
        unsafe { munmap(hole, HOLE)? };
        let fds = Fds {
            empty_r,
            empty_w,
            full_r,
            full_w,
        };
        Ok((fds, hole as usize, probe))
    };
    let (fds, hole, probe) = match setup() {
        Ok(v) => v,
        Err(e) => {
            println!("setup failed: {e:?}");
            return 1;
        }
    };

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut per_class = [0u32; CLASSES.len()];
    let mut per_call = [0u32; CALLS.len()];
    let mut all_efault = 0;
    let mut reported = 0;
    for _ in 0..N {
        let class = (rng.next() % CLASSES.len() as u64) as usize;
        let p = bad_pointer(&mut rng, class, hole);
        let len = 1 + (rng.next() % MAX_LEN) as usize;
        per_class[class] += 1;
        let mut ok = true;
        for (call, count) in per_call.iter_mut().enumerate() {
            let res = bad_call(call, p, len, &fds);
            if res == Err(Errno::EFAULT) {
                *count += 1;
            } else {
                ok = false;
                if reported < 5 {
                    reported += 1;
                    println!(
                        "unexpected: {} with a {} pointer returned {res:?}",
                        CALLS[call], CLASSES[class]
                    );
                }
            }
        }
        all_efault += u32::from(ok);
    }

    for (name, n) in CLASSES.iter().zip(per_class) {
        println!("{name} pointers: {n}");
    }
    for (name, n) in CALLS.iter().zip(per_call) {
        println!("{name}: {n}/{N} EFAULT");
        if n != N {
            r.fail();
        }
    }

    let mut byte = [0u8; 2];
    r.check(
        "read pipe still holds its one byte",
        read(fds.full_r, &mut byte) == Ok(1) && byte[0] == b'x',
    );
    r.check(
        "write pipe still empty",
        read(fds.empty_r, &mut byte) == Err(Errno::EAGAIN),
    );
    for fd in [fds.empty_r, fds.empty_w, fds.full_r, fds.full_w] {
        let _ = close(fd);
    }
    r.check(
        "no descriptors leaked (pipe2 gets the same numbers as before)",
        pipe2(0).is_ok_and(|p| p == probe),
    );
    println!("{all_efault}/{N} EFAULT");
    if all_efault != N {
        r.fail();
    }
    r.exit_status()
}
