//! wait4: reaping children and reporting their stops and continues (`kernel/exit.c`'s
//! `do_wait`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{current, sched, signal, state, Task};
use crate::mm::uaccess::{copy_to_user, put_user};
use crate::syscall::errno::{SysResult, ECHILD, EINVAL, ESRCH};

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
/// waitid's name for WUNTRACED.
const WSTOPPED: u64 = 2;
const WEXITED: u64 = 4;
const WCONTINUED: u64 = 8;
/// waitid: report without reaping (the child stays waitable).
const WNOWAIT: u64 = 0x0100_0000;
/// Wait for the children of the calling thread only: every thread's children are the
/// group's here, so this is accepted and changes nothing.
const __WNOTHREAD: u64 = 0x2000_0000;
const __WALL: u64 = 0x4000_0000;
const __WCLONE: u64 = 0x8000_0000;

/// Which children a wait is for.
#[derive(Clone, Copy)]
enum Which {
    Any,
    Pid(u32),
    Pgid(u32),
}

/// What a wait found.
enum Found {
    /// A zombie, reaped unless WNOWAIT: its pid, wait status and usage.
    Exited(u32, u32, super::cputime::Usage),
    /// A stop (`sig << 8 | 0x7f`) or a continue (0xffff) not reported before.
    Changed(u32, u32),
}

/// `do_wait`: the first eligible child with something to report, sleeping (unless
/// WNOHANG) until there is one. `Ok(None)`: WNOHANG and nothing yet. ECHILD when no
/// child matches at all.
fn do_wait(which: Which, options: u64) -> Result<Option<Found>, crate::syscall::errno::Errno> {
    let me = current().ok_or(ESRCH)?;
    let my_pgid = me.pgid.load(Ordering::Relaxed);
    // `eligible_child`: a "clone" child (exit signal other than SIGCHLD) is waited for
    // only with __WCLONE, the others only without it; __WALL takes both.
    let kind_ok = |t: &Task| {
        let clone_child = t.exit_signal.load(Ordering::Relaxed) != signal::SIGCHLD;
        options & __WALL != 0 || clone_child == (options & __WCLONE != 0)
    };
    let want = |t: &Task| {
        kind_ok(t)
            && match which {
                Which::Any => true,
                Which::Pgid(0) => t.pgid.load(Ordering::Relaxed) == my_pgid,
                Which::Pgid(g) => t.pgid.load(Ordering::Relaxed) == g,
                Which::Pid(p) => t.pid == p,
            }
    };
    loop {
        // The children of the thread group.
        let kids: Vec<&'static Task> = me
            .leader()
            .children
            .lock()
            .iter()
            .copied()
            .filter(|t| want(t))
            .collect();
        if kids.is_empty() {
            return Err(ECHILD);
        }
        if options & WEXITED != 0 {
            if let Some(z) = kids.iter().copied().find(|t| {
                // A group leader is reaped once its last thread is gone.
                t.state.load(Ordering::Acquire) == state::ZOMBIE && t.threads.lock().is_empty()
            }) {
                let code = z.exit_code.load(Ordering::Relaxed);
                // The child's own usage and its reaped children's (`wait_task_zombie`).
                let mut u = super::cputime::process_usage(z);
                u.add(&super::cputime::children_usage(z));
                let zpid = z.pid;
                if options & WNOWAIT == 0 {
                    super::cputime::reap(me, z);
                    me.leader()
                        .children
                        .lock()
                        .retain(|t| !core::ptr::eq(*t, z));
                    sched::unregister(z);
                    // SAFETY: the zombie no longer runs (its last switch saved its stack
                    // for good) and is referenced by no list: the leaked Box is freed here.
                    drop(unsafe { Box::from_raw(z as *const Task as *mut Task) });
                }
                return Ok(Some(Found::Exited(zpid, code, u)));
            }
        }
        // Stops (WUNTRACED) and continues (WCONTINUED), each reported once.
        for k in &kids {
            let r = k.stop_report.load(Ordering::Acquire);
            let wanted = (r & 0xff == 0x7f && options & WSTOPPED != 0)
                || (r == 0xffff && options & WCONTINUED != 0);
            if r != 0 && wanted {
                if options & WNOWAIT == 0 {
                    k.stop_report.store(0, Ordering::Release);
                }
                return Ok(Some(Found::Changed(k.pid, r)));
            }
        }
        if options & WNOHANG != 0 {
            return Ok(None);
        }
        if signal::has_pending(me) {
            // Restarted if the signal has no handler or an SA_RESTART one.
            return Err(crate::syscall::errno::ERESTARTSYS);
        }
        sched::sleep();
    }
}

