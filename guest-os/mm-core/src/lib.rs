//! The guest kernel's memory-management algorithms, free of hardware access so that the same
//! code runs in the kernel and in host unit tests.
//!
//! Everything here works on memory handed to it: a [`page::MemMap`] (the `struct page` array),
//! and, for allocators that store data inside the pages they manage (SLUB free pointers), a
//! [`page::PageProvider`] that knows where a frame's bytes are. The kernel supplies these from
//! its direct map; the tests supply them from host heap buffers.
//!
//! The module names follow Linux (`memblock`, `buddy` for `page_alloc.c`'s core, `pcp`,
//! `zone`, `gfp`, `slub`, `kmalloc`, `vmalloc`).
//!
//! Memory pressure: `lru` (the two-list LRU and `get_scan_count`'s balance), `workingset`
//! (shadow entries, refault distance), `swap` (swap entries and PTEs, mkswap headers, slot
//! maps), `swap_cache`, `page_counter` (memory cgroup charges and limits), `psi` (pressure
//! stall information) and `oom` (OOM badness).

#![cfg_attr(not(test), no_std)]

// Heap-backed structures (the VMA tree) use `alloc`; the kernel provides a global
// allocator (kmalloc), the host tests std's.
extern crate alloc;

pub mod addr;
pub mod buddy;
pub mod gfp;
pub mod kmalloc;
pub mod list;
pub mod lru;
pub mod memblock;
pub mod oom;
pub mod page;
pub mod page_counter;
pub mod pcp;
pub mod pgtable;
pub mod psi;
pub mod report;
pub mod slub;
pub mod swap;
pub mod swap_cache;
pub mod vma;
pub mod vmalloc;
pub mod watermark;
pub mod workingset;
pub mod zone;

/// Maximum number of CPUs the per-CPU structures (page lists, SLUB CPU slabs) are sized for.
pub const NR_CPUS: usize = 4;
