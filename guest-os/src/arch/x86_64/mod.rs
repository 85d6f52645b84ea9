//! x86-64 support: the PVH boot trampoline, port I/O and basic CPU control.

pub mod boot32;
pub mod cpu;
pub mod port;
