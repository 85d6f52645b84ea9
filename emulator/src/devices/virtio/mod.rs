//! virtio 1.x (OASIS virtio v1.1) pieces shared by device models: status bits, feature
//! bits, and the split virtqueue ([`queue`]).

pub mod queue;

/// Device status bits (2.1).
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const DEVICE_NEEDS_RESET: u8 = 0x40;
    pub const FAILED: u8 = 0x80;
}

/// Transport feature bits (6).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// ISR status bits (4.1.4.5): a used buffer, a configuration change.
pub const ISR_QUEUE: u8 = 1;
pub const ISR_CONFIG: u8 = 2;

/// "No MSI-X vector" (4.1.5.1.2).
pub const VIRTIO_MSI_NO_VECTOR: u16 = 0xffff;
