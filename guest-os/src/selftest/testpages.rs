//! Page tables for self-tests: statically allocated 4 KiB pages that a test links into an
//! unused PML4 slot of the boot page tables, the entry bits they use, and where a handler's
//! frame lies (which trap stack).

use core::arch::asm;
use core::cell::UnsafeCell;

use crate::arch::x86_64::gdt::trap_stack_of;
use crate::mm::layout::KERNEL_VMA;
use crate::mm::{phys_to_virt, PhysAddr};

/// Page-table entry bits (SDM Vol. 3A, Tables 4-15 to 4-20).
pub mod pte {
    pub const P: u64 = 1 << 0;
    pub const W: u64 = 1 << 1;
    pub const U: u64 = 1 << 2;
    pub const PWT: u64 = 1 << 3;
    pub const PCD: u64 = 1 << 4;
    pub const A: u64 = 1 << 5;
    pub const D: u64 = 1 << 6;
    pub const PS: u64 = 1 << 7;
    pub const NX: u64 = 1 << 63;
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
}

const ENTRIES: usize = 512;

#[repr(C, align(4096))]
pub struct Page([u64; ENTRIES]);

/// `N` zeroed pages in the kernel image, for one test's tables and data.
pub struct Pages<const N: usize>(UnsafeCell<[Page; N]>);

// SAFETY: single CPU; each static belongs to one test module, which runs alone.
unsafe impl<const N: usize> Sync for Pages<N> {}

impl<const N: usize> Default for Pages<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Pages<N> {
    pub const fn new() -> Self {
        Pages(UnsafeCell::new([const { Page([0; ENTRIES]) }; N]))
    }

    /// Pointer to entry `idx` of page `page` (for volatile reads and writes).
    pub fn entry(&self, page: usize, idx: usize) -> *mut u64 {
        assert!(page < N && idx < ENTRIES);
        // SAFETY: in bounds of the static array, as just checked.
        unsafe { (self.0.get() as *mut u64).add(page * ENTRIES + idx) }
    }

    /// Physical address of page `page`.
    pub fn phys(&self, page: usize) -> u64 {
        kernel_phys(self.entry(page, 0) as u64)
    }
}

/// Physical address of a kernel-image virtual address (the image is mapped at KERNEL_VMA).
pub fn kernel_phys(va: u64) -> u64 {
    va - KERNEL_VMA
}

/// The current PML4's entry for `slot` (through the direct map).
pub fn pml4_entry(slot: u64) -> *mut u64 {
    let cr3: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags)) };
    match phys_to_virt(PhysAddr::new((cr3 & pte::ADDR) + slot * 8), 8) {
        Some(va) => va.as_mut_ptr(),
        None => panic!("PML4 outside the direct map"),
    }
}

/// Reload CR3: flush every non-global translation.
pub fn flush_tlb() {
    // SAFETY: reloading the same CR3 only drops cached translations.
    unsafe { asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags)) };
}

/// Name of the trap stack holding `addr` (a handler's frame), for test output.
pub fn stack_name(addr: u64) -> &'static str {
    match trap_stack_of(addr) {
        Some(0) => "rsp0",
        Some(1) => "ist1",
        Some(2) => "ist2",
        Some(3) => "ist3",
        _ => "another stack",
    }
}

/// CR4.PGE.
const CR4_PGE: u64 = 1 << 7;

extern "C" {
    /// The trampoline's PML4 (in `.boot.data`, linked at its physical address).
    static boot_pml4: u8;
}

/// Run `f` on the boot page tables: 2 MiB kernel mappings without NX bits and without
/// global pages. For tests that clear EFER.NXE, which turns the NX bit of the kernel's own
/// mappings into a reserved bit (every kernel data access would fault). Global pages are
/// switched off for the duration so no translation of the kernel tables survives.
pub fn on_boot_tables<R>(f: impl FnOnce() -> R) -> R {
    let (cr3, cr4): (u64, u64);
    // SAFETY: the boot tables still map the kernel image at KERNEL_VMA and physical memory
    // at PAGE_OFFSET (first 1 GiB), which is all the self-tests use; the old CR3 and CR4 are
    // restored before returning.
    unsafe {
        asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags));
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4 & !CR4_PGE, options(nostack, preserves_flags));
        asm!("mov cr3, {}", in(reg) &boot_pml4 as *const u8 as u64, options(nostack, preserves_flags));
    }
    let r = f();
    // SAFETY: restores the kernel's tables and CR4.PGE.
    unsafe {
        asm!("mov cr3, {}", in(reg) cr3, options(nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
    }
    r
}
