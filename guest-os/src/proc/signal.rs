//! Signals (`kernel/signal.c`, `arch/x86/kernel/signal.c`): per-task handlers and mask,
//! synchronous signals from exceptions (SIGSEGV with `si_addr`, SIGILL, SIGFPE, SIGTRAP,
//! SIGBUS), `kill` of the own process, and delivery through the x86-64 `rt_sigframe` on the
//! user stack, undone by `rt_sigreturn`.
//!
//! The frame is Linux's: the return address (`sa_restorer`, required on x86-64), then
//! `struct ucontext` (flags, link, `stack_t`, `struct sigcontext` with every general
//! register, `uc_sigmask`), then the 128-byte `siginfo`; above it, 64-byte aligned, the
//! FPU state (`fpstate`, see [`crate::arch::x86_64::fpu`]), which `rt_sigreturn` checks and
//! loads. The handler starts with the initial FPU state.

use crate::arch::x86_64::gdt::{USER_CS, USER_DS};
use crate::arch::x86_64::idt::TrapFrame;
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::sync::IrqLock;
use crate::trace;

pub const SIGILL: u8 = 4;
pub const SIGTRAP: u8 = 5;
pub const SIGBUS: u8 = 7;
pub const SIGFPE: u8 = 8;
pub const SIGKILL: u8 = 9;
pub const SIGSEGV: u8 = 11;
pub const SIGPIPE: u8 = 13;
pub const SIGALRM: u8 = 14;
pub const SIGCHLD: u8 = 17;
pub const SIGCONT: u8 = 18;
pub const SIGSTOP: u8 = 19;
pub const SIGVTALRM: u8 = 26;
pub const SIGPROF: u8 = 27;
/// Signals 1..=64.
pub const NSIG: usize = 64;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
pub const SA_SIGINFO: u64 = 0x4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `si_code` values.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;
pub const ILL_ILLOPN: i32 = 2;
pub const FPE_INTDIV: i32 = 1;
/// SIGFPE codes of floating-point exceptions (`FPE_FLT*`).
pub const FPE_FLTDIV: i32 = 3;
pub const FPE_FLTOVF: i32 = 4;
pub const FPE_FLTUND: i32 = 5;
pub const FPE_FLTRES: i32 = 6;
pub const FPE_FLTINV: i32 = 7;
pub const TRAP_BRKPT: i32 = 1;
pub const BUS_ADRALN: i32 = 1;
/// `BUS_ADRERR`: an access to a file page past its end.
pub const BUS_ADRERR: i32 = 2;

/// `struct sigaction` as the kernel sees it (`struct kernel_sigaction` on x86-64).
#[derive(Clone, Copy, Debug, Default)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// A task's signal state.
pub struct Signals {
    pub actions: [SigAction; NSIG],
    pub blocked: u64,
    pub pending: u64,
    /// The `siginfo` of a pending signal (one per signal; standard signals do not queue).
    pub info: [SigInfo; NSIG],
    /// The mask to restore once a signal was delivered or none was (Linux's
    /// `saved_sigmask` with TIF_RESTORE_SIGMASK): ppoll, pselect6 and rt_sigsuspend wait
    /// with a temporary mask, and the handler's frame saves this one.
    pub saved_mask: Option<u64>,
    /// The alternate signal stack (`sigaltstack`): base, size (0: none) and flags.
    pub sas_ss_sp: u64,
    pub sas_ss_size: u64,
    pub sas_ss_flags: u32,
}

