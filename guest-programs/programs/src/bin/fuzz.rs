//! `fuzz [SEED [CALLS [PER_CHILD [OPTIONS]]]]`: a trinity-style
//! system-call fuzzer for the guest kernel. Defaults: seed 1, 20,000 calls,
//! 1,000 per child. OPTIONS, separated by commas: a child number (only that
//! child runs, same seed, same calls, printing each call and its result on
//! stderr: the replay of a finding), `each` (the self-check after every
//! child; the run stops at the first failure, naming the child to replay).
//!
//! The parent never makes a random call. It forks children one after the
//! other, each running up to PER_CHILD random system calls, until CALLS
//! calls have been made. A child that dies of a signal (its own random
//! `munmap` of its text, a handler at a random address, `kill` of
//! itself...) is counted, and its calls up to its last progress report;
//! a child that stops is killed. The parent reaps every child with `wait4`.
//!
//! Each call: a number (mostly 0..=470, a few beyond, x32 and huge ones)
//! and six arguments drawn from classes: small integers, file descriptors
//! (open, closed, huge), pointers into a scratch mapping, bad pointers (NULL
//! plus a little, the kernel half, non-canonical, an unmapped hole, the last
//! bytes before a PROT_NONE page), huge lengths, random flag words,
//! addresses of the child's own text, stack, heap and vDSO. Known system
//! calls get arguments of the right classes ([`hint`]).
//!
//! What a child may not do ([`Plan`]): end or replace itself (exit, execve,
//! fork/clone: the calls are counted as denied), block with no timeout
//! (pause, sigsuspend, blocking socket/IPC calls; pipes, eventfds and
//! the like are forced non-blocking, timeouts to zero or a millisecond), or
//! reach outside itself (kill and friends target the child itself; mount,
//! reboot, ptrace are denied). Nothing else is held back: rt_sigreturn with
//! random frames and memory calls with huge lengths included (the kernel
//! bugs they once hit are fixed; FUZZ-FINDINGS.md).
//!
//! After the children: the kernel self-check (`/proc/vmscope/selfcheck`)
//! and MemFree against its value before the first child. It prints a
//! summary and exits 0 if the self-check is `ok` and no page leaked.
//!
//! The root is writable, as on Linux: the children's paths ([`PATHS`]) name a scratch
//! tree, [`FUZZ_DIR`], also their working directory, which the parent removes and makes
//! anew before the baseline and after every child, so files a child made do not count as
//! leaked memory. A random relative name can still reach out (`../x`); the parent also
//! removes every name that was not in the tree at the start ([`sweep`]).
//!
//! It runs only under the vmscope guest kernel (it refuses when
//! /proc/vmscope/selfcheck is missing): on a host, random system calls as
//! root would do real damage.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::ffi::CStr;

use vmrt::io::read_file;
use vmrt::println;
use vmrt::sys::fs::{close, dup2, pipe2, read, O_CLOEXEC, O_NONBLOCK};
use vmrt::sys::proc::{exit_group, fork, getpid, kill, wait4, Fork};
use vmrt::sys::signal::SIGKILL;
use vmrt::sys::{syscall6, Errno};

vmrt::entry!(main);

const DEFAULT_SEED: u64 = 1;
const DEFAULT_CALLS: u64 = 20_000;
const DEFAULT_PER_CHILD: u64 = 1000;
/// Most calls per child: its progress reports must fit in the report pipe.
const MAX_PER_CHILD: u64 = 10_000;
/// Children whose MemFree drop is remembered for the leak report.
const MAX_DROPS: usize = 16;
/// Bytes of reports read from one child (a 64 KiB pipe holds them all).
const REPORT_MAX: usize = 64 << 10;
/// The self-check file; its absence means "not the vmscope kernel".
const SELFCHECK: &CStr = c"/proc/vmscope/selfcheck";

/// The descriptor a child reports on; random calls never get this number.
const REPORT_FD: i32 = 1000;
/// In a replay of one child, its log of calls (a copy of stderr).
const LOG_FD: i32 = 1001;
/// A child reports progress every this many calls (so a killed child's
/// calls are still counted, to within this).
const CHECKPOINT: u64 = 16;
/// Report record tags.
const TAG_PROGRESS: u64 = 0x7072_6f67;
const TAG_FINAL: u64 = 0x6669_6e61;
/// errno values counted one by one (Linux's go to 133).
const NERRNO: usize = 134;
/// Words of a final report: tag, calls, ok, denied, other, errno counts,
/// checksum.
const FINAL_WORDS: usize = 5 + NERRNO + 1;

const PAGE: usize = 4096;
/// The scratch mapping: good pointers point here; a PROT_NONE page follows.
const SCRATCH_PAGES: usize = 16;
const SCRATCH_HINT: usize = 0x1000_0000;
/// mmap flags and protections used to build the scratch area.
const PROT_NONE: usize = 0;
const PROT_RW: usize = 3;
const MAP_PRIVATE_ANON: usize = 0x22;
const MAP_FIXED: usize = 0x10;

/// Highest system-call number drawn uniformly (Linux 6.x ends at 462).
const NR_MAX: u64 = 470;
/// The x32 ABI bit.
const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// splitmix64: small, fast, good enough for argument choice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// What an argument is, for choosing its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// Anything (a random class).
    Any,
    Fd,
    /// A buffer pointer, good or bad.
    Ptr,
    Len,
    /// A (mostly page-aligned) address: own mappings, scratch, holes.
    Addr,
    Flags,
    /// A small integer.
    Int,
    /// A path: a pointer to one of a few strings, or a bad pointer.
    Path,
    /// A signal number.
    Sig,
}

use Arg::*;

