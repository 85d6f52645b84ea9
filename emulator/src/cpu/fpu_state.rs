//! The x87/SSE register file and its memory images: XMM0-15, MXCSR, the x87 stack (80-bit
//! registers, TOP, tag, status and control words, last instruction/operand pointers), XCR0,
//! and the FXSAVE layout (SDM Vol. 1, 10.5.1, Table 10-2) that FXSAVE/FXRSTOR, XSAVE's
//! legacy region, the GDB stub and the differential test share.

/// MXCSR bits (SDM Vol. 1, 10.2.3).
pub mod mxcsr {
    /// Exception flags: invalid, denormal, divide-by-zero, overflow, underflow, precision.
    pub const IE: u32 = 1 << 0;
    pub const DE: u32 = 1 << 1;
    pub const ZE: u32 = 1 << 2;
    pub const OE: u32 = 1 << 3;
    pub const UE: u32 = 1 << 4;
    pub const PE: u32 = 1 << 5;
    pub const FLAGS: u32 = 0x3f;
    /// Denormals are zeros (inputs).
    pub const DAZ: u32 = 1 << 6;
    /// The exception masks sit 7 bits above their flags.
    pub const MASK_SHIFT: u32 = 7;
    pub const MASKS: u32 = FLAGS << MASK_SHIFT;
    pub const UM: u32 = UE << MASK_SHIFT;
    pub const RC_SHIFT: u32 = 13;
    pub const RC: u32 = 3 << RC_SHIFT;
    /// Flush to zero (tiny results, with underflow masked).
    pub const FTZ: u32 = 1 << 15;
    /// Power-on and FNINIT/XRSTOR-init value: all exceptions masked, round to nearest.
    pub const DEFAULT: u32 = 0x1f80;
    /// Bits this CPU implements (FXSAVE's MXCSR_MASK): all 16, DAZ included. Setting any
    /// other bit is #GP(0).
    pub const MASK: u32 = 0xffff;
}

/// x87 control word fields (SDM Vol. 1, 8.1.5).
pub mod fcw {
    /// Exception masks IM..PM (bits 0-5), as the status word's flags.
    pub const MASKS: u16 = 0x3f;
    pub const PC_SHIFT: u16 = 8;
    pub const PC: u16 = 3 << PC_SHIFT;
    pub const RC_SHIFT: u16 = 10;
    pub const RC: u16 = 3 << RC_SHIFT;
    /// FNINIT value: everything masked, 64-bit precision, round to nearest.
    pub const DEFAULT: u16 = 0x037f;
    /// Bit 6 reads as 1; bits 13-15 are reserved and read as 0 (the infinity bit 12 is
    /// kept: current processors store and ignore it).
    pub const FIXED: u16 = 0x0040;
    pub const WRITABLE: u16 = 0x1f3f;
}

/// x87 status word fields (SDM Vol. 1, 8.1.3).
pub mod fsw {
    pub const IE: u16 = 1 << 0;
    pub const DE: u16 = 1 << 1;
    pub const ZE: u16 = 1 << 2;
    pub const OE: u16 = 1 << 3;
    pub const UE: u16 = 1 << 4;
    pub const PE: u16 = 1 << 5;
    /// Stack fault (with IE: overflow if C1, underflow if not).
    pub const SF: u16 = 1 << 6;
    /// Error summary: an unmasked exception is pending.
    pub const ES: u16 = 1 << 7;
    pub const C0: u16 = 1 << 8;
    pub const C1: u16 = 1 << 9;
    pub const C2: u16 = 1 << 10;
    pub const TOP_SHIFT: u16 = 11;
    pub const TOP: u16 = 7 << TOP_SHIFT;
    pub const C3: u16 = 1 << 14;
    pub const B: u16 = 1 << 15;
    pub const CC: u16 = C0 | C1 | C2 | C3;
    pub const EXCEPTIONS: u16 = 0x3f;
}

/// The 2-bit tag of an x87 register (SDM Vol. 1, 8.1.7).
pub mod tag {
    pub const VALID: u16 = 0;
    pub const ZERO: u16 = 1;
    pub const SPECIAL: u16 = 2;
    pub const EMPTY: u16 = 3;
}

