//! The kernel's page allocator: the `mm-core` zones behind one lock, with Linux's entry
//! points (`alloc_pages`, `alloc_pages_node`, `__get_free_pages`, `__free_pages`,
//! `free_pages`) and its failure reports.

use mm_core::buddy::BadFree;
use mm_core::gfp::Gfp;
use mm_core::page::Pages;
use mm_core::zone::{DirectMap, PageAllocator};

use super::addr::{virt_to_phys, Pfn, VirtAddr, PAGE_SHIFT};
use super::layout::PAGE_OFFSET;
use super::pgtable::TableAlloc;
use core::sync::atomic::{AtomicBool, Ordering};

use super::addr::PhysAddr;
use crate::sync::IrqLock;

/// Frames are reached through the direct map.
pub struct KernelDirectMap;

impl DirectMap for KernelDirectMap {
    fn page_address(&self, pfn: Pfn) -> *mut u8 {
        (PAGE_OFFSET + (pfn.as_u64() << PAGE_SHIFT)) as *mut u8
    }

    fn virt_to_pfn(&self, addr: *const u8) -> Option<Pfn> {
        let a = addr as u64;
        if a < PAGE_OFFSET {
            return None;
        }
        let pa = virt_to_phys(VirtAddr::new(a))?;
        (a < super::layout::KERNEL_VMA).then(|| pa.pfn())
    }
}

/// The allocator type the kernel uses.
pub type Allocator = PageAllocator<'static, KernelDirectMap>;

static PAGE_ALLOC: IrqLock<Allocator> = IrqLock::new("zone", Allocator::new(KernelDirectMap));
static READY: AtomicBool = AtomicBool::new(false);

/// Set up the allocator in place (`mm::init`); it becomes usable after [`mark_ready`].
pub fn init_with<R>(f: impl FnOnce(&mut Allocator) -> R) -> R {
    f(&mut PAGE_ALLOC.lock())
}

/// Open the allocator for use.
pub fn mark_ready() {
    READY.store(true, Ordering::Release);
}

/// Whether the page allocator is up.
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Run `f` on the allocator with its lock held (interrupts off).
pub fn with<R>(f: impl FnOnce(&mut Allocator) -> R) -> R {
    if !is_ready() {
        panic!("page allocator used before mm::init");
    }
    f(&mut PAGE_ALLOC.lock())
}

/// Report a failed allocation as Linux's `warn_alloc` does, and enforce `__GFP_NOFAIL`.
fn failed(gfp: Gfp, order: usize) {
    if gfp.contains(Gfp::NOFAIL) {
        // Linux would loop in reclaim and the OOM killer; neither exists yet, so nothing
        // could ever free memory for this caller.
        panic!(
            "Out of memory: __GFP_NOFAIL allocation of order {order} ({gfp:?}) cannot be satisfied"
        );
    }
    if !gfp.contains(Gfp::NOWARN) {
        log::warn!(
            "kernel: page allocation failure: order:{}, mode:{:#x}({:?})",
            order,
            gfp.0,
            gfp
        );
    }
}

/// Initialise every deferred `struct page` (what Linux's `pgdatinit` threads complete
/// before user space), for reports that list the free blocks.
pub fn deferred_init_all() {
    with(|a| a.deferred_init_all());
}

/// `alloc_pages(gfp, order)` on the CPU's node.
pub fn alloc_pages(gfp: Gfp, order: usize) -> Option<Pfn> {
    alloc_pages_nid(None, gfp, order)
}

/// `alloc_pages_node(nid, gfp, order)`.
pub fn alloc_pages_node(nid: usize, gfp: Gfp, order: usize) -> Option<Pfn> {
    alloc_pages_nid(Some(nid), gfp, order)
}

/// Orders above this do not reclaim for (Linux's `PAGE_ALLOC_COSTLY_ORDER` treats them as
/// likely to fail anyway).
const PAGE_ALLOC_COSTLY_ORDER: usize = 3;

/// `__alloc_pages`: the allocator's fast and slow paths (mm-core), then what only the
/// kernel can do: wake kswapd when a zone fell below its low watermark, and reclaim
/// directly when nothing is left at the min watermark, if the caller may sleep (GFP and
/// context: no spinlock held, a task to put to sleep, not reclaim itself).
fn alloc_pages_nid(nid: Option<usize>, gfp: Gfp, order: usize) -> Option<Pfn> {
    let (r, woke) = with(|a| {
        let before = a.stats.kswapd_wakeups;
        let r = a.alloc_pages(gfp, order, nid, 0);
        (r, a.stats.kswapd_wakeups != before)
    });
    if woke {
        super::vmscan::wakeup_kswapd();
    }
    if r.is_some() {
        return r;
    }
    let may_reclaim = gfp.contains(Gfp::DIRECT_RECLAIM)
        && order <= PAGE_ALLOC_COSTLY_ORDER
        && !crate::sync::locks_held()
        && crate::proc::current().is_some()
        && !super::vmscan::in_reclaim();
    if may_reclaim {
        let mut no_progress = 0;
        while no_progress < super::vmscan::MAX_RECLAIM_RETRIES {
            if super::vmscan::try_to_free_pages(gfp) == 0 {
                no_progress += 1;
            }
            if let Some(p) = with(|a| a.alloc_pages(gfp, order, nid, 0)) {
                return Some(p);
            }
        }
    }
    failed(gfp, order);
    None
}

