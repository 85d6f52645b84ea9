//! The split virtqueue (virtio 1.1, 2.6) over guest RAM, device side.
//!
//! Written here rather than taken from rust-vmm's `virtio-queue`: that crate works on
//! `vm-memory`'s `GuestMemory` trait, which vmscope's RAM (`memory::GuestMemory`, two
//! plain host allocations) does not implement, and the adapter would be larger than the
//! ring code itself (descriptor walk, available and used rings: about 150 lines). Every
//! guest-supplied index and address is checked: a descriptor outside RAM, an index beyond
//! the queue, a chain longer than the queue (a loop) or a device-readable descriptor after
//! a device-writable one is a [`QueueError`], which the device turns into
//! DEVICE_NEEDS_RESET; nothing the guest writes can panic the host.

use crate::addr::GuestPhysAddr;
use crate::memory::GuestMemory;

/// Descriptor flags (2.6.5).
const VIRTQ_DESC_F_NEXT: u16 = 1;
const VIRTQ_DESC_F_WRITE: u16 = 2;
const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available ring flag: the driver does not want interrupts (2.6.7).
const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Sizes of ring elements.
const DESC_SIZE: u64 = 16;
const USED_ELEM_SIZE: u64 = 8;
/// Offset of the ring arrays after `flags` and `idx`.
const RING_HEADER: u64 = 4;

/// Something the driver put in the queue that a device must not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// A ring or descriptor lies outside guest RAM.
    BadAddress(u64),
    /// A descriptor index at or beyond the queue size.
    BadIndex(u16),
    /// A chain visits more descriptors than the queue has (a loop).
    ChainTooLong,
    /// A device-readable descriptor follows a device-writable one.
    ReadableAfterWritable,
    /// VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC.
    Indirect,
    /// The driver made more buffers available than the queue holds.
    AvailOverrun,
}

/// One guest buffer: guest-physical address and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: GuestPhysAddr,
    pub len: u32,
}

/// A descriptor chain taken from the available ring.
#[derive(Debug, Default)]
pub struct Chain {
    pub head: u16,
    /// Device-readable buffers, in order.
    pub readable: Vec<Segment>,
    /// Device-writable buffers, in order.
    pub writable: Vec<Segment>,
}

impl Chain {
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|s| s.len as u64).sum()
    }
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|s| s.len as u64).sum()
    }
}

/// Copy from the concatenation of `segs`, skipping `skip` bytes, into `out`; false if the
/// segments hold fewer bytes.
pub fn read_from(mem: &GuestMemory, segs: &[Segment], skip: u64, out: &mut [u8]) -> bool {
    let mut done = 0usize;
    let mut skip = skip;
    for s in segs {
        if done == out.len() {
            break;
        }
        let len = s.len as u64;
        if skip >= len {
            skip -= len;
            continue;
        }
        let n = ((len - skip) as usize).min(out.len() - done);
        match mem.slice(s.addr.add(skip), n) {
            Some(src) => out[done..done + n].copy_from_slice(src),
            None => return false,
        }
        done += n;
        skip = 0;
    }
    done == out.len()
}

/// Copy `data` into the concatenation of `segs` after `skip` bytes; false if it does not fit.
pub fn write_to(mem: &mut GuestMemory, segs: &[Segment], skip: u64, data: &[u8]) -> bool {
    let mut done = 0usize;
    let mut skip = skip;
    for s in segs {
        if done == data.len() {
            break;
        }
        let len = s.len as u64;
        if skip >= len {
            skip -= len;
            continue;
        }
        let n = ((len - skip) as usize).min(data.len() - done);
        match mem.slice_mut(s.addr.add(skip), n) {
            Some(dst) => dst.copy_from_slice(&data[done..done + n]),
            None => return false,
        }
        done += n;
        skip = 0;
    }
    done == data.len()
}

/// A split virtqueue's registers and the device's ring positions.
#[derive(Debug, Clone)]
pub struct SplitQueue {
    /// The largest size the device supports (the reset value of `size`).
    pub max_size: u16,
    pub size: u16,
    pub ready: bool,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub msix_vector: u16,
    /// Next available-ring entry the device will take.
    last_avail: u16,
    /// The used ring's idx as the device last wrote it.
    used_idx: u16,
}

impl SplitQueue {
    pub fn new(max_size: u16) -> Self {
        SplitQueue {
            max_size,
            size: max_size,
            ready: false,
            desc: 0,
            avail: 0,
            used: 0,
            msix_vector: super::VIRTIO_MSI_NO_VECTOR,
            last_avail: 0,
            used_idx: 0,
        }
    }

    /// Back to the reset state (device reset, 2.4).
    pub fn reset(&mut self) {
        *self = SplitQueue::new(self.max_size);
    }

    fn read_u16(mem: &GuestMemory, pa: u64) -> Result<u16, QueueError> {
        mem.read(GuestPhysAddr(pa), 2)
            .map(|v| v as u16)
            .ok_or(QueueError::BadAddress(pa))
    }

    /// Whether the three rings lie in RAM (checked before use).
    fn check_rings(&self, mem: &GuestMemory) -> Result<(), QueueError> {
        let n = self.size as u64;
        let areas = [
            (self.desc, DESC_SIZE * n),
            (self.avail, RING_HEADER + 2 * n + 2),
            (self.used, RING_HEADER + USED_ELEM_SIZE * n + 2),
        ];
        for (pa, len) in areas {
            if !mem.is_ram(GuestPhysAddr(pa), len) {
                return Err(QueueError::BadAddress(pa));
            }
        }
        Ok(())
    }

