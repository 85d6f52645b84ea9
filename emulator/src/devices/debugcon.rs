//! QEMU's `isa-debugcon` (`-device isa-debugcon,iobase=0x402,chardev=...`): every byte the
//! guest writes to the port goes to the host. The guest kernel reports on it how the
//! program of `vmscope run` ended (`exit N`, `signal S`, `panic`, one line each), because
//! isa-debug-exit's `(v << 1) | 1` cannot carry a status above 127.

use super::{IoAction, PortDevice};
use std::sync::{Arc, Mutex};

/// The port `vmscope run` and its QEMU command line use (QEMU's default is 0xe9).
pub const DEBUGCON_PORT: u16 = 0x402;
/// What a read returns: QEMU's default `readback` (0xe9, the Bochs port-E9 signature).
pub const DEBUGCON_READBACK: u32 = 0xe9;
/// Bytes kept: only the last lines matter, and a guest must not exhaust host memory.
pub const DEBUGCON_KEEP: usize = 64 << 10;

/// The device; what it received is in the shared buffer given to [`Debugcon::new`].
pub struct Debugcon {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl Debugcon {
    pub fn new(buf: Arc<Mutex<Vec<u8>>>) -> Self {
        Debugcon { buf }
    }
}

impl PortDevice for Debugcon {
    fn name(&self) -> &'static str {
        "isa-debugcon"
    }

    fn read(&mut self, _port: u16, _size: u8) -> u32 {
        DEBUGCON_READBACK
    }

    /// One byte per access, whatever its size: QEMU's region is one byte wide, so a wider
    /// `out` sends only its low byte to the device.
    fn write(&mut self, _port: u16, _size: u8, val: u32) -> IoAction {
        if let Ok(mut b) = self.buf.lock() {
            if b.len() >= DEBUGCON_KEEP {
                b.drain(..DEBUGCON_KEEP / 2);
            }
            b.push(val as u8);
        }
        IoAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_bytes_and_reads_back_e9() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut d = Debugcon::new(buf.clone());
        for b in b"exit 3\n" {
            assert_eq!(d.write(0, 1, *b as u32), IoAction::None);
        }
        d.write(0, 2, 0x4142); // outw: the low byte only
        assert_eq!(&*buf.lock().unwrap(), b"exit 3\nB");
        assert_eq!(d.read(0, 1), 0xe9);
    }

    #[test]
    fn keeps_the_tail_when_flooded() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut d = Debugcon::new(buf.clone());
        for _ in 0..3 * DEBUGCON_KEEP {
            d.write(0, 1, b'x' as u32);
        }
        for b in b"panic\n" {
            d.write(0, 1, *b as u32);
        }
        let b = buf.lock().unwrap();
        assert!(b.len() <= DEBUGCON_KEEP);
        assert!(b.ends_with(b"xpanic\n"));
    }
}
