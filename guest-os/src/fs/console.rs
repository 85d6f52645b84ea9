//! The console as a file: descriptors 0, 1 and 2 of the first process. Writes go to COM1
//! (stdout) or COM2 (stderr under `vmscope run`); there is no input device, so a read is end
//! of file at once, and the console is always ready for `poll` both ways.

use super::file::{File, FileOps};
use super::stat::{Kstat, S_IFCHR, TTY_MAJOR};
use crate::drivers::uart16550::{COM1, COM2};
use crate::mm::uaccess::{access_ok, copy_from_user};
use crate::syscall::errno::{SysResult, EFAULT};

/// Bytes copied from the user through the kernel's stack buffer at a time.
const CHUNK: usize = 4096;

/// Which serial port a console file writes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConsolePort {
    Com1,
    Com2,
}

/// A console descriptor's operations.
pub struct Console {
    pub port: ConsolePort,
}

impl FileOps for Console {
    fn read(&self, _: &File, buf: u64, len: usize, _: &mut u64) -> SysResult {
        // End of file, after the buffer check a tty read would make.
        if access_ok(buf, len) {
            Ok(0)
        } else {
            Err(EFAULT)
        }
    }

    fn write(&self, _: &File, buf: u64, len: usize, _: &mut u64) -> SysResult {
        let mut chunk = [0u8; CHUNK];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(CHUNK);
            if copy_from_user(&mut chunk[..n], buf + done as u64).is_err() {
                // Linux returns what was written before the fault, or -EFAULT for none.
                return if done > 0 {
                    Ok(done as u64)
                } else {
                    Err(EFAULT)
                };
            }
            match self.port {
                ConsolePort::Com1 => COM1.write_bytes(&chunk[..n]),
                ConsolePort::Com2 => COM2.write_bytes(&chunk[..n]),
            }
            done += n;
        }
        Ok(done as u64)
    }

    fn stat(&self) -> Result<Kstat, crate::syscall::errno::Errno> {
        // A character device, like a serial tty (crw--w----).
        let minor = 64 + self.port as u32;
        let mut k = Kstat::new(super::stat::ROOTFS_DEV, 3, S_IFCHR | 0o620, 1, 0);
        k.rdev_major = TTY_MAJOR;
        k.rdev_minor = minor;
        k.blocks = 0;
        Ok(k)
    }

    fn name(&self) -> &'static str {
        "console"
    }
}
