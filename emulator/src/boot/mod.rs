//! Booting a kernel the way `qemu-system-x86_64 -kernel` does: ELF images through the Xen
//! PVH boot protocol ([`pvh`]), bzImages through the Linux/x86 boot protocol ([`bzimage`]),
//! both with the PC firmware's memory map ([`e820`]).

pub mod bzimage;
pub mod e820;
pub mod firmware_tables;
pub mod pvh;
