//! The classic two-list LRU of page reclaim (`mm/vmscan.c`, `mm/swap.c`,
//! `include/linux/mm_inline.h`; not the multi-generational LRU).
//!
//! Every user page is on one of five lists of its node's (or memory cgroup's) [`Lruvec`]:
//! inactive and active lists for anonymous (swap-backed) pages, the same for file pages, and
//! the unevictable list (mlocked, ramfs). New pages start inactive; a second access while
//! inactive promotes them ([`mark_page_accessed`], [`page_check_references`]); reclaim takes
//! pages from the tail of the inactive lists ([`Lruvec::isolate_tail`]) and refills them by
//! deactivating the tail of the active lists when the inactive list is too small
//! ([`inactive_is_low`]). [`get_scan_count`] decides how hard to press on anon versus file.
//!
//! The lists are [`PageList`]s threaded through `Page::lru`; the head is the most recently
//! added end, reclaim works from the tail.

use alloc::vec::Vec;

use crate::addr::{Pfn, PAGE_SHIFT};
use crate::list::PageList;
use crate::page::flags::*;
use crate::page::{Page, Pages};
use crate::watermark::int_sqrt;

/// The reclaim priority reclaim starts at (`DEF_PRIORITY`): each pass scans `size >>
/// priority` pages of each list, and priority drops by one for each pass that did not
/// reclaim enough, down to 0 (scan everything).
pub const DEF_PRIORITY: u32 = 12;
/// Pages reclaim works on in one batch (`SWAP_CLUSTER_MAX`): the isolation batch size and
/// the reclaim target of one direct-reclaim round.
pub const SWAP_CLUSTER_MAX: u64 = 32;
/// Pages in one per-CPU LRU batch ([`Pagevec`], Linux's `PAGEVEC_SIZE`).
pub const PAGEVEC_SIZE: usize = 15;
/// Highest `vm.swappiness`: anon is then preferred as much as file is at 0.
pub const MAX_SWAPPINESS: u32 = 200;
/// Default `vm.swappiness`: anon and file weighed equally before their costs.
pub const DEFAULT_SWAPPINESS: u32 = 60;

/// The LRU lists, in Linux's order (`enum lru_list`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LruList {
    InactiveAnon = 0,
    ActiveAnon = 1,
    InactiveFile = 2,
    ActiveFile = 3,
    Unevictable = 4,
}

/// Number of LRU lists.
pub const NR_LRU_LISTS: usize = 5;
/// Number of evictable lists (all but the unevictable one).
pub const NR_EVICTABLE_LRU_LISTS: usize = 4;

impl LruList {
    /// Every list, in index order.
    pub const ALL: [LruList; NR_LRU_LISTS] = [
        LruList::InactiveAnon,
        LruList::ActiveAnon,
        LruList::InactiveFile,
        LruList::ActiveFile,
        LruList::Unevictable,
    ];
    /// The evictable lists (`for_each_evictable_lru`).
    pub const EVICTABLE: [LruList; NR_EVICTABLE_LRU_LISTS] = [
        LruList::InactiveAnon,
        LruList::ActiveAnon,
        LruList::InactiveFile,
        LruList::ActiveFile,
    ];

    /// The list's index (`enum lru_list` value).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// `is_file_lru`.
    pub const fn is_file(self) -> bool {
        matches!(self, LruList::InactiveFile | LruList::ActiveFile)
    }

    /// `is_active_lru`.
    pub const fn is_active(self) -> bool {
        matches!(self, LruList::ActiveAnon | LruList::ActiveFile)
    }

    /// The inactive list of anon (`file` false) or file pages.
    pub const fn inactive(file: bool) -> LruList {
        if file {
            LruList::InactiveFile
        } else {
            LruList::InactiveAnon
        }
    }

    /// The active list of anon (`file` false) or file pages.
    pub const fn active(file: bool) -> LruList {
        if file {
            LruList::ActiveFile
        } else {
            LruList::ActiveAnon
        }
    }

    /// The list's name in /proc/meminfo.
    pub const fn meminfo_name(self) -> &'static str {
        match self {
            LruList::InactiveAnon => "Inactive(anon)",
            LruList::ActiveAnon => "Active(anon)",
            LruList::InactiveFile => "Inactive(file)",
            LruList::ActiveFile => "Active(file)",
            LruList::Unevictable => "Unevictable",
        }
    }
}

/// `folio_lru_list`: the list a page belongs on, from its flags: unevictable pages on the
/// unevictable list, swap-backed pages on the anon lists, others on the file lists (so
/// MADV_FREE'd anon pages, which lose PG_swapbacked, go with file pages), PG_active picking
/// the active one.
pub fn page_lru(page: &Page) -> LruList {
    debug_assert!(!page.test(PG_ACTIVE | PG_UNEVICTABLE));
    if page.test(PG_UNEVICTABLE) {
        return LruList::Unevictable;
    }
    let file = !page.test(PG_SWAPBACKED);
    if page.test(PG_ACTIVE) {
        LruList::active(file)
    } else {
        LruList::inactive(file)
    }
}

/// Anon (0) and file (1) halves of per-type counters (`WORKINGSET_ANON`/`WORKINGSET_FILE`).
pub const ANON_AND_FILE: usize = 2;

/// What [`Lruvec::isolate_tail`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IsolateStats {
    /// Pages looked at.
    pub scanned: u64,
    /// Pages taken off the list.
    pub taken: u64,
    /// Pages the caller refused, put back at the head.
    pub skipped: u64,
}

