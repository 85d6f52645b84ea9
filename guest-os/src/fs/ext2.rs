//! ext2 on a disk, in the VFS (`fs/ext2/`): the `ext2fs` crate does the on-disk work; this
//! module gives it a block device and plugs it into the VFS and the page cache.
//!
//! - **Metadata** (superblock, group descriptors, bitmaps, inode tables, directories,
//!   indirect blocks) goes through the block device's own page cache (`bd_inode`'s
//!   mapping, /proc/meminfo's Buffers): [`BdevIo`] is the crate's `BlockIo` over it, so a
//!   metadata write dirties a cached page and writeback writes it.
//! - **File data** lives in each regular file's page cache object; [`Ext2File`] is its
//!   `address_space_operations`: `readpages` maps the file's blocks (`get_block`) and reads
//!   each run of contiguous blocks with one bio, `writepage` writes a page's blocks,
//!   `prepare_write` allocates them at write time (ENOSPC there, as ext2's `write_begin`).
//!   A block newly given to a file drops any cached metadata copy of it first, so a stale
//!   block-device page can never be written over file data (`clean_bdev_aliases`).
//! - **Locking**: one sleeping mutex per filesystem around every call into the crate.
//! - **Inodes** stay cached while the filesystem is mounted (the superblock holds them);
//!   one whose last link goes is evicted (its blocks freed) when its last user lets go,
//!   at the next safe point (`iput` → `evict` with the lock taken, never from a drop).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use ext2fs::{BlockIo, Ext2, MountOptions, Owner};

use super::dcache::Dentry;
use super::inode::{DirEntry, Inode, InodeMeta, InodeOps};
use super::stat::{S_IFDIR, S_IFMT, S_IFREG};
use super::super_block::{now, Kstatfs, SuperBlock, SuperOps};
use crate::block::{self, Bio, BioOp, BioVec, BlockDevice, SECTOR_SIZE};
use crate::mm::filemap::{self, AddressSpaceOps};
use crate::mm::{shmem, Pfn, PAGE_SIZE};
use crate::sync::{IrqLock, Mutex};
use crate::syscall::errno::{Errno, EIO, ENOMEM, ENOTDIR};

/// `EXT2_SUPER_MAGIC`, at byte 56 of the superblock at byte 1024.
pub const EXT2_SUPER_MAGIC: u16 = 0xEF53;
const SUPERBLOCK_OFFSET: u64 = 1024;
const MAGIC_OFFSET: usize = 56;
const PAGE: usize = PAGE_SIZE as usize;

fn errno(e: ext2fs::Errno) -> Errno {
    Errno(e.0)
}

fn kerr(e: Errno) -> ext2fs::Errno {
    ext2fs::Errno(e.0)
}

// ---- the block device's page cache -------------------------------------------------

/// Reads and writes of whole pages of a disk (`blkdev_read_folio`/`blkdev_writepage`).
struct BdevPages {
    dev: Arc<dyn BlockDevice>,
}

/// One bio over `pfns` (consecutive pages of the device from byte `pos`), waited for.
fn rw_pages(
    dev: &dyn BlockDevice,
    op: BioOp,
    pos: u64,
    pfns: &[Pfn],
    last_len: usize,
) -> Result<(), Errno> {
    let mut bio = Bio::new(op, pos / SECTOR_SIZE);
    bio.vecs.try_reserve(pfns.len()).map_err(|_| ENOMEM)?;
    for (i, p) in pfns.iter().enumerate() {
        let len = if i + 1 == pfns.len() { last_len } else { PAGE };
        bio.vecs.push(BioVec {
            page: p.phys(),
            offset: 0,
            len: len as u32,
        });
    }
    block::submit_bio_wait(dev, bio)
}

