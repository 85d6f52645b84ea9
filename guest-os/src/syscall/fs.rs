//! File system calls on open files (`fs/read_write.c`, `fs/open.c`, `fs/fcntl.c`,
//! `fs/file.c`): read, write and their vector and positioned forms, open(at), creat,
//! close, lseek, ioctl, getdents64, pipe(2), dup/dup2/dup3, fcntl, ftruncate/truncate,
//! fsync, memfd_create. Every user buffer goes through `uaccess`, so a bad pointer is
//! -EFAULT; the descriptions are the shared [`File`]s of `fs/file.rs`.

use alloc::sync::Arc;

use super::errno::{
    Errno, SysResult, EACCES, EBADF, EEXIST, EFAULT, EINVAL, EISDIR, ENOENT, ENOTDIR, EOPNOTSUPP,
    EPERM, EROFS, ESPIPE,
};
use super::Args;
use crate::fs::fdtable::{
    close_fd, fd_install, fd_install_from, fd_replace, fdget, fget, nofile_limit,
};
use crate::fs::file::{flags::*, try_file, try_ops, File};
use crate::fs::namei::{self, Node, AT_FDCWD, PATH_MAX};
use crate::fs::procfs;
use crate::fs::stat::S_IFREG;
use crate::fs::vfs_file::VfsFile;
use crate::mm::uaccess::{access_ok, copy_to_user, get_user, put_user, strncpy_from_user};

/// Largest count one read or write transfers (`MAX_RW_COUNT`: INT_MAX rounded down to a
/// page).
const MAX_RW_COUNT: usize = 0x7fff_f000;
/// Most iovecs per call (`UIO_MAXIOV`).
const UIO_MAXIOV: u64 = 1024;

/// A path argument, copied in (EFAULT, ENAMETOOLONG; empty paths are the caller's call).
pub fn user_path(ptr: u64) -> Result<alloc::vec::Vec<u8>, Errno> {
    let p = strncpy_from_user(ptr, PATH_MAX)?;
    if p.len() >= PATH_MAX {
        return Err(super::errno::ENAMETOOLONG);
    }
    Ok(p)
}

/// The position a read or write at the file offset uses and stores back. Offsets are not
/// locked across the operation (which may sleep), as on Linux for non-regular files.
fn rw_at_pos(f: &File, op: impl FnOnce(&File, &mut u64) -> SysResult) -> SysResult {
    let mut pos = f.pos();
    let r = op(f, &mut pos);
    if r.is_ok() && f.f_op.seekable() {
        f.set_pos(pos);
    }
    r
}

/// `vfs_read`'s checks, then the read.
fn do_read(f: &File, buf: u64, len: u64, pos: Option<u64>) -> SysResult {
    if !f.readable() {
        return Err(EBADF);
    }
    let len = (len as usize).min(MAX_RW_COUNT);
    if !access_ok(buf, len) {
        return Err(EFAULT);
    }
    match pos {
        Some(mut p) => f.f_op.read(f, buf, len, &mut p),
        None => rw_at_pos(f, |f, p| f.f_op.read(f, buf, len, p)),
    }
}

/// `vfs_write`'s checks, then the write.
fn do_write(f: &File, buf: u64, len: u64, pos: Option<u64>) -> SysResult {
    if !f.writable() {
        return Err(EBADF);
    }
    let len = (len as usize).min(MAX_RW_COUNT);
    if !access_ok(buf, len) {
        return Err(EFAULT);
    }
    match pos {
        Some(mut p) => f.f_op.write(f, buf, len, &mut p),
        None => rw_at_pos(f, |f, p| f.f_op.write(f, buf, len, p)),
    }
}

pub fn sys_read(a: &Args) -> SysResult {
    let f = fdget(a.0[0] as u32 as u64)?;
    do_read(&f, a.0[1], a.0[2], None)
}

pub fn sys_write(a: &Args) -> SysResult {
    let f = fdget(a.0[0] as u32 as u64)?;
    do_write(&f, a.0[1], a.0[2], None)
}

/// A positioned transfer's file: ESPIPE without positions, EINVAL for a negative offset.
fn positioned(fd: u64, off: u64) -> Result<Arc<File>, Errno> {
    let f = fdget(fd as u32 as u64)?;
    if (off as i64) < 0 {
        return Err(EINVAL);
    }
    if !f.f_op.seekable() {
        return Err(ESPIPE);
    }
    Ok(f)
}

