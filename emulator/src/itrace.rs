//! The instruction trace (`--trace FILE|-`): one line per instruction executed, with the
//! instruction count, CPU, privilege level, RIP and the symbol it lies in, the bytes, the
//! disassembly, the registers it changed and the memory it touched (virtual → physical,
//! value); exceptions and interrupts are marked where they happen. README.md
//! ("Instruction trace") documents the format and the options.
//!
//! The machine is driven with [`Machine::service_due`] and [`Machine::execute`] (one
//! iteration of the run loop in two halves), never through [`Machine::run`], which stays
//! the fast path: when tracing is off or over, that is what runs. Memory accesses come
//! from [`Cpu::mem_log`] (the `trace-hooks` feature), exceptions and interrupts from a tap
//! on the CPU's fault sink, register changes from comparing the register file before and
//! after the instruction.
//!
//! The emulator thread collects compact records in batches; a writer thread turns them
//! into text (decode, disassembly, symbols) and writes them through a `BufWriter`. The
//! batches travel on a bounded crossbeam channel and come back empty for reuse. (With
//! `VMSCOPE_TRACE_FORMAT=emulator` the emulator thread formats and the writer only
//! writes: the benchmark compares the two.) Nothing in a line depends on the host, so two
//! runs give byte-identical files.

use crate::cpu::exception::vector_name;
use crate::cpu::regs::SegReg;
use crate::cpu::{Cpu, MAX_INSN_LEN};
use crate::machine::{Machine, Outcome};
use crate::symbols::SymbolTable;
use crate::trace::{FaultEvent, TraceEvent, TraceSink};
use crossbeam_channel::{bounded, Receiver, Sender};
use iced_x86::{
    Decoder, DecoderOptions, Formatter, GasFormatter, Instruction, IntelFormatter, MasmFormatter,
    OpKind, Register, SymbolResolver, SymbolResult,
};
use std::cell::RefCell;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Assembly syntax of the disassembly column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Syntax {
    /// Intel (iced-x86's Intel formatter: `mov rbp,rsp`).
    #[default]
    Intel,
    /// AT&T, as GNU as writes it (`mov %rsp,%rbp`).
    Att,
    /// MASM (`mov rbp,rsp`, `qword ptr [...]`).
    Masm,
}

/// The trace options of `boot` and `run` (flattened into their machine options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TraceArgs {
    /// Write an instruction trace to FILE (`-` for stdout): one line per instruction with
    /// its count, CPU, CPL, RIP <symbol+offset>, bytes, disassembly, the registers it
    /// changed and the memory it touched (see README, "Instruction trace").
    #[arg(long, value_name = "FILE|-")]
    pub trace: Option<PathBuf>,
    /// Disassembly syntax of the trace.
    #[arg(long, value_enum, default_value = "intel", requires = "trace")]
    pub syntax: Syntax,
    /// Start tracing at the first instruction at this symbol or (hex) address, or with
    /// `@N` at instruction count N (the `icount` of a fault-trace event: the trace then
    /// shows how the kernel handled it).
    #[arg(long, value_name = "SYM|ADDR|@N", requires = "trace")]
    pub trace_start: Option<String>,
    /// Stop tracing after the first traced instruction at this symbol or (hex) address.
    #[arg(long, value_name = "SYM|ADDR", requires = "trace")]
    pub trace_stop: Option<String>,
    /// Only lines at this privilege level (0 kernel, 3 user).
    #[arg(long, value_name = "CPL", requires = "trace", value_parser = clap::value_parser!(u8).range(0..=3))]
    pub trace_cpl: Option<u8>,
    /// Only lines while the guest process with this PID runs (from the kernel's OS
    /// annotations).
    #[arg(long, value_name = "PID", requires = "trace")]
    pub trace_pid: Option<u32>,
    /// Only lines whose RIP lies in START-END (END excluded; each a symbol or a hex
    /// address), or in the symbol SYM.
    #[arg(long, value_name = "START-END|SYM", requires = "trace")]
    pub trace_range: Option<String>,
    /// Stop tracing after N lines.
    #[arg(long, value_name = "N", requires = "trace")]
    pub trace_limit: Option<u64>,
    /// Kernel symbols for a stripped kernel (a bzImage, Debian's vmlinux): a System.map,
    /// the output of `cat /proc/kallsyms` (boot with `nokaslr` so addresses stay put),
    /// or an ELF with a symbol table.
    #[arg(long, value_name = "FILE", requires = "trace")]
    pub kernel_symbols: Option<PathBuf>,
}

impl TraceArgs {
    pub fn enabled(&self) -> bool {
        self.trace.is_some()
    }
}

// ---- symbols of the guest --------------------------------------------------------------

/// The symbol tables the trace names code with: the kernel's, and those of the ELF
/// executables in the initramfs (user programs, by their path in the guest).
pub struct GuestSymbols {
    pub kernel: Arc<SymbolTable>,
    /// `(guest path, symbols)` of every ELF file in the initramfs.
    pub user: Vec<(String, Arc<SymbolTable>)>,
    /// The program the initramfs starts (`/etc/vmscope/init`), an index into `user`.
    pub init: Option<usize>,
}

impl GuestSymbols {
    /// The kernel ELF's symbols and those of every ELF in `initrd` (a newc cpio archive;
    /// anything else has no programs).
    pub fn new(kernel_elf: &[u8], initrd: Option<&[u8]>) -> Self {
        let kernel = SymbolTable::from_kernel_elf(kernel_elf).unwrap_or_else(|e| {
            log::warn!("trace: no kernel symbols: {e}");
            SymbolTable::default()
        });
        let mut user = Vec::new();
        let mut init_path = None;
        if let Some(rd) = initrd {
            for (path, data) in cpio_files(rd) {
                if path == crate::initramfs::INIT_FILE {
                    init_path = Some(String::from_utf8_lossy(&data).into_owned());
                } else if data.starts_with(b"\x7fELF") {
                    match SymbolTable::from_elf(&data) {
                        Ok(t) => user.push((path, Arc::new(t))),
                        Err(e) => log::warn!("trace: {path}: {e}"),
                    }
                }
            }
        }
        let init = init_path.and_then(|p| user.iter().position(|(u, _)| *u == p));
        GuestSymbols {
            kernel: Arc::new(kernel),
            user,
            init,
        }
    }

    /// The user image at guest path `exe`.
    pub fn user_index(&self, exe: &str) -> Option<usize> {
        self.user.iter().position(|(p, _)| p == exe)
    }

