//! Focused tests of single instructions in 64-bit mode at CPL 3, one per bug the
//! differential test against the host CPU (tests/diff_cpu.rs) found.

use crate::addr::GuestPhysAddr;
use crate::bus::Bus;
use crate::cpu::exception::{vector, Exception};
use crate::cpu::regs::{cr0, cr4, efer, gpr, rflags, seg_attr, SegReg, Segment};
use crate::cpu::{Cpu, CpuStop, Step};
use crate::devices::PortBus;
use crate::memory::GuestMemory;
use crate::mmu::pte;
use crate::tlb::TlbMode;
use std::collections::HashSet;

/// Where the instruction under test goes.
const CODE: u64 = 0x1000;
/// Page tables (identity map of the first 2 MiB with one large page).
const PML4: u64 = 0x10_0000;
const PDPT: u64 = 0x10_1000;
const PD: u64 = 0x10_2000;
/// A data area inside the mapped 2 MiB.
const DATA: u64 = 0x8000;

struct Fixture {
    cpu: Cpu,
    bus: Bus,
}

impl Fixture {
    /// A CPL 3 CPU in 64-bit mode with `code` at `CODE` and an empty IDT (any exception
    /// ends in a triple fault that names it).
    fn new(code: &[u8]) -> Fixture {
        let mut bus = Bus::new(GuestMemory::new(4 << 20).unwrap(), PortBus::new());
        let user = pte::P | pte::RW | pte::US;
        let w = |bus: &mut Bus, pa: u64, v: u64| assert!(bus.mem.write(GuestPhysAddr(pa), 8, v));
        w(&mut bus, PML4, PDPT | user);
        w(&mut bus, PDPT, PD | user);
        w(&mut bus, PD, pte::PS | user);
        assert!(bus.mem.write_bytes(GuestPhysAddr(CODE), code));
        let mut cpu = Cpu::new(0, 64, TlbMode::On);
        cpu.cr0 = cr0::PE | cr0::PG | cr0::WP | cr0::ET | cr0::NE;
        cpu.cr4 = cr4::PAE;
        cpu.cr3 = PML4;
        cpu.efer = efer::LME | efer::LMA | efer::NXE;
        cpu.seg[SegReg::Cs as usize] = Segment {
            selector: 0x33,
            base: 0,
            limit: 0xffff_ffff,
            attr: 0xfb | seg_attr::L | seg_attr::G,
        };
        cpu.seg[SegReg::Ss as usize] = Segment {
            selector: 0x2b,
            base: 0,
            limit: 0xffff_ffff,
            attr: 0xf3 | seg_attr::DB | seg_attr::G,
        };
        cpu.cpl = 3;
        cpu.idtr.limit = 0;
        cpu.rip = CODE;
        cpu.rflags = rflags::FIXED | rflags::IF;
        cpu.gpr[gpr::RSP] = 0x9000;
        Fixture { cpu, bus }
    }

    /// Execute one instruction; the exception it raised, if any.
    fn step(&mut self) -> Option<Exception> {
        match self.cpu.step(&mut self.bus) {
            Step::Ok => None,
            Step::Stop(CpuStop::TripleFault { first, .. }) => Some(first),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn read(&self, pa: u64, size: usize) -> u64 {
        self.bus.mem.read(GuestPhysAddr(pa), size).unwrap()
    }
}

/// A 32-bit address size updates ESI/EDI/ECX as 32-bit registers: bits 63:32 become 0.
#[test]
fn string_ops_with_32_bit_addresses_zero_extend_the_registers() {
    // rep lodsq [esi] ; then movsb [edi],[esi]
    let mut f = Fixture::new(&[0x67, 0xf3, 0x48, 0xad, 0x67, 0xa4]);
    f.cpu.gpr[gpr::RSI] = 0xdead_beef_0000_0000 | DATA;
    f.cpu.gpr[gpr::RDI] = 0x1234_0000_0000_0000 | (DATA + 0x100);
    f.cpu.gpr[gpr::RCX] = 0xffff_0000_0000_0002;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[gpr::RSI], DATA + 16);
    assert_eq!(f.cpu.gpr[gpr::RCX], 0);
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[gpr::RSI], DATA + 17);
    assert_eq!(f.cpu.gpr[gpr::RDI], DATA + 0x101);
}

/// LOOP with a 32-bit address size decrements ECX as a 32-bit register.
#[test]
fn loop_with_ecx_zero_extends_rcx() {
    // addr32 loop $+2 (falls through either way)
    let mut f = Fixture::new(&[0x67, 0xe2, 0x00]);
    f.cpu.gpr[gpr::RCX] = 0xffff_ffff_0000_0005;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[gpr::RCX], 4);
}

/// A failed CMPXCHG does not write a register destination (its upper half survives); the
/// accumulator is loaded, zero-extended.
#[test]
fn cmpxchg_failure_leaves_a_register_destination_alone() {
    // cmpxchg r15d, edx
    let mut f = Fixture::new(&[0x41, 0x0f, 0xb1, 0xd7]);
    f.cpu.gpr[gpr::RAX] = 0x1111_1111_0000_0001;
    f.cpu.gpr[15] = 0x445f_836c_a566_e92c;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[15], 0x445f_836c_a566_e92c);
    assert_eq!(f.cpu.gpr[gpr::RAX], 0xa566_e92c);
    assert_eq!(f.cpu.rflags & rflags::ZF, 0);
}

/// XADD with one register as both operands leaves the sum (DEST is written last).
#[test]
fn xadd_of_a_register_with_itself_keeps_the_sum() {
    // xadd r12w, r12w
    let mut f = Fixture::new(&[0x66, 0x45, 0x0f, 0xc1, 0xe4]);
    f.cpu.gpr[12] = 0x068e_b726_6760_540b;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[12], 0x068e_b726_6760_a816);
}

