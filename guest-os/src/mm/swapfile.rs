//! Swap areas (`mm/swapfile.c`): block devices formatted by `mkswap`, each with a
//! `swap_map` of per-slot use counts ([`mm_core::swap::SwapMap`]), enabled by `swapon`
//! (at boot for every disk that carries a swap signature, as a distribution's
//! `swapon -a` does, or by the system call) and emptied by `swapoff`, which brings every
//! page back into memory first (`try_to_unuse`).
//!
//! A slot's count is the number of swap entries in page tables (and shmem objects) that
//! name it, plus `SWAP_HAS_CACHE` while a page for it is in the swap cache
//! ([`super::swap_state`]). Page I/O goes through the block layer, one page per bio at
//! sector `offset * 8`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::swap::{parse_swap_header, SwapMap, SwpEntry, MAX_SWAPFILES};

use super::addr::{Pfn, PAGE_SIZE};
use crate::block::{self, Bio, BioOp, BioVec, BlockDevice, SECTOR_SIZE};
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, EBUSY, EINVAL, EIO, ENOMEM, EPERM};

/// Sectors per page.
const SECTORS_PER_PAGE: u64 = PAGE_SIZE / SECTOR_SIZE as u64;
/// KiB per page, for /proc/swaps and the swapon message.
const PAGE_KB: u64 = PAGE_SIZE / 1024;

/// One enabled swap area (`struct swap_info_struct`).
pub struct SwapInfo {
    pub dev: Arc<dyn BlockDevice>,
    /// `/dev/NAME`, as /proc/swaps prints it.
    pub path: String,
    /// Higher first; areas without a priority get -2, -3, ... (`least_priority`).
    pub prio: i32,
    pub map: SwapMap,
    /// `swapoff` is bringing its pages back: no new slots come from it.
    pub draining: bool,
    /// The memory cgroup each slot is charged to (`swap_cgroup`), 0 for none.
    owners: Vec<u16>,
}

impl SwapInfo {
    /// Usable slots (`si->pages`): the area less its header page and bad pages.
    pub fn pages(&self) -> u64 {
        self.map.usable_pages()
    }
}

/// Swap areas by type (the index in a swap entry).
static SWAP_INFO: IrqLock<Vec<Option<SwapInfo>>> = IrqLock::new("swap_info", Vec::new());
/// The priority the next area without one gets (`least_priority`, counting down from -1).
static LEAST_PRIORITY: IrqLock<i32> = IrqLock::new("swap_prio", -1);
/// `/proc/vmstat` pswpin / pswpout: pages read from and written to swap.
pub static PSWPIN: AtomicU64 = AtomicU64::new(0);
pub static PSWPOUT: AtomicU64 = AtomicU64::new(0);
/// Usable swap pages in the enabled areas and how many are free (`si_swapinfo`;
/// Linux's `total_swap_pages`, `nr_swap_pages`). An area being swapped off no longer
/// counts, as in Linux. At most [`MAX_SWAPFILES`] areas: summed when asked.
pub fn si_swapinfo() -> (u64, u64) {
    let mut total = 0;
    let mut free = 0;
    for s in SWAP_INFO.lock().iter().flatten() {
        if !s.draining {
            total += s.pages();
            free += s.pages() - s.map.inuse_pages();
        }
    }
    (total, free)
}

/// Whether any swap slot is free (`get_nr_swap_pages() > 0`): reclaim scans anonymous
/// pages only then.
pub fn has_free_swap() -> bool {
    si_swapinfo().1 > 0
}

/// The device and sector of `entry`'s slot.
fn locate(entry: SwpEntry) -> Option<(Arc<dyn BlockDevice>, u64)> {
    let si = SWAP_INFO.lock();
    let s = si.get(entry.type_())?.as_ref()?;
    Some((s.dev.clone(), entry.offset() * SECTORS_PER_PAGE))
}

/// One page of I/O between frame `pfn` and `entry`'s slot, waiting for it.
fn page_io(op: BioOp, pfn: Pfn, entry: SwpEntry) -> Result<(), Errno> {
    let (dev, sector) = locate(entry).ok_or(EIO)?;
    let mut bio = Bio::new(op, sector);
    bio.vecs.try_reserve(1).map_err(|_| ENOMEM)?;
    bio.vecs.push(BioVec {
        page: pfn.phys(),
        offset: 0,
        len: PAGE_SIZE as u32,
    });
    block::submit_bio_wait(&*dev, bio)
}

