//! Kernel command-line parsing: space-separated `key=value` parameters and bare flags.

/// The value of `key=` on the command line (the last one wins).
pub fn param<'a>(cmdline: &'a [u8], key: &str) -> Option<&'a [u8]> {
    cmdline.split(|&b| b == b' ').rev().find_map(|arg| {
        let rest = arg.strip_prefix(key.as_bytes())?;
        rest.strip_prefix(b"=")
    })
}

/// Whether the exact word `word` (a flag such as `kmem`, or `key=value`) is present.
pub fn has_flag(cmdline: &[u8], word: &str) -> bool {
    cmdline
        .split(|&b| b == b' ')
        .any(|arg| arg == word.as_bytes())
}

/// Most bytes of the command line kept for /proc/cmdline (`COMMAND_LINE_SIZE`).
pub const COMMAND_LINE_SIZE: usize = 2048;

struct Saved(core::cell::UnsafeCell<[u8; COMMAND_LINE_SIZE]>);
// SAFETY: written once at boot, before anything reads it ([`save`]).
unsafe impl Sync for Saved {}
static SAVED: Saved = Saved(core::cell::UnsafeCell::new([0; COMMAND_LINE_SIZE]));
static SAVED_LEN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Keep the boot command line (`saved_command_line`); called once, early in boot.
pub fn save(cmdline: &[u8]) {
    let n = cmdline.len().min(COMMAND_LINE_SIZE);
    // SAFETY: boot runs alone; nothing reads SAVED before SAVED_LEN is set below.
    unsafe { (&mut *SAVED.0.get())[..n].copy_from_slice(&cmdline[..n]) };
    SAVED_LEN.store(n, core::sync::atomic::Ordering::Release);
}

/// The boot command line (/proc/cmdline).
pub fn saved() -> &'static [u8] {
    let n = SAVED_LEN.load(core::sync::atomic::Ordering::Acquire);
    // SAFETY: the first `n` bytes were written before `n` was published, and never again.
    unsafe { &(&*SAVED.0.get())[..n] }
}
