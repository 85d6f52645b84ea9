//! `syscalls`: the common system calls a C library uses, with Linux's structures and
//! errno rules: the stat family (`stat`, `lstat`, `fstat`, `newfstatat`, `statx`), the
//! `*at` calls with `AT_FDCWD`, directory descriptors and `AT_EMPTY_PATH`, `access` and
//! `faccessat2`, `readlink` of `/proc/self` and `/proc/self/exe`, the working directory
//! (`getcwd`, `chdir`, `fchdir`, inherited by fork), `umask`, calls that would modify the
//! root (lookup errors first: EEXIST, ENOENT, ENOTDIR, EBUSY, EISDIR), the time calls,
//! `sysinfo`, `prctl` names, process groups and sessions, `membarrier`,
//! `rt_sigpending`, `set_robust_list`, and resource limits (RLIMIT_NOFILE gives EMFILE).
//!
//! Only what is the same on the host and in the guest is printed: errno values, file
//! types, equalities between calls; never inode numbers or times. The program's own
//! binary is found through `VMSCOPE_BIN` (as in `execchain`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::fs::{close, fstat, open, Stat, O_CREAT, O_DIRECTORY, O_EXCL, O_RDONLY, O_WRONLY};
use vmrt::sys::nr::*;
use vmrt::sys::proc::{exit_group, fork, getpid, wait4, Fork};
use vmrt::sys::{call, Errno};

vmrt::entry!(main);

const AT_FDCWD: usize = -100isize as usize;
const AT_SYMLINK_NOFOLLOW: usize = 0x100;
const AT_EMPTY_PATH: usize = 0x1000;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const R_OK: usize = 4;
const X_OK: usize = 1;

fn sys(n: usize, args: &[usize]) -> Result<usize, Errno> {
    // SAFETY: pointers passed are valid for the call or deliberately bad.
    unsafe { call(n, args) }
}

