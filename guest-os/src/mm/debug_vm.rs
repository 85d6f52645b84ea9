//! The memory manager's self-check, run on demand (Linux's `CONFIG_DEBUG_VM` checks, and
//! what `page_owner`/`check_pages` style debugging finds): reading
//! `/proc/vmscope/selfcheck` runs it and returns `ok` or one line per problem.
//!
//! It checks, with the allocator locks held so nothing moves underneath:
//! - buddy and per-CPU lists against `struct page` (`mm-core`'s `check`);
//! - every kmalloc cache's slabs, lists and counters (SLUB's `validate`);
//! - every user page-table entry of every process: the frame is allocated (not on a free
//!   list, refcount > 0), lies inside a VMA of its address space, its `_mapcount` + 1
//!   equals the number of entries found over all processes and its `_refcount` is at
//!   least that; a frame with a `_mapcount` that no entry maps is reported too;
//! - each address space's VMA tree (sorted, page aligned, non-empty, not overlapping,
//!   inside user space, `total_vm` equal to the sum of the VMAs) and its RSS count;
//! - the reverse map: `rmap_walk` of each mapped private page finds that entry.
//!
//! The page tables are walked level by level, visiting only present tables, so a sparse
//! multi-terabyte mapping costs what its tables cost. Owned by the robustness work (the
//! syscall fuzzer runs it after every run); it reads mm state and changes nothing.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mm_core::page::flags::PG_BUDDY;

use super::addr::{Pfn, PhysAddr, PAGE_SHIFT};
use super::page_alloc::{self, page_address};
use super::pgtable::pte;
use super::uaccess::TASK_SIZE;

/// Most problems listed; the rest are counted.
const MAX_REPORTED: usize = 64;
/// Entries per page-table page.
const ENTRIES: usize = 512;
/// PML4 slots of the user half.
const USER_PML4_SLOTS: usize = 256;
/// A non-present entry that still maps a frame: Linux's `_PAGE_PROTNONE` (the GLOBAL bit,
/// meaningless in a user leaf). Counted as a mapping if the PROT_NONE encoding uses it.
const PTE_PROTNONE: u64 = pte::GLOBAL;
/// Bytes mapped by one entry at each level (PML4, PDPT, PD, PT).
const LEVEL_SPAN: [u64; 4] = [1 << 39, 1 << 30, 1 << 21, 1 << 12];

/// Problems found, capped at [`MAX_REPORTED`] lines.
struct Problems {
    lines: Vec<String>,
    total: usize,
}

impl Problems {
    fn add(&mut self, line: String) {
        self.total += 1;
        if self.lines.len() < MAX_REPORTED {
            self.lines.push(line);
        }
    }
}

/// One user mapping: which process maps `pfn` at `va`.
#[derive(Clone, Copy)]
struct Mapping {
    pid: u32,
    pfn: u64,
    va: u64,
}

/// Whether leaf entry `e` maps a frame.
fn pte_maps(e: u64) -> bool {
    e & pte::PRESENT != 0 || (e & PTE_PROTNONE != 0 && e & pte::ADDR_MASK != 0)
}

/// Visit every leaf entry that maps a frame under the user half of the PML4 at `root`,
/// descending only into present tables. `f(va, entry, level)`; level 3 is a 4 KiB PTE.
fn walk_user(root: PhysAddr, f: &mut dyn FnMut(u64, u64, usize)) {
    fn table(pa: u64) -> &'static [u64; ENTRIES] {
        let va = page_address(PhysAddr::new(pa & pte::ADDR_MASK).pfn()).as_u64();
        // SAFETY: a present page-table page, reached through the direct map; only read.
        unsafe { &*(va as *const [u64; ENTRIES]) }
    }
    fn level(pa: u64, lvl: usize, base: u64, slots: usize, f: &mut dyn FnMut(u64, u64, usize)) {
        for (i, &e) in table(pa).iter().enumerate().take(slots) {
            let va = base + i as u64 * LEVEL_SPAN[lvl];
            if lvl == 3 {
                if pte_maps(e) {
                    f(va, e, lvl);
                }
            } else if lvl == 2 && mm_core::pgtable::Pte(e).is_huge() {
                // A huge user PMD (THP or hugetlb), present or PROT_NONE.
                f(va, e, lvl);
            } else if e & pte::PRESENT != 0 {
                if lvl > 0 && e & pte::PSE != 0 {
                    f(va, e, lvl);
                } else {
                    level(e, lvl + 1, va, ENTRIES, f);
                }
            }
        }
    }
    level(root.as_u64(), 0, 0, USER_PML4_SLOTS, f);
}

