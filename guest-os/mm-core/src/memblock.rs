//! memblock: the boot-time physical memory allocator. Two sorted sets of ranges, `memory`
//! (RAM from the firmware map) and `reserved` (what is in use: kernel image, boot data,
//! early allocations). Free memory is `memory - reserved`. Allocation is top-down below a
//! limit, as Linux's default. Once the page allocator is up, the kernel hands every free
//! range to it and stops using memblock.
//!
//! Fixed capacity ([`MEMBLOCK_REGIONS`] per set), like Linux's static `memblock_memory_init_regions`,
//! because there is no allocator to grow into yet.

use crate::addr::PhysAddr;

/// Regions per set (Linux's INIT_MEMBLOCK_REGIONS).
pub const MEMBLOCK_REGIONS: usize = 128;

/// A physical range `[base, base + size)` and the NUMA node it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Region {
    pub base: u64,
    pub size: u64,
    pub nid: u8,
}

impl Region {
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// Why a memblock operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemblockError {
    /// More than [`MEMBLOCK_REGIONS`] disjoint ranges.
    TooManyRegions,
    /// `base + size` overflows.
    Overflow,
}

/// A sorted set of disjoint, non-adjacent (same-node) ranges.
#[derive(Clone, Debug)]
pub struct RegionSet {
    regions: [Region; MEMBLOCK_REGIONS],
    cnt: usize,
}

impl Default for RegionSet {
    fn default() -> Self {
        Self::new()
    }
}

impl RegionSet {
    pub const fn new() -> Self {
        RegionSet {
            regions: [Region {
                base: 0,
                size: 0,
                nid: 0,
            }; MEMBLOCK_REGIONS],
            cnt: 0,
        }
    }

