//! The swap cache (`mm/swap_state.c`): pages that have a swap slot, keyed by their
//! [`SwpEntry`], and the shadow entries left behind when such pages are reclaimed.
//!
//! A page sits here while it is being written out, while it is being read back in, and
//! after swap-in as long as its slot is kept (so a clean page can be dropped again without
//! I/O). When reclaim frees it, its slot's entry becomes a workingset shadow (see
//! [`crate::workingset`]) that the next swap-in of that slot uses to judge the refault.
//!
//! Linux keeps these in one XArray per 64 MiB of swap; here each area has an array of one
//! word per slot, allocated (fallibly) when the area is enabled ([`SwapCache::add_area`]):
//! every operation is O(1) and none allocates, so reclaim never needs memory to record
//! what it frees.

use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::ops::Range;

use crate::addr::Pfn;
use crate::swap::SwpEntry;

/// What the cache holds for a swap entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapCacheEntry {
    /// The page caching the slot's contents.
    Page(Pfn),
    /// A reclaimed page's workingset shadow ([`crate::workingset::pack_shadow`]).
    Shadow(u64),
}

/// `add` found a page already cached for the entry (`-EEXIST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exists(pub Pfn);

/// A slot's word: 0 empty, a shadow as it is (its low bit is set, an XArray value entry),
/// a page as its frame number shifted past [`PAGE_TAG`].
const PAGE_TAG: u64 = 0b10;
const TAG_BITS: u32 = 2;

fn decode(w: u64) -> Option<SwapCacheEntry> {
    match w {
        0 => None,
        w if w & 1 != 0 => Some(SwapCacheEntry::Shadow(w)),
        w => Some(SwapCacheEntry::Page(Pfn(w >> TAG_BITS))),
    }
}

fn encode(e: SwapCacheEntry) -> u64 {
    match e {
        SwapCacheEntry::Page(p) => (p.0 << TAG_BITS) | PAGE_TAG,
        // Shadows always have the low bit set ([`crate::workingset::is_shadow`]).
        SwapCacheEntry::Shadow(s) => s | 1,
    }
}

/// The swap cache of all swap areas.
#[derive(Clone, Debug, Default)]
pub struct SwapCache {
    /// By area type, one word per slot.
    areas: Vec<Vec<u64>>,
    nr_pages: u64,
    nr_shadows: u64,
}

impl SwapCache {
    pub const fn new() -> Self {
        SwapCache {
            areas: Vec::new(),
            nr_pages: 0,
            nr_shadows: 0,
        }
    }

    /// Room for area `type_`'s `slots` slots (swapon). Fails without memory.
    pub fn add_area(&mut self, type_: usize, slots: u64) -> Result<(), TryReserveError> {
        if self.areas.len() <= type_ {
            self.areas.try_reserve(type_ + 1 - self.areas.len())?;
            self.areas.resize_with(type_ + 1, Vec::new);
        }
        let mut v = Vec::new();
        v.try_reserve_exact(slots as usize)?;
        v.resize(slots as usize, 0);
        self.areas[type_] = v;
        Ok(())
    }

    /// Forget area `type_` (swapoff, once no page of it is cached).
    pub fn remove_area(&mut self, type_: usize) {
        if let Some(a) = self.areas.get_mut(type_) {
            for &w in a.iter() {
                match decode(w) {
                    Some(SwapCacheEntry::Page(_)) => self.nr_pages -= 1,
                    Some(SwapCacheEntry::Shadow(_)) => self.nr_shadows -= 1,
                    None => {}
                }
            }
            *a = Vec::new();
        }
    }

    fn slot(&self, entry: SwpEntry) -> Option<&u64> {
        self.areas.get(entry.type_())?.get(entry.offset() as usize)
    }

    fn slot_mut(&mut self, entry: SwpEntry) -> Option<&mut u64> {
        self.areas
            .get_mut(entry.type_())?
            .get_mut(entry.offset() as usize)
    }

    /// `add_to_swap_cache`: cache `pfn` for `entry`. Replaces a shadow, which it returns for
    /// `workingset_refault`; fails if a page is cached already, or if the entry names no
    /// slot of an area the cache knows (reported as a page already there, frame 0).
    pub fn add(&mut self, entry: SwpEntry, pfn: Pfn) -> Result<Option<u64>, Exists> {
        let Some(w) = self.slot_mut(entry) else {
            return Err(Exists(Pfn(0)));
        };
        let old = decode(*w);
        if let Some(SwapCacheEntry::Page(p)) = old {
            return Err(Exists(p));
        }
        *w = encode(SwapCacheEntry::Page(pfn));
        self.nr_pages += 1;
        Ok(match old {
            Some(SwapCacheEntry::Shadow(s)) => {
                self.nr_shadows -= 1;
                Some(s)
            }
            _ => None,
        })
    }

