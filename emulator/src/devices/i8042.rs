//! The 8042 keyboard controller (ports 0x60/0x64) with an AT keyboard and a PS/2 mouse
//! behind it, as QEMU's `pc` has them (hw/input/pckbd.c, hw/input/ps2.c): enough for an
//! OS to find the controller, test it and both ports, read and write the command byte,
//! use the AUX loopback, identify the keyboard ("AT Translated Set 2" when translation is
//! on) and set its LEDs and rate. No key is ever pressed: host input goes to the serial
//! console. The reset line (command 0xFE, or an output-port write with bit 0 clear)
//! resets the machine, which stops it as QEMU's `-no-reboot` does.
//!
//! The output buffer holds one byte; behind it wait the controller's own replies, then the
//! keyboard's and the mouse's (each device's bytes only while its interface is enabled).
//! IRQ 1 is raised while a keyboard byte is in the buffer and the command byte enables
//! the keyboard interrupt; IRQ 12 likewise for a mouse byte.

use super::{IoAction, PortDevice};
use std::collections::VecDeque;

/// The data port; the status/command port is 4 above it.
pub const I8042_DATA_PORT: u16 = 0x60;
/// Ports decoded from 0x60 (0x61, the PIT's speaker port, is claimed ahead of the port
/// bus; 0x62 and 0x63 read as open bus).
pub const I8042_PORTS: u16 = 5;
const DATA: u16 = 0;
const STATUS_CMD: u16 = 4;

/// ISA IRQs of the keyboard and the mouse.
pub const KBD_IRQ: u8 = 1;
pub const AUX_IRQ: u8 = 12;

/// Status register bits.
const STAT_OBF: u8 = 0x01;
const STAT_SYS: u8 = 0x04;
const STAT_CMD: u8 = 0x08;
const STAT_UNLOCKED: u8 = 0x10;
const STAT_AUX_OBF: u8 = 0x20;

/// Command byte (CTR) bits.
const CTR_KBDINT: u8 = 0x01;
const CTR_AUXINT: u8 = 0x02;
const CTR_SYS: u8 = 0x04;
const CTR_KBDDIS: u8 = 0x10;
const CTR_AUXDIS: u8 = 0x20;
const CTR_XLATE: u8 = 0x40;
/// The command byte SeaBIOS leaves: translation on, keyboard interrupt, mouse disabled,
/// system flag (self-test passed).
const CTR_BIOS: u8 = CTR_XLATE | CTR_AUXDIS | CTR_SYS | CTR_KBDINT;

/// Output port bit 0: the CPU reset line (active low).
const OUTPORT_RESET: u8 = 0x01;
/// Output port as QEMU resets it: reset high, A20 enabled.
const OUTPORT_DEFAULT: u8 = 0x03;

/// Controller commands (port 0x64).
mod cmd {
    pub const READ_CTR: u8 = 0x20;
    pub const WRITE_CTR: u8 = 0x60;
    pub const AUX_DISABLE: u8 = 0xa7;
    pub const AUX_ENABLE: u8 = 0xa8;
    pub const AUX_TEST: u8 = 0xa9;
    pub const SELF_TEST: u8 = 0xaa;
    pub const KBD_TEST: u8 = 0xab;
    pub const KBD_DISABLE: u8 = 0xad;
    pub const KBD_ENABLE: u8 = 0xae;
    pub const READ_INPORT: u8 = 0xc0;
    pub const READ_OUTPORT: u8 = 0xd0;
    pub const WRITE_OUTPORT: u8 = 0xd1;
    pub const WRITE_KBD_OBUF: u8 = 0xd2;
    pub const WRITE_AUX_OBUF: u8 = 0xd3;
    pub const WRITE_AUX: u8 = 0xd4;
    pub const DISABLE_A20: u8 = 0xdd;
    pub const ENABLE_A20: u8 = 0xdf;
    pub const PULSE_FIRST: u8 = 0xf0;
    pub const PULSE_RESET: u8 = 0xfe;
}

