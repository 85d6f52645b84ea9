//! `memcg`: a memory cgroup limits a hog and leaves the rest of the machine alone (issue
//! [09]'s memcg acceptance line).
//!
//! The program makes /sys/fs/cgroup/test, sets its memory.max to 16M, touches 8 MiB of its
//! own memory (staying in the root group), forks a child, moves the child into the group
//! through cgroup.procs and lets it touch 64 MiB of private anonymous memory
//! (MAP_NORESERVE, one byte per page). It lists the group's interface files. On the way it checks the interface's rules: a
//! malformed limit is EINVAL, the group cannot be removed while the child is in it
//! (EBUSY), and it can be once the child has been reaped. It prints:
//! - `child: exited with N` or `child: killed by signal N`;
//! - memory.events of the group (after the child ended) and its memory.current and
//!   memory.peak in KiB;
//! - `parent pages resident: R/2048` (mincore over its 8 MiB) and whether all stayed.
//!
//! Exit status 0 if every interface step did what Linux does and all of the parent's
//! pages stayed resident; 1 otherwise.
//!
//! What it shows depends on the kernel's charging:
//! - charging not wired into the fault path (the state this program was written in): the
//!   child touches its 64 MiB unhindered (`child: exited with 0`), every memory.events
//!   counter is 0 and memory.current/peak are 0;
//! - charging wired, with a swap disk: the child is held at 16M and swaps
//!   (`child: exited with 0`), memory.events' `max` is non-zero, `oom` and `oom_kill`
//!   are 0, memory.peak is at most 16384 KiB;
//! - charging wired, without swap: the group's OOM killer kills the child
//!   (`child: killed by signal 9`), `oom 1` and `oom_kill 1`;
//! - in every case memory.current is 0 once the child is gone and all of the parent's
//!   2048 pages stay resident: the group's limit never reclaims outside the group.
#![no_std]
#![no_main]

extern crate alloc;

use core::ffi::CStr;

use vmrt::io::{yes_no, Lossy};
use vmrt::sys::fs::{close, getdents64, open, pipe2, read, write, DirEntries, DT_REG};
use vmrt::sys::fs::{O_CLOEXEC, O_DIRECTORY, O_RDONLY, O_WRONLY};
use vmrt::sys::mm::{mincore, mmap, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PAGE_SIZE};
use vmrt::sys::mm::{PROT_READ, PROT_WRITE};
use vmrt::sys::nr::{SYS_mkdir, SYS_rmdir};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};
use vmrt::sys::{check, syscall1, syscall2, Errno, SysResult};
use vmrt::{print, println};

vmrt::entry!(main);

const GROUP: &CStr = c"/sys/fs/cgroup/test";
/// What the parent keeps touched outside the group.
const PARENT_BYTES: usize = 8 << 20;
/// What the child touches inside it.
const CHILD_BYTES: usize = 64 << 20;

fn mkdir(path: &CStr) -> SysResult<()> {
    // SAFETY: a NUL-terminated path the kernel only reads.
    check(unsafe { syscall2(SYS_mkdir, path.as_ptr() as usize, 0o755) }).map(drop)
}

fn rmdir(path: &CStr) -> SysResult<()> {
    // SAFETY: as `mkdir`.
    check(unsafe { syscall1(SYS_rmdir, path.as_ptr() as usize) }).map(drop)
}

/// Write `value` to an interface file in one write, as `echo VALUE > FILE` does.
fn write_file(path: &CStr, value: &[u8]) -> SysResult<()> {
    let fd = open(path, O_WRONLY | O_CLOEXEC, 0)?;
    let r = write(fd, value).map(drop);
    let _ = close(fd);
    r
}

fn cat(path: &CStr) -> alloc::vec::Vec<u8> {
    match vmrt::io::read_file(path) {
        Ok(v) => v,
        Err(e) => {
            println!("{}: {e}", Lossy(path.to_bytes()));
            alloc::vec::Vec::new()
        }
    }
}