    /// `swap_cache_get_folio`/`filemap_get_folio` on the swap space: the cached page.
    pub fn lookup(&self, entry: SwpEntry) -> Option<Pfn> {
        match self.get(entry) {
            Some(SwapCacheEntry::Page(p)) => Some(p),
            _ => None,
        }
    }

    /// What is stored for `entry`, page or shadow.
    pub fn get(&self, entry: SwpEntry) -> Option<SwapCacheEntry> {
        self.slot(entry).copied().and_then(decode)
    }

    /// `__delete_from_swap_cache`: remove the page cached for `entry`, leaving `shadow` in
    /// its place if given (reclaim) or nothing (swap-in done, swapoff, truncation). Returns
    /// the page removed; a shadow already there is left alone unless `shadow` replaces it.
    pub fn delete(&mut self, entry: SwpEntry, shadow: Option<u64>) -> Option<Pfn> {
        let pfn = self.lookup(entry)?;
        self.nr_pages -= 1;
        let w = self.slot_mut(entry)?;
        match shadow {
            Some(s) => {
                *w = encode(SwapCacheEntry::Shadow(s));
                self.nr_shadows += 1;
            }
            None => *w = 0,
        }
        Some(pfn)
    }

    /// Remove and return the shadow of `entry`, if it has one (`get_shadow_from_swap_cache`
    /// followed by the slot's reuse).
    pub fn take_shadow(&mut self, entry: SwpEntry) -> Option<u64> {
        let w = self.slot_mut(entry)?;
        match decode(*w) {
            Some(SwapCacheEntry::Shadow(s)) => {
                *w = 0;
                self.nr_shadows -= 1;
                Some(s)
            }
            _ => None,
        }
    }

    /// `clear_shadow_from_swap_cache`: drop the shadows of slots `range` of area `type_`
    /// (when the slots are freed, and at swapoff). Pages are left alone. Returns how many
    /// shadows went.
    pub fn clear_shadows(&mut self, type_: usize, range: Range<u64>) -> u64 {
        let Some(a) = self.areas.get_mut(type_) else {
            return 0;
        };
        let end = range.end.min(a.len() as u64);
        let mut n = 0;
        for w in a[range.start.min(end) as usize..end as usize].iter_mut() {
            if let Some(SwapCacheEntry::Shadow(_)) = decode(*w) {
                *w = 0;
                n += 1;
            }
        }
        self.nr_shadows -= n;
        n
    }

    /// Pages in the cache (`total_swapcache_pages`).
    pub fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    /// Shadow entries held.
    pub fn nr_shadows(&self) -> u64 {
        self.nr_shadows
    }

