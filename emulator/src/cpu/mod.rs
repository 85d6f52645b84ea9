//! The CPU core: architectural state, fetch/decode (iced-x86, with a decode cache), operand
//! and memory access through segmentation and the MMU, and the step loop. Execution of
//! individual instructions lives in `exec/`, keyed on iced-x86's mnemonic; exception and
//! interrupt delivery in `crate::interrupts`.

pub mod alu;
pub mod cpuid;
pub mod exception;
mod exec;
pub mod fpu_state;
pub mod msr_ext;
pub mod regs;
pub mod segment;
pub mod softfp;
pub mod sse;
pub mod x87;

use crate::addr::{GuestPhysAddr, GuestVirtAddr, PAGE_SIZE};
use crate::bus::Bus;
use crate::mmu::{self, Access, AccessKind, PagingMode};
use crate::ostrace;
use crate::tlb::{FastHit, FlushCause, Tlb, TlbMode};
use crate::trace::{MmuEvent, TraceEvent};
pub use exception::Exception;
use iced_x86::{Decoder, DecoderOptions, Instruction, Register};
use regs::{cr0, cr4, efer, rflags, DescTable, SegReg, Segment};
use std::collections::HashSet;

/// Longest legal x86 instruction.
pub const MAX_INSN_LEN: usize = 15;
/// Number of decode-cache slots (direct-mapped on the physical address; a multiple of
/// 4096 below 65536, as `Rec::slot` is a `u16` and the spare slot follows).
const DECODE_CACHE_SLOTS: usize = 32768;
const _: () = assert!(DECODE_CACHE_SLOTS.is_multiple_of(4096) && DECODE_CACHE_SLOTS < 65535);
/// A REP string instruction runs at most this many iterations per step, then restarts,
/// so interrupts can be taken between chunks as on hardware.
pub const REP_CHUNK: u64 = 4096;

/// Model-specific registers that are plain storage.
#[derive(Debug, Clone, Default)]
pub struct Msrs {
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub fmask: u64,
    pub kernel_gs_base: u64,
    pub tsc_aux: u64,
    pub apic_base: u64,
    pub pat: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub misc_enable: u64,
    /// The MTRR and machine-check MSRs (`msr_ext.rs`).
    pub ext: msr_ext::ExtMsrs,
    /// Guest writes to IA32_TSC set this offset from the instruction count.
    pub tsc_offset: u64,
}

#[derive(Clone)]
struct DecodeEntry {
    /// Physical address + 1 (0 = empty).
    key: u64,
    rip: u64,
    bitness: u32,
    /// The pre-decoded record (handler and operands).
    rec: exec::fast::Rec,
    instr: Instruction,
}

/// Most instructions in one block (the memory-access flags fit one `u64`).
const BLOCK_MAX: usize = 64;
/// How many times a block that ended at an instruction not yet decoded is rebuilt to take
/// in the instructions decoded since.
const BLOCK_REBUILDS: u8 = 4;

/// A block (issue [11], stage D): the records of a straight run of specialised
/// instructions of one code page, copied out of the decode cache, keyed like the decode
/// cache (physical address and RIP of its first instruction, 64-bit code) and stored in
/// the slot of its first instruction's physical address. It ends after a control transfer,
/// before a generic instruction, at the page end, before an instruction not (yet) in the
/// decode cache, or at `BLOCK_MAX` instructions. A frame's blocks are dropped with its
/// decode-cache entries.
#[derive(Clone, Default)]
struct Block {
    /// Physical address + 1 of the first instruction (0 = empty).
    key: u64,
    rip: u64,
    recs: Box<[exec::fast::Rec]>,
    /// Bit k: instruction k may access memory (or the bus): after it, the block stops
    /// unless the fast TLB generation, the code-dirty queue and `next_event` allow going on.
    mem: u64,
    /// Rebuilds left for a block that ended before an instruction not yet decoded.
    rebuilds: u8,
}

/// Why the CPU cannot go on (the machine stops with a report).
#[derive(Debug, Clone)]
pub enum CpuStop {
    /// A fault while delivering #DF: the processor shuts down (SDM 6.15, "Interrupt 8").
    TripleFault {
        first: Exception,
        second: Exception,
        third: Exception,
    },
    /// HLT with interrupts disabled and nothing that can wake the CPU.
    HaltForever,
    /// The processor entered the shutdown state for a reason other than a triple fault:
    /// a machine check with CR4.MCE clear (SDM 15.10.1, "Machine-Check Exception").
    Shutdown { cause: Exception },
}

/// Result of one step.
#[derive(Debug, Clone)]
pub enum Step {
    Ok,
    Halted,
    Stop(CpuStop),
}

/// `Cpu::blk_page` when no block can continue.
const NO_BLOCK: u64 = u64::MAX;

pub struct Cpu {
    pub id: u32,
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub seg: [Segment; 6],
    pub ldtr: Segment,
    pub tr: Segment,
    pub gdtr: DescTable,
    pub idtr: DescTable,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    /// PKRU (protection keys for user-mode pages; SDM 4.6.2): 0 at reset and INIT.
    pub pkru: u32,
    /// IA32_PKRS bits 31:0 (protection keys for supervisor-mode pages; 63:32 are reserved).
    pub pkrs: u32,
    /// The last value MOV to CR8 wrote; reads of CR8 come from the local APIC's TPR,
    /// which MMIO writes change too.
    pub cr8: u64,
    pub efer: u64,
    pub dr: [u64; 8],
    pub msr: Msrs,
    /// x87, SSE and XCR0 state.
    pub fpu: fpu_state::FpuState,
    /// Current privilege level (CS.DPL after a load; SS.DPL equals it).
    pub cpl: u8,
    /// Instructions executed so far: the machine's clock.
    pub icount: u64,
    pub halted: bool,
    /// Interrupts are inhibited until this icount (STI / MOV SS shadow).
    pub shadow_until: u64,
    /// NMIs are blocked from NMI delivery until the next IRET.
    pub nmi_blocked: bool,
    pub tlb: Tlb,
    /// RIP of the instruction being executed (faults report it).
    pub insn_rip: u64,
    /// The block state of [`Self::run_block`]: the linear page (`la >> 12`) of the last
    /// fetch when it was served by the TLB's fast fetch entry in 64-bit mode, else
    /// `NO_BLOCK`; and the fast-entry key it was served under. Set by every full fetch,
    /// used only inside one `run_block` call. `blk_gen` is the TLB's fast generation
    /// ([`Tlb::fast_gen`]) when the fast fetch entry of that page last hit under that
    /// key, and `blk_frame`/`blk_host` the frame's guest-physical and host address it gave.
    blk_page: u64,
    blk_key: u64,
    blk_gen: u64,
    blk_frame: u64,
    blk_host: usize,
    /// The pending lazy-flags operation and its base (see [`Self::materialize_flags`]).
    lazy: alu::Lazy,
    lazy_base: alu::Lazy,
    /// Decoded instructions, direct-mapped on the physical address, plus one slot past
    /// the end (`DECODE_CACHE_SLOTS`) for an instruction that is not cached (it crosses
    /// a page or is not in RAM). An entry stays valid until its frame is written: the
    /// frame is then marked in `GuestMemory`'s code bitmap's dirty list and its entries
    /// are dropped before the next fetch.
    decode_cache: Vec<DecodeEntry>,
    /// The frame (physical address >> 12, plus 1; 0 = empty) of each decode-cache slot,
    /// packed so that dropping a frame's entries scans 16 KiB.
    decode_frames: Vec<u32>,
    /// Blocks (see [`Block`]), one per decode-cache slot: a block lives in the slot of
    /// its first instruction. The buffer is never reallocated.
    blocks: Vec<Block>,
    /// `VMSCOPE_DECODE_SHADOW=1`: re-read and re-decode every cached instruction used and
    /// panic if the bytes now decode to another record.
    pub decode_shadow: bool,
    /// Decode-cache counters (not part of `--stats`, whose output is fixed).
    pub decode_stats: DecodeStats,
    unimplemented_seen: HashSet<String>,
    /// Set when #UD was raised for an instruction this CPU does not implement.
    pub last_unimplemented: Option<String>,
    /// Stop the machine at an unimplemented instruction (default) instead of raising #UD,
    /// which is what the guest would see on a CPU without the feature.
    pub stop_on_unimplemented: bool,
    /// The vendor CPUID names (and its SYSCALL behaviour, see `cpuid::Vendor`).
    pub vendor: cpuid::Vendor,
    /// Set by SYSCALL/SYSRET: the single-step trap after this instruction follows the TF
    /// it left (SDM vol. 3, 17.3.1.4; kvm-unit-tests' `syscall` checks it).
    pub(crate) tf_from_end: bool,
    /// Exceptions delivered, most recent last (bounded; for the stop report).
    pub recent_exceptions: Vec<(u64, Exception)>,
    /// When `Some`, every guest memory access made through the MMU (data, stack, implicit
    /// descriptor-table and delivery accesses; not instruction fetch) is appended here, for
    /// the instruction trace and debugger watchpoints. The owner clears it. Compiled out
    /// without the `trace-hooks` feature.
    #[cfg(feature = "trace-hooks")]
    pub mem_log: Option<Vec<MemAccess>>,
}

/// Decode-cache counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeStats {
    /// Fetches served from the cache.
    pub hits: u64,
    /// Instructions decoded (and cached when they lie in one RAM frame).
    pub decodes: u64,
    /// Frames whose entries were dropped because they were written.
    pub frames_dropped: u64,
    /// Blocks run whole or in part by `run_block` (stage D); their instructions count
    /// as hits.
    pub blocks: u64,
}

/// One memory access recorded in [`Cpu::mem_log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemAccess {
    pub la: GuestVirtAddr,
    /// Physical address of the first byte (an access that crosses a page is logged as
    /// two records, one per page).
    pub pa: GuestPhysAddr,
    pub size: u8,
    pub write: bool,
    /// The value read or written (low `size` bytes).
    pub value: u64,
}

impl Cpu {
    pub fn new(id: u32, tlb_entries: usize, tlb_mode: TlbMode) -> Self {
        let empty = DecodeEntry {
            key: 0,
            rip: 0,
            bitness: 0,
            rec: exec::fast::Rec::generic(0, 0),
            instr: Instruction::default(),
        };
        let mut cpu = Cpu {
            id,
            gpr: [0; 16],
            rip: 0xfff0,
            rflags: rflags::FIXED,
            seg: [Segment::default(); 6],
            ldtr: Segment::default(),
            tr: Segment::default(),
            gdtr: DescTable {
                base: 0,
                limit: 0xffff,
            },
            idtr: DescTable {
                base: 0,
                limit: 0xffff,
            },
            cr0: cr0::ET | cr0::NW | cr0::CD,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            pkru: 0,
            pkrs: 0,
            cr8: 0,
            efer: 0,
            dr: [0, 0, 0, 0, 0, 0, 0xffff_0ff0, 0x400],
            msr: Msrs {
                pat: regs::msr::PAT_DEFAULT,
                apic_base: regs::msr::APIC_BASE_DEFAULT,
                ..Default::default()
            },
            fpu: fpu_state::FpuState::default(),
            cpl: 0,
            icount: 0,
            halted: false,
            shadow_until: 0,
            nmi_blocked: false,
            tlb: Tlb::new(tlb_entries, tlb_mode),
            insn_rip: 0,
            blk_page: NO_BLOCK,
            blk_key: 0,
            blk_gen: 0,
            blk_frame: 0,
            blk_host: 0,
            lazy: alu::Lazy::default(),
            lazy_base: alu::Lazy::default(),
            decode_cache: vec![empty; DECODE_CACHE_SLOTS + 1],
            decode_frames: vec![0; DECODE_CACHE_SLOTS],
            blocks: vec![Block::default(); DECODE_CACHE_SLOTS],
            decode_shadow: std::env::var_os("VMSCOPE_DECODE_SHADOW").is_some_and(|v| v == "1"),
            decode_stats: DecodeStats::default(),
            unimplemented_seen: HashSet::new(),
            last_unimplemented: None,
            stop_on_unimplemented: true,
            vendor: cpuid::Vendor::Intel,
            tf_from_end: false,
            recent_exceptions: Vec::new(),
            #[cfg(feature = "trace-hooks")]
            mem_log: None,
        };
        // Real-mode reset segments (SDM Vol. 3A, Table 9-1).
        for s in cpu.seg.iter_mut() {
            *s = Segment {
                selector: 0,
                base: 0,
                limit: 0xffff,
                attr: 0x93,
            };
        }
        cpu.seg[SegReg::Cs as usize] = Segment {
            selector: 0xf000,
            base: 0xffff_0000,
            limit: 0xffff,
            attr: 0x9b,
        };
        cpu
    }

