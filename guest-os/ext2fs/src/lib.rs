//! The second extended file system (ext2), read-write, as Linux's `fs/ext2` and e2fsprogs
//! define the on-disk format, free of hardware access so that the same code runs in the
//! kernel and in host tests.
//!
//! The caller supplies block I/O through [`BlockIo`] (the kernel backs it with the disk's
//! buffer cache, the tests with a `Vec<u8>`), and calls [`Ext2`] the way Linux's VFS calls
//! ext2: metadata (superblock, group descriptors, bitmaps, inode table, indirect and
//! directory blocks) goes through `BlockIo`; file data is the caller's business through
//! [`Ext2::get_block`] (the page cache's `get_block_t`). [`Ext2::read_file`] and
//! [`Ext2::write_file`] move file data through `BlockIo` for tools and tests.
//!
//! * [`layout`]: on-disk constants and field offsets;
//! * `super_` (mount, `statfs`, `sync`, `unmount`), `alloc_bits` (bitmaps, block and inode
//!   placement), `inode` (inodes, eviction), `bmap` (block mapping, truncate, file data),
//!   `dir` (directories and the name-space operations).
//!
//! Corrupt images never panic: every value read from the disk is checked before use, loops
//! are bounded (a directory block's `rec_len` chain always advances; indirect chains are at
//! most three levels deep; directories are at most as large as the device), and damage gives
//! [`Errno::EUCLEAN`] (`EFSCORRUPTED`) or a refused mount ([`Errno::EINVAL`]).
//!
//! Simplified relative to Linux (each noted where it is implemented): no htree lookups (an
//! indexed directory is read linearly and its index flag cleared on modification, as Linux's
//! ext2 does); extended attributes and ACLs are ignored except that an inode's attribute
//! block is released when the inode is freed; no META_BG; block allocation takes the first
//! free block from a goal, without reservation windows; the Orlov directory allocator keeps
//! no per-group debts; blocks reserved for root (`s_r_blocks_count`) are reported by
//! `statfs` but not enforced on allocation (the kernel runs everything with root's
//! privileges); new inodes inherit no `i_flags` from their directory; files past 2 GiB need
//! the LARGE_FILE feature already set (Linux sets it on demand); access times are the
//! VFS's to write; like Linux's ext2 there is no orphan list, so an unlinked-but-open inode
//! at a crash is left for e2fsck.
//!
//! Testing: `cargo test --release -p ext2fs` builds images with e2fsprogs (`mke2fs -d` from
//! directory trees the tests create) and judges the results with `e2fsck -fn` and `debugfs`;
//! it needs the Debian package `e2fsprogs` and fails saying so when the tools are missing.
//! `EXT2_CORRUPT_SEEDS` and `EXT2_MODEL_CASES` lengthen the corruption and property tests.

#![cfg_attr(not(test), no_std)]

// Block buffers and the group-descriptor table live on the heap: the kernel provides a
// global allocator (kmalloc), the host tests std's.
extern crate alloc;

mod alloc_bits;
mod bmap;
mod dir;
mod inode;
pub mod layout;
mod super_;

pub use bmap::Mapped;
pub use dir::DirEntry;
pub use inode::{Inode, Owner, MINOR_BITS};
pub use kfs::Errno;
pub use super_::{Ext2, MountOptions, MountWarnings, StatFs};

/// Block I/O for one file system, in units of `buf.len()` bytes: `read_block(n, buf)` reads
/// bytes `n * buf.len() .. (n + 1) * buf.len()` of the device (Linux's `sb_bread` with a
/// block size). The crate reads the superblock with 1024-byte blocks while mounting and
/// uses the file system's block size for everything else.
pub trait BlockIo {
    /// Reads one block. An out-of-range block or a device error is an error (`EIO`).
    fn read_block(&self, blk: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Writes one block.
    fn write_block(&self, blk: u64, buf: &[u8]) -> Result<(), Errno>;
}

impl<T: BlockIo + ?Sized> BlockIo for &T {
    fn read_block(&self, blk: u64, buf: &mut [u8]) -> Result<(), Errno> {
        (**self).read_block(blk, buf)
    }
    fn write_block(&self, blk: u64, buf: &[u8]) -> Result<(), Errno> {
        (**self).write_block(blk, buf)
    }
}

/// Little-endian field access on byte buffers whose length the caller has checked.
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use crate::inode::Inode;
    use crate::layout::*;
    use crate::super_::Geometry;

