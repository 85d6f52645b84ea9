//! SLUB, the slab allocator: caches of equal-sized objects carved out of page blocks
//! ("slabs"), after Linux's `mm/slub.c`.
//!
//! Structure, as in Linux:
//! - A slab is a block of `1 << order` frames. Its head `struct page` carries `PG_slab`, the
//!   owning cache ([`Page::slab_cache`]), the first free object ([`Page::freelist`]) and the
//!   `inuse`/`objects`/`frozen` counters. Free objects are chained through a free pointer
//!   stored inside each free object at [`KmemCache::offset`].
//! - Each CPU owns one *frozen* slab ([`KmemCacheCpu`]) and holds that slab's whole freelist
//!   privately, so the fast paths push and pop without touching `struct page` or any list.
//!   Objects freed by other CPUs go to the slab's own freelist and are picked up when the
//!   CPU freelist runs dry ("refill").
//! - Slabs with some free objects that no CPU owns sit on the node partial list; full slabs
//!   are on no list (debug caches keep them on a full list, like Linux with `SLAB_STORE_USER`).
//!   Empty slabs are freed once `min_partial` partial slabs are kept.
//!
//! Debug caches (`SLAB_RED_ZONE`, `SLAB_POISON`, `SLAB_CONSISTENCY_CHECKS`, as `slub_debug`)
//! never use CPU slabs: every allocation and free goes through checks on the slab itself, as
//! Linux does since 6.2. Any debug flag implies the consistency checks.
//!
//! Layout of one object slot in a debug cache (Linux's `calculate_sizes`):
//! `[left red zone: red_left_pad][object: object_size][right red zone .. inuse]`
//! `[free pointer, if outside the object][pad word][alignment padding .. size]`.
//!
//! A cache is referenced from its slab pages by address, so it must not move once it has
//! allocated: keep caches in statics or other pinned storage. Frees of an object through a
//! moved cache are refused ("Wrong slab cache") rather than corrupting anything.
//!
//! The memory behind the frames comes from the [`PageProvider`], which must map every frame
//! it hands out to memory valid for reads and writes; the code here trusts that contract.
//! Everything is serialised by `&mut self`: the "lockless" per-CPU freelist is kept for its
//! structure (and its cheap fast path), not for concurrency.

use core::fmt;
use core::ptr::NonNull;

use crate::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::Gfp;
use crate::list::PageList;
use crate::page::flags::{PG_SLAB, PG_TAIL};
use crate::page::{Links, PageProvider, Pages, SlabCounters, NO_PFN};
use crate::NR_CPUS;

// Cache flags (`slab_flags_t`), Linux's values.
/// Check objects and freelists on every allocation and free.
pub const SLAB_CONSISTENCY_CHECKS: u32 = 0x0000_0100;
/// Red zones around each object to catch overruns.
pub const SLAB_RED_ZONE: u32 = 0x0000_0400;
/// Poison free objects to catch use after free and uninitialised use.
pub const SLAB_POISON: u32 = 0x0000_0800;
/// Align objects to cache lines.
pub const SLAB_HWCACHE_ALIGN: u32 = 0x0000_2000;
/// Slab pages from `ZONE_DMA`.
pub const SLAB_CACHE_DMA: u32 = 0x0000_4000;
/// Slab pages from `ZONE_DMA32`.
pub const SLAB_CACHE_DMA32: u32 = 0x0000_8000;
/// Accepted for compatibility; allocation/free call sites are not recorded.
pub const SLAB_STORE_USER: u32 = 0x0001_0000;
/// Objects are reclaimable: slab pages come from `MIGRATE_RECLAIMABLE` blocks.
pub const SLAB_RECLAIM_ACCOUNT: u32 = 0x0002_0000;
/// Linux panics if creation fails; here creation returns `Err` and the caller panics.
pub const SLAB_PANIC: u32 = 0x0004_0000;
/// The flags that make a cache a debug cache.
pub const SLAB_DEBUG_FLAGS: u32 = SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON;
/// Internal: objects are poisoned (`SLAB_POISON` without a constructor).
const OBJECT_POISON: u32 = 0x8000_0000;
/// Flags `KmemCache::new` keeps (`CACHE_CREATE_MASK`); others are dropped.
const CACHE_CREATE_MASK: u32 = SLAB_DEBUG_FLAGS
    | SLAB_HWCACHE_ALIGN
    | SLAB_CACHE_DMA
    | SLAB_CACHE_DMA32
    | SLAB_STORE_USER
    | SLAB_RECLAIM_ACCOUNT
    | SLAB_PANIC;

/// Red zone of a free object.
pub const SLUB_RED_INACTIVE: u8 = 0xbb;
/// Red zone of an allocated object.
pub const SLUB_RED_ACTIVE: u8 = 0xcc;
/// Padding and unused slab bytes.
pub const POISON_INUSE: u8 = 0x5a;
/// Body of a free object.
pub const POISON_FREE: u8 = 0x6b;
/// Last byte of a free object.
pub const POISON_END: u8 = 0xa5;

/// The buddy allocator's `MAX_ORDER` (block orders `0..MAX_ORDER`), repeated here so that
/// SLUB does not depend on `buddy.rs`.
const MAX_ORDER: u32 = 11;
/// Largest object a cache can hold: one order-10 block (4 MiB, = `KMALLOC_MAX_SIZE`).
pub const SLAB_MAX_SIZE: usize = (PAGE_SIZE as usize) << (MAX_ORDER - 1);
/// Highest slab order `calculate_order` picks when several objects fit (`slub_max_order`).
pub const SLUB_MAX_ORDER: u32 = 3;
const MAX_OBJS_PER_PAGE: u32 = 32767;
const MIN_PARTIAL: usize = 5;
const MAX_PARTIAL: usize = 10;
const CACHE_LINE_SIZE: u32 = 64;
/// `ARCH_SLAB_MINALIGN`: alignment of `unsigned long long`.
const ARCH_SLAB_MINALIGN: u32 = 8;
const PTR: u32 = core::mem::size_of::<usize>() as u32;
const SHRINK_PROMOTE_MAX: usize = 32;
/// Transaction ids advance by this so each CPU's stay distinct (Linux's `TID_STEP`).
const TID_STEP: u64 = NR_CPUS.next_power_of_two() as u64;
/// Alloc-time corruption reports kept until [`KmemCache::take_report`].
const NR_REPORTS: usize = 4;

/// GFP bits a caller may pass down to the page allocator for a new slab
/// (`GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK`); zone, mobility and ZERO come from the cache.
const SLAB_GFP_MASK: u32 = Gfp::RECLAIM.0
    | Gfp::HIGH.0
    | Gfp::ATOMIC.0
    | Gfp::IO.0
    | Gfp::FS.0
    | Gfp::NOWARN.0
    | Gfp::RETRY_MAYFAIL.0
    | Gfp::NOFAIL.0
    | Gfp::NORETRY.0
    | Gfp::MEMALLOC.0
    | Gfp::NOMEMALLOC.0
    | Gfp::HARDWALL.0
    | Gfp::THISNODE.0;

/// Which part of an object slot was found overwritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    LeftRedzone,
    RightRedzone,
    /// The body of a free object (use after free).
    Poison,
    /// Between the object and `inuse` when there is no red zone.
    AlignmentPadding,
    /// After the free pointer, up to the next slot.
    ObjectPadding,
    /// The slab's tail after its last object.
    SlabPadding,
}

impl Area {
    /// Linux's wording.
    pub const fn name(self) -> &'static str {
        match self {
            Area::LeftRedzone => "Left Redzone",
            Area::RightRedzone => "Right Redzone",
            Area::Poison => "Poison",
            Area::AlignmentPadding => "Alignment padding",
            Area::ObjectPadding => "Object padding",
            Area::SlabPadding => "Slab padding",
        }
    }
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabErrorKind {
    /// `KmemCache::new`: size 0, above [`SLAB_MAX_SIZE`], or too big with its metadata.
    InvalidSize { size: usize },
    /// `KmemCache::new`: alignment not a power of two or above [`SLAB_MAX_SIZE`].
    InvalidAlign { align: usize },
    /// Freed pointer is not in any slab page.
    NotSlab,
    /// Freed pointer is in a slab of another cache (or of this cache before it moved).
    WrongCache,
    /// Freed pointer is in one of this cache's slabs but not at an object's start.
    InvalidPointer,
    /// The object is already on a freelist.
    DoubleFree,
    /// Debug: a red zone, poison or padding byte changed.
    Overwritten {
        area: Area,
        /// First changed byte.
        fault: usize,
        found: u8,
        expected: u8,
    },
    /// A free pointer does not point to an object of its slab.
    FreePointerCorrupt { value: usize },
    /// `destroy` with objects still allocated; `object` is the first one found (0 if it is
    /// in a full slab, which non-debug caches do not track).
    ObjectsRemaining { count: usize },
    /// `kfree` of a pointer in neither a slab nor a large kmalloc block.
    NotSlabOrLarge,
    /// `kfree` of a pointer inside, not at the start of, a large kmalloc block.
    LargeInterior,
    /// `kfree` of an object of a cache kmalloc does not own (use that cache's `free`).
    ForeignCache,
}

/// A SLUB error report: which cache, which object, what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabError {
    pub cache: &'static str,
    pub object: usize,
    pub kind: SlabErrorKind,
}

impl SlabError {
    const fn creation(cache: &'static str, kind: SlabErrorKind) -> SlabError {
        SlabError {
            cache,
            object: 0,
            kind,
        }
    }
}

impl fmt::Display for SlabError {
    /// One line in the style of Linux's `slab_bug()`: `BUG kmalloc-64: Object already free at 0x...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, o) = (self.cache, self.object);
        match self.kind {
            SlabErrorKind::InvalidSize { size } => {
                write!(f, "kmem_cache_create({c}) failed: invalid object size {size}")
            }
            SlabErrorKind::InvalidAlign { align } => {
                write!(f, "kmem_cache_create({c}) failed: invalid alignment {align}")
            }
            SlabErrorKind::NotSlab => {
                write!(f, "BUG {c}: Attempt to free object({o:#x}) outside of slab")
            }
            SlabErrorKind::WrongCache => write!(
                f,
                "BUG {c}: Wrong slab cache. {c} but object {o:#x} is from another cache"
            ),
            SlabErrorKind::InvalidPointer => write!(f, "BUG {c}: Invalid object pointer {o:#x}"),
            SlabErrorKind::DoubleFree => write!(f, "BUG {c}: Object already free at {o:#x}"),
            SlabErrorKind::Overwritten {
                area,
                fault,
                found,
                expected,
            } => write!(
                f,
                "BUG {c}: {} overwritten at {o:#x}: {fault:#x} @offset={} first byte {found:#x} instead of {expected:#x}",
                area.name(),
                fault as isize - o as isize
            ),
            SlabErrorKind::FreePointerCorrupt { value } => {
                write!(f, "BUG {c}: Freepointer corrupt at {o:#x}: {value:#x}")
            }
            SlabErrorKind::ObjectsRemaining { count } => {
                write!(
                    f,
                    "BUG {c}: Objects remaining in {c} on __kmem_cache_shutdown(): {count}"
                )?;
                if o != 0 {
                    write!(f, ", first at {o:#x}")?;
                }
                Ok(())
            }
            SlabErrorKind::NotSlabOrLarge => {
                write!(f, "BUG {c}: kfree of a non-slab, non-large pointer {o:#x}")
            }
            SlabErrorKind::LargeInterior => {
                write!(f, "BUG {c}: kfree of {o:#x} inside a large allocation")
            }
            SlabErrorKind::ForeignCache => {
                write!(f, "BUG {c}: kfree of {o:#x} from a cache kmalloc does not own")
            }
        }
    }
}

