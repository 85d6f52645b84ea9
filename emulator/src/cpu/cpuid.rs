//! The CPU model CPUID reports: the same leaves on every run and every host, advertising
//! only what this emulator implements: the x87 FPU, MMX, FXSAVE, SSE, SSE2, SSE3, SSSE3,
//! SSE4.1 and SSE4.2, XSAVE with XCR0 = x87|SSE|PKRU (leaf 0xd), protection keys (PKU,
//! PKS); no AVX or later, no x2APIC.

/// Whether SSE3 (and with it FISTTP) is advertised and implemented.
pub const HAS_SSE3: bool = true;

/// Leaf 1 EDX feature bits.
mod edx1 {
    pub const TSC: u32 = 1 << 4;
    pub const MSR: u32 = 1 << 5;
    pub const PAE: u32 = 1 << 6;
    /// Machine-check exception (#MC) and CR4.MCE.
    pub const MCE: u32 = 1 << 7;
    pub const CX8: u32 = 1 << 8;
    /// MTRRs (cpu/msr_ext.rs).
    pub const MTRR: u32 = 1 << 12;
    /// Machine-check architecture: MCG_CAP and 10 banks (cpu/msr_ext.rs).
    pub const MCA: u32 = 1 << 14;
    pub const APIC: u32 = 1 << 9;
    pub const PGE: u32 = 1 << 13;
    pub const CMOV: u32 = 1 << 15;
    pub const MMX: u32 = 1 << 23;
    pub const PAT: u32 = 1 << 16;
    pub const CLFSH: u32 = 1 << 19;
    pub const PSE: u32 = 1 << 3;
    pub const DE: u32 = 1 << 2;
    pub const FPU: u32 = 1 << 0;
    pub const FXSR: u32 = 1 << 24;
    pub const SSE: u32 = 1 << 25;
    pub const SSE2: u32 = 1 << 26;
}
/// Leaf 1 ECX feature bits.
mod ecx1 {
    pub const SSE3: u32 = 1 << 0;
    pub const SSSE3: u32 = 1 << 9;
    pub const SSE41: u32 = 1 << 19;
    pub const SSE42: u32 = 1 << 20;
    pub const CX16: u32 = 1 << 13;
    pub const PCID: u32 = 1 << 17;
    pub const MOVBE: u32 = 1 << 22;
    pub const POPCNT: u32 = 1 << 23;
    pub const XSAVE: u32 = 1 << 26;
    /// CR4.OSXSAVE as the OS set it.
    pub const OSXSAVE: u32 = 1 << 27;
    pub const HYPERVISOR: u32 = 1 << 31;
}
/// Leaf 7 EBX feature bits.
mod ebx7 {
    pub const FSGSBASE: u32 = 1 << 0;
    pub const BMI1: u32 = 1 << 3;
    pub const SMEP: u32 = 1 << 7;
    pub const BMI2: u32 = 1 << 8;
    pub const ERMS: u32 = 1 << 9;
    pub const INVPCID: u32 = 1 << 10;
    pub const SMAP: u32 = 1 << 20;
}
/// Leaf 7 ECX feature bits.
mod ecx7 {
    /// Protection keys for user-mode pages (PKRU, RDPKRU/WRPKRU, CR4.PKE).
    pub const PKU: u32 = 1 << 3;
    /// CR4.PKE as the OS set it.
    pub const OSPKE: u32 = 1 << 4;
    /// Protection keys for supervisor-mode pages (IA32_PKRS, CR4.PKS).
    pub const PKS: u32 = 1 << 31;
}
/// Leaf 0x8000_0001 bits.
mod ext1 {
    pub const ECX_LAHF_LM: u32 = 1 << 0;
    pub const ECX_ABM: u32 = 1 << 5;
    pub const EDX_SYSCALL: u32 = 1 << 11;
    pub const EDX_NX: u32 = 1 << 20;
    pub const EDX_PAGE1GB: u32 = 1 << 26;
    pub const EDX_RDTSCP: u32 = 1 << 27;
    pub const EDX_LM: u32 = 1 << 29;
}

/// Leaf 0xd subleaf 1 EAX: XSAVEOPT (executed as XSAVE, which the SDM allows).
const XSAVEOPT: u32 = 1 << 0;

/// Highest basic leaf.
const MAX_BASIC: u32 = 0xd;
/// Highest extended leaf.
const MAX_EXT: u32 = 0x8000_0008;
/// Family 6, model 0x3A, stepping 9 (an Ivy Bridge signature; only informative).
const SIGNATURE: u32 = 0x0003_06a9;
/// CLFLUSH line size in 8-byte units (64-byte lines), CPUID.1:EBX[15:8].
const CLFLUSH_LINE_QWORDS: u32 = 8;
/// 40-bit physical, 48-bit linear addresses (CPUID.8000_0008:EAX).
const ADDRESS_SIZES: u32 = (48 << 8) | crate::mmu::MAXPHYADDR;
/// The CPU vendor CPUID names, and the vendor-specific behaviours vmscope models with it
/// (SYSCALL in compatibility mode: AMD executes it, Intel raises #UD). Everything else
/// about the CPU model is the same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vendor {
    #[default]
    Intel,
    Amd,
}