/// `pread64(fd, buf, count, offset)`: at `offset`, leaving the file offset alone.
pub fn sys_pread64(a: &Args) -> SysResult {
    let f = positioned(a.0[0], a.0[3])?;
    do_read(&f, a.0[1], a.0[2], Some(a.0[3]))
}

/// `pwrite64(fd, buf, count, offset)`.
pub fn sys_pwrite64(a: &Args) -> SysResult {
    let f = positioned(a.0[0], a.0[3])?;
    do_write(&f, a.0[1], a.0[2], Some(a.0[3]))
}

/// The vector calls (`do_readv`/`do_writev`): each iovec in turn, stopping at the first
/// short transfer; an error after progress returns the progress.
fn vectored(f: &File, iov: u64, cnt: u64, mut pos: Option<u64>, write: bool) -> SysResult {
    if cnt > UIO_MAXIOV {
        return Err(EINVAL);
    }
    // Linux checks the whole vector before transferring (`import_iovec`): EFAULT for an
    // unreadable vector, EINVAL for a negative length or a total that overflows ssize_t.
    let mut sum: u64 = 0;
    for i in 0..cnt {
        let len: u64 = get_user(iov + i * 16 + 8)?;
        if (len as i64) < 0 {
            return Err(EINVAL);
        }
        sum = sum.checked_add(len).ok_or(EINVAL)?;
        if (sum as i64) < 0 {
            return Err(EINVAL);
        }
    }
    if write && !f.writable() || !write && !f.readable() {
        return Err(EBADF);
    }
    let mut total: u64 = 0;
    for i in 0..cnt {
        let base: u64 = get_user(iov + i * 16)?;
        let len: u64 = get_user(iov + i * 16 + 8)?;
        if len == 0 {
            continue;
        }
        let r = if write {
            do_write(f, base, len, pos)
        } else {
            do_read(f, base, len, pos)
        };
        match r {
            Ok(n) => {
                total += n;
                if let Some(p) = pos.as_mut() {
                    *p += n;
                }
                if n < len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
        if total as usize >= MAX_RW_COUNT {
            break;
        }
    }
    Ok(total)
}

/// `readv(fd, iov, iovcnt)`.
pub fn sys_readv(a: &Args) -> SysResult {
    let f = fdget(a.0[0] as u32 as u64)?;
    vectored(&f, a.0[1], a.0[2], None, false)
}

/// `writev(fd, iov, iovcnt)`.
pub fn sys_writev(a: &Args) -> SysResult {
    let f = fdget(a.0[0] as u32 as u64)?;
    vectored(&f, a.0[1], a.0[2], None, true)
}

/// `preadv(fd, iov, iovcnt, pos_l, pos_h)` (x86-64 passes the whole offset in `pos_l`).
pub fn sys_preadv(a: &Args) -> SysResult {
    let f = positioned(a.0[0], a.0[3])?;
    vectored(&f, a.0[1], a.0[2], Some(a.0[3]), false)
}

/// `pwritev(fd, iov, iovcnt, pos_l, pos_h)`.
pub fn sys_pwritev(a: &Args) -> SysResult {
    let f = positioned(a.0[0], a.0[3])?;
    vectored(&f, a.0[1], a.0[2], Some(a.0[3]), true)
}

/// Open the node at `abs` with `flags` and creation mode `mode` (`do_filp_open`):
/// returns the new description. Errors in Linux's order: lookup, O_EXCL, EISDIR,
/// ENOTDIR, then what the filesystem says (EROFS on a read-only mount).
fn open_node(abs: &[u8], flags: u32, mode: u32) -> Result<Arc<File>, Errno> {
    let acc = flags & O_ACCMODE;
    let wants_write = acc == O_WRONLY || acc == O_RDWR || flags & O_TRUNC != 0;
    let follow = flags & O_NOFOLLOW == 0;
    if flags & O_TMPFILE == O_TMPFILE {
        namei::lookup(abs, true)?;
        return Err(EOPNOTSUPP);
    }
    let node = match namei::lookup(abs, follow) {
        Ok(n) => {
            if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
                return Err(EEXIST);
            }
            n
        }
        Err(ENOENT) if flags & O_CREAT != 0 => {
            if abs.last() == Some(&b'/') {
                namei::lookup_parent(abs)?;
                return Err(EISDIR);
            }
            match namei::create(abs, namei::NewKind::File(S_IFREG | (mode & 0o7777)))? {
                Some(p) => Node::Vfs(p),
                // /proc takes no new names.
                None => return Err(ENOENT),
            }
        }
        Err(e) => return Err(e),
    };
    let ops = match node {
        Node::Vfs(p) => {
            let inode = p.inode().ok_or(ENOENT)?;
            if inode.is_symlink() {
                // O_NOFOLLOW on a link (O_PATH would open the link itself).
                if flags & O_PATH == 0 {
                    return Err(super::errno::ELOOP);
                }
            }
            let dir = inode.is_dir();
            if dir && (flags & O_CREAT != 0 || (wants_write && flags & O_PATH == 0)) {
                return Err(EISDIR);
            }
            if !dir && flags & O_DIRECTORY != 0 {
                return Err(ENOTDIR);
            }
            if wants_write && flags & O_PATH == 0 && p.mnt.sb.read_only {
                return Err(EROFS);
            }
            if flags & O_TRUNC != 0 && flags & O_PATH == 0 && inode.is_reg() && wants_write {
                namei::do_truncate(&inode, 0)?;
            }
            if inode.mode() & crate::fs::stat::S_IFMT == crate::fs::blockdev::S_IFBLK
                && flags & O_PATH == 0
            {
                // A block device node (`blkdev_open`): the disk with its number.
                let m = inode.meta();
                let dev = crate::block::disks()
                    .into_iter()
                    .find(|d| d.devt() == (m.rdev_major, m.rdev_minor))
                    .ok_or(super::errno::ENXIO)?;
                try_ops(crate::fs::blockdev::BlockDevFile::new(dev))?
            } else if inode.mode() & crate::fs::stat::S_IFMT == crate::fs::stat::S_IFCHR
                && flags & O_PATH == 0
            {
                // A character device node (`chrdev_open`).
                let m = inode.meta();
                crate::fs::chrdev::open(m.rdev_major, m.rdev_minor)?
            } else if crate::fs::cgroup::is_cgroup_file(&inode) && flags & O_PATH == 0 {
                // An interface file of /sys/fs/cgroup (kernfs).
                try_ops(crate::fs::cgroup::open(p, acc != O_WRONLY, wants_write)?)?
            } else {
                try_ops(VfsFile::new(p)?)?
            }
        }
        Node::Proc(p) => {
            let is_dir = !matches!(p, procfs::Node::File(_) | procfs::Node::Link(_));
            if is_dir && (flags & O_CREAT != 0 || (wants_write && flags & O_PATH == 0)) {
                return Err(EISDIR);
            }
            if !is_dir && flags & O_DIRECTORY != 0 {
                return Err(ENOTDIR);
            }
            // /proc files are read-only (mode 0444), but for the tunables (0644).
            let sink = procfs::sink_of(abs);
            if wants_write && flags & O_PATH == 0 && sink.is_none() {
                return Err(EACCES);
            }
            match p {
                procfs::Node::File(data) => try_ops(procfs::ProcFile { data, sink })?,
                procfs::Node::Root => try_ops(procfs::ProcDir { dir: None })?,
                procfs::Node::Dir(d) => try_ops(procfs::ProcDir { dir: Some(d) })?,
                procfs::Node::Link(_) => return Err(super::errno::ELOOP),
            }
        }
    };
    // O_PATH descriptors can neither read nor write.
    let mode_flags = if flags & O_PATH != 0 {
        O_PATH | (flags & (O_DIRECTORY | O_NOFOLLOW))
    } else {
        flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC)
    };
    let f = try_file(ops, mode_flags)?;
    Ok(f)
}

