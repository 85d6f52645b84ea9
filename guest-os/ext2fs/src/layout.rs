//! The ext2 on-disk format: magic numbers, feature bits and field offsets, with the names of
//! Linux's `fs/ext2/ext2.h` and e2fsprogs' `ext2_fs.h`. All fields are little-endian.

/// `s_magic`, also `statfs`'s `f_type` (`EXT2_SUPER_MAGIC`).
pub const EXT2_SUPER_MAGIC: u16 = 0xEF53;
/// The superblock's byte offset on the device, whatever the block size.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// The superblock's size in bytes.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// Smallest block size (`s_log_block_size` 0).
pub const MIN_BLOCK_SIZE: u32 = 1024;
/// Largest block size this implementation mounts (the page size; Linux's ext2 needs
/// block size <= PAGE_SIZE as well).
pub const MAX_BLOCK_SIZE: u32 = 4096;
/// Largest accepted `s_log_block_size` (4 KiB blocks).
pub const MAX_LOG_BLOCK_SIZE: u32 = 2;

// Superblock field offsets.
pub const S_INODES_COUNT: usize = 0;
pub const S_BLOCKS_COUNT: usize = 4;
pub const S_R_BLOCKS_COUNT: usize = 8;
pub const S_FREE_BLOCKS_COUNT: usize = 12;
pub const S_FREE_INODES_COUNT: usize = 16;
pub const S_FIRST_DATA_BLOCK: usize = 20;
pub const S_LOG_BLOCK_SIZE: usize = 24;
pub const S_LOG_FRAG_SIZE: usize = 28;
pub const S_BLOCKS_PER_GROUP: usize = 32;
pub const S_INODES_PER_GROUP: usize = 40;
pub const S_MTIME: usize = 44;
pub const S_WTIME: usize = 48;
pub const S_MNT_COUNT: usize = 52;
pub const S_MAX_MNT_COUNT: usize = 54;
pub const S_MAGIC: usize = 56;
pub const S_STATE: usize = 58;
pub const S_ERRORS: usize = 60;
pub const S_LASTCHECK: usize = 64;
pub const S_CHECKINTERVAL: usize = 68;
pub const S_REV_LEVEL: usize = 76;
pub const S_FIRST_INO: usize = 84;
pub const S_INODE_SIZE: usize = 88;
pub const S_FEATURE_COMPAT: usize = 92;
pub const S_FEATURE_INCOMPAT: usize = 96;
pub const S_FEATURE_RO_COMPAT: usize = 100;
pub const S_UUID: usize = 104;
pub const S_RESERVED_GDT_BLOCKS: usize = 206;

/// `s_state`: cleanly unmounted.
pub const EXT2_VALID_FS: u16 = 0x0001;
/// `s_state`: errors were detected.
pub const EXT2_ERROR_FS: u16 = 0x0002;
/// `s_errors`: remount read-only on an error.
pub const EXT2_ERRORS_RO: u16 = 2;
/// `s_errors`: panic on an error (treated as read-only here: the kernel never panics on
/// disk contents).
pub const EXT2_ERRORS_PANIC: u16 = 3;
/// `s_max_mnt_count` that Linux writes when the field is 0.
pub const EXT2_DFL_MAX_MNT_COUNT: i16 = 20;

/// `s_rev_level`: original format (128-byte inodes, first inode 11, no features).
pub const EXT2_GOOD_OLD_REV: u32 = 0;
/// `s_rev_level`: dynamic inode sizes and feature flags.
pub const EXT2_DYNAMIC_REV: u32 = 1;
/// Inode size of revision 0.
pub const EXT2_GOOD_OLD_INODE_SIZE: u32 = 128;
/// First non-reserved inode of revision 0.
pub const EXT2_GOOD_OLD_FIRST_INO: u32 = 11;

pub const COMPAT_EXT_ATTR: u32 = 0x0008;
pub const COMPAT_RESIZE_INODE: u32 = 0x0010;
pub const COMPAT_DIR_INDEX: u32 = 0x0020;

/// Directory entries carry a file type byte.
pub const INCOMPAT_FILETYPE: u32 = 0x0002;
/// INCOMPAT features this implementation understands; any other refuses the mount.
/// (Linux's ext2 also knows META_BG; this one does not.)
pub const INCOMPAT_SUPP: u32 = INCOMPAT_FILETYPE;

pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
/// `RO_COMPAT_BTREE_DIR`, never used, but Linux's ext2 lists it as supported.
pub const RO_COMPAT_BTREE_DIR: u32 = 0x0004;
/// RO_COMPAT features writable here; any other makes the mount read-only.
pub const RO_COMPAT_SUPP: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;

/// Size of a group descriptor (no 64bit feature).
pub const GROUP_DESC_SIZE: usize = 32;
pub const BG_BLOCK_BITMAP: usize = 0;
pub const BG_INODE_BITMAP: usize = 4;
pub const BG_INODE_TABLE: usize = 8;
pub const BG_FREE_BLOCKS_COUNT: usize = 12;
pub const BG_FREE_INODES_COUNT: usize = 14;
pub const BG_USED_DIRS_COUNT: usize = 16;

/// The root directory's inode.
pub const EXT2_ROOT_INO: u32 = 2;