/// Pages one swap request carries at most (a run of consecutive slots).
const SWAP_BATCH_PAGES: usize = 32;

/// Transfer `pages` (frame, slot) between memory and swap, one request per run of
/// consecutive slots of one area (Linux plugs the block queue so that `swap_writepage`s
/// of neighbouring slots merge; readahead reads a cluster in one go). Returns whether
/// each page's transfer succeeded.
pub fn swap_io_batch(op: BioOp, pages: &[(Pfn, SwpEntry)]) -> Vec<bool> {
    let mut ok = Vec::new();
    if ok.try_reserve(pages.len()).is_err() {
        // No memory for the bookkeeping: one page at a time.
        return pages
            .iter()
            .map(|&(pfn, e)| page_io(op, pfn, e).is_ok())
            .collect();
    }
    let mut i = 0;
    while i < pages.len() {
        let mut j = i + 1;
        while j < pages.len()
            && j - i < SWAP_BATCH_PAGES
            && pages[j].1.type_() == pages[i].1.type_()
            && pages[j].1.offset() == pages[j - 1].1.offset() + 1
        {
            j += 1;
        }
        let r = run_io(op, &pages[i..j]);
        for _ in i..j {
            ok.push(r.is_ok());
        }
        i = j;
    }
    let n = ok.iter().filter(|&&b| b).count() as u64;
    match op {
        BioOp::Read => PSWPIN.fetch_add(n, Ordering::Relaxed),
        _ => PSWPOUT.fetch_add(n, Ordering::Relaxed),
    };
    ok
}

/// One request for a run of consecutive slots.
fn run_io(op: BioOp, run: &[(Pfn, SwpEntry)]) -> Result<(), Errno> {
    let (dev, sector) = locate(run[0].1).ok_or(EIO)?;
    let mut bio = Bio::new(op, sector);
    bio.vecs.try_reserve(run.len()).map_err(|_| ENOMEM)?;
    for &(pfn, _) in run {
        bio.vecs.push(BioVec {
            page: pfn.phys(),
            offset: 0,
            len: PAGE_SIZE as u32,
        });
    }
    block::submit_bio_wait(&*dev, bio)
}

/// [`swap_io_batch`] for writes (reclaim's pageout).
pub fn swap_write_batch(pages: &[(Pfn, SwpEntry)]) -> Vec<bool> {
    swap_io_batch(BioOp::Write, pages)
}

/// A free slot from the highest-priority area that has one (`get_swap_page`), with
/// `SWAP_HAS_CACHE` set and no users yet: the caller adds its page to the swap cache.
pub fn get_swap_page() -> Option<SwpEntry> {
    let mut si = SWAP_INFO.lock();
    // Areas by falling priority (ties: the earlier area), without allocating: at most
    // MAX_SWAPFILES passes, each picking the best area not yet tried.
    let mut tried = 0u64;
    loop {
        let best = si
            .iter()
            .enumerate()
            .filter(|(t, s)| tried & (1 << t) == 0 && s.as_ref().is_some_and(|s| !s.draining))
            .max_by(|(ta, a), (tb, b)| {
                let (pa, pb) = (
                    a.as_ref().map_or(0, |s| s.prio),
                    b.as_ref().map_or(0, |s| s.prio),
                );
                pa.cmp(&pb).then(tb.cmp(ta))
            })
            .map(|(t, _)| t)?;
        tried |= 1 << best;
        if let Some(off) = si[best].as_mut().and_then(|s| s.map.alloc()) {
            return Some(SwpEntry::new(best, off));
        }
    }
}

/// Run `f` on `entry`'s area, if the entry names an enabled area and a slot inside it. A
/// slot that `f` leaves free gives its memory cgroup's swap charge back.
fn with_map<R>(entry: SwpEntry, f: impl FnOnce(&mut SwapMap) -> R) -> Option<R> {
    let (r, owner) = {
        let mut si = SWAP_INFO.lock();
        let s = si.get_mut(entry.type_())?.as_mut()?;
        let off = entry.offset();
        if off == 0 || off >= s.map.max() {
            return None;
        }
        let r = f(&mut s.map);
        let owner = if s.map.is_free(off) {
            core::mem::take(&mut s.owners[off as usize])
        } else {
            0
        };
        (r, owner)
    };
    if owner != 0 {
        super::memcontrol::uncharge_swap(owner, 1);
    }
    Some(r)
}

