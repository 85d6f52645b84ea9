//! A process address space (`struct mm_struct`): its page tables, its VMAs
//! ([`mm_core::vma::VmaTree`]), its layout and counters, and its life cycle (creation, fork's
//! `dup_mmap`, teardown). The operations on it live in one file each, as in Linux's `mm/`:
//! [`super::memory`] (faults, COW, zap, copy_page_range), [`super::mmap`],
//! [`super::mprotect`], [`super::mremap`], [`super::task_mmu`] (smaps, mincore, rmap
//! queries) and [`super::shmem`] (shared anonymous memory).
//!
//! Every page-table access goes through the mm-core cursor ([`mm_core::pgtable::Cursor`])
//! over [`UserPt`]; nothing here reads or writes a PTE by pointer.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::gfp::Gfp;
use mm_core::page::flags::{PG_ANON, PG_SWAPBACKED};
use mm_core::page::Pages;
use mm_core::pgtable::{Cursor, PtMemory, Pte, USER_TOP};
use mm_core::vma::{
    MmapLayout, VmFlags, VmaTree, VM_EXEC, VM_MAYEXEC, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE,
};

use super::addr::{Pfn, PhysAddr, VirtAddr, PAGE_SIZE};
use super::page_alloc;
use super::pgtable::{self, PageTable};
use super::uaccess::TASK_SIZE;

pub use super::memory::{Fault, FaultError, FaultKind, SEGV_ACCERR, SEGV_MAPERR};

/// The stack limit (`RLIMIT_STACK`, Linux's default 8 MiB).
pub const STACK_RLIMIT: u64 = 8 << 20;

/// The current process's `RLIMIT_STACK` (soft): how far its stack may grow, a quarter of
/// it for exec's arguments, and the gap mmap_base leaves for the stack at exec.
pub fn stack_rlimit() -> u64 {
    crate::proc::rlimit::current(crate::proc::rlimit::RLIMIT_STACK)
}
/// Entries a zap clears between voluntary reschedules (one page table's worth, as Linux's
/// `cond_resched` in `zap_pmd_range`): a few hundred thousand instructions.
pub const ZAP_BATCH: u64 = mm_core::pgtable::ENTRIES as u64;
/// PML4 slots of the kernel half, shared by every address space.
const KERNEL_SLOTS: core::ops::Range<usize> = 256..512;

/// Protection bits of a new mapping.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    pub(super) fn vm_flags(self) -> VmFlags {
        let mut f = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
        if self.read {
            f |= VM_READ;
        }
        if self.write {
            f |= VM_WRITE;
        }
        if self.exec {
            f |= VM_EXEC;
        }
        f
    }
}

/// Resident pages by kind (Linux's `mm_rss_stat`: MM_FILEPAGES, MM_ANONPAGES,
/// MM_SHMEMPAGES), for /proc and the OOM report.
#[derive(Clone, Copy, Debug, Default)]
pub struct RssStat {
    pub file: u64,
    pub anon: u64,
    pub shmem: u64,
}

impl RssStat {
    /// The counter a mapped page of `pfn` belongs to: anonymous pages carry PG_ANON, shmem
    /// pages PG_SWAPBACKED alone, the rest are file pages.
    fn slot(&mut self, pfn: Pfn) -> &mut u64 {
        self.slot_of_flags(page_alloc::page_flags(pfn))
    }

    /// The counter of a mapped page whose flags are `f`.
    fn slot_of_flags(&mut self, f: u32) -> &mut u64 {
        if f & PG_ANON != 0 {
            &mut self.anon
        } else if f & PG_SWAPBACKED != 0 {
            &mut self.shmem
        } else {
            &mut self.file
        }
    }

    /// One more mapped page of `pfn`.
    pub fn inc(&mut self, pfn: Pfn) {
        *self.slot(pfn) += 1;
    }

    /// One more mapped page, of a page whose flags are `f` (read under the caller's lock).
    pub fn inc_flags(&mut self, f: u32) {
        *self.slot_of_flags(f) += 1;
    }

    /// One mapped page of `pfn` fewer.
    pub fn dec(&mut self, pfn: Pfn) {
        let s = self.slot(pfn);
        *s = s.saturating_sub(1);
    }

    /// One mapped page fewer, of a page whose flags are `f` (read under the caller's lock).
    pub fn dec_flags(&mut self, f: u32) {
        let s = self.slot_of_flags(f);
        *s = s.saturating_sub(1);
    }

    pub fn total(&self) -> u64 {
        self.file + self.anon + self.shmem
    }
}

