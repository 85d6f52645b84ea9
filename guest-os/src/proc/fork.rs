//! fork, vfork and process-creating clone (`kernel/fork.c`). The rest of the process life
//! cycle has its own files: [`super::exec`] (execve), [`super::wait`] (wait4), [`super::kill`]
//! (kill), [`super::exit_current`] (exit).

use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use super::{current, sched, signal, Task};
use crate::arch::x86_64::idt::TrapFrame;
use crate::syscall::errno::{SysResult, ENOMEM, ESRCH};

/// `clone` flags this kernel acts on.
pub const CLONE_VM: u64 = 0x100;
pub const CLONE_VFORK: u64 = 0x4000;
/// The clone flags that make threads or share state between processes, which come with
/// threads ([08]): refused with ENOSYS rather than silently not shared.
const CLONE_SHARING: u64 = 0x200 /* FS */ | 0x400 /* FILES */ | 0x800 /* SIGHAND */
    | 0x1_0000 /* THREAD */ | 0x4_0000 /* SYSVSEM */;

/// `fork()`, `vfork()` and process-creating `clone(flags, newsp)`: a copy of the calling
/// process whose address space shares every page copy-on-write. The child returns 0 from
/// the same system call, on `newsp` if one is given.
///
/// With CLONE_VFORK (vfork, and posix_spawn's `clone(CLONE_VM|CLONE_VFORK)`) the parent
/// sleeps in state D until the child execs or exits, as Linux's does. Linux's vfork child
/// also borrows the parent's memory (CLONE_VM); here it gets a copy-on-write copy instead,
/// which differs only for a child that writes memory before exec, something POSIX leaves
/// undefined. CLONE_VM without CLONE_VFORK (threads) is refused with ENOSYS until threads
/// exist.
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
        .files
        .lock()
        .try_clone()
        .map_err(|e| crate::syscall::errno::Errno(e.0))?;
    let pid = sched::alloc_pid();
    let child: &'static Task = Box::leak(Task::new(pid, parent.pid).ok_or(ENOMEM)?);
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
    let console = core::mem::replace(&mut *child.files.lock(), files);
    drop(console);
    super::fork_copy_fs(parent, child);
    let mm = parent
        .mm
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
    if let Some(m) = parent.mm.lock().as_ref() {
        m.activate();
    }
    crate::mm::rmap::attach(mm.anon_id, pid);
    *child.mm.lock() = Some(mm);
    let mut f = *frame;
    f.rax = 0;
    if newsp != 0 {
        f.rsp = newsp;
    }
    sched::prepare_child(child, &f);
    parent.children.lock().push(child);
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
