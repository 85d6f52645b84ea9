//! The page-table cursor: the one piece of code that reads and writes the entries of a user
//! address space's 4-level x86-64 page tables, and the TLB batch (`struct mmu_gather`) that
//! makes freeing behind it safe.
//!
//! Modelled on Asterinas' `ostd` page-table cursor (query, `find_next`, jump, map/unmap/
//! protect handing back what they removed) and on Linux's `mm/memory.c` walkers
//! (`zap_p4d_range` → … → `zap_pte_range`, `copy_page_range`, `change_protection`): every
//! walk visits only tables that are present and skips an empty PML4/PDPT/PD entry, i.e. a
//! whole 512 GiB, 1 GiB or 2 MiB range, with one read. The cost of an operation is
//! therefore proportional to the tables present in its range, never to the range's size.
//!
//! The cursor touches only the user half (`[0, USER_TOP)`): the PML4 itself and its kernel
//! slots are never written or freed. User mappings are 4 KiB pages, or 2 MiB pages mapped
//! by a PMD with the PS bit (transparent huge pages and hugetlb): [`Cursor::map_huge`]
//! installs one, [`Cursor::split_huge`] turns one into a table of 512 PTEs
//! (`__split_huge_pmd`), and the walks handle a huge PMD whole when their range covers all
//! of it (zap, protect, copy) and leave it alone otherwise: the kernel splits a huge PMD a
//! range cuts before the walk, as Linux's `vma_adjust_trans_huge`. `query` and `find_next`
//! give a huge PMD as the entry of the 4 KiB subpage at the address asked for: the frame
//! of that subpage, the PMD's flags, and [`pte::PSE`] set to tell it apart.
//!
//! Table memory comes through [`PtMemory`]: the kernel reaches tables through its direct
//! map, the host tests through a `Vec`. No `unsafe` here.
//!
//! TLB batching ([`MmuGather`]): unmap and protect record the range whose translations
//! became stale and the pages and tables to free; [`MmuGather::flush`] invalidates (INVLPG
//! per page up to [`TLB_SINGLE_PAGE_FLUSH_CEILING`] pages, else one CR3 reload, as Linux's
//! `flush_tlb_mm_range` with `tlb_single_page_flush_ceiling`) and only then frees, since
//! another walk through a stale TLB or paging-structure cache entry could otherwise reach a
//! reused frame. The batch has a fixed size, so a huge zap flushes along the way (as
//! `tlb_flush_mmu` does when its batch fills) and needs no allocation.

use core::ops::Range;

use crate::addr::{PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};

/// Page-table entry bits (SDM Vol. 3A, Tables 4-14 to 4-20) with Linux's names.
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const RW: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// PS: a 2 MiB (PDE) or 1 GiB (PDPTE) leaf.
    pub const PSE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    /// `_PAGE_PROTNONE`: a PROT_NONE page is mapped with PRESENT clear (so neither user
    /// nor kernel accesses reach it) and this software bit set. x86 Linux reuses the GLOBAL
    /// bit's position, which the CPU ignores in a non-present entry.
    pub const PROTNONE: u64 = GLOBAL;
    pub const NX: u64 = 1 << 63;
    /// Physical-address bits of an entry (MAXPHYADDR 52).
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
    /// Non-leaf entries of user mappings (`_PAGE_TABLE`): USER must be set at every level;
    /// the leaf decides the rest.
    pub const USER_TABLE: u64 = PRESENT | RW | USER | ACCESSED | DIRTY;
}

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Bytes a huge PMD maps (`HPAGE_PMD_SIZE`).
pub const HPAGE_SIZE: u64 = 2 << 20;
/// Pages in a huge PMD (`HPAGE_PMD_NR`).
pub const HPAGE_NR: u64 = 512;
/// Bits of the virtual address each level indexes.
const LEVEL_BITS: u32 = 9;
/// The root's level (PML4).
const ROOT_LEVEL: u32 = 4;
/// One past the highest user address: the lower half of the 48-bit address space.
pub const USER_TOP: u64 = 1 << 47;
/// Above this many pages a flush reloads CR3 instead of INVLPG per page (Linux's
/// `tlb_single_page_flush_ceiling` default).
pub const TLB_SINGLE_PAGE_FLUSH_CEILING: u64 = 33;
/// Frees an [`MmuGather`] holds before it must flush (a bounded, allocation-free batch).
pub const GATHER_BATCH: usize = 64;
/// Huge pages an [`MmuGather`] holds before it must flush.
const HUGE_BATCH: usize = 8;

/// Bytes one entry of a table at `level` covers (level 1: 4 KiB, 2: 2 MiB, 3: 1 GiB,
/// 4: 512 GiB).
const fn entry_span(level: u32) -> u64 {
    PAGE_SIZE << (LEVEL_BITS * (level - 1))
}

/// The index of `va` in its table at `level`.
const fn index(va: u64, level: u32) -> usize {
    ((va >> (PAGE_SHIFT + LEVEL_BITS * (level - 1))) as usize) & (ENTRIES - 1)
}

/// A leaf page-table entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pte(pub u64);

impl Pte {
    /// An empty entry (`pte_none`).
    pub const NONE: Pte = Pte(0);

    /// An entry mapping `pa` with `flags`.
    pub const fn new(pa: PhysAddr, flags: u64) -> Pte {
        Pte((pa.as_u64() & pte::ADDR_MASK) | (flags & !pte::ADDR_MASK))
    }

    /// `pte_none`: nothing there.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// `pte_present`: maps a page, accessible (PRESENT) or PROT_NONE.
    pub const fn is_present(self) -> bool {
        self.0 & (pte::PRESENT | pte::PROTNONE) != 0
    }

    /// `pte_protnone`: a mapped page that no access may reach.
    pub const fn is_protnone(self) -> bool {
        self.0 & (pte::PRESENT | pte::PROTNONE) == pte::PROTNONE
    }

    /// The hardware PRESENT bit: the CPU may cache and use this translation.
    pub const fn is_accessible(self) -> bool {
        self.0 & pte::PRESENT != 0
    }

    pub const fn is_writable(self) -> bool {
        self.0 & pte::RW != 0
    }

    /// The frame it maps.
    pub const fn phys(self) -> PhysAddr {
        PhysAddr::new(self.0 & pte::ADDR_MASK)
    }

    /// The flag bits (everything but the address).
    pub const fn flags(self) -> u64 {
        self.0 & !pte::ADDR_MASK
    }

    /// A huge PMD (or the view of one of its subpages that `query`/`find_next` give):
    /// the PS bit, which no 4 KiB user PTE or swap entry sets (it is PAT there).
    pub const fn is_huge(self) -> bool {
        self.0 & pte::PSE != 0 && self.0 & (pte::PRESENT | pte::PROTNONE) != 0
    }

    /// The first frame of the huge page a [`Pte::is_huge`] entry maps.
    pub const fn huge_base(self) -> PhysAddr {
        PhysAddr::new(self.0 & pte::ADDR_MASK & !(HPAGE_SIZE - 1))
    }
}

