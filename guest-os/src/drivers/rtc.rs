//! The CMOS real-time clock (MC146818, ports 0x70/0x71; Linux's `mc146818_get_time`): read
//! once at boot to give the kernel its wall clock, as Linux's `read_persistent_clock64`.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::port::{inb, outb};

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;
const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_CENTURY: u8 = 0x32;
/// Status A: an update is in progress (the time registers may be inconsistent).
const A_UIP: u8 = 0x80;
/// Status B: binary (not BCD) values; 24-hour mode.
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
/// Status B's PM bit in the hours register (12-hour mode).
const HOURS_PM: u8 = 0x80;
/// Tries to read a stable time before giving up (an update lasts ~2 ms).
const TRIES: usize = 1000;

/// Seconds since the epoch at boot (0 if no clock answered).
static BOOT_SECONDS: AtomicU64 = AtomicU64::new(0);

fn read(reg: u8) -> u8 {
    // SAFETY: the CMOS index and data ports of the PC.
    unsafe {
        outb(INDEX, reg);
        inb(DATA)
    }
}

fn from_bcd(v: u8) -> u32 {
    (v & 0x0f) as u32 + ((v >> 4) as u32) * 10
}

/// Days from 1970-01-01 to the given date (the proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Read the clock and remember the boot time. A port that floats (0xff everywhere)
/// leaves the wall clock at the epoch.
pub fn init() {
    let mut regs = [0u8; 7];
    for _ in 0..TRIES {
        if read(REG_A) & A_UIP != 0 {
            continue;
        }
        let a = [
            REG_SECONDS,
            REG_MINUTES,
            REG_HOURS,
            REG_DAY,
            REG_MONTH,
            REG_YEAR,
            REG_CENTURY,
        ]
        .map(read);
        let b = [
            REG_SECONDS,
            REG_MINUTES,
            REG_HOURS,
            REG_DAY,
            REG_MONTH,
            REG_YEAR,
            REG_CENTURY,
        ]
        .map(read);
        if a == b {
            regs = a;
            break;
        }
    }
    let status_b = read(REG_B);
    if regs == [0xff; 7] || status_b == 0xff {
        return;
    }
    let conv = |v: u8| {
        if status_b & B_BINARY != 0 {
            v as u32
        } else {
            from_bcd(v)
        }
    };
    let mut hours = conv(regs[2] & !HOURS_PM);
    if status_b & B_24H == 0 && regs[2] & HOURS_PM != 0 {
        hours = (hours % 12) + 12;
    }
    let century = if regs[6] == 0 { 20 } else { conv(regs[6]) };
    let year = century * 100 + conv(regs[5]);
    let (month, day) = (conv(regs[4]), conv(regs[3]));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return;
    }
    let days = days_from_civil(year as i64, month, day);
    let secs = days * 86_400 + (hours * 3600 + conv(regs[1]) * 60 + conv(regs[0])) as i64;
    BOOT_SECONDS.store(secs.max(0) as u64, Ordering::Relaxed);
}

/// Seconds since the epoch when the kernel booted.
pub fn boot_seconds() -> u64 {
    BOOT_SECONDS.load(Ordering::Relaxed)
}