/// Charge `entry`'s slot to memory cgroup `memcg` (`mem_cgroup_try_charge_swap`): false
/// if the group is at its memory.swap.max.
pub fn charge_swap_slot(entry: SwpEntry, memcg: u16) -> bool {
    if memcg == super::memcontrol::NO_MEMCG {
        return true;
    }
    let memcg = super::memcontrol::online_or_ancestor(memcg);
    if super::memcontrol::charge_swap(memcg, 1).is_err() {
        return false;
    }
    let mut si = SWAP_INFO.lock();
    if let Some(o) = si
        .get_mut(entry.type_())
        .and_then(|s| s.as_mut())
        .and_then(|s| s.owners.get_mut(entry.offset() as usize))
    {
        *o = memcg;
    }
    true
}

/// One more swap entry names `entry`'s slot (`swap_duplicate`: fork copied it).
pub fn swap_duplicate(entry: SwpEntry) -> Result<(), Errno> {
    match with_map(entry, |m| m.duplicate(entry.offset())) {
        Some(Ok(())) => Ok(()),
        // A full count has no continuation page to grow into (Linux allocates one).
        Some(Err(_)) => Err(ENOMEM),
        None => {
            log::error!("swap_dup: Bad swap file entry {:#x}", entry.0);
            Err(EINVAL)
        }
    }
}

/// One swap entry naming `entry`'s slot is gone (`swap_free`). Returns the slot's map byte
/// afterwards (0: free; `SWAP_HAS_CACHE` alone: only the swap cache still holds it).
pub fn swap_free(entry: SwpEntry) -> u8 {
    match with_map(entry, |m| m.free(entry.offset())) {
        Some(left) => left,
        None => {
            log::error!("swap_free: Bad swap file entry {:#x}", entry.0);
            0
        }
    }
}

/// Claim `entry`'s slot for a page about to enter the swap cache (`swapcache_prepare`):
/// `Ok(true)` if claimed, `Ok(false)` if a page for it is already cached (or being read).
pub fn swapcache_prepare(entry: SwpEntry) -> Result<bool, Errno> {
    match with_map(entry, |m| m.swapcache_prepare(entry.offset())) {
        Some(Ok(())) => Ok(true),
        Some(Err(mm_core::swap::SwapMapError::Exists)) => Ok(false),
        Some(Err(_)) | None => Err(EINVAL),
    }
}

/// The swap cache let go of `entry`'s slot (`put_swap_folio`).
pub fn put_swap_cache(entry: SwpEntry) {
    with_map(entry, |m| m.put_cache(entry.offset()));
}

/// Swap entries naming `entry`'s slot (`__swap_count`), without the cache.
pub fn swap_count(entry: SwpEntry) -> u8 {
    with_map(entry, |m| m.count(entry.offset())).unwrap_or(0)
}

/// Whether the areas are more than half full (`vm_swap_full`): a page read back from swap
/// then gives up its slot at once instead of keeping a clean copy there.
pub fn vm_swap_full() -> bool {
    let (total, free) = si_swapinfo();
    free * 2 < total
}

/// Enable the swap area on `dev` (`sys_swapon`): read and check its header, build its map.
/// `prio`: `None` for the next automatic priority.
pub fn swapon(dev: Arc<dyn BlockDevice>, prio: Option<i32>) -> Result<usize, Errno> {
    let path = alloc::format!("/dev/{}", dev.name());
    if area_of(dev.name().as_bytes()).is_some() {
        return Err(EBUSY);
    }
    let page = crate::fs::ext2::first_page(&dev).ok_or(EIO)?;
    let header = parse_swap_header(&page);
    let header = match header {
        Ok(h) => h,
        Err(e) => {
            log::warn!("Unable to find swap-space signature on {path}: {e:?}");
            return Err(EINVAL);
        }
    };
    swapon_with_header(dev, header, prio)
}

