//! The superblock and group descriptors: mounting (Linux's `ext2_fill_super` and
//! `ext2_setup_super`), `statfs`, `sync` and `unmount`.

use alloc::vec;
use alloc::vec::Vec;

use crate::layout::*;
use crate::{le16, le32, put16, put32, BlockIo, Errno};

/// How to mount.
#[derive(Debug, Clone, Copy, Default)]
pub struct MountOptions {
    /// Mount read-only: nothing is ever written.
    pub read_only: bool,
    /// The current time (seconds since the epoch) for the mount's own time stamps; later
    /// operations use [`Ext2::set_time`].
    pub now: u32,
    /// The device's size in bytes: a superblock claiming more blocks refuses the mount.
    pub device_bytes: u64,
}

/// Conditions Linux reports when mounting (`ext2_setup_super`); none refuses the mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountWarnings {
    /// `s_state` lacks VALID: the file system was not cleanly unmounted ("mounting
    /// unchecked fs, running e2fsck is recommended").
    pub not_clean: bool,
    /// `s_state` has ERROR: errors were recorded ("mounting fs with errors").
    pub has_errors: bool,
    /// `s_mnt_count` reached `s_max_mnt_count`.
    pub max_mount_count_reached: bool,
    /// `s_lastcheck + s_checkinterval` has passed.
    pub check_interval_passed: bool,
    /// Unknown RO_COMPAT features, or a revision above 1: mounted read-only though
    /// read-write was asked for.
    pub forced_read_only: bool,
}

/// What `statfs(2)` reports (Linux's `ext2_statfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// `f_type`: `EXT2_SUPER_MAGIC`.
    pub magic: u32,
    pub bsize: u32,
    /// Blocks minus the metadata overhead (superblock and descriptor copies, bitmaps, inode
    /// tables).
    pub blocks: u64,
    pub bfree: u64,
    /// Free blocks minus those reserved for root.
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namelen: u32,
    /// The two halves of the UUID XORed, split into two words as Linux's `u64_to_fsid`.
    pub fsid: [u32; 2],
}

/// One group descriptor, as kept in memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group {
    pub block_bitmap: u32,
    pub inode_bitmap: u32,
    pub inode_table: u32,
    pub free_blocks: u16,
    pub free_inodes: u16,
    pub used_dirs: u16,
}

/// Geometry from the superblock, fixed for the life of the mount.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub inodes_count: u32,
    pub blocks_count: u32,
    pub r_blocks_count: u32,
    pub first_data_block: u32,
    pub block_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub inode_size: u32,
    pub first_ino: u32,
    pub groups: u32,
    /// Blocks holding the group descriptor table.
    pub gdt_blocks: u32,
    pub reserved_gdt_blocks: u32,
    /// Blocks of one group's inode table.
    pub inode_table_blocks: u32,
    pub incompat: u32,
    pub ro_compat: u32,
}

impl Geometry {
    /// Block pointers per indirect block.
    pub fn apb(&self) -> u64 {
        u64::from(self.block_size / 4)
    }
    /// 512-byte sectors per block, the unit of `i_blocks`.
    pub fn sectors_per_block(&self) -> u32 {
        self.block_size / 512
    }
    pub fn has_filetype(&self) -> bool {
        self.incompat & INCOMPAT_FILETYPE != 0
    }
    /// First block of a group.
    pub fn group_first_block(&self, g: u32) -> u64 {
        u64::from(self.first_data_block) + u64::from(g) * u64::from(self.blocks_per_group)
    }
    /// Blocks in a group (the last one may be short).
    pub fn blocks_in_group(&self, g: u32) -> u32 {
        let start = self.group_first_block(g);
        let end = (start + u64::from(self.blocks_per_group)).min(u64::from(self.blocks_count));
        (end - start) as u32
    }
    /// Whether a group holds a superblock copy (`ext2_bg_has_super`): with SPARSE_SUPER
    /// only groups 0, 1 and powers of 3, 5 and 7.
    pub fn has_super(&self, g: u32) -> bool {
        if self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 || g <= 1 {
            return true;
        }
        [3u32, 5, 7].iter().any(|&b| {
            let mut p = b;
            while p < g {
                p = p.saturating_mul(b);
            }
            p == g
        })
    }
    /// Maximum file size in bytes: the indirect tree's reach, limited by `i_blocks` (32
    /// bits of 512-byte sectors) and, without LARGE_FILE, to 2 GiB - 1.
    pub fn max_file_size(&self) -> u64 {
        let apb = self.apb();
        let tree = EXT2_NDIR_BLOCKS as u64 + apb + apb * apb + apb * apb * apb;
        // Blocks (data and indirect) that 32 bits of 512-byte sectors can count, less the
        // indirect blocks a dense file of that size needs.
        let sectors = u64::from(u32::MAX) / u64::from(self.sectors_per_block());
        let sector_limit = sectors - sectors / apb - sectors / (apb * apb) - 3;
        let bytes = tree.min(sector_limit) * u64::from(self.block_size);
        if self.ro_compat & RO_COMPAT_LARGE_FILE == 0 {
            bytes.min(MAX_NON_LFS)
        } else {
            bytes
        }
    }
}

