//! The legacy firmware tables SeaBIOS leaves in the F segment on QEMU's `pc` machine when
//! ACPI is off (`-machine pc,acpi=off`): the MP table (Intel MultiProcessor Specification
//! 1.4), the `$PIR` PCI interrupt routing table and the SMBIOS 2.8 entry point with the
//! structures QEMU 7.2 generates. A kernel without ACPI reads these to find the CPU, the
//! IOAPIC, how ISA and PCI interrupts reach it, and the DMI identity.
//!
//! Content mirrors SeaBIOS 1.16 (src/fw/mptable.c, pirtable.c) and QEMU 7.2's SMBIOS
//! defaults for `pc-i440fx-7.2`; the layout is the specifications'. The MP floating
//! pointer sits where SeaBIOS 1.16.2 puts it on QEMU 7.2 (Linux prints the address:
//! "found SMP MP-table at [mem 0x000f5bb0-0x000f5bbf]"); the other tables' addresses are
//! not printed, and are vmscope's choice in the same free F-segment area.

use crate::addr::GuestPhysAddr;
use crate::devices::pci::{reg, PciHost};
use crate::memory::GuestMemory;

/// Where the MP floating pointer structure and the configuration table go.
pub const MP_FLOATING_ADDR: u64 = 0xf5bb0;
pub const MP_CONFIG_ADDR: u64 = 0xf5bc0;
/// The `$PIR` table (16-byte aligned, in 0xF0000..0xFFFFF where the spec says to scan).
pub const PIR_ADDR: u64 = 0xf5ae0;
/// The SMBIOS entry point (16-byte aligned, in the F segment) and its structure table.
pub const SMBIOS_EP_ADDR: u64 = 0xf5b70;
pub const SMBIOS_TABLE_ADDR: u64 = 0xf5800;

/// The local APIC and IOAPIC as SeaBIOS describes them.
const LAPIC_ADDR: u32 = 0xfee0_0000;
const IOAPIC_ADDR: u32 = crate::devices::ioapic::IOAPIC_BASE as u32;
const IOAPIC_ID: u8 = 0;
/// SeaBIOS writes 0x11 as the IOAPIC version into the MP table (Linux reads the real
/// version, 0x20, from the IOAPIC itself).
const MP_IOAPIC_VERSION: u8 = 0x11;
/// The local APIC version (QEMU's xAPIC).
const LAPIC_VERSION: u8 = (crate::devices::lapic::APIC_VERSION & 0xff) as u8;
/// ISA IRQs SeaBIOS leaves to PCI (BUILD_PCI_IRQS): no ISA entry for them.
const PCI_IRQS: u16 = (1 << 5) | (1 << 9) | (1 << 10) | (1 << 11);

/// MP configuration table entry types.
const MP_PROCESSOR: u8 = 0;
const MP_BUS: u8 = 1;
const MP_IOAPIC: u8 = 2;
const MP_INTSRC: u8 = 3;
const MP_LINTSRC: u8 = 4;
/// Interrupt types.
const MP_INT: u8 = 0;
const MP_NMI: u8 = 1;
const MP_EXTINT: u8 = 3;

