//! Arithmetic, logic, shifts and rotates, multiply/divide, bit scans and tests, atomics
//! (XADD, CMPXCHG*), BMI1/BMI2 and the flag-only instructions.

use super::super::alu::{self, mask, sext, Shift};
use super::super::exception::Exception;
use super::super::regs::rflags::{self, AF, CF, ZF};
use super::{op_size, ExecResult};
use crate::bus::Bus;
use crate::cpu::Cpu;
use iced_x86::{Instruction, Mnemonic as M, OpKind, Register};

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let m = i.mnemonic();
    match m {
        M::Add | M::Adc | M::Sub | M::Sbb | M::And | M::Or | M::Xor => {
            let size = op_size(i, 0);
            let a = cpu.read_op_rmw(bus, i, 0)?;
            let b = cpu.read_op(bus, i, 1)?;
            let cf = cpu.flag(CF);
            let (r, f) = match m {
                M::Add => alu::add(a, b, false, size),
                M::Adc => alu::add(a, b, cf, size),
                M::Sub => alu::sub(a, b, false, size),
                M::Sbb => alu::sub(a, b, cf, size),
                M::And => alu::logic(a & b, size),
                M::Or => alu::logic(a | b, size),
                _ => alu::logic(a ^ b, size),
            };
            cpu.write_op(bus, i, 0, r)?;
            cpu.set_status(f);
        }
        M::Cmp | M::Test => {
            let size = op_size(i, 0);
            let a = cpu.read_op(bus, i, 0)?;
            let b = cpu.read_op(bus, i, 1)?;
            let f = if m == M::Cmp {
                alu::sub(a, b, false, size).1
            } else {
                alu::logic(a & b, size).1
            };
            cpu.set_status(f);
        }
        M::Inc | M::Dec | M::Neg | M::Not => {
            let size = op_size(i, 0);
            let a = cpu.read_op_rmw(bus, i, 0)?;
            match m {
                M::Inc | M::Dec => {
                    let (r, f) = if m == M::Inc {
                        alu::inc(a, size)
                    } else {
                        alu::dec(a, size)
                    };
                    cpu.write_op(bus, i, 0, r)?;
                    cpu.set_status_masked(f, rflags::STATUS & !CF);
                }
                M::Neg => {
                    let (r, f) = alu::neg(a, size);
                    cpu.write_op(bus, i, 0, r)?;
                    cpu.set_status(f);
                }
                _ => cpu.write_op(bus, i, 0, !a & mask(size))?,
            }
        }
        M::Mul | M::Imul if i.op_count() == 1 => mul_div_1op(cpu, bus, i)?,
        M::Div | M::Idiv => mul_div_1op(cpu, bus, i)?,
        M::Imul => {
            // Two- and three-operand forms: dst = trunc(src1 * src2).
            let size = op_size(i, 0);
            let (a, b) = if i.op_count() == 3 {
                (cpu.read_op(bus, i, 1)?, i.immediate(2))
            } else {
                (cpu.read_op(bus, i, 0)?, cpu.read_op(bus, i, 1)?)
            };
            let (lo, _, f) = alu::imul(a, b, size);
            cpu.set_reg(i.op_register(0), lo);
            cpu.set_status(f & !AF);
        }
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => {
            let size = op_size(i, 0);
            let raw = if i.op_count() > 1 {
                cpu.read_op(bus, i, 1)?
            } else {
                1
            };
            let count = raw as u32 & alu::count_mask(size);
            let a = cpu.read_op_rmw(bus, i, 0)?;
            if count == 0 {
                // Masked count 0: no result change, no flags (the write still happens).
                return cpu.write_op(bus, i, 0, a);
            }
            let kind = match m {
                M::Shl | M::Sal => Shift::Shl,
                M::Shr => Shift::Shr,
                M::Sar => Shift::Sar,
                M::Rol => Shift::Rol,
                M::Ror => Shift::Ror,
                M::Rcl => Shift::Rcl,
                _ => Shift::Rcr,
            };
            let (r, f) = alu::shift(kind, a, count, size, cpu.rflags);
            cpu.write_op(bus, i, 0, r)?;
            cpu.set_status(f);
        }
        M::Shld | M::Shrd => {
            let size = op_size(i, 0);
            let count = cpu.read_op(bus, i, 2)? as u32 & alu::count_mask(size);
            let d = cpu.read_op_rmw(bus, i, 0)?;
            if count == 0 {
                return cpu.write_op(bus, i, 0, d);
            }
            let s = cpu.read_op(bus, i, 1)?;
            let (r, f) = alu::shld_shrd(m == M::Shld, d, s, count, size);
            cpu.write_op(bus, i, 0, r)?;
            cpu.set_status(f);
        }
        M::Bt | M::Bts | M::Btr | M::Btc => bit_test(cpu, bus, i)?,
        M::Bsf | M::Bsr => {
            let size = op_size(i, 0);
            let s = cpu.read_op(bus, i, 1)? & mask(size);
            if s == 0 {
                // Destination unchanged (AMD documents it; Intel parts behave so).
                cpu.set_status_masked(ZF, ZF);
            } else {
                let r = if m == M::Bsf {
                    s.trailing_zeros() as u64
                } else {
                    63 - s.leading_zeros() as u64
                };
                cpu.set_reg(i.op_register(0), r);
                // Only ZF is defined; the other status flags are left unchanged.
                cpu.set_status_masked(0, ZF);
            }
        }
        M::Tzcnt | M::Lzcnt | M::Popcnt => {
            let size = op_size(i, 0);
            let s = cpu.read_op(bus, i, 1)? & mask(size);
            let bits = size * 8;
            let r = match m {
                M::Tzcnt => {
                    if s == 0 {
                        bits
                    } else {
                        s.trailing_zeros()
                    }
                }
                M::Lzcnt => {
                    if s == 0 {
                        bits
                    } else {
                        s.leading_zeros() - (64 - bits)
                    }
                }
                _ => s.count_ones(),
            } as u64;
            cpu.set_reg(i.op_register(0), r);
            let f = match m {
                M::Popcnt => {
                    if s == 0 {
                        ZF
                    } else {
                        0
                    }
                }
                // ZF (result 0) and CF (source 0) are defined; the undefined SF and PF
                // come from the result, AF and OF are 0 (ARCHITECTURE.md, "Undefined
                // flags policy").
                _ => (if s == 0 { CF } else { 0 }) | alu::szp(r, size),
            };
            cpu.set_status(f);
        }
        M::Bswap => {
            let r = i.op_register(0);
            let v = cpu.reg(r);
            let out = if r.size() == 8 {
                v.swap_bytes()
            } else if r.size() == 4 {
                (v as u32).swap_bytes() as u64
            } else {
                // BSWAP of a 16-bit register is undefined; hardware gives 0.
                0
            };
            cpu.set_reg(r, out);
        }
        M::Xadd => {
            // TEMP <- SRC + DEST; SRC <- DEST; DEST <- TEMP: with one register as both
            // operands the sum wins. A memory destination is written first, so a fault
            // leaves the source register alone.
            let size = op_size(i, 0);
            let d = cpu.read_op_rmw(bus, i, 0)?;
            let s = cpu.reg(i.op_register(1));
            let (r, f) = alu::add(d, s, false, size);
            if i.op_kind(0) == OpKind::Memory {
                cpu.write_op(bus, i, 0, r)?;
                cpu.set_reg(i.op_register(1), d);
            } else {
                cpu.set_reg(i.op_register(1), d);
                cpu.write_op(bus, i, 0, r)?;
            }
            cpu.set_status(f);
        }
        M::Cmpxchg => {
            let size = op_size(i, 0);
            let acc_reg = match size {
                1 => Register::AL,
                2 => Register::AX,
                4 => Register::EAX,
                _ => Register::RAX,
            };
            let d = cpu.read_op_rmw(bus, i, 0)?;
            let acc = cpu.reg(acc_reg);
            let f = alu::sub(acc, d, false, size).1;
            if f & ZF != 0 {
                let s = cpu.reg(i.op_register(1));
                cpu.write_op(bus, i, 0, s)?;
            } else {
                // A memory destination gets a write cycle with its own value (SDM:
                // "DEST <- TEMP"). A register destination is not written at all, so a
                // 32-bit one keeps bits 63:32, as on hardware (tests/diff_cpu.rs checks
                // it against the host CPU). Then the accumulator is loaded.
                if i.op_kind(0) == OpKind::Memory {
                    cpu.write_op(bus, i, 0, d)?;
                }
                cpu.set_reg(acc_reg, d);
            }
            cpu.set_status(f);
        }
        M::Cmpxchg8b | M::Cmpxchg16b => {
            let wide = m == M::Cmpxchg16b;
            let half = if wide { 8 } else { 4 };
            let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
            if wide {
                let la = cpu.linear(seg, off, 16, true)?;
                if la & 15 != 0 {
                    return Err(Exception::gp0());
                }
            }
            let lo = cpu.read_mem_rmw(bus, seg, off, half)?;
            let hi = cpu.read_mem_rmw(bus, seg, off + half as u64, half)?;
            let hm = mask(half);
            let (ax, dx, bx, cx) = (
                cpu.gpr[0] & hm,
                cpu.gpr[2] & hm,
                cpu.gpr[3] & hm,
                cpu.gpr[1] & hm,
            );
            if lo == ax && hi == dx {
                cpu.write_mem(bus, seg, off, half, bx)?;
                cpu.write_mem(bus, seg, off + half as u64, half, cx)?;
                cpu.set_status_masked(ZF, ZF);
            } else {
                cpu.write_mem(bus, seg, off, half, lo)?;
                cpu.write_mem(bus, seg, off + half as u64, half, hi)?;
                let (ra, rd) = if wide {
                    (Register::RAX, Register::RDX)
                } else {
                    (Register::EAX, Register::EDX)
                };
                cpu.set_reg(ra, lo);
                cpu.set_reg(rd, hi);
                cpu.set_status_masked(0, ZF);
            }
        }
        M::Andn
        | M::Bextr
        | M::Blsi
        | M::Blsmsk
        | M::Blsr
        | M::Bzhi
        | M::Pdep
        | M::Pext
        | M::Sarx
        | M::Shlx
        | M::Shrx
        | M::Rorx
        | M::Mulx => bmi(cpu, bus, i)?,
        M::Cmc => cpu.rflags ^= CF,
        M::Clc => cpu.set_flag(CF, false),
        M::Stc => cpu.set_flag(CF, true),
        M::Cld => cpu.set_flag(rflags::DF, false),
        M::Std => cpu.set_flag(rflags::DF, true),
        _ => return Err(cpu.unimplemented(i)),
    }
    Ok(())
}

