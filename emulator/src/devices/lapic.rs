//! The local APIC in xAPIC mode (Intel SDM Vol. 3A, chapter 10, "Advanced Programmable
//! Interrupt Controller (APIC)"), as QEMU's `apic` device presents it on the `pc` machine:
//! version 0x14 with six LVT entries, the register page at the base IA32_APIC_BASE names.
//!
//! # Virtual clock
//! There is no host clock anywhere in vmscope. The APIC bus clock runs at 1 GHz of virtual
//! time and **one instruction is one nanosecond**: at instruction count `icount` the bus
//! clock has ticked `icount` times (QEMU's APIC timer also runs at 1 GHz, from its virtual
//! clock). The timer counts down once every `divide` bus clocks. Every method that needs
//! the time takes `now` (the CPU's icount), so an interrupt lands on the same instruction on
//! every run. The machine asks [`Lapic::next_timer_event`] for the icount of the next
//! expiry and compares against it; nothing is done per instruction.
//!
//! # Interrupt acceptance (SDM 10.8)
//! Fixed interrupts (timer, LVT, self-IPIs) set their IRR bit. The CPU takes the highest
//! IRR vector whose priority class (`vector >> 4`) is above the PPR's; acceptance moves it
//! from IRR to ISR, and an EOI clears the highest ISR bit. NMIs bypass IRR/ISR and latch
//! in [`Lapic::nmi_pending`] until the CPU can take them.
//!
//! Guest values never panic: every register write is masked to its defined bits and all
//! timer arithmetic saturates.

use crate::cpu::regs::msr::APIC_BASE_DEFAULT;

/// Size of the register page.
pub const APIC_MMIO_SIZE: u64 = 0x1000;

/// IA32_APIC_BASE bits (SDM Figure 10-5).
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// x2APIC mode enable: not supported here, so WRMSR rejects it.
pub const APIC_BASE_EXTD: u64 = 1 << 10;
/// APIC global enable.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// Physical base of the register page (bits 12 and up).
pub const APIC_BASE_ADDR_MASK: u64 = !0xfff;

/// Register offsets in the APIC page (SDM Table 10-1, "Local APIC Register Address Map").
pub mod reg {
    pub const ID: u32 = 0x020;
    pub const VERSION: u32 = 0x030;
    pub const TPR: u32 = 0x080;
    pub const APR: u32 = 0x090;
    pub const PPR: u32 = 0x0a0;
    pub const EOI: u32 = 0x0b0;
    pub const RRD: u32 = 0x0c0;
    pub const LDR: u32 = 0x0d0;
    pub const DFR: u32 = 0x0e0;
    pub const SVR: u32 = 0x0f0;
    /// In-service register: eight 32-bit words at 0x100..0x170.
    pub const ISR: u32 = 0x100;
    /// Trigger-mode register: 0x180..0x1f0.
    pub const TMR: u32 = 0x180;
    /// Interrupt-request register: 0x200..0x270.
    pub const IRR: u32 = 0x200;
    pub const ESR: u32 = 0x280;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_THERMAL: u32 = 0x330;
    pub const LVT_PERF: u32 = 0x340;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_LINT1: u32 = 0x360;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL_COUNT: u32 = 0x380;
    pub const TIMER_CURRENT_COUNT: u32 = 0x390;
    pub const TIMER_DIVIDE_CONFIG: u32 = 0x3e0;
}

/// Version register: an integrated xAPIC (version 0x14) with six LVT entries (Max LVT
/// Entry = 5), the value QEMU reports; no EOI-broadcast suppression (bit 24 clear).
pub const APIC_VERSION: u32 = 0x0005_0014;

/// LVT entry bits (SDM Figure 10-8).
pub const LVT_VECTOR: u32 = 0xff;
pub const LVT_DELIVERY_MODE: u32 = 7 << 8;
pub const LVT_DELIVERY_STATUS: u32 = 1 << 12;
pub const LVT_PIN_POLARITY: u32 = 1 << 13;
pub const LVT_REMOTE_IRR: u32 = 1 << 14;
pub const LVT_LEVEL_TRIGGER: u32 = 1 << 15;
pub const LVT_MASKED: u32 = 1 << 16;
/// Timer mode, bits 18:17.
pub const APIC_TIMER_MODE: u32 = 3 << 17;
pub const APIC_TIMER_ONESHOT: u32 = 0;
pub const APIC_TIMER_PERIODIC: u32 = 1 << 17;
/// Not supported (CPUID.1:ECX.TSC_Deadline is clear), so bit 18 is reserved.
pub const APIC_TIMER_TSC_DEADLINE: u32 = 2 << 17;

/// Delivery modes (LVT bits 10:8 and ICR bits 10:8).
pub mod delivery_mode {
    pub const FIXED: u32 = 0;
    pub const LOWEST_PRIORITY: u32 = 1;
    pub const SMI: u32 = 2;
    pub const NMI: u32 = 4;
    pub const INIT: u32 = 5;
    pub const STARTUP: u32 = 6;
    pub const EXTINT: u32 = 7;
}

/// Spurious-interrupt vector register: APIC software enable.
pub const SVR_APIC_ENABLED: u32 = 1 << 8;
/// Writable SVR bits: the vector and software enable. Focus-processor checking (bit 9) and
/// EOI-broadcast suppression (bit 12) are not supported on this xAPIC (as QEMU).
const SVR_WRITABLE: u32 = 0x1ff;

/// ICR bits (SDM Figure 10-12).
pub const ICR_DEST_LOGICAL: u32 = 1 << 11;
pub const ICR_DELIVERY_STATUS: u32 = 1 << 12;
pub const ICR_LEVEL_ASSERT: u32 = 1 << 14;
pub const ICR_TRIGGER_LEVEL: u32 = 1 << 15;
pub const ICR_SHORTHAND_SHIFT: u32 = 18;
pub const ICR_SHORTHAND_NONE: u32 = 0;
pub const ICR_SHORTHAND_SELF: u32 = 1;
pub const ICR_SHORTHAND_ALL_INCLUDING_SELF: u32 = 2;
pub const ICR_SHORTHAND_ALL_EXCLUDING_SELF: u32 = 3;
/// Writable ICR low bits: vector, delivery mode, destination mode, level, trigger mode,
/// destination shorthand. Delivery status reads 0: a send completes at once.
const ICR_LOW_WRITABLE: u32 = 0x000c_cfff;
/// The destination field of ICR high (bits 31:24).
const ICR_HIGH_WRITABLE: u32 = 0xff00_0000;

/// Error status register bits (SDM Figure 10-9).
pub const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
pub const ESR_RECEIVED_ILLEGAL_VECTOR: u32 = 1 << 6;
pub const ESR_ILLEGAL_REGISTER_ADDRESS: u32 = 1 << 7;

/// Destination format register: flat model (bits 31:28 = 1111); bits 27:0 read as 1.
pub const DFR_FLAT: u32 = 0xffff_ffff;
const DFR_MODEL: u32 = 0xf000_0000;
/// The broadcast destination in physical and logical mode.
const BROADCAST: u8 = 0xff;

