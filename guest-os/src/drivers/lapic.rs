//! Local APIC driver (xAPIC, memory-mapped; Intel SDM Vol. 3A, chapter 10), set up the way
//! Linux's `setup_local_APIC` does on the boot CPU: flat logical destination, TPR 0,
//! software enabled with spurious vector 0xFF, LINT0 (the 8259) masked ExtINT, LINT1 NMI,
//! errors on their own vector. The timer counts down at the APIC bus clock divided by a
//! programmable divisor, periodically or once, on [`LOCAL_TIMER_VECTOR`].

use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::x86_64::idt::TrapFrame;
use crate::arch::x86_64::irq;
use crate::mm::fixmap::{self, Slot};
use crate::mm::PhysAddr;

/// IA32_APIC_BASE: the register page's physical address and the global enable.
const MSR_IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Register offsets (SDM Table 10-1; Linux's names in comments).
pub mod reg {
    pub const ID: u32 = 0x020; // APIC_ID
    pub const VERSION: u32 = 0x030; // APIC_LVR
    pub const TPR: u32 = 0x080; // APIC_TASKPRI
    pub const PPR: u32 = 0x0a0; // APIC_PROCPRI
    pub const EOI: u32 = 0x0b0; // APIC_EOI
    pub const LDR: u32 = 0x0d0; // APIC_LDR
    pub const DFR: u32 = 0x0e0; // APIC_DFR
    pub const SVR: u32 = 0x0f0; // APIC_SPIV
    pub const ISR: u32 = 0x100; // APIC_ISR
    pub const IRR: u32 = 0x200; // APIC_IRR
    pub const ESR: u32 = 0x280; // APIC_ESR
    pub const ICR_LOW: u32 = 0x300; // APIC_ICR
    pub const ICR_HIGH: u32 = 0x310; // APIC_ICR2
    pub const LVT_TIMER: u32 = 0x320; // APIC_LVTT
    pub const LVT_LINT0: u32 = 0x350; // APIC_LVT0
    pub const LVT_LINT1: u32 = 0x360; // APIC_LVT1
    pub const LVT_ERROR: u32 = 0x370; // APIC_LVTERR
    pub const TIMER_INITIAL_COUNT: u32 = 0x380; // APIC_TMICT
    pub const TIMER_CURRENT_COUNT: u32 = 0x390; // APIC_TMCCT
    pub const TIMER_DIVIDE_CONFIG: u32 = 0x3e0; // APIC_TDCR
}

/// LVT bits.
pub const LVT_MASKED: u32 = 1 << 16;
pub const APIC_TIMER_ONESHOT: u32 = 0;
pub const APIC_TIMER_PERIODIC: u32 = 1 << 17;
/// Delivery modes (LVT and ICR bits 10:8).
pub const APIC_DM_FIXED: u32 = 0 << 8;
pub const APIC_DM_NMI: u32 = 4 << 8;
pub const APIC_DM_EXTINT: u32 = 7 << 8;
/// SVR: APIC software enable.
pub const APIC_SPIV_APIC_ENABLED: u32 = 1 << 8;
/// ICR: destination shorthand "self", and the delivery-status (send pending) bit.
pub const APIC_DEST_SELF: u32 = 1 << 18;
pub const APIC_ICR_BUSY: u32 = 1 << 12;
/// DFR: flat logical destination model.
pub const APIC_DFR_FLAT: u32 = 0xffff_ffff;

/// Vectors, as Linux assigns them (arch/x86/include/asm/irq_vectors.h).
pub const SPURIOUS_APIC_VECTOR: u8 = 0xff;
pub const ERROR_APIC_VECTOR: u8 = 0xfe;
pub const LOCAL_TIMER_VECTOR: u8 = 0xec;

/// Timer divide configuration values (SDM Figure 10-10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Divide {
    By1 = 0xb,
    By2 = 0x0,
    By4 = 0x1,
    By8 = 0x2,
    By16 = 0x3,
    By32 = 0x8,
    By64 = 0x9,
    By128 = 0xa,
}

/// Virtual address of the register page (0 until [`init`]).
static BASE: AtomicU64 = AtomicU64::new(0);
/// Spurious interrupts and APIC errors seen.
pub static SPURIOUS: AtomicU64 = AtomicU64::new(0);
pub static ERRORS: AtomicU64 = AtomicU64::new(0);

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDMSR of an architectural MSR at CPL 0.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

/// Read register `r`.
pub fn read(r: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    assert!(base != 0, "local APIC used before lapic::init");
    // SAFETY: `base` maps the APIC page (fixmap, uncached); registers are 32-bit aligned.
    unsafe { read_volatile((base + r as u64) as *const u32) }
}

/// Write register `r`.
pub fn write(r: u32, v: u32) {
    let base = BASE.load(Ordering::Relaxed);
    assert!(base != 0, "local APIC used before lapic::init");
    // SAFETY: as in `read`.
    unsafe { write_volatile((base + r as u64) as *mut u32, v) }
}

