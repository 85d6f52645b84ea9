//! The system-call layer: the Linux x86-64 numbers and ABI, one file per family.
//!
//! [`dispatch`] runs on the task's kernel stack with the user registers in a
//! [`TrapFrame`]: number in RAX, arguments in RDI, RSI, RDX, R10, R8, R9, result (or
//! `-errno`) back in RAX. Every number of the x86-64 table ([`table`]) is either
//! implemented or answers -ENOSYS, logging `syscall N (name) not implemented` once per
//! number (at info level, so `quiet` runs stay silent); numbers past the table are -ENOSYS
//! as on Linux.
//!
//! A slow call interrupted by a signal returns an internal restart code
//! (`errno::ERESTARTSYS`...); signal delivery on the way out turns it into a restart of
//! the call (RIP back over the SYSCALL instruction, RAX the number again) or into EINTR.

pub mod copy;
pub mod errno;
pub mod fs;
pub mod futex;
pub mod info;
pub mod mm;
pub mod namei;
pub mod poll;
pub mod proc;
pub mod signal;
pub mod stat;
pub mod sys;
pub mod table;
pub mod time;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::idt::TrapFrame;
use errno::{Errno, SysResult, ENOSYS};
pub use table::nr;

/// The six argument registers of a system call.
pub struct Args(pub [u64; 6]);

impl Args {
    fn of(f: &TrapFrame) -> Self {
        Args([f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9])
    }
}

/// Numbers already reported as not implemented (one bit each).
static REPORTED: [AtomicU64; table::NR_SYSCALLS.div_ceil(64)] =
    [const { AtomicU64::new(0) }; table::NR_SYSCALLS.div_ceil(64)];
/// Whether a number past the table was reported.
static REPORTED_UNKNOWN: AtomicU64 = AtomicU64::new(0);

/// -ENOSYS for `nr`, with the one-time log line.
fn not_implemented(nr: u64) -> SysResult {
    match table::name(nr) {
        Some(name) => {
            let (w, b) = (nr as usize / 64, nr % 64);
            if REPORTED[w].fetch_or(1 << b, Ordering::Relaxed) & (1 << b) == 0 {
                log::info!("syscall {nr} ({name}) not implemented");
            }
        }
        None => {
            if REPORTED_UNKNOWN.swap(1, Ordering::Relaxed) == 0 {
                log::info!("syscall {nr} (unknown) not implemented");
            }
        }
    }
    Err(ENOSYS)
}

