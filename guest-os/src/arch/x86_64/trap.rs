//! Trap dispatch: what happens after `trap_common` has saved a [`TrapFrame`].
//!
//! Vectors that a driver claimed (external interrupts, IPIs, the NMI; see [`super::irq`])
//! go to their handler. Nothing in the kernel expects exceptions yet, except self-tests,
//! which arm a one-shot [`Catch`]: the next exception is recorded and execution resumes at
//! a chosen kernel address and stack (the way Linux's exception-table fixups resume after
//! a faulting instruction). Any other vector is a kernel bug and panics with the full
//! frame.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use super::gdt::{KERNEL_CS, KERNEL_DS};
use super::idt::{vector, TrapFrame};

/// RFLAGS bit 1 is reserved and always set.
const RFLAGS_FIXED: u64 = 1 << 1;

/// A one-shot exception catcher, written by self-test assembly (hence `repr(C)` and the
/// fixed field offsets in [`catch_offset`]).
#[repr(C)]
pub struct Catch {
    /// Non-zero while armed.
    pub armed: AtomicU64,
    /// Where to resume, on which stack (always kernel mode).
    pub resume_rip: AtomicU64,
    pub resume_rsp: AtomicU64,
    /// Labels around the instruction under test (for fault/trap classification).
    pub insn_start: AtomicU64,
    pub insn_end: AtomicU64,
    // What was caught.
    pub vector: AtomicU64,
    pub error_code: AtomicU64,
    pub rip: AtomicU64,
    pub cs: AtomicU64,
    pub cr2: AtomicU64,
    pub rsp: AtomicU64,
    /// Number of exceptions caught since arming (> 1 would be a bug in a test).
    pub count: AtomicU64,
    /// Address of the saved frame: which stack the handler ran on.
    pub frame: AtomicU64,
}

/// Byte offsets of [`Catch`] fields, for assembly.
pub mod catch_offset {
    pub const ARMED: usize = 0;
    pub const RESUME_RIP: usize = 8;
    pub const RESUME_RSP: usize = 16;
    pub const INSN_START: usize = 24;
    pub const INSN_END: usize = 32;
}

pub static CATCH: Catch = Catch {
    armed: AtomicU64::new(0),
    resume_rip: AtomicU64::new(0),
    resume_rsp: AtomicU64::new(0),
    insn_start: AtomicU64::new(0),
    insn_end: AtomicU64::new(0),
    vector: AtomicU64::new(u64::MAX),
    error_code: AtomicU64::new(0),
    rip: AtomicU64::new(0),
    cs: AtomicU64::new(0),
    cr2: AtomicU64::new(0),
    rsp: AtomicU64::new(0),
    count: AtomicU64::new(0),
    frame: AtomicU64::new(0),
};

/// CR2: the linear address of the last page fault.
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The SDM mnemonic of an exception vector.
pub fn vector_name(v: u64) -> &'static str {
    const NAMES: [&str; 22] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF(9)", "#TS", "#NP",
        "#SS", "#GP", "#PF", "(15)", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];
    NAMES.get(v as usize).copied().unwrap_or("INT")
}

