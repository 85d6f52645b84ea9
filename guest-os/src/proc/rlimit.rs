//! Resource limits (`struct rlimit`, `kernel/sys.c`'s getrlimit/setrlimit/prlimit64).
//!
//! Each process has the 16 limits; fork copies them, exec keeps them. Honoured here:
//! `RLIMIT_NOFILE` (descriptor numbers stay below it: EMFILE), `RLIMIT_NPROC` (fork fails
//! with EAGAIN when the user has that many processes; everyone is root here, and Linux lets
//! root past only with CAP_SYS_RESOURCE/CAP_SYS_ADMIN, which it has, so root is checked the
//! way an unprivileged user would be, making the limit testable). `RLIMIT_AS` and
//! `RLIMIT_STACK` are read by the memory code through [`current`] (mmap/brk: ENOMEM above
//! AS; exec: the stack size).

use super::Task;

pub const RLIMIT_CPU: usize = 0;
pub const RLIMIT_FSIZE: usize = 1;
pub const RLIMIT_DATA: usize = 2;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_CORE: usize = 4;
pub const RLIMIT_RSS: usize = 5;
pub const RLIMIT_NPROC: usize = 6;
pub const RLIMIT_NOFILE: usize = 7;
pub const RLIMIT_MEMLOCK: usize = 8;
pub const RLIMIT_AS: usize = 9;
pub const RLIMIT_LOCKS: usize = 10;
pub const RLIMIT_SIGPENDING: usize = 11;
pub const RLIMIT_MSGQUEUE: usize = 12;
pub const RLIMIT_NICE: usize = 13;
pub const RLIMIT_RTPRIO: usize = 14;
pub const RLIMIT_RTTIME: usize = 15;
/// Number of limits.
pub const RLIM_NLIMITS: usize = 16;
/// No limit.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// One limit: the soft value enforced, and the ceiling the soft one may be raised to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

const INF: Rlimit = Rlimit {
    cur: RLIM_INFINITY,
    max: RLIM_INFINITY,
};

/// Default stack limit (`_STK_LIM`, 8 MiB).
pub const STK_LIM: u64 = 8 << 20;
/// Default open-file limits (`INR_OPEN_CUR`, `INR_OPEN_MAX`).
pub const INR_OPEN_CUR: u64 = 1024;
pub const INR_OPEN_MAX: u64 = 4096;
/// Default locked-memory limit (`MLOCK_LIMIT`, 8 MiB since Linux 5.16).
pub const MLOCK_LIMIT: u64 = 8 << 20;
/// Default POSIX message-queue bytes (`MQ_BYTES_MAX`).
pub const MQ_BYTES_MAX: u64 = 819_200;

/// The limits init starts with (`INIT_RLIMITS`); NPROC and SIGPENDING follow from memory
/// as Linux's `fork_init` sets them: half of `max_threads`, which is the number of 16 KiB
/// kernel stacks that fit in an eighth of RAM.
pub fn init_rlimits() -> [Rlimit; RLIM_NLIMITS] {
    let pages = if crate::mm::page_alloc::is_ready() {
        crate::mm::page_alloc::with(|a| a.totalram_pages())
    } else {
        0
    };
    let max_threads = (pages / (8 * (super::sched::THREAD_SIZE / 4096))).clamp(20, 1 << 22);
    let nproc = Rlimit {
        cur: max_threads / 2,
        max: max_threads / 2,
    };
    let mut r = [INF; RLIM_NLIMITS];
    r[RLIMIT_STACK] = Rlimit {
        cur: STK_LIM,
        max: RLIM_INFINITY,
    };
    r[RLIMIT_CORE] = Rlimit {
        cur: 0,
        max: RLIM_INFINITY,
    };
    r[RLIMIT_NPROC] = nproc;
    r[RLIMIT_NOFILE] = Rlimit {
        cur: INR_OPEN_CUR,
        max: INR_OPEN_MAX,
    };
    r[RLIMIT_MEMLOCK] = Rlimit {
        cur: MLOCK_LIMIT,
        max: MLOCK_LIMIT,
    };
    r[RLIMIT_SIGPENDING] = nproc;
    r[RLIMIT_MSGQUEUE] = Rlimit {
        cur: MQ_BYTES_MAX,
        max: MQ_BYTES_MAX,
    };
    r[RLIMIT_NICE] = Rlimit { cur: 0, max: 0 };
    r[RLIMIT_RTPRIO] = Rlimit { cur: 0, max: 0 };
    r
}

/// The soft limit `resource` of the current process (`rlimit(RLIMIT_...)`); infinity
/// before the first process.
pub fn current(resource: usize) -> u64 {
    super::current().map_or(RLIM_INFINITY, |t| of(t, resource).cur)
}

/// Limit `resource` of `t`.
pub fn of(t: &Task, resource: usize) -> Rlimit {
    t.rlim.lock().get(resource).copied().unwrap_or(INF)
}

/// Processes the user has (all processes, zombies until reaped, as Linux's ucount;
/// everyone is uid 0), for RLIMIT_NPROC.
pub fn nr_processes() -> u64 {
    super::sched::all().len() as u64
}
