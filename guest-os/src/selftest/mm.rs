//! `selftest=mm`: the physical memory manager, exercised on the real allocators inside the
//! kernel. Every case prints `mm <name>: ok|FAIL`; the run ends with the check that every
//! page and object went back (MemFree and the buddy lists equal their values before the
//! tests, after per-CPU lists are drained and empty slabs shrunk).
//!
//! `selftest=mmbench` measures guest instructions per operation with the vmscope port's
//! instruction counter (on other machines it reports that no counter exists).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::{read_volatile, write_volatile, NonNull};

use mm_core::buddy::{Buddy, MAX_ORDER};
use mm_core::gfp::{Gfp, MigrateType, ZoneType, MAX_NR_ZONES};
use mm_core::page::flags::{PG_HEAD, PG_TAIL};
use mm_core::page::Pages;
use mm_core::slub::{
    SlabErrorKind, SLAB_CONSISTENCY_CHECKS, SLAB_HWCACHE_ALIGN, SLAB_POISON, SLAB_RED_ZONE,
};
use mm_core::zone::{zone_pfn_limits, MAX_DMA32_PFN, MAX_DMA_PFN, MAX_NUMNODES};

use crate::kprintln;
use crate::mm::addr::{Pfn, VirtAddr, PAGE_SIZE};
use crate::mm::page_alloc::{self, page_address};
use crate::mm::slab::{self, Cache};
use crate::mm::{memblock, vmalloc};

/// A small deterministic PRNG (xorshift64*), so runs on vmscope and QEMU do the same thing.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn check(name: &str, ok: bool, pass: &mut u32, total: &mut u32) {
    kprintln!("mm {name}: {}", if ok { "ok" } else { "FAIL" });
    *total += 1;
    *pass += ok as u32;
}

/// Free lists of every zone and the free-page count, after draining per-CPU lists.
/// (No heap allocation here: the page allocator's lock is held, and the global allocator
/// would need it again.)
#[derive(PartialEq, Eq, Debug)]
struct Snapshot {
    free: u64,
    blocks: [[u64; MAX_ORDER]; MAX_NUMNODES * MAX_NR_ZONES],
}

fn snapshot() -> Snapshot {
    page_alloc::with(|a| {
        a.drain_all();
        let mut blocks = [[0; MAX_ORDER]; MAX_NUMNODES * MAX_NR_ZONES];
        for (b, z) in blocks.iter_mut().zip(a.zones()) {
            *b = z.buddy.blocks_per_order();
        }
        Snapshot {
            free: a.nr_free_pages(),
            blocks,
        }
    })
}

/// Write the frame number into the first and last word of a block; `verify` checks them
/// (a block handed out twice would have been overwritten by its other owner).
fn stamp(pfn: Pfn, order: usize) {
    let first = page_address(pfn).as_mut_ptr::<u64>();
    let last = (page_address(pfn).as_u64() + (PAGE_SIZE << order) - 8) as *mut u64;
    // SAFETY: the block was just allocated to this test.
    unsafe {
        write_volatile(first, pfn.as_u64());
        write_volatile(last, !pfn.as_u64());
    }
}

fn verify(pfn: Pfn, order: usize) -> bool {
    let first = page_address(pfn).as_ptr::<u64>();
    let last = (page_address(pfn).as_u64() + (PAGE_SIZE << order) - 8) as *const u64;
    // SAFETY: the block is still allocated to this test.
    unsafe { read_volatile(first) == pfn.as_u64() && read_volatile(last) == !pfn.as_u64() }
}

/// Zones match the RAM map: each zone's present pages are the RAM pages memblock saw in the
/// zone's range on its node, and buddyinfo adds up to MemFree.
fn boot_layout() -> bool {
    page_alloc::with(|a| {
        let mut ok = a.check().is_ok();
        for z in a.zones() {
            let (lo, hi) = zone_pfn_limits(z.zone_type);
            let ram: u64 = memblock::with(|mb| {
                mb.memory
                    .regions()
                    .iter()
                    .filter(|r| r.nid == z.node)
                    .map(|r| {
                        let (s, e) = ((r.base / PAGE_SIZE).max(lo), (r.end() / PAGE_SIZE).min(hi));
                        e.saturating_sub(s)
                    })
                    .sum()
            });
            ok &= z.present == ram && z.managed <= z.present && z.spanned >= z.present;
            ok &= z.spanned == 0 || (z.start_pfn >= lo && z.start_pfn + z.spanned <= hi);
        }
        let buddy_sum: u64 = a
            .zones()
            .map(|z| {
                z.buddy
                    .blocks_per_order()
                    .iter()
                    .enumerate()
                    .map(|(o, n)| n << o)
                    .sum::<u64>()
            })
            .sum();
        ok && buddy_sum == a.nr_free_pages()
    })
}