/// Whether a PMD-level entry is a huge leaf (present or PROT_NONE).
const fn pmd_huge(e: u64) -> bool {
    Pte(e).is_huge()
}

/// The 4 KiB view of huge PMD `e` at `va`: the subpage's frame with the PMD's flags.
const fn huge_subpage(e: u64, va: u64) -> Pte {
    let base = e & pte::ADDR_MASK & !(HPAGE_SIZE - 1);
    let offset = va & (HPAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    Pte((base + offset) | (e & !pte::ADDR_MASK))
}

/// Why a cursor operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtError {
    /// No memory for a page-table page.
    NoMemory,
    /// The range is unaligned, empty, outside the user half, or outside the cursor's range.
    BadRange,
}

/// Where page tables live, and what the TLB batch calls to invalidate and free.
pub trait PtMemory {
    /// Entry `index` of the table page at `table`.
    fn read_entry(&self, table: PhysAddr, index: usize) -> u64;
    /// Store entry `index` of the table page at `table`.
    fn write_entry(&mut self, table: PhysAddr, index: usize, value: u64);
    /// A zeroed table page, or `None` when memory is exhausted.
    fn alloc_table(&mut self) -> Option<PhysAddr>;
    /// Give back a table page (after the TLB flush that covers it).
    fn free_table(&mut self, table: PhysAddr);
    /// Drop the reference an unmapped PTE held on a data page (after the flush).
    fn release_page(&mut self, page: PhysAddr);
    /// Drop the references of a batch of data pages (`free_pages_and_swap_cache`: an
    /// implementation may take its allocator's lock once for the batch).
    fn release_pages(&mut self, pages: &[PhysAddr]) {
        for &p in pages {
            self.release_page(p);
        }
    }
    /// Drop the reference a huge PMD held on its 2 MiB page (after the flush).
    fn release_huge(&mut self, page: PhysAddr) {
        self.release_page(page);
    }
    /// INVLPG.
    fn flush_tlb_page(&mut self, va: VirtAddr);
    /// Flush every non-global translation (a CR3 reload).
    fn flush_tlb_all(&mut self);
}

/// How much a walk read: for checking that work follows the tables, not the range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Tables below the root entered.
    pub tables: u64,
    /// Entries read.
    pub entries: u64,
}

/// What an [`MmuGather`] did, for tests and statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// INVLPGs issued.
    pub pages: u64,
    /// CR3 reloads.
    pub full: u64,
}

/// Batched TLB invalidation and deferred freeing (Linux's `struct mmu_gather`:
/// `tlb_gather_mmu` = [`MmuGather::new`], `tlb_finish_mmu` = [`MmuGather::finish`]).
#[derive(Debug)]
pub struct MmuGather {
    /// The address space is loaded in CR3: its translations may be cached. When it is not
    /// (a fork child, an exiting or replaced mm) there is nothing to flush, since user
    /// translations are not global and a CR3 load drops them.
    active: bool,
    /// Stale translations `[start, end)`; empty when `start >= end`.
    start: u64,
    end: u64,
    /// A table was freed: paging-structure caches must be dropped even with no leaf range.
    freed_tables: bool,
    /// Only huge PMDs were recorded: the flush may INVLPG once per 2 MiB (Linux's
    /// `tlb_get_unmap_shift` with `cleared_pmds` only).
    huge_only: bool,
    pages: [PhysAddr; GATHER_BATCH],
    huge: [PhysAddr; HUGE_BATCH],
    nr_huge: usize,
    nr_pages: usize,
    tables: [PhysAddr; GATHER_BATCH],
    nr_tables: usize,
    pub stats: FlushStats,
}

impl MmuGather {
    /// A batch for an address space that is (`active`) or is not the one in CR3.
    pub const fn new(active: bool) -> MmuGather {
        MmuGather {
            active,
            start: u64::MAX,
            end: 0,
            freed_tables: false,
            huge_only: true,
            pages: [PhysAddr::new(0); GATHER_BATCH],
            huge: [PhysAddr::new(0); HUGE_BATCH],
            nr_huge: 0,
            nr_pages: 0,
            tables: [PhysAddr::new(0); GATHER_BATCH],
            nr_tables: 0,
            stats: FlushStats { pages: 0, full: 0 },
        }
    }

    /// The translation of the page at `va` is stale (`tlb_remove_tlb_entry`).
    pub fn add_page(&mut self, va: VirtAddr) {
        self.start = self.start.min(va.as_u64());
        self.end = self.end.max(va.as_u64() + PAGE_SIZE);
        self.huge_only = false;
    }

    /// The translation of the 2 MiB page at `va` is stale (`tlb_remove_pmd_tlb_entry`):
    /// one INVLPG anywhere in it drops it.
    pub fn add_huge(&mut self, va: VirtAddr) {
        let base = va.as_u64() & !(HPAGE_SIZE - 1);
        self.start = self.start.min(base);
        self.end = self.end.max(base + HPAGE_SIZE);
    }

    /// Release the 2 MiB page at `page` once the TLB no longer holds it
    /// (`tlb_remove_page_size` with `HPAGE_PMD_SIZE`).
    pub fn remove_huge<M: PtMemory>(&mut self, page: PhysAddr, mem: &mut M) {
        if self.nr_huge == HUGE_BATCH {
            self.flush(mem);
        }
        self.huge[self.nr_huge] = page;
        self.nr_huge += 1;
    }

    /// Release `page` once the TLB no longer holds it (`tlb_remove_page`).
    pub fn remove_page<M: PtMemory>(&mut self, page: PhysAddr, mem: &mut M) {
        if self.nr_pages == GATHER_BATCH {
            self.flush(mem);
        }
        self.pages[self.nr_pages] = page;
        self.nr_pages += 1;
    }

    /// Free the table page `table` once no cached walk can reach it (`pte_free_tlb`).
    pub fn remove_table<M: PtMemory>(&mut self, table: PhysAddr, mem: &mut M) {
        if self.nr_tables == GATHER_BATCH {
            self.flush(mem);
        }
        self.tables[self.nr_tables] = table;
        self.nr_tables += 1;
        self.freed_tables = true;
    }

    /// Invalidate what was recorded, then free what waited for it (`tlb_flush_mmu`).
    pub fn flush<M: PtMemory>(&mut self, mem: &mut M) {
        let has_range = self.start < self.end;
        if self.active && (has_range || self.freed_tables) {
            // The stride: 2 MiB when only huge PMDs went, else 4 KiB.
            let stride = if self.huge_only && has_range {
                HPAGE_SIZE
            } else {
                PAGE_SIZE
            };
            let pages = if has_range {
                (self.end - self.start) / stride
            } else {
                u64::MAX
            };
            if pages > TLB_SINGLE_PAGE_FLUSH_CEILING {
                mem.flush_tlb_all();
                self.stats.full += 1;
            } else {
                // At most the ceiling's worth of pages: bounded.
                let mut va = self.start;
                while va < self.end {
                    mem.flush_tlb_page(VirtAddr::new(va));
                    va += stride;
                }
                self.stats.pages += pages;
            }
        }
        self.start = u64::MAX;
        self.end = 0;
        self.freed_tables = false;
        self.huge_only = true;
        for &h in &self.huge[..self.nr_huge] {
            mem.release_huge(h);
        }
        self.nr_huge = 0;
        for &t in &self.tables[..self.nr_tables] {
            mem.free_table(t);
        }
        self.nr_tables = 0;
        mem.release_pages(&self.pages[..self.nr_pages]);
        self.nr_pages = 0;
    }

