//! The GDB remote stub (`--gdb HOST:PORT`, `--gdb-wait`), built on the `gdbstub` crate.
//!
//! The machine is driven one run-loop iteration at a time with the two halves of
//! [`Machine::step`] ([`Machine::service_due`], then [`Machine::execute`]), so that
//! [`Machine::run`], the fast path, carries no debugger checks and the guest does exactly
//! what it does without gdb: the stub only reads state between iterations.
//!
//! - **Registers**: gdb's x86-64 core layout (`gdbstub_arch`'s [`X86_64CoreRegs`]) plus
//!   `fs_base`/`gs_base` and a system feature with `k_gs_base`, `cr0`, `cr2`, `cr3`, `cr4`,
//!   `cr8` and `efer` (see [`target_xml`]). The x87 registers (st0-7 in stack order,
//!   fctrl, fstat, ftag as the full tag word, fiseg, fioff, foseg, fooff, fop) and SSE's
//!   xmm0-15 and mxcsr are read and written like the rest.
//! - **Memory** is read and written through the current page tables with
//!   [`Cpu::debug_translate`](crate::cpu::Cpu::debug_translate) (no A/D bits, no TLB fill,
//!   no fault), and only where it is RAM: device memory is out of reach, since reading a
//!   device register can change the device.
//! - **Breakpoints** (software and hardware alike) are address sets checked at each
//!   instruction boundary; guest memory is never patched. **Watchpoints** read the
//!   CPU's memory-access log ([`Cpu::mem_log`](crate::cpu::Cpu::mem_log)), which is on only
//!   while a watchpoint exists.
//! - Without `--gdb-wait` the machine runs and the listener is polled every
//!   [`POLL_INTERVAL`] iterations, so gdb can attach at any time; while gdb is attached
//!   and the guest runs, the connection is polled as often for Ctrl-C.

use crate::cpu::regs::{gpr, rflags, SegReg};
use crate::cpu::MemAccess;
use crate::devices::uart16550::flush_consoles;
use crate::machine::{Machine, Outcome};
use crate::tlb::FlushCause;
use gdbstub::arch::{Arch, RegId, Registers};
use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::single_register_access::{
    SingleRegisterAccess, SingleRegisterAccessOps,
};
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::sync::OnceLock;

/// Run-loop iterations between two looks at the network (a new gdb while the machine runs
/// free, Ctrl-C while gdb lets it run). A look costs a few system calls; this many
/// iterations take about ten milliseconds, so gdb still gets an answer at once.
pub const POLL_INTERVAL: u32 = 1 << 16;

/// The host when `--gdb` names only a port: local connections only.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The errno gdb sees when an address cannot be read or written (EFAULT).
const EFAULT: u8 = 14;

/// How `--gdb` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdbConfig {
    /// `HOST:PORT` to listen on, as [`parse_listen_addr`] returns it.
    pub addr: String,
    /// Wait for gdb before the first instruction (`--gdb-wait`).
    pub wait: bool,
}

/// Parse `--gdb`: `HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1), optionally prefixed
/// `tcp:` as QEMU writes it; an IPv6 host goes in brackets (`[::1]:1234`). Port 0 lets
/// the system pick a free port. Returns `HOST:PORT`.
pub fn parse_listen_addr(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?}: expected HOST:PORT or PORT, e.g. 127.0.0.1:1234");
    let t = s.trim();
    let t = t.strip_prefix("tcp:").unwrap_or(t);
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || (h.starts_with('[') && h.ends_with(']')) => (h, p),
        Some(_) => return Err(bad()),
        None => ("", t),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = if host.is_empty() { DEFAULT_HOST } else { host };
    if host == "[]" || host.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

/// The arguments that give QEMU the same debugging set-up (`--gdb` with `--qemu`):
/// QEMU's own stub, `-gdb tcp:HOST:PORT`, and `-S` to wait. QEMU starts in its firmware,
/// not at the kernel's entry, so with `-S` gdb attaches before the BIOS runs.
pub fn qemu_args(cfg: &GdbConfig) -> Result<Vec<String>, String> {
    if cfg.addr.ends_with(":0") {
        return Err("--gdb with --qemu needs a fixed port (QEMU cannot report port 0's)".into());
    }
    let mut args = vec!["-gdb".to_string(), format!("tcp:{}", cfg.addr)];
    if cfg.wait {
        args.push("-S".into());
    }
    Ok(args)
}

/// Run `m` under the GDB stub until the guest stops or gdb kills it, and return how it
/// ended (the caller prints the report and exits as without gdb). The listening address is
/// printed on stderr, since with port 0 only the stub knows it.
pub fn run(m: &mut Machine, cfg: &GdbConfig) -> Result<Outcome, String> {
    let listener = TcpListener::bind(&cfg.addr)
        .map_err(|e| format!("--gdb {}: cannot listen: {e}", cfg.addr))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("--gdb {}: {e}", cfg.addr))?;
    eprintln!(
        "vmscope: gdb: listening on {local}{}",
        if cfg.wait {
            ", waiting for gdb to connect"
        } else {
            ""
        }
    );
    let mut dbg = Debugger::new(m);
    if cfg.wait {
        let (conn, peer) = listener
            .accept()
            .map_err(|e| format!("--gdb {local}: accept: {e}"))?;
        if let Some(outcome) = dbg.session(conn, peer) {
            return Ok(outcome);
        }
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("--gdb {local}: {e}"))?;
    loop {
        if let Some(outcome) = dbg.run_free(POLL_INTERVAL) {
            return Ok(outcome);
        }
        match listener.accept() {
            Ok((conn, peer)) => {
                if let Some(outcome) = dbg.session(conn, peer) {
                    return Ok(outcome);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => log::warn!("gdb: accept on {local} failed: {e}"),
        }
    }
}

// ---- target description ------------------------------------------------------------------

/// What a register number of the target description stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    /// A general-purpose register, by vmscope's index ([`gpr`]).
    Gpr(usize),
    Rip,
    Eflags,
    Selector(SegReg),
    /// ST(i), 10 bytes.
    St(usize),
    /// fctrl, fstat, ftag, fiseg, fioff, foseg, fooff, fop (in gdb's order).
    Fpu(usize),
    /// XMMi, 16 bytes.
    Xmm(usize),
    Mxcsr,
    FsBase,
    GsBase,
    KernelGsBase,
    Cr0,
    Cr2,
    Cr3,
    Cr4,
    Cr8,
    Efer,
}

/// One register of the target description; its position is gdb's register number.
#[derive(Debug, Clone)]
pub struct RegDesc {
    pub name: String,
    pub reg: Reg,
    pub bytes: usize,
    ty: &'static str,
    group: Option<&'static str>,
    feature: &'static str,
}

const FEATURE_CORE: &str = "org.gnu.gdb.i386.core";
const FEATURE_SSE: &str = "org.gnu.gdb.i386.sse";
const FEATURE_SEGMENTS: &str = "org.gnu.gdb.i386.segments";
/// vmscope's own feature: gdb shows its registers as they are (`info registers cr3`).
const FEATURE_SYS: &str = "org.vmscope.x86_64.sys";

/// gdb's order of the general-purpose registers, as vmscope indices.
const GDB_GPRS: [(&str, usize); 16] = [
    ("rax", gpr::RAX),
    ("rbx", gpr::RBX),
    ("rcx", gpr::RCX),
    ("rdx", gpr::RDX),
    ("rsi", gpr::RSI),
    ("rdi", gpr::RDI),
    ("rbp", gpr::RBP),
    ("rsp", gpr::RSP),
    ("r8", 8),
    ("r9", 9),
    ("r10", 10),
    ("r11", 11),
    ("r12", 12),
    ("r13", 13),
    ("r14", 14),
    ("r15", 15),
];

