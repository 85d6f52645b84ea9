//! The chipset functions of QEMU's `pc` machine on bus 0, with QEMU 7.2's IDs, classes and
//! header types: 00:00.0 i440FX host bridge, 00:01.0 PIIX3 ISA bridge (multi-function),
//! 00:01.1 PIIX3 IDE, 00:01.3 PIIX4 ACPI (power management). vmscope models none of their
//! functions beyond configuration space: the I/O they would decode (IDE ports, the ACPI PM
//! block) is not there, as nothing in the guest uses it.
//!
//! The device-specific registers hold the values they have when the kernel starts on QEMU
//! (read back from QEMU 7.2 after SeaBIOS ran: i440FX PAM 0x59..0x5f and SMRAM 0x72 as the
//! firmware leaves them, the PIIX3's reset values, IDE decode enabled at 0x40/0x42, the
//! ACPI function's PM base 0x600 at 0x40 and SMBus base 0x700 at 0x90). BARs, command
//! registers, interrupt lines and PIRQ routes are left to [`super::firmware`], which
//! computes them as SeaBIOS does.

use super::{
    reg, BarKind, PciConfig, PciFunction, HEADER_MULTI_FUNCTION, SUBSYSTEM_QEMU, VENDOR_INTEL,
    VENDOR_REDHAT_QUMRANET,
};

/// Class codes (base, sub, programming interface).
const CLASS_HOST_BRIDGE: u32 = 0x06_00_00;
const CLASS_ISA_BRIDGE: u32 = 0x06_01_00;
/// IDE, programming interface 0x80: bus-master capable, both channels in legacy mode.
const CLASS_IDE_BUSMASTER: u32 = 0x01_01_80;
const CLASS_OTHER_BRIDGE: u32 = 0x06_80_00;

/// Device IDs.
pub const I440FX_DEVICE: u16 = 0x1237;
pub const PIIX3_ISA_DEVICE: u16 = 0x7000;
pub const PIIX3_IDE_DEVICE: u16 = 0x7010;
pub const PIIX4_ACPI_DEVICE: u16 = 0x7113;

/// Status register values QEMU gives: DEVSEL medium timing, and fast back-to-back.
const STATUS_DEVSEL_MEDIUM: u16 = 0x0200;
const STATUS_FAST_BACK: u16 = 0x0080;

/// PIIX IDE bus-master registers: BAR4, 16 ports.
pub const IDE_BMIBA_BAR: usize = 4;
const IDE_BMIBA_SIZE: u64 = 16;

/// PIIX4 ACPI: PM base address, PM I/O space enable, SMBus base and host configuration.
const PIIX4_PMBA: usize = 0x40;
const PIIX4_PMREGMISC: usize = 0x80;
const PIIX4_SMBBA: usize = 0x90;
const PIIX4_SMBHSTCFG: usize = 0xd2;
/// QEMU's fixed PM and SMBus I/O bases (SeaBIOS's `PORT_ACPI_PM_BASE`, `PORT_SMB_BASE`).
const ACPI_PM_BASE: u32 = 0x600;
const SMB_BASE: u32 = 0x700;

/// A chipset function: configuration space only.
pub struct ChipsetFunction {
    name: &'static str,
    config: PciConfig,
}

impl PciFunction for ChipsetFunction {
    fn name(&self) -> &'static str {
        self.name
    }
    fn config(&self) -> &PciConfig {
        &self.config
    }
    fn config_mut(&mut self) -> &mut PciConfig {
        &mut self.config
    }
}

fn chipset_config(device: u16, class: u32, revision: u8, header: u8, status: u16) -> PciConfig {
    let mut c = PciConfig::new(
        VENDOR_INTEL,
        device,
        class,
        revision,
        header,
        VENDOR_REDHAT_QUMRANET,
        SUBSYSTEM_QEMU,
    );
    c.set_u16(reg::STATUS, status);
    c
}

/// The four chipset functions as (device, function, model).
pub fn functions() -> Vec<(u8, u8, Box<dyn PciFunction>)> {
    let mut host = chipset_config(I440FX_DEVICE, CLASS_HOST_BRIDGE, 0x02, 0, 0);
    // i440FX: DRAM control 0x57, PAM0..PAM6 (0x59..0x5f) and SMRAM (0x72).
    host.data[0x57] = 0x10;
    host.data[0x59..0x60].copy_from_slice(&[0x10, 0x11, 0x11, 0x11, 0x11, 0x11, 0x33]);
    host.data[0x72] = 0x0a;

    let mut isa = chipset_config(
        PIIX3_ISA_DEVICE,
        CLASS_ISA_BRIDGE,
        0,
        HEADER_MULTI_FUNCTION,
        STATUS_DEVSEL_MEDIUM,
    );
    // PIIX3 reset values (datasheet 2.2): IORT, XBCS, TOM, MBIRQ0, MBDMA, PCSC, SMICNTL,
    // SMIREQ. The PIRQ routes (0x60..0x63) are the firmware's.
    for (off, v) in [
        (0x4c, 0x4d),
        (0x4e, 0x03),
        (0x69, 0x02),
        (0x70, 0x80),
        (0x76, 0x0c),
        (0x77, 0x0c),
        (0x78, 0x02),
        (0xa0, 0x08),
        (0xa8, 0x0f),
    ] {
        isa.data[off] = v;
    }
    isa.data[0x60..0x64].fill(0x80);

    let mut ide = chipset_config(
        PIIX3_IDE_DEVICE,
        CLASS_IDE_BUSMASTER,
        0,
        0,
        STATUS_DEVSEL_MEDIUM | STATUS_FAST_BACK,
    );
    ide.add_bar(IDE_BMIBA_BAR, BarKind::Io, IDE_BMIBA_SIZE);
    // IDETIM, primary and secondary: decode enabled (SeaBIOS's `piix_ide_setup`).
    ide.set_u16(0x40, 0x8000);
    ide.set_u16(0x42, 0x8000);

    let mut acpi = chipset_config(
        PIIX4_ACPI_DEVICE,
        CLASS_OTHER_BRIDGE,
        0x03,
        0,
        STATUS_DEVSEL_MEDIUM | STATUS_FAST_BACK,
    );
    acpi.data[reg::INTERRUPT_PIN] = 1;
    acpi.set_u32(PIIX4_PMBA, ACPI_PM_BASE | 1);
    acpi.data[PIIX4_PMREGMISC] = 0x01;
    acpi.set_u32(PIIX4_SMBBA, SMB_BASE | 1);
    acpi.data[PIIX4_SMBHSTCFG] = 0x09;
    for (off, v) in [(0x5b, 0x02), (0x5f, 0x90), (0x63, 0x60), (0x67, 0x08)] {
        acpi.data[off] = v;
    }

    let f = |name, config| -> Box<dyn PciFunction> { Box::new(ChipsetFunction { name, config }) };
    vec![
        (0, 0, f("i440FX", host)),
        (1, 0, f("PIIX3", isa)),
        (1, 1, f("piix3-ide", ide)),
        (1, 3, f("PIIX4_PM", acpi)),
    ]
}

/// Whether (dev, func) is the PIIX4 ACPI function (the firmware gives it the SCI, IRQ 9).
pub fn is_acpi(dev: u8, func: u8) -> bool {
    (dev, func) == (1, 3)
}
