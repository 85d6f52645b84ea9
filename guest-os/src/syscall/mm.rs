//! Memory system calls: brk, mmap, munmap, mprotect, madvise, mincore. The VMA bookkeeping
//! (splits, merges, placement, brk rules) is `mm_core::vma`; here the page tables follow.

use mm_core::vma::{
    Backing, BrkOutcome, BrkRequest, FileRef, Placement, VmFlags, Vma, VM_BRK_FLAGS, VM_DONTEXPAND,
    VM_EXEC, VM_GROWSDOWN, VM_HUGEPAGE, VM_HUGETLB, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE,
    VM_MAYWRITE, VM_NOHUGEPAGE, VM_READ, VM_SHARED, VM_WRITE,
};

use super::errno::{Errno, SysResult, EACCES, EFAULT, EINVAL, ENOMEM, ESRCH};
use super::Args;
use crate::mm::addr::{VirtAddr, PAGE_SIZE};
use crate::mm::mm_struct::{Mm, ZAP_BATCH};
use crate::mm::mmap::vma_prealloc;
use crate::mm::shmem;
use crate::mm::uaccess::{copy_to_user, TASK_SIZE};
use crate::proc;

fn with_mm<R>(f: impl FnOnce(&mut Mm) -> Result<R, Errno>) -> Result<R, Errno> {
    let t = proc::current().ok_or(ESRCH)?;
    let mut g = t.mm().lock();
    let mm = g.as_mut().ok_or(ESRCH)?;
    f(mm)
}

fn err(e: mm_core::vma::VmaError) -> Errno {
    Errno(e.errno())
}

/// RLIMIT_AS (`may_expand_vm`): whether the address space may grow by `pages`.
fn may_expand_vm(mm: &Mm, pages: u64) -> bool {
    let limit = crate::proc::rlimit::current(crate::proc::rlimit::RLIMIT_AS);
    mm.vmas
        .stat()
        .total_vm
        .saturating_add(pages)
        .saturating_mul(PAGE_SIZE)
        <= limit
}

/// `brk(addr)`: returns the new break, or the old one if the change is refused.
pub fn sys_brk(a: &Args) -> SysResult {
    with_mm(|mm| {
        if vma_prealloc().is_err() {
            return Ok(mm.brk);
        }
        let page_up = |v: u64| v.checked_next_multiple_of(PAGE_SIZE).unwrap_or(u64::MAX);
        let grow = page_up(a.0[0]).saturating_sub(page_up(mm.brk));
        if a.0[0] > mm.brk && !may_expand_vm(mm, grow / PAGE_SIZE) {
            return Ok(mm.brk);
        }
        let req = BrkRequest {
            brk: a.0[0],
            cur_brk: mm.brk,
            start_brk: mm.start_brk,
            min_brk: mm.start_brk,
            flags: VM_BRK_FLAGS,
        };
        let layout = mm.layout;
        match mm.vmas.brk(req, &layout) {
            Ok(outcome) => {
                if let BrkOutcome::Shrunk(pieces) = outcome {
                    mm.unmap_vmas(&pieces);
                }
                mm.brk = a.0[0];
                Ok(mm.brk)
            }
            Err(_) => Ok(mm.brk),
        }
    })
}

const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_TYPE: u64 = 0x0f;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_GROWSDOWN: u64 = 0x100;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_POPULATE: u64 = 0x8000;
const MAP_HUGETLB: u64 = 0x4_0000;
/// The huge page size of MAP_HUGETLB, as log2 in bits 26..32 (0: the default, 2 MiB).
const MAP_HUGE_SHIFT: u64 = 26;
const MAP_HUGE_MASK: u64 = 0x3f;
/// log2 of the one huge page size there is (MAP_HUGE_2MB).
const HUGE_2MB_LOG: u64 = 21;
const HPAGE_SIZE: u64 = crate::mm::hugetlb::HPAGE_SIZE;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;

fn prot_flags(prot: u64) -> VmFlags {
    let mut f = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    if prot & PROT_READ != 0 {
        f |= VM_READ;
    }
    if prot & PROT_WRITE != 0 {
        f |= VM_WRITE;
    }
    if prot & PROT_EXEC != 0 {
        f |= VM_EXEC;
    }
    f
}

