//! Pressure stall information (`kernel/sched/psi.c`) for memory and I/O, for one CPU.
//!
//! The scheduler and the mm report task state changes ([`PsiGroup::change`]): a task is
//! runnable (`TSK_RUNNING`), waiting for I/O (`TSK_IOWAIT`), or stalled on memory
//! (`TSK_MEMSTALL`: in direct reclaim or compaction, throttled by memory.high, waiting on a
//! refaulting workingset page). A task stalled in reclaim is still running, and is counted
//! in `TSK_MEMSTALL_RUNNING` too. From the counts:
//!
//! - SOME: at least one task is stalled on the resource;
//! - FULL: some task is stalled and none is doing productive work (every running task is
//!   itself stalled in reclaim), i.e. the CPU's time is lost entirely.
//!
//! The time spent in each state accumulates into totals (µs in /proc/pressure/*) and, every
//! [`PSI_PERIOD_NS`], into 10 s / 60 s / 300 s exponentially decaying averages of the
//! stalled share of the period, computed in fixed point like the load average.
//!
//! Linux weighs multiple CPUs by their non-idle time; with one CPU that weighting is the
//! identity, so the totals are plain sums.

use alloc::format;
use alloc::string::String;

/// Task count indices (`enum psi_task_count`).
pub const NR_IOWAIT: usize = 0;
pub const NR_MEMSTALL: usize = 1;
pub const NR_RUNNING: usize = 2;
/// Tasks in a memory stall that are running (reclaiming) rather than sleeping.
pub const NR_MEMSTALL_RUNNING: usize = 3;
pub const NR_PSI_TASK_COUNTS: usize = 4;

/// Task state bits for [`PsiGroup::change`] (`TSK_*`).
pub const TSK_IOWAIT: u32 = 1 << NR_IOWAIT;
pub const TSK_MEMSTALL: u32 = 1 << NR_MEMSTALL;
pub const TSK_RUNNING: u32 = 1 << NR_RUNNING;
pub const TSK_MEMSTALL_RUNNING: u32 = 1 << NR_MEMSTALL_RUNNING;

/// Resource states (`enum psi_states`, the memory and I/O ones).
pub const PSI_IO_SOME: usize = 0;
pub const PSI_IO_FULL: usize = 1;
pub const PSI_MEM_SOME: usize = 2;
pub const PSI_MEM_FULL: usize = 3;
/// Any task non-idle: the weight of a CPU's samples in multi-CPU aggregation.
pub const PSI_NONIDLE: usize = 4;
pub const NR_PSI_STATES: usize = 5;
/// States with averages (all but NONIDLE).
const NR_AVG_STATES: usize = NR_PSI_STATES - 1;

/// Fixed-point fraction bits of the averages (`FSHIFT`, as the load average).
pub const FSHIFT: u32 = 11;
/// 1.0 in fixed point (`FIXED_1`).
pub const FIXED_1: u64 = 1 << FSHIFT;
/// Per-period decay factors `FIXED_1 / exp(period / window)` for the 10 s, 60 s and 300 s
/// windows with a 2 s period (`EXP_10s`, `EXP_60s`, `EXP_300s`).
pub const EXP_10S: u64 = 1677;
pub const EXP_60S: u64 = 1981;
pub const EXP_300S: u64 = 2034;
/// The averaging windows' decay factors, in output order.
const EXP: [u64; 3] = [EXP_10S, EXP_60S, EXP_300S];

pub const NSEC_PER_USEC: u64 = 1_000;
pub const NSEC_PER_SEC: u64 = 1_000_000_000;
/// How often averages are updated (`PSI_FREQ`): every 2 s. (Linux adds one jiffy so the
/// sampling does not alias with periodic work; callers with a tick may pass
/// `PSI_PERIOD_NS + tick` to [`PsiGroup::with_period`].)
pub const PSI_PERIOD_NS: u64 = 2 * NSEC_PER_SEC;

/// `calc_load`: one step of the exponential moving average `load * exp + active * (1 -
/// exp)`, in fixed point, rounding up while rising so that a constant input is reached.
pub fn calc_load(load: u64, exp: u64, active: u64) -> u64 {
    let mut newload = load * exp + active * (FIXED_1 - exp);
    if active >= load {
        newload += FIXED_1 - 1;
    }
    newload / FIXED_1
}

