//! The I/O APIC of QEMU's `pc` machine (82093AA datasheet; QEMU's hw/intc/ioapic.c):
//! 24 pins at 0xFEC00000, version 0x20 (with the EOI register at +0x40, as QEMU's
//! default), ID 0. ISA IRQs reach it as QEMU wires them: IRQ 0 (the PIT) on pin 2, every
//! other ISA IRQ on the pin of its number. The 8259 pair stays connected too (virtual
//! wire mode: the OS masks one or the other).
//!
//! Delivery follows QEMU: an edge-triggered pin latches a rising edge in its IRR bit and
//! delivers it (a rising edge on a masked pin is ignored, not held pending: 82093AA
//! datasheet, IOREDTBL bit 16); a level-triggered pin delivers while its line is high and
//! remote IRR is clear, sets remote IRR, and waits for an EOI for its vector (the local
//! APIC's EOI broadcast, or a write to the EOI register). With one CPU, a fixed or
//! lowest-priority message goes to it when the destination names it (physical: its APIC
//! ID or the broadcast 0xFF; logical: a bit of its logical ID); NMI and ExtINT messages are
//! logged and dropped (no guest here routes them through the IOAPIC).

/// The register window's physical base and size.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
pub const IOAPIC_SIZE: u64 = 0x1000;
/// Number of input pins (redirection entries).
pub const IOAPIC_PINS: usize = 24;
/// The version QEMU reports for the `pc` machine's IOAPIC (0x20: has the EOI register).
pub const IOAPIC_VERSION: u32 = 0x20;

/// MMIO offsets: the index register, the data window, the EOI register.
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const IOEOI: u64 = 0x40;

/// Indirect register indices.
const REG_ID: u8 = 0x00;
const REG_VER: u8 = 0x01;
const REG_ARB: u8 = 0x02;
const REG_REDTBL: u8 = 0x10;

/// Redirection entry bits.
const RTE_VECTOR: u64 = 0xff;
const RTE_DELIVERY_MODE_SHIFT: u32 = 8;
const RTE_DEST_LOGICAL: u64 = 1 << 11;
const RTE_DELIVERY_STATUS: u64 = 1 << 12;
const RTE_REMOTE_IRR: u64 = 1 << 14;
const RTE_LEVEL: u64 = 1 << 15;
const RTE_MASKED: u64 = 1 << 16;
const RTE_DEST_SHIFT: u32 = 56;
/// The bits software can write (delivery status and remote IRR are read-only).
const RTE_WRITABLE: u64 = !(RTE_DELIVERY_STATUS | RTE_REMOTE_IRR);
/// The ID register's field (bits 27:24).
const ID_SHIFT: u32 = 24;
const ID_MASK: u32 = 0xf;

/// Delivery modes.
const MODE_FIXED: u64 = 0;
const MODE_LOWEST: u64 = 1;

/// The IOAPIC pin an ISA IRQ line drives (QEMU's `pc`: the PIT's IRQ 0 on pin 2).
pub fn isa_irq_pin(line: u8) -> usize {
    if line == 0 {
        2
    } else {
        line as usize
    }
}

/// An interrupt message for the local APICs: the bus hands it to the APIC its
/// destination names (physical ID or logical, as the local APIC matches it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApicMessage {
    pub vector: u8,
    pub level: bool,
    pub dest: u8,
    pub logical: bool,
    /// Lowest-priority delivery: one of the destinations takes it.
    pub lowest: bool,
}

pub struct IoApic {
    id: u8,
    ioregsel: u8,
    redtbl: [u64; IOAPIC_PINS],
    /// Requests latched per pin (edge) or the line level (level).
    irr: u32,
    /// Line levels last seen (edge detection).
    lines: u32,
}

impl Default for IoApic {
    fn default() -> Self {
        Self::new()
    }
}

impl IoApic {
    /// Reset state: every entry masked, edge, fixed, vector 0.
    pub fn new() -> Self {
        IoApic {
            id: 0,
            ioregsel: 0,
            redtbl: [RTE_MASKED; IOAPIC_PINS],
            irr: 0,
            lines: 0,
        }
    }

    pub fn entry(&self, pin: usize) -> Option<u64> {
        self.redtbl.get(pin).copied()
    }

