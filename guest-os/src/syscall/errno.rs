//! Linux error numbers (`include/uapi/asm-generic/errno-base.h`, `errno.h`). System calls
//! return `-errno` in RAX.

/// An error number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

pub const EPERM: Errno = Errno(1);
pub const ENOENT: Errno = Errno(2);
pub const ESRCH: Errno = Errno(3);
pub const EINTR: Errno = Errno(4);
pub const EIO: Errno = Errno(5);
pub const E2BIG: Errno = Errno(7);
pub const ENOEXEC: Errno = Errno(8);
pub const EBADF: Errno = Errno(9);
pub const ECHILD: Errno = Errno(10);
pub const EAGAIN: Errno = Errno(11);
pub const ENOMEM: Errno = Errno(12);
pub const EACCES: Errno = Errno(13);
pub const EFAULT: Errno = Errno(14);
pub const EEXIST: Errno = Errno(17);
pub const ENODEV: Errno = Errno(19);
pub const ENOTDIR: Errno = Errno(20);
pub const EISDIR: Errno = Errno(21);
pub const EINVAL: Errno = Errno(22);
pub const EMFILE: Errno = Errno(24);
pub const ENOTTY: Errno = Errno(25);
pub const ENOSPC: Errno = Errno(28);
pub const ESPIPE: Errno = Errno(29);
pub const EPIPE: Errno = Errno(32);
pub const ERANGE: Errno = Errno(34);
pub const ENAMETOOLONG: Errno = Errno(36);
pub const ENOSYS: Errno = Errno(38);
pub const ELOOP: Errno = Errno(40);
pub const EROFS: Errno = Errno(30);
pub const EBUSY: Errno = Errno(16);
pub const EXDEV: Errno = Errno(18);
pub const ENOTEMPTY: Errno = Errno(39);
pub const EFBIG: Errno = Errno(27);
pub const ETIMEDOUT: Errno = Errno(110);
pub const EOPNOTSUPP: Errno = Errno(95);
pub const EOVERFLOW: Errno = Errno(75);
pub const EMLINK: Errno = Errno(31);
pub const ENXIO: Errno = Errno(6);

/// Internal restart codes (`include/linux/errno.h`): a slow system call interrupted by a
/// signal returns one of these; signal delivery turns it into a restart or EINTR, so user
/// space never sees them.
///
/// Restart if the signal has no handler or its handler has SA_RESTART, else EINTR.
pub const ERESTARTSYS: Errno = Errno(512);
/// Always restart (fork-like calls that must not fail with EINTR).
pub const ERESTARTNOINTR: Errno = Errno(513);
/// Restart only if no handler ran (pause, sigsuspend: a handler always means EINTR).
pub const ERESTARTNOHAND: Errno = Errno(514);
/// Restart through `restart_syscall` with state kept in the task (nanosleep's remaining
/// time) if no handler ran, else EINTR.
pub const ERESTART_RESTARTBLOCK: Errno = Errno(516);

impl Errno {
    /// The value a system call returns: `-errno`.
    pub const fn ret(self) -> u64 {
        (-(self.0 as i64)) as u64
    }
}

/// A system call's result.
pub type SysResult = Result<u64, Errno>;
