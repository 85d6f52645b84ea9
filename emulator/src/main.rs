//! `vmscope`: the command-line front end. See README.md for the commands and exit statuses.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vmscope::devices::uart16550::ConsoleSink;
use vmscope::machine::{exit_status, Injection, Machine, MachineConfig, Outcome};
use vmscope::tlb::{TlbMode, DEFAULT_TLB_ENTRIES};
use vmscope::trace::{self, FaultSink, JsonlSink};
use vmscope::{guest, qemu};

#[derive(Parser)]
#[command(
    name = "vmscope",
    version,
    about = "An x86-64 machine emulator for a Linux-style virtual-memory kernel"
)]
#[command(
    after_help = "Exit status: the guest's isa-debug-exit value v (QEMU's (v<<1)|1, decoded); \
2 bad input; 140 triple fault; 141 unimplemented instruction; 142 halted forever; \
143 instruction limit.\nLogging: RUST_LOG=info|debug|trace (default warn)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a PVH kernel (the built-in guest-os by default) and exit with the guest's status.
    Boot(BootArgs),
    /// Convert a QEMU `-d int` log (e.g. from `-d int -D qemu.log`) into vmscope's fault
    /// trace format (JSON Lines), on stdout or into --output.
    FaultTraceFromQemu {
        /// The QEMU log file.
        log: PathBuf,
        /// Write here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TlbArg {
    /// Cache translations like hardware (stale entries are visible to the guest).
    On,
    /// Walk the page tables on every access.
    Off,
    /// Cache, and warn whenever a cached translation differs from the page tables.
    Check,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UnimplementedArg {
    Stop,
    Ud,
}

#[derive(Args)]
struct BootArgs {
    /// Kernel ELF with a PVH entry note [default: the built-in guest-os kernel].
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Initial RAM disk, passed as PVH module 0.
    #[arg(long, value_name = "PATH")]
    initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, value_name = "STR", default_value = "")]
    cmdline: String,
    /// Guest RAM, as QEMU's -m: a number of MiB or a size with K, M, G suffix.
    #[arg(long, value_name = "SIZE", default_value = "128M", value_parser = parse_size)]
    mem: u64,
    /// Run the identical machine under qemu-system-x86_64 instead (the cross-check).
    #[arg(long)]
    qemu: bool,
    /// TLB model.
    #[arg(long, value_enum, default_value = "on")]
    tlb: TlbArg,
    /// TLB entries (a power of two).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TLB_ENTRIES, value_parser = parse_pow2)]
    tlb_entries: usize,
    /// Stop after N instructions (exit status 143).
    #[arg(long, value_name = "N")]
    max_insns: Option<u64>,
    /// At an instruction vmscope does not implement: stop with a report (exit 141), or
    /// raise #UD in the guest as a CPU without that feature would (logged once).
    #[arg(long, value_enum, default_value = "stop")]
    unimplemented: UnimplementedArg,
    /// Write every exception and interrupt delivery attempt to FILE as JSON Lines (see
    /// README, "Fault trace"). With --qemu, QEMU's `-d int` log is converted to the same
    /// events.
    #[arg(long, value_name = "FILE")]
    fault_trace: Option<PathBuf>,
    /// Raise events from outside the guest, for testing handlers and IST stacks: a
    /// comma-separated list of `nmi@N` and `mc@N` (NMI or machine check before the
    /// instruction with icount N). Repeatable.
    #[arg(long, value_name = "EVENT@ICOUNT", value_delimiter = ',', value_parser = parse_injection)]
    inject: Vec<(u64, Injection)>,
    /// At the end, print statistics to stderr: instructions, TLB hits, misses and flushes
    /// by cause, stale uses found by --tlb check.
    #[arg(long)]
    stats: bool,
}

/// Sizes as QEMU's -m takes them: plain numbers are MiB; K, M, G, T suffixes (binary).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'B' => 1,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix {c:?} (use K, M, G or T)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1u64 << 20),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("bad size: {s:?}"))
}

/// `nmi@N` or `mc@N`.
fn parse_injection(s: &str) -> Result<(u64, Injection), String> {
    let (what, at) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?}: expected EVENT@ICOUNT, e.g. nmi@100000"))?;
    let what = match what {
        "nmi" => Injection::Nmi,
        "mc" => Injection::MachineCheck,
        _ => return Err(format!("{what:?}: unknown event (nmi or mc)")),
    };
    let at = at
        .parse()
        .map_err(|_| format!("{at:?}: not an instruction count"))?;
    Ok((at, what))
}

fn parse_pow2(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    if n.is_power_of_two() {
        Ok(n)
    } else {
        Err(format!("{n} is not a power of two"))
    }
}

