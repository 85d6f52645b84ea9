//! virtio-blk over the modern PCI transport (virtio 1.1, 5.2), Linux's `virtio_blk.c` in
//! small: one request queue, requests of a header, the data pages and a status byte,
//! completion from the INTx interrupt (PCI pin A through the PIIX3's PIRQ routing to the
//! 8259, ExtINT on LINT0). Before interrupts are usable a waiter polls the used ring
//! ([`crate::block::BlockDevice::poll`]).
//!
//! Disks are named vda, vdb... in PCI order and registered with the block layer.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::pci::{self, PciDev};
use super::virtio::{Buf, SplitQueue, VirtioPci, VIRTIO_F_VERSION_1};
use crate::arch::x86_64::idt::TrapFrame;
use crate::block::{self, Bio, BioOp, BlockDevice, DiskStats, QueueLimits, SECTOR_SIZE};
use crate::mm::page_alloc;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, EIO};
use mm_core::addr::Pfn;
use mm_core::gfp::Gfp;

const VIRTIO_VENDOR: u16 = 0x1af4;
/// Transitional (0x1001) and modern (0x1040 + 2) virtio-blk device IDs.
const DEVICE_BLK_TRANSITIONAL: u16 = 0x1001;
const DEVICE_BLK_MODERN: u16 = 0x1042;

/// Feature bits (5.2.3).
const VIRTIO_BLK_F_SIZE_MAX: u64 = 1 << 1;
const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
const WANTED_FEATURES: u64 = VIRTIO_F_VERSION_1
    | VIRTIO_BLK_F_SIZE_MAX
    | VIRTIO_BLK_F_SEG_MAX
    | VIRTIO_BLK_F_RO
    | VIRTIO_BLK_F_BLK_SIZE
    | VIRTIO_BLK_F_FLUSH;

/// `struct virtio_blk_config` offsets.
const CFG_CAPACITY: u64 = 0x00;
const CFG_SIZE_MAX: u64 = 0x08;
const CFG_SEG_MAX: u64 = 0x0c;
const CFG_BLK_SIZE: u64 = 0x14;

/// ISR bits (4.1.4.5) and the device status bit of a failed device.
const ISR_QUEUE: u8 = 1;
const ISR_CONFIG: u8 = 2;
use super::virtio::STATUS_NEEDS_RESET;

/// Request types and status (5.2.6).
const VIRTIO_BLK_T_IN: u32 = 0;
const VIRTIO_BLK_T_OUT: u32 = 1;
const VIRTIO_BLK_T_FLUSH: u32 = 4;
const VIRTIO_BLK_S_OK: u8 = 0;
/// Size of the request header (type, reserved, sector).
const OUTHDR_SIZE: u64 = 16;

/// Largest queue the driver sets up (QEMU's and vmscope's size).
const MAX_QUEUE_SIZE: u16 = 256;
/// The major number Linux's virtio_blk gets from `register_blkdev(0, ...)` on a
/// machine with no other dynamic block majors, and minors per disk (partitions).
pub const VIRTBLK_MAJOR: u32 = 252;
const PART_BITS: u32 = 4;
/// Largest request the driver builds when the device sets no `size_max` (Linux's
/// default `max_hw_sectors`, 1 MiB here).
const DEFAULT_MAX_BYTES: u64 = 1 << 20;
const PAGE: u64 = 4096;

struct Request {
    bio: Bio,
    sectors: u64,
    start_ns: u64,
}

struct Inner {
    vq: SplitQueue,
    /// In-flight requests by head descriptor.
    slots: Vec<Option<Request>>,
    /// Bios waiting for descriptors.
    pending: VecDeque<Bio>,
    /// The device failed (DEVICE_NEEDS_RESET): new bios fail at once.
    dead: bool,
    stats: DiskStats,
}

/// One disk.
pub struct VirtioBlk {
    name: String,
    index: usize,
    transport: VirtioPci,
    irq: u8,
    capacity: u64,
    read_only: bool,
    flush: bool,
    blk_size: u32,
    limits: QueueLimits,
    /// Request headers (16 bytes per head) and status bytes (one per head) in DMA frames.
    dma: Pfn,
    status_off: u64,
    inner: IrqLock<Inner>,
}

