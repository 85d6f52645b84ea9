//! Exception self-test: provoke every exception the CPU model must raise, in kernel and in
//! user mode, and check the vector, the error code, the pushed RIP (fault: the faulting
//! instruction; trap: the next one) and CR2, against the Intel SDM. The lines it prints are
//! compared between vmscope and QEMU by the system tests, so they contain nothing that
//! depends on the machine.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::Ordering;

use crate::arch::x86_64::idt::{self, vector};
use crate::arch::x86_64::trap::{vector_name, CATCH};
use crate::kprintln;
use crate::mm::layout::KERNEL_VMA;

/// Where the user-mode test pages are mapped: PML4 slot 1 (512 GiB), clear of the boot
/// identity map in slot 0.
const USER_BASE: u64 = 0x80_0000_0000;
/// User code: the `.text.user_tests` pages.
const USER_CODE: u64 = USER_BASE;
const USER_CODE_PAGES: u64 = 2;
/// A user read/write stack page.
const USER_STACK: u64 = USER_BASE + 0x10_000;
/// A user read-only, no-execute page.
const USER_RO: u64 = USER_BASE + 0x11_000;
/// A user address with no mapping (the page-table entry is not present).
const USER_NOT_PRESENT: u64 = USER_BASE + 0x12_000;
/// A kernel address with no mapping at all (PML4 slot 384 is empty).
const KERNEL_UNMAPPED: u64 = 0xffff_c000_0000_0000;
/// A non-canonical address (bit 47 clear, bit 63 set).
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;
/// Kernel memory (the direct map of physical 1 MiB: present, supervisor-only), for user
/// accesses that must fault with a protection violation.
const KERNEL_TEXT: u64 = crate::mm::layout::PAGE_OFFSET + 0x10_0000;
// The kernel cases spell these addresses out as literals.
const _: () = assert!(USER_RO == 0x80_0001_1000 && KERNEL_UNMAPPED == 0xffff_c000_0000_0000);
const _: () = assert!(NON_CANONICAL == 0x8000_0000_0000_0000 && BOGUS_MSR == 0x1234_5678);

const PTE_P: u64 = 1 << 0;
const PTE_W: u64 = 1 << 1;
const PTE_U: u64 = 1 << 2;
const PTE_NX: u64 = 1 << 63;

const RFLAGS_FIXED: u64 = 1 << 1;
const RFLAGS_AC: u64 = 1 << 18;
const CR0_AM: u64 = 1 << 18;
/// An MSR number no CPU implements.
const BOGUS_MSR: u32 = 0x1234_5678;
/// A selector past the end of the GDT.
const BAD_SELECTOR: u16 = 0x80;
/// A vector whose gate the test marks not present.
const NP_VECTOR: u8 = 0x40;
/// The Linux int 0x80 vector: a DPL-0 gate here, so user INT 0x80 must #GP.
const INT80: u8 = 0x80;
/// Error code of a #GP/#NP caused by IDT entry `v`: index, IDT bit (2), EXT bit.
const fn idt_error(v: u8, ext: bool) -> u64 {
    (v as u64) << 3 | 2 | ext as u64
}

/// Page-table pages for the user test mappings (PDPT, PD, PT) and the user data pages.
#[repr(C, align(4096))]
struct Page([u64; 512]);
struct Pages(UnsafeCell<[Page; 5]>);
// SAFETY: single CPU; only this module touches the pages.
unsafe impl Sync for Pages {}
static PAGES: Pages = Pages(UnsafeCell::new([const { Page([0; 512]) }; 5]));
const PDPT: usize = 0;
const PD: usize = 1;
const PT: usize = 2;
const STACK_PAGE: usize = 3;
const RO_PAGE: usize = 4;

extern "C" {
    static user_tests_start: u8;
}

fn kernel_phys(va: u64) -> u64 {
    va - KERNEL_VMA
}

