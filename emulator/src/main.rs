//! `vmscope`: the command-line front end. See README.md for the commands and exit statuses.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::borrow::Cow;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use vmscope::devices::disk::{DiskImage, DiskSpec};
use vmscope::devices::uart16550::{flush_consoles, ConsoleSink};
use vmscope::machine::{exit_status, Injection, Machine, MachineConfig, Outcome};
use vmscope::run::{self as runner, GuestEnd};
use vmscope::timeline::TimelineSink;
use vmscope::tlb::{TlbMode, DEFAULT_TLB_ENTRIES};
use vmscope::trace::{self, JsonlSink, TextSink, TraceEvent, TraceSink};
use vmscope::tracediff::{self, Normalize};
use vmscope::{gdb, guest, qemu};

#[derive(Parser)]
#[command(
    name = "vmscope",
    version,
    about = "An x86-64 machine emulator for a Linux-style virtual-memory kernel"
)]
#[command(
    after_help = "Exit status: the guest's isa-debug-exit value v (QEMU's (v<<1)|1, decoded); \
2 bad input; 140 triple fault; 141 unimplemented instruction; 142 halted forever; \
143 instruction limit; with `run`, the program's status (128+S if killed by signal S) or \
144 kernel panic.\nLogging: RUST_LOG=info|debug|trace (default warn)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a PVH kernel (the built-in guest-os by default) and exit with the guest's status.
    Boot(BootArgs),
    /// Run a static x86-64 Linux program under the guest kernel and exit with its status.
    /// Its stdout is vmscope's stdout (COM1); the kernel log and its stderr go to vmscope's
    /// stderr (COM2).
    Run(RunArgs),
    /// Work with fault traces: compare two (`diff`) or print one (`show`).
    #[command(subcommand)]
    Trace(TraceCmd),
    /// Convert a QEMU `-d int` log (e.g. from `-d int -D qemu.log`) into vmscope's fault
    /// trace format (JSON Lines), on stdout or into --output.
    FaultTraceFromQemu {
        /// The QEMU log file.
        log: PathBuf,
        /// Write here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Run a qemu-system-x86_64 command line on vmscope (for suites written for QEMU,
    /// e.g. kvm-unit-tests with QEMU=a link named qemu-system-x86_64 to vmscope): the
    /// options of the `pc` machine vmscope models, QEMU's exit status. See README.
    QemuCompat {
        /// QEMU's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
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

#[derive(Subcommand)]
enum TraceCmd {
    /// Align two JSON Lines fault traces and print the first divergence with context and a
    /// summary. Exit status: 0 equal, 1 different, 2 bad input.
    Diff {
        a: PathBuf,
        b: PathBuf,
        #[command(flatten)]
        norm: NormArgs,
        /// Events of context around the divergence.
        #[arg(long, value_name = "N", default_value_t = 3)]
        context: usize,
    },
    /// Print a JSON Lines fault trace in the text format, or (--jsonl) normalised as JSON
    /// Lines, e.g. to write a golden trace.
    Show {
        file: PathBuf,
        #[command(flatten)]
        norm: NormArgs,
        /// Print the normalised events as JSON Lines instead of text.
        #[arg(long)]
        jsonl: bool,
    },
}

/// How traces are normalised before they are compared or shown.
#[derive(Args)]
struct NormArgs {
    /// Leave this field out of every event (repeatable or comma-separated), e.g. icount.
    #[arg(long, value_name = "FIELD", value_delimiter = ',')]
    ignore: Vec<String>,
    /// Leave out events whose FIELD has VALUE (repeatable), e.g. kind=external (timer
    /// interrupts) or event=mmu.
    #[arg(long, value_name = "FIELD=VALUE", value_parser = parse_drop)]
    drop: Vec<(String, String)>,
    /// Compare kernel-half addresses as "kernel" (traces of two kernel builds).
    #[arg(long)]
    ignore_kernel_addresses: bool,
    /// The golden-trace preset: --ignore icount --drop kind=external --drop op=cr3
    /// --drop op=cr4 --ignore-kernel-addresses.
    #[arg(long)]
    golden: bool,
}

impl NormArgs {
    fn normalize(&self) -> Normalize {
        let mut n = if self.golden {
            Normalize::golden()
        } else {
            Normalize::default()
        };
        n.ignore.extend(self.ignore.iter().cloned());
        n.drop.extend(self.drop.iter().cloned());
        n.kernel_addresses |= self.ignore_kernel_addresses;
        n
    }
}

fn parse_drop(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected FIELD=VALUE, got {s:?}"))?;
    Ok((k.to_string(), v.to_string()))
}

/// Read and normalise a trace file for `trace diff`/`show`.
fn read_trace(path: &Path, norm: &Normalize) -> Result<tracediff::Trace, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    tracediff::Trace::parse(&text, norm).map_err(|e| format!("{}: {e}", path.display()))
}

fn trace_cmd(cmd: TraceCmd) -> Result<i32, String> {
    match cmd {
        TraceCmd::Diff {
            a,
            b,
            norm,
            context,
        } => {
            let n = norm.normalize();
            let (ta, tb) = (read_trace(&a, &n)?, read_trace(&b, &n)?);
            let (na, nb) = (a.display().to_string(), b.display().to_string());
            let r = tracediff::diff(&ta, &tb, (&na, &nb), context);
            print!("{}", r.text);
            Ok(if r.equal { 0 } else { 1 })
        }
        TraceCmd::Show { file, norm, jsonl } => {
            let n = norm.normalize();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if jsonl {
                let t = tracediff::Trace::parse(&text, &n)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                print!("{}", t.to_jsonl());
            } else {
                let events =
                    trace::read_jsonl(&text).map_err(|e| format!("{}: {e}", file.display()))?;
                for e in &events {
                    println!("{}", trace::format_event(e));
                }
            }
            Ok(0)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TraceFormat {
    Jsonl,
    Text,
}

/// Open the fault-trace sink for `path` in `format`.
fn trace_sink(path: &Path, format: TraceFormat) -> Result<Box<dyn TraceSink>, String> {
    let err = |e: std::io::Error| format!("cannot create fault trace {}: {e}", path.display());
    Ok(match format {
        TraceFormat::Jsonl => Box::new(JsonlSink::create(path).map_err(err)?),
        TraceFormat::Text => Box::new(TextSink::create(path).map_err(err)?),
    })
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UnimplementedArg {
    Stop,
    Ud,
}

/// Optional devices, as QEMU's `-device NAME`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceArg {
    /// QEMU's ISA test device (kvm-unit-tests): ports 0xe0-0xeb, IRQ lines at 0x2000,
    /// 64 KiB of scratch MMIO at 0xff000000.
    PcTestdev,
}

impl DeviceArg {
    fn qemu_name(self) -> &'static str {
        match self {
            DeviceArg::PcTestdev => "pc-testdev",
        }
    }
}

/// Machine options shared by `boot` and `run`.
#[derive(Args)]
struct MachineArgs {
    /// Host stdin for COM1's receiver (set by `boot` for a kernel of the user's).
    #[arg(skip)]
    com1_input: Option<vmscope::devices::uart16550::SerialInput>,
    /// The initrd's file name (set by `boot`; a multiboot module's command line).
    #[arg(skip)]
    initrd_name: Option<String>,
    /// Guest RAM, as QEMU's -m: a number of MiB or a size with K, M, G suffix.
    #[arg(long, value_name = "SIZE", default_value = "128M", value_parser = parse_size)]
    mem: u64,
    /// Run the identical machine under qemu-system-x86_64 instead (the cross-check).
    #[arg(long)]
    qemu: bool,
    /// CPUs (1-64): APIC IDs 0..N-1, CPU 0 boots, the others wait for INIT and SIPI.
    /// They run interleaved on one host thread, QUANTUM instructions at a time, so runs
    /// stay deterministic. With --qemu: -smp N,sockets=N,cores=1,threads=1.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=vmscope::machine::MAX_CPUS as i64))]
    cpus: u16,
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
    /// Format of --fault-trace: JSON Lines (for tools and `vmscope trace diff`) or one
    /// human-readable line per event.
    #[arg(long, value_enum, default_value = "jsonl")]
    fault_trace_format: TraceFormat,
    /// Write a Chrome/Perfetto trace-event JSON timeline of the run to FILE (open it in
    /// ui.perfetto.dev): which task ran when, system calls, page faults, interrupts.
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// At the end, print statistics to stderr: instructions, TLB hits, misses and flushes
    /// by cause, stale uses found by --tlb check.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    trace: vmscope::itrace::TraceArgs,
    /// Serve the GDB remote protocol on HOST:PORT (or PORT: 127.0.0.1; port 0 picks a
    /// free one). The address is printed on stderr. With --qemu, QEMU's own stub.
    #[arg(long, value_name = "HOST:PORT", value_parser = gdb::parse_listen_addr)]
    gdb: Option<String>,
    /// With --gdb: wait for gdb to connect before the first instruction (QEMU: -S).
    #[arg(long, requires = "gdb")]
    gdb_wait: bool,
    /// A raw disk image as a virtio-blk PCI disk (repeatable: vda, vdb... in order);
    /// `PATH:ro` for a read-only disk. The guest mounts the first ext2 disk at /mnt and
    /// uses disks made by mkswap as swap. With --qemu: `-drive file=PATH,format=raw,if=virtio`.
    #[arg(long, value_name = "PATH[:ro]", value_parser = DiskSpec::parse)]
    disk: Vec<DiskSpec>,
    /// Add an optional device (repeatable), as QEMU's -device NAME.
    #[arg(long = "device", value_enum, value_name = "NAME")]
    devices: Vec<DeviceArg>,
}

impl MachineArgs {
    fn gdb_config(&self) -> Option<gdb::GdbConfig> {
        self.gdb.as_ref().map(|addr| gdb::GdbConfig {
            addr: addr.clone(),
            wait: self.gdb_wait,
        })
    }
}

#[derive(Args)]
struct BootArgs {
    /// Kernel: an ELF with a PVH entry note or a Linux bzImage [default: the built-in guest-os kernel].
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Initial RAM disk, passed as PVH module 0.
    #[arg(long, value_name = "PATH")]
    initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, value_name = "STR", default_value = "")]
    cmdline: String,
    #[command(flatten)]
    machine: MachineArgs,
    /// Raise events from outside the guest, for testing handlers and IST stacks: a
    /// comma-separated list of `nmi@N` and `mc@N` (NMI or machine check before the
    /// instruction with icount N). Repeatable.
    #[arg(long, value_name = "EVENT@ICOUNT", value_delimiter = ',', value_parser = parse_injection)]
    inject: Vec<(u64, Injection)>,
}

#[derive(Args)]
#[command(
    after_help = "PROGRAM is a bundled program (hello, args, brk, exitcode, ...) or, if it \
contains a '/', an x86-64 ELF or a #! script on the host; the interpreters and shared \
libraries it needs go into the guest at their own paths (from --sysroot if given). It \
runs as /bin/NAME with argv \
[/bin/NAME, ARGS...] and the environment HOME=/ PATH=/bin TERM=dumb VMSCOPE_BIN=/bin \
(plus --env). \
Options go before PROGRAM; everything after it is passed to the program.\n\
Exit status: the program's (0-255), 128+S if killed by signal S, 144 kernel panic, 2 bad \
input, 140-143 machine stops as for `boot`."
)]
struct RunArgs {
    /// Kernel: an ELF with a PVH entry note or a Linux bzImage [default: the built-in guest-os kernel].
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Extra kernel command-line words, appended to
    /// "quiet console=ttyS1 rdinit=/etc/vmscope/init".
    #[arg(long, value_name = "STR", default_value = "")]
    cmdline: String,
    #[command(flatten)]
    machine: MachineArgs,
    /// Take a host program's interpreters and shared libraries from DIR instead of the
    /// host's root (as qemu-user's -L); they keep their paths inside the guest.
    #[arg(long, value_name = "DIR")]
    sysroot: Option<PathBuf>,
    /// Add NAME=VALUE to the program's environment, or replace a default (as qemu-user's
    /// -E); repeatable. With TZ naming a zone file (TZ=Europe/Paris), the file goes into
    /// the guest from the host's /usr/share/zoneinfo (or --sysroot's).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// A bundled program's name, or a path to an x86-64 ELF executable (static or
    /// dynamically linked) or a #! script.
    #[arg(value_name = "PROGRAM")]
    program: OsString,
    /// Arguments for the program (argv[1..]).
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
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
    // Invoked through a link named qemu-system-x86_64: QEMU's command line.
    let argv: Vec<String> = std::env::args().collect();
    let as_qemu = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| {
            n.to_string_lossy()
                .starts_with(vmscope::qemu::QEMU_BINARY_NAME)
        });
    // As QEMU, stderr stays quiet unless something is wrong: suites written for QEMU
    // take any stderr output as a failure (kvm-unit-tests does). RUST_LOG still works.
    let compat = as_qemu || argv.get(1).is_some_and(|a| a == "qemu-compat");
    let default_level = if compat { "error" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_timestamp(None)
        .init();
    if as_qemu {
        let code = qemu_compat(&argv[1..]);
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::QemuCompat { args } => Ok(qemu_compat(&args)),
        Cmd::Boot(a) => boot(a),
        Cmd::Run(a) => run(a),
        Cmd::Trace(t) => trace_cmd(t),
        Cmd::FaultTraceFromQemu { log, output } => convert_qemu_log(&log, output.as_deref()),
    };
    vmscope::hostinput::restore_terminal();
    let code = code.unwrap_or_else(|msg| {
        eprintln!("vmscope: error: {msg}");
        exit_status::BAD_INPUT
    });
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// `vmscope qemu-compat ARGS` (see `vmscope::qemu_compat`): QEMU's messages and exit
/// status.
fn qemu_compat(args: &[String]) -> i32 {
    use vmscope::qemu_compat::{translate, Refused, Request};
    const QEMU_ERROR: i32 = 1;
    let name = vmscope::qemu::QEMU_BINARY_NAME;
    let boot_args = match translate(args) {
        Err(Refused(msg)) => {
            eprintln!("{name}: {msg}");
            return QEMU_ERROR;
        }
        Ok(Request::Print(text)) => {
            print!("{text}");
            return 0;
        }
        Ok(Request::Boot(b)) => b,
    };
    let argv = ["vmscope", "boot"]
        .into_iter()
        .map(String::from)
        .chain(boot_args);
    let a = match Cli::try_parse_from(argv) {
        Ok(Cli {
            cmd: Cmd::Boot(a), ..
        }) => a,
        Ok(_) => return QEMU_ERROR,
        Err(e) => {
            eprintln!("{name}: {e}");
            return QEMU_ERROR;
        }
    };
    // QEMU's wording, which suites look for (kvm-unit-tests probes with a missing file).
    if let Some(k) = &a.kernel {
        if let Err(e) = std::fs::metadata(k) {
            eprintln!("{name}: could not load kernel '{}': {e}", k.display());
            return QEMU_ERROR;
        }
    }
    match boot_outcome(a) {
        Ok(o) => vmscope::qemu_compat::exit_status(&o),
        Err(msg) => {
            eprintln!("{name}: {msg}");
            QEMU_ERROR
        }
    }
}

fn boot(a: BootArgs) -> Result<i32, String> {
    if a.machine.qemu {
        return machine_on_qemu(
            a.kernel.as_deref(),
            a.initrd.as_deref(),
            &a.cmdline,
            &a.machine,
            |_| Ok(()),
        );
    }
    Ok(boot_outcome(a)?.exit_code())
}

/// Boot on vmscope and run to the end.
fn boot_outcome(mut a: BootArgs) -> Result<Outcome, String> {
    let kernel = kernel_image(a.kernel.as_deref())?;
    a.machine.initrd_name = a.initrd.as_ref().map(|p| p.display().to_string());
    let initrd = a
        .initrd
        .as_deref()
        .map(|p| read_file(p, "initrd"))
        .transpose()?;
    // A kernel of the user's gets a console it can read: host stdin (a terminal in raw
    // mode, or a pipe) feeds COM1, as QEMU's -serial mon:stdio. The built-in kernel does
    // not read its console, and runs with the terminal left alone.
    if a.kernel.is_some() {
        let input = vmscope::devices::uart16550::SerialInput::default();
        if vmscope::hostinput::attach(input.clone()) {
            a.machine.com1_input = Some(input);
        }
    }
    machine_on_vmscope(
        kernel,
        &a.cmdline,
        initrd.as_deref(),
        &a.machine,
        &a.inject,
        |_| {},
    )
}

/// The kernel to boot: the file given, or the built-in one (borrowed, not copied: the
/// embedded image, debug information included, is about 20 MB).
fn kernel_image(path: Option<&Path>) -> Result<(Cow<'static, [u8]>, String), String> {
    Ok(match path {
        Some(p) => (Cow::Owned(read_file(p, "kernel")?), p.display().to_string()),
        None => (Cow::Borrowed(guest::KERNEL), "guest-os".to_string()),
    })
}

/// Whether the machine has ACPI, as the QEMU machine vmscope is compared with: the
/// built-in kernel and multiboot kernels (kvm-unit-tests, run on QEMU's default `pc`)
/// get the default `pc`; any other kernel (Linux) `pc,acpi=off` with the MP table and
/// SMBIOS (see `MachineConfig::acpi`).
fn with_acpi(built_in: bool, kernel: &[u8]) -> bool {
    built_in
        || matches!(
            vmscope::boot::kernel_kind(kernel),
            vmscope::boot::KernelKind::Multiboot(_)
        )
}

/// Boot a PVH kernel on vmscope with `a`'s options (`setup` adds devices), run it to the
/// end, and print the stop report and statistics on stderr.
fn machine_on_vmscope(
    (kernel, name): (Cow<'static, [u8]>, String),
    cmdline: &str,
    initrd: Option<&[u8]>,
    a: &MachineArgs,
    inject: &[(u64, Injection)],
    setup: impl FnOnce(&mut Machine),
) -> Result<Outcome, String> {
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
        acpi: with_acpi(matches!(kernel, Cow::Borrowed(_)), &kernel),
        com1_input: a.com1_input.clone(),
        cpus: a.cpus as usize,
        pc_testdev: a.devices.contains(&DeviceArg::PcTestdev),
    };
    let disks = open_disks(&a.disk)?;
    let mut m = Machine::new(config, ConsoleSink::Stdout).map_err(|e| e.to_string())?;
    // Disks first: the firmware's memory map depends on them.
    for d in disks {
        m.add_disk(d).map_err(|e| e.to_string())?;
    }
    if let Some(n) = &a.initrd_name {
        m.initrd_name = n.clone();
    }
    m.load_kernel(&kernel, &name, cmdline, initrd)
        .map_err(|e| e.to_string())?;
    setup(&mut m);
    let mut sinks: Vec<Box<dyn TraceSink>> = Vec::new();
    if let Some(path) = &a.fault_trace {
        sinks.push(trace_sink(path, a.fault_trace_format)?);
    }
    if let Some(path) = &a.timeline {
        let t = TimelineSink::create(path)
            .map_err(|e| format!("cannot create timeline {}: {e}", path.display()))?;
        sinks.push(Box::new(t));
    }
    m.bus.trace = match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(Box::new(trace::Tee(sinks))),
    };
    for &(at, what) in inject {
        m.inject(at, what);
    }
    let outcome = match a.gdb_config() {
        Some(_) if a.trace.enabled() => Err("--trace and --gdb cannot be combined".into()),
        Some(cfg) => gdb::run(&mut m, &cfg),
        None => {
            // A bzImage's symbols are in the kernel the loader unpacked from it.
            let elf = m.kernel_elf.take();
            vmscope::itrace::run(&mut m, &a.trace, elf.as_deref().unwrap_or(&kernel), initrd)
        }
    };
    flush_consoles();
    let outcome = outcome?;
    if let Some(mut sink) = m.bus.trace.take() {
        sink.finish()
            .map_err(|e| format!("writing the trace: {e}"))?;
    }
    if m.bus.os.bad_records > 0 {
        eprintln!(
            "vmscope: {} malformed trace annotations from the guest were ignored",
            m.bus.os.bad_records
        );
    }
    if !matches!(outcome, Outcome::Exit { .. }) {
        eprint!("{}", m.report(&outcome));
    }
    let t = m.tlb_stats();
    if a.tlb == TlbArg::Check {
        eprintln!(
            "vmscope: tlb check: {} stale TLB uses, {} spurious page faults",
            t.stale_uses, t.spurious_faults
        );
    }
    if a.stats {
        eprintln!("instructions: {}", m.cpu.icount);
        eprintln!("tlb: {} hits, {} misses", t.hits, t.misses);
        eprintln!(
            "tlb flushes: {} invlpg, {} cr3, {} cr4, {} invpcid, {} page fault, {} other",
            t.flush_invlpg, t.flush_cr3, t.flush_cr4, t.flush_invpcid, t.flush_pf, t.flush_other
        );
    }
    if a.stats {
        for (i, d) in m.bus.pci.disk_stats().iter().enumerate() {
            eprintln!(
                "disk {i} ({}): {} requests ({} reads, {} writes, {} flushes, {} errors), \
                 {} sectors read, {} sectors written",
                d.path,
                d.requests,
                d.reads,
                d.writes,
                d.flushes,
                d.errors,
                d.sectors_read,
                d.sectors_written
            );
        }
    }
    // The disks' writes reach their files when the machine is dropped (msync), however
    // the run ended.
    drop(m);
    log::info!("stopped: {:?}", outcome);
    Ok(outcome)
}

