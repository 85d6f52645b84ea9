//! `sleep`: sleeping on the clock and being interrupted, as Linux does it. nanosleep,
//! clock_nanosleep (relative and TIMER_ABSTIME), poll/select timeouts and readiness over
//! pipes; then signals during slow calls: a pipe read and wait4 restart under SA_RESTART
//! and fail with EINTR without it; nanosleep fails with EINTR and the time left whatever
//! the flags; pause never restarts. The signal comes from a child after a sleep of its
//! own, so the parent is asleep in the call by then.
//!
//! Then interval timers: alarm's return value, setitimer/getitimer, SIGALRM ending a pause,
//! a periodic timer, and SIGALRM killing a process that never makes a system call.
//!
//! Only comparisons are printed (a sleep lasted at least its time, a count is 1), so the
//! output is the same on any machine.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::fs::{close, pipe2, read, write};
use vmrt::sys::nr::*;
use vmrt::sys::proc::{exit_group, fork, getpid, getppid, kill, wait4, Fork};
use vmrt::sys::signal::{sigaction, SigAction, SA_RESTART, SIGUSR1};
use vmrt::sys::time::{clock_gettime, CLOCK_MONOTONIC};
use vmrt::sys::{call, Errno};

vmrt::entry!(main);

const MS: u64 = 1_000_000;

fn sys(n: usize, args: &[usize]) -> Result<usize, Errno> {
    // SAFETY: pointers passed are valid for the call.
    unsafe { call(n, args) }
}

