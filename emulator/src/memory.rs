//! Guest RAM: one lazily committed anonymous `memmap2` mapping, laid out the way QEMU's `pc`
//! machine lays out RAM in the guest-physical address space (RAM below the 32-bit PCI hole, the
//! rest remapped above 4 GiB). Owns the host bytes; knows nothing of paging or devices.

use crate::addr::GuestPhysAddr;
use memmap2::MmapMut;

/// Start of RAM that QEMU remaps above the 32-bit PCI hole.
pub const HIGH_RAM_START: u64 = 0x1_0000_0000;
/// QEMU `pc` default for `max-ram-below-4g` (the PCI hole starts at 3.5 GiB).
pub const PC_MAX_RAM_BELOW_4G: u64 = 0xe000_0000;
/// With `gigabyte_align` (on for current pc machine types), RAM of at least
/// `PC_MAX_RAM_BELOW_4G` is split at 3 GiB so the high part stays gigabyte aligned.
pub const PC_GIGABYTE_SPLIT: u64 = 0xc000_0000;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot reserve {0} bytes of guest RAM: {1}")]
    Map(u64, std::io::Error),
}

/// Guest RAM split as QEMU's `pc` machine splits it.
pub struct GuestMemory {
    map: MmapMut,
    below_4g: u64,
    above_4g: u64,
    /// One bit per 4 KiB frame of RAM (indexed by host offset >> 12): set while the CPU's
    /// decode cache may hold instructions decoded from that frame. Every write path
    /// (CPU stores, DMA, the loader, the GDB stub) goes through this type's methods, and a
    /// write to a marked frame clears the bit and queues the frame in `code_dirty`; the
    /// CPU drops the frame's decoded instructions before its next fetch.
    code: Vec<u64>,
    /// Frames (guest-physical frame addresses) written since the CPU last looked.
    code_dirty: Vec<u64>,
}

impl GuestMemory {
    /// Reserve `size` bytes of RAM. Pages are only committed by the host when first touched,
    /// so `--mem 4G` costs what the guest uses, not 4 GiB.
    pub fn new(size: u64) -> Result<Self, MemoryError> {
        let (below_4g, above_4g) = pc_ram_split(size);
        let map = MmapMut::map_anon(size as usize).map_err(|e| MemoryError::Map(size, e))?;
        let frames = size.div_ceil(4096) as usize;
        Ok(Self {
            map,
            below_4g,
            above_4g,
            code: vec![0; frames.div_ceil(64)],
            code_dirty: Vec::new(),
        })
    }

    // ---- the code-frame bitmap (decode cache invalidation) --------------------------------

    /// Mark the RAM frame holding `pa` as holding decoded instructions. False (nothing
    /// marked) when `pa` is not RAM: such instructions must not be cached.
    #[inline]
    pub fn mark_code(&mut self, pa: GuestPhysAddr) -> bool {
        match self.offset(pa, 1) {
            Some(off) => {
                let f = off >> 12;
                self.code[f / 64] |= 1 << (f % 64);
                true
            }
            None => false,
        }
    }

    /// True while the frame of `pa` is marked (for tests and the shadow check).
    pub fn is_code(&self, pa: GuestPhysAddr) -> bool {
        self.offset(pa, 1).is_some_and(|off| {
            let f = off >> 12;
            self.code[f / 64] & (1 << (f % 64)) != 0
        })
    }

    /// Frames written since the last call whose decoded instructions must be dropped
    /// (empty on almost every call: one load and a branch).
    #[inline(always)]
    pub fn code_dirty_pending(&self) -> bool {
        !self.code_dirty.is_empty()
    }

