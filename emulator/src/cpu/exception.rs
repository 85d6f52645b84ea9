//! Architectural exceptions as values. Every instruction returns `Result<_, Exception>`;
//! delivery (IDT walk, stack switch, #DF escalation) happens in one place: `interrupts.rs`.

use std::fmt;

/// Exception and interrupt vectors named as in the Intel SDM, Vol. 3A, Table 6-1.
pub mod vector {
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const MF: u8 = 16;
    pub const AC: u8 = 17;
    pub const MC: u8 = 18;
    pub const XM: u8 = 19;
}

/// The SDM mnemonic of a vector ("#PF"), or "INT n" for the rest.
pub fn vector_name(v: u8) -> &'static str {
    const NAMES: [&str; 21] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF9", "#TS", "#NP", "#SS",
        "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE",
    ];
    NAMES.get(v as usize).copied().unwrap_or("INT")
}

/// A fault or trap raised by an instruction (or by delivery itself).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Exception {
    pub vector: u8,
    /// Error code pushed on the handler's stack, for the vectors that push one.
    pub error_code: Option<u32>,
    /// For #PF: the linear address that goes to CR2.
    pub cr2: Option<u64>,
}

impl Exception {
    pub const fn new(vector: u8) -> Self {
        Self {
            vector,
            error_code: None,
            cr2: None,
        }
    }
    pub const fn with_code(vector: u8, code: u32) -> Self {
        Self {
            vector,
            error_code: Some(code),
            cr2: None,
        }
    }
    pub const fn de() -> Self {
        Self::new(vector::DE)
    }
    pub const fn ud() -> Self {
        Self::new(vector::UD)
    }
    pub const fn gp(code: u32) -> Self {
        Self::with_code(vector::GP, code)
    }
    pub const fn gp0() -> Self {
        Self::with_code(vector::GP, 0)
    }
    pub const fn ss(code: u32) -> Self {
        Self::with_code(vector::SS, code)
    }
    pub const fn np(code: u32) -> Self {
        Self::with_code(vector::NP, code)
    }
    pub const fn ts(code: u32) -> Self {
        Self::with_code(vector::TS, code)
    }
    pub const fn ac() -> Self {
        Self::with_code(vector::AC, 0)
    }
    pub const fn pf(code: u32, addr: u64) -> Self {
        Self {
            vector: vector::PF,
            error_code: Some(code),
            cr2: Some(addr),
        }
    }

    /// Exception class for the double-fault rules (SDM Vol. 3A, Table 6-4).
    pub fn class(&self) -> ExceptionClass {
        match self.vector {
            vector::DE | vector::TS | vector::NP | vector::SS | vector::GP => {
                ExceptionClass::Contributory
            }
            vector::PF => ExceptionClass::PageFault,
            vector::DF => ExceptionClass::DoubleFault,
            _ => ExceptionClass::Benign,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionClass {
    Benign,
    Contributory,
    PageFault,
    DoubleFault,
}

impl fmt::Debug for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", vector_name(self.vector))?;
        if let Some(c) = self.error_code {
            write!(f, "({c:#x})")?;
        }
        if let Some(a) = self.cr2 {
            write!(f, " cr2={a:#x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Selector error code (SDM 6.13): index | TI | EXT. IDT references set bit 1.
pub const ERR_EXT: u32 = 1;
pub const ERR_IDT: u32 = 2;

/// Error code naming IDT entry `vector`.
pub fn idt_error_code(vector: u8, external: bool) -> u32 {
    ((vector as u32) << 3) | ERR_IDT | if external { ERR_EXT } else { 0 }
}

/// Whether an exception with this vector pushes an error code (SDM Vol. 3A, Table 6-1:
/// #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX).
pub fn has_error_code(vector: u8) -> bool {
    const CP: u8 = 21;
    const VC: u8 = 29;
    const SX: u8 = 30;
    matches!(
        vector,
        vector::DF | vector::TS | vector::NP | vector::SS | vector::GP | vector::PF | vector::AC
    ) || matches!(vector, CP | VC | SX)
}
