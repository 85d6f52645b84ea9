//! The block layer (Linux's `block/`): block I/O requests ([`Bio`], a list of
//! [`BioVec`] page pieces), the [`BlockDevice`] interface drivers implement, splitting to
//! a device's queue limits (`bio_split_to_limits`), the synchronous wrapper
//! [`submit_bio_wait`], the disk registry (`vda`, `vdb`... in probe order) and per-disk
//! statistics in the fields of a /proc/diskstats line.
//!
//! Read-only disks: the block layer passes a write bio on, and the device fails it (EIO),
//! as recent Linux does after its "write to read-only block-device" warning; the file
//! interface refuses earlier, with EPERM (`fs/blockdev.rs`).
//!
//! Completion is asynchronous: a driver calls a bio's `end_io` when the device finished,
//! usually from its interrupt handler. `end_io` therefore runs in interrupt context: it
//! must not sleep, and it may take [`IrqLock`]s (an interrupt only arrives while this CPU
//! holds none).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::mm::PhysAddr;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, EIO};

/// Sector: the block layer's unit of addresses and sizes (`SECTOR_SIZE`).
pub const SECTOR_SIZE: u64 = 512;
pub const SECTOR_SHIFT: u32 = 9;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BioOp {
    Read,
    Write,
    /// Make earlier writes durable (`REQ_OP_FLUSH`; no data).
    Flush,
}

/// A piece of one page (`struct bio_vec`): the frame's physical address, an offset into
/// it and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BioVec {
    pub page: PhysAddr,
    pub offset: u32,
    pub len: u32,
}

/// Completion callback: the outcome of the whole bio.
pub type EndIo = Box<dyn FnOnce(Result<(), Errno>) + Send>;

/// A block I/O request (`struct bio`): `op` at `sector` over the memory in `vecs`, whose
/// total length is a multiple of the device's logical block size.
pub struct Bio {
    pub op: BioOp,
    pub sector: u64,
    pub vecs: Vec<BioVec>,
    pub end_io: Option<EndIo>,
}

impl Bio {
    pub fn new(op: BioOp, sector: u64) -> Bio {
        Bio {
            op,
            sector,
            vecs: Vec::new(),
            end_io: None,
        }
    }

    /// Bytes of data (`bi_size`).
    pub fn size(&self) -> u64 {
        self.vecs.iter().map(|v| v.len as u64).sum()
    }

    /// Complete the bio (`bio_endio`).
    pub fn endio(mut self, r: Result<(), Errno>) {
        if let Some(f) = self.end_io.take() {
            f(r);
        }
    }
}

/// What one device request may hold (`struct queue_limits`).
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Data segments per request (virtio's `seg_max`).
    pub max_segments: usize,
    /// Bytes per request (`max_hw_sectors` in bytes; virtio's `size_max` bounds a segment).
    pub max_bytes: u64,
    /// Bytes per segment.
    pub max_segment_size: u64,
}

/// The fields of one /proc/diskstats line (Linux 5.5+, `Documentation/admin-guide/
/// iostats.rst`); times in nanoseconds here, printed in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub read_ios: u64,
    pub read_merges: u64,
    pub read_sectors: u64,
    pub read_ns: u64,
    pub write_ios: u64,
    pub write_merges: u64,
    pub write_sectors: u64,
    pub write_ns: u64,
    pub in_flight: u64,
    pub io_ns: u64,
    pub time_in_queue_ns: u64,
    pub discard_ios: u64,
    pub discard_merges: u64,
    pub discard_sectors: u64,
    pub discard_ns: u64,
    pub flush_ios: u64,
    pub flush_ns: u64,
}

impl DiskStats {
    /// A request started.
    pub fn start(&mut self) {
        self.in_flight += 1;
    }

    /// A request of `op` over `sectors` finished after `ns` nanoseconds.
    pub fn done(&mut self, op: BioOp, sectors: u64, ns: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.io_ns += ns;
        self.time_in_queue_ns += ns;
        match op {
            BioOp::Read => {
                self.read_ios += 1;
                self.read_sectors += sectors;
                self.read_ns += ns;
            }
            BioOp::Write => {
                self.write_ios += 1;
                self.write_sectors += sectors;
                self.write_ns += ns;
            }
            BioOp::Flush => {
                self.flush_ios += 1;
                self.flush_ns += ns;
            }
        }
    }
}

