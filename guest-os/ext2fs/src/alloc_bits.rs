//! Block and inode allocation through the per-group bitmaps (Linux's `balloc.c` and
//! `ialloc.c`, without reservation windows or preallocation).
//!
//! Group descriptor counts are trusted to skip full groups, but a bitmap that disagrees
//! (a "free" bit on a metadata block, freeing a block that is already free) is recorded as
//! a file-system error and never followed.

use crate::layout::{EXT2_ROOT_INO, EXT2_TOPDIR_FL};
use crate::super_::Ext2;
use crate::{BlockIo, Errno};

fn test_bit(bm: &[u8], i: u32) -> bool {
    bm[(i / 8) as usize] & (1 << (i % 8)) != 0
}
fn set_bit(bm: &mut [u8], i: u32) {
    bm[(i / 8) as usize] |= 1 << (i % 8);
}
fn clear_bit(bm: &mut [u8], i: u32) {
    bm[(i / 8) as usize] &= !(1 << (i % 8));
}

impl<B: BlockIo> Ext2<B> {
    /// Whether `blk` is group metadata: a superblock or descriptor copy (including the
    /// blocks reserved for descriptor growth), a bitmap or the inode table (Linux's
    /// "system zone").
    pub(crate) fn is_metadata(&self, blk: u64) -> bool {
        let geo = &self.geo;
        let rel_all = blk - u64::from(geo.first_data_block);
        let g = (rel_all / u64::from(geo.blocks_per_group)) as u32;
        let rel = rel_all % u64::from(geo.blocks_per_group);
        if geo.has_super(g)
            && rel < 1 + u64::from(geo.gdt_blocks) + u64::from(geo.reserved_gdt_blocks)
        {
            return true;
        }
        let grp = &self.groups[g as usize];
        let it = u64::from(grp.inode_table);
        blk == u64::from(grp.block_bitmap)
            || blk == u64::from(grp.inode_bitmap)
            || (blk >= it && blk < it + u64::from(geo.inode_table_blocks))
    }

    /// Whether `blk` may hold file data or an indirect/directory block.
    pub(crate) fn is_data_block(&self, blk: u64) -> bool {
        blk >= u64::from(self.geo.first_data_block)
            && blk < u64::from(self.geo.blocks_count)
            && !self.is_metadata(blk)
    }

    /// `Ok(blk)` for a valid data block number read from disk, else a recorded error.
    pub(crate) fn check_block(&mut self, blk: u32) -> Result<u64, Errno> {
        let b = u64::from(blk);
        if self.is_data_block(b) {
            Ok(b)
        } else {
            Err(self.fs_error())
        }
    }

    /// Allocates a block, searching from `goal` to the end of its group and then the other
    /// groups in order (Linux searches the goal group and then the others too, preferring
    /// a free byte; this takes the first free bit).
    pub(crate) fn alloc_block(&mut self, goal: u64) -> Result<u32, Errno> {
        self.check_rw()?;
        let geo = self.geo.clone();
        let goal = if goal >= u64::from(geo.first_data_block) && goal < u64::from(geo.blocks_count)
        {
            goal
        } else {
            u64::from(geo.first_data_block)
        };
        let rel = goal - u64::from(geo.first_data_block);
        let g0 = (rel / u64::from(geo.blocks_per_group)) as u32;
        let mut bm = self.block_buf();
        // groups + 1 visits: the goal group first from the goal, last from its start.
        for i in 0..=geo.groups {
            let g = (g0 + i) % geo.groups;
            if self.groups[g as usize].free_blocks == 0 {
                continue;
            }
            let start = if i == 0 {
                (rel % u64::from(geo.blocks_per_group)) as u32
            } else {
                0
            };
            let bitmap_blk = u64::from(self.groups[g as usize].block_bitmap);
            self.io.read_block(bitmap_blk, &mut bm)?;
            let first = geo.group_first_block(g);
            for bit in start..geo.blocks_in_group(g) {
                if test_bit(&bm, bit) {
                    continue;
                }
                let blk = first + u64::from(bit);
                if self.is_metadata(blk) {
                    // "Allocating block in system zone": the bitmap is wrong.
                    self.fs_error();
                    self.check_rw()?;
                    continue;
                }
                set_bit(&mut bm, bit);
                self.io.write_block(bitmap_blk, &bm)?;
                let grp = &mut self.groups[g as usize];
                grp.free_blocks = grp.free_blocks.saturating_sub(1);
                self.write_group(g)?;
                return Ok(blk as u32);
            }
        }
        Err(Errno::ENOSPC)
    }

