//! Supervisor-mode protections (Linux's `setup_smep`/`setup_smap` in
//! `arch/x86/kernel/cpu/common.c`): SMEP stops the kernel from executing user pages, SMAP
//! from reading or writing them except inside an explicit STAC..CLAC window, which only
//! the user-access routines of `mm/uaccess.rs` open. Both are turned on at boot when CPUID
//! advertises them (vmscope does, and QEMU with `-cpu qemu64,+smep,+smap`).
//!
//! STAC and CLAC raise #UD on a CPU without SMAP. Linux patches them into NOPs there
//! (alternatives); this kernel tests [`SMAP_ON`] in front of each one instead, which costs a
//! compare and a branch per user copy and per kernel entry.

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

/// CR4.SMEP (bit 20): supervisor-mode execution prevention.
pub const CR4_SMEP: u64 = 1 << 20;
/// CR4.SMAP (bit 21): supervisor-mode access prevention.
pub const CR4_SMAP: u64 = 1 << 21;
/// CPUID.(EAX=7,ECX=0):EBX.SMEP[bit 7].
const CPUID7_EBX_SMEP: u32 = 1 << 7;
/// CPUID.(EAX=7,ECX=0):EBX.SMAP[bit 20].
const CPUID7_EBX_SMAP: u32 = 1 << 20;
/// RFLAGS.AC: with SMAP, set means "supervisor accesses to user pages allowed".
pub const RFLAGS_AC: u64 = 1 << 18;

/// 1 once CR4.SMAP is set, so STAC/CLAC exist and are needed. Read by the entry code and
/// `__copy_user` as a byte (`testb $1, SMAP_ON(%rip)`); never cleared.
#[no_mangle]
pub static SMAP_ON: AtomicU8 = AtomicU8::new(0);

/// What `init` found and turned on.
#[derive(Debug, Clone, Copy)]
pub struct Protections {
    pub smep: bool,
    pub smap: bool,
}

fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Turn on SMEP and SMAP if the CPU has them. Call once the kernel's page tables are live
/// and before the first user process: from here on the kernel touches user memory only
/// through `mm::uaccess`.
pub fn init() -> Protections {
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    let ebx7 = if max_leaf >= 7 {
        core::arch::x86_64::__cpuid_count(7, 0).ebx
    } else {
        0
    };
    let smep = ebx7 & CPUID7_EBX_SMEP != 0;
    let smap = ebx7 & CPUID7_EBX_SMAP != 0;
    let mut cr4 = read_cr4();
    if smep {
        cr4 |= CR4_SMEP;
    }
    if smap {
        cr4 |= CR4_SMAP;
        // AC must be clear before SMAP takes effect, or every user access would be allowed
        // until the next kernel entry.
        clac_raw();
    }
    // SAFETY: only bits CPUID advertises; the kernel never executes user pages and reads
    // them only through uaccess, which opens an AC window.
    unsafe { asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags)) };
    if smap {
        SMAP_ON.store(1, Ordering::Release);
    }
    Protections { smep, smap }
}

/// Whether SMAP is on (STAC/CLAC are then required around user accesses).
pub fn smap_on() -> bool {
    SMAP_ON.load(Ordering::Relaxed) != 0
}

/// CLAC without the feature test; the caller knows the CPU has SMAP.
fn clac_raw() {
    // SAFETY: CLAC only clears RFLAGS.AC; the caller checked CPUID for SMAP.
    unsafe { asm!("clac", options(nomem, nostack)) };
}

/// The current RFLAGS (for checks and self-tests).
pub fn read_rflags() -> u64 {
    let v: u64;
    // SAFETY: PUSHFQ/POP only read the flags, on the current stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) v, options(nomem, preserves_flags)) };
    v
}

/// CR4 as it is now.
pub fn cr4() -> u64 {
    read_cr4()
}