impl Signals {
    pub const fn new() -> Self {
        Signals {
            actions: [SigAction {
                handler: 0,
                flags: 0,
                restorer: 0,
                mask: 0,
            }; NSIG],
            blocked: 0,
            pending: 0,
            info: [SigInfo {
                signo: 0,
                code: 0,
                addr: 0,
                pid: 0,
                status: 0,
            }; NSIG],
            saved_mask: None,
            sas_ss_sp: 0,
            sas_ss_size: 0,
            sas_ss_flags: 0,
        }
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}

/// What a signal carries (the fields of `siginfo_t` we fill).
#[derive(Clone, Copy, Debug, Default)]
pub struct SigInfo {
    pub signo: u8,
    pub code: i32,
    /// `si_addr` (faults) .
    pub addr: u64,
    /// `si_pid` (kill, SIGCHLD).
    pub pid: u32,
    /// `si_status` (SIGCHLD: the exit status, or the signal that killed, stopped or
    /// continued the child).
    pub status: i32,
}

fn bit(sig: u8) -> u64 {
    1u64 << (sig - 1)
}

/// SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU: their default action stops the process.
const STOP_SIGNALS: u64 = (1 << 18) | (1 << 19) | (1 << 20) | (1 << 21);
/// `si_code` of SIGCHLD.
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// Tell the parent a child stopped (by `status`) or continued: SIGCHLD, and wake it (it
/// may wait).
fn notify_parent(t: &'static super::Task, code: i32, status: u8) {
    let ppid = t.ppid.load(core::sync::atomic::Ordering::Relaxed);
    if let Some(parent) = super::sched::find(ppid) {
        send_process(
            parent,
            SIGCHLD,
            SigInfo {
                signo: SIGCHLD,
                code,
                addr: 0,
                pid: t.pid,
                status: status as i32,
            },
        );
        super::sched::wake(parent);
    }
}

/// Tell the trace what became of a signal.
fn trace_signal(t: &super::Task, info: SigInfo, action: u64) {
    trace::signal(t, info.signo, info.code, info.addr, action);
}

/// Signals whose default action is to be ignored (SIGCHLD, SIGCONT, SIGURG, SIGWINCH).
fn default_ignored(sig: u8) -> bool {
    matches!(sig, 17 | 18 | 23 | 28)
}

/// Raise a synchronous signal from an exception in user mode (`force_sig_fault`): if it is
/// blocked or has no handler, the process dies; otherwise `frame` is redirected to the
/// handler, which runs when the trap returns.
pub fn force_sig(frame: &mut TrapFrame, info: SigInfo) {
    let Some(t) = super::current() else {
        super::exit_group(super::ExitReason::Signal(info.signo))
    };
    let act = t.signals.lock().actions[info.signo as usize - 1];
    let blocked = t.signals.lock().blocked & bit(info.signo) != 0;
    if blocked || act.handler == SIG_DFL || act.handler == SIG_IGN {
        trace_signal(t, info, trace::sigaction::KILL);
        super::exit_group(super::ExitReason::Signal(info.signo));
    }
    trace_signal(t, info, trace::sigaction::HANDLER);
    if setup_frame(frame, info, act).is_err() {
        super::exit_group(super::ExitReason::Signal(SIGSEGV));
    }
}

/// Queue `sig` for `t` and wake it if it sleeps interruptibly (`send_signal`). Ignored
/// signals are dropped at once, as Linux does.
pub fn send(t: &'static super::Task, sig: u8, info: SigInfo) {
    use super::state;
    use core::sync::atomic::Ordering;
    // SIGCONT resumes a stopped process whatever its disposition, and cancels pending stops;
    // a stop signal cancels a pending SIGCONT (`prepare_signal`).
    if sig == SIGCONT {
        t.signals.lock().pending &= !STOP_SIGNALS;
        if t.state
            .compare_exchange(
                state::STOPPED,
                state::RUNNABLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            t.stop_report.store(0xffff, Ordering::Release);
            trace_signal(t, info, trace::sigaction::CONTINUE);
            notify_parent(t, CLD_CONTINUED, SIGCONT);
            super::sched::enqueue(t);
        }
    } else if STOP_SIGNALS & bit(sig) != 0 {
        t.signals.lock().pending &= !bit(SIGCONT);
    }
    // SIGKILL also ends stops and killable sleeps (a vfork parent's D state).
    if sig == SIGKILL
        && [state::STOPPED, state::DISK_SLEEP].into_iter().any(|from| {
            t.state
                .compare_exchange(from, state::RUNNABLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    {
        super::sched::enqueue(t);
    }
    let mut s = t.signals.lock();
    let act = s.actions[sig as usize - 1];
    if sig != SIGKILL
        && (act.handler == SIG_IGN || (act.handler == SIG_DFL && default_ignored(sig)))
    {
        return;
    }
    s.pending |= bit(sig);
    s.info[sig as usize - 1] = info;
    drop(s);
    super::sched::wake(t);
}

/// A process-directed signal (kill, SIGCHLD, SIGALRM, the OOM killer's SIGKILL): queued
/// for one live thread of `t`'s group that does not block it, the leader first
/// (`complete_signal`); if all block it, for the first live one. A fatal one ends the whole
/// group when that thread handles it.
pub fn send_process(t: &'static super::Task, sig: u8, info: SigInfo) {
    use core::sync::atomic::Ordering;
    // SAFETY: tasks are leaked boxes; a leader lives while its group does.
    let leader: &'static super::Task = unsafe { &*(t.leader() as *const super::Task) };
    let threads = leader.threads.lock().clone();
    let members = core::iter::once(leader).chain(threads.iter().copied());
    let alive = |x: &super::Task| x.state.load(Ordering::Acquire) != super::state::ZOMBIE;
    let target = members
        .clone()
        .find(|x| alive(x) && x.signals.lock().blocked & bit(sig) == 0)
        .or_else(|| members.clone().find(|x| alive(x)))
        .unwrap_or(leader);
    send(target, sig, info);
}

/// Queue `sig` for the current task.
pub fn send_self(sig: u8, info: SigInfo) {
    if let Some(t) = super::current() {
        send(t, sig, info);
    }
}

/// Whether SIGKILL is pending for `t` (ends killable sleeps).
pub fn kill_pending(t: &super::Task) -> bool {
    t.signals.lock().pending & bit(SIGKILL) != 0
}

/// Whether `t` has a pending signal it does not block (interrupts sleeps: EINTR).
pub fn has_pending(t: &super::Task) -> bool {
    let s = t.signals.lock();
    s.pending & !s.blocked != 0
}

/// Signal state a child inherits over fork: handlers and mask, nothing pending.
#[inline(never)]
pub fn fork_copy(parent: &super::Task, child: &super::Task) {
    let p = parent.signals.lock();
    let mut c = child.signals.lock();
    c.actions = p.actions;
    c.blocked = p.blocked;
    c.sas_ss_sp = p.sas_ss_sp;
    c.sas_ss_size = p.sas_ss_size;
    c.sas_ss_flags = p.sas_ss_flags;
}

/// clone3's CLONE_CLEAR_SIGHAND: caught signals go back to their default action in the
/// child; ignored ones stay ignored (`flush_signal_handlers(p, 0)`).
pub fn clear_handlers(t: &super::Task) {
    let mut s = t.signals.lock();
    for a in s.actions.iter_mut() {
        if a.handler != SIG_IGN {
            *a = SigAction::default();
        }
    }
}

/// execve: caught signals go back to their default action; ignored stay ignored; the
/// alternate stack is gone with the old memory.
pub fn reset_on_exec(t: &super::Task) {
    let mut s = t.signals.lock();
    s.sas_ss_sp = 0;
    s.sas_ss_size = 0;
    s.sas_ss_flags = 0;
    for a in s.actions.iter_mut() {
        if a.handler != SIG_IGN {
            *a = SigAction::default();
        }
    }
}

/// `__NR_restart_syscall`.
const NR_RESTART_SYSCALL: u64 = 219;

/// What to do with an interrupted system call (`handle_signal`'s and
/// `arch_do_signal_or_restart`'s switch on the restart codes): `handler` says whether a
/// handler is about to run, and with which flags.
fn syscall_restart(frame: &mut TrapFrame, nr: u64, handler: Option<u64>) {
    use crate::syscall::errno::{
        EINTR, ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS, ERESTART_RESTARTBLOCK,
    };
    let code = (frame.rax as i64).wrapping_neg();
    let restart = match (code, handler) {
        (c, None) if c == ERESTART_RESTARTBLOCK.0 as i64 => {
            frame.rax = NR_RESTART_SYSCALL;
            frame.rip = frame.rip.wrapping_sub(2);
            return;
        }
        (c, None)
            if c == ERESTARTSYS.0 as i64
                || c == ERESTARTNOHAND.0 as i64
                || c == ERESTARTNOINTR.0 as i64 =>
        {
            true
        }
        (c, Some(_)) if c == ERESTARTNOINTR.0 as i64 => true,
        (c, Some(flags)) if c == ERESTARTSYS.0 as i64 => {
            if flags & SA_RESTART != 0 {
                true
            } else {
                frame.rax = EINTR.ret();
                return;
            }
        }
        (c, Some(_)) if c == ERESTARTNOHAND.0 as i64 || c == ERESTART_RESTARTBLOCK.0 as i64 => {
            frame.rax = EINTR.ret();
            return;
        }
        _ => false,
    };
    if restart {
        // Back over the 2-byte SYSCALL instruction, with the number in RAX again.
        frame.rax = nr;
        frame.rip = frame.rip.wrapping_sub(2);
    }
}

/// Whether [`do_signal`] has work on the way out of a system call: a signal that is not
/// blocked, a temporary mask to put back, or a restart code in RAX (Linux's
/// `TIF_SIGPENDING` test in `exit_to_user_mode_loop`); one look under the signal lock.
pub fn work_pending(frame: &TrapFrame) -> bool {
    use crate::syscall::errno::{
        ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS, ERESTART_RESTARTBLOCK,
    };
    let code = (frame.rax as i64).wrapping_neg();
    if [
        ERESTARTSYS,
        ERESTARTNOINTR,
        ERESTARTNOHAND,
        ERESTART_RESTARTBLOCK,
    ]
    .iter()
    .any(|e| e.0 as i64 == code)
    {
        return true;
    }
    let Some(t) = super::current() else {
        return false;
    };
    let s = t.signals.lock();
    s.pending & !(s.blocked & !(bit(SIGKILL) | bit(SIGSTOP))) != 0 || s.saved_mask.is_some()
}

/// Deliver pending, unblocked signals before returning to user mode (`get_signal` +
/// `handle_signal`): ignored ones are dropped, a default action stops or kills, the first
/// caught one gets a frame. `syscall` is the number of the system call returning (its
/// result in RAX may ask for a restart), `None` on other paths.
pub fn do_signal(frame: &mut TrapFrame, syscall: Option<u64>) {
    let Some(t) = super::current() else { return };
    // A bounded loop: each round takes one pending signal away.
    for _ in 0..=NSIG {
        let (sig, info, act) = {
            let mut s = t.signals.lock();
            let ready = s.pending & !(s.blocked & !(bit(SIGKILL) | bit(SIGSTOP)));
            if ready == 0 {
                break;
            }
            let sig = ready.trailing_zeros() as u8 + 1;
            s.pending &= !bit(sig);
            (sig, s.info[sig as usize - 1], s.actions[sig as usize - 1])
        };
        let info = super::posix_timers::on_dequeue(t, info);
        if act.handler == SIG_IGN || (act.handler == SIG_DFL && default_ignored(sig)) {
            continue;
        }
        if act.handler == SIG_DFL && STOP_SIGNALS & bit(sig) != 0 {
            // Stop until SIGCONT (or SIGKILL): the parent can see it with WUNTRACED.
            use core::sync::atomic::Ordering;
            t.stop_report
                .store((sig as u32) << 8 | 0x7f, Ordering::Release);
            t.state.store(super::state::STOPPED, Ordering::Release);
            trace_signal(t, info, trace::sigaction::STOP);
            notify_parent(t, CLD_STOPPED, sig);
            super::sched::schedule();
            // Resumed: a SIGKILL that woke us is handled in the next round.
            continue;
        }
        if act.handler == SIG_DFL || sig == SIGKILL {
            trace_signal(t, info, trace::sigaction::KILL);
            super::exit_group(super::ExitReason::Signal(sig));
        }
        if let Some(nr) = syscall {
            syscall_restart(frame, nr, Some(act.flags));
        }
        trace_signal(t, info, trace::sigaction::HANDLER);
        if setup_frame(frame, info, act).is_err() {
            super::exit_group(super::ExitReason::Signal(SIGSEGV));
        }
        return;
    }
    // No handler runs: restart an interrupted call, and put back a temporary mask.
    if let Some(nr) = syscall {
        syscall_restart(frame, nr, None);
    }
    let mut s = t.signals.lock();
    if let Some(m) = s.saved_mask.take() {
        s.blocked = m;
    }
}

/// Whether `v` is a canonical address (bits 63..47 all equal).
fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

/// Last check before IRETQ to user mode: a non-canonical RIP (from a sigreturn frame, or a
/// handler address) would fault on the IRETQ itself, in the kernel. Linux returns through
/// IRET in that case and its `bad_iret` fixup turns the fault into the user's #GP: SIGSEGV
/// (SI_KERNEL). Raise it here instead; a second bad RIP (the handler's own) finds SIGSEGV
/// blocked and kills, as Linux's forced signal does.
pub fn check_user_return(frame: &mut TrapFrame) {
    if frame.cs & 3 == 3 {
        super::rseq::notify_resume(frame);
    }
    for _ in 0..2 {
        if frame.cs & 3 != 3 || canonical(frame.rip) {
            return;
        }
        force_sig(
            frame,
            SigInfo {
                signo: SIGSEGV,
                code: SI_KERNEL,
                addr: 0,
                pid: 0,
                status: 0,
            },
        );
    }
    if !canonical(frame.rip) {
        super::exit_group(super::ExitReason::Signal(SIGSEGV));
    }
}

/// `si_code` of a POSIX timer's signal.
pub const SI_TIMER: i32 = -2;

/// A `siginfo_t` as user space reads it (signal frames, rt_sigtimedwait): si_signo,
/// si_code, then the union member the code selects.
pub fn siginfo_bytes(info: &SigInfo) -> [u8; SIGINFO_SIZE] {
    let mut b = [0u8; SIGINFO_SIZE];
    b[0..4].copy_from_slice(&(info.signo as i32).to_le_bytes());
    b[8..12].copy_from_slice(&info.code.to_le_bytes());
    if info.code == SI_TIMER {
        // si_tid (the timer id), si_overrun, si_sigval: kept in pid, status and addr.
        b[16..20].copy_from_slice(&info.pid.to_le_bytes());
        b[20..24].copy_from_slice(&info.status.to_le_bytes());
        b[24..32].copy_from_slice(&info.addr.to_le_bytes());
    } else if info.code <= 0 {
        // kill/tkill: si_pid, si_uid; sigqueue (and any other user code) adds si_value.
        b[16..20].copy_from_slice(&info.pid.to_le_bytes());
        if info.code < 0 && info.code != SI_TKILL {
            b[24..32].copy_from_slice(&info.addr.to_le_bytes());
        }
    } else if info.signo == SIGCHLD {
        // si_pid, si_uid, si_status (si_utime and si_stime stay 0).
        b[16..20].copy_from_slice(&info.pid.to_le_bytes());
        b[24..28].copy_from_slice(&info.status.to_le_bytes());
    } else {
        b[16..24].copy_from_slice(&info.addr.to_le_bytes());
    }
    b
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)` (sigwait, sigwaitinfo,
/// sigtimedwait): take a pending signal of `set` without running its handler; sleep until
/// one comes, the timeout passes (EAGAIN), or another signal interrupts (EINTR).
pub fn sys_rt_sigtimedwait(
    set: u64,
    uinfo: u64,
    timeout: u64,
    size: u64,
) -> crate::syscall::errno::SysResult {
    use crate::syscall::errno::{EAGAIN, EINTR, EINVAL, ESRCH};
    if size != 8 {
        return Err(EINVAL);
    }
    let t = super::current().ok_or(ESRCH)?;
    // SIGKILL and SIGSTOP cannot be waited for.
    let want = crate::mm::uaccess::get_user::<u64>(set)? & !(bit(SIGKILL) | bit(SIGSTOP));
    let deadline = if timeout != 0 {
        let ns = crate::syscall::time::get_timespec(timeout)?;
        Some(super::timer::now_ns().saturating_add(ns))
    } else {
        None
    };
    loop {
        let taken = {
            let mut s = t.signals.lock();
            let ready = s.pending & want;
            if ready != 0 {
                let sig = ready.trailing_zeros() as u8 + 1;
                s.pending &= !bit(sig);
                Some(s.info[sig as usize - 1])
            } else {
                None
            }
        };
        if let Some(info) = taken {
            let info = super::posix_timers::on_dequeue(t, info);
            if uinfo != 0 {
                copy_to_user(uinfo, &siginfo_bytes(&info))?;
            }
            return Ok(info.signo as u64);
        }
        match super::timer::sleep_once(deadline) {
            super::timer::Wake::Timeout => return Err(EAGAIN),
            // Another signal the task does not block: it runs its handler (EINTR).
            super::timer::Wake::Signal => {
                let s = t.signals.lock();
                if s.pending & want == 0 {
                    return Err(EINTR);
                }
            }
            super::timer::Wake::Woken => {}
        }
    }
}

/// Size of `struct ucontext` with its `sigcontext`, and of `siginfo`.
const UCONTEXT_SIZE: usize = 304;
const SIGINFO_SIZE: usize = 128;
const FRAME_SIZE: usize = 8 + UCONTEXT_SIZE + SIGINFO_SIZE;
/// Offset of `uc_mcontext` in `ucontext`, and of `uc_sigmask`.
const MCONTEXT_OFF: usize = 40;
const SIGMASK_OFF: usize = MCONTEXT_OFF + 256;
/// The x86-64 red zone below RSP that signal frames must skip.
const RED_ZONE: u64 = 128;
/// Index of `fpstate` in the `sigcontext` words.
const FPSTATE_WORD: usize = 23;
/// `uc_flags`: the frame's fpstate has an XSAVE header (`UC_FP_XSTATE`), the sigcontext's
/// SS is meaningful (`UC_SIGCONTEXT_SS`) and sigreturn restores it as it is
/// (`UC_STRICT_RESTORE_SS`), as Linux sets them for 64-bit frames.
const UC_FP_XSTATE: u64 = 0x1;
const UC_SIGCONTEXT_SS: u64 = 0x2;
const UC_STRICT_RESTORE_SS: u64 = 0x4;
/// `_fpx_sw_bytes.magic1` and the word after the XSAVE area in a signal frame.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const FP_XSTATE_MAGIC2_SIZE: usize = 4;
/// Alignment of the fpstate in a frame (XSAVE's), and FXRSTOR's own.
const FPSTATE_ALIGN: u64 = 64;
const FXSTATE_ALIGN: u64 = 16;

/// Bytes of the FPU part of a signal frame (`xstate_sigframe_size`).
fn math_frame_size() -> usize {
    use crate::arch::x86_64::fpu;
    if fpu::uses_xsave() {
        fpu::xstate_size() + FP_XSTATE_MAGIC2_SIZE
    } else {
        fpu::xstate_size()
    }
}

/// Write the current FPU registers to the frame's fpstate at `buf` (`copy_fpstate_to_sigframe`):
/// the save area, then with XSAVE the `_fpx_sw_bytes` that describe it and MAGIC2 after it.
fn save_fpstate_to_frame(buf: u64) -> Result<(), ()> {
    use crate::arch::x86_64::fpu;
    let mut st = fpu::FpuState([0; fpu::FPSTATE_CAPACITY]);
    fpu::save(&mut st);
    let size = fpu::xstate_size();
    if fpu::uses_xsave() {
        // Legacy readers of the frame see x87 and SSE as present (`save_xstate_epilog`).
        let bv = u64::from_le_bytes(
            st.0[fpu::FXSAVE_SIZE..fpu::FXSAVE_SIZE + 8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        fpu::set_xstate_bv(&mut st, bv | fpu::XFEATURE_MASK_FPSSE);
        let sw = &mut st.0[fpu::SW_RESERVED_OFF..fpu::FXSAVE_SIZE];
        sw.fill(0);
        sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        sw[4..8].copy_from_slice(&((size + FP_XSTATE_MAGIC2_SIZE) as u32).to_le_bytes());
        sw[8..16].copy_from_slice(&fpu::XFEATURE_MASK_FPSSE.to_le_bytes());
        sw[16..20].copy_from_slice(&(size as u32).to_le_bytes());
        st.0[size..size + 4].copy_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
    }
    copy_to_user(buf, &st.0[..math_frame_size()]).map_err(|_| ())
}

/// Load the FPU state from a frame's fpstate at `buf` (`fpu__restore_sig`): NULL gives the
/// initial state; an XSAVE image whose `_fpx_sw_bytes` or MAGIC2 do not check out is taken
/// as a legacy FXSAVE image (`check_xstate_in_sigframe`'s fx-only fallback); components the
/// frame leaves out of `xfeatures` are initialised. Err (the caller sends SIGSEGV) when the
/// memory is unreadable or XRSTOR/FXRSTOR would fault on the image: misaligned, MXCSR
/// reserved bits, a bad XSAVE header.
fn restore_fpstate_from_frame(buf: u64) -> Result<(), ()> {
    use crate::arch::x86_64::fpu;
    if buf == 0 {
        fpu::restore_init();
        return Ok(());
    }
    let mut user = fpu::FpuState([0; fpu::FPSTATE_CAPACITY]);
    copy_from_user(&mut user.0[..fpu::FXSAVE_SIZE], buf).map_err(|_| ())?;
    let size = fpu::xstate_size();
    let mut fx_only = true;
    let mut xfeatures = fpu::XFEATURE_MASK_FPSSE;
    if fpu::uses_xsave() {
        let sw = &user.0[fpu::SW_RESERVED_OFF..fpu::FXSAVE_SIZE];
        let word = |o: usize| u32::from_le_bytes(sw[o..o + 4].try_into().unwrap_or([0; 4]));
        let (magic1, extended, xstate_size) = (word(0), word(4) as usize, word(16) as usize);
        if magic1 == FP_XSTATE_MAGIC1
            && xstate_size >= fpu::FXSAVE_SIZE + 64
            && xstate_size <= size
            && xstate_size <= extended
        {
            let mut m2 = [0u8; 4];
            copy_from_user(&mut m2, buf + xstate_size as u64).map_err(|_| ())?;
            if u32::from_le_bytes(m2) == FP_XSTATE_MAGIC2 {
                fx_only = false;
                xfeatures = u64::from_le_bytes(sw[8..16].try_into().unwrap_or([0; 8]));
            }
        }
    }
    let mut img = fpu::FpuState::init();
    if fx_only {
        if !buf.is_multiple_of(FXSTATE_ALIGN) {
            return Err(());
        }
        img.0[..fpu::SW_RESERVED_OFF].copy_from_slice(&user.0[..fpu::SW_RESERVED_OFF]);
        fpu::set_xstate_bv(&mut img, fpu::XFEATURE_MASK_FPSSE);
    } else {
        if !buf.is_multiple_of(FPSTATE_ALIGN) {
            return Err(());
        }
        copy_from_user(
            &mut user.0[fpu::FXSAVE_SIZE..size],
            buf + fpu::FXSAVE_SIZE as u64,
        )
        .map_err(|_| ())?;
        // XRSTOR faults on the header and MXCSR as they are in memory, whatever the mask.
        fpu::sanitize(&user).map_err(|_| ())?;
        let rfbm = xfeatures & fpu::XFEATURE_MASK_FPSSE;
        let bv = u64::from_le_bytes(
            user.0[fpu::FXSAVE_SIZE..fpu::FXSAVE_SIZE + 8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        img.0[..fpu::SW_RESERVED_OFF].copy_from_slice(&user.0[..fpu::SW_RESERVED_OFF]);
        fpu::clear_header(&mut img);
        fpu::set_xstate_bv(&mut img, bv & rfbm);
        if rfbm & 0b10 == 0 {
            // SSE not restored: MXCSR comes from the initial state too.
            img.set_mxcsr(fpu::MXCSR_INIT);
        }
    }
    fpu::sanitize(&img).map_err(|_| ())?;
    fpu::restore(&img);
    Ok(())
}

/// `sigcontext` register order (glibc's `REG_*` indexes).
fn mcontext(frame: &TrapFrame, info: &SigInfo, trapno: u64, oldmask: u64) -> [u64; 32] {
    let mut m = [0u64; 32];
    m[..18].copy_from_slice(&[
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rdi,
        frame.rsi,
        frame.rbp,
        frame.rbx,
        frame.rdx,
        frame.rax,
        frame.rcx,
        frame.rsp,
        frame.rip,
        frame.rflags,
    ]);
    m[18] = (frame.cs & 0xffff) | (frame.ss & 0xffff) << 48;
    m[19] = frame.error_code;
    m[20] = trapno;
    m[21] = oldmask;
    m[22] = if info.signo == SIGSEGV || info.signo == SIGBUS {
        info.addr
    } else {
        0
    };
    m
}

/// `sigaltstack` flags.
pub const SS_ONSTACK: u32 = 1;
pub const SS_DISABLE: u32 = 2;
/// Disarm the alternate stack while a handler runs on it (restored by sigreturn).
pub const SS_AUTODISARM: u32 = 1 << 31;
/// The smallest alternate stack (`MINSIGSTKSZ` on x86).
pub const MINSIGSTKSZ: u64 = 2048;

/// Whether `sp` is on the alternate stack (`on_sig_stack`; the stack grows down, so its
/// top address counts and its base does not).
fn on_sig_stack(s: &Signals, sp: u64) -> bool {
    if s.sas_ss_flags & SS_AUTODISARM != 0 {
        return false;
    }
    sp > s.sas_ss_sp && sp - s.sas_ss_sp <= s.sas_ss_size
}

/// `sas_ss_flags(sp)`: SS_DISABLE without an alternate stack, SS_ONSTACK on it, else 0.
fn sas_ss_flags(s: &Signals, sp: u64) -> u32 {
    if s.sas_ss_size == 0 {
        SS_DISABLE
    } else if on_sig_stack(s, sp) {
        SS_ONSTACK
    } else {
        0
    }
}

/// `do_sigaltstack`: install `new` (sp, flags, size) unless on the alternate stack now
/// (EPERM); returns the old (sp, flags, size).
pub fn do_sigaltstack(
    t: &super::Task,
    new: Option<(u64, u32, u64)>,
    sp: u64,
) -> Result<(u64, u32, u64), crate::syscall::errno::Errno> {
    use crate::syscall::errno::{EINVAL, ENOMEM, EPERM};
    let mut s = t.signals.lock();
    let old = (
        s.sas_ss_sp,
        sas_ss_flags(&s, sp) | (s.sas_ss_flags & SS_AUTODISARM),
        s.sas_ss_size,
    );
    if let Some((ss_sp, flags, size)) = new {
        if on_sig_stack(&s, sp) {
            return Err(EPERM);
        }
        let mode = flags & !SS_AUTODISARM;
        if mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0 {
            return Err(EINVAL);
        }
        if mode == SS_DISABLE {
            s.sas_ss_sp = 0;
            s.sas_ss_size = 0;
            s.sas_ss_flags = SS_DISABLE;
        } else {
            if size < MINSIGSTKSZ {
                return Err(ENOMEM);
            }
            s.sas_ss_sp = ss_sp;
            s.sas_ss_size = size;
            s.sas_ss_flags = flags & SS_AUTODISARM;
        }
    }
    Ok(old)
}

/// Offset of `uc_stack` in `ucontext` (after `uc_flags` and `uc_link`).
const UC_STACK_OFF: usize = 16;

fn setup_frame(frame: &mut TrapFrame, info: SigInfo, act: SigAction) -> Result<(), ()> {
    let t = super::current().ok_or(())?;
    // A restartable sequence the signal interrupts resumes at its abort handler.
    super::rseq::signal_deliver(frame);
    // The mask the handler's sigreturn restores: a temporary one (ppoll, sigsuspend) is
    // undone then.
    let (oldmask, stack) = {
        let mut s = t.signals.lock();
        let old = s.saved_mask.take().unwrap_or(s.blocked);
        let stack = (
            s.sas_ss_sp,
            sas_ss_flags(&s, frame.rsp) | (s.sas_ss_flags & SS_AUTODISARM),
            s.sas_ss_size,
        );
        (old, stack)
    };
    // `get_sigframe`: skip the red zone, or move to the top of the alternate stack for an
    // SA_ONSTACK handler when not already on it.
    let mut top = frame.rsp.wrapping_sub(RED_ZONE);
    let mut onstack = false;
    if act.flags & SA_ONSTACK != 0 && stack.1 == 0 {
        top = stack.0.wrapping_add(stack.2);
        onstack = true;
    } else if stack.1 & SS_ONSTACK != 0 {
        onstack = true;
    }
    // `fpu__alloc_mathframe`: the FPU state first, 64-byte aligned, then the frame below it.
    let fpstate = if crate::arch::x86_64::fpu::enabled() {
        top.wrapping_sub(math_frame_size() as u64) & !(FPSTATE_ALIGN - 1)
    } else {
        0
    };
    if fpstate != 0 {
        top = fpstate;
    }
    let sp = (top.wrapping_sub(FRAME_SIZE as u64) & !0xf).wrapping_sub(8);
    if onstack {
        // The frame must fit on the alternate stack (Linux: SIGSEGV otherwise).
        let s = t.signals.lock();
        if s.sas_ss_size != 0 && !(sp > s.sas_ss_sp && sp - s.sas_ss_sp <= s.sas_ss_size) {
            return Err(());
        }
    }
    let mut buf = [0u8; FRAME_SIZE];
    buf[..8].copy_from_slice(&act.restorer.to_le_bytes());
    let uc = 8;
    let mut uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    if crate::arch::x86_64::fpu::uses_xsave() {
        uc_flags |= UC_FP_XSTATE;
    }
    buf[uc..uc + 8].copy_from_slice(&uc_flags.to_le_bytes());
    buf[uc + UC_STACK_OFF..uc + UC_STACK_OFF + 8].copy_from_slice(&stack.0.to_le_bytes());
    buf[uc + UC_STACK_OFF + 8..uc + UC_STACK_OFF + 12].copy_from_slice(&stack.1.to_le_bytes());
    buf[uc + UC_STACK_OFF + 16..uc + UC_STACK_OFF + 24].copy_from_slice(&stack.2.to_le_bytes());
    let trapno = if frame.vector < 32 { frame.vector } else { 0 };
    let mut mc = mcontext(frame, &info, trapno, oldmask);
    mc[FPSTATE_WORD] = fpstate;
    for (i, w) in mc.iter().enumerate() {
        let o = uc + MCONTEXT_OFF + i * 8;
        buf[o..o + 8].copy_from_slice(&w.to_le_bytes());
    }
    buf[uc + SIGMASK_OFF..uc + SIGMASK_OFF + 8].copy_from_slice(&oldmask.to_le_bytes());
    let si = 8 + UCONTEXT_SIZE;
    buf[si..si + SIGINFO_SIZE].copy_from_slice(&siginfo_bytes(&info));
    if fpstate != 0 {
        save_fpstate_to_frame(fpstate)?;
    }
    copy_to_user(sp, &buf).map_err(|_| ())?;
    // The handler starts with a clean FPU (`fpu__clear_user_states`).
    crate::arch::x86_64::fpu::restore_init();
    let mut s = t.signals.lock();
    if s.sas_ss_flags & SS_AUTODISARM != 0 && act.flags & SA_ONSTACK != 0 {
        s.sas_ss_sp = 0;
        s.sas_ss_size = 0;
        s.sas_ss_flags = SS_DISABLE;
    }
    s.blocked |= act.mask;
    if act.flags & SA_NODEFER == 0 {
        s.blocked |= bit(info.signo);
    }
    if act.flags & SA_RESETHAND != 0 {
        s.actions[info.signo as usize - 1] = SigAction::default();
    }
    drop(s);
    frame.rsp = sp;
    frame.rip = act.handler;
    frame.rdi = info.signo as u64;
    frame.rsi = sp + si as u64;
    frame.rdx = sp + uc as u64;
    frame.rax = 0;
    frame.cs = USER_CS as u64;
    frame.ss = USER_DS as u64;
    // TF and DF cleared for the handler, as Linux does.
    frame.rflags &= !((1 << 8) | (1 << 10));
    Ok(())
}

/// RFLAGS bits user code may change through `rt_sigreturn` (`FIX_EFLAGS`): CF PF AF ZF SF
/// TF DF OF RF AC ID.
const FIX_EFLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x1_0000 | 0x4_0000 | 0x20_0000;

/// `rt_sigreturn()`: restore the registers, mask and alternate stack saved in the frame
/// at RSP - 8 (the handler's `ret` popped the restorer address), as Linux's
/// `restore_sigcontext`: only the user-changeable RFLAGS bits are taken, CS and SS are
/// forced to RPL 3. Returns true when the process must get SIGSEGV instead: an unreadable
/// frame (Linux's `badframe`), or a CS that is not the user code segment, on which the
/// return's IRET would fault (Linux's `bad_iret` path). A non-canonical RIP is caught on
/// the way out ([`check_user_return`]).
pub fn sys_rt_sigreturn(frame: &mut TrapFrame) -> bool {
    let uc = frame.rsp;
    let mut m = [0u8; 256 + 8];
    let mut st = [0u8; 24];
    if copy_from_user(&mut m, uc + MCONTEXT_OFF as u64).is_err()
        || copy_from_user(&mut st, uc + UC_STACK_OFF as u64).is_err()
    {
        return true;
    }
    let w = |i: usize| u64::from_le_bytes(m[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    frame.r8 = w(0);
    frame.r9 = w(1);
    frame.r10 = w(2);
    frame.r11 = w(3);
    frame.r12 = w(4);
    frame.r13 = w(5);
    frame.r14 = w(6);
    frame.r15 = w(7);
    frame.rdi = w(8);
    frame.rsi = w(9);
    frame.rbp = w(10);
    frame.rbx = w(11);
    frame.rdx = w(12);
    frame.rax = w(13);
    frame.rcx = w(14);
    frame.rsp = w(15);
    frame.rip = w(16);
    frame.rflags = (frame.rflags & !FIX_EFLAGS) | (w(17) & FIX_EFLAGS);
    // `cs | 3` must be the 64-bit user code segment for the IRET to succeed; SS is made
    // valid (`force_valid_ss`), so it never faults.
    let bad_cs = (w(18) & 0xffff) | 3 != USER_CS as u64;
    // With UC_STRICT_RESTORE_SS the saved SS is taken as it is, and IRET would fault on
    // anything but the user data segment; without it SS is made valid (`force_valid_ss`).
    let mut uc_flags = [0u8; 8];
    let strict_ss = copy_from_user(&mut uc_flags, uc).is_ok()
        && u64::from_le_bytes(uc_flags) & UC_STRICT_RESTORE_SS != 0;
    let bad_ss = strict_ss && (w(18) >> 48) & 0xffff | 3 != USER_DS as u64;
    frame.cs = USER_CS as u64;
    frame.ss = USER_DS as u64;
    if restore_fpstate_from_frame(w(FPSTATE_WORD)).is_err() {
        return true;
    }
    let mask = w(32);
    if let Some(t) = super::current() {
        t.signals.lock().blocked = mask & !(bit(SIGKILL) | bit(SIGSTOP));
        // A sleep interrupted before this handler is not continued any more.
        *t.restart_block.lock() = None;
        // `restore_altstack`: EPERM/EINVAL are ignored.
        let q = |i: usize| u64::from_le_bytes(st[i..i + 8].try_into().unwrap_or([0; 8]));
        let _ = do_sigaltstack(t, Some((q(0), q(8) as u32, q(16))), frame.rsp);
    }
    bad_cs || bad_ss
}

/// Per-task signal state behind a lock.
pub type SignalLock = IrqLock<Signals>;