const GFPS: [Gfp; 5] = [
    Gfp::KERNEL,
    Gfp::HIGHUSER_MOVABLE,
    Gfp(Gfp::KERNEL.0 | Gfp::RECLAIMABLE.0),
    Gfp(Gfp::KERNEL.0 | Gfp::DMA32.0),
    Gfp(Gfp::KERNEL.0 | Gfp::DMA.0),
];

/// Random allocations and frees of every order: blocks aligned, in their GFP zone, never
/// shared, lists consistent throughout.
fn buddy_random(rng: &mut Rng) -> bool {
    let mut live: [Option<(Pfn, usize)>; 96] = [None; 96];
    let mut ok = true;
    for i in 0..3000 {
        let slot = rng.below(live.len() as u64) as usize;
        if let Some((pfn, order)) = live[slot].take() {
            ok &= verify(pfn, order);
            page_alloc::free_pages(pfn, order);
        } else {
            // Mostly small orders, as real workloads.
            let order = match rng.below(8) {
                0 => rng.below(MAX_ORDER as u64) as usize,
                1..=2 => 1 + rng.below(3) as usize,
                _ => 0,
            };
            let gfp = GFPS[rng.below(GFPS.len() as u64) as usize] | Gfp::NOWARN;
            if let Some(pfn) = page_alloc::alloc_pages(gfp, order) {
                ok &= pfn.as_u64() % (1 << order) == 0;
                let end = pfn.as_u64() + (1 << order);
                ok &= match gfp.zone() {
                    ZoneType::Dma => end <= MAX_DMA_PFN,
                    ZoneType::Dma32 => end <= MAX_DMA32_PFN,
                    ZoneType::Normal => true,
                };
                stamp(pfn, order);
                live[slot] = Some((pfn, order));
            }
        }
        if i % 256 == 0 {
            ok &= page_alloc::with(|a| a.check().is_ok());
        }
    }
    for (pfn, order) in live.iter_mut().filter_map(Option::take) {
        ok &= verify(pfn, order);
        page_alloc::free_pages(pfn, order);
    }
    ok && page_alloc::with(|a| a.check().is_ok())
}

fn zone_of(pfn: Pfn) -> ZoneType {
    page_alloc::with(|a| {
        ZoneType::from_index(a.page(pfn).zone as usize).unwrap_or(ZoneType::Normal)
    })
}

/// The highest zone with memory.
fn highest_zone() -> ZoneType {
    page_alloc::with(|a| {
        a.zones()
            .filter(|z| z.managed > 0)
            .map(|z| z.zone_type)
            .max()
            .unwrap_or(ZoneType::Dma)
    })
}

fn gfp_zones() -> bool {
    let mut ok = true;
    for (gfp, want) in [
        (Gfp::KERNEL | Gfp::DMA, ZoneType::Dma),
        (
            Gfp::KERNEL | Gfp::DMA32,
            ZoneType::Dma32.min(highest_zone()),
        ),
        (Gfp::KERNEL, highest_zone()),
    ] {
        match page_alloc::alloc_pages(gfp, 0) {
            Some(p) => {
                ok &= zone_of(p) == want;
                page_alloc::free_pages(p, 0);
            }
            None => ok = false,
        }
    }
    ok
}

