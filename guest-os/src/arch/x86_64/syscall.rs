//! The SYSCALL entry (Linux's `entry_SYSCALL_64`) and the per-CPU area reached through GS.
//!
//! SYSCALL leaves the user RSP in place, RIP in RCX and RFLAGS in R11, and masks RFLAGS with
//! IA32_FMASK (interrupts, TF, DF, AC off). The entry swaps GS to the per-CPU area, stashes
//! the user RSP there, switches to the current task's kernel stack and builds the same
//! [`TrapFrame`](super::idt::TrapFrame) an exception builds (vector [`SYSCALL_VECTOR`]), so signal delivery, fork
//! and exec handle both alike; it then continues in the exception entry's register save and
//! return path (`trap_save_regs`, `trap_return` in idt.rs). The syscall number is in RAX,
//! the arguments in RDI, RSI, RDX, R10, R8, R9 (the Linux x86-64 ABI); the result goes back
//! in RAX. The return path is IRETQ, which restores every register from the frame (so RCX/R11 come back holding the
//! user RIP/RFLAGS, as after SYSRET); Linux returns with SYSRET when the frame allows it,
//! which is faster but not needed for correctness.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;

use super::gdt::{KERNEL_CS, KERNEL_DS, USER_CS, USER_DS};

/// The `vector` field of a syscall frame (not an IDT vector).
pub const SYSCALL_VECTOR: u64 = 0x1_0000;

const MSR_EFER: u32 = 0xc000_0080;
const EFER_SCE: u64 = 1 << 0;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_FMASK: u32 = 0xc000_0084;
/// The GS base SWAPGS swaps in.
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// The FS base (user TLS, `arch_prctl(ARCH_SET_FS)`).
pub const MSR_FS_BASE: u32 = 0xc000_0100;

/// RFLAGS bits cleared on SYSCALL: TF, IF, DF, IOPL, NT, AC (Linux's mask).
const FMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (3 << 12) | (1 << 14) | (1 << 18);

/// The per-CPU area (one CPU). Field offsets are used by the entry code.
#[repr(C)]
pub struct PerCpu {
    /// Scratch slot for the user RSP during entry.
    user_rsp: u64,
    /// Top of the current task's kernel stack.
    kernel_rsp: u64,
    /// Bytes copied to or from user memory since the system call began, or since the last
    /// preemption point ([`uaccess_work`]); zeroed by the entry code.
    uaccess_bytes: u64,
}

struct PerCpuCell(UnsafeCell<PerCpu>);
// SAFETY: one CPU; written only with interrupts off (entry code and context switch).
unsafe impl Sync for PerCpuCell {}

static PER_CPU: PerCpuCell = PerCpuCell(UnsafeCell::new(PerCpu {
    user_rsp: 0,
    kernel_rsp: 0,
    uaccess_bytes: 0,
}));

/// Bytes a system call may copy between preemption points: short calls never meet one,
/// long ones (a big pipe or console write, exec's arguments, getdents of a big directory)
/// reach one at least this often (README, "Bounded system calls").
pub const RESCHED_BYTES: u64 = 64 << 10;

/// Account `bytes` of user copying to the running system call; true when it has done
/// [`RESCHED_BYTES`] since the last preemption point (the count starts again).
pub fn uaccess_work(bytes: u64) -> bool {
    // SAFETY: single CPU, interrupts off: nothing else touches the per-CPU area now.
    let pc = unsafe { &mut *PER_CPU.0.get() };
    pc.uaccess_bytes = pc.uaccess_bytes.saturating_add(bytes);
    if pc.uaccess_bytes >= RESCHED_BYTES {
        pc.uaccess_bytes = 0;
        true
    } else {
        false
    }
}

/// Set the kernel stack used by the next SYSCALL (the current task's).
pub fn set_kernel_stack(top: u64) {
    // SAFETY: single CPU, interrupts off while the kernel runs.
    unsafe { (*PER_CPU.0.get()).kernel_rsp = top };
}

/// # Safety
/// `msr` must exist and `value` be valid for it.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
}

/// # Safety
/// `msr` must exist.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack, preserves_flags));
    (hi as u64) << 32 | lo as u64
}

/// Enable SYSCALL/SYSRET and point LSTAR at the entry.
pub fn init(kernel_stack_top: u64) {
    set_kernel_stack(kernel_stack_top);
    // SAFETY: architectural MSRs; the selectors match the GDT layout SYSCALL expects.
    unsafe {
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
        wrmsr(
            MSR_STAR,
            (KERNEL_DS as u64) << 48 | (KERNEL_CS as u64) << 32,
        );
        wrmsr(MSR_LSTAR, syscall_entry as *const () as u64);
        wrmsr(MSR_FMASK, FMASK);
        wrmsr(MSR_KERNEL_GS_BASE, PER_CPU.0.get() as u64);
    }
}

extern "C" {
    fn syscall_entry();
}

global_asm!(
    r#"
    .section .text.syscall_entry, "ax", @progbits
    .balign 16
    .global syscall_entry
syscall_entry:
    swapgs
    movq %rsp, %gs:0
    movq %gs:8, %rsp
    movq $0, %gs:16
    pushq ${user_ds}
    pushq %gs:0
    pushq %r11
    pushq ${user_cs}
    pushq %rcx
    pushq $0
    pushq ${vector}
    /* The rest as for an exception: save the registers, dispatch (trap::dispatch sends
       SYSCALL_VECTOR here), return through trap_return, which swaps GS back for user CS. */
    jmp trap_save_regs
    .text
"#,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    vector = const SYSCALL_VECTOR,
    options(att_syntax)
);

/// Enter user mode for the first time: IRETQ to `rip` with stack `rsp`, interrupts on.
///
/// # Safety
/// The current page tables must map `rip` and `rsp` for user mode.
pub unsafe fn enter_user(rip: u64, rsp: u64) -> ! {
    const RFLAGS_IF: u64 = 1 << 9;
    const RFLAGS_FIXED: u64 = 1 << 1;
    asm!(
        "push {ss}",
        "push {rsp}",
        "push {rflags}",
        "push {cs}",
        "push {rip}",
        "xor eax, eax",
        "xor ebx, ebx",
        "xor ecx, ecx",
        "xor edx, edx",
        "xor esi, esi",
        "xor edi, edi",
        "xor ebp, ebp",
        "xor r8d, r8d",
        "xor r9d, r9d",
        "xor r10d, r10d",
        "xor r11d, r11d",
        "xor r12d, r12d",
        "xor r13d, r13d",
        "xor r14d, r14d",
        "xor r15d, r15d",
        "iretq",
        ss = in(reg) USER_DS as u64,
        rsp = in(reg) rsp,
        rflags = in(reg) RFLAGS_IF | RFLAGS_FIXED,
        cs = in(reg) USER_CS as u64,
        rip = in(reg) rip,
        options(noreturn)
    );
}