    /// Flush and free everything still pending (`tlb_finish_mmu`).
    pub fn finish<M: PtMemory>(mut self, mem: &mut M) -> FlushStats {
        self.flush(mem);
        self.stats
    }
}

/// A cursor over the user part of one page-table hierarchy, confined to a range.
pub struct Cursor<'a, M: PtMemory> {
    mem: &'a mut M,
    root: PhysAddr,
    range: Range<u64>,
    va: u64,
    /// Entries [`Self::unmap_bounded`] may still clear, and where it stopped.
    budget: u64,
    stopped_at: Option<u64>,
    /// [`Self::find_next_entry`] is searching: non-present entries count too.
    any_entry: bool,
    /// The end of the huge PMD the last find stopped in (0: none): `move_forward` steps
    /// over the rest of it.
    huge_end: u64,
    pub stats: WalkStats,
}

/// Whether `[start, end)` is a page-aligned, non-empty range of the user half.
fn valid_range(r: &Range<VirtAddr>) -> bool {
    let (s, e) = (r.start.as_u64(), r.end.as_u64());
    s < e && e <= USER_TOP && s.is_multiple_of(PAGE_SIZE) && e.is_multiple_of(PAGE_SIZE)
}

impl<'a, M: PtMemory> Cursor<'a, M> {
    /// A cursor at `range.start` over the hierarchy rooted at `root`.
    pub fn new(mem: &'a mut M, root: PhysAddr, range: Range<VirtAddr>) -> Result<Self, PtError> {
        if !valid_range(&range) {
            return Err(PtError::BadRange);
        }
        Ok(Cursor {
            mem,
            root,
            va: range.start.as_u64(),
            range: range.start.as_u64()..range.end.as_u64(),
            budget: u64::MAX,
            stopped_at: None,
            any_entry: false,
            huge_end: 0,
            stats: WalkStats::default(),
        })
    }

    /// Where the cursor is.
    pub fn va(&self) -> VirtAddr {
        VirtAddr::new(self.va)
    }

    /// Move to `va` (page aligned, inside the cursor's range).
    pub fn jump(&mut self, va: VirtAddr) -> Result<(), PtError> {
        let v = va.as_u64();
        if !v.is_multiple_of(PAGE_SIZE) || !self.range.contains(&v) {
            return Err(PtError::BadRange);
        }
        self.va = v;
        self.huge_end = 0;
        Ok(())
    }

    /// Step to the next page; after a find that stopped in a huge PMD, past that PMD.
    pub fn move_forward(&mut self) {
        let next = if self.va < self.huge_end {
            self.huge_end
        } else {
            self.va + PAGE_SIZE
        };
        self.huge_end = 0;
        self.va = next.min(self.range.end);
    }

    /// The table at `level` (1 = PT) holding `va`'s entry, if the tables down to it exist.
    fn table_of(&mut self, va: u64, level: u32) -> Option<PhysAddr> {
        let mut table = self.root;
        for l in (level + 1..=ROOT_LEVEL).rev() {
            let e = self.mem.read_entry(table, index(va, l));
            self.stats.entries += 1;
            if e & pte::PRESENT == 0 || e & pte::PSE != 0 {
                return None;
            }
            table = PhysAddr::new(e & pte::ADDR_MASK);
        }
        Some(table)
    }

    /// The entry at the cursor (`None` if no page table covers it). In a huge PMD: the
    /// view of the subpage at the cursor ([`Pte::is_huge`]).
    pub fn query(&mut self) -> Option<Pte> {
        if let Some(e) = self.query_pmd().filter(|&e| pmd_huge(e)) {
            return Some(huge_subpage(e, self.va));
        }
        let t = self.table_of(self.va, 1)?;
        self.stats.entries += 1;
        Some(Pte(self.mem.read_entry(t, index(self.va, 1))))
    }

    /// The PMD (page-directory entry) covering the cursor, `None` if no directory does.
    pub fn query_pmd(&mut self) -> Option<u64> {
        let t = self.table_of(self.va, 2)?;
        self.stats.entries += 1;
        Some(self.mem.read_entry(t, index(self.va, 2)))
    }

    /// Replace the huge PMD covering the cursor by `new` (a huge leaf or 0); `None` (and
    /// nothing written) if there is no huge PMD there.
    pub fn replace_huge(&mut self, new: u64) -> Option<Pte> {
        let t = self.table_of(self.va, 2)?;
        let i = index(self.va, 2);
        let old = self.mem.read_entry(t, i);
        if !pmd_huge(old) {
            return None;
        }
        self.mem.write_entry(t, i, new);
        Some(Pte(old))
    }

    /// Map the 2 MiB page of `new` (a leaf with [`pte::PSE`]) at the cursor's 2 MiB-aligned
    /// range, creating the upper tables (`set_pmd_at` after `pmd_alloc`). The PMD must be
    /// empty: a page table there (even an empty one) makes it `BadRange`, as Linux falls
    /// back to 4 KiB pages when `pmd_none` fails.
    pub fn map_huge(&mut self, new: Pte) -> Result<(), PtError> {
        let mut table = self.root;
        for l in (3..=ROOT_LEVEL).rev() {
            let i = index(self.va, l);
            let e = self.mem.read_entry(table, i);
            self.stats.entries += 1;
            if e & pte::PSE != 0 {
                return Err(PtError::BadRange);
            }
            table = if e & pte::PRESENT == 0 {
                let t = self.mem.alloc_table().ok_or(PtError::NoMemory)?;
                self.mem.write_entry(table, i, t.as_u64() | pte::USER_TABLE);
                t
            } else {
                PhysAddr::new(e & pte::ADDR_MASK)
            };
        }
        let i = index(self.va, 2);
        if self.mem.read_entry(table, i) != 0 {
            return Err(PtError::BadRange);
        }
        self.mem.write_entry(table, i, new.0 | pte::PSE);
        Ok(())
    }

    /// Whether the PMD covering the cursor is empty (no table, no huge page: `pmd_none`).
    pub fn pmd_none(&mut self) -> bool {
        self.query_pmd().is_none_or(|e| e == 0)
    }

