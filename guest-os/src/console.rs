//! The kernel console: `kprint!`/`kprintln!` and the `log` backend, writing to COM1, or to
//! COM2 with `console=ttyS1` (what `vmscope run` uses, so that COM1 carries only the user
//! program's output). `quiet` drops `kprint!` output (banners, reports) but keeps log
//! records at warning level and above, and panics, as Linux's `quiet` does.
//!
//! Log records are printed as `[LEVEL] message`. The default maximum level is `Info`; the
//! `loglevel=` command-line option (`off`, `error`, `warn`, `info`, `debug`, `trace`) changes it.

use core::fmt::{self, Write};

use log::{LevelFilter, Log, Metadata, Record};

use core::sync::atomic::{AtomicBool, Ordering};

use crate::drivers::uart16550::{Uart16550, COM1, COM2};

/// Console on COM2 instead of COM1.
static ON_COM2: AtomicBool = AtomicBool::new(false);
/// `quiet`: no `kprint!` output.
static QUIET: AtomicBool = AtomicBool::new(false);

fn port() -> &'static Uart16550 {
    if ON_COM2.load(Ordering::Relaxed) {
        &COM2
    } else {
        &COM1
    }
}

/// Apply `console=ttyS0|ttyS1` and `quiet` from the command line.
pub fn configure(cmdline: &[u8]) {
    if crate::cmdline::param(cmdline, "console") == Some(b"ttyS1") {
        COM2.init();
        ON_COM2.store(true, Ordering::Relaxed);
    }
    if crate::cmdline::has_flag(cmdline, "quiet") {
        QUIET.store(true, Ordering::Relaxed);
        // An explicit `loglevel=` (which `vmscope run --cmdline` appends after `quiet`)
        // wins, as the later of the two does on Linux.
        if log::max_level() > LevelFilter::Warn && log_level_from_cmdline(cmdline).is_none() {
            log::set_max_level(LevelFilter::Warn);
        }
    }
}

/// Write to the console even under `quiet` (log records, panics).
pub fn write_bytes_always(bytes: &[u8]) {
    port().write_bytes(bytes);
}

/// A console sink that ignores `quiet`.
pub struct LoudConsole;

impl Write for LoudConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes_always(s.as_bytes());
        Ok(())
    }
}

/// Default maximum log level.
pub const DEFAULT_LOG_LEVEL: LevelFilter = LevelFilter::Info;

/// A `fmt::Write` sink for the console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Writes raw bytes to the console, unchanged (nothing under `quiet`), and to the kernel
/// log buffer (always).
pub fn write_bytes(bytes: &[u8]) {
    crate::klog::append(crate::klog::KERN_INFO, bytes);
    if !QUIET.load(Ordering::Relaxed) {
        port().write_bytes(bytes);
    }
}

/// Implementation of [`kprint!`]; not for direct use.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    // Console writes cannot fail.
    let _ = Console.write_fmt(args);
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => {
        $crate::console::_print(format_args!($($arg)*))
    };
}

/// Prints to the kernel console, with a trailing `"\n"`.
#[macro_export]
macro_rules! kprintln {
    () => {
        $crate::kprint!("\n")
    };
    ($($arg:tt)*) => {
        $crate::console::_print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// A `fmt::Write` into the kernel log buffer at one level.
struct KlogSink(u8);

impl Write for KlogSink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        crate::klog::append(self.0, s.as_bytes());
        Ok(())
    }
}

/// The `log` backend.
struct KernelLogger;

static LOGGER: KernelLogger = KernelLogger;

impl Log for KernelLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(LoudConsole, "[{}] {}", record.level(), record.args());
            let level = match record.level() {
                log::Level::Error => crate::klog::KERN_ERR,
                log::Level::Warn => crate::klog::KERN_WARNING,
                log::Level::Info => crate::klog::KERN_INFO,
                _ => crate::klog::KERN_DEBUG,
            };
            let _ = writeln!(KlogSink(level), "{}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the console as the `log` backend with maximum level `level`.
pub fn init_logging(level: LevelFilter) {
    // Fails only if a logger is already installed; then just update the level.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// The log level requested by a `loglevel=` option in `cmdline`, if any (the last valid one wins).
pub fn log_level_from_cmdline(cmdline: &[u8]) -> Option<LevelFilter> {
    cmdline
        .split(|&b| b == b' ')
        .rev()
        .find_map(|arg| match arg.strip_prefix(b"loglevel=")? {
            b"off" => Some(LevelFilter::Off),
            b"error" => Some(LevelFilter::Error),
            b"warn" => Some(LevelFilter::Warn),
            b"info" => Some(LevelFilter::Info),
            b"debug" => Some(LevelFilter::Debug),
            b"trace" => Some(LevelFilter::Trace),
            _ => None,
        })
}
