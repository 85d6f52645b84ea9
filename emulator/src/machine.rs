//! The machine: one CPU, guest RAM and the devices of a minimal QEMU `pc` (COM1 16550A,
//! isa-debug-exit), plus the run loop and the stop reports.

use crate::boot::pvh::{self, BootError, BootInfo};
use crate::bus::Bus;
use crate::cpu::exception::vector_name;
use crate::cpu::regs::rflags;
use crate::cpu::{Cpu, CpuStop, Step};
use crate::devices::debug_exit::{self, DebugExit, DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE};
use crate::devices::uart16550::{ConsoleSink, Uart16550, COM1_PORT, UART_PORT_COUNT};
use crate::devices::PortBus;
use crate::memory::{GuestMemory, MemoryError};
use crate::tlb::{TlbMode, DEFAULT_TLB_ENTRIES};

/// Process exit statuses with a fixed meaning. Guest statuses from isa-debug-exit are
/// 0..=127 (QEMU exits with `(v << 1) | 1`, vmscope reports `v`), so the machine's own
/// outcomes use 140 and up and never collide with them.
pub mod exit_status {
    /// Bad command line, unreadable or invalid kernel/initrd, RAM too small, no QEMU.
    pub const BAD_INPUT: i32 = 2;
    /// The CPU shut down after a triple fault (QEMU with -no-reboot exits 0 here).
    pub const TRIPLE_FAULT: i32 = 140;
    /// The guest ran an instruction vmscope does not implement.
    pub const UNIMPLEMENTED: i32 = 141;
    /// The CPU halted with nothing that could ever wake it.
    pub const HALTED: i32 = 142;
    /// The instruction limit (--max-insns) was reached.
    pub const INSN_LIMIT: i32 = 143;
}

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
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            mem_bytes: 128 << 20,
            tlb_mode: TlbMode::On,
            tlb_entries: DEFAULT_TLB_ENTRIES,
            max_insns: None,
            ud_on_unimplemented: false,
        }
    }
}

/// Why the machine stopped.
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
            Outcome::Unimplemented { .. } => exit_status::UNIMPLEMENTED,
            Outcome::InsnLimit => exit_status::INSN_LIMIT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Boot(#[from] BootError),
}

pub struct Machine {
    pub cpu: Cpu,
    pub bus: Bus,
    pub config: MachineConfig,
    pub boot: Option<BootInfo>,
}

impl Machine {
    pub fn new(config: MachineConfig, console: ConsoleSink) -> Result<Self, MachineError> {
        let mem = GuestMemory::new(config.mem_bytes)?;
        let mut io = PortBus::new();
        io.register(
            COM1_PORT,
            UART_PORT_COUNT,
            Box::new(Uart16550::new(console)),
        );
        io.register(DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE, Box::new(DebugExit));
        let bus = Bus::new(mem, io);
        let mut cpu = Cpu::new(0, config.tlb_entries, config.tlb_mode);
        cpu.stop_on_unimplemented = !config.ud_on_unimplemented;
        Ok(Machine {
            cpu,
            bus,
            config,
            boot: None,
        })
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

    /// Run until the guest exits or the CPU cannot go on.
    pub fn run(&mut self) -> Outcome {
        let limit = self.config.max_insns.unwrap_or(u64::MAX);
        loop {
            if self.cpu.icount >= limit {
                return Outcome::InsnLimit;
            }
            match self.cpu.step(&mut self.bus) {
                Step::Ok => {}
                Step::Halted => {
                    // No interrupt source exists yet that could wake a halted CPU.
                    return Outcome::Stop(CpuStop::HaltForever);
                }
                Step::Stop(s) => return Outcome::Stop(s),
            }
            if let Some(raw) = self.bus.exit_request {
                return Outcome::Exit { raw };
            }
            if let Some(text) = self.cpu.last_unimplemented.take() {
                return Outcome::Unimplemented {
                    rip: self.cpu.insn_rip,
                    text,
                };
            }
        }
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
                "CPU halted with {} and no interrupt source",
                if self.cpu.flag(rflags::IF) {
                    "interrupts enabled"
                } else {
                    "interrupts disabled"
                }
            ),
            Outcome::Unimplemented { text, .. } => format!("unimplemented instruction: {text}"),
            Outcome::InsnLimit => format!("instruction limit of {} reached", self.cpu.icount),
        };
        let bytes = self
            .cpu
            .peek_bytes(&mut self.bus, rip, crate::cpu::MAX_INSN_LEN);
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut s = format!(
            "vmscope: {what}\n  at rip={rip:#x} after {} instructions, bytes: {}\n",
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