/// User page-table memory: tables reached through the direct map and taken from the buddy
/// allocator (`GFP_PGTABLE_USER`), INVLPG/CR3 for the TLB, and page references dropped with
/// `put_page`. Counts the tables it allocated and freed, for `mm->pgtables_bytes`.
#[derive(Default)]
pub struct UserPt {
    pub allocated: u64,
    pub freed: u64,
}

/// Page-table pages of every user address space, PML4s included (/proc/meminfo's
/// `PageTables`, with the kernel's own).
pub static USER_PAGETABLES: AtomicU64 = AtomicU64::new(0);

/// The entries of a page-table page, through the direct map.
fn table_entry(table: PhysAddr, index: usize) -> *mut u64 {
    page_alloc::page_address(table.pfn())
        .as_mut_ptr::<u64>()
        .wrapping_add(index % mm_core::pgtable::ENTRIES)
}

impl PtMemory for UserPt {
    fn read_entry(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `table` is a live page-table page (the cursor only follows present
        // entries from a live root) and the index is inside it.
        unsafe { table_entry(table, index).read_volatile() }
    }

    fn write_entry(&mut self, table: PhysAddr, index: usize, value: u64) {
        // SAFETY: as in `read_entry`.
        unsafe { table_entry(table, index).write_volatile(value) }
    }

    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pfn = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO | Gfp::ACCOUNT | Gfp::NOWARN, 0)?;
        self.allocated += 1;
        USER_PAGETABLES.fetch_add(1, Ordering::Relaxed);
        Some(pfn.phys())
    }

    fn free_table(&mut self, table: PhysAddr) {
        self.freed += 1;
        USER_PAGETABLES.fetch_sub(1, Ordering::Relaxed);
        page_alloc::free_pages(table.pfn(), 0);
    }

    fn release_page(&mut self, page: PhysAddr) {
        page_alloc::free_pages(page.pfn(), 0);
    }

    fn release_huge(&mut self, page: PhysAddr) {
        super::huge_memory::put_huge_page(page.pfn());
    }

    fn release_pages(&mut self, pages: &[PhysAddr]) {
        page_alloc::free_pages_batch(pages.iter().map(|p| p.pfn()));
    }

    fn flush_tlb_page(&mut self, va: VirtAddr) {
        // SAFETY: INVLPG only drops a translation.
        unsafe { asm!("invlpg [{}]", in(reg) va.as_u64(), options(nostack, preserves_flags)) };
    }

    fn flush_tlb_all(&mut self) {
        // SAFETY: reloading CR3 with its own value drops the non-global translations.
        unsafe {
            asm!(
                "mov {t}, cr3",
                "mov cr3, {t}",
                t = out(reg) _,
                options(nostack, preserves_flags)
            )
        };
    }
}

/// An address space.
pub struct Mm {
    pub pgd: PageTable,
    pub vmas: VmaTree,
    pub layout: MmapLayout,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    /// Resident pages (anonymous, file copies and shmem).
    pub rss: u64,
    /// The same by kind.
    pub rss_stat: RssStat,
    /// Page-table pages below the PML4 (`mm->pgtables_bytes` / 4096).
    pub pgtables: u64,
    /// The anon_vma of this address space ([`super::rmap`]).
    pub anon_id: u64,
    /// Swap entries in its page tables (`MM_SWAPENTS`: VmSwap, the OOM badness).
    pub swapents: u64,
    /// Hugetlb pages reserved by this address space's mappings and not faulted yet
    /// ([`super::hugetlb`]).
    pub hugetlb_resv: u64,
}