/// LVT entries, in register order (0x320 + 0x10 * index). Entries 1 (thermal sensor) and
/// 2 (performance counters) are storage only: nothing here raises them.
const LVT_TIMER: usize = 0;
const LVT_LINT0: usize = 3;
const LVT_LINT1: usize = 4;
const LVT_ERROR: usize = 5;
const LVT_COUNT: usize = 6;
/// Writable bits of each LVT entry (SDM Figure 10-8): the timer has no delivery mode and
/// only one-shot/periodic, LINT0/1 have polarity and trigger mode, the error entry only a
/// vector and the mask.
const LVT_WRITABLE: [u32; LVT_COUNT] = [
    LVT_VECTOR | LVT_MASKED | APIC_TIMER_PERIODIC,
    LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY_MODE | LVT_PIN_POLARITY | LVT_LEVEL_TRIGGER | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY_MODE | LVT_PIN_POLARITY | LVT_LEVEL_TRIGGER | LVT_MASKED,
    LVT_VECTOR | LVT_MASKED,
];
/// Divide configuration bits 0, 1 and 3.
const DIVIDE_WRITABLE: u32 = 0xb;
/// Vectors 0..15 are reserved: the APIC refuses them with an "illegal vector" error.
const FIRST_LEGAL_VECTOR: u8 = 16;

/// Timer state. The count is not stored: it follows from the time it was last loaded.
#[derive(Debug, Clone, Default)]
struct Timer {
    initial: u32,
    divide_config: u32,
    /// log2 of the divisor: a count-down tick every `1 << shift` bus clocks.
    shift: u32,
    /// Counting (a one-shot count that reached 0 stops; a write of 0 stops either mode).
    running: bool,
    /// The count was `base_count` at bus clock `base_time`.
    base_time: u64,
    base_count: u32,
}

impl Timer {
    /// Divide configuration → log2 of the divisor (SDM Figure 10-10): bits 3,1,0 = 111
    /// divide by 1, 000 by 2, ..., 110 by 128.
    fn shift_of(divide_config: u32) -> u32 {
        let v = ((divide_config >> 1) & 4) | (divide_config & 3);
        (v + 1) & 7
    }

    fn period(&self) -> u64 {
        (self.initial as u64) << self.shift
    }

    /// The bus-clock time at which the count reaches 0 next, if it is counting.
    fn expiry(&self) -> Option<u64> {
        self.running.then(|| {
            self.base_time
                .saturating_add((self.base_count as u64) << self.shift)
        })
    }

    fn current_count(&self, now: u64, periodic: bool) -> u32 {
        if !self.running {
            return 0;
        }
        let elapsed = now.saturating_sub(self.base_time) >> self.shift;
        if elapsed < self.base_count as u64 {
            self.base_count - elapsed as u32
        } else if periodic && self.initial != 0 {
            // Reloaded from the initial count each time it reached 0.
            let into = (elapsed - self.base_count as u64) % self.initial as u64;
            self.initial - into as u32
        } else {
            0
        }
    }

    /// Restart the count from `count` at `now` (keeps the running state).
    fn rebase(&mut self, now: u64, count: u32) {
        self.base_time = now;
        self.base_count = count;
    }
}

/// One CPU's local APIC.
#[derive(Debug, Clone)]
pub struct Lapic {
    apic_base: u64,
    id: u8,
    /// The initial APIC ID (CPUID.1:EBX[31:24]), which a power-up reset restores.
    initial_id: u8,
    tpr: u8,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: [u32; 8],
    tmr: [u32; 8],
    irr: [u32; 8],
    /// Errors latched into the readable ESR by the next ESR write (SDM 10.5.3).
    esr: u32,
    esr_pending: u32,
    icr_low: u32,
    icr_high: u32,
    lvt: [u32; LVT_COUNT],
    timer: Timer,
    /// An NMI accepted for the core (from the ICR, LINT0/1 or the platform).
    nmi_pending: bool,
    /// Last level seen on LINT0 (the 8259's INT output), for edge detection.
    lint0_level: bool,
    /// The vector of the last EOI of a level-triggered interrupt, for the bus to
    /// broadcast to the IOAPIC (SDM 10.8.5), until taken.
    eoi_broadcast: Option<u8>,
    /// Unsupported requests already logged (one warning each).
    logged: u32,
    /// The IPI just written to ICR low, for the bus to route ([`Self::take_ipi`]).
    ipi_out: Option<Ipi>,
    /// An INIT received and not yet taken by the machine (it resets the CPU).
    init_pending: bool,
    /// The vector of a start-up IPI received and not yet taken.
    sipi_pending: Option<u8>,
}

/// An interprocessor interrupt as written to the ICR (SDM Figure 10-12), on its way to
/// the APICs it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipi {
    pub vector: u8,
    /// Delivery mode ([`delivery_mode`]).
    pub mode: u32,
    pub level_triggered: bool,
    /// The level bit (INIT de-assert has it clear).
    pub assert: bool,
    /// Destination shorthand (`ICR_SHORTHAND_*`).
    pub shorthand: u32,
    /// ICR high bits 31:24.
    pub dest: u8,
    pub logical: bool,
}

impl Default for Lapic {
    fn default() -> Self {
        Self::new(0)
    }
}

/// Bit `v` of a 256-bit register.
fn bit(r: &[u32; 8], v: u8) -> bool {
    r[v as usize >> 5] & (1 << (v & 31)) != 0
}
fn set_bit(r: &mut [u32; 8], v: u8, on: bool) {
    let m = 1 << (v & 31);
    if on {
        r[v as usize >> 5] |= m;
    } else {
        r[v as usize >> 5] &= !m;
    }
}
/// The highest set bit of a 256-bit register.
fn highest(r: &[u32; 8]) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&i| r[i] != 0)
        .map(|i| (i as u32 * 32 + 31 - r[i].leading_zeros()) as u8)
}

impl Lapic {
    /// The APIC of CPU `id` in its power-up state, at the default base; CPU 0 is the
    /// bootstrap processor.
    pub fn new(id: u8) -> Self {
        let bsp = if id == 0 { APIC_BASE_BSP } else { 0 };
        Self::power_up((APIC_BASE_DEFAULT & !APIC_BASE_BSP) | bsp, id)
    }

    /// Power-up/INIT state (SDM 10.4.7.1): IRR, ISR, TMR, ICR, LDR and TPR cleared, the
    /// timer stopped, DFR all ones, every LVT entry masked, SVR 0xFF (software disabled).
    /// As on QEMU's `pc` (and as firmware sets up virtual-wire mode), the bootstrap
    /// processor's LINT0 is then ExtINT, unmasked, so the 8259 reaches the CPU.
    fn power_up(apic_base: u64, id: u8) -> Self {
        let mut lvt = [LVT_MASKED; LVT_COUNT];
        if apic_base & APIC_BASE_BSP != 0 {
            lvt[LVT_LINT0] = delivery_mode::EXTINT << 8;
        }
        Lapic {
            apic_base,
            id,
            initial_id: id,
            tpr: 0,
            ldr: 0,
            dfr: DFR_FLAT,
            svr: 0xff,
            isr: [0; 8],
            tmr: [0; 8],
            irr: [0; 8],
            esr: 0,
            esr_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt,
            timer: Timer {
                shift: Timer::shift_of(0),
                ..Timer::default()
            },
            nmi_pending: false,
            lint0_level: false,
            eoi_broadcast: None,
            logged: 0,
            ipi_out: None,
            init_pending: false,
            sipi_pending: None,
        }
    }

