//! Path-based queries (`fs/stat.c`, `fs/open.c`, `fs/d_path.c`): the stat family with
//! Linux's `struct stat` and `struct statx`, access/faccessat(2), readlink(at), and the
//! working directory: getcwd, chdir, fchdir, umask.

use alloc::vec::Vec;

use super::errno::{Errno, SysResult, EACCES, EBADF, EINVAL, ENOENT, ENOTDIR, ERANGE, EROFS};
use super::fs::user_path;
use super::Args;
use crate::fs::fdtable::fget;
use crate::fs::namei::{self, Node, AT_FDCWD};
use crate::fs::procfs;
use crate::fs::stat::{Kstat, PROC_DEV, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use crate::fs::super_block::Kstatfs;
use crate::mm::uaccess::copy_to_user;
use crate::proc;

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EACCESS: u64 = 0x200;
const AT_NO_AUTOMOUNT: u64 = 0x800;
const AT_EMPTY_PATH: u64 = 0x1000;
const AT_STATX_SYNC_TYPE: u64 = 0x6000;
/// `STATX__RESERVED`: a mask bit reserved for future struct growth.
const STATX_RESERVED: u32 = 0x8000_0000;

/// `stat` of a resolved node.
fn node_stat(node: &Node) -> Result<Kstat, Errno> {
    match node {
        Node::Vfs(p) => Ok(p.inode().ok_or(ENOENT)?.getattr()),
        Node::Proc(procfs::Node::File(_)) => {
            let mut k = Kstat::new(PROC_DEV, 5, S_IFREG | 0o444, 1, 0);
            k.blksize = 1024;
            Ok(k)
        }
        Node::Proc(procfs::Node::Link(target)) => {
            let mut k = Kstat::new(PROC_DEV, 7, S_IFLNK | 0o777, 1, target.len() as u64);
            k.blksize = 1024;
            k.blocks = 0;
            Ok(k)
        }
        Node::Proc(procfs::Node::Root) => Ok(Kstat::new(PROC_DEV, 1, S_IFDIR | 0o555, 2, 0)),
        Node::Proc(procfs::Node::Dir(d)) => {
            Ok(Kstat::new(PROC_DEV, d.ino(), S_IFDIR | 0o555, 2, 0))
        }
    }
}

/// Attributes of `path` from `dirfd` (`vfs_statx`): `AT_EMPTY_PATH` with an empty path
/// means the descriptor itself.
fn statx_at(dirfd: i32, path_ptr: u64, flags: u64) -> Result<Kstat, Errno> {
    let path = user_path(path_ptr)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        if dirfd == AT_FDCWD {
            let cwd = proc::current().ok_or(EBADF)?.cwd().lock().clone();
            return node_stat(&namei::lookup(&cwd, true)?);
        }
        return fget(dirfd as u32 as u64)?.f_op.stat();
    }
    let abs = namei::path_at(dirfd, &path)?;
    node_stat(&namei::lookup(&abs, flags & AT_SYMLINK_NOFOLLOW == 0)?)
}

fn put_stat(buf: u64, k: &Kstat) -> SysResult {
    copy_to_user(buf, &k.to_stat())?;
    Ok(0)
}

/// `stat(path, buf)`.
pub fn sys_stat(a: &Args) -> SysResult {
    put_stat(a.0[1], &statx_at(AT_FDCWD, a.0[0], 0)?)
}

/// `lstat(path, buf)`: a final symbolic link itself.
pub fn sys_lstat(a: &Args) -> SysResult {
    put_stat(a.0[1], &statx_at(AT_FDCWD, a.0[0], AT_SYMLINK_NOFOLLOW)?)
}

/// `fstat(fd, buf)`.
pub fn sys_fstat(a: &Args) -> SysResult {
    let k = fget(a.0[0] as u32 as u64)?.f_op.stat()?;
    put_stat(a.0[1], &k)
}

/// `newfstatat(dirfd, path, buf, flags)`.
pub fn sys_newfstatat(a: &Args) -> SysResult {
    let flags = a.0[3];
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    put_stat(a.0[2], &statx_at(a.0[0] as i32, a.0[1], flags)?)
}

/// `statx(dirfd, path, flags, mask, buf)`.
pub fn sys_statx(a: &Args) -> SysResult {
    let (dirfd, path, flags, mask, buf) = (a.0[0] as i32, a.0[1], a.0[2], a.0[3] as u32, a.0[4]);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE) != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
        || mask & STATX_RESERVED != 0
    {
        return Err(EINVAL);
    }
    let k = statx_at(dirfd, path, flags)?;
    copy_to_user(buf, &k.to_statx())?;
    Ok(0)
}

const R_OK: u64 = 4;
const W_OK: u64 = 2;
const X_OK: u64 = 1;

