//! System calls that change the tree (`fs/namei.c`, `fs/open.c`): mkdir, mknod, unlink,
//! rmdir, rename, link, symlink, chmod, chown. Paths on mounted filesystems go to the VFS
//! (`fs::namei`); a parent in /proc gets /proc's answers (`fs::readonly`).

use super::errno::{Errno, SysResult, EINVAL, ENOENT, EPERM, EROFS, EXDEV};
use super::fs::{readonly, user_path};
use crate::fs::namei::{self, NewKind, Node};
use crate::fs::stat::{S_IFMT, S_IFREG};

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const AT_EMPTY_PATH: u64 = 0x1000;
/// The file types mknod may make (`S_IFCHR`, `S_IFBLK`, `S_IFIFO`, `S_IFSOCK`, regular).
const MKNOD_TYPES: [u32; 5] = [0o020000, 0o060000, 0o010000, 0o140000, S_IFREG];

fn abs_path(dirfd: i32, ptr: u64) -> Result<alloc::vec::Vec<u8>, Errno> {
    namei::path_at(dirfd, &user_path(ptr)?)
}

/// `mkdirat(dirfd, path, mode)`.
pub fn sys_mkdirat(dirfd: i32, path: u64, mode: u64) -> SysResult {
    let abs = abs_path(dirfd, path)?;
    match namei::create(&abs, NewKind::Dir(mode as u32))? {
        Some(_) => Ok(0),
        None => Err(readonly::check(dirfd, path, readonly::Need::Create, false)),
    }
}

/// `mknodat(dirfd, path, mode, dev)`: a regular file, fifo, socket or device node.
pub fn sys_mknodat(dirfd: i32, path: u64, mode: u64, _dev: u64) -> SysResult {
    let mut mode = mode as u32;
    if mode & S_IFMT == 0 {
        mode |= S_IFREG;
    }
    if !MKNOD_TYPES.contains(&(mode & S_IFMT)) {
        return Err(EINVAL);
    }
    let abs = abs_path(dirfd, path)?;
    match namei::create(&abs, NewKind::File(mode))? {
        Some(_) => Ok(0),
        None => Err(readonly::check(dirfd, path, readonly::Need::Create, false)),
    }
}

/// `unlinkat(dirfd, path, flags)`: AT_REMOVEDIR makes it rmdir.
pub fn sys_unlinkat(dirfd: i32, path: u64, flags: u64) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(EINVAL);
    }
    let dir = flags & AT_REMOVEDIR != 0;
    let abs = abs_path(dirfd, path)?;
    if namei::remove(&abs, dir)? {
        return Ok(0);
    }
    let need = if dir {
        readonly::Need::Rmdir
    } else {
        readonly::Need::Unlink
    };
    Err(readonly::check(dirfd, path, need, false))
}

/// `renameat2(olddir, old, newdir, new, flags)`.
pub fn sys_renameat2(olddir: i32, old: u64, newdir: i32, new: u64, flags: u64) -> SysResult {
    let o = abs_path(olddir, old)?;
    let n = abs_path(newdir, new)?;
    if flags > u32::MAX as u64 {
        return Err(EINVAL);
    }
    if namei::rename(&o, &n, flags as u32)? {
        return Ok(0);
    }
    Err(readonly::rename(olddir, old, newdir, new))
}

/// `linkat(olddir, old, newdir, new, flags)`: a new name for an existing non-directory.
pub fn sys_linkat(olddir: i32, old: u64, newdir: i32, new: u64, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let o = abs_path(olddir, old)?;
    let n = abs_path(newdir, new)?;
    let src = namei::lookup(&o, flags & AT_SYMLINK_FOLLOW != 0)?;
    let Node::Vfs(sp) = src else {
        // The source is in /proc: the target's parent must exist, then EXDEV.
        namei::lookup_parent(&n)?;
        return Err(EXDEV);
    };
    let inode = sp.inode().ok_or(ENOENT)?;
    if inode.is_dir() {
        return Err(EPERM);
    }
    match namei::lookup_parent(&n)? {
        (Node::Vfs(np), _) if !alloc::sync::Arc::ptr_eq(&np.mnt, &sp.mnt) => {
            // Linux checks the mount after the name (EEXIST first).
            if let Ok(Node::Vfs(_)) = namei::lookup(&n, false) {
                return Err(super::errno::EEXIST);
            }
            Err(EXDEV)
        }
        (Node::Vfs(_), _) => match namei::create(&n, NewKind::Link(inode))? {
            Some(_) => Ok(0),
            None => Err(EXDEV),
        },
        (Node::Proc(_), _) => Err(readonly::check(newdir, new, readonly::Need::Create, false)),
    }
}

/// `symlinkat(target, newdir, new)`.
pub fn sys_symlinkat(target: u64, newdir: i32, new: u64) -> SysResult {
    let t = user_path(target)?;
    if t.is_empty() {
        return Err(ENOENT);
    }
    let abs = abs_path(newdir, new)?;
    match namei::create(&abs, NewKind::Symlink(&t))? {
        Some(_) => Ok(0),
        None => Err(readonly::check(newdir, new, readonly::Need::Create, false)),
    }
}

/// `fchmodat(dirfd, path, mode)` and `fchownat(dirfd, path, uid, gid, flags)`: the
/// caller is root, so any change is allowed; /proc files take it without keeping it.
pub fn sys_setattr_at(
    dirfd: i32,
    path: u64,
    follow: bool,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
) -> SysResult {
    let abs = abs_path(dirfd, path)?;
    match namei::lookup(&abs, follow)? {
        Node::Vfs(p) => {
            if p.mnt.sb.read_only {
                return Err(EROFS);
            }
            let inode = p.inode().ok_or(ENOENT)?;
            if let Some(m) = mode {
                namei::setattr_mode(&inode, m);
            }
            if let Some((u, g)) = owner {
                // -1 leaves the id as it is.
                namei::setattr_owner(
                    &inode,
                    (u != u32::MAX).then_some(u),
                    (g != u32::MAX).then_some(g),
                );
            }
            Ok(0)
        }
        Node::Proc(_) => Ok(0),
    }
}

/// Whether `fchownat`'s flags say not to follow a final link.
pub fn nofollow(flags: u64) -> bool {
    flags & AT_SYMLINK_NOFOLLOW != 0
}
