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
#[inline]
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

/// Lazy flags (issue [11], stage C): an operation whose status flags have not been
/// computed yet, recorded by the specialised handlers (`exec/fast.rs`) instead of the
/// flags. [`Lazy::flags`] computes them when something reads them, by calling the same
/// function with the same operands the handler would have called, and applies the same
/// mask, so the flags (the undefined ones included) are those of eager evaluation by
/// construction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lazy {
    /// One of the `lazy::*` operations; `lazy::NONE`: nothing pending.
    pub op: u8,
    /// Operand size in bytes.
    pub size: u8,
    /// Carry (ADC) or borrow (SBB) in.
    pub cin: bool,
    /// First operand (LOGIC: the unmasked result `a & b`, `a | b` or `a ^ b`).
    pub a: u64,
    /// Second operand (shifts: the masked, non-zero count).
    pub b: u64,
    /// The result the handler wrote (for the ZF shortcut of [`Lazy::zf`]).
    pub res: u64,
}

/// The operations of [`Lazy`].
pub mod lazy {
    pub const NONE: u8 = 0;
    /// `add(a, b, cin)`: ADD, ADC.
    pub const ADD: u8 = 1;
    /// `sub(a, b, cin)`: SUB, SBB, CMP.
    pub const SUB: u8 = 2;
    /// `logic(a)`: AND, OR, XOR, TEST.
    pub const LOGIC: u8 = 3;
    /// `inc(a)`, CF left alone.
    pub const INC: u8 = 4;
    /// `dec(a)`, CF left alone.
    pub const DEC: u8 = 5;
    /// `imul(a, b)` with AF cleared (IMUL with two and three operands).
    pub const IMUL: u8 = 6;
    /// `shift(Shl/Shr/Sar, a, b)`: these kinds do not read the incoming flags.
    pub const SHL: u8 = 7;
    pub const SHR: u8 = 8;
    pub const SAR: u8 = 9;
    /// `shift(Rol/Ror, a, b, flags_in)`: SF, ZF, AF and PF come from the incoming flags.
    pub const ROL: u8 = 10;
    pub const ROR: u8 = 11;

    /// Whether `op` writes all six status flags from its operands alone (the others
    /// need the flags before them: INC/DEC keep CF, rotates keep SF/ZF/AF/PF).
    #[inline(always)]
    pub const fn is_full(op: u8) -> bool {
        !matches!(op, INC | DEC | ROL | ROR)
    }
}

impl Lazy {
    /// RFLAGS after the operation, from RFLAGS `fl` before it: what the eager handler
    /// did (`set_status(f)`, or `set_status_masked(f, STATUS & !CF)` for INC/DEC), with
    /// `f` from the same function and operands (rotates: with `fl` as `flags_in`).
    #[inline(always)]
    pub fn apply(&self, fl: u64) -> u64 {
        let all = CF | PF | AF | ZF | SF | OF;
        let size = self.size as u32;
        let (f, which) = match self.op {
            lazy::ADD => (add(self.a, self.b, self.cin, size).1, all),
            lazy::SUB => (sub(self.a, self.b, self.cin, size).1, all),
            lazy::LOGIC => (logic(self.a, size).1, all),
            lazy::INC => (inc(self.a, size).1, all & !CF),
            lazy::DEC => (dec(self.a, size).1, all & !CF),
            _ => return self.apply_other(fl),
        };
        (fl & !which) | (f & which)
    }

    /// [`Self::apply`] for IMUL, shifts and rotates (kept out of line: larger, rarer).
    #[inline(never)]
    fn apply_other(&self, fl: u64) -> u64 {
        let all = CF | PF | AF | ZF | SF | OF;
        let size = self.size as u32;
        let (f, which) = match self.op {
            lazy::IMUL => (imul(self.a, self.b, size).2 & !AF, all),
            lazy::SHL => (shift(Shift::Shl, self.a, self.b as u32, size, 0).1, all),
            lazy::SHR => (shift(Shift::Shr, self.a, self.b as u32, size, 0).1, all),
            lazy::SAR => (shift(Shift::Sar, self.a, self.b as u32, size, 0).1, all),
            lazy::ROL => (shift(Shift::Rol, self.a, self.b as u32, size, fl).1, all),
            lazy::ROR => (shift(Shift::Ror, self.a, self.b as u32, size, fl).1, all),
            _ => (0, 0),
        };
        (fl & !which) | (f & which)
    }

    /// [`Self::apply`], not inlined (for materialization).
    #[inline(never)]
    pub fn apply_slow(&self, fl: u64) -> u64 {
        self.apply(fl)
    }

