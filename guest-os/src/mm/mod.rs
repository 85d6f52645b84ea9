//! Memory management. For now: the fixed memory layout, physical/virtual address types and
//! the fixmap for device registers. Frame allocation and page-table management will live
//! here too.

pub mod addr;
pub mod fixmap;
pub mod layout;

pub use addr::{phys_to_virt, PhysAddr, VirtAddr};
