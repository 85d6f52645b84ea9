//! The scheduler: the task list, a FIFO run queue, kernel stacks and the context switch.
//!
//! A task gives up the CPU when it sleeps (wait4, pause) or exits, and is preempted when its
//! timeslice ends: the local APIC timer ticks every [`TIMESLICE_NS`] and a tick that
//! interrupts user mode switches to the next runnable task (round robin). The kernel itself
//! is not preempted (it runs with interrupts off). `schedule` picks the next runnable
//! task, loads its address space (CR3), its kernel stack into TSS.RSP0 and the SYSCALL
//! entry, its FS base, and switches kernel stacks with [`__switch_to`], which saves and
//! restores only the callee-saved registers, as Linux's `__switch_to_asm` does: everything
//! else is already on the stacks.
//!
//! Each task has a THREAD_SIZE = 32 KiB kernel stack from vmalloc. vmalloc areas are laid
//! out with an unmapped guard page after each, so the page below every stack is unmapped
//! too (Linux's VMAP_STACK): an overflow faults instead of corrupting a neighbour.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::{current, set_current, state, Task};
use crate::arch::x86_64::idt::TrapFrame;
use crate::arch::x86_64::syscall::{self, wrmsr, MSR_FS_BASE};
use crate::mm::addr::VirtAddr;
use crate::mm::vmalloc;
use crate::sync::IrqLock;

/// The timeslice: 4 ms, Linux's default base slice at HZ=250. On vmscope the APIC timer
/// runs on the instruction count, so preemption points are the same on every run.
pub const TIMESLICE_NS: u32 = 4_000_000;
/// Vector of the local APIC timer (Linux's LOCAL_TIMER_VECTOR).
pub const LOCAL_TIMER_VECTOR: u8 = 0xec;
/// The APIC timer's input divider and the resulting count per timeslice (1 GHz bus clock,
/// as QEMU's and vmscope's APIC model).
const TIMER_DIVIDE: crate::drivers::lapic::Divide = crate::drivers::lapic::Divide::By16;
const TIMER_COUNT: u32 = TIMESLICE_NS / 16;

/// Timer ticks so far.
pub static TICKS: AtomicU64 = AtomicU64::new(0);

/// Start the scheduler tick (when the first process starts).
pub fn start_tick() {
    use crate::drivers::lapic;
    if !lapic::init() {
        log::warn!("no local APIC: scheduling stays cooperative");
        return;
    }
    crate::arch::x86_64::irq::register(LOCAL_TIMER_VECTOR, timer_tick);
    lapic::timer_start(
        LOCAL_TIMER_VECTOR,
        lapic::APIC_TIMER_PERIODIC,
        TIMER_DIVIDE,
        TIMER_COUNT,
    );
}

/// The tick: end of a timeslice. Preempts user mode at once (no kernel lock can be held
/// there); in the kernel, which takes interrupts only at preemption points
/// ([`cond_resched`]), it asks for a switch there.
fn timer_tick(frame: &mut TrapFrame) {
    crate::drivers::lapic::eoi();
    TICKS.fetch_add(1, Ordering::Relaxed);
    super::cputime::tick(frame.cs & 3 == 3);
    super::vdso::tick();
    super::timer::expire();
    if frame.cs & 3 == 3 {
        schedule();
    } else {
        NEED_RESCHED.store(true, Ordering::Relaxed);
    }
}

/// The tick came while the kernel ran: switch at the next preemption point (Linux's
/// `TIF_NEED_RESCHED`).
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);

