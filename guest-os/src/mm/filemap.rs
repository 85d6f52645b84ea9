//! The page cache of disk files (`mm/filemap.c`, `mm/readahead.c`, `mm/page-writeback.c`).
//!
//! A disk file's data is a page cache object (the tree of `mm/shmem.rs`) whose pages come
//! from its [`AddressSpaceOps`]: a page that is not in the cache is allocated, inserted
//! locked (PG_locked), read (the filesystem maps the file's blocks and submits one bio
//! per run of contiguous blocks), marked PG_uptodate and unlocked; whoever finds a page
//! locked sleeps until the read that owns it ends. A fault or read that had to wait for
//! the disk is *major*.
//!
//! Readahead is Linux's on-demand window: a miss right after the previous window doubles
//! the window (up to [`RA_MAX_PAGES`], 128 KiB), a miss elsewhere starts again at
//! [`RA_INIT_PAGES`]; pages already cached or past the end of the file end a window.
//!
//! Writes dirty pages (PG_dirty, counted in /proc/meminfo's Dirty); writeback
//! ([`writeback_object`]) write-protects every mapping of a dirty page first
//! (`page_mkclean`, so the next write through a shared mapping faults and dirties it
//! again), then writes it with PG_writeback set. Without a file rmap (`i_mmap`), the
//! mappings are found by looking at the VMAs of every address space that maps the object.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::gfp::Gfp;
use mm_core::page::flags::{PG_DIRTY, PG_LOCKED, PG_UPTODATE, PG_WRITEBACK};
use mm_core::page::Pages;

use super::addr::{Pfn, PAGE_SIZE};
use super::page_alloc;
use super::shmem::{self, Slot};
use crate::proc::wait_queue::WaitQueue;
use crate::syscall::errno::{Errno, EIO, ENOMEM};

/// Where a disk file's pages come from and go to (`struct address_space_operations`).
/// Methods may sleep for I/O; they are called with no lock held.
pub trait AddressSpaceOps: Send + Sync {
    /// Fill the pages `pfns` with the file's data from page `index` on (`readahead` /
    /// `read_folio`); holes and bytes past the end of the file read as zeros.
    fn readpages(&self, index: u64, pfns: &[Pfn]) -> Result<(), Errno>;
    /// Write page `index` (`writepage`); `len` bytes of it are inside the file.
    fn writepage(&self, index: u64, pfn: Pfn, len: usize) -> Result<(), Errno>;
    /// Make sure bytes `from..to` of page `index` have blocks to be written to
    /// (`write_begin`'s get_block with create): ENOSPC here, not at writeback.
    fn prepare_write(&self, _index: u64, _from: usize, _to: usize) -> Result<(), Errno> {
        Ok(())
    }
}

/// Pages in disk files' page caches (`NR_FILE_PAGES` less shmem).
pub static FILE_PAGES: AtomicU64 = AtomicU64::new(0);
/// Dirty page cache pages (`NR_FILE_DIRTY`) and pages being written (`NR_WRITEBACK`).
pub static NR_DIRTY: AtomicU64 = AtomicU64::new(0);
pub static NR_WRITEBACK: AtomicU64 = AtomicU64::new(0);
/// `/proc/vmstat`: pages read in, written out (`pgpgin`/`pgpgout` count KiB there),
/// major faults.
pub static PGPGIN: AtomicU64 = AtomicU64::new(0);
pub static PGPGOUT: AtomicU64 = AtomicU64::new(0);
pub static PGMAJFAULT: AtomicU64 = AtomicU64::new(0);

/// The first readahead window and the largest (Linux's `VM_READAHEAD_PAGES`, 128 KiB).
pub const RA_INIT_PAGES: u64 = 16;
pub const RA_MAX_PAGES: u64 = 32;

/// Tasks waiting for a locked page (Linux hashes these; one queue is enough for one CPU).
static PAGE_WAIT: WaitQueue = WaitQueue::new("page_wait");