/// Argument classes of the system calls the kernel implements or soon will
/// (Linux x86-64 numbers).
fn hint(nr: u64) -> [Arg; 6] {
    match nr {
        0 | 1 => [Fd, Ptr, Len, Any, Any, Any],     // read, write
        2 => [Path, Flags, Int, Any, Any, Any],     // open
        3 | 32 => [Fd, Any, Any, Any, Any, Any],    // close, dup
        4 | 6 => [Path, Ptr, Any, Any, Any, Any],   // stat, lstat
        5 => [Fd, Ptr, Any, Any, Any, Any],         // fstat
        7 => [Ptr, Int, Int, Any, Any, Any],        // poll
        8 => [Fd, Any, Int, Any, Any, Any],         // lseek
        9 => [Addr, Len, Int, Flags, Fd, Len],      // mmap
        10 | 28 => [Addr, Len, Int, Any, Any, Any], // mprotect, madvise
        11 => [Addr, Len, Any, Any, Any, Any],      // munmap
        12 => [Addr, Any, Any, Any, Any, Any],      // brk
        13 => [Sig, Ptr, Ptr, Int, Any, Any],       // rt_sigaction
        14 => [Int, Ptr, Ptr, Int, Any, Any],       // rt_sigprocmask
        16 => [Fd, Flags, Ptr, Any, Any, Any],      // ioctl
        17 | 18 => [Fd, Ptr, Len, Len, Any, Any],   // pread64, pwrite64
        19 | 20 => [Fd, Ptr, Int, Any, Any, Any],   // readv, writev
        21 => [Path, Int, Any, Any, Any, Any],      // access
        22 => [Ptr, Any, Any, Any, Any, Any],       // pipe
        25 => [Addr, Len, Len, Flags, Addr, Any],   // mremap
        26 => [Addr, Len, Flags, Any, Any, Any],    // msync
        27 => [Addr, Len, Ptr, Any, Any, Any],      // mincore
        33 => [Fd, Fd, Any, Any, Any, Any],         // dup2
        35 => [Ptr, Ptr, Any, Any, Any, Any],       // nanosleep
        61 => [Int, Ptr, Flags, Ptr, Any, Any],     // wait4
        62 => [Int, Sig, Any, Any, Any, Any],       // kill
        63 | 99 => [Ptr, Any, Any, Any, Any, Any],  // uname, sysinfo
        72 => [Fd, Int, Any, Any, Any, Any],        // fcntl
        79 => [Ptr, Len, Any, Any, Any, Any],       // getcwd
        80 => [Path, Any, Any, Any, Any, Any],      // chdir
        89 => [Path, Ptr, Len, Any, Any, Any],      // readlink
        96 => [Ptr, Ptr, Any, Any, Any, Any],       // gettimeofday
        97 | 98 | 160 => [Int, Ptr, Any, Any, Any, Any], // [gs]etrlimit, getrusage
        131 => [Ptr, Ptr, Any, Any, Any, Any],      // sigaltstack
        158 => [Flags, Addr, Any, Any, Any, Any],   // arch_prctl
        200 => [Int, Sig, Any, Any, Any, Any],      // tkill
        202 => [Ptr, Int, Int, Ptr, Ptr, Int],      // futex
        204 => [Int, Len, Ptr, Any, Any, Any],      // sched_getaffinity
        217 => [Fd, Ptr, Len, Any, Any, Any],       // getdents64
        228 | 229 => [Int, Ptr, Any, Any, Any, Any], // clock_gettime/getres
        230 => [Int, Int, Ptr, Ptr, Any, Any],      // clock_nanosleep
        234 => [Int, Int, Sig, Any, Any, Any],      // tgkill
        257 => [Fd, Path, Flags, Int, Any, Any],    // openat
        262 => [Fd, Path, Ptr, Flags, Any, Any],    // newfstatat
        270 => [Int, Ptr, Ptr, Ptr, Ptr, Ptr],      // pselect6
        271 => [Ptr, Int, Ptr, Ptr, Int, Any],      // ppoll
        292 => [Fd, Fd, Flags, Any, Any, Any],      // dup3
        293 => [Ptr, Flags, Any, Any, Any, Any],    // pipe2
        302 => [Int, Int, Ptr, Ptr, Any, Any],      // prlimit64
        318 => [Ptr, Len, Flags, Any, Any, Any],    // getrandom
        332 => [Fd, Path, Flags, Flags, Ptr, Any],  // statx
        _ => [Any; 6],
    }
}

/// The child's world: its descriptors and interesting addresses.
struct World {
    rng: Rng,
    pid: u64,
    scratch: usize,
    fds: [u64; 6],
    text: u64,
    stack: u64,
    heap: u64,
    vdso: u64,
    /// A zero timespec / timeval, and a 1 ms one, for the forced timeouts.
    zero_ts: u64,
    short_ts: u64,
    paths: [u64; 8],
}

/// The children's scratch directory and the file in it (see the module doc).
const FUZZ_DIR: &CStr = c"/tmp/fuzz";
const FUZZ_FILE: &CStr = c"/tmp/fuzz/file";
/// How deep [`remove_tree`] goes (children make nested directories only by chance).
const MAX_TREE_DEPTH: u32 = 16;

/// Paths the Path class points at (written into the scratch area).
const PATHS: [&[u8]; 7] = [
    b"/tmp/fuzz\0",
    b"/proc/self/maps\0",
    b"/tmp/fuzz/file\0",
    b"/proc\0",
    b"/nonexistent/file\0",
    b"\0",
    b"/proc/self/status\0",
];

impl World {
    /// Write the forced timeouts (zero, and one millisecond) where the calls
    /// will read them.
    fn reset_timeouts(&self) {
        // SAFETY: the last RW page of the scratch mapping, unless the child
        // unmapped or protected it since, when the write ends the child with
        // SIGSEGV (a counted death, like any other).
        unsafe { core::ptr::write_volatile(self.zero_ts as *mut [u64; 4], [0, 0, 0, 1_000_000]) };
    }

    fn int(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(6) {
            0 => r.below(17),
            1 => u64::MAX,         // -1
            2 => (-100i64) as u64, // AT_FDCWD
            3 => i32::MIN as i64 as u64,
            4 => r.next() as u32 as u64,
            _ => r.below(4096),
        }
    }

