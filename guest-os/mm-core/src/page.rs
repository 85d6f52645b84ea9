//! `struct page`: one 64-byte descriptor per physical frame (one cache line, as in Linux), and the `mem_map` array of them.
//!
//! Like Linux, fields are reused by whoever owns the frame. The accessors name the use:
//! - free in the buddy allocator: `PG_buddy`, [`Page::order`], links on a free list;
//! - on a per-CPU list: `PG_pcp`, links on that list;
//! - a slab: `PG_slab`, [`Page::slab_cache`] (in `mapping`), [`Page::freelist`] (in
//!   `index`), [`Page::slab_counters`] (in `private`), links on the cache's partial list;
//! - a mapped page (later issues): `mapping`/`index` locate it in a file or anon_vma, links
//!   put it on an LRU list.
//!
//! The memory model is FLATMEM: one array covers every frame from the first to the last
//! frame of RAM, holes included (hole frames are `PG_reserved` and never freed).

use crate::addr::Pfn;

/// Page flags (`PG_*`), a bit each.
pub mod flags {
    pub const PG_LOCKED: u32 = 1 << 0;
    pub const PG_REFERENCED: u32 = 1 << 1;
    pub const PG_UPTODATE: u32 = 1 << 2;
    pub const PG_DIRTY: u32 = 1 << 3;
    pub const PG_LRU: u32 = 1 << 4;
    pub const PG_ACTIVE: u32 = 1 << 5;
    pub const PG_WORKINGSET: u32 = 1 << 6;
    /// Owned by the slab allocator.
    pub const PG_SLAB: u32 = 1 << 7;
    /// Never handed to the page allocator (holes, firmware, the kernel image).
    pub const PG_RESERVED: u32 = 1 << 8;
    pub const PG_PRIVATE: u32 = 1 << 9;
    pub const PG_WRITEBACK: u32 = 1 << 10;
    /// First page of a compound (multi-page) allocation; its order is in [`super::Page::order`].
    pub const PG_HEAD: u32 = 1 << 11;
    pub const PG_SWAPCACHE: u32 = 1 << 12;
    pub const PG_SWAPBACKED: u32 = 1 << 13;
    pub const PG_UNEVICTABLE: u32 = 1 << 14;
    pub const PG_MLOCKED: u32 = 1 << 15;
    /// Head of a free block in the buddy allocator (Linux keeps this in `page_type`).
    pub const PG_BUDDY: u32 = 1 << 16;
    /// On a per-CPU free list.
    pub const PG_PCP: u32 = 1 << 17;
    /// Anonymous memory (Linux tags the low bit of `mapping`).
    pub const PG_ANON: u32 = 1 << 18;
    /// Tail page of a compound allocation.
    pub const PG_TAIL: u32 = 1 << 19;

    /// Flag names for dumps, in bit order.
    pub const NAMES: [&str; 20] = [
        "locked",
        "referenced",
        "uptodate",
        "dirty",
        "lru",
        "active",
        "workingset",
        "slab",
        "reserved",
        "private",
        "writeback",
        "head",
        "swapcache",
        "swapbacked",
        "unevictable",
        "mlocked",
        "buddy",
        "pcp",
        "anon",
        "tail",
    ];
}

/// "No page" in list links (a frame number that never exists).
pub const NO_PFN: u32 = u32::MAX;

/// Links of an intrusive doubly-linked list through `struct page` (Linux's `lru`), as frame
/// numbers so that the same code works on any `mem_map` placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Links {
    pub prev: u32,
    pub next: u32,
}

impl Links {
    pub const NONE: Links = Links {
        prev: NO_PFN,
        next: NO_PFN,
    };
}

/// The descriptor of one physical frame.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Page {
    /// `PG_*` bits.
    pub flags: u32,
    /// Zone index ([`crate::gfp::ZoneType`] as u8).
    pub zone: u8,
    /// NUMA node.
    pub node: u8,
    /// For the first page of a pageblock: the pageblock's migratetype.
    pub pageblock_mt: u8,
    /// Buddy order of a free block, or compound order of a `PG_head` page.
    pub order: u8,
    /// References (`_refcount`): 0 when free.
    pub refcount: i32,
    /// Page-table mappings (`_mapcount`), -1 when unmapped, as in Linux.
    pub mapcount: i32,
    /// List links: free list, per-CPU list, slab partial list, or LRU.
    pub lru: Links,
    /// Owner-private word (slab: object counters; swap: entry).
    pub private: u64,
    /// `address_space`/`anon_vma` pointer, or the `kmem_cache` of a slab.
    pub mapping: usize,
    /// Offset in the mapping, or a slab's first free object.
    pub index: u64,
    /// Reserved for the memory cgroup owner (`memcg_data`).
    pub memcg_data: u64,
    /// For a `PG_tail` page: the frame number of its compound head.
    pub compound_head: u32,
    /// Pins for DMA (`_pincount`), counted apart from references.
    pub pincount: i32,
}