    /// Take the next available chain, if the driver made one available.
    pub fn pop(&mut self, mem: &GuestMemory) -> Result<Option<Chain>, QueueError> {
        if !self.ready || self.size == 0 {
            return Ok(None);
        }
        self.check_rings(mem)?;
        let avail_idx = Self::read_u16(mem, self.avail + 2)?;
        let pending = avail_idx.wrapping_sub(self.last_avail);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.size {
            return Err(QueueError::AvailOverrun);
        }
        let slot = (self.last_avail % self.size) as u64;
        let head = Self::read_u16(mem, self.avail + RING_HEADER + 2 * slot)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        let mut chain = Chain {
            head,
            ..Chain::default()
        };
        let mut idx = head;
        for _ in 0..self.size {
            if idx >= self.size {
                return Err(QueueError::BadIndex(idx));
            }
            let d = self.desc + DESC_SIZE * idx as u64;
            let addr = mem
                .read(GuestPhysAddr(d), 8)
                .ok_or(QueueError::BadAddress(d))?;
            let len = mem
                .read(GuestPhysAddr(d + 8), 4)
                .ok_or(QueueError::BadAddress(d))? as u32;
            let flags = Self::read_u16(mem, d + 12)?;
            let next = Self::read_u16(mem, d + 14)?;
            if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                return Err(QueueError::Indirect);
            }
            if len > 0 && !mem.is_ram(GuestPhysAddr(addr), len as u64) {
                return Err(QueueError::BadAddress(addr));
            }
            let seg = Segment {
                addr: GuestPhysAddr(addr),
                len,
            };
            if flags & VIRTQ_DESC_F_WRITE != 0 {
                chain.writable.push(seg);
            } else if chain.writable.is_empty() {
                chain.readable.push(seg);
            } else {
                return Err(QueueError::ReadableAfterWritable);
            }
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(Some(chain));
            }
            idx = next;
        }
        Err(QueueError::ChainTooLong)
    }

    /// Return chain `head` to the driver with `len` bytes written (2.6.8).
    pub fn push_used(
        &mut self,
        mem: &mut GuestMemory,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        self.check_rings(mem)?;
        let slot = (self.used_idx % self.size) as u64;
        let e = self.used + RING_HEADER + USED_ELEM_SIZE * slot;
        let ok = mem.write(GuestPhysAddr(e), 4, head as u64)
            && mem.write(GuestPhysAddr(e + 4), 4, len as u64);
        self.used_idx = self.used_idx.wrapping_add(1);
        if !ok || !mem.write(GuestPhysAddr(self.used + 2), 2, self.used_idx as u64) {
            return Err(QueueError::BadAddress(self.used));
        }
        Ok(())
    }

    /// Whether the driver wants an interrupt for used buffers (no EVENT_IDX).
    pub fn wants_interrupt(&self, mem: &GuestMemory) -> bool {
        Self::read_u16(mem, self.avail).is_ok_and(|f| f & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(mem: &mut GuestMemory, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = table + 16 * i as u64;
        mem.write(GuestPhysAddr(d), 8, addr);
        mem.write(GuestPhysAddr(d + 8), 4, len as u64);
        mem.write(GuestPhysAddr(d + 12), 2, flags as u64);
        mem.write(GuestPhysAddr(d + 14), 2, next as u64);
    }

    fn queue(mem: &mut GuestMemory) -> SplitQueue {
        let mut q = SplitQueue::new(8);
        q.desc = 0x1000;
        q.avail = 0x2000;
        q.used = 0x3000;
        q.ready = true;
        mem.write(GuestPhysAddr(0x2004), 2, 0); // ring[0] = head 0
        mem.write(GuestPhysAddr(0x2002), 2, 1); // avail idx = 1
        q
    }

    #[test]
    fn chain_is_split_into_readable_and_writable() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let mut q = queue(&mut mem);
        desc(&mut mem, 0x1000, 0, 0x8000, 16, VIRTQ_DESC_F_NEXT, 3);
        desc(
            &mut mem,
            0x1000,
            3,
            0x9000,
            512,
            VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
            5,
        );
        desc(&mut mem, 0x1000, 5, 0xa000, 1, VIRTQ_DESC_F_WRITE, 0);
        let c = q.pop(&mem).unwrap().unwrap();
        assert_eq!((c.readable.len(), c.writable.len()), (1, 2));
        assert_eq!(c.writable_len(), 513);
        assert!(q.pop(&mem).unwrap().is_none());
        q.push_used(&mut mem, c.head, 513).unwrap();
        assert_eq!(mem.read(GuestPhysAddr(0x3002), 2), Some(1));
        assert_eq!(mem.read(GuestPhysAddr(0x3008), 4), Some(513));
    }

    #[test]
    fn loops_and_wild_addresses_are_errors() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let mut q = queue(&mut mem);
        desc(&mut mem, 0x1000, 0, 0x8000, 16, VIRTQ_DESC_F_NEXT, 1);
        desc(&mut mem, 0x1000, 1, 0x8000, 16, VIRTQ_DESC_F_NEXT, 0);
        assert_eq!(q.pop(&mem).unwrap_err(), QueueError::ChainTooLong);
        let mut q = queue(&mut mem);
        desc(&mut mem, 0x1000, 0, 0xffff_ffff_f000, 16, 0, 0);
        assert!(matches!(q.pop(&mem), Err(QueueError::BadAddress(_))));
        let mut q = queue(&mut mem);
        desc(&mut mem, 0x1000, 0, 0x8000, 16, VIRTQ_DESC_F_NEXT, 99);
        assert_eq!(q.pop(&mem).unwrap_err(), QueueError::BadIndex(99));
        let mut q = queue(&mut mem);
        q.desc = 0xffff_ffff_0000;
        assert!(matches!(q.pop(&mem), Err(QueueError::BadAddress(_))));
    }
}
