//! Creating mappings (`mm/mmap.c`): the VMA side of mmap, the mappings exec makes, and
//! `[vvar]`/`[vdso]`. Pages are never populated here; faults fill them.

use mm_core::vma::{FileRef, VmFlags, Vma, VM_EXEC, VM_GROWSDOWN, VM_MAYEXEC, VM_MAYREAD, VM_READ};

use mm_core::gfp::Gfp;

use super::addr::{VirtAddr, PAGE_SIZE};
use super::mm_struct::{Mm, Prot};
use super::page_alloc;
use crate::syscall::errno::{Errno, ENOMEM};

impl Mm {
    /// Map `[start, end)` of file `file_id` (named `name`) from byte `offset`, privately.
    pub fn map_file(
        &mut self,
        start: u64,
        end: u64,
        prot: Prot,
        file: &crate::fs::file::MapTarget,
        offset: u64,
        name: &str,
    ) -> Result<(), Errno> {
        let f = FileRef::new(file.id, file.dev_major, file.dev_minor, file.ino, name);
        let v = Vma::file(
            VirtAddr::new(start),
            VirtAddr::new(end),
            prot.vm_flags(),
            f,
            offset / PAGE_SIZE,
        );
        let first = !self.maps_object(file.id);
        self.vmas
            .insert_merged(v)
            .map(|_| ())
            .map_err(|e| Errno(e.errno()))?;
        if first {
            // An address space holds each page cache object it maps once.
            super::shmem::hold(file.id);
        }
        Ok(())
    }

    /// Whether some VMA of this address space maps object `id`.
    pub fn maps_object(&self, id: u64) -> bool {
        self.vmas
            .iter()
            .any(|v| matches!(v.backing, mm_core::vma::Backing::File(f) if f.id == id))
    }

    /// Map anonymous memory `[start, end)`; `growsdown` for the stack.
    pub fn map_anon(
        &mut self,
        start: u64,
        end: u64,
        prot: Prot,
        growsdown: bool,
    ) -> Result<(), Errno> {
        let mut flags = prot.vm_flags();
        if growsdown {
            flags |= VM_GROWSDOWN;
        }
        let v = Vma::anon(VirtAddr::new(start), VirtAddr::new(end), flags);
        self.vmas
            .insert_merged(v)
            .map(|_| ())
            .map_err(|e| Errno(e.errno()))
    }

    /// Map `[vvar]` and `[vdso]` (the vvar page, then the image's pages right above it,
    /// top-down like any mmap) and return the vDSO's address for AT_SYSINFO_EHDR.
    pub fn map_vdso(&mut self) -> Result<u64, Errno> {
        use crate::proc::vdso;
        let layout = self.layout;
        let vvar_len = vdso::VVAR_PAGES as u64 * PAGE_SIZE;
        let vdso_len = vdso::vdso_pages() as u64 * PAGE_SIZE;
        let start = self
            .vmas
            .get_unmapped_area(
                vvar_len + vdso_len,
                VirtAddr::new(0),
                mm_core::vma::Placement::Anywhere,
                &layout,
            )
            .map_err(|e| Errno(e.errno()))?;
        let vvar = start.as_u64();
        let vdso = vvar + vvar_len;
        let special = |s: u64, len: u64, flags: VmFlags, name: &'static str| {
            Vma::special(VirtAddr::new(s), VirtAddr::new(s + len), flags, name)
        };
        self.vmas
            .insert(special(vvar, vvar_len, VM_READ | VM_MAYREAD, "[vvar]"))
            .map_err(|e| Errno(e.errno()))?;
        self.vmas
            .insert(special(
                vdso,
                vdso_len,
                VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYEXEC,
                "[vdso]",
            ))
            .map_err(|e| Errno(e.errno()))?;
        Ok(vdso)
    }

    /// Remove the mappings `removed` (already out of the VMA tree) from the page tables,
    /// and drop this address space's hold on the shmem objects it no longer maps.
    pub fn unmap_vmas(&mut self, removed: &[Vma]) {
        for v in removed {
            self.zap_range(v.start.as_u64(), v.end.as_u64());
        }
        super::shmem::put_removed(&self.vmas, removed);
    }
}

/// Make sure a VMA operation will find kernel memory for its tree nodes before it starts
/// (`vma_iter_prealloc`): one page with the flags of user memory, which stop at the min
/// watermark, is taken and given back. The VMA tree's own allocations cannot fail
/// gracefully, so this keeps the kernel heap's reserve below min (`__GFP_HIGH`, see
/// `slab.rs`) for bookkeeping already under way: when user memory runs out, mmap, munmap,
/// mprotect, mremap, brk and fork give ENOMEM instead.
pub fn vma_prealloc() -> Result<(), Errno> {
    let pfn = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::NOWARN, 0).ok_or(ENOMEM)?;
    page_alloc::free_pages(pfn, 0);
    Ok(())
}