fn run(a: RunArgs) -> Result<i32, String> {
    let mut program = runner::resolve_program(&a.program, guest::PROGRAMS, a.sysroot.as_deref())?;
    let env = vmscope::initramfs::run_env(&a.env)?;
    if let Some(tz) = env.iter().find_map(|e| e.strip_prefix("TZ=")) {
        let root = vmscope::sysroot::Root(a.sysroot.as_deref());
        if let Some((path, data)) = vmscope::sysroot::zoneinfo(tz, root) {
            program.support.insert(path, data);
        }
    }
    let initrd = runner::initramfs(&program, &a.args, &env, guest::PROGRAMS)?;
    let cmdline = runner::cmdline(&a.cmdline);
    log::info!(
        "run: /bin/{} ({}), initramfs {} bytes, command line {cmdline:?}",
        program.name,
        if program.bundled {
            "bundled"
        } else {
            "host file"
        },
        initrd.len()
    );
    if a.machine.qemu {
        let rd = TempFile::new("initramfs.cpio", &initrd)?;
        let com2 = TempFile::new("com2.txt", b"")?;
        let dcon = TempFile::new("debugcon.txt", b"")?;
        let machine_status = machine_on_qemu(
            a.kernel.as_deref(),
            Some(&rd.0),
            &cmdline,
            &a.machine,
            |cmd| {
                qemu::add_run_devices(cmd, &com2.0, &dcon.0);
                Ok(())
            },
        );
        // The kernel log first, even when QEMU failed: it may say why.
        if let Ok(log) = std::fs::read(&com2.0) {
            use std::io::Write;
            let _ = std::io::stderr().write_all(&log);
        }
        let machine_status = machine_status?;
        let report = std::fs::read(&dcon.0).unwrap_or_default();
        return Ok(run_status(
            runner::decode_debugcon(&report),
            machine_status,
            true,
        ));
    }
    let kernel = kernel_image(a.kernel.as_deref())?;
    let mut debugcon = None;
    let outcome = machine_on_vmscope(kernel, &cmdline, Some(&initrd), &a.machine, &[], |m| {
        m.add_com2(ConsoleSink::Stderr);
        debugcon = Some(m.add_debugcon());
    })?;
    let report = debugcon
        .and_then(|b| b.lock().ok().map(|b| b.clone()))
        .unwrap_or_default();
    let clean = matches!(outcome, Outcome::Exit { .. });
    Ok(run_status(
        runner::decode_debugcon(&report),
        outcome.exit_code(),
        clean,
    ))
}

