//! Signal system calls: rt_sigaction, rt_sigprocmask, rt_sigreturn, plus
//! the signal numbers and the structures a `SA_SIGINFO` handler receives
//! ([`SigInfo`], [`UContext`]).
//!
//! On x86-64 the kernel requires `SA_RESTORER`: after a handler returns it
//! jumps to `sa_restorer`, which must issue `rt_sigreturn`. [`sigaction`]
//! installs this runtime's trampoline ([`restorer`]) automatically.

use core::arch::global_asm;

use super::nr::*;
use super::{check, syscall4, SysResult};
use core::ffi::c_void;

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

/// `si_code`: sent by `kill` (or `raise`).
pub const SI_USER: i32 = 0;
/// `si_code`: sent by the kernel (e.g. SIGSEGV from a general-protection
/// fault, such as an access to a non-canonical address).
pub const SI_KERNEL: i32 = 0x80;
/// `si_code`: sent by `tkill`/`tgkill`.
pub const SI_TKILL: i32 = -6;
/// `si_code` of SIGSEGV: no mapping at the address.
pub const SEGV_MAPERR: i32 = 1;
/// `si_code` of SIGSEGV: mapped, but the access is not permitted.
pub const SEGV_ACCERR: i32 = 2;
/// `si_code` of SIGBUS: invalid address alignment.
pub const BUS_ADRALN: i32 = 1;
/// `si_code` of SIGBUS: nonexistent physical address (e.g. beyond a file's end).
pub const BUS_ADRERR: i32 = 2;
/// `si_code` of SIGCHLD: the child exited.
pub const CLD_EXITED: i32 = 1;
/// `si_code` of SIGCHLD: the child was killed.
pub const CLD_KILLED: i32 = 2;
/// `si_code` of SIGCHLD: the child was killed and dumped core.
pub const CLD_DUMPED: i32 = 3;

/// `siginfo_t` as the kernel passes it to a `SA_SIGINFO` handler (128
/// bytes). The union after the three header fields is kept raw; the
/// accessors decode the members that exist for a given signal.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo {
    /// Signal number.
    pub si_signo: i32,
    /// Errno value (normally 0).
    pub si_errno: i32,
    /// Why the signal was sent (`SI_*`, `SEGV_*`, `CLD_*`, ...).
    pub si_code: i32,
    /// Padding before the union (which is 8-byte aligned).
    pub __pad: i32,
    /// The union `_sifields`.
    pub fields: [u64; 14],
}

const _: () = assert!(core::mem::size_of::<SigInfo>() == 128);

impl SigInfo {
    /// All zero.
    pub const fn zeroed() -> SigInfo {
        SigInfo {
            si_signo: 0,
            si_errno: 0,
            si_code: 0,
            __pad: 0,
            fields: [0; 14],
        }
    }
    /// `si_addr`: the faulting address (SIGSEGV, SIGBUS, SIGILL, SIGFPE).
    pub fn addr(&self) -> usize {
        self.fields[0] as usize
    }
    /// `si_pid`: the sending process (signals from `kill`, SIGCHLD).
    pub fn pid(&self) -> i32 {
        self.fields[0] as u32 as i32
    }
    /// `si_uid`: the sender's real user id.
    pub fn uid(&self) -> u32 {
        (self.fields[0] >> 32) as u32
    }
    /// `si_status` of SIGCHLD: exit status or signal number.
    pub fn status(&self) -> i32 {
        self.fields[1] as u32 as i32
    }
}

/// Index of `r8` in [`MContext::gregs`] (the kernel's `struct sigcontext`
/// order, which is also glibc's `REG_*`).
pub const REG_R8: usize = 0;
/// Index of `rdi` in [`MContext::gregs`].
pub const REG_RDI: usize = 8;
/// Index of `rsi` in [`MContext::gregs`].
pub const REG_RSI: usize = 9;
/// Index of `rbp` in [`MContext::gregs`].
pub const REG_RBP: usize = 10;
/// Index of `rbx` in [`MContext::gregs`].
pub const REG_RBX: usize = 11;
/// Index of `rdx` in [`MContext::gregs`].
pub const REG_RDX: usize = 12;
/// Index of `rax` in [`MContext::gregs`].
pub const REG_RAX: usize = 13;
/// Index of `rcx` in [`MContext::gregs`].
pub const REG_RCX: usize = 14;
/// Index of `rsp` in [`MContext::gregs`].
pub const REG_RSP: usize = 15;
/// Index of `rip` in [`MContext::gregs`].
pub const REG_RIP: usize = 16;
/// Index of `rflags` in [`MContext::gregs`].
pub const REG_EFL: usize = 17;
/// Index of the packed `cs, gs, fs, ss` selectors in [`MContext::gregs`].
pub const REG_CSGSFS: usize = 18;
/// Index of the page-fault error code in [`MContext::gregs`].
pub const REG_ERR: usize = 19;
/// Index of the exception vector in [`MContext::gregs`] (14 = page fault).
pub const REG_TRAPNO: usize = 20;
/// Index of the old signal mask in [`MContext::gregs`].
pub const REG_OLDMASK: usize = 21;
/// Index of `cr2` (the faulting address) in [`MContext::gregs`].
pub const REG_CR2: usize = 22;

/// `stack_t`: an alternate signal stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackT {
    /// Base address.
    pub ss_sp: usize,
    /// `SS_*` flags.
    pub ss_flags: i32,
    /// Size in bytes.
    pub ss_size: usize,
}

