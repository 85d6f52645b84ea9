//! Interrupt self-test (`selftest=timer`): the local APIC timer in periodic and one-shot
//! mode, a masked LVT entry, task priority (TPR and its CR8 alias), fixed self-IPIs with
//! their priority order and nesting, and a self-NMI that must run on its IST stack and be
//! blocked until IRET. The 8259s are remapped and masked first, as Linux does.
//!
//! The system tests compare this output between vmscope (where time is the instruction
//! count) and QEMU (where it is real time), so each case waits for an event rather than
//! for a time, every wait is bounded, and only `ok`/`FAIL` is printed.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};

use crate::arch::x86_64::gdt::{ist_stack, IST_NMI};
use crate::arch::x86_64::idt::{vector, TrapFrame};
use crate::arch::x86_64::irq;
use crate::drivers::lapic::{
    self, Divide, APIC_TIMER_ONESHOT, APIC_TIMER_PERIODIC, LOCAL_TIMER_VECTOR, LVT_MASKED,
};
use crate::drivers::pic;
use crate::kprintln;

/// Ticks the periodic case waits for.
const PERIODIC_TICKS: u64 = 5;
/// Timer period: 6250 ticks of the bus clock / 16 (100 µs at QEMU's and vmscope's 1 GHz).
const TIMER_COUNT: u32 = 6250;
/// How long "nothing more happens" is watched, in TSC cycles: 20 timer periods on vmscope
/// (TSC = instructions = ns), several on QEMU (TSC at the host's rate).
const QUIET_TSC: u64 = 2_000_000;
/// Bounds on every wait, so a broken interrupt path fails instead of hanging.
const MAX_WAKEUPS: u32 = 1000;
const MAX_SPINS: u32 = 1_000_000;

/// Self-IPI vectors: the priority class is the high nibble.
const IPI_VECTORS: [u8; 7] = [0x31, 0x41, 0x45, 0x51, 0x65, 0x71, 0x81];
/// Its handler raises 0x51 (lower class: must wait) and 0x81 (higher: must nest).
const NESTING_VECTOR: u8 = 0x61;
/// Log entry for a handler's exit (entries are vectors).
const EXIT: u64 = 0x100;

static TICKS: AtomicU64 = AtomicU64::new(0);
/// Handled IPI vectors, in order.
static LOG: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static LOG_LEN: AtomicUsize = AtomicUsize::new(0);
/// IPI handlers that found their own vector in service.
static ISR_SEEN: AtomicU64 = AtomicU64::new(0);
static NMI_COUNT: AtomicU64 = AtomicU64::new(0);
/// Address of the last NMI's trap frame (it must lie on the NMI's IST stack).
static NMI_FRAME: AtomicU64 = AtomicU64::new(0);
/// Make the next NMI send another one to itself, and record the count it sees after.
static NMI_RESEND: AtomicBool = AtomicBool::new(false);
static NMI_SEEN_INSIDE: AtomicU64 = AtomicU64::new(0);

fn log(v: u64) {
    let i = LOG_LEN.fetch_add(1, SeqCst);
    if let Some(slot) = LOG.get(i) {
        slot.store(v, SeqCst);
    }
}

fn log_is(want: &[u64]) -> bool {
    LOG_LEN.load(SeqCst) == want.len()
        && want
            .iter()
            .zip(LOG.iter())
            .all(|(&w, l)| l.load(SeqCst) == w)
}

fn log_clear() {
    LOG_LEN.store(0, SeqCst);
}

fn timer_interrupt(_: &mut TrapFrame) {
    TICKS.fetch_add(1, SeqCst);
    lapic::eoi();
}

fn ipi_interrupt(frame: &mut TrapFrame) {
    let v = frame.vector as u8;
    if lapic::isr(v) {
        ISR_SEEN.fetch_add(1, SeqCst);
    }
    log(v as u64);
    lapic::eoi();
}

fn nesting_interrupt(_: &mut TrapFrame) {
    log(NESTING_VECTOR as u64);
    lapic::send_self(0x51);
    lapic::send_self(0x81);
    open_window(8);
    log(NESTING_VECTOR as u64 | EXIT);
    lapic::eoi();
}