    fn geometry(block_size: u32, ro_compat: u32) -> Geometry {
        Geometry {
            inodes_count: 1024,
            blocks_count: 8192,
            r_blocks_count: 0,
            first_data_block: u32::from(block_size == 1024),
            block_size,
            blocks_per_group: block_size * 8,
            inodes_per_group: 1024,
            inode_size: 256,
            first_ino: 11,
            groups: 1,
            gdt_blocks: 1,
            reserved_gdt_blocks: 0,
            inode_table_blocks: 256 * 1024 / block_size,
            incompat: 0,
            ro_compat,
        }
    }

    #[test]
    fn sparse_super_groups_are_0_1_and_powers_of_3_5_7() {
        let g = geometry(1024, RO_COMPAT_SPARSE_SUPER);
        let with: Vec<u32> = (0..400).filter(|&n| g.has_super(n)).collect();
        assert_eq!(with, [0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343]);
        let dense = geometry(1024, 0);
        assert!((0..50).all(|n| dense.has_super(n)));
    }

    #[test]
    fn max_file_size_follows_the_indirect_tree_and_i_blocks() {
        // 1 KiB: 12 + 256 + 256^2 + 256^3 blocks, about 16 GiB.
        let g = geometry(1024, RO_COMPAT_LARGE_FILE);
        assert_eq!(
            g.max_file_size(),
            (12 + 256 + 256 * 256 + 256 * 256 * 256) * 1024
        );
        // 4 KiB: the tree reaches 4 TiB but i_blocks (2^32 sectors) stops it below 2 TiB.
        let g = geometry(4096, RO_COMPAT_LARGE_FILE);
        assert!(g.max_file_size() < 2 << 40 && g.max_file_size() > (2 << 40) - (8 << 30));
        // Without LARGE_FILE, 2 GiB - 1.
        assert_eq!(geometry(4096, 0).max_file_size(), MAX_NON_LFS);
    }

    #[test]
    fn file_types_map_to_linux_d_types() {
        // DT_REG 8, DT_DIR 4, DT_CHR 2, DT_BLK 6, DT_FIFO 1, DT_SOCK 12, DT_LNK 10.
        let got: Vec<u8> = [
            FT_REG_FILE,
            FT_DIR,
            FT_CHRDEV,
            FT_BLKDEV,
            FT_FIFO,
            FT_SOCK,
            FT_SYMLINK,
            FT_UNKNOWN,
            200,
        ]
        .iter()
        .map(|&f| ft_to_dtype(f))
        .collect();
        assert_eq!(got, [8, 4, 2, 6, 1, 12, 10, 0, 0]);
    }

    #[test]
    fn dir_rec_len_rounds_to_four() {
        assert_eq!(dir_rec_len(1), 12);
        assert_eq!(dir_rec_len(2), 12);
        assert_eq!(dir_rec_len(4), 12);
        assert_eq!(dir_rec_len(5), 16);
        assert_eq!(dir_rec_len(EXT2_NAME_LEN), 264);
    }

    #[test]
    fn device_numbers_round_trip_in_old_and_new_encodings() {
        let mut inode = Inode {
            mode: S_IFCHR,
            uid: 0,
            gid: 0,
            size: 0,
            atime: 0,
            ctime: 0,
            mtime: 0,
            dtime: 0,
            links_count: 1,
            blocks: 0,
            flags: 0,
            block: [0; EXT2_N_BLOCKS],
            generation: 0,
            file_acl: 0,
        };
        for (major, minor, old) in [
            (1, 3, true),
            (255, 255, true),
            (256, 0, false),
            (8, 300, false),
            (4095, 1 << 19, false),
        ] {
            inode.set_rdev((major << 20) | minor);
            assert_eq!(inode.block[0] != 0, old, "{major}:{minor}");
            assert_eq!(inode.rdev(), (major << 20) | minor);
        }
    }
}
