//! The `/proc` reports of the physical memory manager, in Linux's exact formats so that
//! people (and scripts) read them as they read Linux's: `/proc/buddyinfo`,
//! `/proc/pagetypeinfo`, `/proc/zoneinfo` and `/proc/meminfo`. (`/proc/slabinfo` and
//! `/proc/vmallocinfo` are written by [`crate::slub`] and [`crate::vmalloc`].)

use core::fmt::{self, Write};

use crate::buddy::{Buddy, MAX_ORDER, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};
use crate::gfp::{MigrateType, MIGRATE_TYPES};
use crate::watermark::{WMARK_HIGH, WMARK_LOW, WMARK_MIN};
use crate::zone::{DirectMap, PageAllocator, Zone};

fn populated<'a, D: DirectMap>(a: &'a PageAllocator<'_, D>) -> impl Iterator<Item = &'a Zone> {
    a.zones().filter(|z| z.present > 0)
}

/// `/proc/buddyinfo`: free blocks per order, per zone.
pub fn write_buddyinfo<W: Write, D: DirectMap>(w: &mut W, a: &PageAllocator<'_, D>) -> fmt::Result {
    for z in populated(a) {
        write!(w, "Node {}, zone {:>8} ", z.node, z.zone_type.name())?;
        for n in z.buddy.blocks_per_order() {
            write!(w, "{n:>6} ")?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// `/proc/pagetypeinfo`: free blocks per order and migratetype, and pageblocks per type.
pub fn write_pagetypeinfo<W: Write, D: DirectMap>(
    w: &mut W,
    a: &PageAllocator<'_, D>,
) -> fmt::Result {
    writeln!(w, "Page block order: {PAGEBLOCK_ORDER}")?;
    writeln!(w, "Pages per block:  {PAGEBLOCK_NR_PAGES}")?;
    writeln!(w)?;
    write!(w, "{:<43} ", "Free pages count per migrate type at order")?;
    for o in 0..MAX_ORDER {
        write!(w, "{o:>6} ")?;
    }
    writeln!(w)?;
    for z in populated(a) {
        for mt in MigrateType::ALL {
            write!(
                w,
                "Node {:>4}, zone {:>8}, type {:>12} ",
                z.node,
                z.zone_type.name(),
                mt.name()
            )?;
            for n in z.buddy.blocks_per_order_of(mt) {
                write!(w, "{n:>6} ")?;
            }
            writeln!(w)?;
        }
    }
    writeln!(w)?;
    write!(w, "{:<23}", "Number of blocks type ")?;
    for mt in MigrateType::ALL {
        write!(w, "{:>12} ", mt.name())?;
    }
    writeln!(w)?;
    for z in populated(a) {
        write!(w, "Node {}, zone {:>8} ", z.node, z.zone_type.name())?;
        for n in pageblock_counts(a, z) {
            write!(w, "{n:>12} ")?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// Pageblocks of each migratetype whose first frame lies in the zone.
pub fn pageblock_counts<D: DirectMap>(a: &PageAllocator<'_, D>, z: &Zone) -> [u64; MIGRATE_TYPES] {
    let mut counts = [0; MIGRATE_TYPES];
    let start = z.start_pfn.next_multiple_of(PAGEBLOCK_NR_PAGES);
    let end = z.start_pfn + z.spanned;
    let mut pfn = start;
    // Linux counts every pageblock of the zone's span, including a partial first one.
    if !z.start_pfn.is_multiple_of(PAGEBLOCK_NR_PAGES) && z.spanned > 0 {
        counts[Buddy::pageblock_mt(&a.mem_map, crate::addr::Pfn(z.start_pfn)) as usize] += 1;
    }
    while pfn < end {
        counts[Buddy::pageblock_mt(&a.mem_map, crate::addr::Pfn(pfn)) as usize] += 1;
        pfn += PAGEBLOCK_NR_PAGES;
    }
    counts
}

/// `/proc/zoneinfo`: sizes, watermarks, protection and per-CPU lists of every zone.
pub fn write_zoneinfo<W: Write, D: DirectMap>(w: &mut W, a: &PageAllocator<'_, D>) -> fmt::Result {
    for n in &a.nodes[..a.nr_nodes] {
        for z in &n.zones {
            writeln!(w, "Node {}, zone {:>8}", n.nid, z.zone_type.name())?;
            if z.present == 0 {
                // Linux prints only the header and the protection line for empty zones.
                write_protection(w, z)?;
                continue;
            }
            writeln!(w, "  pages free     {}", z.free_pages())?;
            writeln!(w, "        boost    0")?;
            writeln!(w, "        min      {}", z.watermark[WMARK_MIN])?;
            writeln!(w, "        low      {}", z.watermark[WMARK_LOW])?;
            writeln!(w, "        high     {}", z.watermark[WMARK_HIGH])?;
            writeln!(w, "        spanned  {}", z.spanned)?;
            writeln!(w, "        present  {}", z.present)?;
            writeln!(w, "        managed  {}", z.managed)?;
            writeln!(w, "        cma      0")?;
            write_protection(w, z)?;
            writeln!(w, "      nr_free_pages {}", z.free_pages())?;
            writeln!(w, "      numa_hit     {}", z.stats.numa_hit)?;
            writeln!(w, "      numa_miss    {}", z.stats.numa_miss)?;
            writeln!(w, "      pgalloc      {}", z.stats.pgalloc)?;
            writeln!(w, "      pgfree       {}", z.stats.pgfree)?;
            writeln!(w, "  pagesets")?;
            for (cpu, p) in z.pcp.iter().enumerate().take(1) {
                writeln!(w, "    cpu: {cpu}")?;
                writeln!(w, "              count: {}", p.count)?;
                writeln!(w, "              high:  {}", p.high)?;
                writeln!(w, "              batch: {}", p.batch)?;
            }
            writeln!(w, "  node_unreclaimable:  0")?;
            writeln!(w, "  start_pfn:           {}", z.start_pfn)?;
        }
    }
    Ok(())
}

fn write_protection<W: Write>(w: &mut W, z: &Zone) -> fmt::Result {
    let r = &z.lowmem_reserve;
    writeln!(w, "        protection: ({}, {}, {})", r[0], r[1], r[2])
}

/// The inputs of `/proc/meminfo` that live outside the page allocator, in pages unless
/// named otherwise. Counters for subsystems that do not exist yet stay 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemInfoExtra {
    pub cached: u64,
    /// Pages of tmpfs files and shared anonymous memory (part of `cached`).
    pub shmem: u64,
    /// Page cache pages of the block devices themselves (metadata).
    pub buffers: u64,
    /// Dirty page cache pages, and pages being written back.
    pub dirty: u64,
    pub writeback: u64,
    pub active_anon: u64,
    pub inactive_anon: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub swap_total: u64,
    pub swap_free: u64,
    /// Pages in the swap cache (`SwapCached`).
    pub swap_cached: u64,
    pub unevictable: u64,
    pub anon_pages: u64,
    pub mapped: u64,
    pub slab_reclaimable: u64,
    pub slab_unreclaimable: u64,
    /// Bytes of kernel stacks.
    pub kernel_stack_bytes: u64,
    pub page_tables: u64,
    /// Bytes.
    pub vmalloc_total: u64,
    /// Pages owned by vmalloc areas.
    pub vmalloc_used: u64,
    /// Bytes: the largest free range of the vmalloc area.
    pub vmalloc_chunk: u64,
    /// Pages of transparent huge pages mapped by a PMD (`AnonHugePages`).
    pub anon_huge_pages: u64,
    /// The hugetlb pool, in huge pages: total, free, reserved, surplus.
    pub hugepages_total: u64,
    pub hugepages_free: u64,
    pub hugepages_rsvd: u64,
    pub hugepages_surp: u64,
    /// KiB of one huge page (`Hugepagesize`).
    pub hugepage_kb: u64,
    /// Direct-map leaves by size.
    pub direct_map_4k: u64,
    pub direct_map_2m: u64,
    pub direct_map_1g: u64,
}

/// `MemAvailable` (`si_mem_available`): free memory minus reserves, plus the part of the
/// page cache and reclaimable slab that could be reclaimed without pushing zones below
/// their low watermarks.
pub fn mem_available<D: DirectMap>(a: &PageAllocator<'_, D>, x: &MemInfoExtra) -> u64 {
    let wmark_low: u64 = a.zones().map(|z| z.watermark[WMARK_LOW]).sum();
    let mut available = a.nr_free_pages() as i64 - a.totalreserve_pages as i64;
    let pagecache = x.active_file + x.inactive_file;
    available += (pagecache - (pagecache / 2).min(wmark_low)) as i64;
    let reclaimable = x.slab_reclaimable;
    available += (reclaimable - (reclaimable / 2).min(wmark_low)) as i64;
    available.max(0) as u64
}

/// `/proc/meminfo`.
pub fn write_meminfo<W: Write, D: DirectMap>(
    w: &mut W,
    a: &PageAllocator<'_, D>,
    x: &MemInfoExtra,
) -> fmt::Result {
    let kb = crate::addr::PAGE_SIZE >> 10;
    let line =
        |w: &mut W, name: &str, kbytes: u64| writeln!(w, "{:<16}{:>8} kB", Label(name), kbytes);
    line(w, "MemTotal", a.totalram_pages() * kb)?;
    line(w, "MemFree", a.nr_free_pages() * kb)?;
    line(w, "MemAvailable", mem_available(a, x) * kb)?;
    line(w, "Buffers", x.buffers * kb)?;
    line(w, "Cached", x.cached * kb)?;
    line(w, "SwapCached", x.swap_cached * kb)?;
    line(w, "Active", (x.active_anon + x.active_file) * kb)?;
    line(w, "Inactive", (x.inactive_anon + x.inactive_file) * kb)?;
    line(w, "Active(anon)", x.active_anon * kb)?;
    line(w, "Inactive(anon)", x.inactive_anon * kb)?;
    line(w, "Active(file)", x.active_file * kb)?;
    line(w, "Inactive(file)", x.inactive_file * kb)?;
    line(w, "Unevictable", x.unevictable * kb)?;
    line(w, "Mlocked", 0)?;
    line(w, "SwapTotal", x.swap_total * kb)?;
    line(w, "SwapFree", x.swap_free * kb)?;
    line(w, "Dirty", x.dirty * kb)?;
    line(w, "Writeback", x.writeback * kb)?;
    line(w, "AnonPages", x.anon_pages * kb)?;
    line(w, "Mapped", x.mapped * kb)?;
    line(w, "Shmem", x.shmem * kb)?;
    line(w, "KReclaimable", x.slab_reclaimable * kb)?;
    line(w, "Slab", (x.slab_reclaimable + x.slab_unreclaimable) * kb)?;
    line(w, "SReclaimable", x.slab_reclaimable * kb)?;
    line(w, "SUnreclaim", x.slab_unreclaimable * kb)?;
    line(w, "KernelStack", x.kernel_stack_bytes >> 10)?;
    line(w, "PageTables", x.page_tables * kb)?;
    line(w, "VmallocTotal", x.vmalloc_total >> 10)?;
    line(w, "VmallocUsed", x.vmalloc_used * kb)?;
    line(w, "VmallocChunk", x.vmalloc_chunk >> 10)?;
    line(w, "AnonHugePages", x.anon_huge_pages * kb)?;
    line(w, "ShmemHugePages", 0)?;
    line(w, "ShmemPmdMapped", 0)?;
    line(w, "FileHugePages", 0)?;
    line(w, "FilePmdMapped", 0)?;
    writeln!(w, "HugePages_Total:   {:>5}", x.hugepages_total)?;
    writeln!(w, "HugePages_Free:    {:>5}", x.hugepages_free)?;
    writeln!(w, "HugePages_Rsvd:    {:>5}", x.hugepages_rsvd)?;
    writeln!(w, "HugePages_Surp:    {:>5}", x.hugepages_surp)?;
    line(w, "Hugepagesize", x.hugepage_kb)?;
    line(w, "Hugetlb", x.hugepages_total * x.hugepage_kb)?;
    line(w, "DirectMap4k", x.direct_map_4k * 4)?;
    line(w, "DirectMap2M", x.direct_map_2m * 2048)?;
    line(w, "DirectMap1G", x.direct_map_1g * 1024 * 1024)
}

/// A meminfo label: `"MemTotal"` displays as `"MemTotal:"`, padded as one unit.
struct Label<'a>(&'a str);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.len() + 1;
        f.write_str(self.0)?;
        f.write_str(":")?;
        for _ in len..f.width().unwrap_or(0) {
            f.write_str(" ")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Pfn;
    use crate::page::{MemMap, Page};
    use crate::zone::tests::NoMemory;

    fn machine(v: &mut [Page]) -> PageAllocator<'_, NoMemory> {
        let mut a = PageAllocator::new(NoMemory);
        a.init(MemMap::new(v, Pfn(0)), 1);
        a.add_memory(0, Pfn(1), Pfn(159));
        a.add_memory(0, Pfn(256), Pfn(8192));
        a.free_boot_range(Pfn(1), Pfn(159));
        a.free_boot_range(Pfn(600), Pfn(8192));
        a.setup_watermarks();
        a
    }

    #[test]
    fn buddyinfo_sums_to_free_pages_in_linux_format() {
        let mut v = vec![Page::new_reserved(); 8192];
        let a = machine(&mut v);
        let mut s = String::new();
        write_buddyinfo(&mut s, &a).unwrap();
        let lines: Vec<_> = s.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("Node 0, zone      DMA "), "{s}");
        let sum: u64 = lines
            .iter()
            .map(|l| {
                l.split_whitespace()
                    .skip(4)
                    .enumerate()
                    .map(|(o, n)| n.parse::<u64>().unwrap() << o)
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(sum, a.nr_free_pages());
        assert_eq!(sum, 158 + 8192 - 600);
    }

    #[test]
    fn meminfo_lines_are_aligned_like_linux() {
        let mut v = vec![Page::new_reserved(); 8192];
        let a = machine(&mut v);
        let mut s = String::new();
        write_meminfo(&mut s, &a, &MemInfoExtra::default()).unwrap();
        let first = s.lines().next().unwrap();
        assert_eq!(
            first,
            format!("MemTotal:       {:>8} kB", (158 + 8192 - 600) * 4)
        );
        // The HugePages_ counts have no unit, in Linux's `%5lu` after the label.
        assert!(
            s.lines().all(|l| if l.starts_with("HugePages_") {
                l.len() == 24
            } else {
                l.len() == 27 && l.ends_with(" kB")
            }),
            "{s}"
        );
        assert!(s.contains("\nHugePages_Total:       0\nHugePages_Free:        0\n"));
        let mut p = String::new();
        write_pagetypeinfo(&mut p, &a).unwrap();
        assert!(p.starts_with("Page block order: 9\nPages per block:  512\n"));
        assert!(
            p.contains("Node    0, zone    DMA32, type      Movable "),
            "{p}"
        );
        let mut z = String::new();
        write_zoneinfo(&mut z, &a).unwrap();
        assert!(
            z.contains("Node 0, zone   Normal\n        protection: (0, 0, 0)"),
            "{z}"
        );
    }
}
