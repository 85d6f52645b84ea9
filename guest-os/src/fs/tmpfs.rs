//! tmpfs (`mm/shmem.c`'s filesystem half): files whose only home is the page cache.
//!
//! A regular file's data is a shmem object (`i_mapping`), the same kind of object that
//! backs MAP_SHARED|MAP_ANONYMOUS memory, so reading, writing and mapping a tmpfs file all
//! see the same pages, counted as Shmem in /proc/meminfo. Directories keep their entries
//! in the inode (Linux keeps them only in the dcache, pinned; a map in the inode is the
//! same truth without the pinning), symbolic links keep their target.
//!
//! The root filesystem is a tmpfs into which the initramfs is unpacked at boot, as
//! Linux's rootfs is.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::dcache::Dentry;
use super::inode::{DirEntry, Inode, InodeMeta, InodeOps};
use super::stat::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use super::super_block::{anon_dev, now, Kstatfs, SuperBlock, SuperOps};
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, EEXIST, EMLINK, ENOENT, ENOMEM, ENOTEMPTY};

/// `TMPFS_MAGIC`.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
/// The largest link count (Linux's tmpfs has none below `u32::MAX`; ext2's is 32000).
const LINK_MAX: u32 = u32::MAX - 1;
/// `DT_*` types for `getdents64`.
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
const DT_LNK: u8 = 10;
const DT_CHR: u8 = 2;
const DT_FIFO: u8 = 1;
const DT_UNKNOWN: u8 = 0;

/// What a tmpfs inode holds besides its page cache.
/// A tmpfs directory's entries by name.
type DirMap = IrqLock<BTreeMap<Vec<u8>, Arc<Inode>>>;

pub enum TmpfsNode {
    Dir(DirMap),
    Symlink(Vec<u8>),
    /// Regular files (data in `i_mapping`), devices and fifos.
    Other,
}

pub struct Tmpfs;
pub static TMPFS_OPS: Tmpfs = Tmpfs;

struct TmpfsSuper;
static TMPFS_SUPER: TmpfsSuper = TmpfsSuper;

impl SuperOps for TmpfsSuper {
    /// `shmem_statfs`: the size limit is half of RAM (tmpfs's default), in pages.
    fn statfs(&self, sb: &SuperBlock) -> Result<Kstatfs, Errno> {
        let total = crate::mm::page_alloc::with(|a| a.totalram_pages()) / 2;
        let used = crate::mm::shmem::total_pages().min(total);
        Ok(Kstatfs {
            f_type: sb.s_magic,
            f_bsize: crate::mm::PAGE_SIZE,
            f_blocks: total,
            f_bfree: total - used,
            f_bavail: total - used,
            f_files: total,
            f_ffree: total.saturating_sub(sb.inodes_in_use()),
            f_fsid: 0,
            f_namelen: super::namei::NAME_MAX as u64,
            f_frsize: crate::mm::PAGE_SIZE,
            f_flags: if sb.read_only { 1 } else { 0 },
        })
    }
}

/// A new tmpfs instance and its root directory (`shmem_fill_super`).
pub fn new_fs(s_type: &'static str, mode: u32) -> Result<(Arc<SuperBlock>, Arc<Dentry>), Errno> {
    let sb = super::file::try_arc(SuperBlock::new(
        s_type,
        TMPFS_MAGIC,
        anon_dev(),
        &TMPFS_SUPER,
        String::new(),
    ))?;
    let root = new_inode(&sb, S_IFDIR | (mode & 0o7777), 0)?;
    root.meta.lock().nlink = 2;
    Ok((sb, Dentry::new_root(root)))
}

fn dir_map(dir: &Inode) -> Result<&DirMap, Errno> {
    match dir.private::<TmpfsNode>() {
        Some(TmpfsNode::Dir(m)) => Ok(m),
        _ => Err(crate::syscall::errno::ENOTDIR),
    }
}

