//! `mm_init`: from the firmware memory map to a running page allocator.
//!
//! 1. memblock learns RAM and what is in use ([`super::memblock::init`]);
//! 2. `numa=fake=N` splits RAM into nodes;
//! 3. the kernel page tables are built from memblock pages and loaded (direct map of all
//!    RAM, W^X kernel image, vmalloc slot, fixmap);
//! 4. `mem_map` (one `struct page` per frame, FLATMEM) is allocated from memblock, and
//!    the descriptors of the first 128 MiB are initialised (the rest are deferred, as with
//!    Linux's `CONFIG_DEFERRED_STRUCT_PAGE_INIT`: a zone initialises 4 MiB units when it
//!    runs low, see `mm_core::zone::PageAllocator::deferred_grow`);
//! 5. nodes and zones are sized from memblock's RAM ranges, every free range goes to the
//!    buddy allocator (or, in units not initialised, is remembered as deferred free
//!    memory, counted in MemTotal and MemFree), and memblock is retired;
//! 6. watermarks, lowmem reserves and per-CPU batch sizes follow from the managed pages.

use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::addr::PAGE_SIZE;
use mm_core::gfp::ZoneType;
use mm_core::page::{MemMap, Page, INIT_UNIT_PAGES};
use mm_core::zone::{zone_pfn_limits, PageAllocator, MAX_NUMNODES};

use super::addr::{phys_to_virt, set_direct_map_end, Pfn, PhysAddr};
use super::layout::BOOT_MAP_SIZE;
use super::memblock;
use super::page_alloc::{self, KernelDirectMap};
use super::pgtable::{self, MapCounts, TableAlloc};
use crate::boot::pvh::PvhBootInfo;
use crate::kprintln;
use crate::selftest::cmdline_param;

/// Direct-map leaves by size (`DirectMap4k/2M/1G` in /proc/meminfo).
pub static DIRECT_MAP_4K: AtomicU64 = AtomicU64::new(0);
pub static DIRECT_MAP_2M: AtomicU64 = AtomicU64::new(0);
pub static DIRECT_MAP_1G: AtomicU64 = AtomicU64::new(0);
/// Page-table pages of the boot-built kernel tables.
pub static BOOT_PAGETABLES: AtomicU64 = AtomicU64::new(0);
/// Pages of `mem_map`.
pub static MEM_MAP_PAGES: AtomicU64 = AtomicU64::new(0);

/// Physical memory whose `struct page`s are initialised at boot (Linux initialises a
/// section per node at boot and defers the rest); the rest waits for the allocator.
const BOOT_INIT_END: u64 = 128 << 20;

/// Page-table pages from memblock, inside the boot direct map (the new tables are written
/// before they are loaded).
struct MemblockTables;

impl TableAlloc for MemblockTables {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pa = memblock::alloc(PAGE_SIZE, PAGE_SIZE, BOOT_MAP_SIZE)?;
        BOOT_PAGETABLES.fetch_add(1, Ordering::Relaxed);
        Some(pa)
    }
}

