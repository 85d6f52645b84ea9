//! The MTRR and machine-check MSRs, as QEMU's TCG presents them (8 variable MTRRs, fixed
//! ranges and write-combining in IA32_MTRRCAP; 10 MCA banks with MCG_CTL and software
//! error recovery in IA32_MCG_CAP), holding the values SeaBIOS leaves (src/fw/mtrr.c):
//! fixed ranges WB below 640 KiB, UC for the VGA hole, WP for the option ROMs and BIOS;
//! variable range 0 marks 0xE0000000-0xFFFFFFFF UC; default type WB with fixed and
//! variable ranges enabled. The memory types have no effect here (no caches are modelled);
//! the values only have to read back as on QEMU.

/// IA32_MTRRCAP: VCNT 8, fixed ranges (bit 8), write-combining (bit 10).
pub const MTRRCAP: u64 = 0x508;
/// IA32_MCG_CAP: 10 banks, MCG_CTL present (bit 8), software error recovery (bit 24).
pub const MCG_CAP: u64 = (1 << 24) | (1 << 8) | MCA_BANKS as u64;
const MCA_BANKS: usize = 10;
const VAR_MTRRS: usize = 8;

pub const IA32_MCG_CAP: u32 = 0x179;
pub const IA32_MCG_STATUS: u32 = 0x17a;
pub const IA32_MCG_CTL: u32 = 0x17b;
const MTRR_PHYS_BASE0: u32 = 0x200;
const MTRR_FIX64K_00000: u32 = 0x250;
const MTRR_FIX16K_80000: u32 = 0x258;
const MTRR_FIX16K_A0000: u32 = 0x259;
const MTRR_FIX4K_C0000: u32 = 0x268;
const MTRR_FIX4K_F8000: u32 = 0x26f;
const MTRR_DEF_TYPE: u32 = 0x2ff;
const MC0_CTL: u32 = 0x400;

/// Memory types, one byte per fixed range.
const WB8: u64 = 0x0606_0606_0606_0606;
const WP8: u64 = 0x0505_0505_0505_0505;
/// SeaBIOS's PCI window start (BUILD_PCIMEM_START): UC from here to 4 GiB.
const PCIMEM_START: u64 = 0xe000_0000;
const MTRR_TYPE_UC: u64 = 0;
const MTRR_VALID: u64 = 0x800;
/// Default type WB (6), fixed ranges enabled (bit 10), MTRRs enabled (bit 11).
const DEF_TYPE_SEABIOS: u64 = 0xc06;

/// The state of the MTRR and MCA MSRs.
#[derive(Debug, Clone)]
pub struct ExtMsrs {
    def_type: u64,
    /// 0x250, 0x258, 0x259, 0x268..0x26f.
    fixed: [u64; 11],
    /// Base/mask pairs from 0x200.
    var: [u64; 2 * VAR_MTRRS],
    mcg_status: u64,
    mcg_ctl: u64,
    /// CTL, STATUS, ADDR, MISC per bank from 0x400.
    banks: [u64; 4 * MCA_BANKS],
}

impl Default for ExtMsrs {
    /// As SeaBIOS leaves them on QEMU (any RAM size of 1 MiB or more).
    fn default() -> Self {
        let mut fixed = [WP8; 11];
        fixed[0] = WB8;
        fixed[1] = WB8;
        fixed[2] = 0;
        let mut var = [0; 2 * VAR_MTRRS];
        let phys_mask = (1u64 << crate::mmu::MAXPHYADDR) - 1;
        var[0] = PCIMEM_START | MTRR_TYPE_UC;
        var[1] = (0u64.wrapping_sub((1 << 32) - PCIMEM_START) & phys_mask) | MTRR_VALID;
        let mut banks = [0; 4 * MCA_BANKS];
        for b in 0..MCA_BANKS {
            banks[4 * b] = u64::MAX;
        }
        ExtMsrs {
            def_type: DEF_TYPE_SEABIOS,
            fixed,
            var,
            mcg_status: 0,
            mcg_ctl: u64::MAX,
            banks,
        }
    }
}

fn fixed_index(n: u32) -> Option<usize> {
    match n {
        MTRR_FIX64K_00000 => Some(0),
        MTRR_FIX16K_80000 => Some(1),
        MTRR_FIX16K_A0000 => Some(2),
        MTRR_FIX4K_C0000..=MTRR_FIX4K_F8000 => Some(3 + (n - MTRR_FIX4K_C0000) as usize),
        _ => None,
    }
}