    /// ZF without computing the other flags, for the operations whose function derives
    /// ZF as `szp` of the result it returns (ADD/SUB/LOGIC/INC/DEC); `None` for the others.
    #[inline(always)]
    pub fn zf(&self) -> Option<bool> {
        matches!(
            self.op,
            lazy::ADD | lazy::SUB | lazy::LOGIC | lazy::INC | lazy::DEC
        )
        .then(|| szp(self.res, self.size as u32) & ZF != 0)
    }
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

    /// Lazy flags give what the eager functions give, and the ZF shortcut agrees with them
    /// (random operands, every size, every operation).
    #[test]
    fn lazy_flags_equal_eager() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Small and edge values too, so ZF, CF and OF cases all occur.
            match x % 4 {
                0 => x % 3,
                1 => x.rotate_left(7) | 0x8000_0000_0000_0000,
                _ => x,
            }
        };
        for _ in 0..20000 {
            let (a, b, c) = (next(), next(), next() & 1 != 0);
            for size in [1u32, 2, 4, 8] {
                let count = (b as u32 & count_mask(size)).max(1);
                let cases: [(u8, u64, u64, bool, u64, u64, u64); 9] = [
                    (
                        lazy::ADD,
                        a,
                        b,
                        c,
                        add(a, b, c, size).0,
                        add(a, b, c, size).1,
                        0,
                    ),
                    (
                        lazy::SUB,
                        a,
                        b,
                        c,
                        sub(a, b, c, size).0,
                        sub(a, b, c, size).1,
                        0,
                    ),
                    (
                        lazy::LOGIC,
                        a ^ b,
                        0,
                        false,
                        logic(a ^ b, size).0,
                        logic(a ^ b, size).1,
                        0,
                    ),
                    (lazy::INC, a, 0, false, inc(a, size).0, inc(a, size).1, CF),
                    (lazy::DEC, a, 0, false, dec(a, size).0, dec(a, size).1, CF),
                    (
                        lazy::IMUL,
                        a,
                        b,
                        false,
                        imul(a, b, size).0,
                        imul(a, b, size).2 & !AF,
                        0,
                    ),
                    (
                        lazy::SHL,
                        a,
                        count as u64,
                        false,
                        shift(Shift::Shl, a, count, size, b).0,
                        shift(Shift::Shl, a, count, size, b).1,
                        0,
                    ),
                    (
                        lazy::SHR,
                        a,
                        count as u64,
                        false,
                        shift(Shift::Shr, a, count, size, b).0,
                        shift(Shift::Shr, a, count, size, b).1,
                        0,
                    ),
                    (
                        lazy::SAR,
                        a,
                        count as u64,
                        false,
                        shift(Shift::Sar, a, count, size, b).0,
                        shift(Shift::Sar, a, count, size, b).1,
                        0,
                    ),
                ];
                for (op, la, lb, cin, res, f, kept) in cases {
                    let l = Lazy {
                        op,
                        size: size as u8,
                        cin,
                        a: la,
                        b: lb,
                        res,
                    };
                    let all = CF | PF | AF | ZF | SF | OF;
                    // Any incoming flags: the kept ones stay, the others are `f`'s.
                    let fl_in = ((c as u64) * CF) | (next() & all & !CF) | 0x202;
                    let eager = (fl_in & !(all & !kept)) | (f & all & !kept);
                    assert_eq!(
                        l.apply(fl_in),
                        eager,
                        "op {op} size {size} a {la:#x} b {lb:#x}"
                    );
                    assert_eq!(lazy::is_full(op), kept == 0);
                    if let Some(zf) = l.zf() {
                        assert_eq!(zf, f & ZF != 0, "zf op {op} size {size} a {la:#x}");
                    }
                }
                // Rotates take SF/ZF/AF/PF from the incoming flags.
                for (op, kind) in [(lazy::ROL, Shift::Rol), (lazy::ROR, Shift::Ror)] {
                    let fl_in = (next() & (CF | PF | AF | ZF | SF | OF)) | 0x202;
                    let (res, f) = shift(kind, a, count, size, fl_in);
                    let l = Lazy {
                        op,
                        size: size as u8,
                        cin: false,
                        a,
                        b: count as u64,
                        res,
                    };
                    let all = CF | PF | AF | ZF | SF | OF;
                    assert_eq!(l.apply(fl_in), (fl_in & !all) | (f & all), "rot {op}");
                    assert!(l.zf().is_none() && !lazy::is_full(op));
                }
            }
        }
        assert_eq!(Lazy::default().apply(0x8d7), 0x8d7);
    }
}
