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
const WCONTINUED: u64 = 8;
const __WALL: u64 = 0x4000_0000;
const __WCLONE: u64 = 0x8000_0000;

/// `wait4(pid, status, options, rusage)`: reap a zombie child (pid -1: any; > 0: that one;
/// 0: one in the caller's process group; < -1: one in group -pid).
pub fn sys_wait4(a: &crate::syscall::Args) -> SysResult {
    let [pid, status, options, rusage, ..] = a.0;
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | __WALL | __WCLONE) != 0 {
        return Err(EINVAL);
    }
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
            && match pid as i64 as i32 {
                -1 => true,
                0 => t.pgid.load(Ordering::Relaxed) == my_pgid,
                p if p < 0 => t.pgid.load(Ordering::Relaxed) == p.unsigned_abs(),
                p => t.pid == p as u32,
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
        if let Some(z) = kids
            .iter()
            .copied()
            // A group leader is reaped once its last thread is gone.
            .find(|t| {
                t.state.load(Ordering::Acquire) == state::ZOMBIE && t.threads.lock().is_empty()
            })
        {
            let code = z.exit_code.load(Ordering::Relaxed);
            if status != 0 {
                put_user(status, code)?;
            }
            if rusage != 0 {
                // The child's own usage and its reaped children's (`wait_task_zombie`).
                let mut u = super::cputime::process_usage(z);
                u.add(&super::cputime::children_usage(z));
                copy_to_user(rusage, &u.rusage_bytes())?;
            }
            super::cputime::reap(me, z);
            me.leader()
                .children
                .lock()
                .retain(|t| !core::ptr::eq(*t, z));
            sched::unregister(z);
            let zpid = z.pid;
            // SAFETY: the zombie no longer runs (its last switch saved its stack for good)
            // and is referenced by no list: the leaked Box is freed here.
            drop(unsafe { Box::from_raw(z as *const Task as *mut Task) });
            return Ok(zpid as u64);
        }
        // Stops (WUNTRACED) and continues (WCONTINUED), each reported once.
        for k in &kids {
            let r = k.stop_report.load(Ordering::Acquire);
            let wanted = (r & 0xff == 0x7f && options & WUNTRACED != 0)
                || (r == 0xffff && options & WCONTINUED != 0);
            if r != 0 && wanted {
                k.stop_report.store(0, Ordering::Release);
                if status != 0 {
                    put_user(status, r)?;
                }
                return Ok(k.pid as u64);
            }
        }
        if options & WNOHANG != 0 {
            return Ok(0);
        }
        if signal::has_pending(me) {
            // Restarted if the signal has no handler or an SA_RESTART one.
            return Err(crate::syscall::errno::ERESTARTSYS);
        }
        sched::sleep();
    }
}
