//! Memory-management system calls: mmap, munmap, mprotect, mremap, madvise,
//! mincore, brk.

use super::nr::*;
use super::{check, syscall1, syscall2, syscall3, syscall5, syscall6, SysResult};

/// Size of a page on x86-64 Linux.
pub const PAGE_SIZE: usize = 4096;

/// Pages may not be accessed.
pub const PROT_NONE: u32 = 0;
/// Pages may be read.
pub const PROT_READ: u32 = 1;
/// Pages may be written.
pub const PROT_WRITE: u32 = 2;
/// Pages may be executed.
pub const PROT_EXEC: u32 = 4;

/// Share the mapping with other processes mapping the same object.
pub const MAP_SHARED: u32 = 0x01;
/// Private copy-on-write mapping.
pub const MAP_PRIVATE: u32 = 0x02;
/// Place the mapping exactly at `addr`, replacing what is there.
pub const MAP_FIXED: u32 = 0x10;
/// Not backed by a file; contents are zero.
pub const MAP_ANONYMOUS: u32 = 0x20;
/// Like `MAP_FIXED` but fail with `EEXIST` instead of replacing.
pub const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;
/// Stack-like mapping that grows downwards on faults below it.
pub const MAP_GROWSDOWN: u32 = 0x0100;
/// Do not reserve swap space (overcommit accounting).
pub const MAP_NORESERVE: u32 = 0x4000;
/// Pre-fault the pages.
pub const MAP_POPULATE: u32 = 0x8000;
/// Hint: the mapping is a thread stack.
pub const MAP_STACK: u32 = 0x2_0000;

/// `mremap` flag: the kernel may move the mapping.
pub const MREMAP_MAYMOVE: u32 = 1;
/// `mremap` flag: move to `new_addr` (requires `MREMAP_MAYMOVE`).
pub const MREMAP_FIXED: u32 = 2;
/// `mremap` flag: leave the old range mapped (but empty).
pub const MREMAP_DONTUNMAP: u32 = 4;

/// `madvise`: no special treatment.
pub const MADV_NORMAL: u32 = 0;
/// `madvise`: expect random access.
pub const MADV_RANDOM: u32 = 1;
/// `madvise`: expect sequential access.
pub const MADV_SEQUENTIAL: u32 = 2;
/// `madvise`: expect access soon.
pub const MADV_WILLNEED: u32 = 3;
/// `madvise`: drop the pages; private anonymous memory then reads as zero.
pub const MADV_DONTNEED: u32 = 4;
/// `madvise`: the pages may be freed lazily.
pub const MADV_FREE: u32 = 8;
/// `madvise`: deactivate the pages (reclaim takes them first).
pub const MADV_COLD: u32 = 20;
/// `madvise`: reclaim the pages now (swap out anonymous and shared memory).
pub const MADV_PAGEOUT: u32 = 21;
/// `madvise`: enable transparent huge pages.
pub const MADV_HUGEPAGE: u32 = 14;
/// `madvise`: disable transparent huge pages (of every size).
pub const MADV_NOHUGEPAGE: u32 = 15;

/// `mmap(addr, len, prot, flags, fd, offset)`: returns the mapping's address.
///
/// # Safety
/// With `MAP_FIXED` this can replace memory that Rust code is using.
pub unsafe fn mmap(
    addr: usize,
    len: usize,
    prot: u32,
    flags: u32,
    fd: i32,
    offset: u64,
) -> SysResult<*mut u8> {
    check(syscall6(
        SYS_mmap,
        addr,
        len,
        prot as usize,
        flags as usize,
        fd as usize,
        offset as usize,
    ))
    .map(|a| a as *mut u8)
}

/// Maps `len` bytes of fresh zeroed read-write memory anywhere.
pub fn mmap_anonymous(len: usize) -> SysResult<*mut u8> {
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    unsafe {
        mmap(
            0,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
    }
}

/// `munmap(addr, len)`.
///
/// # Safety
/// Nothing may use the unmapped range afterwards.
pub unsafe fn munmap(addr: *mut u8, len: usize) -> SysResult<()> {
    check(syscall2(SYS_munmap, addr as usize, len)).map(drop)
}

/// `mprotect(addr, len, prot)`.
///
/// # Safety
/// Removing access from memory Rust code uses leads to faults.
pub unsafe fn mprotect(addr: *mut u8, len: usize, prot: u32) -> SysResult<()> {
    check(syscall3(SYS_mprotect, addr as usize, len, prot as usize)).map(drop)
}

/// `mremap(old, old_len, new_len, flags, new_addr)`: returns the (possibly
/// moved) mapping's address.
///
/// # Safety
/// A move or shrink invalidates pointers into the old range.
pub unsafe fn mremap(
    old: *mut u8,
    old_len: usize,
    new_len: usize,
    flags: u32,
    new_addr: usize,
) -> SysResult<*mut u8> {
    check(syscall5(
        SYS_mremap,
        old as usize,
        old_len,
        new_len,
        flags as usize,
        new_addr,
    ))
    .map(|a| a as *mut u8)
}

/// `madvise(addr, len, advice)`.
///
/// # Safety
/// Some advice changes contents (`MADV_DONTNEED` zeroes private anonymous
/// memory).
pub unsafe fn madvise(addr: *mut u8, len: usize, advice: u32) -> SysResult<()> {
    check(syscall3(SYS_madvise, addr as usize, len, advice as usize)).map(drop)
}

/// `mincore(addr, len, vec)`: one byte per page of `[addr, addr+len)` in
/// `vec`, bit 0 set if the page is resident. `vec` must hold at least
/// `len.div_ceil(PAGE_SIZE)` bytes (checked: `EINVAL` otherwise).
pub fn mincore(addr: *const u8, len: usize, vec: &mut [u8]) -> SysResult<()> {
    if vec.len() < len.div_ceil(PAGE_SIZE) {
        return Err(super::Errno::EINVAL);
    }
    // SAFETY: the kernel writes at most one byte per page into vec, which
    // is large enough; it only inspects (never touches) the address range.
    check(unsafe { syscall3(SYS_mincore, addr as usize, len, vec.as_mut_ptr() as usize) }).map(drop)
}

/// The raw `brk(addr)` call: returns the program break after the call.
///
/// Linux never reports an error here: on failure (or for `addr == 0`, or an
/// address below the initial break) it returns the current break unchanged,
/// so success means "the returned value equals the requested one".
///
/// # Safety
/// Shrinking the break frees memory that may still be in use (e.g. by the
/// global allocator, which takes its memory from the break).
pub unsafe fn brk(addr: usize) -> usize {
    syscall1(SYS_brk, addr)
}

/// The current program break (`brk(0)`), which never changes it.
pub fn current_brk() -> usize {
    // SAFETY: brk(0) only queries.
    unsafe { brk(0) }
}

/// Moves the program break to `addr`, returning `ENOMEM` if the kernel
/// refused (as glibc's `brk()` does).
///
/// # Safety
/// As for [`brk`].
pub unsafe fn set_brk(addr: usize) -> SysResult<()> {
    if brk(addr) == addr {
        Ok(())
    } else {
        Err(super::Errno::ENOMEM)
    }
}