/// gdb's order of the segment registers.
const GDB_SEGMENTS: [(&str, SegReg); 6] = [
    ("cs", SegReg::Cs),
    ("ss", SegReg::Ss),
    ("ds", SegReg::Ds),
    ("es", SegReg::Es),
    ("fs", SegReg::Fs),
    ("gs", SegReg::Gs),
];

/// The registers after gdb's core and SSE features, in order: the values of
/// [`Regs::sys`].
const SYS_REGS: [(&str, Reg, &str); 9] = [
    ("fs_base", Reg::FsBase, "int64"),
    ("gs_base", Reg::GsBase, "int64"),
    ("k_gs_base", Reg::KernelGsBase, "int64"),
    ("cr0", Reg::Cr0, "vmscope_cr0"),
    ("cr2", Reg::Cr2, "int64"),
    ("cr3", Reg::Cr3, "int64"),
    ("cr4", Reg::Cr4, "vmscope_cr4"),
    ("cr8", Reg::Cr8, "int64"),
    ("efer", Reg::Efer, "vmscope_efer"),
];

/// gdb's x87 control registers, in its order.
const FPU_REGS: [&str; 8] = [
    "fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop",
];

/// Bytes of [`X86_64CoreRegs`] in a `g` packet: 16 GPRs, RIP, EFLAGS, six selectors, the
/// x87 stack and control registers, XMM0-15 and MXCSR.
const CORE_BYTES: usize = 16 * 8 + 8 + 4 + 6 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4;

/// Every register, in gdb's numbering.
pub fn register_table() -> &'static [RegDesc] {
    static TABLE: OnceLock<Vec<RegDesc>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Vec::new();
        let mut add = |name: &str, reg, bytes, ty, group, feature| {
            t.push(RegDesc {
                name: name.to_string(),
                reg,
                bytes,
                ty,
                group,
                feature,
            })
        };
        for (name, i) in GDB_GPRS {
            let ty = match i {
                gpr::RSP | gpr::RBP => "data_ptr",
                _ => "int64",
            };
            add(name, Reg::Gpr(i), 8, ty, None, FEATURE_CORE);
        }
        add("rip", Reg::Rip, 8, "code_ptr", None, FEATURE_CORE);
        add(
            "eflags",
            Reg::Eflags,
            4,
            "vmscope_eflags",
            None,
            FEATURE_CORE,
        );
        for (name, s) in GDB_SEGMENTS {
            add(name, Reg::Selector(s), 4, "int32", None, FEATURE_CORE);
        }
        for i in 0..8 {
            let name = format!("st{i}");
            add(&name, Reg::St(i), 10, "i387_ext", None, FEATURE_CORE);
        }
        for (k, name) in FPU_REGS.iter().enumerate() {
            add(name, Reg::Fpu(k), 4, "int", Some("float"), FEATURE_CORE);
        }
        for i in 0..16 {
            let name = format!("xmm{i}");
            add(
                &name,
                Reg::Xmm(i),
                16,
                "vec128",
                Some("vector"),
                FEATURE_SSE,
            );
        }
        add(
            "mxcsr",
            Reg::Mxcsr,
            4,
            "i386_mxcsr",
            Some("vector"),
            FEATURE_SSE,
        );
        for (name, reg, ty) in SYS_REGS {
            let feature = match reg {
                Reg::FsBase | Reg::GsBase => FEATURE_SEGMENTS,
                _ => FEATURE_SYS,
            };
            add(name, reg, 8, ty, None, feature);
        }
        t
    })
}

/// The named bits of a flags register, as (name, bit number).
type FlagBits = &'static [(&'static str, u32)];

/// A flags type of the target description: gdb shows such a register as `[ PE PG ]`.
struct FlagType {
    feature: &'static str,
    id: &'static str,
    bytes: usize,
    bits: FlagBits,
}

/// The vector types of gdb's own `64bit-sse.xml`, so that `p $xmm0` shows the same union
/// of lanes as against a native process.
const SSE_TYPES: &str = "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>\n\
<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>\n\
<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>\n\
<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>\n\
<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>\n\
<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>\n\
<union id=\"vec128\">\n\
<field name=\"v4_float\" type=\"v4f\"/>\n\
<field name=\"v2_double\" type=\"v2d\"/>\n\
<field name=\"v16_int8\" type=\"v16i8\"/>\n\
<field name=\"v8_int16\" type=\"v8i16\"/>\n\
<field name=\"v4_int32\" type=\"v4i32\"/>\n\
<field name=\"v2_int64\" type=\"v2i64\"/>\n\
<field name=\"uint128\" type=\"uint128\"/>\n\
</union>\n";

const FLAG_TYPES: [FlagType; 5] = [
    FlagType {
        feature: FEATURE_SSE,
        id: "i386_mxcsr",
        bytes: 4,
        bits: MXCSR_BITS,
    },
    FlagType {
        feature: FEATURE_CORE,
        id: "vmscope_eflags",
        bytes: 4,
        bits: EFLAGS_BITS,
    },
    FlagType {
        feature: FEATURE_SYS,
        id: "vmscope_cr0",
        bytes: 8,
        bits: CR0_BITS,
    },
    FlagType {
        feature: FEATURE_SYS,
        id: "vmscope_cr4",
        bytes: 8,
        bits: CR4_BITS,
    },
    FlagType {
        feature: FEATURE_SYS,
        id: "vmscope_efer",
        bytes: 8,
        bits: EFER_BITS,
    },
];

#[rustfmt::skip]
const EFLAGS_BITS: FlagBits = &[
    ("CF", 0), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9), ("DF", 10),
    ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18), ("VIF", 19), ("VIP", 20),
    ("ID", 21),
];
#[rustfmt::skip]
const CR0_BITS: FlagBits = &[
    ("PE", 0), ("MP", 1), ("EM", 2), ("TS", 3), ("ET", 4), ("NE", 5), ("WP", 16), ("AM", 18),
    ("NW", 29), ("CD", 30), ("PG", 31),
];
#[rustfmt::skip]
const CR4_BITS: FlagBits = &[
    ("VME", 0), ("PVI", 1), ("TSD", 2), ("DE", 3), ("PSE", 4), ("PAE", 5), ("MCE", 6),
    ("PGE", 7), ("PCE", 8), ("OSFXSR", 9), ("OSXMMEXCPT", 10), ("UMIP", 11), ("LA57", 12),
    ("FSGSBASE", 16), ("PCIDE", 17), ("OSXSAVE", 18), ("SMEP", 20), ("SMAP", 21), ("PKE", 22),
    ("PKS", 24),
];
const EFER_BITS: FlagBits = &[("SCE", 0), ("LME", 8), ("LMA", 10), ("NXE", 11)];
#[rustfmt::skip]
const MXCSR_BITS: FlagBits = &[
    ("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6), ("IM", 7),
    ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15),
];