// Inode field offsets.
pub const I_MODE: usize = 0;
pub const I_UID: usize = 2;
pub const I_SIZE: usize = 4;
pub const I_ATIME: usize = 8;
pub const I_CTIME: usize = 12;
pub const I_MTIME: usize = 16;
pub const I_DTIME: usize = 20;
pub const I_GID: usize = 24;
pub const I_LINKS_COUNT: usize = 26;
pub const I_BLOCKS: usize = 28;
pub const I_FLAGS: usize = 32;
pub const I_BLOCK: usize = 40;
pub const I_GENERATION: usize = 100;
pub const I_FILE_ACL: usize = 104;
/// `i_size_high` for regular files, `i_dir_acl` for others.
pub const I_SIZE_HIGH: usize = 108;
pub const I_UID_HIGH: usize = 120;
pub const I_GID_HIGH: usize = 122;

/// Block pointers in an inode: 12 direct, then single, double and triple indirect.
pub const EXT2_N_BLOCKS: usize = 15;
pub const EXT2_NDIR_BLOCKS: usize = 12;
pub const EXT2_IND_BLOCK: usize = 12;
pub const EXT2_DIND_BLOCK: usize = 13;
pub const EXT2_TIND_BLOCK: usize = 14;
/// Bytes of `i_block`, where a fast symlink keeps its target.
pub const I_BLOCK_BYTES: usize = EXT2_N_BLOCKS * 4;

/// `i_flags`: the directory has an htree index (`EXT2_INDEX_FL`, alias `EXT2_BTREE_FL`).
pub const EXT2_INDEX_FL: u32 = 0x0000_1000;

/// `i_flags`: the top of a directory hierarchy; the Orlov allocator spreads its
/// subdirectories as it does the root's (`EXT2_TOPDIR_FL`).
pub const EXT2_TOPDIR_FL: u32 = 0x0002_0000;

/// Maximum links to an inode (`EXT2_LINK_MAX`).
pub const EXT2_LINK_MAX: u16 = 32000;
/// Longest name in a directory entry (`EXT2_NAME_LEN`).
pub const EXT2_NAME_LEN: usize = 255;

/// Directory entry header: inode (4), rec_len (2), name_len (1), file_type (1).
pub const DIRENT_HEADER: usize = 8;
pub const DE_INODE: usize = 0;
pub const DE_REC_LEN: usize = 4;
pub const DE_NAME_LEN: usize = 6;
/// The file type byte (with FILETYPE; the high byte of a 16-bit name length without it,
/// always 0 since names are at most 255 bytes).
pub const DE_FILE_TYPE: usize = 7;
/// Directory entries are 4-byte aligned (`EXT2_DIR_PAD`).
pub const DIR_PAD: usize = 4;

/// Bytes a directory entry with a name of `name_len` bytes needs (`EXT2_DIR_REC_LEN`).
pub const fn dir_rec_len(name_len: usize) -> usize {
    (DIRENT_HEADER + name_len + DIR_PAD - 1) & !(DIR_PAD - 1)
}

// Directory entry file types (`EXT2_FT_*`), the d_type of readdir minus Linux's DT_ values.
pub const FT_UNKNOWN: u8 = 0;
pub const FT_REG_FILE: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_CHRDEV: u8 = 3;
pub const FT_BLKDEV: u8 = 4;
pub const FT_FIFO: u8 = 5;
pub const FT_SOCK: u8 = 6;
pub const FT_SYMLINK: u8 = 7;

// Mode bits (`S_IF*`).
pub const S_IFMT: u16 = 0o170000;
pub const S_IFSOCK: u16 = 0o140000;
pub const S_IFLNK: u16 = 0o120000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFBLK: u16 = 0o060000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFIFO: u16 = 0o010000;
pub const S_ISGID: u16 = 0o002000;

/// The directory-entry file type for a mode, or `None` for an invalid file type.
pub fn mode_to_ft(mode: u16) -> Option<u8> {
    Some(match mode & S_IFMT {
        S_IFREG => FT_REG_FILE,
        S_IFDIR => FT_DIR,
        S_IFCHR => FT_CHRDEV,
        S_IFBLK => FT_BLKDEV,
        S_IFIFO => FT_FIFO,
        S_IFSOCK => FT_SOCK,
        S_IFLNK => FT_SYMLINK,
        _ => return None,
    })
}

/// The `d_type` that `getdents64` reports for a directory-entry file type (Linux's
/// `fs_ftype_to_dtype`): `DT_UNKNOWN` (0) for unknown or invalid types.
pub fn ft_to_dtype(ft: u8) -> u8 {
    const DT_BY_FT: [u8; 8] = [0, 8, 4, 2, 6, 1, 12, 10];
    DT_BY_FT.get(usize::from(ft)).copied().unwrap_or(0)
}

/// Extended-attribute block header magic (`EXT2_XATTR_MAGIC`).
pub const EXT2_XATTR_MAGIC: u32 = 0xEA02_0000;
/// Offset of `h_refcount` in an extended-attribute block.
pub const XATTR_H_REFCOUNT: usize = 4;

/// Largest file size without the LARGE_FILE feature.
pub const MAX_NON_LFS: u64 = (1 << 31) - 1;
