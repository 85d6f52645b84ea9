//! SSE4.2 (SDM Vol. 2, 4.1 for the string and text instructions): PCMPESTRI/PCMPESTRM/
//! PCMPISTRI/PCMPISTRM, PCMPGTQ and CRC32 (CRC-32C on general registers).

use super::super::regs::{gpr, rflags};
use super::super::Cpu;
use super::int::{build, lane, map2, sx};
use super::{xmm_index, ExecResult};
use crate::bus::Bus;
use iced_x86::{Instruction, Mnemonic as M, OpKind};

/// The SSE4.2 mnemonics (every legacy form of each is executed here).
pub const IMPLEMENTED: &[M] = &[
    M::Pcmpestri,
    M::Pcmpestri64,
    M::Pcmpestrm,
    M::Pcmpestrm64,
    M::Pcmpistri,
    M::Pcmpistrm,
    M::Pcmpgtq,
    M::Crc32,
];

/// Whether `m` is executed here.
pub fn handles(m: M) -> bool {
    IMPLEMENTED.contains(&m)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `bytes` low bytes of `v`,
/// starting from `crc`.
fn crc32c(mut crc: u32, v: u64, bytes: u32) -> u32 {
    for k in 0..bytes {
        crc ^= (v >> (8 * k)) as u8 as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
        }
    }
    crc
}

