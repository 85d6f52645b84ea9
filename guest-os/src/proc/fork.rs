//! fork, vfork and process-creating clone (`kernel/fork.c`). The rest of the process life
//! cycle has its own files: [`super::exec`] (execve), [`super::wait`] (wait4), [`super::kill`]
//! (kill), [`super::exit_current`] (exit).

use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use super::{current, sched, signal, Task};
use crate::arch::x86_64::idt::TrapFrame;
use crate::mm::uaccess::copy_from_user;
use crate::syscall::errno::{SysResult, E2BIG, EINVAL, ENOMEM, ESRCH};

/// `clone` flags.
/// The low byte of legacy clone's flags: the exit signal.
pub const CSIGNAL: u64 = 0xff;
pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_PTRACE: u64 = 0x2000;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_THREAD: u64 = 0x1_0000;
pub const CLONE_NEWNS: u64 = 0x2_0000;
pub const CLONE_SYSVSEM: u64 = 0x4_0000;
pub const CLONE_SETTLS: u64 = 0x8_0000;
pub const CLONE_PARENT_SETTID: u64 = 0x10_0000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
pub const CLONE_DETACHED: u64 = 0x40_0000;
pub const CLONE_UNTRACED: u64 = 0x80_0000;
pub const CLONE_CHILD_SETTID: u64 = 0x100_0000;
pub const CLONE_NEWCGROUP: u64 = 0x200_0000;
pub const CLONE_NEWUTS: u64 = 0x400_0000;
pub const CLONE_NEWIPC: u64 = 0x800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;
pub const CLONE_IO: u64 = 0x8000_0000;
/// clone3 only: the child starts with every caught signal back to SIG_DFL.
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// clone3 only: the child starts in the cgroup `clone_args.cgroup` names.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// clone3 only (reuses a CSIGNAL bit): a new time namespace.
pub const CLONE_NEWTIME: u64 = 0x80;
/// Every flag legacy clone can express (`CLONE_LEGACY_FLAGS`).
const CLONE_LEGACY_FLAGS: u64 = 0xffff_ffff;
/// The namespace flags. This kernel has no namespaces: clone refuses them with EINVAL,
/// as Linux built without `CONFIG_*_NS` does.
const CLONE_NAMESPACES: u64 = CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWTIME;
/// What a process (not a thread) created here cannot share with its parent yet: the
/// descriptor table, the fs struct (cwd, umask) and the signal handlers are per process.
/// Refused with ENOSYS (logged) rather than silently not shared. (CLONE_VM is shared:
/// the child borrows the parent's address space, see [`Task::mm`].)
const PROCESS_SHARING: u64 = CLONE_FS | CLONE_FILES | CLONE_SIGHAND;

/// The arguments of clone and clone3 (`kernel_clone_args`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    /// CLONE_* (without the exit signal).
    pub flags: u64,
    /// The new thread's or process's stack pointer (0: the caller's).
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
    /// The signal the parent gets when the child ends (0: none).
    pub exit_signal: u8,
    /// CLONE_INTO_CGROUP: a descriptor of the cgroup directory.
    pub cgroup: u64,
}

/// `clone(flags, stack, parent_tid, child_tid, tls)` (x86-64 argument order): the low
/// byte of `flags` is the exit signal, the upper 32 bits are ignored (`kernel_clone`).
pub fn sys_clone(
    frame: &TrapFrame,
    flags: u64,
    stack: u64,
    ptid: u64,
    ctid: u64,
    tls: u64,
) -> SysResult {
    let exit_signal = flags & CSIGNAL;
    if exit_signal as usize > signal::NSIG {
        return Err(EINVAL);
    }
    kernel_clone(
        frame,
        CloneArgs {
            flags: flags & CLONE_LEGACY_FLAGS & !CSIGNAL,
            stack,
            parent_tid: ptid,
            child_tid: ctid,
            tls,
            exit_signal: exit_signal as u8,
            cgroup: 0,
        },
    )
}

/// `struct clone_args` sizes: version 0 (up to `tls`), 1 (`set_tid`, `set_tid_size`),
/// 2 (`cgroup`).
const CLONE_ARGS_SIZE_VER0: u64 = 64;
const CLONE_ARGS_SIZE_VER2: u64 = 88;
/// Most PIDs `set_tid` may name (one per PID namespace level).
const MAX_PID_NS_LEVEL: u64 = 32;

