//! Inodes (`struct inode`, `include/linux/fs.h`) and what a filesystem does with them
//! (`struct inode_operations`, with the directory-reading half of `file_operations`).
//!
//! An inode is shared as `Arc<Inode>`: dentries, open files and the filesystem's own
//! directory structures hold it. The last `Arc` going away is `iput` → `evict`: a file
//! that was unlinked while open lives until its last close, as POSIX says. Attributes sit
//! in one small lock ([`InodeMeta`]); data lives in the page cache object `i_mapping`.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;

use super::stat::{Kstat, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use super::super_block::SuperBlock;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, EINVAL, ENOTDIR, EPERM};

/// Attributes (`i_mode`, `i_nlink`, `i_size`, ...).
#[derive(Clone, Copy, Debug, Default)]
pub struct InodeMeta {
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds of the virtual clock.
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// A directory entry as `readdir` reports it.
pub struct DirEntry<'a> {
    pub name: &'a [u8],
    pub ino: u64,
    /// `DT_*`.
    pub dtype: u8,
    /// The position after this entry (the next `readdir` starts there).
    pub next: u64,
}

/// `struct inode_operations` (and `iterate_shared`): every method has Linux's answer for
/// a filesystem that lacks it. Names are single components, never `.` or `..` (the VFS
/// handles those), and the VFS has checked types and existence before calling.
pub trait InodeOps: Send + Sync {
    /// Find `name` in directory `dir` (None: no such entry, a negative dentry).
    fn lookup(&self, _dir: &Arc<Inode>, _name: &[u8]) -> Result<Option<Arc<Inode>>, Errno> {
        Err(ENOTDIR)
    }
    /// Create a regular file, device or fifo (`create`/`mknod`); `mode` has its type.
    fn create(&self, _dir: &Arc<Inode>, _name: &[u8], _mode: u32) -> Result<Arc<Inode>, Errno> {
        Err(EPERM)
    }
    fn mkdir(&self, _dir: &Arc<Inode>, _name: &[u8], _mode: u32) -> Result<Arc<Inode>, Errno> {
        Err(EPERM)
    }
    fn symlink(
        &self,
        _dir: &Arc<Inode>,
        _name: &[u8],
        _target: &[u8],
    ) -> Result<Arc<Inode>, Errno> {
        Err(EPERM)
    }
    /// A new name for `old` in `dir` (`link`).
    fn link(&self, _old: &Arc<Inode>, _dir: &Arc<Inode>, _name: &[u8]) -> Result<(), Errno> {
        Err(EPERM)
    }
    /// Remove the non-directory entry `name` (`unlink`).
    fn unlink(&self, _dir: &Arc<Inode>, _name: &[u8]) -> Result<(), Errno> {
        Err(EPERM)
    }
    /// Remove the empty directory `name` (`rmdir`: ENOTEMPTY otherwise).
    fn rmdir(&self, _dir: &Arc<Inode>, _name: &[u8]) -> Result<(), Errno> {
        Err(EPERM)
    }
    /// Move `old_dir/old_name` to `new_dir/new_name`, replacing a compatible target (the
    /// VFS has checked types, emptiness and loops).
    fn rename(
        &self,
        _old_dir: &Arc<Inode>,
        _old_name: &[u8],
        _new_dir: &Arc<Inode>,
        _new_name: &[u8],
    ) -> Result<(), Errno> {
        Err(EPERM)
    }
    /// A symbolic link's target (`get_link`).
    fn readlink(&self, _inode: &Arc<Inode>) -> Result<Vec<u8>, Errno> {
        Err(EINVAL)
    }
    /// Directory entries from position `pos`; `emit` returns false when the caller's
    /// buffer is full. Returns the position to continue from.
    fn readdir(
        &self,
        _dir: &Arc<Inode>,
        _pos: u64,
        _emit: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<u64, Errno> {
        Err(ENOTDIR)
    }
    /// Change the size (`setattr` with `ATTR_SIZE`): the caller has unmapped the pages.
    fn set_size(&self, _inode: &Arc<Inode>, _size: u64) -> Result<(), Errno> {
        Err(EPERM)
    }
    /// The last reference is gone (`evict_inode`): free what an unlinked inode owns.
    fn evict(&self, _inode: &Inode) {}
}

/// An inode.
pub struct Inode {
    pub i_ino: u64,
    pub i_sb: Arc<SuperBlock>,
    pub i_op: &'static dyn InodeOps,
    pub meta: IrqLock<InodeMeta>,
    /// The page cache object that holds the data of a regular file (a shmem object id
    /// for tmpfs), 0 for none.
    pub i_mapping: u64,
    /// The filesystem's own part (`i_private`, or the `container_of` of Linux's fs
    /// inodes).
    pub i_private: Box<dyn Any + Send + Sync>,
}

impl Inode {
    pub fn new(
        sb: &Arc<SuperBlock>,
        i_op: &'static dyn InodeOps,
        meta: InodeMeta,
        i_mapping: u64,
        i_private: Box<dyn Any + Send + Sync>,
    ) -> Inode {
        Inode {
            i_ino: sb.next_ino(),
            i_sb: sb.clone(),
            i_op,
            meta: IrqLock::new("inode", meta),
            i_mapping,
            i_private,
        }
    }

    pub fn meta(&self) -> InodeMeta {
        *self.meta.lock()
    }

    pub fn mode(&self) -> u32 {
        self.meta.lock().mode
    }

    pub fn is_dir(&self) -> bool {
        self.mode() & S_IFMT == S_IFDIR
    }

    pub fn is_symlink(&self) -> bool {
        self.mode() & S_IFMT == S_IFLNK
    }

    pub fn is_reg(&self) -> bool {
        self.mode() & S_IFMT == S_IFREG
    }

    pub fn size(&self) -> u64 {
        self.meta.lock().size
    }

    /// The private part as the filesystem's type.
    pub fn private<T: 'static>(&self) -> Option<&T> {
        self.i_private.downcast_ref::<T>()
    }

    /// `generic_fillattr`.
    pub fn getattr(&self) -> Kstat {
        let m = self.meta();
        let blocks = if self.i_mapping != 0 {
            crate::mm::shmem::nrpages(self.i_mapping) * (crate::mm::PAGE_SIZE / 512)
        } else {
            0
        };
        Kstat {
            uid: m.uid,
            gid: m.gid,
            mtime: m.mtime,
            rdev_major: m.rdev_major,
            rdev_minor: m.rdev_minor,
            blocks,
            ..Kstat::new(self.i_sb.dev(), self.i_ino, m.mode, m.nlink, m.size)
        }
    }

    /// Update mtime and ctime (a change to the data or the entries).
    pub fn touch(&self) {
        let now = super::super_block::now();
        let mut m = self.meta.lock();
        m.mtime = now;
        m.ctime = now;
    }
}

impl Drop for Inode {
    fn drop(&mut self) {
        self.i_op.evict(self);
    }
}
