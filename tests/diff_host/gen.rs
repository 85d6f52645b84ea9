//! The case generator: for a form from `catalogue.rs`, draw operands and input state and
//! encode the instruction with iced-x86.
//!
//! Memory operands always address the arena: the generator first picks the address, then
//! solves base + index * scale + disp for it (with wrap-around, 32-bit address size, GS and
//! RIP-relative forms), so register values stay as random as the constraint allows.

use super::catalogue::*;
use super::layout::*;
use super::native::landing_pad;
use super::rng::Rng;
use super::Input;
use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, EncodingKind, Instruction, Mnemonic as M,
    OpCodeOperandKind as K, OpKind, Register, RepPrefixKind,
};

/// GPR number of any general register (AH..BH count as RAX..RBX).
pub fn reg_index(r: Register) -> usize {
    r.full_register() as usize - Register::RAX as usize
}

/// A general register of `size` bytes, number `i` (for bytes, 0..20 covers AL..BH then
/// SPL..R15L).
fn gpr_of(size: usize, i: usize) -> Register {
    match size {
        1 => Register::AL + i as u32,
        2 => Register::AX + i as u32,
        4 => Register::EAX + i as u32,
        _ => Register::RAX + i as u32,
    }
}

fn random_gpr(rng: &mut Rng, size: usize) -> Register {
    if size == 1 {
        gpr_of(1, rng.below(20) as usize)
    } else {
        gpr_of(size, rng.below(16) as usize)
    }
}

/// Values with more edge cases than uniform random ones.
pub fn interesting(rng: &mut Rng) -> u64 {
    const SPECIAL: [u64; 14] = [
        0,
        1,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0x8000,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        i64::MAX as u64,
        i64::MIN as u64,
        u64::MAX,
    ];
    match rng.below(16) {
        0..=4 => rng.next_u64(),
        5 => rng.below(17),
        6 => rng.range(-16, -1) as u64,
        7 => rng.pick(&SPECIAL),
        8 => 1 << rng.below(64),
        9 => !(1 << rng.below(64)),
        10 => rng.next_u64() as i8 as u64,
        11 => rng.next_u64() as i16 as u64,
        12 => rng.next_u64() as i32 as u64,
        13 => rng.next_u64() & [0xff, 0xffff, 0xffff_ffff][rng.below(3) as usize],
        14 => (rng.next_u64() & !0xff) | rng.pick(&SPECIAL[..5]),
        _ => rng.next_u64() & rng.next_u64(),
    }
}

/// A shift/rotate/extract count with the edges of every operand size.
fn interesting_count(rng: &mut Rng, bits: u64) -> u64 {
    match rng.below(8) {
        0 => rng.below(3),
        1 => bits - 1 + rng.below(3),
        2 => rng.pick(&[7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]),
        3 => rng.below(256),
        _ => rng.below(bits.max(32) + 2),
    }
}

impl Input {
    /// Value of a register of any width.
    pub fn reg(&self, r: Register) -> u64 {
        let v = self.gpr[reg_index(r)];
        if (Register::AH..=Register::BH).contains(&r) {
            return (v >> 8) & 0xff;
        }
        v & mask(r.size())
    }

    /// Set the low `r.size()` bytes (or AH..BH), keeping the other bits: those stay random,
    /// which checks that 8/16-bit writes merge and 32-bit writes zero-extend.
    pub fn set_reg(&mut self, r: Register, v: u64) {
        let g = &mut self.gpr[reg_index(r)];
        if (Register::AH..=Register::BH).contains(&r) {
            *g = (*g & !0xff00) | ((v & 0xff) << 8);
        } else {
            let m = mask(r.size());
            *g = (*g & !m) | (v & m);
        }
    }

    pub fn read_mem(&self, addr: u64, size: usize) -> u64 {
        let off = (addr - ARENA_BASE) as usize;
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(&self.arena[off..off + size]);
        u64::from_le_bytes(b)
    }

    pub fn write_mem(&mut self, addr: u64, size: usize, v: u64) {
        let off = (addr - ARENA_BASE) as usize;
        self.arena[off..off + size].copy_from_slice(&v.to_le_bytes()[..size]);
    }
}

pub fn mask(size: usize) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// One generated case.
pub struct Case {
    pub code: Code,
    /// The instruction bytes (what both sides execute).
    pub bytes: Vec<u8>,
    /// `bytes` decoded at `INSN_ADDR`.
    pub instr: Instruction,
    pub input: Input,
    /// The bytes that go to `INSN_ADDR`: the instruction, its fall-through pad, INT3s.
    pub patch: [u8; PATCH_LEN],
    /// ENTER probes its final stack pointer, which may be outside the arena: a page fault
    /// is then the expected (and compared) outcome.
    pub may_page_fault: bool,
}

/// The shape of one operand before the instruction is built.
#[derive(Clone, Copy)]
enum Opnd {
    Reg(Register),
    /// The explicit memory operand (ModRM, moffs or XLAT's [rBX+AL]).
    Mem,
    Imm(OpKind, u64),
    Branch(u64),
    StrSrc,
    StrDst,
    /// MASKMOVQ's DS:rDI.
    MaskDst,
}

/// A solved memory operand.
#[derive(Clone, Copy)]
struct MemPlan {
    base: Register,
    index: Register,
    scale: u32,
    displ: u64,
    displ_size: u32,
    seg: Register,
}

const NULL_SEGS: [Register; 4] = [Register::ES, Register::CS, Register::SS, Register::DS];

struct Ctx<'r> {
    rng: &'r mut Rng,
    st: Input,
    /// Registers the memory planner must not use for addressing.
    avoid: u16,
    /// Registers with planned values the planner must respect when it uses them.
    pinned: u16,
    /// Registers the planner used for the address.
    addr_regs: u16,
    /// POP r/m computes its address after incrementing RSP.
    rsp_bias: u64,
    /// 67h: 32-bit addressing for this instruction.
    addr32: bool,
}

