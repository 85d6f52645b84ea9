//! The instruction forms under test: iced-x86's `Code` values grouped into classes, and
//! the facts about each form the generator needs (stack use, implicit registers, sizes).
//!
//! A form is tested if its mnemonic belongs to a class, both Intel and AMD decode it the
//! same way in 64-bit mode, the host CPU has it, and every operand is a general register,
//! memory, an immediate, a near branch or a string operand (see `eligible`).

use iced_x86::{
    Code, CpuidFeature, DecoderOptions, EncodingKind, Instruction, MemorySize, Mnemonic as M,
    OpCodeOperandKind as K,
};

/// Longest legal instruction (a longer one is #UD, not tested here).
pub(super) const MAX_INSN_LEN: usize = 15;

/// Instruction classes: what the run counts, and what a case is drawn from (a class
/// uniformly, then one of its forms uniformly).
pub const CLASSES: &[(&str, &[M])] = &[
    ("mov", &[M::Mov]),
    ("movzx/movsx/movsxd", &[M::Movzx, M::Movsx, M::Movsxd]),
    ("lea", &[M::Lea]),
    ("xchg", &[M::Xchg]),
    ("cmpxchg", &[M::Cmpxchg]),
    ("cmpxchg8b/16b", &[M::Cmpxchg8b, M::Cmpxchg16b]),
    ("xadd", &[M::Xadd]),
    (
        "add/adc/sub/sbb/cmp",
        &[M::Add, M::Adc, M::Sub, M::Sbb, M::Cmp],
    ),
    ("and/or/xor", &[M::And, M::Or, M::Xor]),
    ("not/neg", &[M::Not, M::Neg]),
    ("inc/dec", &[M::Inc, M::Dec]),
    ("test", &[M::Test]),
    ("mul/imul", &[M::Mul, M::Imul]),
    ("div/idiv", &[M::Div, M::Idiv]),
    ("shl/sal/shr/sar", &[M::Shl, M::Sal, M::Shr, M::Sar]),
    ("rol/ror/rcl/rcr", &[M::Rol, M::Ror, M::Rcl, M::Rcr]),
    ("shld/shrd", &[M::Shld, M::Shrd]),
    ("bt/bts/btr/btc", &[M::Bt, M::Bts, M::Btr, M::Btc]),
    ("bsf/bsr", &[M::Bsf, M::Bsr]),
    ("tzcnt/lzcnt/popcnt", &[M::Tzcnt, M::Lzcnt, M::Popcnt]),
    ("bswap", &[M::Bswap]),
    (
        "setcc",
        &[
            M::Seto,
            M::Setno,
            M::Setb,
            M::Setae,
            M::Sete,
            M::Setne,
            M::Setbe,
            M::Seta,
            M::Sets,
            M::Setns,
            M::Setp,
            M::Setnp,
            M::Setl,
            M::Setge,
            M::Setle,
            M::Setg,
        ],
    ),
    (
        "cmovcc",
        &[
            M::Cmovo,
            M::Cmovno,
            M::Cmovb,
            M::Cmovae,
            M::Cmove,
            M::Cmovne,
            M::Cmovbe,
            M::Cmova,
            M::Cmovs,
            M::Cmovns,
            M::Cmovp,
            M::Cmovnp,
            M::Cmovl,
            M::Cmovge,
            M::Cmovle,
            M::Cmovg,
        ],
    ),
    (
        "jcc",
        &[
            M::Jo,
            M::Jno,
            M::Jb,
            M::Jae,
            M::Je,
            M::Jne,
            M::Jbe,
            M::Ja,
            M::Js,
            M::Jns,
            M::Jp,
            M::Jnp,
            M::Jl,
            M::Jge,
            M::Jle,
            M::Jg,
        ],
    ),
    ("jmp/call/ret", &[M::Jmp, M::Call, M::Ret]),
    (
        "loop/jrcxz",
        &[M::Loop, M::Loope, M::Loopne, M::Jrcxz, M::Jecxz],
    ),
    ("push/pop", &[M::Push, M::Pop]),
    ("pushf/popf", &[M::Pushf, M::Pushfq, M::Popf, M::Popfq]),
    ("enter/leave", &[M::Enter, M::Leave]),
    (
        "cbw/cwde/cdqe/cwd/cdq/cqo",
        &[M::Cbw, M::Cwde, M::Cdqe, M::Cwd, M::Cdq, M::Cqo],
    ),
    (
        "movs/stos/lods/scas/cmps",
        &[
            M::Movsb,
            M::Movsw,
            M::Movsd,
            M::Movsq,
            M::Stosb,
            M::Stosw,
            M::Stosd,
            M::Stosq,
            M::Lodsb,
            M::Lodsw,
            M::Lodsd,
            M::Lodsq,
            M::Scasb,
            M::Scasw,
            M::Scasd,
            M::Scasq,
            M::Cmpsb,
            M::Cmpsw,
            M::Cmpsd,
            M::Cmpsq,
        ],
    ),
    ("lahf/sahf", &[M::Lahf, M::Sahf]),
    (
        "cmc/clc/stc/cld/std",
        &[M::Cmc, M::Clc, M::Stc, M::Cld, M::Std],
    ),
    ("nop/pause", &[M::Nop, M::Pause]),
    ("xlat", &[M::Xlatb]),
    ("movbe", &[M::Movbe]),
    (
        "andn/bextr/blsi/blsmsk/blsr",
        &[M::Andn, M::Bextr, M::Blsi, M::Blsmsk, M::Blsr],
    ),
    (
        "bzhi/pdep/pext/sarx/shlx/shrx/rorx/mulx",
        &[
            M::Bzhi,
            M::Pdep,
            M::Pext,
            M::Sarx,
            M::Shlx,
            M::Shrx,
            M::Rorx,
            M::Mulx,
        ],
    ),
];

