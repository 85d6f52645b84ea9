//! Signal system calls: rt_sigaction, rt_sigprocmask, rt_sigreturn, plus
//! the signal numbers.
//!
//! On x86-64 the kernel requires `SA_RESTORER`: after a handler returns it
//! jumps to `sa_restorer`, which must issue `rt_sigreturn`. [`sigaction`]
//! installs this runtime's trampoline ([`restorer`]) automatically.

use core::arch::global_asm;

use super::nr::*;
use super::{check, syscall4, SysResult};

/// Hangup.
pub const SIGHUP: i32 = 1;
/// Interrupt (Ctrl-C).
pub const SIGINT: i32 = 2;
/// Quit.
pub const SIGQUIT: i32 = 3;
/// Illegal instruction.
pub const SIGILL: i32 = 4;
/// Trace/breakpoint trap.
pub const SIGTRAP: i32 = 5;
/// Abort.
pub const SIGABRT: i32 = 6;
/// Bus error.
pub const SIGBUS: i32 = 7;
/// Arithmetic exception.
pub const SIGFPE: i32 = 8;
/// Kill (cannot be caught).
pub const SIGKILL: i32 = 9;
/// User-defined signal 1.
pub const SIGUSR1: i32 = 10;
/// Segmentation fault.
pub const SIGSEGV: i32 = 11;
/// User-defined signal 2.
pub const SIGUSR2: i32 = 12;
/// Write to a pipe with no reader.
pub const SIGPIPE: i32 = 13;
/// Alarm clock.
pub const SIGALRM: i32 = 14;
/// Termination request.
pub const SIGTERM: i32 = 15;
/// Coprocessor stack fault (unused).
pub const SIGSTKFLT: i32 = 16;
/// Child stopped or exited.
pub const SIGCHLD: i32 = 17;
/// Continue if stopped.
pub const SIGCONT: i32 = 18;
/// Stop (cannot be caught).
pub const SIGSTOP: i32 = 19;
/// Terminal stop (Ctrl-Z).
pub const SIGTSTP: i32 = 20;
/// Background read from the terminal.
pub const SIGTTIN: i32 = 21;
/// Background write to the terminal.
pub const SIGTTOU: i32 = 22;
/// Urgent data on a socket.
pub const SIGURG: i32 = 23;
/// CPU time limit exceeded.
pub const SIGXCPU: i32 = 24;
/// File size limit exceeded.
pub const SIGXFSZ: i32 = 25;
/// Virtual timer expired.
pub const SIGVTALRM: i32 = 26;
/// Profiling timer expired.
pub const SIGPROF: i32 = 27;
/// Window size change.
pub const SIGWINCH: i32 = 28;
/// I/O possible.
pub const SIGIO: i32 = 29;
/// Power failure.
pub const SIGPWR: i32 = 30;
/// Bad system call.
pub const SIGSYS: i32 = 31;

/// `sa_handler` value: default action.
pub const SIG_DFL: usize = 0;
/// `sa_handler` value: ignore the signal.
pub const SIG_IGN: usize = 1;

/// Do not send `SIGCHLD` when children stop.
pub const SA_NOCLDSTOP: u64 = 0x0000_0001;
/// Handler takes `(sig, *siginfo, *ucontext)`.
pub const SA_SIGINFO: u64 = 0x0000_0004;
/// Run the handler on the alternate signal stack.
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `sa_restorer` is valid (required on x86-64).
pub const SA_RESTORER: u64 = 0x0400_0000;
/// Restart interrupted system calls.
pub const SA_RESTART: u64 = 0x1000_0000;
/// Do not block the signal while its handler runs.
pub const SA_NODEFER: u64 = 0x4000_0000;
/// Reset to `SIG_DFL` on delivery.
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `rt_sigprocmask` how: add to the mask.
pub const SIG_BLOCK: u32 = 0;
/// `rt_sigprocmask` how: remove from the mask.
pub const SIG_UNBLOCK: u32 = 1;
/// `rt_sigprocmask` how: replace the mask.
pub const SIG_SETMASK: u32 = 2;

/// A kernel signal set (64 signals; `sigsetsize` is 8 on x86-64).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigSet(pub u64);

impl SigSet {
    /// The empty set.
    pub const fn empty() -> SigSet {
        SigSet(0)
    }
    /// Bit for signal `sig` (1..=64); 0 for an out-of-range number.
    const fn bit(sig: i32) -> u64 {
        if sig >= 1 && sig <= 64 {
            1 << (sig - 1)
        } else {
            0
        }
    }
    /// This set plus `sig`.
    pub const fn with(self, sig: i32) -> SigSet {
        SigSet(self.0 | Self::bit(sig))
    }
    /// Whether `sig` is in the set.
    pub const fn contains(self, sig: i32) -> bool {
        Self::bit(sig) != 0 && self.0 & Self::bit(sig) != 0
    }
}

