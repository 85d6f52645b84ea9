//! POSIX per-process timers (`kernel/time/posix-timers.c`): timer_create, timer_settime,
//! timer_gettime, timer_getoverrun, timer_delete on the REALTIME, MONOTONIC and BOOTTIME
//! clocks, notifying by a signal to the process (SIGEV_SIGNAL), to one thread
//! (SIGEV_THREAD_ID, what glibc's SIGEV_THREAD uses) or not at all (SIGEV_NONE).
//! coreutils' `timeout` arms one.
//!
//! Expiry runs from the scheduler tick, like the sleeps and ITIMER_REAL
//! ([`super::timer`]), on the monotonic clock: an absolute REALTIME time is converted when
//! the timer is set. A timer whose signal is still pending when it expires again is not
//! queued twice; the expiry counts as an overrun, added to the signal's `si_overrun` when
//! it is taken ([`on_dequeue`]) and reported by timer_getoverrun. The CPU-time clocks
//! are refused (EOPNOTSUPP).

use alloc::vec::Vec;

use super::signal::{self, SigInfo, SI_TIMER};
use super::{current, Task};
use crate::mm::uaccess::{copy_from_user, copy_to_user, put_user};
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, SysResult, EAGAIN, EINVAL, ENOMEM, EOPNOTSUPP, ESRCH};

const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u32 = 2;
const CLOCK_THREAD_CPUTIME_ID: u32 = 3;
const CLOCK_BOOTTIME: u32 = 7;
const CLOCK_REALTIME_ALARM: u32 = 8;
const CLOCK_BOOTTIME_ALARM: u32 = 9;
const CLOCK_TAI: u32 = 11;
const SIGEV_SIGNAL: u32 = 0;
const SIGEV_NONE: u32 = 1;
const SIGEV_THREAD_ID: u32 = 4;
const TIMER_ABSTIME: u64 = 1;
/// Timers per process (Linux bounds them by RLIMIT_SIGPENDING).
const MAX_TIMERS: usize = 256;
const NSEC_PER_SEC: u64 = 1_000_000_000;

struct PosixTimer {
    /// The process (its leader) that owns the timer.
    owner: &'static Task,
    id: i32,
    /// Whether deadlines are absolute REALTIME times (converted at set time).
    realtime: bool,
    notify: u32,
    signo: u8,
    /// `sigev_value`, handed back in `si_value`.
    value: u64,
    /// SIGEV_THREAD_ID's thread.
    thread: Option<&'static Task>,
    /// Monotonic ns of the next expiry; 0 when disarmed.
    deadline: u64,
    interval: u64,
    /// Expiries not signalled since the last signal was queued.
    overrun_pending: i32,
    /// The overrun count of the last signal queued (timer_getoverrun).
    overrun_last: i32,
}

static TIMERS: IrqLock<Vec<PosixTimer>> = IrqLock::new("posix_timers", Vec::new());