impl ExtMsrs {
    /// The power-up state (SDM Vol. 3A, Table 9-1): MTRRs disabled and zero, as on an
    /// application processor SeaBIOS never set up (QEMU's APs under `-smp`).
    pub fn power_on() -> Self {
        ExtMsrs {
            def_type: 0,
            fixed: [0; 11],
            var: [0; 2 * VAR_MTRRS],
            ..Self::default()
        }
    }

    /// RDMSR of one of these MSRs; None if `n` is not one.
    pub fn read(&self, n: u32) -> Option<u64> {
        if let Some(i) = fixed_index(n) {
            return Some(self.fixed[i]);
        }
        let var_end = MTRR_PHYS_BASE0 + 2 * VAR_MTRRS as u32;
        let mc_end = MC0_CTL + 4 * MCA_BANKS as u32;
        Some(match n {
            crate::cpu::regs::msr::IA32_MTRRCAP => MTRRCAP,
            MTRR_DEF_TYPE => self.def_type,
            _ if (MTRR_PHYS_BASE0..var_end).contains(&n) => {
                self.var[(n - MTRR_PHYS_BASE0) as usize]
            }
            IA32_MCG_CAP => MCG_CAP,
            IA32_MCG_STATUS => self.mcg_status,
            IA32_MCG_CTL => self.mcg_ctl,
            _ if (MC0_CTL..mc_end).contains(&n) => self.banks[(n - MC0_CTL) as usize],
            _ => return None,
        })
    }

    /// WRMSR: None if `n` is not one of these, Some(false) for a value that faults (#GP).
    pub fn write(&mut self, n: u32, v: u64) -> Option<bool> {
        if let Some(i) = fixed_index(n) {
            self.fixed[i] = v;
            return Some(true);
        }
        let var_end = MTRR_PHYS_BASE0 + 2 * VAR_MTRRS as u32;
        let mc_end = MC0_CTL + 4 * MCA_BANKS as u32;
        match n {
            // Read-only capability registers.
            crate::cpu::regs::msr::IA32_MTRRCAP | IA32_MCG_CAP => return Some(false),
            MTRR_DEF_TYPE => {
                // Reserved bits (everything but the type and the two enables) fault.
                if v & !0xcff != 0 {
                    return Some(false);
                }
                self.def_type = v;
            }
            _ if (MTRR_PHYS_BASE0..var_end).contains(&n) => {
                self.var[(n - MTRR_PHYS_BASE0) as usize] = v
            }
            IA32_MCG_STATUS => self.mcg_status = v,
            IA32_MCG_CTL => self.mcg_ctl = v,
            _ if (MC0_CTL..mc_end).contains(&n) => {
                let i = (n - MC0_CTL) as usize;
                // A bank's CTL takes only all-zeros or all-ones (SDM vol. 3 16.3.2.1;
                // other values #GP, as KVM and kvm-unit-tests' `msr` expect, where
                // QEMU TCG ignores them); STATUS only 0.
                match i % 4 {
                    0 if v != 0 && v != u64::MAX => return Some(false),
                    1 if v != 0 => return Some(false),
                    _ => self.banks[i] = v,
                }
            }
            _ => return None,
        }
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seabios_values_and_capabilities() {
        let mut m = ExtMsrs::default();
        assert_eq!(m.read(0xfe), Some(0x508));
        assert_eq!(m.read(MTRR_DEF_TYPE), Some(0xc06));
        assert_eq!(m.read(0x201), Some(0x00ff_e000_0800));
        assert_eq!(m.read(0x26f), Some(WP8));
        assert_eq!(m.read(IA32_MCG_CAP), Some(0x100_010a));
        assert_eq!(m.write(IA32_MCG_CAP, 0), Some(false));
        assert_eq!(m.write(0x401, 1), Some(false));
        // MC0_CTL: all ones or zeros only.
        assert_eq!(m.write(0x400, 0xaaaa_aaaa_aaaa_aaaa), Some(false));
        assert_eq!(m.write(0x400, u64::MAX), Some(true));
        assert_eq!(m.read(0x400), Some(u64::MAX));
        assert_eq!(m.write(0x202, 5), Some(true));
        assert_eq!(m.read(0x202), Some(5));
        assert_eq!(m.read(0x428), None);
        assert_eq!(m.write(0x3ff, 0), None);
    }
}
