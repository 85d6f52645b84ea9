//! Path names (`fs/namei.c`): the component-by-component walk over the dentry cache,
//! crossing mounts and following symbolic links; relative paths against the working
//! directory or a directory descriptor (`*at` calls, `AT_FDCWD`); and the reverse walk
//! from a dentry to its path (`d_path`, `getcwd`).
//!
//! /proc is mounted like any filesystem, but its names are generated per lookup: a walk
//! that reaches the proc mount hands the rest of the path to `procfs::lookup`.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::dcache::Dentry;
use super::mount::{self, Path};
use super::procfs;
use crate::proc;
use crate::syscall::errno::{Errno, EBADF, ELOOP, ENAMETOOLONG, ENOENT, ENOMEM, ENOTDIR};

/// `AT_FDCWD`: a `*at` call's directory is the working directory.
pub const AT_FDCWD: i32 = -100;
/// Longest path (`PATH_MAX`, with its NUL).
pub const PATH_MAX: usize = 4096;

/// Longest name of one component (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Symbolic links one walk follows at most (`MAXSYMLINKS`).
pub const MAXSYMLINKS: u32 = 40;

/// Where a path leads.
pub enum Node {
    /// A dentry of a mounted filesystem.
    Vfs(Path),
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
        proc::current().ok_or(EBADF)?.cwd().lock().clone()
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
    let mut depth = 0;
    lookup_depth(abs, follow, &mut depth)
}

fn lookup_depth(abs: &[u8], follow: bool, depth: &mut u32) -> Result<Node, Errno> {
    let norm = normalize(abs);
    if !follow && norm == b"/proc/self" {
        // The link itself (`proc_self_get_link`'s target is the pid).
        let pid = proc::current().map_or(0, |t| t.pid);
        return Ok(Node::Proc(procfs::Node::Link(
            alloc::format!("{pid}").into_bytes(),
        )));
    }
    if let Some(n) = procfs::lookup_sys(&norm) {
        // The knobs of /sys/kernel/mm/transparent_hugepage (sysfs files served like /proc's).
        return n.map(Node::Proc);
    }
    if in_proc(&norm) || through_proc(abs) {
        if !in_proc(&norm) {
            // Left /proc again ("/proc/self/../.."): the rest is on the root.
            return walk(None, &norm, follow, depth);
        }
        return match procfs::lookup(&norm).unwrap_or(Err(ENOENT))? {
            procfs::Node::Link(target) if follow => {
                *depth += 1;
                if *depth > MAXSYMLINKS {
                    return Err(ELOOP);
                }
                let t = if target.first() == Some(&b'/') {
                    target
                } else {
                    absolute(b"/proc", &target)
                };
                lookup_depth(&t, true, depth)
            }
            n => Ok(Node::Proc(n)),
        };
    }
    walk(None, abs, follow, depth)
}

/// The cached or looked-up child `name` of `dir` (`lookup_one`): a negative dentry if
/// the name does not exist.
pub fn lookup_one(dir: &Arc<Dentry>, name: &[u8]) -> Result<Arc<Dentry>, Errno> {
    if let Some(d) = dir.child(name) {
        return Ok(d);
    }
    let di = dir.inode().ok_or(ENOENT)?;
    let found = di.i_op.lookup(&di, name)?;
    dir.add_child(name, found)
}

/// `..` of `p`: out of a mount's root to the dentry it covers, never above `root`.
fn parent_of(p: &Path, root: &Path) -> Path {
    let mut p = p.clone();
    // Each step leaves one mount; there are finitely many.
    for _ in 0..64 {
        if Arc::ptr_eq(&p.dentry, &root.dentry) && Arc::ptr_eq(&p.mnt, &root.mnt) {
            return p;
        }
        if Arc::ptr_eq(&p.dentry, &p.mnt.root) {
            match p.mnt.parent.clone() {
                Some((m, d)) => {
                    p = Path { mnt: m, dentry: d };
                    continue;
                }
                None => return p,
            }
        }
        let up = p.dentry.parent().unwrap_or_else(|| p.dentry.clone());
        return Path {
            mnt: p.mnt,
            dentry: up,
        };
    }
    p
}

