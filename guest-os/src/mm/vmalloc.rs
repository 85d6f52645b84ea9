//! vmalloc: virtually contiguous kernel memory from physically scattered pages, plus
//! `vmap` (map given pages contiguously) and `ioremap` (map device memory uncached).
//!
//! Areas come from [`mm_core::vmalloc::VmapAreas`] over `[VMALLOC_START, VMALLOC_END)`,
//! each followed by an unmapped guard page, so running off the end of an area faults
//! instead of corrupting the next one. The kernel page tables are the record of which pages
//! back an area (no separate `pages[]` array): `vfree` walks them.
//!
//! Limits (documented, enforced): the area is [`VMALLOC_SIZE`] (512 GiB), at most
//! [`MAX_VMAP_AREAS`] areas exist at once, and a vmalloc can never exceed free memory.

use mm_core::gfp::Gfp;
use mm_core::vmalloc::{Area, AreaKind, VmallocError, VmapAreas};

use super::addr::{Pfn, PhysAddr, VirtAddr, PAGE_SIZE};
use super::layout::{VMALLOC_END, VMALLOC_SIZE, VMALLOC_START};
use super::page_alloc::{self, BuddyTables};
use super::pgtable::{self, pte, PageSize, PageTable};
use crate::sync::IrqLock;

/// Areas that can exist at once.
pub const MAX_VMAP_AREAS: usize = 1024;

static AREAS: IrqLock<VmapAreas<MAX_VMAP_AREAS>> = IrqLock::new(
    "vmap_area",
    VmapAreas::new(VirtAddr::new(VMALLOC_START), VirtAddr::new(VMALLOC_END)),
);

fn kernel_table() -> PageTable {
    pgtable::kernel()
}

/// Map `n` pages at `va`, the i-th to `frame_of(i)`. On failure returns how many were
/// mapped, and the frame that could not be mapped (if one was produced) so the caller can
/// release it.
fn map_pages(
    va: VirtAddr,
    n: u64,
    flags: u64,
    mut frame_of: impl FnMut(u64) -> Option<PhysAddr>,
) -> Result<(), (u64, Option<PhysAddr>)> {
    let mut pt = kernel_table();
    for i in 0..n {
        let page_va = VirtAddr::new(va.as_u64() + i * PAGE_SIZE);
        let Some(pa) = frame_of(i) else {
            return Err((i, None));
        };
        if pt
            .map(page_va, pa, PageSize::Size4K, flags, &mut BuddyTables)
            .is_err()
        {
            return Err((i, Some(pa)));
        }
    }
    Ok(())
}

/// Unmap `n` pages at `va`, calling `release` with each frame that was mapped.
fn unmap_pages(va: VirtAddr, n: u64, mut release: impl FnMut(PhysAddr)) {
    let mut pt = kernel_table();
    for i in 0..n {
        if let Some(pa) = pt.unmap_4k(VirtAddr::new(va.as_u64() + i * PAGE_SIZE)) {
            release(pa);
        }
    }
}

fn reserve(size: u64, kind: AreaKind, caller: &'static str) -> Option<VirtAddr> {
    match AREAS.lock().alloc(size, PAGE_SIZE, kind, caller) {
        Ok(va) => Some(va),
        Err(e) => {
            log::warn!("vmalloc: allocation failure: {size} bytes ({caller}): {e}");
            None
        }
    }
}

/// `__vmalloc(size, gfp)`: `size` bytes (rounded up to pages) of virtually contiguous
/// memory; `caller` names the user in /proc/vmallocinfo.
pub fn vmalloc_gfp(size: u64, gfp: Gfp, caller: &'static str) -> Option<VirtAddr> {
    let n = size.div_ceil(PAGE_SIZE);
    // Like Linux, refuse at once what could never fit in RAM.
    if n > page_alloc::with(|a| a.totalram_pages()) {
        log::warn!("vmalloc: allocation failure: {size} bytes ({caller}): larger than RAM");
        return None;
    }
    let va = reserve(size, AreaKind::Vmalloc, caller)?;
    let gfp = gfp | Gfp::HIGHMEM | Gfp::NOWARN;
    let r = map_pages(va, n, pte::PAGE_KERNEL, |_| {
        page_alloc::alloc_pages(gfp, 0).map(Pfn::phys)
    });
    if let Err((mapped, unmapped)) = r {
        if let Some(pa) = unmapped {
            page_alloc::free_pages(pa.pfn(), 0);
        }
        unmap_pages(va, mapped, |pa| page_alloc::free_pages(pa.pfn(), 0));
        let _ = AREAS.lock().free(va);
        log::warn!("vmalloc: allocation failure: {size} bytes ({caller}): out of memory");
        return None;
    }
    Some(va)
}

