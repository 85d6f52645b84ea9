//! Booting a kernel the way `qemu-system-x86_64 -kernel` does for ELF images: the Xen PVH
//! boot protocol ([`pvh`]) with the PC firmware's memory map ([`e820`]).

pub mod e820;
pub mod firmware_tables;
pub mod pvh;