fn zeroed_page() -> bool {
    let Some(p) = page_alloc::alloc_pages(Gfp::KERNEL, 0) else {
        return false;
    };
    // SAFETY: the page is ours.
    unsafe { core::ptr::write_bytes(page_address(p).as_mut_ptr::<u8>(), 0xaa, PAGE_SIZE as usize) };
    page_alloc::free_pages(p, 0);
    let Some(q) = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0) else {
        return false;
    };
    // The hot per-CPU list hands the same page back: it must have been cleared.
    // SAFETY: the page is ours.
    let bytes =
        unsafe { core::slice::from_raw_parts(page_address(q).as_ptr::<u8>(), PAGE_SIZE as usize) };
    let ok = p == q && bytes.iter().all(|&b| b == 0);
    // A hot free goes to the head of its per-CPU list (the page the next allocation of its
    // type takes), a cold one to the tail. (The list is the one of the page's pageblock
    // type, which need not be the allocation's type.)
    let Some(x) = page_alloc::alloc_pages(Gfp::KERNEL, 0) else {
        return false;
    };
    let pcp_end = |p: Pfn, head: bool| {
        page_alloc::with(|a| {
            let mt = Buddy::pageblock_mt(&a.mem_map, p);
            let z = a.zone_of(p)?;
            if head {
                z.pcp[0].first_of(mt)
            } else {
                z.pcp[0].last_of(mt)
            }
        })
    };
    // Empty lists first, so that no batch drain runs in between.
    page_alloc::with(|a| a.drain_all());
    page_alloc::free_pages(x, 0);
    let hot_first = pcp_end(x, true) == Some(x);
    page_alloc::free_cold_page(q);
    let cold_last = pcp_end(q, false) == Some(q);
    ok && hot_first && cold_last
}

fn compound_and_refcount() -> bool {
    let Some(p) = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::COMP, 3) else {
        return false;
    };
    let (head, tails) = page_alloc::with(|a| {
        (
            a.page(p).test(PG_HEAD) && a.page(p).order == 3,
            (1..8).all(|i| {
                a.page(p.add(i)).test(PG_TAIL)
                    && a.page(p.add(i)).compound_head == p.as_u64() as u32
            }),
        )
    });
    page_alloc::with(|a| a.get_page(p));
    page_alloc::free_pages(p, 3); // drops the extra reference only
    let still_used = page_alloc::with(|a| a.page(p).refcount == 1);
    page_alloc::free_pages(p, 3);
    let freed = page_alloc::with(|a| a.page(p).refcount == 0);
    head && tails && still_used && freed
}

/// A double free is refused ("Bad page state"), counted, and leaves the lists intact.
fn bad_free_rejected() -> bool {
    let Some(p) = page_alloc::alloc_pages(Gfp::KERNEL, 2) else {
        return false;
    };
    page_alloc::free_pages(p, 2);
    let before = page_alloc::with(|a| a.stats.bad_frees);
    kprintln!("mm bad-free: expect one \"Bad page state\" report:");
    page_alloc::free_pages(p, 2);
    page_alloc::with(|a| a.stats.bad_frees == before + 1 && a.check().is_ok())
}

/// Unmovable and movable allocations, interleaved, end up in pageblocks of their own type
/// (fallback steals whole pageblocks for unmovable requests).
fn mobility_grouping() -> bool {
    const N: usize = 512;
    let mut unmov = [Pfn(0); N];
    let mut mov = [Pfn(0); N];
    let steals_before = page_alloc::with(|a| {
        a.zones()
            .map(|z| z.buddy.stats.pageblocks_stolen)
            .sum::<u64>()
    });
    for i in 0..N {
        match (
            page_alloc::alloc_pages(Gfp::KERNEL, 0),
            page_alloc::alloc_pages(Gfp::HIGHUSER_MOVABLE, 0),
        ) {
            (Some(u), Some(m)) => {
                unmov[i] = u;
                mov[i] = m;
            }
            _ => return false,
        }
    }
    let (u_ok, m_ok) = page_alloc::with(|a| {
        let in_type = |pages: &[Pfn], mt| {
            pages
                .iter()
                .filter(|&&p| Buddy::pageblock_mt(&a.mem_map, p) == mt)
                .count()
        };
        (
            in_type(&unmov, MigrateType::Unmovable),
            in_type(&mov, MigrateType::Movable),
        )
    });
    let steals = page_alloc::with(|a| {
        a.zones()
            .map(|z| z.buddy.stats.pageblocks_stolen)
            .sum::<u64>()
    }) - steals_before;
    for i in 0..N {
        page_alloc::free_pages(unmov[i], 0);
        page_alloc::free_pages(mov[i], 0);
    }
    kprintln!("mm mobility: {u_ok}/{N} unmovable pages in unmovable pageblocks, {m_ok}/{N} movable in movable, {steals} pageblocks stolen");
    u_ok * 100 >= N * 95 && m_ok * 100 >= N * 95
}

