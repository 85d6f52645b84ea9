//! The swap cache (`mm/swap_state.c`): pages on their way to or from a swap slot, found by
//! their swap entry, so that a page being written out or read in is found rather than read
//! twice, and a page several processes share through one slot is read once.
//!
//! A page in the swap cache has `PG_swapcache`, its entry in `page->private`, and one
//! reference held by the cache. Its slot carries `SWAP_HAS_CACHE` meanwhile. When the
//! page leaves the cache for reclaim it leaves a shadow entry behind (workingset).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::gfp::Gfp;
use mm_core::page::flags::{PG_DIRTY, PG_LOCKED, PG_SWAPBACKED, PG_SWAPCACHE, PG_UPTODATE};
use mm_core::page::Pages;
use mm_core::swap::SwpEntry;
use mm_core::swap_cache::SwapCache;

use super::addr::Pfn;
use super::page_alloc;
use super::swapfile;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, EIO, ENOMEM};

/// Pages read around a faulting slot (`page_cluster` = 3: 8 pages, aligned).
pub const PAGE_CLUSTER: u32 = 3;

static SWAP_CACHE: IrqLock<SwapCache> = IrqLock::new("swap_cache", SwapCache::new());
/// `/proc/vmstat` swap_ra: pages read ahead of a swap fault.
pub static SWAP_RA: AtomicU64 = AtomicU64::new(0);

fn with_cache<R>(f: impl FnOnce(&mut SwapCache) -> R) -> R {
    f(&mut SWAP_CACHE.lock())
}

/// Room in the swap cache for area `t` of `slots` slots (swapon).
pub fn add_area(t: usize, slots: u64) -> Result<(), Errno> {
    with_cache(|c| c.add_area(t, slots)).map_err(|_| ENOMEM)
}

/// Area `t` is gone (swapoff).
pub fn remove_area(t: usize) {
    with_cache(|c| c.remove_area(t));
}

/// Pages in the swap cache (/proc/meminfo's SwapCached).
pub fn nr_pages() -> u64 {
    with_cache(|c| c.nr_pages())
}

/// The entry of a swap-cache page.
pub fn page_entry(pfn: Pfn) -> Option<SwpEntry> {
    page_alloc::with(|a| {
        let p = a.page(pfn);
        p.test(PG_SWAPCACHE).then_some(SwpEntry(p.private))
    })
}

/// Put `pfn` (an anonymous page about to be unmapped for reclaim) into the swap cache
/// under a new slot (`add_to_swap`): the page is marked dirty, for it must be written
/// before it can be dropped. None when swap is full.
pub fn add_to_swap(pfn: Pfn) -> Option<SwpEntry> {
    let entry = swapfile::get_swap_page()?;
    if !swapfile::charge_swap_slot(entry, super::memcontrol::page_memcg(pfn)) {
        swapfile::put_swap_cache(entry);
        return None;
    }
    if with_cache(|c| c.add(entry, pfn)).is_err() {
        swapfile::put_swap_cache(entry);
        return None;
    }
    page_alloc::with(|a| {
        a.get_page(pfn);
        let p = a.page_mut(pfn);
        p.set(PG_SWAPCACHE | PG_DIRTY);
        p.private = entry.0;
    });
    Some(entry)
}

/// Take `pfn` out of the swap cache (`delete_from_swap_cache`), leaving `shadow` (a
/// workingset shadow entry) in its place, and drop the cache's reference and its claim on
/// the slot.
pub fn delete_from_swap_cache(pfn: Pfn, shadow: Option<u64>) {
    let Some(entry) = page_entry(pfn) else {
        return;
    };
    with_cache(|c| c.delete(entry, shadow));
    page_alloc::with(|a| {
        let p = a.page_mut(pfn);
        p.clear(PG_SWAPCACHE);
        p.private = 0;
    });
    swapfile::put_swap_cache(entry);
    page_alloc::free_pages(pfn, 0);
}

/// The cached page of `entry` with a reference, waiting while it is being read
/// (`lookup_swap_cache`). None if no page is cached.
pub fn lookup_swap_cache(entry: SwpEntry) -> Option<Pfn> {
    loop {
        let pfn = with_cache(|c| c.lookup(entry))?;
        let locked = page_alloc::with(|a| {
            a.get_page(pfn);
            a.page(pfn).test(PG_LOCKED)
        });
        if !locked {
            return Some(pfn);
        }
        super::filemap::wait_on_page_locked(pfn);
        let ok = page_alloc::page_flags(pfn) & PG_UPTODATE != 0;
        page_alloc::free_pages(pfn, 0);
        if !ok {
            // The read failed and the page left the cache.
            return None;
        }
    }
}

/// The cached page of `entry` with a reference, if it is there and not being read: for
/// callers holding a spinlock, which cannot wait.
pub fn cached_page(entry: SwpEntry) -> Option<Pfn> {
    let pfn = with_cache(|c| c.lookup(entry))?;
    page_alloc::with(|a| {
        let p = a.page(pfn);
        (!p.test(PG_LOCKED) && p.test(PG_UPTODATE)).then(|| {
            a.get_page(pfn);
            pfn
        })
    })
}

