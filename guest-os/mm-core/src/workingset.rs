//! Workingset detection (`mm/workingset.c`): shadow entries and refault distances.
//!
//! When reclaim evicts a page, the page cache (or swap cache) slot it leaves keeps a
//! *shadow*: the value of the lruvec's `nonresident_age` clock at eviction. The clock
//! advances on every eviction and every activation, so when the page faults back in, `now -
//! eviction` (the *refault distance*) is how many pages the inactive list took in meanwhile:
//! the page would have stayed resident with that much more memory. If the distance is no
//! more than the pages the working set could give up (the active lists), the page is part of
//! the working set thrashing against the inactive list and is activated straight away.
//!
//! A shadow is an XArray "value entry" (low bit set, so it cannot be mistaken for a pointer
//! or, here, for a page) packing, from the top: eviction clock, memcg id, node, and whether
//! the page was in the working set (PG_workingset) when evicted.

use crate::lru::{LruList, Lruvec, NR_LRU_LISTS};
use crate::page::flags::PG_WORKINGSET;
use crate::page::Page;

/// Bits of a machine word.
const BITS_PER_LONG: u32 = u64::BITS;
/// Payload bits of an XArray value entry (the low bit tags it, `BITS_PER_XA_VALUE`).
const BITS_PER_XA_VALUE: u32 = BITS_PER_LONG - 1;
/// The PG_workingset bit.
pub const WORKINGSET_SHIFT: u32 = 1;
/// Node id bits (`NODES_SHIFT`, x86-64's default `CONFIG_NODES_SHIFT`).
pub const NODES_SHIFT: u32 = 6;
/// Memory cgroup id bits (`MEM_CGROUP_ID_SHIFT`).
pub const MEM_CGROUP_ID_SHIFT: u32 = 16;
/// Bits below the eviction clock (`EVICTION_SHIFT`, 24).
pub const EVICTION_SHIFT: u32 =
    (BITS_PER_LONG - BITS_PER_XA_VALUE) + WORKINGSET_SHIFT + NODES_SHIFT + MEM_CGROUP_ID_SHIFT;
/// Bits of the eviction clock a shadow keeps (40).
pub const EVICTION_BITS: u32 = BITS_PER_LONG - EVICTION_SHIFT;
/// Mask of the clock bits (`EVICTION_MASK`); distances are computed modulo this.
pub const EVICTION_MASK: u64 = !0 >> EVICTION_SHIFT;

/// An unpacked shadow entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shadow {
    pub memcg_id: u16,
    pub node: u8,
    /// The `nonresident_age` at eviction (low `bucket_order` bits lost).
    pub eviction: u64,
    /// The page had PG_workingset.
    pub workingset: bool,
}

/// `bucket_order` (`workingset_init`): when RAM has more pages than [`EVICTION_BITS`] can
/// count, the clock is stored in buckets of `1 << bucket_order` pages, so that a distance
/// as large as RAM still fits. 0 below 2^40 pages (4 PiB), i.e. always in practice.
pub fn bucket_order(totalram_pages: u64) -> u32 {
    let max_order = BITS_PER_LONG - totalram_pages.saturating_sub(1).leading_zeros();
    max_order.saturating_sub(EVICTION_BITS)
}

/// `pack_shadow` with bucket order 0 (see [`bucket_order`]).
pub fn pack_shadow(memcg_id: u16, node: u8, eviction: u64, workingset: bool) -> u64 {
    pack_shadow_order(memcg_id, node, eviction, workingset, 0)
}

/// `pack_shadow`: the shadow entry for a page evicted at clock `eviction`. Clock bits past
/// [`EVICTION_BITS`] (after dropping `bucket_order` low bits) are lost; distances are
/// modular. `node` must fit [`NODES_SHIFT`].
pub fn pack_shadow_order(
    memcg_id: u16,
    node: u8,
    eviction: u64,
    workingset: bool,
    bucket_order: u32,
) -> u64 {
    debug_assert!((node as u64) < 1 << NODES_SHIFT);
    let mut v = (eviction >> bucket_order) & EVICTION_MASK;
    v = (v << MEM_CGROUP_ID_SHIFT) | memcg_id as u64;
    v = (v << NODES_SHIFT) | (node as u64 & ((1 << NODES_SHIFT) - 1));
    v = (v << WORKINGSET_SHIFT) | workingset as u64;
    // xa_mk_value
    (v << 1) | 1
}