impl AddressSpaceOps for BdevPages {
    fn readpages(&self, index: u64, pfns: &[Pfn]) -> Result<(), Errno> {
        let size = self.dev.capacity_sectors() * SECTOR_SIZE;
        let pos = index * PAGE_SIZE;
        // Pages past the end of the disk read as zeros (the device's size need not be a
        // multiple of the page size).
        let mut n = 0;
        while n < pfns.len() && pos + (n as u64) * PAGE_SIZE < size {
            n += 1;
        }
        for p in &pfns[n..] {
            zero_page(*p, 0);
        }
        if n == 0 {
            return Ok(());
        }
        let last = (size - (pos + (n as u64 - 1) * PAGE_SIZE)).min(PAGE_SIZE) as usize;
        if last < PAGE {
            zero_page(pfns[n - 1], last);
        }
        rw_pages(&*self.dev, BioOp::Read, pos, &pfns[..n], last)
    }

    fn writepage(&self, index: u64, pfn: Pfn, _len: usize) -> Result<(), Errno> {
        let size = self.dev.capacity_sectors() * SECTOR_SIZE;
        let pos = index * PAGE_SIZE;
        if pos >= size {
            return Ok(());
        }
        let len = (size - pos).min(PAGE_SIZE) as usize;
        rw_pages(&*self.dev, BioOp::Write, pos, &[pfn], len)
    }
}

fn zero_page(pfn: Pfn, from: usize) {
    // SAFETY: a page we hold, through the direct map.
    unsafe {
        core::ptr::write_bytes(
            crate::mm::page_address(pfn).as_mut_ptr::<u8>().add(from),
            0,
            PAGE - from,
        )
    };
}

/// The crate's block I/O over the block device's page cache (`sb_bread`/`mark_buffer_dirty`).
pub struct BdevIo {
    /// The page cache object of the whole disk.
    obj: u64,
    size: u64,
}

impl BdevIo {
    /// Copy between `buf` and the cached bytes at `pos` (within one page).
    fn with_page(
        &self,
        pos: u64,
        len: usize,
        write: bool,
        f: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Errno> {
        let index = pos / PAGE_SIZE;
        let off = (pos % PAGE_SIZE) as usize;
        let (pfn, _) = filemap::get_page(self.obj, index, self.size)?;
        // SAFETY: `len` bytes inside a page we hold a reference on.
        let s = unsafe {
            core::slice::from_raw_parts_mut(
                crate::mm::page_address(pfn).as_mut_ptr::<u8>().add(off),
                len,
            )
        };
        f(s);
        if write {
            filemap::set_page_dirty(pfn);
        }
        crate::mm::page_alloc::free_pages(pfn, 0);
        Ok(())
    }

    fn io(
        &self,
        blk: u64,
        len: usize,
        write: bool,
        f: &mut dyn FnMut(usize, &mut [u8]),
    ) -> Result<(), Errno> {
        let start = blk.checked_mul(len as u64).ok_or(EIO)?;
        if start.checked_add(len as u64).is_none_or(|e| e > self.size) {
            return Err(EIO);
        }
        let mut done = 0;
        while done < len {
            let pos = start + done as u64;
            let n = (PAGE - (pos % PAGE_SIZE) as usize).min(len - done);
            self.with_page(pos, n, write, &mut |s| f(done, s))?;
            done += n;
        }
        Ok(())
    }
}

impl BlockIo for BdevIo {
    fn read_block(&self, blk: u64, buf: &mut [u8]) -> Result<(), ext2fs::Errno> {
        let len = buf.len();
        self.io(blk, len, false, &mut |at, s| {
            buf[at..at + s.len()].copy_from_slice(s)
        })
        .map_err(kerr)
    }