/// One node's (or one memory cgroup's share of a node's) LRU lists (`struct lruvec`).
#[derive(Clone, Debug, Default)]
pub struct Lruvec {
    lists: [PageList; NR_LRU_LISTS],
    /// Recent cost of reclaiming anon pages (`anon_cost`): pages swapped out and anon
    /// refaults, decayed by [`Lruvec::note_cost`]. Balances the scan in [`get_scan_count`].
    pub anon_cost: u64,
    /// Recent cost of reclaiming file pages (`file_cost`).
    pub file_cost: u64,
    /// Evictions and activations so far (`nonresident_age`): the clock shadow entries
    /// record, see [`crate::workingset`].
    pub nonresident_age: u64,
    /// `WORKINGSET_ACTIVATE_{ANON,FILE}` as seen at the last reclaim cycle (`refaults`): a
    /// change means a new working set is forming, and reclaim then deactivates.
    pub refaults: [u64; ANON_AND_FILE],
}

impl Lruvec {
    pub const fn new() -> Self {
        Lruvec {
            lists: [PageList::new(); NR_LRU_LISTS],
            anon_cost: 0,
            file_cost: 0,
            nonresident_age: 0,
            refaults: [0; ANON_AND_FILE],
        }
    }

    /// `lruvec_add_folio` with the caller's `folio_set_lru`: put a page that is on no list
    /// at the head of the list its flags select, and mark it PG_lru.
    pub fn add<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) {
        let page = pages.page_mut(pfn);
        debug_assert!(!page.test(PG_LRU), "pfn {pfn:#x} already on an LRU list");
        page.set(PG_LRU);
        let lru = page_lru(page);
        self.lists[lru.index()].push_front(pages, pfn);
    }

    /// `lruvec_add_folio_tail`.
    fn add_tail<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) {
        let page = pages.page_mut(pfn);
        page.set(PG_LRU);
        let lru = page_lru(page);
        self.lists[lru.index()].push_back(pages, pfn);
    }

    /// `lruvec_del_folio` with `folio_clear_lru`: take a page off its list. Returns the list.
    pub fn del<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) -> LruList {
        let page = pages.page_mut(pfn);
        debug_assert!(page.test(PG_LRU), "pfn {pfn:#x} not on an LRU list");
        page.clear(PG_LRU);
        let lru = page_lru(page);
        self.lists[lru.index()].remove(pages, pfn);
        lru
    }

    /// Move a page on an LRU list to the head of `to`, setting PG_active and PG_unevictable
    /// to match (activation, deactivation, `folio_putback_evictable`/mlock). A page cannot
    /// change between anon and file this way: that is its PG_swapbacked.
    pub fn move_to<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn, to: LruList) {
        self.del(pages, pfn);
        let page = pages.page_mut(pfn);
        debug_assert!(to == LruList::Unevictable || to.is_file() != page.test(PG_SWAPBACKED));
        if to == LruList::Unevictable {
            page.clear(PG_ACTIVE);
            page.set(PG_UNEVICTABLE);
        } else {
            page.clear(PG_UNEVICTABLE);
            if to.is_active() {
                page.set(PG_ACTIVE);
            } else {
                page.clear(PG_ACTIVE);
            }
        }
        self.add(pages, pfn);
    }

    /// `folio_activate_fn`: move an inactive evictable page to its active list. Returns
    /// whether it moved.
    pub fn activate<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) -> bool {
        let page = pages.page(pfn);
        if !page.test(PG_LRU) || page.test(PG_ACTIVE) || page.test(PG_UNEVICTABLE) {
            return false;
        }
        let file = page_lru(page).is_file();
        self.move_to(pages, pfn, LruList::active(file));
        true
    }

    /// `lru_deactivate_fn`: move an active page to the head of its inactive list, clearing
    /// PG_referenced too, so it has to earn its way back. Returns whether it moved.
    pub fn deactivate<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) -> bool {
        let page = pages.page(pfn);
        if !page.test(PG_LRU) || !page.test(PG_ACTIVE) {
            return false;
        }
        let file = page_lru(page).is_file();
        pages.page_mut(pfn).clear(PG_REFERENCED);
        self.move_to(pages, pfn, LruList::inactive(file));
        true
    }

    /// `rotate_reclaimable_page` (`lru_move_tail_fn`): a page reclaim wrote back is moved
    /// to the tail of its inactive list, deactivated, so that the next scan frees it
    /// without another round. (Linux moves it to the tail, the end reclaim scans from.)
    /// Unevictable pages stay put. Returns whether it moved.
    pub fn rotate<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) -> bool {
        let page = pages.page(pfn);
        if !page.test(PG_LRU) || page.test(PG_UNEVICTABLE) {
            return false;
        }
        self.del(pages, pfn);
        pages.page_mut(pfn).clear(PG_ACTIVE);
        self.add_tail(pages, pfn);
        true
    }

    /// `isolate_lru_folios`: look at up to `nr_to_scan` pages from the tail of `list`. Pages
    /// `can_isolate` accepts are taken off the list, PG_lru cleared, and appended to `dst`;
    /// the others (busy, wrong zone, mapped when unmapping is not allowed) go back to the
    /// head, keeping PG_lru, so that the next scan does not meet them first.
    pub fn isolate_tail<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        list: LruList,
        nr_to_scan: u64,
        dst: &mut Vec<Pfn>,
        mut can_isolate: impl FnMut(Pfn, &Page) -> bool,
    ) -> IsolateStats {
        let mut stats = IsolateStats::default();
        let mut skipped = PageList::new();
        let src = &mut self.lists[list.index()];
        while stats.scanned < nr_to_scan {
            let Some(pfn) = src.pop_back(pages) else {
                break;
            };
            stats.scanned += 1;
            if can_isolate(pfn, pages.page(pfn)) {
                pages.page_mut(pfn).clear(PG_LRU);
                dst.push(pfn);
                stats.taken += 1;
            } else {
                skipped.push_front(pages, pfn);
                stats.skipped += 1;
            }
        }
        // The last page skipped ends up first, as Linux's list_move to the head leaves them.
        while let Some(pfn) = skipped.pop_back(pages) {
            src.push_front(pages, pfn);
        }
        stats
    }

    /// `move_folios_to_lru`/`folio_putback_lru` for one page: back on the list its flags
    /// now select (reclaim may have set PG_active), at the head.
    pub fn putback<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) {
        self.add(pages, pfn);
    }

    /// Pages on `list` (`lruvec_lru_size`).
    pub fn size(&self, list: LruList) -> u64 {
        self.lists[list.index()].len() as u64
    }

    /// Pages on every list, by list index.
    pub fn sizes(&self) -> [u64; NR_LRU_LISTS] {
        LruList::ALL.map(|l| self.size(l))
    }

    /// Pages on all five lists.
    pub fn lru_pages_total(&self) -> u64 {
        LruList::ALL.iter().map(|&l| self.size(l)).sum()
    }

    /// Pages on the evictable lists.
    pub fn evictable_pages(&self) -> u64 {
        LruList::EVICTABLE.iter().map(|&l| self.size(l)).sum()
    }

    /// The pages of `list`, head (most recent) to tail.
    pub fn iter<'a, P: Pages + ?Sized>(
        &self,
        pages: &'a P,
        list: LruList,
    ) -> impl Iterator<Item = Pfn> + 'a {
        self.lists[list.index()].iter(pages)
    }

    /// Whether `list`'s inactive half is too small against its active half (see
    /// [`inactive_is_low`]); `list` selects anon or file.
    pub fn inactive_is_low(&self, list: LruList) -> bool {
        let file = list.is_file();
        inactive_is_low(
            self.size(LruList::inactive(file)),
            self.size(LruList::active(file)),
        )
    }

    /// `lru_note_cost` (one level; the caller repeats it for each ancestor memcg): record
    /// `nr_pages` of reclaim I/O (pages written out) or refaults against anon or file, and
    /// halve both costs once they exceed a quarter of the LRU, so they track recent
    /// behaviour as a decaying average and cannot overflow.
    pub fn note_cost(&mut self, file: bool, nr_pages: u64) {
        /// The costs decay once they exceed 1 / this of the LRU size.
        const COST_DECAY_FRACTION: u64 = 4;
        if file {
            self.file_cost += nr_pages;
        } else {
            self.anon_cost += nr_pages;
        }
        if self.file_cost + self.anon_cost > self.evictable_pages() / COST_DECAY_FRACTION {
            self.file_cost /= 2;
            self.anon_cost /= 2;
        }
    }
}

