//! The machine's buses as the CPU sees them: guest RAM, MMIO devices by physical range, and
//! the I/O port bus. The CPU reaches every device through here; devices never see the CPU.
//!
//! The interrupt controllers live here as typed fields rather than behind the device
//! traits, because the machine loop must query them directly: the local APIC (decoded at
//! the page IA32_APIC_BASE names, ahead of other MMIO) and the 8259 pair (ports 0x20/0x21,
//! 0xA0/0xA1, ELCR 0x4D0/0x4D1). Any access to them, or any IRQ line change, sets
//! [`Bus::next_event`] to 0 so that the machine re-evaluates interrupts before the next
//! instruction. The paravirtual port ([`PvPort`], 0x0E90..0x0EAF) is a typed field too,
//! because it reads the bus's clock ([`Bus::now`]), which port devices do not see.

use crate::addr::GuestPhysAddr;
use crate::devices::ioapic::{isa_irq_pin, IoApic, IoApicMessage, IOAPIC_BASE, IOAPIC_SIZE};
use crate::devices::lapic::Lapic;
use crate::devices::pci::{MsiMessage, PciHost};
use crate::devices::pic::Pic;
use crate::devices::pit::{Pit, PIT_IRQ};
use crate::devices::pvport::PvPort;
use crate::devices::{IoAction, PortBus};
use crate::memory::GuestMemory;
use crate::ostrace::OsState;
use crate::trace::TraceSink;

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
    /// Set when the guest resets the machine (the i8042's reset line).
    pub reset_request: bool,
    /// Whether a port device takes input from the host (COM1 from stdin).
    pub has_input: bool,
    /// The local APIC of the CPU executing (with several CPUs the machine swaps each
    /// CPU's APIC in here while it runs, so an access always reaches the executing
    /// CPU's own APIC).
    pub lapic: Lapic,
    /// With several CPUs: every CPU's local APIC by CPU number, except that the slot of
    /// the executing CPU ([`Bus::current_cpu`]) holds a stale placeholder (its APIC is
    /// [`Bus::lapic`]). Empty with one CPU.
    pub parked_lapics: Vec<Lapic>,
    /// The number of the CPU executing (0 = the BSP).
    pub current_cpu: usize,
    /// The master/slave 8259A pair.
    pub pic: Pic,
    /// The I/O APIC at 0xFEC00000 (typed: it delivers to the local APIC).
    pub ioapic: IoApic,
    /// The 8254 PIT and port 0x61 (typed: it reads the clock and drives IRQ 0).
    pub pit: Pit,
    /// The vmscope paravirtual port (signature, instruction count, annotations).
    pub pvport: PvPort,
    /// PCI bus 0: configuration ports 0xCF8/0xCFC and the BARs of its devices.
    pub pci: PciHost,
    /// Whether the firmware describes the machine with ACPI (QEMU's `-machine pc`, the
    /// default) or with the MP table, `$PIR` and SMBIOS alone (`-machine pc,acpi=off`):
    /// the memory map and PCI functions differ (see `Machine::new`).
    pub acpi: bool,
    /// The ISA IRQ lines PCI INTx pins drive now (bit n = IRQ n).
    pci_irq_lines: u16,
    /// Where trace events go (`--fault-trace`, `--timeline`), if anywhere.
    pub trace: Option<Box<dyn TraceSink>>,
    /// The guest's tasks as its annotations describe them.
    pub os: OsState,
    /// For a Linux guest: where its running task is found (from the kernel's BTF).
    pub linux_task: Option<crate::linux_task::LinuxTaskLayout>,
    /// The instruction count of the instruction being executed: the time devices see.
    pub now: u64,
    /// The machine loop looks at interrupts, injections, device requests and the
    /// instruction limit only once the CPU's icount reaches this value; lowering it to 0
    /// ([`Bus::kick`]) makes it look before the next instruction.
    pub next_event: u64,
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
            reset_request: false,
            has_input: false,
            lapic: Lapic::new(0),
            parked_lapics: Vec::new(),
            current_cpu: 0,
            pic: Pic::new(),
            pit: Pit::new(),
            ioapic: IoApic::new(),
            pvport: PvPort::new(),
            pci: PciHost::new(),
            pci_irq_lines: 0,
            acpi: true,
            trace: None,
            os: OsState::new(),
            linux_task: None,
            now: 0,
            next_event: 0,
        }
    }

    /// Something may have changed that the machine loop must look at before the next
    /// instruction (an interrupt controller access, an IRQ line, an exit request).
    #[inline]
    pub fn kick(&mut self) {
        self.next_event = 0;
    }

    /// Drive an ISA IRQ line (0..15): the 8259 pair's input and the IOAPIC pin QEMU's
    /// `pc` wires it to. The API for devices.
    pub fn set_irq(&mut self, line: u8, level: bool) {
        self.pic.set_irq(line, level);
        let msgs = self.ioapic.set_irq(isa_irq_pin(line), level);
        self.deliver_ioapic(msgs);
        self.kick();
    }

    /// Every CPU's local APIC, in CPU order (the executing CPU's is [`Bus::lapic`]).
    pub fn all_lapics(&mut self) -> Vec<&mut Lapic> {
        if self.parked_lapics.is_empty() {
            return vec![&mut self.lapic];
        }
        let cur = self.current_cpu;
        let mut mine = Some(&mut self.lapic);
        self.parked_lapics
            .iter_mut()
            .enumerate()
            .map(|(i, l)| if i == cur { mine.take().unwrap() } else { l })
            .collect()
    }

    /// The number of CPUs.
    pub fn cpu_count(&self) -> usize {
        self.parked_lapics.len().max(1)
    }

    /// Hand IOAPIC messages to the local APICs they name: every APIC the destination
    /// matches for a fixed message, the one with the lowest APIC ID for a
    /// lowest-priority one (documented in README: no arbitration on priorities).
    fn deliver_ioapic(&mut self, msgs: Vec<IoApicMessage>) {
        for m in msgs {
            let mut delivered = false;
            for l in self.all_lapics() {
                if l.is_destination(m.dest, m.logical) && !(m.lowest && delivered) {
                    l.raise_vector(m.vector, m.level);
                    delivered = true;
                }
            }
        }
    }

    /// After a local APIC write: route the IPI it sent, if any, to the APICs it names.
    fn route_ipi(&mut self) {
        if let Some(ipi) = self.lapic.take_ipi() {
            let src = self.current_cpu;
            crate::devices::lapic::deliver_ipi(&mut self.all_lapics(), src, &ipi);
        }
    }

    /// After a local APIC access: an EOI of a level-triggered vector reaches the IOAPIC.
    fn lapic_eoi_broadcast(&mut self) {
        if let Some(v) = self.lapic.take_eoi_broadcast() {
            let msgs = self.ioapic.eoi(v);
            self.deliver_ioapic(msgs);
        }
    }

    /// The IOAPIC's window, if `pa` falls in it.
    #[inline]
    fn ioapic_offset(pa: u64) -> Option<u64> {
        let off = pa.wrapping_sub(IOAPIC_BASE);
        (off < IOAPIC_SIZE).then_some(off)
    }

    /// Block until a port device's interrupt changes with input from the host (polled
    /// every 10 ms of real time): for a halted CPU that only host input can wake. False
    /// when the host's input has ended (EOF) without raising anything.
    pub fn wait_for_input(&mut self) -> bool {
        const POLL: std::time::Duration = std::time::Duration::from_millis(10);
        loop {
            let closed = crate::hostinput::input_closed();
            self.io.poll();
            if self.io.has_irq_changes() {
                return true;
            }
            if closed {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Drive the IRQ lines port devices changed.
    #[inline]
    pub fn take_port_irqs(&mut self) {
        if let Some(changes) = self.io.take_irq_changes() {
            for (line, level) in changes {
                self.set_irq(line, level);
            }
        }
    }

    /// Bring the PIT's channel 0 up to `now`, driving IRQ 0 at each OUT transition.
    pub fn advance_timers(&mut self, now: u64) {
        if self.pit.next_irq_event().is_some_and(|t| t <= now) {
            let mut edges = Vec::new();
            self.pit.advance(now, |level| edges.push(level));
            for level in edges {
                self.set_irq(PIT_IRQ, level);
            }
        }
    }

    /// The icount of the next device timer event (the PIT's next OUT change on IRQ 0).
    pub fn next_device_event(&self) -> Option<u64> {
        self.pit.next_irq_event()
    }

    /// The local APIC's page, if `pa` falls in it.
    #[inline]
    fn lapic_offset(&self, pa: u64) -> Option<u64> {
        let base = self.lapic.mmio_base()?;
        (pa.wrapping_sub(base) < crate::devices::lapic::APIC_MMIO_SIZE).then(|| pa - base)
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
        if let Some(off) = self.lapic_offset(pa.as_u64()) {
            self.kick();
            return self.lapic.mmio_read(off, size as u8, self.now);
        }
        if let Some(off) = Self::ioapic_offset(pa.as_u64()) {
            return self.ioapic.mmio_read(off, size as u8);
        }
        if let Some(v) = self.pci.mmio_read(pa.as_u64(), size as u8, &mut self.mem) {
            self.sync_pci();
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
        if let Some(off) = self.lapic_offset(pa.as_u64()) {
            self.kick();
            self.lapic.mmio_write(off, size as u8, val, self.now);
            self.route_ipi();
            self.lapic_eoi_broadcast();
            return;
        }
        if let Some(off) = Self::ioapic_offset(pa.as_u64()) {
            let msgs = self.ioapic.mmio_write(off, size as u8, val);
            self.deliver_ioapic(msgs);
            self.kick();
            return;
        }
        if self
            .pci
            .mmio_write(pa.as_u64(), size as u8, val, &mut self.mem)
        {
            self.sync_pci();
            return;
        }
        let action = match self.mmio_find(pa.as_u64()) {
            Some(r) => r.dev.write(pa.as_u64() - r.base, size as u8, val),
            None => IoAction::None,
        };
        self.act(action);
    }

    pub fn port_read(&mut self, port: u16, size: u8) -> u32 {
        self.io.now = self.now;
        if let Some(off) = PvPort::offset(port) {
            return self.pvport.read(off, size, self.now, self.trace.is_some());
        }
        if Pit::claims(port) {
            // Byte-wide ISA device: wider accesses read the following ports' bytes.
            let mut v = 0;
            for i in 0..size.min(4) as u16 {
                let p = port.wrapping_add(i);
                let b = if Pit::claims(p) {
                    self.pit.read(p, self.now) as u32
                } else {
                    self.io.read(p, 1)
                };
                v |= b << (8 * i);
            }
            return v;
        }
        if !Pic::claims(port) {
            if let Some(v) = self.pci.port_read(port, size, &mut self.mem) {
                self.sync_pci();
                return v;
            }
            let v = self.io.read(port, size);
            self.take_port_irqs();
            return v;
        }
        // The 8259 is a byte-wide ISA device: a wider access is split into byte accesses.
        self.kick();
        let mut v = 0;
        for i in 0..size.min(4) as u16 {
            let p = port.wrapping_add(i);
            let b = if Pic::claims(p) {
                self.pic.read(p) as u32
            } else {
                self.io.read(p, 1)
            };
            v |= b << (8 * i);
        }
        v
    }

    pub fn port_write(&mut self, port: u16, size: u8, val: u32) {
        self.io.now = self.now;
        if let Some(off) = PvPort::offset(port) {
            let action = self.pvport.write(off, size, val);
            self.act(action);
            return;
        }
        if Pit::claims(port) {
            for i in 0..size.min(4) as u16 {
                let p = port.wrapping_add(i);
                let b = (val >> (8 * i)) as u8;
                if Pit::claims(p) {
                    if let Some(level) = self.pit.write(p, b, self.now) {
                        self.set_irq(PIT_IRQ, level);
                    }
                    // The next OUT transition may have moved.
                    self.kick();
                } else {
                    let action = self.io.write(p, 1, b as u32);
                    self.act(action);
                }
            }
            return;
        }
        if !Pic::claims(port) {
            if self.pci.port_write(port, size, val, &mut self.mem) {
                self.sync_pci();
                return;
            }
            let action = self.io.write(port, size, val);
            self.act(action);
            self.take_port_irqs();
            return;
        }
        self.kick();
        for i in 0..size.min(4) as u16 {
            let p = port.wrapping_add(i);
            let b = (val >> (8 * i)) as u8;
            if Pic::claims(p) {
                self.pic.write(p, b);
            } else {
                let action = self.io.write(p, 1, b as u32);
                self.act(action);
            }
        }
    }

    /// After a PCI access: drive the ISA lines whose INTx level changed (level-triggered,
    /// shared lines ORed) and deliver the MSI messages devices sent.
    pub fn sync_pci(&mut self) {
        let lines = self.pci.irq_levels();
        let changed = lines ^ self.pci_irq_lines;
        self.pci_irq_lines = lines;
        for line in 0..16u8 {
            if changed & (1 << line) != 0 {
                self.set_irq(line, lines & (1 << line) != 0);
            }
        }
        for msg in self.pci.take_msi() {
            self.deliver_msi(msg);
        }
    }

    /// An MSI write to the local APIC's message area (SDM 10.11): fixed and
    /// lowest-priority messages raise their vector in the APIC(s) the address names
    /// (destination ID in bits 19:12, logical with bit 2; with one CPU, in its APIC
    /// whatever the destination); other delivery modes are logged.
    fn deliver_msi(&mut self, msg: MsiMessage) {
        const MSI_ADDRESS_MASK: u64 = 0xfff0_0000;
        const MSI_ADDRESS_BASE: u64 = 0xfee0_0000;
        let mode = (msg.data >> 8) & 7;
        if msg.address & MSI_ADDRESS_MASK != MSI_ADDRESS_BASE || mode > 1 {
            log::warn!("MSI {msg:?} not delivered: not a fixed message to the local APIC");
            return;
        }
        let level = msg.data & (1 << 15) != 0;
        if self.parked_lapics.is_empty() {
            self.lapic.raise_vector(msg.data as u8, level);
        } else {
            self.deliver_ioapic(vec![IoApicMessage {
                vector: msg.data as u8,
                level,
                dest: (msg.address >> 12) as u8,
                logical: msg.address & 4 != 0,
                lowest: mode == 1,
            }]);
        }
        self.kick();
    }

    /// The running task's PID and name, for attributing hardware events: from the guest
    /// kernel's annotations, else (a Linux guest) read from its task structures through
    /// the CPU's CR3 and GS bases.
    pub fn who(
        &self,
        cr3: u64,
        gs_base: u64,
        kernel_gs_base: u64,
    ) -> (Option<u32>, Option<String>) {
        if let Some(t) = self.os.current() {
            return (Some(t.pid), Some(t.comm.clone()));
        }
        match self
            .linux_task
            .and_then(|l| l.current(&self.mem, cr3, gs_base, kernel_gs_base))
        {
            Some((pid, comm)) => (Some(pid), Some(comm)),
            None => (None, None),
        }
    }

    fn act(&mut self, action: IoAction) {
        match action {
            IoAction::None => {}
            IoAction::Exit(status) => {
                self.exit_request.get_or_insert(status);
                self.kick();
            }
            IoAction::Irq { line, level } => self.set_irq(line, level),
            IoAction::Reset => {
                self.reset_request = true;
                self.kick();
            }
        }
    }
}