/// `timer_create(clock, sevp, timerid)`.
pub fn sys_timer_create(clock: u64, sevp: u64, out: u64) -> SysResult {
    let me = current().ok_or(ESRCH)?;
    let owner = me.group_leader_static();
    let clock = clock as u32;
    let realtime = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM | CLOCK_TAI => true,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => false,
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => return Err(EOPNOTSUPP),
        _ => return Err(EINVAL),
    };
    // `struct sigevent`: sigev_value (8), sigev_signo (4), sigev_notify (4), then
    // sigev_notify_thread_id (4).
    let (value, signo, notify, tid) = if sevp != 0 {
        let mut b = [0u8; 20];
        copy_from_user(&mut b, sevp)?;
        (
            u64::from_le_bytes(b[0..8].try_into().unwrap_or([0; 8])),
            i32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            i32::from_le_bytes([b[16], b[17], b[18], b[19]]),
        )
    } else {
        (u64::MAX, signal::SIGALRM as i32, SIGEV_SIGNAL, 0)
    };
    let thread = match notify {
        SIGEV_NONE => None,
        SIGEV_SIGNAL | SIGEV_THREAD_ID => {
            if !(1..=signal::NSIG as i32).contains(&signo) {
                return Err(EINVAL);
            }
            if notify == SIGEV_THREAD_ID {
                // The thread must be in the caller's group (`good_sigevent`).
                let t = super::sched::find(tid as u32)
                    .filter(|t| tid > 0 && t.tgid() == me.tgid())
                    .ok_or(EINVAL)?;
                Some(t)
            } else {
                None
            }
        }
        _ => return Err(EINVAL),
    };
    let id = {
        let all = TIMERS.lock();
        if all.iter().filter(|t| core::ptr::eq(t.owner, owner)).count() >= MAX_TIMERS {
            return Err(EAGAIN);
        }
        // The lowest id the process does not use.
        let mut id = 0;
        while all
            .iter()
            .any(|t| core::ptr::eq(t.owner, owner) && t.id == id)
        {
            id += 1;
        }
        id
    };
    // The id goes out first: a bad pointer fails before anything is allocated.
    put_user(out, id)?;
    // Without a sigevent, si_value is the timer id.
    let value = if sevp == 0 { id as u64 } else { value };
    let mut all = TIMERS.lock();
    all.try_reserve(1).map_err(|_| ENOMEM)?;
    all.push(PosixTimer {
        owner,
        id,
        realtime,
        notify,
        signo: signo as u8,
        value,
        thread,
        deadline: 0,
        interval: 0,
        overrun_pending: 0,
        overrun_last: 0,
    });
    Ok(0)
}

/// Run `f` on the caller's timer `id` (EINVAL if there is none).
fn with_timer<R>(id: u64, f: impl FnOnce(&mut PosixTimer) -> R) -> Result<R, Errno> {
    let me = current().ok_or(ESRCH)?;
    let owner = me.leader();
    let id = id as i32;
    let mut all = TIMERS.lock();
    let t = all
        .iter_mut()
        .find(|t| core::ptr::eq(t.owner, owner) && t.id == id)
        .ok_or(EINVAL)?;
    Ok(f(t))
}

/// `struct itimerspec` from nanoseconds: it_interval, then it_value.
fn itimerspec(interval: u64, value: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0..8].copy_from_slice(&(interval / NSEC_PER_SEC).to_le_bytes());
    b[8..16].copy_from_slice(&(interval % NSEC_PER_SEC).to_le_bytes());
    b[16..24].copy_from_slice(&(value / NSEC_PER_SEC).to_le_bytes());
    b[24..32].copy_from_slice(&(value % NSEC_PER_SEC).to_le_bytes());
    b
}

/// Time left and interval of a timer.
fn current_value(t: &PosixTimer, now: u64) -> (u64, u64) {
    if t.deadline == 0 {
        (0, t.interval)
    } else {
        // An expired one-shot SIGEV_NONE timer reads 0; an armed one at least 1 ns.
        (t.deadline.saturating_sub(now).max(1), t.interval)
    }
}

/// `timer_settime(id, flags, new, old)`.
pub fn sys_timer_settime(id: u64, flags: u64, new: u64, old: u64) -> SysResult {
    let interval = super::super::syscall::time::get_timespec(new)?;
    let value = super::super::syscall::time::get_timespec(new + 16)?;
    let now = super::timer::now_ns();
    let prev = with_timer(id, |t| {
        let prev = current_value(t, now);
        t.interval = interval;
        t.overrun_pending = 0;
        t.deadline = if value == 0 {
            0
        } else if flags & TIMER_ABSTIME != 0 {
            let mono = if t.realtime {
                super::timer::realtime_to_monotonic(value)
            } else {
                value
            };
            // A time already past fires at the next tick.
            mono.max(1)
        } else {
            now.saturating_add(value)
        };
        prev
    })?;
    if old != 0 {
        copy_to_user(old, &itimerspec(prev.1, prev.0))?;
    }
    Ok(0)
}

/// `timer_gettime(id, cur)`.
pub fn sys_timer_gettime(id: u64, cur: u64) -> SysResult {
    let now = super::timer::now_ns();
    let (left, interval) = with_timer(id, |t| current_value(t, now))?;
    copy_to_user(cur, &itimerspec(interval, left))?;
    Ok(0)
}

/// `timer_getoverrun(id)`.
pub fn sys_timer_getoverrun(id: u64) -> SysResult {
    with_timer(id, |t| t.overrun_last as u64)
}

