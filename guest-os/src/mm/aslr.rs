//! Address-space layout randomisation, Linux's `randomize_va_space`: 0 (the default here,
//! so that runs and fault traces repeat), 1 (mmap base, stack top, PIE load address and so
//! the vDSO, which lands in the mmap area), 2 (also the start of the heap). Set with
//! `randomize_va_space=N` on the kernel command line (`norandmaps` means 0, as in Linux);
//! read back from /proc/sys/kernel/randomize_va_space.
//!
//! The amounts follow x86-64 Linux: 28 bits of pages for the mmap base and the PIE load
//! address (`mmap_rnd_bits`), 22 bits of pages for the stack top (`STACK_RND_MASK`), up
//! to 32 MiB for the heap (`arch_randomize_brk`). The random numbers come from a xorshift
//! generator seeded with `aslr_seed=N`, or else with the time stamp counter at boot: on
//! vmscope that is the instruction count, so even a randomised layout repeats run to run
//! unless the seed changes.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

const PAGE_SHIFT: u32 = 12;
/// `mmap_rnd_bits` on x86-64 (the default of `CONFIG_ARCH_MMAP_RND_BITS`).
const MMAP_RND_BITS: u32 = 28;
/// `STACK_RND_MASK` on x86-64: 22 bits of pages (16 GiB).
const STACK_RND_MASK: u64 = 0x3f_ffff;
/// `arch_randomize_brk`: the heap starts up to 32 MiB above the end of the data.
const BRK_RND_RANGE: u64 = 0x0200_0000;

static LEVEL: AtomicU8 = AtomicU8::new(0);
static STATE: AtomicU64 = AtomicU64::new(0);

/// Read `randomize_va_space=`, `norandmaps` and `aslr_seed=` from the command line.
pub fn init(cmdline: &[u8]) {
    let level = crate::cmdline::param(cmdline, "randomize_va_space")
        .and_then(|v| core::str::from_utf8(v).ok()?.parse::<u8>().ok())
        .map_or(0, |l| l.min(2));
    let level = if crate::cmdline::has_flag(cmdline, "norandmaps") {
        0
    } else {
        level
    };
    LEVEL.store(level, Ordering::Relaxed);
    let seed = crate::cmdline::param(cmdline, "aslr_seed")
        .and_then(|v| core::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .unwrap_or_else(|| {
            // SAFETY: RDTSC has no side effects (CR4.TSD is clear in the kernel).
            unsafe { core::arch::x86_64::_rdtsc() }
        });
    // xorshift must not start at 0.
    STATE.store(seed | 1, Ordering::Relaxed);
    if level > 0 {
        log::info!("randomize_va_space={level}, seed {seed}");
    }
}

/// The current level (0, 1 or 2).
pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

fn next() -> u64 {
    let mut x = STATE.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

/// The random offsets of one exec.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecRandom {
    /// Page-aligned mmap randomisation for `MmapLayout::new` (None: off).
    pub mmap: Option<u64>,
    /// Moves the stack top down (page-aligned).
    pub stack: u64,
    /// Moves the start of the heap up (page-aligned).
    pub brk: u64,
    /// Added to an ET_DYN program's load address (page-aligned).
    pub pie: u64,
}

/// Draw the offsets for a new program image.
pub fn for_exec() -> ExecRandom {
    let level = level();
    if level == 0 {
        return ExecRandom::default();
    }
    let mmap_mask = (1u64 << MMAP_RND_BITS) - 1;
    ExecRandom {
        mmap: Some((next() & mmap_mask) << PAGE_SHIFT),
        stack: (next() & STACK_RND_MASK) << PAGE_SHIFT,
        brk: if level >= 2 {
            (next() % (BRK_RND_RANGE >> PAGE_SHIFT)) << PAGE_SHIFT
        } else {
            0
        },
        pie: (next() & mmap_mask) << PAGE_SHIFT,
    }
}
