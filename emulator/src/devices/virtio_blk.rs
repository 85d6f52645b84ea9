//! virtio-blk on PCI as QEMU 7.2's `-drive file=IMG,format=raw,if=virtio` presents it on
//! `pc`: a transitional device (1af4:1001, subsystem 1af4:0002, class 01.00.00) with
//! BAR0 the legacy I/O interface (128 ports), BAR1 the MSI-X table and PBA (4 KiB, two
//! vectors), BAR4 the modern interface (16 KiB, 64-bit prefetchable: common config at
//! 0x0000, ISR at 0x1000, device config at 0x2000, notifications at 0x3000 with a
//! multiplier of 4), and the same capability list at the same offsets (MSI-X at 0x98,
//! then the PCI-config-access, notify, device, ISR and common capabilities).
//!
//! Requests (virtio 1.1, 5.2.6) are served synchronously when the driver notifies the
//! queue, so completion time is a function of the instruction count alone. Interrupts: INTx
//! (pin A, level = ISR bit 0, cleared by reading the ISR) or, once the driver enables
//! MSI-X, the message of the queue's vector to the local APIC.
//!
//! Feature bits offered: VERSION_1, SEG_MAX, BLK_SIZE, FLUSH, and RO for read-only disks
//! (QEMU offers more: geometry, topology, discard, write zeroes, indirect descriptors,
//! event index; a driver that negotiates only these five sees the same device). A write to
//! a read-only disk completes with VIRTIO_BLK_S_IOERR, as QEMU reports its EACCES.

use super::disk::{DiskImage, SECTOR_SIZE};
use super::pci::{reg, BarKind, MsiMessage, PciConfig, PciFunction, VENDOR_REDHAT_QUMRANET};
use super::virtio::queue::{self, Chain, QueueError, SplitQueue};
use super::virtio::{self as vio, status, VIRTIO_MSI_NO_VECTOR};
use crate::addr::GuestPhysAddr;
use crate::memory::GuestMemory;

/// Transitional virtio-blk (0x1000 + device type 2 - 1).
pub const DEVICE_ID_TRANSITIONAL: u16 = 0x1001;
/// Subsystem ID: the virtio device type (2, block).
pub const VIRTIO_ID_BLOCK: u16 = 2;
/// Class: mass storage, SCSI (QEMU's `PCI_CLASS_STORAGE_SCSI`).
const CLASS_STORAGE_SCSI: u32 = 0x01_00_00;

/// Feature bits (5.2.3).
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

/// Request types and status values (5.2.6).
pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;
/// Size of `struct virtio_blk_outhdr` (type, reserved, sector).
const OUTHDR_SIZE: usize = 16;
/// Length of the ID string GET_ID returns.
const VIRTIO_BLK_ID_BYTES: usize = 20;

/// QEMU's queue size and `seg_max` (queue size - 2).
pub const QUEUE_SIZE: u16 = 256;
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// One request queue (QEMU's default `num-queues` with one vCPU).
const NUM_QUEUES: usize = 1;
/// Largest request QEMU accepts (`BDRV_REQUEST_MAX_SECTORS`).
const MAX_REQUEST_SECTORS: u64 = (i32::MAX as u64 & !0x1ff) >> 9;

/// BARs.
const BAR_LEGACY_IO: usize = 0;
const LEGACY_IO_SIZE: u64 = 0x80;
const BAR_MSIX: usize = 1;
const MSIX_BAR_SIZE: u64 = 0x1000;
const BAR_MODERN: usize = 4;
const MODERN_BAR_SIZE: u64 = 0x4000;
/// Regions of the modern BAR.
const COMMON_CFG: u64 = 0x0000;
const ISR_CFG: u64 = 0x1000;
const DEVICE_CFG: u64 = 0x2000;
const NOTIFY_CFG: u64 = 0x3000;
const REGION_SIZE: u64 = 0x1000;
const NOTIFY_OFF_MULTIPLIER: u32 = 4;

/// Capability IDs and virtio_pci_cap cfg_type values (4.1.4).
const PCI_CAP_ID_VNDR: u8 = 0x09;
const PCI_CAP_ID_MSIX: u8 = 0x11;
const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
const VIRTIO_PCI_CAP_NOTIFY_CFG: u8 = 2;
const VIRTIO_PCI_CAP_ISR_CFG: u8 = 3;
const VIRTIO_PCI_CAP_DEVICE_CFG: u8 = 4;
const VIRTIO_PCI_CAP_PCI_CFG: u8 = 5;
/// Where QEMU puts them.
const CAP_COMMON: usize = 0x40;
const CAP_ISR: usize = 0x50;
const CAP_DEVICE: usize = 0x60;
const CAP_NOTIFY: usize = 0x70;
const CAP_PCI_CFG: usize = 0x84;
const CAP_MSIX: usize = 0x98;
/// virtio_pci_cfg_cap: bar at +4, offset +8, length +12, data +16.
const PCI_CFG_BAR: usize = CAP_PCI_CFG + 4;
const PCI_CFG_OFFSET: usize = CAP_PCI_CFG + 8;
const PCI_CFG_LENGTH: usize = CAP_PCI_CFG + 12;
const PCI_CFG_DATA: usize = CAP_PCI_CFG + 16;

/// MSI-X: two vectors (configuration, queue), the table at BAR1+0, the PBA at BAR1+0x800.
const MSIX_VECTORS: usize = 2;
const MSIX_PBA: u64 = 0x800;
const MSIX_ENTRY_SIZE: u64 = 16;
const MSIX_CTRL: usize = CAP_MSIX + 2;
const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;
const MSIX_VECTOR_MASKED: u32 = 1;