/// A preemption point for long kernel loops (Linux's `cond_resched`). The kernel runs with
/// interrupts off; here it lets a pending interrupt in (`sti; nop; cli`: the one-instruction
/// STI shadow, then the window), and if the timeslice ended meanwhile, runs the next task
/// before going on. Does nothing while an [`IrqLock`](crate::sync::IrqLock) is held, so
/// callers need not know whether theirs are; they must hold nothing else another task could
/// change.
pub fn cond_resched() {
    // Only a running task gives the CPU up here: one on its way to sleep or exit must get
    // there first (schedule() would not bring it back).
    let running = current().is_some_and(|t| t.state.load(Ordering::Acquire) == state::RUNNABLE);
    if crate::sync::locks_held() || !running {
        return;
    }
    // SAFETY: no lock is held, so an interrupt handler cannot re-enter one; interrupts are
    // off again after the window.
    unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
    if NEED_RESCHED.swap(false, Ordering::Relaxed) {
        schedule();
    }
}

/// Kernel stack size: 32 KiB (Linux's x86-64 `THREAD_SIZE` is 16 KiB with KASAN off).
/// Twice Linux's because this kernel's Rust frames are larger than Linux's C ones, and a
/// page fault that reclaims directly (rmap walks, a batched swap write through the block
/// layer, slab allocations) overflowed 16 KiB.
pub const THREAD_SIZE: u64 = 32 << 10;

/// A task's kernel stack.
pub struct KernelStack {
    base: VirtAddr,
    /// RSP saved by `__switch_to` while the task is switched out.
    saved_rsp: AtomicU64,
}

impl KernelStack {
    pub fn new() -> Option<KernelStack> {
        let base = vmalloc::vmalloc(THREAD_SIZE, "kernel_stack")?;
        Some(KernelStack {
            base,
            saved_rsp: AtomicU64::new(0),
        })
    }

    /// One past the highest byte.
    pub fn top(&self) -> u64 {
        self.base.as_u64() + THREAD_SIZE
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let _ = vmalloc::vfree(self.base);
    }
}

static TASKS: IrqLock<Vec<&'static Task>> = IrqLock::new("tasks", Vec::new());
static RUNQ: IrqLock<VecDeque<&'static Task>> = IrqLock::new("runqueue", VecDeque::new());
static NEXT_PID: AtomicU32 = AtomicU32::new(1);

/// The next process id (pids are not reused, as Linux does until they wrap).
pub fn alloc_pid() -> u32 {
    NEXT_PID.fetch_add(1, Ordering::Relaxed)
}

/// The last PID given out (/proc/loadavg).
pub fn last_pid() -> u32 {
    NEXT_PID.load(Ordering::Relaxed).saturating_sub(1)
}

/// Add a new task to the task list.
pub fn register(t: &'static Task) {
    TASKS.lock().push(t);
}

/// Forget a reaped task.
pub fn unregister(t: &'static Task) {
    TASKS.lock().retain(|x| !core::ptr::eq(*x, t));
}

/// The task with `pid`.
pub fn find(pid: u32) -> Option<&'static Task> {
    TASKS.lock().iter().copied().find(|t| t.pid == pid)
}

/// Call `f` on every task without allocating (the OOM killer), under the task-list lock:
/// `f` must not take it.
pub fn for_each(mut f: impl FnMut(&'static Task)) {
    for &t in TASKS.lock().iter() {
        f(t);
    }
}

/// Every task (for /proc and kill(-1)).
pub fn all() -> Vec<&'static Task> {
    TASKS.lock().clone()
}

/// Make `t` runnable if it sleeps, and queue it.
pub fn wake(t: &'static Task) {
    if t.state
        .compare_exchange(
            state::SLEEPING,
            state::RUNNABLE,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        RUNQ.lock().push_back(t);
    }
}

/// Wake `t` from an uninterruptible ([`state::DISK_SLEEP`]) sleep.
pub fn wake_uninterruptible(t: &'static Task) {
    if t.state
        .compare_exchange(
            state::DISK_SLEEP,
            state::RUNNABLE,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        RUNQ.lock().push_back(t);
    }
}

/// Queue a new runnable task.
pub fn enqueue(t: &'static Task) {
    RUNQ.lock().push_back(t);
}

