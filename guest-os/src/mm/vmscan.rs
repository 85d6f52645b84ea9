//! Page frame reclaim (`mm/vmscan.c`), the classic two-list LRU (not MGLRU):
//!
//! - every anonymous page and page cache page is on one of the node's LRU lists
//!   (inactive/active × anon/file, [`mm_core::lru::Lruvec`], kept with the allocator so
//!   that a freed page leaves its list under the same lock); new pages arrive through a
//!   per-CPU batch ([`lru_cache_add`], Linux's pagevec) at the head of the inactive list;
//! - aging: [`shrink_active_list`] moves pages whose PTEs were not referenced (accessed
//!   bits found through rmap, [`super::rmap::page_referenced`]) to the inactive list;
//!   [`shrink_inactive_list`] reclaims from the inactive tail what was not referenced
//!   since: clean file pages are dropped, dirty ones written back first, anonymous pages
//!   go to swap through the swap cache and [`super::rmap::try_to_unmap`];
//! - `vm.swappiness` weighs anon against file ([`mm_core::lru::get_scan_count`]), and the
//!   scan priority goes from [`DEF_PRIORITY`] (1/4096 of a list) down to 0 (all of it);
//! - kswapd (a kernel thread, started at the first wakeup) is woken when an allocation
//!   finds a zone below its low watermark and reclaims until every zone is above its high
//!   one; an allocation that finds none at the min watermark reclaims directly
//!   ([`try_to_free_pages`]) when its GFP flags and context allow (it may sleep, holds no
//!   spinlock, may do I/O for swap and writeback);
//! - slab shrinkers: the dentry cache (and the inodes it pins) is pruned in proportion.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mm_core::gfp::Gfp;
use mm_core::lru::{
    self, LruList, PageReferences, Pagevec, DEF_PRIORITY, NR_LRU_LISTS, SWAP_CLUSTER_MAX,
};
use mm_core::page::flags::{
    PG_ACTIVE, PG_ANON, PG_DIRTY, PG_LOCKED, PG_LRU, PG_REFERENCED, PG_SWAPBACKED, PG_SWAPCACHE,
    PG_WRITEBACK,
};
use mm_core::page::Pages;

use super::addr::Pfn;
use super::page_alloc;
use super::{rmap, swap_state, swapfile};
use crate::proc::{kthread, Task};
use crate::sync::IrqLock;
use mm_core::swap::SwpEntry;

/// `vm.swappiness` (0..=200; Linux's default 60).
pub static SWAPPINESS: AtomicU64 = AtomicU64::new(60);
/// The largest `vm.swappiness`.
pub const MAX_SWAPPINESS: u64 = 200;
/// No-progress passes of direct reclaim before the caller gives up (`MAX_RECLAIM_RETRIES`).
pub const MAX_RECLAIM_RETRIES: u32 = 16;

