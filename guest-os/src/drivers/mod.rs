//! Device drivers.

pub mod lapic;
pub mod pic;
pub mod uart16550;
