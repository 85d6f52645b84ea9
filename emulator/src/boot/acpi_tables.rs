//! The ACPI tables of QEMU's default `pc` machine (the machine with ACPI, see
//! `MachineConfig::acpi`), as far as a guest without an AML interpreter reads them:
//!
//! * RSDP (revision 0, as SeaBIOS gives QEMU's `pc`) in the BIOS area at [`RSDP_ADDR`];
//! * RSDT → FACP (FADT revision 1, PIIX4 power management at 0x600: PM1a event block,
//!   PM1a control block, the 24-bit PM timer at 0x608; SCI on IRQ 9), APIC (MADT: the
//!   local APICs, the I/O APIC at 0xfec00000, QEMU's interrupt source overrides and
//!   local APIC NMI on LINT1);
//! * FACS and a DSDT holding no AML (QEMU's DSDT describes the devices in AML; a guest
//!   that interprets AML, such as Linux with ACPI, would see none: vmscope boots those on
//!   `pc,acpi=off`).
//!
//! Not there: HPET and WAET (vmscope has no HPET). The tables live at the bottom of the
//! 128 KiB SeaBIOS reserves at the top of low RAM ([`e820::FIRMWARE_RESERVED_TOP`]).

use super::e820;
use crate::addr::GuestPhysAddr;
use crate::memory::GuestMemory;

/// Where the RSDP goes (SeaBIOS puts it in the F segment; the exact offset depends on
/// SeaBIOS's build, guests search 0xe0000-0xfffff on 16-byte boundaries).
pub const RSDP_ADDR: u64 = 0xf59e0;
/// The PIIX4 power-management I/O base (SeaBIOS's `PORT_ACPI_PM_BASE`).
pub const PM_BASE: u16 = 0x600;
pub const PM1A_EVT: u16 = PM_BASE;
pub const PM1A_CNT: u16 = PM_BASE + 4;
pub const PM_TMR: u16 = PM_BASE + 8;
/// The SCI's ISA IRQ on QEMU's `pc`.
pub const SCI_IRQ: u16 = 9;
/// QEMU's APM/SMI command port and the ACPI enable/disable values written to it.
const SMI_CMD: u32 = 0xb2;
const ACPI_ENABLE: u8 = 0xf1;
const ACPI_DISABLE: u8 = 0xf0;
/// The RTC's century register (CMOS 0x32), as QEMU's FADT gives it.
const RTC_CENTURY: u8 = 0x32;
const LAPIC_BASE: u32 = 0xfee0_0000;
const IOAPIC_BASE: u32 = 0xfec0_0000;
/// FADT flags QEMU's `pc` sets: WBINVD, PROC_C1, SLP_BUTTON, RTC_S4.
const FADT_FLAGS: u32 = 1 | (1 << 2) | (1 << 5) | (1 << 7);
const FADT_REV1_LEN: usize = 116;
const FACS_LEN: usize = 64;
/// MADT flags: PCAT_COMPAT (8259s present).
const MADT_PCAT_COMPAT: u32 = 1;
/// MADT interrupt source overrides: (ISA IRQ, GSI, flags); 0xd = active high, level.
const ISA_OVERRIDES: [(u8, u32, u16); 5] = [
    (0, 2, 0),
    (5, 5, 0xd),
    (9, 9, 0xd),
    (10, 10, 0xd),
    (11, 11, 0xd),
];

/// A table header: signature, length, revision, (checksum), OEM fields as QEMU's.
fn header(sig: &[u8; 4], len: usize, rev: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(sig);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(rev);
    t.push(0); // checksum, set by `finish`
    t.extend_from_slice(b"BOCHS ");
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&sig[..]);
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&1u32.to_le_bytes());
    t
}

/// Set the byte at `at` so that `t[range]` sums to zero.
fn checksum(t: &mut [u8], at: usize, range: std::ops::Range<usize>) {
    t[at] = 0;
    let sum = t[range].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[at] = sum.wrapping_neg();
}

fn finish(mut t: Vec<u8>, len: usize) -> Vec<u8> {
    t.resize(len, 0);
    let n = t.len();
    checksum(&mut t, 9, 0..n);
    t
}