    fn fd(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=5 => {
                let i = self.rng.below(self.fds.len() as u64) as usize;
                self.fds[i]
            }
            6 => self.rng.below(64),        // maybe open, maybe closed
            7 => 500 + self.rng.below(400), // closed
            8 => self.rng.pick(&[0x7fff_ffff, u64::MAX, 1 << 32 | 1, 1023]),
            _ => (-100i64) as u64, // AT_FDCWD
        }
    }

    fn good_ptr(&mut self) -> u64 {
        let off = self.rng.below((SCRATCH_PAGES * PAGE) as u64);
        let p = self.scratch as u64 + off;
        if self.rng.chance(50) {
            p & !7
        } else {
            p
        }
    }

    fn bad_ptr(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(9) {
            0 => r.below(PAGE as u64),                             // NULL + small
            1 => 0xffff_8880_0000_0000 + r.below(1 << 30),         // direct map
            2 => 0xffff_ffff_8000_0000 + r.below(16 << 20),        // kernel image
            3 => 0xffff_c900_0000_0000 + r.below(1 << 24),         // vmalloc
            4 => 0x0000_8000_0000_0000 + r.below(1 << 40),         // non-canonical
            5 => 0x8000_0000_0000_0000 | r.next() >> 2,            // non-canonical
            6 => 0x0000_1000_0000_0000 + r.below(1 << 36),         // unmapped hole
            7 => 0x0000_7fff_ffff_f000 + r.below(PAGE as u64 * 2), // the top page
            _ => {
                // The last bytes before the PROT_NONE page.
                (self.scratch + SCRATCH_PAGES * PAGE) as u64 - 1 - r.below(32)
            }
        }
    }

    fn own_addr(&mut self) -> u64 {
        let a = match self.rng.below(4) {
            0 => self.text,
            1 => self.stack,
            2 => self.heap,
            _ => self.vdso,
        };
        a.wrapping_add(self.rng.below(8 * PAGE as u64))
            .wrapping_sub(4 * PAGE as u64)
    }

    fn ptr(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=4 => self.good_ptr(),
            5..=7 => self.bad_ptr(),
            8 => self.own_addr(),
            _ => 0,
        }
    }

    fn addr(&mut self) -> u64 {
        let a = match self.rng.below(8) {
            0..=2 => self.scratch as u64 + self.rng.below(SCRATCH_PAGES as u64 + 2) * PAGE as u64,
            3 | 4 => self.own_addr(),
            5 => self.bad_ptr(),
            6 => 0,
            _ => 0x2000_0000 + self.rng.below(1 << 16) * PAGE as u64,
        };
        if self.rng.chance(85) {
            a & !(PAGE as u64 - 1)
        } else {
            a
        }
    }

    fn len(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(10) {
            0 => 0,
            1 => r.below(64),
            2 | 3 => r.below(16) * PAGE as u64,
            4 => PAGE as u64 * (1 + r.below(2 * SCRATCH_PAGES as u64)),
            5 => r.pick(&[
                1 << 40,
                1 << 44,
                u64::MAX,
                1 << 63,
                0x7fff_ffff,
                0xffff_ffff,
            ]),
            6 => u64::MAX - r.below(PAGE as u64),
            7 => r.below(1 << 20),
            _ => r.below(4096),
        }
    }

    fn flags(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(6) {
            0 => 0,
            1 => 1 << r.below(64),
            2 => r.next() as u32 as u64,
            3 => r.next(),
            _ => r.next() & 0xfff,
        }
    }

    fn path(&mut self) -> u64 {
        if self.rng.chance(80) {
            let i = self.rng.below(self.paths.len() as u64) as usize;
            self.paths[i]
        } else {
            self.ptr()
        }
    }

    fn sig(&mut self) -> u64 {
        match self.rng.below(10) {
            0 => 0,
            1 => 65 + self.rng.below(100),
            _ => 1 + self.rng.below(64),
        }
    }

    fn any(&mut self) -> u64 {
        match self.rng.below(8) {
            0 => self.int(),
            1 => self.fd(),
            2 => self.ptr(),
            3 => self.len(),
            4 => self.addr(),
            5 => self.flags(),
            6 => self.rng.next(),
            _ => self.rng.below(3),
        }
    }

    fn value(&mut self, a: Arg) -> u64 {
        match a {
            Any => self.any(),
            Fd => self.fd(),
            Ptr => self.ptr(),
            Len => self.len(),
            Addr => self.addr(),
            Flags => self.flags(),
            Int => self.int(),
            Path => self.path(),
            Sig => self.sig(),
        }
    }

    /// Whether a self-directed signal may be one that kills (1 in 50).
    fn lethal(&mut self) -> bool {
        self.rng.below(50) == 0
    }

    fn number(&mut self) -> u64 {
        match self.rng.below(100) {
            0..=59 => self.rng.pick(&INTERESTING),
            60..=96 => self.rng.below(NR_MAX + 1),
            97 => NR_MAX + 1 + self.rng.below(200),
            98 => X32_SYSCALL_BIT | self.rng.below(550),
            _ => self.rng.next(),
        }
    }
}

/// System calls drawn more often: what the kernel implements (or will soon).
const INTERESTING: [u64; 60] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 22, 25, 26, 27, 28,
    32, 33, 35, 39, 61, 62, 63, 72, 79, 80, 89, 96, 97, 98, 99, 131, 158, 200, 202, 204, 217, 228,
    229, 230, 234, 257, 262, 270, 271, 292, 293, 302, 318, 332,
];

/// What to do with a drawn call.
enum Plan {
    /// Make it with these arguments.
    Call([u64; 6]),
    /// Not in a child (see the module comment).
    Deny,
}

/// `O_NONBLOCK` (also `EFD_NONBLOCK`, `SFD_NONBLOCK`, `TFD_NONBLOCK`,
/// `IN_NONBLOCK`, `SOCK_NONBLOCK`: all 0o4000 on x86-64).
const NONBLOCK: u64 = O_NONBLOCK as u64;
const F_SETFL: u64 = 4;
const F_SETLKW: u64 = 7;
const F_OFD_SETLKW: u64 = 38;
const F_GETFD: u64 = 1;
const FIONBIO: u64 = 0x5421;