/// ENTER write-checks its final stack pointer: a frame that ends on an unmapped page
/// faults (#PF, W=1, U=1) and changes nothing.
#[test]
fn enter_probes_the_final_stack_pointer() {
    // enter 0x2000, 0: RSP 0x9000 - 8 - 0x2000 ... wraps below 0 into unmapped space.
    let mut f = Fixture::new(&[0xc8, 0x00, 0x20, 0x00]);
    f.cpu.gpr[gpr::RSP] = 0x1800;
    f.cpu.gpr[gpr::RBP] = 0x4242;
    let e = f.step().expect("#PF");
    assert_eq!(e.vector, vector::PF);
    assert_eq!(e.cr2, Some(0x1800u64.wrapping_sub(8 + 0x2000)));
    assert_eq!(e.error_code, Some(0b110));
    assert_eq!(f.cpu.gpr[gpr::RSP], 0x1800);
    assert_eq!(f.cpu.gpr[gpr::RBP], 0x4242);
    assert_eq!(f.cpu.rip, CODE);
    // Inside the mapped area it succeeds.
    let mut f = Fixture::new(&[0xc8, 0x00, 0x01, 0x00]);
    f.cpu.gpr[gpr::RBP] = 0x4242;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[gpr::RSP], 0x9000 - 8 - 0x100);
    assert_eq!(f.read(0x9000 - 8, 8), 0x4242);
}

/// The undefined-flags policy (ARCHITECTURE.md): instructions with a result compute an
/// undefined SF/ZF/PF from it and clear an undefined AF/OF; DIV, BT and BSF leave undefined
/// flags as they were.
#[test]
fn undefined_flags_follow_the_documented_policy() {
    let status = rflags::CF | rflags::PF | rflags::AF | rflags::ZF | rflags::SF | rflags::OF;
    // tzcnt eax, ecx (ecx = 8: result 3, parity even); div ecx; bt eax, 0; bsf eax, edx
    let mut f = Fixture::new(&[
        0xf3, 0x0f, 0xbc, 0xc1, 0xf7, 0xf1, 0x0f, 0xba, 0xe0, 0x00, 0x0f, 0xbc, 0xc2,
    ]);
    f.cpu.gpr[gpr::RCX] = 8;
    f.cpu.rflags |= status;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[gpr::RAX], 3);
    assert_eq!(f.cpu.rflags & status, rflags::PF);
    f.cpu.rflags |= rflags::SF | rflags::AF;
    f.cpu.gpr[gpr::RDX] = 0;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.rflags & status, rflags::PF | rflags::SF | rflags::AF);
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.rflags & status, rflags::PF | rflags::SF | rflags::AF);
    f.cpu.gpr[gpr::RDX] = 0x10;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[gpr::RAX], 4);
    assert_eq!(f.cpu.rflags & status, rflags::PF | rflags::SF | rflags::AF);
}

/// The mnemonics iced-x86 shares between unrelated instructions execute as what they
/// are: SSE2 MOVSD/CMPSD on XMM registers, string MOVSD/CMPSD on [RSI]/[RDI].
#[test]
fn shared_mnemonics_dispatch_by_code() {
    // movsd xmm0, [rsi] ; movsd [rdi], xmm0 ; cmpsd xmm0, xmm1, 0 (eq) ; movsd xmm2, xmm1
    let mut f = Fixture::new(&[
        0xf2, 0x0f, 0x10, 0x06, 0xf2, 0x0f, 0x11, 0x07, 0xf2, 0x0f, 0xc2, 0xc1, 0x00, 0xf2, 0x0f,
        0x10, 0xd1,
    ]);
    f.cpu.cr4 |= cr4::OSFXSR;
    let w = |f: &mut Fixture, pa: u64, v: u64| assert!(f.bus.mem.write(GuestPhysAddr(pa), 8, v));
    w(&mut f, DATA, 1.5f64.to_bits());
    f.cpu.gpr[gpr::RSI] = DATA;
    f.cpu.gpr[gpr::RDI] = DATA + 0x100;
    f.cpu.fpu.xmm[0] = u128::MAX;
    f.cpu.fpu.xmm[1] = (7u128 << 64) | 1.5f64.to_bits() as u128;
    f.cpu.fpu.xmm[2] = 9u128 << 64;
    assert_eq!(f.step(), None);
    // A load zeroes bits 127:64; RSI/RDI are untouched (no string move).
    assert_eq!(f.cpu.fpu.xmm[0], 1.5f64.to_bits() as u128);
    assert_eq!(
        (f.cpu.gpr[gpr::RSI], f.cpu.gpr[gpr::RDI]),
        (DATA, DATA + 0x100)
    );
    assert_eq!(f.step(), None);
    assert_eq!(f.read(DATA + 0x100, 8), 1.5f64.to_bits());
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.fpu.xmm[0], u64::MAX as u128);
    assert_eq!(f.step(), None);
    // Register to register merges the low element.
    assert_eq!(f.cpu.fpu.xmm[2], (9u128 << 64) | 1.5f64.to_bits() as u128);

    // movsd (string, a5) ; cmpsd (string, a7)
    let mut f = Fixture::new(&[0xa5, 0xa7]);
    w(&mut f, DATA, 0x1122_3344);
    f.cpu.gpr[gpr::RSI] = DATA;
    f.cpu.gpr[gpr::RDI] = DATA + 0x100;
    f.cpu.fpu.xmm[0] = 5;
    assert_eq!(f.step(), None);
    assert_eq!(f.read(DATA + 0x100, 4), 0x1122_3344);
    assert_eq!(
        (f.cpu.gpr[gpr::RSI], f.cpu.gpr[gpr::RDI]),
        (DATA + 4, DATA + 0x104)
    );
    assert_eq!(f.step(), None);
    assert_eq!(
        (f.cpu.gpr[gpr::RSI], f.cpu.gpr[gpr::RDI]),
        (DATA + 8, DATA + 0x108)
    );
    assert_eq!(f.cpu.fpu.xmm[0], 5);
}

/// Operand kinds of x87, MMX, XMM/YMM/ZMM and AVX-512 mask registers.
fn simd_kind(k: iced_x86::OpCodeOperandKind) -> bool {
    let n = format!("{k:?}");
    ["mm", "xmm", "ymm", "zmm", "st", "k_", "kp1"]
        .iter()
        .any(|p| n.starts_with(p))
}