/// `timer_delete(id)`.
pub fn sys_timer_delete(id: u64) -> SysResult {
    let me = current().ok_or(ESRCH)?;
    let owner = me.leader();
    let id = id as i32;
    let mut all = TIMERS.lock();
    let before = all.len();
    all.retain(|t| !(core::ptr::eq(t.owner, owner) && t.id == id));
    if all.len() == before {
        return Err(EINVAL);
    }
    release_if_empty(&mut all);
    Ok(0)
}

/// The list holds no memory while no timer exists (a process that made one and ended
/// leaves the kernel as it found it).
fn release_if_empty(all: &mut Vec<PosixTimer>) {
    if all.is_empty() {
        *all = Vec::new();
    }
}

/// The process ends or execs (`exit_itimers`): its timers go.
pub fn exit(owner: &Task) {
    let mut all = TIMERS.lock();
    all.retain(|t| !core::ptr::eq(t.owner, owner));
    release_if_empty(&mut all);
}

/// A thread ends: SIGEV_THREAD_ID timers aimed at it go to the process instead of to a
/// freed task (Linux would no longer deliver them; the signal goes to the group here).
pub fn thread_exit(t: &Task) {
    for timer in TIMERS.lock().iter_mut() {
        if timer.thread.is_some_and(|x| core::ptr::eq(x, t)) {
            timer.thread = None;
        }
    }
}

/// A timer's signal is taken (delivered or waited for: `posixtimer_rearm` at dequeue):
/// the expiries counted while it was pending join its `si_overrun`, and timer_getoverrun
/// reports that count from now on.
pub fn on_dequeue(t: &Task, mut info: SigInfo) -> SigInfo {
    if info.code != SI_TIMER {
        return info;
    }
    let owner = t.leader();
    let id = info.pid as i32;
    if let Some(timer) = TIMERS
        .lock()
        .iter_mut()
        .find(|x| core::ptr::eq(x.owner, owner) && x.id == id)
    {
        info.status = info.status.saturating_add(timer.overrun_pending);
        timer.overrun_pending = 0;
        timer.overrun_last = info.status;
    }
    info
}

/// Whether an armed timer waits for the clock.
pub fn pending() -> bool {
    TIMERS.lock().iter().any(|t| t.deadline != 0)
}

/// Fire the timers whose time came (from the tick).
pub fn expire(now: u64) {
    // Signals are sent without the list's lock held.
    let mut fire: Vec<(&'static Task, bool, SigInfo)> = Vec::new();
    {
        let mut all = TIMERS.lock();
        for t in all.iter_mut() {
            if t.deadline == 0 || t.deadline > now {
                continue;
            }
            let mut missed = 0i32;
            if let Some(late) = (now - t.deadline).checked_div(t.interval) {
                missed = late.min(i32::MAX as u64) as i32;
                t.deadline = t
                    .deadline
                    .saturating_add((late + 1).saturating_mul(t.interval));
            } else {
                t.deadline = 0;
            }
            if t.notify == SIGEV_NONE {
                continue;
            }
            let target = t.thread.unwrap_or(t.owner);
            // Still queued from an earlier expiry: count instead of queuing again.
            let queued = {
                let s = target.signals.lock();
                let i = s.info[t.signo as usize - 1];
                s.pending & (1u64 << (t.signo - 1)) != 0
                    && i.code == SI_TIMER
                    && i.pid == t.id as u32
            };
            if queued {
                t.overrun_pending = t.overrun_pending.saturating_add(1).saturating_add(missed);
                continue;
            }
            let overrun = t.overrun_pending.saturating_add(missed);
            t.overrun_pending = 0;
            t.overrun_last = overrun;
            if fire.try_reserve(1).is_ok() {
                fire.push((
                    target,
                    t.thread.is_some(),
                    SigInfo {
                        signo: t.signo,
                        code: SI_TIMER,
                        addr: t.value,
                        pid: t.id as u32,
                        status: overrun,
                    },
                ));
            }
        }
    }
    for (target, thread, info) in fire {
        if thread {
            signal::send(target, info.signo, info);
        } else {
            signal::send_process(target, info.signo, info);
        }
    }
}
