//! fork, wait4 and execve: the process life cycle (`kernel/fork.c`, `kernel/exit.c`,
//! `fs/exec.c`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{current, sched, signal, state, Task};
use crate::arch::x86_64::idt::TrapFrame;
use crate::mm::uaccess::{copy_to_user, put_user, strncpy_from_user};
use crate::syscall::errno::{SysResult, ECHILD, EINVAL, ENOMEM, ESRCH};

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

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const __WALL: u64 = 0x4000_0000;
const __WCLONE: u64 = 0x8000_0000;

/// `wait4(pid, status, options, rusage)`: reap a zombie child (pid -1: any; > 0: that one;
/// 0: one in the caller's process group; < -1: one in group -pid).
pub fn sys_wait4(a: &crate::syscall::Args) -> SysResult {
    let [pid, status, options, rusage, ..] = a.0;
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | __WALL | __WCLONE) != 0 {
        return Err(EINVAL);
    }
    let me = current().ok_or(ESRCH)?;
    let my_pgid = me.pgid.load(Ordering::Relaxed);
    let want = |t: &Task| match pid as i64 as i32 {
        -1 => true,
        0 => t.pgid.load(Ordering::Relaxed) == my_pgid,
        p if p < 0 => t.pgid.load(Ordering::Relaxed) == p.unsigned_abs(),
        p => t.pid == p as u32,
    };
    loop {
        let kids: Vec<&'static Task> = me
            .children
            .lock()
            .iter()
            .copied()
            .filter(|t| want(t))
            .collect();
        if kids.is_empty() {
            return Err(ECHILD);
        }
        if let Some(z) = kids
            .iter()
            .copied()
            .find(|t| t.state.load(Ordering::Acquire) == state::ZOMBIE)
        {
            let code = z.exit_code.load(Ordering::Relaxed);
            if status != 0 {
                put_user(status, code)?;
            }
            if rusage != 0 {
                // struct rusage: 144 bytes; fault counts at ru_minflt (offset 64) / ru_majflt.
                let mut ru = [0u8; 144];
                ru[64..72].copy_from_slice(&z.min_flt.load(Ordering::Relaxed).to_le_bytes());
                ru[72..80].copy_from_slice(&z.maj_flt.load(Ordering::Relaxed).to_le_bytes());
                copy_to_user(rusage, &ru)?;
            }
            me.children.lock().retain(|t| !core::ptr::eq(*t, z));
            sched::unregister(z);
            let zpid = z.pid;
            // SAFETY: the zombie no longer runs (its last switch saved its stack for good)
            // and is referenced by no list: the leaked Box is freed here.
            drop(unsafe { Box::from_raw(z as *const Task as *mut Task) });
            return Ok(zpid as u64);
        }
        // Stops (WUNTRACED) and continues (WCONTINUED), each reported once.
        for k in &kids {
            let r = k.stop_report.load(Ordering::Acquire);
            let wanted = (r & 0xff == 0x7f && options & WUNTRACED != 0)
                || (r == 0xffff && options & WCONTINUED != 0);
            if r != 0 && wanted {
                k.stop_report.store(0, Ordering::Release);
                if status != 0 {
                    put_user(status, r)?;
                }
                return Ok(k.pid as u64);
            }
        }
        if options & WNOHANG != 0 {
            return Ok(0);
        }
        if signal::has_pending(me) {
            // Restarted if the signal has no handler or an SA_RESTART one.
            return Err(crate::syscall::errno::ERESTARTSYS);
        }
        sched::sleep();
    }
}

/// `pause()`: sleep until a signal arrives; -EINTR once a handler ran (never restarted
/// after a handler, even SA_RESTART; a signal without a handler, such as a stop and
/// continue, restarts it: ERESTARTNOHAND).
pub fn sys_pause() -> SysResult {
    let me = current().ok_or(ESRCH)?;
    while !signal::has_pending(me) {
        sched::sleep();
    }
    Err(crate::syscall::errno::ERESTARTNOHAND)
}

/// `kill(pid, sig)`: to one process (pid > 0), to every process but init and the caller
/// (-1, as root), to the caller's process group (0) or to group -pid (< -1).
pub fn sys_kill(a: &crate::syscall::Args) -> SysResult {
    let me = current().ok_or(ESRCH)?;
    let (pid, sig) = (a.0[0] as i64 as i32, a.0[1]);
    if sig > signal::NSIG as u64 {
        return Err(EINVAL);
    }
    let targets: Vec<&'static Task> = match pid {
        p if p > 0 => sched::find(p as u32)
            .filter(|t| t.state.load(Ordering::Acquire) != state::ZOMBIE)
            .into_iter()
            .collect(),
        -1 => sched::all()
            .into_iter()
            .filter(|t| t.pid != 1 && t.pid != me.pid)
            .collect(),
        // 0: the caller's process group; -N: group N.
        p => {
            let pgid = if p == 0 {
                me.pgid.load(Ordering::Relaxed)
            } else {
                p.unsigned_abs()
            };
            sched::all()
                .into_iter()
                .filter(|t| {
                    t.pgid.load(Ordering::Relaxed) == pgid
                        && t.state.load(Ordering::Acquire) != state::ZOMBIE
                })
                .collect()
        }
    };
    if targets.is_empty() {
        return Err(ESRCH);
    }
    if sig != 0 {
        for t in targets {
            signal::send(
                t,
                sig as u8,
                signal::SigInfo {
                    signo: sig as u8,
                    code: signal::SI_USER,
                    addr: 0,
                    pid: me.pid,
                },
            );
        }
    }
    Ok(0)
}

/// `execve(path, argv, envp)`: on success the old image is gone and the frame starts the
/// new program; on failure the caller continues unchanged with -errno.
pub fn sys_execve(frame: &mut TrapFrame, a: &crate::syscall::Args) -> SysResult {
    let me = current().ok_or(ESRCH)?;
    let path = strncpy_from_user(a.0[0], 4096)?;
    let ino = crate::fs::lookup(&path)?;
    if crate::fs::with_root(|fs| fs.file_type(ino))? != kfs::FileType::Regular {
        return Err(crate::syscall::errno::EACCES);
    }
    let data = crate::fs::file_data(ino)?;
    let args = super::exec::ArgSource::User {
        argv: a.0[1],
        envp: a.0[2],
    };
    let img = super::exec::load(data, ino, &path, args)?;
    // Point of no return.
    img.mm.activate();
    crate::mm::rmap::check(me);
    crate::mm::rmap::attach(img.mm.anon_id, me.pid);
    let old = me.mm.lock().replace(img.mm);
    if let Some(old) = old {
        crate::mm::rmap::detach(old.anon_id, me.pid);
        old.destroy();
    }
    me.set_comm(&path);
    *me.cmdline.lock() = img.cmdline;
    crate::trace::exec(me, &path, img.entry, img.load_bias);
    super::release_vfork(me);
    signal::reset_on_exec(me);
    crate::fs::fdtable::close_on_exec(me);
    me.fs_base.store(0, Ordering::Relaxed);
    // SAFETY: clearing the user FS base for the new image.
    unsafe { crate::arch::x86_64::syscall::wrmsr(crate::arch::x86_64::syscall::MSR_FS_BASE, 0) };
    let cs = frame.cs;
    let ss = frame.ss;
    *frame = TrapFrame {
        rip: img.entry,
        rsp: img.rsp,
        cs,
        ss,
        rflags: 0x202,
        ..TrapFrame::default()
    };
    Ok(0)
}