fn nmi(frame: &mut TrapFrame) {
    NMI_COUNT.fetch_add(1, SeqCst);
    NMI_FRAME.store(frame as *const TrapFrame as u64, SeqCst);
    if NMI_RESEND.swap(false, SeqCst) {
        // NMIs are blocked until this handler's IRET: this one must wait.
        lapic::send_nmi(lapic::id());
        for _ in 0..1000 {
            core::hint::spin_loop();
        }
        NMI_SEEN_INSIDE.store(NMI_COUNT.load(SeqCst), SeqCst);
    }
}

fn sti() {
    // SAFETY: enabling interrupts; every vector the test can raise has a handler.
    unsafe { asm!("sti", options(nostack)) };
}

fn cli() {
    // SAFETY: disabling interrupts has no other effect.
    unsafe { asm!("cli", options(nostack)) };
}

/// Let pending interrupts in `n` times: STI holds them off for one more instruction
/// (the NOP), then they arrive before the CLI.
fn open_window(n: u32) {
    for _ in 0..n {
        // SAFETY: as in `sti`; CLI restores the state.
        unsafe { asm!("sti", "nop", "cli", options(nostack)) };
    }
}

/// Halt with interrupts enabled until `done()`; false if it did not happen.
fn halt_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..MAX_WAKEUPS {
        if done() {
            return true;
        }
        // SAFETY: STI's shadow covers HLT, so a pending interrupt wakes it; a timer is armed.
        unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
    }
    done()
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

/// With interrupts enabled, watch for `cycles` TSC cycles.
fn quiet_period(cycles: u64) {
    let start = rdtsc();
    sti();
    while rdtsc().wrapping_sub(start) < cycles {
        core::hint::spin_loop();
    }
    cli();
}

/// Spin with interrupts as they are until `done()`.
fn spin_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..MAX_SPINS {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}