/// Generate the case for a drawn form, or say why this draw was rejected.
pub fn generate(rng: &mut Rng, code: Code) -> Result<Case, String> {
    let op = code.op_code();
    let m = op.mnemonic();
    let mut arena = vec![0u8; ARENA_SIZE];
    rng.fill(&mut arena);
    let mut gpr = [0u64; 16];
    for g in gpr.iter_mut() {
        *g = interesting(rng);
    }
    let mut flags = fl::FIXED | fl::IF;
    for f in [fl::CF, fl::PF, fl::AF, fl::ZF, fl::SF, fl::OF, fl::DF] {
        if rng.bool() {
            flags |= f;
        }
    }
    // NT and ID are user-writable and must pass through untouched.
    if rng.chance(1, 8) {
        flags |= fl::NT;
    }
    if rng.chance(1, 4) {
        flags |= fl::ID;
    }
    let osize = operand_bytes(code);
    let fx = super::simd::fx_input(rng, code);
    let mut c = Ctx {
        rng,
        st: Input {
            gpr,
            flags,
            arena,
            fx,
        },
        avoid: implicit_regs(m, code),
        pinned: 0,
        addr_regs: 0,
        rsp_bias: 0,
        addr32: false,
    };
    c.st.gpr[RSP] = c.stack_pointer();
    if uses_stack(m) {
        c.pinned |= bit(RSP);
    }
    // Equal operands make CMP/SUB/XOR/CMPXCHG take their other paths.
    if c.rng.chance(1, 8) {
        let (a, b) = (c.rng.below(16) as usize, c.rng.below(16) as usize);
        if a != RSP && b != RSP {
            c.st.gpr[a] = c.st.gpr[b];
        }
    }

    // 1. Operand shapes.
    let mut shapes = Vec::new();
    let mem_size = op.memory_size().size();
    for n in 0..op.op_count() {
        let k = op.op_kind(n);
        let rm = |size| {
            move |c: &mut Ctx| {
                if c.rng.bool() {
                    Opnd::Mem
                } else {
                    Opnd::Reg(random_gpr(c.rng, size))
                }
            }
        };
        let s = match k {
            K::r8_or_mem => rm(1)(&mut c),
            K::r16_or_mem => rm(2)(&mut c),
            K::r32_or_mem => rm(4)(&mut c),
            K::r64_or_mem => rm(8)(&mut c),
            K::mem | K::mem_offs | K::seg_rBX_al => Opnd::Mem,
            K::r8_reg | K::r8_opcode => Opnd::Reg(random_gpr(c.rng, 1)),
            K::r16_reg | K::r16_rm | K::r16_opcode => Opnd::Reg(random_gpr(c.rng, 2)),
            K::r32_reg | K::r32_rm | K::r32_opcode | K::r32_vvvv => Opnd::Reg(random_gpr(c.rng, 4)),
            K::r64_reg | K::r64_rm | K::r64_opcode | K::r64_vvvv => Opnd::Reg(random_gpr(c.rng, 8)),
            K::seg_reg => Opnd::Reg(Register::ES + c.rng.below(6) as u32),
            K::al => Opnd::Reg(Register::AL),
            K::cl => Opnd::Reg(Register::CL),
            K::ax => Opnd::Reg(Register::AX),
            K::eax => Opnd::Reg(Register::EAX),
            K::rax => Opnd::Reg(Register::RAX),
            K::imm8_const_1 => Opnd::Imm(OpKind::Immediate8, 1),
            K::imm8
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64 => {
                let kind = match k {
                    K::imm8 if n > 0 && matches!(shapes.last(), Some(Opnd::Imm(..))) => {
                        OpKind::Immediate8_2nd
                    }
                    K::imm8 => OpKind::Immediate8,
                    K::imm8sex16 => OpKind::Immediate8to16,
                    K::imm8sex32 => OpKind::Immediate8to32,
                    K::imm8sex64 => OpKind::Immediate8to64,
                    K::imm16 => OpKind::Immediate16,
                    K::imm32 => OpKind::Immediate32,
                    K::imm32sex64 => OpKind::Immediate32to64,
                    _ => OpKind::Immediate64,
                };
                Opnd::Imm(kind, c.immediate(m, osize, n, kind))
            }
            K::br64_1 | K::br64_4 => Opnd::Branch(c.branch_target()),
            K::xmm_reg | K::xmm_rm => Opnd::Reg(Register::XMM0 + c.rng.below(16) as u32),
            K::st0 => Opnd::Reg(Register::ST0),
            K::sti_opcode => Opnd::Reg(Register::ST0 + c.rng.below(8) as u32),
            K::xmm_or_mem => {
                if c.rng.bool() {
                    Opnd::Mem
                } else {
                    Opnd::Reg(Register::XMM0 + c.rng.below(16) as u32)
                }
            }
            K::mm_reg | K::mm_rm => Opnd::Reg(Register::MM0 + c.rng.below(8) as u32),
            K::mm_or_mem => {
                if c.rng.bool() {
                    Opnd::Mem
                } else {
                    Opnd::Reg(Register::MM0 + c.rng.below(8) as u32)
                }
            }
            K::seg_rDI => Opnd::MaskDst,
            K::seg_rSI => Opnd::StrSrc,
            K::es_rDI => Opnd::StrDst,
            _ => return Err(format!("unsupported operand kind {k:?}")),
        };
        shapes.push(s);
    }
    let has_mem = shapes.iter().any(|s| matches!(s, Opnd::Mem));
    // 67h for memory forms (not for RIP-relative or moffs, chosen below).
    c.addr32 = has_mem && c.rng.chance(1, 6);

    // 2. Class-specific registers the address must respect.
    if m == M::Pop && has_mem {
        c.rsp_bias = osize as u64;
    }
    if matches!(m, M::Enter | M::Leave) {
        let bp = c.rng.range(STACK_LO as i64, STACK_HI as i64) as u64;
        c.st.gpr[RBP] = if c.rng.bool() { bp & !7 } else { bp };
        c.pinned |= bit(RBP);
    }

    // 3. The memory operand.
    let mut ins = Instruction::default();
    ins.set_code(code);
    let mut mem_target = None;
    if has_mem {
        let plan = c.plan_for(m, code, &shapes, mem_size)?;
        if let Some((plan, target)) = plan {
            ins.set_memory_base(plan.base);
            ins.set_memory_index(plan.index);
            ins.set_memory_index_scale(plan.scale);
            ins.set_memory_displacement64(plan.displ);
            ins.set_memory_displ_size(plan.displ_size);
            ins.set_segment_prefix(plan.seg);
            mem_target = target;
        }
    }

    // 4. The remaining operands.
    let mut string_plan = None;
    for (n, s) in shapes.iter().enumerate() {
        let n = n as u32;
        match *s {
            Opnd::Reg(r) => {
                ins.set_op_kind(n, OpKind::Register);
                ins.set_op_register(n, r);
            }
            Opnd::Mem => ins.set_op_kind(n, OpKind::Memory),
            Opnd::Imm(kind, v) => {
                ins.set_op_kind(n, kind);
                ins.set_immediate_u64(n, v);
            }
            Opnd::Branch(t) => {
                ins.set_op_kind(n, OpKind::NearBranch64);
                ins.set_near_branch64(t);
            }
            Opnd::MaskDst => {
                // 8 bytes at DS:rDI (EDI with 67h), any segment override.
                let a32 = c.rng.chance(1, 5);
                let t = c
                    .rng
                    .range((ARENA_BASE + 8) as i64, (ARENA_END - 16) as i64)
                    as u64;
                let (seg, off) = c.segment_for(t, a32);
                ins.set_segment_prefix(seg);
                c.st.gpr[RDI] = if a32 {
                    (c.st.gpr[RDI] & !0xffff_ffff) | (off & 0xffff_ffff)
                } else {
                    off
                };
                ins.set_op_kind(
                    n,
                    if a32 {
                        OpKind::MemorySegEDI
                    } else {
                        OpKind::MemorySegRDI
                    },
                );
            }
            Opnd::StrSrc | Opnd::StrDst => {
                if string_plan.is_none() {
                    string_plan = Some(c.plan_string(m, code, &mut ins));
                }
                let a32 = string_plan == Some(true);
                let kind = match (*s, a32) {
                    (Opnd::StrSrc, false) => OpKind::MemorySegRSI,
                    (Opnd::StrSrc, true) => OpKind::MemorySegESI,
                    (_, false) => OpKind::MemoryESRDI,
                    (_, true) => OpKind::MemoryESEDI,
                };
                ins.set_op_kind(n, kind);
            }
        }
    }

    // 5. Values that depend on the final operands.
    c.fixups(m, code, osize, &ins, &shapes, mem_target);

    // 6. Prefixes: LOCK (valid and not), ignored REP/segment prefixes.
    // MASKMOVQ's DS:rDI takes a segment override like any memory operand.
    let mask_dst = shapes.iter().any(|s| matches!(s, Opnd::MaskDst));
    c.prefixes(code, &mut ins, has_mem || mask_dst);

    // 7. Encode, check that it decodes back to the same form, maybe add a redundant prefix.
    let mut enc = Encoder::new(64);
    enc.encode(&ins, INSN_ADDR)
        .map_err(|e| format!("encode {code:?}: {e}"))?;
    let mut bytes = enc.take_buffer();
    let decoded = decode(&bytes);
    let lock_ud = ins.has_lock_prefix() && decoded.is_invalid();
    if !lock_ud && (decoded.is_invalid() || decoded.code() != code) {
        return Err(format!("{code:?} decodes as {:?}", decoded.code()));
    }
    if !lock_ud && !decoded.is_ip_rel_memory_operand() && !mask_dst && c.rng.chance(1, 10) {
        if let Some(b) = c.redundant_prefix(&bytes, &decoded) {
            bytes = b;
        }
    }
    if bytes.len() > MAX_INSN_LEN {
        return Err("longer than 15 bytes".into());
    }
    let instr = decode(&bytes);
    if !lock_ud {
        check_addresses(&instr, &c.st, mem_target.is_some())?;
    }
    let mut patch = [0xccu8; PATCH_LEN];
    patch[..bytes.len()].copy_from_slice(&bytes);
    let pad = landing_pad(INSN_ADDR + bytes.len() as u64);
    patch[bytes.len()..bytes.len() + pad.len()].copy_from_slice(&pad);
    Ok(Case {
        code,
        bytes,
        instr,
        input: c.st,
        patch,
        may_page_fault: m == M::Enter,
    })
}