/// XCR0 bits.
pub mod xcr0 {
    pub const X87: u64 = 1 << 0;
    pub const SSE: u64 = 1 << 1;
    /// State component 9, the PKRU register (SDM Vol. 1, 13.5.7).
    pub const PKRU: u64 = 1 << 9;
    /// What this CPU supports (CPUID.(EAX=0DH,ECX=0):EAX).
    pub const SUPPORTED: u64 = X87 | SSE | PKRU;
    /// Offset of the PKRU component in the standard format (CPUID.(EAX=0DH,ECX=9):EBX).
    pub const PKRU_OFFSET: u32 = 2688;
    /// Size of the PKRU component (CPUID.(EAX=0DH,ECX=9):EAX): PKRU and 4 reserved bytes.
    pub const PKRU_SIZE: u32 = 8;
}

/// FXSAVE image offsets (SDM Vol. 1, Table 10-2).
pub mod fx {
    pub const SIZE: usize = 512;
    pub const FCW: usize = 0;
    pub const FSW: usize = 2;
    pub const FTW: usize = 4;
    pub const FOP: usize = 6;
    pub const FIP: usize = 8;
    pub const FCS: usize = 12;
    pub const FDP: usize = 16;
    pub const FDS: usize = 20;
    pub const MXCSR: usize = 24;
    pub const MXCSR_MASK: usize = 28;
    pub const ST0: usize = 32;
    /// Each ST/MM register takes 16 bytes, of which 10 are used.
    pub const ST_STRIDE: usize = 16;
    pub const XMM0: usize = 160;
    /// End of the area FXSAVE writes (bytes 416..511 are left alone).
    pub const END: usize = 416;
}

/// One 80-bit x87 register: a 64-bit significand with explicit integer bit, sign and
/// 15-bit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct F80 {
    pub signif: u64,
    pub sign_exp: u16,
}

impl F80 {
    pub const EXP_MAX: u16 = 0x7fff;
    pub fn exp(self) -> u16 {
        self.sign_exp & Self::EXP_MAX
    }
    pub fn sign(self) -> bool {
        self.sign_exp & 0x8000 != 0
    }
    /// The register's tag from its contents (FXRSTOR and FSTENV recompute it so).
    pub fn tag(self) -> u16 {
        let (e, m) = (self.exp(), self.signif);
        if e == Self::EXP_MAX {
            tag::SPECIAL
        } else if e == 0 {
            if m == 0 {
                tag::ZERO
            } else {
                tag::SPECIAL
            }
        } else if m >> 63 == 0 {
            // Unnormal: unsupported, treated as special.
            tag::SPECIAL
        } else {
            tag::VALID
        }
    }
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.signif.to_le_bytes());
        b[8..].copy_from_slice(&self.sign_exp.to_le_bytes());
        b
    }
    pub fn from_bytes(b: &[u8]) -> F80 {
        F80 {
            signif: u64::from_le_bytes(b[..8].try_into().unwrap()),
            sign_exp: u16::from_le_bytes([b[8], b[9]]),
        }
    }
}

/// x87 and SSE state.
#[derive(Debug, Clone)]
pub struct FpuState {
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    /// Physical registers R0..R7 (ST(i) is R((TOP + i) mod 8)).
    pub st: [F80; 8],
    pub fcw: u16,
    /// Status word with TOP kept in its field.
    pub fsw: u16,
    /// Full tag word, two bits per physical register.
    pub ftw: u16,
    /// Last x87 opcode (11 bits), instruction and data pointers (64-bit, as FXSAVE64
    /// stores them), and their selectors for the 32-bit image.
    pub fop: u16,
    pub fip: u64,
    pub fcs: u16,
    pub fdp: u64,
    pub fds: u16,
    pub xcr0: u64,
}

impl Default for FpuState {
    fn default() -> Self {
        FpuState {
            xmm: [0; 16],
            mxcsr: mxcsr::DEFAULT,
            st: [F80::default(); 8],
            fcw: fcw::DEFAULT,
            fsw: 0,
            ftw: 0xffff,
            fop: 0,
            fip: 0,
            fcs: 0,
            fdp: 0,
            fds: 0,
            xcr0: xcr0::X87,
        }
    }
}

