//! Pipes (`fs/pipe.c`): a 64 KiB ring buffer shared by a read end and a write end.
//!
//! Semantics as Linux for everything that does not wait: data in FIFO order, reads return
//! what is there, end of file once every write end is closed, EPIPE (and SIGPIPE) when
//! writing with every read end closed, O_NONBLOCK giving EAGAIN. A call that would block
//! (reading an empty pipe, writing a full one) needs another process to make progress; until
//! the scheduler exists there is none, so it fails with EAGAIN instead of waiting forever.

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

/// A pipe.
pub struct Pipe(IrqLock<State>);

/// One end of a pipe; dropping it closes that end.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
}

/// A new pipe's (read end, write end).
pub fn new_pipe() -> (PipeEnd, PipeEnd) {
    let p = Arc::new(Pipe(IrqLock::new(
        "pipe",
        State {
            data: VecDeque::new(),
            readers: 1,
            writers: 1,
        },
    )));
    (
        PipeEnd {
            pipe: p.clone(),
            write: false,
        },
        PipeEnd {
            pipe: p,
            write: true,
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
        }
    }

    /// The pipe itself (operations do not change its reader/writer counts).
    pub fn pipe(&self) -> Arc<Pipe> {
        self.pipe.clone()
    }
}

impl Pipe {
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
    }
}
