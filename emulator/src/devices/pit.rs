//! The 8254 programmable interval timer (ports 0x40..0x43) and the PC speaker/NMI status
//! port 0x61 that gates and reads channel 2, as QEMU's `pc` machine has them
//! (hw/timer/i8254.c, hw/audio/pcspk.c).
//!
//! # Time
//! The counters run at [`PIT_FREQ`] (1.193182 MHz) of *virtual* time: the bus clock is the
//! instruction count, one instruction = one nanosecond (see `devices::lapic`). A count is
//! never decremented step by step: each channel remembers the icount at which its count was
//! loaded and derives the current count and OUT level from the elapsed ticks, as QEMU
//! does from its virtual clock. The machine asks [`Pit::next_irq_event`] for the icount of
//! channel 0's next OUT transition, and calls [`Pit::advance`] there, so IRQ 0 rises on
//! the same instruction on every run.
//!
//! # Modes
//! All six modes count; the OUT waveforms are QEMU's: mode 0 (interrupt on terminal count)
//! rises at the count and stays high; mode 2 (rate generator) pulses high for one tick
//! every `count` ticks; mode 3 (square wave) is high for the first half of each period;
//! modes 1 and 5 (gate-triggered) restart on a rising gate; modes 4 and 5 pulse once at
//! the count. Only channel 2's gate is wired (port 0x61 bit 0); channels 0 and 1 are
//! always gated on. Counter latch and read-back (count and status) commands, LSB, MSB and
//! LSB-then-MSB access are implemented; BCD counting is recorded in the status but counts
//! in binary, as QEMU.

/// The input clock of the three counters, Hz.
pub const PIT_FREQ: u64 = 1_193_182;
use super::NS_PER_SEC;

/// Channel 0's data port; channels 1 and 2 follow, then the control word port.
pub const PIT_PORT: u16 = 0x40;
pub const PIT_CONTROL: u16 = 0x43;
/// Port 0x61: PC speaker control and channel 2 status (QEMU's pcspk).
pub const SPEAKER_PORT: u16 = 0x61;

/// The ISA IRQ channel 0's OUT drives.
pub const PIT_IRQ: u8 = 0;

/// Access modes of the control word (bits 5:4) and the read/write state machine.
const RW_LATCH: u8 = 0;
const RW_LSB: u8 = 1;
const RW_MSB: u8 = 2;
const RW_WORD0: u8 = 3;
const RW_WORD1: u8 = 4;

/// Control word: the channel field value that selects the read-back command.
const READ_BACK: u8 = 3;
const READ_BACK_NO_COUNT: u8 = 0x20;
const READ_BACK_NO_STATUS: u8 = 0x10;

/// Port 0x61 bits.
const SPK_GATE2: u8 = 0x01;
const SPK_DATA_ON: u8 = 0x02;
const SPK_REFRESH: u8 = 0x10;
const SPK_OUT2: u8 = 0x20;

/// Guard against a loop of transitions when much time passed at once (an event missed):
/// past this many, the channel state jumps to `now`.
const MAX_CATCH_UP: usize = 8;

#[derive(Clone, Debug)]
struct Channel {
    /// The reload value in ticks: 1..=0x10000 (a written 0 means 0x10000).
    count: u32,
    /// The icount at which `count` was loaded (or the gate restarted the count).
    load_time: u64,
    latched_count: u16,
    /// Non-zero while a latched count waits to be read (its RW mode).
    count_latched: u8,
    status_latched: bool,
    status: u8,
    read_state: u8,
    write_state: u8,
    write_latch: u8,
    rw_mode: u8,
    mode: u8,
    bcd: bool,
    gate: bool,
}

impl Channel {
    fn new(gate: bool) -> Self {
        Channel {
            count: 0x10000,
            load_time: 0,
            latched_count: 0,
            count_latched: 0,
            status_latched: false,
            status: 0,
            read_state: RW_LSB,
            write_state: RW_LSB,
            write_latch: 0,
            rw_mode: RW_LSB,
            mode: 0,
            bcd: false,
            gate,
        }
    }

    /// Modes 6 and 7 are modes 2 and 3 (the datasheet's "don't care" bit).
    fn mode(&self) -> u8 {
        if self.mode >= 6 {
            self.mode & 3
        } else {
            self.mode
        }
    }

    /// Ticks elapsed since the count was loaded.
    fn ticks(&self, now: u64) -> u64 {
        let ns = now.saturating_sub(self.load_time) as u128;
        (ns * PIT_FREQ as u128 / NS_PER_SEC as u128) as u64
    }

