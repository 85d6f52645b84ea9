//! CPU time accounting (`kernel/sched/cputime.c`): how long each task ran, split into user
//! and system time, for times, getrusage, wait4's rusage, /proc/PID/stat and the CPU-time
//! clocks (C's `clock()`).
//!
//! The total is exact: the scheduler adds each running stretch to `rtime`
//! (`sum_exec_runtime`) at every switch, on the virtual clock. The split is sampled, as
//! Linux's tick-based accounting does: each scheduler tick counts for user or system time
//! by the mode it interrupted, and the total is divided in that ratio (`cputime_adjust`).
//! This kernel takes interrupts only in user mode and at preemption points, so a tick
//! that falls due during a system call is counted when the call returns to user mode:
//! system time is under-sampled (documented in README).

use core::sync::atomic::{AtomicU64, Ordering};

use super::{current, Task};

/// One task's counters.
pub struct Acct {
    /// Nanoseconds run, up to the last switch away.
    rtime: AtomicU64,
    /// When the task last started running (while it runs).
    exec_start: AtomicU64,
    /// Ticks that interrupted user mode and kernel mode.
    uticks: AtomicU64,
    sticks: AtomicU64,
}

impl Acct {
    pub const fn new() -> Acct {
        Acct {
            rtime: AtomicU64::new(0),
            exec_start: AtomicU64::new(0),
            uticks: AtomicU64::new(0),
            sticks: AtomicU64::new(0),
        }
    }
}

impl Default for Acct {
    fn default() -> Self {
        Acct::new()
    }
}

/// Resource usage of a task, a process or its reaped children.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub rtime: u64,
    pub uticks: u64,
    pub sticks: u64,
    pub min_flt: u64,
    pub maj_flt: u64,
}

impl Usage {
    pub const fn zero() -> Usage {
        Usage {
            rtime: 0,
            uticks: 0,
            sticks: 0,
            min_flt: 0,
            maj_flt: 0,
        }
    }

    pub fn add(&mut self, o: &Usage) {
        self.rtime += o.rtime;
        self.uticks += o.uticks;
        self.sticks += o.sticks;
        self.min_flt += o.min_flt;
        self.maj_flt += o.maj_flt;
    }

    /// (user, system) nanoseconds: the exact total split in the sampled ratio
    /// (`cputime_adjust`); without samples it is all user time, as on Linux.
    pub fn split(&self) -> (u64, u64) {
        let ticks = self.uticks + self.sticks;
        if ticks == 0 || self.sticks == 0 {
            return (self.rtime, 0);
        }
        if self.uticks == 0 {
            return (0, self.rtime);
        }
        let stime = (u128::from(self.rtime) * u128::from(self.sticks) / u128::from(ticks)) as u64;
        (self.rtime - stime, stime)
    }

    /// `struct rusage` (144 bytes): ru_utime, ru_stime, ru_minflt, ru_majflt; the rest 0.
    pub fn rusage_bytes(&self) -> [u8; 144] {
        let (u, s) = self.split();
        let mut ru = [0u8; 144];
        let tv = |ns: u64| ((ns / 1_000_000_000), (ns % 1_000_000_000) / 1000);
        let (us, uu) = tv(u);
        let (ss, su) = tv(s);
        ru[0..8].copy_from_slice(&us.to_le_bytes());
        ru[8..16].copy_from_slice(&uu.to_le_bytes());
        ru[16..24].copy_from_slice(&ss.to_le_bytes());
        ru[24..32].copy_from_slice(&su.to_le_bytes());
        ru[64..72].copy_from_slice(&self.min_flt.to_le_bytes());
        ru[72..80].copy_from_slice(&self.maj_flt.to_le_bytes());
        ru
    }
}

/// The scheduler switches from `prev` to `next` at `now`.
pub fn switch(prev: &Task, next: &Task, now: u64) {
    let start = prev.acct.exec_start.load(Ordering::Relaxed);
    prev.acct
        .rtime
        .fetch_add(now.saturating_sub(start), Ordering::Relaxed);
    next.acct.exec_start.store(now, Ordering::Relaxed);
}