/// `fixed_power_int`: `x ** n` in fixed point with `frac_bits` fraction bits, rounding
/// each multiplication.
pub fn fixed_power_int(mut x: u64, frac_bits: u32, mut n: u64) -> u64 {
    let half = 1u64 << (frac_bits - 1);
    let mut result = 1u64 << frac_bits;
    while n != 0 {
        if n & 1 != 0 {
            result = (result * x + half) >> frac_bits;
        }
        n >>= 1;
        if n == 0 {
            break;
        }
        x = (x * x + half) >> frac_bits;
    }
    result
}

/// `calc_load_n`: `n` steps of [`calc_load`] with the same input.
pub fn calc_load_n(load: u64, exp: u64, active: u64, n: u64) -> u64 {
    calc_load(load, fixed_power_int(exp, FSHIFT, n), active)
}

/// A group of tasks whose pressure is tracked (the system, or a cgroup).
#[derive(Clone, Debug)]
pub struct PsiGroup {
    tasks: [u32; NR_PSI_TASK_COUNTS],
    /// States currently true (a bit per `PSI_*` state).
    state_mask: u32,
    /// When the current `state_mask` began.
    state_start: u64,
    /// Time spent in each state up to `state_start`, ns.
    times: [u64; NR_PSI_STATES],
    /// The part of the totals already folded into the averages.
    avg_total: [u64; NR_AVG_STATES],
    /// The averages (`avg10`, `avg60`, `avg300`) per state, fixed point percent.
    avg: [[u64; 3]; NR_AVG_STATES],
    avg_last_update: u64,
    avg_next_update: u64,
    period: u64,
}

impl PsiGroup {
    /// A group with no tasks, its averages clock starting at `now_ns` (`group_init`).
    pub fn new(now_ns: u64) -> Self {
        Self::with_period(now_ns, PSI_PERIOD_NS)
    }

    /// A group averaging every `period_ns` (see [`PSI_PERIOD_NS`]). The decay constants
    /// are for 2 s; other periods shift the windows accordingly.
    pub fn with_period(now_ns: u64, period_ns: u64) -> Self {
        PsiGroup {
            tasks: [0; NR_PSI_TASK_COUNTS],
            state_mask: 0,
            state_start: now_ns,
            times: [0; NR_PSI_STATES],
            avg_total: [0; NR_AVG_STATES],
            avg: [[0; 3]; NR_AVG_STATES],
            avg_last_update: now_ns,
            avg_next_update: now_ns + period_ns,
            period: period_ns.max(1),
        }
    }

    /// The task counts, by `NR_*` index.
    pub fn tasks(&self) -> [u32; NR_PSI_TASK_COUNTS] {
        self.tasks
    }

    /// Whether state `s` (`PSI_*`) holds now.
    pub fn state(&self, s: usize) -> bool {
        self.state_mask & (1 << s) != 0
    }

    /// `test_state`: which states the task counts make true.
    fn compute_mask(t: &[u32; NR_PSI_TASK_COUNTS]) -> u32 {
        let io_some = t[NR_IOWAIT] != 0;
        let io_full = io_some && t[NR_RUNNING] == 0;
        let mem_some = t[NR_MEMSTALL] != 0;
        let mem_full = mem_some && t[NR_RUNNING] == t[NR_MEMSTALL_RUNNING];
        let nonidle = t[NR_IOWAIT] != 0 || t[NR_MEMSTALL] != 0 || t[NR_RUNNING] != 0;
        [
            (PSI_IO_SOME, io_some),
            (PSI_IO_FULL, io_full),
            (PSI_MEM_SOME, mem_some),
            (PSI_MEM_FULL, mem_full),
            (PSI_NONIDLE, nonidle),
        ]
        .iter()
        .filter(|&&(_, on)| on)
        .fold(0, |m, &(s, _)| m | 1 << s)
    }

    /// `record_times`: charge the time since the last change to the states that held.
    fn record_times(&mut self, now_ns: u64) {
        let delta = now_ns.saturating_sub(self.state_start);
        self.state_start = self.state_start.max(now_ns);
        for (s, t) in self.times.iter_mut().enumerate() {
            if self.state_mask & (1 << s) != 0 {
                *t += delta;
            }
        }
    }

    /// `psi_group_change`: one task leaves the states in `clear` and enters those in `set`
    /// (`TSK_*` bits). E.g. a task waking up sets `TSK_RUNNING`; entering reclaim
    /// (`psi_memstall_enter`) sets `TSK_MEMSTALL | TSK_MEMSTALL_RUNNING`, leaving clears
    /// them. Clearing a state no task is in is a bug (Linux logs "psi: task underflow");
    /// the count stays at 0.
    pub fn change(&mut self, now_ns: u64, clear: u32, set: u32) {
        self.record_times(now_ns);
        for i in 0..NR_PSI_TASK_COUNTS {
            if clear & (1 << i) != 0 {
                debug_assert!(self.tasks[i] > 0, "psi: task underflow, count {i}");
                self.tasks[i] = self.tasks[i].saturating_sub(1);
            }
        }
        for i in 0..NR_PSI_TASK_COUNTS {
            if set & (1 << i) != 0 {
                self.tasks[i] += 1;
            }
        }
        self.state_mask = Self::compute_mask(&self.tasks);
    }