/// A mounted ext2 file system.
pub struct Ext2<B: BlockIo> {
    pub(crate) io: B,
    pub(crate) geo: Geometry,
    /// The superblock as on disk, updated in place and written by `sync`.
    pub(crate) sb_raw: Vec<u8>,
    /// The group descriptor table as on disk.
    pub(crate) gdt_raw: Vec<u8>,
    pub(crate) groups: Vec<Group>,
    pub(crate) read_only: bool,
    pub(crate) now: u32,
    /// `s_state` found at mount, restored by `unmount` (Linux's `s_mount_state`).
    mount_state: u16,
    /// An inconsistency was found since mounting: `s_state` gets ERROR on the next write.
    pub(crate) errors_found: bool,
    warnings: MountWarnings,
    /// Next `i_generation` for a new inode (Linux's `s_next_generation`).
    pub(crate) next_generation: u32,
}

impl<B: BlockIo> Ext2<B> {
    /// Mounts the file system on `io`, validating the superblock and group descriptors.
    /// Refuses (`EINVAL`) a bad magic, block size, inode size, geometry, unknown INCOMPAT
    /// features, a device smaller than the file system or a corrupt root directory.
    pub fn mount(io: B, opts: MountOptions) -> Result<Self, Errno> {
        let mut sb_raw = vec![0u8; SUPERBLOCK_SIZE];
        io.read_block(SUPERBLOCK_OFFSET / SUPERBLOCK_SIZE as u64, &mut sb_raw)?;
        let bad = Err(Errno::EINVAL);
        if le16(&sb_raw, S_MAGIC) != EXT2_SUPER_MAGIC {
            return bad;
        }
        let mut warnings = MountWarnings::default();
        let mut read_only = opts.read_only;
        let rev = le32(&sb_raw, S_REV_LEVEL);
        let (inode_size, first_ino) = if rev == EXT2_GOOD_OLD_REV {
            (EXT2_GOOD_OLD_INODE_SIZE, EXT2_GOOD_OLD_FIRST_INO)
        } else {
            (
                u32::from(le16(&sb_raw, S_INODE_SIZE)),
                le32(&sb_raw, S_FIRST_INO),
            )
        };
        if rev > EXT2_DYNAMIC_REV && !read_only {
            // Linux: "revision level too high, forcing read-only mode".
            read_only = true;
            warnings.forced_read_only = true;
        }
        let (compat, incompat, ro_compat) = if rev == EXT2_GOOD_OLD_REV {
            (0, 0, 0)
        } else {
            (
                le32(&sb_raw, S_FEATURE_COMPAT),
                le32(&sb_raw, S_FEATURE_INCOMPAT),
                le32(&sb_raw, S_FEATURE_RO_COMPAT),
            )
        };
        if incompat & !INCOMPAT_SUPP != 0 {
            return bad;
        }
        if ro_compat & !RO_COMPAT_SUPP != 0 && !read_only {
            // Linux refuses a read-write mount here; mounting read-only lets the kernel
            // still read such a disk.
            read_only = true;
            warnings.forced_read_only = true;
        }
        let log_bs = le32(&sb_raw, S_LOG_BLOCK_SIZE);
        if log_bs > MAX_LOG_BLOCK_SIZE || le32(&sb_raw, S_LOG_FRAG_SIZE) != log_bs {
            return bad;
        }
        let block_size = MIN_BLOCK_SIZE << log_bs;
        if inode_size < EXT2_GOOD_OLD_INODE_SIZE
            || !inode_size.is_power_of_two()
            || inode_size > block_size
        {
            return bad;
        }
        let inodes_count = le32(&sb_raw, S_INODES_COUNT);
        let blocks_count = le32(&sb_raw, S_BLOCKS_COUNT);
        let first_data_block = le32(&sb_raw, S_FIRST_DATA_BLOCK);
        let bpg = le32(&sb_raw, S_BLOCKS_PER_GROUP);
        let ipg = le32(&sb_raw, S_INODES_PER_GROUP);
        let inodes_per_block = block_size / inode_size;
        let bits_per_block = block_size * 8;
        // The superblock lives in block first_data_block: block 1 with 1 KiB blocks, else 0.
        let expected_fdb = if block_size == MIN_BLOCK_SIZE { 1 } else { 0 };
        if first_data_block != expected_fdb
            || blocks_count <= first_data_block
            || bpg == 0
            || bpg > bits_per_block
            || ipg < inodes_per_block
            || ipg > bits_per_block
            || !ipg.is_multiple_of(inodes_per_block)
            || first_ino < EXT2_GOOD_OLD_FIRST_INO
            || first_ino > inodes_count
        {
            return bad;
        }
        if u64::from(blocks_count) * u64::from(block_size) > opts.device_bytes {
            return bad;
        }
        let groups = (blocks_count - first_data_block).div_ceil(bpg);
        if u64::from(groups) * u64::from(ipg) != u64::from(inodes_count) {
            return bad;
        }
        let desc_per_block = block_size / GROUP_DESC_SIZE as u32;
        let gdt_blocks = groups.div_ceil(desc_per_block);
        let reserved_gdt_blocks = if compat & COMPAT_RESIZE_INODE != 0 {
            u32::from(le16(&sb_raw, S_RESERVED_GDT_BLOCKS))
        } else {
            0
        };
        let geo = Geometry {
            inodes_count,
            blocks_count,
            r_blocks_count: le32(&sb_raw, S_R_BLOCKS_COUNT),
            first_data_block,
            block_size,
            blocks_per_group: bpg,
            inodes_per_group: ipg,
            inode_size,
            first_ino,
            groups,
            gdt_blocks,
            reserved_gdt_blocks,
            inode_table_blocks: ipg / inodes_per_block,
            incompat,
            ro_compat,
        };
        // Superblock, descriptors and reserved descriptors must fit in group 0.
        if 1 + u64::from(gdt_blocks) + u64::from(reserved_gdt_blocks)
            >= u64::from(geo.blocks_in_group(0))
        {
            return bad;
        }
        let mut gdt_raw = vec![0u8; (gdt_blocks * block_size) as usize];
        for (i, chunk) in gdt_raw.chunks_mut(block_size as usize).enumerate() {
            io.read_block(u64::from(first_data_block) + 1 + i as u64, chunk)?;
        }
        let mut group_list = Vec::with_capacity(groups as usize);
        for g in 0..groups {
            let d = &gdt_raw[g as usize * GROUP_DESC_SIZE..][..GROUP_DESC_SIZE];
            let grp = Group {
                block_bitmap: le32(d, BG_BLOCK_BITMAP),
                inode_bitmap: le32(d, BG_INODE_BITMAP),
                inode_table: le32(d, BG_INODE_TABLE),
                free_blocks: le16(d, BG_FREE_BLOCKS_COUNT),
                free_inodes: le16(d, BG_FREE_INODES_COUNT),
                used_dirs: le16(d, BG_USED_DIRS_COUNT),
            };
            // ext2_check_descriptors: bitmaps and inode table inside their group.
            let first = geo.group_first_block(g);
            let last = first + u64::from(geo.blocks_in_group(g)); // exclusive
            let inside = |b: u64, n: u64| b >= first && b + n <= last;
            if !inside(grp.block_bitmap.into(), 1)
                || !inside(grp.inode_bitmap.into(), 1)
                || !inside(grp.inode_table.into(), geo.inode_table_blocks.into())
                || u32::from(grp.free_blocks) > geo.blocks_in_group(g)
                || u32::from(grp.free_inodes) > ipg
            {
                return bad;
            }
            group_list.push(grp);
        }
        let state = le16(&sb_raw, S_STATE);
        if state & EXT2_VALID_FS == 0 {
            warnings.not_clean = true;
        }
        if state & EXT2_ERROR_FS != 0 {
            warnings.has_errors = true;
        }
        let max_mnt = le16(&sb_raw, S_MAX_MNT_COUNT) as i16;
        let mnt_count = le16(&sb_raw, S_MNT_COUNT);
        if max_mnt >= 0 && i32::from(mnt_count) >= i32::from(max_mnt) {
            warnings.max_mount_count_reached = true;
        }
        let interval = le32(&sb_raw, S_CHECKINTERVAL);
        if interval != 0
            && u64::from(le32(&sb_raw, S_LASTCHECK)) + u64::from(interval) <= u64::from(opts.now)
        {
            warnings.check_interval_passed = true;
        }
        let mut fs = Ext2 {
            io,
            geo,
            sb_raw,
            gdt_raw,
            groups: group_list,
            read_only,
            now: opts.now,
            mount_state: state,
            errors_found: false,
            warnings,
            next_generation: opts.now,
        };
        // Linux: "corrupt root inode, run e2fsck".
        let root = fs.read_inode(EXT2_ROOT_INO).map_err(|_| Errno::EINVAL)?;
        if !root.is_dir() || root.blocks == 0 || root.size == 0 {
            return bad;
        }
        if !fs.read_only {
            if max_mnt == 0 {
                put16(
                    &mut fs.sb_raw,
                    S_MAX_MNT_COUNT,
                    EXT2_DFL_MAX_MNT_COUNT as u16,
                );
            }
            put16(&mut fs.sb_raw, S_MNT_COUNT, mnt_count.wrapping_add(1));
            put32(&mut fs.sb_raw, S_MTIME, opts.now);
            fs.sync()?;
        }
        Ok(fs)
    }