/// `inactive_is_low`: whether reclaim should refill an inactive list from its active list.
/// The inactive list may shrink to `1 / inactive_ratio` of the active one, where
/// `inactive_ratio = int_sqrt(10 * GiB of both lists)` (or 1 under 1 GiB): for 1 GiB 3:1,
/// for 10 GiB 10:1, 100 GiB 31:1, so big machines keep more of their working set active.
pub fn inactive_is_low(inactive: u64, active: u64) -> bool {
    /// Pages in a GiB, as a shift.
    const GIB_SHIFT: u32 = 30 - PAGE_SHIFT;
    /// The scale factor of the ratio's square root.
    const RATIO_SCALE: u64 = 10;
    let gb = (inactive + active) >> GIB_SHIFT;
    let inactive_ratio = if gb != 0 {
        int_sqrt(RATIO_SCALE * gb)
    } else {
        1
    };
    inactive * inactive_ratio < active
}

/// A small batch of pages for per-CPU LRU operations (`struct pagevec`): pages are added
/// to the LRU (or activated, rotated) a batch at a time to take the LRU lock once per batch.
#[derive(Clone, Copy, Debug)]
pub struct Pagevec {
    nr: usize,
    pfns: [Pfn; PAGEVEC_SIZE],
}

impl Default for Pagevec {
    fn default() -> Self {
        Self::new()
    }
}

impl Pagevec {
    pub const fn new() -> Self {
        Pagevec {
            nr: 0,
            pfns: [Pfn(0); PAGEVEC_SIZE],
        }
    }

    /// `pagevec_add`: append `pfn`. Returns whether there is room left; `false` means the
    /// batch is now full and must be drained before the next add.
    pub fn add(&mut self, pfn: Pfn) -> bool {
        assert!(self.nr < PAGEVEC_SIZE, "pagevec overflow");
        self.pfns[self.nr] = pfn;
        self.nr += 1;
        self.nr < PAGEVEC_SIZE
    }

    pub fn len(&self) -> usize {
        self.nr
    }

    pub fn is_empty(&self) -> bool {
        self.nr == 0
    }

    /// The pages batched so far.
    pub fn as_slice(&self) -> &[Pfn] {
        &self.pfns[..self.nr]
    }

    /// Empty the batch, yielding its pages in the order they were added.
    pub fn drain(&mut self) -> impl Iterator<Item = Pfn> {
        let (n, pfns) = (self.nr, self.pfns);
        self.nr = 0;
        pfns.into_iter().take(n)
    }
}

