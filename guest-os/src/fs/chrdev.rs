//! Character devices (`drivers/char/mem.c`, `drivers/tty/tty_io.c`): the memory devices of
//! major 1 (`/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`, `/dev/urandom`) and the
//! terminal aliases `/dev/tty` (5,0) and `/dev/console` (5,1), which reach the console a
//! process writes to (COM1). devtmpfs makes their nodes at boot; `mknod` may make more, and
//! opening any node with these numbers gives the device.

use super::console::{Console, ConsolePort};
use super::file::{try_ops, File, FileOps};
use super::stat::{Kstat, S_IFCHR};
use crate::mm::uaccess::{access_ok, copy_to_user};
use crate::syscall::errno::{Errno, SysResult, EFAULT, ENOSPC, ENXIO};

/// Major numbers.
pub const MEM_MAJOR: u32 = 1;
pub const TTYAUX_MAJOR: u32 = 5;

/// The devices devtmpfs creates: name, major, minor, permissions.
pub const DEV_NODES: &[(&str, u32, u32, u32)] = &[
    ("null", MEM_MAJOR, 3, 0o666),
    ("zero", MEM_MAJOR, 5, 0o666),
    ("full", MEM_MAJOR, 7, 0o666),
    ("random", MEM_MAJOR, 8, 0o666),
    ("urandom", MEM_MAJOR, 9, 0o666),
    ("tty", TTYAUX_MAJOR, 0, 0o666),
    ("console", TTYAUX_MAJOR, 1, 0o600),
];

/// The memory devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemDev {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
}

impl MemDev {
    fn minor(self) -> u32 {
        match self {
            MemDev::Null => 3,
            MemDev::Zero => 5,
            MemDev::Full => 7,
            MemDev::Random => 8,
            MemDev::Urandom => 9,
        }
    }
}

/// Bytes produced per step of a read.
const CHUNK: usize = 256;

impl FileOps for MemDev {
    fn read(&self, _: &File, buf: u64, len: usize, _: &mut u64) -> SysResult {
        if *self == MemDev::Null {
            return Ok(0);
        }
        if !access_ok(buf, len) {
            return Err(EFAULT);
        }
        // `read_zero`/`urandom_read`: as much as fits, in steps; a fault after some bytes
        // returns those.
        let mut chunk = [0u8; CHUNK];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(CHUNK);
            match self {
                MemDev::Random | MemDev::Urandom => {
                    crate::syscall::info::random_bytes(&mut chunk[..n])
                }
                _ => chunk[..n].fill(0),
            }
            if copy_to_user(buf + done as u64, &chunk[..n]).is_err() {
                return if done > 0 {
                    Ok(done as u64)
                } else {
                    Err(EFAULT)
                };
            }
            done += n;
            if done < len {
                crate::proc::sched::cond_resched();
            }
        }
        Ok(done as u64)
    }

    fn write(&self, _: &File, _buf: u64, len: usize, _: &mut u64) -> SysResult {
        match self {
            // `write_full`: the device is always full.
            MemDev::Full => Err(ENOSPC),
            // Data written to null, zero and the random devices is dropped (Linux mixes it
            // into the pool for the latter; the stream here stays deterministic).
            _ => Ok(len as u64),
        }
    }

    /// `null_lseek`/`memory_lseek`: the position stays 0.
    fn seekable(&self) -> bool {
        true
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        let mut k = Kstat::new(super::stat::ROOTFS_DEV, 0, S_IFCHR | 0o666, 1, 0);
        k.rdev_major = MEM_MAJOR;
        k.rdev_minor = self.minor();
        k.blocks = 0;
        Ok(k)
    }

    fn name(&self) -> &'static str {
        "mem"
    }
}

/// What a character device node with numbers (`major`, `minor`) opens (`chrdev_open`):
/// ENXIO for numbers no driver has.
pub fn open(major: u32, minor: u32) -> Result<alloc::boxed::Box<dyn FileOps>, Errno> {
    let mem = match (major, minor) {
        (MEM_MAJOR, 3) => MemDev::Null,
        (MEM_MAJOR, 5) => MemDev::Zero,
        (MEM_MAJOR, 7) => MemDev::Full,
        (MEM_MAJOR, 8) => MemDev::Random,
        (MEM_MAJOR, 9) => MemDev::Urandom,
        (TTYAUX_MAJOR, 0 | 1) => {
            return try_ops(Console {
                port: ConsolePort::Com1,
            })
        }
        _ => return Err(ENXIO),
    };
    try_ops(mem)
}