/// Legacy I/O registers (4.1.4.8).
mod legacy {
    pub const HOST_FEATURES: u64 = 0x00;
    pub const GUEST_FEATURES: u64 = 0x04;
    pub const QUEUE_PFN: u64 = 0x08;
    pub const QUEUE_NUM: u64 = 0x0c;
    pub const QUEUE_SEL: u64 = 0x0e;
    pub const QUEUE_NOTIFY: u64 = 0x10;
    pub const STATUS: u64 = 0x12;
    pub const ISR: u64 = 0x13;
    pub const MSIX_CONFIG: u64 = 0x14;
    pub const MSIX_QUEUE: u64 = 0x16;
    /// Device configuration: after the MSI-X registers only while MSI-X is enabled.
    pub const CONFIG: u64 = 0x14;
    pub const CONFIG_MSIX: u64 = 0x18;
    /// The legacy ring layout's alignment and the PFN's shift.
    pub const VRING_ALIGN: u64 = 4096;
    pub const PFN_SHIFT: u32 = 12;
}

/// Per-disk counters for the host (`--stats`, tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlkStats {
    pub path: String,
    pub requests: u64,
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub sectors_read: u64,
    pub sectors_written: u64,
    /// Requests completed with IOERR or UNSUPP.
    pub errors: u64,
}

/// The device.
pub struct VirtioBlk {
    config: PciConfig,
    disk: DiskImage,
    features: u64,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    status: u8,
    isr: u8,
    msix_config: u16,
    queue_select: u16,
    queues: Vec<SplitQueue>,
    msix_table: [[u32; 4]; MSIX_VECTORS],
    msix_pending: u64,
    msi_out: Vec<MsiMessage>,
    /// A queue error put the device in DEVICE_NEEDS_RESET until the driver resets it.
    broken: bool,
    stats: BlkStats,
}

/// `virtio_pci_cap` body after the ID and next bytes.
fn virtio_cap(len: u8, cfg_type: u8, bar: u8, offset: u32, length: u32, extra: &[u8]) -> Vec<u8> {
    let mut v = vec![len, cfg_type, bar, 0, 0, 0];
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&length.to_le_bytes());
    v.extend_from_slice(extra);
    v
}

impl VirtioBlk {
    pub fn new(disk: DiskImage) -> Self {
        let mut c = PciConfig::new(
            VENDOR_REDHAT_QUMRANET,
            DEVICE_ID_TRANSITIONAL,
            CLASS_STORAGE_SCSI,
            0,
            0,
            VENDOR_REDHAT_QUMRANET,
            VIRTIO_ID_BLOCK,
        );
        c.data[reg::INTERRUPT_PIN] = 1;
        c.add_bar(BAR_LEGACY_IO, BarKind::Io, LEGACY_IO_SIZE);
        c.add_bar(BAR_MSIX, BarKind::Mem32, MSIX_BAR_SIZE);
        c.add_bar(
            BAR_MODERN,
            BarKind::Mem64 { prefetchable: true },
            MODERN_BAR_SIZE,
        );
        let bar = BAR_MODERN as u8;
        let region = REGION_SIZE as u32;
        c.add_capability(
            CAP_COMMON,
            PCI_CAP_ID_VNDR,
            &virtio_cap(
                0x10,
                VIRTIO_PCI_CAP_COMMON_CFG,
                bar,
                COMMON_CFG as u32,
                region,
                &[],
            ),
        );
        c.add_capability(
            CAP_ISR,
            PCI_CAP_ID_VNDR,
            &virtio_cap(
                0x10,
                VIRTIO_PCI_CAP_ISR_CFG,
                bar,
                ISR_CFG as u32,
                region,
                &[],
            ),
        );
        c.add_capability(
            CAP_DEVICE,
            PCI_CAP_ID_VNDR,
            &virtio_cap(
                0x10,
                VIRTIO_PCI_CAP_DEVICE_CFG,
                bar,
                DEVICE_CFG as u32,
                region,
                &[],
            ),
        );
        c.add_capability(
            CAP_NOTIFY,
            PCI_CAP_ID_VNDR,
            &virtio_cap(
                0x14,
                VIRTIO_PCI_CAP_NOTIFY_CFG,
                bar,
                NOTIFY_CFG as u32,
                region,
                &NOTIFY_OFF_MULTIPLIER.to_le_bytes(),
            ),
        );
        c.add_capability(
            CAP_PCI_CFG,
            PCI_CAP_ID_VNDR,
            &virtio_cap(0x14, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, &[0; 4]),
        );
        // The PCI-config-access window: bar, offset, length and data are the driver's.
        c.wmask[PCI_CFG_BAR] = 0xff;
        c.wmask[PCI_CFG_OFFSET..PCI_CFG_DATA + 4].fill(0xff);
        let mut msix = Vec::new();
        msix.extend_from_slice(&((MSIX_VECTORS - 1) as u16).to_le_bytes());
        msix.extend_from_slice(&(BAR_MSIX as u32).to_le_bytes());
        msix.extend_from_slice(&((MSIX_PBA as u32) | BAR_MSIX as u32).to_le_bytes());
        c.add_capability(CAP_MSIX, PCI_CAP_ID_MSIX, &msix);
        c.wmask[MSIX_CTRL + 1] = ((MSIX_ENABLE | MSIX_FUNCTION_MASK) >> 8) as u8;

        let mut features = vio::VIRTIO_F_VERSION_1
            | VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_FLUSH;
        if disk.read_only() {
            features |= VIRTIO_BLK_F_RO;
        }
        let stats = BlkStats {
            path: disk.path().display().to_string(),
            ..BlkStats::default()
        };
        let mut d = VirtioBlk {
            config: c,
            disk,
            features,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            isr: 0,
            msix_config: VIRTIO_MSI_NO_VECTOR,
            queue_select: 0,
            queues: vec![SplitQueue::new(QUEUE_SIZE); NUM_QUEUES],
            msix_table: [[0, 0, 0, MSIX_VECTOR_MASKED]; MSIX_VECTORS],
            msix_pending: 0,
            msi_out: Vec::new(),
            broken: false,
            stats,
        };
        d.reset();
        d
    }