/// The target description gdb reads (`qXfer:features:read:target.xml`), generated from
/// [`register_table`] so that the XML, the `g` packet and `p`/`P` numbers always agree.
pub fn target_xml() -> &'static str {
    static XML: OnceLock<String> = OnceLock::new();
    XML.get_or_init(|| {
        let mut x = String::from(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n\
             <target version=\"1.0\">\n<architecture>i386:x86-64</architecture>\n",
        );
        let mut current: Option<&str> = None;
        for r in register_table() {
            if current != Some(r.feature) {
                if current.is_some() {
                    x += "</feature>\n";
                }
                current = Some(r.feature);
                let _ = writeln!(x, "<feature name=\"{}\">", r.feature);
                if r.feature == FEATURE_SSE {
                    x += SSE_TYPES;
                }
                for f in FLAG_TYPES.iter().filter(|f| f.feature == r.feature) {
                    let _ = writeln!(x, "<flags id=\"{}\" size=\"{}\">", f.id, f.bytes);
                    for (name, bit) in f.bits {
                        let _ =
                            writeln!(x, "<field name=\"{name}\" start=\"{bit}\" end=\"{bit}\"/>");
                    }
                    x += "</flags>\n";
                }
            }
            let _ = write!(
                x,
                "<reg name=\"{}\" bitsize=\"{}\" type=\"{}\"",
                r.name,
                r.bytes * 8,
                r.ty
            );
            if let Some(g) = r.group {
                let _ = write!(x, " group=\"{g}\"");
            }
            x += "/>\n";
        }
        x += "</feature>\n</target>\n";
        x
    })
}

/// vmscope's x86-64 as gdbstub sees it: gdb's core layout extended with the segment bases
/// and the system registers.
pub enum VmscopeX86_64 {}

impl Arch for VmscopeX86_64 {
    type Usize = u64;
    type Registers = Regs;
    type RegId = RegNum;
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        Some(target_xml())
    }
}

/// A register number of [`register_table`] (`p`/`P` packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegNum(pub usize);

impl RegId for RegNum {
    fn from_raw_id(id: usize) -> Option<(Self, Option<NonZeroUsize>)> {
        let d = register_table().get(id)?;
        Some((RegNum(id), NonZeroUsize::new(d.bytes)))
    }
}

/// The `g` packet: [`X86_64CoreRegs`] (gdb's core and SSE features), then [`SYS_REGS`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Regs {
    pub core: X86_64CoreRegs,
    pub sys: [u64; SYS_REGS.len()],
}

impl Registers for Regs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        self.core.gdb_serialize(&mut write_byte);
        for v in self.sys {
            v.to_le_bytes().iter().for_each(|&b| write_byte(Some(b)));
        }
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let sys = bytes.get(CORE_BYTES..).ok_or(())?;
        if sys.len() != SYS_REGS.len() * 8 {
            return Err(());
        }
        self.core.gdb_deserialize(&bytes[..CORE_BYTES])?;
        for (v, b) in self.sys.iter_mut().zip(sys.chunks_exact(8)) {
            *v = u64::from_le_bytes(b.try_into().map_err(|_| ())?);
        }
        Ok(())
    }
}

/// The bytes of a `g` packet (`None`: unavailable).
fn serialize(regs: &Regs) -> Vec<Option<u8>> {
    let mut out = Vec::new();
    regs.gdb_serialize(|b| out.push(b));
    out
}

/// Bits 47 and up equal: the address is canonical with 4-level paging.
fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

// ---- watchpoints -------------------------------------------------------------------------

/// A gdb watchpoint: `len` bytes at `addr` (linear), for writes, reads or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchpoint {
    pub addr: u64,
    pub len: u64,
    pub kind: WatchKind,
}

impl Watchpoint {
    /// If `a` touches the watched bytes in a watched way, the address to report: the
    /// first watched byte it touches.
    pub fn hit(&self, a: &MemAccess) -> Option<u64> {
        let kind_ok = match self.kind {
            WatchKind::Write => a.write,
            WatchKind::Read => !a.write,
            WatchKind::ReadWrite => true,
        };
        let (start, end) = (a.la.0 as u128, a.la.0 as u128 + a.size as u128);
        let (wstart, wend) = (
            self.addr as u128,
            self.addr as u128 + self.len.max(1) as u128,
        );
        (kind_ok && start < wend && wstart < end).then(|| start.max(wstart) as u64)
    }
}

// ---- the target --------------------------------------------------------------------------

/// What gdb last asked the machine to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Continue,
    Step,
}

type StopReason = SingleThreadStopReason<u64>;

/// The machine under gdb.
pub struct Debugger<'m> {
    m: &'m mut Machine,
    sw_breaks: HashSet<u64>,
    hw_breaks: HashSet<u64>,
    watches: Vec<Watchpoint>,
    mode: Mode,
    /// The events due at this instruction boundary were serviced, its instruction has not
    /// run yet: we stopped in between, at a breakpoint (perhaps on the first instruction
    /// of an interrupt handler just entered). The next iteration only executes, so
    /// resuming runs the instruction instead of reporting the breakpoint again.
    serviced: bool,
    /// How the machine ended, once it did.
    outcome: Option<Outcome>,
}

impl<'m> Debugger<'m> {
    fn new(m: &'m mut Machine) -> Self {
        Debugger {
            m,
            sw_breaks: HashSet::new(),
            hw_breaks: HashSet::new(),
            watches: Vec::new(),
            mode: Mode::Continue,
            serviced: false,
            outcome: None,
        }
    }

    /// Serve one gdb connection. `Some` when the machine ended (or gdb killed it); `None`
    /// when gdb went away and the machine runs on.
    fn session(&mut self, conn: TcpStream, peer: std::net::SocketAddr) -> Option<Outcome> {
        if let Err(e) = conn.set_nonblocking(false) {
            log::warn!("gdb: connection from {peer}: {e}");
            return None;
        }
        log::info!(
            "gdb: connected from {peer} at rip={:#x}, icount {}",
            self.m.cpu.rip,
            self.m.cpu.icount
        );
        flush_consoles();
        let stub: GdbStub<'_, Debugger<'m>, TcpStream> = GdbStub::new(conn);
        let end = stub.run_blocking::<EventLoop<'m>>(self);
        if let Some(outcome) = self.outcome.take() {
            return Some(outcome);
        }
        match end {
            Ok(DisconnectReason::Kill) => {
                log::info!("gdb: kill");
                // The stop report names `insn_rip`: the instruction the machine stopped at.
                self.m.cpu.insn_rip = self.m.cpu.rip;
                return Some(Outcome::Killed);
            }
            Ok(reason) => log::info!("gdb: session ended ({reason:?}); the machine runs on"),
            Err(e) => log::warn!("gdb: session ended: {e}; the machine runs on"),
        }
        self.forget_gdb();
        None
    }

    /// Drop every breakpoint and watchpoint: nobody is listening any more.
    fn forget_gdb(&mut self) {
        self.sw_breaks.clear();
        self.hw_breaks.clear();
        self.watches.clear();
        self.sync_mem_log();
    }

    /// Run up to `n` iterations without gdb. `Some` when the machine stopped.
    fn run_free(&mut self, n: u32) -> Option<Outcome> {
        if self.serviced {
            self.serviced = false;
            if let Some(o) = self.m.execute() {
                return Some(o);
            }
        }
        for _ in 0..n {
            if let Some(o) = self.m.step() {
                return Some(o);
            }
        }
        None
    }

    /// One half-iteration or a whole one, with the debugger's checks in between. `Some`
    /// when gdb must hear about a stop.
    fn advance(&mut self) -> Option<StopReason> {
        if !self.serviced {
            if let Some(o) = self.m.service_due() {
                return Some(self.machine_stopped(o));
            }
            self.serviced = true;
            // An interrupt delivery pushes onto the stack: watched like any access.
            if let Some(r) = self.check_watchpoints() {
                return Some(r);
            }
            if self.mode == Mode::Continue {
                if let Some(r) = self.check_breakpoints() {
                    return Some(r);
                }
            }
        }
        self.serviced = false;
        if let Some(o) = self.m.execute() {
            return Some(self.machine_stopped(o));
        }
        if let Some(r) = self.check_watchpoints() {
            return Some(r);
        }
        (self.mode == Mode::Step).then_some(StopReason::DoneStep)
    }