    /// `name` in the kernel, else in the program the initramfs starts, else in any other
    /// program of the initramfs.
    fn find(&self, name: &str) -> Option<(u64, u64)> {
        let mut tables = vec![&self.kernel];
        if let Some(i) = self.init {
            tables.push(&self.user[i].1);
        }
        tables.extend(self.user.iter().map(|(_, t)| t));
        tables
            .into_iter()
            .find_map(|t| t.find(name))
            .map(|s| (s.addr, s.size))
    }

    /// A symbol or a hex address (with or without `0x`): its address and size (0 for an
    /// address).
    fn place(&self, s: &str) -> Result<(u64, u64), String> {
        if let Some(p) = self.find(s) {
            return Ok(p);
        }
        let hex = s.strip_prefix("0x").unwrap_or(s).replace('_', "");
        u64::from_str_radix(&hex, 16).map(|a| (a, 0)).map_err(|_| {
            format!("{s:?}: no such symbol in the kernel or the programs, and not a hex address")
        })
    }

    /// `START-END` (END excluded) or a symbol's extent.
    fn range(&self, s: &str) -> Result<(u64, u64), String> {
        if let Some((a, b)) = s.split_once('-') {
            let (start, _) = self.place(a.trim())?;
            let (end, _) = self.place(b.trim())?;
            if end <= start {
                return Err(format!("--trace-range {s}: END must lie above START"));
            }
            return Ok((start, end));
        }
        match self.find(s) {
            Some((a, size)) if size > 0 => Ok((a, a + size)),
            Some(_) => Err(format!(
                "--trace-range {s}: the symbol has no size; give START-END"
            )),
            None => Err(format!("--trace-range {s}: expected START-END or a symbol")),
        }
    }
}

/// The regular files of a newc cpio archive, as `(absolute path, contents)`. Stops quietly
/// at anything malformed.
fn cpio_files(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = archive;
    while let Ok(mut r) = cpio::newc::Reader::new(rest) {
        if r.entry().is_trailer() {
            break;
        }
        let name = format!("/{}", r.entry().name().trim_start_matches('/'));
        let regular = r.entry().mode() & 0o170000 == 0o100000;
        let mut data = Vec::new();
        if regular && io::Read::read_to_end(&mut r, &mut data).is_err() {
            break;
        }
        match r.finish() {
            Ok(next) => rest = next,
            Err(_) => break,
        }
        if regular {
            out.push((name, data));
        }
    }
    out
}

// ---- the task running now ---------------------------------------------------------------

/// What the trace needs to know about the guest task on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Task {
    pid: u32,
    /// Index of its executable in [`GuestSymbols::user`].
    image: Option<usize>,
    load_bias: u64,
}

// ---- records ----------------------------------------------------------------------------

/// Registers compared before and after each instruction, as one flat array.
const NREGS: usize = REG_NAMES.len();

/// Name and hex width of each entry of the register snapshot.
const REG_NAMES: [(&str, u8); 76] = [
    ("rax", 16),
    ("rcx", 16),
    ("rdx", 16),
    ("rbx", 16),
    ("rsp", 16),
    ("rbp", 16),
    ("rsi", 16),
    ("rdi", 16),
    ("r8", 16),
    ("r9", 16),
    ("r10", 16),
    ("r11", 16),
    ("r12", 16),
    ("r13", 16),
    ("r14", 16),
    ("r15", 16),
    ("rflags", 8),
    ("es", 4),
    ("es.base", 16),
    ("es.limit", 8),
    ("es.attr", 4),
    ("cs", 4),
    ("cs.base", 16),
    ("cs.limit", 8),
    ("cs.attr", 4),
    ("ss", 4),
    ("ss.base", 16),
    ("ss.limit", 8),
    ("ss.attr", 4),
    ("ds", 4),
    ("ds.base", 16),
    ("ds.limit", 8),
    ("ds.attr", 4),
    ("fs", 4),
    ("fs.base", 16),
    ("fs.limit", 8),
    ("fs.attr", 4),
    ("gs", 4),
    ("gs.base", 16),
    ("gs.limit", 8),
    ("gs.attr", 4),
    ("ldtr", 4),
    ("ldtr.base", 16),
    ("tr", 4),
    ("tr.base", 16),
    ("gdtr.base", 16),
    ("gdtr.limit", 4),
    ("idtr.base", 16),
    ("idtr.limit", 4),
    ("cr0", 16),
    ("cr2", 16),
    ("cr3", 16),
    ("cr4", 16),
    ("cr8", 16),
    ("efer", 16),
    ("dr0", 16),
    ("dr1", 16),
    ("dr2", 16),
    ("dr3", 16),
    ("dr4", 16),
    ("dr5", 16),
    ("dr6", 16),
    ("dr7", 16),
    ("star", 16),
    ("lstar", 16),
    ("cstar", 16),
    ("fmask", 16),
    ("kernel_gs_base", 16),
    ("tsc_aux", 16),
    ("apic_base", 16),
    ("pat", 16),
    ("sysenter_cs", 16),
    ("sysenter_esp", 16),
    ("sysenter_eip", 16),
    ("misc_enable", 16),
    ("tsc_offset", 16),
];

fn snapshot(cpu: &Cpu, r: &mut [u64; NREGS]) {
    r[..16].copy_from_slice(&cpu.gpr);
    r[16] = cpu.rflags;
    for (i, s) in cpu.seg.iter().enumerate() {
        let b = 17 + 4 * i;
        r[b] = s.selector as u64;
        r[b + 1] = s.base;
        r[b + 2] = s.limit as u64;
        r[b + 3] = s.attr as u64;
    }
    r[41] = cpu.ldtr.selector as u64;
    r[42] = cpu.ldtr.base;
    r[43] = cpu.tr.selector as u64;
    r[44] = cpu.tr.base;
    r[45] = cpu.gdtr.base;
    r[46] = cpu.gdtr.limit as u64;
    r[47] = cpu.idtr.base;
    r[48] = cpu.idtr.limit as u64;
    r[49] = cpu.cr0;
    r[50] = cpu.cr2;
    r[51] = cpu.cr3;
    r[52] = cpu.cr4;
    r[53] = cpu.cr8;
    r[54] = cpu.efer;
    r[55..63].copy_from_slice(&cpu.dr);
    let m = &cpu.msr;
    r[63..76].copy_from_slice(&[
        m.star,
        m.lstar,
        m.cstar,
        m.fmask,
        m.kernel_gs_base,
        m.tsc_aux,
        m.apic_base,
        m.pat,
        m.sysenter_cs,
        m.sysenter_esp,
        m.sysenter_eip,
        m.misc_enable,
        m.tsc_offset,
    ]);
}