/// `wait4(pid, status, options, rusage)`: reap a zombie child (pid -1: any; > 0: that one;
/// 0: one in the caller's process group; < -1: one in group -pid).
pub fn sys_wait4(a: &crate::syscall::Args) -> SysResult {
    let [pid, status, options, rusage, ..] = a.0;
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE) != 0 {
        return Err(EINVAL);
    }
    let which = match pid as i64 as i32 {
        -1 => Which::Any,
        0 => Which::Pgid(0),
        p if p < 0 => Which::Pgid(p.unsigned_abs()),
        p => Which::Pid(p as u32),
    };
    match do_wait(which, options | WEXITED)? {
        None => Ok(0),
        Some(Found::Exited(zpid, code, u)) => {
            if status != 0 {
                put_user(status, code)?;
            }
            if rusage != 0 {
                copy_to_user(rusage, &u.rusage_bytes())?;
            }
            Ok(zpid as u64)
        }
        Some(Found::Changed(pid, r)) => {
            if status != 0 {
                put_user(status, r)?;
            }
            Ok(pid as u64)
        }
    }
}

/// `waitid(idtype, id, infop, options, rusage)`: as wait4, but the events to wait for are
/// chosen (WEXITED, WSTOPPED, WCONTINUED; WNOWAIT leaves the child waitable) and the result
/// is a `siginfo_t` (si_code CLD_*, si_pid, si_status). With WNOHANG and nothing to
/// report, the siginfo is zeroed. (`rusage` is the raw system call's fifth argument.)
pub fn sys_waitid(a: &crate::syscall::Args) -> SysResult {
    const P_ALL: u64 = 0;
    const P_PID: u64 = 1;
    const P_PGID: u64 = 2;
    const P_PIDFD: u64 = 3;
    let [idtype, id, infop, options, rusage, ..] = a.0;
    if options
        & !(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE)
        != 0
        || options & (WEXITED | WSTOPPED | WCONTINUED) == 0
    {
        return Err(EINVAL);
    }
    let id = id as u32;
    let which = match idtype as u32 as u64 {
        P_ALL => Which::Any,
        P_PID if (id as i32) > 0 => Which::Pid(id),
        P_PGID if (id as i32) >= 0 => Which::Pgid(id),
        // No descriptor is a pidfd here (pidfd_open and CLONE_PIDFD are not provided).
        P_PIDFD => return Err(crate::syscall::errno::EBADF),
        _ => return Err(EINVAL),
    };
    let found = do_wait(which, options)?;
    let (pid, code, status, usage) = match &found {
        None => (0, 0, 0, None),
        Some(Found::Exited(pid, ws, u)) => {
            let (code, st) = if ws & 0x7f != 0 {
                (signal::CLD_KILLED, (ws & 0x7f) as i32)
            } else {
                (signal::CLD_EXITED, (ws >> 8 & 0xff) as i32)
            };
            (*pid, code, st, Some(*u))
        }
        Some(Found::Changed(pid, r)) => {
            if *r == 0xffff {
                (*pid, signal::CLD_CONTINUED, signal::SIGCONT as i32, None)
            } else {
                (*pid, signal::CLD_STOPPED, (*r >> 8 & 0xff) as i32, None)
            }
        }
    };
    if infop != 0 {
        // siginfo_t: si_signo, si_errno, si_code, then si_pid, si_uid, si_status.
        let mut si = [0u8; 128];
        if found.is_some() {
            si[0..4].copy_from_slice(&(signal::SIGCHLD as i32).to_le_bytes());
            si[8..12].copy_from_slice(&code.to_le_bytes());
            si[16..20].copy_from_slice(&(pid as i32).to_le_bytes());
            si[24..28].copy_from_slice(&status.to_le_bytes());
        }
        copy_to_user(infop, &si)?;
    }
    if rusage != 0 {
        let u = usage.unwrap_or_default();
        copy_to_user(rusage, &u.rusage_bytes())?;
    }
    Ok(0)
}