/// Device replies.
const ACK: u8 = 0xfa;
const BAT_OK: u8 = 0xaa;
const KBD_ID: [u8; 2] = [0xab, 0x83];
/// The second ID byte as the controller's set 2 → set 1 translation gives it.
const KBD_ID_TRANSLATED: u8 = 0x41;
const SELF_TEST_OK: u8 = 0x55;
const PORT_TEST_OK: u8 = 0x00;
const ECHO: u8 = 0xee;
const RESEND: u8 = 0xfe;

/// Keyboard and mouse commands.
const DEV_RESET: u8 = 0xff;
const DEV_GET_ID: u8 = 0xf2;
const KBD_SET_LEDS: u8 = 0xed;
const KBD_ECHO: u8 = 0xee;
const KBD_SCANCODE_SET: u8 = 0xf0;
const DEV_SET_RATE: u8 = 0xf3;
const MOUSE_SET_RES: u8 = 0xe8;
const MOUSE_STATUS: u8 = 0xe9;

/// Where the next data-port write goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Keyboard,
    Ctr,
    OutPort,
    KbdObuf,
    AuxObuf,
    Aux,
}

pub struct I8042 {
    ctr: u8,
    outport: u8,
    status_cmd: bool,
    pending: Pending,
    /// The output buffer: a byte and whether it came from the mouse.
    obuf: Option<(u8, bool)>,
    ctrl_queue: VecDeque<(u8, bool)>,
    kbd_queue: VecDeque<u8>,
    aux_queue: VecDeque<u8>,
    /// A keyboard command waiting for its parameter byte.
    kbd_param_for: Option<u8>,
    aux_param_for: Option<u8>,
    scancode_set: u8,
    /// IRQ lines lowered by a data-port read (see [`PortDevice::take_irq_pulses`]).
    pulses: u16,
}

impl Default for I8042 {
    fn default() -> Self {
        Self::new()
    }
}

impl I8042 {
    pub fn new() -> Self {
        I8042 {
            ctr: CTR_BIOS,
            outport: OUTPORT_DEFAULT,
            status_cmd: true,
            pending: Pending::Keyboard,
            obuf: None,
            ctrl_queue: VecDeque::new(),
            kbd_queue: VecDeque::new(),
            aux_queue: VecDeque::new(),
            kbd_param_for: None,
            aux_param_for: None,
            scancode_set: 2,
            pulses: 0,
        }
    }

    /// Fill the output buffer from the queues if it is empty.
    fn refill(&mut self) {
        if self.obuf.is_some() {
            return;
        }
        self.obuf = if let Some(b) = self.ctrl_queue.pop_front() {
            Some(b)
        } else if self.ctr & CTR_KBDDIS == 0 && !self.kbd_queue.is_empty() {
            self.kbd_queue.pop_front().map(|b| (b, false))
        } else if self.ctr & CTR_AUXDIS == 0 && !self.aux_queue.is_empty() {
            self.aux_queue.pop_front().map(|b| (b, true))
        } else {
            None
        };
    }

    fn reply(&mut self, b: u8) {
        self.ctrl_queue.push_back((b, false));
    }

    fn status(&self) -> u8 {
        let mut s = STAT_UNLOCKED;
        if self.ctr & CTR_SYS != 0 {
            s |= STAT_SYS;
        }
        if self.status_cmd {
            s |= STAT_CMD;
        }
        if let Some((_, aux)) = self.obuf {
            s |= STAT_OBF;
            if aux {
                s |= STAT_AUX_OBF;
            }
        }
        s
    }