/// One register that an instruction changed: its index in [`REG_NAMES`] and new value.
#[derive(Debug, Clone, Copy)]
struct Change {
    reg: u8,
    value: u64,
}

/// One memory access (as [`crate::cpu::MemAccess`], which exists only with trace-hooks).
#[derive(Debug, Clone, Copy)]
struct Mem {
    la: u64,
    pa: u64,
    size: u8,
    write: bool,
    value: u64,
}

/// One exception or interrupt delivery attempt.
#[derive(Debug, Clone, Copy)]
struct Event {
    vector: u8,
    /// `FaultEvent::kind`: 0 exception, 1 external, 2 software, 3 icebp.
    source: u8,
    error_code: Option<u32>,
    cr2: Option<u64>,
    /// The RIP reported with it: the faulting instruction for a fault.
    rip: u64,
    delivered: bool,
}

impl Event {
    fn from_fault(e: &FaultEvent) -> Self {
        Event {
            vector: e.vector,
            source: match e.kind.as_str() {
                "exception" => 0,
                "external" => 1,
                "software" => 2,
                _ => 3,
            },
            error_code: e.error_code,
            cr2: e.cr2,
            rip: e.rip,
            delivered: e.delivered == Some(true),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An instruction executed (or faulted).
    Insn,
    /// Events delivered at an instruction boundary, before the next instruction.
    Boundary,
    /// The CPU was halted and virtual time skipped to `target`.
    Halt,
    /// From here on, another task runs (`pid`, `image`).
    Task,
}

/// One line of the trace, before formatting.
#[derive(Debug, Clone, Copy)]
struct Rec {
    kind: Kind,
    cpu: u32,
    cpl: u8,
    bitness: u8,
    nbytes: u8,
    /// The instruction raised a fault (it did not complete: no register changes).
    faulted: bool,
    /// CPL after the events (for the handler's symbol).
    target_cpl: u8,
    icount: u64,
    rip: u64,
    bytes: [u8; MAX_INSN_LEN],
    /// User image (index into [`GuestSymbols::user`]) and its load bias; `u32::MAX`: none.
    image: u32,
    /// The running task's PID; `u32::MAX`: none known.
    pid: u32,
    bias: u64,
    /// Where the events left RIP (the handler), or for `Halt` the icount woken at.
    target: u64,
    changes: (u32, u32),
    mems: (u32, u32),
    events: (u32, u32),
}

/// A batch of records and their variable-length parts; `text` holds them formatted when
/// the emulator thread formats.
#[derive(Default)]
struct Batch {
    recs: Vec<Rec>,
    changes: Vec<Change>,
    mems: Vec<Mem>,
    events: Vec<Event>,
    text: Vec<u8>,
}

impl Batch {
    fn clear(&mut self) {
        self.recs.clear();
        self.changes.clear();
        self.mems.clear();
        self.events.clear();
        self.text.clear();
    }
}

/// `(pid, image)` before any task is known.
const NO_TASK: (u32, u32) = (u32::MAX, u32::MAX);

/// Records per batch.
const BATCH: usize = 2048;
/// Batches in flight to the writer.
const IN_FLIGHT: usize = 8;

// ---- formatting -------------------------------------------------------------------------

/// Which table the disassembler's symbol resolver uses for the line being formatted.
#[derive(Clone)]
struct Scope {
    table: Arc<SymbolTable>,
    bias: u64,
}

/// Names branch targets and RIP-relative or absolute memory operands (never immediates).
struct Resolver {
    scope: Rc<RefCell<Scope>>,
    table: Arc<SymbolTable>,
}

impl SymbolResolver for Resolver {
    fn symbol(
        &mut self,
        instruction: &Instruction,
        _operand: u32,
        instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        let op = instruction_operand?;
        let wanted = match instruction.op_kind(op) {
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => true,
            OpKind::Memory => {
                instruction.is_ip_rel_memory_operand()
                    || (instruction.memory_base() == Register::None
                        && instruction.memory_index() == Register::None)
            }
            _ => false,
        };
        if !wanted {
            return None;
        }
        let bias = {
            let s = self.scope.borrow();
            if !Arc::ptr_eq(&s.table, &self.table) {
                self.table = s.table.clone();
            }
            s.bias
        };
        let (sym, _) = self.table.lookup(address.wrapping_sub(bias))?;
        Some(SymbolResult::with_str(
            sym.addr.wrapping_add(bias),
            sym.name.as_str(),
        ))
    }
}

/// Turns records into lines. Lives on one thread (the formatter is not `Send`).
struct LineFormatter {
    kernel: Arc<SymbolTable>,
    user: Vec<Arc<SymbolTable>>,
    /// The guest paths of `user`.
    paths: Vec<String>,
    empty: Arc<SymbolTable>,
    scope: Rc<RefCell<Scope>>,
    fmt: Box<dyn Formatter>,
    insn_text: String,
    /// Formatted symbol, bytes and disassembly by RIP (direct-mapped).
    cache: Vec<CachedText>,
}

const TEXT_CACHE_SLOTS: usize = 4096;

/// One entry of [`LineFormatter::cache`]: valid for exactly these inputs.
#[derive(Default)]
struct CachedText {
    valid: bool,
    rip: u64,
    bytes: [u8; MAX_INSN_LEN],
    nbytes: u8,
    bitness: u8,
    user: bool,
    image: u32,
    bias: u64,
    text: Vec<u8>,
}

impl LineFormatter {
    fn new(
        kernel: Arc<SymbolTable>,
        user: Vec<Arc<SymbolTable>>,
        paths: Vec<String>,
        syntax: Syntax,
    ) -> Self {
        let scope = Rc::new(RefCell::new(Scope {
            table: kernel.clone(),
            bias: 0,
        }));
        let resolver = Box::new(Resolver {
            scope: scope.clone(),
            table: kernel.clone(),
        });
        let fmt: Box<dyn Formatter> = match syntax {
            Syntax::Intel => Box::new(IntelFormatter::with_options(Some(resolver), None)),
            Syntax::Att => Box::new(GasFormatter::with_options(Some(resolver), None)),
            Syntax::Masm => Box::new(MasmFormatter::with_options(Some(resolver), None)),
        };
        LineFormatter {
            kernel,
            user,
            paths,
            empty: Arc::new(SymbolTable::default()),
            scope,
            fmt,
            insn_text: String::new(),
            cache: (0..TEXT_CACHE_SLOTS)
                .map(|_| CachedText::default())
                .collect(),
        }
    }

    /// The table (and bias) code at privilege level `cpl` is named from.
    fn table(&self, cpl: u8, image: u32, bias: u64) -> (&Arc<SymbolTable>, u64) {
        if cpl < 3 {
            (&self.kernel, 0)
        } else {
            match self.user.get(image as usize) {
                Some(t) => (t, bias),
                None => (&self.empty, 0),
            }
        }
    }

    fn symbol(&self, out: &mut Vec<u8>, addr: u64, cpl: u8, image: u32, bias: u64) {
        let (t, bias) = self.table(cpl, image, bias);
        if let Some((s, off)) = t.lookup(addr.wrapping_sub(bias)) {
            out.extend_from_slice(b" <");
            out.extend_from_slice(s.name.as_bytes());
            if off != 0 {
                out.extend_from_slice(b"+0x");
                hex(out, off, 0);
            }
            out.push(b'>');
        }
    }

    fn format_batch(&mut self, b: &Batch, out: &mut Vec<u8>) {
        for r in &b.recs {
            self.format(r, b, out);
        }
    }

    fn format(&mut self, r: &Rec, b: &Batch, out: &mut Vec<u8>) {
        dec(out, r.icount);
        out.extend_from_slice(b" cpu");
        dec(out, r.cpu as u64);
        out.extend_from_slice(match r.cpl {
            0 => b" k ",
            3 => b" u ",
            1 => b" 1 ",
            _ => b" 2 ",
        });
        hex(out, r.rip, 16);
        match r.kind {
            Kind::Halt => {
                self.symbol(out, r.rip, r.cpl, r.image, r.bias);
                out.extend_from_slice(b" -- halted until ");
                dec(out, r.target);
            }
            Kind::Task => {
                self.symbol(out, r.rip, r.cpl, r.image, r.bias);
                if r.pid == u32::MAX {
                    out.extend_from_slice(b" -- no task");
                } else {
                    out.extend_from_slice(b" -- task ");
                    dec(out, r.pid as u64);
                    out.push(b' ');
                    match self.paths.get(r.image as usize) {
                        Some(p) => out.extend_from_slice(p.as_bytes()),
                        None => out.push(b'?'),
                    }
                }
            }
            Kind::Boundary => {
                self.symbol(out, r.rip, r.cpl, r.image, r.bias);
                out.extend_from_slice(b" >> ");
                self.events(r, b, out);
            }
            Kind::Insn => {
                self.insn_cached(r, out);
                if !r.faulted {
                    let (s, e) = r.changes;
                    let changes = &b.changes[s as usize..e as usize];
                    if !changes.is_empty() {
                        out.push(b' ');
                    }
                    for c in changes {
                        let (name, width) = REG_NAMES[c.reg as usize];
                        out.push(b' ');
                        out.extend_from_slice(name.as_bytes());
                        out.push(b'=');
                        hex(out, c.value, width as usize);
                    }
                }
                if r.events.0 != r.events.1 {
                    out.extend_from_slice(b"  !");
                    self.events(r, b, out);
                }
            }
        }
        let (s, e) = r.mems;
        if s != e {
            out.push(b' ');
        }
        for m in &b.mems[s as usize..e as usize] {
            out.extend_from_slice(if m.write { b" [W " } else { b" [R " });
            hex(out, m.la, 16);
            out.extend_from_slice("→".as_bytes());
            hex(out, m.pa, 0);
            out.push(b' ');
            dec(out, m.size as u64);
            out.push(b'=');
            hex(out, m.value, 2 * m.size as usize);
            out.push(b']');
        }
        out.push(b'\n');
    }

    /// ` <symbol+off> BYTES  DISASSEMBLY` of an instruction line, from the cache when the
    /// same bytes ran at the same RIP with the same symbols before (loops: most lines).
    fn insn_cached(&mut self, r: &Rec, out: &mut Vec<u8>) {
        let user = r.cpl == 3;
        let (image, bias) = if user { (r.image, r.bias) } else { (0, 0) };
        let slot = ((r.rip ^ (r.rip >> 12)) as usize) & (TEXT_CACHE_SLOTS - 1);
        let e = &mut self.cache[slot];
        if e.valid
            && e.rip == r.rip
            && e.bytes == r.bytes
            && e.nbytes == r.nbytes
            && e.bitness == r.bitness
            && e.user == user
            && e.image == image
            && e.bias == bias
        {
            out.extend_from_slice(&e.text);
            return;
        }
        let mut text = std::mem::take(&mut self.cache[slot].text);
        text.clear();
        self.symbol(&mut text, r.rip, r.cpl, r.image, r.bias);
        text.push(b' ');
        self.insn(r, &mut text);
        out.extend_from_slice(&text);
        self.cache[slot] = CachedText {
            valid: true,
            rip: r.rip,
            bytes: r.bytes,
            nbytes: r.nbytes,
            bitness: r.bitness,
            user,
            image,
            bias,
            text,
        };
    }

    /// `BYTES  DISASSEMBLY`, or what can be said when the bytes are unreadable or invalid.
    fn insn(&mut self, r: &Rec, out: &mut Vec<u8>) {
        let bytes = &r.bytes[..r.nbytes as usize];
        let mut dec = Decoder::with_ip(r.bitness as u32, bytes, r.rip, DecoderOptions::NONE);
        let instr = dec.decode();
        let len = if instr.is_invalid() {
            bytes.len()
        } else {
            instr.len()
        };
        if len == 0 {
            out.extend_from_slice(b"??");
        }
        for (i, &b) in bytes[..len].iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            hex(out, b as u64, 2);
        }
        out.extend_from_slice(b"  ");
        if r.nbytes == 0 {
            out.extend_from_slice(b"(unreadable)");
        } else if instr.is_invalid() {
            out.extend_from_slice(b"(bad)");
        } else {
            {
                let (t, bias) = self.table(r.cpl, r.image, r.bias);
                let t = t.clone();
                let mut s = self.scope.borrow_mut();
                s.table = t;
                s.bias = bias;
            }
            self.insn_text.clear();
            self.fmt.format(&instr, &mut self.insn_text);
            out.extend_from_slice(self.insn_text.as_bytes());
        }
    }

    /// The events of `r`, then `→ handler`.
    fn events(&self, r: &Rec, b: &Batch, out: &mut Vec<u8>) {
        let (s, e) = r.events;
        for (i, ev) in b.events[s as usize..e as usize].iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            let name = vector_name(ev.vector);
            if name == "INT" {
                out.extend_from_slice(b"INT 0x");
                hex(out, ev.vector as u64, 2);
            } else {
                out.extend_from_slice(name.as_bytes());
            }
            if let Some(c) = ev.error_code {
                out.extend_from_slice(b" err=0x");
                hex(out, c as u64, 0);
            }
            if let Some(a) = ev.cr2 {
                out.extend_from_slice(b" cr2=");
                hex(out, a, 16);
            }
            if !ev.delivered {
                out.extend_from_slice(b" (not delivered)");
            }
        }
        out.extend_from_slice(" → ".as_bytes());
        hex(out, r.target, 16);
        self.symbol(out, r.target, r.target_cpl, r.image, r.bias);
    }
}

