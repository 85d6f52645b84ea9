//! The x87 FPU: 80-bit arithmetic through SoftFloat's extF80 (exact, with the control
//! word's precision and rounding control), the register stack with its tags, stack
//! overflow/underflow (IE|SF with C1), the masked responses (QNaN indefinite, integer
//! indefinite), C1 "rounded up", FCOM/FUCOM/FCOMI/FUCOMI, FXAM, FPREM/FPREM1, FSCALE,
//! FXTRACT, FNSTENV/FLDENV and FNSAVE/FRSTOR, the last instruction/operand pointers, and
//! #MF at the next waiting instruction (CR0.NE) for an unmasked exception.
//!
//! Not implemented (they stop the machine as unimplemented): FBLD/FBSTP, and an unmasked
//! overflow or underflow, whose exponent-wrapped result (SDM Vol. 1, 8.5.4) is not
//! modelled. The transcendental instructions (F2XM1, FYL2X, FYL2XP1, FPTAN, FPATAN, FSIN,
//! FCOS, FSINCOS) compute in double precision on the host's libm and round to the
//! destination: results are correct to about 2^-52 relative, not to the 64-bit
//! significand of real x87 hardware (which is itself within 1 ulp, and vendor-specific).

use super::exception::{vector, Exception};
use super::fpu_state::{fcw, fsw, tag, F80};
use super::regs::{cr0, rflags, SegReg};
use super::softfp::sf_round;
use super::Cpu;
use crate::bus::Bus;
use iced_x86::{Code, CpuidFeature, Instruction, MemorySize, Mnemonic as M, OpKind, Register};
use softfloat_sys as sf;

type ExecResult = Result<(), Exception>;

/// The QNaN floating-point indefinite.
const INDEFINITE: F80 = F80 {
    signif: 0xc000_0000_0000_0000,
    sign_exp: 0xffff,
};
/// Exponent bias of the 80-bit format.
const BIAS: i32 = 0x3fff;
const EXP_MAX: u16 = 0x7fff;
const INT_BIT: u64 = 1 << 63;
/// Significand bits of the extended format.
const SIGNIF_BITS: i32 = 64;
/// FSIN/FCOS/FSINCOS/FPTAN accept |x| < 2^63 (C2 reports an operand out of range).
const TRIG_RANGE: f64 = (1u64 << 63) as f64;
/// FPREM/FPREM1 partial remainders develop at least this many quotient bits per step.
const PARTIAL_BITS: i32 = 32;

/// Whether `code` is an x87 instruction (this module executes it or stops).
pub fn route(code: Code) -> bool {
    code.mnemonic() == M::Fisttp
        || code.mnemonic() == M::Wait
        || code.cpuid_features().iter().any(|f| {
            matches!(
                f,
                CpuidFeature::FPU | CpuidFeature::FPU287 | CpuidFeature::FPU387
            )
        })
}

fn to_sf(v: F80) -> sf::extFloat80_t {
    sf::extFloat80_t {
        signif: v.signif,
        signExp: v.sign_exp,
    }
}
fn from_sf(v: sf::extFloat80_t) -> F80 {
    F80 {
        signif: v.signif,
        sign_exp: v.signExp,
    }
}

fn is_nan(v: F80) -> bool {
    v.exp() == EXP_MAX && v.signif << 1 != 0
}
fn is_snan(v: F80) -> bool {
    is_nan(v) && v.signif & (1 << 62) == 0
}
fn is_inf(v: F80) -> bool {
    v.exp() == EXP_MAX && v.signif << 1 == 0
}
fn is_zero(v: F80) -> bool {
    v.exp() == 0 && v.signif == 0
}
/// Denormal or pseudo-denormal.
fn is_denormal(v: F80) -> bool {
    v.exp() == 0 && v.signif != 0
}
/// Unnormals, pseudo-NaNs and pseudo-infinities: invalid operands (SDM Vol. 1, 8.2.2).
fn is_unsupported(v: F80) -> bool {
    v.exp() != 0 && v.signif & INT_BIT == 0
}
fn neg(v: F80) -> F80 {
    F80 {
        sign_exp: v.sign_exp ^ 0x8000,
        ..v
    }
}
fn with_sign(v: F80, negative: bool) -> F80 {
    F80 {
        sign_exp: (v.sign_exp & EXP_MAX) | if negative { 0x8000 } else { 0 },
        ..v
    }
}
fn zero(negative: bool) -> F80 {
    with_sign(F80::default(), negative)
}
fn infinity(negative: bool) -> F80 {
    with_sign(
        F80 {
            signif: INT_BIT,
            sign_exp: EXP_MAX,
        },
        negative,
    )
}
fn quiet(v: F80) -> F80 {
    F80 {
        signif: v.signif | 1 << 62,
        ..v
    }
}

/// x87 exception flags from SoftFloat's.
fn x87_flags(f: u8) -> u16 {
    let mut r = 0;
    if f & sf::softfloat_flag_invalid != 0 {
        r |= fsw::IE;
    }
    if f & sf::softfloat_flag_infinite != 0 {
        r |= fsw::ZE;
    }
    if f & sf::softfloat_flag_overflow != 0 {
        r |= fsw::OE;
    }
    if f & sf::softfloat_flag_underflow != 0 {
        r |= fsw::UE;
    }
    if f & sf::softfloat_flag_inexact != 0 {
        r |= fsw::PE;
    }
    r
}

/// Run a SoftFloat computation with rounding `rc` (x87 RC encoding) and precision
/// `bits` (32, 64 or 80); returns its result and x87 flags.
fn sf_run<T>(rc: u16, bits: u8, f: impl Fn() -> T) -> (T, u16) {
    // SAFETY: the helpers only touch SoftFloat's thread-local state.
    unsafe {
        sf::softfloat_roundingMode_write_helper(sf_round(rc as u32));
        sf::extF80_roundingPrecision_write_helper(bits);
        sf::softfloat_exceptionFlags_write_helper(0);
        sf::softfloat_detectTininess_write_helper(sf::softfloat_tininess_afterRounding);
        let v = f();
        (v, x87_flags(sf::softfloat_exceptionFlags_read_helper()))
    }
}

/// Compare magnitudes: whether `r` (rounded) is larger in magnitude than the value
/// rounded toward zero, i.e. the rounding went up (C1).
fn rounded_up(r: F80, toward_zero: F80) -> bool {
    let key = |v: F80| ((v.exp() as u128) << 64) | v.signif as u128;
    key(r) > key(toward_zero)
}

/// Arithmetic operations of the x87 with precision control.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

/// Operand order of FSUB/FSUBR/FDIV/FDIVR and friends.
fn arith_of(m: M) -> Option<(Arith, bool)> {
    use M::*;
    Some(match m {
        Fadd | Faddp | Fiadd => (Arith::Add, false),
        Fmul | Fmulp | Fimul => (Arith::Mul, false),
        Fsub | Fsubp | Fisub => (Arith::Sub, false),
        Fsubr | Fsubrp | Fisubr => (Arith::Sub, true),
        Fdiv | Fdivp | Fidiv => (Arith::Div, false),
        Fdivr | Fdivrp | Fidivr => (Arith::Div, true),
        _ => return None,
    })
}

