//! The virtio 1.x modern PCI transport (virtio 1.1, 4.1.4) and split virtqueues (2.6),
//! driver side. Written here rather than taken from the `virtio-drivers` crate: that
//! crate brings its own HAL for DMA and MMIO and its own queue locking, while this kernel
//! wants DMA frames from its buddy allocator, `ioremap` for the BARs, completion from its
//! own interrupt path and Linux's names; the transport and ring code are short.

use alloc::vec::Vec;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

use super::pci::{self, PciDev, PCI_CAP_ID_VNDR};
use crate::mm::page_alloc;
use crate::mm::{PhysAddr, VirtAddr};
use mm_core::addr::Pfn;
use mm_core::gfp::Gfp;

/// virtio_pci_cap cfg_type values.
const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
const VIRTIO_PCI_CAP_NOTIFY_CFG: u8 = 2;
const VIRTIO_PCI_CAP_ISR_CFG: u8 = 3;
const VIRTIO_PCI_CAP_DEVICE_CFG: u8 = 4;

/// Device status bits (2.1).
pub const STATUS_ACKNOWLEDGE: u8 = 1;
pub const STATUS_DRIVER: u8 = 2;
pub const STATUS_DRIVER_OK: u8 = 4;
pub const STATUS_FEATURES_OK: u8 = 8;
pub const STATUS_NEEDS_RESET: u8 = 0x40;
pub const STATUS_FAILED: u8 = 0x80;
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_MSI_NO_VECTOR: u16 = 0xffff;

/// `struct virtio_pci_common_cfg` offsets.
mod common {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0c;
    pub const MSIX_CONFIG: u64 = 0x10;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1a;
    pub const QUEUE_ENABLE: u64 = 0x1c;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1e;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// A mapped window of device registers.
#[derive(Clone, Copy)]
pub struct Mmio(VirtAddr);

impl Mmio {
    pub fn read8(&self, off: u64) -> u8 {
        // SAFETY: the window was ioremapped for the capability's length, which covers
        // every register offset used.
        unsafe { read_volatile((self.0.as_u64() + off) as *const u8) }
    }
    pub fn read16(&self, off: u64) -> u16 {
        // SAFETY: as in `read8`.
        unsafe { read_volatile((self.0.as_u64() + off) as *const u16) }
    }
    pub fn read32(&self, off: u64) -> u32 {
        // SAFETY: as in `read8`.
        unsafe { read_volatile((self.0.as_u64() + off) as *const u32) }
    }
    pub fn write8(&self, off: u64, v: u8) {
        // SAFETY: as in `read8`.
        unsafe { write_volatile((self.0.as_u64() + off) as *mut u8, v) }
    }
    pub fn write16(&self, off: u64, v: u16) {
        // SAFETY: as in `read8`.
        unsafe { write_volatile((self.0.as_u64() + off) as *mut u16, v) }
    }
    pub fn write32(&self, off: u64, v: u32) {
        // SAFETY: as in `read8`.
        unsafe { write_volatile((self.0.as_u64() + off) as *mut u32, v) }
    }
    /// A 64-bit register as two 32-bit writes, low half first (4.1.3.1).
    pub fn write64(&self, off: u64, v: u64) {
        self.write32(off, v as u32);
        self.write32(off + 4, (v >> 32) as u32);
    }
}

/// A device's modern interface.
pub struct VirtioPci {
    pub common: Mmio,
    pub isr: Mmio,
    pub device: Mmio,
    notify: Mmio,
    notify_mult: u32,
}

/// Why a device could not be set up.
#[derive(Debug)]
pub enum ProbeError {
    NoCapability(u8),
    BadBar,
    NoMemory,
    Features,
    Queue,
}

impl VirtioPci {
    /// Find the four capabilities and map their windows (4.1.4: the first capability of
    /// each type is the one to use).
    pub fn new(dev: &PciDev) -> Result<VirtioPci, ProbeError> {
        let mut found: [Option<(Mmio, u32)>; 5] = [None; 5];
        for (pos, id) in dev.capabilities() {
            if id != PCI_CAP_ID_VNDR {
                continue;
            }
            let cfg_type = pci::read8(dev.bdf, pos + 3);
            let bar = pci::read8(dev.bdf, pos + 4) as usize;
            let offset = pci::read32(dev.bdf, pos + 8) as u64;
            let length = pci::read32(dev.bdf, pos + 12) as u64;
            if !(1..=4).contains(&cfg_type) || found[cfg_type as usize].is_some() {
                continue;
            }
            let b = dev
                .bars
                .get(bar)
                .copied()
                .flatten()
                .ok_or(ProbeError::BadBar)?;
            if b.io || offset.checked_add(length).is_none_or(|end| end > b.size) || length == 0 {
                return Err(ProbeError::BadBar);
            }
            let va =
                crate::mm::vmalloc::ioremap(PhysAddr::new(b.addr + offset), length, "virtio-pci")
                    .ok_or(ProbeError::NoMemory)?;
            let extra = if cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG {
                pci::read32(dev.bdf, pos + 16)
            } else {
                0
            };
            found[cfg_type as usize] = Some((Mmio(va), extra));
        }
        let get = |t: u8| found[t as usize].ok_or(ProbeError::NoCapability(t));
        let (notify, notify_mult) = get(VIRTIO_PCI_CAP_NOTIFY_CFG)?;
        Ok(VirtioPci {
            common: get(VIRTIO_PCI_CAP_COMMON_CFG)?.0,
            isr: get(VIRTIO_PCI_CAP_ISR_CFG)?.0,
            device: get(VIRTIO_PCI_CAP_DEVICE_CFG)?.0,
            notify,
            notify_mult,
        })
    }

