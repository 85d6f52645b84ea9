//! Page faults and the page-table walks of whole ranges (`mm/memory.c`):
//!
//! - anonymous memory: a read maps the shared zero page read-only, a write a fresh zeroed
//!   page; a write to the zero page (or to a page shared after fork) copies it (COW);
//! - shared mappings never copy: a write fault on a read-only PTE of a VM_SHARED mapping
//!   makes it writable in place (`wp_page_shared`), and shared anonymous pages come from
//!   their shmem object ([`super::shmem`]);
//! - private file mappings: the file's page is copied into a new page on first touch (there
//!   is no page cache yet, so every mapping gets its own copy);
//! - PROT_NONE pages are mapped with PRESENT clear and `_PAGE_PROTNONE` set: no access
//!   reaches them, from user mode or from the kernel, yet they are mapped pages to zap,
//!   fork, smaps and rmap;
//! - the stack grows down on a fault below it, within the stack limit and the guard gap;
//! - anything else is a SIGSEGV for the caller to deliver (SEGV_MAPERR: nothing mapped,
//!   SEGV_ACCERR: mapped without that permission), and a page or page table that cannot
//!   be allocated is `VM_FAULT_OOM` for the OOM killer ([`super::oom_kill`]).
//!
//! `zap_range` (`unmap_page_range`) and `copy_page_range` walk the page tables with the
//! mm-core cursor, so their cost follows the tables present, not the range's size: about
//! 10 guest instructions per entry read, i.e. a few thousand per present page table, plus
//! the work per mapped page (mapcount, `put_page`).

use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::gfp::Gfp;
use mm_core::page::flags::{PG_LRU, PG_SWAPCACHE, PG_UPTODATE};
use mm_core::page::Pages;
use mm_core::pgtable::{pte, Cursor, MmuGather, PtError, Pte, HPAGE_NR};
use mm_core::swap::{pte_to_swp_entry, swp_entry_to_pte, SwpEntry};
use mm_core::vma::{Backing, Vma, VM_EXEC, VM_GROWSDOWN, VM_HUGETLB, VM_READ, VM_SHARED, VM_WRITE};

use super::addr::{Pfn, VirtAddr, PAGE_SIZE};
use super::mm_struct::{page_mapcount_add, stack_rlimit, Mm, RssStat, UserPt};
use super::page_alloc::{self, page_address};
use super::uaccess::TASK_SIZE;
use crate::syscall::errno::{Errno, EFAULT, ENOMEM};

/// `si_code` values of SIGSEGV.
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;

/// Allocation flags of user pages: movable, and quiet on failure since the OOM killer
/// reports it.
const GFP_USER_PAGE: Gfp = Gfp(Gfp::HIGHUSER_MOVABLE.0 | Gfp::NOWARN.0);

/// The zero page: mapped read-only wherever anonymous memory is read before written.
static ZERO_PFN: AtomicU64 = AtomicU64::new(0);

/// Pages every address space maps without owning them: the zero page, the vDSO and vvar.
pub(super) fn is_shared_page(pfn: Pfn) -> bool {
    pfn.as_u64() == ZERO_PFN.load(Ordering::Relaxed) || crate::proc::vdso::is_vdso_page(pfn)
}

/// Allocate the zero page at boot (Linux's `empty_zero_page` is static): allocated at the
/// first read fault instead, it would lower MemFree for good at a moment some process
/// chose, which any before/after leak check takes for a leak.
pub fn init_zero_page() {
    match page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0) {
        Some(p) => ZERO_PFN.store(p.as_u64(), Ordering::Relaxed),
        None => panic!("no memory for the zero page"),
    }
}

fn zero_pfn() -> Option<Pfn> {
    match ZERO_PFN.load(Ordering::Relaxed) {
        0 => None,
        p => Some(Pfn(p)),
    }
}

/// The page's index in the anon_vma's linear space (`linear_page_index`): the VMA's
/// `pgoff` plus the page's offset in it. mremap keeps a moved VMA's `pgoff`, so a page
/// keeps its index wherever a process moves it, and [`super::rmap::rmap_walk`] finds it in
/// every process sharing it, moved or not.
pub(super) fn linear_page_index(vma: &Vma, va: VirtAddr) -> u64 {
    vma.pgoff + (va.as_u64() - vma.start.as_u64()) / PAGE_SIZE
}

/// What a page fault did, for the fault counters and traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A fresh zeroed page.
    DemandZero,
    /// The shared zero page, read-only.
    ZeroPage,
    /// A page copied from a file, or a page of a shmem object, found in memory.
    File,
    /// A file page that had to be read from the disk (a major fault).
    FileMajor,
    /// A copy of a shared page on write.
    CowCopy,
    /// The last user of a page wrote it, or a shared mapping was written: made writable
    /// in place.
    CowReuse,
    /// The PTE was already fine (another path filled it).
    Spurious,
    /// A page of a special mapping ([vdso], [vvar]).
    Special,
    /// A swapped-out page found in the swap cache (`do_swap_page`, minor).
    SwapCached,
    /// A swapped-out page read from the swap device for this fault (major).
    SwapIn,
}