    fn write_block(&self, blk: u64, buf: &[u8]) -> Result<(), ext2fs::Errno> {
        let len = buf.len();
        self.io(blk, len, true, &mut |at, s| {
            s.copy_from_slice(&buf[at..at + s.len()])
        })
        .map_err(kerr)
    }
}

// ---- the mounted filesystem ----------------------------------------------------------

/// A mounted ext2 filesystem (`struct ext2_sb_info`).
pub struct Ext2Sb {
    fs: Mutex<Ext2<BdevIo>>,
    dev: Arc<dyn BlockDevice>,
    /// The block device's page cache object.
    bdev_obj: u64,
    block_size: u32,
    /// Cached inodes by number (the superblock's hold keeps them while linked).
    icache: IrqLock<BTreeMap<u32, Arc<Inode>>>,
    /// Inodes whose last link went, waiting for their last user (then evicted).
    orphans: IrqLock<Vec<(u32, Weak<Inode>)>>,
    /// The VFS superblock (to make inodes).
    vfs_sb: IrqLock<Option<Arc<SuperBlock>>>,
}

/// The ext2 part of a VFS inode.
struct Ext2Inode {
    ino: u32,
    sb: Arc<Ext2Sb>,
}

struct Ext2Ops;
static EXT2_OPS: Ext2Ops = Ext2Ops;

struct Ext2Super {
    sb: Arc<Ext2Sb>,
}

/// Every mounted ext2 filesystem (for sync and shutdown).
static MOUNTED: IrqLock<Vec<Arc<Ext2Sb>>> = IrqLock::new("ext2_mounts", Vec::new());

fn ei(inode: &Inode) -> Result<&Ext2Inode, Errno> {
    inode.private::<Ext2Inode>().ok_or(EIO)
}

impl Ext2Sb {
    /// Evict the orphans nobody uses any more (`iput_final` → `ext2_evict_inode`).
    fn reap_orphans(&self, fs: &mut Ext2<BdevIo>) {
        let dead: Vec<u32> = {
            let mut o = self.orphans.lock();
            let dead = o
                .iter()
                .filter(|(_, w)| w.strong_count() == 0)
                .map(|(i, _)| *i)
                .collect();
            o.retain(|(_, w)| w.strong_count() > 0);
            dead
        };
        for ino in dead {
            if let Err(e) = fs.evict(ino) {
                log::warn!("ext2: evicting inode {ino}: {e:?}");
            }
        }
    }

    /// The VFS inode for `ino`, read from disk the first time (`ext2_iget`).
    fn iget(self: &Arc<Self>, fs: &mut Ext2<BdevIo>, ino: u32) -> Result<Arc<Inode>, Errno> {
        if let Some(i) = self.icache.lock().get(&ino) {
            return Ok(i.clone());
        }
        let d = fs.iget(ino).map_err(errno)?;
        let sb = self.vfs_sb.lock().clone().ok_or(EIO)?;
        let mode = d.mode as u32;
        let (major, minor) = {
            let r = d.rdev();
            (r >> ext2fs::MINOR_BITS, r & ((1 << ext2fs::MINOR_BITS) - 1))
        };
        let meta = InodeMeta {
            mode,
            nlink: d.links_count as u32,
            uid: d.uid,
            gid: d.gid,
            size: d.size,
            atime: d.atime as u64,
            mtime: d.mtime as u64,
            ctime: d.ctime as u64,
            rdev_major: major,
            rdev_minor: minor,
        };
        let mapping = if mode & S_IFMT == S_IFREG {
            let ops: filemap::Ops = crate::fs::file::try_arc(Ext2File {
                sb: Arc::downgrade(self),
                ino,
            })?;
            shmem::new_file_object(ops, d.size)?
        } else {
            0
        };
        let private = crate::mm::slab::try_box(Ext2Inode {
            ino,
            sb: self.clone(),
        })
        .map_err(|_| ENOMEM)?;
        let mut inode = Inode::new(
            &sb,
            &EXT2_OPS,
            meta,
            mapping,
            private as Box<dyn core::any::Any + Send + Sync>,
        );
        inode.i_ino = ino as u64;
        sb.inode_created();
        let inode = crate::fs::file::try_arc(inode)?;
        self.icache.lock().insert(ino, inode.clone());
        Ok(inode)
    }

    /// Refresh the cached attributes of `ino` from disk after the crate changed them.
    fn refresh(&self, fs: &Ext2<BdevIo>, ino: u32) {
        let Some(inode) = self.icache.lock().get(&ino).cloned() else {
            return;
        };
        if let Ok(d) = fs.read_inode(ino) {
            let mut m = inode.meta.lock();
            m.nlink = d.links_count as u32;
            m.mode = d.mode as u32;
            m.mtime = d.mtime as u64;
            m.ctime = d.ctime as u64;
            if m.mode & S_IFMT != S_IFREG {
                m.size = d.size;
            }
        }
    }