/// The probed disks, for the interrupt handler (never freed: disks are not hot-unplugged).
static DEVICES: IrqLock<Vec<&'static VirtioBlk>> = IrqLock::new("virtio_blk_devs", Vec::new());

impl VirtioBlk {
    fn hdr_pa(&self, head: u16) -> u64 {
        self.dma.as_u64() * PAGE + OUTHDR_SIZE * head as u64
    }
    fn status_pa(&self, head: u16) -> u64 {
        self.dma.as_u64() * PAGE + self.status_off + head as u64
    }
    fn dma_va(&self, pa: u64) -> *mut u8 {
        (page_alloc::page_address(self.dma).as_u64() + (pa - self.dma.as_u64() * PAGE)) as *mut u8
    }

    /// Put `bio` (within the limits) on the ring if descriptors allow; else give it back.
    fn queue_one(&self, inner: &mut Inner, bio: Bio) -> Result<(), Bio> {
        let data = bio.vecs.len();
        if inner.vq.num_free() < data + 2 {
            return Err(bio);
        }
        let mut bufs = Vec::with_capacity(data + 2);
        bufs.push(Buf {
            addr: 0, // the header's address depends on the head: patched below
            len: OUTHDR_SIZE as u32,
            write: false,
        });
        let dev_writes = bio.op == BioOp::Read;
        for v in &bio.vecs {
            bufs.push(Buf {
                addr: v.page.as_u64() + v.offset as u64,
                len: v.len,
                write: dev_writes,
            });
        }
        bufs.push(Buf {
            addr: 0,
            len: 1,
            write: true,
        });
        // Heads come off the free list's top: peek which one `add` will use.
        let Some(head) = inner.vq.peek_head() else {
            return Err(bio);
        };
        let last = bufs.len() - 1;
        bufs[0].addr = self.hdr_pa(head);
        bufs[last].addr = self.status_pa(head);
        let req_type = match bio.op {
            BioOp::Read => VIRTIO_BLK_T_IN,
            BioOp::Write => VIRTIO_BLK_T_OUT,
            BioOp::Flush => VIRTIO_BLK_T_FLUSH,
        };
        let sector = if bio.op == BioOp::Flush {
            0
        } else {
            bio.sector
        };
        // SAFETY: the header and status bytes of `head` are this driver's DMA memory,
        // unused while `head` is free.
        unsafe {
            let h = self.dma_va(self.hdr_pa(head));
            core::ptr::write_volatile(h as *mut u32, req_type);
            core::ptr::write_volatile(h.add(4) as *mut u32, 0);
            core::ptr::write_volatile(h.add(8) as *mut u64, sector);
            core::ptr::write_volatile(self.dma_va(self.status_pa(head)), 0xff);
        }
        let added = inner.vq.add(&bufs);
        debug_assert_eq!(added, Some(head));
        let sectors = bio.size() / SECTOR_SIZE;
        inner.stats.start();
        inner.slots[head as usize] = Some(Request {
            bio,
            sectors,
            start_ns: crate::proc::timer::now_ns(),
        });
        Ok(())
    }

    /// Collect finished requests, start waiting ones, then run the completions.
    fn complete(&self) {
        let mut done: Vec<(Bio, Result<(), Errno>)> = Vec::new();
        {
            let mut inner = self.inner.lock();
            let now = crate::proc::timer::now_ns();
            while let Some((head, _len)) = inner.vq.pop_used() {
                let Some(req) = inner.slots.get_mut(head as usize).and_then(|s| s.take()) else {
                    log::warn!("{}: device returned unknown request {head}", self.name);
                    continue;
                };
                inner.vq.free_chain(head);
                // SAFETY: the status byte of a completed request.
                let st = unsafe { core::ptr::read_volatile(self.dma_va(self.status_pa(head))) };
                let r = if st == VIRTIO_BLK_S_OK {
                    Ok(())
                } else {
                    Err(EIO)
                };
                let op = req.bio.op;
                inner
                    .stats
                    .done(op, req.sectors, now.saturating_sub(req.start_ns));
                done.push((req.bio, r));
            }
            let mut kicked = false;
            while let Some(bio) = inner.pending.pop_front() {
                match self.queue_one(&mut inner, bio) {
                    Ok(()) => kicked = true,
                    Err(bio) => {
                        inner.pending.push_front(bio);
                        break;
                    }
                }
            }
            if kicked {
                self.transport.notify(&inner.vq);
            }
        }
        for (bio, r) in done {
            if r.is_err() {
                log::info!(
                    "{}: I/O error, sector {} op {:?}",
                    self.name,
                    bio.sector,
                    bio.op
                );
            }
            bio.endio(r);
        }
    }
}

