//! Sleeping on the clock (`kernel/time/hrtimer.c`'s role, at tick resolution): a task that
//! sleeps until a deadline puts itself on the timer list, and the scheduler tick wakes every
//! task whose deadline has passed. nanosleep, clock_nanosleep, and the timeouts of poll,
//! select and futex sleep here; a signal wakes the sleeper early. The tick also fires the
//! processes' ITIMER_REAL timers (`alarm`, `setitimer`): SIGALRM.
//!
//! The clock is the virtual monotonic clock (the TSC, nanoseconds); the tick every
//! [`super::sched::TIMESLICE_NS`] checks the list, so a sleep ends at the first tick at or
//! after its deadline, as with Linux's low-resolution timers.

use alloc::vec::Vec;

use super::{current, sched, signal, Task};
use crate::sync::IrqLock;

/// Sleepers and their deadlines (monotonic ns). Short: one entry per sleeping task.
static TIMERS: IrqLock<Vec<(u64, &'static Task)>> = IrqLock::new("timers", Vec::new());

/// What `restart_syscall` resumes after a timed wait was interrupted and the signal ran
/// no handler (Linux's `restart_block`): the call and its absolute deadline, so the wait
/// goes on for the time that was left.
#[derive(Clone, Copy, Debug)]
pub enum RestartBlock {
    /// nanosleep/clock_nanosleep: where to report the time left if interrupted again.
    Nanosleep { deadline: u64, rmtp: u64 },
    /// poll with a timeout (`do_restart_poll`).
    Poll { ufds: u64, nfds: u64, deadline: u64 },
    /// FUTEX_WAIT(_BITSET) with a timeout (`futex_wait_restart`).
    Futex {
        uaddr: u64,
        private: bool,
        val: u32,
        bitset: u32,
        deadline: u64,
    },
}

/// Store `rb` for `restart_syscall` (returns the code that asks for it).
pub fn set_restart(rb: RestartBlock) -> crate::syscall::errno::Errno {
    if let Some(t) = current() {
        *t.restart_block.lock() = Some(rb);
    }
    crate::syscall::errno::ERESTART_RESTARTBLOCK
}

/// The monotonic clock in nanoseconds.
pub fn now_ns() -> u64 {
    crate::syscall::info::monotonic_ns()
}

/// CLOCK_REALTIME minus the monotonic clock, in nanoseconds (Linux's `offs_real`): set at
/// boot from the RTC ([`init_realtime`]) and by clock_settime/settimeofday. Both clocks
/// advance together; only a set moves this offset.
static REALTIME_OFFSET_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Start the wall clock at the RTC's reading (`timekeeping_init`): the RTC was read just
/// now, so the offset is its time minus the monotonic clock at this point.
pub fn init_realtime() {
    let rtc_ns = crate::drivers::rtc::boot_seconds().saturating_mul(1_000_000_000);
    set_realtime_ns(rtc_ns);
}

/// The offset of CLOCK_REALTIME from the monotonic clock.
pub fn realtime_offset_ns() -> u64 {
    REALTIME_OFFSET_NS.load(core::sync::atomic::Ordering::Relaxed)
}

/// CLOCK_REALTIME in nanoseconds since the epoch.
pub fn realtime_ns() -> u64 {
    now_ns().wrapping_add(realtime_offset_ns())
}

/// Set CLOCK_REALTIME (`do_settimeofday64`): the monotonic clock does not move, the
/// offset does; the vDSO's copy follows. A time before boot's monotonic zero is clamped
/// to it (the offset is unsigned; Linux refuses such times with EINVAL too).
pub fn set_realtime_ns(ns: u64) {
    let off = ns.saturating_sub(now_ns());
    REALTIME_OFFSET_NS.store(off, core::sync::atomic::Ordering::Relaxed);
    super::vdso::set_realtime_offset(off);
}

/// An absolute CLOCK_REALTIME deadline as a monotonic one (the sleep lists run on the
/// monotonic clock). A deadline set before a later clock_settime keeps its monotonic
/// value, where Linux would re-evaluate it (`clock_was_set`): documented simplification.
pub fn realtime_to_monotonic(ns: u64) -> u64 {
    ns.saturating_sub(realtime_offset_ns())
}

/// Why a timed sleep ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The deadline passed.
    Timeout,
    /// A signal is pending.
    Signal,
    /// Something else woke the task ([`sched::wake`]): the caller re-checks its condition.
    Woken,
}

