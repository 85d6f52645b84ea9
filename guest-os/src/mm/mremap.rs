//! mremap's page-table half (`mm/mremap.c`, `move_page_tables`/`move_ptes`): the mapped
//! entries of the old range move to the new one, so the pages keep their contents and
//! their single mapping; only present tables are visited, empty source tables are freed.

use mm_core::pgtable::{Cursor, MmuGather, Pte};

use super::addr::{VirtAddr, PAGE_SIZE};
use super::memory::is_shared_page;
use super::mm_struct::{page_mapcount_add, Mm, UserPt};

impl Mm {
    /// Move the entries of `[from, from+len)` to `to` (the ranges do not overlap). A page
    /// whose destination table cannot be allocated is dropped (it reads back as zero),
    /// as before; the VMAs have already moved.
    pub fn move_ptes(&mut self, from: u64, to: u64, len: u64) {
        if len == 0 {
            return;
        }
        // THPs move as 4 KiB pages (Linux moves a whole PMD when both sides are aligned,
        // `move_huge_pmd`, and splits otherwise). Hugetlb mappings do not get here.
        let _ = self.split_huge_range(from, from + len);
        let mut pt = UserPt::default();
        let mut tlb = MmuGather::new(self.is_active());
        let root = self.pgd.root();
        let src = VirtAddr::new(from)..VirtAddr::new(from + len);
        let mut pos = from;
        let mut dropped = 0u64;
        while let Ok(mut c) = Cursor::new(&mut pt, root, src.clone()) {
            if c.jump(VirtAddr::new(pos)).is_err() {
                break;
            }
            let Some((va, p)) = c.find_next_entry() else {
                break;
            };
            c.replace(Pte::NONE);
            if p.is_accessible() {
                tlb.add_page(va);
            }
            let dst = to + (va.as_u64() - from);
            let moved = Cursor::new(
                &mut pt,
                root,
                VirtAddr::new(dst)..VirtAddr::new(dst + PAGE_SIZE),
            )
            .and_then(|mut d| d.map(p));
            if !p.is_present() {
                // A swap entry moves as it is; without a table for it, its slot is let go.
                if moved.is_err() {
                    if let Some(e) = mm_core::swap::pte_to_swp_entry(p) {
                        super::swap_state::free_swap_and_cache(e);
                        self.swapents = self.swapents.saturating_sub(1);
                    }
                }
                pos = va.as_u64() + PAGE_SIZE;
                if pos >= from + len {
                    break;
                }
                continue;
            }
            let pfn = p.phys().pfn();
            // The page keeps its rmap index: the moved VMA keeps its pgoff.
            if moved.is_err() && !is_shared_page(pfn) {
                page_mapcount_add(pfn, -1);
                self.rss_stat.dec(pfn);
                dropped += 1;
                tlb.remove_page(p.phys(), &mut pt);
            }
            pos = va.as_u64() + PAGE_SIZE;
            if pos >= from + len {
                break;
            }
        }
        self.rss = self.rss.saturating_sub(dropped);
        // The source range is empty now: this only frees its empty tables.
        if let Ok(mut c) = Cursor::new(&mut pt, root, src) {
            let _ = c.unmap(len, &mut tlb, &mut |_, _| false);
        }
        tlb.finish(&mut pt);
        self.account_tables(&pt);
    }
}
