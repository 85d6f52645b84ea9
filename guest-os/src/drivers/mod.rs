//! Device drivers.

pub mod debugcon;
pub mod lapic;
pub mod pic;
pub mod pvport;
pub mod uart16550;