fn bin_dir() -> String {
    match vmrt::env::var("VMSCOPE_BIN") {
        Some(d) => String::from(d.to_str().unwrap_or("/bin")),
        None => String::from("/bin"),
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn stat(path: &CString) -> Result<Stat, Errno> {
    let mut st = Stat::default();
    sys(
        SYS_stat,
        &[path.as_ptr() as usize, &mut st as *mut Stat as usize],
    )
    .map(|_| st)
}

fn lstat(path: &CString) -> Result<Stat, Errno> {
    let mut st = Stat::default();
    sys(
        SYS_lstat,
        &[path.as_ptr() as usize, &mut st as *mut Stat as usize],
    )
    .map(|_| st)
}

fn fstatat(dirfd: usize, path: &CString, flags: usize) -> Result<Stat, Errno> {
    let mut st = Stat::default();
    sys(
        SYS_newfstatat,
        &[
            dirfd,
            path.as_ptr() as usize,
            &mut st as *mut Stat as usize,
            flags,
        ],
    )
    .map(|_| st)
}

fn kind(st: &Stat) -> u32 {
    st.st_mode & S_IFMT
}

fn err(r: Result<impl Sized, Errno>) -> String {
    match r {
        Ok(_) => String::from("ok"),
        Err(e) => format!("{e:?}"),
    }
}

fn getcwd() -> Result<String, Errno> {
    let mut b = [0u8; 256];
    let n = sys(SYS_getcwd, &[b.as_mut_ptr() as usize, b.len()])?;
    Ok(String::from_utf8_lossy(&b[..n.saturating_sub(1)]).into())
}

fn readlink(path: &CString) -> Result<String, Errno> {
    let mut b = [0u8; 512];
    let n = sys(
        SYS_readlink,
        &[path.as_ptr() as usize, b.as_mut_ptr() as usize, b.len()],
    )?;
    Ok(String::from_utf8_lossy(&b[..n]).into())
}

fn main() -> i32 {
    let mut r = Report::new();
    stat_family(&mut r);
    cwd(&mut r);
    readonly_root(&mut r);
    time_and_info(&mut r);
    process(&mut r);
    rlimits(&mut r);
    r.exit_status()
}

fn stat_family(r: &mut Report) {
    let me = cstr(&format!("{}/syscalls", bin_dir()));
    let root = stat(&cstr("/"));
    r.check(
        "stat / is a directory",
        root.is_ok_and(|s| kind(&s) == S_IFDIR),
    );
    let s = stat(&me);
    r.check(
        "stat of this program: a regular file",
        s.is_ok_and(|s| kind(&s) == S_IFREG),
    );
    r.check(
        "with an execute bit",
        s.is_ok_and(|s| s.st_mode & 0o111 != 0),
    );
    let fd = open(&me, O_RDONLY, 0).unwrap_or(-1);
    let f = fstat(fd);
    r.check(
        "fstat and stat agree on size, mode and inode",
        matches!((s, f), (Ok(a), Ok(b)) if a.st_size == b.st_size && a.st_mode == b.st_mode && a.st_ino == b.st_ino && a.st_size > 0),
    );
    let size = s.map_or(0, |s| s.st_size);
    r.check(
        "lseek SEEK_END gives the size",
        vmrt::sys::fs::lseek(fd, 0, 2).is_ok_and(|e| e as i64 == size),
    );
    println!("stat /nonexistent: {}", err(stat(&cstr("/nonexistent"))));
    println!(
        "stat through a file: {}",
        err(stat(&cstr(&format!("{}/syscalls/x", bin_dir()))))
    );
    println!("stat of an empty path: {}", err(stat(&cstr(""))));
    println!(
        "stat of a bad pointer: {}",
        err(sys(SYS_stat, &[16, 0x1000]))
    );
    let mut st = Stat::default();
    println!(
        "stat into a bad buffer: {}",
        err(sys(SYS_stat, &[c"/".as_ptr() as usize, 8]))
    );
    let _ = &mut st;
    // lstat sees the link /proc/self, stat what it points to.
    r.check(
        "lstat /proc/self is a link",
        lstat(&cstr("/proc/self")).is_ok_and(|s| kind(&s) == S_IFLNK),
    );
    r.check(
        "stat /proc/self is a directory",
        stat(&cstr("/proc/self")).is_ok_and(|s| kind(&s) == S_IFDIR),
    );
    // newfstatat: AT_FDCWD, a directory descriptor, AT_EMPTY_PATH.
    let bin = cstr(&bin_dir());
    let dfd = open(&bin, O_RDONLY | O_DIRECTORY, 0).unwrap_or(-1);
    r.check(
        "newfstatat relative to a directory descriptor",
        fstatat(dfd as usize, &cstr("syscalls"), 0).is_ok_and(|a| a.st_size == size),
    );
    r.check(
        "newfstatat with AT_EMPTY_PATH is fstat",
        fstatat(fd as usize, &cstr(""), AT_EMPTY_PATH).is_ok_and(|a| a.st_size == size),
    );
    println!(
        "newfstatat with an empty path, no flag: {}",
        err(fstatat(fd as usize, &cstr(""), 0))
    );
    println!(
        "newfstatat relative to a file: {}",
        err(fstatat(fd as usize, &cstr("x"), 0))
    );
    println!(
        "newfstatat relative to a closed descriptor: {}",
        err(fstatat(999, &cstr("x"), 0))
    );
    r.check(
        "an absolute path ignores a bad dirfd",
        fstatat(999, &cstr("/"), 0).is_ok(),
    );
    println!(
        "newfstatat with unknown flags: {}",
        err(fstatat(AT_FDCWD, &cstr("/"), 0x4))
    );
    r.check(
        "AT_SYMLINK_NOFOLLOW on /proc/self",
        fstatat(AT_FDCWD, &cstr("/proc/self"), AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|s| kind(&s) == S_IFLNK),
    );
    // statx.
    let mut sx = [0u8; 256];
    let rc = sys(
        SYS_statx,
        &[
            AT_FDCWD,
            me.as_ptr() as usize,
            0,
            0x7ff,
            sx.as_mut_ptr() as usize,
        ],
    );
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |b: &[u8], o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(w)
    };
    r.check("statx succeeds", rc == Ok(0));
    r.check(
        "statx reports the basic stats",
        u32_at(&sx, 0) & 0x7ff == 0x7ff,
    );
    r.check(
        "statx size and mode agree with stat",
        u64_at(&sx, 40) as i64 == size
            && u32::from(u16::from_le_bytes([sx[28], sx[29]])) == s.map_or(0, |s| s.st_mode),
    );
    println!(
        "statx with a reserved mask bit: {}",
        err(sys(
            SYS_statx,
            &[
                AT_FDCWD,
                me.as_ptr() as usize,
                0,
                0x8000_0000,
                sx.as_mut_ptr() as usize
            ]
        ))
    );
    println!(
        "statx with both sync flags: {}",
        err(sys(
            SYS_statx,
            &[
                AT_FDCWD,
                me.as_ptr() as usize,
                0x6000,
                0x7ff,
                sx.as_mut_ptr() as usize
            ]
        ))
    );
    // access.
    println!(
        "access / R_OK: {}",
        err(sys(SYS_access, &[c"/".as_ptr() as usize, R_OK]))
    );
    println!(
        "access self X_OK: {}",
        err(sys(SYS_access, &[me.as_ptr() as usize, X_OK]))
    );
    println!(
        "access /proc/self/status X_OK: {}",
        err(sys(
            SYS_access,
            &[c"/proc/self/status".as_ptr() as usize, X_OK]
        ))
    );
    println!(
        "access with a bad mode: {}",
        err(sys(SYS_access, &[c"/".as_ptr() as usize, 8]))
    );
    println!(
        "access /nonexistent: {}",
        err(sys(SYS_access, &[c"/nonexistent".as_ptr() as usize, 0]))
    );
    println!(
        "faccessat2 with unknown flags: {}",
        err(sys(
            SYS_faccessat2,
            &[AT_FDCWD, c"/".as_ptr() as usize, 0, 0x1]
        ))
    );
    println!(
        "faccessat relative to a directory: {}",
        err(sys(
            SYS_faccessat,
            &[dfd as usize, c"syscalls".as_ptr() as usize, X_OK]
        ))
    );
    // readlink.
    let pid = getpid();
    r.check(
        "readlink /proc/self is the pid",
        readlink(&cstr("/proc/self")).is_ok_and(|t| t == format!("{pid}")),
    );
    r.check(
        "readlink /proc/self/exe names this program",
        readlink(&cstr("/proc/self/exe"))
            .is_ok_and(|t| t.ends_with("/syscalls") && t.starts_with('/')),
    );
    let mut small = [0u8; 3];
    r.check(
        "readlink truncates to the buffer",
        sys(
            SYS_readlink,
            &[
                c"/proc/self/exe".as_ptr() as usize,
                small.as_mut_ptr() as usize,
                3,
            ],
        ) == Ok(3),
    );
    println!("readlink of a directory: {}", err(readlink(&cstr("/"))));
    println!(
        "readlink with size 0: {}",
        err(sys(
            SYS_readlink,
            &[
                c"/proc/self".as_ptr() as usize,
                small.as_mut_ptr() as usize,
                0
            ]
        ))
    );
    let mut b = [0u8; 64];
    r.check("readlinkat relative to /proc", {
        let p = open(&cstr("/proc"), O_RDONLY | O_DIRECTORY, 0).unwrap_or(-1);
        let n = sys(
            SYS_readlinkat,
            &[
                p as usize,
                c"self".as_ptr() as usize,
                b.as_mut_ptr() as usize,
                64,
            ],
        );
        let _ = close(p);
        n.is_ok_and(|n| b[..n] == *format!("{pid}").as_bytes())
    });
    // O_PATH: a location only.
    const O_PATH: u32 = 0o10000000;
    if let Ok(pf) = open(&cstr("/proc"), O_PATH, 0) {
        let mut b = [0u8; 64];
        println!(
            "read through O_PATH: {}",
            err(vmrt::sys::fs::read(pf, &mut b))
        );
        println!(
            "getdents64 through O_PATH: {}",
            err(sys(
                SYS_getdents64,
                &[pf as usize, b.as_mut_ptr() as usize, 64]
            ))
        );
        println!(
            "lseek through O_PATH: {}",
            err(vmrt::sys::fs::lseek(pf, 0, 0))
        );
        r.check(
            "fstat through O_PATH",
            fstat(pf).is_ok_and(|s| kind(&s) == S_IFDIR),
        );
        r.check(
            "F_GETFL shows O_PATH",
            sys(SYS_fcntl, &[pf as usize, 3]).is_ok_and(|f| f & O_PATH as usize != 0),
        );
        r.check(
            "newfstatat relative to an O_PATH directory",
            fstatat(pf as usize, &cstr("self"), 0).is_ok_and(|s| kind(&s) == S_IFDIR),
        );
        let _ = close(pf);
    } else {
        r.fail();
    }
    let _ = close(dfd);
    let _ = close(fd);
}

fn cwd(r: &mut Report) {
    r.check(
        "chdir /",
        sys(SYS_chdir, &[c"/".as_ptr() as usize]) == Ok(0),
    );
    r.check("getcwd is /", getcwd().is_ok_and(|c| c == "/"));
    let mut b = [0u8; 1];
    println!(
        "getcwd into a 1-byte buffer: {}",
        err(sys(SYS_getcwd, &[b.as_mut_ptr() as usize, 1]))
    );
    r.check(
        "getcwd returns the length with the NUL",
        sys(SYS_getcwd, &[[0u8; 8].as_mut_ptr() as usize, 8]) == Ok(2),
    );
    r.check(
        "chdir proc (relative)",
        sys(SYS_chdir, &[c"proc".as_ptr() as usize]) == Ok(0),
    );
    r.check("getcwd is /proc", getcwd().is_ok_and(|c| c == "/proc"));
    let pid = getpid();
    r.check(
        "a relative open from /proc",
        open(&cstr("self/status"), O_RDONLY, 0).is_ok_and(|fd| close(fd).is_ok()),
    );
    r.check(
        "chdir self",
        sys(SYS_chdir, &[c"self".as_ptr() as usize]) == Ok(0),
    );
    r.check(
        "getcwd resolves /proc/self",
        getcwd().is_ok_and(|c| c == format!("/proc/{pid}")),
    );
    r.check(
        "chdir ../..",
        sys(SYS_chdir, &[c"../..".as_ptr() as usize]) == Ok(0),
    );
    r.check("back at /", getcwd().is_ok_and(|c| c == "/"));
    println!(
        "chdir to a file: {}",
        err(sys(SYS_chdir, &[c"/proc/self/status".as_ptr() as usize]))
    );
    println!(
        "chdir /nonexistent: {}",
        err(sys(SYS_chdir, &[c"/nonexistent".as_ptr() as usize]))
    );
    let f = open(&cstr("/proc/self/status"), O_RDONLY, 0).unwrap_or(-1);
    println!("fchdir to a file: {}", err(sys(SYS_fchdir, &[f as usize])));
    let _ = close(f);
    println!(
        "fchdir to a closed descriptor: {}",
        err(sys(SYS_fchdir, &[999]))
    );
    let p = open(&cstr("/proc"), O_RDONLY | O_DIRECTORY, 0).unwrap_or(-1);
    r.check("fchdir /proc", sys(SYS_fchdir, &[p as usize]) == Ok(0));
    r.check("getcwd after fchdir", getcwd().is_ok_and(|c| c == "/proc"));
    let _ = close(p);
    // A child inherits the working directory; its chdir does not move the parent.
    match fork() {
        Ok(Fork::Child) => {
            let ok = getcwd().is_ok_and(|c| c == "/proc");
            let _ = sys(SYS_chdir, &[c"/".as_ptr() as usize]);
            exit_group(if ok { 0 } else { 1 });
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0).map(|(_, s)| s.exit_status());
            r.check("the child started in /proc", st == Ok(0));
            r.check(
                "the parent is still there",
                getcwd().is_ok_and(|c| c == "/proc"),
            );
        }
        Err(_) => r.fail(),
    }
    let _ = sys(SYS_chdir, &[c"/".as_ptr() as usize]);
    // umask.
    let _ = sys(SYS_umask, &[0o27]);
    r.check(
        "umask returns the old mask",
        sys(SYS_umask, &[0o1022]) == Ok(0o27),
    );
    r.check(
        "umask keeps only permission bits",
        sys(SYS_umask, &[0o22]) == Ok(0o22),
    );
}

