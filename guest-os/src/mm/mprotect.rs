//! mprotect's page-table half (`mm/mprotect.c`, `change_protection`): the VMAs already
//! carry the new access bits (`mm_core::vma::VmaTree::mprotect`); here the mapped PTEs of
//! the range follow them, through the cursor, one VMA at a time.
//!
//! Write permission is taken away at once and given back lazily by the write fault (which
//! also decides between reuse and copy). PROT_NONE is encoded as Linux does: PRESENT clear
//! and `_PAGE_PROTNONE` set, so the page stays mapped (its data survives, zap and fork see
//! it) while no access, user or kernel, reaches it.

use mm_core::pgtable::{pte, Cursor, MmuGather, Pte};
use mm_core::vma::{VM_EXEC, VM_READ, VM_WRITE};

use super::addr::VirtAddr;
use super::mm_struct::{Mm, UserPt};

impl Mm {
    /// Make the mapped PTEs of `[start, end)` follow their VMA's protection.
    pub fn change_protection(&mut self, start: u64, end: u64) {
        // A THP the range cuts is split first (`vma_adjust_trans_huge`); one it covers is
        // changed whole (`change_huge_pmd`), as is a hugetlb PMD.
        let _ = self.split_huge_edges(start, end);
        let mut pt = UserPt::default();
        let mut tlb = MmuGather::new(self.is_active());
        let root = self.pgd.root();
        for v in self.vmas.iter() {
            let (s, e) = (v.start.as_u64().max(start), v.end.as_u64().min(end));
            if s >= e {
                continue;
            }
            let f = v.flags;
            let accessible = f.intersects(VM_READ | VM_WRITE | VM_EXEC);
            let Ok(mut c) = Cursor::new(&mut pt, root, VirtAddr::new(s)..VirtAddr::new(e)) else {
                continue;
            };
            let _ = c.protect(e - s, &mut tlb, &mut |_, old| {
                let keep = old.flags() & (pte::ACCESSED | pte::DIRTY);
                if !accessible {
                    // PAGE_NONE: _PAGE_PROTNONE | _PAGE_ACCESSED.
                    return Pte::new(old.phys(), pte::PROTNONE | pte::ACCESSED | keep);
                }
                let mut n = pte::PRESENT | pte::USER | keep;
                if f.contains(VM_WRITE) && old.is_accessible() {
                    n |= old.flags() & pte::RW;
                }
                if !f.contains(VM_EXEC) {
                    n |= pte::NX;
                }
                Pte::new(old.phys(), n)
            });
        }
        tlb.finish(&mut pt);
    }
}