/// MUL, one-operand IMUL, DIV and IDIV on the accumulator pair.
fn mul_div_1op(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let size = op_size(i, 0);
    let src = cpu.read_op(bus, i, 0)?;
    let (lo_in, hi_in) = if size == 1 {
        (cpu.gpr[0] & 0xff, (cpu.gpr[0] >> 8) & 0xff)
    } else {
        (cpu.gpr[0], cpu.gpr[2])
    };
    let m = i.mnemonic();
    let (lo, hi) = match m {
        M::Mul | M::Imul => {
            let (lo, hi, f) = if m == M::Mul {
                alu::mul(lo_in, src, size)
            } else {
                alu::imul(lo_in, src, size)
            };
            cpu.set_status(f & !AF);
            (lo, hi)
        }
        _ => {
            let r = if m == M::Div {
                alu::div(lo_in, hi_in, src, size)
            } else {
                alu::idiv(lo_in, hi_in, src, size)
            };
            // Flags after DIV/IDIV are undefined; this model leaves them unchanged.
            r.ok_or_else(Exception::de)?
        }
    };
    match size {
        1 => cpu.set_reg(Register::AX, (hi << 8) | lo),
        2 => {
            cpu.set_reg(Register::AX, lo);
            cpu.set_reg(Register::DX, hi);
        }
        4 => {
            cpu.set_reg(Register::EAX, lo);
            cpu.set_reg(Register::EDX, hi);
        }
        _ => {
            cpu.gpr[0] = lo;
            cpu.gpr[2] = hi;
        }
    }
    Ok(())
}