fn readonly_root(r: &mut Report) {
    let me = format!("{}/syscalls", bin_dir());
    let p = |s: &str| cstr(s);
    let two = |n: usize, a: &str, b: &str| {
        let (x, y) = (p(a), p(b));
        sys(n, &[x.as_ptr() as usize, y.as_ptr() as usize])
    };
    let one = |n: usize, a: &str| {
        let x = p(a);
        sys(n, &[x.as_ptr() as usize, 0o755])
    };
    let cases: [(&str, Result<usize, Errno>); 24] = [
        ("mkdir /", one(SYS_mkdir, "/")),
        ("mkdir /nonexistent/x", one(SYS_mkdir, "/nonexistent/x")),
        ("mkdir under a file", one(SYS_mkdir, &format!("{me}/x"))),
        ("mkdir /proc/x", one(SYS_mkdir, "/proc/x")),
        ("mkdir /proc/self", one(SYS_mkdir, "/proc/self")),
        ("rmdir /", one(SYS_rmdir, "/")),
        ("rmdir /proc/.", one(SYS_rmdir, "/proc/.")),
        ("rmdir /proc/..", one(SYS_rmdir, "/proc/..")),
        (
            "rmdir of a file in /proc",
            one(SYS_rmdir, "/proc/self/status"),
        ),
        ("rmdir of the /proc/self link", one(SYS_rmdir, "/proc/self")),
        (
            "rmdir of a /proc directory",
            one(SYS_rmdir, &format!("/proc/{}", getpid())),
        ),
        ("rmdir /nonexistent/x", one(SYS_rmdir, "/nonexistent/x")),
        ("unlink /nonexistent/x", one(SYS_unlink, "/nonexistent/x")),
        ("unlink /", one(SYS_unlink, "/")),
        ("unlink in /proc", one(SYS_unlink, "/proc/self/status")),
        (
            "unlink of a missing /proc file",
            one(SYS_unlink, "/proc/nonexistent"),
        ),
        (
            "rename /nonexistent/x",
            two(SYS_rename, "/nonexistent/x", "/y"),
        ),
        (
            "rename out of /proc",
            two(SYS_rename, "/proc/self/status", "/x"),
        ),
        (
            "rename within /proc",
            two(SYS_rename, "/proc/self/status", "/proc/self/x"),
        ),
        ("link /nonexistent", two(SYS_link, "/nonexistent", "/x")),
        ("symlink onto /", two(SYS_symlink, "x", "/")),
        (
            "truncate /",
            sys(SYS_truncate, &[p("/").as_ptr() as usize, 0]),
        ),
        (
            "unlinkat with bad flags",
            sys(SYS_unlinkat, &[AT_FDCWD, p("/x").as_ptr() as usize, 1]),
        ),
        ("mkdirat relative to a file", {
            let f = open(&p("/proc/self/status"), O_RDONLY, 0).unwrap_or(-1);
            let e = sys(SYS_mkdirat, &[f as usize, p("x").as_ptr() as usize, 0o755]);
            let _ = close(f);
            e
        }),
    ];
    for (what, e) in cases {
        println!("{what}: {}", err(e));
    }
    println!("open / for writing: {}", err(open(&p("/"), O_WRONLY, 0)));
    println!("open / O_CREAT: {}", err(open(&p("/"), O_CREAT, 0o644)));
    println!(
        "open / O_CREAT|O_EXCL: {}",
        err(open(&p("/"), O_CREAT | O_EXCL, 0o644))
    );
    println!(
        "open self O_CREAT|O_EXCL: {}",
        err(open(&p(&me), O_CREAT | O_EXCL, 0o644))
    );
    println!(
        "open O_CREAT in a missing directory: {}",
        err(open(&p("/nonexistent/x"), O_CREAT | O_WRONLY, 0o644))
    );
    println!(
        "open a file as a directory: {}",
        err(open(&p(&me), O_RDONLY | O_DIRECTORY, 0))
    );
    let ok = open(&p(&me), O_RDONLY | O_CREAT, 0o644);
    r.check("O_CREAT of an existing file opens it", ok.is_ok());
    if let Ok(fd) = ok {
        let _ = close(fd);
    }
}

