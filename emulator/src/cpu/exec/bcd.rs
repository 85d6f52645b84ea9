//! The legacy decimal-arithmetic instructions (invalid in 64-bit mode): DAA, DAS, AAA,
//! AAS, AAM, AAD, and the undocumented SALC. Pure functions of AX and the flags, following
//! the SDM's pseudo-code. Flags the SDM leaves undefined: DAA/DAS's OF, AAA/AAS's OF, SF,
//! ZF and PF, AAM/AAD's OF, AF and CF keep their previous values (QEMU's choice; the
//! kvm-unit-tests `realmode` table checks the defined ones).

use crate::cpu::alu::szp;
use crate::cpu::regs::rflags::{AF, CF, PF, SF, ZF};

/// (new AL, new flags) for DAA (`sub` false) or DAS (`sub` true).
pub fn daa_das(al: u8, flags: u64, sub: bool) -> (u8, u64) {
    let (old_al, old_cf) = (al, flags & CF != 0);
    let mut al = al;
    let mut cf = false;
    let mut af = false;
    if al & 0xf > 9 || flags & AF != 0 {
        let (r, carry) = if sub {
            al.overflowing_sub(6)
        } else {
            al.overflowing_add(6)
        };
        al = r;
        cf = old_cf || carry;
        af = true;
    }
    if old_al > 0x99 || old_cf {
        al = if sub {
            al.wrapping_sub(0x60)
        } else {
            al.wrapping_add(0x60)
        };
        cf = true;
    } else if !sub {
        cf = false;
    }
    let f = (flags & !(CF | AF | SF | ZF | PF))
        | szp(al as u64, 1)
        | if cf { CF } else { 0 }
        | if af { AF } else { 0 };
    (al, f)
}

/// (new AX, new flags) for AAA (`sub` false) or AAS (`sub` true).
pub fn aaa_aas(ax: u16, flags: u64, sub: bool) -> (u16, u64) {
    let (mut al, mut ah) = (ax as u8, (ax >> 8) as u8);
    let adjust = al & 0xf > 9 || flags & AF != 0;
    if adjust {
        if sub {
            al = al.wrapping_sub(6);
            ah = ah.wrapping_sub(1);
        } else {
            al = al.wrapping_add(6);
            ah = ah.wrapping_add(1);
        }
    }
    al &= 0xf;
    let f = (flags & !(CF | AF)) | if adjust { CF | AF } else { 0 };
    ((ah as u16) << 8 | al as u16, f)
}

/// AAM imm8: None for a zero base (#DE).
pub fn aam(ax: u16, base: u8, flags: u64) -> Option<(u16, u64)> {
    let al = ax as u8;
    let (q, r) = (al.checked_div(base)?, al % base);
    let f = (flags & !(SF | ZF | PF)) | szp(r as u64, 1);
    Some(((q as u16) << 8 | r as u16, f))
}

/// AAD imm8.
pub fn aad(ax: u16, base: u8, flags: u64) -> (u16, u64) {
    let al = (ax as u8).wrapping_add(((ax >> 8) as u8).wrapping_mul(base));
    let f = (flags & !(SF | ZF | PF)) | szp(al as u64, 1);
    (al as u16, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daa_das_follow_the_sdm() {
        // 0x79 + 0x35 = 0xae, DAA gives 0x14 with CF.
        assert_eq!(daa_das(0xae, 0, false), (0x14, CF | AF | PF));
        // 0x35 - 0x47 = 0xee (CF, AF), DAS gives 0x88 with CF.
        let (al, f) = daa_das(0xee, CF | AF, true);
        assert_eq!((al, f & (CF | AF)), (0x88, CF | AF));
        // Entries of kvm-unit-tests' DAS table: (AL, flags in, AL out, flags out).
        for t in [0x8701a000u32, 0x9710fa00, 0x1600050b, 0x56100006] {
            let (al, f) = daa_das(t as u8, ((t >> 16) & 0xff) as u64, true);
            assert_eq!(al, (t >> 8) as u8, "{t:#x}");
            assert_eq!((f | 2) & 0xff, (t >> 24) as u64, "{t:#x}");
        }
    }

    #[test]
    fn ascii_adjusts() {
        assert_eq!(aaa_aas(0x000f, 0, false), (0x0105, CF | AF));
        assert_eq!(aaa_aas(0x0208, 0, true), (0x0208, 0));
        assert_eq!(aam(0x3210, 10, 0).unwrap().0, 0x0106);
        assert!(aam(0x10, 0, 0).is_none());
        assert_eq!(aad(0x5678, 10, 0).0, 0x00d4);
    }
}