fn page_flags(pfn: Pfn) -> u32 {
    page_alloc::page_flags(pfn)
}

fn set_flags(pfn: Pfn, set: u32, clear: u32) {
    page_alloc::with(|a| {
        let p = a.page_mut(pfn);
        p.flags = (p.flags | set) & !clear;
    });
}

/// Sleep until `pfn` is unlocked (`folio_wait_locked`), uninterruptibly.
pub(super) fn wait_on_page_locked(pfn: Pfn) {
    use crate::proc::state;
    while page_flags(pfn) & PG_LOCKED != 0 {
        let Some(me) = crate::proc::current() else {
            return;
        };
        PAGE_WAIT.add_current();
        me.state.store(state::DISK_SLEEP, Ordering::Release);
        crate::proc::sched::schedule();
        me.state.store(state::RUNNABLE, Ordering::Release);
        PAGE_WAIT.remove_current();
    }
}

pub(super) fn unlock_page(pfn: Pfn) {
    set_flags(pfn, 0, PG_LOCKED);
    PAGE_WAIT.wake_all();
}

/// The page at `index` of object `id` if it is in memory, up to date and not locked, with
/// a reference (a cache hit, counted as an access); None otherwise. Never sleeps: for
/// callers holding a spinlock.
pub fn find_uptodate(id: u64, index: u64) -> Option<Pfn> {
    match shmem::lookup_slot(id, index) {
        Slot::Page(pfn, flags) => {
            if flags & PG_LOCKED == 0 && flags & PG_UPTODATE != 0 {
                super::vmscan::mark_page_accessed(pfn);
                Some(pfn)
            } else {
                page_alloc::free_pages(pfn, 0);
                None
            }
        }
        _ => None,
    }
}

/// The page at `index` of object `id`, up to date, with a reference the caller drops
/// (`filemap_get_pages`), and whether the disk had to be read for it (a major fault).
/// `size` is the file's size: reads stop at its end. EIO if the read failed.
pub fn get_page(id: u64, index: u64, size: u64) -> Result<(Pfn, bool), Errno> {
    // Each pass either finds the page or inserts it; a page found locked is waited for.
    loop {
        match shmem::lookup_slot(id, index) {
            Slot::Page(pfn, flags) => {
                if flags & PG_LOCKED != 0 {
                    wait_on_page_locked(pfn);
                    if page_flags(pfn) & PG_UPTODATE == 0 {
                        // The read failed and the page left the cache: try again.
                        page_alloc::free_pages(pfn, 0);
                        return Err(EIO);
                    }
                }
                super::vmscan::mark_page_accessed(pfn);
                return Ok((pfn, false));
            }
            Slot::NoObject => return Err(EIO),
            Slot::Empty => {}
        }
        let ops = shmem::ops(id).ok_or(EIO)?;
        match read_window(id, &*ops, index, size)? {
            Some(pfn) => return Ok((pfn, true)),
            // Someone else inserted the page meanwhile: look again.
            None => continue,
        }
    }
}

/// The readahead window for a miss at `index` (`page_cache_sync_ra`): doubled after a
/// sequential miss, else the initial size; cut at the end of the file.
fn window(id: u64, index: u64, size: u64) -> u64 {
    let (next, prev) = shmem::ra_state(id);
    let n = if index == next && prev > 0 {
        (prev * 2).min(RA_MAX_PAGES)
    } else {
        RA_INIT_PAGES
    };
    let last = size.div_ceil(PAGE_SIZE).max(index + 1);
    n.min(last - index)
}

