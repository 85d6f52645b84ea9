//! Inodes: reading and writing the inode table, allocation (`ext2_new_inode`), and
//! eviction of unlinked inodes (`ext2_evict_inode`).

use alloc::vec;

use crate::layout::*;
use crate::super_::Ext2;
use crate::{le16, le32, put16, put32, BlockIo, Errno};

/// An inode's fields as Linux's ext2 uses them. Fields not listed here (fragment fields,
/// the large-inode extra space, `i_dir_acl` of non-regular files) are kept as on disk by
/// [`Ext2::write_inode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// File type and permission bits (`S_IF*`).
    pub mode: u16,
    /// 32 bits: `i_uid` and `i_uid_high`.
    pub uid: u32,
    pub gid: u32,
    /// Bytes; the high 32 bits (`i_size_high`) count for regular files only.
    pub size: u64,
    pub atime: u32,
    pub ctime: u32,
    pub mtime: u32,
    /// Deletion time; 0 while the inode is in use.
    pub dtime: u32,
    pub links_count: u16,
    /// 512-byte sectors held: data, indirect and extended-attribute blocks.
    pub blocks: u32,
    pub flags: u32,
    /// Block pointers: 12 direct, single, double, triple indirect. A fast symlink keeps its
    /// target here; a device its number.
    pub block: [u32; EXT2_N_BLOCKS],
    pub generation: u32,
    /// Extended-attribute block, 0 if none.
    pub file_acl: u32,
}

/// Bits of the minor number in the kernel's `dev_t` (Linux's `MINORBITS`).
pub const MINOR_BITS: u32 = 20;

/// Owner of a new inode (the caller's fsuid and fsgid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Inode {
    pub fn file_type(&self) -> u16 {
        self.mode & S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    /// Whether the block pointers map data: regular files, directories and slow symlinks
    /// (Linux's `ext2_truncate_blocks` leaves devices, fifos, sockets and fast symlinks
    /// alone).
    pub fn has_block_map(&self, block_size: u32) -> bool {
        match self.file_type() {
            S_IFREG | S_IFDIR => true,
            S_IFLNK => !self.is_fast_symlink(block_size),
            _ => false,
        }
    }
    /// A symlink whose target lives in `i_block`: it holds no blocks besides a possible
    /// attribute block (`ext2_inode_is_fast_symlink`).
    pub fn is_fast_symlink(&self, block_size: u32) -> bool {
        let ea_sectors = if self.file_acl != 0 {
            block_size / 512
        } else {
            0
        };
        self.is_symlink() && self.blocks.wrapping_sub(ea_sectors) == 0
    }
    /// The device number of a character or block device, in Linux's `dev_t` encoding
    /// (`new_encode_dev`): the old 16-bit format in `i_block[0]` or the new one in
    /// `i_block[1]`.
    pub fn rdev(&self) -> u32 {
        let (major, minor) = if self.block[0] != 0 {
            // old_decode_dev: 8-bit major above an 8-bit minor.
            let d = self.block[0];
            ((d >> 8) & 0xff, d & 0xff)
        } else {
            // new_decode_dev: minor bits 0-7, 12-bit major in bits 8-19, minor bits 8-19
            // in bits 20-31.
            let d = self.block[1];
            ((d & 0xfff00) >> 8, (d & 0xff) | ((d >> 12) & 0xfff00))
        };
        (major << MINOR_BITS) | minor
    }
    /// Stores a device number given as (major << 20) | minor, the way `ext2_write_inode`
    /// does: the old format when both parts fit in 8 bits, else the new one.
    pub fn set_rdev(&mut self, rdev: u32) {
        let major = rdev >> MINOR_BITS;
        let minor = rdev & ((1 << MINOR_BITS) - 1);
        if major < 256 && minor < 256 {
            self.block[0] = (major << 8) | minor;
            self.block[1] = 0;
        } else {
            self.block[0] = 0;
            self.block[1] = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        }
        self.block[2] = 0;
    }

    fn decode(raw: &[u8]) -> Inode {
        let mode = le16(raw, I_MODE);
        let mut size = u64::from(le32(raw, I_SIZE));
        if mode & S_IFMT == S_IFREG {
            size |= u64::from(le32(raw, I_SIZE_HIGH)) << 32;
        }
        let mut block = [0u32; EXT2_N_BLOCKS];
        for (i, b) in block.iter_mut().enumerate() {
            *b = le32(raw, I_BLOCK + 4 * i);
        }
        Inode {
            mode,
            uid: u32::from(le16(raw, I_UID)) | (u32::from(le16(raw, I_UID_HIGH)) << 16),
            gid: u32::from(le16(raw, I_GID)) | (u32::from(le16(raw, I_GID_HIGH)) << 16),
            size,
            atime: le32(raw, I_ATIME),
            ctime: le32(raw, I_CTIME),
            mtime: le32(raw, I_MTIME),
            dtime: le32(raw, I_DTIME),
            links_count: le16(raw, I_LINKS_COUNT),
            blocks: le32(raw, I_BLOCKS),
            flags: le32(raw, I_FLAGS),
            block,
            generation: le32(raw, I_GENERATION),
            file_acl: le32(raw, I_FILE_ACL),
        }
    }

    fn encode(&self, raw: &mut [u8]) {
        put16(raw, I_MODE, self.mode);
        put16(raw, I_UID, self.uid as u16);
        put32(raw, I_SIZE, self.size as u32);
        put32(raw, I_ATIME, self.atime);
        put32(raw, I_CTIME, self.ctime);
        put32(raw, I_MTIME, self.mtime);
        put32(raw, I_DTIME, self.dtime);
        put16(raw, I_GID, self.gid as u16);
        put16(raw, I_LINKS_COUNT, self.links_count);
        put32(raw, I_BLOCKS, self.blocks);
        put32(raw, I_FLAGS, self.flags);
        for (i, b) in self.block.iter().enumerate() {
            put32(raw, I_BLOCK + 4 * i, *b);
        }
        put32(raw, I_GENERATION, self.generation);
        put32(raw, I_FILE_ACL, self.file_acl);
        if self.is_reg() {
            put32(raw, I_SIZE_HIGH, (self.size >> 32) as u32);
        }
        // Linux writes the high id halves as 0 once the inode is deleted.
        let (uid_high, gid_high) = if self.dtime == 0 {
            ((self.uid >> 16) as u16, (self.gid >> 16) as u16)
        } else {
            (0, 0)
        };
        put16(raw, I_UID_HIGH, uid_high);
        put16(raw, I_GID_HIGH, gid_high);
    }
}