/// Allocate order-0 pages with `gfp` until it fails, chaining them through their first
/// word (no other memory is needed while memory runs out). Returns (head, count).
fn exhaust(gfp: Gfp, mut head: Option<Pfn>) -> (Option<Pfn>, u64) {
    let mut n = 0;
    while let Some(p) = page_alloc::alloc_pages(gfp | Gfp::NOWARN, 0) {
        // SAFETY: the page is ours; its first word links the chain.
        unsafe {
            write_volatile(
                page_address(p).as_mut_ptr::<u64>(),
                head.map_or(u64::MAX, Pfn::as_u64),
            )
        };
        head = Some(p);
        n += 1;
    }
    (head, n)
}

fn free_chain(mut head: Option<Pfn>) {
    while let Some(p) = head {
        // SAFETY: every page of the chain is ours until freed here.
        let next = unsafe { read_volatile(page_address(p).as_ptr::<u64>()) };
        page_alloc::free_pages(p, 0);
        head = (next != u64::MAX).then_some(Pfn(next));
    }
}

/// GFP_KERNEL stops at the min watermark (plus lowmem reserve); GFP_NOWAIT gets no more;
/// GFP_ATOMIC dips into the reserve below min.
fn watermarks() -> bool {
    let wake0 = page_alloc::with(|a| a.stats.kswapd_wakeups);
    let (chain, n_kernel) = exhaust(Gfp::KERNEL, None);
    let classzone = highest_zone() as usize;
    let at_min = page_alloc::with(|a| {
        a.zones().filter(|z| z.managed > 0).all(|z| {
            z.free_pages()
                <= z.watermark[mm_core::watermark::WMARK_MIN] + z.lowmem_reserve[classzone]
        })
    });
    let (chain, n_nowait) = exhaust(Gfp::NOWAIT, chain);
    let (chain, n_atomic) = exhaust(Gfp::GFP_ATOMIC, chain);
    let below = page_alloc::with(|a| {
        a.zones()
            .filter(|z| z.managed > 0 && z.zone_type as usize == classzone)
            .all(|z| z.free_pages() < z.watermark[mm_core::watermark::WMARK_MIN])
    });
    let woke = page_alloc::with(|a| a.stats.kswapd_wakeups) > wake0;
    free_chain(chain);
    kprintln!("mm watermarks: GFP_KERNEL took {n_kernel} pages, then GFP_NOWAIT {n_nowait}, GFP_ATOMIC {n_atomic} more");
    n_kernel > 0 && at_min && n_nowait == 0 && n_atomic > 0 && below && woke
}

/// External fragmentation: with every other frame still allocated, half of memory is free
/// yet almost all of it in order-0 blocks, so no larger request can use it; freeing the
/// rest merges everything back.
fn fragmentation() -> bool {
    let (chain, n) = exhaust(Gfp::KERNEL, None);
    // Free the even frames, keep the odd ones on a new chain.
    let mut kept: Option<Pfn> = None;
    let mut next = chain;
    while let Some(p) = next {
        // SAFETY: chain pages are ours until freed.
        let after = unsafe { read_volatile(page_address(p).as_ptr::<u64>()) };
        next = (after != u64::MAX).then_some(Pfn(after));
        if p.as_u64() % 2 == 0 {
            page_alloc::free_pages(p, 0);
        } else {
            // SAFETY: as above.
            unsafe {
                write_volatile(
                    page_address(p).as_mut_ptr::<u64>(),
                    kept.map_or(u64::MAX, Pfn::as_u64),
                )
            };
            kept = Some(p);
        }
    }
    let (free, order0, largest) = page_alloc::with(|a| {
        a.drain_all();
        let mut per_order = [0u64; MAX_ORDER];
        for z in a.zones() {
            for (o, n) in z.buddy.blocks_per_order().iter().enumerate() {
                per_order[o] += n << o;
            }
        }
        let largest = (0..MAX_ORDER)
            .rev()
            .find(|&o| per_order[o] > 0)
            .unwrap_or(0);
        (a.nr_free_pages(), per_order[0], largest)
    });
    free_chain(kept);
    kprintln!(
        "mm fragmentation: {n} pages allocated, every other one freed: {free} pages free, {}% of them in order-0 blocks (largest free order {largest})",
        order0 * 100 / free.max(1)
    );
    free > n / 3 && order0 * 100 >= free * 90
}

