//! Process attributes and system information (`kernel/sys.c`, `kernel/membarrier.c`,
//! `kernel/futex/syscalls.c`'s robust list): resource limits, sysinfo, prctl, process
//! groups and sessions, membarrier, set/get_robust_list.

use core::sync::atomic::Ordering;

use super::errno::{SysResult, EFAULT, EINVAL, EPERM, ESRCH};
use super::Args;
use crate::mm::uaccess::{copy_from_user, copy_to_user, get_user, put_user};
use crate::proc::rlimit::{Rlimit, RLIMIT_NOFILE, RLIM_NLIMITS};
use crate::proc::{self, sched, state, Task};

/// The task `pid` names (0: the caller), or ESRCH.
fn task_of(pid: u64) -> Result<&'static Task, super::errno::Errno> {
    let me = proc::current().ok_or(ESRCH)?;
    let pid = pid as i32;
    if pid == 0 {
        return Ok(me);
    }
    if pid < 0 {
        return Err(ESRCH);
    }
    sched::find(pid as u32)
        .filter(|t| t.state.load(Ordering::Acquire) != state::ZOMBIE)
        .ok_or(ESRCH)
}

fn read_rlimit(addr: u64) -> Result<Rlimit, super::errno::Errno> {
    let mut b = [0u8; 16];
    copy_from_user(&mut b, addr)?;
    Ok(Rlimit {
        cur: u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])),
        max: u64::from_le_bytes(b[8..].try_into().unwrap_or([0; 8])),
    })
}

fn write_rlimit(addr: u64, r: Rlimit) -> Result<(), super::errno::Errno> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&r.cur.to_le_bytes());
    b[8..].copy_from_slice(&r.max.to_le_bytes());
    copy_to_user(addr, &b)
}

/// `do_prlimit`: read and optionally change limit `res` of `t`. Everyone is root
/// (CAP_SYS_RESOURCE), so hard limits may rise, but not RLIMIT_NOFILE past `nr_open`.
fn do_prlimit(t: &Task, res: u64, new: Option<Rlimit>) -> Result<Rlimit, super::errno::Errno> {
    if res >= RLIM_NLIMITS as u64 {
        return Err(EINVAL);
    }
    let res = res as usize;
    if let Some(n) = new {
        if n.cur > n.max {
            return Err(EINVAL);
        }
        if res == RLIMIT_NOFILE && n.max > crate::fs::fdtable::NR_OPEN as u64 {
            return Err(EPERM);
        }
    }
    let mut l = t.rlim.lock();
    let old = l[res];
    if let Some(n) = new {
        l[res] = n;
    }
    Ok(old)
}

/// `getrlimit(resource, rlim)`.
pub fn sys_getrlimit(a: &Args) -> SysResult {
    let t = proc::current().ok_or(ESRCH)?;
    let r = do_prlimit(t, a.0[0] as u32 as u64, None)?;
    write_rlimit(a.0[1], r)?;
    Ok(0)
}

/// `setrlimit(resource, rlim)`.
pub fn sys_setrlimit(a: &Args) -> SysResult {
    let new = read_rlimit(a.0[1])?;
    let t = proc::current().ok_or(ESRCH)?;
    do_prlimit(t, a.0[0] as u32 as u64, Some(new))?;
    Ok(0)
}

/// `prlimit64(pid, resource, new, old)`.
pub fn sys_prlimit64(a: &Args) -> SysResult {
    let (pid, res, new, old) = (a.0[0], a.0[1] as u32 as u64, a.0[2], a.0[3]);
    let new = if new != 0 {
        Some(read_rlimit(new)?)
    } else {
        None
    };
    let t = task_of(pid)?;
    let r = do_prlimit(t, res, new)?;
    if old != 0 {
        write_rlimit(old, r)?;
    }
    Ok(0)
}

