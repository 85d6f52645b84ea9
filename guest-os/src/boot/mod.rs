//! What the boot loader hands the kernel: the PVH `hvm_start_info` and the firmware memory map.

pub mod e820;
pub mod pvh;
