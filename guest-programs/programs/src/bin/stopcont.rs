//! `stopcont`: job control signals. A child blocks in `pause()`; the parent stops it with
//! SIGSTOP and sees it stopped through `wait4(WUNTRACED)`, resumes it with SIGCONT and sees
//! that through `wait4(WCONTINUED)`, then kills it with SIGKILL and reaps it. A stopped child
//! also reports nothing to a plain `wait4(WNOHANG)`.
//!
//! The child prints nothing, so the output does not depend on scheduling. Exit status 0 if
//! every check passed.
#![no_std]
#![no_main]

use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::proc::{exit_group, fork, kill, pause, wait4, Fork, WCONTINUED, WNOHANG, WUNTRACED};
use vmrt::sys::signal::{SIGCONT, SIGKILL, SIGSTOP};

vmrt::entry!(main);

fn main() -> i32 {
    let pid = match fork() {
        Ok(Fork::Child) => loop {
            pause();
        },
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            println!("fork: {e:?}");
            exit_group(1)
        }
    };
    let mut r = Report::default();
    r.check("SIGSTOP sent", kill(pid, SIGSTOP).is_ok());
    match wait4(pid, WUNTRACED) {
        Ok((p, st)) => {
            r.check("wait4(WUNTRACED) reports the child", p == pid);
            r.check("WIFSTOPPED", st.stopped());
            println!("WSTOPSIG = {}", st.stop_signal());
        }
        Err(e) => println!("wait4(WUNTRACED): {e:?}"),
    }
    r.check(
        "a stopped child is not reported again (WNOHANG|WUNTRACED gives 0)",
        matches!(wait4(pid, WNOHANG | WUNTRACED), Ok((0, _))),
    );
    r.check("SIGCONT sent", kill(pid, SIGCONT).is_ok());
    match wait4(pid, WCONTINUED) {
        Ok((p, st)) => {
            r.check("wait4(WCONTINUED) reports the child", p == pid);
            r.check("WIFCONTINUED", st.continued());
        }
        Err(e) => println!("wait4(WCONTINUED): {e:?}"),
    }
    r.check("SIGKILL sent", kill(pid, SIGKILL).is_ok());
    match wait4(pid, 0) {
        Ok((p, st)) => {
            r.check("reaped", p == pid);
            r.check(
                "killed by SIGKILL",
                st.signaled() && st.term_signal() == SIGKILL,
            );
        }
        Err(e) => println!("wait4: {e:?}"),
    }
    r.exit_status()
}
