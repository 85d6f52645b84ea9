//! Memory probes that survive faults: [`read_u8`] and [`write_u8`] access
//! one byte and report a SIGSEGV/SIGBUS as `Err(Fault)` instead of dying.
//!
//! This is the user-space version of the kernel's exception tables: the
//! probing instruction sits at a known address (`__vmrt_probe_*_insn`).
//! [`install`] registers a `SA_SIGINFO` handler for SIGSEGV and SIGBUS;
//! when the interrupted `rip` is one of the probe instructions, the handler
//! records the signal's `siginfo` and changes the saved `rip` to a fixup
//! label, which makes the probe return "faulted". `rt_sigreturn` then
//! resumes there with the signal mask restored, so probing can go on.
//!
//! A fault anywhere else is a real bug: the handler restores the default
//! action and returns, so the faulting instruction runs again and the
//! process dies of the signal as if no handler had been installed.
//!
//! This exercises the kernel's whole signal path: page-fault → `siginfo`
//! (`si_signo`, `si_code`, `si_addr`), the signal frame and `ucontext`
//! layout, the `SA_RESTORER` trampoline and `rt_sigreturn` honouring a
//! modified context.

use core::ffi::c_void;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crate::sys::signal::{sigaction, SigAction, SigInfo, UContext, REG_RIP, SIGBUS, SIGSEGV};
use crate::sys::SysResult;

/// What a probe's fault reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `si_signo` (SIGSEGV or SIGBUS).
    pub signo: i32,
    /// `si_code` (e.g. `SEGV_MAPERR`, `SEGV_ACCERR`, `SI_KERNEL`).
    pub code: i32,
    /// `si_addr`.
    pub addr: usize,
}

/// Prints `SIGSEGV/SEGV_MAPERR` (the address is left out: it is rarely
/// deterministic).
impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use crate::sys::signal::{code_name, name};
        match name(self.signo) {
            Some(n) => f.write_str(n)?,
            None => write!(f, "signal {}", self.signo)?,
        }
        match code_name(self.signo, self.code) {
            Some(c) => write!(f, "/{c}"),
            None => write!(f, "/code {}", self.code),
        }
    }
}

// The probes. Each returns rax = value read (or 0) and rdx = 0 on success;
// on a fault the handler resumes at the fixup, which sets rdx = 1. They use
// no stack, so `ret` works from the fixup label too.
core::arch::global_asm!(
    ".pushsection .text.__vmrt_probe,\"ax\",@progbits",
    ".globl __vmrt_probe_read",
    ".globl __vmrt_probe_read_insn",
    ".globl __vmrt_probe_write",
    ".globl __vmrt_probe_write_insn",
    ".globl __vmrt_probe_fixup",
    "__vmrt_probe_read:",
    "    xor edx, edx",
    "__vmrt_probe_read_insn:",
    "    movzx eax, byte ptr [rdi]",
    "    ret",
    "__vmrt_probe_write:",
    "    xor edx, edx",
    "    xor eax, eax",
    "__vmrt_probe_write_insn:",
    "    mov byte ptr [rdi], sil",
    "    ret",
    "__vmrt_probe_fixup:",
    "    xor eax, eax",
    "    mov edx, 1",
    "    ret",
    ".popsection",
);

/// Two-register return value (`rax`, `rdx`) of the probes.
#[repr(C)]
struct ProbeResult {
    value: u64,
    faulted: u64,
}

extern "C" {
    fn __vmrt_probe_read(addr: *const u8) -> ProbeResult;
    fn __vmrt_probe_write(addr: *mut u8, value: u8) -> ProbeResult;
    fn __vmrt_probe_read_insn();
    fn __vmrt_probe_write_insn();
    fn __vmrt_probe_fixup();
}

static LAST_SIGNO: AtomicI32 = AtomicI32::new(0);
static LAST_CODE: AtomicI32 = AtomicI32::new(0);
static LAST_ADDR: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_fault(sig: i32, info: *mut SigInfo, ctx: *mut c_void) {
    // SAFETY: the kernel passes valid siginfo and ucontext pointers to a
    // SA_SIGINFO handler.
    let (info, uc) = unsafe { (&*info, &mut *(ctx as *mut UContext)) };
    let rip = uc.uc_mcontext.gregs[REG_RIP] as usize;
    let probe = rip == __vmrt_probe_read_insn as *const () as usize
        || rip == __vmrt_probe_write_insn as *const () as usize;
    if probe {
        LAST_SIGNO.store(info.si_signo, Ordering::SeqCst);
        LAST_CODE.store(info.si_code, Ordering::SeqCst);
        LAST_ADDR.store(info.addr(), Ordering::SeqCst);
        uc.uc_mcontext.gregs[REG_RIP] = __vmrt_probe_fixup as *const () as u64;
    } else {
        // Not ours: die of this signal when the instruction faults again.
        // SAFETY: restoring the default action touches no memory of ours.
        let _ = unsafe { sigaction(sig, Some(&SigAction::default_action())) };
    }
}

