//! Memory management: address types and the fixed layout, boot memory (memblock), the
//! kernel page tables, the page allocator built on `mm-core`, and the process address
//! space split as Linux's `mm/` is (mm_struct, memory, mmap, mprotect, mremap, rmap,
//! shmem, task_mmu, oom_kill, hugetlb, huge_memory).

pub mod addr;
pub mod aslr;
pub mod debug_vm;
pub mod filemap;
pub mod fixmap;
pub mod huge_memory;
pub mod hugetlb;
pub mod init;
pub mod layout;
pub mod memblock;
pub mod memcontrol;
pub mod memory;
pub mod mm_struct;
pub mod mmap;
pub mod mprotect;
pub mod mremap;
pub mod oom_kill;
pub mod page_alloc;
pub mod pgtable;
pub mod proc;
pub mod psi;
pub mod rmap;
pub mod shmem;
pub mod slab;
pub mod swap_state;
pub mod swapfile;
pub mod task_mmu;
pub mod uaccess;
pub mod vmalloc;
pub mod vmscan;
pub mod writeback;

pub use addr::{phys_to_virt, Pfn, PhysAddr, VirtAddr, PAGE_SIZE};
pub use page_alloc::page_address;
