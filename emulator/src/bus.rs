//! The machine's buses as the CPU sees them: guest RAM, MMIO devices by physical range, and
//! the I/O port bus. The CPU reaches every device through here; devices never see the CPU.

use crate::addr::GuestPhysAddr;
use crate::devices::{IoAction, PortBus};
use crate::memory::GuestMemory;

/// A device mapped into the physical address space.
pub trait MmioDevice: Send {
    fn name(&self) -> &'static str;
    fn read(&mut self, offset: u64, size: u8) -> u64;
    fn write(&mut self, offset: u64, size: u8, val: u64) -> IoAction;
}

struct MmioRange {
    base: u64,
    len: u64,
    dev: Box<dyn MmioDevice>,
}

/// Everything outside the CPU core.
pub struct Bus {
    pub mem: GuestMemory,
    pub io: PortBus,
    mmio: Vec<MmioRange>,
    /// Set when a device asks the machine to stop (isa-debug-exit); raw host status.
    pub exit_request: Option<u32>,
}

/// What reads of unbacked physical addresses return (the bus floats high).
pub const OPEN_BUS: u64 = u64::MAX;

impl Bus {
    pub fn new(mem: GuestMemory, io: PortBus) -> Self {
        Bus {
            mem,
            io,
            mmio: Vec::new(),
            exit_request: None,
        }
    }

    pub fn map_mmio(&mut self, base: u64, len: u64, dev: Box<dyn MmioDevice>) {
        self.mmio.push(MmioRange { base, len, dev });
    }

    fn mmio_find(&mut self, pa: u64) -> Option<&mut MmioRange> {
        self.mmio
            .iter_mut()
            .find(|r| pa >= r.base && pa - r.base < r.len)
    }

    /// Read `size` bytes (1..=8) that do not cross a page.
    #[inline]
    pub fn read(&mut self, pa: GuestPhysAddr, size: usize) -> u64 {
        if let Some(v) = self.mem.read(pa, size) {
            return v;
        }
        match self.mmio_find(pa.as_u64()) {
            Some(r) => r.dev.read(pa.as_u64() - r.base, size as u8),
            None => OPEN_BUS >> (64 - size * 8),
        }
    }

    /// Write the low `size` bytes of `val`.
    #[inline]
    pub fn write(&mut self, pa: GuestPhysAddr, size: usize, val: u64) {
        if self.mem.write(pa, size, val) {
            return;
        }
        let action = match self.mmio_find(pa.as_u64()) {
            Some(r) => r.dev.write(pa.as_u64() - r.base, size as u8, val),
            None => IoAction::None,
        };
        self.act(action);
    }

    pub fn port_read(&mut self, port: u16, size: u8) -> u32 {
        self.io.read(port, size)
    }

    pub fn port_write(&mut self, port: u16, size: u8, val: u32) {
        let action = self.io.write(port, size, val);
        self.act(action);
    }

    fn act(&mut self, action: IoAction) {
        if let IoAction::Exit(status) = action {
            self.exit_request.get_or_insert(status);
        }
    }
}
