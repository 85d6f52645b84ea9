//! Path names (`fs/namei.c`): relative paths against the working directory or a directory
//! descriptor (`*at` calls, `AT_FDCWD`), /proc beside the initramfs root, and the reverse
//! walk from a directory inode to its path (`getcwd`, `d_path`).

use alloc::vec::Vec;

use super::procfs;
use crate::proc;
use crate::syscall::errno::{Errno, EBADF, ENAMETOOLONG, ENOENT, ENOMEM, ENOTDIR};
use kfs::{FileType, Ino, ROOT_INO};

/// `AT_FDCWD`: a `*at` call's directory is the working directory.
pub const AT_FDCWD: i32 = -100;
/// Longest path (`PATH_MAX`, with its NUL).
pub const PATH_MAX: usize = 4096;

/// Where a path leads.
pub enum Node {
    /// An initramfs inode.
    Ram(Ino),
    /// A /proc node.
    Proc(procfs::Node),
}

/// `path` made absolute from the directory `cwd` (no checks: lookup does them).
pub fn absolute(cwd: &[u8], path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') || cwd.is_empty() {
        return path.to_vec();
    }
    let mut v = Vec::new();
    if v.try_reserve(cwd.len() + 1 + path.len()).is_err() {
        return path.to_vec();
    }
    v.extend_from_slice(cwd);
    if v.last() != Some(&b'/') {
        v.push(b'/');
    }
    v.extend_from_slice(path);
    v
}

/// The absolute path a `*at` call means: `path` from the working directory (`AT_FDCWD`)
/// or from the directory open as `dirfd` (EBADF, ENOTDIR if it is not a directory).
/// An empty path is ENOENT (callers handle `AT_EMPTY_PATH` before).
pub fn path_at(dirfd: i32, path: &[u8]) -> Result<Vec<u8>, Errno> {
    if path.is_empty() {
        return Err(ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(ENAMETOOLONG);
    }
    if path[0] == b'/' {
        return Ok(path.to_vec());
    }
    let base = if dirfd == AT_FDCWD {
        proc::current().ok_or(EBADF)?.cwd.lock().clone()
    } else {
        let f = super::fdtable::fget(dirfd as u32 as u64)?;
        if !f.f_op.is_dir() {
            return Err(ENOTDIR);
        }
        f.f_op.path().ok_or(ENOTDIR)?
    };
    let p = absolute(&base, path);
    if p.len() >= PATH_MAX {
        return Err(ENAMETOOLONG);
    }
    Ok(p)
}

/// `path` with `.`, `..` and repeated slashes folded away lexically (for recognising
/// /proc paths; the initramfs walk handles its own names).
fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut v = Vec::new();
    for c in parts {
        v.push(b'/');
        v.extend_from_slice(c);
    }
    if v.is_empty() {
        v.push(b'/');
    }
    v
}

/// Whether an absolute path names something under /proc.
fn in_proc(norm: &[u8]) -> bool {
    norm == b"/proc" || norm.starts_with(b"/proc/")
}

/// Whether the walk of `abs` passes through /proc (then /proc's names decide, and the
/// path is taken lexically).
fn through_proc(abs: &[u8]) -> bool {
    let mut depth: Vec<&[u8]> = Vec::new();
    for c in abs.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                depth.pop();
            }
            c => depth.push(c),
        }
        if depth.first() == Some(&&b"proc"[..]) {
            return true;
        }
    }
    false
}

