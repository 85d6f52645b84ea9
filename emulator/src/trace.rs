//! The fault trace: one event per exception or interrupt delivery attempt, per instruction
//! that changes translations (CR3/CR4 writes, INVLPG, INVPCID), and per guest kernel
//! annotation (`ostrace`: fault outcomes, process events, reclaim), written as JSON Lines
//! or text (`--fault-trace FILE`); and the converter that turns QEMU's `-d int` log into
//! the same delivery events so the two machines can be compared.
//!
//! Field names are stable (documented in README.md, "Fault trace"). Addresses are hex
//! strings so that 64-bit values survive JSON readers that use doubles.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cpu::exception::{has_error_code, vector_name};
use crate::interrupts::EventSource;
use crate::ostrace::{self, Annotation};

/// One delivery attempt. Fields that a source cannot know (QEMU's log has no instruction
/// count, IST index or new stack pointer) are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Instructions retired before the event (the virtual clock).
    pub icount: Option<u64>,
    pub cpu: u32,
    pub vector: u8,
    /// SDM mnemonic ("#PF") or "INT".
    pub name: String,
    /// "exception", "external" (interrupt or NMI), "software" (INT n/INT3/INTO) or "icebp".
    pub kind: String,
    pub error_code: Option<u32>,
    /// The faulting linear address, for #PF only.
    #[serde(with = "hex_opt")]
    pub cr2: Option<u64>,
    /// CS selector and RIP where the event happened: the faulting instruction, the INT
    /// instruction, or (traps and interrupts) the next instruction to run.
    pub cs: u16,
    #[serde(with = "hex")]
    pub rip: u64,
    /// Privilege level and stack pointer when the event happened.
    pub cpl: u8,
    #[serde(with = "hex")]
    pub rsp: u64,
    /// Whether delivery completed (false: it faulted, and the next event is the result).
    pub delivered: Option<bool>,
    /// RSP after the frame was pushed: which stack the handler runs on.
    #[serde(with = "hex_opt")]
    pub stack: Option<u64>,
    /// IST index used by the gate (0: none).
    pub ist: Option<u8>,
    /// The task that was running (from the guest's annotations; vmscope only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
}

impl FaultEvent {
    pub fn kind_name(source: EventSource) -> &'static str {
        match source {
            EventSource::Exception => "exception",
            EventSource::External => "external",
            EventSource::Software => "software",
            EventSource::Icebp => "icebp",
        }
    }

    /// The fields both vmscope and QEMU's log provide, for comparing the two.
    pub fn comparable(&self) -> (u8, Option<u32>, Option<u64>, u16, u64, u8, u64) {
        (
            self.vector,
            self.error_code,
            self.cr2,
            self.cs,
            self.rip,
            self.cpl,
            self.rsp,
        )
    }
}

/// Everything the fault trace records, one JSON object per line with an `"event"` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    /// An exception or interrupt delivery attempt (hardware).
    Delivery(FaultEvent),
    /// An instruction that changes translations: CR3/CR4 writes, INVLPG, INVPCID.
    Mmu(MmuEvent),
    /// What the guest kernel reported through the trace port (`ostrace`).
    Os(OsEvent),
}

impl TraceEvent {
    pub fn icount(&self) -> Option<u64> {
        match self {
            TraceEvent::Delivery(e) => e.icount,
            TraceEvent::Mmu(e) => Some(e.icount),
            TraceEvent::Os(e) => Some(e.icount),
        }
    }
}

/// A CR3/CR4 write, INVLPG or INVPCID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmuEvent {
    pub icount: u64,
    pub cpu: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// "cr3", "cr4", "invlpg" or "invpcid".
    pub op: String,
    #[serde(with = "hex")]
    pub rip: u64,
    /// The new CR3/CR4 value, the INVLPG address, or the INVPCID descriptor's address.
    #[serde(with = "hex")]
    pub value: u64,
    /// The register's previous value (CR writes); the INVPCID type.
    #[serde(default, with = "hex_opt", skip_serializing_if = "Option::is_none")]
    pub old: Option<u64>,
}

