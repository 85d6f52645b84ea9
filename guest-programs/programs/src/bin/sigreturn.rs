//! `sigreturn`: `rt_sigreturn` with a frame a handler changed, checked against Linux's
//! `restore_sigcontext`. A SIGUSR1 handler edits its `ucontext` and returns:
//!
//! * `sigreturn` (no argument): RIP = 0x8000_0000_0000_0000, non-canonical. The return
//!   cannot resume there; Linux's IRET faults and the process gets SIGSEGV, which kills it
//!   (status 139). The kernel must not panic on its own IRETQ.
//! * `sigreturn caught`: the same, with a SIGSEGV handler, which runs (si_code SI_KERNEL)
//!   and exits 0.
//! * `sigreturn cs`: CS = 0 (the null selector); Linux forces RPL 3 and the IRET faults:
//!   SIGSEGV, status 139.
//! * `sigreturn flags`: RFLAGS with IOPL 3, NT and VM set; only the user-changeable bits
//!   are taken, and the program goes on: IOPL reads 0 afterwards. Exit 0.
//! * `sigreturn handler`: no sigreturn at all: SIGUSR1's handler address is non-canonical,
//!   so entering it faults: SIGSEGV, status 139.
//! * `sigreturn segvhandler`: the SIGSEGV handler's address is non-canonical and a NULL
//!   write raises SIGSEGV: entering the handler faults with SIGSEGV blocked, so the
//!   process dies of it (139).
#![no_std]
#![no_main]

use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering};
use vmrt::println;
use vmrt::sys::proc::{exit_group, setrlimit, Rlimit, RLIMIT_CORE};
use vmrt::sys::signal::{
    raise, sigaction, SigAction, SigInfo, UContext, REG_CSGSFS, REG_EFL, REG_RIP, SIGSEGV, SIGUSR1,
};

vmrt::entry!(main);

/// What the SIGUSR1 handler does to the frame.
static MODE: AtomicU32 = AtomicU32::new(0);
const RIP: u32 = 0;
const CS: u32 = 1;
const FLAGS: u32 = 2;

extern "C" fn on_usr1(_sig: i32, _info: *mut SigInfo, uc: *mut c_void) {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    let uc = unsafe { &mut *(uc as *mut UContext) };
    match MODE.load(Ordering::Relaxed) {
        RIP => uc.uc_mcontext.gregs[REG_RIP] = 0x8000_0000_0000_0000,
        CS => uc.uc_mcontext.gregs[REG_CSGSFS] &= !0xffff,
        _ => uc.uc_mcontext.gregs[REG_EFL] |= (3 << 12) | (1 << 14) | (1 << 17),
    }
}

extern "C" fn on_plain(_sig: i32) {}

extern "C" fn on_segv(sig: i32, info: *mut SigInfo, _uc: *mut c_void) {
    // SAFETY: a valid siginfo from the kernel.
    let info = unsafe { &*info };
    println!(
        "SIGSEGV handler: signal {sig}, si_code {} (SI_KERNEL), si_addr {:#x}",
        info.si_code,
        info.addr()
    );
    exit_group(0);
}

fn main() -> i32 {
    // No core file natively.
    let _ = setrlimit(RLIMIT_CORE, Rlimit { cur: 0, max: 0 });
    let arg = vmrt::env::arg(1).and_then(|a| a.to_str());
    let mode = match arg {
        Some("cs") => CS,
        Some("flags") => FLAGS,
        _ => RIP,
    };
    MODE.store(mode, Ordering::Relaxed);
    let bad = SigAction {
        handler: 0x8000_0000_0000_0000,
        ..SigAction::handler(on_plain, 0)
    };
    if arg == Some("handler") {
        // SAFETY: the handler is never entered.
        let _ = unsafe { sigaction(SIGUSR1, Some(&bad)) };
        let _ = raise(SIGUSR1);
        println!("survived a non-canonical handler");
        return 0;
    }
    if arg == Some("segvhandler") {
        // SAFETY: as above; the write faults on purpose.
        unsafe {
            let _ = sigaction(SIGSEGV, Some(&bad));
            core::arch::asm!("mov byte ptr [{0}], 1", in(reg) core::hint::black_box(0usize));
        }
        println!("survived a NULL write");
        return 0;
    }
    let usr1 = SigAction::siginfo(on_usr1, 0);
    // SAFETY: the handlers only edit their frame, print and exit.
    unsafe {
        let _ = sigaction(SIGUSR1, Some(&usr1));
        if arg == Some("caught") {
            let segv = SigAction::siginfo(on_segv, 0);
            let _ = sigaction(SIGSEGV, Some(&segv));
        }
    }
    println!("raising SIGUSR1");
    let _ = raise(SIGUSR1);
    let flags: u64;
    // SAFETY: reads RFLAGS.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags) };
    println!(
        "back from the handler: IOPL {}, NT {}",
        (flags >> 12) & 3,
        (flags >> 14) & 1
    );
    0
}