/// Give the children of `t` to init (pid 1), as Linux reparents orphans.
pub fn reparent_children(t: &'static Task) {
    let kids: Vec<&'static Task> = core::mem::take(&mut *t.children.lock());
    if let Some(init) = find(1) {
        for k in kids {
            k.ppid.store(1, Ordering::Relaxed);
            // `reparent_leader`: init is told with SIGCHLD whatever the child asked for.
            k.exit_signal
                .store(super::signal::SIGCHLD, Ordering::Relaxed);
            init.children.lock().push(k);
        }
    }
}

/// Put the current task to sleep until [`wake`] (the caller set up what will wake it).
pub fn sleep() {
    if let Some(t) = current() {
        t.state.store(state::SLEEPING, Ordering::Release);
        schedule();
    }
}

/// Run another task if one is runnable. The current task keeps running if it is the only
/// runnable one; if no task can run at all, the CPU idles (see [`idle`]).
pub fn schedule() {
    NEED_RESCHED.store(false, Ordering::Relaxed);
    let Some(prev) = current() else { return };
    let prev_runnable = prev.state.load(Ordering::Acquire) == state::RUNNABLE;
    let next = loop {
        let n = RUNQ.lock().pop_front();
        match n {
            Some(t)
                if t.state.load(Ordering::Acquire) == state::RUNNABLE
                    && !core::ptr::eq(t, prev) =>
            {
                break t
            }
            Some(_) => continue,
            None if prev_runnable => return,
            None => {
                let n = idle(prev);
                if core::ptr::eq(n, prev) {
                    // Woken while idle (a timer, an interrupt): carry on without a switch.
                    return;
                }
                break n;
            }
        }
    };
    if prev_runnable {
        RUNQ.lock().push_back(prev);
    }
    switch_to(prev, next);
    // Back in `prev`: threads that died meanwhile have switched away for good.
    super::reap_dead_threads();
}

