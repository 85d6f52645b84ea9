//! Fixed memory-layout decisions shared by `linker/kernel.ld`, the boot trampoline
//! (`arch::x86_64::boot32`) and the Rust code. Keep the values in sync with the linker script.
//!
//! ```text
//! physical                          virtual
//! 0x0000_0000 .. 0x4000_0000  <->  0x0000_0000 .. 0x4000_0000  (boot identity map, 2 MiB pages)
//! 0x0000_0000 .. 0x4000_0000  <->  KERNEL_VMA + 0 .. KERNEL_VMA + 1 GiB  (boot direct map)
//! KERNEL_PHYS_BASE: .boot (trampoline, page tables, GDT), linked at its physical address
//! next 4 KiB page:  .text .rodata .data .bss, linked at KERNEL_VMA + physical address
//! device pages                 ->  mm::fixmap::FIXMAP_BASE (last 2 MiB), one 4 KiB slot each
//! ```
//!
//! After `mm::init` the kernel runs on its own page tables (`mm::pgtable`), Linux's x86-64
//! layout with 4-level paging:
//!
//! ```text
//! 0x0000_0000_0000_0000 .. 0x0000_7fff_ffff_ffff  user space (empty until processes exist)
//! PAGE_OFFSET    0xffff_8880_0000_0000  direct map of all RAM (1 GiB / 2 MiB / 4 KiB pages, NX)
//! VMALLOC_START  0xffff_c900_0000_0000  vmalloc/vmap/ioremap, VMALLOC_SIZE (one PML4 slot)
//! KERNEL_VMA     0xffff_ffff_8000_0000  kernel image, 4 KiB pages: text RX, rodata R, data RW
//! FIXMAP_BASE    0xffff_ffff_ffe0_0000  fixmap
//! ```
//! The boot identity map is gone after `mm::init`: a null or low pointer faults.

/// Physical address the kernel image is loaded at (2 MiB).
pub const KERNEL_PHYS_BASE: u64 = 0x20_0000;

/// Higher-half base: the kernel proper runs at `KERNEL_VMA + physical address`
/// (the top 2 GiB of the address space, as required by `-C code-model=kernel`).
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

/// Bytes of physical memory mapped by the boot page tables, both at 0 (identity) and at
/// [`KERNEL_VMA`].
pub const BOOT_MAP_SIZE: u64 = 1 << 30;

/// Size of the page used by the boot page tables (2 MiB large pages).
pub const BOOT_PAGE_SIZE: u64 = 2 << 20;

/// Stack used by the 32-bit trampoline (in `.boot.bss`, low memory).
pub const BOOT_STACK_SIZE: usize = 4 * 1024;

/// Stack the Rust kernel runs on (in `.bss`, higher half).
pub const KERNEL_STACK_SIZE: usize = 64 * 1024;

/// Start of the direct map of physical memory (`__PAGE_OFFSET`, Linux's value without KASLR).
pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;

/// Start of the vmalloc area (Linux's `VMALLOC_START` for 4-level paging).
pub const VMALLOC_START: u64 = 0xffff_c900_0000_0000;

/// Size of the vmalloc area: one PML4 slot (512 GiB), preallocated so that every address
/// space shares it (Linux has 32 TiB; this kernel documents the smaller limit).
pub const VMALLOC_SIZE: u64 = 512 << 30;

/// One past the last byte of the vmalloc area.
pub const VMALLOC_END: u64 = VMALLOC_START + VMALLOC_SIZE;
