//! kmalloc: general-purpose allocations of any size, after Linux's `mm/slab_common.c` with
//! SLUB and 4 KiB pages.
//!
//! - Sizes up to [`KMALLOC_MAX_CACHE_SIZE`] (8 KiB) come from one of 13 size-class caches:
//!   8, 16, 32, 64, 96, 128, 192, 256, 512, 1k, 2k, 4k, 8k. Small sizes map through Linux's
//!   `size_index` table (24 → 32, 72 → 96, 130 → 192), larger ones round up to a power of two.
//! - Each class exists three times, picked by the GFP flags as `kmalloc_type()` does:
//!   `kmalloc-*` (normal), `kmalloc-rcl-*` (`__GFP_RECLAIMABLE`: slab pages from reclaimable
//!   pageblocks) and `dma-kmalloc-*` (`__GFP_DMA`: slab pages from `ZONE_DMA`).
//! - Larger sizes go straight to the page allocator as one compound block (`kmalloc_large`),
//!   up to [`KMALLOC_MAX_SIZE`] = 4 MiB (an order-10 block). That is the allocation limit:
//!   anything larger returns `None`.
//! - `kmalloc(0)` returns [`ZERO_SIZE_PTR`], a non-null pointer that must not be dereferenced
//!   and that `kfree` accepts.
//!
//! `kfree` finds the owner from the pointer alone: `PG_slab` on the (compound head) page means
//! a slab object of the cache in `slab_cache()`, `PG_head` without it a large block.
//!
//! [`Kmalloc`] holds its caches inline and slab pages point back at them, so it must not move
//! after its first allocation (keep it in a static or other pinned storage).

use core::fmt;
use core::ptr::NonNull;

use crate::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::Gfp;
use crate::page::flags::{PG_HEAD, PG_SLAB};
use crate::page::PageProvider;
use crate::slub::{
    compound_head, get_order, write_slabinfo_line, KmemCache, SlabError, SlabErrorKind,
    SLAB_CACHE_DMA, SLAB_DEBUG_FLAGS, SLAB_RECLAIM_ACCOUNT,
};

/// The buddy allocator's `MAX_ORDER` (block orders `0..MAX_ORDER`), repeated here so that
/// kmalloc does not depend on `buddy.rs`.
const MAX_ORDER: u32 = 11;

/// log2 of the smallest class.
pub const KMALLOC_SHIFT_LOW: u32 = 3;
/// log2 of the largest class: two pages.
pub const KMALLOC_SHIFT_HIGH: u32 = PAGE_SHIFT + 1;
/// log2 of the largest allocation: the largest buddy block.
pub const KMALLOC_SHIFT_MAX: u32 = MAX_ORDER + PAGE_SHIFT - 1;
pub const KMALLOC_MIN_SIZE: usize = 1 << KMALLOC_SHIFT_LOW;
/// Largest size served by a slab cache (8 KiB); above it, `kmalloc_large`.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 1 << KMALLOC_SHIFT_HIGH;
/// Largest size kmalloc serves at all (4 MiB).
pub const KMALLOC_MAX_SIZE: usize = 1 << KMALLOC_SHIFT_MAX;
/// Minimum alignment of every kmalloc object; power-of-two sizes are aligned to their size.
pub const ARCH_KMALLOC_MINALIGN: usize = 8;
/// What `kmalloc(0)` returns: non-null, never dereferenceable, accepted by `kfree`.
pub const ZERO_SIZE_PTR: usize = 16;

/// Number of size classes.
pub const NR_KMALLOC_SIZES: usize = 13;
/// Object size of each class, smallest first.
pub const KMALLOC_SIZES: [usize; NR_KMALLOC_SIZES] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];

/// Linux's `size_index`: the class of sizes 1..=192 by `(size - 1) / 8`, here as indices
/// into [`KMALLOC_SIZES`]. It is what routes 72..96 to the 96-byte class and 136..192 to the
/// 192-byte one instead of the next power of two.
const SIZE_INDEX: [u8; 24] = [
    0, // 8
    1, // 16
    2, 2, // 24, 32
    3, 3, 3, 3, // 40..64
    4, 4, 4, 4, // 72..96
    5, 5, 5, 5, // 104..128
    6, 6, 6, 6, 6, 6, 6, 6, // 136..192
];

/// The size class (index into [`KMALLOC_SIZES`]) serving `size`, or `None` for 0 and for
/// sizes above [`KMALLOC_MAX_CACHE_SIZE`] (`kmalloc_slab`).
pub const fn kmalloc_slot(size: usize) -> Option<usize> {
    if size == 0 || size > KMALLOC_MAX_CACHE_SIZE {
        None
    } else if size <= 192 {
        Some(SIZE_INDEX[(size - 1) / 8] as usize)
    } else {
        // fls(size - 1) = log2 of the power of two; 256 (2^8) is class 7.
        Some((usize::BITS - (size - 1).leading_zeros()) as usize - 1)
    }
}

/// The usable size a `kmalloc(size)` gets (`kmalloc_size_roundup`); `None` above
/// [`KMALLOC_MAX_SIZE`].
pub const fn kmalloc_size_roundup(size: usize) -> Option<usize> {
    if size == 0 {
        Some(0)
    } else if size > KMALLOC_MAX_SIZE {
        None
    } else {
        match kmalloc_slot(size) {
            Some(s) => Some(KMALLOC_SIZES[s]),
            None => Some((PAGE_SIZE as usize) << get_order(size as u64)),
        }
    }
}

/// Which set of caches an allocation uses (`enum kmalloc_cache_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KmallocType {
    Normal = 0,
    /// `__GFP_RECLAIMABLE`.
    Reclaim = 1,
    /// `__GFP_DMA`.
    Dma = 2,
}

