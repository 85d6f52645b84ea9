//! `wait`: how children end and how the parent learns about it (`wait4`
//! status encoding, zombies, `WNOHANG`, `ECHILD`).
//!
//! The parent forks six children, in this order:
//!
//! | child | what it does                          | expected status      |
//! |-------|---------------------------------------|----------------------|
//! | 1-4   | `exit_group(0 / 1 / 42 / 255)`        | exited, that code    |
//! | 5     | writes to address 0 (NULL)            | killed by SIGSEGV    |
//! | 6     | blocks in `pause()` forever           | killed by SIGKILL    |
//!
//! It then reaps them by pid, in creation order (so the output does not
//! depend on scheduling): children 1-5 become zombies and `wait4(pid, 0)`
//! collects them; for child 6, `wait4(pid, WNOHANG)` first returns 0 (still
//! running), then the parent sends SIGKILL and reaps it. Finally `wait4(-1)`
//! with and without `WNOHANG` fails with `ECHILD`: no children are left.
//!
//! The children print nothing. Exit status 0 if every status matched.
#![no_std]
#![no_main]

use vmrt::io::{yes_no, Report};
use vmrt::println;
use vmrt::sys::proc::{
    exit_group, fork, kill, pause, setrlimit, wait4, Fork, Rlimit, WaitStatus, RLIMIT_CORE, WNOHANG,
};
use vmrt::sys::signal::{self, SIGKILL, SIGSEGV};
use vmrt::sys::Errno;

vmrt::entry!(main);

/// How a child ends.
#[derive(Clone, Copy)]
enum Ending {
    Exit(i32),
    /// Null-pointer write: SIGSEGV.
    Segv,
    /// Blocks until killed (by the parent's SIGKILL).
    Pause,
}

const CHILDREN: [Ending; 6] = [
    Ending::Exit(0),
    Ending::Exit(1),
    Ending::Exit(42),
    Ending::Exit(255),
    Ending::Segv,
    Ending::Pause,
];

/// Runs in the child; never returns.
fn run_child(ending: Ending) -> ! {
    match ending {
        Ending::Exit(code) => exit_group(code),
        Ending::Segv => {
            // No core file natively; a kernel without prlimit64 is fine too.
            let _ = setrlimit(RLIMIT_CORE, Rlimit { cur: 0, max: 0 });
            // SAFETY: deliberately faults; the default SIGSEGV action kills
            // the process. (Assembly, so the compiler cannot assume
            // anything about a null write.)
            unsafe {
                core::arch::asm!("mov byte ptr [{0}], 1", in(reg) core::hint::black_box(0usize));
            }
            exit_group(100) // not reached
        }
        Ending::Pause => loop {
            pause();
        },
    }
}

fn describe(ending: Ending) -> &'static str {
    match ending {
        Ending::Exit(0) => "exit(0)",
        Ending::Exit(1) => "exit(1)",
        Ending::Exit(42) => "exit(42)",
        Ending::Exit(255) => "exit(255)",
        Ending::Exit(_) => "exit(?)",
        Ending::Segv => "NULL write",
        Ending::Pause => "pause, then SIGKILL",
    }
}

/// Prints the `W*` macros' view of `status`; returns whether it matches
/// `ending`.
fn report_status(n: usize, ending: Ending, status: WaitStatus) -> bool {
    if status.exited() {
        println!(
            "child {n} ({}): WIFEXITED=yes WEXITSTATUS={} WIFSIGNALED={}",
            describe(ending),
            status.exit_status(),
            yes_no(status.signaled())
        );
    } else {
        let sig = status.term_signal();
        println!(
            "child {n} ({}): WIFEXITED=no WIFSIGNALED={} WTERMSIG={} ({})",
            describe(ending),
            yes_no(status.signaled()),
            sig,
            signal::name(sig).unwrap_or("?")
        );
    }
    match ending {
        Ending::Exit(code) => status.exited() && status.exit_status() == code,
        Ending::Segv => status.signaled() && status.term_signal() == SIGSEGV,
        Ending::Pause => status.signaled() && status.term_signal() == SIGKILL,
    }
}

fn main() -> i32 {
    let mut r = Report::new();
    let mut pids = [0i32; CHILDREN.len()];
    for (i, &ending) in CHILDREN.iter().enumerate() {
        match fork() {
            Ok(Fork::Child) => run_child(ending),
            Ok(Fork::Parent(pid)) => pids[i] = pid,
            Err(e) => {
                println!("fork {}: {e:?}", i + 1);
                return 1;
            }
        }
    }
    println!("forked {} children", CHILDREN.len());

    for (i, &ending) in CHILDREN.iter().enumerate() {
        let pid = pids[i];
        if let Ending::Pause = ending {
            // It never exits by itself: WNOHANG must find nothing to reap.
            match wait4(pid, WNOHANG) {
                Ok((0, _)) => println!("child {}: WNOHANG while it runs returns 0", i + 1),
                other => {
                    println!(
                        "child {}: WNOHANG while it runs: unexpected {other:?}",
                        i + 1
                    );
                    r.fail();
                }
            }
            if let Err(e) = kill(pid, SIGKILL) {
                println!("kill: {e:?}");
                r.fail();
            }
        }
        match wait4(pid, 0) {
            Ok((reaped, status)) => {
                if reaped != pid {
                    println!("child {}: wait4 returned another pid", i + 1);
                    r.fail();
                }
                if !report_status(i + 1, ending, status) {
                    r.fail();
                }
            }
            Err(e) => {
                println!("child {}: wait4 failed with {e:?}", i + 1);
                r.fail();
            }
        }
    }

    for (what, options) in [("wait4(-1, 0)", 0), ("wait4(-1, WNOHANG)", WNOHANG)] {
        match wait4(-1, options) {
            Err(e) => {
                println!("{what} with no children left: {e:?}");
                if e != Errno::ECHILD {
                    r.fail();
                }
            }
            Ok(other) => {
                println!("{what} with no children left: unexpected {other:?}");
                r.fail();
            }
        }
    }
    r.exit_status()
}
