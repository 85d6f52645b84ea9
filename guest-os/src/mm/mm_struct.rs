//! A process address space (`struct mm_struct`): its page tables, its VMAs
//! ([`mm_core::vma::VmaTree`]) and layout, and the page-fault handler that fills it in on
//! demand (`handle_mm_fault`):
//!
//! - anonymous memory: a read maps the shared zero page read-only, a write a fresh zeroed
//!   page; a write to the zero page (or to a page shared after fork) copies it (COW);
//! - private file mappings: the file's page is copied into a new page on first touch (there
//!   is no page cache yet, so every mapping gets its own copy);
//! - the stack grows down on a fault below it, within the stack limit and the guard gap;
//! - anything else is a SIGSEGV for the caller to deliver (SEGV_MAPERR: nothing mapped,
//!   SEGV_ACCERR: mapped without that permission).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::gfp::Gfp;
use mm_core::page::Pages;
use mm_core::vma::{
    Backing, FileRef, MmapLayout, VmFlags, Vma, VmaTree, VM_EXEC, VM_GROWSDOWN, VM_MAYEXEC,
    VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE,
};

use super::addr::{Pfn, PhysAddr, VirtAddr, PAGE_SIZE};
use super::page_alloc::{self, page_address, BuddyTables};
use super::pgtable::{self, pte, PageTable};
use super::uaccess::TASK_SIZE;
use crate::syscall::errno::{Errno, EFAULT, ENOMEM};

/// The stack limit (`RLIMIT_STACK`, Linux's default 8 MiB).
pub const STACK_RLIMIT: u64 = 8 << 20;
/// PML4 slots of user space (the lower half).
const USER_SLOTS: core::ops::Range<usize> = 0..256;
/// PML4 slots of the kernel half, shared by every address space.
const KERNEL_SLOTS: core::ops::Range<usize> = 256..512;

/// `si_code` values of SIGSEGV.
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;

/// Protection bits of a new mapping.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    fn vm_flags(self) -> VmFlags {
        let mut f = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
        if self.read {
            f |= VM_READ;
        }
        if self.write {
            f |= VM_WRITE;
        }
        if self.exec {
            f |= VM_EXEC;
        }
        f
    }
}

/// The zero page: mapped read-only wherever anonymous memory is read before written.
static ZERO_PFN: AtomicU64 = AtomicU64::new(0);

/// Pages every address space maps without owning them: the zero page, the vDSO and vvar.
pub(crate) fn is_shared_page(pfn: Pfn) -> bool {
    pfn.as_u64() == ZERO_PFN.load(Ordering::Relaxed) || crate::proc::vdso::is_vdso_page(pfn)
}

fn zero_pfn() -> Option<Pfn> {
    match ZERO_PFN.load(Ordering::Relaxed) {
        0 => {
            let p = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0)?;
            ZERO_PFN.store(p.as_u64(), Ordering::Relaxed);
            Some(p)
        }
        p => Some(Pfn(p)),
    }
}

/// What a page fault did, for the fault counters and traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A fresh zeroed page.
    DemandZero,
    /// The shared zero page, read-only.
    ZeroPage,
    /// A page copied from a file.
    File,
    /// A copy of a shared page on write.
    CowCopy,
    /// The last user of a page wrote it: made writable in place.
    CowReuse,
    /// The PTE was already fine (another path filled it).
    Spurious,
    /// A page of a special mapping ([vdso], [vvar]).
    Special,
}