    /// Total time in state `s` up to `now_ns`, including the interval still open
    /// (`collect_percpu_times` with `get_recent_times`).
    pub fn total_ns(&self, s: usize, now_ns: u64) -> u64 {
        let open = if self.state(s) {
            now_ns.saturating_sub(self.state_start)
        } else {
            0
        };
        self.times[s] + open
    }

    /// `psi_avgs_work`/`update_averages`: if a period has ended by `now_ns`, fold the stall
    /// time since the last update into the averages, decaying them once per period that
    /// passed without an update. Returns whether it did. Call it at least every period
    /// (`avg_next_update`); late calls catch up exactly as Linux's delayed worker does.
    pub fn update_averages(&mut self, now_ns: u64) -> bool {
        if now_ns < self.avg_next_update {
            return false;
        }
        let expires = self.avg_next_update;
        let missed = (now_ns - expires) / self.period;
        self.avg_next_update = expires + (1 + missed) * self.period;
        let period = now_ns - (self.avg_last_update + missed * self.period);
        self.avg_last_update = now_ns;
        for s in 0..NR_AVG_STATES {
            // Stall time that slipped past a period boundary is carried into the next
            // period rather than reported as over 100%.
            let sample = (self.total_ns(s, now_ns) - self.avg_total[s]).min(period);
            self.avg_total[s] += sample;
            let avg = &mut self.avg[s];
            if missed != 0 {
                for (a, &e) in avg.iter_mut().zip(&EXP) {
                    *a = calc_load_n(*a, e, 0, missed);
                }
            }
            /// Averages are percentages.
            const PERCENT: u64 = 100;
            let pct = (sample * PERCENT).checked_div(period).unwrap_or(0) * FIXED_1;
            for (a, &e) in avg.iter_mut().zip(&EXP) {
                *a = calc_load(*a, e, pct);
            }
        }
        true
    }

    /// The averages of state `s` (avg10, avg60, avg300) in fixed-point percent.
    pub fn averages(&self, s: usize) -> [u64; 3] {
        self.avg[s]
    }

    /// The two lines of a /proc/pressure file for the SOME and FULL states given.
    fn format(&self, some: usize, full: usize, now_ns: u64) -> String {
        let line = |name: &str, s: usize| {
            let [a10, a60, a300] = self.avg[s].map(|a| (load_int(a), load_frac(a)));
            format!(
                "{name} avg10={}.{:02} avg60={}.{:02} avg300={}.{:02} total={}\n",
                a10.0,
                a10.1,
                a60.0,
                a60.1,
                a300.0,
                a300.1,
                self.total_ns(s, now_ns) / NSEC_PER_USEC
            )
        };
        line("some", some) + &line("full", full)
    }

    /// /proc/pressure/memory as of `now_ns`, with the averages of the last update.
    pub fn format_memory(&self, now_ns: u64) -> String {
        self.format(PSI_MEM_SOME, PSI_MEM_FULL, now_ns)
    }

    /// /proc/pressure/io as of `now_ns`.
    pub fn format_io(&self, now_ns: u64) -> String {
        self.format(PSI_IO_SOME, PSI_IO_FULL, now_ns)
    }

    /// `psi_show` for memory: bring the averages up to date if a period has passed, then
    /// format.
    pub fn show_memory(&mut self, now_ns: u64) -> String {
        self.update_averages(now_ns);
        self.format_memory(now_ns)
    }
}

/// `LOAD_INT`: the integer part of a fixed-point value.
pub const fn load_int(x: u64) -> u64 {
    x >> FSHIFT
}