/// Called by `trap_common` with the saved frame; returning resumes from the frame.
pub extern "C" fn dispatch(frame: &mut TrapFrame) {
    if frame.vector == super::syscall::SYSCALL_VECTOR {
        crate::syscall::dispatch(frame);
        return;
    }
    if let Some(handler) = super::irq::handler(frame.vector) {
        handler(frame);
        // Back to user mode: pending signals first (`exit_to_user_mode`), so a signal
        // reaches a process that makes no system call (a timer's SIGALRM, a kill).
        if frame.cs & 3 == 3 && crate::proc::current().is_some() {
            crate::proc::signal::do_signal(frame, None);
            crate::proc::signal::check_user_return(frame);
        }
        return;
    }
    let cr2 = if frame.vector == vector::PF as u64 {
        read_cr2()
    } else {
        0
    };
    if crate::proc::current().is_some() && process_trap(frame, cr2) {
        // A handler address from sigaction may be non-canonical: no IRETQ to it.
        crate::proc::signal::check_user_return(frame);
        return;
    }
    if CATCH.armed.swap(0, Ordering::SeqCst) != 0 {
        CATCH.vector.store(frame.vector, Ordering::SeqCst);
        CATCH.error_code.store(frame.error_code, Ordering::SeqCst);
        CATCH.rip.store(frame.rip, Ordering::SeqCst);
        CATCH.cs.store(frame.cs, Ordering::SeqCst);
        CATCH.cr2.store(cr2, Ordering::SeqCst);
        CATCH.rsp.store(frame.rsp, Ordering::SeqCst);
        CATCH
            .frame
            .store(frame as *mut TrapFrame as u64, Ordering::SeqCst);
        CATCH.count.fetch_add(1, Ordering::SeqCst);
        frame.rip = CATCH.resume_rip.load(Ordering::SeqCst);
        frame.rsp = CATCH.resume_rsp.load(Ordering::SeqCst);
        frame.cs = KERNEL_CS as u64;
        frame.ss = KERNEL_DS as u64;
        // Back to the kernel's state: interrupts off, no TF/AC left over from the test.
        frame.rflags = RFLAGS_FIXED;
        return;
    }
    if frame.vector == vector::DF as u64 && crate::mm::pgtable::is_stack_guard(read_cr2()) {
        panic!(
            "kernel stack overflow: #PF on the guard page at {:#x}, then #DF (rip {:#x}, rsp {:#x})",
            read_cr2(),
            frame.rip,
            frame.rsp
        );
    }
    panic!(
        "unhandled exception {} (vector {}) error {:#x} at {:#x}:{:#x} rflags {:#x} rsp {:#x} cr2 {:#x}",
        vector_name(frame.vector),
        frame.vector,
        frame.error_code,
        frame.cs,
        frame.rip,
        frame.rflags,
        frame.rsp,
        cr2
    );
}

/// The signal an exception in user mode raises (`do_trap`/`do_error_trap` in Linux's
/// traps.c): signal, `si_code`, `si_addr`.
fn signal_for(frame: &TrapFrame, cr2: u64) -> crate::proc::signal::SigInfo {
    use crate::proc::signal::*;
    let (signo, code, addr) = match frame.vector as u8 {
        vector::DE => (SIGFPE, FPE_INTDIV, frame.rip),
        // x87 and SIMD floating-point errors (`math_error`): the code names the first
        // unmasked exception the status word or MXCSR shows.
        vector::MF => (
            SIGFPE,
            crate::arch::x86_64::fpu::exception_code(false),
            frame.rip,
        ),
        vector::XM => (
            SIGFPE,
            crate::arch::x86_64::fpu::exception_code(true),
            frame.rip,
        ),
        vector::DB | vector::BP => (SIGTRAP, TRAP_BRKPT, frame.rip),
        vector::UD => (SIGILL, ILL_ILLOPN, frame.rip),
        vector::AC => (SIGBUS, BUS_ADRALN, cr2),
        // #GP and the rest: SIGSEGV with SI_KERNEL and no address, as Linux.
        _ => (SIGSEGV, SI_KERNEL, 0),
    };
    SigInfo {
        signo,
        code,
        addr,
        pid: 0,
        status: 0,
    }
}

/// The trace outcome of a page fault that raises SIGSEGV with `si_code`.
fn segv_outcome(si_code: i32) -> u64 {
    if si_code == crate::mm::mm_struct::SEGV_ACCERR {
        crate::trace::outcome::SEGV_ACCERR
    } else {
        crate::trace::outcome::SEGV_MAPERR
    }
}

/// Tries of one fault that had to drop the mm lock (to read a page from swap, or to
/// reclaim memory) before the fault is left to its error path: a bound on the work one
/// access can cause (Linux retries a fault once after I/O and reclaims up to
/// `MAX_RECLAIM_RETRIES` times without progress before the OOM killer).
const MAX_FAULT_RETRIES: u32 = 64;

/// Pages one fault reclaims at most for a group over its memory.high
/// (`MEMCG_CHARGE_BATCH`-sized steps in Linux).
const MAX_HIGH_RECLAIM: u64 = 64;

