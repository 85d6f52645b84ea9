//! File-descriptor system calls: read, write, open/openat, close, lseek, fstat.

use core::ffi::CStr;

use super::nr::*;
use super::{check, syscall1, syscall2, syscall3, syscall4, SysResult};

/// Standard input.
pub const STDIN: i32 = 0;
/// Standard output.
pub const STDOUT: i32 = 1;
/// Standard error.
pub const STDERR: i32 = 2;

/// `dirfd` meaning "relative to the current directory" for `*at` calls.
pub const AT_FDCWD: i32 = -100;

/// Open for reading only.
pub const O_RDONLY: u32 = 0o0;
/// Open for writing only.
pub const O_WRONLY: u32 = 0o1;
/// Open for reading and writing.
pub const O_RDWR: u32 = 0o2;
/// Create the file if it does not exist.
pub const O_CREAT: u32 = 0o100;
/// With `O_CREAT`: fail if the file exists.
pub const O_EXCL: u32 = 0o200;
/// Do not make the file the controlling terminal.
pub const O_NOCTTY: u32 = 0o400;
/// Truncate to length 0.
pub const O_TRUNC: u32 = 0o1000;
/// Every write appends.
pub const O_APPEND: u32 = 0o2000;
/// Non-blocking I/O.
pub const O_NONBLOCK: u32 = 0o4000;
/// Fail unless the path is a directory.
pub const O_DIRECTORY: u32 = 0o200000;
/// Do not follow a final symbolic link.
pub const O_NOFOLLOW: u32 = 0o400000;
/// Close on `execve`.
pub const O_CLOEXEC: u32 = 0o2000000;

/// `lseek` whence: absolute offset.
pub const SEEK_SET: u32 = 0;
/// `lseek` whence: relative to the current offset.
pub const SEEK_CUR: u32 = 1;
/// `lseek` whence: relative to the end of the file.
pub const SEEK_END: u32 = 2;

/// File type mask of [`Stat::st_mode`].
pub const S_IFMT: u32 = 0o170000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Block device.
pub const S_IFBLK: u32 = 0o060000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010000;

/// `struct stat` as filled by `fstat`/`newfstatat` on x86-64 (144 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Device containing the file.
    pub st_dev: u64,
    /// Inode number.
    pub st_ino: u64,
    /// Number of hard links (note: before `st_mode` on x86-64).
    pub st_nlink: u64,
    /// File type and permission bits.
    pub st_mode: u32,
    /// Owner user id.
    pub st_uid: u32,
    /// Owner group id.
    pub st_gid: u32,
    /// Padding.
    pub __pad0: u32,
    /// Device number, for device files.
    pub st_rdev: u64,
    /// Size in bytes.
    pub st_size: i64,
    /// Preferred I/O block size.
    pub st_blksize: i64,
    /// Number of 512-byte blocks allocated.
    pub st_blocks: i64,
    /// Last access, seconds.
    pub st_atime: i64,
    /// Last access, nanoseconds.
    pub st_atime_nsec: i64,
    /// Last modification, seconds.
    pub st_mtime: i64,
    /// Last modification, nanoseconds.
    pub st_mtime_nsec: i64,
    /// Last status change, seconds.
    pub st_ctime: i64,
    /// Last status change, nanoseconds.
    pub st_ctime_nsec: i64,
    /// Reserved.
    pub __unused: [i64; 3],
}

const _: () = assert!(core::mem::size_of::<Stat>() == 144);

/// `read(fd, buf, len)`: returns the number of bytes read (0 at end of file).
pub fn read(fd: i32, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    check(unsafe { syscall3(SYS_read, fd as usize, buf.as_mut_ptr() as usize, buf.len()) })
}

/// `write(fd, buf, len)`: returns the number of bytes written (may be short).
pub fn write(fd: i32, buf: &[u8]) -> SysResult<usize> {
    // SAFETY: the kernel only reads buf.
    check(unsafe { syscall3(SYS_write, fd as usize, buf.as_ptr() as usize, buf.len()) })
}

/// Writes all of `buf`, retrying short writes and `EINTR`.
pub fn write_all(fd: i32, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        match write(fd, buf) {
            // A zero-length write of a non-empty buffer would loop forever.
            Ok(0) => return Err(super::Errno::EIO),
            Ok(n) => buf = &buf[n.min(buf.len())..],
            Err(super::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `open(path, flags, mode)` (the legacy call; see also [`openat`]).
pub fn open(path: &CStr, flags: u32, mode: u32) -> SysResult<i32> {
    // SAFETY: path is NUL-terminated.
    check(unsafe {
        syscall3(
            SYS_open,
            path.as_ptr() as usize,
            flags as usize,
            mode as usize,
        )
    })
    .map(|fd| fd as i32)
}

/// `openat(dirfd, path, flags, mode)`; `dirfd` may be [`AT_FDCWD`].
pub fn openat(dirfd: i32, path: &CStr, flags: u32, mode: u32) -> SysResult<i32> {
    // SAFETY: path is NUL-terminated.
    check(unsafe {
        syscall4(
            SYS_openat,
            dirfd as usize,
            path.as_ptr() as usize,
            flags as usize,
            mode as usize,
        )
    })
    .map(|fd| fd as i32)
}

/// `close(fd)`.
pub fn close(fd: i32) -> SysResult<()> {
    // SAFETY: no memory is involved.
    check(unsafe { syscall1(SYS_close, fd as usize) }).map(drop)
}

/// `lseek(fd, offset, whence)`: returns the new offset from the file start.
pub fn lseek(fd: i32, offset: i64, whence: u32) -> SysResult<u64> {
    // SAFETY: no memory is involved.
    check(unsafe { syscall3(SYS_lseek, fd as usize, offset as usize, whence as usize) })
        .map(|off| off as u64)
}

/// `fstat(fd, &stat)`.
pub fn fstat(fd: i32) -> SysResult<Stat> {
    let mut st = Stat::default();
    // SAFETY: st is a valid, writable struct stat.
    check(unsafe { syscall2(SYS_fstat, fd as usize, &mut st as *mut Stat as usize) })?;
    Ok(st)
}