/// A block device (`struct gendisk` with its `block_device_operations` and queue).
pub trait BlockDevice: Send + Sync {
    /// The disk's name: "vda".
    fn name(&self) -> &str;
    /// Size in 512-byte sectors.
    fn capacity_sectors(&self) -> u64;
    fn read_only(&self) -> bool;
    fn logical_block_size(&self) -> u32;
    /// Device number (major, minor) of the whole disk.
    fn devt(&self) -> (u32, u32);
    fn limits(&self) -> QueueLimits;
    /// Queue `bio` (any size: the device splits it to its limits); `end_io` runs when it
    /// is done, possibly in interrupt context. An `Err` means the bio was not queued and
    /// `end_io` will not run.
    fn submit_bio(&self, bio: Bio) -> Result<(), Errno>;
    /// Complete whatever the device finished, without waiting for its interrupt (for
    /// waits before interrupts are enabled).
    fn poll(&self) {}
    fn stats(&self) -> DiskStats;
}

/// Check `bio` against the device (`bio_check_eod`, the block-size alignment): EIO.
pub fn bio_check(dev: &dyn BlockDevice, bio: &Bio) -> Result<(), Errno> {
    if bio.op == BioOp::Flush {
        return Ok(());
    }
    let size = bio.size();
    let lbs = dev.logical_block_size() as u64;
    let start = bio.sector.checked_mul(SECTOR_SIZE).ok_or(EIO)?;
    if size == 0 || !size.is_multiple_of(lbs) || !start.is_multiple_of(lbs) {
        return Err(EIO);
    }
    let end = bio.sector.checked_add(size >> SECTOR_SHIFT).ok_or(EIO)?;
    if end > dev.capacity_sectors() {
        return Err(EIO);
    }
    Ok(())
}

/// Shared state of a bio split into pieces: the parent completes when the last piece
/// does, with the first error (`bio_chain`).
struct Chained {
    remaining: AtomicUsize,
    error: AtomicI32,
    end_io: IrqLock<Option<EndIo>>,
}

impl Chained {
    fn piece_done(&self, r: Result<(), Errno>) {
        if let Err(e) = r {
            let _ = self
                .error
                .compare_exchange(0, e.0, Ordering::AcqRel, Ordering::Acquire);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let f = self.end_io.lock().take();
            let e = self.error.load(Ordering::Acquire);
            if let Some(f) = f {
                f(if e == 0 { Ok(()) } else { Err(Errno(e)) });
            }
        }
    }
}

/// Split `bio` into bios within `lim` (`bio_split_to_limits`): each piece has at most
/// `max_segments` vecs, `max_segment_size` bytes per vec and `max_bytes` bytes, cut at
/// sector boundaries. The pieces share the parent's completion.
pub fn bio_split_to_limits(mut bio: Bio, lim: &QueueLimits) -> Vec<Bio> {
    let max_bytes = (lim.max_bytes & !(SECTOR_SIZE - 1)).max(SECTOR_SIZE);
    let max_seg = lim.max_segment_size.max(SECTOR_SIZE);
    let max_segs = lim.max_segments.max(1);
    let fits = bio.vecs.len() <= max_segs
        && bio.size() <= max_bytes
        && bio.vecs.iter().all(|v| v.len as u64 <= max_seg);
    if bio.op == BioOp::Flush || fits {
        return alloc::vec![bio];
    }
    let mut pieces: Vec<Bio> = Vec::new();
    let mut cur = Bio::new(bio.op, bio.sector);
    let mut cur_bytes = 0u64;
    let mut sector = bio.sector;
    for v in core::mem::take(&mut bio.vecs) {
        let mut v = v;
        while v.len > 0 {
            if cur.vecs.len() == max_segs || cur_bytes == max_bytes {
                // Close the piece at a sector boundary: carry a partial sector over.
                let tail = cur_bytes % SECTOR_SIZE;
                let mut carry = Vec::new();
                let mut t = tail;
                while t > 0 {
                    let Some(mut last) = cur.vecs.pop() else {
                        break;
                    };
                    if last.len as u64 <= t {
                        t -= last.len as u64;
                        carry.insert(0, last);
                    } else {
                        let keep = last.len - t as u32;
                        carry.insert(
                            0,
                            BioVec {
                                page: last.page,
                                offset: last.offset + keep,
                                len: t as u32,
                            },
                        );
                        last.len = keep;
                        cur.vecs.push(last);
                        t = 0;
                    }
                }
                cur_bytes -= tail;
                sector += cur_bytes >> SECTOR_SHIFT;
                pieces.push(core::mem::replace(&mut cur, Bio::new(bio.op, sector)));
                cur_bytes = carry.iter().map(|c| c.len as u64).sum();
                cur.vecs = carry;
            }
            let room = (max_bytes - cur_bytes).min(max_seg);
            let n = (v.len as u64).min(room) as u32;
            cur.vecs.push(BioVec {
                page: v.page,
                offset: v.offset,
                len: n,
            });
            cur_bytes += n as u64;
            v.offset += n;
            v.len -= n;
        }
    }
    if !cur.vecs.is_empty() {
        pieces.push(cur);
    }
    let chain = Arc::new(Chained {
        remaining: AtomicUsize::new(pieces.len()),
        error: AtomicI32::new(0),
        end_io: IrqLock::new("bio_chain", bio.end_io.take()),
    });
    for p in &mut pieces {
        let c = chain.clone();
        p.end_io = Some(Box::new(move |r| c.piece_done(r)));
    }
    pieces
}

