//! QEMU's firmware configuration device (fw_cfg) through its traditional I/O interface,
//! as QEMU's `pc` machine has it (docs/specs/fw_cfg.rst, hw/nvram/fw_cfg.c): a 16-bit
//! selector written to port 0x510 chooses an item and resets its offset; each byte read
//! from port 0x511 returns the next byte of the item (0 past its end or for an unknown
//! item). Writes to the data port are ignored, as in QEMU since 2.4.
//!
//! Items: the signature "QEMU", the interface ID, the UUID, RAM size, CPU counts, boot
//! menu and graphics flags, the kernel items a multiboot load leaves (QEMU's loader passes
//! the image and the multiboot information to its option ROM through them), and the file
//! directory. Not modelled: the DMA interface at 0x514 (so the ID says "traditional
//! interface only" where QEMU 7.2 says 3), and the files QEMU lists (ACPI table loader,
//! SMBIOS, E820, boot order, option ROMs), which only firmware reads: the directory is
//! empty.

use super::{IoAction, PortDevice};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The selector port; the data port follows it.
pub const FW_CFG_PORT: u16 = 0x510;
pub const FW_CFG_PORTS: u16 = 2;
/// Offsets from [`FW_CFG_PORT`] (the port bus passes offsets).
const SELECTOR_OFFSET: u16 = 0;
const DATA_OFFSET: u16 = 1;

/// Item keys (QEMU's include/standard-headers/linux/qemu_fw_cfg.h).
pub mod key {
    pub const SIGNATURE: u16 = 0x00;
    pub const ID: u16 = 0x01;
    pub const UUID: u16 = 0x02;
    pub const RAM_SIZE: u16 = 0x03;
    pub const NOGRAPHIC: u16 = 0x04;
    pub const NB_CPUS: u16 = 0x05;
    pub const KERNEL_ADDR: u16 = 0x07;
    pub const KERNEL_SIZE: u16 = 0x08;
    pub const KERNEL_CMDLINE: u16 = 0x09;
    pub const INITRD_ADDR: u16 = 0x0a;
    pub const INITRD_SIZE: u16 = 0x0b;
    pub const BOOT_DEVICE: u16 = 0x0c;
    pub const BOOT_MENU: u16 = 0x0e;
    pub const MAX_CPUS: u16 = 0x0f;
    pub const KERNEL_ENTRY: u16 = 0x10;
    pub const KERNEL_DATA: u16 = 0x11;
    pub const INITRD_DATA: u16 = 0x12;
    pub const FILE_DIR: u16 = 0x19;
    /// The first key given to a file.
    pub const FILE_FIRST: u16 = 0x20;
}

/// The selector's bits that are not the key: the write channel and the architecture bit.
const KEY_MASK: u16 = 0x3fff | 0x8000;
/// Interface ID: bit 0, the traditional interface.
const ID_TRADITIONAL: u32 = 1;
/// A file directory entry: size (BE32), select (BE16), reserved (BE16), name[56].
const FILE_NAME_LEN: usize = 56;

/// The items, shared between the device on the port bus and the machine that fills them
/// when it loads a kernel.
#[derive(Debug, Default)]
pub struct FwCfgItems {
    items: BTreeMap<u16, Vec<u8>>,
    files: Vec<(String, u16)>,
}

impl FwCfgItems {
    pub fn set(&mut self, key: u16, data: Vec<u8>) {
        self.items.insert(key, data);
    }
    pub fn set_u16(&mut self, key: u16, v: u16) {
        self.set(key, v.to_le_bytes().to_vec());
    }
    pub fn set_u32(&mut self, key: u16, v: u32) {
        self.set(key, v.to_le_bytes().to_vec());
    }
    pub fn set_u64(&mut self, key: u16, v: u64) {
        self.set(key, v.to_le_bytes().to_vec());
    }
    /// Add (or replace) a named file and rebuild the directory.
    pub fn set_file(&mut self, name: &str, data: Vec<u8>) {
        let sel = match self.files.iter().find(|(n, _)| n == name) {
            Some(&(_, s)) => s,
            None => {
                let s = key::FILE_FIRST + self.files.len() as u16;
                self.files.push((name.to_string(), s));
                s
            }
        };
        self.items.insert(sel, data);
        let mut dir = (self.files.len() as u32).to_be_bytes().to_vec();
        let mut sorted = self.files.clone();
        sorted.sort();
        for (n, s) in sorted {
            let size = self.items.get(&s).map_or(0, Vec::len) as u32;
            dir.extend_from_slice(&size.to_be_bytes());
            dir.extend_from_slice(&s.to_be_bytes());
            dir.extend_from_slice(&0u16.to_be_bytes());
            let mut name = [0u8; FILE_NAME_LEN];
            let b = n.as_bytes();
            let len = b.len().min(FILE_NAME_LEN - 1);
            name[..len].copy_from_slice(&b[..len]);
            dir.extend_from_slice(&name);
        }
        self.items.insert(key::FILE_DIR, dir);
    }
    pub fn get(&self, key: u16) -> Option<&[u8]> {
        self.items.get(&key).map(Vec::as_slice)
    }
}

