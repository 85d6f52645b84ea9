//! `fileshare`: open-file descriptions are shared, as POSIX says. A file offset moved
//! through one descriptor is seen through its `dup`, its `fcntl(F_DUPFD)` copy, a forked
//! child's copy and across `execve`; a second `open` has its own. Status flags
//! (`F_SETFL` O_NONBLOCK, O_APPEND) belong to the description, the close-on-exec flag to
//! the descriptor (`dup3(O_CLOEXEC)`, `F_DUPFD_CLOEXEC`, `F_SETFD`). Also the errno rules
//! of dup2/dup3/fcntl, pread/readv, ftruncate, and a memfd.
//!
//! The file read is this program's own binary, found through `VMSCOPE_BIN` (the host's
//! build directory natively, `/bin` in the guest), so both runs read the same bytes.
//! Prints one `check: yes|no` line per check; exit status 0 if all passed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::fs::{close, lseek, open, pipe2, read, write, O_APPEND, O_CLOEXEC, O_NONBLOCK};
use vmrt::sys::fs::{O_DIRECTORY, O_RDONLY, SEEK_CUR, SEEK_SET};
use vmrt::sys::nr::*;
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};
use vmrt::sys::{call, Errno};

vmrt::entry!(main);

const F_DUPFD: usize = 0;
const F_GETFD: usize = 1;
const F_SETFD: usize = 2;
const F_GETFL: usize = 3;
const F_SETFL: usize = 4;
const F_DUPFD_CLOEXEC: usize = 1030;
const FD_CLOEXEC: usize = 1;
const O_ACCMODE: usize = 3;

fn bin_dir() -> String {
    match vmrt::env::var("VMSCOPE_BIN") {
        Some(d) => String::from(d.to_str().unwrap_or("/bin")),
        None => String::from("/bin"),
    }
}

fn me() -> CString {
    CString::new(format!("{}/fileshare", bin_dir())).unwrap_or_default()
}

fn sys(n: usize, args: &[usize]) -> Result<usize, Errno> {
    // SAFETY: every pointer passed by this program is valid for the call, or deliberately
    // bad where the kernel must answer EFAULT.
    unsafe { call(n, args) }
}

fn pos(fd: i32) -> i64 {
    lseek(fd, 0, SEEK_CUR).map_or(-1, |p| p as i64)
}

fn fcntl(fd: i32, cmd: usize, arg: usize) -> Result<usize, Errno> {
    sys(SYS_fcntl, &[fd as usize, cmd, arg])
}