/// `mcontext_t` (the kernel's `struct sigcontext`): the interrupted
/// registers. A handler may change them; `rt_sigreturn` resumes with the
/// changed values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MContext {
    /// General registers, indexed by the `REG_*` constants.
    pub gregs: [u64; 23],
    /// Pointer to the saved FPU/SSE state (may be NULL).
    pub fpregs: usize,
    /// Reserved.
    pub __reserved: [u64; 8],
}

/// `ucontext_t` as the kernel lays it out on the signal stack (the third
/// argument of a `SA_SIGINFO` handler).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UContext {
    /// `UC_*` flags.
    pub uc_flags: u64,
    /// Linked context (unused by the kernel).
    pub uc_link: usize,
    /// The signal stack in use.
    pub uc_stack: StackT,
    /// The interrupted registers.
    pub uc_mcontext: MContext,
    /// The signal mask to restore on return.
    pub uc_sigmask: SigSet,
}

const _: () = assert!(core::mem::offset_of!(UContext, uc_mcontext) == 40);
const _: () = assert!(core::mem::offset_of!(UContext, uc_sigmask) == 296);

/// A `SA_SIGINFO` handler: `(signal, info, ucontext)`.
pub type SigInfoHandler = extern "C" fn(i32, *mut SigInfo, *mut c_void);

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
    /// An action that runs `handler(sig, info, ucontext)` (`SA_SIGINFO`)
    /// with `flags | SA_SIGINFO | SA_RESTORER` and this runtime's restorer.
    /// The third argument points to a [`UContext`].
    pub fn siginfo(handler: SigInfoHandler, flags: u64) -> SigAction {
        SigAction {
            handler: handler as usize,
            flags: flags | SA_SIGINFO | SA_RESTORER,
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

/// The symbolic name of a signal (`"SIGSEGV"`), or `None` for an unknown
/// or real-time number.
pub const fn name(sig: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    if sig >= 1 && sig <= 31 {
        Some(NAMES[(sig - 1) as usize])
    } else {
        None
    }
}

/// The symbolic name of the `si_code` of a fault signal (SIGSEGV, SIGBUS)
/// or of a generic code (`SI_USER`, `SI_KERNEL`, `SI_TKILL`).
pub const fn code_name(sig: i32, code: i32) -> Option<&'static str> {
    match (sig, code) {
        (_, SI_USER) => Some("SI_USER"),
        (_, SI_KERNEL) => Some("SI_KERNEL"),
        (_, SI_TKILL) => Some("SI_TKILL"),
        (SIGSEGV, SEGV_MAPERR) => Some("SEGV_MAPERR"),
        (SIGSEGV, SEGV_ACCERR) => Some("SEGV_ACCERR"),
        (SIGBUS, BUS_ADRALN) => Some("BUS_ADRALN"),
        (SIGBUS, BUS_ADRERR) => Some("BUS_ADRERR"),
        (SIGCHLD, CLD_EXITED) => Some("CLD_EXITED"),
        (SIGCHLD, CLD_KILLED) => Some("CLD_KILLED"),
        (SIGCHLD, CLD_DUMPED) => Some("CLD_DUMPED"),
        _ => None,
    }
}

/// Sends `sig` to the calling process (`kill(getpid(), sig)`).
pub fn raise(sig: i32) -> SysResult<()> {
    super::proc::kill(super::proc::getpid(), sig)
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
        assert_eq!(name(SIGHUP), Some("SIGHUP"));
        assert_eq!(name(SIGSEGV), Some("SIGSEGV"));
        assert_eq!(name(SIGSYS), Some("SIGSYS"));
        assert_eq!(name(0), None);
        assert_eq!(code_name(SIGSEGV, SEGV_ACCERR), Some("SEGV_ACCERR"));
        assert_eq!(code_name(SIGBUS, 1), Some("BUS_ADRALN"));
    }

    /// A real SIGSEGV on the host: the handler sees si_addr, the page-fault
    /// registers, and can resume elsewhere by changing rip.
    #[test]
    fn siginfo_handler_sees_fault_and_can_resume() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        static ADDR: AtomicUsize = AtomicUsize::new(0);
        static CODE: AtomicUsize = AtomicUsize::new(0);
        static TRAP: AtomicUsize = AtomicUsize::new(0);
        extern "C" fn on_segv(_sig: i32, info: *mut SigInfo, uc: *mut c_void) {
            // SAFETY: the kernel passes valid siginfo and ucontext pointers.
            unsafe {
                ADDR.store((*info).addr(), Ordering::SeqCst);
                CODE.store((*info).si_code as usize, Ordering::SeqCst);
                let uc = &mut *(uc as *mut UContext);
                TRAP.store(uc.uc_mcontext.gregs[REG_TRAPNO] as usize, Ordering::SeqCst);
                // Skip the faulting 3-byte `mov byte ptr [rdi], 1`.
                uc.uc_mcontext.gregs[REG_RIP] += 3;
            }
        }
        let act = SigAction::siginfo(on_segv, 0);
        // SAFETY: the handler only uses atomics.
        let old = unsafe { sigaction(SIGSEGV, Some(&act)) }.expect("sigaction");
        let bad: usize = 0x10; // below mmap_min_addr: never mapped
                               // SAFETY: the fault is caught and skipped by the handler.
        unsafe {
            core::arch::asm!(".byte 0xc6, 0x07, 0x01", in("rdi") bad); // mov byte [rdi], 1
            sigaction(SIGSEGV, Some(&old)).expect("restore");
        }
        assert_eq!(ADDR.load(Ordering::SeqCst), bad);
        assert_eq!(CODE.load(Ordering::SeqCst) as i32, SEGV_MAPERR);
        assert_eq!(TRAP.load(Ordering::SeqCst), 14);
    }
}
