//! I/O multiplexing (`fs/select.c`): poll, ppoll, select, pselect6 over any open file
//! ([`FileOps::poll`](crate::fs::file::FileOps::poll)): pipes report data, space and
//! hang-ups; the console and regular files are always ready.
//!
//! The wait registers the task on every polled file's wait queue, sleeps until one of them
//! wakes it, the timeout passes or a signal arrives, and polls again. Work per call is
//! bounded by the number of descriptors, which is capped by `RLIMIT_NOFILE` (poll: EINVAL
//! above it) or by the table size (select), as on Linux.
//!
//! A signal ends the wait with `-ERESTARTNOHAND`: EINTR after a handler, a restart when
//! none ran. poll with a timeout keeps the time left in the restart block
//! (`-ERESTART_RESTARTBLOCK`); select and pselect6 report it in their timeout argument,
//! which the restarted call then uses; ppoll restarts with its whole timeout, as Linux's.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::errno::{Errno, SysResult, EBADF, EINVAL, ENOMEM, ERESTARTNOHAND};
use super::time::get_timespec;
use super::Args;
use crate::fs::fdtable::{fdget, nofile_limit};
use crate::fs::file::{poll::*, File};
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::proc;
use crate::proc::timer::{self, Wake};

/// One `struct pollfd`: `{ int fd; short events; short revents; }`.
const POLLFD_SIZE: usize = 8;

/// Wait for readiness: `check` polls every file and returns the number ready; 0 with a
/// zero timeout, the timeout passed, or `ERESTARTNOHAND` on a signal.
fn wait_loop(
    files: &[Option<Arc<File>>],
    deadline: Option<u64>,
    mut check: impl FnMut() -> u64,
) -> SysResult {
    loop {
        let n = check();
        if n > 0 {
            return Ok(n);
        }
        if deadline.is_some_and(|d| timer::now_ns() >= d) {
            return Ok(0);
        }
        for f in files.iter().flatten() {
            f.f_op.poll_wait();
        }
        let w = timer::sleep_once(deadline);
        for f in files.iter().flatten() {
            f.f_op.poll_unwait();
        }
        match w {
            Wake::Signal => return Err(ERESTARTNOHAND),
            Wake::Timeout => return Ok(check()),
            Wake::Woken => {}
        }
    }
}

/// The core of poll and ppoll.
fn do_poll(ufds: u64, nfds: u64, deadline: Option<u64>) -> SysResult {
    if nfds > nofile_limit() as u64 {
        return Err(EINVAL);
    }
    let n = nfds as usize;
    let mut raw: Vec<u8> = Vec::new();
    raw.try_reserve_exact(n * POLLFD_SIZE).map_err(|_| ENOMEM)?;
    raw.resize(n * POLLFD_SIZE, 0);
    copy_from_user(&mut raw, ufds)?;
    let mut files: Vec<Option<Arc<File>>> = Vec::new();
    files.try_reserve_exact(n).map_err(|_| ENOMEM)?;
    for i in 0..n {
        let fd = i32::from_le_bytes(raw[i * 8..i * 8 + 4].try_into().unwrap_or([0; 4]));
        files.push(if fd < 0 { None } else { fdget(fd as u64).ok() });
    }
    let count = wait_loop(&files, deadline, || {
        let mut ready = 0;
        for i in 0..n {
            let fd = i32::from_le_bytes(raw[i * 8..i * 8 + 4].try_into().unwrap_or([0; 4]));
            let events = u16::from_le_bytes([raw[i * 8 + 4], raw[i * 8 + 5]]);
            let revents = if fd < 0 {
                0
            } else {
                match &files[i] {
                    None => POLLNVAL,
                    Some(f) => f.f_op.poll(f) & (events | POLLERR | POLLHUP),
                }
            };
            raw[i * 8 + 6..i * 8 + 8].copy_from_slice(&revents.to_le_bytes());
            if revents != 0 {
                ready += 1;
            }
        }
        ready
    })?;
    copy_to_user(ufds, &raw)?;
    Ok(count)
}

