//! Mapping file blocks to disk blocks through direct and indirect pointers (Linux's
//! `ext2_get_block`), truncation (`ext2_truncate_blocks`), and file data through `BlockIo`.

use alloc::vec::Vec;

use crate::inode::Inode;
use crate::layout::*;
use crate::super_::Ext2;
use crate::{le32, put32, BlockIo, Errno};

/// Result of mapping one file block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// The disk block.
    pub block: u64,
    /// Allocated by this call: its contents are stale, and the caller (the page cache) must
    /// zero whatever it does not write (Linux's `buffer_new`).
    pub new: bool,
}

/// The path to a file block: the slot in `i_block` and the index at each indirect level.
struct Path {
    offsets: [usize; 4],
    depth: usize,
}

impl<B: BlockIo> Ext2<B> {
    fn block_path(&self, fblk: u64) -> Result<Path, Errno> {
        let apb = self.geo.apb();
        let ndir = EXT2_NDIR_BLOCKS as u64;
        let mut p = Path {
            offsets: [0; 4],
            depth: 1,
        };
        if fblk < ndir {
            p.offsets[0] = fblk as usize;
            return Ok(p);
        }
        let mut rest = fblk - ndir;
        let mut span = apb;
        for (level, slot) in [EXT2_IND_BLOCK, EXT2_DIND_BLOCK, EXT2_TIND_BLOCK]
            .into_iter()
            .enumerate()
        {
            if rest < span {
                p.offsets[0] = slot;
                p.depth = level + 2;
                // Indices from the top level down.
                let mut r = rest;
                for d in (1..p.depth).rev() {
                    p.offsets[d] = (r % apb) as usize;
                    r /= apb;
                }
                return Ok(p);
            }
            rest -= span;
            span *= apb;
        }
        Err(Errno::EFBIG)
    }

    /// The goal for a new block in the inode's pointer array at `slot`: after the nearest
    /// mapped block before it, else the start of the inode's group (Linux's
    /// `ext2_find_near` without the per-process colour).
    fn goal_in_inode(&self, ino: u32, inode: &Inode, slot: usize) -> u64 {
        if let Some(&b) = inode.block[..slot].iter().rev().find(|&&b| b != 0) {
            return u64::from(b) + 1;
        }
        let g = (ino - 1) / self.geo.inodes_per_group;
        self.geo.group_first_block(g)
    }

    fn add_sectors(&mut self, inode: &mut Inode) -> Result<(), Errno> {
        inode.blocks = inode
            .blocks
            .checked_add(self.geo.sectors_per_block())
            .ok_or(Errno::EFBIG)?;
        Ok(())
    }

    /// Maps file block `fblk` of `inode` (in memory; the caller writes it back), allocating
    /// the data block and any missing indirect blocks when `create` is set. New indirect
    /// blocks are zeroed; new data blocks are not (see [`Mapped::new`]).
    pub(crate) fn map_block(
        &mut self,
        ino: u32,
        inode: &mut Inode,
        fblk: u64,
        create: bool,
    ) -> Result<Option<Mapped>, Errno> {
        if !inode.has_block_map(self.geo.block_size) {
            return Err(Errno::EINVAL);
        }
        if create {
            self.check_rw()?;
            if fblk
                >= self
                    .geo
                    .max_file_size()
                    .div_ceil(u64::from(self.geo.block_size))
            {
                return Err(Errno::EFBIG);
            }
        }
        let path = self.block_path(fblk)?;
        let slot = path.offsets[0];
        let mut new = false;
        let mut ptr = inode.block[slot];
        if ptr == 0 {
            if !create {
                return Ok(None);
            }
            let goal = self.goal_in_inode(ino, inode, slot);
            ptr = self.alloc_block(goal)?;
            if path.depth > 1 {
                self.io.write_block(ptr.into(), &self.block_buf())?;
            }
            inode.block[slot] = ptr;
            self.add_sectors(inode)?;
            new = path.depth == 1;
        }
        let mut blk = self.check_block(ptr)?;
        let mut buf = self.block_buf();
        for level in 1..path.depth {
            let ind = blk;
            self.io.read_block(ind, &mut buf)?;
            let idx = path.offsets[level];
            let mut p = le32(&buf, idx * 4);
            if p == 0 {
                if !create {
                    return Ok(None);
                }
                // Goal: after the nearest mapped pointer before this one, else after the
                // indirect block itself.
                let goal = (0..idx)
                    .rev()
                    .map(|i| le32(&buf, i * 4))
                    .find(|&b| b != 0)
                    .map_or(ind + 1, |b| u64::from(b) + 1);
                p = self.alloc_block(goal)?;
                let last = level + 1 == path.depth;
                if !last {
                    self.io.write_block(p.into(), &self.block_buf())?;
                }
                put32(&mut buf, idx * 4, p);
                self.io.write_block(ind, &buf)?;
                self.add_sectors(inode)?;
                new = last;
            }
            blk = self.check_block(p)?;
        }
        Ok(Some(Mapped { block: blk, new }))
    }

