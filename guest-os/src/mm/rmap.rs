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

use mm_core::page::{
    flags::{PG_ANON, PG_SWAPBACKED},
    Pages,
};
use mm_core::pgtable::{pte, Pte};
use mm_core::swap::{swp_entry_to_pte, SwpEntry};
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
        // Anonymous pages are swap-backed: they live on the anon LRU lists.
        p.set(PG_ANON | PG_SWAPBACKED);
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
        let g = t.mm().lock();
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
    let pages: Vec<(Pfn, u64)> = match t.mm().lock().as_ref() {
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

/// Where a page may be mapped: its anon_vma (private pages) or its page cache object.
#[derive(Clone, Copy)]
enum Owner {
    Anon(u64),
    File(u64),
}

/// The owner and index of `pfn` (`page->mapping`, `page->index`), if it has one.
fn owner_of(pfn: Pfn) -> Option<(Owner, u64)> {
    page_alloc::with(|a| {
        let p = a.page(pfn);
        match (p.test(PG_ANON), p.mapping) {
            (_, 0) => None,
            (true, id) => Some((Owner::Anon(id as u64), p.index)),
            (false, id) => Some((Owner::File(id as u64), p.index)),
        }
    })
}

/// Visit every PTE that maps `pfn` (`rmap_walk` with `rmap_one`), taking each address
/// space's lock with a try-lock: one held elsewhere (its task is in a fault, or its
/// address space is being torn down) is skipped, and the walk reports it as contended.
/// `f` gets the address space, the address and the entry. Must be called with no mm lock
/// of the caller's own held (it would only be skipped).
fn rmap_walk_locked(pfn: Pfn, f: &mut dyn FnMut(&mut super::mm_struct::Mm, u64, Pte)) -> bool {
    let Some((owner, index)) = owner_of(pfn) else {
        return true;
    };
    let mut complete = true;
    // The tasks to look at: an anon_vma's processes (few), or every task for a page cache
    // object. Collected without allocating in the common case.
    let mut few: [Option<&'static crate::proc::Task>; RMAP_INLINE] = [None; RMAP_INLINE];
    let mut many: Vec<&'static crate::proc::Task> = Vec::new();
    match owner {
        Owner::Anon(id) => {
            let r = REGISTRY.lock();
            if let Some(pids) = r.get(&id) {
                if pids.len() > RMAP_INLINE && many.try_reserve(pids.len()).is_err() {
                    return false;
                }
                for (i, &pid) in pids.iter().enumerate() {
                    let t = crate::proc::sched::find(pid);
                    if pids.len() <= RMAP_INLINE {
                        few[i] = t;
                    } else if let Some(t) = t {
                        many.push(t);
                    }
                }
            }
        }
        Owner::File(_) => many = crate::proc::sched::all(),
    }
    let tasks = few.iter().flatten().copied().chain(many.iter().copied());
    for t in tasks {
        let Some(mut g) = t.mm().try_lock() else {
            complete = false;
            continue;
        };
        let Some(mm) = g.as_mut() else { continue };
        // Addresses where the page may be mapped in this address space (usually one).
        let mut vas = [0u64; RMAP_INLINE];
        let mut n = 0;
        for v in mm.vmas.iter() {
            let covers = match (owner, v.backing) {
                (Owner::Anon(_), Backing::Special(_)) => false,
                (Owner::Anon(_), _) => !v.flags.contains(VM_SHARED),
                (Owner::File(id), Backing::File(fr)) => fr.id == id,
                (Owner::File(_), _) => false,
            };
            if !covers || index < v.pgoff || index - v.pgoff >= v.pages() {
                continue;
            }
            if n == RMAP_INLINE {
                // More candidate mappings than the walk follows: report it incomplete, so
                // that reclaim keeps the page rather than miss a mapping.
                complete = false;
                break;
            }
            vas[n] = v.start.as_u64() + ((index - v.pgoff) << PAGE_SHIFT);
            n += 1;
        }
        for &va in &vas[..n] {
            if let Some(p) = mm.query_pte(va) {
                if p.is_present() && p.phys().pfn() == pfn {
                    f(mm, va, p);
                }
            }
        }
    }
    complete
}

/// Processes of an anon_vma, and mappings of one page in one address space, that the
/// reclaim walk handles without allocating.
const RMAP_INLINE: usize = 16;

/// How many PTEs mapping `pfn` had their accessed bit set, clearing it
/// (`folio_referenced`); `None` if an address space could not be looked at (the page then
/// counts as referenced). No TLB flush, as x86's `ptep_clear_flush_young`: a stale
/// accessed bit only delays aging.
pub fn page_referenced(pfn: Pfn) -> Option<u32> {
    let mut n = 0;
    let complete = rmap_walk_locked(pfn, &mut |mm, va, p| {
        if p.0 & pte::ACCESSED != 0 {
            n += 1;
            mm.update_pte(va, Pte(p.0 & !pte::ACCESSED), false);
        }
    });
    complete.then_some(n)
}

/// Unmap `pfn` everywhere (`try_to_unmap`): each PTE becomes `swap` (anonymous pages, whose
/// slot gains a user per entry) or empty (page cache pages); a dirty PTE makes the page
/// dirty. Returns whether no mapping is left.
pub fn try_to_unmap(pfn: Pfn, swap: Option<SwpEntry>) -> bool {
    let mut dirty = false;
    rmap_walk_locked(pfn, &mut |mm, va, p| {
        let new = match swap {
            Some(e) => {
                if super::swapfile::swap_duplicate(e).is_err() {
                    return;
                }
                mm.swapents += 1;
                swp_entry_to_pte(e)
            }
            None => Pte::NONE,
        };
        mm.update_pte(va, new, p.is_accessible());
        dirty |= p.0 & pte::DIRTY != 0;
        mm.rss_stat.dec(pfn);
        mm.rss = mm.rss.saturating_sub(1);
        page_alloc::with(|a| a.page_mut(pfn).mapcount -= 1);
        // The mapping's reference (the caller holds its own, so this never frees).
        page_alloc::free_pages(pfn, 0);
    });
    if dirty {
        super::filemap::set_page_dirty_any(pfn);
    }
    page_alloc::with(|a| a.page(pfn).mapcount < 0)
}
