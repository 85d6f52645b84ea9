//! The memory reports of /proc (meminfo, buddyinfo, pagetypeinfo, zoneinfo, slabinfo,
//! vmallocinfo) in Linux's formats. Until the kernel has a /proc filesystem they are
//! printed on request: `kmem` on the command line prints all of them after boot,
//! `kmem=meminfo,buddyinfo` a selection.

use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use mm_core::report::{self, MemInfoExtra};

use super::{init, page_alloc, slab, vmalloc};
use crate::console::Console;
use crate::kprintln;

/// The reports, by file name under /proc.
pub const FILES: [&str; 6] = [
    "meminfo",
    "buddyinfo",
    "pagetypeinfo",
    "zoneinfo",
    "slabinfo",
    "vmallocinfo",
];

/// The counters /proc/meminfo needs from outside the page allocator.
pub fn meminfo_extra() -> MemInfoExtra {
    let (slab_r, slab_u) = slab::slab_pages();
    let (vm_total, vm_used, vm_chunk) = vmalloc::totals();
    let shmem = super::shmem::total_pages();
    let (file_pages, dirty, writeback) = super::filemap::counters();
    let buffers = super::filemap::buffer_pages().min(file_pages);
    use mm_core::lru::LruList;
    super::vmscan::lru_add_drain();
    let lru = super::vmscan::lru_sizes();
    let (swap_total, swap_free) = super::swapfile::si_swapinfo();
    let (huge_total, huge_free, huge_rsvd) = super::hugetlb::counts();
    // Shared memory is not on the LRU yet (it is not swapped): shown as inactive anon,
    // where Linux's LRU would have it.
    MemInfoExtra {
        // Cached excludes the block devices' own pages (Buffers), as Linux's does.
        cached: shmem + file_pages - buffers,
        shmem,
        buffers,
        dirty,
        writeback,
        active_anon: lru[LruList::ActiveAnon as usize],
        inactive_anon: lru[LruList::InactiveAnon as usize] + shmem,
        active_file: lru[LruList::ActiveFile as usize],
        inactive_file: lru[LruList::InactiveFile as usize],
        unevictable: lru[LruList::Unevictable as usize],
        swap_total,
        swap_free,
        swap_cached: super::swap_state::nr_pages(),
        slab_reclaimable: slab_r,
        slab_unreclaimable: slab_u,
        kernel_stack_bytes: crate::arch::x86_64::gdt::kernel_stack_bytes(),
        page_tables: init::BOOT_PAGETABLES.load(Ordering::Relaxed)
            + page_alloc::KERNEL_PAGETABLES.load(Ordering::Relaxed)
            + super::mm_struct::USER_PAGETABLES.load(Ordering::Relaxed),
        vmalloc_total: vm_total,
        vmalloc_used: vm_used,
        vmalloc_chunk: vm_chunk,
        anon_huge_pages: super::huge_memory::NR_ANON_THPS.load(Ordering::Relaxed)
            * mm_core::pgtable::HPAGE_NR,
        hugepages_total: huge_total,
        hugepages_free: huge_free,
        hugepages_rsvd: huge_rsvd,
        hugepages_surp: 0,
        hugepage_kb: super::hugetlb::HPAGE_SIZE >> 10,
        direct_map_4k: init::DIRECT_MAP_4K.load(Ordering::Relaxed),
        direct_map_2m: init::DIRECT_MAP_2M.load(Ordering::Relaxed),
        direct_map_1g: init::DIRECT_MAP_1G.load(Ordering::Relaxed),
        ..MemInfoExtra::default()
    }
}

/// Write /proc/`name`; `None` if there is no such report.
pub fn write<W: Write>(name: &str, w: &mut W) -> Option<fmt::Result> {
    let r = match name {
        "meminfo" => {
            let x = meminfo_extra();
            page_alloc::with(|a| report::write_meminfo(w, a, &x))
        }
        // The free lists by order: with every deferred unit initialised first, as Linux
        // has finished deferred init before anyone can read them.
        "buddyinfo" => page_alloc::with(|a| {
            a.deferred_init_all();
            report::write_buddyinfo(w, a)
        }),
        "pagetypeinfo" => page_alloc::with(|a| {
            a.deferred_init_all();
            report::write_pagetypeinfo(w, a)
        }),
        "zoneinfo" => page_alloc::with(|a| {
            a.deferred_init_all();
            report::write_zoneinfo(w, a)
        }),
        "slabinfo" => slab::write_slabinfo(w),
        "vmallocinfo" => vmalloc::write_vmallocinfo(w),
        _ => return None,
    };
    Some(r)
}

/// Print the reports `kmem` / `kmem=a,b` asks for, each under a `==> /proc/NAME <==` header.
pub fn print_from_cmdline(cmdline: &[u8]) {
    let list: &[u8] = if crate::cmdline::has_flag(cmdline, "kmem") {
        b"meminfo,buddyinfo,pagetypeinfo,zoneinfo,slabinfo,vmallocinfo"
    } else {
        match crate::cmdline::param(cmdline, "kmem") {
            Some(l) => l,
            None => return,
        }
    };
    for name in list.split(|&b| b == b',').filter(|n| !n.is_empty()) {
        let name = core::str::from_utf8(name).unwrap_or("?");
        kprintln!("==> /proc/{name} <==");
        if write(name, &mut Console).is_none() {
            crate::kprint!("kmem: no report {name:?} (have:");
            for f in FILES {
                crate::kprint!(" {f}");
            }
            kprintln!(")");
        }
    }
}