/// Map and enable the local APIC of this CPU. Call with interrupts disabled. Returns false
/// if the APIC is globally disabled in IA32_APIC_BASE.
pub fn init() -> bool {
    let msr = rdmsr(MSR_IA32_APIC_BASE);
    if msr & APIC_BASE_ENABLE == 0 {
        return false;
    }
    let va = fixmap::map(Slot::LocalApic, PhysAddr::new(msr & APIC_BASE_ADDR));
    BASE.store(va.as_u64(), Ordering::Relaxed);
    irq::register(SPURIOUS_APIC_VECTOR, spurious_interrupt);
    irq::register(ERROR_APIC_VECTOR, error_interrupt);

    write(reg::DFR, APIC_DFR_FLAT);
    write(reg::LDR, 1 << (24 + id() as u32 % 8));
    set_tpr(0);
    // Stop the timer before enabling: nothing fires until a driver asks for it.
    write(reg::LVT_TIMER, LVT_MASKED | LOCAL_TIMER_VECTOR as u32);
    write(reg::TIMER_INITIAL_COUNT, 0);
    write(
        reg::SVR,
        APIC_SPIV_APIC_ENABLED | SPURIOUS_APIC_VECTOR as u32,
    );
    let lint0_mask = if EXTINT.load(Ordering::Relaxed) {
        0
    } else {
        LVT_MASKED
    };
    write(reg::LVT_LINT0, APIC_DM_EXTINT | lint0_mask);
    write(reg::LVT_LINT1, APIC_DM_NMI);
    write(reg::LVT_ERROR, ERROR_APIC_VECTOR as u32);
    clear_errors();
    // Anything left in service from firmware would block its priority class.
    for _ in 0..256 {
        if (0..8).all(|k| read(reg::ISR + k * 0x10) == 0) {
            break;
        }
        eoi();
    }
    true
}

/// Whether a driver takes interrupts from the 8259 (LINT0 in ExtINT mode, "virtual wire").
static EXTINT: AtomicBool = AtomicBool::new(false);

/// Let the 8259's interrupts through LINT0 (ExtINT), now or when [`init`] runs: for
/// drivers whose devices interrupt through the PIC (PCI INTx routed by the PIIX3).
pub fn enable_extint() {
    EXTINT.store(true, Ordering::Relaxed);
    if BASE.load(Ordering::Relaxed) != 0 {
        write(reg::LVT_LINT0, APIC_DM_EXTINT);
    }
}

/// This CPU's APIC ID.
pub fn id() -> u8 {
    (read(reg::ID) >> 24) as u8
}

/// End of interrupt for the highest in-service vector.
pub fn eoi() {
    write(reg::EOI, 0);
}

/// The error status register, after latching (SDM 10.5.3: write, then read).
pub fn clear_errors() -> u32 {
    write(reg::ESR, 0);
    read(reg::ESR)
}

pub fn tpr() -> u8 {
    read(reg::TPR) as u8
}

pub fn set_tpr(v: u8) {
    write(reg::TPR, v as u32);
}

/// The processor priority register.
pub fn ppr() -> u8 {
    read(reg::PPR) as u8
}

fn bit_of(base: u32, v: u8) -> bool {
    read(base + (v as u32 / 32) * 0x10) & (1 << (v % 32)) != 0
}

/// Whether vector `v` is requested (IRR) / in service (ISR).
pub fn irr(v: u8) -> bool {
    bit_of(reg::IRR, v)
}
pub fn isr(v: u8) -> bool {
    bit_of(reg::ISR, v)
}

/// Start the timer: `count` ticks of the bus clock divided by `divide`, then an interrupt
/// on `vector`; `lvt_flags` adds [`APIC_TIMER_PERIODIC`] and/or [`LVT_MASKED`].
pub fn timer_start(vector: u8, lvt_flags: u32, divide: Divide, count: u32) {
    write(reg::TIMER_DIVIDE_CONFIG, divide as u32);
    write(reg::LVT_TIMER, lvt_flags | vector as u32);
    write(reg::TIMER_INITIAL_COUNT, count);
}

/// Stop the timer and mask its entry.
pub fn timer_stop() {
    write(reg::TIMER_INITIAL_COUNT, 0);
    write(reg::LVT_TIMER, LVT_MASKED | LOCAL_TIMER_VECTOR as u32);
}

/// The timer's current count.
pub fn timer_count() -> u32 {
    read(reg::TIMER_CURRENT_COUNT)
}

fn send_ipi(dest: u8, low: u32) {
    write(reg::ICR_HIGH, (dest as u32) << 24);
    write(reg::ICR_LOW, low);
    while read(reg::ICR_LOW) & APIC_ICR_BUSY != 0 {
        core::hint::spin_loop();
    }
}

/// A fixed IPI to this CPU (destination shorthand "self").
pub fn send_self(vector: u8) {
    send_ipi(0, APIC_DEST_SELF | APIC_DM_FIXED | vector as u32);
}

/// An NMI to the CPU with APIC ID `dest` (physical destination, no shorthand).
pub fn send_nmi(dest: u8) {
    send_ipi(dest, APIC_DM_NMI);
}

/// Spurious interrupts are not in service: no EOI (SDM 10.9).
fn spurious_interrupt(_: &mut TrapFrame) {
    SPURIOUS.fetch_add(1, Ordering::SeqCst);
}

fn error_interrupt(_: &mut TrapFrame) {
    let esr = clear_errors();
    ERRORS.fetch_add(1, Ordering::SeqCst);
    log::warn!("local APIC error, ESR {esr:#x}");
    eoi();
}