/// Run every check; `ok\n` or the problems, one a line.
pub fn selfcheck() -> Vec<u8> {
    let mut p = Problems {
        lines: Vec::new(),
        total: 0,
    };
    check_allocators(&mut p);
    let maps = check_address_spaces(&mut p);
    check_pages(&mut p, &maps);
    check_rmap(&mut p, &maps);
    let mut out = String::new();
    if p.total == 0 {
        out.push_str("ok\n");
    } else {
        for l in &p.lines {
            out.push_str(l);
            out.push('\n');
        }
        if p.total > p.lines.len() {
            out.push_str(&format!("... {} more\n", p.total - p.lines.len()));
        }
        out.push_str(&format!("{} problems\n", p.total));
    }
    out.into_bytes()
}

/// Buddy, per-CPU lists and kmalloc caches. Nothing may allocate while their locks are
/// held (kmalloc would take them again): results go into space reserved before.
fn check_allocators(p: &mut Problems) {
    if let Err(e) = page_alloc::with(|a| a.check()) {
        p.add(format!("buddy: {e}"));
    }
    let mut bad: Vec<(&'static str, &'static str)> = Vec::new();
    if bad.try_reserve(MAX_REPORTED).is_err() {
        p.add(String::from("out of memory while checking"));
        return;
    }
    let mut more = 0usize;
    super::slab::with_kmalloc(|k| {
        page_alloc::with(|pa| {
            for c in k.caches() {
                if let Err(e) = c.validate(pa) {
                    if bad.len() < bad.capacity() {
                        bad.push((c.name(), e));
                    } else {
                        more += 1;
                    }
                }
            }
        })
    });
    for (name, e) in bad {
        p.add(format!("slab {name}: {e}"));
    }
    p.total += more;
}

/// Walk every process's page tables and VMAs; returns every mapping of an owned page.
fn check_address_spaces(p: &mut Problems) -> Vec<Mapping> {
    let mut maps = Vec::new();
    for t in crate::proc::sched::all() {
        let g = t.mm().lock();
        let Some(mm) = g.as_ref() else { continue };
        let pid = t.pid;
        // VMA tree invariants.
        let mut prev_end = 0u64;
        let mut pages = 0u64;
        for v in mm.vmas.iter() {
            let (s, e) = (v.start.as_u64(), v.end.as_u64());
            if s >= e || s % 4096 != 0 || e % 4096 != 0 || e > TASK_SIZE || s < prev_end {
                p.add(format!(
                    "pid {pid}: bad VMA {s:#x}-{e:#x} (previous ends at {prev_end:#x})"
                ));
            }
            prev_end = e;
            pages += (e - s) >> PAGE_SHIFT;
        }
        if mm.vmas.stat().total_vm != pages {
            p.add(format!(
                "pid {pid}: total_vm {} but the VMAs cover {pages} pages",
                mm.vmas.stat().total_vm
            ));
        }
        // Page-table entries.
        let mut owned = 0u64;
        let mut found: Vec<Mapping> = Vec::new();
        let mut oom = false;
        walk_user(mm.pgd.root(), &mut |va, e, lvl| {
            if lvl == 2 {
                // One mapping of the 2 MiB page's head; a THP is 512 pages of RSS, a
                // hugetlb page none.
                let head = mm_core::pgtable::Pte(e).huge_base().pfn();
                let vma = mm.vmas.vma_lookup(super::addr::VirtAddr::new(va)).copied();
                let hugetlb = super::hugetlb::is_pool_page(head);
                match vma {
                    None => p.add(format!(
                        "pid {pid}: huge PMD {e:#x} at {va:#x} outside every VMA"
                    )),
                    Some(v)
                        if v.start.as_u64() > va
                            || v.end.as_u64() < va + mm_core::pgtable::HPAGE_SIZE
                            || v.flags.contains(mm_core::vma::VM_HUGETLB) != hugetlb =>
                    {
                        p.add(format!(
                            "pid {pid}: huge PMD {e:#x} at {va:#x} does not fit its VMA"
                        ))
                    }
                    _ => {}
                }
                if !hugetlb {
                    owned += mm_core::pgtable::HPAGE_NR;
                }
                if found.try_reserve(1).is_err() {
                    oom = true;
                    return;
                }
                found.push(Mapping {
                    pid,
                    pfn: head.as_u64(),
                    va,
                });
                return;
            }
            if lvl != 3 {
                p.add(format!("pid {pid}: huge user leaf at {va:#x} ({e:#x})"));
                return;
            }
            if mm.vmas.vma_lookup(super::addr::VirtAddr::new(va)).is_none() {
                p.add(format!(
                    "pid {pid}: PTE {e:#x} at {va:#x} outside every VMA"
                ));
            }
            let pfn = PhysAddr::new(e & pte::ADDR_MASK).pfn();
            if super::memory::is_shared_page(pfn) {
                return;
            }
            owned += 1;
            if found.try_reserve(1).is_err() {
                oom = true;
                return;
            }
            found.push(Mapping {
                pid,
                pfn: pfn.as_u64(),
                va,
            });
        });
        if oom {
            p.add(format!("pid {pid}: out of memory while checking"));
        }
        if owned != mm.rss {
            p.add(format!(
                "pid {pid}: rss {} but {owned} pages mapped",
                mm.rss
            ));
        }
        drop(g);
        if maps.try_reserve(found.len()).is_err() {
            p.add(String::from("out of memory while checking"));
            continue;
        }
        maps.extend_from_slice(&found);
    }
    maps
}

