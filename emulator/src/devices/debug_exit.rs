//! QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`): a guest
//! write of `v` ends the emulator with host exit status `(v << 1) | 1`, exactly as QEMU does,
//! so a kernel built to exit under QEMU exits the same way here.

use super::{IoAction, PortDevice};

/// The port QEMU users conventionally give the device.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// `iosize=0x04`.
pub const DEBUG_EXIT_SIZE: u16 = 4;

#[derive(Default)]
pub struct DebugExit;

impl PortDevice for DebugExit {
    fn name(&self) -> &'static str {
        "isa-debug-exit"
    }
    fn read(&mut self, _port: u16, _size: u8) -> u32 {
        0
    }
    fn write(&mut self, _port: u16, _size: u8, val: u32) -> IoAction {
        IoAction::Exit((val << 1) | 1)
    }
}

/// The guest's own status encoded in a raw isa-debug-exit status (undo `(v << 1) | 1`).
/// `None` if the raw status cannot have come from the device (even values).
pub fn guest_status(raw: u32) -> Option<u32> {
    if raw & 1 == 1 {
        Some(raw >> 1)
    } else {
        None
    }
}