    /// The ranges, lowest first.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.cnt]
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.regions().iter().map(|r| r.size).sum()
    }

    fn insert_at(&mut self, i: usize, r: Region) -> Result<(), MemblockError> {
        if self.cnt == MEMBLOCK_REGIONS {
            return Err(MemblockError::TooManyRegions);
        }
        self.regions.copy_within(i..self.cnt, i + 1);
        self.regions[i] = r;
        self.cnt += 1;
        Ok(())
    }

    fn remove_at(&mut self, i: usize) {
        self.regions.copy_within(i + 1..self.cnt, i);
        self.cnt -= 1;
    }

    /// Add `[base, base+size)` on node 0, merging with overlapping or adjacent ranges.
    pub fn add(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.add_node(base, size, 0)
    }

    /// Add `[base, base+size)` on node `nid`.
    pub fn add_node(&mut self, base: u64, size: u64, nid: u8) -> Result<(), MemblockError> {
        let end = base.checked_add(size).ok_or(MemblockError::Overflow)?;
        if size == 0 {
            return Ok(());
        }
        // Carve out what is already present, then insert the remaining pieces.
        let mut cur = base;
        while cur < end {
            // First region ending after cur.
            let i = self.regions().partition_point(|r| r.end() <= cur);
            let next_start = self.regions().get(i).map_or(end, |r| r.base.max(cur));
            if next_start > cur {
                let piece_end = next_start.min(end);
                self.insert_at(
                    i,
                    Region {
                        base: cur,
                        size: piece_end - cur,
                        nid,
                    },
                )?;
                cur = piece_end;
            } else {
                // `cur` lies inside region i: skip past it.
                cur = self.regions[i].end().min(end);
            }
        }
        self.merge();
        Ok(())
    }

    /// Remove `[base, base+size)`, splitting ranges as needed.
    pub fn remove(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        let end = base.checked_add(size).ok_or(MemblockError::Overflow)?;
        let mut i = 0;
        while i < self.cnt {
            let r = self.regions[i];
            if r.end() <= base || r.base >= end {
                i += 1;
                continue;
            }
            let left = (r.base < base).then(|| Region {
                base: r.base,
                size: base - r.base,
                nid: r.nid,
            });
            let right = (r.end() > end).then(|| Region {
                base: end,
                size: r.end() - end,
                nid: r.nid,
            });
            self.remove_at(i);
            if let Some(l) = left {
                self.insert_at(i, l)?;
                i += 1;
            }
            if let Some(rt) = right {
                self.insert_at(i, rt)?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Set the node of every byte in `[base, base+size)` (splitting ranges at the edges).
    pub fn set_node(&mut self, base: u64, size: u64, nid: u8) -> Result<(), MemblockError> {
        let end = base.checked_add(size).ok_or(MemblockError::Overflow)?;
        // Split at base and end, then retag.
        for at in [base, end] {
            if let Some(i) = self
                .regions()
                .iter()
                .position(|r| r.base < at && at < r.end())
            {
                let r = self.regions[i];
                self.regions[i].size = at - r.base;
                self.insert_at(
                    i + 1,
                    Region {
                        base: at,
                        size: r.end() - at,
                        nid: r.nid,
                    },
                )?;
            }
        }
        for r in &mut self.regions[..self.cnt] {
            if r.base >= base && r.end() <= end {
                r.nid = nid;
            }
        }
        self.merge();
        Ok(())
    }

    /// Join adjacent ranges of the same node.
    fn merge(&mut self) {
        let mut i = 0;
        while i + 1 < self.cnt {
            let (a, b) = (self.regions[i], self.regions[i + 1]);
            if a.end() == b.base && a.nid == b.nid {
                self.regions[i].size += b.size;
                self.remove_at(i + 1);
            } else {
                i += 1;
            }
        }
    }

    /// Whether any byte of `[base, base+size)` is in the set.
    pub fn overlaps(&self, base: u64, size: u64) -> bool {
        let end = base.saturating_add(size);
        self.regions()
            .iter()
            .any(|r| r.base < end && base < r.end())
    }
}

/// The boot memory allocator.
#[derive(Clone, Debug, Default)]
pub struct Memblock {
    /// RAM.
    pub memory: RegionSet,
    /// In use.
    pub reserved: RegionSet,
}

impl Memblock {
    pub const fn new() -> Self {
        Memblock {
            memory: RegionSet::new(),
            reserved: RegionSet::new(),
        }
    }

    /// Register RAM (`memblock_add`).
    pub fn add(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.memory.add(base, size)
    }

    /// Mark memory in use (`memblock_reserve`).
    pub fn reserve(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.reserved.add(base, size)
    }

    /// Give reserved memory back (`memblock_phys_free`).
    pub fn free(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.reserved.remove(base, size)
    }

    /// Free ranges (`for_each_free_mem_range`): RAM minus reserved, lowest first, each with
    /// its node.
    pub fn free_ranges(&self) -> FreeRanges<'_> {
        FreeRanges {
            mb: self,
            mem_idx: 0,
            cursor: 0,
        }
    }

    /// Bytes of free memory.
    pub fn free_bytes(&self) -> u64 {
        self.free_ranges().map(|r| r.size).sum()
    }

    /// Allocate `size` bytes aligned to `align` (a power of two) inside `[min, max)`, from
    /// the highest free address down (`memblock_phys_alloc_range`), and reserve them.
    pub fn alloc_range(&mut self, size: u64, align: u64, min: u64, max: u64) -> Option<PhysAddr> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let mut best = None;
        for r in self.free_ranges() {
            let lo = r.base.max(min);
            let hi = r.end().min(max);
            if hi <= lo || hi - lo < size {
                continue;
            }
            let start = (hi - size) & !(align - 1);
            if start >= lo {
                best = Some(start); // ranges ascend: the last fit is the highest
            }
        }
        let start = best?;
        self.reserve(start, size).ok()?;
        Some(PhysAddr::new(start))
    }
}

/// Iterator over `memory - reserved`.
pub struct FreeRanges<'a> {
    mb: &'a Memblock,
    mem_idx: usize,
    cursor: u64,
}