/// `clone3(args, size)`: the arguments in a versioned structure
/// (`copy_clone_args_from_user` and `clone3_args_valid`). A larger structure than this
/// kernel knows is accepted when the unknown tail is zero (E2BIG otherwise).
pub fn sys_clone3(frame: &TrapFrame, uargs: u64, size: u64) -> SysResult {
    const PAGE_SIZE: u64 = 4096;
    if size > PAGE_SIZE {
        return Err(E2BIG);
    }
    if size < CLONE_ARGS_SIZE_VER0 {
        return Err(EINVAL);
    }
    let mut raw = [0u8; CLONE_ARGS_SIZE_VER2 as usize];
    let known = size.min(CLONE_ARGS_SIZE_VER2) as usize;
    copy_from_user(&mut raw[..known], uargs)?;
    // `copy_struct_from_user`: a tail this kernel does not know must be zero.
    let mut at = uargs.saturating_add(CLONE_ARGS_SIZE_VER2);
    let end = uargs.saturating_add(size);
    while at < end {
        let mut chunk = [0u8; 64];
        let n = ((end - at) as usize).min(chunk.len());
        copy_from_user(&mut chunk[..n], at)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Err(E2BIG);
        }
        at += n as u64;
    }
    let field = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (flags, pidfd, child_tid, parent_tid, exit_signal) =
        (field(0), field(1), field(2), field(3), field(4));
    let (stack, stack_size, tls, set_tid, set_tid_size, cgroup) =
        (field(5), field(6), field(7), field(8), field(9), field(10));
    let _ = pidfd;
    if set_tid_size > MAX_PID_NS_LEVEL
        || (set_tid == 0 && set_tid_size != 0)
        || (set_tid != 0 && set_tid_size == 0)
    {
        return Err(EINVAL);
    }
    if exit_signal & !CSIGNAL != 0 || exit_signal as usize > signal::NSIG {
        return Err(EINVAL);
    }
    if flags & CLONE_INTO_CGROUP != 0 && (cgroup > i32::MAX as u64 || size < CLONE_ARGS_SIZE_VER2) {
        return Err(EINVAL);
    }
    // `clone3_args_valid`.
    if flags & !(CLONE_LEGACY_FLAGS | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP) != 0
        || flags & (CLONE_DETACHED | (CSIGNAL & !CLONE_NEWTIME)) != 0
        || (flags & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND)) == (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND)
        || (flags & (CLONE_THREAD | CLONE_PARENT) != 0 && exit_signal != 0)
        || (stack == 0) != (stack_size == 0)
    {
        return Err(EINVAL);
    }
    if set_tid_size != 0 {
        // Choosing the child's PID (checkpoint/restore) is not supported.
        log::warn!("clone3: set_tid is not supported");
        return Err(crate::syscall::errno::ENOSYS);
    }
    kernel_clone(
        frame,
        CloneArgs {
            flags,
            // The stack grows down from the end of the area on x86.
            stack: if stack == 0 {
                0
            } else {
                stack.wrapping_add(stack_size)
            },
            parent_tid,
            child_tid,
            tls,
            exit_signal: exit_signal as u8,
            cgroup,
        },
    )
}