    pub fn status(&self) -> u8 {
        self.common.read8(common::DEVICE_STATUS)
    }

    pub fn set_status(&self, s: u8) {
        self.common.write8(common::DEVICE_STATUS, s);
    }

    /// Reset and wait until the device reads back 0 (4.1.4.3.2).
    pub fn reset(&self) {
        self.set_status(0);
        for _ in 0..1_000_000 {
            if self.status() == 0 {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// The initialisation of 3.1.1 up to FEATURES_OK: returns the features both sides
    /// accept (`wanted` must include VERSION_1).
    pub fn negotiate(&self, wanted: u64) -> Result<u64, ProbeError> {
        self.reset();
        self.set_status(STATUS_ACKNOWLEDGE);
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        let mut offered = 0u64;
        for sel in 0..2u32 {
            self.common.write32(common::DEVICE_FEATURE_SELECT, sel);
            offered |= (self.common.read32(common::DEVICE_FEATURE) as u64) << (32 * sel);
        }
        let features = offered & wanted;
        if features & VIRTIO_F_VERSION_1 == 0 {
            self.set_status(STATUS_FAILED);
            return Err(ProbeError::Features);
        }
        for sel in 0..2u32 {
            self.common.write32(common::DRIVER_FEATURE_SELECT, sel);
            self.common
                .write32(common::DRIVER_FEATURE, (features >> (32 * sel)) as u32);
        }
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        if self.status() & STATUS_FEATURES_OK == 0 {
            self.set_status(STATUS_FAILED);
            return Err(ProbeError::Features);
        }
        Ok(features)
    }

    /// Set up queue `index` with at most `max` entries (INTx: no MSI-X vector).
    pub fn setup_queue(&self, index: u16, max: u16) -> Result<SplitQueue, ProbeError> {
        self.common.write16(common::QUEUE_SELECT, index);
        let dev_size = self.common.read16(common::QUEUE_SIZE);
        if dev_size == 0 {
            return Err(ProbeError::Queue);
        }
        let mut size = dev_size.min(max);
        // Split rings want a power of two: round down.
        size = 1 << (15 - size.leading_zeros());
        let mut q = SplitQueue::new(size).ok_or(ProbeError::NoMemory)?;
        self.common.write16(common::QUEUE_SIZE, size);
        self.common
            .write16(common::QUEUE_MSIX_VECTOR, VIRTIO_MSI_NO_VECTOR);
        self.common.write64(common::QUEUE_DESC, q.desc_pa());
        self.common.write64(common::QUEUE_DRIVER, q.avail_pa());
        self.common.write64(common::QUEUE_DEVICE, q.used_pa());
        let notify_off = self.common.read16(common::QUEUE_NOTIFY_OFF) as u64;
        self.common.write16(common::QUEUE_ENABLE, 1);
        let _ = self.common.read16(common::MSIX_CONFIG);
        q.notify_off = notify_off * self.notify_mult as u64;
        q.index = index;
        Ok(q)
    }

    pub fn driver_ok(&self) {
        self.set_status(self.status() | STATUS_DRIVER_OK);
    }

    /// Tell the device queue `q` has new buffers.
    pub fn notify(&self, q: &SplitQueue) {
        fence(Ordering::SeqCst);
        self.notify.write16(q.notify_off, q.index);
    }

    /// Read and clear the ISR (lowers INTx).
    pub fn read_isr(&self) -> u8 {
        self.isr.read8(0)
    }
}

/// Descriptor flags.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
pub const VIRTQ_DESC_F_WRITE: u16 = 2;

/// One descriptor to add: guest-physical address, length, device-writable.
#[derive(Clone, Copy, Debug)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub write: bool,
}

/// A split virtqueue in one zeroed, physically contiguous block of frames: the
/// descriptor table, the available ring, then the used ring on the next page.
pub struct SplitQueue {
    pub size: u16,
    index: u16,
    notify_off: u64,
    pfn: Pfn,
    order: usize,
    va: VirtAddr,
    used_off: u64,
    free: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
}

const PAGE: u64 = 4096;

impl SplitQueue {
    fn new(size: u16) -> Option<SplitQueue> {
        let n = size as u64;
        let avail_end = 16 * n + 6 + 2 * n;
        let used_off = avail_end.next_multiple_of(PAGE);
        let total = used_off + 6 + 8 * n;
        let order = (total.div_ceil(PAGE)).next_power_of_two().trailing_zeros() as usize;
        let pfn = page_alloc::alloc_pages(Gfp(Gfp::KERNEL.0 | Gfp::ZERO.0), order)?;
        Some(SplitQueue {
            size,
            index: 0,
            notify_off: 0,
            pfn,
            order,
            va: page_alloc::page_address(pfn),
            used_off,
            free: (0..size).rev().collect(),
            avail_idx: 0,
            last_used: 0,
        })
    }

    fn pa(&self) -> u64 {
        self.pfn.as_u64() * PAGE
    }
    fn desc_pa(&self) -> u64 {
        self.pa()
    }
    fn avail_pa(&self) -> u64 {
        self.pa() + 16 * self.size as u64
    }
    fn used_pa(&self) -> u64 {
        self.pa() + self.used_off
    }

    fn ptr<T>(&self, off: u64) -> *mut T {
        (self.va.as_u64() + off) as *mut T
    }

    /// Free descriptors.
    pub fn num_free(&self) -> usize {
        self.free.len()
    }

    /// The head index the next [`Self::add`] will use.
    pub fn peek_head(&self) -> Option<u16> {
        self.free.last().copied()
    }

    /// Chain `bufs` and make it available; returns the head index, or `None` when there
    /// are too few free descriptors (nothing is changed then).
    pub fn add(&mut self, bufs: &[Buf]) -> Option<u16> {
        if bufs.is_empty() || bufs.len() > self.free.len() {
            return None;
        }
        let idxs: Vec<u16> = (0..bufs.len()).filter_map(|_| self.free.pop()).collect();
        for (k, b) in bufs.iter().enumerate() {
            let i = idxs[k] as u64;
            let mut flags = if b.write { VIRTQ_DESC_F_WRITE } else { 0 };
            let next = if k + 1 < bufs.len() {
                flags |= VIRTQ_DESC_F_NEXT;
                idxs[k + 1]
            } else {
                0
            };
            // SAFETY: the descriptor table is this queue's memory, `i` < size.
            unsafe {
                write_volatile(self.ptr::<u64>(16 * i), b.addr);
                write_volatile(self.ptr::<u32>(16 * i + 8), b.len);
                write_volatile(self.ptr::<u16>(16 * i + 12), flags);
                write_volatile(self.ptr::<u16>(16 * i + 14), next);
            }
        }
        let head = idxs[0];
        let avail = 16 * self.size as u64;
        let slot = (self.avail_idx % self.size) as u64;
        // SAFETY: the available ring is this queue's memory.
        unsafe {
            write_volatile(self.ptr::<u16>(avail + 4 + 2 * slot), head);
            fence(Ordering::SeqCst);
            self.avail_idx = self.avail_idx.wrapping_add(1);
            write_volatile(self.ptr::<u16>(avail + 2), self.avail_idx);
        }
        Some(head)
    }

    /// The next used element, if the device returned one: (head, length).
    pub fn pop_used(&mut self) -> Option<(u16, u32)> {
        fence(Ordering::SeqCst);
        // SAFETY: the used ring is this queue's memory.
        let idx = unsafe { read_volatile(self.ptr::<u16>(self.used_off + 2)) };
        if idx == self.last_used {
            return None;
        }
        let slot = (self.last_used % self.size) as u64;
        let e = self.used_off + 4 + 8 * slot;
        // SAFETY: as above.
        let (id, len) = unsafe {
            (
                read_volatile(self.ptr::<u32>(e)),
                read_volatile(self.ptr::<u32>(e + 4)),
            )
        };
        self.last_used = self.last_used.wrapping_add(1);
        Some((id as u16, len))
    }

    /// Put chain `head` back on the free list. Only for a head the driver has in flight:
    /// a device returning a bad or repeated id must not corrupt the list. The walk is
    /// bounded by the queue size.
    pub fn free_chain(&mut self, head: u16) {
        let mut i = head;
        for _ in 0..self.size {
            if i >= self.size {
                break;
            }
            self.free.push(i);
            // SAFETY: `i` < size.
            let (flags, next) = unsafe {
                (
                    read_volatile(self.ptr::<u16>(16 * i as u64 + 12)),
                    read_volatile(self.ptr::<u16>(16 * i as u64 + 14)),
                )
            };
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                break;
            }
            i = next;
        }
    }
}

impl Drop for SplitQueue {
    fn drop(&mut self) {
        page_alloc::free_pages(self.pfn, self.order);
    }
}
