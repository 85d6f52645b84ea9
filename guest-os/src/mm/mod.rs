//! Memory management. For now: the fixed memory layout and physical/virtual address types.
//! Frame allocation and page-table management will live here too.

pub mod addr;
pub mod layout;

pub use addr::{phys_to_virt, PhysAddr, VirtAddr};