impl FaultKind {
    /// Whether the fault waited for the disk (`VM_FAULT_MAJOR`).
    pub fn is_major(self) -> bool {
        matches!(self, FaultKind::FileMajor | FaultKind::SwapIn)
    }

    /// The outcome code of the trace annotation (`crate::trace::outcome`).
    pub fn trace_outcome(self) -> u64 {
        use crate::trace::outcome as o;
        match self {
            FaultKind::DemandZero => o::DEMAND_ZERO,
            FaultKind::ZeroPage => o::ZERO_PAGE,
            FaultKind::File | FaultKind::Special => o::FILE_PAGE,
            FaultKind::FileMajor => o::FILE_PAGE | o::MAJOR,
            FaultKind::CowCopy => o::COW_COPY,
            FaultKind::CowReuse => o::COW_REUSE,
            FaultKind::Spurious => o::SPURIOUS,
            FaultKind::SwapCached => o::SWAP_IN,
            FaultKind::SwapIn => o::SWAP_IN | o::MAJOR,
        }
    }
}

/// A resolved page fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The stack VMA was extended down to the address first.
    pub stack_grew: bool,
}

/// An unresolved page fault (`VM_FAULT_SIGSEGV` with its si_code, or `VM_FAULT_OOM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    Segv(i32),
    /// The page is in swap and not in memory: the caller reads it in with no lock held
    /// ([`super::swap_state::swapin_readahead`]) and retries (Linux's `VM_FAULT_RETRY`
    /// after dropping the mmap lock for I/O).
    SwapIo(SwpEntry),
    /// Page `1` of page cache object `0` is not in memory (or is being read): the caller
    /// reads it with no lock held ([`super::filemap::get_page`]) and retries, as
    /// `filemap_fault` drops the mmap lock for I/O.
    PageIo(u64, u64),
    /// The page could not be charged: memory cgroup `0` is at its memory.max. The caller
    /// reclaims in that group with no lock held and retries, or kills in it
    /// (`mem_cgroup_oom`).
    Charge(u16),
    /// A file page past the end of the file (`VM_FAULT_SIGBUS`, `BUS_ADRERR`).
    Sigbus,
    Oom,
}

impl From<PtError> for FaultError {
    fn from(e: PtError) -> Self {
        match e {
            PtError::NoMemory => FaultError::Oom,
            PtError::BadRange => FaultError::Segv(SEGV_MAPERR),
        }
    }
}

/// Charge the new page `pfn` to the faulting task's memory cgroup (`mem_cgroup_charge`);
/// on failure the page is freed.
fn charge_new(pfn: Pfn) -> Result<(), FaultError> {
    let memcg = super::memcontrol::current_memcg();
    super::memcontrol::charge(pfn, memcg).map_err(|super::memcontrol::ChargeError::OverMax(g)| {
        page_alloc::free_pages(pfn, 0);
        FaultError::Charge(g)
    })
}

/// The leaf flags of a page of `vma` (without RW, which faults decide).
pub(super) fn leaf_flags(vma: &Vma) -> u64 {
    pte::PRESENT
        | pte::USER
        | if vma.flags.contains(VM_EXEC) {
            0
        } else {
            pte::NX
        }
}

impl Mm {
    /// Write `bytes` at user address `va` of this (possibly not current) address space,
    /// faulting pages in as needed (exec's stack and bss setup).
    pub fn write_user(&mut self, va: u64, bytes: &[u8]) -> Result<(), Errno> {
        let mut done = 0;
        while done < bytes.len() {
            let addr = va + done as u64;
            let in_page = (PAGE_SIZE - addr % PAGE_SIZE) as usize;
            let n = in_page.min(bytes.len() - done);
            let mut r = self.handle_fault(addr, true, false, true);
            // Exec's new address space is nobody else's yet: read the page here.
            if let Err(FaultError::SwapIo(entry)) = r {
                if let Ok(Some((pfn, _))) = super::swap_state::swapin_readahead(entry) {
                    r = self.handle_fault(addr, true, false, true);
                    page_alloc::free_pages(pfn, 0);
                }
            }
            if let Err(FaultError::PageIo(id, index)) = r {
                if let Ok((pfn, _)) = super::filemap::get_page(id, index, super::shmem::size(id)) {
                    r = self.handle_fault(addr, true, false, true);
                    page_alloc::free_pages(pfn, 0);
                }
            }
            r.map_err(|e| match e {
                FaultError::Oom | FaultError::Charge(_) => ENOMEM,
                _ => EFAULT,
            })?;
            let p = self
                .query_pte(addr)
                .filter(|p| p.is_accessible())
                .ok_or(EFAULT)?;
            let dst = (page_address(p.phys().pfn()).as_u64() + addr % PAGE_SIZE) as *mut u8;
            // SAFETY: `dst..dst+n` lies inside the page the fault handler just made present
            // and writable, reached through the direct map.
            unsafe { core::ptr::copy_nonoverlapping(bytes[done..].as_ptr(), dst, n) };
            done += n;
        }
        Ok(())
    }