fn time_and_info(r: &mut Report) {
    let mut ts = [0i64; 2];
    r.check(
        "clock_getres(CLOCK_MONOTONIC) is 1 ns",
        sys(SYS_clock_getres, &[1, ts.as_mut_ptr() as usize]) == Ok(0) && ts == [0, 1],
    );
    println!(
        "clock_getres of clock 99: {}",
        err(sys(SYS_clock_getres, &[99, 0]))
    );
    r.check(
        "clock_getres with NULL",
        sys(SYS_clock_getres, &[0, 0]) == Ok(0),
    );
    let mut tv = [0i64; 2];
    r.check(
        "gettimeofday",
        sys(SYS_gettimeofday, &[tv.as_mut_ptr() as usize, 0]) == Ok(0)
            && (0..1_000_000).contains(&tv[1]),
    );
    let mut t = 0i64;
    let now = sys(SYS_time, &[&mut t as *mut i64 as usize]).unwrap_or(0) as i64;
    r.check(
        "time agrees with gettimeofday",
        now == t && (now - tv[0]).abs() <= 1,
    );
    println!("time into a bad pointer: {}", err(sys(SYS_time, &[8])));
    let mut tms = [0i64; 4];
    r.check(
        "times",
        sys(SYS_times, &[tms.as_mut_ptr() as usize]).is_ok(),
    );
    let mut si = [0u8; 112];
    r.check(
        "sysinfo",
        sys(SYS_sysinfo, &[si.as_mut_ptr() as usize]) == Ok(0),
    );
    let q = |o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&si[o..o + 8]);
        u64::from_le_bytes(w)
    };
    let unit = u64::from(u32::from_le_bytes([si[104], si[105], si[106], si[107]]));
    let procs = u16::from_le_bytes([si[80], si[81]]);
    r.check(
        "sysinfo: uptime, RAM and processes make sense",
        q(0) >= 1 && q(32) >= q(40) && q(40) > 0 && unit >= 1 && procs >= 1,
    );
    println!(
        "sysinfo into a bad pointer: {}",
        err(sys(SYS_sysinfo, &[8]))
    );
    let mut req = [0i64, -1];
    println!(
        "nanosleep with negative nanoseconds: {}",
        err(sys(SYS_nanosleep, &[req.as_mut_ptr() as usize, 0]))
    );
}

