//! Segment descriptors: GDT/LDT lookups and the SDM's checks for loading segment registers
//! (MOV/POP to a segment register, far JMP/CALL/RET, LTR, LLDT), with the selector error
//! codes of #GP, #NP, #SS and #TS.

use super::exception::Exception;
use super::regs::{seg_attr, sys_type, SegReg, Segment};
use super::Cpu;
use crate::bus::Bus;
use crate::mmu::AccessKind;

/// Selector fields.
pub const SEL_RPL_MASK: u16 = 3;
pub const SEL_TI: u16 = 4;

/// Decode a legacy 8-byte descriptor into a segment cache for `sel`.
pub fn segment_from_descriptor(sel: u16, raw: u64) -> Segment {
    let mut limit = ((raw & 0xffff) | ((raw >> 32) & 0xf_0000)) as u32;
    let attr = (((raw >> 40) & 0xff) | (((raw >> 52) & 0xf) << 12)) as u16;
    if attr & seg_attr::G != 0 {
        limit = (limit << 12) | 0xfff;
    }
    let base = ((raw >> 16) & 0xff_ffff) | ((raw >> 32) & 0xff00_0000);
    Segment {
        selector: sel,
        base,
        limit,
        attr,
    }
}

/// An unusable (null) segment for `sel` (0..3).
pub fn null_segment(sel: u16) -> Segment {
    Segment {
        selector: sel,
        base: 0,
        limit: 0,
        attr: 0,
    }
}

impl Cpu {
    /// Linear address of the descriptor for `sel`, checking the table limit.
    fn descriptor_addr(&self, sel: u16, size: u64) -> Result<u64, Exception> {
        let index = (sel & !7) as u64;
        let (base, limit) = if sel & SEL_TI != 0 {
            if !self.ldtr.present() {
                return Err(Exception::gp(sel as u32 & !3));
            }
            (self.ldtr.base, self.ldtr.limit as u64)
        } else {
            (self.gdtr.base, self.gdtr.limit as u64)
        };
        if index + size - 1 > limit {
            return Err(Exception::gp(sel as u32 & !3));
        }
        Ok(base.wrapping_add(index))
    }

    /// Read the 8-byte descriptor named by `sel` (implicit supervisor access).
    pub fn read_descriptor(&mut self, bus: &mut Bus, sel: u16) -> Result<u64, Exception> {
        let la = self.descriptor_addr(sel, 8)?;
        self.read_linear(bus, la, 8, AccessKind::Read, true)
    }

    /// Read the high half of a 16-byte system descriptor (long mode).
    fn read_descriptor_high(&mut self, bus: &mut Bus, sel: u16) -> Result<u64, Exception> {
        let la = self.descriptor_addr(sel, 16)?;
        self.read_linear(bus, la + 8, 8, AccessKind::Read, true)
    }

    /// Set the accessed bit of a code/data descriptor, as the CPU does on a load.
    fn mark_accessed(&mut self, bus: &mut Bus, sel: u16, raw: u64) -> Result<(), Exception> {
        const ACCESSED: u64 = 1 << 40;
        if raw & ACCESSED == 0 {
            let la = self.descriptor_addr(sel, 8)?;
            self.write_linear(bus, la, 8, raw | ACCESSED, true)?;
        }
        Ok(())
    }

    /// MOV/POP to DS, ES, FS, GS or SS (SDM Vol. 2, MOV — protected-mode checks).
    pub fn load_data_segment(
        &mut self,
        bus: &mut Bus,
        seg: SegReg,
        sel: u16,
    ) -> Result<(), Exception> {
        if !self.protected() {
            let s = &mut self.seg[seg as usize];
            s.selector = sel;
            s.base = (sel as u64) << 4;
            return Ok(());
        }
        let err = sel as u32 & !3;
        let rpl = (sel & SEL_RPL_MASK) as u8;
        if sel & !SEL_RPL_MASK == 0 {
            if seg == SegReg::Ss {
                // A null SS is allowed only in 64-bit mode at CPL < 3 with RPL = CPL.
                if !(self.mode64() && self.cpl < 3 && rpl == self.cpl) {
                    return Err(Exception::gp0());
                }
                let mut n = null_segment(sel);
                n.attr = (self.cpl as u16) << seg_attr::DPL_SHIFT | seg_attr::DB;
                self.seg[seg as usize] = n;
                return Ok(());
            }
            self.seg[seg as usize] = null_segment(sel);
            return Ok(());
        }
        let raw = self.read_descriptor(bus, sel)?;
        let d = segment_from_descriptor(sel, raw);
        let code = d.attr & seg_attr::TYPE_CODE != 0;
        let readable_or_writable = d.attr & seg_attr::TYPE_RW != 0;
        if d.attr & seg_attr::S == 0 {
            return Err(Exception::gp(err));
        }
        if seg == SegReg::Ss {
            if rpl != self.cpl || code || !readable_or_writable || d.dpl() != self.cpl {
                return Err(Exception::gp(err));
            }
            if !d.present() {
                return Err(Exception::ss(err));
            }
        } else {
            if code && !readable_or_writable {
                return Err(Exception::gp(err));
            }
            let conforming_code = code && d.attr & seg_attr::TYPE_DC != 0;
            if !conforming_code && (rpl > d.dpl() || self.cpl > d.dpl()) {
                return Err(Exception::gp(err));
            }
            if !d.present() {
                return Err(Exception::np(err));
            }
        }
        self.mark_accessed(bus, sel, raw)?;
        let mut d = d;
        d.attr |= seg_attr::TYPE_ACCESSED;
        self.seg[seg as usize] = d;
        Ok(())
    }

