//! Nodes, zones and the page allocator's front end (`__alloc_pages`, `__free_pages`).
//!
//! Physical memory is split into nodes (`pg_data_t`: one by default, more with
//! `numa=fake=N`), each split into zones by address: DMA below 16 MiB, DMA32 below 4 GiB,
//! Normal above. An allocation walks a *zonelist*: the zones it may use (highest allowed by
//! its GFP zone modifier down to DMA) on the preferred node, then on the other nodes. A zone
//! serves it only if its free pages stay above a watermark plus the zone's lowmem reserve
//! against the caller's highest zone. The fast path checks the `low` watermark; the slow
//! path retries at `min`, lower still for `__GFP_HIGH`/`__GFP_ATOMIC`, and ignores
//! watermarks for `__GFP_NOFAIL`/`__GFP_MEMALLOC`. There is no reclaim yet: where Linux
//! would wake kswapd or reclaim directly, we count the event (`kswapd_wakeups`, `allocstall`).
//!
//! Order-0 requests go through per-CPU lists ([`crate::pcp`]); the rest to the zone's
//! buddy allocator ([`crate::buddy`]).

use crate::addr::Pfn;
use crate::buddy::{BadFree, Buddy, MAX_ORDER, PAGEBLOCK_NR_PAGES};
use crate::gfp::{Gfp, MigrateType, ZoneType, MAX_NR_ZONES, MIGRATE_PCPTYPES};
use crate::lru::{LruList, Lruvec};
use crate::page::{flags::*, MemMap, Page, Pages, INIT_UNIT_PAGES, NO_PFN};
use crate::pcp::{zone_batchsize, PerCpuPages};
use crate::watermark::{self, WMARK_HIGH, WMARK_LOW, WMARK_MIN};
use crate::NR_CPUS;
use alloc::vec::Vec;

/// Most nodes `numa=fake=N` may create.
pub const MAX_NUMNODES: usize = 8;

/// First frame above the DMA zone (16 MiB).
pub const MAX_DMA_PFN: u64 = (16 << 20) >> crate::addr::PAGE_SHIFT;
/// First frame above the DMA32 zone (4 GiB).
pub const MAX_DMA32_PFN: u64 = (4u64 << 30) >> crate::addr::PAGE_SHIFT;

/// The frame range zone type `zt` covers on any node.
pub const fn zone_pfn_limits(zt: ZoneType) -> (u64, u64) {
    match zt {
        ZoneType::Dma => (0, MAX_DMA_PFN),
        ZoneType::Dma32 => (MAX_DMA_PFN, MAX_DMA32_PFN),
        ZoneType::Normal => (MAX_DMA32_PFN, u64::MAX),
    }
}

/// Per-zone event counters (`/proc/vmstat`, `/proc/zoneinfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneStats {
    /// Pages allocated from this zone (`pgalloc_<zone>`).
    pub pgalloc: u64,
    /// Pages freed to this zone (`pgfree`).
    pub pgfree: u64,
    /// Allocations served by this zone although another node was preferred (`numa_miss`).
    pub numa_miss: u64,
    /// Allocations served on the preferred node (`numa_hit`).
    pub numa_hit: u64,
    /// Pageblocks reserved for high-order atomic allocations.
    pub highatomic_reserved: u64,
}

/// One zone (`struct zone`).
#[derive(Clone, Debug)]
pub struct Zone {
    pub zone_type: ZoneType,
    pub node: u8,
    /// First frame of the zone's span.
    pub start_pfn: u64,
    /// Frames from the first to the last, holes included.
    pub spanned: u64,
    /// Frames of RAM in the span.
    pub present: u64,
    /// Frames given to the page allocator (present minus boot reservations).
    pub managed: u64,
    /// `[min, low, high]` in pages.
    pub watermark: [u64; 3],
    /// Pages to keep free against allocations whose highest zone is the index.
    pub lowmem_reserve: [u64; MAX_NR_ZONES],
    pub buddy: Buddy,
    pub pcp: [PerCpuPages; NR_CPUS],
    pub stats: ZoneStats,
    /// Pages in pageblocks reserved for high-order atomic allocations
    /// (`nr_reserved_highatomic`).
    pub nr_reserved_highatomic: u64,
    /// Free frames whose descriptors are not initialised yet (deferred `struct page`
    /// init): managed and counted free, handed to the buddy allocator unit by unit when
    /// it runs low ([`PageAllocator::deferred_grow`]).
    pub deferred: u64,
    /// Where the zone's next deferred unit is looked for (`first_deferred_pfn`).
    pub deferred_next: u64,
}

impl Zone {
    const fn empty(zone_type: ZoneType, node: u8) -> Zone {
        Zone {
            zone_type,
            node,
            start_pfn: 0,
            spanned: 0,
            present: 0,
            managed: 0,
            watermark: [0; 3],
            lowmem_reserve: [0; MAX_NR_ZONES],
            buddy: Buddy::new(Pfn(0), Pfn(0)),
            pcp: [PerCpuPages::new(1); NR_CPUS],
            stats: ZoneStats {
                pgalloc: 0,
                pgfree: 0,
                numa_miss: 0,
                numa_hit: 0,
                highatomic_reserved: 0,
            },
            nr_reserved_highatomic: 0,
            deferred: 0,
            deferred_next: 0,
        }
    }

    /// Whether the zone has memory to allocate (`populated_zone` / `managed_zone`).
    pub fn is_populated(&self) -> bool {
        self.managed > 0
    }

    /// Free pages (`NR_FREE_PAGES`): those in the buddy allocator and those whose
    /// descriptors are not initialised yet (per-CPU lists not included).
    pub fn free_pages(&self) -> u64 {
        self.buddy.nr_free_pages + self.deferred
    }

    /// Pages cached on the per-CPU lists.
    pub fn pcp_pages(&self) -> u64 {
        self.pcp.iter().map(|p| p.count).sum()
    }

    /// `zone_watermark_ok`: can the zone serve `order` and stay above `mark` plus the
    /// reserve for `highest` (the caller's highest usable zone)?
    pub fn watermark_ok(
        &self,
        order: usize,
        mark: u64,
        highest: ZoneType,
        flags: AllocFlags,
    ) -> bool {
        let mut min = mark as i64;
        if flags.high {
            min -= min / 2;
        }
        if flags.harder {
            min -= min / 4;
        }
        let mut free = self.free_pages() as i64 - ((1i64 << order) - 1);
        if !flags.harder {
            // The high-atomic reserve is not for ordinary allocations.
            free -= self.nr_reserved_highatomic as i64;
        }
        if free <= min + self.lowmem_reserve[highest as usize] as i64 {
            return false;
        }
        order == 0 || self.buddy.has_block(order, flags.harder)
    }
}

