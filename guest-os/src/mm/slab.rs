//! The kernel's slab allocator: the `mm-core` SLUB caches behind locks, kmalloc's size
//! classes, caches created by kernel code, and the Rust global allocator (so `alloc`'s
//! `Box`/`Vec`/`BTreeMap` come from kmalloc, as kernel Rust code in Linux does).
//!
//! `slub_debug` on the command line turns on red zones, poisoning and consistency checks
//! for every kmalloc cache (Linux's `slub_debug=FZP`). Errors found on free or allocation are
//! reported as Linux's `BUG <cache>: ...` lines and the bad operation is refused.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use mm_core::gfp::Gfp;
use mm_core::kmalloc::{Kmalloc, KMALLOC_MAX_SIZE};
use mm_core::slub::{KmemCache, SlabError, SLAB_CONSISTENCY_CHECKS, SLAB_POISON, SLAB_RED_ZONE};

use super::page_alloc;
use crate::sync::IrqLock;

static KMALLOC: IrqLock<Kmalloc> = IrqLock::new(
    "kmalloc",
    match Kmalloc::new(0) {
        Ok(k) => k,
        Err(_) => panic!("kmalloc caches"),
    },
);

/// Apply `slub_debug` from the command line (before the first allocation).
pub fn init(cmdline: &[u8]) {
    if crate::cmdline::has_flag(cmdline, "slub_debug") {
        if let Err(e) = KMALLOC
            .lock()
            .init(SLAB_RED_ZONE | SLAB_POISON | SLAB_CONSISTENCY_CHECKS)
        {
            log::error!("slub_debug: {e}");
        }
    }
}

fn report(e: &SlabError) {
    log::error!("{e}");
}

/// `kmalloc(size, gfp)`.
pub fn kmalloc(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    let mut k = KMALLOC.lock();
    let r = page_alloc::with(|pa| k.kmalloc(pa, size, gfp));
    if let Some(e) = k.take_report() {
        report(&e);
    }
    drop(k);
    if r.is_none() && !gfp.contains(Gfp::NOWARN) {
        if size > KMALLOC_MAX_SIZE {
            // Linux WARNs here: no kmalloc can be larger than the largest buddy block.
            log::warn!(
                "kmalloc: {size} bytes is above KMALLOC_MAX_SIZE ({KMALLOC_MAX_SIZE}); use vmalloc"
            );
        } else {
            log::warn!(
                "kmalloc: allocation failure: {size} bytes, mode:{:#x}({:?})",
                gfp.0,
                gfp
            );
        }
    }
    r
}

/// `kzalloc(size, gfp)`.
pub fn kzalloc(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    kmalloc(size, gfp | Gfp::ZERO)
}

/// `kfree(ptr)`: a bad pointer is reported and ignored.
pub fn kfree(ptr: *mut u8) -> Result<(), SlabError> {
    let mut k = KMALLOC.lock();
    let r = page_alloc::with(|pa| k.kfree(pa, ptr));
    if let Err(e) = &r {
        report(e);
    }
    r
}

/// `ksize(ptr)`: the usable size of a kmalloc object.
pub fn ksize(ptr: *mut u8) -> Option<usize> {
    let k = KMALLOC.lock();
    page_alloc::with(|pa| k.ksize(pa, ptr).ok())
}

/// `krealloc(ptr, new_size, gfp)`.
pub fn krealloc(ptr: *mut u8, new_size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    let mut k = KMALLOC.lock();
    let r = page_alloc::with(|pa| k.krealloc(pa, ptr, new_size, gfp));
    match r {
        Ok(p) => p,
        Err(e) => {
            report(&e);
            None
        }
    }
}

/// Return empty slabs of every kmalloc cache to the page allocator; pages freed.
pub fn shrink_all() -> usize {
    let mut k = KMALLOC.lock();
    page_alloc::with(|pa| k.shrink(pa))
}

/// Run `f` on every cache: the registered ones (`kmem_cache_create`), then kmalloc's.
/// `f` runs under the cache's lock and must not allocate from the slab.
pub fn for_each_cache(mut f: impl FnMut(&KmemCache)) {
    let caches = *REGISTRY.lock();
    for c in caches.iter().flatten() {
        c.with(|kc| f(kc));
    }
    with_kmalloc(|k| k.caches().for_each(f));
}

/// Run `f` on the kmalloc caches (reports, self-tests).
pub fn with_kmalloc<R>(f: impl FnOnce(&Kmalloc) -> R) -> R {
    f(&KMALLOC.lock())
}

/// A cache created by kernel code (`kmem_cache_create`), kept in a static so that its
/// slabs can point back at it.
pub struct Cache(IrqLock<KmemCache>, IrqLock<Option<SlabError>>);

impl Cache {
    /// `kmem_cache_create(name, size, align, flags, ctor)`, usable in a `static`.
    pub const fn new(
        name: &'static str,
        size: usize,
        align: usize,
        flags: u32,
        ctor: Option<fn(*mut u8)>,
    ) -> Self {
        match KmemCache::new(name, size, align, flags, ctor) {
            Ok(c) => Cache(
                IrqLock::new("kmem_cache", c),
                IrqLock::new("kmem_cache_report", None),
            ),
            Err(_) => panic!("kmem_cache_create: bad geometry"),
        }
    }