/// Queue `bio` on `dev` (`submit_bio`).
pub fn submit_bio(dev: &dyn BlockDevice, bio: Bio) -> Result<(), Errno> {
    bio_check(dev, &bio)?;
    dev.submit_bio(bio)
}

/// One waiter's completion (`struct completion`).
struct Completion {
    done: AtomicBool,
    result: AtomicI32,
    waiter: Option<&'static crate::proc::Task>,
}

/// Bios submitted through [`submit_bio_wait`] and not yet completed: an idle CPU with
/// such I/O outstanding is waiting for a disk, not hung.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Whether some task waits for disk I/O.
pub fn io_waiting() -> bool {
    WAITING.load(Ordering::Relaxed) != 0
}

/// Submit `bio` and wait for it (`submit_bio_wait`): the current task sleeps in state D
/// until the interrupt completes it; without a current task (boot, before the scheduler)
/// the device is polled.
pub fn submit_bio_wait(dev: &dyn BlockDevice, mut bio: Bio) -> Result<(), Errno> {
    let c = Arc::new(Completion {
        done: AtomicBool::new(false),
        result: AtomicI32::new(0),
        waiter: crate::proc::current(),
    });
    let c2 = c.clone();
    bio.end_io = Some(Box::new(move |r| {
        c2.result
            .store(r.err().map_or(0, |e| e.0), Ordering::Release);
        c2.done.store(true, Ordering::Release);
        if let Some(t) = c2.waiter {
            crate::proc::sched::wake_uninterruptible(t);
        }
    }));
    WAITING.fetch_add(1, Ordering::Relaxed);
    let r = submit_bio(dev, bio);
    if r.is_ok() {
        while !c.done.load(Ordering::Acquire) {
            match c.waiter {
                Some(t) => {
                    t.state
                        .store(crate::proc::state::DISK_SLEEP, Ordering::Release);
                    // Completed meanwhile (a polled device)? Then do not sleep.
                    if c.done.load(Ordering::Acquire) {
                        t.state
                            .store(crate::proc::state::RUNNABLE, Ordering::Release);
                        break;
                    }
                    crate::proc::sched::schedule();
                }
                None => {
                    dev.poll();
                    core::hint::spin_loop();
                }
            }
        }
    }
    WAITING.fetch_sub(1, Ordering::Relaxed);
    r?;
    match c.result.load(Ordering::Acquire) {
        0 => Ok(()),
        e => Err(Errno(e)),
    }
}

static DISKS: IrqLock<Vec<Arc<dyn BlockDevice>>> = IrqLock::new("disks", Vec::new());

/// Make a probed disk known by its name (`add_disk`).
pub fn register_disk(dev: Arc<dyn BlockDevice>) {
    DISKS.lock().push(dev);
}

/// The disk called `name`.
pub fn disk(name: &str) -> Option<Arc<dyn BlockDevice>> {
    DISKS.lock().iter().find(|d| d.name() == name).cloned()
}

/// Every disk, in probe order.
pub fn disks() -> Vec<Arc<dyn BlockDevice>> {
    DISKS.lock().clone()
}

/// The name of the `index`th virtio disk: vda..vdz, then vdaa... (`virtblk_name_format`).
pub fn disk_name(prefix: &str, index: usize) -> String {
    let mut suffix = Vec::new();
    let mut i = index as i64;
    loop {
        suffix.insert(0, b'a' + (i % 26) as u8);
        i = i / 26 - 1;
        if i < 0 {
            break;
        }
    }
    let mut s = String::from(prefix);
    s.push_str(core::str::from_utf8(&suffix).unwrap_or("?"));
    s
}

/// /proc/diskstats: one line per disk in Linux's format (`diskstats_show`).
pub fn write_diskstats(out: &mut String) {
    use core::fmt::Write;
    let ms = |ns: u64| ns / 1_000_000;
    for d in disks() {
        let s = d.stats();
        let (major, minor) = d.devt();
        let _ = writeln!(
            out,
            "{:4} {:7} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
            major,
            minor,
            d.name(),
            s.read_ios,
            s.read_merges,
            s.read_sectors,
            ms(s.read_ns),
            s.write_ios,
            s.write_merges,
            s.write_sectors,
            ms(s.write_ns),
            s.in_flight,
            ms(s.io_ns),
            ms(s.time_in_queue_ns),
            s.discard_ios,
            s.discard_merges,
            s.discard_sectors,
            ms(s.discard_ns),
            s.flush_ios,
            ms(s.flush_ns)
        );
    }
}