/// Nothing can run: every process waits. Like Linux, wait for an interrupt (HLT with
/// interrupts on): the tick wakes sleepers whose deadline passed. Without a timer pending
/// nothing can wake a process (no input device yet), so this is a hang; vmscope reports a
/// CPU halted with nothing pending (exit status 142) instead of spinning.
fn idle(prev: &'static Task) -> &'static Task {
    // A task waiting for its disk is woken by the disk's interrupt, not the timer.
    if !super::timer::pending() && !crate::block::io_waiting() {
        log::warn!("every process sleeps (last: pid {}): idling", prev.pid);
    }
    super::cputime::idle_enter(prev, super::timer::now_ns());
    loop {
        // SAFETY: enabling interrupts and halting until one arrives.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
        if let Some(t) = RUNQ.lock().pop_front() {
            if t.state.load(Ordering::Acquire) == state::RUNNABLE {
                super::cputime::idle_exit(prev, super::timer::now_ns());
                return t;
            }
        }
    }
}

fn switch_to(prev: &'static Task, next: &'static Task) {
    crate::trace::switch(prev.pid, Some(next));
    super::rseq::switched(prev, next);
    super::cputime::switch(prev, next, super::timer::now_ns());
    match next.mm().lock().as_ref() {
        Some(mm) => mm.activate(),
        // A kernel thread runs on the kernel's own tables (Linux borrows the previous
        // mm as `active_mm`; that one may be on its way out here).
        None if next.is_kthread() => {
            // SAFETY: the kernel tables map all of the kernel.
            unsafe { crate::mm::pgtable::activate(&crate::mm::pgtable::kernel()) }
        }
        None => {}
    }
    crate::arch::x86_64::gdt::set_rsp0(next.kstack.top());
    syscall::set_kernel_stack(next.kstack.top());
    // SAFETY: FS base of the next task (user TLS).
    unsafe { wrmsr(MSR_FS_BASE, next.fs_base.load(Ordering::Relaxed)) };
    switch_fpu(prev, next);
    set_current(next);
    // SAFETY: both stacks are live kernel stacks; `next`'s saved RSP was produced by
    // `__switch_to` or by `prepare_child`.
    unsafe {
        __switch_to(
            prev.kstack.saved_rsp.as_ptr(),
            next.kstack.saved_rsp.load(Ordering::Relaxed),
        )
    };
}

/// The task whose user FPU state the registers hold (Linux's `fpu_fpregs_owner_ctx`), by
/// pid; 0 for none. Kernel threads never touch the registers, so after one runs the owner's
/// state is still there and need not be reloaded.
static FPU_OWNER: AtomicU32 = AtomicU32::new(0);

/// Eager FPU switch (`switch_fpu_prepare`/`switch_fpu_finish`): save the outgoing user
/// task's registers, load the incoming one's unless they are already in the CPU.
fn switch_fpu(prev: &'static Task, next: &'static Task) {
    use crate::arch::x86_64::fpu;
    if !prev.is_kthread() && FPU_OWNER.load(Ordering::Relaxed) == prev.pid {
        fpu::save(&mut prev.fpu.lock());
    }
    if !next.is_kthread() && FPU_OWNER.swap(next.pid, Ordering::Relaxed) != next.pid {
        fpu::restore(&next.fpu.lock());
    }
}

/// The current task's registers were loaded by other means (the first process): it owns
/// the FPU now.
pub fn set_fpu_owner(t: &Task) {
    FPU_OWNER.store(t.pid, Ordering::Relaxed);
}

extern "C" {
    /// Save callee-saved registers and RSP in `*prev_rsp`, load `next_rsp`, restore.
    fn __switch_to(prev_rsp: *mut u64, next_rsp: u64);
    /// Where a new child starts: returns to user mode through the frame above it.
    fn ret_from_fork();
    /// Where a new kernel thread starts: calls `kthread_main` with the saved RBX.
    fn kthread_start();
}

global_asm!(
    r#"
    .section .text.switch, "ax", @progbits
    .balign 16
    .global __switch_to
__switch_to:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    .balign 16
    .global ret_from_fork
ret_from_fork:
    jmp trap_return

    .balign 16
    .global kthread_start
kthread_start:
    movq %rbx, %rdi
    call {kthread_main}
    ud2
    .text
"#,
    kthread_main = sym super::kthread::kthread_main,
    options(att_syntax)
);

/// Lay out a new task's kernel stack so that its first switch-in returns to user mode with
/// `frame` (a copy of the parent's system-call frame, RAX = 0 for the child).
pub fn prepare_child(t: &Task, frame: &TrapFrame) {
    let top = t.kstack.top();
    let frame_size = core::mem::size_of::<TrapFrame>() as u64;
    let frame_at = top - frame_size;
    // Six callee-saved registers (zero) and the return address into ret_from_fork.
    let switch_at = frame_at - 7 * 8;
    // SAFETY: the stack is the new task's own, unused, mapped memory.
    unsafe {
        core::ptr::write(frame_at as *mut TrapFrame, *frame);
        let w = switch_at as *mut u64;
        for i in 0..6 {
            w.add(i).write(0);
        }
        w.add(6).write(ret_from_fork as *const () as u64);
    }
    t.kstack.saved_rsp.store(switch_at, Ordering::Relaxed);
}

/// Lay out a new kernel thread's stack so that its first switch-in calls
/// `kthread_main(arg)` (`copy_thread` for a kernel thread: the function comes in RBX).
pub fn prepare_kthread(t: &Task, arg: u64) {
    let top = t.kstack.top();
    let switch_at = top - 8 * 8;
    // SAFETY: the stack is the new task's own, unused, mapped memory.
    unsafe {
        let w = switch_at as *mut u64;
        // __switch_to pops r15, r14, r13, r12, rbx, rbp, then returns.
        for i in 0..6 {
            w.add(i).write(0);
        }
        w.add(4).write(arg);
        w.add(6).write(kthread_start as *const () as u64);
        w.add(7).write(0);
    }
    t.kstack.saved_rsp.store(switch_at, Ordering::Relaxed);
}