/// What claiming a slot for reading found.
enum Claim {
    /// Its page is in the cache (a reference taken).
    Cached(Pfn),
    /// A new locked page is in the cache for it (the caller's reference and the cache's),
    /// to be read; the shadow entry it replaced, if any.
    New(Pfn, Option<u64>),
    /// Nothing uses the slot any more.
    Gone,
}

/// Find `entry`'s page in the cache, or put a new locked page there for it
/// (`__read_swap_cache_async`).
fn claim(entry: SwpEntry) -> Result<Claim, Errno> {
    loop {
        if let Some(pfn) = lookup_swap_cache(entry) {
            return Ok(Claim::Cached(pfn));
        }
        if swapfile::swap_count(entry) == 0 {
            return Ok(Claim::Gone);
        }
        let pfn = page_alloc::alloc_pages(Gfp::HIGHUSER_MOVABLE, 0).ok_or(ENOMEM)?;
        match swapfile::swapcache_prepare(entry) {
            Ok(true) => {}
            Ok(false) => {
                // Another task is adding it: look again.
                page_alloc::free_pages(pfn, 0);
                crate::proc::sched::schedule();
                continue;
            }
            Err(_) => {
                page_alloc::free_pages(pfn, 0);
                return Ok(Claim::Gone);
            }
        }
        let shadow = match with_cache(|c| c.add(entry, pfn)) {
            Ok(s) => s,
            Err(_) => {
                swapfile::put_swap_cache(entry);
                page_alloc::free_pages(pfn, 0);
                continue;
            }
        };
        page_alloc::with(|a| {
            // The cache's reference; the caller keeps the allocation's.
            a.get_page(pfn);
            let p = a.page_mut(pfn);
            // Anonymous or shmem: whoever maps it first says (`add_new_anon`, or
            // the shmem object taking it back).
            p.set(PG_SWAPCACHE | PG_LOCKED | PG_SWAPBACKED);
            p.private = entry.0;
        });
        return Ok(Claim::New(pfn, shadow));
    }
}

/// The read of a claimed page ended: up to date and on the LRU, or out of the cache.
fn complete(pfn: Pfn, entry: SwpEntry, shadow: Option<u64>, ok: bool) -> Result<(), Errno> {
    if ok {
        page_alloc::with(|a| a.page_mut(pfn).set(PG_UPTODATE));
        if let Some(s) = shadow {
            super::vmscan::workingset_refault(pfn, s);
        }
        super::filemap::unlock_page(pfn);
        super::vmscan::lru_cache_add(pfn);
        Ok(())
    } else {
        log::error!(
            "Read-error on swap-device ({}:{})",
            entry.type_(),
            entry.offset()
        );
        super::filemap::unlock_page(pfn);
        delete_from_swap_cache(pfn, None);
        Err(EIO)
    }
}

/// The page of `entry`, from the cache or read from the disk (`read_swap_cache_async`),
/// with a reference for the caller; `true` if it was read now. `Ok(None)`: the slot was
/// freed meanwhile (nothing uses it any more).
pub fn read_swap_cache_async(entry: SwpEntry) -> Result<Option<(Pfn, bool)>, Errno> {
    match claim(entry)? {
        Claim::Cached(pfn) => Ok(Some((pfn, false))),
        Claim::Gone => Ok(None),
        Claim::New(pfn, shadow) => {
            let ok = swapfile::swap_io_batch(crate::block::BioOp::Read, &[(pfn, entry)])[0];
            match complete(pfn, entry, shadow, ok) {
                Ok(()) => Ok(Some((pfn, true))),
                Err(e) => {
                    page_alloc::free_pages(pfn, 0);
                    Err(e)
                }
            }
        }
    }
}

/// The page of `entry` for a fault, reading its aligned cluster of `2^page_cluster`
/// slots in one request per run of slots (`swap_cluster_readahead`); `true` if the disk
/// was read for it.
pub fn swapin_readahead(entry: SwpEntry) -> Result<Option<(Pfn, bool)>, Errno> {
    let n = 1u64 << PAGE_CLUSTER;
    let first = entry.offset() & !(n - 1);
    let max = swapfile::with_area(entry.type_(), |s| s.map.max()).unwrap_or(0);
    // Claim every slot of the window that is in use and not cached; the target first,
    // so that running out of memory affects only the read-ahead.
    let mut claimed: Vec<(Pfn, SwpEntry, Option<u64>)> = Vec::new();
    claimed.try_reserve(n as usize).map_err(|_| ENOMEM)?;
    let target = match claim(entry)? {
        Claim::Cached(pfn) => return Ok(Some((pfn, false))),
        Claim::Gone => return Ok(None),
        Claim::New(pfn, shadow) => (pfn, shadow),
    };
    for off in first..(first + n).min(max) {
        if off == 0 {
            continue;
        }
        if off == entry.offset() {
            claimed.push((target.0, entry, target.1));
            continue;
        }
        let e = SwpEntry::new(entry.type_(), off);
        if swapfile::swap_count(e) == 0 || with_cache(|c| c.lookup(e)).is_some() {
            continue;
        }
        // Best effort: a page that cannot be read ahead is read at its own fault.
        match claim(e) {
            Ok(Claim::New(pfn, shadow)) => claimed.push((pfn, e, shadow)),
            Ok(Claim::Cached(pfn)) => page_alloc::free_pages(pfn, 0),
            _ => {}
        }
    }
    let io: Vec<(Pfn, SwpEntry)> = claimed.iter().map(|&(p, e, _)| (p, e)).collect();
    let results = swapfile::swap_io_batch(crate::block::BioOp::Read, &io);
    let mut r = Ok(Some((target.0, true)));
    for (&(pfn, e, shadow), ok) in claimed.iter().zip(results) {
        let done = complete(pfn, e, shadow, ok);
        if e == entry {
            if let Err(err) = done {
                page_alloc::free_pages(pfn, 0);
                r = Err(err);
            }
        } else {
            if done.is_ok() {
                SWAP_RA.fetch_add(1, Ordering::Relaxed);
            }
            page_alloc::free_pages(pfn, 0);
        }
    }
    r
}