/// The components of `path`, and whether it ends in a slash after a name.
fn components(path: &[u8]) -> (Vec<&[u8]>, bool) {
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let slash = path.last() == Some(&b'/') && !comps.is_empty();
    (comps, slash)
}

/// `/proc` followed by `rest` (a walk that entered the proc mount).
fn proc_path(rest: &[&[u8]], slash: bool) -> Vec<u8> {
    let mut s = Vec::from(&b"/proc"[..]);
    for c in rest {
        s.push(b'/');
        s.extend_from_slice(c);
    }
    if slash {
        s.push(b'/');
    }
    s
}

/// Walk `path` from `start` (None or an absolute path: the root), following the last
/// component's link with `follow` (`path_lookupat`).
fn walk(start: Option<Path>, path: &[u8], follow: bool, depth: &mut u32) -> Result<Node, Errno> {
    let root = mount::root().ok_or(ENOENT)?;
    let mut cur = match start {
        Some(s) if path.first() != Some(&b'/') => s,
        _ => root.clone(),
    };
    let (comps, slash) = components(path);
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        if !cur.inode().ok_or(ENOENT)?.is_dir() {
            return Err(ENOTDIR);
        }
        match *c {
            b"." => continue,
            b".." => {
                cur = parent_of(&cur, &root);
                continue;
            }
            _ => {}
        }
        if c.len() > NAME_MAX {
            return Err(ENAMETOOLONG);
        }
        let child = lookup_one(&cur.dentry, c)?;
        let mut next = mount::follow_mounts(Path {
            mnt: cur.mnt.clone(),
            dentry: child,
        });
        if next.mnt.sb.s_type == "proc" {
            return lookup_depth(&proc_path(&comps[i + 1..], slash), follow, depth);
        }
        let ci = next.inode().ok_or(ENOENT)?;
        if ci.is_symlink() && (!last || follow || slash) {
            *depth += 1;
            if *depth > MAXSYMLINKS {
                return Err(ELOOP);
            }
            let target = ci.i_op.readlink(&ci)?;
            if target.is_empty() {
                return Err(ENOENT);
            }
            match walk(Some(cur.clone()), &target, true, depth)? {
                Node::Vfs(p) => next = p,
                Node::Proc(n) => {
                    if last {
                        return Ok(Node::Proc(n));
                    }
                    // Continue inside /proc by name.
                    let base = match n {
                        procfs::Node::Root => Vec::from(&b"/proc"[..]),
                        procfs::Node::Dir(d) => d.path(),
                        _ => return Err(ENOTDIR),
                    };
                    let mut s = base;
                    for r in &comps[i + 1..] {
                        s.push(b'/');
                        s.extend_from_slice(r);
                    }
                    return lookup_depth(&s, follow, depth);
                }
            }
        }
        cur = next;
    }
    if slash && !cur.inode().ok_or(ENOENT)?.is_dir() {
        return Err(ENOTDIR);
    }
    Ok(Node::Vfs(cur))
}

/// The last component of `abs` (trailing slashes ignored): None for the root.
pub fn last_component(abs: &[u8]) -> Option<&[u8]> {
    abs.rsplit(|&b| b == b'/').find(|c| !c.is_empty())
}

/// The directory that holds the last component of `abs`, and that component
/// (`filename_parentat`): ENOENT/ENOTDIR from the walk to the parent. The root has no
/// last component (None).
pub fn lookup_parent(abs: &[u8]) -> Result<(Node, Option<Vec<u8>>), Errno> {
    let mut end = abs.len();
    while end > 1 && abs[end - 1] == b'/' {
        end -= 1;
    }
    let trimmed = &abs[..end];
    let Some(last) = last_component(trimmed) else {
        return Ok((lookup(b"/", true)?, None));
    };
    let cut = trimmed.iter().rposition(|&b| b == b'/').unwrap_or(0);
    let parent = if cut == 0 { &b"/"[..] } else { &trimmed[..cut] };
    let node = lookup(parent, true)?;
    match &node {
        Node::Vfs(p) if !p.inode().ok_or(ENOENT)?.is_dir() => return Err(ENOTDIR),
        Node::Proc(procfs::Node::File(_)) | Node::Proc(procfs::Node::Link(_)) => {
            return Err(ENOTDIR)
        }
        _ => {}
    }
    Ok((node, Some(last.to_vec())))
}

