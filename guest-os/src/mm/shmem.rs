//! Shared anonymous memory (`mm/shmem.c`, `shmem_zero_setup`): a MAP_SHARED|MAP_ANONYMOUS
//! mapping is backed by a shmem object that owns its pages, not by the first process that
//! touched them. The object maps page index → page in a radix tree, which is the mm-core
//! page-table cursor over its own table pages (index `i` at "address" `i << PAGE_SHIFT`),
//! so lookups and inserts are O(1) and every allocation is fallible.
//!
//! VMAs name the object through `Backing::File` with an id carrying [`SHMEM_ID_BIT`] and
//! the name Linux prints, `/dev/zero (deleted)`. An object lives while some address space
//! maps it: `refs` counts address spaces (fork takes one per object its child maps,
//! unmapping the last VMA of it in an address space drops one); the last drop frees the
//! pages and the tree. Pages hold one reference for the object and one per mapping, and
//! carry PG_SWAPBACKED without PG_ANON (shmem-rss). Faults never copy them (VM_SHARED), and
//! MADV_DONTNEED only unmaps them: the data stays in the object.
//!
//! The anon rmap does not track shmem pages (Linux finds them through the file's
//! `i_mmap`, which does not exist here).
//!
//! The same objects are the page cache of disk files (`address_space`): such an object has
//! [`AddressSpaceOps`](super::filemap::AddressSpaceOps) that read and write its pages, its
//! pages are plain file pages (no PG_SWAPBACKED: file-rss, Cached), and `mm/filemap.rs`
//! fills and writes them back. The tree is shared; what differs is where pages come from.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::gfp::Gfp;
use mm_core::page::Pages;
use mm_core::pgtable::{pte, Cursor, MmuGather, Pte, USER_TOP};
use mm_core::swap::{pte_to_swp_entry, swp_entry_to_pte, SwpEntry};
use mm_core::vma::{Backing, FileRef, Vma};

use super::addr::{Pfn, PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use super::memory::FaultError;
use super::mm_struct::{set_page_shmem, UserPt};
use super::page_alloc;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, ENOMEM};

/// Marks the file ids of shmem objects (kfs inode numbers are far smaller).
pub const SHMEM_ID_BIT: u64 = 1 << 62;
/// What /proc/PID/maps shows for shared anonymous memory (as Linux).
const SHMEM_NAME: &str = "/dev/zero (deleted)";
/// The device of Linux's internal shm mount, as maps prints it (00:01).
const SHMEM_DEV: (u32, u32) = (0, 1);
/// The largest object: every index must be an address of the radix tree.
const MAX_INDEX: u64 = USER_TOP >> PAGE_SHIFT;

struct ShmemObject {
    id: u64,
    /// Holders: address spaces mapping it, and the tmpfs inode whose data it is.
    refs: u64,
    /// `i_size`: pages at or past `size.div_ceil(PAGE_SIZE)` are SIGBUS to a mapping.
    /// Shared anonymous memory has no size ([`u64::MAX`]).
    size: u64,
    /// Root of the index → page tree.
    root: PhysAddr,
    /// Epoch marks for the counting passes of [`get_all`] and [`put_removed`].
    seen: u64,
    kept: u64,
    /// Where the pages of a disk file come from (None: swap-backed, tmpfs or anonymous).
    ops: Option<alloc::sync::Arc<dyn super::filemap::AddressSpaceOps>>,
    /// Readahead state (`file_ra_state`): the index after the last window read, and that
    /// window's size in pages.
    ra_next: u64,
    ra_size: u64,
}