impl FaultKind {
    /// The outcome code of the trace annotation (`crate::trace::outcome`).
    pub fn trace_outcome(self) -> u64 {
        use crate::trace::outcome as o;
        match self {
            FaultKind::DemandZero => o::DEMAND_ZERO,
            FaultKind::ZeroPage => o::ZERO_PAGE,
            FaultKind::File | FaultKind::Special => o::FILE_PAGE,
            FaultKind::CowCopy => o::COW_COPY,
            FaultKind::CowReuse => o::COW_REUSE,
            FaultKind::Spurious => o::SPURIOUS,
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

/// An address space.
pub struct Mm {
    pub pgd: PageTable,
    pub vmas: VmaTree,
    pub layout: MmapLayout,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    /// Resident pages (anonymous and file copies).
    pub rss: u64,
    /// The anon_vma of this address space ([`super::rmap`]).
    pub anon_id: u64,
}

fn page_mapcount_add(pfn: Pfn, d: i32) {
    page_alloc::with(|a| a.page_mut(pfn).mapcount += d);
}

impl Mm {
    /// An empty address space sharing the kernel half of the master page table.
    pub fn new() -> Option<Mm> {
        let root = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0)?;
        let mut pgd = PageTable::from_root(root.phys());
        pgd.copy_pml4_entries(&pgtable::kernel(), KERNEL_SLOTS);
        Some(Mm {
            pgd,
            vmas: VmaTree::new(),
            layout: MmapLayout::new(TASK_SIZE, STACK_RLIMIT, None),
            start_brk: 0,
            brk: 0,
            start_stack: 0,
            rss: 0,
            anon_id: super::rmap::new_id(),
        })
    }

    /// Map `[start, end)` of file `file_id` (named `name`) from byte `offset`, privately.
    pub fn map_file(
        &mut self,
        start: u64,
        end: u64,
        prot: Prot,
        file_id: u64,
        offset: u64,
        name: &str,
    ) -> Result<(), Errno> {
        let f = FileRef::new(file_id, 0, 1, file_id, name);
        let v = Vma::file(
            VirtAddr::new(start),
            VirtAddr::new(end),
            prot.vm_flags(),
            f,
            offset / PAGE_SIZE,
        );
        self.vmas
            .insert_merged(v)
            .map(|_| ())
            .map_err(|e| Errno(e.errno()))
    }

    /// Map anonymous memory `[start, end)`; `growsdown` for the stack.
    pub fn map_anon(
        &mut self,
        start: u64,
        end: u64,
        prot: Prot,
        growsdown: bool,
    ) -> Result<(), Errno> {
        let mut flags = prot.vm_flags();
        if growsdown {
            flags |= VM_GROWSDOWN;
        }
        let v = Vma::anon(VirtAddr::new(start), VirtAddr::new(end), flags);
        self.vmas
            .insert_merged(v)
            .map(|_| ())
            .map_err(|e| Errno(e.errno()))
    }

    /// Map `[vvar]` and `[vdso]` (the vvar page, then the image's pages right above it,
    /// top-down like any mmap) and return the vDSO's address for AT_SYSINFO_EHDR.
    pub fn map_vdso(&mut self) -> Result<u64, Errno> {
        use crate::proc::vdso;
        let layout = self.layout;
        let vvar_len = vdso::VVAR_PAGES as u64 * PAGE_SIZE;
        let vdso_len = vdso::vdso_pages() as u64 * PAGE_SIZE;
        let start = self
            .vmas
            .get_unmapped_area(
                vvar_len + vdso_len,
                VirtAddr::new(0),
                mm_core::vma::Placement::Anywhere,
                &layout,
            )
            .map_err(|e| Errno(e.errno()))?;
        let vvar = start.as_u64();
        let vdso = vvar + vvar_len;
        let special = |s: u64, len: u64, flags: VmFlags, name: &'static str| {
            Vma::special(VirtAddr::new(s), VirtAddr::new(s + len), flags, name)
        };
        self.vmas
            .insert(special(vvar, vvar_len, VM_READ | VM_MAYREAD, "[vvar]"))
            .map_err(|e| Errno(e.errno()))?;
        self.vmas
            .insert(special(
                vdso,
                vdso_len,
                VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYEXEC,
                "[vdso]",
            ))
            .map_err(|e| Errno(e.errno()))?;
        Ok(vdso)
    }

    pub fn set_brk_start(&mut self, brk: u64) {
        self.start_brk = brk;
        self.brk = brk;
    }

    pub fn set_stack_start(&mut self, sp: u64) {
        self.start_stack = sp;
    }

    /// Load this address space (CR3).
    pub fn activate(&self) {
        // SAFETY: the kernel half is shared with the master table, so the running code and
        // data stay mapped.
        unsafe {
            asm!("mov cr3, {}", in(reg) self.pgd.root().as_u64(), options(nostack, preserves_flags))
        };
    }

    /// Write `bytes` at user address `va` of this (possibly not current) address space,
    /// faulting pages in as needed (exec's stack and bss setup).
    pub fn write_user(&mut self, va: u64, bytes: &[u8]) -> Result<(), Errno> {
        let mut done = 0;
        while done < bytes.len() {
            let addr = va + done as u64;
            let in_page = (PAGE_SIZE - addr % PAGE_SIZE) as usize;
            let n = in_page.min(bytes.len() - done);
            self.handle_fault(addr, true, false, true)
                .map_err(|_| EFAULT)?;
            let pte = self.pgd.pte_ptr(VirtAddr::new(addr)).ok_or(EFAULT)?;
            // SAFETY: the fault handler just made the page present and writable.
            let pa = unsafe { pte.read_volatile() } & pte::ADDR_MASK;
            let dst =
                (page_address(PhysAddr::new(pa).pfn()).as_u64() + addr % PAGE_SIZE) as *mut u8;
            // SAFETY: `dst..dst+n` lies inside that page, reached through the direct map.
            unsafe { core::ptr::copy_nonoverlapping(bytes[done..].as_ptr(), dst, n) };
            done += n;
        }
        Ok(())
    }

    /// Resolve a fault at `addr` (`write`: a write access, `exec`: an instruction fetch;
    /// `force`: from the kernel on the process's behalf, e.g. exec, ignoring VMA write
    /// permission). `Err(si_code)` means SIGSEGV.
    pub fn handle_fault(
        &mut self,
        addr: u64,
        write: bool,
        exec: bool,
        force: bool,
    ) -> Result<Fault, i32> {
        if addr >= TASK_SIZE {
            return Err(SEGV_MAPERR);
        }
        let mut stack_grew = false;
        let vma = match self.vmas.find_vma(VirtAddr::new(addr)) {
            Some(v) if v.start.as_u64() <= addr => *v,
            Some(v) if v.flags.contains(VM_GROWSDOWN) => {
                self.vmas
                    .expand_stack(VirtAddr::new(addr), &self.layout, STACK_RLIMIT)
                    .map_err(|_| SEGV_MAPERR)?;
                stack_grew = true;
                *self.vmas.find_vma(VirtAddr::new(addr)).ok_or(SEGV_MAPERR)?
            }
            _ => return Err(SEGV_MAPERR),
        };
        let kind = self.fault_in_vma(addr, &vma, write, exec, force)?;
        Ok(Fault { kind, stack_grew })
    }

    /// The part of [`Self::handle_fault`] after the VMA is known: permission checks, then
    /// fill or copy-on-write.
    fn fault_in_vma(
        &mut self,
        addr: u64,
        vma: &Vma,
        write: bool,
        exec: bool,
        force: bool,
    ) -> Result<FaultKind, i32> {
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
            return Err(SEGV_ACCERR);
        }
        let writable = f.contains(VM_WRITE) || force;
        let leaf = pte::PRESENT | pte::USER | if f.contains(VM_EXEC) { 0 } else { pte::NX };
        let old = self.pgd.pte_ptr(va).map(|p| {
            // SAFETY: a live PTE of this address space.
            unsafe { p.read_volatile() }
        });
        match old {
            Some(e) if e & pte::PRESENT != 0 => {
                if !write || e & pte::RW != 0 {
                    return Ok(FaultKind::Spurious);
                }
                self.cow(va, e, leaf)
            }
            _ => self.fill(va, vma, write, writable, leaf),
        }
    }