    fn check_breakpoints(&self) -> Option<StopReason> {
        let rip = self.m.cpu.rip;
        if self.sw_breaks.contains(&rip) {
            Some(StopReason::SwBreak(()))
        } else if self.hw_breaks.contains(&rip) {
            Some(StopReason::HwBreak(()))
        } else {
            None
        }
    }

    /// The first watchpoint the accesses since the last look hit; the log is emptied.
    fn check_watchpoints(&mut self) -> Option<StopReason> {
        #[cfg(feature = "trace-hooks")]
        {
            let log = self.m.cpu.mem_log.as_mut()?;
            let hit = log.iter().find_map(|a| {
                self.watches
                    .iter()
                    .find_map(|w| w.hit(a).map(|addr| (w.kind, addr)))
            });
            log.clear();
            hit.map(|(kind, addr)| StopReason::Watch {
                tid: (),
                kind,
                addr,
            })
        }
        #[cfg(not(feature = "trace-hooks"))]
        None
    }

    /// Log memory accesses exactly while a watchpoint exists.
    fn sync_mem_log(&mut self) {
        #[cfg(feature = "trace-hooks")]
        {
            let log = &mut self.m.cpu.mem_log;
            if self.watches.is_empty() {
                *log = None;
            } else if log.is_none() {
                *log = Some(Vec::new());
            }
        }
    }

    /// The machine ended: remember how, and tell gdb the status vmscope will exit with.
    fn machine_stopped(&mut self, o: Outcome) -> StopReason {
        let status = o.exit_code().clamp(0, 255) as u8;
        log::info!("gdb: the machine stopped ({o:?}), exit status {status}");
        self.outcome = Some(o);
        StopReason::Exited(status)
    }

    fn get(&mut self, r: Reg) -> Option<u64> {
        let cpu = &self.m.cpu;
        Some(match r {
            Reg::Gpr(i) => cpu.gpr[i],
            Reg::Rip => cpu.rip,
            Reg::Eflags => cpu.rflags,
            Reg::Selector(s) => cpu.seg[s as usize].selector.into(),
            Reg::St(_) | Reg::Xmm(_) => return None,
            Reg::Fpu(k) => {
                let f = &cpu.fpu;
                match k {
                    0 => f.fcw.into(),
                    1 => f.fsw.into(),
                    2 => f.ftw.into(),
                    3 => f.fcs.into(),
                    4 => f.fip & 0xffff_ffff,
                    5 => f.fds.into(),
                    6 => f.fdp & 0xffff_ffff,
                    _ => f.fop.into(),
                }
            }
            Reg::Mxcsr => cpu.fpu.mxcsr.into(),
            Reg::FsBase => cpu.seg[SegReg::Fs as usize].base,
            Reg::GsBase => cpu.seg[SegReg::Gs as usize].base,
            Reg::KernelGsBase => cpu.msr.kernel_gs_base,
            Reg::Cr0 => cpu.cr0,
            Reg::Cr2 => cpu.cr2,
            Reg::Cr3 => cpu.cr3,
            Reg::Cr4 => cpu.cr4,
            // CR8 is the local APIC's TPR[7:4], as MOV from CR8 reads it.
            Reg::Cr8 => u64::from(self.m.bus.lapic.tpr() >> 4),
            Reg::Efer => cpu.efer,
        })
    }

    /// Write a register from gdb. Mode-defining state (selectors, CR0, CR4, CR8, EFER) is
    /// read-only: changing it under the guest would need a descriptor load or a mode
    /// switch, not a register write.
    fn set(&mut self, r: Reg, v: u64) -> Result<(), String> {
        if self.get(r) == Some(v) {
            return Ok(());
        }
        let cpu = &mut self.m.cpu;
        match r {
            Reg::Gpr(i) => cpu.gpr[i] = v,
            Reg::Rip => cpu.rip = v,
            Reg::Eflags => {
                let writable = rflags::WRITABLE & !rflags::VM;
                cpu.rflags = (v & writable) | rflags::FIXED;
                // IF may have changed: look at pending interrupts before the next insn.
                self.m.bus.kick();
            }
            Reg::FsBase | Reg::GsBase | Reg::KernelGsBase if !canonical(v) => {
                return Err(format!("{v:#x} is not a canonical address"))
            }
            Reg::FsBase => cpu.seg[SegReg::Fs as usize].base = v,
            Reg::GsBase => cpu.seg[SegReg::Gs as usize].base = v,
            Reg::KernelGsBase => cpu.msr.kernel_gs_base = v,
            Reg::Cr2 => cpu.cr2 = v,
            Reg::Cr3 => {
                if v >> MAX_PHYS_BITS != 0 {
                    return Err(format!("{v:#x} sets reserved bits"));
                }
                cpu.cr3 = v;
                cpu.tlb.flush_all(FlushCause::Other);
            }
            Reg::St(_) | Reg::Xmm(_) => return Err("a wide register".into()),
            Reg::Fpu(k) => {
                let f = &mut cpu.fpu;
                match k {
                    0 => {
                        use crate::cpu::fpu_state::fcw;
                        f.fcw = (v as u16 & fcw::WRITABLE) | fcw::FIXED
                    }
                    1 => f.fsw = v as u16,
                    2 => f.ftw = v as u16,
                    3 => f.fcs = v as u16,
                    4 => f.fip = v & 0xffff_ffff,
                    5 => f.fds = v as u16,
                    6 => f.fdp = v & 0xffff_ffff,
                    _ => f.fop = v as u16 & 0x7ff,
                }
            }
            Reg::Mxcsr => {
                if v & !u64::from(crate::cpu::fpu_state::mxcsr::MASK) != 0 {
                    return Err(format!("{v:#x} sets reserved MXCSR bits"));
                }
                cpu.fpu.mxcsr = v as u32;
            }
            Reg::Selector(_) | Reg::Cr0 | Reg::Cr4 | Reg::Cr8 | Reg::Efer => {
                return Err("read-only from gdb (it defines the CPU mode)".into())
            }
        }
        Ok(())
    }

    /// The bytes of a register wider than 8 bytes (ST(i), XMMi).
    fn get_wide(&self, r: Reg) -> Option<Vec<u8>> {
        let f = &self.m.cpu.fpu;
        match r {
            Reg::St(i) => Some(f.st(i).to_bytes().to_vec()),
            Reg::Xmm(i) => Some(f.xmm[i].to_le_bytes().to_vec()),
            _ => None,
        }
    }

    /// Write ST(i) (its tag follows the value) or XMMi.
    fn set_wide(&mut self, r: Reg, b: &[u8]) {
        let f = &mut self.m.cpu.fpu;
        match r {
            Reg::St(i) if b.len() >= 10 => {
                let v = crate::cpu::fpu_state::F80::from_bytes(b);
                if f.st(i) != v {
                    f.set_st(i, v);
                }
            }
            Reg::Xmm(i) if b.len() >= 16 => {
                f.xmm[i] = u128::from_le_bytes(b[..16].try_into().unwrap())
            }
            _ => {}
        }
    }