/// With `numa=fake=N`: node-local allocation, fallback to another node, `__GFP_THISNODE`.
fn numa() -> Option<bool> {
    let nodes = page_alloc::with(|a| a.nr_nodes);
    if nodes < 2 {
        return None;
    }
    let node_of = |p: Pfn| page_alloc::with(|a| a.page(p).node as usize);
    let p = page_alloc::alloc_pages_node(1, Gfp::KERNEL, 0)?;
    let local = node_of(p) == 1;
    page_alloc::free_pages(p, 0);
    let (chain, n) = exhaust(Gfp::KERNEL | Gfp::THISNODE, None);
    let fallback = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::NOWARN, 0);
    // Node 0 (this CPU's) is exhausted for THISNODE: an ordinary allocation falls back to
    // another node.
    let ok = match fallback {
        Some(q) => {
            let other = node_of(q) != 0;
            page_alloc::free_pages(q, 0);
            other
        }
        None => false,
    };
    free_chain(chain);
    kprintln!("mm numa: {nodes} nodes, node-0 THISNODE took {n} pages");
    Some(local && ok && n > 0)
}

const OBJ_MAGIC: u64 = 0x0b1e_c7ed_c7ed_0b1e;

fn obj_ctor(p: *mut u8) {
    // SAFETY: SLUB calls the constructor on a fresh object of the cache (200 bytes).
    unsafe { write_volatile(p as *mut u64, OBJ_MAGIC) };
}

static TEST_CACHE: Cache = Cache::new("selftest_obj", 200, 64, SLAB_HWCACHE_ALIGN, Some(obj_ctor));
static DEBUG_CACHE: Cache = Cache::new(
    "selftest_debug",
    48,
    8,
    SLAB_RED_ZONE | SLAB_POISON | SLAB_CONSISTENCY_CHECKS,
    None,
);

fn slab_cache() -> bool {
    TEST_CACHE.register();
    let mut objs: Vec<NonNull<u8>> = Vec::new();
    let mut ok = true;
    for _ in 0..100 {
        match TEST_CACHE.alloc(Gfp::KERNEL) {
            Some(o) => objs.push(o),
            None => return false,
        }
    }
    let mut addrs: Vec<usize> = objs.iter().map(|o| o.as_ptr() as usize).collect();
    addrs.sort_unstable();
    ok &= addrs.windows(2).all(|w| w[1] - w[0] >= 200);
    ok &= addrs.iter().all(|a| a % 64 == 0);
    // SAFETY: each object is live and at least 8 bytes.
    ok &= objs
        .iter()
        .all(|o| unsafe { read_volatile(o.as_ptr() as *const u64) } == OBJ_MAGIC);
    let slabs = TEST_CACHE.with(|c| c.nr_slabs());
    // Destroying a cache with live objects is refused.
    kprintln!("mm slab-cache: expect one \"Objects remaining\" report:");
    ok &= TEST_CACHE.destroy().is_err();
    for o in objs.drain(..) {
        ok &= TEST_CACHE.free(o).is_ok();
    }
    TEST_CACHE.shrink();
    ok &= TEST_CACHE.with(|c| c.nr_slabs() == 0 && c.live_objects() == 0);
    kprintln!("mm slab-cache: 100 objects of 200 bytes in {slabs} slabs");
    ok &= TEST_CACHE.destroy().is_ok();
    TEST_CACHE.unregister();
    ok
}

