//! Injected events: an NMI and a machine check raised from outside the guest
//! (`vmscope boot --inject nmi@N,mc@N`), which must arrive on their IST stacks (IST2 for
//! NMI, IST3 for #MC) wherever the kernel happens to be. Each case first executes an INT3
//! as a marker, so the fault trace gives the instruction count at which the case starts
//! waiting; the system test injects a little after it. Without an injection each case
//! reports "nothing delivered".

use core::arch::asm;
use core::sync::atomic::Ordering;

use super::testpages::stack_name;
use crate::arch::x86_64::gdt::trap_stack_of;
use crate::arch::x86_64::idt::vector;
use crate::arch::x86_64::trap::{vector_name, CATCH};
use crate::kprintln;

/// CR4.MCE: without it a machine check shuts the CPU down instead of raising #MC.
const CR4_MCE: u64 = 1 << 6;
/// How long each case waits for its event (iterations of a 3-instruction loop).
const WAIT_LOOPS: u32 = 100_000;

/// Arm the catcher and execute INT3: the marker event in the fault trace.
fn marker() {
    // SAFETY: INT3 traps into the armed catcher, which resumes at label 4 on the saved
    // stack; rbx/rbp are saved by hand, the rest are clobbers.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "lea rax, [rip + 4f]",
            "mov [rip + {c} + 8], rax",
            "mov [rip + {c} + 16], rsp",
            "mov qword ptr [rip + {c}], 1",
            "int3",
            "4:",
            "pop rbp",
            "pop rbx",
            c = sym CATCH,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
            out("r13") _, out("r14") _, out("r15") _,
        )
    }
    CATCH.count.store(0, Ordering::SeqCst);
    CATCH.vector.store(u64::MAX, Ordering::SeqCst);
}

/// Spin with the catcher armed until an event arrives or the wait runs out.
fn wait_for_event() {
    // SAFETY: as in `marker`; the loop touches only ECX.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "lea rax, [rip + 4f]",
            "mov [rip + {c} + 8], rax",
            "mov [rip + {c} + 16], rsp",
            "mov qword ptr [rip + {c}], 1",
            "2:",
            "pause",
            "dec ecx",
            "jnz 2b",
            "mov qword ptr [rip + {c}], 0",
            "4:",
            "pop rbp",
            "pop rbx",
            c = sym CATCH,
            inout("ecx") WAIT_LOOPS => _,
            out("rax") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
            out("r13") _, out("r14") _, out("r15") _,
        )
    }
}

fn case(name: &str, want_vector: u8, want_ist: u8) -> bool {
    marker();
    wait_for_event();
    let caught = CATCH.count.swap(0, Ordering::SeqCst);
    let vec = CATCH.vector.swap(u64::MAX, Ordering::SeqCst);
    if caught == 0 {
        kprintln!("inject {name}: nothing delivered FAIL");
        return false;
    }
    let frame = CATCH.frame.load(Ordering::SeqCst);
    let stack = trap_stack_of(frame);
    let ok = caught == 1 && vec == want_vector as u64 && stack == Some(want_ist);
    kprintln!(
        "inject {name}: {} on {} {}",
        vector_name(vec),
        stack_name(frame),
        if ok { "ok" } else { "FAIL" }
    );
    ok
}

/// Run both cases; returns (passed, total).
pub fn run() -> (u32, u32) {
    // SAFETY: enabling machine-check exceptions only changes what an (injected) machine
    // check does: #MC on its IST stack instead of a shutdown.
    unsafe {
        let cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4 | CR4_MCE, options(nostack, preserves_flags));
    }
    let results = [
        case("nmi", vector::NMI, crate::arch::x86_64::gdt::IST_NMI),
        case(
            "mc",
            vector::MC,
            crate::arch::x86_64::gdt::IST_MACHINE_CHECK,
        ),
    ];
    let pass = results.iter().filter(|&&ok| ok).count() as u32;
    (pass, results.len() as u32)
}
