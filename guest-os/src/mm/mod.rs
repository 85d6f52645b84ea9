//! Memory management: address types and the fixed layout, boot memory (memblock), the
//! kernel page tables, and the page allocator built on `mm-core`.

pub mod addr;
pub mod aslr;
pub mod debug_vm;
pub mod fixmap;
pub mod init;
pub mod layout;
pub mod memblock;
pub mod mm_struct;
pub mod page_alloc;
pub mod pgtable;
pub mod proc;
pub mod rmap;
pub mod slab;
pub mod uaccess;
pub mod vmalloc;

pub use addr::{phys_to_virt, PhysAddr, VirtAddr};
