//! Time system calls (`kernel/time/`): nanosleep, clock_nanosleep (relative and
//! TIMER_ABSTIME), restart_syscall, clock_getres, gettimeofday, settimeofday,
//! clock_settime, time, times. Every clock reads the virtual monotonic clock; the REALTIME
//! clocks add an offset set at boot from the RTC and by clock_settime/settimeofday
//! ([`crate::proc::timer::realtime_ns`]). Sleeps wait on the scheduler tick
//! ([`crate::proc::timer`]), on the monotonic clock: an absolute REALTIME deadline is
//! converted when the sleep starts.
//!
//! Interrupted sleeps follow Linux: a relative sleep returns `-ERESTART_RESTARTBLOCK`
//! with the time left stored for `restart_syscall` and written to `rem`, so it continues
//! after a signal without a handler (a stop and continue) and fails with EINTR after a
//! handler, SA_RESTART or not; an absolute sleep returns `-ERESTARTNOHAND` and is simply
//! restarted when no handler ran.

use super::errno::{Errno, SysResult, EFAULT, EINTR, EINVAL, EOPNOTSUPP, ERESTARTNOHAND};
use super::Args;
use crate::mm::uaccess::{copy_from_user, copy_to_user, put_user};
use crate::proc::timer::{self, RestartBlock};
use crate::proc::{self, sched};

const NSEC_PER_SEC: u64 = 1_000_000_000;

/// Clock ids.
const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
const CLOCK_MONOTONIC_RAW: u64 = 4;
const CLOCK_REALTIME_COARSE: u64 = 5;
const CLOCK_MONOTONIC_COARSE: u64 = 6;
const CLOCK_BOOTTIME: u64 = 7;
const CLOCK_REALTIME_ALARM: u64 = 8;
const CLOCK_BOOTTIME_ALARM: u64 = 9;
const CLOCK_TAI: u64 = 11;
/// `clock_nanosleep` flag: the time is a deadline.
const TIMER_ABSTIME: u64 = 1;

/// Read a `struct timespec` and check it (`timespec64_valid`): EINVAL for a negative
/// second count or nanoseconds outside 0..1e9. Returns nanoseconds (saturating).
pub fn get_timespec(addr: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 16];
    copy_from_user(&mut b, addr)?;
    let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let nsec = i64::from_le_bytes(b[8..].try_into().unwrap_or([0; 8]));
    if sec < 0 || !(0..NSEC_PER_SEC as i64).contains(&nsec) {
        return Err(EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(NSEC_PER_SEC)
        .saturating_add(nsec as u64))
}

/// Write nanoseconds as a `struct timespec`.
pub fn put_timespec(addr: u64, ns: u64) -> Result<(), Errno> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / NSEC_PER_SEC).to_le_bytes());
    b[8..].copy_from_slice(&(ns % NSEC_PER_SEC).to_le_bytes());
    copy_to_user(addr, &b)
}

/// Sleep until `deadline`; on a signal, remember the rest for `restart_syscall` and
/// report it in `rmtp` (if given).
fn sleep_relative(deadline: u64, rmtp: u64) -> SysResult {
    if timer::sleep_until(deadline) {
        return Ok(0);
    }
    let left = deadline.saturating_sub(timer::now_ns());
    if left == 0 {
        return Ok(0);
    }
    if rmtp != 0 {
        put_timespec(rmtp, left).map_err(|_| EFAULT)?;
    }
    Err(timer::set_restart(RestartBlock::Nanosleep {
        deadline,
        rmtp,
    }))
}

/// `nanosleep(req, rem)`.
pub fn sys_nanosleep(a: &Args) -> SysResult {
    let ns = get_timespec(a.0[0])?;
    let deadline = timer::now_ns().saturating_add(ns);
    sleep_relative(deadline, a.0[1])
}

/// Whether `clock` can be slept on (`clock_nanosleep`'s answer: EINVAL for an unknown id,
/// EOPNOTSUPP for clocks without nanosleep, the thread CPU clock among them).
fn sleep_clock(clock: u64) -> Result<(), Errno> {
    match clock {
        CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_TAI => Ok(()),
        CLOCK_PROCESS_CPUTIME_ID => Ok(()),
        CLOCK_THREAD_CPUTIME_ID
        | CLOCK_MONOTONIC_RAW
        | CLOCK_REALTIME_COARSE
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_REALTIME_ALARM
        | CLOCK_BOOTTIME_ALARM => Err(EOPNOTSUPP),
        _ => Err(EINVAL),
    }
}

