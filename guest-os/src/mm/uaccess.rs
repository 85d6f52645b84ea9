//! Access to user memory from the kernel (`copy_from_user`, `copy_to_user`, `get_user`,
//! `put_user`, `strncpy_from_user`), safe against any pointer a program passes.
//!
//! Two checks, as in Linux: `access_ok` refuses ranges that are not entirely in the user
//! half (kernel and non-canonical addresses) without touching them; the copy itself runs
//! in `__copy_user`, whose one faulting instruction has an entry in the exception table.
//! A page fault there first goes to the normal fault handler (demand paging, COW, stack
//! growth); only if that cannot resolve it does the trap handler resume at the fixup, and
//! the copy reports how many bytes it did not copy. The caller turns that into -EFAULT.
//!
//! With SMAP on (`arch::x86_64::cpufeature`), `__copy_user` is the only code that may touch
//! a user page: it opens the window with STAC and closes it with CLAC, on the normal path
//! and on the fixup path alike. A fault inside the window enters the kernel, whose entry
//! clears AC (Linux's `ASM_CLAC` in the entry code); IRETQ brings AC back for the rest of
//! the copy. Anything else in the kernel that dereferences a user address faults.

use core::arch::global_asm;

use crate::syscall::errno::{Errno, EFAULT};

/// One past the highest user address (`TASK_SIZE_MAX` with 4-level paging: the last page
/// below the canonical hole is left unmapped, as in Linux).
pub const TASK_SIZE: u64 = 0x0000_7fff_ffff_f000;

/// Whether `[addr, addr+len)` lies in user space (`access_ok`), or in the buffer a
/// [`KernelWindow`] lends to the current task's file operations.
pub fn access_ok(addr: u64, len: usize) -> bool {
    match addr.checked_add(len as u64) {
        Some(end) => end <= TASK_SIZE || in_kernel_window(addr, len),
        None => false,
    }
}

global_asm!(
    r#"
    .section .text.uaccess, "ax", @progbits
    .balign 16
    .global __copy_user
/* __copy_user(dst: rdi, src: rsi, len: rdx) -> bytes not copied (rax).
   STAC/CLAC only when SMAP is on (they are #UD on a CPU without it). */
__copy_user:
    movq %rdx, %rcx
    testb $1, SMAP_ON(%rip)
    jz 1f
    stac
1:  rep movsb
    xorl %eax, %eax
    jmp 3f
2:  movq %rcx, %rax
3:  testb $1, SMAP_ON(%rip)
    jz 4f
    clac
4:  ret
    .pushsection __ex_table, "a"
    .balign 8
    .quad 1b, 2b
    .popsection
    .text
"#,
    options(att_syntax)
);

extern "C" {
    fn __copy_user(dst: *mut u8, src: *const u8, len: usize) -> usize;
    static __start___ex_table: [u64; 0];
    static __stop___ex_table: [u64; 0];
}

/// The fixup address for a fault at kernel `rip`, if `rip` is a user-access instruction.
pub fn search_exception_table(rip: u64) -> Option<u64> {
    // SAFETY: the linker places (insn, fixup) u64 pairs between the two symbols.
    let table = unsafe {
        let start = __start___ex_table.as_ptr();
        let end = __stop___ex_table.as_ptr();
        core::slice::from_raw_parts(start, (end.offset_from(start) as usize) & !1)
    };
    table.chunks_exact(2).find(|e| e[0] == rip).map(|e| e[1])
}

/// Linux's `might_fault`: every user copy may sleep, so it is also where a long system
/// call gives the CPU up. After [`RESCHED_BYTES`] of copying in one system call this is a
/// preemption point (`cond_resched`); callers never hold an IrqLock across a user copy,
/// and if one does, the point does nothing.
///
/// [`RESCHED_BYTES`]: crate::arch::x86_64::syscall::RESCHED_BYTES
fn might_fault(len: usize) {
    if crate::arch::x86_64::syscall::uaccess_work(len as u64) {
        crate::proc::sched::cond_resched();
    }
}

/// A kernel buffer lent to file operations that take user addresses, for the calls that
/// move data between two files inside the kernel (sendfile, copy_file_range): Linux's
/// `kernel_read`/`kernel_write` through a KVEC iov_iter. While the guard lives,
/// [`access_ok`] accepts ranges inside the buffer for the current task, and the user copy
/// (`__copy_user`, which works on any mapped address) moves the bytes; no other task sees
/// the window, and any other kernel address is still refused.
pub struct KernelWindow<'a> {
    _buf: core::marker::PhantomData<&'a mut [u8]>,
}