/// A new inode of `mode` (`shmem_get_inode`): regular files get a page cache object.
fn new_inode(sb: &Arc<SuperBlock>, mode: u32, rdev: u32) -> Result<Arc<Inode>, Errno> {
    let t = now();
    let meta = InodeMeta {
        mode,
        nlink: 1,
        atime: t,
        mtime: t,
        ctime: t,
        rdev_major: rdev >> 8,
        rdev_minor: rdev & 0xff,
        ..InodeMeta::default()
    };
    let (private, mapping): (TmpfsNode, u64) = match mode & S_IFMT {
        S_IFDIR => (
            TmpfsNode::Dir(IrqLock::new("tmpfs_dir", BTreeMap::new())),
            0,
        ),
        S_IFREG => (TmpfsNode::Other, crate::mm::shmem::new_object()?),
        _ => (TmpfsNode::Other, 0),
    };
    let boxed = match crate::mm::slab::try_box(private) {
        Ok(b) => b as Box<dyn core::any::Any + Send + Sync>,
        Err(_) => {
            if mapping != 0 {
                crate::mm::shmem::release(mapping);
            }
            return Err(ENOMEM);
        }
    };
    let inode = Inode::new(sb, &TMPFS_OPS, meta, mapping, boxed);
    sb.inode_created();
    super::file::try_arc(inode)
}

/// Insert `inode` as `name` in `dir`.
fn add_entry(dir: &Arc<Inode>, name: &[u8], inode: &Arc<Inode>) -> Result<(), Errno> {
    let map = dir_map(dir)?;
    let mut key = Vec::new();
    key.try_reserve(name.len()).map_err(|_| ENOMEM)?;
    key.extend_from_slice(name);
    let mut m = map.lock();
    if m.contains_key(name) {
        return Err(EEXIST);
    }
    m.insert(key, inode.clone());
    drop(m);
    dir.touch();
    Ok(())
}

fn dtype(mode: u32) -> u8 {
    match mode & S_IFMT {
        S_IFDIR => DT_DIR,
        S_IFREG => DT_REG,
        S_IFLNK => DT_LNK,
        super::stat::S_IFCHR => DT_CHR,
        super::stat::S_IFIFO => DT_FIFO,
        _ => DT_UNKNOWN,
    }
}

impl InodeOps for Tmpfs {
    fn lookup(&self, dir: &Arc<Inode>, name: &[u8]) -> Result<Option<Arc<Inode>>, Errno> {
        Ok(dir_map(dir)?.lock().get(name).cloned())
    }

    fn create(&self, dir: &Arc<Inode>, name: &[u8], mode: u32) -> Result<Arc<Inode>, Errno> {
        let rdev = 0;
        let inode = new_inode(&dir.i_sb, mode, rdev)?;
        add_entry(dir, name, &inode)?;
        Ok(inode)
    }

    fn mkdir(&self, dir: &Arc<Inode>, name: &[u8], mode: u32) -> Result<Arc<Inode>, Errno> {
        if dir.meta().nlink >= LINK_MAX {
            return Err(EMLINK);
        }
        let inode = new_inode(&dir.i_sb, S_IFDIR | (mode & 0o7777), 0)?;
        inode.meta.lock().nlink = 2;
        add_entry(dir, name, &inode)?;
        dir.meta.lock().nlink += 1;
        Ok(inode)
    }

    fn symlink(&self, dir: &Arc<Inode>, name: &[u8], target: &[u8]) -> Result<Arc<Inode>, Errno> {
        let mut t = Vec::new();
        t.try_reserve(target.len()).map_err(|_| ENOMEM)?;
        t.extend_from_slice(target);
        let now = now();
        let meta = InodeMeta {
            mode: S_IFLNK | 0o777,
            nlink: 1,
            size: target.len() as u64,
            atime: now,
            mtime: now,
            ctime: now,
            ..InodeMeta::default()
        };
        let private = crate::mm::slab::try_box(TmpfsNode::Symlink(t)).map_err(|_| ENOMEM)?;
        let inode = super::file::try_arc(Inode::new(&dir.i_sb, &TMPFS_OPS, meta, 0, private))?;
        dir.i_sb.inode_created();
        add_entry(dir, name, &inode)?;
        Ok(inode)
    }