/// `vmalloc(size)`.
pub fn vmalloc(size: u64, caller: &'static str) -> Option<VirtAddr> {
    vmalloc_gfp(size, Gfp::KERNEL, caller)
}

/// `vzalloc(size)`: zeroed.
pub fn vzalloc(size: u64, caller: &'static str) -> Option<VirtAddr> {
    vmalloc_gfp(size, Gfp::KERNEL | Gfp::ZERO, caller)
}

/// Why a free was refused.
pub type VfreeError = VmallocError;

/// `vfree(addr)`: unmap the area starting at `va` and free its pages.
pub fn vfree(va: VirtAddr) -> Result<(), VfreeError> {
    let area = free_area(va, |k| k.owns_pages())?;
    unmap_pages(area.start(), area.size_pages(), |pa| {
        page_alloc::free_pages(pa.pfn(), 0)
    });
    Ok(())
}

/// Remove the area at `va` if `ok(kind)`; wrong kinds are refused without change.
fn free_area(va: VirtAddr, ok: impl Fn(AreaKind) -> bool) -> Result<Area, VmallocError> {
    let mut areas = AREAS.lock();
    match areas.find(va) {
        Some(a) if a.start() == va && ok(a.kind()) => areas.free(va),
        _ => Err(VmallocError::NotFound),
    }
}

/// `vmap(pages, count)`: map existing frames contiguously (the caller keeps ownership).
pub fn vmap(frames: &[Pfn], caller: &'static str) -> Option<VirtAddr> {
    let n = frames.len() as u64;
    let va = reserve(n * PAGE_SIZE, AreaKind::Vmap, caller)?;
    if let Err((mapped, _)) =
        map_pages(va, n, pte::PAGE_KERNEL, |i| Some(frames[i as usize].phys()))
    {
        unmap_pages(va, mapped, |_| {});
        let _ = AREAS.lock().free(va);
        return None;
    }
    Some(va)
}

/// `vunmap(addr)`.
pub fn vunmap(va: VirtAddr) -> Result<(), VmallocError> {
    let area = free_area(va, |k| k == AreaKind::Vmap)?;
    unmap_pages(area.start(), area.size_pages(), |_| {});
    Ok(())
}

/// `ioremap(phys, size)`: device memory, uncached, at a kernel virtual address.
pub fn ioremap(phys: PhysAddr, size: u64, caller: &'static str) -> Option<VirtAddr> {
    let base = PhysAddr::new(phys.as_u64() & !(PAGE_SIZE - 1));
    let off = phys.as_u64() - base.as_u64();
    let n = (off + size).div_ceil(PAGE_SIZE);
    let va = reserve(n * PAGE_SIZE, AreaKind::Ioremap { phys: base }, caller)?;
    let r = map_pages(va, n, pte::PAGE_KERNEL_IO, |i| {
        base.checked_add(i * PAGE_SIZE)
    });
    if let Err((mapped, _)) = r {
        unmap_pages(va, mapped, |_| {});
        let _ = AREAS.lock().free(va);
        return None;
    }
    Some(VirtAddr::new(va.as_u64() + off))
}

/// `iounmap(addr)`.
pub fn iounmap(va: VirtAddr) -> Result<(), VmallocError> {
    let start = VirtAddr::new(va.as_u64() & !(PAGE_SIZE - 1));
    let area = free_area(start, |k| matches!(k, AreaKind::Ioremap { .. }))?;
    unmap_pages(area.start(), area.size_pages(), |_| {});
    Ok(())
}

/// The area containing `va` (guard page included), for fault reports.
pub fn find(va: VirtAddr) -> Option<Area> {
    AREAS.lock().find(va).copied()
}

/// `(VmallocTotal bytes, VmallocUsed pages, VmallocChunk bytes)`.
pub fn totals() -> (u64, u64, u64) {
    let a = AREAS.lock();
    (VMALLOC_SIZE, a.used_bytes() / PAGE_SIZE, a.largest_free())
}

/// Write /proc/vmallocinfo.
pub fn write_vmallocinfo<W: core::fmt::Write>(w: &mut W) -> core::fmt::Result {
    AREAS.lock().write_vmallocinfo(w)
}