    /// The first icount at which `ticks` ticks have elapsed since the load.
    fn time_of(&self, ticks: u64) -> u64 {
        let ns = (ticks as u128 * NS_PER_SEC as u128).div_ceil(PIT_FREQ as u128);
        self.load_time
            .saturating_add(ns.min(u64::MAX as u128) as u64)
    }

    fn current_count(&self, now: u64) -> u16 {
        let d = self.ticks(now);
        let c = self.count as u64;
        let v = match self.mode() {
            2 => c - d % c,
            3 => c - (2 * d) % c,
            _ => c.wrapping_sub(d),
        };
        (v & 0xffff) as u16
    }

    fn out(&self, now: u64) -> bool {
        let d = self.ticks(now);
        let c = self.count as u64;
        match self.mode() {
            0 => d >= c,
            1 => d < c,
            2 => d.is_multiple_of(c) && d != 0,
            3 => d % c < c.div_ceil(2),
            _ => d == c,
        }
    }

    /// The icount of the next OUT transition after `now`, if any.
    fn next_transition(&self, now: u64) -> Option<u64> {
        let d = self.ticks(now);
        let c = self.count as u64;
        let next = match self.mode() {
            0 | 1 => (d < c).then_some(c)?,
            2 => {
                let base = d / c * c;
                if d == base && d != 0 {
                    d + 1
                } else {
                    base + c
                }
            }
            3 => {
                let base = d / c * c;
                let half = c.div_ceil(2);
                if d - base < half {
                    base + half
                } else {
                    base + c
                }
            }
            _ => {
                if d < c {
                    c
                } else if d == c {
                    c + 1
                } else {
                    return None;
                }
            }
        };
        Some(self.time_of(next))
    }

    fn load(&mut self, val: u32, now: u64) {
        self.count = if val == 0 { 0x10000 } else { val };
        self.load_time = now;
    }

    fn latch_count(&mut self, now: u64) {
        if self.count_latched == 0 {
            self.latched_count = self.current_count(now);
            self.count_latched = self.rw_mode;
        }
    }

    fn latch_status(&mut self, now: u64) {
        if !self.status_latched {
            self.status = (u8::from(self.out(now)) << 7)
                | (self.rw_mode << 4)
                | (self.mode << 1)
                | u8::from(self.bcd);
            self.status_latched = true;
        }
    }

    fn read(&mut self, now: u64) -> u8 {
        if self.status_latched {
            self.status_latched = false;
            return self.status;
        }
        if self.count_latched != 0 {
            let v = self.latched_count;
            return match self.count_latched {
                RW_LSB => {
                    self.count_latched = 0;
                    v as u8
                }
                RW_MSB => {
                    self.count_latched = 0;
                    (v >> 8) as u8
                }
                _ => {
                    // LSB now, MSB on the next read.
                    self.count_latched = RW_MSB;
                    v as u8
                }
            };
        }
        let c = self.current_count(now);
        match self.read_state {
            RW_MSB => (c >> 8) as u8,
            RW_WORD0 => {
                self.read_state = RW_WORD1;
                c as u8
            }
            RW_WORD1 => {
                self.read_state = RW_WORD0;
                (c >> 8) as u8
            }
            _ => c as u8,
        }
    }

    /// A data port write; true when a new count was loaded.
    fn write(&mut self, v: u8, now: u64) -> bool {
        match self.write_state {
            RW_MSB => self.load(u32::from(v) << 8, now),
            RW_WORD0 => {
                self.write_latch = v;
                self.write_state = RW_WORD1;
                return false;
            }
            RW_WORD1 => {
                self.load(u32::from(self.write_latch) | (u32::from(v) << 8), now);
                self.write_state = RW_WORD0;
            }
            _ => self.load(u32::from(v), now),
        }
        true
    }

    /// The gate input changed: a rising edge restarts modes 1, 2, 3 and 5.
    fn set_gate(&mut self, gate: bool, now: u64) {
        if gate && !self.gate && matches!(self.mode(), 1 | 2 | 3 | 5) {
            self.load_time = now;
        }
        self.gate = gate;
    }
}