    // ---- mode queries -------------------------------------------------------------------

    #[inline]
    pub fn long_mode(&self) -> bool {
        self.efer & efer::LMA != 0
    }
    /// 64-bit mode: long mode with a 64-bit code segment.
    #[inline]
    pub fn mode64(&self) -> bool {
        self.long_mode() && self.seg[SegReg::Cs as usize].long()
    }
    #[inline]
    pub fn protected(&self) -> bool {
        self.cr0 & cr0::PE != 0
    }
    /// Code size in bits: what the decoder needs.
    #[inline]
    pub fn bitness(&self) -> u32 {
        if self.mode64() {
            64
        } else if self.seg[SegReg::Cs as usize].db() {
            32
        } else {
            16
        }
    }
    #[inline]
    pub fn paging(&self) -> bool {
        self.cr0 & cr0::PG != 0
    }
    pub fn pcid(&self) -> u16 {
        if self.cr4 & cr4::PCIDE != 0 {
            (self.cr3 & 0xfff) as u16
        } else {
            0
        }
    }

    pub fn paging_mode(&self) -> PagingMode {
        PagingMode {
            cr3: self.cr3,
            wp: self.cr0 & cr0::WP != 0,
            nxe: self.efer & efer::NXE != 0,
            smep: self.cr4 & cr4::SMEP != 0,
            smap: self.cr4 & cr4::SMAP != 0,
            ac: self.rflags & rflags::AC != 0 && self.cpl < 3,
            pge: self.cr4 & cr4::PGE != 0,
            pke: self.cr4 & cr4::PKE != 0,
            pks: self.cr4 & cr4::PKS != 0,
            pkru: self.pkru,
            pkrs: self.pkrs,
        }
    }

    /// Flag `f` of RFLAGS (a status flag of a pending lazy operation included).
    #[inline]
    pub fn flag(&self, f: u64) -> bool {
        if f & rflags::STATUS != 0 && self.lazy.op != alu::lazy::NONE {
            return self.status_slow() & f != 0;
        }
        self.rflags & f != 0
    }
    #[inline]
    pub fn set_flag(&mut self, f: u64, on: bool) {
        if f & rflags::STATUS != 0 {
            self.materialize_flags();
        }
        if on {
            self.rflags |= f;
        } else {
            self.rflags &= !f;
        }
    }
    /// Replace the six status flags with `f`.
    #[inline]
    pub fn set_status(&mut self, f: u64) {
        self.lazy.op = alu::lazy::NONE;
        self.lazy_base.op = alu::lazy::NONE;
        self.rflags = (self.rflags & !rflags::STATUS) | (f & rflags::STATUS);
    }
    /// Replace only the status flags in `which` with those in `f`.
    #[inline]
    pub fn set_status_masked(&mut self, f: u64, which: u64) {
        if which & rflags::STATUS != rflags::STATUS {
            self.materialize_flags();
        }
        self.lazy.op = alu::lazy::NONE;
        self.lazy_base.op = alu::lazy::NONE;
        self.rflags = (self.rflags & !which) | (f & which);
    }

    /// Lazy flags (issue [11], stage C): the status flags of the last flag-writing
    /// operation of a specialised handler are kept as that operation (`self.lazy`, an
    /// `alu::Lazy`) and computed when read; when it keeps some flags of the operation
    /// before it (INC/DEC keep CF, rotates SF/ZF/AF/PF) and that one is pending too, it is
    /// kept as `self.lazy_base`. `rflags`' status bits are stale while one is pending.
    /// They are computed (this function) before anything but a specialised handler runs:
    /// the generic executor, exception delivery, and the return of `step` and
    /// `run_block`, so every reader outside the CPU's fast path (interrupt delivery,
    /// PUSHF, SYSCALL, IRET, the tracer, the GDB stub, tests reading `cpu.rflags`) sees
    /// materialized flags. Inside specialised handlers flags are read through
    /// [`Self::flags_now`], [`Self::status_value`] or [`Self::flag`].
    #[inline(always)]
    pub(crate) fn materialize_flags(&mut self) {
        if self.lazy.op != alu::lazy::NONE {
            self.materialize_slow();
        }
    }

    #[inline(never)]
    fn materialize_slow(&mut self) {
        self.rflags = self.status_slow();
        self.lazy.op = alu::lazy::NONE;
        self.lazy_base.op = alu::lazy::NONE;
    }

    /// RFLAGS with the pending operations applied, without materializing them.
    #[inline(never)]
    fn status_slow(&self) -> u64 {
        let mut fl = self.rflags;
        if self.lazy_base.op != alu::lazy::NONE {
            fl = self.lazy_base.apply_slow(fl);
        }
        if self.lazy.op != alu::lazy::NONE {
            fl = self.lazy.apply_slow(fl);
        }
        fl
    }

    /// RFLAGS as it stands (for a condition): the last operation applied inline when it
    /// is the only one pending (so only the flags the caller tests are computed).
    #[inline(always)]
    pub(crate) fn status_value(&self) -> u64 {
        if self.lazy_base.op == alu::lazy::NONE {
            if self.lazy.op == alu::lazy::NONE {
                return self.rflags;
            }
            return self.lazy.apply(self.rflags);
        }
        self.status_slow()
    }

    /// RFLAGS with the status flags materialized.
    #[inline(always)]
    pub(crate) fn flags_now(&mut self) -> u64 {
        self.materialize_flags();
        self.rflags
    }

    /// Record a flag-writing operation instead of its flags. One that writes all six
    /// replaces whatever is pending; one that keeps some (`alu::lazy::is_full` false)
    /// keeps a pending full operation as its base, and materializes anything else first.
    #[inline(always)]
    pub(crate) fn set_lazy(&mut self, l: alu::Lazy) {
        if alu::lazy::is_full(l.op) {
            self.lazy_base.op = alu::lazy::NONE;
        } else if self.lazy.op != alu::lazy::NONE {
            if alu::lazy::is_full(self.lazy.op) {
                self.lazy_base = self.lazy;
            } else {
                self.materialize_slow();
            }
        }
        self.lazy = l;
    }

    /// The pending lazy operation (`op` is `alu::lazy::NONE` when flags are materialized).
    #[inline(always)]
    pub(crate) fn lazy(&self) -> &alu::Lazy {
        &self.lazy
    }

    // ---- registers ----------------------------------------------------------------------

    /// Read a general-purpose register of any width (AL..R15, incl. AH..BH).
    #[inline]
    pub fn reg(&self, r: Register) -> u64 {
        use Register as R;
        let n = r as u32;
        if n >= R::RAX as u32 && n <= R::R15 as u32 {
            self.gpr[(n - R::RAX as u32) as usize]
        } else if n >= R::EAX as u32 && n <= R::R15D as u32 {
            self.gpr[(n - R::EAX as u32) as usize] & 0xffff_ffff
        } else if n >= R::AX as u32 && n <= R::R15W as u32 {
            self.gpr[(n - R::AX as u32) as usize] & 0xffff
        } else if n >= R::AL as u32 && n <= R::R15L as u32 {
            let i = n - R::AL as u32;
            if (4..8).contains(&i) {
                (self.gpr[(i - 4) as usize] >> 8) & 0xff
            } else if i < 4 {
                self.gpr[i as usize] & 0xff
            } else {
                self.gpr[(i - 4) as usize] & 0xff
            }
        } else {
            match r {
                R::RIP => self.rip,
                R::EIP => self.rip & 0xffff_ffff,
                R::ES | R::CS | R::SS | R::DS | R::FS | R::GS => {
                    self.seg[SegReg::from_iced(r).map_or(0, |s| s as usize)].selector as u64
                }
                _ => 0,
            }
        }
    }

    /// Write a general-purpose register with x86 width rules: 32-bit writes zero-extend,
    /// 8- and 16-bit writes merge.
    #[inline]
    pub fn set_reg(&mut self, r: Register, v: u64) {
        use Register as R;
        let n = r as u32;
        if n >= R::RAX as u32 && n <= R::R15 as u32 {
            self.gpr[(n - R::RAX as u32) as usize] = v;
        } else if n >= R::EAX as u32 && n <= R::R15D as u32 {
            self.gpr[(n - R::EAX as u32) as usize] = v & 0xffff_ffff;
        } else if n >= R::AX as u32 && n <= R::R15W as u32 {
            let g = &mut self.gpr[(n - R::AX as u32) as usize];
            *g = (*g & !0xffff) | (v & 0xffff);
        } else if n >= R::AL as u32 && n <= R::R15L as u32 {
            let i = n - R::AL as u32;
            if (4..8).contains(&i) {
                let g = &mut self.gpr[(i - 4) as usize];
                *g = (*g & !0xff00) | ((v & 0xff) << 8);
            } else {
                let idx = if i < 4 { i } else { i - 4 } as usize;
                let g = &mut self.gpr[idx];
                *g = (*g & !0xff) | (v & 0xff);
            }
        }
    }

    /// The stack pointer width: 64 in 64-bit mode, else SS.B selects 32 or 16.
    #[inline]
    pub fn stack_size(&self) -> u32 {
        if self.mode64() {
            8
        } else if self.seg[SegReg::Ss as usize].db() {
            4
        } else {
            2
        }
    }

    // ---- memory ---------------------------------------------------------------------------

    /// Segmentation: offset → linear address, with the checks of the current mode.
    /// `write` selects the writable-segment check; `size` the limit check.
    #[inline(always)]
    pub fn linear(&self, seg: SegReg, off: u64, size: u32, write: bool) -> Result<u64, Exception> {
        if self.mode64() {
            let base = match seg {
                SegReg::Fs | SegReg::Gs => self.seg[seg as usize].base,
                _ => 0,
            };
            let la = base.wrapping_add(off);
            if GuestVirtAddr(la).is_canonical48()
                && GuestVirtAddr(la.wrapping_add(size as u64 - 1)).is_canonical48()
            {
                return Ok(la);
            }
        }
        self.linear_slow(seg, off, size, write)
    }