/// What [`mark_page_accessed`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkAccessed {
    /// First access: PG_referenced is now set.
    Referenced,
    /// Second access of an inactive page: promote it. PG_referenced has been cleared; a page
    /// on an LRU list must be moved by the caller ([`Lruvec::activate`], and
    /// `workingset_activation`); a page not on a list yet (still in an add batch) has had
    /// PG_active set, so it goes straight to the active list when the batch drains.
    Activate,
    /// Nothing to do (already active and referenced, or unevictable).
    None,
}

/// `folio_mark_accessed`: the two-step promotion on a page-cache or anon access done by the
/// kernel (read(), write(), swap-in): inactive,unreferenced → inactive,referenced →
/// active,unreferenced → active,referenced.
pub fn mark_page_accessed(page: &mut Page) -> MarkAccessed {
    if !page.test(PG_REFERENCED) {
        page.set(PG_REFERENCED);
        MarkAccessed::Referenced
    } else if page.test(PG_UNEVICTABLE) || page.test(PG_ACTIVE) {
        // The unevictable list is never scanned, so there is nothing to promote to.
        MarkAccessed::None
    } else {
        if !page.test(PG_LRU) {
            page.set(PG_ACTIVE);
        }
        page.clear(PG_REFERENCED);
        MarkAccessed::Activate
    }
}

/// What reclaim does with an inactive page it isolated (`enum folio_references`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageReferences {
    /// Used repeatedly: move to the active list.
    Activate,
    /// Used once since it was last looked at: give it another trip round the inactive list.
    Keep,
    /// Unused: reclaim it.
    Reclaim,
    /// Unused in page tables but accessed through the page cache: reclaim it if it is clean,
    /// but do not start writeback for it.
    ReclaimClean,
}

/// `folio_check_references` (Linux 6.1): `referenced_ptes` is how many page-table entries
/// had their accessed bit set (the caller clears them, `folio_referenced`); PG_referenced is
/// tested and cleared here. Every mapped page starts with one PTE reference from the fault
/// that mapped it, so one reference only earns another round (and PG_referenced); a second
/// one, in two PTEs or across two rounds, activates. Executable file pages activate on their
/// first use, to keep program text resident under streaming I/O. (Since Linux 5.9 anonymous
/// pages no longer activate on a single reference.) `swapbacked` false means a page of the
/// file LRU. VM_LOCKED pages are the caller's: they go to the unevictable list.
pub fn page_check_references(
    referenced_ptes: u32,
    page: &mut Page,
    vm_exec: bool,
    swapbacked: bool,
) -> PageReferences {
    let referenced_page = page.test(PG_REFERENCED);
    page.clear(PG_REFERENCED);
    let file_lru = !swapbacked;
    if referenced_ptes > 0 {
        // Set also when activating, so a page deactivated soon after is quickly recovered.
        page.set(PG_REFERENCED);
        if referenced_page || referenced_ptes > 1 || (vm_exec && file_lru) {
            PageReferences::Activate
        } else {
            PageReferences::Keep
        }
    } else if referenced_page && file_lru {
        PageReferences::ReclaimClean
    } else {
        PageReferences::Reclaim
    }
}

// ---------------------------------------------------------------------------------------
// Scan balance
// ---------------------------------------------------------------------------------------

/// Inputs of [`get_scan_count`] (the fields of `scan_control` and the lruvec it reads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanInput {
    /// Pages on each LRU list, by [`LruList::index`] ([`Lruvec::sizes`]).
    pub sizes: [u64; NR_LRU_LISTS],
    /// `vm.swappiness` or the memcg's `memory.swappiness`, 0..=[`MAX_SWAPPINESS`]: the
    /// relative I/O cost of swapping anon (high = cheap) against refetching file pages.
    pub swappiness: u32,
    /// Reclaim priority, [`DEF_PRIORITY`] down to 0.
    pub priority: u32,
    /// There is swap space left (for the memcg too) and the caller allows swapping
    /// (`sc->may_swap && can_reclaim_anon_pages`).
    pub may_swap: bool,
    /// Reclaim on behalf of a memcg limit rather than the whole node (`cgroup_reclaim`).
    pub cgroup_reclaim: bool,
    /// The target lruvec's `anon_cost` ([`Lruvec::anon_cost`]).
    pub anon_cost: u64,
    /// The target lruvec's `file_cost`.
    pub file_cost: u64,
    /// The node is almost out of file pages ([`file_is_tiny`]): force anon.
    pub file_is_tiny: bool,
    /// Reclaim is deactivating regardless of list balance (`force_deactivate`). It does not
    /// change the scan counts; it is here so callers can pass one struct through.
    pub force_deactivate: bool,
    /// Plenty of inactive file pages that are not thrashing ([`cache_trim_mode`]): file only.
    pub cache_trim_mode: bool,
}

/// How [`get_scan_count`] splits the pressure (`enum scan_balance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanBalance {
    /// Both types in proportion to their size.
    Equal,
    /// Both types, weighted by swappiness and reclaim cost.
    Fract,
    /// Anon only.
    Anon,
    /// File only.
    File,
}

/// The balance `get_scan_count` picks, in its order of tests.
pub fn scan_balance(input: &ScanInput) -> ScanBalance {
    if !input.may_swap {
        // No swap: anon cannot be reclaimed at all.
        ScanBalance::File
    } else if input.cgroup_reclaim && input.swappiness == 0 {
        // Global reclaim swaps even at swappiness 0 to avoid OOM; a memcg at 0 never does.
        ScanBalance::File
    } else if input.priority == 0 && input.swappiness != 0 {
        // Close to OOM: no cleverness, scan everything.
        ScanBalance::Equal
    } else if input.file_is_tiny {
        ScanBalance::Anon
    } else if input.cache_trim_mode {
        ScanBalance::File
    } else {
        ScanBalance::Fract
    }
}