/// The path of `p` from the root (`d_path`): a dentry removed from the tree gets
/// ` (deleted)` as Linux prints it.
pub fn d_path(p: &Path) -> Result<Vec<u8>, Errno> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut cur = p.clone();
    let mut deleted = false;
    // A tree cannot be deeper than PATH_MAX / 2 names.
    for _ in 0..PATH_MAX / 2 {
        if Arc::ptr_eq(&cur.dentry, &cur.mnt.root) {
            match cur.mnt.parent.clone() {
                Some((m, d)) => {
                    cur = Path { mnt: m, dentry: d };
                    continue;
                }
                None => {
                    let mut out = Vec::new();
                    out.try_reserve(PATH_MAX).map_err(|_| ENOMEM)?;
                    for n in names.iter().rev() {
                        out.push(b'/');
                        out.extend_from_slice(n);
                    }
                    if out.is_empty() {
                        out.push(b'/');
                    }
                    if deleted {
                        out.extend_from_slice(b" (deleted)");
                    }
                    return Ok(out);
                }
            }
        }
        if !cur.dentry.is_hashed() {
            deleted = true;
        }
        let Some(parent) = cur.dentry.parent() else {
            // Cut off from the tree: only its own name is known.
            deleted = true;
            names.push(cur.dentry.name());
            cur.dentry = cur.mnt.root.clone();
            continue;
        };
        names.push(cur.dentry.name());
        cur.dentry = parent;
    }
    Err(ENAMETOOLONG)
}

/// The canonical path of a directory node (for chdir).
pub fn dir_path(abs: &[u8], node: &Node) -> Result<Vec<u8>, Errno> {
    match node {
        Node::Vfs(p) => d_path(p),
        // `/proc/self` is a link to `/proc/PID`: the working directory is the latter.
        Node::Proc(procfs::Node::Dir(d)) => Ok(d.path()),
        Node::Proc(_) => Ok(normalize(abs)),
    }
}

// ---- changing the tree (`vfs_mkdir`, `vfs_unlink`, `vfs_rename`, ... in fs/namei.c) ----

use super::inode::Inode;
use crate::syscall::errno::{EBUSY, EEXIST, EFBIG, EINVAL, EISDIR, ENOTEMPTY, EROFS, EXDEV};

/// What a create makes.
pub enum NewKind<'a> {
    /// A regular file (or device/fifo) with this mode, type bits included.
    File(u32),
    Dir(u32),
    Symlink(&'a [u8]),
    /// A new name for this inode.
    Link(Arc<Inode>),
}

/// The directory and last name a change acts on: ENOENT/ENOTDIR from the parent walk;
/// `Ok(None)` when the parent is in /proc (the caller answers as /proc does).
/// A parent directory and the last component (None for the root).
type ParentAndName = (Path, Option<Vec<u8>>);