/// `unpack_shadow` with bucket order 0.
pub fn unpack_shadow(shadow: u64) -> Shadow {
    unpack_shadow_order(shadow, 0)
}

/// `unpack_shadow`.
pub fn unpack_shadow_order(shadow: u64, bucket_order: u32) -> Shadow {
    debug_assert!(is_shadow(shadow));
    let mut v = shadow >> 1;
    let workingset = v & ((1 << WORKINGSET_SHIFT) - 1) != 0;
    v >>= WORKINGSET_SHIFT;
    let node = (v & ((1 << NODES_SHIFT) - 1)) as u8;
    v >>= NODES_SHIFT;
    let memcg_id = (v & ((1 << MEM_CGROUP_ID_SHIFT) - 1)) as u16;
    v >>= MEM_CGROUP_ID_SHIFT;
    Shadow {
        memcg_id,
        node,
        eviction: v << bucket_order,
        workingset,
    }
}

/// `xa_is_value`: whether a slot value is a shadow rather than a page.
pub const fn is_shadow(v: u64) -> bool {
    v & 1 != 0
}

/// The refault distance: how far the clock moved from `eviction` to `now`, modulo the bits
/// a shadow keeps, so it stays right across a wrap of the stored clock.
pub fn refault_distance(eviction: u64, now: u64) -> u64 {
    now.wrapping_sub(eviction) & EVICTION_MASK
}

/// What the working set could give up for a refaulting page (`workingset_refault`'s
/// `workingset_size`), from the eviction lruvec's list sizes ([`Lruvec::sizes`]): the active
/// file list always; for an anon page also the inactive file list (file pages compete with
/// it); and, when there is swap to push anon out to, the active anon list, plus the inactive
/// anon list for a file page.
pub fn workingset_size(file: bool, sizes: &[u64; NR_LRU_LISTS], swap_available: bool) -> u64 {
    let s = |l: LruList| sizes[l.index()];
    let mut size = s(LruList::ActiveFile);
    if !file {
        size += s(LruList::InactiveFile);
    }
    if swap_available {
        size += s(LruList::ActiveAnon);
        if file {
            size += s(LruList::InactiveAnon);
        }
    }
    size
}

/// Whether a refault at `distance` should be activated: it would have stayed resident had
/// the active lists been that much smaller.
pub fn refault_should_activate(distance: u64, workingset_size: u64) -> bool {
    distance <= workingset_size
}

impl Lruvec {
    /// `workingset_age_nonresident`: advance the clock by `nr_pages` (on each eviction, and
    /// each activation: `workingset_activation`, both of which push pages down the
    /// inactive list).
    pub fn age_nonresident(&mut self, nr_pages: u64) {
        self.nonresident_age = self.nonresident_age.wrapping_add(nr_pages);
    }
}

/// `workingset_eviction`: the shadow for `page`, evicted from `lruvec` (that of memcg
/// `memcg_id` on `node`); ages the clock by the page's `nr_pages`.
pub fn workingset_eviction(
    lruvec: &mut Lruvec,
    memcg_id: u16,
    node: u8,
    page: &Page,
    nr_pages: u64,
    bucket_order: u32,
) -> u64 {
    let eviction = lruvec.nonresident_age;
    lruvec.age_nonresident(nr_pages);
    pack_shadow_order(
        memcg_id,
        node,
        eviction,
        page.test(PG_WORKINGSET),
        bucket_order,
    )
}

