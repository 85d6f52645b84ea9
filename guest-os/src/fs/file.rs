//! Open-file descriptions (Linux's `struct file`, `include/linux/fs.h`) and the operations
//! every kind of file implements (`struct file_operations` as the [`FileOps`] trait).
//!
//! A descriptor names an `Arc<File>`: `dup`, `fcntl(F_DUPFD)` and fork copy the `Arc`, so
//! the descriptions, with their offset and status flags, are shared exactly as POSIX says
//! (a read through one descriptor moves the offset seen through the other). The console,
//! initramfs files and directories, pipes, /proc files and memfds implement [`FileOps`];
//! the page cache and block devices plug in the same way.
//!
//! This module owns the description; the descriptor table is `fdtable.rs`, the system calls
//! are in `syscall/fs.rs`. Operations never hold a lock of the description across a user
//! copy or a sleep: `f_pos` is read, the operation runs on a copy, and the result is stored.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};

use super::stat::Kstat;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, SysResult, EINVAL, ENODEV, ENOMEM, ENOTDIR, ENOTTY, ESPIPE};

/// Open flags (`include/uapi/asm-generic/fcntl.h`).
pub mod flags {
    pub const O_ACCMODE: u32 = 0o3;
    pub const O_RDONLY: u32 = 0o0;
    pub const O_WRONLY: u32 = 0o1;
    pub const O_RDWR: u32 = 0o2;
    pub const O_CREAT: u32 = 0o100;
    pub const O_EXCL: u32 = 0o200;
    pub const O_NOCTTY: u32 = 0o400;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_NONBLOCK: u32 = 0o4000;
    pub const O_DSYNC: u32 = 0o10000;
    pub const FASYNC: u32 = 0o20000;
    pub const O_DIRECT: u32 = 0o40000;
    pub const O_LARGEFILE: u32 = 0o100000;
    pub const O_DIRECTORY: u32 = 0o200000;
    pub const O_NOFOLLOW: u32 = 0o400000;
    pub const O_NOATIME: u32 = 0o1000000;
    pub const O_CLOEXEC: u32 = 0o2000000;
    pub const O_PATH: u32 = 0o10000000;
    /// `__O_TMPFILE | O_DIRECTORY`.
    pub const O_TMPFILE: u32 = 0o20200000;
    /// The flags `fcntl(F_SETFL)` may change (`SETFL_MASK`).
    pub const SETFL_MASK: u32 = O_APPEND | FASYNC | O_NONBLOCK | O_DIRECT | O_NOATIME;
}

/// `poll` event bits (`include/uapi/asm-generic/poll.h`).
pub mod poll {
    pub const POLLIN: u16 = 0x1;
    pub const POLLPRI: u16 = 0x2;
    pub const POLLOUT: u16 = 0x4;
    pub const POLLERR: u16 = 0x8;
    pub const POLLHUP: u16 = 0x10;
    pub const POLLNVAL: u16 = 0x20;
    pub const POLLRDNORM: u16 = 0x40;
    pub const POLLWRNORM: u16 = 0x100;
}

/// `lseek` whence values.
pub const SEEK_SET: u32 = 0;
pub const SEEK_CUR: u32 = 1;
pub const SEEK_END: u32 = 2;

/// What a file can do (`struct file_operations`). Defaults are the answers Linux gives for
/// a file without the operation. Buffers are user addresses; implementations copy through
/// `uaccess`, so a bad pointer is EFAULT (or a short count after partial progress).
pub trait FileOps: Send + Sync {
    /// Read up to `len` bytes at `*pos` into user memory at `buf`, advancing `*pos`.
    fn read(&self, _file: &File, _buf: u64, _len: usize, _pos: &mut u64) -> SysResult {
        Err(EINVAL)
    }
    /// Write up to `len` bytes from user memory at `buf` at `*pos`, advancing `*pos`.
    fn write(&self, _file: &File, _buf: u64, _len: usize, _pos: &mut u64) -> SysResult {
        Err(EINVAL)
    }
    /// Whether the file has positions (`lseek`, `pread`): pipes and the console do not.
    fn seekable(&self) -> bool {
        false
    }
    /// The size `SEEK_END` counts from.
    fn size(&self) -> u64 {
        0
    }
    /// Directory entries as `linux_dirent64` records from position `*pos`.
    fn getdents(&self, _file: &File, _buf: u64, _count: usize, _pos: &mut u64) -> SysResult {
        Err(ENOTDIR)
    }
    /// `fstat`.
    fn stat(&self) -> Result<Kstat, Errno>;
    /// Ready events now (`POLLIN`...); a file that never blocks is always ready.
    fn poll(&self, _file: &File) -> u16 {
        poll::POLLIN | poll::POLLOUT | poll::POLLRDNORM | poll::POLLWRNORM
    }
    /// Queue the current task to be woken when [`FileOps::poll`]'s answer may change
    /// (`poll_wait`); files whose readiness never changes need not.
    fn poll_wait(&self) {}
    /// Stop being woken by this file ([`FileOps::poll_wait`]'s undo, `remove_wait_queue`).
    fn poll_unwait(&self) {}
    fn ioctl(&self, _file: &File, _cmd: u64, _arg: u64) -> SysResult {
        Err(ENOTTY)
    }
    /// `ftruncate`: EINVAL unless the file is a regular file that can be written.
    fn truncate(&self, _len: u64) -> SysResult {
        Err(EINVAL)
    }
    /// For mmap: the page cache object a mapping shows and how maps names it (`None`:
    /// ENODEV).
    fn mmap_target(&self) -> Option<MapTarget> {
        None
    }
    /// The file's place in the tree, for files of mounted filesystems (fchmod, fstatfs,
    /// `*at` calls relative to a directory, fchdir).
    fn vfs_path(&self) -> Option<super::mount::Path> {
        None
    }
    /// Whether this is a regular file or directory (for error choices: ftruncate's EINVAL).
    fn is_dir(&self) -> bool {
        false
    }
    /// The absolute path of a directory (for `*at` calls relative to it and `fchdir`).
    fn path(&self) -> Option<alloc::vec::Vec<u8>> {
        None
    }
    /// `fsync`/`fdatasync`: make written data durable. Files without a backing store
    /// have nothing to do.
    fn fsync(&self) -> SysResult {
        Ok(0)
    }
    /// A name for /proc and logs.
    fn name(&self) -> &'static str;
}