    /// INIT reset (SDM 11.4.7.3): back to the power-up state, keeping the base, the APIC
    /// ID as software left it ("except for the APIC ID and arbitration ID registers")
    /// and a latched NMI (the NMI input belongs to the core, not to the APIC's
    /// register state).
    pub fn reset(&mut self) {
        let initial_id = self.initial_id;
        let nmi = self.nmi_pending;
        let logged = self.logged;
        *self = Self::power_up(self.apic_base, self.id);
        self.initial_id = initial_id;
        self.nmi_pending = nmi;
        self.logged = logged;
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    /// IA32_APIC_BASE as the APIC sees it.
    pub fn apic_base(&self) -> u64 {
        self.apic_base
    }

    /// WRMSR IA32_APIC_BASE (reserved bits already checked by the CPU). The BSP flag is
    /// read-only. Clearing the global enable returns the APIC to its power-up state
    /// (SDM 11.4.3: "prior initialization ... may be lost"), the ID included: the APIC
    /// ID register is the initial APIC ID again (11.4.6, power-up state of 11.4.7.1;
    /// KVM does the same, kvm-unit-tests' "correct xapic id after reset"). It stops
    /// decoding its page.
    pub fn set_apic_base(&mut self, v: u64) {
        let was_enabled = self.enabled();
        self.apic_base = (v & !APIC_BASE_BSP) | (self.apic_base & APIC_BASE_BSP);
        if was_enabled && !self.enabled() {
            self.reset();
            self.id = self.initial_id;
        }
    }

    /// Globally enabled (IA32_APIC_BASE[11]).
    pub fn enabled(&self) -> bool {
        self.apic_base & APIC_BASE_ENABLE != 0
    }

    /// Software enabled (SVR[8]).
    pub fn software_enabled(&self) -> bool {
        self.svr & SVR_APIC_ENABLED != 0
    }

    /// The physical page the registers are decoded at, when globally enabled.
    #[inline]
    pub fn mmio_base(&self) -> Option<u64> {
        self.enabled()
            .then_some(self.apic_base & APIC_BASE_ADDR_MASK)
    }

    // ---- MMIO ------------------------------------------------------------------------------

    /// A guest read of `size` bytes at `offset` in the page. As QEMU: reads narrower than
    /// 32 bits return 0; an 8-byte read returns the register in both halves (two 32-bit
    /// accesses to the same 16-byte slot). The SDM leaves such accesses undefined.
    pub fn mmio_read(&mut self, offset: u64, size: u8, now: u64) -> u64 {
        if size < 4 {
            return 0;
        }
        let v = self.read_register((offset & 0xff0) as u32, now) as u64;
        if size == 8 {
            v | (v << 32)
        } else {
            v
        }
    }

    /// A guest write; narrower than 32 bits is ignored (as QEMU), 8 bytes write the low half.
    pub fn mmio_write(&mut self, offset: u64, size: u8, val: u64, now: u64) {
        if size < 4 {
            return;
        }
        self.write_register((offset & 0xff0) as u32, val as u32, now);
    }

    /// Read the register at 16-byte-aligned offset `r`.
    pub fn read_register(&mut self, r: u32, now: u64) -> u32 {
        self.advance(now);
        match r {
            reg::ID => (self.id as u32) << 24,
            reg::VERSION => APIC_VERSION,
            reg::TPR => self.tpr as u32,
            // Arbitration priority is not modelled on xAPIC parts after the P6; QEMU reads 0.
            reg::APR => 0,
            reg::PPR => self.ppr() as u32,
            // Write-only.
            reg::EOI => 0,
            // Remote read is not supported on xAPIC; reads 0.
            reg::RRD => 0,
            reg::LDR => self.ldr,
            reg::DFR => self.dfr,
            reg::SVR => self.svr,
            0x100..=0x170 => self.isr[((r - reg::ISR) >> 4) as usize],
            0x180..=0x1f0 => self.tmr[((r - reg::TMR) >> 4) as usize],
            0x200..=0x270 => self.irr[((r - reg::IRR) >> 4) as usize],
            reg::ESR => self.esr,
            reg::ICR_LOW => self.icr_low,
            reg::ICR_HIGH => self.icr_high,
            0x320..=0x370 => self.lvt[((r - reg::LVT_TIMER) >> 4) as usize],
            reg::TIMER_INITIAL_COUNT => self.timer.initial,
            reg::TIMER_CURRENT_COUNT => self.timer.current_count(now, self.periodic()),
            reg::TIMER_DIVIDE_CONFIG => self.timer.divide_config,
            _ => {
                self.error(ESR_ILLEGAL_REGISTER_ADDRESS);
                0
            }
        }
    }

    /// Write the register at 16-byte-aligned offset `r`. Writes to read-only registers are
    /// ignored; reserved offsets set "illegal register address" in the ESR.
    pub fn write_register(&mut self, r: u32, v: u32, now: u64) {
        self.advance(now);
        match r {
            // QEMU lets software change the APIC ID (the SDM: model specific).
            reg::ID => self.id = (v >> 24) as u8,
            reg::TPR => self.tpr = v as u8,
            reg::EOI => self.eoi(),
            reg::LDR => self.ldr = v & 0xff00_0000,
            reg::DFR => self.dfr = (v & DFR_MODEL) | !DFR_MODEL,
            reg::SVR => {
                self.svr = v & SVR_WRITABLE;
                if !self.software_enabled() {
                    // SDM 10.4.7.2: software disable masks every LVT entry.
                    for e in self.lvt.iter_mut() {
                        *e |= LVT_MASKED;
                    }
                }
            }
            // SDM 10.5.3: a write latches the errors seen since the previous write.
            reg::ESR => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            reg::ICR_LOW => {
                self.icr_low = v & ICR_LOW_WRITABLE;
                self.send_ipi();
            }
            reg::ICR_HIGH => self.icr_high = v & ICR_HIGH_WRITABLE,
            0x320..=0x370 => {
                let i = ((r - reg::LVT_TIMER) >> 4) as usize;
                let mut e = v & LVT_WRITABLE[i];
                if !self.software_enabled() {
                    // The mask cannot be cleared while software disabled.
                    e |= LVT_MASKED;
                }
                // Keep the read-only remote-IRR bit of LINT0/1.
                e |= self.lvt[i] & LVT_REMOTE_IRR;
                self.lvt[i] = e;
            }
            reg::TIMER_INITIAL_COUNT => {
                // Loading the initial count (re)starts the timer; 0 stops it (SDM 10.5.4).
                self.timer.initial = v;
                self.timer.running = v != 0;
                self.timer.rebase(now, v);
            }
            reg::TIMER_DIVIDE_CONFIG => {
                // Keep the current count and continue at the new rate.
                let count = self.timer.current_count(now, self.periodic());
                self.timer.rebase(now, count);
                self.timer.divide_config = v & DIVIDE_WRITABLE;
                self.timer.shift = Timer::shift_of(v);
            }
            reg::VERSION
            | reg::APR
            | reg::PPR
            | reg::RRD
            | 0x100..=0x270
            | reg::TIMER_CURRENT_COUNT => {}
            _ => self.error(ESR_ILLEGAL_REGISTER_ADDRESS),
        }
    }

    // ---- priorities, acceptance, EOI -------------------------------------------------------

    /// TPR (also CR8 = TPR[7:4] in 64-bit mode).
    pub fn tpr(&self) -> u8 {
        self.tpr
    }

    pub fn set_tpr(&mut self, v: u8) {
        self.tpr = v;
    }

    /// Processor priority (SDM 10.8.3.1): the TPR, or the in-service class if that is higher.
    pub fn ppr(&self) -> u8 {
        let isrv = highest(&self.isr).unwrap_or(0);
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xf0
        }
    }

