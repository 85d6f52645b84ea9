//! Exception and interrupt delivery (SDM Vol. 3A, chapter 6): the IDT lookup and gate
//! checks, the privilege-change stack switch to TSS.RSP0 or an IST stack, the interrupt
//! frame, the #DF escalation rules (Table 6-5) and shutdown on a triple fault. Every
//! delivery is recorded as a hardware trace event.

use crate::bus::Bus;
use crate::cpu::exception::{idt_error_code, vector, vector_name, Exception, ExceptionClass};
use crate::cpu::regs::{rflags, seg_attr, sys_type, SegReg, Segment};
use crate::cpu::segment::segment_from_descriptor;
use crate::cpu::{Cpu, CpuStop};
use crate::mmu::AccessKind;
use crate::trace::{FaultEvent, TraceEvent};

/// How an event reached the CPU: it decides the EXT bit, the gate-DPL check and which RIP
/// is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// An exception raised by an instruction or by delivery (EXT = 1).
    Exception,
    /// An external interrupt or NMI (EXT = 1).
    External,
    /// INT n, INT3, INTO: the gate DPL is checked against CPL (EXT = 0).
    Software,
    /// INT1 (ICEBP): no DPL check, EXT = 1.
    Icebp,
}

/// Offsets in the 64-bit TSS (SDM Vol. 3A, Figure 8-11).
const TSS64_RSP0: u64 = 4;
const TSS64_IST1: u64 = 0x24;
/// Minimum limit of a 64-bit TSS.
const TSS64_MIN_LIMIT: u32 = 0x67;

/// RF in the RFLAGS image an event pushes: set for fault-class exceptions, so that the
/// faulting instruction, restarted by IRET, does not raise an instruction-breakpoint #DB
/// again (SDM vol. 3, 18.3.1.1), except for #DB itself; clear for traps, aborts,
/// interrupts and INT n. (kvm-unit-tests' idt_test checks it for #GP and #UD.)
fn pushed_rf(vec: u8, source: EventSource) -> u64 {
    use crate::cpu::exception::vector as v;
    const FAULTS: [u8; 14] = [
        v::DE,
        v::BR,
        v::UD,
        v::NM,
        v::TS,
        v::NP,
        v::SS,
        v::GP,
        v::PF,
        v::MF,
        v::AC,
        v::XM,
        20,
        21,
    ];
    if source == EventSource::Exception && FAULTS.contains(&vec) {
        rflags::RF
    } else {
        0
    }
}

impl Cpu {
    /// Deliver an exception raised while executing at `self.rip`, applying the double-fault
    /// rules. `Err` means the CPU shut down.
    pub fn deliver_exception(&mut self, bus: &mut Bus, e: Exception) -> Result<(), CpuStop> {
        let mut current = e;
        let mut first: Option<Exception> = None;
        loop {
            match self.deliver(bus, current, EventSource::Exception, self.rip) {
                Ok(()) => return Ok(()),
                Err(second) => {
                    if current.vector == vector::DF {
                        return Err(CpuStop::TripleFault {
                            first: first.unwrap_or(current),
                            second: current,
                            third: second,
                        });
                    }
                    first.get_or_insert(current);
                    let (c1, c2) = (current.class(), second.class());
                    let double = matches!(
                        (c1, c2),
                        (ExceptionClass::Contributory, ExceptionClass::Contributory)
                            | (ExceptionClass::PageFault, ExceptionClass::Contributory)
                            | (ExceptionClass::PageFault, ExceptionClass::PageFault)
                    );
                    current = if double {
                        Exception::with_code(vector::DF, 0)
                    } else {
                        second
                    };
                }
            }
        }
    }

    /// Deliver an external interrupt (or NMI): the return RIP is the next instruction.
    pub fn deliver_external(&mut self, bus: &mut Bus, vec: u8) -> Result<(), CpuStop> {
        self.halted = false;
        match self.deliver(bus, Exception::new(vec), EventSource::External, self.rip) {
            Ok(()) => Ok(()),
            Err(e) => self.deliver_exception(bus, e),
        }
    }

