//! Open files of mounted filesystems: regular files read and written through the page
//! cache (`generic_file_read_iter` / `generic_perform_write` over `i_mapping`), and
//! directories listed through the filesystem's `readdir`.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::dirent::put_dirent;
use super::file::{flags, File, FileOps, MapTarget};
use super::inode::Inode;
use super::mount::Path;
use super::stat::Kstat;
use crate::mm::page_alloc;
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::mm::{page_address, PAGE_SIZE};
use crate::syscall::errno::{Errno, SysResult, EFBIG, EINVAL, EISDIR, ENOMEM, ENOTDIR};

/// The largest file offset (`MAX_LFS_FILESIZE` is larger; tmpfs's index limit binds first).
const MAX_FILE_SIZE: u64 = 1 << 46;

/// Zeros for reading holes.
static ZEROS: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

/// An open regular file, directory or symbolic link (O_PATH) of a mounted filesystem.
pub struct VfsFile {
    pub path: Path,
    pub inode: Arc<Inode>,
}

impl VfsFile {
    pub fn new(path: Path) -> Result<VfsFile, Errno> {
        let inode = path.inode().ok_or(crate::syscall::errno::ENOENT)?;
        Ok(VfsFile { path, inode })
    }
}

/// Read `len` bytes at `*pos` of `inode`'s page cache into user memory at `buf`.
pub fn filemap_read(inode: &Inode, buf: u64, len: usize, pos: &mut u64) -> SysResult {
    let size = inode.size();
    if *pos >= size || len == 0 {
        return Ok(0);
    }
    let total = (size - *pos).min(len as u64) as usize;
    let mut done = 0usize;
    while done < total {
        let p = *pos + done as u64;
        let off = (p % PAGE_SIZE) as usize;
        let n = (PAGE_SIZE as usize - off).min(total - done);
        let r = match crate::mm::shmem::find_get_page(inode.i_mapping, p / PAGE_SIZE) {
            Some(pfn) => {
                // SAFETY: `n` bytes inside a page we hold a reference on.
                let src = unsafe {
                    core::slice::from_raw_parts(page_address(pfn).as_ptr::<u8>().add(off), n)
                };
                let r = copy_to_user(buf + done as u64, src);
                page_alloc::free_pages(pfn, 0);
                r
            }
            // A hole reads as zeros.
            None => copy_to_user(buf + done as u64, &ZEROS[..n]),
        };
        if let Err(e) = r {
            if done == 0 {
                return Err(e);
            }
            break;
        }
        done += n;
    }
    *pos += done as u64;
    Ok(done as u64)
}

/// Write `len` bytes from user memory at `buf` at `*pos` through the page cache, growing
/// the file.
pub fn filemap_write(inode: &Inode, buf: u64, len: usize, pos: &mut u64) -> SysResult {
    if len == 0 {
        return Ok(0);
    }
    let end = pos.checked_add(len as u64).ok_or(EFBIG)?;
    if *pos >= MAX_FILE_SIZE {
        return Err(EFBIG);
    }
    let end = end.min(MAX_FILE_SIZE);
    let total = (end - *pos) as usize;
    let mut done = 0usize;
    while done < total {
        let p = *pos + done as u64;
        let off = (p % PAGE_SIZE) as usize;
        let n = (PAGE_SIZE as usize - off).min(total - done);
        let pfn = match crate::mm::shmem::find_or_create_for_write(inode.i_mapping, p / PAGE_SIZE) {
            Ok(pfn) => pfn,
            Err(_) if done > 0 => break,
            Err(_) => return Err(ENOMEM),
        };
        // SAFETY: `n` bytes inside a page its object holds.
        let dst = unsafe {
            core::slice::from_raw_parts_mut(page_address(pfn).as_mut_ptr::<u8>().add(off), n)
        };
        if let Err(e) = copy_from_user(dst, buf + done as u64) {
            if done == 0 {
                return Err(e);
            }
            break;
        }
        done += n;
        let new_end = p + n as u64;
        crate::mm::shmem::extend(inode.i_mapping, new_end);
        let mut m = inode.meta.lock();
        if new_end > m.size {
            m.size = new_end;
        }
    }
    inode.touch();
    *pos += done as u64;
    Ok(done as u64)
}