impl Zone {
    /// After a high-order atomic allocation from `pfn`'s pageblock, keep that pageblock for
    /// such allocations (`reserve_highatomic_pageblock`): at most 1% of the zone plus one
    /// pageblock, so that bursts of atomic high-order requests (network buffers in Linux)
    /// find blocks that ordinary allocations have not fragmented.
    fn reserve_highatomic<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) {
        let max = self.managed / 100 + PAGEBLOCK_NR_PAGES;
        if self.nr_reserved_highatomic >= max {
            return;
        }
        let mt = Buddy::pageblock_mt(pages, pfn);
        if matches!(mt, MigrateType::HighAtomic | MigrateType::Isolate) {
            return;
        }
        let pb = Pfn(pfn.0 & !(PAGEBLOCK_NR_PAGES - 1));
        Buddy::set_pageblock_mt(pages, pb, MigrateType::HighAtomic);
        self.buddy
            .move_freepages_block(pages, pb.0, MigrateType::HighAtomic);
        self.nr_reserved_highatomic += PAGEBLOCK_NR_PAGES;
        self.stats.highatomic_reserved += 1;
    }

    /// Give one reserved pageblock back to `mt` (`unreserve_highatomic_pageblock`), when an
    /// ordinary allocation is about to fail. Returns whether one was released.
    fn unreserve_highatomic<P: Pages + ?Sized>(&mut self, pages: &mut P, mt: MigrateType) -> bool {
        if self.nr_reserved_highatomic == 0 {
            return false;
        }
        let Some(pfn) = (0..MAX_ORDER)
            .find_map(|o| self.buddy.free_area[o].lists[MigrateType::HighAtomic as usize].first())
        else {
            return false;
        };
        let pb = Pfn(pfn.0 & !(PAGEBLOCK_NR_PAGES - 1));
        Buddy::set_pageblock_mt(pages, pb, mt);
        self.buddy.move_freepages_block(pages, pb.0, mt);
        self.nr_reserved_highatomic = self
            .nr_reserved_highatomic
            .saturating_sub(PAGEBLOCK_NR_PAGES);
        true
    }
}

/// A node (`pg_data_t`).
#[derive(Clone, Debug)]
pub struct Node {
    pub nid: u8,
    pub start_pfn: u64,
    pub spanned: u64,
    pub present: u64,
    pub zones: [Zone; MAX_NR_ZONES],
    /// The node's LRU lists (`pgdat->__lruvec`); their links live in `struct page`, so
    /// they are kept here, under the allocator's lock, and a page freed while on one
    /// leaves it in [`PageAllocator::free_pages`].
    pub lruvec: Lruvec,
}

impl Node {
    const fn empty(nid: u8) -> Node {
        Node {
            nid,
            start_pfn: 0,
            spanned: 0,
            present: 0,
            zones: [
                Zone::empty(ZoneType::Dma, nid),
                Zone::empty(ZoneType::Dma32, nid),
                Zone::empty(ZoneType::Normal, nid),
            ],
            lruvec: Lruvec::new(),
        }
    }
}

/// How hard an allocation attempt may push a zone (`ALLOC_*` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocFlags {
    /// Which watermark to respect (`WMARK_MIN`/`LOW`/`HIGH`).
    pub wmark: usize,
    /// `ALLOC_HIGH`: half the watermark (`__GFP_HIGH`).
    pub high: bool,
    /// `ALLOC_HARDER`: a further quarter off (`__GFP_ATOMIC`).
    pub harder: bool,
    /// `ALLOC_NO_WATERMARKS`.
    pub no_watermarks: bool,
}

/// Allocator-wide counters (`/proc/vmstat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Times an allocation fell below the low watermark (Linux wakes kswapd).
    pub kswapd_wakeups: u64,
    /// Slow-path allocations that could have reclaimed directly (`allocstall`).
    pub allocstall: u64,
    /// Allocations that failed (`order` too large included).
    pub failures: u64,
    /// Allocations that succeeded only by ignoring watermarks.
    pub no_watermark_allocs: u64,
    /// Rejected frees ("Bad page state").
    pub bad_frees: u64,
}

/// Where the frames' bytes are mapped: the kernel's direct map, or a host buffer in tests.
pub trait DirectMap {
    /// The bytes of `pfn` (`page_address`).
    fn page_address(&self, pfn: Pfn) -> *mut u8;
    /// The frame holding `addr`, if `addr` is in the direct map.
    fn virt_to_pfn(&self, addr: *const u8) -> Option<Pfn>;
}

/// The page allocator: `mem_map`, nodes and zones.
pub struct PageAllocator<'a, D: DirectMap> {
    pub mem_map: MemMap<'a>,
    pub nodes: [Node; MAX_NUMNODES],
    pub nr_nodes: usize,
    pub dm: D,
    /// `min_free_kbytes` after [`PageAllocator::setup_watermarks`].
    pub min_free_kbytes: u64,
    /// Pages the allocator keeps out of reach of ordinary allocations
    /// (`totalreserve_pages`: high watermark plus the largest lowmem reserve, per zone).
    pub totalreserve_pages: u64,
    pub stats: AllocStats,
    /// The last bad free, for the kernel to report.
    pub last_bad_free: Option<BadFree>,
    /// Free frame ranges `[start, end)` in units whose descriptors are not initialised
    /// (what Linux's deferred init finds in memblock's free ranges); a range's part inside
    /// a unit is handed out when the unit is initialised.
    deferred_ranges: [(u64, u64); MAX_DEFERRED_RANGES],
    nr_deferred_ranges: usize,
    /// Units initialised after boot (`pgdat_init` progress, for tests and reports).
    pub deferred_units_done: u64,
}

/// Most free ranges the deferred init remembers; beyond them ranges are initialised at once.
const MAX_DEFERRED_RANGES: usize = 64;
/// Frames a deferred grow initialises at least (16 MiB; Linux grows by a 128 MiB section).
pub const DEFERRED_GROW_PAGES: u64 = 4096;

/// The (node, zone index) whose span holds `pfn`, from the spans `add_memory` registered.
fn zone_index_of(nodes: &[Node], pfn: u64) -> Option<(usize, usize)> {
    for (nid, n) in nodes.iter().enumerate() {
        if pfn < n.start_pfn || pfn >= n.start_pfn + n.spanned {
            continue;
        }
        for (zi, z) in n.zones.iter().enumerate() {
            if z.spanned > 0 && pfn >= z.start_pfn && pfn < z.start_pfn + z.spanned {
                return Some((nid, zi));
            }
        }
    }
    None
}

impl<'a, D: DirectMap> PageAllocator<'a, D> {
    /// An allocator with no memory, constant so that the kernel can keep it in a static
    /// (it is tens of KiB: building it on a kernel stack and moving it would overflow).
    pub const fn new(dm: D) -> Self {
        PageAllocator {
            mem_map: MemMap::empty(),
            nodes: [const { Node::empty(0) }; MAX_NUMNODES],
            nr_nodes: 1,
            dm,
            min_free_kbytes: 0,
            totalreserve_pages: 0,
            stats: AllocStats {
                kswapd_wakeups: 0,
                allocstall: 0,
                failures: 0,
                no_watermark_allocs: 0,
                bad_frees: 0,
            },
            last_bad_free: None,
            deferred_ranges: [(0, 0); MAX_DEFERRED_RANGES],
            nr_deferred_ranges: 0,
            deferred_units_done: 0,
        }
    }

