//! `maps`: copies `/proc/self/maps` to stdout with plain `open`, `read`
//! (4 KiB at a time until end of file) and `close`: the process's own view
//! of its VMAs (program segments, heap, stack, vDSO).
//!
//! Kernel-describing: the addresses differ between runs and kernels, so the
//! output is not compared with native Linux. Exit status 0, or 1 with a
//! message on stderr if the file cannot be read.
#![no_std]
#![no_main]

use vmrt::eprintln;
use vmrt::sys::fs::{close, open, read, write_all, O_RDONLY, STDOUT};

vmrt::entry!(main);

fn main() -> i32 {
    let fd = match open(c"/proc/self/maps", O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("maps: /proc/self/maps: {e}");
            return 1;
        }
    };
    let mut buf = [0u8; 4096];
    let status = loop {
        match read(fd, &mut buf) {
            Ok(0) => break 0,
            Ok(n) => {
                if write_all(STDOUT, &buf[..n]).is_err() {
                    break 1;
                }
            }
            Err(e) => {
                eprintln!("maps: read: {e}");
                break 1;
            }
        }
    };
    let _ = close(fd);
    status
}