/// A guest kernel annotation. `what` says which; the other fields are present when they
/// apply (see README, "Fault trace").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsEvent {
    pub icount: u64,
    pub cpu: u32,
    pub pid: u32,
    pub comm: String,
    /// fault, fork, exec, exit, signal, switch, syscall, sysret, reclaim, writeback.
    pub what: String,
    /// fault: the faulting address; signal: si_addr; reclaim: the virtual address.
    #[serde(default, with = "hex_opt", skip_serializing_if = "Option::is_none")]
    pub addr: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    #[serde(default, with = "hex_opt", skip_serializing_if = "Option::is_none")]
    pub rip: Option<u64>,
    /// fault: demand_zero, zero_page, file_page, cow_copy, cow_reuse, swap_in, spurious,
    /// sigsegv_maperr, sigsegv_accerr, sigbus, fixup_efault; signal: handler, kill, core,
    /// stop, continue, ignore; reclaim: swap_out, page_cache_evict, oom_kill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// fault: the stack VMA grew first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_grew: Option<bool>,
    /// fault: the page had to be read from the disk (a major fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<bool>,
    /// fork: the new PID; switch: the next PID; reclaim (oom_kill): the victim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_pid: Option<u32>,
    /// exec: the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// exec: entry point.
    #[serde(default, with = "hex_opt", skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
    /// exit: the wait status; signal: the signal number; syscall/sysret: the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// syscall/sysret: the system call's name; signal: SIGSEGV etc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// sysret: the return value; signal: si_code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// reclaim: the page frame number.
    #[serde(default, with = "hex_opt", skip_serializing_if = "Option::is_none")]
    pub pfn: Option<u64>,
}

/// Where trace events go.
pub trait TraceSink: Send {
    fn event(&mut self, e: &TraceEvent);
    /// Flush; reports the first write error seen.
    fn finish(&mut self) -> io::Result<()>;
}

/// Which events a fault trace keeps: all but system call entries and returns (which the
/// timeline shows), so that a fault trace stays about memory.
pub fn in_fault_trace(e: &TraceEvent) -> bool {
    !matches!(e, TraceEvent::Os(o) if o.what == "syscall" || o.what == "sysret")
}

/// JSON Lines to a file or any other writer.
pub struct JsonlSink {
    out: Box<dyn Write + Send>,
    error: Option<io::Error>,
}

impl JsonlSink {
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(Box::new(BufWriter::new(File::create(path)?))))
    }
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonlSink { out, error: None }
    }
}

impl TraceSink for JsonlSink {
    fn event(&mut self, e: &TraceEvent) {
        if self.error.is_some() || !in_fault_trace(e) {
            return;
        }
        let r = serde_json::to_writer(&mut self.out, e)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(err) = r {
            self.error = Some(err);
        }
    }
    fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

/// The human format: one line per event (see [`format_event`]).
pub struct TextSink {
    out: Box<dyn Write + Send>,
    error: Option<io::Error>,
}

impl TextSink {
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(Box::new(BufWriter::new(File::create(path)?))))
    }
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        TextSink { out, error: None }
    }
}