/// `workingset_test_recent` (the decision in `workingset_refault`): for a page of type
/// `file` refaulting with `shadow`, evicted from `eviction_lruvec`, whether it was evicted
/// recently enough to activate. The caller then sets PG_active, ages the faulting lruvec
/// ([`Lruvec::age_nonresident`]), counts WORKINGSET_ACTIVATE, and, if the shadow's
/// `workingset` is set, sets PG_workingset and notes the refault cost
/// ([`Lruvec::note_cost`]).
pub fn workingset_test_recent(
    shadow: u64,
    eviction_lruvec: &Lruvec,
    file: bool,
    swap_available: bool,
    bucket_order: u32,
) -> bool {
    let s = unpack_shadow_order(shadow, bucket_order);
    let distance = refault_distance(s.eviction, eviction_lruvec.nonresident_age);
    let size = workingset_size(file, &eviction_lruvec.sizes(), swap_available);
    refault_should_activate(distance, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout() {
        assert_eq!((EVICTION_SHIFT, EVICTION_BITS), (24, 40));
        let s = pack_shadow(0, 0, 0, false);
        assert_eq!(s, 1);
        assert!(is_shadow(s) && !is_shadow(0x1000));
        let s = pack_shadow(0xabcd, 5, 0x12_3456_789a, true);
        assert_eq!(s, (0x12_3456_789a << 24) | (0xabcd << 8) | (5 << 2) | 0b11);
        assert_eq!(
            unpack_shadow(s),
            Shadow {
                memcg_id: 0xabcd,
                node: 5,
                eviction: 0x12_3456_789a,
                workingset: true
            }
        );
    }

    #[test]
    fn bucket_orders() {
        assert_eq!(bucket_order(1 << 20), 0);
        assert_eq!(bucket_order(1 << 40), 0);
        assert_eq!(bucket_order((1 << 40) + 1), 1);
        assert_eq!(bucket_order(1 << 44), 4);
        assert_eq!(bucket_order(0), 0);
    }

    #[test]
    fn refault_decision() {
        let mut lru = Lruvec::new();
        let mut p = Page::new_reserved();
        p.set(PG_WORKINGSET);
        lru.nonresident_age = 1000;
        let shadow = workingset_eviction(&mut lru, 3, 0, &p, 1, 0);
        assert_eq!(lru.nonresident_age, 1001);
        assert!(unpack_shadow(shadow).workingset);
        // Nothing on the lists: distance 1 > workingset 0.
        assert!(!workingset_test_recent(shadow, &lru, true, false, 0));
        lru.nonresident_age = 1000;
        assert!(workingset_test_recent(shadow, &lru, true, false, 0));
        let sizes = [10, 20, 30, 40, 50];
        assert_eq!(workingset_size(true, &sizes, false), 40);
        assert_eq!(workingset_size(true, &sizes, true), 40 + 20 + 10);
        assert_eq!(workingset_size(false, &sizes, false), 40 + 30);
        assert_eq!(workingset_size(false, &sizes, true), 40 + 30 + 20);
        assert!(refault_should_activate(70, 70) && !refault_should_activate(71, 70));
    }

    proptest! {
        #[test]
        fn pack_unpack_round_trip(
            memcg_id in any::<u16>(), node in 0u8..64, eviction in any::<u64>(),
            ws in any::<bool>(), order in 0u32..8,
        ) {
            let s = pack_shadow_order(memcg_id, node, eviction, ws, order);
            prop_assert!(is_shadow(s));
            let u = unpack_shadow_order(s, order);
            prop_assert_eq!((u.memcg_id, u.node, u.workingset), (memcg_id, node, ws));
            // The clock comes back rounded down to its bucket, modulo the kept bits.
            let want = ((eviction >> order) & EVICTION_MASK) << order;
            prop_assert_eq!(u.eviction, want);
        }

        #[test]
        fn distance_across_wrap(eviction in any::<u64>(), d in 0u64..=EVICTION_MASK) {
            let now = eviction.wrapping_add(d);
            let u = unpack_shadow(pack_shadow(1, 0, eviction, false));
            prop_assert_eq!(refault_distance(u.eviction, now), d);
        }
    }
}