    /// Check and load CS for a far JMP/CALL to a code segment at the current privilege
    /// level (SDM Vol. 2, JMP, "far jump to a conforming/nonconforming code segment").
    /// Returns the new CS contents; the caller commits it.
    pub fn far_code_descriptor(
        &mut self,
        bus: &mut Bus,
        sel: u16,
    ) -> Result<(Segment, u64), Exception> {
        let err = sel as u32 & !3;
        if sel & !SEL_RPL_MASK == 0 {
            return Err(Exception::gp0());
        }
        let raw = self.read_descriptor(bus, sel)?;
        let d = segment_from_descriptor(sel, raw);
        if d.attr & seg_attr::S == 0 {
            // Call gates, task gates and TSS targets are not supported by this model.
            log::warn!("far transfer through system descriptor type {:#x} (selector {sel:#x}) not supported", d.attr & 0xf);
            return Err(Exception::gp(err));
        }
        if !d.is_code() {
            return Err(Exception::gp(err));
        }
        let rpl = (sel & SEL_RPL_MASK) as u8;
        let conforming = d.attr & seg_attr::TYPE_DC != 0;
        if conforming {
            if d.dpl() > self.cpl {
                return Err(Exception::gp(err));
            }
        } else if rpl > self.cpl || d.dpl() != self.cpl {
            return Err(Exception::gp(err));
        }
        if !d.present() {
            return Err(Exception::np(err));
        }
        if self.long_mode() && d.long() && d.db() {
            return Err(Exception::gp(err));
        }
        Ok((d, raw))
    }

    /// Commit a code segment: CS gets RPL = CPL (or `new_cpl`).
    pub fn commit_cs(
        &mut self,
        bus: &mut Bus,
        mut d: Segment,
        raw: u64,
        new_cpl: u8,
    ) -> Result<(), Exception> {
        self.mark_accessed(bus, d.selector, raw)?;
        d.selector = (d.selector & !SEL_RPL_MASK) | new_cpl as u16;
        d.attr |= seg_attr::TYPE_ACCESSED;
        self.seg[SegReg::Cs as usize] = d;
        self.cpl = new_cpl;
        Ok(())
    }

    /// Load a code or stack segment from a selector without the privilege checks (used by
    /// interrupt delivery, IRET and SYSCALL paths that have done their own checks).
    pub fn descriptor_for(&mut self, bus: &mut Bus, sel: u16) -> Result<(Segment, u64), Exception> {
        let raw = self.read_descriptor(bus, sel)?;
        Ok((segment_from_descriptor(sel, raw), raw))
    }

    /// LTR (SDM Vol. 2): load an available TSS and mark it busy.
    pub fn load_task_register(&mut self, bus: &mut Bus, sel: u16) -> Result<(), Exception> {
        let err = sel as u32 & !3;
        if sel & !SEL_RPL_MASK == 0 {
            return Err(Exception::gp0());
        }
        if sel & SEL_TI != 0 {
            return Err(Exception::gp(err));
        }
        let raw = self.read_descriptor(bus, sel)?;
        let mut d = segment_from_descriptor(sel, raw);
        let ty = d.attr & seg_attr::TYPE_MASK;
        let ok_type = if self.long_mode() {
            ty == sys_type::TSS_AVAIL
        } else {
            ty == sys_type::TSS_AVAIL || ty == sys_type::TSS16_AVAIL
        };
        if d.attr & seg_attr::S != 0 || !ok_type {
            return Err(Exception::gp(err));
        }
        if !d.present() {
            return Err(Exception::np(err));
        }
        if self.long_mode() {
            let hi = self.read_descriptor_high(bus, sel)?;
            d.base |= (hi & 0xffff_ffff) << 32;
        }
        // Mark busy in the GDT (type 9 → 11).
        let la = self.descriptor_addr(sel, 8)?;
        self.write_linear(bus, la, 8, raw | (2 << 40), true)?;
        d.attr |= 2;
        self.tr = d;
        Ok(())
    }

    /// LLDT: load the LDT register (a null selector makes it unusable).
    pub fn load_ldt(&mut self, bus: &mut Bus, sel: u16) -> Result<(), Exception> {
        let err = sel as u32 & !3;
        if sel & !SEL_RPL_MASK == 0 {
            self.ldtr = null_segment(sel);
            return Ok(());
        }
        if sel & SEL_TI != 0 {
            return Err(Exception::gp(err));
        }
        let raw = self.read_descriptor(bus, sel)?;
        let mut d = segment_from_descriptor(sel, raw);
        if d.attr & seg_attr::S != 0 || d.attr & seg_attr::TYPE_MASK != sys_type::LDT {
            return Err(Exception::gp(err));
        }
        if !d.present() {
            return Err(Exception::np(err));
        }
        if self.long_mode() {
            let hi = self.read_descriptor_high(bus, sel)?;
            d.base |= (hi & 0xffff_ffff) << 32;
        }
        self.ldtr = d;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_flat_code64() {
        // The classic 64-bit kernel code descriptor.
        let s = segment_from_descriptor(0x08, 0x00af_9a00_0000_ffff);
        assert!(s.long() && s.is_code() && s.present());
        assert_eq!(s.limit, 0xffff_ffff);
        assert_eq!(s.dpl(), 0);
    }
}