/// `clock_nanosleep(clock, flags, req, rem)`.
pub fn sys_clock_nanosleep(a: &Args) -> SysResult {
    let (clock, flags, req, rem) = (a.0[0] as u32 as u64, a.0[1], a.0[2], a.0[3]);
    sleep_clock(clock)?;
    let ns = get_timespec(req)?;
    if flags & TIMER_ABSTIME != 0 {
        // The sleep list runs on the monotonic clock: a REALTIME (or TAI) deadline is
        // converted with the current offset.
        let ns = if matches!(clock, CLOCK_REALTIME | CLOCK_TAI) {
            timer::realtime_to_monotonic(ns)
        } else {
            ns
        };
        return if timer::sleep_until(ns) {
            Ok(0)
        } else {
            Err(ERESTARTNOHAND)
        };
    }
    let deadline = timer::now_ns().saturating_add(ns);
    sleep_relative(deadline, rem)
}

/// `restart_syscall()`: continue the wait a signal without a handler interrupted (a
/// sleep, a poll, a futex wait, each with its deadline); EINTR if there is none
/// (`do_no_restart_syscall`).
pub fn sys_restart_syscall(_: &Args) -> SysResult {
    let t = proc::current().ok_or(EINTR)?;
    let rb = t.restart_block.lock().take();
    match rb {
        Some(RestartBlock::Nanosleep { deadline, rmtp }) => sleep_relative(deadline, rmtp),
        Some(RestartBlock::Poll {
            ufds,
            nfds,
            deadline,
        }) => super::poll::restart_poll(ufds, nfds, deadline),
        Some(RestartBlock::Futex {
            uaddr,
            private,
            val,
            bitset,
            deadline,
        }) => super::futex::restart_wait(uaddr, private, val, bitset, deadline),
        None => Err(EINTR),
    }
}

/// `clock_getres(clock, res)`: 1 ns for the high-resolution clocks, the tick for the
/// coarse ones; `res` may be NULL.
pub fn sys_clock_getres(a: &Args) -> SysResult {
    let clock = a.0[0] as u32 as u64;
    let res = match clock {
        CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE => sched::TIMESLICE_NS as u64,
        CLOCK_REALTIME..=CLOCK_BOOTTIME_ALARM | CLOCK_TAI => 1,
        _ => return Err(EINVAL),
    };
    if a.0[1] != 0 {
        put_timespec(a.0[1], res)?;
    }
    Ok(0)
}

/// `gettimeofday(tv, tz)`: either may be NULL; the time zone is UTC.
pub fn sys_gettimeofday(a: &Args) -> SysResult {
    let ns = timer::realtime_ns();
    if a.0[0] != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / NSEC_PER_SEC).to_le_bytes());
        b[8..].copy_from_slice(&((ns % NSEC_PER_SEC) / 1000).to_le_bytes());
        copy_to_user(a.0[0], &b)?;
    }
    if a.0[1] != 0 {
        copy_to_user(a.0[1], &[0u8; 8])?;
    }
    Ok(0)
}

/// `clock_settime(clock, ts)`: only CLOCK_REALTIME can be set (EINVAL for the others, as
/// Linux's posix clocks without `clock_set`). Every process is root here, so CAP_SYS_TIME
/// is never missing.
pub fn sys_clock_settime(a: &Args) -> SysResult {
    let clock = a.0[0] as u32 as u64;
    let ns = get_timespec(a.0[1])?;
    if clock != CLOCK_REALTIME {
        return Err(EINVAL);
    }
    timer::set_realtime_ns(ns);
    Ok(0)
}

/// `settimeofday(tv, tz)`: `tv` may be NULL (only the time zone, which is ignored: the
/// kernel keeps UTC, as Linux does unless told to warp the RTC).
pub fn sys_settimeofday(a: &Args) -> SysResult {
    if a.0[0] == 0 {
        return Ok(0);
    }
    let ns = get_timeval(a.0[0])?;
    timer::set_realtime_ns(ns);
    Ok(0)
}

/// `time(tloc)`: seconds since the epoch, also stored at `tloc` unless NULL.
pub fn sys_time(a: &Args) -> SysResult {
    let s = timer::realtime_ns() / NSEC_PER_SEC;
    if a.0[0] != 0 {
        put_user(a.0[0], s)?;
    }
    Ok(s)
}

/// `USER_HZ`: the unit of `clock_t`.
const USER_HZ: u64 = 100;

