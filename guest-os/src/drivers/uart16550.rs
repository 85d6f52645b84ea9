//! 16550A UART driver (polled, transmit only), used for the serial console on COM1.
//!
//! Initialised the way Linux's 8250 driver programs the port: interrupts off, 115200 baud,
//! 8N1, FIFOs enabled and cleared, DTR/RTS/OUT2 asserted. Bytes are written exactly as given
//! (no "\n" -> "\r\n" translation) so console output compares byte-for-byte.
//!
//! No lock: the methods take `&self` and each byte is one port write, so concurrent users can
//! at worst interleave bytes. Interrupt/SMP-safe console locking is future work.

use crate::arch::x86_64::port::{inb, outb};

/// I/O base of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// Second serial port (`ttyS1`).
pub const COM2_BASE: u16 = 0x2f8;

/// Input clock divided by 16: the baud rate for divisor 1.
const UART_CLOCK_BAUD: u32 = 115_200;
/// Console baud rate.
const BAUD_RATE: u32 = 115_200;
/// Divisor-latch value for [`BAUD_RATE`] (1).
const DIVISOR: u16 = (UART_CLOCK_BAUD / BAUD_RATE) as u16;

// Register offsets from the base port.
/// Transmit holding register (write, DLAB=0).
const THR: u16 = 0;
/// Divisor latch low byte (DLAB=1).
const DLL: u16 = 0;
/// Interrupt enable register (DLAB=0).
const IER: u16 = 1;
/// Divisor latch high byte (DLAB=1).
const DLM: u16 = 1;
/// FIFO control register (write).
const FCR: u16 = 2;
/// Line control register.
const LCR: u16 = 3;
/// Modem control register.
const MCR: u16 = 4;
/// Line status register.
const LSR: u16 = 5;

/// LCR: divisor latch access bit.
const LCR_DLAB: u8 = 0x80;
/// LCR: 8 data bits, no parity, 1 stop bit.
const LCR_8N1: u8 = 0x03;
/// FCR: enable FIFOs, clear RX and TX FIFOs, 14-byte RX trigger level.
const FCR_ENABLE_CLEAR_14: u8 = 0xc7;
/// MCR: DTR | RTS | OUT2.
const MCR_DTR_RTS_OUT2: u8 = 0x0b;
/// LSR: transmit holding register empty.
const LSR_THRE: u8 = 1 << 5;

/// How many LSR polls to wait for THRE before writing anyway (avoids hanging forever on a
/// missing or broken UART).
const THRE_POLL_LIMIT: u32 = 1 << 20;

/// A 16550-compatible UART at a fixed I/O base.
pub struct Uart16550 {
    base: u16,
}

/// The console UART.
pub static COM1: Uart16550 = Uart16550::new(COM1_BASE);
/// `ttyS1`: the kernel console under `console=ttyS1`, and a process's stderr under `vmscope run`.
pub static COM2: Uart16550 = Uart16550::new(COM2_BASE);

impl Uart16550 {
    /// A UART at I/O base `base` (not yet initialised).
    pub const fn new(base: u16) -> Self {
        Self { base }
    }

    /// Programs the UART: no interrupts, 115200 baud, 8N1, FIFOs on, DTR/RTS/OUT2.
    pub fn init(&self) {
        // SAFETY: the UART registers at `base` belong to this driver.
        unsafe {
            outb(self.base + IER, 0);
            outb(self.base + LCR, LCR_DLAB);
            outb(self.base + DLL, DIVISOR as u8);
            outb(self.base + DLM, (DIVISOR >> 8) as u8);
            outb(self.base + LCR, LCR_8N1);
            outb(self.base + FCR, FCR_ENABLE_CLEAR_14);
            outb(self.base + MCR, MCR_DTR_RTS_OUT2);
        }
    }

    /// Sends one byte, after waiting for the transmit holding register to be empty.
    pub fn write_byte(&self, byte: u8) {
        // SAFETY: the UART registers at `base` belong to this driver.
        unsafe {
            for _ in 0..THRE_POLL_LIMIT {
                if inb(self.base + LSR) & LSR_THRE != 0 {
                    break;
                }
                core::hint::spin_loop();
            }
            outb(self.base + THR, byte);
        }
    }

    /// Sends `bytes` unchanged.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }
}