    /// [`Self::linear`] in full (every mode, and the faults).
    #[inline(never)]
    fn linear_slow(&self, seg: SegReg, off: u64, size: u32, write: bool) -> Result<u64, Exception> {
        let s = &self.seg[seg as usize];
        let stack = seg == SegReg::Ss;
        let fault = || {
            if stack {
                Exception::ss(0)
            } else {
                Exception::gp0()
            }
        };
        if self.mode64() {
            let base = match seg {
                SegReg::Fs | SegReg::Gs => s.base,
                _ => 0,
            };
            let la = base.wrapping_add(off);
            if !GuestVirtAddr(la).is_canonical48()
                || !GuestVirtAddr(la.wrapping_add(size as u64 - 1)).is_canonical48()
            {
                return Err(fault());
            }
            return Ok(la);
        }
        if !self.protected() {
            return Ok((s.base.wrapping_add(off & 0xffff)) & 0xf_ffff);
        }
        // Protected / compatibility mode: null (unusable) segment, type, limit.
        if !s.present() {
            return Err(fault());
        }
        if write && (s.is_code() || s.attr & regs::seg_attr::TYPE_RW == 0) {
            return Err(fault());
        }
        if !write && s.is_code() && s.attr & regs::seg_attr::TYPE_RW == 0 {
            return Err(fault());
        }
        let last = off.wrapping_add(size as u64 - 1);
        let expand_down = !s.is_code() && s.attr & regs::seg_attr::TYPE_DC != 0;
        if expand_down {
            let upper = if s.db() { 0xffff_ffff } else { 0xffff };
            if off <= s.limit as u64 || last > upper {
                return Err(fault());
            }
        } else if last > s.limit as u64 || last < off {
            return Err(fault());
        }
        Ok(s.base.wrapping_add(off) & 0xffff_ffff)
    }

    /// The paging context of an explicit access, for the TLB's fast entries: the privilege
    /// class (CPL 3), CR0.WP, CR4.SMEP/SMAP/PCIDE/PKE/PKS, EFER.NXE, RFLAGS.AC below CPL 3
    /// and the PCID (bits 32..43), i.e. everything besides the entry and PKRU/IA32_PKRS
    /// that decides a permission check. The protection-key registers are not part of it:
    /// no fast entry is installed for a data access to a page whose key has an AD or WD
    /// bit set in them ([`Self::fast_install`]), and every change to PKRU or IA32_PKRS
    /// drops all fast entries ([`Self::pk_changed`]). `None` without long-mode paging (no fast entries there). Read from the
    /// registers on every access (a few loads), so no writer of them can leave it stale.
    #[inline(always)]
    fn fast_ctx(&self) -> Option<u64> {
        if self.cr0 & cr0::PG == 0 || self.efer & efer::LMA == 0 {
            return None;
        }
        let user = (self.cpl == 3) as u64;
        let ac = if self.cpl < 3 {
            self.rflags & rflags::AC
        } else {
            0
        };
        let pcid = if self.cr4 & cr4::PCIDE != 0 {
            (self.cr3 & 0xfff) << 32
        } else {
            0
        };
        Some(
            user | (self.cr0 & cr0::WP)
                | (self.cr4 & (cr4::SMEP | cr4::SMAP | cr4::PCIDE | cr4::PKE | cr4::PKS))
                | (self.efer & efer::NXE)
                | ac
                | pcid,
        )
    }

    /// The TLB's fast entry for an explicit access of `kind` at `la`, if it has one (counted
    /// as a TLB hit, as the modelled lookup it stands for).
    #[inline(always)]
    fn fast_hit(&mut self, bus: &Bus, la: u64, kind: AccessKind) -> Option<FastHit> {
        let ctx = self.fast_ctx()?;
        let key = self.tlb.fast_key(ctx);
        let hit = self.tlb.fast_lookup(la, kind as usize, key)?;
        if self.tlb.shadow {
            self.shadow_check(bus, la, kind, hit);
        }
        Some(hit)
    }

    /// `VMSCOPE_TLB_SHADOW=1`: a fast hit must be exactly what the modelled TLB gives: an
    /// entry for this PCID that permits the access (a write: with D set), the same frame,
    /// and RAM at the host offset.
    #[cold]
    #[inline(never)]
    fn shadow_check(&self, bus: &Bus, la: u64, kind: AccessKind, hit: FastHit) {
        let va = GuestVirtAddr(la);
        let acc = Access::new(kind, self.cpl == 3);
        let mode = self.paging_mode();
        let modelled = self.tlb.probe(va, self.pcid());
        let ok = modelled.is_some_and(|t| {
            mmu::permitted(&t, acc, &mode)
                && (kind != AccessKind::Write || t.dirty)
                && t.phys(va) == hit.pa
                && bus.mem.host_offset(hit.pa, 1) == Some(hit.host)
        });
        assert!(
            ok,
            "vmscope: tlb shadow: fast hit at rip={:#x} va={la:#x} {kind:?} gave {} (host {:#x}); \
             the modelled TLB has {modelled:?}",
            self.insn_rip, hit.pa, hit.host
        );
    }

    /// Install the fast entry for an explicit access the modelled entry `t` just permitted
    /// (for a write, `t.dirty` is set), when its frame is RAM. Not for a data access to a
    /// page whose protection key is restricted (AD or WD set) in the PKRU/IA32_PKRS that
    /// applies to it: such accesses always take the modelled path, which checks the key.
    #[inline]
    fn fast_install(&mut self, bus: &Bus, la: u64, kind: AccessKind, t: &mmu::Translation) {
        if self.tlb.mode != TlbMode::On {
            return;
        }
        if kind != AccessKind::Fetch && self.pkey_restricted(t) {
            return;
        }
        let Some(ctx) = self.fast_ctx() else {
            return;
        };
        if let Some(host) = bus.mem.host_offset(t.frame, PAGE_SIZE) {
            let key = self.tlb.fast_key(ctx);
            self.tlb
                .fast_install(la, kind as usize, key, t.frame.as_u64(), host);
        }
    }

    /// Whether the protection key of `t` has an AD or WD bit set in the register that
    /// governs it now (see [`mmu::pkey_rights`]).
    #[inline]
    fn pkey_restricted(&self, t: &mmu::Translation) -> bool {
        let (on, reg) = if t.user {
            (self.cr4 & cr4::PKE != 0, self.pkru)
        } else {
            (self.cr4 & cr4::PKS != 0, self.pkrs)
        };
        on && (reg >> (2 * (t.pkey as u32 & 0xf))) & 3 != 0
    }

    /// PKRU or IA32_PKRS was written (WRPKRU, XRSTOR, WRMSR): when the value changed, drop
    /// every fast entry, since they were installed under the old rights. The modelled TLB
    /// keeps its entries: it caches the keys, not the rights (SDM 4.10.2.2), and every
    /// access it serves is checked against the registers.
    pub fn pk_changed(&mut self, old_pkru: u32, old_pkrs: u32) {
        if self.pkru != old_pkru || self.pkrs != old_pkrs {
            self.tlb.drop_fast_entries();
        }
    }

    /// Paging: linear → physical, through the TLB. `implicit` marks implicit supervisor
    /// accesses (descriptor tables, TSS, delivery pushes).
    #[inline]
    pub fn translate(
        &mut self,
        bus: &mut Bus,
        la: u64,
        kind: AccessKind,
        implicit: bool,
    ) -> Result<GuestPhysAddr, Exception> {
        if !implicit {
            if let Some(h) = self.fast_hit(bus, la, kind) {
                return Ok(h.pa);
            }
        }
        self.translate_slow(bus, la, kind, implicit)
    }

    /// [`Self::translate`] without the fast entries: the modelled TLB, then a walk.
    #[inline(never)]
    fn translate_slow(
        &mut self,
        bus: &mut Bus,
        la: u64,
        kind: AccessKind,
        implicit: bool,
    ) -> Result<GuestPhysAddr, Exception> {
        if !self.paging() {
            let mask = if self.long_mode() {
                u64::MAX
            } else {
                0xffff_ffff
            };
            return Ok(GuestPhysAddr(la & mask));
        }
        if !self.long_mode() {
            return self.translate_legacy(bus, la, kind, implicit);
        }
        let va = GuestVirtAddr(la);
        let acc = Access {
            kind,
            user: self.cpl == 3 && !implicit,
            implicit_supervisor: implicit,
        };
        let mode = self.paging_mode();
        let pcid = self.pcid();
        if let Some(t) = self.tlb.lookup(va, pcid) {
            if !mmu::permitted(&t, acc, &mode) {
                // A fault from the cached rights (possibly stale: a "spurious" #PF, SDM
                // 4.10.4.3). The #PF invalidates the entry.
                if self.tlb.mode == TlbMode::Check {
                    self.check_stale(bus, va, &t, acc, &mode, false);
                }
                self.tlb.flush_page(va, FlushCause::PageFault);
                let code = mmu::protection_fault_code(&t, acc, &mode);
                return Err(Exception::pf(code, la));
            }
            if kind != AccessKind::Write || t.dirty {
                if self.tlb.mode == TlbMode::Check {
                    self.check_stale(bus, va, &t, acc, &mode, true);
                }
                if !implicit {
                    self.fast_install(bus, la, kind, &t);
                }
                return Ok(t.phys(va));
            }
            // First write through a clean entry: walk again to set D (SDM 4.8).
        }
        match mmu::walk(&mut bus.mem, &mode, va, acc, true) {
            Ok(t) => {
                self.tlb.fill(va, pcid, t);
                if !implicit {
                    self.fast_install(bus, la, kind, &t);
                }
                Ok(t.phys(va))
            }
            Err(pf) => {
                self.tlb.flush_page(va, FlushCause::PageFault);
                Err(Exception::pf(pf.error_code, la))
            }
        }
    }

    /// `--tlb check`: compare the cached translation that decided access `acc` with what
    /// the tables say now (a walk that sets no A/D bits).
    ///
    /// - The cached entry permitted the access (`cached_permits`): it is a *stale use* if
    ///   the tables no longer permit this access or now map another frame. That is the
    ///   missing-INVLPG bug this mode exists to find. Rights the access did not use (a
    ///   stale W bit on a read) make no observable difference and are not reported.
    /// - The cached entry denied the access: if the tables permit it, the #PF is a
    ///   *spurious fault* (SDM 4.10.4.3: hardware may fault on stale, more restrictive
    ///   rights; Linux relies on that when it upgrades permissions without a flush). Legal,
    ///   so counted separately; the first few are shown. If the tables deny it too, the
    ///   fault is real and nothing is reported (an ordinary COW write).
    fn check_stale(
        &mut self,
        bus: &mut Bus,
        va: GuestVirtAddr,
        cached: &mmu::Translation,
        acc: Access,
        mode: &PagingMode,
        cached_permits: bool,
    ) {
        /// Spurious faults shown on stderr before they are only counted.
        const SPURIOUS_SHOWN: u64 = 10;
        let fresh = mmu::walk(&mut bus.mem, mode, va, acc, false);
        let fresh_permits = matches!(&fresh, Ok(t) if mmu::permitted(t, acc, mode));
        let describe = |t: &mmu::Translation| {
            format!(
                "{} {}{}{}",
                t.phys(va),
                if t.writable { "W" } else { "R" },
                if t.user { "U" } else { "S" },
                if t.nx { "NX" } else { "X" }
            )
        };
        let now = match &fresh {
            Ok(t) => describe(t),
            Err(pf) => format!("#PF({:#x})", pf.error_code),
        };
        if cached_permits {
            let stale = match &fresh {
                Ok(t) => !fresh_permits || t.phys(va) != cached.phys(va),
                Err(_) => true,
            };
            if stale {
                self.tlb.stats.stale_uses += 1;
                // An explicitly requested report: straight to stderr, whatever RUST_LOG says.
                eprintln!(
                    "vmscope: tlb check: stale TLB entry used at rip={:#x}: va={:#x} {:?} cached {} now {}",
                    self.insn_rip,
                    va.as_u64(),
                    acc.kind,
                    describe(cached),
                    now
                );
            }
        } else if fresh_permits {
            self.tlb.stats.spurious_faults += 1;
            if self.tlb.stats.spurious_faults <= SPURIOUS_SHOWN {
                eprintln!(
                    "vmscope: tlb check: spurious #PF at rip={:#x}: va={:#x} {:?} denied by cached {} now {}{}",
                    self.insn_rip,
                    va.as_u64(),
                    acc.kind,
                    describe(cached),
                    now,
                    if self.tlb.stats.spurious_faults == SPURIOUS_SHOWN {
                        " (further spurious faults are only counted)"
                    } else {
                        ""
                    }
                );
            }
        }
    }