    /// The fixed interrupt the CPU would take now: the highest IRR vector whose priority
    /// class is above the PPR's.
    pub fn pending_interrupt(&self) -> Option<u8> {
        if !self.enabled() {
            return None;
        }
        let v = highest(&self.irr)?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// INTA: the CPU accepts [`Self::pending_interrupt`]; its IRR bit moves to the ISR.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let v = self.pending_interrupt()?;
        set_bit(&mut self.irr, v, false);
        set_bit(&mut self.isr, v, true);
        Some(v)
    }

    /// EOI: clear the highest in-service bit. A level-triggered vector (TMR set) is
    /// broadcast to the IOAPIC ([`Self::take_eoi_broadcast`]). The TMR bit stays as it
    /// is: SDM 11.8.4 sets or clears it only when an interrupt is accepted into the IRR
    /// (set for level, cleared for edge), so it reads set after the EOI of a
    /// level-triggered interrupt until an edge-triggered one comes with that vector.
    fn eoi(&mut self) {
        if let Some(v) = highest(&self.isr) {
            set_bit(&mut self.isr, v, false);
            if bit(&self.tmr, v) {
                self.eoi_broadcast = Some(v);
            }
        }
    }

    /// Whether the trigger-mode register has `v` set (level-triggered at its acceptance).
    pub fn tmr(&self, v: u8) -> bool {
        bit(&self.tmr, v)
    }

    /// The vector of a level-triggered interrupt just EOIed, once.
    pub fn take_eoi_broadcast(&mut self) -> Option<u8> {
        self.eoi_broadcast.take()
    }

    /// An interrupt for this APIC's IRR (from an LVT entry or an IPI). Vectors 0..15 are
    /// refused with "received illegal vector"; a software-disabled APIC accepts no fixed
    /// interrupts (SDM 10.4.7.2).
    pub fn raise_vector(&mut self, v: u8, level_triggered: bool) {
        if !self.enabled() || !self.software_enabled() {
            return;
        }
        if v < FIRST_LEGAL_VECTOR {
            self.error(ESR_RECEIVED_ILLEGAL_VECTOR);
            return;
        }
        set_bit(&mut self.irr, v, true);
        set_bit(&mut self.tmr, v, level_triggered);
    }

    /// Whether `v` is requested (IRR) or in service (ISR).
    pub fn irr(&self, v: u8) -> bool {
        bit(&self.irr, v)
    }
    pub fn isr(&self, v: u8) -> bool {
        bit(&self.isr, v)
    }

    /// Record an error (SDM 10.5.3) and signal it through LVT error, unless masked.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let e = self.lvt[LVT_ERROR];
        let v = (e & LVT_VECTOR) as u8;
        if e & LVT_MASKED == 0 && v >= FIRST_LEGAL_VECTOR {
            self.raise_vector(v, false);
        }
    }

    // ---- NMI, LINT0 and the 8259 -----------------------------------------------------------

    /// Latch an NMI for the core (the NMI input: one can be pending).
    pub fn raise_nmi(&mut self) {
        self.nmi_pending = true;
    }

    pub fn nmi_pending(&self) -> bool {
        self.nmi_pending
    }

    /// The CPU takes the pending NMI.
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi_pending)
    }

    /// Whether the 8259's INTR reaches the CPU: directly when the APIC is globally disabled
    /// (SDM 10.4.3: the processor behaves as one without an APIC), else through LINT0 in
    /// ExtINT mode, unmasked. The 8259 then supplies the vector in the INTA cycle.
    pub fn accepts_extint(&self) -> bool {
        let l = self.lvt[LVT_LINT0];
        !self.enabled()
            || (l & LVT_MASKED == 0 && (l & LVT_DELIVERY_MODE) >> 8 == delivery_mode::EXTINT)
    }

    /// The level on LINT0 (the 8259's INT output). In fixed or NMI mode a rising edge (or,
    /// for a level-triggered fixed entry, a high level) raises the programmed interrupt;
    /// ExtINT is taken by [`Self::accepts_extint`] at acceptance time.
    pub fn set_lint0(&mut self, level: bool) {
        let rising = level && !self.lint0_level;
        self.lint0_level = level;
        self.local_interrupt(LVT_LINT0, rising, level);
    }

    /// Deliver LVT entry `i` for an input that rose (`rising`) or is held (`level`).
    fn local_interrupt(&mut self, i: usize, rising: bool, level: bool) {
        let e = self.lvt[i];
        if e & LVT_MASKED != 0 || !self.enabled() {
            return;
        }
        let mode = if i == LVT_TIMER || i == LVT_ERROR {
            delivery_mode::FIXED
        } else {
            (e & LVT_DELIVERY_MODE) >> 8
        };
        let level_triggered = e & LVT_LEVEL_TRIGGER != 0 && (i == LVT_LINT0 || i == LVT_LINT1);
        match mode {
            delivery_mode::FIXED if rising || (level_triggered && level) => {
                self.raise_vector((e & LVT_VECTOR) as u8, level_triggered)
            }
            delivery_mode::NMI if rising => self.raise_nmi(),
            delivery_mode::FIXED | delivery_mode::NMI | delivery_mode::EXTINT => {}
            other => self.log_once(
                1 << other,
                &format!("LVT entry {i} with delivery mode {other} is not supported; ignored"),
            ),
        }
    }

    // ---- IPIs ------------------------------------------------------------------------------

    /// Whether a destination in ICR high / an IOAPIC entry names this APIC (SDM 10.6.2).
    pub fn is_destination(&self, dest: u8, logical: bool) -> bool {
        if dest == BROADCAST {
            return true;
        }
        if !logical {
            return dest == self.id;
        }
        let ldr = (self.ldr >> 24) as u8;
        if self.dfr & DFR_MODEL == DFR_MODEL {
            // Flat model: a bit per APIC.
            ldr & dest != 0
        } else {
            // Cluster model: cluster in bits 7:4 must match, then a bit per APIC.
            ldr >> 4 == dest >> 4 && ldr & dest & 0xf != 0
        }
    }

    /// Latch the IPI just written to ICR low for the bus ([`Self::take_ipi`] and
    /// [`deliver_ipi`]). The send completes at once, so the delivery-status bit always
    /// reads idle.
    fn send_ipi(&mut self) {
        let icr = self.icr_low;
        self.ipi_out = Some(Ipi {
            vector: (icr & 0xff) as u8,
            mode: (icr >> 8) & 7,
            level_triggered: icr & ICR_TRIGGER_LEVEL != 0,
            assert: icr & ICR_LEVEL_ASSERT != 0,
            shorthand: (icr >> ICR_SHORTHAND_SHIFT) & 3,
            dest: (self.icr_high >> 24) as u8,
            logical: icr & ICR_DEST_LOGICAL != 0,
        });
    }

    /// The IPI written to ICR low since the last call, once.
    pub fn take_ipi(&mut self) -> Option<Ipi> {
        self.ipi_out.take()
    }

    /// An INIT IPI arrived: the machine resets the CPU to its wait-for-SIPI state. A
    /// start-up IPI that came before it is void (the INIT comes first); one that comes
    /// after it, before the machine took the INIT, is kept for after the reset.
    pub fn receive_init(&mut self) {
        self.init_pending = true;
        self.sipi_pending = None;
    }

    /// A start-up IPI arrived with vector `v` (the real-mode page `v << 12`).
    pub fn receive_sipi(&mut self, v: u8) {
        self.sipi_pending = Some(v);
    }

    /// An INIT waiting for the machine, once.
    pub fn take_init(&mut self) -> bool {
        std::mem::take(&mut self.init_pending)
    }

    /// A start-up vector waiting for the machine, once.
    pub fn take_sipi(&mut self) -> Option<u8> {
        self.sipi_pending.take()
    }

    /// Whether an INIT or SIPI waits for the machine.
    pub fn init_or_sipi_pending(&self) -> bool {
        self.init_pending || self.sipi_pending.is_some()
    }

    fn log_once(&mut self, key: u32, msg: &str) {
        if self.logged & key == 0 {
            self.logged |= key;
            log::warn!("local APIC: {msg}");
        }
    }

    // ---- the timer -------------------------------------------------------------------------

    fn periodic(&self) -> bool {
        self.lvt[LVT_TIMER] & APIC_TIMER_MODE == APIC_TIMER_PERIODIC
    }

    /// Timer count register value at `now` (for tests and the stop report).
    pub fn timer_current_count(&self, now: u64) -> u32 {
        self.timer.current_count(now, self.periodic())
    }

    /// Process timer expiries up to and including `now`: an expiry sets the timer vector
    /// in the IRR (one bit, however many periods passed) unless the entry is masked; a
    /// periodic count reloads, a one-shot count stops at 0.
    pub fn advance(&mut self, now: u64) {
        let Some(at) = self.timer.expiry() else {
            return;
        };
        if at > now {
            return;
        }
        if self.periodic() && self.timer.initial != 0 {
            let period = self.timer.period();
            let more = (now - at) / period;
            self.timer.rebase(
                at.saturating_add(more.saturating_mul(period)),
                self.timer.initial,
            );
        } else {
            self.timer.running = false;
            self.timer.rebase(at, 0);
        }
        self.local_interrupt(LVT_TIMER, true, true);
    }

    /// The icount of the next timer expiry that would raise an interrupt: `None` when the
    /// timer is stopped or its entry masked (the count still runs and reads correctly).
    pub fn next_timer_event(&self) -> Option<u64> {
        if self.lvt[LVT_TIMER] & LVT_MASKED != 0 || !self.enabled() {
            return None;
        }
        self.timer.expiry()
    }

    /// Whether the next timer expiry would give the CPU an interrupt it can take at the
    /// current priority: what a HLT with IF=1 may wait for.
    pub fn timer_can_wake(&self) -> bool {
        let v = (self.lvt[LVT_TIMER] & LVT_VECTOR) as u8;
        self.next_timer_event().is_some()
            && self.software_enabled()
            && v >= FIRST_LEGAL_VECTOR
            && v >> 4 > self.ppr() >> 4
    }
}