    /// Deliver INT n / INT3 / INTO / INT1 from an instruction; `next_rip` is pushed.
    pub fn software_interrupt(
        &mut self,
        bus: &mut Bus,
        vec: u8,
        source: EventSource,
        next_rip: u64,
    ) -> Result<(), Exception> {
        self.deliver(bus, Exception::new(vec), source, next_rip)
    }

    /// One delivery attempt, recorded as a fault-trace event whether or not it completes.
    /// A fault during it is returned for the caller's escalation.
    fn deliver(
        &mut self,
        bus: &mut Bus,
        e: Exception,
        source: EventSource,
        return_rip: u64,
    ) -> Result<(), Exception> {
        let before = (
            self.seg[SegReg::Cs as usize].selector,
            self.cpl,
            self.gpr[4],
        );
        let r = self.deliver_attempt(bus, e, source, return_rip);
        self.record_delivery(bus, e, source, return_rip, before, r.as_ref().ok().copied());
        r.map(|_| ())
    }

    /// The delivery proper; on success returns the IST index used (0: none).
    fn deliver_attempt(
        &mut self,
        bus: &mut Bus,
        e: Exception,
        source: EventSource,
        return_rip: u64,
    ) -> Result<u8, Exception> {
        let vec = e.vector;
        let external = source != EventSource::Software;
        let idt_err = idt_error_code(vec, external);
        if vec == vector::PF {
            if let Some(a) = e.cr2 {
                self.cr2 = a;
            }
        }
        if !self.long_mode() {
            return self
                .deliver_protected(bus, e, source, return_rip)
                .map(|()| 0);
        }
        // IDT entry (16 bytes in long mode).
        let off = vec as u64 * 16;
        if off + 15 > self.idtr.limit as u64 {
            return Err(Exception::gp(idt_err));
        }
        let la = self.idtr.base.wrapping_add(off);
        let lo = self.read_linear(bus, la, 8, AccessKind::Read, true)?;
        let hi = self.read_linear(bus, la + 8, 8, AccessKind::Read, true)?;
        let gate_type = ((lo >> 40) & 0xf) as u16;
        let gate_dpl = ((lo >> 45) & 3) as u8;
        let present = lo & (1 << 47) != 0;
        if gate_type != sys_type::INTR_GATE && gate_type != sys_type::TRAP_GATE {
            return Err(Exception::gp(idt_err));
        }
        if source == EventSource::Software && gate_dpl < self.cpl {
            return Err(Exception::gp(idt_err));
        }
        if !present {
            return Err(Exception::np(idt_err));
        }
        let target_sel = ((lo >> 16) & 0xffff) as u16;
        let target = (lo & 0xffff) | ((lo >> 32) & 0xffff_0000) | (hi << 32);
        let ist = ((lo >> 32) & 7) as u8;
        let ext = if external { 1 } else { 0 };

        // Target code segment: 64-bit, DPL <= CPL, present.
        if target_sel & !3 == 0 {
            return Err(Exception::gp(ext));
        }
        let raw = self.read_descriptor(bus, target_sel).map_err(|x| {
            if x.vector == vector::GP {
                Exception::gp((target_sel as u32 & !3) | ext)
            } else {
                x
            }
        })?;
        let cs = segment_from_descriptor(target_sel, raw);
        let sel_err = (target_sel as u32 & !3) | ext;
        if !cs.is_code() || !cs.long() || cs.db() || cs.dpl() > self.cpl {
            return Err(Exception::gp(sel_err));
        }
        if !cs.present() {
            return Err(Exception::np(sel_err));
        }
        let conforming = cs.attr & seg_attr::TYPE_DC != 0;
        let new_cpl = if conforming { self.cpl } else { cs.dpl() };

        // Stack: IST if named, else RSP0..2 on a privilege change, else the current stack.
        let old_ss = self.seg[SegReg::Ss as usize].selector;
        let old_rsp = self.gpr[4];
        let mut rsp = if ist != 0 {
            self.read_tss(bus, TSS64_IST1 + 8 * (ist as u64 - 1))?
        } else if new_cpl < self.cpl {
            self.read_tss(bus, TSS64_RSP0 + 8 * new_cpl as u64)?
        } else {
            old_rsp
        };
        rsp &= !0xf; // 64-bit mode aligns the frame to 16 bytes (SDM 6.14.2).
        if !crate::addr::GuestVirtAddr(rsp.wrapping_sub(48)).is_canonical48()
            || !crate::addr::GuestVirtAddr(rsp).is_canonical48()
        {
            return Err(Exception::ss(ext));
        }
        let old_cpl = self.cpl;
        let old_cs = self.seg[SegReg::Cs as usize].selector;
        let mut frame = vec![
            old_ss as u64,
            old_rsp,
            self.rflags | pushed_rf(vec, source),
            old_cs as u64,
            return_rip,
        ];
        if let Some(code) = e.error_code {
            frame.push(code as u64);
        }
        // Pushes are implicit supervisor writes at the new privilege level.
        let saved_cpl = self.cpl;
        self.cpl = new_cpl;
        let mut p = rsp;
        for v in &frame {
            p = p.wrapping_sub(8);
            if let Err(x) = self.write_linear(bus, p, 8, *v, true) {
                self.cpl = saved_cpl;
                return Err(x);
            }
        }
        // Commit.
        self.gpr[4] = p;
        if new_cpl != old_cpl {
            let mut ss = Segment {
                selector: new_cpl as u16,
                base: 0,
                limit: 0,
                attr: 0,
            };
            ss.attr = (new_cpl as u16) << seg_attr::DPL_SHIFT | seg_attr::DB;
            self.seg[SegReg::Ss as usize] = ss;
        }
        let mut cs = cs;
        cs.selector = (target_sel & !3) | new_cpl as u16;
        self.seg[SegReg::Cs as usize] = cs;
        self.rip = target;
        self.rflags &= !(rflags::TF | rflags::NT | rflags::RF | rflags::VM);
        if gate_type == sys_type::INTR_GATE {
            self.rflags &= !rflags::IF;
        }
        if vec == vector::NMI && source == EventSource::External {
            self.nmi_blocked = true;
        }
        self.halted = false;
        Ok(ist)
    }