    /// An inode whose link count reached 0: no longer held by the cache; evicted when its
    /// last user goes.
    fn orphan(&self, ino: u32) {
        if let Some(i) = self.icache.lock().remove(&ino) {
            let w = Arc::downgrade(&i);
            drop(i);
            self.orphans.lock().push((ino, w));
        } else {
            self.orphans.lock().push((ino, Weak::new()));
        }
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, Ext2<BdevIo>> {
        let mut g = self.fs.lock();
        g.set_time(now() as u32);
        self.reap_orphans(&mut g);
        g
    }

    /// Put the attributes the VFS changed (size grown by writes, times, mode, owner) into
    /// the on-disk inodes (`ext2_write_inode`).
    fn write_inodes(&self, fs: &mut Ext2<BdevIo>) -> Result<(), Errno> {
        let cached: Vec<(u32, Arc<Inode>)> = self
            .icache
            .lock()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (ino, inode) in cached {
            let m = inode.meta();
            let mut d = fs.read_inode(ino).map_err(errno)?;
            let mut changed = false;
            if m.mode & S_IFMT == S_IFREG && d.size != m.size {
                d.size = m.size;
                changed = true;
            }
            if (d.mode as u32, d.uid, d.gid) != (m.mode, m.uid, m.gid) {
                d.mode = m.mode as u16;
                d.uid = m.uid;
                d.gid = m.gid;
                changed = true;
            }
            if d.mtime as u64 != m.mtime || d.ctime as u64 != m.ctime {
                d.mtime = m.mtime as u32;
                d.ctime = m.ctime as u32;
                changed = true;
            }
            if changed {
                fs.write_inode(ino, &d).map_err(errno)?;
            }
        }
        Ok(())
    }

    /// Write back the file pages, the metadata, then the disk's cache (`sync_filesystem`).
    pub fn sync(&self) -> Result<(), Errno> {
        {
            let mut fs = self.lock();
            if !fs.is_read_only() {
                self.write_inodes(&mut fs)?;
            }
            fs.sync().map_err(errno)?;
        }
        filemap::writeback_object(self.bdev_obj)?;
        block::submit_bio_wait(&*self.dev, Bio::new(BioOp::Flush, 0))
    }
}

fn owner() -> Owner {
    Owner { uid: 0, gid: 0 }
}

impl InodeOps for Ext2Ops {
    fn lookup(&self, dir: &Arc<Inode>, name: &[u8]) -> Result<Option<Arc<Inode>>, Errno> {
        let e = ei(dir)?;
        let mut fs = e.sb.lock();
        match fs.lookup(e.ino, name).map_err(errno)? {
            Some(ino) => e.sb.iget(&mut fs, ino).map(Some),
            None => Ok(None),
        }
    }

    fn create(&self, dir: &Arc<Inode>, name: &[u8], mode: u32) -> Result<Arc<Inode>, Errno> {
        let e = ei(dir)?;
        let mut fs = e.sb.lock();
        let ino = if mode & S_IFMT == S_IFREG {
            fs.create(e.ino, name, mode as u16, owner())
        } else {
            fs.mknod(e.ino, name, mode as u16, 0, owner())
        }
        .map_err(errno)?;
        e.sb.refresh(&fs, e.ino);
        e.sb.iget(&mut fs, ino)
    }

    fn mkdir(&self, dir: &Arc<Inode>, name: &[u8], mode: u32) -> Result<Arc<Inode>, Errno> {
        let e = ei(dir)?;
        let mut fs = e.sb.lock();
        let ino = fs
            .mkdir(e.ino, name, (S_IFDIR | (mode & 0o7777)) as u16, owner())
            .map_err(errno)?;
        e.sb.refresh(&fs, e.ino);
        e.sb.iget(&mut fs, ino)
    }

    fn symlink(&self, dir: &Arc<Inode>, name: &[u8], target: &[u8]) -> Result<Arc<Inode>, Errno> {
        let e = ei(dir)?;
        let mut fs = e.sb.lock();
        let ino = fs.symlink(e.ino, name, target, owner()).map_err(errno)?;
        e.sb.refresh(&fs, e.ino);
        e.sb.iget(&mut fs, ino)
    }

