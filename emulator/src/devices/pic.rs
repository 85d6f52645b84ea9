//! The two cascaded 8259A programmable interrupt controllers of the PC/AT (Intel 8259A
//! datasheet), as QEMU's `i8259` models them: the master at ports 0x20/0x21 takes IRQ 0-7,
//! the slave at 0xA0/0xA1 takes IRQ 8-15 and drives the master's IRQ 2. ELCR at
//! 0x4D0/0x4D1 selects level triggering per line (PIIX), as on QEMU's `pc`.
//!
//! Devices raise and lower lines with [`Pic::set_irq`] (the bus offers it as
//! `Bus::set_irq` and the `IoAction::Irq` reply of a port device). The master's INT output
//! ([`Pic::output`]) reaches the CPU through LINT0 in ExtINT mode; the CPU's INTA cycle is
//! [`Pic::acknowledge`], which returns the vector.

/// Master command/status and data/mask ports.
pub const MASTER_CMD: u16 = 0x20;
pub const MASTER_DATA: u16 = 0x21;
/// Slave command/status and data/mask ports.
pub const SLAVE_CMD: u16 = 0xa0;
pub const SLAVE_DATA: u16 = 0xa1;
/// Edge/level control registers (one per chip).
pub const ELCR_MASTER: u16 = 0x4d0;
pub const ELCR_SLAVE: u16 = 0x4d1;

/// The master input the slave's INT output is wired to.
pub const CASCADE_IRQ: u8 = 2;
/// IRQ lines (0..15).
pub const IRQ_LINES: u8 = 16;

/// ICW1 bits.
pub const ICW1_IC4: u8 = 1 << 0;
pub const ICW1_SNGL: u8 = 1 << 1;
pub const ICW1_LTIM: u8 = 1 << 3;
/// Bit 4 set on the command port: this is ICW1 (starts initialisation).
pub const ICW1_INIT: u8 = 1 << 4;
/// ICW4 bits.
pub const ICW4_8086: u8 = 1 << 0;
pub const ICW4_AEOI: u8 = 1 << 1;
pub const ICW4_SFNM: u8 = 1 << 4;
/// Command-port bit 3 set (with bit 4 clear): OCW3; clear: OCW2.
pub const OCW3_SELECT: u8 = 1 << 3;
pub const OCW3_RIS: u8 = 1 << 0;
pub const OCW3_RR: u8 = 1 << 1;
pub const OCW3_POLL: u8 = 1 << 2;
pub const OCW3_SMM: u8 = 1 << 5;
pub const OCW3_ESMM: u8 = 1 << 6;
/// OCW2 commands (bits 7:5).
pub mod ocw2 {
    pub const ROTATE_AEOI_CLEAR: u8 = 0;
    pub const NON_SPECIFIC_EOI: u8 = 1;
    pub const NOP: u8 = 2;
    pub const SPECIFIC_EOI: u8 = 3;
    pub const ROTATE_AEOI_SET: u8 = 4;
    pub const ROTATE_NON_SPECIFIC_EOI: u8 = 5;
    pub const SET_PRIORITY: u8 = 6;
    pub const ROTATE_SPECIFIC_EOI: u8 = 7;
}

/// The IRQ reported for an INTA with nothing to deliver: the datasheet's "default IR7".
const SPURIOUS_IRQ: u8 = 7;

/// Where the initialisation sequence stands: which ICW the data port expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Init {
    #[default]
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A.
#[derive(Debug, Clone, Default)]
struct Chip {
    irr: u8,
    isr: u8,
    imr: u8,
    /// Input levels last seen (edge detection).
    lines: u8,
    /// Level-triggered lines (ELCR; all of them with ICW1.LTIM).
    elcr: u8,
    elcr_writable: u8,
    ltim: bool,
    /// The IRQ with the lowest priority is `priority_add - 1` (rotation).
    priority_add: u8,
    vector_base: u8,
    init: Init,
    icw4_needed: bool,
    single: bool,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    special_mask: bool,
    /// OCW3 RR/RIS: the command port reads the ISR instead of the IRR.
    read_isr: bool,
    /// OCW3 poll: the next command-port read is a poll.
    poll: bool,
    is_master: bool,
}

