//! The buddy allocator of one zone (the core of Linux's `page_alloc.c`).
//!
//! Free memory is kept as naturally aligned blocks of `2^order` frames, order 0 to
//! [`MAX_ORDER`]` - 1` (4 KiB to 4 MiB), on `free_area[order]`. Each order has one list per
//! migratetype. A block's *buddy* is the block of the same order whose frame number differs
//! in bit `order`; freeing a block merges it with its buddy while the buddy is free, so
//! memory returns to the largest blocks possible.
//!
//! Mobility grouping: memory is divided into pageblocks of `2^PAGEBLOCK_ORDER` frames, each
//! labelled with a migratetype (kept in the pageblock's first `struct page`). Allocations
//! take from their own type's lists; when those are empty they *steal* from a fallback type
//! ([`MigrateType::fallbacks`]), preferring the largest block, and claim the whole pageblock
//! when the request is large or unmovable, so that unmovable allocations cluster.
//!
//! Free blocks are marked `PG_buddy` with their order in `Page::order`, and remember the
//! list they are on in `Page::private`.

use crate::addr::Pfn;
use crate::gfp::{MigrateType, MIGRATE_PCPTYPES, MIGRATE_TYPES};
use crate::list::PageList;
use crate::page::{flags::*, Pages};

/// Number of block orders: blocks of `2^0 .. 2^(MAX_ORDER-1)` frames.
pub const MAX_ORDER: usize = 11;
/// Order of a pageblock, the unit of mobility grouping (2 MiB, a PMD).
pub const PAGEBLOCK_ORDER: usize = 9;
/// Frames per pageblock.
pub const PAGEBLOCK_NR_PAGES: u64 = 1 << PAGEBLOCK_ORDER;
/// Orders above this are "costly" (Linux's PAGE_ALLOC_COSTLY_ORDER).
pub const PAGE_ALLOC_COSTLY_ORDER: usize = 3;

/// The free lists of one order.
#[derive(Clone, Copy, Debug, Default)]
pub struct FreeArea {
    pub lists: [PageList; MIGRATE_TYPES],
    /// Blocks on all lists of this order.
    pub nr_free: u64,
}

/// Event counters (reported in /proc/vmstat-style lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuddyStats {
    /// Blocks split to satisfy smaller requests.
    pub splits: u64,
    /// Merges of a freed block with its buddy.
    pub merges: u64,
    /// Allocations served from a fallback migratetype (`pgalloc` fallbacks).
    pub fallbacks: u64,
    /// Pageblocks whose migratetype changed by stealing.
    pub pageblocks_stolen: u64,
}

/// A bad free detected by [`Buddy::free`] (Linux's "BUG: Bad page state").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFree {
    /// The block lies (partly) outside this zone.
    OutOfZone(Pfn),
    /// Not aligned to its order.
    Misaligned(Pfn, usize),
    /// A page of the block is already free.
    AlreadyFree(Pfn),
    /// A page of the block is reserved memory.
    Reserved(Pfn),
    /// A page of the block is still mapped into an address space.
    Mapped(Pfn),
}

/// The free memory of one zone.
#[derive(Clone, Debug)]
pub struct Buddy {
    start_pfn: u64,
    end_pfn: u64,
    pub free_area: [FreeArea; MAX_ORDER],
    /// Frames on the free lists (`NR_FREE_PAGES`).
    pub nr_free_pages: u64,
    pub stats: BuddyStats,
}

impl Buddy {
    /// An empty allocator for frames `[start, end)`.
    pub const fn new(start: Pfn, end: Pfn) -> Self {
        Buddy {
            start_pfn: start.0,
            end_pfn: end.0,
            free_area: [FreeArea {
                lists: [PageList::new(); MIGRATE_TYPES],
                nr_free: 0,
            }; MAX_ORDER],
            nr_free_pages: 0,
            stats: BuddyStats {
                splits: 0,
                merges: 0,
                fallbacks: 0,
                pageblocks_stolen: 0,
            },
        }
    }

    /// The zone's first frame.
    pub fn start_pfn(&self) -> Pfn {
        Pfn(self.start_pfn)
    }

    /// One past the zone's last frame.
    pub fn end_pfn(&self) -> Pfn {
        Pfn(self.end_pfn)
    }

    #[inline]
    fn in_zone(&self, pfn: u64) -> bool {
        pfn >= self.start_pfn && pfn < self.end_pfn
    }