fn parent_for_change(abs: &[u8]) -> Result<Option<ParentAndName>, Errno> {
    match lookup_parent(abs)? {
        (Node::Vfs(p), last) => Ok(Some((p, last))),
        (Node::Proc(_), _) => Ok(None),
    }
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

fn writable(p: &Path) -> Result<(), Errno> {
    if p.mnt.sb.read_only {
        return Err(EROFS);
    }
    Ok(())
}

/// The current task's umask.
fn umask() -> u32 {
    proc::current().map_or(0o022, |t| {
        t.umask().load(core::sync::atomic::Ordering::Relaxed)
    })
}

/// Create the last component of `abs` (`filename_create` + `vfs_create`/`vfs_mkdir`/
/// `vfs_symlink`/`vfs_link`); `Ok(None)` if the parent is in /proc.
pub fn create(abs: &[u8], kind: NewKind) -> Result<Option<Path>, Errno> {
    let Some((parent, last)) = parent_for_change(abs)? else {
        return Ok(None);
    };
    let Some(last) = last else {
        return Err(EEXIST);
    };
    if is_dot(&last) {
        return Err(EEXIST);
    }
    if last.len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    let d = lookup_one(&parent.dentry, &last)?;
    if !d.is_negative() {
        return Err(EEXIST);
    }
    if abs.last() == Some(&b'/') && !matches!(kind, NewKind::Dir(_)) {
        // `creat("new/")`, `symlink(t, "new/")`: only a directory can end in a slash.
        return Err(if matches!(kind, NewKind::File(_)) {
            EISDIR
        } else {
            ENOENT
        });
    }
    writable(&parent)?;
    let dir = parent.inode().ok_or(ENOENT)?;
    let mask = !umask();
    let inode = match kind {
        NewKind::File(mode) => dir.i_op.create(
            &dir,
            &last,
            (mode & super::stat::S_IFMT) | (mode & 0o7777 & mask),
        )?,
        NewKind::Dir(mode) => dir.i_op.mkdir(&dir, &last, mode & 0o7777 & mask)?,
        NewKind::Symlink(target) => dir.i_op.symlink(&dir, &last, target)?,
        NewKind::Link(old) => {
            dir.i_op.link(&old, &dir, &last)?;
            old
        }
    };
    parent.dentry.drop_child(&last);
    let d = parent.dentry.add_child(&last, Some(inode))?;
    Ok(Some(Path {
        mnt: parent.mnt,
        dentry: d,
    }))
}

/// Whether some mount covers `p`.
fn is_mountpoint(p: &Path) -> bool {
    mount::mounted_on(p).is_some()
}

/// `unlink` (`rmdir` with `dir`) of the last component of `abs`; `Ok(false)` if the
/// parent is in /proc.
pub fn remove(abs: &[u8], dir: bool) -> Result<bool, Errno> {
    let Some((parent, last)) = parent_for_change(abs)? else {
        return Ok(false);
    };
    let Some(last) = last else {
        return Err(if dir { EBUSY } else { EISDIR });
    };
    match (&last[..], dir) {
        (b".", true) => return Err(EINVAL),
        (b"..", true) => return Err(ENOTEMPTY),
        (b"." | b"..", false) => return Err(EISDIR),
        _ => {}
    }
    let d = lookup_one(&parent.dentry, &last)?;
    let victim = d.inode().ok_or(ENOENT)?;
    if dir && !victim.is_dir() {
        return Err(ENOTDIR);
    }
    if !dir && victim.is_dir() {
        return Err(EISDIR);
    }
    if !dir && abs.last() == Some(&b'/') {
        return Err(ENOTDIR);
    }
    writable(&parent)?;
    let child = Path {
        mnt: parent.mnt.clone(),
        dentry: d,
    };
    if is_mountpoint(&child) {
        return Err(EBUSY);
    }
    let pdir = parent.inode().ok_or(ENOENT)?;
    if dir {
        pdir.i_op.rmdir(&pdir, &last)?;
    } else {
        pdir.i_op.unlink(&pdir, &last)?;
    }
    // `d_delete`: the name is now known not to exist.
    parent.dentry.drop_child(&last);
    let _ = parent.dentry.add_child(&last, None);
    Ok(true)
}

/// `RENAME_NOREPLACE`, `RENAME_EXCHANGE`, `RENAME_WHITEOUT`.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;
pub const RENAME_WHITEOUT: u32 = 4;

/// `renameat2` of `old` to `new` (`do_renameat2`); `Ok(false)` if a parent is in /proc.
pub fn rename(old: &[u8], new: &[u8], flags: u32) -> Result<bool, Errno> {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
        || flags & RENAME_EXCHANGE != 0 && flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) != 0
    {
        return Err(EINVAL);
    }
    let op = parent_for_change(old)?;
    let np = parent_for_change(new)?;
    let (Some((opar, olast)), Some((npar, nlast))) = (op, np) else {
        if parent_for_change(old)?.is_some() != parent_for_change(new)?.is_some() {
            return Err(EXDEV);
        }
        return Ok(false);
    };
    if !Arc::ptr_eq(&opar.mnt, &npar.mnt) {
        return Err(EXDEV);
    }
    let (Some(olast), Some(nlast)) = (olast, nlast) else {
        return Err(EBUSY);
    };
    if is_dot(&olast) || is_dot(&nlast) {
        return Err(EBUSY);
    }
    if flags & (RENAME_EXCHANGE | RENAME_WHITEOUT) != 0 {
        // Not offered by this kernel's filesystems.
        return Err(EINVAL);
    }
    let od = lookup_one(&opar.dentry, &olast)?;
    let src = od.inode().ok_or(ENOENT)?;
    let nd = lookup_one(&npar.dentry, &nlast)?;
    let tgt = nd.inode();
    if flags & RENAME_NOREPLACE != 0 && tgt.is_some() {
        return Err(EEXIST);
    }
    if let Some(t) = &tgt {
        if Arc::ptr_eq(t, &src) {
            return Ok(true);
        }
        if src.is_dir() && !t.is_dir() {
            return Err(ENOTDIR);
        }
        if !src.is_dir() && t.is_dir() {
            return Err(EISDIR);
        }
    } else if !src.is_dir() && (old.last() == Some(&b'/') || new.last() == Some(&b'/')) {
        return Err(ENOTDIR);
    }
    // A directory cannot move below itself; a target that is an ancestor of the source
    // is not empty.
    if src.is_dir() && npar.dentry.is_subdir(&od) {
        return Err(EINVAL);
    }
    if tgt.is_some() && opar.dentry.is_subdir(&nd) {
        return Err(ENOTEMPTY);
    }
    writable(&opar)?;
    for d in [&od, &nd] {
        if is_mountpoint(&Path {
            mnt: opar.mnt.clone(),
            dentry: d.clone(),
        }) {
            return Err(EBUSY);
        }
    }
    let odir = opar.inode().ok_or(ENOENT)?;
    let ndir = npar.inode().ok_or(ENOENT)?;
    odir.i_op.rename(&odir, &olast, &ndir, &nlast)?;
    // `d_move`: the source dentry (and whoever holds it as a working directory) goes to
    // the new name; the replaced target's dentry leaves the tree.
    npar.dentry.drop_child(&nlast);
    od.move_to(&npar.dentry, &nlast);
    let _ = opar.dentry.add_child(&olast, None);
    Ok(true)
}