/// SSE/SSE2 classes: legacy-encoded XMM forms only (the MMX forms are in
/// `MMX_CLASSES`; VEX forms are not implemented and never drawn).
pub const SIMD_CLASSES: &[(&str, &[M])] = &[
    (
        "sse moves",
        &[
            M::Movaps,
            M::Movups,
            M::Movapd,
            M::Movupd,
            M::Movdqa,
            M::Movdqu,
            M::Movss,
            M::Movsd,
            M::Movlps,
            M::Movhps,
            M::Movlpd,
            M::Movhpd,
            M::Movhlps,
            M::Movlhps,
            M::Movd,
            M::Movq,
            M::Movntps,
            M::Movntpd,
            M::Movntdq,
            M::Lddqu,
            M::Movnti,
        ],
    ),
    (
        "sse movmsk/pextrw/pinsrw",
        &[M::Movmskps, M::Movmskpd, M::Pmovmskb, M::Pextrw, M::Pinsrw],
    ),
    (
        "sse logic",
        &[
            M::Andps,
            M::Andnps,
            M::Orps,
            M::Xorps,
            M::Andpd,
            M::Andnpd,
            M::Orpd,
            M::Xorpd,
            M::Pand,
            M::Pandn,
            M::Por,
            M::Pxor,
        ],
    ),
    (
        "sse2 integer add/sub",
        &[
            M::Paddb,
            M::Paddw,
            M::Paddd,
            M::Paddq,
            M::Psubb,
            M::Psubw,
            M::Psubd,
            M::Psubq,
            M::Paddsb,
            M::Paddsw,
            M::Paddusb,
            M::Paddusw,
            M::Psubsb,
            M::Psubsw,
            M::Psubusb,
            M::Psubusw,
        ],
    ),
    (
        "sse2 integer mul/avg/min/max/sad",
        &[
            M::Pmullw,
            M::Pmulhw,
            M::Pmulhuw,
            M::Pmuludq,
            M::Pmaddwd,
            M::Pavgb,
            M::Pavgw,
            M::Pminub,
            M::Pmaxub,
            M::Pminsw,
            M::Pmaxsw,
            M::Psadbw,
        ],
    ),
    (
        "sse2 integer compares",
        &[
            M::Pcmpeqb,
            M::Pcmpeqw,
            M::Pcmpeqd,
            M::Pcmpgtb,
            M::Pcmpgtw,
            M::Pcmpgtd,
        ],
    ),
    (
        "sse2 shifts",
        &[
            M::Psllw,
            M::Pslld,
            M::Psllq,
            M::Psrlw,
            M::Psrld,
            M::Psrlq,
            M::Psraw,
            M::Psrad,
            M::Pslldq,
            M::Psrldq,
        ],
    ),
    (
        "sse shuffles/unpacks/packs",
        &[
            M::Pshufd,
            M::Pshuflw,
            M::Pshufhw,
            M::Shufps,
            M::Shufpd,
            M::Unpcklps,
            M::Unpckhps,
            M::Unpcklpd,
            M::Unpckhpd,
            M::Punpcklbw,
            M::Punpcklwd,
            M::Punpckldq,
            M::Punpcklqdq,
            M::Punpckhbw,
            M::Punpckhwd,
            M::Punpckhdq,
            M::Punpckhqdq,
            M::Packsswb,
            M::Packssdw,
            M::Packuswb,
        ],
    ),
    (
        "sse fp add/sub/mul/div",
        &[
            M::Addps,
            M::Addss,
            M::Addpd,
            M::Addsd,
            M::Subps,
            M::Subss,
            M::Subpd,
            M::Subsd,
            M::Mulps,
            M::Mulss,
            M::Mulpd,
            M::Mulsd,
            M::Divps,
            M::Divss,
            M::Divpd,
            M::Divsd,
        ],
    ),
    (
        "sse fp sqrt/min/max/rcp/rsqrt",
        &[
            M::Sqrtps,
            M::Sqrtss,
            M::Sqrtpd,
            M::Sqrtsd,
            M::Minps,
            M::Minss,
            M::Minpd,
            M::Minsd,
            M::Maxps,
            M::Maxss,
            M::Maxpd,
            M::Maxsd,
            M::Rcpps,
            M::Rcpss,
            M::Rsqrtps,
            M::Rsqrtss,
        ],
    ),
    (
        "sse fp compares/comis/ucomis",
        &[
            M::Cmpps,
            M::Cmpss,
            M::Cmppd,
            M::Cmpsd,
            M::Comiss,
            M::Comisd,
            M::Ucomiss,
            M::Ucomisd,
        ],
    ),
    (
        "sse conversions",
        &[
            M::Cvtsi2ss,
            M::Cvtsi2sd,
            M::Cvtss2si,
            M::Cvtsd2si,
            M::Cvttss2si,
            M::Cvttsd2si,
            M::Cvtss2sd,
            M::Cvtsd2ss,
            M::Cvtps2pd,
            M::Cvtpd2ps,
            M::Cvtdq2ps,
            M::Cvtps2dq,
            M::Cvttps2dq,
            M::Cvtdq2pd,
            M::Cvtpd2dq,
            M::Cvttpd2dq,
        ],
    ),
    (
        "x87 loads/stores/constants",
        &[
            M::Fld,
            M::Fst,
            M::Fstp,
            M::Fild,
            M::Fist,
            M::Fistp,
            M::Fxch,
            M::Ffree,
            M::Ffreep,
            M::Fincstp,
            M::Fdecstp,
            M::Fld1,
            M::Fldz,
            M::Fldpi,
            M::Fldl2e,
            M::Fldl2t,
            M::Fldlg2,
            M::Fldln2,
            M::Fchs,
            M::Fabs,
            M::Fnop,
        ],
    ),
    (
        "x87 arithmetic",
        &[
            M::Fadd,
            M::Faddp,
            M::Fiadd,
            M::Fsub,
            M::Fsubp,
            M::Fisub,
            M::Fsubr,
            M::Fsubrp,
            M::Fisubr,
            M::Fmul,
            M::Fmulp,
            M::Fimul,
            M::Fdiv,
            M::Fdivp,
            M::Fidiv,
            M::Fdivr,
            M::Fdivrp,
            M::Fidivr,
            M::Fsqrt,
        ],
    ),
    (
        "x87 frndint/fscale/fxtract/fprem/fprem1",
        &[M::Frndint, M::Fscale, M::Fxtract, M::Fprem, M::Fprem1],
    ),
    (
        "x87 compares/fxam/fcmov",
        &[
            M::Fcom,
            M::Fcomp,
            M::Fcompp,
            M::Fucom,
            M::Fucomp,
            M::Fucompp,
            M::Ficom,
            M::Ficomp,
            M::Ftst,
            M::Fxam,
            M::Fcomi,
            M::Fcomip,
            M::Fucomi,
            M::Fucomip,
            M::Fcmovb,
            M::Fcmove,
            M::Fcmovbe,
            M::Fcmovu,
            M::Fcmovnb,
            M::Fcmovne,
            M::Fcmovnbe,
            M::Fcmovnu,
        ],
    ),
    (
        "x87 control",
        &[
            // The waiting forms (FINIT, FSTSW, ...) are WAIT followed by these, two
            // instructions: tested as such.
            M::Fninit,
            M::Fnclex,
            M::Fldcw,
            M::Fnstcw,
            M::Fnstsw,
            M::Fnstenv,
            M::Fldenv,
            M::Fnsave,
            M::Frstor,
            M::Wait,
        ],
    ),
    (
        "sse3",
        &[
            M::Addsubps,
            M::Addsubpd,
            M::Haddps,
            M::Haddpd,
            M::Hsubps,
            M::Hsubpd,
            M::Movsldup,
            M::Movshdup,
            M::Movddup,
            M::Fisttp,
        ],
    ),
    (
        "ssse3 (xmm forms)",
        &[
            M::Pshufb,
            M::Phaddw,
            M::Phaddd,
            M::Phaddsw,
            M::Phsubw,
            M::Phsubd,
            M::Phsubsw,
            M::Pmaddubsw,
            M::Pmulhrsw,
            M::Psignb,
            M::Psignw,
            M::Psignd,
            M::Pabsb,
            M::Pabsw,
            M::Pabsd,
            M::Palignr,
        ],
    ),
    (
        "sse4.1",
        &[
            M::Pmulld,
            M::Pmuldq,
            M::Pminsb,
            M::Pminsd,
            M::Pminuw,
            M::Pminud,
            M::Pmaxsb,
            M::Pmaxsd,
            M::Pmaxuw,
            M::Pmaxud,
            M::Pcmpeqq,
            M::Packusdw,
            M::Phminposuw,
            M::Ptest,
            M::Pblendw,
            M::Pblendvb,
            M::Blendps,
            M::Blendpd,
            M::Blendvps,
            M::Blendvpd,
            M::Mpsadbw,
            M::Pmovsxbw,
            M::Pmovsxbd,
            M::Pmovsxbq,
            M::Pmovsxwd,
            M::Pmovsxwq,
            M::Pmovsxdq,
            M::Pmovzxbw,
            M::Pmovzxbd,
            M::Pmovzxbq,
            M::Pmovzxwd,
            M::Pmovzxwq,
            M::Pmovzxdq,
            M::Pextrb,
            M::Pextrd,
            M::Pextrq,
            M::Pinsrb,
            M::Pinsrd,
            M::Pinsrq,
            M::Extractps,
            M::Insertps,
            M::Movntdqa,
            M::Roundps,
            M::Roundpd,
            M::Roundss,
            M::Roundsd,
            M::Dpps,
            M::Dppd,
        ],
    ),
    (
        "sse4.2",
        &[
            M::Pcmpestri,
            M::Pcmpestri64,
            M::Pcmpestrm,
            M::Pcmpestrm64,
            M::Pcmpistri,
            M::Pcmpistrm,
            M::Pcmpgtq,
            M::Crc32,
        ],
    ),
    (
        "ldmxcsr/stmxcsr/fxsave/fxrstor",
        &[
            M::Ldmxcsr,
            M::Stmxcsr,
            M::Fxsave,
            M::Fxsave64,
            M::Fxrstor,
            M::Fxrstor64,
        ],
    ),
];