impl FpuState {
    /// FNINIT: control word 0x37f, status 0, every register empty, pointers cleared.
    pub fn finit(&mut self) {
        self.fcw = fcw::DEFAULT;
        self.fsw = 0;
        self.ftw = 0xffff;
        self.fop = 0;
        self.fip = 0;
        self.fcs = 0;
        self.fdp = 0;
        self.fds = 0;
    }

    /// FXSAVE's abridged tag: one bit per physical register, 1 = not empty.
    pub fn abridged_tag(&self) -> u8 {
        (0..8).fold(0u8, |a, r| {
            a | (((self.ftw >> (2 * r)) & 3 != tag::EMPTY) as u8) << r
        })
    }

    /// The FXSAVE image (`rex_w`: the 64-bit layout with 64-bit FIP/FDP).
    pub fn fxsave(&self, rex_w: bool) -> [u8; fx::SIZE] {
        let mut b = [0u8; fx::SIZE];
        self.fxsave_into(&mut b, rex_w);
        b
    }

    /// Write the FXSAVE image into `b`, leaving bytes 416..511 as they are.
    pub fn fxsave_into(&self, b: &mut [u8; fx::SIZE], rex_w: bool) {
        b[fx::FCW..fx::FCW + 2].copy_from_slice(&self.fcw.to_le_bytes());
        b[fx::FSW..fx::FSW + 2].copy_from_slice(&self.fsw.to_le_bytes());
        b[fx::FTW] = self.abridged_tag();
        b[fx::FTW + 1] = 0;
        b[fx::FOP..fx::FOP + 2].copy_from_slice(&self.fop.to_le_bytes());
        if rex_w {
            b[fx::FIP..fx::FIP + 8].copy_from_slice(&self.fip.to_le_bytes());
            b[fx::FDP..fx::FDP + 8].copy_from_slice(&self.fdp.to_le_bytes());
        } else {
            b[fx::FIP..fx::FIP + 4].copy_from_slice(&(self.fip as u32).to_le_bytes());
            b[fx::FCS..fx::FCS + 2].copy_from_slice(&self.fcs.to_le_bytes());
            b[fx::FCS + 2..fx::FDP].fill(0);
            b[fx::FDP..fx::FDP + 4].copy_from_slice(&(self.fdp as u32).to_le_bytes());
            b[fx::FDS..fx::FDS + 2].copy_from_slice(&self.fds.to_le_bytes());
            b[fx::FDS + 2..fx::MXCSR].fill(0);
        }
        b[fx::MXCSR..fx::MXCSR + 4].copy_from_slice(&self.mxcsr.to_le_bytes());
        b[fx::MXCSR_MASK..fx::MXCSR_MASK + 4].copy_from_slice(&mxcsr::MASK.to_le_bytes());
        let top = self.top();
        for i in 0..8 {
            // The image holds ST(i) in stack order, not R(i).
            let o = fx::ST0 + i * fx::ST_STRIDE;
            b[o..o + 10].copy_from_slice(&self.st[(top + i) & 7].to_bytes());
            b[o + 10..o + fx::ST_STRIDE].fill(0);
        }
        for (i, x) in self.xmm.iter().enumerate() {
            let o = fx::XMM0 + 16 * i;
            b[o..o + 16].copy_from_slice(&x.to_le_bytes());
        }
    }

    /// The MXCSR value an FXRSTOR image holds (the caller checks reserved bits first).
    pub fn image_mxcsr(b: &[u8]) -> u32 {
        u32::from_le_bytes(b[fx::MXCSR..fx::MXCSR + 4].try_into().unwrap())
    }