/// Sleep once until `deadline` (or forever for `None`), a signal, or a wake-up. The caller
/// queued itself wherever a wake-up may come from beforehand, and loops on its condition.
pub fn sleep_once(deadline: Option<u64>) -> Wake {
    let Some(me) = current() else {
        return Wake::Timeout;
    };
    if signal::has_pending(me) {
        return Wake::Signal;
    }
    if let Some(d) = deadline {
        if now_ns() >= d {
            return Wake::Timeout;
        }
        let mut t = TIMERS.lock();
        if t.try_reserve(1).is_err() {
            // No memory for the timer entry: report the timeout rather than sleep forever.
            return Wake::Timeout;
        }
        t.push((d, me));
    }
    sched::sleep();
    cancel(me);
    if signal::has_pending(me) {
        Wake::Signal
    } else if deadline.is_some_and(|d| now_ns() >= d) {
        Wake::Timeout
    } else {
        Wake::Woken
    }
}

/// Sleep until `deadline`: true once it passed, false if a signal is pending first.
pub fn sleep_until(deadline: u64) -> bool {
    loop {
        match sleep_once(Some(deadline)) {
            Wake::Timeout => return true,
            Wake::Signal => return false,
            Wake::Woken => {}
        }
    }
}

/// Take `t` off the timer list.
pub fn cancel(t: &Task) {
    TIMERS.lock().retain(|(_, x)| !core::ptr::eq(*x, t));
}

