//! `exitcode [N]`: exits with status N (default 42), to test that the exit
//! status reaches the parent. Only the low 8 bits are visible to the parent
//! (`exitcode 300` exits with 44, `exitcode -1` with 255), as on Linux.
//! Prints nothing unless N is not a number (then a message on stderr and
//! status 2).
#![no_std]
#![no_main]

use vmrt::eprintln;

vmrt::entry!(main);

/// Status used when no argument is given.
const DEFAULT_STATUS: i32 = 42;
/// Status for a malformed argument (like a usage error in most tools).
const USAGE_STATUS: i32 = 2;

fn main() -> i32 {
    let Some(arg) = vmrt::env::arg(1) else {
        return DEFAULT_STATUS;
    };
    match arg.to_str().and_then(|s| s.parse::<i32>().ok()) {
        Some(status) => status,
        None => {
            eprintln!("exitcode: not an integer: {arg}");
            USAGE_STATUS
        }
    }
}