impl Chip {
    fn new(is_master: bool, elcr_writable: u8) -> Self {
        Chip {
            is_master,
            elcr_writable,
            ..Chip::default()
        }
    }

    fn level_triggered(&self) -> u8 {
        if self.ltim {
            0xff
        } else {
            self.elcr
        }
    }

    /// An input changed level: edge-triggered lines latch a rising edge into the IRR;
    /// level-triggered lines follow the level.
    fn set_irq(&mut self, irq: u8, level: bool) {
        let m = 1u8 << (irq & 7);
        if self.level_triggered() & m != 0 {
            if level {
                self.irr |= m;
            } else {
                self.irr &= !m;
            }
        } else if level && self.lines & m == 0 {
            self.irr |= m;
        }
        if level {
            self.lines |= m;
        } else {
            self.lines &= !m;
        }
    }

    /// Priority (0 = highest) of the best request in `mask`, counting from the rotation
    /// point; 8 if none.
    fn priority(&self, mask: u8) -> u8 {
        if mask == 0 {
            return 8;
        }
        (0..8)
            .find(|p| mask & (1 << ((p + self.priority_add) & 7)) != 0)
            .unwrap_or(8)
    }

    /// The IRQ this chip would present (its INT output), after masking and the in-service
    /// priority check.
    fn pending(&self) -> Option<u8> {
        let req = self.priority(self.irr & !self.imr);
        if req == 8 {
            return None;
        }
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.special_fully_nested && self.is_master {
            // The slave's input does not block further slave requests.
            in_service &= !(1 << CASCADE_IRQ);
        }
        (req < self.priority(in_service)).then_some((req + self.priority_add) & 7)
    }

    /// The INTA pulses for `irq`: set ISR (unless auto-EOI), clear an edge request.
    fn intack(&mut self, irq: u8) {
        let m = 1u8 << irq;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_add = (irq + 1) & 7;
            }
        } else {
            self.isr |= m;
        }
        if self.level_triggered() & m == 0 {
            self.irr &= !m;
        }
    }

    /// ICW1: start initialisation. The datasheet: IMR cleared, IR7 lowest priority,
    /// special mask mode cleared, status read set to IRR; edge detection restarts.
    fn icw1(&mut self, v: u8) {
        *self = Chip {
            irr: self.irr & self.elcr,
            elcr: self.elcr,
            elcr_writable: self.elcr_writable,
            is_master: self.is_master,
            init: Init::Icw2,
            icw4_needed: v & ICW1_IC4 != 0,
            single: v & ICW1_SNGL != 0,
            ltim: v & ICW1_LTIM != 0,
            ..Chip::default()
        };
    }

    fn write_command(&mut self, v: u8) {
        if v & ICW1_INIT != 0 {
            self.icw1(v);
        } else if v & OCW3_SELECT != 0 {
            if v & OCW3_POLL != 0 {
                self.poll = true;
            }
            if v & OCW3_RR != 0 {
                self.read_isr = v & OCW3_RIS != 0;
            }
            if v & OCW3_ESMM != 0 {
                self.special_mask = v & OCW3_SMM != 0;
            }
        } else {
            self.ocw2(v);
        }
    }

    fn ocw2(&mut self, v: u8) {
        let level = v & 7;
        match v >> 5 {
            ocw2::ROTATE_AEOI_CLEAR => self.rotate_on_auto_eoi = false,
            ocw2::ROTATE_AEOI_SET => self.rotate_on_auto_eoi = true,
            cmd @ (ocw2::NON_SPECIFIC_EOI | ocw2::ROTATE_NON_SPECIFIC_EOI) => {
                let p = self.priority(self.isr);
                if p != 8 {
                    let irq = (p + self.priority_add) & 7;
                    self.isr &= !(1 << irq);
                    if cmd == ocw2::ROTATE_NON_SPECIFIC_EOI {
                        self.priority_add = (irq + 1) & 7;
                    }
                }
            }
            ocw2::SPECIFIC_EOI => self.isr &= !(1 << level),
            ocw2::SET_PRIORITY => self.priority_add = (level + 1) & 7,
            ocw2::ROTATE_SPECIFIC_EOI => {
                self.isr &= !(1 << level);
                self.priority_add = (level + 1) & 7;
            }
            _ => {} // ocw2::NOP
        }
    }

    fn write_data(&mut self, v: u8) {
        match self.init {
            Init::Ready => self.imr = v, // OCW1
            Init::Icw2 => {
                // ICW2: the vector of IRQ 0 (bits 2:0 come from the IRQ number).
                self.vector_base = v & 0xf8;
                self.init = match (self.single, self.icw4_needed) {
                    (false, _) => Init::Icw3,
                    (true, true) => Init::Icw4,
                    (true, false) => Init::Ready,
                };
            }
            Init::Icw3 => {
                // ICW3 (cascade wiring) is fixed on the PC: master IRQ 2, slave ID 2.
                self.init = if self.icw4_needed {
                    Init::Icw4
                } else {
                    Init::Ready
                };
            }
            Init::Icw4 => {
                if v & ICW4_8086 == 0 {
                    log::warn!("8259: ICW4 selects 8080/8085 mode, which a PC cannot use");
                }
                self.auto_eoi = v & ICW4_AEOI != 0;
                self.special_fully_nested = v & ICW4_SFNM != 0;
                self.init = Init::Ready;
            }
        }
    }

    /// Command-port read: a poll result (bit 7 = request, bits 2:0 = level), or IRR/ISR.
    fn read_command(&mut self) -> u8 {
        if self.poll {
            self.poll = false;
            return match self.pending() {
                Some(irq) => {
                    self.intack(irq);
                    0x80 | irq
                }
                None => 0,
            };
        }
        if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }
}

