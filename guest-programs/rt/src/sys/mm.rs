//! Memory-management system calls: mmap, munmap, mprotect, brk.

use super::nr::*;
use super::{check, syscall1, syscall2, syscall3, syscall6, SysResult};

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
