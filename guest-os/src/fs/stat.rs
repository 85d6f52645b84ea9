//! File attributes (`struct kstat`, `fs/stat.c`) and their user layouts: x86-64's
//! `struct stat` (144 bytes, `stat`/`fstat`/`lstat`/`newfstatat`) and `struct statx` (256
//! bytes).

/// `st_mode` type bits.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

/// Device numbers of the pseudo file systems (anonymous devices `0:N`, as Linux gives
/// rootfs, procfs and pipefs).
pub const ROOTFS_DEV: u64 = 1;
pub const PROC_DEV: u64 = 0x16;
pub const PIPEFS_DEV: u64 = 0xd;
pub const SHMEM_DEV: u64 = 0x5;
pub const ANON_INODE_DEV: u64 = 0xe;
/// The console's device: `/dev/ttyS0` is `4:64` (`TTY_MAJOR`, minor 64 + port).
pub const TTY_MAJOR: u32 = 4;

/// `stx_mask` bits: the basic `stat` fields, and the mount id Linux always reports.
pub const STATX_BASIC_STATS: u32 = 0x7ff;
pub const STATX_MNT_ID: u32 = 0x1000;

/// What `stat` reports about a file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kstat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub size: u64,
    pub blksize: u32,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Seconds since the epoch (atime, mtime and ctime are all this).
    pub mtime: u64,
}

impl Kstat {
    /// A file of type and permissions `mode` on device `dev`.
    pub fn new(dev: u64, ino: u64, mode: u32, nlink: u32, size: u64) -> Kstat {
        Kstat {
            dev,
            ino,
            mode,
            nlink,
            size,
            blksize: 4096,
            blocks: size.div_ceil(512),
            ..Kstat::default()
        }
    }

    /// The initramfs's view of an inode.
    pub fn from_ramfs(s: &kfs::Stat) -> Kstat {
        Kstat {
            uid: s.uid,
            gid: s.gid,
            mtime: s.mtime,
            rdev_major: s.rdev_major,
            rdev_minor: s.rdev_minor,
            ..Kstat::new(ROOTFS_DEV, s.ino, s.mode, s.nlink, s.size)
        }
    }

    /// `new_encode_dev` of the device a special file stands for.
    fn rdev(&self) -> u64 {
        encode_dev(self.rdev_major, self.rdev_minor)
    }

    /// x86-64 `struct stat` (`cp_new_stat`).
    pub fn to_stat(&self) -> [u8; 144] {
        let mut b = [0u8; 144];
        let mut put =
            |off: usize, v: u64, n: usize| b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
        put(0, self.dev, 8);
        put(8, self.ino, 8);
        put(16, self.nlink as u64, 8);
        put(24, self.mode as u64, 4);
        put(28, self.uid as u64, 4);
        put(32, self.gid as u64, 4);
        put(40, self.rdev(), 8);
        put(48, self.size, 8);
        put(56, self.blksize as u64, 8);
        put(64, self.blocks, 8);
        put(72, self.mtime, 8); // st_atime
        put(88, self.mtime, 8); // st_mtime
        put(104, self.mtime, 8); // st_ctime
        b
    }

    /// `struct statx` (`cp_statx`): the basic fields, no birth time.
    pub fn to_statx(&self) -> [u8; 256] {
        let mut b = [0u8; 256];
        let mut put =
            |off: usize, v: u64, n: usize| b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
        put(0, (STATX_BASIC_STATS | STATX_MNT_ID) as u64, 4); // stx_mask
        put(4, self.blksize as u64, 4);
        put(16, self.nlink as u64, 4);
        put(20, self.uid as u64, 4);
        put(24, self.gid as u64, 4);
        put(28, self.mode as u64, 2);
        put(32, self.ino, 8);
        put(40, self.size, 8);
        put(48, self.blocks, 8);
        put(64, self.mtime, 8); // stx_atime.tv_sec
        put(96, self.mtime, 8); // stx_ctime
        put(112, self.mtime, 8); // stx_mtime
        put(128, self.rdev_major as u64, 4);
        put(132, self.rdev_minor as u64, 4);
        put(136, self.dev >> 8, 4); // stx_dev_major
        put(140, self.dev & 0xff, 4); // stx_dev_minor
        put(144, 1, 8); // stx_mnt_id: the root mount
        b
    }
}

/// `new_encode_dev(MKDEV(major, minor))`.
pub fn encode_dev(major: u32, minor: u32) -> u64 {
    (minor as u64 & 0xff) | ((major as u64) << 8) | ((minor as u64 & !0xff) << 12)
}