/// Adjust or refuse call `nr` with arguments `a` so that it cannot end,
/// block or reach outside the child.
fn plan(w: &mut World, nr: u64, mut a: [u64; 6]) -> Plan {
    let me = w.pid;
    // Never touch the report and log descriptors.
    for v in a.iter_mut() {
        if *v == REPORT_FD as u64 || *v == LOG_FD as u64 {
            *v = REPORT_FD as u64 - 1;
        }
    }
    match nr {
        // End or replace the child, or multiply it.
        56 | 57 | 58 | 59 | 60 | 231 | 322 | 435 => return Plan::Deny,
        // Sleep until a signal, with no timeout.
        34 | 130 => return Plan::Deny,
        // Block without a timeout: sockets, SysV/POSIX IPC, AIO, epoll,
        // flock, userfaultfd, splice-family on pipes, io_uring.
        42 | 43 | 45 | 47 | 288 | 299 | 65 | 69 | 70 | 220 | 242 | 243 | 208 | 333 | 232 | 281
        | 441 | 73 | 323 | 275 | 276 | 278 | 40 | 326 | 426 => return Plan::Deny,
        // Reach outside the child: tracing, the machine (its wall clock too:
        // settimeofday, clock_settime), modules, mounts (the parent shares the
        // mount table), FIFOs (an open would block).
        101
        | 169
        | 175
        | 176
        | 313
        | 246
        | 320
        | 165
        | 166
        | 155
        | 428..=433
        | 442
        | 133
        | 259
        | 164
        | 227 => return Plan::Deny,
        // Signals and other per-process calls: only at the child itself, and
        // mostly signals that do nothing by default (a child that kills
        // itself at once makes few calls).
        62 | 200 | 129 | 434 => {
            a[0] = me;
            if nr != 434 && !w.lethal() {
                a[1] = harmless_signal(a[1]);
            }
        }
        234 | 297 => {
            a[0] = me;
            a[1] = me;
            if !w.lethal() {
                a[2] = harmless_signal(a[2]);
            }
        }
        109 | 140 | 141 | 142 | 143 | 144 | 145 | 203 | 204 | 251 | 252 | 274 | 279 | 302 | 310
        | 311 | 312 | 315 => {
            // setpgid, [gs]etpriority, sched_*, ioprio_*, get_robust_list,
            // migrate/move_pages, prlimit64, process_vm_*, kcmp,
            // sched_getattr: pid 0 is the caller.
            a[0] = 0;
            if nr == 141 || nr == 140 || nr == 251 || nr == 252 {
                // (which, who): who = 0 is the caller.
                a[1] = 0;
            }
            if nr == 312 {
                a[1] = 0;
            }
        }
        // Non-blocking descriptors only (pipe was turned into pipe2).
        293 | 290 | 289 | 283 | 294 => {
            // pipe2(p, fl), eventfd2(n, fl), signalfd4(fd, m, sz, fl),
            // timerfd_create(clk, fl), inotify_init1(fl)
            let i = match nr {
                293 | 290 => 1,
                289 => 3,
                283 => 1,
                _ => 0,
            };
            a[i] |= NONBLOCK;
        }
        284 | 282 | 253 => return Plan::Deny, // eventfd, signalfd, inotify_init: no flags
        41 | 53 => a[1] |= NONBLOCK,          // socket, socketpair type
        2 => a[1] |= NONBLOCK,
        257 => a[2] |= NONBLOCK,
        72 => match a[1] {
            F_SETFL => a[2] |= NONBLOCK,
            F_SETLKW | F_OFD_SETLKW => a[1] = F_GETFD,
            _ => {}
        },
        16 if a[1] & 0xffff_ffff == FIONBIO => a[1] = 0,
        // Timeouts: zero, or a millisecond. The timespecs live in the scratch
        // mapping, which earlier random calls may have overwritten (a read
        // into it leaves a timeout of years): written again before the call.
        // If the child unmapped or protected them, the write kills the child.
        23 | 270 | 271 | 35 | 230 | 128 | 202 => w.reset_timeouts(),
        _ => {}
    }
    match nr {
        7 => a[2] &= 1,
        23 => a[4] = w.zero_ts,
        270 | 271 => {
            let i = if nr == 270 { 4 } else { 2 };
            a[i] = w.zero_ts;
        }
        35 => a[0] = w.short_ts,
        230 => a[2] = w.short_ts,
        128 => a[2] = w.zero_ts,
        202 => a[3] = w.zero_ts,
        // Close everything but the report descriptor.
        436 if a[0] <= LOG_FD as u64 && a[1] >= REPORT_FD as u64 => a[1] = REPORT_FD as u64 - 1,
        _ => {}
    }
    Plan::Call(a)
}

/// Signal 0 (a permission check), or one whose default action is to ignore
/// it (SIGCHLD, SIGURG, SIGWINCH).
fn harmless_signal(sig: u64) -> u64 {
    [0, 17, 23, 28][(sig % 4) as usize]
}

/// Per-child counts, sent to the parent at the end.
struct Stats {
    calls: u64,
    ok: u64,
    denied: u64,
    errno: [u64; NERRNO],
    other: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            calls: 0,
            ok: 0,
            denied: 0,
            errno: [0; NERRNO],
            other: 0,
        }
    }
}

