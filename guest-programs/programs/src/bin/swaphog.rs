//! `swaphog [MIB] [MODE]`: touch MIB MiB (default 32) of private anonymous memory in a
//! fixed pattern, then checksum it forwards and backwards: on a machine with less memory
//! the pages must go to swap and come back intact, so the checksums are those of the
//! host. Modes:
//! - none: the program itself;
//! - `vmstat`: the same, then the guest's reclaim counters from /proc/vmstat;
//! - `parent`: a child does it; the parent reports how the child ended (exit status or
//!   signal, e.g. killed by the OOM killer without swap), then touches 16 MiB of its own
//!   and says whether MemFree came back to within 1% of what it was before the child.
//!
//! The pattern: word `i` (8 bytes) holds `i * 0x9e3779b97f4a7c15`. The forward checksum
//! folds the words from the first, the backward one from the last (xor, then a rotate),
//! so a page lost, duplicated or misplaced changes both.
#![no_std]
#![no_main]

use vmrt::println;
use vmrt::procfs::value;
use vmrt::sys::mm::{mmap, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};

vmrt::entry!(main);

/// MiB touched without an argument: fits in the default guest (the acceptance runs pass
/// 256 with `--mem 64M` and a swap disk).
const DEFAULT_MIB: usize = 32;
/// What the parent touches after the child.
const AGAIN_MIB: usize = 16;
/// The /proc/vmstat counters the `vmstat` mode prints.
const REPORTED: [&str; 7] = [
    "pswp",
    "pgscan",
    "pgsteal",
    "workingset",
    "pgmajfault",
    "swap_ra",
    "oom_kill",
];
/// 1% of MemFree, as a divisor.
const PERCENT: u64 = 100;

/// The pattern: word `i` holds `i * PATTERN_MUL` (odd, so every word differs), cheap
/// enough that the kernel's work, not the program's, dominates a run.
const PATTERN_MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// One step of a checksum: order-sensitive (a rotate between words).
fn fold(acc: u64, w: u64) -> u64 {
    (acc ^ w).rotate_left(7)
}

fn map(bytes: usize) -> *mut u64 {
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    match unsafe {
        mmap(
            0,
            bytes,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    } {
        Ok(p) => p.cast(),
        Err(e) => {
            println!("mmap of {} MiB: {e}", bytes >> 20);
            exit_group(1);
        }
    }
}

/// Fill, then checksum both ways; returns the two checksums.
fn hog(mib: usize) -> (u64, u64) {
    let bytes = mib << 20;
    let words = bytes / 8;
    let p = map(bytes);
    for i in 0..words {
        // SAFETY: inside the mapping.
        unsafe {
            p.add(i)
                .write_volatile((i as u64).wrapping_mul(PATTERN_MUL))
        };
    }
    let mut fwd = 0u64;
    for i in 0..words {
        // SAFETY: inside the mapping.
        fwd = fold(fwd, unsafe { p.add(i).read_volatile() });
    }
    let mut back = 0u64;
    for i in (0..words).rev() {
        // SAFETY: inside the mapping.
        back = fold(back, unsafe { p.add(i).read_volatile() });
    }
    (fwd, back)
}

fn report(mib: usize) {
    let (fwd, back) = hog(mib);
    println!("touched {mib} MiB");
    println!("forward checksum: {fwd:016x}");
    println!("backward checksum: {back:016x}");
}

fn memfree() -> u64 {
    vmrt::io::read_file(c"/proc/meminfo")
        .ok()
        .and_then(|m| value(&m, "MemFree"))
        .unwrap_or(0)
}

fn main() -> i32 {
    let mib = vmrt::env::arg(1)
        .and_then(|a| core::str::from_utf8(a.as_bytes()).ok())
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_MIB);
    let mode = vmrt::env::arg(2).map(|a| a.as_bytes());
    if mode == Some(b"vmstat") {
        report(mib);
        // The guest's reclaim counters, after the checksums (not compared with the host).
        if let Ok(v) = vmrt::io::read_file(c"/proc/vmstat") {
            let text = core::str::from_utf8(&v).unwrap_or("");
            for l in text.lines() {
                if REPORTED.iter().any(|p| l.starts_with(p)) {
                    println!("{l}");
                }
            }
        }
        return 0;
    }
    if mode != Some(b"parent") {
        report(mib);
        return 0;
    }
    let before = memfree();
    let ok = match fork() {
        Ok(Fork::Child) => {
            report(mib);
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
            Ok((_, st)) if st.signaled() => {
                println!("child killed by signal {}", st.term_signal());
                true
            }
            Ok((_, st)) => {
                println!("child exited with {}", st.exit_status());
                true
            }
            Err(e) => {
                println!("wait4: {e}");
                false
            }
        },
        Err(e) => {
            println!("fork: {e}");
            false
        }
    };
    let after = memfree();
    let back = after + before / PERCENT >= before;
    println!("MemFree back within 1%: {}", vmrt::io::yes_no(back));
    let (fwd, _) = hog(AGAIN_MIB);
    println!("touched {AGAIN_MIB} MiB again: {fwd:016x}");
    if ok && back {
        0
    } else {
        1
    }
}
