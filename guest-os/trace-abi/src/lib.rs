//! The trace-annotation protocol of vmscope's paravirtual port.
//!
//! The guest kernel builds a record in its own memory and writes the record's *virtual*
//! address to the port: the high half to [`TRACE_PTR_HI`] (latched), then the low half to
//! [`TRACE_PTR_LO`], which submits it. vmscope reads the record through the current page
//! tables at that moment. The kernel keeps interrupts off between the two writes so that
//! the latch is not shared. On QEMU nothing decodes these ports.
//!
//! Record layout (little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | kind ([`kind`]) |
//! | 2 | 2 | total size of the record in bytes, [`HEADER`]..=[`MAX_RECORD`] |
//! | 4 | 4 | PID the event concerns (0: none) |
//! | 8 | 16 | that task's name (`comm`), NUL-padded |
//! | 24 | 4 x 8 | arguments a0..a3, meaning by kind |
//! | 56 | size-56 | a string argument (UTF-8; the exec path), may be empty |
#![no_std]

use core::fmt;

/// Port offset (from the pvport base) of the low half of a record's address; writing it
/// submits the record.
pub const TRACE_PTR_LO: u16 = 0x10;
/// Port offset of the high half of the next record's address (latched).
pub const TRACE_PTR_HI: u16 = 0x14;
/// Port offset of the trace-wanted register (read): bit 0 set while the host has a trace
/// consumer for the per-system-call records (`SYSCALL`/`SYSRET`), which the kernel sends
/// only then (they would double the cost of a short system call for nobody).
pub const TRACE_WANTED: u16 = 0x18;

/// Size of the fixed part of a record.
pub const HEADER: usize = 56;
/// The largest record.
pub const MAX_RECORD: usize = 256;
/// The longest string a record carries.
pub const MAX_TEXT: usize = MAX_RECORD - HEADER;

/// Record kinds.
pub mod kind {
    /// A user-address page fault was resolved (or not): a0 address, a1 error code, a2 RIP,
    /// a3 outcome ([`super::outcome`]).
    pub const FAULT: u16 = 1;
    /// fork/vfork/clone made a process: a0 the child's PID.
    pub const FORK: u16 = 2;
    /// execve succeeded: a0 entry point, a1 load bias; string: the path.
    pub const EXEC: u16 = 3;
    /// A process exited: a0 the wait status (as wait4 encodes it).
    pub const EXIT: u16 = 4;
    /// A signal was acted on: a0 signal, a1 si_code, a2 si_addr, a3 action
    /// ([`super::sigaction`]).
    pub const SIGNAL: u16 = 5;
    /// Context switch: a0 previous PID (0: idle), a1 next PID (0: idle). PID and comm are
    /// the next task's.
    pub const SWITCH: u16 = 6;
    /// System call entry: a0 number.
    pub const SYSCALL: u16 = 7;
    /// System call return: a0 number, a1 return value.
    pub const SYSRET: u16 = 8;
    /// Memory reclaim: a0 what ([`super::reclaim`]), a1 page frame number, a2 address or
    /// swap slot, a3 victim PID.
    pub const RECLAIM: u16 = 9;
    /// Dirty page writeback: a0 phase ([`super::writeback`]), a1 pages (dirty when it
    /// starts, written when it ends).
    pub const WRITEBACK: u16 = 10;
}

/// Phases of a writeback (a0 of [`kind::WRITEBACK`]).
pub mod writeback {
    pub const START: u64 = 0;
    pub const END: u64 = 1;

    pub fn name(code: u64) -> &'static str {
        match code {
            START => "start",
            END => "end",
            _ => "unknown",
        }
    }
}

/// Page-fault outcomes (a3 of [`kind::FAULT`]; [`outcome::STACK_GREW`] may be or'ed in).
pub mod outcome {
    pub const DEMAND_ZERO: u64 = 1;
    pub const ZERO_PAGE: u64 = 2;
    pub const FILE_PAGE: u64 = 3;
    pub const COW_COPY: u64 = 4;
    pub const COW_REUSE: u64 = 5;
    pub const SWAP_IN: u64 = 6;
    pub const SPURIOUS: u64 = 7;
    /// No VMA covers the address (SIGSEGV, SEGV_MAPERR).
    pub const SEGV_MAPERR: u64 = 8;
    /// The VMA forbids the access (SIGSEGV, SEGV_ACCERR).
    pub const SEGV_ACCERR: u64 = 9;
    pub const SIGBUS: u64 = 10;
    /// A kernel access to a bad user address, resumed at its exception-table fixup
    /// (the system call returns -EFAULT).
    pub const FIXUP_EFAULT: u64 = 11;
    /// Flag: the fault grew the stack VMA before it was resolved.
    pub const STACK_GREW: u64 = 1 << 8;
    /// Flag: the fault waited for the disk (a major fault, `VM_FAULT_MAJOR`).
    pub const MAJOR: u64 = 1 << 9;

    /// The trace name of an outcome code (without the flag).
    pub fn name(code: u64) -> &'static str {
        match code & 0xff {
            DEMAND_ZERO => "demand_zero",
            ZERO_PAGE => "zero_page",
            FILE_PAGE => "file_page",
            COW_COPY => "cow_copy",
            COW_REUSE => "cow_reuse",
            SWAP_IN => "swap_in",
            SPURIOUS => "spurious",
            SEGV_MAPERR => "sigsegv_maperr",
            SEGV_ACCERR => "sigsegv_accerr",
            SIGBUS => "sigbus",
            FIXUP_EFAULT => "fixup_efault",
            _ => "unknown",
        }
    }
}

