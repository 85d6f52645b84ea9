//! `execchain`: `execve` replaces the process image; what survives it and
//! what does not.
//!
//! The other programs are found in the directory named by the environment
//! variable `VMSCOPE_BIN`, or `/bin` (where the guest kernel's initramfs
//! has them). Natively: `VMSCOPE_BIN=$PWD/target/x86_64-unknown-none/release
//! ./execchain`. The directory is never printed.
//!
//! Stage 1 (no arguments):
//!
//! 1. `execve` of a nonexistent path fails with `ENOENT`, of a directory
//!    with `EACCES`; the process goes on.
//! 2. fork + `execve("<bin>/exitcode", ["exitcode", "7"])` + `wait4`: the
//!    child's status is "exited, 7".
//! 3. fork + `execve("<bin>/args", ["args", "one", "two words", "three"],
//!    ["A=1", "B=two"])` + `wait4`: `args` prints exactly that argv/envp.
//! 4. Sets up state to test across its own exec: a SIGUSR1 handler, SIGUSR2
//!    ignored, one pipe with `O_CLOEXEC` and one without. Then it execs
//!    itself as `execchain stage2`, passing its pid and the descriptor
//!    numbers in a constructed environment.
//!
//! Stage 2 checks that the pid is unchanged, the handled signal was reset
//! to `SIG_DFL` while the ignored one stays ignored, the `O_CLOEXEC`
//! descriptor is closed and the other still open; then it execs
//! `<bin>/args x y z` with the environment `["HOME=/", "PATH=/bin"]`, whose
//! output ends the run (exit status 0).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_char;
use core::ptr;

use vmrt::io::{yes_no, Report};
use vmrt::println;
use vmrt::sys::fs::{fstat, pipe2, O_CLOEXEC};
use vmrt::sys::proc::{execve, exit_group, fork, getpid, wait4, Fork};
use vmrt::sys::signal::{sigaction, SigAction, SIGUSR1, SIGUSR2, SIG_DFL, SIG_IGN};
use vmrt::sys::Errno;

vmrt::entry!(main);

/// The directory holding the bundled programs.
fn bin_dir() -> String {
    match vmrt::env::var("VMSCOPE_BIN") {
        Some(dir) => String::from_utf8_lossy(dir.as_bytes()).into_owned(),
        None => String::from("/bin"),
    }
}

/// `<bin>/<name>` as a C string.
fn program(name: &str) -> CString {
    CString::new(format!("{}/{name}", bin_dir())).expect("no NUL in the path")
}