fn read_cr8() -> u64 {
    let v: u64;
    // SAFETY: reading CR8 (the TPR) has no side effects.
    unsafe { asm!("mov {}, cr8", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn write_cr8(v: u64) {
    // SAFETY: CR8 only sets the task priority.
    unsafe { asm!("mov cr8, {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
}

/// Stop the timer and take any interrupt it raised meanwhile.
fn stop_timer() {
    lapic::timer_stop();
    open_window(4);
}

fn periodic() -> bool {
    TICKS.store(0, SeqCst);
    lapic::timer_start(
        LOCAL_TIMER_VECTOR,
        APIC_TIMER_PERIODIC,
        Divide::By16,
        TIMER_COUNT,
    );
    let ok = halt_until(|| TICKS.load(SeqCst) >= PERIODIC_TICKS);
    stop_timer();
    ok && !lapic::isr(LOCAL_TIMER_VECTOR)
}

fn one_shot() -> bool {
    TICKS.store(0, SeqCst);
    lapic::timer_start(
        LOCAL_TIMER_VECTOR,
        APIC_TIMER_ONESHOT,
        Divide::By16,
        TIMER_COUNT,
    );
    let fired = halt_until(|| TICKS.load(SeqCst) >= 1);
    // A one-shot count stays at 0 and raises nothing more.
    let zero = lapic::timer_count() == 0;
    quiet_period(QUIET_TSC);
    let once = TICKS.load(SeqCst) == 1;
    stop_timer();
    fired && zero && once
}

fn masked_lvt() -> bool {
    TICKS.store(0, SeqCst);
    lapic::timer_start(
        LOCAL_TIMER_VECTOR,
        APIC_TIMER_ONESHOT | LVT_MASKED,
        Divide::By1,
        1000,
    );
    // The count still runs down; the expiry raises nothing, not even an IRR bit.
    sti();
    let expired = spin_until(|| lapic::timer_count() == 0);
    open_window(4);
    cli();
    let quiet = TICKS.load(SeqCst) == 0 && !lapic::irr(LOCAL_TIMER_VECTOR);
    stop_timer();
    expired && quiet
}

fn tpr() -> bool {
    log_clear();
    lapic::set_tpr(0x50);
    lapic::send_self(0x45);
    open_window(8);
    // Class 4 is not above the TPR's class 5: held in the IRR.
    let mut ok = log_is(&[]) && lapic::irr(0x45) && lapic::ppr() == 0x50;
    lapic::send_self(0x65);
    open_window(8);
    ok &= log_is(&[0x65]);
    lapic::set_tpr(0);
    open_window(8);
    ok &= log_is(&[0x65, 0x45]) && !lapic::irr(0x45);
    ok
}

fn cr8() -> bool {
    write_cr8(5);
    let mut ok = lapic::tpr() == 0x50;
    lapic::set_tpr(0x30);
    ok &= read_cr8() == 3;
    write_cr8(0);
    ok && lapic::tpr() == 0
}

fn self_ipi() -> bool {
    log_clear();
    ISR_SEEN.store(0, SeqCst);
    lapic::send_self(0x41);
    // Interrupts are off: the IPI waits in the IRR.
    let held = lapic::irr(0x41) && log_is(&[]);
    open_window(8);
    held && log_is(&[0x41]) && ISR_SEEN.load(SeqCst) == 1 && !lapic::isr(0x41)
}

fn priority() -> bool {
    log_clear();
    for v in [0x31, 0x71, 0x51] {
        lapic::send_self(v);
    }
    open_window(8);
    log_is(&[0x71, 0x51, 0x31])
}

fn nesting() -> bool {
    log_clear();
    lapic::send_self(NESTING_VECTOR);
    open_window(8);
    let n = NESTING_VECTOR as u64;
    log_is(&[n, 0x81, n | EXIT, 0x51])
}

fn self_nmi() -> bool {
    NMI_COUNT.store(0, SeqCst);
    NMI_FRAME.store(0, SeqCst);
    // Interrupts stay disabled: an NMI does not care.
    lapic::send_nmi(lapic::id());
    let arrived = spin_until(|| NMI_COUNT.load(SeqCst) >= 1);
    let frame = NMI_FRAME.load(SeqCst);
    let on_ist = ist_stack(IST_NMI).is_some_and(|(lo, hi)| (lo..hi).contains(&frame));
    arrived && on_ist && NMI_COUNT.load(SeqCst) == 1
}

fn nmi_blocking() -> bool {
    NMI_COUNT.store(0, SeqCst);
    NMI_SEEN_INSIDE.store(0, SeqCst);
    NMI_RESEND.store(true, SeqCst);
    lapic::send_nmi(lapic::id());
    let both = spin_until(|| NMI_COUNT.load(SeqCst) >= 2);
    both && NMI_SEEN_INSIDE.load(SeqCst) == 1 && NMI_COUNT.load(SeqCst) == 2
}

fn no_spurious_or_errors() -> bool {
    lapic::SPURIOUS.load(SeqCst) == 0
        && lapic::ERRORS.load(SeqCst) == 0
        && lapic::clear_errors() == 0
}

fn pic_masked() -> bool {
    pic::masks() == (0xff, 0xff)
}

/// A named case: true if it passed.
type Case = (&'static str, fn() -> bool);

/// Run every case; returns (passed, total).
pub fn run() -> (u32, u32) {
    cli();
    pic::remap_and_mask_all();
    if !lapic::init() {
        kprintln!("timer apic: globally disabled FAIL");
        return (0, 1);
    }
    irq::register(LOCAL_TIMER_VECTOR, timer_interrupt);
    for v in IPI_VECTORS {
        irq::register(v, ipi_interrupt);
    }
    irq::register(NESTING_VECTOR, nesting_interrupt);
    irq::register(vector::NMI, nmi);

    let cases: [Case; 12] = [
        ("pic-masked", pic_masked),
        ("periodic", periodic),
        ("one-shot", one_shot),
        ("masked-lvt", masked_lvt),
        ("tpr", tpr),
        ("cr8", cr8),
        ("self-ipi", self_ipi),
        ("priority", priority),
        ("nesting", nesting),
        ("self-nmi", self_nmi),
        ("nmi-blocking", nmi_blocking),
        ("no-spurious-or-errors", no_spurious_or_errors),
    ];
    let mut pass = 0;
    for (name, case) in cases {
        let ok = case();
        kprintln!("timer {name}: {}", if ok { "ok" } else { "FAIL" });
        pass += ok as u32;
    }

    lapic::timer_stop();
    lapic::set_tpr(0);
    irq::unregister(LOCAL_TIMER_VECTOR);
    for v in IPI_VECTORS {
        irq::unregister(v);
    }
    irq::unregister(NESTING_VECTOR);
    irq::unregister(vector::NMI);
    (pass, cases.len() as u32)
}