    fn link(&self, old: &Arc<Inode>, dir: &Arc<Inode>, name: &[u8]) -> Result<(), Errno> {
        let e = ei(dir)?;
        let o = ei(old)?;
        let mut fs = e.sb.lock();
        fs.link(o.ino, e.ino, name).map_err(errno)?;
        e.sb.refresh(&fs, o.ino);
        e.sb.refresh(&fs, e.ino);
        Ok(())
    }

    fn unlink(&self, dir: &Arc<Inode>, name: &[u8]) -> Result<(), Errno> {
        let e = ei(dir)?;
        let mut fs = e.sb.lock();
        let victim = fs.unlink(e.ino, name).map_err(errno)?;
        e.sb.refresh(&fs, victim);
        e.sb.refresh(&fs, e.ino);
        if fs.read_inode(victim).is_ok_and(|d| d.links_count == 0) {
            e.sb.orphan(victim);
        }
        Ok(())
    }

    fn rmdir(&self, dir: &Arc<Inode>, name: &[u8]) -> Result<(), Errno> {
        let e = ei(dir)?;
        let mut fs = e.sb.lock();
        let victim = fs.rmdir(e.ino, name).map_err(errno)?;
        e.sb.refresh(&fs, victim);
        e.sb.refresh(&fs, e.ino);
        e.sb.orphan(victim);
        Ok(())
    }

    fn rename(&self, od: &Arc<Inode>, on: &[u8], nd: &Arc<Inode>, nn: &[u8]) -> Result<(), Errno> {
        let o = ei(od)?;
        let n = ei(nd)?;
        let mut fs = o.sb.lock();
        let moved = fs.lookup(o.ino, on).map_err(errno)?;
        let replaced = fs.rename(o.ino, on, n.ino, nn).map_err(errno)?;
        for ino in [Some(o.ino), Some(n.ino), moved, replaced]
            .into_iter()
            .flatten()
        {
            o.sb.refresh(&fs, ino);
        }
        if let Some(r) = replaced {
            if fs.read_inode(r).is_ok_and(|d| d.links_count == 0) {
                o.sb.orphan(r);
            }
        }
        Ok(())
    }

    fn readlink(&self, inode: &Arc<Inode>) -> Result<Vec<u8>, Errno> {
        let e = ei(inode)?;
        let mut fs = e.sb.lock();
        fs.readlink(e.ino).map_err(errno)
    }