/// `handle_mm_fault` with the retries that need the address space unlocked: a page in swap
/// is read in (with readahead) with no lock held, then the fault runs again and finds it in
/// the swap cache (a major fault); a fault that found no memory reclaims directly, then
/// runs again. What is left (OOM, SIGSEGV, SIGBUS) is the caller's.
fn resolve_user_fault(
    t: &'static crate::proc::Task,
    cr2: u64,
    write: bool,
    exec: bool,
) -> Option<Result<crate::mm::mm_struct::Fault, crate::mm::mm_struct::FaultError>> {
    use crate::mm::mm_struct::{FaultError, FaultKind};
    let mut major = false;
    // The page read for this fault, held until the retry has mapped it.
    let mut held: Option<crate::mm::addr::Pfn> = None;
    let mut tries = 0;
    let mut charge_failures = 0;
    let r = loop {
        let r = t
            .mm()
            .lock()
            .as_mut()
            .map(|mm| mm.handle_fault(cr2, write, exec, false));
        if let Some(p) = held.take() {
            crate::mm::page_alloc::free_pages(p, 0);
        }
        tries += 1;
        match r {
            Some(Err(FaultError::SwapIo(entry))) if tries < MAX_FAULT_RETRIES => {
                // Waiting for a page back from swap is a memory stall (thrashing).
                let stall = crate::mm::psi::memstall_enter();
                let got = crate::mm::swap_state::swapin_readahead(entry);
                crate::mm::psi::memstall_leave(stall);
                match got {
                    Ok(Some((pfn, read))) => {
                        major |= read;
                        held = Some(pfn);
                    }
                    // The entry went away meanwhile: look again.
                    Ok(None) => {}
                    Err(crate::syscall::errno::ENOMEM) => {
                        if crate::mm::vmscan::try_to_free_pages(mm_core::gfp::Gfp::HIGHUSER_MOVABLE)
                            == 0
                        {
                            break Some(Err(FaultError::Oom));
                        }
                    }
                    Err(_) => break Some(Err(FaultError::Sigbus)),
                }
            }
            Some(Err(FaultError::SwapIo(_))) => break Some(Err(FaultError::Oom)),
            // A file page to read first (`filemap_fault` with the lock dropped).
            Some(Err(FaultError::PageIo(id, index))) if tries < MAX_FAULT_RETRIES => {
                let size = crate::mm::shmem::size(id);
                match crate::mm::filemap::get_page(id, index, size) {
                    Ok((pfn, read)) => {
                        major |= read;
                        held = Some(pfn);
                    }
                    Err(crate::syscall::errno::ENOMEM) => {
                        if crate::mm::vmscan::try_to_free_pages(mm_core::gfp::Gfp::HIGHUSER_MOVABLE)
                            == 0
                        {
                            break Some(Err(FaultError::Oom));
                        }
                    }
                    Err(_) => break Some(Err(FaultError::Sigbus)),
                }
            }
            Some(Err(FaultError::PageIo(..))) => break Some(Err(FaultError::Oom)),
            Some(Err(FaultError::Oom)) if tries < MAX_FAULT_RETRIES => {
                if crate::mm::vmscan::try_to_free_pages(mm_core::gfp::Gfp::HIGHUSER_MOVABLE) == 0 {
                    break r;
                }
            }
            // The task's memory cgroup is at its limit: reclaim inside it
            // (`try_charge`'s `try_to_free_mem_cgroup_pages`), a bounded number of times
            // without progress.
            Some(Err(FaultError::Charge(g)))
                if charge_failures < crate::mm::vmscan::MAX_RECLAIM_RETRIES =>
            {
                if crate::mm::vmscan::memcg_reclaim(g, mm_core::lru::SWAP_CLUSTER_MAX) == 0 {
                    charge_failures += 1;
                }
                tries = tries.saturating_sub(1);
            }
            _ => break r,
        }
    };
    if matches!(r, Some(Ok(_))) {
        // Over memory.high: reclaim the excess in that group before going on
        // (`mem_cgroup_handle_over_high`, which Linux runs on the way back to user mode).
        let memcg = crate::mm::memcontrol::current_memcg();
        if let Some((g, excess)) = crate::mm::memcontrol::over_high_group(memcg) {
            crate::mm::memcontrol::count_event(g, crate::mm::memcontrol::MemcgEvent::High);
            crate::mm::vmscan::memcg_reclaim(g, excess.min(MAX_HIGH_RECLAIM));
        }
    }
    match r {
        Some(Ok(mut f)) if major && f.kind == FaultKind::SwapCached => {
            f.kind = FaultKind::SwapIn;
            Some(Ok(f))
        }
        Some(Ok(mut f)) if major && f.kind == FaultKind::File => {
            f.kind = FaultKind::FileMajor;
            Some(Ok(f))
        }
        r => r,
    }
}