/// The kernel's `struct sigaction` on x86-64 (not glibc's layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    /// Handler address, or [`SIG_DFL`] / [`SIG_IGN`].
    pub handler: usize,
    /// `SA_*` flags.
    pub flags: u64,
    /// Trampoline that calls `rt_sigreturn` (with [`SA_RESTORER`]).
    pub restorer: usize,
    /// Signals blocked while the handler runs.
    pub mask: SigSet,
}

impl SigAction {
    /// An action that runs `handler(sig)` with `flags | SA_RESTORER` and this
    /// runtime's restorer.
    pub fn handler(handler: extern "C" fn(i32), flags: u64) -> SigAction {
        SigAction {
            handler: handler as usize,
            flags: flags | SA_RESTORER,
            restorer: restorer(),
            mask: SigSet::empty(),
        }
    }
    /// The default action ([`SIG_DFL`]).
    pub const fn default_action() -> SigAction {
        SigAction {
            handler: SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: SigSet(0),
        }
    }
    /// Ignore the signal ([`SIG_IGN`]).
    pub const fn ignore() -> SigAction {
        SigAction {
            handler: SIG_IGN,
            flags: 0,
            restorer: 0,
            mask: SigSet(0),
        }
    }
}

// The restorer trampoline: when a handler returns, the kernel-built signal
// frame is on the stack and the return address is this code, which asks the
// kernel to restore the interrupted context.
global_asm!(
    ".pushsection .text.__vmrt_sigreturn,\"ax\",@progbits",
    ".globl __vmrt_sigreturn",
    ".type __vmrt_sigreturn,@function",
    "__vmrt_sigreturn:",
    "    mov eax, {nr}",
    "    syscall",
    "    ud2",
    ".size __vmrt_sigreturn, . - __vmrt_sigreturn",
    ".popsection",
    nr = const SYS_rt_sigreturn,
);

extern "C" {
    fn __vmrt_sigreturn();
}

/// Address of the `rt_sigreturn` trampoline for [`SigAction::restorer`].
pub fn restorer() -> usize {
    __vmrt_sigreturn as *const () as usize
}

/// `rt_sigaction(sig, act, oldact, 8)`: installs `act` (if given) and returns
/// the previous action. If `act` has a handler but no `SA_RESTORER`, this
/// runtime's restorer is filled in.
///
/// # Safety
/// A handler runs asynchronously, interrupting arbitrary code: it must only
/// touch state that is safe to use from there (atomics, raw syscalls; not the
/// allocator or a `print!` that may be in progress).
pub unsafe fn sigaction(sig: i32, act: Option<&SigAction>) -> SysResult<SigAction> {
    let mut new = act.copied();
    if let Some(a) = new.as_mut() {
        if a.handler > SIG_IGN && a.flags & SA_RESTORER == 0 {
            a.flags |= SA_RESTORER;
            a.restorer = restorer();
        }
    }
    let new_ptr = new.as_ref().map_or(0, |a| a as *const SigAction as usize);
    let mut old = SigAction::default();
    check(syscall4(
        SYS_rt_sigaction,
        sig as usize,
        new_ptr,
        &mut old as *mut SigAction as usize,
        core::mem::size_of::<SigSet>(),
    ))?;
    Ok(old)
}

/// `rt_sigprocmask(how, set, oldset, 8)`: changes the blocked-signal mask
/// (if `set` is given) and returns the previous mask.
pub fn sigprocmask(how: u32, set: Option<&SigSet>) -> SysResult<SigSet> {
    let set_ptr = set.map_or(0, |s| s as *const SigSet as usize);
    let mut old = SigSet::empty();
    // SAFETY: both pointers are valid for 8 bytes (or NULL).
    check(unsafe {
        syscall4(
            SYS_rt_sigprocmask,
            how as usize,
            set_ptr,
            &mut old as *mut SigSet as usize,
            core::mem::size_of::<SigSet>(),
        )
    })?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigset_bits() {
        let s = SigSet::empty().with(SIGINT).with(SIGCHLD);
        assert_eq!(s.0, (1 << 1) | (1 << 16));
        assert!(s.contains(SIGINT) && s.contains(SIGCHLD) && !s.contains(SIGTERM));
        assert_eq!(SigSet::empty().with(0).with(65), SigSet::empty());
        assert_eq!(core::mem::size_of::<SigAction>(), 32);
    }
}