/// CPUID feature names of the floating-point and vector extensions.
const SIMD_FEATURES: &[&str] = &[
    "FPU", "MMX", "SSE", "AVX", "FXSR", "XSAVE", "D3NOW", "FMA", "F16C", "AES", "PCLMUL", "SHA",
    "GFNI", "VAES",
];

/// No instruction with x87, MMX, XMM/YMM/ZMM or mask-register operands, nor any VEX/EVEX/
/// XOP form other than the BMI1/BMI2 integer ones, reaches an integer executor.
#[test]
fn simd_forms_never_reach_the_integer_executors() {
    use super::{family, Family};
    use iced_x86::{Code, EncodingKind};
    for code in Code::values() {
        let op = code.op_code();
        if !op.is_instruction() {
            continue;
        }
        let simd_operand = op.op_kinds().iter().any(|k| simd_kind(*k));
        let vex_gpr_only = matches!(op.encoding(), EncodingKind::VEX) && !simd_operand;
        let integer = matches!(
            family(code),
            Family::Data | Family::Arith | Family::Control | Family::String | Family::Nop
        );
        if integer {
            assert!(!simd_operand, "{code:?} goes to {:?}", family(code));
            assert!(
                op.encoding() == EncodingKind::Legacy || vex_gpr_only,
                "{code:?} goes to {:?}",
                family(code)
            );
        }
    }
}

/// Every form routed to the SIMD executor that it does not implement stops the machine
/// as unimplemented (with its operands filled in, so the executor could have run it).
#[test]
fn every_unimplemented_simd_form_stops() {
    use super::{family, Family};
    use iced_x86::{Code, Instruction, OpCodeOperandKind as K, OpKind, Register};
    let mut stopped = 0;
    for code in Code::values() {
        let op = code.op_code();
        if !op.is_instruction()
            || !op.mode64()
            || family(code) == Family::Nop
            || crate::cpu::sse::implemented(code)
            || crate::cpu::x87::implemented(code)
        {
            continue;
        }
        let mut i = Instruction::default();
        i.set_code(code);
        let simd = op.op_kinds().iter().any(|k| simd_kind(*k))
            || i.cpuid_features().iter().any(|f| {
                let f = format!("{f:?}");
                SIMD_FEATURES.iter().any(|s| f.contains(s))
            });
        if !simd {
            continue;
        }
        for (n, k) in op.op_kinds().iter().enumerate() {
            let n = n as u32;
            let reg = match k {
                K::xmm_reg | K::xmm_rm | K::xmm_vvvv => Some(Register::XMM1),
                K::mm_reg | K::mm_rm => Some(Register::MM1),
                K::ymm_reg | K::ymm_rm | K::ymm_vvvv => Some(Register::YMM1),
                K::r32_reg | K::r32_rm | K::r32_or_mem => Some(Register::EAX),
                K::r64_reg | K::r64_rm | K::r64_or_mem => Some(Register::RAX),
                _ => None,
            };
            match (reg, k) {
                (Some(r), _) => {
                    i.set_op_kind(n, OpKind::Register);
                    i.set_op_register(n, r);
                }
                (None, K::imm8) => i.set_op_kind(n, OpKind::Immediate8),
                _ => {
                    i.set_op_kind(n, OpKind::Memory);
                    i.set_memory_base(Register::RSI);
                }
            }
        }
        let mut f = Fixture::new(&[0x90]);
        f.cpu.cr4 |= cr4::OSFXSR | cr4::OSXMMEXCPT | cr4::OSXSAVE;
        f.cpu.gpr[gpr::RSI] = DATA;
        let before = f.cpu.fpu.xmm;
        let r = super::execute(&mut f.cpu, &mut f.bus, &i);
        assert_eq!(r, Err(Exception::ud()), "{code:?}");
        assert!(f.cpu.last_unimplemented.is_some(), "{code:?} did not stop");
        assert_eq!(f.cpu.fpu.xmm, before, "{code:?} changed XMM state");
        stopped += 1;
    }
    // AVX, 3DNow! and some x87 forms: thousands.
    assert!(stopped > 1000, "{stopped}");
}

/// SSE needs CR4.OSFXSR and CR0.EM clear (#UD otherwise); CR0.TS gives #NM; an unmasked
/// SIMD exception is #XM with CR4.OSXMMEXCPT, #UD without, and leaves the destination.
#[test]
fn sse_availability_and_simd_exceptions() {
    use crate::cpu::fpu_state::mxcsr;
    // addsd xmm0, xmm1
    let addsd = [0xf2, 0x0f, 0x58, 0xc1];
    let mut f = Fixture::new(&addsd);
    assert_eq!(f.step().map(|e| e.vector), Some(vector::UD), "OSFXSR clear");
    let mut f = Fixture::new(&addsd);
    f.cpu.cr4 |= cr4::OSFXSR;
    f.cpu.cr0 |= cr0::TS;
    assert_eq!(f.step().map(|e| e.vector), Some(vector::NM));
    let mut f = Fixture::new(&addsd);
    f.cpu.cr4 |= cr4::OSFXSR;
    f.cpu.cr0 |= cr0::EM;
    assert_eq!(f.step().map(|e| e.vector), Some(vector::UD), "CR0.EM");
    // 1.0 / 0.0 with ZE unmasked: #XM, ZE set, xmm0 unchanged.
    for (osxmmexcpt, want) in [(true, vector::XM), (false, vector::UD)] {
        let mut f = Fixture::new(&[0xf2, 0x0f, 0x5e, 0xc1]); // divsd xmm0, xmm1
        f.cpu.cr4 |= cr4::OSFXSR | if osxmmexcpt { cr4::OSXMMEXCPT } else { 0 };
        f.cpu.fpu.mxcsr = mxcsr::DEFAULT & !(mxcsr::ZE << mxcsr::MASK_SHIFT);
        f.cpu.fpu.xmm[0] = 1.0f64.to_bits() as u128;
        assert_eq!(f.step().map(|e| e.vector), Some(want));
        assert_eq!(f.cpu.fpu.xmm[0], 1.0f64.to_bits() as u128);
        assert_ne!(f.cpu.fpu.mxcsr & mxcsr::ZE, 0);
    }
    // Masked: infinity and the flag.
    let mut f = Fixture::new(&[0xf2, 0x0f, 0x5e, 0xc1]);
    f.cpu.cr4 |= cr4::OSFXSR;
    f.cpu.fpu.xmm[0] = 1.0f64.to_bits() as u128;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.fpu.xmm[0], f64::INFINITY.to_bits() as u128);
    assert_eq!(f.cpu.fpu.mxcsr, mxcsr::DEFAULT | mxcsr::ZE);
}

