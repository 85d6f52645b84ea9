//! Integer arithmetic with exact RFLAGS results, as pure functions of operands and operand
//! size (in bytes). Each returns the result and the new values of the six status flags;
//! the caller merges them into RFLAGS. Being pure, they are unit-tested and fuzzed against
//! the host CPU directly.
//!
//! Undefined flags (SDM "undefined"): this CPU model follows one fixed policy, documented in
//! ARCHITECTURE.md ("Undefined flags policy"): an undefined SF, ZF or PF is computed from the
//! result, an undefined AF is 0, and an undefined OF is 0 except after shifts and rotates,
//! where it follows the 1-bit formula for every count (see [`shift`] and [`shld_shrd`]).
//! Instructions without such a result (DIV/IDIV, BT*, BSF/BSR) leave undefined flags
//! unchanged; that is decided in `exec/arith.rs`. The differential test against the host CPU
//! (tests/diff_cpu.rs) masks every flag the SDM calls undefined.

use super::regs::rflags::{AF, CF, OF, PF, SF, ZF};

/// Mask of the low `size` bytes.
#[inline]
pub const fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// The sign bit for `size` bytes.
#[inline]
pub const fn sign_bit(size: u32) -> u64 {
    1u64 << (size * 8 - 1)
}

/// Sign-extend the low `size` bytes of `v` to 64 bits.
#[inline]
pub const fn sext(v: u64, size: u32) -> u64 {
    let sh = 64 - size * 8;
    (((v << sh) as i64) >> sh) as u64
}

#[inline]
fn parity(v: u64) -> u64 {
    if (v as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    }
}

/// SF, ZF and PF of a result.
#[inline]
pub fn szp(res: u64, size: u32) -> u64 {
    let r = res & mask(size);
    let mut f = parity(r);
    if r == 0 {
        f |= ZF;
    }
    if r & sign_bit(size) != 0 {
        f |= SF;
    }
    f
}

/// ADD/ADC: `a + b + carry`.
#[inline]
pub fn add(a: u64, b: u64, carry: bool, size: u32) -> (u64, u64) {
    let m = mask(size);
    let (a, b) = (a & m, b & m);
    let wide = a as u128 + b as u128 + carry as u128;
    let res = (wide as u64) & m;
    let mut f = szp(res, size);
    if wide > m as u128 {
        f |= CF;
    }
    if (a ^ res) & (b ^ res) & sign_bit(size) != 0 {
        f |= OF;
    }
    if (a ^ b ^ res) & 0x10 != 0 {
        f |= AF;
    }
    (res, f)
}

/// SUB/SBB/CMP: `a - b - borrow`.
#[inline]
pub fn sub(a: u64, b: u64, borrow: bool, size: u32) -> (u64, u64) {
    let m = mask(size);
    let (a, b) = (a & m, b & m);
    let res = a.wrapping_sub(b).wrapping_sub(borrow as u64) & m;
    let mut f = szp(res, size);
    if (a as u128) < b as u128 + borrow as u128 {
        f |= CF;
    }
    if (a ^ b) & (a ^ res) & sign_bit(size) != 0 {
        f |= OF;
    }
    if (a ^ b ^ res) & 0x10 != 0 {
        f |= AF;
    }
    (res, f)
}

/// AND/OR/XOR/TEST flags: CF = OF = 0, AF undefined (0).
#[inline]
pub fn logic(res: u64, size: u32) -> (u64, u64) {
    let r = res & mask(size);
    (r, szp(r, size))
}

/// INC: like ADD 1 but CF is left alone (returned flags exclude CF; caller keeps old CF).
#[inline]
pub fn inc(a: u64, size: u32) -> (u64, u64) {
    let (r, f) = add(a, 1, false, size);
    (r, f & !CF)
}

/// DEC: like SUB 1 but CF is left alone.
#[inline]
pub fn dec(a: u64, size: u32) -> (u64, u64) {
    let (r, f) = sub(a, 1, false, size);
    (r, f & !CF)
}

/// NEG: `0 - a`; CF = (a != 0).
#[inline]
pub fn neg(a: u64, size: u32) -> (u64, u64) {
    sub(0, a, false, size)
}

/// The count mask of shifts and rotates: 5 bits, 6 with 64-bit operands.
#[inline]
pub fn count_mask(size: u32) -> u32 {
    if size == 8 {
        0x3f
    } else {
        0x1f
    }
}

/// Shift and rotate kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    Rol,
    Ror,
    Rcl,
    Rcr,
    Shl,
    Shr,
    Sar,
}

