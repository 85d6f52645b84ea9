//! Trace annotations: what the kernel decided, told to vmscope through the trace registers
//! of its paravirtual port (`emulator/src/ostrace.rs` documents the protocol and record
//! layout; the two must agree). vmscope interleaves them with the hardware events of the
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

/// Port registers (offsets from [`pvport::BASE`]).
const TRACE_PTR_LO: u16 = pvport::BASE + 0x10;
const TRACE_PTR_HI: u16 = pvport::BASE + 0x14;

/// Record kinds (emulator `ostrace::kind`).
mod kind {
    pub const FAULT: u16 = 1;
    pub const FORK: u16 = 2;
    pub const EXEC: u16 = 3;
    pub const EXIT: u16 = 4;
    pub const SIGNAL: u16 = 5;
    pub const SWITCH: u16 = 6;
    pub const SYSCALL: u16 = 7;
    pub const SYSRET: u16 = 8;
}

/// Page-fault outcomes (emulator `ostrace::outcome`).
pub mod outcome {
    pub const DEMAND_ZERO: u64 = 1;
    pub const ZERO_PAGE: u64 = 2;
    pub const FILE_PAGE: u64 = 3;
    pub const COW_COPY: u64 = 4;
    pub const COW_REUSE: u64 = 5;
    pub const SPURIOUS: u64 = 7;
    pub const SEGV_MAPERR: u64 = 8;
    pub const SEGV_ACCERR: u64 = 9;
    pub const FIXUP_EFAULT: u64 = 11;
    /// Flag: the stack VMA grew first.
    pub const STACK_GREW: u64 = 1 << 8;
}

/// What happened with a signal (emulator `ostrace::sigaction`).
pub mod sigaction {
    pub const HANDLER: u64 = 0;
    pub const KILL: u64 = 1;
    pub const STOP: u64 = 2;
    pub const CONTINUE: u64 = 3;
}

/// Fixed part of a record; the string follows.
const HEADER: usize = 56;
/// Longest string carried (the rest is cut).
const MAX_TEXT: usize = 200;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Held (interrupts off) across the two port writes that share the high-half latch.
static LATCH: IrqLock<()> = IrqLock::new("trace latch", ());

/// Look for vmscope once at boot.
pub fn init() {
    ENABLED.store(pvport::present(), Ordering::Relaxed);
}

#[repr(C, align(8))]
struct Record([u8; HEADER + MAX_TEXT]);

/// Send one record: `who` names the task the event concerns (PID and comm).
fn emit(kind: u16, who: Option<&Task>, args: [u64; 4], text: &[u8]) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let text = &text[..text.len().min(MAX_TEXT)];
    let size = HEADER + text.len();
    let mut r = Record([0; HEADER + MAX_TEXT]);
    let b = &mut r.0;
    b[0..2].copy_from_slice(&kind.to_le_bytes());
    b[2..4].copy_from_slice(&(size as u16).to_le_bytes());
    if let Some(t) = who {
        b[4..8].copy_from_slice(&t.pid.to_le_bytes());
        b[8..24].copy_from_slice(&*t.comm.lock());
    }
    for (i, a) in args.iter().enumerate() {
        b[24 + 8 * i..32 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    b[HEADER..size].copy_from_slice(text);
    let va = b.as_ptr() as u64;
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

/// System call `nr` entered.
pub fn syscall(nr: u64) {
    emit(kind::SYSCALL, crate::proc::current(), [nr, 0, 0, 0], &[]);
}

/// System call `nr` returns `ret`.
pub fn sysret(nr: u64, ret: u64) {
    emit(kind::SYSRET, crate::proc::current(), [nr, ret, 0, 0], &[]);
}
