//! Running a snippet of test code at CPL 3 and getting back into the kernel: the shared
//! mechanism of the self-tests. The kernel arms the one-shot [`CATCH`], IRETQs to the user
//! entry, and the snippet ends in a fault or a UD2, whose delivery the catcher turns into a
//! return to the instruction after the IRETQ, on the saved kernel stack.

use core::arch::asm;

use crate::arch::x86_64::gdt::{USER_CS, USER_DS};
use crate::arch::x86_64::trap::CATCH;

/// Enter user mode at `entry` with RFLAGS `rflags`, stack pointer `rsp`, RDI = `arg0` and
/// RSI = `arg1`; return once the catcher has caught the snippet's exception.
pub fn run_user(entry: u64, rsp: u64, rflags: u64, arg0: u64, arg1: u64) {
    // SAFETY: IRETQ to CPL 3 code the caller has mapped; the snippet faults (or ends in
    // UD2), and the catcher resumes at label 4 in kernel mode on the saved stack. rbx and
    // rbp are saved by hand, everything else is declared clobbered.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "lea rax, [rip + 4f]",
            "mov [rip + {c} + 8], rax",
            "mov [rip + {c} + 16], rsp",
            "mov qword ptr [rip + {c}], 1",
            "push {uds}",
            "push r8",
            "push r9",
            "push {ucs}",
            "push r10",
            "iretq",
            "4:",
            "pop rbp",
            "pop rbx",
            c = sym CATCH,
            uds = const USER_DS as u64,
            ucs = const USER_CS as u64,
            inout("r8") rsp => _,
            inout("r9") rflags => _,
            inout("r10") entry => _,
            inout("rdi") arg0 => _,
            inout("rsi") arg1 => _,
            out("rax") _, out("rcx") _, out("rdx") _,
            out("r11") _, out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        )
    }
}