fn put32(t: &mut [u8], at: usize, v: u32) {
    t[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn fadt(facs: u32, dsdt: u32) -> Vec<u8> {
    let mut t = header(b"FACP", FADT_REV1_LEN, 1);
    t.resize(FADT_REV1_LEN, 0);
    put32(&mut t, 36, facs);
    put32(&mut t, 40, dsdt);
    t[46..48].copy_from_slice(&SCI_IRQ.to_le_bytes());
    put32(&mut t, 48, SMI_CMD);
    t[52] = ACPI_ENABLE;
    t[53] = ACPI_DISABLE;
    put32(&mut t, 56, PM1A_EVT as u32);
    put32(&mut t, 64, PM1A_CNT as u32);
    put32(&mut t, 76, PM_TMR as u32);
    t[88] = 4; // PM1 event block length
    t[89] = 2; // PM1 control block length
    t[91] = 4; // PM timer length
    t[96..98].copy_from_slice(&0xfffu16.to_le_bytes()); // C2 latency: no C2
    t[98..100].copy_from_slice(&0xfffu16.to_le_bytes()); // C3 latency: no C3
    t[108] = RTC_CENTURY;
    put32(&mut t, 112, FADT_FLAGS);
    finish(t, FADT_REV1_LEN)
}

fn madt(cpus: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&LAPIC_BASE.to_le_bytes());
    body.extend_from_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    for id in 0..cpus {
        // Processor local APIC: ACPI id, APIC id, enabled.
        body.extend_from_slice(&[0, 8, id as u8, id as u8, 1, 0, 0, 0]);
    }
    // I/O APIC: id 0, address, GSI base 0.
    body.extend_from_slice(&[1, 12, 0, 0]);
    body.extend_from_slice(&IOAPIC_BASE.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    for (irq, gsi, flags) in ISA_OVERRIDES {
        body.extend_from_slice(&[2, 10, 0, irq]);
        body.extend_from_slice(&gsi.to_le_bytes());
        body.extend_from_slice(&flags.to_le_bytes());
    }
    // Local APIC NMI: all processors, LINT1.
    body.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
    let len = 36 + body.len();
    let mut t = header(b"APIC", len, 1);
    t.extend_from_slice(&body);
    finish(t, len)
}

/// Write the tables for a machine with `cpus` CPUs; returns the RSDP's address.
pub fn install(mem: &mut GuestMemory, cpus: u32) -> u64 {
    let base = mem.below_4g() - e820::FIRMWARE_RESERVED_TOP;
    // FACS first (64-byte aligned), then DSDT, FACP, APIC, RSDT.
    let facs_addr = base;
    let mut facs = vec![0u8; FACS_LEN];
    facs[..4].copy_from_slice(b"FACS");
    put32(&mut facs, 4, FACS_LEN as u32);
    let dsdt_addr = facs_addr + FACS_LEN as u64;
    let dsdt = finish(header(b"DSDT", 36, 1), 36);
    let fadt_addr = dsdt_addr + dsdt.len() as u64;
    let fadt = fadt(facs_addr as u32, dsdt_addr as u32);
    let madt_addr = fadt_addr + fadt.len() as u64;
    let madt = madt(cpus);
    let rsdt_addr = madt_addr + madt.len() as u64;
    let mut rsdt = header(b"RSDT", 36 + 8, 1);
    rsdt.extend_from_slice(&(fadt_addr as u32).to_le_bytes());
    rsdt.extend_from_slice(&(madt_addr as u32).to_le_bytes());
    let rsdt = finish(rsdt, 44);
    for (a, t) in [
        (facs_addr, &facs),
        (dsdt_addr, &dsdt),
        (fadt_addr, &fadt),
        (madt_addr, &madt),
        (rsdt_addr, &rsdt),
    ] {
        mem.write_bytes(GuestPhysAddr(a), t);
    }
    let mut rsdp = Vec::with_capacity(20);
    rsdp.extend_from_slice(b"RSD PTR ");
    rsdp.push(0);
    rsdp.extend_from_slice(b"BOCHS ");
    rsdp.push(0); // revision 0: RSDT only
    rsdp.extend_from_slice(&(rsdt_addr as u32).to_le_bytes());
    checksum(&mut rsdp, 8, 0..20);
    mem.write_bytes(GuestPhysAddr(RSDP_ADDR), &rsdp);
    RSDP_ADDR
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums_to_zero(t: &[u8]) -> bool {
        t.iter().fold(0u8, |s, b| s.wrapping_add(*b)) == 0
    }

    #[test]
    fn tables_are_found_and_checksummed() {
        let mut mem = GuestMemory::new(128 << 20).unwrap();
        let rsdp = install(&mut mem, 2);
        let b = mem.slice(GuestPhysAddr(rsdp), 20).unwrap().to_vec();
        assert_eq!(&b[..8], b"RSD PTR ");
        assert!(sums_to_zero(&b));
        let rsdt = u32::from_le_bytes(b[16..20].try_into().unwrap()) as u64;
        let h = mem.slice(GuestPhysAddr(rsdt), 44).unwrap().to_vec();
        assert_eq!(&h[..4], b"RSDT");
        assert!(sums_to_zero(&h));
        let fadt = u32::from_le_bytes(h[36..40].try_into().unwrap()) as u64;
        let f = mem
            .slice(GuestPhysAddr(fadt), FADT_REV1_LEN)
            .unwrap()
            .to_vec();
        assert_eq!(&f[..4], b"FACP");
        assert!(sums_to_zero(&f));
        assert_eq!(u32::from_le_bytes(f[76..80].try_into().unwrap()), 0x608);
        let madt = u32::from_le_bytes(h[40..44].try_into().unwrap()) as u64;
        let m = madt_bytes(&mem, madt);
        assert!(sums_to_zero(&m));
        // Two processor entries.
        assert_eq!(m[44..52], [0, 8, 0, 0, 1, 0, 0, 0]);
        assert_eq!(m[52..60], [0, 8, 1, 1, 1, 0, 0, 0]);
    }

    fn madt_bytes(mem: &GuestMemory, at: u64) -> Vec<u8> {
        let len = mem.read_u32(GuestPhysAddr(at + 4)).unwrap() as usize;
        mem.slice(GuestPhysAddr(at), len).unwrap().to_vec()
    }
}