/// Installs the probe handler for SIGSEGV and SIGBUS (replacing any other
/// handler). Must be called before [`read_u8`] / [`write_u8`].
pub fn install() -> SysResult<()> {
    let act = SigAction::siginfo(on_fault, 0);
    // SAFETY: the handler only uses atomics and rt_sigaction.
    unsafe {
        sigaction(SIGSEGV, Some(&act))?;
        sigaction(SIGBUS, Some(&act))?;
    }
    Ok(())
}

fn last_fault() -> Fault {
    Fault {
        signo: LAST_SIGNO.load(Ordering::SeqCst),
        code: LAST_CODE.load(Ordering::SeqCst),
        addr: LAST_ADDR.load(Ordering::SeqCst),
    }
}

/// Reads the byte at address `addr`, or reports the fault it caused. Any
/// address may be probed (that is the point: the read happens in assembly,
/// outside Rust's memory model); [`install`] must have been called, or a
/// fault kills the process.
pub fn read_u8(addr: usize) -> Result<u8, Fault> {
    // SAFETY: the probe is a leaf function; a fault is turned into a return.
    let r = unsafe { __vmrt_probe_read(addr as *const u8) };
    if r.faulted == 0 {
        Ok(r.value as u8)
    } else {
        Err(last_fault())
    }
}

/// Writes `value` at `addr`, or reports the fault it caused. See [`read_u8`].
///
/// # Safety
/// A successful write changes memory, which must not break what Rust code
/// assumes about it.
pub unsafe fn write_u8(addr: *mut u8, value: u8) -> Result<(), Fault> {
    let r = __vmrt_probe_write(addr, value);
    if r.faulted == 0 {
        Ok(())
    } else {
        Err(last_fault())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::mm::{mmap_anonymous, mprotect, munmap, PAGE_SIZE, PROT_READ};
    use crate::sys::signal::{SEGV_ACCERR, SEGV_MAPERR, SI_KERNEL};

    /// All probing in one test: the handler is process-wide and the test
    /// harness runs tests on several threads.
    #[test]
    fn probes_report_faults_and_continue() {
        let old_segv = unsafe { sigaction(SIGSEGV, None) }.expect("query");
        let old_bus = unsafe { sigaction(SIGBUS, None) }.expect("query");
        install().expect("install");

        let p = mmap_anonymous(2 * PAGE_SIZE).expect("mmap");
        unsafe {
            assert_eq!(write_u8(p.add(5), 7), Ok(()));
            assert_eq!(read_u8(p as usize + 5), Ok(7));
            mprotect(p, PAGE_SIZE, PROT_READ).expect("mprotect");
            assert_eq!(read_u8(p as usize + 5), Ok(7));
            let f = write_u8(p.add(9), 1).unwrap_err();
            assert_eq!(
                (f.signo, f.code, f.addr),
                (SIGSEGV, SEGV_ACCERR, p as usize + 9)
            );
            munmap(p.add(PAGE_SIZE), PAGE_SIZE).expect("munmap");
            let f = read_u8(p as usize + PAGE_SIZE + 3).unwrap_err();
            assert_eq!(
                (f.signo, f.code, f.addr),
                (SIGSEGV, SEGV_MAPERR, p as usize + PAGE_SIZE + 3)
            );
            // A non-canonical address raises #GP, not #PF: SI_KERNEL, address 0.
            let f = read_u8(0x8000_0000_0000_0000).unwrap_err();
            assert_eq!((f.signo, f.code, f.addr), (SIGSEGV, SI_KERNEL, 0));
            munmap(p, PAGE_SIZE).expect("munmap");
            sigaction(SIGSEGV, Some(&old_segv)).expect("restore");
            sigaction(SIGBUS, Some(&old_bus)).expect("restore");
        }
    }
}