/// What is wrong with one frame (recorded under the zone lock, formatted after).
#[derive(Clone, Copy)]
enum PageProblem {
    OutsideMemMap,
    MappedButFree {
        n: i32,
        refcount: i32,
    },
    Counts {
        n: i32,
        mapcount: i32,
        refcount: i32,
    },
    Unmapped {
        mapcount: i32,
        flags: u32,
        refcount: i32,
    },
}

/// Each mapped frame's `struct page` against the mappings found, and frames that claim
/// mappings nobody has.
fn check_pages(p: &mut Problems, maps: &[Mapping]) {
    let mut count: BTreeMap<u64, i32> = BTreeMap::new();
    for m in maps {
        *count.entry(m.pfn).or_insert(0) += 1;
    }
    let mut bad: Vec<(u64, PageProblem)> = Vec::new();
    if bad.try_reserve(MAX_REPORTED).is_err() {
        p.add(String::from("out of memory while checking"));
        return;
    }
    let mut more = 0usize;
    let mut record = |pfn: u64, what: PageProblem| {
        if bad.len() < bad.capacity() {
            bad.push((pfn, what));
        } else {
            more += 1;
        }
    };
    page_alloc::with(|a| {
        for (&pfn, &n) in &count {
            let Some(pg) = a.mem_map.get(Pfn(pfn)) else {
                record(pfn, PageProblem::OutsideMemMap);
                continue;
            };
            if pg.test(PG_BUDDY) || pg.refcount <= 0 {
                record(
                    pfn,
                    PageProblem::MappedButFree {
                        n,
                        refcount: pg.refcount,
                    },
                );
            } else if pg.mapcount + 1 != n || pg.refcount < n {
                record(
                    pfn,
                    PageProblem::Counts {
                        n,
                        mapcount: pg.mapcount + 1,
                        refcount: pg.refcount,
                    },
                );
            }
        }
        for (pfn, pg) in a.mem_map.iter() {
            if pg.mapcount >= 0 && !count.contains_key(&pfn.as_u64()) {
                record(
                    pfn.as_u64(),
                    PageProblem::Unmapped {
                        mapcount: pg.mapcount + 1,
                        flags: pg.flags,
                        refcount: pg.refcount,
                    },
                );
            }
        }
    });
    for (pfn, what) in bad {
        p.add(match what {
            PageProblem::OutsideMemMap => format!("pfn {pfn:#x}: mapped but outside mem_map"),
            PageProblem::MappedButFree { n, refcount } => {
                format!("pfn {pfn:#x}: mapped {n} times but free (refcount {refcount})")
            }
            PageProblem::Counts {
                n,
                mapcount,
                refcount,
            } => format!("pfn {pfn:#x}: mapped {n} times, mapcount {mapcount} refcount {refcount}"),
            PageProblem::Unmapped {
                mapcount,
                flags,
                refcount,
            } => format!(
                "pfn {pfn:#x}: mapcount {mapcount} but no mapping (flags {flags:#x}, refcount {refcount})"
            ),
        });
    }
    p.total += more;
}