pub type FwCfgHandle = Arc<Mutex<FwCfgItems>>;

/// The items every `pc` machine has.
pub fn pc_items(ram_bytes: u64, cpus: u16) -> FwCfgHandle {
    let mut t = FwCfgItems::default();
    t.set(key::SIGNATURE, b"QEMU".to_vec());
    t.set_u32(key::ID, ID_TRADITIONAL);
    t.set(key::UUID, vec![0; 16]);
    t.set_u64(key::RAM_SIZE, ram_bytes);
    t.set_u16(key::NOGRAPHIC, 0);
    t.set_u16(key::NB_CPUS, cpus);
    t.set_u16(key::MAX_CPUS, cpus);
    t.set_u16(key::BOOT_MENU, 0);
    t.set(key::FILE_DIR, 0u32.to_be_bytes().to_vec());
    Arc::new(Mutex::new(t))
}

pub struct FwCfg {
    items: FwCfgHandle,
    selected: u16,
    offset: usize,
}

impl FwCfg {
    pub fn new(items: FwCfgHandle) -> Self {
        FwCfg {
            items,
            selected: key::SIGNATURE,
            offset: 0,
        }
    }
}

impl PortDevice for FwCfg {
    fn name(&self) -> &'static str {
        "fw_cfg"
    }
    fn read(&mut self, port: u16, size: u8) -> u32 {
        if port != DATA_OFFSET {
            return 0;
        }
        // Wider reads of the data port return bytes in order, first byte lowest (the
        // traditional port is byte-wide; QEMU's accepts wider accesses the same way).
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let data = items.get(self.selected & KEY_MASK).unwrap_or(&[]);
        let mut v = 0u32;
        for k in 0..size.min(4) as usize {
            let b = data.get(self.offset).copied().unwrap_or(0);
            if self.offset < data.len() {
                self.offset += 1;
            }
            v |= (b as u32) << (8 * k);
        }
        v
    }
    fn write(&mut self, port: u16, _size: u8, val: u32) -> IoAction {
        if port == SELECTOR_OFFSET {
            self.selected = val as u16;
            self.offset = 0;
        }
        IoAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_item(d: &mut FwCfg, key: u16, n: usize) -> Vec<u8> {
        d.write(SELECTOR_OFFSET, 2, key as u32);
        (0..n).map(|_| d.read(DATA_OFFSET, 1) as u8).collect()
    }

    #[test]
    fn signature_ram_and_cpus_read_as_qemu_gives_them() {
        let mut d = FwCfg::new(pc_items(128 << 20, 4));
        assert_eq!(read_item(&mut d, key::SIGNATURE, 4), b"QEMU");
        let ram = read_item(&mut d, key::RAM_SIZE, 8);
        assert_eq!(u64::from_le_bytes(ram.try_into().unwrap()), 128 << 20);
        assert_eq!(read_item(&mut d, key::NB_CPUS, 2), [4, 0]);
        // Past the end, and an unknown key: zeros.
        assert_eq!(read_item(&mut d, key::NB_CPUS, 4), [4, 0, 0, 0]);
        assert_eq!(read_item(&mut d, 0x1234, 3), [0, 0, 0]);
    }

    #[test]
    fn file_directory_is_big_endian_and_sorted() {
        let h = pc_items(0, 1);
        h.lock().unwrap().set_file("etc/e820", vec![1; 40]);
        h.lock().unwrap().set_file("bootorder", vec![]);
        let mut d = FwCfg::new(h);
        let dir = read_item(&mut d, key::FILE_DIR, 4 + 2 * 64);
        assert_eq!(&dir[..4], &2u32.to_be_bytes());
        assert_eq!(&dir[8..10], &(key::FILE_FIRST + 1).to_be_bytes());
        assert!(dir[12..].starts_with(b"bootorder\0"));
        assert_eq!(&dir[68..72], &40u32.to_be_bytes());
        assert!(dir[76..].starts_with(b"etc/e820\0"));
        assert_eq!(read_item(&mut d, key::FILE_FIRST, 2), [1, 1]);
    }
}