    fn command(&mut self, c: u8) -> IoAction {
        match c {
            cmd::READ_CTR => self.reply(self.ctr),
            cmd::WRITE_CTR => self.pending = Pending::Ctr,
            cmd::AUX_DISABLE => self.ctr |= CTR_AUXDIS,
            cmd::AUX_ENABLE => self.ctr &= !CTR_AUXDIS,
            cmd::AUX_TEST | cmd::KBD_TEST => self.reply(PORT_TEST_OK),
            cmd::SELF_TEST => {
                self.ctr |= CTR_SYS;
                self.reply(SELF_TEST_OK);
            }
            cmd::KBD_DISABLE => self.ctr |= CTR_KBDDIS,
            cmd::KBD_ENABLE => self.ctr &= !CTR_KBDDIS,
            cmd::READ_INPORT => self.reply(0x00),
            cmd::READ_OUTPORT => self.reply(self.outport),
            cmd::WRITE_OUTPORT => self.pending = Pending::OutPort,
            cmd::WRITE_KBD_OBUF => self.pending = Pending::KbdObuf,
            cmd::WRITE_AUX_OBUF => self.pending = Pending::AuxObuf,
            cmd::WRITE_AUX => self.pending = Pending::Aux,
            cmd::DISABLE_A20 | cmd::ENABLE_A20 => {}
            // Pulse output-port bits low for 6 µs: bit 0 is the CPU reset line (0xFE is
            // the usual reset command; any even pulse command resets).
            cmd::PULSE_RESET => return IoAction::Reset,
            c if c >= cmd::PULSE_FIRST && c & OUTPORT_RESET == 0 => return IoAction::Reset,
            _ => log::debug!("i8042: command {c:#x} ignored"),
        }
        IoAction::None
    }

    fn keyboard_write(&mut self, b: u8) {
        if let Some(c) = self.kbd_param_for.take() {
            self.kbd_queue.push_back(ACK);
            if c == KBD_SCANCODE_SET {
                if b == 0 {
                    self.kbd_queue.push_back(self.scancode_set);
                } else if (1..=3).contains(&b) {
                    self.scancode_set = b;
                }
            }
            return;
        }
        match b {
            DEV_RESET => {
                self.kbd_queue.extend([ACK, BAT_OK]);
            }
            DEV_GET_ID => {
                let second = if self.ctr & CTR_XLATE != 0 {
                    KBD_ID_TRANSLATED
                } else {
                    KBD_ID[1]
                };
                self.kbd_queue.extend([ACK, KBD_ID[0], second]);
            }
            KBD_SET_LEDS | DEV_SET_RATE | KBD_SCANCODE_SET => {
                self.kbd_param_for = Some(b);
                self.kbd_queue.push_back(ACK);
            }
            KBD_ECHO => self.kbd_queue.push_back(ECHO),
            // Enable, disable, defaults and the set-3 key type commands.
            0xf4..=0xfd => self.kbd_queue.push_back(ACK),
            _ => self.kbd_queue.push_back(RESEND),
        }
    }

    fn aux_write(&mut self, b: u8) {
        if self.aux_param_for.take().is_some() {
            self.aux_queue.push_back(ACK);
            return;
        }
        match b {
            DEV_RESET => self.aux_queue.extend([ACK, BAT_OK, 0x00]),
            DEV_GET_ID => self.aux_queue.extend([ACK, 0x00]),
            MOUSE_SET_RES | DEV_SET_RATE => {
                self.aux_param_for = Some(b);
                self.aux_queue.push_back(ACK);
            }
            MOUSE_STATUS => self.aux_queue.extend([ACK, 0x00, 0x02, 0x64]),
            _ => self.aux_queue.push_back(ACK),
        }
    }
}

