//! Pipes (`fs/pipe.c`): a 64 KiB ring buffer shared by a read end and a write end.
//!
//! Semantics as Linux: data in FIFO order, reads return what is there, end of file once
//! every write end is closed, EPIPE (and SIGPIPE) when writing with every read end closed.
//! Reading an empty pipe or writing a full one sleeps until the other side acts, or until
//! a signal arrives (`-ERESTARTSYS`: the call restarts under SA_RESTART, else EINTR); with
//! O_NONBLOCK (on the open-file description, so `fcntl(F_SETFL)` changes it) it fails with
//! EAGAIN instead.
//!
//! A pipe end is a [`FileOps`]; each end's description counts once as a reader or writer,
//! however many descriptors share it, so the counts change only when a description goes.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use super::file::{poll, File, FileOps};
use super::stat::{Kstat, PIPEFS_DEV, S_IFIFO};
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::proc::wait_queue::WaitQueue;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, SysResult, EAGAIN, EBADF, EFAULT, ENOMEM, EPIPE, ERESTARTSYS};

/// Pipe capacity (Linux's default: 16 pages).
pub const PIPE_BUF_SIZE: usize = 64 << 10;
/// Writes of at most this many bytes are atomic (POSIX `PIPE_BUF`).
pub const PIPE_BUF: usize = 4096;
/// Bytes copied through the kernel stack at a time.
const CHUNK: usize = 4096;

struct State {
    data: VecDeque<u8>,
    readers: u32,
    writers: u32,
}

/// A pipe, and the tasks sleeping on it (its wait queue).
pub struct Pipe {
    state: IrqLock<State>,
    waiters: WaitQueue,
    /// Inode number for fstat (pipefs gives each pipe its own).
    ino: u64,
}

/// One end of a pipe; dropping it (the last descriptor of its description closed) closes
/// that end.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
}

/// A new pipe's (read end, write end), or ENOMEM.
pub fn new_pipe() -> Result<(PipeEnd, PipeEnd), Errno> {
    use core::sync::atomic::{AtomicU64, Ordering};
    static NEXT_INO: AtomicU64 = AtomicU64::new(0x1000);
    let mut data = VecDeque::new();
    data.try_reserve(PIPE_BUF).map_err(|_| ENOMEM)?;
    let state = State {
        data,
        readers: 1,
        writers: 1,
    };
    let p = super::file::try_arc(Pipe {
        state: IrqLock::new("pipe", state),
        waiters: WaitQueue::new("pipe_wait"),
        ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
    })?;
    Ok((
        PipeEnd {
            pipe: p.clone(),
            write: false,
        },
        PipeEnd {
            pipe: p,
            write: true,
        },
    ))
}

impl Pipe {
    /// Sleep until the other side reads, writes or closes (`pipe_wait`); ERESTARTSYS when
    /// a signal is pending.
    fn wait(&self) -> Result<(), Errno> {
        let Some(me) = crate::proc::current() else {
            return Err(EAGAIN);
        };
        if crate::proc::signal::has_pending(me) {
            return Err(ERESTARTSYS);
        }
        self.waiters.add_current();
        crate::proc::sched::sleep();
        self.waiters.remove_current();
        Ok(())
    }

    /// Copy up to `buf.len()` queued bytes without taking them: `Ok(0)` at end of file,
    /// EAGAIN when empty with writers left. Take them with [`Pipe::consume`] once the copy
    /// to the reader succeeded, so a bad buffer loses no data (as in Linux).
    fn peek(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        let s = self.state.lock();
        if s.data.is_empty() {
            return if s.writers == 0 { Ok(0) } else { Err(EAGAIN) };
        }
        let n = buf.len().min(s.data.len());
        for (d, b) in buf.iter_mut().zip(s.data.iter()).take(n) {
            *d = *b;
        }
        Ok(n)
    }

    /// Drop `n` bytes from the front.
    fn consume(&self, n: usize) {
        let mut s = self.state.lock();
        let n = n.min(s.data.len());
        s.data.drain(..n);
        drop(s);
        self.waiters.wake_all();
    }