    /// First touch of a page: fill the PTE.
    fn fill(
        &mut self,
        va: VirtAddr,
        vma: &Vma,
        write: bool,
        writable: bool,
        leaf: u64,
    ) -> Result<FaultKind, i32> {
        let rw = if writable { pte::RW } else { 0 };
        if let Backing::Special(name) = vma.backing {
            use crate::proc::vdso;
            // The page within the mapping (pgoff follows a split, as Linux's vmf->pgoff).
            let page = (vma.pgoff + (va.as_u64() - vma.start.as_u64()) / PAGE_SIZE) as usize;
            let pfn = if name == "[vdso]" {
                vdso::vdso_pfn(page)
            } else {
                vdso::vvar_pfn().filter(|_| page == 0)
            }
            .ok_or(SEGV_MAPERR)?;
            // Read-only to user space, whatever the VMA says.
            return self
                .pgd
                .map_user(va, pfn.phys(), leaf, &mut BuddyTables)
                .map(|_| FaultKind::Special)
                .map_err(|_| SEGV_MAPERR);
        }
        let (pfn, kind, flags) = match vma.backing {
            Backing::File(f) => {
                let pfn = page_alloc::alloc_pages(Gfp::HIGHUSER_MOVABLE | Gfp::ZERO, 0)
                    .ok_or(SEGV_MAPERR)?;
                let off = (vma.pgoff + (va.as_u64() - vma.start.as_u64()) / PAGE_SIZE) * PAGE_SIZE;
                if let Ok(data) = crate::fs::file_data(f.id) {
                    if (off as usize) < data.len() {
                        let n = (data.len() - off as usize).min(PAGE_SIZE as usize);
                        // SAFETY: the new page is ours; `n` bytes fit in it.
                        unsafe {
                            core::ptr::copy_nonoverlapping(
                                data[off as usize..].as_ptr(),
                                page_address(pfn).as_mut_ptr::<u8>(),
                                n,
                            )
                        };
                    }
                }
                (pfn, FaultKind::File, leaf | rw)
            }
            _ if !write && !vma.flags.contains(VM_SHARED) => {
                let z = zero_pfn().ok_or(SEGV_MAPERR)?;
                (z, FaultKind::ZeroPage, leaf)
            }
            _ => {
                let pfn = page_alloc::alloc_pages(Gfp::HIGHUSER_MOVABLE | Gfp::ZERO, 0)
                    .ok_or(SEGV_MAPERR)?;
                (pfn, FaultKind::DemandZero, leaf | rw)
            }
        };
        if self
            .pgd
            .map_user(va, pfn.phys(), flags, &mut BuddyTables)
            .is_err()
        {
            if kind != FaultKind::ZeroPage {
                page_alloc::free_pages(pfn, 0);
            }
            return Err(SEGV_MAPERR);
        }
        if kind != FaultKind::ZeroPage {
            page_mapcount_add(pfn, 1);
            super::rmap::add_new_anon(pfn, self.anon_id, va.as_u64());
            self.rss += 1;
        }
        Ok(kind)
    }