fn now() -> u64 {
    clock_gettime(CLOCK_MONOTONIC).map_or(0, |t| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

fn ts(ns: u64) -> [i64; 2] {
    [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64]
}

fn nanosleep(ns: u64) -> Result<usize, Errno> {
    let t = ts(ns);
    sys(SYS_nanosleep, &[t.as_ptr() as usize, 0])
}

static HANDLED: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_usr1(_sig: i32) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn handler(flags: u64) {
    let a = SigAction::handler(on_usr1, flags);
    // SAFETY: the handler only bumps an atomic.
    let _ = unsafe { sigaction(SIGUSR1, Some(&a)) };
}

/// A child that sleeps `ms`, sends SIGUSR1 to the parent and exits.
fn signal_after(ms: u64) -> i32 {
    match fork() {
        Ok(Fork::Child) => {
            let _ = nanosleep(ms * MS);
            let _ = kill(getppid(), SIGUSR1);
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(_) => -1,
    }
}

/// A child that sleeps `ms`, writes one byte to `fd` and exits.
fn write_after(ms: u64, fd: i32) -> i32 {
    match fork() {
        Ok(Fork::Child) => {
            let _ = nanosleep(ms * MS);
            let _ = write(fd, b"x");
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(_) => -1,
    }
}

fn reap(pid: i32) {
    let _ = wait4(pid, 0);
}

fn main() -> i32 {
    let mut r = Report::new();
    timers(&mut r);
    polling(&mut r);
    restarts(&mut r);
    itimers(&mut r);
    stopped(&mut r);
    r.exit_status()
}

fn timers(r: &mut Report) {
    let t0 = now();
    r.check("nanosleep 20 ms", nanosleep(20 * MS) == Ok(0));
    r.check("it lasted at least 20 ms", now() - t0 >= 20 * MS);
    let deadline = now() + 20 * MS;
    let d = ts(deadline);
    r.check(
        "clock_nanosleep TIMER_ABSTIME",
        sys(SYS_clock_nanosleep, &[1, 1, d.as_ptr() as usize, 0]) == Ok(0),
    );
    r.check("it woke at or after the deadline", now() >= deadline);
    let t0 = now();
    let rel = ts(10 * MS);
    r.check(
        "clock_nanosleep CLOCK_REALTIME relative",
        sys(SYS_clock_nanosleep, &[0, 0, rel.as_ptr() as usize, 0]) == Ok(0)
            && now() - t0 >= 10 * MS,
    );
    let past = ts(1);
    r.check(
        "an absolute time in the past returns at once",
        sys(SYS_clock_nanosleep, &[1, 1, past.as_ptr() as usize, 0]) == Ok(0),
    );
    println!(
        "clock_nanosleep on CLOCK_THREAD_CPUTIME_ID: {:?}",
        sys(SYS_clock_nanosleep, &[3, 0, rel.as_ptr() as usize, 0]).err()
    );
    println!(
        "clock_nanosleep on CLOCK_MONOTONIC_RAW: {:?}",
        sys(SYS_clock_nanosleep, &[4, 0, rel.as_ptr() as usize, 0]).err()
    );
    let bad = [0i64, 1_000_000_000];
    println!(
        "nanosleep with tv_nsec = 1e9: {:?}",
        sys(SYS_nanosleep, &[bad.as_ptr() as usize, 0]).err()
    );
    println!(
        "nanosleep from a bad pointer: {:?}",
        sys(SYS_nanosleep, &[8, 0]).err()
    );
}

fn polling(r: &mut Report) {
    let Ok((rd, wr)) = pipe2(0) else {
        r.fail();
        return;
    };
    // struct pollfd { int fd; short events; short revents; }
    let pfd = |fd: i32, ev: u16| -> u64 { (fd as u32 as u64) | ((ev as u64) << 32) };
    let revents = |p: u64| (p >> 48) as u16;
    const POLLIN: u16 = 1;
    const POLLOUT: u16 = 4;
    const POLLHUP: u16 = 0x10;
    const POLLNVAL: u16 = 0x20;
    let mut fds = [pfd(rd, POLLIN)];
    let t0 = now();
    r.check(
        "poll on an empty pipe times out after 20 ms",
        sys(SYS_poll, &[fds.as_mut_ptr() as usize, 1, 20]) == Ok(0) && now() - t0 >= 20 * MS,
    );
    r.check(
        "poll with timeout 0 returns at once",
        sys(SYS_poll, &[fds.as_mut_ptr() as usize, 1, 0]) == Ok(0),
    );
    let _ = write(wr, b"ab");
    let mut fds = [
        pfd(rd, POLLIN),
        pfd(wr, POLLOUT),
        pfd(-1, POLLIN),
        pfd(99, POLLIN),
    ];
    let n = sys(SYS_poll, &[fds.as_mut_ptr() as usize, 4, 1000]);
    r.check("poll: 3 ready (data, space, a bad fd)", n == Ok(3));
    r.check("POLLIN on the read end", revents(fds[0]) == POLLIN);
    r.check("POLLOUT on the write end", revents(fds[1]) == POLLOUT);
    r.check("a negative fd is skipped", revents(fds[2]) == 0);
    r.check("a closed fd is POLLNVAL", revents(fds[3]) == POLLNVAL);
    // select: readable pipe, then a timeout that updates the timeval.
    let mut set = [1u64 << rd];
    let mut tv = [5i64, 0];
    r.check(
        "select sees the readable pipe",
        sys(
            SYS_select,
            &[
                rd as usize + 1,
                set.as_mut_ptr() as usize,
                0,
                0,
                tv.as_mut_ptr() as usize,
            ],
        ) == Ok(1)
            && set[0] == 1 << rd,
    );
    let mut b = [0u8; 2];
    let _ = read(rd, &mut b);
    let mut set = [1u64 << rd];
    let mut tv = [0i64, 20_000];
    let t0 = now();
    r.check(
        "select times out after 20 ms",
        sys(
            SYS_select,
            &[
                rd as usize + 1,
                set.as_mut_ptr() as usize,
                0,
                0,
                tv.as_mut_ptr() as usize,
            ],
        ) == Ok(0)
            && now() - t0 >= 20 * MS,
    );
    r.check(
        "and clears the set and the timeval",
        set[0] == 0 && tv == [0, 0],
    );
    let mut set = [1u64 << 60];
    println!(
        "select on a closed descriptor: {:?}",
        sys(SYS_select, &[61, set.as_mut_ptr() as usize, 0, 0, 0]).err()
    );
    let mut wset = [1u64 << wr];
    let t = ts(0);
    r.check(
        "pselect6: the write end is writable",
        sys(
            SYS_pselect6,
            &[
                wr as usize + 1,
                0,
                wset.as_mut_ptr() as usize,
                0,
                t.as_ptr() as usize,
                0,
            ],
        ) == Ok(1),
    );
    let mut fds = [pfd(rd, POLLIN)];
    let t = ts(10 * MS);
    r.check(
        "ppoll times out",
        sys(
            SYS_ppoll,
            &[fds.as_mut_ptr() as usize, 1, t.as_ptr() as usize, 0, 8],
        ) == Ok(0),
    );
    // A writer that appears later wakes a poll without timeout.
    let pid = write_after(30, wr);
    let mut fds = [pfd(rd, POLLIN)];
    r.check(
        "poll wakes when a child writes",
        sys(SYS_poll, &[fds.as_mut_ptr() as usize, 1, -1isize as usize]) == Ok(1)
            && revents(fds[0]) == POLLIN,
    );
    reap(pid);
    let _ = read(rd, &mut b);
    let _ = close(wr);
    let mut fds = [pfd(rd, POLLIN)];
    r.check(
        "POLLHUP once the write end is closed",
        sys(SYS_poll, &[fds.as_mut_ptr() as usize, 1, 0]) == Ok(1) && revents(fds[0]) == POLLHUP,
    );
    let _ = close(rd);
}

fn restarts(r: &mut Report) {
    // A pipe read under SA_RESTART: the handler runs, the read goes on.
    handler(SA_RESTART);
    let Ok((rd, wr)) = pipe2(0) else {
        r.fail();
        return;
    };
    let sig = signal_after(30);
    let wri = write_after(100, wr);
    HANDLED.store(0, Ordering::Relaxed);
    let mut b = [0u8; 1];
    let got = read(rd, &mut b);
    r.check("SA_RESTART: the read returns the data", got == Ok(1));
    r.check(
        "after the handler ran",
        HANDLED.load(Ordering::Relaxed) == 1,
    );
    reap(sig);
    reap(wri);
    // Without SA_RESTART: EINTR.
    handler(0);
    let sig = signal_after(30);
    let wri = write_after(100, wr);
    println!(
        "without SA_RESTART the read fails: {:?}",
        read(rd, &mut b).err()
    );
    r.check("then the data comes", read(rd, &mut b) == Ok(1));
    reap(sig);
    reap(wri);
    // wait4 restarts under SA_RESTART too.
    handler(SA_RESTART);
    HANDLED.store(0, Ordering::Relaxed);
    let sig = signal_after(30);
    let slow = write_after(100, wr);
    r.check(
        "SA_RESTART: wait4 returns the child",
        wait4(slow, 0).map(|(p, _)| p) == Ok(slow) && HANDLED.load(Ordering::Relaxed) == 1,
    );
    reap(sig);
    let _ = read(rd, &mut b);
    handler(0);
    let sig = signal_after(30);
    let slow = write_after(100, wr);
    println!("without SA_RESTART wait4 fails: {:?}", wait4(slow, 0).err());
    reap(slow);
    reap(sig);
    let _ = read(rd, &mut b);
    // nanosleep: EINTR and the time left, even under SA_RESTART.
    handler(SA_RESTART);
    let sig = signal_after(30);
    let req = ts(1000 * MS);
    let mut rem = [0i64; 2];
    let e = sys(
        SYS_nanosleep,
        &[req.as_ptr() as usize, rem.as_mut_ptr() as usize],
    );
    println!("nanosleep interrupted under SA_RESTART: {:?}", e.err());
    let left = rem[0] as u64 * 1_000_000_000 + rem[1] as u64;
    r.check("the time left is reported", left > 0 && left < 1000 * MS);
    reap(sig);
    // pause never restarts.
    let sig = signal_after(30);
    // SAFETY: no memory involved.
    let e = unsafe { call(SYS_pause, &[]) };
    println!("pause under SA_RESTART: {:?}", e.err());
    reap(sig);
    let _ = (close(rd), close(wr));
    let _ = getpid();
}

static ALARMS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_alrm(_sig: i32) {
    ALARMS.fetch_add(1, Ordering::Relaxed);
}

/// `struct itimerval` { interval, value } in microseconds.
fn itv(interval_us: i64, value_us: i64) -> [i64; 4] {
    [
        interval_us / 1_000_000,
        interval_us % 1_000_000,
        value_us / 1_000_000,
        value_us % 1_000_000,
    ]
}

fn itimers(r: &mut Report) {
    const SIGALRM: i32 = 14;
    r.check(
        "alarm(0) with none armed returns 0",
        sys(SYS_alarm, &[0]) == Ok(0),
    );
    r.check("alarm(5) returns 0", sys(SYS_alarm, &[5]) == Ok(0));
    r.check(
        "alarm(0) returns the 5 s left",
        sys(SYS_alarm, &[0]) == Ok(5),
    );
    let t = itv(0, 10_000_000);
    let _ = sys(SYS_setitimer, &[0, t.as_ptr() as usize, 0]);
    let mut cur = [0i64; 4];
    let _ = sys(SYS_getitimer, &[0, cur.as_mut_ptr() as usize]);
    let left = cur[2] * 1_000_000 + cur[3];
    r.check(
        "getitimer: between 9 and 10 s left",
        left > 9_000_000 && left <= 10_000_000,
    );
    let zero = itv(0, 0);
    let mut old = [0i64; 4];
    let _ = sys(
        SYS_setitimer,
        &[0, zero.as_ptr() as usize, old.as_mut_ptr() as usize],
    );
    r.check(
        "setitimer returns the old value",
        old[2] == 9 || old[2] == 10,
    );
    let bad = itv(0, 0);
    println!(
        "setitimer with which = 5: {:?}",
        sys(SYS_setitimer, &[5, bad.as_ptr() as usize, 0]).err()
    );
    let bad = [0i64, 1_000_000, 0, 0];
    println!(
        "setitimer with 1e6 microseconds: {:?}",
        sys(SYS_setitimer, &[0, bad.as_ptr() as usize, 0]).err()
    );
    // SIGALRM ends a pause.
    let a = SigAction::handler(on_alrm, SA_RESTART);
    // SAFETY: the handler only bumps an atomic.
    let _ = unsafe { sigaction(SIGALRM, Some(&a)) };
    let t = itv(0, 30_000);
    let _ = sys(SYS_setitimer, &[0, t.as_ptr() as usize, 0]);
    // SAFETY: no memory involved.
    let e = unsafe { call(SYS_pause, &[]) };
    r.check(
        "SIGALRM ends pause with EINTR",
        e == Err(Errno::EINTR) && ALARMS.load(Ordering::Relaxed) == 1,
    );
    // A periodic timer: three signals, then disarmed.
    let t = itv(10_000, 10_000);
    let _ = sys(SYS_setitimer, &[0, t.as_ptr() as usize, 0]);
    while ALARMS.load(Ordering::Relaxed) < 4 {
        // SAFETY: as above.
        let _ = unsafe { call(SYS_pause, &[]) };
    }
    let _ = sys(SYS_setitimer, &[0, zero.as_ptr() as usize, 0]);
    r.check(
        "a periodic timer fired three more times",
        ALARMS.load(Ordering::Relaxed) == 4,
    );
    // A process that never makes a system call is still killed by SIGALRM.
    match fork() {
        Ok(Fork::Child) => {
            let _ = sys(SYS_alarm, &[0]);
            // SAFETY: restoring the default action.
            let _ = unsafe { sigaction(SIGALRM, Some(&SigAction::default_action())) };
            let t = itv(0, 20_000);
            let _ = sys(SYS_setitimer, &[0, t.as_ptr() as usize, 0]);
            loop {
                core::hint::spin_loop();
            }
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0);
            r.check(
                "SIGALRM kills a spinning child",
                st.is_ok_and(|(_, s)| s.signaled() && s.term_signal() == SIGALRM),
            );
        }
        Err(_) => r.fail(),
    }
}

/// A child in a timed wait is stopped and continued: no handler runs, so the call goes on
/// through restart_syscall to its original deadline (600 ms in all), not for its whole
/// timeout again (which would end after 800 ms).
fn stopped(r: &mut Report) {
    const SIGSTOP: i32 = 19;
    const SIGCONT: i32 = 18;
    for what in ["poll", "nanosleep", "futex"] {
        let Ok((rd, wr)) = pipe2(0) else {
            r.fail();
            return;
        };
        match fork() {
            Ok(Fork::Child) => {
                let t0 = now();
                let ok = match what {
                    "poll" => {
                        let mut fds = [(rd as u32 as u64) | (1 << 32)];
                        sys(SYS_poll, &[fds.as_mut_ptr() as usize, 1, 600]) == Ok(0)
                    }
                    "nanosleep" => nanosleep(600 * MS) == Ok(0),
                    _ => {
                        let word = 0u32;
                        let t = ts(600 * MS);
                        sys(
                            SYS_futex,
                            &[&word as *const u32 as usize, 128, 0, t.as_ptr() as usize],
                        ) == Err(Errno::ETIMEDOUT)
                    }
                };
                let took = now() - t0;
                exit_group(if ok && (600 * MS..750 * MS).contains(&took) {
                    0
                } else {
                    1
                });
            }
            Ok(Fork::Parent(pid)) => {
                let _ = nanosleep(100 * MS);
                let _ = kill(pid, SIGSTOP);
                let _ = nanosleep(100 * MS);
                let _ = kill(pid, SIGCONT);
                let st = wait4(pid, 0).map(|(_, s)| s.exit_status());
                r.check(stopped_label(what), st == Ok(0));
            }
            Err(_) => r.fail(),
        }
        let _ = (close(rd), close(wr));
    }
}

fn stopped_label(what: &str) -> &'static str {
    match what {
        "poll" => "a stopped poll continues to its deadline",
        "nanosleep" => "a stopped nanosleep continues to its deadline",
        _ => "a stopped futex wait continues to its deadline",
    }
}
