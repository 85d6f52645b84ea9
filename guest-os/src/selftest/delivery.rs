//! Delivery self-test: exceptions whose interest is *where* the handler runs (SDM Vol. 3A
//! 6.14.4-6.14.5): a #PF from CPL 3 switches to TSS.RSP0; a kernel stack overflow into a
//! guard page faults again while pushing the #PF frame, which becomes #DF on its IST stack
//! instead of a triple fault; an NMI (sent to ourselves through the local APIC's ICR) runs
//! on its IST stack. The system tests compare the fault trace of this run between vmscope
//! and QEMU.

use core::arch::asm;
use core::ptr::write_volatile;
use core::sync::atomic::Ordering;

use super::testpages::{flush_tlb, pml4_entry, pte, stack_name, Pages};
use super::user::{self, Kind};
use crate::arch::x86_64::gdt::USER_CS;
use crate::arch::x86_64::idt::vector;
use crate::arch::x86_64::trap::{read_cr2, vector_name, CATCH};
use crate::kprintln;

/// PML4 slot 4: a small stack with a guard page below it, and the local APIC's registers.
const SLOT4_BASE: u64 = 0x200_0000_0000;
/// Not present: the guard page.
const GUARD: u64 = SLOT4_BASE;
/// A 4 KiB kernel stack right above the guard page.
const SMALL_STACK_TOP: u64 = SLOT4_BASE + 0x2000;
/// The local APIC page (xAPIC MMIO, uncached).
const APIC: u64 = SLOT4_BASE + 0x3000;
/// A user address in an empty PML4 slot (5).
const USER_UNMAPPED: u64 = 0x280_0000_1230;

/// Default physical base of the local APIC (IA32_APIC_BASE after reset).
const APIC_PHYS: u64 = 0xfee0_0000;
const APIC_SVR: u64 = 0xf0;
const APIC_ICR_LOW: u64 = 0x300;
const APIC_ICR_HIGH: u64 = 0x310;
const SVR_APIC_ENABLED: u32 = 1 << 8;
const SPURIOUS_VECTOR: u32 = 0xff;
/// ICR: delivery mode NMI, level assert, destination shorthand "self".
const ICR_DM_NMI: u32 = 0b100 << 8;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_DEST_SELF: u32 = 0b01 << 18;
/// How long to wait for the self-NMI before calling it lost (instructions of a spin loop).
const NMI_WAIT_LOOPS: u32 = 10_000;

/// PDPT, PD and PT for slot 4, and the small stack.
static PAGES: Pages<4> = Pages::new();
const PDPT: usize = 0;
const PD: usize = 1;
const PT: usize = 2;
const STACK: usize = 3;

fn map_slot4() {
    let phys = |i: usize| PAGES.phys(i);
    let rw = pte::P | pte::W;
    // SAFETY: single CPU; slot 4 and these tables belong to this test.
    unsafe {
        write_volatile(pml4_entry(SLOT4_BASE >> 39), phys(PDPT) | rw);
        write_volatile(PAGES.entry(PDPT, 0), phys(PD) | rw);
        write_volatile(PAGES.entry(PD, 0), phys(PT) | rw);
        write_volatile(PAGES.entry(PT, 0), 0); // the guard page
        write_volatile(PAGES.entry(PT, 1), phys(STACK) | rw);
        write_volatile(PAGES.entry(PT, 3), APIC_PHYS | rw | pte::PCD | pte::PWT);
    }
    flush_tlb();
}

fn unmap_slot4() {
    // SAFETY: as in `map_slot4`.
    unsafe { write_volatile(pml4_entry(SLOT4_BASE >> 39), 0) };
    flush_tlb();
}

/// What the catcher saw, printed and compared with what the SDM requires.
struct Seen {
    caught: u64,
    vector: u64,
    error: u64,
    cs: u64,
    rsp: u64,
    stack: &'static str,
}

fn take() -> Seen {
    Seen {
        caught: CATCH.count.swap(0, Ordering::SeqCst),
        vector: CATCH.vector.swap(u64::MAX, Ordering::SeqCst),
        error: CATCH.error_code.load(Ordering::SeqCst),
        cs: CATCH.cs.load(Ordering::SeqCst),
        rsp: CATCH.rsp.load(Ordering::SeqCst),
        stack: stack_name(CATCH.frame.load(Ordering::SeqCst)),
    }
}

