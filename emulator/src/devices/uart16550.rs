//! A 16550A UART (the PC's COM1 at 0x3F8, COM2 at 0x2F8), with the registers a Linux-style 8250 driver
//! touches: divisor latch, IER, IIR/FCR, LCR, MCR (incl. loopback, which Linux's autoconfig
//! probes), LSR, MSR and the scratch register. Transmitted bytes go to the console sink
//! unchanged (no CR/LF translation), so the text compares byte-for-byte with QEMU's
//! `-serial stdio`.

use super::{IoAction, PortDevice};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Base port of COM1.
pub const COM1_PORT: u16 = 0x3f8;
/// Base port of COM2 (`vmscope run` sends it to stderr).
pub const COM2_PORT: u16 = 0x2f8;
/// The UART decodes 8 consecutive ports.
pub const UART_PORT_COUNT: u16 = 8;

// Register offsets (DLAB=0 unless noted).
const RBR_THR: u16 = 0; // receive buffer / transmit holding; DLL when DLAB=1
const IER: u16 = 1; // interrupt enable; DLM when DLAB=1
const IIR_FCR: u16 = 2; // interrupt identification (read) / FIFO control (write)
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const MSR: u16 = 6;
const SCR: u16 = 7;

const LCR_DLAB: u8 = 0x80;
const LSR_DR: u8 = 0x01; // data ready
const LSR_THRE: u8 = 0x20; // transmit holding register empty
const LSR_TEMT: u8 = 0x40; // transmitter empty
const MCR_LOOP: u8 = 0x10;
const IIR_NO_INT: u8 = 0x01;
const IIR_THRI: u8 = 0x02;
const IIR_RDI: u8 = 0x04;
const IIR_FIFO_ENABLED: u8 = 0xc0;
const FCR_ENABLE_FIFO: u8 = 0x01;
const FCR_CLEAR_RCVR: u8 = 0x02;
const IER_RDI: u8 = 0x01;
const IER_THRI: u8 = 0x02;

/// Where transmitted bytes go: the host's stdout or stderr, or a shared buffer (tests,
/// --qemu parity).
#[derive(Clone)]
pub enum ConsoleSink {
    Stdout,
    /// Line-buffered here (std's stderr is not), so a guest's byte-at-a-time output does not
    /// cost a system call per byte; [`flush_consoles`] writes out a partial line.
    Stderr,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// The pending line of [`ConsoleSink::Stderr`].
static STDERR_LINE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Write out what the console sinks hold (call before the emulator prints on its own).
pub fn flush_consoles() {
    let _ = std::io::stdout().flush();
    if let Ok(mut line) = STDERR_LINE.lock() {
        let _ = std::io::stderr().write_all(&line);
        line.clear();
    }
}

impl ConsoleSink {
    fn put(&self, b: u8) {
        match self {
            ConsoleSink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&[b]);
                if b == b'\n' {
                    let _ = out.flush();
                }
            }
            ConsoleSink::Stderr => {
                if let Ok(mut line) = STDERR_LINE.lock() {
                    line.push(b);
                    if b == b'\n' || line.len() >= 4096 {
                        let _ = std::io::stderr().write_all(&line);
                        line.clear();
                    }
                }
            }
            ConsoleSink::Buffer(buf) => {
                if let Ok(mut v) = buf.lock() {
                    v.push(b);
                }
            }
        }
    }
}

pub struct Uart16550 {
    sink: ConsoleSink,
    dll: u8,
    dlm: u8,
    ier: u8,
    fcr: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    rx: VecDeque<u8>,
    /// THR-empty interrupt latched (cleared by reading IIR or writing THR).
    thri_pending: bool,
}

impl Uart16550 {
    pub fn new(sink: ConsoleSink) -> Self {
        Self {
            sink,
            dll: 0x0c, // 9600 baud after reset, like a PC BIOS leaves it
            dlm: 0,
            ier: 0,
            fcr: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            rx: VecDeque::new(),
            thri_pending: false,
        }
    }

    /// Queue bytes as if received on the line (host stdin, tests).
    pub fn receive(&mut self, data: &[u8]) {
        self.rx.extend(data);
    }

    /// True while the UART asserts its interrupt line (IRQ 4 for COM1).
    pub fn irq_pending(&self) -> bool {
        self.iir() & IIR_NO_INT == 0
    }