/// Read a window of pages from `index` on into the cache; returns page `index` with a
/// reference, or None if another task inserted it first.
fn read_window(
    id: u64,
    ops: &dyn AddressSpaceOps,
    index: u64,
    size: u64,
) -> Result<Option<Pfn>, Errno> {
    let want = window(id, index, size);
    let mut pages: Vec<Pfn> = Vec::new();
    pages.try_reserve(want as usize).map_err(|_| ENOMEM)?;
    for i in 0..want {
        let Some(pfn) = page_alloc::alloc_pages(Gfp::HIGHUSER_MOVABLE, 0) else {
            break;
        };
        // Charged to the reader's memory cgroup; the window ends where it cannot be.
        if super::vmscan::charge_or_reclaim(pfn).is_err() {
            page_alloc::free_pages(pfn, 0);
            break;
        }
        set_flags(pfn, PG_LOCKED, PG_UPTODATE | PG_DIRTY);
        match shmem::insert_page(id, index + i, pfn) {
            Ok(true) => {
                super::vmscan::lru_cache_add(pfn);
                pages.push(pfn)
            }
            // Already cached (or no memory for the tree): the window ends here.
            _ => {
                page_alloc::free_pages(pfn, 0);
                break;
            }
        }
    }
    if pages.is_empty() {
        return Ok(None);
    }
    shmem::set_ra_state(id, index + pages.len() as u64, pages.len() as u64);
    let r = ops.readpages(index, &pages);
    PGPGIN.fetch_add(pages.len() as u64, Ordering::Relaxed);
    for (i, &pfn) in pages.iter().enumerate() {
        if r.is_ok() {
            set_flags(pfn, PG_UPTODATE, 0);
        } else {
            shmem::remove_page(id, index + i as u64, pfn);
        }
        unlock_page(pfn);
    }
    r?;
    // The caller's reference on the first page.
    page_alloc::with(|a| a.get_page(pages[0]));
    Ok(Some(pages[0]))
}

/// Mark `pfn` dirty whatever it is (a PTE's dirty bit found by reclaim's unmap): an
/// anonymous page just gets PG_dirty (its data goes to swap, not to a file), a page
/// cache page is counted and scheduled for writeback.
pub fn set_page_dirty_any(pfn: Pfn) {
    if page_flags(pfn) & mm_core::page::flags::PG_SWAPBACKED != 0 {
        set_flags(pfn, PG_DIRTY, 0);
    } else {
        set_page_dirty(pfn);
    }
}

/// Mark `pfn` dirty (`folio_mark_dirty`), counting it once.
pub fn set_page_dirty(pfn: Pfn) {
    let was = page_alloc::with(|a| {
        let p = a.page_mut(pfn);
        let was = p.flags & PG_DIRTY != 0;
        p.flags |= PG_DIRTY;
        was
    });
    if !was {
        NR_DIRTY.fetch_add(1, Ordering::Relaxed);
        super::writeback::note_dirtied();
    }
}

/// The page a write at `index` copies into (`write_begin`): read first if the write
/// covers only part of it and the file has data there; blocks are allocated first.
pub fn write_begin(id: u64, index: u64, from: usize, to: usize, size: u64) -> Result<Pfn, Errno> {
    let whole = from == 0 && to == PAGE_SIZE as usize;
    let ops = shmem::ops(id).ok_or(EIO)?;
    ops.prepare_write(index, from, to)?;
    if !whole && index * PAGE_SIZE < size {
        return get_page(id, index, size).map(|(p, _)| p);
    }
    loop {
        match shmem::lookup_slot(id, index) {
            Slot::Page(pfn, flags) => {
                if flags & PG_LOCKED != 0 {
                    wait_on_page_locked(pfn);
                }
                return Ok(pfn);
            }
            Slot::NoObject => return Err(EIO),
            Slot::Empty => {}
        }
        let pfn =
            page_alloc::alloc_pages(Gfp(Gfp::HIGHUSER_MOVABLE.0 | Gfp::ZERO.0), 0).ok_or(ENOMEM)?;
        if let Err(e) = super::vmscan::charge_or_reclaim(pfn) {
            page_alloc::free_pages(pfn, 0);
            return Err(e);
        }
        set_flags(pfn, PG_UPTODATE, PG_LOCKED | PG_DIRTY);
        if shmem::insert_page(id, index, pfn)? {
            page_alloc::with(|a| a.get_page(pfn));
            super::vmscan::lru_cache_add(pfn);
            return Ok(pfn);
        }
        page_alloc::free_pages(pfn, 0);
    }
}