/// `openat(dirfd, path, flags, mode)` and its older forms.
fn do_open(dirfd: i32, path_ptr: u64, flags: u32, mode: u32) -> SysResult {
    let path = user_path(path_ptr)?;
    let abs = namei::path_at(dirfd, &path)?;
    let f = open_node(&abs, flags, mode)?;
    let f = if flags & O_PATH != 0 {
        // No access at all through an O_PATH descriptor.
        match Arc::try_unwrap(f) {
            Ok(mut file) => {
                file.f_mode = 0;
                crate::fs::file::try_arc(file)?
            }
            Err(f) => f,
        }
    } else {
        f
    };
    Ok(fd_install(f, flags & O_CLOEXEC != 0)? as u64)
}

pub fn sys_open(a: &Args) -> SysResult {
    do_open(AT_FDCWD, a.0[0], a.0[1] as u32, a.0[2] as u32)
}

pub fn sys_openat(a: &Args) -> SysResult {
    do_open(a.0[0] as i32, a.0[1], a.0[2] as u32, a.0[3] as u32)
}

/// `creat(path, mode)` = `open(path, O_CREAT|O_WRONLY|O_TRUNC, mode)`.
pub fn sys_creat(a: &Args) -> SysResult {
    do_open(
        AT_FDCWD,
        a.0[0],
        O_CREAT | O_WRONLY | O_TRUNC,
        a.0[1] as u32,
    )
}

