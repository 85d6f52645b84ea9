//! The binaries people have ([10]): programs built by other toolchains than ours, run under
//! the guest kernel and compared with the same binary run natively (stdout, stderr, exit
//! status) and, where QEMU is installed, with the same run under QEMU.
//!
//! - C programs of `guest-programs/c/`, built here with `musl-gcc -static` (Debian's
//!   musl-tools; `.ci/run` installs it): printf of integers, doubles and long doubles,
//!   libm, malloc churn, qsort, strings, setjmp/longjmp, fork/exec/wait, pipes, signals with
//!   handlers, mmap, and the FPU state in signal frames; the libc basics also dynamically
//!   linked (musl's `ld-musl-x86_64.so.1`, found on the host and put into the guest).
//! - Debian's static busybox: shell pipelines of applets, and `#!` scripts run by the guest
//!   kernel (binfmt_script: arguments, nesting, ELOOP, ENOEXEC, EACCES) and by
//!   `vmscope run SCRIPT`.

mod common;

use common::{assert_same_text, native_command, qemu_present, root, stderr, stdout, vmscope};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Serialises the builds (tests run in parallel threads).
static BUILD: Mutex<()> = Mutex::new(());

/// `guest-programs/c/NAME.c` built with `musl-gcc -static -O2` into `target/c-programs/`
/// (rebuilt when the source is newer).
fn c_program(name: &str) -> PathBuf {
    musl_gcc(name, true)
}