/// A shift or rotate with an already-masked non-zero count. `flags_in` supplies CF for
/// RCL/RCR and the flags rotates leave alone. Returns (result, status flags).
///
/// Policy for undefined flags: OF is computed with the count-1 formula for every count;
/// AF is 0 after shifts; CF of SHL/SHR with a count of at least the operand width is the
/// last bit shifted out (0 beyond the width); rotates leave SF/ZF/AF/PF unchanged as the SDM
/// specifies.
pub fn shift(kind: Shift, a: u64, count: u32, size: u32, flags_in: u64) -> (u64, u64) {
    let bits = size * 8;
    let m = mask(size);
    let a = a & m;
    let msb = |v: u64| (v >> (bits - 1)) & 1;
    let cf_in = (flags_in & CF != 0) as u64;
    match kind {
        Shift::Shl => {
            let wide = (a as u128) << count;
            let res = (wide as u64) & m;
            let cf = ((wide >> bits) & 1) as u64;
            let mut f = szp(res, size) | if cf != 0 { CF } else { 0 };
            if msb(res) ^ cf != 0 {
                f |= OF;
            }
            (res, f)
        }
        Shift::Shr => {
            let res = if count >= 64 { 0 } else { a >> count };
            let cf = if count > 64 {
                0
            } else {
                (a >> (count - 1)) & 1
            };
            let mut f = szp(res, size) | if cf != 0 { CF } else { 0 };
            if msb(a) != 0 {
                f |= OF;
            }
            (res, f)
        }
        Shift::Sar => {
            let s = sext(a, size) as i64;
            let res = ((s >> count.min(63)) as u64) & m;
            let cf = ((s >> (count - 1).min(63)) & 1) as u64;
            let f = szp(res, size) | if cf != 0 { CF } else { 0 };
            (res, f)
        }
        Shift::Rol | Shift::Ror => {
            let c = count % bits;
            let res = if kind == Shift::Rol {
                ((a << c) | if c == 0 { 0 } else { a >> (bits - c) }) & m
            } else {
                ((a >> c) | if c == 0 { 0 } else { a << (bits - c) }) & m
            };
            let keep = flags_in & (SF | ZF | AF | PF);
            let (cf, of) = if kind == Shift::Rol {
                let cf = res & 1;
                (cf, msb(res) ^ cf)
            } else {
                (msb(res), msb(res) ^ ((res >> (bits - 2)) & 1))
            };
            (
                res,
                keep | if cf != 0 { CF } else { 0 } | if of != 0 { OF } else { 0 },
            )
        }
        Shift::Rcl | Shift::Rcr => {
            // Rotate through a (bits + 1)-wide value whose top bit is CF.
            let c = if size < 4 { count % (bits + 1) } else { count };
            let width = bits + 1;
            let v: u128 = (a as u128) | ((cf_in as u128) << bits);
            let wmask: u128 = (1u128 << width) - 1;
            let r = if c == 0 {
                v
            } else if kind == Shift::Rcl {
                ((v << c) | (v >> (width - c))) & wmask
            } else {
                ((v >> c) | (v << (width - c))) & wmask
            };
            let res = (r as u64) & m;
            let cf = ((r >> bits) & 1) as u64;
            let keep = flags_in & (SF | ZF | AF | PF);
            let of = if kind == Shift::Rcl {
                msb(res) ^ cf
            } else {
                msb(res) ^ ((res >> (bits - 2)) & 1)
            };
            (
                res,
                keep | if cf != 0 { CF } else { 0 } | if of != 0 { OF } else { 0 },
            )
        }
    }
}

/// SHLD (`left`) / SHRD: shift `dst` by `count` (masked, non-zero), filling from `src`.
/// Undefined flags: OF is the 1-bit formula (sign changed) for every count, AF is 0. With a
/// 16-bit operand and a count above 16 the SDM leaves result and flags undefined; this model
/// shifts through the 32-bit concatenation `dst:src` (zeros beyond it) and computes the
/// flags from that result.
pub fn shld_shrd(left: bool, dst: u64, src: u64, count: u32, size: u32) -> (u64, u64) {
    let bits = size * 8;
    let m = mask(size);
    let (d, s) = (dst & m, src & m);
    let (res, cf) = if left {
        // CF is the last bit shifted out of the 2*bits-wide dst:src.
        let v: u128 = ((d as u128) << bits) | s as u128;
        let r = v << count;
        (
            ((r >> bits) as u64) & m,
            ((v >> (2 * bits - count)) & 1) as u64,
        )
    } else {
        let v: u128 = ((s as u128) << bits) | d as u128;
        let r = v >> count;
        ((r as u64) & m, ((v >> (count - 1)) & 1) as u64)
    };
    let mut f = szp(res, size) | if cf != 0 { CF } else { 0 };
    // OF: defined for count 1 as "sign changed".
    if (res ^ d) & sign_bit(size) != 0 {
        f |= OF;
    }
    (res, f)
}

/// Unsigned MUL: returns (low, high, flags). CF = OF = (high != 0).
pub fn mul(a: u64, b: u64, size: u32) -> (u64, u64, u64) {
    let m = mask(size);
    let wide = (a & m) as u128 * (b & m) as u128;
    let lo = (wide as u64) & m;
    let hi = ((wide >> (size * 8)) as u64) & m;
    let mut f = szp(lo, size);
    if hi != 0 {
        f |= CF | OF;
    }
    (lo, hi, f)
}