/// SLUB event counters (`enum stat_item`, `CONFIG_SLUB_STATS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum SlubStat {
    /// Allocation from the CPU freelist.
    AllocFastpath,
    /// Allocation that had to look at slabs.
    AllocSlowpath,
    /// Free to the CPU freelist.
    FreeFastpath,
    /// Free to a slab's own freelist.
    FreeSlowpath,
    /// Free to a slab another CPU owns.
    FreeFrozen,
    /// A full slab got a free object and joined the partial list.
    FreeAddPartial,
    /// An empty slab left the partial list to be freed.
    FreeRemovePartial,
    /// A CPU took a slab from the partial list.
    AllocFromPartial,
    /// A new slab was allocated.
    AllocSlab,
    /// The CPU freelist was refilled from remote frees to its slab.
    AllocRefill,
    /// A slab was returned to the page allocator.
    FreeSlab,
    /// A CPU slab was flushed (shrink/destroy).
    CpuslabFlush,
    /// A CPU slab was given up full.
    DeactivateFull,
    /// A CPU slab was given up empty and freed.
    DeactivateEmpty,
    DeactivateToHead,
    DeactivateToTail,
    /// A deactivated slab had objects freed by other CPUs.
    DeactivateRemoteFrees,
    /// A CPU slab with no free objects left was dropped on the slow path.
    DeactivateBypass,
    /// The preferred slab order failed; a minimal slab was allocated.
    OrderFallback,
}

/// Number of [`SlubStat`] counters.
pub const NR_SLUB_STATS: usize = 19;

impl SlubStat {
    pub const ALL: [SlubStat; NR_SLUB_STATS] = [
        SlubStat::AllocFastpath,
        SlubStat::AllocSlowpath,
        SlubStat::FreeFastpath,
        SlubStat::FreeSlowpath,
        SlubStat::FreeFrozen,
        SlubStat::FreeAddPartial,
        SlubStat::FreeRemovePartial,
        SlubStat::AllocFromPartial,
        SlubStat::AllocSlab,
        SlubStat::AllocRefill,
        SlubStat::FreeSlab,
        SlubStat::CpuslabFlush,
        SlubStat::DeactivateFull,
        SlubStat::DeactivateEmpty,
        SlubStat::DeactivateToHead,
        SlubStat::DeactivateToTail,
        SlubStat::DeactivateRemoteFrees,
        SlubStat::DeactivateBypass,
        SlubStat::OrderFallback,
    ];

    /// The name of Linux's `/sys/kernel/slab/<cache>/` file.
    pub const fn name(self) -> &'static str {
        match self {
            SlubStat::AllocFastpath => "alloc_fastpath",
            SlubStat::AllocSlowpath => "alloc_slowpath",
            SlubStat::FreeFastpath => "free_fastpath",
            SlubStat::FreeSlowpath => "free_slowpath",
            SlubStat::FreeFrozen => "free_frozen",
            SlubStat::FreeAddPartial => "free_add_partial",
            SlubStat::FreeRemovePartial => "free_remove_partial",
            SlubStat::AllocFromPartial => "alloc_from_partial",
            SlubStat::AllocSlab => "alloc_slab",
            SlubStat::AllocRefill => "alloc_refill",
            SlubStat::FreeSlab => "free_slab",
            SlubStat::CpuslabFlush => "cpuslab_flush",
            SlubStat::DeactivateFull => "deactivate_full",
            SlubStat::DeactivateEmpty => "deactivate_empty",
            SlubStat::DeactivateToHead => "deactivate_to_head",
            SlubStat::DeactivateToTail => "deactivate_to_tail",
            SlubStat::DeactivateRemoteFrees => "deactivate_remote_frees",
            SlubStat::DeactivateBypass => "deactivate_bypass",
            SlubStat::OrderFallback => "order_fallback",
        }
    }
}

/// One CPU's allocation state (`struct kmem_cache_cpu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KmemCacheCpu {
    /// Next free object of `slab`, private to this CPU (0: none).
    freelist: usize,
    /// The frozen slab this CPU allocates from.
    slab: Option<Pfn>,
    /// Transaction id, advanced by every operation on `freelist` (Linux pairs it with the
    /// freelist in a double-word cmpxchg; here it only documents the protocol).
    tid: u64,
}

impl KmemCacheCpu {
    const EMPTY: KmemCacheCpu = KmemCacheCpu {
        freelist: 0,
        slab: None,
        tid: 0,
    };

    /// The CPU slab's head frame.
    pub fn slab(&self) -> Option<Pfn> {
        self.slab
    }

    pub fn tid(&self) -> u64 {
        self.tid
    }
}

/// The numbers of one `/proc/slabinfo` line (`struct slabinfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SlabInfo {
    /// Objects not free on a partial slab (as Linux: free objects of CPU slabs count as
    /// active).
    pub active_objs: usize,
    pub num_objs: usize,
    /// Slot size including metadata (`s->size`).
    pub objsize: u32,
    pub objperslab: u32,
    pub pagesperslab: u32,
    pub active_slabs: usize,
    pub num_slabs: usize,
}

/// A slab cache (`struct kmem_cache` plus its single node's `kmem_cache_node`).
#[derive(Debug)]
pub struct KmemCache {
    name: &'static str,
    /// Size the user asked for.
    object_size: u32,
    /// Slot size: object plus metadata, aligned.
    size: u32,
    align: u32,
    /// Free pointer offset from the object start.
    offset: u32,
    /// Object plus right red zone: where metadata starts.
    inuse: u32,
    red_left_pad: u32,
    flags: u32,
    ctor: Option<fn(*mut u8)>,
    debug: bool,
    /// Preferred slab (`s->oo`).
    order: u32,
    objects: u32,
    /// Fallback slab when the preferred order fails (`s->min`).
    min_order: u32,
    min_objects: u32,
    /// GFP bits every slab allocation adds (COMP, zone, mobility).
    allocflags: Gfp,
    min_partial: usize,
    cpu_slab: [KmemCacheCpu; NR_CPUS],
    partial: PageList,
    /// Free objects on partial slabs (Linux counts them on demand with `count_partial`).
    partial_free: usize,
    /// Debug caches only: slabs with no free object.
    full: PageList,
    nr_slabs: usize,
    total_objects: usize,
    nr_pages: usize,
    /// Objects handed out and not yet freed.
    live: usize,
    stats: [u64; NR_SLUB_STATS],
    reports: [Option<SlabError>; NR_REPORTS],
    dropped_reports: u64,
}

const fn align_up(x: u32, a: u32) -> u32 {
    (x + a - 1) & !(a - 1)
}