impl Mm {
    /// An empty address space sharing the kernel half of the master page table.
    pub fn new() -> Option<Mm> {
        let root = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO | Gfp::NOWARN, 0)?;
        USER_PAGETABLES.fetch_add(1, Ordering::Relaxed);
        let mut pgd = PageTable::from_root(root.phys());
        pgd.copy_pml4_entries(&pgtable::kernel(), KERNEL_SLOTS);
        Some(Mm {
            pgd,
            vmas: VmaTree::new(),
            layout: MmapLayout::new(TASK_SIZE, STACK_RLIMIT, None),
            start_brk: 0,
            brk: 0,
            start_stack: 0,
            rss: 0,
            rss_stat: RssStat::default(),
            pgtables: 0,
            anon_id: super::rmap::new_id(),
            swapents: 0,
            hugetlb_resv: 0,
        })
    }

    pub fn set_brk_start(&mut self, brk: u64) {
        self.start_brk = brk;
        self.brk = brk;
    }

    pub fn set_stack_start(&mut self, sp: u64) {
        self.start_stack = sp;
    }

    /// Whether this address space is the one in CR3 (its translations may be cached).
    pub fn is_active(&self) -> bool {
        pgtable::current().root() == self.pgd.root()
    }

    /// Load this address space (CR3).
    pub fn activate(&self) {
        // SAFETY: the kernel half is shared with the master table, so the running code and
        // data stay mapped.
        unsafe {
            asm!("mov cr3, {}", in(reg) self.pgd.root().as_u64(), options(nostack, preserves_flags))
        };
    }

    /// Fold the table counts of a walk into `pgtables`.
    pub(super) fn account_tables(&mut self, pt: &UserPt) {
        self.pgtables = (self.pgtables + pt.allocated).saturating_sub(pt.freed);
    }

    /// One more resident page of `pfn`.
    pub(super) fn rss_inc(&mut self, pfn: Pfn) {
        self.rss += 1;
        self.rss_stat.inc(pfn);
    }

    /// The entry mapping `va` (`None`: no table there, or `va` outside user space).
    pub fn query_pte(&self, va: u64) -> Option<Pte> {
        let page = va & !(PAGE_SIZE - 1);
        let mut pt = UserPt::default();
        let mut c = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(page)..VirtAddr::new(page.checked_add(PAGE_SIZE)?),
        )
        .ok()?;
        c.query()
    }

    /// A copy of this address space for a forked child (`dup_mmap`): the same VMAs and
    /// every mapped page shared: private writable pages become read-only in both, so the
    /// first write on either side copies (COW); shared mappings stay writable. The caller
    /// reloads CR3 afterwards (`flush_tlb_mm`: this is the current address space, whose
    /// PTEs lost write permission). `None` when memory runs out (the partial copy is torn
    /// down).
    // Not inlined: its locals (cursor, gather batches) would add to do_fork's frame on a
    // 16 KiB kernel stack.
    #[inline(never)]
    pub fn fork(&mut self) -> Option<Mm> {
        super::mmap::vma_prealloc().ok()?;
        let mut child = Mm::new()?;
        child.vmas = self.vmas.clone();
        child.layout = self.layout;
        child.start_brk = self.start_brk;
        child.brk = self.brk;
        child.start_stack = self.start_stack;
        child.anon_id = self.anon_id;
        // From here on `destroy` gives back whatever the child holds.
        super::shmem::get_all(&child.vmas);
        if self.copy_page_range(&mut child).is_err() {
            child.destroy();
            return None;
        }
        Some(child)
    }

    /// Tear the address space down: every page, every page table, the PML4, and its
    /// references on shmem objects. The caller must have switched to another address space.
    /// May be called with locks held (a failed fork): it never reschedules.
    pub fn destroy(self) {
        self.teardown(false);
    }

    /// [`Self::destroy`] for an exiting task (`exit_mmap`): no lock may be held; other
    /// tasks get the CPU between pieces of [`ZAP_BATCH`] entries.
    pub fn exit_mmap(self) {
        self.teardown(true);
    }

    fn teardown(mut self, resched: bool) {
        // Walks over the whole user half: their cost follows the tables present.
        let budget = if resched { ZAP_BATCH } else { u64::MAX };
        let mut from = 0;
        while let Some(next) = self.zap_range_bounded(from, USER_TOP, budget) {
            from = next;
            crate::proc::sched::cond_resched();
        }
        super::shmem::put_all(&self.vmas);
        super::hugetlb::unreserve(core::mem::take(&mut self.hugetlb_resv));
        // Pages whose last mapping went are held by the LRU-add batch: free them now.
        super::vmscan::lru_add_drain();
        USER_PAGETABLES.fetch_sub(1, Ordering::Relaxed);
        page_alloc::free_pages(self.pgd.root().pfn(), 0);
    }
}

impl Mm {
    /// Rewrite the existing entry at `va` (reclaim's unmap and aging, through rmap),
    /// flushing its translation if `flush` and this address space may be cached.
    pub(super) fn update_pte(&mut self, va: u64, new: Pte, flush: bool) {
        let mut pt = UserPt::default();
        let va = VirtAddr::new(va & !(PAGE_SIZE - 1));
        if let Ok(mut c) = Cursor::new(
            &mut pt,
            self.pgd.root(),
            va..VirtAddr::new(va.as_u64() + PAGE_SIZE),
        ) {
            c.replace(new);
        }
        if flush && self.is_active() {
            pt.flush_tlb_page(va);
        }
    }
}

/// Change a page's mapping count (`_mapcount`) by `d`.
pub(super) fn page_mapcount_add(pfn: Pfn, d: i32) {
    page_alloc::with(|a| a.page_mut(pfn).mapcount += d);
}

/// Mark a fresh page as a shmem page (PG_SWAPBACKED without PG_ANON; anonymous pages get
/// theirs from [`super::rmap::add_new_anon`]).
pub(super) fn set_page_shmem(pfn: Pfn) {
    page_alloc::with(|a| a.page_mut(pfn).set(PG_SWAPBACKED));
}
