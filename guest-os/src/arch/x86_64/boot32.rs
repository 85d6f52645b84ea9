//! The PVH entry trampoline: from 32-bit protected mode to `kernel_main` in 64-bit long mode.
//!
//! # Entry state (Xen PVH boot ABI, `docs/misc/pvh.pandoc` in Xen; what QEMU's `pvh.bin`
//! option ROM provides for `-kernel <ELF>`)
//! - 32-bit protected mode, paging off, interrupts off;
//! - CS: flat 32-bit code segment; DS, ES, SS: flat 32-bit data segments;
//! - EBX: physical address of `struct hvm_start_info`;
//! - everything else (including ESP) undefined: there is no usable stack.
//!
//! The loader finds `pvh_start32` through the `.note.Xen` ELF note
//! (`XEN_ELFNOTE_PHYS32_ENTRY`) emitted below.
//!
//! # What the trampoline does
//! 1. loads a boot stack (low memory, `.boot.bss`) and saves EBX;
//! 2. uses static boot page tables (`.boot.data`) mapping physical `[0, 1 GiB)` with 2 MiB pages
//!    twice: at 0 (identity, so this code keeps running when paging turns on) and at
//!    [`KERNEL_VMA`] (PML4[511] -> PDPT[510]), where the kernel proper is linked, and a
//!    third time at [`PAGE_OFFSET`] (PML4[273]), the start of the direct map, so that
//!    `phys_to_virt` works the same before and after `mm::init` builds the real one;
//! 3. enters IA-32e mode following Intel SDM Vol. 3A §10.8.5 "Initializing IA-32e Mode":
//!    CR4.PAE, CR3, IA32_EFER.LME (+NXE), then CR0.PG (with CR0.WP);
//! 4. loads a 64-bit GDT and far-jumps to [`KERNEL_CS`], clears `.bss`, switches to the
//!    higher-half kernel stack and calls `kernel_main(start_info_phys: u64) -> !`.
//!
//! Instructions used (the emulator must implement them): cli, cld, mov (incl. to/from CR0,
//! CR3, CR4 and segment registers), or, rdmsr, wrmsr, lgdt, ljmp (far jump ptr16:32),
//! sub, shr, xor, rep stosq, movabs, call (indirect), hlt, jmp.

use core::arch::global_asm;

use crate::mm::layout::{
    BOOT_MAP_SIZE, BOOT_PAGE_SIZE, BOOT_STACK_SIZE, KERNEL_STACK_SIZE, KERNEL_VMA, PAGE_OFFSET,
};

/// CR0.PE: protected mode enable.
const CR0_PE: u32 = 1 << 0;
/// CR0.WP: supervisor writes honour read-only pages.
const CR0_WP: u32 = 1 << 16;
/// CR0.PG: paging enable.
const CR0_PG: u32 = 1 << 31;
/// CR4.PAE: physical address extension (required for IA-32e paging).
const CR4_PAE: u32 = 1 << 5;

/// IA32_EFER model-specific register.
const MSR_EFER: u32 = 0xC000_0080;
/// IA32_EFER.LME: long mode enable.
const EFER_LME: u32 = 1 << 8;
/// IA32_EFER.NXE: execute-disable bit enable.
const EFER_NXE: u32 = 1 << 11;

/// Page-table entry: present.
const PTE_PRESENT: u64 = 1 << 0;
/// Page-table entry: writable.
const PTE_WRITABLE: u64 = 1 << 1;
/// Page-directory entry: maps a 2 MiB page (PS).
const PTE_HUGE: u64 = 1 << 7;

/// Flags of the non-leaf boot page-table entries.
const BOOT_TABLE_FLAGS: u64 = PTE_PRESENT | PTE_WRITABLE;
/// Flags of the 2 MiB leaf entries of the boot page directory.
const BOOT_PAGE_FLAGS: u64 = PTE_PRESENT | PTE_WRITABLE | PTE_HUGE;

/// PML4 slot of [`KERNEL_VMA`] (511).
const KERNEL_PML4_INDEX: u64 = (KERNEL_VMA >> 39) & 0x1ff;
/// PML4 slot of [`PAGE_OFFSET`] (273).
const DIRECT_MAP_PML4_INDEX: u64 = (PAGE_OFFSET >> 39) & 0x1ff;
/// PDPT slot of [`KERNEL_VMA`] (510).
const KERNEL_PDPT_INDEX: u64 = (KERNEL_VMA >> 30) & 0x1ff;
/// Number of 2 MiB entries in the boot page directory (512: exactly 1 GiB).
const BOOT_PD_ENTRIES: u64 = BOOT_MAP_SIZE / BOOT_PAGE_SIZE;

