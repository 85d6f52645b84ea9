//! The MC146818 real-time clock and CMOS RAM of QEMU's `pc` (ports 0x70/0x71): the guest
//! kernel reads the date at boot to set its wall clock.
//!
//! Deterministic by design: the clock starts at [`RTC_BASE`] (2026-01-01 00:00:00 UTC) at
//! instruction 0 and advances with virtual time (one instruction = one nanosecond), as
//! QEMU's `-rtc base=...,clock=vm` advances with its virtual clock (`--qemu` passes that).
//! Time registers are BCD in 24-hour mode (status B = 0x02) as QEMU's default, or binary
//! and 12-hour if the guest sets status B so; the century is in CMOS byte 0x32. Status A's
//! update-in-progress bit is set during the last 244 µs of each second (QEMU's
//! `UIP_HOLD_LENGTH`), so a guest waiting for an update edge sees one. With status B's SET
//! bit, writes to the time registers set the clock. The periodic, alarm and update
//! interrupts (IRQ 8) are not raised: register C reads 0. Other CMOS bytes are plain RAM
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

fn from_bcd(v: u8) -> u32 {
    u32::from(v >> 4) * 10 + u32::from(v & 0xf)
}

/// Status A bit 7: update in progress.
const REG_A_UIP: u8 = 0x80;
/// Status B bits: SET (updates stopped, time writable), DM (binary), 24-hour mode.
const REG_B_SET: u8 = 0x80;
const REG_B_DM_BINARY: u8 = 0x04;
const REG_B_24H: u8 = 0x02;
/// The hours register's PM flag in 12-hour mode.
const HOURS_PM: u8 = 0x80;
/// How long before each second's update UIP reads 1 (8 cycles of the 32.768 kHz clock).
const UIP_HOLD_NS: u64 = 8 * NS_PER_SEC / 32768;
use super::NS_PER_SEC;
const SECS_PER_DAY: i64 = 86400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date of a day number: (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub struct Rtc {
    index: u8,
    cmos: [u8; 128],
    /// Seconds since the epoch the clock showed at instruction 0.
    base_secs: i64,
}

/// CMOS byte QEMU's `pc` sets to the number of CPUs minus one (hw/i386/pc.c, where
/// SeaBIOS reads it as its `CMOS_BIOS_SMP_COUNT`).
pub const CMOS_SMP_COUNT: usize = 0x5f;

impl Rtc {
    /// The RTC/CMOS of a machine with `cpus` CPUs.
    pub fn with_cpus(cpus: usize) -> Self {
        let mut r = Self::default();
        r.cmos[CMOS_SMP_COUNT] = cpus.saturating_sub(1) as u8;
        r
    }
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
        let base_secs =
            days_from_civil(i64::from(y), mo, d) * SECS_PER_DAY + i64::from(h * 3600 + mi * 60 + s);
        Rtc {
            index: 0,
            cmos,
            base_secs,
        }
    }
}

impl Rtc {
    /// The clock's seconds since the epoch at virtual time `now`.
    fn secs(&self, now: u64) -> i64 {
        self.base_secs + (now / NS_PER_SEC) as i64
    }

    fn binary(&self) -> bool {
        self.cmos[REG_B as usize] & REG_B_DM_BINARY != 0
    }