impl Vendor {
    fn id(self) -> &'static [u8; 12] {
        match self {
            Vendor::Intel => b"GenuineIntel",
            Vendor::Amd => b"AuthenticAMD",
        }
    }
}

/// What CPUID's answer depends on besides the leaf: the asking CPU's APIC ID, vendor, and
/// the control state some bits follow (OSXSAVE: CR4; the XSAVE size: XCR0; the APIC
/// feature bit: IA32_APIC_BASE's global enable).
#[derive(Debug, Clone, Copy)]
pub struct CpuidState {
    pub apic_id: u32,
    pub vendor: Vendor,
    pub cr4: u64,
    pub xcr0: u64,
    pub apic_enabled: bool,
}

impl Default for CpuidState {
    fn default() -> Self {
        CpuidState {
            apic_id: 0,
            vendor: Vendor::Intel,
            cr4: 0,
            xcr0: 1,
            apic_enabled: true,
        }
    }
}
const BRAND: &[u8; 48] = b"vmscope virtual x86-64 CPU\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

fn le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// CPUID(leaf, subleaf) → (EAX, EBX, ECX, EDX) for the CPU described by `st`.
pub fn cpuid(leaf: u32, subleaf: u32, st: &CpuidState) -> (u32, u32, u32, u32) {
    use self::{ebx7::*, ecx1::*, edx1::*, ext1::*};
    let CpuidState {
        apic_id, cr4, xcr0, ..
    } = *st;
    let vendor = st.vendor.id();
    match leaf {
        0 => (
            MAX_BASIC,
            le(&vendor[0..4]),
            le(&vendor[8..12]),
            le(&vendor[4..8]),
        ),
        1 => (
            SIGNATURE,
            (apic_id << 24) | (1 << 16) | (CLFLUSH_LINE_QWORDS << 8),
            SSE3 | SSSE3
                | SSE41
                | SSE42
                | CX16
                | PCID
                | MOVBE
                | POPCNT
                | XSAVE
                | HYPERVISOR
                | if cr4 & crate::cpu::regs::cr4::OSXSAVE != 0 {
                    OSXSAVE
                } else {
                    0
                },
            FPU | DE
                | PSE
                | TSC
                | MSR
                | PAE
                | MCE
                | CX8
                | MTRR
                | MCA
                | if st.apic_enabled { APIC } else { 0 }
                | PGE
                | CMOV
                | PAT
                | CLFSH
                | MMX
                | FXSR
                | SSE
                | SSE2,
        ),
        7 if subleaf == 0 => (
            0,
            FSGSBASE | BMI1 | SMEP | BMI2 | ERMS | INVPCID | SMAP,
            ecx7::PKU
                | ecx7::PKS
                | if cr4 & crate::cpu::regs::cr4::PKE != 0 {
                    ecx7::OSPKE
                } else {
                    0
                },
            0,
        ),
        // XSAVE: subleaf 0 lists the XCR0 bits supported and the area sizes (for the
        // enabled features, and for all); subleaf 1 the XSAVE extensions.
        // Extended topology (x2APIC ID in EDX of every subleaf): one thread per core and
        // one core per package, as QEMU presents it for `-smp N,sockets=N`: subleaf 0 the
        // SMT level, 1 the core level (each a shift of 0 and one logical processor), then
        // an invalid level. Leaf 0x1F is not offered (above the highest basic leaf; QEMU
        // offers it only with several dies).
        0xb => match subleaf {
            0 => (0, 1, 0x100, apic_id),
            1 => (0, 1, 0x201, apic_id),
            n => (0, 0, n & 0xff, apic_id),
        },
        0xd if subleaf == 0 => {
            use crate::cpu::fpu_state::xcr0 as x;
            let all = crate::cpu::sse::xsave_area_size(x::SUPPORTED);
            (
                x::SUPPORTED as u32,
                crate::cpu::sse::xsave_area_size(xcr0),
                all,
                0,
            )
        }
        0xd if subleaf == 1 => (XSAVEOPT, 0, 0, 0),
        // PKRU: size and offset in the standard format; a user state component (ECX 0).
        0xd if subleaf == 9 => {
            use crate::cpu::fpu_state::xcr0 as x;
            (x::PKRU_SIZE, x::PKRU_OFFSET, 0, 0)
        }
        // AMD repeats the vendor here; Intel leaves these registers reserved (zero).
        0x8000_0000 => match st.vendor {
            Vendor::Intel => (MAX_EXT, 0, 0, 0),
            Vendor::Amd => (
                MAX_EXT,
                le(&vendor[0..4]),
                le(&vendor[8..12]),
                le(&vendor[4..8]),
            ),
        },
        0x8000_0001 => (
            0,
            0,
            ECX_LAHF_LM | ECX_ABM,
            EDX_SYSCALL | EDX_NX | EDX_PAGE1GB | EDX_RDTSCP | EDX_LM,
        ),
        0x8000_0002..=0x8000_0004 => {
            let o = ((leaf - 0x8000_0002) * 16) as usize;
            (
                le(&BRAND[o..]),
                le(&BRAND[o + 4..]),
                le(&BRAND[o + 8..]),
                le(&BRAND[o + 12..]),
            )
        }
        0x8000_0008 => (ADDRESS_SIZES, 0, 0, 0),
        _ => (0, 0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::regs::cr4;

    fn st(apic_id: u32, cr4: u64, xcr0: u64) -> CpuidState {
        CpuidState {
            apic_id,
            cr4,
            xcr0,
            ..CpuidState::default()
        }
    }

    /// The vendor string in leaf 0 (and AMD's in 0x80000000); the APIC bit follows the
    /// APIC's global enable.
    #[test]
    fn vendor_and_apic_enable() {
        let amd = CpuidState {
            vendor: Vendor::Amd,
            ..CpuidState::default()
        };
        let (_, b, c, d) = cpuid(0, 0, &amd);
        let name: Vec<u8> = [b, d, c].iter().flat_map(|r| r.to_le_bytes()).collect();
        assert_eq!(&name, b"AuthenticAMD");
        assert_eq!(cpuid(0x8000_0000, 0, &amd).1, b);
        assert_eq!(cpuid(0x8000_0000, 0, &CpuidState::default()).1, 0);
        let off = CpuidState {
            apic_enabled: false,
            ..CpuidState::default()
        };
        assert_eq!(cpuid(1, 0, &off).3 & edx1::APIC, 0);
        assert_ne!(cpuid(1, 0, &CpuidState::default()).3 & edx1::APIC, 0);
    }

    /// Leaf 1 and leaf 0xd describe exactly the FPU/SIMD state this CPU implements, and
    /// OSXSAVE follows CR4.
    #[test]
    fn simd_leaves_match_the_implementation() {
        let (_, _, ecx, edx) = cpuid(1, 0, &st(0, 0, 1));
        let simd = edx1::FPU | edx1::MMX | edx1::FXSR | edx1::SSE | edx1::SSE2;
        assert_eq!(edx & simd, simd);
        assert_eq!(edx & (1 << 23), 1 << 23, "MMX");
        assert_eq!(ecx & ecx1::SSE3 != 0, HAS_SSE3);
        assert_ne!(ecx & ecx1::SSSE3, 0, "SSSE3");
        assert_ne!(ecx & ecx1::SSE41, 0, "SSE4.1");
        assert_ne!(ecx & ecx1::SSE42, 0, "SSE4.2");
        // AVX (28) and FMA (12) are not advertised.
        for bit in [12, 28] {
            assert_eq!(ecx & (1 << bit), 0, "ECX bit {bit}");
        }
        assert_eq!(ecx & ecx1::OSXSAVE, 0);
        let (_, _, ecx, _) = cpuid(1, 0, &st(0, cr4::OSXSAVE, 1));
        assert_ne!(ecx & ecx1::OSXSAVE, 0);
        assert_eq!(cpuid(0xd, 0, &st(0, 0, 3)), (0x203, 576, 2696, 0));
        assert_eq!(cpuid(0xd, 0, &st(0, 0, 0x203)), (0x203, 2696, 2696, 0));
        assert_eq!(cpuid(0xd, 9, &st(0, 0, 3)), (8, 2688, 0, 0));
        assert_eq!(cpuid(0xd, 1, &st(0, 0, 3)).0, XSAVEOPT);
        assert_eq!(cpuid(0, 0, &st(0, 0, 1)).0, 0xd);
    }

    /// Protection keys: PKU and PKS always, OSPKE as CR4.PKE.
    #[test]
    fn protection_key_bits() {
        let (_, _, ecx, _) = cpuid(7, 0, &st(0, 0, 1));
        assert_eq!(ecx, ecx7::PKU | ecx7::PKS);
        let (_, _, ecx, _) = cpuid(7, 0, &st(0, cr4::PKE, 1));
        assert_eq!(ecx, ecx7::PKU | ecx7::PKS | ecx7::OSPKE);
    }

    /// The APIC ID of the CPU asking, in leaf 1 and in leaf 0xB.
    #[test]
    fn topology_leaves_name_the_cpu() {
        for id in [0, 1, 5, 63] {
            assert_eq!(cpuid(1, 0, &st(id, 0, 1)).1 >> 24, id);
            assert_eq!(cpuid(0xb, 0, &st(id, 0, 1)), (0, 1, 0x100, id));
            assert_eq!(cpuid(0xb, 1, &st(id, 0, 1)), (0, 1, 0x201, id));
            assert_eq!(cpuid(0xb, 2, &st(id, 0, 1)), (0, 0, 2, id));
        }
    }
}
