//! The machine: one CPU or several, guest RAM and the devices of a minimal QEMU `pc`
//! (COM1 16550A, isa-debug-exit, a local APIC per CPU and the 8259 pair; COM2 and
//! isa-debugcon on request), plus the run loop and the stop reports.
//!
//! # Events
//! The run loop executes one instruction per iteration and makes one comparison:
//! `cpu.icount >= bus.next_event`. Only then does it look at everything else
//! ([`Machine::service`]): the guest's exit request, an unimplemented instruction, the
//! instruction limit, scheduled injections, LAPIC timer expiries and interrupt
//! acceptance. Afterwards `next_event` becomes the earliest icount at which anything can
//! happen: the limit, the next injection, the next timer expiry, or the next instruction
//! while an interrupt is pending but blocked (IF=0, the STI/MOV SS shadow, NMI blocking),
//! since any instruction may unblock it. Devices lower it to 0 ([`Bus::kick`]) when they
//! change state (an APIC or PIC access, MOV to CR8, an IRQ line, an exit request).
//!
//! # HLT and virtual time
//! Time is the instruction count (1 instruction = 1 ns, see `devices::lapic`). A halted
//! CPU executes nothing, so virtual time skips straight to the next event that could wake
//! it (as QEMU's `-icount` does while the CPU sleeps): the LAPIC timer if IF=1 and its
//! vector's priority class is above the PPR, or a scheduled injection. With no such
//! event the CPU would sleep forever, and the machine stops with
//! [`CpuStop::HaltForever`] (exit status 142).
//!
//! # Several CPUs
//! With `cpus > 1` the CPUs run on one host thread, one at a time, in turns of
//! [`QUANTUM`] instructions in CPU-number order; a turn ends early when the CPU halts (a
//! halted CPU yields at once), and never inside one instruction or an STI/MOV SS shadow,
//! so a LOCKed instruction is atomic and every run interleaves the CPUs identically.
//! `self.cpu` is the CPU executing; the others wait in `parked`, and `bus.lapic` is the
//! executing CPU's local APIC (the bus parks the others the same way), so the CPU core,
//! the APIC page and the IA32_APIC_BASE/CR8 paths need no CPU number: whatever executes
//! reaches its own APIC. The decode cache is shared and handed to the executing CPU (its
//! entries depend on physical addresses only, and the code-frame bitmap then invalidates
//! them for every CPU).
//!
//! **Virtual time is one clock for the whole machine**: every CPU's icount is that clock
//! while it executes (a CPU taking its turn continues at the time the previous one left
//! off), so it advances by one per instruction of *any* CPU, and N busy CPUs each run
//! at 1/N of the 1 GHz. Devices' `now`, every local APIC timer and every TSC read it, so
//! TSCs are synchronised and time never goes back from one CPU to the next (Linux's TSC
//! warp check passes). When every CPU is halted, time skips to the earliest event that
//! could wake any of them. With one CPU nothing of this runs: the loop is the one above.
//!
//! Bring-up is the hardware's (SDM 9.4): CPU 0 starts at the kernel's entry; the others
//! start halted as SeaBIOS leaves them, an INIT IPI puts one in the wait-for-SIPI state
//! and a start-up IPI with vector VV starts it in real mode at VV00:0000. Events for a
//! CPU that is not executing (an IPI, its APIC timer) wait in its APIC until its turn.

use crate::boot::pvh::{self, BootError, BootInfo};
use crate::bus::Bus;
use crate::cpu::exception::{vector, vector_name};
use crate::cpu::regs::{cr4, rflags};
use crate::cpu::{Cpu, CpuStop, Exception, Step};
use crate::devices::debug_exit::{self, DebugExit, DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE};
use crate::devices::debugcon::{Debugcon, DEBUGCON_PORT};
use crate::devices::disk::DiskImage;
use crate::devices::uart16550::{
    ConsoleSink, Uart16550, COM1_IRQ, COM1_PORT, COM2_IRQ, COM2_PORT, UART_PORT_COUNT,
};
use crate::devices::virtio_blk::VirtioBlk;
use crate::devices::PortBus;
use crate::memory::{GuestMemory, MemoryError};
use crate::tlb::{TlbMode, DEFAULT_TLB_ENTRIES};
use std::sync::{Arc, Mutex};

/// Process exit statuses with a fixed meaning. Guest statuses from isa-debug-exit are
/// 0..=127 (QEMU exits with `(v << 1) | 1`, vmscope reports `v`), so the machine's own
/// outcomes use 140 and up and never collide with them.
pub mod exit_status {
    /// Bad command line, unreadable or invalid kernel/initrd, RAM too small, no QEMU.
    pub const BAD_INPUT: i32 = 2;
    /// The CPU shut down after a triple fault, or the guest reset the machine (QEMU with
    /// -no-reboot exits 0 for both).
    pub const TRIPLE_FAULT: i32 = 140;
    /// The guest ran an instruction vmscope does not implement.
    pub const UNIMPLEMENTED: i32 = 141;
    /// The CPU halted with nothing that could ever wake it.
    pub const HALTED: i32 = 142;
    /// The instruction limit (--max-insns) was reached.
    pub const INSN_LIMIT: i32 = 143;
    /// `vmscope run`: the guest kernel reported a panic on debugcon.
    pub const KERNEL_PANIC: i32 = 144;
    /// gdb's `kill` ended the machine (`--gdb`).
    pub const KILLED: i32 = 145;
}

/// With host input attached, how often (in instructions) a running CPU looks for it.
const INPUT_POLL_INSNS: u64 = 1 << 20;

/// How a machine is built.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub mem_bytes: u64,
    pub tlb_mode: TlbMode,
    pub tlb_entries: usize,
    /// Stop after this many instructions (None: run until the guest stops).
    pub max_insns: Option<u64>,
    /// Raise #UD at unimplemented instructions instead of stopping (exit 141).
    pub ud_on_unimplemented: bool,
    /// QEMU's `-machine pc,acpi=`: with ACPI (the default, what the built-in kernel's
    /// tests compare against) SeaBIOS reserves the top 128 KiB of low RAM for its tables
    /// and the PIIX4 ACPI function is on the bus; without, the F segment holds the MP
    /// table, `$PIR` and SMBIOS (`boot::firmware_tables`), which is what a kernel that
    /// does not come with vmscope (Linux) is given, as `--qemu` then passes `acpi=off`.
    pub acpi: bool,
    /// Bytes for COM1's receiver from outside (host stdin, see `hostinput`). None: the
    /// line is idle and the run deterministic.
    pub com1_input: Option<crate::devices::uart16550::SerialInput>,
    /// The number of CPUs (1..=[`MAX_CPUS`]); APIC IDs 0..cpus-1, CPU 0 the bootstrap
    /// processor (see "Several CPUs" in the module documentation).
    pub cpus: usize,
    /// QEMU's `-device pc-testdev` (kvm-unit-tests' test device, `devices::pc_testdev`).
    pub pc_testdev: bool,
    /// The CPU vendor (`--cpu-vendor`).
    pub cpu_vendor: crate::cpu::cpuid::Vendor,
}

/// The most CPUs a machine may have (`--cpus`): xAPIC IDs are 8 bits, and 0xff is the
/// broadcast; 64 keeps the F-segment tables in their place.
pub const MAX_CPUS: usize = 64;

/// With several CPUs, the instructions a CPU executes before the next one takes its
/// turn (a HLT ends a turn at once). The turn ends at an instruction boundary, never
/// inside an STI or MOV SS shadow.
pub const QUANTUM: u64 = 1000;