/// Build the user test mappings under PML4 slot 1 of the current page tables.
fn map_user_pages() {
    // SAFETY: single CPU, interrupts off; the PML4 is reached through the direct map, and
    // the entries written here map only the pages of this module.
    unsafe {
        let base = PAGES.0.get() as *mut Page;
        let table = |i: usize| kernel_phys(base.add(i) as u64);
        let pages = &mut *PAGES.0.get();
        let nonleaf = PTE_P | PTE_W | PTE_U;
        *super::testpages::pml4_entry(USER_BASE >> 39) = table(PDPT) | nonleaf;
        pages[PDPT].0[((USER_BASE >> 30) & 0x1ff) as usize] = table(PD) | nonleaf;
        pages[PD].0[((USER_BASE >> 21) & 0x1ff) as usize] = table(PT) | nonleaf;
        let pt = &mut pages[PT].0;
        let code = kernel_phys(&user_tests_start as *const u8 as u64);
        for k in 0..USER_CODE_PAGES {
            pt[((USER_CODE >> 12) & 0x1ff) as usize + k as usize] =
                (code + k * 4096) | PTE_P | PTE_U;
        }
        pt[((USER_STACK >> 12) & 0x1ff) as usize] =
            table(STACK_PAGE) | PTE_P | PTE_W | PTE_U | PTE_NX;
        pt[((USER_RO >> 12) & 0x1ff) as usize] = table(RO_PAGE) | PTE_P | PTE_U | PTE_NX;
        pt[((USER_NOT_PRESENT >> 12) & 0x1ff) as usize] = 0;
        asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags));
    }
}

/// The user-mode address of a label in `.text.user_tests`.
fn user_va(label: *const u8) -> u64 {
    // SAFETY: only addresses are computed.
    let base = unsafe { &user_tests_start as *const u8 as u64 };
    USER_CODE + (label as u64 - base)
}

/// Where the pushed RIP must point.
#[derive(Clone, Copy)]
enum Rip {
    /// At the instruction under test (a fault).
    Fault,
    /// After it (a trap).
    Trap,
    /// At this address (e.g. the target of a jump whose fetch faults).
    At(u64),
    /// Architecturally undefined (#DF): not compared.
    Any,
}

struct Expect {
    vector: u8,
    error: Option<u64>,
    rip: Rip,
    cr2: Option<u64>,
}

const fn fault(vector: u8, error: Option<u64>) -> Expect {
    Expect {
        vector,
        error,
        rip: Rip::Fault,
        cr2: None,
    }
}
const fn trap(vector: u8) -> Expect {
    Expect {
        vector,
        error: None,
        rip: Rip::Trap,
        cr2: None,
    }
}
const fn page_fault(error: u64, cr2: u64) -> Expect {
    Expect {
        vector: vector::PF,
        error: Some(error),
        rip: Rip::Fault,
        cr2: Some(cr2),
    }
}

/// Run `$insn` in kernel mode after `$setup`, with the catcher armed just before it.
macro_rules! kernel_case {
    ($setup:literal, $insn:literal) => {
        // SAFETY: the test instruction faults or traps into the armed catcher, which resumes
        // at label 4 on the saved stack; rbx/rbp are saved by hand, the rest are clobbers.
        unsafe {
            asm!(
                "push rbx",
                "push rbp",
                "lea rax, [rip + 4f]",
                "mov [rip + {c} + 8], rax",
                "mov [rip + {c} + 16], rsp",
                "lea rax, [rip + 2f]",
                "mov [rip + {c} + 24], rax",
                "lea rax, [rip + 3f]",
                "mov [rip + {c} + 32], rax",
                $setup,
                "mov qword ptr [rip + {c}], 1",
                "2:",
                $insn,
                "3:",
                "mov qword ptr [rip + {c}], 0",
                "4:",
                "pop rbp",
                "pop rbx",
                c = sym CATCH,
                out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                out("r13") _, out("r14") _, out("r15") _,
            )
        }
    };
}

/// Enter user mode at `entry` with RFLAGS `rflags` and the user stack; the snippet's
/// instruction under test lies between `start` and `end` (user addresses).
fn run_user(entry: u64, start: u64, end: u64, rflags: u64) {
    CATCH.insn_start.store(start, Ordering::SeqCst);
    CATCH.insn_end.store(end, Ordering::SeqCst);
    super::user::run_user(entry, USER_STACK + 4096 - 64, rflags, [0; 3]);
}

