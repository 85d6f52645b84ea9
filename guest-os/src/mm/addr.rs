//! Physical and virtual address newtypes (from `mm-core`), and translation through the
//! direct map: physical address `pa` is mapped at `PAGE_OFFSET + pa`.
//!
//! During boot only the first [`BOOT_MAP_SIZE`] bytes are mapped there (by the trampoline's
//! tables); `mm::init` maps all RAM and raises the limit with [`set_direct_map_end`].

use core::sync::atomic::{AtomicU64, Ordering};

pub use mm_core::addr::{Pfn, PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};

use super::layout::{BOOT_MAP_SIZE, KERNEL_VMA, PAGE_OFFSET};

/// One past the highest physical address the direct map covers.
static DIRECT_MAP_END: AtomicU64 = AtomicU64::new(BOOT_MAP_SIZE);

/// Record that the direct map now covers `[0, end)` (called once the page tables exist).
pub fn set_direct_map_end(end: u64) {
    DIRECT_MAP_END.store(end, Ordering::Relaxed);
}

/// One past the highest physical address mapped by the direct map.
pub fn direct_map_end() -> u64 {
    DIRECT_MAP_END.load(Ordering::Relaxed)
}

/// Whether the physical range `[pa, pa + len)` lies inside the direct map's span.
pub fn direct_map_contains(pa: PhysAddr, len: u64) -> bool {
    match pa.as_u64().checked_add(len) {
        Some(end) => end <= direct_map_end(),
        None => false,
    }
}

/// Translates a physical address through the direct map (`__va`), or `None` if
/// `[pa, pa + len)` is beyond it.
pub fn phys_to_virt(pa: PhysAddr, len: u64) -> Option<VirtAddr> {
    direct_map_contains(pa, len).then(|| VirtAddr::new(PAGE_OFFSET + pa.as_u64()))
}

/// The physical address behind a direct-map or kernel-image virtual address (`__pa`).
pub fn virt_to_phys(va: VirtAddr) -> Option<PhysAddr> {
    let v = va.as_u64();
    if v >= KERNEL_VMA {
        Some(PhysAddr::new(v - KERNEL_VMA))
    } else if v >= PAGE_OFFSET && v - PAGE_OFFSET < direct_map_end() {
        Some(PhysAddr::new(v - PAGE_OFFSET))
    } else {
        None
    }
}