const _: () = assert!(core::mem::size_of::<Page>() == 64);

impl Page {
    /// A reserved frame with no owner: what `mem_map` holds before memory is freed into
    /// the buddy allocator.
    pub const fn new_reserved() -> Page {
        Page {
            flags: flags::PG_RESERVED,
            zone: 0,
            node: 0,
            pageblock_mt: 0,
            order: 0,
            refcount: 1,
            mapcount: -1,
            lru: Links::NONE,
            private: 0,
            mapping: 0,
            index: 0,
            memcg_data: 0,
            compound_head: NO_PFN,
            pincount: 0,
        }
    }

    /// Whether all of `f` are set.
    #[inline]
    pub fn test(&self, f: u32) -> bool {
        self.flags & f == f
    }

    #[inline]
    pub fn set(&mut self, f: u32) {
        self.flags |= f;
    }

    #[inline]
    pub fn clear(&mut self, f: u32) {
        self.flags &= !f;
    }

    /// The `kmem_cache` owning this slab page (opaque address).
    pub fn slab_cache(&self) -> usize {
        self.mapping
    }

    pub fn set_slab_cache(&mut self, cache: usize) {
        self.mapping = cache;
    }

    /// The slab's first free object (address, 0 for none).
    pub fn freelist(&self) -> usize {
        self.index as usize
    }

    pub fn set_freelist(&mut self, object: usize) {
        self.index = object as u64;
    }

    /// The slab's `(inuse, objects, frozen)` counters.
    pub fn slab_counters(&self) -> SlabCounters {
        SlabCounters {
            inuse: self.private as u16,
            objects: (self.private >> 16) as u16,
            frozen: (self.private >> 32) & 1 != 0,
        }
    }

    pub fn set_slab_counters(&mut self, c: SlabCounters) {
        self.private = c.inuse as u64 | (c.objects as u64) << 16 | (c.frozen as u64) << 32;
    }
}

/// SLUB's per-slab counters, packed into `private` as Linux packs them into `counters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SlabCounters {
    /// Objects handed out.
    pub inuse: u16,
    /// Objects in the slab.
    pub objects: u16,
    /// Owned by a CPU (the per-CPU slab), so not on a partial list.
    pub frozen: bool,
}

/// Access to page descriptors by frame number: what list and allocator code needs.
pub trait Pages {
    /// The descriptor of `pfn`. Panics if `pfn` has none (a kernel bug, not guest input).
    fn page(&self, pfn: Pfn) -> &Page;
    /// The descriptor of `pfn`, mutably.
    fn page_mut(&mut self, pfn: Pfn) -> &mut Page;
}

/// Frames per unit of deferred `struct page` initialisation (log2): a `MAX_ORDER` block
/// (4 MiB), so a buddy merge never looks at a descriptor of an uninitialised unit.
pub const INIT_UNIT_SHIFT: u32 = 10;
/// Frames per unit of deferred `struct page` initialisation.
pub const INIT_UNIT_PAGES: u64 = 1 << INIT_UNIT_SHIFT;

/// The `mem_map`: descriptors for frames `start_pfn .. start_pfn + len`.
///
/// With deferred initialisation (Linux's `CONFIG_DEFERRED_STRUCT_PAGE_INIT`,
/// [`MemMap::new_deferred`]) a bitmap holds one bit per [`INIT_UNIT_PAGES`] frames: the
/// descriptors of a unit whose bit is clear have never been written (their bytes are
/// whatever RAM held) and [`MemMap::get`] and [`MemMap::iter`] do not show them.
pub struct MemMap<'a> {
    pages: &'a mut [Page],
    start_pfn: u64,
    /// Initialised units, a bit each; empty when every descriptor is initialised.
    init: &'a mut [u64],
}

impl<'a> MemMap<'a> {
    /// A map describing no frames (an allocator before `init`).
    pub const fn empty() -> Self {
        MemMap {
            pages: &mut [],
            start_pfn: 0,
            init: &mut [],
        }
    }

    /// Descriptors for the frames from `start_pfn` on, one per element of `pages`.
    pub fn new(pages: &'a mut [Page], start_pfn: Pfn) -> Self {
        MemMap {
            pages,
            start_pfn: start_pfn.0,
            init: &mut [],
        }
    }

    /// A map whose descriptors are initialised unit by unit: `init` holds a bit per
    /// [`INIT_UNIT_PAGES`] frames from `start_pfn` (which must be unit-aligned), set for the
    /// units already initialised. `init` must have a bit for every unit.
    pub fn new_deferred(pages: &'a mut [Page], start_pfn: Pfn, init: &'a mut [u64]) -> Self {
        debug_assert!(start_pfn.0.is_multiple_of(INIT_UNIT_PAGES));
        debug_assert!(init.len() as u64 * 64 * INIT_UNIT_PAGES >= pages.len() as u64);
        MemMap {
            pages,
            start_pfn: start_pfn.0,
            init,
        }
    }