    /// Frees a block. A block outside the data zone or already free is a recorded error
    /// and is left alone.
    pub(crate) fn free_block(&mut self, blk: u64) -> Result<(), Errno> {
        self.check_rw()?;
        if !self.is_data_block(blk) {
            return Err(self.fs_error());
        }
        let rel = blk - u64::from(self.geo.first_data_block);
        let g = (rel / u64::from(self.geo.blocks_per_group)) as u32;
        let bit = (rel % u64::from(self.geo.blocks_per_group)) as u32;
        let bitmap_blk = u64::from(self.groups[g as usize].block_bitmap);
        let mut bm = self.block_buf();
        self.io.read_block(bitmap_blk, &mut bm)?;
        if !test_bit(&bm, bit) {
            // "bit already cleared for block".
            return Err(self.fs_error());
        }
        clear_bit(&mut bm, bit);
        self.io.write_block(bitmap_blk, &bm)?;
        let max = self.geo.blocks_in_group(g).min(u32::from(u16::MAX)) as u16;
        let grp = &mut self.groups[g as usize];
        grp.free_blocks = grp.free_blocks.saturating_add(1).min(max);
        self.write_group(g)
    }

    /// Groups to try for a new inode, best first. Directories: Linux's Orlov allocator
    /// ([`Self::orlov_group`]). Other inodes: `find_group_other` (the parent's group if it
    /// has free inodes and blocks, then a quadratic hash from it, then any group with a
    /// free inode).
    fn inode_group_order(
        &self,
        parent: u32,
        parent_group: u32,
        parent_flags: u32,
        is_dir: bool,
    ) -> alloc::vec::Vec<u32> {
        let n = self.geo.groups;
        let mut order: alloc::vec::Vec<u32> = alloc::vec::Vec::with_capacity(n as usize * 2);
        if is_dir {
            order.extend(self.orlov_group(parent, parent_group, parent_flags));
        } else {
            let ok = |g: u32| {
                let grp = &self.groups[g as usize];
                grp.free_inodes > 0 && grp.free_blocks > 0
            };
            if ok(parent_group) {
                order.push(parent_group);
            }
            let mut g = parent_group;
            let mut step = 1u32;
            while step < n {
                g = (g + step) % n;
                if ok(g) {
                    order.push(g);
                }
                step <<= 1;
            }
        }
        // Fall back to every group with a free inode, starting at the parent's.
        for i in 0..n {
            let g = (parent_group + i) % n;
            if self.groups[g as usize].free_inodes > 0 {
                order.push(g);
            }
        }
        order
    }

