//! `memfd_create` files (`mm/memfd.c` over shmem): an anonymous regular file in kernel
//! memory. Pages are allocated when first written; a hole (after `ftruncate` grows the
//! file, or a write past the end) reads as zeros, as shmem's do. Page allocations are
//! fallible: a write that cannot get a page stops short, or fails with ENOMEM when nothing
//! was written.
//!
//! Mapping a memfd (`mmap`) is not offered yet: `mmap_ino` is `None`, so mmap answers
//! ENODEV; the shared-memory object of the mm side will back it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::file::{File, FileOps};
use super::stat::{Kstat, SHMEM_DEV, S_IFREG};
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, SysResult, EFAULT, EFBIG, ENOMEM};

const PAGE: usize = 4096;
/// Largest file size (`MAX_LFS_FILESIZE`).
pub const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

struct Inner {
    size: u64,
    /// Page index -> contents; absent pages are holes.
    pages: BTreeMap<u64, Vec<u8>>,
}

/// An open memfd.
pub struct MemFile {
    inner: IrqLock<Inner>,
    ino: u64,
}

impl MemFile {
    pub fn new() -> MemFile {
        use core::sync::atomic::{AtomicU64, Ordering};
        static NEXT_INO: AtomicU64 = AtomicU64::new(0x2000);
        MemFile {
            inner: IrqLock::new(
                "memfd",
                Inner {
                    size: 0,
                    pages: BTreeMap::new(),
                },
            ),
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Default for MemFile {
    fn default() -> Self {
        Self::new()
    }
}

fn zero_page() -> Result<Vec<u8>, Errno> {
    let mut v = Vec::new();
    v.try_reserve_exact(PAGE).map_err(|_| ENOMEM)?;
    v.resize(PAGE, 0);
    Ok(v)
}

impl FileOps for MemFile {
    fn read(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        let mut done = 0usize;
        let mut chunk = [0u8; PAGE];
        while done < len {
            let off = *pos + done as u64;
            let in_page = (off % PAGE as u64) as usize;
            let n = {
                let inner = self.inner.lock();
                if off >= inner.size {
                    break;
                }
                let n = (PAGE - in_page)
                    .min(len - done)
                    .min((inner.size - off) as usize);
                match inner.pages.get(&(off / PAGE as u64)) {
                    Some(p) => chunk[..n].copy_from_slice(&p[in_page..in_page + n]),
                    None => chunk[..n].fill(0),
                }
                n
            };
            if let Err(e) = copy_to_user(buf + done as u64, &chunk[..n]) {
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

    fn write(&self, file: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        if file.flags() & super::file::flags::O_APPEND != 0 {
            *pos = self.inner.lock().size;
        }
        if pos
            .checked_add(len as u64)
            .is_none_or(|end| end > MAX_LFS_FILESIZE)
        {
            return Err(EFBIG);
        }
        let mut done = 0usize;
        let mut chunk = [0u8; PAGE];
        while done < len {
            let off = *pos + done as u64;
            let in_page = (off % PAGE as u64) as usize;
            let n = (PAGE - in_page).min(len - done);
            if copy_from_user(&mut chunk[..n], buf + done as u64).is_err() {
                if done == 0 {
                    return Err(EFAULT);
                }
                break;
            }
            let idx = off / PAGE as u64;
            let mut inner = self.inner.lock();
            if let alloc::collections::btree_map::Entry::Vacant(slot) = inner.pages.entry(idx) {
                match zero_page() {
                    Ok(p) => {
                        slot.insert(p);
                    }
                    Err(e) if done == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            if let Some(p) = inner.pages.get_mut(&idx) {
                p[in_page..in_page + n].copy_from_slice(&chunk[..n]);
            }
            inner.size = inner.size.max(off + n as u64);
            done += n;
        }
        *pos += done as u64;
        Ok(done as u64)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> u64 {
        self.inner.lock().size
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        let inner = self.inner.lock();
        let mut k = Kstat::new(SHMEM_DEV, self.ino, S_IFREG | 0o777, 1, inner.size);
        k.blocks = inner.pages.len() as u64 * (PAGE as u64 / 512);
        Ok(k)
    }

    /// Shrinking frees the pages past the end and zeroes the tail of the last one.
    fn truncate(&self, len: u64) -> SysResult {
        if len > MAX_LFS_FILESIZE {
            return Err(EFBIG);
        }
        let mut inner = self.inner.lock();
        if len < inner.size {
            let first_gone = len.div_ceil(PAGE as u64);
            let gone = inner.pages.split_off(&first_gone);
            let tail = (len % PAGE as u64) as usize;
            if tail != 0 {
                if let Some(p) = inner.pages.get_mut(&(len / PAGE as u64)) {
                    p[tail..].fill(0);
                }
            }
            inner.size = len;
            drop(inner);
            drop(gone);
        } else {
            inner.size = len;
        }
        Ok(0)
    }

    fn name(&self) -> &'static str {
        "memfd"
    }
}
