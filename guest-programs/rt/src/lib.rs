//! `vmrt`: a tiny `no_std` runtime for static Linux x86-64 user programs.
//!
//! Programs built on it are ordinary static Linux ELF executables: they run
//! natively on a Linux host and under the vmscope guest kernel, which
//! implements the same syscall ABI, so the two runs can be compared byte for
//! byte.
//!
//! # Writing a program
//!
//! A program is one file in `programs/src/bin/`:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//!
//! use vmrt::println;
//!
//! vmrt::entry!(main);
//!
//! fn main() -> i32 {
//!     for (i, arg) in vmrt::env::args().enumerate() {
//!         println!("argv[{i}] = {arg}");
//!     }
//!     0
//! }
//! ```
//!
//! * [`entry!`] names the program's `fn main() -> i32`; its return value is
//!   the process exit status (passed to `exit_group`).
//! * Arguments, environment and auxiliary vector: [`env`](mod@env).
//! * Output: [`print!`], [`println!`], [`eprint!`], [`eprintln!`]; each call
//!   formats into a stack buffer and normally issues a single `write`.
//! * System calls: [`sys`] (typed wrappers returning `Result<_, Errno>`, and
//!   the raw `syscall0..syscall6`).
//! * Reading whole files (e.g. from `/proc`): [`io::read_file`],
//!   [`io::read_all`].
//! * Touching memory that may fault, and getting the signal's `siginfo`
//!   back instead of dying: [`fault`].
//! * Parsing `/proc` files (`meminfo`, `PID/stat`, `PID/maps`): [`procfs`].
//! * The vDSO's clock functions, found by parsing its ELF image: [`vdso`].
//! * `alloc` (`Vec`, `String`, `format!`) works: the global allocator takes
//!   memory from `brk` the first time it is used (programs that never
//!   allocate never move the break).
//! * A panic prints `panic: <message> at <file>:<line>:<col>` to stderr and
//!   exits with status 101, like Rust's std.
//!
//! # Process start
//!
//! The kernel enters `_start` with `rsp` pointing at `argc`, followed by the
//! `argv` pointers, a NULL, the `envp` pointers, a NULL, and the auxiliary
//! vector of `(type, value)` pairs ending with `AT_NULL` (System V x86-64
//! psABI, section 3.4.1). `_start` ([`start`]) passes that pointer to Rust,
//! which records it for [`env`](mod@env), calls `main` and exits with its result.
//!
//! # Host tests
//!
//! The pure parts (initial-stack parsing, the allocator's size classes and
//! free lists, errno names, output buffering, directory-record and vDSO ELF
//! parsing) and the syscall wrappers that behave the same on the host
//! (signals and fault probes, pipes, limits, the host's own vDSO)
//! are unit-tested on the host:
//! `cargo test -p vmrt --target x86_64-unknown-linux-gnu`. In that
//! configuration the crate links `std`, and `_start`, the panic handler and
//! the global allocator are left out.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc as alloc_crate;

pub mod alloc;
pub mod env;
pub mod fault;
pub mod io;
pub mod procfs;
pub mod start;
pub mod sys;
pub mod vdso;

mod panic;

pub use sys::Errno;

/// Declares the program's entry function.
///
/// `vmrt::entry!(main);` where `main` is a `fn() -> i32`. The runtime calls it
/// after setting up [`env`](mod@env) and exits the whole process (`exit_group`) with the
/// returned value as status (only the low 8 bits are visible to the parent,
/// as on Linux).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by `vmrt::start` once the initial stack has been recorded.
        #[no_mangle]
        pub extern "C" fn __vmrt_main() -> i32 {
            let main: fn() -> i32 = $main;
            main()
        }
    };
}