/// Wake the sleepers whose deadline passed and fire the interval timers (from the tick).
pub fn expire() {
    let now = now_ns();
    expire_itimers(now);
    super::posix_timers::expire(now);
    let mut due: [Option<&'static Task>; 8] = [None; 8];
    loop {
        let mut n = 0;
        {
            let mut t = TIMERS.lock();
            let mut i = 0;
            while i < t.len() && n < due.len() {
                if t[i].0 <= now {
                    due[n] = Some(t.swap_remove(i).1);
                    n += 1;
                } else {
                    i += 1;
                }
            }
        }
        for t in due.iter_mut().take(n) {
            if let Some(t) = t.take() {
                sched::wake(t);
            }
        }
        if n < due.len() {
            return;
        }
    }
}

/// Whether a sleeper or an interval timer waits for the clock (an idle CPU then waits for
/// the tick, which is not a hang).
pub fn pending() -> bool {
    !TIMERS.lock().is_empty() || !ITIMERS.lock().is_empty() || super::posix_timers::pending()
}

/// A process's real-time interval timer (`ITIMER_REAL`, also `alarm`): SIGALRM at the
/// deadline, again every `interval` if non-zero.
struct Itimer {
    task: &'static Task,
    deadline: u64,
    interval: u64,
}

/// Armed real-time timers, one per process at most.
static ITIMERS: IrqLock<Vec<Itimer>> = IrqLock::new("itimers", Vec::new());

/// Arm (or with `value` 0 disarm) `t`'s ITIMER_REAL; returns the old (time left,
/// interval) in nanoseconds. ENOMEM if the timer list cannot grow.
pub fn set_itimer_real(
    t: &'static Task,
    value: u64,
    interval: u64,
) -> Result<(u64, u64), crate::syscall::errno::Errno> {
    let now = now_ns();
    let mut l = ITIMERS.lock();
    let old = l
        .iter()
        .position(|x| core::ptr::eq(x.task, t))
        .map(|i| l.swap_remove(i));
    let old = old.map_or((0, 0), |o| {
        (o.deadline.saturating_sub(now).max(1), o.interval)
    });
    if value != 0 {
        l.try_reserve(1)
            .map_err(|_| crate::syscall::errno::ENOMEM)?;
        l.push(Itimer {
            task: t,
            deadline: now.saturating_add(value),
            interval,
        });
    }
    Ok(old)
}

/// `t`'s ITIMER_REAL: (time left, interval) in nanoseconds, (0, 0) when disarmed.
pub fn get_itimer_real(t: &Task) -> (u64, u64) {
    let now = now_ns();
    ITIMERS
        .lock()
        .iter()
        .find(|x| core::ptr::eq(x.task, t))
        .map_or((0, 0), |o| {
            (o.deadline.saturating_sub(now).max(1), o.interval)
        })
}

/// Forget `t`'s timers (the process ends: the task may be freed).
pub fn exit_timers(t: &Task) {
    cancel(t);
    ITIMERS.lock().retain(|x| !core::ptr::eq(x.task, t));
    {
        let mut l = CPU_ITIMERS.lock();
        l.retain(|x| !core::ptr::eq(x.task, t));
        if l.is_empty() {
            *l = Vec::new();
        }
    }
    super::posix_timers::exit(t);
}

/// A thread that is not the last of its group exits: only its own sleep goes (the
/// process's ITIMER_REAL, kept on the leader, lives on).
pub fn exit_thread_timers(t: &Task) {
    cancel(t);
    super::posix_timers::thread_exit(t);
}

/// Send SIGALRM for every expired interval timer (from the tick), re-arming periodic ones.
fn expire_itimers(now: u64) {
    let mut fired: [Option<&'static Task>; 8] = [None; 8];
    loop {
        let mut n = 0;
        {
            let mut l = ITIMERS.lock();
            let mut i = 0;
            while i < l.len() && n < fired.len() {
                if l[i].deadline <= now {
                    fired[n] = Some(l[i].task);
                    n += 1;
                    if l[i].interval != 0 {
                        // The next period from the missed deadline, skipping periods the
                        // tick was too coarse for (they count as one signal anyway).
                        let iv = l[i].interval;
                        let late = now - l[i].deadline;
                        l[i].deadline += (late / iv + 1) * iv;
                        i += 1;
                    } else {
                        l.swap_remove(i);
                    }
                } else {
                    i += 1;
                }
            }
        }
        for t in fired.iter_mut().take(n) {
            if let Some(t) = t.take() {
                signal::send_process(
                    t,
                    signal::SIGALRM,
                    signal::SigInfo {
                        signo: signal::SIGALRM,
                        code: signal::SI_KERNEL,
                        addr: 0,
                        pid: 0,
                        status: 0,
                    },
                );
            }
        }
        if n < fired.len() {
            return;
        }
    }
}

/// Which CPU-time interval timer (`setitimer`'s ITIMER_VIRTUAL, ITIMER_PROF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuTimer {
    /// Counts user time; SIGVTALRM.
    Virtual,
    /// Counts user and system time; SIGPROF.
    Prof,
}

/// An armed CPU-time interval timer of a process (its leader).
struct CpuItimer {
    task: &'static Task,
    which: CpuTimer,
    /// CPU time left before it fires (ns).
    left: u64,
    interval: u64,
}

static CPU_ITIMERS: IrqLock<Vec<CpuItimer>> = IrqLock::new("cpu_itimers", Vec::new());

/// Arm (value 0: disarm) `t`'s ITIMER_VIRTUAL or ITIMER_PROF; returns the old (left,
/// interval). CPU time is counted by the scheduler tick's samples (as Linux's tick-based
/// accounting): each tick spent in the process takes a tick off the PROF timer, each one
/// in user mode off the VIRTUAL one too.
pub fn set_cpu_itimer(
    t: &'static Task,
    which: CpuTimer,
    value: u64,
    interval: u64,
) -> Result<(u64, u64), crate::syscall::errno::Errno> {
    let mut l = CPU_ITIMERS.lock();
    let old = l
        .iter()
        .position(|x| core::ptr::eq(x.task, t) && x.which == which)
        .map(|i| l.swap_remove(i));
    let old = old.map_or((0, 0), |o| (o.left.max(1), o.interval));
    if value != 0 {
        l.try_reserve(1)
            .map_err(|_| crate::syscall::errno::ENOMEM)?;
        l.push(CpuItimer {
            task: t,
            which,
            left: value,
            interval,
        });
    }
    if l.is_empty() {
        *l = Vec::new();
    }
    Ok(old)
}

/// `t`'s ITIMER_VIRTUAL or ITIMER_PROF: (left, interval), (0, 0) when disarmed.
pub fn get_cpu_itimer(t: &Task, which: CpuTimer) -> (u64, u64) {
    CPU_ITIMERS
        .lock()
        .iter()
        .find(|x| core::ptr::eq(x.task, t) && x.which == which)
        .map_or((0, 0), |o| (o.left.max(1), o.interval))
}

/// A scheduler tick of `tick_ns` went to `t`'s process, in user mode or not: count it
/// down on its CPU-time timers and signal the ones that ran out.
pub fn cpu_itimers_tick(t: &Task, user: bool, tick_ns: u64) {
    let leader = t.leader();
    let mut fired: [Option<(&'static Task, u8)>; 2] = [None; 2];
    {
        let mut l = CPU_ITIMERS.lock();
        if l.is_empty() {
            return;
        }
        let mut i = 0;
        let mut n = 0;
        while i < l.len() {
            let x = &mut l[i];
            if !core::ptr::eq(x.task, leader) || (x.which == CpuTimer::Virtual && !user) {
                i += 1;
                continue;
            }
            x.left = x.left.saturating_sub(tick_ns);
            if x.left > 0 {
                i += 1;
                continue;
            }
            let sig = match x.which {
                CpuTimer::Virtual => signal::SIGVTALRM,
                CpuTimer::Prof => signal::SIGPROF,
            };
            if n < fired.len() {
                fired[n] = Some((x.task, sig));
                n += 1;
            }
            if x.interval != 0 {
                x.left = x.interval;
                i += 1;
            } else {
                l.swap_remove(i);
            }
        }
        if l.is_empty() {
            *l = Vec::new();
        }
    }
    for (task, sig) in fired.into_iter().flatten() {
        signal::send_process(
            task,
            sig,
            signal::SigInfo {
                signo: sig,
                code: signal::SI_KERNEL,
                addr: 0,
                pid: 0,
                status: 0,
            },
        );
    }
}