/// x87: #NM with CR0.EM or CR0.TS; an unmasked exception is reported by the next waiting
/// instruction as #MF (CR0.NE), not by the one that caused it; FNINIT does not wait.
#[test]
fn x87_nm_and_deferred_mf() {
    use crate::cpu::fpu_state::fsw;
    // fld1
    let mut f = Fixture::new(&[0xd9, 0xe8]);
    f.cpu.cr0 |= cr0::TS;
    assert_eq!(f.step().map(|e| e.vector), Some(vector::NM));
    // fldz; fldcw [DATA] (all unmasked); fdiv st, st (0/0: invalid); fwait; fninit
    let mut code = vec![0xd9, 0xee, 0xd9, 0x2c, 0x25];
    code.extend_from_slice(&(DATA as u32).to_le_bytes());
    code.extend_from_slice(&[0xd8, 0xf0, 0x9b, 0xdb, 0xe3]);
    let mut f = Fixture::new(&code);
    assert!(f.bus.mem.write(GuestPhysAddr(DATA), 2, 0x0340));
    assert_eq!(f.step(), None);
    assert_eq!(f.step(), None);
    assert_eq!(f.step(), None, "the faulting instruction completes");
    assert_ne!(f.cpu.fpu.fsw & (fsw::IE | fsw::ES), 0);
    assert_eq!(f.step().map(|e| e.vector), Some(vector::MF), "at FWAIT");
    // FNINIT at the next address clears it without waiting.
    f.cpu.rip += 1;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.fpu.fsw, 0);
}

/// XSAVE/XRSTOR need CR4.OSXSAVE; the area round-trips x87 and SSE state; XGETBV reads
/// XCR0; XSETBV refuses features this CPU lacks; reserved MXCSR bits in an FXRSTOR image
/// are #GP.
#[test]
fn xsave_xrstor_xgetbv_and_fxrstor_checks() {
    use crate::cpu::fpu_state::xcr0;
    // xsave [DATA]; xgetbv; xrstor [DATA]; fxrstor [DATA+0x400]
    let abs = |op: &[u8], a: u64| {
        let mut v = op.to_vec();
        v.extend_from_slice(&(a as u32).to_le_bytes());
        v
    };
    let mut code = abs(&[0x0f, 0xae, 0x24, 0x25], DATA);
    code.extend_from_slice(&[0x0f, 0x01, 0xd0]);
    code.extend(abs(&[0x0f, 0xae, 0x2c, 0x25], DATA));
    code.extend(abs(&[0x0f, 0xae, 0x0c, 0x25], DATA + 0x400));
    let mut f = Fixture::new(&code);
    assert_eq!(
        f.step().map(|e| e.vector),
        Some(vector::UD),
        "OSXSAVE clear"
    );
    let mut f = Fixture::new(&code);
    f.cpu.cr4 |= cr4::OSFXSR | cr4::OSXSAVE;
    f.cpu.fpu.xcr0 = xcr0::X87 | xcr0::SSE;
    f.cpu.gpr[gpr::RAX] = 3;
    f.cpu.fpu.xmm[5] = 0x55;
    f.cpu.fpu.mxcsr = 0x3f80;
    assert_eq!(f.step(), None);
    assert_eq!(f.read(DATA + 512, 8), 3, "XSTATE_BV");
    assert_eq!(f.step(), None);
    assert_eq!((f.cpu.gpr[gpr::RAX], f.cpu.gpr[gpr::RDX]), (3, 0));
    f.cpu.fpu.xmm[5] = 0;
    f.cpu.fpu.mxcsr = 0x1f80;
    f.cpu.gpr[gpr::RAX] = 3;
    assert_eq!(f.step(), None);
    assert_eq!((f.cpu.fpu.xmm[5], f.cpu.fpu.mxcsr), (0x55, 0x3f80));
    // An FXRSTOR image with MXCSR bit 16 set.
    assert!(f
        .bus
        .mem
        .write(GuestPhysAddr(DATA + 0x400 + 24), 4, 1 << 16));
    assert_eq!(f.step().map(|e| e.vector), Some(vector::GP));
}