/// `get_scan_count`: how many pages of each evictable list this reclaim pass scans (the
/// unevictable entry is 0).
///
/// Each list contributes `size >> priority`. Under [`ScanBalance::Fract`] that is then
/// scaled by the type's share of the pressure, which is inversely proportional to its recent
/// reclaim cost and proportional to its swappiness weight:
///
/// ```text
/// total = anon_cost + file_cost
/// a = total + anon_cost,  f = total + file_cost      (each at least a third of the cost)
/// ap = swappiness         * (a + f + 1) / (a + 1)
/// fp = (200 - swappiness) * (a + f + 1) / (f + 1)
/// scan_anon = scan * ap / (ap + fp),  scan_file = scan * fp / (ap + fp)
/// ```
///
/// So at swappiness 100 with equal costs both are scanned alike; at 0 anon is not scanned.
pub fn get_scan_count(input: &ScanInput) -> [u64; NR_LRU_LISTS] {
    let balance = scan_balance(input);
    let mut fraction = [0u64; ANON_AND_FILE];
    let mut denominator = 1u64;
    if balance == ScanBalance::Fract {
        let swappiness = input.swappiness.min(MAX_SWAPPINESS) as u64;
        let total = input.anon_cost + input.file_cost;
        let anon_cost = total + input.anon_cost;
        let file_cost = total + input.file_cost;
        let total = anon_cost + file_cost;
        let ap = swappiness * (total + 1) / (anon_cost + 1);
        let fp = (MAX_SWAPPINESS as u64 - swappiness) * (total + 1) / (file_cost + 1);
        fraction = [ap, fp];
        denominator = ap + fp;
    }
    let mut nr = [0u64; NR_LRU_LISTS];
    for lru in LruList::EVICTABLE {
        let file = lru.is_file();
        let scan = input.sizes[lru.index()] >> input.priority.min(u64::BITS - 1);
        nr[lru.index()] = match balance {
            ScanBalance::Equal => scan,
            ScanBalance::Fract => {
                ((scan as u128 * fraction[file as usize] as u128)
                    .checked_div(denominator as u128)
                    .unwrap_or(0)) as u64
            }
            ScanBalance::File | ScanBalance::Anon => {
                if (balance == ScanBalance::File) == file {
                    scan
                } else {
                    0
                }
            }
        };
    }
    nr
}

/// `prepare_scan_count`'s deactivation decision for one type: deactivate (age the active
/// list) when refaults show a new working set forming (`activations` differs from what the
/// lruvec saw last, [`Lruvec::refaults`]) or when the inactive list is low.
pub fn may_deactivate(activations: u64, seen_refaults: u64, inactive: u64, active: u64) -> bool {
    activations != seen_refaults || inactive_is_low(inactive, active)
}

/// `prepare_scan_count`'s `cache_trim_mode`: the inactive file list is big enough to be
/// scanned at this priority and file pages are not being deactivated (not thrashing), so
/// reclaim trims the page cache alone.
pub fn cache_trim_mode(inactive_file: u64, priority: u32, may_deactivate_file: bool) -> bool {
    inactive_file >> priority.min(u64::BITS - 1) != 0 && !may_deactivate_file
}