/// `v` in lower-case hex, zero-padded to `width` digits (0: as few as needed).
fn hex(out: &mut Vec<u8>, v: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = 16;
    let mut x = v;
    loop {
        i -= 1;
        buf[i] = DIGITS[(x & 0xf) as usize];
        x >>= 4;
        if x == 0 {
            break;
        }
    }
    for _ in (16 - i)..width.min(16) {
        out.push(b'0');
    }
    out.extend_from_slice(&buf[i..]);
}

/// `v` in decimal.
fn dec(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = 20;
    let mut x = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

// ---- the writer thread ------------------------------------------------------------------

/// The writer's result: the first write error, if any.
type WriterResult = io::Result<()>;

struct Writer {
    tx: Option<Sender<Batch>>,
    recycle: Receiver<Batch>,
    handle: Option<JoinHandle<WriterResult>>,
    /// Set by the writer when a write failed: tracing stops.
    failed: Arc<AtomicBool>,
}

impl Writer {
    fn spawn(
        mut out: Box<dyn Write + Send>,
        format_here: bool,
        kernel: Arc<SymbolTable>,
        user: Vec<Arc<SymbolTable>>,
        paths: Vec<String>,
        syntax: Syntax,
    ) -> io::Result<Self> {
        let (tx, rx) = bounded::<Batch>(IN_FLIGHT);
        let (back_tx, back_rx) = bounded::<Batch>(IN_FLIGHT + 2);
        let failed = Arc::new(AtomicBool::new(false));
        let failed2 = failed.clone();
        let handle = std::thread::Builder::new()
            .name("vmscope-trace".into())
            .spawn(move || -> WriterResult {
                let mut lf =
                    (!format_here).then(|| LineFormatter::new(kernel, user, paths, syntax));
                let mut text = Vec::new();
                let mut error = None;
                for mut b in rx {
                    if error.is_none() {
                        let r = match lf.as_mut() {
                            Some(lf) => {
                                text.clear();
                                lf.format_batch(&b, &mut text);
                                out.write_all(&text)
                            }
                            None => out.write_all(&b.text),
                        };
                        if let Err(e) = r {
                            failed2.store(true, Ordering::Relaxed);
                            error = Some(e);
                        }
                    }
                    b.clear();
                    let _ = back_tx.try_send(b);
                }
                match error {
                    Some(e) => Err(e),
                    None => out.flush(),
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            recycle: back_rx,
            handle: Some(handle),
            failed,
        })
    }

    fn send(&self, b: Batch) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(b);
        }
    }

    fn fresh(&self) -> Batch {
        self.recycle.try_recv().unwrap_or_else(|_| Batch {
            recs: Vec::with_capacity(BATCH),
            ..Batch::default()
        })
    }

    /// Close the channel and wait for the writer to flush.
    fn finish(&mut self) -> WriterResult {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the trace writer panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

// ---- the fault-sink tap -----------------------------------------------------------------

/// Sits in [`crate::bus::Bus::trace`]: collects deliveries while the tracer listens and
/// passes everything on to the sink that was there (`--fault-trace`, `--timeline`).
struct Tap {
    inner: Option<Box<dyn TraceSink>>,
    listening: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
    pending: Arc<AtomicBool>,
}

impl TraceSink for Tap {
    fn event(&mut self, e: &TraceEvent) {
        if let (TraceEvent::Delivery(e), true) = (e, self.listening.load(Ordering::Relaxed)) {
            if let Ok(mut v) = self.events.lock() {
                v.push(Event::from_fault(e));
                self.pending.store(true, Ordering::Relaxed);
            }
        }
        if let Some(s) = self.inner.as_mut() {
            s.event(e);
        }
    }
    fn finish(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(s) => s.finish(),
            None => Ok(()),
        }
    }
}

// ---- the tracing loop -------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before --trace-start.
    Waiting,
    Tracing,
    /// After --trace-stop, the limit, or a write error: the machine runs untraced.
    Done,
}