/// The reverse map finds every mapping of an anonymous page. Page cache pages (tmpfs
/// files, shared anonymous memory) are found through their object, not the anon rmap.
fn check_rmap(p: &mut Problems, maps: &[Mapping]) {
    for m in maps {
        if super::page_alloc::page_flags(Pfn(m.pfn)) & mm_core::page::flags::PG_ANON == 0 {
            continue;
        }
        let found = super::rmap::rmap_walk(Pfn(m.pfn));
        if !found.contains(&(m.pid, m.va)) {
            p.add(format!(
                "pfn {:#x}: rmap walk misses pid {} at {:#x} (found {found:?})",
                m.pfn, m.pid, m.va
            ));
        }
    }
}

/// The contents of `/proc/vmscope/NAME` (`selfcheck`, `freepages`), if it exists.
pub fn proc_file(name: &str) -> Option<Vec<u8>> {
    match name {
        "selfcheck" => Some(selfcheck()),
        "freepages" => Some(freepages()),
        _ => None,
    }
}

/// Most caches `/proc/vmscope/freepages` lists (more are summed into its `slab` line only).
const MAX_FREEPAGES_CACHES: usize = 64;

/// `/proc/vmscope/freepages`: what a leak check compares before and after a workload.
/// - `buddy`, `pcp`, `total`: free pages in the buddy lists (MemFree) and on the per-CPU
///   lists, read together under the zone lock (MemFree alone moves as the per-CPU lists fill
///   and drain);
/// - `slab`: pages held by slab caches;
/// - `reader`: the reading process's anonymous pages and page tables (PML4 included);
/// - `cache NAME LIVE SIZE`: each cache's live objects and their slot size.
///
/// Free plus slab pages must come back to their value, and no cache may keep more live
/// objects: a slab page that long-lived objects still pin after the workload (SLUB keeps a
/// partial slab as long as one object lives) is fragmentation, not a leak, while a leaked
/// object is one more live object whichever slab it sits in. The reclaimable caches are
/// dropped first, as `drop_caches` would: the LRU-add batch (whose references keep pages a
/// process just let go of), unused dentries, and every slab cache's empty slabs
/// (`kmem_cache_shrink`, as writing to /sys/kernel/slab/*/shrink does on Linux).
fn freepages() -> Vec<u8> {
    super::vmscan::lru_add_drain();
    crate::fs::dcache::shrink_all();
    super::shmem::shrink_table();
    super::slab::shrink_all();
    // Reserved before counting, so that collecting the figures allocates nothing.
    let mut caches: Vec<(&'static str, usize, u32)> = Vec::with_capacity(MAX_FREEPAGES_CACHES);
    let mut slab_pages = 0usize;
    super::slab::for_each_cache(|c| {
        let info = c.info();
        slab_pages += info.num_slabs * info.pagesperslab as usize;
        if caches.len() < caches.capacity() {
            caches.push((c.name(), c.live_objects(), info.objsize));
        }
    });
    let (buddy, pcp) = page_alloc::with(|a| (a.nr_free_pages(), a.pcp_pages()));
    // The reader's own memory (a leak checker's heap and stack grow as it works).
    let own = crate::proc::current()
        .and_then(|t| {
            t.mm()
                .lock()
                .as_ref()
                .map(|mm| mm.rss_stat.anon + mm.pgtables + 1)
        })
        .unwrap_or(0);
    let mut out = format!(
        "buddy {buddy}\npcp {pcp}\ntotal {}\nslab {slab_pages}\nreader {own}\n",
        buddy + pcp
    );
    for (name, live, size) in caches {
        out.push_str(&format!("cache {name} {live} {size}\n"));
    }
    out.into_bytes()
}
