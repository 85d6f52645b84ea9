//! Process system calls: exit, identity, arch_prctl, set_tid_address.

use core::sync::atomic::Ordering;

use super::errno::{SysResult, EINVAL, ESRCH};
use super::Args;
use crate::arch::x86_64::syscall::{rdmsr, wrmsr, MSR_FS_BASE};
use crate::mm::uaccess::{put_user, TASK_SIZE};
use crate::proc;

/// `exit_group(status)` / `exit(status)` (one thread per process): the process ends.
pub fn sys_exit_group(a: &Args) -> ! {
    proc::exit_current(proc::ExitReason::Exit((a.0[0] & 0xff) as u8))
}

pub fn sys_getpid(_: &Args) -> SysResult {
    Ok(proc::current().map_or(0, |t| t.pid) as u64)
}

pub fn sys_getppid(_: &Args) -> SysResult {
    Ok(proc::current().map_or(0, |t| t.ppid.load(core::sync::atomic::Ordering::Relaxed)) as u64)
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
    let t = proc::current().ok_or(ESRCH)?;
    let mut ru = [0u8; 144];
    match a.0[0] as i64 {
        RUSAGE_SELF => {
            ru[64..72].copy_from_slice(&t.min_flt.load(Ordering::Relaxed).to_le_bytes());
            ru[72..80].copy_from_slice(&t.maj_flt.load(Ordering::Relaxed).to_le_bytes());
        }
        RUSAGE_CHILDREN => {}
        _ => return Err(EINVAL),
    }
    crate::mm::uaccess::copy_to_user(a.0[1], &ru)?;
    Ok(0)
}