    /// Whether the map initialises descriptors lazily (some units may be uninitialised).
    #[inline]
    pub fn is_deferred(&self) -> bool {
        !self.init.is_empty()
    }

    /// Whether the descriptor of `pfn` has been initialised (always, without deferral).
    #[inline]
    pub fn is_initialised(&self, pfn: Pfn) -> bool {
        if self.init.is_empty() {
            return true;
        }
        let u = (pfn.0.wrapping_sub(self.start_pfn) >> INIT_UNIT_SHIFT) as usize;
        self.init
            .get(u / 64)
            .is_some_and(|w| (w >> (u % 64)) & 1 != 0)
    }

    /// Record that the unit holding `pfn` is initialised.
    pub fn set_initialised(&mut self, pfn: Pfn) {
        let u = (pfn.0.wrapping_sub(self.start_pfn) >> INIT_UNIT_SHIFT) as usize;
        if let Some(w) = self.init.get_mut(u / 64) {
            *w |= 1 << (u % 64);
        }
    }

    /// The descriptors of the unit holding `pfn` (clipped to the map), for initialising them.
    pub fn unit_mut(&mut self, pfn: Pfn) -> (Pfn, &mut [Page]) {
        let first = pfn.0 & !(INIT_UNIT_PAGES - 1);
        let lo = (first.max(self.start_pfn) - self.start_pfn) as usize;
        let hi = ((first + INIT_UNIT_PAGES - self.start_pfn) as usize).min(self.pages.len());
        let lo = lo.min(hi);
        (Pfn(self.start_pfn + lo as u64), &mut self.pages[lo..hi])
    }

    /// The first frame described.
    pub fn start_pfn(&self) -> Pfn {
        Pfn(self.start_pfn)
    }

    /// One past the last frame described.
    pub fn end_pfn(&self) -> Pfn {
        Pfn(self.start_pfn + self.pages.len() as u64)
    }

    /// Whether `pfn` has a descriptor.
    #[inline]
    pub fn contains(&self, pfn: Pfn) -> bool {
        pfn.0.wrapping_sub(self.start_pfn) < self.pages.len() as u64
    }

    /// The descriptor of `pfn`, if it has one.
    #[inline]
    pub fn get(&self, pfn: Pfn) -> Option<&Page> {
        if !self.is_initialised(pfn) {
            return None;
        }
        self.pages.get(pfn.0.wrapping_sub(self.start_pfn) as usize)
    }

    /// The frame a descriptor belongs to, if it lies in this map (`page_to_pfn`).
    pub fn pfn_of(&self, page: *const Page) -> Option<Pfn> {
        let base = self.pages.as_ptr() as usize;
        let off = (page as usize).wrapping_sub(base);
        let idx = off / core::mem::size_of::<Page>();
        (off.is_multiple_of(core::mem::size_of::<Page>()) && idx < self.pages.len())
            .then(|| Pfn(self.start_pfn + idx as u64))
    }

    /// All initialised descriptors, in frame order.
    pub fn iter(&self) -> impl Iterator<Item = (Pfn, &Page)> {
        let s = self.start_pfn;
        self.pages
            .chunks(INIT_UNIT_PAGES as usize)
            .enumerate()
            .filter(move |&(u, _)| self.is_initialised(Pfn(s + u as u64 * INIT_UNIT_PAGES)))
            .flat_map(move |(u, c)| {
                c.iter()
                    .enumerate()
                    .map(move |(i, p)| (Pfn(s + u as u64 * INIT_UNIT_PAGES + i as u64), p))
            })
    }
}

impl Pages for MemMap<'_> {
    #[inline]
    fn page(&self, pfn: Pfn) -> &Page {
        &self.pages[(pfn.0 - self.start_pfn) as usize]
    }

    #[inline]
    fn page_mut(&mut self, pfn: Pfn) -> &mut Page {
        &mut self.pages[(pfn.0 - self.start_pfn) as usize]
    }
}

/// What an allocator that lives inside the pages it manages (SLUB) needs from the page
/// allocator below it: frames, their descriptors, and where their bytes are.
pub trait PageProvider: Pages {
    /// `alloc_pages(gfp, order)`: a block of `1 << order` frames, or `None`.
    fn alloc_pages(&mut self, gfp: crate::gfp::Gfp, order: u32) -> Option<Pfn>;
    /// `__free_pages(page, order)`.
    fn free_pages(&mut self, pfn: Pfn, order: u32);
    /// Where the frame's bytes are mapped (`page_address`: the direct map in the kernel).
    fn page_address(&self, pfn: Pfn) -> *mut u8;
    /// The frame holding the byte at `addr` (`virt_to_pfn`), if `addr` is in the mapping
    /// [`PageProvider::page_address`] uses.
    fn virt_to_pfn(&self, addr: *const u8) -> Option<Pfn>;
}