pub fn sys_close(a: &Args) -> SysResult {
    close_fd(a.0[0] as u32 as u64)?;
    Ok(0)
}

/// `close_range(first, last, flags)`: close (or with CLOSE_RANGE_CLOEXEC mark) a range.
pub fn sys_close_range(a: &Args) -> SysResult {
    const CLOSE_RANGE_UNSHARE: u64 = 1 << 1;
    const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
    let (first, last, flags) = (a.0[0] as u32 as usize, a.0[1] as u32 as usize, a.0[2]);
    if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(EINVAL);
    }
    let t = crate::proc::current().ok_or(EBADF)?;
    let max = t.files().lock().max_fds();
    for fd in first..=last.min(max.saturating_sub(1)) {
        if flags & CLOSE_RANGE_CLOEXEC != 0 {
            let mut files = t.files().lock();
            if files.get(fd as u64).is_some() {
                files.set_close_on_exec(fd, true);
            }
        } else {
            let _ = close_fd(fd as u64);
        }
    }
    Ok(0)
}

pub fn sys_lseek(a: &Args) -> SysResult {
    fdget(a.0[0] as u32 as u64)?.llseek(a.0[1] as i64, a.0[2] as u32)
}

/// `ioctl(fd, cmd, arg)`: the file's own answer (ENOTTY for all but terminals, which have
/// no settings yet either). FIOCLEX/FIONCLEX work on any descriptor.
pub fn sys_ioctl(a: &Args) -> SysResult {
    const FIONCLEX: u64 = 0x5450;
    const FIOCLEX: u64 = 0x5451;
    const FIONBIO: u64 = 0x5421;
    let f = fdget(a.0[0] as u32 as u64)?;
    match a.0[1] & 0xffff_ffff {
        FIOCLEX | FIONCLEX => {
            let t = crate::proc::current().ok_or(EBADF)?;
            t.files()
                .lock()
                .set_close_on_exec(a.0[0] as usize, a.0[1] & 0xffff_ffff == FIOCLEX);
            Ok(0)
        }
        FIONBIO => {
            let on: i32 = get_user(a.0[2])?;
            let fl = if on != 0 {
                f.flags() | O_NONBLOCK
            } else {
                f.flags() & !O_NONBLOCK
            };
            f.f_flags.store(fl, core::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        cmd => f.f_op.ioctl(&f, cmd, a.0[2]),
    }
}

/// `getdents64(fd, dirp, count)`.
pub fn sys_getdents64(a: &Args) -> SysResult {
    let (buf, count) = (a.0[1], a.0[2] as usize);
    let f = fdget(a.0[0] as u32 as u64)?;
    if !f.f_op.is_dir() {
        return Err(ENOTDIR);
    }
    if !access_ok(buf, count) {
        return Err(EFAULT);
    }
    let count = count.min(MAX_RW_COUNT);
    let mut pos = f.pos();
    let n = f.f_op.getdents(&f, buf, count, &mut pos)?;
    f.set_pos(pos);
    Ok(n)
}

/// `pipe2(fds, flags)` / `pipe(fds)`.
pub fn sys_pipe2(a: &Args) -> SysResult {
    let (fds, flags) = (a.0[0], a.0[1] as u32);
    if a.0[1] & !((O_NONBLOCK | O_CLOEXEC | O_DIRECT) as u64) != 0 {
        return Err(EINVAL);
    }
    let (r, w) = crate::fs::pipe::new_pipe()?;
    let status = flags & (O_NONBLOCK | O_DIRECT);
    let rf = try_file(try_ops(r)?, O_RDONLY | status)?;
    let wf = try_file(try_ops(w)?, O_WRONLY | status)?;
    let cloexec = flags & O_CLOEXEC != 0;
    let rfd = fd_install(rf, cloexec)?;
    let wfd = match fd_install(wf, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = close_fd(rfd as u64);
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(rfd as u32).to_le_bytes());
    b[4..].copy_from_slice(&(wfd as u32).to_le_bytes());
    if let Err(e) = copy_to_user(fds, &b) {
        // Linux releases both descriptors when it cannot report them.
        let _ = close_fd(rfd as u64);
        let _ = close_fd(wfd as u64);
        return Err(e);
    }
    Ok(0)
}

/// `dup(old)`: the lowest free descriptor, sharing the description.
pub fn sys_dup(a: &Args) -> SysResult {
    let f = fget(a.0[0] as u32 as u64)?;
    Ok(fd_install(f, false)? as u64)
}

/// `dup2(old, new)`: `new` names `old`'s description (closing what it named); the same
/// number returns it unchanged if valid.
pub fn sys_dup2(a: &Args) -> SysResult {
    let (old, new) = (a.0[0] as u32 as u64, a.0[1] as u32 as usize);
    let f = fget(old)?;
    if old as usize == new {
        return Ok(new as u64);
    }
    fd_replace(new, f, false)?;
    Ok(new as u64)
}

/// `dup3(old, new, flags)`: as dup2 with O_CLOEXEC allowed, and EINVAL when equal.
pub fn sys_dup3(a: &Args) -> SysResult {
    let (old, new, flags) = (a.0[0] as u32 as u64, a.0[1] as u32 as usize, a.0[2]);
    if flags & !(O_CLOEXEC as u64) != 0 || old as usize == new {
        return Err(EINVAL);
    }
    let f = fget(old)?;
    fd_replace(new, f, flags != 0)?;
    Ok(new as u64)
}

/// `fcntl` commands (`include/uapi/asm-generic/fcntl.h`, `linux/fcntl.h`).
const F_DUPFD: u64 = 0;
const F_GETFD: u64 = 1;
const F_SETFD: u64 = 2;
const F_GETFL: u64 = 3;
const F_SETFL: u64 = 4;
const F_GETLK: u64 = 5;
const F_SETLK: u64 = 6;
const F_SETLKW: u64 = 7;
const F_SETOWN: u64 = 8;
const F_GETOWN: u64 = 9;
const F_DUPFD_CLOEXEC: u64 = 1030;
const F_GETPIPE_SZ: u64 = 1032;
const FD_CLOEXEC: u64 = 1;

/// `fcntl(fd, cmd, arg)`: duplication, the close-on-exec flag, the status flags
/// (O_APPEND, O_NONBLOCK... on the shared description), the pipe size; record locks on
/// this one-process-at-a-time root are granted (nothing can conflict on a read-only file
/// system but another process's locks, which are not tracked: F_GETLK says unlocked).
pub fn sys_fcntl(a: &Args) -> SysResult {
    let (fd, cmd, arg) = (a.0[0] as u32 as u64, a.0[1] & 0xffff_ffff, a.0[2]);
    let f = fget(fd)?;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let start = arg as u32 as usize;
            if start >= nofile_limit() {
                return Err(EINVAL);
            }
            Ok(fd_install_from(start, f, cmd == F_DUPFD_CLOEXEC)? as u64)
        }
        F_GETFD => {
            let t = crate::proc::current().ok_or(EBADF)?;
            let on = t.files().lock().close_on_exec_of(fd as usize);
            Ok(if on { FD_CLOEXEC } else { 0 })
        }
        F_SETFD => {
            let t = crate::proc::current().ok_or(EBADF)?;
            t.files()
                .lock()
                .set_close_on_exec(fd as usize, arg & FD_CLOEXEC != 0);
            Ok(0)
        }
        F_GETFL => {
            let fl = f.flags();
            // Linux reports O_LARGEFILE on 64-bit opens.
            Ok((fl | if fl & O_PATH == 0 { O_LARGEFILE } else { 0 }) as u64)
        }
        F_SETFL => {
            if f.flags() & O_PATH != 0 {
                return Err(EBADF);
            }
            let arg = arg as u32;
            // O_APPEND cannot be cleared on an append-only inode (none here).
            let new = (f.flags() & !SETFL_MASK) | (arg & SETFL_MASK);
            f.f_flags.store(new, core::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        F_GETLK => {
            // struct flock: l_type (short) first; F_UNLCK = 2.
            put_user(arg, 2u16)?;
            Ok(0)
        }
        F_SETLK | F_SETLKW => {
            let _: [u8; 32] = {
                let mut b = [0u8; 32];
                crate::mm::uaccess::copy_from_user(&mut b, arg)?;
                b
            };
            Ok(0)
        }
        F_GETOWN => Ok(0),
        F_SETOWN => Ok(0),
        F_GETPIPE_SZ => {
            if f.f_op.name() == "pipe" {
                Ok(crate::fs::pipe::PIPE_BUF_SIZE as u64)
            } else {
                Err(EBADF)
            }
        }
        _ => Err(EINVAL),
    }
}

/// `ftruncate(fd, length)`: EINVAL for a negative length or a file that is not a regular
/// file open for writing (Linux: EBADF if not open for writing, EINVAL if not regular).
pub fn sys_ftruncate(a: &Args) -> SysResult {
    if (a.0[1] as i64) < 0 {
        return Err(EINVAL);
    }
    let f = fget(a.0[0] as u32 as u64)?;
    if f.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    let regular = f.f_op.stat().is_ok_and(|s| s.mode & 0o170000 == 0o100000);
    if !regular || f.f_op.is_dir() {
        return Err(EINVAL);
    }
    if !f.writable() {
        return Err(EINVAL);
    }
    f.f_op.truncate(a.0[1])
}

/// `truncate(path, length)`: lookup errors first, then EISDIR, EINVAL, EROFS.
pub fn sys_truncate(a: &Args) -> SysResult {
    let path = user_path(a.0[0])?;
    let abs = namei::path_at(AT_FDCWD, &path)?;
    let node = namei::lookup(&abs, true)?;
    if (a.0[1] as i64) < 0 {
        return Err(EINVAL);
    }
    match node {
        Node::Vfs(p) => {
            let inode = p.inode().ok_or(ENOENT)?;
            if inode.is_dir() {
                return Err(EISDIR);
            }
            if !inode.is_reg() {
                return Err(EINVAL);
            }
            if p.mnt.sb.read_only {
                return Err(EROFS);
            }
            namei::do_truncate(&inode, a.0[1])?;
            Ok(0)
        }
        Node::Proc(procfs::Node::File(_)) => Err(EACCES),
        Node::Proc(_) => Err(EISDIR),
    }
}

/// `fsync(fd)`/`fdatasync(fd)`: tmpfs has nothing to write back; EINVAL for files that
/// cannot be synced (pipes, the console), as Linux.
pub fn sys_fsync(a: &Args) -> SysResult {
    let f = fdget(a.0[0] as u32 as u64)?;
    match f.f_op.name() {
        "pipe" | "console" => Err(EINVAL),
        _ => f.f_op.fsync(),
    }
}

/// `memfd_create(name, flags)`: an anonymous file in memory (`fs/memfd.c`).
pub fn sys_memfd_create(a: &Args) -> SysResult {
    const MFD_CLOEXEC: u64 = 1;
    const MFD_ALLOW_SEALING: u64 = 2;
    const MFD_HUGETLB: u64 = 4;
    const MFD_NOEXEC_SEAL: u64 = 8;
    const MFD_EXEC: u64 = 0x10;
    /// `MFD_NAME_MAX_LEN`: NAME_MAX minus the "memfd:" prefix.
    const MFD_NAME_MAX_LEN: usize = 255 - 6;
    let flags = a.0[1];
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC) != 0
        || flags & (MFD_NOEXEC_SEAL | MFD_EXEC) == (MFD_NOEXEC_SEAL | MFD_EXEC)
    {
        return Err(EINVAL);
    }
    if flags & MFD_HUGETLB != 0 {
        // No hugetlbfs.
        return Err(EINVAL);
    }
    match strncpy_from_user(a.0[0], MFD_NAME_MAX_LEN) {
        Ok(_) => {}
        Err(super::errno::ENAMETOOLONG) => return Err(EINVAL),
        Err(e) => return Err(e),
    }
    let f = try_file(
        try_ops(crate::fs::memfd::MemFile::new())?,
        O_RDWR | O_LARGEFILE,
    )?;
    Ok(fd_install(f, flags & MFD_CLOEXEC != 0)? as u64)
}

/// The answers of /proc to calls that would change names in it (mkdir, unlink, rmdir,
/// rename, link, symlink, mknod...), with Linux's order of checks: the parent directory's
/// lookup first (ENOENT, ENOTDIR), then the last component's kind (`/`, `.`, `..`), then
/// EEXIST for an existing name. /proc's directories refuse everything: ENOENT for new
/// names, EPERM to remove, ENOTDIR/EISDIR by type. (Other filesystems go through the
/// VFS: `syscall/namei.rs`.)
pub mod readonly {
    use super::*;
    use alloc::vec::Vec;

    /// What the call does to its path.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Need {
        /// The last component is created (mkdir, symlink, mknod, link's new name).
        Create,
        /// The object must exist and is changed in place (chmod, chown).
        Exist,
        /// rmdir.
        Rmdir,
        /// unlink.
        Unlink,
    }

    /// The last component: `None` for the root, else the name (`.`, `..` included).
    fn last_component(path: &[u8]) -> Option<&[u8]> {
        path.rsplit(|&b| b == b'/').find(|c| !c.is_empty())
    }

    /// Whether the parent of `abs` is in /proc (the call acts on the proc mount).
    fn parent_in_proc(abs: &[u8]) -> bool {
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in abs.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        parts.len() >= 2 && parts[0] == b"proc"
    }

    /// Whether the parent of `abs` is a /proc/PID directory or below.
    fn parent_in_pid_dir(abs: &[u8]) -> bool {
        let n = abs
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .count();
        parent_in_proc(abs) && n >= 3
    }

    /// The error the call gives for `path` from `dirfd`.
    pub fn check(dirfd: i32, path_ptr: u64, need: Need, follow: bool) -> Errno {
        match check_inner(dirfd, path_ptr, need, follow) {
            Ok(()) => EROFS,
            Err(e) => e,
        }
    }

    /// The absolute path of `path_ptr` and whether its parent is in /proc, after the
    /// parent lookup.
    pub fn parent(dirfd: i32, path_ptr: u64) -> Result<(Vec<u8>, bool), Errno> {
        let path = user_path(path_ptr)?;
        let abs = namei::path_at(dirfd, &path)?;
        namei::lookup_parent(&abs)?;
        let proc = parent_in_proc(&abs);
        Ok((abs, proc))
    }

    fn is_dir(node: &Node) -> Result<bool, Errno> {
        Ok(match node {
            Node::Vfs(p) => p.inode().ok_or(ENOENT)?.is_dir(),
            Node::Proc(p) => !matches!(p, procfs::Node::File(_) | procfs::Node::Link(_)),
        })
    }

    fn check_inner(dirfd: i32, path_ptr: u64, need: Need, follow: bool) -> Result<(), Errno> {
        if need == Need::Exist {
            let path = user_path(path_ptr)?;
            let abs = namei::path_at(dirfd, &path)?;
            return namei::lookup(&abs, follow).map(|_| ());
        }
        let (abs, proc) = parent(dirfd, path_ptr)?;
        let last = last_component(&abs);
        match (need, last) {
            (Need::Create, None | Some(b".") | Some(b"..")) => return Err(EEXIST),
            (Need::Rmdir, None) => return Err(super::super::errno::EBUSY),
            (Need::Rmdir, Some(b".")) => return Err(EINVAL),
            (Need::Rmdir, Some(b"..")) => return Err(super::super::errno::ENOTEMPTY),
            (Need::Unlink, None | Some(b".") | Some(b"..")) => return Err(EISDIR),
            _ => {}
        }
        match need {
            Need::Create => match namei::lookup(&abs, false) {
                Ok(_) => Err(EEXIST),
                Err(ENOENT) if proc => Err(ENOENT),
                Err(ENOENT) => Ok(()),
                Err(e) => Err(e),
            },
            _ if !proc => Ok(()),
            Need::Rmdir => {
                let node = namei::lookup(&abs, false)?;
                // Linux answers EPERM inside a process directory whatever the type.
                if !is_dir(&node)? && !parent_in_pid_dir(&abs) {
                    return Err(ENOTDIR);
                }
                Err(EPERM)
            }
            _ => {
                let node = namei::lookup(&abs, false)?;
                if is_dir(&node)? {
                    return Err(EISDIR);
                }
                Err(EPERM)
            }
        }
    }

    /// rename: both parents, EXDEV across mounts, EBUSY for `/`, `.` and `..`, then
    /// EROFS (in /proc: the lookups, ENOENT).
    pub fn rename(olddir: i32, old: u64, newdir: i32, new: u64) -> Errno {
        let r = (|| -> Result<(), Errno> {
            let (oabs, oproc) = parent(olddir, old)?;
            let (nabs, nproc) = parent(newdir, new)?;
            if oproc != nproc {
                return Err(super::super::errno::EXDEV);
            }
            for p in [&oabs, &nabs] {
                if matches!(last_component(p), None | Some(b".") | Some(b"..")) {
                    return Err(super::super::errno::EBUSY);
                }
            }
            if oproc {
                namei::lookup(&oabs, false)?;
                return Err(ENOENT);
            }
            Ok(())
        })();
        match r {
            Ok(()) => EROFS,
            Err(e) => e,
        }
    }
}