    /// Guest-physical RAM behind `n` bytes at linear `la` (within one page).
    fn ram_at(&mut self, la: u64, n: usize) -> Option<crate::addr::GuestPhysAddr> {
        let pa = self.m.cpu.debug_translate(&mut self.m.bus, la)?;
        self.m.bus.mem.is_ram(pa, n as u64).then_some(pa)
    }
}

/// Physical-address bits: CR3 bits from here up are reserved.
const MAX_PHYS_BITS: u32 = 52;

/// Bytes from `la` to the end of its 4 KiB page, at most `n`.
fn page_chunk(la: u64, n: usize) -> usize {
    let to_end = crate::addr::PAGE_SIZE - (la & crate::addr::PAGE_OFFSET_MASK);
    n.min(to_end as usize)
}

impl Target for Debugger<'_> {
    type Arch = VmscopeX86_64;
    type Error = Infallible;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadBase for Debugger<'_> {
    fn read_registers(&mut self, regs: &mut Regs) -> TargetResult<(), Self> {
        let cpu = &self.m.cpu;
        for (slot, (_, i)) in regs.core.regs.iter_mut().zip(GDB_GPRS) {
            *slot = cpu.gpr[i];
        }
        regs.core.rip = cpu.rip;
        regs.core.eflags = cpu.rflags as u32;
        let sel = |s: SegReg| u32::from(cpu.seg[s as usize].selector);
        let segs = &mut regs.core.segments;
        (segs.cs, segs.ss, segs.ds) = (sel(SegReg::Cs), sel(SegReg::Ss), sel(SegReg::Ds));
        (segs.es, segs.fs, segs.gs) = (sel(SegReg::Es), sel(SegReg::Fs), sel(SegReg::Gs));
        for (slot, (_, r, _)) in regs.sys.iter_mut().zip(SYS_REGS) {
            *slot = self.get(r).unwrap_or(0);
        }
        let f = &self.m.cpu.fpu;
        for (i, st) in regs.core.st.iter_mut().enumerate() {
            *st = f.st(i).to_bytes();
        }
        let x = &mut regs.core.fpu;
        (x.fctrl, x.fstat, x.ftag) = (f.fcw.into(), f.fsw.into(), f.ftw.into());
        (x.fiseg, x.fioff) = (f.fcs.into(), f.fip as u32);
        (x.foseg, x.fooff, x.fop) = (f.fds.into(), f.fdp as u32, f.fop.into());
        regs.core.xmm = f.xmm;
        regs.core.mxcsr = f.mxcsr;
        Ok(())
    }

    /// A `G` packet: every register whose bytes differ from the current state is set.
    fn write_registers(&mut self, regs: &Regs) -> TargetResult<(), Self> {
        let mut now = Regs::default();
        self.read_registers(&mut now)?;
        let (old, new) = (serialize(&now), serialize(regs));
        let mut off = 0;
        for d in register_table() {
            let range = off..off + d.bytes;
            off += d.bytes;
            if old[range.clone()] == new[range.clone()] {
                continue;
            }
            if matches!(d.reg, Reg::St(_) | Reg::Xmm(_)) {
                let b: Vec<u8> = new[range].iter().map(|b| b.unwrap_or(0)).collect();
                self.set_wide(d.reg, &b);
                continue;
            }
            let v = le_value(new[range].iter().map(|b| b.unwrap_or(0)));
            if let Err(e) = self.set(d.reg, v) {
                log::warn!("gdb: cannot write {} = {v:#x}: {e}", d.name);
                return Err(TargetError::NonFatal);
            }
        }
        Ok(())
    }

    fn support_single_register_access(&mut self) -> Option<SingleRegisterAccessOps<'_, (), Self>> {
        Some(self)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let mut done = 0;
        while done < data.len() {
            let la = start.wrapping_add(done as u64);
            let n = page_chunk(la, data.len() - done);
            let Some(pa) = self.ram_at(la, n) else { break };
            let Some(src) = self.m.bus.mem.slice(pa, n) else {
                break;
            };
            data[done..done + n].copy_from_slice(src);
            done += n;
        }
        if done == 0 && !data.is_empty() {
            log::debug!("gdb: read at {start:#x}: not mapped to RAM");
            return Err(TargetError::Errno(EFAULT));
        }
        Ok(done)
    }

    /// All or nothing: every page is checked before a byte is written.
    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        let mut chunks = Vec::new();
        let mut done = 0;
        while done < data.len() {
            let la = start.wrapping_add(done as u64);
            let n = page_chunk(la, data.len() - done);
            let Some(pa) = self.ram_at(la, n) else {
                log::warn!(
                    "gdb: cannot write {} bytes at {start:#x}: {la:#x} is not mapped to RAM",
                    data.len()
                );
                return Err(TargetError::Errno(EFAULT));
            };
            chunks.push((pa, done..done + n));
            done += n;
        }
        for (pa, range) in chunks {
            self.m.bus.mem.write_bytes(pa, &data[range]);
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

/// The little-endian value of up to 8 bytes.
fn le_value(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes
        .take(8)
        .enumerate()
        .fold(0, |v, (i, b)| v | (u64::from(b) << (8 * i)))
}

impl SingleRegisterAccess<()> for Debugger<'_> {
    fn read_register(&mut self, _: (), reg: RegNum, buf: &mut [u8]) -> TargetResult<usize, Self> {
        let d = register_table().get(reg.0).ok_or(TargetError::NonFatal)?;
        if let Some(b) = self.get_wide(d.reg) {
            let n = b.len().min(buf.len());
            buf[..n].copy_from_slice(&b[..n]);
            return Ok(n);
        }
        let Some(v) = self.get(d.reg) else {
            return Ok(0); // unavailable
        };
        let bytes = v.to_le_bytes();
        let n = d.bytes.min(8).min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        buf[n..].fill(0);
        Ok(buf.len())
    }

    fn write_register(&mut self, _: (), reg: RegNum, val: &[u8]) -> TargetResult<(), Self> {
        let d = register_table().get(reg.0).ok_or(TargetError::NonFatal)?;
        if val.len() != d.bytes {
            log::warn!(
                "gdb: {} bytes for {}, which has {}",
                val.len(),
                d.name,
                d.bytes
            );
            return Err(TargetError::NonFatal);
        }
        if matches!(d.reg, Reg::St(_) | Reg::Xmm(_)) {
            self.set_wide(d.reg, val);
            return Ok(());
        }
        let v = le_value(val.iter().copied());
        self.set(d.reg, v).map_err(|e| {
            log::warn!("gdb: cannot write {} = {v:#x}: {e}", d.name);
            TargetError::NonFatal
        })
    }
}

impl SingleThreadResume for Debugger<'_> {
    fn resume(&mut self, signal: Option<Signal>) -> Result<(), Self::Error> {
        if let Some(s) = signal {
            log::info!("gdb: signal {s} not delivered (the guest is a machine, not a process)");
        }
        self.mode = Mode::Continue;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Debugger<'_> {
    fn step(&mut self, signal: Option<Signal>) -> Result<(), Self::Error> {
        if let Some(s) = signal {
            log::info!("gdb: signal {s} not delivered (the guest is a machine, not a process)");
        }
        self.mode = Mode::Step;
        Ok(())
    }
}

impl Breakpoints for Debugger<'_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        // Without the access log gdb falls back to single-stepping software watchpoints.
        cfg!(feature = "trace-hooks").then_some(self)
    }
}

impl SwBreakpoint for Debugger<'_> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.sw_breaks.insert(addr);
        Ok(true)
    }
    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.sw_breaks.remove(&addr))
    }
}

