//! `segv`: what a process sees when it touches memory it may not, and how it
//! recovers.
//!
//! `segv` installs a `SA_SIGINFO` SIGSEGV handler, then makes five bad
//! accesses. For each, the handler prints `si_signo`, `si_code` and whether
//! `si_addr` is the touched address, and recovers like `siglongjmp`: before
//! the access the program stores a resume address (a label right after the
//! access); the handler writes it into the saved `rip` of the `ucontext`,
//! and `rt_sigreturn` continues there with the signal unblocked again.
//!
//! | access                                | Linux reports                    |
//! |---------------------------------------|----------------------------------|
//! | read of a just-unmapped page          | `SEGV_MAPERR`, `si_addr` = address |
//! | write to `.rodata`                    | `SEGV_ACCERR`, `si_addr` = address |
//! | jump to a read-write (NX) page        | `SEGV_ACCERR`, `si_addr` = target  |
//! | read of a kernel address              | `SEGV_MAPERR`, `si_addr` = address |
//! | read of a non-canonical address (#GP) | `SI_KERNEL`, `si_addr` = 0         |
//!
//! Last, it installs a plain handler that calls `_exit(0)` from inside the
//! handler and writes to NULL + 8: the process ends there with status 0.
//!
//! `segv uncaught` writes to NULL with the default action: the process is
//! killed by SIGSEGV (a shell shows status 139). Nothing is printed after
//! the line announcing it.
#![no_std]
#![no_main]

use core::arch::asm;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use vmrt::io::{yes_no, Report};
use vmrt::println;
use vmrt::sys::mm::{mmap_anonymous, munmap, PAGE_SIZE};
use vmrt::sys::proc::{exit, exit_group, setrlimit, Rlimit, RLIMIT_CORE};
use vmrt::sys::signal::{
    self, sigaction, SigAction, SigInfo, UContext, REG_RIP, SEGV_ACCERR, SEGV_MAPERR, SIGSEGV,
    SI_KERNEL,
};

vmrt::entry!(main);

/// Where the handler makes the interrupted code continue (0: no recovery
/// point, so the fault is unexpected).
static RESUME: AtomicUsize = AtomicUsize::new(0);
/// The address the current test touches.
static TOUCHED: AtomicUsize = AtomicUsize::new(0);
/// What the handler expects: `si_code`, and whether `si_addr` should equal
/// the touched address (else 0).
static WANT_CODE: AtomicUsize = AtomicUsize::new(0);
static WANT_ADDR: AtomicBool = AtomicBool::new(true);
/// Set by the handler when what it saw differs from the expectation.
static MISMATCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_segv(sig: i32, info: *mut SigInfo, ctx: *mut c_void) {
    // SAFETY: the kernel passes valid siginfo and ucontext pointers.
    let (info, uc) = unsafe { (&*info, &mut *(ctx as *mut UContext)) };
    let resume = RESUME.swap(0, Ordering::SeqCst);
    if resume == 0 {
        // Not one of our tests: die of it on return (the access repeats).
        let _ = unsafe { sigaction(sig, Some(&SigAction::default_action())) };
        return;
    }
    let touched = TOUCHED.load(Ordering::SeqCst);
    let code = info.si_code;
    // Printing is safe here: the fault interrupted our own test code, not
    // a print in progress.
    println!(
        "  handler: si_signo = {} ({}), si_code = {} ({}), si_addr == touched address: {}{}",
        info.si_signo,
        signal::name(info.si_signo).unwrap_or("?"),
        code,
        signal::code_name(info.si_signo, code).unwrap_or("?"),
        yes_no(info.addr() == touched),
        if info.addr() == 0 {
            ", si_addr == 0: yes"
        } else {
            ""
        },
    );
    let want_addr = if WANT_ADDR.load(Ordering::SeqCst) {
        touched
    } else {
        0
    };
    if info.si_signo != SIGSEGV
        || code as usize != WANT_CODE.load(Ordering::SeqCst)
        || info.addr() != want_addr
    {
        MISMATCH.store(true, Ordering::SeqCst);
    }
    uc.uc_mcontext.gregs[REG_RIP] = resume as u64;
}

/// Prepares the handler's expectations for a test.
fn expect(addr: usize, code: i32, addr_reported: bool) {
    TOUCHED.store(addr, Ordering::SeqCst);
    WANT_CODE.store(code as usize, Ordering::SeqCst);
    WANT_ADDR.store(addr_reported, Ordering::SeqCst);
}

/// Reads the byte at `addr`; returns whether it faulted (and the handler
/// resumed us at label 2).
fn read_faults(addr: usize) -> bool {
    let faulted: u32;
    // SAFETY: a fault is caught by on_segv, which resumes at label 2 with
    // every register as it was at the faulting instruction.
    unsafe {
        asm!(
            "lea {tmp}, [rip + 2f]",
            "mov qword ptr [{resume}], {tmp}",
            "xor {f:e}, {f:e}",
            "movzx {tmp:e}, byte ptr [{addr}]",
            "mov qword ptr [{resume}], 0",
            "jmp 3f",
            "2:",
            "mov {f:e}, 1",
            "3:",
            addr = in(reg) addr,
            resume = in(reg) RESUME.as_ptr(),
            tmp = out(reg) _,
            f = out(reg) faulted,
        );
    }
    faulted != 0
}