/// The constants of FLD1..FLDLN2 with 66 significant bits (64 + 2 rounding bits), so
/// the rounding control can be honoured (SDM Vol. 1, 8.3.8).
fn constant(m: M) -> Option<(u16, u64, u8)> {
    Some(match m {
        M::Fld1 => (0x3fff, INT_BIT, 0),
        M::Fldz => (0, 0, 0),
        M::Fldpi => (0x4000, 0xc90f_daa2_2168_c234, 0b11),
        M::Fldl2e => (0x3fff, 0xb8aa_3b29_5c17_f0bb, 0b10),
        M::Fldl2t => (0x4000, 0xd49a_784b_cd1b_8afe, 0b01),
        M::Fldlg2 => (0x3ffd, 0x9a20_9a84_fbcf_f798, 0b10),
        M::Fldln2 => (0x3ffe, 0xb172_17f7_d1cf_79ab, 0b11),
        _ => return None,
    })
}

impl Cpu {
    /// The control word with its rounding control replaced by `rc`.
    fn clone_fcw_rc(&self, rc: u16) -> u16 {
        (self.fpu.fcw & !fcw::RC) | rc << fcw::RC_SHIFT
    }
    fn x87_rc(&self) -> u16 {
        (self.fpu.fcw & fcw::RC) >> fcw::RC_SHIFT
    }
    /// SoftFloat precision of the control word's PC field (00 single, 10 double, 11
    /// extended; the reserved 01 behaves as extended).
    fn x87_pc(&self) -> u8 {
        match (self.fpu.fcw & fcw::PC) >> fcw::PC_SHIFT {
            0 => 32,
            2 => 64,
            _ => 80,
        }
    }

    /// Record exception flags; true if one of them is unmasked (then ES and B are set
    /// and #MF is raised by the next waiting instruction).
    fn x87_raise(&mut self, flags: u16) -> bool {
        self.fpu.fsw |= flags;
        if flags & !self.fpu.fcw & fcw::MASKS != 0 {
            self.fpu.fsw |= fsw::ES | fsw::B;
            return true;
        }
        false
    }

    fn set_cc(&mut self, cc: u16) {
        self.fpu.fsw = (self.fpu.fsw & !fsw::CC) | cc;
    }
    fn set_c1(&mut self, on: bool) {
        self.fpu.fsw = (self.fpu.fsw & !fsw::C1) | if on { fsw::C1 } else { 0 };
    }

    /// Stack underflow (reading an empty register): IE|SF with C1 = 0. True if masked
    /// (the caller then delivers the QNaN indefinite).
    fn x87_underflow(&mut self) -> bool {
        self.set_c1(false);
        !self.x87_raise(fsw::IE | fsw::SF)
    }

    /// Push `v`; on stack overflow (ST(7) not empty): IE|SF with C1 = 1, and the masked
    /// response pushes the QNaN indefinite.
    fn x87_push(&mut self, v: F80) {
        let top = (self.fpu.top() + 7) & 7;
        if (self.fpu.ftw >> (2 * top)) & 3 != tag::EMPTY {
            self.set_c1(true);
            if self.x87_raise(fsw::IE | fsw::SF) {
                return;
            }
            self.fpu.set_top(top);
            self.fpu.set_st(0, INDEFINITE);
            return;
        }
        self.fpu.set_top(top);
        self.fpu.set_st(0, v);
    }

    fn x87_pop(&mut self) {
        self.fpu.set_tag(0, tag::EMPTY);
        let top = self.fpu.top() + 1;
        self.fpu.set_top(top);
    }

    /// ST(i), or None if it is empty.
    fn st_opt(&self, i: usize) -> Option<F80> {
        if self.fpu.tag_of(i) == tag::EMPTY {
            None
        } else {
            Some(self.fpu.st(i))
        }
    }

    /// Read a memory operand of the instruction as an 80-bit value (m32fp, m64fp,
    /// m80fp, m16int, m32int, m64int): exact for every format; an SNaN in a float
    /// format is quieted with IE, a denormal reported with DE.
    fn x87_load(&mut self, bus: &mut Bus, i: &Instruction) -> Result<(F80, u16), Exception> {
        let (seg, off) = (self.mem_seg(i), self.ea(i));
        let ms = i.memory_size();
        let size = ms.size() as u32;
        let la = self.linear(seg, off, size, false)?;
        let raw = self.read_linear128(bus, la, size)?;
        let (v, fl) = sf_run(0, 80, || unsafe {
            match ms {
                MemorySize::Float32 => from_sf(sf::f32_to_extF80(sf::float32_t { v: raw as u32 })),
                MemorySize::Float64 => from_sf(sf::f64_to_extF80(sf::float64_t { v: raw as u64 })),
                MemorySize::Int16 => from_sf(sf::i32_to_extF80(raw as u16 as i16 as i32)),
                MemorySize::Int32 => from_sf(sf::i32_to_extF80(raw as u32 as i32)),
                MemorySize::Int64 => from_sf(sf::i64_to_extF80(raw as u64 as i64)),
                _ => F80 {
                    signif: raw as u64,
                    sign_exp: (raw >> 64) as u16,
                },
            }
        });
        // A float SNaN stays signaling here (the conversion quieted it): the operation
        // that uses it raises IE and applies the NaN rules to the original operands.
        let snan = match ms {
            MemorySize::Float32 => {
                let r = raw as u32;
                r & 0x7f80_0000 == 0x7f80_0000 && r & 0x7f_ffff != 0 && r & 0x40_0000 == 0
            }
            MemorySize::Float64 => {
                let r = raw as u64;
                r >> 52 & 0x7ff == 0x7ff && r << 12 != 0 && r & 1 << 51 == 0
            }
            _ => false,
        };
        let (v, fl) = if snan {
            (
                F80 {
                    signif: v.signif & !(1 << 62),
                    ..v
                },
                fl & !fsw::IE,
            )
        } else {
            (v, fl)
        };
        let denormal = match ms {
            MemorySize::Float32 => (raw as u32) & 0x7f80_0000 == 0 && (raw as u32) << 9 != 0,
            MemorySize::Float64 => (raw as u64) >> 52 & 0x7ff == 0 && (raw as u64) << 12 != 0,
            _ => false,
        };
        Ok((v, fl | if denormal { fsw::DE } else { 0 }))
    }

    /// Record the last instruction (and data) pointer, as FXSAVE/FNSTENV report them.
    fn x87_note(&mut self, i: &Instruction, mem: bool) {
        self.fpu.fip = self.insn_rip;
        self.fpu.fcs = self.seg[SegReg::Cs as usize].selector;
        // FOP: the low 3 bits of the first opcode byte and the ModR/M byte.
        let op = i.code().op_code();
        let b0 = op.op_code() as u16;
        let modrm = if mem {
            (op.group_index().max(0) as u16) << 3
        } else {
            0xc0 | (op.group_index().max(0) as u16) << 3
                | (0..i.op_count())
                    .find_map(|n| {
                        (i.op_kind(n) == OpKind::Register && i.op_register(n) != Register::ST0)
                            .then(|| (i.op_register(n) as u16).wrapping_sub(Register::ST0 as u16))
                    })
                    .unwrap_or(0)
        };
        self.fpu.fop = ((b0 >> 8 & 7) << 8 | modrm) & 0x7ff;
        if mem {
            self.fpu.fdp = self.ea(i);
            self.fpu.fds = self.seg[self.mem_seg(i) as usize].selector;
        }
    }

