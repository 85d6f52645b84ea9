//! The vmscope paravirtual port: lets a guest detect vmscope and read the virtual clock (the
//! retired-instruction count), so that a benchmark in the guest can count instructions.
//!
//! 32 ports at [`PVPORT_BASE`] (0x0e90..0x0eaf), 32-bit registers:
//!
//! | offset | access | register |
//! |---|---|---|
//! | +0x0 | read | [`SIGNATURE`] 0x43534d56, "VMSC" in little-endian byte order |
//! | +0x4 | read | low 32 bits of the instruction count; latches the high 32 bits |
//! | +0x8 | read | the high 32 bits latched by the last read of +0x4 |
//! | +0x10 | write | low 32 bits of an annotation record's virtual address; submits it |
//! | +0x14 | write | high 32 bits of the next record's address (latched) |
//! | +0x18 | read | bit 0: a trace consumer wants per-system-call records |
//! | +0x1c..+0x1f | | reserved |
//!
//! The instruction count is [`Bus::now`](crate::bus::Bus::now): the number of instructions
//! retired before the `in` that reads it (the `icount` of the fault trace). It depends on
//! nothing else, so a run reads the same values every time. Reading +0x4 then +0x8 gives
//! a consistent 64-bit value.
//!
//! A narrower access at a register's offset returns the register's low bytes (and a read of
//! +0x4 still latches); other offsets read 0. Writes other than 32-bit writes to the
//! annotation registers are ignored; the record format is in `crate::ostrace`. QEMU's `pc` machine has no
//! device at these ports: an `in` there reads all ones, which is how a guest tells it is not
//! on vmscope.
//!
//! The device is a typed field of the [`Bus`](crate::bus::Bus), like the interrupt
//! controllers, because it needs the bus's clock, which [`PortDevice`](super::PortDevice)s
//! do not see.

use super::IoAction;

/// The first port. QEMU's `pc` machine (with SeaBIOS) leaves 0x0e90..0x0eaf unassigned: it
/// is clear of the ISA legacy ports (below 0x400), debugcon (0x402), the ELCR (0x4d0),
/// isa-debug-exit (0x501, or 0xf4 as vmscope's users configure it), pvpanic (0x505), fw_cfg
/// (0x510..0x51b), the ACPI PM and SMBus blocks (0x600 and 0x700 in current SeaBIOS,
/// 0xb000 and 0xb100 in old ones), memory hotplug (0xa00..0xa17), the q35 hotplug blocks
/// (0xcc4..0xce3), PCI configuration and reset (0xcf8..0xcff), the piix hotplug blocks at
/// 0xae00.., and the PCI I/O BARs, which SeaBIOS places from 0xc000 (from 0x1000 when they
/// need more room).
pub const PVPORT_BASE: u16 = 0x0e90;
/// Number of ports decoded, the reserved trace-annotation registers included.
pub const PVPORT_SIZE: u16 = 0x20;

/// Value of the signature register: "VMSC" read as a little-endian `u32`.
pub const SIGNATURE: u32 = u32::from_le_bytes(*b"VMSC");

/// Register offsets from [`PVPORT_BASE`].
pub mod reg {
    /// Read: [`super::SIGNATURE`].
    pub const SIGNATURE: u16 = 0x0;
    /// Read: low 32 bits of the instruction count; latches the high 32 bits.
    pub const ICOUNT_LO: u16 = 0x4;
    /// Read: the high 32 bits latched by the last read of [`ICOUNT_LO`].
    pub const ICOUNT_HI: u16 = 0x8;
    /// Write: low 32 bits of the guest-virtual address of an annotation record; the write
    /// submits it (see `crate::ostrace`).
    pub const TRACE_PTR_LO: u16 = trace_abi::TRACE_PTR_LO;
    /// Write: high 32 bits of the next record's address (latched).
    pub const TRACE_PTR_HI: u16 = trace_abi::TRACE_PTR_HI;
    /// Read: bit 0 set while the bus has a trace sink (records of every system call are
    /// wanted).
    pub const TRACE_WANTED: u16 = trace_abi::TRACE_WANTED;
    /// First register reserved for trace annotations.
    pub const TRACE_FIRST: u16 = 0x10;
    /// Last port reserved for trace annotations.
    pub const TRACE_LAST: u16 = 0x1f;
}

/// The port's state: the latched high half of the instruction count, and the annotation
/// address being written.
#[derive(Debug, Default, Clone)]
pub struct PvPort {
    icount_hi: u32,
    /// High half of the next annotation's address ([`reg::TRACE_PTR_HI`]).
    trace_hi: u32,
    /// A submitted annotation, waiting for the CPU to read it ([`Self::take_annotation`]).
    annotation: Option<u64>,
}

