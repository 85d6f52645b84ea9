//! eventfd (`fs/eventfd.c`): a 64-bit counter as a file. A write adds to it, a read takes
//! it all (or one, with EFD_SEMAPHORE) and blocks while it is 0; a write that would pass
//! 0xffff_ffff_ffff_fffe blocks. With O_NONBLOCK both fail with EAGAIN instead; a sleep
//! ends with `-ERESTARTSYS` on a signal. Readable (POLLIN) while non-zero, writable
//! (POLLOUT) while another 1 fits.

use super::file::{poll, File, FileOps};
use super::stat::Kstat;
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::proc::wait_queue::WaitQueue;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, SysResult, EAGAIN, EINVAL, ERESTARTSYS};

/// The largest value the counter holds (`ULLONG_MAX - 1`).
const EVENTFD_MAX: u64 = u64::MAX - 1;
/// `EFD_SEMAPHORE`: a read takes 1.
pub const EFD_SEMAPHORE: u32 = 1;

/// An eventfd's counter and the tasks waiting on it.
pub struct EventFd {
    count: IrqLock<u64>,
    semaphore: bool,
    waiters: WaitQueue,
}

impl EventFd {
    pub fn new(initval: u32, semaphore: bool) -> EventFd {
        EventFd {
            count: IrqLock::new("eventfd", initval as u64),
            semaphore,
            waiters: WaitQueue::new("eventfd_wait"),
        }
    }

    /// Sleep until the counter changes; ERESTARTSYS on a signal.
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
}

impl FileOps for EventFd {
    fn read(&self, file: &File, buf: u64, len: usize, _: &mut u64) -> SysResult {
        if len < 8 {
            return Err(EINVAL);
        }
        let v = loop {
            {
                let mut c = self.count.lock();
                if *c > 0 {
                    let v = if self.semaphore { 1 } else { *c };
                    *c -= v;
                    break v;
                }
            }
            if file.nonblock() {
                return Err(EAGAIN);
            }
            self.wait()?;
        };
        if let Err(e) = copy_to_user(buf, &v.to_le_bytes()) {
            // Put the value back: nothing was consumed.
            *self.count.lock() += v;
            return Err(e);
        }
        self.waiters.wake_all();
        Ok(8)
    }

    fn write(&self, file: &File, buf: u64, len: usize, _: &mut u64) -> SysResult {
        if len < 8 {
            return Err(EINVAL);
        }
        let mut b = [0u8; 8];
        copy_from_user(&mut b, buf)?;
        let v = u64::from_le_bytes(b);
        if v == u64::MAX {
            return Err(EINVAL);
        }
        loop {
            {
                let mut c = self.count.lock();
                if EVENTFD_MAX - *c >= v {
                    *c += v;
                    break;
                }
            }
            if file.nonblock() {
                return Err(EAGAIN);
            }
            self.wait()?;
        }
        self.waiters.wake_all();
        Ok(8)
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        // An anonymous inode: no file type bits, rw-------.
        Ok(Kstat::new(super::stat::ANON_INODE_DEV, 1, 0o600, 1, 0))
    }

    fn poll(&self, _: &File) -> u16 {
        let c = *self.count.lock();
        let mut m = 0;
        if c > 0 {
            m |= poll::POLLIN | poll::POLLRDNORM;
        }
        if c < EVENTFD_MAX {
            m |= poll::POLLOUT | poll::POLLWRNORM;
        }
        m
    }

    fn poll_wait(&self) {
        self.waiters.add_current();
    }

    fn poll_unwait(&self) {
        self.waiters.remove_current();
    }

    fn name(&self) -> &'static str {
        "eventfd"
    }
}