impl<B: BlockIo> Ext2<B> {
    /// Where inode `ino` is: (block, byte offset in it).
    fn inode_location(&self, ino: u32) -> Result<(u64, usize), Errno> {
        if ino == 0 || ino > self.geo.inodes_count {
            return Err(Errno::EINVAL);
        }
        let ipg = self.geo.inodes_per_group;
        let g = (ino - 1) / ipg;
        let byte = u64::from((ino - 1) % ipg) * u64::from(self.geo.inode_size);
        let bs = u64::from(self.geo.block_size);
        let blk = u64::from(self.groups[g as usize].inode_table) + byte / bs;
        Ok((blk, (byte % bs) as usize))
    }

    /// Reads inode `ino` from the inode table as it is on disk (`EINVAL` for a number
    /// outside 1..=s_inodes_count). No check of its contents: see [`Ext2::iget`].
    pub fn read_inode(&self, ino: u32) -> Result<Inode, Errno> {
        let (blk, off) = self.inode_location(ino)?;
        let mut buf = self.block_buf();
        self.io.read_block(blk, &mut buf)?;
        Ok(Inode::decode(
            &buf[off..off + EXT2_GOOD_OLD_INODE_SIZE as usize],
        ))
    }

    /// Reads an inode that a directory entry names (Linux's `ext2_iget`): `ESTALE` for a
    /// deleted inode, `EUCLEAN` for an invalid file type or a size beyond the maximum.
    pub fn iget(&mut self, ino: u32) -> Result<Inode, Errno> {
        if ino == 0
            || ino > self.geo.inodes_count
            || (ino < self.geo.first_ino && ino != EXT2_ROOT_INO)
        {
            return Err(self.fs_error());
        }
        let inode = self.read_inode(ino)?;
        if inode.links_count == 0 && (inode.mode == 0 || inode.dtime != 0) {
            return Err(Errno::ESTALE);
        }
        if mode_to_ft(inode.mode).is_none()
            || (inode.is_reg() && inode.size > self.geo.max_file_size())
        {
            return Err(self.fs_error());
        }
        Ok(inode)
    }

    /// Writes an inode's fields back to the inode table, keeping the on-disk fields
    /// [`Inode`] does not model. The inode's block map and `i_blocks` change under
    /// [`Ext2::get_block`] and friends, so the caller reads, modifies and writes within one
    /// hold of its per-file-system lock.
    pub fn write_inode(&mut self, ino: u32, inode: &Inode) -> Result<(), Errno> {
        self.check_rw()?;
        if inode.is_reg() && inode.size > self.geo.max_file_size() {
            return Err(Errno::EFBIG);
        }
        let (blk, off) = self.inode_location(ino)?;
        let mut buf = self.block_buf();
        self.io.read_block(blk, &mut buf)?;
        inode.encode(&mut buf[off..off + EXT2_GOOD_OLD_INODE_SIZE as usize]);
        self.io.write_block(blk, &buf)
    }

