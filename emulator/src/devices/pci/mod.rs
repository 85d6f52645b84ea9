//! PCI bus 0 as QEMU's `pc` machine has it (PCI Local Bus spec 3.0): configuration
//! mechanism #1 (address at 0xCF8, data at 0xCFC..0xCFF, byte/word/dword), the chipset
//! functions (`chipset.rs`), the devices added on the command line (virtio disks), BAR
//! decoding for memory and I/O space, and INTx routed through the PIIX3's PIRQ route
//! registers (0x60..0x63) to the 8259. `firmware.rs` leaves the bus as SeaBIOS does.
//!
//! The host is a typed field of [`crate::bus::Bus`] (like the 8259): BAR accesses of a
//! device need guest RAM for DMA, and the interrupt lines they drive go to the PIC.

pub mod chipset;
pub mod firmware;

use crate::memory::GuestMemory;

/// The configuration address register (mechanism #1) and the data window.
pub const CONFIG_ADDRESS: u16 = 0xcf8;
pub const CONFIG_DATA: u16 = 0xcfc;
/// Bit 31 of CONFIG_ADDRESS: the data window decodes a configuration access.
const CONFIG_ENABLE: u32 = 1 << 31;
/// Size of a conventional (not PCIe) configuration space.
pub const CONFIG_SPACE_SIZE: usize = 256;

/// Standard header offsets (type 0).
pub mod reg {
    pub const VENDOR_ID: usize = 0x00;
    pub const DEVICE_ID: usize = 0x02;
    pub const COMMAND: usize = 0x04;
    pub const STATUS: usize = 0x06;
    pub const REVISION: usize = 0x08;
    pub const CLASS_PROG: usize = 0x09;
    pub const HEADER_TYPE: usize = 0x0e;
    pub const BAR0: usize = 0x10;
    pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
    pub const SUBSYSTEM_ID: usize = 0x2e;
    pub const CAPABILITY_LIST: usize = 0x34;
    pub const INTERRUPT_LINE: usize = 0x3c;
    pub const INTERRUPT_PIN: usize = 0x3d;
    /// First byte after the standard header: device-specific registers.
    pub const DEVICE_SPECIFIC: usize = 0x40;
}

/// Command register bits.
pub mod command {
    pub const IO: u16 = 1 << 0;
    pub const MEMORY: u16 = 1 << 1;
    pub const MASTER: u16 = 1 << 2;
    pub const SERR: u16 = 1 << 8;
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Status register: a capability list is present.
pub const STATUS_CAP_LIST: u16 = 1 << 4;
/// Header type bit 7: the device has more functions than 0.
pub const HEADER_MULTI_FUNCTION: u8 = 0x80;
/// PCI vendor IDs.
pub const VENDOR_INTEL: u16 = 0x8086;
pub const VENDOR_REDHAT_QUMRANET: u16 = 0x1af4;
/// QEMU's subsystem ID for its chipset functions (`PCI_SUBDEVICE_ID_QEMU`).
pub const SUBSYSTEM_QEMU: u16 = 0x1100;

/// What a base address register decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Mem32,
    /// 64-bit memory; the next BAR register holds the upper half.
    Mem64 {
        prefetchable: bool,
    },
}

/// One implemented BAR: its register index (0..5), kind and size (a power of two).
#[derive(Clone, Copy, Debug)]
pub struct Bar {
    pub index: usize,
    pub kind: BarKind,
    pub size: u64,
}

impl Bar {
    /// The low type bits the register reads back with (PCI 3.0, 6.2.5.1).
    fn type_bits(&self) -> u32 {
        match self.kind {
            BarKind::Io => 0x1,
            BarKind::Mem32 => 0x0,
            BarKind::Mem64 { prefetchable } => 0x4 | if prefetchable { 0x8 } else { 0 },
        }
    }
}

/// A function's 256 configuration bytes, with the bits the guest may write (`wmask`)
/// and those a write of 1 clears (`w1cmask`, the status register's error bits), as
/// QEMU's `PCIDevice` keeps them.
pub struct PciConfig {
    pub data: [u8; CONFIG_SPACE_SIZE],
    pub wmask: [u8; CONFIG_SPACE_SIZE],
    pub w1cmask: [u8; CONFIG_SPACE_SIZE],
    pub bars: Vec<Bar>,
}

