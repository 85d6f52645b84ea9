//! Architectural register state and the bit names the SDM gives them (RFLAGS, CR0, CR4,
//! EFER, segment descriptor attributes). Pure data: no memory access here.

/// RFLAGS bits (SDM Vol. 1, 3.4.3).
pub mod rflags {
    pub const CF: u64 = 1 << 0;
    /// Bit 1 reads as 1.
    pub const FIXED: u64 = 1 << 1;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const TF: u64 = 1 << 8;
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    pub const IOPL: u64 = 3 << 12;
    pub const IOPL_SHIFT: u32 = 12;
    pub const NT: u64 = 1 << 14;
    pub const RF: u64 = 1 << 16;
    pub const VM: u64 = 1 << 17;
    pub const AC: u64 = 1 << 18;
    pub const VIF: u64 = 1 << 19;
    pub const VIP: u64 = 1 << 20;
    pub const ID: u64 = 1 << 21;
    /// The six arithmetic status flags.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
    /// Bits software may change at all (others are reserved and read as 0, bit 1 as 1).
    pub const WRITABLE: u64 = STATUS | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;
}

/// CR0 bits (SDM Vol. 3A, 2.5).
pub mod cr0 {
    pub const PE: u64 = 1 << 0;
    pub const MP: u64 = 1 << 1;
    pub const EM: u64 = 1 << 2;
    pub const TS: u64 = 1 << 3;
    pub const ET: u64 = 1 << 4;
    pub const NE: u64 = 1 << 5;
    pub const WP: u64 = 1 << 16;
    pub const AM: u64 = 1 << 18;
    pub const NW: u64 = 1 << 29;
    pub const CD: u64 = 1 << 30;
    pub const PG: u64 = 1 << 31;
    pub const VALID: u64 = PE | MP | EM | TS | ET | NE | WP | AM | NW | CD | PG;
}

/// CR4 bits (SDM Vol. 3A, 2.5).
pub mod cr4 {
    pub const VME: u64 = 1 << 0;
    pub const PVI: u64 = 1 << 1;
    pub const TSD: u64 = 1 << 2;
    pub const DE: u64 = 1 << 3;
    pub const PSE: u64 = 1 << 4;
    pub const PAE: u64 = 1 << 5;
    pub const MCE: u64 = 1 << 6;
    pub const PGE: u64 = 1 << 7;
    pub const PCE: u64 = 1 << 8;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    pub const UMIP: u64 = 1 << 11;
    pub const LA57: u64 = 1 << 12;
    pub const FSGSBASE: u64 = 1 << 16;
    pub const PCIDE: u64 = 1 << 17;
    pub const OSXSAVE: u64 = 1 << 18;
    pub const SMEP: u64 = 1 << 20;
    pub const SMAP: u64 = 1 << 21;
    pub const PKE: u64 = 1 << 22;
    pub const PKS: u64 = 1 << 24;
    /// The CR4 bits this CPU model implements; setting any other bit is #GP(0).
    pub const SUPPORTED: u64 = VME
        | PVI
        | TSD
        | DE
        | PSE
        | PAE
        | MCE
        | PGE
        | PCE
        | OSFXSR
        | OSXMMEXCPT
        | OSXSAVE
        | UMIP
        | FSGSBASE
        | PCIDE
        | SMEP
        | SMAP
        | PKE
        | PKS;
    /// Changing any of these flushes the whole TLB (SDM Vol. 3A, 4.10.4.1).
    pub const TLB_FLUSH_BITS: u64 = PGE | PAE | PSE | PCIDE | SMEP | SMAP | LA57;
}

/// IA32_EFER bits.
pub mod efer {
    pub const SCE: u64 = 1 << 0;
    pub const LME: u64 = 1 << 8;
    pub const LMA: u64 = 1 << 10;
    pub const NXE: u64 = 1 << 11;
    pub const SUPPORTED: u64 = SCE | LME | LMA | NXE;
}