/// The first task starts running.
pub fn start(t: &Task, now: u64) {
    t.acct.exec_start.store(now, Ordering::Relaxed);
}

/// Set while the CPU idles: the time and the ticks belong to no task.
static IDLE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The CPU starts idling with `t` still current: its stretch ends now.
pub fn idle_enter(t: &Task, now: u64) {
    let start = t.acct.exec_start.swap(now, Ordering::Relaxed);
    t.acct
        .rtime
        .fetch_add(now.saturating_sub(start), Ordering::Relaxed);
    IDLE.store(true, Ordering::Relaxed);
}

/// The CPU stops idling; `t` (still current) runs again from now unless the scheduler
/// switches away at once.
pub fn idle_exit(t: &Task, now: u64) {
    IDLE.store(false, Ordering::Relaxed);
    t.acct.exec_start.store(now, Ordering::Relaxed);
}

/// A scheduler tick interrupted the current task in user mode or not.
pub fn tick(user: bool) {
    if IDLE.load(Ordering::Relaxed) {
        return;
    }
    if let Some(t) = current() {
        let c = if user { &t.acct.uticks } else { &t.acct.sticks };
        c.fetch_add(1, Ordering::Relaxed);
        if !t.is_kthread() {
            super::timer::cpu_itimers_tick(t, user, super::sched::TIMESLICE_NS as u64);
        }
    }
}

/// One thread's usage; the running stretch counts for the current task.
pub fn thread_usage(t: &Task) -> Usage {
    let mut rtime = t.acct.rtime.load(Ordering::Relaxed);
    if current().is_some_and(|c| core::ptr::eq(c, t)) {
        let start = t.acct.exec_start.load(Ordering::Relaxed);
        rtime += crate::proc::timer::now_ns().saturating_sub(start);
    }
    Usage {
        rtime,
        uticks: t.acct.uticks.load(Ordering::Relaxed),
        sticks: t.acct.sticks.load(Ordering::Relaxed),
        min_flt: t.min_flt.load(Ordering::Relaxed),
        maj_flt: t.maj_flt.load(Ordering::Relaxed),
    }
}

/// The whole process: the leader, its live threads and the threads that ended.
pub fn process_usage(t: &Task) -> Usage {
    let leader = t.leader();
    let mut u = *leader.group_dead_usage.lock();
    u.add(&thread_usage(leader));
    for th in leader.threads.lock().iter() {
        u.add(&thread_usage(th));
    }
    u
}

/// What the process's reaped children (and theirs) used.
pub fn children_usage(t: &Task) -> Usage {
    *t.leader().children_usage.lock()
}

/// A thread other than the leader ends: its usage stays with the process.
pub fn thread_exit(t: &Task) {
    if !t.is_leader() {
        let u = thread_usage(t);
        t.leader().group_dead_usage.lock().add(&u);
        // Counted once: the thread's own counters are gone with it.
        t.acct.rtime.store(0, Ordering::Relaxed);
        t.acct.uticks.store(0, Ordering::Relaxed);
        t.acct.sticks.store(0, Ordering::Relaxed);
        t.min_flt.store(0, Ordering::Relaxed);
        t.maj_flt.store(0, Ordering::Relaxed);
    }
}

/// `parent` reaps `zombie` (wait4): the child's and its own children's usage is added to
/// the parent's children totals (`__exit_signal`/`wait_task_zombie`).
pub fn reap(parent: &Task, zombie: &Task) {
    let mut u = process_usage(zombie);
    u.add(&children_usage(zombie));
    parent.leader().children_usage.lock().add(&u);
}

/// Clock ticks (`USER_HZ` = 100 per second) of nanoseconds, for times and /proc.
pub fn to_clock_t(ns: u64) -> u64 {
    ns / 10_000_000
}