/// Number of [`KmallocType`]s.
pub const NR_KMALLOC_TYPES: usize = 3;

impl KmallocType {
    /// In creation order.
    pub const ALL: [KmallocType; NR_KMALLOC_TYPES] =
        [KmallocType::Normal, KmallocType::Reclaim, KmallocType::Dma];

    /// `kmalloc_type()`: DMA wins over reclaimable (without memcg, `__GFP_ACCOUNT` is normal).
    pub const fn from_gfp(gfp: Gfp) -> KmallocType {
        if gfp.intersects(Gfp::DMA) {
            KmallocType::Dma
        } else if gfp.intersects(Gfp::RECLAIMABLE) {
            KmallocType::Reclaim
        } else {
            KmallocType::Normal
        }
    }

    const fn slab_flags(self) -> u32 {
        match self {
            KmallocType::Normal => 0,
            KmallocType::Reclaim => SLAB_RECLAIM_ACCOUNT,
            KmallocType::Dma => SLAB_CACHE_DMA,
        }
    }
}

const NAMES: [[&str; NR_KMALLOC_SIZES]; NR_KMALLOC_TYPES] = [
    [
        "kmalloc-8",
        "kmalloc-16",
        "kmalloc-32",
        "kmalloc-64",
        "kmalloc-96",
        "kmalloc-128",
        "kmalloc-192",
        "kmalloc-256",
        "kmalloc-512",
        "kmalloc-1k",
        "kmalloc-2k",
        "kmalloc-4k",
        "kmalloc-8k",
    ],
    [
        "kmalloc-rcl-8",
        "kmalloc-rcl-16",
        "kmalloc-rcl-32",
        "kmalloc-rcl-64",
        "kmalloc-rcl-96",
        "kmalloc-rcl-128",
        "kmalloc-rcl-192",
        "kmalloc-rcl-256",
        "kmalloc-rcl-512",
        "kmalloc-rcl-1k",
        "kmalloc-rcl-2k",
        "kmalloc-rcl-4k",
        "kmalloc-rcl-8k",
    ],
    [
        "dma-kmalloc-8",
        "dma-kmalloc-16",
        "dma-kmalloc-32",
        "dma-kmalloc-64",
        "dma-kmalloc-96",
        "dma-kmalloc-128",
        "dma-kmalloc-192",
        "dma-kmalloc-256",
        "dma-kmalloc-512",
        "dma-kmalloc-1k",
        "dma-kmalloc-2k",
        "dma-kmalloc-4k",
        "dma-kmalloc-8k",
    ],
];

/// Counters of the allocations that bypass the caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LargeStats {
    /// Successful `kmalloc_large` calls.
    pub allocs: u64,
    pub frees: u64,
    /// Requests refused: above [`KMALLOC_MAX_SIZE`] or no pages.
    pub failures: u64,
    /// Blocks currently allocated.
    pub live: usize,
    /// Frames in those blocks (Linux counts them in `NR_SLAB_UNRECLAIMABLE_B`).
    pub pages: usize,
}

/// Who owns a pointer handed to `kfree`/`ksize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Slab(KmallocType, usize),
    Large { head: Pfn, order: u32 },
}

/// The kmalloc caches and the large-allocation counters.
pub struct Kmalloc {
    caches: [[KmemCache; NR_KMALLOC_SIZES]; NR_KMALLOC_TYPES],
    large: LargeStats,
    debug_flags: u32,
    /// A corruption report of the cache the last allocation came from, for
    /// [`Kmalloc::take_report`] (checking one cache per allocation instead of all of
    /// them: reports only arise while allocating).
    pending: Option<SlabError>,
}

/// `create_kmalloc_cache` for one class: power-of-two classes are aligned to their size,
/// which kmalloc guarantees (natural alignment), the others to `ARCH_KMALLOC_MINALIGN`.
const fn new_kmalloc_cache(
    ty: KmallocType,
    slot: usize,
    debug_flags: u32,
) -> Result<KmemCache, SlabError> {
    let size = KMALLOC_SIZES[slot];
    let align = if size.is_power_of_two() {
        size
    } else {
        ARCH_KMALLOC_MINALIGN
    };
    KmemCache::new(
        NAMES[ty as usize][slot],
        size,
        align,
        ty.slab_flags() | (debug_flags & SLAB_DEBUG_FLAGS),
        None,
    )
}

impl Kmalloc {
    /// All 39 caches, empty. `debug_flags` (`SLAB_RED_ZONE`, `SLAB_POISON`,
    /// `SLAB_CONSISTENCY_CHECKS`, like `slub_debug=`) apply to every cache. `const` so that
    /// the kernel can place it in a static without building it on the stack.
    pub const fn new(debug_flags: u32) -> Result<Kmalloc, SlabError> {
        // A placeholder to fill the arrays; every element is replaced below. Evaluated at
        // compile time, so its `panic!` can only fail the build.
        const PLACEHOLDER: KmemCache = match KmemCache::new("", 8, 0, 0, None) {
            Ok(c) => c,
            Err(_) => panic!("8-byte cache"),
        };
        const ROW: [KmemCache; NR_KMALLOC_SIZES] = [PLACEHOLDER; NR_KMALLOC_SIZES];
        let mut caches = [ROW; NR_KMALLOC_TYPES];
        let mut t = 0;
        while t < NR_KMALLOC_TYPES {
            let mut s = 0;
            while s < NR_KMALLOC_SIZES {
                caches[t][s] = match new_kmalloc_cache(KmallocType::ALL[t], s, debug_flags) {
                    Ok(c) => c,
                    Err(e) => return Err(e),
                };
                s += 1;
            }
            t += 1;
        }
        Ok(Kmalloc {
            caches,
            large: LargeStats {
                allocs: 0,
                frees: 0,
                failures: 0,
                live: 0,
                pages: 0,
            },
            debug_flags: debug_flags & SLAB_DEBUG_FLAGS,
            pending: None,
        })
    }

