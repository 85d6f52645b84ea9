//! The system-call layer: the Linux x86-64 numbers and ABI, one file per family.
//!
//! [`dispatch`] runs on the task's kernel stack with the user registers in a
//! [`TrapFrame`]: number in RAX, arguments in RDI, RSI, RDX, R10, R8, R9, result (or
//! `-errno`) back in RAX. Unknown numbers return -ENOSYS, as Linux does.

pub mod errno;
pub mod fs;
pub mod info;
pub mod mm;
pub mod proc;
pub mod signal;

use crate::arch::x86_64::idt::TrapFrame;
use errno::{Errno, SysResult, ENOSYS};

/// Linux x86-64 system-call numbers (`arch/x86/entry/syscalls/syscall_64.tbl`).
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const STAT: u64 = 4;
    pub const FSTAT: u64 = 5;
    pub const LSTAT: u64 = 6;
    pub const LSEEK: u64 = 8;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const RT_SIGRETURN: u64 = 15;
    pub const IOCTL: u64 = 16;
    pub const WRITEV: u64 = 20;
    pub const PIPE: u64 = 22;
    pub const DUP2: u64 = 33;
    pub const PIPE2: u64 = 293;
    pub const MREMAP: u64 = 25;
    pub const MSYNC: u64 = 26;
    pub const MINCORE: u64 = 27;
    pub const MADVISE: u64 = 28;
    pub const SCHED_YIELD: u64 = 24;
    pub const PAUSE: u64 = 34;
    pub const GETRUSAGE: u64 = 98;
    pub const SCHED_GETAFFINITY: u64 = 204;
    pub const GETPID: u64 = 39;
    pub const CLONE: u64 = 56;
    pub const FORK: u64 = 57;
    pub const VFORK: u64 = 58;
    pub const EXECVE: u64 = 59;
    pub const EXIT: u64 = 60;
    pub const WAIT4: u64 = 61;
    pub const KILL: u64 = 62;
    pub const UNAME: u64 = 63;
    pub const GETUID: u64 = 102;
    pub const GETGID: u64 = 104;
    pub const GETEUID: u64 = 107;
    pub const GETEGID: u64 = 108;
    pub const GETPPID: u64 = 110;
    pub const ARCH_PRCTL: u64 = 158;
    pub const GETTID: u64 = 186;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const EXIT_GROUP: u64 = 231;
    pub const OPENAT: u64 = 257;
    pub const GETDENTS64: u64 = 217;
    pub const GETRANDOM: u64 = 318;
    pub const TKILL: u64 = 200;
    pub const TGKILL: u64 = 234;
}

/// The six argument registers of a system call.
pub struct Args(pub [u64; 6]);

impl Args {
    fn of(f: &TrapFrame) -> Self {
        Args([f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9])
    }
}

/// Run the system call in `frame` and store its result in RAX.
pub fn dispatch(frame: &mut TrapFrame) {
    let nr = frame.rax;
    crate::trace::syscall(nr);
    let a = Args::of(frame);
    let r: SysResult = match nr {
        nr::READ => fs::sys_read(&a),
        nr::WRITE => fs::sys_write(&a),
        nr::OPEN => fs::sys_open(&a),
        nr::CLOSE => fs::sys_close(&a),
        nr::FSTAT => fs::sys_fstat(&a),
        nr::LSEEK => fs::sys_lseek(&a),
        nr::MMAP => mm::sys_mmap(&a),
        nr::MPROTECT => mm::sys_mprotect(&a),
        nr::MUNMAP => mm::sys_munmap(&a),
        nr::BRK => mm::sys_brk(&a),
        nr::RT_SIGACTION => signal::sys_rt_sigaction(&a),
        nr::RT_SIGPROCMASK => signal::sys_rt_sigprocmask(&a),
        nr::RT_SIGRETURN => {
            // Restores every register, RAX included: nothing to store.
            crate::proc::signal::sys_rt_sigreturn(frame);
            crate::proc::signal::do_signal(frame);
            return;
        }
        nr::KILL => crate::proc::fork::sys_kill(&a),
        nr::FORK => crate::proc::fork::do_fork(frame, 0, 0),
        nr::VFORK => {
            use crate::proc::fork::{CLONE_VFORK, CLONE_VM};
            crate::proc::fork::do_fork(frame, CLONE_VM | CLONE_VFORK, 0)
        }
        nr::CLONE => crate::proc::fork::do_fork(frame, a.0[0], a.0[1]),
        nr::EXECVE => crate::proc::fork::sys_execve(frame, &a),
        nr::WAIT4 => crate::proc::fork::sys_wait4(&a),
        nr::PAUSE => crate::proc::fork::sys_pause(),
        nr::TKILL => signal::sys_tgkill(&a, false),
        nr::TGKILL => signal::sys_tgkill(&a, true),
        nr::IOCTL => fs::sys_ioctl(&a),
        nr::WRITEV => fs::sys_writev(&a),
        nr::PIPE => fs::sys_pipe2(&Args([a.0[0], 0, 0, 0, 0, 0])),
        nr::PIPE2 => fs::sys_pipe2(&a),
        nr::DUP2 => fs::sys_dup2(&a),
        nr::MREMAP => mm::sys_mremap(&a),
        nr::MSYNC => mm::sys_msync(&a),
        nr::MINCORE => mm::sys_mincore(&a),
        nr::MADVISE => mm::sys_madvise(&a),
        nr::GETPID | nr::GETTID => proc::sys_getpid(&a),
        nr::EXIT | nr::EXIT_GROUP => proc::sys_exit_group(&a),
        nr::UNAME => info::sys_uname(&a),
        nr::GETUID | nr::GETGID | nr::GETEUID | nr::GETEGID => proc::sys_getuid(&a),
        nr::GETPPID => proc::sys_getppid(&a),
        nr::ARCH_PRCTL => proc::sys_arch_prctl(&a),
        nr::SCHED_YIELD => proc::sys_sched_yield(&a),
        nr::GETRUSAGE => proc::sys_getrusage(&a),
        nr::SCHED_GETAFFINITY => proc::sys_sched_getaffinity(&a),
        nr::SET_TID_ADDRESS => proc::sys_set_tid_address(&a),
        nr::CLOCK_GETTIME => info::sys_clock_gettime(&a),
        nr::OPENAT => fs::sys_openat(&a),
        nr::GETDENTS64 => fs::sys_getdents64(&a),
        nr::GETRANDOM => info::sys_getrandom(&a),
        _ => {
            log::debug!("syscall {nr}: not implemented (ENOSYS)");
            Err(ENOSYS)
        }
    };
    frame.rax = match r {
        Ok(v) => v,
        Err(Errno(e)) => (-(e as i64)) as u64,
    };
    crate::trace::sysret(nr, frame.rax);
    // Signals are delivered on the way back to user mode.
    crate::proc::signal::do_signal(frame);
}