/// `poll(fds, nfds, timeout_ms)`: a negative timeout waits forever. Interrupted with a
/// timeout, it continues through `restart_syscall` with the time left when no handler
/// ran (`do_restart_poll`).
pub fn sys_poll(a: &Args) -> SysResult {
    let ms = a.0[2] as i32;
    let deadline = (ms >= 0).then(|| timer::now_ns().saturating_add(ms as u64 * 1_000_000));
    poll_restartable(a.0[0], a.0[1], deadline)
}

fn poll_restartable(ufds: u64, nfds: u64, deadline: Option<u64>) -> SysResult {
    match (do_poll(ufds, nfds, deadline), deadline) {
        (Err(ERESTARTNOHAND), Some(deadline)) => {
            Err(timer::set_restart(timer::RestartBlock::Poll {
                ufds,
                nfds,
                deadline,
            }))
        }
        (r, _) => r,
    }
}

/// `restart_syscall` of an interrupted poll.
pub fn restart_poll(ufds: u64, nfds: u64, deadline: u64) -> SysResult {
    poll_restartable(ufds, nfds, Some(deadline))
}

/// Apply ppoll's/pselect6's signal mask for the wait (restored after delivery).
fn temp_mask(sigmask: u64, size: u64) -> Result<(), Errno> {
    if sigmask == 0 {
        return Ok(());
    }
    if size != 8 {
        return Err(EINVAL);
    }
    let mut b = [0u8; 8];
    copy_from_user(&mut b, sigmask)?;
    let t = proc::current().ok_or(EBADF)?;
    super::signal::set_temporary_mask(t, u64::from_le_bytes(b));
    Ok(())
}

/// Drop a temporary mask that no signal delivery will restore (the call did not sleep
/// into a signal): as Linux's `restore_saved_sigmask_unless`.
fn end_temp_mask(r: &SysResult) {
    if r.as_ref().err() == Some(&ERESTARTNOHAND) {
        return;
    }
    if let Some(t) = proc::current() {
        let mut s = t.signals.lock();
        if let Some(m) = s.saved_mask.take() {
            s.blocked = m;
        }
    }
}

/// `ppoll(fds, nfds, tsp, sigmask, sigsetsize)`: a timespec timeout (NULL: forever), the
/// mask during the wait.
pub fn sys_ppoll(a: &Args) -> SysResult {
    let deadline = if a.0[2] != 0 {
        Some(timer::now_ns().saturating_add(get_timespec(a.0[2])?))
    } else {
        None
    };
    temp_mask(a.0[3], a.0[4])?;
    let r = do_poll(a.0[0], a.0[1], deadline);
    end_temp_mask(&r);
    r
}

/// What select's three sets wait for (`POLLIN_SET`, `POLLOUT_SET`, `POLLEX_SET`).
const POLLIN_SET: u16 = POLLRDNORM | POLLIN | POLLHUP | POLLERR;
const POLLOUT_SET: u16 = POLLWRNORM | POLLOUT | POLLERR;
const POLLEX_SET: u16 = POLLPRI;