/// `sysinfo(info)`: `struct sysinfo` (112 bytes) from the real counters: uptime from the
/// virtual clock (rounded up, as Linux), RAM from the page allocator, the process count.
/// No swap, no load average yet.
pub fn sys_sysinfo(a: &Args) -> SysResult {
    let ns = super::info::monotonic_ns();
    let uptime = ns / 1_000_000_000 + u64::from(!ns.is_multiple_of(1_000_000_000));
    let (total, free) = crate::mm::page_alloc::with(|al| (al.totalram_pages(), al.nr_free_pages()));
    let procs = sched::all().len() as u64;
    let mut b = [0u8; 112];
    let mut put =
        |off: usize, v: u64, n: usize| b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
    put(0, uptime, 8);
    put(32, total * 4096, 8); // totalram, in mem_unit
    put(40, free * 4096, 8); // freeram
    put(80, procs.min(u16::MAX as u64), 2);
    put(104, 1, 4); // mem_unit
    copy_to_user(a.0[0], &b)?;
    Ok(0)
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;

/// `prctl(option, ...)`: the name (`comm`, 16 bytes with the NUL), and the few flags
/// programs set at start-up; anything else is EINVAL.
pub fn sys_prctl(a: &Args) -> SysResult {
    let t = proc::current().ok_or(ESRCH)?;
    match a.0[0] as u32 as u64 {
        PR_SET_NAME => {
            // At most 15 bytes are taken; a longer name is cut, not an error.
            let mut c = [0u8; 16];
            for (i, b) in c.iter_mut().take(15).enumerate() {
                let v: u8 = get_user(a.0[1] + i as u64)?;
                if v == 0 {
                    break;
                }
                *b = v;
            }
            *t.comm.lock() = c;
            Ok(0)
        }
        PR_GET_NAME => {
            let c = *t.comm.lock();
            copy_to_user(a.0[1], &c)?;
            Ok(0)
        }
        PR_SET_PDEATHSIG => {
            if a.0[1] > crate::proc::signal::NSIG as u64 {
                return Err(EINVAL);
            }
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            put_user(a.0[1], 0i32)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE => {
            if a.0[1] > 1 {
                return Err(EINVAL);
            }
            Ok(0)
        }
        PR_SET_NO_NEW_PRIVS => {
            if a.0[1] != 1 || a.0[2] != 0 || a.0[3] != 0 || a.0[4] != 0 {
                return Err(EINVAL);
            }
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => Ok(0),
        _ => Err(EINVAL),
    }
}

/// `setpgid(pid, pgid)` (`kernel/sys.c`): the caller or a child of it, into a group of its
/// session or a new group named after itself.
pub fn sys_setpgid(a: &Args) -> SysResult {
    let me = proc::current().ok_or(ESRCH)?;
    let pgid = a.0[1] as i32;
    if pgid < 0 {
        return Err(EINVAL);
    }
    let t = if a.0[0] as i32 == 0 {
        me
    } else {
        let t = sched::find(a.0[0] as i32 as u32).ok_or(ESRCH)?;
        if t.pid != me.pid && t.ppid.load(Ordering::Relaxed) != me.pid {
            return Err(ESRCH);
        }
        t
    };
    let pgid = if pgid == 0 { t.pid } else { pgid as u32 };
    let sid = t.sid.load(Ordering::Relaxed);
    // A session leader cannot move; a child in another session neither.
    if sid == t.pid || sid != me.sid.load(Ordering::Relaxed) {
        return Err(EPERM);
    }
    if pgid != t.pid {
        let exists = sched::all().iter().any(|p| {
            p.pgid.load(Ordering::Relaxed) == pgid && p.sid.load(Ordering::Relaxed) == sid
        });
        if !exists {
            return Err(EPERM);
        }
    }
    t.pgid.store(pgid, Ordering::Relaxed);
    Ok(0)
}

/// `getpgid(pid)` (and `getpgrp()` as `getpgid(0)`).
pub fn sys_getpgid(a: &Args) -> SysResult {
    Ok(task_of(a.0[0])?.pgid.load(Ordering::Relaxed) as u64)
}

/// `getsid(pid)`.
pub fn sys_getsid(a: &Args) -> SysResult {
    Ok(task_of(a.0[0])?.sid.load(Ordering::Relaxed) as u64)
}

/// `setsid()`: a new session and group named after the caller; EPERM if a group of
/// that id exists already (the caller leads one).
pub fn sys_setsid(_: &Args) -> SysResult {
    let me = proc::current().ok_or(ESRCH)?;
    if sched::all()
        .iter()
        .any(|p| p.pgid.load(Ordering::Relaxed) == me.pid)
    {
        return Err(EPERM);
    }
    me.sid.store(me.pid, Ordering::Relaxed);
    me.pgid.store(me.pid, Ordering::Relaxed);
    Ok(me.pid as u64)
}

/// `membarrier` commands.
const MEMBARRIER_CMD_QUERY: u64 = 0;
const MEMBARRIER_CMD_GLOBAL: u64 = 1 << 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: u64 = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: u64 = 1 << 2;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: u64 = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: u64 = 1 << 4;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: u64 = 1 << 5;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: u64 = 1 << 6;
const MEMBARRIER_CMD_GET_REGISTRATIONS: u64 = 1 << 9;
/// The commands answered (the rseq ones need rseq, which is not implemented).
const MEMBARRIER_SUPPORTED: u64 = MEMBARRIER_CMD_GLOBAL
    | MEMBARRIER_CMD_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
    | MEMBARRIER_CMD_GET_REGISTRATIONS;

/// `membarrier(cmd, flags, cpu_id)`: one CPU and one thread per process, so every barrier
/// is already there; the registrations are remembered because the expedited commands
/// need them first (EPERM otherwise), as on Linux.
pub fn sys_membarrier(a: &Args) -> SysResult {
    let (cmd, flags) = (a.0[0] as u32 as u64, a.0[1] as u32 as u64);
    if flags != 0 {
        return Err(EINVAL);
    }
    let t = proc::current().ok_or(ESRCH)?;
    let reg = &t.membarrier;
    match cmd {
        MEMBARRIER_CMD_QUERY => Ok(MEMBARRIER_SUPPORTED),
        MEMBARRIER_CMD_GLOBAL | MEMBARRIER_CMD_GLOBAL_EXPEDITED => Ok(0),
        MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
        | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
        | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE => {
            reg.fetch_or(cmd as u32, Ordering::Relaxed);
            Ok(0)
        }
        MEMBARRIER_CMD_PRIVATE_EXPEDITED | MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE => {
            // The matching registration is the command's bit shifted up by one.
            if reg.load(Ordering::Relaxed) as u64 & (cmd << 1) == 0 {
                return Err(EPERM);
            }
            Ok(0)
        }
        MEMBARRIER_CMD_GET_REGISTRATIONS => Ok(reg.load(Ordering::Relaxed) as u64),
        _ => Err(EINVAL),
    }
}

/// `sizeof(struct robust_list_head)`.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;

/// `set_robust_list(head, len)`: remembered; the list is walked when the thread exits or
/// execs ([`super::futex::exit_robust_list`]).
pub fn sys_set_robust_list(a: &Args) -> SysResult {
    if a.0[1] != ROBUST_LIST_HEAD_SIZE {
        return Err(EINVAL);
    }
    let t = proc::current().ok_or(ESRCH)?;
    t.robust_list.store(a.0[0], Ordering::Relaxed);
    Ok(0)
}

/// `get_robust_list(pid, head_ptr, len_ptr)`.
pub fn sys_get_robust_list(a: &Args) -> SysResult {
    let t = task_of(a.0[0])?;
    let head = t.robust_list.load(Ordering::Relaxed);
    put_user(a.0[2], ROBUST_LIST_HEAD_SIZE).map_err(|_| EFAULT)?;
    put_user(a.0[1], head).map_err(|_| EFAULT)?;
    Ok(0)
}

/// `syslog(type, buf, len)` (glibc's `klogctl`, what `dmesg` calls): the kernel log
/// buffer ([`crate::klog`]). Every process is root, so every action is allowed.
pub fn sys_syslog(a: &Args) -> SysResult {
    const CLOSE: u64 = 0;
    const OPEN: u64 = 1;
    const READ: u64 = 2;
    const READ_ALL: u64 = 3;
    const READ_CLEAR: u64 = 4;
    const CLEAR: u64 = 5;
    const CONSOLE_OFF: u64 = 6;
    const CONSOLE_ON: u64 = 7;
    const CONSOLE_LEVEL: u64 = 8;
    const SIZE_UNREAD: u64 = 9;
    const SIZE_BUFFER: u64 = 10;
    let (kind, buf, len) = (a.0[0] as u32 as u64, a.0[1], a.0[2] as i32);
    match kind {
        CLOSE | OPEN | CONSOLE_OFF | CONSOLE_ON => Ok(0),
        CONSOLE_LEVEL => {
            if !(1..=8).contains(&len) {
                return Err(EINVAL);
            }
            Ok(0)
        }
        READ | READ_ALL | READ_CLEAR => {
            if buf == 0 || len < 0 {
                return Err(EINVAL);
            }
            if len == 0 {
                return Ok(0);
            }
            if !crate::mm::uaccess::access_ok(buf, len as usize) {
                return Err(EFAULT);
            }
            let n = (len as usize).min(crate::klog::LOG_BUF_LEN);
            let mut tmp = alloc::vec::Vec::new();
            tmp.try_reserve_exact(n)
                .map_err(|_| crate::syscall::errno::ENOMEM)?;
            tmp.resize(n, 0);
            // READ would block until there is something to read; the buffer is never
            // empty after boot, so it returns at once here.
            let got = match kind {
                READ => crate::klog::read_unread(&mut tmp),
                _ => crate::klog::read_all(&mut tmp, kind == READ_CLEAR),
            };
            crate::mm::uaccess::copy_to_user(buf, &tmp[..got])?;
            Ok(got as u64)
        }
        CLEAR => {
            crate::klog::clear();
            Ok(0)
        }
        SIZE_UNREAD => Ok(crate::klog::unread() as u64),
        SIZE_BUFFER => Ok(crate::klog::LOG_BUF_LEN as u64),
        _ => Err(EINVAL),
    }
}