    /// Take the list of written code frames (guest-physical frame addresses).
    pub fn take_code_dirty(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.code_dirty)
    }

    /// Note a write of `len` bytes at host offset `off`: any marked frame it touches is
    /// unmarked and queued.
    #[inline(always)]
    fn note_write(&mut self, off: usize, len: usize) {
        let first = off >> 12;
        let last = (off + len.max(1) - 1) >> 12;
        if first == last {
            if self.code[first / 64] & (1 << (first % 64)) != 0 {
                self.code_written(first, first);
            }
        } else {
            self.code_written(first, last);
        }
    }

    #[cold]
    #[inline(never)]
    fn code_written(&mut self, first: usize, last: usize) {
        for f in first..=last {
            let bit = 1u64 << (f % 64);
            if self.code[f / 64] & bit != 0 {
                self.code[f / 64] &= !bit;
                let host = (f as u64) << 12;
                let pa = if host < self.below_4g {
                    host
                } else {
                    host - self.below_4g + HIGH_RAM_START
                };
                self.code_dirty.push(pa);
            }
        }
    }

    pub fn size(&self) -> u64 {
        self.below_4g + self.above_4g
    }
    pub fn below_4g(&self) -> u64 {
        self.below_4g
    }
    pub fn above_4g(&self) -> u64 {
        self.above_4g
    }

    /// Host offset of `len` bytes at `pa`, if they are all RAM in one region.
    #[inline]
    fn offset(&self, pa: GuestPhysAddr, len: u64) -> Option<usize> {
        let a = pa.as_u64();
        let end = a.checked_add(len)?;
        if end <= self.below_4g {
            Some(a as usize)
        } else if a >= HIGH_RAM_START && end <= HIGH_RAM_START + self.above_4g {
            Some((a - HIGH_RAM_START + self.below_4g) as usize)
        } else {
            None
        }
    }

    /// Host offset of `len` bytes at `pa` (for the TLB's fast entries), if they are all RAM
    /// in one region.
    #[inline]
    pub fn host_offset(&self, pa: GuestPhysAddr, len: u64) -> Option<usize> {
        self.offset(pa, len)
    }

    /// Read `size` bytes (1..=8) at host offset `off` (from [`Self::host_offset`]), with
    /// fixed-width loads for 1, 2, 4 and 8 bytes.
    #[inline(always)]
    pub fn read_host(&self, off: usize, size: u32) -> u64 {
        let m: &[u8] = &self.map;
        match size {
            1 => m[off] as u64,
            2 => u16::from_le_bytes(m[off..off + 2].try_into().unwrap()) as u64,
            4 => u32::from_le_bytes(m[off..off + 4].try_into().unwrap()) as u64,
            8 => u64::from_le_bytes(m[off..off + 8].try_into().unwrap()),
            _ => {
                let mut b = [0u8; 8];
                b[..size as usize].copy_from_slice(&m[off..off + size as usize]);
                u64::from_le_bytes(b)
            }
        }
    }

    /// 16 bytes at host offset `off` as one little-endian word (an instruction fetch).
    #[inline(always)]
    pub fn read_host_u128(&self, off: usize) -> u128 {
        let m: &[u8] = &self.map;
        u128::from_le_bytes(m[off..off + 16].try_into().unwrap())
    }

    /// Write the low `size` bytes (1..=8) of `val` at host offset `off`, with fixed-width
    /// stores for 1, 2, 4 and 8 bytes.
    #[inline(always)]
    pub fn write_host(&mut self, off: usize, size: u32, val: u64) {
        let m: &mut [u8] = &mut self.map;
        match size {
            1 => m[off] = val as u8,
            2 => m[off..off + 2].copy_from_slice(&(val as u16).to_le_bytes()),
            4 => m[off..off + 4].copy_from_slice(&(val as u32).to_le_bytes()),
            8 => m[off..off + 8].copy_from_slice(&val.to_le_bytes()),
            _ => m[off..off + size as usize].copy_from_slice(&val.to_le_bytes()[..size as usize]),
        }
        self.note_write(off, size as usize);
    }

    /// Fill `len` bytes at host offset `off` with the low `size` bytes of `val` repeated
    /// (REP STOS on RAM); `len` is a multiple of `size`.
    pub fn fill_host(&mut self, off: usize, len: usize, size: u32, val: u64) {
        let m: &mut [u8] = &mut self.map;
        let dst = &mut m[off..off + len];
        if size == 1 || val == 0 {
            dst.fill(val as u8);
        } else {
            let pat = val.to_le_bytes();
            for c in dst.chunks_exact_mut(size as usize) {
                c.copy_from_slice(&pat[..size as usize]);
            }
        }
        self.note_write(off, len);
    }

    /// Copy `len` bytes from host offset `src` to host offset `dst` (REP MOVS on RAM); the
    /// ranges do not overlap.
    pub fn copy_host(&mut self, src: usize, dst: usize, len: usize) {
        debug_assert!(src + len <= dst || dst + len <= src);
        let m: &mut [u8] = &mut self.map;
        m.copy_within(src..src + len, dst);
        self.note_write(dst, len);
    }

    /// True if `pa..pa+len` is backed by RAM.
    pub fn is_ram(&self, pa: GuestPhysAddr, len: u64) -> bool {
        self.offset(pa, len).is_some()
    }

    /// Borrow RAM bytes; `None` when any byte is not RAM.
    #[inline]
    pub fn slice(&self, pa: GuestPhysAddr, len: usize) -> Option<&[u8]> {
        let off = self.offset(pa, len as u64)?;
        Some(&self.map[off..off + len])
    }

    /// Borrow RAM bytes mutably; `None` when any byte is not RAM. Every frame of the
    /// range counts as written (the caller may write any byte).
    #[inline]
    pub fn slice_mut(&mut self, pa: GuestPhysAddr, len: usize) -> Option<&mut [u8]> {
        let off = self.offset(pa, len as u64)?;
        self.note_write(off, len);
        Some(&mut self.map[off..off + len])
    }

    /// Read a little-endian value of `size` bytes (1, 2, 4 or 8).
    #[inline]
    pub fn read(&self, pa: GuestPhysAddr, size: usize) -> Option<u64> {
        let s = self.slice(pa, size)?;
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(s);
        Some(u64::from_le_bytes(b))
    }

    /// Write the low `size` bytes of `val`, little-endian.
    #[inline]
    pub fn write(&mut self, pa: GuestPhysAddr, size: usize, val: u64) -> bool {
        match self.slice_mut(pa, size) {
            Some(s) => {
                s.copy_from_slice(&val.to_le_bytes()[..size]);
                true
            }
            None => false,
        }
    }

    /// Copy bytes into RAM (used by the loader). Fails if the range is not all RAM.
    pub fn write_bytes(&mut self, pa: GuestPhysAddr, data: &[u8]) -> bool {
        match self.slice_mut(pa, data.len()) {
            Some(s) => {
                s.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    pub fn read_u32(&self, pa: GuestPhysAddr) -> Option<u32> {
        self.read(pa, 4).map(|v| v as u32)
    }
    pub fn read_u64(&self, pa: GuestPhysAddr) -> Option<u64> {
        self.read(pa, 8)
    }
}

/// How QEMU's `pc` machine splits `ram` between below and above 4 GiB (hw/i386/pc_piix.c).
pub fn pc_ram_split(ram: u64) -> (u64, u64) {
    let mut lowmem = PC_MAX_RAM_BELOW_4G;
    if ram >= PC_MAX_RAM_BELOW_4G {
        lowmem = lowmem.min(PC_GIGABYTE_SPLIT);
    }
    if ram >= lowmem {
        (lowmem, ram - lowmem)
    } else {
        (ram, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_like_qemu() {
        assert_eq!(pc_ram_split(128 << 20), (128 << 20, 0));
        assert_eq!(pc_ram_split(3 << 30), (3 << 30, 0));
        assert_eq!(pc_ram_split(4 << 30), (3 << 30, 1 << 30));
    }

    #[test]
    fn high_ram_is_remapped() {
        let mut m = GuestMemory::new(4 << 30).unwrap();
        assert!(m.write(GuestPhysAddr(HIGH_RAM_START), 8, 0x1122_3344_5566_7788));
        assert_eq!(
            m.read_u64(GuestPhysAddr(HIGH_RAM_START)),
            Some(0x1122_3344_5566_7788)
        );
        assert_eq!(m.read_u64(GuestPhysAddr(0xd000_0000)), None);
        // A read straddling the end of low RAM is not RAM.
        assert_eq!(m.read(GuestPhysAddr((3 << 30) - 4), 8), None);
    }
}