    /// Every cached page with its entry, in entry order (for swapoff and checks).
    pub fn pages(&self) -> impl Iterator<Item = (SwpEntry, Pfn)> + '_ {
        self.areas.iter().enumerate().flat_map(|(t, a)| {
            a.iter()
                .enumerate()
                .filter_map(move |(o, &w)| match decode(w) {
                    Some(SwapCacheEntry::Page(p)) => Some((SwpEntry::new(t, o as u64), p)),
                    _ => None,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn e(o: u64) -> SwpEntry {
        SwpEntry::new(1, o)
    }

    #[test]
    fn page_then_shadow_then_page() {
        let mut c = SwapCache::new();
        for t in 0..3 {
            c.add_area(t, 64).unwrap();
        }
        assert_eq!(c.add(e(5), Pfn(100)), Ok(None));
        assert_eq!(c.add(e(5), Pfn(101)), Err(Exists(Pfn(100))));
        assert_eq!(c.lookup(e(5)), Some(Pfn(100)));
        assert_eq!(c.nr_pages(), 1);
        assert_eq!(c.delete(e(5), Some(0x77)), Some(Pfn(100)));
        assert_eq!(c.lookup(e(5)), None);
        assert_eq!(c.get(e(5)), Some(SwapCacheEntry::Shadow(0x77)));
        assert_eq!((c.nr_pages(), c.nr_shadows()), (0, 1));
        assert_eq!(c.add(e(5), Pfn(102)), Ok(Some(0x77)));
        assert_eq!((c.nr_pages(), c.nr_shadows()), (1, 0));
        assert_eq!(c.delete(e(5), None), Some(Pfn(102)));
        assert_eq!(c.get(e(5)), None);
        assert_eq!(c.delete(e(5), None), None);
    }

    #[test]
    fn take_and_clear_shadows() {
        let mut c = SwapCache::new();
        for t in 0..3 {
            c.add_area(t, 64).unwrap();
        }
        for o in 0..10 {
            c.add(e(o), Pfn(o)).unwrap();
            c.delete(e(o), Some(o * 2 + 1));
        }
        c.add(SwpEntry::new(0, 3), Pfn(50)).unwrap();
        c.delete(SwpEntry::new(0, 3), Some(9));
        c.add(SwpEntry::new(2, 3), Pfn(51)).unwrap();
        c.delete(SwpEntry::new(2, 3), Some(9));
        c.add(e(4), Pfn(60)).unwrap(); // a page among the shadows
        assert_eq!(c.take_shadow(e(2)), Some(5));
        assert_eq!(c.take_shadow(e(2)), None);
        assert_eq!(c.take_shadow(e(4)), None, "a page is not a shadow");
        assert_eq!(c.clear_shadows(1, 0..8), 6); // 0,1,3,5,6,7
        assert_eq!(c.nr_shadows(), 4); // 8, 9, and the other areas' two
        assert_eq!(c.lookup(e(4)), Some(Pfn(60)));
        assert_eq!(c.clear_shadows(1, 0..u32::MAX as u64), 2);
        assert_eq!(c.get(SwpEntry::new(0, 3)), Some(SwapCacheEntry::Shadow(9)));
        assert_eq!(c.get(SwpEntry::new(2, 3)), Some(SwapCacheEntry::Shadow(9)));
        assert_eq!(c.pages().collect::<Vec<_>>(), [(e(4), Pfn(60))]);
    }

    proptest! {
        /// Random adds, deletes and shadow operations against a map model.
        #[test]
        fn cache_matches_model(ops in proptest::collection::vec((0u8..5, 0usize..3, 0u64..40, any::<u16>()), 1..300)) {
            let mut c = SwapCache::new();
        for t in 0..3 {
            c.add_area(t, 64).unwrap();
        }
            let mut model: HashMap<SwpEntry, SwapCacheEntry> = HashMap::new();
            for (op, t, o, v) in ops {
                let e = SwpEntry::new(t, o);
                match op {
                    0 => {
                        let r = c.add(e, Pfn(v as u64));
                        match model.get(&e).copied() {
                            Some(SwapCacheEntry::Page(p)) => prop_assert_eq!(r, Err(Exists(p))),
                            old => {
                                let shadow = match old { Some(SwapCacheEntry::Shadow(s)) => Some(s), _ => None };
                                prop_assert_eq!(r, Ok(shadow));
                                model.insert(e, SwapCacheEntry::Page(Pfn(v as u64)));
                            }
                        }
                    }
                    1 | 2 => {
                        let shadow = (op == 1).then_some(v as u64 * 2 + 1);
                        let r = c.delete(e, shadow);
                        match model.get(&e).copied() {
                            Some(SwapCacheEntry::Page(p)) => {
                                prop_assert_eq!(r, Some(p));
                                match shadow {
                                    Some(s) => { model.insert(e, SwapCacheEntry::Shadow(s)); }
                                    None => { model.remove(&e); }
                                }
                            }
                            _ => prop_assert_eq!(r, None),
                        }
                    }
                    3 => {
                        let r = c.take_shadow(e);
                        match model.get(&e).copied() {
                            Some(SwapCacheEntry::Shadow(s)) => { prop_assert_eq!(r, Some(s)); model.remove(&e); }
                            _ => prop_assert_eq!(r, None),
                        }
                    }
                    _ => {
                        let range = o..o + v as u64 % 10;
                        let n = c.clear_shadows(t, range.clone());
                        let before = model.len();
                        model.retain(|k, v| !(k.type_() == t && range.contains(&k.offset()) && matches!(v, SwapCacheEntry::Shadow(_))));
                        prop_assert_eq!(n as usize, before - model.len());
                    }
                }
                let pages = model.values().filter(|v| matches!(v, SwapCacheEntry::Page(_))).count() as u64;
                prop_assert_eq!(c.nr_pages(), pages);
                prop_assert_eq!(c.nr_shadows(), model.len() as u64 - pages);
                prop_assert_eq!(c.lookup(e), match model.get(&e) { Some(SwapCacheEntry::Page(p)) => Some(*p), _ => None });
            }
        }
    }
}