/// slub_debug catches a double free and a buffer overflow into the red zone on free, and a
/// write after free on the next allocation, and says which cache and object.
fn slab_debug() -> bool {
    let mut ok = true;
    kprintln!("mm slab-debug: expect three BUG reports:");
    // Double free.
    let Some(a) = DEBUG_CACHE.alloc(Gfp::KERNEL) else {
        return false;
    };
    ok &= DEBUG_CACHE.free(a).is_ok();
    ok &= matches!(DEBUG_CACHE.free(a), Err(e) if e.kind == SlabErrorKind::DoubleFree);
    // Overflow by one byte into the right red zone.
    let Some(b) = DEBUG_CACHE.alloc(Gfp::KERNEL) else {
        return false;
    };
    let past = (b.as_ptr() as usize + 48) as *mut u8;
    // SAFETY: the byte after the object is its red zone, inside the slab page.
    let saved = unsafe { read_volatile(past) };
    // SAFETY: as above.
    unsafe { write_volatile(past, 0) };
    ok &= matches!(DEBUG_CACHE.free(b), Err(e) if matches!(e.kind, SlabErrorKind::Overwritten { .. }));
    // SAFETY: as above: repair the red zone, then the free goes through.
    unsafe { write_volatile(past, saved) };
    ok &= DEBUG_CACHE.free(b).is_ok();
    // Use after free: poison overwritten, found when the object is handed out again.
    let Some(c) = DEBUG_CACHE.alloc(Gfp::KERNEL) else {
        return false;
    };
    ok &= DEBUG_CACHE.free(c).is_ok();
    // SAFETY: the freed object's memory stays mapped (it is in a live slab page).
    unsafe { write_volatile(c.as_ptr().add(8), 0x42) };
    let mut got = Vec::new();
    let mut report = None;
    for _ in 0..DEBUG_CACHE.with(|k| k.objects_per_slab()) + 1 {
        if let Some(o) = DEBUG_CACHE.alloc(Gfp::KERNEL) {
            got.push(o);
        }
        if let Some(r) = DEBUG_CACHE.take_report() {
            report = Some(r);
            break;
        }
    }
    ok &= matches!(report, Some(e) if e.object == c.as_ptr() as usize && matches!(e.kind, SlabErrorKind::Overwritten { .. }));
    for o in got {
        ok &= DEBUG_CACHE.free(o).is_ok();
    }
    DEBUG_CACHE.shrink();
    ok
}

/// kmalloc size classes, large allocations and the allocation limit.
fn kmalloc_classes() -> bool {
    let mut ok = true;
    let cases: [(usize, usize); 12] = [
        (1, 8),
        (8, 8),
        (24, 32),
        (72, 96),
        (96, 96),
        (130, 192),
        (200, 256),
        (1000, 1024),
        (4096, 4096),
        (8192, 8192),
        (8193, 16384),
        (100_000, 128 << 10),
    ];
    for (size, usable) in cases {
        match slab::kmalloc(size, Gfp::KERNEL) {
            Some(p) => {
                let got = slab::ksize(p.as_ptr());
                ok &= got == Some(usable);
                ok &= slab::kfree(p.as_ptr()).is_ok();
            }
            None => ok = false,
        }
    }
    // The largest kmalloc (an order-10 block) works; one byte more is refused.
    let max = mm_core::kmalloc::KMALLOC_MAX_SIZE;
    match slab::kmalloc(max, Gfp::KERNEL | Gfp::NOWARN) {
        Some(p) => ok &= slab::kfree(p.as_ptr()).is_ok(),
        None => ok = false,
    }
    kprintln!("mm kmalloc: expect a warning for one byte past the limit:");
    ok &= slab::kmalloc(max + 1, Gfp::KERNEL).is_none();
    // krealloc keeps the contents.
    if let Some(p) = slab::kmalloc(40, Gfp::KERNEL) {
        // SAFETY: 40 bytes are ours.
        unsafe { core::ptr::write_bytes(p.as_ptr(), 0x37, 40) };
        match slab::krealloc(p.as_ptr(), 5000, Gfp::KERNEL) {
            Some(q) => {
                // SAFETY: the new block holds at least 5000 bytes, the first 40 copied.
                ok &= unsafe { core::slice::from_raw_parts(q.as_ptr(), 40) }
                    .iter()
                    .all(|&b| b == 0x37);
                ok &= slab::ksize(q.as_ptr()) == Some(8192);
                ok &= slab::kfree(q.as_ptr()).is_ok();
            }
            None => ok = false,
        }
    }
    // kfree of a pointer kmalloc never returned is refused.
    kprintln!("mm kmalloc: expect one BUG report:");
    if let Some(p) = slab::kmalloc(64, Gfp::KERNEL) {
        // SAFETY: only the address is computed.
        ok &= slab::kfree(unsafe { p.as_ptr().add(8) }).is_err();
        ok &= slab::kfree(p.as_ptr()).is_ok();
    }
    ok
}