impl HwBreakpoint for Debugger<'_> {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.hw_breaks.insert(addr);
        Ok(true)
    }
    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.hw_breaks.remove(&addr))
    }
}

impl HwWatchpoint for Debugger<'_> {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        self.watches.push(Watchpoint { addr, len, kind });
        self.sync_mem_log();
        Ok(true)
    }
    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        let w = Watchpoint { addr, len, kind };
        let found = self.watches.iter().position(|x| *x == w);
        if let Some(i) = found {
            self.watches.remove(i);
        }
        self.sync_mem_log();
        Ok(found.is_some())
    }
}

impl MonitorCmd for Debugger<'_> {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        let text = self.monitor(&String::from_utf8_lossy(cmd));
        out.write_raw(text.as_bytes());
        Ok(())
    }
}

/// `monitor` (qRcmd) commands and their help.
const MONITOR_HELP: &str = "\
vmscope monitor commands:
  regs            every register, descriptor tables included
  cr              cr0, cr2, cr3, cr4, cr8 and efer, with their flags
  icount          instructions executed so far (the virtual clock)
  translate ADDR  the physical address of linear ADDR through the current page tables
  help            this list
";

impl Debugger<'_> {
    /// The output of `monitor CMD`.
    fn monitor(&mut self, cmd: &str) -> String {
        let mut words = cmd.split_whitespace();
        let (verb, arg) = (words.next().unwrap_or(""), words.next());
        match (verb, arg) {
            ("regs", None) => format!("{}icount={}\n", self.m.cpu.dump(), self.m.cpu.icount),
            ("cr", None) => {
                let cr8 = self.get(Reg::Cr8).unwrap_or(0);
                let cpu = &self.m.cpu;
                let mut s = String::new();
                let rows: [(&str, u64, FlagBits); 6] = [
                    ("cr0", cpu.cr0, CR0_BITS),
                    ("cr2", cpu.cr2, &[]),
                    ("cr3", cpu.cr3, &[]),
                    ("cr4", cpu.cr4, CR4_BITS),
                    ("cr8", cr8, &[]),
                    ("efer", cpu.efer, EFER_BITS),
                ];
                for (name, v, flags) in rows {
                    let _ = writeln!(s, "{name:<5}{v:#018x}{}", flag_names(v, flags));
                }
                s
            }
            ("icount", None) => format!("{}\n", self.m.cpu.icount),
            ("translate", Some(a)) => match parse_number(a) {
                Some(la) => match self.m.cpu.debug_translate(&mut self.m.bus, la) {
                    Some(pa) => format!("{la:#x} -> {:#x}\n", pa.0),
                    None => format!("{la:#x}: not mapped\n"),
                },
                None => format!("not an address: {a:?}\n"),
            },
            ("help", _) | ("", _) => MONITOR_HELP.to_string(),
            _ => format!("unknown monitor command {:?}\n{MONITOR_HELP}", cmd.trim()),
        }
    }
}

/// ` [ PE PG ]`: the names of the set flags, or nothing without a flag table.
fn flag_names(v: u64, flags: FlagBits) -> String {
    if flags.is_empty() {
        return String::new();
    }
    let set: Vec<&str> = flags
        .iter()
        .filter(|(_, bit)| v >> bit & 1 != 0)
        .map(|(n, _)| *n)
        .collect();
    format!(" [ {} ]", set.join(" "))
}

/// A number as gdb users type it: `0x` hex or decimal.
pub fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// gdbstub's blocking event loop over a [`Debugger`].
struct EventLoop<'m>(PhantomData<&'m mut Machine>);

impl<'m> BlockingEventLoop for EventLoop<'m> {
    type Target = Debugger<'m>;
    type Connection = TcpStream;
    type StopReason = StopReason;

    /// Run the machine in slices of [`POLL_INTERVAL`] iterations, looking for a byte from
    /// gdb (Ctrl-C) between slices.
    fn wait_for_stop_reason(
        target: &mut Debugger<'m>,
        conn: &mut TcpStream,
    ) -> Result<Event<StopReason>, WaitForStopReasonError<Infallible, std::io::Error>> {
        loop {
            for _ in 0..POLL_INTERVAL {
                if let Some(reason) = target.advance() {
                    flush_consoles();
                    return Ok(Event::TargetStopped(reason));
                }
            }
            // `TcpStream` has an inherent `peek` of its own: name gdbstub's.
            let incoming = ConnectionExt::peek(conn).map_err(WaitForStopReasonError::Connection)?;
            if incoming.is_some() {
                let byte = ConnectionExt::read(conn).map_err(WaitForStopReasonError::Connection)?;
                return Ok(Event::IncomingData(byte));
            }
        }
    }