    /// Maps block `file_block` of inode `ino` to a disk block, for the page cache (Linux's
    /// `ext2_get_block`). `None` is a hole (reads as zeros). With `create`, allocates the
    /// block (near the previous one or in the inode's group) and missing indirect blocks
    /// (zeroed), and accounts them in `i_blocks`; `i_size` is the caller's (see
    /// [`Ext2::truncate`] to set it).
    pub fn get_block(
        &mut self,
        ino: u32,
        file_block: u64,
        create: bool,
    ) -> Result<Option<Mapped>, Errno> {
        let mut inode = self.read_inode(ino)?;
        let before = inode.clone();
        let r = self.map_block(ino, &mut inode, file_block, create);
        if inode != before {
            // Blocks may have been attached even if a later step failed.
            self.write_inode(ino, &inode)?;
        }
        r
    }

    /// Frees every block from file block `first` on, and the indirect blocks left empty
    /// (Linux's `ext2_truncate_blocks`). Keeps going past damaged pointers (they are
    /// recorded as errors and skipped) and returns the first error.
    pub(crate) fn free_blocks_from(&mut self, inode: &mut Inode, first: u64) -> Result<(), Errno> {
        let mut result = Ok(());
        let note = |r: Result<(), Errno>, result: &mut Result<(), Errno>| {
            if result.is_ok() {
                *result = r;
            }
        };
        for slot in (first.min(EXT2_NDIR_BLOCKS as u64) as usize)..EXT2_NDIR_BLOCKS {
            let b = inode.block[slot];
            if b != 0 {
                inode.block[slot] = 0;
                let r = self.free_counted(inode, b);
                note(r, &mut result);
            }
        }
        let apb = self.geo.apb();
        let mut base = EXT2_NDIR_BLOCKS as u64;
        let mut span = apb;
        for (level, slot) in [EXT2_IND_BLOCK, EXT2_DIND_BLOCK, EXT2_TIND_BLOCK]
            .into_iter()
            .enumerate()
        {
            let b = inode.block[slot];
            if b != 0 && first < base + span {
                let start = first.saturating_sub(base);
                match self.free_subtree(inode, b, level as u32 + 1, start) {
                    Ok(true) => {
                        inode.block[slot] = 0;
                        let r = self.free_counted(inode, b);
                        note(r, &mut result);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        // A damaged subtree is dropped from the inode without freeing
                        // (a leak e2fsck recovers, rather than a double free).
                        inode.block[slot] = 0;
                        note(Err(e), &mut result)
                    }
                }
            }
            base += span;
            span *= apb;
        }
        result
    }

    /// Frees a block the inode held and takes it off `i_blocks`.
    fn free_counted(&mut self, inode: &mut Inode, b: u32) -> Result<(), Errno> {
        inode.blocks = inode.blocks.saturating_sub(self.geo.sectors_per_block());
        self.free_block(b.into())
    }