    /// Write a result to ST(i) unless an unmasked exception suppresses it.
    fn x87_result(
        &mut self,
        i: &Instruction,
        dst: usize,
        v: F80,
        flags: u16,
    ) -> Result<bool, Exception> {
        let pre = flags & (fsw::IE | fsw::DE | fsw::ZE);
        if pre & !self.fpu.fcw & fcw::MASKS != 0 {
            // No result: C1 is cleared.
            self.x87_raise(pre);
            self.set_c1(false);
            return Ok(false);
        }
        if flags & (fsw::OE | fsw::UE) & !self.fpu.fcw & fcw::MASKS != 0 {
            return Err(self.unimplemented(i));
        }
        self.x87_raise(flags);
        self.fpu.set_st(dst, v);
        Ok(true)
    }
}

/// NaN operands and invalid (unsupported) encodings: the x87 NaN rules. Returns the
/// result if an operand decides it.
fn nan_operands(a: F80, b: Option<F80>) -> Option<(F80, u16)> {
    let ops: Vec<F80> = std::iter::once(a).chain(b).collect();
    if ops.iter().any(|v| is_unsupported(*v)) {
        return Some((INDEFINITE, fsw::IE));
    }
    if !ops.iter().any(|v| is_nan(*v)) {
        return None;
    }
    let fl = if ops.iter().any(|v| is_snan(*v)) {
        fsw::IE
    } else {
        0
    };
    let r = match b {
        Some(b) if is_nan(a) && is_nan(b) => {
            // The larger significand wins; equal significands: the positive one... as
            // SoftFloat's x87 rule (larger magnitude, then sign).
            let (_, _) = (a, b);
            let (r, _) = sf_run(0, 80, || unsafe {
                from_sf(sf::extF80_add(to_sf(a), to_sf(b)))
            });
            r
        }
        Some(b) if is_nan(b) => quiet(b),
        _ => quiet(a),
    };
    Some((r, fl))
}

/// One arithmetic operation `a op b` at the control word's precision and rounding;
/// result, flags, and whether it was rounded up (C1).
fn arith(cpu: &Cpu, op: Arith, a: F80, b: F80) -> (F80, u16, bool) {
    if let Some((r, fl)) = nan_operands(a, Some(b)) {
        return (r, fl, false);
    }
    let de = if is_denormal(a) || is_denormal(b) {
        fsw::DE
    } else {
        0
    };
    let f = |x: sf::extFloat80_t, y: sf::extFloat80_t| unsafe {
        from_sf(match op {
            Arith::Add => sf::extF80_add(x, y),
            Arith::Sub => sf::extF80_sub(x, y),
            Arith::Mul => sf::extF80_mul(x, y),
            Arith::Div => sf::extF80_div(x, y),
        })
    };
    let (rc, pc) = (cpu.x87_rc(), cpu.x87_pc());
    let (r, fl) = sf_run(rc, pc, || f(to_sf(a), to_sf(b)));
    let up = fl & fsw::PE != 0 && {
        let (t, _) = sf_run(3, pc, || f(to_sf(a), to_sf(b)));
        rounded_up(r, t)
    };
    let fl = if fl & (fsw::IE | fsw::ZE) != 0 {
        fl
    } else {
        fl | de
    };
    (r, fl, up)
}

/// Whether the CPU advertises SSE3 (FISTTP is an SSE3 instruction: #UD without it, so
/// it stops as unimplemented while SSE3 is not advertised).
const HAS_SSE3: bool = super::cpuid::HAS_SSE3;