/// [`c_program`], statically linked or not (then `NAME-dynamic`, a PIE whose interpreter
/// is musl's `/lib/ld-musl-x86_64.so.1`).
fn musl_gcc(name: &str, static_link: bool) -> PathBuf {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let src = root().join("guest-programs/c").join(format!("{name}.c"));
    let dir = root().join("target/c-programs");
    std::fs::create_dir_all(&dir).expect("create target/c-programs");
    let out = dir.join(if static_link {
        name.to_string()
    } else {
        format!("{name}-dynamic")
    });
    let fresh = match (std::fs::metadata(&src), std::fs::metadata(&out)) {
        (Ok(s), Ok(o)) => o.modified().ok() >= s.modified().ok(),
        _ => false,
    };
    if !fresh {
        let o = Command::new("musl-gcc")
            .args(static_link.then_some("-static"))
            .args(["-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-lm")
            .output()
            .unwrap_or_else(|e| {
                panic!("musl-gcc: {e} (install Debian's musl-tools, as .ci/run does)")
            });
        assert!(
            o.status.success(),
            "musl-gcc {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    out
}

/// The exit status as the shell shows it (128 + signal for a signal death).
fn shell_status(o: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    o.status
        .code()
        .or_else(|| o.status.signal().map(|s| 128 + s))
}

/// Run `bin` with `args` under vmscope and natively (in a scratch working directory, with
/// argv[0] = /bin/NAME as the guest has it) and compare; then under QEMU if present.
fn same_as_native(bin: &Path, args: &[&str]) -> Output {
    let guest = same_as_native_only(bin, args);
    same_under_qemu(bin, args, &guest);
    guest
}

/// [`same_as_native`] without the QEMU run.
fn same_as_native_only(bin: &Path, args: &[&str]) -> Output {
    let name = bin.file_name().and_then(|n| n.to_str()).expect("file name");
    let mut v = vec!["run", bin.to_str().expect("UTF-8 path")];
    v.extend_from_slice(args);
    let guest = vmscope(&v);
    let native = native_command(bin, &format!("/bin/{name}"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run natively");
    assert_same_text(
        &format!("{name} {args:?}: stdout vs native ({})", stderr(&guest)),
        &stdout(&guest),
        &stdout(&native),
    );
    assert_eq!(
        shell_status(&guest),
        shell_status(&native),
        "{name} {args:?}: exit status vs native; stderr: {}",
        stderr(&guest)
    );
    guest
}

/// Run `bin` with `args` under QEMU (if installed): the same stdout and status as the
/// vmscope run `a`.
fn same_under_qemu(bin: &Path, args: &[&str], a: &Output) {
    if !qemu_present() {
        return;
    }
    let name = bin.file_name().and_then(|n| n.to_str()).expect("file name");
    let mut v = vec!["run", "--qemu", bin.to_str().expect("UTF-8 path")];
    v.extend_from_slice(args);
    let b = vmscope(&v);
    assert_same_text(
        &format!("{name} {args:?}: stdout under QEMU ({})", stderr(&b)),
        &stdout(&b),
        &stdout(a),
    );
    assert_eq!(b.status.code(), a.status.code(), "{name}: QEMU status");
}

#[test]
fn musl_c_libc_basics_match_native() {
    same_as_native(&c_program("cbasics"), &[]);
}

#[test]
fn musl_c_processes_pipes_signals_mmap_match_native() {
    same_as_native(&c_program("cproc"), &[]);
}

#[test]
fn musl_c_fpu_state_in_signal_frames_matches_native() {
    let bin = c_program("fpsignal");
    same_as_native_only(&bin, &[]);
    // QEMU's TCG raises no #XM for unmasked SSE exceptions (README, QEMU deviations): the
    // cross-check leaves those cases out.
    same_as_native(&bin, &["no-simd-traps"]);
}

/// Debian's static busybox (glibc, `busybox-static`): its shell runs pipelines of applets.
const BUSYBOX: &str = "/bin/busybox";

/// Shell pipelines over the applets people script with.
const BUSYBOX_SCRIPT: &str = r#"set -e
seq 1 200 | awk '{s+=$1*$1} END {print "sum of squares", s}'
printf '%s\n' pear apple fig banana | sort | tr a-z A-Z
echo "the quick brown fox" | sed -e 's/quick/slow/' -e 's/\(b[a-z]*\)/[\1]/'
seq 10 | md5sum
seq 100 | sha256sum
expr 7 \* 6 + 1
if test 3 -lt 5 && [ "abc" = abc ]; then echo test ok; fi
x=0; for i in $(seq 5); do x=$((x + i)); done; echo loop $x
echo a,b,c | cut -d, -f2
seq 20 | head -n 3 | tail -n 1
echo "$(echo nested $(echo subst))"
printf 'b 2\na 1\nc 3\n' | sort -k2 -n | awk '{printf "%s=%s;", $1, $2} END {print ""}'
seq 1000 | wc -l
yes | head -n 5 | uniq -c
awk 'BEGIN { printf "%.6f %d %s\n", atan2(1, 1) * 4, 2^20, substr("busybox", 2, 3) }'
mkdir -p /tmp/bb && cd /tmp/bb && echo data > f && cp f g && ls && cat g && rm f g
cd / && rmdir /tmp/bb
sh -c 'exit 3' || echo "child shell exit $?"
printf 'pear\napple\nfig\n' > /tmp/sorted.in && sort /tmp/sorted.in && sort -r /tmp/sorted.in | head -1
rm /tmp/sorted.in
TZ=EST5 date -d @86400 '+%F %T %Z'
TZ=CET-1CEST,M3.5.0,M10.5.0/3 date -d @15552000 '+%F %T %Z'
cut -d' ' -f1-2 /proc/version
echo done
"#;

#[test]
fn busybox_static_shell_pipelines_match_native() {
    let bin = Path::new(BUSYBOX);
    assert!(
        bin.exists(),
        "{BUSYBOX} missing: install Debian's busybox-static (as .ci/run does)"
    );
    same_as_native(bin, &["sh", "-c", BUSYBOX_SCRIPT]);
}

/// The kernel log buffer through busybox's dmesg (the syslog system call): the boot
/// messages are there with levels and timestamps, even though `quiet` kept them off the
/// console; `dmesg -c` clears it. (Guest-only: the host's log differs.)
#[test]
fn busybox_dmesg_reads_the_kernel_log_buffer() {
    let bin = Path::new(BUSYBOX);
    assert!(bin.exists(), "{BUSYBOX} missing: install busybox-static");
    let o = vmscope(&[
        "run",
        BUSYBOX,
        "sh",
        "-c",
        "dmesg | head -n 2; dmesg -r | head -n 1 | cut -c1-3; dmesg -c > /dev/null; dmesg | wc -l",
    ]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}\n{}", stderr(&o));
    assert!(
        lines[0].ends_with("] vmscope kernel 0.1.0 (x86_64, PVH boot)"),
        "{out}"
    );
    assert!(
        lines[1].contains("] Command line: quiet console=ttyS1"),
        "{out}"
    );
    assert_eq!(lines[2], "<6>", "raw records carry the level: {out}");
    assert_eq!(lines[3], "0", "dmesg -c clears the buffer: {out}");
}

/// `vmscope run --env`: the environment as given (sorted by name, defaults replaced), and
/// TZ naming a zone brings the host's zone file, so a dynamically linked `date` shows the
/// same local time as natively.
#[test]
fn run_env_sets_the_environment_and_tz_brings_its_zone_file() {
    for tz in [
        "Europe/Paris",
        ":America/New_York",
        "EST5EDT",
        "CET-1CEST,M3.5.0,M10.5.0/3",
    ] {
        let args = ["-d", "@15552000", "+%F %T %Z %z"];
        let tz_env = format!("TZ={tz}");
        let mut v = vec!["run", "--env", &tz_env, "/usr/bin/date"];
        v.extend_from_slice(&args);
        let guest = vmscope(&v);
        let native = Command::new("/usr/bin/date")
            .env_clear()
            .env("TZ", tz)
            .args(args)
            .output()
            .expect("run date natively");
        assert_same_text(
            &format!("date with TZ={tz} ({})", stderr(&guest)),
            &stdout(&guest),
            &stdout(&native),
        );
    }
    let o = vmscope(&[
        "run",
        "--env",
        "FOO=bar baz",
        "--env",
        "HOME=/tmp",
        "/usr/bin/env",
    ]);
    assert_eq!(
        stdout(&o),
        "FOO=bar baz\nHOME=/tmp\nPATH=/bin\nTERM=dumb\nVMSCOPE_BIN=/bin\n",
        "{}",
        stderr(&o)
    );
    let bad = vmscope(&["run", "--env", "NOVALUE", "hello"]);
    assert_eq!(bad.status.code(), Some(2), "a malformed --env is bad input");
}

#[test]
fn musl_c_sendfile_and_copy_file_range_match_native() {
    same_as_native(&c_program("ccopy"), &[]);
}

#[test]
fn musl_c_dynamically_linked_matches_native() {
    same_as_native(&musl_gcc("cbasics", false), &[]);
}

/// `#!` scripts as the guest kernel runs them (binfmt_script), from a shell: arguments,
/// an interpreter argument, a script as interpreter, blanks, ELOOP, a missing interpreter,
/// a script without the execute bit.
const SCRIPTS: &str = r#"cd /tmp
printf '#!/bin/busybox sh\necho "script: $0 [$1] [$2]"\n' > s1; chmod +x s1
./s1 a "b c"
printf '#!/tmp/s1 extra words\n' > s2; chmod +x s2
./s2 x
printf '#!   /bin/busybox   awk   -f  \nBEGIN { print "awk says", ARGV[1] }\n' > s3; chmod +x s3
./s3 hello
printf '#!/bin/busybox sh\necho "$#: $*"\n' > s3b; chmod +x s3b
./s3b 1 2 3
printf '#!/tmp/s4\n' > s4; chmod +x s4
./s4 2>/dev/null; echo "self loop: $?"
printf '#!/nonexistent/interp\n' > s5; chmod +x s5
./s5 2>/dev/null; echo "missing interpreter: $?"
printf '#!/bin/busybox sh\necho no exec bit\n' > s6
./s6 2>/dev/null; echo "no exec bit: $?"
printf '#!/bin/busybox sh\nbasename $(readlink /proc/$$/exe); tr "\\0" " " < /proc/$$/cmdline; echo\n' > s7; chmod +x s7
./s7 one
rm -f s1 s2 s3 s3b s4 s5 s6 s7
"#;

#[test]
fn scripts_run_by_the_guest_kernel_match_native() {
    let bin = Path::new(BUSYBOX);
    assert!(bin.exists(), "{BUSYBOX} missing: install busybox-static");
    same_as_native(bin, &["sh", "-c", SCRIPTS]);
}

#[test]
fn vmscope_run_takes_a_script_and_its_interpreter_from_the_host() {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} missing: install busybox-static"
    );
    let dir = root().join("target/c-programs");
    std::fs::create_dir_all(&dir).expect("create target/c-programs");
    let script = dir.join("hello-script");
    std::fs::write(
        &script,
        "#!/bin/busybox sh\necho \"$(basename $0) says hello to $1\"\nseq 3 | busybox awk '{s+=$1} END {print s}'\nexit 5\n",
    )
    .expect("write the script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let o = same_as_native(&script, &["you"]);
    assert_eq!(stdout(&o), "hello-script says hello to you\n6\n");
    assert_eq!(o.status.code(), Some(5));
}

/// `guest-programs/rust-std`, a Rust std program built here for x86_64-unknown-linux-musl
/// (static; `rustup target add x86_64-unknown-linux-musl`, as `.ci/run` does), in its own
/// target directory so that the build does not wait for this test's cargo lock.
fn rust_std_program() -> PathBuf {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = root().join("guest-programs/rust-std");
    let target_dir = root().join("target/rust-std");
    let o = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-linux-musl",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        o.status.success(),
        "building guest-programs/rust-std (needs `rustup target add x86_64-unknown-linux-musl`): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    target_dir.join("x86_64-unknown-linux-musl/release/stddemo")
}

#[test]
fn rust_std_program_matches_native() {
    // Collections, float formatting, a caught panic, std::fs on /tmp, a child process,
    // then 4 threads with a Mutex and a channel.
    let bin = rust_std_program();
    same_as_native(&bin, &[]);
    same_as_native(&bin, &["threads"]);
}

#[test]
fn musl_c_pthreads_match_native() {
    // Join results, mutex and condition variable, TLS, getpid/gettid, pthread_kill, a
    // detached thread, a timed wait, exit() from a thread (status 42).
    let bin = c_program("cthreads");
    let o = same_as_native(&bin, &[]);
    assert_eq!(o.status.code(), Some(42));
    // main calls pthread_exit: the process lives until its last thread ends.
    same_as_native(&bin, &["main-exits"]);
}

#[test]
fn musl_c_clone3_robust_futexes_proc_tasks_exec_from_thread_match_native() {
    // clone3 and its argument checks, exit signals and __WALL, CLONE_PARENT,
    // CLONE_CLEAR_SIGHAND, /proc/PID/task and status, a robust mutex whose owner died,
    // execve from a thread other than main, and the wall clock.
    let bin = c_program("cclone");
    let o = same_as_native(&bin, &[]);
    let out = stdout(&o);
    for line in [
        "robust lock after the owner died: EOWNERDEAD",
        "new image: same pid=1 tid==pid=1 threads=1 tasks=1",
        "/proc/self/task entries: 4",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn musl_c_restartable_sequences_match_native() {
    // rseq registration and its errors, a critical section aborted by a signal (without
    // the kernel's fix-up the program spins for ever), a corrupt descriptor (SIGSEGV).
    let bin = c_program("crseq");
    let o = same_as_native(&bin, &[]);
    assert!(stdout(&o).contains("section aborted: 1, handler ran: 1"));
}

/// Dynamically linked host programs (Debian's glibc ones): `vmscope run` puts ld.so and
/// the libraries they need into the guest at their own paths.
#[test]
fn dynamically_linked_glibc_programs_match_native() {
    let runs: &[(&str, &[&str])] = &[
        ("/bin/echo", &["hello", "from", "glibc"]),
        ("/usr/bin/seq", &["-s,", "1", "3", "20"]),
        (
            "/usr/bin/printf",
            &["%s %05.2f %x\\n", "pi", "3.14159", "255"],
        ),
        ("/usr/bin/expr", &["6", "*", "7"]),
        ("/usr/bin/date", &["-u", "-d", "@86400", "+%F %T"]),
        ("/bin/ls", &["-d", "/proc", "/tmp"]),
        // sort on a file: its own command line, NUL-separated records.
        ("/usr/bin/sort", &["-z", "/proc/self/cmdline"]),
        ("/bin/cat", &["/proc/self/cmdline"]),
        (
            "/usr/bin/awk",
            &["BEGIN { printf \"%d %.6f\\n\", 2^10, sqrt(2) }"],
        ),
    ];
    for (prog, args) in runs {
        let p = Path::new(prog);
        if !p.exists() {
            panic!("{prog} missing on this host (Debian's coreutils/mawk)");
        }
        same_as_native(p, args);
    }
}
