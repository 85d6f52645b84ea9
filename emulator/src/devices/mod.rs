//! Device models and the buses that route guest I/O to them. A device sees port numbers or
//! physical addresses relative to nothing: the bus decodes which device owns an access.

pub mod debug_exit;
pub mod debugcon;
pub mod disk;
pub mod ioapic;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod pvport;
pub mod rtc;
pub mod uart16550;
pub mod virtio;
pub mod virtio_blk;

/// What a device asks of the machine after a guest write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoAction {
    None,
    /// Stop the machine with this raw host exit status (QEMU's isa-debug-exit convention).
    Exit(u32),
    /// Drive ISA IRQ line `line` (0..15, the 8259 inputs) high or low.
    Irq {
        line: u8,
        level: bool,
    },
}

/// A device on the x86 I/O port bus (`in`/`out`).
pub trait PortDevice: Send {
    fn name(&self) -> &'static str;
    /// Read `size` (1, 2 or 4) bytes at `port`.
    fn read(&mut self, port: u16, size: u8) -> u32;
    /// Write `size` (1, 2 or 4) bytes at `port`.
    fn write(&mut self, port: u16, size: u8, val: u32) -> IoAction;
    /// The ISA IRQ line the device drives and its level now, for devices whose
    /// interrupt output changes on reads too (the 16550's IIR and RBR). The port bus
    /// samples it after every access and after [`PortDevice::poll`].
    fn irq(&self) -> Option<(u8, bool)> {
        None
    }
    /// Take input that arrived from outside the machine (host stdin for a UART).
    fn poll(&mut self) {}
}

struct PortRange {
    first: u16,
    last: u16,
    dev: Box<dyn PortDevice>,
    /// The level of the device's IRQ output last seen.
    irq_level: bool,
}

/// The I/O port bus: a handful of devices, looked up by range.
#[derive(Default)]
pub struct PortBus {
    ranges: Vec<PortRange>,
    /// IRQ line changes seen since the bus last took them ([`PortBus::take_irq_changes`]).
    irq_changes: Vec<(u8, bool)>,
}

/// Record a change of `r`'s IRQ output.
fn sample_irq(r: &mut PortRange, changes: &mut Vec<(u8, bool)>) {
    if let Some((line, level)) = r.dev.irq() {
        if level != r.irq_level {
            r.irq_level = level;
            changes.push((line, level));
        }
    }
}

/// Value of a read from a port nobody decodes: the ISA bus floats high.
pub const OPEN_BUS: u32 = 0xffff_ffff;

impl PortBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `dev` for ports `first..first+count`.
    pub fn register(&mut self, first: u16, count: u16, dev: Box<dyn PortDevice>) {
        self.ranges.push(PortRange {
            first,
            last: first + (count - 1),
            dev,
            irq_level: false,
        });
    }

    /// The IRQ line changes devices made since the last call, in order.
    pub fn take_irq_changes(&mut self) -> Option<Vec<(u8, bool)>> {
        if self.irq_changes.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.irq_changes))
        }
    }

    /// Let every device take input from outside (see [`PortDevice::poll`]).
    pub fn poll(&mut self) {
        for r in &mut self.ranges {
            r.dev.poll();
            sample_irq(r, &mut self.irq_changes);
        }
    }

    pub fn read(&mut self, port: u16, size: u8) -> u32 {
        let mask = size_mask(size);
        let found = self
            .ranges
            .iter_mut()
            .find(|r| port >= r.first && port <= r.last);
        match found {
            Some(r) => {
                let v = r.dev.read(port - r.first, size) & mask;
                sample_irq(r, &mut self.irq_changes);
                v
            }
            None => {
                log::trace!("in from unclaimed port {port:#x}");
                OPEN_BUS & mask
            }
        }
    }

    pub fn write(&mut self, port: u16, size: u8, val: u32) -> IoAction {
        let mask = size_mask(size);
        let found = self
            .ranges
            .iter_mut()
            .find(|r| port >= r.first && port <= r.last);
        match found {
            Some(r) => {
                let a = r.dev.write(port - r.first, size, val & mask);
                sample_irq(r, &mut self.irq_changes);
                a
            }
            None => {
                log::trace!("out {val:#x} to unclaimed port {port:#x}");
                IoAction::None
            }
        }
    }
}

fn size_mask(size: u8) -> u32 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}
