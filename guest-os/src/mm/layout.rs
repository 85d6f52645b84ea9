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