fn read_file(p: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read {what} {}: {e}", p.display()))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Boot(a) => boot(a),
        Cmd::FaultTraceFromQemu { log, output } => convert_qemu_log(&log, output.as_deref()),
    };
    let code = code.unwrap_or_else(|msg| {
        eprintln!("vmscope: error: {msg}");
        exit_status::BAD_INPUT
    });
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn boot(a: BootArgs) -> Result<i32, String> {
    if a.qemu {
        return boot_qemu(&a);
    }
    let (kernel, name) = match &a.kernel {
        Some(p) => (read_file(p, "kernel")?, p.display().to_string()),
        None => (guest::KERNEL.to_vec(), "guest-os".to_string()),
    };
    let initrd = a
        .initrd
        .as_deref()
        .map(|p| read_file(p, "initrd"))
        .transpose()?;
    let config = MachineConfig {
        mem_bytes: a.mem,
        tlb_mode: match a.tlb {
            TlbArg::On => TlbMode::On,
            TlbArg::Off => TlbMode::Off,
            TlbArg::Check => TlbMode::Check,
        },
        tlb_entries: a.tlb_entries,
        max_insns: a.max_insns,
        ud_on_unimplemented: a.unimplemented == UnimplementedArg::Ud,
    };
    let mut m = Machine::new(config, ConsoleSink::Stdout).map_err(|e| e.to_string())?;
    m.load_pvh(&kernel, &name, &a.cmdline, initrd.as_deref())
        .map_err(|e| e.to_string())?;
    if let Some(path) = &a.fault_trace {
        let sink = JsonlSink::create(path)
            .map_err(|e| format!("cannot create fault trace {}: {e}", path.display()))?;
        m.cpu.fault_sink = Some(Box::new(sink));
    }
    for &(at, what) in &a.inject {
        m.inject(at, what);
    }
    let outcome = m.run();
    let _ = std::io::stdout().flush();
    if let Some(mut sink) = m.cpu.fault_sink.take() {
        sink.finish()
            .map_err(|e| format!("writing the fault trace: {e}"))?;
    }
    if !matches!(outcome, Outcome::Exit { .. }) {
        eprint!("{}", m.report(&outcome));
    }
    let t = m.cpu.tlb.stats;
    if a.tlb == TlbArg::Check {
        eprintln!("vmscope: tlb check: {} stale TLB uses", t.stale_uses);
    }
    if a.stats {
        eprintln!("instructions: {}", m.cpu.icount);
        eprintln!("tlb: {} hits, {} misses", t.hits, t.misses);
        eprintln!(
            "tlb flushes: {} invlpg, {} cr3, {} cr4, {} invpcid, {} page fault, {} other",
            t.flush_invlpg, t.flush_cr3, t.flush_cr4, t.flush_invpcid, t.flush_pf, t.flush_other
        );
    }
    log::info!("stopped after {} instructions: {:?}", m.cpu.icount, outcome);
    Ok(outcome.exit_code())
}

fn convert_qemu_log(log: &Path, output: Option<&Path>) -> Result<i32, String> {
    let text = std::fs::read(log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    let events = trace::from_qemu_int_log(&String::from_utf8_lossy(&text));
    let mut sink = match output {
        Some(p) => {
            JsonlSink::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?
        }
        None => JsonlSink::new(Box::new(std::io::BufWriter::new(std::io::stdout()))),
    };
    for ev in &events {
        sink.event(ev);
    }
    sink.finish()
        .map_err(|e| format!("writing the trace: {e}"))?;
    log::info!("{} events", events.len());
    Ok(0)
}

fn boot_qemu(a: &BootArgs) -> Result<i32, String> {
    if !qemu::available() {
        return Err(format!(
            "{} not found (install the qemu-system-x86 package)",
            qemu::qemu_binary().display()
        ));
    }
    if !a.mem.is_multiple_of(1 << 20) {
        return Err("--qemu needs a RAM size in whole MiB".into());
    }
    // QEMU needs a file: use the given kernel, or write out the built-in one.
    let tmp;
    let kernel = match &a.kernel {
        Some(p) => {
            read_file(p, "kernel")?;
            p.clone()
        }
        None => {
            tmp = TempFile::new("kernel.elf", guest::KERNEL)?;
            tmp.0.clone()
        }
    };
    let mut cmd = qemu::command(&kernel, a.initrd.as_deref(), &a.cmdline, a.mem >> 20);
    let int_log = match &a.fault_trace {
        Some(_) => {
            let log = TempFile::new("int.log", b"")?;
            cmd.args(["-d", "int", "-D"]).arg(&log.0);
            Some(log)
        }
        None => None,
    };
    log::info!("running {:?}", cmd);
    let status = qemu::run(cmd)?;
    if let (Some(path), Some(log)) = (&a.fault_trace, &int_log) {
        let text = std::fs::read_to_string(&log.0)
            .map_err(|e| format!("cannot read QEMU's log {}: {e}", log.0.display()))?;
        let mut sink = JsonlSink::create(path)
            .map_err(|e| format!("cannot create fault trace {}: {e}", path.display()))?;
        for ev in trace::from_qemu_int_log(&text) {
            sink.event(&ev);
        }
        sink.finish()
            .map_err(|e| format!("writing the fault trace: {e}"))?;
    }
    Ok(status)
}

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, data: &[u8]) -> Result<Self, String> {
        let p = std::env::temp_dir().join(format!("vmscope-{}-{tag}", std::process::id()));
        std::fs::write(&p, data).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        Ok(TempFile(p))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
