//! Wait queues (Linux's `wait_queue_head_t`): the tasks sleeping until some object (a pipe,
//! an eventfd) changes. A sleeper queues itself (`prepare_to_wait`), sleeps, and takes
//! itself off again (`finish_wait`), since a task woken by a signal or a timer must not stay
//! queued: it may be gone by the time the object wakes its queue.

use alloc::vec::Vec;

use super::Task;
use crate::sync::IrqLock;

pub struct WaitQueue {
    waiters: IrqLock<Vec<&'static Task>>,
}

impl WaitQueue {
    pub const fn new(name: &'static str) -> Self {
        WaitQueue {
            waiters: IrqLock::new(name, Vec::new()),
        }
    }

    /// Queue the current task (once). Without memory for the entry the task is not queued
    /// and its sleep ends at the next wake-up of any kind (a timer tick, a signal).
    pub fn add_current(&self) {
        if let Some(me) = super::current() {
            let mut w = self.waiters.lock();
            if !w.iter().any(|t| core::ptr::eq(*t, me)) && w.try_reserve(1).is_ok() {
                w.push(me);
            }
        }
    }

    /// Take the current task off the queue.
    pub fn remove_current(&self) {
        if let Some(me) = super::current() {
            self.waiters.lock().retain(|t| !core::ptr::eq(*t, me));
        }
    }

    /// Wake every queued task (`wake_up_all`: TASK_NORMAL, interruptible or not).
    pub fn wake_all(&self) {
        let waiters = core::mem::take(&mut *self.waiters.lock());
        for t in waiters {
            super::sched::wake(t);
            super::sched::wake_uninterruptible(t);
        }
    }
}