impl FileOps for VfsFile {
    fn read(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        if self.inode.is_dir() {
            return Err(EISDIR);
        }
        if self.inode.i_mapping == 0 {
            return Err(EINVAL);
        }
        if crate::mm::shmem::has_ops(self.inode.i_mapping) {
            // A disk file: its pages come from the disk.
            return crate::mm::filemap::read(
                self.inode.i_mapping,
                self.inode.size(),
                buf,
                len,
                pos,
            );
        }
        filemap_read(&self.inode, buf, len, pos)
    }

    fn write(&self, file: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        if self.inode.is_dir() {
            return Err(EISDIR);
        }
        if self.inode.i_mapping == 0 {
            return Err(EINVAL);
        }
        if file.flags() & flags::O_APPEND != 0 {
            *pos = self.inode.size();
        }
        if self.path.mnt.sb.read_only {
            return Err(crate::syscall::errno::EROFS);
        }
        let id = self.inode.i_mapping;
        if crate::mm::shmem::has_ops(id) {
            if pos.checked_add(len as u64).is_none() {
                return Err(EFBIG);
            }
            let inode = &self.inode;
            let r = crate::mm::filemap::write(
                id,
                &|| inode.size(),
                &|s| {
                    crate::mm::shmem::extend(id, s);
                    inode.meta.lock().size = s;
                },
                buf,
                len,
                pos,
            );
            inode.touch();
            return r;
        }
        filemap_write(&self.inode, buf, len, pos)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> u64 {
        self.inode.size()
    }

    fn getdents(&self, _: &File, buf: u64, count: usize, pos: &mut u64) -> SysResult {
        if !self.inode.is_dir() {
            return Err(ENOTDIR);
        }
        // `..`: the parent dentry's inode, or across the mount the covered one's parent.
        let parent_ino = {
            let root = super::mount::root();
            let mut p = self.path.clone();
            if Arc::ptr_eq(&p.dentry, &p.mnt.root) {
                if let Some((m, d)) = p.mnt.parent.clone() {
                    p = Path { mnt: m, dentry: d };
                }
            }
            let up = if root.is_some_and(|r| Arc::ptr_eq(&r.dentry, &p.dentry)) {
                None
            } else {
                p.dentry.parent()
            };
            up.and_then(|d| d.inode())
                .map_or(self.inode.i_ino, |i| i.i_ino)
        };
        let mut out: Vec<u8> = Vec::new();
        out.try_reserve(count.min(1 << 16)).map_err(|_| ENOMEM)?;
        let mut full = false;
        let next = self.inode.i_op.readdir(&self.inode, *pos, &mut |e| {
            let ino = if e.name == b".." { parent_ino } else { e.ino };
            if !put_dirent(&mut out, count, ino, e.next, e.dtype, e.name) {
                full = true;
                return false;
            }
            true
        })?;
        if out.is_empty() && full {
            // The next entry does not fit in the buffer.
            return Err(EINVAL);
        }
        copy_to_user(buf, &out)?;
        *pos = next;
        Ok(out.len() as u64)
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        Ok(self.inode.getattr())
    }

    fn truncate(&self, len: u64) -> SysResult {
        if !self.inode.is_reg() {
            return Err(EINVAL);
        }
        super::namei::do_truncate(&self.inode, len)?;
        Ok(0)
    }

    fn mmap_target(&self) -> Option<MapTarget> {
        if !self.inode.is_reg() || self.inode.i_mapping == 0 {
            return None;
        }
        let (major, minor) = self.inode.i_sb.s_dev;
        Some(MapTarget {
            id: self.inode.i_mapping,
            dev_major: major,
            dev_minor: minor,
            ino: self.inode.i_ino,
            name: super::namei::d_path(&self.path).unwrap_or_default(),
        })
    }

    fn is_dir(&self) -> bool {
        self.inode.is_dir()
    }

    fn path(&self) -> Option<Vec<u8>> {
        if self.inode.is_dir() {
            super::namei::d_path(&self.path).ok()
        } else {
            None
        }
    }

    fn vfs_path(&self) -> Option<Path> {
        Some(self.path.clone())
    }

    /// `fsync`: the file's dirty pages, then its filesystem's metadata and the disk's
    /// cache (ext2's `generic_file_fsync` syncs the whole metadata too).
    fn fsync(&self) -> SysResult {
        let id = self.inode.i_mapping;
        if id != 0 && crate::mm::shmem::has_ops(id) {
            crate::mm::filemap::writeback_object(id)?;
        }
        self.path.mnt.sb.s_op.sync_fs()?;
        Ok(0)
    }

    fn name(&self) -> &'static str {
        self.inode.i_sb.s_type
    }
}