/// Write back the dirty pages of object `id` (`filemap_write_and_wait`): each is
/// write-protected in every mapping, cleaned, written, and waited for. Returns the number
/// of pages written, or the first error (the page stays dirty then).
pub fn writeback_object(id: u64) -> Result<u64, Errno> {
    let Some(ops) = shmem::ops(id) else {
        return Ok(0);
    };
    let mut from = 0;
    let mut written = 0;
    // Each batch moves `from` past its last page; the tree is finite.
    loop {
        let batch = shmem::pages_with(id, from, PG_DIRTY, 16);
        if batch.is_empty() {
            return Ok(written);
        }
        let size = shmem::size(id);
        for &(index, pfn) in &batch {
            from = index + 1;
            if page_flags(pfn) & PG_DIRTY == 0 {
                page_alloc::free_pages(pfn, 0);
                continue;
            }
            page_mkclean(id, index, pfn);
            set_flags(pfn, PG_WRITEBACK, PG_DIRTY);
            NR_DIRTY.fetch_sub(1, Ordering::Relaxed);
            NR_WRITEBACK.fetch_add(1, Ordering::Relaxed);
            let len = size.saturating_sub(index * PAGE_SIZE).min(PAGE_SIZE) as usize;
            let r = if len == 0 {
                Ok(())
            } else {
                ops.writepage(index, pfn, len)
            };
            NR_WRITEBACK.fetch_sub(1, Ordering::Relaxed);
            set_flags(pfn, 0, PG_WRITEBACK);
            page_alloc::free_pages(pfn, 0);
            if let Err(e) = r {
                set_page_dirty(pfn);
                return Err(e);
            }
            PGPGOUT.fetch_add(1, Ordering::Relaxed);
            written += 1;
        }
        crate::proc::sched::cond_resched();
    }
}

/// Write back one dirty page now (`write_one_page`).
pub fn writeback_page(id: u64, index: u64, pfn: Pfn) -> Result<(), Errno> {
    let Some(ops) = shmem::ops(id) else {
        return Ok(());
    };
    if page_flags(pfn) & PG_DIRTY == 0 {
        return Ok(());
    }
    page_mkclean(id, index, pfn);
    set_flags(pfn, PG_WRITEBACK, PG_DIRTY);
    NR_DIRTY.fetch_sub(1, Ordering::Relaxed);
    NR_WRITEBACK.fetch_add(1, Ordering::Relaxed);
    let len = shmem::size(id)
        .saturating_sub(index * PAGE_SIZE)
        .min(PAGE_SIZE) as usize;
    let r = ops.writepage(index, pfn, len);
    NR_WRITEBACK.fetch_sub(1, Ordering::Relaxed);
    set_flags(pfn, 0, PG_WRITEBACK);
    if r.is_err() {
        set_page_dirty(pfn);
    } else {
        PGPGOUT.fetch_add(1, Ordering::Relaxed);
    }
    r
}

/// Objects that cache block devices themselves (their pages are Buffers).
static BUFFER_OBJECTS: crate::sync::IrqLock<Vec<u64>> =
    crate::sync::IrqLock::new("buffer_objects", Vec::new());

/// Count object `id`'s pages as Buffers (a block device's own cache).
pub fn mark_buffers(id: u64) {
    let mut v = BUFFER_OBJECTS.lock();
    if v.try_reserve(1).is_ok() {
        v.push(id);
    }
}

/// Pages caching block devices (/proc/meminfo's Buffers).
pub fn buffer_pages() -> u64 {
    let ids = BUFFER_OBJECTS.lock().clone();
    ids.iter().map(|&id| shmem::nrpages(id)).sum()
}