    /// Split the huge PMD covering the cursor into a table of 512 PTEs mapping the same
    /// frames with the same flags (`__split_huge_pmd_locked`). Returns the old PMD, or
    /// `Ok(None)` if there was no huge PMD. The caller flushes the old translation (one
    /// INVLPG in the 2 MiB range) and fixes up the pages' counts.
    pub fn split_huge(&mut self) -> Result<Option<Pte>, PtError> {
        let Some(t) = self.table_of(self.va, 2) else {
            return Ok(None);
        };
        let i = index(self.va, 2);
        let e = self.mem.read_entry(t, i);
        if !pmd_huge(e) {
            return Ok(None);
        }
        let pt = self.mem.alloc_table().ok_or(PtError::NoMemory)?;
        let base = e & pte::ADDR_MASK & !(HPAGE_SIZE - 1);
        let flags = e & !pte::ADDR_MASK & !pte::PSE;
        for j in 0..ENTRIES {
            self.mem
                .write_entry(pt, j, (base + j as u64 * PAGE_SIZE) | flags);
        }
        self.mem.write_entry(t, i, pt.as_u64() | pte::USER_TABLE);
        Ok(Some(Pte(e)))
    }

    /// The first mapped page (present or PROT_NONE) at or after the cursor, within its
    /// range; the cursor moves there. Empty tables are skipped whole.
    pub fn find_next(&mut self) -> Option<(VirtAddr, Pte)> {
        self.find_from_cursor(false)
    }

    /// The first non-empty entry at or after the cursor, within its range: a mapped page,
    /// or a non-present entry that holds something (a swap entry). The cursor moves there.
    pub fn find_next_entry(&mut self) -> Option<(VirtAddr, Pte)> {
        self.find_from_cursor(true)
    }

    /// [`Self::find_next`] (`any`: [`Self::find_next_entry`]).
    fn find_from_cursor(&mut self, any: bool) -> Option<(VirtAddr, Pte)> {
        if self.va >= self.range.end {
            return None;
        }
        self.any_entry = any;
        let r = self.find_in(self.root, ROOT_LEVEL, 0, self.va);
        self.any_entry = false;
        match r {
            Some((va, p)) => {
                self.va = va;
                self.huge_end = if p.is_huge() {
                    (va & !(HPAGE_SIZE - 1)) + HPAGE_SIZE
                } else {
                    0
                };
                Some((VirtAddr::new(va), p))
            }
            None => {
                self.va = self.range.end;
                None
            }
        }
    }

    /// [`Self::find_next`] inside the table at `level` whose range starts at `base`.
    fn find_in(&mut self, table: PhysAddr, level: u32, base: u64, from: u64) -> Option<(u64, Pte)> {
        let span = entry_span(level);
        for i in index(from, level)..ENTRIES {
            let ebase = base + i as u64 * span;
            if ebase >= self.range.end {
                return None;
            }
            let e = self.mem.read_entry(table, i);
            self.stats.entries += 1;
            if level == 1 {
                if Pte(e).is_present() || (self.any_entry && e != 0) {
                    return Some((ebase, Pte(e)));
                }
            } else if level == 2 && pmd_huge(e) {
                let va = from.max(ebase);
                return Some((va, huge_subpage(e, va)));
            } else if e & pte::PRESENT != 0 && e & pte::PSE == 0 {
                self.stats.tables += 1;
                let child = PhysAddr::new(e & pte::ADDR_MASK);
                if let Some(hit) = self.find_in(child, level - 1, ebase, from.max(ebase)) {
                    return Some(hit);
                }
            }
        }
        None
    }

    /// Map the page at the cursor to `new`, creating missing tables; returns the entry it
    /// replaced (the caller flushes if that one was accessible).
    pub fn map(&mut self, new: Pte) -> Result<Pte, PtError> {
        let mut table = self.root;
        for l in (2..=ROOT_LEVEL).rev() {
            let i = index(self.va, l);
            let e = self.mem.read_entry(table, i);
            self.stats.entries += 1;
            if e & pte::PSE != 0 {
                return Err(PtError::BadRange);
            }
            table = if e & pte::PRESENT == 0 {
                let t = self.mem.alloc_table().ok_or(PtError::NoMemory)?;
                self.mem.write_entry(table, i, t.as_u64() | pte::USER_TABLE);
                t
            } else {
                PhysAddr::new(e & pte::ADDR_MASK)
            };
        }
        let i = index(self.va, 1);
        let old = Pte(self.mem.read_entry(table, i));
        self.mem.write_entry(table, i, new.0);
        Ok(old)
    }

    /// Replace the entry at the cursor without creating tables; `None` if there is no
    /// page table there (nothing is written then).
    pub fn replace(&mut self, new: Pte) -> Option<Pte> {
        let t = self.table_of(self.va, 1)?;
        let i = index(self.va, 1);
        let old = Pte(self.mem.read_entry(t, i));
        self.mem.write_entry(t, i, new.0);
        Some(old)
    }

    /// Clear every entry of `[cursor, cursor + len)` (`unmap_page_range`). `f` sees each
    /// removed entry and says whether its page reference is to be dropped (after the
    /// flush). Tables left empty are unlinked and freed through `tlb`; the cursor ends at
    /// the end of the range.
    pub fn unmap(
        &mut self,
        len: u64,
        tlb: &mut MmuGather,
        f: &mut dyn FnMut(VirtAddr, Pte) -> bool,
    ) -> Result<(), PtError> {
        self.unmap_bounded(len, u64::MAX, tlb, f).map(drop)
    }

    /// [`Self::unmap`] that stops before clearing entry number `budget + 1`, so that a
    /// caller can reschedule between pieces of a huge zap (Linux's `cond_resched` in
    /// `zap_pmd_range`). Returns where it stopped (the cursor is there), or `None` when the
    /// range is done.
    pub fn unmap_bounded(
        &mut self,
        len: u64,
        budget: u64,
        tlb: &mut MmuGather,
        f: &mut dyn FnMut(VirtAddr, Pte) -> bool,
    ) -> Result<Option<VirtAddr>, PtError> {
        let (start, end) = self.sub_range(len)?;
        self.budget = budget;
        self.stopped_at = None;
        self.zap_table(self.root, ROOT_LEVEL, 0, start, end, tlb, f);
        self.va = self.stopped_at.unwrap_or(end);
        Ok(self.stopped_at.map(VirtAddr::new))
    }

