//! The legacy 8259A pair (master at 0x20, slave at 0xA0). The kernel takes its interrupts
//! from the local APIC, so it does what Linux does then (`init_8259A` followed by
//! `mask_all`): reprogram both chips so that their vectors (0x20..0x2F) cannot be mistaken
//! for exceptions, and mask every line.

use crate::arch::x86_64::port::{inb, outb};

const MASTER_CMD: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_CMD: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;

/// ICW1: initialisation, ICW4 follows (edge triggered, cascade mode).
const ICW1_INIT: u8 = 0x10;
const ICW1_ICW4: u8 = 0x01;
/// ICW4: 8086 mode, normal EOI.
const ICW4_8086: u8 = 0x01;
/// The master input the slave is wired to.
const CASCADE_IRQ: u8 = 2;
/// OCW3: read the IRR / the ISR on the next command-port read.
const OCW3_READ_IRR: u8 = 0x0a;
const OCW3_READ_ISR: u8 = 0x0b;
/// OCW2: specific EOI for the IRQ in bits 2:0.
const OCW2_SPECIFIC_EOI: u8 = 0x60;

/// Vector of IRQ 0 (master) and IRQ 8 (slave) after [`remap_and_mask_all`].
pub const MASTER_VECTOR: u8 = 0x20;
pub const SLAVE_VECTOR: u8 = 0x28;

/// Initialise both chips with vectors [`MASTER_VECTOR`]/[`SLAVE_VECTOR`] and mask all
/// lines. Call with interrupts disabled.
pub fn remap_and_mask_all() {
    // SAFETY: the 8259 ports belong to this driver; with every line masked no interrupt
    // can come from the chips.
    unsafe {
        outb(MASTER_DATA, 0xff);
        outb(SLAVE_DATA, 0xff);
        outb(MASTER_CMD, ICW1_INIT | ICW1_ICW4);
        outb(SLAVE_CMD, ICW1_INIT | ICW1_ICW4);
        outb(MASTER_DATA, MASTER_VECTOR); // ICW2
        outb(SLAVE_DATA, SLAVE_VECTOR);
        outb(MASTER_DATA, 1 << CASCADE_IRQ); // ICW3: slave on IR2
        outb(SLAVE_DATA, CASCADE_IRQ); // ICW3: slave ID 2
        outb(MASTER_DATA, ICW4_8086);
        outb(SLAVE_DATA, ICW4_8086);
        outb(MASTER_DATA, 0xff); // OCW1: mask all
        outb(SLAVE_DATA, 0xff);
    }
}

/// The interrupt mask registers (master, slave).
pub fn masks() -> (u8, u8) {
    // SAFETY: reading the IMR has no side effects.
    unsafe { (inb(MASTER_DATA), inb(SLAVE_DATA)) }
}

/// Mask or unmask IRQ `irq` (0..15). Unmasking a slave line also unmasks the cascade.
pub fn set_masked(irq: u8, masked: bool) {
    let (port, bit) = if irq < 8 {
        (MASTER_DATA, irq)
    } else {
        (SLAVE_DATA, irq & 7)
    };
    // SAFETY: read-modify-write of this driver's mask registers.
    unsafe {
        let m = inb(port);
        outb(
            port,
            if masked {
                m | 1 << bit
            } else {
                m & !(1 << bit)
            },
        );
        if irq >= 8 && !masked {
            outb(MASTER_DATA, inb(MASTER_DATA) & !(1 << CASCADE_IRQ));
        }
    }
}

/// End of interrupt for IRQ `irq` (specific EOI; a slave IRQ also ends the cascade input).
pub fn eoi(irq: u8) {
    // SAFETY: EOI commands only clear in-service bits of this driver's chips.
    unsafe {
        if irq >= 8 {
            outb(SLAVE_CMD, OCW2_SPECIFIC_EOI | (irq & 7));
            outb(MASTER_CMD, OCW2_SPECIFIC_EOI | CASCADE_IRQ);
        } else {
            outb(MASTER_CMD, OCW2_SPECIFIC_EOI | irq);
        }
    }
}

/// The request registers (master, slave), read through OCW3.
pub fn irr() -> (u8, u8) {
    read_reg(OCW3_READ_IRR)
}

/// The in-service registers (master, slave).
pub fn isr() -> (u8, u8) {
    read_reg(OCW3_READ_ISR)
}

fn read_reg(ocw3: u8) -> (u8, u8) {
    // SAFETY: OCW3 only selects which register the command port reads.
    unsafe {
        outb(MASTER_CMD, ocw3);
        outb(SLAVE_CMD, ocw3);
        (inb(MASTER_CMD), inb(SLAVE_CMD))
    }
}