    /// 32-bit paging without long mode is not part of this CPU model yet; treat it as
    /// paging disabled would be wrong, so report and fault.
    fn translate_legacy(
        &mut self,
        _bus: &mut Bus,
        la: u64,
        _kind: AccessKind,
        _implicit: bool,
    ) -> Result<GuestPhysAddr, Exception> {
        log::error!("legacy (non-long-mode) paging is not implemented; #GP at {la:#x}");
        Err(Exception::gp0())
    }

    /// Read `size` bytes at linear address `la` (may cross a page). The fast TLB hit inside
    /// one page is inlined; everything else is [`Self::read_linear_slow`] (which looks
    /// the fast entry up again: a miss counts nothing, so the counters are unchanged).
    #[inline(always)]
    pub fn read_linear(
        &mut self,
        bus: &mut Bus,
        la: u64,
        size: u32,
        kind: AccessKind,
        implicit: bool,
    ) -> Result<u64, Exception> {
        if !implicit && (la & (PAGE_SIZE - 1)) + size as u64 <= PAGE_SIZE {
            if let Some(h) = self.fast_hit(bus, la, kind) {
                let v = bus.mem.read_host(h.host, size);
                self.log_access(la, h.pa, size as u64, false, v);
                return Ok(v);
            }
        }
        self.read_linear_slow(bus, la, size, kind, implicit)
    }

    #[inline(never)]
    fn read_linear_slow(
        &mut self,
        bus: &mut Bus,
        la: u64,
        size: u32,
        kind: AccessKind,
        implicit: bool,
    ) -> Result<u64, Exception> {
        let first = PAGE_SIZE - (la & (PAGE_SIZE - 1));
        if size as u64 <= first {
            if !implicit {
                if let Some(h) = self.fast_hit(bus, la, kind) {
                    let v = bus.mem.read_host(h.host, size);
                    self.log_access(la, h.pa, size as u64, false, v);
                    return Ok(v);
                }
            }
            let pa = self.translate_slow(bus, la, kind, implicit)?;
            let v = bus.read(pa, size as usize);
            self.log_access(la, pa, size as u64, false, v);
            return Ok(v);
        }
        let pa1 = self.translate(bus, la, kind, implicit)?;
        let pa2 = self.translate(bus, la.wrapping_add(first), kind, implicit)?;
        let lo = bus.read(pa1, first as usize);
        let hi = bus.read(pa2, size as usize - first as usize);
        self.log_access(la, pa1, first, false, lo);
        self.log_access(la.wrapping_add(first), pa2, size as u64 - first, false, hi);
        Ok(lo | (hi << (first * 8)))
    }

    /// Record an access in [`Self::mem_log`] when someone is listening.
    #[inline(always)]
    fn log_access(&mut self, la: u64, pa: GuestPhysAddr, size: u64, write: bool, value: u64) {
        #[cfg(feature = "trace-hooks")]
        if let Some(log) = self.mem_log.as_mut() {
            let mask = if size >= 8 {
                u64::MAX
            } else {
                (1u64 << (size * 8)) - 1
            };
            log.push(MemAccess {
                la: GuestVirtAddr(la),
                pa,
                size: size as u8,
                write,
                value: value & mask,
            });
        }
        #[cfg(not(feature = "trace-hooks"))]
        let _ = (la, pa, size, write, value);
    }

    /// Write `size` bytes at linear address `la`: both pages are translated before any
    /// byte is written, so a fault leaves memory unchanged. The fast TLB hit inside one
    /// page is inlined, as in [`Self::read_linear`].
    #[inline(always)]
    pub fn write_linear(
        &mut self,
        bus: &mut Bus,
        la: u64,
        size: u32,
        val: u64,
        implicit: bool,
    ) -> Result<(), Exception> {
        if !implicit && (la & (PAGE_SIZE - 1)) + size as u64 <= PAGE_SIZE {
            if let Some(h) = self.fast_hit(bus, la, AccessKind::Write) {
                bus.mem.write_host(h.host, size, val);
                self.log_access(la, h.pa, size as u64, true, val);
                return Ok(());
            }
        }
        self.write_linear_slow(bus, la, size, val, implicit)
    }

    #[inline(never)]
    fn write_linear_slow(
        &mut self,
        bus: &mut Bus,
        la: u64,
        size: u32,
        val: u64,
        implicit: bool,
    ) -> Result<(), Exception> {
        let first = PAGE_SIZE - (la & (PAGE_SIZE - 1));
        if size as u64 <= first {
            if !implicit {
                if let Some(h) = self.fast_hit(bus, la, AccessKind::Write) {
                    bus.mem.write_host(h.host, size, val);
                    self.log_access(la, h.pa, size as u64, true, val);
                    return Ok(());
                }
            }
            let pa = self.translate_slow(bus, la, AccessKind::Write, implicit)?;
            bus.write(pa, size as usize, val);
            self.log_access(la, pa, size as u64, true, val);
            return Ok(());
        }
        let pa1 = self.translate(bus, la, AccessKind::Write, implicit)?;
        let pa2 = self.translate(bus, la.wrapping_add(first), AccessKind::Write, implicit)?;
        bus.write(pa1, first as usize, val);
        bus.write(pa2, size as usize - first as usize, val >> (first * 8));
        self.log_access(la, pa1, first, true, val);
        self.log_access(
            la.wrapping_add(first),
            pa2,
            size as u64 - first,
            true,
            val >> (first * 8),
        );
        Ok(())
    }

    /// Alignment check (#AC): CR0.AM, RFLAGS.AC, CPL 3 and a misaligned data access.
    #[inline]
    fn check_alignment(&self, la: u64, size: u32) -> Result<(), Exception> {
        if self.cpl == 3
            && size > 1
            && la & (size as u64 - 1) != 0
            && self.cr0 & cr0::AM != 0
            && self.flag(rflags::AC)
        {
            return Err(Exception::ac());
        }
        Ok(())
    }

    /// Data read through a segment.
    #[inline(always)]
    pub fn read_mem(
        &mut self,
        bus: &mut Bus,
        seg: SegReg,
        off: u64,
        size: u32,
    ) -> Result<u64, Exception> {
        let la = self.linear(seg, off, size, false)?;
        self.check_alignment(la, size)?;
        self.read_linear(bus, la, size, AccessKind::Read, false)
    }

    /// Data write through a segment.
    #[inline(always)]
    pub fn write_mem(
        &mut self,
        bus: &mut Bus,
        seg: SegReg,
        off: u64,
        size: u32,
        val: u64,
    ) -> Result<(), Exception> {
        let la = self.linear(seg, off, size, true)?;
        self.check_alignment(la, size)?;
        self.write_linear(bus, la, size, val, false)
    }

    /// Check that `size` bytes at `off` could be written (segmentation, alignment, paging
    /// of every page they touch) without writing them: an access "probe".
    pub fn probe_write(
        &mut self,
        bus: &mut Bus,
        seg: SegReg,
        off: u64,
        size: u32,
    ) -> Result<(), Exception> {
        let la = self.linear(seg, off, size, true)?;
        self.check_alignment(la, size)?;
        self.translate(bus, la, AccessKind::Write, false)?;
        let last = la.wrapping_add(size as u64 - 1);
        if last & !(PAGE_SIZE - 1) != la & !(PAGE_SIZE - 1) {
            self.translate(bus, last, AccessKind::Write, false)?;
        }
        Ok(())
    }

    /// Read for a read-modify-write: the translation is done as a write, so a fault on a
    /// read-only page reports W=1 and the dirty bit is set, as hardware does.
    #[inline(always)]
    pub fn read_mem_rmw(
        &mut self,
        bus: &mut Bus,
        seg: SegReg,
        off: u64,
        size: u32,
    ) -> Result<u64, Exception> {
        let la = self.linear(seg, off, size, true)?;
        self.check_alignment(la, size)?;
        self.read_linear(bus, la, size, AccessKind::Write, false)
    }

    /// May REP STOS/MOVS run whole pages at once ([`Self::rep_bulk`])? Only when nothing
    /// observes single accesses: no memory log, no TLB shadow check, no exit request
    /// pending (the loop re-checks it after every element), 64-bit mode.
    pub(crate) fn rep_bulk_allowed(&self, bus: &Bus) -> bool {
        #[cfg(feature = "trace-hooks")]
        if self.mem_log.is_some() {
            return false;
        }
        !self.tlb.shadow && bus.exit_request.is_none() && self.mode64()
    }

    /// REP STOS (`src` = `None`, storing the low `size` bytes of `val`) or REP MOVS (`src`
    /// = the source segment and offset) on up to `max` elements from ES:`di` forward,
    /// 64-bit addressing: as many elements as stay in the current page of each operand,
    /// when every one of those accesses would be a fast TLB hit, so exactly what that many
    /// single iterations do: the same checks pass (canonical addresses within one page,
    /// alignment), the same hits are counted (one per access), the same bytes are written
    /// in order (overlapping MOVS ranges are left to single iterations) and the same code
    /// frames are noted as written. Returns the elements done; 0 means run one iteration
    /// the ordinary way (which faults, walks or crosses a page as it would).
    pub(crate) fn rep_bulk(
        &mut self,
        bus: &mut Bus,
        src: Option<(SegReg, u64)>,
        di: u64,
        size: u32,
        val: u64,
        max: u64,
    ) -> u64 {
        let Some(ctx) = self.fast_ctx() else {
            return 0;
        };
        let key = self.tlb.fast_key(ctx);
        let ac = self.cpl == 3 && size > 1 && self.cr0 & cr0::AM != 0 && self.flag(rflags::AC);
        let room = |la: u64| (PAGE_SIZE - (la & (PAGE_SIZE - 1))) / size as u64;
        // ES has base 0 in 64-bit mode.
        let Ok(dla) = self.linear(SegReg::Es, di, size, true) else {
            return 0;
        };
        if ac && dla & (size as u64 - 1) != 0 {
            return 0;
        }
        let mut n = room(dla).min(max);
        let mut s_host = None;
        if let Some((seg, si)) = src {
            let Ok(sla) = self.linear(seg, si, size, false) else {
                return 0;
            };
            if ac && sla & (size as u64 - 1) != 0 {
                return 0;
            }
            n = n.min(room(sla));
            if n == 0 {
                return 0;
            }
            let Some(h) = self.tlb.fast_peek(sla, AccessKind::Read as usize, key) else {
                return 0;
            };
            s_host = Some(h.host);
        }
        if n == 0 {
            return 0;
        }
        let Some(d) = self.tlb.fast_peek(dla, AccessKind::Write as usize, key) else {
            return 0;
        };
        let len = (n * size as u64) as usize;
        match s_host {
            None => {
                bus.mem.fill_host(d.host, len, size, val);
                self.tlb.count_fast_hits(n);
            }
            Some(s) => {
                if s < d.host + len && d.host < s + len {
                    return 0;
                }
                bus.mem.copy_host(s, d.host, len);
                self.tlb.count_fast_hits(2 * n);
            }
        }
        n
    }

