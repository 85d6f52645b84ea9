//! What is compared and what is not.
//!
//! Everything architectural is compared: the 16 GPRs, RIP (where control went), the
//! RFLAGS bits in `COMPARED_FLAGS`, the whole arena and, for faulting cases, the exception
//! vector. Left out are only the results the Intel SDM (Vol. 2, each instruction's "Flags
//! Affected" and "Operation") calls undefined, computed per case from the operands:
//!
//! | instruction | undefined |
//! |---|---|
//! | AND, OR, XOR, TEST | AF |
//! | MUL, IMUL (all forms) | SF ZF AF PF |
//! | DIV, IDIV | CF OF SF ZF AF PF |
//! | SHL/SAL, SHR, SAR with masked count c != 0 | AF; OF if c > 1; CF for SHL/SHR if c >= operand bits |
//! | ROL, ROR, RCL, RCR with masked count c > 1 | OF |
//! | SHLD, SHRD, count c != 0 | AF; OF if c > 1; 16-bit with c > 16: all six flags and the destination |
//! | BT, BTS, BTR, BTC | OF SF AF PF |
//! | BSF, BSR | CF OF SF AF PF; the destination if the source is 0 |
//! | TZCNT, LZCNT | OF SF AF PF |
//! | ANDN, BLSI, BLSMSK, BLSR, BZHI | AF PF |
//! | BEXTR | AF SF PF |
//! | BSWAP r16 | the low 16 bits of the destination |
//!
//! A masked count of 0 leaves all flags unchanged, which is compared. A faulting case is
//! compared without masks: the fault leaves everything as it was.

use super::catalogue::fl;
use super::gen::{reg_index, Case};
use super::layout::*;
use super::{Input, Outcome};
use iced_x86::{Formatter, IntelFormatter, Mnemonic as M, OpKind, Register};

/// The page-fault vector.
pub const PF: u8 = 14;

/// IOPL (bits 12-13): user code cannot change it.
const IOPL: u64 = 3 << 12;
/// The RFLAGS bits compared after every case: status flags, DF, and the system bits user
/// code can see (TF, IF, IOPL, NT, AC, ID). RF, VM, VIF and VIP never show in a PUSHF
/// image; the host's signal frame may show RF, so it is not compared.
pub const COMPARED_FLAGS: u64 =
    fl::STATUS | fl::TF | fl::IF | fl::DF | IOPL | fl::NT | fl::AC | fl::ID | fl::FIXED;

/// What to ignore in one case.
#[derive(Debug, Default, Clone)]
pub struct Mask {
    /// RFLAGS bits the SDM leaves undefined.
    pub flags: u64,
    /// Per GPR, bits whose value is undefined.
    pub gpr: [u64; 16],
    /// Arena bytes whose value is undefined (address, length).
    pub mem: Vec<(u64, usize)>,
    /// XMM register lanes compared within an error bound instead of exactly (RCPPS and
    /// friends): (register, lane bits, lane mask).
    pub approx_xmm: Vec<(usize, u32, u8)>,
    /// x87 status-word bits the SDM leaves undefined for this instruction.
    pub fsw: u16,
}

/// Address of the explicit memory operand computed from the inputs.
fn mem_address(i: &iced_x86::Instruction, input: &Input) -> Option<u64> {
    let n = (0..i.op_count()).find(|n| i.op_kind(*n) == OpKind::Memory)?;
    i.virtual_address(n, 0, |r, _, _| {
        Some(match r {
            Register::GS => GS_BASE,
            Register::ES | Register::CS | Register::SS | Register::DS => 0,
            Register::FS => return None,
            _ => input.reg(r),
        })
    })
}

/// Value of operand `n` before the instruction (register, memory or immediate).
fn operand_value(i: &iced_x86::Instruction, n: u32, input: &Input) -> u64 {
    match i.op_kind(n) {
        OpKind::Register => input.reg(i.op_register(n)),
        OpKind::Memory => {
            let size = i.memory_size().size();
            match mem_address(i, input) {
                Some(a) if a >= ARENA_BASE && a + size as u64 <= ARENA_END => {
                    input.read_mem(a, size)
                }
                _ => 0,
            }
        }
        _ => i.immediate(n),
    }
}

/// Size in bytes of operand 0.
fn dest_size(i: &iced_x86::Instruction) -> usize {
    match i.op_kind(0) {
        OpKind::Register => i.op_register(0).size(),
        _ => i.memory_size().size(),
    }
}