    /// Device reset (status 0): features, queues, ISR and vectors back to their reset values.
    fn reset(&mut self) {
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.driver_features = 0;
        self.status = 0;
        self.isr = 0;
        self.msix_config = VIRTIO_MSI_NO_VECTOR;
        self.queue_select = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.broken = false;
    }

    pub fn stats(&self) -> &BlkStats {
        &self.stats
    }

    fn msix_enabled(&self) -> bool {
        self.config.u16(MSIX_CTRL) & MSIX_ENABLE != 0
    }

    /// The device-specific configuration (`struct virtio_blk_config`) as bytes.
    fn device_config(&self) -> [u8; 0x3c] {
        let mut b = [0u8; 0x3c];
        let sectors = self.disk.size() / SECTOR_SIZE;
        b[0..8].copy_from_slice(&sectors.to_le_bytes());
        // size_max stays 0 (not offered); seg_max at 0x0c.
        b[0x0c..0x10].copy_from_slice(&SEG_MAX.to_le_bytes());
        // Geometry as QEMU guesses it (16 heads, 63 sectors), though not offered.
        let cyls = (sectors / (16 * 63)).clamp(2, 16383) as u16;
        b[0x10..0x12].copy_from_slice(&cyls.to_le_bytes());
        b[0x12] = 16;
        b[0x13] = 63;
        b[0x14..0x18].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        // writeback (cache mode) 1, num_queues at 0x22.
        b[0x20] = 1;
        b[0x22..0x24].copy_from_slice(&(NUM_QUEUES as u16).to_le_bytes());
        b
    }

    fn device_config_read(&self, off: u64, size: u8) -> u64 {
        let b = self.device_config();
        (0..size as u64).fold(0, |v, i| {
            let byte = b.get((off + i) as usize).copied().unwrap_or(0);
            v | (byte as u64) << (8 * i)
        })
    }

    /// Raise the interrupt for `vector` (MSI-X) or set ISR bits for INTx.
    fn interrupt(&mut self, isr_bits: u8, vector: u16) {
        self.isr |= isr_bits;
        if !self.msix_enabled() {
            return; // INTx follows the ISR (see `intx`).
        }
        if vector == VIRTIO_MSI_NO_VECTOR || vector as usize >= MSIX_VECTORS {
            return;
        }
        self.msix_pending |= 1 << vector;
        self.msix_deliver();
    }

    /// Send every pending MSI-X message whose vector and function are unmasked.
    fn msix_deliver(&mut self) {
        if !self.msix_enabled() || self.config.u16(MSIX_CTRL) & MSIX_FUNCTION_MASK != 0 {
            return;
        }
        for v in 0..MSIX_VECTORS {
            let e = self.msix_table[v];
            if self.msix_pending & (1 << v) != 0 && e[3] & MSIX_VECTOR_MASKED == 0 {
                self.msix_pending &= !(1 << v);
                self.msi_out.push(MsiMessage {
                    address: e[0] as u64 | (e[1] as u64) << 32,
                    data: e[2],
                });
            }
        }
    }

