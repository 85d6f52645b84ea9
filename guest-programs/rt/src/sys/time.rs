//! Time system calls: clock_gettime, clock_getres, gettimeofday, time,
//! nanosleep. (The same clocks are also readable through the vDSO, see
//! [`crate::vdso`].)

use super::nr::*;
use super::{check, syscall1, syscall2, SysResult};

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

/// `struct timeval` (microseconds).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timeval {
    /// Seconds.
    pub tv_sec: i64,
    /// Microseconds, `0..1_000_000`.
    pub tv_usec: i64,
}

/// `gettimeofday(&tv, NULL)`: wall-clock time.
pub fn gettimeofday() -> SysResult<Timeval> {
    let mut tv = Timeval::default();
    // SAFETY: tv is writable; no timezone.
    check(unsafe { syscall2(SYS_gettimeofday, &mut tv as *mut Timeval as usize, 0) })?;
    Ok(tv)
}

/// `time(NULL)`: wall-clock seconds.
pub fn time() -> SysResult<i64> {
    // SAFETY: with NULL the kernel writes nothing.
    check(unsafe { syscall1(SYS_time, 0) }).map(|t| t as i64)
}