/// The SDM's undefined results for this case.
pub fn undefined(case: &Case) -> Mask {
    let i = &case.instr;
    let input = &case.input;
    let mut mask = Mask::default();
    if i.is_invalid() {
        return mask;
    }
    if super::simd::is_x87(case.code) {
        mask.fsw = super::simd::undefined_fsw(i.mnemonic());
    }
    if let Some((bits, lanes)) = super::simd::approx_lanes(i) {
        if i.op_kind(0) == OpKind::Register {
            let r = i.op_register(0).number();
            mask.approx_xmm.push((r, bits, lanes));
        }
    }
    // FXSAVE's MXCSR_MASK field: AMD hosts report their misaligned-exception mask bit
    // 17 (0x2ffff); vmscope reports Intel's 0xffff.
    if matches!(i.mnemonic(), M::Fxsave | M::Fxsave64) {
        if let Some(a) = mem_address(i, input) {
            mask.mem
                .push((a + vmscope::cpu::fpu_state::fx::MXCSR_MASK as u64, 4));
        }
    }
    let size = dest_size(i);
    let bits = size as u64 * 8;
    let count_mask = if size == 8 { 63 } else { 31 };
    let count = |n: u32| operand_value(i, n, input) & 0xff & count_mask;
    let mask_dest = |mask: &mut Mask| match i.op_kind(0) {
        OpKind::Register => {
            let r = i.op_register(0);
            mask.gpr[reg_index(r)] |= if r.size() == 4 { u64::MAX } else { mask_of(r) };
        }
        _ => {
            if let Some(a) = mem_address(i, input) {
                mask.mem.push((a, size));
            }
        }
    };
    use fl::*;
    mask.flags = match i.mnemonic() {
        M::And | M::Or | M::Xor | M::Test => AF,
        M::Mul | M::Imul => SF | ZF | AF | PF,
        M::Div | M::Idiv => STATUS,
        M::Shl | M::Sal | M::Shr | M::Sar => {
            let c = count(1);
            let mut u = 0;
            if c != 0 {
                u |= AF;
                if c > 1 {
                    u |= OF;
                }
                if i.mnemonic() != M::Sar && c >= bits {
                    u |= CF;
                }
            }
            u
        }
        M::Rol | M::Ror | M::Rcl | M::Rcr if count(1) > 1 => OF,
        M::Shld | M::Shrd => {
            let c = count(2);
            if c == 0 {
                0
            } else if bits == 16 && c > 16 {
                mask_dest(&mut mask);
                STATUS
            } else if c == 1 {
                AF
            } else {
                OF | AF
            }
        }
        M::Bt | M::Bts | M::Btr | M::Btc => OF | SF | AF | PF,
        M::Bsf | M::Bsr => {
            if operand_value(i, 1, input) & super::gen::mask(size) == 0 {
                mask_dest(&mut mask);
            }
            CF | OF | SF | AF | PF
        }
        M::Tzcnt | M::Lzcnt => OF | SF | AF | PF,
        M::Andn | M::Blsi | M::Blsmsk | M::Blsr | M::Bzhi => AF | PF,
        M::Bextr => AF | SF | PF,
        M::Bswap if size == 2 => {
            mask.gpr[reg_index(i.op_register(0))] |= 0xffff;
            0
        }
        _ => 0,
    };
    mask
}

fn mask_of(r: Register) -> u64 {
    if (Register::AH..=Register::BH).contains(&r) {
        0xff00
    } else {
        super::gen::mask(r.size())
    }
}

/// The six status flags by name.
pub const STATUS_NAMES: [(u64, &str); 6] = [
    (fl::CF, "CF"),
    (fl::PF, "PF"),
    (fl::AF, "AF"),
    (fl::ZF, "ZF"),
    (fl::SF, "SF"),
    (fl::OF, "OF"),
];

const FLAG_NAMES: [(u64, &str); 13] = [
    (fl::CF, "CF"),
    (fl::PF, "PF"),
    (fl::AF, "AF"),
    (fl::ZF, "ZF"),
    (fl::SF, "SF"),
    (fl::TF, "TF"),
    (fl::IF, "IF"),
    (fl::DF, "DF"),
    (fl::OF, "OF"),
    (IOPL, "IOPL"),
    (fl::NT, "NT"),
    (fl::AC, "AC"),
    (fl::ID, "ID"),
];

