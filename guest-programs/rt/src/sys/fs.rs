//! File-descriptor system calls: read, write, open/openat, close, lseek,
//! fstat, pipe2, dup2, getdents64 (with a parser for its records).

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

/// `swapon(path, flags)`: enable the swap area on a block device.
pub fn swapon(path: &CStr, flags: u32) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check(unsafe { syscall2(SYS_swapon, path.as_ptr() as usize, flags as usize) }).map(drop)
}

/// `swapoff(path)`: bring its pages back and disable the swap area.
pub fn swapoff(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check(unsafe { syscall1(SYS_swapoff, path.as_ptr() as usize) }).map(drop)
}

/// `unlink(path)`.
pub fn unlink(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check(unsafe { syscall1(SYS_unlink, path.as_ptr() as usize) }).map(drop)
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

/// `pipe2(fds, flags)`: returns `(read end, write end)`.
pub fn pipe2(flags: u32) -> SysResult<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is writable for two ints.
    check(unsafe { syscall2(SYS_pipe2, fds.as_mut_ptr() as usize, flags as usize) })?;
    Ok((fds[0], fds[1]))
}

/// `dup2(old, new)`: makes `new` refer to the same file as `old`.
pub fn dup2(old: i32, new: i32) -> SysResult<i32> {
    // SAFETY: no memory is involved.
    check(unsafe { syscall2(SYS_dup2, old as usize, new as usize) }).map(|fd| fd as i32)
}

/// `d_type` of a [`DirEntry`]: unknown (call `stat`).
pub const DT_UNKNOWN: u8 = 0;
/// `d_type`: directory.
pub const DT_DIR: u8 = 4;
/// `d_type`: regular file.
pub const DT_REG: u8 = 8;
/// `d_type`: symbolic link.
pub const DT_LNK: u8 = 10;

/// `getdents64(fd, buf, len)`: fills `buf` with `struct linux_dirent64`
/// records; returns the number of bytes used (0 at the end of the
/// directory). Decode them with [`DirEntries`].
pub fn getdents64(fd: i32, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes.
    check(unsafe {
        syscall3(
            SYS_getdents64,
            fd as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    })
}

/// One directory entry decoded from a [`getdents64`] buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// Inode number.
    pub ino: u64,
    /// File type (`DT_*`).
    pub d_type: u8,
    /// Name, without the NUL.
    pub name: &'a [u8],
}

/// Iterator over the records of a [`getdents64`] buffer:
///
/// ```text
/// u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[] (NUL-terminated)
/// ```
///
/// Stops at the first malformed record.
pub struct DirEntries<'a> {
    buf: &'a [u8],
}

impl<'a> DirEntries<'a> {
    /// Records in `buf` (the filled part of a `getdents64` buffer).
    pub fn new(buf: &'a [u8]) -> Self {
        DirEntries { buf }
    }
}

impl<'a> Iterator for DirEntries<'a> {
    type Item = DirEntry<'a>;

    fn next(&mut self) -> Option<DirEntry<'a>> {
        const HEADER: usize = 19;
        if self.buf.len() < HEADER {
            return None;
        }
        let ino = u64::from_ne_bytes(self.buf[0..8].try_into().ok()?);
        let reclen = u16::from_ne_bytes([self.buf[16], self.buf[17]]) as usize;
        if reclen < HEADER || reclen > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let raw = &self.buf[HEADER..reclen];
        let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
        let d_type = self.buf[18];
        self.buf = &self.buf[reclen..];
        Some(DirEntry { ino, d_type, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_round_trip() {
        let (r, w) = pipe2(O_CLOEXEC).expect("pipe2");
        assert_eq!(write(w, b"abc"), Ok(3));
        let mut buf = [0u8; 8];
        assert_eq!(read(r, &mut buf), Ok(3));
        assert_eq!(&buf[..3], b"abc");
        close(r).expect("close");
        close(w).expect("close");
    }

    /// Lists a real directory and checks `.` and `..` are there and typed.
    #[test]
    fn getdents64_lists_a_directory() {
        let fd = open(c"/", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0).expect("open /");
        let mut buf = [0u8; 4096];
        let mut names = Vec::new();
        loop {
            let n = getdents64(fd, &mut buf).expect("getdents64");
            if n == 0 {
                break;
            }
            for e in DirEntries::new(&buf[..n]) {
                names.push((e.name.to_vec(), e.d_type));
            }
        }
        close(fd).expect("close");
        assert!(names.contains(&(b".".to_vec(), DT_DIR)));
        assert!(names.contains(&(b"..".to_vec(), DT_DIR)));
    }

    #[test]
    fn dirent_parser_stops_at_malformed_records() {
        let mut buf = vec![0u8; 24 + 24];
        buf[0] = 7; // ino
        buf[16] = 24; // reclen
        buf[18] = DT_REG;
        buf[19..22].copy_from_slice(b"abc");
        buf[24 + 16] = 200; // reclen beyond the buffer
        let v: Vec<_> = DirEntries::new(&buf).collect();
        assert_eq!(
            v,
            [DirEntry {
                ino: 7,
                d_type: DT_REG,
                name: b"abc"
            }]
        );
    }
}