impl PciConfig {
    /// A type-0 header with IDs and class; as QEMU's `pci_init_wmask`, the command
    /// register's IO/MEM/MASTER/SERR/INTX_DISABLE bits, the interrupt line and every
    /// device-specific byte (0x40..0xff) are writable until a capability claims them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vendor: u16,
        device: u16,
        class: u32,
        revision: u8,
        header_type: u8,
        subsystem_vendor: u16,
        subsystem: u16,
    ) -> Self {
        let mut c = PciConfig {
            data: [0; CONFIG_SPACE_SIZE],
            wmask: [0; CONFIG_SPACE_SIZE],
            w1cmask: [0; CONFIG_SPACE_SIZE],
            bars: Vec::new(),
        };
        c.set_u16(reg::VENDOR_ID, vendor);
        c.set_u16(reg::DEVICE_ID, device);
        c.data[reg::REVISION] = revision;
        c.data[reg::CLASS_PROG] = class as u8;
        c.data[reg::CLASS_PROG + 1] = (class >> 8) as u8;
        c.data[reg::CLASS_PROG + 2] = (class >> 16) as u8;
        c.data[reg::HEADER_TYPE] = header_type;
        c.set_u16(reg::SUBSYSTEM_VENDOR_ID, subsystem_vendor);
        c.set_u16(reg::SUBSYSTEM_ID, subsystem);
        let cmd_mask =
            command::IO | command::MEMORY | command::MASTER | command::SERR | command::INTX_DISABLE;
        c.wmask[reg::COMMAND..reg::COMMAND + 2].copy_from_slice(&cmd_mask.to_le_bytes());
        // Status: the error bits (parity, SERR, aborts) are write-1-to-clear.
        c.w1cmask[reg::STATUS + 1] = 0xf9;
        c.wmask[reg::INTERRUPT_LINE] = 0xff;
        c.wmask[reg::DEVICE_SPECIFIC..].fill(0xff);
        c
    }

    pub fn u8(&self, off: usize) -> u8 {
        self.data[off]
    }
    pub fn u16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.data[off], self.data[off + 1]])
    }
    pub fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.data[off..off + 4].try_into().unwrap_or([0; 4]))
    }
    pub fn set_u16(&mut self, off: usize, v: u16) {
        self.data[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.data[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub fn command(&self) -> u16 {
        self.u16(reg::COMMAND)
    }

    /// Declare BAR `index`: its register reads back the type bits and only the address
    /// bits above the size are writable, so writing all ones reads back the size (6.2.5.1).
    pub fn add_bar(&mut self, index: usize, kind: BarKind, size: u64) {
        let bar = Bar { index, kind, size };
        let off = reg::BAR0 + 4 * index;
        self.set_u32(off, bar.type_bits());
        let mask = !(size - 1);
        self.wmask[off..off + 4].copy_from_slice(&(mask as u32).to_le_bytes());
        if let BarKind::Mem64 { .. } = kind {
            self.wmask[off + 4..off + 8].copy_from_slice(&((mask >> 32) as u32).to_le_bytes());
        }
        self.bars.push(bar);
    }

    /// Append a capability of `body.len() + 2` bytes at `off` to the list (QEMU's
    /// `pci_add_capability` links the newest first). Its bytes become read-only.
    pub fn add_capability(&mut self, off: usize, id: u8, body: &[u8]) {
        let next = self.data[reg::CAPABILITY_LIST];
        self.data[off] = id;
        self.data[off + 1] = next;
        self.data[off + 2..off + 2 + body.len()].copy_from_slice(body);
        self.wmask[off..off + 2 + body.len()].fill(0);
        self.data[reg::CAPABILITY_LIST] = off as u8;
        let st = self.u16(reg::STATUS) | STATUS_CAP_LIST;
        self.set_u16(reg::STATUS, st);
    }

    /// The address BAR `bar` decodes now, if its space is enabled in the command register
    /// and the address is usable (QEMU's `pci_bar_address`: 0 and addresses whose range
    /// wraps or, for I/O, leaves the 64 KiB port space, are not mapped).
    pub fn bar_address(&self, bar: &Bar) -> Option<u64> {
        let off = reg::BAR0 + 4 * bar.index;
        let cmd = self.command();
        let (addr, limit) = match bar.kind {
            BarKind::Io => {
                if cmd & command::IO == 0 {
                    return None;
                }
                ((self.u32(off) & !0x3) as u64, 0x1_0000)
            }
            BarKind::Mem32 => {
                if cmd & command::MEMORY == 0 {
                    return None;
                }
                ((self.u32(off) & !0xf) as u64, 1 << 32)
            }
            BarKind::Mem64 { .. } => {
                if cmd & command::MEMORY == 0 {
                    return None;
                }
                let lo = (self.u32(off) & !0xf) as u64;
                (lo | (self.u32(off + 4) as u64) << 32, u64::MAX)
            }
        };
        let addr = addr & !(bar.size - 1);
        let end = addr.checked_add(bar.size)?;
        (addr != 0 && end <= limit && end != 0).then_some(addr)
    }

    /// A configuration read of `size` bytes at `off` (within the 256 bytes).
    pub fn read(&self, off: usize, size: usize) -> u32 {
        let mut v = 0u32;
        for i in 0..size {
            v |= (self.data[off + i] as u32) << (8 * i);
        }
        v
    }

    /// A configuration write through the write masks.
    pub fn write(&mut self, off: usize, size: usize, val: u32) {
        for i in 0..size {
            let b = (val >> (8 * i)) as u8;
            let o = off + i;
            let (wm, w1c) = (self.wmask[o], self.w1cmask[o]);
            self.data[o] = (self.data[o] & !wm) | (b & wm);
            self.data[o] &= !(b & w1c);
        }
    }
}

/// An MSI message a device sends (address and data as the guest programmed them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// A PCI function on bus 0.
pub trait PciFunction: Send {
    fn name(&self) -> &'static str;
    fn config(&self) -> &PciConfig;
    fn config_mut(&mut self) -> &mut PciConfig;
    /// A configuration read (`off + size <= 256`, naturally aligned).
    fn config_read(&mut self, off: usize, size: usize, _mem: &mut GuestMemory) -> u32 {
        self.config().read(off, size)
    }
    /// A configuration write.
    fn config_write(&mut self, off: usize, size: usize, val: u32, _mem: &mut GuestMemory) {
        self.config_mut().write(off, size, val)
    }
    /// A read of `size` bytes at `off` in BAR `bar` (register index).
    fn bar_read(&mut self, _bar: usize, _off: u64, size: u8, _mem: &mut GuestMemory) -> u64 {
        u64::MAX >> (64 - 8 * size as u32)
    }
    fn bar_write(&mut self, _bar: usize, _off: u64, _size: u8, _val: u64, _mem: &mut GuestMemory) {}
    /// The level of the function's INTx pin (before the command register's disable bit).
    fn intx(&self) -> bool {
        false
    }
    /// MSI messages sent since the last call.
    fn take_msi(&mut self) -> Vec<MsiMessage> {
        Vec::new()
    }
    /// Disk statistics, for functions that are disks.
    fn disk_stats(&self) -> Option<crate::devices::virtio_blk::BlkStats> {
        None
    }
}

struct Slot {
    dev: u8,
    func: u8,
    f: Box<dyn PciFunction>,
}

/// Device number of the first slot the command line's devices get (QEMU puts them after
/// the chipset, at 00:02.0 with `-vga none -nic none`).
pub const FIRST_FREE_SLOT: u8 = 2;
/// Devices per bus.
pub const SLOTS: u8 = 32;

/// The PIIX3 function's location: 00:01.0, where its PIRQ route registers are.
const PIIX3_DEV: u8 = 1;
/// PIRQ route control registers (PIRQA..D), PIIX3 datasheet 2.2.10: bit 7 disables the
/// route, bits 3:0 name the ISA IRQ.
pub const PIIX3_PIRQRC: usize = 0x60;
const PIRQ_ROUTE_DISABLE: u8 = 0x80;

/// The host bridge's view of bus 0.
pub struct PciHost {
    address: u32,
    slots: Vec<Slot>,
}

impl Default for PciHost {
    fn default() -> Self {
        Self::new()
    }
}

impl PciHost {
    /// Bus 0 with QEMU's `pc` chipset (i440FX, PIIX3, its IDE and the PIIX4 ACPI function).
    pub fn new() -> Self {
        let mut h = PciHost {
            address: 0,
            slots: Vec::new(),
        };
        for (dev, func, f) in chipset::functions() {
            h.slots.push(Slot { dev, func, f });
        }
        h
    }

    /// Unplug function `dev.func` (QEMU's `acpi=off` has no PIIX4 ACPI function).
    pub fn remove_function(&mut self, dev: u8, func: u8) {
        self.slots.retain(|s| !(s.dev == dev && s.func == func));
    }

    /// Plug `f` as function 0 of the next free device number; `None` when the bus is full.
    pub fn add_device(&mut self, f: Box<dyn PciFunction>) -> Option<u8> {
        let dev = (FIRST_FREE_SLOT..SLOTS).find(|d| !self.slots.iter().any(|s| s.dev == *d))?;
        self.slots.push(Slot { dev, func: 0, f });
        Some(dev)
    }

    /// Whether this host decodes `port` as the configuration mechanism.
    fn config_port(port: u16) -> bool {
        (CONFIG_ADDRESS..CONFIG_DATA + 4).contains(&port)
    }

    fn find(&mut self, dev: u8, func: u8) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.dev == dev && s.func == func)
    }

    /// The configuration access the data window at `port` means: (dev, func, offset).
    fn decode(&self, port: u16) -> Option<(u8, u8, usize)> {
        let a = self.address;
        let bus = (a >> 16) & 0xff;
        if a & CONFIG_ENABLE == 0 || bus != 0 {
            return None;
        }
        let off = (a & 0xfc) as usize + (port - CONFIG_DATA) as usize;
        Some((((a >> 11) & 0x1f) as u8, ((a >> 8) & 7) as u8, off))
    }

    /// A port read: `Some` if the configuration ports or an I/O BAR decode it.
    pub fn port_read(&mut self, port: u16, size: u8, mem: &mut GuestMemory) -> Option<u32> {
        if Self::config_port(port) {
            if port == CONFIG_ADDRESS && size == 4 {
                return Some(self.address);
            }
            if port < CONFIG_DATA {
                // Narrow accesses to 0xcf8..0xcfb are not configuration cycles (QEMU's
                // i440FX passes them on to the ISA bus, where nothing answers).
                return None;
            }
            let (dev, func, off) = self.decode(port)?;
            let size = size as usize;
            if off + size > CONFIG_SPACE_SIZE {
                return Some(u32::MAX);
            }
            return Some(match self.find(dev, func) {
                Some(s) => s.f.config_read(off, size, mem),
                None => u32::MAX >> (32 - 8 * size as u32),
            });
        }
        let (i, bar, off) = self.io_bar(port)?;
        Some(self.slots[i].f.bar_read(bar, off, size, mem) as u32)
    }

    /// A port write; `true` if the configuration ports or an I/O BAR decoded it.
    pub fn port_write(&mut self, port: u16, size: u8, val: u32, mem: &mut GuestMemory) -> bool {
        if Self::config_port(port) {
            if port == CONFIG_ADDRESS && size == 4 {
                self.address = val;
                return true;
            }
            if port < CONFIG_DATA {
                return false;
            }
            let Some((dev, func, off)) = self.decode(port) else {
                return true;
            };
            let size = size as usize;
            if off + size <= CONFIG_SPACE_SIZE {
                if let Some(s) = self.find(dev, func) {
                    s.f.config_write(off, size, val, mem);
                }
            }
            return true;
        }
        match self.io_bar(port) {
            Some((i, bar, off)) => {
                self.slots[i].f.bar_write(bar, off, size, val as u64, mem);
                true
            }
            None => false,
        }
    }

    fn io_bar(&self, port: u16) -> Option<(usize, usize, u64)> {
        self.bar_at(port as u64, true)
    }

    /// The (slot, BAR index, offset) decoding address `a` in I/O or memory space.
    fn bar_at(&self, a: u64, io: bool) -> Option<(usize, usize, u64)> {
        for (i, s) in self.slots.iter().enumerate() {
            let c = s.f.config();
            for b in &c.bars {
                if (b.kind == BarKind::Io) != io {
                    continue;
                }
                if let Some(base) = c.bar_address(b) {
                    if a.wrapping_sub(base) < b.size {
                        return Some((i, b.index, a - base));
                    }
                }
            }
        }
        None
    }

    /// An MMIO read: `Some` if a memory BAR decodes `pa`.
    pub fn mmio_read(&mut self, pa: u64, size: u8, mem: &mut GuestMemory) -> Option<u64> {
        let (i, bar, off) = self.bar_at(pa, false)?;
        Some(self.slots[i].f.bar_read(bar, off, size, mem))
    }

    /// An MMIO write; `true` if a memory BAR decoded it.
    pub fn mmio_write(&mut self, pa: u64, size: u8, val: u64, mem: &mut GuestMemory) -> bool {
        match self.bar_at(pa, false) {
            Some((i, bar, off)) => {
                self.slots[i].f.bar_write(bar, off, size, val, mem);
                true
            }
            None => false,
        }
    }

    /// The ISA IRQ lines (bit n = IRQ n) that PCI INTx pins assert now, through the
    /// PIIX3's PIRQ routes. The PIIX3 maps device `d`'s pin `p` (1 = INTA) to PIRQ
    /// `(p - 1 + d - 1) & 3` (QEMU's `pci_slot_get_pirq`, as the firmware's $PIR table says).
    pub fn irq_levels(&self) -> u16 {
        let Some(piix3) = self
            .slots
            .iter()
            .find(|s| s.dev == PIIX3_DEV && s.func == 0)
        else {
            return 0;
        };
        let routes = &piix3.f.config().data[PIIX3_PIRQRC..PIIX3_PIRQRC + 4];
        let mut lines = 0u16;
        for s in &self.slots {
            let c = s.f.config();
            let pin = c.u8(reg::INTERRUPT_PIN);
            if pin == 0 || c.command() & command::INTX_DISABLE != 0 || !s.f.intx() {
                continue;
            }
            let pirq = (pin as usize - 1 + s.dev as usize).wrapping_sub(1) & 3;
            let route = routes[pirq];
            // QEMU's piix3_set_irq_pic: routed only if the whole byte names an ISA IRQ
            // (bit 7, the disable bit, clear and bits 6:4 zero).
            if route & PIRQ_ROUTE_DISABLE == 0 && route < 16 {
                lines |= 1 << (route & 0xf);
            }
        }
        lines
    }

    /// MSI messages the functions sent since the last call.
    pub fn take_msi(&mut self) -> Vec<MsiMessage> {
        let mut v = Vec::new();
        for s in &mut self.slots {
            v.extend(s.f.take_msi());
        }
        v
    }

    /// The disks on the bus in slot order, with their statistics.
    pub fn disk_stats(&self) -> Vec<crate::devices::virtio_blk::BlkStats> {
        let mut slots: Vec<&Slot> = self.slots.iter().collect();
        slots.sort_by_key(|s| (s.dev, s.func));
        slots.iter().filter_map(|s| s.f.disk_stats()).collect()
    }

    /// Every function, in (device, function) order, for the firmware's set-up.
    pub(crate) fn functions_mut(&mut self) -> Vec<(u8, u8, &mut Box<dyn PciFunction>)> {
        self.slots.sort_by_key(|s| (s.dev, s.func));
        self.slots
            .iter_mut()
            .map(|s| (s.dev, s.func, &mut s.f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_read(h: &mut PciHost, mem: &mut GuestMemory, dev: u8, func: u8, off: u8) -> u32 {
        let a = CONFIG_ENABLE | (dev as u32) << 11 | (func as u32) << 8 | off as u32;
        assert!(h.port_write(CONFIG_ADDRESS, 4, a, mem));
        h.port_read(CONFIG_DATA, 4, mem).unwrap()
    }

    #[test]
    fn chipset_ids_and_absent_functions() {
        let mut mem = GuestMemory::new(2 << 20).unwrap();
        let mut h = PciHost::new();
        assert_eq!(cfg_read(&mut h, &mut mem, 0, 0, 0), 0x1237_8086);
        assert_eq!(cfg_read(&mut h, &mut mem, 1, 0, 0), 0x7000_8086);
        assert_eq!(cfg_read(&mut h, &mut mem, 1, 1, 0), 0x7010_8086);
        assert_eq!(cfg_read(&mut h, &mut mem, 1, 3, 0), 0x7113_8086);
        assert_eq!(cfg_read(&mut h, &mut mem, 2, 0, 0), 0xffff_ffff);
        // Byte access in the middle of the window.
        let a = CONFIG_ENABLE | 1 << 11;
        h.port_write(CONFIG_ADDRESS, 4, a | 0x0c, &mut mem);
        assert_eq!(h.port_read(CONFIG_DATA + 2, 1, &mut mem), Some(0x80));
    }

    #[test]
    fn bar_sizing_reads_back_the_size() {
        let mut c = PciConfig::new(1, 2, 0, 0, 0, 0, 0);
        c.add_bar(1, BarKind::Mem32, 0x1000);
        c.add_bar(4, BarKind::Mem64 { prefetchable: true }, 0x4000);
        c.write(0x14, 4, 0xffff_ffff);
        assert_eq!(c.u32(0x14), 0xffff_f000);
        c.write(0x20, 4, 0xffff_ffff);
        c.write(0x24, 4, 0xffff_ffff);
        assert_eq!(c.u32(0x20), 0xffff_c00c);
        assert_eq!(c.u32(0x24), 0xffff_ffff);
        // Decoding is off until the command register enables memory space.
        assert_eq!(c.bar_address(&c.bars[0]), None);
        c.write(0x14, 4, 0xfebf_e000);
        c.write(reg::COMMAND, 2, command::MEMORY as u32);
        assert_eq!(c.bar_address(&c.bars[0]), Some(0xfebf_e000));
    }
}
