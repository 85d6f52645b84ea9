//! `futex` (`kernel/futex/`): FUTEX_WAIT and FUTEX_WAKE (and their BITSET forms, private
//! or shared), FUTEX_REQUEUE, FUTEX_CMP_REQUEUE and FUTEX_WAKE_OP: a thread waits for another thread of its group, for a process that shares
//! the memory, for a signal, or for its timeout.
//!
//! Waiters are keyed by address: a private futex by (thread group, address), a shared one by
//! the address alone, which is right for memory shared over fork (the same address in
//! parent and child) and the only sharing there is until file-backed shared mappings of
//! [08] (Linux keys those by inode and offset). WAIT compares the word with the expected
//! value under the queue lock, so a WAKE between the check and the sleep is not lost.

use alloc::vec::Vec;

use super::errno::{Errno, SysResult, EAGAIN, EINVAL, ENOMEM, ENOSYS, ERESTARTSYS, ETIMEDOUT};
use super::time::get_timespec;
use super::Args;
use crate::mm::uaccess::get_user;
use crate::proc::timer::{self, Wake};
use crate::proc::{self, Task};
use crate::sync::IrqLock;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;
const FUTEX_CMD_MASK: u64 = !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
/// `FUTEX_BITSET_MATCH_ANY`: the bitset of plain WAIT and WAKE.
const MATCH_ANY: u32 = u32::MAX;

/// A waiter: key, bitset, task, and whether a WAKE took it.
struct Waiter {
    key: (u32, u64),
    bitset: u32,
    task: &'static Task,
    woken: bool,
}

static QUEUE: IrqLock<Vec<Waiter>> = IrqLock::new("futex_queue", Vec::new());

/// `futex(uaddr, op, val, timeout/val2, uaddr2, val3)`.
pub fn sys_futex(a: &Args) -> SysResult {
    let [uaddr, op, val, utime, uaddr2, val3] = a.0;
    let cmd = op & FUTEX_CMD_MASK;
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT_BITSET {
        return Err(ENOSYS);
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT {
                MATCH_ANY
            } else {
                val3 as u32
            };
            if bitset == 0 {
                return Err(EINVAL);
            }
            // WAIT's timeout is relative, WAIT_BITSET's absolute.
            let deadline = if utime != 0 {
                let ns = get_timespec(utime)?;
                Some(if cmd == FUTEX_WAIT {
                    timer::now_ns().saturating_add(ns)
                } else if op & FUTEX_CLOCK_REALTIME != 0 {
                    // glibc's pthread_cond_timedwait and sem_timedwait pass REALTIME
                    // deadlines; the sleep list runs on the monotonic clock.
                    timer::realtime_to_monotonic(ns)
                } else {
                    ns
                })
            } else {
                None
            };
            futex_wait(uaddr, private, val as u32, bitset, deadline)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE {
                MATCH_ANY
            } else {
                val3 as u32
            };
            if bitset == 0 {
                return Err(EINVAL);
            }
            futex_wake(uaddr, private, val as u32, bitset)
        }
        // The fourth argument is a count here, not a timeout.
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let expect = (cmd == FUTEX_CMP_REQUEUE).then_some(val3 as u32);
            futex_requeue(uaddr, uaddr2, private, val as u32, utime as u32, expect)
        }
        FUTEX_WAKE_OP => futex_wake_op(
            uaddr,
            uaddr2,
            private,
            val as u32,
            utime as u32,
            val3 as u32,
        ),
        _ => Err(ENOSYS),
    }
}

/// FUTEX_REQUEUE / FUTEX_CMP_REQUEUE (`futex_requeue`): wake up to `nr_wake` waiters of
/// `uaddr`, then move up to `nr_requeue` more to `uaddr2` without waking them (condition
/// variables hand their waiters to the mutex this way). CMP_REQUEUE first checks that the
/// word at `uaddr` still holds `expect` (EAGAIN otherwise). Returns the woken count, plus
/// the requeued count for CMP_REQUEUE, as Linux.
fn futex_requeue(
    uaddr: u64,
    uaddr2: u64,
    private: bool,
    nr_wake: u32,
    nr_requeue: u32,
    expect: Option<u32>,
) -> SysResult {
    if (nr_wake as i32) < 0 || (nr_requeue as i32) < 0 {
        return Err(EINVAL);
    }
    let k1 = key(uaddr, private)?;
    let k2 = key(uaddr2, private)?;
    if let Some(v) = expect {
        let cur: u32 = get_user(uaddr)?;
        if cur != v {
            return Err(EAGAIN);
        }
    }
    let mut woken: Vec<&'static Task> = Vec::new();
    let mut moved = 0u32;
    {
        let mut q = QUEUE.lock();
        for w in q.iter_mut().filter(|w| w.key == k1 && !w.woken) {
            if (woken.len() as u32) < nr_wake {
                if woken.try_reserve(1).is_err() {
                    break;
                }
                w.woken = true;
                woken.push(w.task);
            } else if moved < nr_requeue {
                w.key = k2;
                moved += 1;
            } else {
                break;
            }
        }
    }
    let count = woken.len() as u64;
    for t in woken {
        crate::proc::sched::wake(t);
    }
    Ok(if expect.is_some() {
        count + u64::from(moved)
    } else {
        count
    })
}

