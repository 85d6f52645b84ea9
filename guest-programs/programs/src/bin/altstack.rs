//! `altstack`: `sigaltstack` and SA_ONSTACK as programs use them to survive a stack
//! overflow. The main stack is exhausted by unbounded recursion; the SIGSEGV handler runs
//! on the alternate stack (its frame lies there), sees SS_ONSTACK, cannot change the stack
//! while on it (EPERM), and ends the program with a report. Before that, the errno rules:
//! a stack below MINSIGSTKSZ is ENOMEM, unknown flags EINVAL, SS_DISABLE reports
//! disabled, and a handler without SA_ONSTACK runs on the normal stack.
#![no_std]
#![no_main]

use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};
use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::nr::SYS_sigaltstack;
use vmrt::sys::proc::{exit_group, setrlimit, Rlimit, RLIMIT_CORE};
use vmrt::sys::signal::{
    raise, sigaction, SigAction, SigInfo, StackT, SA_ONSTACK, SIGSEGV, SIGUSR1,
};
use vmrt::sys::{call, Errno};

vmrt::entry!(main);

const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
/// The alternate stack: 64 KiB in .bss.
const ALT_SIZE: usize = 64 << 10;
static mut ALT: [u8; ALT_SIZE] = [0; ALT_SIZE];

fn alt_base() -> usize {
    core::ptr::addr_of!(ALT) as usize
}

fn sigaltstack(new: Option<&StackT>, old: Option<&mut StackT>) -> Result<usize, Errno> {
    let n = new.map_or(0, |s| s as *const StackT as usize);
    let o = old.map_or(0, |s| s as *mut StackT as usize);
    // SAFETY: valid stack_t pointers or NULL.
    unsafe { call(SYS_sigaltstack, &[n, o]) }
}

/// Where a handler's local variable was: on the alternate stack or not.
static WHERE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_usr1(_sig: i32) {
    let local = 0u8;
    WHERE.store(core::ptr::addr_of!(local) as usize, Ordering::Relaxed);
}

fn on_alt(addr: usize) -> bool {
    addr > alt_base() && addr <= alt_base() + ALT_SIZE
}

extern "C" fn on_segv(_sig: i32, _info: *mut SigInfo, _uc: *mut c_void) {
    let local = 0u8;
    let here = core::ptr::addr_of!(local) as usize;
    let mut cur = StackT::default();
    let _ = sigaltstack(None, Some(&mut cur));
    let again = StackT {
        ss_sp: alt_base(),
        ss_flags: 0,
        ss_size: ALT_SIZE,
    };
    println!(
        "SIGSEGV handler on the alternate stack: {}",
        vmrt::io::yes_no(on_alt(here))
    );
    println!(
        "sigaltstack reports SS_ONSTACK: {}",
        vmrt::io::yes_no(cur.ss_flags == SS_ONSTACK)
    );
    println!(
        "changing it while on it: {:?}",
        sigaltstack(Some(&again), None).err()
    );
    println!("the overflow was caught");
    exit_group(0);
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let mut pad = [0u8; 512];
    pad[0] = n as u8;
    let pad = core::hint::black_box(pad);
    if n == u64::MAX {
        return 0;
    }
    recurse(n + 1) + pad[0] as u64
}

fn main() -> i32 {
    let mut r = Report::new();
    let _ = setrlimit(RLIMIT_CORE, Rlimit { cur: 0, max: 0 });
    let mut old = StackT::default();
    r.check(
        "no alternate stack at start: SS_DISABLE",
        sigaltstack(None, Some(&mut old)).is_ok() && old.ss_flags == SS_DISABLE,
    );
    let small = StackT {
        ss_sp: alt_base(),
        ss_flags: 0,
        ss_size: 1024,
    };
    println!("a 1 KiB stack: {:?}", sigaltstack(Some(&small), None).err());
    let bad = StackT {
        ss_sp: alt_base(),
        ss_flags: 0x10,
        ss_size: ALT_SIZE,
    };
    println!("unknown flags: {:?}", sigaltstack(Some(&bad), None).err());
    // SAFETY: a bad pointer: the kernel must answer EFAULT.
    let e = unsafe { call(SYS_sigaltstack, &[8, 0]) };
    println!("a bad pointer: {:?}", e.err());
    let ss = StackT {
        ss_sp: alt_base(),
        ss_flags: 0,
        ss_size: ALT_SIZE,
    };
    r.check(
        "install a 64 KiB stack",
        sigaltstack(Some(&ss), None).is_ok(),
    );
    r.check(
        "it reads back, not in use",
        sigaltstack(None, Some(&mut old)).is_ok()
            && old.ss_sp == alt_base()
            && old.ss_size == ALT_SIZE
            && old.ss_flags == 0,
    );
    // SAFETY: the handlers touch atomics, print and exit.
    unsafe {
        let _ = sigaction(SIGUSR1, Some(&SigAction::handler(on_usr1, 0)));
    }
    let _ = raise(SIGUSR1);
    r.check(
        "without SA_ONSTACK the handler runs on the normal stack",
        !on_alt(WHERE.load(Ordering::Relaxed)),
    );
    // SAFETY: as above.
    unsafe {
        let _ = sigaction(SIGUSR1, Some(&SigAction::handler(on_usr1, SA_ONSTACK)));
    }
    let _ = raise(SIGUSR1);
    r.check(
        "with SA_ONSTACK on the alternate stack",
        on_alt(WHERE.load(Ordering::Relaxed)),
    );
    // SAFETY: as above.
    unsafe {
        let _ = sigaction(SIGSEGV, Some(&SigAction::siginfo(on_segv, SA_ONSTACK)));
    }
    if r.failures() != 0 {
        return 1;
    }
    println!("overflowing the stack");
    core::hint::black_box(recurse(0)) as i32
}