impl PvPort {
    pub fn new() -> Self {
        Self::default()
    }

    /// The register offset of `port`, if the device decodes it.
    #[inline]
    pub fn offset(port: u16) -> Option<u16> {
        let off = port.wrapping_sub(PVPORT_BASE);
        (off < PVPORT_SIZE).then_some(off)
    }

    /// Read `size` (1, 2 or 4) bytes at register offset `off`; `now` is the instruction
    /// count of the reading instruction, `traced` whether a trace sink is attached.
    pub fn read(&mut self, off: u16, size: u8, now: u64, traced: bool) -> u32 {
        let v = match off {
            reg::TRACE_WANTED => u32::from(traced),
            reg::SIGNATURE => SIGNATURE,
            reg::ICOUNT_LO => {
                self.icount_hi = (now >> 32) as u32;
                now as u32
            }
            reg::ICOUNT_HI => self.icount_hi,
            _ => 0,
        };
        match size {
            1 => v & 0xff,
            2 => v & 0xffff,
            _ => v,
        }
    }

    /// Write at register offset `off`: only the annotation address registers take writes
    /// (32-bit only; narrower writes are ignored).
    pub fn write(&mut self, off: u16, size: u8, val: u32) -> IoAction {
        if size == 4 {
            match off {
                reg::TRACE_PTR_HI => self.trace_hi = val,
                reg::TRACE_PTR_LO => {
                    self.annotation = Some(u64::from(self.trace_hi) << 32 | u64::from(val))
                }
                _ => {}
            }
        }
        IoAction::None
    }

    /// The address of a record the guest just submitted, once. The CPU reads the record
    /// after the `out` (it needs the page tables, which the device cannot see).
    #[inline]
    pub fn take_annotation(&mut self) -> Option<u64> {
        self.annotation.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_reads_vmsc() {
        let mut p = PvPort::new();
        assert_eq!(p.read(reg::SIGNATURE, 4, 0, false), 0x4353_4d56);
        assert_eq!(p.read(reg::SIGNATURE, 1, 0, false), u32::from(b'V'));
        assert_eq!(p.read(reg::SIGNATURE, 2, 0, false), 0x4d56);
        assert_eq!(PvPort::offset(0x0e90), Some(0));
        assert_eq!(PvPort::offset(0x0eaf), Some(0x1f));
        assert_eq!(PvPort::offset(0x0eb0), None);
        assert_eq!(PvPort::offset(0x0e8f), None);
    }

    #[test]
    fn low_read_latches_the_high_half() {
        let mut p = PvPort::new();
        let t0 = 0x1_2345_6789_u64;
        assert_eq!(p.read(reg::ICOUNT_LO, 4, t0, false), 0x2345_6789);
        // Time moves on (and the high half changes); the latch keeps the old high half.
        assert_eq!(p.read(reg::ICOUNT_HI, 4, 0x7_0000_0000, false), 1);
        assert_eq!(p.read(reg::ICOUNT_HI, 4, 0x7_0000_0000, false), 1);
        assert_eq!(p.read(reg::ICOUNT_LO, 4, 0x7_0000_0005, false), 5);
        assert_eq!(p.read(reg::ICOUNT_HI, 4, 0, false), 7);
    }

    #[test]
    fn annotation_address_is_latched_then_submitted() {
        let mut p = PvPort::new();
        p.write(reg::TRACE_PTR_HI, 4, 0xffff_c900);
        assert_eq!(p.take_annotation(), None);
        p.write(reg::TRACE_PTR_LO, 2, 0x1234);
        assert_eq!(p.take_annotation(), None, "narrow writes are ignored");
        p.write(reg::TRACE_PTR_LO, 4, 0x0001_2340);
        assert_eq!(p.take_annotation(), Some(0xffff_c900_0001_2340));
        assert_eq!(p.take_annotation(), None, "taken once");
    }

    #[test]
    fn other_offsets_read_zero_and_ignore_writes() {
        let mut p = PvPort::new();
        for off in [0x1, 0x3, 0xc, reg::TRACE_FIRST, 0x14, reg::TRACE_LAST] {
            assert_eq!(p.write(off, 4, 0xffff_ffff), IoAction::None);
            assert_eq!(p.read(off, 4, 42, false), 0, "offset {off:#x}");
        }
        p.take_annotation();
        assert_eq!(p.write(reg::ICOUNT_HI, 4, 9), IoAction::None);
        assert_eq!(p.read(reg::SIGNATURE, 4, 0, false), SIGNATURE);
        assert_eq!(p.read(reg::ICOUNT_HI, 4, 0, false), 0);
    }
}