/// Writes a byte at `addr`; returns whether it faulted.
///
/// # Safety
/// If the write succeeds it changes memory.
unsafe fn write_faults(addr: usize) -> bool {
    let faulted: u32;
    asm!(
        "lea {tmp}, [rip + 2f]",
        "mov qword ptr [{resume}], {tmp}",
        "xor {f:e}, {f:e}",
        "mov byte ptr [{addr}], 0x5a",
        "mov qword ptr [{resume}], 0",
        "jmp 3f",
        "2:",
        "mov {f:e}, 1",
        "3:",
        addr = in(reg) addr,
        resume = in(reg) RESUME.as_ptr(),
        tmp = out(reg) _,
        f = out(reg) faulted,
    );
    faulted != 0
}

/// Jumps to `target`, which must fault on the instruction fetch (the
/// handler resumes at label 2); returns whether it did.
///
/// # Safety
/// `target` must not be executable code.
unsafe fn jump_faults(target: usize) -> bool {
    let faulted: u32;
    asm!(
        "lea {tmp}, [rip + 2f]",
        "mov qword ptr [{resume}], {tmp}",
        "xor {f:e}, {f:e}",
        "jmp {target}",
        "2:",
        "mov {f:e}, 1",
        target = in(reg) target,
        resume = in(reg) RESUME.as_ptr(),
        tmp = out(reg) _,
        f = out(reg) faulted,
    );
    faulted != 0
}

/// A read-only constant (lives in `.rodata`).
static RODATA: [u8; 16] = *b"read-only bytes!";

/// Handler for the final test: reports and exits from inside the handler.
extern "C" fn exit_from_handler(sig: i32) {
    println!(
        "  handler: got {}, calling _exit(0) from the handler",
        signal::name(sig).unwrap_or("?")
    );
    exit_group(0)
}

fn uncaught() -> i32 {
    // No core file natively; ignore kernels without prlimit64.
    let _ = setrlimit(RLIMIT_CORE, Rlimit { cur: 0, max: 0 });
    println!("writing to NULL with the default SIGSEGV action");
    // SAFETY: deliberately kills the process.
    unsafe { asm!("mov byte ptr [{0}], 1", in(reg) core::hint::black_box(0usize)) };
    println!("still alive after writing to NULL");
    exit(1)
}

fn main() -> i32 {
    if vmrt::env::arg(1).map(|a| a.as_bytes() == b"uncaught") == Some(true) {
        return uncaught();
    }
    let mut r = Report::new();
    let act = SigAction::siginfo(on_segv, 0);
    // SAFETY: the handler only runs for our own deliberate faults.
    if let Err(e) = unsafe { sigaction(SIGSEGV, Some(&act)) } {
        println!("sigaction: {e:?}");
        return 1;
    }

    // An address that was mapped a moment ago and is certainly not now.
    let page = match mmap_anonymous(PAGE_SIZE) {
        Ok(p) => p as usize,
        Err(e) => {
            println!("mmap: {e:?}");
            return 1;
        }
    };
    // SAFETY: nothing uses the page.
    let _ = unsafe { munmap(page as *mut u8, PAGE_SIZE) };
    println!("read of an unmapped page:");
    expect(page + 123, SEGV_MAPERR, true);
    r.check("  recovered after the handler", read_faults(page + 123));

    println!("write to .rodata:");
    let ro = RODATA.as_ptr() as usize + 5;
    expect(ro, SEGV_ACCERR, true);
    // SAFETY: the write faults (if it did not, RODATA would be corrupt,
    // which the check below reports).
    r.check("  recovered after the handler", unsafe { write_faults(ro) });
    r.check("  .rodata unchanged", &RODATA == b"read-only bytes!");

    println!("jump to a read-write, non-executable page:");
    let data = match mmap_anonymous(PAGE_SIZE) {
        Ok(p) => p as usize,
        Err(e) => {
            println!("mmap: {e:?}");
            return 1;
        }
    };
    // `ud2` there: if NX were not enforced, the process would die of
    // SIGILL (no handler) instead of printing a wrong answer.
    // SAFETY: the page is ours and writable.
    unsafe { (data as *mut u16).write_volatile(0x0b0f) };
    expect(data, SEGV_ACCERR, true);
    // SAFETY: the page is not executable, so the fetch faults.
    r.check("  recovered after the handler", unsafe {
        jump_faults(data)
    });

    println!("read of a kernel address:");
    let kernel = 0xffff_ffff_8000_0000;
    expect(kernel, SEGV_MAPERR, true);
    r.check("  recovered after the handler", read_faults(kernel));

    println!("read of a non-canonical address (general protection fault):");
    let noncanonical = 0x8000_0000_0000_0000;
    expect(noncanonical, SI_KERNEL, false);
    r.check("  recovered after the handler", read_faults(noncanonical));

    r.check(
        "every siginfo as expected",
        !MISMATCH.load(Ordering::SeqCst),
    );
    if r.failures() != 0 {
        return 1;
    }

    println!("write to NULL + 8 with a handler that exits:");
    let plain = SigAction::handler(exit_from_handler, 0);
    // SAFETY: the handler exits the process.
    if let Err(e) = unsafe { sigaction(SIGSEGV, Some(&plain)) } {
        println!("sigaction: {e:?}");
        return 1;
    }
    // SAFETY: deliberately faults; the handler ends the process.
    unsafe { asm!("mov byte ptr [{0}], 1", in(reg) core::hint::black_box(8usize)) };
    println!("still alive after writing to NULL + 8");
    1
}
