//! Process system calls: exit, exit_group, getpid, getppid, fork, execve,
//! wait4, kill, pause, prlimit64 (resource limits), sched_getaffinity,
//! getcpu.

use core::convert::Infallible;
use core::ffi::{c_char, CStr};

use super::nr::*;
use super::{check, syscall0, syscall1, syscall2, syscall3, syscall4, SysResult};
use crate::sys::Errno;

/// `wait4` option: return immediately if no child has exited.
pub const WNOHANG: u32 = 1;
/// `wait4` option: also report stopped children.
pub const WUNTRACED: u32 = 2;
/// `wait4` option: also report children continued by SIGCONT.
pub const WCONTINUED: u32 = 8;

/// Ends the whole process (all threads) with `status & 0xff`.
pub fn exit_group(status: i32) -> ! {
    // SAFETY: exit_group does not return, so no memory is touched afterwards.
    unsafe { syscall1(SYS_exit_group, status as usize) };
    // Unreachable unless a (broken) kernel returned: make sure we never do.
    loop {
        // SAFETY: as above.
        unsafe { syscall1(SYS_exit, status as usize) };
    }
}

/// Ends the calling thread with `status & 0xff` (the whole process if it has
/// a single thread). Programs normally want [`exit_group`].
pub fn exit(status: i32) -> ! {
    loop {
        // SAFETY: exit does not return.
        unsafe { syscall1(SYS_exit, status as usize) };
    }
}

/// `getpid()`.
pub fn getpid() -> i32 {
    // SAFETY: no arguments; cannot fail.
    unsafe { syscall0(SYS_getpid) as i32 }
}

/// `getppid()`.
pub fn getppid() -> i32 {
    // SAFETY: no arguments; cannot fail.
    unsafe { syscall0(SYS_getppid) as i32 }
}

/// Result of [`fork`] as seen by each process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fork {
    /// In the child.
    Child,
    /// In the parent, with the child's pid.
    Parent(i32),
}

/// `fork()`.
///
/// The runtime has no threads and no locks held across calls, so the child
/// may keep using everything (output macros, allocator).
pub fn fork() -> SysResult<Fork> {
    // SAFETY: the child gets a copy of the address space.
    check(unsafe { syscall0(SYS_fork) }).map(|pid| match pid {
        0 => Fork::Child,
        pid => Fork::Parent(pid as i32),
    })
}

/// `execve(path, argv, envp)`: only returns on failure.
///
/// # Safety
/// `argv` and `envp` must each point to a NULL-terminated array of pointers
/// to NUL-terminated strings.
pub unsafe fn execve(
    path: &CStr,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> SysResult<Infallible> {
    let ret = syscall3(
        SYS_execve,
        path.as_ptr() as usize,
        argv as usize,
        envp as usize,
    );
    // execve returns only on error.
    Err(check(ret).err().unwrap_or(super::Errno::EINVAL))
}

/// Decoded wait status (the `int *wstatus` of `wait4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitStatus(pub i32);

impl WaitStatus {
    /// `WIFEXITED`: the child called exit.
    pub fn exited(self) -> bool {
        self.0 & 0x7f == 0
    }
    /// `WEXITSTATUS`: its exit status (valid if [`exited`](Self::exited)).
    pub fn exit_status(self) -> i32 {
        (self.0 >> 8) & 0xff
    }
    /// `WIFSIGNALED`: the child was killed by a signal.
    pub fn signaled(self) -> bool {
        let sig = self.0 & 0x7f;
        sig != 0 && sig != 0x7f
    }
    /// `WTERMSIG`: the signal that killed it (valid if [`signaled`](Self::signaled)).
    pub fn term_signal(self) -> i32 {
        self.0 & 0x7f
    }
    /// `WIFSTOPPED`: the child was stopped by a signal.
    pub fn stopped(self) -> bool {
        self.0 & 0xff == 0x7f
    }
    /// `WSTOPSIG`: the signal that stopped it (valid if [`stopped`](Self::stopped)).
    pub fn stop_signal(self) -> i32 {
        (self.0 >> 8) & 0xff
    }
    /// `WIFCONTINUED`: the child was resumed by SIGCONT.
    pub fn continued(self) -> bool {
        self.0 == 0xffff
    }
}

/// `wait4(pid, &status, options, NULL)`: returns the reaped child's pid and
/// its status (pid 0 with `WNOHANG` if no child changed state).
pub fn wait4(pid: i32, options: u32) -> SysResult<(i32, WaitStatus)> {
    let mut status: i32 = 0;
    // SAFETY: status is writable; rusage is NULL.
    let ret = check(unsafe {
        syscall4(
            SYS_wait4,
            pid as usize,
            &mut status as *mut i32 as usize,
            options as usize,
            0,
        )
    })?;
    Ok((ret as i32, WaitStatus(status)))
}

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: i32) -> SysResult<()> {
    // SAFETY: no memory is involved.
    check(unsafe { syscall2(SYS_kill, pid as usize, sig as usize) }).map(drop)
}