    /// Give the allocator its `mem_map` and `nr_nodes` empty nodes. Every descriptor must be
    /// reserved ([`crate::page::Page::new_reserved`]); memory is added with
    /// [`PageAllocator::add_memory`] and then freed with [`PageAllocator::free_boot_range`].
    pub fn init(&mut self, mem_map: MemMap<'a>, nr_nodes: usize) {
        self.mem_map = mem_map;
        self.nr_nodes = nr_nodes.clamp(1, MAX_NUMNODES);
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.nid = i as u8;
            n.start_pfn = 0;
            n.spanned = 0;
            n.present = 0;
            for (zi, z) in n.zones.iter_mut().enumerate() {
                z.node = i as u8;
                z.zone_type = ZoneType::ALL[zi];
            }
        }
    }

    /// Register RAM `[start, end)` on node `nid` (`free_area_init`): grows the node's and
    /// zones' spans, counts present pages, labels descriptors with zone and node, and sets
    /// pageblocks movable (the boot default).
    pub fn add_memory(&mut self, nid: usize, start: Pfn, end: Pfn) {
        let end = Pfn(end.0.min(self.mem_map.end_pfn().0));
        if nid >= self.nr_nodes || start >= end {
            return;
        }
        let node = &mut self.nodes[nid];
        let span_end = (node.start_pfn + node.spanned).max(end.0);
        node.start_pfn = if node.spanned == 0 {
            start.0
        } else {
            node.start_pfn.min(start.0)
        };
        node.spanned = span_end - node.start_pfn;
        node.present += end.0 - start.0;
        for zt in ZoneType::ALL {
            let (lo, hi) = zone_pfn_limits(zt);
            let (s, e) = (start.0.max(lo), end.0.min(hi));
            if s >= e {
                continue;
            }
            let z = &mut node.zones[zt as usize];
            let zend = (z.start_pfn + z.spanned).max(e);
            z.start_pfn = if z.spanned == 0 {
                s
            } else {
                z.start_pfn.min(s)
            };
            z.spanned = zend - z.start_pfn;
            z.present += e - s;
            z.buddy = Buddy::new(Pfn(z.start_pfn), Pfn(z.start_pfn + z.spanned));
            // Descriptors of units not initialised yet get their labels when they are.
            let mut pfn = s;
            while pfn < e {
                let uend = ((pfn | (INIT_UNIT_PAGES - 1)) + 1).min(e);
                if self.mem_map.is_initialised(Pfn(pfn)) {
                    for f in pfn..uend {
                        let p = self.mem_map.page_mut(Pfn(f));
                        p.zone = zt as u8;
                        p.node = nid as u8;
                    }
                    let first_pb = pfn & !(PAGEBLOCK_NR_PAGES - 1);
                    for pb in (first_pb..uend).step_by(PAGEBLOCK_NR_PAGES as usize) {
                        if self.mem_map.contains(Pfn(pb)) {
                            Buddy::set_pageblock_mt(
                                &mut self.mem_map,
                                Pfn(pb),
                                MigrateType::Movable,
                            );
                        }
                    }
                }
                pfn = uend;
            }
        }
    }

    /// Hand free boot memory `[start, end)` to the buddy allocators of the zones it spans
    /// (`memblock_free_all`); the pages become managed. Frames in units whose descriptors
    /// are not initialised yet are remembered as deferred: managed and free, but handed
    /// to the buddy allocator only when their unit is initialised.
    pub fn free_boot_range(&mut self, start: Pfn, end: Pfn) {
        let end = end.0.min(self.mem_map.end_pfn().0);
        let mut pfn = start.0;
        while pfn < end {
            if !self.mem_map.contains(Pfn(pfn)) {
                return;
            }
            let Some((nid, zi)) = zone_index_of(&self.nodes[..self.nr_nodes], pfn) else {
                return; // not registered with add_memory: stays reserved
            };
            let z = &self.nodes[nid].zones[zi];
            let zend = (z.start_pfn + z.spanned).min(end);
            let mut p = pfn;
            while p < zend {
                let mut q = ((p | (INIT_UNIT_PAGES - 1)) + 1).min(zend);
                if self.mem_map.is_initialised(Pfn(p)) {
                    while q < zend && self.mem_map.is_initialised(Pfn(q)) {
                        q = ((q | (INIT_UNIT_PAGES - 1)) + 1).min(zend);
                    }
                    let z = &mut self.nodes[nid].zones[zi];
                    z.buddy.free_range(&mut self.mem_map, Pfn(p), Pfn(q));
                } else {
                    self.defer_range(nid, zi, p, q);
                }
                p = q;
            }
            self.nodes[nid].zones[zi].managed += zend - pfn;
            pfn = zend;
        }
    }

    /// Remember `[s, e)` (inside one uninitialised unit of zone `zi` of node `nid`) as
    /// deferred free memory, or, when the zone's grow cursor has passed the unit or there
    /// is no room to remember it, initialise the unit now and free the range.
    fn defer_range(&mut self, nid: usize, zi: usize, s: u64, e: u64) {
        let z = &self.nodes[nid].zones[zi];
        let unit = s & !(INIT_UNIT_PAGES - 1);
        let passed = unit < z.deferred_next;
        let n = self.nr_deferred_ranges;
        if !passed && n > 0 && self.deferred_ranges[n - 1].1 == s {
            self.deferred_ranges[n - 1].1 = e;
        } else if !passed && n < MAX_DEFERRED_RANGES {
            self.deferred_ranges[n] = (s, e);
            self.nr_deferred_ranges += 1;
        } else {
            self.init_unit(Pfn(s));
            let z = &mut self.nodes[nid].zones[zi];
            z.buddy.free_range(&mut self.mem_map, Pfn(s), Pfn(e));
            return;
        }
        self.nodes[nid].zones[zi].deferred += e - s;
    }

    /// Whether a deferred free range meets the unit at `unit`.
    fn unit_has_deferred(&self, unit: u64) -> bool {
        self.deferred_ranges[..self.nr_deferred_ranges]
            .iter()
            .any(|&(s, e)| s < unit + INIT_UNIT_PAGES && e > unit)
    }

    /// Initialise the descriptors of the unit holding `pfn` (`deferred_init_pages`: every
    /// frame reserved, labelled with its zone and node, pageblocks movable), then free
    /// its deferred free frames to their zones (`deferred_free_pages`). Returns the frames
    /// freed; nothing if the unit was initialised already.
    fn init_unit(&mut self, pfn: Pfn) -> u64 {
        if !self.mem_map.is_deferred() || self.mem_map.is_initialised(pfn) {
            return 0;
        }
        let nodes = &self.nodes[..self.nr_nodes];
        let (first, pages) = self.mem_map.unit_mut(pfn);
        let (mut lo, mut hi, mut label) = (0u64, 0u64, (0u8, 0u8));
        for (i, p) in pages.iter_mut().enumerate() {
            let f = first.0 + i as u64;
            if f < lo || f >= hi {
                // Frames outside every zone (holes) keep node 0, zone 0, as at boot.
                (lo, hi, label) = match zone_index_of(nodes, f) {
                    Some((nid, zi)) => {
                        let z = &nodes[nid].zones[zi];
                        (z.start_pfn, z.start_pfn + z.spanned, (nid as u8, zi as u8))
                    }
                    None => (f, f + 1, (0, 0)),
                };
            }
            let mut pg = Page::new_reserved();
            pg.node = label.0;
            pg.zone = label.1;
            *p = pg;
        }
        let len = pages.len() as u64;
        for pb in (first.0..first.0 + len).step_by(PAGEBLOCK_NR_PAGES as usize) {
            Buddy::set_pageblock_mt(&mut self.mem_map, Pfn(pb), MigrateType::Movable);
        }
        self.mem_map.set_initialised(first);
        self.deferred_units_done += 1;
        let (us, ue) = (first.0, first.0 + len);
        let mut freed = 0;
        for k in 0..self.nr_deferred_ranges {
            let (rs, re) = self.deferred_ranges[k];
            let (s, e) = (rs.max(us), re.min(ue));
            let mut p = s;
            while p < e {
                let Some((nid, zi)) = zone_index_of(&self.nodes[..self.nr_nodes], p) else {
                    break;
                };
                let z = &mut self.nodes[nid].zones[zi];
                let ze = (z.start_pfn + z.spanned).min(e);
                z.buddy.free_range(&mut self.mem_map, Pfn(p), Pfn(ze));
                z.deferred = z.deferred.saturating_sub(ze - p);
                freed += ze - p;
                p = ze;
            }
        }
        freed
    }

    /// Initialise deferred units of zone `zi` of node `nid`, in address order, until at
    /// least `want` frames were freed or none are left (`deferred_grow_zone`). Units with
    /// no free frame (holes, boot reservations such as `mem_map` itself) are left
    /// uninitialised. Returns whether any frame was freed.
    pub fn deferred_grow(&mut self, nid: usize, zi: usize, want: u64) -> bool {
        let mut freed = 0;
        loop {
            let z = &self.nodes[nid].zones[zi];
            if z.deferred == 0 || freed >= want {
                break;
            }
            let zend = z.start_pfn + z.spanned;
            let unit = z.deferred_next.max(z.start_pfn & !(INIT_UNIT_PAGES - 1));
            if unit >= zend {
                // Nothing left to find: the count was wrong; never loop on it.
                self.nodes[nid].zones[zi].deferred = 0;
                break;
            }
            self.nodes[nid].zones[zi].deferred_next = unit + INIT_UNIT_PAGES;
            if !self.mem_map.is_initialised(Pfn(unit)) && self.unit_has_deferred(unit) {
                freed += self.init_unit(Pfn(unit));
            }
        }
        freed > 0
    }

    /// Before zone `zi` of node `nid` serves an `order` request: while it has deferred
    /// frames and its buddy allocator is below the high watermark (or has no block of
    /// that order), initialise more (Linux grows when the watermark check fails).
    #[inline]
    fn deferred_fill(&mut self, nid: usize, zi: usize, order: usize) {
        if self.nodes[nid].zones[zi].deferred == 0 {
            return;
        }
        self.deferred_fill_slow(nid, zi, order);
    }

    #[inline(never)]
    fn deferred_fill_slow(&mut self, nid: usize, zi: usize, order: usize) {
        loop {
            let z = &self.nodes[nid].zones[zi];
            let enough = z.buddy.nr_free_pages >= z.watermark[WMARK_HIGH] + (1 << order)
                && (order == 0 || z.buddy.has_block(order, false));
            if enough || !self.deferred_grow(nid, zi, DEFERRED_GROW_PAGES) {
                break;
            }
        }
    }

    /// Initialise every deferred unit (what Linux's `pgdatinit` threads finish before
    /// user space starts; here for reports and tests that look at the free lists).
    pub fn deferred_init_all(&mut self) {
        for nid in 0..self.nr_nodes {
            for zi in 0..MAX_NR_ZONES {
                self.deferred_grow(nid, zi, u64::MAX);
            }
        }
    }

    /// Free frames not initialised yet, in all zones.
    pub fn nr_deferred_pages(&self) -> u64 {
        self.zones().map(|z| z.deferred).sum()
    }

    /// Compute watermarks, lowmem reserves, `totalreserve_pages` and per-CPU batch sizes
    /// from the managed pages (`init_per_zone_wmark_min`, `zone_pcp_init`).
    pub fn setup_watermarks(&mut self) {
        let total: u64 = self.zones().map(|z| z.managed).sum();
        self.min_free_kbytes = watermark::min_free_kbytes(total);
        let mut reserve_total = 0;
        for n in 0..self.nr_nodes {
            let managed: [u64; MAX_NR_ZONES] =
                core::array::from_fn(|i| self.nodes[n].zones[i].managed);
            for (i, z) in self.nodes[n].zones.iter_mut().enumerate() {
                z.watermark = watermark::zone_watermark(z.managed, total, self.min_free_kbytes);
                z.lowmem_reserve = watermark::lowmem_reserve(&managed, i);
                let max_reserve = z.lowmem_reserve.iter().copied().max().unwrap_or(0);
                reserve_total += (max_reserve + z.watermark[WMARK_HIGH]).min(z.managed);
                let batch = zone_batchsize(z.managed).max(1);
                for pcp in &mut z.pcp {
                    if pcp.count == 0 {
                        *pcp = PerCpuPages::new(batch);
                    }
                }
            }
        }
        self.totalreserve_pages = reserve_total;
    }

    /// Every zone of every node, node-major.
    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.nodes[..self.nr_nodes]
            .iter()
            .flat_map(|n| n.zones.iter())
    }

    /// Managed pages (`totalram_pages`).
    pub fn totalram_pages(&self) -> u64 {
        self.zones().map(|z| z.managed).sum()
    }

    /// Free pages in all buddy allocators (`NR_FREE_PAGES`, what MemFree shows).
    pub fn nr_free_pages(&self) -> u64 {
        self.zones().map(|z| z.free_pages()).sum()
    }

    /// Pages cached on per-CPU lists.
    pub fn pcp_pages(&self) -> u64 {
        self.zones().map(|z| z.pcp_pages()).sum()
    }

    /// The node of the CPU (one CPU per machine for now: node 0).
    pub fn numa_node_id(&self, _cpu: usize) -> usize {
        0
    }

    /// The zonelist for an allocation: `(node, zone)` pairs, preferred node first, highest
    /// allowed zone first within a node (Linux's default node ordering).
    fn zonelist(
        &self,
        preferred: usize,
        highest: ZoneType,
        thisnode: bool,
    ) -> impl Iterator<Item = (usize, usize)> {
        let nr = self.nr_nodes;
        let nodes = if thisnode { 1 } else { nr };
        (0..nodes).flat_map(move |k| {
            let nid = (preferred + k) % nr;
            (0..=highest as usize).rev().map(move |z| (nid, z))
        })
    }

    /// One pass over the zonelist (`get_page_from_freelist`).
    fn get_page_from_freelist(
        &mut self,
        gfp: Gfp,
        order: usize,
        preferred: usize,
        cpu: usize,
        flags: AllocFlags,
    ) -> Option<Pfn> {
        let highest = gfp.zone();
        let mt = gfp.migratetype();
        let thisnode = gfp.contains(Gfp::THISNODE);
        let cpu = cpu % NR_CPUS;
        for (nid, zi) in self.zonelist(preferred, highest, thisnode) {
            if !self.nodes[nid].zones[zi].is_populated() {
                continue;
            }
            self.deferred_fill(nid, zi, order);
            let z = &mut self.nodes[nid].zones[zi];
            if !flags.no_watermarks
                && !z.watermark_ok(order, z.watermark[flags.wmark], highest, flags)
            {
                continue;
            }
            let got = if order == 0 && (mt as usize) < MIGRATE_PCPTYPES {
                z.pcp[cpu].alloc(&mut z.buddy, &mut self.mem_map, mt)
            } else {
                let mut g = None;
                if flags.harder && order > 0 {
                    g = z
                        .buddy
                        .alloc(&mut self.mem_map, order, MigrateType::HighAtomic);
                }
                g.or_else(|| z.buddy.alloc(&mut self.mem_map, order, mt))
            };
            if let Some(pfn) = got {
                if flags.harder && order > 0 {
                    z.reserve_highatomic(&mut self.mem_map, pfn);
                }
                z.stats.pgalloc += 1 << order;
                if nid == preferred {
                    z.stats.numa_hit += 1;
                } else {
                    z.stats.numa_miss += 1;
                }
                return Some(pfn);
            }
        }
        None
    }

    /// `__alloc_pages(gfp, order, preferred_nid)`: `2^order` contiguous frames or `None`.
    /// `nid` `None` means the CPU's node.
    pub fn alloc_pages(
        &mut self,
        gfp: Gfp,
        order: usize,
        nid: Option<usize>,
        cpu: usize,
    ) -> Option<Pfn> {
        if order >= MAX_ORDER {
            self.stats.failures += 1;
            return None;
        }
        let preferred = nid
            .unwrap_or_else(|| self.numa_node_id(cpu))
            .min(self.nr_nodes - 1);
        let fast = AllocFlags {
            wmark: WMARK_LOW,
            ..AllocFlags::default()
        };
        let mut got = self.get_page_from_freelist(gfp, order, preferred, cpu, fast);
        if got.is_none() {
            // Slow path. Linux wakes kswapd here, then retries at the min watermark with the
            // caller's privileges, then reclaims/compacts directly if it may sleep.
            if gfp.contains(Gfp::KSWAPD_RECLAIM) {
                self.stats.kswapd_wakeups += 1;
            }
            let slow = AllocFlags {
                wmark: WMARK_MIN,
                high: gfp.contains(Gfp::HIGH),
                harder: gfp.contains(Gfp::ATOMIC) && !gfp.contains(Gfp::NOMEMALLOC),
                no_watermarks: false,
            };
            got = self.get_page_from_freelist(gfp, order, preferred, cpu, slow);
            if got.is_none() && gfp.contains(Gfp::DIRECT_RECLAIM) {
                // Where Linux would reclaim: give back high-atomic reserves and the per-CPU
                // lists' pages, then retry once (`__alloc_pages_direct_reclaim`).
                self.stats.allocstall += 1;
                let mt = gfp.migratetype();
                for n in &mut self.nodes[..self.nr_nodes] {
                    for z in &mut n.zones {
                        z.unreserve_highatomic(&mut self.mem_map, mt);
                    }
                }
                self.drain_all();
                got = self.get_page_from_freelist(gfp, order, preferred, cpu, slow);
            }
            let may_ignore = gfp.contains(Gfp::NOFAIL)
                || (gfp.contains(Gfp::MEMALLOC) && !gfp.contains(Gfp::NOMEMALLOC));
            if got.is_none() && may_ignore {
                let reserve = AllocFlags {
                    no_watermarks: true,
                    ..slow
                };
                got = self.get_page_from_freelist(gfp, order, preferred, cpu, reserve);
                if got.is_some() {
                    self.stats.no_watermark_allocs += 1;
                }
            }
        }
        let Some(pfn) = got else {
            self.stats.failures += 1;
            return None;
        };
        self.prep_new_page(pfn, order, gfp);
        Some(pfn)
    }

    /// Set up freshly allocated pages (`prep_new_page`): a reference on the first page,
    /// compound-page marks for `__GFP_COMP`, zeroing for `__GFP_ZERO`.
    fn prep_new_page(&mut self, pfn: Pfn, order: usize, gfp: Gfp) {
        let n = 1u64 << order;
        let compound = order > 0 && gfp.contains(Gfp::COMP);
        for i in 0..n {
            let p = self.mem_map.page_mut(pfn.add(i));
            p.flags = 0;
            p.refcount = (i == 0) as i32;
            p.mapcount = -1;
            p.order = 0;
            p.private = 0;
            p.mapping = 0;
            p.index = 0;
            p.compound_head = NO_PFN;
            if compound {
                if i == 0 {
                    p.set(PG_HEAD);
                    p.order = order as u8;
                } else {
                    p.set(PG_TAIL);
                    p.compound_head = pfn.0 as u32;
                }
            }
        }
        if gfp.contains(Gfp::ZERO) {
            for i in 0..n {
                let va = self.dm.page_address(pfn.add(i));
                // SAFETY: the frame was just allocated, so nobody else uses its bytes, and the
                // direct map covers every managed frame.
                unsafe { core::ptr::write_bytes(va, 0, crate::addr::PAGE_SIZE as usize) };
            }
        }
    }

    /// Take a reference (`get_page`).
    pub fn get_page(&mut self, pfn: Pfn) {
        self.mem_map.page_mut(pfn).refcount += 1;
    }

    /// `__free_pages(page, order)`: drop a reference; the block is freed when it was the
    /// last. A bad free (double free, wrong order of a compound page, reserved or mapped
    /// page) is refused, counted and reported in `last_bad_free`.
    pub fn free_pages(&mut self, pfn: Pfn, order: usize, cpu: usize) -> Result<(), BadFree> {
        self.free_pages_hint(pfn, order, cpu, false)
    }

    /// [`PageAllocator::free_pages`] for a page whose contents are cold (not recently
    /// touched, e.g. after DMA): it goes to the tail of the per-CPU list, to be reused last.
    pub fn free_cold_page(&mut self, pfn: Pfn, cpu: usize) -> Result<(), BadFree> {
        self.free_pages_hint(pfn, 0, cpu, true)
    }

    fn free_pages_hint(
        &mut self,
        pfn: Pfn,
        order: usize,
        cpu: usize,
        cold: bool,
    ) -> Result<(), BadFree> {
        let r = self.try_free_pages(pfn, order, cpu, cold);
        if let Err(e) = r {
            self.stats.bad_frees += 1;
            self.last_bad_free = Some(e);
        }
        r
    }

    fn try_free_pages(
        &mut self,
        pfn: Pfn,
        order: usize,
        cpu: usize,
        cold: bool,
    ) -> Result<(), BadFree> {
        let Some(p) = self.mem_map.get(pfn) else {
            return Err(BadFree::OutOfZone(pfn));
        };
        if p.test(PG_TAIL) || (p.test(PG_HEAD) && p.order as usize != order) {
            return Err(BadFree::Misaligned(pfn, order));
        }
        if p.flags & (PG_BUDDY | PG_PCP) != 0 || p.refcount <= 0 {
            return Err(BadFree::AlreadyFree(pfn));
        }
        if p.test(PG_RESERVED) {
            return Err(BadFree::Reserved(pfn));
        }
        let (nid, zi) = (p.node as usize, p.zone as usize);
        self.mem_map.page_mut(pfn).refcount -= 1;
        if self.mem_map.page(pfn).refcount > 0 {
            return Ok(());
        }
        if self.mem_map.page(pfn).test(PG_LRU) {
            // The last reference of a page on an LRU list (`__page_cache_release`).
            self.nodes[nid].lruvec.del(&mut self.mem_map, pfn);
        }
        let z = &mut self.nodes[nid].zones[zi];
        let mt = Buddy::pageblock_mt(&self.mem_map, pfn);
        if order == 0 && (mt as usize) < MIGRATE_PCPTYPES {
            let pg = self.mem_map.page(pfn);
            if pg.mapcount != -1 {
                self.mem_map.page_mut(pfn).refcount = 1;
                return Err(BadFree::Mapped(pfn));
            }
            let pg = self.mem_map.page_mut(pfn);
            pg.flags = 0;
            pg.mapping = 0;
            pg.index = 0;
            pg.private = 0;
            pg.compound_head = NO_PFN;
            z.pcp[cpu % NR_CPUS].free(&mut z.buddy, &mut self.mem_map, pfn, mt, cold);
        } else {
            for i in 0..1u64 << order {
                self.mem_map.page_mut(pfn.add(i)).clear(PG_HEAD | PG_TAIL);
            }
            if let Err(e) = z.buddy.free(&mut self.mem_map, pfn, order) {
                self.mem_map.page_mut(pfn).refcount = 1;
                return Err(e);
            }
        }
        z.stats.pgfree += 1 << order;
        Ok(())
    }

    /// The LRU lists of node `nid`.
    pub fn lruvec(&self, nid: usize) -> &Lruvec {
        &self.nodes[nid.min(self.nr_nodes - 1)].lruvec
    }

    /// Put `pfn` on its node's LRU list for its flags (`lruvec_add_folio`).
    pub fn lru_add(&mut self, pfn: Pfn) {
        let nid = self.mem_map.page(pfn).node as usize;
        self.nodes[nid].lruvec.add(&mut self.mem_map, pfn);
    }

    /// Move `pfn`, which is on an LRU list, to list `to` (activation, deactivation).
    pub fn lru_move(&mut self, pfn: Pfn, to: LruList) {
        let nid = self.mem_map.page(pfn).node as usize;
        self.nodes[nid].lruvec.move_to(&mut self.mem_map, pfn, to);
    }

    /// Take up to `nr` pages from the tail of `list` off the LRU for reclaim
    /// (`isolate_lru_folios`), each with a reference for the caller, skipping locked pages
    /// and pages under writeback. Returns how many were scanned.
    /// `also` narrows the choice further (a memory cgroup's reclaim takes only its own
    /// pages).
    pub fn lru_isolate(
        &mut self,
        nid: usize,
        list: LruList,
        nr: u64,
        dst: &mut Vec<Pfn>,
        also: &dyn Fn(&crate::page::Page) -> bool,
    ) -> u64 {
        let nid = nid.min(self.nr_nodes - 1);
        let before = dst.len();
        let stats =
            self.nodes[nid]
                .lruvec
                .isolate_tail(&mut self.mem_map, list, nr, dst, |_, p| {
                    p.flags & (PG_LOCKED | PG_WRITEBACK) == 0 && p.refcount > 0 && also(p)
                });
        for &pfn in &dst[before..] {
            self.mem_map.page_mut(pfn).refcount += 1;
        }
        stats.scanned
    }

    /// Take `pfn` off its LRU list for reclaim (`folio_isolate_lru`), if it is on one and
    /// not locked or under writeback; the caller already holds the reference that the
    /// isolation keeps.
    pub fn lru_isolate_page(&mut self, pfn: Pfn) -> bool {
        let p = self.mem_map.page(pfn);
        if !p.test(PG_LRU) || p.flags & (PG_LOCKED | PG_WRITEBACK) != 0 {
            return false;
        }
        let nid = p.node as usize;
        self.nodes[nid].lruvec.del(&mut self.mem_map, pfn);
        true
    }

    /// Return an isolated page to the LRU list its flags name now (`folio_putback_lru`).
    /// The caller then drops its isolation reference.
    pub fn lru_putback(&mut self, pfn: Pfn) {
        if !self.mem_map.page(pfn).test(PG_LRU) {
            self.lru_add(pfn);
        }
    }

    /// Whether some zone of node `nid` is above its high watermark for allocations that
    /// may use any zone (`pgdat_balanced`, with the lowmem reserves of the highest zone).
    pub fn node_balanced(&self, nid: usize) -> bool {
        let node = &self.nodes[nid.min(self.nr_nodes - 1)];
        let Some(highest) = node.zones.iter().rposition(|z| z.is_populated()) else {
            return true;
        };
        let highest_type = node.zones[highest].zone_type;
        node.zones[..=highest].iter().any(|z| {
            z.is_populated()
                && z.watermark_ok(
                    0,
                    z.watermark[WMARK_HIGH],
                    highest_type,
                    AllocFlags::default(),
                )
        })
    }

    /// Pages node `nid` lacks to have its largest zone at the high watermark (kswapd's
    /// reclaim target).
    pub fn high_wmark_deficit(&self, nid: usize) -> u64 {
        let node = &self.nodes[nid.min(self.nr_nodes - 1)];
        node.zones
            .iter()
            .filter(|z| z.is_populated())
            .map(|z| z.watermark[WMARK_HIGH].saturating_sub(z.free_pages()))
            .max()
            .unwrap_or(0)
    }

    /// Return every per-CPU page to the buddy allocators (`drain_all_pages`).
    pub fn drain_all(&mut self) {
        for n in &mut self.nodes[..self.nr_nodes] {
            for z in &mut n.zones {
                for pcp in &mut z.pcp {
                    pcp.drain(&mut z.buddy, &mut self.mem_map);
                }
            }
        }
    }

    /// The zone a frame belongs to.
    pub fn zone_of(&self, pfn: Pfn) -> Option<&Zone> {
        let p = self.mem_map.get(pfn)?;
        self.nodes.get(p.node as usize)?.zones.get(p.zone as usize)
    }

    /// Check every zone's lists against `struct page`.
    pub fn check(&self) -> Result<(), &'static str> {
        for z in self.zones() {
            z.buddy.check(&self.mem_map)?;
            for pcp in &z.pcp {
                pcp.check(&self.mem_map)?;
            }
        }
        Ok(())
    }
}

