//! PCI configuration space through mechanism #1 (ports 0xCF8/0xCFC, PCI Local Bus spec
//! 3.0, 3.2.2.3.2) and the enumeration of bus 0 and any buses behind PCI-to-PCI bridges,
//! as Linux's `pci_scan_bus`: functions, BARs sized the way `__pci_read_base` sizes them
//! (decoding off, all ones written, the read-back masked), capability lists.
//!
//! The firmware (SeaBIOS on QEMU, its copy in vmscope) has assigned the BARs and interrupt
//! lines already; the kernel keeps them. `pci=dump` on the command line prints every
//! function's 256 configuration bytes (a test compares vmscope's with QEMU's).

use alloc::vec::Vec;

use crate::arch::x86_64::port::{inl, outl};
use crate::sync::IrqLock;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const CONFIG_ENABLE: u32 = 1 << 31;

/// Standard header registers.
pub const PCI_VENDOR_ID: u8 = 0x00;
pub const PCI_COMMAND: u8 = 0x04;
pub const PCI_STATUS: u8 = 0x06;
pub const PCI_CLASS_REVISION: u8 = 0x08;
pub const PCI_HEADER_TYPE: u8 = 0x0e;
pub const PCI_BASE_ADDRESS_0: u8 = 0x10;
pub const PCI_SUBSYSTEM_VENDOR_ID: u8 = 0x2c;
pub const PCI_CAPABILITY_LIST: u8 = 0x34;
pub const PCI_INTERRUPT_LINE: u8 = 0x3c;
/// Type 1 (bridge) header: the secondary bus number.
const PCI_SECONDARY_BUS: u8 = 0x19;

pub const PCI_COMMAND_IO: u16 = 1;
pub const PCI_COMMAND_MEMORY: u16 = 2;
pub const PCI_COMMAND_MASTER: u16 = 4;
pub const PCI_COMMAND_INTX_DISABLE: u16 = 1 << 10;
const PCI_STATUS_CAP_LIST: u16 = 1 << 4;
const PCI_HEADER_TYPE_MASK: u8 = 0x7f;
const PCI_HEADER_TYPE_BRIDGE: u8 = 1;
const PCI_HEADER_MULTI_FUNCTION: u8 = 0x80;
const PCI_BASE_ADDRESS_SPACE_IO: u32 = 1;
const PCI_BASE_ADDRESS_MEM_TYPE_64: u32 = 4;
const PCI_BASE_ADDRESS_MEM_PREFETCH: u32 = 8;
const PCI_BASE_ADDRESS_IO_MASK: u32 = !0x3;
const PCI_BASE_ADDRESS_MEM_MASK: u32 = !0xf;
/// Class of a PCI-to-PCI bridge (base 06, sub 04).
const PCI_CLASS_BRIDGE_PCI: u32 = 0x0604;
/// Capability IDs.
pub const PCI_CAP_ID_VNDR: u8 = 0x09;
pub const PCI_CAP_ID_MSIX: u8 = 0x11;

/// A function's address: bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

impl Bdf {
    fn address(self, off: u8) -> u32 {
        CONFIG_ENABLE
            | (self.bus as u32) << 16
            | (self.dev as u32) << 11
            | (self.func as u32) << 8
            | (off & 0xfc) as u32
    }
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "0000:{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// The address/data pair is one resource: an interrupt between the two `out`s must not
/// change the address (Linux's `pci_config_lock`).
static CONFIG_LOCK: IrqLock<()> = IrqLock::new("pci_config_lock", ());

pub fn read32(bdf: Bdf, off: u8) -> u32 {
    let _g = CONFIG_LOCK.lock();
    // SAFETY: the configuration ports belong to this driver, serialised by the lock.
    unsafe {
        outl(CONFIG_ADDRESS, bdf.address(off));
        inl(CONFIG_DATA)
    }
}

pub fn write32(bdf: Bdf, off: u8, v: u32) {
    let _g = CONFIG_LOCK.lock();
    // SAFETY: as in `read32`.
    unsafe {
        outl(CONFIG_ADDRESS, bdf.address(off));
        outl(CONFIG_DATA, v);
    }
}

pub fn read16(bdf: Bdf, off: u8) -> u16 {
    (read32(bdf, off) >> (8 * (off & 2))) as u16
}

pub fn read8(bdf: Bdf, off: u8) -> u8 {
    (read32(bdf, off) >> (8 * (off & 3))) as u8
}

/// A 16-bit write as a read-modify-write of the dword (the other half's registers here
/// have no write side effects: status bits are write-1-to-clear, so they are written 0).
pub fn write16(bdf: Bdf, off: u8, v: u16) {
    let shift = 8 * (off & 2);
    let mut d = read32(bdf, off);
    if off & 0xfc == PCI_COMMAND {
        d &= 0xffff; // never write status bits back
    }
    d = (d & !(0xffff << shift)) | (v as u32) << shift;
    write32(bdf, off, d);
}

/// A decoded BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub addr: u64,
    pub size: u64,
    pub io: bool,
    pub is64: bool,
    pub prefetch: bool,
}

