//! Processes: the task structure, the current task, exec, exit.
//!
//! One CPU. A task's user state lives in the [`TrapFrame`] on its kernel stack while it is in
//! the kernel; its address space in an [`crate::mm::mm_struct::Mm`].

pub mod exec;
pub mod fork;
pub mod init;
pub mod kill;
pub mod kthread;
pub mod rlimit;
pub mod sched;
pub mod signal;
pub mod stack;
pub mod timer;
pub mod vdso;
pub mod wait;
pub mod wait_queue;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::mm::mm_struct::Mm;
use crate::sync::IrqLock;

/// Which serial port a console file writes to (see [`crate::fs::console`]).
pub use crate::fs::console::ConsolePort;

/// Scheduling states (`/proc/PID/stat` letters: R, S, Z).
pub mod state {
    pub const RUNNABLE: u8 = 0;
    pub const SLEEPING: u8 = 1;
    pub const ZOMBIE: u8 = 2;
    /// Stopped by SIGSTOP (or TSTP/TTIN/TTOU) until SIGCONT.
    pub const STOPPED: u8 = 3;
    /// Uninterruptible sleep ("D" in /proc): signals do not wake it, except SIGKILL
    /// (Linux's TASK_KILLABLE, which /proc also shows as D). A vfork parent waits so.
    pub const DISK_SLEEP: u8 = 4;
}

/// A task (`task_struct`).
pub struct Task {
    pub pid: u32,
    pub ppid: AtomicU32,
    /// The executable's name (`comm`, 15 bytes max as in Linux).
    pub comm: IrqLock<[u8; 16]>,
    pub mm: IrqLock<Option<Box<Mm>>>,
    /// The descriptor table (`files_struct`): fork copies it, sharing the descriptions.
    pub files: IrqLock<crate::fs::fdtable::FilesStruct>,
    /// The working directory as a canonical absolute path (`fs_struct.pwd`); relative
    /// paths start there. Inherited by fork, kept by exec.
    pub cwd: IrqLock<Vec<u8>>,
    /// The file-mode creation mask (`umask`, 0022 for init).
    pub umask: AtomicU32,
    /// Resource limits ([`rlimit`]).
    pub rlim: IrqLock<[rlimit::Rlimit; rlimit::RLIM_NLIMITS]>,
    /// Process group and session ids (`setpgid`, `setsid`).
    pub pgid: AtomicU32,
    pub sid: AtomicU32,
    /// The executable's absolute path (`/proc/PID/exe`).
    pub exe: IrqLock<Vec<u8>>,
    /// `set_robust_list(head, len)`: stored for thread exit ([10] adds threads).
    pub robust_list: AtomicU64,
    /// `membarrier` registrations (the MEMBARRIER_CMD_REGISTER_* bits).
    pub membarrier: AtomicU32,
    /// What `restart_syscall` continues after a signal interrupted a sleep
    /// (`restart_block`): the absolute deadline (ns, monotonic) and where to report the
    /// remaining time.
    pub restart_block: IrqLock<Option<crate::proc::timer::RestartBlock>>,
    /// The user FS base (`arch_prctl(ARCH_SET_FS)`).
    pub fs_base: AtomicU64,
    /// The user x87/SSE registers while the task is switched out
    /// ([`crate::arch::x86_64::fpu`]; while it runs they are in the CPU).
    pub fpu: IrqLock<crate::arch::x86_64::fpu::FpuState>,
    /// `set_tid_address`.
    pub clear_child_tid: AtomicU64,
    /// Page faults that needed no I/O / that read a file (`min_flt`, `maj_flt`).
    pub min_flt: AtomicU64,
    pub maj_flt: AtomicU64,
    pub signals: signal::SignalLock,
    /// [`state`].
    pub state: AtomicU8,
    /// The wait status once a zombie (`exit_code`: status << 8, or the signal).
    pub exit_code: AtomicU32,
    /// Children, for wait4.
    pub children: IrqLock<Vec<&'static Task>>,
    /// Kernel stack and the saved stack pointer while switched out.
    pub kstack: sched::KernelStack,
    /// argv as NUL-terminated strings (`/proc/PID/cmdline`).
    pub cmdline: IrqLock<Vec<u8>>,
    /// A stop or continue not yet reported to wait4 (WUNTRACED: `sig << 8 | 0x7f`,
    /// WCONTINUED: 0xffff), 0 for none.
    pub stop_report: AtomicU32,
    /// Set in a vfork child: the PID of the parent waiting in D state until this task
    /// execs or exits ([`release_vfork`]); 0 otherwise.
    pub vfork_parent: AtomicU32,
    /// A kernel thread ([`kthread`]).
    pub kthread: core::sync::atomic::AtomicBool,
    /// `/proc/PID/oom_score_adj` (-1000..=1000; -1000 exempts from the OOM killer).
    /// Inherited by fork, kept by exec.
    pub oom_score_adj: core::sync::atomic::AtomicI32,
    /// In page reclaim (`PF_MEMALLOC`): its own allocations must not reclaim again.
    pub memalloc: core::sync::atomic::AtomicBool,
    /// In a memory stall ([`crate::mm::psi`]).
    pub memstall: core::sync::atomic::AtomicBool,
    /// Sleeping locks held ([`crate::sync::Mutex`]): while non-zero, reclaim by this task
    /// does not write file pages back (`PF_MEMALLOC_NOFS`).
    pub nofs: AtomicU32,
    /// The memory cgroup's id ([`crate::mm::memcontrol`]; the root's is 1). Inherited by
    /// fork, set by a cgroup.procs write.
    pub memcg: core::sync::atomic::AtomicU16,
}

