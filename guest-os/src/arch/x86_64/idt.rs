//! The interrupt descriptor table and the low-level trap entry.
//!
//! Every vector has a 16-byte stub in `trap_stubs` that makes the stack uniform (it pushes
//! a zero error code for the vectors where the CPU pushes none), pushes the vector number
//! and jumps to `trap_common`, which saves the general registers into a [`TrapFrame`] and
//! calls [`super::trap::dispatch`]. Returning restores the (possibly modified) frame with
//! IRETQ, so a handler can redirect execution by editing `frame.rip`/`cs`/`rsp`/`ss`.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::mem::size_of;

use super::gdt::{IST_DEBUG, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CS};

/// Exception vectors (Intel SDM Vol. 3A, Table 6-1).
pub mod vector {
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const MF: u8 = 16;
    pub const AC: u8 = 17;
    pub const MC: u8 = 18;
    pub const XM: u8 = 19;
}

/// Register state at a trap, in the order `trap_common` pushes it (lowest address first).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    // Pushed by the CPU (64-bit mode always pushes SS:RSP).
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Gate type: interrupt gate (IF cleared on entry) with P=1, DPL 0.
const GATE_INTERRUPT: u64 = 0x8e;
/// DPL-3 interrupt gate: INT n from user mode is allowed (breakpoint, overflow).
const GATE_INTERRUPT_USER: u64 = 0xee;
/// Bytes per stub in `trap_stubs`.
const STUB_SIZE: u64 = 16;

struct Idt(UnsafeCell<[[u64; 2]; 256]>);
// SAFETY: written only by `init`/`set_gate` on the single CPU with interrupts disabled.
unsafe impl Sync for Idt {}
static IDT: Idt = Idt(UnsafeCell::new([[0; 2]; 256]));

extern "C" {
    static trap_stubs: u8;
}

fn encode_gate(handler: u64, attr: u64, ist: u8) -> [u64; 2] {
    let lo = (handler & 0xffff)
        | ((KERNEL_CS as u64) << 16)
        | ((ist as u64 & 7) << 32)
        | (attr << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [lo, handler >> 32]
}

fn stub_address(vec: u8) -> u64 {
    // SAFETY: only the address of the extern symbol is taken.
    unsafe { &trap_stubs as *const u8 as u64 + vec as u64 * STUB_SIZE }
}

/// Fill the IDT (every vector → its stub) and load it.
pub fn init() {
    for v in 0..=255u8 {
        let (attr, ist) = match v {
            vector::BP | vector::OF => (GATE_INTERRUPT_USER, 0),
            vector::DF => (GATE_INTERRUPT, IST_DOUBLE_FAULT),
            vector::NMI => (GATE_INTERRUPT, IST_NMI),
            vector::MC => (GATE_INTERRUPT, IST_MACHINE_CHECK),
            vector::DB => (GATE_INTERRUPT, IST_DEBUG),
            _ => (GATE_INTERRUPT, 0),
        };
        set_gate(v, attr, ist);
    }
    #[repr(C, packed)]
    struct Ptr {
        limit: u16,
        base: u64,
    }
    let ptr = Ptr {
        limit: (size_of::<[[u64; 2]; 256]>() - 1) as u16,
        base: IDT.0.get() as u64,
    };
    // SAFETY: the IDT is static and fully initialised; every gate points at a stub.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) };
}

fn set_gate(v: u8, attr: u64, ist: u8) {
    // SAFETY: single CPU, interrupts disabled while the IDT is edited.
    unsafe { (*IDT.0.get())[v as usize] = encode_gate(stub_address(v), attr, ist) };
}

/// Mark a gate present or not present (self-tests use this to provoke #NP and #DF).
pub fn set_present(v: u8, present: bool) {
    // SAFETY: as in `set_gate`.
    unsafe {
        let g = &mut (*IDT.0.get())[v as usize][0];
        if present {
            *g |= 1 << 47;
        } else {
            *g &= !(1 << 47);
        }
    }
}

/// Change the DPL of a gate (0 or 3).
pub fn set_dpl(v: u8, dpl: u8) {
    // SAFETY: as in `set_gate`.
    unsafe {
        let g = &mut (*IDT.0.get())[v as usize][0];
        *g = (*g & !(3 << 45)) | ((dpl as u64 & 3) << 45);
    }
}

// The stubs. Vectors 8, 10-14, 17, 21, 29 and 30 get an error code from the CPU.
global_asm!(
    r#"
    .section .text.trap_entry, "ax", @progbits
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp trap_common
    .set vec, vec + 1
    .endr

    .balign 16
trap_common:
    /* From user mode, switch GS to the kernel's per-CPU area as the SYSCALL entry does, so
       that in the kernel GS is always the kernel's (Linux's error_entry). CS is at 24: the
       vector and error code were pushed above the CPU's frame. */
    testb $3, 24(%rsp)
    jz 1f
    swapgs
1:
    /* No user access allowed in the handler, whatever AC the interrupted code had (a user
       program may set it; __copy_user runs with it set). IRETQ restores it. */
    testb $1, SMAP_ON(%rip)
    jz 3f
    clac
3:
    /* The SYSCALL entry joins here with its frame built and GS already swapped. */
    .global trap_save_regs
trap_save_regs:
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %r11
    pushq %r10
    pushq %r9
    pushq %r8
    pushq %rbp
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rbx
    pushq %rax
    movq %rsp, %rdi
    cld
    call {dispatch}
    /* Return to the frame on the stack; ret_from_fork starts a new task here too. */
    .global trap_return
trap_return:
    popq %rax
    popq %rbx
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rbp
    popq %r8
    popq %r9
    popq %r10
    popq %r11
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    addq $16, %rsp
    testb $3, 8(%rsp)
    jz 2f
    swapgs
2:
    iretq
    .text
"#,
    dispatch = sym super::trap::dispatch,
    options(att_syntax)
);