    /// Append `bytes` if there is room for all of them (`PIPE_BUF` atomicity: callers pass
    /// at most a chunk): EPIPE without readers, EAGAIN when full, ENOMEM if the ring
    /// cannot grow.
    fn write(&self, bytes: &[u8]) -> Result<usize, Errno> {
        let mut s = self.state.lock();
        if s.readers == 0 {
            return Err(EPIPE);
        }
        let n = bytes.len().min(PIPE_BUF_SIZE - s.data.len());
        if n == 0 || (bytes.len() <= PIPE_BUF && n < bytes.len()) {
            return Err(EAGAIN);
        }
        s.data.try_reserve(n).map_err(|_| ENOMEM)?;
        s.data.extend(&bytes[..n]);
        drop(s);
        self.waiters.wake_all();
        Ok(n)
    }
}

impl FileOps for PipeEnd {
    fn read(&self, file: &File, buf: u64, len: usize, _: &mut u64) -> SysResult {
        if self.write {
            return Err(EBADF);
        }
        if len == 0 {
            return Ok(0);
        }
        let mut chunk = [0u8; CHUNK];
        let n = loop {
            match self.pipe.peek(&mut chunk[..len.min(CHUNK)]) {
                Err(EAGAIN) if !file.nonblock() => self.pipe.wait()?,
                r => break r?,
            }
        };
        copy_to_user(buf, &chunk[..n])?;
        self.pipe.consume(n);
        Ok(n as u64)
    }

    fn write(&self, file: &File, buf: u64, len: usize, _: &mut u64) -> SysResult {
        if !self.write {
            return Err(EBADF);
        }
        let mut chunk = [0u8; CHUNK];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(CHUNK);
            if copy_from_user(&mut chunk[..n], buf + done as u64).is_err() {
                return if done > 0 {
                    Ok(done as u64)
                } else {
                    Err(EFAULT)
                };
            }
            let mut off = 0;
            while off < n {
                match self.pipe.write(&chunk[off..n]) {
                    Ok(w) => off += w,
                    Err(EAGAIN) if !file.nonblock() => {
                        if let Err(e) = self.pipe.wait() {
                            let total = done + off;
                            return if total > 0 { Ok(total as u64) } else { Err(e) };
                        }
                    }
                    Err(e) => {
                        let total = done + off;
                        if total > 0 {
                            return Ok(total as u64);
                        }
                        if e == EPIPE {
                            crate::proc::signal::send_self(
                                crate::proc::signal::SIGPIPE,
                                crate::proc::signal::SigInfo {
                                    signo: crate::proc::signal::SIGPIPE,
                                    code: crate::proc::signal::SI_USER,
                                    addr: 0,
                                    pid: 0,
                                    status: 0,
                                },
                            );
                        }
                        return Err(e);
                    }
                }
            }
            done += n;
        }
        Ok(done as u64)
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        // A FIFO (S_IFIFO, rw-------) on pipefs.
        let mut k = Kstat::new(PIPEFS_DEV, self.pipe.ino, S_IFIFO | 0o600, 1, 0);
        k.blocks = 0;
        Ok(k)
    }

    fn poll(&self, _: &File) -> u16 {
        let s = self.pipe.state.lock();
        let mut mask = 0;
        if self.write {
            if s.data.len() < PIPE_BUF_SIZE {
                mask |= poll::POLLOUT | poll::POLLWRNORM;
            }
            if s.readers == 0 {
                mask |= poll::POLLERR;
            }
        } else {
            if !s.data.is_empty() {
                mask |= poll::POLLIN | poll::POLLRDNORM;
            }
            if s.writers == 0 {
                mask |= poll::POLLHUP;
            }
        }
        mask
    }

    fn poll_wait(&self) {
        self.pipe.waiters.add_current();
    }

    fn poll_unwait(&self) {
        self.pipe.waiters.remove_current();
    }

    fn name(&self) -> &'static str {
        "pipe"
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut s = self.pipe.state.lock();
        if self.write {
            s.writers -= 1;
        } else {
            s.readers -= 1;
        }
        drop(s);
        // Readers see end of file, writers EPIPE.
        self.pipe.waiters.wake_all();
    }
}