pub fn flag_names(f: u64) -> String {
    let v: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// The differences between the host and the emulator, empty when they agree.
pub fn compare(host: &Outcome, emu: &Outcome, mask: &Mask) -> Vec<String> {
    let mut d = Vec::new();
    if let Some(n) = &emu.note {
        d.push(n.clone());
    }
    if host.fault != emu.fault {
        d.push(format!(
            "exception: host {} emulator {}",
            vector_text(host.fault),
            vector_text(emu.fault)
        ));
    }
    if host.fault == Some(PF) && emu.fault == Some(PF) && host.fault_addr != emu.fault_addr {
        d.push(format!(
            "#PF address: host {:#x?} emulator {:#x?}",
            host.fault_addr, emu.fault_addr
        ));
    }
    // A fault leaves the state as it was: no masks then.
    let faulted = host.fault.is_some();
    let none = Mask::default();
    let mask = if faulted { &none } else { mask };
    if host.rip != emu.rip {
        d.push(format!("rip: host {:#x} emulator {:#x}", host.rip, emu.rip));
    }
    for (k, name) in GPR_NAMES.iter().enumerate() {
        let diff = (host.gpr[k] ^ emu.gpr[k]) & !mask.gpr[k];
        if diff != 0 {
            d.push(format!(
                "{name}: host {:#018x} emulator {:#018x}",
                host.gpr[k], emu.gpr[k]
            ));
        }
    }
    let fdiff = (host.flags ^ emu.flags) & COMPARED_FLAGS & !mask.flags;
    if fdiff != 0 {
        d.push(format!(
            "rflags: differ in {} (host {:#x} emulator {:#x})",
            flag_names(fdiff),
            host.flags & COMPARED_FLAGS,
            emu.flags & COMPARED_FLAGS
        ));
    }
    let ignored = |addr: u64| {
        mask.mem
            .iter()
            .any(|(a, len)| addr >= *a && addr < a + *len as u64)
    };
    let mut bad = Vec::new();
    for (k, (h, e)) in host.arena.iter().zip(&emu.arena).enumerate() {
        let addr = ARENA_BASE + k as u64;
        if h != e && !ignored(addr) {
            bad.push(format!("[{addr:#x}] host {h:02x} emulator {e:02x}"));
        }
    }
    if !bad.is_empty() {
        let n = bad.len();
        bad.truncate(8);
        d.push(format!("memory ({n} bytes): {}", bad.join(", ")));
    }
    d.extend(super::simd::compare_fx(&host.fx, &emu.fx, mask));
    d
}

pub fn vector_text(v: Option<u8>) -> String {
    match v {
        None => "none".into(),
        Some(0) => "#DE".into(),
        Some(6) => "#UD".into(),
        Some(13) => "#GP".into(),
        Some(14) => "#PF".into(),
        Some(17) => "#AC".into(),
        Some(x) => format!("vector {x}"),
    }
}

pub fn instr_text(i: &iced_x86::Instruction) -> String {
    let mut s = String::new();
    let mut f = IntelFormatter::new();
    f.options_mut().set_uppercase_hex(false);
    f.format(i, &mut s);
    s
}

fn regs_text(g: &[u64; 16]) -> String {
    let mut s = String::new();
    for (k, v) in g.iter().enumerate() {
        s += &format!(
            "{:>3}={v:016x}{}",
            GPR_NAMES[k],
            if k % 4 == 3 { "\n    " } else { " " }
        );
    }
    s
}

/// A full report of one mismatching case: enough to reproduce and debug it.
pub fn describe(
    case: &Case,
    title: &str,
    host: &Outcome,
    emu: &Outcome,
    mask: &Mask,
    diffs: &[String],
) -> String {
    let bytes: Vec<String> = case.bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut s = format!(
        "{title}\n  insn: {}   [{}]   {:?}\n",
        instr_text(&case.instr),
        bytes.join(" "),
        case.instr.code()
    );
    s += &format!(
        "  in:   rflags={:#x} ({})\n    {}\n",
        case.input.flags,
        flag_names(case.input.flags & COMPARED_FLAGS),
        regs_text(&case.input.gpr)
    );
    if super::simd::is_simd(case.code) {
        s += &super::simd::describe_input(&case.instr, &case.input);
    }
    if let Some(a) = mem_address(&case.instr, &case.input) {
        if a >= ARENA_BASE && a + 16 <= ARENA_END && super::simd::is_simd(case.code) {
            let off = (a - ARENA_BASE) as usize;
            let v = u128::from_le_bytes(case.input.arena[off..off + 16].try_into().unwrap());
            s += &format!("  mem operand at {a:#x}: in {v:#034x}\n");
        }
        if a >= ARENA_BASE && a + 8 <= ARENA_END {
            s += &format!(
                "  mem operand at {a:#x}: in {:#018x} host {:#018x} emulator {:#018x}\n",
                case.input.read_mem(a, 8),
                read8(&host.arena, a),
                read8(&emu.arena, a)
            );
        }
    }
    for (name, o) in [("host", host), ("emu", emu)] {
        s += &format!(
            "  {name}: rflags={:#x} ({}) rip={:#x} exception={}\n    {}\n",
            o.flags,
            flag_names(o.flags & COMPARED_FLAGS),
            o.rip,
            vector_text(o.fault),
            regs_text(&o.gpr)
        );
    }
    s += &format!(
        "  ignored: flags {} gpr {:?} mem {:?}\n  differences:\n",
        flag_names(mask.flags),
        mask.gpr
            .iter()
            .enumerate()
            .filter(|(_, m)| **m != 0)
            .map(|(k, m)| format!("{}&{m:#x}", GPR_NAMES[k]))
            .collect::<Vec<_>>(),
        mask.mem
    );
    for d in diffs {
        s += &format!("    {d}\n");
    }
    s
}

fn read8(arena: &[u8], a: u64) -> u64 {
    let off = (a - ARENA_BASE) as usize;
    let mut b = [0u8; 8];
    b.copy_from_slice(&arena[off..off + 8]);
    u64::from_le_bytes(b)
}