/// The same inputs with other instruction bytes (for experiments).
pub fn with_bytes(mut case: Case, bytes: &[u8]) -> Case {
    case.bytes = bytes.to_vec();
    case.instr = decode(bytes);
    case.patch = [0xcc; PATCH_LEN];
    case.patch[..bytes.len()].copy_from_slice(bytes);
    let pad = landing_pad(INSN_ADDR + bytes.len() as u64);
    case.patch[bytes.len()..bytes.len() + pad.len()].copy_from_slice(&pad);
    case
}

pub fn decode(bytes: &[u8]) -> Instruction {
    let mut d = Decoder::with_ip(64, bytes, INSN_ADDR, DecoderOptions::NONE);
    let i = d.decode();
    if i.len() != bytes.len() {
        return Instruction::default();
    }
    i
}

/// The explicit memory operand must lie in the arena: iced-x86 computes the address from
/// the input registers independently of the planner.
fn check_addresses(i: &Instruction, st: &Input, accessed: bool) -> Result<(), String> {
    if !accessed {
        return Ok(());
    }
    for n in 0..i.op_count() {
        if i.op_kind(n) != OpKind::Memory {
            continue;
        }
        let addr = i
            .virtual_address(n, 0, |r, _, _| {
                Some(match r {
                    Register::GS => GS_BASE,
                    Register::ES | Register::CS | Register::SS | Register::DS => 0,
                    Register::FS => return None,
                    _ => st.reg(r),
                })
            })
            .ok_or("no address")?;
        let size = i.memory_size().size() as u64;
        let bt_reg = matches!(i.mnemonic(), M::Bt | M::Bts | M::Btr | M::Btc)
            && i.op_kind(1) == OpKind::Register;
        if !bt_reg && (addr < ARENA_BASE || addr + size > ARENA_END) {
            return Err(format!(
                "planner bug: {i} addresses {addr:#x}, outside the arena"
            ));
        }
    }
    Ok(())
}

