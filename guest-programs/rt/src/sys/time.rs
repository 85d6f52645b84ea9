//! Time system calls: clock_gettime, clock_getres, nanosleep.

use super::nr::*;
use super::{check, syscall2, SysResult};

/// Wall-clock time.
pub const CLOCK_REALTIME: u32 = 0;
/// Monotonic time since an unspecified start.
pub const CLOCK_MONOTONIC: u32 = 1;
/// CPU time of the process.
pub const CLOCK_PROCESS_CPUTIME_ID: u32 = 2;
/// CPU time of the thread.
pub const CLOCK_THREAD_CPUTIME_ID: u32 = 3;
/// Monotonic, not subject to NTP slewing.
pub const CLOCK_MONOTONIC_RAW: u32 = 4;
/// Monotonic, including time suspended.
pub const CLOCK_BOOTTIME: u32 = 7;

/// `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i64,
}

/// `clock_gettime(clock, &ts)`.
pub fn clock_gettime(clock: u32) -> SysResult<Timespec> {
    let mut ts = Timespec::default();
    // SAFETY: ts is writable.
    check(unsafe {
        syscall2(
            SYS_clock_gettime,
            clock as usize,
            &mut ts as *mut Timespec as usize,
        )
    })?;
    Ok(ts)
}

/// `clock_getres(clock, &res)`.
pub fn clock_getres(clock: u32) -> SysResult<Timespec> {
    let mut ts = Timespec::default();
    // SAFETY: ts is writable.
    check(unsafe {
        syscall2(
            SYS_clock_getres,
            clock as usize,
            &mut ts as *mut Timespec as usize,
        )
    })?;
    Ok(ts)
}

/// `nanosleep(&req, &rem)`: on `EINTR` the remaining time is lost; callers
/// that care can loop with [`clock_gettime`].
pub fn nanosleep(req: &Timespec) -> SysResult<()> {
    // SAFETY: req is readable; rem is NULL.
    check(unsafe { syscall2(SYS_nanosleep, req as *const Timespec as usize, 0) }).map(drop)
}