impl VirtioBlk {
    /// The device gave up (DEVICE_NEEDS_RESET): nothing in flight will complete, so every
    /// request fails with EIO rather than leaving its waiter asleep forever. The disk stays
    /// dead (no reset and re-initialisation yet).
    fn fail_all(&self) {
        let mut failed: Vec<Bio> = Vec::new();
        let was_dead;
        {
            let mut inner = self.inner.lock();
            was_dead = core::mem::replace(&mut inner.dead, true);
            for s in inner.slots.iter_mut() {
                if let Some(req) = s.take() {
                    failed.push(req.bio);
                }
            }
            inner.stats.in_flight = 0;
            failed.extend(inner.pending.drain(..));
        }
        if !was_dead {
            log::error!("{}: device needs reset; failing its I/O", self.name);
        }
        for bio in failed {
            bio.endio(Err(EIO));
        }
    }
}

/// The block-layer face of a disk.
struct Disk(&'static VirtioBlk);

impl BlockDevice for Disk {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn capacity_sectors(&self) -> u64 {
        self.0.capacity
    }
    fn read_only(&self) -> bool {
        self.0.read_only
    }
    fn logical_block_size(&self) -> u32 {
        self.0.blk_size
    }
    fn devt(&self) -> (u32, u32) {
        (VIRTBLK_MAJOR, (self.0.index as u32) << PART_BITS)
    }
    fn limits(&self) -> QueueLimits {
        self.0.limits
    }
    fn submit_bio(&self, bio: Bio) -> Result<(), Errno> {
        let d = self.0;
        if bio.op == BioOp::Flush && !d.flush {
            // No volatile cache to flush (Linux completes the flush at once).
            bio.endio(Ok(()));
            return Ok(());
        }
        if d.inner.lock().dead {
            bio.endio(Err(EIO));
            return Ok(());
        }
        let pieces = block::bio_split_to_limits(bio, &d.limits);
        let mut inner = d.inner.lock();
        let mut kicked = false;
        for p in pieces {
            if !inner.pending.is_empty() {
                inner.pending.push_back(p);
                continue;
            }
            match d.queue_one(&mut inner, p) {
                Ok(()) => kicked = true,
                Err(p) => inner.pending.push_back(p),
            }
        }
        if kicked {
            d.transport.notify(&inner.vq);
        }
        Ok(())
    }
    fn poll(&self) {
        self.0.complete();
        if self.0.transport.status() & STATUS_NEEDS_RESET != 0 {
            self.0.fail_all();
        }
    }
    fn stats(&self) -> DiskStats {
        self.0.inner.lock().stats
    }
}

/// Interrupt from the 8259 line of one or more disks (shared lines are ORed): read each
/// disk's ISR (which lowers its INTx) and complete its requests, then end the interrupt.
fn virtblk_interrupt(frame: &mut TrapFrame) {
    let irq = (frame.vector as u8).wrapping_sub(crate::drivers::pic::MASTER_VECTOR);
    let mut mine: [Option<&'static VirtioBlk>; 32] = [None; 32];
    {
        let devs = DEVICES.lock();
        for (slot, d) in mine.iter_mut().zip(devs.iter().filter(|d| d.irq == irq)) {
            *slot = Some(*d);
        }
    }
    for d in mine.iter().flatten() {
        let isr = d.transport.read_isr();
        if isr & ISR_QUEUE != 0 {
            d.complete();
        }
        if isr & ISR_CONFIG != 0 && d.transport.status() & STATUS_NEEDS_RESET != 0 {
            d.fail_all();
        }
    }
    crate::drivers::pic::eoi(irq);
}

fn probe_one(dev: &PciDev, index: usize) -> Result<&'static VirtioBlk, super::virtio::ProbeError> {
    use super::virtio::ProbeError;
    dev.enable(true);
    let t = VirtioPci::new(dev)?;
    let features = t.negotiate(WANTED_FEATURES)?;
    let vq = t.setup_queue(0, MAX_QUEUE_SIZE)?;
    let qsize = vq.size;
    let capacity =
        t.device.read32(CFG_CAPACITY) as u64 | (t.device.read32(CFG_CAPACITY + 4) as u64) << 32;
    let blk_size = if features & VIRTIO_BLK_F_BLK_SIZE != 0 {
        t.device
            .read32(CFG_BLK_SIZE)
            .clamp(SECTOR_SIZE as u32, PAGE as u32)
    } else {
        SECTOR_SIZE as u32
    };
    // Header and status take two descriptors of each request.
    let mut max_segments = qsize as usize - 2;
    if features & VIRTIO_BLK_F_SEG_MAX != 0 {
        let s = t.device.read32(CFG_SEG_MAX) as usize;
        if s > 0 {
            max_segments = max_segments.min(s);
        }
    }
    let mut max_segment_size = u32::MAX as u64;
    if features & VIRTIO_BLK_F_SIZE_MAX != 0 {
        let s = t.device.read32(CFG_SIZE_MAX) as u64;
        if s > 0 {
            max_segment_size = s;
        }
    }
    let per_head = OUTHDR_SIZE + 1;
    let bytes = per_head * qsize as u64;
    let order = bytes.div_ceil(PAGE).next_power_of_two().trailing_zeros() as usize;
    let dma = page_alloc::alloc_pages(Gfp(Gfp::KERNEL.0 | Gfp::ZERO.0), order)
        .ok_or(ProbeError::NoMemory)?;
    let mut slots = Vec::new();
    slots.resize_with(qsize as usize, || None);
    let d = Box::leak(Box::new(VirtioBlk {
        name: block::disk_name("vd", index),
        index,
        irq: dev.irq_line,
        capacity,
        read_only: features & VIRTIO_BLK_F_RO != 0,
        flush: features & VIRTIO_BLK_F_FLUSH != 0,
        blk_size,
        limits: QueueLimits {
            max_segments,
            max_bytes: DEFAULT_MAX_BYTES,
            max_segment_size,
        },
        dma,
        status_off: OUTHDR_SIZE * qsize as u64,
        inner: IrqLock::new(
            "virtio_blk",
            Inner {
                vq,
                slots,
                pending: VecDeque::new(),
                dead: false,
                stats: DiskStats::default(),
            },
        ),
        transport: t,
    }));
    d.transport.driver_ok();
    Ok(d)
}

/// Probe every virtio-blk function on the bus (PCI order), register each with the block
/// layer and route its interrupt.
pub fn probe_all() {
    let mut index = 0;
    for dev in pci::devices() {
        if dev.vendor != VIRTIO_VENDOR
            || !(dev.device == DEVICE_BLK_TRANSITIONAL || dev.device == DEVICE_BLK_MODERN)
        {
            continue;
        }
        match probe_one(&dev, index) {
            Ok(d) => {
                log::info!(
                    "virtio_blk {}: [{}] {} 512-byte logical blocks ({} MiB){}",
                    dev.bdf,
                    d.name,
                    d.capacity,
                    d.capacity >> 11,
                    if d.read_only { ", read-only" } else { "" }
                );
                if d.irq < 16 {
                    let vector = crate::drivers::pic::MASTER_VECTOR + d.irq;
                    crate::arch::x86_64::irq::register(vector, virtblk_interrupt);
                    crate::drivers::pic::set_masked(d.irq, false);
                    crate::drivers::lapic::enable_extint();
                }
                DEVICES.lock().push(d);
                block::register_disk(Arc::new(Disk(d)));
                index += 1;
            }
            Err(e) => log::warn!("virtio_blk {}: probe failed: {e:?}", dev.bdf),
        }
    }
}