/// Write-protect every user mapping of page `index` of object `id` (`page_mkclean`).
fn page_mkclean(id: u64, index: u64, pfn: Pfn) {
    for t in crate::proc::sched::all() {
        let mut g = t.mm().lock();
        if let Some(mm) = g.as_mut() {
            mm.wrprotect_file_page(id, index, pfn);
        }
    }
}

/// Write back every disk file's dirty pages (`sync`'s data part).
pub fn sync_all() -> Result<(), Errno> {
    let mut first_err = Ok(());
    for id in shmem::file_objects() {
        if let Err(e) = writeback_object(id) {
            if first_err.is_ok() {
                first_err = Err(e);
            }
        }
    }
    first_err
}

/// Read `len` bytes at `*pos` of the disk file with object `id` and size `size` into user
/// memory at `buf` (`filemap_read`).
pub fn read(id: u64, size: u64, buf: u64, len: usize, pos: &mut u64) -> Result<u64, Errno> {
    if *pos >= size || len == 0 {
        return Ok(0);
    }
    let total = (size - *pos).min(len as u64) as usize;
    let mut done = 0usize;
    while done < total {
        let p = *pos + done as u64;
        let off = (p % PAGE_SIZE) as usize;
        let n = (PAGE_SIZE as usize - off).min(total - done);
        let pfn = match get_page(id, p / PAGE_SIZE, size) {
            Ok((pfn, _)) => pfn,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        // SAFETY: `n` bytes inside a page we hold a reference on.
        let src = unsafe {
            core::slice::from_raw_parts(super::page_address(pfn).as_ptr::<u8>().add(off), n)
        };
        let r = super::uaccess::copy_to_user(buf + done as u64, src);
        page_alloc::free_pages(pfn, 0);
        if let Err(e) = r {
            if done == 0 {
                return Err(e);
            }
            break;
        }
        done += n;
        crate::proc::sched::cond_resched();
    }
    *pos += done as u64;
    Ok(done as u64)
}

/// Write `len` bytes from user memory at `buf` at `*pos` of the disk file with object
/// `id` (`generic_perform_write`): pages are dirtied, the size grows with each page, and
/// the writer is throttled when too much is dirty (`balance_dirty_pages`).
pub fn write(
    id: u64,
    size: &dyn Fn() -> u64,
    set_size: &dyn Fn(u64),
    buf: u64,
    len: usize,
    pos: &mut u64,
) -> Result<u64, Errno> {
    let mut done = 0usize;
    while done < len {
        let p = *pos + done as u64;
        let off = (p % PAGE_SIZE) as usize;
        let n = (PAGE_SIZE as usize - off).min(len - done);
        let pfn = match write_begin(id, p / PAGE_SIZE, off, off + n, size()) {
            Ok(pfn) => pfn,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        // SAFETY: `n` bytes inside a page we hold a reference on.
        let dst = unsafe {
            core::slice::from_raw_parts_mut(super::page_address(pfn).as_mut_ptr::<u8>().add(off), n)
        };
        let r = super::uaccess::copy_from_user(dst, buf + done as u64);
        if r.is_ok() {
            set_page_dirty(pfn);
        }
        page_alloc::free_pages(pfn, 0);
        if let Err(e) = r {
            if done == 0 {
                return Err(e);
            }
            break;
        }
        done += n;
        let end = p + n as u64;
        if end > size() {
            set_size(end);
        }
        super::writeback::balance_dirty_pages();
    }
    *pos += done as u64;
    Ok(done as u64)
}

/// The counters /proc/meminfo and /proc/vmstat show.
pub fn counters() -> (u64, u64, u64) {
    (
        FILE_PAGES.load(Ordering::Relaxed),
        NR_DIRTY.load(Ordering::Relaxed),
        NR_WRITEBACK.load(Ordering::Relaxed),
    )
}

/// A reference on an address space operations object, for filesystems.
pub type Ops = Arc<dyn AddressSpaceOps>;