/// What a file mapping names: the page cache object (`vm_file->f_mapping`) and, for
/// /proc/PID/maps, the device, inode number and path.
pub struct MapTarget {
    pub id: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u64,
    pub name: alloc::vec::Vec<u8>,
}

/// `f_mode` bits: what the open mode allows (Linux's `FMODE_READ`/`FMODE_WRITE`).
pub const FMODE_READ: u32 = 1;
pub const FMODE_WRITE: u32 = 2;

/// An open-file description (`struct file`).
pub struct File {
    /// Status flags as given to open and changed by `F_SETFL` (access mode included).
    pub f_flags: AtomicU32,
    /// [`FMODE_READ`] | [`FMODE_WRITE`], fixed at open.
    pub f_mode: u32,
    /// The file offset, shared by every descriptor of this description.
    pub f_pos: IrqLock<u64>,
    /// The operations with their private data (Linux's `f_op` and `private_data` in one
    /// trait object).
    pub f_op: Box<dyn FileOps>,
}

impl File {
    /// A description with open flags `flags` (the access mode decides `f_mode`).
    pub fn new(f_op: Box<dyn FileOps>, flags: u32) -> File {
        let f_mode = match flags & flags::O_ACCMODE {
            flags::O_RDONLY => FMODE_READ,
            flags::O_WRONLY => FMODE_WRITE,
            _ => FMODE_READ | FMODE_WRITE,
        };
        File {
            f_flags: AtomicU32::new(flags & !flags::O_CLOEXEC),
            f_mode,
            f_pos: IrqLock::new("f_pos", 0),
            f_op,
        }
    }

    pub fn flags(&self) -> u32 {
        self.f_flags.load(Ordering::Relaxed)
    }

    pub fn readable(&self) -> bool {
        self.f_mode & FMODE_READ != 0
    }

    pub fn writable(&self) -> bool {
        self.f_mode & FMODE_WRITE != 0
    }

    pub fn nonblock(&self) -> bool {
        self.flags() & flags::O_NONBLOCK != 0
    }

    pub fn pos(&self) -> u64 {
        *self.f_pos.lock()
    }

    pub fn set_pos(&self, pos: u64) {
        *self.f_pos.lock() = pos;
    }

    /// `lseek` (`generic_file_llseek`): EINVAL for a negative result or a bad whence,
    /// ESPIPE for a file without positions.
    pub fn llseek(&self, off: i64, whence: u32) -> SysResult {
        if !self.f_op.seekable() {
            return Err(ESPIPE);
        }
        let base = match whence {
            SEEK_SET => 0,
            SEEK_CUR => self.pos() as i64,
            SEEK_END => self.f_op.size() as i64,
            _ => return Err(EINVAL),
        };
        let new = base.checked_add(off).ok_or(EINVAL)?;
        if new < 0 {
            return Err(EINVAL);
        }
        self.set_pos(new as u64);
        Ok(new as u64)
    }

    /// What mmap maps: EBADF for an O_PATH descriptor, ENODEV for a file that cannot be
    /// mapped.
    pub fn mmap_target(&self) -> Result<MapTarget, Errno> {
        if self.flags() & flags::O_PATH != 0 {
            return Err(crate::syscall::errno::EBADF);
        }
        self.f_op.mmap_target().ok_or(ENODEV)
    }
}

/// A new description in an `Arc`, or ENOMEM.
///
/// The allocation is probed first: a block of the `Arc`'s size is taken and given back, so
/// that the `Arc::new` after it is served from the same free slot. Nothing else runs in
/// between (one CPU, no preemption in the kernel), so it cannot fail; stable Rust has no
/// fallible `Arc` constructor.
pub fn try_file(f_op: Box<dyn FileOps>, flags: u32) -> Result<Arc<File>, Errno> {
    try_arc(File::new(f_op, flags))
}

/// `Arc::new(v)`, or ENOMEM (see [`try_file`] for how).
pub fn try_arc<T>(v: T) -> Result<Arc<T>, Errno> {
    // An Arc's block: the two counts, then the value.
    probe(core::alloc::Layout::new::<(usize, usize, T)>())?;
    Ok(Arc::new(v))
}

fn probe(layout: core::alloc::Layout) -> Result<(), Errno> {
    if layout.size() == 0 {
        return Ok(());
    }
    // SAFETY: a non-zero-sized layout; the block is freed at once with the same layout.
    unsafe {
        let p = alloc::alloc::alloc(layout);
        if p.is_null() {
            return Err(ENOMEM);
        }
        alloc::alloc::dealloc(p, layout);
    }
    Ok(())
}

/// A boxed trait object for [`try_file`], or ENOMEM.
pub fn try_ops<T: FileOps + 'static>(ops: T) -> Result<Box<dyn FileOps>, Errno> {
    Ok(crate::mm::slab::try_box(ops).map_err(|_| ENOMEM)?)
}