/// MMX classes: the forms with an MMX operand (MMX, and the MMX forms of SSE, SSE2 and
/// SSSE3) and EMMS, drawn with random x87 state in (TOP, tags, pending exceptions).
pub const MMX_CLASSES: &[(&str, &[M])] = &[
    (
        "mmx moves/emms/pshufw/pinsrw/pextrw/pmovmskb",
        &[
            M::Movd,
            M::Movq,
            M::Movntq,
            M::Movq2dq,
            M::Movdq2q,
            M::Maskmovq,
            M::Pmovmskb,
            M::Pextrw,
            M::Pinsrw,
            M::Pshufw,
            M::Emms,
        ],
    ),
    (
        "mmx add/sub/mul/logic/compare/avg/min/max/sad",
        &[
            M::Paddb,
            M::Paddw,
            M::Paddd,
            M::Paddq,
            M::Psubb,
            M::Psubw,
            M::Psubd,
            M::Psubq,
            M::Paddsb,
            M::Paddsw,
            M::Paddusb,
            M::Paddusw,
            M::Psubsb,
            M::Psubsw,
            M::Psubusb,
            M::Psubusw,
            M::Pmullw,
            M::Pmulhw,
            M::Pmulhuw,
            M::Pmuludq,
            M::Pmaddwd,
            M::Pand,
            M::Pandn,
            M::Por,
            M::Pxor,
            M::Pcmpeqb,
            M::Pcmpeqw,
            M::Pcmpeqd,
            M::Pcmpgtb,
            M::Pcmpgtw,
            M::Pcmpgtd,
            M::Pavgb,
            M::Pavgw,
            M::Pminub,
            M::Pmaxub,
            M::Pminsw,
            M::Pmaxsw,
            M::Psadbw,
        ],
    ),
    (
        "mmx shifts/packs/unpacks",
        &[
            M::Psllw,
            M::Pslld,
            M::Psllq,
            M::Psrlw,
            M::Psrld,
            M::Psrlq,
            M::Psraw,
            M::Psrad,
            M::Packsswb,
            M::Packssdw,
            M::Packuswb,
            M::Punpcklbw,
            M::Punpcklwd,
            M::Punpckldq,
            M::Punpckhbw,
            M::Punpckhwd,
            M::Punpckhdq,
        ],
    ),
    (
        "mmx ssse3",
        &[
            M::Pshufb,
            M::Phaddw,
            M::Phaddd,
            M::Phaddsw,
            M::Phsubw,
            M::Phsubd,
            M::Phsubsw,
            M::Pmaddubsw,
            M::Pmulhrsw,
            M::Psignb,
            M::Psignw,
            M::Psignd,
            M::Pabsb,
            M::Pabsw,
            M::Pabsd,
            M::Palignr,
        ],
    ),
    (
        "mmx conversions",
        &[
            M::Cvtpi2ps,
            M::Cvtps2pi,
            M::Cvttps2pi,
            M::Cvtpi2pd,
            M::Cvtpd2pi,
            M::Cvttpd2pi,
        ],
    ),
];

