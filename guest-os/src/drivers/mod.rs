//! Device drivers.

pub mod lapic;
pub mod pic;
pub mod pvport;
pub mod uart16550;
