//! Trace annotations: what the kernel decided, told to vmscope through the trace registers
//! of its paravirtual port (the protocol and record layout are the `trace-abi` crate, which
//! vmscope decodes with). vmscope interleaves them with the hardware events of the
//! fault trace and follows the running task with them.
//!
//! A record is built on the caller's stack and its virtual address written to the port,
//! high half first, with interrupts off so that a nested record cannot take the latch in
//! between. On other machines (QEMU) nothing listens: [`init`] finds no vmscope and every
//! call returns at once.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::x86_64::port::outl;
use crate::drivers::pvport;
use crate::proc::Task;
use crate::sync::IrqLock;

use trace_abi::{kind, Record, MAX_RECORD};
pub use trace_abi::{outcome, sigaction};

/// Port registers.
const TRACE_PTR_LO: u16 = pvport::BASE + trace_abi::TRACE_PTR_LO;
const TRACE_PTR_HI: u16 = pvport::BASE + trace_abi::TRACE_PTR_HI;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Held (interrupts off) across the two port writes that share the high-half latch.
static LATCH: IrqLock<()> = IrqLock::new("trace latch", ());

/// Look for vmscope once at boot.
pub fn init() {
    ENABLED.store(pvport::present(), Ordering::Relaxed);
}

#[repr(C, align(8))]
struct Buf([u8; MAX_RECORD]);

/// Send one record: `who` names the task the event concerns (PID and comm).
fn emit(kind: u16, who: Option<&Task>, args: [u64; 4], text: &[u8]) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let mut r = Buf([0; MAX_RECORD]);
    Record {
        kind,
        pid: who.map_or(0, |t| t.pid),
        comm: who.map_or([0; 16], |t| *t.comm.lock()),
        args,
        text,
    }
    .encode(&mut r.0);
    let va = r.0.as_ptr() as u64;
    let _latch = LATCH.lock();
    // SAFETY: the trace registers of vmscope's port (present, checked in `init`); the
    // record stays alive until the second write returns, when vmscope has read it.
    unsafe {
        outl(TRACE_PTR_HI, (va >> 32) as u32);
        outl(TRACE_PTR_LO, va as u32);
    }
    core::hint::black_box(&r);
}

/// A page fault on a user address was resolved (or not): `outcome` is one of [`outcome`].
pub fn fault(addr: u64, error_code: u64, rip: u64, outcome: u64) {
    emit(
        kind::FAULT,
        crate::proc::current(),
        [addr, error_code, rip, outcome],
        &[],
    );
}

/// The OOM killer chose `victim_pid` (a RECLAIM record with code OOM_KILL).
/// A writeback starts with `dirty` pages dirty (phase START) or ends having written
/// `pages` (END).
pub fn writeback(phase: u64, pages: u64) {
    emit(
        kind::WRITEBACK,
        crate::proc::current(),
        [phase, pages, 0, 0],
        &[],
    );
}

/// A reclaim event ([`trace_abi::reclaim`]): `code`, then its three words.
pub fn reclaim(code: u64, a1: u64, a2: u64, a3: u64) {
    emit(
        kind::RECLAIM,
        crate::proc::current(),
        [code, a1, a2, a3],
        &[],
    );
}

pub fn oom_kill(victim_pid: u32) {
    emit(
        kind::RECLAIM,
        crate::proc::current(),
        [trace_abi::reclaim::OOM_KILL, 0, 0, victim_pid as u64],
        &[],
    );
}

/// `parent` made `child_pid`.
pub fn fork(parent: &Task, child_pid: u32) {
    emit(kind::FORK, Some(parent), [child_pid as u64, 0, 0, 0], &[]);
}

/// `t` now runs `path`, entered at `entry`, loaded `bias` above its link addresses.
pub fn exec(t: &Task, path: &[u8], entry: u64, bias: u64) {
    emit(kind::EXEC, Some(t), [entry, bias, 0, 0], path);
}

/// `t` exited with wait status `status`.
pub fn exit(t: &Task, status: u32) {
    emit(kind::EXIT, Some(t), [status as u64, 0, 0, 0], &[]);
}

/// Signal `sig` (si_code `code`, si_addr `addr`) was acted on for `t` as `action`.
pub fn signal(t: &Task, sig: u8, code: i32, addr: u64, action: u64) {
    emit(
        kind::SIGNAL,
        Some(t),
        [sig as u64, code as i64 as u64, addr, action],
        &[],
    );
}

/// The CPU leaves `prev` for `next` (PID 0: idle).
pub fn switch(prev_pid: u32, next: Option<&Task>) {
    let next_pid = next.map_or(0, |t| t.pid);
    emit(
        kind::SWITCH,
        next,
        [prev_pid as u64, next_pid as u64, 0, 0],
        &[],
    );
}

/// Whether the host wants the per-system-call records ([`syscall`], [`sysret`]): only
/// while it has a trace consumer (one port read; false where nobody listens).
#[inline]
pub fn syscalls_traced() -> bool {
    ENABLED.load(Ordering::Relaxed)
        // SAFETY: a read of vmscope's port (present, checked in `init`); no side effect.
        && unsafe { crate::arch::x86_64::port::inl(pvport::BASE + trace_abi::TRACE_WANTED) } & 1 != 0
}

/// System call `nr` entered.
pub fn syscall(nr: u64) {
    emit(kind::SYSCALL, crate::proc::current(), [nr, 0, 0, 0], &[]);
}

/// System call `nr` returns `ret`.
pub fn sysret(nr: u64, ret: u64) {
    emit(kind::SYSRET, crate::proc::current(), [nr, ret, 0, 0], &[]);
}