fn main() -> i32 {
    if vmrt::env::arg(1).and_then(|a| a.to_str()) == Some("exec") {
        return after_exec();
    }
    let mut r = Report::new();
    let path = me();
    let Ok(fd) = open(&path, O_RDONLY, 0) else {
        println!("cannot open {}", bin_dir());
        return 1;
    };
    let mut b = [0u8; 4];
    r.check(
        "read the ELF magic",
        read(fd, &mut b) == Ok(4) && b == *b"\x7fELF",
    );

    // dup shares the offset both ways.
    let d = sys(SYS_dup, &[fd as usize]).map_or(-1, |v| v as i32);
    r.check("dup gives the lowest free descriptor", d == fd + 1);
    r.check("dup sees the offset", pos(d) == 4);
    let _ = read(d, &mut b);
    r.check("the original sees the dup's read", pos(fd) == 8);
    let _ = lseek(fd, 100, SEEK_SET);
    r.check("the dup sees the original's lseek", pos(d) == 100);

    // A second open is another description.
    let other = open(&path, O_RDONLY, 0).unwrap_or(-1);
    r.check("a second open starts at 0", pos(other) == 0);
    let _ = read(other, &mut b);
    r.check("and does not move the first", pos(fd) == 100);

    // fork: the child's read moves the parent's offset.
    match fork() {
        Ok(Fork::Child) => {
            let mut c = [0u8; 16];
            let _ = read(fd, &mut c);
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => {
            let _ = wait4(pid, 0);
            r.check("a child's read moves the parent's offset", pos(fd) == 116);
            r.check("and the dup's", pos(d) == 116);
        }
        Err(_) => r.fail(),
    }

    // pread/pwrite leave the offset alone; readv advances it.
    let mut p = [0u8; 3];
    let got = sys(SYS_pread64, &[fd as usize, p.as_mut_ptr() as usize, 3, 1]);
    r.check("pread at 1 reads ELF", got == Ok(3) && p == *b"ELF");
    r.check("pread keeps the offset", pos(fd) == 116);
    let _ = lseek(fd, 0, SEEK_SET);
    let mut v1 = [0u8; 2];
    let mut v2 = [0u8; 2];
    let iov = [v1.as_mut_ptr() as usize, 2, v2.as_mut_ptr() as usize, 2];
    let got = sys(SYS_readv, &[fd as usize, iov.as_ptr() as usize, 2]);
    r.check(
        "readv fills both buffers",
        got == Ok(4) && v1 == *b"\x7fE" && v2 == *b"LF",
    );
    r.check("readv advances the shared offset", pos(d) == 4);
    r.check(
        "pread with a negative offset: EINVAL",
        sys(
            SYS_pread64,
            &[fd as usize, p.as_mut_ptr() as usize, 3, usize::MAX],
        ) == Err(Errno::EINVAL),
    );
    r.check(
        "write to a read-only descriptor: EBADF",
        write(fd, b"x") == Err(Errno::EBADF),
    );

    // Descriptor flags are per descriptor.
    r.check(
        "F_GETFD of a plain open is 0",
        fcntl(fd, F_GETFD, 0) == Ok(0),
    );
    r.check(
        "dup3 with O_CLOEXEC",
        sys(SYS_dup3, &[fd as usize, 40, O_CLOEXEC as usize]) == Ok(40),
    );
    r.check(
        "F_GETFD says FD_CLOEXEC",
        fcntl(40, F_GETFD, 0) == Ok(FD_CLOEXEC),
    );
    r.check(
        "the original stays without it",
        fcntl(fd, F_GETFD, 0) == Ok(0),
    );
    r.check("the dup3 copy shares the offset", pos(40) == 4);
    r.check(
        "dup3 to the same descriptor: EINVAL",
        sys(SYS_dup3, &[fd as usize, fd as usize, 0]) == Err(Errno::EINVAL),
    );
    r.check(
        "dup3 with unknown flags: EINVAL",
        sys(SYS_dup3, &[fd as usize, 41, 1]) == Err(Errno::EINVAL),
    );
    r.check(
        "dup2 to the same descriptor returns it",
        sys(SYS_dup2, &[fd as usize, fd as usize]) == Ok(fd as usize),
    );
    r.check(
        "dup2 of a closed descriptor: EBADF",
        sys(SYS_dup2, &[39, 45]) == Err(Errno::EBADF),
    );
    r.check(
        "dup2 beyond RLIMIT_NOFILE: EBADF",
        sys(SYS_dup2, &[fd as usize, 1 << 30]) == Err(Errno::EBADF),
    );
    r.check(
        "dup of a negative descriptor: EBADF",
        sys(SYS_dup, &[usize::MAX]) == Err(Errno::EBADF),
    );
    r.check("F_DUPFD from 20", fcntl(fd, F_DUPFD, 20) == Ok(20));
    r.check("F_DUPFD from 20 again", fcntl(fd, F_DUPFD, 20) == Ok(21));
    r.check(
        "F_DUPFD_CLOEXEC",
        fcntl(fd, F_DUPFD_CLOEXEC, 20) == Ok(22) && fcntl(22, F_GETFD, 0) == Ok(FD_CLOEXEC),
    );
    r.check(
        "F_SETFD 0 clears close-on-exec",
        fcntl(22, F_SETFD, 0) == Ok(0) && fcntl(22, F_GETFD, 0) == Ok(0),
    );
    r.check(
        "F_DUPFD past RLIMIT_NOFILE: EINVAL",
        fcntl(fd, F_DUPFD, 1 << 30) == Err(Errno::EINVAL),
    );
    r.check(
        "fcntl with an unknown command: EINVAL",
        fcntl(fd, 0x7777, 0) == Err(Errno::EINVAL),
    );
    r.check(
        "fcntl on a closed descriptor: EBADF",
        fcntl(39, F_GETFL, 0) == Err(Errno::EBADF),
    );
    r.check(
        "F_GETFL: read-only access mode",
        fcntl(fd, F_GETFL, 0).map(|f| f & O_ACCMODE) == Ok(0),
    );

    // Status flags are per description: O_NONBLOCK through one pipe descriptor shows in
    // its dup.
    let Ok((rd, wr)) = pipe2(0) else {
        println!("pipe2 failed");
        return 1;
    };
    let rd2 = sys(SYS_dup, &[rd as usize]).map_or(-1, |v| v as i32);
    let fl = fcntl(rd, F_GETFL, 0).unwrap_or(0);
    r.check(
        "F_SETFL O_NONBLOCK",
        fcntl(rd, F_SETFL, fl | O_NONBLOCK as usize) == Ok(0),
    );
    r.check(
        "the dup has O_NONBLOCK",
        fcntl(rd2, F_GETFL, 0).is_ok_and(|f| f & O_NONBLOCK as usize != 0),
    );
    r.check(
        "reading the empty pipe through the dup: EAGAIN",
        read(rd2, &mut b) == Err(Errno::EAGAIN),
    );
    r.check(
        "F_SETFL keeps the access mode",
        fcntl(rd, F_SETFL, O_ACCMODE).is_ok()
            && fcntl(rd, F_GETFL, 0).map(|f| f & O_ACCMODE) == Ok(0),
    );
    r.check(
        "lseek on a pipe: ESPIPE",
        lseek(rd, 0, SEEK_CUR) == Err(Errno::ESPIPE),
    );
    r.check(
        "pread on a pipe: ESPIPE",
        sys(SYS_pread64, &[rd as usize, p.as_mut_ptr() as usize, 1, 0]) == Err(Errno::ESPIPE),
    );
    r.check(
        "read from a write end: EBADF",
        read(wr, &mut b) == Err(Errno::EBADF),
    );
    r.check(
        "fadvise64 on a pipe: ESPIPE",
        sys(SYS_fadvise64, &[rd as usize, 0, 0, 0]) == Err(Errno::ESPIPE),
    );
    r.check("syncfs of a pipe", sys(SYS_syncfs, &[rd as usize]) == Ok(0));
    r.check(
        "ftruncate on a pipe: EINVAL",
        sys(SYS_ftruncate, &[wr as usize, 0]) == Err(Errno::EINVAL),
    );
    r.check(
        "ftruncate on a read-only file: EINVAL",
        sys(SYS_ftruncate, &[fd as usize, 0]) == Err(Errno::EINVAL),
    );
    r.check(
        "ftruncate with a negative length: EINVAL",
        sys(SYS_ftruncate, &[fd as usize, usize::MAX]) == Err(Errno::EINVAL),
    );
    r.check(
        "ftruncate of a closed descriptor: EBADF",
        sys(SYS_ftruncate, &[39, 0]) == Err(Errno::EBADF),
    );
    // A child writes through its copy of the write end; the parent reads it.
    let _ = fcntl(rd, F_SETFL, 0);
    match fork() {
        Ok(Fork::Child) => {
            let _ = write(wr, b"from child");
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => {
            let _ = close(wr);
            let mut m = [0u8; 32];
            let n = read(rd, &mut m).unwrap_or(0);
            r.check(
                "the parent reads the child's pipe write",
                &m[..n] == b"from child",
            );
            let _ = wait4(pid, 0);
            r.check(
                "end of file once the child's write end closed",
                read(rd2, &mut m) == Ok(0),
            );
        }
        Err(_) => r.fail(),
    }

    // A directory reads as EISDIR.
    if let Ok(dir) = open(c"/", O_RDONLY | O_DIRECTORY, 0) {
        r.check(
            "read of a directory: EISDIR",
            read(dir, &mut b) == Err(Errno::EISDIR),
        );
        let _ = close(dir);
    } else {
        r.fail();
    }

    memfd(&mut r);
    eventfd(&mut r);

    // Across exec: 40 and 20..21 were made above; 40 is close-on-exec, 20 is not. The
    // offset of 20 is shared with the new image.
    let _ = lseek(fd, 1234, SEEK_SET);
    let _ = sys(SYS_close, &[22]);
    let argv_strs = [path.clone(), CString::new("exec").unwrap_or_default()];
    let argv = [
        argv_strs[0].as_ptr() as usize,
        argv_strs[1].as_ptr() as usize,
        0,
    ];
    let env_s = CString::new(format!("VMSCOPE_BIN={}", bin_dir())).unwrap_or_default();
    let envp = [env_s.as_ptr() as usize, 0];
    match fork() {
        Ok(Fork::Child) => {
            let e = sys(
                SYS_execve,
                &[
                    path.as_ptr() as usize,
                    argv.as_ptr() as usize,
                    envp.as_ptr() as usize,
                ],
            );
            println!("execve failed: {:?}", e);
            exit_group(1);
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0).map(|(_, s)| s.exit_status());
            r.check("the exec'd image agreed", st == Ok(0));
            r.check("its read moved our offset", pos(fd) == 1234 + 10);
        }
        Err(_) => r.fail(),
    }
    r.exit_status()
}

/// A memfd: an anonymous regular file that can be written, truncated and appended to.
fn memfd(r: &mut Report) {
    let Ok(m) = sys(SYS_memfd_create, &[c"fileshare".as_ptr() as usize, 0]) else {
        r.fail();
        return;
    };
    let m = m as i32;
    r.check("memfd write", write(m, b"hello") == Ok(5));
    let _ = lseek(m, 0, SEEK_SET);
    let mut b = [0u8; 8];
    r.check(
        "memfd read back",
        read(m, &mut b) == Ok(5) && &b[..5] == b"hello",
    );
    let fl = fcntl(m, F_GETFL, 0).unwrap_or(0);
    let _ = fcntl(m, F_SETFL, fl | O_APPEND as usize);
    let _ = lseek(m, 0, SEEK_SET);
    r.check(
        "O_APPEND writes at the end",
        write(m, b"!") == Ok(1) && pos(m) == 6,
    );
    r.check(
        "ftruncate to 3",
        sys(SYS_ftruncate, &[m as usize, 3]) == Ok(0),
    );
    r.check("lseek SEEK_END after truncate", lseek(m, 0, 2) == Ok(3));
    r.check(
        "ftruncate grows with a hole",
        sys(SYS_ftruncate, &[m as usize, 8192]) == Ok(0),
    );
    let got = sys(SYS_pread64, &[m as usize, b.as_mut_ptr() as usize, 8, 4096]);
    r.check("the hole reads as zeros", got == Ok(8) && b == [0; 8]);
    let got = sys(SYS_pread64, &[m as usize, b.as_mut_ptr() as usize, 8, 0]);
    r.check(
        "the kept bytes remain",
        got == Ok(8) && &b[..3] == b"hel" && b[3..] == [0; 5],
    );
    r.check(
        "fchmod of a memfd",
        sys(SYS_fchmod, &[m as usize, 0o600]) == Ok(0),
    );
    r.check("flock LOCK_EX", sys(SYS_flock, &[m as usize, 2]) == Ok(0));
    r.check(
        "flock with no operation: EINVAL",
        sys(SYS_flock, &[m as usize, 0]) == Err(Errno::EINVAL),
    );
    r.check(
        "futimens of a memfd",
        sys(SYS_utimensat, &[m as usize, 0, 0, 0]) == Ok(0),
    );
    r.check(
        "memfd_create with unknown flags: EINVAL",
        sys(SYS_memfd_create, &[c"x".as_ptr() as usize, 0x100]) == Err(Errno::EINVAL),
    );
    let _ = close(m);
}

/// The exec'd image: descriptor 40 (close-on-exec) is gone, 20 and 21 remain and share
/// the parent's offset.
fn after_exec() -> i32 {
    let mut ok = true;
    ok &= fcntl(40, F_GETFD, 0) == Err(Errno::EBADF);
    ok &= fcntl(20, F_GETFD, 0) == Ok(0);
    ok &= pos(20) == 1234;
    let mut b = [0u8; 10];
    ok &= read(21, &mut b) == Ok(10);
    if ok {
        0
    } else {
        println!("after exec: descriptors not as expected");
        1
    }
}

/// eventfd: a counter read whole (or one at a time with EFD_SEMAPHORE), EAGAIN at 0 with
/// O_NONBLOCK, a blocked read woken by a child's write.
fn eventfd(r: &mut Report) {
    const EFD_SEMAPHORE: usize = 1;
    let nb = O_NONBLOCK as usize;
    let Ok(e) = sys(SYS_eventfd2, &[3, nb]) else {
        r.fail();
        return;
    };
    let e = e as i32;
    let mut v = [0u8; 8];
    r.check(
        "eventfd read takes the count",
        read(e, &mut v) == Ok(8) && u64::from_le_bytes(v) == 3,
    );
    r.check("then EAGAIN", read(e, &mut v) == Err(Errno::EAGAIN));
    r.check("eventfd write", write(e, &5u64.to_le_bytes()) == Ok(8));
    r.check("writes add up", write(e, &2u64.to_le_bytes()) == Ok(8));
    r.check(
        "read gets 7",
        read(e, &mut v) == Ok(8) && u64::from_le_bytes(v) == 7,
    );
    let mut small = [0u8; 4];
    r.check(
        "a 4-byte read: EINVAL",
        read(e, &mut small) == Err(Errno::EINVAL),
    );
    r.check(
        "writing 2^64-1: EINVAL",
        write(e, &u64::MAX.to_le_bytes()) == Err(Errno::EINVAL),
    );
    let _ = close(e);
    let s = sys(SYS_eventfd2, &[2, nb | EFD_SEMAPHORE]).map_or(-1, |v| v as i32);
    let one = |r: Result<usize, Errno>, v: &[u8; 8]| r == Ok(8) && u64::from_le_bytes(*v) == 1;
    let a = read(s, &mut v);
    let ok1 = one(a, &v);
    let b = read(s, &mut v);
    let ok2 = one(b, &v);
    r.check(
        "EFD_SEMAPHORE reads one at a time",
        ok1 && ok2 && read(s, &mut v) == Err(Errno::EAGAIN),
    );
    let _ = close(s);
    r.check(
        "eventfd2 with unknown flags: EINVAL",
        sys(SYS_eventfd2, &[0, 0x100]) == Err(Errno::EINVAL),
    );
    // A blocking read, woken by a child's write.
    let b = sys(SYS_eventfd2, &[0, 0]).map_or(-1, |v| v as i32);
    match fork() {
        Ok(Fork::Child) => {
            let t = [0i64, 30_000_000];
            let _ = sys(SYS_nanosleep, &[t.as_ptr() as usize, 0]);
            let _ = write(b, &9u64.to_le_bytes());
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => {
            r.check(
                "a blocked eventfd read gets the child's write",
                read(b, &mut v) == Ok(8) && u64::from_le_bytes(v) == 9,
            );
            let _ = wait4(pid, 0);
        }
        Err(_) => r.fail(),
    }
    let _ = close(b);
    let one_cpu = 1u64;
    let none = 0u64;
    r.check(
        "sched_setaffinity to CPU 0",
        sys(
            SYS_sched_setaffinity,
            &[0, 8, &one_cpu as *const u64 as usize],
        ) == Ok(0),
    );
    r.check(
        "sched_setaffinity to no CPU: EINVAL",
        sys(SYS_sched_setaffinity, &[0, 8, &none as *const u64 as usize]) == Err(Errno::EINVAL),
    );
}