struct Tracer<'a> {
    syms: &'a GuestSymbols,
    start: Option<u64>,
    /// `--trace-start @N`.
    start_icount: Option<u64>,
    stop: Option<u64>,
    cpl: Option<u8>,
    pid: Option<u32>,
    range: Option<(u64, u64)>,
    limit: u64,
    lines: u64,
    phase: Phase,
    writer: Writer,
    batch: Batch,
    /// Formats on this thread when set (`VMSCOPE_TRACE_FORMAT=emulator`).
    local: Option<LineFormatter>,
    listening: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
    mem_buf: Vec<crate::cpu::MemAccess>,
    before: [u64; NREGS],
    after: [u64; NREGS],
    /// `before` is the register file now (the last traced instruction's `after`).
    before_valid: bool,
    /// Set by the tap when it has events for [`Self::collect`].
    pending: Arc<AtomicBool>,
    /// `(pid, image)` of the last line (a change gets a task line).
    last_task: (u32, u32),
    /// The current task's executable and its index in [`GuestSymbols::user`].
    exe: Option<String>,
    exe_image: Option<usize>,
}

/// Where a line happens: what the filters look at.
#[derive(Clone, Copy)]
struct Here {
    icount: u64,
    rip: u64,
    cpl: u8,
    task: Option<Task>,
}