/// `times(buf)`: the process's and its reaped children's user and system time in clock
/// ticks ([`crate::proc::cputime`]); returns clock ticks since boot.
pub fn sys_times(a: &Args) -> SysResult {
    use crate::proc::cputime::{children_usage, process_usage, to_clock_t};
    if a.0[0] != 0 {
        let t = proc::current().ok_or(EINTR)?;
        let (u, s) = process_usage(t).split();
        let (cu, cs) = children_usage(t).split();
        let mut b = [0u8; 32];
        for (i, ns) in [u, s, cu, cs].into_iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&to_clock_t(ns).to_le_bytes());
        }
        copy_to_user(a.0[0], &b)?;
    }
    Ok(super::info::monotonic_ns() / (NSEC_PER_SEC / USER_HZ))
}

const ITIMER_REAL: u64 = 0;
const ITIMER_VIRTUAL: u64 = 1;
const ITIMER_PROF: u64 = 2;
const USEC_PER_SEC: u64 = 1_000_000;

/// Read a `struct timeval` as nanoseconds: EINVAL for negative or >= 1e6 microseconds.
fn get_timeval(addr: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 16];
    copy_from_user(&mut b, addr)?;
    let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let usec = i64::from_le_bytes(b[8..].try_into().unwrap_or([0; 8]));
    if sec < 0 || !(0..USEC_PER_SEC as i64).contains(&usec) {
        return Err(EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(NSEC_PER_SEC)
        .saturating_add(usec as u64 * 1000))
}

/// A `struct timeval` of nanoseconds, rounded up to a microsecond as Linux reports timers.
fn timeval_bytes(ns: u64) -> [u8; 16] {
    let us = ns.div_ceil(1000);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(us / USEC_PER_SEC).to_le_bytes());
    b[8..].copy_from_slice(&(us % USEC_PER_SEC).to_le_bytes());
    b
}

/// `struct itimerval { it_interval, it_value }` of (value, interval).
fn itimerval_bytes(value: u64, interval: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&timeval_bytes(interval));
    b[16..].copy_from_slice(&timeval_bytes(value));
    b
}

/// `getitimer(which, value)`.
pub fn sys_getitimer(a: &Args) -> SysResult {
    // ITIMER_REAL belongs to the process: it is kept on the group leader.
    let t = proc::current().ok_or(EINTR)?.group_leader_static();
    let (v, i) = match a.0[0] as u32 as u64 {
        ITIMER_REAL => timer::get_itimer_real(t),
        ITIMER_VIRTUAL => timer::get_cpu_itimer(t, timer::CpuTimer::Virtual),
        ITIMER_PROF => timer::get_cpu_itimer(t, timer::CpuTimer::Prof),
        _ => return Err(EINVAL),
    };
    copy_to_user(a.0[1], &itimerval_bytes(v, i))?;
    Ok(0)
}

/// `setitimer(which, new, old)`: ITIMER_REAL sends SIGALRM from the tick; ITIMER_VIRTUAL
/// (SIGVTALRM) and ITIMER_PROF (SIGPROF) count the process's CPU time by the tick's
/// samples ([`timer::cpu_itimers_tick`]). A NULL `new` disarms, as Linux still allows.
pub fn sys_setitimer(a: &Args) -> SysResult {
    let (which, new, old) = (a.0[0] as u32 as u64, a.0[1], a.0[2]);
    if which > ITIMER_PROF {
        return Err(EINVAL);
    }
    let (value, interval) = if new != 0 {
        (get_timeval(new + 16)?, get_timeval(new)?)
    } else {
        (0, 0)
    };
    let t = proc::current().ok_or(EINTR)?.group_leader_static();
    let prev = match which {
        ITIMER_REAL => timer::set_itimer_real(t, value, interval)?,
        ITIMER_VIRTUAL => timer::set_cpu_itimer(t, timer::CpuTimer::Virtual, value, interval)?,
        _ => timer::set_cpu_itimer(t, timer::CpuTimer::Prof, value, interval)?,
    };
    if old != 0 {
        copy_to_user(old, &itimerval_bytes(prev.0, prev.1))?;
    }
    Ok(0)
}

/// `alarm(seconds)`: SIGALRM after that many seconds (0 cancels); returns the seconds
/// that were left, rounded to the nearest (at least 1 if any time was left), as Linux.
pub fn sys_alarm(a: &Args) -> SysResult {
    let t = proc::current().ok_or(EINTR)?.group_leader_static();
    let secs = a.0[0] as u32 as u64;
    let (left, _) = timer::set_itimer_real(t, secs * NSEC_PER_SEC, 0)?;
    let us = left.div_ceil(1000);
    let (s, u) = (us / USEC_PER_SEC, us % USEC_PER_SEC);
    Ok(if (s == 0 && u != 0) || u >= 500_000 {
        s + 1
    } else {
        s
    })
}