/// What a CPU does besides executing (SDM Vol. 3A, 9.4, "Multiple-processor (MP)
/// initialization").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// An application processor as the firmware leaves it (SeaBIOS parks them in a HLT
    /// loop): only an INIT gets it going again.
    WaitInit,
    /// After an INIT: waiting for a start-up IPI.
    WaitSipi,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            mem_bytes: 128 << 20,
            tlb_mode: TlbMode::On,
            tlb_entries: DEFAULT_TLB_ENTRIES,
            max_insns: None,
            ud_on_unimplemented: false,
            acpi: true,
            com1_input: None,
            cpus: 1,
            pc_testdev: false,
            cpu_vendor: crate::cpu::cpuid::Vendor::Intel,
        }
    }
}

/// Why the machine stopped.
/// An event raised from outside the guest at a chosen instruction count (for tests and
/// the command line): it is raised before the instruction with that icount executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// An NMI at the CPU's NMI input. It is taken at once unless NMIs are blocked (inside
    /// an NMI handler, until IRET); one NMI can be pending.
    Nmi,
    /// A machine-check exception (#MC, vector 18), taken at the next instruction boundary
    /// whatever RFLAGS.IF says. With CR4.MCE clear the CPU shuts down (exit status 140).
    MachineCheck,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The guest wrote to isa-debug-exit; `raw` is QEMU's exit status `(v << 1) | 1`.
    Exit {
        raw: u32,
    },
    Stop(CpuStop),
    /// The guest executed an instruction vmscope does not implement.
    Unimplemented {
        rip: u64,
        text: String,
    },
    InsnLimit,
    /// The debugger ended the machine (gdb's `kill`).
    Killed,
    /// The guest reset the machine (the i8042's reset line). QEMU with `-no-reboot` exits
    /// 0 there, as for a triple fault, so the exit status is the same (140).
    Reset,
}