    fn on_interrupt(_target: &mut Debugger<'m>) -> Result<Option<StopReason>, Infallible> {
        flush_consoles();
        Ok(Some(StopReason::Signal(Signal::SIGINT)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{GuestPhysAddr, GuestVirtAddr};
    use crate::cpu::regs::{cr0, cr4, efer};

    /// A machine in 32-bit protected mode (flat segments, paging off) running `code` at
    /// [`CODE`], whose NMI handler at [`NMI_HANDLER`] exits with status 0x22.
    fn machine(code: &[u8]) -> Machine {
        use crate::cpu::regs::{SegReg, Segment};
        use crate::devices::uart16550::ConsoleSink;
        use crate::machine::MachineConfig;
        const GDT: u64 = 0x1000;
        const IDT: u64 = 0x2000;
        let config = MachineConfig {
            mem_bytes: 4 << 20,
            ..MachineConfig::default()
        };
        let mut m = Machine::new(config, ConsoleSink::Buffer(Default::default())).unwrap();
        let mem = &mut m.bus.mem;
        mem.write(GuestPhysAddr(GDT + 8), 8, 0x00cf_9b00_0000_ffff);
        mem.write(GuestPhysAddr(GDT + 16), 8, 0x00cf_9300_0000_ffff);
        let h = NMI_HANDLER;
        let gate = (h & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((h >> 16) << 48);
        mem.write(GuestPhysAddr(IDT + 2 * 8), 8, gate);
        // mov eax, 0x22; out 0xf4, eax
        mem.write_bytes(GuestPhysAddr(h), &[0xb8, 0x22, 0, 0, 0, 0xe7, 0xf4]);
        mem.write_bytes(GuestPhysAddr(CODE), code);
        let cpu = &mut m.cpu;
        cpu.cr0 = cr0::PE | cr0::ET;
        (cpu.gdtr.base, cpu.gdtr.limit) = (GDT, 23);
        (cpu.idtr.base, cpu.idtr.limit) = (IDT, 256 * 8 - 1);
        for s in 0..6 {
            cpu.seg[s] = Segment::flat32(0x10, 0x93);
        }
        cpu.seg[SegReg::Cs as usize] = Segment::flat32(0x08, 0x9b);
        cpu.gpr[gpr::RSP] = 0x8000;
        cpu.rip = CODE;
        m
    }

    const CODE: u64 = 0x10000;
    const NMI_HANDLER: u64 = 0x20000;
    const DATA: u64 = 0x3000;
    const NMI_AT: u64 = 100;
    /// `mov dword [DATA], 5; mov eax, [DATA]; jmp $`, and an NMI at icount [`NMI_AT`].
    const PROGRAM: [u8; 17] = [
        0xc7, 0x05, 0x00, 0x30, 0, 0, 5, 0, 0, 0, 0xa1, 0x00, 0x30, 0, 0, 0xeb, 0xfe,
    ];
    const EXIT: StopReason = StopReason::Exited(0x22);

    fn program() -> Machine {
        let mut m = machine(&PROGRAM);
        m.inject(NMI_AT, crate::machine::Injection::Nmi);
        m
    }

    /// Advance until the debugger has a stop to report.
    fn stop(d: &mut Debugger, mode: Mode) -> StopReason {
        d.mode = mode;
        for _ in 0..1_000_000 {
            if let Some(r) = d.advance() {
                return r;
            }
        }
        panic!("no stop");
    }

    #[test]
    #[cfg(feature = "trace-hooks")] // watchpoints read the access log
    fn breakpoints_watchpoints_and_steps_leave_the_guest_unchanged() {
        let mut plain = program();
        let end = plain.run();
        let mut m = program();
        let mut d = Debugger::new(&mut m);
        d.sw_breaks.insert(CODE + 10);
        assert_eq!(stop(&mut d, Mode::Continue), StopReason::SwBreak(()));
        assert_eq!((d.m.cpu.rip, d.m.cpu.icount), (CODE + 10, 1));
        // Resuming at the breakpoint runs its instruction; a read watchpoint reports the
        // read after it.
        d.watches.push(Watchpoint {
            addr: DATA,
            len: 4,
            kind: WatchKind::Read,
        });
        d.sync_mem_log();
        let read = StopReason::Watch {
            tid: (),
            kind: WatchKind::Read,
            addr: DATA,
        };
        assert_eq!(stop(&mut d, Mode::Continue), read);
        assert_eq!(d.m.cpu.rip, CODE + 15);
        assert_eq!(d.m.cpu.gpr[gpr::RAX], 5);
        assert_eq!(stop(&mut d, Mode::Step), StopReason::DoneStep);
        assert_eq!((d.m.cpu.rip, d.m.cpu.icount), (CODE + 15, 3));
        d.forget_gdb();
        assert!(d.m.cpu.mem_log.is_none());
        assert_eq!(stop(&mut d, Mode::Continue), EXIT);
        assert_eq!(
            d.outcome.as_ref().map(Outcome::exit_code),
            Some(end.exit_code())
        );
        assert_eq!(m.cpu.icount, plain.cpu.icount);
    }

    #[test]
    fn a_breakpoint_on_an_interrupt_handler_stops_before_its_first_instruction() {
        let mut plain = program();
        plain.run();
        let mut m = program();
        let mut d = Debugger::new(&mut m);
        d.hw_breaks.insert(NMI_HANDLER);
        assert_eq!(stop(&mut d, Mode::Continue), StopReason::HwBreak(()));
        assert_eq!((d.m.cpu.rip, d.m.cpu.icount), (NMI_HANDLER, NMI_AT));
        assert_eq!(d.m.cpu.gpr[gpr::RAX], 5, "the handler has not run");
        assert_eq!(stop(&mut d, Mode::Continue), EXIT);
        assert_eq!(m.cpu.icount, plain.cpu.icount);
    }

    #[test]
    #[cfg(feature = "trace-hooks")] // watchpoints read the access log
    fn a_watchpoint_sees_an_interrupt_frame_pushed() {
        let mut plain = program();
        plain.run();
        let mut m = program();
        let mut d = Debugger::new(&mut m);
        d.watches.push(Watchpoint {
            addr: 0x8000 - 4,
            len: 4,
            kind: WatchKind::Write,
        });
        d.sync_mem_log();
        let push = stop(&mut d, Mode::Continue);
        assert!(
            matches!(
                push,
                StopReason::Watch {
                    kind: WatchKind::Write,
                    ..
                }
            ),
            "{push:?}"
        );
        assert_eq!((d.m.cpu.rip, d.m.cpu.icount), (NMI_HANDLER, NMI_AT));
        assert_eq!(stop(&mut d, Mode::Continue), EXIT);
        assert_eq!(m.cpu.icount, plain.cpu.icount);
    }

    #[test]
    fn memory_goes_through_ram_only() {
        let mut m = program();
        let mut d = Debugger::new(&mut m);
        let mut buf = [0u8; 4];
        assert_eq!(d.read_addrs(CODE, &mut buf).ok(), Some(4));
        assert_eq!(buf, PROGRAM[..4]);
        // Up to the end of RAM (4 MiB), then nothing; the APIC page is a device.
        let mut buf = [0u8; 8];
        assert_eq!(d.read_addrs((4 << 20) - 4, &mut buf).ok(), Some(4));
        assert!(d.read_addrs(4 << 20, &mut buf).is_err());
        assert!(d.read_addrs(0xfee0_0000, &mut buf).is_err());
        assert!(d.write_addrs(DATA, &[1, 2, 3, 4]).is_ok());
        assert_eq!(d.m.bus.mem.read_u32(GuestPhysAddr(DATA)), Some(0x0403_0201));
        // A write that runs off RAM writes nothing.
        assert!(d.write_addrs((4 << 20) - 2, &[9, 9, 9, 9]).is_err());
        assert_eq!(d.m.bus.mem.read(GuestPhysAddr((4 << 20) - 2), 2), Some(0));
    }

    #[test]
    fn register_writes() {
        let mut m = program();
        let mut d = Debugger::new(&mut m);
        assert!(d.set(Reg::Gpr(gpr::RBX), 7).is_ok());
        assert!(d.set(Reg::Eflags, u64::MAX).is_ok());
        let f = d.m.cpu.rflags;
        assert!(
            f & rflags::FIXED != 0 && f & rflags::VM == 0 && f >> 22 == 0,
            "{f:#x}"
        );
        assert!(
            d.set(Reg::FsBase, 0x8000_0000_0000).is_err(),
            "not canonical"
        );
        assert!(d.set(Reg::KernelGsBase, 0xffff_8000_0000_0000).is_ok());
        assert!(d.set(Reg::Cr3, 0x5000).is_ok());
        assert!(d.set(Reg::Cr3, 1 << 60).is_err());
        assert!(d.set(Reg::Cr0, 0).is_err(), "mode-defining");
        assert!(
            d.set(Reg::Cr0, cr0::PE | cr0::ET).is_ok(),
            "unchanged is fine"
        );
        assert!(d
            .set(Reg::Selector(crate::cpu::regs::SegReg::Cs), 0x10)
            .is_err());
        assert!(d.set(Reg::Mxcsr, 1 << 20).is_err(), "reserved MXCSR bit");
        assert!(d.set(Reg::Mxcsr, 0x1f80 | 1 << 13).is_ok());
        assert_eq!(d.m.cpu.fpu.mxcsr, 0x3f80);
        d.set_wide(Reg::Xmm(3), &7u128.to_le_bytes());
        assert_eq!(d.m.cpu.fpu.xmm[3], 7);
        // A G packet with one change applies it; one with a read-only change fails.
        let mut regs = Regs::default();
        assert!(d.read_registers(&mut regs).is_ok());
        regs.core.regs[0] = 0x99; // rax
        assert!(d.write_registers(&regs).is_ok());
        assert_eq!(d.m.cpu.gpr[gpr::RAX], 0x99);
        regs.sys[3] = 0; // cr0
        assert!(d.write_registers(&regs).is_err());
    }

    #[test]
    fn monitor_commands() {
        let mut m = program();
        let mut d = Debugger::new(&mut m);
        let cr = d.monitor("cr");
        assert!(
            cr.starts_with("cr0  0x0000000000000011 [ PE ET ]\n"),
            "{cr}"
        );
        assert!(cr.contains("efer 0x0000000000000000 [  ]"), "{cr}");
        assert_eq!(d.monitor("icount"), "0\n");
        assert_eq!(d.monitor("translate 0x1234"), "0x1234 -> 0x1234\n");
        assert!(d.monitor("translate zz").starts_with("not an address"));
        assert!(d.monitor("regs").contains("icount=0"));
        assert!(d.monitor("help").contains("translate ADDR"));
        assert!(d
            .monitor("frobnicate")
            .starts_with("unknown monitor command \"frobnicate\""));
    }

    #[test]
    fn listen_addresses() {
        let ok = |s: &str| parse_listen_addr(s).unwrap();
        assert_eq!(ok("127.0.0.1:1234"), "127.0.0.1:1234");
        assert_eq!(ok("localhost:0"), "localhost:0");
        assert_eq!(ok("1234"), "127.0.0.1:1234");
        assert_eq!(ok(":1234"), "127.0.0.1:1234");
        assert_eq!(ok("tcp:0.0.0.0:9"), "0.0.0.0:9");
        assert_eq!(ok("[::1]:1234"), "[::1]:1234");
        for bad in [
            "",
            "host",
            "host:",
            "host:65536",
            "::1:1234",
            "a b:1",
            "[]:1",
            "1:2:3",
        ] {
            assert!(parse_listen_addr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn qemu_gets_its_own_stub() {
        let cfg = |addr: &str, wait| GdbConfig {
            addr: addr.into(),
            wait,
        };
        assert_eq!(
            qemu_args(&cfg("127.0.0.1:1234", true)).unwrap(),
            ["-gdb", "tcp:127.0.0.1:1234", "-S"]
        );
        assert_eq!(
            qemu_args(&cfg("127.0.0.1:1234", false)).unwrap(),
            ["-gdb", "tcp:127.0.0.1:1234"]
        );
        assert!(qemu_args(&cfg("127.0.0.1:0", false)).is_err());
    }

    fn access(la: u64, size: u8, write: bool) -> MemAccess {
        MemAccess {
            la: GuestVirtAddr(la),
            pa: GuestPhysAddr(0),
            size,
            write,
            value: 0,
        }
    }

    #[test]
    fn watchpoint_matching() {
        let w = Watchpoint {
            addr: 0x1000,
            len: 8,
            kind: WatchKind::Write,
        };
        assert_eq!(w.hit(&access(0x1000, 8, true)), Some(0x1000));
        assert_eq!(w.hit(&access(0x1004, 1, true)), Some(0x1004));
        // Overlapping from below reports the first watched byte.
        assert_eq!(w.hit(&access(0xffc, 8, true)), Some(0x1000));
        assert_eq!(w.hit(&access(0xff8, 8, true)), None);
        assert_eq!(w.hit(&access(0x1008, 4, true)), None);
        assert_eq!(w.hit(&access(0x1000, 8, false)), None, "a read");
        let r = Watchpoint {
            kind: WatchKind::Read,
            ..w
        };
        assert_eq!(r.hit(&access(0x1007, 2, false)), Some(0x1007));
        assert_eq!(r.hit(&access(0x1007, 2, true)), None);
        let a = Watchpoint {
            kind: WatchKind::ReadWrite,
            ..w
        };
        assert!(a.hit(&access(0x1000, 1, false)).is_some());
        assert!(a.hit(&access(0x1000, 1, true)).is_some());
        // The top of the address space does not wrap around.
        let top = Watchpoint {
            addr: u64::MAX - 3,
            len: 4,
            kind: WatchKind::Write,
        };
        assert_eq!(top.hit(&access(u64::MAX, 1, true)), Some(u64::MAX));
        assert_eq!(top.hit(&access(0, 8, true)), None);
    }

    #[test]
    fn register_table_agrees_with_the_g_packet() {
        let table = register_table();
        let total: usize = table.iter().map(|d| d.bytes).sum();
        let regs = Regs::default();
        assert_eq!(serialize(&regs).len(), total);
        assert_eq!(CORE_BYTES + SYS_REGS.len() * 8, total);
        // The table's offsets land on the right fields of X86_64CoreRegs and Regs::sys.
        let mut regs = Regs::default();
        regs.core.regs[7] = 0x1111; // rsp in gdb's order
        regs.core.rip = 0x2222;
        regs.core.eflags = 0x246;
        regs.core.segments.gs = 0x2b;
        regs.sys[5] = 0x3333; // cr3
        let bytes = serialize(&regs);
        let mut off = 0;
        let mut seen = 0;
        for d in table {
            let v = bytes[off..off + d.bytes].iter().map(|b| b.unwrap_or(0));
            let v = le_value(v);
            let expect = match d.name.as_str() {
                "rsp" => 0x1111,
                "rip" => 0x2222,
                "eflags" => 0x246,
                "gs" => 0x2b,
                "cr3" => 0x3333,
                _ => 0,
            };
            assert_eq!(v, expect, "{}", d.name);
            assert!(bytes[off..off + d.bytes].iter().all(Option::is_some));
            seen += 1;
            off += d.bytes;
        }
        assert_eq!(seen, 16 + 2 + 6 + 8 + 8 + 16 + 1 + SYS_REGS.len());
        // And back: a G packet's bytes (gdb sends zeros for unavailable registers).
        let raw: Vec<u8> = bytes.iter().map(|b| b.unwrap_or(0)).collect();
        let mut back = Regs::default();
        back.gdb_deserialize(&raw).unwrap();
        assert_eq!(back, regs);
        assert!(back.gdb_deserialize(&raw[..raw.len() - 1]).is_err());
        assert!(back.gdb_deserialize(&[]).is_err());
    }

    #[test]
    fn target_xml_names_every_register_once() {
        let xml = target_xml();
        for d in register_table() {
            let tag = format!("<reg name=\"{}\" ", d.name);
            assert_eq!(xml.matches(&tag).count(), 1, "{}", d.name);
        }
        for f in [FEATURE_CORE, FEATURE_SSE, FEATURE_SEGMENTS, FEATURE_SYS] {
            assert_eq!(xml.matches(&format!("<feature name=\"{f}\">")).count(), 1);
        }
        assert_eq!(
            xml.matches("<feature ").count(),
            xml.matches("</feature>").count()
        );
        assert!(xml.contains("<field name=\"PG\" start=\"31\" end=\"31\"/>"));
        assert_eq!(
            RegNum::from_raw_id(16).map(|(r, s)| (r, s.map(|s| s.get()))),
            Some((RegNum(16), Some(8)))
        );
        assert!(RegNum::from_raw_id(register_table().len()).is_none());
    }

    #[test]
    fn flags_and_numbers() {
        assert_eq!(flag_names(cr0::PE | cr0::PG, CR0_BITS), " [ PE PG ]");
        assert_eq!(flag_names(efer::LMA | efer::LME, EFER_BITS), " [ LME LMA ]");
        assert_eq!(flag_names(cr4::PAE, CR4_BITS), " [ PAE ]");
        assert_eq!(flag_names(5, &[]), "");
        assert_eq!(
            parse_number("0xffff888000000000"),
            Some(0xffff_8880_0000_0000)
        );
        assert_eq!(parse_number("4096"), Some(4096));
        assert_eq!(parse_number("0xg"), None);
        assert!(canonical(0xffff_8000_0000_0000) && canonical(0x7fff_ffff_ffff));
        assert!(!canonical(0x8000_0000_0000));
        assert_eq!(page_chunk(0x1ff0, 100), 0x10);
        assert_eq!(page_chunk(0x1000, 100), 100);
    }
}