    fn readdir(
        &self,
        dir: &Arc<Inode>,
        pos: u64,
        emit: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<u64, Errno> {
        let e = ei(dir)?;
        let mut fs = e.sb.lock();
        fs.readdir(e.ino, pos, |d| {
            emit(DirEntry {
                name: d.name,
                ino: d.ino as u64,
                dtype: ext2fs::layout::ft_to_dtype(d.file_type),
                next: d.next_pos,
            })
        })
        .map_err(errno)
    }

    /// `ext2_setsize`: the page cache first (a partial last page is read, its tail zeroed
    /// and dirtied, so the disk gets zeros there too), then the blocks.
    fn set_size(&self, inode: &Arc<Inode>, size: u64) -> Result<(), Errno> {
        let e = ei(inode)?;
        let old = inode.size();
        if inode.i_mapping != 0 {
            if size < old && !size.is_multiple_of(PAGE_SIZE) {
                if let Ok((pfn, _)) = filemap::get_page(inode.i_mapping, size / PAGE_SIZE, old) {
                    filemap::set_page_dirty(pfn);
                    crate::mm::page_alloc::free_pages(pfn, 0);
                }
            }
            shmem::set_size(inode.i_mapping, size)?;
        }
        let mut fs = e.sb.lock();
        fs.truncate(e.ino, size, false).map_err(errno)?;
        drop(fs);
        inode.meta.lock().size = size;
        inode.touch();
        Ok(())
    }

    fn evict(&self, inode: &Inode) {
        if inode.i_mapping != 0 {
            shmem::release(inode.i_mapping);
        }
        inode.i_sb.inode_freed();
    }
}

/// The page cache operations of one regular file.
struct Ext2File {
    sb: Weak<Ext2Sb>,
    ino: u32,
}

impl Ext2File {
    fn sb(&self) -> Result<Arc<Ext2Sb>, Errno> {
        self.sb.upgrade().ok_or(EIO)
    }
}

impl AddressSpaceOps for Ext2File {
    /// Map every block of the pages (holes and blocks past the end read as zeros) and
    /// read each run of consecutive disk blocks with one bio (`mpage_readahead`).
    fn readpages(&self, index: u64, pfns: &[Pfn]) -> Result<(), Errno> {
        let sb = self.sb()?;
        let bs = sb.block_size as u64;
        let per_page = PAGE_SIZE / bs;
        // (disk byte position, page, offset in page) of each mapped block.
        let mut runs: Vec<(u64, Pfn, u32)> = Vec::new();
        {
            let mut fs = sb.lock();
            for (i, &pfn) in pfns.iter().enumerate() {
                zero_page(pfn, 0);
                for b in 0..per_page {
                    let fblock = (index + i as u64) * per_page + b;
                    if let Some(m) = fs.get_block(self.ino, fblock, false).map_err(errno)? {
                        runs.try_reserve(1).map_err(|_| ENOMEM)?;
                        runs.push((m.block * bs, pfn, (b * bs) as u32));
                    }
                }
            }
        }
        let mut i = 0;
        while i < runs.len() {
            let mut bio = Bio::new(BioOp::Read, runs[i].0 / SECTOR_SIZE);
            let mut next = runs[i].0;
            while i < runs.len() && runs[i].0 == next {
                bio.vecs.try_reserve(1).map_err(|_| ENOMEM)?;
                bio.vecs.push(BioVec {
                    page: runs[i].1.phys(),
                    offset: runs[i].2,
                    len: bs as u32,
                });
                next += bs;
                i += 1;
            }
            block::submit_bio_wait(&*sb.dev, bio)?;
        }
        Ok(())
    }

    fn writepage(&self, index: u64, pfn: Pfn, len: usize) -> Result<(), Errno> {
        let sb = self.sb()?;
        let bs = sb.block_size as u64;
        let per_page = PAGE_SIZE / bs;
        let blocks = (len as u64).div_ceil(bs).min(per_page);
        let mut mapped: Vec<(u64, u32)> = Vec::new();
        {
            let mut fs = sb.lock();
            for b in 0..blocks {
                let fblock = index * per_page + b;
                if let Some(m) = fs.get_block(self.ino, fblock, true).map_err(errno)? {
                    if m.new {
                        forget_bdev_block(&sb, m.block);
                    }
                    mapped.try_reserve(1).map_err(|_| ENOMEM)?;
                    mapped.push((m.block * bs, (b * bs) as u32));
                }
            }
        }
        let mut i = 0;
        while i < mapped.len() {
            let mut bio = Bio::new(BioOp::Write, mapped[i].0 / SECTOR_SIZE);
            let mut next = mapped[i].0;
            while i < mapped.len() && mapped[i].0 == next {
                bio.vecs.try_reserve(1).map_err(|_| ENOMEM)?;
                bio.vecs.push(BioVec {
                    page: pfn.phys(),
                    offset: mapped[i].1,
                    len: bs as u32,
                });
                next += bs;
                i += 1;
            }
            block::submit_bio_wait(&*sb.dev, bio)?;
        }
        Ok(())
    }