/// The Rust global allocator on kmalloc: vectors and trees grow, shrink and go away.
fn global_alloc() -> bool {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..100_000u64 {
        v.push(i * 3);
    }
    let mut t = BTreeMap::new();
    for i in 0..2000u64 {
        t.insert(i * 7 % 2003, i);
    }
    let ok = v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3) && t.len() == 2000;
    drop(v);
    drop(t);
    ok
}

/// vmalloc: a megabyte, virtually contiguous, backed by pages from anywhere; its guard page
/// faults; vfree gives everything back; vmap and ioremap map given frames.
fn vmalloc_cases() -> bool {
    let mut ok = true;
    let size = 1 << 20;
    let free0 = snapshot().free;
    let Some(va) = vmalloc::vmalloc(size, "selftest_vmalloc") else {
        return false;
    };
    // SAFETY: the area is mapped for `size` bytes.
    let buf =
        unsafe { core::slice::from_raw_parts_mut(va.as_mut_ptr::<u64>(), (size / 8) as usize) };
    for (i, w) in buf.iter_mut().enumerate() {
        *w = i as u64 ^ 0x5a5a;
    }
    ok &= buf.iter().enumerate().all(|(i, &w)| w == i as u64 ^ 0x5a5a);
    let area = vmalloc::find(va);
    ok &= matches!(area, Some(a) if a.nr_pages() == size / PAGE_SIZE);
    let mut info = alloc::string::String::new();
    let _ = vmalloc::write_vmallocinfo(&mut info);
    ok &= info.contains("selftest_vmalloc pages=256 vmalloc");
    kprint_vmallocinfo(&info);
    // The guard page after the area faults.
    let guard = va.as_u64() + size;
    match super::probe::read_u8(guard) {
        Err(c) => {
            ok &= c.vector == 14
                && c.cr2 == guard
                && vmalloc::find(VirtAddr::new(guard))
                    .is_some_and(|a| a.in_guard(VirtAddr::new(guard)))
        }
        Ok(_) => ok = false,
    }
    ok &= vmalloc::vfree(va).is_ok();
    ok &= vmalloc::vfree(va).is_err();
    ok &= matches!(super::probe::read_u8(va.as_u64()), Err(c) if c.vector == 14);
    ok &= snapshot().free == free0;
    // Larger than memory: refused up front.
    let ram = page_alloc::with(|a| a.totalram_pages());
    ok &= vmalloc::vmalloc((ram + 1) * PAGE_SIZE, "selftest_too_big").is_none();
    // Memory runs out half way: the pages already mapped go back.
    let (chain, _) = exhaust(Gfp::KERNEL, None);
    let (chain, _) = exhaust(Gfp::GFP_ATOMIC, chain);
    // Give back 100 pages: a 1 MiB vmalloc needs 256.
    let mut chain = chain;
    for _ in 0..100 {
        if let Some(p) = chain {
            // SAFETY: chain pages are ours.
            let next = unsafe { read_volatile(page_address(p).as_ptr::<u64>()) };
            page_alloc::free_pages(p, 0);
            chain = (next != u64::MAX).then_some(Pfn(next));
        }
    }
    let low = snapshot().free;
    ok &= vmalloc::vmalloc(size, "selftest_oom").is_none();
    ok &= snapshot().free == low;
    free_chain(chain);
    ok &= snapshot().free == free0;
    // vmap three scattered frames; the mapping shows their contents.
    let frames: Vec<Pfn> = (0..3)
        .filter_map(|_| page_alloc::alloc_pages(Gfp::KERNEL, 1).map(|p| p.add(1)))
        .collect();
    ok &= frames.len() == 3;
    for (i, &f) in frames.iter().enumerate() {
        // SAFETY: frames are ours.
        unsafe { write_volatile(page_address(f).as_mut_ptr::<u64>(), 1000 + i as u64) };
    }
    match vmalloc::vmap(&frames, "selftest_vmap") {
        Some(v) => {
            for i in 0..3 {
                // SAFETY: the vmap area maps three pages.
                ok &= unsafe { read_volatile((v.as_u64() + i * PAGE_SIZE) as *const u64) }
                    == 1000 + i;
            }
            ok &= vmalloc::vunmap(v).is_ok();
        }
        None => ok = false,
    }
    for f in frames {
        page_alloc::free_pages(Pfn(f.as_u64() - 1), 1);
    }
    // ioremap of a RAM page reads the same bytes uncached.
    if let Some(p) = page_alloc::alloc_pages(Gfp::KERNEL, 0) {
        // SAFETY: the page is ours.
        unsafe { write_volatile(page_address(p).as_mut_ptr::<u64>().add(3), 0xfeed) };
        match vmalloc::ioremap(
            p.phys().checked_add(24).unwrap_or(p.phys()),
            8,
            "selftest_ioremap",
        ) {
            Some(v) => {
                // SAFETY: 8 bytes mapped.
                ok &= unsafe { read_volatile(v.as_ptr::<u64>()) } == 0xfeed;
                ok &= vmalloc::iounmap(v).is_ok();
            }
            None => ok = false,
        }
        page_alloc::free_pages(p, 0);
    }
    ok
}