impl TraceSink for TextSink {
    fn event(&mut self, e: &TraceEvent) {
        if self.error.is_some() || !in_fault_trace(e) {
            return;
        }
        if let Err(err) = writeln!(self.out, "{}", format_event(e)) {
            self.error = Some(err);
        }
    }
    fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

/// Several sinks fed with the same events (fault trace and timeline together).
pub struct Tee(pub Vec<Box<dyn TraceSink>>);

impl TraceSink for Tee {
    fn event(&mut self, e: &TraceEvent) {
        for s in &mut self.0 {
            s.event(e);
        }
    }
    fn finish(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        for s in &mut self.0 {
            let r = s.finish();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// Collects events in memory (tests).
#[derive(Default)]
pub struct VecSink(pub Vec<TraceEvent>);

impl TraceSink for VecSink {
    fn event(&mut self, e: &TraceEvent) {
        self.0.push(e.clone());
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Parse a JSON Lines trace.
pub fn read_jsonl(text: &str) -> Result<Vec<TraceEvent>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// The delivery events of a trace, for comparisons with QEMU's log (which has only those).
pub fn deliveries(events: &[TraceEvent]) -> Vec<FaultEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Delivery(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// Who an event concerns, as `comm[pid]`, or `-` for none.
fn who(pid: Option<u32>, comm: Option<&str>) -> String {
    match (pid, comm) {
        (Some(p), Some(c)) => format!("{c}[{p}]"),
        (Some(p), None) => format!("[{p}]"),
        _ => "-".to_string(),
    }
}

/// Page-fault error code bits as letters: P (protection) or N (not present), W/R, U/S,
/// then RSVD, I (fetch), PK, SS when set.
pub fn pf_error_letters(code: u32) -> String {
    let mut s = String::new();
    s.push(if code & 1 != 0 { 'P' } else { 'N' });
    s.push(if code & 2 != 0 { 'W' } else { 'R' });
    s.push(if code & 4 != 0 { 'U' } else { 'S' });
    for (bit, name) in [(3, " RSVD"), (4, " I"), (5, " PK"), (6, " SS")] {
        if code & (1 << bit) != 0 {
            s += name;
        }
    }
    s
}

/// The human line for one event: icount, CPU, who, then what happened.
pub fn format_event(e: &TraceEvent) -> String {
    let ic = |i: Option<u64>| i.map_or("-".to_string(), |i| i.to_string());
    match e {
        TraceEvent::Delivery(d) => {
            let mut s = format!(
                "{:>12} cpu{} {:<16} {:<5} {}",
                ic(d.icount),
                d.cpu,
                who(d.pid, d.comm.as_deref()),
                if d.vector < 32 || d.kind != "external" {
                    d.name.clone()
                } else {
                    format!("INT {:#04x}", d.vector)
                },
                d.kind
            );
            if let Some(c) = d.error_code {
                if d.vector == crate::cpu::exception::vector::PF {
                    s += &format!(" err={c:#x} ({})", pf_error_letters(c));
                } else {
                    s += &format!(" err={c:#x}");
                }
            }
            if let Some(a) = d.cr2 {
                s += &format!(" addr={a:#x}");
            }
            s += &format!(
                " at {:#06x}:{:#x} cpl{} rsp={:#x}",
                d.cs, d.rip, d.cpl, d.rsp
            );
            match (d.delivered, d.ist, d.stack) {
                (Some(false), _, _) => s += " NOT DELIVERED",
                (_, Some(ist), Some(st)) if ist != 0 => s += &format!(" -> ist{ist} {st:#x}"),
                (_, _, Some(st)) => s += &format!(" -> {st:#x}"),
                _ => {}
            }
            s
        }
        TraceEvent::Mmu(m) => {
            let mut s = format!(
                "{:>12} cpu{} {:<16} {:<5} {:#x}",
                m.icount,
                m.cpu,
                who(m.pid, m.comm.as_deref()),
                m.op,
                m.value
            );
            if let Some(o) = m.old {
                s += &format!(" (was {o:#x})");
            }
            s += &format!(" at {:#x}", m.rip);
            s
        }
        TraceEvent::Os(o) => {
            let head = format!(
                "{:>12} cpu{} {:<16} {:<5}",
                o.icount,
                o.cpu,
                who(Some(o.pid), Some(&o.comm)),
                o.what
            );
            let mut s = head;
            let opt_hex = |v: Option<u64>| v.map_or("-".into(), |v| format!("{v:#x}"));
            match o.what.as_str() {
                "fault" => {
                    s += &format!(
                        " {} {} at {} -> {}",
                        opt_hex(o.addr),
                        o.error_code.map_or("-".into(), pf_error_letters),
                        opt_hex(o.rip),
                        o.outcome.as_deref().unwrap_or("-")
                    );
                    if o.stack_grew == Some(true) {
                        s += " (stack grew)";
                    }
                    if o.major == Some(true) {
                        s += " (major)";
                    }
                }
                "fork" => s += &format!(" child {}", o.other_pid.unwrap_or(0)),
                "writeback" => {
                    s += &format!(
                        " {} {} pages",
                        o.outcome.as_deref().unwrap_or("-"),
                        o.number.unwrap_or(0)
                    )
                }
                "exec" => {
                    s += &format!(
                        " {} entry {}",
                        o.path.as_deref().unwrap_or("?"),
                        opt_hex(o.entry)
                    )
                }
                "exit" => s += &format!(" status {}", opt_hex(o.number)),
                "signal" => {
                    s += &format!(
                        " {} code {} addr {} -> {}",
                        o.name.as_deref().unwrap_or("?"),
                        o.value.unwrap_or(0),
                        opt_hex(o.addr),
                        o.outcome.as_deref().unwrap_or("-")
                    )
                }
                "switch" => s += &format!(" -> {}", o.other_pid.unwrap_or(0)),
                "syscall" => s += &format!(" {}", o.name.as_deref().unwrap_or("?")),
                "sysret" => {
                    s += &format!(
                        " {} = {}",
                        o.name.as_deref().unwrap_or("?"),
                        o.value.unwrap_or(0)
                    )
                }
                "reclaim" => {
                    s += &format!(
                        " {} pfn {} addr {}",
                        o.outcome.as_deref().unwrap_or("-"),
                        opt_hex(o.pfn),
                        opt_hex(o.addr)
                    );
                    if let Some(v) = o.other_pid {
                        s += &format!(" victim {v}");
                    }
                }
                _ => {}
            }
            s
        }
    }
}

/// The trace event for a guest annotation retired at `icount`.
pub fn os_event(a: &Annotation, icount: u64, cpu: u32) -> OsEvent {
    let [a0, a1, a2, a3] = a.args;
    let mut e = OsEvent {
        icount,
        cpu,
        pid: a.pid,
        comm: a.comm.clone(),
        ..Default::default()
    };
    let what = match a.kind {
        ostrace::kind::FAULT => {
            e.addr = Some(a0);
            e.error_code = Some(a1 as u32);
            e.rip = Some(a2);
            e.outcome = Some(ostrace::outcome::name(a3).to_string());
            e.stack_grew = (a3 & ostrace::outcome::STACK_GREW != 0).then_some(true);
            e.major = (a3 & ostrace::outcome::MAJOR != 0).then_some(true);
            "fault"
        }
        ostrace::kind::FORK => {
            e.other_pid = Some(a0 as u32);
            "fork"
        }
        ostrace::kind::EXEC => {
            e.entry = Some(a0);
            e.path = Some(a.text.clone());
            "exec"
        }
        ostrace::kind::EXIT => {
            e.number = Some(a0);
            "exit"
        }
        ostrace::kind::SIGNAL => {
            e.number = Some(a0);
            e.name = Some(signal_name(a0).to_string());
            e.value = Some(a1 as i64);
            e.addr = Some(a2);
            e.outcome = Some(ostrace::sigaction::name(a3).to_string());
            "signal"
        }
        ostrace::kind::SWITCH => {
            e.other_pid = Some(a1 as u32);
            "switch"
        }
        ostrace::kind::SYSCALL | ostrace::kind::SYSRET => {
            e.number = Some(a0);
            e.name = Some(syscall_name(a0));
            if a.kind == ostrace::kind::SYSRET {
                e.value = Some(a1 as i64);
                "sysret"
            } else {
                "syscall"
            }
        }
        ostrace::kind::RECLAIM => {
            e.outcome = Some(ostrace::reclaim::name(a0).to_string());
            e.pfn = Some(a1);
            e.addr = Some(a2);
            e.other_pid = (a3 != 0).then_some(a3 as u32);
            "reclaim"
        }
        ostrace::kind::WRITEBACK => {
            e.outcome = Some(ostrace::writeback::name(a0).to_string());
            e.number = Some(a1);
            "writeback"
        }
        _ => "unknown",
    };
    e.what = what.to_string();
    e
}

/// Linux signal names (x86-64 numbering).
pub fn signal_name(sig: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES.get(sig as usize).copied().unwrap_or("SIGRT")
}

/// The Linux x86-64 name of system call `nr` (`syscall_N` for numbers not listed).
pub fn syscall_name(nr: u64) -> String {
    let name = match nr {
        0 => "read",
        1 => "write",
        2 => "open",
        3 => "close",
        4 => "stat",
        5 => "fstat",
        6 => "lstat",
        7 => "poll",
        8 => "lseek",
        9 => "mmap",
        10 => "mprotect",
        11 => "munmap",
        12 => "brk",
        13 => "rt_sigaction",
        14 => "rt_sigprocmask",
        15 => "rt_sigreturn",
        16 => "ioctl",
        17 => "pread64",
        18 => "pwrite64",
        19 => "readv",
        20 => "writev",
        21 => "access",
        22 => "pipe",
        24 => "sched_yield",
        25 => "mremap",
        26 => "msync",
        27 => "mincore",
        28 => "madvise",
        32 => "dup",
        33 => "dup2",
        34 => "pause",
        35 => "nanosleep",
        39 => "getpid",
        56 => "clone",
        57 => "fork",
        58 => "vfork",
        59 => "execve",
        60 => "exit",
        61 => "wait4",
        62 => "kill",
        63 => "uname",
        72 => "fcntl",
        78 => "getdents",
        79 => "getcwd",
        96 => "gettimeofday",
        97 => "getrlimit",
        98 => "getrusage",
        102 => "getuid",
        104 => "getgid",
        107 => "geteuid",
        108 => "getegid",
        110 => "getppid",
        131 => "sigaltstack",
        158 => "arch_prctl",
        186 => "gettid",
        200 => "tkill",
        201 => "time",
        202 => "futex",
        204 => "sched_getaffinity",
        217 => "getdents64",
        218 => "set_tid_address",
        228 => "clock_gettime",
        229 => "clock_getres",
        230 => "clock_nanosleep",
        231 => "exit_group",
        234 => "tgkill",
        257 => "openat",
        262 => "newfstatat",
        273 => "set_robust_list",
        293 => "pipe2",
        302 => "prlimit64",
        309 => "getcpu",
        318 => "getrandom",
        334 => "rseq",
        435 => "clone3",
        _ => return format!("syscall_{nr}"),
    };
    name.to_string()
}

/// Convert QEMU's `-d int` log into fault events. QEMU logs every delivery attempt in
/// protected/long mode as
/// `N: v=0e e=0002 i=0 cpl=3 IP=0033:0000000000401000 pc=... SP=002b:00007ffc... CR2=...`,
/// immediately preceded by `Servicing hardware INT=0xNN` for external interrupts (in real
/// mode, e.g. in the firmware, only that line appears). Other lines (register dumps,
/// `check_exception`) are skipped.
pub fn from_qemu_int_log(text: &str) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let mut external = false;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(ev) = parse_qemu_event(t, external) {
            events.push(ev);
        }
        external = t.starts_with("Servicing hardware INT=");
    }
    events
}

fn parse_qemu_event(t: &str, external: bool) -> Option<FaultEvent> {
    let (_, rest) = t.split_once(": v=")?;
    let mut fields = rest.split_whitespace();
    let vector = u8::from_str_radix(fields.next()?, 16).ok()?;
    let mut ev = FaultEvent {
        icount: None,
        cpu: 0,
        vector,
        name: vector_name(vector).to_string(),
        kind: String::new(),
        error_code: None,
        cr2: None,
        cs: 0,
        rip: 0,
        cpl: 0,
        rsp: 0,
        delivered: None,
        stack: None,
        ist: None,
        pid: None,
        comm: None,
    };
    let (mut code, mut is_int) = (0u32, false);
    for f in fields {
        let (k, v) = f.split_once('=')?;
        match k {
            "e" => code = u32::from_str_radix(v, 16).ok()?,
            "i" => is_int = v == "1",
            "cpl" => ev.cpl = v.parse().ok()?,
            "IP" => {
                let (cs, ip) = v.split_once(':')?;
                ev.cs = u16::from_str_radix(cs, 16).ok()?;
                ev.rip = u64::from_str_radix(ip, 16).ok()?;
            }
            "SP" => {
                let (_, sp) = v.split_once(':')?;
                ev.rsp = u64::from_str_radix(sp, 16).ok()?;
            }
            "CR2" => ev.cr2 = Some(u64::from_str_radix(v, 16).ok()?),
            _ => {}
        }
    }
    let source = if is_int {
        EventSource::Software
    } else if external || vector == crate::cpu::exception::vector::NMI {
        EventSource::External
    } else {
        EventSource::Exception
    };
    ev.kind = FaultEvent::kind_name(source).to_string();
    if source == EventSource::Exception && has_error_code(vector) {
        ev.error_code = Some(code);
    }
    if vector != crate::cpu::exception::vector::PF {
        ev.cr2 = None;
    }
    Some(ev)
}

mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
    pub fn parse(s: &str) -> Result<u64, String> {
        let digits = s
            .strip_prefix("0x")
            .ok_or_else(|| format!("expected 0x…, got {s:?}"))?;
        u64::from_str_radix(digits, 16).map_err(|e| format!("{s:?}: {e}"))
    }
}

mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format!("{v:#x}")),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::hex::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_LOG: &str = "\
Servicing hardware INT=0x08
check_exception old: 0xffffffff new 0xe
     0: v=0e e=0006 i=0 cpl=3 IP=0033:0000008000000010 pc=0000008000000010 SP=002b:0000008000010fc0 CR2=0000008000012000
RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000
     1: v=80 e=0000 i=1 cpl=3 IP=0033:0000008000000020 pc=0000008000000020 SP=002b:0000008000010fc0 env->regs[R_EAX]=0000000000000000
Servicing hardware INT=0xec
     2: v=ec e=0000 i=0 cpl=0 IP=0008:ffffffff80201000 pc=ffffffff80201000 SP=0010:ffffffff80300000 env->regs[R_EAX]=0000000000000001
     3: v=08 e=0000 i=0 cpl=0 IP=0008:ffffffff80201234 pc=ffffffff80201234 SP=0010:ffffffff80300000 env->regs[R_EAX]=0000000000000001
";

    #[test]
    fn qemu_log_converts_to_events() {
        let ev = from_qemu_int_log(QEMU_LOG);
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0].vector, 14);
        assert_eq!(ev[0].error_code, Some(6));
        assert_eq!(ev[0].cr2, Some(0x80_0001_2000));
        assert_eq!((ev[0].cs, ev[0].rip, ev[0].cpl), (0x33, 0x80_0000_0010, 3));
        assert_eq!(ev[0].rsp, 0x80_0001_0fc0);
        assert_eq!(ev[1].kind, "software");
        assert_eq!(ev[1].error_code, None);
        assert_eq!(ev[2].kind, "external");
        assert_eq!(ev[3].kind, "exception");
        assert_eq!(ev[3].error_code, Some(0));
        assert_eq!(ev[3].cr2, None);
    }

    #[test]
    fn jsonl_round_trip_keeps_64_bit_addresses() {
        let e = FaultEvent {
            icount: Some(7),
            cpu: 0,
            vector: 14,
            name: "#PF".into(),
            kind: "exception".into(),
            error_code: Some(2),
            cr2: Some(0xffff_ffff_8000_1234),
            cs: 8,
            rip: 0xffff_ffff_8020_0000,
            cpl: 0,
            rsp: 0xffff_ffff_8030_0000,
            delivered: Some(true),
            stack: Some(0xffff_ffff_8040_0000),
            ist: Some(1),
            pid: Some(3),
            comm: Some("hello".into()),
        };
        let e = TraceEvent::Delivery(e);
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.contains("\"cr2\":\"0xffffffff80001234\""), "{line}");
        assert!(line.starts_with("{\"event\":\"delivery\""), "{line}");
        assert_eq!(read_jsonl(&line).unwrap(), vec![e]);
        assert!(read_jsonl("{\"vector\":1}").is_err());
    }
}