    fn prepare_write(&self, index: u64, from: usize, to: usize) -> Result<(), Errno> {
        let sb = self.sb()?;
        let bs = sb.block_size as u64;
        let per_page = PAGE_SIZE / bs;
        let mut fs = sb.lock();
        // Only the blocks the write touches: a block past the end of the file must not be
        // allocated (e2fsck would find the size wrong).
        let (first, last) = (from as u64 / bs, (to as u64).div_ceil(bs));
        for b in first..last.min(per_page) {
            if let Some(m) = fs
                .get_block(self.ino, index * per_page + b, true)
                .map_err(errno)?
            {
                if m.new {
                    forget_bdev_block(&sb, m.block);
                }
            }
        }
        Ok(())
    }
}

/// A block now holds file data: a cached metadata copy of it must never be written over
/// it (`clean_bdev_aliases`). A page holding only this block is dropped; one shared with
/// other blocks is written back first, then dropped, so nothing of it stays cached.
fn forget_bdev_block(sb: &Ext2Sb, block: u64) {
    let pos = block * sb.block_size as u64;
    let index = pos / PAGE_SIZE;
    if let shmem::Slot::Page(pfn, flags) = shmem::lookup_slot(sb.bdev_obj, index) {
        if flags & mm_core::page::flags::PG_DIRTY != 0 {
            let _ = filemap::writeback_page(sb.bdev_obj, index, pfn);
        }
        crate::mm::page_alloc::free_pages(pfn, 0);
        shmem::forget_page(sb.bdev_obj, index);
    }
}

impl SuperOps for Ext2Super {
    fn statfs(&self, sb: &SuperBlock) -> Result<Kstatfs, Errno> {
        let fs = self.sb.fs.lock();
        let s = fs.statfs();
        Ok(Kstatfs {
            f_type: s.magic as u64,
            f_bsize: s.bsize as u64,
            f_blocks: s.blocks,
            f_bfree: s.bfree,
            f_bavail: s.bavail,
            f_files: s.files,
            f_ffree: s.ffree,
            f_fsid: (s.fsid[0] as u64) | ((s.fsid[1] as u64) << 32),
            f_namelen: s.namelen as u64,
            f_frsize: s.bsize as u64,
            f_flags: if sb.read_only { 1 } else { 0 },
        })
    }