    /// The driver notified queue `q`: serve every available request now.
    fn notify(&mut self, q: u16, mem: &mut GuestMemory) {
        let qi = q as usize;
        if qi >= self.queues.len() || self.broken {
            return;
        }
        let mut used = false;
        loop {
            let chain = match self.queues[qi].pop(mem) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return self.device_error(e),
            };
            let written = match self.request(&chain, mem) {
                Ok(n) => n,
                Err(e) => return self.device_error(e),
            };
            if let Err(e) = self.queues[qi].push_used(mem, chain.head, written) {
                return self.device_error(e);
            }
            used = true;
        }
        if used && self.queues[qi].wants_interrupt(mem) {
            let vector = self.queues[qi].msix_vector;
            self.interrupt(vio::ISR_QUEUE, vector);
        }
    }

    /// The driver broke the queue's rules: DEVICE_NEEDS_RESET and a configuration
    /// interrupt, as QEMU's `virtio_error` (2.1.2).
    fn device_error(&mut self, e: QueueError) {
        log::warn!("virtio-blk {}: {e:?}: device needs reset", self.stats.path);
        self.broken = true;
        self.status |= status::DEVICE_NEEDS_RESET;
        let v = self.msix_config;
        self.interrupt(vio::ISR_QUEUE | vio::ISR_CONFIG, v);
    }

    /// Serve one request; returns the bytes written into the driver's buffers.
    fn request(&mut self, chain: &Chain, mem: &mut GuestMemory) -> Result<u32, QueueError> {
        let mut hdr = [0u8; OUTHDR_SIZE];
        // QEMU's "missing headers", "outhdr too short", "inhdr too short" are device errors.
        let in_len = chain.writable_len();
        if chain.writable.last().is_none_or(|s| s.len == 0)
            || !queue::read_from(mem, &chain.readable, 0, &mut hdr)
        {
            return Err(QueueError::BadAddress(0));
        }
        let req_type = u32::from_le_bytes(hdr[0..4].try_into().unwrap_or_default());
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or_default());
        let data_in = in_len - 1; // bytes before the status byte
        let data_out = chain.readable_len() - OUTHDR_SIZE as u64;
        self.stats.requests += 1;
        let status = match req_type {
            VIRTIO_BLK_T_IN => self.transfer(chain, mem, sector, data_in, false),
            VIRTIO_BLK_T_OUT => self.transfer(chain, mem, sector, data_out, true),
            VIRTIO_BLK_T_FLUSH => {
                self.stats.flushes += 1;
                match self.disk.flush() {
                    Ok(()) => VIRTIO_BLK_S_OK,
                    Err(_) => VIRTIO_BLK_S_IOERR,
                }
            }
            VIRTIO_BLK_T_GET_ID => {
                // The serial is empty (no `serial=`): its NUL terminator.
                let n = (data_in as usize).min(VIRTIO_BLK_ID_BYTES).min(1);
                queue::write_to(mem, &chain.writable, 0, &[0u8; 1][..n]);
                VIRTIO_BLK_S_OK
            }
            _ => VIRTIO_BLK_S_UNSUPP,
        };
        if status != VIRTIO_BLK_S_OK {
            self.stats.errors += 1;
        }
        queue::write_to(mem, &chain.writable, data_in, &[status]);
        Ok(in_len.min(u32::MAX as u64) as u32)
    }

    /// Read (`write` false) or write `len` bytes at `sector`: QEMU's range checks
    /// (whole sectors, inside the disk) give IOERR, as does a write to a read-only disk.
    fn transfer(
        &mut self,
        chain: &Chain,
        mem: &mut GuestMemory,
        sector: u64,
        len: u64,
        write: bool,
    ) -> u8 {
        let sectors = self.disk.size() / SECTOR_SIZE;
        let n = len / SECTOR_SIZE;
        if !len.is_multiple_of(SECTOR_SIZE)
            || n > MAX_REQUEST_SECTORS
            || sector > sectors.saturating_sub(n)
        {
            return VIRTIO_BLK_S_IOERR;
        }
        if write && self.disk.read_only() {
            return VIRTIO_BLK_S_IOERR;
        }
        let mut off = sector * SECTOR_SIZE;
        let mut left = len;
        let segs = if write {
            &chain.readable
        } else {
            &chain.writable
        };
        let mut skip = if write { OUTHDR_SIZE as u64 } else { 0 };
        for s in segs {
            if left == 0 {
                break;
            }
            if skip >= s.len as u64 {
                skip -= s.len as u64;
                continue;
            }
            let n = (s.len as u64 - skip).min(left) as usize;
            let pa = GuestPhysAddr(s.addr.as_u64() + skip);
            let ok = if write {
                match (mem.slice(pa, n), self.disk.bytes_mut(off, n)) {
                    (Some(src), Some(dst)) => {
                        dst.copy_from_slice(src);
                        true
                    }
                    _ => false,
                }
            } else {
                match (self.disk.bytes(off, n), mem.slice_mut(pa, n)) {
                    (Some(src), Some(dst)) => {
                        dst.copy_from_slice(src);
                        true
                    }
                    _ => false,
                }
            };
            if !ok {
                return VIRTIO_BLK_S_IOERR;
            }
            skip = 0;
            off += n as u64;
            left -= n as u64;
        }
        if write {
            self.stats.writes += 1;
            self.stats.sectors_written += len / SECTOR_SIZE;
        } else {
            self.stats.reads += 1;
            self.stats.sectors_read += len / SECTOR_SIZE;
        }
        VIRTIO_BLK_S_OK
    }

    /// `struct virtio_pci_common_cfg` as bytes (4.1.4.3).
    fn common_image(&self) -> [u8; 0x38] {
        let mut b = [0u8; 0x38];
        let put =
            |b: &mut [u8; 0x38], off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(&mut b, 0x00, &self.device_feature_select.to_le_bytes());
        let df = match self.device_feature_select {
            0 => self.features as u32,
            1 => (self.features >> 32) as u32,
            _ => 0,
        };
        put(&mut b, 0x04, &df.to_le_bytes());
        put(&mut b, 0x08, &self.driver_feature_select.to_le_bytes());
        let gf = match self.driver_feature_select {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        };
        put(&mut b, 0x0c, &gf.to_le_bytes());
        put(&mut b, 0x10, &self.msix_config.to_le_bytes());
        put(&mut b, 0x12, &(self.queues.len() as u16).to_le_bytes());
        b[0x14] = self.status;
        b[0x15] = 0; // config_generation: the configuration never changes
        put(&mut b, 0x16, &self.queue_select.to_le_bytes());
        if let Some(q) = self.queues.get(self.queue_select as usize) {
            put(&mut b, 0x18, &q.size.to_le_bytes());
            put(&mut b, 0x1a, &q.msix_vector.to_le_bytes());
            put(&mut b, 0x1c, &(q.ready as u16).to_le_bytes());
            put(&mut b, 0x1e, &self.queue_select.to_le_bytes());
            put(&mut b, 0x20, &q.desc.to_le_bytes());
            put(&mut b, 0x28, &q.avail.to_le_bytes());
            put(&mut b, 0x30, &q.used.to_le_bytes());
        } else {
            put(&mut b, 0x1a, &VIRTIO_MSI_NO_VECTOR.to_le_bytes());
        }
        b
    }

    fn write_common(&mut self, off: u64, size: u8, val: u64) {
        let mut img = self.common_image();
        for i in 0..size as usize {
            if let Some(b) = img.get_mut(off as usize + i) {
                *b = (val >> (8 * i)) as u8;
            }
        }
        let (lo, hi) = (off as usize, off as usize + size as usize);
        // Only the fields the access overlaps take the new bytes.
        let touched = |_: &[u8; 0x38], f: usize, len: usize| lo < f + len && f < hi;
        let u16_at = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(img[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_le_bytes(img[o..o + 8].try_into().unwrap_or_default());
        if touched(&img, 0x00, 4) {
            self.device_feature_select = u32_at(0x00);
        }
        if touched(&img, 0x08, 4) {
            self.driver_feature_select = u32_at(0x08);
        }
        if touched(&img, 0x0c, 4) && self.status & status::FEATURES_OK == 0 {
            let v = u32_at(0x0c) as u64;
            match self.driver_feature_select {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | v,
                1 => self.driver_features = (self.driver_features & 0xffff_ffff) | v << 32,
                _ => {}
            }
        }
        if touched(&img, 0x10, 2) {
            self.msix_config = valid_vector(u16_at(0x10));
        }
        if touched(&img, 0x16, 2) {
            self.queue_select = u16_at(0x16);
        }
        let qs = self.queue_select as usize;
        if let Some(q) = self.queues.get_mut(qs) {
            if touched(&img, 0x18, 2) {
                let n = u16_at(0x18);
                if n != 0 && n <= q.max_size && n.is_power_of_two() {
                    q.size = n;
                }
            }
            if touched(&img, 0x1a, 2) {
                q.msix_vector = valid_vector(u16_at(0x1a));
            }
            if touched(&img, 0x20, 8) {
                q.desc = u64_at(0x20);
            }
            if touched(&img, 0x28, 8) {
                q.avail = u64_at(0x28);
            }
            if touched(&img, 0x30, 8) {
                q.used = u64_at(0x30);
            }
            if touched(&img, 0x1c, 2) && u16_at(0x1c) == 1 {
                q.ready = true;
            }
        }
        if touched(&img, 0x14, 1) {
            self.write_status(img[0x14]);
        }
    }

    fn write_status(&mut self, v: u8) {
        if v == 0 {
            self.reset();
            return;
        }
        let mut v = v;
        if v & status::FEATURES_OK != 0 && self.status & status::FEATURES_OK == 0 {
            // The device accepts only features it offered (3.1.1 step 5).
            if self.driver_features & !self.features != 0 {
                v &= !status::FEATURES_OK;
            }
        }
        self.status = v | (self.status & status::DEVICE_NEEDS_RESET);
    }

    /// ISR read: returns and clears (4.1.4.5), which lowers INTx.
    fn read_isr(&mut self) -> u8 {
        core::mem::take(&mut self.isr)
    }

    fn modern_read(&mut self, off: u64, size: u8) -> u64 {
        match off {
            o if o < COMMON_CFG + REGION_SIZE => {
                let img = self.common_image();
                (0..size as u64).fold(0, |v, i| {
                    v | (img.get((o + i) as usize).copied().unwrap_or(0) as u64) << (8 * i)
                })
            }
            ISR_CFG => self.read_isr() as u64,
            o if o < ISR_CFG + REGION_SIZE => 0,
            o if o < DEVICE_CFG + REGION_SIZE => self.device_config_read(o - DEVICE_CFG, size),
            _ => 0,
        }
    }

    fn modern_write(&mut self, off: u64, size: u8, val: u64, mem: &mut GuestMemory) {
        match off {
            o if o < COMMON_CFG + REGION_SIZE => self.write_common(o, size, val),
            o if (NOTIFY_CFG..NOTIFY_CFG + REGION_SIZE).contains(&o) => {
                // Queue q's notification address is NOTIFY_CFG + q * multiplier; the
                // value written is the queue index.
                let q = ((o - NOTIFY_CFG) / NOTIFY_OFF_MULTIPLIER as u64) as u16;
                self.notify(q, mem);
            }
            _ => {} // ISR and device configuration are read-only here
        }
    }

    fn legacy_read(&mut self, off: u64, size: u8) -> u64 {
        let cfg = if self.msix_enabled() {
            legacy::CONFIG_MSIX
        } else {
            legacy::CONFIG
        };
        let q = self.queues.get(self.queue_select as usize);
        match off {
            legacy::HOST_FEATURES => self.features & 0xffff_ffff,
            legacy::GUEST_FEATURES => self.driver_features & 0xffff_ffff,
            legacy::QUEUE_PFN => q.map_or(0, |q| q.desc >> legacy::PFN_SHIFT),
            legacy::QUEUE_NUM => q.map_or(0, |q| q.size as u64),
            legacy::QUEUE_SEL => self.queue_select as u64,
            legacy::STATUS => self.status as u64,
            legacy::ISR => self.read_isr() as u64,
            legacy::MSIX_CONFIG if cfg == legacy::CONFIG_MSIX => self.msix_config as u64,
            legacy::MSIX_QUEUE if cfg == legacy::CONFIG_MSIX => {
                q.map_or(VIRTIO_MSI_NO_VECTOR, |q| q.msix_vector) as u64
            }
            o if o >= cfg => self.device_config_read(o - cfg, size),
            _ => 0,
        }
    }

    fn legacy_write(&mut self, off: u64, val: u64, mem: &mut GuestMemory) {
        let msix = self.msix_enabled();
        match off {
            legacy::GUEST_FEATURES => self.driver_features = val & 0xffff_ffff & self.features,
            legacy::QUEUE_PFN => {
                if let Some(q) = self.queues.get_mut(self.queue_select as usize) {
                    if val == 0 {
                        q.reset();
                    } else {
                        // The legacy layout: descriptors, then the available ring, then
                        // the used ring on the next 4 KiB boundary.
                        let n = q.size as u64;
                        q.desc = val << legacy::PFN_SHIFT;
                        q.avail = q.desc + 16 * n;
                        q.used = (q.avail + 6 + 2 * n).next_multiple_of(legacy::VRING_ALIGN);
                        q.ready = true;
                    }
                }
            }
            legacy::QUEUE_SEL => self.queue_select = val as u16,
            legacy::QUEUE_NOTIFY => self.notify(val as u16, mem),
            legacy::STATUS => self.write_status(val as u8),
            legacy::MSIX_CONFIG if msix => self.msix_config = valid_vector(val as u16),
            legacy::MSIX_QUEUE if msix => {
                if let Some(q) = self.queues.get_mut(self.queue_select as usize) {
                    q.msix_vector = valid_vector(val as u16);
                }
            }
            _ => {}
        }
    }

    fn msix_read(&self, off: u64, size: u8) -> u64 {
        let table_end = MSIX_ENTRY_SIZE * MSIX_VECTORS as u64;
        let v = if off < table_end {
            let e = &self.msix_table[(off / MSIX_ENTRY_SIZE) as usize];
            let w = ((off % MSIX_ENTRY_SIZE) / 4) as usize;
            let lo = e[w] as u64;
            let hi = e.get(w + 1).copied().unwrap_or(0) as u64;
            (lo | hi << 32) >> (8 * (off % 4))
        } else if (MSIX_PBA..MSIX_PBA + 8).contains(&off) {
            self.msix_pending >> (8 * (off - MSIX_PBA))
        } else {
            0
        };
        if size >= 8 {
            v
        } else {
            v & ((1u64 << (8 * size)) - 1)
        }
    }

    fn msix_write(&mut self, off: u64, size: u8, val: u64) {
        let table_end = MSIX_ENTRY_SIZE * MSIX_VECTORS as u64;
        if off >= table_end || !off.is_multiple_of(4) {
            return;
        }
        let e = (off / MSIX_ENTRY_SIZE) as usize;
        let w = ((off % MSIX_ENTRY_SIZE) / 4) as usize;
        self.msix_table[e][w] = val as u32;
        if size == 8 && w < 3 {
            self.msix_table[e][w + 1] = (val >> 32) as u32;
        }
        // Unmasking a vector with a pending message sends it.
        self.msix_deliver();
    }
}

/// A vector number the device can use, or NO_VECTOR (QEMU refuses vectors it lacks).
fn valid_vector(v: u16) -> u16 {
    if (v as usize) < MSIX_VECTORS {
        v
    } else {
        VIRTIO_MSI_NO_VECTOR
    }
}

impl PciFunction for VirtioBlk {
    fn name(&self) -> &'static str {
        "virtio-blk"
    }
    fn config(&self) -> &PciConfig {
        &self.config
    }
    fn config_mut(&mut self) -> &mut PciConfig {
        &mut self.config
    }

    fn config_read(&mut self, off: usize, size: usize, mem: &mut GuestMemory) -> u32 {
        if (PCI_CFG_DATA..PCI_CFG_DATA + 4).contains(&off) {
            // The PCI-config-access capability: a read of the window reads the BAR.
            if let Some((bar, boff, len)) = self.pci_cfg_window() {
                let v = self.bar_read(bar, boff, len, mem) as u32;
                self.config.set_u32(PCI_CFG_DATA, v);
            }
        }
        self.config.read(off, size)
    }

    fn config_write(&mut self, off: usize, size: usize, val: u32, mem: &mut GuestMemory) {
        let was_enabled = self.msix_enabled();
        self.config.write(off, size, val);
        if (PCI_CFG_DATA..PCI_CFG_DATA + 4).contains(&off) {
            if let Some((bar, boff, len)) = self.pci_cfg_window() {
                let v = self.config.u32(PCI_CFG_DATA) as u64;
                self.bar_write(bar, boff, len, v, mem);
            }
        }
        if self.msix_enabled() != was_enabled || (MSIX_CTRL..MSIX_CTRL + 2).contains(&off) {
            self.msix_deliver();
        }
    }

    fn bar_read(&mut self, bar: usize, off: u64, size: u8, _mem: &mut GuestMemory) -> u64 {
        match bar {
            BAR_LEGACY_IO => self.legacy_read(off, size),
            BAR_MSIX => self.msix_read(off, size),
            BAR_MODERN => self.modern_read(off, size),
            _ => 0,
        }
    }

    fn bar_write(&mut self, bar: usize, off: u64, size: u8, val: u64, mem: &mut GuestMemory) {
        match bar {
            BAR_LEGACY_IO => self.legacy_write(off, val, mem),
            BAR_MSIX => self.msix_write(off, size, val),
            BAR_MODERN => self.modern_write(off, size, val, mem),
            _ => {}
        }
    }

    fn intx(&self) -> bool {
        !self.msix_enabled() && self.isr & vio::ISR_QUEUE != 0
    }

    fn take_msi(&mut self) -> Vec<MsiMessage> {
        core::mem::take(&mut self.msi_out)
    }

    fn disk_stats(&self) -> Option<BlkStats> {
        Some(self.stats.clone())
    }
}

