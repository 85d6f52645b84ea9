//! `stack`: grows the main thread's stack by several MiB through deep
//! recursion, the way the kernel must support it: every new stack page
//! below the current stack VMA is a page fault that extends the
//! grows-down mapping (up to `RLIMIT_STACK`, 8 MiB by default).
//!
//! Each of the 5000 frames holds a 1 KiB buffer filled with a pattern that
//! depends on its depth; on the way back up every frame checks that its
//! buffer survived the deeper frames' page faults and folds it into a
//! checksum. Then one function with a 512 KiB local array (touched by the
//! compiler's stack probes one page at a time, then filled) checks that a
//! single big frame works too.
//!
//! Prints the depth, the checksum and yes/no facts; nothing depends on
//! addresses or frame sizes, which differ with the optimisation level.
//!
//! ```text
//! recursion depth reached: 5000
//! stack grew by at least 4 MiB: yes
//! every frame intact on return: yes
//! checksum: 0x8ed274806cf9b0ad
//! second recursion gives the same checksum: yes
//! 512 KiB frame filled and summed: 66583588
//! ```
#![no_std]
#![no_main]

use core::hint::black_box;

use vmrt::io::Report;
use vmrt::println;

vmrt::entry!(main);

/// Number of nested calls.
const DEPTH: u32 = 5000;
/// Bytes of pattern in each frame (frames are at least this big).
const FRAME: usize = 1024;
/// The big single frame.
const BIG: usize = 512 * 1024;

/// Byte `i` of the buffer at recursion depth `depth`.
fn pattern(depth: u32, i: usize) -> u8 {
    (depth as usize * 31 + i * 7) as u8
}

/// What the recursion observed.
struct Walk {
    deepest: u32,
    /// Lowest buffer address seen (the stack grows down).
    lowest: usize,
    intact: bool,
}

/// Recurses down to [`DEPTH`], returning the checksum of all frames below
/// and including this one.
#[inline(never)]
fn recurse(depth: u32, walk: &mut Walk) -> u64 {
    let mut buf = [0u8; FRAME];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(depth, i);
    }
    // Make the buffer observable so it really lives in this frame.
    let buf = black_box(&mut buf);
    walk.deepest = walk.deepest.max(depth);
    walk.lowest = walk.lowest.min(buf.as_ptr() as usize);
    let below = if depth < DEPTH {
        recurse(depth + 1, walk)
    } else {
        0xcbf2_9ce4_8422_2325 // FNV-1a offset basis
    };
    // The deeper calls grew the stack under us: our bytes must be unchanged.
    let mut h = below ^ u64::from(depth);
    for (i, &b) in black_box(&*buf).iter().enumerate() {
        walk.intact &= b == pattern(depth, i);
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One frame with a [`BIG`]-byte array: fills it and sums it.
#[inline(never)]
fn big_frame() -> u64 {
    let mut big = [0u8; BIG];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i % 255) as u8;
    }
    black_box(&mut big).iter().map(|&b| u64::from(b)).sum()
}

fn main() -> i32 {
    let mut r = Report::new();
    let mut walk = Walk {
        deepest: 0,
        lowest: usize::MAX,
        intact: true,
    };
    let top = black_box(&walk) as *const Walk as usize;
    let sum = recurse(1, &mut walk);
    println!("recursion depth reached: {}", walk.deepest);
    r.check(
        "stack grew by at least 4 MiB",
        top.saturating_sub(walk.lowest) >= 4 << 20,
    );
    r.check("every frame intact on return", walk.intact);
    println!("checksum: {sum:#018x}");
    // Second pass over the (now already present) stack pages: same result.
    let mut again = Walk {
        deepest: 0,
        lowest: usize::MAX,
        intact: true,
    };
    r.check(
        "second recursion gives the same checksum",
        recurse(1, &mut again) == sum && again.intact,
    );
    println!("512 KiB frame filled and summed: {}", big_frame());
    r.exit_status()
}
