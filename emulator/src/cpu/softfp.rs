//! SSE floating-point arithmetic with x86 semantics on top of Berkeley SoftFloat 3e
//! (`softfloat-sys`, built with its 8086-SSE specialisation: the first operand's NaN wins,
//! SNaNs are quieted, the default NaN is the "QNaN floating-point indefinite" with the sign
//! set, out-of-range conversions give the integer indefinite, tininess is detected after
//! rounding). What SoftFloat does not know is done here: MXCSR rounding-control mapping,
//! DAZ (denormal inputs read as zero), FTZ (tiny results flushed to zero when underflow is
//! masked), the denormal-operand flag, and underflow on an exact tiny result when underflow
//! is unmasked (SDM Vol. 1, 11.5.2).
//!
//! SoftFloat keeps its rounding mode and flags in thread-local C variables; every call
//! here sets them first, so nothing leaks between calls or threads.

use super::fpu_state::mxcsr;
use softfloat_sys as sf;

/// The MXCSR-derived environment of one instruction, and the flags it raised.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// SoftFloat rounding mode for MXCSR.RC.
    round: u8,
    daz: bool,
    ftz: bool,
    um_masked: bool,
    /// MXCSR exceptions that trap (unmasked), as flag bits.
    unmasked: u32,
    /// Flags of the element being computed.
    flags: u32,
    /// Pre-computation (IE, DE, ZE) and post-computation (OE, UE, PE) flags of all
    /// elements so far.
    pre: u32,
    post: u32,
}

/// MXCSR.RC (0 nearest, 1 down, 2 up, 3 toward zero) as a SoftFloat rounding mode.
pub fn sf_round(rc: u32) -> u8 {
    match rc & 3 {
        0 => sf::softfloat_round_near_even,
        1 => sf::softfloat_round_min,
        2 => sf::softfloat_round_max,
        _ => sf::softfloat_round_minMag,
    }
}

/// SoftFloat flags as MXCSR/x87 exception flags.
fn x86_flags(f: u8) -> u32 {
    let mut r = 0;
    if f & sf::softfloat_flag_invalid != 0 {
        r |= mxcsr::IE;
    }
    if f & sf::softfloat_flag_infinite != 0 {
        r |= mxcsr::ZE;
    }
    if f & sf::softfloat_flag_overflow != 0 {
        r |= mxcsr::OE;
    }
    if f & sf::softfloat_flag_underflow != 0 {
        r |= mxcsr::UE;
    }
    if f & sf::softfloat_flag_inexact != 0 {
        r |= mxcsr::PE;
    }
    r
}

/// Run `f` with SoftFloat's rounding mode set and its flags cleared; the flags it raised.
pub fn with_round<T>(round: u8, f: impl FnOnce() -> T) -> (T, u32) {
    // SAFETY: the helpers only read/write SoftFloat's thread-local state.
    unsafe {
        sf::softfloat_roundingMode_write_helper(round);
        sf::softfloat_exceptionFlags_write_helper(0);
        sf::softfloat_detectTininess_write_helper(sf::softfloat_tininess_afterRounding);
        let v = f();
        (v, x86_flags(sf::softfloat_exceptionFlags_read_helper()))
    }
}

/// An IEEE binary format handled as raw bits.
pub trait Ieee: Copy + PartialEq {
    const BITS: u32;
    const MANT_BITS: u32;
    fn raw(self) -> u64;
    fn from_raw(v: u64) -> Self;
    fn exp_mask() -> u64 {
        ((1u64 << (Self::BITS - 1 - Self::MANT_BITS)) - 1) << Self::MANT_BITS
    }
    fn mant_mask() -> u64 {
        (1u64 << Self::MANT_BITS) - 1
    }
    fn sign_bit() -> u64 {
        1u64 << (Self::BITS - 1)
    }
    fn is_nan(self) -> bool {
        self.raw() & Self::exp_mask() == Self::exp_mask() && self.raw() & Self::mant_mask() != 0
    }
    fn is_snan(self) -> bool {
        self.is_nan() && self.raw() & (1u64 << (Self::MANT_BITS - 1)) == 0
    }
    fn is_denormal(self) -> bool {
        self.raw() & Self::exp_mask() == 0 && self.raw() & Self::mant_mask() != 0
    }
    fn is_zero(self) -> bool {
        self.raw() & !Self::sign_bit() == 0
    }
    fn is_neg(self) -> bool {
        self.raw() & Self::sign_bit() != 0
    }
    fn signed_zero(self) -> Self {
        Self::from_raw(self.raw() & Self::sign_bit())
    }
    /// The QNaN of this NaN (quiet bit set).
    fn quiet(self) -> Self {
        Self::from_raw(self.raw() | (1u64 << (Self::MANT_BITS - 1)))
    }
}

