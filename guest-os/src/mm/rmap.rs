//! Reverse mapping: from a page to the page-table entries that map it, which reclaim and
//! migration need (`mm/rmap.c`).
//!
//! The equivalent of Linux's anon_vma, simplified to one `anon_vma` per process tree: an
//! address space gets a fresh id at exec, a forked child shares its parent's, and the
//! registry lists the processes using each id. A private page (anonymous, a COW copy, or
//! the private copy of a file page) records the id in `page->mapping` and its *linear
//! index* in `page->index` when it is first mapped (`page_add_new_anon_rmap`): the VMA's
//! `pgoff` plus the page's offset in the VMA ([`super::memory::linear_page_index`]). To
//! find its PTEs, [`rmap_walk`] visits every process of that id and, in each, every private
//! VMA whose `pgoff` range holds the index (`vma_address`), and looks at that address. A
//! VMA that mremap moved keeps its `pgoff`, so a page shared copy-on-write by a parent and
//! a child that moved it is found in both. (Linux keeps an anon_vma per VMA and chains
//! them, which narrows the search after many forks and execs; the answer is the same.)

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::page::{flags::PG_ANON, Pages};
use mm_core::vma::{Backing, VM_SHARED};

use super::addr::{Pfn, PAGE_SHIFT};
use super::page_alloc;
use crate::sync::IrqLock;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static REGISTRY: IrqLock<BTreeMap<u64, Vec<u32>>> = IrqLock::new("anon_vma", BTreeMap::new());

/// A fresh anon_vma id (exec).
pub fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Process `pid` uses anon_vma `id`.
pub fn attach(id: u64, pid: u32) {
    REGISTRY.lock().entry(id).or_default().push(pid);
}

/// Process `pid` stopped using anon_vma `id` (exit, exec).
pub fn detach(id: u64, pid: u32) {
    let mut r = REGISTRY.lock();
    if let Some(v) = r.get_mut(&id) {
        v.retain(|&p| p != pid);
        if v.is_empty() {
            r.remove(&id);
        }
    }
}

/// Record the owner of a newly mapped private page and its linear index.
pub fn add_new_anon(pfn: Pfn, id: u64, index: u64) {
    page_alloc::with(|a| {
        let p = a.page_mut(pfn);
        p.mapping = id as usize;
        p.index = index;
        p.set(PG_ANON);
    });
}

/// Every (pid, virtual address) whose PTE maps `pfn`. Must be called with no mm lock held.
pub fn rmap_walk(pfn: Pfn) -> Vec<(u32, u64)> {
    let (anon, id, index) = page_alloc::with(|a| {
        let p = a.page(pfn);
        (p.test(PG_ANON), p.mapping as u64, p.index)
    });
    let mut found = Vec::new();
    if !anon {
        return found;
    }
    let pids = REGISTRY.lock().get(&id).cloned().unwrap_or_default();
    for pid in pids {
        let Some(t) = crate::proc::sched::find(pid) else {
            continue;
        };
        let g = t.mm.lock();
        let Some(mm) = g.as_ref() else { continue };
        // `vma_address` in every private VMA whose pgoff range holds the index; the PTE
        // there decides (a file VMA's pgoffs may overlap an anonymous VMA's).
        for v in mm.vmas.iter() {
            if v.flags.contains(VM_SHARED) || matches!(v.backing, Backing::Special(_)) {
                continue;
            }
            if index < v.pgoff || index - v.pgoff >= v.pages() {
                continue;
            }
            let va = v.start.as_u64() + ((index - v.pgoff) << PAGE_SHIFT);
            if mm
                .query_pte(va)
                .is_some_and(|p| p.is_present() && p.phys().pfn() == pfn)
            {
                found.push((pid, va));
            }
        }
    }
    found
}

/// `rmap_check` on the command line: when a process exits, check that every private page it
/// maps finds this mapping by reverse walk, and that the walk finds as many mappings as the
/// page's mapcount says. Prints one line per process on the console.
pub static CHECK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Run the check for `t` (see [`CHECK`]).
pub fn check(t: &crate::proc::Task) {
    if !CHECK.load(Ordering::Relaxed) {
        return;
    }
    // Collect under the mm lock, walk without it.
    let pages: Vec<(Pfn, u64)> = match t.mm.lock().as_ref() {
        Some(mm) => mm.private_pages(),
        None => return,
    };
    let mut mismatches = 0;
    let mut mappings = 0;
    for &(pfn, va) in &pages {
        let found = rmap_walk(pfn);
        let mapcount = page_alloc::with(|a| a.page(pfn).mapcount);
        mappings += found.len();
        if !found.contains(&(t.pid, va)) || found.len() as i32 != mapcount + 1 {
            mismatches += 1;
            use core::fmt::Write;
            let _ = writeln!(
                crate::console::LoudConsole,
                "rmap_check: pfn {:#x} at {va:#x}: walk found {found:?}, mapcount {mapcount}",
                pfn.as_u64()
            );
        }
    }
    use core::fmt::Write;
    let _ = writeln!(
        crate::console::LoudConsole,
        "rmap_check pid {}: {} pages, {} mappings found, {} mismatches",
        t.pid,
        pages.len(),
        mappings,
        mismatches
    );
}
