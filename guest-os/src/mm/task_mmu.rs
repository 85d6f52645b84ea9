//! What /proc/PID/smaps, mincore and the rmap check read from the page tables
//! (`fs/proc/task_mmu.c`, `mm/mincore.c`), all through the cursor's `find_next`, which
//! visits mapped pages only and skips empty tables whole.

use alloc::vec::Vec;

use mm_core::page::flags::PG_ANON;
use mm_core::page::Pages;
use mm_core::pgtable::{pte, Cursor, Pte, HPAGE_SIZE};
use mm_core::vma::{Backing, Vma, VM_SHARED};

use super::addr::{Pfn, VirtAddr, PAGE_SIZE};
use super::memory::is_shared_page;
use super::mm_struct::{Mm, UserPt};
use super::page_alloc;

/// Pss is kept in 1/64 pages ([`Mm::smaps_counts`]).
const PSS_SHIFT_UNITS: u64 = 64;

impl Mm {
    /// Call `f` with every mapped page (present or PROT_NONE) of `[start, end)`.
    fn for_each_mapped(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, mm_core::pgtable::Pte)) {
        let mut pt = UserPt::default();
        let Ok(mut c) = Cursor::new(
            &mut pt,
            self.pgd.root(),
            VirtAddr::new(start)..VirtAddr::new(end),
        ) else {
            return;
        };
        while let Some((va, p)) = c.find_next() {
            if p.is_huge() {
                // Each 4 KiB subpage of a huge PMD in the range, as its own entry.
                let hend = ((va.as_u64() | (HPAGE_SIZE - 1)) + 1).min(end);
                let mut a = va.as_u64();
                while a < hend {
                    f(a, Pte(p.0 + (a - va.as_u64())));
                    a += PAGE_SIZE;
                }
            } else {
                f(va.as_u64(), p);
            }
            c.move_forward();
            if c.va().as_u64() <= va.as_u64() {
                break;
            }
        }
    }

    /// What `/proc/PID/smaps` reports for one VMA, in pages: (rss, pss in 1/64 pages,
    /// shared clean, shared dirty, private clean, private dirty, referenced, anonymous,
    /// AnonHugePages, hugetlb). A hugetlb VMA's pages count as hugetlb only, as Linux's
    /// `smaps_hugetlb_range` (Shared_Hugetlb or Private_Hugetlb, not Rss).
    pub fn smaps_counts(&self, v: &Vma) -> [u64; 10] {
        let mut c = [0u64; 10];
        let anon_vma = v.backing == Backing::Anon && !v.flags.contains(VM_SHARED);
        let hugetlb = v.flags.contains(mm_core::vma::VM_HUGETLB);
        self.for_each_mapped(v.start.as_u64(), v.end.as_u64(), &mut |_, e| {
            if hugetlb {
                c[9] += 1;
                return;
            }
            if e.is_huge() {
                c[8] += 1;
            }
            let pfn = e.phys().pfn();
            // Mappers: the zero page and the vDSO count as shared by many.
            let mappers = if is_shared_page(pfn) {
                2
            } else {
                page_alloc::with(|a| a.page(pfn).mapcount.max(0) as u64 + 1)
            };
            let dirty = e.0 & pte::DIRTY != 0;
            c[0] += 1;
            c[1] += PSS_SHIFT_UNITS / mappers;
            let slot = match (mappers > 1, dirty) {
                (true, false) => 2,
                (true, true) => 3,
                (false, false) => 4,
                (false, true) => 5,
            };
            c[slot] += 1;
            if e.0 & pte::ACCESSED != 0 {
                c[6] += 1;
            }
            // Pages of private anonymous mappings. (File pages are per-mapping copies
            // here, standing in for the page cache, so they count as file pages.)
            if !is_shared_page(pfn) && anon_vma {
                c[7] += 1;
            }
        });
        c
    }

    /// Every mapped anonymous page this address space owns a share of (not the zero page,
    /// the vDSO or shmem pages, which the anon rmap does not track), with its address:
    /// for the rmap check.
    pub fn private_pages(&self) -> Vec<(Pfn, u64)> {
        let mut out = Vec::new();
        for v in self.vmas.iter() {
            self.for_each_mapped(v.start.as_u64(), v.end.as_u64(), &mut |va, e| {
                let pfn = e.phys().pfn();
                if !is_shared_page(pfn) && page_alloc::page_flags(pfn) & PG_ANON != 0 {
                    out.push((pfn, va));
                }
            });
        }
        out
    }

    /// mincore for `[start, start + out.len() pages)`, which lies inside `vma`: 1 for each
    /// page mapped here, or (shmem) held by its object although not mapped here, as
    /// Linux's `mincore_page` finds shmem pages in their page cache.
    pub fn mincore_range(&self, vma: &Vma, start: u64, out: &mut [u8]) {
        out.fill(0);
        let end = start + out.len() as u64 * PAGE_SIZE;
        self.for_each_mapped(start, end, &mut |va, _| {
            out[((va - start) / PAGE_SIZE) as usize] = 1;
        });
        if let Backing::File(f) = vma.backing {
            if super::shmem::is_shmem(f.id) {
                let first = vma.pgoff + (start - vma.start.as_u64()) / PAGE_SIZE;
                super::shmem::resident(f.id, first, out);
            }
        }
    }
}