/// BT/BTS/BTR/BTC. With a register bit offset and a memory operand the offset is signed
/// and selects a word anywhere relative to the operand (SDM "Bit(BitBase, BitOffset)").
fn bit_test(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let size = op_size(i, 0);
    let bits = size as u64 * 8;
    let m = i.mnemonic();
    let offset = cpu.read_op(bus, i, 1)?;
    let write = m != M::Bt;
    let (val, bit, mem_off) = if i.op_kind(0) == OpKind::Memory {
        let (bit, disp) = if i.op_kind(1) == OpKind::Register {
            let signed = sext(offset, size) as i64;
            (
                signed.rem_euclid(bits as i64) as u64,
                signed.div_euclid(bits as i64) * size as i64,
            )
        } else {
            (offset & (bits - 1), 0)
        };
        let off = cpu.ea(i).wrapping_add(disp as u64);
        let seg = cpu.mem_seg(i);
        let v = if write {
            cpu.read_mem_rmw(bus, seg, off, size)?
        } else {
            cpu.read_mem(bus, seg, off, size)?
        };
        (v, bit, Some((seg, off)))
    } else {
        (cpu.read_op(bus, i, 0)?, offset & (bits - 1), None)
    };
    let cf = (val >> bit) & 1 != 0;
    let new = match m {
        M::Bts => val | (1 << bit),
        M::Btr => val & !(1 << bit),
        M::Btc => val ^ (1 << bit),
        _ => val,
    };
    if write {
        match mem_off {
            Some((seg, off)) => cpu.write_mem(bus, seg, off, size, new)?,
            None => cpu.set_reg(i.op_register(0), new),
        }
    }
    cpu.set_flag(CF, cf);
    Ok(())
}