/// A function found on the bus.
#[derive(Clone, Debug)]
pub struct PciDev {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    /// Class code (base, sub, interface) in the low 24 bits.
    pub class: u32,
    pub revision: u8,
    pub header_type: u8,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
    pub irq_line: u8,
    pub irq_pin: u8,
    pub bars: [Option<Bar>; 6],
}

impl PciDev {
    /// Capabilities as (offset, ID), following the list from 0x34 (at most 48 entries,
    /// Linux's `PCI_FIND_CAP_TTL`, so a looping list ends).
    pub fn capabilities(&self) -> Vec<(u8, u8)> {
        let mut v = Vec::new();
        if read16(self.bdf, PCI_STATUS) & PCI_STATUS_CAP_LIST == 0 {
            return v;
        }
        let mut pos = read8(self.bdf, PCI_CAPABILITY_LIST) & !3;
        for _ in 0..48 {
            if pos < 0x40 {
                break;
            }
            let id = read8(self.bdf, pos);
            if id == 0xff {
                break;
            }
            v.push((pos, id));
            pos = read8(self.bdf, pos + 1) & !3;
        }
        v
    }

    /// Enable memory/I/O decoding and bus mastering (`pci_enable_device` +
    /// `pci_set_master`).
    pub fn enable(&self, master: bool) {
        let mut cmd = read16(self.bdf, PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
        if master {
            cmd |= PCI_COMMAND_MASTER;
        }
        cmd &= !PCI_COMMAND_INTX_DISABLE;
        write16(self.bdf, PCI_COMMAND, cmd);
    }
}

/// Size BAR `i` as Linux's `__pci_read_base`; returns the BAR and how many registers it
/// used (2 for a 64-bit BAR). Decoding must be off.
fn read_bar(bdf: Bdf, i: usize) -> (Option<Bar>, usize) {
    let off = PCI_BASE_ADDRESS_0 + 4 * i as u8;
    let l = read32(bdf, off);
    write32(bdf, off, !0);
    let sz = read32(bdf, off);
    write32(bdf, off, l);
    if sz == 0 || sz == !0 && l == !0 {
        return (None, 1);
    }
    if l & PCI_BASE_ADDRESS_SPACE_IO != 0 {
        let mask = sz & PCI_BASE_ADDRESS_IO_MASK & 0xffff;
        let size = (!mask as u64 & 0xffff) + 1;
        let bar = Bar {
            addr: (l & PCI_BASE_ADDRESS_IO_MASK) as u64,
            size,
            io: true,
            is64: false,
            prefetch: false,
        };
        return ((mask != 0).then_some(bar), 1);
    }
    let is64 = l & PCI_BASE_ADDRESS_MEM_TYPE_64 != 0 && i < 5;
    let mut addr = (l & PCI_BASE_ADDRESS_MEM_MASK) as u64;
    let mut mask = (sz & PCI_BASE_ADDRESS_MEM_MASK) as u64 | 0xffff_ffff_0000_0000;
    if is64 {
        let hi = read32(bdf, off + 4);
        write32(bdf, off + 4, !0);
        let szhi = read32(bdf, off + 4);
        write32(bdf, off + 4, hi);
        addr |= (hi as u64) << 32;
        mask = (mask & 0xffff_ffff) | (szhi as u64) << 32;
    }
    let size = (!mask).wrapping_add(1);
    let bar = Bar {
        addr,
        size,
        io: false,
        is64,
        prefetch: l & PCI_BASE_ADDRESS_MEM_PREFETCH != 0,
    };
    ((size != 0).then_some(bar), if is64 { 2 } else { 1 })
}

fn probe_function(bdf: Bdf) -> Option<PciDev> {
    let id = read32(bdf, PCI_VENDOR_ID);
    if id & 0xffff == 0xffff || id & 0xffff == 0 {
        return None;
    }
    let class_rev = read32(bdf, PCI_CLASS_REVISION);
    let header_type = read8(bdf, PCI_HEADER_TYPE);
    let mut bars = [None; 6];
    let nbars = match header_type & PCI_HEADER_TYPE_MASK {
        0 => 6,
        PCI_HEADER_TYPE_BRIDGE => 2,
        _ => 0,
    };
    if nbars > 0 {
        // Sizing writes all ones: decoding stays off meanwhile (Linux's
        // `pci_read_bases` with `mmio_always_on` false).
        let cmd = read16(bdf, PCI_COMMAND);
        write16(
            bdf,
            PCI_COMMAND,
            cmd & !(PCI_COMMAND_IO | PCI_COMMAND_MEMORY),
        );
        let mut i = 0;
        while i < nbars {
            let (b, n) = read_bar(bdf, i);
            bars[i] = b;
            i += n;
        }
        write16(bdf, PCI_COMMAND, cmd);
    }
    let sub = read32(bdf, PCI_SUBSYSTEM_VENDOR_ID);
    let irq = read16(bdf, PCI_INTERRUPT_LINE);
    Some(PciDev {
        bdf,
        vendor: id as u16,
        device: (id >> 16) as u16,
        class: class_rev >> 8,
        revision: class_rev as u8,
        header_type,
        subsystem_vendor: sub as u16,
        subsystem: (sub >> 16) as u16,
        irq_line: irq as u8,
        irq_pin: (irq >> 8) as u8,
        bars,
    })
}

/// Every function on bus `bus` and the buses behind its bridges (depth-first, in the
/// order Linux numbers them), at most 256 buses deep so a misconfigured bridge loop ends.
fn scan_bus(bus: u8, out: &mut Vec<PciDev>, budget: &mut u32) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    for dev in 0..32u8 {
        let Some(f0) = probe_function(Bdf { bus, dev, func: 0 }) else {
            continue;
        };
        let multi = f0.header_type & PCI_HEADER_MULTI_FUNCTION != 0;
        let mut found = alloc::vec![f0];
        if multi {
            for func in 1..8 {
                if let Some(f) = probe_function(Bdf { bus, dev, func }) {
                    found.push(f);
                }
            }
        }
        for f in found {
            let bridge = f.header_type & PCI_HEADER_TYPE_MASK == PCI_HEADER_TYPE_BRIDGE
                && f.class >> 8 == PCI_CLASS_BRIDGE_PCI;
            let bdf = f.bdf;
            out.push(f);
            if bridge {
                let secondary = read8(bdf, PCI_SECONDARY_BUS);
                if secondary > bus {
                    scan_bus(secondary, out, budget);
                }
            }
        }
    }
}