/// Compare what the catcher recorded with `e`; print one line; return whether it matched.
fn check(name: &str, e: Expect) -> bool {
    let caught = CATCH.count.swap(0, Ordering::SeqCst);
    let vec = CATCH.vector.swap(u64::MAX, Ordering::SeqCst);
    let err = CATCH.error_code.load(Ordering::SeqCst);
    let rip = CATCH.rip.load(Ordering::SeqCst);
    let cr2 = CATCH.cr2.load(Ordering::SeqCst);
    let start = CATCH.insn_start.load(Ordering::SeqCst);
    let end = CATCH.insn_end.load(Ordering::SeqCst);
    if caught == 0 {
        kprintln!(
            "exception {name}: no exception FAIL (expected {})",
            vector_name(e.vector as u64)
        );
        return false;
    }
    let where_ = if rip == start {
        "fault"
    } else if rip == end {
        "trap"
    } else {
        "other"
    };
    let mut ok = vec == e.vector as u64;
    ok &= e.error.is_none_or(|x| x == err);
    ok &= match e.rip {
        Rip::Fault => rip == start,
        Rip::Trap => rip == end,
        Rip::At(a) => rip == a,
        Rip::Any => true,
    };
    ok &= e.cr2.is_none_or(|x| x == cr2);
    crate::kprint!("exception {name}: {}", vector_name(vec));
    if e.error.is_some() {
        crate::kprint!("({err:#x})");
    }
    match e.rip {
        Rip::Any => {}
        Rip::At(_) => crate::kprint!(" rip={rip:#x}"),
        _ => crate::kprint!(" rip={where_}"),
    }
    if e.cr2.is_some() {
        crate::kprint!(" cr2={cr2:#x}");
    }
    kprintln!(" {}", if ok { "ok" } else { "FAIL" });
    ok
}

fn set_cr0_am(on: bool) {
    // SAFETY: CR0.AM only enables alignment checking at CPL 3.
    unsafe {
        let mut cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
        cr0 = if on { cr0 | CR0_AM } else { cr0 & !CR0_AM };
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
    }
}

/// Run the user-mode snippet `$label` and check the result.
macro_rules! user {
    ($record:ident, $name:literal, $label:ident, $flags:expr, $e:expr) => {{
        extern "C" {
            static $label: u8;
        }
        extern "C" {
            #[link_name = concat!(stringify!($label), "_insn")]
            static INSN: u8;
            #[link_name = concat!(stringify!($label), "_end")]
            static END: u8;
        }
        // SAFETY: only the addresses of the assembly labels are taken.
        let (entry, start, end) = unsafe { (user_va(&$label), user_va(&INSN), user_va(&END)) };
        run_user(entry, start, end, $flags);
        $record(check($name, $e));
    }};
}

