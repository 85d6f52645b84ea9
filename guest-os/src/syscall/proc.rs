//! Process system calls: exit, identity, arch_prctl, set_tid_address.

use core::sync::atomic::Ordering;

use super::errno::{SysResult, EINVAL, ESRCH};
use super::Args;
use crate::arch::x86_64::syscall::{rdmsr, wrmsr, MSR_FS_BASE};
use crate::mm::uaccess::{put_user, TASK_SIZE};
use crate::proc;

/// `exit_group(status)`: every thread of the process ends.
pub fn sys_exit_group(a: &Args) -> ! {
    proc::exit_group(proc::ExitReason::Exit((a.0[0] & 0xff) as u8))
}

/// `exit(status)`: the calling thread ends; the process with its last thread.
pub fn sys_exit(a: &Args) -> ! {
    proc::exit_current(proc::ExitReason::Exit((a.0[0] & 0xff) as u8))
}

/// `getpid()`: the thread group id.
pub fn sys_getpid(_: &Args) -> SysResult {
    Ok(proc::current().map_or(0, |t| t.tgid()) as u64)
}

/// `gettid()`: the thread's own id.
pub fn sys_gettid(_: &Args) -> SysResult {
    Ok(proc::current().map_or(0, |t| t.pid) as u64)
}

/// `getppid()`: the parent of the thread group.
pub fn sys_getppid(_: &Args) -> SysResult {
    Ok(proc::current().map_or(0, |t| {
        t.leader().ppid.load(core::sync::atomic::Ordering::Relaxed)
    }) as u64)
}

