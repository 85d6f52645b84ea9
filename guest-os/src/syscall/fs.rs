//! File system calls on the initramfs and the console: read, write, writev, open(at),
//! close, fstat, lseek, ioctl, getdents64. Every user buffer goes through `uaccess`, so a
//! bad pointer is -EFAULT.

use alloc::vec::Vec;

use super::errno::{
    Errno, SysResult, EACCES, EBADF, EFAULT, EINVAL, EISDIR, EMFILE, ENOTDIR, ENOTTY, ESPIPE,
};
use super::Args;
use crate::drivers::uart16550::{COM1, COM2};
use crate::mm::uaccess::{copy_from_user, copy_to_user, get_user, strncpy_from_user};
use crate::proc::{self, ConsolePort, File};
use kfs::FileType;

/// Largest chunk copied through a kernel buffer at a time.
const CHUNK: usize = 4096;
/// Most open files per process (`RLIMIT_NOFILE`'s usual soft limit is 1024).
const NR_OPEN: usize = 1024;
/// `PATH_MAX`.
const PATH_MAX: usize = 4096;

fn console_write(port: ConsolePort, bytes: &[u8]) {
    match port {
        ConsolePort::Com1 => COM1.write_bytes(bytes),
        ConsolePort::Com2 => COM2.write_bytes(bytes),
    }
}

/// What a descriptor is, without holding the table lock across user copies.
enum Kind {
    Console(ConsolePort),
    Ram {
        ino: u64,
        offset: u64,
    },
    /// The pipe, whether this is the write end, O_NONBLOCK.
    Pipe(alloc::sync::Arc<crate::fs::pipe::Pipe>, bool, bool),
    Proc(alloc::sync::Arc<Vec<u8>>, u64),
    ProcDir(Option<u32>, u64),
}

fn kind_of(fd: u64) -> Result<Kind, Errno> {
    let t = proc::current().ok_or(EBADF)?;
    let files = t.files.lock();
    match files.get(fd as usize).and_then(|f| f.as_ref()) {
        Some(File::Console { port }) => Ok(Kind::Console(*port)),
        Some(File::Ram { ino, offset }) => Ok(Kind::Ram {
            ino: *ino,
            offset: *offset,
        }),
        Some(File::Pipe(end)) => Ok(Kind::Pipe(end.pipe(), end.is_write_end(), end.nonblock)),
        Some(File::Proc { data, offset }) => Ok(Kind::Proc(data.clone(), *offset)),
        Some(File::ProcDir { pid, pos }) => Ok(Kind::ProcDir(*pid, *pos)),
        None => Err(EBADF),
    }
}

fn set_offset(fd: u64, off: u64) {
    if let Some(t) = proc::current() {
        if let Some(Some(
            File::Ram { offset, .. }
            | File::Proc { offset, .. }
            | File::ProcDir { pos: offset, .. },
        )) = t.files.lock().get_mut(fd as usize)
        {
            *offset = off;
        }
    }
}

