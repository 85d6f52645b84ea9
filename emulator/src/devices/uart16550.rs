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
/// The ISA IRQ lines of COM1 and COM2.
pub const COM1_IRQ: u8 = 4;
pub const COM2_IRQ: u8 = 3;
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

/// The receive FIFO's depth (16550A).
const RX_FIFO_DEPTH: usize = 16;
/// FCR bit 2: clear the transmit FIFO (it is always empty here).
const FCR_CLEAR_XMIT: u8 = 0x04;
/// FCR bits 7:6: the receive FIFO's interrupt trigger level.
const FCR_TRIGGER_SHIFT: u8 = 6;
/// IIR value for a character timeout (FIFO mode, fewer bytes than the trigger level).
const IIR_CTI: u8 = 0x0c;

/// Bytes waiting to enter a UART's receiver from outside the machine (host stdin), filled
/// by another thread. The UART moves them into its receive FIFO as room appears (the flow
/// control QEMU's chardev applies), so none is lost to an overrun.
pub type SerialInput = Arc<Mutex<VecDeque<u8>>>;

/// A 16550A with QEMU's interrupt semantics (hw/char/serial.c): the interrupt output is
/// the IIR's "interrupt pending", level-driven on the UART's ISA IRQ line (4 for COM1, 3
/// for COM2), independent of MCR OUT2 as in QEMU. Transmission completes at once: a
/// write to THR reaches the sink, and THRE is set again with a THR-empty interrupt
/// pending, within the same instruction.
pub struct Uart16550 {
    sink: ConsoleSink,
    irq_line: u8,
    dll: u8,
    dlm: u8,
    ier: u8,
    fcr: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    rx: VecDeque<u8>,
    /// THR-empty interrupt pending (cleared by reading IIR with it reported or writing THR).
    thri_pending: bool,
    /// Host input not yet in the receive FIFO.
    input: Option<SerialInput>,
}

impl Uart16550 {
    pub fn new(sink: ConsoleSink) -> Self {
        Self::with_irq(sink, COM1_IRQ)
    }

    /// A UART driving ISA IRQ `irq_line`.
    pub fn with_irq(sink: ConsoleSink, irq_line: u8) -> Self {
        Self {
            sink,
            irq_line,
            dll: 0x0c, // 9600 baud after reset, like a PC BIOS leaves it
            dlm: 0,
            ier: 0,
            fcr: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            rx: VecDeque::new(),
            thri_pending: false,
            input: None,
        }
    }

    /// Feed the receiver from `input` (host stdin).
    pub fn set_input(&mut self, input: SerialInput) {
        self.input = Some(input);
    }

    /// Queue bytes as if received on the line (tests). Beyond the FIFO's room they wait.
    pub fn receive(&mut self, data: &[u8]) {
        let input = self.input.get_or_insert_with(Default::default).clone();
        if let Ok(mut q) = input.lock() {
            q.extend(data);
        }
        self.fill_rx();
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_ENABLE_FIFO != 0
    }

    /// Room in the receiver: 16 bytes with the FIFO on, the holding register without.
    fn rx_room(&self) -> usize {
        let cap = if self.fifo_enabled() {
            RX_FIFO_DEPTH
        } else {
            1
        };
        cap.saturating_sub(self.rx.len())
    }

    /// Move waiting input into the receiver, as far as it has room.
    fn fill_rx(&mut self) {
        // In loopback the receiver is connected to the transmitter, not the line.
        if self.mcr & MCR_LOOP != 0 {
            return;
        }
        let Some(input) = &self.input else { return };
        let Ok(mut q) = input.lock() else { return };
        let n = self.rx_room().min(q.len());
        self.rx.extend(q.drain(..n));
    }

    /// The receive FIFO's interrupt trigger level in bytes.
    fn trigger_level(&self) -> usize {
        [1, 4, 8, 14][(self.fcr >> FCR_TRIGGER_SHIFT) as usize & 3]
    }

    /// True while the UART asserts its interrupt line.
    pub fn irq_pending(&self) -> bool {
        self.iir() & IIR_NO_INT == 0
    }