    fn link(&self, old: &Arc<Inode>, dir: &Arc<Inode>, name: &[u8]) -> Result<(), Errno> {
        if old.meta().nlink >= LINK_MAX {
            return Err(EMLINK);
        }
        add_entry(dir, name, old)?;
        let mut m = old.meta.lock();
        m.nlink += 1;
        m.ctime = now();
        Ok(())
    }

    fn unlink(&self, dir: &Arc<Inode>, name: &[u8]) -> Result<(), Errno> {
        let victim = dir_map(dir)?.lock().remove(name).ok_or(ENOENT)?;
        let mut m = victim.meta.lock();
        m.nlink = m.nlink.saturating_sub(1);
        m.ctime = now();
        drop(m);
        dir.touch();
        Ok(())
    }

    fn rmdir(&self, dir: &Arc<Inode>, name: &[u8]) -> Result<(), Errno> {
        let map = dir_map(dir)?;
        let mut m = map.lock();
        let victim = m.get(name).cloned().ok_or(ENOENT)?;
        if !dir_map(&victim)?.lock().is_empty() {
            return Err(ENOTEMPTY);
        }
        m.remove(name);
        drop(m);
        victim.meta.lock().nlink = 0;
        let mut dm = dir.meta.lock();
        dm.nlink = dm.nlink.saturating_sub(1);
        drop(dm);
        dir.touch();
        Ok(())
    }

    fn rename(
        &self,
        old_dir: &Arc<Inode>,
        old_name: &[u8],
        new_dir: &Arc<Inode>,
        new_name: &[u8],
    ) -> Result<(), Errno> {
        let moving = dir_map(old_dir)?
            .lock()
            .get(old_name)
            .cloned()
            .ok_or(ENOENT)?;
        let mut key = Vec::new();
        key.try_reserve(new_name.len()).map_err(|_| ENOMEM)?;
        key.extend_from_slice(new_name);
        let is_dir = moving.is_dir();
        // The replaced target (checked compatible and, for a directory, empty).
        let target = dir_map(new_dir)?.lock().get(new_name).cloned();
        if let Some(t) = &target {
            if Arc::ptr_eq(t, &moving) {
                return Ok(());
            }
            if t.is_dir() {
                if !dir_map(t)?.lock().is_empty() {
                    return Err(ENOTEMPTY);
                }
                t.meta.lock().nlink = 0;
                let mut nd = new_dir.meta.lock();
                nd.nlink = nd.nlink.saturating_sub(1);
            } else {
                let mut tm = t.meta.lock();
                tm.nlink = tm.nlink.saturating_sub(1);
                tm.ctime = now();
            }
        }
        dir_map(old_dir)?.lock().remove(old_name);
        dir_map(new_dir)?.lock().insert(key, moving.clone());
        if is_dir && !Arc::ptr_eq(old_dir, new_dir) {
            let mut od = old_dir.meta.lock();
            od.nlink = od.nlink.saturating_sub(1);
            drop(od);
            new_dir.meta.lock().nlink += 1;
        }
        moving.meta.lock().ctime = now();
        old_dir.touch();
        new_dir.touch();
        Ok(())
    }

    fn readlink(&self, inode: &Arc<Inode>) -> Result<Vec<u8>, Errno> {
        match inode.private::<TmpfsNode>() {
            Some(TmpfsNode::Symlink(t)) => {
                let mut v = Vec::new();
                v.try_reserve(t.len()).map_err(|_| ENOMEM)?;
                v.extend_from_slice(t);
                Ok(v)
            }
            _ => Err(crate::syscall::errno::EINVAL),
        }
    }

