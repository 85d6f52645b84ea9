//! What SeaBIOS (QEMU 7.2's `bios-256k.bin`, `src/fw/pciinit.c`) leaves in PCI
//! configuration space before the PVH kernel starts, so that the kernel probes the same bus
//! on vmscope as on QEMU (checked by `tests/disk.rs`, which dumps every function's 256
//! bytes on both):
//!
//! - PIRQA..D routed to ISA IRQs 10, 10, 11, 11 (PIIX3 0x60..0x63) and those IRQs made
//!   level-triggered in the ELCR (0x4d1 = 0x0c);
//! - BARs: each kind of region holds its BARs sorted by size, largest first, in bus order
//!   for equal sizes. I/O starts at 0xc000. The 32-bit non-prefetchable region ends at
//!   0xfec00000; the prefetchable one (64-bit BARs too) sits below it, each base aligned
//!   down to its largest BAR (the two swap when the prefetchable region needs the larger
//!   alignment, as here);
//! - the command register gets IO | MEMORY | SERR, and virtio devices also bus mastering
//!   (SeaBIOS drives them itself while it boots). (Booting from a disk instead of
//!   `-kernel`, SeaBIOS leaves the virtio functions at 0x0007; with `-kernel`, as vmscope
//!   boots, 0x0107.)
//! - the interrupt line of every function with a pin is its PIRQ's IRQ, except the ACPI
//!   function, whose line is the SCI, IRQ 9.

use super::{chipset, command, reg, BarKind, PciHost, PIIX3_PIRQRC};

/// SeaBIOS's `pci_irqs`: the ISA IRQ of PIRQA..D.
pub const PIRQ_IRQS: [u8; 4] = [10, 10, 11, 11];
/// The ACPI SCI line SeaBIOS writes into the PIIX4 function.
pub const ACPI_SCI_IRQ: u8 = 9;
/// Start of the I/O region SeaBIOS assigns when it needs less than 16 KiB.
pub const IO_REGION_START: u64 = 0xc000;
/// End of the 32-bit memory window (`BUILD_PCIMEM_END`: the I/O APIC's page).
pub const MEM_REGION_END: u64 = 0xfec0_0000;
/// PCI vendor of the virtio devices (whose command register also gets bus mastering).
const VIRTIO_VENDOR: u16 = super::VENDOR_REDHAT_QUMRANET;

/// Apply SeaBIOS's set-up to `host`; returns the ELCR bits (IRQ 0..15) to set.
pub fn seabios_setup(host: &mut PciHost) -> u16 {
    let mut elcr = 0u16;
    // BAR requests in bus order: (function index, BAR index, kind, size).
    let mut io = Vec::new();
    let mut mem = Vec::new();
    let mut prefmem = Vec::new();
    let mut funcs = host.functions_mut();
    for (i, (_, _, f)) in funcs.iter().enumerate() {
        for b in &f.config().bars {
            match b.kind {
                BarKind::Io => io.push((i, b.index, b.size)),
                BarKind::Mem32 => mem.push((i, b.index, b.size)),
                BarKind::Mem64 { prefetchable: true } => prefmem.push((i, b.index, b.size)),
                BarKind::Mem64 {
                    prefetchable: false,
                } => mem.push((i, b.index, b.size)),
            }
        }
    }
    for list in [&mut io, &mut mem, &mut prefmem] {
        // Stable: equal sizes stay in bus order.
        list.sort_by_key(|e| std::cmp::Reverse(e.2));
    }
    let sum = |l: &[(usize, usize, u64)]| l.iter().map(|e| e.2).sum::<u64>();
    let align = |l: &[(usize, usize, u64)]| l.first().map_or(1, |e| e.2);
    // The region with the smaller alignment ends at MEM_REGION_END, the other sits below.
    let (top, bottom) = if align(&mem) < align(&prefmem) {
        (&mem, &prefmem)
    } else {
        (&prefmem, &mem)
    };
    let top_base = align_down(MEM_REGION_END - sum(top), align(top));
    let bottom_base = align_down(top_base - sum(bottom), align(bottom));
    let mut assign = |list: &Vec<(usize, usize, u64)>, mut base: u64| {
        for &(i, bar, size) in list {
            let off = reg::BAR0 + 4 * bar;
            let c = funcs[i].2.config_mut();
            c.write(off, 4, base as u32);
            if c.bars
                .iter()
                .any(|b| b.index == bar && matches!(b.kind, BarKind::Mem64 { .. }))
            {
                c.write(off + 4, 4, (base >> 32) as u32);
            }
            base += size;
        }
    };
    assign(&io, IO_REGION_START);
    assign(top, top_base);
    assign(bottom, bottom_base);

    for (dev, func, f) in funcs.iter_mut() {
        let c = f.config_mut();
        if (*dev, *func) == (1, 0) {
            // The PIIX3: PIRQ routes and level triggering for the routed IRQs.
            for (i, irq) in PIRQ_IRQS.iter().enumerate() {
                c.write(PIIX3_PIRQRC + i, 1, *irq as u32);
                elcr |= 1 << irq;
            }
        }
        let pin = c.u8(reg::INTERRUPT_PIN);
        if pin != 0 {
            let line = if chipset::is_acpi(*dev, *func) {
                ACPI_SCI_IRQ
            } else {
                PIRQ_IRQS[(pin as usize - 1 + *dev as usize).wrapping_sub(1) & 3]
            };
            c.write(reg::INTERRUPT_LINE, 1, line as u32);
        }
        let mut cmd = c.command() | command::IO | command::MEMORY | command::SERR;
        if c.u16(reg::VENDOR_ID) == VIRTIO_VENDOR {
            cmd |= command::MASTER;
        }
        c.write(reg::COMMAND, 2, cmd as u32);
    }
    elcr
}

fn align_down(v: u64, a: u64) -> u64 {
    v & !(a - 1)
}
