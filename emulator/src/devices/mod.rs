//! Device models and the buses that route guest I/O to them. A device sees port numbers or
//! physical addresses relative to nothing: the bus decodes which device owns an access.

/// Virtual nanoseconds per second: every device clock reads the instruction count, one
/// instruction being one nanosecond.
pub const NS_PER_SEC: u64 = 1_000_000_000;

pub mod acpi_pm;
pub mod debug_exit;
pub mod debugcon;
pub mod disk;
pub mod fw_cfg;
pub mod i8042;
pub mod ioapic;
pub mod lapic;
pub mod pc_testdev;
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
    /// Reset the machine (the i8042's reset line); as QEMU with `-no-reboot`, it stops.
    Reset,
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
    /// A read at virtual time `now` (the instruction count): for devices with a clock
    /// (the RTC). The port bus calls this; the default ignores the time.
    fn read_at(&mut self, port: u16, size: u8, _now: u64) -> u32 {
        self.read(port, size)
    }
    /// A write at virtual time `now`.
    fn write_at(&mut self, port: u16, size: u8, val: u32, _now: u64) -> IoAction {
        self.write(port, size, val)
    }
    /// The ISA IRQ lines the device drives (bit n = IRQ n), for devices whose interrupt
    /// outputs change on reads too (the 16550's IIR and RBR, the i8042's data port).
    fn irq_mask(&self) -> u16 {
        0
    }
    /// The levels of those lines now. The port bus samples them after every access and
    /// after [`PortDevice::poll`].
    fn irq_levels(&self) -> u16 {
        0
    }
    /// Lines the device dropped during the last access even if they are high again now
    /// (the i8042 lowers its IRQ when the data port is read and raises it again for the
    /// next queued byte: an edge for an edge-triggered input). Taken once.
    fn take_irq_pulses(&mut self) -> u16 {
        0
    }
    /// Take input that arrived from outside the machine (host stdin for a UART).
    fn poll(&mut self) {}
}

struct PortRange {
    first: u16,
    last: u16,
    dev: Box<dyn PortDevice>,
    /// The levels of the device's IRQ outputs last seen.
    irq_levels: u16,
}

/// The I/O port bus: a handful of devices, looked up by range.
#[derive(Default)]
pub struct PortBus {
    ranges: Vec<PortRange>,
    /// IRQ line changes seen since the bus last took them ([`PortBus::take_irq_changes`]).
    irq_changes: Vec<(u8, bool)>,
    /// The virtual time of the access being made (the bus sets it).
    pub now: u64,
}

/// Record the changes of `r`'s IRQ outputs.
fn sample_irq(r: &mut PortRange, changes: &mut Vec<(u8, bool)>) {
    let mask = r.dev.irq_mask();
    if mask == 0 {
        return;
    }
    let levels = r.dev.irq_levels() & mask;
    // A line that dropped and rose again within the access: report the low level first.
    let pulsed = r.dev.take_irq_pulses() & mask & r.irq_levels & levels;
    for line in 0..16u8 {
        if pulsed & (1 << line) != 0 {
            changes.push((line, false));
            r.irq_levels &= !(1 << line);
        }
    }
    let changed = levels ^ r.irq_levels;
    r.irq_levels = levels;
    for line in 0..16u8 {
        if changed & (1 << line) != 0 {
            changes.push((line, levels & (1 << line) != 0));
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
            irq_levels: 0,
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

    /// Whether device IRQ changes wait to be taken.
    pub fn has_irq_changes(&self) -> bool {
        !self.irq_changes.is_empty()
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
                let v = r.dev.read_at(port - r.first, size, self.now) & mask;
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
                let a = r.dev.write_at(port - r.first, size, val & mask, self.now);
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