/// Architectural MSR numbers this CPU implements.
pub mod msr {
    pub const IA32_TSC: u32 = 0x10;
    pub const IA32_APIC_BASE: u32 = 0x1b;
    /// The microcode update signature (IA32_BIOS_SIGN_ID).
    pub const IA32_BIOS_SIGN_ID: u32 = 0x8b;
    pub const IA32_MTRRCAP: u32 = 0xfe;
    pub const IA32_SYSENTER_CS: u32 = 0x174;
    pub const IA32_SYSENTER_ESP: u32 = 0x175;
    pub const IA32_SYSENTER_EIP: u32 = 0x176;
    pub const IA32_MISC_ENABLE: u32 = 0x1a0;
    /// IA32_MISC_ENABLE bit 0, fast-string operations enabled: what QEMU presents.
    pub const MISC_ENABLE_FAST_STRINGS: u64 = 1;
    pub const IA32_PAT: u32 = 0x277;
    /// Protection keys for supervisor-mode pages (CPUID.7.0:ECX.PKS).
    pub const IA32_PKRS: u32 = 0x6e1;
    pub const IA32_EFER: u32 = 0xc000_0080;
    pub const IA32_STAR: u32 = 0xc000_0081;
    pub const IA32_LSTAR: u32 = 0xc000_0082;
    pub const IA32_CSTAR: u32 = 0xc000_0083;
    pub const IA32_FMASK: u32 = 0xc000_0084;
    pub const IA32_FS_BASE: u32 = 0xc000_0100;
    pub const IA32_GS_BASE: u32 = 0xc000_0101;
    pub const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const IA32_TSC_AUX: u32 = 0xc000_0103;
    /// Power-on value of IA32_PAT (SDM Vol. 3A, 11.12.4).
    pub const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
    /// Power-on IA32_APIC_BASE: xAPIC enabled at 0xFEE00000, bootstrap processor.
    pub const APIC_BASE_DEFAULT: u64 = 0xfee0_0000 | (1 << 11) | (1 << 8);
}

/// Segment register indices, in the order of the x86 encoding (ES, CS, SS, DS, FS, GS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum SegReg {
    Es = 0,
    Cs = 1,
    Ss = 2,
    Ds = 3,
    Fs = 4,
    Gs = 5,
}

impl SegReg {
    pub fn from_iced(r: iced_x86::Register) -> Option<SegReg> {
        use iced_x86::Register as R;
        Some(match r {
            R::ES => SegReg::Es,
            R::CS => SegReg::Cs,
            R::SS => SegReg::Ss,
            R::DS => SegReg::Ds,
            R::FS => SegReg::Fs,
            R::GS => SegReg::Gs,
            _ => return None,
        })
    }
}

/// Descriptor attribute bits as held in a segment register's hidden part: the descriptor's
/// access byte in bits 0..7 and its flags nibble (AVL, L, D/B, G) in bits 12..15.
pub mod seg_attr {
    pub const TYPE_MASK: u16 = 0x0f;
    /// Code/data type bit 0: accessed.
    pub const TYPE_ACCESSED: u16 = 0x01;
    /// For data segments: writable; for code: readable.
    pub const TYPE_RW: u16 = 0x02;
    /// For data: expand-down; for code: conforming.
    pub const TYPE_DC: u16 = 0x04;
    pub const TYPE_CODE: u16 = 0x08;
    /// S: code/data (1) or system (0).
    pub const S: u16 = 0x10;
    pub const DPL_SHIFT: u16 = 5;
    pub const DPL_MASK: u16 = 0x60;
    pub const P: u16 = 0x80;
    pub const AVL: u16 = 0x1000;
    pub const L: u16 = 0x2000;
    pub const DB: u16 = 0x4000;
    pub const G: u16 = 0x8000;
}

/// System descriptor types (S=0) in long mode / protected mode.
pub mod sys_type {
    pub const LDT: u16 = 0x2;
    pub const TSS16_AVAIL: u16 = 0x1;
    pub const TSS_AVAIL: u16 = 0x9;
    pub const TSS_BUSY: u16 = 0xb;
    pub const CALL_GATE: u16 = 0xc;
    pub const INTR_GATE: u16 = 0xe;
    pub const TRAP_GATE: u16 = 0xf;
    pub const INTR_GATE32: u16 = 0xe;
}

/// A segment register: the visible selector and the descriptor cache behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    pub base: u64,
    pub limit: u32,
    pub attr: u16,
}

impl Segment {
    pub fn present(&self) -> bool {
        self.attr & seg_attr::P != 0
    }
    pub fn dpl(&self) -> u8 {
        ((self.attr & seg_attr::DPL_MASK) >> seg_attr::DPL_SHIFT) as u8
    }
    pub fn is_code(&self) -> bool {
        self.attr & seg_attr::S != 0 && self.attr & seg_attr::TYPE_CODE != 0
    }
    pub fn long(&self) -> bool {
        self.attr & seg_attr::L != 0
    }
    pub fn db(&self) -> bool {
        self.attr & seg_attr::DB != 0
    }
    pub fn rpl(&self) -> u8 {
        (self.selector & 3) as u8
    }
    /// Flat 32-bit segment with the given access byte (used for reset and PVH entry).
    pub fn flat32(selector: u16, access: u16) -> Self {
        Segment {
            selector,
            base: 0,
            limit: 0xffff_ffff,
            attr: access | seg_attr::DB | seg_attr::G,
        }
    }
}

/// GDTR / IDTR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescTable {
    pub base: u64,
    pub limit: u16,
}

/// General-purpose register numbers (the encoding order).
pub mod gpr {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
    pub const R8: usize = 8;
    pub const R9: usize = 9;
    pub const R10: usize = 10;
    pub const R11: usize = 11;
    pub const NAMES: [&str; 16] = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
}
