//! The power-management I/O block of the PIIX4's ACPI function (00:01.3) at 0x600, as
//! QEMU's `pc` has it with ACPI (hw/acpi/core.c, hw/acpi/piix4.c; the FADT in
//! `boot::acpi_tables` describes it):
//!
//! * 0x00 PM1 status (write 1 to clear): TMR_STS is set whenever bit 23 of the PM timer
//!   has changed since it was last cleared;
//! * 0x02 PM1 enable, 0x04 PM1 control (SCI_EN, SLP_TYP, SLP_EN): the values are kept;
//! * 0x08 the PM timer: 24 bits at 3.579545 MHz of virtual time (one instruction is one
//!   nanosecond, as for every vmscope clock).
//!
//! Not modelled: the SCI (no timer-overflow or power-button interrupt is raised) and
//! sleep states: writing SLP_EN is logged and has no effect, where QEMU powers off for
//! S5 and suspends for S3.

use super::{IoAction, PortDevice};

pub const PM_IO_PORTS: u16 = 64;
/// The PM timer's frequency (the ACPI specification's 3.579545 MHz).
pub const PM_TIMER_HZ: u64 = 3_579_545;
use super::NS_PER_SEC;
const TIMER_MASK: u32 = 0x00ff_ffff;
const TIMER_MSB: u32 = 1 << 23;
const PM1_STS: u16 = 0x00;
const PM1_EN: u16 = 0x02;
const PM1_CNT: u16 = 0x04;
const PM_TMR: u16 = 0x08;
const TMR_STS: u16 = 1;
const SLP_EN: u16 = 1 << 13;

#[derive(Default)]
pub struct AcpiPm {
    status: u16,
    enable: u16,
    control: u16,
    /// The timer's bit-23 period number when TMR_STS was last cleared.
    tmr_epoch: u64,
}

/// PM timer ticks at virtual time `now` (ns).
fn ticks(now: u64) -> u64 {
    (now as u128 * PM_TIMER_HZ as u128 / NS_PER_SEC as u128) as u64
}

impl AcpiPm {
    fn status_at(&self, now: u64) -> u16 {
        let flips = ticks(now) / TIMER_MSB as u64;
        self.status | if flips != self.tmr_epoch { TMR_STS } else { 0 }
    }
}

impl PortDevice for AcpiPm {
    fn name(&self) -> &'static str {
        "piix4-pm"
    }
    fn read(&mut self, port: u16, size: u8) -> u32 {
        self.read_at(port, size, 0)
    }
    fn write(&mut self, port: u16, size: u8, val: u32) -> IoAction {
        self.write_at(port, size, val, 0)
    }
    fn read_at(&mut self, port: u16, _size: u8, now: u64) -> u32 {
        match port {
            PM1_STS => self.status_at(now) as u32 | (self.enable as u32) << 16,
            PM1_EN => self.enable as u32,
            PM1_CNT => self.control as u32,
            PM_TMR => ticks(now) as u32 & TIMER_MASK,
            _ => 0,
        }
    }
    fn write_at(&mut self, port: u16, size: u8, val: u32, now: u64) -> IoAction {
        match port {
            PM1_STS => {
                let clear = val as u16;
                if clear & TMR_STS != 0 {
                    self.tmr_epoch = ticks(now) / TIMER_MSB as u64;
                }
                self.status &= !clear;
                if size == 4 {
                    self.enable = (val >> 16) as u16;
                }
            }
            PM1_EN => self.enable = val as u16,
            PM1_CNT => {
                self.control = val as u16 & !SLP_EN;
                if val as u16 & SLP_EN != 0 {
                    log::warn!(
                        "ACPI: sleep state {} requested; vmscope does not model sleep states",
                        (val >> 10) & 7
                    );
                }
            }
            _ => {}
        }
        IoAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_counts_at_3_58_mhz_and_wraps_at_24_bits() {
        let mut d = AcpiPm::default();
        assert_eq!(d.read_at(PM_TMR, 4, 1_000_000_000), 3_579_545);
        // 2^24 ticks is about 4.687 s.
        let wrap_ns = (1u64 << 24) * NS_PER_SEC / PM_TIMER_HZ + 1;
        assert!(d.read_at(PM_TMR, 4, wrap_ns) < 10);
    }

    #[test]
    fn tmr_sts_sets_when_bit_23_flips_and_clears_on_write() {
        let mut d = AcpiPm::default();
        assert_eq!(d.read_at(PM1_STS, 2, 0) & 1, 0);
        let half = (1u64 << 23) * NS_PER_SEC / PM_TIMER_HZ + 1;
        assert_eq!(d.read_at(PM1_STS, 2, half) & 1, 1);
        d.write_at(PM1_STS, 2, 1, half);
        assert_eq!(d.read_at(PM1_STS, 2, half) & 1, 0);
    }
}