impl Iterator for FreeRanges<'_> {
    type Item = Region;

    fn next(&mut self) -> Option<Region> {
        let mem = self.mb.memory.regions();
        let res = self.mb.reserved.regions();
        while let Some(m) = mem.get(self.mem_idx) {
            let start = self.cursor.max(m.base);
            if start >= m.end() {
                self.mem_idx += 1;
                continue;
            }
            // First reserved range ending after `start`.
            let i = res.partition_point(|r| r.end() <= start);
            match res.get(i) {
                Some(r) if r.base <= start => {
                    self.cursor = r.end();
                }
                other => {
                    let end = other.map_or(m.end(), |r| r.base.min(m.end()));
                    self.cursor = end;
                    return Some(Region {
                        base: start,
                        size: end - start,
                        nid: m.nid,
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn add_merges_and_remove_splits() {
        let mut s = RegionSet::new();
        s.add(0x1000, 0x1000).unwrap();
        s.add(0x3000, 0x1000).unwrap();
        s.add(0x2000, 0x1000).unwrap();
        assert_eq!(s.regions().len(), 1);
        assert_eq!((s.regions()[0].base, s.regions()[0].size), (0x1000, 0x3000));
        s.add(0x1800, 0x4000).unwrap();
        assert_eq!(
            (s.regions()[0].base, s.regions()[0].end()),
            (0x1000, 0x5800)
        );
        s.remove(0x2000, 0x1000).unwrap();
        let r: Vec<_> = s.regions().iter().map(|r| (r.base, r.end())).collect();
        assert_eq!(r, [(0x1000, 0x2000), (0x3000, 0x5800)]);
    }

    #[test]
    fn free_ranges_and_top_down_alloc() {
        let mut mb = Memblock::new();
        mb.add(0x1000, 0x9e000).unwrap();
        mb.add(0x100000, 0x7ee0000).unwrap();
        mb.reserve(0x200000, 0x100000).unwrap();
        let f: Vec<_> = mb.free_ranges().map(|r| (r.base, r.end())).collect();
        assert_eq!(
            f,
            [
                (0x1000, 0x9f000),
                (0x100000, 0x200000),
                (0x300000, 0x7fe0000)
            ]
        );
        let a = mb.alloc_range(0x3000, 0x1000, 0, u64::MAX).unwrap();
        assert_eq!(a.as_u64(), 0x7fe0000 - 0x3000);
        let b = mb.alloc_range(0x200000, 0x200000, 0, 0x1000000).unwrap();
        assert_eq!(b.as_u64(), 0xe00000);
        assert!(mb.alloc_range(0x1_0000_0000, 0x1000, 0, u64::MAX).is_none());
        assert_eq!(
            mb.free_bytes(),
            0x9e000 + 0x100000 + 0x7ce0000 - 0x3000 - 0x200000
        );
    }

    #[test]
    fn set_node_splits_and_tags() {
        let mut s = RegionSet::new();
        s.add(0, 0x10000).unwrap();
        s.set_node(0x8000, 0x8000, 1).unwrap();
        let r: Vec<_> = s
            .regions()
            .iter()
            .map(|r| (r.base, r.end(), r.nid))
            .collect();
        assert_eq!(r, [(0, 0x8000, 0), (0x8000, 0x10000, 1)]);
    }

    #[test]
    fn capacity_is_an_error_not_a_panic() {
        let mut s = RegionSet::new();
        for i in 0..MEMBLOCK_REGIONS as u64 {
            s.add(i * 0x2000, 0x1000).unwrap();
        }
        assert_eq!(
            s.add(MEMBLOCK_REGIONS as u64 * 0x2000, 0x1000),
            Err(MemblockError::TooManyRegions)
        );
        assert_eq!(s.add(u64::MAX, 2), Err(MemblockError::Overflow));
    }

    proptest! {
        /// The set equals a page bitmap model after any add/remove sequence, stays sorted,
        /// disjoint and merged, and free ranges = memory minus reserved.
        #[test]
        fn matches_bitmap_model(ops in proptest::collection::vec((any::<bool>(), 0u64..64, 1u64..16), 1..60)) {
            let mut mb = Memblock::new();
            mb.add(0, 48 * 0x1000).unwrap();
            let mut mem = [false; 80];
            let mut res = [false; 80];
            for p in &mut mem[..48] { *p = true; }
            for (reserve, start, len) in ops {
                let end = (start + len).min(80);
                if reserve {
                    mb.reserve(start * 0x1000, (end - start) * 0x1000).unwrap();
                    for p in &mut res[start as usize..end as usize] { *p = true; }
                } else {
                    mb.free(start * 0x1000, (end - start) * 0x1000).unwrap();
                    for p in &mut res[start as usize..end as usize] { *p = false; }
                }
            }
            let rs = mb.reserved.regions();
            for w in rs.windows(2) { prop_assert!(w[0].end() < w[1].base); }
            let mut model_res = [false; 80];
            for r in rs { for p in r.base / 0x1000..r.end() / 0x1000 { model_res[p as usize] = true; } }
            prop_assert_eq!(model_res, res);
            let mut free = [false; 80];
            for r in mb.free_ranges() { for p in r.base / 0x1000..r.end() / 0x1000 { free[p as usize] = true; } }
            for p in 0..80 { prop_assert_eq!(free[p], mem[p] && !res[p]); }
        }
    }
}