    /// What mounting found (unclean state, recorded errors, forced read-only).
    pub fn warnings(&self) -> MountWarnings {
        self.warnings
    }

    /// Whether the file system is read-only (asked for, forced at mount, or after an error
    /// with `s_errors` = remount-ro).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Sets the clock used for time stamps from now on (the kernel's clock is virtual).
    pub fn set_time(&mut self, now: u32) {
        self.now = now;
    }

    /// The block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.geo.block_size
    }

    /// Largest file size in bytes.
    pub fn max_file_size(&self) -> u64 {
        self.geo.max_file_size()
    }

    /// The block device, for the caller's own use (e.g. to flush it).
    pub fn io(&self) -> &B {
        &self.io
    }

    /// `statfs(2)`, as Linux's `ext2_statfs` computes it (without the `minixdf` option).
    pub fn statfs(&self) -> StatFs {
        let geo = &self.geo;
        let mut overhead = u64::from(geo.first_data_block);
        for g in 0..geo.groups {
            if geo.has_super(g) {
                overhead += 1 + u64::from(geo.gdt_blocks);
            }
        }
        overhead += (u64::from(geo.inode_table_blocks) + 2) * u64::from(geo.groups);
        let bfree = self.free_blocks_total();
        let reserved = u64::from(geo.r_blocks_count);
        let uuid = &self.sb_raw[S_UUID..S_UUID + 16];
        let lo = u64::from_le_bytes(uuid[..8].try_into().unwrap_or([0; 8]));
        let hi = u64::from_le_bytes(uuid[8..].try_into().unwrap_or([0; 8]));
        let fsid = lo ^ hi;
        StatFs {
            magic: u32::from(EXT2_SUPER_MAGIC),
            bsize: geo.block_size,
            blocks: u64::from(geo.blocks_count).saturating_sub(overhead),
            bfree,
            bavail: bfree.saturating_sub(reserved),
            files: u64::from(geo.inodes_count),
            ffree: self.free_inodes_total(),
            namelen: EXT2_NAME_LEN as u32,
            fsid: [fsid as u32, (fsid >> 32) as u32],
        }
    }

    pub(crate) fn free_blocks_total(&self) -> u64 {
        self.groups.iter().map(|g| u64::from(g.free_blocks)).sum()
    }

    pub(crate) fn free_inodes_total(&self) -> u64 {
        self.groups.iter().map(|g| u64::from(g.free_inodes)).sum()
    }

    /// Writes the superblock: free counts summed from the group descriptors, `s_wtime`,
    /// and the state (not VALID while mounted read-write, as Linux's `ext2_sync_fs` leaves
    /// it; ERROR once an inconsistency was found). Group descriptors, bitmaps and inodes are
    /// written through `BlockIo` as they change, so this is all `sync` has left to do; the
    /// caller flushes its buffer cache after it. No-op when read-only.
    pub fn sync(&mut self) -> Result<(), Errno> {
        if self.read_only {
            return Ok(());
        }
        let state = le16(&self.sb_raw, S_STATE) & !EXT2_VALID_FS;
        self.write_super(state)
    }

    /// Unmounts: on a read-write mount writes the superblock back with the state found at
    /// mount (VALID if it was clean, as Linux's `ext2_put_super`), ERROR added if errors
    /// were found. Returns the block device.
    /// Write the superblock with the state found at mount (clean, unless errors were
    /// found), as `unmount` does, but keep the filesystem object (a kernel that holds it
    /// in a lock ends with this and then drops it). Nothing may change it afterwards.
    pub fn write_unmount_state(&mut self) -> Result<(), Errno> {
        if !self.read_only {
            let state = self.mount_state;
            self.write_super(state)?;
        }
        Ok(())
    }

    pub fn unmount(mut self) -> Result<B, Errno> {
        if !self.read_only {
            let state = self.mount_state;
            self.write_super(state)?;
        }
        Ok(self.io)
    }

    fn write_super(&mut self, mut state: u16) -> Result<(), Errno> {
        if self.errors_found {
            state |= EXT2_ERROR_FS;
        }
        let free_blocks = self.free_blocks_total().min(u64::from(u32::MAX)) as u32;
        let free_inodes = self.free_inodes_total().min(u64::from(u32::MAX)) as u32;
        put32(&mut self.sb_raw, S_FREE_BLOCKS_COUNT, free_blocks);
        put32(&mut self.sb_raw, S_FREE_INODES_COUNT, free_inodes);
        put32(&mut self.sb_raw, S_WTIME, self.now);
        put16(&mut self.sb_raw, S_STATE, state);
        let bs = self.geo.block_size as u64;
        let blk = SUPERBLOCK_OFFSET / bs;
        let off = (SUPERBLOCK_OFFSET % bs) as usize;
        let mut buf = vec![0u8; bs as usize];
        if off != 0 {
            self.io.read_block(blk, &mut buf)?;
        }
        buf[off..off + SUPERBLOCK_SIZE].copy_from_slice(&self.sb_raw);
        self.io.write_block(blk, &buf)
    }

    /// Records an inconsistency found on disk (Linux's `ext2_error`): the superblock gets
    /// ERROR on the next write, and with `s_errors` = remount-ro (or panic) the file system
    /// becomes read-only. Returns `EUCLEAN` for the caller to pass on.
    pub(crate) fn fs_error(&mut self) -> Errno {
        self.errors_found = true;
        let behaviour = le16(&self.sb_raw, S_ERRORS);
        if behaviour == EXT2_ERRORS_RO || behaviour == EXT2_ERRORS_PANIC {
            if !self.read_only {
                // Best effort: record the error before going read-only.
                let _ = self.sync();
            }
            self.read_only = true;
        }
        Errno::EUCLEAN
    }

    /// `EROFS` when read-only.
    pub(crate) fn check_rw(&self) -> Result<(), Errno> {
        if self.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// Writes group `g`'s descriptor to its block of the table.
    pub(crate) fn write_group(&mut self, g: u32) -> Result<(), Errno> {
        let grp = self.groups[g as usize];
        let off = g as usize * GROUP_DESC_SIZE;
        let d = &mut self.gdt_raw[off..off + GROUP_DESC_SIZE];
        put16(d, BG_FREE_BLOCKS_COUNT, grp.free_blocks);
        put16(d, BG_FREE_INODES_COUNT, grp.free_inodes);
        put16(d, BG_USED_DIRS_COUNT, grp.used_dirs);
        let bs = self.geo.block_size as usize;
        let idx = off / bs;
        let blk = u64::from(self.geo.first_data_block) + 1 + idx as u64;
        self.io
            .write_block(blk, &self.gdt_raw[idx * bs..(idx + 1) * bs])
    }

    /// A zeroed block-sized buffer.
    pub(crate) fn block_buf(&self) -> Vec<u8> {
        vec![0u8; self.geo.block_size as usize]
    }
}