impl<'a> KernelWindow<'a> {
    /// Lend `buf`; its address is what the file operations are given.
    pub fn open(buf: &'a mut [u8]) -> Option<(KernelWindow<'a>, u64)> {
        let t = crate::proc::current()?;
        let addr = buf.as_mut_ptr() as u64;
        t.kernel_window
            .store(addr, core::sync::atomic::Ordering::Relaxed);
        t.kernel_window_len
            .store(buf.len() as u64, core::sync::atomic::Ordering::Relaxed);
        Some((
            KernelWindow {
                _buf: core::marker::PhantomData,
            },
            addr,
        ))
    }
}

impl Drop for KernelWindow<'_> {
    fn drop(&mut self) {
        if let Some(t) = crate::proc::current() {
            t.kernel_window_len
                .store(0, core::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Whether `[addr, addr+len)` is inside the current task's [`KernelWindow`].
fn in_kernel_window(addr: u64, len: usize) -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    let Some(t) = crate::proc::current() else {
        return false;
    };
    let wlen = t.kernel_window_len.load(Relaxed);
    let start = t.kernel_window.load(Relaxed);
    wlen != 0
        && addr >= start
        && addr
            .checked_add(len as u64)
            .is_some_and(|end| end <= start + wlen)
}

/// Copy `dst.len()` bytes from user address `src`.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), Errno> {
    if !access_ok(src, dst.len()) {
        return Err(EFAULT);
    }
    might_fault(dst.len());
    // SAFETY: the destination is a kernel buffer; the source is a user range checked above,
    // whose faults are fixed up.
    match unsafe { __copy_user(dst.as_mut_ptr(), src as *const u8, dst.len()) } {
        0 => Ok(()),
        _ => Err(EFAULT),
    }
}

/// Copy `src` to user address `dst`.
pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), Errno> {
    if !access_ok(dst, src.len()) {
        return Err(EFAULT);
    }
    might_fault(src.len());
    // SAFETY: as in `copy_from_user`, directions swapped.
    match unsafe { __copy_user(dst as *mut u8, src.as_ptr(), src.len()) } {
        0 => Ok(()),
        _ => Err(EFAULT),
    }
}

/// Read a plain value (`get_user`).
pub fn get_user<T: Copy + Default>(addr: u64) -> Result<T, Errno> {
    let mut v = T::default();
    // SAFETY: `v` is a plain value of size_of::<T>() bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(&mut v as *mut T as *mut u8, core::mem::size_of::<T>())
    };
    copy_from_user(bytes, addr)?;
    Ok(v)
}

/// Write a plain value (`put_user`).
pub fn put_user<T: Copy>(addr: u64, v: T) -> Result<(), Errno> {
    // SAFETY: as in `get_user`.
    let bytes = unsafe {
        core::slice::from_raw_parts(&v as *const T as *const u8, core::mem::size_of::<T>())
    };
    copy_to_user(addr, bytes)
}

/// Copy a NUL-terminated string of at most `max` bytes (without the NUL) into a new
/// buffer (`strncpy_from_user`). Reads page by page, so a string that ends before an
/// unmapped page is fine. ENAMETOOLONG if no NUL within `max`.
pub fn strncpy_from_user(addr: u64, max: usize) -> Result<alloc::vec::Vec<u8>, Errno> {
    let mut out = alloc::vec::Vec::new();
    let mut cur = addr;
    let mut chunk = [0u8; 256];
    loop {
        let to_page_end = (0x1000 - (cur & 0xfff)) as usize;
        let n = to_page_end.min(chunk.len()).min(max + 1 - out.len());
        copy_from_user(&mut chunk[..n], cur)?;
        if let Some(z) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..z]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() > max {
            return Err(crate::syscall::errno::ENAMETOOLONG);
        }
        cur += n as u64;
    }
}

/// The length of the user string at `addr` including its NUL, if that is at most `max`
/// (`strnlen_user`); `Ok(max + 1)` when no NUL is found within `max` bytes, EFAULT if the
/// string runs into memory that cannot be read first. Reads page by page through
/// `copy_from_user`, so it never touches a page past the string's end.
pub fn strnlen_user(addr: u64, max: usize) -> Result<usize, Errno> {
    let mut chunk = [0u8; 256];
    let mut done = 0usize;
    while done < max {
        let cur = addr.checked_add(done as u64).ok_or(EFAULT)?;
        let to_page_end = (0x1000 - (cur & 0xfff)) as usize;
        let n = to_page_end.min(chunk.len()).min(max - done);
        copy_from_user(&mut chunk[..n], cur)?;
        if let Some(z) = chunk[..n].iter().position(|&b| b == 0) {
            return Ok(done + z + 1);
        }
        done += n;
    }
    Ok(max + 1)
}