/// The kernel's report wins; without one, the machine's status, and a warning if the
/// machine ended cleanly (a stop has its own report already).
fn run_status(end: Option<GuestEnd>, machine_status: i32, clean_exit: bool) -> i32 {
    match end {
        Some(end) => end.status(),
        None => {
            if clean_exit {
                eprintln!(
                    "vmscope: warning: the kernel did not report how the program ended \
                     (no `exit N` line on debugcon port 0x402); exit status {machine_status} \
                     is the kernel's isa-debug-exit value"
                );
            }
            machine_status
        }
    }
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
    for ev in events {
        sink.event(&TraceEvent::Delivery(ev));
    }
    sink.finish()
        .map_err(|e| format!("writing the trace: {e}"))?;
    Ok(0)
}

/// Run the kernel under QEMU with `a`'s options; `extra` adds to the command line.
fn machine_on_qemu(
    kernel: Option<&Path>,
    initrd: Option<&Path>,
    cmdline: &str,
    a: &MachineArgs,
    extra: impl FnOnce(&mut Command) -> Result<(), String>,
) -> Result<i32, String> {
    if a.trace.enabled() {
        return Err("--trace works on vmscope only, not with --qemu".into());
    }
    let built_in = kernel.is_none();
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
    let mut acpi = built_in;
    let kernel = match kernel {
        Some(p) => {
            acpi = with_acpi(false, &read_file(p, "kernel")?);
            p.to_path_buf()
        }
        None => {
            tmp = TempFile::new("kernel.elf", guest::KERNEL)?;
            tmp.0.clone()
        }
    };
    if a.timeline.is_some() {
        return Err("--timeline needs the guest's annotations, which QEMU does not decode".into());
    }
    // The same checks as on vmscope, so bad disks fail the same way.
    drop(open_disks(&a.disk)?);
    let mut cmd = qemu::command(&kernel, initrd, cmdline, a.mem >> 20, acpi);
    qemu::add_cpus(&mut cmd, a.cpus as usize);
    for d in &a.devices {
        cmd.args(["-device", d.qemu_name()]);
    }
    for d in &a.disk {
        qemu::add_disk(&mut cmd, &d.path, d.read_only);
    }
    extra(&mut cmd)?;
    if let Some(cfg) = a.gdb_config() {
        cmd.args(gdb::qemu_args(&cfg)?);
    }
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
        let mut sink = trace_sink(path, a.fault_trace_format)?;
        for ev in trace::from_qemu_int_log(&text) {
            sink.event(&TraceEvent::Delivery(ev));
        }
        sink.finish()
            .map_err(|e| format!("writing the fault trace: {e}"))?;
    }
    Ok(status)
}

/// Open every `--disk` (bad input: one line, exit status 2).
fn open_disks(specs: &[DiskSpec]) -> Result<Vec<DiskImage>, String> {
    specs.iter().map(DiskImage::open).collect()
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
