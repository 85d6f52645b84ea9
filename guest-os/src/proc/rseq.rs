//! Restartable sequences (`kernel/rseq.c`, the Linux 6.1 ABI): a thread registers a
//! 32-byte `struct rseq` in its memory; the kernel keeps its `cpu_id` fields current, and
//! when the thread is preempted or gets a signal while inside a critical section that
//! `rseq_cs` describes, it is sent to the section's abort handler instead of resuming in
//! the middle. glibc (2.35+) registers one per thread at start-up (its `sched_getcpu`
//! reads `cpu_id`); tcmalloc and liburcu use critical sections.
//!
//! `struct rseq`: `u32 cpu_id_start; u32 cpu_id; u64 rseq_cs; u32 flags;` (32 bytes,
//! 32-aligned). `struct rseq_cs`: `u32 version; u32 flags; u64 start_ip;
//! u64 post_commit_offset; u64 abort_ip;`, and the 32-bit signature the thread registered
//! must sit just before `abort_ip`. One CPU: `cpu_id` is always 0.

use core::sync::atomic::Ordering;

use super::{current, signal, Task};
use crate::arch::x86_64::idt::TrapFrame;
use crate::mm::uaccess::{get_user, put_user, TASK_SIZE};
use crate::syscall::errno::{SysResult, EBUSY, EFAULT, EINVAL, EPERM, ESRCH};

/// `sizeof(struct rseq)` in Linux 6.1 (the only length it accepts) and its alignment.
const RSEQ_SIZE: u64 = 32;
/// `RSEQ_FLAG_UNREGISTER`.
const RSEQ_FLAG_UNREGISTER: u64 = 1;
/// `cpu_id` of an unregistered area.
const RSEQ_CPU_ID_UNINITIALIZED: u32 = u32::MAX;
/// Field offsets in `struct rseq`.
const CPU_ID_START: u64 = 0;
const CPU_ID: u64 = 4;
const RSEQ_CS: u64 = 8;
/// The one CPU.
const THIS_CPU: u32 = 0;

/// `rseq(rseq, rseq_len, flags, sig)`.
pub fn sys_rseq(uaddr: u64, len: u64, flags: u64, sig: u64) -> SysResult {
    let t = current().ok_or(ESRCH)?;
    let sig = sig as u32;
    let len = len as u32 as u64;
    let registered = t.rseq.load(Ordering::Relaxed);
    if flags & RSEQ_FLAG_UNREGISTER != 0 {
        if flags & !RSEQ_FLAG_UNREGISTER != 0 {
            return Err(EINVAL);
        }
        if registered == 0 || registered != uaddr || len != RSEQ_SIZE {
            return Err(EINVAL);
        }
        if t.rseq_sig.load(Ordering::Relaxed) != sig {
            return Err(EPERM);
        }
        put_user(uaddr + CPU_ID_START, 0u32).map_err(|_| EFAULT)?;
        put_user(uaddr + CPU_ID, RSEQ_CPU_ID_UNINITIALIZED).map_err(|_| EFAULT)?;
        t.rseq.store(0, Ordering::Relaxed);
        return Ok(0);
    }
    if flags != 0 {
        return Err(EINVAL);
    }
    if registered != 0 {
        // Registering the same area again is EBUSY; anything else EINVAL (or EPERM for
        // another signature), as Linux answers.
        if registered != uaddr || len != RSEQ_SIZE {
            return Err(EINVAL);
        }
        if t.rseq_sig.load(Ordering::Relaxed) != sig {
            return Err(EPERM);
        }
        return Err(EBUSY);
    }
    if !uaddr.is_multiple_of(RSEQ_SIZE) || len != RSEQ_SIZE {
        return Err(EINVAL);
    }
    if uaddr >= TASK_SIZE || TASK_SIZE - uaddr < RSEQ_SIZE {
        return Err(EFAULT);
    }
    // Linux fills the fields on the way back to user mode (`rseq_set_notify_resume`); a
    // bad address then kills the thread with SIGSEGV. Filling them now gives the same
    // values and reports a bad address as EFAULT instead.
    put_user(uaddr + CPU_ID_START, THIS_CPU).map_err(|_| EFAULT)?;
    put_user(uaddr + CPU_ID, THIS_CPU).map_err(|_| EFAULT)?;
    t.rseq_sig.store(sig, Ordering::Relaxed);
    t.rseq.store(uaddr, Ordering::Relaxed);
    Ok(0)
}