    fn encode(&self, v: u32) -> u8 {
        if self.binary() {
            v as u8
        } else {
            bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u32 {
        if self.binary() {
            u32::from(v)
        } else {
            from_bcd(v)
        }
    }

    /// A time or date register at `now`.
    fn time_register(&self, reg: u8, now: u64) -> u8 {
        let t = self.secs(now);
        let (y, mo, d) = civil_from_days(t.div_euclid(SECS_PER_DAY));
        let sod = t.rem_euclid(SECS_PER_DAY) as u32;
        match reg {
            REG_SECONDS => self.encode(sod % 60),
            REG_MINUTES => self.encode(sod / 60 % 60),
            REG_HOURS => {
                let h = sod / 3600;
                if self.cmos[REG_B as usize] & REG_B_24H != 0 {
                    self.encode(h)
                } else {
                    let pm = if h >= 12 { HOURS_PM } else { 0 };
                    let h12 = if h.is_multiple_of(12) { 12 } else { h % 12 };
                    self.encode(h12) | pm
                }
            }
            // Sunday = 1; 1970-01-01 was a Thursday (5).
            REG_WEEKDAY => ((t.div_euclid(SECS_PER_DAY) + 4).rem_euclid(7) + 1) as u8,
            REG_DAY => self.encode(d),
            REG_MONTH => self.encode(mo),
            REG_YEAR => self.encode(y.rem_euclid(100) as u32),
            _ => self.encode((y / 100) as u32),
        }
    }

    /// A write to a time register (with SET): move the clock so it reads the new value.
    fn set_time_register(&mut self, reg: u8, v: u8, now: u64) {
        let t = self.secs(now);
        let (mut y, mut mo, mut d) = civil_from_days(t.div_euclid(SECS_PER_DAY));
        let sod = t.rem_euclid(SECS_PER_DAY) as u32;
        let (mut h, mut mi, mut s) = (sod / 3600, sod / 60 % 60, sod % 60);
        match reg {
            REG_SECONDS => s = self.decode(v) % 60,
            REG_MINUTES => mi = self.decode(v) % 60,
            REG_HOURS => {
                if self.cmos[REG_B as usize] & REG_B_24H != 0 {
                    h = self.decode(v) % 24;
                } else {
                    let h12 = self.decode(v & !HOURS_PM) % 12;
                    h = h12 + if v & HOURS_PM != 0 { 12 } else { 0 };
                }
            }
            REG_DAY => d = self.decode(v).clamp(1, 31),
            REG_MONTH => mo = self.decode(v).clamp(1, 12),
            REG_YEAR => y = y - y.rem_euclid(100) + i64::from(self.decode(v) % 100),
            REG_CENTURY => y = i64::from(self.decode(v) % 100) * 100 + y.rem_euclid(100),
            _ => return,
        }
        let new = days_from_civil(y, mo, d) * SECS_PER_DAY + i64::from(h * 3600 + mi * 60 + s);
        self.base_secs += new - t;
    }

    fn is_time_register(reg: u8) -> bool {
        matches!(
            reg,
            REG_SECONDS
                | REG_MINUTES
                | REG_HOURS
                | REG_WEEKDAY
                | REG_DAY
                | REG_MONTH
                | REG_YEAR
                | REG_CENTURY
        )
    }
}

impl PortDevice for Rtc {
    fn name(&self) -> &'static str {
        "mc146818rtc"
    }

    fn read(&mut self, offset: u16, size: u8) -> u32 {
        self.read_at(offset, size, 0)
    }

    fn write(&mut self, offset: u16, size: u8, val: u32) -> IoAction {
        self.write_at(offset, size, val, 0)
    }

    fn read_at(&mut self, offset: u16, _size: u8, now: u64) -> u32 {
        if offset == INDEX_OFFSET {
            // The index register is write-only; the bus floats.
            return 0xff;
        }
        let reg = self.index;
        if Self::is_time_register(reg) {
            return self.time_register(reg, now) as u32;
        }
        if reg == REG_A {
            let a = self.cmos[REG_A as usize] & !REG_A_UIP;
            let set = self.cmos[REG_B as usize] & REG_B_SET != 0;
            let in_window = now % NS_PER_SEC >= NS_PER_SEC - UIP_HOLD_NS;
            return u32::from(if !set && in_window { a | REG_A_UIP } else { a });
        }
        let v = self.cmos[self.index as usize];
        if self.index == REG_C {
            // Reading status C clears the interrupt flags.
            self.cmos[REG_C as usize] = 0;
        }
        v as u32
    }

    fn write_at(&mut self, offset: u16, _size: u8, val: u32, now: u64) -> IoAction {
        if offset == INDEX_OFFSET {
            self.index = val as u8 & INDEX_MASK;
        } else if Self::is_time_register(self.index) {
            // The weekday follows from the date here; it cannot be set on its own.
            self.set_time_register(self.index, val as u8, now);
        } else if self.index == REG_A {
            self.cmos[REG_A as usize] = val as u8 & !REG_A_UIP;
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
        assert_eq!(read(&mut r, REG_WEEKDAY), BASE_WEEKDAY);
    }

    fn read_at(r: &mut Rtc, reg: u8, now: u64) -> u8 {
        r.write_at(INDEX_OFFSET, 1, reg as u32, now);
        r.read_at(INDEX_OFFSET + 1, 1, now) as u8
    }

    #[test]
    fn advances_with_virtual_time_and_shows_uip() {
        let mut r = Rtc::default();
        assert_eq!(read_at(&mut r, REG_SECONDS, 999_999_999), 0x00);
        assert_eq!(read_at(&mut r, REG_SECONDS, 1_000_000_000), 0x01);
        // A day and a bit later: 2026-01-02 00:01:05, a Friday.
        let t = (86400 + 65) * NS_PER_SEC;
        assert_eq!(read_at(&mut r, REG_DAY, t), 0x02);
        assert_eq!(read_at(&mut r, REG_MINUTES, t), 0x01);
        assert_eq!(read_at(&mut r, REG_WEEKDAY, t), 6);
        assert_eq!(read_at(&mut r, REG_A, 500_000_000) & REG_A_UIP, 0);
        assert_eq!(read_at(&mut r, REG_A, 999_900_000) & REG_A_UIP, REG_A_UIP);
    }

    #[test]
    fn setting_the_time() {
        let mut r = Rtc::default();
        r.write_at(INDEX_OFFSET, 1, REG_B as u32, 0);
        r.write_at(INDEX_OFFSET + 1, 1, (REG_B_SET | REG_B_24H) as u32, 0);
        r.write_at(INDEX_OFFSET, 1, REG_HOURS as u32, 0);
        r.write_at(INDEX_OFFSET + 1, 1, 0x13, 0);
        r.write_at(INDEX_OFFSET, 1, REG_YEAR as u32, 0);
        r.write_at(INDEX_OFFSET + 1, 1, 0x30, 0);
        assert_eq!(read_at(&mut r, REG_HOURS, 0), 0x13);
        assert_eq!(read_at(&mut r, REG_YEAR, 0), 0x30);
        assert_eq!(read_at(&mut r, REG_CENTURY, 0), 0x20);
        // Binary 12-hour mode: 1 PM.
        r.write_at(INDEX_OFFSET, 1, REG_B as u32, 0);
        r.write_at(INDEX_OFFSET + 1, 1, REG_B_DM_BINARY as u32, 0);
        assert_eq!(read_at(&mut r, REG_HOURS, 0), HOURS_PM | 1);
    }
}
