//! Device drivers.

pub mod debugcon;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pvport;
pub mod rtc;
pub mod uart16550;
pub mod virtio;
pub mod virtio_blk;