/// `/proc/vmstat` event counters of reclaim, by Linux's names.
pub mod stat {
    use core::sync::atomic::AtomicU64;
    pub static PGSCAN_KSWAPD: AtomicU64 = AtomicU64::new(0);
    pub static PGSCAN_DIRECT: AtomicU64 = AtomicU64::new(0);
    pub static PGSTEAL_KSWAPD: AtomicU64 = AtomicU64::new(0);
    pub static PGSTEAL_DIRECT: AtomicU64 = AtomicU64::new(0);
    pub static PGSCAN_ANON: AtomicU64 = AtomicU64::new(0);
    pub static PGSCAN_FILE: AtomicU64 = AtomicU64::new(0);
    pub static PGSTEAL_ANON: AtomicU64 = AtomicU64::new(0);
    pub static PGSTEAL_FILE: AtomicU64 = AtomicU64::new(0);
    pub static PGACTIVATE: AtomicU64 = AtomicU64::new(0);
    pub static PGDEACTIVATE: AtomicU64 = AtomicU64::new(0);
    pub static PGREFILL: AtomicU64 = AtomicU64::new(0);
    pub static PGROTATED: AtomicU64 = AtomicU64::new(0);
    pub static PAGEOUTRUN: AtomicU64 = AtomicU64::new(0);
    pub static ALLOCSTALL: AtomicU64 = AtomicU64::new(0);
    pub static SLABS_SCANNED: AtomicU64 = AtomicU64::new(0);
    pub static WORKINGSET_REFAULT_ANON: AtomicU64 = AtomicU64::new(0);
    pub static WORKINGSET_REFAULT_FILE: AtomicU64 = AtomicU64::new(0);
    pub static WORKINGSET_ACTIVATE_ANON: AtomicU64 = AtomicU64::new(0);
    pub static WORKINGSET_ACTIVATE_FILE: AtomicU64 = AtomicU64::new(0);
    pub static WORKINGSET_RESTORE_ANON: AtomicU64 = AtomicU64::new(0);
    pub static WORKINGSET_RESTORE_FILE: AtomicU64 = AtomicU64::new(0);
    pub static KSWAPD_WAKEUPS: AtomicU64 = AtomicU64::new(0);
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// What one reclaim pass may do and has done (`struct scan_control`).
pub struct ScanControl {
    pub nr_to_reclaim: u64,
    pub nr_reclaimed: u64,
    pub nr_scanned: u64,
    pub priority: u32,
    /// May write dirty pages (file writeback, swap-out): `__GFP_IO`.
    pub may_writepage: bool,
    /// May swap anonymous pages.
    pub may_swap: bool,
    /// kswapd (background) or a task in direct reclaim.
    pub kswapd: bool,
    /// Reclaim whatever the references say (`MADV_PAGEOUT`'s `reclaim_pages`).
    pub ignore_references: bool,
    /// Reclaim for a memory cgroup: only pages charged to these groups (the target and
    /// its descendants). The LRU lists are the node's, filtered (Linux keeps a lruvec
    /// per memcg and node).
    pub memcgs: Option<Vec<u16>>,
}

impl ScanControl {
    /// Whether page `p` is one this reclaim may take.
    fn wants(&self, p: &mm_core::page::Page) -> bool {
        self.memcgs
            .as_ref()
            .is_none_or(|g| g.contains(&(p.memcg_data as u16)))
    }
}

// ---- LRU lists --------------------------------------------------------------------------

/// Pages waiting to enter the LRU (`lru_add` pagevec): each holds a reference meanwhile.
static LRU_ADD: IrqLock<Pagevec> = IrqLock::new("lru_add_pvec", Pagevec::new());

/// Add a new anonymous or page cache page to the LRU (`folio_add_lru`), batched.
pub fn lru_cache_add(pfn: Pfn) {
    page_alloc::with(|a| a.get_page(pfn));
    let full = {
        let mut pv = LRU_ADD.lock();
        !pv.add(pfn)
    };
    if full {
        lru_add_drain();
    }
}

/// Move the batched pages onto the LRU lists (`lru_add_drain`).
pub fn lru_add_drain() {
    let pfns: Vec<Pfn> = {
        let mut pv = LRU_ADD.lock();
        let mut v = Vec::new();
        if v.try_reserve(lru::PAGEVEC_SIZE).is_err() {
            return;
        }
        v.extend(pv.drain());
        v
    };
    for pfn in pfns {
        page_alloc::with(|a| {
            // A page freed meanwhile by everyone else is only ours now: not worth a list.
            if a.page(pfn).refcount > 1 && !a.page(pfn).test(PG_LRU) {
                a.lru_add(pfn);
            }
        });
        page_alloc::free_pages(pfn, 0);
    }
}

/// A cache hit on `pfn` (`folio_mark_accessed`): an unreferenced page becomes referenced,
/// a referenced inactive one is activated.
pub fn mark_page_accessed(pfn: Pfn) {
    page_alloc::with(|a| {
        let decision = lru::mark_page_accessed(a.page_mut(pfn));
        if decision == lru::MarkAccessed::Activate && a.page(pfn).test(PG_LRU) {
            let to = LruList::active(lru::page_lru(a.page(pfn)).is_file());
            a.lru_move(pfn, to);
            inc(&stat::PGACTIVATE, 1);
        }
    });
}

/// Move these pages to the head of their inactive lists, unreferenced (`MADV_COLD`'s
/// `deactivate_page`); each comes with a reference of the caller's, dropped here.
pub fn deactivate_pages(pfns: Vec<Pfn>) {
    lru_add_drain();
    for pfn in pfns {
        page_alloc::with(|a| {
            if a.page(pfn).test(PG_LRU) {
                let to = LruList::inactive(lru::page_lru(a.page(pfn)).is_file());
                a.page_mut(pfn).clear(PG_REFERENCED);
                a.lru_move(pfn, to);
            }
        });
        inc(&stat::PGDEACTIVATE, 1);
        page_alloc::free_pages(pfn, 0);
    }
}

/// LRU sizes of node 0 (the only node), by list.
pub fn lru_sizes() -> [u64; NR_LRU_LISTS] {
    page_alloc::with(|a| {
        let l = a.lruvec(0);
        core::array::from_fn(|i| l.size(LruList::ALL[i]))
    })
}

// ---- shrinking -----------------------------------------------------------------------

/// What became of one isolated page.
enum Outcome {
    Reclaimed,
    Activate,
    Keep,
    /// Unmapped and in the swap cache under this entry, dirty: to be written with the
    /// other pages of the batch (`pageout`, batched into one request per run of
    /// consecutive slots), then dropped ([`finish_swapped`]).
    Write(SwpEntry),
}

/// Reclaim one isolated inactive page (the body of `shrink_folio_list`). The caller holds
/// a reference on it (the isolation's).
fn shrink_page(pfn: Pfn, sc: &ScanControl) -> Outcome {
    let flags = page_alloc::page_flags(pfn);
    if flags & (PG_LOCKED | PG_WRITEBACK) != 0 {
        return Outcome::Keep;
    }
    let swapbacked = flags & PG_SWAPBACKED != 0;
    // A page read from swap that nobody claimed yet (readahead) counts as anonymous.
    let unclaimed = flags & PG_SWAPCACHE != 0 && page_alloc::with(|a| a.page(pfn).mapping == 0);
    let anon = flags & PG_ANON != 0 || unclaimed;
    if !sc.ignore_references {
        let Some(referenced_ptes) = rmap::page_referenced(pfn) else {
            return Outcome::Keep;
        };
        // Linux activates referenced pages of executable file mappings at once; the
        // VMAs are not looked at here, so none counts as executable.
        let vm_exec = false;
        let decision = page_alloc::with(|a| {
            lru::page_check_references(referenced_ptes, a.page_mut(pfn), vm_exec, swapbacked)
        });
        match decision {
            PageReferences::Activate => return Outcome::Activate,
            PageReferences::Keep => return Outcome::Keep,
            PageReferences::Reclaim | PageReferences::ReclaimClean => {}
        }
    }
    if anon {
        shrink_anon_page(pfn, sc)
    } else if swapbacked {
        shrink_shmem_page(pfn, sc)
    } else {
        shrink_file_page(pfn, sc)
    }
}

/// A shmem page (tmpfs, shared anonymous memory) goes to swap too (`shmem_writepage`):
/// unmapped everywhere, its object's slot then names the swap entry.
fn shrink_shmem_page(pfn: Pfn, sc: &ScanControl) -> Outcome {
    let (id, index) = page_alloc::with(|a| (a.page(pfn).mapping as u64, a.page(pfn).index));
    if id == 0 || !sc.may_swap {
        return Outcome::Activate;
    }
    let entry = match swap_state::page_entry(pfn) {
        Some(e) => e,
        None => match swap_state::add_to_swap(pfn) {
            Some(e) => e,
            None => return Outcome::Activate,
        },
    };
    let mapped = page_alloc::with(|a| a.page(pfn).mapcount >= 0);
    if mapped && !rmap::try_to_unmap(pfn, None) {
        return Outcome::Keep;
    }
    if !super::shmem::swap_out_slot(id, index, pfn, entry) {
        return Outcome::Keep;
    }
    // Now a swap cache page like an anonymous one: written, then dropped.
    shrink_anon_page(pfn, sc)
}

/// An anonymous page goes to swap: a slot and a place in the swap cache, every PTE
/// rewritten to the swap entry, the page written out, then dropped from the cache.
fn shrink_anon_page(pfn: Pfn, sc: &ScanControl) -> Outcome {
    let entry = match swap_state::page_entry(pfn) {
        Some(e) => e,
        None => {
            if !sc.may_swap {
                return Outcome::Activate;
            }
            match swap_state::add_to_swap(pfn) {
                Some(e) => e,
                // Swap is full: keep it active, as Linux's `activate_locked`.
                None => return Outcome::Activate,
            }
        }
    };
    let mapped = page_alloc::with(|a| a.page(pfn).mapcount >= 0);
    if mapped && !rmap::try_to_unmap(pfn, Some(entry)) {
        return Outcome::Keep;
    }
    if page_alloc::page_flags(pfn) & PG_DIRTY != 0 {
        if !sc.may_writepage {
            return Outcome::Keep;
        }
        page_alloc::with(|a| {
            let p = a.page_mut(pfn);
            p.clear(PG_DIRTY);
            p.set(PG_WRITEBACK);
        });
        return Outcome::Write(entry);
    }
    finish_swapped(pfn)
}

/// A clean swap cache page, unmapped, that only the cache and reclaim hold: let it go,
/// leaving a shadow entry (`__remove_mapping`).
fn finish_swapped(pfn: Pfn) -> Outcome {
    let freeable = page_alloc::with(|a| {
        let p = a.page(pfn);
        p.mapcount < 0 && p.refcount == 2 && !p.test(PG_DIRTY)
    });
    if !freeable {
        return Outcome::Keep;
    }
    let shadow = workingset_eviction(pfn);
    swap_state::delete_from_swap_cache(pfn, Some(shadow));
    Outcome::Reclaimed
}

/// Write the batch's dirty swap cache pages (`swap_writepage` for each, one request per
/// run of consecutive slots) and settle each page.
fn write_batch(batch: &[(Pfn, SwpEntry)]) -> Vec<(Pfn, Outcome)> {
    let results = swapfile::swap_write_batch(batch);
    let mut out = Vec::new();
    let _ = out.try_reserve(batch.len());
    for (&(pfn, entry), ok) in batch.iter().zip(results) {
        page_alloc::with(|a| a.page_mut(pfn).clear(PG_WRITEBACK));
        let o = if ok {
            crate::trace::reclaim(trace_abi::reclaim::SWAP_OUT, pfn.as_u64(), entry.0, 0);
            finish_swapped(pfn)
        } else {
            page_alloc::with(|a| a.page_mut(pfn).set(PG_DIRTY));
            Outcome::Activate
        };
        out.push((pfn, o));
    }
    out
}

/// A page cache page is unmapped, written back if dirty, and dropped from its object with
/// a shadow entry in its place.
fn shrink_file_page(pfn: Pfn, sc: &ScanControl) -> Outcome {
    let (id, index) = page_alloc::with(|a| (a.page(pfn).mapping as u64, a.page(pfn).index));
    if id == 0 {
        return Outcome::Keep;
    }
    let mapped = page_alloc::with(|a| a.page(pfn).mapcount >= 0);
    if mapped && !rmap::try_to_unmap(pfn, None) {
        return Outcome::Keep;
    }
    if page_alloc::page_flags(pfn) & PG_DIRTY != 0 {
        // Writing a file page back enters the filesystem, whose locks this task may hold.
        if !sc.may_writepage || in_fs() || super::filemap::writeback_page(id, index, pfn).is_err() {
            return Outcome::Keep;
        }
    }
    let shadow = workingset_eviction(pfn);
    if super::shmem::remove_mapping(id, index, pfn, shadow) {
        crate::trace::reclaim(trace_abi::reclaim::EVICT, pfn.as_u64(), index, 0);
        Outcome::Reclaimed
    } else {
        Outcome::Keep
    }
}

/// Reclaim the isolated pages (`shrink_folio_list`): each is dropped, kept or activated,
/// and its isolation reference dropped; dirty swap cache pages are written in batches.
/// Returns the pages freed.
fn shrink_page_list(isolated: Vec<Pfn>, sc: &ScanControl) -> u64 {
    let mut reclaimed = 0;
    let mut to_write: Vec<(Pfn, SwpEntry)> = Vec::new();
    let _ = to_write.try_reserve(isolated.len());
    let settle = |pfn: Pfn, o: Outcome, reclaimed: &mut u64| {
        match o {
            Outcome::Reclaimed => *reclaimed += 1,
            Outcome::Activate => {
                page_alloc::with(|a| {
                    a.page_mut(pfn).set(PG_ACTIVE);
                    a.lru_putback(pfn);
                });
                inc(&stat::PGACTIVATE, 1);
            }
            Outcome::Keep | Outcome::Write(_) => page_alloc::with(|a| a.lru_putback(pfn)),
        }
        // The isolation's reference: for a reclaimed page, the last one.
        page_alloc::free_pages(pfn, 0);
    };
    for pfn in isolated {
        match shrink_page(pfn, sc) {
            Outcome::Write(entry) if to_write.len() < to_write.capacity() => {
                to_write.push((pfn, entry))
            }
            Outcome::Write(entry) => {
                for (p, o) in write_batch(&[(pfn, entry)]) {
                    settle(p, o, &mut reclaimed);
                }
            }
            o => settle(pfn, o, &mut reclaimed),
        }
    }
    for (pfn, o) in write_batch(&to_write) {
        settle(pfn, o, &mut reclaimed);
    }
    reclaimed
}

/// Reclaim these pages now whatever their references (`reclaim_pages`, for
/// `MADV_PAGEOUT`); each comes with a reference of the caller's, which this takes over.
/// Returns the pages freed.
pub fn reclaim_pages(pfns: Vec<Pfn>) -> u64 {
    lru_add_drain();
    let mut isolated = Vec::new();
    if isolated.try_reserve(pfns.len()).is_err() {
        for p in pfns {
            page_alloc::free_pages(p, 0);
        }
        return 0;
    }
    for pfn in pfns {
        if page_alloc::with(|a| a.lru_isolate_page(pfn)) {
            isolated.push(pfn);
        } else {
            page_alloc::free_pages(pfn, 0);
        }
    }
    let sc = ScanControl {
        nr_to_reclaim: isolated.len() as u64,
        nr_reclaimed: 0,
        nr_scanned: 0,
        priority: DEF_PRIORITY,
        may_writepage: true,
        may_swap: can_swap(),
        kswapd: false,
        ignore_references: true,
        memcgs: None,
    };
    let was = set_memalloc(true);
    let n = shrink_page_list(isolated, &sc);
    if !was {
        set_memalloc(false);
    }
    n
}

/// Reclaim up to `nr_to_scan` pages from the tail of inactive list `list`
/// (`shrink_inactive_list`); returns the pages freed.
fn shrink_inactive_list(list: LruList, nr_to_scan: u64, sc: &mut ScanControl) -> u64 {
    lru_add_drain();
    let mut isolated: Vec<Pfn> = Vec::new();
    if isolated.try_reserve(nr_to_scan as usize).is_err() {
        return 0;
    }
    let scanned =
        page_alloc::with(|a| a.lru_isolate(0, list, nr_to_scan, &mut isolated, &|p| sc.wants(p)));
    sc.nr_scanned += scanned;
    inc(
        if sc.kswapd {
            &stat::PGSCAN_KSWAPD
        } else {
            &stat::PGSCAN_DIRECT
        },
        scanned,
    );
    inc(
        if list.is_file() {
            &stat::PGSCAN_FILE
        } else {
            &stat::PGSCAN_ANON
        },
        scanned,
    );
    let reclaimed = shrink_page_list(isolated, sc);
    sc.nr_reclaimed += reclaimed;
    inc(
        if sc.kswapd {
            &stat::PGSTEAL_KSWAPD
        } else {
            &stat::PGSTEAL_DIRECT
        },
        reclaimed,
    );
    inc(
        if list.is_file() {
            &stat::PGSTEAL_FILE
        } else {
            &stat::PGSTEAL_ANON
        },
        reclaimed,
    );
    reclaimed
}

/// Age up to `nr_to_scan` pages from the tail of active list `list` (`shrink_active_list`):
/// referenced executable file pages stay active, the rest move to the inactive list.
fn shrink_active_list(list: LruList, nr_to_scan: u64, sc: &ScanControl) {
    lru_add_drain();
    let mut isolated: Vec<Pfn> = Vec::new();
    if isolated.try_reserve(nr_to_scan as usize).is_err() {
        return;
    }
    let scanned =
        page_alloc::with(|a| a.lru_isolate(0, list, nr_to_scan, &mut isolated, &|p| sc.wants(p)));
    inc(&stat::PGREFILL, scanned);
    let mut deactivated = 0;
    for pfn in isolated {
        // Reading the accessed bits also clears them: the page starts its inactive
        // period unreferenced.
        let _ = rmap::page_referenced(pfn);
        page_alloc::with(|a| {
            let p = a.page_mut(pfn);
            p.clear(PG_ACTIVE | PG_REFERENCED);
            a.lru_putback(pfn);
        });
        deactivated += 1;
        page_alloc::free_pages(pfn, 0);
    }
    inc(&stat::PGDEACTIVATE, deactivated);
}

/// Reclaim from node 0's LRU lists (`shrink_lruvec`): how much of each list to scan at this
/// priority, by swappiness and the lists' sizes, in batches of [`SWAP_CLUSTER_MAX`].
fn shrink_lruvec(sc: &mut ScanControl) {
    let sizes = lru_sizes();
    let (anon_cost, file_cost) = page_alloc::with(|a| {
        let l = a.lruvec(0);
        (l.anon_cost, l.file_cost)
    });
    let input = lru::ScanInput {
        sizes,
        swappiness: SWAPPINESS.load(Ordering::Relaxed) as u32,
        priority: sc.priority,
        may_swap: sc.may_swap,
        cgroup_reclaim: false,
        anon_cost,
        file_cost,
        file_is_tiny: false,
        force_deactivate: false,
        cache_trim_mode: false,
    };
    let mut nr = lru::get_scan_count(&input);
    let evictable = [
        LruList::InactiveAnon,
        LruList::ActiveAnon,
        LruList::InactiveFile,
        LruList::ActiveFile,
    ];
    while nr[LruList::InactiveAnon as usize]
        + nr[LruList::ActiveFile as usize]
        + nr[LruList::InactiveFile as usize]
        > 0
    {
        for l in evictable {
            let i = l as usize;
            if nr[i] == 0 {
                continue;
            }
            let n = nr[i].min(SWAP_CLUSTER_MAX);
            nr[i] -= n;
            if l.is_active() {
                let s = lru_sizes();
                let (inactive, active) = if l.is_file() {
                    (
                        s[LruList::InactiveFile as usize],
                        s[LruList::ActiveFile as usize],
                    )
                } else {
                    (
                        s[LruList::InactiveAnon as usize],
                        s[LruList::ActiveAnon as usize],
                    )
                };
                if lru::inactive_is_low(inactive, active) {
                    shrink_active_list(l, n, sc);
                }
            } else {
                shrink_inactive_list(l, n, sc);
            }
        }
        if !sc.kswapd && sc.nr_reclaimed >= sc.nr_to_reclaim {
            break;
        }
    }
    // Keep some anonymous pages aging even when the lists above were not scanned.
    if sc.may_swap {
        let s = lru_sizes();
        if lru::inactive_is_low(
            s[LruList::InactiveAnon as usize],
            s[LruList::ActiveAnon as usize],
        ) {
            shrink_active_list(LruList::ActiveAnon, SWAP_CLUSTER_MAX, sc);
        }
    }
}

/// `shrink_node`: the LRU lists, then the slab caches in proportion to the pages scanned.
fn shrink_node(sc: &mut ScanControl) {
    shrink_lruvec(sc);
    // shrink_slab: the dentry cache, more of it at higher pressure (lower priority).
    if sc.priority < DEF_PRIORITY - 2 {
        let freed = crate::fs::dcache::shrink_all();
        inc(&stat::SLABS_SCANNED, freed as u64);
    }
}

/// Whether swap-out is possible now.
fn can_swap() -> bool {
    swapfile::has_free_swap()
}

/// Direct reclaim (`try_to_free_pages`): at falling priority until [`SWAP_CLUSTER_MAX`]
/// pages are freed. Returns the pages freed. The caller may sleep and holds no spinlock.
pub fn try_to_free_pages(gfp: Gfp) -> u64 {
    if set_memalloc(true) {
        return 0;
    }
    inc(&stat::ALLOCSTALL, 1);
    let stall = super::psi::memstall_enter();
    let mut sc = ScanControl {
        nr_to_reclaim: SWAP_CLUSTER_MAX,
        nr_reclaimed: 0,
        nr_scanned: 0,
        priority: DEF_PRIORITY,
        may_writepage: gfp.contains(Gfp::IO),
        may_swap: can_swap() && gfp.contains(Gfp::IO),
        kswapd: false,
        ignore_references: false,
        memcgs: None,
    };
    let mut p = DEF_PRIORITY as i32;
    while p >= 0 {
        sc.priority = p as u32;
        shrink_node(&mut sc);
        if sc.nr_reclaimed >= sc.nr_to_reclaim {
            break;
        }
        p -= 1;
    }
    set_memalloc(false);
    super::psi::memstall_leave(stall);
    crate::trace::reclaim(
        trace_abi::reclaim::DIRECT_RECLAIM,
        sc.nr_reclaimed,
        sc.nr_scanned,
        0,
    );
    sc.nr_reclaimed
}

/// Reclaim up to `nr` pages charged to memory cgroup `memcg` or its descendants
/// (`try_to_free_mem_cgroup_pages`), at falling priority. Returns the pages freed. The
/// caller may sleep and holds no spinlock.
pub fn memcg_reclaim(memcg: u16, nr: u64) -> u64 {
    use super::memcontrol as mc;
    if set_memalloc(true) {
        return 0;
    }
    let mut groups = Vec::new();
    for g in mc::online_groups() {
        if mc::is_descendant(g, memcg) && groups.try_reserve(1).is_ok() {
            groups.push(g);
        }
    }
    if !groups.contains(&memcg) && groups.try_reserve(1).is_ok() {
        groups.push(memcg);
    }
    let may_swap = can_swap() && mc::swap_usage(memcg) < mc::swap_max(memcg);
    let stall = super::psi::memstall_enter();
    let mut sc = ScanControl {
        nr_to_reclaim: nr.max(SWAP_CLUSTER_MAX),
        nr_reclaimed: 0,
        nr_scanned: 0,
        priority: DEF_PRIORITY,
        may_writepage: true,
        may_swap,
        kswapd: false,
        ignore_references: false,
        memcgs: Some(groups),
    };
    let mut p = DEF_PRIORITY as i32;
    while p >= 0 {
        sc.priority = p as u32;
        shrink_lruvec(&mut sc);
        if sc.nr_reclaimed >= sc.nr_to_reclaim {
            break;
        }
        p -= 1;
    }
    set_memalloc(false);
    super::psi::memstall_leave(stall);
    mc::stat_add(memcg, mc::MemcgStat::PgscanDirect, sc.nr_scanned as i64);
    mc::stat_add(memcg, mc::MemcgStat::PgstealDirect, sc.nr_reclaimed as i64);
    crate::trace::reclaim(
        trace_abi::reclaim::DIRECT_RECLAIM,
        sc.nr_reclaimed,
        sc.nr_scanned,
        memcg as u64,
    );
    sc.nr_reclaimed
}

/// Charge the new page `pfn` to the current task's memory cgroup, reclaiming in the group
/// and finally killing in it when it is at its limit (`mem_cgroup_charge` for the page
/// cache, where the caller may sleep). ENOMEM if the caller itself was chosen, or if it
/// holds a spinlock and cannot reclaim.
pub fn charge_or_reclaim(pfn: Pfn) -> Result<(), crate::syscall::errno::Errno> {
    use super::memcontrol as mc;
    use crate::syscall::errno::ENOMEM;
    let memcg = mc::current_memcg();
    let mut failures = 0;
    loop {
        let Err(mc::ChargeError::OverMax(g)) = mc::charge(pfn, memcg) else {
            return Ok(());
        };
        if crate::sync::locks_held() || in_reclaim() {
            return Err(ENOMEM);
        }
        if failures < MAX_RECLAIM_RETRIES {
            if memcg_reclaim(g, SWAP_CLUSTER_MAX) == 0 {
                failures += 1;
            }
            continue;
        }
        let me = crate::proc::current().ok_or(ENOMEM)?;
        if core::ptr::eq(super::oom_kill::mem_cgroup_out_of_memory(me, g), me) {
            return Err(ENOMEM);
        }
        failures = 0;
        crate::proc::sched::schedule();
    }
}

/// Register the memory cgroup hooks (memory.max writes reclaim, then kill, in the group).
pub fn init() {
    super::memcontrol::register_reclaim(memcg_reclaim);
    super::memcontrol::register_oom(|memcg| {
        crate::proc::current()
            .map(|t| !core::ptr::eq(super::oom_kill::mem_cgroup_out_of_memory(t, memcg), t))
            .unwrap_or(false)
    });
}

/// Whether the current task holds a filesystem's sleeping lock (GFP_NOFS context).
fn in_fs() -> bool {
    crate::proc::current().is_some_and(|t| t.nofs.load(Ordering::Relaxed) != 0)
}

/// Whether the current task is reclaiming (`PF_MEMALLOC`): its own allocations must not
/// start another reclaim. kswapd and tasks in direct reclaim may reclaim at the same time
/// (each works on the pages it isolated).
pub fn in_reclaim() -> bool {
    crate::proc::current().is_some_and(|t| t.memalloc.load(Ordering::Relaxed))
}

/// Mark the current task as reclaiming (true) or done; returns whether it already was.
fn set_memalloc(on: bool) -> bool {
    crate::proc::current().is_some_and(|t| t.memalloc.swap(on, Ordering::AcqRel))
}

// ---- kswapd ------------------------------------------------------------------------------

static KSWAPD: IrqLock<Option<&'static Task>> = IrqLock::new("kswapd", None);
/// A wakeup arrived (or one could not be delivered from a locked context).
static KSWAPD_PENDING: AtomicBool = AtomicBool::new(false);
static KSWAPD_STARTING: AtomicBool = AtomicBool::new(false);

/// An allocation found a zone below its low watermark (`wakeup_kswapd`). From a context
/// holding a spinlock the wakeup is left pending for the next one.
pub fn wakeup_kswapd() {
    KSWAPD_PENDING.store(true, Ordering::Release);
    if crate::sync::locks_held() || crate::proc::current().is_none() || in_reclaim() {
        return;
    }
    let t = *KSWAPD.lock();
    match t {
        Some(t) => {
            if t.state.load(Ordering::Acquire) == crate::proc::state::SLEEPING {
                inc(&stat::KSWAPD_WAKEUPS, 1);
                crate::trace::reclaim(trace_abi::reclaim::KSWAPD_WAKE, 0, 0, t.pid as u64);
                crate::proc::sched::wake(t);
            }
        }
        None => {
            if KSWAPD_STARTING.swap(true, Ordering::Acquire) {
                return;
            }
            // kswapd0, started at the first wakeup (so a run that never runs low keeps
            // its pids as before).
            if let Some(t) = kthread::kthread_run("kswapd0", kswapd_main) {
                *KSWAPD.lock() = Some(t);
                inc(&stat::KSWAPD_WAKEUPS, 1);
            } else {
                KSWAPD_STARTING.store(false, Ordering::Release);
            }
        }
    }
}

/// Whether every populated zone is above its high watermark (`pgdat_balanced`).
fn node_balanced() -> bool {
    page_alloc::with(|a| a.node_balanced(0))
}

/// kswapd's loop: sleep until woken, then reclaim until the node is balanced
/// (`balance_pgdat`), giving up after [`MAX_RECLAIM_RETRIES`] runs without progress.
fn kswapd_main() {
    let mut failures = 0;
    loop {
        while !KSWAPD_PENDING.swap(false, Ordering::AcqRel) {
            crate::proc::sched::sleep();
        }
        if node_balanced() || failures >= MAX_RECLAIM_RETRIES {
            if node_balanced() {
                failures = 0;
            }
            continue;
        }
        inc(&stat::PAGEOUTRUN, 1);
        set_memalloc(true);
        let mut progress = 0;
        let mut p = DEF_PRIORITY as i32;
        while p >= 0 && !node_balanced() {
            let mut sc = ScanControl {
                nr_to_reclaim: page_alloc::with(|a| a.high_wmark_deficit(0)).max(SWAP_CLUSTER_MAX),
                nr_reclaimed: 0,
                nr_scanned: 0,
                priority: p as u32,
                may_writepage: true,
                may_swap: can_swap(),
                kswapd: true,
                ignore_references: false,
                memcgs: None,
            };
            shrink_node(&mut sc);
            progress += sc.nr_reclaimed;
            if sc.nr_reclaimed >= sc.nr_to_reclaim {
                // Enough at this priority: look at the watermarks again from the top.
                p = DEF_PRIORITY as i32;
                continue;
            }
            p -= 1;
            crate::proc::sched::cond_resched();
        }
        set_memalloc(false);
        if progress == 0 {
            failures += 1;
        } else {
            failures = 0;
        }
        crate::trace::reclaim(trace_abi::reclaim::KSWAPD_SLEEP, progress, 0, 0);
    }
}

// ---- workingset ----------------------------------------------------------------------

/// The node's eviction clock (`lruvec->nonresident_age`): advanced by every eviction and
/// activation, so a refault's distance says how much was evicted meanwhile.
static NONRESIDENT_AGE: AtomicU64 = AtomicU64::new(0);

/// The shadow entry an evicted page leaves behind (`workingset_eviction`).
pub fn workingset_eviction(pfn: Pfn) -> u64 {
    let workingset = page_alloc::page_flags(pfn) & mm_core::page::flags::PG_WORKINGSET != 0;
    let eviction = NONRESIDENT_AGE.fetch_add(1, Ordering::Relaxed) + 1;
    mm_core::workingset::pack_shadow(0, 0, eviction, workingset)
}

/// Bit 1 of a page cache tree slot that holds a shadow (bits 0 and 8, PRESENT and
/// PROTNONE, stay clear: the trees are page tables, and the slot must read as empty).
const SLOT_SHADOW: u64 = 1 << 1;
const SLOT_WORKINGSET: u64 = 1 << 2;
const SLOT_EVICTION_SHIFT: u32 = 12;

/// A shadow entry as a page cache tree slot value.
pub fn shadow_to_slot(shadow: u64) -> u64 {
    let s = mm_core::workingset::unpack_shadow(shadow);
    SLOT_SHADOW
        | if s.workingset { SLOT_WORKINGSET } else { 0 }
        | (s.eviction << SLOT_EVICTION_SHIFT)
}

/// The shadow entry a page cache tree slot holds, if it holds one.
pub fn slot_to_shadow(slot: u64) -> Option<u64> {
    (slot & (mm_core::pgtable::pte::PRESENT | mm_core::pgtable::pte::PROTNONE) == 0
        && slot & SLOT_SHADOW != 0)
        .then(|| {
            mm_core::workingset::pack_shadow(
                0,
                0,
                slot >> SLOT_EVICTION_SHIFT,
                slot & SLOT_WORKINGSET != 0,
            )
        })
}

/// A page came back whose shadow was `shadow` (`workingset_refault`): count the refault,
/// and activate it when its refault distance fits in the workingset.
pub fn workingset_refault(pfn: Pfn, shadow: u64) {
    if !mm_core::workingset::is_shadow(shadow) {
        return;
    }
    let s = mm_core::workingset::unpack_shadow(shadow);
    let file = page_alloc::page_flags(pfn) & PG_SWAPBACKED == 0;
    inc(
        if file {
            &stat::WORKINGSET_REFAULT_FILE
        } else {
            &stat::WORKINGSET_REFAULT_ANON
        },
        1,
    );
    let now = NONRESIDENT_AGE.load(Ordering::Relaxed);
    let distance = mm_core::workingset::refault_distance(s.eviction, now);
    let sizes = lru_sizes();
    let mut workingset = sizes[LruList::ActiveFile as usize];
    if can_swap() {
        workingset += sizes[LruList::ActiveAnon as usize];
    }
    if !file {
        workingset += sizes[LruList::InactiveFile as usize];
    } else if can_swap() {
        workingset += sizes[LruList::InactiveAnon as usize];
    }
    if !mm_core::workingset::refault_should_activate(distance, workingset) {
        return;
    }
    page_alloc::with(|a| {
        a.page_mut(pfn)
            .set(PG_ACTIVE | mm_core::page::flags::PG_WORKINGSET)
    });
    NONRESIDENT_AGE.fetch_add(1, Ordering::Relaxed);
    inc(
        if file {
            &stat::WORKINGSET_ACTIVATE_FILE
        } else {
            &stat::WORKINGSET_ACTIVATE_ANON
        },
        1,
    );
    if s.workingset {
        inc(
            if file {
                &stat::WORKINGSET_RESTORE_FILE
            } else {
                &stat::WORKINGSET_RESTORE_ANON
            },
            1,
        );
    }
}
