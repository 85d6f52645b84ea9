//! The kernel log buffer (`kernel/printk/`'s log_buf): every console message and log
//! record is also kept here, with its level and a timestamp, whatever the console shows
//! (`quiet` silences the console, not the buffer), so `dmesg` (the `syslog` system call)
//! can read the boot log later. Lines are stored as `syslog` hands them out:
//! `<level>[seconds.micros] text\n`, in a ring of [`LOG_BUF_LEN`] bytes.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes kept (Linux's default is 128 KiB with `CONFIG_LOG_BUF_SHIFT=17`).
pub const LOG_BUF_LEN: usize = 64 << 10;
/// Levels (`KERN_*`): kernel messages without a level are KERN_INFO here.
pub const KERN_ERR: u8 = 3;
pub const KERN_WARNING: u8 = 4;
pub const KERN_INFO: u8 = 6;
pub const KERN_DEBUG: u8 = 7;

struct Ring {
    buf: UnsafeCell<[u8; LOG_BUF_LEN]>,
}

// SAFETY: `buf` is only touched while `BUSY` is held.
unsafe impl Sync for Ring {}

static RING: Ring = Ring {
    buf: UnsafeCell::new([0; LOG_BUF_LEN]),
};
/// Held while the ring is written or read. Taken with a try-lock: a message logged while
/// the ring is busy (a fault or panic in the middle of a copy) is dropped from the buffer
/// rather than deadlocking; the console still shows it.
static BUSY: AtomicBool = AtomicBool::new(false);
/// Bytes ever written: the ring holds `[HEAD - LOG_BUF_LEN, HEAD)`.
static HEAD: AtomicU64 = AtomicU64::new(0);
/// Where `SYSLOG_ACTION_CLEAR` left the readable start, and the destructive reader.
static CLEAR_SEQ: AtomicU64 = AtomicU64::new(0);
static READ_SEQ: AtomicU64 = AtomicU64::new(0);
/// Whether the next byte starts a line (gets the level and time prefix).
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

fn lock() -> bool {
    BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

fn unlock() {
    BUSY.store(false, Ordering::Release);
}

fn push_raw(bytes: &[u8]) {
    let mut head = HEAD.load(Ordering::Relaxed);
    // SAFETY: the caller holds BUSY.
    let buf = unsafe { &mut *RING.buf.get() };
    for &b in bytes {
        buf[(head % LOG_BUF_LEN as u64) as usize] = b;
        head += 1;
    }
    HEAD.store(head, Ordering::Relaxed);
}

/// A small stack formatter for the line prefix.
struct Prefix {
    b: [u8; 32],
    n: usize,
}

impl core::fmt::Write for Prefix {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let k = s.len().min(self.b.len() - self.n);
        self.b[self.n..self.n + k].copy_from_slice(&s.as_bytes()[..k]);
        self.n += k;
        Ok(())
    }
}

/// Append console output at `level`; each line gets `<level>[time] `.
pub fn append(level: u8, bytes: &[u8]) {
    if bytes.is_empty() || !lock() {
        return;
    }
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if AT_LINE_START.load(Ordering::Relaxed) {
            let ns = crate::proc::timer::now_ns();
            let mut p = Prefix { b: [0; 32], n: 0 };
            let _ = core::fmt::write(
                &mut p,
                format_args!(
                    "<{}>[{:5}.{:06}] ",
                    level,
                    ns / 1_000_000_000,
                    ns % 1_000_000_000 / 1000
                ),
            );
            push_raw(&p.b[..p.n]);
        }
        push_raw(line);
        AT_LINE_START.store(line.last() == Some(&b'\n'), Ordering::Relaxed);
    }
    unlock();
}

/// The readable range `[start, head)`: what is still in the ring after the last clear,
/// starting at a line boundary when old text was overwritten.
fn readable(from: u64) -> (u64, u64) {
    let head = HEAD.load(Ordering::Relaxed);
    let oldest = head.saturating_sub(LOG_BUF_LEN as u64);
    let mut start = from.max(oldest);
    if start == oldest && oldest > 0 {
        // SAFETY: the caller holds BUSY.
        let buf = unsafe { &*RING.buf.get() };
        while start < head && buf[((start - 1) % LOG_BUF_LEN as u64) as usize] != b'\n' {
            start += 1;
        }
    }
    (start, head)
}

/// Copy `[start, start + out.len())` of the ring into `out`.
fn copy_out(start: u64, out: &mut [u8]) {
    // SAFETY: the caller holds BUSY.
    let buf = unsafe { &*RING.buf.get() };
    for (i, o) in out.iter_mut().enumerate() {
        *o = buf[((start + i as u64) % LOG_BUF_LEN as u64) as usize];
    }
}

/// `SYSLOG_ACTION_READ_ALL` (and `READ_CLEAR`): the newest `out.len()` bytes still in the
/// buffer since the last clear, whole lines; returns the count.
pub fn read_all(out: &mut [u8], clear: bool) -> usize {
    if !lock() {
        return 0;
    }
    let (mut start, head) = readable(CLEAR_SEQ.load(Ordering::Relaxed));
    if head - start > out.len() as u64 {
        // Keep the newest whole lines that fit.
        start = head - out.len() as u64;
        // SAFETY: BUSY is held.
        let buf = unsafe { &*RING.buf.get() };
        while start < head && buf[((start - 1) % LOG_BUF_LEN as u64) as usize] != b'\n' {
            start += 1;
        }
    }
    let n = (head - start) as usize;
    copy_out(start, &mut out[..n]);
    if clear {
        CLEAR_SEQ.store(head, Ordering::Relaxed);
    }
    unlock();
    n
}

/// `SYSLOG_ACTION_READ`: the bytes not read before by this reader (0 if none).
pub fn read_unread(out: &mut [u8]) -> usize {
    if !lock() {
        return 0;
    }
    let (start, head) = readable(READ_SEQ.load(Ordering::Relaxed));
    let n = ((head - start) as usize).min(out.len());
    copy_out(start, &mut out[..n]);
    READ_SEQ.store(start + n as u64, Ordering::Relaxed);
    unlock();
    n
}

/// `SYSLOG_ACTION_CLEAR`.
pub fn clear() {
    CLEAR_SEQ.store(HEAD.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// `SYSLOG_ACTION_SIZE_UNREAD`.
pub fn unread() -> usize {
    if !lock() {
        return 0;
    }
    let (start, head) = readable(READ_SEQ.load(Ordering::Relaxed));
    unlock();
    (head - start) as usize
}