/// A file holding one number (memory.current, memory.peak).
fn number(path: &CStr) -> u64 {
    core::str::from_utf8(&cat(path))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

fn map(len: usize) -> *mut u8 {
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    match unsafe {
        mmap(
            0,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    } {
        Ok(p) => p,
        Err(e) => {
            println!("mmap: {e}");
            exit_group(1);
        }
    }
}

/// Write one byte in every page of `[p, p+len)`.
fn touch(p: *mut u8, len: usize, val: u8) {
    let mut off = 0;
    while off < len {
        // SAFETY: inside a mapping of `len` bytes.
        unsafe { p.add(off).write_volatile(val) };
        off += PAGE_SIZE;
    }
}

fn child(rd: i32) -> ! {
    // Wait until the parent has moved us into the group.
    let mut b = [0u8; 1];
    let _ = read(rd, &mut b);
    let p = map(CHILD_BYTES);
    touch(p, CHILD_BYTES, 0x5a);
    exit_group(0);
}

/// The names of the regular files in `dir`, in the order getdents gives.
fn list(dir: &CStr) -> alloc::vec::Vec<alloc::vec::Vec<u8>> {
    let mut names = alloc::vec::Vec::new();
    let Ok(fd) = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0) else {
        return names;
    };
    let mut buf = [0u8; 1024];
    while let Ok(n) = getdents64(fd, &mut buf) {
        if n == 0 {
            break;
        }
        for e in DirEntries::new(&buf[..n]) {
            if e.d_type == DT_REG {
                names.push(e.name.to_vec());
            }
        }
    }
    let _ = close(fd);
    names
}

fn step(ok: &mut bool, what: &str, got: SysResult<()>, want: SysResult<()>) {
    match got {
        Ok(()) => println!("{what}: ok"),
        Err(e) => println!("{what}: {e}"),
    }
    if got != want {
        *ok = false;
    }
}

fn main() -> i32 {
    let mut ok = true;
    step(&mut ok, "mkdir /sys/fs/cgroup/test", mkdir(GROUP), Ok(()));
    step(
        &mut ok,
        "memory.max = bogus",
        write_file(c"/sys/fs/cgroup/test/memory.max", b"bogus\n"),
        Err(Errno::EINVAL),
    );
    step(
        &mut ok,
        "memory.max = 16M",
        write_file(c"/sys/fs/cgroup/test/memory.max", b"16M\n"),
        Ok(()),
    );
    let files = list(GROUP);
    print!("files:");
    for f in &files {
        print!(" {}", Lossy(f));
    }
    println!();
    let max = cat(c"/sys/fs/cgroup/test/memory.max");
    print!("memory.max: {}", Lossy(&max));

    let mine = map(PARENT_BYTES);
    touch(mine, PARENT_BYTES, 0xa5);

    let Ok((rd, wr)) = pipe2(0) else {
        println!("pipe2 failed");
        return 1;
    };
    let pid = match fork() {
        Ok(Fork::Child) => child(rd),
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            println!("fork: {e}");
            return 1;
        }
    };
    let _ = close(rd);
    let mut pidtext = [0u8; 12];
    let n = fmt_u32(pid as u32, &mut pidtext);
    step(
        &mut ok,
        "child into cgroup.procs",
        write_file(c"/sys/fs/cgroup/test/cgroup.procs", &pidtext[..n]),
        Ok(()),
    );
    let procs = cat(c"/sys/fs/cgroup/test/cgroup.procs");
    let listed = core::str::from_utf8(&procs)
        .map(|s| {
            s.lines()
                .eq([core::str::from_utf8(&pidtext[..n]).unwrap_or("")])
        })
        .unwrap_or(false);
    println!("cgroup.procs lists the child alone: {}", yes_no(listed));
    ok &= listed;
    let proc_path = alloc::format!("/proc/{pid}/cgroup\0");
    let proc_cg = CStr::from_bytes_with_nul(proc_path.as_bytes())
        .map(cat)
        .unwrap_or_default();
    print!("child's /proc/PID/cgroup: {}", Lossy(&proc_cg));
    ok &= proc_cg == b"0::/test\n";
    let events = cat(c"/sys/fs/cgroup/test/cgroup.events");
    let populated = events.starts_with(b"populated 1\n");
    println!("cgroup.events populated: {}", yes_no(populated));
    ok &= populated;
    step(
        &mut ok,
        "rmdir with the child inside",
        rmdir(GROUP),
        Err(Errno::EBUSY),
    );

    // Let the child run, and wait for it.
    let _ = write(wr, b"x");
    let _ = close(wr);
    match wait4(pid, 0) {
        Ok((_, st)) if st.signaled() => println!("child: killed by signal {}", st.term_signal()),
        Ok((_, st)) => println!("child: exited with {}", st.exit_status()),
        Err(e) => {
            println!("wait4: {e}");
            ok = false;
        }
    }

    let events = cat(c"/sys/fs/cgroup/test/memory.events");
    println!("memory.events:");
    print!("{}", Lossy(&events));
    println!(
        "memory.current: {} KiB",
        number(c"/sys/fs/cgroup/test/memory.current") >> 10
    );
    println!(
        "memory.peak: {} KiB",
        number(c"/sys/fs/cgroup/test/memory.peak") >> 10
    );

    let pages = PARENT_BYTES / PAGE_SIZE;
    let mut vec = alloc::vec![0u8; pages];
    let resident = match mincore(mine, PARENT_BYTES, &mut vec) {
        Ok(()) => vec.iter().filter(|&&b| b & 1 != 0).count(),
        Err(e) => {
            println!("mincore: {e}");
            0
        }
    };
    println!("parent pages resident: {resident}/{pages}");
    println!("parent pages all resident: {}", yes_no(resident == pages));
    ok &= resident == pages;

    step(
        &mut ok,
        "rmdir once the child is gone",
        rmdir(GROUP),
        Ok(()),
    );
    if ok {
        0
    } else {
        1
    }
}

/// `pid` in decimal, returning the length.
fn fmt_u32(mut v: u32, out: &mut [u8; 12]) -> usize {
    let mut tmp = [0u8; 12];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = tmp[n - 1 - i];
    }
    n
}