fn write_buf(fd: u64, buf: u64, len: u64) -> SysResult {
    let kind = kind_of(fd)?;
    if let Kind::Pipe(p, write, nonblock) = &kind {
        if !write {
            return Err(EBADF);
        }
        let mut chunk = [0u8; CHUNK];
        let mut done = 0u64;
        while done < len {
            let n = ((len - done) as usize).min(CHUNK);
            if copy_from_user(&mut chunk[..n], buf + done).is_err() {
                return if done > 0 { Ok(done) } else { Err(EFAULT) };
            }
            match p.write(&chunk[..n]) {
                Ok(w) => done += w as u64,
                Err(super::errno::EAGAIN) if !nonblock => {
                    if let Err(e) = p.wait() {
                        return if done > 0 { Ok(done) } else { Err(e) };
                    }
                }
                Err(e) if done == 0 => {
                    if e == super::errno::EPIPE {
                        crate::proc::signal::send_self(
                            13,
                            crate::proc::signal::SigInfo {
                                signo: 13,
                                code: 0,
                                addr: 0,
                                pid: 0,
                            },
                        );
                    }
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        return Ok(done);
    }
    let Kind::Console(port) = kind else {
        return Err(EBADF); // the initramfs is read-only; files are opened O_RDONLY
    };
    let mut chunk = [0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(CHUNK);
        if copy_from_user(&mut chunk[..n], buf + done).is_err() {
            // Linux returns what was written before the fault, or -EFAULT for none.
            return if done > 0 { Ok(done) } else { Err(EFAULT) };
        }
        console_write(port, &chunk[..n]);
        done += n as u64;
    }
    Ok(done)
}

pub fn sys_write(a: &Args) -> SysResult {
    write_buf(a.0[0], a.0[1], a.0[2])
}

/// `writev(fd, iov, iovcnt)`.
pub fn sys_writev(a: &Args) -> SysResult {
    let (fd, iov, cnt) = (a.0[0], a.0[1], a.0[2]);
    if cnt > 1024 {
        return Err(EINVAL);
    }
    kind_of(fd)?;
    let mut total = 0;
    for i in 0..cnt {
        let base: u64 = get_user(iov + i * 16)?;
        let len: u64 = get_user(iov + i * 16 + 8)?;
        match write_buf(fd, base, len) {
            Ok(n) => total += n,
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

pub fn sys_read(a: &Args) -> SysResult {
    let (fd, buf, len) = (a.0[0], a.0[1], a.0[2]);
    match kind_of(fd)? {
        // No input device yet: the console reads as end of file.
        Kind::Console(_) => crate::mm::uaccess::access_ok(buf, len as usize)
            .then_some(0)
            .ok_or(EFAULT),
        Kind::Pipe(p, write, nonblock) => {
            if write {
                return Err(EBADF);
            }
            let mut chunk = [0u8; CHUNK];
            let n = loop {
                match p.peek(&mut chunk[..(len as usize).min(CHUNK)]) {
                    Err(super::errno::EAGAIN) if !nonblock => p.wait()?,
                    r => break r?,
                }
            };
            copy_to_user(buf, &chunk[..n])?;
            p.consume(n);
            Ok(n as u64)
        }
        Kind::Proc(data, offset) => {
            let start = (offset as usize).min(data.len());
            let n = (data.len() - start).min(len as usize);
            copy_to_user(buf, &data[start..start + n])?;
            set_offset(fd, offset + n as u64);
            Ok(n as u64)
        }
        Kind::ProcDir(..) => Err(EISDIR),
        Kind::Ram { ino, offset } => {
            if crate::fs::with_root(|fs| fs.file_type(ino))? == FileType::Directory {
                return Err(EISDIR);
            }
            let data = crate::fs::file_data(ino)?;
            let start = (offset as usize).min(data.len());
            let n = (data.len() - start).min(len as usize);
            copy_to_user(buf, &data[start..start + n])?;
            set_offset(fd, offset + n as u64);
            Ok(n as u64)
        }
    }
}

const O_ACCMODE: u64 = 3;
const O_RDONLY: u64 = 0;
const O_DIRECTORY: u64 = 0o200000;
const AT_FDCWD: i64 = -100;

fn open_path(path_ptr: u64, flags: u64) -> SysResult {
    let path = strncpy_from_user(path_ptr, PATH_MAX)?;
    if path.is_empty() {
        return Err(super::errno::ENOENT);
    }
    // The initramfs is read-only: writing or creating is refused as on a read-only mount.
    if flags & O_ACCMODE != O_RDONLY {
        return Err(EACCES);
    }
    if let Some(node) = crate::fs::procfs::lookup(&path) {
        let file = match node? {
            crate::fs::procfs::Node::File(data) => {
                if flags & O_DIRECTORY != 0 {
                    return Err(ENOTDIR);
                }
                File::Proc {
                    data: alloc::sync::Arc::new(data),
                    offset: 0,
                }
            }
            crate::fs::procfs::Node::Root => File::ProcDir { pid: None, pos: 0 },
            crate::fs::procfs::Node::PidDir(pid) => File::ProcDir {
                pid: Some(pid),
                pos: 0,
            },
        };
        let fd = install(file)?;
        set_cloexec(fd, flags & O_CLOEXEC != 0);
        return Ok(fd as u64);
    }
    // Relative paths resolve from / (the only working directory there is).
    let ino = crate::fs::lookup(&path)?;
    let ft = crate::fs::with_root(|fs| fs.file_type(ino))?;
    if flags & O_DIRECTORY != 0 && ft != FileType::Directory {
        return Err(ENOTDIR);
    }
    let t = proc::current().ok_or(EBADF)?;
    let mut files = t.files.lock();
    let fd = match files.iter().position(|f| f.is_none()) {
        Some(i) => i,
        None if files.len() < NR_OPEN => {
            files.push(None);
            files.len() - 1
        }
        None => return Err(EMFILE),
    };
    files[fd] = Some(File::Ram { ino, offset: 0 });
    drop(files);
    set_cloexec(fd, flags & O_CLOEXEC != 0);
    Ok(fd as u64)
}

pub fn sys_open(a: &Args) -> SysResult {
    open_path(a.0[0], a.0[1])
}

pub fn sys_openat(a: &Args) -> SysResult {
    if a.0[0] as i64 != AT_FDCWD {
        let p = strncpy_from_user(a.0[1], PATH_MAX)?;
        if !p.starts_with(b"/") {
            kind_of(a.0[0])?; // only the fd's validity matters for absolute paths
        }
    }
    open_path(a.0[1], a.0[2])
}

/// Mark `fd` close-on-exec or not.
fn set_cloexec(fd: usize, on: bool) {
    if let Some(t) = proc::current() {
        let mut c = t.cloexec.lock();
        if on {
            c.insert(fd);
        } else {
            c.remove(&fd);
        }
    }
}

pub fn sys_close(a: &Args) -> SysResult {
    set_cloexec(a.0[0] as usize, false);
    let t = proc::current().ok_or(EBADF)?;
    let mut files = t.files.lock();
    match files.get_mut(a.0[0] as usize) {
        Some(f @ Some(_)) => {
            *f = None;
            Ok(0)
        }
        _ => Err(EBADF),
    }
}

/// `struct stat` of x86-64 (144 bytes).
fn stat_bytes(ino: u64, mode: u32, nlink: u64, size: u64, rdev: u64, mtime: u64) -> [u8; 144] {
    let mut b = [0u8; 144];
    let mut put =
        |off: usize, v: u64, n: usize| b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
    put(0, 1, 8); // st_dev
    put(8, ino, 8);
    put(16, nlink, 8);
    put(24, mode as u64, 4);
    put(28, 0, 4); // uid
    put(32, 0, 4); // gid
    put(40, rdev, 8);
    put(48, size, 8);
    put(56, 4096, 8); // st_blksize
    put(64, size.div_ceil(512), 8); // st_blocks
    put(72, mtime, 8); // atime
    put(88, mtime, 8); // mtime
    put(104, mtime, 8); // ctime
    b
}

pub fn sys_fstat(a: &Args) -> SysResult {
    let bytes = match kind_of(a.0[0])? {
        // A character device, like a tty (major 4).
        Kind::Console(p) => stat_bytes(3, 0o020620, 1, 0, (4 << 8) | (64 + p as u64), 0),
        Kind::Ram { ino, .. } => {
            let s = crate::fs::with_root(|fs| fs.stat(ino))?;
            stat_bytes(s.ino, s.mode, s.nlink as u64, s.size, 0, s.mtime)
        }
        // A FIFO (S_IFIFO, rw-------).
        Kind::Pipe(..) => stat_bytes(4, 0o010600, 1, 0, 0, 0),
        // /proc files report size 0, as Linux's.
        Kind::Proc(..) => stat_bytes(5, 0o100444, 1, 0, 0, 0),
        Kind::ProcDir(..) => stat_bytes(6, 0o040555, 2, 0, 0, 0),
    };
    copy_to_user(a.0[1], &bytes)?;
    Ok(0)
}

pub fn sys_lseek(a: &Args) -> SysResult {
    let (fd, off, whence) = (a.0[0], a.0[1] as i64, a.0[2]);
    let (size, offset) = match kind_of(fd)? {
        Kind::Ram { ino, offset } => (crate::fs::with_root(|fs| fs.stat(ino))?.size as i64, offset),
        Kind::Proc(data, offset) => (data.len() as i64, offset),
        Kind::ProcDir(_, pos) => (0, pos),
        _ => return Err(ESPIPE),
    };
    let new = match whence {
        0 => off,
        1 => offset as i64 + off,
        2 => size + off,
        _ => return Err(EINVAL),
    };
    if new < 0 {
        return Err(EINVAL);
    }
    set_offset(fd, new as u64);
    Ok(new as u64)
}

/// `ioctl`: the console is not a terminal with settings yet.
pub fn sys_ioctl(a: &Args) -> SysResult {
    kind_of(a.0[0])?;
    Err(ENOTTY)
}

/// `getdents64(fd, dirp, count)`.
pub fn sys_getdents64(a: &Args) -> SysResult {
    let (fd, buf, count) = (a.0[0], a.0[1], a.0[2] as usize);
    let (ino, offset) = match kind_of(fd)? {
        Kind::Ram { ino, offset } => (ino, offset),
        Kind::ProcDir(pid, pos) => return proc_getdents(fd, pid, pos, buf, count),
        _ => return Err(ENOTDIR),
    };
    let mut out: Vec<u8> = Vec::new();
    let mut next_pos = offset;
    crate::fs::with_root(|fs| {
        for e in fs.readdir_from(ino, offset)? {
            let reclen = (19 + e.name.len() + 1).next_multiple_of(8);
            if out.len() + reclen > count {
                break;
            }
            let start = out.len();
            out.resize(start + reclen, 0);
            out[start..start + 8].copy_from_slice(&e.ino.to_le_bytes());
            out[start + 8..start + 16].copy_from_slice(&e.next.to_le_bytes());
            out[start + 16..start + 18].copy_from_slice(&(reclen as u16).to_le_bytes());
            out[start + 18] = e.file_type.dirent_type();
            out[start + 19..start + 19 + e.name.len()].copy_from_slice(e.name);
            next_pos = e.next;
        }
        Ok(())
    })?;
    if out.is_empty() && count > 0 && next_pos == offset {
        // Nothing fit or nothing left: 0 at the end, EINVAL if the buffer is too small.
        let more = crate::fs::with_root(|fs| Ok(fs.readdir_from(ino, offset)?.next().is_some()))?;
        if more {
            return Err(EINVAL);
        }
    }
    copy_to_user(buf, &out)?;
    set_offset(fd, next_pos);
    Ok(out.len() as u64)
}

/// Install `f` at the lowest free descriptor.
fn install(f: File) -> Result<usize, Errno> {
    let t = proc::current().ok_or(EBADF)?;
    let mut files = t.files.lock();
    let fd = match files.iter().position(|f| f.is_none()) {
        Some(i) => i,
        None if files.len() < NR_OPEN => {
            files.push(None);
            files.len() - 1
        }
        None => return Err(EMFILE),
    };
    files[fd] = Some(f);
    Ok(fd)
}

const O_NONBLOCK: u64 = 0o4000;
const O_CLOEXEC: u64 = 0o2000000;

/// `pipe2(fds, flags)` / `pipe(fds)`.
pub fn sys_pipe2(a: &Args) -> SysResult {
    let (fds, flags) = (a.0[0], a.0[1]);
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    if !crate::mm::uaccess::access_ok(fds, 8) {
        return Err(EFAULT);
    }
    let (r, w) = crate::fs::pipe::new_pipe(flags & O_NONBLOCK != 0);
    let rfd = install(File::Pipe(r))?;
    let wfd = match install(File::Pipe(w)) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = sys_close(&Args([rfd as u64, 0, 0, 0, 0, 0]));
            return Err(e);
        }
    };
    set_cloexec(rfd, flags & O_CLOEXEC != 0);
    set_cloexec(wfd, flags & O_CLOEXEC != 0);
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(rfd as u32).to_le_bytes());
    b[4..].copy_from_slice(&(wfd as u32).to_le_bytes());
    if let Err(e) = copy_to_user(fds, &b) {
        // Linux releases both descriptors when it cannot report them.
        let _ = sys_close(&Args([rfd as u64, 0, 0, 0, 0, 0]));
        let _ = sys_close(&Args([wfd as u64, 0, 0, 0, 0, 0]));
        return Err(e);
    }
    Ok(0)
}

/// `dup2(old, new)` / `dup3`: pipes and console descriptors duplicate; files share no
/// offset (the initramfs files are read-only, so only the offset could differ).
pub fn sys_dup2(a: &Args) -> SysResult {
    let (old, new) = (a.0[0] as usize, a.0[1] as usize);
    if new >= NR_OPEN {
        return Err(EBADF);
    }
    let t = proc::current().ok_or(EBADF)?;
    let mut files = t.files.lock();
    let copy = match files.get(old).and_then(|f| f.as_ref()) {
        Some(File::Console { port }) => File::Console { port: *port },
        Some(File::Ram { ino, offset }) => File::Ram {
            ino: *ino,
            offset: *offset,
        },
        Some(f) => f.dup(),
        None => return Err(EBADF),
    };
    if old == new {
        return Ok(new as u64);
    }
    if files.len() <= new {
        files.resize_with(new + 1, || None);
    }
    files[new] = Some(copy);
    drop(files);
    set_cloexec(new, false);
    Ok(new as u64)
}

/// Append one `linux_dirent64` record; false if it does not fit in `count`.
fn put_dirent(
    out: &mut Vec<u8>,
    count: usize,
    ino: u64,
    next: u64,
    dtype: u8,
    name: &[u8],
) -> bool {
    let reclen = (19 + name.len() + 1).next_multiple_of(8);
    if out.len() + reclen > count {
        return false;
    }
    let start = out.len();
    out.resize(start + reclen, 0);
    out[start..start + 8].copy_from_slice(&ino.to_le_bytes());
    out[start + 8..start + 16].copy_from_slice(&next.to_le_bytes());
    out[start + 16..start + 18].copy_from_slice(&(reclen as u16).to_le_bytes());
    out[start + 18] = dtype;
    out[start + 19..start + 19 + name.len()].copy_from_slice(name);
    true
}

/// getdents64 on a /proc directory: ".", "..", then its entries.
fn proc_getdents(fd: u64, pid: Option<u32>, pos: u64, buf: u64, count: usize) -> SysResult {
    const DT_DIR: u8 = 4;
    const DT_REG: u8 = 8;
    let mut entries: Vec<(alloc::string::String, bool, u64)> =
        alloc::vec![(".".into(), true, 1), ("..".into(), true, 1),];
    entries.extend(crate::fs::procfs::readdir(pid));
    let mut out = Vec::new();
    let mut p = pos as usize;
    while p < entries.len() {
        let (name, dir, ino) = &entries[p];
        if !put_dirent(
            &mut out,
            count,
            *ino,
            p as u64 + 1,
            if *dir { DT_DIR } else { DT_REG },
            name.as_bytes(),
        ) {
            if out.is_empty() {
                return Err(EINVAL);
            }
            break;
        }
        p += 1;
    }
    copy_to_user(buf, &out)?;
    set_offset(fd, p as u64);
    Ok(out.len() as u64)
}