/// Exceptions that concern the running process: page faults on user addresses (from user
/// mode, or from the kernel's user-access code) and any exception in user mode. Returns
/// whether the trap was handled (the frame then resumes, possibly in a signal handler).
fn process_trap(frame: &mut TrapFrame, cr2: u64) -> bool {
    use crate::proc::signal::{force_sig, SigInfo, SIGSEGV};
    use crate::trace::{self, outcome};
    let user_mode = frame.cs & 3 == 3;
    if frame.vector == vector::PF as u64 && cr2 < crate::mm::uaccess::TASK_SIZE {
        let write = frame.error_code & 2 != 0;
        let exec = frame.error_code & 16 != 0;
        let Some(t) = crate::proc::current() else {
            return false;
        };
        let r = resolve_user_fault(t, cr2, write, exec);
        match r {
            Some(Ok(f)) => {
                let grew = if f.stack_grew { outcome::STACK_GREW } else { 0 };
                trace::fault(
                    cr2,
                    frame.error_code,
                    frame.rip,
                    f.kind.trace_outcome() | grew,
                );
                t.count_fault(f.kind.is_major());
                if f.kind.is_major() {
                    crate::mm::filemap::PGMAJFAULT
                        .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                }
                return true;
            }
            Some(Err(
                e @ (crate::mm::mm_struct::FaultError::Oom
                | crate::mm::mm_struct::FaultError::Charge(_)),
            )) => {
                // VM_FAULT_OOM after reclaim (no mm lock is held here): the OOM killer
                // picks a victim, machine-wide or, over a memory cgroup's limit, inside
                // that group (`mem_cgroup_out_of_memory`).
                let victim = match e {
                    crate::mm::mm_struct::FaultError::Charge(memcg) => {
                        crate::mm::oom_kill::mem_cgroup_out_of_memory(t, memcg)
                    }
                    _ => crate::mm::oom_kill::out_of_memory(t),
                };
                if !core::ptr::eq(victim, t) {
                    // Another task is to die and free memory: let it run, then retry the
                    // access.
                    crate::proc::sched::schedule();
                    return true;
                }
                if user_mode {
                    force_sig(
                        frame,
                        SigInfo {
                            signo: crate::proc::signal::SIGKILL,
                            code: crate::proc::signal::SI_KERNEL,
                            addr: 0,
                            pid: 0,
                            status: 0,
                        },
                    );
                    return true;
                }
                // A uaccess fault of the victim itself: -EFAULT through the fixup below;
                // the SIGKILL is delivered on the way out of the system call.
            }
            Some(Err(crate::mm::mm_struct::FaultError::Sigbus)) if user_mode => {
                trace::fault(cr2, frame.error_code, frame.rip, outcome::SIGBUS);
                force_sig(
                    frame,
                    SigInfo {
                        signo: crate::proc::signal::SIGBUS,
                        code: crate::proc::signal::BUS_ADRERR,
                        addr: cr2,
                        pid: 0,
                        status: 0,
                    },
                );
                return true;
            }
            Some(Err(crate::mm::mm_struct::FaultError::Segv(si_code))) if user_mode => {
                trace::fault(cr2, frame.error_code, frame.rip, segv_outcome(si_code));
                force_sig(
                    frame,
                    SigInfo {
                        signo: SIGSEGV,
                        code: si_code,
                        addr: cr2,
                        pid: 0,
                        status: 0,
                    },
                );
                return true;
            }
            _ => {}
        }
    }
    if !user_mode && frame.vector == vector::PF as u64 {
        if let Some(fixup) = crate::mm::uaccess::search_exception_table(frame.rip) {
            trace::fault(cr2, frame.error_code, frame.rip, outcome::FIXUP_EFAULT);
            frame.rip = fixup;
            return true;
        }
        return false;
    }
    if user_mode && frame.vector < 32 {
        if frame.vector == vector::PF as u64 {
            // A user fault on a kernel or non-canonical address: no VMA can cover it.
            trace::fault(cr2, frame.error_code, frame.rip, outcome::SEGV_MAPERR);
            let info = SigInfo {
                signo: SIGSEGV,
                code: crate::mm::mm_struct::SEGV_MAPERR,
                addr: cr2,
                pid: 0,
                status: 0,
            };
            force_sig(frame, info);
        } else {
            let info = signal_for(frame, cr2);
            force_sig(frame, info);
        }
        return true;
    }
    false
}