/// The x87 mnemonics executed here; the rest of what [`route`] accepts stops.
pub fn implemented(code: Code) -> bool {
    use M::*;
    route(code)
        && code.op_code().mode64()
        && match code.mnemonic() {
            Fisttp => HAS_SSE3,
            Fbld | Fbstp | Fneni | Feni | Fndisi | Fdisi | Fnsetpm | Fsetpm | Frstpm | Fstdw
            | Fstsg | Fnstdw | Fnstsg | Ftstp | Frint2 | Frichop | Frinear | Fstpnce => false,
            _ => true,
        }
}

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    if !implemented(i.code()) {
        return Err(cpu.unimplemented(i));
    }
    let m = i.mnemonic();
    // #NM: CR0.EM or CR0.TS (WAIT only with TS and MP).
    if m == M::Wait {
        if cpu.cr0 & cr0::TS != 0 && cpu.cr0 & cr0::MP != 0 {
            return Err(Exception::new(vector::NM));
        }
    } else if cpu.cr0 & (cr0::EM | cr0::TS) != 0 {
        return Err(Exception::new(vector::NM));
    }
    // Non-waiting control instructions do not check for pending exceptions.
    let no_wait = matches!(
        m,
        M::Fninit | M::Fnclex | M::Fnstcw | M::Fnstsw | M::Fnstenv | M::Fnsave
    );
    if !no_wait && cpu.fpu.fsw & fsw::ES != 0 && cpu.cr0 & cr0::NE != 0 {
        return Err(Exception::new(vector::MF));
    }
    let has_mem = i.op_count() > 0 && (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory);
    // The ST(i) operand of register forms (the one that is not ST(0), else ST(0)).
    let sti = (0..i.op_count())
        .filter(|&n| i.op_kind(n) == OpKind::Register)
        .map(|n| i.op_register(n))
        .filter(|r| r.is_st())
        .map(|r| (r as usize) - (Register::ST0 as usize))
        .find(|&k| k != 0)
        .unwrap_or(0);
    let control = matches!(
        m,
        M::Fninit
            | M::Finit
            | M::Fnclex
            | M::Fclex
            | M::Fldcw
            | M::Fnstcw
            | M::Fstcw
            | M::Fnstsw
            | M::Fstsw
            | M::Fnstenv
            | M::Fstenv
            | M::Fldenv
            | M::Fnsave
            | M::Fsave
            | M::Frstor
            | M::Wait
    );
    match m {
        M::Wait | M::Fnop => {}
        M::Fninit | M::Finit => cpu.fpu.finit(),
        M::Fnclex | M::Fclex => {
            cpu.fpu.fsw &= !(fsw::EXCEPTIONS | fsw::SF | fsw::ES | fsw::B);
        }
        M::Fldcw => {
            let v = cpu.read_op(bus, i, 0)? as u16;
            cpu.fpu.fcw = (v & fcw::WRITABLE) | fcw::FIXED;
            // Unmasking a pending exception raises #MF at the next waiting instruction.
            if cpu.fpu.fsw & fsw::EXCEPTIONS & !cpu.fpu.fcw & fcw::MASKS != 0 {
                cpu.fpu.fsw |= fsw::ES | fsw::B;
            } else {
                cpu.fpu.fsw &= !(fsw::ES | fsw::B);
            }
        }
        M::Fnstcw | M::Fstcw => cpu.write_op(bus, i, 0, cpu.fpu.fcw as u64)?,
        M::Fnstsw | M::Fstsw => {
            let v = cpu.fpu.fsw as u64;
            if i.op_kind(0) == OpKind::Register {
                cpu.set_reg(Register::AX, v);
            } else {
                cpu.write_op(bus, i, 0, v)?;
            }
        }
        M::Fnstenv | M::Fstenv | M::Fnsave | M::Fsave => {
            let save = matches!(m, M::Fnsave | M::Fsave);
            let img = env_image(cpu, i, save);
            let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
            let la = cpu.linear(seg, off, img.len() as u32, true)?;
            write_bytes(cpu, bus, la, &img)?;
            if save {
                cpu.fpu.finit();
            } else {
                // FNSTENV masks every exception afterwards: nothing is pending then.
                cpu.fpu.fcw |= fcw::MASKS;
                cpu.fpu.fsw &= !(fsw::ES | fsw::B);
            }
        }
        M::Fldenv | M::Frstor => {
            let restore = m == M::Frstor;
            let n = env_len(i) + if restore { 80 } else { 0 };
            let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
            let la = cpu.linear(seg, off, n as u32, false)?;
            let mut img = vec![0u8; n];
            for (k, b) in img.iter_mut().enumerate() {
                *b = cpu.read_linear128(bus, la.wrapping_add(k as u64), 1)? as u8;
            }
            load_env(cpu, i, &img, restore);
        }
        M::Ffree | M::Ffreep => {
            cpu.fpu.set_tag(sti, tag::EMPTY);
            cpu.set_c1(false);
            if m == M::Ffreep {
                cpu.x87_pop();
            }
        }
        M::Fincstp | M::Fdecstp => {
            let t = cpu.fpu.top() + if m == M::Fincstp { 1 } else { 7 };
            cpu.fpu.set_top(t);
            cpu.set_c1(false);
        }
        M::Fld | M::Fild => {
            let (v, fl) = if has_mem {
                cpu.x87_load(bus, i)?
            } else {
                match cpu.st_opt(sti) {
                    Some(v) => (v, 0),
                    None => {
                        if cpu.x87_underflow() {
                            cpu.x87_push(INDEFINITE);
                            // The underflow is reported (C1 = 0), not a push overflow.
                            cpu.set_c1(false);
                        }
                        cpu.x87_note(i, has_mem);
                        return Ok(());
                    }
                }
            };
            // A full stack is reported before anything about the operand.
            if cpu.fpu.tag_of(7) != tag::EMPTY {
                cpu.x87_push(v);
                cpu.x87_note(i, has_mem);
                return Ok(());
            }
            // FLD of a float SNaN loads it quieted, with IE (an 80-bit one is loaded as is).
            let (v, fl) = if has_mem && is_snan(v) && i.memory_size() != MemorySize::Float80 {
                (quiet(v), fl | fsw::IE)
            } else {
                (v, fl)
            };
            // An unmasked invalid operand loads nothing; a denormal one is loaded anyway
            // (its exception is reported at the next waiting instruction).
            cpu.x87_raise(fl);
            cpu.set_c1(false);
            if fl & fsw::IE & !cpu.fpu.fcw & fcw::MASKS == 0 {
                cpu.x87_push(v);
            }
        }
        M::Fbld | M::Fbstp => return Err(cpu.unimplemented(i)),
        _ if constant(m).is_some() => {
            let (exp, signif, extra) = constant(m).unwrap();
            let rc = cpu.x87_rc();
            // Round the 66-bit constant: nearest (ties cannot occur), up, down, zero.
            let up = match rc {
                0 => extra & 0b10 != 0,
                2 => extra != 0,
                _ => false,
            };
            let v = F80 {
                signif: signif + up as u64,
                sign_exp: exp,
            };
            cpu.set_c1(false);
            cpu.x87_push(v);
        }
        M::Fst | M::Fstp | M::Fist | M::Fistp | M::Fisttp => {
            let pop = matches!(m, M::Fstp | M::Fistp | M::Fisttp);
            let Some(v) = cpu.st_opt(0) else {
                if cpu.x87_underflow() {
                    if has_mem {
                        store_indefinite(cpu, bus, i)?;
                    } else {
                        cpu.fpu.set_st(sti, INDEFINITE);
                    }
                    if pop {
                        cpu.x87_pop();
                    }
                }
                cpu.x87_note(i, has_mem);
                return Ok(());
            };
            if !has_mem {
                cpu.set_c1(false);
                cpu.fpu.set_st(sti, v);
            } else if !store(cpu, bus, i, v)? {
                cpu.x87_note(i, has_mem);
                return Ok(());
            }
            if pop {
                cpu.x87_pop();
            }
        }
        M::Fxch => {
            let (a, b) = (cpu.st_opt(0), cpu.st_opt(sti));
            if a.is_none() || b.is_none() {
                if !cpu.x87_underflow() {
                    cpu.x87_note(i, false);
                    return Ok(());
                }
            } else {
                cpu.set_c1(false);
            }
            let (a, b) = (a.unwrap_or(INDEFINITE), b.unwrap_or(INDEFINITE));
            cpu.fpu.set_st(0, b);
            cpu.fpu.set_st(sti, a);
        }
        M::Fchs | M::Fabs => {
            let Some(v) = cpu.st_opt(0) else {
                if cpu.x87_underflow() {
                    cpu.fpu.set_st(0, INDEFINITE);
                }
                cpu.x87_note(i, false);
                return Ok(());
            };
            cpu.set_c1(false);
            let r = if m == M::Fchs {
                neg(v)
            } else {
                with_sign(v, false)
            };
            cpu.fpu.set_st(0, r);
        }
        M::Fcmovb
        | M::Fcmove
        | M::Fcmovbe
        | M::Fcmovu
        | M::Fcmovnb
        | M::Fcmovne
        | M::Fcmovnbe
        | M::Fcmovnu => {
            let f = |b| cpu.rflags & b != 0;
            let cond = match m {
                M::Fcmovb => f(rflags::CF),
                M::Fcmove => f(rflags::ZF),
                M::Fcmovbe => f(rflags::CF) || f(rflags::ZF),
                M::Fcmovu => f(rflags::PF),
                M::Fcmovnb => !f(rflags::CF),
                M::Fcmovne => !f(rflags::ZF),
                M::Fcmovnbe => !f(rflags::CF) && !f(rflags::ZF),
                _ => !f(rflags::PF),
            };
            match (cpu.st_opt(0), cpu.st_opt(sti)) {
                (Some(_), Some(v)) => {
                    if cond {
                        cpu.fpu.set_st(0, v);
                    }
                }
                _ => {
                    if cpu.x87_underflow() {
                        cpu.fpu.set_st(0, INDEFINITE);
                    }
                }
            }
        }
        _ if arith_of(m).is_some() => {
            let (op, reverse) = arith_of(m).unwrap();
            let pop = matches!(
                m,
                M::Faddp | M::Fmulp | M::Fsubp | M::Fsubrp | M::Fdivp | M::Fdivrp
            );
            // Destination and the two operands (dest op src, or src op dest reversed).
            let (dst, a, b, lfl) = if has_mem {
                let (v, fl) = cpu.x87_load(bus, i)?;
                (0, cpu.st_opt(0), Some(v), fl)
            } else {
                // "FADD ST(0), ST(i)" writes ST(0); "FADD ST(i), ST(0)" writes ST(i).
                let dst_is_st0 = i.op_register(0) == Register::ST0 && !pop;
                let d = if dst_is_st0 { 0 } else { sti };
                let s = if dst_is_st0 { sti } else { 0 };
                (d, cpu.st_opt(d), cpu.st_opt(s), 0)
            };
            let (Some(a), Some(b)) = (a, b) else {
                if cpu.x87_underflow() {
                    cpu.fpu.set_st(dst, INDEFINITE);
                    if pop {
                        cpu.x87_pop();
                    }
                }
                cpu.x87_note(i, has_mem);
                return Ok(());
            };
            let (x, y) = if reverse { (b, a) } else { (a, b) };
            let (r, fl, up) = arith(cpu, op, x, y);
            // The operand's denormal flag, unless an invalid operation or a division by
            // zero takes precedence.
            let lde = if fl & (fsw::IE | fsw::ZE) != 0 || is_nan(x) || is_nan(y) {
                0
            } else {
                lfl & fsw::DE
            };
            let fl = fl | (lfl & fsw::IE) | lde;
            // C1 reports the rounding of a delivered result.
            if cpu.x87_result(i, dst, r, fl)? {
                cpu.set_c1(up);
                if pop {
                    cpu.x87_pop();
                }
            }
        }
        M::Fcom
        | M::Fcomp
        | M::Fcompp
        | M::Fucom
        | M::Fucomp
        | M::Fucompp
        | M::Ficom
        | M::Ficomp
        | M::Ftst
        | M::Fcomi
        | M::Fcomip
        | M::Fucomi
        | M::Fucomip => {
            let pops = match m {
                M::Fcomp | M::Fucomp | M::Ficomp | M::Fcomip | M::Fucomip => 1,
                M::Fcompp | M::Fucompp => 2,
                _ => 0,
            };
            let (b, lfl) = if has_mem {
                let (v, fl) = cpu.x87_load(bus, i)?;
                (Some(v), fl)
            } else if m == M::Ftst {
                (Some(F80::default()), 0)
            } else {
                let k = if matches!(m, M::Fcompp | M::Fucompp) {
                    1
                } else {
                    sti.max(1)
                };
                let k = if i.op_count() > 1 || matches!(m, M::Fcompp | M::Fucompp) {
                    if matches!(m, M::Fcompp | M::Fucompp) {
                        1
                    } else {
                        sti
                    }
                } else {
                    k
                };
                (cpu.st_opt(k), 0)
            };
            let eflags = matches!(m, M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip);
            let (ord, fl) = match (cpu.st_opt(0), b) {
                (Some(a), Some(b)) => {
                    let quiet_cmp = matches!(
                        m,
                        M::Fucom | M::Fucomp | M::Fucompp | M::Fucomi | M::Fucomip
                    );
                    let (o, f) = compare(a, b, quiet_cmp);
                    // A NaN operand hides the memory operand's denormal.
                    let lde = if is_nan(a) || is_nan(b) {
                        0
                    } else {
                        lfl & fsw::DE
                    };
                    (o, f | lde)
                }
                _ => {
                    cpu.set_c1(false);
                    (None, fsw::IE | fsw::SF)
                }
            };
            // An unmasked invalid operation reports "unordered"; any unmasked exception
            // suppresses the pops.
            let unmasked = fl & !cpu.fpu.fcw & fcw::MASKS & (fsw::IE | fsw::DE) != 0;
            let ord = if fl & !cpu.fpu.fcw & fcw::MASKS & fsw::IE != 0 {
                None
            } else {
                ord
            };
            cpu.x87_raise(fl);
            {
                use std::cmp::Ordering as O;
                if eflags {
                    let f = match ord {
                        None => rflags::ZF | rflags::PF | rflags::CF,
                        Some(O::Less) => rflags::CF,
                        Some(O::Equal) => rflags::ZF,
                        Some(O::Greater) => 0,
                    };
                    let all =
                        rflags::ZF | rflags::PF | rflags::CF | rflags::OF | rflags::SF | rflags::AF;
                    cpu.rflags = (cpu.rflags & !all) | f;
                    cpu.set_c1(false);
                } else {
                    let cc = match ord {
                        None => fsw::C3 | fsw::C2 | fsw::C0,
                        Some(O::Less) => fsw::C0,
                        Some(O::Equal) => fsw::C3,
                        Some(O::Greater) => 0,
                    };
                    cpu.set_cc(cc);
                }
                if !unmasked {
                    for _ in 0..pops {
                        cpu.x87_pop();
                    }
                }
            }
        }
        M::Fxam => {
            let v = cpu.fpu.st(0);
            let empty = cpu.fpu.tag_of(0) == tag::EMPTY;
            let c1 = if v.sign() { fsw::C1 } else { 0 };
            let cls = if empty {
                fsw::C3 | fsw::C0
            } else if is_unsupported(v) {
                0
            } else if is_nan(v) {
                fsw::C0
            } else if is_inf(v) {
                fsw::C2 | fsw::C0
            } else if is_zero(v) {
                fsw::C3
            } else if is_denormal(v) {
                fsw::C3 | fsw::C2
            } else {
                fsw::C2
            };
            cpu.set_cc(cls | c1);
        }
        M::Fsqrt | M::Frndint => {
            let Some(v) = cpu.st_opt(0) else {
                if cpu.x87_underflow() {
                    cpu.fpu.set_st(0, INDEFINITE);
                }
                cpu.x87_note(i, false);
                return Ok(());
            };
            let (r, fl, up) = if let Some((r, fl)) = nan_operands(v, None) {
                (r, fl, false)
            } else {
                let de = if is_denormal(v) { fsw::DE } else { 0 };
                let rc = cpu.x87_rc();
                let pc = if m == M::Fsqrt { cpu.x87_pc() } else { 80 };
                let f = |v: F80| unsafe {
                    if m == M::Fsqrt {
                        from_sf(sf::extF80_sqrt(to_sf(v)))
                    } else {
                        from_sf(sf::extF80_roundToInt(
                            to_sf(v),
                            sf::softfloat_roundingMode_read_helper(),
                            true,
                        ))
                    }
                };
                let (r, fl) = sf_run(rc, pc, || f(v));
                let up = fl & fsw::PE != 0 && rounded_up(r, sf_run(3, pc, || f(v)).0);
                (r, if fl & fsw::IE != 0 { fl } else { fl | de }, up)
            };
            cpu.set_c1(up);
            cpu.x87_result(i, 0, r, fl)?;
        }
        M::Fscale | M::Fprem | M::Fprem1 => {
            let (Some(a), Some(b)) = (cpu.st_opt(0), cpu.st_opt(1)) else {
                if m != M::Fscale {
                    cpu.fpu.fsw &= !fsw::C2;
                }
                if cpu.x87_underflow() {
                    cpu.fpu.set_st(0, INDEFINITE);
                }
                cpu.x87_note(i, false);
                return Ok(());
            };
            if m == M::Fscale {
                let (r, fl) = fscale(cpu, a, b);
                let up = fl & fsw::PE != 0 && {
                    let mut z = cpu.clone_fcw_rc(3);
                    std::mem::swap(&mut z, &mut cpu.fpu.fcw);
                    let (t, _) = fscale(cpu, a, b);
                    std::mem::swap(&mut z, &mut cpu.fpu.fcw);
                    rounded_up(r, t)
                };
                if cpu.x87_result(i, 0, r, fl)? {
                    cpu.set_c1(up);
                }
            } else {
                let (r, fl, q, partial) = fprem(a, b, m == M::Fprem1);
                let special = is_nan(a) || is_nan(b) || fl & fsw::IE != 0;
                if cpu.x87_result(i, 0, r, fl)? && !special {
                    let mut cc = 0;
                    if partial {
                        cc |= fsw::C2;
                    } else {
                        if q & 4 != 0 {
                            cc |= fsw::C0;
                        }
                        if q & 2 != 0 {
                            cc |= fsw::C3;
                        }
                        if q & 1 != 0 {
                            cc |= fsw::C1;
                        }
                    }
                    cpu.set_cc(cc);
                } else {
                    // NaN operands and invalid operations: C1 and C2 cleared, C0 and C3
                    // kept (as the host CPU does; the SDM leaves them undefined).
                    cpu.fpu.fsw &= !(fsw::C1 | fsw::C2);
                }
            }
        }
        M::Fxtract => {
            let Some(v) = cpu.st_opt(0) else {
                if cpu.x87_underflow() {
                    // Both results are the indefinite; the push reports no overflow.
                    cpu.fpu.set_st(0, INDEFINITE);
                    let top = cpu.fpu.top() + 7;
                    cpu.fpu.set_top(top);
                    cpu.fpu.set_st(0, INDEFINITE);
                }
                cpu.x87_note(i, false);
                return Ok(());
            };
            if cpu.fpu.tag_of(7) != tag::EMPTY {
                // Stack overflow: the masked response leaves the indefinite in both.
                cpu.set_c1(true);
                if !cpu.x87_raise(fsw::IE | fsw::SF) {
                    cpu.fpu.set_st(0, INDEFINITE);
                    let top = cpu.fpu.top() + 7;
                    cpu.fpu.set_top(top);
                    cpu.fpu.set_st(0, INDEFINITE);
                }
                cpu.x87_note(i, false);
                return Ok(());
            }
            let (e, s, fl) = fxtract(v);
            if fl & (fsw::IE | fsw::ZE | fsw::DE) & !cpu.fpu.fcw & fcw::MASKS != 0 {
                cpu.x87_raise(fl);
                cpu.set_c1(false);
            } else {
                cpu.x87_raise(fl);
                cpu.set_c1(false);
                cpu.fpu.set_st(0, e);
                cpu.x87_push(s);
            }
        }
        M::F2xm1
        | M::Fyl2x
        | M::Fyl2xp1
        | M::Fptan
        | M::Fpatan
        | M::Fsin
        | M::Fcos
        | M::Fsincos => transcendental(cpu, i)?,
        _ => return Err(cpu.unimplemented(i)),
    }
    if !control {
        cpu.x87_note(i, has_mem);
    }
    Ok(())
}