/// `fchmod(fd, mode)` / `fchown(fd, uid, gid)`: EROFS for an initramfs file; pipes, the
/// console, memfds and /proc files take the change without keeping it (there is nobody to
/// check permissions against but root).
pub fn sys_fchmod(a: &Args) -> SysResult {
    let f = fdget(a.0[0] as u32 as u64)?;
    if let Some(p) = f.f_op.vfs_path() {
        if p.mnt.sb.read_only {
            return Err(EROFS);
        }
        if let Some(inode) = p.inode() {
            namei::setattr_mode(&inode, a.0[1] as u32);
        }
    }
    Ok(0)
}

/// `flock(fd, op)`: one process holds any lock it asks for (no other holder is tracked);
/// EINVAL for an unknown operation.
pub fn sys_flock(a: &Args) -> SysResult {
    const LOCK_SH: u64 = 1;
    const LOCK_EX: u64 = 2;
    const LOCK_NB: u64 = 4;
    const LOCK_UN: u64 = 8;
    let f = fdget(a.0[0] as u32 as u64)?;
    let _ = f;
    match a.0[1] & !LOCK_NB {
        LOCK_SH | LOCK_EX | LOCK_UN => Ok(0),
        _ => Err(EINVAL),
    }
}

/// `fadvise64(fd, offset, len, advice)`: advice is accepted and ignored; ESPIPE for pipes,
/// EINVAL for an unknown advice or a negative length.
pub fn sys_fadvise64(a: &Args) -> SysResult {
    let f = fdget(a.0[0] as u32 as u64)?;
    if f.f_op.name() == "pipe" {
        return Err(ESPIPE);
    }
    if a.0[3] > 5 || (a.0[2] as i64) < 0 {
        return Err(EINVAL);
    }
    Ok(0)
}

