//! The MC146818 real-time clock and CMOS RAM of QEMU's `pc` (ports 0x70/0x71): the guest
//! kernel reads the date at boot to set its wall clock.
//!
//! Deterministic by design: the clock reads [`RTC_BASE`] (2026-01-01 00:00:00 UTC) and does
//! not advance; QEMU is started with `-rtc base=` the same date (`--qemu`), so both machines
//! give the kernel the same date. Time registers are BCD in 24-hour mode (status B = 0x02),
//! as QEMU's default; the century is in CMOS byte 0x32. Other CMOS bytes are plain RAM
//! (QEMU's firmware bytes, such as the memory size, are not modelled: no guest reads them).

use super::{IoAction, PortDevice};

/// Index and data ports.
pub const RTC_PORT: u16 = 0x70;
pub const RTC_PORTS: u16 = 2;
/// The date the clock shows, as QEMU's `-rtc base=` spells it.
pub const RTC_BASE: &str = "2026-01-01T00:00:00";
const BASE: (u32, u32, u32, u32, u32, u32) = (2026, 1, 1, 0, 0, 0);
/// 1 January 2026 was a Thursday (day of week 5 with Sunday = 1).
const BASE_WEEKDAY: u8 = 5;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;
/// Status A: the 32.768 kHz divider and 1024 Hz rate QEMU resets to; UIP clear.
const STATUS_A: u8 = 0x26;
/// Status B: 24-hour mode, BCD.
const STATUS_B: u8 = 0x02;
/// Status D: valid RAM and time.
const STATUS_D: u8 = 0x80;
/// The index register's low seven bits select a byte; bit 7 masks NMI.
const INDEX_MASK: u8 = 0x7f;
/// Offsets of the two ports in the range (the port bus passes offsets from RTC_PORT).
const INDEX_OFFSET: u16 = 0;

fn bcd(v: u32) -> u8 {
    (((v / 10) << 4) | (v % 10)) as u8
}

pub struct Rtc {
    index: u8,
    cmos: [u8; 128],
}

impl Default for Rtc {
    fn default() -> Self {
        let mut cmos = [0u8; 128];
        let (y, mo, d, h, mi, s) = BASE;
        cmos[REG_SECONDS as usize] = bcd(s);
        cmos[REG_MINUTES as usize] = bcd(mi);
        cmos[REG_HOURS as usize] = bcd(h);
        cmos[REG_WEEKDAY as usize] = BASE_WEEKDAY;
        cmos[REG_DAY as usize] = bcd(d);
        cmos[REG_MONTH as usize] = bcd(mo);
        cmos[REG_YEAR as usize] = bcd(y % 100);
        cmos[REG_CENTURY as usize] = bcd(y / 100);
        cmos[REG_A as usize] = STATUS_A;
        cmos[REG_B as usize] = STATUS_B;
        cmos[REG_D as usize] = STATUS_D;
        Rtc { index: 0, cmos }
    }
}

impl PortDevice for Rtc {
    fn name(&self) -> &'static str {
        "mc146818rtc"
    }

    fn read(&mut self, offset: u16, _size: u8) -> u32 {
        if offset == INDEX_OFFSET {
            // The index register is write-only; the bus floats.
            return 0xff;
        }
        let v = self.cmos[self.index as usize];
        if self.index == REG_C {
            // Reading status C clears the interrupt flags.
            self.cmos[REG_C as usize] = 0;
        }
        v as u32
    }

    fn write(&mut self, offset: u16, _size: u8, val: u32) -> IoAction {
        if offset == INDEX_OFFSET {
            self.index = val as u8 & INDEX_MASK;
        } else if !matches!(self.index, REG_C | REG_D) {
            self.cmos[self.index as usize] = val as u8;
        }
        IoAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through the port bus, as the CPU reaches it (offsets within the range).
    fn read(r: &mut Rtc, reg: u8) -> u8 {
        r.write(INDEX_OFFSET, 1, reg as u32);
        r.read(INDEX_OFFSET + 1, 1) as u8
    }

    #[test]
    fn reads_the_base_date_in_bcd() {
        let mut r = Rtc::default();
        assert_eq!(read(&mut r, REG_YEAR), 0x26);
        assert_eq!(read(&mut r, REG_CENTURY), 0x20);
        assert_eq!(read(&mut r, REG_MONTH), 0x01);
        assert_eq!(read(&mut r, REG_DAY), 0x01);
        assert_eq!(read(&mut r, REG_HOURS), 0x00);
        assert_eq!(read(&mut r, REG_B), STATUS_B);
        // The NMI-mask bit of the index does not change the register chosen.
        assert_eq!(read(&mut r, 0x80 | REG_YEAR), 0x26);
    }
}
