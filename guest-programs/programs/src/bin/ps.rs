//! `ps`: every process, from `/proc`: the directory is listed with
//! `getdents64`, and for each numeric entry (a pid) `/proc/PID/stat`,
//! `/proc/PID/status` and `/proc/PID/cmdline` are read.
//!
//! ```text
//!     PID    PPID S      VSZ    RSS COMMAND
//!       1       0 S     4096    512 /bin/init
//!       7       1 R      164     12 ps
//! ```
//!
//! VSZ (virtual size, stat field 23) and RSS (resident pages, field 24) are
//! in KiB. COMMAND is the command line, or `[name]` (from the `Name:` line
//! of `status`) for processes without one, such as kernel threads and
//! zombies. Processes that exit while being listed are skipped.
//!
//! Kernel-describing: not compared with native Linux.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use alloc::vec::Vec;

use vmrt::io::{read_file, Lossy};
use vmrt::procfs::{parse_u64, PidStat};
use vmrt::sys::fs::{close, getdents64, open, DirEntries, O_CLOEXEC, O_DIRECTORY, O_RDONLY};
use vmrt::{eprintln, print, println};

vmrt::entry!(main);

/// The numeric entries of `/proc`, sorted.
fn pids() -> vmrt::sys::SysResult<Vec<u64>> {
    let fd = open(c"/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
    let mut buf = [0u8; 4096];
    let mut pids = Vec::new();
    let res = loop {
        match getdents64(fd, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => pids.extend(DirEntries::new(&buf[..n]).filter_map(|e| parse_u64(e.name))),
            Err(e) => break Err(e),
        }
    };
    let _ = close(fd);
    res?;
    pids.sort_unstable();
    Ok(pids)
}

/// The `Name:` value of a `status` file.
fn status_name(status: &[u8]) -> Option<&[u8]> {
    status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Name:"))
        .map(|v| v.trim_ascii())
}

fn main() -> i32 {
    let pids = match pids() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ps: /proc: {e}");
            return 1;
        }
    };
    let page_kb = vmrt::env::auxv(vmrt::env::AT_PAGESZ).unwrap_or(4096) as u64 / 1024;
    println!("    PID    PPID S      VSZ    RSS COMMAND");
    for pid in pids {
        let path = |file: &str| CString::new(format!("/proc/{pid}/{file}")).expect("no NUL");
        // The process may have gone away since the directory was listed.
        let Ok(stat) = read_file(&path("stat")) else {
            continue;
        };
        let Some(s) = PidStat::parse(&stat) else {
            continue;
        };
        print!(
            "{:>7} {:>7} {} {:>8} {:>6} ",
            s.pid,
            s.ppid,
            s.state as char,
            s.vsize / 1024,
            s.rss * page_kb
        );
        let cmdline = read_file(&path("cmdline")).unwrap_or_default();
        let mut args = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .peekable();
        if args.peek().is_some() {
            for (i, arg) in args.enumerate() {
                print!("{}{}", if i == 0 { "" } else { " " }, Lossy(arg));
            }
            println!();
        } else {
            let status = read_file(&path("status")).unwrap_or_default();
            let name = status_name(&status).unwrap_or(s.comm);
            println!("[{}]", Lossy(name));
        }
    }
    0
}