/// Compare `a` with `b`: None if unordered. FUCOM-style (`quiet`) raises IE only for
/// SNaNs; FCOM-style for any NaN. Unsupported encodings are invalid.
fn compare(a: F80, b: F80, quiet_cmp: bool) -> (Option<std::cmp::Ordering>, u16) {
    if is_unsupported(a) || is_unsupported(b) {
        return (None, fsw::IE);
    }
    if is_nan(a) || is_nan(b) {
        let ie = !quiet_cmp || is_snan(a) || is_snan(b);
        return (None, if ie { fsw::IE } else { 0 });
    }
    let de = if is_denormal(a) || is_denormal(b) {
        fsw::DE
    } else {
        0
    };
    let (lt, _) = sf_run(0, 80, || unsafe { sf::extF80_lt_quiet(to_sf(a), to_sf(b)) });
    let (eq, _) = sf_run(0, 80, || unsafe { sf::extF80_eq(to_sf(a), to_sf(b)) });
    use std::cmp::Ordering as O;
    (
        Some(if lt {
            O::Less
        } else if eq {
            O::Equal
        } else {
            O::Greater
        }),
        de,
    )
}

/// Store ST(0) to the memory operand in its format. False if an unmasked exception
/// suppressed the store (the caller then does not pop).
fn store(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction, v: F80) -> Result<bool, Exception> {
    let m = i.mnemonic();
    let ms = i.memory_size();
    let rc = if m == M::Fisttp { 3 } else { cpu.x87_rc() };
    let conv = |rc: u16| -> (u128, u16) {
        sf_run(rc, 80, || unsafe {
            let x = to_sf(v);
            let round = sf::softfloat_roundingMode_read_helper();
            match ms {
                MemorySize::Float32 => sf::extF80_to_f32(x).v as u128,
                MemorySize::Float64 => sf::extF80_to_f64(x).v as u128,
                MemorySize::Int16 => {
                    let r = sf::extF80_to_i32(x, round, true);
                    if (-32768..=32767).contains(&r) {
                        r as u16 as u128
                    } else {
                        sf::softfloat_exceptionFlags_write_helper(sf::softfloat_flag_invalid);
                        0x8000
                    }
                }
                MemorySize::Int32 => sf::extF80_to_i32(x, round, true) as u32 as u128,
                MemorySize::Int64 => sf::extF80_to_i64(x, round, true) as u64 as u128,
                _ => v.signif as u128 | (v.sign_exp as u128) << 64,
            }
        })
    };
    if is_unsupported(v) && ms != MemorySize::Float80 {
        return store_invalid(cpu, bus, i);
    }
    let (raw, fl) = conv(rc);
    let int = matches!(
        ms,
        MemorySize::Int16 | MemorySize::Int32 | MemorySize::Int64
    );
    if int && fl & fsw::IE != 0 {
        // NaN or out of range: the integer indefinite (masked), no store (unmasked).
        return store_invalid(cpu, bus, i);
    }
    // FST raises no denormal-operand exception (SDM Vol. 2, FST: #IA, #U, #O, #P).
    if fl & (fsw::IE | fsw::DE) & !cpu.fpu.fcw & fcw::MASKS != 0 {
        cpu.x87_raise(fl & (fsw::IE | fsw::DE));
        cpu.set_c1(false);
        return Ok(false);
    }
    if fl & (fsw::OE | fsw::UE) & !cpu.fpu.fcw & fcw::MASKS != 0 {
        cpu.x87_raise(fl & (fsw::OE | fsw::UE | fsw::DE));
        return Ok(false);
    }
    let up = fl & fsw::PE != 0 && {
        let (t, _) = conv(3);
        // Magnitudes as integers of the same format compare like the values.
        let mag = |r: u128| match ms {
            MemorySize::Float32 => r & 0x7fff_ffff,
            MemorySize::Float64 => r & 0x7fff_ffff_ffff_ffff,
            MemorySize::Int16 => (r as u16 as i16).unsigned_abs() as u128,
            MemorySize::Int32 => (r as u32 as i32).unsigned_abs() as u128,
            _ => (r as u64 as i64).unsigned_abs() as u128,
        };
        mag(raw) > mag(t)
    };
    let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
    let la = cpu.linear(seg, off, ms.size() as u32, true)?;
    cpu.write_linear128(bus, la, ms.size() as u32, raw)?;
    cpu.set_c1(up);
    cpu.x87_raise(fl);
    Ok(true)
}

