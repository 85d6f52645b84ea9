//! `pmap [PID]`: the memory map of process PID (default: itself) from
//! `/proc/PID/maps`, laid out like procps-ng's `pmap`:
//!
//! ```text
//! 1234:   /bin/pmap
//! 0000000000400000      4K r---- pmap
//! 0000000000401000     12K r-x-- pmap
//! 00007ffc8e3f1000    132K rw---   [ stack ]
//!  total              164K
//! ```
//!
//! The first line is the pid and the command line; then one line per VMA:
//! start address, size, permissions (`r`, `w`, `x`, `s` for shared), and
//! the file's base name or `[ stack ]` / `[ anon ]` (heap, vDSO and other
//! anonymous memory, as procps shows them).
//!
//! Kernel-describing: not compared with native Linux.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;

use vmrt::io::{read_file, Lossy};
use vmrt::procfs::{lines, MapsEntry};
use vmrt::{eprintln, print, println};

vmrt::entry!(main);

fn main() -> i32 {
    let pid = match vmrt::env::arg(1) {
        None => vmrt::sys::proc::getpid(),
        Some(a) => match a.to_str().and_then(|s| s.parse::<i32>().ok()) {
            Some(p) if p > 0 => p,
            _ => {
                eprintln!("pmap: not a process id: {a}");
                return 2;
            }
        },
    };
    let path = |file: &str| CString::new(format!("/proc/{pid}/{file}")).expect("no NUL");
    let maps = match read_file(&path("maps")) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pmap: /proc/{pid}/maps: {e}");
            return 1;
        }
    };
    // The command line: NUL-separated arguments.
    let cmdline = read_file(&path("cmdline")).unwrap_or_default();
    print!("{pid}:  ");
    for arg in cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()) {
        print!(" {}", Lossy(arg));
    }
    println!();

    let mut total = 0;
    for line in lines(&maps) {
        let Some(e) = MapsEntry::parse(line) else {
            continue;
        };
        total += e.size();
        let p = e.perms;
        let perms = [
            p[0],
            p[1],
            p[2],
            if p[3] == b's' { b's' } else { b'-' },
            b'-',
        ];
        let perms = core::str::from_utf8(&perms).unwrap_or("?????");
        let head = format!("{:016x} {:>6}K {perms}", e.start, e.size() >> 10);
        if e.path.first() == Some(&b'/') {
            let base = e.path.rsplit(|&b| b == b'/').next().unwrap_or(e.path);
            println!("{head} {}", Lossy(base));
        } else if e.path == b"[stack]" {
            println!("{head}   [ stack ]");
        } else {
            println!("{head}   [ anon ]");
        }
    }
    println!(" total {:>16}K", total >> 10);
    0
}