/// [`swapon`] with the header already read (the boot's look at each disk read it).
pub fn swapon_with_header(
    dev: Arc<dyn BlockDevice>,
    header: mm_core::swap::SwapHeader,
    prio: Option<i32>,
) -> Result<usize, Errno> {
    let path = alloc::format!("/dev/{}", dev.name());
    if SWAP_INFO
        .lock()
        .iter()
        .flatten()
        .any(|s| s.dev.name() == dev.name())
    {
        return Err(EBUSY);
    }
    if dev.read_only() {
        return Err(EPERM);
    }
    let device_pages = dev.capacity_sectors() / SECTORS_PER_PAGE;
    let maxpages = header.max_pages(device_pages);
    if maxpages < 2 {
        log::warn!("Empty swap-file {path}");
        return Err(EINVAL);
    }
    let map = SwapMap::try_new(maxpages, &header.badpages).map_err(|_| ENOMEM)?;
    let prio = match prio {
        Some(p) => p,
        None => {
            let mut l = LEAST_PRIORITY.lock();
            *l -= 1;
            *l
        }
    };
    let mut owners = Vec::new();
    owners
        .try_reserve_exact(maxpages as usize)
        .map_err(|_| ENOMEM)?;
    owners.resize(maxpages as usize, 0);
    let info = SwapInfo {
        dev,
        path: path.clone(),
        prio,
        map,
        draining: false,
        owners,
    };
    let pages = info.pages();
    let mut si = SWAP_INFO.lock();
    let t = match si.iter().position(|s| s.is_none()) {
        Some(t) => t,
        None if si.len() < MAX_SWAPFILES => {
            si.try_reserve(1).map_err(|_| ENOMEM)?;
            si.push(None);
            si.len() - 1
        }
        None => return Err(EPERM),
    };
    drop(si);
    // The swap cache's array for the area, before any slot can be used.
    super::swap_state::add_area(t, maxpages)?;
    let mut si = SWAP_INFO.lock();
    si[t] = Some(info);
    drop(si);
    log::info!(
        "Adding {}k swap on {}.  Priority:{} extents:1 across:{}k ",
        pages * PAGE_KB,
        path,
        prio,
        (maxpages - 1) * PAGE_KB,
    );
    Ok(t)
}

/// Disable swap area `t` (`sys_swapoff`): every page it holds comes back into memory
/// first (`try_to_unuse`); without the memory for that, ENOMEM and the area stays on.
pub fn swapoff(t: usize) -> Result<(), Errno> {
    {
        let mut si = SWAP_INFO.lock();
        let s = si.get_mut(t).and_then(|s| s.as_mut()).ok_or(EINVAL)?;
        if s.draining {
            return Err(EBUSY);
        }
        s.draining = true;
    }
    if let Err(e) = super::swap_state::try_to_unuse(t) {
        if let Some(s) = SWAP_INFO.lock().get_mut(t).and_then(|s| s.as_mut()) {
            s.draining = false;
        }
        return Err(e);
    }
    SWAP_INFO.lock().get_mut(t).and_then(|s| s.take());
    super::swap_state::remove_area(t);
    Ok(())
}

/// Run `f` on area `t`.
pub fn with_area<R>(t: usize, f: impl FnOnce(&mut SwapInfo) -> R) -> Option<R> {
    SWAP_INFO.lock().get_mut(t).and_then(|s| s.as_mut()).map(f)
}

/// The type of the area on the device named `name` (`/dev/vdb` or `vdb`).
pub fn area_of(name: &[u8]) -> Option<usize> {
    let name = name.strip_prefix(b"/dev/").unwrap_or(name);
    SWAP_INFO
        .lock()
        .iter()
        .position(|s| s.as_ref().is_some_and(|s| s.dev.name().as_bytes() == name))
}

/// `/proc/swaps` (`swap_show`): Linux's header and columns; sizes in KiB.
pub fn proc_swaps() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority");
    for a in SWAP_INFO.lock().iter().flatten() {
        let size = a.pages() * PAGE_KB;
        let used = a.map.inuse_pages() * PAGE_KB;
        let pad = if a.path.len() < 40 {
            40 - a.path.len()
        } else {
            1
        };
        let _ = writeln!(
            s,
            "{}{:pad$}partition\t{}\t{}{}\t{}{}",
            a.path,
            "",
            size,
            if size < 10_000_000 { "\t" } else { "" },
            used,
            if used < 10_000_000 { "\t" } else { "" },
            a.prio,
            pad = pad
        );
    }
    s
}