/// Run every case; returns (passed, total).
pub fn run() -> (u32, u32) {
    map_user_pages();
    let mut pass = 0;
    let mut total = 0;
    let mut record = |ok: bool| {
        total += 1;
        pass += ok as u32;
    };

    // ---- kernel mode ----
    kernel_case!("xor ecx, ecx", "div ecx");
    record(check("div-by-zero", fault(vector::DE, None)));
    kernel_case!(
        "mov rax, 0x8000000000000000\n cqo\n mov rcx, -1",
        "idiv rcx"
    );
    record(check("idiv-overflow", fault(vector::DE, None)));
    // TF set by POPF: the trap comes after the instruction that follows POPF.
    kernel_case!("pushfq\n or qword ptr [rsp], 0x100", "popfq\n nop");
    record(check("single-step", trap(vector::DB)));
    kernel_case!("", "int3");
    record(check("int3", trap(vector::BP)));
    kernel_case!("", "ud2");
    record(check("ud2", fault(vector::UD, None)));
    kernel_case!("", ".byte 0xf0, 0x90");
    record(check("lock-nop", fault(vector::UD, None)));
    kernel_case!("", ".byte 0xf0, 0x01, 0xd8");
    record(check("lock-reg-dest", fault(vector::UD, None)));
    kernel_case!("", ".byte 0xce");
    record(check("into-64bit", fault(vector::UD, None)));
    kernel_case!("mov rax, 0x8000000000000000", "mov rax, [rax]");
    record(check("non-canonical-load", fault(vector::GP, Some(0))));
    kernel_case!("mov eax, 0x80", "mov ds, ax");
    record(check(
        "selector-past-gdt",
        fault(vector::GP, Some(BAD_SELECTOR as u64)),
    ));
    kernel_case!("mov rax, 0xffffc00000000000", "mov rax, [rax]");
    record(check(
        "kernel-unmapped-read",
        page_fault(0, KERNEL_UNMAPPED),
    ));
    kernel_case!("mov rax, 0xffffc00000000000", "mov [rax], eax");
    record(check(
        "kernel-unmapped-write",
        page_fault(2, KERNEL_UNMAPPED),
    ));
    kernel_case!("mov rax, 0x8000011000", "mov [rax], eax");
    record(check("kernel-write-readonly-wp", page_fault(3, USER_RO)));
    idt::set_present(vector::GP, false);
    kernel_case!("mov rax, 0x8000000000000000", "mov rax, [rax]");
    record(check(
        "double-fault",
        Expect {
            vector: vector::DF,
            error: Some(0),
            rip: Rip::Any,
            cr2: None,
        },
    ));
    idt::set_present(vector::GP, true);

    // ---- user mode (CPL 3) ----
    let f = RFLAGS_FIXED;
    user!(record, "user-hlt", ut_hlt, f, fault(vector::GP, Some(0)));
    user!(record, "user-cli", ut_cli, f, fault(vector::GP, Some(0)));
    user!(record, "user-in", ut_in, f, fault(vector::GP, Some(0)));
    user!(
        record,
        "user-mov-cr0",
        ut_movcr,
        f,
        fault(vector::GP, Some(0))
    );
    user!(
        record,
        "user-rdmsr",
        ut_rdmsr,
        f,
        fault(vector::GP, Some(0))
    );
    user!(
        record,
        "user-swapgs",
        ut_swapgs,
        f,
        fault(vector::GP, Some(0))
    );
    user!(record, "user-int3", ut_int3, f, trap(vector::BP));
    user!(
        record,
        "user-read-kernel",
        ut_read_kernel,
        f,
        page_fault(5, KERNEL_TEXT)
    );
    user!(
        record,
        "user-write-readonly",
        ut_write_ro,
        f,
        page_fault(7, USER_RO)
    );
    user!(
        record,
        "user-read-not-present",
        ut_read_np,
        f,
        page_fault(4, USER_NOT_PRESENT)
    );
    user!(
        record,
        "user-write-not-present",
        ut_write_np,
        f,
        page_fault(6, USER_NOT_PRESENT)
    );
    user!(
        record,
        "user-exec-nx",
        ut_exec_nx,
        f,
        Expect {
            vector: vector::PF,
            error: Some(0x15),
            rip: Rip::At(USER_RO),
            cr2: Some(USER_RO)
        }
    );
    (pass, total)
}

