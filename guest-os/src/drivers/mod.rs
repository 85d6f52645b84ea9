//! Device drivers.

pub mod uart16550;
