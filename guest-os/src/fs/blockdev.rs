//! Block devices as files (`block/fops.c`'s `def_blk_fops` without a page cache yet):
//! `/dev/vda` and friends read and written at any byte offset through bounce frames, with
//! a read-modify-write of partial sectors at the ends, `lseek` against the disk's size,
//! `fsync` as a FLUSH. As Linux: reads at or past the end return 0, writes there ENOSPC,
//! and a write to a read-only disk EPERM (`blkdev_write_iter`).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::file::{File, FileOps};
use super::stat::{Kstat, ROOTFS_DEV};
use crate::block::{self, Bio, BioOp, BioVec, BlockDevice, SECTOR_SIZE};
use crate::mm::page_alloc;
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::syscall::errno::{Errno, SysResult, ENOMEM, ENOSPC, EPERM};
use mm_core::addr::Pfn;
use mm_core::gfp::Gfp;

/// `S_IFBLK`.
pub const S_IFBLK: u32 = 0o060000;
const PAGE: usize = 4096;
/// Frames per transfer: 1 MiB, more than a virtio queue's segments, so large transfers
/// also exercise the block layer's splitting.
const CHUNK_PAGES: usize = 256;

/// An open block device.
pub struct BlockDevFile {
    dev: Arc<dyn BlockDevice>,
}

impl BlockDevFile {
    pub fn new(dev: Arc<dyn BlockDevice>) -> Self {
        BlockDevFile { dev }
    }
    fn size(&self) -> u64 {
        self.dev.capacity_sectors().saturating_mul(SECTOR_SIZE)
    }
}

/// Order-0 frames for one transfer, freed on drop.
struct Bounce(Vec<Pfn>);

impl Bounce {
    fn new(bytes: usize) -> Result<Bounce, Errno> {
        let mut v = Vec::new();
        v.try_reserve(bytes.div_ceil(PAGE)).map_err(|_| ENOMEM)?;
        let mut b = Bounce(v);
        for _ in 0..bytes.div_ceil(PAGE) {
            b.0.push(page_alloc::alloc_pages(Gfp::KERNEL, 0).ok_or(ENOMEM)?);
        }
        Ok(b)
    }

    /// The frames' pieces covering bytes `off..off+len` of the buffer.
    fn vecs(&self, off: usize, len: usize) -> Vec<BioVec> {
        let mut v = Vec::new();
        let (mut o, end) = (off, off + len);
        while o < end {
            let n = (PAGE - o % PAGE).min(end - o);
            v.push(BioVec {
                page: self.0[o / PAGE].phys(),
                offset: (o % PAGE) as u32,
                len: n as u32,
            });
            o += n;
        }
        v
    }

    /// Run `f` on the kernel slices covering bytes `off..off+len`, with the offset of each
    /// into that range.
    fn for_each(
        &self,
        off: usize,
        len: usize,
        mut f: impl FnMut(usize, &mut [u8]) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let (mut o, end) = (off, off + len);
        while o < end {
            let n = (PAGE - o % PAGE).min(end - o);
            let va = page_alloc::page_address(self.0[o / PAGE]).as_u64() + (o % PAGE) as u64;
            // SAFETY: the frame is this buffer's, mapped in the direct map, and `n` bytes
            // from `o % PAGE` stay inside it.
            let s = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, n) };
            f(o - off, s)?;
            o += n;
        }
        Ok(())
    }
}

impl Drop for Bounce {
    fn drop(&mut self) {
        for p in self.0.drain(..) {
            page_alloc::free_pages(p, 0);
        }
    }
}

impl BlockDevFile {
    /// Read or write `len` bytes of the buffer at `buf_off` from/to the disk at `sector`.
    fn io(
        &self,
        op: BioOp,
        b: &Bounce,
        buf_off: usize,
        sector: u64,
        len: usize,
    ) -> Result<(), Errno> {
        let mut bio = Bio::new(op, sector);
        bio.vecs = b.vecs(buf_off, len);
        block::submit_bio_wait(&*self.dev, bio)
    }

    /// One transfer of at most a chunk: bytes `off..off+want` of the disk.
    fn chunk(&self, write: bool, user: u64, off: u64, want: usize) -> Result<(), Errno> {
        let first = off / SECTOR_SIZE;
        let start_in = (off % SECTOR_SIZE) as usize;
        let span = (start_in + want).next_multiple_of(SECTOR_SIZE as usize);
        let b = Bounce::new(span)?;
        if !write {
            self.io(BioOp::Read, &b, 0, first, span)?;
            return b.for_each(start_in, want, |k, s| copy_to_user(user + k as u64, s));
        }
        // Partial sectors at either end: read them first (read-modify-write).
        let ss = SECTOR_SIZE as usize;
        if start_in != 0 {
            self.io(BioOp::Read, &b, 0, first, ss)?;
        }
        let tail_partial = !(start_in + want).is_multiple_of(ss);
        if tail_partial && !(start_in != 0 && span == ss) {
            self.io(
                BioOp::Read,
                &b,
                span - ss,
                first + (span / ss) as u64 - 1,
                ss,
            )?;
        }
        b.for_each(start_in, want, |k, s| copy_from_user(s, user + k as u64))?;
        self.io(BioOp::Write, &b, 0, first, span)
    }

    fn rw(&self, write: bool, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        let size = self.size();
        if *pos >= size {
            return if write && len > 0 { Err(ENOSPC) } else { Ok(0) };
        }
        let n = (len as u64).min(size - *pos) as usize;
        let mut done = 0usize;
        while done < n {
            let off = *pos + done as u64;
            let start_in = (off % SECTOR_SIZE) as usize;
            let want = (n - done).min(CHUNK_PAGES * PAGE - start_in);
            if let Err(e) = self.chunk(write, buf + done as u64, off, want) {
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            done += want;
            crate::proc::sched::cond_resched();
        }
        *pos += done as u64;
        Ok(done as u64)
    }
}

impl FileOps for BlockDevFile {
    fn read(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        self.rw(false, buf, len, pos)
    }

    fn write(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        if self.dev.read_only() {
            return Err(EPERM);
        }
        self.rw(true, buf, len, pos)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> u64 {
        BlockDevFile::size(self)
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        let (major, minor) = self.dev.devt();
        let mut k = Kstat::new(ROOTFS_DEV, 0x100 + minor as u64, S_IFBLK | 0o660, 1, 0);
        k.rdev_major = major;
        k.rdev_minor = minor;
        k.blksize = PAGE as u32;
        Ok(k)
    }

    /// `blkdev_fsync`: a cache flush.
    fn fsync(&self) -> SysResult {
        block::submit_bio_wait(&*self.dev, Bio::new(BioOp::Flush, 0))?;
        Ok(0)
    }

    fn name(&self) -> &'static str {
        "blockdev"
    }
}