    /// Resolve a fault at `addr` (`write`: a write access, `exec`: an instruction fetch;
    /// `force`: from the kernel on the process's behalf, e.g. exec, ignoring VMA write
    /// permission).
    pub fn handle_fault(
        &mut self,
        addr: u64,
        write: bool,
        exec: bool,
        force: bool,
    ) -> Result<Fault, FaultError> {
        if addr >= TASK_SIZE {
            return Err(FaultError::Segv(SEGV_MAPERR));
        }
        let mut stack_grew = false;
        let vma = match self.vmas.find_vma(VirtAddr::new(addr)) {
            Some(v) if v.start.as_u64() <= addr => *v,
            Some(v) if v.flags.contains(VM_GROWSDOWN) => {
                self.vmas
                    .expand_stack(VirtAddr::new(addr), &self.layout, stack_rlimit())
                    .map_err(|_| FaultError::Segv(SEGV_MAPERR))?;
                stack_grew = true;
                *self
                    .vmas
                    .find_vma(VirtAddr::new(addr))
                    .ok_or(FaultError::Segv(SEGV_MAPERR))?
            }
            _ => return Err(FaultError::Segv(SEGV_MAPERR)),
        };
        let kind = self.fault_in_vma(addr, &vma, write, exec, force)?;
        Ok(Fault { kind, stack_grew })
    }

    /// The part of [`Self::handle_fault`] after the VMA is known: permission checks, then
    /// fill or write-protect handling (`handle_pte_fault`).
    fn fault_in_vma(
        &mut self,
        addr: u64,
        vma: &Vma,
        write: bool,
        exec: bool,
        force: bool,
    ) -> Result<FaultKind, FaultError> {
        let va = VirtAddr::new(addr & !(PAGE_SIZE - 1));
        let f = vma.flags;
        let allowed = if force {
            true
        } else if write {
            f.contains(VM_WRITE)
        } else if exec {
            f.contains(VM_EXEC)
        } else {
            f.intersects(VM_READ | VM_WRITE | VM_EXEC)
        };
        if !allowed {
            return Err(FaultError::Segv(SEGV_ACCERR));
        }
        let writable = f.contains(VM_WRITE) || force;
        let leaf = leaf_flags(vma);
        let cur = self.query_pte(va.as_u64());
        if let Some(e) = cur.filter(|e| e.is_huge()) {
            return self.huge_pmd_fault(va, vma, e, write, leaf);
        }
        if f.contains(VM_HUGETLB) {
            return self.hugetlb_fault(addr, vma, writable, leaf);
        }
        if cur.is_none() {
            // No page table here: a THP if the VMA and the settings allow one.
            if let Some(kind) = self.do_huge_pmd_anonymous_page(addr, vma, writable, leaf)? {
                return Ok(kind);
            }
        }
        if let Some(entry) = cur.and_then(pte_to_swp_entry) {
            return self.do_swap_page(va, vma, entry, write, writable);
        }
        match cur {
            Some(e) if e.is_protnone() => {
                // The VMA allows access again (mprotect normally rewrote the entry already):
                // make it accessible; write permission comes back through the write fault.
                let keep = e.flags() & (pte::ACCESSED | pte::DIRTY);
                self.set_pte(va, Pte::new(e.phys(), leaf | keep))?;
                Ok(FaultKind::Spurious)
            }
            Some(e) if e.is_present() => {
                if !write || e.is_writable() {
                    return Ok(FaultKind::Spurious);
                }
                if f.contains(VM_SHARED) {
                    // wp_page_shared: a shared page is never copied. A disk file's page
                    // becomes dirty first (`page_mkwrite`), so writeback sees the write.
                    if let Backing::File(fr) = vma.backing {
                        if super::shmem::has_ops(fr.id) {
                            super::filemap::set_page_dirty(e.phys().pfn());
                        }
                    }
                    self.set_pte(va, Pte(e.0 | pte::RW))?;
                    return Ok(FaultKind::CowReuse);
                }
                self.do_wp_page(va, linear_page_index(vma, va), e, leaf)
            }
            _ => self.fill(va, vma, write, writable, leaf),
        }
    }

    /// Rewrite the entry of `va` (which exists) and flush its old translation.
    fn set_pte(&mut self, va: VirtAddr, new: Pte) -> Result<Pte, FaultError> {
        let mut pt = UserPt::default();
        let mut tlb = MmuGather::new(self.is_active());
        let root = self.pgd.root();
        let old = {
            let mut c = Cursor::new(&mut pt, root, va..VirtAddr::new(va.as_u64() + PAGE_SIZE))?;
            c.replace(new).ok_or(FaultError::Segv(SEGV_MAPERR))?
        };
        if old.is_accessible() {
            tlb.add_page(va);
        }
        tlb.finish(&mut pt);
        Ok(old)
    }

