//! Transparent huge pages for anonymous memory (`mm/huge_memory.c`), and the PMD-level
//! fault paths shared with hugetlb.
//!
//! - **When**: a fault in a private anonymous VMA whose 2 MiB-aligned range around the
//!   address lies wholly inside the VMA, with an empty PMD there (no page table: Linux's
//!   `pmd_none`), when `/sys/kernel/mm/transparent_hugepage/enabled` is `always`, or
//!   `madvise` (the default, so programs that do not ask behave as before) and the VMA has
//!   MADV_HUGEPAGE; never with MADV_NOHUGEPAGE. The fault allocates an order-9 compound
//!   page (`__GFP_COMP`, no reclaim: `defrag` is honoured as far as it goes, since there
//!   is no compaction to wait for), zeroes it, charges its 512 pages to the memory
//!   cgroup, and maps it with one PMD (PS bit): one fault per 2 MiB. A read fault does the
//!   same (Linux with `use_zero_page` 0: no huge zero page here). If the page cannot be
//!   had or charged, the fault falls back to a 4 KiB page (`thp_fault_fallback`).
//! - **Split** (`split_huge_pmd` + `split_huge_page` in one step): the PMD becomes a page
//!   table of 512 PTEs with the same flags, and the compound page 512 ordinary pages, each
//!   with the head's counts, its own rmap index, on the LRU. A THP is split when a range
//!   cuts its 2 MiB (munmap, mprotect, MADV_DONTNEED, mremap, brk, a MAP_FIXED
//!   replacement), when MADV_PAGEOUT reaches it (split before swap-out, as Linux), and at
//!   fork (see below). A range that covers a THP whole unmaps it whole (`zap_huge_pmd`)
//!   or changes its protection whole (`change_huge_pmd`).
//! - **Fork**: the parent's THPs are split before the copy, so both sides share 4 KiB
//!   pages copy-on-write and the first write copies one 4 KiB page. Linux shares the PMD
//!   and splits at the first write fault (`do_huge_pmd_wp_page` → `__split_huge_pmd`,
//!   then the 4 KiB COW): the COW outcome is the same, the split just happens earlier,
//!   and a THP is therefore only ever mapped by one PMD. A write fault on a read-only
//!   THP PMD (after mprotect) reuses it in place.
//! - **Not on the LRU** while PMD-mapped: global reclaim does not see THPs (Linux's
//!   reclaim splits them when it reaches them); MADV_PAGEOUT splits and swaps them.
//! - **Accounting**: RSS and smaps count 512 anonymous pages; /proc/meminfo
//!   `AnonHugePages`, smaps `AnonHugePages` per VMA; /proc/vmstat `thp_fault_alloc`,
//!   `thp_fault_fallback`, `thp_fault_fallback_charge`, `thp_split_page`,
//!   `thp_split_pmd`, `nr_anon_transparent_hugepages`.
//! - **khugepaged** (collapsing 4 KiB pages into a THP) is not implemented; its sysfs
//!   directory is not there.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use mm_core::gfp::Gfp;
use mm_core::page::flags::{PG_HEAD, PG_TAIL};
use mm_core::page::{Pages, NO_PFN};
use mm_core::pgtable::{pte, Cursor, PtMemory, Pte, HPAGE_NR, HPAGE_SIZE};
use mm_core::vma::{Backing, Vma, VM_HUGEPAGE, VM_HUGETLB, VM_NOHUGEPAGE, VM_SHARED};

use super::addr::{Pfn, VirtAddr};
use super::memory::{linear_page_index, FaultError, FaultKind};
use super::mm_struct::{Mm, UserPt};
use super::{hugetlb, page_alloc};

/// Order of a THP (`HPAGE_PMD_ORDER`).
pub const HPAGE_ORDER: usize = 9;

/// `transparent_hugepage/enabled`: 0 never, 1 madvise, 2 always.
static ENABLED: AtomicU8 = AtomicU8::new(1);
/// `transparent_hugepage/defrag`: an index into [`DEFRAG`]; `madvise` by default.
static DEFRAG_MODE: AtomicU8 = AtomicU8::new(3);

const ENABLED_NAMES: [&str; 3] = ["never", "madvise", "always"];
const DEFRAG: [&str; 5] = ["always", "defer", "defer+madvise", "madvise", "never"];