    /// Push onto the stack (`size` bytes).
    #[inline(always)]
    pub fn push(&mut self, bus: &mut Bus, val: u64, size: u32) -> Result<(), Exception> {
        let ss = self.stack_size();
        let sp_mask = alu::mask(ss);
        let rsp = self.gpr[regs::gpr::RSP];
        let new = rsp.wrapping_sub(size as u64) & sp_mask;
        self.write_mem(bus, SegReg::Ss, new, size, val)?;
        self.gpr[regs::gpr::RSP] = (rsp & !sp_mask) | new;
        Ok(())
    }

    /// Pop from the stack (`size` bytes).
    #[inline(always)]
    pub fn pop(&mut self, bus: &mut Bus, size: u32) -> Result<u64, Exception> {
        let ss = self.stack_size();
        let sp_mask = alu::mask(ss);
        let rsp = self.gpr[regs::gpr::RSP];
        let v = self.read_mem(bus, SegReg::Ss, rsp & sp_mask, size)?;
        self.gpr[regs::gpr::RSP] = (rsp & !sp_mask) | (rsp.wrapping_add(size as u64) & sp_mask);
        Ok(v)
    }

    // ---- fetch & decode -------------------------------------------------------------------

    /// The decode-cache slot of physical address `pa`. A frame's 4096 addresses fill one
    /// aligned 4096-slot part of the cache (`pa >> 12` and `pa >> 13` are constant within
    /// a frame, so bits 12 and up of the slot are too).
    #[inline(always)]
    fn decode_slot(pa: u64) -> usize {
        ((pa ^ (pa >> 13)) as usize) & (DECODE_CACHE_SLOTS - 1)
    }

    /// Several CPUs share one decode cache, handed to whichever CPU executes (its entries
    /// are keyed on physical addresses and code size, so they hold for any CPU, and the
    /// code-frame bitmap in `GuestMemory` then invalidates them for all): exchange this
    /// CPU's cache with `other`'s.
    pub fn swap_decode_cache(&mut self, other: &mut Cpu) {
        std::mem::swap(&mut self.decode_cache, &mut other.decode_cache);
        std::mem::swap(&mut self.decode_frames, &mut other.decode_frames);
        std::mem::swap(&mut self.blocks, &mut other.blocks);
        self.blk_page = NO_BLOCK;
        other.blk_page = NO_BLOCK;
    }

    /// Give up this CPU's decode cache (a CPU that is not executing holds none; see
    /// [`Self::swap_decode_cache`]). It must get one back before it executes.
    pub fn drop_decode_cache(&mut self) {
        self.decode_cache = Vec::new();
        self.decode_frames = Vec::new();
        self.blocks = Vec::new();
    }

    /// The instruction decoded into slot `slot` (for the generic executor).
    #[inline(always)]
    pub(crate) fn decoded_instruction(&self, slot: u16) -> Instruction {
        self.decode_cache[slot as usize].instr
    }

    /// Drop the decoded instructions of every frame written since the last fetch.
    #[cold]
    #[inline(never)]
    fn drop_written_frames(&mut self, bus: &mut Bus) {
        for pa in bus.mem.take_code_dirty() {
            self.decode_stats.frames_dropped += 1;
            let tag = (pa >> 12) as u32 + 1;
            let half = Self::decode_slot(pa) & !(PAGE_SIZE as usize - 1);
            for s in half..half + PAGE_SIZE as usize {
                if self.decode_frames[s] == tag {
                    self.decode_frames[s] = 0;
                    self.decode_cache[s].key = 0;
                }
                let bk = self.blocks[s].key;
                if bk != 0 && (bk - 1) >> 12 == pa >> 12 {
                    self.blocks[s] = Block::default();
                }
            }
        }
    }

    /// Fetch and decode the instruction at CS:RIP into `out`, a pre-decoded record.
    ///
    /// The record is written to `out` rather than returned: returning it inside a
    /// `Result` cost a store-forwarding stall on every step. A cached record is used as
    /// long as its physical address, RIP and code size match: writes to its frame (any
    /// path, see `GuestMemory::mark_code`) drop it before this runs, so no bytes are
    /// compared. The fetch itself is still translated (and permission-checked, and
    /// counted) on every instruction, exactly as before.
    fn fetch_decode(&mut self, bus: &mut Bus, out: &mut exec::fast::Rec) -> Result<(), Exception> {
        self.blk_page = NO_BLOCK;
        let cs = self.seg[SegReg::Cs as usize];
        let mode64 = self.long_mode() && cs.long();
        let bitness = if mode64 {
            64
        } else if cs.db() {
            32
        } else {
            16
        };
        let la = if mode64 {
            self.rip
        } else {
            if self.protected() && self.rip > cs.limit as u64 {
                return Err(Exception::gp0());
            }
            cs.base.wrapping_add(self.rip) & 0xffff_ffff
        };
        if mode64 && !GuestVirtAddr(la).is_canonical48() {
            return Err(Exception::gp0());
        }
        let fast = match self.fast_ctx() {
            Some(ctx) => {
                let key = self.tlb.fast_key(ctx);
                let hit = self.tlb.fast_lookup(la, AccessKind::Fetch as usize, key);
                if let Some(h) = hit {
                    if self.tlb.shadow {
                        self.shadow_check(bus, la, AccessKind::Fetch, h);
                    }
                    if mode64 {
                        self.blk_page = la >> 12;
                        self.blk_key = key;
                        self.blk_gen = self.tlb.fast_gen();
                        self.blk_frame = h.pa.as_u64() & !(PAGE_SIZE - 1);
                        self.blk_host = h.host - (la & (PAGE_SIZE - 1)) as usize;
                    }
                }
                hit
            }
            None => None,
        };
        let pa = match fast {
            Some(h) => h.pa,
            None => self.translate_slow(bus, la, AccessKind::Fetch, false)?,
        };
        // After the translation: its walk may have written a page-table entry too.
        if bus.mem.code_dirty_pending() {
            self.drop_written_frames(bus);
        }
        let slot = self.decode_at(bus, la, pa, bitness)?;
        *out = self.decode_cache[slot].rec;
        Ok(())
    }

    /// The decode-cache lookup (and on a miss, the decode) of the instruction at linear
    /// address `la` (CS:RIP), physical `pa`, whose fetch was just translated. Returns the
    /// index in `decode_cache` of the entry holding its record: its slot, or
    /// `DECODE_CACHE_SLOTS` for an instruction that is not cached. The entry stays as it
    /// is until the next fetch (entries are written only by `decode_miss` and
    /// `drop_written_frames`, both called from fetches only).
    #[inline(always)]
    fn decode_at(
        &mut self,
        bus: &mut Bus,
        la: u64,
        pa: GuestPhysAddr,
        bitness: u32,
    ) -> Result<usize, Exception> {
        let slot = Self::decode_slot(pa.as_u64());
        {
            let e = &self.decode_cache[slot];
            if e.key == pa.as_u64() + 1 && e.rip == self.rip && e.bitness == bitness {
                self.decode_stats.hits += 1;
                if self.decode_shadow {
                    self.decode_shadow_check(bus, pa, slot, bitness);
                }
                return Ok(slot);
            }
        }
        self.decode_miss(bus, la, pa, slot, bitness)
    }