    /// The range `[cursor, cursor + len)`, checked against the cursor's.
    fn sub_range(&self, len: u64) -> Result<(u64, u64), PtError> {
        let end = self.va.checked_add(len).ok_or(PtError::BadRange)?;
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) || end > self.range.end {
            return Err(PtError::BadRange);
        }
        Ok((self.va, end))
    }

    /// One level of [`Self::unmap`] (`zap_pud_range` and friends). Returns whether the
    /// table is empty afterwards.
    #[allow(clippy::too_many_arguments)]
    fn zap_table(
        &mut self,
        table: PhysAddr,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
        tlb: &mut MmuGather,
        f: &mut dyn FnMut(VirtAddr, Pte) -> bool,
    ) -> bool {
        let span = entry_span(level);
        let (first, last) = (index(start, level), index(end - 1, level));
        let mut kept = false;
        for i in first..=last {
            let e = self.mem.read_entry(table, i);
            self.stats.entries += 1;
            if e == 0 {
                continue;
            }
            let ebase = base + i as u64 * span;
            if level == 1 {
                if self.budget == 0 {
                    self.stopped_at = Some(ebase);
                    return false;
                }
                self.budget -= 1;
                self.mem.write_entry(table, i, 0);
                let p = Pte(e);
                if p.is_accessible() {
                    tlb.add_page(VirtAddr::new(ebase));
                }
                if f(VirtAddr::new(ebase), p) {
                    tlb.remove_page(p.phys(), self.mem);
                }
            } else if level == 2 && pmd_huge(e) {
                // A huge PMD goes whole when the range covers it (`zap_huge_pmd`); one the
                // range cuts was split by the caller, or stays.
                if start > ebase || end < ebase + span {
                    kept = true;
                    continue;
                }
                if self.budget == 0 {
                    self.stopped_at = Some(ebase);
                    return false;
                }
                self.budget -= 1;
                self.mem.write_entry(table, i, 0);
                let p = Pte(e);
                if e & pte::PRESENT != 0 {
                    tlb.add_huge(VirtAddr::new(ebase));
                }
                if f(VirtAddr::new(ebase), p) {
                    tlb.remove_huge(p.huge_base(), self.mem);
                }
            } else if e & pte::PRESENT != 0 && e & pte::PSE == 0 {
                self.stats.tables += 1;
                let child = PhysAddr::new(e & pte::ADDR_MASK);
                let (s, en) = (start.max(ebase), end.min(ebase + span));
                if self.zap_table(child, level - 1, ebase, s, en, tlb, f) {
                    self.mem.write_entry(table, i, 0);
                    tlb.remove_table(child, self.mem);
                } else if self.stopped_at.is_some() {
                    return false;
                } else {
                    kept = true;
                }
            } else {
                kept = true;
            }
        }
        if kept {
            return false;
        }
        // Entries outside the zapped part may still be in use.
        let outside = (0..first).chain(last + 1..ENTRIES);
        for i in outside {
            self.stats.entries += 1;
            if self.mem.read_entry(table, i) != 0 {
                return false;
            }
        }
        true
    }

    /// Rewrite every mapped entry of `[cursor, cursor + len)` to `f(va, old)`
    /// (`change_protection`); changed accessible entries are recorded in `tlb`.
    pub fn protect(
        &mut self,
        len: u64,
        tlb: &mut MmuGather,
        f: &mut dyn FnMut(VirtAddr, Pte) -> Pte,
    ) -> Result<(), PtError> {
        let (start, end) = self.sub_range(len)?;
        self.protect_table(self.root, ROOT_LEVEL, 0, start, end, tlb, f);
        self.va = end;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn protect_table(
        &mut self,
        table: PhysAddr,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
        tlb: &mut MmuGather,
        f: &mut dyn FnMut(VirtAddr, Pte) -> Pte,
    ) {
        let span = entry_span(level);
        for i in index(start, level)..=index(end - 1, level) {
            let e = self.mem.read_entry(table, i);
            self.stats.entries += 1;
            let ebase = base + i as u64 * span;
            if level == 1 {
                let old = Pte(e);
                if !old.is_present() {
                    continue;
                }
                let new = f(VirtAddr::new(ebase), old);
                if new != old {
                    self.mem.write_entry(table, i, new.0);
                    if old.is_accessible() {
                        tlb.add_page(VirtAddr::new(ebase));
                    }
                }
            } else if level == 2 && pmd_huge(e) {
                // `change_huge_pmd`: only a PMD the range covers whole.
                if start > ebase || end < ebase + span {
                    continue;
                }
                let old = Pte(e);
                let new = Pte(f(VirtAddr::new(ebase), old).0 | pte::PSE);
                if new != old {
                    self.mem.write_entry(table, i, new.0);
                    if old.is_accessible() {
                        tlb.add_huge(VirtAddr::new(ebase));
                    }
                }
            } else if e & pte::PRESENT != 0 && e & pte::PSE == 0 {
                self.stats.tables += 1;
                let child = PhysAddr::new(e & pte::ADDR_MASK);
                let (s, en) = (start.max(ebase), end.min(ebase + span));
                self.protect_table(child, level - 1, ebase, s, en, tlb, f);
            }
        }
    }

    /// Copy the mapped entries of `[cursor, cursor + len)` into the hierarchy rooted at
    /// `dst` (`copy_page_range` at fork). `f` may rewrite the source entry (write-protect
    /// for COW; the caller flushes the source afterwards) and returns the entry for `dst`,
    /// or `None` to leave it out. Destination tables are allocated as needed; on
    /// `NoMemory` what was copied so far stays linked in `dst` for its owner to tear down.
    pub fn copy_to(
        &mut self,
        dst: PhysAddr,
        len: u64,
        f: &mut dyn FnMut(VirtAddr, &mut Pte) -> Option<Pte>,
    ) -> Result<(), PtError> {
        let (start, end) = self.sub_range(len)?;
        self.copy_table(self.root, dst, ROOT_LEVEL, 0, start, end, f)?;
        self.va = end;
        Ok(())
    }

    /// One level of [`Self::copy_to`]; returns whether anything was copied.
    #[allow(clippy::too_many_arguments)]
    fn copy_table(
        &mut self,
        src: PhysAddr,
        dst: PhysAddr,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(VirtAddr, &mut Pte) -> Option<Pte>,
    ) -> Result<bool, PtError> {
        let span = entry_span(level);
        let mut copied = false;
        for i in index(start, level)..=index(end - 1, level) {
            let e = self.mem.read_entry(src, i);
            self.stats.entries += 1;
            if e == 0 {
                continue;
            }
            let ebase = base + i as u64 * span;
            if level == 1 {
                // Mapped pages and non-present entries that hold something (swap
                // entries) alike: `f` tells them apart.
                let old = Pte(e);
                let mut p = old;
                if let Some(child) = f(VirtAddr::new(ebase), &mut p) {
                    self.mem.write_entry(dst, i, child.0);
                    copied = true;
                }
                if p != old {
                    self.mem.write_entry(src, i, p.0);
                }
            } else if level == 2 && pmd_huge(e) {
                // `copy_huge_pmd`: the child gets the PMD `f` gives (a huge leaf).
                let old = Pte(e);
                let mut p = old;
                if let Some(child) = f(VirtAddr::new(ebase), &mut p) {
                    self.mem.write_entry(dst, i, child.0 | pte::PSE);
                    copied = true;
                }
                if p != old {
                    self.mem.write_entry(src, i, p.0 | pte::PSE);
                }
            } else if e & pte::PRESENT != 0 && e & pte::PSE == 0 {
                self.stats.tables += 1;
                let child = PhysAddr::new(e & pte::ADDR_MASK);
                let d = self.mem.read_entry(dst, i);
                let (dchild, fresh) = if d & pte::PRESENT != 0 {
                    (PhysAddr::new(d & pte::ADDR_MASK), false)
                } else {
                    let t = self.mem.alloc_table().ok_or(PtError::NoMemory)?;
                    self.mem.write_entry(dst, i, t.as_u64() | pte::USER_TABLE);
                    (t, true)
                };
                let (s, en) = (start.max(ebase), end.min(ebase + span));
                if self.copy_table(child, dchild, level - 1, ebase, s, en, f)? {
                    copied = true;
                } else if fresh {
                    // Nothing mapped below: no empty table in the copy (dst is not live).
                    self.mem.write_entry(dst, i, 0);
                    self.mem.free_table(dchild);
                }
            }
        }
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::{BTreeMap, BTreeSet};
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// Table frames live at `TABLE_BASE + i * PAGE_SIZE`; data pages are numbers the model
    /// hands out, never dereferenced.
    const TABLE_BASE: u64 = 1 << 20;

    /// Vec-backed physical memory for tables, with a TLB model: which user pages may be
    /// cached, to check that nothing is freed while a stale translation could reach it.
    struct FakeMem {
        frames: Vec<[u64; ENTRIES]>,
        free: Vec<usize>,
        live: BTreeSet<usize>,
        /// Allocation fails when this many tables are live.
        limit: usize,
        released: Vec<u64>,
        flushes: FlushStats,
        /// Pages' virtual addresses, by frame, and the addresses the TLB may cache.
        owner: BTreeMap<u64, u64>,
        cached: BTreeSet<u64>,
        check_tlb: bool,
    }

    impl FakeMem {
        fn new() -> Self {
            FakeMem {
                frames: Vec::new(),
                free: Vec::new(),
                live: BTreeSet::new(),
                limit: usize::MAX,
                released: Vec::new(),
                flushes: FlushStats::default(),
                owner: BTreeMap::new(),
                cached: BTreeSet::new(),
                check_tlb: true,
            }
        }
        fn slot(pa: PhysAddr) -> usize {
            ((pa.as_u64() - TABLE_BASE) / PAGE_SIZE) as usize
        }
    }

    impl PtMemory for FakeMem {
        fn read_entry(&self, t: PhysAddr, i: usize) -> u64 {
            assert!(self.live.contains(&Self::slot(t)), "read of a freed table");
            self.frames[Self::slot(t)][i]
        }
        fn write_entry(&mut self, t: PhysAddr, i: usize, v: u64) {
            assert!(self.live.contains(&Self::slot(t)), "write to a freed table");
            self.frames[Self::slot(t)][i] = v;
        }
        fn alloc_table(&mut self) -> Option<PhysAddr> {
            if self.live.len() >= self.limit {
                return None;
            }
            let s = match self.free.pop() {
                Some(s) => s,
                None => {
                    self.frames.push([0; ENTRIES]);
                    self.frames.len() - 1
                }
            };
            self.frames[s] = [0; ENTRIES];
            self.live.insert(s);
            Some(PhysAddr::new(TABLE_BASE + s as u64 * PAGE_SIZE))
        }
        fn free_table(&mut self, t: PhysAddr) {
            let s = Self::slot(t);
            assert!(
                self.frames[s].iter().all(|&e| e == 0),
                "freed a non-empty table"
            );
            assert!(self.live.remove(&s), "double free of a table");
            self.free.push(s);
        }
        fn release_page(&mut self, p: PhysAddr) {
            if self.check_tlb {
                let va = self.owner[&p.as_u64()];
                assert!(
                    !self.cached.contains(&va),
                    "page at {va:#x} released before its flush"
                );
            }
            self.released.push(p.as_u64());
        }
        fn flush_tlb_page(&mut self, va: VirtAddr) {
            self.cached.remove(&va.as_u64());
            self.flushes.pages += 1;
        }
        fn flush_tlb_all(&mut self) {
            self.cached.clear();
            self.flushes.full += 1;
        }
    }

    fn root(m: &mut FakeMem) -> PhysAddr {
        m.alloc_table().unwrap()
    }

    fn all(m: &mut FakeMem, r: PhysAddr) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        let mut c = Cursor::new(m, r, VirtAddr::new(0)..VirtAddr::new(USER_TOP)).unwrap();
        while let Some((va, p)) = c.find_next() {
            out.insert(va.as_u64() >> PAGE_SHIFT, p.0);
            c.move_forward();
        }
        out
    }

    /// Tables a hierarchy holding exactly `pages` needs, below the root.
    fn tables_needed(pages: &BTreeMap<u64, u64>) -> usize {
        let mut n = 0;
        for shift in [LEVEL_BITS, 2 * LEVEL_BITS, 3 * LEVEL_BITS] {
            n += pages
                .keys()
                .map(|v| v >> shift)
                .collect::<BTreeSet<_>>()
                .len();
        }
        n
    }

    fn map_page(m: &mut FakeMem, r: PhysAddr, vpn: u64, v: u64) {
        let va = VirtAddr::new(vpn << PAGE_SHIFT);
        let mut c = Cursor::new(m, r, va..VirtAddr::new(va.as_u64() + PAGE_SIZE)).unwrap();
        c.map(Pte(v)).unwrap();
        m.owner.insert(v & pte::ADDR_MASK, va.as_u64());
        m.cached.insert(va.as_u64());
    }

    fn zap(m: &mut FakeMem, r: PhysAddr, s: u64, e: u64, active: bool) -> (WalkStats, FlushStats) {
        let mut tlb = MmuGather::new(active);
        let mut released = Vec::new();
        // `release_page` checks each page's translation was flushed first.
        m.check_tlb = active;
        let stats = {
            let mut c = Cursor::new(m, r, VirtAddr::new(s)..VirtAddr::new(e)).unwrap();
            c.unmap(e - s, &mut tlb, &mut |va, p| {
                released.push((va.as_u64(), p.0));
                true
            })
            .unwrap();
            c.stats
        };
        let f = tlb.finish(m);
        m.check_tlb = true;
        m.cached
            .retain(|va| !released.iter().any(|&(v, _)| v == *va));
        (stats, f)
    }

    #[test]
    fn sparse_16tib_unmap_is_proportional_to_tables() {
        let mut m = FakeMem::new();
        let r = root(&mut m);
        let base = 0x100_0000_0000u64; // 1 TiB
        let len = 16u64 << 40;
        // Touched once in the middle.
        let vpn = (base + len / 2) >> PAGE_SHIFT;
        map_page(&mut m, r, vpn, 0x1234_5000 | pte::PRESENT);
        assert_eq!(m.live.len(), 4);
        let (w, f) = zap(&mut m, r, base, base + len, true);
        assert_eq!(m.live.len(), 1, "empty tables freed, the root kept");
        assert_eq!(m.released, vec![0x1234_5000]);
        // 3 tables entered, at most a table's worth of entries each plus the root's.
        assert_eq!(w.tables, 3);
        assert!(w.entries <= 4 * ENTRIES as u64, "{w:?}");
        assert_eq!(f, FlushStats { pages: 1, full: 0 });
    }

    #[test]
    fn fork_copy_of_sparse_mapping_is_proportional() {
        let mut m = FakeMem::new();
        let (src, dst) = (root(&mut m), root(&mut m));
        let base = 0x100_0000_0000u64;
        let len = 16u64 << 40;
        for k in [1u64, 77, 1 << 30] {
            map_page(
                &mut m,
                src,
                (base >> PAGE_SHIFT) + k,
                (k << 12) | pte::PRESENT | pte::RW,
            );
        }
        let mut c =
            Cursor::new(&mut m, src, VirtAddr::new(base)..VirtAddr::new(base + len)).unwrap();
        c.copy_to(dst, len, &mut |_, p| {
            p.0 &= !pte::RW;
            Some(*p)
        })
        .unwrap();
        let w = c.stats;
        assert!(w.entries <= 12 * ENTRIES as u64, "{w:?}");
        let (a, b) = (all(&mut m, src), all(&mut m, dst));
        assert_eq!(a, b);
        assert!(a.values().all(|v| v & pte::RW == 0));
    }

    #[test]
    fn find_next_and_protect_skip_empty_tables() {
        let mut m = FakeMem::new();
        let r = root(&mut m);
        // Two pages 64 TiB apart: everything between is empty PML4 slots.
        let (a, b) = (1u64 << 27, 1u64 << 34);
        map_page(&mut m, r, a, 0x1000 | pte::PRESENT | pte::RW);
        map_page(&mut m, r, b, 0x2000 | pte::PRESENT | pte::RW);
        let mut c = Cursor::new(&mut m, r, VirtAddr::new(0)..VirtAddr::new(USER_TOP)).unwrap();
        let mut seen = Vec::new();
        while let Some((va, _)) = c.find_next() {
            seen.push(va.as_u64() >> PAGE_SHIFT);
            c.move_forward();
        }
        assert_eq!(seen, vec![a, b]);
        // Two chains of 3 tables below the root: each of the 3 calls enters only tables
        // on its way (the 64 TiB between cost one root entry each), and the entries read
        // stay within the 7 tables' worth.
        assert!(
            c.stats.tables <= 12 && c.stats.entries <= 7 * ENTRIES as u64,
            "{:?}",
            c.stats
        );
        let mut tlb = MmuGather::new(true);
        c.jump(VirtAddr::new(0)).unwrap();
        c.stats = WalkStats::default();
        c.protect(USER_TOP, &mut tlb, &mut |_, p| Pte(p.0 & !pte::RW))
            .unwrap();
        assert!(c.stats.entries <= 7 * ENTRIES as u64, "{:?}", c.stats);
        let f = tlb.finish(&mut m);
        // Two pages far apart: one range spanning them, above the ceiling.
        assert_eq!(f, FlushStats { pages: 0, full: 1 });
        assert!(all(&mut m, r).values().all(|v| v & pte::RW == 0));
    }

    #[test]
    fn flush_ceiling_and_batches() {
        let mut m = FakeMem::new();
        let r = root(&mut m);
        for vpn in 0..TLB_SINGLE_PAGE_FLUSH_CEILING {
            map_page(&mut m, r, 16 + vpn, (vpn + 1) << 12 | pte::PRESENT);
        }
        let (_, f) = zap(
            &mut m,
            r,
            16 << 12,
            (16 + TLB_SINGLE_PAGE_FLUSH_CEILING) << 12,
            true,
        );
        assert_eq!(
            f,
            FlushStats {
                pages: TLB_SINGLE_PAGE_FLUSH_CEILING,
                full: 0
            }
        );
        // One page more: a full flush. Many more: flushed batch by batch, never freeing early.
        for n in [
            TLB_SINGLE_PAGE_FLUSH_CEILING + 1,
            3 * GATHER_BATCH as u64 + 5,
        ] {
            for vpn in 0..n {
                map_page(&mut m, r, 16 + vpn, (vpn + 1) << 12 | pte::PRESENT);
            }
            let (_, f) = zap(&mut m, r, 16 << 12, (16 + n) << 12, true);
            assert!(
                f.full >= 1 && f.full <= n / GATHER_BATCH as u64 + 1,
                "{f:?}"
            );
        }
        // Not the current address space: nothing to flush.
        map_page(&mut m, r, 16, 1 << 12 | pte::PRESENT);
        let (_, f) = zap(&mut m, r, 0, 1 << 30, false);
        assert_eq!(f, FlushStats::default());
        assert_eq!(m.live.len(), 1);
    }

    #[test]
    fn bounded_unmap_resumes_where_it_stopped() {
        let mut m = FakeMem::new();
        let r = root(&mut m);
        let n = 3 * ENTRIES as u64 + 7;
        for vpn in 0..n {
            map_page(&mut m, r, 100 + vpn, (vpn + 1) << 12 | pte::PRESENT);
        }
        let (s, e) = (100u64 << PAGE_SHIFT, (100 + n) << PAGE_SHIFT);
        let mut pieces = 0;
        let mut from = s;
        loop {
            let mut tlb = MmuGather::new(true);
            let mut c = Cursor::new(&mut m, r, VirtAddr::new(from)..VirtAddr::new(e)).unwrap();
            let mut cleared = 0;
            let next = c
                .unmap_bounded(e - from, ENTRIES as u64, &mut tlb, &mut |_, _| {
                    cleared += 1;
                    true
                })
                .unwrap();
            assert!(cleared <= ENTRIES);
            tlb.finish(&mut m);
            pieces += 1;
            match next {
                Some(va) => from = va.as_u64(),
                None => break,
            }
        }
        assert_eq!(pieces, 4);
        assert_eq!(m.released.len() as u64, n);
        assert!(all(&mut m, r).is_empty());
        assert_eq!(m.live.len(), 1, "every table freed by the last piece");
    }

    #[test]
    fn protnone_counts_as_mapped() {
        let mut m = FakeMem::new();
        let r = root(&mut m);
        map_page(&mut m, r, 5, 0x7000 | pte::PROTNONE | pte::ACCESSED);
        assert!(Pte(0x7000 | pte::PROTNONE).is_protnone());
        assert_eq!(all(&mut m, r).len(), 1);
        let (_, f) = zap(&mut m, r, 0, 1 << 21, true);
        // The leaf was never cached, but freed tables may be (paging-structure caches).
        assert_eq!(f, FlushStats { pages: 0, full: 1 });
        assert_eq!(m.released, vec![0x7000]);
    }

    #[test]
    fn map_fails_cleanly_without_memory() {
        let mut m = FakeMem::new();
        let r = root(&mut m);
        m.limit = 2;
        let va = VirtAddr::new(1 << 30);
        let mut c = Cursor::new(&mut m, r, va..VirtAddr::new((1 << 30) + PAGE_SIZE)).unwrap();
        assert_eq!(c.map(Pte(0x5000 | pte::PRESENT)), Err(PtError::NoMemory));
        assert!(Cursor::new(
            &mut m,
            r,
            VirtAddr::new(0)..VirtAddr::new(USER_TOP + PAGE_SIZE)
        )
        .is_err());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Map(u64, u64),
        Unmap(u64, u64),
        Protect(u64, u64),
        Copy(u64, u64),
    }

    /// Page numbers clustered so that ranges share tables at every level.
    fn vpn() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..2048,
            (0u64..4).prop_map(|k| (k << 18) + 510),
            (0u64..4).prop_map(|k| (k << 27) + 260_000),
            ((1u64 << 35) - 600)..(1u64 << 35),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        (0u8..4, vpn(), 1u64..1200).prop_map(|(k, s, n)| {
            let e = (s + n).min(1 << 35);
            match k {
                0 => Op::Map(s, e.min(s + 64)),
                1 => Op::Unmap(s, e),
                2 => Op::Protect(s, e),
                _ => Op::Copy(s, e),
            }
        })
    }

    proptest! {
        /// Random map/unmap/protect/copy ranges against a BTreeMap model: the tables hold
        /// exactly the model's pages, empty tables are freed, and released pages are
        /// exactly the unmapped ones, each after its flush.
        #[test]
        fn cursor_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
            let mut m = FakeMem::new();
            let (r, r2) = (root(&mut m), root(&mut m));
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut model2: BTreeMap<u64, u64> = BTreeMap::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Map(s, e) => {
                        for v in s..e {
                            if model.contains_key(&v) { continue; }
                            let p = (next << 12) | pte::PRESENT | pte::RW;
                            next += 1;
                            map_page(&mut m, r, v, p);
                            model.insert(v, p);
                        }
                    }
                    Op::Unmap(s, e) => {
                        let before = m.released.len();
                        zap(&mut m, r, s << 12, e << 12, true);
                        let mut gone: Vec<u64> = model.range(s..e).map(|(_, p)| p & pte::ADDR_MASK).collect();
                        model.retain(|v, _| !(s..e).contains(v));
                        let mut got = m.released[before..].to_vec();
                        gone.sort_unstable();
                        got.sort_unstable();
                        prop_assert_eq!(got, gone);
                    }
                    Op::Protect(s, e) => {
                        let mut tlb = MmuGather::new(true);
                        let mut c = Cursor::new(&mut m, r, VirtAddr::new(s << 12)..VirtAddr::new(e << 12)).unwrap();
                        c.protect((e - s) << 12, &mut tlb, &mut |_, p| Pte(p.0 ^ pte::RW)).unwrap();
                        tlb.finish(&mut m);
                        for (_, p) in model.range_mut(s..e) { *p ^= pte::RW; }
                    }
                    Op::Copy(s, e) => {
                        let mut c = Cursor::new(&mut m, r, VirtAddr::new(s << 12)..VirtAddr::new(e << 12)).unwrap();
                        c.copy_to(r2, (e - s) << 12, &mut |_, p| Some(*p)).unwrap();
                        for (&v, &p) in model.range(s..e) { model2.insert(v, p); }
                    }
                }
                prop_assert_eq!(&all(&mut m, r), &model);
                prop_assert_eq!(&all(&mut m, r2), &model2);
                prop_assert_eq!(m.live.len(), 2 + tables_needed(&model) + tables_needed(&model2));
            }
        }
    }

    /// A huge PMD: mapped on an empty PMD only, seen by query and find_next as its
    /// subpages (find_next stops once, move_forward steps over it), protected and zapped
    /// whole with one INVLPG, left alone by a range that cuts it, and split into 512 PTEs
    /// mapping the same frames.
    #[test]
    fn huge_pmd_map_find_protect_split_zap() {
        let mut m = FakeMem::new();
        let r = root(&mut m);
        let base = 0x4000_0000u64;
        let frame = 0x8000_0000u64;
        let leaf = frame | pte::PRESENT | pte::RW | pte::USER;
        {
            let mut c = Cursor::new(
                &mut m,
                r,
                VirtAddr::new(base)..VirtAddr::new(base + HPAGE_SIZE),
            )
            .unwrap();
            assert!(c.pmd_none());
            c.map_huge(Pte(leaf)).unwrap();
            assert!(!c.pmd_none());
            assert_eq!(c.map_huge(Pte(leaf)), Err(PtError::BadRange));
            c.jump(VirtAddr::new(base + 5 * PAGE_SIZE)).unwrap();
            let q = c.query().unwrap();
            assert!(q.is_huge());
            assert_eq!(q.phys().as_u64(), frame + 5 * PAGE_SIZE);
            assert_eq!(q.huge_base().as_u64(), frame);
        }
        // A page table next to it: find_next sees the huge PMD once, then the 4 KiB page.
        map_page(
            &mut m,
            r,
            (base + HPAGE_SIZE) >> PAGE_SHIFT,
            0x9000_0000 | pte::PRESENT,
        );
        let seen = all(&mut m, r);
        assert_eq!(seen.len(), 2);
        assert!(Pte(seen[&(base >> PAGE_SHIFT)]).is_huge());
        // A protect that covers it rewrites it (PS kept) with one INVLPG.
        let mut tlb = MmuGather::new(true);
        {
            let mut c = Cursor::new(
                &mut m,
                r,
                VirtAddr::new(base)..VirtAddr::new(base + HPAGE_SIZE),
            )
            .unwrap();
            c.protect(HPAGE_SIZE, &mut tlb, &mut |_, old| Pte(old.0 & !pte::RW))
                .unwrap();
        }
        let f = tlb.finish(&mut m);
        assert_eq!(f, FlushStats { pages: 1, full: 0 });
        // A zap of half of it leaves it alone.
        let (_, _) = zap(&mut m, r, base, base + HPAGE_SIZE / 2, true);
        assert!(m.released.is_empty());
        // Split: 512 PTEs, same frames, same flags minus PS.
        {
            let mut c = Cursor::new(
                &mut m,
                r,
                VirtAddr::new(base)..VirtAddr::new(base + HPAGE_SIZE),
            )
            .unwrap();
            let old = c.split_huge().unwrap().unwrap();
            assert_eq!(old.0, (leaf & !pte::RW) | pte::PSE);
            assert_eq!(c.split_huge().unwrap(), None);
        }
        let seen = all(&mut m, r);
        assert_eq!(seen.len(), 513);
        for i in 0..512u64 {
            let p = Pte(seen[&((base >> PAGE_SHIFT) + i)]);
            assert!(!p.is_huge());
            assert_eq!(p.0, (frame + i * PAGE_SIZE) | pte::PRESENT | pte::USER);
        }
        // Huge zap: map another one and unmap it whole: one INVLPG, released as one page.
        let b2 = base + 4 * HPAGE_SIZE;
        {
            let mut c =
                Cursor::new(&mut m, r, VirtAddr::new(b2)..VirtAddr::new(b2 + HPAGE_SIZE)).unwrap();
            c.map_huge(Pte(0xa000_0000 | pte::PRESENT | pte::USER))
                .unwrap();
        }
        m.owner.insert(0xa000_0000, b2);
        let (_, f) = zap(&mut m, r, b2, b2 + HPAGE_SIZE, true);
        assert_eq!(f, FlushStats { pages: 1, full: 0 });
        assert_eq!(m.released, vec![0xa000_0000]);
    }
}