/// THP events and gauges (/proc/vmstat, /proc/meminfo).
pub static THP_FAULT_ALLOC: AtomicU64 = AtomicU64::new(0);
pub static THP_FAULT_FALLBACK: AtomicU64 = AtomicU64::new(0);
pub static THP_FAULT_FALLBACK_CHARGE: AtomicU64 = AtomicU64::new(0);
pub static THP_SPLIT_PAGE: AtomicU64 = AtomicU64::new(0);
pub static THP_SPLIT_PMD: AtomicU64 = AtomicU64::new(0);
/// THPs mapped by a PMD now (`NR_ANON_THPS`: AnonHugePages).
pub static NR_ANON_THPS: AtomicU64 = AtomicU64::new(0);

/// The text of `/sys/kernel/mm/transparent_hugepage/NAME`.
pub fn sysfs_read(name: &str) -> Option<alloc::string::String> {
    use core::fmt::Write;
    let (names, cur): (&[&str], usize) = match name {
        "enabled" => (&ENABLED_NAMES[..], ENABLED.load(Ordering::Relaxed) as usize),
        "defrag" => (&DEFRAG[..], DEFRAG_MODE.load(Ordering::Relaxed) as usize),
        "hpage_pmd_size" => return Some(alloc::format!("{HPAGE_SIZE}\n")),
        "use_zero_page" => return Some(alloc::string::String::from("0\n")),
        _ => return None,
    };
    // Linux's order for `enabled` is always, madvise, never.
    let order: &[usize] = if name == "enabled" {
        &[2, 1, 0]
    } else {
        &[0, 1, 2, 3, 4]
    };
    let mut s = alloc::string::String::new();
    for (k, &i) in order.iter().enumerate() {
        let sep = if k + 1 == order.len() { "\n" } else { " " };
        let _ = if i == cur {
            write!(s, "[{}]{sep}", names[i])
        } else {
            write!(s, "{}{sep}", names[i])
        };
    }
    Some(s)
}

