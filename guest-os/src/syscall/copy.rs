//! Copies between two files inside the kernel: `sendfile` (`fs/read_write.c`'s
//! `do_sendfile`, busybox's cat and cp use it) and `copy_file_range` (coreutils' cp). The
//! data goes through a kernel bounce buffer lent to the files' own read and write
//! operations ([`KernelWindow`]), so every kind of file works on either side as its read
//! and write do (page cache, pipes, the console), with their blocking and signals.

use alloc::vec::Vec;

use super::errno::{Errno, SysResult, EBADF, EINVAL, EISDIR, ENOMEM, ESPIPE, EXDEV};
use crate::fs::fdtable::fdget;
use crate::fs::file::{flags, File};
use crate::fs::stat::{S_IFDIR, S_IFMT, S_IFREG};
use crate::mm::uaccess::{get_user, put_user, KernelWindow};

/// Largest count one call transfers (`MAX_RW_COUNT`).
const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// The bounce buffer: one chunk per read and write.
const CHUNK: usize = 64 << 10;

/// Copy up to `count` bytes from `inp` at `*pin` to `out` at `*pout` (each `None`: the
/// file's own offset, advanced). Stops at end of input, at a short write, and at a pending
/// signal after some progress; an error before any progress is returned.
fn copy_between(
    inp: &File,
    mut pin: Option<&mut u64>,
    out: &File,
    mut pout: Option<&mut u64>,
    count: u64,
) -> SysResult {
    let mut buf = Vec::new();
    buf.try_reserve_exact(CHUNK).map_err(|_| ENOMEM)?;
    buf.resize(CHUNK, 0);
    let (_window, kaddr) = KernelWindow::open(&mut buf).ok_or(EBADF)?;
    let mut done: u64 = 0;
    while done < count {
        let want = ((count - done) as usize).min(CHUNK);
        let mut rpos = pin.as_deref().copied().unwrap_or_else(|| inp.pos());
        let n = match inp.f_op.read(inp, kaddr, want, &mut rpos) {
            Ok(0) => break,
            Ok(n) => n as usize,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let mut wpos = pout.as_deref().copied().unwrap_or_else(|| out.pos());
        let w = match out.f_op.write(out, kaddr, n, &mut wpos) {
            Ok(w) => w as usize,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        // The input advances by what was written (a short write leaves the rest).
        let consumed = w as u64;
        match pin.as_deref_mut() {
            Some(p) => *p += consumed,
            None if inp.f_op.seekable() => inp.set_pos(inp.pos() + consumed),
            None => {}
        }
        match pout.as_deref_mut() {
            Some(p) => *p = wpos,
            None if out.f_op.seekable() => out.set_pos(wpos),
            None => {}
        }
        done += consumed;
        if w < n || n < want {
            break;
        }
        if crate::proc::current().is_some_and(crate::proc::signal::has_pending) {
            break;
        }
    }
    Ok(done)
}

/// A `loff_t` argument: EINVAL if negative.
fn get_offset(ptr: u64) -> Result<u64, Errno> {
    let v: i64 = get_user(ptr)?;
    if v < 0 {
        return Err(EINVAL);
    }
    Ok(v as u64)
}

/// `sendfile(out_fd, in_fd, offset, count)`: with `offset`, read there and store the
/// offset after the data back, leaving the input's file offset alone.
pub fn sys_sendfile(out_fd: u64, in_fd: u64, offset: u64, count: u64) -> SysResult {
    // `do_sendfile`'s order of checks: the input, its offset, then the output.
    let inp = fdget(in_fd as u32 as u64)?;
    if !inp.readable() {
        return Err(EBADF);
    }
    if offset != 0 && !inp.f_op.seekable() {
        return Err(ESPIPE);
    }
    let out = fdget(out_fd as u32 as u64)?;
    if !out.writable() {
        return Err(EBADF);
    }
    if out.flags() & flags::O_APPEND != 0 {
        return Err(EINVAL);
    }
    let count = count.min(MAX_RW_COUNT);
    if offset == 0 {
        return copy_between(&inp, None, &out, None, count);
    }
    let mut pos = get_offset(offset)?;
    let r = copy_between(&inp, Some(&mut pos), &out, None, count)?;
    put_user(offset, pos)?;
    Ok(r)
}

/// `copy_file_range(fd_in, off_in, fd_out, off_out, len, flags)`: between regular files
/// of one filesystem (EXDEV across filesystems, as Linux 6.1 answers when the
/// filesystem has no cross-device copy of its own; the C libraries then copy by hand).
pub fn sys_copy_file_range(a: &super::Args) -> SysResult {
    let [fd_in, off_in, fd_out, off_out, len, fl] = a.0;
    if fl as u32 != 0 {
        return Err(EINVAL);
    }
    let inp = fdget(fd_in as u32 as u64)?;
    let out = fdget(fd_out as u32 as u64)?;
    // `generic_file_rw_checks`: the file types first, then the access modes.
    let (si, so) = (inp.f_op.stat()?, out.f_op.stat()?);
    if si.mode & S_IFMT == S_IFDIR || so.mode & S_IFMT == S_IFDIR {
        return Err(EISDIR);
    }
    if si.mode & S_IFMT != S_IFREG || so.mode & S_IFMT != S_IFREG {
        return Err(EINVAL);
    }
    if !inp.readable() || !out.writable() || out.flags() & flags::O_APPEND != 0 {
        return Err(EBADF);
    }
    let mut pin = if off_in != 0 {
        get_offset(off_in)?
    } else {
        inp.pos()
    };
    let mut pout = if off_out != 0 {
        get_offset(off_out)?
    } else {
        out.pos()
    };
    let len = len.min(MAX_RW_COUNT);
    // `generic_copy_file_checks`: no overlapping ranges of one file; nothing past the
    // largest offset.
    if pin.checked_add(len).is_none() || pout.checked_add(len).is_none() {
        return Err(EINVAL);
    }
    if si.dev == so.dev && si.ino == so.ino && pin < pout + len && pout < pin + len {
        return Err(EINVAL);
    }
    if si.dev != so.dev {
        return Err(EXDEV);
    }
    if len == 0 || pin >= si.size {
        return Ok(0);
    }
    let len = len.min(si.size - pin);
    let r = copy_between(&inp, Some(&mut pin), &out, Some(&mut pout), len)?;
    if off_in != 0 {
        put_user(off_in, pin)?;
    } else {
        inp.set_pos(pin);
    }
    if off_out != 0 {
        put_user(off_out, pout)?;
    } else {
        out.set_pos(pout);
    }
    Ok(r)
}