/// RSP, RCX, ... as bit masks over GPR numbers.
pub(super) const fn bit(r: usize) -> u16 {
    1 << r
}
// GPR numbers and RFLAGS bits: the emulator's own definitions.
pub use vmscope::cpu::regs::gpr::{RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP};
pub use vmscope::cpu::regs::rflags as fl;

/// The forms of each class.
pub struct Catalogue {
    pub classes: Vec<(&'static str, Vec<Code>)>,
}

impl Catalogue {
    pub fn build() -> Catalogue {
        let all: Vec<&(&str, &[M])> = CLASSES
            .iter()
            .chain(SIMD_CLASSES)
            .chain(MMX_CLASSES)
            .collect();
        let in_list = |l: &[(&str, &[M])], n: &str| l.iter().any(|c| c.0 == n);
        let mut classes: Vec<(&'static str, Vec<Code>)> =
            all.iter().map(|(n, _)| (*n, Vec::new())).collect();
        for code in Code::values() {
            let m = code.mnemonic();
            // SSE forms belong to the SSE classes even where iced-x86 shares the
            // mnemonic with a string instruction (MOVSD, CMPSD).
            // MMX forms belong to the MMX classes only.
            let simd = super::simd::is_simd(code);
            let mmx = super::simd::is_mmx(code);
            let Some(ci) = all.iter().position(|(n, ms)| {
                ms.contains(&m)
                    && simd == (in_list(SIMD_CLASSES, n) || in_list(MMX_CLASSES, n))
                    && mmx == in_list(MMX_CLASSES, n)
            }) else {
                continue;
            };
            if eligible(code) {
                classes[ci].1.push(code);
            }
        }
        Catalogue { classes }
    }

    pub fn class_of(&self, code: Code) -> Option<usize> {
        self.classes.iter().position(|c| c.1.contains(&code))
    }
}

/// Operand kinds the generator can fill in.
pub(super) fn supported_kind(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::mem
            | K::mem_offs
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_rm
            | K::r16_opcode
            | K::r32_reg
            | K::r32_rm
            | K::r32_opcode
            | K::r32_vvvv
            | K::r64_reg
            | K::r64_rm
            | K::r64_opcode
            | K::r64_vvvv
            | K::seg_reg
            | K::al
            | K::cl
            | K::ax
            | K::eax
            | K::rax
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
            | K::seg_rSI
            | K::es_rDI
            | K::seg_rBX_al
            | K::br64_1
            | K::br64_4
            | K::xmm_reg
            | K::xmm_rm
            | K::xmm_or_mem
            | K::st0
            | K::sti_opcode
            | K::mm_reg
            | K::mm_rm
            | K::mm_or_mem
            | K::seg_rDI
    )
}

pub(super) fn is_near_branch(m: M) -> bool {
    matches!(
        m,
        M::Jmp | M::Call | M::Ret | M::Loop | M::Loope | M::Loopne | M::Jrcxz | M::Jecxz
    ) || is_jcc(m)
}

pub(super) fn is_jcc(m: M) -> bool {
    CLASSES.iter().any(|(n, ms)| *n == "jcc" && ms.contains(&m))
}

/// Whether the host CPU has what `code` needs.
pub(super) fn host_supports(code: Code) -> bool {
    Instruction::with(code)
        .cpuid_features()
        .iter()
        .all(|f| match f {
            CpuidFeature::BMI1 => std::arch::is_x86_feature_detected!("bmi1"),
            CpuidFeature::BMI2 => std::arch::is_x86_feature_detected!("bmi2"),
            CpuidFeature::LZCNT => std::arch::is_x86_feature_detected!("lzcnt"),
            CpuidFeature::POPCNT => std::arch::is_x86_feature_detected!("popcnt"),
            CpuidFeature::MOVBE => std::arch::is_x86_feature_detected!("movbe"),
            CpuidFeature::CMPXCHG16B => std::arch::is_x86_feature_detected!("cmpxchg16b"),
            CpuidFeature::SSE3 => std::arch::is_x86_feature_detected!("sse3"),
            CpuidFeature::SSSE3 => std::arch::is_x86_feature_detected!("ssse3"),
            CpuidFeature::SSE4_1 => std::arch::is_x86_feature_detected!("sse4.1"),
            CpuidFeature::SSE4_2 => std::arch::is_x86_feature_detected!("sse4.2"),
            _ => true,
        })
}

/// A form is tested if both vendors decode it the same way in 64-bit mode and the
/// generator can fill in all its operands.
pub(super) fn eligible(code: Code) -> bool {
    let op = code.op_code();
    if !op.is_instruction()
        || !op.mode64()
        || !op.amd_decoder64()
        || !op.intel_decoder64()
        || op.decoder_option() != DecoderOptions::NONE
    {
        return false;
    }
    match op.encoding() {
        EncodingKind::Legacy => {}
        // VEX: the BMI1/BMI2 integer forms only (no AVX).
        EncodingKind::VEX if op.l() == 0 && !super::simd::is_simd(code) => {
            if op
                .op_kinds()
                .iter()
                .any(|k| matches!(k, K::xmm_reg | K::xmm_rm | K::xmm_or_mem))
            {
                return false;
            }
        }
        _ => return false,
    }
    if !op.op_kinds().iter().all(|k| supported_kind(*k)) {
        return false;
    }
    // Far JMP/CALL through memory: they load CS from a descriptor table.
    if matches!(
        op.memory_size(),
        MemorySize::SegPtr16 | MemorySize::SegPtr32 | MemorySize::SegPtr64
    ) {
        return false;
    }
    // A segment register only as the source of MOV (loading one needs descriptors).
    if op.op_kinds().iter().skip(1).any(|k| *k == K::seg_reg) && op.mnemonic() != M::Mov
        || op.op_kind(0) == K::seg_reg
    {
        return false;
    }
    // In 64-bit mode Intel ignores 66h on near branches and AMD honours it (a 16-bit IP):
    // vendor-specific, so only the 64-bit forms are tested.
    if is_near_branch(op.mnemonic()) && op.operand_size() == 16 {
        return false;
    }
    host_supports(code)
}

/// Stack users: RSP must point into the arena with room around it.
pub(super) fn uses_stack(m: M) -> bool {
    matches!(
        m,
        M::Push
            | M::Pop
            | M::Call
            | M::Ret
            | M::Pushf
            | M::Pushfq
            | M::Popf
            | M::Popfq
            | M::Enter
            | M::Leave
    )
}

pub(super) fn is_string(m: M) -> bool {
    CLASSES
        .iter()
        .any(|(n, ms)| n.starts_with("movs/") && ms.contains(&m))
}

/// Registers an instruction reads or writes implicitly with values the generator plans
/// (dividends, counts, accumulators): the memory planner does not use them for addresses.
pub(super) fn implicit_regs(m: M, code: Code) -> u16 {
    let op = code.op_code();
    let uses_cl = op.op_kinds().contains(&K::cl);
    let mut r = match m {
        M::Mul | M::Imul | M::Div | M::Idiv | M::Mulx => bit(RAX) | bit(RDX),
        M::Cmpxchg => bit(RAX),
        M::Cmpxchg8b | M::Cmpxchg16b => bit(RAX) | bit(RDX) | bit(RBX) | bit(RCX),
        M::Xlatb => bit(RAX) | bit(RBX),
        // Explicit string lengths (drawn small by the generator).
        M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64 => bit(RAX) | bit(RDX),
        M::Enter | M::Leave => bit(RBP),
        M::Loop | M::Loope | M::Loopne | M::Jrcxz | M::Jecxz => bit(RCX),
        _ => 0,
    };
    if is_string(m) {
        r |= bit(RSI) | bit(RDI) | bit(RCX) | bit(RAX);
    }
    if uses_cl {
        r |= bit(RCX);
    }
    r
}

/// Operand size in bytes of a form: its memory operand's size, else its first register's.
pub fn operand_bytes(code: Code) -> usize {
    let op = code.op_code();
    let m = op.memory_size().size();
    if m != 0 && m <= 8 {
        return m;
    }
    for k in op.op_kinds() {
        let s = match k {
            K::r8_or_mem | K::r8_reg | K::r8_opcode | K::al => 1,
            K::r16_or_mem | K::r16_reg | K::r16_rm | K::r16_opcode | K::ax => 2,
            K::r32_or_mem | K::r32_reg | K::r32_rm | K::r32_opcode | K::r32_vvvv | K::eax => 4,
            K::r64_or_mem | K::r64_reg | K::r64_rm | K::r64_opcode | K::r64_vvvv | K::rax => 8,
            _ => continue,
        };
        return s;
    }
    if m != 0 {
        m
    } else {
        8
    }
}