/// Live objects, sorted by id (ids only grow, so creation appends).
static OBJECTS: IrqLock<Vec<ShmemObject>> = IrqLock::new("shmem", Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Pages held by all objects (`NR_SHMEM`: /proc/meminfo's Shmem, part of Cached).
static SHMEM_PAGES: AtomicU64 = AtomicU64::new(0);

/// The tree "address" range of page `index` (one page at `index << PAGE_SHIFT`).
fn slot(index: u64) -> core::ops::Range<VirtAddr> {
    let va = VirtAddr::new(index << PAGE_SHIFT);
    va..VirtAddr::new(va.as_u64() + PAGE_SIZE)
}

/// A page leaves its object (freed after the flush): the counters that held it.
fn page_gone(file: bool, pfn: Pfn) {
    if file {
        super::filemap::FILE_PAGES.fetch_sub(1, Ordering::Relaxed);
        let flags = page_alloc::page_flags(pfn);
        if flags & mm_core::page::flags::PG_DIRTY != 0 {
            super::filemap::NR_DIRTY.fetch_sub(1, Ordering::Relaxed);
            page_alloc::with(|a| a.page_mut(pfn).flags &= !mm_core::page::flags::PG_DIRTY);
        }
    } else {
        SHMEM_PAGES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One slot of a tree being cleared (truncate, the object's end): a page leaves its
/// object (true: the caller frees it after the flush); a shmem page in swap gives up its
/// slot; an evicted file page's shadow just goes.
fn release_slot(file: bool, p: Pte) -> bool {
    if p.is_present() {
        page_gone(file, p.phys().pfn());
        return true;
    }
    if !file {
        if let Some(e) = pte_to_swp_entry(p) {
            super::swap_state::free_swap_and_cache(e);
        }
    }
    false
}

/// Pages held by shmem objects (tmpfs files and shared anonymous memory).
pub fn total_pages() -> u64 {
    SHMEM_PAGES.load(Ordering::Relaxed)
}
static EPOCH: AtomicU64 = AtomicU64::new(1);

pub fn is_shmem(id: u64) -> bool {
    id & SHMEM_ID_BIT != 0
}

fn find(objs: &mut [ShmemObject], id: u64) -> Option<&mut ShmemObject> {
    objs.binary_search_by_key(&id, |o| o.id)
        .ok()
        .map(|i| &mut objs[i])
}

/// A new object of `len` bytes, held by the calling address space; returns the backing
/// its VMA names (`shmem_zero_setup`).
pub fn create(len: u64) -> Result<Backing, Errno> {
    if len.div_ceil(PAGE_SIZE) > MAX_INDEX {
        return Err(ENOMEM);
    }
    let root = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO | Gfp::NOWARN, 0).ok_or(ENOMEM)?;
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let id = SHMEM_ID_BIT | n;
    let mut objs = OBJECTS.lock();
    if objs.try_reserve(1).is_err() {
        drop(objs);
        page_alloc::free_pages(root, 0);
        return Err(ENOMEM);
    }
    objs.push(ShmemObject {
        id,
        refs: 1,
        size: u64::MAX,
        root: root.phys(),
        seen: 0,
        kept: 0,
        ops: None,
        ra_next: 0,
        ra_size: 0,
    });
    Ok(Backing::File(FileRef::new(
        id,
        SHMEM_DEV.0,
        SHMEM_DEV.1,
        n,
        SHMEM_NAME,
    )))
}

/// A new empty object of size 0 held once by its creator (a tmpfs inode's data,
/// `shmem_get_inode`'s `i_mapping`); returns its id.
pub fn new_object() -> Result<u64, Errno> {
    let root = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO | Gfp::NOWARN, 0).ok_or(ENOMEM)?;
    let id = SHMEM_ID_BIT | NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut objs = OBJECTS.lock();
    if objs.try_reserve(1).is_err() {
        drop(objs);
        page_alloc::free_pages(root, 0);
        return Err(ENOMEM);
    }
    objs.push(ShmemObject {
        id,
        refs: 1,
        size: 0,
        root: root.phys(),
        seen: 0,
        kept: 0,
        ops: None,
        ra_next: 0,
        ra_size: 0,
    });
    Ok(id)
}

/// A new page cache object for a disk file of `size` bytes whose pages `ops` read and
/// write, held once by its creator (the inode).
pub fn new_file_object(
    ops: alloc::sync::Arc<dyn super::filemap::AddressSpaceOps>,
    size: u64,
) -> Result<u64, Errno> {
    let id = new_object()?;
    if let Some(o) = find(&mut OBJECTS.lock(), id) {
        o.ops = Some(ops);
        o.size = size;
    }
    Ok(id)
}

/// The object's page source, if it is a disk file's page cache.
pub fn ops(id: u64) -> Option<alloc::sync::Arc<dyn super::filemap::AddressSpaceOps>> {
    find(&mut OBJECTS.lock(), id).and_then(|o| o.ops.clone())
}

/// Whether `id` is a disk file's page cache (pages come from its ops).
pub fn has_ops(id: u64) -> bool {
    find(&mut OBJECTS.lock(), id).is_some_and(|o| o.ops.is_some())
}

/// What a lookup in the tree found.
pub enum Slot {
    /// A page, with a reference taken for the caller, and its flags.
    Page(Pfn, u32),
    Empty,
    /// No such object, or an index past the tree.
    NoObject,
}

/// The swap entry in slot `index` of shmem object `id`, if that page is swapped out.
fn swap_entry_at(id: u64, index: u64) -> Option<SwpEntry> {
    if index >= MAX_INDEX {
        return None;
    }
    let mut objs = OBJECTS.lock();
    let obj = find(&mut objs, id)?;
    if obj.ops.is_some() {
        return None;
    }
    let mut pt = UserPt::default();
    let mut c = Cursor::new(&mut pt, obj.root, slot(index)).ok()?;
    c.query().and_then(pte_to_swp_entry)
}

/// The page at `index` with a reference (`find_get_page`), without creating one.
pub fn lookup_slot(id: u64, index: u64) -> Slot {
    if index >= MAX_INDEX {
        return Slot::NoObject;
    }
    let mut objs = OBJECTS.lock();
    let Some(obj) = find(&mut objs, id) else {
        return Slot::NoObject;
    };
    let mut pt = UserPt::default();
    let Ok(mut c) = Cursor::new(&mut pt, obj.root, slot(index)) else {
        return Slot::NoObject;
    };
    match c.query().filter(|p| p.is_present()) {
        Some(p) => {
            let pfn = p.phys().pfn();
            let flags = page_alloc::with(|a| {
                a.get_page(pfn);
                a.page(pfn).flags
            });
            Slot::Page(pfn, flags)
        }
        None => Slot::Empty,
    }
}

/// Insert the new page `pfn` at `index` (`add_to_page_cache_lru`): false if a page is
/// there already (the caller frees its own). The object takes the caller's reference.
pub fn insert_page(id: u64, index: u64, pfn: Pfn) -> Result<bool, Errno> {
    if index >= MAX_INDEX {
        return Err(crate::syscall::errno::EFBIG);
    }
    let mut objs = OBJECTS.lock();
    let obj = find(&mut objs, id).ok_or(crate::syscall::errno::ENOENT)?;
    let mut pt = UserPt::default();
    let mut c = Cursor::new(&mut pt, obj.root, slot(index)).map_err(|_| ENOMEM)?;
    if c.query().is_some_and(|p| p.is_present()) {
        return Ok(false);
    }
    let old = c
        .map(Pte::new(pfn.phys(), pte::PRESENT))
        .map_err(|_| ENOMEM)?;
    drop(objs);
    if let Some(shadow) = super::vmscan::slot_to_shadow(old.0) {
        // The shadow of an evicted page: a refault.
        super::vmscan::workingset_refault(pfn, shadow);
    }
    page_alloc::with(|a| {
        let p = a.page_mut(pfn);
        // `page->mapping`: reclaim finds the object, and through its VMAs the PTEs.
        p.mapping = id as usize;
        p.index = index;
    });
    super::filemap::FILE_PAGES.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

/// Take page `pfn` out of the tree at `index` (a read that failed, a page dropped) and
/// drop the object's reference.
pub fn remove_page(id: u64, index: u64, pfn: Pfn) {
    let mut objs = OBJECTS.lock();
    let Some(obj) = find(&mut objs, id) else {
        return;
    };
    let file = obj.ops.is_some();
    let mut pt = UserPt::default();
    if let Ok(mut c) = Cursor::new(&mut pt, obj.root, slot(index)) {
        if c.query()
            .is_some_and(|p| p.is_present() && p.phys().pfn() == pfn)
        {
            c.replace(Pte(0));
            drop(objs);
            page_gone(file, pfn);
            page_alloc::free_pages(pfn, 0);
        }
    }
}

/// If slot `index` of the tree at `root` holds page `pfn`, put `new()` there instead
/// (`None`: leave it); whether it did.
fn replace_page_slot(
    root: PhysAddr,
    index: u64,
    pfn: Pfn,
    new: impl FnOnce() -> Option<Pte>,
) -> bool {
    let mut pt = UserPt::default();
    let Ok(mut c) = Cursor::new(&mut pt, root, slot(index)) else {
        return false;
    };
    if !c
        .query()
        .is_some_and(|p| p.is_present() && p.phys().pfn() == pfn)
    {
        return false;
    }
    match new() {
        Some(p) => {
            c.replace(p);
            true
        }
        None => false,
    }
}

/// Reclaim's `__remove_mapping`: take the clean, unmapped page `pfn` out of object `id`
/// at `index` if nobody but the object and the caller (its isolation reference) holds it,
/// leaving `shadow` (a workingset shadow entry, a non-present value) in its slot. The
/// object's reference is dropped; the caller's stays.
pub fn remove_mapping(id: u64, index: u64, pfn: Pfn, shadow: u64) -> bool {
    let mut objs = OBJECTS.lock();
    let Some(obj) = find(&mut objs, id) else {
        return false;
    };
    let file = obj.ops.is_some();
    let free = page_alloc::with(|a| {
        let p = a.page(pfn);
        p.refcount == 2
            && p.mapcount < 0
            && p.flags
                & (mm_core::page::flags::PG_DIRTY
                    | mm_core::page::flags::PG_LOCKED
                    | mm_core::page::flags::PG_WRITEBACK)
                == 0
    });
    if !free {
        return false;
    }
    // A shadow is a non-present entry: lookups see an empty slot.
    if !replace_page_slot(obj.root, index, pfn, || {
        Some(Pte(super::vmscan::shadow_to_slot(shadow)))
    }) {
        return false;
    }
    drop(objs);
    page_gone(file, pfn);
    page_alloc::free_pages(pfn, 0);
    true
}

/// Drop the page at `index` from object `id`, dirty or not (the caller wrote it back or
/// wants it gone).
pub fn forget_page(id: u64, index: u64) {
    if let Slot::Page(pfn, _) = lookup_slot(id, index) {
        page_alloc::free_pages(pfn, 0);
        remove_page(id, index, pfn);
    }
}

/// The readahead state of object `id`: (next index, window size).
pub fn ra_state(id: u64) -> (u64, u64) {
    find(&mut OBJECTS.lock(), id).map_or((0, 0), |o| (o.ra_next, o.ra_size))
}

pub fn set_ra_state(id: u64, next: u64, size: u64) {
    if let Some(o) = find(&mut OBJECTS.lock(), id) {
        o.ra_next = next;
        o.ra_size = size;
    }
}

/// Up to `max` pages of object `id` from index `from` whose flags have any of `mask`, each
/// with a reference taken, in index order (writeback's `find_get_pages_tag`).
pub fn pages_with(id: u64, from: u64, mask: u32, max: usize) -> Vec<(u64, Pfn)> {
    let mut out = Vec::new();
    let mut objs = OBJECTS.lock();
    let Some(obj) = find(&mut objs, id) else {
        return out;
    };
    if from >= MAX_INDEX {
        return out;
    }
    let mut pt = UserPt::default();
    let Ok(mut c) = Cursor::new(
        &mut pt,
        obj.root,
        VirtAddr::new(from << PAGE_SHIFT)..VirtAddr::new(USER_TOP),
    ) else {
        return out;
    };
    while let Some((va, p)) = c.find_next() {
        let pfn = p.phys().pfn();
        let hit = page_alloc::with(|a| {
            let pg = a.page_mut(pfn);
            if pg.flags & mask != 0 {
                a.get_page(pfn);
                true
            } else {
                false
            }
        });
        if hit {
            if out.try_reserve(1).is_err() {
                page_alloc::free_pages(pfn, 0);
                break;
            }
            out.push((va.as_u64() >> PAGE_SHIFT, pfn));
            if out.len() >= max {
                break;
            }
        }
        c.move_forward();
    }
    out
}

/// Give back the object table's spare capacity (with the other caches that
/// `/proc/vmscope/freepages` drops, so that its growth is not taken for a leak).
pub fn shrink_table() {
    OBJECTS.lock().shrink_to_fit();
}

/// Ids of the disk files' page cache objects (for `sync`).
pub fn file_objects() -> Vec<u64> {
    OBJECTS
        .lock()
        .iter()
        .filter(|o| o.ops.is_some())
        .map(|o| o.id)
        .collect()
}

/// One more holder of object `id` (an mmap of a tmpfs file by a new address space).
pub fn hold(id: u64) {
    if let Some(o) = find(&mut OBJECTS.lock(), id) {
        o.refs += 1;
    }
}

/// Drop one hold on object `id`; the last frees its pages.
pub fn release(id: u64) {
    put(&mut OBJECTS.lock(), id);
}

/// The object's size (`i_size`).
pub fn size(id: u64) -> u64 {
    find(&mut OBJECTS.lock(), id).map_or(0, |o| o.size)
}

/// The page at `index` if the object has one (`find_get_page`), with a reference the
/// caller drops with `page_alloc::free_pages(pfn, 0)`.
pub fn find_get_page(id: u64, index: u64) -> Option<Pfn> {
    // A swapped-out page of a shmem object comes back first.
    if let Some(entry) = swap_entry_at(id, index) {
        if swap_in_blocking(entry).is_ok() {
            if let Ok(pfn) = find_or_create_inner(id, index, true) {
                page_alloc::with(|a| a.get_page(pfn));
                return Some(pfn);
            }
        }
        return None;
    }
    match lookup_slot(id, index) {
        Slot::Page(pfn, _) => Some(pfn),
        _ => None,
    }
}

/// Set the size (`shmem_setattr` → `truncate_setsize`): shrinking frees the pages wholly
/// past the end and zeroes the tail of the last one; the caller has unmapped them from
/// every address space first (`unmap_mapping_range`).
pub fn set_size(id: u64, new: u64) -> Result<(), Errno> {
    if new.div_ceil(PAGE_SIZE) > MAX_INDEX {
        return Err(crate::syscall::errno::EFBIG);
    }
    let mut objs = OBJECTS.lock();
    let Some(obj) = find(&mut objs, id) else {
        return Ok(());
    };
    let old = obj.size;
    obj.size = new;
    if new >= old {
        return Ok(());
    }
    let root = obj.root;
    let file = obj.ops.is_some();
    let first = new.div_ceil(PAGE_SIZE);
    let mut pt = UserPt::default();
    // Never loaded in CR3: nothing to flush; pages and emptied tables are freed at finish.
    let mut tlb = MmuGather::new(false);
    if let Ok(mut c) = Cursor::new(
        &mut pt,
        root,
        VirtAddr::new(first << PAGE_SHIFT)..VirtAddr::new(USER_TOP),
    ) {
        let _ = c.unmap(USER_TOP - (first << PAGE_SHIFT), &mut tlb, &mut |_, p| {
            release_slot(file, p)
        });
    }
    drop(objs);
    tlb.finish(&mut pt);
    if !new.is_multiple_of(PAGE_SIZE) {
        if let Some(pfn) = find_get_page(id, new / PAGE_SIZE) {
            let off = (new % PAGE_SIZE) as usize;
            // SAFETY: the tail of a page we hold a reference on, through the direct map.
            unsafe {
                core::ptr::write_bytes(
                    super::page_address(pfn).as_mut_ptr::<u8>().add(off),
                    0,
                    PAGE_SIZE as usize - off,
                )
            };
            page_alloc::free_pages(pfn, 0);
        }
    }
    Ok(())
}

/// Write kernel bytes at `off` (the initramfs unpacking), growing the size.
pub fn write_kernel(id: u64, off: u64, data: &[u8]) -> Result<(), Errno> {
    let mut done = 0usize;
    extend(id, off + data.len() as u64);
    while done < data.len() {
        let pos = off + done as u64;
        let in_page = (PAGE_SIZE - pos % PAGE_SIZE) as usize;
        let n = in_page.min(data.len() - done);
        let pfn = find_or_create_for_write(id, pos / PAGE_SIZE).map_err(|_| ENOMEM)?;
        // SAFETY: `n` bytes inside a page its object holds, through the direct map.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data[done..].as_ptr(),
                super::page_address(pfn)
                    .as_mut_ptr::<u8>()
                    .add((pos % PAGE_SIZE) as usize),
                n,
            )
        };
        done += n;
    }
    Ok(())
}

/// Grow the size to at least `end` (a write past the end).
pub fn extend(id: u64, end: u64) {
    if let Some(o) = find(&mut OBJECTS.lock(), id) {
        o.size = o.size.max(end);
    }
}

/// Pages the object holds (`nrpages`), for stat's `st_blocks`.
pub fn nrpages(id: u64) -> u64 {
    let mut objs = OBJECTS.lock();
    let Some(obj) = find(&mut objs, id) else {
        return 0;
    };
    let mut pt = UserPt::default();
    let Ok(mut c) = Cursor::new(&mut pt, obj.root, VirtAddr::new(0)..VirtAddr::new(USER_TOP))
    else {
        return 0;
    };
    let mut n = 0;
    while c.find_next().is_some() {
        n += 1;
        c.move_forward();
    }
    n
}

/// The shmem id of `v`, if it maps an object.
fn id_of(v: &Vma) -> Option<u64> {
    match v.backing {
        Backing::File(f) if is_shmem(f.id) => Some(f.id),
        _ => None,
    }
}

/// The page at `index` of object `id`, allocated (zeroed) on first use. The object keeps
/// its own reference; the caller takes one for its mapping.
pub fn find_or_create(id: u64, index: u64) -> Result<Pfn, FaultError> {
    find_or_create_inner(id, index, false)
}

/// [`find_or_create`] for a write(2) that may extend the file: no size check. May sleep
/// (a swapped-out page is read in).
pub fn find_or_create_for_write(id: u64, index: u64) -> Result<Pfn, FaultError> {
    loop {
        match find_or_create_inner(id, index, true) {
            Err(FaultError::SwapIo(entry)) => swap_in_blocking(entry)?,
            r => return r,
        }
    }
}

fn find_or_create_inner(id: u64, index: u64, extending: bool) -> Result<Pfn, FaultError> {
    if index >= MAX_INDEX {
        return Err(FaultError::Segv(super::memory::SEGV_MAPERR));
    }
    let mut objs = OBJECTS.lock();
    let obj = find(&mut objs, id).ok_or(FaultError::Segv(super::memory::SEGV_MAPERR))?;
    if !extending && obj.size != u64::MAX && index >= obj.size.div_ceil(PAGE_SIZE) {
        // Past the end of the file (`shmem_fault` → VM_FAULT_SIGBUS).
        return Err(FaultError::Sigbus);
    }
    let swap_backed = obj.ops.is_none();
    let mut pt = UserPt::default();
    let mut c = Cursor::new(&mut pt, obj.root, slot(index))?;
    let cur = c.query();
    if let Some(p) = cur.filter(|p| p.is_present()) {
        return Ok(p.phys().pfn());
    }
    if let Some(entry) = cur.filter(|_| swap_backed).and_then(pte_to_swp_entry) {
        // Swapped out (`shmem_swapin_folio`): back from the swap cache if it is there;
        // else the caller reads it in with no lock held and asks again.
        let Some(pfn) = super::swap_state::cached_page(entry) else {
            return Err(FaultError::SwapIo(entry));
        };
        // The swap cache lookup's reference becomes the object's.
        c.replace(Pte::new(pfn.phys(), pte::PRESENT));
        drop(objs);
        claim_swapped(id, index, entry, pfn);
        return Ok(pfn);
    }
    let pfn = page_alloc::alloc_pages(
        Gfp(Gfp::HIGHUSER_MOVABLE.0 | Gfp::ZERO.0 | Gfp::NOWARN.0),
        0,
    )
    .ok_or(FaultError::Oom)?;
    // Charged to the task that first touches it (`shmem_add_to_page_cache`).
    if let Err(super::memcontrol::ChargeError::OverMax(g)) =
        super::memcontrol::charge(pfn, super::memcontrol::current_memcg())
    {
        page_alloc::free_pages(pfn, 0);
        return Err(FaultError::Charge(g));
    }
    if c.map(Pte::new(pfn.phys(), pte::PRESENT)).is_err() {
        page_alloc::free_pages(pfn, 0);
        return Err(FaultError::Oom);
    }
    set_page_shmem(pfn);
    page_alloc::with(|a| {
        let p = a.page_mut(pfn);
        p.mapping = id as usize;
        p.index = index;
    });
    SHMEM_PAGES.fetch_add(1, Ordering::Relaxed);
    drop(objs);
    // Shared memory is swap-backed: on the anon LRU, so reclaim can swap it.
    super::vmscan::lru_cache_add(pfn);
    Ok(pfn)
}

/// A page of object `id` read back from swap entry `entry` is the object's again: a shmem
/// page (not anonymous) at `index`, and the slot's claim on the swap entry goes.
fn claim_swapped(id: u64, index: u64, entry: SwpEntry, pfn: Pfn) {
    page_alloc::with(|a| {
        let p = a.page_mut(pfn);
        p.clear(mm_core::page::flags::PG_ANON);
        p.set(mm_core::page::flags::PG_SWAPBACKED);
        p.mapping = id as usize;
        p.index = index;
    });
    SHMEM_PAGES.fetch_add(1, Ordering::Relaxed);
    super::swapfile::swap_free(entry);
    super::swap_state::try_to_free_swap(pfn);
}

/// Reclaim's `shmem_writepage`: page `pfn` at `index` of object `id`, which is in the swap
/// cache under `entry` and no longer mapped, leaves the object; the slot holds `entry`
/// instead (one more user of the slot). False if the page is busy or moved.
pub fn swap_out_slot(id: u64, index: u64, pfn: Pfn, entry: SwpEntry) -> bool {
    let mut objs = OBJECTS.lock();
    let Some(obj) = find(&mut objs, id) else {
        return false;
    };
    if obj.ops.is_some() {
        return false;
    }
    // The object's, the swap cache's and reclaim's isolation reference.
    let idle = page_alloc::with(|a| {
        let p = a.page(pfn);
        p.refcount == 3 && p.mapcount < 0 && p.flags & mm_core::page::flags::PG_LOCKED == 0
    });
    if !idle {
        return false;
    }
    // The slot's entry is one more user of the swap slot.
    if !replace_page_slot(obj.root, index, pfn, || {
        super::swapfile::swap_duplicate(entry)
            .ok()
            .map(|()| swp_entry_to_pte(entry))
    }) {
        return false;
    }
    drop(objs);
    page_alloc::with(|a| a.page_mut(pfn).mapping = 0);
    page_gone(false, pfn);
    page_alloc::free_pages(pfn, 0);
    true
}

/// [`find_or_create_for_write`] and [`find_get_page`] may sleep: a swapped-out page is read
/// in here.
fn swap_in_blocking(entry: SwpEntry) -> Result<(), FaultError> {
    match super::swap_state::read_swap_cache_async(entry) {
        Ok(Some((pfn, _))) => {
            page_alloc::free_pages(pfn, 0);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(ENOMEM) => Err(FaultError::Oom),
        Err(_) => Err(FaultError::Sigbus),
    }
}

/// Mark in `out` (one byte per index from `first`) the pages object `id` holds.
pub fn resident(id: u64, first: u64, out: &mut [u8]) {
    let mut objs = OBJECTS.lock();
    let Some(obj) = find(&mut objs, id) else {
        return;
    };
    let end = (first + out.len() as u64).min(MAX_INDEX);
    if first >= end {
        return;
    }
    let mut pt = UserPt::default();
    let Ok(mut c) = Cursor::new(
        &mut pt,
        obj.root,
        VirtAddr::new(first << PAGE_SHIFT)..VirtAddr::new(end << PAGE_SHIFT),
    ) else {
        return;
    };
    while let Some((va, _)) = c.find_next() {
        out[((va.as_u64() >> PAGE_SHIFT) - first) as usize] = 1;
        c.move_forward();
    }
}

/// Drop one address space's hold on `obj`; the last frees its pages and tree.
fn put(objs: &mut Vec<ShmemObject>, id: u64) {
    let Ok(i) = objs.binary_search_by_key(&id, |o| o.id) else {
        return;
    };
    objs[i].refs -= 1;
    if objs[i].refs > 0 {
        return;
    }
    let obj = objs.remove(i);
    let file = obj.ops.is_some();
    let mut pt = UserPt::default();
    // Never loaded in CR3: nothing to flush, pages and tables are freed at `finish`.
    let mut tlb = MmuGather::new(false);
    if let Ok(mut c) = Cursor::new(&mut pt, obj.root, VirtAddr::new(0)..VirtAddr::new(USER_TOP)) {
        let _ = c.unmap(USER_TOP, &mut tlb, &mut |_, p| release_slot(file, p));
    }
    tlb.finish(&mut pt);
    page_alloc::free_pages(obj.root.pfn(), 0);
}

/// A forked address space maps the objects of `vmas`: one more hold on each (counted
/// once per object however many VMAs name it).
pub fn get_all(vmas: &mm_core::vma::VmaTree) {
    let epoch = EPOCH.fetch_add(1, Ordering::Relaxed);
    let mut objs = OBJECTS.lock();
    for v in vmas.iter() {
        if let Some(o) = id_of(v).and_then(|id| find(&mut objs, id)) {
            if o.seen != epoch {
                o.seen = epoch;
                o.refs += 1;
            }
        }
    }
}

/// An address space mapping `vmas` goes away (exit, exec, a failed fork): drop its hold
/// on each object they name. Allocates nothing, for the OOM victim's exit.
pub fn put_all(vmas: &mm_core::vma::VmaTree) {
    let seen = EPOCH.fetch_add(1, Ordering::Relaxed);
    let mut objs = OBJECTS.lock();
    for v in vmas.iter() {
        let Some(id) = id_of(v) else { continue };
        let Some(o) = find(&mut objs, id) else {
            continue;
        };
        if o.seen != seen {
            o.seen = seen;
            put(&mut objs, id);
        }
    }
}

/// `removed` left an address space whose remaining VMAs are `remaining`: drop its hold
/// on each object it no longer maps at all.
pub fn put_removed(remaining: &mm_core::vma::VmaTree, removed: &[Vma]) {
    if !removed.iter().any(|v| id_of(v).is_some()) {
        return;
    }
    let kept = EPOCH.fetch_add(1, Ordering::Relaxed);
    let seen = EPOCH.fetch_add(1, Ordering::Relaxed);
    let mut objs = OBJECTS.lock();
    for v in remaining.iter() {
        if let Some(o) = id_of(v).and_then(|id| find(&mut objs, id)) {
            o.kept = kept;
        }
    }
    for v in removed {
        let Some(id) = id_of(v) else { continue };
        let Some(o) = find(&mut objs, id) else {
            continue;
        };
        if o.kept != kept && o.seen != seen {
            o.seen = seen;
            put(&mut objs, id);
        }
    }
}