/// Change the size of a regular file (`do_truncate`): mappings lose the pages past the
/// new end first (`truncate_pagecache`), so the next access there is SIGBUS.
pub fn do_truncate(inode: &Arc<Inode>, len: u64) -> Result<(), Errno> {
    if inode.is_dir() {
        return Err(EISDIR);
    }
    if !inode.is_reg() {
        return Err(EINVAL);
    }
    if len > (1 << 46) {
        return Err(EFBIG);
    }
    if inode.i_mapping != 0 && len < inode.size() {
        crate::mm::memory::unmap_mapping_range(inode.i_mapping, len.div_ceil(crate::mm::PAGE_SIZE));
    }
    inode.i_op.set_size(inode, len)
}

/// `chmod`-style attribute changes on a path node: EPERM for /proc as Linux gives for
/// most of its files is decided by the caller.
pub fn setattr_mode(inode: &Inode, mode: u32) {
    let mut m = inode.meta.lock();
    m.mode = (m.mode & super::stat::S_IFMT) | (mode & 0o7777);
    m.ctime = super::super_block::now();
}

pub fn setattr_owner(inode: &Inode, uid: Option<u32>, gid: Option<u32>) {
    let mut m = inode.meta.lock();
    if let Some(u) = uid {
        m.uid = u;
    }
    if let Some(g) = gid {
        m.gid = g;
    }
    m.ctime = super::super_block::now();
}
