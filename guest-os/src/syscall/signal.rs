//! Signal system calls: rt_sigaction, rt_sigprocmask, kill/tkill/tgkill (to the own
//! process; other processes arrive with fork).

use super::errno::{SysResult, EINVAL, ESRCH};
use super::Args;
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::proc;
use crate::proc::signal::{self, SigAction, SigInfo, NSIG, SIGKILL, SIGSTOP, SI_TKILL, SI_USER};

fn valid(sig: u64) -> Result<u8, super::errno::Errno> {
    if sig == 0 || sig > NSIG as u64 {
        Err(EINVAL)
    } else {
        Ok(sig as u8)
    }
}

/// `rt_sigaction(sig, act, oldact, sigsetsize)`.
pub fn sys_rt_sigaction(a: &Args) -> SysResult {
    let [sig, act, oact, size, ..] = a.0;
    let sig = valid(sig)?;
    if size != 8 {
        return Err(EINVAL);
    }
    let t = proc::current().ok_or(ESRCH)?;
    let new = if act != 0 {
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(EINVAL);
        }
        let mut b = [0u8; 32];
        copy_from_user(&mut b, act)?;
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Some(SigAction {
            handler: w(0),
            flags: w(1),
            restorer: w(2),
            mask: w(3) & !((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))),
        })
    } else {
        None
    };
    let old = t.signals.lock().actions[sig as usize - 1];
    if oact != 0 {
        let mut b = [0u8; 32];
        for (i, v) in [old.handler, old.flags, old.restorer, old.mask]
            .iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        copy_to_user(oact, &b)?;
    }
    if let Some(n) = new {
        t.signals.lock().actions[sig as usize - 1] = n;
        // The handlers are the thread group's (CLONE_SIGHAND): every thread's copy changes.
        for peer in t.group_peers() {
            peer.signals.lock().actions[sig as usize - 1] = n;
        }
        let leader = t.leader();
        if !core::ptr::eq(leader, t) {
            leader.signals.lock().actions[sig as usize - 1] = n;
        }
    }
    Ok(0)
}

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`.
pub fn sys_rt_sigprocmask(a: &Args) -> SysResult {
    let [how, set, oset, size, ..] = a.0;
    if size != 8 {
        return Err(EINVAL);
    }
    let t = proc::current().ok_or(ESRCH)?;
    let new = if set != 0 {
        let mut b = [0u8; 8];
        copy_from_user(&mut b, set)?;
        Some(u64::from_le_bytes(b))
    } else {
        None
    };
    let old = t.signals.lock().blocked;
    if oset != 0 {
        copy_to_user(oset, &old.to_le_bytes())?;
    }
    if let Some(m) = new {
        let m = m & !((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
        let blocked = match how {
            SIG_BLOCK => old | m,
            SIG_UNBLOCK => old & !m,
            SIG_SETMASK => m,
            _ => return Err(EINVAL),
        };
        t.signals.lock().blocked = blocked;
    } else if how > SIG_SETMASK {
        return Err(EINVAL);
    }
    Ok(0)
}

/// `kill(pid, sig)`: only the own process exists to signal.
pub fn sys_kill(a: &Args) -> SysResult {
    let t = proc::current().ok_or(ESRCH)?;
    let (pid, sig) = (a.0[0] as i64, a.0[1]);
    if pid != t.pid as i64 && pid != 0 && pid != -1 {
        return Err(ESRCH);
    }
    if sig == 0 {
        return Ok(0);
    }
    let sig = valid(sig)?;
    signal::send_self(
        sig,
        SigInfo {
            signo: sig,
            code: SI_USER,
            addr: 0,
            pid: t.pid,
            status: 0,
        },
    );
    Ok(0)
}

/// `tgkill(tgid, tid, sig)` / `tkill(tid, sig)`: a signal to one thread (tgkill checks
/// that it belongs to thread group `tgid`).
pub fn sys_tgkill(a: &Args, tgid_first: bool) -> SysResult {
    let me = proc::current().ok_or(ESRCH)?;
    let (tgid, tid, sig) = if tgid_first {
        (Some(a.0[0] as i64), a.0[1] as i64, a.0[2])
    } else {
        (None, a.0[0] as i64, a.0[1])
    };
    if tid <= 0 || tgid.is_some_and(|g| g <= 0) {
        return Err(EINVAL);
    }
    let t = crate::proc::sched::find(tid as u32)
        .filter(|t| {
            t.state.load(core::sync::atomic::Ordering::Acquire) != crate::proc::state::ZOMBIE
        })
        .filter(|t| tgid.is_none_or(|g| t.tgid() as i64 == g))
        .ok_or(ESRCH)?;
    if sig == 0 {
        return Ok(0);
    }
    let sig = valid(sig)?;
    signal::send(
        t,
        sig,
        SigInfo {
            signo: sig,
            code: SI_TKILL,
            addr: 0,
            pid: me.tgid(),
            status: 0,
        },
    );
    Ok(0)
}

/// `rt_sigqueueinfo(tgid, sig, info)` / `rt_tgsigqueueinfo(tgid, tid, sig, info)`
/// (sigqueue, pthread_sigqueue): a signal with the caller's siginfo, whose si_value the
/// receiver reads. Only the codes user space may forge (negative, not SI_TKILL) are
/// accepted from another process (EPERM), as Linux.
pub fn sys_rt_sigqueueinfo(a: &Args, thread: bool) -> SysResult {
    let me = proc::current().ok_or(ESRCH)?;
    let (tgid, tid, sig, uinfo) = if thread {
        (
            a.0[0] as i64 as i32,
            Some(a.0[1] as i64 as i32),
            a.0[2],
            a.0[3],
        )
    } else {
        (a.0[0] as i64 as i32, None, a.0[1], a.0[2])
    };
    let mut raw = [0u8; 128];
    crate::mm::uaccess::copy_from_user(&mut raw, uinfo)?;
    let code = i32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
    let value = u64::from_le_bytes(raw[24..32].try_into().unwrap_or([0; 8]));
    let target = match tid {
        Some(tid) => {
            if tid <= 0 || tgid <= 0 {
                return Err(EINVAL);
            }
            crate::proc::sched::find(tid as u32)
                .filter(|t| t.tgid() as i32 == tgid)
                .ok_or(ESRCH)?
        }
        None => crate::proc::sched::find(tgid as u32).ok_or(ESRCH)?,
    };
    if (code >= 0 || code == SI_TKILL) && target.tgid() != me.tgid() {
        return Err(crate::syscall::errno::EPERM);
    }
    if sig == 0 {
        return Ok(0);
    }
    let sig = valid(sig)?;
    let info = SigInfo {
        signo: sig,
        code,
        // si_value: kept in `addr` and written back at offset 24 for SI_QUEUE.
        addr: value,
        pid: me.tgid(),
        status: 0,
    };
    if thread {
        signal::send(target, sig, info);
    } else {
        signal::send_process(target, sig, info);
    }
    Ok(0)
}

/// `rt_sigpending(set, sigsetsize)`: the pending signals that are blocked (the others
/// would have been delivered).
pub fn sys_rt_sigpending(a: &Args) -> SysResult {
    let (set, size) = (a.0[0], a.0[1]);
    if size > 8 {
        return Err(EINVAL);
    }
    let t = proc::current().ok_or(ESRCH)?;
    let p = {
        let s = t.signals.lock();
        s.pending & s.blocked
    };
    copy_to_user(set, &p.to_le_bytes()[..size as usize])?;
    Ok(0)
}

/// `rt_sigsuspend(mask, sigsetsize)`: wait with `mask` until a signal is delivered; the
/// old mask comes back after the handler (`saved_mask`). Always EINTR.
pub fn sys_rt_sigsuspend(a: &Args) -> SysResult {
    if a.0[1] != 8 {
        return Err(EINVAL);
    }
    let mut b = [0u8; 8];
    copy_from_user(&mut b, a.0[0])?;
    let t = proc::current().ok_or(ESRCH)?;
    set_temporary_mask(t, u64::from_le_bytes(b));
    while !signal::has_pending(t) {
        crate::proc::sched::sleep();
    }
    Err(super::errno::ERESTARTNOHAND)
}

/// Wait with `mask` blocked; the current mask is restored once a signal was handled or
/// none was (ppoll, pselect6, rt_sigsuspend).
pub fn set_temporary_mask(t: &crate::proc::Task, mask: u64) {
    let mut s = t.signals.lock();
    let old = s.blocked;
    if s.saved_mask.is_none() {
        s.saved_mask = Some(old);
    }
    s.blocked = mask & !((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
}

/// `sigaltstack(ss, old_ss)`: `stack_t` is `{ void *ss_sp; int ss_flags; size_t ss_size; }`.
pub fn sys_sigaltstack(frame: &crate::arch::x86_64::idt::TrapFrame, a: &Args) -> SysResult {
    let (uss, uoss) = (a.0[0], a.0[1]);
    let new = if uss != 0 {
        let mut b = [0u8; 24];
        copy_from_user(&mut b, uss)?;
        let q = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Some((q(0), q(8) as u32, q(16)))
    } else {
        None
    };
    let t = proc::current().ok_or(ESRCH)?;
    let (sp, flags, size) = signal::do_sigaltstack(t, new, frame.rsp)?;
    if uoss != 0 {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&sp.to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&size.to_le_bytes());
        copy_to_user(uoss, &b)?;
    }
    Ok(0)
}