    /// Allocates and initialises an inode for a new file of `mode` in directory `dir`
    /// (Linux's `ext2_new_inode` with `inode_init_owner`): one link, times now, the whole
    /// on-disk inode zeroed first (so a large inode's extra space is empty), the group
    /// inherited from a set-group-ID directory (and set-group-ID for subdirectories). The
    /// caller links it into a directory.
    pub fn alloc_inode(&mut self, dir: u32, mode: u16, owner: Owner) -> Result<u32, Errno> {
        self.check_rw()?;
        if mode_to_ft(mode).is_none() {
            return Err(Errno::EINVAL);
        }
        let parent = self.read_inode(dir)?;
        let is_dir = mode & S_IFMT == S_IFDIR;
        let ino = self.alloc_inode_number(dir, parent.flags, is_dir)?;
        let mut mode = mode;
        let mut gid = owner.gid;
        if parent.mode & S_ISGID != 0 {
            gid = parent.gid;
            if is_dir {
                mode |= S_ISGID;
            }
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let inode = Inode {
            mode,
            uid: owner.uid,
            gid,
            size: 0,
            atime: self.now,
            ctime: self.now,
            mtime: self.now,
            dtime: 0,
            links_count: 1,
            blocks: 0,
            flags: 0,
            block: [0; EXT2_N_BLOCKS],
            generation: self.next_generation,
            file_acl: 0,
        };
        let (blk, off) = self.inode_location(ino)?;
        let mut buf = self.block_buf();
        self.io.read_block(blk, &mut buf)?;
        buf[off..off + self.geo.inode_size as usize].fill(0);
        inode.encode(&mut buf[off..off + EXT2_GOOD_OLD_INODE_SIZE as usize]);
        self.io.write_block(blk, &buf)?;
        Ok(ino)
    }

    /// Frees inode `ino` in the bitmap (Linux's `ext2_free_inode`): its blocks must be
    /// gone already. Sets `i_dtime`.
    pub fn free_inode(&mut self, ino: u32) -> Result<(), Errno> {
        self.check_rw()?;
        let mut inode = self.read_inode(ino)?;
        inode.dtime = self.now.max(1);
        self.write_inode(ino, &inode)?;
        self.free_inode_number(ino, inode.is_dir())
    }

    /// Called after the last reference to an inode goes (Linux's `ext2_evict_inode`): if it
    /// has no links left, frees its blocks, its extended-attribute block and the inode.
    /// Returns whether it was freed.
    pub fn evict(&mut self, ino: u32) -> Result<bool, Errno> {
        self.check_rw()?;
        let mut inode = self.read_inode(ino)?;
        if inode.links_count != 0 || inode.dtime != 0 || inode.mode == 0 {
            return Ok(false);
        }
        inode.dtime = self.now.max(1);
        inode.size = 0;
        let mut result = Ok(());
        if inode.has_block_map(self.geo.block_size) {
            result = self.free_blocks_from(&mut inode, 0);
        }
        if inode.file_acl != 0 {
            let r = self.release_xattr_block(&mut inode);
            if result.is_ok() {
                result = r;
            }
        }
        self.write_inode(ino, &inode)?;
        self.free_inode_number(ino, inode.is_dir())?;
        result.map(|()| true)
    }

    /// Drops the inode's reference to its extended-attribute block, freeing the block when
    /// it was the last (Linux's `ext2_xattr_delete_inode`; attributes are otherwise not
    /// interpreted).
    fn release_xattr_block(&mut self, inode: &mut Inode) -> Result<(), Errno> {
        let blk = self.check_block(inode.file_acl)?;
        let mut buf = vec![0u8; self.geo.block_size as usize];
        self.io.read_block(blk, &mut buf)?;
        if le32(&buf, 0) != EXT2_XATTR_MAGIC {
            return Err(self.fs_error());
        }
        let refs = le32(&buf, XATTR_H_REFCOUNT);
        if refs <= 1 {
            self.free_block(blk)?;
        } else {
            put32(&mut buf, XATTR_H_REFCOUNT, refs - 1);
            self.io.write_block(blk, &buf)?;
        }
        inode.file_acl = 0;
        inode.blocks = inode.blocks.saturating_sub(self.geo.sectors_per_block());
        Ok(())
    }
}