    fn iir(&self) -> u8 {
        let fifo = if self.fcr & FCR_ENABLE_FIFO != 0 {
            IIR_FIFO_ENABLED
        } else {
            0
        };
        let id = if self.ier & IER_RDI != 0 && !self.rx.is_empty() {
            IIR_RDI
        } else if self.ier & IER_THRI != 0 && self.thri_pending {
            IIR_THRI
        } else {
            IIR_NO_INT
        };
        fifo | id
    }

    fn lsr(&self) -> u8 {
        let dr = if self.rx.is_empty() { 0 } else { LSR_DR };
        LSR_THRE | LSR_TEMT | dr
    }

    /// Modem status: in loopback the outputs (DTR, RTS, OUT1, OUT2) feed the inputs
    /// (DSR, CTS, RI, DCD); otherwise report carrier, DSR and CTS asserted like QEMU.
    fn msr(&self) -> u8 {
        if self.mcr & MCR_LOOP != 0 {
            let m = self.mcr;
            ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
        } else {
            0xb0
        }
    }
}

impl PortDevice for Uart16550 {
    fn name(&self) -> &'static str {
        "uart16550a"
    }

    fn read(&mut self, port: u16, _size: u8) -> u32 {
        let dlab = self.lcr & LCR_DLAB != 0;
        let v = match port {
            RBR_THR if dlab => self.dll,
            RBR_THR => self.rx.pop_front().unwrap_or(0),
            IER if dlab => self.dlm,
            IER => self.ier,
            IIR_FCR => {
                let v = self.iir();
                if v & 0x0f == IIR_THRI {
                    self.thri_pending = false;
                }
                v
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => self.lsr(),
            MSR => self.msr(),
            SCR => self.scr,
            _ => 0xff,
        };
        v as u32
    }

    fn write(&mut self, port: u16, _size: u8, val: u32) -> IoAction {
        let v = val as u8;
        let dlab = self.lcr & LCR_DLAB != 0;
        match port {
            RBR_THR if dlab => self.dll = v,
            RBR_THR => {
                if self.mcr & MCR_LOOP != 0 {
                    self.rx.push_back(v);
                } else {
                    self.sink.put(v);
                }
                self.thri_pending = true;
            }
            IER if dlab => self.dlm = v,
            IER => {
                let newly_thri = v & IER_THRI != 0 && self.ier & IER_THRI == 0;
                self.ier = v & 0x0f;
                if newly_thri {
                    // The transmitter is always empty here: enabling THRI raises it at once.
                    self.thri_pending = true;
                }
            }
            IIR_FCR => {
                if v & FCR_CLEAR_RCVR != 0 {
                    self.rx.clear();
                }
                self.fcr = v & (FCR_ENABLE_FIFO | 0xc0);
            }
            LCR => self.lcr = v,
            MCR => self.mcr = v & 0x1f,
            SCR => self.scr = v,
            _ => {}
        }
        IoAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uart() -> (Uart16550, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        (Uart16550::new(ConsoleSink::Buffer(buf.clone())), buf)
    }

    #[test]
    fn transmit_and_divisor_latch() {
        let (mut u, buf) = uart();
        u.write(LCR, 1, 0x80);
        u.write(RBR_THR, 1, 1);
        u.write(IER, 1, 0);
        assert_eq!(u.read(RBR_THR, 1), 1);
        u.write(LCR, 1, 0x03);
        assert_eq!(u.read(LSR, 1) as u8 & LSR_THRE, LSR_THRE);
        for b in b"hi\n" {
            u.write(RBR_THR, 1, *b as u32);
        }
        assert_eq!(&*buf.lock().unwrap(), b"hi\n");
    }

    #[test]
    fn loopback_echoes_and_mirrors_modem_lines() {
        let (mut u, buf) = uart();
        u.write(MCR, 1, (MCR_LOOP | 0x0a) as u32);
        u.write(RBR_THR, 1, 0x5a);
        assert_eq!(u.read(LSR, 1) as u8 & LSR_DR, LSR_DR);
        assert_eq!(u.read(RBR_THR, 1), 0x5a);
        assert_eq!(u.read(MSR, 1) & 0xf0, 0x90);
        assert!(buf.lock().unwrap().is_empty());
    }
}