/// `prepare_scan_count`'s `file_is_tiny` (global reclaim only): file pages plus free pages
/// no longer reach the node's high watermarks, so reclaiming file alone would thrash; scan
/// anon, unless anon is tiny too or being deactivated (then it is plain high pressure).
pub fn file_is_tiny(
    file: u64,
    free: u64,
    total_high_wmark: u64,
    may_deactivate_anon: bool,
    inactive_anon: u64,
    priority: u32,
) -> bool {
    file + free <= total_high_wmark
        && !may_deactivate_anon
        && inactive_anon >> priority.min(u64::BITS - 1) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::MemMap;
    use alloc::vec;
    use proptest::prelude::*;

    fn map(n: usize) -> Vec<Page> {
        vec![Page::new_reserved(); n]
    }

    fn user_page(p: &mut Page, anon: bool) {
        p.flags = if anon { PG_SWAPBACKED | PG_ANON } else { 0 };
        p.refcount = 1;
    }

    fn list(v: &Lruvec, mm: &MemMap, l: LruList) -> Vec<u64> {
        v.iter(mm, l).map(|p| p.0).collect()
    }

    #[test]
    fn page_lru_from_flags() {
        let mut p = Page::new_reserved();
        user_page(&mut p, true);
        assert_eq!(page_lru(&p), LruList::InactiveAnon);
        p.set(PG_ACTIVE);
        assert_eq!(page_lru(&p), LruList::ActiveAnon);
        user_page(&mut p, false);
        assert_eq!(page_lru(&p), LruList::InactiveFile);
        p.set(PG_ACTIVE);
        assert_eq!(page_lru(&p), LruList::ActiveFile);
        p.clear(PG_ACTIVE);
        p.set(PG_UNEVICTABLE);
        assert_eq!(page_lru(&p), LruList::Unevictable);
        assert!(LruList::ActiveFile.is_file() && LruList::ActiveFile.is_active());
        assert!(!LruList::InactiveAnon.is_file() && !LruList::Unevictable.is_active());
    }

    #[test]
    fn add_move_rotate_isolate() {
        let mut v = map(16);
        let mut mm = MemMap::new(&mut v, Pfn(0));
        let mut lru = Lruvec::new();
        for i in 0..6 {
            user_page(mm.page_mut(Pfn(i)), i < 3);
            lru.add(&mut mm, Pfn(i));
            assert!(mm.page(Pfn(i)).test(PG_LRU));
        }
        assert_eq!(list(&lru, &mm, LruList::InactiveAnon), [2, 1, 0]);
        assert_eq!(list(&lru, &mm, LruList::InactiveFile), [5, 4, 3]);
        assert!(lru.activate(&mut mm, Pfn(1)));
        assert!(!lru.activate(&mut mm, Pfn(1)));
        assert_eq!(list(&lru, &mm, LruList::ActiveAnon), [1]);
        assert!(mm.page(Pfn(1)).test(PG_ACTIVE));
        lru.move_to(&mut mm, Pfn(4), LruList::Unevictable);
        assert!(mm.page(Pfn(4)).test(PG_UNEVICTABLE));
        assert_eq!(lru.size(LruList::Unevictable), 1);
        assert!(!lru.rotate(&mut mm, Pfn(4)));
        lru.move_to(&mut mm, Pfn(4), LruList::ActiveFile);
        assert!(!mm.page(Pfn(4)).test(PG_UNEVICTABLE) && mm.page(Pfn(4)).test(PG_ACTIVE));
        // Rotation deactivates and goes to the tail.
        assert!(lru.rotate(&mut mm, Pfn(4)));
        assert_eq!(list(&lru, &mm, LruList::InactiveFile), [5, 3, 4]);
        assert!(lru.deactivate(&mut mm, Pfn(1)));
        assert_eq!(list(&lru, &mm, LruList::InactiveAnon), [1, 2, 0]);

        // Isolate from the tail; refuse pfn 3.
        let mut dst = Vec::new();
        let st = lru.isolate_tail(&mut mm, LruList::InactiveFile, 10, &mut dst, |p, _| {
            p != Pfn(3)
        });
        assert_eq!(
            st,
            IsolateStats {
                scanned: 3,
                taken: 2,
                skipped: 1
            }
        );
        assert_eq!(dst, [Pfn(4), Pfn(5)]);
        assert!(!mm.page(Pfn(4)).test(PG_LRU));
        assert_eq!(list(&lru, &mm, LruList::InactiveFile), [3]);
        assert_eq!(lru.lru_pages_total(), 4);
        mm.page_mut(Pfn(5)).set(PG_ACTIVE);
        lru.putback(&mut mm, Pfn(5));
        lru.putback(&mut mm, Pfn(4));
        assert_eq!(list(&lru, &mm, LruList::ActiveFile), [5]);
        assert_eq!(list(&lru, &mm, LruList::InactiveFile), [4, 3]);
        assert_eq!(lru.del(&mut mm, Pfn(3)), LruList::InactiveFile);
        assert_eq!(lru.sizes(), [3, 0, 1, 1, 0]);
    }

    #[test]
    fn isolate_respects_nr_to_scan_and_skip_order() {
        let mut v = map(8);
        let mut mm = MemMap::new(&mut v, Pfn(0));
        let mut lru = Lruvec::new();
        for i in 0..8 {
            user_page(mm.page_mut(Pfn(i)), false);
            lru.add(&mut mm, Pfn(i));
        }
        // List head..tail: 7 6 5 4 3 2 1 0. Scan 4 from the tail, skip the even ones.
        let mut dst = Vec::new();
        let st = lru.isolate_tail(&mut mm, LruList::InactiveFile, 4, &mut dst, |p, _| {
            p.0 % 2 == 1
        });
        assert_eq!((st.scanned, st.taken, st.skipped), (4, 2, 2));
        assert_eq!(dst, [Pfn(1), Pfn(3)]);
        assert_eq!(list(&lru, &mm, LruList::InactiveFile), [2, 0, 7, 6, 5, 4]);
    }

    #[test]
    fn inactive_ratio() {
        const GIB: u64 = 1 << 18;
        assert!(!inactive_is_low(100, 100));
        assert!(inactive_is_low(99, 100));
        // 1 GiB total: ratio int_sqrt(10) = 3.
        assert!(!inactive_is_low(GIB / 4, 3 * GIB / 4));
        assert!(inactive_is_low(GIB / 4 - 1, 3 * GIB / 4 + 1));
        // 10 GiB: ratio 10.
        assert!(!inactive_is_low(GIB, 9 * GIB));
        assert!(inactive_is_low(
            GIB * 9 / 10 - 10,
            10 * GIB - (GIB * 9 / 10 - 10)
        ));
    }

    #[test]
    fn pagevec_batches() {
        let mut pv = Pagevec::new();
        for i in 0..PAGEVEC_SIZE as u64 - 1 {
            assert!(pv.add(Pfn(i)));
        }
        assert!(!pv.add(Pfn(99)));
        assert_eq!(pv.len(), PAGEVEC_SIZE);
        let d: Vec<_> = pv.drain().collect();
        assert_eq!(d.len(), PAGEVEC_SIZE);
        assert_eq!(d[PAGEVEC_SIZE - 1], Pfn(99));
        assert!(pv.is_empty());
    }

    #[test]
    fn two_step_promotion() {
        let mut p = Page::new_reserved();
        user_page(&mut p, false);
        p.set(PG_LRU);
        assert_eq!(mark_page_accessed(&mut p), MarkAccessed::Referenced);
        assert!(p.test(PG_REFERENCED));
        assert_eq!(mark_page_accessed(&mut p), MarkAccessed::Activate);
        assert!(
            !p.test(PG_REFERENCED) && !p.test(PG_ACTIVE),
            "caller moves it"
        );
        p.set(PG_ACTIVE);
        assert_eq!(mark_page_accessed(&mut p), MarkAccessed::Referenced);
        assert_eq!(mark_page_accessed(&mut p), MarkAccessed::None);
        // Not yet on a list: activated in place.
        let mut q = Page::new_reserved();
        user_page(&mut q, true);
        mark_page_accessed(&mut q);
        assert_eq!(mark_page_accessed(&mut q), MarkAccessed::Activate);
        assert!(q.test(PG_ACTIVE));
    }

    #[test]
    fn check_references() {
        use PageReferences::*;
        let mut p = Page::new_reserved();
        user_page(&mut p, true);
        // Anon, one PTE reference: another round, marked.
        assert_eq!(page_check_references(1, &mut p, false, true), Keep);
        assert!(p.test(PG_REFERENCED));
        // Referenced again: activate.
        assert_eq!(page_check_references(1, &mut p, false, true), Activate);
        p.clear(PG_REFERENCED);
        assert_eq!(page_check_references(2, &mut p, false, true), Activate);
        p.clear(PG_REFERENCED);
        assert_eq!(page_check_references(0, &mut p, false, true), Reclaim);
        // Anon exec mapping: no shortcut.
        assert_eq!(page_check_references(1, &mut p, true, true), Keep);
        // File exec: activated on first use.
        let mut f = Page::new_reserved();
        user_page(&mut f, false);
        assert_eq!(page_check_references(1, &mut f, true, false), Activate);
        f.clear(PG_REFERENCED);
        assert_eq!(page_check_references(1, &mut f, false, false), Keep);
        // Only PG_referenced (read() access): reclaim if clean.
        assert_eq!(page_check_references(0, &mut f, false, false), ReclaimClean);
        assert!(!f.test(PG_REFERENCED));
        assert_eq!(page_check_references(0, &mut f, false, false), Reclaim);
    }

    fn input(anon: u64, file: u64) -> ScanInput {
        ScanInput {
            sizes: [anon / 2, anon / 2, file / 2, file / 2, 77],
            swappiness: DEFAULT_SWAPPINESS,
            priority: DEF_PRIORITY,
            may_swap: true,
            ..Default::default()
        }
    }

    #[test]
    fn scan_count_policies() {
        let base = input(1 << 20, 1 << 20);
        let nr = get_scan_count(&base);
        assert_eq!(nr[LruList::Unevictable.index()], 0);
        // 60 vs 140 with equal (zero) costs.
        assert_eq!(nr[0], (1 << 19 >> 12) * 60 / 200);
        assert_eq!(nr[2], (1 << 19 >> 12) * 140 / 200);
        // Swappiness 0: no anon while file has enough.
        let nr = get_scan_count(&ScanInput {
            swappiness: 0,
            ..base
        });
        assert_eq!((nr[0], nr[1]), (0, 0));
        assert!(nr[2] > 0 && nr[3] > 0);
        // Swappiness 200: all anon.
        let nr = get_scan_count(&ScanInput {
            swappiness: 200,
            ..base
        });
        assert!(nr[0] > 0 && nr[2] == 0);
        // Priority 0: everything.
        let nr = get_scan_count(&ScanInput {
            priority: 0,
            ..base
        });
        assert_eq!(nr, [1 << 19, 1 << 19, 1 << 19, 1 << 19, 0]);
        // No swap: no anon, whatever the priority.
        let nr = get_scan_count(&ScanInput {
            priority: 0,
            may_swap: false,
            ..base
        });
        assert_eq!(nr, [0, 0, 1 << 19, 1 << 19, 0]);
        // Costs: expensive anon reclaim shifts pressure to file.
        let cheap_file = get_scan_count(&ScanInput {
            anon_cost: 1000,
            file_cost: 0,
            swappiness: 100,
            ..base
        });
        // At most 2:1 from costs alone: each type keeps at least a third of the pressure.
        assert_eq!((cheap_file[0], cheap_file[2]), (42, 85));
        assert_eq!(
            scan_balance(&ScanInput {
                file_is_tiny: true,
                ..base
            }),
            ScanBalance::Anon
        );
        assert_eq!(
            scan_balance(&ScanInput {
                cache_trim_mode: true,
                ..base
            }),
            ScanBalance::File
        );
        assert_eq!(
            scan_balance(&ScanInput {
                cgroup_reclaim: true,
                swappiness: 0,
                ..base
            }),
            ScanBalance::File
        );
        assert!(cache_trim_mode(1 << 12, DEF_PRIORITY, false));
        assert!(!cache_trim_mode((1 << 12) - 1, DEF_PRIORITY, false));
        assert!(file_is_tiny(10, 10, 100, false, 1 << 12, DEF_PRIORITY));
        assert!(may_deactivate(5, 4, 100, 100));
    }

    #[test]
    fn cost_decays() {
        let mut v = map(8);
        let mut mm = MemMap::new(&mut v, Pfn(0));
        let mut lru = Lruvec::new();
        for i in 0..8 {
            user_page(mm.page_mut(Pfn(i)), false);
            lru.add(&mut mm, Pfn(i));
        }
        lru.note_cost(true, 2);
        assert_eq!(lru.file_cost, 2);
        lru.note_cost(false, 1);
        assert_eq!((lru.anon_cost, lru.file_cost), (0, 1));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u8, bool, bool),
        Del(u8),
        Move(u8, u8),
        Rotate(u8),
        Activate(u8),
        Isolate(u8, u8, u64),
        Putback,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), any::<bool>(), any::<bool>()).prop_map(|(a, b, c)| Op::Add(a, b, c)),
            any::<u8>().prop_map(Op::Del),
            (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Move(a, b)),
            any::<u8>().prop_map(Op::Rotate),
            any::<u8>().prop_map(Op::Activate),
            (any::<u8>(), any::<u8>(), any::<u64>()).prop_map(|(a, b, c)| Op::Isolate(a, b, c)),
            Just(Op::Putback),
        ]
    }

    const N: usize = 64;

    proptest! {
        /// Random LRU operations against a model of each list's order: lengths, order, flags
        /// and membership stay consistent.
        #[test]
        fn lru_matches_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut v = map(N);
            let mut mm = MemMap::new(&mut v, Pfn(0));
            let mut lru = Lruvec::new();
            let mut model: Vec<Vec<u64>> = vec![Vec::new(); NR_LRU_LISTS]; // head first
            let mut isolated: Vec<Pfn> = Vec::new();
            let find = |model: &Vec<Vec<u64>>, p: u64| {
                model.iter().position(|l| l.contains(&p))
            };
            for o in ops {
                match o {
                    Op::Add(p, anon, active) => {
                        let p = p as u64 % N as u64;
                        if find(&model, p).is_none() && !isolated.contains(&Pfn(p)) {
                            user_page(mm.page_mut(Pfn(p)), anon);
                            if active { mm.page_mut(Pfn(p)).set(PG_ACTIVE); }
                            lru.add(&mut mm, Pfn(p));
                            let l = LruList::active(!anon);
                            let l = if active { l } else { LruList::inactive(!anon) };
                            model[l.index()].insert(0, p);
                        }
                    }
                    Op::Del(p) => {
                        let p = p as u64 % N as u64;
                        if let Some(l) = find(&model, p) {
                            prop_assert_eq!(lru.del(&mut mm, Pfn(p)).index(), l);
                            model[l].retain(|&x| x != p);
                        }
                    }
                    Op::Move(p, to) => {
                        let p = p as u64 % N as u64;
                        if let Some(l) = find(&model, p) {
                            let file = !mm.page(Pfn(p)).test(PG_SWAPBACKED);
                            let to = match to % 3 {
                                0 => LruList::inactive(file),
                                1 => LruList::active(file),
                                _ => LruList::Unevictable,
                            };
                            lru.move_to(&mut mm, Pfn(p), to);
                            model[l].retain(|&x| x != p);
                            model[to.index()].insert(0, p);
                        }
                    }
                    Op::Rotate(p) => {
                        let p = p as u64 % N as u64;
                        if let Some(l) = find(&model, p) {
                            let moved = lru.rotate(&mut mm, Pfn(p));
                            prop_assert_eq!(moved, l != LruList::Unevictable.index());
                            if moved {
                                let file = LruList::ALL[l].is_file();
                                model[l].retain(|&x| x != p);
                                model[LruList::inactive(file).index()].push(p);
                            }
                        }
                    }
                    Op::Activate(p) => {
                        let p = p as u64 % N as u64;
                        if let Some(l) = find(&model, p) {
                            let list = LruList::ALL[l];
                            let moved = lru.activate(&mut mm, Pfn(p));
                            prop_assert_eq!(moved, list != LruList::Unevictable && !list.is_active());
                            if moved {
                                model[l].retain(|&x| x != p);
                                model[LruList::active(list.is_file()).index()].insert(0, p);
                            }
                        }
                    }
                    Op::Isolate(l, n, mask) => {
                        let l = LruList::ALL[l as usize % NR_LRU_LISTS];
                        let n = n as u64 % 20;
                        let before = isolated.len();
                        let st = lru.isolate_tail(&mut mm, l, n, &mut isolated, |p, _| mask >> (p.0 % 64) & 1 == 1);
                        let m = &mut model[l.index()];
                        let mut skipped = Vec::new();
                        for _ in 0..n.min(m.len() as u64) {
                            let p = m.pop().unwrap();
                            if mask >> (p % 64) & 1 == 0 { skipped.push(p); }
                        }
                        for p in skipped { m.insert(0, p); }
                        prop_assert_eq!(st.taken as usize, isolated.len() - before);
                        prop_assert_eq!(st.scanned, st.taken + st.skipped);
                    }
                    Op::Putback => {
                        if let Some(p) = isolated.pop() {
                            let l = page_lru(mm.page(p));
                            lru.putback(&mut mm, p);
                            model[l.index()].insert(0, p.0);
                        }
                    }
                }
                for l in LruList::ALL {
                    let got: Vec<u64> = lru.iter(&mm, l).map(|p| p.0).collect();
                    prop_assert_eq!(&got, &model[l.index()]);
                    prop_assert_eq!(lru.size(l), got.len() as u64);
                    for p in got {
                        let pg = mm.page(Pfn(p));
                        prop_assert!(pg.test(PG_LRU));
                        prop_assert_eq!(page_lru(pg), l);
                    }
                }
                for p in &isolated {
                    prop_assert!(!mm.page(*p).test(PG_LRU));
                    prop_assert!(find(&model, p.0).is_none());
                }
                prop_assert_eq!(lru.lru_pages_total(), model.iter().map(|l| l.len() as u64).sum::<u64>());
            }
        }
    }
}
