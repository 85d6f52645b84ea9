//! Kernel threads (`kernel/kthread.c`): tasks that run a kernel function on their own
//! kernel stack, with no user memory, scheduled like any task. They show in /proc and
//! `ps` with their name in brackets, ignore signals, and are never reaped.

use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use super::{sched, Task};

/// The functions kernel threads run, by index (the stack layout passes one word).
static FUNCTIONS: crate::sync::IrqLock<alloc::vec::Vec<fn()>> =
    crate::sync::IrqLock::new("kthread_fns", alloc::vec::Vec::new());

/// Start a kernel thread running `f` under `name` (`kthread_run`); None without memory.
pub fn kthread_run(name: &str, f: fn()) -> Option<&'static Task> {
    let index = {
        let mut fns = FUNCTIONS.lock();
        fns.try_reserve(1).ok()?;
        fns.push(f);
        fns.len() - 1
    };
    let pid = sched::alloc_pid();
    // Linux's kernel threads are children of kthreadd (pid 2); here they have no parent.
    let t = Task::new(pid, 0)?;
    t.kthread.store(true, Ordering::Relaxed);
    let mut comm = [0u8; 16];
    let n = name.len().min(15);
    comm[..n].copy_from_slice(&name.as_bytes()[..n]);
    *t.comm.lock() = comm;
    let t: &'static Task = Box::leak(t);
    sched::prepare_kthread(t, index as u64);
    sched::register(t);
    sched::enqueue(t);
    Some(t)
}

/// Where a kernel thread starts (from `kthread_start`): run its function; one that
/// returns sleeps for good.
pub extern "C" fn kthread_main(index: u64) -> ! {
    let f = FUNCTIONS.lock().get(index as usize).copied();
    if let Some(f) = f {
        f();
    }
    loop {
        sched::sleep();
    }
}