fn kprint_vmallocinfo(info: &str) {
    for line in info.lines() {
        kprintln!("mm vmallocinfo: {line}");
    }
}

/// Run the memory self-tests; returns (passed, total).
pub fn run() -> (u32, u32) {
    let (mut pass, mut total) = (0, 0);
    // The tests compare free lists before and after: start with every deferred struct
    // page initialised (as Linux has when user space starts), so none appears mid-test.
    crate::mm::page_alloc::deferred_init_all();
    // Warm up what stays allocated by design: the vmalloc area's page tables (Linux never
    // frees kernel page tables either).
    if let Some(v) = vmalloc::vmalloc(4 << 20, "selftest_warmup") {
        let _ = vmalloc::vfree(v);
    }
    slab::shrink_all();
    let start = snapshot();
    let memfree = |s: &Snapshot| s.free * (PAGE_SIZE >> 10);
    kprintln!("mm: MemFree {} kB before the tests", memfree(&start));

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    check("boot-layout", boot_layout(), &mut pass, &mut total);
    check(
        "buddy-random",
        buddy_random(&mut rng),
        &mut pass,
        &mut total,
    );
    check("gfp-zones", gfp_zones(), &mut pass, &mut total);
    check("zeroed-hot-cold", zeroed_page(), &mut pass, &mut total);
    check(
        "compound-refcount",
        compound_and_refcount(),
        &mut pass,
        &mut total,
    );
    check(
        "bad-free-rejected",
        bad_free_rejected(),
        &mut pass,
        &mut total,
    );
    check(
        "mobility-grouping",
        mobility_grouping(),
        &mut pass,
        &mut total,
    );
    check("watermarks", watermarks(), &mut pass, &mut total);
    check("fragmentation", fragmentation(), &mut pass, &mut total);
    match numa() {
        Some(ok) => check("numa", ok, &mut pass, &mut total),
        None => kprintln!("mm numa: skipped (one node; boot with numa=fake=2)"),
    }
    check("slab-cache", slab_cache(), &mut pass, &mut total);
    check("slab-debug", slab_debug(), &mut pass, &mut total);
    check("kmalloc-classes", kmalloc_classes(), &mut pass, &mut total);
    check("global-alloc", global_alloc(), &mut pass, &mut total);
    check("vmalloc", vmalloc_cases(), &mut pass, &mut total);

    slab::shrink_all();
    // slub_debug takes a slab with a corrupted object out of service for good (Linux's
    // "Marking all objects used"): those pages are the only ones not expected back.
    DEBUG_CACHE.shrink();
    let quarantined = DEBUG_CACHE.with(|c| c.nr_pages()) as u64;
    let end = snapshot();
    kprintln!(
        "mm: MemFree {} kB after the tests, {} kB quarantined by slub_debug",
        memfree(&end),
        quarantined * (PAGE_SIZE >> 10)
    );
    let returned = if quarantined == 0 {
        end == start
    } else {
        end.free + quarantined == start.free
    };
    check("everything-returned", returned, &mut pass, &mut total);
    kprintln!("mm: {} passed, {} failed", pass, total - pass);
    (pass, total)
}