/// `mmap(addr, len, prot, flags, fd, offset)`.
pub fn sys_mmap(a: &Args) -> SysResult {
    let [addr, len, prot, flags, fd, off] = a.0;
    if len == 0 || off % PAGE_SIZE != 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(EINVAL);
    }
    let shared = match flags & MAP_TYPE {
        MAP_SHARED | MAP_SHARED_VALIDATE => true,
        MAP_PRIVATE => false,
        _ => return Err(EINVAL),
    };
    let mut vflags = prot_flags(prot);
    if shared {
        vflags |= VM_SHARED | VM_MAYSHARE;
    }
    // MAP_HUGETLB (`ksys_mmap_pgoff`): anonymous memory only (there is no hugetlbfs), the
    // 2 MiB size only, the length rounded up to it, a fixed address aligned to it.
    let hugetlb = flags & MAP_HUGETLB != 0;
    let len = if hugetlb {
        let log = (flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
        if flags & MAP_ANONYMOUS == 0
            || (log != 0 && log != HUGE_2MB_LOG)
            || (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 && !addr.is_multiple_of(HPAGE_SIZE))
        {
            return Err(EINVAL);
        }
        vflags |= VM_HUGETLB | VM_DONTEXPAND;
        len.checked_next_multiple_of(HPAGE_SIZE).ok_or(ENOMEM)?
    } else {
        len
    };
    if flags & MAP_GROWSDOWN != 0 {
        vflags |= VM_GROWSDOWN;
    }
    let file = if flags & MAP_ANONYMOUS != 0 {
        None
    } else {
        let f = mmap_file(fd)?;
        // do_mmap: the open mode bounds what the mapping may ever do.
        if shared {
            if prot & PROT_WRITE != 0 && !f.writable {
                return Err(EACCES);
            }
            if !f.writable {
                vflags = VmFlags(vflags.bits() & !(VM_MAYWRITE | VM_SHARED).bits());
            }
        }
        if !f.readable {
            return Err(EACCES);
        }
        Some(f.target)
    };
    let placement = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace
    } else if flags & MAP_FIXED != 0 {
        Placement::Fixed
    } else {
        Placement::Anywhere
    };
    let start = with_mm(|mm| {
        vma_prealloc()?;
        // Overlap with a MAP_FIXED range is not subtracted.
        if !may_expand_vm(mm, len.div_ceil(PAGE_SIZE)) {
            return Err(ENOMEM);
        }
        let layout = mm.layout;
        let start = if hugetlb && placement == Placement::Anywhere {
            // A 2 MiB-aligned range: a gap 2 MiB longer, aligned inside
            // (`hugetlb_get_unmapped_area`).
            let gap = mm
                .vmas
                .get_unmapped_area(
                    len.checked_add(HPAGE_SIZE).ok_or(ENOMEM)?,
                    VirtAddr::new(0),
                    placement,
                    &layout,
                )
                .map_err(err)?;
            VirtAddr::new(gap.as_u64().next_multiple_of(HPAGE_SIZE))
        } else {
            mm.vmas
                .get_unmapped_area(len, VirtAddr::new(addr), placement, &layout)
                .map_err(err)?
        };
        let end = VirtAddr::new(start.as_u64() + len.next_multiple_of(PAGE_SIZE));
        // A fixed mapping may not cut a hugetlb mapping inside a huge page.
        check_hugetlb_edges(mm, start.as_u64(), end.as_u64())?;
        // Reserve the pool pages at mmap (`hugetlb_reserve_pages`): ENOMEM when the pool
        // cannot back the mapping.
        let resv = if hugetlb && flags & MAP_NORESERVE == 0 {
            len / HPAGE_SIZE
        } else {
            0
        };
        if !crate::mm::hugetlb::reserve(resv) {
            return Err(ENOMEM);
        }
        let vma = match &file {
            Some(t) => {
                let name = core::str::from_utf8(&t.name).unwrap_or("?");
                Vma::file(
                    start,
                    end,
                    vflags,
                    FileRef::new(t.id, t.dev_major, t.dev_minor, t.ino, name),
                    off / PAGE_SIZE,
                )
            }
            // Hugetlb memory, private or shared, is pool pages mapped by PMDs; fork shares
            // them (there is no hugetlbfs object behind a shared mapping).
            None if hugetlb => Vma::anon(start, end, vflags),
            // Shared anonymous memory belongs to a shmem object, from page 0.
            None if shared => {
                let mut v = Vma::anon(start, end, vflags);
                v.backing = shmem::create(end.as_u64() - start.as_u64())?;
                v.pgoff = 0;
                v
            }
            None => Vma::anon(start, end, vflags),
        };
        let shmem_vma = [vma];
        let first = file.as_ref().is_some_and(|t| !mm.maps_object(t.id));
        let old = match mm.vmas.map_fixed(vma) {
            Ok(old) => old,
            Err(e) => {
                // A new shared anonymous object is held by nobody.
                if file.is_none() && !hugetlb {
                    shmem::put_removed(&mm.vmas, &shmem_vma);
                }
                crate::mm::hugetlb::unreserve(resv);
                return Err(err(e));
            }
        };
        release_hugetlb_resv(mm, &old);
        mm.hugetlb_resv += resv;
        if first {
            // This address space now holds the file's page cache object once.
            if let Some(t) = &file {
                shmem::hold(t.id);
            }
        }
        mm.unmap_vmas(&old);
        if flags & MAP_POPULATE != 0 {
            // Pages are faulted in one by one (as GUP does). Any failure ends the
            // population early, which mmap does not report: running out of memory, or
            // a mapping no access may reach (PROT_NONE: Linux's populate_vma_page_range
            // skips it), so a huge PROT_NONE MAP_POPULATE does not loop over its range.
            let write = prot & PROT_WRITE != 0 && !shared;
            let mut va = start.as_u64();
            while va < end.as_u64() {
                if mm.handle_fault(va, write, false, false).is_err() {
                    break;
                }
                va += PAGE_SIZE;
            }
        }
        Ok(start.as_u64())
    })?;
    Ok(start)
}