/// Signed IMUL: returns (low, high, flags). CF = OF = (result does not fit in `size`).
pub fn imul(a: u64, b: u64, size: u32) -> (u64, u64, u64) {
    let m = mask(size);
    let wide = (sext(a, size) as i64 as i128) * (sext(b, size) as i64 as i128);
    let lo = (wide as u64) & m;
    let hi = ((wide >> (size * 8)) as u64) & m;
    let mut f = szp(lo, size);
    if sext(lo, size) as i64 as i128 != wide {
        f |= CF | OF;
    }
    (lo, hi, f)
}

/// Unsigned DIV of `hi:lo` by `d`: (quotient, remainder), or None for #DE.
pub fn div(lo: u64, hi: u64, d: u64, size: u32) -> Option<(u64, u64)> {
    let m = mask(size);
    let d = d & m;
    if d == 0 {
        return None;
    }
    let n = ((hi & m) as u128) << (size * 8) | (lo & m) as u128;
    let q = n / d as u128;
    if q > m as u128 {
        return None;
    }
    Some((q as u64, (n % d as u128) as u64))
}

/// Signed IDIV of `hi:lo` by `d`: (quotient, remainder), or None for #DE.
pub fn idiv(lo: u64, hi: u64, d: u64, size: u32) -> Option<(u64, u64)> {
    let m = mask(size);
    let bits = size * 8;
    let d = sext(d, size) as i64 as i128;
    if d == 0 {
        return None;
    }
    let n_u = ((hi & m) as u128) << bits | (lo & m) as u128;
    // Sign-extend the 2*bits-wide dividend.
    let sh = 128 - 2 * bits;
    let n = ((n_u << sh) as i128) >> sh;
    let q = n.checked_div(d)?;
    let r = n - q * d;
    let min = -(1i128 << (bits - 1));
    let max = (1i128 << (bits - 1)) - 1;
    if q < min || q > max {
        return None;
    }
    Some(((q as u64) & m, (r as u64) & m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sub_flags() {
        assert_eq!(add(0xff, 1, false, 1), (0, CF | ZF | PF | AF));
        assert_eq!(add(0x7f, 1, false, 1).1 & (OF | SF), OF | SF);
        assert_eq!(sub(0, 1, false, 4), (0xffff_ffff, CF | SF | PF | AF));
        assert_eq!(sub(0x80, 1, false, 1).1 & OF, OF);
        assert_eq!(sub(5, 5, true, 8).1 & CF, CF);
        assert_eq!(add(u64::MAX, 0, true, 8).1 & CF, CF);
    }

    #[test]
    fn shifts() {
        assert_eq!(shift(Shift::Shl, 0x80, 1, 1, 0).0, 0);
        assert_ne!(shift(Shift::Shl, 0x80, 1, 1, 0).1 & CF, 0);
        assert_eq!(shift(Shift::Sar, 0x80, 7, 1, 0).0, 0xff);
        assert_eq!(shift(Shift::Rol, 0x81, 1, 1, 0).0, 0x03);
        assert_eq!(shift(Shift::Rcr, 0x01, 1, 1, 0), (0x00, CF));
        assert_eq!(shift(Shift::Rcl, 0x80, 1, 1, CF).0, 0x01);
    }

    /// SHLD's CF is the last bit shifted out of the destination, for 64-bit operands too
    /// (the double-width value is 128 bits there).
    #[test]
    fn shld_64_bit_carry() {
        let d = 0x6ae5_06b3_f09b_87ff_u64;
        for count in [1u32, 14, 33, 63] {
            let (_, f) = shld_shrd(true, d, 0, count, 8);
            assert_eq!(f & CF != 0, (d >> (64 - count)) & 1 != 0, "count {count}");
            let (_, f) = shld_shrd(false, d, 0, count, 8);
            assert_eq!(f & CF != 0, (d >> (count - 1)) & 1 != 0, "count {count}");
        }
        assert_eq!(shld_shrd(true, 1 << 63, 0, 1, 8).1 & CF, CF);
    }

    #[test]
    fn division() {
        assert_eq!(div(7, 0, 2, 4), Some((3, 1)));
        assert_eq!(div(0, 1, 1, 4), None);
        assert_eq!(
            idiv((-7i64) as u64, u64::MAX, 2, 8),
            Some(((-3i64) as u64, (-1i64) as u64))
        );
        assert_eq!(idiv(0x8000, 0xffff, 0xffff, 2), None); // -32768 / -1 overflows
        assert_eq!(div(1, 0, 0, 8), None);
    }

    #[test]
    fn imul_overflow() {
        assert_eq!(imul(0x40, 2, 1).2 & OF, OF);
        assert_eq!(imul(0xff, 0xff, 1).2 & OF, 0); // -1 * -1 = 1
    }
}