/// BMI1/BMI2 (VEX-encoded, three-operand, mostly flag-less).
fn bmi(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let size = op_size(i, 0);
    let bits = size * 8;
    let msk = mask(size);
    let m = i.mnemonic();
    let dst = i.op_register(0);
    match m {
        M::Andn => {
            let a = cpu.reg(i.op_register(1));
            let b = cpu.read_op(bus, i, 2)?;
            let r = !a & b & msk;
            cpu.set_reg(dst, r);
            // SF, ZF from the result, CF = OF = 0; undefined PF from the result, AF 0.
            cpu.set_status(alu::szp(r, size));
        }
        M::Bextr => {
            let src = cpu.read_op(bus, i, 1)? & msk;
            let ctl = cpu.reg(i.op_register(2));
            let start = (ctl & 0xff) as u32;
            let len = ((ctl >> 8) & 0xff) as u32;
            let shifted = if start >= bits { 0 } else { src >> start };
            let r = if len >= 64 {
                shifted
            } else {
                shifted & ((1u64 << len) - 1)
            } & msk;
            cpu.set_reg(dst, r);
            // ZF defined, CF = OF = 0; undefined SF and PF from the result, AF 0.
            cpu.set_status(alu::szp(r, size));
        }
        M::Blsi | M::Blsmsk | M::Blsr => {
            let s = cpu.read_op(bus, i, 1)? & msk;
            let r = match m {
                M::Blsi => s & s.wrapping_neg(),
                M::Blsmsk => s ^ s.wrapping_sub(1),
                _ => s & s.wrapping_sub(1),
            } & msk;
            cpu.set_reg(dst, r);
            let cf = match m {
                M::Blsi => s != 0,
                _ => s == 0,
            };
            // SF, ZF, CF defined (BLSMSK clears ZF), OF = 0; undefined PF from the
            // result, AF 0.
            let mut f = alu::szp(r, size);
            if m == M::Blsmsk {
                f &= !ZF;
            }
            cpu.set_status(f | if cf { CF } else { 0 });
        }
        M::Bzhi => {
            let s = cpu.read_op(bus, i, 1)? & msk;
            let n = (cpu.reg(i.op_register(2)) & 0xff) as u32;
            let r = if n >= bits { s } else { s & ((1u64 << n) - 1) };
            cpu.set_reg(dst, r);
            // SF, ZF, CF defined, OF = 0; undefined PF from the result, AF 0.
            let f = alu::szp(r, size) | if n > bits - 1 { CF } else { 0 };
            cpu.set_status(f);
        }
        M::Pdep | M::Pext => {
            let s = cpu.reg(i.op_register(1)) & msk;
            let mk = cpu.read_op(bus, i, 2)? & msk;
            let mut r = 0u64;
            let mut k = 0;
            for b in 0..bits {
                if mk & (1 << b) != 0 {
                    if m == M::Pdep {
                        if s & (1 << k) != 0 {
                            r |= 1 << b;
                        }
                    } else if s & (1 << b) != 0 {
                        r |= 1 << k;
                    }
                    k += 1;
                }
            }
            cpu.set_reg(dst, r);
        }
        M::Sarx | M::Shlx | M::Shrx => {
            let s = cpu.read_op(bus, i, 1)? & msk;
            let c = (cpu.reg(i.op_register(2)) as u32) & (bits - 1);
            let r = match m {
                M::Sarx => ((sext(s, size) as i64) >> c) as u64,
                M::Shlx => s << c,
                _ => s >> c,
            } & msk;
            cpu.set_reg(dst, r);
        }
        M::Rorx => {
            let s = cpu.read_op(bus, i, 1)? & msk;
            let c = (i.immediate(2) as u32) & (bits - 1);
            let r = if c == 0 {
                s
            } else {
                ((s >> c) | (s << (bits - c))) & msk
            };
            cpu.set_reg(dst, r);
        }
        _ => {
            // MULX: dst_hi:dst_lo = EDX/RDX * src, no flags.
            let s = cpu.read_op(bus, i, 2)? & msk;
            let d = cpu.gpr[2] & msk;
            let wide = d as u128 * s as u128;
            let lo = (wide as u64) & msk;
            let hi = ((wide >> bits) as u64) & msk;
            cpu.set_reg(i.op_register(1), lo);
            cpu.set_reg(dst, hi);
        }
    }
    Ok(())
}