/// The result of a packed string comparison: IntRes2 and the two operands' lengths.
fn compare_strings(a: u128, b: u128, imm: u32, la: u32, lb: u32) -> u32 {
    let words = imm & 1 != 0;
    let signed = imm & 2 != 0;
    let (bits, n) = if words { (16, 8) } else { (8, 16) };
    let el = |v: u128, k: u32| -> i64 {
        let x = lane(v, bits, k);
        if signed {
            sx(x, bits)
        } else {
            x as i64
        }
    };
    let agg = (imm >> 2) & 3;
    let mut r1 = 0u32;
    for j in 0..n {
        let hit = match agg {
            // Equal any: b[j] is one of a's valid elements.
            0 => j < lb && (0..la).any(|i| el(a, i) == el(b, j)),
            // Ranges: a holds (low, high) pairs.
            1 => {
                j < lb
                    && (0..n / 2).any(|p| {
                        let (lo, hi) = (2 * p, 2 * p + 1);
                        hi < la && el(b, j) >= el(a, lo) && el(b, j) <= el(a, hi)
                    })
            }
            // Equal each: both invalid is a match, one invalid is not.
            2 => match (j < la, j < lb) {
                (true, true) => el(a, j) == el(b, j),
                (false, false) => true,
                _ => false,
            },
            // Equal ordered: a (up to its length) occurs in b at j.
            _ => (0..n - j).all(|k| {
                if k >= la {
                    true
                } else if j + k >= lb {
                    false
                } else {
                    el(a, k) == el(b, j + k)
                }
            }),
        };
        r1 |= (hit as u32) << j;
    }
    let all = (1u32 << n) - 1;
    let valid_b = (1u32 << lb) - 1;
    match (imm >> 4) & 3 {
        1 => !r1 & all,
        3 => (r1 ^ valid_b) & all,
        _ => r1,
    }
}

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let m = i.mnemonic();
    match m {
        M::Crc32 => {
            let src_bytes = match i.op_kind(1) {
                OpKind::Register => i.op_register(1).size() as u32,
                _ => i.memory_size().size() as u32,
            };
            let v = cpu.read_op(bus, i, 1)?;
            let crc = crc32c(cpu.reg(i.op_register(0)) as u32, v, src_bytes);
            // A 64-bit destination gets the zero-extended CRC.
            cpu.set_reg(i.op_register(0).full_register(), crc as u64);
            Ok(())
        }
        M::Pcmpgtq => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            cpu.fpu.xmm[d0] = map2(
                d,
                s,
                64,
                |a, b| {
                    if (a as i64) > (b as i64) {
                        u64::MAX
                    } else {
                        0
                    }
                },
            );
            Ok(())
        }
        _ => {
            let b = cpu.xmm_src(bus, i, 1)?;
            let a = cpu.fpu.xmm[xmm_index(i.op_register(0))];
            let imm = i.immediate(2) as u32;
            let words = imm & 1 != 0;
            let n: u32 = if words { 8 } else { 16 };
            let bits = if words { 16 } else { 8 };
            let explicit = matches!(
                m,
                M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64
            );
            let wide = matches!(m, M::Pcmpestri64 | M::Pcmpestrm64);
            let len = |cpu: &Cpu, r: usize, v: u128| -> u32 {
                if explicit {
                    let x = cpu.gpr[r];
                    let abs = if wide {
                        (x as i64).unsigned_abs()
                    } else {
                        (x as i32).unsigned_abs() as u64
                    };
                    abs.min(n as u64) as u32
                } else {
                    (0..n).find(|&k| lane(v, bits, k) == 0).unwrap_or(n)
                }
            };
            let la = len(cpu, gpr::RAX, a);
            let lb = len(cpu, gpr::RDX, b);
            let r2 = compare_strings(a, b, imm, la, lb);
            let msb_first = imm & 0x40 != 0;
            if matches!(m, M::Pcmpestri | M::Pcmpestri64 | M::Pcmpistri) {
                let idx = if r2 == 0 {
                    n
                } else if msb_first {
                    31 - r2.leading_zeros()
                } else {
                    r2.trailing_zeros()
                };
                cpu.gpr[gpr::RCX] = idx as u64;
            } else {
                cpu.fpu.xmm[0] = if msb_first {
                    build(bits, |k| if r2 & (1 << k) != 0 { u64::MAX } else { 0 })
                } else {
                    r2 as u128
                };
            }
            let all = rflags::CF | rflags::PF | rflags::AF | rflags::ZF | rflags::SF | rflags::OF;
            let mut f = 0;
            if r2 != 0 {
                f |= rflags::CF;
            }
            if lb < n {
                f |= rflags::ZF;
            }
            if la < n {
                f |= rflags::SF;
            }
            if r2 & 1 != 0 {
                f |= rflags::OF;
            }
            cpu.rflags = (cpu.rflags & !all) | f;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC-32C check value of "123456789" (with the customary pre- and
    /// post-inversion, which CRC32 leaves to software).
    #[test]
    fn crc32c_check_value() {
        let crc = b"123456789"
            .iter()
            .fold(!0u32, |c, &b| crc32c(c, b as u64, 1));
        assert_eq!(!crc, 0xe306_9283);
        // Wider sources process their bytes from the least significant one.
        let word = u32::from_le_bytes(*b"1234") as u64;
        assert_eq!(
            crc32c(!0, word, 4),
            b"1234".iter().fold(!0u32, |c, &b| crc32c(c, b as u64, 1))
        );
    }

    /// PCMPISTRI-style searches: equal any finds the first character of a set, equal
    /// ordered finds a substring, ranges a character class; lengths stop at the end.
    #[test]
    fn string_compares() {
        let s = |t: &[u8]| {
            let mut b = [0u8; 16];
            b[..t.len()].copy_from_slice(t);
            u128::from_le_bytes(b)
        };
        // Equal any, unsigned bytes: "lo" in "hello" -> bits 2, 3, 4.
        assert_eq!(compare_strings(s(b"lo"), s(b"hello"), 0x00, 2, 5), 0b11100);
        // Ranges: 'a'..'z' in "aB1z" -> bits 0 and 3.
        assert_eq!(compare_strings(s(b"az"), s(b"aB1z"), 0x04, 2, 4), 0b1001);
        // Equal ordered: "ll" in "hello" at 2 (and a partial match at the end, 4..: "o"
        // does not match 'l').
        assert_eq!(
            compare_strings(s(b"ll"), s(b"hello"), 0x0c, 2, 5) & 0x1f,
            0b00100
        );
        // Equal each with masked negative polarity: the valid positions are inverted
        // (only the differing one is set), past both ends "both invalid" stays a match.
        assert_eq!(compare_strings(s(b"abc"), s(b"abd"), 0x38, 3, 3), 0xfffc);
    }
}
