//! Kernel page tables: x86-64 4-level tables edited through the direct map, and the kernel
//! address space built at boot (`init_mem_mapping` + `mark_rodata_ro` in Linux terms):
//!
//! - all RAM at [`PAGE_OFFSET`], read/write, non-executable, global, with the largest pages
//!   the range allows (1 GiB if the CPU has them, 2 MiB, else 4 KiB), RAM ranges only;
//! - the kernel image at [`KERNEL_VMA`] with 4 KiB pages and W^X: text read-only and
//!   executable, rodata read-only, data and bss writable and non-executable;
//! - the vmalloc area's top-level slot preallocated (every future address space copies the
//!   kernel half of the PML4, so later vmalloc mappings appear everywhere);
//! - the fixmap's page directory linked in.
//!
//! The boot identity map is not carried over.

use core::arch::asm;

use super::addr::{phys_to_virt, PhysAddr, VirtAddr, PAGE_SIZE};
use super::layout::{KERNEL_VMA, PAGE_OFFSET, VMALLOC_START};

/// Page-table entry bits (SDM Vol. 3A, Tables 4-14 to 4-20) with Linux's names.
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const RW: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const PWT: u64 = 1 << 3;
    pub const PCD: u64 = 1 << 4;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// PS: a 2 MiB (PDE) or 1 GiB (PDPTE) leaf.
    pub const PSE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    pub const NX: u64 = 1 << 63;
    /// Physical-address bits of an entry (MAXPHYADDR 52).
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

    /// Non-leaf entries of user mappings (`_PAGE_TABLE`): USER must be set at every level.
    pub const USER_TABLE: u64 = PRESENT | RW | USER | ACCESSED | DIRTY;
    /// Non-leaf entries: everything is decided at the leaf (`_KERNPG_TABLE`).
    pub const KERNPG_TABLE: u64 = PRESENT | RW | ACCESSED | DIRTY;
    /// Kernel data (`PAGE_KERNEL`). A and D preset, as Linux does, so the CPU never has to
    /// write them back into kernel mappings.
    pub const PAGE_KERNEL: u64 = PRESENT | RW | ACCESSED | DIRTY | GLOBAL | NX;
    /// Kernel read-only data (`PAGE_KERNEL_RO`).
    pub const PAGE_KERNEL_RO: u64 = PRESENT | ACCESSED | GLOBAL | NX;
    /// Kernel text (`PAGE_KERNEL_ROX`).
    pub const PAGE_KERNEL_ROX: u64 = PRESENT | ACCESSED | GLOBAL;
    /// Device memory: uncached (`PAGE_KERNEL_IO` with PCD|PWT = UC).
    pub const PAGE_KERNEL_IO: u64 = PAGE_KERNEL | PCD | PWT;
}

/// Page sizes of x86-64 4-level paging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PageSize {
    Size4K,
    Size2M,
    Size1G,
}

impl PageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 4 << 10,
            PageSize::Size2M => 2 << 20,
            PageSize::Size1G => 1 << 30,
        }
    }

    /// Table level holding the leaf: 1 = PT, 2 = PD, 3 = PDPT.
    const fn level(self) -> u32 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No memory for a page-table page.
    NoMemory,
    /// Something is already mapped there.
    AlreadyMapped(VirtAddr),
    /// Address or size not aligned to the page size.
    Misaligned,
}

/// A source of zeroed page-table pages.
pub trait TableAlloc {
    fn alloc_table(&mut self) -> Option<PhysAddr>;
}

/// Table entries of a physical table page, through the direct map.
fn table(pa: u64) -> *mut u64 {
    match phys_to_virt(PhysAddr::new(pa), PAGE_SIZE) {
        Some(va) => va.as_mut_ptr(),
        // Tables are allocated from memory the direct map covers; anything else is a bug.
        None => panic!("page table at {pa:#x} outside the direct map"),
    }
}

#[inline]
fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// A 4-level page-table hierarchy rooted at a PML4.
#[derive(Clone, Copy, Debug)]
pub struct PageTable {
    root: PhysAddr,
}

/// Leaves mapped by [`PageTable::map_range`], per size (for `DirectMap4k/2M/1G`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MapCounts {
    pub k4: u64,
    pub m2: u64,
    pub g1: u64,
}

