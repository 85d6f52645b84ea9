//! Memory probes for self-tests: touch an address with the exception catcher armed and
//! report the fault instead of dying (the kernel's real user-access fixups come with
//! processes).

use core::arch::asm;
use core::sync::atomic::Ordering;

use crate::arch::x86_64::trap::{catch_offset as off, CATCH};

/// A caught exception: vector and CR2 (page faults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caught {
    pub vector: u64,
    pub error_code: u64,
    pub cr2: u64,
}

/// Read the byte at `addr`.
pub fn read_u8(addr: u64) -> Result<u8, Caught> {
    let before = CATCH.count.load(Ordering::SeqCst);
    let value: u64;
    // SAFETY: the load either completes or faults into the armed catcher, which resumes at
    // label 4 on the saved stack with the registers of the faulting instruction (RCX = 0).
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "lea rax, [rip + 4f]",
            "mov [rip + {c} + {rip_off}], rax",
            "mov [rip + {c} + {rsp_off}], rsp",
            "lea rax, [rip + 2f]",
            "mov [rip + {c} + {start_off}], rax",
            "lea rax, [rip + 3f]",
            "mov [rip + {c} + {end_off}], rax",
            "xor ecx, ecx",
            "mov qword ptr [rip + {c} + {armed_off}], 1",
            "2:",
            "movzx ecx, byte ptr [rdi]",
            "3:",
            "mov qword ptr [rip + {c} + {armed_off}], 0",
            "4:",
            "pop rbp",
            "pop rbx",
            c = sym CATCH,
            rip_off = const off::RESUME_RIP,
            rsp_off = const off::RESUME_RSP,
            start_off = const off::INSN_START,
            end_off = const off::INSN_END,
            armed_off = const off::ARMED,
            in("rdi") addr,
            out("rcx") value,
            out("rax") _,
        );
    }
    if CATCH.count.load(Ordering::SeqCst) != before {
        return Err(Caught {
            vector: CATCH.vector.load(Ordering::SeqCst),
            error_code: CATCH.error_code.load(Ordering::SeqCst),
            cr2: CATCH.cr2.load(Ordering::SeqCst),
        });
    }
    Ok(value as u8)
}