fn check_range(addr: u64, len: u64) -> Result<(), Errno> {
    if !addr.is_multiple_of(PAGE_SIZE) || len == 0 || addr.checked_add(len).is_none() {
        return Err(EINVAL);
    }
    Ok(())
}

/// The reservations of the hugetlb pages that `removed` (VMAs just taken out of the
/// tree, their pages still mapped) never faulted go back to the pool
/// (`hugetlb_vm_op_close`).
fn release_hugetlb_resv(mm: &mut Mm, removed: &[Vma]) {
    for v in removed.iter().filter(|v| v.flags.contains(VM_HUGETLB)) {
        let (s, e) = (v.start.as_u64(), v.end.as_u64());
        let unfaulted = ((e - s) / HPAGE_SIZE).saturating_sub(mm.hugetlb_pmds(s, e));
        let give = unfaulted.min(mm.hugetlb_resv);
        mm.hugetlb_resv -= give;
        crate::mm::hugetlb::unreserve(give);
    }
}

/// A hugetlb VMA can only be split at a 2 MiB boundary (`hugetlb_vm_op_split`): EINVAL
/// if `start` or `end` falls inside one elsewhere.
fn check_hugetlb_edges(mm: &Mm, start: u64, end: u64) -> Result<(), Errno> {
    for v in mm
        .vmas
        .iter()
        .filter(|v| v.flags.contains(VM_HUGETLB))
        .filter(|v| v.end.as_u64() > start && v.start.as_u64() < end)
    {
        let (s, e) = (v.start.as_u64(), v.end.as_u64());
        if (start > s && !start.is_multiple_of(HPAGE_SIZE))
            || (end < e && !end.is_multiple_of(HPAGE_SIZE))
        {
            return Err(EINVAL);
        }
    }
    Ok(())
}

/// `munmap(addr, len)`.
pub fn sys_munmap(a: &Args) -> SysResult {
    let (addr, len) = (a.0[0], a.0[1]);
    check_range(addr, len)?;
    let removed = with_mm(|mm| {
        vma_prealloc()?;
        let end = addr.saturating_add(len.next_multiple_of(PAGE_SIZE));
        check_hugetlb_edges(mm, addr, end)?;
        // THPs the range cuts are split while the VMAs still describe them.
        mm.split_huge_edges(addr, end.min(TASK_SIZE))
            .map_err(|_| ENOMEM)?;
        let removed = mm.vmas.unmap(VirtAddr::new(addr), len).map_err(err)?;
        release_hugetlb_resv(mm, &removed);
        Ok(removed)
    })?;
    // The range left the VMA tree: nothing can fault it in again, so its pages can go in
    // pieces, with the mm lock dropped and the CPU offered to others in between.
    for v in &removed {
        let mut from = v.start.as_u64();
        while let Some(next) =
            with_mm(|mm| Ok(mm.zap_range_bounded(from, v.end.as_u64(), ZAP_BATCH)))?
        {
            from = next;
            proc::sched::cond_resched();
        }
    }
    with_mm(|mm| {
        shmem::put_removed(&mm.vmas, &removed);
        Ok(0)
    })
}