/// `LOAD_FRAC`: the first two decimal digits of a fixed-point value's fraction.
pub const fn load_frac(x: u64) -> u64 {
    /// Two decimal digits.
    const HUNDREDTHS: u64 = 100;
    load_int((x & (FIXED_1 - 1)) * HUNDREDTHS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n\
                        full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";

    #[test]
    fn idle_stays_zero() {
        let mut g = PsiGroup::new(0);
        assert_eq!(g.show_memory(0), IDLE);
        // A running task is not a stall.
        g.change(0, 0, TSK_RUNNING);
        for p in 1..=100 {
            g.update_averages(p * PSI_PERIOD_NS);
        }
        assert_eq!(g.format_memory(100 * PSI_PERIOD_NS), IDLE);
        assert_eq!(g.format_io(100 * PSI_PERIOD_NS), IDLE);
    }

    #[test]
    fn some_and_full() {
        let mut g = PsiGroup::new(0);
        g.change(0, 0, TSK_RUNNING);
        g.change(0, 0, TSK_RUNNING); // a second, productive task
        g.change(1000, 0, TSK_MEMSTALL | TSK_MEMSTALL_RUNNING); // one enters reclaim
        assert!(g.state(PSI_MEM_SOME) && !g.state(PSI_MEM_FULL));
        g.change(3000, TSK_RUNNING, 0); // the productive one sleeps
        assert!(g.state(PSI_MEM_FULL));
        g.change(6000, TSK_MEMSTALL | TSK_MEMSTALL_RUNNING, 0);
        assert!(!g.state(PSI_MEM_SOME));
        assert_eq!(g.total_ns(PSI_MEM_SOME, 10_000), 5000);
        assert_eq!(g.total_ns(PSI_MEM_FULL, 10_000), 3000);
        // A task sleeping on a refault with nobody running: full.
        g.change(10_000, TSK_RUNNING, TSK_MEMSTALL);
        assert!(g.state(PSI_MEM_FULL));
        assert_eq!(g.total_ns(PSI_MEM_FULL, 12_000), 5000);
        assert_eq!(
            g.format_memory(12_000),
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n"
        );
    }

    #[test]
    fn half_stalled_converges_to_fifty() {
        let mut g = PsiGroup::new(0);
        let half = PSI_PERIOD_NS / 2;
        g.change(0, 0, TSK_RUNNING);
        // 3000 periods: enough for even the 300 s window to settle.
        for p in 0..3000u64 {
            let t = p * PSI_PERIOD_NS;
            g.change(t, 0, TSK_MEMSTALL | TSK_MEMSTALL_RUNNING);
            g.change(t + half, TSK_MEMSTALL | TSK_MEMSTALL_RUNNING, 0);
            assert!(g.update_averages(t + PSI_PERIOD_NS));
        }
        let now = 3000 * PSI_PERIOD_NS;
        let s = g.format_memory(now);
        let total_us = 3000 * half / NSEC_PER_USEC;
        assert_eq!(
            s,
            format!(
                "some avg10=50.00 avg60=50.00 avg300=50.00 total={total_us}\n\
                 full avg10=50.00 avg60=50.00 avg300=50.00 total={total_us}\n"
            )
        );
        // Then idle: decays, with missed periods caught up in one late update.
        g.update_averages(now + 5 * PSI_PERIOD_NS);
        let a = g.averages(PSI_MEM_SOME);
        assert!(load_int(a[0]) < 50 * 9 / 10 && load_int(a[0]) > 10, "{a:?}");
        assert!(a[0] < a[1] && a[1] < a[2]);
    }

    #[test]
    fn averages_rise_gradually() {
        let mut g = PsiGroup::new(0);
        g.change(0, 0, TSK_RUNNING | TSK_MEMSTALL | TSK_MEMSTALL_RUNNING);
        g.update_averages(PSI_PERIOD_NS);
        // One full period at 100%: avg10 = 100 * (1 - 1677/2048) = 18.1...
        let a = g.averages(PSI_MEM_FULL);
        assert_eq!(load_int(a[0]), 18);
        assert!(!g.update_averages(PSI_PERIOD_NS + 1));
    }

    #[test]
    fn fixed_point_helpers() {
        assert_eq!(fixed_power_int(EXP_10S, FSHIFT, 0), FIXED_1);
        assert_eq!(fixed_power_int(EXP_10S, FSHIFT, 1), EXP_10S);
        // 0.8188^5 = 0.368 = 1/e: five 2 s periods are one 10 s time constant.
        let e5 = fixed_power_int(EXP_10S, FSHIFT, 5);
        assert!((750..=760).contains(&e5), "{e5}");
        assert_eq!(calc_load(0, EXP_10S, 0), 0);
        assert_eq!(
            calc_load(100 * FIXED_1, EXP_10S, 100 * FIXED_1),
            100 * FIXED_1
        );
        assert_eq!(
            (load_int(FIXED_1 * 3 / 2), load_frac(FIXED_1 * 3 / 2)),
            (1, 50)
        );
    }
}