/// Owned C strings plus the NULL-terminated pointer array `execve` takes.
struct CArray {
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CArray {
    fn new<S: AsRef<str>>(items: &[S]) -> CArray {
        let strings: Vec<CString> = items
            .iter()
            .map(|s| CString::new(s.as_ref()).expect("no NUL"))
            .collect();
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(ptr::null());
        CArray {
            _strings: strings,
            ptrs,
        }
    }
    fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

/// `execve(path, argv, envp)`; returns the error if it fails.
fn exec(path: &CString, argv: &[&str], envp: &[String]) -> Errno {
    let (argv, envp) = (CArray::new(argv), CArray::new(envp));
    // SAFETY: both arrays are NULL-terminated arrays of C strings that live
    // until execve returns (it only returns on failure).
    match unsafe { execve(path, argv.as_ptr(), envp.as_ptr()) } {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// Forks a child that execs `name` with `argv`/`envp`, waits for it and
/// prints its status; returns whether it exited with `want`.
fn run(name: &str, argv: &[&str], envp: &[String], want: i32) -> bool {
    let path = program(name);
    match fork() {
        Ok(Fork::Child) => {
            let e = exec(&path, argv, envp);
            println!("child: execve {name} failed: {e:?}");
            exit_group(127)
        }
        Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
            Ok((_, st)) => {
                println!(
                    "{name} child: exited = {}, status = {}",
                    yes_no(st.exited()),
                    st.exit_status()
                );
                st.exited() && st.exit_status() == want
            }
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

extern "C" fn on_usr1(_sig: i32) {}

fn stage1() -> i32 {
    let mut r = Report::new();
    let e = exec(&program("no-such-program"), &["no-such-program"], &[]);
    println!("execve of a nonexistent path: {e:?}");
    if e != Errno::ENOENT {
        r.fail();
    }
    let dir = CString::new(bin_dir()).expect("no NUL");
    let e = exec(&dir, &["bin"], &[]);
    println!("execve of a directory: {e:?}");
    if e != Errno::EACCES {
        r.fail();
    }

    println!("fork + exec exitcode 7:");
    r.check(
        "  status as expected",
        run("exitcode", &["exitcode", "7"], &[], 7),
    );
    println!("fork + exec args with 3 arguments and 2 variables:");
    let env = [String::from("A=1"), String::from("B=two")];
    r.check(
        "  status as expected",
        run("args", &["args", "one", "two words", "three"], &env, 0),
    );
    if r.failures() != 0 {
        return 1;
    }

    // State whose fate across execve stage 2 checks.
    // SAFETY: an empty handler.
    let ok = unsafe {
        sigaction(SIGUSR1, Some(&SigAction::handler(on_usr1, 0))).is_ok()
            && sigaction(SIGUSR2, Some(&SigAction::ignore())).is_ok()
    };
    let (Ok(cloexec), Ok(kept)) = (pipe2(O_CLOEXEC), pipe2(0)) else {
        println!("pipe2 failed");
        return 1;
    };
    if !ok {
        println!("sigaction failed");
        return 1;
    }
    let mut env = Vec::new();
    if let Some(dir) = vmrt::env::var("VMSCOPE_BIN") {
        env.push(format!("VMSCOPE_BIN={dir}"));
    }
    env.push(format!("STAGE1_PID={}", getpid()));
    env.push(format!("CLOEXEC_FD={}", cloexec.0));
    env.push(format!("KEPT_FD={}", kept.0));
    println!("stage 1: execve execchain stage2");
    let e = exec(&program("execchain"), &["execchain", "stage2"], &env);
    println!("execve execchain failed: {e:?}");
    1
}

/// An integer environment variable (-1 if missing or malformed).
fn env_int(key: &str) -> i32 {
    vmrt::env::var(key)
        .and_then(|v| v.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

fn stage2() -> i32 {
    let mut r = Report::new();
    println!("stage 2: argc = {}", vmrt::env::argc());
    r.check(
        "  pid unchanged by execve",
        env_int("STAGE1_PID") == getpid(),
    );
    // SAFETY: querying only.
    let (usr1, usr2) = unsafe { (sigaction(SIGUSR1, None), sigaction(SIGUSR2, None)) };
    r.check(
        "  handled SIGUSR1 reset to SIG_DFL",
        usr1.is_ok_and(|a| a.handler == SIG_DFL),
    );
    r.check(
        "  ignored SIGUSR2 still ignored",
        usr2.is_ok_and(|a| a.handler == SIG_IGN),
    );
    r.check(
        "  O_CLOEXEC descriptor closed",
        fstat(env_int("CLOEXEC_FD")) == Err(Errno::EBADF),
    );
    r.check(
        "  other descriptor still open",
        fstat(env_int("KEPT_FD")).is_ok(),
    );
    if r.failures() != 0 {
        return 1;
    }
    println!("stage 2: execve args x y z");
    let env = [String::from("HOME=/"), String::from("PATH=/bin")];
    let e = exec(&program("args"), &["args", "x", "y", "z"], &env);
    println!("execve args failed: {e:?}");
    1
}

fn main() -> i32 {
    match vmrt::env::arg(1) {
        Some(a) if a.as_bytes() == b"stage2" => stage2(),
        _ => stage1(),
    }
}