    /// Frees the blocks an indirect block of `level` (1 = single) maps from index `start`
    /// (in data blocks below it) on. Returns whether the indirect block is now empty, for
    /// the caller to free it. A pointer outside the data zone is cleared without freeing.
    fn free_subtree(
        &mut self,
        inode: &mut Inode,
        blk: u32,
        level: u32,
        start: u64,
    ) -> Result<bool, Errno> {
        let ind = self.check_block(blk)?;
        let mut buf = self.block_buf();
        self.io.read_block(ind, &mut buf)?;
        let apb = self.geo.apb();
        let per_child = apb.pow(level - 1);
        let first_child = (start / per_child) as usize;
        let mut changed = false;
        let mut result = Ok(());
        for c in first_child..apb as usize {
            let p = le32(&buf, c * 4);
            if p == 0 {
                continue;
            }
            let free_it = if level == 1 {
                true
            } else {
                let child_start = if c == first_child {
                    start % per_child
                } else {
                    0
                };
                match self.free_subtree(inode, p, level - 1, child_start) {
                    Ok(empty) => empty,
                    Err(e) => {
                        if result.is_ok() {
                            result = Err(e);
                        }
                        // A damaged child is dropped from the tree without freeing.
                        put32(&mut buf, c * 4, 0);
                        changed = true;
                        false
                    }
                }
            };
            if free_it {
                put32(&mut buf, c * 4, 0);
                changed = true;
                if let Err(e) = self.free_counted(inode, p) {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        let empty = buf.chunks_exact(4).all(|w| w == [0, 0, 0, 0]);
        if changed && !empty {
            self.io.write_block(ind, &buf)?;
        }
        result.map(|()| empty)
    }

    /// Sets a regular file's size (`truncate(2)`, and how the caller extends `i_size` after
    /// writing past the end). Shrinking frees the blocks past the new end, and the
    /// indirect blocks left empty. With `zero_tail`, the rest of the new last block is
    /// zeroed on disk through `BlockIo` (Linux's `block_truncate_page`); a caller with a
    /// page cache zeroes its cached page instead and passes `false`. Updates mtime/ctime.
    pub fn truncate(&mut self, ino: u32, new_size: u64, zero_tail: bool) -> Result<(), Errno> {
        self.check_rw()?;
        let mut inode = self.read_inode(ino)?;
        if inode.is_dir() {
            return Err(Errno::EISDIR);
        }
        if !inode.is_reg() {
            return Err(Errno::EINVAL);
        }
        if new_size > self.geo.max_file_size() {
            return Err(Errno::EFBIG);
        }
        let bs = u64::from(self.geo.block_size);
        if zero_tail && !new_size.is_multiple_of(bs) {
            if let Some(m) = self.map_block(ino, &mut inode, new_size / bs, false)? {
                let mut buf = self.block_buf();
                self.io.read_block(m.block, &mut buf)?;
                buf[(new_size % bs) as usize..].fill(0);
                self.io.write_block(m.block, &buf)?;
            }
        }
        inode.size = new_size;
        inode.mtime = self.now;
        inode.ctime = self.now;
        let r = self.free_blocks_from(&mut inode, new_size.div_ceil(bs));
        self.write_inode(ino, &inode)?;
        r
    }

    /// Reads file data at `offset` through `BlockIo`, holes as zeros. Returns the bytes
    /// read (0 at or past the end). For regular files, directories and slow symlinks.
    pub fn read_file(&mut self, ino: u32, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut inode = self.read_inode(ino)?;
        if offset >= inode.size {
            return Ok(0);
        }
        let n = (inode.size - offset).min(buf.len() as u64) as usize;
        let bs = u64::from(self.geo.block_size);
        let mut block = self.block_buf();
        let mut done = 0usize;
        while done < n {
            let pos = offset + done as u64;
            let in_blk = (pos % bs) as usize;
            let chunk = (bs as usize - in_blk).min(n - done);
            match self.map_block(ino, &mut inode, pos / bs, false)? {
                Some(m) => {
                    self.io.read_block(m.block, &mut block)?;
                    buf[done..done + chunk].copy_from_slice(&block[in_blk..in_blk + chunk]);
                }
                None => buf[done..done + chunk].fill(0),
            }
            done += chunk;
        }
        Ok(n)
    }

    /// Writes file data at `offset` through `BlockIo`, allocating blocks and extending
    /// `i_size`; updates mtime/ctime. Returns the bytes written: short if the disk fills
    /// after some were written (then the next call fails with `ENOSPC`), as `write(2)`.
    pub fn write_file(&mut self, ino: u32, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        self.check_rw()?;
        let mut inode = self.read_inode(ino)?;
        if inode.is_dir() {
            return Err(Errno::EISDIR);
        }
        if !inode.is_reg() {
            return Err(Errno::EINVAL);
        }
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        if end > self.geo.max_file_size() {
            return Err(Errno::EFBIG);
        }
        let bs = u64::from(self.geo.block_size);
        let mut block: Vec<u8> = self.block_buf();
        let mut done = 0usize;
        let mut err = None;
        while done < data.len() {
            let pos = offset + done as u64;
            let in_blk = (pos % bs) as usize;
            let chunk = (bs as usize - in_blk).min(data.len() - done);
            let m = match self.map_block(ino, &mut inode, pos / bs, true) {
                Ok(Some(m)) => m,
                // `create` never maps to a hole; treated as an I/O error, not a panic.
                Ok(None) => {
                    err = Some(Errno::EIO);
                    break;
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            if chunk < bs as usize {
                if m.new {
                    block.fill(0);
                } else if let Err(e) = self.io.read_block(m.block, &mut block) {
                    err = Some(e);
                    break;
                }
            }
            block[in_blk..in_blk + chunk].copy_from_slice(&data[done..done + chunk]);
            if let Err(e) = self.io.write_block(m.block, &block) {
                err = Some(e);
                break;
            }
            done += chunk;
        }
        let new_end = offset + done as u64;
        if new_end > inode.size {
            inode.size = new_end;
        }
        if done > 0 {
            inode.mtime = self.now;
            inode.ctime = self.now;
        }
        self.write_inode(ino, &inode)?;
        match err {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }
}