/// Deliver `ipi`, sent by `apics[src]`, to every APIC it names (SDM 10.6): a shorthand
/// (self, all including self, all excluding self) or the destination field as each APIC
/// matches it ([`Lapic::is_destination`]: physical ID or broadcast, logical flat or
/// cluster through LDR/DFR). `apics` is every CPU's APIC in CPU order.
///
/// Fixed interrupts set the vector in each target's IRR; a lowest-priority interrupt goes
/// to one target only, the one with the lowest APIC ID (the SDM leaves the arbitration to
/// the platform; this is deterministic); NMI latches each target's NMI input (as QEMU,
/// also with the self shorthand, which the SDM calls invalid); INIT and start-up are
/// latched for the machine, which resets or starts the CPU; an INIT level de-assert
/// only synchronises arbitration IDs and does nothing. SMI and ExtINT are logged once
/// and dropped.
pub fn deliver_ipi(apics: &mut [&mut Lapic], src: usize, ipi: &Ipi) {
    let mut targets: Vec<usize> = (0..apics.len())
        .filter(|&i| match ipi.shorthand {
            ICR_SHORTHAND_SELF => i == src,
            ICR_SHORTHAND_ALL_INCLUDING_SELF => true,
            ICR_SHORTHAND_ALL_EXCLUDING_SELF => i != src,
            _ => apics[i].is_destination(ipi.dest, ipi.logical),
        })
        .collect();
    match ipi.mode {
        delivery_mode::FIXED | delivery_mode::LOWEST_PRIORITY => {
            if ipi.vector < FIRST_LEGAL_VECTOR {
                apics[src].error(ESR_SEND_ILLEGAL_VECTOR);
            }
            if ipi.mode == delivery_mode::LOWEST_PRIORITY {
                targets.sort_by_key(|&i| apics[i].id());
                targets.truncate(1);
            }
            for i in targets {
                apics[i].raise_vector(ipi.vector, ipi.level_triggered);
            }
        }
        delivery_mode::NMI => {
            for i in targets {
                apics[i].raise_nmi();
            }
        }
        delivery_mode::INIT if !ipi.assert && ipi.level_triggered => {}
        delivery_mode::INIT => {
            for i in targets {
                apics[i].receive_init();
            }
        }
        delivery_mode::STARTUP => {
            for i in targets {
                apics[i].receive_sipi(ipi.vector);
            }
        }
        other => apics[src].log_once(
            1 << (8 + other),
            &format!("IPI with delivery mode {other} (SMI/ExtINT) is not supported; ignored"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMER_VECTOR: u8 = 0xec;
    /// Divide configuration "divide by 16" (bits 3,1,0 = 011).
    const DIV16: u32 = 0x3;
    /// "Divide by 1" (111).
    const DIV1: u32 = 0xb;

    fn enabled() -> Lapic {
        let mut a = Lapic::new(0);
        a.write_register(reg::SVR, SVR_APIC_ENABLED | 0xff, 0);
        a
    }

    fn start_timer(a: &mut Lapic, mode: u32, div: u32, count: u32, now: u64) {
        a.write_register(reg::TIMER_DIVIDE_CONFIG, div, now);
        a.write_register(reg::LVT_TIMER, mode | TIMER_VECTOR as u32, now);
        a.write_register(reg::TIMER_INITIAL_COUNT, count, now);
    }

    /// Write ICR low on a lone APIC and route the IPI among the APICs there are: itself.
    fn send_self(a: &mut Lapic, low: u32) {
        a.write_register(reg::ICR_LOW, low, 0);
        if let Some(ipi) = a.take_ipi() {
            deliver_ipi(&mut [a], 0, &ipi);
        }
    }

    #[test]
    fn power_up_state() {
        let mut a = Lapic::new(0);
        assert_eq!(a.read_register(reg::VERSION, 0), 0x50014);
        assert_eq!(a.read_register(reg::SVR, 0), 0xff);
        assert_eq!(a.read_register(reg::DFR, 0), 0xffff_ffff);
        assert_eq!(a.read_register(reg::LVT_TIMER, 0), LVT_MASKED);
        assert_eq!(a.read_register(reg::LVT_LINT0, 0), 0x700);
        assert_eq!(a.read_register(reg::LVT_LINT1, 0), LVT_MASKED);
        assert_eq!(a.apic_base(), 0xfee0_0900);
        assert_eq!(a.mmio_base(), Some(0xfee0_0000));
        assert!(!a.software_enabled());
        assert!(a.accepts_extint());
    }

    #[test]
    fn divide_configuration_encodings() {
        let want = [
            (0x0, 1),
            (0x1, 2),
            (0x2, 3),
            (0x3, 4),
            (0x8, 5),
            (0x9, 6),
            (0xa, 7),
            (0xb, 0),
        ];
        for (dcr, shift) in want {
            assert_eq!(Timer::shift_of(dcr), shift, "dcr {dcr:#x}");
        }
    }

    #[test]
    fn one_shot_counts_down_and_fires_once() {
        let mut a = enabled();
        start_timer(&mut a, APIC_TIMER_ONESHOT, DIV16, 100, 1000);
        assert_eq!(a.timer_current_count(1000), 100);
        assert_eq!(a.timer_current_count(1000 + 16 * 10), 90);
        assert_eq!(a.timer_current_count(1000 + 16 * 10 + 15), 90);
        assert_eq!(a.next_timer_event(), Some(1000 + 1600));
        a.advance(1000 + 1599);
        assert!(!a.irr(TIMER_VECTOR));
        a.advance(1000 + 1600);
        assert!(a.irr(TIMER_VECTOR));
        assert_eq!(a.timer_current_count(1000 + 1600), 0);
        assert_eq!(a.next_timer_event(), None);
        assert_eq!(a.acknowledge(), Some(TIMER_VECTOR));
        a.write_register(reg::EOI, 0, 5000);
        a.advance(1_000_000);
        assert!(!a.irr(TIMER_VECTOR));
        assert_eq!(a.read_register(reg::TIMER_CURRENT_COUNT, 1_000_000), 0);
    }

    #[test]
    fn periodic_reloads_from_the_initial_count() {
        let mut a = enabled();
        start_timer(&mut a, APIC_TIMER_PERIODIC, DIV1, 500, 0);
        assert_eq!(a.next_timer_event(), Some(500));
        a.advance(500);
        assert!(a.irr(TIMER_VECTOR));
        assert_eq!(a.timer_current_count(500), 500);
        assert_eq!(a.timer_current_count(505), 495);
        assert_eq!(a.next_timer_event(), Some(1000));
        // Several periods pass unobserved: one IRR bit, and the phase is kept.
        a.advance(2730);
        assert_eq!(a.next_timer_event(), Some(3000));
        assert_eq!(a.timer_current_count(2730), 270);
    }

    #[test]
    fn initial_count_zero_stops_and_rewrite_restarts() {
        let mut a = enabled();
        start_timer(&mut a, APIC_TIMER_PERIODIC, DIV1, 100, 0);
        a.write_register(reg::TIMER_INITIAL_COUNT, 0, 50);
        assert_eq!(a.next_timer_event(), None);
        assert_eq!(a.timer_current_count(60), 0);
        a.write_register(reg::TIMER_INITIAL_COUNT, 10, 70);
        assert_eq!(a.next_timer_event(), Some(80));
    }

    #[test]
    fn divide_change_keeps_the_current_count() {
        let mut a = enabled();
        start_timer(&mut a, APIC_TIMER_ONESHOT, DIV1, 1000, 0);
        a.write_register(reg::TIMER_DIVIDE_CONFIG, DIV16, 400);
        assert_eq!(a.timer_current_count(400), 600);
        assert_eq!(a.next_timer_event(), Some(400 + 600 * 16));
    }

    #[test]
    fn mode_change_does_not_restart_an_expired_one_shot() {
        let mut a = enabled();
        start_timer(&mut a, APIC_TIMER_ONESHOT, DIV1, 10, 0);
        a.advance(20);
        a.write_register(
            reg::LVT_TIMER,
            APIC_TIMER_PERIODIC | TIMER_VECTOR as u32,
            30,
        );
        assert_eq!(a.next_timer_event(), None);
    }

    #[test]
    fn masked_timer_counts_but_does_not_fire() {
        let mut a = enabled();
        start_timer(&mut a, APIC_TIMER_ONESHOT | LVT_MASKED, DIV1, 100, 0);
        assert_eq!(a.next_timer_event(), None);
        assert_eq!(a.timer_current_count(40), 60);
        // Unmasking after the expiry must not deliver the expiry that was masked.
        a.write_register(reg::LVT_TIMER, TIMER_VECTOR as u32, 200);
        assert!(!a.irr(TIMER_VECTOR));
        assert_eq!(a.next_timer_event(), None);
    }

    #[test]
    fn tsc_deadline_mode_bit_is_reserved() {
        let mut a = enabled();
        a.write_register(reg::LVT_TIMER, APIC_TIMER_TSC_DEADLINE | 0x40, 0);
        assert_eq!(a.read_register(reg::LVT_TIMER, 0), 0x40);
    }

    #[test]
    fn tpr_blocks_lower_or_equal_priority_classes() {
        let mut a = enabled();
        a.raise_vector(0x45, false);
        a.set_tpr(0x50);
        assert_eq!(a.pending_interrupt(), None);
        a.set_tpr(0x40);
        assert_eq!(a.pending_interrupt(), None, "same class is blocked");
        a.set_tpr(0x3f);
        assert_eq!(a.pending_interrupt(), Some(0x45));
        assert_eq!(a.ppr(), 0x3f);
    }

    #[test]
    fn isr_raises_ppr_and_eoi_clears_the_highest() {
        let mut a = enabled();
        a.raise_vector(0x61, false);
        assert_eq!(a.acknowledge(), Some(0x61));
        assert_eq!(a.ppr(), 0x60);
        a.raise_vector(0x51, false);
        a.raise_vector(0x65, false);
        assert_eq!(
            a.pending_interrupt(),
            None,
            "class 5 and 6 wait for class 6"
        );
        a.raise_vector(0x81, false);
        assert_eq!(a.acknowledge(), Some(0x81));
        assert!(a.isr(0x81) && a.isr(0x61));
        a.write_register(reg::EOI, 0, 0);
        assert!(!a.isr(0x81) && a.isr(0x61));
        a.write_register(reg::EOI, 0, 0);
        assert_eq!(a.acknowledge(), Some(0x65));
        a.write_register(reg::EOI, 0, 0);
        assert_eq!(a.acknowledge(), Some(0x51));
        a.write_register(reg::EOI, 0, 0);
        a.write_register(reg::EOI, 0, 0); // an EOI with nothing in service is harmless
        assert_eq!(a.ppr(), 0);
    }

    #[test]
    fn tmr_follows_the_trigger_mode_at_acceptance_and_survives_the_eoi() {
        // SDM 11.8.4: the TMR bit is set (level) or cleared (edge) when the interrupt is
        // accepted into the IRR; the EOI of a level-triggered vector is broadcast and
        // leaves the bit set (kvm-unit-tests ioapic: "TMR for ioapic level/edge
        // interrupts (expected true)").
        let mut a = enabled();
        let tmr_word = |a: &mut Lapic| a.read_register(reg::TMR + 0x30, 0) & (1 << 0x19);
        a.raise_vector(0x79, true);
        assert!(a.tmr(0x79));
        assert_eq!(a.acknowledge(), Some(0x79));
        assert_ne!(tmr_word(&mut a), 0, "set while in service");
        a.write_register(reg::EOI, 0, 0);
        assert_eq!(a.take_eoi_broadcast(), Some(0x79));
        assert!(a.tmr(0x79), "the EOI leaves the TMR bit set");
        assert_ne!(tmr_word(&mut a), 0);
        // The next acceptance is edge-triggered: the bit clears, and its EOI is local.
        a.raise_vector(0x79, false);
        assert!(!a.tmr(0x79));
        assert_eq!(a.acknowledge(), Some(0x79));
        a.write_register(reg::EOI, 0, 0);
        assert_eq!(a.take_eoi_broadcast(), None);
        assert_eq!(tmr_word(&mut a), 0);
    }

    #[test]
    fn global_disable_restores_the_initial_id_and_init_keeps_the_written_one() {
        let mut a = Lapic::new(1);
        a.write_register(reg::ID, 2 << 24, 0);
        a.reset(); // INIT (SDM 11.4.7.3)
        assert_eq!(a.read_register(reg::ID, 0), 2 << 24, "INIT keeps the ID");
        let base = a.apic_base();
        a.set_apic_base(base & !APIC_BASE_ENABLE);
        a.set_apic_base(base);
        assert_eq!(
            a.read_register(reg::ID, 0),
            1 << 24,
            "power-up state: initial ID"
        );
    }

    #[test]
    fn irr_isr_registers_read_as_256_bit_maps() {
        let mut a = enabled();
        a.raise_vector(0x41, false);
        a.raise_vector(0xec, true);
        assert_eq!(a.read_register(reg::IRR + 0x20, 0), 1 << 1);
        assert_eq!(a.read_register(reg::IRR + 0x70, 0), 1 << 12);
        assert_eq!(a.read_register(reg::TMR + 0x70, 0), 1 << 12);
        a.acknowledge();
        assert_eq!(a.read_register(reg::ISR + 0x70, 0), 1 << 12);
    }

    #[test]
    fn self_ipis_fixed_and_nmi() {
        let mut a = enabled();
        send_self(&mut a, (ICR_SHORTHAND_SELF << ICR_SHORTHAND_SHIFT) | 0x41);
        assert!(a.irr(0x41));
        assert_eq!(a.read_register(reg::ICR_LOW, 0) & ICR_DELIVERY_STATUS, 0);
        // NMI to our own physical ID.
        a.write_register(reg::ICR_HIGH, 0, 0);
        send_self(&mut a, delivery_mode::NMI << 8);
        assert!(a.take_nmi());
        assert!(!a.take_nmi());
        // Someone else's ID, and all-excluding-self: nothing arrives.
        a.write_register(reg::ICR_HIGH, 5 << 24, 0);
        send_self(&mut a, 0x42);
        send_self(
            &mut a,
            (ICR_SHORTHAND_ALL_EXCLUDING_SELF << ICR_SHORTHAND_SHIFT) | 0x43,
        );
        assert!(!a.irr(0x42) && !a.irr(0x43));
        // Broadcast and logical flat destination.
        a.write_register(reg::ICR_HIGH, 0xff << 24, 0);
        send_self(&mut a, 0x44);
        a.write_register(reg::LDR, 0x02 << 24, 0);
        a.write_register(reg::ICR_HIGH, 0x03 << 24, 0);
        send_self(&mut a, ICR_DEST_LOGICAL | 0x45);
        assert!(a.irr(0x44) && a.irr(0x45));
    }

    #[test]
    fn illegal_vectors_are_errors() {
        let mut a = enabled();
        a.write_register(reg::LVT_ERROR, 0xfe, 0);
        send_self(&mut a, (ICR_SHORTHAND_SELF << ICR_SHORTHAND_SHIFT) | 0x05);
        assert!(!a.irr(0x05));
        assert!(a.irr(0xfe), "LVT error fires");
        assert_eq!(
            a.read_register(reg::ESR, 0),
            0,
            "not latched before an ESR write"
        );
        a.write_register(reg::ESR, 0, 0);
        assert_eq!(
            a.read_register(reg::ESR, 0),
            ESR_SEND_ILLEGAL_VECTOR | ESR_RECEIVED_ILLEGAL_VECTOR
        );
        a.write_register(reg::ESR, 0, 0);
        assert_eq!(a.read_register(reg::ESR, 0), 0);
        a.read_register(0x3f0, 0);
        a.write_register(reg::ESR, 0, 0);
        assert_eq!(a.read_register(reg::ESR, 0), ESR_ILLEGAL_REGISTER_ADDRESS);
    }

    #[test]
    fn software_disable_masks_the_lvt() {
        let mut a = enabled();
        a.write_register(reg::LVT_TIMER, 0x40, 0);
        a.write_register(reg::SVR, 0xff, 0);
        assert_eq!(a.read_register(reg::LVT_TIMER, 0), LVT_MASKED | 0x40);
        a.write_register(reg::LVT_TIMER, 0x40, 0);
        assert_eq!(a.read_register(reg::LVT_TIMER, 0), LVT_MASKED | 0x40);
        a.raise_vector(0x40, false);
        assert!(!a.irr(0x40), "no fixed interrupts while software disabled");
    }

    #[test]
    fn global_disable_stops_decoding_and_resets() {
        let mut a = enabled();
        a.set_tpr(0x20);
        a.set_apic_base(0xfee0_0000);
        assert_eq!(a.mmio_base(), None);
        assert!(a.accepts_extint());
        a.set_apic_base(0xfed0_0800);
        assert_eq!(a.mmio_base(), Some(0xfed0_0000));
        assert_eq!(a.apic_base(), 0xfed0_0900, "the BSP flag is read-only");
        assert_eq!(a.tpr(), 0);
        assert!(!a.software_enabled());
    }

    #[test]
    fn lint0_fixed_mode_raises_on_the_rising_edge() {
        let mut a = enabled();
        a.write_register(reg::LVT_LINT0, 0x33, 0);
        assert!(!a.accepts_extint());
        a.set_lint0(true);
        assert!(a.irr(0x33));
        a.acknowledge();
        a.set_lint0(true);
        assert!(!a.irr(0x33), "a held edge-triggered input raises once");
        a.write_register(reg::LVT_LINT0, delivery_mode::NMI << 8, 0);
        a.set_lint0(false);
        a.set_lint0(true);
        assert!(a.nmi_pending());
    }

    #[test]
    fn timer_wake_depends_on_mask_and_priority() {
        let mut a = enabled();
        start_timer(&mut a, APIC_TIMER_PERIODIC, DIV1, 100, 0);
        assert!(a.timer_can_wake());
        a.set_tpr(0xe0);
        assert!(!a.timer_can_wake());
        a.set_tpr(0);
        a.write_register(reg::LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32, 0);
        assert!(!a.timer_can_wake());
    }

    #[test]
    fn narrow_and_wide_accesses() {
        let mut a = enabled();
        a.mmio_write(reg::TPR as u64, 1, 0x30, 0);
        assert_eq!(a.tpr(), 0, "byte writes are ignored");
        a.mmio_write(reg::TPR as u64, 8, 0xffff_ffff_0000_0030, 0);
        assert_eq!(a.mmio_read(reg::TPR as u64, 4, 0), 0x30);
        assert_eq!(a.mmio_read(reg::TPR as u64, 2, 0), 0);
        assert_eq!(a.mmio_read(reg::TPR as u64 + 4, 8, 0), 0x30_0000_0030);
    }

    #[test]
    fn no_guest_value_panics() {
        let values = [0u64, 1, 0x7f, 0xff, 0x8000_0000, u32::MAX as u64, u64::MAX];
        let mut a = enabled();
        let mut now = 0u64;
        for off in (0..APIC_MMIO_SIZE).step_by(4) {
            for &v in &values {
                for size in [1u8, 2, 4, 8] {
                    a.mmio_write(off, size, v, now);
                    a.mmio_read(off, size, now);
                    now = now.wrapping_add(v >> 40).wrapping_add(7);
                    a.advance(now);
                    let _ = a.next_timer_event();
                    let _ = a.acknowledge();
                }
            }
        }
        // The far end of time.
        start_timer(&mut a, APIC_TIMER_PERIODIC, 0xa, u32::MAX, u64::MAX - 10);
        a.advance(u64::MAX);
        let _ = a.timer_current_count(u64::MAX);
        assert!(a.next_timer_event().is_some());
    }

    /// `n` enabled APICs with IDs 0..n.
    fn cpus(n: u8) -> Vec<Lapic> {
        (0..n)
            .map(|i| {
                let mut a = Lapic::new(i);
                a.write_register(reg::SVR, SVR_APIC_ENABLED | 0xff, 0);
                a
            })
            .collect()
    }

    /// APIC `src` writes ICR high then low; the IPI goes where the bus would route it.
    fn send(apics: &mut [Lapic], src: usize, high: u32, low: u32) {
        apics[src].write_register(reg::ICR_HIGH, high, 0);
        apics[src].write_register(reg::ICR_LOW, low, 0);
        let ipi = apics[src].take_ipi().expect("an IPI");
        assert_eq!(apics[src].take_ipi(), None, "taken once");
        let mut refs: Vec<&mut Lapic> = apics.iter_mut().collect();
        deliver_ipi(&mut refs, src, &ipi);
    }

    fn who_has(apics: &[Lapic], v: u8) -> Vec<u8> {
        apics.iter().filter(|a| a.irr(v)).map(|a| a.id()).collect()
    }

    #[test]
    fn icr_physical_destinations_and_broadcast() {
        let mut a = cpus(4);
        send(&mut a, 0, 2 << 24, 0x50);
        assert_eq!(who_has(&a, 0x50), [2]);
        send(&mut a, 3, 0, 0x51);
        assert_eq!(who_has(&a, 0x51), [0]);
        // An ID nobody has: nothing; 0xff: everyone, the sender included.
        send(&mut a, 1, 9 << 24, 0x52);
        assert!(who_has(&a, 0x52).is_empty());
        send(&mut a, 1, 0xff << 24, 0x53);
        assert_eq!(who_has(&a, 0x53), [0, 1, 2, 3]);
        // A software-disabled APIC accepts no fixed interrupt.
        a[2].write_register(reg::SVR, 0xff, 0);
        send(&mut a, 0, 0xff << 24, 0x54);
        assert_eq!(who_has(&a, 0x54), [0, 1, 3]);
    }

    #[test]
    fn icr_shorthands() {
        let sh = |s: u32| s << ICR_SHORTHAND_SHIFT;
        let mut a = cpus(4);
        // The destination field is ignored with a shorthand.
        send(&mut a, 1, 3 << 24, sh(ICR_SHORTHAND_SELF) | 0x60);
        assert_eq!(who_has(&a, 0x60), [1]);
        send(&mut a, 2, 0, sh(ICR_SHORTHAND_ALL_INCLUDING_SELF) | 0x61);
        assert_eq!(who_has(&a, 0x61), [0, 1, 2, 3]);
        send(&mut a, 2, 0, sh(ICR_SHORTHAND_ALL_EXCLUDING_SELF) | 0x62);
        assert_eq!(who_has(&a, 0x62), [0, 1, 3]);
        send(
            &mut a,
            0,
            0,
            sh(ICR_SHORTHAND_ALL_EXCLUDING_SELF) | (delivery_mode::NMI << 8),
        );
        let nmis: Vec<bool> = a.iter().map(|x| x.nmi_pending()).collect();
        assert_eq!(nmis, [false, true, true, true]);
    }

    #[test]
    fn icr_logical_flat_and_cluster() {
        let mut a = cpus(4);
        // Flat model: LDR = 1 << id (what Linux's flat APIC driver programs).
        for (i, x) in a.iter_mut().enumerate() {
            x.write_register(reg::LDR, (1 << i) << 24, 0);
        }
        send(&mut a, 0, 0b1010 << 24, ICR_DEST_LOGICAL | 0x70);
        assert_eq!(who_has(&a, 0x70), [1, 3]);
        // Lowest priority among logical destinations: the lowest APIC ID only.
        send(
            &mut a,
            0,
            0b1100 << 24,
            ICR_DEST_LOGICAL | (delivery_mode::LOWEST_PRIORITY << 8) | 0x71,
        );
        assert_eq!(who_has(&a, 0x71), [2]);
        // Cluster model: cluster in LDR[31:28], a bit per APIC in LDR[27:24].
        for (i, x) in a.iter_mut().enumerate() {
            x.write_register(reg::DFR, 0x0fff_ffff, 0);
            let cluster = (i as u32 / 2) + 1;
            x.write_register(reg::LDR, ((cluster << 4) | (1 << (i % 2))) << 24, 0);
        }
        send(&mut a, 0, 0x23 << 24, ICR_DEST_LOGICAL | 0x72);
        assert_eq!(who_has(&a, 0x72), [2, 3]);
        send(&mut a, 0, 0x11 << 24, ICR_DEST_LOGICAL | 0x73);
        assert_eq!(who_has(&a, 0x73), [0]);
    }

    #[test]
    fn init_and_startup_ipis_are_latched_for_the_machine() {
        let mut a = cpus(3);
        // INIT assert (level, edge as Linux sends it), then the de-assert, which does
        // nothing, then two start-up IPIs with vector 0x9a.
        let init = delivery_mode::INIT << 8;
        send(
            &mut a,
            0,
            1 << 24,
            init | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL,
        );
        assert!(a[1].init_or_sipi_pending() && !a[2].init_or_sipi_pending());
        assert!(a[1].take_init());
        send(&mut a, 0, 1 << 24, init | ICR_TRIGGER_LEVEL);
        assert!(!a[1].take_init(), "the de-assert is not an INIT");
        send(&mut a, 0, 1 << 24, (delivery_mode::STARTUP << 8) | 0x9a);
        send(&mut a, 0, 1 << 24, (delivery_mode::STARTUP << 8) | 0x9a);
        assert_eq!(a[1].take_sipi(), Some(0x9a));
        assert_eq!(a[1].take_sipi(), None);
        assert!(!a[0].init_or_sipi_pending() && !a[2].init_or_sipi_pending());
        // An INIT reaches a software-disabled APIC (an AP before it is set up).
        let mut b = vec![Lapic::new(0), Lapic::new(1)];
        send(&mut b, 0, 1 << 24, init | ICR_LEVEL_ASSERT);
        assert!(b[1].take_init());
    }
}
