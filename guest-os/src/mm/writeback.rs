//! Dirty page writeback (`mm/page-writeback.c`, `fs/fs-writeback.c`): a flusher kernel
//! thread writes dirty page cache pages back once they have been dirty for
//! `dirty_expire_centisecs`, or at once when more than `dirty_background_ratio` of the
//! dirtyable memory is dirty; a writer that pushes the dirty total past `dirty_ratio` is
//! throttled (`balance_dirty_pages`): it writes back itself before it may dirty more.
//! All times are virtual (the guest's monotonic clock), so writeback happens at the same
//! points of every run.
//!
//! The flusher sleeps without a timer while nothing is dirty, so an idle machine still
//! halts as before.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::filemap::{self, NR_DIRTY};
use crate::proc::{kthread, timer, Task};
use crate::sync::IrqLock;

/// `vm.dirty_expire_centisecs` (30 s), `vm.dirty_writeback_centisecs` (5 s),
/// `vm.dirty_background_ratio` (10 %), `vm.dirty_ratio` (20 %): Linux's defaults.
pub const DIRTY_EXPIRE_CENTISECS: u64 = 3000;
pub const DIRTY_WRITEBACK_CENTISECS: u64 = 500;
pub const DIRTY_BACKGROUND_RATIO: u64 = 10;
pub const DIRTY_RATIO: u64 = 20;
const NS_PER_CENTISEC: u64 = 10_000_000;

/// When the oldest dirty data of the system became dirty (ns; 0: nothing dirty).
static FIRST_DIRTIED: AtomicU64 = AtomicU64::new(0);
/// The flusher thread, once a disk filesystem is mounted.
static FLUSHER: IrqLock<Option<&'static Task>> = IrqLock::new("flusher", None);
/// A writer asked for background writeback.
static KICKED: AtomicBool = AtomicBool::new(false);
/// `/proc/vmstat`: writers throttled, flusher runs.
pub static NR_THROTTLED: AtomicU64 = AtomicU64::new(0);
pub static NR_FLUSHES: AtomicU64 = AtomicU64::new(0);

/// Extra work a flush does after the data: the filesystems' metadata (`sync_fs`) and the
/// disk's write cache. Set by the VFS when it mounts a disk filesystem.
static SYNC_HOOK: IrqLock<Option<fn()>> = IrqLock::new("sync_hook", None);

/// The flusher's name, set when a disk filesystem is mounted; the thread starts at the
/// first dirtied page (so that a boot that mounts a disk still gives init pid 1).
static FLUSHER_NAME: IrqLock<Option<alloc::string::String>> = IrqLock::new("flusher_name", None);

/// Name the flusher (Linux: `flush-MAJOR:MINOR` per disk) and set the metadata hook each
/// flush ends with.
pub fn set_flusher(name: alloc::string::String, hook: fn()) {
    *SYNC_HOOK.lock() = Some(hook);
    let mut n = FLUSHER_NAME.lock();
    if n.is_none() {
        *n = Some(name);
    }
}

/// Start the flusher thread if a filesystem asked for one and it is not running.
fn start_flusher() {
    if FLUSHER.lock().is_some() || crate::proc::current().is_none() {
        return;
    }
    let Some(name) = FLUSHER_NAME.lock().clone() else {
        return;
    };
    match kthread::kthread_run(&name, flusher_main) {
        Some(t) => *FLUSHER.lock() = Some(t),
        None => {
            log::warn!(
                "writeback: no memory for the flusher thread; writes are synced by sync only"
            )
        }
    }
}

/// A page became dirty: remember when the oldest one did, wake the flusher to time it.
pub fn note_dirtied() {
    start_flusher();
    if FIRST_DIRTIED.load(Ordering::Relaxed) == 0 {
        FIRST_DIRTIED.store(timer::now_ns().max(1), Ordering::Relaxed);
        wake_flusher();
    }
}

fn wake_flusher() {
    if let Some(t) = *FLUSHER.lock() {
        crate::proc::sched::wake(t);
    }
}

/// Pages writeback's ratios are taken of: free pages and the page cache of files.
fn dirtyable() -> u64 {
    super::page_alloc::with(|a| a.nr_free_pages()) + filemap::FILE_PAGES.load(Ordering::Relaxed)
}

/// (background threshold, throttle threshold) in pages (`global_dirty_limits`).
pub fn thresholds() -> (u64, u64) {
    let d = dirtyable();
    (d * DIRTY_BACKGROUND_RATIO / 100, d * DIRTY_RATIO / 100)
}

/// After a write dirtied pages (`balance_dirty_pages_ratelimited`): past the background
/// threshold the flusher starts; past the throttle threshold the writer writes back
/// itself first.
pub fn balance_dirty_pages() {
    let dirty = NR_DIRTY.load(Ordering::Relaxed);
    let (bg, limit) = thresholds();
    if dirty > bg && !KICKED.swap(true, Ordering::Relaxed) {
        wake_flusher();
    }
    if dirty > limit {
        NR_THROTTLED.fetch_add(1, Ordering::Relaxed);
        let _ = flush();
    }
}

/// Write back everything dirty, then the metadata hook (`sync`'s work).
pub fn flush() -> Result<(), crate::syscall::errno::Errno> {
    NR_FLUSHES.fetch_add(1, Ordering::Relaxed);
    crate::trace::writeback(
        trace_abi::writeback::START,
        NR_DIRTY.load(Ordering::Relaxed),
    );
    let before = filemap::PGPGOUT.load(Ordering::Relaxed);
    let r = filemap::sync_all();
    let hook = *SYNC_HOOK.lock();
    if let Some(h) = hook {
        h();
    }
    crate::trace::writeback(
        trace_abi::writeback::END,
        filemap::PGPGOUT.load(Ordering::Relaxed) - before,
    );
    if NR_DIRTY.load(Ordering::Relaxed) == 0 {
        FIRST_DIRTIED.store(0, Ordering::Relaxed);
    }
    r
}

/// The flusher (`wb_workfn`): sleeps until something is dirty, then until it expires or a
/// writer kicks it, and writes back.
fn flusher_main() {
    let expire = DIRTY_EXPIRE_CENTISECS * NS_PER_CENTISEC;
    let period = DIRTY_WRITEBACK_CENTISECS * NS_PER_CENTISEC;
    loop {
        let first = FIRST_DIRTIED.load(Ordering::Relaxed);
        if first == 0 && !KICKED.load(Ordering::Relaxed) {
            timer::sleep_once(None);
            continue;
        }
        let now = timer::now_ns();
        let (bg, _) = thresholds();
        let over = NR_DIRTY.load(Ordering::Relaxed) > bg;
        if KICKED.swap(false, Ordering::Relaxed) || over || now >= first + expire {
            let _ = flush();
            continue;
        }
        // Wake at the next periodic check, or when the oldest dirty data expires.
        timer::sleep_once(Some((now + period).min(first + expire)));
    }
}
