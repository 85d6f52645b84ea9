//! Running a snippet of test code at CPL 3 and getting back into the kernel: the shared
//! mechanism of the self-tests. The kernel arms the one-shot [`CATCH`], IRETQs to the user
//! entry, and the snippet ends in a fault or a UD2, whose delivery the catcher turns into a
//! return to the instruction after the IRETQ, on the saved kernel stack.
//!
//! It also provides a user-mode *access stub*: one page of CPL 3 code that reads, writes or
//! executes a given address, mapped with its stack in PML4 slot 2.

use core::arch::{asm, global_asm};
use core::ptr::write_volatile;

use super::testpages::{flush_tlb, kernel_phys, pml4_entry, pte, Pages};

use crate::arch::x86_64::gdt::{USER_CS, USER_DS};
use crate::arch::x86_64::trap::CATCH;

/// PML4 slot 2: the access stub and its stack. Present, writable and user at every level
/// and never NX, so the stub runs under any CR0/CR4/EFER setting a test chooses.
pub const STUB_BASE: u64 = 0x100_0000_0000;
const STUB_STACK: u64 = STUB_BASE + 0x1000;
const PAGE_SIZE: u64 = 4096;

const RFLAGS_FIXED: u64 = 1 << 1;

/// What the access stub does with the address.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    Read = 0,
    /// Stores the low byte of the value argument.
    Write = 1,
    /// Calls the address (which should hold a RET).
    Fetch = 2,
}

/// PDPT, PD and PT for slot 2, and the stub's stack page.
static PAGES: Pages<4> = Pages::new();
const STUB_PDPT: usize = 0;
const STUB_PD: usize = 1;
const STUB_PT: usize = 2;
const STUB_STACK_PAGE: usize = 3;

extern "C" {
    static user_access_stub: u8;
}

/// Map the access stub and its stack in PML4 slot 2.
pub fn map_access_stub() {
    let all = pte::P | pte::W | pte::U;
    // SAFETY: single CPU; slot 2 and these tables belong to this module.
    unsafe {
        write_volatile(pml4_entry(STUB_BASE >> 39), PAGES.phys(STUB_PDPT) | all);
        write_volatile(PAGES.entry(STUB_PDPT, 0), PAGES.phys(STUB_PD) | all);
        write_volatile(PAGES.entry(STUB_PD, 0), PAGES.phys(STUB_PT) | all);
        let code = kernel_phys(&user_access_stub as *const u8 as u64);
        write_volatile(PAGES.entry(STUB_PT, 0), code | pte::P | pte::U);
        write_volatile(PAGES.entry(STUB_PT, 1), PAGES.phys(STUB_STACK_PAGE) | all);
    }
    flush_tlb();
}

/// Remove the slot-2 mapping again.
pub fn unmap_access_stub() {
    // SAFETY: as in `map_access_stub`.
    unsafe { write_volatile(pml4_entry(STUB_BASE >> 39), 0) };
    flush_tlb();
}

/// The initial user stack pointer of the access stub.
pub const STUB_RSP: u64 = STUB_STACK + PAGE_SIZE - 64;

/// Run the access stub at CPL 3 on `va` with RFLAGS `rflags` (IF is never set). A completed
/// access ends in the stub's UD2 (caught as #UD); a faulting one is caught as its fault.
pub fn access(va: u64, kind: Kind, value: u8, rflags: u64) {
    run_user(
        STUB_BASE,
        STUB_RSP,
        rflags | RFLAGS_FIXED,
        [va, kind as u64, value as u64],
    );
}

/// Enter user mode at `entry` with RFLAGS `rflags`, stack pointer `rsp` and RDI, RSI, RDX =
/// `args`; return once the catcher has caught the snippet's exception.
pub fn run_user(entry: u64, rsp: u64, rflags: u64, args: [u64; 3]) {
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
            inout("rdi") args[0] => _,
            inout("rsi") args[1] => _,
            inout("rdx") args[2] => _,
            out("rax") _, out("rcx") _,
            out("r11") _, out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        )
    }
}

// The access stub: RDI = address, ESI = kind, DL = value to write. The stub is the first
// thing on its page, which is mapped at STUB_BASE.
global_asm!(
    r#"
    .section .text.user_access_stub, "ax", @progbits
    .balign 4096
    .global user_access_stub
user_access_stub:
    cmp esi, 1
    je 2f
    ja 3f
    mov al, [rdi]
    ud2
2:
    mov [rdi], dl
    ud2
3:
    call rdi
    ud2
    .balign 4096
    .text
"#
);
