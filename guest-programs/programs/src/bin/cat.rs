//! `cat [FILE]...`: copies each file (or `-` for standard input; standard
//! input if there are no arguments) to standard output, 4 KiB at a time.
//!
//! Errors (`cat: <file>: ENOENT (No such file or directory)`) go to stderr;
//! the remaining files are still copied and the exit status is 1. A shell-
//! less way to look at `/proc` files under the guest kernel.
#![no_std]
#![no_main]

use vmrt::env::Arg;
use vmrt::eprintln;
use vmrt::sys::fs::{close, openat, read, write_all, AT_FDCWD, O_CLOEXEC, O_RDONLY, STDIN, STDOUT};
use vmrt::sys::{Errno, SysResult};

vmrt::entry!(main);

/// Copies `fd` to stdout until end of file.
fn copy(fd: i32) -> SysResult<()> {
    let mut buf = [0u8; 4096];
    loop {
        match read(fd, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => write_all(STDOUT, &buf[..n])?,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Copies one named file (`-` is stdin).
fn cat(name: Arg) -> SysResult<()> {
    if name.as_bytes() == b"-" {
        return copy(STDIN);
    }
    let mut path = [0u8; 4096];
    let bytes = name.as_bytes();
    if bytes.len() >= path.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    path[..bytes.len()].copy_from_slice(bytes);
    let path = core::ffi::CStr::from_bytes_until_nul(&path).map_err(|_| Errno::EINVAL)?;
    let fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0)?;
    let res = copy(fd);
    let _ = close(fd);
    res
}

fn main() -> i32 {
    if vmrt::env::argc() < 2 {
        return match copy(STDIN) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cat: -: {e}");
                1
            }
        };
    }
    let mut status = 0;
    for name in vmrt::env::args().skip(1) {
        if let Err(e) = cat(name) {
            eprintln!("cat: {name}: {e}");
            status = 1;
        }
    }
    status
}