/// `pause()`: sleeps until a signal is delivered (returns `EINTR` after a
/// handler ran; never returns if the signal kills the process).
pub fn pause() -> Errno {
    // SAFETY: no memory is involved.
    check(unsafe { syscall0(SYS_pause) })
        .err()
        .unwrap_or(Errno::EINTR)
}

/// Resource: maximum size of the stack (bytes).
pub const RLIMIT_STACK: u32 = 3;
/// Resource: maximum size of a core dump (bytes).
pub const RLIMIT_CORE: u32 = 4;
/// Resource: maximum number of open files.
pub const RLIMIT_NOFILE: u32 = 7;
/// Resource: maximum size of the address space (bytes).
pub const RLIMIT_AS: u32 = 9;
/// "No limit".
pub const RLIM_INFINITY: u64 = u64::MAX;

/// `struct rlimit64`: soft and hard limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit (what the kernel enforces).
    pub cur: u64,
    /// Hard limit (ceiling for the soft limit).
    pub max: u64,
}

/// `prlimit64(0, resource, NULL, &old)`: the calling process's limit.
pub fn getrlimit(resource: u32) -> SysResult<Rlimit> {
    let mut old = Rlimit::default();
    // SAFETY: old is writable; no new limit.
    check(unsafe {
        syscall4(
            SYS_prlimit64,
            0,
            resource as usize,
            0,
            &mut old as *mut Rlimit as usize,
        )
    })?;
    Ok(old)
}

/// `prlimit64(0, resource, &new, NULL)`: sets the calling process's limit.
pub fn setrlimit(resource: u32, new: Rlimit) -> SysResult<()> {
    // SAFETY: new is readable; old is NULL.
    check(unsafe {
        syscall4(
            SYS_prlimit64,
            0,
            resource as usize,
            &new as *const Rlimit as usize,
            0,
        )
    })
    .map(drop)
}

/// A CPU affinity mask of up to 1024 CPUs (`cpu_set_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(pub [u64; 16]);

impl CpuSet {
    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        let (word, bit) = ((cpu / 64) as usize, cpu % 64);
        word < self.0.len() && self.0[word] & (1 << bit) != 0
    }
    /// Number of CPUs in the set.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
}

/// `sched_getaffinity(0, ...)`: the CPUs the calling thread may run on.
pub fn sched_getaffinity() -> SysResult<CpuSet> {
    let mut set = CpuSet::default();
    // SAFETY: the kernel writes at most size_of_val(&set.0) bytes (and
    // returns how many it wrote; the rest stays zero).
    check(unsafe {
        syscall3(
            SYS_sched_getaffinity,
            0,
            core::mem::size_of_val(&set.0),
            set.0.as_mut_ptr() as usize,
        )
    })?;
    Ok(set)
}

/// Number of CPUs the calling thread may run on.
pub fn nproc() -> SysResult<u32> {
    sched_getaffinity().map(|s| s.count())
}

/// `getcpu(&cpu, &node, NULL)`: the CPU and NUMA node the caller is running
/// on (may be stale as soon as it returns).
pub fn getcpu() -> SysResult<(u32, u32)> {
    let (mut cpu, mut node) = (0u32, 0u32);
    // SAFETY: both pointers are writable u32s.
    check(unsafe {
        syscall3(
            SYS_getcpu,
            &mut cpu as *mut u32 as usize,
            &mut node as *mut u32 as usize,
            0,
        )
    })?;
    Ok((cpu, node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        let exited = WaitStatus(42 << 8);
        assert!(exited.exited() && !exited.signaled());
        assert_eq!(exited.exit_status(), 42);
        let killed = WaitStatus(9);
        assert!(killed.signaled() && !killed.exited());
        assert_eq!(killed.term_signal(), 9);
        let dumped = WaitStatus(0x80 | 11);
        assert!(dumped.signaled());
        assert_eq!(dumped.term_signal(), 11);
        let stopped = WaitStatus(0x137f);
        assert!(!stopped.signaled() && !stopped.exited());
    }

    #[test]
    fn limits_and_cpus() {
        let core = getrlimit(RLIMIT_CORE).expect("getrlimit");
        assert!(core.cur <= core.max);
        let n = nproc().expect("nproc");
        assert!(n >= 1);
        let (cpu, _node) = getcpu().expect("getcpu");
        assert!(cpu < 1024);
        // (The thread may migrate between the calls, but only within its mask.)
        assert!(sched_getaffinity().expect("affinity").contains(cpu));
    }
}