/// Boot GDT selector of the 64-bit kernel code segment.
pub const KERNEL_CS: u16 = 0x08;
/// Boot GDT selector of the kernel data segment.
pub const KERNEL_DS: u16 = 0x10;

/// 64-bit code descriptor: base 0, limit 0xfffff, G=1, L=1, D=0, P=1, DPL=0, execute/read.
const GDT_CODE64: u64 = 0x00af_9a00_0000_ffff;
/// Data descriptor: base 0, limit 0xfffff, G=1, D/B=1, P=1, DPL=0, read/write.
const GDT_DATA: u64 = 0x00cf_9200_0000_ffff;

/// Xen ELF note type of the 32-bit physical entry point.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

const _: () = assert!(KERNEL_PML4_INDEX != 0, "kernel map must not share PML4[0]");
const _: () = assert!(
    BOOT_PD_ENTRIES == 512,
    "one page directory maps exactly 1 GiB"
);

global_asm!(
    r#"
/* ===================== Xen PVH ELF note ===================== */
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 2f - 1f                   /* n_namesz */
    .long 4f - 3f                   /* n_descsz */
    .long {XEN_ELFNOTE_PHYS32_ENTRY} /* n_type */
1:  .asciz "Xen"
2:  .balign 4
3:  .long pvh_start32               /* desc: 32-bit physical entry point */
4:  .balign 4
    .popsection

/* ===================== 32-bit entry (paging off) ===================== */
    .section .boot.text, "ax", @progbits
    .code32
    .global pvh_start32
    .type pvh_start32, @function
pvh_start32:
    cli
    cld

    /* 1. Boot stack, and keep the hvm_start_info pointer (EBX) for kernel_main. */
    movl $boot_stack_top, %esp
    movl %ebx, pvh_start_info_pa

    /* 2. The boot page tables are static (see .boot.data below). */

    /* 3. Enter IA-32e mode, Intel SDM Vol. 3A 10.8.5 (we start with paging off, step 1):
          step 2: CR4.PAE = 1. */
    movl %cr4, %eax
    orl ${CR4_PAE}, %eax
    movl %eax, %cr4

    /*    step 3: CR3 = physical address of the PML4. */
    movl $boot_pml4, %eax
    movl %eax, %cr3

    /*    step 4: IA32_EFER.LME = 1 (and NXE, so later page tables may use the NX bit). */
    movl ${MSR_EFER}, %ecx
    rdmsr
    orl ${EFER_LME_NXE}, %eax
    wrmsr

    /* The 64-bit GDT (a 32-bit lgdt loads a 32-bit base; it is in identity-mapped memory). */
    lgdt boot_gdt_ptr

    /*    step 5: CR0.PG = 1 (PE stays set; WP on). The CPU sets IA32_EFER.LMA and runs in
          compatibility mode until CS is loaded with a 64-bit (L=1) code segment. */
    movl %cr0, %eax
    orl ${CR0_PG_WP_PE}, %eax
    movl %eax, %cr0

    /* 4. Far jump into the 64-bit code segment. */
    ljmp ${KERNEL_CS}, $long_mode_entry
    .size pvh_start32, . - pvh_start32

/* ===================== 64-bit stub (still identity-mapped) ===================== */
    .code64
    .type long_mode_entry, @function
long_mode_entry:
    movl ${KERNEL_DS}, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xorl %eax, %eax
    mov %eax, %fs
    mov %eax, %gs

    /* Clear the kernel .bss (it holds the kernel stack; nothing uses a stack here). */
    movq $__bss_start, %rdi
    movq $__bss_end, %rcx
    subq %rdi, %rcx
    shrq $3, %rcx
    xorl %eax, %eax
    rep stosq

    /* Higher-half kernel stack; 16-byte aligned before the call, as the SysV ABI requires. */
    movq $kernel_stack_top, %rsp
    xorl %ebp, %ebp

    /* kernel_main(start_info_phys: u64): 32-bit load zero-extends into RDI. */
    movl pvh_start_info_pa(%rip), %edi
    movabsq $kernel_main, %rax
    callq *%rax

    /* kernel_main never returns. */
5:  cli
    hlt
    jmp 5b
    .size long_mode_entry, . - long_mode_entry

/* ===================== Boot data: page tables, GDT (low memory) ===================== */
    .section .boot.data, "aw", @progbits

    /* PML4: [0] -> identity PDPT, [273] -> the same PDPT (direct map at PAGE_OFFSET),
       [511] -> higher-half PDPT. */
    .balign 4096
    .global boot_pml4
boot_pml4:
    .quad boot_pdpt_low + {BOOT_TABLE_FLAGS}
    .org boot_pml4 + 8 * {DIRECT_MAP_PML4_INDEX}, 0
    .quad boot_pdpt_low + {BOOT_TABLE_FLAGS}
    .org boot_pml4 + 8 * {KERNEL_PML4_INDEX}, 0
    .quad boot_pdpt_high + {BOOT_TABLE_FLAGS}
    .org boot_pml4 + 4096, 0

    /* PDPT for the identity map: [0] -> boot_pd (virtual 0 .. 1 GiB). */
boot_pdpt_low:
    .quad boot_pd + {BOOT_TABLE_FLAGS}
    .org boot_pdpt_low + 4096, 0

    /* PDPT for the higher half: [510] -> boot_pd (KERNEL_VMA .. KERNEL_VMA + 1 GiB). */
boot_pdpt_high:
    .org boot_pdpt_high + 8 * {KERNEL_PDPT_INDEX}, 0
    .quad boot_pd + {BOOT_TABLE_FLAGS}
    .org boot_pdpt_high + 4096, 0

    /* Page directory: entry i maps physical [i * 2 MiB, (i + 1) * 2 MiB). */
boot_pd:
    .set .Lpd_index, 0
    .rept {BOOT_PD_ENTRIES}
    .quad .Lpd_index * {BOOT_PAGE_SIZE} + {BOOT_PAGE_FLAGS}
    .set .Lpd_index, .Lpd_index + 1
    .endr

    /* 64-bit GDT: null, kernel code (KERNEL_CS), kernel data (KERNEL_DS). */
    .balign 16
boot_gdt:
    .quad 0
    .quad {GDT_CODE64}
    .quad {GDT_DATA}
boot_gdt_end:
    .balign 4
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    /* Physical address of hvm_start_info, saved from EBX at entry. */
    .balign 4
    .global pvh_start_info_pa
pvh_start_info_pa:
    .long 0

/* ===================== Stacks ===================== */
    .section .boot.bss, "aw", @nobits
    .balign 16
boot_stack:
    .skip {BOOT_STACK_SIZE}
boot_stack_top:

    /* The page below the kernel stack is left unmapped by mm::pgtable: an overflow faults
       (and ends in #DF on IST1) instead of overwriting the .bss below. */
    .section .bss.kernel_stack, "aw", @nobits
    .balign 4096
    .global kernel_stack_guard, kernel_stack_bottom, kernel_stack_top
kernel_stack_guard:
    .skip 4096
kernel_stack_bottom:
    .skip {KERNEL_STACK_SIZE}
kernel_stack_top:

    .text
"#,
    XEN_ELFNOTE_PHYS32_ENTRY = const XEN_ELFNOTE_PHYS32_ENTRY,
    CR4_PAE = const CR4_PAE,
    MSR_EFER = const MSR_EFER,
    EFER_LME_NXE = const EFER_LME | EFER_NXE,
    CR0_PG_WP_PE = const CR0_PG | CR0_WP | CR0_PE,
    KERNEL_CS = const KERNEL_CS,
    KERNEL_DS = const KERNEL_DS,
    BOOT_TABLE_FLAGS = const BOOT_TABLE_FLAGS,
    BOOT_PAGE_FLAGS = const BOOT_PAGE_FLAGS,
    BOOT_PAGE_SIZE = const BOOT_PAGE_SIZE,
    BOOT_PD_ENTRIES = const BOOT_PD_ENTRIES,
    KERNEL_PML4_INDEX = const KERNEL_PML4_INDEX,
    DIRECT_MAP_PML4_INDEX = const DIRECT_MAP_PML4_INDEX,
    KERNEL_PDPT_INDEX = const KERNEL_PDPT_INDEX,
    GDT_CODE64 = const GDT_CODE64,
    GDT_DATA = const GDT_DATA,
    BOOT_STACK_SIZE = const BOOT_STACK_SIZE,
    KERNEL_STACK_SIZE = const KERNEL_STACK_SIZE,
    options(att_syntax)
);