/// A write to `/sys/kernel/mm/transparent_hugepage/NAME`; false for a bad value.
pub fn sysfs_write(name: &str, value: &str) -> bool {
    let v = value.trim();
    match name {
        "enabled" => match ENABLED_NAMES.iter().position(|&n| n == v) {
            Some(i) => {
                ENABLED.store(i as u8, Ordering::Relaxed);
                true
            }
            None => false,
        },
        "defrag" => match DEFRAG.iter().position(|&n| n == v) {
            Some(i) => {
                DEFRAG_MODE.store(i as u8, Ordering::Relaxed);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// `transparent_hugepage=always|madvise|never` on the command line.
pub fn init_from_cmdline(cmdline: &[u8]) {
    if let Some(v) = crate::cmdline::param(cmdline, "transparent_hugepage")
        .and_then(|v| core::str::from_utf8(v).ok())
    {
        sysfs_write("enabled", v);
    }
}

/// Whether a fault in `vma` may use a THP (`thp_vma_allowable_order`).
fn thp_allowed(vma: &Vma) -> bool {
    if vma.backing != Backing::Anon || vma.flags.intersects(VM_SHARED | VM_HUGETLB | VM_NOHUGEPAGE)
    {
        return false;
    }
    match ENABLED.load(Ordering::Relaxed) {
        2 => true,
        1 => vma.flags.contains(VM_HUGEPAGE),
        _ => false,
    }
}

/// smaps' `THPeligible`: whether a fault in `vma` may get a THP.
pub fn thp_eligible(vma: &Vma) -> bool {
    thp_allowed(vma) && vma.end.as_u64() - vma.start.as_u64() >= HPAGE_SIZE
}

/// Drop the reference a huge PMD held on the 2 MiB page at `head` (after its TLB flush):
/// a hugetlb page goes back to its pool at the last, a THP to the buddy allocator.
pub fn put_huge_page(head: Pfn) {
    if hugetlb::is_pool_page(head) {
        hugetlb::put_page(head);
        return;
    }
    let last = page_alloc::with(|a| {
        let pg = a.page_mut(head);
        if pg.refcount > 1 {
            pg.refcount -= 1;
            return false;
        }
        true
    });
    if !last {
        return;
    }
    for i in 0..HPAGE_NR {
        super::memcontrol::uncharge(head.add(i));
    }
    page_alloc::with(|a| {
        let pg = a.page_mut(head);
        pg.flags &= PG_HEAD;
        pg.mapping = 0;
        pg.index = 0;
        pg.mapcount = -1;
    });
    page_alloc::free_pages(head, HPAGE_ORDER);
}

/// Turn the compound page at `head`, mapped by PTEs now, into 512 ordinary pages with the
/// head's counts and flags and consecutive rmap indexes, and put them on the LRU
/// (`__split_huge_page`).
fn split_huge_page(head: Pfn) {
    page_alloc::with(|a| {
        let h = a.page(head).clone();
        for i in 0..HPAGE_NR {
            let pg = a.page_mut(head.add(i));
            pg.flags = h.flags & !(PG_HEAD | PG_TAIL);
            pg.order = 0;
            pg.refcount = h.refcount;
            pg.mapcount = h.mapcount;
            pg.mapping = h.mapping;
            pg.index = h.index + i;
            pg.compound_head = NO_PFN;
        }
    });
    for i in 0..HPAGE_NR {
        super::vmscan::lru_cache_add(head.add(i));
    }
    THP_SPLIT_PAGE.fetch_add(1, Ordering::Relaxed);
}

impl Mm {
    /// Split the THP PMD covering `va`, if there is one (`split_huge_pmd`): its page
    /// table of 512 PTEs replaces it, the page becomes 512 pages. Hugetlb PMDs are never
    /// split. Returns whether it split.
    pub fn split_huge_pmd(&mut self, va: u64) -> Result<bool, FaultError> {
        let haddr = va & !(HPAGE_SIZE - 1);
        let mut pt = UserPt::default();
        let root = self.pgd.root();
        let r = {
            let mut c = Cursor::new(
                &mut pt,
                root,
                VirtAddr::new(haddr)..VirtAddr::new(haddr + HPAGE_SIZE),
            )?;
            match c.query_pmd() {
                Some(e) if Pte(e).is_huge() && !hugetlb::is_pool_page(Pte(e).huge_base().pfn()) => {
                    c.split_huge()
                }
                _ => Ok(None),
            }
        };
        self.account_tables(&pt);
        let Some(old) = r? else {
            return Ok(false);
        };
        if old.is_accessible() && self.is_active() {
            // One INVLPG drops the 2 MiB translation.
            pt.flush_tlb_page(VirtAddr::new(haddr));
        }
        split_huge_page(old.huge_base().pfn());
        NR_ANON_THPS.fetch_sub(1, Ordering::Relaxed);
        THP_SPLIT_PMD.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Split the THPs that the edges of `[start, end)` cut (`vma_adjust_trans_huge`), so
    /// that a walk of the range finds whole huge PMDs only. `Err` when a page table for a
    /// split could not be had (the THP stays whole).
    pub fn split_huge_edges(&mut self, start: u64, end: u64) -> Result<(), FaultError> {
        if NR_ANON_THPS.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        // Only running out of memory matters: an address outside user space has no THP.
        let oom = |r: Result<bool, FaultError>| match r {
            Err(FaultError::Oom) => Err(FaultError::Oom),
            _ => Ok(()),
        };
        if !start.is_multiple_of(HPAGE_SIZE) {
            oom(self.split_huge_pmd(start))?;
        }
        if !end.is_multiple_of(HPAGE_SIZE) && end & !(HPAGE_SIZE - 1) >= start {
            oom(self.split_huge_pmd(end))?;
        }
        Ok(())
    }

    /// The 2 MiB-aligned addresses of the THP PMDs mapped in `[start, end)`.
    fn thp_pmds(&self, start: u64, end: u64) -> alloc::vec::Vec<u64> {
        let mut out = alloc::vec::Vec::new();
        let mut pt = UserPt::default();
        let Ok(mut c) = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(start)..VirtAddr::new(end),
        ) else {
            return out;
        };
        while let Some((va, p)) = c.find_next() {
            if p.is_huge()
                && !hugetlb::is_pool_page(p.huge_base().pfn())
                && out.try_reserve(1).is_ok()
            {
                out.push(va.as_u64() & !(HPAGE_SIZE - 1));
            }
            c.move_forward();
        }
        out
    }

    /// Split every THP mapped in `[start, end)` (mremap's move, fork).
    pub fn split_huge_range(&mut self, start: u64, end: u64) -> Result<(), FaultError> {
        if NR_ANON_THPS.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        for haddr in self.thp_pmds(start, end) {
            self.split_huge_pmd(haddr)?;
        }
        Ok(())
    }

    /// Hugetlb PMDs mapped in `[start, end)` (for the reservations munmap gives back).
    pub fn hugetlb_pmds(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        let mut pt = UserPt::default();
        let Ok(mut c) = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(start)..VirtAddr::new(end),
        ) else {
            return 0;
        };
        while let Some((_, p)) = c.find_next() {
            if p.is_huge() {
                n += 1;
            }
            c.move_forward();
        }
        n
    }

    /// A fault on an empty PMD of a THP-eligible VMA (`do_huge_pmd_anonymous_page`):
    /// `Ok(None)` means fall back to a 4 KiB page.
    pub(super) fn do_huge_pmd_anonymous_page(
        &mut self,
        addr: u64,
        vma: &Vma,
        writable: bool,
        leaf: u64,
    ) -> Result<Option<FaultKind>, FaultError> {
        let haddr = addr & !(HPAGE_SIZE - 1);
        if !thp_allowed(vma) || haddr < vma.start.as_u64() || haddr + HPAGE_SIZE > vma.end.as_u64()
        {
            return Ok(None);
        }
        let mut pt = UserPt::default();
        let root = self.pgd.root();
        let none = Cursor::new(
            &mut pt,
            root,
            VirtAddr::new(haddr)..VirtAddr::new(haddr + HPAGE_SIZE),
        )
        .map(|mut c| c.pmd_none())
        .unwrap_or(false);
        if !none {
            return Ok(None);
        }
        // GFP_TRANSHUGE_LIGHT: no reclaim, no warning (there is no compaction to defrag
        // with, whatever `defrag` says).
        let gfp = (Gfp::HIGHUSER_MOVABLE.0 & !Gfp::DIRECT_RECLAIM.0)
            | Gfp::COMP.0
            | Gfp::ZERO.0
            | Gfp::NOWARN.0
            | Gfp::NORETRY.0;
        let Some(head) = page_alloc::alloc_pages(Gfp(gfp), HPAGE_ORDER) else {
            THP_FAULT_FALLBACK.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        let memcg = super::memcontrol::current_memcg();
        for i in 0..HPAGE_NR {
            if super::memcontrol::charge(head.add(i), memcg).is_err() {
                for j in 0..i {
                    super::memcontrol::uncharge(head.add(j));
                }
                page_alloc::free_pages(head, HPAGE_ORDER);
                THP_FAULT_FALLBACK.fetch_add(1, Ordering::Relaxed);
                THP_FAULT_FALLBACK_CHARGE.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
        }
        let rw = if writable { pte::RW } else { 0 };
        let r = Cursor::new(
            &mut pt,
            root,
            VirtAddr::new(haddr)..VirtAddr::new(haddr + HPAGE_SIZE),
        )
        .and_then(|mut c| c.map_huge(Pte::new(head.phys(), leaf | rw | pte::PSE)));
        self.account_tables(&pt);
        if let Err(e) = r {
            for i in 0..HPAGE_NR {
                super::memcontrol::uncharge(head.add(i));
            }
            page_alloc::free_pages(head, HPAGE_ORDER);
            return Err(e.into());
        }
        page_alloc::with(|a| a.page_mut(head).mapcount = 0);
        super::rmap::add_new_anon(
            head,
            self.anon_id,
            linear_page_index(vma, VirtAddr::new(haddr)),
        );
        self.rss += HPAGE_NR;
        self.rss_stat.anon += HPAGE_NR;
        THP_FAULT_ALLOC.fetch_add(1, Ordering::Relaxed);
        NR_ANON_THPS.fetch_add(1, Ordering::Relaxed);
        Ok(Some(FaultKind::DemandZero))
    }

    /// A fault in a VM_HUGETLB VMA with an empty PMD (`hugetlb_no_page`): a zeroed pool
    /// page, mapped with a PMD; SIGBUS when the pool has none for it.
    pub(super) fn hugetlb_fault(
        &mut self,
        addr: u64,
        vma: &Vma,
        writable: bool,
        leaf: u64,
    ) -> Result<FaultKind, FaultError> {
        let haddr = addr & !(HPAGE_SIZE - 1);
        let reserved = self.hugetlb_resv > 0;
        let head = hugetlb::alloc(reserved).ok_or(FaultError::Sigbus)?;
        if reserved {
            self.hugetlb_resv -= 1;
        }
        let rw = if writable { pte::RW } else { 0 };
        let mut pt = UserPt::default();
        let r = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(haddr)..VirtAddr::new(haddr + HPAGE_SIZE),
        )
        .and_then(|mut c| c.map_huge(Pte::new(head.phys(), leaf | rw | pte::PSE)));
        self.account_tables(&pt);
        if let Err(e) = r {
            hugetlb::put_page(head);
            if reserved {
                // The reservation stays this address space's.
                hugetlb::reserve(1);
                self.hugetlb_resv += 1;
            }
            return Err(e.into());
        }
        let _ = vma;
        page_alloc::with(|a| a.page_mut(head).mapcount = 0);
        Ok(FaultKind::DemandZero)
    }

    /// A fault on a huge PMD that is there (`huge_pmd_set_accessed`, `do_huge_pmd_wp_page`,
    /// `hugetlb_wp`, NUMA-hinting-style PROT_NONE recovery).
    pub(super) fn huge_pmd_fault(
        &mut self,
        va: VirtAddr,
        vma: &Vma,
        e: Pte,
        write: bool,
        leaf: u64,
    ) -> Result<FaultKind, FaultError> {
        let haddr = va.as_u64() & !(HPAGE_SIZE - 1);
        let head = e.huge_base().pfn();
        if e.is_protnone() {
            let keep = e.flags() & (pte::ACCESSED | pte::DIRTY);
            self.set_huge_pmd(haddr, Pte::new(head.phys(), leaf | keep | pte::PSE));
            return Ok(FaultKind::Spurious);
        }
        if !write || e.is_writable() {
            return Ok(FaultKind::Spurious);
        }
        let flags = e.flags() & !pte::ADDR_MASK;
        let sole = page_alloc::with(|a| a.page(head).mapcount == 0);
        if vma.flags.contains(VM_SHARED) || sole {
            self.set_huge_pmd(haddr, Pte::new(head.phys(), flags | pte::RW | pte::PSE));
            return Ok(FaultKind::CowReuse);
        }
        if !hugetlb::is_pool_page(head) {
            // A shared THP (not made by this kernel's fork, which splits): split and let
            // the 4 KiB COW happen on the retried fault (`do_huge_pmd_wp_page` fallback).
            self.split_huge_pmd(haddr)?;
            return Ok(FaultKind::Spurious);
        }
        // hugetlb_wp: copy the 2 MiB page to a fresh pool page (no reservation: the
        // parent owns them), SIGBUS when the pool has none.
        let new = hugetlb::alloc(false).ok_or(FaultError::Sigbus)?;
        // SAFETY: two distinct 2 MiB pool pages, through the direct map.
        unsafe {
            core::ptr::copy_nonoverlapping(
                super::page_address(head).as_ptr::<u8>(),
                super::page_address(new).as_mut_ptr::<u8>(),
                HPAGE_SIZE as usize,
            )
        };
        page_alloc::with(|a| a.page_mut(new).mapcount = 0);
        self.set_huge_pmd(haddr, Pte::new(new.phys(), flags | pte::RW | pte::PSE));
        page_alloc::with(|a| a.page_mut(head).mapcount -= 1);
        hugetlb::put_page(head);
        Ok(FaultKind::CowCopy)
    }

    /// Rewrite the huge PMD at `haddr` and flush its translation.
    fn set_huge_pmd(&mut self, haddr: u64, new: Pte) {
        let mut pt = UserPt::default();
        let old = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(haddr)..VirtAddr::new(haddr + HPAGE_SIZE),
        )
        .ok()
        .and_then(|mut c| c.replace_huge(new.0));
        if old.is_some_and(|o| o.is_accessible()) && self.is_active() {
            pt.flush_tlb_page(VirtAddr::new(haddr));
        }
    }
}