impl Tracer<'_> {
    fn here(&mut self, m: &Machine) -> Here {
        Here {
            icount: m.cpu.icount,
            rip: m.cpu.rip,
            cpl: m.cpu.cpl,
            task: self.current_task(m),
        }
    }

    /// The task on the CPU, as the guest kernel's annotations (`crate::ostrace`) describe
    /// it, with its executable's symbols found by path (remembered while it stays the same).
    fn current_task(&mut self, m: &Machine) -> Option<Task> {
        let t = m.bus.os.current()?;
        if self.exe.as_deref() != t.exe.as_deref() {
            self.exe.clone_from(&t.exe);
            self.exe_image = t.exe.as_deref().and_then(|e| self.syms.user_index(e));
        }
        Some(Task {
            pid: t.pid,
            image: self.exe_image,
            load_bias: t.load_bias,
        })
    }

    fn passes(&self, h: &Here) -> bool {
        self.cpl.is_none_or(|c| c == h.cpl)
            && self.range.is_none_or(|(a, b)| (a..b).contains(&h.rip))
            && self.pid.is_none_or(|p| h.task.is_some_and(|t| t.pid == p))
    }

    fn listen(&mut self, m: &mut Machine) {
        self.listening.store(true, Ordering::Relaxed);
        self.mem_buf.clear();
        #[cfg(feature = "trace-hooks")]
        {
            m.cpu.mem_log = Some(std::mem::take(&mut self.mem_buf));
        }
        #[cfg(not(feature = "trace-hooks"))]
        let _ = m;
    }

    /// Stop listening; the events and memory accesses since [`Self::listen`] go into the
    /// batch. Returns their index ranges.
    fn collect(&mut self, m: &mut Machine) -> ((u32, u32), (u32, u32)) {
        self.listening.store(false, Ordering::Relaxed);
        #[cfg(feature = "trace-hooks")]
        {
            self.mem_buf = m.cpu.mem_log.take().unwrap_or_default();
        }
        #[cfg(not(feature = "trace-hooks"))]
        let _ = m;
        let b = &mut self.batch;
        let ms = b.mems.len() as u32;
        b.mems.extend(self.mem_buf.iter().map(|a| Mem {
            la: a.la.as_u64(),
            pa: a.pa.as_u64(),
            size: a.size,
            write: a.write,
            value: a.value,
        }));
        let es = b.events.len() as u32;
        if self.pending.swap(false, Ordering::Relaxed) {
            if let Ok(mut v) = self.events.lock() {
                b.events.append(&mut v);
            }
        }
        ((es, b.events.len() as u32), (ms, b.mems.len() as u32))
    }

    fn base_rec(&self, kind: Kind, m: &Machine, h: &Here) -> Rec {
        let pid = h.task.map_or(u32::MAX, |t| t.pid);
        let (image, bias) = match h.task {
            Some(Task {
                image: Some(i),
                load_bias,
                ..
            }) => (i as u32, load_bias),
            Some(_) => (u32::MAX, 0),
            None => (self.syms.init.map_or(u32::MAX, |i| i as u32), 0),
        };
        Rec {
            kind,
            cpu: m.cpu.id,
            cpl: h.cpl,
            bitness: 64,
            nbytes: 0,
            faulted: false,
            target_cpl: m.cpu.cpl,
            icount: h.icount,
            rip: h.rip,
            bytes: [0; MAX_INSN_LEN],
            image,
            pid,
            bias,
            target: m.cpu.rip,
            changes: (0, 0),
            mems: (0, 0),
            events: (0, 0),
        }
    }

    /// Add a line (after a task line if the task changed); tracing ends at the limit.
    fn push(&mut self, r: Rec) {
        let task = if r.pid == u32::MAX {
            NO_TASK
        } else {
            (r.pid, r.image)
        };
        if task != self.last_task {
            self.last_task = task;
            if task != NO_TASK || self.lines > 0 {
                let t = Rec {
                    kind: Kind::Task,
                    changes: (0, 0),
                    mems: (0, 0),
                    events: (0, 0),
                    ..r
                };
                self.batch.recs.push(t);
                self.lines += 1;
                if self.lines >= self.limit {
                    self.phase = Phase::Done;
                    return;
                }
            }
        }
        self.batch.recs.push(r);
        self.lines += 1;
        if self.lines >= self.limit {
            self.phase = Phase::Done;
        }
        if self.batch.recs.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.recs.is_empty() {
            return;
        }
        let mut next = self.writer.fresh();
        std::mem::swap(&mut next, &mut self.batch);
        if let Some(lf) = self.local.as_mut() {
            let mut text = std::mem::take(&mut next.text);
            lf.format_batch(&next, &mut text);
            next.text = text;
            next.recs.clear();
        }
        self.writer.send(next);
        if self.writer.failed.load(Ordering::Relaxed) {
            self.phase = Phase::Done;
        }
    }

    /// One run-loop iteration, traced. `Some` when the machine stopped.
    fn step(&mut self, m: &mut Machine) -> Option<Outcome> {
        let tracing = self.phase == Phase::Tracing;
        // `before` holds the registers after the last traced instruction; anything else
        // that runs may change them.
        let mut before_valid = std::mem::take(&mut self.before_valid);
        // Events at the boundary (interrupt delivery before the next instruction).
        if m.cpu.icount >= m.bus.next_event {
            before_valid = false;
            if tracing {
                let h = self.here(m);
                self.listen(m);
                let stop = m.service_due();
                let (events, mems) = self.collect(m);
                if events.0 != events.1 && self.passes(&h) {
                    let mut r = self.base_rec(Kind::Boundary, m, &h);
                    r.events = events;
                    r.mems = mems;
                    self.push(r);
                } else {
                    self.batch.events.truncate(events.0 as usize);
                    self.batch.mems.truncate(mems.0 as usize);
                }
                if stop.is_some() {
                    return stop;
                }
                if self.phase != Phase::Tracing {
                    // The limit was reached: the instruction still runs, as untraced.
                    return m.execute();
                }
            } else if let Some(o) = m.service_due() {
                return Some(o);
            }
        }
        let halted = m.cpu.halted;
        if self.phase == Phase::Waiting
            && !halted
            && (Some(m.cpu.rip) == self.start
                || self.start_icount.is_some_and(|n| m.cpu.icount >= n))
        {
            self.phase = Phase::Tracing;
        }
        if self.phase != Phase::Tracing {
            return m.execute();
        }
        let h = self.here(m);
        if !self.passes(&h) {
            let o = m.execute();
            if !halted && Some(h.rip) == self.stop {
                self.phase = Phase::Done;
            }
            return o;
        }
        if halted {
            let o = m.execute();
            if m.cpu.icount != h.icount {
                let mut r = self.base_rec(Kind::Halt, m, &h);
                r.target = m.cpu.icount;
                self.push(r);
            }
            return o;
        }
        let mut r = self.base_rec(Kind::Insn, m, &h);
        r.bitness = m.cpu.bitness() as u8;
        r.nbytes = fetch_bytes(m, h.rip, &mut r.bytes);
        if !before_valid {
            snapshot(&m.cpu, &mut self.before);
        }
        self.listen(m);
        let o = m.execute();
        let (events, mems) = self.collect(m);
        r.events = events;
        r.mems = mems;
        r.target = m.cpu.rip;
        r.target_cpl = m.cpu.cpl;
        let b = &mut self.batch;
        r.faulted = b.events[events.0 as usize..events.1 as usize]
            .iter()
            .any(|e| e.source == 0 && e.rip == h.rip);
        if !r.faulted {
            snapshot(&m.cpu, &mut self.after);
            let s = b.changes.len() as u32;
            // The general registers and RFLAGS change often, the rest rarely.
            let n = if self.before[17..] == self.after[17..] {
                17
            } else {
                NREGS
            };
            for i in 0..n {
                if self.before[i] != self.after[i] {
                    b.changes.push(Change {
                        reg: i as u8,
                        value: self.after[i],
                    });
                }
            }
            r.changes = (s, b.changes.len() as u32);
            std::mem::swap(&mut self.before, &mut self.after);
            self.before_valid = true;
        }
        self.push(r);
        if Some(h.rip) == self.stop {
            self.phase = Phase::Done;
        }
        o
    }
}

