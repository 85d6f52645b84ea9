//! Locking for a single-CPU kernel: [`IrqLock`] disables interrupts while held, so an
//! interrupt handler cannot observe a half-updated structure. Taking a lock that is already
//! held can only be re-entry on this CPU (a handler or a nested call), which would deadlock
//! on real SMP hardware: it panics with the lock's name instead.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// IrqLocks held on this CPU (Linux's `preempt_count` for spinlocks): a preemption point
/// (`proc::sched::cond_resched`) does nothing while it is not 0.
static LOCKS_HELD: AtomicU32 = AtomicU32::new(0);

/// Whether any [`IrqLock`] is held (a voluntary switch or an interrupt window now could
/// re-enter it).
pub fn locks_held() -> bool {
    LOCKS_HELD.load(Ordering::Relaxed) != 0
}

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// A lock that masks interrupts while held.
pub struct IrqLock<T> {
    name: &'static str,
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialized by `locked` with interrupts off.
unsafe impl<T: Send> Sync for IrqLock<T> {}

impl<T> IrqLock<T> {
    pub const fn new(name: &'static str, value: T) -> Self {
        IrqLock {
            name,
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(value),
        }
    }

    /// Disable interrupts and take the lock (`spin_lock_irqsave`). A re-entry panics
    /// naming the caller's location.
    #[track_caller]
    pub fn lock(&self) -> IrqGuard<'_, T> {
        let rflags: u64;
        // SAFETY: reading RFLAGS and clearing IF has no memory effects.
        unsafe {
            asm!("pushfq", "pop {}", "cli", out(reg) rflags, options(nomem, preserves_flags))
        };
        if self.locked.swap(true, Ordering::Acquire) {
            panic!(
                "IrqLock {}: taken twice (re-entry on one CPU), at {}",
                self.name,
                core::panic::Location::caller()
            );
        }
        LOCKS_HELD.fetch_add(1, Ordering::Relaxed);
        IrqGuard {
            lock: self,
            irqs_were_on: rflags & RFLAGS_IF != 0,
        }
    }
}

impl<T> IrqLock<T> {
    /// Take the lock if it is free (`spin_trylock_irqsave`): reclaim, which reaches other
    /// tasks' address spaces from any context, skips one held by a task in the middle of
    /// a fault rather than deadlock on it.
    pub fn try_lock(&self) -> Option<IrqGuard<'_, T>> {
        let rflags: u64;
        // SAFETY: reading RFLAGS and clearing IF has no memory effects.
        unsafe {
            asm!("pushfq", "pop {}", "cli", out(reg) rflags, options(nomem, preserves_flags))
        };
        let irqs_were_on = rflags & RFLAGS_IF != 0;
        if self.locked.swap(true, Ordering::Acquire) {
            if irqs_were_on {
                // SAFETY: restores the interrupt flag saved above.
                unsafe { asm!("sti", options(nomem, nostack)) };
            }
            return None;
        }
        LOCKS_HELD.fetch_add(1, Ordering::Relaxed);
        Some(IrqGuard {
            lock: self,
            irqs_were_on,
        })
    }
}

/// Holds an [`IrqLock`]; unlocking restores the interrupt flag.
pub struct IrqGuard<'a, T> {
    lock: &'a IrqLock<T>,
    irqs_were_on: bool,
}

impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard owns the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard owns the lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        LOCKS_HELD.fetch_sub(1, Ordering::Relaxed);
        self.lock.locked.store(false, Ordering::Release);
        if self.irqs_were_on {
            // SAFETY: restores the interrupt flag saved by `lock`.
            unsafe { asm!("sti", options(nomem, nostack)) };
        }
    }
}

/// A sleeping lock (`struct mutex`) for code that may sleep while holding it (filesystem
/// operations that wait for the disk). Interrupt handlers must not take it. One CPU: the
/// holder only loses the CPU when it sleeps, so a plain flag and a wait queue suffice.
pub struct Mutex<T> {
    locked: core::sync::atomic::AtomicBool,
    waiters: crate::proc::wait_queue::WaitQueue,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the flag gives one holder at a time access to the value.
unsafe impl<T: Send> Sync for Mutex<T> {}
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    pub const fn new(name: &'static str, value: T) -> Self {
        Mutex {
            locked: core::sync::atomic::AtomicBool::new(false),
            waiters: crate::proc::wait_queue::WaitQueue::new(name),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    /// Take the lock, sleeping (uninterruptibly) while another task holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        use core::sync::atomic::Ordering;
        while self.locked.swap(true, Ordering::Acquire) {
            let Some(me) = crate::proc::current() else {
                // Before the first task nothing else can hold it.
                break;
            };
            self.waiters.add_current();
            me.state
                .store(crate::proc::state::DISK_SLEEP, Ordering::Release);
            crate::proc::sched::schedule();
            me.state
                .store(crate::proc::state::RUNNABLE, Ordering::Release);
            self.waiters.remove_current();
        }
        // Reclaim by this task must not write file pages back now: the filesystem's own
        // locks may be among those held (`memalloc_nofs_save`).
        if let Some(t) = crate::proc::current() {
            t.nofs.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        MutexGuard { m: self }
    }
}

pub struct MutexGuard<'a, T> {
    m: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard is the lock's only holder.
        unsafe { &*self.m.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(t) = crate::proc::current() {
            let _ = t.nofs.fetch_update(
                core::sync::atomic::Ordering::Relaxed,
                core::sync::atomic::Ordering::Relaxed,
                |n| n.checked_sub(1),
            );
        }
        self.m
            .locked
            .store(false, core::sync::atomic::Ordering::Release);
        self.m.waiters.wake_all();
    }
}