/// `kernel_clone` after the arguments are decoded: `copy_process`'s flag rules, then a
/// new thread with CLONE_THREAD, else a new process.
pub fn kernel_clone(frame: &TrapFrame, args: CloneArgs) -> SysResult {
    let f = args.flags;
    if (f & (CLONE_NEWNS | CLONE_NEWUSER) != 0 && f & CLONE_FS != 0)
        || (f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0)
        || (f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0)
        || (f & CLONE_PIDFD != 0 && f & (CLONE_DETACHED | CLONE_THREAD) != 0)
    {
        return Err(EINVAL);
    }
    if f & CLONE_NAMESPACES != 0 {
        log::warn!(
            "clone: namespaces ({:#x}) are not supported",
            f & CLONE_NAMESPACES
        );
        return Err(EINVAL);
    }
    if f & CLONE_PIDFD != 0 {
        log::warn!("clone: CLONE_PIDFD is not supported (no pidfds yet)");
        return Err(crate::syscall::errno::ENOSYS);
    }
    if f & CLONE_INTO_CGROUP != 0 {
        // Moving the child is done by writing cgroup.procs; at clone time not yet.
        log::warn!("clone3: CLONE_INTO_CGROUP is not supported");
        return Err(crate::syscall::errno::ENOSYS);
    }
    // Siblings of init would stay zombies (no one reaps them): Linux refuses them too.
    if f & CLONE_PARENT != 0 && current().is_some_and(|t| t.tgid() == 1) {
        return Err(EINVAL);
    }
    if f & CLONE_THREAD != 0 {
        if f & (CLONE_FS | CLONE_FILES) != CLONE_FS | CLONE_FILES {
            log::warn!("clone: a thread not sharing files and fs ({f:#x}) is not supported");
            return Err(crate::syscall::errno::ENOSYS);
        }
        return do_thread(frame, args);
    }
    let pid = do_fork(frame, f, args.stack)?;
    // The tid words of a new process: the parent's, and the child's in its own copy.
    if f & CLONE_PARENT_SETTID != 0 {
        let _ = crate::mm::uaccess::put_user(args.parent_tid, pid as u32);
    }
    if let Some(child) = sched::find(pid as u32) {
        if f & CLONE_CHILD_SETTID != 0 {
            if let Some(mm) = child.mm().lock().as_mut() {
                let _ = mm.write_user(args.child_tid, &(pid as u32).to_le_bytes());
            }
        }
        if f & CLONE_CHILD_CLEARTID != 0 {
            child
                .clear_child_tid
                .store(args.child_tid, Ordering::Relaxed);
        }
        if f & CLONE_SETTLS != 0 {
            child.fs_base.store(args.tls, Ordering::Relaxed);
        }
        // With CLONE_PARENT the child is a sibling and tells the common parent with the
        // caller's own exit signal (`copy_process`).
        let exit_signal = if f & CLONE_PARENT != 0 {
            current().map_or(signal::SIGCHLD, |t| {
                t.leader().exit_signal.load(Ordering::Relaxed)
            })
        } else {
            args.exit_signal
        };
        child.exit_signal.store(exit_signal, Ordering::Relaxed);
        if f & CLONE_CLEAR_SIGHAND != 0 {
            signal::clear_handlers(child);
        }
    }
    Ok(pid)
}

/// A new thread in the caller's group (`copy_process` with CLONE_THREAD): its own kernel
/// stack, registers (RAX = 0, RSP = `stack`), TLS and signal mask; the address space,
/// descriptors, working directory and signal handlers are the group's.
fn do_thread(frame: &TrapFrame, args: CloneArgs) -> SysResult {
    let parent = current().ok_or(ESRCH)?;
    if super::rlimit::nr_processes() >= super::rlimit::of(parent, super::rlimit::RLIMIT_NPROC).cur {
        return Err(crate::syscall::errno::EAGAIN);
    }
    // SAFETY: tasks are leaked boxes; the leader outlives the threads of its group.
    let leader: &'static Task = unsafe { &*(parent.leader() as *const Task) };
    if leader.group_exiting.load(Ordering::Acquire) {
        return Err(crate::syscall::errno::EAGAIN);
    }
    let pid = sched::alloc_pid();
    let child: &'static Task =
        Box::leak(Task::new(pid, leader.ppid.load(Ordering::Relaxed)).ok_or(ENOMEM)?);
    *child.comm.lock() = *parent.comm.lock();
    *child.cmdline.lock() = parent.cmdline.lock().clone();
    // Limits, groups, cgroup and the rest of what fork copies (the fs part goes unused:
    // from here on the child reaches the leader's).
    super::fork_copy_fs(parent, child);
    signal::fork_copy(parent, child);
    child.tgid.store(leader.tgid(), Ordering::Relaxed);
    child
        .group_leader
        .store(leader as *const Task as *mut Task, Ordering::Release);
    crate::arch::x86_64::fpu::save(&mut child.fpu.lock());
    let tls = if args.flags & CLONE_SETTLS != 0 {
        args.tls
    } else {
        parent.fs_base.load(Ordering::Relaxed)
    };
    child.fs_base.store(tls, Ordering::Relaxed);
    if args.flags & CLONE_CHILD_CLEARTID != 0 {
        child
            .clear_child_tid
            .store(args.child_tid, Ordering::Relaxed);
    }
    // The same address space: both words are written now.
    if args.flags & CLONE_PARENT_SETTID != 0 {
        let _ = crate::mm::uaccess::put_user(args.parent_tid, pid);
    }
    if args.flags & CLONE_CHILD_SETTID != 0 {
        let _ = crate::mm::uaccess::put_user(args.child_tid, pid);
    }
    let mut f = *frame;
    f.rax = 0;
    if args.stack != 0 {
        f.rsp = args.stack;
    }
    sched::prepare_child(child, &f);
    leader.threads.lock().push(child);
    sched::register(child);
    crate::trace::fork(parent, pid);
    sched::enqueue(child);
    Ok(pid as u64)
}