    fn read_tss(&mut self, bus: &mut Bus, off: u64) -> Result<u64, Exception> {
        let tr = self.tr;
        let err = tr.selector as u32 & !3;
        if !tr.present() || tr.limit < TSS64_MIN_LIMIT || off + 7 > tr.limit as u64 {
            return Err(Exception::ts(err));
        }
        self.read_linear(bus, tr.base.wrapping_add(off), 8, AccessKind::Read, true)
    }

    /// Real-address mode (SDM vol. 2, INT n, "REAL-ADDRESS-MODE"): the 4-byte vector
    /// (offset, segment) at IDTR.base + 4 * vector; FLAGS, CS and IP pushed as words (no
    /// error code); IF, TF and AC cleared.
    fn deliver_real(&mut self, bus: &mut Bus, vec: u8, return_rip: u64) -> Result<(), Exception> {
        const IVT_ENTRY: u64 = 4;
        let off = vec as u64 * IVT_ENTRY;
        if off + IVT_ENTRY - 1 > self.idtr.limit as u64 {
            return Err(Exception::gp(idt_error_code(vec, false)));
        }
        let la = self.idtr.base.wrapping_add(off);
        let entry = self.read_linear(bus, la, 4, AccessKind::Read, true)?;
        // Write the three words below SP before anything changes (a fault leaves SP).
        let sp_mask = crate::cpu::alu::mask(self.stack_size());
        let sp = self.gpr[4];
        let cs = self.seg[SegReg::Cs as usize].selector as u64;
        let words = [self.rflags & 0xffff, cs, return_rip & 0xffff];
        for (k, w) in words.iter().enumerate() {
            let at = sp.wrapping_sub(2 * (k as u64 + 1)) & sp_mask;
            self.write_mem(bus, SegReg::Ss, at, 2, *w)?;
        }
        self.gpr[4] = (sp & !sp_mask) | (sp.wrapping_sub(6) & sp_mask);
        self.rflags &= !(rflags::IF | rflags::TF | rflags::AC | rflags::RF);
        let sel = (entry >> 16) as u16;
        let code = &mut self.seg[SegReg::Cs as usize];
        code.selector = sel;
        code.base = (sel as u64) << 4;
        self.rip = entry & 0xffff;
        Ok(())
    }

