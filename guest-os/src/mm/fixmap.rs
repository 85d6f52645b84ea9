//! Fixed virtual mappings for device registers, like Linux's "fixmap": the last 2 MiB of
//! the address space (above the kernel image, PML4[511] -> PDPT[511] -> PD[511]) get one
//! page table whose slots map MMIO pages at compile-time virtual addresses, uncached
//! (PCD|PWT), supervisor-only and non-executable.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};

use super::addr::{phys_to_virt, PhysAddr, VirtAddr};
use super::layout::KERNEL_VMA;

/// Virtual address of slot 0.
pub const FIXMAP_BASE: u64 = 0xffff_ffff_ffe0_0000;

/// The fixed slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Slot {
    /// The local APIC's register page.
    LocalApic = 0,
}

const PTE_P: u64 = 1 << 0;
const PTE_W: u64 = 1 << 1;
const PTE_PWT: u64 = 1 << 3;
const PTE_PCD: u64 = 1 << 4;
const PTE_NX: u64 = 1 << 63;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
/// The table index for `va` at the level whose entries cover `1 << shift` bytes.
const fn index(va: u64, shift: u32) -> usize {
    ((va >> shift) & 0x1ff) as usize
}

#[repr(C, align(4096))]
struct Table([u64; 512]);
/// The page directory and page table of the fixmap.
struct Tables(UnsafeCell<[Table; 2]>);
// SAFETY: single CPU; written only by `map` with interrupts disabled.
unsafe impl Sync for Tables {}
static TABLES: Tables = Tables(UnsafeCell::new([const { Table([0; 512]) }; 2]));

/// Physical address of a kernel-image virtual address (the image runs at KERNEL_VMA + pa).
fn image_phys(p: *const Table) -> u64 {
    p as u64 - KERNEL_VMA
}

/// Physical address of the fixmap's page directory (linked by the kernel page tables).
pub fn pd_phys() -> PhysAddr {
    PhysAddr::new(image_phys(TABLES.0.get() as *const Table))
}

/// Map the 4 KiB page at `pa` (page-aligned) into `slot`; returns its virtual address.
pub fn map(slot: Slot, pa: PhysAddr) -> VirtAddr {
    let va = FIXMAP_BASE + (slot as u64) * 4096;
    // SAFETY: single CPU with interrupts disabled; the PML4 and the PDPT of the higher half
    // are reachable through the direct map, and PDPT[511]/PD[511] belong to the fixmap alone.
    unsafe {
        let tables = TABLES.0.get() as *mut Table;
        let (pd, pt) = (tables, tables.add(1));
        let cr3: u64;
        asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags));
        let pml4 = table_va(cr3 & PTE_ADDR);
        let pml4e = read_volatile(pml4.add(index(va, 39)));
        let pdpt = table_va(pml4e & PTE_ADDR);
        write_volatile(pdpt.add(index(va, 30)), image_phys(pd) | PTE_P | PTE_W);
        (*pd).0[index(va, 21)] = image_phys(pt) | PTE_P | PTE_W;
        write_volatile(
            &mut (*pt).0[index(va, 12)],
            (pa.as_u64() & PTE_ADDR) | PTE_P | PTE_W | PTE_PCD | PTE_PWT | PTE_NX,
        );
        asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags));
    }
    VirtAddr::new(va)
}

/// A page-table page through the direct map.
fn table_va(pa: u64) -> *mut u64 {
    match phys_to_virt(PhysAddr::new(pa), 4096) {
        Some(va) => va.as_mut_ptr(),
        None => panic!("fixmap: page table {pa:#x} outside the direct map"),
    }
}