/// The master/slave pair.
#[derive(Debug, Clone)]
pub struct Pic {
    chips: [Chip; 2],
}

impl Default for Pic {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic {
    /// Both chips uninitialised (all requests unmasked, vector base 0), as at power-up.
    pub fn new() -> Self {
        // ELCR: IRQ 0, 1, 2 (master) and 8, 13 (slave) are always edge (PIIX).
        Pic {
            chips: [Chip::new(true, 0xf8), Chip::new(false, 0xde)],
        }
    }

    /// Whether `port` belongs to the PIC pair.
    #[inline]
    pub fn claims(port: u16) -> bool {
        matches!(
            port,
            MASTER_CMD | MASTER_DATA | SLAVE_CMD | SLAVE_DATA | ELCR_MASTER | ELCR_SLAVE
        )
    }

    /// Raise (`true`) or lower an IRQ line (0..15); other numbers are ignored.
    pub fn set_irq(&mut self, line: u8, level: bool) {
        if line >= IRQ_LINES {
            log::warn!("8259: IRQ {line} does not exist; ignored");
            return;
        }
        self.chips[(line >> 3) as usize].set_irq(line & 7, level);
        self.cascade();
    }

    /// The slave's INT output drives master IRQ 2.
    fn cascade(&mut self) {
        let slave = self.chips[1].pending().is_some();
        self.chips[0].set_irq(CASCADE_IRQ, slave);
    }

    /// The master's INT output.
    pub fn output(&self) -> bool {
        self.chips[0].pending().is_some()
    }

    /// The INTA cycle: the vector of the highest-priority request, with ISR set on the
    /// chip(s) involved. With nothing to deliver (a request withdrawn before INTA) the
    /// chip answers with IR7, the datasheet's spurious interrupt.
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.chips[0].pending() {
            Some(CASCADE_IRQ) => {
                self.chips[0].intack(CASCADE_IRQ);
                let irq = match self.chips[1].pending() {
                    Some(irq) => {
                        self.chips[1].intack(irq);
                        irq
                    }
                    None => SPURIOUS_IRQ,
                };
                self.chips[1].vector_base | irq
            }
            Some(irq) => {
                self.chips[0].intack(irq);
                self.chips[0].vector_base | irq
            }
            None => self.chips[0].vector_base | SPURIOUS_IRQ,
        };
        self.cascade();
        vector
    }

    /// A guest `in` of one byte.
    pub fn read(&mut self, port: u16) -> u8 {
        let v = match port {
            MASTER_CMD => self.chips[0].read_command(),
            SLAVE_CMD => self.chips[1].read_command(),
            MASTER_DATA => self.chips[0].imr,
            SLAVE_DATA => self.chips[1].imr,
            ELCR_MASTER => self.chips[0].elcr,
            ELCR_SLAVE => self.chips[1].elcr,
            _ => 0xff,
        };
        self.cascade();
        v
    }

