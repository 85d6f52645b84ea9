//! Formatted output to file descriptors: the [`print!`](crate::print),
//! [`println!`](crate::println), [`eprint!`](crate::eprint) and
//! [`eprintln!`](crate::eprintln) macros.
//!
//! Each macro call formats into a stack buffer of [`BUF_SIZE`] bytes and
//! writes it with one `write` system call (more only if the text is longer
//! than the buffer, or the kernel writes short). Nothing is kept between
//! calls, so there is nothing to flush at exit, and the output of
//! concurrent processes (or of stdout and stderr on the same pipe)
//! interleaves at line granularity, deterministically.
//!
//! Write errors (e.g. `EPIPE`, `EBADF`) are ignored by the macros, so a
//! program whose output is closed still runs to completion; use
//! [`write_fmt`] to see them.

use alloc_crate::vec::Vec;
use core::ffi::CStr;
use core::fmt;

use crate::sys::fs::{close, open, read, write_all, O_CLOEXEC, O_RDONLY};
use crate::sys::{Errno, SysResult};

/// Size of the per-call output buffer.
pub const BUF_SIZE: usize = 1024;

/// A `fmt::Write` sink that collects text in a fixed buffer and writes it to
/// `fd` whenever the buffer fills up and on [`flush`](Self::flush).
pub struct FdWriter<const N: usize> {
    fd: i32,
    len: usize,
    buf: [u8; N],
    /// First write error seen; later output is dropped.
    error: Option<Errno>,
}

impl<const N: usize> FdWriter<N> {
    /// An empty writer for `fd`.
    pub const fn new(fd: i32) -> Self {
        FdWriter {
            fd,
            len: 0,
            buf: [0; N],
            error: None,
        }
    }

    /// Writes out the buffered bytes; returns the first error seen so far.
    pub fn flush(&mut self) -> SysResult<()> {
        if self.error.is_none() && self.len > 0 {
            if let Err(e) = write_all(self.fd, &self.buf[..self.len]) {
                self.error = Some(e);
            }
        }
        self.len = 0;
        self.error.map_or(Ok(()), Err)
    }

    /// Appends bytes, flushing whenever the buffer is full.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == N {
                // Errors are remembered in self.error and reported by flush().
                let _ = self.flush();
            }
            let n = (N - self.len).min(bytes.len());
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }
}

impl<const N: usize> fmt::Write for FdWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Formats `args` (plus a newline if `newline`) to `fd`, with one `write`
/// for output up to [`BUF_SIZE`] bytes.
pub fn write_fmt(fd: i32, args: fmt::Arguments<'_>, newline: bool) -> SysResult<()> {
    let mut w = FdWriter::<BUF_SIZE>::new(fd);
    // Our write_str never fails; an Err can only come from a user Display
    // impl, in which case we still write what was formatted (like std).
    let _ = fmt::write(&mut w, args);
    if newline {
        w.write_bytes(b"\n");
    }
    w.flush()
}

/// Implementation of the print macros; errors are ignored (see module docs).
#[doc(hidden)]
pub fn _print(fd: i32, args: fmt::Arguments<'_>, newline: bool) {
    let _ = write_fmt(fd, args, newline);
}

/// Reads from `fd` until end of file (retrying `EINTR`). Works for files
/// whose size is unknown in advance, such as those in `/proc`.
pub fn read_all(fd: i32) -> SysResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match read(fd, &mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Opens `path` read-only and returns its whole contents.
pub fn read_file(path: &CStr) -> SysResult<Vec<u8>> {
    let fd = open(path, O_RDONLY | O_CLOEXEC, 0)?;
    let data = read_all(fd);
    let _ = close(fd);
    data
}

/// Displays bytes as text, replacing invalid UTF-8 with U+FFFD (valid
/// UTF-8 prints byte-exact). For names read from files such as `/proc`.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

/// `"yes"` or `"no"`.
pub const fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A list of checks printed as `<what>: yes|no` on stdout, remembering
/// whether any failed (for the exit status).
#[derive(Debug, Default)]
pub struct Report {
    failures: u32,
}

impl Report {
    /// No checks yet.
    pub const fn new() -> Report {
        Report { failures: 0 }
    }

    /// Prints `<what>: yes` or `<what>: no` and counts a `no` as a failure.
    /// Returns `ok`.
    pub fn check(&mut self, what: &str, ok: bool) -> bool {
        crate::println!("{what}: {}", yes_no(ok));
        self.failures += u32::from(!ok);
        ok
    }

    /// Counts a failure reported in some other way.
    pub fn fail(&mut self) {
        self.failures += 1;
    }

    /// Number of failed checks.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// 0 if every check passed, else 1.
    pub fn exit_status(&self) -> i32 {
        i32::from(self.failures != 0)
    }
}

/// Prints to standard output (fd 1) with one `write` per call.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::io::_print($crate::sys::fs::STDOUT, format_args!($($arg)*), false)
    };
}

/// Prints a line to standard output (fd 1) with one `write` per call.
#[macro_export]
macro_rules! println {
    () => {
        $crate::io::_print($crate::sys::fs::STDOUT, format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::io::_print($crate::sys::fs::STDOUT, format_args!($($arg)*), true)
    };
}

/// Prints to standard error (fd 2) with one `write` per call.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::io::_print($crate::sys::fs::STDERR, format_args!($($arg)*), false)
    };
}

/// Prints a line to standard error (fd 2) with one `write` per call.
#[macro_export]
macro_rules! eprintln {
    () => {
        $crate::io::_print($crate::sys::fs::STDERR, format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::io::_print($crate::sys::fs::STDERR, format_args!($($arg)*), true)
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fs::{close, read};
    use crate::sys::{check, nr, syscall2};
    use core::fmt::Write;

    fn pipe() -> (i32, i32) {
        let mut fds = [0i32; 2];
        // SAFETY: fds is writable for two ints; flags = 0.
        check(unsafe { syscall2(nr::SYS_pipe2, fds.as_mut_ptr() as usize, 0) }).expect("pipe2");
        (fds[0], fds[1])
    }

    /// Output longer than the buffer arrives complete and in order.
    #[test]
    fn writer_flushes_when_full() {
        let (r, w) = pipe();
        let mut out = FdWriter::<8>::new(w);
        write!(out, "{:>12}-{}", "abcdefghij", 12345).expect("format");
        out.flush().expect("flush");
        close(w).expect("close");
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            let n = read(r, &mut buf).expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        close(r).expect("close");
        assert_eq!(got, b"  abcdefghij-12345");
    }

    #[test]
    fn read_file_reads_proc_files_to_the_end() {
        // /proc files report size 0 but have content.
        let maps = read_file(c"/proc/self/maps").expect("read");
        assert!(maps.len() > 100 && maps.ends_with(b"\n"));
        assert_eq!(read_file(c"/nonexistent"), Err(Errno::ENOENT));
    }

    #[test]
    fn write_fmt_reports_errors() {
        assert_eq!(write_fmt(-1, format_args!("x"), true), Err(Errno::EBADF));
    }
}