fn report(name: &str, s: &Seen, extra: &str, ok: bool) -> bool {
    if s.caught == 0 {
        kprintln!("delivery {name}: nothing delivered FAIL");
        return false;
    }
    kprintln!(
        "delivery {name}: {}({:#x}) on {}{extra} {}",
        vector_name(s.vector),
        s.error,
        s.stack,
        if ok { "ok" } else { "FAIL" }
    );
    ok
}

/// #PF at CPL 3: the frame is on the RSP0 stack and holds the user CS and RSP.
fn pf_from_user() -> bool {
    user::map_access_stub();
    user::access(USER_UNMAPPED, Kind::Read, 0, 0);
    let s = take();
    let cr2 = CATCH.cr2.load(Ordering::SeqCst);
    user::unmap_access_stub();
    const PF_USER_READ_NOT_PRESENT: u64 = 1 << 2;
    let ok = s.caught == 1
        && s.vector == vector::PF as u64
        && s.error == PF_USER_READ_NOT_PRESENT
        && s.stack == "rsp0"
        && s.cs == USER_CS as u64
        && s.rsp == user::STUB_RSP
        && cr2 == USER_UNMAPPED;
    report("pf-from-cpl3", &s, "", ok)
}

/// Overflow a kernel stack into its guard page: the #PF cannot push its frame, the second
/// #PF makes a #DF (SDM Table 6-5), which IST1 delivers on a good stack.
fn double_fault_on_stack_overflow() -> bool {
    // SAFETY: the pushes run on the test's own small stack until they fault; the catcher
    // resumes at label 4 on the saved kernel stack. rbx/rbp are saved by hand.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "lea rax, [rip + 4f]",
            "mov [rip + {c} + 8], rax",
            "mov [rip + {c} + 16], rsp",
            "mov qword ptr [rip + {c}], 1",
            "mov rsp, {top}",
            "2:",
            "push rax",
            "jmp 2b",
            "4:",
            "pop rbp",
            "pop rbx",
            c = sym CATCH,
            top = const SMALL_STACK_TOP,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
            out("r13") _, out("r14") _, out("r15") _,
        )
    }
    let s = take();
    let cr2 = read_cr2();
    // The last successful push left RSP at the guard page's top; the next one faulted.
    let fault_addr = GUARD + 0x1000 - 8;
    let ok = s.caught == 1
        && s.vector == vector::DF as u64
        && s.error == 0
        && s.stack == "ist1"
        && cr2 == fault_addr;
    report("df-on-stack-overflow", &s, " cr2=guard", ok)
}

/// Send ourselves an NMI through the ICR; it must arrive on the NMI IST stack.
fn nmi_on_ist() -> bool {
    // SAFETY: APIC is the uncached mapping of the local APIC made by `map_slot4`; enabling
    // it with interrupts off and every LVT masked (the reset state) delivers nothing else.
    unsafe {
        let reg = |off: u64| (APIC + off) as *mut u32;
        write_volatile(reg(APIC_SVR), SVR_APIC_ENABLED | SPURIOUS_VECTOR);
        write_volatile(reg(APIC_ICR_HIGH), 0);
        asm!(
            "push rbx",
            "push rbp",
            "lea rax, [rip + 4f]",
            "mov [rip + {c} + 8], rax",
            "mov [rip + {c} + 16], rsp",
            "mov qword ptr [rip + {c}], 1",
            "mov [rdi], esi",
            "2:",
            "dec ecx",
            "jnz 2b",
            "mov qword ptr [rip + {c}], 0",
            "4:",
            "pop rbp",
            "pop rbx",
            c = sym CATCH,
            inout("rdi") reg(APIC_ICR_LOW) => _,
            inout("esi") ICR_DM_NMI | ICR_LEVEL_ASSERT | ICR_DEST_SELF => _,
            inout("ecx") NMI_WAIT_LOOPS => _,
            out("rax") _, out("rdx") _, out("r8") _, out("r9") _, out("r10") _,
            out("r11") _, out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
    let s = take();
    let ok = s.caught == 1 && s.vector == vector::NMI as u64 && s.stack == "ist2";
    report("nmi-self-ipi", &s, "", ok)
}

/// Run every case; returns (passed, total).
pub fn run() -> (u32, u32) {
    map_slot4();
    let results = [
        pf_from_user(),
        double_fault_on_stack_overflow(),
        nmi_on_ist(),
    ];
    unmap_slot4();
    let pass = results.iter().filter(|&&ok| ok).count() as u32;
    (pass, results.len() as u32)
}
