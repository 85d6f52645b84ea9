//! fork, vfork and process-creating clone (`kernel/fork.c`). The rest of the process life
//! cycle has its own files: [`super::exec`] (execve), [`super::wait`] (wait4), [`super::kill`]
//! (kill), [`super::exit_current`] (exit).

use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use super::{current, sched, signal, Task};
use crate::arch::x86_64::idt::TrapFrame;
use crate::syscall::errno::{SysResult, ENOMEM, ESRCH};

/// `clone` flags.
pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_THREAD: u64 = 0x1_0000;
pub const CLONE_SYSVSEM: u64 = 0x4_0000;
pub const CLONE_SETTLS: u64 = 0x8_0000;
pub const CLONE_PARENT_SETTID: u64 = 0x10_0000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
pub const CLONE_CHILD_SETTID: u64 = 0x100_0000;
/// What a thread shares with its group here: threads must share all of it (the C
/// libraries' pthread_create passes all of these); a process sharing some of it with its
/// parent is refused with ENOSYS (logged) rather than silently not shared.
const CLONE_SHARING: u64 = CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;

/// The thread-creating arguments of clone (`kernel_clone_args`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
}

/// `clone(flags, stack, parent_tid, child_tid, tls)` (x86-64 argument order), and fork and
/// vfork: a new thread with CLONE_THREAD, else a new process.
pub fn sys_clone(frame: &TrapFrame, args: CloneArgs) -> SysResult {
    let f = args.flags;
    // `copy_process`'s flag rules.
    if (f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0)
        || (f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0)
    {
        return Err(crate::syscall::errno::EINVAL);
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
    if flags & CLONE_SHARING != 0 || (flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0) {
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
    let child: &'static Task = Box::leak(Task::new(pid, parent.tgid()).ok_or(ENOMEM)?);
    *child.comm.lock() = *parent.comm.lock();
    *child.cmdline.lock() = parent.cmdline.lock().clone();
    child
        .fs_base
        .store(parent.fs_base.load(Ordering::Relaxed), Ordering::Relaxed);
    signal::fork_copy(parent, child);
    // The child starts with the parent's FPU registers (`fpu_clone`); the parent runs now,
    // so they are in the CPU.
    crate::arch::x86_64::fpu::save(&mut child.fpu.lock());
    // The descriptor table is copied; the open-file descriptions are shared.
    let console = core::mem::replace(&mut *child.files().lock(), files);
    drop(console);
    super::fork_copy_fs(parent, child);
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
    let mut f = *frame;
    f.rax = 0;
    if newsp != 0 {
        f.rsp = newsp;
    }
    sched::prepare_child(child, &f);
    // A child belongs to the thread group: any of its threads may wait for it.
    parent.leader().children.lock().push(child);
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