    /// A guest `out` of one byte.
    pub fn write(&mut self, port: u16, v: u8) {
        match port {
            MASTER_CMD => self.chips[0].write_command(v),
            SLAVE_CMD => self.chips[1].write_command(v),
            MASTER_DATA => self.chips[0].write_data(v),
            SLAVE_DATA => self.chips[1].write_data(v),
            ELCR_MASTER | ELCR_SLAVE => {
                let c = &mut self.chips[(port == ELCR_SLAVE) as usize];
                c.elcr = v & c.elcr_writable;
            }
            _ => {}
        }
        self.cascade();
    }

    /// Vector base programmed by ICW2 (for reports and tests).
    pub fn vector_base(&self, slave: bool) -> u8 {
        self.chips[slave as usize].vector_base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence Linux and the guest kernel use: ICW1 edge+ICW4, ICW2 vector base,
    /// ICW3 cascade, ICW4 8086 mode.
    fn remapped(master: u8, slave: u8) -> Pic {
        let mut p = Pic::new();
        p.write(MASTER_CMD, ICW1_INIT | ICW1_IC4);
        p.write(SLAVE_CMD, ICW1_INIT | ICW1_IC4);
        p.write(MASTER_DATA, master);
        p.write(SLAVE_DATA, slave);
        p.write(MASTER_DATA, 1 << CASCADE_IRQ);
        p.write(SLAVE_DATA, CASCADE_IRQ);
        p.write(MASTER_DATA, ICW4_8086);
        p.write(SLAVE_DATA, ICW4_8086);
        p
    }

    fn eoi(p: &mut Pic, slave: bool) {
        p.write(
            if slave { SLAVE_CMD } else { MASTER_CMD },
            ocw2::NON_SPECIFIC_EOI << 5,
        );
    }

    #[test]
    fn init_sequence_sets_vectors_and_clears_masks() {
        let mut p = remapped(0x20, 0x28);
        assert_eq!(p.vector_base(false), 0x20);
        assert_eq!(p.vector_base(true), 0x28);
        assert_eq!(p.read(MASTER_DATA), 0);
        p.write(MASTER_DATA, 0xfb);
        p.write(SLAVE_DATA, 0xff);
        assert_eq!(p.read(MASTER_DATA), 0xfb);
        assert_eq!(p.read(SLAVE_DATA), 0xff);
        // A new ICW1 clears the mask again.
        p.write(MASTER_CMD, ICW1_INIT | ICW1_IC4);
        p.write(MASTER_DATA, 0x40);
        p.write(MASTER_DATA, 4);
        p.write(MASTER_DATA, ICW4_8086);
        assert_eq!(p.read(MASTER_DATA), 0);
        assert_eq!(p.vector_base(false), 0x40);
    }

    #[test]
    fn master_irq_acknowledge_and_eoi() {
        let mut p = remapped(0x20, 0x28);
        assert!(!p.output());
        p.set_irq(0, true);
        assert!(p.output());
        assert_eq!(p.acknowledge(), 0x20);
        assert!(!p.output(), "edge request cleared by INTA");
        p.write(MASTER_CMD, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(p.read(MASTER_CMD), 1);
        eoi(&mut p, false);
        assert_eq!(p.read(MASTER_CMD), 0);
        // The line is still high: no new edge, no new request.
        assert!(!p.output());
        p.set_irq(0, false);
        p.set_irq(0, true);
        assert!(p.output());
    }

    #[test]
    fn masked_lines_stay_pending_in_irr() {
        let mut p = remapped(0x20, 0x28);
        p.write(MASTER_DATA, 0xff);
        p.set_irq(3, true);
        assert!(!p.output());
        p.write(MASTER_CMD, OCW3_SELECT | OCW3_RR);
        assert_eq!(p.read(MASTER_CMD), 1 << 3);
        p.write(MASTER_DATA, !(1 << 3));
        assert!(p.output());
        assert_eq!(p.acknowledge(), 0x23);
    }

    #[test]
    fn priority_and_in_service_blocking() {
        let mut p = remapped(0x20, 0x28);
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), 0x24);
        p.set_irq(5, true);
        assert!(!p.output(), "IRQ 5 waits for IRQ 4's EOI");
        p.set_irq(1, true);
        assert!(p.output(), "IRQ 1 nests");
        assert_eq!(p.acknowledge(), 0x21);
        eoi(&mut p, false); // clears IRQ 1, the highest in service
        assert!(!p.output());
        // Specific EOI for IRQ 4.
        p.write(MASTER_CMD, (ocw2::SPECIFIC_EOI << 5) | 4);
        assert_eq!(p.acknowledge(), 0x25);
    }