    /// Re-create every cache in place with new debug flags (for a `slub_debug=` option
    /// parsed at boot). Refused once any cache holds a slab.
    pub fn init(&mut self, debug_flags: u32) -> Result<(), SlabError> {
        if let Some(c) = self.caches().find(|c| c.nr_slabs() != 0) {
            return Err(SlabError {
                cache: c.name(),
                object: 0,
                kind: SlabErrorKind::ObjectsRemaining {
                    count: c.live_objects(),
                },
            });
        }
        for ty in KmallocType::ALL {
            for slot in 0..NR_KMALLOC_SIZES {
                self.caches[ty as usize][slot] = new_kmalloc_cache(ty, slot, debug_flags)?;
            }
        }
        self.debug_flags = debug_flags & SLAB_DEBUG_FLAGS;
        Ok(())
    }

    /// The debug flags every cache was created with.
    pub fn debug_flags(&self) -> u32 {
        self.debug_flags
    }

    /// One cache.
    pub fn cache(&self, ty: KmallocType, slot: usize) -> &KmemCache {
        &self.caches[ty as usize][slot]
    }

    /// The cache `kmalloc(size, gfp)` uses, if a cache serves that size.
    pub fn cache_for(&self, size: usize, gfp: Gfp) -> Option<&KmemCache> {
        Some(&self.caches[KmallocType::from_gfp(gfp) as usize][kmalloc_slot(size)?])
    }

    /// Every cache, in creation order (normal, reclaimable, DMA; small to large).
    pub fn caches(&self) -> impl Iterator<Item = &KmemCache> {
        self.caches.iter().flatten()
    }

    pub fn large_stats(&self) -> LargeStats {
        self.large
    }

    /// Frames in slabs of reclaimable caches (`SReclaimable`).
    pub fn slab_reclaimable_pages(&self) -> usize {
        self.caches[KmallocType::Reclaim as usize]
            .iter()
            .map(|c| c.nr_pages())
            .sum()
    }

    /// Frames in slabs of the other caches (`SUnreclaim`, without large blocks).
    pub fn slab_unreclaimable_pages(&self) -> usize {
        [KmallocType::Normal, KmallocType::Dma]
            .iter()
            .flat_map(|&t| self.caches[t as usize].iter())
            .map(|c| c.nr_pages())
            .sum()
    }