/// `faccessat2(dirfd, path, mode, flags)` (`do_faccessat`): everyone is root, so reading
/// and writing are allowed by permission, executing needs an execute bit on a file; a
/// write check on the read-only root is EROFS.
fn do_faccessat(dirfd: i32, path_ptr: u64, mode: u64, flags: u64) -> SysResult {
    if mode & !(R_OK | W_OK | X_OK) != 0 {
        return Err(EINVAL);
    }
    if flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let k = statx_at(dirfd, path_ptr, flags)?;
    let dir = k.mode & S_IFMT == S_IFDIR;
    if mode & X_OK != 0 && !dir && k.mode & 0o111 == 0 {
        return Err(EACCES);
    }
    let special = !matches!(k.mode & S_IFMT, S_IFREG | S_IFDIR | S_IFLNK);
    if mode & W_OK != 0 && !special && on_read_only_mount(dirfd, path_ptr, flags)? {
        return Err(EROFS);
    }
    Ok(0)
}

/// Whether the node `path` names lies on a read-only mount.
fn on_read_only_mount(dirfd: i32, path_ptr: u64, flags: u64) -> Result<bool, Errno> {
    let path = user_path(path_ptr)?;
    if path.is_empty() {
        return Ok(false);
    }
    let abs = namei::path_at(dirfd, &path)?;
    Ok(
        match namei::lookup(&abs, flags & AT_SYMLINK_NOFOLLOW == 0)? {
            Node::Vfs(p) => p.mnt.sb.read_only,
            Node::Proc(_) => false,
        },
    )
}

/// `access(path, mode)`.
pub fn sys_access(a: &Args) -> SysResult {
    do_faccessat(AT_FDCWD, a.0[0], a.0[1], 0)
}

/// `faccessat(dirfd, path, mode)`: the system call has no flags argument.
pub fn sys_faccessat(a: &Args) -> SysResult {
    do_faccessat(a.0[0] as i32, a.0[1], a.0[2], 0)
}

/// `faccessat2(dirfd, path, mode, flags)`.
pub fn sys_faccessat2(a: &Args) -> SysResult {
    do_faccessat(a.0[0] as i32, a.0[1], a.0[2], a.0[3])
}

/// `readlinkat(dirfd, path, buf, bufsiz)`: a link's target, not NUL-terminated, cut to
/// `bufsiz`; EINVAL for anything that is not a link. `/proc/self` and `/proc/PID/exe` are
/// links as on Linux.
fn do_readlinkat(dirfd: i32, path_ptr: u64, buf: u64, size: u64) -> SysResult {
    if (size as i64) <= 0 {
        return Err(EINVAL);
    }
    let path = user_path(path_ptr)?;
    let abs = namei::path_at(dirfd, &path)?;
    let target: Vec<u8> = if is_proc_self(&abs) {
        let pid = proc::current().ok_or(ENOENT)?.pid;
        alloc::format!("{pid}").into_bytes()
    } else {
        match namei::lookup(&abs, false)? {
            Node::Vfs(p) => {
                let inode = p.inode().ok_or(ENOENT)?;
                if !inode.is_symlink() {
                    return Err(EINVAL);
                }
                inode.i_op.readlink(&inode)?
            }
            Node::Proc(procfs::Node::Link(t)) => t,
            Node::Proc(_) => return Err(EINVAL),
        }
    };
    let n = target.len().min(size as usize);
    copy_to_user(buf, &target[..n])?;
    Ok(n as u64)
}

/// Whether `abs` is `/proc/self` (with any extra slashes).
fn is_proc_self(abs: &[u8]) -> bool {
    let parts: Vec<&[u8]> = abs
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    parts == [&b"proc"[..], &b"self"[..]]
}

/// `readlink(path, buf, bufsiz)`.
pub fn sys_readlink(a: &Args) -> SysResult {
    do_readlinkat(AT_FDCWD, a.0[0], a.0[1], a.0[2])
}

/// `readlinkat(dirfd, path, buf, bufsiz)`.
pub fn sys_readlinkat(a: &Args) -> SysResult {
    do_readlinkat(a.0[0] as i32, a.0[1], a.0[2], a.0[3])
}

/// `getcwd(buf, size)`: the path with its NUL; ERANGE if it does not fit. Returns the
/// length including the NUL, as the system call does.
pub fn sys_getcwd(a: &Args) -> SysResult {
    let (buf, size) = (a.0[0], a.0[1]);
    let mut cwd = proc::current().ok_or(ENOENT)?.cwd().lock().clone();
    cwd.push(0);
    if cwd.len() as u64 > size {
        return Err(ERANGE);
    }
    copy_to_user(buf, &cwd)?;
    Ok(cwd.len() as u64)
}