impl PortDevice for I8042 {
    fn name(&self) -> &'static str {
        "i8042"
    }

    fn irq_mask(&self) -> u16 {
        (1 << KBD_IRQ) | (1 << AUX_IRQ)
    }

    fn irq_levels(&self) -> u16 {
        match self.obuf {
            Some((_, false)) if self.ctr & CTR_KBDINT != 0 => 1 << KBD_IRQ,
            Some((_, true)) if self.ctr & CTR_AUXINT != 0 => 1 << AUX_IRQ,
            _ => 0,
        }
    }

    fn take_irq_pulses(&mut self) -> u16 {
        std::mem::take(&mut self.pulses)
    }

    fn read(&mut self, port: u16, _size: u8) -> u32 {
        match port {
            DATA => {
                // Reading the buffer drops the interrupt; a queued byte raises it again.
                self.pulses |= self.irq_levels();
                let v = match self.obuf.take() {
                    Some((b, _)) => b,
                    // An empty buffer reads the last byte again on real hardware; 0 here.
                    None => 0,
                };
                self.refill();
                v as u32
            }
            STATUS_CMD => self.status() as u32,
            _ => 0xff,
        }
    }

    fn write(&mut self, port: u16, _size: u8, val: u32) -> IoAction {
        let b = val as u8;
        let action = match port {
            DATA => {
                self.status_cmd = false;
                let to = std::mem::replace(&mut self.pending, Pending::Keyboard);
                match to {
                    Pending::Keyboard => {
                        // Writing to the keyboard enables its interface again (QEMU).
                        self.ctr &= !CTR_KBDDIS;
                        self.keyboard_write(b);
                    }
                    Pending::Ctr => self.ctr = b,
                    Pending::OutPort => {
                        self.outport = b;
                        if b & OUTPORT_RESET == 0 {
                            self.refill();
                            return IoAction::Reset;
                        }
                    }
                    Pending::KbdObuf => self.ctrl_queue.push_back((b, false)),
                    Pending::AuxObuf => self.ctrl_queue.push_back((b, true)),
                    Pending::Aux => self.aux_write(b),
                }
                IoAction::None
            }
            STATUS_CMD => {
                self.status_cmd = true;
                self.command(b)
            }
            _ => IoAction::None,
        };
        self.refill();
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(k: &mut I8042, c: u8) -> IoAction {
        k.write(STATUS_CMD, 1, c as u32)
    }

    fn read_reply(k: &mut I8042) -> Option<u8> {
        (k.read(STATUS_CMD, 1) as u8 & STAT_OBF != 0).then(|| k.read(DATA, 1) as u8)
    }

    #[test]
    fn self_test_and_command_byte() {
        let mut k = I8042::new();
        command(&mut k, cmd::SELF_TEST);
        assert_eq!(read_reply(&mut k), Some(SELF_TEST_OK));
        command(&mut k, cmd::READ_CTR);
        assert_eq!(read_reply(&mut k), Some(CTR_BIOS));
        command(&mut k, cmd::WRITE_CTR);
        k.write(DATA, 1, 0x47);
        command(&mut k, cmd::READ_CTR);
        assert_eq!(read_reply(&mut k), Some(0x47));
        assert_eq!(read_reply(&mut k), None);
    }

    #[test]
    fn aux_loopback_sets_aux_obf_and_raises_irq12() {
        let mut k = I8042::new();
        command(&mut k, cmd::WRITE_CTR);
        k.write(DATA, 1, (CTR_XLATE | CTR_AUXINT | CTR_KBDINT) as u32);
        command(&mut k, cmd::WRITE_AUX_OBUF);
        k.write(DATA, 1, 0x5a);
        assert_eq!(k.read(STATUS_CMD, 1) as u8 & STAT_AUX_OBF, STAT_AUX_OBF);
        assert_eq!(k.irq_levels(), 1 << AUX_IRQ);
        assert_eq!(k.read(DATA, 1), 0x5a);
        assert_eq!(k.irq_levels(), 0);
    }

    #[test]
    fn keyboard_identifies_as_translated_set_2() {
        let mut k = I8042::new();
        k.write(DATA, 1, DEV_GET_ID as u32);
        assert_eq!(k.irq_levels(), 1 << KBD_IRQ);
        let got: Vec<u8> = std::iter::from_fn(|| read_reply(&mut k)).collect();
        assert_eq!(got, [ACK, 0xab, KBD_ID_TRANSLATED]);
        k.write(DATA, 1, KBD_SET_LEDS as u32);
        k.write(DATA, 1, 0);
        let got: Vec<u8> = std::iter::from_fn(|| read_reply(&mut k)).collect();
        assert_eq!(got, [ACK, ACK]);
    }

    #[test]
    fn reset_line() {
        let mut k = I8042::new();
        assert_eq!(command(&mut k, cmd::PULSE_RESET), IoAction::Reset);
        assert_eq!(command(&mut k, 0xff), IoAction::None);
        command(&mut k, cmd::WRITE_OUTPORT);
        assert_eq!(k.write(DATA, 1, 0x02), IoAction::Reset);
        // Any byte anywhere never panics.
        for v in 0..=255u32 {
            command(&mut k, v as u8);
            k.write(DATA, 1, v);
            k.read(DATA, 1);
            k.read(2, 1);
        }
    }
}