    /// IIR in priority order: received data (at the trigger level, else the character
    /// timeout, which vmscope raises at once rather than four character times later: the
    /// line has no speed here), then THR empty.
    fn iir(&self) -> u8 {
        let fifo = if self.fifo_enabled() {
            IIR_FIFO_ENABLED
        } else {
            0
        };
        let id = if self.ier & IER_RDI != 0 && !self.rx.is_empty() {
            if !self.fifo_enabled() || self.rx.len() >= self.trigger_level() {
                IIR_RDI
            } else {
                IIR_CTI
            }
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

    fn irq_mask(&self) -> u16 {
        1 << self.irq_line
    }

    fn irq_levels(&self) -> u16 {
        u16::from(self.irq_pending()) << self.irq_line
    }

    fn poll(&mut self) {
        self.fill_rx();
    }

    fn read(&mut self, port: u16, _size: u8) -> u32 {
        let dlab = self.lcr & LCR_DLAB != 0;
        let v = match port {
            RBR_THR if dlab => self.dll,
            RBR_THR => {
                let b = self.rx.pop_front().unwrap_or(0);
                self.fill_rx();
                b
            }
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
                    if self.rx_room() > 0 {
                        self.rx.push_back(v);
                    }
                } else {
                    self.sink.put(v);
                }
                // Sent at once: THR is empty again and says so.
                self.thri_pending = true;
            }
            IER if dlab => self.dlm = v,
            IER => {
                let changed = (self.ier ^ v) & 0x0f;
                self.ier = v & 0x0f;
                // As QEMU (and Bochs): turning THRI on while THR is empty raises the
                // THR-empty interrupt even if an IIR read had cleared it; off drops it.
                if changed & IER_THRI != 0 {
                    self.thri_pending = self.ier & IER_THRI != 0;
                }
            }
            IIR_FCR => {
                // Toggling the FIFO enable, or a clear bit, empties the receiver.
                if v & FCR_CLEAR_RCVR != 0 || (v ^ self.fcr) & FCR_ENABLE_FIFO != 0 {
                    self.rx.clear();
                }
                let _ = FCR_CLEAR_XMIT; // the transmitter is always empty
                self.fcr = v & (FCR_ENABLE_FIFO | 0xc0);
                self.fill_rx();
            }
            LCR => self.lcr = v,
            MCR => {
                self.mcr = v & 0x1f;
                self.fill_rx();
            }
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

    #[test]
    fn thr_empty_interrupt_as_qemu() {
        let (mut u, _) = uart();
        assert_eq!(u.irq_levels(), 0);
        // Enabling THRI raises it at once (THR is empty).
        u.write(IER, 1, IER_THRI as u32);
        assert_eq!(u.read(IIR_FCR, 1) as u8, IIR_THRI);
        // Reading IIR cleared it.
        assert_eq!(u.irq_levels(), 0);
        assert_eq!(u.read(IIR_FCR, 1) as u8, IIR_NO_INT);
        // A transmitted byte raises it again.
        u.write(RBR_THR, 1, b'x' as u32);
        assert!(u.irq_pending());
        // Writing IER with THRI still set does not re-raise after it was read.
        u.read(IIR_FCR, 1);
        u.write(IER, 1, IER_THRI as u32);
        assert!(!u.irq_pending());
        // Toggling it does.
        u.write(IER, 1, 0);
        u.write(IER, 1, IER_THRI as u32);
        assert!(u.irq_pending());
    }

    #[test]
    fn receive_interrupt_and_fifo_flow_control() {
        let (mut u, _) = uart();
        u.write(IIR_FCR, 1, (FCR_ENABLE_FIFO | 0x80) as u32); // trigger level 8
        u.write(IER, 1, IER_RDI as u32);
        let data: Vec<u8> = (0..40).collect();
        u.receive(&data[..3]);
        assert_eq!(u.read(IIR_FCR, 1) as u8, IIR_FIFO_ENABLED | IIR_CTI);
        u.receive(&data[3..]);
        assert_eq!(u.read(IIR_FCR, 1) as u8, IIR_FIFO_ENABLED | IIR_RDI);
        let mut got = Vec::new();
        while u.read(LSR, 1) as u8 & LSR_DR != 0 {
            got.push(u.read(RBR_THR, 1) as u8);
        }
        assert_eq!(got, data, "nothing lost beyond the FIFO's 16 bytes");
        assert!(!u.irq_pending());
    }
}
