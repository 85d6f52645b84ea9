//! kill and pause: signals sent by processes (`kernel/signal.c`'s `kill_something_info`
//! and `sys_pause`); delivery itself is [`super::signal`].

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{current, sched, signal, state, Task};
use crate::syscall::errno::{SysResult, EINVAL, ESRCH};

/// `pause()`: sleep until a signal arrives; -EINTR once a handler ran (never restarted
/// after a handler, even SA_RESTART; a signal without a handler, such as a stop and
/// continue, restarts it: ERESTARTNOHAND).
pub fn sys_pause() -> SysResult {
    let me = current().ok_or(ESRCH)?;
    while !signal::has_pending(me) {
        sched::sleep();
    }
    Err(crate::syscall::errno::ERESTARTNOHAND)
}

/// `kill(pid, sig)`: to one process (pid > 0), to every process but init and the caller
/// (-1, as root), to the caller's process group (0) or to group -pid (< -1).
pub fn sys_kill(a: &crate::syscall::Args) -> SysResult {
    let me = current().ok_or(ESRCH)?;
    let (pid, sig) = (a.0[0] as i64 as i32, a.0[1]);
    if sig > signal::NSIG as u64 {
        return Err(EINVAL);
    }
    let targets: Vec<&'static Task> = match pid {
        // A thread's id names its process too (as `find_vpid` + `group_send_sig_info`).
        p if p > 0 => sched::find(p as u32)
            .filter(|t| group_alive(t))
            .into_iter()
            .collect(),
        -1 => sched::all()
            .into_iter()
            .filter(|t| t.is_leader() && t.pid != 1 && t.tgid() != me.tgid() && group_alive(t))
            .collect(),
        // 0: the caller's process group; -N: group N.
        p => {
            let pgid = if p == 0 {
                me.pgid.load(Ordering::Relaxed)
            } else {
                p.unsigned_abs()
            };
            sched::all()
                .into_iter()
                .filter(|t| {
                    t.is_leader() && t.pgid.load(Ordering::Relaxed) == pgid && group_alive(t)
                })
                .collect()
        }
    };
    if targets.is_empty() {
        return Err(ESRCH);
    }
    if sig != 0 {
        for t in targets {
            signal::send_process(
                t,
                sig as u8,
                signal::SigInfo {
                    signo: sig as u8,
                    code: signal::SI_USER,
                    addr: 0,
                    pid: me.tgid(),
                    status: 0,
                },
            );
        }
    }
    Ok(0)
}

/// Whether `t`'s thread group has a thread that has not exited.
fn group_alive(t: &Task) -> bool {
    let leader = t.leader();
    leader.state.load(Ordering::Acquire) != state::ZOMBIE || !leader.threads.lock().is_empty()
}
