//! `execlimits`: the size limits of `execve`'s argv and envp, and that a
//! failed `execve` gives back all the memory it took.
//!
//! Linux (`fs/exec.c`) allows the strings and pointers of argv and envp a
//! quarter of the stack limit (2 MiB with the default 8 MiB, which this
//! program sets as its soft limit first), one string at most
//! `MAX_ARG_STRLEN` (32 pages, its NUL included); beyond, `E2BIG`.
//!
//! 1. fork + exec `execlimits report` with 1 MiB of arguments: the new
//!    program prints its argc, the bytes of its argv and whether
//!    /proc/self/cmdline holds exactly that argv.
//! 2. The same with one argument of `MAX_ARG_STRLEN` bytes (NUL included):
//!    allowed; one byte more: `E2BIG`.
//! 3. 3 MiB of arguments: `E2BIG`. A bad string pointer in argv, and a bad
//!    argv array: `EFAULT`. The process goes on after each.
//! 4. 200 failing execs (each kind in turn) leave MemFree in
//!    /proc/meminfo where it was. Exactly so on the guest kernel;
//!    `EXECLIMITS_TOLERANCE_KB` allows for the noise of a busy host kernel
//!    (the system test sets it for the native run only).
//!
//! The programs are found in `VMSCOPE_BIN` (or `/bin`), as for
//! `execchain`; the directory is never printed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_char;
use core::ptr;

use vmrt::io::{read_file, yes_no, Report};
use vmrt::println;
use vmrt::sys::proc::{execve, exit_group, fork, getrlimit, setrlimit, wait4, Fork, RLIMIT_STACK};
use vmrt::sys::Errno;

vmrt::entry!(main);

/// Linux's `MAX_ARG_STRLEN`: 32 pages, the NUL included.
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// The stack limit the limits below follow from (Linux's default).
const STACK_LIMIT: u64 = 8 << 20;
/// Bytes of each filler argument, its NUL included.
const ARG_BYTES: usize = 1024;
/// Failed execs in the leak check.
const LEAK_ROUNDS: usize = 200;
/// A user address nothing is mapped at.
const BAD_POINTER: usize = 0x10;

/// The directory holding the bundled programs.
fn bin_dir() -> String {
    match vmrt::env::var("VMSCOPE_BIN") {
        Some(dir) => String::from_utf8_lossy(dir.as_bytes()).into_owned(),
        None => String::from("/bin"),
    }
}