impl Ieee for u32 {
    const BITS: u32 = 32;
    const MANT_BITS: u32 = 23;
    fn raw(self) -> u64 {
        self as u64
    }
    fn from_raw(v: u64) -> Self {
        v as u32
    }
}
impl Ieee for u64 {
    const BITS: u32 = 64;
    const MANT_BITS: u32 = 52;
    fn raw(self) -> u64 {
        self
    }
    fn from_raw(v: u64) -> Self {
        v
    }
}

/// Whether `a op b` in single precision is inexact with an unbounded exponent: computed
/// in double precision (a product of two floats is exact there; a double that is inexact
/// or needs more than 24 bits means the float result is inexact).
fn inexact_wide32(op: Op, a: u32, b: u32) -> bool {
    let (r, fl) = with_round(sf::softfloat_round_near_even, || unsafe {
        let (x, y) = (sf::f32_to_f64(f32v(a)), sf::f32_to_f64(f32v(b)));
        match op {
            Op::Add => sf::f64_add(x, y),
            Op::Sub => sf::f64_sub(x, y),
            Op::Mul => sf::f64_mul(x, y),
            Op::Div => sf::f64_div(x, y),
        }
        .v
    });
    let sig = (r & u64::mant_mask()) | 1 << 52;
    fl & mxcsr::PE != 0 || 53 - sig.trailing_zeros() > 24
}

/// As [`inexact_wide32`] for doubles, in quadruple precision.
fn inexact_wide64(op: Op, a: u64, b: u64) -> bool {
    let (r, fl) = with_round(sf::softfloat_round_near_even, || unsafe {
        let (x, y) = (sf::f64_to_f128(f64v(a)), sf::f64_to_f128(f64v(b)));
        match op {
            Op::Add => sf::f128_add(x, y),
            Op::Sub => sf::f128_sub(x, y),
            Op::Mul => sf::f128_mul(x, y),
            Op::Div => sf::f128_div(x, y),
        }
        .v
    });
    // Little-endian halves: v[0] holds the low 64 significand bits.
    let sig = (r[0] as u128) | ((r[1] as u128 & ((1u128 << 48) - 1)) << 64) | 1u128 << 112;
    fl & mxcsr::PE != 0 || 113 - sig.trailing_zeros() > 53
}

/// Binary arithmetic operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// Ordering of two values (after DAZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ord3 {
    Less,
    Equal,
    Greater,
    Unordered,
}

fn f32v(v: u32) -> sf::float32_t {
    sf::float32_t { v }
}
fn f64v(v: u64) -> sf::float64_t {
    sf::float64_t { v }
}

impl Env {
    pub fn new(csr: u32) -> Env {
        Env {
            round: sf_round(csr >> mxcsr::RC_SHIFT),
            daz: csr & mxcsr::DAZ != 0,
            ftz: csr & mxcsr::FTZ != 0,
            um_masked: csr & mxcsr::UM != 0,
            unmasked: !(csr >> mxcsr::MASK_SHIFT) & mxcsr::FLAGS,
            flags: 0,
            pre: 0,
            post: 0,
        }
    }

    /// End of one element: an invalid operation or a division by zero hides a denormal
    /// operand (SDM Vol. 1, 11.5.2: they have priority), then the flags join the
    /// instruction's.
    fn commit(&mut self) {
        let mut f = self.flags;
        if f & (mxcsr::IE | mxcsr::ZE) != 0 {
            f &= !mxcsr::DE;
        }

        self.pre |= f & (mxcsr::IE | mxcsr::DE | mxcsr::ZE);
        self.post |= f & (mxcsr::OE | mxcsr::UE | mxcsr::PE);
        self.flags = 0;
    }

    /// The flags the instruction sets in MXCSR given its exception masks, and whether it
    /// traps: an unmasked pre-computation exception in any element stops the instruction
    /// before the post-computation ones are detected (SDM Vol. 1, 11.5.1).
    pub fn outcome(&self, csr: u32) -> (u32, bool) {
        let unmasked = !(csr >> mxcsr::MASK_SHIFT) & mxcsr::FLAGS;
        if self.pre & unmasked != 0 {
            return (self.pre, true);
        }
        let all = self.pre | self.post;
        (all, all & unmasked != 0)
    }