/// An invalid store: IE; masked, the indefinite of the destination format is stored.
fn store_invalid(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> Result<bool, Exception> {
    cpu.set_c1(false);
    // (C1 is 0 whether or not the store happens.)
    if cpu.x87_raise(fsw::IE) {
        return Ok(false);
    }
    store_indefinite(cpu, bus, i)?;
    Ok(true)
}

fn store_indefinite(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let ms = i.memory_size();
    let raw: u128 = match ms {
        MemorySize::Float32 => 0xffc0_0000,
        MemorySize::Float64 => 0xfff8_0000_0000_0000,
        MemorySize::Int16 => 0x8000,
        MemorySize::Int32 => 0x8000_0000,
        MemorySize::Int64 => 0x8000_0000_0000_0000,
        _ => INDEFINITE.signif as u128 | (INDEFINITE.sign_exp as u128) << 64,
    };
    let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
    let la = cpu.linear(seg, off, ms.size() as u32, true)?;
    cpu.write_linear128(bus, la, ms.size() as u32, raw)
}

/// FSCALE: ST(0) * 2^trunc(ST(1)), rounded as the control word says.
fn fscale(cpu: &Cpu, a: F80, b: F80) -> (F80, u16) {
    if let Some(r) = nan_operands(a, Some(b)) {
        return r;
    }
    let de = if is_denormal(a) || is_denormal(b) {
        fsw::DE
    } else {
        0
    };
    if is_inf(b) {
        return match (b.sign(), is_zero(a), is_inf(a)) {
            (false, true, _) | (true, _, true) => (INDEFINITE, fsw::IE),
            (false, _, _) => (if is_zero(a) { a } else { infinity(a.sign()) }, de),
            (true, _, _) => (zero(a.sign()), de),
        };
    }
    if is_zero(a) || is_inf(a) {
        return (a, de);
    }
    // trunc(ST(1)) clamped: anything beyond +-2^16 over- or underflows anyway.
    const SCALE_LIMIT: i64 = 1 << 17;
    let n = if b.exp() as i32 >= BIAS + 17 {
        if b.sign() {
            -SCALE_LIMIT
        } else {
            SCALE_LIMIT
        }
    } else {
        sf_run(3, 80, || unsafe {
            sf::extF80_to_i64(to_sf(b), sf::softfloat_round_minMag, false)
        })
        .0
    };
    let n = n.clamp(-SCALE_LIMIT, SCALE_LIMIT) as i32;
    // Exact: normalise the significand, add n to the exponent, then round once by
    // building the value with SoftFloat (a multiplication by 1 at the target exponent
    // cannot be used beyond the format's range, so round through roundPack via mul by a
    // power of two in two steps where needed).
    let (mut sig, mut e) = (a.signif, a.exp() as i32);
    if e == 0 {
        e = 1;
    }
    let lz = sig.leading_zeros() as i32;
    sig <<= lz;
    e -= lz;
    let target = e + n;
    let rc = cpu.x87_rc();
    if (1..EXP_MAX as i32).contains(&target) {
        let r = F80 {
            signif: sig,
            sign_exp: target as u16 | if a.sign() { 0x8000 } else { 0 },
        };
        return (r, de);
    }
    // Out of the normal range: scale by a power of two in range and let SoftFloat round.
    let half = if target >= EXP_MAX as i32 {
        0x3fff + 0x3000
    } else {
        0x3fff - 0x3000
    };
    let mid = target - (half - BIAS);
    let x = F80 {
        signif: sig,
        sign_exp: mid.clamp(1, EXP_MAX as i32 - 1) as u16 | if a.sign() { 0x8000 } else { 0 },
    };
    let p = F80 {
        signif: INT_BIT,
        sign_exp: half as u16,
    };
    let (r, fl) = sf_run(rc, 80, || unsafe {
        from_sf(sf::extF80_mul(to_sf(x), to_sf(p)))
    });
    (r, fl | de)
}

/// FPREM (truncating quotient) and FPREM1 (IEEE, nearest): the exact remainder when the
/// exponents differ by less than 64; otherwise a partial remainder (C2 set) reducing the
/// exponent difference by 63 at most, so repeated FPREMs converge (SDM: N is
/// implementation-dependent between 32 and 63). Returns result, flags, the low three
/// quotient bits and whether it is partial.
fn fprem(a: F80, b: F80, ieee: bool) -> (F80, u16, u64, bool) {
    if let Some((r, fl)) = nan_operands(a, Some(b)) {
        return (r, fl, 0, false);
    }
    if is_inf(a) || is_zero(b) {
        return (INDEFINITE, fsw::IE, 0, false);
    }
    let de = if is_denormal(a) || is_denormal(b) {
        fsw::DE
    } else {
        0
    };
    if is_zero(a) || is_inf(b) {
        return (a, de, 0, false);
    }
    let norm = |v: F80| {
        let (mut s, mut e) = (v.signif, v.exp() as i32);
        if e == 0 {
            e = 1;
        }
        let lz = s.leading_zeros() as i32;
        s <<= lz;
        e -= lz;
        (s, e)
    };
    let (sa, ea) = norm(a);
    let (sb, eb) = norm(b);
    let d = ea - eb;
    if d < 0 {
        // |a| < |b|: FPREM keeps a; FPREM1 rounds the quotient to 1 when |a| > |b|/2
        // (d = -1 and a's significand above b's), leaving -(|b| - |a|) with a's sign
        // flipped.
        if ieee && d == -1 && sa > sb {
            let r = ((sb as u128) << 1) - sa as u128;
            let (v, fl, _, _) = pack_rem(r, ea, !a.sign(), de, 1);
            return (v, fl, 1, false);
        }
        return (a, de, 0, false);
    }
    // A partial remainder develops N = 32 + (D mod 32) quotient bits per step (the
    // SDM leaves N implementation-dependent between 32 and 63; this is the host's).
    let (shift, partial) = if d >= SIGNIF_BITS {
        (PARTIAL_BITS + d % PARTIAL_BITS, true)
    } else {
        (d, false)
    };
    let num = (sa as u128) << shift;
    let den = sb as u128;
    let mut q = num / den;
    let mut r = num % den;
    let mut flip = false;
    if ieee && !partial {
        let twice = r << 1;
        if twice > den || (twice == den && q & 1 == 1) {
            r = den - r;
            q += 1;
            flip = true;
        }
    }
    // The remainder is r units of b's exponent (times 2^(d - shift) when partial).
    let exp = eb + (d - shift);
    let (res, fl, _, _) = pack_rem(r, exp, a.sign() ^ flip, de, q);
    (res, fl, q as u64 & 7, partial)
}

/// Normalise an exact remainder `r * 2^(exp - 63)` into an 80-bit value (denormal if
/// needed; exact, so no rounding).
fn pack_rem(r: u128, exp: i32, negative: bool, de: u16, q: u128) -> (F80, u16, u64, bool) {
    if r == 0 {
        return (zero(negative), de, q as u64 & 7, false);
    }
    let lz = (r as u64).leading_zeros() as i32;
    let mut s = (r as u64) << lz;
    let mut e = exp - lz;
    if e < 1 {
        s >>= 1 - e;
        e = 0;
    }
    let v = F80 {
        signif: s,
        sign_exp: e as u16 | if negative { 0x8000 } else { 0 },
    };
    let fl = if e == 0 { de | fsw::UE } else { de };
    // An exact tiny remainder is not an underflow unless UE is unmasked; keep it simple:
    // report nothing for exact denormal results (masked behaviour).
    (v, fl & !fsw::UE, q as u64 & 7, false)
}

/// FXTRACT: ST(0) becomes the exponent, then the significand (with ST(0)'s sign and a
/// zero exponent) is pushed. Returns (exponent, significand, flags).
fn fxtract(v: F80) -> (F80, F80, u16) {
    if let Some((r, fl)) = nan_operands(v, None) {
        return (r, r, fl);
    }
    if is_zero(v) {
        return (infinity(true), v, fsw::ZE);
    }
    if is_inf(v) {
        return (infinity(false), v, 0);
    }
    let (mut s, mut e) = (v.signif, v.exp() as i32);
    let de = if e == 0 { fsw::DE } else { 0 };
    if e == 0 {
        e = 1;
    }
    let lz = s.leading_zeros() as i32;
    s <<= lz;
    e -= lz;
    let (exp, _) = sf_run(0, 80, || unsafe { from_sf(sf::i32_to_extF80(e - BIAS)) });
    let sig = F80 {
        signif: s,
        sign_exp: BIAS as u16 | if v.sign() { 0x8000 } else { 0 },
    };
    (exp, sig, de)
}

fn to_f64(v: F80) -> f64 {
    let (r, _) = sf_run(0, 80, || unsafe { sf::extF80_to_f64(to_sf(v)).v });
    f64::from_bits(r)
}
fn from_f64(v: f64) -> F80 {
    let (r, _) = sf_run(0, 80, || unsafe {
        from_sf(sf::f64_to_extF80(sf::float64_t { v: v.to_bits() }))
    });
    r
}

/// The transcendental instructions, through the host's double-precision libm (see the
/// module comment for the accuracy).
fn transcendental(cpu: &mut Cpu, i: &Instruction) -> ExecResult {
    let m = i.mnemonic();
    let two = matches!(m, M::Fyl2x | M::Fyl2xp1 | M::Fpatan);
    let (Some(a), b) = (cpu.st_opt(0), cpu.st_opt(1)) else {
        if cpu.x87_underflow() {
            cpu.fpu.set_st(0, INDEFINITE);
        }
        return Ok(());
    };
    if two && b.is_none() {
        if cpu.x87_underflow() {
            cpu.fpu.set_st(1, INDEFINITE);
            cpu.x87_pop();
        }
        return Ok(());
    }
    let b = b.unwrap_or_default();
    if let Some((r, fl)) = nan_operands(a, if two { Some(b) } else { None }) {
        let dst = if two { 1 } else { 0 };
        if cpu.x87_result(i, dst, r, fl)? {
            if two {
                cpu.x87_pop();
            } else if matches!(m, M::Fptan | M::Fsincos) {
                cpu.x87_push(r);
            }
        }
        return Ok(());
    }
    let x = to_f64(a);
    // FSIN/FCOS/FSINCOS/FPTAN: |x| >= 2^63 is out of range: C2 set, ST(0) unchanged.
    if matches!(m, M::Fsin | M::Fcos | M::Fsincos | M::Fptan) {
        if x.abs() >= TRIG_RANGE {
            cpu.set_cc(fsw::C2);
            return Ok(());
        }
        cpu.set_cc(0);
    }
    let y = to_f64(b);
    let res = match m {
        M::F2xm1 => x.exp2() - 1.0,
        M::Fyl2x => y * x.log2(),
        M::Fyl2xp1 => y * x.ln_1p() / std::f64::consts::LN_2,
        M::Fptan => x.tan(),
        M::Fpatan => y.atan2(x),
        M::Fsin => x.sin(),
        M::Fcos => x.cos(),
        _ => x.sin(),
    };
    let invalid = res.is_nan();
    let fl = if invalid { fsw::IE } else { fsw::PE };
    let zde = if m == M::Fyl2x && x == 0.0 && !invalid {
        fsw::ZE
    } else {
        0
    };
    let r = if invalid { INDEFINITE } else { from_f64(res) };
    let fl = if zde != 0 { zde } else { fl };
    match m {
        M::Fyl2x | M::Fyl2xp1 | M::Fpatan => {
            if cpu.x87_result(i, 1, r, fl)? {
                cpu.x87_pop();
            }
        }
        M::Fptan => {
            if cpu.x87_result(i, 0, r, fl)? {
                cpu.x87_push(F80 {
                    signif: INT_BIT,
                    sign_exp: BIAS as u16,
                });
            }
        }
        M::Fsincos => {
            if cpu.x87_result(i, 0, r, fl)? {
                cpu.x87_push(from_f64(x.cos()));
            }
        }
        _ => {
            cpu.x87_result(i, 0, r, fl)?;
        }
    }
    Ok(())
}

/// Bytes of the FNSTENV image: 28 with a 32-bit operand size, 14 with 16.
fn env_len(i: &Instruction) -> usize {
    match i.code() {
        Code::Fldenv_m14byte | Code::Fnstenv_m14byte | Code::Fstenv_m14byte => 14,
        Code::Frstor_m94byte | Code::Fnsave_m94byte | Code::Fsave_m94byte => 14,
        _ => 28,
    }
}

/// The protected-mode FNSTENV/FNSAVE image (SDM Vol. 1, Figures 8-9 and 8-10).
fn env_image(cpu: &Cpu, i: &Instruction, with_regs: bool) -> Vec<u8> {
    let f = &cpu.fpu;
    let mut b = Vec::new();
    let fop_cs = (f.fcs as u32) | ((f.fop as u32) << 16);
    if env_len(i) == 28 {
        for v in [
            0xffff_0000 | f.fcw as u32,
            0xffff_0000 | f.fsw as u32,
            0xffff_0000 | f.ftw as u32,
            f.fip as u32,
            fop_cs,
            f.fdp as u32,
            0xffff_0000 | f.fds as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    } else {
        for v in [
            f.fcw,
            f.fsw,
            f.ftw,
            f.fip as u16,
            f.fcs,
            f.fdp as u16,
            f.fds,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    if with_regs {
        for k in 0..8 {
            b.extend_from_slice(&f.st(k).to_bytes());
        }
    }
    b
}

fn load_env(cpu: &mut Cpu, i: &Instruction, b: &[u8], with_regs: bool) {
    let long = env_len(i) == 28;
    let w = |k: usize| -> u32 {
        if long {
            u32::from_le_bytes(b[4 * k..4 * k + 4].try_into().unwrap())
        } else {
            u16::from_le_bytes([b[2 * k], b[2 * k + 1]]) as u32
        }
    };
    let f = &mut cpu.fpu;
    f.fcw = (w(0) as u16 & fcw::WRITABLE) | fcw::FIXED;
    f.fsw = w(1) as u16;
    f.ftw = w(2) as u16;
    f.fip = w(3) as u64;
    f.fcs = w(4) as u16;
    if long {
        f.fop = (w(4) >> 16) as u16 & 0x7ff;
    }
    f.fdp = w(5) as u64;
    f.fds = w(6) as u16;
    if with_regs {
        let base = env_len(i);
        for k in 0..8 {
            let o = base + 10 * k;
            let v = F80::from_bytes(&b[o..o + 10]);
            let r = f.phys(k);
            f.st[r] = v;
        }
    }
    // Recompute non-empty tags from the contents, keep "empty".
    for r in 0..8 {
        if (f.ftw >> (2 * r)) & 3 != tag::EMPTY {
            let t = f.st[r].tag();
            f.ftw = (f.ftw & !(3 << (2 * r))) | (t << (2 * r));
        }
    }
    if f.fsw & fsw::EXCEPTIONS & !f.fcw & fcw::MASKS != 0 {
        f.fsw |= fsw::ES | fsw::B;
    } else {
        f.fsw &= !(fsw::ES | fsw::B);
    }
}

fn write_bytes(cpu: &mut Cpu, bus: &mut Bus, la: u64, data: &[u8]) -> ExecResult {
    use crate::mmu::AccessKind;
    cpu.translate(bus, la, AccessKind::Write, false)?;
    cpu.translate(
        bus,
        la.wrapping_add(data.len() as u64 - 1),
        AccessKind::Write,
        false,
    )?;
    for (k, b) in data.iter().enumerate() {
        cpu.write_linear(bus, la.wrapping_add(k as u64), 1, *b as u64, false)?;
    }
    Ok(())
}
