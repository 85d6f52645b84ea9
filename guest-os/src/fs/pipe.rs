//! Pipes (`fs/pipe.c`): a 64 KiB ring buffer shared by a read end and a write end.
//!
//! Semantics as Linux: data in FIFO order, reads return what is there, end of file once
//! every write end is closed, EPIPE (and SIGPIPE) when writing with every read end closed.
//! Reading an empty pipe or writing a full one sleeps until the other side acts (or a
//! signal arrives: EINTR); with O_NONBLOCK it fails with EAGAIN instead.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, EAGAIN, EPIPE};

/// Pipe capacity (Linux's default: 16 pages).
pub const PIPE_BUF_SIZE: usize = 64 << 10;

struct State {
    data: VecDeque<u8>,
    readers: u32,
    writers: u32,
}

/// A pipe, and the tasks sleeping on it.
pub struct Pipe(
    IrqLock<State>,
    IrqLock<alloc::vec::Vec<&'static crate::proc::Task>>,
);

/// One end of a pipe; dropping it closes that end.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
    /// O_NONBLOCK.
    pub nonblock: bool,
}

/// A new pipe's (read end, write end); `nonblock` is O_NONBLOCK for both.
pub fn new_pipe(nonblock: bool) -> (PipeEnd, PipeEnd) {
    let state = State {
        data: VecDeque::new(),
        readers: 1,
        writers: 1,
    };
    let p = Arc::new(Pipe(
        IrqLock::new("pipe", state),
        IrqLock::new("pipe_wait", alloc::vec::Vec::new()),
    ));
    (
        PipeEnd {
            pipe: p.clone(),
            write: false,
            nonblock,
        },
        PipeEnd {
            pipe: p,
            write: true,
            nonblock,
        },
    )
}

impl PipeEnd {
    pub fn is_write_end(&self) -> bool {
        self.write
    }

    /// Another descriptor for the same end (dup).
    pub fn dup(&self) -> PipeEnd {
        let mut s = self.pipe.0.lock();
        if self.write {
            s.writers += 1;
        } else {
            s.readers += 1;
        }
        drop(s);
        PipeEnd {
            pipe: self.pipe.clone(),
            write: self.write,
            nonblock: self.nonblock,
        }
    }

    /// The pipe itself (operations do not change its reader/writer counts).
    pub fn pipe(&self) -> Arc<Pipe> {
        self.pipe.clone()
    }
}

impl Pipe {
    /// Sleep until the other side reads, writes or closes (`pipe_wait`). EINTR when a
    /// signal is pending.
    pub fn wait(&self) -> Result<(), Errno> {
        let Some(me) = crate::proc::current() else {
            return Err(EAGAIN);
        };
        if crate::proc::signal::has_pending(me) {
            return Err(crate::syscall::errno::EINTR);
        }
        self.1.lock().push(me);
        crate::proc::sched::sleep();
        Ok(())
    }

    /// Wake every task sleeping on the pipe.
    pub fn wake_all(&self) {
        let waiters = core::mem::take(&mut *self.1.lock());
        for t in waiters {
            crate::proc::sched::wake(t);
        }
    }

    /// Copy up to `buf.len()` queued bytes without taking them: `Ok(0)` at end of file,
    /// EAGAIN when empty with writers left. Take them with [`Pipe::consume`] once the copy
    /// to the reader succeeded, so a bad buffer loses no data (as in Linux).
    pub fn peek(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        let s = self.0.lock();
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
    pub fn consume(&self, n: usize) {
        let mut s = self.0.lock();
        let n = n.min(s.data.len());
        s.data.drain(..n);
        drop(s);
        self.wake_all();
    }

    /// Append as much of `bytes` as fits: EPIPE without readers, EAGAIN when full.
    pub fn write(&self, bytes: &[u8]) -> Result<usize, Errno> {
        let mut s = self.0.lock();
        if s.readers == 0 {
            return Err(EPIPE);
        }
        let n = bytes.len().min(PIPE_BUF_SIZE - s.data.len());
        if n == 0 {
            return Err(EAGAIN);
        }
        s.data.extend(&bytes[..n]);
        drop(s);
        self.wake_all();
        Ok(n)
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut s = self.pipe.0.lock();
        if self.write {
            s.writers -= 1;
        } else {
            s.readers -= 1;
        }
        drop(s);
        // Readers see end of file, writers EPIPE.
        self.pipe.wake_all();
    }
}