    /// A decode-cache miss: read the bytes (translating the next page if the instruction
    /// crosses into it) and decode.
    #[inline(never)]
    fn decode_miss(
        &mut self,
        bus: &mut Bus,
        la: u64,
        pa: GuestPhysAddr,
        slot: usize,
        bitness: u32,
    ) -> Result<usize, Exception> {
        self.decode_stats.decodes += 1;
        let in_page = (PAGE_SIZE - (la & (PAGE_SIZE - 1))) as usize;
        let n = in_page.min(MAX_INSN_LEN);
        let mut buf = [0u8; MAX_INSN_LEN];
        let ram = match bus.mem.slice(pa, n) {
            Some(s) => {
                buf[..n].copy_from_slice(s);
                true
            }
            None => {
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = bus.read(pa.add(i as u64), 1) as u8;
                }
                false
            }
        };
        let mut len = n;
        if n < MAX_INSN_LEN {
            // The instruction may continue on the next page: fetch it only if needed.
            let mut dec = Decoder::with_ip(bitness, &buf[..n], self.rip, DecoderOptions::NONE);
            let i = dec.decode();
            if dec.last_error() == iced_x86::DecoderError::NoMoreBytes {
                // Crossing into the next page: translated again on every use (never cached).
                let pa2 =
                    self.translate(bus, la.wrapping_add(n as u64), AccessKind::Fetch, false)?;
                for (k, b) in buf[n..].iter_mut().enumerate() {
                    *b = bus.read(pa2.add(k as u64), 1) as u8;
                }
                len = MAX_INSN_LEN;
            } else {
                return self.finish_decode(bus, i, slot, pa, bitness, ram);
            }
        }
        let mut dec = Decoder::with_ip(bitness, &buf[..len], self.rip, DecoderOptions::NONE);
        let i = dec.decode();
        let cacheable = ram && (n == MAX_INSN_LEN || i.len() <= n);
        self.finish_decode(bus, i, slot, pa, bitness, cacheable)
    }

    /// The mask of RIP for a code size.
    #[inline(always)]
    fn rip_mask(bitness: u32) -> u64 {
        match bitness {
            64 => u64::MAX,
            32 => 0xffff_ffff,
            _ => 0xffff,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_decode(
        &mut self,
        bus: &mut Bus,
        i: Instruction,
        slot: usize,
        pa: GuestPhysAddr,
        bitness: u32,
        cacheable: bool,
    ) -> Result<usize, Exception> {
        if i.is_invalid() {
            return Err(Exception::ud());
        }
        let next_ip = i.next_ip() & Self::rip_mask(bitness);
        // Cached only in one RAM frame, which the bitmap then watches for writes.
        let slot = if cacheable && bus.mem.mark_code(pa) {
            slot
        } else {
            DECODE_CACHE_SLOTS
        };
        let rec = exec::fast::build(&i, bitness, next_ip, slot as u16);
        self.decode_cache[slot] = DecodeEntry {
            key: if slot == DECODE_CACHE_SLOTS {
                0
            } else {
                pa.as_u64() + 1
            },
            rip: self.rip,
            bitness,
            rec,
            instr: i,
        };
        if slot != DECODE_CACHE_SLOTS {
            self.decode_frames[slot] = (pa.as_u64() >> 12) as u32 + 1;
        }
        Ok(slot)
    }

    /// `VMSCOPE_DECODE_SHADOW=1`: the bytes at `pa` must still decode to the cached
    /// instruction and record, and the frame must still be marked in the code bitmap.
    #[cold]
    #[inline(never)]
    fn decode_shadow_check(&self, bus: &Bus, pa: GuestPhysAddr, slot: usize, bitness: u32) {
        let e = &self.decode_cache[slot];
        let in_page = (PAGE_SIZE - (pa.as_u64() & (PAGE_SIZE - 1))) as usize;
        let n = in_page.min(MAX_INSN_LEN);
        let bytes = bus.mem.slice(pa, n).map(|s| s.to_vec()).unwrap_or_default();
        let mut dec = Decoder::with_ip(bitness, &bytes, self.rip, DecoderOptions::NONE);
        let i = dec.decode();
        let next_ip = i.next_ip() & Self::rip_mask(bitness);
        let rec = exec::fast::build(&i, bitness, next_ip, slot as u16);
        let same = !i.is_invalid()
            && i == e.instr
            && i.len() == e.instr.len()
            && i.next_ip() == e.instr.next_ip()
            && rec.same(&e.rec);
        assert!(
            same && bus.mem.is_code(pa),
            "vmscope: decode shadow: cached instruction at rip={:#x} pa={pa} is `{}` ({}), \
             the bytes {:02x?} now decode to `{}`; frame marked: {}",
            self.rip,
            e.instr,
            if e.rec.is_generic() {
                "generic"
            } else {
                "specialised"
            },
            &bytes[..i.len().min(bytes.len())],
            i,
            bus.mem.is_code(pa)
        );
    }

    /// Raw bytes at CS:RIP for reports (no faults, best effort).
    pub fn peek_bytes(&mut self, bus: &mut Bus, rip: u64, n: usize) -> Vec<u8> {
        let cs_base = if self.mode64() {
            0
        } else {
            self.seg[SegReg::Cs as usize].base
        };
        let mut out = Vec::new();
        for k in 0..n as u64 {
            let la = cs_base.wrapping_add(rip).wrapping_add(k);
            match self.debug_translate(bus, la) {
                Some(pa) => out.push(bus.read(pa, 1) as u8),
                None => break,
            }
        }
        out
    }

    /// Translate for a debugger or report: no A/D updates, no TLB fill, no faults.
    pub fn debug_translate(&mut self, bus: &mut Bus, la: u64) -> Option<GuestPhysAddr> {
        if !self.paging() {
            return Some(GuestPhysAddr(la));
        }
        if !self.long_mode() {
            return None;
        }
        let mode = self.paging_mode();
        let acc = Access::implicit(AccessKind::Read);
        let m = PagingMode {
            smap: false,
            pke: false,
            pks: false,
            ..mode
        };
        mmu::walk(&mut bus.mem, &m, GuestVirtAddr(la), acc, false)
            .ok()
            .map(|t| t.phys(GuestVirtAddr(la)))
    }

    // ---- stepping -------------------------------------------------------------------------

    /// Execute one instruction (or deliver the exception it raises).
    pub fn step(&mut self, bus: &mut Bus) -> Step {
        let mut rec = exec::fast::Rec::generic(0, 0);
        self.step_rec(bus, &mut rec)
    }

    /// [`Self::step`], leaving the record it executed in `rec`. On return `blk_page`
    /// is `NO_BLOCK` unless the instruction completed without a fault or a single-step
    /// trap and was fetched through the fast fetch entry in 64-bit mode.
    #[inline(always)]
    fn step_rec(&mut self, bus: &mut Bus, rec: &mut exec::fast::Rec) -> Step {
        if self.halted {
            return Step::Halted;
        }
        self.insn_rip = self.rip;
        bus.now = self.icount;
        let tf = self.flag(rflags::TF);
        let result = match self.fetch_decode(bus, rec) {
            Ok(()) => {
                self.rip = rec.next_ip;
                (rec.handler)(self, bus, rec).map_err(|e| *e)
            }
            Err(e) => Err(e),
        };
        self.icount += 1;
        self.materialize_flags();
        match result {
            Ok(()) => {
                // SYSCALL and SYSRET trap on the TF they leave, not the one they found
                // (FMASK clears it on entry; R11 sets it on return).
                let tf = if std::mem::take(&mut self.tf_from_end) {
                    self.flag(rflags::TF)
                } else {
                    tf
                };
                if tf && !self.halted {
                    return self.single_step_trap(bus);
                }
                Step::Ok
            }
            Err(e) => self.fault(bus, e),
        }
    }

    /// The instruction at `insn_rip` raised `e`: restart it after delivery.
    #[cold]
    #[inline(never)]
    fn fault(&mut self, bus: &mut Bus, e: Exception) -> Step {
        self.materialize_flags();
        self.blk_page = NO_BLOCK;
        // Faults restart the instruction: report the faulting RIP.
        self.rip = self.insn_rip;
        if self.last_unimplemented.is_some() {
            if self.stop_on_unimplemented {
                // An emulator limit, not guest behaviour: the machine stops.
                bus.kick();
                return Step::Ok;
            }
            self.last_unimplemented = None;
        }
        match self.deliver_exception(bus, e) {
            Ok(()) => Step::Ok,
            Err(stop) => Step::Stop(stop),
        }
    }

    /// Execute a block (issue [11], stage C): one instruction as [`Self::step`] does, then
    /// further instructions (of any code page the fast fetch entries serve under the same
    /// key) for as long as each one before ran a
    /// specialised handler without a fault, and `icount` is below `bus.next_event`. What
    /// `Machine::run` would do between two instructions is then nothing at all (its only
    /// per-instruction check is that comparison, made here before every instruction), so
    /// the instruction sequence, icount, interrupts, timers and faults are exactly those
    /// of repeated steps.
    ///
    /// What a continued instruction skips is only what cannot have changed: the code size
    /// and linear address (64-bit mode: CS and the mode bits are written by no specialised
    /// handler), the canonical check (made again when the page changes) and the fast
    /// entry's key (CPL, CR0, CR3, CR4, EFER and RFLAGS.AC are written by no specialised
    /// handler; they change status flags and, CLI, IF only). The fast fetch entry itself is looked up again and
    /// counted as a TLB hit, as a full fetch does, so a data access that refilled its slot
    /// makes the lookup miss; then, as when a written code frame waits to be dropped, the
    /// block ends and the next full fetch does the work. Nothing outside the CPU runs
    /// between the instructions of one call, so no other writer (a debugger, a test) can
    /// change that state in between; [`Self::step`] callers never continue a block.
    pub fn run_block(&mut self, bus: &mut Bus) -> Step {
        let mut rec = exec::fast::Rec::generic(0, 0);
        let s = self.step_rec(bus, &mut rec);
        if !matches!(s, Step::Ok) {
            return s;
        }
        let mut generic = rec.is_generic();
        loop {
            if self.blk_page == NO_BLOCK
                || generic
                || self.icount >= bus.next_event
                || bus.mem.code_dirty_pending()
            {
                self.materialize_flags();
                return Step::Ok;
            }
            let la = self.rip;
            let off = la & (PAGE_SIZE - 1);
            if la >> 12 == self.blk_page && self.tlb.fast_gen() == self.blk_gen {
                // No fast entry has changed since the lookup that gave `blk_frame` for
                // this page and key hit: the lookup would hit again, with the same frame.
                self.tlb.count_fast_hit();
            } else {
                // Another page (a call, jump or return out of this one, or running off
                // its end), or a fast entry changed: the fast fetch lookup of a full fetch,
                // under the same key (what sets it, CPL, CR0/3/4, EFER and RFLAGS.AC, no
                // specialised handler writes), after its canonical check; on a miss the
                // next full fetch walks or faults.
                if !GuestVirtAddr(la).is_canonical48() {
                    self.materialize_flags();
                    return Step::Ok;
                }
                let Some(h) = self
                    .tlb
                    .fast_lookup(la, AccessKind::Fetch as usize, self.blk_key)
                else {
                    self.materialize_flags();
                    return Step::Ok;
                };
                self.blk_page = la >> 12;
                self.blk_gen = self.tlb.fast_gen();
                self.blk_frame = h.pa.as_u64() & !(PAGE_SIZE - 1);
                self.blk_host = h.host - off as usize;
            }
            let pa = GuestPhysAddr(self.blk_frame | off);
            self.insn_rip = la;
            bus.now = self.icount;
            if self.tlb.shadow {
                let h = FastHit {
                    pa,
                    host: self.blk_host + off as usize,
                };
                self.shadow_check(bus, la, AccessKind::Fetch, h);
            }
            // A block starting here runs whole when nothing can fire inside it.
            let bi = Self::decode_slot(pa.as_u64());
            let b = &self.blocks[bi];
            let here = b.key == pa.as_u64() + 1 && b.rip == la;
            if here {
                if b.rebuilds != 0 {
                    self.build_block(pa.as_u64(), la, bi, b.rebuilds - 1);
                }
                if bus.next_event.wrapping_sub(self.icount) >= self.blocks[bi].recs.len() as u64 {
                    if let Some(s) = self.run_tb(bus, bi) {
                        return s;
                    }
                    continue;
                }
            }
            let result = match self.decode_at(bus, la, pa, 64) {
                Ok(slot) => {
                    if !here && slot != DECODE_CACHE_SLOTS {
                        self.build_block(pa.as_u64(), la, bi, BLOCK_REBUILDS);
                    }
                    // The handler runs on the record in its cache entry, not on a copy.
                    let r: *const exec::fast::Rec = &self.decode_cache[slot].rec;
                    // SAFETY: the entry lives in `decode_cache`'s heap buffer, which is
                    // not part of `*self` and is never reallocated, and nothing writes it
                    // while the handler runs: entries are written only by `decode_miss`
                    // and `drop_written_frames`, which only a fetch calls (a store into a
                    // code frame only queues the frame; the entries are dropped at the
                    // next fetch), and no handler fetches. The generic handler reads the
                    // entry's `Instruction` through `decoded_instruction` (a read).
                    let r = unsafe { &*r };
                    generic = r.is_generic();
                    self.rip = r.next_ip;
                    (r.handler)(self, bus, r).map_err(|e| *e)
                }
                Err(e) => Err(e),
            };
            self.icount += 1;
            if let Err(e) = result {
                return self.fault(bus, e);
            }
            if generic && self.tf_from_end {
                // SYSCALL/SYSRET entered with TF clear may leave it set.
                self.tf_from_end = false;
                self.materialize_flags();
                if self.flag(rflags::TF) && !self.halted {
                    return self.single_step_trap(bus);
                }
            }
        }
    }

    /// The single-step #DB after an instruction (SDM 17.3.1.4): DR6.BS.
    #[cold]
    fn single_step_trap(&mut self, bus: &mut Bus) -> Step {
        self.blk_page = NO_BLOCK;
        self.dr[6] |= 1 << 14;
        match self.deliver_exception(bus, Exception::new(exception::vector::DB)) {
            Ok(()) => Step::Ok,
            Err(stop) => Step::Stop(stop),
        }
    }

    /// Run the block in slot `bi` (stage D), whose first instruction's fetch the caller
    /// counted (and shadow-checked) and which fits below `bus.next_event`. Each instruction
    /// is run as the per-instruction loop of [`Self::run_block`] runs it (the fetch counted
    /// as a TLB hit, the decode as a cache hit, `insn_rip`, `bus.now`, RIP, the handler,
    /// icount), without the checks that only a memory access can make fail: after an
    /// instruction that may access memory, the block stops unless the fast TLB generation
    /// is unchanged, no written code frame waits to be dropped (a store into this very
    /// block included) and `icount` is still below `next_event` (an MMIO write may have
    /// moved it). Returns the step of a fault's delivery, or `None` to go on at RIP in
    /// the per-instruction loop, which makes all of its checks again.
    #[inline(always)]
    fn run_tb(&mut self, bus: &mut Bus, bi: usize) -> Option<Step> {
        if self.tlb.shadow || self.decode_shadow {
            self.run_tb_impl::<true>(bus, bi)
        } else {
            self.run_tb_impl::<false>(bus, bi)
        }
    }

    #[inline(always)]
    fn run_tb_impl<const SHADOW: bool>(&mut self, bus: &mut Bus, bi: usize) -> Option<Step> {
        let b: *const Block = &self.blocks[bi];
        // SAFETY: `blocks` is a heap buffer that is never reallocated, not part of `*self`
        // itself, and a block is written only by `build_block` and `drop_written_frames`,
        // which run outside handlers (in `run_block` between instructions and in fetches;
        // no handler fetches). A block's records are copies, so evicting a decode-cache
        // entry leaves them alone.
        let b = unsafe { &*b };
        let n = b.recs.len() as u64;
        self.decode_stats.blocks += 1;
        // The fetches of instructions 1.. (the caller counted the first's) and the decode
        // hits of all, taken back for those not run if the block stops early.
        self.tlb.count_fast_hits(n - 1);
        self.decode_stats.hits += n;
        let mut mem = b.mem;
        let mut last = self.rip;
        for (k, r) in b.recs.iter().enumerate() {
            // Instructions before the last have no control flow: RIP is this one's.
            let at = self.rip;
            last = at;
            let m = mem & 1 != 0;
            // `insn_rip` and `bus.now` are read only by memory and bus accesses, by a
            // fault's delivery and after the block: set before a memory instruction (and
            // for the shadow checks), on a fault and at the end, with the values a step
            // gives them.
            if SHADOW || m {
                self.insn_rip = at;
                bus.now = self.icount;
            }
            if SHADOW {
                self.block_shadow_check(bus, r, k != 0);
            }
            self.rip = r.next_ip;
            let result = (r.handler)(self, bus, r);
            self.icount += 1;
            if let Err(e) = result {
                self.insn_rip = at;
                bus.now = self.icount - 1;
                self.uncount_block_rest(n - 1 - k as u64);
                return Some(self.fault(bus, *e));
            }
            if m && (self.tlb.fast_gen() != self.blk_gen
                || bus.mem.code_dirty_pending()
                || self.icount >= bus.next_event)
            {
                self.uncount_block_rest(n - 1 - k as u64);
                return None;
            }
            mem >>= 1;
        }
        self.insn_rip = last;
        bus.now = self.icount - 1;
        None
    }

    /// A block stopped with `rest` of its instructions not run: their fetch and decode
    /// hits, counted at its start, are taken back.
    #[cold]
    #[inline(never)]
    fn uncount_block_rest(&mut self, rest: u64) {
        self.tlb.uncount_fast_hits(rest);
        self.decode_stats.hits -= rest;
    }

    /// Build (or rebuild) the block of the instruction at physical `pa`, RIP `rip`, into
    /// slot `bi`, from decode-cache entries only: no fetch, no translation, no counter
    /// changes. A block that ended before an instruction not yet in the cache keeps
    /// `rebuilds` to be rebuilt when next entered.
    #[cold]
    #[inline(never)]
    fn build_block(&mut self, pa: u64, rip: u64, bi: usize, rebuilds: u8) {
        let mut mem = 0u64;
        let (mut p, mut ip) = (pa, rip);
        let mut missed = false;
        let mut len = 0;
        let mut slots = [0u16; BLOCK_MAX];
        loop {
            let s = Self::decode_slot(p);
            let e = &self.decode_cache[s];
            if e.key != p + 1 || e.rip != ip || e.bitness != 64 {
                missed = true;
                break;
            }
            if e.rec.is_generic() {
                break;
            }
            if exec::fast::may_access_memory(&e.instr) {
                mem |= 1 << len;
            }
            slots[len] = s as u16;
            len += 1;
            let next = e.rec.next_ip;
            if e.instr.flow_control() != iced_x86::FlowControl::Next
                || len == BLOCK_MAX
                || next >> 12 != rip >> 12
            {
                break;
            }
            p = (p & !(PAGE_SIZE - 1)) | (next & (PAGE_SIZE - 1));
            ip = next;
        }
        let old = &mut self.blocks[bi];
        let valid = old.key == pa + 1 && old.rip == rip;
        if valid && old.recs.len() >= len {
            // Still valid (its frame was not written): nothing longer to take in.
            old.rebuilds = if missed { rebuilds } else { 0 };
            return;
        }
        if len == 0 || (missed && len == 1 && !valid) {
            // A first pass through new code: the block is built when it runs again.
            return;
        }
        let recs: Box<[exec::fast::Rec]> = slots[..len]
            .iter()
            .map(|&s| self.decode_cache[s as usize].rec)
            .collect();
        self.blocks[bi] = Block {
            key: pa + 1,
            rip,
            recs,
            mem,
            rebuilds: if missed { rebuilds } else { 0 },
        };
    }

    /// The shadow checks of a block's instruction at RIP: `VMSCOPE_TLB_SHADOW` checks
    /// its fetch (`tlb`: not the first, which the caller checked) and
    /// `VMSCOPE_DECODE_SHADOW=1` re-decodes its bytes, which must still give the block's
    /// record, in a frame still marked in the code bitmap.
    #[cold]
    #[inline(never)]
    fn block_shadow_check(&self, bus: &Bus, r: &exec::fast::Rec, tlb: bool) {
        let la = self.rip;
        let off = la & (PAGE_SIZE - 1);
        let pa = GuestPhysAddr(self.blk_frame | off);
        if tlb && self.tlb.shadow {
            let h = FastHit {
                pa,
                host: self.blk_host + off as usize,
            };
            self.shadow_check(bus, la, AccessKind::Fetch, h);
        }
        if self.decode_shadow {
            let n = ((PAGE_SIZE - off) as usize).min(MAX_INSN_LEN);
            let bytes = bus.mem.slice(pa, n).map(|s| s.to_vec()).unwrap_or_default();
            let mut dec = Decoder::with_ip(64, &bytes, la, DecoderOptions::NONE);
            let i = dec.decode();
            let rec = exec::fast::build(&i, 64, i.next_ip(), r.slot);
            assert!(
                !i.is_invalid() && rec.same(r) && bus.mem.is_code(pa),
                "vmscope: decode shadow: block instruction at rip={la:#x} pa={pa}: the bytes \
                 {:02x?} now decode to `{i}`, not the block's record; frame marked: {}",
                &bytes[..i.len().min(bytes.len())],
                bus.mem.is_code(pa)
            );
        }
    }

    /// Report a CR3/CR4 write, INVLPG or INVPCID to the trace, if one is recording.
    pub fn mmu_event(&mut self, bus: &mut Bus, op: &str, value: u64, old: Option<u64>) {
        if bus.trace.is_none() {
            return;
        }
        let (pid, comm) = bus.who(
            self.cr3,
            self.seg[crate::cpu::regs::SegReg::Gs as usize].base,
            self.msr.kernel_gs_base,
        );
        let ev = TraceEvent::Mmu(MmuEvent {
            icount: self.icount,
            cpu: self.id,
            pid,
            comm,
            op: op.to_string(),
            rip: self.insn_rip,
            value,
            old,
        });
        if let Some(sink) = bus.trace.as_mut() {
            sink.event(&ev);
        }
    }

    /// The guest submitted an annotation record at virtual address `va` (see
    /// [`crate::ostrace`]): read it through the page tables, update the view of the
    /// guest's tasks, and trace it. Unreadable or malformed records are counted and
    /// logged, never fatal.
    pub fn annotation(&mut self, bus: &mut Bus, va: u64) {
        // One translation per page the record touches.
        let read = |cpu: &mut Cpu, bus: &mut Bus, va: u64, len: usize| -> Option<Vec<u8>> {
            let mut out = Vec::with_capacity(len);
            let mut at = va;
            while out.len() < len {
                let pa = cpu.debug_translate(bus, at)?;
                let in_page = (PAGE_SIZE - (at & (PAGE_SIZE - 1))) as usize;
                for k in 0..in_page.min(len - out.len()) {
                    out.push(bus.read(GuestPhysAddr(pa.0 + k as u64), 1) as u8);
                }
                at = va.wrapping_add(out.len() as u64);
            }
            Some(out)
        };
        let rec = read(self, bus, va, 4)
            .ok_or_else(|| "unmapped".to_string())
            .and_then(|h| ostrace::record_size(&h).map_err(|e| e.to_string()))
            .and_then(|n| read(self, bus, va, n).ok_or_else(|| "unmapped".to_string()))
            .and_then(|r| ostrace::decode(&r).map_err(|e| e.to_string()));
        let a = match rec {
            Ok(a) => a,
            Err(e) => {
                bus.os.bad_records += 1;
                log::warn!(
                    "bad trace annotation at {va:#x} (rip {:#x}): {e}",
                    self.insn_rip
                );
                return;
            }
        };
        bus.os.apply(&a);
        if let Some(sink) = bus.trace.as_mut() {
            sink.event(&TraceEvent::Os(crate::trace::os_event(
                &a,
                self.icount,
                self.id,
            )));
        }
    }

    /// Raise #UD for an instruction this CPU does not implement, logging it once.
    pub fn unimplemented(&mut self, instr: &Instruction) -> Exception {
        let name = format!("{:?}", instr.code());
        if self.unimplemented_seen.insert(name.clone()) {
            log::warn!(
                "unimplemented instruction {} ({}) at rip={:#x}: raising #UD",
                instr,
                name,
                self.insn_rip
            );
        }
        self.last_unimplemented = Some(format!("{instr} ({name})"));
        Exception::ud()
    }

    /// A one-screen register dump for stop reports.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for (i, name) in regs::gpr::NAMES.iter().enumerate() {
            s += &format!(
                "{name:>3}={:016x}{}",
                self.gpr[i],
                if i % 4 == 3 { "\n" } else { " " }
            );
        }
        s += &format!(
            "rip={:016x} rflags={:08x} cpl={} mode={}\n",
            self.rip,
            self.rflags,
            self.cpl,
            if self.mode64() {
                "64-bit"
            } else if self.long_mode() {
                "compat"
            } else if self.protected() {
                "protected"
            } else {
                "real"
            }
        );
        let names = ["es", "cs", "ss", "ds", "fs", "gs"];
        for (i, n) in names.iter().enumerate() {
            let sg = &self.seg[i];
            s += &format!(
                "{n}={:04x} base={:x} limit={:x} attr={:04x}\n",
                sg.selector, sg.base, sg.limit, sg.attr
            );
        }
        s += &format!(
            "cr0={:x} cr2={:x} cr3={:x} cr4={:x} efer={:x}\ngdtr={:x}/{:x} idtr={:x}/{:x} tr={:04x}\n",
            self.cr0, self.cr2, self.cr3, self.cr4, self.efer, self.gdtr.base, self.gdtr.limit,
            self.idtr.base, self.idtr.limit, self.tr.selector
        );
        s
    }
}