/// Everyone is root (uid/gid 0).
pub fn sys_getuid(_: &Args) -> SysResult {
    Ok(0)
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

/// `arch_prctl(code, addr)`: the FS base for thread-local storage.
pub fn sys_arch_prctl(a: &Args) -> SysResult {
    let t = proc::current().ok_or(ESRCH)?;
    match a.0[0] {
        ARCH_SET_FS => {
            if a.0[1] >= TASK_SIZE {
                return Err(super::errno::EPERM);
            }
            t.fs_base.store(a.0[1], Ordering::Relaxed);
            // SAFETY: FS base of the current task; user space only.
            unsafe { wrmsr(MSR_FS_BASE, a.0[1]) };
            Ok(0)
        }
        ARCH_GET_FS => {
            // SAFETY: reading the FS base.
            let v = unsafe { rdmsr(MSR_FS_BASE) };
            put_user(a.0[1], v)?;
            Ok(0)
        }
        ARCH_GET_GS => {
            put_user(a.0[1], 0u64)?;
            Ok(0)
        }
        ARCH_SET_GS => Err(super::errno::EPERM),
        _ => Err(EINVAL),
    }
}

/// `set_tid_address(tidptr)`: remembered for thread exit; returns the tid.
pub fn sys_set_tid_address(a: &Args) -> SysResult {
    let t = proc::current().ok_or(ESRCH)?;
    t.clear_child_tid.store(a.0[0], Ordering::Relaxed);
    Ok(t.pid as u64)
}

/// `sched_getaffinity(pid, len, mask)`: one CPU, CPU 0. Returns the bytes written (the
/// size of the kernel's cpumask, 8), as the raw system call does.
pub fn sys_sched_getaffinity(a: &Args) -> SysResult {
    let (pid, len, mask) = (a.0[0], a.0[1], a.0[2]);
    if pid != 0 && crate::proc::sched::find(pid as u32).is_none() {
        return Err(ESRCH);
    }
    if len < 8 || len % 8 != 0 {
        return Err(EINVAL);
    }
    crate::mm::uaccess::copy_to_user(mask, &1u64.to_le_bytes())?;
    Ok(8)
}

/// `sched_yield()`: give the CPU to the next runnable task.
pub fn sys_sched_yield(_: &Args) -> SysResult {
    crate::proc::sched::schedule();
    Ok(0)
}

/// `getrusage(who, usage)`: fault counts of the process (RUSAGE_SELF) or of its reaped
/// children (RUSAGE_CHILDREN, not accumulated yet: 0). CPU times are not accounted.
pub fn sys_getrusage(a: &Args) -> SysResult {
    const RUSAGE_SELF: i64 = 0;
    const RUSAGE_CHILDREN: i64 = -1;
    const RUSAGE_THREAD: i64 = 1;
    use crate::proc::cputime;
    let t = proc::current().ok_or(ESRCH)?;
    let u = match a.0[0] as i32 as i64 {
        RUSAGE_SELF => cputime::process_usage(t),
        RUSAGE_CHILDREN => cputime::children_usage(t),
        RUSAGE_THREAD => cputime::thread_usage(t),
        _ => return Err(EINVAL),
    };
    crate::mm::uaccess::copy_to_user(a.0[1], &u.rusage_bytes())?;
    Ok(0)
}

/// `getresuid(ruid, euid, suid)` / `getresgid`: everyone is root.
pub fn sys_getresuid(a: &Args) -> SysResult {
    for p in [a.0[0], a.0[1], a.0[2]] {
        put_user(p, 0u32)?;
    }
    Ok(0)
}

/// `getgroups(size, list)`: no supplementary groups.
pub fn sys_getgroups(a: &Args) -> SysResult {
    if (a.0[0] as i32) < 0 {
        return Err(EINVAL);
    }
    Ok(0)
}

/// `getcpu(cpu, node, cache)`: CPU 0 on node 0; NULL pointers are skipped.
pub fn sys_getcpu(a: &Args) -> SysResult {
    for p in [a.0[0], a.0[1]] {
        if p != 0 {
            put_user(p, 0u32)?;
        }
    }
    Ok(0)
}

/// Scheduling policies.
const SCHED_OTHER: u64 = 0;
const SCHED_FIFO: u64 = 1;
const SCHED_RR: u64 = 2;
const SCHED_BATCH: u64 = 3;
const SCHED_IDLE: u64 = 5;
const SCHED_DEADLINE: u64 = 6;

/// The process `pid` names (0: the caller), or ESRCH; EINVAL for a negative pid.
fn sched_task(pid: u64) -> Result<(), super::errno::Errno> {
    let pid = pid as i32;
    if pid < 0 {
        return Err(EINVAL);
    }
    if pid != 0 && crate::proc::sched::find(pid as u32).is_none() {
        return Err(ESRCH);
    }
    Ok(())
}

/// `sched_getscheduler(pid)`: everyone is SCHED_OTHER (round robin at one priority).
pub fn sys_sched_getscheduler(a: &Args) -> SysResult {
    sched_task(a.0[0])?;
    Ok(SCHED_OTHER)
}

/// `sched_getparam(pid, param)`: priority 0.
pub fn sys_sched_getparam(a: &Args) -> SysResult {
    sched_task(a.0[0])?;
    if a.0[1] == 0 {
        return Err(EINVAL);
    }
    put_user(a.0[1], 0i32)?;
    Ok(0)
}

/// `sched_get_priority_max(policy)` / `_min`: 99 and 1 for the real-time policies, 0 for
/// the others, EINVAL for an unknown one.
pub fn sys_sched_get_priority(a: &Args, max: bool) -> SysResult {
    match a.0[0] as i32 as i64 as u64 {
        SCHED_FIFO | SCHED_RR => Ok(if max { 99 } else { 1 }),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE => Ok(0),
        _ => Err(EINVAL),
    }
}

/// `getpriority(which, who)`: nice 0 for everyone, returned as `20 - nice` (the raw
/// system call's encoding); ESRCH for a process that does not exist.
pub fn sys_getpriority(a: &Args) -> SysResult {
    const PRIO_PROCESS: u64 = 0;
    const PRIO_USER: u64 = 2;
    match a.0[0] {
        PRIO_PROCESS => {
            sched_task(a.0[1]).map_err(|_| ESRCH)?;
            Ok(20)
        }
        1..=PRIO_USER => Ok(20),
        _ => Err(EINVAL),
    }
}

/// `sched_setaffinity(pid, len, mask)`: the mask must include CPU 0, the only one
/// (EINVAL otherwise).
pub fn sys_sched_setaffinity(a: &Args) -> SysResult {
    sched_task(a.0[0]).map_err(|_| ESRCH)?;
    let len = (a.0[1] as usize).min(8);
    let mut b = [0u8; 8];
    crate::mm::uaccess::copy_from_user(&mut b[..len], a.0[2])?;
    if b[0] & 1 == 0 {
        return Err(EINVAL);
    }
    Ok(0)
}