fn process(r: &mut Report) {
    // prctl names.
    let long = c"abcdefghijklmnopqrstuvwxyz";
    r.check(
        "PR_SET_NAME",
        sys(SYS_prctl, &[15, long.as_ptr() as usize]) == Ok(0),
    );
    let mut name = [0u8; 16];
    r.check(
        "PR_GET_NAME gives 15 bytes and a NUL",
        sys(SYS_prctl, &[16, name.as_mut_ptr() as usize]) == Ok(0) && &name == b"abcdefghijklmno\0",
    );
    println!(
        "prctl with an unknown option: {}",
        err(sys(SYS_prctl, &[0x7777_7777]))
    );
    // Process groups and sessions.
    let pgrp = sys(SYS_getpgrp, &[]);
    r.check("getpgrp is getpgid(0)", pgrp == sys(SYS_getpgid, &[0]));
    r.check(
        "getpgid(getpid())",
        pgrp == sys(SYS_getpgid, &[getpid() as usize]),
    );
    r.check("getsid(0)", sys(SYS_getsid, &[0]).is_ok_and(|s| s > 0));
    println!(
        "getpgid of no process: {}",
        err(sys(SYS_getpgid, &[0x3fff_fff0]))
    );
    println!(
        "setpgid with a negative group: {}",
        err(sys(SYS_setpgid, &[0, usize::MAX]))
    );
    match fork() {
        Ok(Fork::Child) => {
            let me = getpid() as usize;
            let mut ok = sys(SYS_getpgrp, &[]) == pgrp;
            ok &= sys(SYS_setsid, &[]) == Ok(me);
            ok &= sys(SYS_getsid, &[0]) == Ok(me) && sys(SYS_getpgrp, &[]) == Ok(me);
            ok &= sys(SYS_setsid, &[]) == Err(Errno::EPERM);
            ok &= sys(SYS_setpgid, &[0, 0]) == Err(Errno::EPERM);
            exit_group(if ok { 0 } else { 1 });
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0).map(|(_, s)| s.exit_status());
            r.check("a child starts its own session", st == Ok(0));
        }
        Err(_) => r.fail(),
    }
    match fork() {
        Ok(Fork::Child) => {
            let me = getpid() as usize;
            let ok = sys(SYS_setpgid, &[0, 0]) == Ok(0) && sys(SYS_getpgrp, &[]) == Ok(me);
            exit_group(if ok { 0 } else { 1 });
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0).map(|(_, s)| s.exit_status());
            r.check("a child makes its own group", st == Ok(0));
        }
        Err(_) => r.fail(),
    }
    // kill and wait4 by process group.
    match fork() {
        Ok(Fork::Child) => {
            let _ = sys(SYS_setpgid, &[0, 0]);
            loop {
                // SAFETY: no memory involved.
                let _ = unsafe { call(SYS_pause, &[]) };
            }
        }
        Ok(Fork::Parent(pid)) => {
            let _ = sys(SYS_setpgid, &[pid as usize, pid as usize]);
            r.check(
                "kill(-pgrp) signals the group",
                sys(SYS_kill, &[(-pid) as isize as usize, 15]) == Ok(0),
            );
            let w = wait4(-pid, 0);
            r.check(
                "wait4(-pgrp) reaps it, killed by SIGTERM",
                w.is_ok_and(|(p, s)| p == pid && s.signaled() && s.term_signal() == 15),
            );
            println!(
                "kill of an empty group: {}",
                err(sys(SYS_kill, &[(-pid) as isize as usize, 0]))
            );
        }
        Err(_) => r.fail(),
    }
    // Identity and scheduling queries.
    let mut ids = [7u32; 3];
    r.check(
        "getresuid: root",
        sys(
            SYS_getresuid,
            &[
                ids.as_mut_ptr() as usize,
                ids.as_mut_ptr() as usize + 4,
                ids.as_mut_ptr() as usize + 8,
            ],
        ) == Ok(0)
            && ids == [0, 0, 0],
    );
    let mut cpu = [0u32; 2];
    r.check(
        "getcpu",
        sys(
            SYS_getcpu,
            &[cpu.as_mut_ptr() as usize, cpu.as_mut_ptr() as usize + 4, 0],
        ) == Ok(0),
    );
    r.check(
        "sched_get_priority_max/min of SCHED_FIFO",
        sys(SYS_sched_get_priority_max, &[1]) == Ok(99)
            && sys(SYS_sched_get_priority_min, &[1]) == Ok(1),
    );
    r.check(
        "and of SCHED_OTHER",
        sys(SYS_sched_get_priority_max, &[0]) == Ok(0)
            && sys(SYS_sched_get_priority_min, &[0]) == Ok(0),
    );
    println!(
        "sched_get_priority_max of policy 42: {}",
        err(sys(SYS_sched_get_priority_max, &[42]))
    );
    let mut prio = 5i32;
    r.check(
        "sched_getparam: priority 0",
        sys(SYS_sched_getparam, &[0, &mut prio as *mut i32 as usize]) == Ok(0) && prio == 0,
    );
    println!(
        "sched_getscheduler of no process: {}",
        err(sys(SYS_sched_getscheduler, &[0x3fff_fff0]))
    );
    // membarrier.
    let q = sys(SYS_membarrier, &[0, 0, 0]);
    r.check(
        "membarrier query lists PRIVATE_EXPEDITED",
        q.is_ok_and(|m| m & 8 != 0),
    );
    println!(
        "membarrier PRIVATE_EXPEDITED unregistered: {}",
        err(sys(SYS_membarrier, &[8, 0, 0]))
    );
    r.check(
        "membarrier register",
        sys(SYS_membarrier, &[16, 0, 0]) == Ok(0),
    );
    r.check(
        "membarrier PRIVATE_EXPEDITED",
        sys(SYS_membarrier, &[8, 0, 0]) == Ok(0),
    );
    println!(
        "membarrier with flags: {}",
        err(sys(SYS_membarrier, &[0, 1, 0]))
    );
    // rt_sigpending: a blocked, raised signal is pending.
    let set: u64 = 1 << (10 - 1);
    let _ = sys(SYS_rt_sigprocmask, &[0, &set as *const u64 as usize, 0, 8]);
    let _ = vmrt::sys::signal::raise(10);
    let mut pending = 0u64;
    r.check(
        "rt_sigpending shows the blocked SIGUSR1",
        sys(SYS_rt_sigpending, &[&mut pending as *mut u64 as usize, 8]) == Ok(0)
            && pending & set != 0,
    );
    println!(
        "rt_sigpending with a large set size: {}",
        err(sys(
            SYS_rt_sigpending,
            &[&mut pending as *mut u64 as usize, 16]
        ))
    );
    // Ignore it before unblocking, so it is discarded.
    let ign = vmrt::sys::signal::SigAction::ignore();
    // SAFETY: SIG_IGN runs no code.
    let _ = unsafe { vmrt::sys::signal::sigaction(10, Some(&ign)) };
    let _ = sys(SYS_rt_sigprocmask, &[1, &set as *const u64 as usize, 0, 8]);
    // set_robust_list.
    let head = [0u64; 3];
    r.check(
        "set_robust_list",
        sys(SYS_set_robust_list, &[head.as_ptr() as usize, 24]) == Ok(0),
    );
    println!(
        "set_robust_list with a bad size: {}",
        err(sys(SYS_set_robust_list, &[head.as_ptr() as usize, 23]))
    );
}

