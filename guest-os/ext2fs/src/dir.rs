//! Directories (Linux's `fs/ext2/dir.c`) and the name-space operations (`namei.c`):
//! lookup, readdir, create, mknod, mkdir, symlink, link, unlink, rmdir, rename, readlink.
//!
//! A directory is a sequence of blocks, each fully covered by entries: inode (0 = unused),
//! `rec_len` (4-byte aligned, at least the entry's own size, never crossing the block),
//! name length, file type (with the FILETYPE feature) and the name. Every block is checked
//! (`ext2_check_page`) before use; a bad one is `EUCLEAN`.
//!
//! An htree-indexed directory (`EXT2_INDEX_FL`, written by e2fsck -D or ext3/4) is read
//! linearly: the index blocks look like empty entries to a linear reader, by design of the
//! format. Any modification clears the flag, as Linux's ext2 does, so the stale index is
//! never trusted by another implementation.
//!
//! The VFS keeps the rules that need the whole tree or the caller's identity: permission
//! checks, refusing to move a directory into its own subtree, and sticky directories.

use alloc::vec;
use alloc::vec::Vec;

use crate::inode::{Inode, Owner};
use crate::layout::*;
use crate::super_::Ext2;
use crate::{le16, le32, put16, put32, BlockIo, Errno};

/// One entry handed to a [`Ext2::readdir`] callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    pub ino: u32,
    pub name: &'a [u8],
    /// `FT_*` from the entry, `FT_UNKNOWN` without the FILETYPE feature
    /// ([`crate::layout::ft_to_dtype`] gives the `d_type`).
    pub file_type: u8,
    /// Directory offset of this entry.
    pub pos: u64,
    /// Directory offset to resume after this entry.
    pub next_pos: u64,
}

/// Where an entry is.
#[derive(Debug, Clone, Copy)]
struct Slot {
    blk: u64,
    off: usize,
    ino: u32,
}

/// Fields of the entry at `off` of a checked block: (inode, rec_len, name_len).
fn entry_at(buf: &[u8], off: usize) -> (u32, usize, usize) {
    (
        le32(buf, off + DE_INODE),
        usize::from(le16(buf, off + DE_REC_LEN)),
        usize::from(buf[off + DE_NAME_LEN]),
    )
}

fn entry_name(buf: &[u8], off: usize) -> &[u8] {
    let len = usize::from(buf[off + DE_NAME_LEN]);
    &buf[off + DIRENT_HEADER..off + DIRENT_HEADER + len]
}

fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name.len() > EXT2_NAME_LEN {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.iter().any(|&c| c == b'/' || c == 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn is_dot_or_dotdot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl<B: BlockIo> Ext2<B> {
    /// Checks every entry of a directory block (Linux's `ext2_check_page`).
    fn check_dir_block(&mut self, buf: &[u8]) -> Result<(), Errno> {
        let bs = buf.len();
        let mut off = 0;
        while off < bs {
            if off + DIRENT_HEADER > bs {
                return Err(self.fs_error());
            }
            let (ino, rec_len, name_len) = entry_at(buf, off);
            let bad = rec_len < dir_rec_len(1)
                || rec_len % DIR_PAD != 0
                || rec_len < dir_rec_len(name_len)
                || off + rec_len > bs
                || ino > self.geo.inodes_count
                || (ino != 0 && name_len == 0);
            if bad {
                return Err(self.fs_error());
            }
            off += rec_len;
        }
        Ok(())
    }

    /// A directory inode (`ENOTDIR` otherwise).
    fn dir_inode(&mut self, dir: u32) -> Result<Inode, Errno> {
        let inode = self.iget(dir)?;
        if !inode.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(inode)
    }

    /// Blocks in a directory: its size must be whole blocks and no larger than the device.
    fn dir_blocks(&mut self, inode: &Inode) -> Result<u64, Errno> {
        let bs = u64::from(self.geo.block_size);
        if !inode.size.is_multiple_of(bs) || inode.size / bs > u64::from(self.geo.blocks_count) {
            return Err(self.fs_error());
        }
        Ok(inode.size / bs)
    }

    /// Reads and checks block `i` of directory `dir`; a hole is damage.
    fn read_dir_block(
        &mut self,
        dir: u32,
        inode: &mut Inode,
        i: u64,
        buf: &mut [u8],
    ) -> Result<u64, Errno> {
        let Some(m) = self.map_block(dir, inode, i, false)? else {
            return Err(self.fs_error());
        };
        self.io.read_block(m.block, buf)?;
        self.check_dir_block(buf)?;
        Ok(m.block)
    }

    fn find_entry(
        &mut self,
        dir: u32,
        inode: &mut Inode,
        name: &[u8],
    ) -> Result<Option<Slot>, Errno> {
        let n = self.dir_blocks(inode)?;
        let mut buf = self.block_buf();
        for i in 0..n {
            let blk = self.read_dir_block(dir, inode, i, &mut buf)?;
            let mut off = 0;
            while off < buf.len() {
                let (ino, rec_len, _) = entry_at(&buf, off);
                if ino != 0 && entry_name(&buf, off) == name {
                    return Ok(Some(Slot { blk, off, ino }));
                }
                off += rec_len;
            }
        }
        Ok(None)
    }

    /// Looks `name` up in directory `dir` (`ENOTDIR` if `dir` is not one).
    pub fn lookup(&mut self, dir: u32, name: &[u8]) -> Result<Option<u32>, Errno> {
        if name.len() > EXT2_NAME_LEN {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut inode = self.dir_inode(dir)?;
        Ok(self.find_entry(dir, &mut inode, name)?.map(|s| s.ino))
    }

    /// Lists directory `dir` from byte offset `pos` (ext2's `f_pos`), calling `emit` for
    /// each entry in use until it returns `false`. Returns the offset to resume from: that
    /// of the entry `emit` refused, or the directory's size at the end. An offset inside
    /// an entry resumes at the next entry (Linux's `ext2_validate_entry`).
    pub fn readdir(
        &mut self,
        dir: u32,
        pos: u64,
        mut emit: impl FnMut(&DirEntry<'_>) -> bool,
    ) -> Result<u64, Errno> {
        let mut inode = self.dir_inode(dir)?;
        let n = self.dir_blocks(&inode)?;
        let bs = u64::from(self.geo.block_size);
        let filetype = self.geo.has_filetype();
        let mut buf = self.block_buf();
        let mut i = pos / bs;
        let mut skip_to = (pos % bs) as usize;
        while i < n {
            self.read_dir_block(dir, &mut inode, i, &mut buf)?;
            let mut off = 0;
            while off < buf.len() {
                let (ino, rec_len, _) = entry_at(&buf, off);
                if off >= skip_to && ino != 0 {
                    let entry = DirEntry {
                        ino,
                        name: entry_name(&buf, off),
                        file_type: if filetype {
                            buf[off + DE_FILE_TYPE]
                        } else {
                            FT_UNKNOWN
                        },
                        pos: i * bs + off as u64,
                        next_pos: i * bs + (off + rec_len) as u64,
                    };
                    if !emit(&entry) {
                        return Ok(entry.pos);
                    }
                }
                off += rec_len;
            }
            skip_to = 0;
            i += 1;
        }
        Ok(inode.size.max(pos))
    }

    /// Writes an entry's fields at `off`.
    fn put_entry(&self, buf: &mut [u8], off: usize, ino: u32, rec_len: usize, name: &[u8], ft: u8) {
        put32(buf, off + DE_INODE, ino);
        put16(buf, off + DE_REC_LEN, rec_len as u16);
        buf[off + DE_NAME_LEN] = name.len() as u8;
        buf[off + DE_FILE_TYPE] = if self.geo.has_filetype() { ft } else { 0 };
        buf[off + DIRENT_HEADER..off + DIRENT_HEADER + name.len()].copy_from_slice(name);
    }

    /// A directory changed: times, and the htree index is no longer valid.
    fn dir_modified(&mut self, dir: u32, inode: &mut Inode) -> Result<(), Errno> {
        inode.mtime = self.now;
        inode.ctime = self.now;
        inode.flags &= !EXT2_INDEX_FL;
        self.write_inode(dir, inode)
    }

    /// Adds an entry (Linux's `ext2_add_link`): into the first unused entry or the slack
    /// of an entry in use that is large enough, splitting it; else into a new block.
    fn add_link(&mut self, dir: u32, name: &[u8], ino: u32, ft: u8) -> Result<(), Errno> {
        let mut dinode = self.read_inode(dir)?;
        let n = self.dir_blocks(&dinode)?;
        let need = dir_rec_len(name.len());
        let mut buf = self.block_buf();
        for i in 0..n {
            let blk = self.read_dir_block(dir, &mut dinode, i, &mut buf)?;
            let mut off = 0;
            while off < buf.len() {
                let (de_ino, rec_len, name_len) = entry_at(&buf, off);
                if de_ino != 0 && entry_name(&buf, off) == name {
                    return Err(Errno::EEXIST);
                }
                let used = if de_ino == 0 {
                    0
                } else {
                    dir_rec_len(name_len)
                };
                if rec_len >= used + need {
                    let (new_off, new_len) = if de_ino == 0 {
                        (off, rec_len)
                    } else {
                        put16(&mut buf, off + DE_REC_LEN, used as u16);
                        (off + used, rec_len - used)
                    };
                    self.put_entry(&mut buf, new_off, ino, new_len, name, ft);
                    self.io.write_block(blk, &buf)?;
                    return self.dir_modified(dir, &mut dinode);
                }
                off += rec_len;
            }
        }
        // No room: a new block holding one entry that spans it.
        let m = self.map_block(dir, &mut dinode, n, true);
        let m = match m {
            Ok(Some(m)) => m,
            other => {
                // Keep any indirect block the failed mapping attached.
                self.write_inode(dir, &dinode)?;
                return Err(other.err().unwrap_or(Errno::EIO));
            }
        };
        buf.fill(0);
        let bs = buf.len();
        self.put_entry(&mut buf, 0, ino, bs, name, ft);
        self.io.write_block(m.block, &buf)?;
        dinode.size += bs as u64;
        self.dir_modified(dir, &mut dinode)
    }

    /// Removes the entry at `slot` (Linux's `ext2_delete_entry`): merged into the previous
    /// entry of its block, or marked unused if it is the first.
    fn delete_entry(&mut self, dir: u32, slot: Slot) -> Result<(), Errno> {
        let mut buf = self.block_buf();
        self.io.read_block(slot.blk, &mut buf)?;
        self.check_dir_block(&buf)?;
        let mut prev = None;
        let mut off = 0;
        while off < slot.off {
            prev = Some(off);
            off += entry_at(&buf, off).1;
        }
        if off != slot.off {
            return Err(self.fs_error());
        }
        let rec_len = entry_at(&buf, off).1;
        if let Some(p) = prev {
            let plen = entry_at(&buf, p).1;
            put16(&mut buf, p + DE_REC_LEN, (plen + rec_len) as u16);
        }
        put32(&mut buf, off + DE_INODE, 0);
        self.io.write_block(slot.blk, &buf)?;
        let mut dinode = self.read_inode(dir)?;
        self.dir_modified(dir, &mut dinode)
    }

    /// Points the entry at `slot` to another inode (Linux's `ext2_set_link`).
    fn set_entry(
        &mut self,
        dir: u32,
        slot: Slot,
        ino: u32,
        ft: u8,
        update_times: bool,
    ) -> Result<(), Errno> {
        let mut buf = self.block_buf();
        self.io.read_block(slot.blk, &mut buf)?;
        self.check_dir_block(&buf)?;
        put32(&mut buf, slot.off + DE_INODE, ino);
        buf[slot.off + DE_FILE_TYPE] = if self.geo.has_filetype() { ft } else { 0 };
        self.io.write_block(slot.blk, &buf)?;
        let mut dinode = self.read_inode(dir)?;
        if update_times {
            self.dir_modified(dir, &mut dinode)
        } else {
            dinode.flags &= !EXT2_INDEX_FL;
            self.write_inode(dir, &dinode)
        }
    }

    /// Whether a directory holds only `.` and `..` (Linux's `ext2_empty_dir`).
    fn dir_is_empty(&mut self, ino: u32) -> Result<bool, Errno> {
        let mut inode = self.read_inode(ino)?;
        let n = self.dir_blocks(&inode)?;
        let mut buf = self.block_buf();
        for i in 0..n {
            self.read_dir_block(ino, &mut inode, i, &mut buf)?;
            let mut off = 0;
            while off < buf.len() {
                let (de_ino, rec_len, _) = entry_at(&buf, off);
                if de_ino != 0 {
                    let name = entry_name(&buf, off);
                    let ok = name == b".." || (name == b"." && de_ino == ino);
                    if !ok {
                        return Ok(false);
                    }
                }
                off += rec_len;
            }
        }
        Ok(true)
    }

    /// Checks a new name in `dir`: valid, not there yet. Returns the directory inode.
    fn prepare_new_name(&mut self, dir: u32, name: &[u8]) -> Result<Inode, Errno> {
        self.check_rw()?;
        check_name(name)?;
        let mut dinode = self.dir_inode(dir)?;
        if dinode.links_count == 0 {
            // Removed but still in use (a working directory): Linux's IS_DEADDIR.
            return Err(Errno::ENOENT);
        }
        if is_dot_or_dotdot(name) || self.find_entry(dir, &mut dinode, name)?.is_some() {
            return Err(Errno::EEXIST);
        }
        Ok(dinode)
    }

    /// Undoes a new inode whose linking failed: no links, then evicted.
    fn discard_new(&mut self, ino: u32, err: Errno) -> Errno {
        if let Ok(mut inode) = self.read_inode(ino) {
            inode.links_count = 0;
            if self.write_inode(ino, &inode).is_ok() {
                let _ = self.evict(ino);
            }
        }
        err
    }

    /// Creates a regular file (`ext2_create`). Returns its inode number.
    pub fn create(&mut self, dir: u32, name: &[u8], mode: u16, owner: Owner) -> Result<u32, Errno> {
        self.mknod(dir, name, S_IFREG | (mode & !S_IFMT), 0, owner)
    }

    /// Creates a regular file, device (`rdev` as (major << 20) | minor), fifo or socket.
    pub fn mknod(
        &mut self,
        dir: u32,
        name: &[u8],
        mode: u16,
        rdev: u32,
        owner: Owner,
    ) -> Result<u32, Errno> {
        let ft = match mode & S_IFMT {
            S_IFREG | S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK => {
                mode_to_ft(mode).unwrap_or(FT_UNKNOWN)
            }
            _ => return Err(Errno::EINVAL),
        };
        self.prepare_new_name(dir, name)?;
        let ino = self.alloc_inode(dir, mode, owner)?;
        if ft == FT_CHRDEV || ft == FT_BLKDEV {
            let mut inode = self.read_inode(ino)?;
            inode.set_rdev(rdev);
            if let Err(e) = self.write_inode(ino, &inode) {
                return Err(self.discard_new(ino, e));
            }
        }
        match self.add_link(dir, name, ino, ft) {
            Ok(()) => Ok(ino),
            Err(e) => Err(self.discard_new(ino, e)),
        }
    }

    /// Creates a directory with `.` and `..` (`ext2_mkdir`): the parent gains a link
    /// (`EMLINK` at `EXT2_LINK_MAX`), the group's `bg_used_dirs_count` one directory.
    pub fn mkdir(&mut self, dir: u32, name: &[u8], mode: u16, owner: Owner) -> Result<u32, Errno> {
        let dinode = self.prepare_new_name(dir, name)?;
        if dinode.links_count >= EXT2_LINK_MAX {
            return Err(Errno::EMLINK);
        }
        let ino = self.alloc_inode(dir, S_IFDIR | (mode & !S_IFMT), owner)?;
        if let Err(e) = self.make_empty(ino, dir) {
            return Err(self.discard_new(ino, e));
        }
        if let Err(e) = self.add_link(dir, name, ino, FT_DIR) {
            return Err(self.discard_new(ino, e));
        }
        let mut parent = self.read_inode(dir)?;
        parent.links_count = parent.links_count.saturating_add(1);
        self.write_inode(dir, &parent)?;
        Ok(ino)
    }

    /// The first block of a new directory (`ext2_make_empty`): `.` of the minimum size and
    /// `..` covering the rest.
    fn make_empty(&mut self, ino: u32, parent: u32) -> Result<(), Errno> {
        let mut inode = self.read_inode(ino)?;
        inode.links_count = 2;
        let m = self.map_block(ino, &mut inode, 0, true);
        let m = match m {
            Ok(Some(m)) => m,
            other => {
                self.write_inode(ino, &inode)?;
                return Err(other.err().unwrap_or(Errno::EIO));
            }
        };
        let mut buf = self.block_buf();
        let bs = buf.len();
        let dot = dir_rec_len(1);
        self.put_entry(&mut buf, 0, ino, dot, b".", FT_DIR);
        self.put_entry(&mut buf, dot, parent, bs - dot, b"..", FT_DIR);
        self.io.write_block(m.block, &buf)?;
        inode.size = bs as u64;
        self.write_inode(ino, &inode)
    }

    /// Creates a symbolic link (`ext2_symlink`): a target shorter than `i_block` (59
    /// bytes and its NUL fit in 60) is stored there (a fast symlink), a longer one in a
    /// data block; `ENAMETOOLONG` if it does not fit in a block.
    pub fn symlink(
        &mut self,
        dir: u32,
        name: &[u8],
        target: &[u8],
        owner: Owner,
    ) -> Result<u32, Errno> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() + 1 > self.geo.block_size as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        self.prepare_new_name(dir, name)?;
        let ino = self.alloc_inode(dir, S_IFLNK | 0o777, owner)?;
        if let Err(e) = self.fill_symlink(ino, target) {
            return Err(self.discard_new(ino, e));
        }
        match self.add_link(dir, name, ino, FT_SYMLINK) {
            Ok(()) => Ok(ino),
            Err(e) => Err(self.discard_new(ino, e)),
        }
    }

    fn fill_symlink(&mut self, ino: u32, target: &[u8]) -> Result<(), Errno> {
        let mut inode = self.read_inode(ino)?;
        if target.len() < I_BLOCK_BYTES {
            let mut bytes = [0u8; I_BLOCK_BYTES];
            bytes[..target.len()].copy_from_slice(target);
            for (i, b) in inode.block.iter_mut().enumerate() {
                *b = le32(&bytes, i * 4);
            }
        } else {
            let goal = self
                .geo
                .group_first_block((ino - 1) / self.geo.inodes_per_group);
            let blk = self.alloc_block(goal)?;
            let mut buf = self.block_buf();
            buf[..target.len()].copy_from_slice(target);
            inode.block[0] = blk;
            inode.blocks = self.geo.sectors_per_block();
            if let Err(e) = self.io.write_block(blk.into(), &buf) {
                self.write_inode(ino, &inode)?;
                return Err(e);
            }
        }
        inode.size = target.len() as u64;
        self.write_inode(ino, &inode)
    }

    /// The target of a symbolic link (`EINVAL` if `ino` is not one).
    pub fn readlink(&mut self, ino: u32) -> Result<Vec<u8>, Errno> {
        let mut inode = self.iget(ino)?;
        if !inode.is_symlink() {
            return Err(Errno::EINVAL);
        }
        let len = inode.size as usize;
        if inode.is_fast_symlink(self.geo.block_size) {
            if inode.size >= I_BLOCK_BYTES as u64 {
                return Err(self.fs_error());
            }
            let mut bytes = vec![0u8; I_BLOCK_BYTES];
            for (i, b) in inode.block.iter().enumerate() {
                put32(&mut bytes, i * 4, *b);
            }
            bytes.truncate(len);
            return Ok(bytes);
        }
        if inode.size >= u64::from(self.geo.block_size) || inode.size == 0 {
            return Err(self.fs_error());
        }
        let Some(m) = self.map_block(ino, &mut inode, 0, false)? else {
            return Err(self.fs_error());
        };
        let mut buf = self.block_buf();
        self.io.read_block(m.block, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Adds a hard link `name` in `dir` to inode `ino` (`ext2_link`): `EPERM` for a
    /// directory, `EMLINK` at `EXT2_LINK_MAX` links.
    pub fn link(&mut self, ino: u32, dir: u32, name: &[u8]) -> Result<(), Errno> {
        self.check_rw()?;
        let mut inode = self.iget(ino)?;
        if inode.is_dir() {
            return Err(Errno::EPERM);
        }
        if inode.links_count == 0 {
            // Unlinked but still open: Linux's vfs_link refuses to bring it back.
            return Err(Errno::ENOENT);
        }
        if inode.links_count >= EXT2_LINK_MAX {
            return Err(Errno::EMLINK);
        }
        self.prepare_new_name(dir, name)?;
        let ft = mode_to_ft(inode.mode).unwrap_or(FT_UNKNOWN);
        self.add_link(dir, name, ino, ft)?;
        inode = self.read_inode(ino)?;
        inode.links_count += 1;
        inode.ctime = self.now;
        self.write_inode(ino, &inode)
    }

    /// Removes `name` from `dir` (`ext2_unlink`; `EISDIR` for a directory). Returns the
    /// inode, which the caller evicts ([`Ext2::evict`]) once it is no longer open if it
    /// has no links left.
    pub fn unlink(&mut self, dir: u32, name: &[u8]) -> Result<u32, Errno> {
        self.check_rw()?;
        check_name(name)?;
        let mut dinode = self.dir_inode(dir)?;
        let slot = self
            .find_entry(dir, &mut dinode, name)?
            .ok_or(Errno::ENOENT)?;
        let mut victim = self.iget(slot.ino)?;
        if victim.is_dir() {
            return Err(Errno::EISDIR);
        }
        self.delete_entry(dir, slot)?;
        victim = self.read_inode(slot.ino)?;
        victim.links_count = victim.links_count.saturating_sub(1);
        victim.ctime = self.now;
        self.write_inode(slot.ino, &victim)?;
        Ok(slot.ino)
    }

    /// Removes the empty directory `name` from `dir` (`ext2_rmdir`): `ENOTDIR`,
    /// `ENOTEMPTY`; the parent loses a link. Returns the inode for the caller to evict.
    pub fn rmdir(&mut self, dir: u32, name: &[u8]) -> Result<u32, Errno> {
        self.check_rw()?;
        check_name(name)?;
        if name == b"." {
            return Err(Errno::EINVAL);
        }
        if name == b".." {
            return Err(Errno::ENOTEMPTY);
        }
        let mut dinode = self.dir_inode(dir)?;
        let slot = self
            .find_entry(dir, &mut dinode, name)?
            .ok_or(Errno::ENOENT)?;
        let victim = self.iget(slot.ino)?;
        if !victim.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if !self.dir_is_empty(slot.ino)? {
            return Err(Errno::ENOTEMPTY);
        }
        self.delete_entry(dir, slot)?;
        let mut victim = self.read_inode(slot.ino)?;
        // As ext2_rmdir: no links and no entries (the blocks go at eviction).
        victim.links_count = 0;
        victim.size = 0;
        victim.ctime = self.now;
        self.write_inode(slot.ino, &victim)?;
        let mut parent = self.read_inode(dir)?;
        parent.links_count = parent.links_count.saturating_sub(1);
        self.write_inode(dir, &parent)?;
        Ok(slot.ino)
    }

    /// Renames `old_dir/old_name` to `new_dir/new_name` (`ext2_rename`). An existing
    /// target is replaced: a file by a non-directory (`EISDIR` otherwise), an empty
    /// directory by a directory (`ENOTDIR`, `ENOTEMPTY` otherwise). A moved directory's
    /// `..` follows it and the parents' link counts change; `EMLINK` if the new parent is
    /// full. Renaming onto another name of the same inode does nothing. Returns the
    /// replaced inode if it lost its last link, for the caller to evict. Refusing to move a
    /// directory into its own subtree (`EINVAL`) is the VFS's job: it needs the ancestry.
    pub fn rename(
        &mut self,
        old_dir: u32,
        old_name: &[u8],
        new_dir: u32,
        new_name: &[u8],
    ) -> Result<Option<u32>, Errno> {
        self.check_rw()?;
        check_name(old_name)?;
        check_name(new_name)?;
        if is_dot_or_dotdot(old_name) || is_dot_or_dotdot(new_name) {
            return Err(Errno::EINVAL);
        }
        let mut od = self.dir_inode(old_dir)?;
        let mut nd = self.dir_inode(new_dir)?;
        if nd.links_count == 0 {
            return Err(Errno::ENOENT);
        }
        let old_slot = self
            .find_entry(old_dir, &mut od, old_name)?
            .ok_or(Errno::ENOENT)?;
        let old_ino = old_slot.ino;
        let old = self.iget(old_ino)?;
        let old_is_dir = old.is_dir();
        let ft = mode_to_ft(old.mode).unwrap_or(FT_UNKNOWN);
        let mut replaced = None;
        match self.find_entry(new_dir, &mut nd, new_name)? {
            Some(ns) => {
                if ns.ino == old_ino {
                    return Ok(None);
                }
                let victim = self.iget(ns.ino)?;
                if old_is_dir {
                    if !victim.is_dir() {
                        return Err(Errno::ENOTDIR);
                    }
                    if !self.dir_is_empty(ns.ino)? {
                        return Err(Errno::ENOTEMPTY);
                    }
                } else if victim.is_dir() {
                    return Err(Errno::EISDIR);
                }
                self.set_entry(new_dir, ns, old_ino, ft, true)?;
                let mut victim = self.read_inode(ns.ino)?;
                victim.ctime = self.now;
                let drop = if victim.is_dir() { 2 } else { 1 };
                victim.links_count = victim.links_count.saturating_sub(drop);
                self.write_inode(ns.ino, &victim)?;
                if victim.links_count == 0 {
                    replaced = Some(ns.ino);
                }
            }
            None => {
                if old_is_dir && old_dir != new_dir && nd.links_count >= EXT2_LINK_MAX {
                    return Err(Errno::EMLINK);
                }
                self.add_link(new_dir, new_name, old_ino, ft)?;
                if old_is_dir {
                    let mut nd = self.read_inode(new_dir)?;
                    nd.links_count = nd.links_count.saturating_add(1);
                    self.write_inode(new_dir, &nd)?;
                }
            }
        }
        let mut old = self.read_inode(old_ino)?;
        old.ctime = self.now;
        self.write_inode(old_ino, &old)?;
        // The old entry may have moved within its block if it shares new_dir's blocks.
        let mut od = self.read_inode(old_dir)?;
        match self.find_entry(old_dir, &mut od, old_name)? {
            Some(s) if s.ino == old_ino => self.delete_entry(old_dir, s)?,
            _ => return Err(self.fs_error()),
        }
        if old_is_dir {
            if old_dir != new_dir {
                let mut moved = self.read_inode(old_ino)?;
                match self.find_entry(old_ino, &mut moved, b"..")? {
                    Some(s) => self.set_entry(old_ino, s, new_dir, FT_DIR, false)?,
                    None => return Err(self.fs_error()),
                }
            }
            let mut od = self.read_inode(old_dir)?;
            od.links_count = od.links_count.saturating_sub(1);
            self.write_inode(old_dir, &od)?;
        }
        Ok(replaced)
    }
}