    /// `kmalloc` on CPU 0.
    pub fn kmalloc<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        size: usize,
        gfp: Gfp,
    ) -> Option<NonNull<u8>> {
        self.kmalloc_on(pp, size, gfp, 0)
    }

    /// `kmalloc(size, gfp)` running on `cpu`. Memory is zeroed with `Gfp::ZERO`.
    pub fn kmalloc_on<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        size: usize,
        gfp: Gfp,
        cpu: usize,
    ) -> Option<NonNull<u8>> {
        if size == 0 {
            return NonNull::new(core::ptr::without_provenance_mut(ZERO_SIZE_PTR));
        }
        match kmalloc_slot(size) {
            Some(slot) => {
                let c = &mut self.caches[KmallocType::from_gfp(gfp) as usize][slot];
                let r = c.alloc(pp, gfp, cpu);
                if self.pending.is_none() {
                    self.pending = c.take_report();
                }
                r
            }
            None => self.kmalloc_large(pp, size, gfp),
        }
    }

    /// `kzalloc` on CPU 0.
    pub fn kzalloc<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        size: usize,
        gfp: Gfp,
    ) -> Option<NonNull<u8>> {
        self.kmalloc_on(pp, size, gfp | Gfp::ZERO, 0)
    }

    /// `kmalloc_large`: a compound block straight from the page allocator, which also does
    /// the zeroing for `Gfp::ZERO` (it is `alloc_pages`'s job).
    fn kmalloc_large<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        size: usize,
        gfp: Gfp,
    ) -> Option<NonNull<u8>> {
        if size > KMALLOC_MAX_SIZE {
            self.large.failures += 1;
            return None;
        }
        let order = get_order(size as u64);
        let Some(pfn) = pp.alloc_pages(gfp | Gfp::COMP, order) else {
            self.large.failures += 1;
            return None;
        };
        self.large.allocs += 1;
        self.large.live += 1;
        self.large.pages += 1 << order;
        NonNull::new(pp.page_address(pfn))
    }

    /// Who owns `addr` (> `ZERO_SIZE_PTR`).
    fn owner<P: PageProvider + ?Sized>(&self, pp: &P, addr: *const u8) -> Result<Owner, SlabError> {
        let err = |kind| SlabError {
            cache: "kmalloc",
            object: addr as usize,
            kind,
        };
        let pfn = pp
            .virt_to_pfn(addr)
            .ok_or(err(SlabErrorKind::NotSlabOrLarge))?;
        let head = compound_head(pp, pfn);
        let page = pp.page(head);
        if page.test(PG_SLAB) {
            // Which of our caches: by address, without dereferencing anything.
            let first = self.caches.as_ptr() as usize;
            let sz = core::mem::size_of::<KmemCache>();
            let off = page.slab_cache().wrapping_sub(first);
            let i = off / sz;
            if !off.is_multiple_of(sz) || i >= NR_KMALLOC_TYPES * NR_KMALLOC_SIZES {
                return Err(err(SlabErrorKind::ForeignCache));
            }
            Ok(Owner::Slab(
                KmallocType::ALL[i / NR_KMALLOC_SIZES],
                i % NR_KMALLOC_SIZES,
            ))
        } else if page.test(PG_HEAD) && self.large.live > 0 {
            if !core::ptr::eq(pp.page_address(head), addr) {
                return Err(err(SlabErrorKind::LargeInterior));
            }
            Ok(Owner::Large {
                head,
                order: page.order as u32,
            })
        } else {
            Err(err(SlabErrorKind::NotSlabOrLarge))
        }
    }

    /// `kfree` on CPU 0.
    pub fn kfree<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        ptr: *mut u8,
    ) -> Result<(), SlabError> {
        self.kfree_on(pp, ptr, 0)
    }

    /// `kfree(ptr)` running on `cpu`. Null and [`ZERO_SIZE_PTR`] are no-ops; pointers that
    /// are not live kmalloc objects are refused with an error and nothing is freed.
    pub fn kfree_on<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        ptr: *mut u8,
        cpu: usize,
    ) -> Result<(), SlabError> {
        if (ptr as usize) <= ZERO_SIZE_PTR {
            return Ok(());
        }
        match self.owner(pp, ptr)? {
            Owner::Slab(ty, slot) => {
                // `ptr` is above ZERO_SIZE_PTR, so not null.
                let Some(obj) = NonNull::new(ptr) else {
                    return Ok(());
                };
                self.caches[ty as usize][slot].free(pp, obj, cpu)
            }
            Owner::Large { head, order } => {
                pp.free_pages(head, order);
                self.large.frees += 1;
                self.large.live -= 1;
                self.large.pages = self.large.pages.saturating_sub(1 << order);
                Ok(())
            }
        }
    }

    /// `ksize`: how many bytes the object at `ptr` really has (its class size, or the whole
    /// large block); 0 for null and [`ZERO_SIZE_PTR`].
    pub fn ksize<P: PageProvider + ?Sized>(
        &self,
        pp: &P,
        ptr: *const u8,
    ) -> Result<usize, SlabError> {
        if (ptr as usize) <= ZERO_SIZE_PTR {
            return Ok(0);
        }
        match self.owner(pp, ptr)? {
            Owner::Slab(ty, slot) => {
                let c = &self.caches[ty as usize][slot];
                c.object_slab(pp, ptr)?;
                Ok(c.object_size())
            }
            Owner::Large { order, .. } => Ok((PAGE_SIZE as usize) << order),
        }
    }

    /// `krealloc` on CPU 0.
    pub fn krealloc<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        ptr: *mut u8,
        new_size: usize,
        gfp: Gfp,
    ) -> Result<Option<NonNull<u8>>, SlabError> {
        self.krealloc_on(pp, ptr, new_size, gfp, 0)
    }

    /// `krealloc(ptr, new_size, gfp)` on `cpu`: the same object if it is big enough, else a
    /// new one with the contents copied and the old one freed. `Ok(None)` when memory runs
    /// out (the old object stays valid); `new_size` 0 frees and returns [`ZERO_SIZE_PTR`].
    /// An invalid `ptr` is an error, and so is a failed free of the old object (whose red
    /// zone was found overwritten, say), in which case the new object is released again.
    // `ptr` is only read after `ksize` has placed it at an object or block start in memory
    // kmalloc manages, so a safe caller cannot make this read arbitrary memory.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn krealloc_on<P: PageProvider + ?Sized>(
        &mut self,
        pp: &mut P,
        ptr: *mut u8,
        new_size: usize,
        gfp: Gfp,
        cpu: usize,
    ) -> Result<Option<NonNull<u8>>, SlabError> {
        if new_size == 0 {
            self.kfree_on(pp, ptr, cpu)?;
            return Ok(NonNull::new(core::ptr::without_provenance_mut(
                ZERO_SIZE_PTR,
            )));
        }
        let ks = self.ksize(pp, ptr)?;
        if ks >= new_size {
            return Ok(NonNull::new(ptr));
        }
        let Some(new) = self.kmalloc_on(pp, new_size, gfp, cpu) else {
            return Ok(None);
        };
        if ks > 0 {
            // SAFETY: `ptr` is a live object of `ks` bytes (ksize checked it) and `new` a
            // distinct one of at least `new_size > ks` bytes.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new.as_ptr(), ks) };
        }
        if let Err(e) = self.kfree_on(pp, ptr, cpu) {
            // Best effort: `new` was just allocated here, so this free cannot fail.
            let _ = self.kfree_on(pp, new.as_ptr(), cpu);
            return Err(e);
        }
        Ok(Some(new))
    }

    /// `kmem_cache_shrink` of every cache. Returns the frames freed.
    pub fn shrink<P: PageProvider + ?Sized>(&mut self, pp: &mut P) -> usize {
        self.caches.iter_mut().flatten().map(|c| c.shrink(pp)).sum()
    }

    /// The oldest allocation-time corruption report of any cache.
    pub fn take_report(&mut self) -> Option<SlabError> {
        self.pending.take()
    }

    /// [`Kmalloc::take_report`] over every cache (reports left behind by allocations
    /// that found several).
    pub fn take_any_report(&mut self) -> Option<SlabError> {
        self.pending.take().or_else(|| {
            self.caches
                .iter_mut()
                .flatten()
                .find_map(|c| c.take_report())
        })
    }

    /// The `/proc/slabinfo` lines of every cache, newest first as Linux lists them (the
    /// header is [`crate::slub::write_slabinfo_header`]).
    pub fn write_slabinfo(&self, w: &mut impl fmt::Write) -> fmt::Result {
        for row in self.caches.iter().rev() {
            for c in row.iter().rev() {
                write_slabinfo_line(w, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::Pages;
    use crate::slub::testing::TestPages;
    use crate::slub::{write_slabinfo_header, SLAB_CONSISTENCY_CHECKS, SLAB_POISON, SLAB_RED_ZONE};
    use crate::NR_CPUS;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::collections::BTreeMap;
    use std::string::String;
    use std::vec::Vec;

    const DEBUG: u32 = SLAB_RED_ZONE | SLAB_POISON | SLAB_CONSISTENCY_CHECKS;

    fn kmalloc(debug: u32) -> Box<Kmalloc> {
        Box::new(Kmalloc::new(debug).expect("kmalloc caches"))
    }

    #[test]
    fn size_classes_like_linux() {
        assert_eq!(kmalloc_slot(0), None);
        assert_eq!(kmalloc_slot(8193), None);
        for (size, class) in [
            (1, 8),
            (8, 8),
            (9, 16),
            (24, 32),
            (33, 64),
            (65, 96),
            (72, 96),
            (96, 96),
            (97, 128),
            (130, 192),
            (192, 192),
            (193, 256),
            (257, 512),
            (1000, 1024),
            (4097, 8192),
            (8192, 8192),
        ] {
            assert_eq!(
                kmalloc_slot(size).map(|s| KMALLOC_SIZES[s]),
                Some(class),
                "size {size}"
            );
        }
        // Every size gets the smallest class that holds it.
        for size in 1..=KMALLOC_MAX_CACHE_SIZE {
            let s = kmalloc_slot(size).unwrap();
            assert!(KMALLOC_SIZES[s] >= size);
            assert!(s == 0 || KMALLOC_SIZES[s - 1] < size, "size {size}");
        }
        assert_eq!(kmalloc_size_roundup(8193), Some(16384));
        assert_eq!(kmalloc_size_roundup(KMALLOC_MAX_SIZE), Some(4 << 20));
        assert_eq!(kmalloc_size_roundup(KMALLOC_MAX_SIZE + 1), None);
        assert_eq!((KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE), (8192, 4 << 20));
    }

    #[test]
    fn cache_names_and_geometry() {
        let k = kmalloc(0);
        let names: Vec<_> = k.caches().map(|c| c.name()).collect();
        assert_eq!(names.len(), 39);
        assert_eq!(names[0], "kmalloc-8");
        assert_eq!(names[9], "kmalloc-1k");
        assert_eq!(names[12], "kmalloc-8k");
        assert_eq!(names[13], "kmalloc-rcl-8");
        assert_eq!(names[38], "dma-kmalloc-8k");
        for c in k.caches() {
            let size = c.object_size();
            assert_eq!(c.size(), size, "{}: no metadata without debug", c.name());
            let align = if size.is_power_of_two() { size } else { 8 };
            assert_eq!(c.align(), align);
        }
        let c = k.cache(KmallocType::Normal, 12);
        assert_eq!((c.order(), c.objects_per_slab()), (3, 4));
        assert_eq!(k.cache_for(72, Gfp::KERNEL).unwrap().name(), "kmalloc-96");
        assert_eq!(
            k.cache_for(130, Gfp::KERNEL | Gfp::RECLAIMABLE)
                .unwrap()
                .name(),
            "kmalloc-rcl-192"
        );
        assert_eq!(
            k.cache_for(24, Gfp::KERNEL | Gfp::DMA).unwrap().name(),
            "dma-kmalloc-32"
        );
        assert!(k.cache_for(8193, Gfp::KERNEL).is_none());
    }

    #[test]
    fn types_pick_cache_and_page_flags() {
        let mut pp = TestPages::new(256);
        let mut k = kmalloc(0);
        let a = k.kmalloc(&mut pp, 100, Gfp::KERNEL).unwrap();
        let b = k
            .kmalloc(&mut pp, 100, Gfp::KERNEL | Gfp::RECLAIMABLE)
            .unwrap();
        let c = k.kmalloc(&mut pp, 100, Gfp::KERNEL | Gfp::DMA).unwrap();
        let slab_cache = |p: NonNull<u8>, pp: &TestPages| {
            let pfn = pp.virt_to_pfn(p.as_ptr()).unwrap();
            pp.page(compound_head(pp, pfn)).slab_cache()
        };
        for (p, ty) in [
            (a, KmallocType::Normal),
            (b, KmallocType::Reclaim),
            (c, KmallocType::Dma),
        ] {
            let cache = k.cache(ty, kmalloc_slot(100).unwrap());
            assert_eq!(slab_cache(p, &pp), cache as *const KmemCache as usize);
            assert_eq!(cache.live_objects(), 1);
        }
        assert!(!pp.log[0].0.intersects(Gfp::RECLAIMABLE | Gfp::DMA));
        assert!(pp.log[1].0.contains(Gfp::RECLAIMABLE));
        assert!(pp.log[2].0.contains(Gfp::DMA));
        assert_eq!(k.slab_reclaimable_pages(), 1);
        assert_eq!(k.slab_unreclaimable_pages(), 2);
        for p in [a, b, c] {
            k.kfree(&mut pp, p.as_ptr()).unwrap();
        }
        k.shrink(&mut pp);
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn zero_size_returns_zero_size_ptr() {
        let mut pp = TestPages::new(16);
        let mut k = kmalloc(0);
        let z = k.kmalloc(&mut pp, 0, Gfp::KERNEL).unwrap();
        assert_eq!(z.as_ptr() as usize, ZERO_SIZE_PTR);
        assert_eq!(k.ksize(&pp, z.as_ptr()), Ok(0));
        k.kfree(&mut pp, z.as_ptr()).unwrap();
        k.kfree(&mut pp, core::ptr::null_mut()).unwrap();
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn large_allocations_go_to_the_page_allocator() {
        let mut pp = TestPages::new(2048);
        let mut k = kmalloc(0);
        let p = k.kmalloc(&mut pp, 8193, Gfp::KERNEL).unwrap();
        let pfn = pp.virt_to_pfn(p.as_ptr()).unwrap();
        let page = pp.page(pfn);
        assert!(page.test(PG_HEAD) && !page.test(PG_SLAB));
        assert_eq!(page.order, 2);
        assert_eq!(p.as_ptr() as usize % 16384, 0);
        assert_eq!(k.ksize(&pp, p.as_ptr()), Ok(16384));
        assert_eq!(k.large_stats().pages, 4);
        // The whole 4 MiB limit works; one byte more does not.
        let big = k.kzalloc(&mut pp, KMALLOC_MAX_SIZE, Gfp::KERNEL).unwrap();
        // SAFETY: a 4 MiB block.
        let bytes = unsafe { core::slice::from_raw_parts(big.as_ptr(), KMALLOC_MAX_SIZE) };
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(
            pp.log.last().unwrap(),
            &(Gfp::KERNEL | Gfp::ZERO | Gfp::COMP, 10)
        );
        assert!(k
            .kmalloc(&mut pp, KMALLOC_MAX_SIZE + 1, Gfp::KERNEL)
            .is_none());
        let s = k.large_stats();
        assert_eq!((s.allocs, s.live, s.pages, s.failures), (2, 2, 1028, 1));
        // Inside a block is not a block.
        let inner = p.as_ptr().wrapping_add(4096);
        assert_eq!(
            k.kfree(&mut pp, inner).unwrap_err().kind,
            SlabErrorKind::LargeInterior
        );
        k.kfree(&mut pp, p.as_ptr()).unwrap();
        k.kfree(&mut pp, big.as_ptr()).unwrap();
        let s = k.large_stats();
        assert_eq!((s.frees, s.live, s.pages), (2, 0, 0));
        assert_eq!(pp.in_use, 0);
        // A second kfree finds a free page.
        let e = k.kfree(&mut pp, p.as_ptr()).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::NotSlabOrLarge);
    }

    #[test]
    fn kfree_refuses_what_kmalloc_did_not_hand_out() {
        let mut pp = TestPages::new(64);
        let mut k = kmalloc(0);
        let keep = k.kmalloc(&mut pp, 9000, Gfp::KERNEL).unwrap();
        // A plain page from the page allocator.
        let pfn = pp.alloc_pages(Gfp::KERNEL, 0).unwrap();
        let page = pp.page_address(pfn);
        let e = k.kfree(&mut pp, page).unwrap_err();
        assert_eq!(e.kind, SlabErrorKind::NotSlabOrLarge);
        assert_eq!(
            e.to_string(),
            format!(
                "BUG kmalloc: kfree of a non-slab, non-large pointer {:#x}",
                page as usize
            )
        );
        // Not in the direct map at all.
        let mut x = 0u8;
        assert_eq!(
            k.kfree(&mut pp, &mut x).unwrap_err().kind,
            SlabErrorKind::NotSlabOrLarge
        );
        // A slab of a cache kmalloc does not own.
        let mut other = Box::new(KmemCache::new("other", 64, 0, 0, None).unwrap());
        let o = other.alloc(&mut pp, Gfp::KERNEL, 0).unwrap();
        assert_eq!(
            k.kfree(&mut pp, o.as_ptr()).unwrap_err().kind,
            SlabErrorKind::ForeignCache
        );
        // Inside an object.
        let s = k.kmalloc(&mut pp, 64, Gfp::KERNEL).unwrap();
        let e = k.kfree(&mut pp, s.as_ptr().wrapping_add(8)).unwrap_err();
        assert_eq!(
            (e.cache, e.kind),
            ("kmalloc-64", SlabErrorKind::InvalidPointer)
        );
        k.kfree(&mut pp, s.as_ptr()).unwrap();
        k.kfree(&mut pp, keep.as_ptr()).unwrap();
        other.free(&mut pp, o, 0).unwrap();
        other.shrink(&mut pp);
        pp.free_pages(pfn, 0);
        k.shrink(&mut pp);
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn krealloc_grows_shrinks_and_frees() {
        let mut pp = TestPages::new(64);
        let mut k = kmalloc(0);
        let p = k.kmalloc(&mut pp, 40, Gfp::KERNEL).unwrap();
        // SAFETY: 40-byte object (class 64).
        unsafe { core::ptr::copy_nonoverlapping(b"hello, slab".as_ptr(), p.as_ptr(), 11) };
        // Fits the class: same object.
        assert_eq!(
            k.krealloc(&mut pp, p.as_ptr(), 64, Gfp::KERNEL),
            Ok(Some(p))
        );
        let q = k
            .krealloc(&mut pp, p.as_ptr(), 10000, Gfp::KERNEL | Gfp::ZERO)
            .unwrap()
            .unwrap();
        assert_ne!(p, q);
        // SAFETY: q holds at least 10000 bytes.
        let b = unsafe { core::slice::from_raw_parts(q.as_ptr(), 10000) };
        assert_eq!(&b[..11], b"hello, slab");
        assert!(b[64..].iter().all(|&x| x == 0));
        assert_eq!(k.cache(KmallocType::Normal, 3).live_objects(), 0);
        // From nothing, and back to nothing.
        let r = k
            .krealloc(&mut pp, core::ptr::null_mut(), 20, Gfp::KERNEL)
            .unwrap()
            .unwrap();
        let z = k
            .krealloc(&mut pp, r.as_ptr(), 0, Gfp::KERNEL)
            .unwrap()
            .unwrap();
        assert_eq!(z.as_ptr() as usize, ZERO_SIZE_PTR);
        // Too big: the old block survives.
        assert_eq!(
            k.krealloc(&mut pp, q.as_ptr(), KMALLOC_MAX_SIZE + 1, Gfp::KERNEL),
            Ok(None)
        );
        k.kfree(&mut pp, q.as_ptr()).unwrap();
        k.shrink(&mut pp);
        assert_eq!(pp.in_use, 0);
    }

    #[test]
    fn init_changes_debug_flags_before_first_use_only() {
        let mut pp = TestPages::new(16);
        let mut k = kmalloc(0);
        k.init(SLAB_RED_ZONE).unwrap();
        assert!(k.caches().all(|c| c.is_debug()));
        assert_eq!(k.debug_flags(), SLAB_RED_ZONE);
        let p = k.kmalloc(&mut pp, 8, Gfp::KERNEL).unwrap();
        assert!(k.init(0).is_err());
        k.kfree(&mut pp, p.as_ptr()).unwrap();
        k.shrink(&mut pp);
        k.init(0).unwrap();
        assert!(k.caches().all(|c| !c.is_debug()));
    }

    #[test]
    fn debug_kmalloc_reports() {
        let mut pp = TestPages::new(64);
        let mut k = kmalloc(DEBUG);
        // kmalloc-64 keeps its natural alignment with red zones.
        let p = k.kmalloc(&mut pp, 64, Gfp::KERNEL).unwrap();
        assert_eq!(p.as_ptr() as usize % 64, 0);
        let q = k.kmalloc(&mut pp, 64, Gfp::KERNEL).unwrap();
        k.kfree(&mut pp, p.as_ptr()).unwrap();
        k.kfree(&mut pp, q.as_ptr()).unwrap();
        let e = k.kfree(&mut pp, p.as_ptr()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "BUG kmalloc-64: Object already free at {:#x}",
                p.as_ptr() as usize
            )
        );
        // Overflow of a 50-byte request into the red zone after the 64-byte class object.
        let r = k.kmalloc(&mut pp, 50, Gfp::KERNEL).unwrap();
        // SAFETY: one past the object: its right red zone.
        unsafe { r.as_ptr().add(64).write(0) };
        let e = k.kfree(&mut pp, r.as_ptr()).unwrap_err();
        assert_eq!(e.cache, "kmalloc-64");
        assert_eq!(e.object, r.as_ptr() as usize);
        assert!(e.to_string().contains("Right Redzone overwritten"));
        // Use after free of a 1k object, found at the next allocation from its slab.
        let u = k.kmalloc(&mut pp, 1000, Gfp::KERNEL).unwrap();
        k.kfree(&mut pp, u.as_ptr()).unwrap();
        // SAFETY: the slab is still there; this is the bug under test.
        unsafe { u.as_ptr().add(500).write(0x33) };
        let v = k.kmalloc(&mut pp, 1000, Gfp::KERNEL).unwrap();
        assert_ne!(u, v);
        let rep = k.take_report().unwrap();
        assert_eq!((rep.cache, rep.object), ("kmalloc-1k", u.as_ptr() as usize));
        assert!(rep.to_string().contains("Poison overwritten"));
        assert!(k.take_report().is_none());
    }

    #[test]
    fn slabinfo_lists_every_cache_newest_first() {
        let mut pp = TestPages::new(64);
        let mut k = kmalloc(0);
        let p = k.kmalloc(&mut pp, 8, Gfp::KERNEL).unwrap();
        let mut s = String::new();
        write_slabinfo_header(&mut s).unwrap();
        k.write_slabinfo(&mut s).unwrap();
        let lines: Vec<_> = s.lines().collect();
        assert_eq!(lines.len(), 2 + 39);
        assert!(lines[2].starts_with("dma-kmalloc-8k "));
        assert_eq!(
            lines[40],
            "kmalloc-8            512    512      8  512    1 : tunables    0    0    0 : slabdata      1      1      0"
        );
        assert!(
            lines[28].starts_with("kmalloc-8k             0      0   8192    4    8 :"),
            "{}",
            lines[28]
        );
        k.kfree(&mut pp, p.as_ptr()).unwrap();
    }

    // ---- property tests ----

    #[derive(Clone, Debug)]
    enum Op {
        Alloc {
            size: usize,
            ty: u8,
            zero: bool,
            cpu: usize,
        },
        Free {
            idx: usize,
            cpu: usize,
        },
        Realloc {
            idx: usize,
            size: usize,
        },
        Shrink,
    }

    fn size() -> impl Strategy<Value = usize> {
        prop_oneof![4 => 0usize..=256, 2 => 0usize..=8192, 1 => 0usize..=16384]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (size(), 0u8..3, any::<bool>(), 0..NR_CPUS)
                .prop_map(|(size, ty, zero, cpu)| Op::Alloc { size, ty, zero, cpu }),
            4 => (any::<usize>(), 0..NR_CPUS).prop_map(|(idx, cpu)| Op::Free { idx, cpu }),
            1 => (any::<usize>(), size()).prop_map(|(idx, size)| Op::Realloc { idx, size }),
            1 => Just(Op::Shrink),
        ]
    }

    struct Live {
        ptr: *mut u8,
        size: usize,
        pat: u8,
    }

    fn fill(l: &Live) {
        // SAFETY: a live object of at least `size` bytes.
        unsafe { core::ptr::write_bytes(l.ptr, l.pat, l.size) };
    }

    fn check_pattern(l: &Live, len: usize) {
        // SAFETY: as above.
        let b = unsafe { core::slice::from_raw_parts(l.ptr, len) };
        if let Some(i) = b.iter().position(|&x| x != l.pat) {
            panic!(
                "object {:p} size {} byte {i} is {:#x}, wrote {:#x}",
                l.ptr, l.size, b[i], l.pat
            );
        }
    }

    /// Where `p` (from `kmalloc(size, gfp)`) lives must match its class, and its bytes must
    /// not overlap another live object's.
    fn check_placement(
        k: &Kmalloc,
        pp: &TestPages,
        p: *mut u8,
        size: usize,
        gfp: Gfp,
        ranges: &BTreeMap<usize, usize>,
    ) {
        let a = p as usize;
        let ks = k.ksize(pp, p).unwrap();
        assert!(ks >= size);
        let head = compound_head(pp, pp.virt_to_pfn(p).unwrap());
        let page = pp.page(head);
        let base = pp.page_address(head) as usize;
        match k.cache_for(size, gfp) {
            Some(c) => {
                assert!(page.test(PG_SLAB));
                assert_eq!(page.slab_cache(), c as *const KmemCache as usize);
                assert_eq!(ks, c.object_size());
                let align = if ks.is_power_of_two() {
                    ks
                } else {
                    ARCH_KMALLOC_MINALIGN
                };
                assert_eq!(a % align, 0, "{} object {a:#x} misaligned", c.name());
                let objects = page.slab_counters().objects as usize;
                assert!(a >= base && a + ks <= base + objects * c.size() + c.red_left_pad());
                if gfp.contains(Gfp::DMA) {
                    assert!(c.name().starts_with("dma-"));
                }
            }
            None => {
                assert!(page.test(PG_HEAD) && !page.test(PG_SLAB));
                assert_eq!(page.order as u32, get_order(size as u64));
                assert_eq!((a, ks), (base, (PAGE_SIZE as usize) << page.order));
            }
        }
        if let Some((&s, &e)) = ranges.range(..=a).next_back() {
            assert!(e <= a, "{a:#x} overlaps [{s:#x}, {e:#x})");
        }
        if let Some((&s, _)) = ranges.range(a..).next() {
            assert!(s >= a + ks, "{a:#x}+{ks} overlaps {s:#x}");
        }
    }

    fn run(ops: &[Op], debug: u32) {
        let mut pp = TestPages::new(4096);
        let mut k = kmalloc(debug);
        let mut live: Vec<Live> = Vec::new();
        let mut ranges: BTreeMap<usize, usize> = BTreeMap::new();
        let mut pat = 1u8;
        let types = [
            Gfp::KERNEL,
            Gfp::KERNEL | Gfp::RECLAIMABLE,
            Gfp::KERNEL | Gfp::DMA,
        ];
        for op in ops {
            match *op {
                Op::Alloc {
                    size,
                    ty,
                    zero,
                    cpu,
                } => {
                    let gfp = types[ty as usize] | if zero { Gfp::ZERO } else { Gfp(0) };
                    let p = k
                        .kmalloc_on(&mut pp, size, gfp, cpu)
                        .expect("arena is big enough")
                        .as_ptr();
                    if size == 0 {
                        assert_eq!(p as usize, ZERO_SIZE_PTR);
                        k.kfree_on(&mut pp, p, cpu).unwrap();
                        continue;
                    }
                    check_placement(&k, &pp, p, size, gfp, &ranges);
                    let ks = k.ksize(&pp, p).unwrap();
                    ranges.insert(p as usize, p as usize + ks);
                    if zero {
                        // SAFETY: a fresh object of `size` bytes.
                        let b = unsafe { core::slice::from_raw_parts(p, size) };
                        assert!(b.iter().all(|&x| x == 0));
                    }
                    pat = pat.wrapping_add(37) | 1;
                    let l = Live { ptr: p, size, pat };
                    fill(&l);
                    live.push(l);
                }
                Op::Free { idx, cpu } => {
                    if live.is_empty() {
                        continue;
                    }
                    let l = live.swap_remove(idx % live.len());
                    check_pattern(&l, l.size);
                    ranges.remove(&(l.ptr as usize));
                    k.kfree_on(&mut pp, l.ptr, cpu).unwrap();
                }
                Op::Realloc { idx, size } => {
                    if live.is_empty() || size == 0 {
                        continue;
                    }
                    let i = idx % live.len();
                    let old = &live[i];
                    let keep = old.size.min(size);
                    let Some(q) = k.krealloc(&mut pp, old.ptr, size, Gfp::KERNEL).unwrap() else {
                        panic!("krealloc to {size} failed");
                    };
                    ranges.remove(&(old.ptr as usize));
                    let moved = Live {
                        ptr: q.as_ptr(),
                        size,
                        pat: old.pat,
                    };
                    check_pattern(&moved, keep);
                    if q.as_ptr() != old.ptr {
                        // Moved: a fresh object of the new size's class. (In place, the old
                        // object was big enough and keeps its class.)
                        check_placement(&k, &pp, q.as_ptr(), size, Gfp::KERNEL, &ranges);
                    }
                    ranges.insert(
                        q.as_ptr() as usize,
                        q.as_ptr() as usize + k.ksize(&pp, q.as_ptr()).unwrap(),
                    );
                    fill(&moved);
                    live[i] = moved;
                }
                Op::Shrink => {
                    k.shrink(&mut pp);
                }
            }
            for c in k.caches() {
                c.validate(&pp)
                    .unwrap_or_else(|e| panic!("{}: {e}", c.name()));
            }
        }
        for l in live.drain(..) {
            check_pattern(&l, l.size);
            k.kfree(&mut pp, l.ptr).unwrap();
        }
        k.shrink(&mut pp);
        assert!(k.take_report().is_none());
        for c in k.caches() {
            c.validate(&pp).unwrap();
            assert_eq!(
                (c.nr_slabs(), c.info().num_objs, c.live_objects()),
                (0, 0, 0),
                "{}",
                c.name()
            );
        }
        assert_eq!(k.large_stats().pages, 0);
        assert_eq!(pp.in_use, 0, "frames not returned");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn random_kmalloc_kfree(ops in proptest::collection::vec(op(), 1..300)) {
            run(&ops, 0);
        }

        #[test]
        fn random_kmalloc_kfree_debug(ops in proptest::collection::vec(op(), 1..150)) {
            run(&ops, DEBUG);
        }
    }
}