/// Whether the task now running has a switch to answer on its way back to user mode
/// (Linux's TIF_NOTIFY_RESUME for rseq). One CPU: it describes the current task, and
/// every switch sets it anew, so the return path costs one atomic swap when no task uses
/// rseq.
static NOTIFY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The scheduler switches from `prev` to `next`: `prev`'s critical section, if any, is
/// aborted on its way back to user mode (`rseq_preempt`).
pub fn switched(prev: &Task, next: &Task) {
    if prev.rseq.load(Ordering::Relaxed) != 0 {
        prev.rseq_resume.store(true, Ordering::Relaxed);
    }
    let pending =
        next.rseq.load(Ordering::Relaxed) != 0 && next.rseq_resume.load(Ordering::Relaxed);
    NOTIFY.store(pending, Ordering::Relaxed);
}

/// Back to user mode after a switch (`rseq_handle_notify_resume`): abort an interrupted
/// critical section and refresh `cpu_id`.
pub fn notify_resume(frame: &mut TrapFrame) {
    if !NOTIFY.swap(false, Ordering::Relaxed) {
        return;
    }
    let Some(t) = current() else { return };
    if t.rseq.load(Ordering::Relaxed) == 0 || !t.rseq_resume.swap(false, Ordering::Relaxed) {
        return;
    }
    fixup_or_kill(t, frame);
}

/// A signal frame is about to be set up (`rseq_signal_deliver`): a critical section the
/// signal interrupts is aborted first, so the handler returns to the abort handler.
pub fn signal_deliver(frame: &mut TrapFrame) {
    let Some(t) = current() else { return };
    if t.rseq.load(Ordering::Relaxed) != 0 {
        fixup_or_kill(t, frame);
    }
}

fn fixup_or_kill(t: &Task, frame: &mut TrapFrame) {
    let area = t.rseq.load(Ordering::Relaxed);
    let ok = ip_fixup(t, area, frame).is_ok()
        && put_user(area + CPU_ID_START, THIS_CPU).is_ok()
        && put_user(area + CPU_ID, THIS_CPU).is_ok();
    if !ok {
        // A corrupt area or descriptor: SIGSEGV, as Linux's `force_sigsegv`.
        t.rseq.store(0, Ordering::Relaxed);
        signal::force_sig(
            frame,
            signal::SigInfo {
                signo: signal::SIGSEGV,
                code: signal::SI_KERNEL,
                addr: 0,
                pid: 0,
                status: 0,
            },
        );
    }
}

/// `rseq_ip_fixup`: if `rseq_cs` names a critical section that contains the user RIP,
/// move RIP to its abort handler; `rseq_cs` is cleared either way.
fn ip_fixup(t: &Task, area: u64, frame: &mut TrapFrame) -> Result<(), ()> {
    let cs: u64 = get_user(area + RSEQ_CS).map_err(|_| ())?;
    if cs == 0 {
        return Ok(());
    }
    if cs >= TASK_SIZE {
        return Err(());
    }
    let version: u32 = get_user(cs).map_err(|_| ())?;
    let start_ip: u64 = get_user(cs + 8).map_err(|_| ())?;
    let post_commit_offset: u64 = get_user(cs + 16).map_err(|_| ())?;
    let abort_ip: u64 = get_user(cs + 24).map_err(|_| ())?;
    // `rseq_get_rseq_cs`'s checks.
    if version > 0
        || start_ip >= TASK_SIZE
        || start_ip
            .checked_add(post_commit_offset)
            .is_none_or(|e| e >= TASK_SIZE)
        || abort_ip >= TASK_SIZE
        || abort_ip.wrapping_sub(start_ip) < post_commit_offset
        || abort_ip < 4
    {
        return Err(());
    }
    let signature: u32 = get_user(abort_ip - 4).map_err(|_| ())?;
    if signature != t.rseq_sig.load(Ordering::Relaxed) {
        return Err(());
    }
    put_user(area + RSEQ_CS, 0u64).map_err(|_| ())?;
    if frame.rip.wrapping_sub(start_ip) < post_commit_offset {
        frame.rip = abort_ip;
    }
    Ok(())
}