impl Ctx<'_> {
    fn stack_pointer(&mut self) -> u64 {
        let sp = self.rng.range(STACK_LO as i64, STACK_HI as i64) as u64;
        if self.rng.chance(3, 4) {
            sp & !7
        } else {
            sp
        }
    }

    fn branch_target(&mut self) -> u64 {
        if self.rng.bool() {
            BACK_PAD
        } else {
            FWD_PAD
        }
    }

    fn immediate(&mut self, m: M, osize: usize, n: u32, kind: OpKind) -> u64 {
        let bits = osize as u64 * 8;
        match m {
            // Counts: the edges of every operand size.
            M::Shl
            | M::Sal
            | M::Shr
            | M::Sar
            | M::Rol
            | M::Ror
            | M::Rcl
            | M::Rcr
            | M::Shld
            | M::Shrd
            | M::Rorx => interesting_count(self.rng, bits),
            M::Bt | M::Bts | M::Btr | M::Btc => interesting_count(self.rng, bits),
            // Allocation size: ENTER probes the final RSP, so a large one page-faults;
            // mostly it stays inside the arena.
            M::Enter if n == 0 => match self.rng.below(10) {
                0 => 0,
                1..=7 => self.rng.below(0x800),
                _ => self.rng.below(0x1_0000),
            },
            // Nesting level: taken modulo 32; ENTER pushes that many frame pointers.
            M::Enter => match self.rng.below(4) {
                0 => 0,
                1 => 1,
                2 => self.rng.below(32),
                _ => self.rng.below(256),
            },
            M::Ret => self.rng.below(0x1_0000),
            _ => {
                let v = interesting(self.rng);
                match kind {
                    OpKind::Immediate8to16 | OpKind::Immediate8to32 | OpKind::Immediate8to64 => {
                        v as i8 as u64
                    }
                    OpKind::Immediate32to64 => v as i32 as u64,
                    _ => v,
                }
            }
        }
    }

    /// A random arena address for `size` bytes, `align`-aligned, often at the page
    /// boundary in the middle or at the ends of the arena.
    fn pick_target(&mut self, size: usize, align: u64) -> u64 {
        let size = size as u64;
        let t = match self.rng.below(8) {
            0 => ARENA_MID - size + 1 + self.rng.below(size.max(2) - 1),
            1 => ARENA_BASE + self.rng.below(16),
            2 => ARENA_END - size - self.rng.below(16),
            _ => ARENA_BASE + self.rng.below(ARENA_SIZE as u64 - size + 1),
        };
        let t = t.clamp(ARENA_BASE, ARENA_END - size);
        if align > 1 {
            (t & !(align - 1)).max(ARENA_BASE)
        } else {
            t
        }
    }

    /// Plan the explicit memory operand. Returns the solved operand and the accessed
    /// address (None for LEA and NOP, which do not access memory).
    fn plan_for(
        &mut self,
        m: M,
        code: Code,
        shapes: &[Opnd],
        mem_size: usize,
    ) -> Result<Option<(MemPlan, Option<u64>)>, String> {
        let op = code.op_code();
        if matches!(m, M::Lea | M::Nop) {
            return Ok(Some((self.unconstrained_mem(), None)));
        }
        if op.op_kinds().contains(&K::seg_rBX_al) {
            let (plan, t) = self.plan_xlat();
            return Ok(Some((plan, Some(t))));
        }
        if op.op_kinds().contains(&K::mem_offs) {
            let t = self.pick_target(mem_size, 1);
            // A 4-byte displacement is a 32-bit moffs (67h).
            let size = if self.rng.chance(1, 4) { 4 } else { 8 };
            let (seg, off) = self.segment_for(t, size == 4);
            let plan = MemPlan {
                base: Register::None,
                index: Register::None,
                scale: 1,
                displ: off,
                displ_size: size,
                seg,
            };
            return Ok(Some((plan, Some(t))));
        }
        let bt_reg = matches!(m, M::Bt | M::Bts | M::Btr | M::Btc)
            && matches!(shapes.get(1), Some(Opnd::Reg(_)));
        if bt_reg {
            // The bit offset is signed and selects an operand-sized word anywhere relative
            // to the address: plan the offset, then the address so the word is in the arena.
            let Some(Opnd::Reg(r)) = shapes.get(1).copied() else {
                unreachable!()
            };
            let bits = (mem_size * 8) as i64;
            let offset = self.rng.range(-8 * 0x800, 8 * 0x800);
            let byte_disp = offset.div_euclid(bits) * mem_size as i64;
            let word = self.pick_target(mem_size, 1);
            self.st.set_reg(r, offset as u64);
            self.avoid |= bit(reg_index(r));
            let ea = word.wrapping_sub(byte_disp as u64);
            let plan = self.solve_mem(ea)?;
            return Ok(Some((plan, Some(word))));
        }
        // An AMD host reads 32 bits for MOVSXD r16, r/m16 (the SDM says 16): leave room so
        // the extra bytes are in the arena. The result is the same.
        let mem_size = if code == Code::Movsxd_r16_rm16 {
            4
        } else {
            mem_size
        };
        let align = match m {
            // 90% aligned: a misaligned CMPXCHG16B is #GP, checked the other 10%.
            M::Cmpxchg16b if self.rng.chance(9, 10) => 16,
            // 90% aligned SSE operands: a misaligned one is #GP for the aligned forms.
            _ if super::simd::is_simd(code) && mem_size >= 16 && self.rng.chance(9, 10) => 16,
            _ => 1,
        };
        let t = self.pick_target(mem_size, align);
        let plan = self.solve_mem(t)?;
        Ok(Some((plan, Some(t))))
    }

    /// Choose a segment (mostly none, sometimes GS, sometimes a null prefix) for an access
    /// to `target`; returns it and the offset within it.
    fn segment_for(&mut self, target: u64, addr32: bool) -> (Register, u64) {
        let seg = match self.rng.below(16) {
            0..=2 => Register::GS,
            3 => self.rng.pick(&NULL_SEGS),
            _ => Register::None,
        };
        if seg == Register::GS {
            let off = target.wrapping_sub(GS_BASE);
            // A 32-bit offset cannot be negative.
            if !(addr32 && (off as i64) < 0) {
                return (seg, off);
            }
        }
        if seg == Register::GS {
            return (Register::None, target);
        }
        (seg, target)
    }

    /// A displacement for a field of `size` bytes (0: none).
    fn disp_in(&mut self, size: u32) -> i64 {
        match size {
            0 => 0,
            1 => self.rng.range(-128, 127),
            _ => {
                if self.rng.chance(1, 4) {
                    self.rng.next_u64() as i32 as i64
                } else {
                    self.rng.range(-0x2000, 0x2000)
                }
            }
        }
    }

    /// Value of GPR `i` for addressing if it is pinned.
    fn pinned_value(&self, i: usize) -> Option<u64> {
        if self.pinned & bit(i) == 0 {
            return None;
        }
        let v = self.st.gpr[i];
        Some(if i == RSP {
            v.wrapping_add(self.rsp_bias)
        } else {
            v
        })
    }

    /// Write an address register: the low 32 bits for 32-bit addressing (the rest stays
    /// random and must be ignored), else all 64.
    fn set_addr_reg(&mut self, i: usize, v: u64) {
        if self.pinned & bit(i) != 0 {
            return;
        }
        if self.addr32 {
            self.st.gpr[i] = (self.st.gpr[i] & !0xffff_ffff) | (v & 0xffff_ffff);
        } else {
            self.st.gpr[i] = v;
        }
        self.addr_regs |= bit(i);
    }

    /// Solve base + index * scale + disp = `target` (through a segment), choosing the form.
    fn solve_mem(&mut self, target: u64) -> Result<MemPlan, String> {
        for _ in 0..16 {
            if let Some(p) = self.try_solve_mem(target) {
                return Ok(p);
            }
        }
        Err("no memory form fits".into())
    }

    fn try_solve_mem(&mut self, target: u64) -> Option<MemPlan> {
        let form = self.rng.below(100);
        let (seg, off) = self.segment_for(target, self.addr32);
        let simple = |displ, displ_size, base| MemPlan {
            base,
            index: Register::None,
            scale: 1,
            displ,
            displ_size,
            seg,
        };
        if form < 10 {
            // [disp32]: 64-bit addressing sign-extends it (GS-relative offsets may be
            // negative); with 67h it is zero-extended.
            if self.addr32 {
                if off > u32::MAX as u64 {
                    return None;
                }
                return Some(simple(off, 4, Register::None));
            }
            if (off as i64) != (off as i32 as i64) {
                return None;
            }
            return Some(simple(off, 8, Register::None));
        }
        if form < 22 {
            // RIP-relative: iced takes the absolute target and encodes the distance.
            if self.addr32 {
                return None;
            }
            let next_guess = INSN_ADDR + 8;
            let dist = off.wrapping_sub(next_guess) as i64;
            if dist.abs() > 0x7000_0000 {
                return None;
            }
            return Some(simple(off, 8, Register::RIP));
        }
        let w: u64 = if self.addr32 { 0xffff_ffff } else { u64::MAX };
        let size = if self.addr32 { 4 } else { 8 };
        let allowed: Vec<usize> = (0..16).filter(|i| self.avoid & bit(*i) == 0).collect();
        let base_ok: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|i| self.pinned & bit(*i) == 0 || *i == RSP)
            .collect();
        let index_ok: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|i| *i != RSP && self.pinned & bit(*i) == 0)
            .collect();
        if base_ok.is_empty() || index_ok.is_empty() {
            return None;
        }
        // iced-x86's convention: a full displacement has the address size.
        let full = size as u32;
        let displ_size = match self.rng.below(3) {
            0 => 0,
            1 => 1,
            _ => full,
        };
        if form < 65 {
            // [base + disp].
            let b = self.rng.pick(&base_ok);
            let d = match self.pinned_value(b) {
                Some(bv) => {
                    let d = off.wrapping_sub(bv) & w;
                    let d = if self.addr32 {
                        d as i32 as i64
                    } else {
                        d as i64
                    };
                    if d != d as i32 as i64 {
                        return None;
                    }
                    d
                }
                None => {
                    let d = self.disp_in(displ_size);
                    self.set_addr_reg(b, off.wrapping_sub(d as u64) & w);
                    d
                }
            };
            let ds = if d == 0 && displ_size == 0 {
                0
            } else if d == d as i8 as i64 && displ_size != full {
                1
            } else {
                full
            };
            self.addr_regs |= bit(b);
            return Some(simple(d as u64, ds, gpr_of(size, b)));
        }
        let scale = self.rng.pick(&[1u32, 2, 4, 8]);
        let s = scale as u64;
        let ix = self.rng.pick(&index_ok);
        let mut iv = if self.rng.bool() {
            interesting(self.rng)
        } else {
            self.rng.range(-64, 64) as u64
        };
        if form < 92 {
            // [base + index * scale + disp].
            let b = self.rng.pick(&base_ok);
            let mut d = self.disp_in(displ_size);
            if b == ix {
                // v * (1 + scale) + d = off: solve for v.
                let k = 1 + s;
                let mut r = off.wrapping_sub(d as u64) & w;
                if k == 2 && r & 1 != 0 {
                    d += if d < 127 { 1 } else { -1 };
                    r = off.wrapping_sub(d as u64) & w;
                }
                let v = if k == 2 {
                    (r >> 1) | if self.rng.bool() { (w >> 1) + 1 } else { 0 }
                } else {
                    r.wrapping_mul(inverse(k)) & w
                };
                self.set_addr_reg(b, v);
            } else {
                match self.pinned_value(b) {
                    None => {
                        self.set_addr_reg(ix, iv);
                        let bv = off.wrapping_sub(iv.wrapping_mul(s)).wrapping_sub(d as u64) & w;
                        self.set_addr_reg(b, bv);
                    }
                    Some(bv) => {
                        // index * scale = off - base - d: make it divisible by scale.
                        let mut r = off.wrapping_sub(bv).wrapping_sub(d as u64) & w;
                        let rem = (r % s) as i64;
                        if rem != 0 {
                            d += rem;
                            r = off.wrapping_sub(bv).wrapping_sub(d as u64) & w;
                        }
                        iv = (r / s).wrapping_add(self.rng.below(s) * ((w / s) + 1)) & w;
                        self.set_addr_reg(ix, iv);
                    }
                }
            }
            let ds = if d == 0 && displ_size == 0 {
                0
            } else if d == d as i8 as i64 && displ_size != full {
                1
            } else {
                full
            };
            self.addr_regs |= bit(b) | bit(ix);
            return Some(MemPlan {
                base: gpr_of(size, b),
                index: gpr_of(size, ix),
                scale,
                displ: d as u64,
                displ_size: ds,
                seg,
            });
        }
        // [index * scale + disp32].
        let mut d = self.disp_in(full);
        let mut r = off.wrapping_sub(d as u64) & w;
        let rem = (r % s) as i64;
        if rem != 0 {
            d += rem;
            r = off.wrapping_sub(d as u64) & w;
        }
        if d != d as i32 as i64 {
            return None;
        }
        iv = (r / s).wrapping_add(self.rng.below(s) * ((w / s) + 1)) & w;
        self.set_addr_reg(ix, iv);
        self.addr_regs |= bit(ix);
        Some(MemPlan {
            base: Register::None,
            index: gpr_of(size, ix),
            scale,
            displ: d as u64,
            displ_size: full,
            seg,
        })
    }

    /// LEA and NOP r/m: any registers, any displacement (nothing is accessed).
    fn unconstrained_mem(&mut self) -> MemPlan {
        let size = if self.addr32 { 4 } else { 8 };
        let base = match self.rng.below(8) {
            0 => Register::None,
            1 if !self.addr32 => Register::RIP,
            _ => gpr_of(size, self.rng.below(16) as usize),
        };
        let index = if self.rng.bool() || base == Register::RIP {
            Register::None
        } else {
            gpr_of(
                size,
                [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15][self.rng.below(15) as usize],
            )
        };
        let full = size as u32;
        let (displ, displ_size) = if base == Register::RIP {
            (
                INSN_ADDR.wrapping_add(self.rng.range(-0x1000_0000, 0x1000_0000) as u64),
                8,
            )
        } else if base == Register::None && index == Register::None && self.addr32 {
            (self.rng.next_u64() & 0xffff_ffff, 4)
        } else if base == Register::None {
            (self.rng.next_u64() as i32 as i64 as u64, full)
        } else {
            let ds = self.rng.pick(&[0u32, 1, full]);
            (self.disp_in(ds) as u64, ds)
        };
        MemPlan {
            base,
            index,
            scale: if index == Register::None {
                1
            } else {
                self.rng.pick(&[1, 2, 4, 8])
            },
            displ,
            displ_size,
            seg: if self.rng.chance(1, 8) {
                Register::GS
            } else {
                Register::None
            },
        }
    }

    /// XLAT: [rBX + AL] (EBX with 67h) through DS or an override.
    fn plan_xlat(&mut self) -> (MemPlan, u64) {
        let t = self.pick_target(1, 1);
        let al = self.st.gpr[RAX] & 0xff;
        let table = t - al;
        let (seg, off) = self.segment_for(table, self.addr32);
        if self.addr32 {
            self.st.gpr[RBX] = (self.st.gpr[RBX] & !0xffff_ffff) | (off & 0xffff_ffff);
        } else {
            self.st.gpr[RBX] = off;
        }
        self.addr_regs |= bit(RBX) | bit(RAX);
        let plan = MemPlan {
            base: if self.addr32 {
                Register::EBX
            } else {
                Register::RBX
            },
            index: Register::AL,
            scale: 1,
            displ: 0,
            displ_size: 0,
            seg,
        };
        (plan, t)
    }

    /// String instructions: REP kind, count, direction, RSI/RDI (ESI/EDI with 67h) and a
    /// source segment override; for REPE/REPNE compares, data that matches for a while.
    /// Returns whether 32-bit addressing is used.
    fn plan_string(&mut self, m: M, code: Code, ins: &mut Instruction) -> bool {
        let op = code.op_code();
        let kinds = op.op_kinds();
        let has_src = kinds.contains(&K::seg_rSI);
        let has_dst = kinds.contains(&K::es_rDI);
        let elem = op.memory_size().size() as u64;
        let a32 = self.rng.chance(1, 5);
        let compare = matches!(
            m,
            M::Scasb | M::Scasw | M::Scasd | M::Scasq | M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq
        );
        let rep = match self.rng.below(10) {
            0..=2 => RepPrefixKind::None,
            3..=6 => RepPrefixKind::Repe,
            _ => RepPrefixKind::Repne,
        };
        match rep {
            RepPrefixKind::Repe => ins.set_has_repe_prefix(true),
            RepPrefixKind::Repne => ins.set_has_repne_prefix(true),
            _ => {}
        }
        let count = if rep == RepPrefixKind::None {
            None
        } else {
            Some(match self.rng.below(8) {
                0 => 0,
                1 => 1,
                2 => self.rng.below(33),
                _ => self.rng.below(9),
            })
        };
        let down = self.st.flags & fl::DF != 0;
        let span = count.unwrap_or(1).max(1) * elem;
        let start = |c: &mut Ctx| {
            let lo = ARENA_BASE + 0x100 + if down { span } else { 0 };
            let hi = ARENA_END - 0x100 - if down { 0 } else { span };
            c.rng.range(lo as i64, hi as i64) as u64
        };
        let set = |c: &mut Ctx, i: usize, v: u64| {
            c.st.gpr[i] = if a32 {
                (c.st.gpr[i] & !0xffff_ffff) | (v & 0xffff_ffff)
            } else {
                v
            };
        };
        let mut src = 0;
        let mut dst = 0;
        if has_src {
            src = start(self);
            let (seg, off) = self.segment_for(src, a32);
            ins.set_segment_prefix(if seg == Register::None {
                Register::None
            } else {
                seg
            });
            set(self, RSI, off);
        }
        if has_dst {
            dst = start(self);
            set(self, RDI, dst);
        }
        if let Some(n) = count {
            set(self, RCX, n);
        }
        // Compares: make the first k elements equal so REPE/REPNE stop somewhere inside.
        if compare && count.is_some() && self.rng.bool() {
            let n = count.unwrap_or(0);
            let k = self.rng.below(n + 1);
            let step = |base: u64, j: u64| {
                if down {
                    base - j * elem
                } else {
                    base + j * elem
                }
            };
            for j in 0..k {
                let v = if has_src {
                    self.st.read_mem(step(src, j), elem as usize)
                } else {
                    self.st.gpr[RAX] & mask(elem as usize)
                };
                self.st.write_mem(step(dst, j), elem as usize, v);
            }
        }
        a32
    }

    /// Planned values that depend on the operands: branch targets, dividends, counts,
    /// equal compares, zero sources, memory contents.
    fn fixups(
        &mut self,
        m: M,
        code: Code,
        osize: usize,
        ins: &Instruction,
        shapes: &[Opnd],
        target: Option<u64>,
    ) {
        let op = code.op_code();
        let mem_size = op.memory_size().size();
        let free = |c: &Ctx, r: Register| c.addr_regs & bit(reg_index(r)) == 0;
        // SSE memory operands hold lanes of edge-case floats and integers.
        if let Some(t) = target {
            if super::simd::is_x87(code) && self.rng.chance(7, 8) {
                let ms = op.memory_size();
                super::simd::seed_x87_memory(
                    self.rng,
                    &mut self.st.arena,
                    (t - ARENA_BASE) as usize,
                    ms,
                );
            } else if super::simd::is_simd(code) && self.rng.chance(3, 4) {
                super::simd::seed_memory(self.rng, &mut self.st.arena, (t - ARENA_BASE) as usize);
            }
        }
        // MXCSR images: bit 17 is AMD's misaligned-exception mask (an AMD host accepts it,
        // Intel and vmscope raise #GP): vendor-specific, so it is never drawn. The other
        // reserved bits stay random (#GP on both).
        if let Some(t) = target {
            let at = match m {
                M::Ldmxcsr => Some(t),
                M::Fxrstor | M::Fxrstor64 => Some(t + 24),
                _ => None,
            };
            if let Some(a) = at {
                let v = self.st.read_mem(a, 4) & !(1 << 17);
                self.st.write_mem(a, 4, v);
            }
        }
        // Memory operands often hold an edge value.
        if let Some(t) = target {
            if self.rng.bool() && mem_size <= 8 && !super::simd::is_simd(code) {
                let v = interesting(self.rng);
                self.st.write_mem(t, mem_size, v);
            }
        }
        let reg_op = |n: usize| match shapes.get(n) {
            Some(Opnd::Reg(r)) => Some(*r),
            _ => None,
        };
        // PCMPESTRx: explicit lengths in RAX/RDX, mostly within or near the element count
        // (negative ones count by their absolute value).
        if matches!(
            m,
            M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64
        ) {
            for r in [RAX, RDX] {
                if self.rng.chance(3, 4) {
                    self.st.gpr[r] = self.rng.range(-20, 21) as u64;
                }
            }
        }
        // MMX shifts by a register or memory count: often a count near the lane width.
        if super::simd::is_mmx(code)
            && matches!(
                m,
                M::Psllw
                    | M::Pslld
                    | M::Psllq
                    | M::Psrlw
                    | M::Psrld
                    | M::Psrlq
                    | M::Psraw
                    | M::Psrad
            )
            && ins.op_kind(1) != OpKind::Immediate8
            && self.rng.chance(3, 4)
        {
            let count = self.rng.below(70);
            match (reg_op(1), target) {
                (Some(r), _) => super::simd::set_fx_mm(&mut self.st.fx, r.number(), count),
                (None, Some(t)) => self.st.write_mem(t, 8, count),
                _ => {}
            }
        }
        match m {
            M::Jmp | M::Call if ins.op_kind(0) != OpKind::NearBranch64 => {
                let pad = self.branch_target();
                match (reg_op(0), target) {
                    (Some(r), _) => self.st.gpr[reg_index(r)] = pad,
                    (None, Some(t)) => self.st.write_mem(t, 8, pad),
                    _ => {}
                }
            }
            M::Ret => {
                let pad = self.branch_target();
                let sp = self.st.gpr[RSP];
                self.st.write_mem(sp, 8, pad);
            }
            M::Popf | M::Popfq => {
                // TF would trap after the next instruction; everything else may be popped.
                let sp = self.st.gpr[RSP];
                let size = if m == M::Popf { 2 } else { 8 };
                let v = interesting(self.rng) & !fl::TF;
                self.st.write_mem(sp, size, v);
            }
            M::Div | M::Idiv => self.dividend(m, osize, shapes, target),
            M::Cmpxchg if self.rng.bool() => {
                let size = osize;
                let dest = match (reg_op(0), target) {
                    (Some(r), _) => self.st.reg(r),
                    (None, Some(t)) => self.st.read_mem(t, size),
                    _ => 0,
                };
                self.st.set_reg(gpr_of(size, RAX), dest);
            }
            M::Cmpxchg8b | M::Cmpxchg16b if self.rng.bool() => {
                if let Some(t) = target {
                    let half = mem_size / 2;
                    let (lo, hi) = (self.st.gpr[RAX], self.st.gpr[RDX]);
                    if t & (half as u64 - 1) == 0 || m == M::Cmpxchg8b {
                        self.st.write_mem(t, half, lo);
                        self.st.write_mem(t + half as u64, half, hi);
                    }
                }
            }
            M::Loop | M::Loope | M::Loopne | M::Jrcxz | M::Jecxz => {
                let v = match self.rng.below(4) {
                    0 => 0,
                    1 => 1,
                    2 => self.rng.below(3) | (self.rng.next_u64() << 32),
                    _ => interesting(self.rng),
                };
                self.st.gpr[RCX] = v;
            }
            M::Bsf | M::Bsr | M::Tzcnt | M::Lzcnt | M::Popcnt if self.rng.chance(1, 4) => {
                let size = osize;
                match (reg_op(1), target) {
                    (Some(r), _) if free(self, r) => self.st.set_reg(r, 0),
                    (None, Some(t)) => self.st.write_mem(t, size, 0),
                    _ => {}
                }
            }
            M::Bextr | M::Bzhi | M::Sarx | M::Shlx | M::Shrx => {
                if let Some(r) = reg_op(2) {
                    if free(self, r) {
                        let bits = osize as u64 * 8;
                        let v = if m == M::Bextr {
                            interesting_count(self.rng, bits)
                                | interesting_count(self.rng, bits) << 8
                                | if self.rng.bool() {
                                    interesting(self.rng) << 16
                                } else {
                                    0
                                }
                        } else {
                            interesting_count(self.rng, bits)
                                | if self.rng.bool() {
                                    interesting(self.rng) << 8
                                } else {
                                    0
                                }
                        };
                        self.st.set_reg(r, v);
                    }
                }
            }
            _ => {}
        }
        // Counts in CL.
        if op.op_kinds().contains(&K::cl) && self.rng.chance(7, 8) {
            let bits = osize as u64 * 8;
            let v = interesting_count(self.rng, bits);
            self.st.gpr[RCX] = (self.st.gpr[RCX] & !0xff) | (v & 0xff);
        }
    }

    /// DIV/IDIV: mostly a dividend whose quotient fits (so the result is checked), some
    /// overflows and divisions by zero (#DE).
    fn dividend(&mut self, m: M, size: usize, shapes: &[Opnd], target: Option<u64>) {
        let bits = size as u32 * 8;
        let signed = m == M::Idiv;
        let mut d: i128 = match self.rng.below(20) {
            0 => 0,
            1 if signed => -1,
            _ => {
                let v = interesting(self.rng) & mask(size);
                if signed {
                    sext(v, bits) as i128
                } else {
                    v as i128
                }
            }
        };
        if self.rng.chance(1, 8) {
            // Leave whatever is there: mostly quotient overflow.
            d = if signed {
                sext(self.divisor_now(shapes, target, size), bits) as i128
            } else {
                self.divisor_now(shapes, target, size) as i128
            };
        }
        let n: i128 = if d == 0 {
            interesting(self.rng) as i128
        } else {
            let (qmin, qmax): (i128, i128) = if signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            };
            let q = match self.rng.below(10) {
                0 => qmax,
                1 => qmin,
                // Just out of range: #DE.
                2 => qmax + 1,
                3 if signed => qmin - 1,
                _ => {
                    let v = interesting(self.rng) & mask(size);
                    if signed {
                        sext(v, bits) as i128
                    } else {
                        v as i128
                    }
                }
            }
            .clamp(qmin - 1, qmax + 1);
            let r = (self.rng.next_u64() as u128 % d.unsigned_abs()) as i128;
            let p = q * d;
            if signed && (p < 0 || (p == 0 && self.rng.bool())) {
                p - r
            } else {
                p + r
            }
        };
        // Overflowing dividends (MIN / -1) are included by q = qmax/qmin with d = -1.
        let n = n as u128;
        if size == 1 {
            self.st.set_reg(Register::AX, n as u64);
        } else {
            self.st.set_reg(gpr_of(size, RAX), n as u64);
            self.st.set_reg(gpr_of(size, RDX), (n >> bits) as u64);
        }
        match (shapes.first(), target) {
            (Some(Opnd::Reg(r)), _) => self.st.set_reg(*r, d as u64),
            (_, Some(t)) => self.st.write_mem(t, size, d as u64),
            _ => {}
        }
    }

    fn divisor_now(&self, shapes: &[Opnd], target: Option<u64>, size: usize) -> u64 {
        match (shapes.first(), target) {
            (Some(Opnd::Reg(r)), _) => self.st.reg(*r),
            (_, Some(t)) => self.st.read_mem(t, size),
            _ => 0,
        }
    }

    /// LOCK on lockable memory forms (and XACQUIRE/XRELEASE with it); rarely on other
    /// forms, where it must raise #UD; ignored REP and segment prefixes on other forms.
    fn prefixes(&mut self, code: Code, ins: &mut Instruction, has_mem: bool) {
        let op = code.op_code();
        let m = op.mnemonic();
        if is_string(m) {
            return;
        }
        if op.can_use_lock_prefix() && has_mem {
            if self.rng.bool() {
                ins.set_has_lock_prefix(true);
            }
            if (ins.has_lock_prefix() || m == M::Xchg) && self.rng.chance(1, 8) {
                if op.can_use_xacquire_prefix() && self.rng.bool() {
                    ins.set_has_xacquire_prefix(true);
                } else if op.can_use_xrelease_prefix() {
                    ins.set_has_xrelease_prefix(true);
                }
            }
        } else if op.encoding() == EncodingKind::Legacy && self.rng.chance(1, 50) {
            ins.set_has_lock_prefix(true);
        }
        // REP prefixes on instructions other than string instructions are reserved (SDM
        // Vol. 2, 2.1.1) except where the SDM gives them a meaning: F2 on near branches is
        // BND (ignored without MPX) and F3 RET is the documented "REP RET" padding. (An AMD
        // host, for one, lets REP/REPNE override the condition of LOOPE/LOOPNE.)
        let bnd_branch = matches!(m, M::Jmp | M::Call | M::Ret) || is_jcc(m);
        if bnd_branch && self.rng.chance(1, 20) {
            if m == M::Ret && self.rng.bool() {
                ins.set_has_repe_prefix(true);
            } else {
                ins.set_has_repne_prefix(true);
            }
        }
        // Segment prefixes on instructions without memory operands are ignored; on
        // branches only 2Eh/3Eh (the Jcc hints) are defined.
        if !has_mem && !is_near_branch(m) && self.rng.chance(1, 25) {
            ins.set_segment_prefix(Register::ES + self.rng.below(6) as u32);
        } else if is_jcc(m) && self.rng.chance(1, 10) {
            ins.set_segment_prefix(self.rng.pick(&[Register::CS, Register::DS]));
        }
    }

    /// Insert 66h, 67h, REX or a segment prefix that must not change the instruction;
    /// iced-x86 decodes the result to confirm it is the same instruction.
    fn redundant_prefix(&mut self, bytes: &[u8], orig: &Instruction) -> Option<Vec<u8>> {
        const LEGACY: [u8; 11] = [
            0x66, 0x67, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0xf0, 0xf2, 0xf3,
        ];
        if bytes.len() >= 15 || matches!(bytes[0], 0xc4 | 0xc5) {
            return None;
        }
        let nlegacy = bytes.iter().take_while(|b| LEGACY.contains(b)).count();
        let has_rex = bytes.get(nlegacy).is_some_and(|b| b & 0xf0 == 0x40);
        let (pos, p) = match self.rng.below(4) {
            0 if !has_rex => (nlegacy, 0x40),
            1 if !has_rex => (nlegacy, 0x48),
            _ => (
                self.rng.below(nlegacy as u64 + 1) as usize,
                self.rng.pick(&[0x66, 0x67, 0x2e, 0x36, 0x3e, 0x26]),
            ),
        };
        // 66h on a near branch is vendor-specific in 64-bit mode (see `eligible`), and
        // iced-x86 decodes it the Intel way.
        if p == 0x66 && is_near_branch(orig.mnemonic()) {
            return None;
        }
        let mut b = bytes.to_vec();
        b.insert(pos, p);
        let d = decode(&b);
        if !d.is_invalid() && same_semantics(&d, orig) {
            Some(b)
        } else {
            None
        }
    }
}