/// A vfork child execs or exits: its parent may run again (`mm_release` ->
/// `complete_vfork_done`).
pub fn release_vfork(t: &Task) {
    let parent = t.vfork_parent.swap(0, Ordering::AcqRel);
    if parent != 0 {
        if let Some(p) = sched::find(parent) {
            sched::wake_uninterruptible(p);
        }
    }
}

static CURRENT: IrqLock<Option<&'static Task>> = IrqLock::new("current", None);

/// The running task, if a process has been started.
pub fn current() -> Option<&'static Task> {
    *CURRENT.lock()
}

/// Make `t` the running task.
pub fn set_current(t: &'static Task) {
    *CURRENT.lock() = Some(t);
}

impl Task {
    /// A task with the three standard file descriptors on the console, allocated on the
    /// heap (it is over 4 KiB: built here, not in the caller's frame on a 16 KiB kernel
    /// stack), or `None` without memory for it or its kernel stack.
    #[inline(never)]
    pub fn new(pid: u32, ppid: u32) -> Option<Box<Task>> {
        let files = crate::fs::fdtable::console_table()?;
        crate::mm::slab::try_box(Task {
            pid,
            ppid: AtomicU32::new(ppid),
            comm: IrqLock::new("comm", [0; 16]),
            mm: IrqLock::new("task_mm", None),
            files: IrqLock::new("files", files),
            cwd: IrqLock::new("cwd", alloc::vec![b'/']),
            umask: AtomicU32::new(0o022),
            oom_score_adj: core::sync::atomic::AtomicI32::new(0),
            memalloc: core::sync::atomic::AtomicBool::new(false),
            memstall: core::sync::atomic::AtomicBool::new(false),
            nofs: AtomicU32::new(0),
            rlim: IrqLock::new("rlimit", rlimit::init_rlimits()),
            pgid: AtomicU32::new(pid),
            sid: AtomicU32::new(pid),
            exe: IrqLock::new("exe", Vec::new()),
            robust_list: AtomicU64::new(0),
            membarrier: AtomicU32::new(0),
            restart_block: IrqLock::new("restart_block", None),
            fs_base: AtomicU64::new(0),
            fpu: IrqLock::new("fpu", crate::arch::x86_64::fpu::FpuState::init()),
            clear_child_tid: AtomicU64::new(0),
            min_flt: AtomicU64::new(0),
            maj_flt: AtomicU64::new(0),
            signals: IrqLock::new("signals", signal::Signals::new()),
            state: AtomicU8::new(state::RUNNABLE),
            exit_code: AtomicU32::new(0),
            children: IrqLock::new("children", Vec::new()),
            kstack: sched::KernelStack::new()?,
            cmdline: IrqLock::new("cmdline", Vec::new()),
            stop_report: AtomicU32::new(0),
            vfork_parent: AtomicU32::new(0),
            kthread: core::sync::atomic::AtomicBool::new(false),
            memcg: core::sync::atomic::AtomicU16::new(crate::mm::memcontrol::ROOT_MEM_CGROUP),
        })
        .ok()
    }

    /// Whether this is a kernel thread (`PF_KTHREAD`): no user memory, never signalled.
    pub fn is_kthread(&self) -> bool {
        self.kthread.load(Ordering::Relaxed)
    }