/// A check word over a report, so that a report the child's own calls
/// scribbled on is recognised.
fn checksum(words: &[u64]) -> u64 {
    words.iter().fold(0x5eed_f00d_u64, |a, &w| {
        (a ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(7)
    })
}

fn report(words: &[u64]) {
    // SAFETY: a plain byte view of the words.
    let bytes = unsafe {
        core::slice::from_raw_parts(words.as_ptr() as *const u8, core::mem::size_of_val(words))
    };
    // SAFETY: writing a buffer we own; the descriptor may be gone (ignored).
    unsafe {
        syscall6(
            1,
            REPORT_FD as usize,
            bytes.as_ptr() as usize,
            bytes.len(),
            0,
            0,
            0,
        );
    }
}

/// Set up the child's world: scratch area with a PROT_NONE page after it,
/// a few open descriptors, the paths.
fn world(seed: u64, child: u64) -> Option<World> {
    let len = (SCRATCH_PAGES + 1) * PAGE;
    // SAFETY: a new anonymous mapping at an address nothing else uses.
    let scratch = unsafe {
        syscall6(
            9,
            SCRATCH_HINT,
            len,
            PROT_RW,
            MAP_PRIVATE_ANON | MAP_FIXED,
            usize::MAX,
            0,
        )
    };
    if scratch != SCRATCH_HINT {
        return None;
    }
    // SAFETY: the last page of the mapping just made.
    unsafe { syscall6(10, scratch + SCRATCH_PAGES * PAGE, PAGE, PROT_NONE, 0, 0, 0) };
    // A read before the first write maps the kernel's zero page, which it
    // allocates at its first use: the warm-up child makes that happen before
    // the baseline is taken.
    // SAFETY: the first page of the mapping just made.
    let _ = unsafe { core::ptr::read_volatile(scratch as *const u64) };
    let mut rng = Rng(seed ^ (child + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    // Random contents, then the strings and timespecs.
    for i in 0..SCRATCH_PAGES * PAGE / 8 {
        let v = rng.next();
        // SAFETY: inside the RW part of the scratch mapping.
        unsafe { ((scratch + i * 8) as *mut u64).write(v) };
    }
    let mut paths = [0u64; 8];
    let mut at = scratch + (SCRATCH_PAGES - 1) * PAGE;
    for (i, p) in PATHS.iter().enumerate() {
        // SAFETY: the strings fit in the last RW page.
        unsafe { core::ptr::copy_nonoverlapping(p.as_ptr(), at as *mut u8, p.len()) };
        paths[i] = at as u64;
        at += p.len();
    }
    // A name longer than PATH_MAX without a NUL, up to the PROT_NONE page.
    paths[7] = (scratch + (SCRATCH_PAGES - 2) * PAGE) as u64;
    // SAFETY: the two pages before the PROT_NONE page are RW.
    unsafe {
        core::ptr::write_bytes(paths[7] as *mut u8, b'a', PAGE);
    }
    let ts = (scratch + SCRATCH_PAGES * PAGE - 64) & !15;
    let mut fds = [0u64; 6];
    let opened = [
        c"/proc/self/maps",
        FUZZ_FILE,
        c"/proc",
        c"/proc/self/status",
    ];
    for (i, p) in opened.iter().enumerate() {
        fds[i] = vmrt::sys::fs::open(p, O_NONBLOCK, 0).map_or(u64::MAX, |f| f as u64);
    }
    let (r, wr) = pipe2(O_NONBLOCK).unwrap_or((-1, -1));
    fds[4] = r as u64;
    fds[5] = wr as u64;
    let local = 0u64;
    let heap: Vec<u8> = Vec::with_capacity(64);
    Some(World {
        rng,
        pid: getpid() as u64,
        scratch,
        fds,
        text: main as *const () as u64,
        stack: &local as *const u64 as u64,
        heap: heap.as_ptr() as u64,
        vdso: vmrt::env::auxv(33).unwrap_or(0) as u64,
        zero_ts: ts as u64,
        short_ts: ts as u64 + 16,
        paths,
    })
    .inspect(|w| w.reset_timeouts())
}

/// The child index of the warm-up run, which makes no random call.
const WARM_UP_CHILD: u64 = u64::MAX;

/// In the warm-up child: the calls that grow kernel tables once, for good, so that their
/// growth is in the baseline and not taken for a leak of the first child that makes them:
/// the sleepers' timer list (nanosleep) and the interval-timer list (alarm).
fn warm_kernel_tables() {
    let ms = vmrt::sys::time::Timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    let _ = vmrt::sys::time::nanosleep(&ms);
    // SAFETY: alarm takes no pointer; the second call disarms the first.
    unsafe {
        syscall6(vmrt::sys::nr::SYS_alarm, 1000, 0, 0, 0, 0, 0);
        syscall6(vmrt::sys::nr::SYS_alarm, 0, 0, 0, 0, 0, 0);
    }
}

/// A child's life: `calls` random system calls, then exit.
fn child(seed: u64, index: u64, calls: u64, verbose: bool) -> ! {
    // In a replay, each call goes to stderr through LOG_FD first.
    let log = verbose && dup2(2, LOG_FD).is_ok();
    // No output from random writes: the console descriptors go.
    for fd in 0..3 {
        let _ = close(fd);
    }
    let Some(mut w) = world(seed, index) else {
        exit_group(3)
    };
    if index == WARM_UP_CHILD {
        warm_kernel_tables();
    }
    let mut st = Stats::new();
    for i in 0..calls {
        let mut nr = w.number();
        let hints = hint(nr);
        let mut a = [0u64; 6];
        for (v, h) in a.iter_mut().zip(hints) {
            *v = w.value(h);
        }
        if nr == 22 {
            nr = 293; // pipe -> pipe2(p, O_NONBLOCK)
        }
        st.calls += 1;
        match plan(&mut w, nr, a) {
            Plan::Deny => {
                st.denied += 1;
                if log {
                    let _ =
                        vmrt::io::write_fmt(LOG_FD, format_args!("call {i}: {nr} denied"), true);
                }
            }
            Plan::Call(a) => {
                if log {
                    let _ = vmrt::io::write_fmt(
                        LOG_FD,
                        format_args!(
                            "call {i}: {nr}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x})",
                            a[0], a[1], a[2], a[3], a[4], a[5]
                        ),
                        true,
                    );
                }
                // SAFETY: none; that is the point. The child may die.
                let r = unsafe {
                    syscall6(
                        nr as usize,
                        a[0] as usize,
                        a[1] as usize,
                        a[2] as usize,
                        a[3] as usize,
                        a[4] as usize,
                        a[5] as usize,
                    )
                };
                if log {
                    let _ = vmrt::io::write_fmt(LOG_FD, format_args!("  = {:#x}", r), true);
                }
                match vmrt::sys::check(r) {
                    Ok(_) => st.ok += 1,
                    Err(Errno(e)) if (e as usize) < NERRNO => st.errno[e as usize] += 1,
                    Err(_) => st.other += 1,
                }
            }
        }
        if (i + 1) % CHECKPOINT == 0 {
            report(&[TAG_PROGRESS, st.calls]);
        }
    }
    let mut words = [0u64; FINAL_WORDS];
    words[..5].copy_from_slice(&[TAG_FINAL, st.calls, st.ok, st.denied, st.other]);
    words[5..5 + NERRNO].copy_from_slice(&st.errno);
    words[FINAL_WORDS - 1] = checksum(&words[..FINAL_WORDS - 1]);
    report(&words);
    exit_group(0)
}

/// Totals over all children.
struct Totals {
    calls: u64,
    ok: u64,
    denied: u64,
    other: u64,
    errno: [u64; NERRNO],
    /// Calls of children that did not report at the end (killed).
    unreported: u64,
    exited: u64,
    exit_nonzero: u64,
    signaled: [u64; 65],
    stopped: u64,
    /// Final reports that did not add up (the child overwrote its counters).
    corrupt: u64,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            calls: 0,
            ok: 0,
            denied: 0,
            other: 0,
            errno: [0; NERRNO],
            unreported: 0,
            exited: 0,
            exit_nonzero: 0,
            signaled: [0; 65],
            stopped: 0,
            corrupt: 0,
        }
    }
}

/// Read a child's report records from `fd` until end of file, into `buf`
/// (allocated once: the parent's memory must not grow while it measures).
fn collect(fd: i32, k: u64, t: &mut Totals, buf: &mut [u8]) {
    let mut len = 0;
    while len < buf.len() {
        match read(fd, &mut buf[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let word = |i: usize| -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let words = len / 8;
    let mut progress = 0;
    let mut i = 0;
    while i < words {
        match word(i) {
            TAG_PROGRESS if i + 1 < words => {
                progress = progress.max(word(i + 1).min(k));
                i += 2;
            }
            TAG_FINAL if i + FINAL_WORDS <= words => {
                // The child's memory is fair game for its own random calls: a
                // report that does not add up is ignored.
                let mut rec = [0u64; FINAL_WORDS];
                for (k, r) in rec.iter_mut().enumerate() {
                    *r = word(i + k);
                }
                let counted = rec[2..5]
                    .iter()
                    .chain(&rec[5..5 + NERRNO])
                    .try_fold(0u64, |a, &b| a.checked_add(b));
                if checksum(&rec[..FINAL_WORDS - 1]) != rec[FINAL_WORDS - 1]
                    || counted != Some(rec[1])
                    || rec[1] > k
                {
                    t.corrupt += 1;
                    break;
                }
                t.calls += rec[1];
                t.ok += rec[2];
                t.denied += rec[3];
                t.other += rec[4];
                for (e, n) in t.errno.iter_mut().zip(&rec[5..5 + NERRNO]) {
                    *e += n;
                }
                return;
            }
            _ => break,
        }
    }
    // Killed before its final report: count the calls it got through.
    t.calls += progress;
    t.unreported += progress;
}

/// The names of up to a buffer's worth of entries of the directory open as
/// `dir`, NUL-separated in `out` (without `.` and `..`), from its current
/// offset; how many bytes of `out` they fill. No heap: the parent must not
/// grow its own memory while it measures the kernel's.
fn dir_names(dir: i32, out: &mut [u8]) -> usize {
    let mut buf = [0u8; 1024];
    let mut used = 0;
    let Ok(n) = vmrt::sys::fs::getdents64(dir, &mut buf) else {
        return 0;
    };
    for e in vmrt::sys::fs::DirEntries::new(&buf[..n]) {
        let name = e.name;
        if name == b"." || name == b".." || used + name.len() + 1 > out.len() {
            continue;
        }
        out[used..used + name.len()].copy_from_slice(name);
        out[used + name.len()] = 0;
        used += name.len() + 1;
    }
    used
}

/// Remove everything below the directory open as `dir` (`rm -r`), at most
/// `depth` levels down, without allocating.
fn remove_tree(dir: i32, depth: u32) {
    const AT_REMOVEDIR: usize = 0x200;
    const O_DIRECTORY: u32 = 0o200000;
    const O_NOFOLLOW: u32 = 0o400000;
    let mut names = [0u8; 2048];
    // Each pass removes what it listed; a pass that lists nothing ends it.
    for _ in 0..64 {
        let _ = vmrt::sys::fs::lseek(dir, 0, 0);
        let used = dir_names(dir, &mut names);
        if used == 0 {
            return;
        }
        for name in names[..used].split_inclusive(|&b| b == 0) {
            let p = name.as_ptr() as usize;
            // SAFETY: a NUL-terminated name in `names`.
            let r = unsafe { syscall6(263, dir as usize, p, 0, 0, 0, 0) };
            if r as isize == -(Errno::EISDIR.0 as isize) && depth > 0 {
                let Ok(cname) = CStr::from_bytes_with_nul(name) else {
                    continue;
                };
                if let Ok(sub) = vmrt::sys::fs::openat(dir, cname, O_DIRECTORY | O_NOFOLLOW, 0) {
                    remove_tree(sub, depth - 1);
                    let _ = close(sub);
                }
                // SAFETY: as above.
                unsafe { syscall6(263, dir as usize, p, AT_REMOVEDIR, 0, 0, 0) };
            }
        }
    }
}

/// Every path of the tree under `path` (not /proc), for [`sweep`]'s comparison.
fn list_tree(path: &[u8], depth: u32, out: &mut Vec<Vec<u8>>) {
    const O_DIRECTORY: u32 = 0o200000;
    const O_NOFOLLOW: u32 = 0o400000;
    let mut cpath = path.to_vec();
    cpath.push(0);
    let Ok(c) = CStr::from_bytes_with_nul(&cpath) else {
        return;
    };
    let Ok(d) = vmrt::sys::fs::open(c, O_DIRECTORY | O_NOFOLLOW, 0) else {
        return;
    };
    let mut names = [0u8; 2048];
    loop {
        let used = dir_names(d, &mut names);
        if used == 0 {
            break;
        }
        for name in names[..used].split_inclusive(|&b| b == 0) {
            let mut child = path.to_vec();
            if child.last() != Some(&b'/') {
                child.push(b'/');
            }
            child.extend_from_slice(&name[..name.len() - 1]);
            if child == b"/proc" || out.try_reserve(1).is_err() {
                continue;
            }
            out.push(child.clone());
            if depth > 0 {
                list_tree(&child, depth - 1, out);
            }
        }
    }
    let _ = close(d);
}

/// Remove what a child left outside the scratch tree: every path not in `start`
/// (the tree before the first child). Walks with a path buffer on the stack.
fn sweep(start: &[Vec<u8>]) {
    let mut path = [0u8; 1024];
    path[0] = b'/';
    sweep_dir(start, &mut path, 1, MAX_TREE_DEPTH);
}

fn sweep_dir(start: &[Vec<u8>], path: &mut [u8; 1024], len: usize, depth: u32) {
    const O_DIRECTORY: u32 = 0o200000;
    const O_NOFOLLOW: u32 = 0o400000;
    if len + 1 >= path.len() {
        return;
    }
    path[len] = 0;
    let Ok(c) = CStr::from_bytes_with_nul(&path[..=len]) else {
        return;
    };
    let Ok(d) = vmrt::sys::fs::open(c, O_DIRECTORY | O_NOFOLLOW, 0) else {
        return;
    };
    let mut names = [0u8; 2048];
    // Batch by batch from the directory's offset (a removal may make the next batch
    // skip an entry; the next sweep finds it).
    loop {
        let used = dir_names(d, &mut names);
        if used == 0 {
            break;
        }
        sweep_names(start, path, len, depth, &names[..used]);
    }
    let _ = close(d);
}

fn sweep_names(start: &[Vec<u8>], path: &mut [u8; 1024], len: usize, depth: u32, names: &[u8]) {
    const O_DIRECTORY: u32 = 0o200000;
    const O_NOFOLLOW: u32 = 0o400000;
    for name in names.split_inclusive(|&b| b == 0) {
        let name = &name[..name.len() - 1];
        let sep = usize::from(len > 1);
        let end = len + sep + name.len();
        if end + 1 >= path.len() {
            continue;
        }
        if sep == 1 {
            path[len] = b'/';
        }
        path[len + sep..end].copy_from_slice(name);
        let child = &path[..end];
        if child == b"/proc" {
            continue;
        }
        if start.iter().any(|p| p.as_slice() == child) {
            if depth > 0 {
                sweep_dir(start, path, end, depth - 1);
            }
            continue;
        }
        path[end] = 0;
        let p = path.as_ptr() as usize;
        // unlink, or for a directory empty it and rmdir it.
        // SAFETY: a NUL-terminated path in `path`.
        let r = unsafe { syscall6(87, p, 0, 0, 0, 0, 0) };
        if r as isize == -(Errno::EISDIR.0 as isize) {
            if let Ok(cs) = CStr::from_bytes_with_nul(&path[..=end]) {
                if let Ok(sub) = vmrt::sys::fs::open(cs, O_DIRECTORY | O_NOFOLLOW, 0) {
                    remove_tree(sub, MAX_TREE_DEPTH);
                    let _ = close(sub);
                }
            }
            // SAFETY: as above.
            unsafe { syscall6(84, p, 0, 0, 0, 0, 0) };
        }
    }
}

/// Make the children's scratch tree anew: an empty [`FUZZ_DIR`] holding
/// [`FUZZ_FILE`] with a few bytes, and the working directory there.
fn reset_scratch_tree() {
    const O_DIRECTORY: u32 = 0o200000;
    if let Ok(d) = vmrt::sys::fs::open(FUZZ_DIR, O_DIRECTORY, 0) {
        remove_tree(d, MAX_TREE_DEPTH);
        let _ = close(d);
    }
    // The directory itself goes too, so that the dentries cached below it (names
    // children looked up) go with it.
    // SAFETY: a NUL-terminated path.
    unsafe {
        syscall6(84, FUZZ_DIR.as_ptr() as usize, 0, 0, 0, 0, 0);
        syscall6(83, FUZZ_DIR.as_ptr() as usize, 0o755, 0, 0, 0, 0);
    }
    if let Ok(f) = vmrt::sys::fs::open(FUZZ_FILE, 0o1 | 0o100, 0o644) {
        let _ = vmrt::sys::fs::write(f, b"the fuzzer's scratch file\n");
        let _ = close(f);
    }
    // SAFETY: as above.
    unsafe { syscall6(80, FUZZ_DIR.as_ptr() as usize, 0, 0, 0, 0, 0) };
}

/// Free pages: MemFree plus the per-CPU lists (`/proc/vmscope/freepages`,
/// read in one go; MemFree alone moves as the per-CPU lists fill and drain).
/// Caches a [`Usage`] keeps, and the bytes of a cache name it compares.
const USAGE_CACHES: usize = 64;
const CACHE_NAME: usize = 32;

/// What a leak check compares (`/proc/vmscope/freepages`): free pages plus the pages slab
/// caches and the fuzzer itself hold, and each cache's live objects. Fixed-size, so that taking a reading does
/// not grow the fuzzer's own heap (its pages would look leaked).
struct Usage {
    held: u64,
    n: usize,
    /// Per cache: name, live objects, slot size.
    caches: [([u8; CACHE_NAME], u64, u64); USAGE_CACHES],
}

impl Usage {
    fn caches(&self) -> &[([u8; CACHE_NAME], u64, u64)] {
        &self.caches[..self.n]
    }
}

fn mem_free() -> Option<Usage> {
    let text = read_file(c"/proc/vmscope/freepages").ok()?;
    // The fuzzer's own pages (its heap and stack grow as it works) are not leaked.
    let held = vmrt::procfs::value(&text, "total")?
        + vmrt::procfs::value(&text, "slab")?
        + vmrt::procfs::value(&text, "reader")?;
    let mut u = Usage {
        held,
        n: 0,
        caches: [([0; CACHE_NAME], 0, 0); USAGE_CACHES],
    };
    for line in vmrt::procfs::lines(&text) {
        let mut f = vmrt::procfs::fields(line);
        if f.next() != Some(b"cache".as_slice()) || u.n == USAGE_CACHES {
            continue;
        }
        let (Some(name), Some(live), Some(size)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mut key = [0; CACHE_NAME];
        let len = name.len().min(CACHE_NAME);
        key[..len].copy_from_slice(&name[..len]);
        let num = |v| vmrt::procfs::parse_u64(v).unwrap_or(0);
        u.caches[u.n] = (key, num(live), num(size));
        u.n += 1;
    }
    Some(u)
}

/// Pages leaked between two readings: free and slab pages that did not come back, plus
/// the objects any cache gained, in pages rounded up (a slab page that objects older than
/// the workload still pin is not a leak; one more live object is, whatever slab it is in).
fn leaked(before: &Usage, after: &Usage) -> i64 {
    let grown: u64 = after
        .caches()
        .iter()
        .map(|(name, live, size)| {
            let old = before
                .caches()
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or(0, |c| c.1);
            live.saturating_sub(old) * size
        })
        .sum();
    before.held as i64 - after.held as i64 + grown.div_ceil(PAGE as u64) as i64
}

/// The lines of /proc/meminfo and /proc/slabinfo, for showing where a replayed
/// child's leaked pages went.
fn memory_stats() -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for path in [
        c"/proc/vmscope/freepages",
        c"/proc/meminfo",
        c"/proc/slabinfo",
    ] {
        if let Ok(text) = read_file(path) {
            lines.extend(text.split(|&b| b == b'\n').map(<[u8]>::to_vec));
        }
    }
    lines
}

fn arg_u64(i: usize, default: u64) -> u64 {
    vmrt::env::arg(i)
        .and_then(|a| a.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The self-check's verdict, printed; whether it is `ok`.
fn selfcheck(when: &str) -> bool {
    match read_file(SELFCHECK) {
        Ok(text) => {
            let ok = text == b"ok\n";
            if !ok {
                println!("selfcheck {when}:");
                vmrt::print!("{}", vmrt::io::Lossy(&text));
            }
            ok
        }
        Err(e) => {
            println!("selfcheck {when}: {e:?}");
            false
        }
    }
}

fn main() -> i32 {
    let seed = arg_u64(1, DEFAULT_SEED);
    let calls = arg_u64(2, DEFAULT_CALLS);
    let per_child = arg_u64(3, DEFAULT_PER_CHILD).clamp(1, MAX_PER_CHILD);
    if read_file(SELFCHECK).is_err() {
        println!(
            "fuzz: {SELFCHECK:?} is missing: not the vmscope kernel; refusing to fuzz this one"
        );
        return 2;
    }
    println!(
        "fuzz: seed {seed}, {calls} calls, at most {per_child} per child (replay: fuzz {seed} {calls} {per_child})"
    );
    // One child without random calls first, so that what the first fork, pipe and
    // report allocate for good (kernel caches and tables, the parent's heap and page
    // tables) is in the baseline.
    let mut buf = alloc::vec![1u8; REPORT_MAX];
    let mut warm = Totals::new();
    reset_scratch_tree();
    let mut tree = Vec::new();
    list_tree(b"/", MAX_TREE_DEPTH, &mut tree);
    if !run_child(seed, WARM_UP_CHILD, 0, &mut warm, &mut buf, false) {
        return 1;
    }
    reset_scratch_tree();
    let before_ok = selfcheck("before");
    // Read twice: the first read may grow kernel caches.
    let _ = mem_free();
    let baseline = mem_free();
    let mut t = Totals::new();
    // Options: `each` (the self-check after every child, to find the one
    // that broke something), a child number (replay that child alone, its calls on stderr).
    let opts = vmrt::env::arg(4).and_then(|a| a.to_str()).unwrap_or("");
    let check_each = opts.split(',').any(|o| o == "each");
    if let Some(c) = opts.split(',').find_map(|o| o.parse::<u64>().ok()) {
        println!("replaying child {c} ({per_child} calls)");
        // Read before the baseline: the lines live on the fuzzer's own heap.
        let stats_before = memory_stats();
        let _ = mem_free();
        let baseline = mem_free();
        let mut t = Totals::new();
        if !run_child(seed, c, per_child, &mut t, &mut buf, true) {
            return 1;
        }
        sweep(&tree);
        reset_scratch_tree();
        let after = mem_free();
        let leaked = match (&baseline, &after) {
            (Some(b), Some(a)) => leaked(b, a),
            _ => -1,
        };
        println!("leaked pages: {leaked}");
        if leaked != 0 {
            // Where the pages went: the meminfo and slabinfo lines that changed.
            let stats_after = memory_stats();
            for line in stats_after.iter().filter(|l| !stats_before.contains(l)) {
                println!("  after:  {}", vmrt::io::Lossy(line));
            }
            for line in stats_before.iter().filter(|l| !stats_after.contains(l)) {
                println!("  before: {}", vmrt::io::Lossy(line));
            }
        }
        return i32::from(!(selfcheck("after") && leaked == 0));
    }
    let mut forked = 0u64;
    let mut drops: Vec<(u64, u64)> = Vec::with_capacity(MAX_DROPS);
    while t.calls < calls {
        let c = forked;
        forked += 1;
        // A child killed early made few calls: more children until the
        // target is reached (each at most PER_CHILD, whatever is left).
        let k = per_child.min(calls - t.calls);
        if check_each {
            println!("child {c}");
        }
        let free_before = mem_free();
        if !run_child(seed, c, k, &mut t, &mut buf, false) {
            return 1;
        }
        sweep(&tree);
        reset_scratch_tree();
        if check_each && !selfcheck("after this child") {
            println!("fuzz: the self-check failed after child {c} (replay: fuzz {seed} {calls} {per_child} {c})");
            return 1;
        }
        // Which children MemFree did not come back after (kernel caches may
        // also grow for good: only a hint for replaying a leak).
        if let (Some(b), Some(a)) = (&free_before, &mem_free()) {
            let pages = leaked(b, a);
            if pages > 0 && drops.len() < drops.capacity() {
                drops.push((c, pages as u64));
            }
        }
    }
    let after_ok = selfcheck("after");
    let _ = mem_free();
    let after = mem_free();
    let killed: u64 = t.signaled.iter().sum();
    println!(
        "calls: {} made ({} by children killed or with a garbled report), {} succeeded, {} denied",
        t.calls, t.unreported, t.ok, t.denied
    );
    print_errnos(&t);
    println!(
        "children: {forked} forked, {} exited ({} with a nonzero status, {} garbled reports), {killed} killed by a signal, {} stopped and killed",
        t.exited, t.exit_nonzero, t.corrupt, t.stopped
    );
    if killed > 0 {
        vmrt::print!("  signals:");
        for (s, n) in t.signaled.iter().enumerate().filter(|(_, n)| **n > 0) {
            match vmrt::sys::signal::name(s as i32) {
                Some(name) => vmrt::print!(" {name}x{n}"),
                None => vmrt::print!(" SIG{s}x{n}"),
            }
        }
        println!();
    }
    let leaked = match (&baseline, &after) {
        (Some(b), Some(a)) => {
            let pages = leaked(b, a);
            println!("leaked pages: {pages}");
            pages
        }
        _ => {
            println!("leaked pages: MemFree unreadable");
            -1
        }
    };
    if leaked != 0 {
        for (c, pages) in &drops {
            println!("  free pages fell by {pages} across child {c}");
        }
    }
    let ok = before_ok && after_ok;
    println!("selfcheck: {}", if ok { "ok" } else { "FAILED" });
    i32::from(!(ok && leaked == 0))
}

/// Fork child number `c` to make `k` calls, reap it and add its report to
/// `t`; false if fork, pipe2 or wait4 failed.
fn run_child(seed: u64, c: u64, k: u64, t: &mut Totals, buf: &mut [u8], verbose: bool) -> bool {
    let Ok((rfd, wfd)) = pipe2(O_CLOEXEC | O_NONBLOCK) else {
        println!("fuzz: pipe2 failed");
        return false;
    };
    match fork() {
        Ok(Fork::Child) => {
            let _ = close(rfd);
            if dup2(wfd, REPORT_FD).is_err() {
                exit_group(4);
            }
            let _ = close(wfd);
            child(seed, c, k, verbose)
        }
        Ok(Fork::Parent(pid)) => {
            let _ = close(wfd);
            loop {
                match wait4(pid, WUNTRACED) {
                    Ok((_, st)) if st.stopped() => {
                        t.stopped += 1;
                        let _ = kill(pid, SIGKILL);
                    }
                    Ok((_, st)) if st.signaled() => {
                        t.signaled[(st.term_signal() as usize).min(64)] += 1;
                        break;
                    }
                    Ok((_, st)) => {
                        t.exited += 1;
                        if st.exit_status() != 0 {
                            t.exit_nonzero += 1;
                        }
                        break;
                    }
                    Err(Errno::EINTR) => {}
                    Err(e) => {
                        println!("fuzz: wait4: {e:?}");
                        return false;
                    }
                }
            }
            collect(rfd, k, t, buf);
            let _ = close(rfd);
        }
        Err(e) => {
            println!("fuzz: fork: {e:?}");
            return false;
        }
    }
    true
}

/// `WUNTRACED`: report stopped children too.
const WUNTRACED: u32 = 2;

fn print_errnos(t: &Totals) {
    vmrt::print!("errors:");
    for (e, n) in t.errno.iter().enumerate().filter(|(_, n)| **n > 0) {
        vmrt::print!(" {:?}={n}", Errno(e as i32));
    }
    if t.other > 0 {
        vmrt::print!(" other={}", t.other);
    }
    println!();
}