    /// A write to a present read-only page of a writable mapping.
    fn cow(&mut self, va: VirtAddr, old: u64, leaf: u64) -> Result<FaultKind, i32> {
        let old_pfn = PhysAddr::new(old & pte::ADDR_MASK).pfn();
        let is_zero = old_pfn.as_u64() == ZERO_PFN.load(Ordering::Relaxed);
        let shared = is_zero
            || page_alloc::with(|a| a.page(old_pfn).mapcount > 0 || a.page(old_pfn).refcount > 1);
        let Some(p) = self.pgd.pte_ptr(va) else {
            return Err(SEGV_MAPERR);
        };
        if !shared {
            // SAFETY: a live PTE; INVLPG drops the stale read-only translation.
            unsafe {
                p.write_volatile(old | pte::RW);
                asm!("invlpg [{}]", in(reg) va.as_u64(), options(nostack, preserves_flags));
            }
            return Ok(FaultKind::CowReuse);
        }
        let new = page_alloc::alloc_pages(Gfp::HIGHUSER_MOVABLE, 0).ok_or(SEGV_MAPERR)?;
        // SAFETY: copying one page between two frames through the direct map.
        unsafe {
            core::ptr::copy_nonoverlapping(
                page_address(old_pfn).as_ptr::<u8>(),
                page_address(new).as_mut_ptr::<u8>(),
                PAGE_SIZE as usize,
            );
            p.write_volatile(new.phys().as_u64() | leaf | pte::RW);
            asm!("invlpg [{}]", in(reg) va.as_u64(), options(nostack, preserves_flags));
        }
        page_mapcount_add(new, 1);
        super::rmap::add_new_anon(new, self.anon_id, va.as_u64());
        if is_zero {
            self.rss += 1;
        } else {
            page_mapcount_add(old_pfn, -1);
            page_alloc::free_pages(old_pfn, 0);
        }
        Ok(FaultKind::CowCopy)
    }