    /// Rounding mode override (ROUNDSS imm8 with bit 2 clear).
    pub fn with_rc(mut self, rc: u32) -> Env {
        self.round = sf_round(rc);
        self
    }

    /// An input operand: DAZ turns a denormal into a signed zero; otherwise a denormal
    /// operand is reported (DE).
    pub fn input<F: Ieee>(&mut self, a: F) -> F {
        if a.is_denormal() {
            if self.daz {
                return a.signed_zero();
            }
            self.flags |= mxcsr::DE;
        }
        a
    }

    /// Post-process a computed result: FTZ and the underflow rules.
    fn output<F: Ieee>(&mut self, r: F, mut fl: u32) -> F {
        let tiny = fl & mxcsr::UE != 0 || r.is_denormal();
        let mut r = r;
        if tiny {
            if !self.um_masked {
                fl |= mxcsr::UE;
            } else if self.ftz {
                r = r.signed_zero();
                fl |= mxcsr::UE | mxcsr::PE;
            }
        }
        self.flags |= fl;
        self.commit();
        r
    }

    /// Inputs of a two-operand operation: with a NaN among them the NaN rules decide and
    /// no denormal operand is reported (SDM Vol. 1, 11.5.2).
    fn inputs2<F: Ieee>(&mut self, a: F, b: F) -> (F, F) {
        if a.is_nan() || b.is_nan() {
            return (a, b);
        }
        (self.input(a), self.input(b))
    }

    pub fn arith32(&mut self, op: Op, a: u32, b: u32) -> u32 {
        let (a, b) = self.inputs2(a, b);
        let (r, mut fl) = with_round(self.round, || unsafe {
            match op {
                Op::Add => sf::f32_add(f32v(a), f32v(b)),
                Op::Sub => sf::f32_sub(f32v(a), f32v(b)),
                Op::Mul => sf::f32_mul(f32v(a), f32v(b)),
                Op::Div => sf::f32_div(f32v(a), f32v(b)),
            }
            .v
        });
        if self.traps_on_range(r, fl) {
            fl = (fl & !mxcsr::PE)
                | if inexact_wide32(op, a, b) {
                    mxcsr::PE
                } else {
                    0
                };
        }
        self.output(r, fl)
    }

    pub fn arith64(&mut self, op: Op, a: u64, b: u64) -> u64 {
        let (a, b) = self.inputs2(a, b);
        let (r, mut fl) = with_round(self.round, || unsafe {
            match op {
                Op::Add => sf::f64_add(f64v(a), f64v(b)),
                Op::Sub => sf::f64_sub(f64v(a), f64v(b)),
                Op::Mul => sf::f64_mul(f64v(a), f64v(b)),
                Op::Div => sf::f64_div(f64v(a), f64v(b)),
            }
            .v
        });
        if self.traps_on_range(r, fl) {
            fl = (fl & !mxcsr::PE)
                | if inexact_wide64(op, a, b) {
                    mxcsr::PE
                } else {
                    0
                };
        }
        self.output(r, fl)
    }

    /// Whether this result raises an unmasked overflow or underflow. Then no result is
    /// delivered and PE reports whether the result with an unbounded exponent would be
    /// inexact, not the rounding to infinity or to a denormal that SoftFloat saw.
    fn traps_on_range<F: Ieee>(&self, r: F, fl: u32) -> bool {
        let tiny = fl & mxcsr::UE != 0 || r.is_denormal();
        (fl & mxcsr::OE != 0 && self.unmasked & mxcsr::OE != 0) || (tiny && !self.um_masked)
    }

    pub fn sqrt32(&mut self, a: u32) -> u32 {
        let a = self.input1(a);
        let (r, fl) = with_round(self.round, || unsafe { sf::f32_sqrt(f32v(a)).v });
        self.output(r, fl)
    }
    pub fn sqrt64(&mut self, a: u64) -> u64 {
        let a = self.input1(a);
        let (r, fl) = with_round(self.round, || unsafe { sf::f64_sqrt(f64v(a)).v });
        self.output(r, fl)
    }

    /// One input that is not a NaN reports DE; a NaN input never does.
    fn input1<F: Ieee>(&mut self, a: F) -> F {
        self.input(a)
    }