impl PageTable {
    /// A hierarchy rooted at `root` (a zeroed or existing PML4).
    pub const fn from_root(root: PhysAddr) -> Self {
        PageTable { root }
    }

    /// The PML4's physical address (what CR3 holds).
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// Pointer to the entry for `va` at `level` (4 = PML4 .. 1 = PT), allocating missing
    /// tables down to that level.
    fn walk_alloc(
        &mut self,
        va: u64,
        level: u32,
        alloc: &mut dyn TableAlloc,
    ) -> Result<*mut u64, MapError> {
        let table_flags = pte::KERNPG_TABLE;
        let mut tbl = self.root.as_u64();
        for l in (level + 1..=4).rev() {
            // SAFETY: `tbl` is a page-table page reached from the root; index < 512.
            let e = unsafe { table(tbl).add(index(va, l)) };
            // SAFETY: as above.
            let v = unsafe { e.read_volatile() };
            if v & pte::PRESENT == 0 {
                let new = alloc.alloc_table().ok_or(MapError::NoMemory)?;
                // SAFETY: as above.
                unsafe { e.write_volatile(new.as_u64() | table_flags) };
                tbl = new.as_u64();
            } else if v & pte::PSE != 0 {
                return Err(MapError::AlreadyMapped(VirtAddr::new(va)));
            } else {
                tbl = v & pte::ADDR_MASK;
            }
        }
        // SAFETY: as above.
        Ok(unsafe { table(tbl).add(index(va, level)) })
    }

    /// Map one page of `size` at `va` to `pa` with leaf `flags`.
    pub fn map(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        size: PageSize,
        flags: u64,
        alloc: &mut dyn TableAlloc,
    ) -> Result<(), MapError> {
        let b = size.bytes();
        if !va.as_u64().is_multiple_of(b) || !pa.as_u64().is_multiple_of(b) {
            return Err(MapError::Misaligned);
        }
        let e = self.walk_alloc(va.as_u64(), size.level(), alloc)?;
        // SAFETY: `e` points into a live table.
        unsafe {
            if e.read_volatile() & pte::PRESENT != 0 {
                return Err(MapError::AlreadyMapped(va));
            }
            let ps = if size == PageSize::Size4K {
                0
            } else {
                pte::PSE
            };
            e.write_volatile(pa.as_u64() | flags | ps);
        }
        Ok(())
    }

    /// Copy PML4 entries `slots` from `other` (the kernel half of a new address space).
    pub fn copy_pml4_entries(&mut self, other: &PageTable, slots: core::ops::Range<usize>) {
        for slot in slots {
            // SAFETY: both roots are live tables; slot < 512.
            unsafe {
                table(self.root.as_u64())
                    .add(slot)
                    .write_volatile(other.pml4_entry(slot))
            };
        }
    }

    /// Map `[va, va+len)` to `[pa, pa+len)` with the largest pages alignment allows, up to
    /// `max`.
    pub fn map_range(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        len: u64,
        flags: u64,
        max: PageSize,
        alloc: &mut dyn TableAlloc,
    ) -> Result<MapCounts, MapError> {
        if !va.as_u64().is_multiple_of(PAGE_SIZE)
            || !pa.as_u64().is_multiple_of(PAGE_SIZE)
            || !len.is_multiple_of(PAGE_SIZE)
        {
            return Err(MapError::Misaligned);
        }
        let mut counts = MapCounts::default();
        let mut off = 0;
        while off < len {
            let (v, p, left) = (va.as_u64() + off, pa.as_u64() + off, len - off);
            let size = [PageSize::Size1G, PageSize::Size2M, PageSize::Size4K]
                .into_iter()
                .find(|s| {
                    *s <= max && v % s.bytes() == 0 && p % s.bytes() == 0 && left >= s.bytes()
                })
                .unwrap_or(PageSize::Size4K);
            self.map(VirtAddr::new(v), PhysAddr::new(p), size, flags, alloc)?;
            match size {
                PageSize::Size4K => counts.k4 += 1,
                PageSize::Size2M => counts.m2 += 1,
                PageSize::Size1G => counts.g1 += 1,
            }
            off += size.bytes();
        }
        Ok(counts)
    }