/// `mprotect(addr, len, prot)`.
pub fn sys_mprotect(a: &Args) -> SysResult {
    let (addr, len, prot) = (a.0[0], a.0[1], a.0[2]);
    if addr % PAGE_SIZE != 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    with_mm(|mm| {
        vma_prealloc()?;
        // Only the access bits: the VMA keeps its VM_MAY* permissions.
        let access = VmFlags(prot_flags(prot).bits() & (VM_READ | VM_WRITE | VM_EXEC).bits());
        let end = addr.saturating_add(len.next_multiple_of(PAGE_SIZE));
        check_hugetlb_edges(mm, addr, end)?;
        // THPs the range cuts are split while the VMAs still describe them.
        mm.split_huge_edges(addr, end.min(TASK_SIZE))
            .map_err(|_| ENOMEM)?;
        mm.vmas
            .mprotect(VirtAddr::new(addr), len, access)
            .map_err(err)?;
        mm.change_protection(addr, addr + len.next_multiple_of(PAGE_SIZE));
        Ok(0)
    })
}

const MADV_NORMAL: u64 = 0;
const MADV_RANDOM: u64 = 1;
const MADV_SEQUENTIAL: u64 = 2;
const MADV_WILLNEED: u64 = 3;
const MADV_DONTNEED: u64 = 4;
const MADV_FREE: u64 = 8;
/// THP for the range (VM_HUGEPAGE), or never (VM_NOHUGEPAGE).
const MADV_HUGEPAGE: u64 = 14;
const MADV_NOHUGEPAGE: u64 = 15;
/// Deactivate the range's pages (reclaim takes them first).
const MADV_COLD: u64 = 20;
/// Reclaim the range's pages now: swap out anonymous and shared memory, drop file pages.
const MADV_PAGEOUT: u64 = 21;
/// Pages `MADV_PAGEOUT` collects under the address space's lock before reclaiming them
/// with no lock held (the range's length is the caller's).
const PAGEOUT_BATCH: usize = 256;

/// `madvise(addr, len, advice)`: DONTNEED unmaps the pages (private memory then reads back
/// as zero, file mappings as the file, shared memory keeps its data in its shmem object);
/// FREE, allowed on private anonymous memory only, drops them at once (Linux frees them
/// lazily, under memory pressure; reading back zeroes is one of its allowed outcomes);
/// WILLNEED and the access hints are accepted (anonymous memory has nothing to read
/// ahead).
pub fn sys_madvise(a: &Args) -> SysResult {
    let (addr, len, advice) = (a.0[0], a.0[1], a.0[2]);
    check_range(addr, len)?;
    let end = addr
        .checked_add(len.next_multiple_of(PAGE_SIZE))
        .ok_or(EINVAL)?;
    if advice == MADV_PAGEOUT || advice == MADV_COLD {
        return madvise_cold_or_pageout(addr, end, advice == MADV_PAGEOUT);
    }
    if advice == MADV_HUGEPAGE || advice == MADV_NOHUGEPAGE {
        let (set, clear) = if advice == MADV_HUGEPAGE {
            (VM_HUGEPAGE, VM_NOHUGEPAGE)
        } else {
            (VM_NOHUGEPAGE, VM_HUGEPAGE)
        };
        return with_mm(|mm| {
            vma_prealloc()?;
            mm.vmas
                .update_flags(VirtAddr::new(addr), end - addr, set, clear)
                .map_err(err)?;
            Ok(0)
        });
    }
    with_mm(|mm| {
        // The whole range must be mapped (ENOMEM otherwise, after applying what is).
        let mut covered = addr;
        let mut private_anon = true;
        let mut hugetlb = false;
        for v in mm
            .vmas
            .iter()
            .filter(|v| v.end.as_u64() > addr && v.start.as_u64() < end)
        {
            if v.start.as_u64() > covered {
                break;
            }
            covered = v.end.as_u64();
            private_anon &= v.backing == Backing::Anon && !v.flags.contains(VM_SHARED);
            hugetlb |= v.flags.contains(VM_HUGETLB);
        }
        // Hugetlb pages are not dropped by madvise (as Linux before 5.18).
        if hugetlb && (advice == MADV_DONTNEED || advice == MADV_FREE) {
            return Err(EINVAL);
        }
        match advice {
            MADV_DONTNEED => mm.zap_range(addr, end.min(covered)),
            MADV_FREE if !private_anon => return Err(EINVAL),
            MADV_FREE => mm.zap_range(addr, end.min(covered)),
            MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED => {}
            _ => return Err(EINVAL),
        }
        if covered < end {
            return Err(ENOMEM);
        }
        Ok(0)
    })
}