/// RDPKRU/WRPKRU (#UD without CR4.PKE, #GP(0) with ECX or EDX set) and PKRU as XSAVE
/// state component 9 (offset 2688; XRSTOR with its XSTATE_BV bit clear loads 0).
#[test]
fn pkru_instructions_and_xsave_component() {
    use crate::cpu::fpu_state::xcr0;
    const AREA: u64 = 0x2_0000;
    let abs = |op: &[u8], a: u64| {
        let mut v = op.to_vec();
        v.extend_from_slice(&(a as u32).to_le_bytes());
        v
    };
    // wrpkru; rdpkru; xsave [AREA]; xrstor [AREA]; xrstor [AREA]
    let mut code = vec![0x0f, 0x01, 0xef, 0x0f, 0x01, 0xee];
    code.extend(abs(&[0x0f, 0xae, 0x24, 0x25], AREA));
    code.extend(abs(&[0x0f, 0xae, 0x2c, 0x25], AREA));
    code.extend(abs(&[0x0f, 0xae, 0x2c, 0x25], AREA));
    let mut f = Fixture::new(&code);
    assert_eq!(
        f.step().map(|e| e.vector),
        Some(vector::UD),
        "CR4.PKE clear"
    );
    for (rcx, rdx) in [(1, 0), (0, 1)] {
        let mut f = Fixture::new(&code);
        f.cpu.cr4 |= cr4::PKE;
        f.cpu.gpr[gpr::RCX] = rcx;
        f.cpu.gpr[gpr::RDX] = rdx;
        assert_eq!(f.step().map(|e| e.vector), Some(vector::GP), "{rcx} {rdx}");
    }
    let mut f = Fixture::new(&code);
    f.cpu.cr4 |= cr4::PKE | cr4::OSFXSR | cr4::OSXSAVE;
    f.cpu.fpu.xcr0 = xcr0::X87 | xcr0::SSE | xcr0::PKRU;
    f.cpu.gpr[gpr::RAX] = 0xffff_ffff_5555_5554;
    f.cpu.gpr[gpr::RCX] = 0;
    f.cpu.gpr[gpr::RDX] = 0;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.pkru, 0x5555_5554);
    f.cpu.gpr[gpr::RAX] = u64::MAX;
    f.cpu.gpr[gpr::RDX] = u64::MAX;
    assert_eq!(f.step(), None);
    assert_eq!((f.cpu.gpr[gpr::RAX], f.cpu.gpr[gpr::RDX]), (0x5555_5554, 0));
    f.cpu.gpr[gpr::RAX] = 0x203;
    f.cpu.gpr[gpr::RDX] = 0;
    assert_eq!(f.step(), None);
    assert_eq!(f.read(AREA + 2688, 8), 0x5555_5554);
    assert_eq!(f.read(AREA + 512, 8), 0x203, "XSTATE_BV");
    f.cpu.pkru = 0;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.pkru, 0x5555_5554);
    // XSTATE_BV without bit 9: PKRU's initial value.
    assert!(f.bus.mem.write(GuestPhysAddr(AREA + 512), 8, 3));
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.pkru, 0);
}

/// Random x87 and SSE instructions (random ModRM, prefixes, operands and FPU state) never
/// panic the host: each one completes, faults or stops as unimplemented.
#[test]
fn random_fpu_and_simd_instructions_never_panic() {
    use crate::cpu::fpu_state::F80;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const PREFIXES: [&[u8]; 6] = [&[], &[0x66], &[0xf2], &[0xf3], &[0x48], &[0x66, 0x41]];
    // VMSCOPE_FPU_FUZZ=N for a longer run.
    let n: u64 = std::env::var("VMSCOPE_FPU_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for _ in 0..n {
        let r = next();
        let mut code: Vec<u8> = PREFIXES[(r % 6) as usize].to_vec();
        if r & 0x100 != 0 {
            // x87 escape D8..DF with a random ModRM.
            code.push(0xd8 + ((r >> 9) & 7) as u8);
        } else {
            code.push(0x0f);
            if r & 0x200 != 0 {
                code.push(if r & 0x400 != 0 { 0x38 } else { 0x3a });
            }
        }
        code.extend_from_slice(&next().to_le_bytes());
        let mut f = Fixture::new(&code);
        f.cpu.cr4 |= cr4::OSFXSR | cr4::OSXMMEXCPT;
        let v = next();
        f.cpu.fpu.mxcsr = (v as u32) & 0xffff;
        f.cpu.fpu.fcw = (v >> 16) as u16 | 0x40;
        f.cpu.fpu.set_top((v >> 32) as usize & 7);
        f.cpu.fpu.ftw = (v >> 35) as u16;
        for k in 0..8 {
            f.cpu.fpu.st[k] = F80 {
                signif: next(),
                sign_exp: next() as u16,
            };
        }
        for x in f.cpu.fpu.xmm.iter_mut() {
            *x = (next() as u128) << 64 | next() as u128;
        }
        for g in 0..16 {
            f.cpu.gpr[g] = if g == gpr::RSP {
                0x9000
            } else {
                DATA + (next() & 0xff)
            };
        }
        // Any outcome but a host panic is fine.
        let _ = f.cpu.step(&mut f.bus);
    }
}