    /// Load an FXRSTOR image (x87 part and/or SSE part).
    pub fn fxrstor(&mut self, b: &[u8; fx::SIZE], rex_w: bool, x87: bool, sse: bool) {
        if x87 {
            self.fcw = u16::from_le_bytes([b[fx::FCW], b[fx::FCW + 1]]);
            self.fsw = u16::from_le_bytes([b[fx::FSW], b[fx::FSW + 1]]);
            self.fop = u16::from_le_bytes([b[fx::FOP], b[fx::FOP + 1]]) & 0x7ff;
            if rex_w {
                self.fip = u64::from_le_bytes(b[fx::FIP..fx::FIP + 8].try_into().unwrap());
                self.fdp = u64::from_le_bytes(b[fx::FDP..fx::FDP + 8].try_into().unwrap());
                self.fcs = 0;
                self.fds = 0;
            } else {
                self.fip = u32::from_le_bytes(b[fx::FIP..fx::FIP + 4].try_into().unwrap()) as u64;
                self.fcs = u16::from_le_bytes([b[fx::FCS], b[fx::FCS + 1]]);
                self.fdp = u32::from_le_bytes(b[fx::FDP..fx::FDP + 4].try_into().unwrap()) as u64;
                self.fds = u16::from_le_bytes([b[fx::FDS], b[fx::FDS + 1]]);
            }
            let top = ((self.fsw & fsw::TOP) >> fsw::TOP_SHIFT) as usize;
            for i in 0..8 {
                let o = fx::ST0 + i * fx::ST_STRIDE;
                self.st[(top + i) & 7] = F80::from_bytes(&b[o..o + 10]);
            }
            let abridged = b[fx::FTW];
            self.ftw = 0;
            for r in 0..8 {
                let t = if abridged & (1 << r) == 0 {
                    tag::EMPTY
                } else {
                    self.st[r].tag()
                };
                self.ftw |= t << (2 * r);
            }
        }
        if sse {
            self.mxcsr = Self::image_mxcsr(b);
            for (i, x) in self.xmm.iter_mut().enumerate() {
                let o = fx::XMM0 + 16 * i;
                *x = u128::from_le_bytes(b[o..o + 16].try_into().unwrap());
            }
        }
    }

    pub fn top(&self) -> usize {
        ((self.fsw & fsw::TOP) >> fsw::TOP_SHIFT) as usize
    }
    pub fn set_top(&mut self, top: usize) {
        self.fsw = (self.fsw & !fsw::TOP) | (((top & 7) as u16) << fsw::TOP_SHIFT);
    }
    /// Physical register number of ST(i).
    pub fn phys(&self, i: usize) -> usize {
        (self.top() + i) & 7
    }
    pub fn tag_of(&self, i: usize) -> u16 {
        (self.ftw >> (2 * self.phys(i))) & 3
    }
    pub fn set_tag(&mut self, i: usize, t: u16) {
        let r = self.phys(i);
        self.ftw = (self.ftw & !(3 << (2 * r))) | (t << (2 * r));
    }
    pub fn st(&self, i: usize) -> F80 {
        self.st[self.phys(i)]
    }
    /// Write ST(i) and tag it from its contents.
    pub fn set_st(&mut self, i: usize, v: F80) {
        let r = self.phys(i);
        self.st[r] = v;
        self.set_tag(i, v.tag());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fxsave_round_trip_keeps_stack_order_and_tags() {
        let mut s = FpuState::default();
        s.set_top(6);
        s.set_st(
            0,
            F80 {
                signif: 1 << 63,
                sign_exp: 0x3fff,
            },
        );
        s.set_st(1, F80::default());
        s.xmm[15] = 0x0123_4567_89ab_cdef_0011_2233_4455_6677;
        s.mxcsr = 0x7f80 | mxcsr::FTZ;
        let img = s.fxsave(true);
        assert_eq!(img[fx::FTW], (1 << 6) | (1 << 7));
        assert_eq!(&img[fx::ST0 + 8..fx::ST0 + 10], &[0xff, 0x3f]);
        let mut t = FpuState::default();
        t.fxrstor(&img, true, true, true);
        assert_eq!(t.tag_of(0), tag::VALID);
        assert_eq!(t.tag_of(1), tag::ZERO);
        assert_eq!(t.tag_of(2), tag::EMPTY);
        assert_eq!(t.st(0), s.st(0));
        assert_eq!((t.xmm, t.mxcsr, t.fsw), (s.xmm, s.mxcsr, s.fsw));
    }
}