/// `MADV_COLD` / `MADV_PAGEOUT` (`madvise_cold_or_pageout_pte_range`): the pages mapped
/// in `[addr, end)` and used by this mapping only are deactivated, or reclaimed at once
/// (swapped out if anonymous or shared memory, dropped if clean file pages, written back
/// first if dirty). Pages are collected in batches under the lock, reclaimed without it.
/// ENOMEM if part of the range is unmapped.
fn madvise_cold_or_pageout(addr: u64, end: u64, pageout: bool) -> SysResult {
    let mut from = addr;
    let mut steps = 0u64;
    // Pages still in the LRU-add batch are not on a list yet: put them there first.
    crate::mm::vmscan::lru_add_drain();
    let covered = with_mm(|mm| Ok(mm.covered_from(addr, end)))?;
    while from < covered.min(end) {
        let (pfns, next) =
            with_mm(|mm| Ok(mm.pages_for_pageout(from, covered.min(end), PAGEOUT_BATCH)))?;
        if pageout {
            crate::mm::vmscan::reclaim_pages(pfns);
        } else {
            crate::mm::vmscan::deactivate_pages(pfns);
        }
        from = next;
        steps += 1;
        if steps.is_multiple_of(MINCORE_RESCHED_STEPS) {
            crate::proc::sched::cond_resched();
        }
        if crate::proc::current().is_some_and(crate::proc::signal::kill_pending) {
            return Err(super::errno::EINTR);
        }
    }
    if covered < end {
        return Err(ENOMEM);
    }
    Ok(0)
}

/// Pages of mincore's vector filled per step: a bounded kernel buffer however long the
/// range (Linux uses one page).
const MINCORE_CHUNK: usize = 512;
/// Steps between voluntary reschedules: a long vector (its length is the caller's) does
/// not keep other tasks off the CPU.
const MINCORE_RESCHED_STEPS: u64 = 64;

/// `mincore(addr, len, vec)`: one byte per page, 1 if resident. Checked as Linux's
/// `sys_mincore` does before any work (EINVAL unaligned, ENOMEM beyond user space, EFAULT
/// for a vector that cannot fit), then filled and copied out in bounded chunks; a hole
/// in the range ends it with ENOMEM, as `do_mincore` finds no VMA there.
pub fn sys_mincore(a: &Args) -> SysResult {
    let (addr, len, vec) = (a.0[0], a.0[1], a.0[2]);
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    if !access_ok(addr, len) {
        return Err(ENOMEM);
    }
    let mut pages = len.div_ceil(PAGE_SIZE);
    if !access_ok(vec, pages) {
        return Err(EFAULT);
    }
    let (mut start, mut vec) = (addr, vec);
    let mut buf = [0u8; MINCORE_CHUNK];
    let mut steps = 0u64;
    while pages > 0 {
        steps += 1;
        if steps.is_multiple_of(MINCORE_RESCHED_STEPS) {
            // No lock is held between steps.
            proc::sched::cond_resched();
        }
        let n = with_mm(|mm| {
            let vma = match mm.vmas.find_vma(VirtAddr::new(start)) {
                Some(v) if v.start.as_u64() <= start => *v,
                _ => return Err(ENOMEM),
            };
            let n = pages
                .min(MINCORE_CHUNK as u64)
                .min((vma.end.as_u64() - start) / PAGE_SIZE) as usize;
            mm.mincore_range(&vma, start, &mut buf[..n]);
            Ok(n)
        })?;
        copy_to_user(vec, &buf[..n])?;
        pages -= n as u64;
        vec += n as u64;
        start += n as u64 * PAGE_SIZE;
    }
    Ok(0)
}

