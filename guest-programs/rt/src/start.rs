//! Process entry: `_start` and the hand-off to the program's `main`.
//!
//! At `_start` the kernel leaves `rsp` pointing at the initial process stack
//! (System V x86-64 psABI, section 3.4.1):
//!
//! ```text
//! rsp -> argc
//!        argv[0] .. argv[argc-1], NULL
//!        envp[0] .. envp[n-1],    NULL
//!        auxv: (a_type, a_val) pairs ..., (AT_NULL, 0)
//!        ... strings, AT_RANDOM bytes, etc.
//! ```
//!
//! `rsp` is 16-byte aligned there, `rbp` is undefined (we zero it to mark
//! the outermost frame) and `rdx` holds an optional `atexit` function from a
//! dynamic loader, which static programs ignore.

#[cfg(not(test))]
core::arch::global_asm!(
    ".pushsection .text._start,\"ax\",@progbits",
    ".globl _start",
    ".type _start,@function",
    "_start:",
    // Outermost frame: a zero frame pointer ends stack walks.
    "    xor ebp, ebp",
    // First argument: the address of argc.
    "    mov rdi, rsp",
    // The ABI promises alignment, but do not depend on it; the call then
    // leaves rsp = 8 (mod 16) at the callee's entry, as the ABI requires.
    "    and rsp, -16",
    "    call {start_rust}",
    // start_rust never returns.
    "    ud2",
    ".size _start, . - _start",
    ".popsection",
    start_rust = sym start_rust,
);

#[cfg(not(test))]
extern "C" {
    /// Defined by the program through [`crate::entry!`].
    fn __vmrt_main() -> i32;
}

/// Called by `_start` with the initial stack pointer: records argv/envp/auxv
/// for [`crate::env`](mod@crate::env), runs the program and exits with its status.
///
/// # Safety
/// `sp` must be the untouched initial stack pointer of the process.
#[cfg(not(test))]
unsafe extern "C" fn start_rust(sp: *const usize) -> ! {
    crate::env::init(sp);
    let status = __vmrt_main();
    crate::sys::proc::exit_group(status)
}

/// Address of `_start` (for comparing with `AT_ENTRY`).
#[cfg(not(test))]
pub fn entry_address() -> usize {
    extern "C" {
        fn _start() -> !;
    }
    _start as *const () as usize
}