impl VirtioBlk {
    /// The BAR access the PCI-config-access capability names: (BAR, offset, length),
    /// if the length is 1, 2 or 4 and the BAR exists.
    fn pci_cfg_window(&self) -> Option<(usize, u64, u8)> {
        let bar = self.config.u8(PCI_CFG_BAR) as usize;
        let off = self.config.u32(PCI_CFG_OFFSET) as u64;
        let len = self.config.u32(PCI_CFG_LENGTH);
        let size = self.config.bars.iter().find(|b| b.index == bar)?.size;
        (matches!(len, 1 | 2 | 4) && off + len as u64 <= size).then_some((bar, off, len as u8))
    }

    /// msync the image.
    pub fn flush(&self) -> std::io::Result<()> {
        self.disk.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::disk::DiskSpec;

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;
    const HDR: u64 = 0x4000;
    const DATA: u64 = 0x5000;
    const STATUS: u64 = 0x6000;

    struct Tmp(std::path::PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn device(name: &str, read_only: bool) -> (VirtioBlk, Tmp) {
        let p = std::env::temp_dir().join(format!("vmscope-unit-{}-{name}", std::process::id()));
        let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, data).unwrap();
        let img = DiskImage::open(&DiskSpec {
            path: p.clone(),
            read_only,
        })
        .unwrap();
        (VirtioBlk::new(img), Tmp(p))
    }

    fn common(d: &mut VirtioBlk, mem: &mut GuestMemory, off: u64, size: u8, v: u64) {
        d.bar_write(BAR_MODERN, COMMON_CFG + off, size, v, mem);
    }

    /// The driver's side of 3.1.1 with one queue of 8 at DESC/AVAIL/USED.
    fn bring_up(d: &mut VirtioBlk, mem: &mut GuestMemory) {
        common(
            d,
            mem,
            0x14,
            1,
            (status::ACKNOWLEDGE | status::DRIVER) as u64,
        );
        common(d, mem, 0x08, 4, 1);
        common(d, mem, 0x0c, 4, 1); // VERSION_1
        common(d, mem, 0x14, 1, 0x0b);
        assert_eq!(
            d.bar_read(BAR_MODERN, 0x14, 1, mem) as u8 & status::FEATURES_OK,
            8
        );
        common(d, mem, 0x16, 2, 0);
        common(d, mem, 0x18, 2, 8);
        common(d, mem, 0x20, 8, DESC);
        common(d, mem, 0x28, 8, AVAIL);
        common(d, mem, 0x30, 8, USED);
        common(d, mem, 0x1c, 2, 1);
        common(d, mem, 0x14, 1, 0x0f);
    }

    fn desc(mem: &mut GuestMemory, i: u64, addr: u64, len: u32, flags: u16, next: u16) {
        let a = DESC + 16 * i;
        mem.write(GuestPhysAddr(a), 8, addr);
        mem.write(GuestPhysAddr(a + 8), 4, len as u64);
        mem.write(GuestPhysAddr(a + 12), 2, flags as u64);
        mem.write(GuestPhysAddr(a + 14), 2, next as u64);
    }

    /// Queue one request of header, `len` data bytes and status as descriptors 0..2.
    fn submit(d: &mut VirtioBlk, mem: &mut GuestMemory, n: u16, ty: u32, sector: u64, len: u32) {
        mem.write(GuestPhysAddr(HDR), 4, ty as u64);
        mem.write(GuestPhysAddr(HDR + 8), 8, sector);
        let data_flags = if ty == VIRTIO_BLK_T_IN { 3 } else { 1 };
        desc(mem, 0, HDR, 16, 1, 1);
        desc(mem, 1, DATA, len, data_flags, 2);
        desc(mem, 2, STATUS, 1, 2, 0);
        mem.write(GuestPhysAddr(STATUS), 1, 0xff);
        mem.write(GuestPhysAddr(AVAIL + 4 + 2 * (n as u64 % 8)), 2, 0);
        mem.write(GuestPhysAddr(AVAIL + 2), 2, n as u64 + 1);
        d.bar_write(BAR_MODERN, NOTIFY_CFG, 2, 0, mem);
    }

    fn status_byte(mem: &GuestMemory) -> u8 {
        mem.read(GuestPhysAddr(STATUS), 1).unwrap() as u8
    }

    #[test]
    fn read_completes_with_data_and_an_interrupt() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let (mut d, _t) = device("read", false);
        bring_up(&mut d, &mut mem);
        submit(&mut d, &mut mem, 0, VIRTIO_BLK_T_IN, 1, 512);
        assert_eq!(status_byte(&mem), VIRTIO_BLK_S_OK);
        assert_eq!(mem.read(GuestPhysAddr(DATA), 1), Some(512 % 251));
        assert_eq!(mem.read(GuestPhysAddr(USED + 2), 2), Some(1));
        assert_eq!(mem.read(GuestPhysAddr(USED + 8), 4), Some(513));
        assert!(d.intx());
        assert_eq!(d.bar_read(BAR_MODERN, ISR_CFG, 1, &mut mem), 1);
        assert!(!d.intx(), "reading the ISR lowers INTx");
        assert_eq!(d.stats().sectors_read, 1);
    }