/// The core of select and pselect6: `n` descriptors in three `fd_set` bitmaps.
fn do_select(n: u64, inp: u64, outp: u64, exp: u64, deadline: Option<u64>) -> SysResult {
    if (n as i64) < 0 || n > i32::MAX as u64 {
        return Err(EINVAL);
    }
    // Descriptors beyond the table cannot be open (`max_fds`).
    let max = proc::current()
        .ok_or(EBADF)?
        .files()
        .lock()
        .max_fds()
        .max(1);
    let n = (n as usize).min(max);
    let words = n.div_ceil(64);
    let mut sets: [Vec<u64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (set, ptr) in sets.iter_mut().zip([inp, outp, exp]) {
        set.try_reserve_exact(words).map_err(|_| ENOMEM)?;
        set.resize(words, 0);
        if ptr != 0 {
            let mut b: Vec<u8> = Vec::new();
            b.try_reserve_exact(words * 8).map_err(|_| ENOMEM)?;
            b.resize(words * 8, 0);
            copy_from_user(&mut b, ptr)?;
            for (w, c) in set.iter_mut().zip(b.chunks(8)) {
                *w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            }
        }
        // Bits past n are ignored.
        if n % 64 != 0 {
            if let Some(last) = set.last_mut() {
                *last &= (1u64 << (n % 64)) - 1;
            }
        }
    }
    let mut files: Vec<Option<Arc<File>>> = Vec::new();
    files.try_reserve_exact(n).map_err(|_| ENOMEM)?;
    for fd in 0..n {
        let wanted = sets.iter().any(|s| s[fd / 64] & (1 << (fd % 64)) != 0);
        if wanted {
            files.push(Some(fdget(fd as u64)?));
        } else {
            files.push(None);
        }
    }
    let mut result: [Vec<u64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for r in result.iter_mut() {
        r.try_reserve_exact(words).map_err(|_| ENOMEM)?;
        r.resize(words, 0);
    }
    let count = wait_loop(&files, deadline, || {
        let mut ready = 0;
        for r in result.iter_mut() {
            r.iter_mut().for_each(|w| *w = 0);
        }
        for (fd, f) in files.iter().enumerate() {
            let Some(f) = f else { continue };
            let mask = f.f_op.poll(f);
            for (k, want) in [POLLIN_SET, POLLOUT_SET, POLLEX_SET]
                .into_iter()
                .enumerate()
            {
                let bit = 1u64 << (fd % 64);
                if sets[k][fd / 64] & bit != 0 && mask & want != 0 {
                    result[k][fd / 64] |= bit;
                    ready += 1;
                }
            }
        }
        ready
    })?;
    for (r, ptr) in result.iter().zip([inp, outp, exp]) {
        if ptr != 0 {
            let mut b: Vec<u8> = Vec::new();
            b.try_reserve_exact(words * 8).map_err(|_| ENOMEM)?;
            for w in r {
                b.extend_from_slice(&w.to_le_bytes());
            }
            copy_to_user(ptr, &b)?;
        }
    }
    Ok(count)
}

/// `select(n, readfds, writefds, exceptfds, timeout)`: a `struct timeval` timeout,
/// updated with the time left as Linux does.
pub fn sys_select(a: &Args) -> SysResult {
    let tvp = a.0[4];
    let deadline = if tvp != 0 {
        let mut b = [0u8; 16];
        copy_from_user(&mut b, tvp)?;
        let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
        let usec = i64::from_le_bytes(b[8..].try_into().unwrap_or([0; 8]));
        if sec < 0 || usec < 0 {
            return Err(EINVAL);
        }
        // Linux normalises microseconds of a second or more.
        let ns = (sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add((usec as u64).saturating_mul(1000));
        Some(timer::now_ns().saturating_add(ns))
    } else {
        None
    };
    let r = do_select(a.0[0], a.0[1], a.0[2], a.0[3], deadline);
    if let (Some(d), true) = (deadline, tvp != 0) {
        let left = d.saturating_sub(timer::now_ns());
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(left / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&((left % 1_000_000_000) / 1000).to_le_bytes());
        // A failure to report the time left is ignored, as Linux does.
        let _ = copy_to_user(tvp, &b);
    }
    r
}

/// `pselect6(n, readfds, writefds, exceptfds, timeout, sig)`: a timespec timeout (also
/// updated), and `sig` pointing at `{ const sigset_t *ss; size_t ss_len; }`.
pub fn sys_pselect6(a: &Args) -> SysResult {
    let tsp = a.0[4];
    let deadline = if tsp != 0 {
        Some(timer::now_ns().saturating_add(get_timespec(tsp)?))
    } else {
        None
    };
    if a.0[5] != 0 {
        let mut b = [0u8; 16];
        copy_from_user(&mut b, a.0[5])?;
        let ss = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
        let len = u64::from_le_bytes(b[8..].try_into().unwrap_or([0; 8]));
        temp_mask(ss, len)?;
    }
    let r = do_select(a.0[0], a.0[1], a.0[2], a.0[3], deadline);
    end_temp_mask(&r);
    if let (Some(d), true) = (deadline, tsp != 0) {
        let _ = super::time::put_timespec(tsp, d.saturating_sub(timer::now_ns()));
    }
    r
}
