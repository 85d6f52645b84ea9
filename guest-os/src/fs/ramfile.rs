//! Files and directories of the initramfs root (the read-only `kfs` ramfs) as open files:
//! reads copy from the archive's bytes, directories list through `getdents64`, and mmap
//! maps the inode's pages.

use alloc::vec::Vec;

use super::dirent::put_dirent;
use super::file::{File, FileOps};
use super::stat::Kstat;
use crate::mm::uaccess::copy_to_user;
use crate::syscall::errno::{Errno, SysResult, EINVAL, EISDIR};
use kfs::{FileType, Ino};

/// An open initramfs inode.
pub struct RamFile {
    pub ino: Ino,
    pub dir: bool,
}

/// Bytes copied to the user per step (bounds the work between checks, not the total).
const CHUNK: usize = 1 << 20;

impl FileOps for RamFile {
    fn read(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        if self.dir {
            return Err(EISDIR);
        }
        let data = super::file_data(self.ino)?;
        let start = usize::try_from(*pos).unwrap_or(usize::MAX).min(data.len());
        let n = (data.len() - start).min(len);
        let mut done = 0;
        while done < n {
            let k = (n - done).min(CHUNK);
            if let Err(e) = copy_to_user(buf + done as u64, &data[start + done..start + done + k]) {
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            done += k;
        }
        *pos += done as u64;
        Ok(done as u64)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> u64 {
        super::with_root(|fs| fs.stat(self.ino))
            .map(|s| s.size)
            .unwrap_or(0)
    }

    fn getdents(&self, _: &File, buf: u64, count: usize, pos: &mut u64) -> SysResult {
        if !self.dir {
            return Err(crate::syscall::errno::ENOTDIR);
        }
        let offset = *pos;
        let mut out: Vec<u8> = Vec::new();
        let mut next_pos = offset;
        let mut full = false;
        super::with_root(|fs| {
            for e in fs.readdir_from(self.ino, offset)? {
                if !put_dirent(
                    &mut out,
                    count,
                    e.ino,
                    e.next,
                    e.file_type.dirent_type(),
                    e.name,
                ) {
                    full = true;
                    break;
                }
                next_pos = e.next;
            }
            Ok(())
        })?;
        if out.is_empty() && full {
            // The next entry does not fit in the buffer.
            return Err(EINVAL);
        }
        copy_to_user(buf, &out)?;
        *pos = next_pos;
        Ok(out.len() as u64)
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        super::with_root(|fs| fs.stat(self.ino)).map(|s| Kstat::from_ramfs(&s))
    }

    fn mmap_ino(&self) -> Option<Ino> {
        (!self.dir).then_some(self.ino)
    }

    fn is_dir(&self) -> bool {
        self.dir
    }

    fn path(&self) -> Option<Vec<u8>> {
        if self.dir {
            super::namei::ram_path(self.ino).ok()
        } else {
            None
        }
    }

    fn name(&self) -> &'static str {
        "ramfs"
    }
}

impl RamFile {
    pub fn new(ino: Ino) -> Result<RamFile, Errno> {
        let dir = super::with_root(|fs| fs.file_type(ino))? == FileType::Directory;
        Ok(RamFile { ino, dir })
    }
}