/// The documented accuracy of the x87 transcendentals: for doubles in |x| < 2^7 (x > 0
/// for FYL2X, the instructions' own domains for FYL2XP1 and F2XM1) vmscope's FSIN, FCOS,
/// FPTAN, FPATAN, FYL2X, FYL2XP1 and F2XM1, stored as doubles, differ from the host FPU's
/// by at most 2^-50 * max(|result|, 1) (measured worst: 2^-52). (Near the zeros of sin and tan a relative measure
/// is meaningless, and near tan's poles the host's argument reduction by a 66-bit pi,
/// whose error grows as |x| * 2^-66, is amplified; libm reduces exactly.)
#[cfg(target_arch = "x86_64")]
#[test]
fn x87_transcendentals_are_within_the_documented_error_of_the_host() {
    // (instruction bytes, needs ST1 = 1.5)
    let ops: [(&str, &[u8], bool); 7] = [
        ("fsin", &[0xd9, 0xfe], false),
        ("fcos", &[0xd9, 0xff], false),
        ("fptan", &[0xd9, 0xf2, 0xdd, 0xd8], false), // fptan; fstp st0 (drop the 1.0)
        ("fpatan", &[0xd9, 0xf3], true),
        ("fyl2x", &[0xd9, 0xf1], true),
        ("fyl2xp1", &[0xd9, 0xf9], true),
        ("f2xm1", &[0xd9, 0xf0], false),
    ];
    let host = |code: &[u8], x: f64, two: bool| -> f64 {
        let (y, mut r) = (1.5f64, 0f64);
        // SAFETY: x87-only code on two stack slots it pushes and pops again.
        unsafe {
            let run = |op: &[u8], x: &f64, y: &f64, r: &mut f64| match op {
                [0xd9, 0xfe] => {
                    std::arch::asm!("fld qword ptr [{x}]", "fsin", "fstp qword ptr [{r}]", x = in(reg) x, r = in(reg) r)
                }
                [0xd9, 0xff] => {
                    std::arch::asm!("fld qword ptr [{x}]", "fcos", "fstp qword ptr [{r}]", x = in(reg) x, r = in(reg) r)
                }
                [0xd9, 0xf2, ..] => {
                    std::arch::asm!("fld qword ptr [{x}]", "fptan", "fstp st(0)", "fstp qword ptr [{r}]", x = in(reg) x, r = in(reg) r)
                }
                [0xd9, 0xf3] => {
                    std::arch::asm!("fld qword ptr [{y}]", "fld qword ptr [{x}]", "fpatan", "fstp qword ptr [{r}]", x = in(reg) x, y = in(reg) y, r = in(reg) r)
                }
                [0xd9, 0xf1] => {
                    std::arch::asm!("fld qword ptr [{y}]", "fld qword ptr [{x}]", "fyl2x", "fstp qword ptr [{r}]", x = in(reg) x, y = in(reg) y, r = in(reg) r)
                }
                [0xd9, 0xf9] => {
                    std::arch::asm!("fld qword ptr [{y}]", "fld qword ptr [{x}]", "fyl2xp1", "fstp qword ptr [{r}]", x = in(reg) x, y = in(reg) y, r = in(reg) r)
                }
                _ => {
                    std::arch::asm!("fld qword ptr [{x}]", "f2xm1", "fstp qword ptr [{r}]", x = in(reg) x, r = in(reg) r)
                }
            };
            let _ = two;
            run(code, &x, &y, &mut r);
        }
        r
    };
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut worst = 0f64;
    for k in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (name, op, two) = ops[k % ops.len()];
        let u = (seed >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let x = match name {
            "f2xm1" => 2.0 * u - 1.0,
            "fyl2xp1" => 0.29 * (2.0 * u - 1.0),
            "fyl2x" => (u * 40.0 - 20.0).exp2(),
            _ => (2.0 * u - 1.0) * 128.0 * u * u,
        };
        // fld qword [DATA+8] (y); fld qword [DATA] (x); op; fstp qword [DATA+16]
        let mut code = Vec::new();
        if two {
            code.extend_from_slice(&[0xdd, 0x04, 0x25]);
            code.extend_from_slice(&((DATA + 8) as u32).to_le_bytes());
        }
        code.extend_from_slice(&[0xdd, 0x04, 0x25]);
        code.extend_from_slice(&(DATA as u32).to_le_bytes());
        code.extend_from_slice(op);
        code.extend_from_slice(&[0xdd, 0x1c, 0x25]);
        code.extend_from_slice(&((DATA + 16) as u32).to_le_bytes());
        let mut f = Fixture::new(&code);
        assert!(f.bus.mem.write(GuestPhysAddr(DATA), 8, x.to_bits()));
        assert!(f
            .bus
            .mem
            .write(GuestPhysAddr(DATA + 8), 8, 1.5f64.to_bits()));
        let steps = 3 + two as usize + (name == "fptan") as usize;
        for _ in 0..steps {
            assert_eq!(f.step(), None, "{name}({x})");
        }
        let emu = f64::from_bits(f.read(DATA + 16, 8));
        let h = host(op, x, two);
        let err = if h == emu {
            0.0
        } else {
            ((h - emu) / h.abs().max(1.0)).abs()
        };
        worst = worst.max(err);
        assert!(
            err <= 2f64.powi(-50),
            "{name}({x:e}): host {h:e} vmscope {emu:e}"
        );
    }
    println!("worst difference / max(|result|, 1): {worst:e}");
}

/// Every MMX form of MMX, SSE, SSE2 and SSSE3 (legacy-encoded, an MMX operand, valid in
/// 64-bit mode) is implemented; the 3DNow! and Cyrix forms with MMX operands are not
/// (they stop, see `every_unimplemented_simd_form_stops`).
#[test]
fn every_mmx_form_is_implemented() {
    use crate::cpu::sse::{implemented, mmx};
    use iced_x86::{Code, CpuidFeature as F, Instruction};
    let mut n = 0;
    for code in Code::values() {
        if !mmx::route(code) || !code.op_code().mode64() {
            continue;
        }
        let features = Instruction::with(code).cpuid_features();
        let ours = features
            .iter()
            .all(|f| matches!(f, F::MMX | F::SSE | F::SSE2 | F::SSSE3));
        assert_eq!(implemented(code), ours, "{code:?} {features:?}");
        n += ours as usize;
    }
    // 47 MMX, 19 SSE, 7 SSE2 (with MOVQ2DQ/MOVDQ2Q), 16 SSSE3, + the r64 forms.
    assert!(n >= 90, "{n}");
    assert!(implemented(Code::Emms));
    assert!(!implemented(Code::Femms));
}

/// MM registers are the x87 registers' significands: an MMX instruction sets TOP to 0 and
/// every tag valid, a write to MMi sets bits 79:64 of Ri; storing an MM register to a
/// general register writes no MM register; EMMS empties every tag (TOP stays 0).
#[test]
fn mmx_aliases_the_x87_registers() {
    use crate::cpu::fpu_state::fsw;
    // paddb mm0, mm1; movd eax, mm0; movq2dq xmm1, mm0; movdq2q mm3, xmm2; emms
    let code = [
        0x0f, 0xfc, 0xc1, 0x0f, 0x7e, 0xc0, 0xf3, 0x0f, 0xd6, 0xc8, 0xf2, 0x0f, 0xd6, 0xda, 0x0f,
        0x77,
    ];
    let mut f = Fixture::new(&code);
    f.cpu.cr4 |= cr4::OSFXSR;
    f.cpu.fpu.set_top(5);
    f.cpu.fpu.ftw = 0xffff;
    f.cpu.fpu.st[0].signif = 0x0102_0304_0506_07ff;
    f.cpu.fpu.st[0].sign_exp = 0x3fff;
    f.cpu.fpu.st[1].signif = 0x0101_0101_0101_0102;
    f.cpu.fpu.st[1].sign_exp = 0x1234;
    f.cpu.fpu.xmm[2] = 0x5555_u128 << 64 | 0xdead_beef;
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.fpu.st[0].signif, 0x0203_0405_0607_0801);
    assert_eq!(f.cpu.fpu.st[0].sign_exp, 0xffff);
    assert_eq!(
        f.cpu.fpu.st[1].sign_exp, 0x1234,
        "a source keeps its exponent"
    );
    assert_eq!(f.cpu.fpu.fsw & fsw::TOP, 0);
    assert_eq!(f.cpu.fpu.ftw, 0);
    assert_eq!(f.cpu.fpu.abridged_tag(), 0xff);
    f.cpu.fpu.set_top(3);
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.gpr[gpr::RAX], 0x0607_0801);
    assert_eq!(
        f.cpu.fpu.fsw & fsw::TOP,
        0,
        "a store makes the transition too"
    );
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.fpu.xmm[1], 0x0203_0405_0607_0801);
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.fpu.st[3].signif, 0xdead_beef);
    assert_eq!(f.cpu.fpu.st[3].sign_exp, 0xffff);
    assert_eq!(f.step(), None);
    assert_eq!(f.cpu.fpu.ftw, 0xffff);
    assert_eq!(f.cpu.fpu.abridged_tag(), 0);
    assert_eq!(f.cpu.fpu.top(), 0);
}