/// Bring up physical memory management. Panics (with the reason) if the machine cannot
/// run at all: memory too small or too fragmented for the boot structures. Never inlined:
/// it is a frame of its own in backtraces (the gdb tests break here and walk up).
#[inline(never)]
pub fn init(boot: &PvhBootInfo, start_info_pa: u64, cmdline: &[u8]) {
    if let Err(e) = memblock::init(boot, start_info_pa) {
        panic!("memblock: {e:?}");
    }
    let nr_nodes = match cmdline_param(cmdline, "numa") {
        Some(v) => match v.strip_prefix(b"fake=").and_then(parse_usize) {
            Some(n) => memblock::split_fake_nodes(n),
            None => {
                log::warn!("numa=: expected fake=N");
                1
            }
        },
        None => 1,
    };
    if crate::cmdline::has_flag(cmdline, "memblock=debug") {
        memblock::print();
    }

    // Kernel page tables.
    let mut ram = [(0u64, 0u64); 32];
    let mut nr_ram = 0;
    memblock::with(|mb| {
        for r in mb.memory.regions().iter().take(ram.len()) {
            ram[nr_ram] = (r.base, r.size);
            nr_ram += 1;
        }
    });
    let ram_end = ram[..nr_ram].iter().map(|&(b, s)| b + s).max().unwrap_or(0);
    let (pt, dm): (_, MapCounts) =
        match pgtable::build_kernel_tables(ram[..nr_ram].iter().copied(), &mut MemblockTables) {
            Ok(x) => x,
            Err(e) => panic!("kernel page tables: {e:?}"),
        };
    DIRECT_MAP_4K.store(dm.k4, Ordering::Relaxed);
    DIRECT_MAP_2M.store(dm.m2, Ordering::Relaxed);
    DIRECT_MAP_1G.store(dm.g1, Ordering::Relaxed);
    // SAFETY: the new tables map the image (code, stacks, statics), the direct map (boot
    // data, page tables) and the fixmap; nothing uses the identity map after this.
    unsafe { pgtable::activate(&pt) };
    set_direct_map_end(ram_end);

    // mem_map: one descriptor per frame from pfn 0 to the last frame of RAM, not cleared
    // (memblock_alloc_raw): only the descriptors below BOOT_INIT_END are written now; the
    // rest are initialised a unit at a time when a zone runs low (deferred struct page
    // init), so boot work and the memory touched do not grow with RAM.
    let max_pfn = ram_end / PAGE_SIZE;
    let bytes = max_pfn * core::mem::size_of::<Page>() as u64;
    let Some(map_pa) = memblock::alloc_raw(bytes, PAGE_SIZE, u64::MAX) else {
        panic!("mem_map: no {bytes} bytes for {max_pfn} struct pages");
    };
    MEM_MAP_PAGES.store(bytes.div_ceil(PAGE_SIZE), Ordering::Relaxed);
    let Some(map_va) = phys_to_virt(map_pa, bytes) else {
        panic!("mem_map outside the direct map");
    };
    // SAFETY: memblock reserved these bytes for mem_map alone, for the kernel's lifetime.
    let pages: &'static mut [Page] =
        unsafe { core::slice::from_raw_parts_mut(map_va.as_mut_ptr::<Page>(), max_pfn as usize) };
    // One bit per unit of INIT_UNIT_PAGES frames: set when its descriptors are written.
    let units = max_pfn.div_ceil(INIT_UNIT_PAGES);
    let words = units.div_ceil(64).max(1);
    let Some(bits_pa) = memblock::alloc(words * 8, 8, u64::MAX) else {
        panic!("mem_map: no room for the init bitmap");
    };
    let Some(bits_va) = phys_to_virt(bits_pa, words * 8) else {
        panic!("mem_map bitmap outside the direct map");
    };
    // SAFETY: memblock reserved (and cleared) these bytes for the bitmap alone.
    let bits: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(bits_va.as_mut_ptr::<u64>(), words as usize) };
    let boot_units = units.min(BOOT_INIT_END / PAGE_SIZE / INIT_UNIT_PAGES);
    let boot_pfns = ((boot_units * INIT_UNIT_PAGES) as usize).min(pages.len());
    for p in pages[..boot_pfns].iter_mut() {
        *p = Page::new_reserved();
    }
    for u in 0..boot_units as usize {
        bits[u / 64] |= 1 << (u % 64);
    }
    page_alloc::init_with(|alloc| {
        alloc.init(MemMap::new_deferred(pages, Pfn(0), bits), nr_nodes);

        // Nodes and zones from RAM; then every free range to the buddy allocator.
        memblock::with(|mb| {
            for r in mb.memory.regions() {
                alloc.add_memory(
                    r.nid as usize,
                    Pfn(r.base / PAGE_SIZE),
                    Pfn(r.end() / PAGE_SIZE),
                );
            }
        });
        print_zone_ranges(alloc, ram_end);
        let mut free = [(0u64, 0u64); 64];
        let mut nr_free = 0;
        memblock::with(|mb| {
            for r in mb.free_ranges() {
                if nr_free < free.len() {
                    // Only whole pages (PFN_UP/PFN_DOWN): the partial page after a
                    // reservation that ends mid-page (mem_map's tail) is not free.
                    free[nr_free] = (r.base.div_ceil(PAGE_SIZE), r.end() / PAGE_SIZE);
                    nr_free += 1;
                }
            }
        });
        memblock::retire();
        for &(s, e) in &free[..nr_free] {
            alloc.free_boot_range(Pfn(s), Pfn(e));
        }
        alloc.setup_watermarks();

        let present: u64 = alloc.zones().map(|z| z.present).sum();
        let managed = alloc.totalram_pages();
        let (ks, ke) = memblock::kernel_image();
        let secs = pgtable::image_sections();
        let kib = |a: u64, b: u64| (b - a) >> 10;
        kprintln!(
            "Memory: {}K/{}K available ({}K kernel code, {}K rwdata, {}K rodata, {}K reserved)",
            managed * 4,
            present * 4,
            kib(secs[0].1, secs[0].2),
            kib(secs[2].1, secs[2].2),
            kib(secs[1].1, secs[1].2),
            (present - managed) * 4
        );
        log::debug!("kernel image at [{ks:#x}-{ke:#x})");
    });
    page_alloc::mark_ready();
}

fn parse_usize(s: &[u8]) -> Option<usize> {
    core::str::from_utf8(s).ok()?.parse().ok()
}

/// Linux's boot lines: "Zone ranges", "Early memory node ranges", per-node setup.
fn print_zone_ranges(a: &PageAllocator<'_, KernelDirectMap>, ram_end: u64) {
    kprintln!("Zone ranges:");
    for zt in ZoneType::ALL {
        let (lo, hi) = zone_pfn_limits(zt);
        let (lo, hi) = (
            lo.max(1) * PAGE_SIZE,
            (hi.saturating_mul(PAGE_SIZE)).min(ram_end),
        );
        if lo >= hi {
            kprintln!("  {:<8} empty", zt.name());
        } else {
            kprintln!("  {:<8} [mem {:#018x}-{:#018x}]", zt.name(), lo, hi - 1);
        }
    }
    kprintln!("Early memory node ranges");
    memblock::with(|mb| {
        for r in mb.memory.regions() {
            kprintln!(
                "  node {:>3}: [mem {:#018x}-{:#018x}]",
                r.nid,
                r.base,
                r.end() - 1
            );
        }
    });
    for n in &a.nodes[..a.nr_nodes.min(MAX_NUMNODES)] {
        if n.spanned > 0 {
            kprintln!(
                "Initmem setup node {} [mem {:#018x}-{:#018x}]",
                n.nid,
                n.start_pfn * PAGE_SIZE,
                (n.start_pfn + n.spanned) * PAGE_SIZE - 1
            );
        }
    }
}
