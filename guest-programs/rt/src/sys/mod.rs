//! Linux x86-64 system calls.
//!
//! [`syscall0`]..[`syscall6`] are the raw instruction: number in `rax`,
//! arguments in `rdi, rsi, rdx, r10, r8, r9`, result in `rax`; the `syscall`
//! instruction itself overwrites `rcx` (return address) and `r11` (saved
//! `rflags`). A result in `-4095..=-1` is a negated errno ([`check`]).
//!
//! The typed wrappers live in one module per family and return
//! `Result<_, Errno>`.

use core::arch::asm;

mod errno;
pub mod fs;
pub mod info;
pub mod mm;
pub mod nr;
pub mod proc;
pub mod signal;
pub mod time;

pub use errno::Errno;

/// Result of a system call wrapper.
pub type SysResult<T> = Result<T, Errno>;

/// Largest errno the kernel returns; results in `-MAX_ERRNO..=-1` are errors.
pub const MAX_ERRNO: usize = 4095;

/// Converts a raw syscall return value into `Ok(value)` or `Err(errno)`.
#[inline]
pub fn check(ret: usize) -> SysResult<usize> {
    if ret > usize::MAX - MAX_ERRNO {
        // ret is in -4095..=-1, so the negation fits in an i32.
        Err(Errno(ret.wrapping_neg() as i32))
    } else {
        Ok(ret)
    }
}

/// Raw system call with no arguments.
///
/// # Safety
/// The call must not break memory safety (e.g. unmapping memory Rust uses).
#[inline(always)]
pub unsafe fn syscall0(n: usize) -> usize {
    let ret;
    asm!("syscall", inlateout("rax") n => ret, lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

/// Raw system call with one argument. See [`syscall0`] for safety.
///
/// # Safety
/// Pointer arguments must be valid for what the kernel does with them.
#[inline(always)]
pub unsafe fn syscall1(n: usize, a1: usize) -> usize {
    let ret;
    asm!("syscall", inlateout("rax") n => ret, in("rdi") a1,
         lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

/// Raw system call with two arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the kernel does with them.
#[inline(always)]
pub unsafe fn syscall2(n: usize, a1: usize, a2: usize) -> usize {
    let ret;
    asm!("syscall", inlateout("rax") n => ret, in("rdi") a1, in("rsi") a2,
         lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

/// Raw system call with three arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the kernel does with them.
#[inline(always)]
pub unsafe fn syscall3(n: usize, a1: usize, a2: usize, a3: usize) -> usize {
    let ret;
    asm!("syscall", inlateout("rax") n => ret, in("rdi") a1, in("rsi") a2, in("rdx") a3,
         lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

/// Raw system call with four arguments (the fourth goes in `r10`, not `rcx`).
///
/// # Safety
/// Pointer arguments must be valid for what the kernel does with them.
#[inline(always)]
pub unsafe fn syscall4(n: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> usize {
    let ret;
    asm!("syscall", inlateout("rax") n => ret, in("rdi") a1, in("rsi") a2, in("rdx") a3,
         in("r10") a4, lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

/// Raw system call with five arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the kernel does with them.
#[inline(always)]
pub unsafe fn syscall5(n: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> usize {
    let ret;
    asm!("syscall", inlateout("rax") n => ret, in("rdi") a1, in("rsi") a2, in("rdx") a3,
         in("r10") a4, in("r8") a5, lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

/// Raw system call with six arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the kernel does with them.
#[inline(always)]
pub unsafe fn syscall6(
    n: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> usize {
    let ret;
    asm!("syscall", inlateout("rax") n => ret, in("rdi") a1, in("rsi") a2, in("rdx") a3,
         in("r10") a4, in("r8") a5, in("r9") a6, lateout("rcx") _, lateout("r11") _,
         options(nostack));
    ret
}

/// Any system call with up to six arguments (missing ones are 0), checked: for the calls
/// without a typed wrapper, such as the edge cases test programs probe.
///
/// # Safety
/// As for [`syscall6`]: pointer arguments must be valid for what the kernel does with
/// them, and the call must not break memory safety.
pub unsafe fn call(n: usize, args: &[usize]) -> SysResult<usize> {
    let a = |i: usize| args.get(i).copied().unwrap_or(0);
    check(syscall6(n, a(0), a(1), a(2), a(3), a(4), a(5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_splits_errors_from_values() {
        assert_eq!(check(0), Ok(0));
        assert_eq!(check(0x40_0000), Ok(0x40_0000));
        assert_eq!(check(usize::MAX - 4095), Ok(usize::MAX - 4095));
        assert_eq!(check((-1isize) as usize), Err(Errno::EPERM));
        assert_eq!(check((-22isize) as usize), Err(Errno::EINVAL));
        assert_eq!(check((-4095isize) as usize), Err(Errno(4095)));
    }
}