/// Same instruction, operands and prefixes that matter (not the same bytes).
fn same_semantics(a: &Instruction, b: &Instruction) -> bool {
    if a.code() != b.code()
        || a.op_count() != b.op_count()
        || a.has_lock_prefix() != b.has_lock_prefix()
        || a.has_rep_prefix() != b.has_rep_prefix()
        || a.has_repne_prefix() != b.has_repne_prefix()
    {
        return false;
    }
    for n in 0..a.op_count() {
        if a.op_kind(n) != b.op_kind(n) {
            return false;
        }
        let same = match a.op_kind(n) {
            OpKind::Register => a.op_register(n) == b.op_register(n),
            OpKind::NearBranch64 => a.near_branch64() == b.near_branch64(),
            OpKind::Memory => {
                a.memory_base() == b.memory_base()
                    && a.memory_index() == b.memory_index()
                    && a.memory_index_scale() == b.memory_index_scale()
                    && a.memory_displacement64() == b.memory_displacement64()
                    && a.memory_segment() == b.memory_segment()
                    && a.memory_size() == b.memory_size()
            }
            OpKind::MemorySegRSI | OpKind::MemorySegESI => a.memory_segment() == b.memory_segment(),
            _ => a.immediate(n) == b.immediate(n),
        };
        if !same {
            return false;
        }
    }
    true
}

pub fn sext(v: u64, bits: u32) -> i64 {
    let sh = 64 - bits;
    ((v << sh) as i64) >> sh
}

/// Inverse of an odd number modulo 2^64 (Newton's iteration).
fn inverse(k: u64) -> u64 {
    let mut x = k;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(k.wrapping_mul(x)));
    }
    x
}