/// `__free_pages(page, order)`. A bad free is reported ("Bad page state") and ignored, as
/// Linux does, so a buggy caller leaks instead of corrupting the free lists.
pub fn free_pages(pfn: Pfn, order: usize) {
    // The last reference of a page charged to a memory cgroup: uncharge it first
    // (`__folio_put` → `mem_cgroup_uncharge`); otherwise free under the same lock.
    let r = with(|a| {
        let charged = a
            .mem_map
            .get(pfn)
            .is_some_and(|p| p.refcount == 1 && p.memcg_data != 0);
        (!charged).then(|| a.free_pages(pfn, order, 0))
    });
    let r = match r {
        Some(r) => r,
        None => {
            super::memcontrol::uncharge(pfn);
            with(|a| a.free_pages(pfn, order, 0))
        }
    };
    if let Err(e) = r {
        report_bad_free(e);
    }
}

/// Drop one reference on each order-0 page of `pfns` ([`free_pages`] for each, in order),
/// taking the allocator's lock once for the run of pages no memory cgroup is charged for
/// (`release_pages`).
pub fn free_pages_batch(pfns: impl Iterator<Item = Pfn>) {
    let mut pfns = pfns.peekable();
    while pfns.peek().is_some() {
        // Free under one lock until a page needs its memory cgroup uncharged first.
        let (charged, bad) = with(|a| {
            for pfn in pfns.by_ref() {
                let charged = a
                    .mem_map
                    .get(pfn)
                    .is_some_and(|p| p.refcount == 1 && p.memcg_data != 0);
                if charged {
                    return (Some(pfn), None);
                }
                if let Err(e) = a.free_pages(pfn, 0, 0) {
                    return (None, Some(e)); // reported outside the lock, then go on
                }
            }
            (None, None)
        });
        if let Some(e) = bad {
            report_bad_free(e);
        }
        if let Some(pfn) = charged {
            free_pages(pfn, 0);
        }
    }
}

/// Free an order-0 page whose contents are cold: it is reused last (`free_unref_page` with
/// a cold hint, Linux's old `free_cold_page`).
pub fn free_cold_page(pfn: Pfn) {
    if let Err(e) = with(|a| a.free_cold_page(pfn, 0)) {
        report_bad_free(e);
    }
}

fn report_bad_free(e: BadFree) {
    let (pfn, why) = match e {
        BadFree::OutOfZone(p) => (p, "outside its zone"),
        BadFree::Misaligned(p, _) => (p, "wrong order or tail page"),
        BadFree::AlreadyFree(p) => (p, "already free"),
        BadFree::Reserved(p) => (p, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set: reserved"),
        BadFree::Mapped(p) => (p, "nonzero mapcount"),
    };
    log::error!("BUG: Bad page state: pfn:{:#x} {}", pfn.as_u64(), why);
}

/// The direct-map address of a frame (`page_address`).
pub fn page_address(pfn: Pfn) -> VirtAddr {
    VirtAddr::new(PAGE_OFFSET + (pfn.as_u64() << PAGE_SHIFT))
}

/// `__get_free_pages(gfp, order)`: the block's direct-map address.
pub fn get_free_pages(gfp: Gfp, order: usize) -> Option<VirtAddr> {
    alloc_pages(gfp, order).map(page_address)
}

/// `free_pages(addr, order)`.
pub fn free_pages_va(va: VirtAddr, order: usize) {
    match virt_to_phys(va) {
        Some(pa) if va.as_u64() < super::layout::KERNEL_VMA => free_pages(pa.pfn(), order),
        _ => log::error!(
            "BUG: free_pages of {:#x}, not a direct-map address",
            va.as_u64()
        ),
    }
}

/// Page flags of a frame (for reports and tests).
pub fn page_flags(pfn: Pfn) -> u32 {
    with(|a| a.page(pfn).flags)
}

/// Page-table pages from the buddy allocator (after boot), counted for /proc/meminfo.
pub struct BuddyTables;

/// Kernel page-table pages allocated since boot.
pub static KERNEL_PAGETABLES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

impl TableAlloc for BuddyTables {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pfn = alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0)?;
        KERNEL_PAGETABLES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        Some(pfn.phys())
    }
}
