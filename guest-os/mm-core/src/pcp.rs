//! Per-CPU page lists (`struct per_cpu_pages`): a small cache of order-0 pages in front of
//! the buddy allocator, one per CPU and zone, so that most single-page allocations and frees
//! touch neither the zone lock nor the free-area lists.
//!
//! Pages are taken from the head; frees go to the head ("hot": the page is probably still in
//! the CPU cache and is reused first) or to the tail ("cold"). The lists refill from the
//! buddy allocator `batch` pages at a time, and once more than `high` pages are cached,
//! `batch` of the coldest go back.

use crate::addr::Pfn;
use crate::buddy::Buddy;
use crate::gfp::{MigrateType, MIGRATE_PCPTYPES};
use crate::list::PageList;
use crate::page::{flags::PG_PCP, Pages};

/// Event counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcpStats {
    /// Allocations served from the lists.
    pub hits: u64,
    /// Refills from the buddy allocator.
    pub refills: u64,
    /// Batches returned to the buddy allocator.
    pub drains: u64,
}

/// The per-CPU lists of one zone.
#[derive(Clone, Copy, Debug)]
pub struct PerCpuPages {
    lists: [PageList; MIGRATE_PCPTYPES],
    /// Pages on the lists.
    pub count: u64,
    /// Drain when `count` exceeds this.
    pub high: u64,
    /// Pages moved per refill or drain.
    pub batch: u64,
    pub stats: PcpStats,
}

impl Default for PerCpuPages {
    fn default() -> Self {
        Self::new(0)
    }
}

/// Linux's `zone_batchsize()`: about a quarter of a thousandth of the zone, at most 1 MiB
/// worth of pages / 4, rounded to `2^n - 1` so batches do not all map to the same cache
/// colours.
pub fn zone_batchsize(managed_pages: u64) -> u64 {
    let mut batch = (managed_pages >> 10).min((1 << 20) / crate::addr::PAGE_SIZE);
    batch /= 4;
    if batch < 1 {
        batch = 1;
    }
    let x = batch + batch / 2;
    (1u64 << (63 - x.leading_zeros())) - 1
}

impl PerCpuPages {
    /// Lists for a zone of `managed_pages` (the classic `high = 6 * batch`).
    pub const fn new(batch: u64) -> Self {
        let batch = if batch == 0 { 1 } else { batch };
        PerCpuPages {
            lists: [PageList::new(); MIGRATE_PCPTYPES],
            count: 0,
            high: 6 * batch,
            batch,
            stats: PcpStats {
                hits: 0,
                refills: 0,
                drains: 0,
            },
        }
    }

    /// Pages cached for `mt`.
    pub fn len_of(&self, mt: MigrateType) -> usize {
        self.lists[mt as usize].len()
    }

    /// The page the next allocation of `mt` takes (the hottest).
    pub fn first_of(&self, mt: MigrateType) -> Option<Pfn> {
        self.lists.get(mt as usize)?.first()
    }

    /// The page taken last (the coldest).
    pub fn last_of(&self, mt: MigrateType) -> Option<Pfn> {
        self.lists.get(mt as usize)?.last()
    }

    /// An order-0 page of `mt` (`rmqueue_pcplist`), refilling from `buddy` if needed.
    pub fn alloc<P: Pages + ?Sized>(
        &mut self,
        buddy: &mut Buddy,
        pages: &mut P,
        mt: MigrateType,
    ) -> Option<Pfn> {
        let i = mt as usize;
        if i >= MIGRATE_PCPTYPES {
            return None;
        }
        if self.lists[i].is_empty() {
            self.stats.refills += 1;
            // rmqueue_bulk: pages go to the tail in allocation order, so that the head is
            // the lowest address (physically contiguous runs for the first users).
            for _ in 0..self.batch {
                let Some(pfn) = buddy.alloc(pages, 0, mt) else {
                    break;
                };
                pages.page_mut(pfn).set(PG_PCP);
                pages.page_mut(pfn).private = mt as u64;
                self.lists[i].push_back(pages, pfn);
                self.count += 1;
            }
        } else {
            self.stats.hits += 1;
        }
        let pfn = self.lists[i].pop_front(pages)?;
        self.count -= 1;
        let p = pages.page_mut(pfn);
        p.clear(PG_PCP);
        p.private = 0;
        Some(pfn)
    }