    #[test]
    fn slave_cascades_through_irq2() {
        let mut p = remapped(0x20, 0x28);
        p.set_irq(10, true);
        assert!(p.output());
        assert_eq!(p.acknowledge(), 0x2a);
        p.write(SLAVE_CMD, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        p.write(MASTER_CMD, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(p.read(SLAVE_CMD), 1 << 2);
        assert_eq!(p.read(MASTER_CMD), 1 << CASCADE_IRQ);
        eoi(&mut p, true);
        eoi(&mut p, false);
        assert_eq!(p.read(SLAVE_CMD), 0);
        assert_eq!(p.read(MASTER_CMD), 0);
        // Masking the cascade input hides the slave.
        p.write(MASTER_DATA, 1 << CASCADE_IRQ);
        p.set_irq(10, false);
        p.set_irq(10, true);
        assert!(!p.output());
    }

    #[test]
    fn spurious_irq7_when_nothing_is_pending() {
        let mut p = remapped(0x20, 0x28);
        assert_eq!(p.acknowledge(), 0x27);
        p.write(MASTER_CMD, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(p.read(MASTER_CMD), 0, "a spurious INTA sets no ISR bit");
    }

    #[test]
    fn auto_eoi_and_poll() {
        let mut p = Pic::new();
        p.write(MASTER_CMD, ICW1_INIT | ICW1_IC4);
        p.write(MASTER_DATA, 0x08);
        p.write(MASTER_DATA, 4);
        p.write(MASTER_DATA, ICW4_8086 | ICW4_AEOI);
        p.set_irq(6, true);
        assert_eq!(p.acknowledge(), 0x0e);
        p.write(MASTER_CMD, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(p.read(MASTER_CMD), 0, "auto-EOI leaves no ISR bit");
        p.set_irq(1, true);
        p.write(MASTER_CMD, OCW3_SELECT | OCW3_POLL);
        assert_eq!(p.read(MASTER_CMD), 0x81);
        p.write(MASTER_CMD, OCW3_SELECT | OCW3_POLL);
        assert_eq!(p.read(MASTER_CMD), 0);
    }

    #[test]
    fn level_triggered_lines_follow_the_level() {
        let mut p = remapped(0x20, 0x28);
        p.write(ELCR_SLAVE, 0xff);
        assert_eq!(p.read(ELCR_SLAVE), 0xde);
        p.set_irq(9, true);
        assert_eq!(p.acknowledge(), 0x29);
        eoi(&mut p, true);
        eoi(&mut p, false);
        assert!(p.output(), "still high: requested again");
        // Withdrawn before INTA: the slave answers with its default IR7 (the datasheet's
        // spurious interrupt), through the master's latched cascade request.
        p.set_irq(9, false);
        assert_eq!(p.acknowledge(), 0x2f);
        assert!(!p.output());
    }

    #[test]
    fn rotation_changes_priority() {
        let mut p = remapped(0x20, 0x28);
        // Set priority: IRQ 3 lowest, so IRQ 4 is highest.
        p.write(MASTER_CMD, (ocw2::SET_PRIORITY << 5) | 3);
        p.set_irq(1, true);
        p.set_irq(5, true);
        assert_eq!(p.acknowledge(), 0x25);
    }

    #[test]
    fn no_port_value_panics() {
        let mut p = Pic::new();
        for port in [
            MASTER_CMD,
            MASTER_DATA,
            SLAVE_CMD,
            SLAVE_DATA,
            ELCR_MASTER,
            ELCR_SLAVE,
        ] {
            for v in 0..=255u8 {
                p.write(port, v);
                p.read(port);
                p.set_irq(v & 15, v & 16 != 0);
                p.acknowledge();
            }
        }
        p.set_irq(200, true);
    }
}