/// FUTEX_WAKE_OP (`futex_wake_op`): change the word at `uaddr2` by the operation encoded
/// in `encoded` (set, add, or, andn, xor with a 12-bit argument, or 1 << argument), wake up
/// to `nr_wake` waiters of `uaddr`, and, if the old value of the word compares as the
/// encoding says, up to `nr_wake2` waiters of `uaddr2`. Nothing else runs in between (one
/// CPU, no preemption in the kernel), which is the atomicity Linux gets from its locks.
fn futex_wake_op(
    uaddr: u64,
    uaddr2: u64,
    private: bool,
    nr_wake: u32,
    nr_wake2: u32,
    encoded: u32,
) -> SysResult {
    const FUTEX_OP_OPARG_SHIFT: u32 = 8;
    key(uaddr, private)?;
    key(uaddr2, private)?;
    let mut op = (encoded >> 28) & 0xf;
    let cmp = (encoded >> 24) & 0xf;
    let sext12 = |v: u32| ((v << 20) as i32) >> 20;
    let mut oparg = sext12((encoded >> 12) & 0xfff);
    let cmparg = sext12(encoded & 0xfff);
    if op & FUTEX_OP_OPARG_SHIFT != 0 {
        op &= !FUTEX_OP_OPARG_SHIFT;
        if !(0..=31).contains(&oparg) {
            return Err(EINVAL);
        }
        oparg = 1 << oparg;
    }
    let old: u32 = get_user(uaddr2)?;
    let new = match op {
        0 => oparg as u32,
        1 => old.wrapping_add(oparg as u32),
        2 => old | oparg as u32,
        3 => old & !(oparg as u32),
        4 => old ^ oparg as u32,
        _ => return Err(ENOSYS),
    };
    let o = old as i32;
    let hit = match cmp {
        0 => o == cmparg,
        1 => o != cmparg,
        2 => o < cmparg,
        3 => o <= cmparg,
        4 => o > cmparg,
        5 => o >= cmparg,
        _ => return Err(ENOSYS),
    };
    crate::mm::uaccess::put_user(uaddr2, new)?;
    let mut n = futex_wake(uaddr, private, nr_wake, MATCH_ANY)?;
    if hit {
        n += futex_wake(uaddr2, private, nr_wake2, MATCH_ANY)?;
    }
    Ok(n)
}

/// The key of `uaddr` (EINVAL unless 4-byte aligned).
fn key(uaddr: u64, private: bool) -> Result<(u32, u64), Errno> {
    if !uaddr.is_multiple_of(4) {
        return Err(EINVAL);
    }
    // A private futex belongs to the address space (shared by a thread group, and by
    // processes created with CLONE_VM).
    let tgid = if private {
        proc::current().map_or(0, |t| t.mm_id())
    } else {
        0
    };
    Ok((tgid, uaddr))
}

fn futex_wait(
    uaddr: u64,
    private: bool,
    val: u32,
    bitset: u32,
    deadline: Option<u64>,
) -> SysResult {
    let key = key(uaddr, private)?;
    let me = proc::current().ok_or(EAGAIN)?;
    // Read the word first (EFAULT), then queue: nothing runs in between on one CPU
    // without preemption in the kernel, so a wake cannot slip past.
    let cur: u32 = get_user(uaddr)?;
    if cur != val {
        return Err(EAGAIN);
    }
    {
        let mut q = QUEUE.lock();
        q.try_reserve(1).map_err(|_| ENOMEM)?;
        q.push(Waiter {
            key,
            bitset,
            task: me,
            woken: false,
        });
    }
    let result = loop {
        let w = timer::sleep_once(deadline);
        let woken = QUEUE
            .lock()
            .iter()
            .any(|x| core::ptr::eq(x.task, me) && x.woken);
        if woken {
            break Ok(0);
        }
        match w {
            Wake::Timeout => break Err(ETIMEDOUT),
            // Without a timeout the call restarts as it was; with one it goes on to the
            // same deadline (`futex_wait_restart`), and only if no handler ran.
            Wake::Signal => match deadline {
                None => break Err(ERESTARTSYS),
                Some(deadline) => {
                    break Err(timer::set_restart(timer::RestartBlock::Futex {
                        uaddr,
                        private,
                        val,
                        bitset,
                        deadline,
                    }))
                }
            },
            Wake::Woken => {}
        }
    };
    QUEUE.lock().retain(|x| !core::ptr::eq(x.task, me));
    result
}