/// The three counters and port 0x61.
pub struct Pit {
    channels: [Channel; 3],
    /// Port 0x61 bit 1 (speaker data enable), stored only.
    speaker_data_on: bool,
    /// Port 0x61 bit 4, toggled on every read as QEMU's dummy refresh clock.
    refresh: bool,
    /// The level channel 0's OUT drives on IRQ 0 now.
    irq_level: bool,
    /// The icount of channel 0's next OUT transition.
    irq_next: Option<u64>,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// Power-on state: every channel in mode 0 with count 0x10000 loaded at icount 0, as
    /// QEMU's reset leaves them (the BIOS does not program the PIT for a `-kernel` boot
    /// that vmscope runs without firmware; Linux programs channel 0 itself).
    pub fn new() -> Self {
        Pit {
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            speaker_data_on: false,
            refresh: false,
            irq_level: false,
            irq_next: None,
        }
    }

    /// Whether `port` is the PIT's or port 0x61.
    #[inline]
    pub fn claims(port: u16) -> bool {
        (PIT_PORT..=PIT_CONTROL).contains(&port) || port == SPEAKER_PORT
    }

    /// The icount of IRQ 0's next level change, if channel 0 has one.
    pub fn next_irq_event(&self) -> Option<u64> {
        self.irq_next
    }

    /// The level channel 0 drives on IRQ 0.
    pub fn irq_level(&self) -> bool {
        self.irq_level
    }

    /// Recompute channel 0's OUT and next transition at `now` (after a load or mode
    /// change); returns the new IRQ 0 level.
    fn update_irq(&mut self, now: u64) -> bool {
        let ch = &self.channels[0];
        self.irq_level = ch.out(now);
        self.irq_next = ch.next_transition(now);
        self.irq_level
    }

    /// Follow channel 0 up to `now`: `edge(level)` is called for each OUT change in order
    /// (a rising edge is what the 8259 and the IOAPIC latch).
    pub fn advance(&mut self, now: u64, mut edge: impl FnMut(bool)) {
        let mut n = 0;
        while let Some(t) = self.irq_next {
            if t > now {
                break;
            }
            n += 1;
            let at = if n > MAX_CATCH_UP { now } else { t };
            let before = self.irq_level;
            let level = self.update_irq(at);
            if level != before {
                edge(level);
            }
            if n > MAX_CATCH_UP {
                break;
            }
        }
    }