/// If no swap entry names `pfn`'s slot any more, take it out of the swap cache and free
/// the slot (`try_to_free_swap`); true if it did.
pub fn try_to_free_swap(pfn: Pfn) -> bool {
    let Some(entry) = page_entry(pfn) else {
        return false;
    };
    if page_alloc::page_flags(pfn) & PG_LOCKED != 0 || swapfile::swap_count(entry) != 0 {
        return false;
    }
    delete_from_swap_cache(pfn, None);
    true
}

/// A swap entry in a page table was dropped (`free_swap_and_cache`): one user of the slot
/// fewer; when none is left and the cached page is not mapped, the page leaves the cache.
pub fn free_swap_and_cache(entry: SwpEntry) {
    let left = swapfile::swap_free(entry);
    if left != mm_core::swap::SWAP_HAS_CACHE {
        return;
    }
    let Some(pfn) = with_cache(|c| c.lookup(entry)) else {
        return;
    };
    let unmapped = page_alloc::with(|a| {
        let p = a.page(pfn);
        p.mapcount < 0 && !p.test(PG_LOCKED)
    });
    if unmapped {
        delete_from_swap_cache(pfn, None);
    }
}

/// Bring every page of swap area `t` back into memory (`try_to_unuse`, for swapoff): each
/// address space's swap entries of that area are swapped in and mapped, then the cache
/// lets go of the area. ENOMEM when a page cannot be had.
pub fn try_to_unuse(t: usize) -> Result<(), Errno> {
    // Each pass maps back what it found; entries can move (fork, mremap) between passes.
    for _ in 0..MAX_UNUSE_PASSES {
        let mut found = false;
        for task in crate::proc::sched::all() {
            loop {
                // A batch of this task's entries of area `t`, read without the mm lock.
                let batch = {
                    let g = task.mm().lock();
                    let Some(mm) = g.as_ref() else { break };
                    mm.swap_entries_of(t, UNUSE_BATCH)
                };
                if batch.is_empty() {
                    break;
                }
                found = true;
                for (va, entry) in batch {
                    let got = read_swap_cache_async(entry)?;
                    let Some((pfn, _)) = got else { continue };
                    {
                        let mut g = task.mm().lock();
                        if let Some(mm) = g.as_mut() {
                            mm.unuse_pte(va, entry, pfn);
                        }
                    }
                    page_alloc::free_pages(pfn, 0);
                }
                if crate::proc::current().is_some_and(crate::proc::signal::kill_pending) {
                    return Err(crate::syscall::errno::EINTR);
                }
            }
        }
        // Pages left in the cache with no user: drop them.
        let cached: Vec<(SwpEntry, Pfn)> =
            with_cache(|c| c.pages().filter(|(e, _)| e.type_() == t).collect());
        for (entry, pfn) in cached {
            if swapfile::swap_count(entry) == 0 {
                page_alloc::with(|a| a.get_page(pfn));
                if page_entry(pfn) == Some(entry) {
                    delete_from_swap_cache(pfn, None);
                }
                page_alloc::free_pages(pfn, 0);
            }
        }
        with_cache(|c| c.clear_shadows(t, 0..u64::MAX));
        let inuse = swapfile::with_area(t, |s| s.map.inuse_pages()).unwrap_or(0);
        if inuse == 0 {
            return Ok(());
        }
        if !found {
            break;
        }
    }
    let inuse = swapfile::with_area(t, |s| s.map.inuse_pages()).unwrap_or(0);
    if inuse == 0 {
        Ok(())
    } else {
        log::warn!("swapoff: {inuse} pages of area {t} still in use");
        Err(ENOMEM)
    }
}

/// Entries one look at an address space collects before the lock is dropped for I/O.
const UNUSE_BATCH: usize = 64;
/// Passes over all tasks before swapoff gives up on entries that keep moving.
const MAX_UNUSE_PASSES: usize = 8;