/// What happened with a signal (a3 of [`kind::SIGNAL`]).
pub mod sigaction {
    pub const HANDLER: u64 = 0;
    pub const KILL: u64 = 1;
    pub const STOP: u64 = 2;
    pub const CONTINUE: u64 = 3;
    pub const IGNORE: u64 = 4;
    pub const CORE: u64 = 5;

    pub fn name(code: u64) -> &'static str {
        match code {
            HANDLER => "handler",
            KILL => "kill",
            STOP => "stop",
            CONTINUE => "continue",
            IGNORE => "ignore",
            CORE => "core",
            _ => "unknown",
        }
    }
}

/// Reclaim events (a0 of [`kind::RECLAIM`]).
pub mod reclaim {
    pub const SWAP_OUT: u64 = 1;
    pub const EVICT: u64 = 2;
    pub const OOM_KILL: u64 = 3;
    /// kswapd was woken (a3: its PID).
    pub const KSWAPD_WAKE: u64 = 4;
    /// kswapd went back to sleep (a1: pages it reclaimed in this run).
    pub const KSWAPD_SLEEP: u64 = 5;
    /// A task reclaimed directly (a1: pages reclaimed, a2: pages scanned).
    pub const DIRECT_RECLAIM: u64 = 6;

    pub fn name(code: u64) -> &'static str {
        match code {
            SWAP_OUT => "swap_out",
            EVICT => "page_cache_evict",
            OOM_KILL => "oom_kill",
            KSWAPD_WAKE => "kswapd_wake",
            KSWAPD_SLEEP => "kswapd_sleep",
            DIRECT_RECLAIM => "direct_reclaim",
            _ => "unknown",
        }
    }
}

/// One record's fields, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: u16,
    pub pid: u32,
    /// NUL-padded task name.
    pub comm: [u8; 16],
    pub args: [u64; 4],
    pub text: &'a [u8],
}

/// Why a record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the header, or than the size the record claims.
    Short,
    /// A claimed size outside [`HEADER`]..=[`MAX_RECORD`].
    BadSize(usize),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Short => write!(f, "record shorter than its {HEADER}-byte header"),
            RecordError::BadSize(n) => write!(f, "record size {n} outside {HEADER}..={MAX_RECORD}"),
        }
    }
}

impl Record<'_> {
    /// Write the record into `buf`; the string is cut at [`MAX_TEXT`] bytes. Returns the
    /// record's size.
    pub fn encode(&self, buf: &mut [u8; MAX_RECORD]) -> usize {
        let text = &self.text[..self.text.len().min(MAX_TEXT)];
        let size = HEADER + text.len();
        buf[0..2].copy_from_slice(&self.kind.to_le_bytes());
        buf[2..4].copy_from_slice(&(size as u16).to_le_bytes());
        buf[4..8].copy_from_slice(&self.pid.to_le_bytes());
        buf[8..24].copy_from_slice(&self.comm);
        for (i, a) in self.args.iter().enumerate() {
            buf[24 + 8 * i..32 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        buf[HEADER..size].copy_from_slice(text);
        size
    }
}

/// The size a record claims (from its first 4 bytes), checked.
pub fn record_size(head: &[u8]) -> Result<usize, RecordError> {
    if head.len() < 4 {
        return Err(RecordError::Short);
    }
    let size = u16::from_le_bytes([head[2], head[3]]) as usize;
    if !(HEADER..=MAX_RECORD).contains(&size) {
        return Err(RecordError::BadSize(size));
    }
    Ok(size)
}

/// Decode a record (at least the bytes [`record_size`] said).
pub fn decode(rec: &[u8]) -> Result<Record<'_>, RecordError> {
    let size = record_size(rec)?;
    if rec.len() < size {
        return Err(RecordError::Short);
    }
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rec[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let mut comm = [0u8; 16];
    comm.copy_from_slice(&rec[8..24]);
    Ok(Record {
        kind: u16::from_le_bytes([rec[0], rec[1]]),
        pid: u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]),
        comm,
        args: [u64_at(24), u64_at(32), u64_at(40), u64_at(48)],
        text: &rec[HEADER..size],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips() {
        let mut comm = [0u8; 16];
        comm[..5].copy_from_slice(b"hello");
        let r = Record {
            kind: kind::EXEC,
            pid: 7,
            comm,
            args: [0x401000, 0x5555_0000, 3, u64::MAX],
            text: b"/bin/hello",
        };
        let mut buf = [0u8; MAX_RECORD];
        let n = r.encode(&mut buf);
        assert_eq!(n, HEADER + 10);
        assert_eq!(decode(&buf[..n]), Ok(r));
    }

    #[test]
    fn long_strings_are_cut_and_bad_sizes_refused() {
        let long = [b'x'; 300];
        let r = Record {
            kind: kind::EXEC,
            pid: 1,
            comm: [0; 16],
            args: [0; 4],
            text: &long,
        };
        let mut buf = [0u8; MAX_RECORD];
        assert_eq!(r.encode(&mut buf), MAX_RECORD);
        assert_eq!(decode(&buf).map(|d| d.text.len()), Ok(MAX_TEXT));
        assert_eq!(decode(&buf[..20]), Err(RecordError::Short));
        buf[2] = 10;
        buf[3] = 0;
        assert_eq!(decode(&buf), Err(RecordError::BadSize(10)));
        assert_eq!(
            record_size(&[0, 0, 0xe8, 0x03]),
            Err(RecordError::BadSize(1000))
        );
    }
}