    /// A port read at `now`.
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        match port {
            SPEAKER_PORT => {
                self.refresh = !self.refresh;
                let ch = &self.channels[2];
                u8::from(ch.gate)
                    | if self.speaker_data_on { SPK_DATA_ON } else { 0 }
                    | if self.refresh { SPK_REFRESH } else { 0 }
                    | if ch.out(now) { SPK_OUT2 } else { 0 }
            }
            // The control word register cannot be read: the bus floats (QEMU reads 0xff).
            PIT_CONTROL => 0xff,
            p => self.channels[(p - PIT_PORT) as usize].read(now),
        }
    }

    /// A port write at `now`; `Some(level)` when IRQ 0's level may have changed.
    pub fn write(&mut self, port: u16, v: u8, now: u64) -> Option<bool> {
        match port {
            SPEAKER_PORT => {
                self.speaker_data_on = v & SPK_DATA_ON != 0;
                self.channels[2].set_gate(v & SPK_GATE2 != 0, now);
                None
            }
            PIT_CONTROL => {
                let sel = v >> 6;
                if sel == READ_BACK {
                    for (i, ch) in self.channels.iter_mut().enumerate() {
                        if v & (2 << i) == 0 {
                            continue;
                        }
                        if v & READ_BACK_NO_COUNT == 0 {
                            ch.latch_count(now);
                        }
                        if v & READ_BACK_NO_STATUS == 0 {
                            ch.latch_status(now);
                        }
                    }
                    return None;
                }
                let ch = &mut self.channels[sel as usize];
                let access = (v >> 4) & 3;
                if access == RW_LATCH {
                    ch.latch_count(now);
                    return None;
                }
                ch.rw_mode = access;
                ch.read_state = access;
                ch.write_state = access;
                ch.mode = (v >> 1) & 7;
                ch.bcd = v & 1 != 0;
                (sel == 0).then(|| self.update_irq(now))
            }
            p => {
                let i = (p - PIT_PORT) as usize;
                let loaded = self.channels[i].write(v, now);
                (loaded && i == 0).then(|| self.update_irq(now))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks to virtual nanoseconds, rounded up (the first icount with that many ticks).
    fn ns(ticks: u64) -> u64 {
        (ticks * NS_PER_SEC).div_ceil(PIT_FREQ)
    }

    #[test]
    fn mode2_periodic_pulses_on_irq0() {
        let mut p = Pit::new();
        // Linux's periodic tick: channel 0, LSB then MSB, mode 2, LATCH = 1193 (HZ=1000).
        assert_eq!(p.write(PIT_CONTROL, 0x34, 0), Some(false));
        p.write(PIT_PORT, (1193 & 0xff) as u8, 100);
        assert_eq!(p.write(PIT_PORT, (1193 >> 8) as u8, 100), Some(false));
        let first = p.next_irq_event().unwrap();
        assert_eq!(first, 100 + ns(1193));
        let mut edges = Vec::new();
        p.advance(first - 1, |l| edges.push(l));
        assert!(edges.is_empty());
        p.advance(first, |l| edges.push(l));
        assert_eq!(edges, [true]);
        let fall = p.next_irq_event().unwrap();
        assert_eq!(fall, 100 + ns(1194));
        p.advance(fall, |l| edges.push(l));
        assert_eq!(edges, [true, false]);
        assert_eq!(p.next_irq_event(), Some(100 + ns(2 * 1193)));
    }

    #[test]
    fn mode0_one_shot_rises_once() {
        let mut p = Pit::new();
        p.write(PIT_CONTROL, 0x30, 0);
        p.write(PIT_PORT, 100, 0);
        p.write(PIT_PORT, 0, 0);
        let t = p.next_irq_event().unwrap();
        let mut edges = Vec::new();
        p.advance(t + 1_000_000, |l| edges.push(l));
        assert_eq!(edges, [true]);
        assert_eq!(p.next_irq_event(), None);
    }

    #[test]
    fn counter_latch_freezes_the_value() {
        let mut p = Pit::new();
        p.write(PIT_CONTROL, 0x34, 0);
        p.write(PIT_PORT, 0, 0);
        p.write(PIT_PORT, 0, 0); // 0x10000
        p.write(PIT_CONTROL, 0x00, ns(16)); // latch channel 0
        let lo = p.read(PIT_PORT, ns(1000));
        let hi = p.read(PIT_PORT, ns(2000));
        assert_eq!(
            u16::from(lo) | (u16::from(hi) << 8),
            0x10000u32.wrapping_sub(16) as u16
        );
        // Unlatched: the live count.
        let lo = p.read(PIT_PORT, ns(1000));
        let hi = p.read(PIT_PORT, ns(1000));
        assert_eq!(
            u16::from(lo) | (u16::from(hi) << 8),
            (0x10000 - 1000) as u16
        );
    }

    #[test]
    fn read_back_status_and_count() {
        let mut p = Pit::new();
        p.write(PIT_CONTROL, 0xb0, 0); // channel 2, word, mode 0
        p.write(PIT_PORT + 2, 0x10, 0);
        p.write(PIT_PORT + 2, 0x00, 0);
        // Read-back of channel 2: count and status.
        p.write(PIT_CONTROL, 0xc8, ns(4));
        assert_eq!(p.read(PIT_PORT + 2, ns(4)), 0x30); // status first: out low, word, mode 0
        assert_eq!(p.read(PIT_PORT + 2, ns(9)), 0x0c);
        assert_eq!(p.read(PIT_PORT + 2, ns(9)), 0x00);
    }

    #[test]
    fn port61_shows_channel2_out_and_gate() {
        let mut p = Pit::new();
        p.write(SPEAKER_PORT, SPK_GATE2, 0);
        p.write(PIT_CONTROL, 0xb0, 0);
        p.write(PIT_PORT + 2, 50, 0);
        p.write(PIT_PORT + 2, 0, 0);
        let v = p.read(SPEAKER_PORT, ns(49));
        assert_eq!(v & (SPK_OUT2 | SPK_GATE2), SPK_GATE2);
        let v2 = p.read(SPEAKER_PORT, ns(50));
        assert_eq!(v2 & SPK_OUT2, SPK_OUT2);
        assert_ne!(v & SPK_REFRESH, v2 & SPK_REFRESH, "the refresh bit toggles");
    }

    #[test]
    fn mode3_square_wave_and_odd_values_never_panic() {
        let mut p = Pit::new();
        p.write(PIT_CONTROL, 0x36, 0);
        p.write(PIT_PORT, 4, 0);
        p.write(PIT_PORT, 0, 0);
        let mut edges = 0;
        p.advance(1_000_000, |_| edges += 1);
        assert!(edges > 0);
        for v in 0..=255u8 {
            p.write(PIT_CONTROL, v, 5);
            p.write(PIT_PORT + (v as u16 % 3), v, 6);
            p.read(PIT_PORT + (v as u16 % 4), 7);
            p.advance(u64::MAX / 2, |_| {});
        }
    }
}