    /// List the cache in /proc/slabinfo (`kmem_cache_create` adds to `slab_caches`).
    /// Registering twice is harmless; past the registry's capacity the cache works but is
    /// not listed (logged).
    pub fn register(&'static self) {
        let mut r = REGISTRY.lock();
        if r.iter().flatten().any(|c| core::ptr::eq(*c, self)) {
            return;
        }
        match r.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(self),
            None => log::warn!(
                "slab: registry full, {} not listed",
                self.with(|c| c.name())
            ),
        }
    }

    /// Remove the cache from /proc/slabinfo.
    pub fn unregister(&'static self) {
        for s in REGISTRY.lock().iter_mut() {
            if matches!(s, Some(c) if core::ptr::eq(*c, self)) {
                *s = None;
            }
        }
    }

    /// `kmem_cache_alloc(cache, gfp)`.
    /// Corruption found on the way (debug caches) is reported and kept for
    /// [`Cache::take_report`]; the allocation carries on with another object.
    pub fn alloc(&self, gfp: Gfp) -> Option<NonNull<u8>> {
        let mut c = self.0.lock();
        let r = page_alloc::with(|pa| c.alloc(pa, gfp, 0));
        if let Some(e) = c.take_report() {
            report(&e);
            *self.1.lock() = Some(e);
        }
        r
    }

    /// The last corruption [`Cache::alloc`] found.
    pub fn take_report(&self) -> Option<SlabError> {
        self.1.lock().take()
    }

    /// `kmem_cache_free(cache, obj)`: debug errors are reported and the free refused.
    pub fn free(&self, obj: NonNull<u8>) -> Result<(), SlabError> {
        let mut c = self.0.lock();
        let r = page_alloc::with(|pa| c.free(pa, obj, 0));
        if let Err(e) = &r {
            report(e);
        }
        r
    }

    /// `kmem_cache_shrink`.
    pub fn shrink(&self) {
        let mut c = self.0.lock();
        page_alloc::with(|pa| c.shrink(pa));
    }

    /// `kmem_cache_destroy`: refused while objects remain.
    pub fn destroy(&self) -> Result<(), SlabError> {
        let mut c = self.0.lock();
        let r = page_alloc::with(|pa| c.destroy(pa));
        if let Err(e) = &r {
            report(e);
        }
        r
    }

    /// Run `f` on the cache.
    pub fn with<R>(&self, f: impl FnOnce(&KmemCache) -> R) -> R {
        f(&self.0.lock())
    }
}

/// Slab pages: `(reclaimable, unreclaimable)` of the kmalloc caches.
pub fn slab_pages() -> (u64, u64) {
    with_kmalloc(|k| {
        (
            k.slab_reclaimable_pages() as u64,
            k.slab_unreclaimable_pages() as u64,
        )
    })
}

/// Caches created by kernel code that /proc/slabinfo lists.
const MAX_REGISTERED: usize = 32;
static REGISTRY: IrqLock<[Option<&'static Cache>; MAX_REGISTERED]> =
    IrqLock::new("slab_caches", [None; MAX_REGISTERED]);

/// Write /proc/slabinfo: registered caches, newest first (as Linux lists `slab_caches`),
/// then the kmalloc caches.
pub fn write_slabinfo<W: core::fmt::Write>(w: &mut W) -> core::fmt::Result {
    mm_core::slub::write_slabinfo_header(w)?;
    let caches = *REGISTRY.lock();
    for c in caches.iter().rev().flatten() {
        c.with(|kc| mm_core::slub::write_slabinfo_line(w, kc))?;
    }
    with_kmalloc(|k| k.write_slabinfo(w))
}

/// The Rust global allocator: kmalloc with natural alignment.
pub struct KernelAllocator;

/// kmalloc size that satisfies `layout`: power-of-two classes are aligned to their size, so
/// alignments above the minimum round the size up to a power of two at least as large.
fn kmalloc_size(layout: Layout) -> usize {
    if layout.align() <= mm_core::kmalloc::ARCH_KMALLOC_MINALIGN {
        layout.size()
    } else {
        layout.size().max(layout.align()).next_power_of_two()
    }
}

/// The Rust heap's allocations (`Box`, `Vec`...) may dip below the min watermark
/// (`__GFP_HIGH`), which user pages and page tables may not: when user memory runs out the
/// kernel keeps a reserve for the bookkeeping that follows (the OOM kill, the victim's
/// exit, the failing system call's unwinding).
const GFP_KERNEL_HEAP: Gfp = Gfp(Gfp::KERNEL.0 | Gfp::HIGH.0);

/// `Box::new` that reports failure instead of aborting (`Box::try_new` is unstable): for
/// objects user programs make the kernel allocate. On failure the value comes back.
pub fn try_box<T>(v: T) -> Result<alloc::boxed::Box<T>, T> {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return Ok(alloc::boxed::Box::new(v));
    }
    // SAFETY: a non-zero-sized layout; the global allocator returns null or a block fit
    // for `T`, which is then initialised and owned by the Box.
    unsafe {
        let p = alloc::alloc::alloc(layout) as *mut T;
        if p.is_null() {
            return Err(v);
        }
        p.write(v);
        Ok(alloc::boxed::Box::from_raw(p))
    }
}

// SAFETY: kmalloc returns unique, live blocks of at least the requested size and alignment
// (see `kmalloc_size`), and kfree accepts exactly the pointers kmalloc returned.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = kmalloc_size(layout);
        if size > KMALLOC_MAX_SIZE || !page_alloc::is_ready() {
            return core::ptr::null_mut();
        }
        kmalloc(size, GFP_KERNEL_HEAP).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        let _ = kfree(ptr);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let size = kmalloc_size(layout);
        if size > KMALLOC_MAX_SIZE || !page_alloc::is_ready() {
            return core::ptr::null_mut();
        }
        kzalloc(size, GFP_KERNEL_HEAP).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }
}
