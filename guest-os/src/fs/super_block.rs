//! Superblocks (`struct super_block`): one per mounted filesystem instance, with its
//! device number, inode numbering and `statfs`.

use alloc::string::String;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::stat::encode_dev;
use crate::syscall::errno::Errno;

/// `struct kstatfs` as `statfs(2)` reports it (x86-64 `struct statfs`, 120 bytes).
#[derive(Clone, Copy, Debug, Default)]
pub struct Kstatfs {
    pub f_type: u64,
    pub f_bsize: u64,
    pub f_blocks: u64,
    pub f_bfree: u64,
    pub f_bavail: u64,
    pub f_files: u64,
    pub f_ffree: u64,
    pub f_fsid: u64,
    pub f_namelen: u64,
    pub f_frsize: u64,
    pub f_flags: u64,
}

impl Kstatfs {
    pub fn to_user(&self) -> [u8; 120] {
        let mut b = [0u8; 120];
        let fields = [
            self.f_type,
            self.f_bsize,
            self.f_blocks,
            self.f_bfree,
            self.f_bavail,
            self.f_files,
            self.f_ffree,
            self.f_fsid,
            self.f_namelen,
            self.f_frsize,
            self.f_flags,
        ];
        for (i, v) in fields.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// `struct super_operations`: what the VFS asks of a mounted filesystem as a whole.
pub trait SuperOps: Send + Sync {
    fn statfs(&self, sb: &SuperBlock) -> Result<Kstatfs, Errno>;
    /// Write the filesystem's metadata and wait (`sync_fs`); memory filesystems have none.
    fn sync_fs(&self) -> Result<(), Errno> {
        Ok(())
    }
}

/// A mounted filesystem instance.
pub struct SuperBlock {
    /// The filesystem type's name (`/proc/mounts`' third field).
    pub s_type: &'static str,
    pub s_magic: u64,
    /// Device number (major, minor): anonymous devices 0:N for memory filesystems.
    pub s_dev: (u32, u32),
    pub s_op: &'static dyn SuperOps,
    /// Mounted read-only (`SB_RDONLY`).
    pub read_only: bool,
    /// Inode numbers handed out so far (`get_next_ino`).
    next_ino: AtomicU64,
    /// Mount options as `/proc/mounts` prints them after `rw`/`ro`.
    pub options: String,
    /// Inodes alive (statfs's `f_files - f_ffree`).
    inodes: AtomicU64,
}

/// Minor numbers of anonymous devices (`get_anon_bdev`): 0:1 is the internal shm mount
/// (shared anonymous memory), so the root tmpfs is 0:2, as on Linux, and later mounts
/// follow.
static NEXT_ANON_MINOR: AtomicU32 = AtomicU32::new(2);

/// A fresh anonymous device number.
pub fn anon_dev() -> (u32, u32) {
    (0, NEXT_ANON_MINOR.fetch_add(1, Ordering::Relaxed))
}

impl SuperBlock {
    pub fn new(
        s_type: &'static str,
        s_magic: u64,
        s_dev: (u32, u32),
        s_op: &'static dyn SuperOps,
        options: String,
    ) -> SuperBlock {
        SuperBlock {
            s_type,
            s_magic,
            s_dev,
            s_op,
            read_only: false,
            next_ino: AtomicU64::new(1),
            options,
            inodes: AtomicU64::new(0),
        }
    }

    /// The next inode number (1 is the root's).
    pub fn next_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    pub fn inode_created(&self) {
        self.inodes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn inode_freed(&self) {
        self.inodes.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn inodes_in_use(&self) -> u64 {
        self.inodes.load(Ordering::Relaxed)
    }

    /// `st_dev` as `stat` reports it.
    pub fn dev(&self) -> u64 {
        encode_dev(self.s_dev.0, self.s_dev.1)
    }
}

/// The time the VFS stamps on inodes (`current_time`), in seconds: CLOCK_REALTIME (the
/// RTC's time at boot plus the virtual time since, or what clock_settime set).
pub fn now() -> u64 {
    crate::proc::timer::realtime_ns() / 1_000_000_000
}
