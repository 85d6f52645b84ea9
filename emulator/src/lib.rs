//! vmscope: an x86-64 machine emulator for a Linux-style virtual-memory teaching kernel.
//!
//! The crate is laid out by concept: [`cpu`] (decode with iced-x86, execute, segmentation),
//! [`mmu`] (4-level page walks and #PF error codes), [`tlb`], [`interrupts`] (IDT delivery,
//! #DF, triple fault), [`devices`] (UART, isa-debug-exit, local APIC, 8259 pair), [`bus`]
//! (RAM, MMIO, ports, the interrupt controllers), [`memory`] (guest RAM), [`boot`] (the PVH
//! loader) and [`machine`] (the run loop that ties them together and accepts interrupts).
//! [`run`] and [`initramfs`] are `vmscope run`: a program started under the guest kernel.
//! [`itrace`] is the instruction trace (`--trace`), [`symbols`] the ELF symbol tables it names
//! code with.
//! [`gdb`] is the GDB remote stub (`--gdb`).
//! See ARCHITECTURE.md for the data flow.

pub mod addr;
pub mod boot;
pub mod bus;
pub mod cpu;
pub mod devices;
pub mod gdb;
pub mod guest;
pub mod hostinput;
pub mod initramfs;
pub mod interrupts;
pub mod itrace;
pub mod kallsyms;
pub mod linux_task;
pub mod linux_user;
pub mod machine;
pub mod memory;
pub mod mmu;
pub mod ostrace;
pub mod qemu;
pub mod qemu_compat;
pub mod run;
pub mod symbols;
pub mod sysroot;
pub mod timeline;
pub mod tlb;
pub mod trace;
pub mod tracediff;