    /// `dcache_readdir`: `.`, `..`, then the entries in name order; the position is
    /// the index of the next entry.
    fn readdir(
        &self,
        dir: &Arc<Inode>,
        pos: u64,
        emit: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<u64, Errno> {
        let map = dir_map(dir)?;
        let mut pos = pos;
        if pos == 0 {
            if !emit(DirEntry {
                name: b".",
                ino: dir.i_ino,
                dtype: DT_DIR,
                next: 1,
            }) {
                return Ok(pos);
            }
            pos = 1;
        }
        if pos == 1 {
            // The parent's number is not known here (no back pointer): Linux reports the
            // parent dentry's inode; the VFS fills it in for `..` (see `fs/vfs_file.rs`).
            if !emit(DirEntry {
                name: b"..",
                ino: 0,
                dtype: DT_DIR,
                next: 2,
            }) {
                return Ok(pos);
            }
            pos = 2;
        }
        // Snapshot the entries so that `emit` (which copies to user memory) runs with no
        // lock held.
        let entries: Vec<(Vec<u8>, u64, u8)> = {
            let m = map.lock();
            let skip = (pos - 2) as usize;
            let mut v = Vec::new();
            v.try_reserve(m.len().saturating_sub(skip))
                .map_err(|_| ENOMEM)?;
            for (n, i) in m.iter().skip(skip) {
                v.push((n.clone(), i.i_ino, dtype(i.mode())));
            }
            v
        };
        for (name, ino, dt) in entries.iter() {
            if !emit(DirEntry {
                name,
                ino: *ino,
                dtype: *dt,
                next: pos + 1,
            }) {
                return Ok(pos);
            }
            pos += 1;
        }
        Ok(pos)
    }

    fn set_size(&self, inode: &Arc<Inode>, size: u64) -> Result<(), Errno> {
        if inode.i_mapping != 0 {
            crate::mm::shmem::set_size(inode.i_mapping, size)?;
        }
        inode.meta.lock().size = size;
        inode.touch();
        Ok(())
    }

    fn evict(&self, inode: &Inode) {
        if inode.i_mapping != 0 {
            crate::mm::shmem::release(inode.i_mapping);
        }
        inode.i_sb.inode_freed();
    }
}

/// A device node `name` in tmpfs directory `dir` (devtmpfs's `vfs_mknod`).
pub fn mknod(
    dir: &Arc<Inode>,
    name: &[u8],
    mode: u32,
    major: u32,
    minor: u32,
) -> Result<Arc<Inode>, Errno> {
    let inode = TMPFS_OPS.create(dir, name, mode)?;
    let mut m = inode.meta.lock();
    m.rdev_major = major;
    m.rdev_minor = minor;
    drop(m);
    Ok(inode)
}

/// Create `name` in tmpfs directory `dir` with attributes from the initramfs (the
/// unpacking at boot, `do_name` in `init/initramfs.c`).
pub fn unpack_entry(
    dir: &Arc<Inode>,
    name: &[u8],
    st: &kfs::Stat,
    data: &[u8],
    target: Option<&[u8]>,
) -> Result<Arc<Inode>, Errno> {
    let inode = match st.mode & S_IFMT {
        S_IFDIR => TMPFS_OPS.mkdir(dir, name, st.mode)?,
        S_IFLNK => TMPFS_OPS.symlink(dir, name, target.unwrap_or(b""))?,
        _ => {
            let i = TMPFS_OPS.create(dir, name, st.mode)?;
            if i.i_mapping != 0 && !data.is_empty() {
                crate::mm::shmem::write_kernel(i.i_mapping, 0, data)?;
            }
            i
        }
    };
    let mut m = inode.meta.lock();
    m.mode = st.mode;
    m.uid = st.uid;
    m.gid = st.gid;
    m.size = if st.mode & S_IFMT == S_IFREG {
        data.len() as u64
    } else {
        m.size
    };
    m.mtime = st.mtime;
    m.atime = st.mtime;
    m.ctime = st.mtime;
    m.rdev_major = st.rdev_major;
    m.rdev_minor = st.rdev_minor;
    drop(m);
    Ok(inode)
}