/// `access_ok(addr, size)`: the range lies in user space.
fn access_ok(addr: u64, size: u64) -> bool {
    addr.checked_add(size).is_some_and(|e| e <= TASK_SIZE)
}

/// What mmap needs of an open file: its inode and open mode. The one place mm reads the
/// descriptor table (`file->f_mode`); initramfs files are opened read-only.
struct MmapFile {
    target: crate::fs::file::MapTarget,
    readable: bool,
    writable: bool,
}

fn mmap_file(fd: u64) -> Result<MmapFile, Errno> {
    let f = crate::fs::fdtable::fget(fd)?;
    Ok(MmapFile {
        target: f.mmap_target()?,
        readable: f.readable(),
        writable: f.writable(),
    })
}

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;

/// `mremap(old_addr, old_len, new_len, flags, new_addr)`: shrink in place, grow in place
/// when the space after is free, else move (with `MREMAP_MAYMOVE`) by moving the page-table
/// entries, so the pages (and their contents) go along without copying.
pub fn sys_mremap(a: &Args) -> SysResult {
    let [old, old_len, new_len, flags, new_addr, _] = a.0;
    if old % PAGE_SIZE != 0 || new_len == 0 || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 {
        return Err(EINVAL);
    }
    if flags & MREMAP_FIXED != 0 && (flags & MREMAP_MAYMOVE == 0 || new_addr % PAGE_SIZE != 0) {
        return Err(EINVAL);
    }
    let (old_len, new_len) = (
        old_len.next_multiple_of(PAGE_SIZE),
        new_len.next_multiple_of(PAGE_SIZE),
    );
    with_mm(|mm| {
        vma_prealloc()?;
        // Hugetlb mappings are not remapped (`vma_to_resize`, as Linux before 5.16).
        if mm
            .vmas
            .find_vma(VirtAddr::new(old))
            .is_some_and(|v| v.start.as_u64() <= old && v.flags.contains(VM_HUGETLB))
        {
            return Err(EINVAL);
        }
        if new_len > old_len && !may_expand_vm(mm, (new_len - old_len) / PAGE_SIZE) {
            return Err(ENOMEM);
        }
        let layout = mm.layout;
        if flags & MREMAP_FIXED == 0 {
            if new_len <= old_len {
                if new_len < old_len {
                    let removed = mm
                        .vmas
                        .unmap(VirtAddr::new(old + new_len), old_len - new_len)
                        .map_err(err)?;
                    mm.unmap_vmas(&removed);
                }
                return Ok(old);
            }
            if mm
                .vmas
                .can_grow_in_place(VirtAddr::new(old), old_len, new_len, &layout)
                .is_ok()
            {
                mm.vmas
                    .grow_in_place(VirtAddr::new(old), old_len, new_len, &layout)
                    .map_err(err)?;
                return Ok(old);
            }
            if flags & MREMAP_MAYMOVE == 0 {
                return Err(ENOMEM);
            }
        }
        let dest = if flags & MREMAP_FIXED != 0 {
            check_hugetlb_edges(mm, new_addr, new_addr.saturating_add(new_len))?;
            let removed = mm
                .vmas
                .unmap(VirtAddr::new(new_addr), new_len)
                .map_err(err)?;
            release_hugetlb_resv(mm, &removed);
            mm.unmap_vmas(&removed);
            VirtAddr::new(new_addr)
        } else {
            mm.vmas
                .get_unmapped_area(new_len, VirtAddr::new(0), Placement::Anywhere, &layout)
                .map_err(err)?
        };
        let moved_len = old_len.min(new_len);
        if new_len < old_len {
            let removed = mm
                .vmas
                .unmap(VirtAddr::new(old + new_len), old_len - new_len)
                .map_err(err)?;
            mm.unmap_vmas(&removed);
        }
        mm.vmas
            .move_range(VirtAddr::new(old), moved_len, dest, new_len, &layout)
            .map_err(err)?;
        mm.move_ptes(old, dest.as_u64(), moved_len);
        Ok(dest.as_u64())
    })
    .inspect(|_| {
        // Moving pages changes their rmap index: check it now under `rmap_check`.
        if let Some(t) = proc::current() {
            crate::mm::rmap::check(t);
        }
    })
}