/// `PageAllocator` as the page source of SLUB and kmalloc (CPU 0).
impl<D: DirectMap> Pages for PageAllocator<'_, D> {
    fn page(&self, pfn: Pfn) -> &crate::page::Page {
        self.mem_map.page(pfn)
    }
    fn page_mut(&mut self, pfn: Pfn) -> &mut crate::page::Page {
        self.mem_map.page_mut(pfn)
    }
}

impl<D: DirectMap> crate::page::PageProvider for PageAllocator<'_, D> {
    fn alloc_pages(&mut self, gfp: Gfp, order: u32) -> Option<Pfn> {
        PageAllocator::alloc_pages(self, gfp, order as usize, None, 0)
    }
    fn free_pages(&mut self, pfn: Pfn, order: u32) {
        let _ = PageAllocator::free_pages(self, pfn, order as usize, 0);
    }
    fn page_address(&self, pfn: Pfn) -> *mut u8 {
        self.dm.page_address(pfn)
    }
    fn virt_to_pfn(&self, addr: *const u8) -> Option<Pfn> {
        self.dm.virt_to_pfn(addr)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::page::Page;
    use proptest::prelude::*;

    /// No bytes behind the frames: ZERO is not used with this map.
    pub struct NoMemory;
    impl DirectMap for NoMemory {
        fn page_address(&self, _: Pfn) -> *mut u8 {
            core::ptr::null_mut()
        }
        fn virt_to_pfn(&self, _: *const u8) -> Option<Pfn> {
            None
        }
    }

    /// A 64 MiB machine shaped like a PC: RAM at 4 KiB..640 KiB and 1 MiB..64 MiB.
    fn pc(v: &mut [Page], nodes: usize) -> PageAllocator<'_, NoMemory> {
        let mm = MemMap::new(v, Pfn(0));
        let mut a = PageAllocator::new(NoMemory);
        a.init(mm, nodes);
        let per = 16384 / nodes as u64;
        for n in 0..nodes as u64 {
            let (s, e) = ((n * per).max(256), (n + 1) * per);
            if n == 0 {
                a.add_memory(0, Pfn(1), Pfn(160));
            }
            a.add_memory(n as usize, Pfn(s), Pfn(e));
            if n == 0 {
                a.free_boot_range(Pfn(1), Pfn(160));
            }
            a.free_boot_range(Pfn(s), Pfn(e));
        }
        a.setup_watermarks();
        a
    }

    /// The 64 MiB PC with only the first 8 MiB of descriptors initialised at boot: the
    /// rest is counted free and managed, initialised unit by unit as allocations need it,
    /// reserved frames inside a deferred unit stay reserved, and after everything is
    /// initialised the allocator is the one a full boot builds.
    #[test]
    fn deferred_struct_page_init() {
        let mut v = vec![Page::new_reserved(); 16384];
        let mut full = pc(&mut v, 1);
        full.drain_all();
        let (full_total, full_free) = (full.totalram_pages(), full.nr_free_pages());
        // Garbage in the descriptors not initialised: nothing may read it.
        let mut v = vec![Page::new_reserved(); 16384];
        let mut junk = Page::new_reserved();
        junk.flags = PG_BUDDY;
        junk.order = 3;
        junk.mapcount = 7;
        for p in &mut v[2048..] {
            *p = junk.clone();
        }
        let mut bits = vec![0u64; 1];
        bits[0] = 0b11; // units 0 and 1: frames 0..2048
        let mm = MemMap::new_deferred(&mut v, Pfn(0), &mut bits);
        let mut a = PageAllocator::new(NoMemory);
        a.init(mm, 1);
        a.add_memory(0, Pfn(1), Pfn(160));
        a.add_memory(0, Pfn(256), Pfn(16384));
        a.free_boot_range(Pfn(1), Pfn(160));
        a.free_boot_range(Pfn(256), Pfn(9000)); // 9000..9100 reserved (as a boot module)
        a.free_boot_range(Pfn(9100), Pfn(16384));
        a.setup_watermarks();
        assert_eq!(a.totalram_pages(), full_total - 100);
        assert_eq!(a.nr_free_pages(), full_free - 100);
        assert_eq!(a.nr_deferred_pages(), 16384 - 2048 - 100);
        assert!(a.mem_map.get(Pfn(5000)).is_none());
        assert!(a.mem_map.iter().all(|(p, _)| p.0 < 2048));
        a.check().unwrap();
        // Allocate everything: the deferred units come in as needed.
        let mut got = Vec::new();
        while let Some(p) = a.alloc_pages(Gfp::KERNEL, 0, None, 0) {
            got.push(p);
        }
        assert_eq!(a.nr_deferred_pages(), 0);
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "a frame handed out twice");
        assert!(got.iter().all(|p| !(9000..9100).contains(&p.0)));
        assert!(a.mem_map.get(Pfn(9050)).unwrap().test(PG_RESERVED));
        for p in got {
            a.free_pages(p, 0, 0).unwrap();
        }
        a.drain_all();
        a.check().unwrap();
        assert_eq!(a.nr_free_pages(), full_free - 100);
        // The boot module is freed later (as the initrd is): it joins the free lists.
        a.free_boot_range(Pfn(9000), Pfn(9100));
        assert_eq!(a.nr_free_pages(), full_free);
        assert_eq!(a.totalram_pages(), full_total);
        assert_eq!(
            a.nodes[0].zones[1].buddy.blocks_per_order(),
            full.nodes[0].zones[1].buddy.blocks_per_order()
        );
        a.check().unwrap();
    }

    /// A boot module freed into a unit the grow cursor has not reached is deferred too.
    #[test]
    fn deferred_free_of_a_boot_module() {
        let mut v = vec![Page::new_reserved(); 16384];
        let mut bits = vec![0b11u64; 1];
        let mut a = PageAllocator::new(NoMemory);
        a.init(MemMap::new_deferred(&mut v, Pfn(0), &mut bits), 1);
        a.add_memory(0, Pfn(256), Pfn(16384));
        a.free_boot_range(Pfn(256), Pfn(12000));
        a.setup_watermarks();
        let before = a.nr_free_pages();
        a.free_boot_range(Pfn(12000), Pfn(12100));
        assert_eq!(a.nr_free_pages(), before + 100);
        a.deferred_init_all();
        assert_eq!(a.nr_deferred_pages(), 0);
        assert_eq!(a.nr_free_pages(), before + 100);
        assert!(a
            .mem_map
            .get(Pfn(12050))
            .is_some_and(|p| p.test(PG_BUDDY) || !p.test(PG_RESERVED)));
        // Frames never freed (12100..) stay reserved once their unit is initialised.
        assert!(a.mem_map.get(Pfn(12200)).unwrap().test(PG_RESERVED));
        a.check().unwrap();
    }

    #[test]
    fn zones_split_at_16_mib() {
        let mut v = vec![Page::new_reserved(); 16384];
        let a = pc(&mut v, 1);
        let dma = &a.nodes[0].zones[0];
        let dma32 = &a.nodes[0].zones[1];
        assert_eq!(
            (dma.start_pfn, dma.spanned, dma.present),
            (1, 4095, 159 + 3840)
        );
        assert_eq!((dma32.start_pfn, dma32.spanned), (4096, 12288));
        assert_eq!(a.totalram_pages(), 159 + 16128);
        assert_eq!(a.nr_free_pages(), a.totalram_pages());
        assert!(dma32.lowmem_reserve[1] == 0 && dma.lowmem_reserve[1] == 12288 / 256);
        // 16,287 pages = 65,148 KiB: min_free_kbytes = sqrt(16 * 65148) = 1020 → 255 pages,
        // split by zone size.
        assert_eq!(a.min_free_kbytes, 1020);
        assert_eq!(dma32.watermark[WMARK_MIN], 255 * 12288 / 16287);
        a.check().unwrap();
    }

    #[test]
    fn gfp_zone_modifiers_and_fallback_to_lower_zones() {
        let mut v = vec![Page::new_reserved(); 16384];
        let mut a = pc(&mut v, 1);
        let p = a.alloc_pages(Gfp::KERNEL, 0, None, 0).unwrap();
        assert!(p.0 >= MAX_DMA_PFN);
        let d = a.alloc_pages(Gfp::KERNEL | Gfp::DMA, 3, None, 0).unwrap();
        assert!(d.0 + 8 <= MAX_DMA_PFN);
        // Exhaust DMA32 down to its watermark: GFP_KERNEL then falls back to DMA, but only
        // down to DMA's min + lowmem reserve.
        let mut n = 0;
        while a.alloc_pages(Gfp::KERNEL, 0, None, 0).is_some() {
            n += 1;
        }
        let dma = &a.nodes[0].zones[0];
        assert!(dma.free_pages() > dma.watermark[WMARK_MIN] / 2 + dma.lowmem_reserve[1]);
        assert!(n > 12000);
        // GFP_DMA allocations still succeed from the reserve that remains.
        assert!(a.alloc_pages(Gfp::KERNEL | Gfp::DMA, 0, None, 0).is_some());
        assert!(a.stats.kswapd_wakeups > 0 && a.stats.allocstall > 0);
        a.check().unwrap();
    }

    #[test]
    fn atomic_and_nofail_reach_below_min() {
        let mut v = vec![Page::new_reserved(); 16384];
        let mut a = pc(&mut v, 1);
        while a.alloc_pages(Gfp::KERNEL, 0, None, 0).is_some() {}
        let mut atomic = 0;
        while a.alloc_pages(Gfp::GFP_ATOMIC, 0, None, 0).is_some() {
            atomic += 1;
        }
        assert!(atomic > 0, "GFP_ATOMIC gets a reserve below min");
        let mut nofail = 0;
        while a
            .alloc_pages(Gfp::KERNEL | Gfp::NOFAIL, 0, None, 0)
            .is_some()
        {
            nofail += 1;
        }
        assert!(nofail > 0);
        assert_eq!(a.nr_free_pages() + a.pcp_pages(), 0);
        assert!(a.stats.no_watermark_allocs > 0);
    }

    #[test]
    fn fake_numa_prefers_requested_node_then_falls_back() {
        let mut v = vec![Page::new_reserved(); 16384];
        let mut a = pc(&mut v, 2);
        let p = a.alloc_pages(Gfp::KERNEL, 0, Some(1), 0).unwrap();
        assert_eq!(a.mem_map.page(p).node, 1);
        while a
            .alloc_pages(Gfp::KERNEL | Gfp::THISNODE, 0, Some(1), 0)
            .is_some()
        {}
        let nid1 = &a.nodes[1].zones[1];
        assert!(nid1.free_pages() <= nid1.watermark[WMARK_MIN] + nid1.pcp[0].batch);
        // Node 1 is exhausted: without __GFP_THISNODE, node 0 serves.
        let p = a.alloc_pages(Gfp::KERNEL, 0, Some(1), 0).unwrap();
        assert_eq!(a.mem_map.page(p).node, 0);
        assert!(a.nodes[0].zones[1].stats.numa_miss > 0);
    }

    #[test]
    fn compound_and_refcounted_frees() {
        let mut v = vec![Page::new_reserved(); 16384];
        let mut a = pc(&mut v, 1);
        let before = a.nr_free_pages() + a.pcp_pages();
        let p = a.alloc_pages(Gfp::KERNEL | Gfp::COMP, 2, None, 0).unwrap();
        assert!(a.mem_map.page(p).test(PG_HEAD) && a.mem_map.page(p.add(3)).test(PG_TAIL));
        assert_eq!(
            a.free_pages(p.add(1), 0, 0),
            Err(BadFree::Misaligned(p.add(1), 0))
        );
        assert_eq!(a.free_pages(p, 1, 0), Err(BadFree::Misaligned(p, 1)));
        a.get_page(p);
        a.free_pages(p, 2, 0).unwrap();
        assert_eq!(a.nr_free_pages() + a.pcp_pages(), before - 4);
        a.free_pages(p, 2, 0).unwrap();
        assert_eq!(a.free_pages(p, 2, 0), Err(BadFree::AlreadyFree(p)));
        assert_eq!(a.nr_free_pages() + a.pcp_pages(), before);
        a.drain_all();
        a.check().unwrap();
    }

    #[test]
    fn hot_frees_are_reused_first_cold_frees_last() {
        let mut v = vec![Page::new_reserved(); 16384];
        let mut a = pc(&mut v, 1);
        let p = a.alloc_pages(Gfp::KERNEL, 0, None, 0).unwrap();
        a.free_pages(p, 0, 0).unwrap();
        assert_eq!(a.alloc_pages(Gfp::KERNEL, 0, None, 0), Some(p));
        a.free_cold_page(p, 0).unwrap();
        assert_ne!(a.alloc_pages(Gfp::KERNEL, 0, None, 0), Some(p));
    }

    #[test]
    fn high_order_atomic_reserves_a_pageblock_and_gives_it_back() {
        let mut v = vec![Page::new_reserved(); 16384];
        let mut a = pc(&mut v, 1);
        // Only the slow path (memory short) is "harder" and reserves.
        let mut held = Vec::new();
        while let Some(p) = a.alloc_pages(Gfp::KERNEL, 0, None, 0) {
            held.push(p);
        }
        let p = a.alloc_pages(Gfp::GFP_ATOMIC, 2, None, 0).unwrap();
        assert_eq!(Buddy::pageblock_mt(&a.mem_map, p), MigrateType::HighAtomic);
        assert_eq!(
            a.zone_of(p).unwrap().nr_reserved_highatomic,
            PAGEBLOCK_NR_PAGES
        );
        for q in held.drain(..) {
            a.free_pages(q, 0, 0).unwrap();
        }
        a.drain_all();
        // Pages freed inside the reserved pageblock stay on the high-atomic lists, out of
        // reach of ordinary allocations...
        let z = a.zone_of(p).unwrap();
        assert!(z
            .buddy
            .blocks_per_order_of(MigrateType::HighAtomic)
            .iter()
            .any(|&n| n > 0));
        // ...until memory runs out: then the reserve is released and used.
        while a.alloc_pages(Gfp::KERNEL, 0, None, 0).is_some() {}
        let z = a.zone_of(p).unwrap();
        assert_eq!(z.nr_reserved_highatomic, 0);
        assert!(z
            .buddy
            .blocks_per_order_of(MigrateType::HighAtomic)
            .iter()
            .all(|&n| n == 0));
        a.check().unwrap();
    }

    proptest! {
        /// Random mixes of orders, GFP zones and migratetypes over two nodes: no overlap,
        /// zone constraints honoured, and after freeing and draining, every zone's free
        /// lists equal the boot state.
        #[test]
        fn random_allocations_return_everything(ops in proptest::collection::vec((0usize..6, 0usize..6, any::<bool>(), any::<u16>()), 1..400)) {
            let mut v = vec![Page::new_reserved(); 16384];
            let mut a = pc(&mut v, 2);
            let initial: Vec<_> = a.zones().map(|z| z.buddy.blocks_per_order()).collect();
            let total = a.nr_free_pages();
            let gfps = [Gfp::KERNEL, Gfp::KERNEL | Gfp::DMA, Gfp::HIGHUSER_MOVABLE, Gfp::KERNEL | Gfp::RECLAIMABLE, Gfp::GFP_ATOMIC, Gfp::KERNEL | Gfp::DMA32];
            let mut live: Vec<(Pfn, usize)> = Vec::new();
            let mut owner = vec![false; 16384];
            for (order, g, free, pick) in ops {
                if free && !live.is_empty() {
                    let (p, o) = live.swap_remove(pick as usize % live.len());
                    for i in 0..1u64 << o { owner[(p.0 + i) as usize] = false; }
                    prop_assert!(a.free_pages(p, o, 0).is_ok());
                } else if let Some(p) = a.alloc_pages(gfps[g], order, Some(pick as usize % 2), 0) {
                    if gfps[g].contains(Gfp::DMA) { prop_assert!(p.0 + (1 << order) <= MAX_DMA_PFN); }
                    for i in 0..1u64 << order {
                        prop_assert!(!owner[(p.0 + i) as usize]);
                        owner[(p.0 + i) as usize] = true;
                    }
                    live.push((p, order));
                }
                prop_assert!(a.check().is_ok());
            }
            for (p, o) in live.drain(..) { a.free_pages(p, o, 0).unwrap(); }
            a.drain_all();
            prop_assert_eq!(a.nr_free_pages(), total);
            let now: Vec<_> = a.zones().map(|z| z.buddy.blocks_per_order()).collect();
            prop_assert_eq!(now, initial);
        }
    }
}