const fn fls(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Smallest order whose block holds `size` bytes (`get_order`).
pub const fn get_order(size: u64) -> u32 {
    if size == 0 {
        0
    } else {
        fls((size - 1) >> PAGE_SHIFT)
    }
}

const fn order_objects(order: u32, size: u32) -> u32 {
    ((PAGE_SIZE << order) / size as u64) as u32
}

/// `calc_slab_order`: the lowest order from `min_objects` up whose leftover is at most
/// `1/fract_leftover` of the slab; `max_order + 1` if none.
const fn calc_slab_order(size: u32, min_objects: u32, max_order: u32, fract_leftover: u32) -> u32 {
    if order_objects(0, size) > MAX_OBJS_PER_PAGE {
        return get_order(size as u64 * MAX_OBJS_PER_PAGE as u64) - 1;
    }
    // slub_min_order is 0, so the search starts at the order that holds min_objects.
    let mut order = get_order(min_objects as u64 * size as u64);
    while order <= max_order {
        let slab_size = PAGE_SIZE << order;
        if slab_size % size as u64 <= slab_size / fract_leftover as u64 {
            break;
        }
        order += 1;
    }
    order
}

/// `calculate_order`: trade objects per slab against wasted tail bytes. Start from
/// `slub_min_objects = 4 * (fls(nr_cpus) + 1)` objects and at most 1/16 waste, then accept
/// more waste (1/8, 1/4), then fewer objects, then a single object up to `slub_max_order`,
/// and finally any order below `MAX_ORDER`.
const fn calculate_order(size: u32) -> Option<u32> {
    let mut min_objects = 4 * (fls(NR_CPUS as u64) + 1);
    let max_objects = order_objects(SLUB_MAX_ORDER, size);
    if max_objects < min_objects {
        min_objects = max_objects;
    }
    while min_objects > 1 {
        let mut fraction = 16;
        while fraction >= 4 {
            let order = calc_slab_order(size, min_objects, SLUB_MAX_ORDER, fraction);
            if order <= SLUB_MAX_ORDER {
                return Some(order);
            }
            fraction /= 2;
        }
        min_objects -= 1;
    }
    let order = calc_slab_order(size, 1, SLUB_MAX_ORDER, 1);
    if order <= SLUB_MAX_ORDER {
        return Some(order);
    }
    let order = calc_slab_order(size, 1, MAX_ORDER, 1);
    if order < MAX_ORDER {
        Some(order)
    } else {
        None
    }
}

/// `calculate_alignment`: cache-line alignment shrinks for small objects so two of them can
/// share a line; never below `ARCH_SLAB_MINALIGN` or a pointer.
const fn calculate_alignment(flags: u32, align: u32, size: u32) -> u32 {
    let mut align = align;
    if flags & SLAB_HWCACHE_ALIGN != 0 {
        let mut ralign = CACHE_LINE_SIZE;
        while size <= ralign / 2 {
            ralign /= 2;
        }
        if ralign > align {
            align = ralign;
        }
    }
    if align < ARCH_SLAB_MINALIGN {
        align = ARCH_SLAB_MINALIGN;
    }
    align_up(align, PTR)
}

/// The head frame of the compound page holding `pfn`.
pub(crate) fn compound_head<P: Pages + ?Sized>(pp: &P, pfn: Pfn) -> Pfn {
    let p = pp.page(pfn);
    if p.test(PG_TAIL) && p.compound_head != NO_PFN {
        Pfn(p.compound_head as u64)
    } else {
        pfn
    }
}

/// # Safety
/// `obj + offset` must be 8 readable bytes of a slab.
#[inline(always)]
unsafe fn get_fp(obj: usize, offset: u32) -> usize {
    // SAFETY: per the contract.
    unsafe { ((obj + offset as usize) as *const usize).read_unaligned() }
}

/// # Safety
/// `obj + offset` must be 8 writable bytes of a slab.
#[inline(always)]
unsafe fn set_fp(obj: usize, offset: u32, fp: usize) {
    // SAFETY: per the contract.
    unsafe { ((obj + offset as usize) as *mut usize).write_unaligned(fp) }
}

/// The first byte of `start..start + len` that is not `value`, and what it is.
///
/// # Safety
/// The range must be readable.
unsafe fn check_bytes(start: usize, value: u8, len: usize) -> Option<(usize, u8)> {
    // SAFETY: per the contract.
    let s = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
    s.iter()
        .position(|&b| b != value)
        .map(|i| (start + i, s[i]))
}

fn free_objs(c: SlabCounters) -> usize {
    c.objects.saturating_sub(c.inuse) as usize
}

impl KmemCache {
    /// `kmem_cache_create`: a cache of `size`-byte objects aligned to `align` (0: default).
    /// `ctor` runs on every object when its slab is created (not on each allocation), so
    /// freed objects must be left in their constructed state, as in Linux.
    pub const fn new(
        name: &'static str,
        size: usize,
        align: usize,
        flags: u32,
        ctor: Option<fn(*mut u8)>,
    ) -> Result<Self, SlabError> {
        if size == 0 || size > SLAB_MAX_SIZE {
            return Err(SlabError::creation(
                name,
                SlabErrorKind::InvalidSize { size },
            ));
        }
        if (align != 0 && !align.is_power_of_two()) || align > SLAB_MAX_SIZE {
            return Err(SlabError::creation(
                name,
                SlabErrorKind::InvalidAlign { align },
            ));
        }
        let mut flags = flags & CACHE_CREATE_MASK;
        let object_size = size as u32;
        let align = calculate_alignment(flags, align as u32, object_size);

        // calculate_sizes()
        let mut s = align_up(object_size, PTR);
        if flags & SLAB_POISON != 0 && ctor.is_none() {
            flags |= OBJECT_POISON;
        }
        // Red zoning needs at least one byte between the object and the metadata.
        if flags & SLAB_RED_ZONE != 0 && s == object_size {
            s += PTR;
        }
        let inuse = s;
        // The free pointer leaves the object when the object's bytes must survive while it is
        // free (poison pattern, constructed state) or it would cover the red zone; otherwise
        // it sits mid-object, away from the edges small overruns hit.
        let offset = if flags & SLAB_POISON != 0
            || (flags & SLAB_RED_ZONE != 0 && object_size < PTR)
            || ctor.is_some()
        {
            s += PTR;
            inuse
        } else {
            (object_size / 2) & !(PTR - 1)
        };
        let mut red_left_pad = 0;
        if flags & SLAB_RED_ZONE != 0 {
            // A spare word so overruns of the previous object hit padding, not metadata.
            s += PTR;
            red_left_pad = align_up(PTR, align);
            s += red_left_pad;
        }
        let size = align_up(s, align);

        let Some(order) = calculate_order(size) else {
            return Err(SlabError::creation(
                name,
                SlabErrorKind::InvalidSize {
                    size: object_size as usize,
                },
            ));
        };
        let min_order = get_order(size as u64);
        let mut allocflags = 0;
        if order > 0 || min_order > 0 {
            allocflags |= Gfp::COMP.0;
        }
        if flags & SLAB_CACHE_DMA != 0 {
            allocflags |= Gfp::DMA.0;
        }
        if flags & SLAB_CACHE_DMA32 != 0 {
            allocflags |= Gfp::DMA32.0;
        }
        if flags & SLAB_RECLAIM_ACCOUNT != 0 {
            allocflags |= Gfp::RECLAIMABLE.0;
        }
        // set_min_partial(ilog2(size) / 2): bigger objects keep more partial slabs around.
        let mut min_partial = (size.ilog2() / 2) as usize;
        if min_partial < MIN_PARTIAL {
            min_partial = MIN_PARTIAL;
        } else if min_partial > MAX_PARTIAL {
            min_partial = MAX_PARTIAL;
        }
        let mut cpu_slab = [KmemCacheCpu::EMPTY; NR_CPUS];
        let mut cpu = 0;
        while cpu < NR_CPUS {
            cpu_slab[cpu].tid = cpu as u64;
            cpu += 1;
        }
        Ok(KmemCache {
            name,
            object_size,
            size,
            align,
            offset,
            inuse,
            red_left_pad,
            flags,
            ctor,
            debug: flags & SLAB_DEBUG_FLAGS != 0,
            order,
            objects: order_objects(order, size),
            min_order,
            min_objects: order_objects(min_order, size),
            allocflags: Gfp(allocflags),
            min_partial,
            cpu_slab,
            partial: PageList::new(),
            partial_free: 0,
            full: PageList::new(),
            nr_slabs: 0,
            total_objects: 0,
            nr_pages: 0,
            live: 0,
            stats: [0; NR_SLUB_STATS],
            reports: [None; NR_REPORTS],
            dropped_reports: 0,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The size asked for (`ksize` of an object).
    pub fn object_size(&self) -> usize {
        self.object_size as usize
    }

    /// Slot size with metadata and alignment (the slabinfo `objsize`).
    pub fn size(&self) -> usize {
        self.size as usize
    }

    pub fn align(&self) -> usize {
        self.align as usize
    }

    /// Where free objects keep their free pointer, from the object start.
    pub fn offset(&self) -> usize {
        self.offset as usize
    }

    /// Bytes of left red zone before each object.
    pub fn red_left_pad(&self) -> usize {
        self.red_left_pad as usize
    }

    /// Flags as given, minus unknown ones.
    pub fn flags(&self) -> u32 {
        self.flags & !OBJECT_POISON
    }

    /// Preferred slab order.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// Objects in a slab of the preferred order.
    pub fn objects_per_slab(&self) -> usize {
        self.objects as usize
    }

    pub fn min_partial(&self) -> usize {
        self.min_partial
    }

    pub fn nr_partial(&self) -> usize {
        self.partial.len()
    }

    pub fn nr_slabs(&self) -> usize {
        self.nr_slabs
    }

    /// Frames held by slabs.
    pub fn nr_pages(&self) -> usize {
        self.nr_pages
    }

    /// Objects allocated and not freed.
    pub fn live_objects(&self) -> usize {
        self.live
    }

    pub fn is_debug(&self) -> bool {
        self.debug
    }

    /// The per-CPU state of `cpu`.
    pub fn cpu_slab(&self, cpu: usize) -> &KmemCacheCpu {
        &self.cpu_slab[cpu % NR_CPUS]
    }

    pub fn stat(&self, s: SlubStat) -> u64 {
        self.stats[s as usize]
    }

    /// The oldest corruption found while allocating (allocation carries on with another
    /// object, as Linux does after printing its report).
    pub fn take_report(&mut self) -> Option<SlabError> {
        // Cheap when there is nothing to report: kmalloc asks after every allocation.
        self.reports[0]?;
        let r = self.reports[0].take();
        self.reports.rotate_left(1);
        r
    }

    /// Reports lost because [`KmemCache::take_report`] was not called often enough.
    pub fn dropped_reports(&self) -> u64 {
        self.dropped_reports
    }

    /// The slabinfo numbers.
    pub fn info(&self) -> SlabInfo {
        SlabInfo {
            active_objs: self.total_objects - self.partial_free,
            num_objs: self.total_objects,
            objsize: self.size,
            objperslab: self.objects,
            pagesperslab: 1 << self.order,
            active_slabs: self.nr_slabs,
            num_slabs: self.nr_slabs,
        }
    }

    #[inline]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    #[inline]
    fn count(&mut self, s: SlubStat) {
        self.stats[s as usize] += 1;
    }

    fn err(&self, object: usize, kind: SlabErrorKind) -> SlabError {
        SlabError {
            cache: self.name,
            object,
            kind,
        }
    }

    fn report(&mut self, e: SlabError) {
        match self.reports.iter_mut().find(|r| r.is_none()) {
            Some(slot) => *slot = Some(e),
            None => self.dropped_reports += 1,
        }
    }

    /// The order of a slab, told by its object count (a larger order always holds more).
    fn slab_order(&self, objects: u32) -> u32 {
        if objects == self.objects {
            self.order
        } else {
            self.min_order
        }
    }

    /// Whether `p` is 0 or the start of one of the slab's objects (`check_valid_pointer`).
    fn valid_pointer(&self, base: usize, objects: u32, p: usize) -> bool {
        if p == 0 {
            return true;
        }
        let off = p.wrapping_sub(base + self.red_left_pad as usize);
        off.is_multiple_of(self.size as usize) && off / (self.size as usize) < objects as usize
    }

    /// The slab holding object `addr` (`virt_to_slab` plus the ownership and boundary checks
    /// of `free_consistency_checks`), without touching the object.
    pub fn object_slab<P: PageProvider + ?Sized>(
        &self,
        pp: &P,
        addr: *const u8,
    ) -> Result<Pfn, SlabError> {
        let a = addr as usize;
        let pfn = pp
            .virt_to_pfn(addr)
            .ok_or(self.err(a, SlabErrorKind::NotSlab))?;
        let head = compound_head(pp, pfn);
        let page = pp.page(head);
        if !page.test(PG_SLAB) {
            return Err(self.err(a, SlabErrorKind::NotSlab));
        }
        if page.slab_cache() != self.addr() {
            return Err(self.err(a, SlabErrorKind::WrongCache));
        }
        let base = pp.page_address(head) as usize;
        if a == 0 || !self.valid_pointer(base, page.slab_counters().objects as u32, a) {
            return Err(self.err(a, SlabErrorKind::InvalidPointer));
        }
        Ok(head)
    }

    // ---- allocation ------------------------------------------------------------------

    /// `kmem_cache_alloc` on `cpu` (taken modulo `NR_CPUS`). `Gfp::ZERO` zeroes the object;
    /// the other flags only matter when a new slab is needed.
    pub fn alloc<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        gfp: Gfp,
        cpu: usize,
    ) -> Option<NonNull<u8>> {
        let cpu = cpu % NR_CPUS;
        let obj = if self.debug {
            self.alloc_debug(pp, gfp)?
        } else {
            let offset = self.offset;
            let c = &mut self.cpu_slab[cpu];
            let obj = c.freelist;
            if obj != 0 {
                // SAFETY: `obj` is a free object of this CPU's slab.
                c.freelist = unsafe { get_fp(obj, offset) };
                c.tid += TID_STEP;
                self.count(SlubStat::AllocFastpath);
                obj
            } else {
                self.alloc_slow(pp, gfp, cpu)?
            }
        };
        self.live += 1;
        if gfp.contains(Gfp::ZERO) {
            // SAFETY: the object is ours and `object_size` long.
            unsafe { core::ptr::write_bytes(obj as *mut u8, 0, self.object_size as usize) };
        }
        NonNull::new(obj as *mut u8)
    }

    /// Take the freelist starting at `fl` (non-zero) as `cpu`'s, handing out its first object.
    fn load_freelist(&mut self, cpu: usize, fl: usize) -> usize {
        debug_assert!(fl != 0);
        // SAFETY: `fl` is a free object of the CPU's slab.
        let next = unsafe { get_fp(fl, self.offset) };
        let c = &mut self.cpu_slab[cpu];
        c.freelist = next;
        c.tid += TID_STEP;
        fl
    }

    /// `___slab_alloc`: the CPU freelist is empty.
    fn alloc_slow<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        gfp: Gfp,
        cpu: usize,
    ) -> Option<usize> {
        self.count(SlubStat::AllocSlowpath);
        if let Some(slab) = self.cpu_slab[cpu].slab {
            let page = pp.page_mut(slab);
            let fl = page.freelist();
            let mut c = page.slab_counters();
            if fl != 0 {
                // Other CPUs freed objects to our slab meanwhile: take them all.
                page.set_freelist(0);
                c.inuse = c.objects;
                page.set_slab_counters(c);
                self.count(SlubStat::AllocRefill);
                return Some(self.load_freelist(cpu, fl));
            }
            // Full: unfreeze; a full slab is on no list until an object comes back.
            c.frozen = false;
            page.set_slab_counters(c);
            self.cpu_slab[cpu].slab = None;
            self.count(SlubStat::DeactivateBypass);
        }
        let slab = match self.partial.first() {
            Some(s) => {
                self.remove_partial(pp, s);
                self.count(SlubStat::AllocFromPartial);
                s
            }
            None => {
                let s = self.new_slab(pp, gfp)?;
                self.count(SlubStat::AllocSlab);
                s
            }
        };
        // Freeze: the CPU owns the slab and all its free objects.
        let page = pp.page_mut(slab);
        let fl = page.freelist();
        page.set_freelist(0);
        let mut c = page.slab_counters();
        c.inuse = c.objects;
        c.frozen = true;
        page.set_slab_counters(c);
        self.cpu_slab[cpu].slab = Some(slab);
        Some(self.load_freelist(cpu, fl))
    }

    /// `allocate_slab`: a new slab, objects set up and chained, on no list.
    fn new_slab<P: PageProvider + ?Sized>(&mut self, pp: &mut P, gfp: Gfp) -> Option<Pfn> {
        let flags = (gfp.0 & SLAB_GFP_MASK) | self.allocflags.0;
        // The preferred order is an optimisation: try it without effort or warning first.
        let mut light = (flags | Gfp::NOWARN.0 | Gfp::NORETRY.0) & !Gfp::NOFAIL.0;
        if light & Gfp::DIRECT_RECLAIM.0 != 0 && self.order > self.min_order {
            light = (light | Gfp::NOMEMALLOC.0) & !Gfp::RECLAIM.0;
        }
        let (pfn, order, objects) = match pp.alloc_pages(Gfp(light), self.order) {
            Some(p) => (p, self.order, self.objects),
            None => {
                let p = pp.alloc_pages(Gfp(flags), self.min_order)?;
                self.count(SlubStat::OrderFallback);
                (p, self.min_order, self.min_objects)
            }
        };
        let me = self.addr();
        let page = pp.page_mut(pfn);
        page.set(PG_SLAB);
        page.set_slab_cache(me);
        page.set_slab_counters(SlabCounters {
            inuse: 0,
            objects: objects as u16,
            frozen: false,
        });
        page.lru = Links::NONE;
        let base = pp.page_address(pfn) as usize;
        if self.flags & SLAB_POISON != 0 {
            // SAFETY: the block is ours.
            unsafe {
                core::ptr::write_bytes(base as *mut u8, POISON_INUSE, (PAGE_SIZE << order) as usize)
            };
        }
        let first = base + self.red_left_pad as usize;
        let size = self.size as usize;
        for i in 0..objects as usize {
            let p = first + i * size;
            if self.debug {
                self.init_object(p, SLUB_RED_INACTIVE);
            }
            if let Some(ctor) = self.ctor {
                ctor(p as *mut u8);
            }
            let next = if i + 1 < objects as usize {
                p + size
            } else {
                0
            };
            // SAFETY: `p` is an object slot of the new slab.
            unsafe { set_fp(p, self.offset, next) };
        }
        pp.page_mut(pfn).set_freelist(first);
        self.nr_slabs += 1;
        self.total_objects += objects as usize;
        self.nr_pages += 1 << order;
        Some(pfn)
    }

    /// `discard_slab`: give an empty slab, on no list, back to the page allocator.
    fn discard_slab<P: PageProvider + ?Sized>(&mut self, pp: &mut P, slab: Pfn) {
        let objects = pp.page(slab).slab_counters().objects as u32;
        let order = self.slab_order(objects);
        if self.debug {
            self.check_discarded(pp, slab, objects, order);
        }
        let page = pp.page_mut(slab);
        page.clear(PG_SLAB);
        page.set_slab_cache(0);
        page.set_freelist(0);
        page.set_slab_counters(SlabCounters::default());
        page.lru = Links::NONE;
        pp.free_pages(slab, order);
        self.nr_slabs -= 1;
        self.total_objects -= objects as usize;
        self.nr_pages -= 1 << order;
        self.count(SlubStat::FreeSlab);
    }

    fn add_partial<P: Pages + ?Sized>(&mut self, pp: &mut P, slab: Pfn, tail: bool) {
        self.partial_free += free_objs(pp.page(slab).slab_counters());
        if tail {
            self.partial.push_back(pp, slab);
        } else {
            self.partial.push_front(pp, slab);
        }
    }

    fn remove_partial<P: Pages + ?Sized>(&mut self, pp: &mut P, slab: Pfn) {
        self.partial_free -= free_objs(pp.page(slab).slab_counters());
        self.partial.remove(pp, slab);
    }

    // ---- free ------------------------------------------------------------------------

    /// `kmem_cache_free` on `cpu`. Refuses (and leaves alone) pointers that are not live
    /// objects of this cache as far as the checks can tell; debug caches check more.
    pub fn free<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        obj: NonNull<u8>,
        cpu: usize,
    ) -> Result<(), SlabError> {
        let cpu = cpu % NR_CPUS;
        let addr = obj.as_ptr() as usize;
        let slab = self.object_slab(pp, obj.as_ptr())?;
        if self.debug {
            self.free_debug(pp, slab, addr)?;
        } else if self.cpu_slab[cpu].slab == Some(slab) {
            let c = &mut self.cpu_slab[cpu];
            // Naive double-free detection (CONFIG_SLAB_FREELIST_HARDENED).
            if c.freelist == addr {
                return Err(self.err(addr, SlabErrorKind::DoubleFree));
            }
            // SAFETY: `addr` is an object of the CPU slab (checked above).
            unsafe { set_fp(addr, self.offset, c.freelist) };
            c.freelist = addr;
            c.tid += TID_STEP;
            self.count(SlubStat::FreeFastpath);
        } else {
            self.free_slow(pp, slab, addr)?;
        }
        self.live = self.live.saturating_sub(1);
        Ok(())
    }

    /// `__slab_free`: free to a slab this CPU does not own.
    fn free_slow<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        slab: Pfn,
        addr: usize,
    ) -> Result<(), SlabError> {
        self.count(SlubStat::FreeSlowpath);
        let page = pp.page(slab);
        let prior = page.freelist();
        let mut c = page.slab_counters();
        if prior == addr || c.inuse == 0 {
            return Err(self.err(addr, SlabErrorKind::DoubleFree));
        }
        // SAFETY: `addr` is an object of `slab` (checked by the caller).
        unsafe { set_fp(addr, self.offset, prior) };
        c.inuse -= 1;
        let page = pp.page_mut(slab);
        page.set_freelist(addr);
        page.set_slab_counters(c);
        if c.frozen {
            // Another CPU's slab: that CPU picks the object up on its next refill.
            self.count(SlubStat::FreeFrozen);
            return Ok(());
        }
        if prior != 0 {
            // On the partial list already.
            self.partial_free += 1;
        }
        if c.inuse == 0 && self.partial.len() >= self.min_partial {
            if prior != 0 {
                self.remove_partial(pp, slab);
                self.count(SlubStat::FreeRemovePartial);
            }
            self.discard_slab(pp, slab);
        } else if prior == 0 {
            // Was full.
            self.add_partial(pp, slab, true);
            self.count(SlubStat::FreeAddPartial);
        }
        Ok(())
    }

    // ---- CPU slab flushing, shrink, destroy --------------------------------------------

    /// `deactivate_slab`: give `cpu`'s slab back, merging its CPU freelist into the slab's.
    fn deactivate_slab<P: PageProvider + ?Sized>(&mut self, pp: &mut P, cpu: usize) {
        let c = &mut self.cpu_slab[cpu];
        let Some(slab) = c.slab.take() else {
            return;
        };
        let mut fl = core::mem::take(&mut c.freelist);
        c.tid += TID_STEP;
        let page = pp.page(slab);
        let old = page.freelist();
        let mut cnt = page.slab_counters();
        let remote = old != 0;
        // Walk to the tail of the CPU freelist, at most `objects` steps (a longer chain means
        // a cycle from an undetected double free).
        let base = pp.page_address(slab) as usize;
        let (mut n, mut tail, mut p) = (0u16, 0usize, fl);
        while p != 0 && n < cnt.objects && self.valid_pointer(base, cnt.objects as u32, p) {
            tail = p;
            // SAFETY: `p` is an object of `slab`.
            p = unsafe { get_fp(p, self.offset) };
            n += 1;
        }
        if p != 0 {
            self.report(self.err(tail, SlabErrorKind::FreePointerCorrupt { value: p }));
            // Freelist cleared: the slab's objects count as used from now on (`slab_fix`).
            fl = 0;
            n = 0;
            cnt.inuse = cnt.objects;
        } else if tail != 0 {
            // SAFETY: as above.
            unsafe { set_fp(tail, self.offset, old) };
        } else {
            fl = old;
        }
        cnt.inuse = cnt.inuse.saturating_sub(n);
        cnt.frozen = false;
        let page = pp.page_mut(slab);
        page.set_freelist(fl);
        page.set_slab_counters(cnt);
        if remote {
            self.count(SlubStat::DeactivateRemoteFrees);
        }
        if cnt.inuse == 0 && self.partial.len() >= self.min_partial {
            self.count(SlubStat::DeactivateEmpty);
            self.discard_slab(pp, slab);
        } else if fl != 0 {
            // Slabs with remote frees go to the tail: their objects are cache-cold.
            self.add_partial(pp, slab, remote);
            self.count(if remote {
                SlubStat::DeactivateToTail
            } else {
                SlubStat::DeactivateToHead
            });
        } else {
            self.count(SlubStat::DeactivateFull);
        }
    }

    /// `flush_all`: deactivate every CPU slab.
    fn flush_all<P: PageProvider + ?Sized>(&mut self, pp: &mut P) {
        for cpu in 0..NR_CPUS {
            if self.cpu_slab[cpu].slab.is_some() {
                self.count(SlubStat::CpuslabFlush);
                self.deactivate_slab(pp, cpu);
            }
        }
    }

    /// `kmem_cache_shrink`: flush the CPU slabs, free every empty slab (whatever
    /// `min_partial` says) and order the partial list fullest first, so allocations fill
    /// nearly-full slabs and the others can drain. Returns the frames freed.
    pub fn shrink<P: PageProvider + ?Sized>(&mut self, pp: &mut P) -> usize {
        let before = self.nr_pages;
        self.flush_all(pp);
        let mut promote = [PageList::new(); SHRINK_PROMOTE_MAX];
        let mut rest = PageList::new();
        while let Some(slab) = self.partial.first() {
            let c = pp.page(slab).slab_counters();
            self.remove_partial(pp, slab);
            let free = free_objs(c);
            if c.inuse == 0 {
                self.discard_slab(pp, slab);
            } else if (1..=SHRINK_PROMOTE_MAX).contains(&free) {
                promote[free - 1].push_back(pp, slab);
            } else {
                rest.push_back(pp, slab);
            }
        }
        for list in promote.iter_mut().chain(core::iter::once(&mut rest)) {
            while let Some(slab) = list.pop_front(pp) {
                self.add_partial(pp, slab, true);
            }
        }
        before - self.nr_pages
    }

    /// `kmem_cache_destroy` (`__kmem_cache_shutdown`): free every slab. If objects are still
    /// allocated, the slabs holding them stay and the error says how many and where the
    /// first is; the cache stays usable.
    pub fn destroy<P: PageProvider + ?Sized>(&mut self, pp: &mut P) -> Result<(), SlabError> {
        self.shrink(pp);
        if self.nr_slabs == 0 {
            return Ok(());
        }
        let count = self.total_objects - self.partial_free;
        let mut first = 0;
        'found: for list in [self.partial, self.full] {
            for slab in list.iter(pp) {
                let base = pp.page_address(slab) as usize + self.red_left_pad as usize;
                let objects = pp.page(slab).slab_counters().objects as usize;
                for i in 0..objects {
                    let obj = base + i * self.size as usize;
                    if !self.freelist_contains(pp, slab, obj) {
                        first = obj;
                        break 'found;
                    }
                }
            }
        }
        Err(self.err(first, SlabErrorKind::ObjectsRemaining { count }))
    }

    /// Whether `obj` is on `slab`'s freelist (bounded walk; stops at a corrupt pointer).
    fn freelist_contains<P: PageProvider + ?Sized>(&self, pp: &P, slab: Pfn, obj: usize) -> bool {
        let base = pp.page_address(slab) as usize;
        let page = pp.page(slab);
        let objects = page.slab_counters().objects as u32;
        let mut p = page.freelist();
        let mut n = 0;
        while p != 0 && n <= objects && self.valid_pointer(base, objects, p) {
            if p == obj {
                return true;
            }
            // SAFETY: `p` is an object of the slab.
            p = unsafe { get_fp(p, self.offset) };
            n += 1;
        }
        false
    }

    // ---- debug -------------------------------------------------------------------------

    /// `init_object`: red zones set to `val`, body poisoned.
    fn init_object(&self, obj: usize, val: u8) {
        let p = obj as *mut u8;
        let os = self.object_size as usize;
        // SAFETY: `obj` is an object slot of one of our slabs; the red zones and the object
        // are inside the slot.
        unsafe {
            if self.flags & SLAB_RED_ZONE != 0 {
                core::ptr::write_bytes(
                    p.sub(self.red_left_pad as usize),
                    val,
                    self.red_left_pad as usize,
                );
            }
            if self.flags & OBJECT_POISON != 0 {
                core::ptr::write_bytes(p, POISON_FREE, os - 1);
                p.add(os - 1).write(POISON_END);
            }
            if self.flags & SLAB_RED_ZONE != 0 {
                core::ptr::write_bytes(p.add(os), val, (self.inuse - self.object_size) as usize);
            }
        }
    }

    fn check_area(
        &self,
        obj: usize,
        area: Area,
        start: usize,
        value: u8,
        len: usize,
    ) -> Result<(), SlabError> {
        // SAFETY: callers pass ranges inside the object's slot.
        match unsafe { check_bytes(start, value, len) } {
            None => Ok(()),
            Some((fault, found)) => Err(self.err(
                obj,
                SlabErrorKind::Overwritten {
                    area,
                    fault,
                    found,
                    expected: value,
                },
            )),
        }
    }

    /// `check_object`: red zones (expected `val`), poison of a free object, padding, and the
    /// free pointer where it is meaningful.
    fn check_object(
        &self,
        base: usize,
        objects: u32,
        obj: usize,
        val: u8,
    ) -> Result<(), SlabError> {
        let os = self.object_size as usize;
        let inuse = self.inuse as usize;
        if self.flags & SLAB_RED_ZONE != 0 {
            let pad = self.red_left_pad as usize;
            self.check_area(obj, Area::LeftRedzone, obj - pad, val, pad)?;
            self.check_area(obj, Area::RightRedzone, obj + os, val, inuse - os)?;
        } else if self.flags & SLAB_POISON != 0 && os < inuse {
            self.check_area(
                obj,
                Area::AlignmentPadding,
                obj + os,
                POISON_INUSE,
                inuse - os,
            )?;
        }
        if self.flags & SLAB_POISON != 0 {
            if val != SLUB_RED_ACTIVE && self.flags & OBJECT_POISON != 0 {
                self.check_area(obj, Area::Poison, obj, POISON_FREE, os - 1)?;
                self.check_area(obj, Area::Poison, obj + os - 1, POISON_END, 1)?;
            }
            // Bytes after the metadata, up to the next slot.
            let info_end = if self.offset >= self.inuse {
                self.offset as usize + PTR as usize
            } else {
                inuse
            };
            let slot_end = (self.size - self.red_left_pad) as usize;
            if info_end < slot_end {
                self.check_area(
                    obj,
                    Area::ObjectPadding,
                    obj + info_end,
                    POISON_INUSE,
                    slot_end - info_end,
                )?;
            }
        }
        if self.offset < self.inuse && val == SLUB_RED_ACTIVE {
            // The free pointer is inside a live object: user data.
            return Ok(());
        }
        // SAFETY: the free pointer slot is inside the object's slot.
        let fp = unsafe { get_fp(obj, self.offset) };
        if !self.valid_pointer(base, objects, fp) {
            return Err(self.err(obj, SlabErrorKind::FreePointerCorrupt { value: fp }));
        }
        Ok(())
    }

    /// Take a debug slab off whatever list it is on, mark every object used (`slab_fix`:
    /// its freelist cannot be trusted) and park it on the full list.
    fn isolate_corrupt_slab<P: PageProvider + ?Sized>(&mut self, pp: &mut P, slab: Pfn) {
        let page = pp.page(slab);
        if page.freelist() != 0 {
            self.remove_partial(pp, slab);
        } else {
            self.full.remove(pp, slab);
        }
        let page = pp.page_mut(slab);
        let mut c = page.slab_counters();
        c.inuse = c.objects;
        page.set_freelist(0);
        page.set_slab_counters(c);
        self.full.push_back(pp, slab);
    }

    /// Debug allocation (`alloc_single_from_partial`/`alloc_single_from_new_slab`): one
    /// object straight from a slab, checked for overruns and use after free while it was free.
    fn alloc_debug<P: PageProvider + ?Sized>(&mut self, pp: &mut P, gfp: Gfp) -> Option<usize> {
        self.count(SlubStat::AllocSlowpath);
        loop {
            let slab = match self.partial.first() {
                Some(s) => s,
                None => {
                    let s = self.new_slab(pp, gfp)?;
                    self.count(SlubStat::AllocSlab);
                    self.add_partial(pp, s, false);
                    s
                }
            };
            let base = pp.page_address(slab) as usize;
            let page = pp.page(slab);
            let obj = page.freelist();
            let mut c = page.slab_counters();
            let checked = if self.valid_pointer(base, c.objects as u32, obj) {
                self.check_object(base, c.objects as u32, obj, SLUB_RED_INACTIVE)
            } else {
                Err(self.err(obj, SlabErrorKind::FreePointerCorrupt { value: obj }))
            };
            if let Err(e) = checked {
                self.report(e);
                self.isolate_corrupt_slab(pp, slab);
                continue;
            }
            // SAFETY: `obj` passed the checks: an object of `slab` with a valid free pointer.
            let next = unsafe { get_fp(obj, self.offset) };
            c.inuse += 1;
            let page = pp.page_mut(slab);
            page.set_freelist(next);
            page.set_slab_counters(c);
            self.partial_free -= 1;
            if next == 0 {
                self.remove_partial(pp, slab);
                self.full.push_back(pp, slab);
            }
            self.init_object(obj, SLUB_RED_ACTIVE);
            return Some(obj);
        }
    }

    /// Debug free (`free_to_partial_list`): the object must be live and its red zones and
    /// padding intact; then it is poisoned and goes straight back to its slab.
    fn free_debug<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        slab: Pfn,
        addr: usize,
    ) -> Result<(), SlabError> {
        self.count(SlubStat::FreeSlowpath);
        let base = pp.page_address(slab) as usize;
        let objects = pp.page(slab).slab_counters().objects as u32;
        // on_freelist(): a bounded walk that also validates every link.
        let mut p = pp.page(slab).freelist();
        let mut n = 0;
        while p != 0 && n <= objects {
            if p == addr {
                return Err(self.err(addr, SlabErrorKind::DoubleFree));
            }
            if !self.valid_pointer(base, objects, p) {
                break;
            }
            // SAFETY: `p` is an object of the slab.
            p = unsafe { get_fp(p, self.offset) };
            n += 1;
        }
        if p != 0 {
            let e = self.err(addr, SlabErrorKind::FreePointerCorrupt { value: p });
            self.isolate_corrupt_slab(pp, slab);
            return Err(e);
        }
        let c = pp.page(slab).slab_counters();
        if c.inuse == 0 {
            return Err(self.err(addr, SlabErrorKind::DoubleFree));
        }
        self.check_object(base, objects, addr, SLUB_RED_ACTIVE)?;
        self.init_object(addr, SLUB_RED_INACTIVE);

        let page = pp.page(slab);
        let prior = page.freelist();
        let mut c = page.slab_counters();
        // SAFETY: `addr` is an object of `slab`.
        unsafe { set_fp(addr, self.offset, prior) };
        c.inuse -= 1;
        let page = pp.page_mut(slab);
        page.set_freelist(addr);
        page.set_slab_counters(c);
        let slab_free = c.inuse == 0 && self.partial.len() >= self.min_partial;
        if prior == 0 {
            self.full.remove(pp, slab);
            if !slab_free {
                self.add_partial(pp, slab, true);
                self.count(SlubStat::FreeAddPartial);
            }
        } else {
            self.partial_free += 1;
            if slab_free {
                self.remove_partial(pp, slab);
                self.count(SlubStat::FreeRemovePartial);
            }
        }
        if slab_free {
            self.discard_slab(pp, slab);
        }
        Ok(())
    }

    /// Before a debug slab is freed: every object must still be a clean free object, and the
    /// slab tail unwritten (`slab_pad_check`). Problems are reported; the slab goes anyway.
    fn check_discarded<P: PageProvider + ?Sized>(
        &mut self,
        pp: &P,
        slab: Pfn,
        objects: u32,
        order: u32,
    ) {
        let base = pp.page_address(slab) as usize;
        let used = objects as usize * self.size as usize;
        let len = (PAGE_SIZE << order) as usize;
        if self.flags & SLAB_POISON != 0 && used < len {
            if let Err(e) = self.check_area(
                base,
                Area::SlabPadding,
                base + used,
                POISON_INUSE,
                len - used,
            ) {
                self.report(e);
            }
        }
        for i in 0..objects as usize {
            let obj = base + self.red_left_pad as usize + i * self.size as usize;
            if let Err(e) = self.check_object(base, objects, obj, SLUB_RED_INACTIVE) {
                self.report(e);
            }
        }
    }

    // ---- validation --------------------------------------------------------------------

    /// Count `slab`'s chain starting at `p`, checking each link.
    fn chain_len<P: PageProvider + ?Sized>(
        &self,
        pp: &P,
        slab: Pfn,
        mut p: usize,
    ) -> Result<usize, &'static str> {
        let base = pp.page_address(slab) as usize;
        let objects = pp.page(slab).slab_counters().objects as u32;
        let mut n = 0;
        while p != 0 {
            if !self.valid_pointer(base, objects, p) {
                return Err("free pointer outside its slab");
            }
            n += 1;
            if n > objects as usize {
                return Err("freelist longer than the slab (cycle)");
            }
            // SAFETY: `p` is an object of the slab.
            p = unsafe { get_fp(p, self.offset) };
        }
        Ok(n)
    }

    fn check_slab_page<P: PageProvider + ?Sized>(
        &self,
        pp: &P,
        slab: Pfn,
    ) -> Result<SlabCounters, &'static str> {
        let page = pp.page(slab);
        if !page.test(PG_SLAB) || page.slab_cache() != self.addr() {
            return Err("slab page not marked as this cache's slab");
        }
        let c = page.slab_counters();
        if c.objects as u32 != self.objects && c.objects as u32 != self.min_objects {
            return Err("slab with a wrong object count");
        }
        if c.inuse > c.objects {
            return Err("inuse above objects");
        }
        Ok(c)
    }

    /// Cross-check every list and counter against the slabs (self-tests; walks every free
    /// object). The live-object count only matches while no corruption has been reported.
    pub fn validate<P: PageProvider + ?Sized>(&self, pp: &P) -> Result<(), &'static str> {
        let mut free = 0;
        let mut listed = 0;
        let mut partial_free = 0;
        for slab in self.partial.iter(pp) {
            let c = self.check_slab_page(pp, slab)?;
            if c.frozen {
                return Err("frozen slab on the partial list");
            }
            let n = self.chain_len(pp, slab, pp.page(slab).freelist())?;
            if n == 0 || n != free_objs(c) {
                return Err("partial slab freelist does not match its counters");
            }
            partial_free += n;
            listed += 1;
        }
        if partial_free != self.partial_free {
            return Err("partial_free out of date");
        }
        free += partial_free;
        for slab in self.full.iter(pp) {
            let c = self.check_slab_page(pp, slab)?;
            if c.frozen || pp.page(slab).freelist() != 0 || c.inuse != c.objects {
                return Err("full-list slab is not full");
            }
            listed += 1;
        }
        for c in &self.cpu_slab {
            match c.slab {
                None if c.freelist != 0 => return Err("CPU freelist without a CPU slab"),
                None => {}
                Some(slab) => {
                    let cnt = self.check_slab_page(pp, slab)?;
                    if !cnt.frozen {
                        return Err("CPU slab not frozen");
                    }
                    let remote = self.chain_len(pp, slab, pp.page(slab).freelist())?;
                    let local = self.chain_len(pp, slab, c.freelist)?;
                    if cnt.inuse as usize + remote != cnt.objects as usize {
                        return Err("CPU slab inuse does not match its remote frees");
                    }
                    free += remote + local;
                    listed += 1;
                }
            }
        }
        if listed > self.nr_slabs || (self.debug && listed != self.nr_slabs) {
            return Err("slab count does not match the lists");
        }
        if self.total_objects < free || self.total_objects - free != self.live {
            return Err("live objects do not match the free objects");
        }
        Ok(())
    }
}

