//! `vfork`: the parent of `vfork()` sleeps in state D ("disk sleep",
//! Linux's killable wait for the child) until the child exits or execs.
//!
//! Twice, the child reads `/proc/<parent>/stat` and prints the parent's
//! state letter (retrying briefly: natively, on a multi-core host, the child
//! can start before the parent has gone to sleep), then:
//! 1. exits with status 3;
//! 2. execs `<bin>/exitcode 5` (the programs' directory is `$VMSCOPE_BIN`,
//!    or `/bin`).
//!
//! The parent prints that it resumed and how the child ended. The child
//! writes no memory the parent reads afterwards: a vfork child borrows the
//! parent's memory natively, while the guest kernel gives it a copy.
//! Everything the child needs (paths, argv) is built before `vfork`, and the
//! system call is made inline so that no return address on the shared stack
//! is reused by the child.
//!
//! Exit status 0 if both children ended as expected (the state letters are
//! checked by comparing the output with a native run).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use alloc::vec::Vec;
use core::ffi::c_char;
use core::ptr;

use vmrt::println;
use vmrt::sys::fs::{close, open, read, O_RDONLY};
use vmrt::sys::nr::{SYS_sched_yield, SYS_vfork};
use vmrt::sys::proc::{execve, exit_group, getpid, wait4};

vmrt::entry!(main);

/// Attempts at reading the parent's state before settling for what is seen.
const STATE_TRIES: u32 = 10_000;

/// `vfork()` as one inline system call (no call/return on the shared stack).
#[inline(always)]
fn vfork() -> isize {
    let ret: isize;
    // SAFETY: vfork returns twice, in the same frame; the child only makes
    // system calls and exits or execs.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") SYS_vfork as isize => ret,
            lateout("rcx") _, lateout("r11") _,
            options(nostack)
        );
    }
    ret
}

/// The state letter in `/proc/<pid>/stat` (third field), read into `buf`.
fn state_of(path: &CString, buf: &mut [u8; 512]) -> u8 {
    let Ok(fd) = open(path, O_RDONLY, 0) else {
        return b'?';
    };
    let n = read(fd, buf).unwrap_or(0);
    let _ = close(fd);
    let text = &buf[..n];
    match text.iter().rposition(|&b| b == b')') {
        Some(i) if i + 2 < n => text[i + 2],
        _ => b'?',
    }
}

/// In the child: the parent's state, waiting a little for it to reach D.
fn parent_state(path: &CString) -> u8 {
    let mut buf = [0u8; 512];
    let mut s = b'?';
    for _ in 0..STATE_TRIES {
        s = state_of(path, &mut buf);
        if s == b'D' {
            break;
        }
        // SAFETY: sched_yield has no arguments and no memory effects.
        unsafe { vmrt::sys::syscall0(SYS_sched_yield) };
    }
    s
}

fn main() -> i32 {
    let me = getpid();
    let stat_path = CString::new(format!("/proc/{me}/stat")).expect("no NUL");
    let bin = match vmrt::env::var("VMSCOPE_BIN") {
        Some(d) => alloc::string::String::from_utf8_lossy(d.as_bytes()).into_owned(),
        None => "/bin".into(),
    };
    let exe = CString::new(format!("{bin}/exitcode")).expect("no NUL");
    let args = [
        CString::new("exitcode").unwrap(),
        CString::new("5").unwrap(),
    ];
    let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(ptr::null());
    let envp: [*const c_char; 1] = [ptr::null()];

    let mut ok = true;
    for (case, want) in [("exits", 3), ("execs exitcode 5", 5)] {
        let pid = vfork();
        if pid == 0 {
            let s = parent_state(&stat_path);
            println!("child ({case}): parent state {}", s as char);
            if want == 3 {
                exit_group(3);
            }
            // SAFETY: argv/envp are NULL-terminated arrays of C strings built
            // before vfork.
            let _ = unsafe { execve(&exe, argv.as_ptr(), envp.as_ptr()) };
            exit_group(127);
        }
        if pid < 0 {
            println!("vfork failed: {pid}");
            return 1;
        }
        match wait4(pid as i32, 0) {
            Ok((_, st)) => {
                println!(
                    "parent: resumed; child {case}: exited with {}",
                    st.exit_status()
                );
                ok &= st.exited() && st.exit_status() == want;
            }
            Err(e) => {
                println!("wait4: {e:?}");
                ok = false;
            }
        }
    }
    if ok {
        0
    } else {
        1
    }
}