    /// Set `comm` from a path's last component, and the executable's path
    /// (`/proc/PID/exe`; a relative path is taken from the working directory).
    pub fn set_comm(&self, path: &[u8]) {
        let exe = crate::fs::namei::absolute(&self.cwd.lock(), path);
        *self.exe.lock() = exe;
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        let mut c = [0u8; 16];
        let n = name.len().min(15);
        c[..n].copy_from_slice(&name[..n]);
        *self.comm.lock() = c;
    }

    /// Set the executable's path alone (`/proc/PID/exe`: a script's interpreter).
    pub fn set_exe(&self, path: &[u8]) {
        *self.exe.lock() = crate::fs::namei::absolute(&self.cwd.lock(), path);
    }

    /// Count a page fault.
    pub fn count_fault(&self, major: bool) {
        if major {
            self.maj_flt.fetch_add(1, Ordering::Relaxed);
        } else {
            self.min_flt.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What fork copies besides memory, descriptors and signals: the working directory,
/// umask, limits, process group and session, the executable's path.
pub fn fork_copy_fs(parent: &Task, child: &Task) {
    *child.cwd.lock() = parent.cwd.lock().clone();
    child
        .umask
        .store(parent.umask.load(Ordering::Relaxed), Ordering::Relaxed);
    child.oom_score_adj.store(
        parent.oom_score_adj.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    *child.rlim.lock() = *parent.rlim.lock();
    child
        .pgid
        .store(parent.pgid.load(Ordering::Relaxed), Ordering::Relaxed);
    child
        .sid
        .store(parent.sid.load(Ordering::Relaxed), Ordering::Relaxed);
    *child.exe.lock() = parent.exe.lock().clone();
    child
        .memcg
        .store(parent.memcg.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// How a process ended.
#[derive(Clone, Copy, Debug)]
pub enum ExitReason {
    /// `exit`/`exit_group` with this status.
    Exit(u8),
    /// Killed by this signal.
    Signal(u8),
}

/// End the current process (`do_exit`): its memory and files go, it becomes a zombie for its
/// parent's wait4, its children go to init, the parent gets SIGCHLD. When init (pid 1) ends,
/// the machine reports how on the debug console and powers off (exit status, or 128 +
/// signal): under `vmscope run` init is the user's program.
pub fn exit_current(r: ExitReason) -> ! {
    let Some(t) = current() else {
        report_and_power_off(r)
    };
    crate::mm::rmap::check(t);
    let mm = t.mm.lock().take();
    if let Some(mm) = mm {
        crate::mm::rmap::detach(mm.anon_id, t.pid);
        // Leave the address space before freeing its tables.
        // SAFETY: the master table maps the kernel; nothing user is touched after this.
        unsafe { crate::mm::pgtable::activate(&crate::mm::pgtable::kernel()) };
        mm.exit_mmap();
    }
    let files = t.files.lock().clear();
    drop(files);
    timer::exit_timers(t);
    release_vfork(t);
    let code = match r {
        ExitReason::Exit(s) => (s as u32) << 8,
        ExitReason::Signal(sig) => sig as u32 & 0x7f,
    };
    crate::trace::exit(t, code);
    if t.pid == 1 {
        report_and_power_off(r);
    }
    t.exit_code.store(code, Ordering::Relaxed);
    sched::reparent_children(t);
    t.state.store(state::ZOMBIE, Ordering::Release);
    if let Some(parent) = sched::find(t.ppid.load(Ordering::Relaxed)) {
        signal::send(
            parent,
            signal::SIGCHLD,
            // No core is written (RLIMIT_CORE is 0), so a signal death is CLD_KILLED.
            signal::SigInfo {
                signo: signal::SIGCHLD,
                code: match r {
                    ExitReason::Exit(_) => signal::CLD_EXITED,
                    ExitReason::Signal(_) => signal::CLD_KILLED,
                },
                addr: 0,
                pid: t.pid,
                status: match r {
                    ExitReason::Exit(s) => s as i32,
                    ExitReason::Signal(sig) => sig as i32,
                },
            },
        );
        sched::wake(parent);
    }
    sched::schedule();
    unreachable!("a zombie was scheduled")
}

fn report_and_power_off(r: ExitReason) -> ! {
    // A clean shutdown: dirty data written, disk filesystems unmounted (marked clean).
    crate::fs::ext2::unmount_all();
    match r {
        ExitReason::Exit(s) => {
            crate::drivers::debugcon::report_exit(s);
            crate::exit::exit(s as u32)
        }
        ExitReason::Signal(sig) => {
            crate::drivers::debugcon::report_signal(sig);
            crate::exit::exit(128 + sig as u32)
        }
    }
}