    /// Compare `a` with `b`. `signaling`: any NaN is invalid (LT/LE predicates, COMIS*);
    /// otherwise only an SNaN is.
    pub fn compare<F: Ieee>(&mut self, a: F, b: F, signaling: bool) -> Ord3 {
        let (a, b) = self.inputs2(a, b);
        if a.is_nan() || b.is_nan() {
            if signaling || a.is_snan() || b.is_snan() {
                self.flags |= mxcsr::IE;
            }
            self.commit();
            return Ord3::Unordered;
        }
        self.commit();
        let key = |x: F| -> i128 {
            let mag = (x.raw() & !F::sign_bit()) as i128;
            if x.is_neg() {
                -mag
            } else {
                mag
            }
        };
        match key(a).cmp(&key(b)) {
            std::cmp::Ordering::Less => Ord3::Less,
            std::cmp::Ordering::Equal => Ord3::Equal,
            std::cmp::Ordering::Greater => Ord3::Greater,
        }
    }

    /// MINSS/MAXSS...: the second operand if either is a NaN (invalid for any NaN) or
    /// both are zeros, else the smaller (larger) one.
    pub fn minmax<F: Ieee>(&mut self, a: F, b: F, max: bool) -> F {
        let o = self.compare(a, b, true);
        let (da, db) = if self.daz {
            (
                if a.is_denormal() { a.signed_zero() } else { a },
                if b.is_denormal() { b.signed_zero() } else { b },
            )
        } else {
            (a, b)
        };
        // With DAZ the operand returned is the flushed one.
        match (o, max) {
            (Ord3::Less, false) | (Ord3::Greater, true) => da,
            _ => db,
        }
    }

    pub fn f32_to_f64(&mut self, a: u32) -> u64 {
        let a = self.input1(a);
        let (r, fl) = with_round(self.round, || unsafe { sf::f32_to_f64(f32v(a)).v });
        self.output(r, fl)
    }
    pub fn f64_to_f32(&mut self, a: u64) -> u32 {
        let a = self.input1(a);
        let (r, mut fl) = with_round(self.round, || unsafe { sf::f64_to_f32(f64v(a)).v });
        if self.traps_on_range(r, fl) {
            let m = a & u64::mant_mask();
            let sig = if a & u64::exp_mask() == 0 {
                m
            } else {
                m | 1 << 52
            };
            // Inexact with an unbounded exponent: more than 24 significant bits.
            let span = 64 - sig.leading_zeros() - sig.trailing_zeros();
            fl = (fl & !mxcsr::PE) | if span > 24 { mxcsr::PE } else { 0 };
        }
        self.output(r, fl)
    }

    pub fn i32_to_f32(&mut self, a: i32) -> u32 {
        let (r, fl) = with_round(self.round, || unsafe { sf::i32_to_f32(a).v });
        self.flags |= fl;
        self.commit();
        r
    }
    pub fn i64_to_f32(&mut self, a: i64) -> u32 {
        let (r, fl) = with_round(self.round, || unsafe { sf::i64_to_f32(a).v });
        self.flags |= fl;
        self.commit();
        r
    }
    pub fn i32_to_f64(&mut self, a: i32) -> u64 {
        let (r, fl) = with_round(self.round, || unsafe { sf::i32_to_f64(a).v });
        self.flags |= fl;
        self.commit();
        r
    }
    pub fn i64_to_f64(&mut self, a: i64) -> u64 {
        let (r, fl) = with_round(self.round, || unsafe { sf::i64_to_f64(a).v });
        self.flags |= fl;
        self.commit();
        r
    }

    /// Float to integer (CVT* with MXCSR rounding, CVTT* truncating): NaN and out-of-range
    /// give the integer indefinite (the sign bit alone) with IE. The denormal flag is not
    /// raised by these conversions (SDM: CVTSD2SI raises only invalid and precision).
    pub fn f32_to_int(&mut self, a: u32, bits64: bool, truncate: bool) -> u64 {
        let a = if self.daz && a.is_denormal() {
            a.signed_zero()
        } else {
            a
        };
        let mode = if truncate {
            sf::softfloat_round_minMag
        } else {
            self.round
        };
        let (r, fl) = with_round(mode, || unsafe {
            if bits64 {
                sf::f32_to_i64(f32v(a), mode, true) as u64
            } else {
                sf::f32_to_i32(f32v(a), mode, true) as u32 as u64
            }
        });
        self.flags |= fl;
        self.commit();
        r
    }
    pub fn f64_to_int(&mut self, a: u64, bits64: bool, truncate: bool) -> u64 {
        let a = if self.daz && a.is_denormal() {
            a.signed_zero()
        } else {
            a
        };
        let mode = if truncate {
            sf::softfloat_round_minMag
        } else {
            self.round
        };
        let (r, fl) = with_round(mode, || unsafe {
            if bits64 {
                sf::f64_to_i64(f64v(a), mode, true) as u64
            } else {
                sf::f64_to_i32(f64v(a), mode, true) as u32 as u64
            }
        });
        self.flags |= fl;
        self.commit();
        r
    }