    fn sync_fs(&self) -> Result<(), Errno> {
        self.sb.sync()
    }
}

/// Whether `dev` holds an ext2 filesystem (its superblock magic).
pub fn probe(dev: &Arc<dyn BlockDevice>) -> bool {
    first_page(dev).is_some_and(|b| is_ext2(&b))
}

/// The first page of `dev` (the boot's one look at each disk, as Linux reads partition
/// tables), or None if it is shorter or unreadable.
pub fn first_page(dev: &Arc<dyn BlockDevice>) -> Option<alloc::vec::Vec<u8>> {
    let pfn = crate::mm::page_alloc::alloc_pages(mm_core::gfp::Gfp::KERNEL, 0)?;
    let mut out = alloc::vec::Vec::new();
    let ok = dev.capacity_sectors() * SECTOR_SIZE >= PAGE_SIZE
        && out.try_reserve(PAGE).is_ok()
        && rw_pages(&**dev, BioOp::Read, 0, &[pfn], PAGE).is_ok();
    if ok {
        // SAFETY: the page we just read.
        out.extend_from_slice(unsafe {
            core::slice::from_raw_parts(crate::mm::page_address(pfn).as_ptr::<u8>(), PAGE)
        });
    }
    crate::mm::page_alloc::free_pages(pfn, 0);
    ok.then_some(out)
}

/// Whether a disk's first page holds an ext2 superblock.
pub fn is_ext2(first: &[u8]) -> bool {
    let at = SUPERBLOCK_OFFSET as usize + MAGIC_OFFSET;
    first.len() > at + 1 && u16::from_le_bytes([first[at], first[at + 1]]) == EXT2_SUPER_MAGIC
}

/// Mount the ext2 filesystem on `dev` (`ext2_fill_super`): the superblock, its root
/// dentry, and the flusher that writes it back.
pub fn mount(dev: Arc<dyn BlockDevice>) -> Result<(Arc<SuperBlock>, Arc<Dentry>), Errno> {
    let size = dev.capacity_sectors() * SECTOR_SIZE;
    let ops: filemap::Ops = crate::fs::file::try_arc(BdevPages { dev: dev.clone() })?;
    let bdev_obj = shmem::new_file_object(ops, size)?;
    filemap::mark_buffers(bdev_obj);
    let read_only = dev.read_only();
    let fs = Ext2::mount(
        BdevIo {
            obj: bdev_obj,
            size,
        },
        MountOptions {
            read_only,
            now: now() as u32,
            device_bytes: size,
        },
    )
    .map_err(errno)?;
    let w = fs.warnings();
    if w.not_clean {
        log::warn!(
            "EXT2-fs ({}): warning: mounting unchecked fs, running e2fsck is recommended",
            dev.name()
        );
    }
    if w.has_errors {
        log::warn!(
            "EXT2-fs ({}): warning: mounting fs with errors, running e2fsck is recommended",
            dev.name()
        );
    }
    let ro = fs.is_read_only();
    let block_size = fs.block_size();
    let esb = crate::fs::file::try_arc(Ext2Sb {
        fs: Mutex::new("ext2", fs),
        dev: dev.clone(),
        bdev_obj,
        block_size,
        icache: IrqLock::new("ext2_icache", BTreeMap::new()),
        orphans: IrqLock::new("ext2_orphans", Vec::new()),
        vfs_sb: IrqLock::new("ext2_vfs_sb", None),
    })?;
    let sup: &'static Ext2Super =
        Box::leak(crate::mm::slab::try_box(Ext2Super { sb: esb.clone() }).map_err(|_| ENOMEM)?);
    let (major, minor) = dev.devt();
    let mut vsb = SuperBlock::new(
        "ext2",
        EXT2_SUPER_MAGIC as u64,
        (major, minor),
        sup,
        String::new(),
    );
    vsb.read_only = ro;
    let vsb = crate::fs::file::try_arc(vsb)?;
    *esb.vfs_sb.lock() = Some(vsb.clone());
    let root = {
        let mut fs = esb.lock();
        esb.iget(&mut fs, ext2fs::layout::EXT2_ROOT_INO)?
    };
    if !root.is_dir() {
        return Err(ENOTDIR);
    }
    MOUNTED.lock().push(esb.clone());
    if !ro {
        crate::mm::writeback::set_flusher(
            alloc::format!("flush-{major}:{minor}"),
            sync_all_metadata,
        );
    }
    log::info!(
        "EXT2-fs ({}): mounted filesystem{}",
        dev.name(),
        if ro { " read-only" } else { "" }
    );
    Ok((vsb, Dentry::new_root(root)))
}

/// Every mounted ext2 filesystem's metadata and disk cache (msync's and sync's last step).
pub fn sync_all_filesystems() -> Result<(), Errno> {
    let all = MOUNTED.lock().clone();
    for sb in all {
        sb.sync()?;
    }
    Ok(())
}

/// After a flush of the file pages: every filesystem's metadata and the disks' caches.
fn sync_all_metadata() {
    let all = MOUNTED.lock().clone();
    for sb in all {
        if let Err(e) = sb.sync() {
            log::warn!("ext2: sync of {}: {e:?}", sb.dev.name());
        }
    }
}

/// Unmount every ext2 filesystem cleanly at shutdown: data, metadata, the clean state
/// in the superblock, the disks' caches (`kill_block_super`).
pub fn unmount_all() {
    if MOUNTED.lock().is_empty() {
        return;
    }
    // Everything dirty first (a writeback the trace shows), then each filesystem.
    let _ = crate::mm::writeback::flush();
    let all = core::mem::take(&mut *MOUNTED.lock());
    for sb in all {
        {
            let mut fs = sb.lock();
            if !fs.is_read_only() {
                if let Err(e) = sb.write_inodes(&mut fs) {
                    log::warn!("ext2: unmounting {}: {e:?}", sb.dev.name());
                }
            }
            if let Err(e) = fs.sync() {
                log::warn!("ext2: unmounting {}: {e:?}", sb.dev.name());
            }
            if let Err(e) = fs.write_unmount_state() {
                log::warn!("ext2: unmounting {}: {e:?}", sb.dev.name());
            }
        }
        let _ = filemap::writeback_object(sb.bdev_obj);
        let _ = block::submit_bio_wait(&*sb.dev, Bio::new(BioOp::Flush, 0));
    }
}