    /// A pin's line changed; returns the messages it delivers.
    pub fn set_irq(&mut self, pin: usize, level: bool) -> Vec<IoApicMessage> {
        if pin >= IOAPIC_PINS {
            return Vec::new();
        }
        let m = 1u32 << pin;
        let rising = level && self.lines & m == 0;
        if level {
            self.lines |= m;
        } else {
            self.lines &= !m;
        }
        let e = self.redtbl[pin];
        if e & RTE_LEVEL != 0 {
            if level {
                self.irr |= m;
            } else {
                self.irr &= !m;
            }
        } else if rising && e & RTE_MASKED == 0 {
            // 82093AA datasheet, IOREDTBL bit 16: "Edge-sensitive interrupts signaled on
            // a masked interrupt pin are ignored (i.e., not delivered or held pending)."
            self.irr |= m;
        }
        self.service()
    }

    /// Deliver what is pending and deliverable.
    fn service(&mut self) -> Vec<IoApicMessage> {
        let mut out = Vec::new();
        for pin in 0..IOAPIC_PINS {
            let m = 1u32 << pin;
            if self.irr & m == 0 {
                continue;
            }
            let e = self.redtbl[pin];
            if e & RTE_MASKED != 0 {
                continue;
            }
            let level = e & RTE_LEVEL != 0;
            if level {
                if e & RTE_REMOTE_IRR != 0 {
                    continue;
                }
                self.redtbl[pin] |= RTE_REMOTE_IRR;
            } else {
                self.irr &= !m;
            }
            let mode = (e >> RTE_DELIVERY_MODE_SHIFT) & 7;
            if mode != MODE_FIXED && mode != MODE_LOWEST {
                log::warn!("IOAPIC pin {pin}: delivery mode {mode} not modelled; dropped");
                continue;
            }
            out.push(IoApicMessage {
                vector: (e & RTE_VECTOR) as u8,
                level,
                dest: (e >> RTE_DEST_SHIFT) as u8,
                logical: e & RTE_DEST_LOGICAL != 0,
                lowest: mode == MODE_LOWEST,
            });
        }
        out
    }

    /// An EOI for `vector` (the local APIC's broadcast, or the EOI register): clear the
    /// remote IRR of level-triggered entries with that vector; a line still high
    /// delivers again.
    pub fn eoi(&mut self, vector: u8) -> Vec<IoApicMessage> {
        for e in &mut self.redtbl {
            if *e & RTE_LEVEL != 0 && (*e & RTE_VECTOR) as u8 == vector {
                *e &= !RTE_REMOTE_IRR;
            }
        }
        self.service()
    }

    pub fn mmio_read(&mut self, offset: u64, _size: u8) -> u64 {
        match offset {
            IOREGSEL => self.ioregsel as u64,
            IOWIN => self.read_register(self.ioregsel) as u64,
            _ => 0,
        }
    }

    /// A register write; returns the messages it made deliverable (an unmask).
    pub fn mmio_write(&mut self, offset: u64, _size: u8, val: u64) -> Vec<IoApicMessage> {
        match offset {
            IOREGSEL => {
                self.ioregsel = val as u8;
                Vec::new()
            }
            IOWIN => {
                self.write_register(self.ioregsel, val as u32);
                self.service()
            }
            IOEOI => self.eoi(val as u8),
            _ => Vec::new(),
        }
    }