    /// Map `new` at `va`, creating tables (`set_pte_at` after `pte_alloc`).
    fn install_pte(&mut self, va: VirtAddr, new: Pte) -> Result<(), FaultError> {
        let mut pt = UserPt::default();
        let root = self.pgd.root();
        let r = Cursor::new(&mut pt, root, va..VirtAddr::new(va.as_u64() + PAGE_SIZE))
            .and_then(|mut c| c.map(new));
        self.account_tables(&pt);
        r.map(|_| ()).map_err(FaultError::from)
    }

    /// First touch of a page: fill the PTE (`do_anonymous_page`, `do_fault`).
    fn fill(
        &mut self,
        va: VirtAddr,
        vma: &Vma,
        write: bool,
        writable: bool,
        leaf: u64,
    ) -> Result<FaultKind, FaultError> {
        let rw = if writable { pte::RW } else { 0 };
        // The page within the mapping (pgoff follows a split, as Linux's vmf->pgoff).
        let pgoff = linear_page_index(vma, va);
        let (pfn, kind, flags) = match vma.backing {
            Backing::Special(name) => {
                use crate::proc::vdso;
                let pfn = if name == "[vdso]" {
                    vdso::vdso_pfn(pgoff as usize)
                } else {
                    vdso::vvar_pfn().filter(|_| pgoff == 0)
                }
                .ok_or(FaultError::Segv(SEGV_MAPERR))?;
                // Read-only to user space, whatever the VMA says.
                self.install_pte(va, Pte::new(pfn.phys(), leaf))?;
                return Ok(FaultKind::Special);
            }
            Backing::File(f) if super::shmem::has_ops(f.id) => {
                // A disk file (`filemap_fault`): the cache page, read from the disk if it is
                // not in memory (a major fault). Shared mappings map it (writable only
                // once dirtied), private ones map it read-only or copy it on a write.
                let size = super::shmem::size(f.id);
                if pgoff >= size.div_ceil(PAGE_SIZE) {
                    return Err(FaultError::Sigbus);
                }
                // Only a page already in memory and up to date is used here: reading one
                // sleeps, which the caller does with the address space unlocked
                // (`FaultError::PageIo`), then faults again.
                let Some(cache) = super::filemap::find_uptodate(f.id, pgoff) else {
                    return Err(FaultError::PageIo(f.id, pgoff));
                };
                let kind = FaultKind::File;
                let shared = vma.flags.contains(VM_SHARED);
                if shared || !write {
                    let mut flags = leaf;
                    if shared && write {
                        super::filemap::set_page_dirty(cache);
                        flags |= rw;
                    }
                    // Our reference becomes the mapping's.
                    if let Err(e) = self.install_pte(va, Pte::new(cache.phys(), flags)) {
                        page_alloc::free_pages(cache, 0);
                        return Err(e);
                    }
                    page_mapcount_add(cache, 1);
                    self.rss_inc(cache);
                    return Ok(kind);
                }
                let pfn = page_alloc::alloc_pages(GFP_USER_PAGE, 0);
                if let Some(pfn) = pfn {
                    // SAFETY: copying one page between two frames through the direct map;
                    // we hold a reference on the cache page.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            page_address(cache).as_ptr::<u8>(),
                            page_address(pfn).as_mut_ptr::<u8>(),
                            PAGE_SIZE as usize,
                        )
                    };
                }
                page_alloc::free_pages(cache, 0);
                let pfn = pfn.ok_or(FaultError::Oom)?;
                charge_new(pfn)?;
                (pfn, kind, leaf | rw)
            }
            Backing::File(f) if super::shmem::is_shmem(f.id) && !vma.flags.contains(VM_SHARED) => {
                // A private mapping of a tmpfs file (`do_read_fault` / `do_cow_fault`):
                // reads map the cache page read-only, a write gets a private copy.
                let cache = super::shmem::find_or_create(f.id, pgoff)?;
                if !write {
                    page_alloc::with(|a| a.get_page(cache));
                    if let Err(e) = self.install_pte(va, Pte::new(cache.phys(), leaf)) {
                        page_alloc::free_pages(cache, 0);
                        return Err(e);
                    }
                    page_mapcount_add(cache, 1);
                    self.rss_inc(cache);
                    return Ok(FaultKind::File);
                }
                let pfn = page_alloc::alloc_pages(GFP_USER_PAGE, 0).ok_or(FaultError::Oom)?;
                charge_new(pfn)?;
                // SAFETY: copying one page between two frames through the direct map; the
                // cache page is held by its object.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        page_address(cache).as_ptr::<u8>(),
                        page_address(pfn).as_mut_ptr::<u8>(),
                        PAGE_SIZE as usize,
                    )
                };
                (pfn, FaultKind::File, leaf | rw)
            }
            Backing::File(f) if super::shmem::is_shmem(f.id) => {
                let pfn = super::shmem::find_or_create(f.id, pgoff)?;
                page_alloc::with(|a| a.get_page(pfn));
                if let Err(e) = self.install_pte(va, Pte::new(pfn.phys(), leaf | rw)) {
                    page_alloc::free_pages(pfn, 0);
                    return Err(e);
                }
                page_mapcount_add(pfn, 1);
                self.rss_inc(pfn);
                return Ok(FaultKind::File);
            }
            // Every file's pages live in a page cache object; a mapping naming none
            // has nothing to show.
            Backing::File(_) => return Err(FaultError::Sigbus),
            Backing::Anon if !write && !vma.flags.contains(VM_SHARED) => {
                let z = zero_pfn().ok_or(FaultError::Oom)?;
                (z, FaultKind::ZeroPage, leaf)
            }
            Backing::Anon => {
                let pfn =
                    page_alloc::alloc_pages(GFP_USER_PAGE | Gfp::ZERO, 0).ok_or(FaultError::Oom)?;
                charge_new(pfn)?;
                (pfn, FaultKind::DemandZero, leaf | rw)
            }
        };
        if let Err(e) = self.install_pte(va, Pte::new(pfn.phys(), flags)) {
            if kind != FaultKind::ZeroPage {
                page_alloc::free_pages(pfn, 0);
            }
            return Err(e);
        }
        if kind != FaultKind::ZeroPage {
            page_mapcount_add(pfn, 1);
            super::rmap::add_new_anon(pfn, self.anon_id, pgoff);
            self.rss_inc(pfn);
            super::vmscan::lru_cache_add(pfn);
        }
        Ok(kind)
    }

    /// A fault on a swap entry (`do_swap_page`): the page must be in the swap cache (else
    /// [`FaultError::SwapIo`] sends the caller to read it with no lock held); it is mapped
    /// back, and the entry's claim on its slot is dropped.
    fn do_swap_page(
        &mut self,
        va: VirtAddr,
        vma: &Vma,
        entry: SwpEntry,
        write: bool,
        writable: bool,
    ) -> Result<FaultKind, FaultError> {
        // Never wait for a page being read with the lock held: the caller waits.
        let Some(pfn) = super::swap_state::cached_page(entry) else {
            return Err(FaultError::SwapIo(entry));
        };
        let r = self.map_swap_page(va, vma, entry, pfn, write, writable);
        page_alloc::free_pages(pfn, 0);
        r.map(|()| FaultKind::SwapCached)
    }

    /// Map the swap-cache page `pfn` of `entry` at `va`, where the PTE holds `entry`
    /// (the second half of `do_swap_page`, also swapoff's `unuse_pte`). The caller holds a
    /// reference on `pfn`. A page no other entry names is exclusive: a write maps it
    /// writable and its slot is freed (the data will differ from the copy in swap).
    fn map_swap_page(
        &mut self,
        va: VirtAddr,
        vma: &Vma,
        entry: SwpEntry,
        pfn: Pfn,
        write: bool,
        writable: bool,
    ) -> Result<(), FaultError> {
        if page_alloc::page_flags(pfn) & PG_UPTODATE == 0 {
            return Err(FaultError::Sigbus);
        }
        // A page read from swap is charged to the task that maps it (swap-in charging).
        if super::memcontrol::page_memcg(pfn) == super::memcontrol::NO_MEMCG {
            super::memcontrol::charge(pfn, super::memcontrol::current_memcg())
                .map_err(|super::memcontrol::ChargeError::OverMax(g)| FaultError::Charge(g))?;
        }
        let mut flags = leaf_flags(vma);
        // The mapping's reference.
        page_alloc::with(|a| a.get_page(pfn));
        self.install_pte(va, Pte::new(pfn.phys(), flags))
            .inspect_err(|_| page_alloc::free_pages(pfn, 0))?;
        page_mapcount_add(pfn, 1);
        if page_alloc::with(|a| a.page(pfn).mapping) == 0 {
            super::rmap::add_new_anon(pfn, self.anon_id, linear_page_index(vma, va));
        }
        self.rss_inc(pfn);
        self.swapents = self.swapents.saturating_sub(1);
        super::swapfile::swap_free(entry);
        let exclusive = super::swapfile::swap_count(entry) == 0
            && page_alloc::with(|a| a.page(pfn).mapcount == 0);
        if exclusive && ((write && writable) || super::swapfile::vm_swap_full()) {
            super::swap_state::try_to_free_swap(pfn);
        }
        if write && writable && exclusive {
            flags |= pte::RW | pte::DIRTY;
            self.set_pte(va, Pte::new(pfn.phys(), flags))?;
        }
        Ok(())
    }

    /// Swapoff's `unuse_pte`: if `va` still holds `entry`, map `pfn` (its page, read in)
    /// there.
    pub(super) fn unuse_pte(&mut self, va: u64, entry: SwpEntry, pfn: Pfn) {
        if self.query_pte(va) != Some(swp_entry_to_pte(entry)) {
            return;
        }
        let Some(vma) = self.vmas.find_vma(VirtAddr::new(va)).copied() else {
            return;
        };
        let _ = self.map_swap_page(VirtAddr::new(va), &vma, entry, pfn, false, false);
    }

    /// Up to `max` swap entries of area `t` in this address space, with their addresses
    /// (`unuse_vma`'s walk; empty tables are skipped whole).
    pub(super) fn swap_entries_of(&self, t: usize, max: usize) -> alloc::vec::Vec<(u64, SwpEntry)> {
        let mut out = alloc::vec::Vec::new();
        if self.swapents == 0 || out.try_reserve(max.min(self.swapents as usize)).is_err() {
            return out;
        }
        let mut pt = UserPt::default();
        let Ok(mut c) = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(0)..VirtAddr::new(mm_core::pgtable::USER_TOP),
        ) else {
            return out;
        };
        while let Some((va, p)) = c.find_next_entry() {
            if let Some(e) = pte_to_swp_entry(p) {
                if e.type_() == t {
                    out.push((va.as_u64(), e));
                    if out.len() >= max || out.len() == out.capacity() {
                        break;
                    }
                }
            }
            c.move_forward();
        }
        out
    }

    /// A write to a present read-only page of a private writable mapping (`do_wp_page`):
    /// reuse it if this is its only user, else copy it.
    fn do_wp_page(
        &mut self,
        va: VirtAddr,
        index: u64,
        old: Pte,
        leaf: u64,
    ) -> Result<FaultKind, FaultError> {
        let old_pfn = old.phys().pfn();
        let is_zero = old_pfn.as_u64() == ZERO_PFN.load(Ordering::Relaxed);
        if !is_zero && page_alloc::page_flags(old_pfn) & PG_LRU == 0 {
            // A page still in the LRU-add batch holds the batch's reference: drain it so
            // that the count below is the page's users only (as `wp_can_reuse_anon_folio`).
            super::vmscan::lru_add_drain();
        }
        if !is_zero && page_alloc::page_flags(old_pfn) & PG_SWAPCACHE != 0 {
            // A page back from swap that no other entry names: its slot goes, so the
            // write below may reuse it (`folio_free_swap` in `wp_can_reuse_anon_folio`).
            super::swap_state::try_to_free_swap(old_pfn);
        }
        let shared = is_zero
            || page_alloc::with(|a| a.page(old_pfn).mapcount > 0 || a.page(old_pfn).refcount > 1);
        if !shared {
            self.set_pte(va, Pte(old.0 | pte::RW))?;
            return Ok(FaultKind::CowReuse);
        }
        let new = page_alloc::alloc_pages(GFP_USER_PAGE, 0).ok_or(FaultError::Oom)?;
        charge_new(new)?;
        // SAFETY: copying one page between two frames through the direct map.
        unsafe {
            core::ptr::copy_nonoverlapping(
                page_address(old_pfn).as_ptr::<u8>(),
                page_address(new).as_mut_ptr::<u8>(),
                PAGE_SIZE as usize,
            );
        }
        if let Err(e) = self.set_pte(va, Pte::new(new.phys(), leaf | pte::RW)) {
            page_alloc::free_pages(new, 0);
            return Err(e);
        }
        page_mapcount_add(new, 1);
        super::rmap::add_new_anon(new, self.anon_id, index);
        super::vmscan::lru_cache_add(new);
        if is_zero {
            self.rss_inc(new);
        } else {
            // The old page's TLB entry is gone (set_pte flushed): drop our reference.
            self.rss_stat.dec(old_pfn);
            self.rss_stat.inc(new);
            page_mapcount_add(old_pfn, -1);
            page_alloc::free_pages(old_pfn, 0);
        }
        Ok(FaultKind::CowCopy)
    }

    /// Unmap the pages of `[start, end)` and drop their references (`unmap_page_range`
    /// with `zap_pte_range` at the bottom); tables left empty are freed. TLB entries are
    /// flushed in batches, before any page or table is freed.
    pub fn zap_range(&mut self, start: u64, end: u64) {
        self.zap_range_bounded(start, end, u64::MAX);
    }

    /// [`Self::zap_range`] that clears at most `budget` entries and returns where it
    /// stopped (`None`: done), for callers that reschedule between pieces.
    pub fn zap_range_bounded(&mut self, start: u64, end: u64, budget: u64) -> Option<u64> {
        let start = start & !(PAGE_SIZE - 1);
        let end = end.min(mm_core::pgtable::USER_TOP);
        if start >= end {
            return None;
        }
        // A THP the range cuts is split first (munmap and mprotect did it before changing
        // the VMAs); one it covers goes whole.
        let _ = self.split_huge_edges(start, end);
        let mut pt = UserPt::default();
        let mut tlb = MmuGather::new(self.is_active());
        let mut stat = self.rss_stat;
        let mut rss = self.rss;
        let mut swapents = self.swapents;
        let mut stopped = None;
        if let Ok(mut c) = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(start)..VirtAddr::new(end),
        ) {
            stopped = c
                .unmap_bounded(end - start, budget, &mut tlb, &mut |_, p| {
                    if !p.is_present() {
                        // A swap entry: one user of its slot fewer.
                        if let Some(e) = pte_to_swp_entry(p) {
                            super::swap_state::free_swap_and_cache(e);
                            swapents = swapents.saturating_sub(1);
                        }
                        return false;
                    }
                    if p.is_huge() {
                        // `zap_huge_pmd`: a THP (512 anonymous pages of RSS) or a
                        // hugetlb page (not in RSS); the reference goes after the flush.
                        let head = p.huge_base().pfn();
                        page_alloc::with(|a| a.page_mut(head).mapcount -= 1);
                        if !super::hugetlb::is_pool_page(head) {
                            stat.anon = stat.anon.saturating_sub(HPAGE_NR);
                            rss = rss.saturating_sub(HPAGE_NR);
                            super::huge_memory::NR_ANON_THPS.fetch_sub(1, Ordering::Relaxed);
                        }
                        return true;
                    }
                    let pfn = p.phys().pfn();
                    if is_shared_page(pfn) {
                        return false;
                    }
                    // One look under the allocator's lock: the mapcount drop, the flags
                    // (for the RSS counter and the swap cache) and the new mapcount.
                    let (flags, mapcount) = page_alloc::with(|a| {
                        let pg = a.page_mut(pfn);
                        pg.mapcount -= 1;
                        (pg.flags, pg.mapcount)
                    });
                    stat.dec_flags(flags);
                    rss = rss.saturating_sub(1);
                    // A page back from swap that nothing maps any more gives up its slot
                    // (`free_swap_cache`); the gather still holds this mapping's reference.
                    if flags & PG_SWAPCACHE != 0 && mapcount < 0 {
                        super::swap_state::try_to_free_swap(pfn);
                    }
                    true
                })
                .ok()
                .flatten();
        }
        tlb.finish(&mut pt);
        self.rss_stat = stat;
        self.rss = rss;
        self.swapents = swapents;
        self.account_tables(&pt);
        stopped.map(|va| va.as_u64())
    }

    /// Where the VMAs covering `[addr, end)` without a gap from `addr` stop (the end of
    /// the mapped prefix of the range).
    pub fn covered_from(&self, addr: u64, end: u64) -> u64 {
        let mut covered = addr;
        for v in self
            .vmas
            .iter()
            .filter(|v| v.end.as_u64() > addr && v.start.as_u64() < end)
        {
            if v.start.as_u64() > covered {
                break;
            }
            covered = v.end.as_u64();
        }
        covered
    }

    /// Up to `max` pages mapped in `[from, end)` that only this mapping uses, each with a
    /// reference for the caller, and where the walk stopped (`MADV_PAGEOUT`'s collection;
    /// empty tables are skipped whole).
    pub fn pages_for_pageout(
        &mut self,
        from: u64,
        end: u64,
        max: usize,
    ) -> (alloc::vec::Vec<Pfn>, u64) {
        let mut out = alloc::vec::Vec::new();
        if out.try_reserve(max).is_err() || from >= end {
            return (out, end);
        }
        let mut from = from;
        loop {
            // A THP on the way is split first (swap-out takes 4 KiB pages, as Linux splits
            // a THP before `add_to_swap`), then the walk resumes there.
            let mut split_at = None;
            let mut pt = UserPt::default();
            let Ok(mut c) = Cursor::new(
                &mut pt,
                self.pgd.root(),
                VirtAddr::new(from)..VirtAddr::new(end),
            ) else {
                return (out, end);
            };
            while let Some((va, p)) = c.find_next() {
                if out.len() >= max {
                    return (out, va.as_u64());
                }
                if p.is_huge() {
                    if !super::hugetlb::is_pool_page(p.huge_base().pfn()) {
                        split_at = Some(va.as_u64());
                        break;
                    }
                    c.move_forward();
                    continue;
                }
                let pfn = p.phys().pfn();
                if p.is_accessible() && !is_shared_page(pfn) {
                    let mine = page_alloc::with(|a| {
                        let pg = a.page(pfn);
                        let mine = pg.mapcount == 0 && pg.test(PG_LRU);
                        if mine {
                            a.get_page(pfn);
                        }
                        mine
                    });
                    if mine {
                        out.push(pfn);
                    }
                }
                c.move_forward();
            }
            let Some(va) = split_at else {
                return (out, end);
            };
            if self.split_huge_pmd(va) != Ok(true) {
                return (out, end);
            }
            // The split pages wait in the LRU-add batch: put them on the lists, where
            // reclaim takes them from.
            super::vmscan::lru_add_drain();
            from = va;
        }
    }

    /// Write-protect this address space's mappings of page `index` (frame `pfn`) of
    /// object `id` (`page_mkclean_one`): the next write faults and dirties the page again.
    pub fn wrprotect_file_page(&mut self, id: u64, index: u64, pfn: Pfn) {
        let vas: alloc::vec::Vec<u64> = self
            .vmas
            .iter()
            .filter(|v| v.flags.contains(VM_SHARED))
            .filter(|v| matches!(v.backing, Backing::File(f) if f.id == id))
            .filter(|v| index >= v.pgoff && index - v.pgoff < v.pages())
            .map(|v| v.start.as_u64() + (index - v.pgoff) * PAGE_SIZE)
            .collect();
        for va in vas {
            if let Some(p) = self.query_pte(va) {
                if p.is_present() && p.phys().pfn() == pfn && p.is_writable() {
                    let _ = self.set_pte(VirtAddr::new(va), Pte(p.0 & !(pte::RW | pte::DIRTY)));
                }
            }
        }
    }

    /// Unmap the page cache pages of `[start, end)` (not the private copies a COW made,
    /// which carry PG_anon): `zap_page_range` for [`unmap_mapping_range`].
    fn zap_file_range(&mut self, start: u64, end: u64, _id: u64) {
        let mut pt = UserPt::default();
        let mut tlb = MmuGather::new(self.is_active());
        let mut dropped: alloc::vec::Vec<Pfn> = alloc::vec::Vec::new();
        if let Ok(mut c) = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(start)..VirtAddr::new(end),
        ) {
            while let Some((va, p)) = c.find_next() {
                if p.is_present() {
                    let pfn = p.phys().pfn();
                    let anon = page_alloc::page_flags(pfn) & mm_core::page::flags::PG_ANON != 0;
                    if !anon && !is_shared_page(pfn) && dropped.try_reserve(1).is_ok() {
                        c.replace(Pte(0));
                        tlb.add_page(va);
                        page_mapcount_add(pfn, -1);
                        self.rss_stat.dec(pfn);
                        self.rss = self.rss.saturating_sub(1);
                        dropped.push(pfn);
                    }
                }
                c.move_forward();
            }
        }
        tlb.finish(&mut pt);
        for pfn in dropped {
            page_alloc::free_pages(pfn, 0);
        }
    }

    /// Share every mapped page of this address space with `child` (`copy_page_range`),
    /// VMA by VMA: private writable pages are write-protected in both (COW), pages gain a
    /// reference and a mapping each.
    pub(super) fn copy_page_range(&mut self, child: &mut Mm) -> Result<(), PtError> {
        // THPs are split before they are shared (see `huge_memory`).
        self.split_huge_range(0, mm_core::pgtable::USER_TOP)
            .map_err(|_| PtError::NoMemory)?;
        let mut pt = UserPt::default();
        let mut stat = RssStat::default();
        let mut swapents = 0u64;
        let mut dup_failed = false;
        let mut r = Ok(());
        for v in self.vmas.iter() {
            let shared = v.flags.contains(VM_SHARED);
            let mut c = Cursor::new(&mut pt, self.pgd.root(), v.start..v.end)?;
            r = c.copy_to(
                child.pgd.root(),
                v.end.as_u64() - v.start.as_u64(),
                &mut |_, p| {
                    if !p.is_present() {
                        // A swap entry: the child names the same slot (`swap_duplicate`).
                        let e = pte_to_swp_entry(*p)?;
                        if dup_failed || super::swapfile::swap_duplicate(e).is_err() {
                            dup_failed = true;
                            return None;
                        }
                        swapents += 1;
                        return Some(*p);
                    }
                    if !shared && p.is_writable() {
                        p.0 &= !pte::RW;
                    }
                    if p.is_huge() {
                        // A hugetlb page (THPs were split before the copy): shared, with
                        // a reference and a mapping more, and not in RSS.
                        let head = p.huge_base().pfn();
                        page_alloc::with(|a| {
                            let pg = a.page_mut(head);
                            pg.refcount += 1;
                            pg.mapcount += 1;
                        });
                        return Some(*p);
                    }
                    let pfn = p.phys().pfn();
                    if !is_shared_page(pfn) {
                        // One look under the allocator's lock: the reference, the
                        // mapcount and the flags for the child's RSS counter.
                        let flags = page_alloc::with(|a| {
                            let pg = a.page_mut(pfn);
                            pg.refcount += 1;
                            pg.mapcount += 1;
                            pg.flags
                        });
                        stat.inc_flags(flags);
                    }
                    Some(*p)
                },
            );
            if r.is_err() {
                break;
            }
        }
        child.rss_stat = stat;
        child.rss = stat.total();
        child.swapents = swapents;
        child.account_tables(&pt);
        if dup_failed && r.is_ok() {
            r = Err(PtError::NoMemory);
        }
        r
    }
}

/// Unmap the pages at index `first` and beyond of page cache object `id` from every
/// address space that maps it (`unmap_mapping_range`, for truncate): the next access
/// faults, and past the end of the file that is SIGBUS. Walks VMAs, not pages; the
/// private copies a MAP_PRIVATE mapping made stay (Linux keeps them too, `even_cows=0`).
pub fn unmap_mapping_range(id: u64, first: u64) {
    for t in crate::proc::sched::all() {
        let mut g = t.mm().lock();
        let Some(mm) = g.as_mut() else { continue };
        let ranges: alloc::vec::Vec<(u64, u64)> = mm
            .vmas
            .iter()
            .filter(|v| matches!(v.backing, Backing::File(f) if f.id == id))
            .filter_map(|v| {
                let pages = (v.end.as_u64() - v.start.as_u64()) / PAGE_SIZE;
                let last = v.pgoff + pages;
                if last <= first {
                    return None;
                }
                let from = first.max(v.pgoff);
                Some((
                    v.start.as_u64() + (from - v.pgoff) * PAGE_SIZE,
                    v.end.as_u64(),
                ))
            })
            .collect();
        for (s, e) in ranges {
            mm.zap_file_range(s, e, id);
        }
    }
}
