//! QEMU's `pc-testdev` (hw/misc/pc-testdev.c), the ISA test device kvm-unit-tests use
//! (`-device pc-testdev`):
//!
//! * ports 0xe0-0xe3: a 32-bit scratch register, any access size, at byte offset
//!   `port & 3`; ports 0xe8-0xeb: the same register through byte-wide accesses (QEMU
//!   splits wider ones, which gives the same result);
//! * ports 0xe4-0xe7: "flush page": a 32-bit write of a guest-physical address makes QEMU
//!   mprotect the host page behind it (a KVM test of its memory slots); vmscope keeps no
//!   host mapping to invalidate, so the write has no effect;
//! * ports 0x2000-0x2017: a byte written to 0x2000 + n sets ISA IRQ line n to (byte != 0)
//!   (lines 0-15; QEMU asserts on higher ones, vmscope ignores them);
//! * MMIO 0xff000000-0xff00ffff: 64 KiB of scratch memory.

use super::{IoAction, PortDevice};
use crate::bus::MmioDevice;

pub const TESTDEV_PORT: u16 = 0xe0;
/// 0xe0-0xeb: scratch register, flush page, byte-wide scratch register.
pub const TESTDEV_PORTS: u16 = 12;
/// Offset of the flush port from [`TESTDEV_PORT`] (the port bus passes offsets).
const FLUSH_OFFSET: u16 = 4;
pub const IRQ_PORT: u16 = 0x2000;
pub const IRQ_PORTS: u16 = 24;
const ISA_IRQS: u16 = 16;
pub const IOMEM_BASE: u64 = 0xff00_0000;
pub const IOMEM_LEN: u64 = 0x1_0000;

/// The scratch register (and the flush port).
#[derive(Default)]
pub struct PcTestdev {
    data: u32,
}

fn lane_mask(port: u16, size: u8) -> (u32, u32) {
    let shift = 8 * (port as u32 & 3);
    let bits = 8 * size.clamp(1, 4) as u32;
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    (mask.wrapping_shl(shift), shift)
}

impl PortDevice for PcTestdev {
    fn name(&self) -> &'static str {
        "pc-testdev"
    }
    fn read(&mut self, port: u16, size: u8) -> u32 {
        if (FLUSH_OFFSET..FLUSH_OFFSET + 4).contains(&port) {
            return super::OPEN_BUS;
        }
        let (mask, shift) = lane_mask(port, size);
        (self.data & mask) >> shift
    }
    fn write(&mut self, port: u16, size: u8, val: u32) -> IoAction {
        if (FLUSH_OFFSET..FLUSH_OFFSET + 4).contains(&port) {
            log::trace!("pc-testdev: flush page {val:#x} (no host mapping to flush)");
            return IoAction::None;
        }
        let (mask, shift) = lane_mask(port, size);
        self.data = (self.data & !mask) | (val.wrapping_shl(shift) & mask);
        IoAction::None
    }
}

/// The IRQ line ports.
#[derive(Default)]
pub struct PcTestdevIrq {
    levels: u16,
}

impl PortDevice for PcTestdevIrq {
    fn name(&self) -> &'static str {
        "pc-testdev-irq"
    }
    fn read(&mut self, _port: u16, _size: u8) -> u32 {
        super::OPEN_BUS
    }
    fn write(&mut self, port: u16, _size: u8, val: u32) -> IoAction {
        let line = port; // the offset from IRQ_PORT
        if line < ISA_IRQS {
            if val as u8 != 0 {
                self.levels |= 1 << line;
            } else {
                self.levels &= !(1 << line);
            }
        } else {
            log::debug!("pc-testdev: IRQ line {line} is not an ISA line; ignored");
        }
        IoAction::None
    }
    fn irq_mask(&self) -> u16 {
        u16::MAX
    }
    fn irq_levels(&self) -> u16 {
        self.levels
    }
}

/// The 64 KiB scratch memory.
pub struct PcTestdevMem {
    buf: Vec<u8>,
}

impl Default for PcTestdevMem {
    fn default() -> Self {
        PcTestdevMem {
            buf: vec![0; IOMEM_LEN as usize],
        }
    }
}

impl MmioDevice for PcTestdevMem {
    fn name(&self) -> &'static str {
        "pc-testdev-iomem"
    }
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let mut b = [0u8; 8];
        for (k, v) in b.iter_mut().enumerate().take(size.min(8) as usize) {
            *v = self.buf.get(offset as usize + k).copied().unwrap_or(0);
        }
        u64::from_le_bytes(b)
    }
    fn write(&mut self, offset: u64, size: u8, val: u64) -> IoAction {
        for (k, v) in val
            .to_le_bytes()
            .iter()
            .enumerate()
            .take(size.min(8) as usize)
        {
            if let Some(d) = self.buf.get_mut(offset as usize + k) {
                *d = *v;
            }
        }
        IoAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_register_keeps_lanes() {
        let mut d = PcTestdev::default();
        // Offsets from 0xe0: the register at 0-3, flush at 4-7, the byte view at 8-11.
        d.write(0, 4, 0x1122_3344);
        assert_eq!(d.read(0, 4), 0x1122_3344);
        d.write(2, 1, 0xaa);
        assert_eq!(d.read(0, 4), 0x11aa_3344);
        assert_eq!(d.read(9, 1), 0x33);
        assert_eq!(d.read(10, 2), 0x11aa);
        d.write(4, 4, 0x1000); // flush: no effect on the register
        assert_eq!(d.read(8, 4), 0x11aa_3344);
    }

    #[test]
    fn irq_ports_drive_isa_lines() {
        let mut d = PcTestdevIrq::default();
        d.write(14, 1, 1);
        assert_eq!(d.irq_levels(), 1 << 14);
        d.write(14, 1, 0);
        d.write(20, 1, 1);
        assert_eq!(d.irq_levels(), 0);
    }
}
