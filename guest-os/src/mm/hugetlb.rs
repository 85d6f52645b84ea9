//! The hugetlb pool (`mm/hugetlb.c`): 2 MiB pages set aside from the buddy allocator
//! (order 9) by `hugepages=N` on the command line or `/proc/sys/vm/nr_hugepages`, and
//! handed to MAP_HUGETLB mappings, which map them with a PMD (PS bit).
//!
//! - **Pool**: `nr_hugepages` pages, `free` of them unused. Growing allocates order-9
//!   blocks (as `alloc_pool_huge_page`, it gives up at the first failure: there is no
//!   compaction); shrinking frees unused pages back to the buddy allocator only, as
//!   Linux's `set_max_huge_pages` (pages in use stay; Linux would make them surplus and
//!   free them when they are released: here the pool just stays larger, `HugePages_Surp`
//!   is always 0).
//! - **Reservations** (`hugetlb_reserve_pages`): mmap reserves one page per 2 MiB of the
//!   mapping, or fails with ENOMEM; a fault consumes a reservation of its address space
//!   if it has one left, else takes an unreserved free page, else is SIGBUS
//!   (`VM_FAULT_SIGBUS`, as Linux when the pool runs out at fault time, e.g. a private
//!   mapping's child after fork, which inherits no reservation). munmap and exit give back
//!   what was reserved and not faulted. Reservations are counted per address space (not
//!   per mapping and offset as Linux's `resv_map`): the totals are the same.
//! - **Pages**: a pool page keeps one reference while it is free; a fault hands that
//!   reference to the mapping, fork adds one per sharer, and when the last goes the page
//!   returns to the free list (`free_huge_folio`), never to the buddy allocator. Hugetlb
//!   pages are not counted in RSS, not charged to memory cgroups, and not on the LRU (as
//!   Linux).
//!
//! Not here: hugetlbfs (files of huge pages; `mount -t hugetlbfs` answers ENODEV), 1 GiB
//! pages (MAP_HUGE_1GB is EINVAL), surplus pages (`nr_overcommit_hugepages`).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use mm_core::gfp::Gfp;
use mm_core::page::Pages;

use super::addr::{Pfn, PAGE_SIZE};
use super::page_alloc::{self, page_address};
use crate::sync::IrqLock;

/// Order of a huge page.
pub const HUGETLB_ORDER: usize = 9;
/// Bytes of a huge page.
pub const HPAGE_SIZE: u64 = PAGE_SIZE << HUGETLB_ORDER;

struct Pool {
    /// Every page of the pool (free or in use).
    all: BTreeSet<u64>,
    /// Unused pages.
    free: Vec<Pfn>,
    /// Pages promised to mappings and not faulted yet.
    resv: u64,
}

static POOL: IrqLock<Pool> = IrqLock::new(
    "hugetlb",
    Pool {
        all: BTreeSet::new(),
        free: Vec::new(),
        resv: 0,
    },
);

/// `/proc/meminfo`'s figures: (HugePages_Total, HugePages_Free, HugePages_Rsvd).
pub fn counts() -> (u64, u64, u64) {
    let p = POOL.lock();
    (p.all.len() as u64, p.free.len() as u64, p.resv)
}

/// Whether `pfn` is the head of a pool page.
pub fn is_pool_page(pfn: Pfn) -> bool {
    POOL.lock().all.contains(&pfn.as_u64())
}

/// `set_max_huge_pages`: grow or shrink the pool towards `n` pages; returns the new size.
pub fn set_nr_hugepages(n: u64) -> u64 {
    loop {
        let total = POOL.lock().all.len() as u64;
        if total >= n {
            break;
        }
        // No reclaim or compaction for the pool: a fragmented buddy allocator ends the
        // growth early, as `__GFP_RETRY_MAYFAIL` would after its retries.
        let gfp = (Gfp::HIGHUSER_MOVABLE.0 & !Gfp::DIRECT_RECLAIM.0)
            | Gfp::COMP.0
            | Gfp::NOWARN.0
            | Gfp::NORETRY.0;
        let Some(pfn) = page_alloc::alloc_pages(Gfp(gfp), HUGETLB_ORDER) else {
            break;
        };
        let mut p = POOL.lock();
        if p.free.try_reserve(1).is_err() {
            drop(p);
            page_alloc::free_pages(pfn, HUGETLB_ORDER);
            break;
        }
        p.all.insert(pfn.as_u64());
        p.free.push(pfn);
    }
    // Shrink: unused, unreserved pages only.
    loop {
        let pfn = {
            let mut p = POOL.lock();
            if p.all.len() as u64 <= n || p.free.len() as u64 <= p.resv {
                break;
            }
            let Some(pfn) = p.free.pop() else { break };
            p.all.remove(&pfn.as_u64());
            pfn
        };
        page_alloc::free_pages(pfn, HUGETLB_ORDER);
    }
    POOL.lock().all.len() as u64
}

/// Reserve `n` pages for a new mapping (`hugetlb_reserve_pages`); false if the pool's
/// unreserved free pages cannot back them.
pub fn reserve(n: u64) -> bool {
    let mut p = POOL.lock();
    if (p.free.len() as u64).saturating_sub(p.resv) < n {
        return false;
    }
    p.resv += n;
    true
}

/// Give back `n` reservations that will not be faulted (`hugetlb_unreserve_pages`).
pub fn unreserve(n: u64) {
    let mut p = POOL.lock();
    p.resv = p.resv.saturating_sub(n);
}

/// A zeroed page from the pool for a fault (`alloc_hugetlb_folio`): one of the caller's
/// reservations (`reserved`) or an unreserved free page. `None`: SIGBUS.
pub fn alloc(reserved: bool) -> Option<Pfn> {
    let pfn = {
        let mut p = POOL.lock();
        if reserved {
            p.resv = p.resv.checked_sub(1)?;
        } else if p.free.len() as u64 <= p.resv {
            return None;
        }
        p.free.pop()?
    };
    // SAFETY: the pool page is ours alone now; its 2 MiB lie in the direct map.
    unsafe { core::ptr::write_bytes(page_address(pfn).as_mut_ptr::<u8>(), 0, HPAGE_SIZE as usize) };
    Some(pfn)
}

/// Drop a reference on pool page `pfn`; the last one puts it back on the free list.
pub fn put_page(pfn: Pfn) {
    let last = page_alloc::with(|a| {
        let pg = a.page_mut(pfn);
        pg.refcount -= 1;
        if pg.refcount > 0 {
            return false;
        }
        // The pool's own reference.
        pg.refcount = 1;
        pg.mapcount = -1;
        pg.mapping = 0;
        pg.index = 0;
        true
    });
    if last {
        POOL.lock().free.push(pfn);
    }
}

/// `hugepages=N` on the command line (`hugepages_setup`), before user space runs.
pub fn init_from_cmdline(cmdline: &[u8]) {
    if let Some(n) = crate::cmdline::param(cmdline, "hugepages")
        .and_then(|v| core::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        let got = set_nr_hugepages(n);
        if got < n {
            log::warn!("HugeTLB: allocating {n} of page size 2.00 MiB failed.  Only allocated {got} hugepages.");
        }
    }
}