    /// Linux's `find_group_orlov` for a new directory. Top-level directories (in the root,
    /// or under a directory flagged `EXT2_TOPDIR_FL`) are spread: the group with the fewest
    /// directories among those with at least the average free inodes and blocks, searched
    /// from a pseudo-random group (Linux uses a random one; this uses the inode generation
    /// counter, so runs are reproducible). Other directories stay near their parent: the
    /// first group from the parent's that is not crowded with directories and not short of
    /// free inodes or blocks. Linux also keeps per-group "debts" of directories without
    /// files; those are not kept here.
    fn orlov_group(&self, parent: u32, parent_group: u32, parent_flags: u32) -> Option<u32> {
        let n = self.geo.groups;
        let ipg = u64::from(self.geo.inodes_per_group);
        let bpg = u64::from(self.geo.blocks_per_group);
        let avefreei = self.free_inodes_total() / u64::from(n);
        let avefreeb = self.free_blocks_total() / u64::from(n);
        let ndirs: u64 = self.groups.iter().map(|g| u64::from(g.used_dirs)).sum();
        let grp = |g: u32| &self.groups[g as usize];
        if parent == EXT2_ROOT_INO || parent_flags & EXT2_TOPDIR_FL != 0 {
            let start = self.next_generation % n;
            let mut best: Option<u32> = None;
            let mut best_ndir = ipg;
            for i in 0..n {
                let g = (start + i) % n;
                let d = grp(g);
                if d.free_inodes == 0
                    || u64::from(d.used_dirs) >= best_ndir
                    || u64::from(d.free_inodes) < avefreei
                    || u64::from(d.free_blocks) < avefreeb
                {
                    continue;
                }
                best = Some(g);
                best_ndir = u64::from(d.used_dirs);
            }
            if best.is_some() {
                return best;
            }
        } else {
            let max_dirs = ndirs.max(1) / u64::from(n) + ipg / 16;
            let min_inodes = avefreei.saturating_sub(ipg / 4);
            let min_blocks = avefreeb.saturating_sub(bpg / 4);
            for i in 0..n {
                let g = (parent_group + i) % n;
                let d = grp(g);
                if d.free_inodes != 0
                    && u64::from(d.used_dirs) < max_dirs
                    && u64::from(d.free_inodes) >= min_inodes
                    && u64::from(d.free_blocks) >= min_blocks
                {
                    return Some(g);
                }
            }
        }
        // Fallback: a group with at least the average free inodes, then any.
        for floor in [avefreei, 0] {
            for i in 0..n {
                let g = (parent_group + i) % n;
                let d = grp(g);
                if d.free_inodes > 0 && u64::from(d.free_inodes) >= floor {
                    return Some(g);
                }
            }
        }
        None
    }

    /// Takes a free inode number near `parent` and updates the bitmap and counts
    /// (`bg_used_dirs_count` for directories). The inode itself is not touched.
    pub(crate) fn alloc_inode_number(
        &mut self,
        parent: u32,
        parent_flags: u32,
        is_dir: bool,
    ) -> Result<u32, Errno> {
        self.check_rw()?;
        let ipg = self.geo.inodes_per_group;
        let parent_group = (parent.max(1) - 1) / ipg % self.geo.groups;
        let candidates = self.inode_group_order(parent, parent_group, parent_flags, is_dir);
        let mut bm = self.block_buf();
        for g in candidates {
            if self.groups[g as usize].free_inodes == 0 {
                continue;
            }
            let bitmap_blk = u64::from(self.groups[g as usize].inode_bitmap);
            self.io.read_block(bitmap_blk, &mut bm)?;
            for bit in 0..ipg {
                if test_bit(&bm, bit) {
                    continue;
                }
                let ino = g * ipg + bit + 1;
                if ino < self.geo.first_ino {
                    // A reserved inode marked free: the bitmap is wrong.
                    self.fs_error();
                    self.check_rw()?;
                    continue;
                }
                set_bit(&mut bm, bit);
                self.io.write_block(bitmap_blk, &bm)?;
                let grp = &mut self.groups[g as usize];
                grp.free_inodes = grp.free_inodes.saturating_sub(1);
                if is_dir {
                    grp.used_dirs = grp.used_dirs.saturating_add(1);
                }
                self.write_group(g)?;
                return Ok(ino);
            }
        }
        Err(Errno::ENOSPC)
    }

    /// Returns an inode number to the bitmap (Linux's `ext2_free_inode`).
    pub(crate) fn free_inode_number(&mut self, ino: u32, is_dir: bool) -> Result<(), Errno> {
        self.check_rw()?;
        if ino < self.geo.first_ino || ino > self.geo.inodes_count {
            return Err(self.fs_error());
        }
        let ipg = self.geo.inodes_per_group;
        let g = (ino - 1) / ipg;
        let bit = (ino - 1) % ipg;
        let bitmap_blk = u64::from(self.groups[g as usize].inode_bitmap);
        let mut bm = self.block_buf();
        self.io.read_block(bitmap_blk, &mut bm)?;
        if !test_bit(&bm, bit) {
            return Err(self.fs_error());
        }
        clear_bit(&mut bm, bit);
        self.io.write_block(bitmap_blk, &bm)?;
        let max = ipg.min(u32::from(u16::MAX)) as u16;
        let grp = &mut self.groups[g as usize];
        grp.free_inodes = grp.free_inodes.saturating_add(1).min(max);
        if is_dir {
            grp.used_dirs = grp.used_dirs.saturating_sub(1);
        }
        self.write_group(g)
    }
}