#[cfg(test)]
mod tlb_check_tests {
    //! `--tlb check`'s classification, on hand-built 4-level tables: a cached entry that
    //! permits what the tables no longer permit is a stale use; a cached entry that denies
    //! what the tables now permit is a spurious fault; a cached entry that denies what the
    //! tables deny too (an ordinary COW write) is neither.
    use super::*;
    use crate::devices::uart16550::ConsoleSink;
    use crate::machine::{Machine, MachineConfig};
    use crate::mmu::AccessKind;

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;
    const FRAME_A: u64 = 0x10000;
    const FRAME_B: u64 = 0x11000;
    /// The page under test: PML4, PDPT, PD and PT index 0.
    const VA: u64 = 0;
    const P: u64 = 1;
    const W: u64 = 2;
    const U: u64 = 4;

    /// A long-mode machine at CPL 3 whose tables map VA to FRAME_A with `leaf` flags.
    fn machine(leaf: u64) -> Machine {
        let config = MachineConfig {
            mem_bytes: 4 << 20,
            tlb_mode: TlbMode::Check,
            ..MachineConfig::default()
        };
        let mut m = Machine::new(config, ConsoleSink::Buffer(Default::default())).unwrap();
        let mem = &mut m.bus.mem;
        mem.write(GuestPhysAddr(PML4), 8, PDPT | P | W | U);
        mem.write(GuestPhysAddr(PDPT), 8, PD | P | W | U);
        mem.write(GuestPhysAddr(PD), 8, PT | P | W | U);
        mem.write(GuestPhysAddr(PT), 8, FRAME_A | leaf);
        let c = &mut m.cpu;
        c.cr0 = cr0::PE | cr0::PG | cr0::WP;
        c.cr4 = cr4::PAE;
        c.efer = efer::LME | efer::LMA | efer::NXE;
        c.cr3 = PML4;
        c.cpl = 3;
        m
    }