    /// The migratetype of the pageblock holding `pfn`.
    pub fn pageblock_mt<P: Pages + ?Sized>(pages: &P, pfn: Pfn) -> MigrateType {
        let head = Pfn(pfn.0 & !(PAGEBLOCK_NR_PAGES - 1));
        MigrateType::from_index(pages.page(head).pageblock_mt as usize)
    }

    /// Label the pageblock holding `pfn`.
    pub fn set_pageblock_mt<P: Pages + ?Sized>(pages: &mut P, pfn: Pfn, mt: MigrateType) {
        let head = Pfn(pfn.0 & !(PAGEBLOCK_NR_PAGES - 1));
        pages.page_mut(head).pageblock_mt = mt as u8;
    }

    /// Put a free block on a list (at the tail when its buddy may soon merge with it, so
    /// that the block is less likely to be reused before then).
    fn add_to_free_list<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        pfn: Pfn,
        order: usize,
        mt: MigrateType,
        tail: bool,
    ) {
        let p = pages.page_mut(pfn);
        p.set(PG_BUDDY);
        p.order = order as u8;
        p.private = mt as u64;
        let list = &mut self.free_area[order].lists[mt as usize];
        if tail {
            list.push_back(pages, pfn);
        } else {
            list.push_front(pages, pfn);
        }
        self.free_area[order].nr_free += 1;
        self.nr_free_pages += 1 << order;
    }

    fn del_from_free_list<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn, order: usize) {
        let mt = pages.page(pfn).private as usize;
        self.free_area[order].lists[mt].remove(pages, pfn);
        let p = pages.page_mut(pfn);
        p.clear(PG_BUDDY);
        p.order = 0;
        p.private = 0;
        self.free_area[order].nr_free -= 1;
        self.nr_free_pages -= 1 << order;
    }

    /// Whether `pfn` heads a free block of exactly `order` in this zone (`page_is_buddy`).
    #[inline]
    fn is_free_block<P: Pages + ?Sized>(&self, pages: &P, pfn: u64, order: usize) -> bool {
        if !self.in_zone(pfn) {
            return false;
        }
        let p = pages.page(Pfn(pfn));
        p.test(PG_BUDDY) && p.order as usize == order
    }

    /// Check a block before freeing it (`free_page_is_bad`).
    fn check_free<P: Pages + ?Sized>(
        &self,
        pages: &P,
        pfn: Pfn,
        order: usize,
    ) -> Result<(), BadFree> {
        let n = 1u64 << order;
        if order >= MAX_ORDER || !self.in_zone(pfn.0) || !self.in_zone(pfn.0 + n - 1) {
            return Err(BadFree::OutOfZone(pfn));
        }
        if pfn.0 & (n - 1) != 0 {
            return Err(BadFree::Misaligned(pfn, order));
        }
        for i in 0..n {
            let p = pages.page(pfn.add(i));
            if p.flags & (PG_BUDDY | PG_PCP) != 0 {
                return Err(BadFree::AlreadyFree(pfn.add(i)));
            }
            if p.test(PG_RESERVED) {
                return Err(BadFree::Reserved(pfn.add(i)));
            }
            if p.mapcount != -1 {
                return Err(BadFree::Mapped(pfn.add(i)));
            }
        }
        Ok(())
    }

    /// Free the block of `2^order` frames at `pfn` and merge it with its buddies
    /// (`__free_one_page`). The pages' owner fields are reset.
    pub fn free<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        pfn: Pfn,
        order: usize,
    ) -> Result<(), BadFree> {
        self.check_free(pages, pfn, order)?;
        for i in 0..1u64 << order {
            let p = pages.page_mut(pfn.add(i));
            p.flags &= PG_RESERVED; // nothing survives freeing except a reservation (checked absent)
            p.refcount = 0;
            p.mapping = 0;
            p.index = 0;
            p.private = 0;
            p.order = 0;
            p.compound_head = crate::page::NO_PFN;
        }
        self.free_one(pages, pfn, order, Self::pageblock_mt(pages, pfn));
        Ok(())
    }

    /// Insert a block known to be valid and unowned, merging (the core of freeing).
    pub(crate) fn free_one<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        pfn: Pfn,
        order: usize,
        mt: MigrateType,
    ) {
        let mut pfn = pfn.0;
        let mut order = order;
        while order < MAX_ORDER - 1 {
            let buddy = pfn ^ (1 << order);
            if !self.is_free_block(pages, buddy, order) {
                break;
            }
            // Do not merge isolated pageblocks with others.
            let bmt = pages.page(Pfn(buddy)).private as usize;
            if (bmt == MigrateType::Isolate as usize) != (mt == MigrateType::Isolate) {
                break;
            }
            self.del_from_free_list(pages, Pfn(buddy), order);
            self.stats.merges += 1;
            pfn &= buddy;
            order += 1;
        }
        // If the next-larger buddy is free, this block will likely merge soon: queue it at
        // the tail so it is not handed out first.
        let tail = order < MAX_ORDER - 2 && {
            let higher = (pfn & !((2u64 << order) - 1)) ^ (2 << order);
            self.is_free_block(pages, higher, order + 1)
        };
        self.add_to_free_list(pages, Pfn(pfn), order, mt, tail);
    }

    /// Split a block of `high` order taken from the lists down to `low`, returning the
    /// upper halves to the `mt` lists (`expand`).
    fn expand<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        pfn: u64,
        low: usize,
        high: usize,
        mt: MigrateType,
    ) {
        let mut high = high;
        while high > low {
            high -= 1;
            self.add_to_free_list(pages, Pfn(pfn + (1 << high)), high, mt, false);
            self.stats.splits += 1;
        }
    }

    /// Take a block of `order` from `mt`'s lists, splitting a larger one if needed
    /// (`__rmqueue_smallest`).
    fn rmqueue_smallest<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        order: usize,
        mt: MigrateType,
    ) -> Option<Pfn> {
        for cur in order..MAX_ORDER {
            if let Some(pfn) = self.free_area[cur].lists[mt as usize].first() {
                self.del_from_free_list(pages, pfn, cur);
                self.expand(pages, pfn.0, order, cur, mt);
                return Some(pfn);
            }
        }
        None
    }

    /// Whether a fallback may claim whole pageblocks for `start_mt` (`can_steal_fallback`).
    fn can_steal(order: usize, start_mt: MigrateType) -> bool {
        order >= PAGEBLOCK_ORDER / 2
            || start_mt == MigrateType::Reclaimable
            || start_mt == MigrateType::Unmovable
    }

    /// Move every free block inside the pageblock at `pb` to `mt`'s lists; returns the
    /// number of free frames moved (`move_freepages_block`).
    pub fn move_freepages_block<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        pb: u64,
        mt: MigrateType,
    ) -> u64 {
        let start = pb.max(self.start_pfn);
        let end = (pb + PAGEBLOCK_NR_PAGES).min(self.end_pfn);
        let mut pfn = start;
        let mut moved = 0;
        while pfn < end {
            let p = pages.page(Pfn(pfn));
            if p.test(PG_BUDDY) {
                let order = p.order as usize;
                let old = p.private as usize;
                if old != mt as usize {
                    self.free_area[order].lists[old].remove(pages, Pfn(pfn));
                    pages.page_mut(Pfn(pfn)).private = mt as u64;
                    self.free_area[order].lists[mt as usize].push_front(pages, Pfn(pfn));
                }
                moved += 1 << order;
                pfn += 1 << order;
            } else {
                pfn += 1;
            }
        }
        moved
    }

    /// Steal free memory of another migratetype for `start_mt` (`__rmqueue_fallback` and
    /// `steal_suitable_fallback`). Returns whether anything was moved to `start_mt`'s lists.
    fn rmqueue_fallback<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        order: usize,
        start_mt: MigrateType,
    ) -> bool {
        // Prefer the largest block, so the stolen pageblock is as empty as possible, unless
        // that would not claim whole pageblocks: then take the smallest that fits.
        let whole = Self::can_steal(order, start_mt);
        let orders: &mut dyn Iterator<Item = usize> = if whole {
            &mut (order..MAX_ORDER).rev()
        } else {
            &mut (order..MAX_ORDER)
        };
        for cur in orders {
            for &fmt in start_mt.fallbacks() {
                let Some(pfn) = self.free_area[cur].lists[fmt as usize].first() else {
                    continue;
                };
                self.stats.fallbacks += 1;
                if cur >= PAGEBLOCK_ORDER {
                    // The block spans whole pageblocks: relabel them all.
                    for i in (0..1u64 << cur).step_by(PAGEBLOCK_NR_PAGES as usize) {
                        Self::set_pageblock_mt(pages, pfn.add(i), start_mt);
                        self.stats.pageblocks_stolen += 1;
                    }
                    self.move_block(pages, pfn, cur, start_mt);
                } else if whole {
                    let pb = pfn.0 & !(PAGEBLOCK_NR_PAGES - 1);
                    let free = self.move_freepages_block(pages, pb, start_mt);
                    // Claim the pageblock if at least half of it is free (and so ours).
                    if free >= PAGEBLOCK_NR_PAGES / 2 {
                        Self::set_pageblock_mt(pages, Pfn(pb), start_mt);
                        self.stats.pageblocks_stolen += 1;
                    }
                } else {
                    self.move_block(pages, pfn, cur, start_mt);
                }
                return true;
            }
        }
        false
    }

    fn move_block<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        pfn: Pfn,
        order: usize,
        mt: MigrateType,
    ) {
        let old = pages.page(pfn).private as usize;
        self.free_area[order].lists[old].remove(pages, pfn);
        pages.page_mut(pfn).private = mt as u64;
        self.free_area[order].lists[mt as usize].push_front(pages, pfn);
    }

    /// Allocate `2^order` frames of type `mt` (`__rmqueue`): own lists first, then
    /// fallbacks. The block's pages come back with refcount 0 and no flags; the caller
    /// prepares them (`prep_new_page`).
    pub fn alloc<P: Pages + ?Sized>(
        &mut self,
        pages: &mut P,
        order: usize,
        mt: MigrateType,
    ) -> Option<Pfn> {
        if order >= MAX_ORDER {
            return None;
        }
        if let Some(pfn) = self.rmqueue_smallest(pages, order, mt) {
            return Some(pfn);
        }
        if (mt as usize) < MIGRATE_PCPTYPES && self.rmqueue_fallback(pages, order, mt) {
            return self.rmqueue_smallest(pages, order, mt);
        }
        None
    }

    /// Whether any block of at least `order` is free on the lists usable by ordinary
    /// allocations (part of `zone_watermark_ok`).
    pub fn has_block(&self, order: usize, include_highatomic: bool) -> bool {
        (order..MAX_ORDER).any(|o| {
            let a = &self.free_area[o];
            a.lists[..MIGRATE_PCPTYPES].iter().any(|l| !l.is_empty())
                || (include_highatomic && !a.lists[MigrateType::HighAtomic as usize].is_empty())
        })
    }

    /// Free blocks per order (a `/proc/buddyinfo` line).
    pub fn blocks_per_order(&self) -> [u64; MAX_ORDER] {
        core::array::from_fn(|o| self.free_area[o].nr_free)
    }

    /// Free blocks per order of one migratetype (a `/proc/pagetypeinfo` line).
    pub fn blocks_per_order_of(&self, mt: MigrateType) -> [u64; MAX_ORDER] {
        core::array::from_fn(|o| self.free_area[o].lists[mt as usize].len() as u64)
    }

    /// Add the unowned range `[start, end)` to the free lists in the largest aligned blocks
    /// it holds (`memblock_free_all` → `__free_pages_core`). Pages must be reserved-free
    /// descriptors with `PG_reserved` already cleared by the caller.
    pub fn free_range<P: Pages + ?Sized>(&mut self, pages: &mut P, start: Pfn, end: Pfn) {
        let mut pfn = start.0.max(self.start_pfn);
        let end = end.0.min(self.end_pfn);
        while pfn < end {
            let mut order = (MAX_ORDER - 1).min(pfn.trailing_zeros() as usize);
            while pfn + (1 << order) > end {
                order -= 1;
            }
            for i in 0..1u64 << order {
                let p = pages.page_mut(Pfn(pfn + i));
                p.flags = 0;
                p.refcount = 0;
                p.mapcount = -1;
            }
            let mt = Self::pageblock_mt(pages, Pfn(pfn));
            self.free_one(pages, Pfn(pfn), order, mt);
            pfn += 1 << order;
        }
    }

    /// Check the free lists against `struct page` (for tests and the self-test runner):
    /// every listed block is marked free with its order and list type, is aligned, lies in
    /// the zone, has no free buddy it should have merged with, and counts add up.
    pub fn check<P: Pages + ?Sized>(&self, pages: &P) -> Result<(), &'static str> {
        let mut total = 0u64;
        for (order, area) in self.free_area.iter().enumerate() {
            let mut n = 0u64;
            for (mt, list) in area.lists.iter().enumerate() {
                for pfn in list.iter(pages) {
                    let p = pages.page(pfn);
                    if !p.test(PG_BUDDY) || p.order as usize != order || p.private as usize != mt {
                        return Err(
                            "free-list page not marked as a free block of that order and type",
                        );
                    }
                    if pfn.0 & ((1 << order) - 1) != 0 {
                        return Err("free block not aligned to its order");
                    }
                    if !self.in_zone(pfn.0) || !self.in_zone(pfn.0 + (1 << order) - 1) {
                        return Err("free block outside the zone");
                    }
                    let buddy = pfn.0 ^ (1 << order);
                    if order < MAX_ORDER - 1 && self.is_free_block(pages, buddy, order) {
                        let bmt = pages.page(Pfn(buddy)).private as usize;
                        let iso = MigrateType::Isolate as usize;
                        if (bmt == iso) == (mt == iso) {
                            return Err("two free buddies left unmerged");
                        }
                    }
                    n += 1;
                }
            }
            if n != area.nr_free {
                return Err("nr_free does not match the lists");
            }
            total += n << order;
        }
        if total != self.nr_free_pages {
            return Err("nr_free_pages does not match the lists");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{MemMap, Page};
    use proptest::prelude::*;

    fn map(n: usize) -> Vec<Page> {
        vec![Page::new_reserved(); n]
    }

    fn take(pages: &mut MemMap, pfn: Pfn, order: usize) {
        for i in 0..1u64 << order {
            let p = pages.page_mut(pfn.add(i));
            p.refcount = 1;
        }
    }

    #[test]
    fn free_range_makes_maximal_blocks() {
        let mut v = map(4096);
        let mut mm = MemMap::new(&mut v, Pfn(0));
        let mut b = Buddy::new(Pfn(1), Pfn(4096));
        b.free_range(&mut mm, Pfn(1), Pfn(4096));
        // 1 + 2 + 4 + ... + 512 (orders 0..9), then 1024 blocks from 1024: 3 of order 10.
        let counts = b.blocks_per_order();
        assert_eq!(counts, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3]);
        assert_eq!(b.nr_free_pages, 4095);
        b.check(&mm).unwrap();
    }

    #[test]
    fn split_then_coalesce_back() {
        let mut v = map(1024);
        let mut mm = MemMap::new(&mut v, Pfn(0));
        let mut b = Buddy::new(Pfn(0), Pfn(1024));
        b.free_range(&mut mm, Pfn(0), Pfn(1024));
        let a = b.alloc(&mut mm, 0, MigrateType::Unmovable).unwrap();
        assert_eq!(a, Pfn(0));
        assert_eq!(b.blocks_per_order(), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
        take(&mut mm, a, 0);
        b.free(&mut mm, a, 0).unwrap();
        assert_eq!(b.blocks_per_order()[10], 1);
        assert_eq!(b.stats.merges, 10);
        b.check(&mm).unwrap();
    }

    #[test]
    fn bad_frees_are_reported() {
        let mut v = map(1024);
        let mut mm = MemMap::new(&mut v, Pfn(0));
        let mut b = Buddy::new(Pfn(0), Pfn(1024));
        b.free_range(&mut mm, Pfn(0), Pfn(1024));
        let a = b.alloc(&mut mm, 2, MigrateType::Unmovable).unwrap();
        assert_eq!(
            b.free(&mut mm, Pfn(a.0 + 1), 1),
            Err(BadFree::Misaligned(Pfn(a.0 + 1), 1))
        );
        assert_eq!(
            b.free(&mut mm, Pfn(512), 0),
            Err(BadFree::AlreadyFree(Pfn(512)))
        );
        assert_eq!(
            b.free(&mut mm, Pfn(1020), 3),
            Err(BadFree::OutOfZone(Pfn(1020)))
        );
        mm.page_mut(a).mapcount = 0;
        assert_eq!(b.free(&mut mm, a, 2), Err(BadFree::Mapped(a)));
        mm.page_mut(a).mapcount = -1;
        b.free(&mut mm, a, 2).unwrap();
        assert_eq!(b.free(&mut mm, a, 2), Err(BadFree::AlreadyFree(a)));
        b.check(&mm).unwrap();
    }

    #[test]
    fn fallback_steals_whole_pageblock_for_unmovable() {
        let mut v = map(2048);
        let mut mm = MemMap::new(&mut v, Pfn(0));
        for pb in (0..2048).step_by(512) {
            Buddy::set_pageblock_mt(&mut mm, Pfn(pb), MigrateType::Movable);
        }
        let mut b = Buddy::new(Pfn(0), Pfn(2048));
        b.free_range(&mut mm, Pfn(0), Pfn(2048));
        let a = b.alloc(&mut mm, 0, MigrateType::Unmovable).unwrap();
        assert_eq!(b.stats.fallbacks, 1);
        // The largest block (order 10) was taken: its two pageblocks became unmovable.
        assert_eq!(Buddy::pageblock_mt(&mm, a), MigrateType::Unmovable);
        assert_eq!(b.stats.pageblocks_stolen, 2);
        // The next unmovable allocation needs no fallback.
        b.alloc(&mut mm, 0, MigrateType::Unmovable).unwrap();
        assert_eq!(b.stats.fallbacks, 1);
        b.check(&mm).unwrap();
    }

    #[test]
    fn movable_small_fallback_takes_smallest_block_without_claiming() {
        let mut v = map(1024);
        let mut mm = MemMap::new(&mut v, Pfn(0));
        let mut b = Buddy::new(Pfn(0), Pfn(1024));
        b.free_range(&mut mm, Pfn(0), Pfn(1024)); // pageblocks default to Unmovable (0)
        let u = b.alloc(&mut mm, 0, MigrateType::Unmovable).unwrap();
        let m = b.alloc(&mut mm, 0, MigrateType::Movable).unwrap();
        assert_eq!(u, Pfn(0));
        assert_eq!(m, Pfn(1)); // the order-0 leftover, smallest first
        assert_eq!(Buddy::pageblock_mt(&mm, m), MigrateType::Unmovable);
        assert_eq!(b.stats.pageblocks_stolen, 0);
        b.check(&mm).unwrap();
    }

    proptest! {
        /// Random alloc/free sequences: allocations never overlap and stay aligned, the lists
        /// stay consistent, and freeing everything restores the initial blocks.
        #[test]
        fn random_alloc_free_restores_initial_state(
            ops in proptest::collection::vec((0usize..MAX_ORDER, 0usize..3, any::<bool>(), any::<u16>()), 1..300),
            start in 0u64..8, len in 600u64..3000,
        ) {
            let mut v = map(4096);
            let mut mm = MemMap::new(&mut v, Pfn(0));
            let mut b = Buddy::new(Pfn(start), Pfn(start + len));
            b.free_range(&mut mm, Pfn(start), Pfn(start + len));
            let initial = b.blocks_per_order();
            let mut live: Vec<(Pfn, usize)> = Vec::new();
            let mut owner = vec![false; 4096];
            for (order, mt, free, pick) in ops {
                if free && !live.is_empty() {
                    let (pfn, order) = live.swap_remove(pick as usize % live.len());
                    for i in 0..1u64 << order { owner[(pfn.0 + i) as usize] = false; }
                    b.free(&mut mm, pfn, order).unwrap();
                } else if let Some(pfn) = b.alloc(&mut mm, order, MigrateType::from_index(mt)) {
                    prop_assert_eq!(pfn.0 & ((1 << order) - 1), 0);
                    prop_assert!(pfn.0 >= start && pfn.0 + (1 << order) <= start + len);
                    for i in 0..1u64 << order {
                        prop_assert!(!owner[(pfn.0 + i) as usize], "overlap at {}", pfn.0 + i);
                        owner[(pfn.0 + i) as usize] = true;
                    }
                    take(&mut mm, pfn, order);
                    live.push((pfn, order));
                }
                prop_assert!(b.check(&mm).is_ok(), "{:?}", b.check(&mm));
                let used: u64 = live.iter().map(|&(_, o)| 1u64 << o).sum();
                prop_assert_eq!(b.nr_free_pages + used, len);
            }
            for (pfn, order) in live.drain(..) {
                b.free(&mut mm, pfn, order).unwrap();
            }
            prop_assert_eq!(b.blocks_per_order(), initial);
            prop_assert_eq!(b.nr_free_pages, len);
        }
    }
}