/// CR0.EM is #UD, CR0.TS #NM, and a pending unmasked x87 exception #MF (CR0.NE), all
/// before the MMX instruction changes anything.
#[test]
fn mmx_availability_checks() {
    use crate::cpu::fpu_state::{fcw, fsw};
    // por mm2, mm3
    let code = [0x0f, 0xeb, 0xd3];
    for (setup, want) in [
        (0u8, vector::UD),
        (1, vector::NM),
        (2, vector::MF),
        (3, u8::MAX),
    ] {
        let mut f = Fixture::new(&code);
        f.cpu.fpu.set_top(6);
        f.cpu.fpu.ftw = 0xffff;
        f.cpu.fpu.st[3].signif = 7;
        match setup {
            0 => f.cpu.cr0 |= cr0::EM,
            1 => f.cpu.cr0 |= cr0::TS,
            2 => {
                f.cpu.fpu.fcw = fcw::DEFAULT & !fsw::PE;
                f.cpu.fpu.fsw |= fsw::PE | fsw::ES | fsw::B;
            }
            _ => {}
        }
        let r = f.step();
        if want == u8::MAX {
            assert_eq!(r, None);
            assert_eq!(f.cpu.fpu.st[2].signif, 7);
            continue;
        }
        assert_eq!(r.map(|e| e.vector), Some(want), "setup {setup}");
        assert_eq!(f.cpu.fpu.top(), 6, "setup {setup}");
        assert_eq!(f.cpu.fpu.ftw, 0xffff, "setup {setup}");
        assert_eq!(f.cpu.fpu.st[2].signif, 0, "setup {setup}");
    }
}

/// Blocks and lazy flags (issue [11], stage C): a loop of flag-writing and flag-reading
/// specialised instructions (ADD, XOR, IMUL, ROL/ROR, ADC, SBB, INC, SHR, SETcc, CMOVcc,
/// SUB, DEC, JNZ, an 8-bit INC) with a generic PUSHF in it, run by `Cpu::run_block` with
/// `next_event` cutting blocks at every kind of boundary, must leave exactly the state
/// single steps leave at the same instruction count: registers, RFLAGS (materialized),
/// RIP, the TLB and decode counters.
#[test]
fn blocks_and_lazy_flags_match_single_steps() {
    let mut code = vec![
        0xb9, 0x40, 0, 0, 0, // mov ecx, 64
        0x48, 0xc7, 0xc6, 0xb9, 0x79, 0x37, 0x9e, // mov rsi, 0xffffffff9e3779b9
        0xba, 0x01, 0, 0, 0, // mov edx, 1
    ];
    let top = code.len();
    code.extend_from_slice(&[
        0x48, 0x01, 0xd0, // add rax, rdx
        0x48, 0x31, 0xf2, // xor rdx, rsi
        0x48, 0x6b, 0xc0, 0x21, // imul rax, rax, 33
        0x48, 0xc1, 0xc2, 0x05, // rol rdx, 5
        0x48, 0x11, 0xd8, // adc rax, rbx
        0x48, 0xff, 0xc0, // inc rax
        0x48, 0xd1, 0xe8, // shr rax, 1
        0x0f, 0x92, 0xc3, // setb bl
        0x48, 0x19, 0xd3, // sbb rbx, rdx
        0x48, 0xc1, 0xca, 0x03, // ror rdx, 3
        0x48, 0xff, 0xc7, // inc rdi
        0x48, 0x0f, 0x47, 0xf2, // cmova rsi, rdx
        0x9c, // pushfq (reads the materialized flags)
        0x41, 0x5f, // pop r15
        0xf5, // cmc (generic: reads and writes the materialized flags)
        0x4c, 0x01, 0xf8, // add rax, r15
        0xfe, 0xc1, // inc cl
        0xfe, 0xc9, // dec cl
        0x48, 0x29, 0xce, // sub rsi, rcx
        0x48, 0xff, 0xc9, // dec rcx
        0x75, 0x00, // jnz top
    ]);
    let n = code.len();
    code[n - 1] = (top as i64 - n as i64) as u8;
    let body = 21u64;
    let total = 3 + 64 * body;

    let (longest, flag_sets, _) =
        blocks_match_steps(&code, total, &[1, 2, 3, 5, 7, 11, 13, 40, 1, 17, 4, 6]);
    // The flags really vary over the run (the test would be weak otherwise).
    assert!(flag_sets > 16, "{flag_sets}");
    // Uncut: the stage D blocks ran whole, one after the other.
    let (_, _, blocks) = blocks_match_steps(&code, total, &[u64::MAX]);
    assert!(blocks >= 2 * 60, "{blocks} blocks");
    // Blocks did continue past their first instruction (up to the CMC or the cut).
    assert!(longest >= 13, "longest block {longest}");
}

