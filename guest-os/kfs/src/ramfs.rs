//! An in-memory, read-only file system unpacked from a newc cpio archive: what Linux's
//! initramfs unpacking into rootfs produces.
//!
//! * Inode numbers are assigned in creation order, the root directory being [`ROOT_INO`];
//!   the archive's own `ino` fields only identify hard links (entries with `nlink >= 2` and
//!   the same `dev_major`, `dev_minor`, `ino`).
//! * Regular files and symbolic links *borrow* their data from the archive (no copy; the
//!   archive must outlive the file system). [`Ramfs::into_owned`] copies everything, for a
//!   kernel that wants to free the archive's memory.
//! * Entries may come in any order: missing parent directories are created (mode 0755,
//!   owner 0:0, mtime 0) and take the metadata of their own entry when it comes. A later
//!   entry replaces an earlier one at the same path, as Linux's unpacker does; a directory
//!   over a directory only updates the metadata, and a non-empty directory cannot be
//!   replaced (`ENOTEMPTY`).
//! * Errors are Linux errnos, as the system calls return them.

use crate::cpio::{self, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};
use crate::{Errno, MAX_SYMLINKS, NAME_MAX, PATH_MAX};
use alloc::borrow::Cow;
use alloc::collections::{btree_map, BTreeMap};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// An inode number.
pub type Ino = u64;
/// The root directory's inode number (as in Linux's rootfs).
pub const ROOT_INO: Ino = 1;

/// Mode of directories created for a path's missing parents.
const IMPLICIT_DIR_MODE: u32 = S_IFDIR | 0o755;

/// The type of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The type in a `st_mode`, if it is a known one.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & S_IFMT {
            S_IFREG => FileType::Regular,
            S_IFDIR => FileType::Directory,
            S_IFLNK => FileType::Symlink,
            S_IFCHR => FileType::CharDevice,
            S_IFBLK => FileType::BlockDevice,
            S_IFIFO => FileType::Fifo,
            S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }

    /// `d_type` for `getdents64` (`DT_REG`, `DT_DIR`...).
    pub fn dirent_type(self) -> u8 {
        match self {
            FileType::Fifo => 1,
            FileType::CharDevice => 2,
            FileType::Directory => 4,
            FileType::BlockDevice => 6,
            FileType::Regular => 8,
            FileType::Symlink => 10,
            FileType::Socket => 12,
        }
    }
}

/// What `stat` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ino: Ino,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Directory entries naming the inode; for a directory 2 plus its subdirectories.
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of a file, of a link's target; 0 for directories and special files.
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
    /// The device a character or block special file stands for, else 0.
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// One `readdir` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'f> {
    pub name: &'f [u8],
    pub ino: Ino,
    pub file_type: FileType,
    /// Position of the next entry: `getdents64`'s `d_off`, to resume with
    /// [`Ramfs::readdir_from`].
    pub next: u64,
}

/// Why an archive could not be unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The archive itself is malformed.
    Cpio(cpio::CpioError),
    /// An entry cannot be created (e.g. a path through a regular file: `ENOTDIR`).
    Entry {
        offset: usize,
        name: Vec<u8>,
        errno: Errno,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Cpio(e) => e.fmt(f),
            BuildError::Entry {
                offset,
                name,
                errno,
            } => write!(
                f,
                "cpio entry {:?} at offset {offset}: {errno}",
                String::from_utf8_lossy(name)
            ),
        }
    }
}

enum Kind<'a> {
    Dir {
        parent: Ino,
        children: BTreeMap<Vec<u8>, Ino>,
    },
    File(Cow<'a, [u8]>),
    Symlink(Cow<'a, [u8]>),
    /// Device nodes (with their device number), FIFOs and sockets (0, 0).
    Special {
        rdev: (u32, u32),
    },
}

struct Inode<'a> {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u32,
    nlink: u32,
    kind: Kind<'a>,
}

impl Inode<'_> {
    fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode).unwrap_or(FileType::Regular)
    }
}

/// The file system. `'a` is the archive's lifetime (see the module notes).
pub struct Ramfs<'a> {
    /// Indexed by `ino - 1`; `None` for inodes an entry replaced.
    inodes: Vec<Option<Inode<'a>>>,
}