/// Wake up to `n` waiters on the key whose bitset matches; returns how many.
fn futex_wake(uaddr: u64, private: bool, n: u32, bitset: u32) -> SysResult {
    let key = key(uaddr, private)?;
    let mut woken: Vec<&'static Task> = Vec::new();
    {
        let mut q = QUEUE.lock();
        for w in q.iter_mut() {
            if woken.len() as u32 >= n {
                break;
            }
            if w.key == key && !w.woken && w.bitset & bitset != 0 && woken.try_reserve(1).is_ok() {
                w.woken = true;
                woken.push(w.task);
            }
        }
    }
    let count = woken.len() as u64;
    for t in woken {
        crate::proc::sched::wake(t);
    }
    Ok(count)
}

/// The kernel's own wake of a thread's `clear_child_tid` (`mm_release`): up to `n`
/// waiters on `uaddr` of thread group `tgid`, whether they waited with the private flag or
/// not (Linux wakes the shared key; C libraries wait on either).
pub fn wake(tgid: u32, uaddr: u64, n: u32) -> u32 {
    let mut woken: Vec<&'static Task> = Vec::new();
    {
        let mut q = QUEUE.lock();
        for w in q.iter_mut() {
            if woken.len() as u32 >= n {
                break;
            }
            let hit = w.key == (tgid, uaddr) || w.key == (0, uaddr);
            if hit && !w.woken && woken.try_reserve(1).is_ok() {
                w.woken = true;
                woken.push(w.task);
            }
        }
    }
    let count = woken.len() as u32;
    for t in woken {
        crate::proc::sched::wake(t);
    }
    count
}

/// `restart_syscall` of an interrupted FUTEX_WAIT with a timeout.
pub fn restart_wait(uaddr: u64, private: bool, val: u32, bitset: u32, deadline: u64) -> SysResult {
    futex_wait(uaddr, private, val, bitset, Some(deadline))
}

/// `FUTEX_WAITERS`: someone sleeps on the lock word (robust and PI futexes).
const FUTEX_WAITERS: u32 = 0x8000_0000;
/// `FUTEX_OWNER_DIED`: the owner exited holding the lock (robust futexes).
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// The owner's TID in a robust lock word.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Most entries walked on a robust list (`ROBUST_LIST_LIMIT`): a list corrupted into a
/// cycle, or simply huge, ends the walk instead of hanging the exit.
const ROBUST_LIST_LIMIT: u32 = 2048;

/// `exit_robust_list`: a thread exits (or execs) holding robust mutexes. Its
/// `robust_list_head` (set_robust_list) is `{ next, futex_offset, list_op_pending }`; each
/// entry's lock word sits at `entry + futex_offset`, and bit 0 of an entry pointer marks a
/// PI futex. Every lock word still naming this thread gets FUTEX_OWNER_DIED (keeping
/// FUTEX_WAITERS) and one waiter is woken, so the next locker sees EOWNERDEAD. Faults end
/// the walk silently, as on Linux: the list is user memory and may be garbage.
pub fn exit_robust_list(t: &Task) {
    let head = t.robust_list.swap(0, core::sync::atomic::Ordering::Relaxed);
    if head == 0 {
        return;
    }
    let fetch = |addr: u64| -> Option<(u64, bool)> {
        let v: u64 = get_user(addr).ok()?;
        Some((v & !1, v & 1 != 0))
    };
    let Some((mut entry, mut pi)) = fetch(head) else {
        return;
    };
    let Ok(offset) = get_user::<i64>(head + 8) else {
        return;
    };
    let Some((pending, pending_pi)) = fetch(head + 16) else {
        return;
    };
    let mut limit = ROBUST_LIST_LIMIT;
    while entry != head {
        // Read the next entry first: the owner-died wake may let another thread free
        // this one.
        let next = fetch(entry);
        if entry != pending {
            handle_futex_death(entry.wrapping_add(offset as u64), t, pi, false);
        }
        let Some((n, npi)) = next else {
            return;
        };
        (entry, pi) = (n, npi);
        limit -= 1;
        if limit == 0 {
            break;
        }
    }
    if pending != 0 {
        handle_futex_death(pending.wrapping_add(offset as u64), t, pending_pi, true);
    }
}

/// `handle_futex_death` for one lock word. A pending operation (`list_op_pending`) on a
/// word that is still 0 means the thread died between acquiring and listing it, or while
/// releasing it: a waiter may have missed its wake, so one is woken. PI futexes are not
/// supported here (no FUTEX_LOCK_PI): their words are marked but nobody is woken.
fn handle_futex_death(uaddr: u64, t: &Task, pi: bool, pending_op: bool) {
    if !uaddr.is_multiple_of(4) {
        return;
    }
    let Ok(uval) = get_user::<u32>(uaddr) else {
        return;
    };
    if pending_op && !pi && uval == 0 {
        wake(t.mm_id(), uaddr, 1);
        return;
    }
    if uval & FUTEX_TID_MASK != t.pid {
        return;
    }
    // One CPU and no preemption in the kernel: the read and this write are atomic with
    // respect to user space (Linux uses a cmpxchg loop).
    let mval = (uval & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
    if crate::mm::uaccess::put_user(uaddr, mval).is_err() {
        return;
    }
    if !pi && uval & FUTEX_WAITERS != 0 {
        wake(t.mm_id(), uaddr, 1);
    }
}