/// `utimensat(dirfd, path, times, flags)`: a NULL path means the descriptor itself
/// (`futimens`); the initramfs cannot take new times (EROFS), other files ignore them.
pub fn sys_utimensat(a: &Args) -> SysResult {
    const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
    const AT_EMPTY_PATH: u64 = 0x1000;
    if a.0[3] & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    if a.0[1] == 0 {
        return sys_fchmod(&Args([a.0[0], 0, 0, 0, 0, 0]));
    }
    let path = user_path(a.0[1])?;
    let abs = namei::path_at(a.0[0] as i32, &path)?;
    match namei::lookup(&abs, a.0[3] & AT_SYMLINK_NOFOLLOW == 0)? {
        Node::Vfs(p) if p.mnt.sb.read_only => Err(EROFS),
        Node::Vfs(p) => {
            // Times come from the virtual clock; the values asked for are not kept.
            if let Some(i) = p.inode() {
                i.touch();
            }
            Ok(0)
        }
        // /proc files take the call.
        Node::Proc(_) => Ok(0),
    }
}

/// `eventfd2(initval, flags)` / `eventfd(initval)`: a counter file (`fs/eventfd.rs`).
pub fn sys_eventfd2(a: &Args) -> SysResult {
    use crate::fs::eventfd::{EventFd, EFD_SEMAPHORE};
    let flags = a.0[1] as u32;
    if a.0[1] & !((O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE) as u64) != 0 {
        return Err(EINVAL);
    }
    let ops = try_ops(EventFd::new(a.0[0] as u32, flags & EFD_SEMAPHORE != 0))?;
    let f = try_file(ops, O_RDWR | (flags & O_NONBLOCK))?;
    Ok(fd_install(f, flags & O_CLOEXEC != 0)? as u64)
}

/// `syncfs(fd)`: nothing is ever dirty.
pub fn sys_syncfs(a: &Args) -> SysResult {
    let f = fdget(a.0[0] as u32 as u64)?;
    if let Some(p) = f.f_op.vfs_path() {
        crate::mm::filemap::sync_all()?;
        p.mnt.sb.s_op.sync_fs()?;
    }
    Ok(0)
}

/// `sync()`: every dirty page written back, every filesystem's metadata, the disks'
/// caches flushed (`ksys_sync`). Errors are not reported (sync returns void).
pub fn sys_sync() -> SysResult {
    let _ = crate::mm::writeback::flush();
    Ok(0)
}