static DEVICES: IrqLock<Vec<PciDev>> = IrqLock::new("pci_devices", Vec::new());

/// Enumerate the buses; log each function as Linux does (at debug level: `boot` shows
/// info, and its output must not change); with `pci=dump`, print each one's configuration bytes.
pub fn init(cmdline: &[u8]) {
    let mut found = Vec::new();
    scan_bus(0, &mut found, &mut 256);
    for d in &found {
        log::debug!(
            "pci {}: [{:04x}:{:04x}] type {:02x} class {:#08x}",
            d.bdf,
            d.vendor,
            d.device,
            d.header_type & PCI_HEADER_TYPE_MASK,
            d.class
        );
        for (i, b) in d.bars.iter().enumerate() {
            if let Some(b) = b {
                log::debug!(
                    "pci {}: reg {:#x}: [{} {:#010x}-{:#010x}{}]",
                    d.bdf,
                    PCI_BASE_ADDRESS_0 as usize + 4 * i,
                    if b.io { "io" } else { "mem" },
                    b.addr,
                    b.addr + b.size - 1,
                    if b.prefetch { " pref" } else { "" }
                );
            }
        }
    }
    if crate::cmdline::param(cmdline, "pci") == Some(b"dump") {
        for d in &found {
            crate::kprintln!("{} [{:04x}:{:04x}]", d.bdf, d.vendor, d.device);
            for row in 0..16u8 {
                crate::kprint!("  {:02x}:", row * 16);
                for w in 0..4u8 {
                    crate::kprint!(" {:08x}", read32(d.bdf, row * 16 + w * 4));
                }
                crate::kprintln!();
            }
            let caps: Vec<(u8, u8)> = d.capabilities();
            crate::kprintln!("  capabilities: {:02x?}", caps);
        }
    }
    *DEVICES.lock() = found;
}

/// The functions found at boot, in bus order.
pub fn devices() -> Vec<PciDev> {
    DEVICES.lock().clone()
}