/// The two `/proc/slabinfo` header lines.
pub fn write_slabinfo_header(w: &mut impl fmt::Write) -> fmt::Result {
    w.write_str("slabinfo - version: 2.1\n")?;
    w.write_str(
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n",
    )
}

/// One `/proc/slabinfo` line, in Linux's `slabinfo_show` format (SLUB has no tunables).
pub fn write_slabinfo_line(w: &mut impl fmt::Write, cache: &KmemCache) -> fmt::Result {
    let i = cache.info();
    writeln!(
        w,
        "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
        cache.name(),
        i.active_objs,
        i.num_objs,
        i.objsize,
        i.objperslab,
        i.pagesperslab,
        0,
        0,
        0,
        i.active_slabs,
        i.num_slabs,
        0
    )
}

/// A host page provider for SLUB and kmalloc tests: frames in a heap arena aligned like the
/// buddy allocator's blocks, a first-fit block allocator honouring order alignment and the
/// `__GFP_COMP` convention, and checks that freed frames come back clean.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::page::flags::{PG_HEAD, PG_TAIL};
    use crate::page::Page;
    use std::alloc::{alloc, dealloc, Layout};
    use std::vec::Vec;

    pub(crate) struct TestPages {
        base: *mut u8,
        layout: Layout,
        start: u64,
        frames: usize,
        pages: Vec<Page>,
        /// Order of the allocated block starting at each frame.
        block: Vec<Option<u32>>,
        used: Vec<bool>,
        /// Frames handed out and not freed.
        pub in_use: usize,
        /// Orders above this fail.
        pub max_order: u32,
        /// Every allocation fails.
        pub fail: bool,
        /// `(gfp, order)` of every request.
        pub log: Vec<(Gfp, u32)>,
    }

    impl TestPages {
        pub fn new(frames: usize) -> Self {
            // Aligned to the largest block so blocks are naturally aligned, as in the kernel.
            let layout = Layout::from_size_align(frames * PAGE_SIZE as usize, SLAB_MAX_SIZE)
                .expect("layout");
            // SAFETY: non-zero size.
            let base = unsafe { alloc(layout) };
            assert!(!base.is_null());
            let mut pages = vec![Page::new_reserved(); frames];
            for p in &mut pages {
                p.flags = 0;
                p.refcount = 0;
            }
            TestPages {
                base,
                layout,
                // Frame numbers fit the u32 list links; 4 MiB-aligned like the arena.
                start: 0x10_0000,
                frames,
                pages,
                block: vec![None; frames],
                used: vec![false; frames],
                in_use: 0,
                max_order: MAX_ORDER - 1,
                fail: false,
                log: Vec::new(),
            }
        }

        fn idx(&self, pfn: Pfn) -> usize {
            let i = pfn.0.wrapping_sub(self.start) as usize;
            assert!(i < self.frames, "pfn {pfn:?} outside the arena");
            i
        }

        /// An address in the arena that is in no block (for "not a slab" tests).
        pub fn base(&self) -> *mut u8 {
            self.base
        }
    }

    impl Drop for TestPages {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(self.base, self.layout) };
        }
    }

    impl Pages for TestPages {
        fn page(&self, pfn: Pfn) -> &Page {
            &self.pages[self.idx(pfn)]
        }
        fn page_mut(&mut self, pfn: Pfn) -> &mut Page {
            let i = self.idx(pfn);
            &mut self.pages[i]
        }
    }

    impl PageProvider for TestPages {
        fn alloc_pages(&mut self, gfp: Gfp, order: u32) -> Option<Pfn> {
            self.log.push((gfp, order));
            if self.fail || order > self.max_order {
                return None;
            }
            let n = 1usize << order;
            let i = (0..self.frames)
                .step_by(n)
                .find(|&i| i + n <= self.frames && self.used[i..i + n].iter().all(|u| !u))?;
            let head = self.start + i as u64;
            for j in i..i + n {
                self.used[j] = true;
                let p = &mut self.pages[j];
                assert_eq!(p.flags, 0, "allocating a frame that is not clean");
                p.refcount = (j == i) as i32;
                if gfp.contains(Gfp::COMP) && order > 0 {
                    if j == i {
                        p.set(PG_HEAD);
                        p.order = order as u8;
                    } else {
                        p.set(PG_TAIL);
                        p.compound_head = head as u32;
                    }
                }
            }
            let fill = if gfp.contains(Gfp::ZERO) { 0 } else { 0x99 };
            // SAFETY: the block is inside the arena.
            unsafe {
                core::ptr::write_bytes(
                    self.base.add(i * PAGE_SIZE as usize),
                    fill,
                    n * PAGE_SIZE as usize,
                )
            };
            self.block[i] = Some(order);
            self.in_use += n;
            Some(Pfn(head))
        }

        fn free_pages(&mut self, pfn: Pfn, order: u32) {
            let i = self.idx(pfn);
            assert_eq!(
                self.block[i],
                Some(order),
                "free of {pfn:?} with the wrong order"
            );
            self.block[i] = None;
            let n = 1usize << order;
            for j in i..i + n {
                let p = &mut self.pages[j];
                assert!(!p.test(PG_SLAB), "freed frame still PG_slab");
                assert_eq!(
                    (p.mapping, p.index, p.private),
                    (0, 0, 0),
                    "freed frame not clean"
                );
                assert_eq!(p.lru, Links::NONE, "freed frame still on a list");
                p.flags = 0;
                p.order = 0;
                p.refcount = 0;
                p.compound_head = NO_PFN;
                self.used[j] = false;
            }
            // SAFETY: inside the arena; poison freed memory so stale use shows.
            unsafe {
                core::ptr::write_bytes(
                    self.base.add(i * PAGE_SIZE as usize),
                    0xdd,
                    n * PAGE_SIZE as usize,
                )
            };
            self.in_use -= n;
        }

        fn page_address(&self, pfn: Pfn) -> *mut u8 {
            let i = self.idx(pfn);
            // SAFETY: inside the arena.
            unsafe { self.base.add(i * PAGE_SIZE as usize) }
        }

        fn virt_to_pfn(&self, addr: *const u8) -> Option<Pfn> {
            let off = (addr as usize).wrapping_sub(self.base as usize);
            (off < self.frames * PAGE_SIZE as usize)
                .then(|| Pfn(self.start + (off >> PAGE_SHIFT) as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestPages;
    use super::*;
    use std::boxed::Box;
    use std::string::String;
    use std::vec::Vec;

    fn cache(name: &'static str, size: usize, align: usize, flags: u32) -> Box<KmemCache> {
        Box::new(KmemCache::new(name, size, align, flags, None).expect("cache"))
    }

    fn alloc(c: &mut KmemCache, pp: &mut TestPages, cpu: usize) -> NonNull<u8> {
        c.alloc(pp, Gfp::KERNEL, cpu).expect("alloc")
    }

    #[test]
    fn order_and_objects_like_linux_with_four_cpus() {
        // (size, order, objects): slub_min_objects = 4 * (fls(4) + 1) = 16.
        for (size, order, objects) in [
            (8, 0, 512),
            (16, 0, 256),
            (64, 0, 64),
            (96, 0, 42),
            (192, 0, 21),
            (256, 0, 16),
            (512, 1, 16),
            (1024, 2, 16),
            (2048, 3, 16),
            (4096, 3, 8),
            (8192, 3, 4),
            (700, 2, 23),
            (1 << 20, 8, 1),
        ] {
            let c = KmemCache::new("t", size, 0, 0, None).expect("cache");
            assert_eq!(
                (c.order(), c.objects_per_slab()),
                (order, objects),
                "size {size}"
            );
        }
    }

    #[test]
    fn min_partial_follows_size() {
        assert_eq!(cache("t", 64, 0, 0).min_partial(), 5);
        assert_eq!(cache("t", 1 << 20, 0, 0).min_partial(), 10);
        assert_eq!(cache("t", 1 << 14, 0, 0).min_partial(), 7);
    }

    #[test]
    fn invalid_size_and_align_refused() {
        let e = KmemCache::new("bad", 0, 0, 0, None).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::InvalidSize { size: 0 });
        assert!(KmemCache::new("bad", SLAB_MAX_SIZE + 1, 0, 0, None).is_err());
        // Fits alone, but not with its red zones.
        assert!(KmemCache::new("bad", SLAB_MAX_SIZE, 0, SLAB_RED_ZONE, None).is_err());
        assert!(KmemCache::new("ok", SLAB_MAX_SIZE, 0, 0, None).is_ok());
        let e = KmemCache::new("bad", 64, 24, 0, None).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::InvalidAlign { align: 24 });
        assert_eq!(
            e.to_string(),
            "kmem_cache_create(bad) failed: invalid alignment 24"
        );
    }

    #[test]
    fn free_pointer_mid_object_or_after_it() {
        let c = cache("t", 64, 0, 0);
        assert_eq!((c.size(), c.offset()), (64, 32));
        let c = cache("t", 12, 0, 0);
        assert_eq!((c.size(), c.offset()), (16, 0));
        fn ctor(_: *mut u8) {}
        let c = KmemCache::new("t", 64, 0, 0, Some(ctor)).unwrap();
        assert_eq!((c.size(), c.offset()), (72, 64));
    }

    #[test]
    fn debug_layout() {
        // Red zone + poison: [rz 8][obj 64][rz 8][fp 8][pad 8], align 8.
        let c = cache("t", 64, 0, SLAB_RED_ZONE | SLAB_POISON);
        assert_eq!((c.red_left_pad(), c.offset(), c.size()), (8, 72, 96));
        assert!(c.is_debug());
        // Naturally aligned kmalloc-64: left pad grows to the alignment.
        let c = cache("t", 64, 64, SLAB_RED_ZONE | SLAB_POISON);
        assert_eq!((c.red_left_pad(), c.offset(), c.size()), (64, 72, 192));
        // Red zone only keeps the free pointer inside the object.
        let c = cache("t", 60, 0, SLAB_RED_ZONE);
        assert_eq!((c.red_left_pad(), c.offset(), c.size()), (8, 24, 80));
    }

    #[test]
    fn alignment_honoured() {
        let mut pp = TestPages::new(64);
        for (size, align, flags, want) in [
            (20, 0, SLAB_HWCACHE_ALIGN, 32),
            (100, 0, SLAB_HWCACHE_ALIGN, 64),
            (100, 128, 0, 128),
            (5, 0, 0, 8),
            (24, 0, SLAB_HWCACHE_ALIGN | SLAB_RED_ZONE | SLAB_POISON, 32),
        ] {
            let mut c = cache("t", size, align, flags);
            assert_eq!(c.align(), want);
            let objs: Vec<_> = (0..c.objects_per_slab() * 2 + 1)
                .map(|_| alloc(&mut c, &mut pp, 0))
                .collect();
            for o in &objs {
                assert_eq!(o.as_ptr() as usize % want, 0, "size {size} align {align}");
            }
            for o in objs {
                c.free(&mut pp, o, 0).unwrap();
            }
            c.shrink(&mut pp);
            assert_eq!(pp.in_use, 0);
        }
    }

    #[test]
    fn objects_fill_a_slab_then_a_new_one() {
        let mut pp = TestPages::new(64);
        let mut c = cache("t", 1024, 0, 0);
        let objs: Vec<_> = (0..16).map(|_| alloc(&mut c, &mut pp, 0)).collect();
        assert_eq!((c.nr_slabs(), pp.in_use), (1, 4));
        let base = objs[0].as_ptr() as usize;
        for (i, o) in objs.iter().enumerate() {
            assert_eq!(o.as_ptr() as usize, base + i * 1024);
        }
        alloc(&mut c, &mut pp, 0);
        assert_eq!((c.nr_slabs(), pp.in_use), (2, 8));
        assert_eq!(c.stat(SlubStat::AllocSlab), 2);
        assert_eq!(c.stat(SlubStat::AllocFastpath), 15);
        assert_eq!(c.stat(SlubStat::DeactivateBypass), 1);
        c.validate(&pp).unwrap();
    }

    static CTOR_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn ctor_runs_once_per_object_at_slab_creation() {
        fn ctor(p: *mut u8) {
            CTOR_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // SAFETY: SLUB passes an object of 32 bytes.
            unsafe { core::ptr::write_bytes(p, 0x42, 32) };
        }
        let mut pp = TestPages::new(16);
        let mut c = Box::new(KmemCache::new("ctor", 32, 0, 0, Some(ctor)).unwrap());
        let per = c.objects_per_slab();
        let a = alloc(&mut c, &mut pp, 0);
        assert_eq!(CTOR_RUNS.load(std::sync::atomic::Ordering::Relaxed), per);
        // SAFETY: a is a 32-byte object.
        let bytes = unsafe { core::slice::from_raw_parts(a.as_ptr(), 32) };
        assert!(bytes.iter().all(|&b| b == 0x42));
        // The state survives a free (the free pointer lives outside the object).
        c.free(&mut pp, a, 0).unwrap();
        let b = alloc(&mut c, &mut pp, 0);
        assert_eq!(a, b);
        // SAFETY: as above.
        let bytes = unsafe { core::slice::from_raw_parts(b.as_ptr(), 32) };
        assert!(bytes.iter().all(|&b| b == 0x42));
        assert_eq!(CTOR_RUNS.load(std::sync::atomic::Ordering::Relaxed), per);
        c.free(&mut pp, b, 0).unwrap();
        c.destroy(&mut pp).unwrap();
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn zero_flag_zeroes_the_object() {
        let mut pp = TestPages::new(16);
        let mut c = cache("t", 200, 0, 0);
        let a = alloc(&mut c, &mut pp, 0);
        // SAFETY: a is a 200-byte object.
        unsafe { core::ptr::write_bytes(a.as_ptr(), 0xff, 200) };
        c.free(&mut pp, a, 0).unwrap();
        let b = c.alloc(&mut pp, Gfp::KERNEL | Gfp::ZERO, 0).unwrap();
        assert_eq!(a, b);
        // SAFETY: as above.
        let bytes = unsafe { core::slice::from_raw_parts(b.as_ptr(), 200) };
        assert!(bytes.iter().all(|&x| x == 0));
    }

    #[test]
    fn partial_list_and_remote_frees() {
        let mut pp = TestPages::new(64);
        let mut c = cache("t", 1024, 0, 0); // 16 objects per order-2 slab, min_partial 5
        let objs: Vec<_> = (0..48).map(|_| alloc(&mut c, &mut pp, 0)).collect();
        let mut live = objs.clone();
        let free = |c: &mut KmemCache, pp: &mut TestPages, live: &mut Vec<_>, o, cpu| {
            c.free(pp, o, cpu).unwrap();
            live.retain(|x| *x != o);
        };
        assert_eq!((c.nr_slabs(), c.nr_partial()), (3, 0));
        // A free into a full slab (not the CPU slab) puts it on the partial list.
        free(&mut c, &mut pp, &mut live, objs[0], 0);
        assert_eq!(c.nr_partial(), 1);
        assert_eq!(c.stat(SlubStat::FreeAddPartial), 1);
        // Emptying it keeps it: fewer than min_partial partial slabs.
        for o in &objs[1..16] {
            free(&mut c, &mut pp, &mut live, *o, 0);
        }
        assert_eq!((c.nr_slabs(), c.nr_partial()), (3, 1));
        assert_eq!(c.info().active_objs, 32);
        c.validate(&pp).unwrap();
        // Free CPU 0's slab objects from CPU 1: remote frees to a frozen slab.
        for o in &objs[32..40] {
            free(&mut c, &mut pp, &mut live, *o, 1);
        }
        assert_eq!(c.stat(SlubStat::FreeFrozen), 8);
        c.validate(&pp).unwrap();
        // CPU 0's freelist is empty, so the next allocation refills from those.
        let again = alloc(&mut c, &mut pp, 0);
        assert_eq!(c.stat(SlubStat::AllocRefill), 1);
        assert!(objs[32..40].contains(&again));
        // CPU 1 takes the partial slab.
        let x = alloc(&mut c, &mut pp, 1);
        assert_eq!(c.stat(SlubStat::AllocFromPartial), 1);
        assert_eq!(c.nr_partial(), 0);
        c.validate(&pp).unwrap();
        c.free(&mut pp, x, 1).unwrap();
        c.free(&mut pp, again, 3).unwrap();
        for o in live.clone() {
            free(&mut c, &mut pp, &mut live, o, 2);
        }
        c.validate(&pp).unwrap();
        assert_eq!(c.live_objects(), 0);
        assert_eq!(c.shrink(&mut pp), 12);
        let empty = SlabInfo {
            objsize: 1024,
            objperslab: 16,
            pagesperslab: 4,
            ..SlabInfo::default()
        };
        assert_eq!((c.nr_slabs(), pp.in_use, c.info()), (0, 0, empty));
        c.validate(&pp).unwrap();
    }

    #[test]
    fn empty_slabs_freed_while_min_partial_slabs_remain() {
        let mut pp = TestPages::new(256);
        let mut c = cache("t", 2048, 0, 0); // 16 per order-3 slab
        let objs: Vec<_> = (0..16 * 8).map(|_| alloc(&mut c, &mut pp, 0)).collect();
        assert_eq!(c.nr_slabs(), 8);
        // Free one object from each of the first 7 (full, unlisted) slabs: 7 partial slabs.
        for s in 0..7 {
            c.free(&mut pp, objs[s * 16], 0).unwrap();
        }
        assert_eq!(c.nr_partial(), 7);
        // A slab that empties is freed while the partial list (itself included) holds at
        // least min_partial (5) slabs.
        for s in 0..7 {
            for o in &objs[s * 16 + 1..s * 16 + 16] {
                c.free(&mut pp, *o, 0).unwrap();
            }
        }
        assert_eq!(c.nr_partial(), 4);
        assert_eq!(c.stat(SlubStat::FreeRemovePartial), 3);
        assert_eq!(c.nr_slabs(), 5);
        c.validate(&pp).unwrap();
    }

    #[test]
    fn shrink_frees_empty_slabs_and_puts_fullest_first() {
        let mut pp = TestPages::new(256);
        let mut c = cache("t", 2048, 0, 0);
        let objs: Vec<_> = (0..16 * 4).map(|_| alloc(&mut c, &mut pp, 0)).collect();
        // Slab 0: 3 free, slab 1: 1 free, slab 2: empty; slab 3 is CPU 0's, full.
        for o in objs[0..3].iter().chain(&objs[16..17]).chain(&objs[32..48]) {
            c.free(&mut pp, *o, 0).unwrap();
        }
        assert_eq!(c.nr_partial(), 3);
        assert_eq!(c.shrink(&mut pp), 8);
        assert_eq!(c.nr_partial(), 2);
        assert_eq!(c.stat(SlubStat::DeactivateFull), 1);
        c.validate(&pp).unwrap();
        // Slab 1 (one free object) now comes first, then slab 0 (LIFO within a slab).
        assert_eq!(alloc(&mut c, &mut pp, 0), objs[16]);
        assert_eq!(alloc(&mut c, &mut pp, 0), objs[2]);
    }

    #[test]
    fn order_fallback_when_high_orders_fail() {
        let mut pp = TestPages::new(64);
        pp.max_order = 0;
        let mut c = cache("t", 1024, 0, 0);
        let objs: Vec<_> = (0..5).map(|_| alloc(&mut c, &mut pp, 0)).collect();
        assert_eq!(c.stat(SlubStat::OrderFallback), 2);
        assert_eq!((c.nr_slabs(), pp.in_use), (2, 2));
        // The light first attempt, then the fallback with the caller's flags.
        let (g, o) = pp.log[0];
        assert_eq!(o, 2);
        assert!(g.contains(Gfp::NORETRY | Gfp::NOWARN | Gfp::COMP));
        assert_eq!(pp.log[1].1, 0);
        assert!(!pp.log[1].0.contains(Gfp::NORETRY));
        c.validate(&pp).unwrap();
        for o in objs {
            c.free(&mut pp, o, 0).unwrap();
        }
        c.shrink(&mut pp);
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn out_of_memory_returns_none_and_changes_nothing() {
        let mut pp = TestPages::new(8);
        pp.fail = true;
        let mut c = cache("t", 64, 0, 0);
        assert!(c.alloc(&mut pp, Gfp::KERNEL, 0).is_none());
        assert_eq!((c.nr_slabs(), c.live_objects()), (0, 0));
        c.validate(&pp).unwrap();
    }

    #[test]
    fn slab_gfp_comes_from_the_cache() {
        let mut pp = TestPages::new(64);
        let mut c = cache("t", 64, 0, SLAB_RECLAIM_ACCOUNT);
        c.alloc(
            &mut pp,
            Gfp::KERNEL | Gfp::ZERO | Gfp::MOVABLE | Gfp::DMA,
            0,
        )
        .unwrap();
        let g = pp.log[0].0;
        assert!(g.contains(Gfp::RECLAIMABLE | Gfp::KERNEL));
        assert!(!g.intersects(Gfp::ZERO | Gfp::MOVABLE | Gfp::DMA | Gfp::COMP));
        let mut d = cache("t", 4096, 0, SLAB_CACHE_DMA);
        d.alloc(&mut pp, Gfp::KERNEL, 0).unwrap();
        assert!(pp.log[1].0.contains(Gfp::DMA | Gfp::COMP));
    }

    #[test]
    fn free_refuses_foreign_pointers() {
        let mut pp = TestPages::new(64);
        let mut a = cache("a", 64, 0, 0);
        let mut b = cache("b", 64, 0, 0);
        let x = alloc(&mut a, &mut pp, 0);
        let y = alloc(&mut b, &mut pp, 0);
        let e = a.free(&mut pp, y, 0).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::WrongCache);
        // SAFETY: one byte into a live object.
        let inner = unsafe { NonNull::new_unchecked(x.as_ptr().add(1)) };
        assert_eq!(
            a.free(&mut pp, inner, 0).unwrap_err().kind,
            SlabErrorKind::InvalidPointer
        );
        let mut local = 0u8;
        let e = a.free(&mut pp, NonNull::from(&mut local), 0).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::NotSlab);
        assert!(e
            .to_string()
            .starts_with("BUG a: Attempt to free object(0x"));
        // An arena frame that is no slab.
        let last = NonNull::new(pp.base().wrapping_add(63 * 4096)).unwrap();
        assert_eq!(
            a.free(&mut pp, last, 0).unwrap_err().kind,
            SlabErrorKind::NotSlab
        );
        // Nothing was disturbed.
        a.free(&mut pp, x, 0).unwrap();
        b.free(&mut pp, y, 0).unwrap();
        a.validate(&pp).unwrap();
        b.validate(&pp).unwrap();
    }

    #[test]
    fn naive_double_free_detected_without_debug() {
        let mut pp = TestPages::new(16);
        let mut c = cache("kmalloc-64", 64, 0, 0);
        let x = alloc(&mut c, &mut pp, 0);
        let _y = alloc(&mut c, &mut pp, 0);
        c.free(&mut pp, x, 0).unwrap();
        let e = c.free(&mut pp, x, 0).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::DoubleFree);
        assert_eq!(
            e.to_string(),
            format!(
                "BUG kmalloc-64: Object already free at {:#x}",
                x.as_ptr() as usize
            )
        );
        c.validate(&pp).unwrap();
    }

    #[test]
    fn destroy_fails_while_objects_remain() {
        let mut pp = TestPages::new(64);
        let mut c = cache("dentry", 192, 0, 0);
        let objs: Vec<_> = (0..30).map(|_| alloc(&mut c, &mut pp, 0)).collect();
        for o in &objs[1..] {
            c.free(&mut pp, *o, 0).unwrap();
        }
        let e = c.destroy(&mut pp).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::ObjectsRemaining { count: 1 });
        assert_eq!(e.object, objs[0].as_ptr() as usize);
        assert_eq!(
            e.to_string(),
            format!("BUG dentry: Objects remaining in dentry on __kmem_cache_shutdown(): 1, first at {:#x}", e.object)
        );
        assert_eq!((c.nr_slabs(), pp.in_use), (1, 1));
        c.validate(&pp).unwrap();
        c.free(&mut pp, objs[0], 3).unwrap();
        c.destroy(&mut pp).unwrap();
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn slabinfo_format() {
        let mut pp = TestPages::new(16);
        let mut c = cache("kmalloc-64", 64, 64, 0);
        let objs: Vec<_> = (0..10).map(|_| alloc(&mut c, &mut pp, 0)).collect();
        let mut s = String::new();
        write_slabinfo_header(&mut s).unwrap();
        write_slabinfo_line(&mut s, &c).unwrap();
        assert_eq!(
            s,
            "slabinfo - version: 2.1\n\
             # name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n\
             kmalloc-64            64     64     64   64    1 : tunables    0    0    0 : slabdata      1      1      0\n"
        );
        // Objects free on a partial slab are inactive; those on a CPU freelist are not.
        c.shrink(&mut pp);
        assert_eq!(c.info().active_objs, 10);
        for o in objs {
            c.free(&mut pp, o, 0).unwrap();
        }
        let mut s = String::new();
        write_slabinfo_line(&mut s, &cache("a-very-long-cache-name", 8, 0, 0)).unwrap();
        assert_eq!(s, "a-very-long-cache-name      0      0      8  512    1 : tunables    0    0    0 : slabdata      0      0      0\n");
    }

    // ---- debug caches ----

    const DEBUG: u32 = SLAB_RED_ZONE | SLAB_POISON | SLAB_CONSISTENCY_CHECKS;

    fn bytes(p: *const u8, len: usize) -> Vec<u8> {
        // SAFETY: tests read inside object slots.
        unsafe { core::slice::from_raw_parts(p, len).to_vec() }
    }

    #[test]
    fn debug_objects_are_red_zoned_and_poisoned() {
        let mut pp = TestPages::new(16);
        let mut c = cache("kmalloc-64", 64, 0, DEBUG);
        let x = alloc(&mut c, &mut pp, 0);
        let p = x.as_ptr();
        assert_eq!(bytes(p.wrapping_sub(8), 8), [SLUB_RED_ACTIVE; 8]);
        assert_eq!(bytes(p.wrapping_add(64), 8), [SLUB_RED_ACTIVE; 8]);
        let mut body = vec![POISON_FREE; 63];
        body.push(POISON_END);
        assert_eq!(bytes(p, 64), body);
        c.free(&mut pp, x, 0).unwrap();
        assert_eq!(bytes(p.wrapping_sub(8), 8), [SLUB_RED_INACTIVE; 8]);
        assert_eq!(bytes(p.wrapping_add(64), 8), [SLUB_RED_INACTIVE; 8]);
        assert_eq!(bytes(p, 64), body);
        assert!(c.take_report().is_none());
        c.validate(&pp).unwrap();
        c.destroy(&mut pp).unwrap();
        assert!(c.take_report().is_none());
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn debug_double_free_caught() {
        let mut pp = TestPages::new(16);
        let mut c = cache("kmalloc-64", 64, 64, DEBUG);
        let x = alloc(&mut c, &mut pp, 0);
        let y = alloc(&mut c, &mut pp, 0);
        c.free(&mut pp, x, 0).unwrap();
        c.free(&mut pp, y, 1).unwrap();
        // x is not the freelist head any more: only the freelist walk finds it.
        let e = c.free(&mut pp, x, 2).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::DoubleFree);
        assert_eq!(
            e.to_string(),
            format!(
                "BUG kmalloc-64: Object already free at {:#x}",
                x.as_ptr() as usize
            )
        );
        c.validate(&pp).unwrap();
    }

    #[test]
    fn debug_overflow_into_red_zone_caught_at_free() {
        let mut pp = TestPages::new(16);
        let mut c = cache("kmalloc-64", 64, 64, DEBUG);
        let x = alloc(&mut c, &mut pp, 0);
        // SAFETY: one byte past the object: still in its slot (the right red zone).
        unsafe { x.as_ptr().add(64).write(0x41) };
        let e = c.free(&mut pp, x, 0).unwrap_err();
        let a = x.as_ptr() as usize;
        assert_eq!(e.cache, "kmalloc-64");
        assert_eq!(e.object, a);
        assert_eq!(
            e.kind,
            SlabErrorKind::Overwritten {
                area: Area::RightRedzone,
                fault: a + 64,
                found: 0x41,
                expected: SLUB_RED_ACTIVE
            }
        );
        assert_eq!(
            e.to_string(),
            format!("BUG kmalloc-64: Right Redzone overwritten at {a:#x}: {:#x} @offset=64 first byte 0x41 instead of 0xcc", a + 64)
        );
        // The object was not freed.
        assert_eq!(c.live_objects(), 1);
        // An underrun hits the left red zone.
        let y = alloc(&mut c, &mut pp, 0);
        // SAFETY: one byte before the object: its left red zone.
        unsafe { y.as_ptr().sub(1).write(0) };
        let e = c.free(&mut pp, y, 0).unwrap_err();
        assert!(matches!(
            e.kind,
            SlabErrorKind::Overwritten {
                area: Area::LeftRedzone,
                found: 0,
                ..
            }
        ));
    }

    #[test]
    fn debug_red_zone_of_free_object_checked_at_alloc() {
        let mut pp = TestPages::new(16);
        let mut c = cache("t", 64, 0, DEBUG);
        let x = alloc(&mut c, &mut pp, 0);
        let next = x.as_ptr() as usize + c.size(); // the next (free) object
                                                   // SAFETY: overrun far enough to reach the next slot's left red zone.
        unsafe { (next as *mut u8).sub(1).write(0x11) };
        let y = alloc(&mut c, &mut pp, 0);
        assert_ne!(y.as_ptr() as usize, next);
        let r = c.take_report().expect("report");
        assert_eq!(r.object, next);
        assert!(matches!(
            r.kind,
            SlabErrorKind::Overwritten {
                area: Area::LeftRedzone,
                found: 0x11,
                ..
            }
        ));
        assert!(c.take_report().is_none());
    }

    #[test]
    fn debug_use_after_free_caught_by_poison() {
        let mut pp = TestPages::new(16);
        let mut c = cache("kmalloc-128", 128, 128, DEBUG);
        let x = alloc(&mut c, &mut pp, 0);
        c.free(&mut pp, x, 0).unwrap();
        // SAFETY: writing to a freed object (the bug being tested); memory is still a slab.
        unsafe { x.as_ptr().add(10).write(0x77) };
        let y = alloc(&mut c, &mut pp, 0);
        assert_ne!(x, y);
        let r = c.take_report().expect("poison report");
        let a = x.as_ptr() as usize;
        assert_eq!(r.cache, "kmalloc-128");
        assert_eq!(r.object, a);
        assert_eq!(
            r.kind,
            SlabErrorKind::Overwritten {
                area: Area::Poison,
                fault: a + 10,
                found: 0x77,
                expected: POISON_FREE
            }
        );
        assert!(r
            .to_string()
            .starts_with(&format!("BUG kmalloc-128: Poison overwritten at {a:#x}")));
        // The damaged slab was taken out of service; allocation goes on elsewhere.
        c.validate(&pp).unwrap_err(); // live count no longer matches: the slab's objects leak
        let z = alloc(&mut c, &mut pp, 0);
        c.free(&mut pp, z, 0).unwrap();
        c.free(&mut pp, y, 0).unwrap();
    }

    #[test]
    fn debug_corrupt_free_pointer_caught() {
        let mut pp = TestPages::new(16);
        let mut c = cache("t", 64, 0, SLAB_RED_ZONE);
        let x = alloc(&mut c, &mut pp, 0);
        let _y = alloc(&mut c, &mut pp, 0);
        c.free(&mut pp, x, 0).unwrap();
        // The free pointer sits mid-object without poisoning: smash it.
        // SAFETY: use after free of a slab object, on purpose.
        unsafe { (x.as_ptr().add(c.offset()) as *mut usize).write_unaligned(0x1234) };
        let z = alloc(&mut c, &mut pp, 0);
        assert_ne!(z, x);
        let r = c.take_report().unwrap();
        assert_eq!(r.kind, SlabErrorKind::FreePointerCorrupt { value: 0x1234 });
        assert_eq!(r.object, x.as_ptr() as usize);
    }

    #[test]
    fn debug_padding_and_slab_tail_checked_when_slab_freed() {
        let mut pp = TestPages::new(16);
        let mut c = cache("t", 100, 0, SLAB_POISON);
        // No red zone: [obj 100][align pad 4][fp 8]; 4096 % 112 = 64 tail bytes.
        assert_eq!(c.size(), 112);
        let x = alloc(&mut c, &mut pp, 0);
        // SAFETY: overrun into the alignment padding of the object's slot.
        unsafe { x.as_ptr().add(101).write(0) };
        let e = c.free(&mut pp, x, 0).unwrap_err();
        assert!(matches!(
            e.kind,
            SlabErrorKind::Overwritten {
                area: Area::AlignmentPadding,
                ..
            }
        ));
        // SAFETY: restore it so the object can go; then scribble on the slab tail.
        unsafe { x.as_ptr().add(101).write(POISON_INUSE) };
        c.free(&mut pp, x, 0).unwrap();
        let base = x.as_ptr() as usize & !4095;
        // SAFETY: the tail of the slab page.
        unsafe { (base as *mut u8).add(4095).write(1) };
        c.shrink(&mut pp);
        let r = c.take_report().unwrap();
        assert!(matches!(
            r.kind,
            SlabErrorKind::Overwritten {
                area: Area::SlabPadding,
                found: 1,
                ..
            }
        ));
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn tiny_debug_objects_keep_a_red_zone() {
        let mut pp = TestPages::new(16);
        let mut c = cache("tiny", 4, 0, DEBUG);
        // [rz 8][obj 4][rz 4][fp 8][pad 8]
        assert_eq!((c.red_left_pad(), c.offset(), c.size()), (8, 8, 32));
        let x = alloc(&mut c, &mut pp, 0);
        // SAFETY: byte 4 is the right red zone of the 4-byte object.
        unsafe { x.as_ptr().add(4).write(9) };
        let e = c.free(&mut pp, x, 0).unwrap_err();
        assert!(matches!(
            e.kind,
            SlabErrorKind::Overwritten {
                area: Area::RightRedzone,
                found: 9,
                ..
            }
        ));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Alloc(usize),
            Free(usize, usize),
            Shrink,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                5 => (0..NR_CPUS).prop_map(Op::Alloc),
                4 => (any::<usize>(), 0..NR_CPUS).prop_map(|(i, c)| Op::Free(i, c)),
                1 => Just(Op::Shrink),
            ]
        }

        fn flags() -> impl Strategy<Value = u32> {
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(h, r, p, d)| {
                (if h { SLAB_HWCACHE_ALIGN } else { 0 })
                    | (if r { SLAB_RED_ZONE } else { 0 })
                    | (if p { SLAB_POISON } else { 0 })
                    | (if d { SLAB_RECLAIM_ACCOUNT } else { 0 })
            })
        }

        fn set_ff(p: *mut u8) {
            // SAFETY: the smallest object in these tests is 1 byte.
            unsafe { p.write(0xff) };
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            /// Any geometry, any interleaving of CPUs: objects aligned, disjoint, intact;
            /// counters consistent; every frame back after freeing and shrinking.
            #[test]
            fn random_cache_geometry_and_ops(
                size in prop_oneof![1usize..=64, 1usize..=3000, 3000usize..=20000],
                align in prop::sample::select(vec![0usize, 8, 16, 64, 256, 4096]),
                flags in flags(),
                with_ctor in any::<bool>(),
                ops in prop::collection::vec(op(), 1..200),
            ) {
                let ctor: Option<fn(*mut u8)> = if with_ctor { Some(set_ff) } else { None };
                let mut c = Box::new(KmemCache::new("prop", size, align, flags, ctor).unwrap());
                let mut pp = TestPages::new(2048);
                prop_assert!(c.size() >= size && c.align() >= align.max(8));
                prop_assert!(c.size().is_multiple_of(c.align()));
                let mut live: Vec<(usize, u8)> = Vec::new();
                let mut pat = 0u8;
                for op in ops {
                    match op {
                        Op::Alloc(cpu) => {
                            let p = c.alloc(&mut pp, Gfp::KERNEL, cpu).expect("arena big enough");
                            let a = p.as_ptr() as usize;
                            prop_assert_eq!(a % c.align(), 0);
                            for &(b, _) in &live {
                                prop_assert!(a + size <= b || b + size <= a, "overlap");
                            }
                            pat = pat.wrapping_add(29);
                            // SAFETY: a live object of `size` bytes.
                            unsafe { core::ptr::write_bytes(p.as_ptr(), pat, size) };
                            live.push((a, pat));
                        }
                        Op::Free(i, cpu) => {
                            if live.is_empty() {
                                continue;
                            }
                            let (a, v) = live.swap_remove(i % live.len());
                            prop_assert!(bytes(a as *const u8, size).iter().all(|&x| x == v));
                            c.free(&mut pp, NonNull::new(a as *mut u8).unwrap(), cpu).unwrap();
                        }
                        Op::Shrink => {
                            c.shrink(&mut pp);
                        }
                    }
                    prop_assert_eq!(c.validate(&pp), Ok(()));
                    prop_assert_eq!(c.live_objects(), live.len());
                }
                prop_assert!(c.take_report().is_none());
                for (a, v) in live.drain(..) {
                    prop_assert!(bytes(a as *const u8, size).iter().all(|&x| x == v));
                    c.free(&mut pp, NonNull::new(a as *mut u8).unwrap(), 0).unwrap();
                }
                c.destroy(&mut pp).unwrap();
                prop_assert!(c.take_report().is_none());
                prop_assert_eq!(pp.in_use, 0);
                prop_assert_eq!(c.info().num_objs, 0);
            }
        }
    }
}