/// Run the system call in `frame` and store its result in RAX.
pub fn dispatch(frame: &mut TrapFrame) {
    let nr = frame.rax;
    let traced = crate::trace::syscalls_traced();
    if traced {
        crate::trace::syscall(nr);
    }
    let a = Args::of(frame);
    use crate::proc::{exec, fork as pf, kill, wait};
    let r: SysResult = match nr {
        nr::READ => fs::sys_read(&a),
        nr::WRITE => fs::sys_write(&a),
        nr::OPEN => fs::sys_open(&a),
        nr::CLOSE => fs::sys_close(&a),
        nr::STAT => stat::sys_stat(&a),
        nr::FSTAT => stat::sys_fstat(&a),
        nr::LSTAT => stat::sys_lstat(&a),
        nr::POLL => poll::sys_poll(&a),
        nr::LSEEK => fs::sys_lseek(&a),
        nr::MMAP => mm::sys_mmap(&a),
        nr::MPROTECT => mm::sys_mprotect(&a),
        nr::MUNMAP => mm::sys_munmap(&a),
        nr::BRK => mm::sys_brk(&a),
        nr::RT_SIGACTION => signal::sys_rt_sigaction(&a),
        nr::RT_SIGPROCMASK => signal::sys_rt_sigprocmask(&a),
        nr::RT_SIGRETURN => {
            // Restores every register, RAX included: nothing to store.
            if crate::proc::signal::sys_rt_sigreturn(frame) {
                crate::proc::signal::force_sig(
                    frame,
                    crate::proc::signal::SigInfo {
                        signo: crate::proc::signal::SIGSEGV,
                        code: crate::proc::signal::SI_KERNEL,
                        addr: 0,
                        pid: 0,
                        status: 0,
                    },
                );
            }
            crate::proc::signal::do_signal(frame, None);
            crate::proc::signal::check_user_return(frame);
            return;
        }
        nr::IOCTL => fs::sys_ioctl(&a),
        nr::PREAD64 => fs::sys_pread64(&a),
        nr::PWRITE64 => fs::sys_pwrite64(&a),
        nr::READV => fs::sys_readv(&a),
        nr::WRITEV => fs::sys_writev(&a),
        nr::ACCESS => stat::sys_access(&a),
        nr::PIPE => fs::sys_pipe2(&Args([a.0[0], 0, 0, 0, 0, 0])),
        nr::SELECT => poll::sys_select(&a),
        nr::SCHED_YIELD => proc::sys_sched_yield(&a),
        nr::MREMAP => mm::sys_mremap(&a),
        nr::MSYNC => mm::sys_msync(&a),
        nr::MINCORE => mm::sys_mincore(&a),
        nr::MADVISE => mm::sys_madvise(&a),
        nr::DUP => fs::sys_dup(&a),
        nr::DUP2 => fs::sys_dup2(&a),
        nr::PAUSE => kill::sys_pause(),
        nr::NANOSLEEP => time::sys_nanosleep(&a),
        nr::GETITIMER => time::sys_getitimer(&a),
        nr::ALARM => time::sys_alarm(&a),
        nr::SETITIMER => time::sys_setitimer(&a),
        nr::GETPID => proc::sys_getpid(&a),
        nr::CLONE => pf::sys_clone(frame, a.0[0], a.0[1], a.0[2], a.0[3], a.0[4]),
        nr::CLONE3 => pf::sys_clone3(frame, a.0[0], a.0[1]),
        nr::FORK => pf::do_fork(frame, 0, 0),
        nr::VFORK => pf::do_fork(frame, pf::CLONE_VM | pf::CLONE_VFORK, 0),
        nr::EXECVE => exec::sys_execve(frame, &a),
        nr::EXIT => proc::sys_exit(&a),
        nr::EXIT_GROUP => proc::sys_exit_group(&a),
        nr::WAIT4 => wait::sys_wait4(&a),
        nr::WAITID => crate::proc::wait::sys_waitid(&a),
        nr::KILL => kill::sys_kill(&a),
        nr::UNAME => info::sys_uname(&a),
        nr::FCNTL => fs::sys_fcntl(&a),
        nr::FSYNC | nr::FDATASYNC => fs::sys_fsync(&a),
        nr::TRUNCATE => fs::sys_truncate(&a),
        nr::FTRUNCATE => fs::sys_ftruncate(&a),
        nr::GETDENTS64 => fs::sys_getdents64(&a),
        nr::GETCWD => stat::sys_getcwd(&a),
        nr::CHDIR => stat::sys_chdir(&a),
        nr::FCHDIR => stat::sys_fchdir(&a),
        nr::CREAT => fs::sys_creat(&a),
        nr::READLINK => stat::sys_readlink(&a),
        nr::UMASK => stat::sys_umask(&a),
        nr::GETTIMEOFDAY => time::sys_gettimeofday(&a),
        nr::SYSLOG => sys::sys_syslog(&a),
        nr::TIMER_CREATE => crate::proc::posix_timers::sys_timer_create(a.0[0], a.0[1], a.0[2]),
        nr::TIMER_SETTIME => {
            crate::proc::posix_timers::sys_timer_settime(a.0[0], a.0[1], a.0[2], a.0[3])
        }
        nr::TIMER_GETTIME => crate::proc::posix_timers::sys_timer_gettime(a.0[0], a.0[1]),
        nr::TIMER_GETOVERRUN => crate::proc::posix_timers::sys_timer_getoverrun(a.0[0]),
        nr::TIMER_DELETE => crate::proc::posix_timers::sys_timer_delete(a.0[0]),
        nr::SENDFILE => copy::sys_sendfile(a.0[0], a.0[1], a.0[2], a.0[3]),
        nr::COPY_FILE_RANGE => copy::sys_copy_file_range(&a),
        nr::SETTIMEOFDAY => time::sys_settimeofday(&a),
        nr::CLOCK_SETTIME => time::sys_clock_settime(&a),
        nr::GETRLIMIT => sys::sys_getrlimit(&a),
        nr::SETRLIMIT => sys::sys_setrlimit(&a),
        nr::PRLIMIT64 => sys::sys_prlimit64(&a),
        nr::GETRUSAGE => proc::sys_getrusage(&a),
        nr::SYSINFO => sys::sys_sysinfo(&a),
        nr::TIMES => time::sys_times(&a),
        nr::GETUID | nr::GETGID | nr::GETEUID | nr::GETEGID => proc::sys_getuid(&a),
        nr::GETPPID => proc::sys_getppid(&a),
        nr::GETRESUID | nr::GETRESGID => proc::sys_getresuid(&a),
        nr::GETGROUPS => proc::sys_getgroups(&a),
        nr::GETCPU => proc::sys_getcpu(&a),
        nr::GETPRIORITY => proc::sys_getpriority(&a),
        nr::SCHED_GETSCHEDULER => proc::sys_sched_getscheduler(&a),
        nr::SCHED_GETPARAM => proc::sys_sched_getparam(&a),
        nr::SCHED_GET_PRIORITY_MAX => proc::sys_sched_get_priority(&a, true),
        nr::SCHED_GET_PRIORITY_MIN => proc::sys_sched_get_priority(&a, false),
        nr::SETPGID => sys::sys_setpgid(&a),
        nr::GETPGRP => sys::sys_getpgid(&Args([0; 6])),
        nr::SETSID => sys::sys_setsid(&a),
        nr::GETPGID => sys::sys_getpgid(&a),
        nr::GETSID => sys::sys_getsid(&a),
        nr::RT_SIGPENDING => signal::sys_rt_sigpending(&a),
        nr::RT_SIGSUSPEND => signal::sys_rt_sigsuspend(&a),
        nr::SIGALTSTACK => signal::sys_sigaltstack(frame, &a),
        nr::PRCTL => sys::sys_prctl(&a),
        nr::ARCH_PRCTL => proc::sys_arch_prctl(&a),
        nr::SYNC => fs::sys_sync(),
        nr::SWAPON => mm::sys_swapon(&a),
        nr::SWAPOFF => mm::sys_swapoff(&a),
        nr::GETTID => proc::sys_gettid(&a),
        nr::TKILL => signal::sys_tgkill(&a, false),
        nr::TIME => time::sys_time(&a),
        nr::FUTEX => futex::sys_futex(&a),
        nr::SCHED_GETAFFINITY => proc::sys_sched_getaffinity(&a),
        nr::SET_TID_ADDRESS => proc::sys_set_tid_address(&a),
        nr::RESTART_SYSCALL => time::sys_restart_syscall(&a),
        nr::CLOCK_GETTIME => info::sys_clock_gettime(&a),
        nr::CLOCK_GETRES => time::sys_clock_getres(&a),
        nr::CLOCK_NANOSLEEP => time::sys_clock_nanosleep(&a),
        nr::TGKILL => signal::sys_tgkill(&a, true),
        nr::RT_SIGTIMEDWAIT => {
            crate::proc::signal::sys_rt_sigtimedwait(a.0[0], a.0[1], a.0[2], a.0[3])
        }
        nr::RT_SIGQUEUEINFO => signal::sys_rt_sigqueueinfo(&a, false),
        nr::RT_TGSIGQUEUEINFO => signal::sys_rt_sigqueueinfo(&a, true),
        nr::OPENAT => fs::sys_openat(&a),
        nr::MKDIR => namei::sys_mkdirat(fs_at(), a.0[0], a.0[1]),
        nr::MKDIRAT => namei::sys_mkdirat(a.0[0] as i32, a.0[1], a.0[2]),
        nr::MKNOD => namei::sys_mknodat(fs_at(), a.0[0], a.0[1], a.0[2]),
        nr::MKNODAT => namei::sys_mknodat(a.0[0] as i32, a.0[1], a.0[2], a.0[3]),
        nr::RMDIR => namei::sys_unlinkat(fs_at(), a.0[0], 0x200),
        nr::UNLINK => namei::sys_unlinkat(fs_at(), a.0[0], 0),
        nr::UNLINKAT => namei::sys_unlinkat(a.0[0] as i32, a.0[1], a.0[2]),
        nr::RENAME => namei::sys_renameat2(fs_at(), a.0[0], fs_at(), a.0[1], 0),
        nr::RENAMEAT => namei::sys_renameat2(a.0[0] as i32, a.0[1], a.0[2] as i32, a.0[3], 0),
        nr::RENAMEAT2 => namei::sys_renameat2(a.0[0] as i32, a.0[1], a.0[2] as i32, a.0[3], a.0[4]),
        nr::LINK => namei::sys_linkat(fs_at(), a.0[0], fs_at(), a.0[1], 0),
        nr::LINKAT => namei::sys_linkat(a.0[0] as i32, a.0[1], a.0[2] as i32, a.0[3], a.0[4]),
        nr::SYMLINK => namei::sys_symlinkat(a.0[0], fs_at(), a.0[1]),
        nr::SYMLINKAT => namei::sys_symlinkat(a.0[0], a.0[1] as i32, a.0[2]),
        nr::CHMOD => namei::sys_setattr_at(fs_at(), a.0[0], true, Some(a.0[1] as u32), None),
        nr::CHOWN => namei::sys_setattr_at(
            fs_at(),
            a.0[0],
            true,
            None,
            Some((a.0[1] as u32, a.0[2] as u32)),
        ),
        nr::LCHOWN => namei::sys_setattr_at(
            fs_at(),
            a.0[0],
            false,
            None,
            Some((a.0[1] as u32, a.0[2] as u32)),
        ),
        nr::FCHMODAT => {
            namei::sys_setattr_at(a.0[0] as i32, a.0[1], true, Some(a.0[2] as u32), None)
        }
        nr::FCHOWNAT => namei::sys_setattr_at(
            a.0[0] as i32,
            a.0[1],
            !namei::nofollow(a.0[4]),
            None,
            Some((a.0[2] as u32, a.0[3] as u32)),
        ),
        nr::FCHMOD | nr::FCHOWN => fs::sys_fchmod(&a),
        nr::FLOCK => fs::sys_flock(&a),
        nr::FADVISE64 => fs::sys_fadvise64(&a),
        nr::SYNCFS => fs::sys_syncfs(&a),
        nr::EVENTFD => fs::sys_eventfd2(&Args([a.0[0], 0, 0, 0, 0, 0])),
        nr::EVENTFD2 => fs::sys_eventfd2(&a),
        nr::SCHED_SETAFFINITY => proc::sys_sched_setaffinity(&a),
        nr::UTIMENSAT => fs::sys_utimensat(&a),
        nr::NEWFSTATAT => stat::sys_newfstatat(&a),
        nr::STATFS => stat::sys_statfs(&a),
        nr::FSTATFS => stat::sys_fstatfs(&a),
        nr::READLINKAT => stat::sys_readlinkat(&a),
        nr::FACCESSAT => stat::sys_faccessat(&a),
        nr::PSELECT6 => poll::sys_pselect6(&a),
        nr::PPOLL => poll::sys_ppoll(&a),
        nr::SET_ROBUST_LIST => sys::sys_set_robust_list(&a),
        nr::GET_ROBUST_LIST => sys::sys_get_robust_list(&a),
        nr::DUP3 => fs::sys_dup3(&a),
        nr::PIPE2 => fs::sys_pipe2(&a),
        nr::PREADV => fs::sys_preadv(&a),
        nr::PWRITEV => fs::sys_pwritev(&a),
        nr::GETRANDOM => info::sys_getrandom(&a),
        nr::MEMFD_CREATE => fs::sys_memfd_create(&a),
        nr::MEMBARRIER => sys::sys_membarrier(&a),
        nr::STATX => stat::sys_statx(&a),
        nr::CLOSE_RANGE => fs::sys_close_range(&a),
        nr::FACCESSAT2 => stat::sys_faccessat2(&a),
        nr::SETXATTR..=nr::FREMOVEXATTR => {
            use stat::{XattrForm, XattrOp};
            let i = nr - nr::SETXATTR;
            let op = [XattrOp::Set, XattrOp::Get, XattrOp::List, XattrOp::Remove][i as usize / 3];
            let form = match i % 3 {
                0 => XattrForm::Path { follow: true },
                1 => XattrForm::Path { follow: false },
                _ => XattrForm::Fd,
            };
            stat::sys_xattr(&a, op, form)
        }
        // rseq: glibc (2.35+) registers an area for every thread at start-up.
        nr::RSEQ => crate::proc::rseq::sys_rseq(a.0[0], a.0[1], a.0[2], a.0[3]),
        _ => not_implemented(nr),
    };
    frame.rax = match r {
        Ok(v) => v,
        Err(Errno(e)) => (-(e as i64)) as u64,
    };
    if traced {
        crate::trace::sysret(nr, frame.rax);
    }
    // Signals are delivered on the way back to user mode; interrupted calls restart or
    // fail with EINTR there (one look under the signal lock when there is nothing to do).
    if crate::proc::signal::work_pending(frame) {
        crate::proc::signal::do_signal(frame, Some(nr));
    }
    crate::proc::signal::check_user_return(frame);
}

/// The `dirfd` of the non-`at` forms.
fn fs_at() -> i32 {
    crate::fs::namei::AT_FDCWD
}