    /// The leaf entry for `va`: pointer, size. `None` if not mapped.
    fn leaf(&self, va: u64) -> Option<(*mut u64, PageSize)> {
        let mut tbl = self.root.as_u64();
        for l in (1..=4).rev() {
            // SAFETY: walking live tables through the direct map.
            let e = unsafe { table(tbl).add(index(va, l)) };
            // SAFETY: as above.
            let v = unsafe { e.read_volatile() };
            if v & pte::PRESENT == 0 {
                return None;
            }
            let size = match l {
                1 => Some(PageSize::Size4K),
                2 if v & pte::PSE != 0 => Some(PageSize::Size2M),
                3 if v & pte::PSE != 0 => Some(PageSize::Size1G),
                _ => None,
            };
            if let Some(s) = size {
                return Some((e, s));
            }
            tbl = v & pte::ADDR_MASK;
        }
        None
    }

    /// Translate `va`: physical address and leaf flags.
    pub fn translate(&self, va: VirtAddr) -> Option<(PhysAddr, u64)> {
        let (e, size) = self.leaf(va.as_u64())?;
        // SAFETY: `e` points into a live table.
        let v = unsafe { e.read_volatile() };
        let off = va.as_u64() & (size.bytes() - 1);
        Some((
            PhysAddr::new((v & pte::ADDR_MASK & !(size.bytes() - 1)) + off),
            v & !pte::ADDR_MASK,
        ))
    }

    /// Remove the 4 KiB mapping of `va` and flush it from the TLB; returns what it mapped.
    pub fn unmap_4k(&mut self, va: VirtAddr) -> Option<PhysAddr> {
        let (e, size) = self.leaf(va.as_u64())?;
        if size != PageSize::Size4K {
            return None;
        }
        // SAFETY: `e` points into a live table; INVLPG only drops a translation.
        unsafe {
            let old = e.read_volatile();
            e.write_volatile(0);
            asm!("invlpg [{}]", in(reg) va.as_u64(), options(nostack, preserves_flags));
            Some(PhysAddr::new(old & pte::ADDR_MASK))
        }
    }

    /// The PML4 entry `slot` (to share top-level slots between hierarchies).
    pub fn pml4_entry(&self, slot: usize) -> u64 {
        // SAFETY: the root is a live table; slot < 512 is checked by the slice index below.
        unsafe { table(self.root.as_u64()).add(slot.min(511)).read_volatile() }
    }

    /// Ensure the PML4 slot of `va` points to a table (preallocation of shared slots).
    pub fn prealloc_pml4(
        &mut self,
        va: VirtAddr,
        alloc: &mut dyn TableAlloc,
    ) -> Result<(), MapError> {
        self.walk_alloc(va.as_u64(), 3, alloc).map(|_| ())
    }

    /// Link the PDPT entry of `va` to an existing page directory at `pd`.
    pub fn link_pd(
        &mut self,
        va: VirtAddr,
        pd: PhysAddr,
        alloc: &mut dyn TableAlloc,
    ) -> Result<(), MapError> {
        let e = self.walk_alloc(va.as_u64(), 3, alloc)?;
        // SAFETY: `e` points into a live PDPT.
        unsafe { e.write_volatile(pd.as_u64() | pte::KERNPG_TABLE) };
        Ok(())
    }
}

/// Linker-script symbols bounding the kernel image's sections (virtual addresses).
mod image {
    extern "C" {
        pub static __text_start: u8;
        pub static __text_end: u8;
        pub static __rodata_start: u8;
        pub static __rodata_end: u8;
        pub static __data_start: u8;
        pub static __kernel_end: u8;
    }
}