/// Run `code` for `total` instructions by single steps and by `Cpu::run_block` with
/// `next_event` cut after each of `cuts` instructions in turn (a cut longer than what is
/// left runs to the end); the state after every cut must be the single steps' state.
/// Returns the most instructions one `run_block` call ran, how many distinct sets of status
/// flags the run went through and how many blocks (`Cpu::run_tb`) ran.
fn blocks_match_steps(code: &[u8], total: u64, cuts: &[u64]) -> (u64, usize, u64) {
    let state = |f: &Fixture| {
        (
            f.cpu.gpr,
            f.cpu.rflags,
            f.cpu.rip,
            f.cpu.icount,
            f.cpu.tlb.stats,
            f.cpu.decode_stats.hits,
            f.cpu.decode_stats.decodes,
        )
    };
    let mut a = Fixture::new(code);
    let mut want = vec![state(&a)];
    for _ in 0..total {
        assert_eq!(a.step(), None);
        want.push(state(&a));
    }
    let flag_sets: HashSet<u64> = want.iter().map(|s| s.1 & rflags::STATUS).collect();
    let mut b = Fixture::new(code);
    let mut longest = 0;
    let mut k = 0;
    while b.cpu.icount < total {
        let target = b.cpu.icount.saturating_add(cuts[k % cuts.len()]).min(total);
        k += 1;
        b.bus.next_event = target;
        while b.cpu.icount < target {
            let before = b.cpu.icount;
            assert!(matches!(b.cpu.run_block(&mut b.bus), Step::Ok));
            longest = longest.max(b.cpu.icount - before);
        }
        assert_eq!(b.cpu.icount, target, "a block ran past next_event");
        assert_eq!(state(&b), want[target as usize], "at icount {target}");
    }
    (longest, flag_sets.len(), b.cpu.decode_stats.blocks)
}

/// A block that stores into a later instruction of itself (the immediate of an ADD) must
/// stop after the store, so that the ADD runs with the byte just written, as single steps
/// run it; and blocks that run a store into their own frame, cut anywhere, match single
/// steps.
#[test]
fn a_store_into_the_running_block_is_seen_by_the_next_instruction() {
    let mut code = vec![
        0xba, 50, 0, 0, 0, // mov edx, 50
        0x31, 0xc0, // xor eax, eax
        0x31, 0xdb, // xor ebx, ebx
    ];
    let top = code.len();
    code.extend_from_slice(&[
        0xff, 0xc3, // inc ebx
        0x88, 0x1d, 0x04, 0, 0, 0, // mov [rip+4], bl: the immediate of the ADD below
        0xff, 0xc1, // inc ecx
        0x83, 0xc0, 0x00, // add eax, imm8
        0xff, 0xca, // dec edx
        0x75, 0x00, // jnz top
    ]);
    let n = code.len();
    code[n - 1] = (top as i64 - n as i64) as u8;
    let total = 3 + 50 * 6;
    blocks_match_steps(&code, total, &[1, 2, 3, 5, 7, 11, 13, 40, 1, 17, 4, 6]);
    blocks_match_steps(&code, total, &[u64::MAX]);
    let mut f = Fixture::new(&code);
    f.bus.next_event = total;
    while f.cpu.icount < total {
        assert!(matches!(f.cpu.run_block(&mut f.bus), Step::Ok));
    }
    assert_eq!(f.cpu.gpr[gpr::RAX], (1..=50).sum::<u64>());
}

/// REP STOS/MOVS run whole pages at once when every access is a fast TLB hit
/// (`Cpu::rep_bulk`); with a memory log attached they run element by element. Both must
/// leave the same registers, memory, TLB counters and icount, whatever the sizes,
/// alignments, counts (page-crossing elements, chunks of `REP_CHUNK`) and overlaps.
#[test]
fn rep_string_bulk_equals_single_iterations() {
    // (prefix bytes, operand size): rep stosb/w/d/q, rep movsb/w/d/q.
    let forms: [(&[u8], u64); 8] = [
        (&[0xf3, 0xaa], 1),
        (&[0xf3, 0x66, 0xab], 2),
        (&[0xf3, 0xab], 4),
        (&[0xf3, 0x48, 0xab], 8),
        (&[0xf3, 0xa4], 1),
        (&[0xf3, 0x66, 0xa5], 2),
        (&[0xf3, 0xa5], 4),
        (&[0xf3, 0x48, 0xa5], 8),
    ];
    let cases: [(u64, u64, u64); 6] = [
        // (rdi, rsi, rcx)
        (0x14_0000, 0x18_0000, 5000),
        (0x14_0ffd, 0x18_0003, 3000),
        (0x14_0001, 0x14_0800, 700),
        (0x14_0800, 0x14_0001, 700),
        (0x14_0000, 0x14_0010, 300),
        (0x15_0ff8, 0x16_0ff9, 9000),
    ];
    for (code, size) in forms {
        for (di, si, cx) in cases {
            let run = |log: bool| {
                let mut f = Fixture::new(code);
                for k in 0..0x1_0000u64 {
                    let pa = 0x14_0000 + k * 8;
                    f.bus
                        .mem
                        .write(GuestPhysAddr(pa), 8, pa.wrapping_mul(0x9e37_79b9));
                }
                f.cpu.gpr[gpr::RDI] = di;
                f.cpu.gpr[gpr::RSI] = si;
                f.cpu.gpr[gpr::RCX] = cx;
                f.cpu.gpr[gpr::RAX] = 0x1122_3344_5566_7788;
                if log {
                    f.cpu.mem_log = Some(Vec::new());
                }
                while f.cpu.rip == CODE {
                    assert_eq!(f.step(), None);
                    if let Some(l) = f.cpu.mem_log.as_mut() {
                        l.clear();
                    }
                }
                let mem: Vec<u64> = (0..0x1_0000u64)
                    .map(|k| f.read(0x14_0000 + k * 8, 8))
                    .collect();
                (f.cpu.gpr, f.cpu.icount, f.cpu.tlb.stats, mem)
            };
            let (bulk, single) = (run(false), run(true));
            assert!(
                bulk == single,
                "size {size} rdi {di:#x} rsi {si:#x} rcx {cx}: bulk and single iterations differ"
            );
        }
    }
}
