//! Intrusive doubly-linked lists of pages, threaded through [`Page::lru`](crate::page::Page):
//! Linux's `list_head` for free lists, per-CPU lists, slab partial lists and LRU lists.
//! A list is a head/tail pair of frame numbers plus a length; the links live in the pages.

use crate::addr::Pfn;
use crate::page::{Links, Pages, NO_PFN};

/// The head of a page list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageList {
    head: u32,
    tail: u32,
    len: usize,
}

impl Default for PageList {
    fn default() -> Self {
        Self::new()
    }
}

fn idx(pfn: Pfn) -> u32 {
    debug_assert!(pfn.0 < NO_PFN as u64);
    pfn.0 as u32
}

fn opt(i: u32) -> Option<Pfn> {
    (i != NO_PFN).then_some(Pfn(i as u64))
}

impl PageList {
    pub const fn new() -> Self {
        PageList {
            head: NO_PFN,
            tail: NO_PFN,
            len: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The first page.
    pub fn first(&self) -> Option<Pfn> {
        opt(self.head)
    }

    /// The last page.
    pub fn last(&self) -> Option<Pfn> {
        opt(self.tail)
    }

    /// Insert at the head (`list_add`).
    pub fn push_front<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) {
        let old = self.head;
        pages.page_mut(pfn).lru = Links {
            prev: NO_PFN,
            next: old,
        };
        match opt(old) {
            Some(o) => pages.page_mut(o).lru.prev = idx(pfn),
            None => self.tail = idx(pfn),
        }
        self.head = idx(pfn);
        self.len += 1;
    }

    /// Insert at the tail (`list_add_tail`).
    pub fn push_back<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) {
        let old = self.tail;
        pages.page_mut(pfn).lru = Links {
            prev: old,
            next: NO_PFN,
        };
        match opt(old) {
            Some(o) => pages.page_mut(o).lru.next = idx(pfn),
            None => self.head = idx(pfn),
        }
        self.tail = idx(pfn);
        self.len += 1;
    }

    /// Unlink `pfn`, which must be on this list (`list_del`).
    pub fn remove<P: Pages + ?Sized>(&mut self, pages: &mut P, pfn: Pfn) {
        let Links { prev, next } = pages.page(pfn).lru;
        match opt(prev) {
            Some(p) => pages.page_mut(p).lru.next = next,
            None => self.head = next,
        }
        match opt(next) {
            Some(n) => pages.page_mut(n).lru.prev = prev,
            None => self.tail = prev,
        }
        pages.page_mut(pfn).lru = Links::NONE;
        self.len -= 1;
    }

    /// Remove and return the first page.
    pub fn pop_front<P: Pages + ?Sized>(&mut self, pages: &mut P) -> Option<Pfn> {
        let f = self.first()?;
        self.remove(pages, f);
        Some(f)
    }

    /// Remove and return the last page.
    pub fn pop_back<P: Pages + ?Sized>(&mut self, pages: &mut P) -> Option<Pfn> {
        let l = self.last()?;
        self.remove(pages, l);
        Some(l)
    }

    /// The page after `pfn` on its list.
    pub fn next_of<P: Pages + ?Sized>(pages: &P, pfn: Pfn) -> Option<Pfn> {
        opt(pages.page(pfn).lru.next)
    }

    /// Visit every page, head to tail.
    pub fn iter<'a, P: Pages + ?Sized>(&self, pages: &'a P) -> impl Iterator<Item = Pfn> + 'a {
        let mut cur = self.first();
        core::iter::from_fn(move || {
            let c = cur?;
            cur = Self::next_of(pages, c);
            Some(c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{MemMap, Page};

    #[test]
    fn push_pop_remove_keep_order_and_links() {
        let mut v = vec![Page::new_reserved(); 8];
        let mut mm = MemMap::new(&mut v, Pfn(100));
        let mut l = PageList::new();
        for i in [101, 102, 103] {
            l.push_back(&mut mm, Pfn(i));
        }
        l.push_front(&mut mm, Pfn(100));
        assert_eq!(
            l.iter(&mm).map(|p| p.0).collect::<Vec<_>>(),
            [100, 101, 102, 103]
        );
        l.remove(&mut mm, Pfn(102));
        assert_eq!(
            l.iter(&mm).map(|p| p.0).collect::<Vec<_>>(),
            [100, 101, 103]
        );
        assert_eq!(l.pop_back(&mut mm), Some(Pfn(103)));
        assert_eq!(l.pop_front(&mut mm), Some(Pfn(100)));
        assert_eq!(l.len(), 1);
        assert_eq!(l.pop_front(&mut mm), Some(Pfn(101)));
        assert!(l.is_empty() && l.first().is_none() && l.last().is_none());
    }
}
