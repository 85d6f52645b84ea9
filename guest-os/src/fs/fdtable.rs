//! The current process's descriptors: Linux's `fget`, `fd_install`/`get_unused_fd_flags`
//! and `close_fd`, over the generic table of `kfs::fdtable` holding `Arc<File>`s.
//!
//! The table lock is held only for the slot operation itself; the `Arc` is cloned out, so
//! an operation (which may copy user memory or sleep) never runs under it, and a
//! description closed by another descriptor meanwhile stays alive until the operation
//! ends, as with Linux's `fdget`/`fdput`.

use alloc::sync::Arc;

use super::file::File;
use crate::proc::{self, rlimit};
use crate::syscall::errno::{Errno, EBADF};

/// A process's descriptor table (`struct files_struct`).
pub type FilesStruct = kfs::fdtable::FdTable<Arc<File>>;

fn errno(e: kfs::Errno) -> Errno {
    Errno(e.0)
}

/// The description behind `fd` of the current process (`fget`, or Linux's `fdget_raw`:
/// O_PATH descriptors included), or EBADF.
pub fn fget(fd: u64) -> Result<Arc<File>, Errno> {
    let t = proc::current().ok_or(EBADF)?;
    let files = t.files().lock();
    files.get(fd).cloned().ok_or(EBADF)
}

/// [`fget`] for operations on the file itself (`fdget`): an O_PATH descriptor names a
/// location only, so reading, writing, seeking, listing, ioctl and mmap are EBADF.
pub fn fdget(fd: u64) -> Result<Arc<File>, Errno> {
    let f = fget(fd)?;
    if f.flags() & super::file::flags::O_PATH != 0 {
        return Err(EBADF);
    }
    Ok(f)
}

/// The open mode of `fd`: (readable, writable), for mmap's VM_MAYREAD/VM_MAYWRITE.
pub fn open_mode(fd: u64) -> Result<(bool, bool), Errno> {
    let f = fget(fd)?;
    Ok((f.readable(), f.writable()))
}

/// The current `RLIMIT_NOFILE` soft limit: descriptors must stay below it.
pub fn nofile_limit() -> usize {
    usize::try_from(rlimit::current(rlimit::RLIMIT_NOFILE))
        .unwrap_or(usize::MAX)
        .min(NR_OPEN)
}

/// The most descriptors a process can ever have (Linux's `sysctl_nr_open` default).
pub const NR_OPEN: usize = 1 << 20;

/// Install `file` at the lowest free descriptor at or above `start` (`open`, `dup`,
/// `F_DUPFD`): EMFILE at the limit (EINVAL for `F_DUPFD` with a start beyond it is the
/// caller's check), ENOMEM if the table cannot grow.
pub fn fd_install_from(start: usize, file: Arc<File>, cloexec: bool) -> Result<usize, Errno> {
    let t = proc::current().ok_or(EBADF)?;
    let limit = nofile_limit();
    let r = t.files().lock().alloc(start, limit, file, cloexec);
    // On failure the file comes back and is dropped here, outside the lock.
    r.map_err(|(e, _f)| errno(e))
}

/// [`fd_install_from`] 0.
pub fn fd_install(file: Arc<File>, cloexec: bool) -> Result<usize, Errno> {
    fd_install_from(0, file, cloexec)
}

/// Put `file` at `fd`, closing what was there (`dup2`/`dup3`): EBADF at or above the
/// limit.
pub fn fd_replace(fd: usize, file: Arc<File>, cloexec: bool) -> Result<(), Errno> {
    let t = proc::current().ok_or(EBADF)?;
    let limit = nofile_limit();
    let r = t.files().lock().replace(fd, limit, file, cloexec);
    match r {
        Ok(old) => {
            drop(old); // outside the lock: closing a pipe end wakes its peers
            Ok(())
        }
        Err((e, _f)) => Err(errno(e)),
    }
}

/// Close `fd` (`close_fd`), or EBADF.
pub fn close_fd(fd: u64) -> Result<(), Errno> {
    let t = proc::current().ok_or(EBADF)?;
    let r = t.files().lock().close(fd);
    r.map(drop).map_err(errno)
}

/// The first process's table: 0 and 1 on the console's COM1 (stdout), 2 on COM2 (stderr
/// under `vmscope run`).
pub fn console_table() -> Option<FilesStruct> {
    use super::console::{Console, ConsolePort};
    use super::file::{flags::O_RDWR, try_file, try_ops};
    let mut t = FilesStruct::new();
    for port in [ConsolePort::Com1, ConsolePort::Com1, ConsolePort::Com2] {
        let f = try_file(try_ops(Console { port }).ok()?, O_RDWR).ok()?;
        t.alloc(0, 3, f, false).ok()?;
    }
    Some(t)
}

/// Close the close-on-exec descriptors of `t` (execve, `do_close_on_exec`).
pub fn close_on_exec(t: &proc::Task) {
    let closed = t.files().lock().close_on_exec();
    drop(closed);
}