    /// Protected-mode (32-bit) delivery through an interrupt or trap gate without a
    /// privilege change: what a boot trampoline can meet. Anything else faults, which
    /// escalates to a triple fault as on hardware with a broken IDT.
    fn deliver_protected(
        &mut self,
        bus: &mut Bus,
        e: Exception,
        source: EventSource,
        return_rip: u64,
    ) -> Result<(), Exception> {
        let vec = e.vector;
        let idt_err = idt_error_code(vec, source != EventSource::Software);
        if !self.protected() {
            return self.deliver_real(bus, vec, return_rip);
        }
        let off = vec as u64 * 8;
        if off + 7 > self.idtr.limit as u64 {
            return Err(Exception::gp(idt_err));
        }
        let la = self.idtr.base.wrapping_add(off);
        let raw = self.read_linear(bus, la, 8, AccessKind::Read, true)?;
        let ty = ((raw >> 40) & 0xf) as u16;
        if ty != 0xe && ty != 0xf {
            return Err(Exception::gp(idt_err));
        }
        if source == EventSource::Software && (((raw >> 45) & 3) as u8) < self.cpl {
            return Err(Exception::gp(idt_err));
        }
        if raw & (1 << 47) == 0 {
            return Err(Exception::np(idt_err));
        }
        let sel = ((raw >> 16) & 0xffff) as u16;
        let target = (raw & 0xffff) | ((raw >> 32) & 0xffff_0000);
        let (cs, _) = self.descriptor_for(bus, sel)?;
        if !cs.is_code() || !cs.present() || cs.dpl() != self.cpl {
            return Err(Exception::gp(sel as u32 & !3));
        }
        let old_cs = self.seg[SegReg::Cs as usize].selector;
        self.push(bus, (self.rflags | pushed_rf(vec, source)) & 0xffff_ffff, 4)?;
        self.push(bus, old_cs as u64, 4)?;
        self.push(bus, return_rip, 4)?;
        if let Some(c) = e.error_code {
            self.push(bus, c as u64, 4)?;
        }
        let mut cs = cs;
        cs.selector = (sel & !3) | self.cpl as u16;
        self.seg[SegReg::Cs as usize] = cs;
        self.rip = target;
        self.rflags &= !(rflags::TF | rflags::NT | rflags::RF | rflags::VM);
        if ty == 0xe {
            self.rflags &= !rflags::IF;
        }
        if vec == vector::NMI && source == EventSource::External {
            self.nmi_blocked = true;
        }
        self.halted = false;
        Ok(())
    }

    /// Remember the event for stop reports and send it to the fault trace, if any.
    /// `before` is (CS, CPL, RSP) when the event happened; `ist` is `Some` if delivery
    /// completed.
    fn record_delivery(
        &mut self,
        bus: &mut Bus,
        e: Exception,
        source: EventSource,
        return_rip: u64,
        before: (u16, u8, u64),
        ist: Option<u8>,
    ) {
        if ist.is_some() {
            if self.recent_exceptions.len() >= 16 {
                self.recent_exceptions.remove(0);
            }
            self.recent_exceptions.push((self.icount, e));
        }
        if bus.trace.is_none() {
            return;
        }
        // Software interrupts are reported at the INT instruction (as QEMU logs them);
        // everything else at the RIP it pushes.
        let rip = match source {
            EventSource::Software | EventSource::Icebp => self.insn_rip,
            _ => return_rip,
        };
        let (cs, cpl, rsp) = before;
        let (pid, comm) = bus.who(
            self.cr3,
            self.seg[crate::cpu::regs::SegReg::Gs as usize].base,
            self.msr.kernel_gs_base,
        );
        let ev = TraceEvent::Delivery(FaultEvent {
            icount: Some(self.icount),
            cpu: self.id,
            vector: e.vector,
            name: vector_name(e.vector).to_string(),
            kind: FaultEvent::kind_name(source).to_string(),
            error_code: e.error_code,
            cr2: if e.vector == vector::PF { e.cr2 } else { None },
            cs,
            rip,
            cpl,
            rsp,
            delivered: Some(ist.is_some()),
            stack: ist.map(|_| self.gpr[4]),
            ist,
            pid,
            comm,
        });
        if let Some(sink) = bus.trace.as_mut() {
            sink.event(&ev);
        }
    }
}
