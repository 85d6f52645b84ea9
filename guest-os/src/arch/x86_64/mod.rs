//! x86-64 support: the PVH boot trampoline, the GDT/TSS, the IDT and trap entry, interrupt
//! handler registration, port I/O and basic CPU control.

pub mod boot32;
pub mod cpu;
pub mod cpufeature;
pub mod fpu;
pub mod gdt;
pub mod idt;
pub mod irq;
pub mod port;
pub mod syscall;
pub mod trap;

/// Install the kernel's own GDT, TSS and IDT (replacing the boot GDT). Interrupts stay off.
pub fn init_traps() {
    gdt::init();
    idt::init();
}