/// `chdir(path)`: ENOTDIR unless a directory; the stored path is canonical.
pub fn sys_chdir(a: &Args) -> SysResult {
    let path = user_path(a.0[0])?;
    let abs = namei::path_at(AT_FDCWD, &path)?;
    let node = namei::lookup(&abs, true)?;
    if node_stat(&node)?.mode & S_IFMT != S_IFDIR {
        return Err(ENOTDIR);
    }
    let canon = namei::dir_path(&abs, &node)?;
    *proc::current().ok_or(ENOENT)?.cwd().lock() = canon;
    Ok(0)
}

/// `fchdir(fd)`.
pub fn sys_fchdir(a: &Args) -> SysResult {
    let f = fget(a.0[0] as u32 as u64)?;
    if !f.f_op.is_dir() {
        return Err(ENOTDIR);
    }
    let p = f.f_op.path().ok_or(ENOTDIR)?;
    *proc::current().ok_or(ENOENT)?.cwd().lock() = p;
    Ok(0)
}

/// `umask(mask)`: the old mask.
pub fn sys_umask(a: &Args) -> SysResult {
    let t = proc::current().ok_or(ENOENT)?;
    Ok(t.umask()
        .swap(a.0[0] as u32 & 0o777, core::sync::atomic::Ordering::Relaxed) as u64)
}

/// The statfs of the filesystem `node` is on.
fn node_statfs(node: &Node) -> Result<Kstatfs, Errno> {
    let sb = match node {
        Node::Vfs(p) => p.mnt.sb.clone(),
        Node::Proc(_) => crate::fs::mount::all()
            .into_iter()
            .find(|m| m.sb.s_type == "proc")
            .ok_or(ENOENT)?
            .sb
            .clone(),
    };
    sb.s_op.statfs(&sb)
}

/// `statfs(path, buf)`.
pub fn sys_statfs(a: &Args) -> SysResult {
    let path = user_path(a.0[0])?;
    let abs = namei::path_at(AT_FDCWD, &path)?;
    let st = node_statfs(&namei::lookup(&abs, true)?)?;
    copy_to_user(a.0[1], &st.to_user())?;
    Ok(0)
}

/// `PIPEFS_MAGIC`, `ANON_INODE_FS_MAGIC`, `DEVPTS_SUPER_MAGIC`: what fstatfs reports for
/// files of Linux's internal mounts.
const PIPEFS_MAGIC: u64 = 0x5049_5045;
const ANON_INODE_FS_MAGIC: u64 = 0x0904_1934;
const DEVPTS_SUPER_MAGIC: u64 = 0x1cd1;

/// `fstatfs(fd, buf)`.
pub fn sys_fstatfs(a: &Args) -> SysResult {
    let f = fget(a.0[0] as u32 as u64)?;
    let st = match f.f_op.vfs_path() {
        Some(p) => p.mnt.sb.s_op.statfs(&p.mnt.sb)?,
        None => {
            let f_type = match f.f_op.name() {
                "pipe" => PIPEFS_MAGIC,
                "console" => DEVPTS_SUPER_MAGIC,
                "proc" => 0x9fa0,
                _ => ANON_INODE_FS_MAGIC,
            };
            Kstatfs {
                f_type,
                f_bsize: crate::mm::PAGE_SIZE,
                f_namelen: 255,
                f_frsize: crate::mm::PAGE_SIZE,
                ..Kstatfs::default()
            }
        }
    };
    copy_to_user(a.0[1], &st.to_user())?;
    Ok(0)
}

/// The extended-attribute calls (`fs/xattr.c`). The filesystems here keep no extended
/// attributes: after the file is found (ENOENT, EBADF as Linux), a get or remove answers
/// ENODATA, a list is empty, and a set EOPNOTSUPP (tmpfs without `user_xattr`). `follow`
/// and `fd` select the l- and f- forms.
pub fn sys_xattr(a: &Args, op: XattrOp, form: XattrForm) -> SysResult {
    match form {
        XattrForm::Fd => {
            crate::fs::fdtable::fget(a.0[0])?;
        }
        XattrForm::Path { follow } => {
            let path = user_path(a.0[0])?;
            let abs = namei::path_at(AT_FDCWD, &path)?;
            namei::lookup(&abs, follow)?;
        }
    }
    match op {
        XattrOp::Get | XattrOp::Remove => Err(super::errno::Errno(61)), // ENODATA
        XattrOp::List => Ok(0),
        XattrOp::Set => Err(super::errno::Errno(95)), // EOPNOTSUPP
    }
}

/// Which extended-attribute call.
#[derive(Clone, Copy)]
pub enum XattrOp {
    Get,
    Set,
    List,
    Remove,
}

/// How the file is named: a path (followed or not) or a descriptor.
#[derive(Clone, Copy)]
pub enum XattrForm {
    Path { follow: bool },
    Fd,
}