/// Cases where QEMU's TCG deviates from the SDM (so they are checked on vmscope only; see
/// ARCHITECTURE.md, "QEMU deviations"): the IDT error-code index in long mode, #AC, ICEBP,
/// #SS for stack references, unknown MSRs and reserved EFER/CR4/CR0 bits.
/// Returns (passed, total).
pub fn run_strict() -> (u32, u32) {
    map_user_pages();
    let mut pass = 0;
    let mut total = 0;
    let mut record = |ok: bool| {
        total += 1;
        pass += ok as u32;
    };
    idt::set_present(NP_VECTOR, false);
    kernel_case!("", "int 0x40");
    record(check(
        "gate-not-present",
        fault(vector::NP, Some(idt_error(NP_VECTOR, false))),
    ));
    idt::set_present(NP_VECTOR, true);
    let f = RFLAGS_FIXED;
    user!(
        record,
        "user-int80-dpl0",
        ut_int80,
        f,
        fault(vector::GP, Some(idt_error(INT80, false)))
    );
    set_cr0_am(true);
    user!(
        record,
        "user-misaligned-ac",
        ut_ac,
        f | RFLAGS_AC,
        fault(vector::AC, Some(0))
    );
    set_cr0_am(false);
    kernel_case!("", ".byte 0xf1");
    record(check("int1", trap(vector::DB)));
    kernel_case!("mov rbp, 0x8000000000000000", "mov rax, [rbp]");
    record(check("non-canonical-stack-ref", fault(vector::SS, Some(0))));
    kernel_case!("mov ecx, 0x12345678", "rdmsr");
    record(check("rdmsr-bogus", fault(vector::GP, Some(0))));
    kernel_case!("mov ecx, 0xc0000080\n rdmsr\n or eax, 0x100000", "wrmsr");
    record(check("wrmsr-efer-reserved", fault(vector::GP, Some(0))));
    kernel_case!("mov rax, cr4\n or rax, 0x8000", "mov cr4, rax");
    record(check("cr4-reserved", fault(vector::GP, Some(0))));
    kernel_case!("mov rax, cr0\n bts rax, 32", "mov cr0, rax");
    record(check("cr0-reserved", fault(vector::GP, Some(0))));
    (pass, total)
}

// User-mode snippets: `ut_X` is the entry, `ut_X_insn` the instruction under test and
// `ut_X_end` the next one (a UD2, so a missing fault is still caught and reported).
global_asm!(
    r#"
    .section .text.user_tests, "ax", @progbits
    .balign 4096
    .global user_tests_start
user_tests_start:
    .macro UT name
    .global \name, \name\()_insn, \name\()_end
    .endm

    UT ut_hlt
ut_hlt:
ut_hlt_insn:
    hlt
ut_hlt_end:
    ud2

    UT ut_cli
ut_cli:
ut_cli_insn:
    cli
ut_cli_end:
    ud2

    UT ut_in
ut_in:
ut_in_insn:
    in al, 0x80
ut_in_end:
    ud2

    UT ut_movcr
ut_movcr:
ut_movcr_insn:
    mov rax, cr0
ut_movcr_end:
    ud2

    UT ut_rdmsr
ut_rdmsr:
    mov ecx, 0xc0000080
ut_rdmsr_insn:
    rdmsr
ut_rdmsr_end:
    ud2

    UT ut_swapgs
ut_swapgs:
ut_swapgs_insn:
    swapgs
ut_swapgs_end:
    ud2

    UT ut_int80
ut_int80:
ut_int80_insn:
    int 0x80
ut_int80_end:
    ud2

    UT ut_int3
ut_int3:
ut_int3_insn:
    int3
ut_int3_end:
    ud2

    UT ut_ac
ut_ac:
ut_ac_insn:
    mov eax, [rsp + 1]
ut_ac_end:
    ud2

    UT ut_read_kernel
ut_read_kernel:
    mov rax, {kernel_text}
ut_read_kernel_insn:
    mov rax, [rax]
ut_read_kernel_end:
    ud2

    UT ut_write_ro
ut_write_ro:
    mov rax, {user_ro}
ut_write_ro_insn:
    mov [rax], eax
ut_write_ro_end:
    ud2

    UT ut_read_np
ut_read_np:
    mov rax, {user_np}
ut_read_np_insn:
    mov eax, [rax]
ut_read_np_end:
    ud2

    UT ut_write_np
ut_write_np:
    mov rax, {user_np}
ut_write_np_insn:
    mov [rax], eax
ut_write_np_end:
    ud2

    UT ut_exec_nx
ut_exec_nx:
    mov rax, {user_ro}
ut_exec_nx_insn:
    jmp rax
ut_exec_nx_end:
    ud2

    .balign 4096
    .text
"#,
    kernel_text = const KERNEL_TEXT,
    user_ro = const USER_RO,
    user_np = const USER_NOT_PRESENT,
);