    fn set_leaf(m: &mut Machine, v: u64) {
        m.bus.mem.write(GuestPhysAddr(PT), 8, v);
    }

    fn access(m: &mut Machine, kind: AccessKind) -> Result<GuestPhysAddr, Exception> {
        m.cpu.translate(&mut m.bus, VA, kind, false)
    }

    #[test]
    fn cow_write_through_a_read_only_entry_is_not_stale() {
        let mut m = machine(P | U);
        assert!(access(&mut m, AccessKind::Read).is_ok());
        // The kernel has not changed anything: the write faults on both counts.
        assert!(access(&mut m, AccessKind::Write).is_err());
        assert_eq!(m.cpu.tlb.stats.stale_uses, 0);
        assert_eq!(m.cpu.tlb.stats.spurious_faults, 0);
    }

    #[test]
    fn write_after_a_missing_flush_of_a_write_protect_is_stale() {
        let mut m = machine(P | W | U);
        assert!(access(&mut m, AccessKind::Write).is_ok());
        set_leaf(&mut m, FRAME_A | P | U); // write-protected, no INVLPG
        assert!(access(&mut m, AccessKind::Write).is_ok());
        assert_eq!(m.cpu.tlb.stats.stale_uses, 1);
        // A read through the same entry is still what the tables allow.
        assert!(access(&mut m, AccessKind::Read).is_ok());
        assert_eq!(m.cpu.tlb.stats.stale_uses, 1);
    }

    #[test]
    fn another_frame_or_an_unmapped_page_is_stale() {
        let mut m = machine(P | W | U);
        assert!(access(&mut m, AccessKind::Read).is_ok());
        set_leaf(&mut m, FRAME_B | P | W | U);
        assert_eq!(
            access(&mut m, AccessKind::Read).unwrap(),
            GuestPhysAddr(FRAME_A)
        );
        assert_eq!(m.cpu.tlb.stats.stale_uses, 1);
        set_leaf(&mut m, 0);
        assert!(access(&mut m, AccessKind::Read).is_ok());
        assert_eq!(m.cpu.tlb.stats.stale_uses, 2);
    }

    #[test]
    fn a_fault_from_stale_stricter_rights_is_spurious() {
        let mut m = machine(P | U);
        assert!(access(&mut m, AccessKind::Read).is_ok());
        set_leaf(&mut m, FRAME_A | P | W | U); // upgraded without a flush
        assert!(access(&mut m, AccessKind::Write).is_err());
        assert_eq!(m.cpu.tlb.stats.spurious_faults, 1);
        assert_eq!(m.cpu.tlb.stats.stale_uses, 0);
        // The #PF dropped the entry: the retry walks and succeeds.
        assert!(access(&mut m, AccessKind::Write).is_ok());
    }
}

#[cfg(test)]
mod fast_tlb_tests {
    //! The TLB's fast entries stand for modelled hits only: same frames, same counts, the
    //! same stale translations, and no hit where the privilege class or a paging-control
    //! bit differs from the one the entry was installed under.
    use super::*;
    use crate::devices::uart16550::ConsoleSink;
    use crate::machine::{Machine, MachineConfig};

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;
    const FRAME_A: u64 = 0x10000;
    const FRAME_B: u64 = 0x11000;
    const VA: u64 = 0x123;
    const P: u64 = 1;
    const W: u64 = 2;
    const U: u64 = 4;
    const D: u64 = 1 << 6;

    fn machine(leaf: u64, cpl: u8) -> Machine {
        let config = MachineConfig {
            mem_bytes: 4 << 20,
            tlb_mode: TlbMode::On,
            ..MachineConfig::default()
        };
        let mut m = Machine::new(config, ConsoleSink::Buffer(Default::default())).unwrap();
        m.cpu.tlb.shadow = true;
        let mem = &mut m.bus.mem;
        mem.write(GuestPhysAddr(PML4), 8, PDPT | P | W | U);
        mem.write(GuestPhysAddr(PDPT), 8, PD | P | W | U);
        mem.write(GuestPhysAddr(PD), 8, PT | P | W | U);
        mem.write(GuestPhysAddr(PT), 8, FRAME_A | leaf);
        let c = &mut m.cpu;
        c.cr0 = cr0::PE | cr0::PG | cr0::WP;
        c.cr4 = cr4::PAE;
        c.efer = efer::LME | efer::LMA | efer::NXE;
        c.cr3 = PML4;
        c.cpl = cpl;
        m
    }

    fn read(m: &mut Machine) -> Result<u64, Exception> {
        m.cpu
            .read_linear(&mut m.bus, VA, 8, AccessKind::Read, false)
    }
    fn write(m: &mut Machine, v: u64) -> Result<(), Exception> {
        m.cpu.write_linear(&mut m.bus, VA, 8, v, false)
    }
    fn leaf(m: &Machine) -> u64 {
        m.bus.mem.read_u64(GuestPhysAddr(PT)).unwrap()
    }

    #[test]
    fn fast_hits_count_as_hits_and_see_stale_frames() {
        let mut m = machine(P | W | U, 3);
        m.bus.mem.write(GuestPhysAddr(FRAME_A | VA), 8, 0xaaaa);
        m.bus.mem.write(GuestPhysAddr(FRAME_B | VA), 8, 0xbbbb);
        assert_eq!(read(&mut m), Ok(0xaaaa));
        assert_eq!(read(&mut m), Ok(0xaaaa));
        assert_eq!((m.cpu.tlb.stats.misses, m.cpu.tlb.stats.hits), (1, 1));
        // Remapped without a flush: the stale frame, as the modelled TLB gives.
        m.bus.mem.write(GuestPhysAddr(PT), 8, FRAME_B | P | W | U);
        assert_eq!(read(&mut m), Ok(0xaaaa));
        // A CR3 load (O(1) by generation) drops it.
        m.cpu.tlb.flush_non_global(None, FlushCause::Cr3);
        assert_eq!(read(&mut m), Ok(0xbbbb));
        assert_eq!((m.cpu.tlb.stats.misses, m.cpu.tlb.stats.hits), (2, 2));
    }

    #[test]
    fn a_write_through_a_clean_entry_still_walks_to_set_d() {
        let mut m = machine(P | W | U, 3);
        assert!(read(&mut m).is_ok());
        assert_eq!(leaf(&m) & D, 0);
        assert!(write(&mut m, 5).is_ok());
        assert_ne!(leaf(&m) & D, 0);
        // The write counted a hit (the clean entry) and walked again, as before.
        assert_eq!((m.cpu.tlb.stats.misses, m.cpu.tlb.stats.hits), (1, 1));
        assert!(write(&mut m, 6).is_ok());
        assert_eq!(read(&mut m), Ok(6));
        assert_eq!((m.cpu.tlb.stats.misses, m.cpu.tlb.stats.hits), (1, 3));
    }

    #[test]
    fn no_fast_hit_across_privilege_or_control_bits() {
        // A supervisor page read at CPL 0, then at CPL 3: #PF from the cached rights.
        let mut m = machine(P | W, 0);
        assert!(read(&mut m).is_ok());
        m.cpu.cpl = 3;
        assert_eq!(read(&mut m).unwrap_err().vector, exception::vector::PF);
        // A user page read at CPL 0 under SMAP: allowed with RFLAGS.AC, not without.
        let mut m = machine(P | W | U, 0);
        m.cpu.cr4 |= cr4::SMAP;
        m.cpu.rflags |= rflags::AC;
        assert!(read(&mut m).is_ok());
        m.cpu.rflags &= !rflags::AC;
        assert_eq!(read(&mut m).unwrap_err().vector, exception::vector::PF);
        // A read-only page written at CPL 0: allowed without CR0.WP, not with it.
        let mut m = machine(P | D, 0);
        m.cpu.cr0 &= !cr0::WP;
        assert!(write(&mut m, 1).is_ok());
        assert!(write(&mut m, 2).is_ok());
        m.cpu.cr0 |= cr0::WP;
        assert_eq!(write(&mut m, 3).unwrap_err().vector, exception::vector::PF);
    }

    /// Protection keys: a fast entry never lets an access skip the key check, whether the
    /// rights change (PKRU, IA32_PKRS) or CR4.PKE/PKS does; restricted keys get none.
    #[test]
    fn no_fast_hit_past_a_protection_key() {
        const KEY1: u64 = 1 << 59;
        const AD1: u32 = 1 << 2;
        const WD1: u32 = 1 << 3;
        let pf_pk = |r: Result<u64, Exception>| {
            let e = r.unwrap_err();
            e.vector == exception::vector::PF && e.error_code.unwrap_or(0) & mmu::pf_err::PK != 0
        };
        // PKRU changed under an installed fast entry (as WRPKRU/XRSTOR do).
        let mut m = machine(P | W | U | D | KEY1, 3);
        m.cpu.cr4 |= cr4::PKE;
        assert_eq!(read(&mut m), Ok(0));
        assert_eq!(read(&mut m), Ok(0));
        m.cpu.pkru = AD1;
        m.cpu.pk_changed(0, 0);
        assert!(pf_pk(read(&mut m)));
        // WD: reads keep working (without fast entries), writes fault, every time.
        m.cpu.pkru = WD1;
        m.cpu.pk_changed(AD1, 0);
        for _ in 0..3 {
            assert_eq!(read(&mut m), Ok(0));
            assert!(pf_pk(write(&mut m, 1).map(|_| 0)));
        }
        // CR4.PKE set under fast entries installed without it.
        let mut m = machine(P | W | U | D | KEY1, 3);
        m.cpu.pkru = AD1;
        assert_eq!(read(&mut m), Ok(0));
        assert_eq!(read(&mut m), Ok(0));
        m.cpu.cr4 |= cr4::PKE;
        assert!(pf_pk(read(&mut m)));
        // PKS: IA32_PKRS for a supervisor page, WD with CR0.WP.
        let mut m = machine(P | W | D | KEY1, 0);
        m.cpu.cr4 |= cr4::PKS;
        assert!(write(&mut m, 7).is_ok());
        assert!(write(&mut m, 8).is_ok());
        m.cpu.pkrs = WD1;
        m.cpu.pk_changed(0, 0);
        assert!(pf_pk(write(&mut m, 9).map(|_| 0)));
        assert_eq!(read(&mut m), Ok(8));
        m.cpu.cr0 &= !cr0::WP;
        assert!(write(&mut m, 10).is_ok());
    }

    #[test]
    #[should_panic(expected = "tlb shadow: fast hit")]
    fn the_shadow_check_catches_a_fast_entry_the_model_does_not_hold() {
        let mut m = machine(P | W | U, 3);
        assert!(read(&mut m).is_ok());
        m.cpu.tlb.corrupt_fast_entries();
        let _ = read(&mut m);
    }

    #[test]
    fn check_and_off_modes_install_no_fast_entries() {
        for mode in [TlbMode::Check, TlbMode::Off] {
            let mut m = machine(P | W | U, 3);
            m.cpu.tlb.mode = mode;
            for _ in 0..3 {
                assert!(read(&mut m).is_ok());
            }
            let s = m.cpu.tlb.stats;
            let want = if mode == TlbMode::Off { (0, 0) } else { (1, 2) };
            assert_eq!((s.misses, s.hits), want, "{mode:?}");
        }
    }
}