/// The kernel image's sections as `(name, start, end, flags)` (virtual, page-rounded).
pub fn image_sections() -> [(&'static str, u64, u64, u64); 3] {
    let up = |a: u64| (a + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    // SAFETY: only the addresses of linker symbols are taken.
    unsafe {
        let a = |s: &u8| s as *const u8 as u64;
        [
            (
                "text",
                a(&image::__text_start),
                up(a(&image::__text_end)),
                pte::PAGE_KERNEL_ROX,
            ),
            (
                "rodata",
                a(&image::__rodata_start),
                up(a(&image::__rodata_end)),
                pte::PAGE_KERNEL_RO,
            ),
            (
                "data",
                a(&image::__data_start),
                up(a(&image::__kernel_end)),
                pte::PAGE_KERNEL,
            ),
        ]
    }
}

mod stack {
    extern "C" {
        pub static kernel_stack_guard: u8;
    }
}

/// The unmapped page below the boot kernel stack.
pub fn kernel_stack_guard() -> u64 {
    // SAFETY: only the symbol's address is taken.
    unsafe { &stack::kernel_stack_guard as *const u8 as u64 }
}

/// Whether `addr` lies in the kernel stack's guard page (a stack overflow).
pub fn is_stack_guard(addr: u64) -> bool {
    addr.wrapping_sub(kernel_stack_guard()) < PAGE_SIZE
}

/// Whether the CPU supports 1 GiB pages (CPUID 0x8000_0001 EDX bit 26).
pub fn cpu_has_gbpages() -> bool {
    let r = core::arch::x86_64::__cpuid(0x8000_0000);
    if r.eax < 0x8000_0001 {
        return false;
    }
    let r = core::arch::x86_64::__cpuid(0x8000_0001);
    r.edx & (1 << 26) != 0
}

/// The page directory of the fixmap, linked at the top of the kernel half.
pub const FIXMAP_PDPT_VA: u64 = super::fixmap::FIXMAP_BASE;

/// Build the kernel address space over `ram` (page-aligned `(base, size)` ranges); returns
/// the table and the direct-map leaf counts.
pub fn build_kernel_tables(
    ram: impl Iterator<Item = (u64, u64)>,
    alloc: &mut dyn TableAlloc,
) -> Result<(PageTable, MapCounts), MapError> {
    let root = alloc.alloc_table().ok_or(MapError::NoMemory)?;
    let mut pt = PageTable::from_root(root);
    let max = if cpu_has_gbpages() {
        PageSize::Size1G
    } else {
        PageSize::Size2M
    };
    let mut dm = MapCounts::default();
    for (base, size) in ram {
        let c = pt.map_range(
            VirtAddr::new(PAGE_OFFSET + base),
            PhysAddr::new(base),
            size,
            pte::PAGE_KERNEL,
            max,
            alloc,
        )?;
        dm.k4 += c.k4;
        dm.m2 += c.m2;
        dm.g1 += c.g1;
    }
    // Every page of the image except the guard pages below the kernel and trap stacks.
    let is_guard = |va: u64| {
        va == kernel_stack_guard() || crate::arch::x86_64::gdt::guard_pages().any(|g| g == va)
    };
    for (_, start, end, flags) in image_sections() {
        let mut va = start;
        while va < end {
            // The longest run of mappable pages from `va`.
            let mut run_end = va;
            while run_end < end && !is_guard(run_end) {
                run_end += PAGE_SIZE;
            }
            if run_end > va {
                pt.map_range(
                    VirtAddr::new(va),
                    PhysAddr::new(va - KERNEL_VMA),
                    run_end - va,
                    flags,
                    PageSize::Size4K,
                    alloc,
                )?;
            }
            va = run_end + PAGE_SIZE;
        }
    }
    pt.prealloc_pml4(VirtAddr::new(VMALLOC_START), alloc)?;
    pt.link_pd(
        VirtAddr::new(FIXMAP_PDPT_VA),
        super::fixmap::pd_phys(),
        alloc,
    )?;
    Ok((pt, dm))
}

/// The kernel's master page table (`init_mm.pgd`), once built.
static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The kernel's master page table: vmalloc and other kernel mappings are made here.
pub fn kernel() -> PageTable {
    match KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed) {
        0 => panic!("kernel page table used before mm::init"),
        r => PageTable::from_root(PhysAddr::new(r)),
    }
}

/// CR4.PGE: global pages survive CR3 writes.
const CR4_PGE: u64 = 1 << 7;

/// Switch to `pt` and enable global pages.
///
/// # Safety
/// `pt` must map the running code, stack and every structure the kernel uses.
pub unsafe fn activate(pt: &PageTable) {
    asm!(
        "mov cr3, {root}",
        "mov {t}, cr4",
        "or {t}, {pge}",
        "mov cr4, {t}",
        root = in(reg) pt.root().as_u64(),
        t = out(reg) _,
        pge = in(reg) CR4_PGE,
        options(nostack, preserves_flags)
    );
    KERNEL_ROOT.store(pt.root().as_u64(), core::sync::atomic::Ordering::Relaxed);
}

/// The page table CR3 points to.
pub fn current() -> PageTable {
    let cr3: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags)) };
    PageTable::from_root(PhysAddr::new(cr3 & pte::ADDR_MASK))
}