/// Owned argument strings and the NULL-terminated pointer array `execve`
/// takes.
struct Argv {
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl Argv {
    fn new(strings: Vec<CString>) -> Argv {
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(ptr::null());
        Argv {
            _strings: strings,
            ptrs,
        }
    }

    /// `execlimits report` followed by `fillers` arguments of `bytes` bytes
    /// each (NUL included).
    fn report(fillers: usize, bytes: usize) -> Argv {
        let mut v = vec![cstr("execlimits"), cstr("report")];
        for i in 0..fillers {
            let c = b'a' + (i % 26) as u8;
            v.push(CString::new(vec![c; bytes - 1]).expect("no NUL"));
        }
        Argv::new(v)
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

/// `execve(path, argv, [])`; the error if it fails.
fn exec(path: &CString, argv: *const *const c_char) -> Errno {
    let envp: [*const c_char; 1] = [ptr::null()];
    // SAFETY: the kernel checks every pointer; a bad one is EFAULT.
    match unsafe { execve(path, argv, envp.as_ptr()) } {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// Fork a child that execs `argv` and wait for it; whether it exited 0.
fn run_child(path: &CString, argv: impl FnOnce() -> Argv) -> bool {
    match fork() {
        Ok(Fork::Child) => {
            let a = argv();
            let e = exec(path, a.ptrs.as_ptr());
            println!("child: execve failed: {e:?}");
            exit_group(127)
        }
        Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
            Ok((_, st)) => st.exited() && st.exit_status() == 0,
            Err(e) => {
                println!("wait4: {e:?}");
                false
            }
        },
        Err(e) => {
            println!("fork: {e:?}");
            false
        }
    }
}

/// MemFree from /proc/meminfo, in kB.
fn mem_free() -> Option<u64> {
    let text = read_file(c"/proc/meminfo").ok()?;
    vmrt::procfs::value(&text, "MemFree")
}

/// The exec'd side: argc, argv bytes, and /proc/self/cmdline against argv.
fn report() -> i32 {
    let mut joined = Vec::new();
    for a in vmrt::env::args() {
        joined.extend_from_slice(a.as_bytes());
        joined.push(0);
    }
    let cmdline = read_file(c"/proc/self/cmdline").unwrap_or_default();
    println!(
        "  report: argc = {}, argv bytes = {}, /proc/self/cmdline is argv: {}",
        vmrt::env::argc(),
        joined.len(),
        yes_no(cmdline == joined)
    );
    0
}

fn main() -> i32 {
    if vmrt::env::arg(1).is_some_and(|a| a.as_bytes() == b"report") {
        return report();
    }
    // The limits below are those of an 8 MiB stack limit (a host shell may
    // have another). The guest kernel's limit is fixed at 8 MiB.
    if let Ok(mut l) = getrlimit(RLIMIT_STACK) {
        l.cur = STACK_LIMIT.min(l.max);
        let _ = setrlimit(RLIMIT_STACK, l);
    }
    let mut r = Report::new();
    let me = cstr(&format!("{}/execlimits", bin_dir()));

    println!("exec with 1 MiB of arguments:");
    let ok = run_child(&me, || Argv::report((1 << 20) / ARG_BYTES - 2, ARG_BYTES));
    r.check("  exited 0", ok);

    println!("exec with one argument of MAX_ARG_STRLEN bytes:");
    let ok = run_child(&me, || Argv::report(1, MAX_ARG_STRLEN));
    r.check("  exited 0", ok);

    let too_long = Argv::report(1, MAX_ARG_STRLEN + 1);
    let e = exec(&me, too_long.ptrs.as_ptr());
    println!("exec with one argument of MAX_ARG_STRLEN + 1 bytes: {e:?}");
    r.check("  E2BIG", e == Errno::E2BIG);

    let huge = Argv::report((3 << 20) / ARG_BYTES, ARG_BYTES);
    let e = exec(&me, huge.ptrs.as_ptr());
    println!("exec with 3 MiB of arguments: {e:?}");
    r.check("  E2BIG", e == Errno::E2BIG);
    drop(huge);

    let mut bad_string = Argv::report(0, 1);
    bad_string.ptrs[1] = BAD_POINTER as *const c_char;
    let e = exec(&me, bad_string.ptrs.as_ptr());
    println!("exec with a bad string pointer in argv: {e:?}");
    r.check("  EFAULT", e == Errno::EFAULT);
    let e = exec(&me, BAD_POINTER as *const *const c_char);
    println!("exec with a bad argv array: {e:?}");
    r.check("  EFAULT", e == Errno::EFAULT);

    // Everything the loop uses exists before the first MemFree reading.
    let failing = |i: usize| match i % 3 {
        0 => exec(&me, too_long.ptrs.as_ptr()),
        1 => exec(&me, bad_string.ptrs.as_ptr()),
        _ => exec(&me, BAD_POINTER as *const *const c_char),
    };
    for i in 0..3 {
        failing(i);
    }
    let tolerance: u64 = vmrt::env::var("EXECLIMITS_TOLERANCE_KB")
        .and_then(|v| v.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // The first reading of /proc/meminfo may grow kernel caches: measure from the second.
    let _ = mem_free();
    let before = mem_free();
    let mut all_failed = true;
    for i in 0..LEAK_ROUNDS {
        let e = failing(i);
        all_failed &= e == Errno::E2BIG || e == Errno::EFAULT;
    }
    let after = mem_free();
    println!("{LEAK_ROUNDS} failing execs:");
    r.check("  all failed with E2BIG or EFAULT", all_failed);
    match (before, after) {
        (Some(b), Some(a)) if b.abs_diff(a) <= tolerance => {
            println!("  MemFree unchanged: yes");
        }
        (Some(b), Some(a)) => {
            println!("  MemFree unchanged: no ({b} kB before, {a} kB after)");
            r.fail();
        }
        _ => {
            println!("  MemFree unreadable");
            r.fail();
        }
    }
    r.exit_status()
}