    /// Cache a freed order-0 page (`free_unref_page`); drains a batch past `high`.
    /// The caller has checked the page ([`Buddy::free`]'s rules) and reset its fields.
    pub fn free<P: Pages + ?Sized>(
        &mut self,
        buddy: &mut Buddy,
        pages: &mut P,
        pfn: Pfn,
        mt: MigrateType,
        cold: bool,
    ) {
        let i = (mt as usize).min(MIGRATE_PCPTYPES - 1);
        let p = pages.page_mut(pfn);
        p.set(PG_PCP);
        p.private = i as u64;
        if cold {
            self.lists[i].push_back(pages, pfn);
        } else {
            self.lists[i].push_front(pages, pfn);
        }
        self.count += 1;
        if self.count > self.high {
            self.free_bulk(buddy, pages, self.batch);
        }
    }

    /// Return up to `n` of the coldest pages to the buddy allocator, taking from the lists
    /// in turn (`free_pcppages_bulk`).
    pub fn free_bulk<P: Pages + ?Sized>(&mut self, buddy: &mut Buddy, pages: &mut P, n: u64) {
        self.stats.drains += 1;
        let mut left = n.min(self.count);
        let mut i = 0;
        while left > 0 {
            if let Some(pfn) = self.lists[i].pop_back(pages) {
                let p = pages.page_mut(pfn);
                p.clear(PG_PCP);
                p.private = 0;
                let mt = Buddy::pageblock_mt(pages, pfn);
                buddy.free_one(pages, pfn, 0, mt);
                self.count -= 1;
                left -= 1;
            }
            i = (i + 1) % MIGRATE_PCPTYPES;
        }
    }

    /// Return every cached page (`drain_pages_zone`).
    pub fn drain<P: Pages + ?Sized>(&mut self, buddy: &mut Buddy, pages: &mut P) {
        if self.count > 0 {
            self.free_bulk(buddy, pages, self.count);
        }
    }

    /// Check list membership against `struct page`.
    pub fn check<P: Pages + ?Sized>(&self, pages: &P) -> Result<(), &'static str> {
        let mut n = 0;
        for (i, l) in self.lists.iter().enumerate() {
            for pfn in l.iter(pages) {
                let p = pages.page(pfn);
                if !p.test(PG_PCP) || p.private as usize != i {
                    return Err("per-CPU list page not marked PG_pcp with its list");
                }
                n += 1;
            }
        }
        if n != self.count {
            return Err("per-CPU count does not match its lists");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{MemMap, Page};

    #[test]
    fn batch_sizes_like_linux() {
        // 16 MiB DMA zone: 3 >> 2 = 0 → 1 → 2^0 - 1 = 0; Linux then uses max(1, batch),
        // as PerCpuPages::new does.
        assert_eq!(zone_batchsize(3840), 0);
        // 128 MiB: 32,768 >> 10 = 32, / 4 = 8, 8 + 4 = 12 → 8 - 1 = 7.
        assert_eq!(zone_batchsize(32768), 7);
        // 4 GiB and beyond: capped at 256 / 4 = 64, 64 + 32 = 96 → 64 - 1 = 63.
        assert_eq!(zone_batchsize(1 << 20), 63);
    }

    #[test]
    fn refill_hot_reuse_and_drain_past_high() {
        let mut v = vec![Page::new_reserved(); 1024];
        let mut mm = MemMap::new(&mut v, Pfn(0));
        let mut b = Buddy::new(Pfn(0), Pfn(1024));
        b.free_range(&mut mm, Pfn(0), Pfn(1024));
        let mut pcp = PerCpuPages::new(4);
        let a = pcp.alloc(&mut b, &mut mm, MigrateType::Unmovable).unwrap();
        assert_eq!(a, Pfn(0));
        assert_eq!((pcp.count, b.nr_free_pages), (3, 1020));
        // A hot free is the next page handed out.
        pcp.free(&mut b, &mut mm, a, MigrateType::Unmovable, false);
        assert_eq!(pcp.alloc(&mut b, &mut mm, MigrateType::Unmovable), Some(a));
        pcp.free(&mut b, &mut mm, a, MigrateType::Unmovable, false);
        // Fill past high (24): a batch goes back.
        let mut got = Vec::new();
        for _ in 0..30 {
            got.push(pcp.alloc(&mut b, &mut mm, MigrateType::Unmovable).unwrap());
        }
        for p in got {
            pcp.free(&mut b, &mut mm, p, MigrateType::Unmovable, false);
            assert!(pcp.count <= pcp.high);
        }
        pcp.check(&mm).unwrap();
        pcp.drain(&mut b, &mut mm);
        assert_eq!((pcp.count, b.nr_free_pages), (0, 1024));
        assert_eq!(b.blocks_per_order()[10], 1);
        b.check(&mm).unwrap();
    }
}