impl Outcome {
    /// The process exit status for this outcome (see [`exit_status`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exit { raw } => {
                debug_exit::guest_status(*raw).map_or(1, |s| (s & 0x7f) as i32)
            }
            Outcome::Stop(CpuStop::TripleFault { .. }) => exit_status::TRIPLE_FAULT,
            Outcome::Stop(CpuStop::HaltForever) => exit_status::HALTED,
            Outcome::Stop(CpuStop::Shutdown { .. }) => exit_status::TRIPLE_FAULT,
            Outcome::Unimplemented { .. } => exit_status::UNIMPLEMENTED,
            Outcome::InsnLimit => exit_status::INSN_LIMIT,
            Outcome::Killed => exit_status::KILLED,
            Outcome::Reset => exit_status::TRIPLE_FAULT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    BzImage(#[from] crate::boot::bzimage::BzImageError),
    #[error(transparent)]
    Multiboot(#[from] crate::boot::multiboot::MultibootError),
    #[error("too many disks: PCI bus 0 has no free slot")]
    TooManyDisks,
}

pub struct Machine {
    pub cpu: Cpu,
    pub bus: Bus,
    pub config: MachineConfig,
    pub boot: Option<BootInfo>,
    /// The ELF kernel unpacked from a bzImage on the host (its symbols and BTF).
    pub kernel_elf: Option<Vec<u8>>,
    /// The initrd's file name: a multiboot kernel sees it as its module's command line
    /// (QEMU's loader gives the file name too).
    pub initrd_name: String,
    /// The items of the fw_cfg device (ports 0x510/0x511), filled further by the loader.
    pub fw_cfg: crate::devices::fw_cfg::FwCfgHandle,
    /// Scheduled injections, latest first (the next one is at the end).
    injections: Vec<(u64, Injection)>,
    /// An injected machine check waiting for the next instruction boundary.
    mc_pending: bool,
    /// With several CPUs: every CPU by number, except that the slot of the executing
    /// one ([`Self::current`]) holds a placeholder (the executing CPU is `cpu`). Empty
    /// with one CPU.
    parked: Vec<Cpu>,
    /// Each CPU's run state, by number.
    run_state: Vec<RunState>,
    /// The number of the executing CPU.
    current: usize,
    /// The icount at which the executing CPU's turn ends (several CPUs).
    quantum_end: u64,
}

/// Leave PCI configuration space and the ELCR as SeaBIOS does on QEMU, and without ACPI
/// the F-segment tables that describe them.
fn firmware_pci_setup(bus: &mut Bus) {
    let elcr = crate::devices::pci::firmware::seabios_setup(&mut bus.pci);
    bus.pic.write(crate::devices::pic::ELCR_MASTER, elcr as u8);
    bus.pic
        .write(crate::devices::pic::ELCR_SLAVE, (elcr >> 8) as u8);
    bus.sync_pci();
    if !bus.acpi {
        let bytes = bus.mem.size();
        let cpus = bus.cpu_count();
        crate::boot::firmware_tables::install(&mut bus.mem, &mut bus.pci, bytes, cpus);
    }
}

/// A Linux kernel's BTF says where its running task is, for the fault trace.
fn linux_task_layout(elf: &[u8], name: &str) -> Option<crate::linux_task::LinuxTaskLayout> {
    match crate::linux_task::LinuxTaskLayout::from_vmlinux(elf) {
        Ok(l) => {
            log::info!("{name}: Linux task layout from BTF: {l:x?}");
            Some(l)
        }
        Err(e) => {
            log::debug!("{name}: no Linux task layout: {e}");
            None
        }
    }
}

impl Machine {
    pub fn new(config: MachineConfig, console: ConsoleSink) -> Result<Self, MachineError> {
        let mem = GuestMemory::new(config.mem_bytes)?;
        let mut io = PortBus::new();
        let mut com1 = Uart16550::with_irq(console, COM1_IRQ);
        if let Some(input) = &config.com1_input {
            com1.set_input(input.clone());
        }
        io.register(COM1_PORT, UART_PORT_COUNT, Box::new(com1));
        io.register(DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE, Box::new(DebugExit));
        io.register(
            crate::devices::i8042::I8042_DATA_PORT,
            crate::devices::i8042::I8042_PORTS,
            Box::new(crate::devices::i8042::I8042::new()),
        );
        io.register(
            crate::devices::rtc::RTC_PORT,
            crate::devices::rtc::RTC_PORTS,
            Box::new(crate::devices::rtc::Rtc::with_cpus(config.cpus)),
        );
        let fw_cfg = crate::devices::fw_cfg::pc_items(config.mem_bytes, config.cpus as u16);
        io.register(
            crate::devices::fw_cfg::FW_CFG_PORT,
            crate::devices::fw_cfg::FW_CFG_PORTS,
            Box::new(crate::devices::fw_cfg::FwCfg::new(fw_cfg.clone())),
        );
        if config.acpi {
            // The PIIX4 function's PM block, as SeaBIOS enables it at 0x600.
            io.register(
                crate::boot::acpi_tables::PM_BASE,
                crate::devices::acpi_pm::PM_IO_PORTS,
                Box::new(crate::devices::acpi_pm::AcpiPm::default()),
            );
        }
        if config.pc_testdev {
            use crate::devices::pc_testdev as t;
            io.register(
                t::TESTDEV_PORT,
                t::TESTDEV_PORTS,
                Box::new(t::PcTestdev::default()),
            );
            io.register(
                t::IRQ_PORT,
                t::IRQ_PORTS,
                Box::new(t::PcTestdevIrq::default()),
            );
        }
        let mut bus = Bus::new(mem, io);
        if config.pc_testdev {
            use crate::devices::pc_testdev as t;
            bus.map_mmio(
                t::IOMEM_BASE,
                t::IOMEM_LEN,
                Box::new(t::PcTestdevMem::default()),
            );
        }
        bus.acpi = config.acpi;
        if config.acpi {
            crate::boot::acpi_tables::install(&mut bus.mem, config.cpus as u32);
        }
        bus.has_input = config.com1_input.is_some();
        if config.cpus > 1 {
            // Every CPU's local APIC (slot 0 stands for the BSP's, which is `bus.lapic`):
            // before the firmware tables, which list the CPUs.
            bus.parked_lapics = (0..config.cpus.min(MAX_CPUS))
                .map(|i| crate::devices::lapic::Lapic::new(i as u8))
                .collect();
        }
        if !config.acpi {
            // QEMU creates the PIIX4 power-management function (00:01.3) only with ACPI.
            bus.pci.remove_function(1, 3);
        }
        firmware_pci_setup(&mut bus);
        let mut cpu = Cpu::new(0, config.tlb_entries, config.tlb_mode);
        cpu.stop_on_unimplemented = !config.ud_on_unimplemented;
        cpu.vendor = config.cpu_vendor;
        // As QEMU (and the firmware on hardware) leaves it: fast strings enabled. Linux
        // reports "Disabled fast string operations" otherwise.
        cpu.msr.misc_enable = crate::cpu::regs::msr::MISC_ENABLE_FAST_STRINGS;
        let n = config.cpus.clamp(1, MAX_CPUS);
        let mut parked = Vec::new();
        let mut run_state = vec![RunState::Running];
        if n > 1 {
            // Slot 0 is the BSP's, which executes first: a placeholder.
            for i in 0..n {
                let mut ap = Cpu::new(i as u32, config.tlb_entries, config.tlb_mode);
                ap.drop_decode_cache();
                ap.stop_on_unimplemented = cpu.stop_on_unimplemented;
                ap.vendor = cpu.vendor;
                ap.msr.misc_enable = cpu.msr.misc_enable;
                // SeaBIOS sets up the MTRRs of the BSP only (QEMU's APs keep the power-up
                // values, and Linux says so: "your CPUs had inconsistent ... MTRR").
                ap.msr.ext = crate::cpu::msr_ext::ExtMsrs::power_on();
                ap.halted = true;
                parked.push(ap);
            }
            run_state = vec![RunState::WaitInit; n];
            run_state[0] = RunState::Running;
        }
        Ok(Machine {
            cpu,
            bus,
            config,
            boot: None,
            kernel_elf: None,
            initrd_name: "initrd".into(),
            fw_cfg,
            injections: Vec::new(),
            mc_pending: false,
            parked,
            run_state,
            current: 0,
            quantum_end: QUANTUM,
        })
    }

    /// Plug a virtio-blk disk into the next free PCI slot (00:02.0, 00:03.0...: the order
    /// of QEMU's `-drive if=virtio`) and redo the firmware's PCI set-up, as SeaBIOS would
    /// have seen the device at boot. Before [`Self::load_pvh`]: the firmware's memory map
    /// depends on the disks.
    pub fn add_disk(&mut self, disk: DiskImage) -> Result<(), MachineError> {
        let dev = Box::new(VirtioBlk::new(disk));
        if self.bus.pci.add_device(dev).is_none() {
            return Err(MachineError::TooManyDisks);
        }
        firmware_pci_setup(&mut self.bus);
        Ok(())
    }

    /// Add COM2 (0x2f8), as QEMU's second `-serial`. Not there by default, so that `boot`
    /// matches QEMU with one `-serial`.
    pub fn add_com2(&mut self, sink: ConsoleSink) {
        self.bus.io.register(
            COM2_PORT,
            UART_PORT_COUNT,
            Box::new(Uart16550::with_irq(sink, COM2_IRQ)),
        );
    }

    /// Add an isa-debugcon at 0x402; the returned buffer collects what the guest writes.
    pub fn add_debugcon(&mut self) -> Arc<Mutex<Vec<u8>>> {
        let buf = Arc::new(Mutex::new(Vec::new()));
        self.bus
            .io
            .register(DEBUGCON_PORT, 1, Box::new(Debugcon::new(buf.clone())));
        buf
    }

    /// Raise `what` before the instruction with instruction count `at` executes (at once
    /// if `at` has passed). Several injections may be scheduled, in any order.
    pub fn inject(&mut self, at: u64, what: Injection) {
        let i = self.injections.partition_point(|&(t, _)| t > at);
        self.injections.insert(i, (at, what));
        self.bus.kick();
    }

    /// Load a PVH kernel and point the CPU at its entry.
    pub fn load_pvh(
        &mut self,
        kernel: &[u8],
        name: &str,
        cmdline: &str,
        initrd: Option<&[u8]>,
    ) -> Result<&BootInfo, MachineError> {
        let info = pvh::load(&mut self.bus, &mut self.cpu, kernel, name, cmdline, initrd)?;
        Ok(self.boot.insert(info))
    }

    /// Load a kernel as `qemu-system-x86_64 -kernel` does: a bzImage (a Linux setup header)
    /// through the Linux/x86 boot protocol, anything else as a PVH ELF.
    pub fn load_kernel(
        &mut self,
        kernel: &[u8],
        name: &str,
        cmdline: &str,
        initrd: Option<&[u8]>,
    ) -> Result<&BootInfo, MachineError> {
        if let crate::boot::KernelKind::Multiboot(h) = crate::boot::kernel_kind(kernel) {
            let (info, fw) = crate::boot::multiboot::load(
                &mut self.bus,
                &mut self.cpu,
                kernel,
                h,
                name,
                cmdline,
                initrd.map(|d| (self.initrd_name.as_str(), d)),
            )?;
            self.set_multiboot_fw_cfg(fw);
            return Ok(self.boot.insert(info));
        }
        if crate::boot::bzimage::is_bzimage(kernel) {
            // The kernel inside, for its BTF (and the trace's symbols, `kernel_elf`).
            self.kernel_elf = crate::boot::bzimage::inner_elf(kernel);
            if let Some(elf) = &self.kernel_elf {
                self.bus.linux_task = linux_task_layout(elf, name);
            }
            let info = crate::boot::bzimage::load(
                &mut self.bus,
                &mut self.cpu,
                kernel,
                name,
                cmdline,
                initrd,
            )?;
            return Ok(self.boot.insert(info));
        }
        if kernel.starts_with(b"\x7fELF") {
            self.bus.linux_task = linux_task_layout(kernel, name);
        }
        self.load_pvh(kernel, name, cmdline, initrd)
    }

    /// The fw_cfg items QEMU's multiboot loader leaves for its option ROM.
    fn set_multiboot_fw_cfg(&mut self, fw: crate::boot::multiboot::FwCfgItems) {
        use crate::devices::fw_cfg::key;
        let mut t = self.fw_cfg.lock().unwrap_or_else(|p| p.into_inner());
        t.set_u32(key::KERNEL_ENTRY, fw.kernel_entry);
        t.set_u32(key::KERNEL_ADDR, fw.kernel_addr);
        t.set_u32(key::KERNEL_SIZE, fw.kernel_data.len() as u32);
        t.set(key::KERNEL_DATA, fw.kernel_data);
        t.set_u32(key::INITRD_ADDR, fw.mbi_addr);
        t.set_u32(key::INITRD_SIZE, fw.mbi.len() as u32);
        t.set(key::INITRD_DATA, fw.mbi);
    }

    /// Run until the guest exits or the CPU cannot go on.
    pub fn run(&mut self) -> Outcome {
        loop {
            if let Some(outcome) = self.service_due() {
                return outcome;
            }
            // A block of instructions (`Cpu::run_block`): the same instructions as
            // repeated `execute` calls, with `service_due`'s check made before each.
            let step = self.cpu.run_block(&mut self.bus);
            if let Some(outcome) = self.finish(step) {
                return outcome;
            }
        }
    }

    /// One iteration of the run loop: service due events (interrupt delivery included),
    /// then execute one instruction or, when halted, skip virtual time to the next wake-up.
    /// `Some` when the machine stopped. Debuggers and tracers drive the machine with this
    /// so that [`Self::run`], the fast path, carries none of their checks.
    #[inline(always)]
    pub fn step(&mut self) -> Option<Outcome> {
        if let Some(outcome) = self.service_due() {
            return Some(outcome);
        }
        self.execute()
    }

    /// The first half of [`Self::step`]: service the events due at this instruction
    /// boundary (an interrupt delivery moves RIP to its handler). A debugger calls the two
    /// halves itself so that it can stop at a breakpoint on a handler's first instruction
    /// before that instruction runs; calling each half once per step keeps the guest's
    /// behaviour identical to [`Self::run`].
    #[inline(always)]
    pub fn service_due(&mut self) -> Option<Outcome> {
        // The only per-instruction check: everything else waits for `next_event`.
        if self.cpu.icount >= self.bus.next_event {
            return self.service();
        }
        None
    }

    /// The second half of [`Self::step`]: execute one instruction or, when halted, skip
    /// virtual time to the next wake-up.
    #[inline(always)]
    pub fn execute(&mut self) -> Option<Outcome> {
        let step = self.cpu.step(&mut self.bus);
        self.finish(step)
    }

    /// What follows a step or a block.
    #[inline(always)]
    fn finish(&mut self, step: Step) -> Option<Outcome> {
        match step {
            Step::Ok => None,
            Step::Halted => self.sleep(),
            Step::Stop(s) => Some(Outcome::Stop(s)),
        }
    }

    fn limit(&self) -> u64 {
        self.config.max_insns.unwrap_or(u64::MAX)
    }

    /// Everything that is not an instruction, at an instruction boundary: stop requests,
    /// the limit, injections, timer expiries and interrupt acceptance. Sets the next
    /// `bus.next_event`.
    fn service(&mut self) -> Option<Outcome> {
        if let Some(raw) = self.bus.exit_request {
            return Some(Outcome::Exit { raw });
        }
        if self.bus.reset_request {
            return Some(Outcome::Reset);
        }
        if let Some(text) = self.cpu.last_unimplemented.take() {
            return Some(Outcome::Unimplemented {
                rip: self.cpu.insn_rip,
                text,
            });
        }
        let now = self.cpu.icount;
        if now >= self.limit() {
            return Some(Outcome::InsnLimit);
        }
        while let Some(&(at, what)) = self.injections.last() {
            if at > now {
                break;
            }
            self.injections.pop();
            match what {
                // To the BSP, executing or not.
                Injection::Nmi => self.bus.all_lapics()[0].raise_nmi(),
                Injection::MachineCheck => self.mc_pending = true,
            }
        }
        let smp = !self.parked.is_empty();
        if smp {
            // The executing CPU's turn ends at the quantum (never inside an STI or MOV SS
            // shadow: the shadow covers this CPU's next instruction).
            // The turn passes to the next CPU in number order that has anything to do
            // (halted ones with nothing to wake them are skipped: they would yield at
            // once); if none has, the executing CPU goes on.
            if now >= self.quantum_end && now > self.cpu.shadow_until {
                let (n, cur) = (self.parked.len(), self.current);
                let next = (1..n)
                    .map(|k| (cur + k) % n)
                    .find(|&j| self.can_run(j, now))
                    .unwrap_or(cur);
                self.switch_to(next);
            }
            self.init_sipi();
            for l in self.bus.parked_lapics.iter_mut() {
                l.advance(now);
            }
        }
        self.bus.lapic.advance(now);
        self.bus.advance_timers(now);
        if self.bus.has_input {
            self.bus.io.poll();
            self.bus.take_port_irqs();
        }
        let pic_out = self.bus.pic.output();
        if smp {
            // The 8259's INT output is wired to every CPU's LINT0.
            for l in self.bus.all_lapics() {
                l.set_lint0(pic_out);
            }
        } else {
            self.bus.lapic.set_lint0(pic_out);
        }

        let delivered = match self.accept_event() {
            Ok(d) => d,
            Err(stop) => return Some(Outcome::Stop(stop)),
        };
        let mut next = self.limit();
        if let Some(&(at, _)) = self.injections.last() {
            next = next.min(at);
        }
        if let Some(t) = self.bus.lapic.next_timer_event() {
            next = next.min(t);
        }
        if let Some(t) = self.bus.next_device_event() {
            next = next.min(t);
        }
        if self.bus.has_input {
            next = next.min(now.saturating_add(INPUT_POLL_INSNS));
        }
        if smp {
            // The end of this turn (or the next boundary, if a shadow held it up).
            next = next.min(self.quantum_end.max(now + 1));
        }
        if delivered {
            // Look again before the handler's first instruction (another event may be
            // acceptable there, e.g. an NMI after an interrupt through a trap gate).
            next = now;
        } else if self.event_pending() {
            // Pending but blocked: any instruction may unblock it (STI, POPF, IRET...).
            next = next.min(now + 1);
        }
        self.bus.next_event = next;
        None
    }

    // ---- several CPUs ----------------------------------------------------------------------

    /// The number of CPUs.
    pub fn cpu_count(&self) -> usize {
        self.parked.len().max(1)
    }

    /// The number of the CPU executing (`self.cpu`).
    pub fn current_cpu(&self) -> usize {
        self.current
    }

    /// CPU `i` (the executing one is `self.cpu`).
    pub fn cpu_at(&self, i: usize) -> &Cpu {
        if i == self.current {
            &self.cpu
        } else {
            &self.parked[i]
        }
    }

    /// The TLB counters of all CPUs together.
    pub fn tlb_stats(&self) -> crate::tlb::TlbStats {
        let mut t = self.cpu.tlb.stats;
        for (j, c) in self.parked.iter().enumerate() {
            if j == self.current {
                continue;
            }
            let s = c.tlb.stats;
            t.hits += s.hits;
            t.misses += s.misses;
            t.flush_invlpg += s.flush_invlpg;
            t.flush_cr3 += s.flush_cr3;
            t.flush_cr4 += s.flush_cr4;
            t.flush_invpcid += s.flush_invpcid;
            t.flush_pf += s.flush_pf;
            t.flush_other += s.flush_other;
            t.stale_uses += s.stale_uses;
            t.spurious_faults += s.spurious_faults;
        }
        t
    }

    /// Each CPU's run state, by number.
    pub fn run_states(&self) -> &[RunState] {
        &self.run_state
    }

    /// Make CPU `next` the executing one: it continues at the machine's virtual time
    /// (one clock for all CPUs, see the module documentation), with the shared decode
    /// cache and its own local APIC in the bus.
    fn switch_to(&mut self, next: usize) {
        let cur = self.current;
        let now = self.cpu.icount;
        self.quantum_end = now.saturating_add(QUANTUM);
        self.bus.kick();
        if next == cur {
            return;
        }
        self.cpu.swap_decode_cache(&mut self.parked[next]);
        std::mem::swap(&mut self.cpu, &mut self.parked[cur]);
        std::mem::swap(&mut self.cpu, &mut self.parked[next]);
        std::mem::swap(&mut self.bus.lapic, &mut self.bus.parked_lapics[cur]);
        std::mem::swap(&mut self.bus.lapic, &mut self.bus.parked_lapics[next]);
        self.current = next;
        self.bus.current_cpu = next;
        self.cpu.icount = now;
    }

    /// INIT and start-up IPIs that reached the executing CPU (SDM 9.4 and Table 9-1):
    /// INIT puts the registers in their INIT state (real mode, CS:IP F000:FFF0), resets
    /// the local APIC (keeping its ID and base) and makes the CPU wait for a start-up
    /// IPI, which starts it in real mode at VV00:0000 (vector VV). A start-up IPI that
    /// finds the CPU anywhere else is ignored, as on hardware.
    fn init_sipi(&mut self) {
        let i = self.current;
        if self.bus.lapic.take_init() {
            // A start-up IPI that arrived after the INIT (its latch cleared older ones)
            // survives the APIC's reset.
            let sipi = self.bus.lapic.take_sipi();
            let mut fresh = Cpu::new(i as u32, self.config.tlb_entries, self.config.tlb_mode);
            fresh.drop_decode_cache();
            fresh.swap_decode_cache(&mut self.cpu);
            fresh.icount = self.cpu.icount;
            fresh.stop_on_unimplemented = self.cpu.stop_on_unimplemented;
            fresh.vendor = self.cpu.vendor;
            // INIT leaves the MSRs (MTRRs, MCA, the APIC base...) as they were.
            fresh.msr = self.cpu.msr.clone();
            fresh.halted = true;
            self.cpu = fresh;
            self.bus.lapic.reset();
            if let Some(v) = sipi {
                self.bus.lapic.receive_sipi(v);
            }
            self.run_state[i] = RunState::WaitSipi;
            self.bus.kick();
        }
        if let Some(v) = self.bus.lapic.take_sipi() {
            if self.run_state[i] == RunState::WaitSipi {
                let cs = &mut self.cpu.seg[crate::cpu::regs::SegReg::Cs as usize];
                cs.selector = u16::from(v) << 8;
                cs.base = u64::from(v) << 12;
                self.cpu.rip = 0;
                self.cpu.halted = false;
                self.run_state[i] = RunState::Running;
                self.bus.kick();
            }
        }
    }

    /// Whether parked CPU `j` has anything to do at `now`: it is not halted, or an event
    /// that would wake it waits (its APIC's timer is brought up to `now` first).
    fn can_run(&mut self, j: usize, now: u64) -> bool {
        let pic_out = self.bus.pic.output();
        let l = &mut self.bus.parked_lapics[j];
        l.advance(now);
        if l.init_or_sipi_pending() {
            return true;
        }
        if self.run_state[j] != RunState::Running {
            return false;
        }
        let c = &self.parked[j];
        let intr = c.flag(rflags::IF)
            && (l.pending_interrupt().is_some() || (pic_out && l.accepts_extint()));
        !c.halted || intr || (l.nmi_pending() && !c.nmi_blocked) || (j == 0 && self.mc_pending)
    }

    /// When every CPU is halted: the earliest future event that could wake one.
    fn earliest_wake(&self, now: u64) -> Option<u64> {
        let injection = self.injections.last().map(|&(at, _)| at);
        let mut wake: Vec<Option<u64>> = vec![injection];
        let mut any_if = false;
        for j in 0..self.cpu_count() {
            let (c, l) = if j == self.current {
                (&self.cpu, &self.bus.lapic)
            } else {
                (&self.parked[j], &self.bus.parked_lapics[j])
            };
            if self.run_state[j] != RunState::Running || !c.flag(rflags::IF) {
                continue;
            }
            any_if = true;
            if l.timer_can_wake() {
                wake.push(l.next_timer_event());
            }
        }
        if any_if {
            wake.push(self.bus.next_device_event());
        }
        wake.into_iter().flatten().filter(|&t| t > now).min()
    }

    /// Whether an event waits that the CPU is not accepting yet.
    fn event_pending(&self) -> bool {
        if self.run_state[self.current] != RunState::Running {
            return false;
        }
        (self.mc_pending && self.current == 0)
            || self.bus.lapic.nmi_pending()
            || self.intr_pending()
    }

    /// A maskable interrupt request: the local APIC's, or the 8259's through LINT0.
    fn intr_pending(&self) -> bool {
        self.bus.lapic.pending_interrupt().is_some()
            || (self.bus.pic.output() && self.bus.lapic.accepts_extint())
    }

    /// Accept at most one event, in the priority order of SDM Table 6-2: machine check,
    /// then NMI, then maskable interrupts. `Ok(true)` if one was delivered.
    fn accept_event(&mut self) -> Result<bool, CpuStop> {
        if self.run_state[self.current] != RunState::Running {
            // Waiting for INIT or SIPI: no interrupt, NMI or machine check is taken.
            return Ok(false);
        }
        let (cpu, bus) = (&mut self.cpu, &mut self.bus);
        if self.mc_pending && self.current == 0 {
            self.mc_pending = false;
            let mc = Exception::new(vector::MC);
            if cpu.cr4 & cr4::MCE == 0 {
                return Err(CpuStop::Shutdown { cause: mc });
            }
            cpu.halted = false;
            cpu.deliver_exception(bus, mc)?;
            return Ok(true);
        }
        if bus.lapic.nmi_pending() && !cpu.nmi_blocked {
            bus.lapic.take_nmi();
            cpu.deliver_external(bus, vector::NMI)?;
            return Ok(true);
        }
        if !cpu.flag(rflags::IF) || cpu.icount <= cpu.shadow_until {
            return Ok(false);
        }
        // The local APIC's fixed interrupts first, then the 8259 (QEMU's order).
        let vec = match bus.lapic.acknowledge() {
            Some(v) => v,
            None if bus.pic.output() && bus.lapic.accepts_extint() => bus.pic.acknowledge(),
            None => return Ok(false),
        };
        cpu.deliver_external(bus, vec)?;
        Ok(true)
    }

    /// The CPU is halted and [`Self::service`] found nothing to deliver at this instant
    /// (it runs whenever anything changed). Skip virtual time to the next event that could
    /// wake the CPU, or stop if there is none: nothing else changes while it sleeps.
    fn sleep(&mut self) -> Option<Outcome> {
        if !self.parked.is_empty() {
            return self.sleep_smp();
        }
        let now = self.cpu.icount;
        let injection = self.injections.last().map(|&(at, _)| at);
        let timer = if self.cpu.flag(rflags::IF) && self.bus.lapic.timer_can_wake() {
            self.bus.lapic.next_timer_event()
        } else {
            None
        };
        // A device timer (the PIT) may raise an IRQ: wake at its next event and let
        // `service` decide whether anything is delivered (if not, the CPU sleeps again).
        let device = if self.cpu.flag(rflags::IF) {
            self.bus.next_device_event()
        } else {
            None
        };
        // All lie in the future: `service` has processed everything up to `now`.
        let wake = [injection, timer, device]
            .into_iter()
            .flatten()
            .filter(|&t| t > now)
            .min();
        let Some(at) = wake else {
            // Only the host can wake the CPU now: wait (in real time) for input, then let
            // `service` take the UART's interrupt, which wakes it.
            if self.bus.has_input && self.cpu.flag(rflags::IF) && self.bus.wait_for_input() {
                self.bus.next_event = now;
                return None;
            }
            return Some(Outcome::Stop(CpuStop::HaltForever));
        };
        if at >= self.limit() {
            self.cpu.icount = self.limit();
            return Some(Outcome::InsnLimit);
        }
        self.cpu.icount = at;
        self.bus.next_event = at;
        None
    }

    /// [`Self::sleep`] with several CPUs: a halted CPU yields at once to the next CPU
    /// (in number order) that has anything to do; when every CPU is halted, virtual time
    /// skips to the earliest event that could wake any of them.
    fn sleep_smp(&mut self) -> Option<Outcome> {
        let now = self.cpu.icount;
        let n = self.parked.len();
        for k in 1..n {
            let j = (self.current + k) % n;
            if self.can_run(j, now) {
                self.switch_to(j);
                return None;
            }
        }
        let Some(at) = self.earliest_wake(now) else {
            if self.bus.has_input && self.bus.wait_for_input() {
                self.bus.next_event = now;
                return None;
            }
            return Some(Outcome::Stop(CpuStop::HaltForever));
        };
        if at >= self.limit() {
            self.cpu.icount = self.limit();
            return Some(Outcome::InsnLimit);
        }
        self.cpu.icount = at;
        self.quantum_end = at.saturating_add(QUANTUM);
        self.bus.next_event = at;
        None
    }

    /// A report for a stop that is not a clean guest exit: what happened, where, the
    /// instruction bytes and the register state.
    pub fn report(&mut self, outcome: &Outcome) -> String {
        let rip = self.cpu.insn_rip;
        let what = match outcome {
            Outcome::Exit { raw } => format!("guest exit (raw status {raw})"),
            Outcome::Stop(CpuStop::TripleFault {
                first,
                second,
                third,
            }) => format!(
                "triple fault: {} then {} while delivering it, then {} delivering #DF",
                describe(first),
                describe(second),
                describe(third)
            ),
            Outcome::Stop(CpuStop::HaltForever) => format!(
                "CPU halted with {} and no interrupt source that could wake it",
                if self.cpu.flag(rflags::IF) {
                    "interrupts enabled"
                } else {
                    "interrupts disabled"
                }
            ),
            Outcome::Stop(CpuStop::Shutdown { cause }) => {
                format!("shutdown: {} with CR4.MCE clear", describe(cause))
            }
            Outcome::Unimplemented { text, .. } => format!("unimplemented instruction: {text}"),
            Outcome::InsnLimit => format!("instruction limit of {} reached", self.cpu.icount),
            Outcome::Killed => "killed from gdb".to_string(),
            Outcome::Reset => {
                "the guest reset the machine (stopped, as QEMU -no-reboot)".to_string()
            }
        };
        let bytes = self
            .cpu
            .peek_bytes(&mut self.bus, rip, crate::cpu::MAX_INSN_LEN);
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let on_cpu = if self.parked.is_empty() {
            String::new()
        } else {
            format!(" on CPU {} of {}", self.current, self.parked.len())
        };
        let mut s = format!(
            "vmscope: {what}\n  at rip={rip:#x}{on_cpu} after {} instructions, bytes: {}\n",
            self.cpu.icount,
            if hex.is_empty() {
                "(unmapped)".to_string()
            } else {
                hex.join(" ")
            }
        );
        for line in self.cpu.dump().lines() {
            s += "  ";
            s += line;
            s += "\n";
        }
        if !self.cpu.recent_exceptions.is_empty() {
            s += "  recent exceptions:";
            for (ic, e) in &self.cpu.recent_exceptions {
                s += &format!(" [{ic}] {}", describe(e));
            }
            s += "\n";
        }
        s
    }
}

fn describe(e: &crate::cpu::Exception) -> String {
    let mut s = vector_name(e.vector).to_string();
    if let Some(c) = e.error_code {
        s += &format!("({c:#x})");
    }
    if let Some(a) = e.cr2 {
        s += &format!(" cr2={a:#x}");
    }
    s
}

#[cfg(test)]
mod tests {
    //! The run loop's event handling, with hand-assembled 32-bit protected-mode code (flat
    //! segments, paging off, a 32-bit IDT): the APIC page is reachable at its physical
    //! address.
    use super::*;
    use crate::addr::GuestPhysAddr;
    use crate::cpu::regs::{cr0, gpr, Segment};
    use crate::devices::uart16550::ConsoleSink;

    const GDT: u64 = 0x1000;
    const IDT: u64 = 0x2000;
    const STACK_TOP: u64 = 0x8000;
    const CODE: u64 = 0x10000;
    /// Handler for vector v at HANDLERS + v * 16: `mov eax, v; out 0xf4, eax; hlt`.
    const HANDLERS: u64 = 0x20000;
    const APIC: u32 = 0xfee0_0000;

    fn machine(code: &[u8]) -> Machine {
        machine_with_cpus(code, 1)
    }

    fn machine_with_cpus(code: &[u8], cpus: usize) -> Machine {
        let config = MachineConfig {
            mem_bytes: 4 << 20,
            cpus,
            ..MachineConfig::default()
        };
        let sink = ConsoleSink::Buffer(Default::default());
        let mut m = Machine::new(config, sink).unwrap();
        let mem = &mut m.bus.mem;
        mem.write(GuestPhysAddr(GDT + 8), 8, 0x00cf_9b00_0000_ffff);
        mem.write(GuestPhysAddr(GDT + 16), 8, 0x00cf_9300_0000_ffff);
        for v in 0..=255u64 {
            let h = HANDLERS + v * 16;
            let gate = (h & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((h >> 16) << 48);
            mem.write(GuestPhysAddr(IDT + v * 8), 8, gate);
            let stub = [0xb8, v as u8, 0, 0, 0, 0xe7, 0xf4, 0xf4];
            mem.write_bytes(GuestPhysAddr(h), &stub);
        }
        mem.write_bytes(GuestPhysAddr(CODE), code);
        let cpu = &mut m.cpu;
        cpu.cr0 = cr0::PE | cr0::ET;
        cpu.gdtr.base = GDT;
        cpu.gdtr.limit = 23;
        cpu.idtr.base = IDT;
        cpu.idtr.limit = 256 * 8 - 1;
        for s in 0..6 {
            cpu.seg[s] = Segment::flat32(0x10, 0x93);
        }
        cpu.seg[crate::cpu::regs::SegReg::Cs as usize] = Segment::flat32(0x08, 0x9b);
        cpu.gpr[gpr::RSP] = STACK_TOP;
        cpu.rip = CODE;
        m
    }

    /// `mov dword [APIC + reg], v` (10 bytes).
    fn apic_write(code: &mut Vec<u8>, reg: u32, v: u32) {
        code.extend_from_slice(&[0xc7, 0x05]);
        code.extend_from_slice(&(APIC + reg).to_le_bytes());
        code.extend_from_slice(&v.to_le_bytes());
    }

    /// Enable the APIC and start a one-shot timer of `count` bus clocks (divide by 1) on
    /// vector 0x40; the timer starts at the last instruction, icount 3.
    fn timer_code(lvt: u32, count: u32) -> Vec<u8> {
        use crate::devices::lapic::reg;
        let mut c = Vec::new();
        apic_write(&mut c, reg::SVR, 0x1ff);
        apic_write(&mut c, reg::TIMER_DIVIDE_CONFIG, 0xb);
        apic_write(&mut c, reg::LVT_TIMER, lvt);
        apic_write(&mut c, reg::TIMER_INITIAL_COUNT, count);
        c
    }

    fn exit_status(o: &Outcome) -> Option<u32> {
        match o {
            Outcome::Exit { raw } => Some(raw >> 1),
            _ => None,
        }
    }

    #[test]
    fn timer_interrupt_lands_on_the_same_icount_halted_or_spinning() {
        for tail in [&[0xfb, 0xf4, 0xeb, 0xfe][..], &[0xfb, 0xeb, 0xfe]] {
            let mut code = timer_code(0x40, 1000);
            code.extend_from_slice(tail);
            let mut m = machine(&code);
            let o = m.run();
            assert_eq!(exit_status(&o), Some(0x40), "{o:?}");
            // Started at icount 3, expired at 1003, handler: mov + out.
            assert_eq!(m.cpu.icount, 1003 + 2, "tail {tail:x?}");
        }
    }

    #[test]
    fn hlt_with_a_masked_timer_halts_forever() {
        let mut code = timer_code(crate::devices::lapic::LVT_MASKED | 0x40, 1000);
        code.extend_from_slice(&[0xfb, 0xf4]);
        let mut m = machine(&code);
        let o = m.run();
        assert!(matches!(o, Outcome::Stop(CpuStop::HaltForever)), "{o:?}");
        assert_eq!(o.exit_code(), exit_status::HALTED);
    }

    #[test]
    fn tpr_keeps_the_timer_from_waking_hlt() {
        use crate::devices::lapic::reg;
        let mut code = timer_code(0x40, 1000);
        apic_write(&mut code, reg::TPR, 0x40);
        code.extend_from_slice(&[0xfb, 0xf4]);
        let o = machine(&code).run();
        assert!(matches!(o, Outcome::Stop(CpuStop::HaltForever)), "{o:?}");
    }

    #[test]
    fn halted_time_counts_against_the_instruction_limit() {
        let mut code = timer_code(0x40, 1_000_000);
        code.extend_from_slice(&[0xfb, 0xf4]);
        let mut m = machine(&code);
        m.config.max_insns = Some(5000);
        let o = m.run();
        assert!(matches!(o, Outcome::InsnLimit), "{o:?}");
        assert_eq!(m.cpu.icount, 5000);
    }

    #[test]
    fn nmi_injection_wakes_cli_hlt() {
        let mut m = machine(&[0xfa, 0xf4]);
        m.inject(500, Injection::Nmi);
        let o = m.run();
        assert_eq!(exit_status(&o), Some(2), "{o:?}");
        assert_eq!(m.cpu.icount, 502);
    }

    #[test]
    fn nmi_is_held_while_blocked() {
        // The NMI handler is replaced by `jmp $`: a second NMI must not nest.
        let mut m = machine(&[0xeb, 0xfe]);
        m.bus
            .mem
            .write_bytes(GuestPhysAddr(HANDLERS + 2 * 16), &[0xeb, 0xfe]);
        m.inject(10, Injection::Nmi);
        m.inject(20, Injection::Nmi);
        m.config.max_insns = Some(100);
        m.run();
        assert!(m.cpu.nmi_blocked);
        assert!(m.bus.lapic.nmi_pending(), "the second NMI waits for IRET");
        let nmis = m
            .cpu
            .recent_exceptions
            .iter()
            .filter(|(_, e)| e.vector == 2);
        assert_eq!(nmis.count(), 1);
    }

    #[test]
    fn machine_check_needs_cr4_mce() {
        let mut m = machine(&[0xeb, 0xfe]);
        m.inject(7, Injection::MachineCheck);
        let o = m.run();
        assert!(
            matches!(o, Outcome::Stop(CpuStop::Shutdown { .. })),
            "{o:?}"
        );
        assert_eq!(o.exit_code(), exit_status::TRIPLE_FAULT);

        // mov eax, cr4; or eax, MCE; mov cr4, eax; jmp $
        let mut m = machine(&[
            0x0f, 0x20, 0xe0, 0x0d, 0x40, 0, 0, 0, 0x0f, 0x22, 0xe0, 0xeb, 0xfe,
        ]);
        m.inject(7, Injection::MachineCheck);
        let o = m.run();
        assert_eq!(exit_status(&o), Some(18), "{o:?}");
        assert_eq!(m.cpu.icount, 9);
    }

    #[test]
    fn pic_irq_reaches_the_cpu_through_lint0_extint() {
        // ICW1-4 on the master (vectors 0x20..), unmask IRQ 0 only, sti, spin.
        let mut code = Vec::new();
        for (port, v) in [
            (0x20u8, 0x11u8),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0x21, 0xfe),
        ] {
            code.extend_from_slice(&[0xb0, v, 0xe6, port]);
        }
        code.extend_from_slice(&[0xfb, 0xeb, 0xfe]);
        let mut m = machine(&code);
        m.config.max_insns = Some(100);
        assert!(matches!(m.run(), Outcome::InsnLimit));
        m.bus.set_irq(1, true); // masked
        m.config.max_insns = Some(200);
        assert!(matches!(m.run(), Outcome::InsnLimit));
        m.bus.set_irq(0, true);
        m.config.max_insns = None;
        let o = m.run();
        assert_eq!(exit_status(&o), Some(0x20), "{o:?}");
        assert_eq!(m.cpu.icount, 202);
    }

    #[test]
    fn pit_tick_reaches_the_cpu_through_ioapic_pin_2() {
        // APIC on; 8259 masked; IOAPIC pin 2 -> vector 0x30; PIT channel 0 mode 2 with
        // count 100, loaded by the OUT at icount 11; sti; hlt.
        use crate::devices::lapic::reg;
        let mut code = Vec::new();
        apic_write(&mut code, reg::SVR, 0x1ff);
        code.extend_from_slice(&[0xb0, 0xff, 0xe6, 0x21, 0xe6, 0xa1]);
        for (off, v) in [(0u32, 0x14u32), (0x10, 0x30)] {
            code.extend_from_slice(&[0xc7, 0x05]);
            code.extend_from_slice(&(0xfec0_0000u32 + off).to_le_bytes());
            code.extend_from_slice(&v.to_le_bytes());
        }
        for (port, v) in [(0x43u8, 0x34u8), (0x40, 100), (0x40, 0)] {
            code.extend_from_slice(&[0xb0, v, 0xe6, port]);
        }
        code.extend_from_slice(&[0xfb, 0xf4]);
        let mut m = machine(&code);
        let o = m.run();
        assert_eq!(exit_status(&o), Some(0x30), "{o:?}");
        // 100 ticks of 1.193182 MHz = 83809 ns after the load, then the handler's 2.
        let first = 11 + (100u64 * 1_000_000_000).div_ceil(crate::devices::pit::PIT_FREQ);
        assert_eq!(m.cpu.icount, first + 2);
    }

    /// A port device that drives IRQ 3 with the value written to it.
    struct IrqRaiser;
    impl crate::devices::PortDevice for IrqRaiser {
        fn name(&self) -> &'static str {
            "irq-raiser"
        }
        fn read(&mut self, _: u16, _: u8) -> u32 {
            0
        }
        fn write(&mut self, _: u16, _: u8, v: u32) -> crate::devices::IoAction {
            crate::devices::IoAction::Irq {
                line: 3,
                level: v != 0,
            }
        }
    }

    #[test]
    fn a_port_device_raises_an_irq() {
        // Master at 0x20.., IRQ 3 unmasked, sti, then `out 0x80, al` with al=1: the device
        // raises IRQ 3, taken right after the OUT.
        let mut code = Vec::new();
        for (port, v) in [
            (0x20u8, 0x11u8),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0x21, 0xf7),
        ] {
            code.extend_from_slice(&[0xb0, v, 0xe6, port]);
        }
        code.extend_from_slice(&[0xfb, 0xb0, 0x01, 0xe6, 0x80, 0xeb, 0xfe]);
        let mut m = machine(&code);
        m.bus.io.register(0x80, 1, Box::new(IrqRaiser));
        let o = m.run();
        assert_eq!(exit_status(&o), Some(0x23), "{o:?}");
        // 10 PIC writes, sti, mov, out (icount 13), then the handler's mov and out.
        assert_eq!(m.cpu.icount, 13 + 2);
    }

    #[test]
    fn pvport_reads_the_instruction_count() {
        use crate::devices::pvport::SIGNATURE;
        // Three NOPs, then `in eax, dx` from +4, +8 and +0 into ebx, ecx, esi, then
        // `out 0xf4, eax` with eax=0. The count starts at 2^32 - 2, so the first IN runs
        // at 2^32 + 2: it reads 2 and latches a high half of 1.
        let mut code = vec![0x90, 0x90, 0x90];
        for (off, mov) in [(4u8, 0xc3u8), (8, 0xc1), (0, 0xc6)] {
            code.extend_from_slice(&[0xba, 0x90 + off, 0x0e, 0, 0, 0xed, 0x89, mov]);
        }
        code.extend_from_slice(&[0x31, 0xc0, 0xe7, 0xf4]);
        let mut m = machine(&code);
        m.cpu.icount = (1 << 32) - 2;
        let o = m.run();
        assert_eq!(exit_status(&o), Some(0), "{o:?}");
        assert_eq!(m.cpu.gpr[gpr::RBX], 2);
        assert_eq!(m.cpu.gpr[gpr::RCX], 1);
        assert_eq!(m.cpu.gpr[gpr::RSI], u64::from(SIGNATURE));
    }

    #[test]
    fn com2_and_debugcon_when_added() {
        // `mov dx, 0x2f8; mov al, 'E'; out dx, al; mov dx, 0x402; mov al, 'D'; out dx, al;
        // in al, dx; mov ebx, eax; xor eax, eax; out 0xf4, eax`
        let code = [
            0x66, 0xba, 0xf8, 0x02, 0xb0, b'E', 0xee, 0x66, 0xba, 0x02, 0x04, 0xb0, b'D', 0xee,
            0xec, 0x89, 0xc3, 0x31, 0xc0, 0xe7, 0xf4,
        ];
        let com2 = Arc::new(Mutex::new(Vec::new()));
        let mut m = machine(&code);
        m.add_com2(ConsoleSink::Buffer(com2.clone()));
        let debugcon = m.add_debugcon();
        assert_eq!(exit_status(&m.run()), Some(0));
        assert_eq!(&*com2.lock().unwrap(), b"E");
        assert_eq!(&*debugcon.lock().unwrap(), b"D");
        assert_eq!(m.cpu.gpr[gpr::RBX] & 0xff, 0xe9);

        // Without them (as `boot`), the same writes go nowhere and reads float high.
        let mut m = machine(&code);
        assert_eq!(exit_status(&m.run()), Some(0));
        assert_eq!(m.cpu.gpr[gpr::RBX] & 0xff, 0xff);
    }

    #[test]
    fn interrupt_waits_for_the_sti_shadow() {
        use crate::devices::lapic::reg;
        // A self-IPI while IF=0, then sti; nop: taken after the nop, before the jmp.
        let mut code = Vec::new();
        apic_write(&mut code, reg::SVR, 0x1ff);
        apic_write(&mut code, reg::ICR_LOW, (1 << 18) | 0x41);
        code.extend_from_slice(&[0xfb, 0x90, 0xeb, 0xfe]);
        let mut m = machine(&code);
        let o = m.run();
        assert_eq!(exit_status(&o), Some(0x41), "{o:?}");
        // The return address pushed: the jmp after sti; nop.
        let ret = m.bus.mem.read(GuestPhysAddr(STACK_TOP - 12), 4).unwrap();
        assert_eq!(ret, CODE + 20 + 2);
    }

    /// INIT-SIPI bring-up: the BSP (32-bit protected mode) sends INIT then a start-up IPI
    /// with vector 0x08 to APIC 1; the AP starts in real mode at 0800:0000, reads its
    /// APIC ID from CPUID, stores it and a flag, and halts; the BSP waits for the flag and
    /// exits with the ID. CPU 2 is never started. Twice: the same instruction count.
    #[test]
    fn init_sipi_starts_an_ap_in_real_mode() {
        use crate::devices::lapic::reg;
        let ap_code = [
            0x66, 0xb8, 1, 0, 0, 0, // mov eax, 1
            0x0f, 0xa2, // cpuid
            0x66, 0xc1, 0xeb, 0x18, // shr ebx, 24
            0x89, 0x1e, 0x02, 0x90, // mov [0x9002], bx
            0xc7, 0x06, 0x00, 0x90, 0x34, 0x12, // mov word [0x9000], 0x1234
            0xfa, 0xf4, // cli; hlt
        ];
        let mut code = Vec::new();
        apic_write(&mut code, reg::ICR_HIGH, 1 << 24);
        apic_write(&mut code, reg::ICR_LOW, 0x4500); // INIT, assert
        apic_write(&mut code, reg::ICR_LOW, 0x0608); // start-up, vector 0x08
                                                     // spin: cmp word [0x9000], 0x1234; jne spin
        code.extend_from_slice(&[0x66, 0x81, 0x3d, 0x00, 0x90, 0, 0, 0x34, 0x12, 0x75, 0xf5]);
        // mov eax, [0x9002]; out 0xf4, eax
        code.extend_from_slice(&[0xa1, 0x02, 0x90, 0, 0, 0xe7, 0xf4]);
        let mut icounts = Vec::new();
        for _ in 0..2 {
            let mut m = machine_with_cpus(&code, 3);
            m.bus.mem.write_bytes(GuestPhysAddr(0x8000), &ap_code);
            m.config.max_insns = Some(1_000_000);
            let o = m.run();
            assert_eq!(
                exit_status(&o),
                Some(1),
                "{o:?} {:?} {}",
                m.run_states().to_vec(),
                m.report(&o)
            );
            assert_eq!(
                m.run_states(),
                [RunState::Running, RunState::Running, RunState::WaitInit]
            );
            let ap = m.cpu_at(1);
            assert!(ap.halted);
            assert_eq!(ap.seg[crate::cpu::regs::SegReg::Cs as usize].base, 0x8000);
            icounts.push(m.cpu.icount);
        }
        assert_eq!(icounts[0], icounts[1]);
    }

    /// A fixed IPI from the BSP wakes a halted AP, whose handler exits; a start-up IPI
    /// to a CPU that got no INIT is ignored.
    #[test]
    fn a_fixed_ipi_reaches_another_cpu() {
        use crate::devices::lapic::reg;
        let mut code = Vec::new();
        apic_write(&mut code, reg::ICR_HIGH, 1 << 24);
        apic_write(&mut code, reg::ICR_LOW, 0x0608); // start-up without INIT: ignored
        code.extend_from_slice(&[0xeb, 0xfe]); // jmp $
        let mut m = machine_with_cpus(&code, 2);
        m.config.max_insns = Some(10_000);
        assert!(matches!(m.run(), Outcome::InsnLimit));
        assert_eq!(m.run_states()[1], RunState::WaitInit);
        // Now make CPU 1 a running, halted CPU with the same tables and IF=1 (as if it
        // had been started), and send it vector 0x41 from the BSP.
        let mut code = Vec::new();
        apic_write(&mut code, reg::ICR_HIGH, 1 << 24);
        apic_write(&mut code, reg::ICR_LOW, 0x41);
        code.extend_from_slice(&[0xeb, 0xfe]);
        let mut m = machine_with_cpus(&code, 2);
        let mut ap = Cpu::new(1, 64, TlbMode::On);
        ap.drop_decode_cache();
        ap.cr0 = m.cpu.cr0;
        ap.gdtr = m.cpu.gdtr;
        ap.idtr = m.cpu.idtr;
        ap.seg = m.cpu.seg;
        ap.gpr[gpr::RSP] = STACK_TOP - 0x1000;
        ap.halted = true;
        ap.rflags |= rflags::IF;
        m.parked[1] = ap;
        m.run_state[1] = RunState::Running;
        m.bus.parked_lapics[1].write_register(reg::SVR, 0x1ff, 0);
        let o = m.run();
        assert_eq!(exit_status(&o), Some(0x41), "{o:?}");
        assert_eq!(m.current_cpu(), 1, "the AP ran the handler");
    }
}
