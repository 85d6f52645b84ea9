//! Processes: the task structure, the current task, exec, exit.
//!
//! One CPU. A task's user state lives in the [`TrapFrame`] on its kernel stack while it is in
//! the kernel; its address space in an [`crate::mm::mm_struct::Mm`].

pub mod cputime;
pub mod exec;
pub mod fork;
pub mod init;
pub mod kill;
pub mod kthread;
pub mod posix_timers;
pub mod rlimit;
pub mod rseq;
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
    /// The address space, for a thread group leader or a process; a thread's is its
    /// leader's ([`Task::mm`]).
    pub mm_slot: IrqLock<Option<Box<Mm>>>,
    /// The descriptor table (`files_struct`): fork copies it, sharing the descriptions;
    /// threads share the leader's ([`Task::files`]).
    pub files_slot: IrqLock<crate::fs::fdtable::FilesStruct>,
    /// The working directory as a canonical absolute path (`fs_struct.pwd`); relative
    /// paths start there. Inherited by fork, kept by exec; threads share the leader's
    /// ([`Task::cwd`]).
    pub cwd_slot: IrqLock<Vec<u8>>,
    /// The file-mode creation mask (`umask`, 0022 for init); the leader's for threads.
    pub umask_slot: AtomicU32,
    /// The thread group id (`tgid`, what getpid answers): the leader's pid.
    pub tgid: AtomicU32,
    /// A process created with CLONE_VM (vfork, posix_spawn) uses the address space of the
    /// process whose leader this points to (null: its own, in `mm_slot`); kept by the
    /// leader ([`Task::mm`]). The owner counts its borrowers in `mm_borrowers` and hands
    /// the address space to one of them if it exits first ([`exit_current`]).
    pub mm_owner: core::sync::atomic::AtomicPtr<Task>,
    pub mm_borrowers: AtomicU32,
    /// The thread group leader, null for the leader itself ([`Task::leader`]).
    pub group_leader: core::sync::atomic::AtomicPtr<Task>,
    /// The other live threads of the group (kept by the leader).
    pub threads: IrqLock<Vec<&'static Task>>,
    /// Set once the group is exiting (`exit_group`, a fatal signal): the threads die and
    /// the last one reports `group_exit_code` to the parent (kept by the leader).
    pub group_exiting: core::sync::atomic::AtomicBool,
    pub group_exit_code: AtomicU32,
    /// The thread running execve while its peers are killed (`group_exec_task`, kept by
    /// the leader; null otherwise): the killed threads exit alone, not as a group.
    pub group_exec_task: core::sync::atomic::AtomicPtr<Task>,
    /// Resource limits ([`rlimit`]).
    pub rlim: IrqLock<[rlimit::Rlimit; rlimit::RLIM_NLIMITS]>,
    /// Process group and session ids (`setpgid`, `setsid`).
    pub pgid: AtomicU32,
    pub sid: AtomicU32,
    /// The executable's absolute path (`/proc/PID/exe`).
    pub exe: IrqLock<Vec<u8>>,
    /// The thread's registered `struct rseq` (0: none) and its abort signature
    /// ([`rseq`]); `rseq_resume` is set when it was switched out.
    pub rseq: AtomicU64,
    pub rseq_sig: AtomicU32,
    pub rseq_resume: core::sync::atomic::AtomicBool,
    /// A kernel buffer this task's file operations may use as a user buffer
    /// ([`crate::mm::uaccess::KernelWindow`]): start and length (0: none).
    pub kernel_window: AtomicU64,
    pub kernel_window_len: AtomicU64,
    /// `set_robust_list(head, len)`: walked when the thread exits or execs.
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
    /// CPU time ([`cputime`]); for a leader also what its ended threads used and what its
    /// reaped children used.
    pub acct: cputime::Acct,
    pub group_dead_usage: IrqLock<cputime::Usage>,
    pub children_usage: IrqLock<cputime::Usage>,
    /// When the task was created (ns since boot: /proc/PID/stat's start time).
    pub start_time: AtomicU64,
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
    /// The signal the parent gets when this process ends (clone's `exit_signal`: SIGCHLD
    /// for fork, 0 for none). A child whose exit signal is not SIGCHLD is a "clone"
    /// child, reaped by wait4 only with __WCLONE or __WALL.
    pub exit_signal: AtomicU8,
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
            mm_slot: IrqLock::new("task_mm", None),
            files_slot: IrqLock::new("files", files),
            cwd_slot: IrqLock::new("cwd", alloc::vec![b'/']),
            umask_slot: AtomicU32::new(0o022),
            tgid: AtomicU32::new(pid),
            group_leader: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
            threads: IrqLock::new("threads", Vec::new()),
            group_exiting: core::sync::atomic::AtomicBool::new(false),
            group_exec_task: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
            mm_owner: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
            mm_borrowers: AtomicU32::new(0),
            group_exit_code: AtomicU32::new(0),
            oom_score_adj: core::sync::atomic::AtomicI32::new(0),
            memalloc: core::sync::atomic::AtomicBool::new(false),
            memstall: core::sync::atomic::AtomicBool::new(false),
            nofs: AtomicU32::new(0),
            rlim: IrqLock::new("rlimit", rlimit::init_rlimits()),
            pgid: AtomicU32::new(pid),
            sid: AtomicU32::new(pid),
            exe: IrqLock::new("exe", Vec::new()),
            robust_list: AtomicU64::new(0),
            kernel_window: AtomicU64::new(0),
            kernel_window_len: AtomicU64::new(0),
            rseq: AtomicU64::new(0),
            rseq_sig: AtomicU32::new(0),
            rseq_resume: core::sync::atomic::AtomicBool::new(false),
            membarrier: AtomicU32::new(0),
            restart_block: IrqLock::new("restart_block", None),
            fs_base: AtomicU64::new(0),
            fpu: IrqLock::new("fpu", crate::arch::x86_64::fpu::FpuState::init()),
            clear_child_tid: AtomicU64::new(0),
            acct: cputime::Acct::new(),
            group_dead_usage: IrqLock::new("group_usage", cputime::Usage::zero()),
            children_usage: IrqLock::new("children_usage", cputime::Usage::zero()),
            start_time: AtomicU64::new(timer::now_ns()),
            min_flt: AtomicU64::new(0),
            maj_flt: AtomicU64::new(0),
            signals: IrqLock::new("signals", signal::Signals::new()),
            state: AtomicU8::new(state::RUNNABLE),
            exit_code: AtomicU32::new(0),
            children: IrqLock::new("children", Vec::new()),
            kstack: sched::KernelStack::new()?,
            cmdline: IrqLock::new("cmdline", Vec::new()),
            stop_report: AtomicU32::new(0),
            exit_signal: AtomicU8::new(signal::SIGCHLD),
            vfork_parent: AtomicU32::new(0),
            kthread: core::sync::atomic::AtomicBool::new(false),
            memcg: core::sync::atomic::AtomicU16::new(crate::mm::memcontrol::ROOT_MEM_CGROUP),
        })
        .ok()
    }

    /// The thread group leader (itself for a leader or a single-threaded process).
    pub fn leader(&self) -> &Task {
        let p = self.group_leader.load(Ordering::Acquire);
        if p.is_null() {
            self
        } else {
            // SAFETY: tasks are leaked boxes; a leader is freed only after every thread of
            // its group (it stays a zombie until the last one exits).
            unsafe { &*p }
        }
    }

    /// The group leader of a task that lives as long as the kernel keeps it (every task is
    /// a leaked box).
    pub fn group_leader_static(&'static self) -> &'static Task {
        // SAFETY: tasks are leaked boxes; a leader outlives every thread of its group.
        unsafe { &*(self.leader() as *const Task) }
    }

    /// Whether this task leads its group (or is a plain process).
    pub fn is_leader(&self) -> bool {
        self.group_leader.load(Ordering::Acquire).is_null()
    }

    /// The address space (`task->mm`): shared by the threads of a group, and with the
    /// process that lent it (CLONE_VM without CLONE_THREAD: vfork).
    pub fn mm(&self) -> &IrqLock<Option<Box<Mm>>> {
        &self.mm_holder().mm_slot
    }

    /// The leader whose `mm_slot` holds this task's address space.
    pub fn mm_holder(&self) -> &Task {
        let l = self.leader();
        let o = l.mm_owner.load(Ordering::Acquire);
        if o.is_null() {
            l
        } else {
            // SAFETY: an owner lives while it has borrowers: its exit hands the address
            // space over and repoints them first.
            unsafe { &*o }
        }
    }

    /// Which address space this task runs in, as an id: the pid of the leader holding it
    /// (private futexes are keyed by it, as Linux keys them by mm).
    pub fn mm_id(&self) -> u32 {
        self.mm_holder().pid
    }

    /// Whether the address space is borrowed (CLONE_VM without CLONE_THREAD).
    pub fn mm_borrowed(&self) -> bool {
        !self.leader().mm_owner.load(Ordering::Acquire).is_null()
    }

    /// Stop borrowing (exec or exit of a CLONE_VM child): the owner keeps its address
    /// space.
    pub fn mm_unborrow(&self) {
        let l = self.leader();
        let o = l.mm_owner.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !o.is_null() {
            // SAFETY: see `mm_holder`.
            unsafe { &*o }.mm_borrowers.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The descriptor table (`task->files`): shared by the threads of a group.
    pub fn files(&self) -> &IrqLock<crate::fs::fdtable::FilesStruct> {
        &self.leader().files_slot
    }

    /// The working directory (`task->fs`): shared by the threads of a group.
    pub fn cwd(&self) -> &IrqLock<Vec<u8>> {
        &self.leader().cwd_slot
    }

    /// The umask (`task->fs`): shared by the threads of a group.
    pub fn umask(&self) -> &AtomicU32 {
        &self.leader().umask_slot
    }

    /// The thread group id (getpid).
    pub fn tgid(&self) -> u32 {
        self.tgid.load(Ordering::Relaxed)
    }

    /// The other live threads of the group, the leader included if it is not `self` and
    /// has not exited.
    pub fn group_peers(&self) -> Vec<&'static Task> {
        let leader = self.leader();
        let mut v: Vec<&'static Task> = leader.threads.lock().clone();
        v.retain(|t| !core::ptr::eq(*t, self));
        if !core::ptr::eq(leader, self) && leader.state.load(Ordering::Acquire) != state::ZOMBIE {
            // SAFETY: tasks are leaked boxes; the leader lives as long as its group.
            v.push(unsafe { &*(leader as *const Task) });
        }
        v
    }

    /// Whether this is a kernel thread (`PF_KTHREAD`): no user memory, never signalled.
    pub fn is_kthread(&self) -> bool {
        self.kthread.load(Ordering::Relaxed)
    }

    /// Set `comm` from a path's last component, and the executable's path
    /// (`/proc/PID/exe`; a relative path is taken from the working directory).
    pub fn set_comm(&self, path: &[u8]) {
        let exe = crate::fs::namei::absolute(&self.cwd().lock(), path);
        *self.exe.lock() = exe;
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        let mut c = [0u8; 16];
        let n = name.len().min(15);
        c[..n].copy_from_slice(&name[..n]);
        *self.comm.lock() = c;
    }

    /// Set the executable's path alone (`/proc/PID/exe`: a script's interpreter).
    pub fn set_exe(&self, path: &[u8]) {
        *self.exe.lock() = crate::fs::namei::absolute(&self.cwd().lock(), path);
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
    *child.cwd().lock() = parent.cwd().lock().clone();
    child
        .umask()
        .store(parent.umask().load(Ordering::Relaxed), Ordering::Relaxed);
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

impl ExitReason {
    /// The wait status (`status << 8`, or the signal).
    fn wait_status(self) -> u32 {
        match self {
            ExitReason::Exit(s) => (s as u32) << 8,
            ExitReason::Signal(sig) => sig as u32 & 0x7f,
        }
    }

    fn from_wait_status(code: u32) -> ExitReason {
        if code & 0x7f != 0 {
            ExitReason::Signal((code & 0x7f) as u8)
        } else {
            ExitReason::Exit((code >> 8) as u8)
        }
    }
}

/// End the whole thread group (`do_group_exit`: exit_group, a fatal signal): the first
/// reason is the group's, every other thread gets SIGKILL and dies when it next runs, then
/// the caller exits.
pub fn exit_group(r: ExitReason) -> ! {
    if let Some(t) = current() {
        let leader = t.leader();
        let exec = leader.group_exec_task.load(Ordering::Acquire);
        if !exec.is_null() && !core::ptr::eq(exec, t) {
            // Another thread is in execve (`de_thread`): this one just goes, as Linux's
            // `do_group_exit` does when `group_exec_task` is set.
            exit_current(r)
        }
        if !leader.group_exiting.swap(true, Ordering::AcqRel) {
            leader
                .group_exit_code
                .store(r.wait_status(), Ordering::Relaxed);
        }
        zap_other_threads(t);
    }
    exit_current(r)
}

/// SIGKILL to every other live thread of `t`'s group (`zap_other_threads`): exit_group,
/// a fatal signal, and execve by a thread.
pub fn zap_other_threads(t: &Task) {
    for peer in t.group_peers() {
        signal::send(
            peer,
            signal::SIGKILL,
            signal::SigInfo {
                signo: signal::SIGKILL,
                code: signal::SI_KERNEL,
                addr: 0,
                pid: 0,
                status: 0,
            },
        );
    }
}

/// The owner of an address space other processes borrow (CLONE_VM) exits: the first
/// borrower becomes its owner and the others borrow from it (Linux keeps the mm alive
/// by its `mm_users` count instead).
pub(crate) fn hand_over_mm(owner: &'static Task, mm: Box<Mm>) {
    let borrowers: Vec<&'static Task> = sched::all()
        .into_iter()
        .filter(|t| t.is_leader() && core::ptr::eq(t.mm_owner.load(Ordering::Acquire), owner))
        .collect();
    let Some((&heir, rest)) = borrowers.split_first() else {
        // The count was stale: nobody borrows; free it as usual.
        crate::mm::rmap::detach(mm.anon_id, owner.pid);
        mm.exit_mmap();
        return;
    };
    crate::mm::rmap::detach(mm.anon_id, owner.pid);
    crate::mm::rmap::attach(mm.anon_id, heir.pid);
    heir.mm_owner
        .store(core::ptr::null_mut(), Ordering::Release);
    *heir.mm_slot.lock() = Some(mm);
    for b in rest {
        b.mm_owner
            .store(heir as *const Task as *mut Task, Ordering::Release);
    }
    heir.mm_borrowers
        .store(rest.len() as u32, Ordering::Release);
    owner.mm_borrowers.store(0, Ordering::Release);
}

/// The thread that ran execve for its group leader goes (its new program runs in the
/// leader, see `exec::hand_over_to_leader`): freed after its last switch, as any thread.
pub fn exit_exec_thread(t: &'static Task) -> ! {
    timer::exit_thread_timers(t);
    cputime::thread_exit(t);
    crate::trace::exit(t, 0);
    t.state.store(state::ZOMBIE, Ordering::Release);
    DEAD_THREADS.lock().push(t);
    sched::schedule();
    unreachable!("a thread that exec'd for its leader was scheduled")
}

/// Dead threads waiting to be freed by another task (their kernel stack is in use until
/// they switch away for good).
static DEAD_THREADS: IrqLock<Vec<&'static Task>> = IrqLock::new("dead_threads", Vec::new());

/// Free the threads that died since (`release_task` for self-reaping threads): called by
/// the scheduler after a switch, when none of them runs.
pub fn reap_dead_threads() {
    let me = current();
    let dead: Vec<&'static Task> = {
        let mut d = DEAD_THREADS.lock();
        let (mine, others): (Vec<_>, Vec<_>) = d
            .drain(..)
            .partition(|t| me.is_some_and(|m| core::ptr::eq(m, *t)));
        *d = mine;
        others
    };
    for t in dead {
        sched::unregister(t);
        // SAFETY: the thread is dead, switched away for good, and in no list any more.
        drop(unsafe { Box::from_raw(t as *const Task as *mut Task) });
    }
}

/// `mm_release`: the thread's robust futexes are marked OWNER_DIED
/// ([`crate::syscall::futex::exit_robust_list`]); its `clear_child_tid` (set by CLONE_CHILD_CLEARTID or
/// set_tid_address) gets 0 and one futex waiter there is woken, which is how
/// pthread_join learns that the thread is gone.
pub fn mm_release(t: &Task) {
    crate::syscall::futex::exit_robust_list(t);
    let ctid = t.clear_child_tid.swap(0, Ordering::Relaxed);
    if ctid != 0 && crate::mm::uaccess::put_user(ctid, 0u32).is_ok() {
        crate::syscall::futex::wake(t.mm_id(), ctid, 1);
    }
}

/// End the current thread (`do_exit`). A thread that is not the last of its group just
/// goes (its `clear_child_tid` is cleared and woken, the task is freed once it switched
/// away); the last one ends the process: its memory and files go, the leader becomes a
/// zombie for its parent's wait4 with the group's status, its children go to init, the
/// parent gets SIGCHLD. When init (pid 1) ends, the machine reports how on the debug
/// console and powers off (exit status, or 128 + signal): under `vmscope run` init is the
/// user's program.
pub fn exit_current(r: ExitReason) -> ! {
    let Some(t) = current() else {
        report_and_power_off(r)
    };
    let leader = t.leader();
    // SAFETY: tasks are leaked boxes that live until reaped; the leader is reaped only
    // after this thread is gone.
    let leader: &'static Task = unsafe { &*(leader as *const Task) };
    timer::exit_thread_timers(t);
    if t.is_leader() {
        t.exit_code.store(r.wait_status(), Ordering::Relaxed);
    } else {
        leader.threads.lock().retain(|x| !core::ptr::eq(*x, t));
    }
    let others = !leader.threads.lock().is_empty()
        || (!t.is_leader() && leader.state.load(Ordering::Acquire) != state::ZOMBIE);
    if others {
        // Not the last thread: the group lives on.
        mm_release(t);
        cputime::thread_exit(t);
        crate::trace::exit(t, r.wait_status());
        t.state.store(state::ZOMBIE, Ordering::Release);
        // A thread in execve waits for its peers to be gone (`de_thread`).
        let exec = leader.group_exec_task.load(Ordering::Acquire);
        if !exec.is_null() {
            // SAFETY: the exec'ing thread lives until the exec is done.
            sched::wake(unsafe { &*exec });
        }
        if !t.is_leader() {
            DEAD_THREADS.lock().push(t);
        }
        sched::schedule();
        unreachable!("a dead thread was scheduled")
    }
    // The last thread: the process ends with the group's status.
    let r = if leader.group_exiting.load(Ordering::Acquire) {
        ExitReason::from_wait_status(leader.group_exit_code.load(Ordering::Relaxed))
    } else if t.is_leader() {
        r
    } else {
        ExitReason::from_wait_status(leader.exit_code.load(Ordering::Relaxed))
    };
    mm_release(t);
    cputime::thread_exit(t);
    timer::exit_timers(leader);
    // A CLONE_VM child leaves the address space to its owner; an owner whose address
    // space is still borrowed hands it to a borrower.
    let mm = if leader.mm_borrowed() {
        leader.mm_unborrow();
        None
    } else {
        crate::mm::rmap::check(leader);
        let mm = t.mm().lock().take();
        match mm {
            Some(mm) if leader.mm_borrowers.load(Ordering::Acquire) > 0 => {
                hand_over_mm(leader, mm);
                // Off the address space now in the heir's hands.
                // SAFETY: the master table maps the kernel; nothing user is touched after.
                unsafe { crate::mm::pgtable::activate(&crate::mm::pgtable::kernel()) };
                None
            }
            other => other,
        }
    };
    if let Some(mm) = mm {
        crate::mm::rmap::detach(mm.anon_id, leader.pid);
        // Leave the address space before freeing its tables.
        // SAFETY: the master table maps the kernel; nothing user is touched after this.
        unsafe { crate::mm::pgtable::activate(&crate::mm::pgtable::kernel()) };
        mm.exit_mmap();
    }
    let files = t.files().lock().clear();
    drop(files);
    release_vfork(leader);
    let code = r.wait_status();
    crate::trace::exit(t, code);
    if leader.pid == 1 {
        report_and_power_off(r);
    }
    leader.exit_code.store(code, Ordering::Relaxed);
    sched::reparent_children(leader);
    if !t.is_leader() {
        t.state.store(state::ZOMBIE, Ordering::Release);
        DEAD_THREADS.lock().push(t);
    }
    leader.state.store(state::ZOMBIE, Ordering::Release);
    if let Some(parent) = sched::find(leader.ppid.load(Ordering::Relaxed)) {
        // The exit signal clone asked for (SIGCHLD for fork; 0: none, the parent is only
        // woken). Its siginfo is SIGCHLD's, as Linux's `do_notify_parent` sends it.
        let sig = leader.exit_signal.load(Ordering::Relaxed);
        if sig != 0 {
            signal::send_process(
                parent,
                sig,
                // No core is written (RLIMIT_CORE is 0), so a signal death is CLD_KILLED.
                signal::SigInfo {
                    signo: sig,
                    code: match r {
                        ExitReason::Exit(_) => signal::CLD_EXITED,
                        ExitReason::Signal(_) => signal::CLD_KILLED,
                    },
                    addr: 0,
                    pid: leader.pid,
                    status: match r {
                        ExitReason::Exit(s) => s as i32,
                        ExitReason::Signal(sig) => sig as i32,
                    },
                },
            );
        }
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