/// Bytes whose sum is 0 with `b` added at the end.
fn checksum(data: &[u8]) -> u8 {
    0u8.wrapping_sub(data.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

/// The MP configuration table (header and entries) for the machine's PCI bus 0 and
/// `cpus` CPUs.
pub fn mp_config_table(pci: &mut PciHost, cpus: usize) -> Vec<u8> {
    let (signature, _, _, features) = crate::cpu::cpuid::cpuid(1, 0, &Default::default());
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    // The processors, APIC IDs 0..cpus-1, enabled; APIC ID 0 the bootstrap processor.
    // SeaBIOS lists the first logical CPU of each package only: every CPU here is a
    // package of its own (CPUID.1:EDX.HTT is clear; `--qemu` passes sockets=N).
    for id in 0..cpus.max(1) {
        let flags = if id == 0 { 0x03 } else { 0x01 };
        entries.extend_from_slice(&[MP_PROCESSOR, id as u8, LAPIC_VERSION, flags]);
        entries.extend_from_slice(&signature.to_le_bytes());
        entries.extend_from_slice(&features.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    // Bus 0 is PCI, bus 1 ISA.
    const PCI_BUS: u8 = 0;
    const ISA_BUS: u8 = 1;
    for (id, name) in [(PCI_BUS, b"PCI   "), (ISA_BUS, b"ISA   ")] {
        entries.extend_from_slice(&[MP_BUS, id]);
        entries.extend_from_slice(name);
        count += 1;
    }
    entries.extend_from_slice(&[MP_IOAPIC, IOAPIC_ID, MP_IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    count += 1;
    let intsrc = |e: &mut Vec<u8>, ty: u8, flags: u16, bus: u8, irq: u8, apic: u8, pin: u8| {
        e.extend_from_slice(&[ty, MP_INT]);
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&[bus, irq, apic, pin]);
    };
    // PCI interrupts: one entry per (device, pin) on bus 0, to the pin of the line the
    // firmware assigned (active high, as SeaBIOS writes it).
    let mut seen: Vec<(u8, u8)> = Vec::new();
    for (dev, _func, f) in pci.functions_mut() {
        let c = f.config();
        let pin = c.data[reg::INTERRUPT_PIN];
        let line = c.data[reg::INTERRUPT_LINE];
        if pin == 0 || seen.contains(&(dev, pin)) {
            continue;
        }
        seen.push((dev, pin));
        intsrc(
            &mut entries,
            MP_INTSRC,
            1,
            PCI_BUS,
            (dev << 2) | (pin - 1),
            IOAPIC_ID,
            line,
        );
        count += 1;
    }
    // ISA interrupts, identity-mapped except IRQ 0 on pin 2 (QEMU's irq0-override);
    // ISA IRQ 2 (the cascade) has no entry.
    for irq in 0..16u8 {
        if PCI_IRQS & (1 << irq) != 0 || irq == 2 {
            continue;
        }
        let pin = if irq == 0 { 2 } else { irq };
        intsrc(&mut entries, MP_INTSRC, 0, ISA_BUS, irq, IOAPIC_ID, pin);
        count += 1;
    }
    // LINT0: ExtINT from the 8259 to the BSP; LINT1: NMI to all local APICs.
    entries.extend_from_slice(&[MP_LINTSRC, MP_EXTINT, 0, 0, ISA_BUS, 0, 0, 0]);
    entries.extend_from_slice(&[MP_LINTSRC, MP_NMI, 0, 0, ISA_BUS, 0, 0xff, 1]);
    count += 2;

    const HEADER_LEN: usize = 44;
    let mut t = Vec::with_capacity(HEADER_LEN + entries.len());
    t.extend_from_slice(b"PCMP");
    t.extend_from_slice(&((HEADER_LEN + entries.len()) as u16).to_le_bytes());
    t.push(4); // spec revision 1.4
    t.push(0); // checksum, below
    t.extend_from_slice(b"BOCHSCPU");
    t.extend_from_slice(b"0.1         ");
    t.extend_from_slice(&0u32.to_le_bytes()); // no OEM table
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&count.to_le_bytes());
    t.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes()); // no extended table
    t.push(0);
    t.push(0);
    t.extend_from_slice(&entries);
    t[7] = checksum(&t);
    t
}

/// The 16-byte MP floating pointer structure pointing at `config`.
pub fn mp_floating_pointer(config: u32) -> [u8; 16] {
    let mut f = [0u8; 16];
    f[0..4].copy_from_slice(b"_MP_");
    f[4..8].copy_from_slice(&config.to_le_bytes());
    f[8] = 1; // length in 16-byte units
    f[9] = 4; // spec revision 1.4
    f[10] = checksum(&f);
    f
}

/// SeaBIOS's `$PIR` table: the PIIX3 (00:01.0) routes PIRQ A-D (config registers
/// 0x60..0x63) for the embedded device 1 and slots 2..6, each slot's INTA on the next
/// link, any of IRQs 3-7, 9-12, 14, 15.
pub fn pir_table() -> Vec<u8> {
    const LINK_BITMAP: u16 = 0xdef8;
    const SLOTS: u8 = 6;
    let mut t = Vec::new();
    t.extend_from_slice(b"$PIR");
    t.extend_from_slice(&0x0100u16.to_le_bytes());
    t.extend_from_slice(&(32 + 16 * SLOTS as u16).to_le_bytes());
    t.push(0); // router bus
    t.push(0x08); // router devfn: 00:01.0
    t.extend_from_slice(&0u16.to_le_bytes()); // exclusive IRQs
    t.extend_from_slice(&0x122e_8086u32.to_le_bytes()); // compatible router
    t.extend_from_slice(&0u32.to_le_bytes()); // miniport data
    t.extend_from_slice(&[0; 11]);
    t.push(0); // checksum, below
    for dev in 1..=SLOTS {
        t.push(0);
        t.push(dev << 3);
        for pin in 0..4u8 {
            // Device 1 starts at link A, device d at link (d - 1) & 3.
            let link = 0x60 + ((pin + dev - 1) & 3);
            t.push(link);
            t.extend_from_slice(&LINK_BITMAP.to_le_bytes());
        }
        t.push(dev - 1); // slot number (0: embedded)
        t.push(0);
    }
    let sum = checksum(&t);
    t[31] = sum;
    t
}

/// One SMBIOS structure: the formatted area then its strings, double-NUL terminated.
fn smbios_structure(ty: u8, handle: u16, formatted: &[u8], strings: &[&str]) -> Vec<u8> {
    let mut s = vec![ty, (4 + formatted.len()) as u8];
    s.extend_from_slice(&handle.to_le_bytes());
    s.extend_from_slice(formatted);
    for st in strings {
        s.extend_from_slice(st.as_bytes());
        s.push(0);
    }
    if strings.is_empty() {
        s.push(0);
    }
    s.push(0);
    s
}

/// The SMBIOS structures QEMU 7.2 gives `pc-i440fx-7.2` with one CPU and `mem_mib` MiB.
pub fn smbios_structures(mem_mib: u32) -> (Vec<u8>, u16, u16) {
    let (signature, _, _, features) = crate::cpu::cpuid::cpuid(1, 0, &Default::default());
    let mut all = Vec::new();
    let mut max = 0usize;
    let mut n = 0u16;
    let mut push = |s: Vec<u8>| {
        max = max.max(s.len());
        n += 1;
        all.extend_from_slice(&s);
    };
    // Type 0, BIOS: vendor, version, segment 0xE800, date, ROM size 64K, characteristics
    // "not supported", extension bytes (targeted content distribution, VM), release 0.0.
    let mut t0 = vec![1, 2, 0x00, 0xe8, 3, 0];
    t0.extend_from_slice(&0x08u64.to_le_bytes());
    t0.extend_from_slice(&[0, 0x1c, 0, 0, 0xff, 0xff]);
    push(smbios_structure(
        0,
        0,
        &t0,
        &["SeaBIOS", "1.16.2-debian-1.16.2-1", "04/01/2014"],
    ));
    // Type 1, system: manufacturer, product, version; no serial, zero UUID, power switch.
    let mut t1 = vec![1, 2, 3, 0];
    t1.extend_from_slice(&[0; 16]);
    t1.extend_from_slice(&[0x06, 0, 0]);
    push(smbios_structure(
        1,
        0x100,
        &t1,
        &["QEMU", "Standard PC (i440FX + PIIX, 1996)", "pc-i440fx-7.2"],
    ));
    // Type 3, chassis: "other", safe states, version string.
    push(smbios_structure(
        3,
        0x300,
        &[
            1, 0x01, 2, 0, 0, 0x03, 0x03, 0x03, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        &["QEMU", "pc-i440fx-7.2"],
    ));
    // Type 4, processor: socket "CPU 0", CPU, family "other", CPUID 1 EAX/EDX, 2000 MHz.
    let mut t4 = vec![1, 0x03, 0x01, 2];
    t4.extend_from_slice(&signature.to_le_bytes());
    t4.extend_from_slice(&features.to_le_bytes());
    t4.extend_from_slice(&[3, 0, 0, 0]);
    t4.extend_from_slice(&2000u16.to_le_bytes());
    t4.extend_from_slice(&2000u16.to_le_bytes());
    t4.extend_from_slice(&[0x41, 0x01]);
    t4.extend_from_slice(&[0xff; 6]);
    t4.extend_from_slice(&[0, 0, 0, 1, 1, 1]);
    t4.extend_from_slice(&0x0001u16.to_le_bytes());
    push(smbios_structure(
        4,
        0x400,
        &t4,
        &["CPU 0", "QEMU", "pc-i440fx-7.2"],
    ));
    // Type 16, memory array; type 17, one DIMM; type 19, its mapped range.
    let mut t16 = vec![0x01, 0x03, 0x06];
    t16.extend_from_slice(&(mem_mib << 10).to_le_bytes());
    t16.extend_from_slice(&0xfffeu16.to_le_bytes());
    t16.extend_from_slice(&1u16.to_le_bytes());
    push(smbios_structure(16, 0x1000, &t16, &[]));
    let mut t17 = Vec::new();
    t17.extend_from_slice(&0x1000u16.to_le_bytes());
    t17.extend_from_slice(&0xfffeu16.to_le_bytes());
    t17.extend_from_slice(&64u16.to_le_bytes());
    t17.extend_from_slice(&64u16.to_le_bytes());
    t17.extend_from_slice(&(mem_mib as u16).to_le_bytes());
    t17.extend_from_slice(&[0x09, 0, 1, 0, 0x07]);
    t17.extend_from_slice(&0x0002u16.to_le_bytes());
    t17.extend_from_slice(&0u16.to_le_bytes());
    t17.extend_from_slice(&[2, 0, 0, 0]);
    push(smbios_structure(17, 0x1100, &t17, &["DIMM 0", "QEMU"]));
    let mut t19 = Vec::new();
    t19.extend_from_slice(&0u32.to_le_bytes());
    t19.extend_from_slice(&((mem_mib << 10) - 1).to_le_bytes());
    t19.extend_from_slice(&0x1000u16.to_le_bytes());
    t19.push(1);
    push(smbios_structure(19, 0x1300, &t19, &[]));
    // Type 32, boot information: no errors; type 127, end of table.
    push(smbios_structure(32, 0x2000, &[0; 7], &[]));
    push(smbios_structure(127, 0x7f00, &[], &[]));
    (all, n, max as u16)
}

/// The 31-byte SMBIOS 2.8 entry point for a structure table at `addr`.
pub fn smbios_entry_point(addr: u32, len: u16, count: u16, max: u16) -> [u8; 31] {
    let mut e = [0u8; 31];
    e[0..4].copy_from_slice(b"_SM_");
    e[5] = 0x1f;
    e[6] = 2;
    e[7] = 8;
    e[8..10].copy_from_slice(&max.to_le_bytes());
    e[16..21].copy_from_slice(b"_DMI_");
    e[22..24].copy_from_slice(&len.to_le_bytes());
    e[24..28].copy_from_slice(&addr.to_le_bytes());
    e[28..30].copy_from_slice(&count.to_le_bytes());
    e[30] = 0x28;
    e[21] = checksum(&e[16..31]);
    e[4] = checksum(&e[0..16]);
    e
}

/// Write all the tables into guest RAM (the F segment).
/// How far below their one-CPU places the tables go with `cpus` CPUs: SeaBIOS
/// allocates the MP configuration table top-down in the F segment, so each further
/// processor entry (20 bytes) moves it, 16-byte aligned, and the floating pointer below
/// it (on QEMU 7.2 with `-smp N,sockets=N`: 0xf5b90 for 2 CPUs, 0xf5b70 for 4, 0xf5b20
/// for 8, as Linux prints). The `$PIR` and SMBIOS tables, whose places nothing prints,
/// move down by as much to stay clear of it.
pub fn mp_shift(cpus: usize) -> u64 {
    let extra = 20 * (cpus.max(1) as u64 - 1);
    MP_CONFIG_ADDR - ((MP_CONFIG_ADDR - extra) & !0xf)
}

pub fn install(mem: &mut GuestMemory, pci: &mut PciHost, mem_bytes: u64, cpus: usize) {
    let shift = mp_shift(cpus);
    let config = mp_config_table(pci, cpus);
    mem.write_bytes(GuestPhysAddr(MP_CONFIG_ADDR - shift), &config);
    mem.write_bytes(
        GuestPhysAddr(MP_FLOATING_ADDR - shift),
        &mp_floating_pointer((MP_CONFIG_ADDR - shift) as u32),
    );
    mem.write_bytes(GuestPhysAddr(PIR_ADDR - shift), &pir_table());
    let mib = (mem_bytes >> 20).min(u32::MAX as u64 >> 10) as u32;
    let (table, count, max) = smbios_structures(mib);
    mem.write_bytes(GuestPhysAddr(SMBIOS_TABLE_ADDR - shift), &table);
    mem.write_bytes(
        GuestPhysAddr(SMBIOS_EP_ADDR - shift),
        &smbios_entry_point(
            (SMBIOS_TABLE_ADDR - shift) as u32,
            table.len() as u16,
            count,
            max,
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
    }

    #[test]
    fn mp_table_lists_every_cpu_where_seabios_puts_it() {
        let mut pci = PciHost::new();
        let one = mp_config_table(&mut pci, 1);
        let four = mp_config_table(&mut pci, 4);
        assert_eq!(sum(&four), 0);
        assert_eq!(four.len(), one.len() + 3 * 20);
        // Entries at 44: processor 0 is the BSP, the others enabled only.
        for id in 0..4 {
            let e = &four[44 + 20 * id..];
            assert_eq!(e[0..2], [MP_PROCESSOR, id as u8]);
            assert_eq!(e[3], if id == 0 { 3 } else { 1 });
        }
        // The floating pointer where QEMU 7.2 and SeaBIOS 1.16 put it.
        for (cpus, floating) in [
            (1, 0xf5bb0),
            (2, 0xf5b90),
            (3, 0xf5b80),
            (4, 0xf5b70),
            (8, 0xf5b20),
        ] {
            assert_eq!(MP_FLOATING_ADDR - mp_shift(cpus), floating, "{cpus} CPUs");
        }
        // 64 CPUs still fit above the start of the F segment.
        assert!(SMBIOS_TABLE_ADDR - mp_shift(64) > 0xf0000);
    }

    #[test]
    fn mp_table_checksums_and_entries() {
        let mut pci = PciHost::new();
        let t = mp_config_table(&mut pci, 1);
        assert_eq!(sum(&t), 0);
        assert_eq!(&t[0..4], b"PCMP");
        assert_eq!(u16::from_le_bytes([t[4], t[5]]) as usize, t.len());
        // CPU, 2 buses, IOAPIC, 11 ISA interrupts (+ PCI ones), 2 local interrupts.
        let count = u16::from_le_bytes([t[34], t[35]]);
        assert!(count >= 1 + 2 + 1 + 11 + 2, "{count}");
        let f = mp_floating_pointer(MP_CONFIG_ADDR as u32);
        assert_eq!(sum(&f), 0);
        // Everything fits between the floating pointer and the end of the F segment.
        assert!(MP_CONFIG_ADDR + t.len() as u64 <= 0x10_0000);
    }

    #[test]
    fn pir_and_smbios_checksums() {
        let p = pir_table();
        assert_eq!(p.len(), 128);
        assert_eq!(sum(&p), 0);
        assert!(PIR_ADDR + p.len() as u64 <= SMBIOS_EP_ADDR);
        let (t, n, _) = smbios_structures(128);
        assert_eq!(n, 9);
        assert!(
            SMBIOS_TABLE_ADDR + t.len() as u64 <= PIR_ADDR,
            "{}",
            t.len()
        );
        let e = smbios_entry_point(SMBIOS_TABLE_ADDR as u32, t.len() as u16, n, 0);
        assert_eq!(sum(&e[0..16]), 0);
        assert_eq!(sum(&e[16..31]), 0);
        const { assert!(SMBIOS_EP_ADDR + 31 <= MP_FLOATING_ADDR) };
    }
}