pub fn do_fork(frame: &TrapFrame, flags: u64, newsp: u64) -> SysResult {
    if flags & PROCESS_SHARING != 0 {
        log::warn!("clone: a process sharing {flags:#x} with its parent is not supported");
        return Err(crate::syscall::errno::ENOSYS);
    }
    let parent = current().ok_or(ESRCH)?;
    // RLIMIT_NPROC: the user's processes, this one included (`copy_process`).
    if super::rlimit::nr_processes() >= super::rlimit::of(parent, super::rlimit::RLIMIT_NPROC).cur {
        return Err(crate::syscall::errno::EAGAIN);
    }
    let files = parent
        .files()
        .lock()
        .try_clone()
        .map_err(|e| crate::syscall::errno::Errno(e.0))?;
    let pid = sched::alloc_pid();
    // CLONE_PARENT: the child is the caller's sibling (same parent), else its child.
    let ppid = if flags & CLONE_PARENT != 0 {
        parent.leader().ppid.load(Ordering::Relaxed)
    } else {
        parent.tgid()
    };
    let child: &'static Task = Box::leak(Task::new(pid, ppid).ok_or(ENOMEM)?);
    *child.comm.lock() = *parent.comm.lock();
    *child.cmdline.lock() = parent.cmdline.lock().clone();
    child
        .fs_base
        .store(parent.fs_base.load(Ordering::Relaxed), Ordering::Relaxed);
    signal::fork_copy(parent, child);
    // A forked child keeps the rseq registration (the same address in its copy of the
    // memory); with CLONE_VM (vfork) it does not (`rseq_fork`).
    if flags & CLONE_VM == 0 {
        child
            .rseq
            .store(parent.rseq.load(Ordering::Relaxed), Ordering::Relaxed);
        child
            .rseq_sig
            .store(parent.rseq_sig.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    // The child starts with the parent's FPU registers (`fpu_clone`); the parent runs now,
    // so they are in the CPU.
    crate::arch::x86_64::fpu::save(&mut child.fpu.lock());
    // The descriptor table is copied; the open-file descriptions are shared.
    let console = core::mem::replace(&mut *child.files().lock(), files);
    drop(console);
    super::fork_copy_fs(parent, child);
    if flags & CLONE_VM != 0 {
        // vfork (and CLONE_VM): the child runs in the parent's address space, nothing is
        // copied; it borrows it until it execs or exits.
        let holder = parent.mm_holder();
        holder.mm_borrowers.fetch_add(1, Ordering::AcqRel);
        child
            .mm_owner
            .store(holder as *const Task as *mut Task, Ordering::Release);
    } else {
        let mm = parent
            .mm()
            .lock()
            .as_mut()
            .and_then(|m| m.fork())
            .and_then(|m| crate::mm::slab::try_box(m).map_err(|m| m.destroy()).ok());
        let Some(mm) = mm else {
            // SAFETY: `child` was leaked above and is referenced nowhere else.
            drop(unsafe { Box::from_raw(child as *const Task as *mut Task) });
            return Err(ENOMEM);
        };
        // The parent's PTEs lost write permission: flush its TLB.
        if let Some(m) = parent.mm().lock().as_ref() {
            m.activate();
        }
        crate::mm::rmap::attach(mm.anon_id, pid);
        *child.mm().lock() = Some(mm);
    }
    let mut f = *frame;
    f.rax = 0;
    if newsp != 0 {
        f.rsp = newsp;
    }
    sched::prepare_child(child, &f);
    // A child belongs to the thread group: any of its threads may wait for it.
    match sched::find(ppid) {
        Some(p) if flags & CLONE_PARENT != 0 => p.leader().children.lock().push(child),
        _ => parent.leader().children.lock().push(child),
    }
    sched::register(child);
    crate::trace::fork(parent, pid);
    let vfork = flags & CLONE_VFORK != 0;
    if vfork {
        child.vfork_parent.store(parent.pid, Ordering::Release);
    }
    sched::enqueue(child);
    if vfork {
        // Killable: SIGKILL ends the wait (the child runs on).
        while child.vfork_parent.load(Ordering::Acquire) != 0 && !signal::kill_pending(parent) {
            parent
                .state
                .store(super::state::DISK_SLEEP, Ordering::Release);
            sched::schedule();
        }
    }
    Ok(pid as u64)
}