    #[test]
    fn read_only_writes_and_bad_ranges_are_ioerr() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let (mut d, t) = device("ro", true);
        bring_up(&mut d, &mut mem);
        submit(&mut d, &mut mem, 0, VIRTIO_BLK_T_OUT, 0, 512);
        assert_eq!(status_byte(&mem), VIRTIO_BLK_S_IOERR);
        submit(&mut d, &mut mem, 1, VIRTIO_BLK_T_IN, 16, 512);
        assert_eq!(
            status_byte(&mem),
            VIRTIO_BLK_S_IOERR,
            "beyond the 16 sectors"
        );
        submit(&mut d, &mut mem, 2, VIRTIO_BLK_T_IN, 0, 100);
        assert_eq!(status_byte(&mem), VIRTIO_BLK_S_IOERR, "not whole sectors");
        submit(&mut d, &mut mem, 3, 99, 0, 512);
        assert_eq!(status_byte(&mem), VIRTIO_BLK_S_UNSUPP);
        assert_eq!(d.stats().errors, 4);
        let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            std::fs::read(&t.0).unwrap(),
            data,
            "a read-only image changed"
        );
    }

    #[test]
    fn a_looping_chain_needs_reset_and_reset_recovers() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let (mut d, _t) = device("loop", false);
        bring_up(&mut d, &mut mem);
        desc(&mut mem, 0, HDR, 16, 1, 1);
        desc(&mut mem, 1, DATA, 512, 1, 0);
        mem.write(GuestPhysAddr(AVAIL + 4), 2, 0);
        mem.write(GuestPhysAddr(AVAIL + 2), 2, 1);
        d.bar_write(BAR_MODERN, NOTIFY_CFG, 2, 0, &mut mem);
        let st = d.bar_read(BAR_MODERN, 0x14, 1, &mut mem) as u8;
        assert_ne!(st & status::DEVICE_NEEDS_RESET, 0);
        assert_eq!(d.bar_read(BAR_MODERN, ISR_CFG, 1, &mut mem), 3);
        // Further notifications are ignored until the reset.
        d.bar_write(BAR_MODERN, NOTIFY_CFG, 2, 0, &mut mem);
        common(&mut d, &mut mem, 0x14, 1, 0);
        assert_eq!(d.bar_read(BAR_MODERN, 0x14, 1, &mut mem), 0);
        bring_up(&mut d, &mut mem);
        submit(&mut d, &mut mem, 0, VIRTIO_BLK_T_IN, 0, 512);
        assert_eq!(status_byte(&mem), VIRTIO_BLK_S_OK);
    }

    #[test]
    fn unknown_features_are_refused() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let (mut d, _t) = device("feat", false);
        common(&mut d, &mut mem, 0x14, 1, 3);
        common(&mut d, &mut mem, 0x08, 4, 0);
        common(&mut d, &mut mem, 0x0c, 4, 1 << 28); // INDIRECT_DESC: not offered
        common(&mut d, &mut mem, 0x14, 1, 0x0b);
        assert_eq!(
            d.bar_read(BAR_MODERN, 0x14, 1, &mut mem) as u8 & status::FEATURES_OK,
            0
        );
    }

    #[test]
    fn legacy_interface_serves_the_same_queue() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let (mut d, _t) = device("legacy", false);
        assert_eq!(
            d.bar_read(BAR_LEGACY_IO, legacy::QUEUE_NUM, 2, &mut mem),
            256
        );
        d.bar_write(BAR_LEGACY_IO, legacy::STATUS, 1, 3, &mut mem);
        d.bar_write(BAR_LEGACY_IO, legacy::QUEUE_PFN, 4, 0x10, &mut mem);
        d.bar_write(BAR_LEGACY_IO, legacy::STATUS, 1, 7, &mut mem);
        assert_eq!(
            d.bar_read(BAR_LEGACY_IO, legacy::CONFIG, 4, &mut mem),
            16,
            "capacity in sectors"
        );
        // Layout at 0x10000: descriptors, avail at +4096, used on the next page (256 entries).
        let (desc_base, avail, used) = (0x10000u64, 0x11000u64, 0x12000u64);
        let w = |mem: &mut GuestMemory, a: u64, s: usize, v: u64| {
            mem.write(GuestPhysAddr(a), s, v);
        };
        w(&mut mem, HDR, 4, VIRTIO_BLK_T_IN as u64);
        w(&mut mem, HDR + 8, 8, 0);
        for (i, (a, l, f, n)) in [(HDR, 16, 1, 1), (DATA, 512, 3, 2), (STATUS, 1, 2, 0)]
            .into_iter()
            .enumerate()
        {
            let e = desc_base + 16 * i as u64;
            w(&mut mem, e, 8, a);
            w(&mut mem, e + 8, 4, l);
            w(&mut mem, e + 12, 2, f);
            w(&mut mem, e + 14, 2, n);
        }
        w(&mut mem, avail + 4, 2, 0);
        w(&mut mem, avail + 2, 2, 1);
        d.bar_write(BAR_LEGACY_IO, legacy::QUEUE_NOTIFY, 2, 0, &mut mem);
        assert_eq!(status_byte(&mem), VIRTIO_BLK_S_OK);
        assert_eq!(mem.read(GuestPhysAddr(used + 2), 2), Some(1));
        assert_eq!(d.bar_read(BAR_LEGACY_IO, legacy::ISR, 1, &mut mem), 1);
    }

    #[test]
    fn msix_sends_the_queue_vector_message_instead_of_intx() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let (mut d, _t) = device("msix", false);
        bring_up(&mut d, &mut mem);
        // Table entry 1: address 0xfee00000, data vector 0x45, masked for now.
        d.bar_write(BAR_MSIX, 16, 4, 0xfee0_0000, &mut mem);
        d.bar_write(BAR_MSIX, 24, 4, 0x45, &mut mem);
        d.config_write(MSIX_CTRL, 2, MSIX_ENABLE as u32, &mut mem);
        common(&mut d, &mut mem, 0x16, 2, 0);
        common(&mut d, &mut mem, 0x1a, 2, 1);
        assert_eq!(d.bar_read(BAR_MODERN, 0x1a, 2, &mut mem), 1);
        submit(&mut d, &mut mem, 0, VIRTIO_BLK_T_IN, 0, 512);
        assert!(!d.intx(), "no INTx with MSI-X enabled");
        assert!(d.take_msi().is_empty(), "the vector is masked");
        assert_eq!(
            d.bar_read(BAR_MSIX, MSIX_PBA, 8, &mut mem),
            2,
            "pending bit"
        );
        d.bar_write(BAR_MSIX, 28, 4, 0, &mut mem); // unmask
        let m = d.take_msi();
        assert_eq!(
            m,
            vec![MsiMessage {
                address: 0xfee0_0000,
                data: 0x45
            }]
        );
        assert_eq!(d.bar_read(BAR_MSIX, MSIX_PBA, 8, &mut mem), 0);
    }
}