fn rlimits(r: &mut Report) {
    const RLIMIT_NOFILE: usize = 7;
    const RLIMIT_STACK: usize = 3;
    let get = |res: usize| {
        let mut l = [0u64; 2];
        sys(SYS_getrlimit, &[res, l.as_mut_ptr() as usize]).map(|_| l)
    };
    let nofile = get(RLIMIT_NOFILE).unwrap_or([0, 0]);
    r.check(
        "RLIMIT_NOFILE soft <= hard",
        nofile[0] <= nofile[1] && nofile[0] > 0,
    );
    let mut old = [0u64; 2];
    r.check(
        "prlimit64 reads the same limit",
        sys(
            SYS_prlimit64,
            &[0, RLIMIT_NOFILE, 0, old.as_mut_ptr() as usize],
        ) == Ok(0)
            && old == nofile,
    );
    r.check(
        "RLIMIT_STACK is set",
        get(RLIMIT_STACK).is_ok_and(|l| l[0] > 0 && l[0] <= l[1]),
    );
    println!("getrlimit of resource 99: {}", err(get(99)));
    let bad = [10u64, 5];
    println!(
        "setrlimit soft above hard: {}",
        err(sys(SYS_setrlimit, &[RLIMIT_NOFILE, bad.as_ptr() as usize]))
    );
    println!(
        "prlimit64 of no process: {}",
        err(sys(
            SYS_prlimit64,
            &[0x3fff_fff0, RLIMIT_NOFILE, 0, old.as_mut_ptr() as usize]
        ))
    );
    // Lower RLIMIT_NOFILE to 8: descriptors 0..7 only.
    let lim = [8u64, nofile[1]];
    r.check(
        "setrlimit NOFILE to 8",
        sys(SYS_setrlimit, &[RLIMIT_NOFILE, lim.as_ptr() as usize]) == Ok(0),
    );
    let mut fds = Vec::new();
    let last = loop {
        match open(&cstr("/"), O_RDONLY, 0) {
            Ok(fd) if fds.len() < 16 => fds.push(fd),
            Ok(_) => break Ok(0),
            Err(e) => break Err(e),
        }
    };
    println!("opening past RLIMIT_NOFILE: {}", err(last));
    r.check("the last descriptor is 7", fds.last() == Some(&7));
    println!("dup past RLIMIT_NOFILE: {}", err(sys(SYS_dup, &[0])));
    println!("dup2 to 8: {}", err(sys(SYS_dup2, &[0, 8])));
    println!("F_DUPFD from 8: {}", err(sys(SYS_fcntl, &[0, 0, 8])));
    let mut p = [0i32; 2];
    let _ = close(fds.pop().unwrap_or(7));
    println!(
        "pipe with one slot free: {}",
        err(sys(SYS_pipe2, &[p.as_mut_ptr() as usize, 0]))
    );
    r.check(
        "the free slot stays free",
        open(&cstr("/"), O_RDONLY, 0) == Ok(7),
    );
    fds.push(7);
    for fd in fds {
        let _ = close(fd);
    }
    let _ = sys(SYS_setrlimit, &[RLIMIT_NOFILE, nofile.as_ptr() as usize]);
    // /proc/self/limits: Linux's columns, and the soft limit as getrlimit reports it.
    let text = vmrt::io::read_file(c"/proc/self/limits").unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let mut lines = text.lines();
    println!("/proc/self/limits: {}", lines.next().unwrap_or(""));
    for l in lines {
        println!("  {}", l.get(..25).unwrap_or(l).trim_end());
    }
    let files = text.lines().find(|l| l.starts_with("Max open files"));
    r.check(
        "its open-file limit is getrlimit's",
        files.is_some_and(|l| l.get(26..46).map(str::trim) == Some(&*format!("{}", nofile[0]))),
    );
    // RLIMIT_AS: a mapping that would pass it is ENOMEM.
    const RLIMIT_AS: usize = 9;
    let as_old = get(RLIMIT_AS).unwrap_or([u64::MAX, u64::MAX]);
    let lim = [64u64 << 20, as_old[1]];
    r.check(
        "setrlimit AS to 64 MiB",
        sys(SYS_setrlimit, &[RLIMIT_AS, lim.as_ptr() as usize]) == Ok(0),
    );
    let map = |len: usize| sys(SYS_mmap, &[0, len, 3, 0x22, usize::MAX, 0]);
    println!("mmap of 128 MiB under it: {}", err(map(128 << 20)));
    let small = map(1 << 20);
    r.check("mmap of 1 MiB still works", small.is_ok());
    if let Ok(p) = small {
        let _ = sys(SYS_munmap, &[p, 1 << 20]);
    }
    let _ = sys(SYS_setrlimit, &[RLIMIT_AS, as_old.as_ptr() as usize]);
}