const MS_ASYNC: u64 = 1;
const MS_INVALIDATE: u64 = 2;
const MS_SYNC: u64 = 4;

/// `msync(addr, len, flags)`: checks as Linux (alignment, flags, the range mapped), then
/// with MS_SYNC the dirty pages of the disk files the range maps are written back and
/// waited for (`vfs_fsync_range`); MS_ASYNC has nothing to start, since dirty pages are
/// already known to writeback (as Linux since 2.6.19).
pub fn sys_msync(a: &Args) -> SysResult {
    let (addr, len, flags) = (a.0[0], a.0[1], a.0[2]);
    if !addr.is_multiple_of(PAGE_SIZE)
        || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || (flags & MS_ASYNC != 0 && flags & MS_SYNC != 0)
    {
        return Err(EINVAL);
    }
    let end = addr
        .checked_add(len.next_multiple_of(PAGE_SIZE))
        .ok_or(ENOMEM)?;
    let objects = with_mm(|mm| {
        let mut covered = addr;
        let mut objects: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
        for v in mm
            .vmas
            .iter()
            .filter(|v| v.end.as_u64() > addr && v.start.as_u64() < end)
        {
            if v.start.as_u64() > covered {
                break;
            }
            covered = v.end.as_u64();
            if let mm_core::vma::Backing::File(f) = v.backing {
                if v.flags.contains(VM_SHARED) && shmem::has_ops(f.id) && !objects.contains(&f.id) {
                    objects.try_reserve(1).map_err(|_| ENOMEM)?;
                    objects.push(f.id);
                }
            }
        }
        if covered < end {
            Err(ENOMEM)
        } else {
            Ok(objects)
        }
    })?;
    if flags & MS_SYNC != 0 {
        for id in objects {
            crate::mm::filemap::writeback_object(id)?;
        }
        crate::fs::ext2::sync_all_filesystems()?;
    }
    Ok(0)
}

/// `SWAP_FLAG_PREFER`: the low 15 bits of swapon's flags give the priority.
const SWAP_FLAG_PREFER: u64 = 0x8000;
const SWAP_FLAG_PRIO_MASK: u64 = 0x7fff;
/// `SWAP_FLAG_DISCARD` and its two refinements: accepted, nothing to discard on.
const SWAP_FLAG_DISCARD_ALL: u64 = 0x10000 | 0x20000 | 0x40000;

/// The disk a swapon/swapoff path names: a block device node.
fn swap_disk(path: u64) -> Result<alloc::sync::Arc<dyn crate::block::BlockDevice>, Errno> {
    use crate::fs::namei;
    let abs = namei::path_at(crate::fs::namei::AT_FDCWD, &super::fs::user_path(path)?)?;
    let node = namei::lookup(&abs, true)?;
    let namei::Node::Vfs(p) = node else {
        return Err(EINVAL);
    };
    let inode = p.inode().ok_or(EINVAL)?;
    if inode.mode() & crate::fs::stat::S_IFMT != crate::fs::blockdev::S_IFBLK {
        return Err(EINVAL);
    }
    let m = inode.meta();
    crate::block::disks()
        .into_iter()
        .find(|d| d.devt() == (m.rdev_major, m.rdev_minor))
        .ok_or(super::errno::ENXIO)
}

/// `swapon(path, flags)`: enable the swap area on a block device.
pub fn sys_swapon(a: &Args) -> SysResult {
    let flags = a.0[1];
    if flags & !(SWAP_FLAG_PREFER | SWAP_FLAG_PRIO_MASK | SWAP_FLAG_DISCARD_ALL) != 0 {
        return Err(EINVAL);
    }
    let dev = swap_disk(a.0[0])?;
    let prio = (flags & SWAP_FLAG_PREFER != 0).then_some((flags & SWAP_FLAG_PRIO_MASK) as i32);
    crate::mm::swapfile::swapon(dev, prio).map(|_| 0)
}

/// `swapoff(path)`: bring every page of the area back, then disable it.
pub fn sys_swapoff(a: &Args) -> SysResult {
    let dev = swap_disk(a.0[0])?;
    let t = crate::mm::swapfile::area_of(dev.name().as_bytes()).ok_or(EINVAL)?;
    crate::mm::swapfile::swapoff(t).map(|()| 0)
}