    fn read_register(&self, index: u8) -> u32 {
        match index {
            REG_ID | REG_ARB => u32::from(self.id) << ID_SHIFT,
            REG_VER => ((IOAPIC_PINS as u32 - 1) << 16) | IOAPIC_VERSION,
            i if i >= REG_REDTBL => {
                let n = (i - REG_REDTBL) as usize;
                match self.redtbl.get(n / 2) {
                    Some(&e) if n.is_multiple_of(2) => e as u32,
                    Some(&e) => (e >> 32) as u32,
                    None => 0,
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, index: u8, v: u32) {
        match index {
            REG_ID => self.id = ((v >> ID_SHIFT) & ID_MASK) as u8,
            i if i >= REG_REDTBL => {
                let n = (i - REG_REDTBL) as usize;
                let Some(e) = self.redtbl.get_mut(n / 2) else {
                    return;
                };
                let old = *e;
                let new = if n.is_multiple_of(2) {
                    (old & !0xffff_ffff) | u64::from(v)
                } else {
                    (old & 0xffff_ffff) | (u64::from(v) << 32)
                };
                *e = (new & RTE_WRITABLE) | (old & !RTE_WRITABLE);
                let pin = n / 2;
                // Switching to edge clears remote IRR; a level entry samples the line.
                if *e & RTE_LEVEL == 0 {
                    *e &= !RTE_REMOTE_IRR;
                } else if self.lines & (1 << pin) != 0 {
                    self.irr |= 1 << pin;
                } else {
                    self.irr &= !(1 << pin);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(vector: u8, level: bool) -> IoApicMessage {
        IoApicMessage {
            vector,
            level,
            dest: 0,
            logical: false,
            lowest: false,
        }
    }

    fn write_entry(io: &mut IoApic, pin: usize, e: u64) {
        let idx = REG_REDTBL as u64 + 2 * pin as u64;
        io.mmio_write(IOREGSEL, 4, idx + 1);
        io.mmio_write(IOWIN, 4, e >> 32);
        io.mmio_write(IOREGSEL, 4, idx);
        io.mmio_write(IOWIN, 4, e & 0xffff_ffff);
    }

    #[test]
    fn version_and_id() {
        let mut io = IoApic::new();
        io.mmio_write(IOREGSEL, 4, REG_VER as u64);
        assert_eq!(io.mmio_read(IOWIN, 4), 0x0017_0020);
        io.mmio_write(IOREGSEL, 4, REG_ID as u64);
        assert_eq!(io.mmio_read(IOWIN, 4), 0);
        // Out-of-range indices read 0 and ignore writes.
        io.mmio_write(IOREGSEL, 4, 0xff);
        io.mmio_write(IOWIN, 4, 0x1234);
        assert_eq!(io.mmio_read(IOWIN, 4), 0);
    }

    #[test]
    fn edge_pin_delivers_on_rising_edge_and_ignores_edges_while_masked() {
        let mut io = IoApic::new();
        assert!(io.set_irq(2, true).is_empty(), "masked at reset");
        io.set_irq(2, false);
        // Unmasking does not deliver the edge seen while masked (82093AA: not held
        // pending).
        let m = {
            let idx = REG_REDTBL as u64 + 4;
            io.mmio_write(IOREGSEL, 4, idx);
            io.mmio_write(IOWIN, 4, 0x30)
        };
        assert!(m.is_empty());
        assert_eq!(io.set_irq(2, true), [msg(0x30, false)]);
        assert!(io.set_irq(2, true).is_empty(), "no edge");
        // Masked while the line rises and falls, then unmasked: one interrupt for the
        // next rising edge (kvm-unit-tests ioapic, test_ioapic_edge_mask).
        io.set_irq(2, false);
        write_entry(&mut io, 2, RTE_MASKED | 0x30);
        assert!(io.set_irq(2, true).is_empty());
        io.set_irq(2, false);
        assert!(
            io.mmio_write(IOWIN, 4, 0x30).is_empty(),
            "unmask delivers nothing"
        );
        assert_eq!(io.set_irq(2, true), [msg(0x30, false)]);
    }

    #[test]
    fn masked_level_pin_delivers_when_unmasked_if_still_high() {
        let mut io = IoApic::new();
        write_entry(&mut io, 14, RTE_MASKED | RTE_LEVEL | 0x82);
        assert!(io.set_irq(14, true).is_empty());
        let m = io.mmio_write(IOWIN, 4, RTE_LEVEL | 0x82);
        assert_eq!(m, [msg(0x82, true)]);
        assert_ne!(io.entry(14).unwrap() & RTE_REMOTE_IRR, 0);
    }

    #[test]
    fn level_pin_waits_for_eoi() {
        let mut io = IoApic::new();
        write_entry(&mut io, 11, RTE_LEVEL | 0x41);
        assert_eq!(io.set_irq(11, true).len(), 1);
        assert_ne!(io.entry(11).unwrap() & RTE_REMOTE_IRR, 0);
        // Still high: nothing more until the EOI, which delivers again.
        assert!(io.set_irq(11, true).is_empty());
        assert_eq!(io.eoi(0x41).len(), 1);
        io.set_irq(11, false);
        assert!(io.eoi(0x41).is_empty());
        assert_eq!(io.entry(11).unwrap() & RTE_REMOTE_IRR, 0);
    }

    #[test]
    fn message_carries_the_destination() {
        let mut io = IoApic::new();
        write_entry(
            &mut io,
            5,
            (1u64 << RTE_DEST_SHIFT) | RTE_DEST_LOGICAL | 0x51,
        );
        let m = io.set_irq(5, true);
        assert_eq!(m[0].dest, 1);
        assert!(m[0].logical);
        assert!(io.set_irq(99, true).is_empty(), "bad pins are ignored");
    }
}