impl Default for Ramfs<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Ramfs<'a> {
    /// A file system holding only an empty root directory (mode 0755, owner 0:0).
    pub fn new() -> Self {
        Ramfs {
            inodes: alloc::vec![Some(Inode {
                mode: IMPLICIT_DIR_MODE,
                uid: 0,
                gid: 0,
                mtime: 0,
                nlink: 2,
                kind: Kind::Dir {
                    parent: ROOT_INO,
                    children: BTreeMap::new(),
                },
            })],
        }
    }

    /// Unpack a newc archive (or several concatenated ones). An entry named `.` (or `/`)
    /// sets the root directory's metadata.
    pub fn from_cpio(archive: &'a [u8]) -> Result<Self, BuildError> {
        let mut fs = Ramfs::new();
        let mut links = BTreeMap::new();
        for entry in cpio::entries(archive) {
            let e = entry.map_err(BuildError::Cpio)?;
            fs.add_entry(&e, &mut links)
                .map_err(|errno| BuildError::Entry {
                    offset: e.offset,
                    name: e.name.to_vec(),
                    errno,
                })?;
        }
        Ok(fs)
    }

    /// Copy all file data, so the archive can go.
    pub fn into_owned(self) -> Ramfs<'static> {
        let own = |c: Cow<'a, [u8]>| Cow::Owned(c.into_owned());
        Ramfs {
            inodes: self
                .inodes
                .into_iter()
                .map(|i| {
                    i.map(|i| Inode {
                        kind: match i.kind {
                            Kind::Dir { parent, children } => Kind::Dir { parent, children },
                            Kind::File(d) => Kind::File(own(d)),
                            Kind::Symlink(t) => Kind::Symlink(own(t)),
                            Kind::Special { rdev } => Kind::Special { rdev },
                        },
                        mode: i.mode,
                        uid: i.uid,
                        gid: i.gid,
                        mtime: i.mtime,
                        nlink: i.nlink,
                    })
                })
                .collect(),
        }
    }

    /// Live inodes.
    pub fn inode_count(&self) -> usize {
        self.inodes.iter().filter(|i| i.is_some()).count()
    }

    fn inode(&self, ino: Ino) -> Result<&Inode<'a>, Errno> {
        let i = usize::try_from(ino.wrapping_sub(1)).map_err(|_| Errno::ENOENT)?;
        self.inodes
            .get(i)
            .and_then(|i| i.as_ref())
            .ok_or(Errno::ENOENT)
    }

    fn inode_mut(&mut self, ino: Ino) -> Result<&mut Inode<'a>, Errno> {
        let i = usize::try_from(ino.wrapping_sub(1)).map_err(|_| Errno::ENOENT)?;
        self.inodes
            .get_mut(i)
            .and_then(|i| i.as_mut())
            .ok_or(Errno::ENOENT)
    }

    fn children(&self, dir: Ino) -> Result<&BTreeMap<Vec<u8>, Ino>, Errno> {
        match &self.inode(dir)?.kind {
            Kind::Dir { children, .. } => Ok(children),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// The parent of directory `dir` (the root is its own parent).
    pub fn parent(&self, dir: Ino) -> Result<Ino, Errno> {
        match &self.inode(dir)?.kind {
            Kind::Dir { parent, .. } => Ok(*parent),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Resolve `path` from the root, following symbolic links (a relative path is taken
    /// from the root too).
    pub fn lookup(&self, path: &[u8]) -> Result<Ino, Errno> {
        self.lookup_at(ROOT_INO, path, true)
    }

    /// Resolve `path` from directory `dir` (ignored for an absolute path), as Linux's path
    /// walk does: repeated slashes count as one, `.` and `..` (the root's `..` is the root),
    /// symbolic links in the middle always followed and the last one only with
    /// `follow_last` or a trailing slash. A trailing slash requires a directory.
    pub fn lookup_at(&self, dir: Ino, path: &[u8], follow_last: bool) -> Result<Ino, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut cur = if path[0] == b'/' { ROOT_INO } else { dir };
        self.children(cur)?;
        // The path still to walk; a followed link's target is put in front of the rest.
        let mut rest: Cow<'_, [u8]> = Cow::Borrowed(path);
        let mut pos = 0;
        let mut links = 0;
        loop {
            while rest.get(pos) == Some(&b'/') {
                pos += 1;
            }
            if pos == rest.len() {
                return Ok(cur); // `cur` is always a directory here
            }
            let end = rest[pos..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(rest.len(), |i| pos + i);
            let name = &rest[pos..end];
            let trailing_slash = end < rest.len();
            let last = rest[end..].iter().all(|&b| b == b'/');
            if name.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            if name == b"." {
                pos = end;
                continue;
            }
            if name == b".." {
                cur = self.parent(cur)?;
                pos = end;
                continue;
            }
            let child = *self.children(cur)?.get(name).ok_or(Errno::ENOENT)?;
            let inode = self.inode(child)?;
            match &inode.kind {
                Kind::Dir { .. } => cur = child,
                Kind::Symlink(target) if !last || follow_last || trailing_slash => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    // `rest[end..]` is empty or starts with a slash.
                    let mut next = Vec::with_capacity(target.len() + rest.len() - end);
                    next.extend_from_slice(target);
                    next.extend_from_slice(&rest[end..]);
                    if target.first() == Some(&b'/') {
                        cur = ROOT_INO;
                    }
                    rest = Cow::Owned(next);
                    pos = 0;
                    continue;
                }
                _ if last && !trailing_slash => return Ok(child),
                _ => return Err(Errno::ENOTDIR),
            }
            pos = end;
        }
    }

    /// `stat` of an inode.
    pub fn stat(&self, ino: Ino) -> Result<Stat, Errno> {
        let i = self.inode(ino)?;
        let (size, rdev) = match &i.kind {
            Kind::Dir { .. } => (0, (0, 0)),
            Kind::File(d) | Kind::Symlink(d) => (d.len() as u64, (0, 0)),
            Kind::Special { rdev } => (0, *rdev),
        };
        Ok(Stat {
            ino,
            mode: i.mode,
            nlink: i.nlink,
            uid: i.uid,
            gid: i.gid,
            size,
            mtime: i.mtime as u64,
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
        })
    }

    pub fn file_type(&self, ino: Ino) -> Result<FileType, Errno> {
        Ok(self.inode(ino)?.file_type())
    }

    /// A regular file's whole contents (for `exec`, which maps rather than reads).
    /// `EISDIR` for a directory, `EINVAL` for anything else that is not a regular file.
    pub fn data(&self, ino: Ino) -> Result<&[u8], Errno> {
        match &self.inode(ino)?.kind {
            Kind::File(d) => Ok(d),
            Kind::Dir { .. } => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Copy bytes of a regular file from `offset` into `buf`; returns the count, 0 at or
    /// past the end. Errors as [`Ramfs::data`].
    pub fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let data = self.data(ino)?;
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let avail = data.get(start..).unwrap_or(&[]);
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        Ok(n)
    }

    /// A symbolic link's target; `EINVAL` if `ino` is not a link (as `readlink`).
    pub fn readlink(&self, ino: Ino) -> Result<&[u8], Errno> {
        match &self.inode(ino)?.kind {
            Kind::Symlink(t) => Ok(t),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The entries of directory `dir`: `.`, `..`, then the names in byte order. The order
    /// never changes (the file system is read-only), so a position stays valid.
    pub fn readdir(&self, dir: Ino) -> Result<ReadDir<'_>, Errno> {
        self.readdir_from(dir, 0)
    }

    /// [`Ramfs::readdir`] from position `pos` (a previous entry's `next`).
    pub fn readdir_from(&self, dir: Ino, pos: u64) -> Result<ReadDir<'_>, Errno> {
        let children = self.children(dir)?;
        let skip = usize::try_from(pos.saturating_sub(2)).unwrap_or(usize::MAX);
        let fs: &Ramfs<'_> = self;
        Ok(ReadDir {
            fs,
            dir,
            pos,
            children: children.iter().skip(skip),
        })
    }

    // ---- building -----------------------------------------------------------------------

    fn alloc(&mut self, inode: Inode<'a>) -> Ino {
        self.inodes.push(Some(inode));
        self.inodes.len() as Ino
    }

    fn children_mut(&mut self, dir: Ino) -> Result<&mut BTreeMap<Vec<u8>, Ino>, Errno> {
        match &mut self.inode_mut(dir)?.kind {
            Kind::Dir { children, .. } => Ok(children),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Add `name` in `dir` for a new inode; a directory counts in its parent's links.
    fn insert(&mut self, dir: Ino, name: &[u8], inode: Inode<'a>) -> Result<Ino, Errno> {
        let is_dir = matches!(inode.kind, Kind::Dir { .. });
        let ino = self.alloc(inode);
        self.children_mut(dir)?.insert(name.to_vec(), ino);
        if is_dir {
            self.inode_mut(dir)?.nlink += 1;
        }
        Ok(ino)
    }

    /// Remove `name` from `dir`, freeing its inode when nothing links to it any more.
    fn unlink(&mut self, dir: Ino, name: &[u8]) -> Result<(), Errno> {
        let ino = self.children_mut(dir)?.remove(name).ok_or(Errno::ENOENT)?;
        let is_dir = matches!(self.inode(ino)?.kind, Kind::Dir { .. });
        if is_dir {
            self.inode_mut(dir)?.nlink -= 1;
            self.inodes[(ino - 1) as usize] = None;
        } else {
            let i = self.inode_mut(ino)?;
            i.nlink -= 1;
            if i.nlink == 0 {
                self.inodes[(ino - 1) as usize] = None;
            }
        }
        Ok(())
    }

    /// One step of an entry's parent path: into `name` of `dir`, creating it if missing.
    fn step_create(&mut self, dir: Ino, name: &[u8]) -> Result<Ino, Errno> {
        match name {
            b"." => return Ok(dir),
            b".." => return self.parent(dir),
            _ => {}
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let Some(&child) = self.children(dir)?.get(name) else {
            let dir_inode = Inode {
                mode: IMPLICIT_DIR_MODE,
                uid: 0,
                gid: 0,
                mtime: 0,
                nlink: 2,
                kind: Kind::Dir {
                    parent: dir,
                    children: BTreeMap::new(),
                },
            };
            return self.insert(dir, name, dir_inode);
        };
        match self.inode(child)?.kind {
            Kind::Dir { .. } => Ok(child),
            Kind::Symlink(_) => {
                let target = self.lookup_at(dir, name, true)?;
                self.children(target)?;
                Ok(target)
            }
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn add_entry(
        &mut self,
        e: &cpio::Entry<'a>,
        links: &mut BTreeMap<(u32, u32, u32), Ino>,
    ) -> Result<(), Errno> {
        let ft = FileType::from_mode(e.mode).ok_or(Errno::EINVAL)?;
        if e.name.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mode = e.mode & (S_IFMT | 0o7777);
        let mut comps = e.name.split(|&b| b == b'/').filter(|c| !c.is_empty());
        let mut dir = ROOT_INO;
        let mut last = comps.next();
        for c in comps {
            dir = self.step_create(dir, last.unwrap_or(b"."))?;
            last = Some(c);
        }
        // The entry names a directory itself (`.`, `/`, `a/..`): only metadata can change.
        let name = match last {
            None | Some(b".") => None,
            Some(b"..") => {
                dir = self.parent(dir)?;
                None
            }
            Some(n) => Some(n),
        };
        let Some(name) = name else {
            if ft != FileType::Directory {
                return Err(Errno::EEXIST);
            }
            return self.set_dir_metadata(dir, e);
        };
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if let Some(&old) = self.children(dir)?.get(name) {
            match &self.inode(old)?.kind {
                Kind::Dir { .. } if ft == FileType::Directory => {
                    return self.set_dir_metadata(old, e);
                }
                Kind::Dir { children, .. } if !children.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => self.unlink(dir, name)?,
            }
        }

        let link_key = (e.dev_major, e.dev_minor, e.ino);
        if ft == FileType::Regular && e.nlink >= 2 {
            if let Some(&ino) = links.get(&link_key) {
                if let Ok(inode) = self.inode_mut(ino) {
                    if let Kind::File(data) = &mut inode.kind {
                        // Writers put the data on the first or on the last link.
                        if !e.data.is_empty() {
                            *data = Cow::Borrowed(e.data);
                        }
                        inode.nlink += 1;
                        self.children_mut(dir)?.insert(name.to_vec(), ino);
                        return Ok(());
                    }
                }
            }
        }

        let kind = match ft {
            FileType::Directory => {
                if !e.data.is_empty() {
                    return Err(Errno::EINVAL);
                }
                Kind::Dir {
                    parent: dir,
                    children: BTreeMap::new(),
                }
            }
            FileType::Regular => Kind::File(Cow::Borrowed(e.data)),
            FileType::Symlink => {
                if e.data.is_empty() {
                    return Err(Errno::ENOENT);
                }
                if e.data.len() >= PATH_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                if e.data.contains(&0) {
                    return Err(Errno::EINVAL);
                }
                Kind::Symlink(Cow::Borrowed(e.data))
            }
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
                if !e.data.is_empty() {
                    return Err(Errno::EINVAL);
                }
                let dev = matches!(ft, FileType::CharDevice | FileType::BlockDevice);
                Kind::Special {
                    rdev: if dev {
                        (e.rdev_major, e.rdev_minor)
                    } else {
                        (0, 0)
                    },
                }
            }
        };
        let nlink = if ft == FileType::Directory { 2 } else { 1 };
        let inode = Inode {
            mode,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
            nlink,
            kind,
        };
        let ino = self.insert(dir, name, inode)?;
        if ft == FileType::Regular && e.nlink >= 2 {
            links.insert(link_key, ino);
        }
        Ok(())
    }

    fn set_dir_metadata(&mut self, dir: Ino, e: &cpio::Entry<'_>) -> Result<(), Errno> {
        if !e.data.is_empty() {
            return Err(Errno::EINVAL);
        }
        let i = self.inode_mut(dir)?;
        i.mode = e.mode & (S_IFMT | 0o7777);
        i.uid = e.uid;
        i.gid = e.gid;
        i.mtime = e.mtime;
        Ok(())
    }
}

/// Iterator over a directory's entries; see [`Ramfs::readdir`].
pub struct ReadDir<'f> {
    fs: &'f Ramfs<'f>,
    dir: Ino,
    pos: u64,
    children: core::iter::Skip<btree_map::Iter<'f, Vec<u8>, Ino>>,
}

impl<'f> Iterator for ReadDir<'f> {
    type Item = DirEntry<'f>;

    fn next(&mut self) -> Option<DirEntry<'f>> {
        let (name, ino): (&'f [u8], Ino) = match self.pos {
            0 => (b".", self.dir),
            1 => (b"..", self.fs.parent(self.dir).ok()?),
            _ => {
                let (n, &i) = self.children.next()?;
                (n, i)
            }
        };
        self.pos += 1;
        let file_type = self.fs.file_type(ino).ok()?;
        Some(DirEntry {
            name,
            ino,
            file_type,
            next: self.pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::CpioErrorKind;
    use proptest::prelude::*;
    use std::collections::BTreeMap as Map;
    use std::io::Write;
    use std::string::{String, ToString};
    use std::vec;

    /// One archive member for [`archive`]: name, mode, data, and (ino, nlink) overrides.
    struct M<'d> {
        name: &'d str,
        mode: u32,
        data: &'d [u8],
        uid: u32,
        link: Option<(u32, u32)>,
    }

    fn m<'d>(name: &'d str, mode: u32, data: &'d [u8]) -> M<'d> {
        M {
            name,
            mode,
            data,
            uid: 0,
            link: None,
        }
    }

    /// Written with the `cpio` crate, the writer vmscope's initramfs uses.
    fn archive(members: &[M<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, e) in members.iter().enumerate() {
            let (ino, nlink) = e.link.unwrap_or((i as u32 + 100, 1));
            let mut w = ::cpio::newc::Builder::new(e.name)
                .ino(ino)
                .nlink(nlink)
                .mode(e.mode)
                .uid(e.uid)
                .gid(e.uid + 1)
                .mtime(1_700_000_000 + i as u32)
                .rdev_major(4)
                .rdev_minor(64)
                .write(&mut out, e.data.len() as u32);
            w.write_all(e.data).unwrap();
            w.finish().unwrap();
        }
        ::cpio::newc::trailer(out).unwrap()
    }

    fn sample() -> Vec<u8> {
        archive(&[
            m("bin", 0o40755, b""),
            m("bin/hello", 0o100755, b"\x7fELF hello"),
            m("etc/vmscope/init", 0o100644, b"/bin/hello"),
            m("etc/motd", 0o100644, b"hi\n"),
            m("sh", 0o120777, b"bin/hello"),
            m("abs", 0o120777, b"/etc/vmscope"),
            m("dotdot", 0o120777, b"../../etc"),
            m("loop", 0o120777, b"loop"),
            m("dev/console", 0o20600, b""),
            m("fifo", 0o10644, b""),
        ])
    }

    fn names(fs: &Ramfs<'_>, dir: Ino) -> Vec<String> {
        fs.readdir(dir)
            .unwrap()
            .map(|e| String::from_utf8(e.name.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn lookup_normalises_paths() {
        let a = sample();
        let fs = Ramfs::from_cpio(&a).unwrap();
        let hello = fs.lookup(b"/bin/hello").unwrap();
        for p in [
            &b"bin/hello"[..],
            b"//bin///hello",
            b"/./bin/./hello",
            b"/etc/../bin/hello",
            b"/../../bin/hello",
            b"/sh",
            b"/dotdot/../bin/hello",
            b"/abs/../../bin/hello",
        ] {
            assert_eq!(fs.lookup(p), Ok(hello), "{}", String::from_utf8_lossy(p));
        }
        assert_eq!(fs.lookup(b"/"), Ok(ROOT_INO));
        assert_eq!(fs.lookup(b"/.."), Ok(ROOT_INO));
        let etc = fs.lookup(b"/etc").unwrap();
        assert_eq!(fs.lookup(b"/etc/"), Ok(etc));
        assert_eq!(
            fs.lookup_at(etc, b"vmscope/init", true),
            fs.lookup(b"/etc/vmscope/init")
        );
        assert_eq!(fs.lookup_at(etc, b"../bin/hello", true), Ok(hello));
        assert_eq!(fs.lookup_at(etc, b"/bin/hello", true), Ok(hello));
        assert_eq!(fs.lookup_at(hello, b"x", true), Err(Errno::ENOTDIR));
        // The last link is followed only when asked, or with a trailing slash.
        let sh = fs.lookup_at(ROOT_INO, b"/sh", false).unwrap();
        assert_ne!(sh, hello);
        assert_eq!(fs.file_type(sh), Ok(FileType::Symlink));
        assert_eq!(fs.readlink(sh), Ok(&b"bin/hello"[..]));
        assert_eq!(
            fs.lookup_at(ROOT_INO, b"/abs/", false),
            fs.lookup(b"/etc/vmscope")
        );
    }

    #[test]
    fn lookup_errors() {
        let a = sample();
        let fs = Ramfs::from_cpio(&a).unwrap();
        assert_eq!(fs.lookup(b""), Err(Errno::ENOENT));
        assert_eq!(fs.lookup(b"/nope"), Err(Errno::ENOENT));
        assert_eq!(fs.lookup(b"/bin/nope"), Err(Errno::ENOENT));
        assert_eq!(fs.lookup(b"/bin/hello/x"), Err(Errno::ENOTDIR));
        assert_eq!(fs.lookup(b"/bin/hello/"), Err(Errno::ENOTDIR));
        assert_eq!(fs.lookup(b"/sh/"), Err(Errno::ENOTDIR));
        assert_eq!(fs.lookup(b"/fifo/."), Err(Errno::ENOTDIR));
        assert_eq!(fs.lookup(b"/loop"), Err(Errno::ELOOP));
        assert!(fs.lookup_at(ROOT_INO, b"/loop", false).is_ok());
        assert_eq!(fs.lookup(b"/loop/x"), Err(Errno::ELOOP));
        let long = vec![b'a'; NAME_MAX + 1];
        assert_eq!(fs.lookup(&long), Err(Errno::ENAMETOOLONG));
        assert_eq!(fs.lookup(&long[..NAME_MAX]), Err(Errno::ENOENT));
        let mut path = b"/".repeat(PATH_MAX - 1);
        assert_eq!(fs.lookup(&path), Ok(ROOT_INO));
        path.push(b'/');
        assert_eq!(fs.lookup(&path), Err(Errno::ENAMETOOLONG));
        assert_eq!(fs.stat(0), Err(Errno::ENOENT));
        assert_eq!(fs.stat(999), Err(Errno::ENOENT));
        assert_eq!(
            fs.readdir(fs.lookup(b"/bin/hello").unwrap()).err(),
            Some(Errno::ENOTDIR)
        );
    }

    #[test]
    fn symlink_chains_stop_at_forty() {
        let mut members = vec![m("t", 0o100644, b"end")];
        let names: Vec<String> = (0..=MAX_SYMLINKS).map(|i| std::format!("l{i}")).collect();
        let targets: Vec<String> = (0..=MAX_SYMLINKS)
            .map(|i| {
                if i == 0 {
                    "t".to_string()
                } else {
                    std::format!("l{}", i - 1)
                }
            })
            .collect();
        for (n, t) in names.iter().zip(&targets) {
            members.push(m(n, 0o120777, t.as_bytes()));
        }
        let a = archive(&members);
        let fs = Ramfs::from_cpio(&a).unwrap();
        let t = fs.lookup(b"t").unwrap();
        assert_eq!(
            fs.lookup(std::format!("l{}", MAX_SYMLINKS - 1).as_bytes()),
            Ok(t)
        );
        assert_eq!(
            fs.lookup(std::format!("l{MAX_SYMLINKS}").as_bytes()),
            Err(Errno::ELOOP)
        );
    }

    #[test]
    fn stat_read_and_readlink() {
        let a = sample();
        let fs = Ramfs::from_cpio(&a).unwrap();
        let hello = fs.lookup(b"/bin/hello").unwrap();
        let st = fs.stat(hello).unwrap();
        assert_eq!(
            (st.ino, st.mode, st.nlink, st.size),
            (hello, 0o100755, 1, 10)
        );
        assert_eq!((st.uid, st.gid, st.mtime), (0, 1, 1_700_000_001));
        let mut buf = [0u8; 4];
        assert_eq!(fs.read(hello, 0, &mut buf), Ok(4));
        assert_eq!(&buf, b"\x7fELF");
        assert_eq!(fs.read(hello, 8, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"lo");
        assert_eq!(fs.read(hello, 10, &mut buf), Ok(0));
        assert_eq!(fs.read(hello, u64::MAX, &mut buf), Ok(0));
        assert_eq!(fs.data(hello), Ok(&b"\x7fELF hello"[..]));
        assert_eq!(fs.read(ROOT_INO, 0, &mut buf), Err(Errno::EISDIR));
        assert_eq!(fs.readlink(hello), Err(Errno::EINVAL));
        let sh = fs.lookup_at(ROOT_INO, b"sh", false).unwrap();
        assert_eq!(fs.stat(sh).unwrap().size, 9);
        assert_eq!(fs.read(sh, 0, &mut buf), Err(Errno::EINVAL));

        // Implicit directories: 0755, root-owned, mtime 0; nlink 2 + subdirectories.
        let etc = fs.stat(fs.lookup(b"/etc").unwrap()).unwrap();
        assert_eq!(
            (etc.mode, etc.uid, etc.gid, etc.mtime, etc.nlink),
            (0o40755, 0, 0, 0, 3)
        );
        assert_eq!(fs.stat(ROOT_INO).unwrap().nlink, 2 + 3); // bin, etc, dev
        let console = fs.stat(fs.lookup(b"/dev/console").unwrap()).unwrap();
        assert_eq!(
            (
                console.mode,
                console.rdev_major,
                console.rdev_minor,
                console.size
            ),
            (0o20600, 4, 64, 0)
        );
        let fifo = fs.stat(fs.lookup(b"/fifo").unwrap()).unwrap();
        assert_eq!((fifo.rdev_major, fifo.rdev_minor), (0, 0));
    }

    #[test]
    fn readdir_is_sorted_and_resumable() {
        let a = sample();
        let fs = Ramfs::from_cpio(&a).unwrap();
        assert_eq!(
            names(&fs, ROOT_INO),
            [".", "..", "abs", "bin", "dev", "dotdot", "etc", "fifo", "loop", "sh"]
        );
        let all: Vec<_> = fs.readdir(ROOT_INO).unwrap().collect();
        assert_eq!((all[0].ino, all[1].ino), (ROOT_INO, ROOT_INO));
        assert_eq!(all[3].file_type, FileType::Directory);
        assert_eq!(all[3].file_type.dirent_type(), 4);
        assert_eq!(all[2].file_type.dirent_type(), 10);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.next, i as u64 + 1);
            let rest: Vec<_> = fs.readdir_from(ROOT_INO, e.next).unwrap().collect();
            assert_eq!(rest, all[i + 1..]);
        }
        assert_eq!(fs.readdir_from(ROOT_INO, u64::MAX).unwrap().count(), 0);
        let vm = fs.lookup(b"/etc/vmscope").unwrap();
        let dots: Vec<_> = fs.readdir(vm).unwrap().take(2).map(|e| e.ino).collect();
        assert_eq!(dots, [vm, fs.lookup(b"/etc").unwrap()]);
    }

    #[test]
    fn entries_in_any_order_and_replacements() {
        let mut late_dir = m("a", 0o40700, b"");
        late_dir.uid = 7;
        let a = archive(&[
            m("a/b/c", 0o100600, b"c"),
            late_dir,
            m("./x", 0o100644, b"old"),
            m("/x", 0o100644, b"new"),
            m("y", 0o40755, b""),
            m("y", 0o100644, b"y is a file now"),
            m(".", 0o40711, b""),
        ]);
        let fs = Ramfs::from_cpio(&a).unwrap();
        let st = fs.stat(fs.lookup(b"a").unwrap()).unwrap();
        assert_eq!((st.mode, st.uid, st.nlink), (0o40700, 7, 3));
        assert_eq!(fs.data(fs.lookup(b"x").unwrap()), Ok(&b"new"[..]));
        assert_eq!(
            fs.file_type(fs.lookup(b"y").unwrap()),
            Ok(FileType::Regular)
        );
        assert_eq!(fs.stat(ROOT_INO).unwrap().mode, 0o40711);
        assert_eq!(fs.stat(ROOT_INO).unwrap().nlink, 3); // a (y is a file now)
        assert_eq!(names(&fs, ROOT_INO), [".", "..", "a", "x", "y"]);
        // root + a + a/b + a/b/c + x + y: the replaced x and y are gone.
        assert_eq!(fs.inode_count(), 6);
    }

    #[test]
    fn parents_through_symlinks() {
        let a = archive(&[
            m("usr/bin", 0o40755, b""),
            m("bin", 0o120777, b"usr/bin"),
            m("bin/sh", 0o100755, b"sh"),
        ]);
        let fs = Ramfs::from_cpio(&a).unwrap();
        assert_eq!(fs.lookup(b"/usr/bin/sh"), fs.lookup(b"/bin/sh"));
        assert!(fs.lookup(b"/usr/bin/sh").is_ok());
    }

    #[test]
    fn hard_links_share_an_inode() {
        // GNU cpio puts the data on the last link, other writers on the first.
        for data_first in [true, false] {
            let (d1, d2): (&[u8], &[u8]) = if data_first {
                (b"shared", b"")
            } else {
                (b"", b"shared")
            };
            let mut l1 = m("one", 0o100644, d1);
            l1.link = Some((42, 2));
            let mut l2 = m("two", 0o100644, d2);
            l2.link = Some((42, 2));
            let a = archive(&[l1, m("other", 0o100644, b"x"), l2]);
            let fs = Ramfs::from_cpio(&a).unwrap();
            let (one, two) = (fs.lookup(b"one").unwrap(), fs.lookup(b"two").unwrap());
            assert_eq!(one, two);
            assert_eq!(fs.stat(one).unwrap().nlink, 2);
            assert_eq!(fs.data(one), Ok(&b"shared"[..]));
        }
    }

    #[test]
    fn bad_entries_are_errors() {
        let err = |members: &[M<'_>]| match Ramfs::from_cpio(&archive(members)) {
            Err(BuildError::Entry { errno, .. }) => errno,
            other => panic!("{:?}", other.map(|f| f.inode_count())),
        };
        assert_eq!(
            err(&[m("f", 0o100644, b""), m("f/x", 0o100644, b"")]),
            Errno::ENOTDIR
        );
        assert_eq!(
            err(&[m("d/x", 0o100644, b""), m("d", 0o100644, b"")]),
            Errno::ENOTEMPTY
        );
        assert_eq!(err(&[m("d", 0o40755, b"data")]), Errno::EINVAL);
        assert_eq!(err(&[m("weird", 0o170644, b"")]), Errno::EINVAL);
        assert_eq!(err(&[m("l", 0o120777, b"")]), Errno::ENOENT);
        assert_eq!(err(&[m(".", 0o100644, b"")]), Errno::EEXIST);
        assert_eq!(
            err(&[m("l", 0o120777, b"l"), m("l/x", 0o100644, b"")]),
            Errno::ELOOP
        );
        let long = "n".repeat(NAME_MAX + 1);
        assert_eq!(err(&[m(&long, 0o100644, b"")]), Errno::ENAMETOOLONG);
        let e = Ramfs::from_cpio(&archive(&[
            m("d/f", 0o100644, b""),
            m("d/f/g", 0o100644, b""),
        ]))
        .err()
        .unwrap();
        assert_eq!(
            std::format!("{e}"),
            "cpio entry \"d/f/g\" at offset 116: ENOTDIR (Not a directory)"
        );

        let mut a = archive(&[m("f", 0o100644, b"abc")]);
        a.truncate(a.len() - 20);
        match Ramfs::from_cpio(&a) {
            Err(BuildError::Cpio(e)) => assert_eq!(e.kind, CpioErrorKind::Truncated),
            _ => panic!("truncated archive accepted"),
        }
    }

    #[test]
    fn into_owned_copies_the_data() {
        let fs = {
            let a = sample();
            Ramfs::from_cpio(&a).unwrap().into_owned()
        };
        let hello = fs.lookup(b"/bin/hello").unwrap();
        assert_eq!(fs.data(hello), Ok(&b"\x7fELF hello"[..]));
        assert_eq!(fs.lookup(b"/sh"), Ok(hello));
        assert_eq!(Ramfs::new().inode_count(), 1);
    }

    // ---- round trip ---------------------------------------------------------------------

    #[derive(Debug, Clone, PartialEq)]
    enum Node {
        Dir,
        File(Vec<u8>),
        Link(String),
    }

    /// Metadata a writer controls: permission bits, uid, gid, mtime.
    type Meta = (u32, u32, u32, u32);
    /// An archive entry of the model.
    type Spec = (Vec<String>, Node, Meta);
    /// The expected tree: path to node and metadata (`None`: an implicit parent).
    type Tree = Map<Vec<String>, (Node, Option<Meta>)>;

    fn node() -> impl Strategy<Value = Node> {
        prop_oneof![
            Just(Node::Dir),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Node::File),
            "[a-c./]{1,12}".prop_map(Node::Link),
        ]
    }

    fn meta() -> impl Strategy<Value = Meta> {
        (0u32..0o10000, 0u32..3, 0u32..3, any::<u32>())
    }

    /// Paths of 1 to 3 components over a tiny alphabet, so that trees get deep and share
    /// prefixes.
    fn path() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec("[a-c]{1,2}", 1..4)
    }

    /// Keep the entries that form a consistent tree (parents are directories, one entry
    /// per path); returns the model, implicit parents included.
    fn model(raw: Vec<Spec>) -> (Vec<Spec>, Tree) {
        let mut kept = Vec::new();
        let mut tree = Tree::new();
        for (p, n, meta) in raw {
            let explicit = tree.get(&p).is_some_and(|(_, m)| m.is_some());
            let prefix_ok =
                (1..p.len()).all(|k| tree.get(&p[..k]).is_none_or(|(n, _)| *n == Node::Dir));
            let has_children = tree
                .keys()
                .any(|k| k.len() > p.len() && k[..p.len()] == p[..]);
            if explicit || !prefix_ok || (has_children && n != Node::Dir) {
                continue;
            }
            for k in 1..p.len() {
                tree.entry(p[..k].to_vec()).or_insert((Node::Dir, None));
            }
            tree.insert(p.clone(), (n.clone(), Some(meta)));
            kept.push((p, n, meta));
        }
        (kept, tree)
    }

    /// Everything below `dir`, by path, found through readdir.
    fn walk(fs: &Ramfs<'_>, dir: Ino, prefix: &[String], out: &mut Map<Vec<String>, Ino>) {
        let entries: Vec<_> = fs.readdir(dir).unwrap().collect();
        assert_eq!(entries[0].name, b".");
        assert_eq!(entries[0].ino, dir);
        assert_eq!(entries[1].name, b"..");
        assert_eq!(entries[1].ino, fs.parent(dir).unwrap());
        let mut prev: Option<&[u8]> = None;
        for e in &entries[2..] {
            assert!(prev < Some(e.name), "readdir order");
            prev = Some(e.name);
            let mut p = prefix.to_vec();
            p.push(String::from_utf8(e.name.to_vec()).unwrap());
            assert_eq!(fs.file_type(e.ino), Ok(e.file_type));
            if e.file_type == FileType::Directory {
                assert_eq!(fs.parent(e.ino), Ok(dir));
                walk(fs, e.ino, &p, out);
            }
            out.insert(p, e.ino);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Trees written with the host writer (in a shuffled order, names with or without
        /// a leading `/` or `./`) parse back to the same tree.
        #[test]
        fn round_trip(
            raw in proptest::collection::vec((path(), node(), meta()), 0..24),
            order in any::<u64>(),
            prefixes in proptest::collection::vec(0usize..3, 24),
            offset in 0u64..48,
        ) {
            let (mut kept, tree) = model(raw);
            // A deterministic shuffle.
            let mut s = order | 1;
            for i in (1..kept.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                kept.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut out = Vec::new();
            for (i, (p, n, (perm, uid, gid, mtime))) in kept.iter().enumerate() {
                let name = ["", "/", "./"][prefixes[i]].to_string() + &p.join("/");
                let (ty, data) = match n {
                    Node::Dir => (S_IFDIR, Vec::new()),
                    Node::File(d) => (S_IFREG, d.clone()),
                    Node::Link(t) => (S_IFLNK, t.as_bytes().to_vec()),
                };
                let mut w = ::cpio::newc::Builder::new(&name)
                    .ino(i as u32 + 1)
                    .mode(ty | perm)
                    .uid(*uid)
                    .gid(*gid)
                    .mtime(*mtime)
                    .nlink(if ty == S_IFDIR { 2 } else { 1 })
                    .write(&mut out, data.len() as u32);
                w.write_all(&data).unwrap();
                w.finish().unwrap();
            }
            let archive = ::cpio::newc::trailer(out).unwrap();

            let fs = Ramfs::from_cpio(&archive).unwrap();
            let mut found = Map::new();
            walk(&fs, ROOT_INO, &[], &mut found);
            prop_assert_eq!(found.keys().collect::<Vec<_>>(), tree.keys().collect::<Vec<_>>());
            prop_assert_eq!(fs.inode_count(), tree.len() + 1);
            for (p, (n, meta)) in &tree {
                let ino = found[p];
                prop_assert_eq!(fs.lookup_at(ROOT_INO, p.join("/").as_bytes(), false), Ok(ino));
                let st = fs.stat(ino).unwrap();
                let (perm, uid, gid, mtime) = meta.unwrap_or((0o755, 0, 0, 0));
                prop_assert_eq!((st.ino, st.mode & 0o7777, st.uid, st.gid, st.mtime), (ino, perm, uid, gid, mtime as u64));
                match n {
                    Node::Dir => {
                        let subdirs = tree.iter().filter(|(k, (n, _))| {
                            *n == Node::Dir && k.len() == p.len() + 1 && k[..p.len()] == p[..]
                        });
                        prop_assert_eq!(st.mode & S_IFMT, S_IFDIR);
                        prop_assert_eq!(st.nlink as usize, 2 + subdirs.count());
                    }
                    Node::File(d) => {
                        prop_assert_eq!((st.mode & S_IFMT, st.size, st.nlink), (S_IFREG, d.len() as u64, 1));
                        prop_assert_eq!(fs.data(ino).unwrap(), &d[..]);
                        let mut buf = [0u8; 16];
                        let n = fs.read(ino, offset, &mut buf).unwrap();
                        let want = d.get(offset as usize..).unwrap_or(&[]);
                        prop_assert_eq!(&buf[..n], &want[..want.len().min(16)]);
                    }
                    Node::Link(t) => {
                        prop_assert_eq!(st.mode & S_IFMT, S_IFLNK);
                        prop_assert_eq!(fs.readlink(ino).unwrap(), t.as_bytes());
                    }
                }
            }
        }
    }
}