/// Resolve an absolute path; the last component's symbolic link is followed with
/// `follow`.
pub fn lookup(abs: &[u8], follow: bool) -> Result<Node, Errno> {
    let norm = normalize(abs);
    if !follow && norm == b"/proc/self" {
        // The link itself (`proc_self_get_link`'s target is the pid).
        let pid = proc::current().map_or(0, |t| t.pid);
        return Ok(Node::Proc(procfs::Node::Link(
            alloc::format!("{pid}").into_bytes(),
        )));
    }
    if in_proc(&norm) || through_proc(abs) {
        if !in_proc(&norm) {
            // Left /proc again ("/proc/self/../.."): the rest is on the initramfs.
            return super::with_root(|fs| fs.lookup_at(ROOT_INO, &norm, follow)).map(Node::Ram);
        }
        return match procfs::lookup(&norm).unwrap_or(Err(ENOENT))? {
            procfs::Node::Link(target) if follow => {
                super::with_root(|fs| fs.lookup(&target)).map(Node::Ram)
            }
            n => Ok(Node::Proc(n)),
        };
    }
    super::with_root(|fs| fs.lookup_at(ROOT_INO, abs, follow)).map(Node::Ram)
}

/// The parent directory of the last component must exist for a create (mkdir, O_CREAT):
/// ENOENT or ENOTDIR if it does not, else `Ok` (whether the name itself exists is the
/// caller's question).
pub fn lookup_parent(abs: &[u8]) -> Result<(), Errno> {
    let trimmed = {
        let mut end = abs.len();
        while end > 1 && abs[end - 1] == b'/' {
            end -= 1;
        }
        &abs[..end]
    };
    let cut = trimmed.iter().rposition(|&b| b == b'/').unwrap_or(0);
    let parent = if cut == 0 { &b"/"[..] } else { &trimmed[..cut] };
    match lookup(parent, true)? {
        Node::Ram(ino) => {
            if super::with_root(|fs| fs.file_type(ino))? != FileType::Directory {
                return Err(ENOTDIR);
            }
            Ok(())
        }
        Node::Proc(procfs::Node::File(_)) => Err(ENOTDIR),
        Node::Proc(_) => Ok(()),
    }
}

/// The canonical path of initramfs directory `dir` (the reverse walk `d_path` does over
/// dentries: each parent's entries are searched for the child).
pub fn ram_path(dir: Ino) -> Result<Vec<u8>, Errno> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut cur = dir;
    // A tree cannot be deeper than PATH_MAX / 2 names.
    for _ in 0..PATH_MAX / 2 {
        if cur == ROOT_INO {
            let mut p = Vec::new();
            p.try_reserve(PATH_MAX).map_err(|_| ENOMEM)?;
            for n in names.iter().rev() {
                p.push(b'/');
                p.extend_from_slice(n);
            }
            if p.is_empty() {
                p.push(b'/');
            }
            return Ok(p);
        }
        let parent = super::with_root(|fs| fs.parent(cur))?;
        let name = super::with_root(|fs| {
            for e in fs.readdir(parent)? {
                if e.ino == cur && e.name != b"." && e.name != b".." {
                    return Ok(e.name.to_vec());
                }
            }
            Err(kfs::Errno::ENOENT)
        })?;
        names.push(name);
        cur = parent;
    }
    Err(ENAMETOOLONG)
}

/// The canonical path of a directory node (for chdir).
pub fn dir_path(abs: &[u8], node: &Node) -> Result<Vec<u8>, Errno> {
    match node {
        Node::Ram(ino) => ram_path(*ino),
        // `/proc/self` is a link to `/proc/PID`: the working directory is the latter.
        Node::Proc(procfs::Node::PidDir(pid)) => Ok(alloc::format!("/proc/{pid}").into_bytes()),
        Node::Proc(_) => Ok(normalize(abs)),
    }
}

/// SEAM(blockdev), to move into the VFS (a devtmpfs lookup): `/dev/NAME` names the
/// registered disk NAME (`/dev/vda`...). Only this exact spelling (after folding `.`, `..`
/// and repeated slashes); the initramfs has no `/dev`, so nothing else is shadowed.
pub fn lookup_blockdev(abs: &[u8]) -> Option<alloc::sync::Arc<dyn crate::block::BlockDevice>> {
    let norm = normalize(abs);
    let name = norm.strip_prefix(b"/dev/")?;
    crate::block::disk(core::str::from_utf8(name).ok()?)
}