    /// ROUNDSS/SD: round to an integral value; `inexact` false suppresses PE (imm8 bit 3).
    /// DAZ applies; a denormal operand is not signalled (the SDM lists only IE and PE).
    pub fn round32(&mut self, a: u32, inexact: bool) -> u32 {
        let a = self.input1(a);
        self.flags &= !mxcsr::DE;
        let (r, fl) = with_round(self.round, || unsafe {
            sf::f32_roundToInt(f32v(a), self.round, inexact).v
        });
        self.flags |= fl;
        self.commit();
        r
    }
    pub fn round64(&mut self, a: u64, inexact: bool) -> u64 {
        let a = self.input1(a);
        self.flags &= !mxcsr::DE;
        let (r, fl) = with_round(self.round, || unsafe {
            sf::f64_roundToInt(f64v(a), self.round, inexact).v
        });
        self.flags |= fl;
        self.commit();
        r
    }

    /// FMA-free dot-product helpers and the like use these directly.
    pub fn round_mode(&self) -> u8 {
        self.round
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_modes_and_flags() {
        let one = 1.0f64.to_bits();
        let tiny = 1e-300f64.to_bits();
        let mut e = Env::new(mxcsr::DEFAULT);
        assert_eq!(e.arith64(Op::Add, one, tiny), one);
        assert_eq!(e.outcome(mxcsr::DEFAULT), (mxcsr::PE, false));
        let mut e = Env::new(mxcsr::DEFAULT | (2 << mxcsr::RC_SHIFT));
        assert_eq!(e.arith64(Op::Add, one, tiny), one + 1);
        let mut e = Env::new(mxcsr::DEFAULT);
        assert_eq!(e.arith64(Op::Div, one, 0), f64::INFINITY.to_bits());
        assert_eq!(e.outcome(mxcsr::DEFAULT), (mxcsr::ZE, false));
        // Unmasked ZE traps.
        assert_eq!(
            e.outcome(mxcsr::DEFAULT & !mxcsr::ZE << mxcsr::MASK_SHIFT),
            (mxcsr::ZE, true)
        );
    }

    #[test]
    fn integer_indefinite_and_default_nan() {
        let mut e = Env::new(mxcsr::DEFAULT);
        assert_eq!(e.f64_to_int(f64::NAN.to_bits(), false, true), 0x8000_0000);
        assert_eq!(e.f64_to_int(1e300f64.to_bits(), true, false), 1 << 63);
        assert_eq!(e.outcome(mxcsr::DEFAULT).0, mxcsr::IE);
        let mut e = Env::new(mxcsr::DEFAULT);
        assert_eq!(e.sqrt64((-1.0f64).to_bits()), 0xfff8_0000_0000_0000);
    }

    #[test]
    fn daz_and_ftz() {
        let den = 1u64;
        let mut e = Env::new(mxcsr::DEFAULT);
        assert_eq!(e.arith64(Op::Add, den, 0), den);
        assert_eq!(e.outcome(mxcsr::DEFAULT).0, mxcsr::DE);
        let mut e = Env::new(mxcsr::DEFAULT | mxcsr::DAZ);
        assert_eq!(e.arith64(Op::Add, den, 0), 0);
        assert_eq!(e.outcome(mxcsr::DEFAULT).0, 0);
        let min = f64::MIN_POSITIVE.to_bits();
        let mut e = Env::new(mxcsr::DEFAULT | mxcsr::FTZ);
        assert_eq!(e.arith64(Op::Mul, min, 0.5f64.to_bits()), 0);
        assert_eq!(e.outcome(mxcsr::DEFAULT).0, mxcsr::UE | mxcsr::PE);
    }
}