    /// Make present PTEs of `[start, end)` follow their VMA's new protection (mprotect):
    /// write permission is taken away at once and given back lazily by the fault path;
    /// PROT_NONE keeps the page but clears USER, so user accesses fault and the data is
    /// still there when access returns.
    pub fn change_protection(&mut self, start: u64, end: u64) {
        let mut va = start;
        while va < end {
            let flags = self
                .vmas
                .find_vma(VirtAddr::new(va))
                .filter(|v| v.start.as_u64() <= va)
                .map(|v| v.flags);
            if let (Some(f), Some(p)) = (flags, self.pgd.pte_ptr(VirtAddr::new(va))) {
                // SAFETY: a live PTE of this address space.
                let e = unsafe { p.read_volatile() };
                if e & pte::PRESENT != 0 {
                    let mut n = e & (pte::ADDR_MASK | pte::PRESENT | pte::ACCESSED | pte::DIRTY);
                    if f.intersects(VM_READ | VM_WRITE | VM_EXEC) {
                        n |= pte::USER;
                    }
                    if f.contains(VM_WRITE) {
                        n |= e & pte::RW;
                    }
                    if !f.contains(VM_EXEC) {
                        n |= pte::NX;
                    }
                    // SAFETY: updating the PTE and flushing its translation.
                    unsafe {
                        p.write_volatile(n);
                        asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags));
                    }
                }
            }
            va += PAGE_SIZE;
        }
    }

    /// Move the PTEs of `[from, from+len)` to `to` (mremap): the pages keep their contents
    /// and their single mapping; missing tables at the destination are allocated.
    pub fn move_ptes(&mut self, from: u64, to: u64, len: u64) {
        let mut off = 0;
        while off < len {
            let src = VirtAddr::new(from + off);
            if let Some(p) = self.pgd.pte_ptr(src) {
                // SAFETY: a live PTE of this address space.
                let e = unsafe { p.read_volatile() };
                if e & pte::PRESENT != 0 {
                    // SAFETY: clearing the old entry and flushing it.
                    unsafe {
                        p.write_volatile(0);
                        asm!("invlpg [{}]", in(reg) src.as_u64(), options(nostack, preserves_flags));
                    }
                    let pa = PhysAddr::new(e & pte::ADDR_MASK);
                    if !is_shared_page(pa.pfn()) {
                        super::rmap::move_to(pa.pfn(), to + off);
                    }
                    if self
                        .pgd
                        .map_user(
                            VirtAddr::new(to + off),
                            pa,
                            e & !pte::ADDR_MASK,
                            &mut BuddyTables,
                        )
                        .is_err()
                    {
                        // No memory for a table: the page is dropped (it reads back as zero).
                        let pfn = pa.pfn();
                        if !is_shared_page(pfn) {
                            page_mapcount_add(pfn, -1);
                            page_alloc::free_pages(pfn, 0);
                            self.rss = self.rss.saturating_sub(1);
                        }
                    }
                }
            }
            off += PAGE_SIZE;
        }
    }

    /// A copy of this address space for a forked child (`dup_mmap`): the same VMAs, and
    /// every present page shared: private writable pages become read-only in both, so the
    /// first write on either side copies (COW); shared mappings stay writable. Pages gain a
    /// reference and a mapping each. The caller reloads CR3 afterwards (this is the current
    /// address space, whose PTEs lost write permission).
    pub fn fork(&mut self) -> Option<Mm> {
        let mut child = Mm::new()?;
        child.vmas = self.vmas.clone();
        child.layout = self.layout;
        child.start_brk = self.start_brk;
        child.brk = self.brk;
        child.start_stack = self.start_stack;
        child.anon_id = self.anon_id;
        let zero = ZERO_PFN.load(Ordering::Relaxed);
        let vmas: alloc::vec::Vec<Vma> = self.vmas.iter().copied().collect();
        for v in vmas {
            let shared = v.flags.contains(VM_SHARED);
            let mut va = v.start.as_u64();
            while va < v.end.as_u64() {
                if let Some(p) = self.pgd.pte_ptr(VirtAddr::new(va)) {
                    // SAFETY: a live PTE of this address space.
                    let mut e = unsafe { p.read_volatile() };
                    if e & pte::PRESENT != 0 {
                        if !shared && e & pte::RW != 0 {
                            e &= !pte::RW;
                            // SAFETY: write-protecting the parent's entry (flushed by the caller).
                            unsafe { p.write_volatile(e) };
                        }
                        let pa = PhysAddr::new(e & pte::ADDR_MASK);
                        if child
                            .pgd
                            .map_user(VirtAddr::new(va), pa, e & !pte::ADDR_MASK, &mut BuddyTables)
                            .is_err()
                        {
                            child.destroy();
                            return None;
                        }
                        if pa.pfn().as_u64() != zero && !is_shared_page(pa.pfn()) {
                            page_alloc::with(|a| {
                                a.get_page(pa.pfn());
                                a.page_mut(pa.pfn()).mapcount += 1;
                            });
                            child.rss += 1;
                        }
                    }
                }
                va += PAGE_SIZE;
            }
        }
        Some(child)
    }

    /// What `/proc/PID/smaps` reports for one VMA, in pages: (rss, pss in 1/64 pages,
    /// shared clean, shared dirty, private clean, private dirty, referenced, anonymous).
    pub fn smaps_counts(&self, v: &Vma) -> [u64; 8] {
        let mut c = [0u64; 8];
        let mut va = v.start.as_u64();
        while va < v.end.as_u64() {
            if let Some(p) = self.pgd.pte_ptr(VirtAddr::new(va)) {
                // SAFETY: a live PTE.
                let e = unsafe { p.read_volatile() };
                if e & pte::PRESENT != 0 {
                    let pfn = PhysAddr::new(e & pte::ADDR_MASK).pfn();
                    // Mappers: the zero page and the vDSO count as shared by many.
                    let mappers = if is_shared_page(pfn) {
                        2
                    } else {
                        page_alloc::with(|a| a.page(pfn).mapcount.max(0) as u64 + 1)
                    };
                    let dirty = e & pte::DIRTY != 0;
                    c[0] += 1;
                    c[1] += 64 / mappers;
                    let slot = match (mappers > 1, dirty) {
                        (true, false) => 2,
                        (true, true) => 3,
                        (false, false) => 4,
                        (false, true) => 5,
                    };
                    c[slot] += 1;
                    if e & pte::ACCESSED != 0 {
                        c[6] += 1;
                    }
                    // Pages of anonymous mappings. (File pages are per-mapping copies here,
                    // standing in for the page cache, so they count as file pages.)
                    if !is_shared_page(pfn)
                        && v.backing == Backing::Anon
                        && !v.flags.contains(VM_SHARED)
                    {
                        c[7] += 1;
                    }
                }
            }
            va += PAGE_SIZE;
        }
        c
    }

    /// Every present page this address space owns a share of (not the zero page or the
    /// vDSO), with its address: for the rmap check.
    pub fn private_pages(&self) -> alloc::vec::Vec<(Pfn, u64)> {
        let mut out = alloc::vec::Vec::new();
        for v in self.vmas.iter() {
            let mut va = v.start.as_u64();
            while va < v.end.as_u64() {
                if let Some(p) = self.pgd.pte_ptr(VirtAddr::new(va)) {
                    // SAFETY: a live PTE.
                    let e = unsafe { p.read_volatile() };
                    let pfn = PhysAddr::new(e & pte::ADDR_MASK).pfn();
                    if e & pte::PRESENT != 0 && !is_shared_page(pfn) {
                        out.push((pfn, va));
                    }
                }
                va += PAGE_SIZE;
            }
        }
        out
    }

    /// Whether the page at `va` is present (mincore).
    pub fn is_resident(&self, va: u64) -> bool {
        self.pgd.pte_ptr(VirtAddr::new(va)).is_some_and(|p| {
            // SAFETY: a live PTE.
            let e = unsafe { p.read_volatile() };
            e & pte::PRESENT != 0
        })
    }

    /// Unmap the pages of `[start, end)` and drop their references.
    pub fn zap_range(&mut self, start: u64, end: u64) {
        let zero = ZERO_PFN.load(Ordering::Relaxed);
        let mut va = start;
        while va < end {
            if let Some(p) = self.pgd.pte_ptr(VirtAddr::new(va)) {
                // SAFETY: a live PTE of this address space.
                let e = unsafe { p.read_volatile() };
                if e & pte::PRESENT != 0 {
                    // SAFETY: clearing the PTE and its TLB entry.
                    unsafe {
                        p.write_volatile(0);
                        asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags));
                    }
                    let pfn = PhysAddr::new(e & pte::ADDR_MASK).pfn();
                    if pfn.as_u64() != zero && !is_shared_page(pfn) {
                        page_mapcount_add(pfn, -1);
                        page_alloc::free_pages(pfn, 0);
                        self.rss = self.rss.saturating_sub(1);
                    }
                }
            }
            va += PAGE_SIZE;
        }
    }

    /// Tear the address space down: every page, every page table, the PML4. The caller must
    /// have switched to another address space.
    pub fn destroy(mut self) {
        for v in self.vmas.unmap_all() {
            self.zap_range(v.start.as_u64(), v.end.as_u64());
        }
        self.pgd
            .free_tables(USER_SLOTS, &mut |pa| page_alloc::free_pages(pa.pfn(), 0));
        page_alloc::free_pages(self.pgd.root().pfn(), 0);
    }
}

/// Errno for a failed mapping.
pub fn nomem() -> Errno {
    ENOMEM
}