/// The bytes at `rip` (CS-relative outside 64-bit mode), read without side effects: a
/// page walk that sets no accessed bits and RAM only (no MMIO). Returns how many were
/// readable.
fn fetch_bytes(m: &mut Machine, rip: u64, out: &mut [u8; MAX_INSN_LEN]) -> u8 {
    let cs_base = if m.cpu.mode64() {
        0
    } else {
        m.cpu.seg[SegReg::Cs as usize].base
    };
    let la = cs_base.wrapping_add(rip);
    let mut n = 0usize;
    while n < MAX_INSN_LEN {
        let a = la.wrapping_add(n as u64);
        let Some(pa) = m.cpu.debug_translate(&mut m.bus, a) else {
            break;
        };
        let in_page = (crate::addr::PAGE_SIZE - (a & (crate::addr::PAGE_SIZE - 1))) as usize;
        let k = in_page.min(MAX_INSN_LEN - n);
        match m.bus.mem.slice(pa, k) {
            Some(s) => out[n..n + k].copy_from_slice(s),
            None => break,
        }
        n += k;
    }
    n as u8
}

/// Run `m` to the end with the instruction trace `args` describes. `kernel_elf` and
/// `initrd` give the symbols (the kernel's, and those of the programs in the initramfs).
pub fn run(
    m: &mut Machine,
    args: &TraceArgs,
    kernel_elf: &[u8],
    initrd: Option<&[u8]>,
) -> Result<Outcome, String> {
    let Some(path) = &args.trace else {
        return Ok(m.run());
    };
    if !cfg!(feature = "trace-hooks") {
        return Err(
            "--trace needs vmscope built with the trace-hooks feature (a default feature)".into(),
        );
    }
    let mut syms = GuestSymbols::new(kernel_elf, initrd);
    if let Some(path) = &args.kernel_symbols {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read kernel symbols {}: {e}", path.display()))?;
        let table = SymbolTable::from_file_bytes(&bytes)
            .map_err(|e| format!("kernel symbols {}: {e}", path.display()))?;
        if table.is_empty() {
            return Err(format!("kernel symbols {}: no symbols", path.display()));
        }
        syms.kernel = Arc::new(table);
    }
    let place = |s: &Option<String>| s.as_deref().map(|s| syms.place(s).map(|p| p.0)).transpose();
    let (start, start_icount) = match args.trace_start.as_deref().map(|s| s.strip_prefix('@')) {
        Some(Some(n)) => {
            let n = n
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("--trace-start @{n}: not an instruction count"))?;
            (None, Some(n))
        }
        _ => (place(&args.trace_start)?, None),
    };
    let stop = place(&args.trace_stop)?;
    let range = args
        .trace_range
        .as_deref()
        .map(|r| syms.range(r))
        .transpose()?;
    let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout()))
    } else {
        let f = std::fs::File::create(path)
            .map_err(|e| format!("cannot create trace {}: {e}", path.display()))?;
        Box::new(BufWriter::with_capacity(1 << 16, f))
    };
    let format_here = std::env::var("VMSCOPE_TRACE_FORMAT").as_deref() == Ok("emulator");
    let user: Vec<Arc<SymbolTable>> = syms.user.iter().map(|(_, t)| t.clone()).collect();
    let paths: Vec<String> = syms.user.iter().map(|(p, _)| p.clone()).collect();
    let writer = Writer::spawn(
        out,
        format_here,
        syms.kernel.clone(),
        user.clone(),
        paths.clone(),
        args.syntax,
    )
    .map_err(|e| format!("cannot start the trace writer: {e}"))?;
    let listening = Arc::new(AtomicBool::new(false));
    let events = Arc::new(Mutex::new(Vec::new()));
    let pending = Arc::new(AtomicBool::new(false));
    let inner = m.bus.trace.take();
    m.bus.trace = Some(Box::new(Tap {
        inner,
        listening: listening.clone(),
        events: events.clone(),
        pending: pending.clone(),
    }));
    let mut t = Tracer {
        syms: &syms,
        start,
        start_icount,
        stop,
        cpl: args.trace_cpl,
        pid: args.trace_pid,
        range,
        limit: args.trace_limit.unwrap_or(u64::MAX),
        lines: 0,
        phase: if start.is_some() || start_icount.is_some() {
            Phase::Waiting
        } else {
            Phase::Tracing
        },
        writer,
        batch: Batch::default(),
        local: format_here
            .then(|| LineFormatter::new(syms.kernel.clone(), user, paths, args.syntax)),
        listening,
        events,
        mem_buf: Vec::new(),
        before: [0; NREGS],
        after: [0; NREGS],
        before_valid: false,
        pending,
        exe: None,
        exe_image: None,
        last_task: NO_TASK,
    };
    if t.limit == 0 {
        t.phase = Phase::Done;
    }
    let outcome = loop {
        if t.phase == Phase::Done {
            break m.run();
        }
        if let Some(o) = t.step(m) {
            break o;
        }
    };
    t.flush();
    let path_shown = if path.as_os_str() == "-" {
        "stdout".to_string()
    } else {
        path.display().to_string()
    };
    match t.writer.finish() {
        Ok(()) => Ok(outcome),
        // `--trace - | head`: the reader had enough.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && path.as_os_str() == "-" => Ok(outcome),
        Err(e) => Err(format!("writing the trace to {path_shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initramfs::CpioWriter;

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        hex(&mut v, 0, 0);
        v.push(b' ');
        hex(&mut v, 0xab, 4);
        v.push(b' ');
        hex(&mut v, u64::MAX, 16);
        v.push(b' ');
        hex(&mut v, 0x1234, 2);
        v.push(b' ');
        dec(&mut v, 0);
        v.push(b' ');
        dec(&mut v, u64::MAX);
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "0 00ab ffffffffffffffff 1234 0 18446744073709551615"
        );
    }

    fn guest_symbols() -> GuestSymbols {
        let mut w = CpioWriter::new();
        w.file("/bin/hello", 0o755, crate::guest::program("hello").unwrap())
            .unwrap();
        w.file("/bin/not-elf", 0o755, b"#!/bin/sh\n").unwrap();
        w.file(crate::initramfs::INIT_FILE, 0o644, b"/bin/hello")
            .unwrap();
        GuestSymbols::new(crate::guest::KERNEL, Some(&w.finish()))
    }

    #[test]
    fn symbols_of_the_kernel_and_the_initramfs() {
        let s = guest_symbols();
        assert!(s.kernel.find("kernel_main").is_some());
        assert_eq!(s.user.len(), 1, "only ELF files");
        assert_eq!(s.user[0].0, "/bin/hello");
        assert_eq!(s.init, Some(0));
        let (main, size) = s.place("__vmrt_main").unwrap();
        assert!(size > 0 && (0x40_0000..0x50_0000).contains(&main));
        assert_eq!(s.place("0x401000").unwrap(), (0x401000, 0));
        assert_eq!(s.place("401000").unwrap(), (0x401000, 0));
        assert!(s.place("no_such_thing").is_err());
        assert_eq!(s.range("1000-2000").unwrap(), (0x1000, 0x2000));
        assert_eq!(s.range("__vmrt_main").unwrap(), (main, main + size));
        assert!(s.range("2000-1000").is_err());
        // Anything that is not a cpio archive has no programs.
        let none = GuestSymbols::new(crate::guest::KERNEL, Some(b"garbage"));
        assert!(none.user.is_empty() && none.init.is_none());
    }

    fn rec(kind: Kind, rip: u64, bytes: &[u8]) -> Rec {
        let mut b = [0; MAX_INSN_LEN];
        b[..bytes.len()].copy_from_slice(bytes);
        Rec {
            kind,
            cpu: 0,
            cpl: 0,
            bitness: 64,
            nbytes: bytes.len() as u8,
            faulted: false,
            target_cpl: 0,
            icount: 7,
            rip,
            bytes: b,
            image: u32::MAX,
            pid: u32::MAX,
            bias: 0,
            target: 0,
            changes: (0, 0),
            mems: (0, 0),
            events: (0, 0),
        }
    }

    fn format(b: &Batch) -> String {
        let kernel = Arc::new(SymbolTable::from_symbols([(0x1000, 0x100, "func")]));
        let mut lf = LineFormatter::new(kernel, Vec::new(), Vec::new(), Syntax::Intel);
        let mut out = Vec::new();
        lf.format_batch(b, &mut out);
        // Twice: the second time from the cache of formatted instructions.
        let first = String::from_utf8(out.clone()).unwrap();
        out.clear();
        lf.format_batch(b, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), first);
        first
    }

    #[test]
    fn line_formats() {
        let mut b = Batch::default();
        // push rbp: rsp changed, one write.
        let mut r = rec(Kind::Insn, 0x1004, &[0x55]);
        b.changes.push(Change {
            reg: 4,
            value: 0xff8,
        });
        r.changes = (0, 1);
        b.mems.push(Mem {
            la: 0xff8,
            pa: 0x5ff8,
            size: 8,
            write: true,
            value: 0x1234,
        });
        r.mems = (0, 1);
        b.recs.push(r);
        // A faulting store: the event, no register changes.
        let mut r = rec(Kind::Insn, 0x1005, &[0x48, 0x89, 0x07]);
        b.changes.push(Change { reg: 0, value: 1 });
        r.changes = (1, 2);
        r.faulted = true;
        b.events.push(Event {
            vector: 14,
            source: 0,
            error_code: Some(2),
            cr2: Some(0x2000),
            rip: 0x1005,
            delivered: true,
        });
        r.events = (0, 1);
        r.target = 0x1080;
        b.recs.push(r);
        // Unreadable, undecodable, outside any symbol, user mode.
        b.recs.push(rec(Kind::Insn, 0x9000, &[]));
        let mut r = rec(Kind::Insn, 0x9000, &[0x06]);
        r.cpl = 3;
        b.recs.push(r);
        // An interrupt at the boundary, a halt, a task change.
        let mut r = rec(Kind::Boundary, 0x1010, &[]);
        b.events.push(Event {
            vector: 0xec,
            source: 1,
            error_code: None,
            cr2: None,
            rip: 0x1010,
            delivered: true,
        });
        r.events = (1, 2);
        r.target = 0x1000;
        b.recs.push(r);
        let mut r = rec(Kind::Halt, 0x1010, &[]);
        r.target = 5000;
        b.recs.push(r);
        let mut r = rec(Kind::Task, 0x1010, &[]);
        r.pid = 3;
        b.recs.push(r);
        assert_eq!(
            format(&b),
            "7 cpu0 k 0000000000001004 <func+0x4> 55  push rbp  rsp=0000000000000ff8  [W 0000000000000ff8→5ff8 8=0000000000001234]\n\
             7 cpu0 k 0000000000001005 <func+0x5> 48 89 07  mov [rdi],rax  !#PF err=0x2 cr2=0000000000002000 → 0000000000001080 <func+0x80>\n\
             7 cpu0 k 0000000000009000 ??  (unreadable)\n\
             7 cpu0 u 0000000000009000 06  (bad)\n\
             7 cpu0 k 0000000000001010 <func+0x10> >> INT 0xec → 0000000000001000 <func>\n\
             7 cpu0 k 0000000000001010 <func+0x10> -- halted until 5000\n\
             7 cpu0 k 0000000000001010 <func+0x10> -- task 3 ?\n"
        );
    }
}
