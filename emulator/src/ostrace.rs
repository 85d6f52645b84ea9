//! OS annotations: what the guest kernel tells vmscope through the trace registers of the
//! paravirtual port (`devices::pvport`, +0x10..+0x17), decoded into trace events, and the
//! emulator's view of the running task that follows from them.
//!
//! # Protocol
//! The kernel builds a record in its own memory and writes the record's *virtual* address
//! to the port: the high half to +0x14 (latched), then the low half to +0x10, which
//! submits it. vmscope reads the record through the current page tables at that moment
//! (a debugger-style walk: no A/D bits, no TLB fill). The kernel keeps interrupts off
//! between the two writes so that the latch is not shared. On QEMU nothing decodes these
//! ports and the writes are ignored, so the same kernel runs unchanged there.
//!
//! Record layout (little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | kind ([`kind`]) |
//! | 2 | 2 | total size of the record in bytes, 56..=[`MAX_RECORD`] |
//! | 4 | 4 | PID the event concerns (0: none) |
//! | 8 | 16 | that task's name (`comm`), NUL-padded |
//! | 24 | 4 x 8 | arguments a0..a3, meaning by kind |
//! | 56 | size-56 | a string argument (UTF-8; the exec path), may be empty |
//!
//! The guest emits a record whatever the host does with it, so a run executes the same
//! instructions with and without `--fault-trace` (the traces of two runs stay comparable).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The largest record vmscope reads.
pub const MAX_RECORD: usize = 256;
/// Size of the fixed part of a record.
pub const HEADER: usize = 56;

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
}

/// Page-fault outcomes (a3 of [`kind::FAULT`]; bit 8 set: the stack VMA grew first).
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

    pub fn name(code: u64) -> &'static str {
        match code {
            SWAP_OUT => "swap_out",
            EVICT => "page_cache_evict",
            OOM_KILL => "oom_kill",
            _ => "unknown",
        }
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub kind: u16,
    pub pid: u32,
    pub comm: String,
    pub args: [u64; 4],
    pub text: String,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("record shorter than its {HEADER}-byte header")]
    Short,
    #[error("record size {0} outside {HEADER}..={MAX_RECORD}")]
    BadSize(usize),
}

/// The size a record claims (from its first 4 bytes), checked.
pub fn record_size(head: &[u8]) -> Result<usize, AnnotationError> {
    if head.len() < 4 {
        return Err(AnnotationError::Short);
    }
    let size = u16::from_le_bytes([head[2], head[3]]) as usize;
    if !(HEADER..=MAX_RECORD).contains(&size) {
        return Err(AnnotationError::BadSize(size));
    }
    Ok(size)
}

/// Decode a record (exactly the bytes [`record_size`] said).
pub fn decode(rec: &[u8]) -> Result<Annotation, AnnotationError> {
    let size = record_size(rec)?;
    if rec.len() < size {
        return Err(AnnotationError::Short);
    }
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rec[o..o + 8]);
        u64::from_le_bytes(b)
    };
    Ok(Annotation {
        kind: u16::from_le_bytes([rec[0], rec[1]]),
        pid: u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]),
        comm: c_string(&rec[8..24]),
        args: [u64_at(24), u64_at(32), u64_at(40), u64_at(48)],
        text: String::from_utf8_lossy(&rec[HEADER..size]).into_owned(),
    })
}

/// A NUL-padded name as a string (invalid UTF-8 replaced).
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// What vmscope knows about a task from the annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub pid: u32,
    pub comm: String,
    /// The program it runs, as the guest named it in execve ("/bin/hello"); `None` for
    /// tasks that have not exec'd since vmscope started following them.
    pub exe: Option<String>,
    /// Where the program's ELF was loaded relative to its link addresses (0 for ET_EXEC).
    pub load_bias: u64,
}

/// The emulator's view of the guest's tasks, kept from the annotations.
#[derive(Debug, Default, Clone)]
pub struct OsState {
    tasks: BTreeMap<u32, TaskInfo>,
    /// The running task (None: the kernel before the first switch, or idle).
    current: Option<u32>,
    /// Records refused (bad size, unreadable); reported at the end of a run.
    pub bad_records: u64,
}

impl OsState {
    pub fn new() -> Self {
        Self::default()
    }

    /// The running user task, if the guest has said which.
    pub fn current(&self) -> Option<&TaskInfo> {
        self.current.and_then(|p| self.tasks.get(&p))
    }

    pub fn task(&self, pid: u32) -> Option<&TaskInfo> {
        self.tasks.get(&pid)
    }

    /// Update the view from one record.
    pub fn apply(&mut self, a: &Annotation) {
        if a.pid != 0 {
            let t = self.tasks.entry(a.pid).or_insert_with(|| TaskInfo {
                pid: a.pid,
                ..Default::default()
            });
            if !a.comm.is_empty() {
                t.comm.clone_from(&a.comm);
            }
        }
        match a.kind {
            kind::FORK => {
                let child = a.args[0] as u32;
                let parent = self.tasks.get(&a.pid).cloned().unwrap_or_default();
                self.tasks.insert(
                    child,
                    TaskInfo {
                        pid: child,
                        ..parent
                    },
                );
            }
            kind::EXEC => {
                if let Some(t) = self.tasks.get_mut(&a.pid) {
                    t.exe = Some(a.text.clone());
                    t.load_bias = a.args[1];
                }
            }
            kind::SWITCH => {
                let next = a.args[1] as u32;
                self.current = (next != 0).then_some(next);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u16, pid: u32, comm: &str, args: [u64; 4], text: &str) -> Vec<u8> {
        let size = HEADER + text.len();
        let mut r = Vec::with_capacity(size);
        r.extend_from_slice(&kind.to_le_bytes());
        r.extend_from_slice(&(size as u16).to_le_bytes());
        r.extend_from_slice(&pid.to_le_bytes());
        let mut c = [0u8; 16];
        c[..comm.len()].copy_from_slice(comm.as_bytes());
        r.extend_from_slice(&c);
        for a in args {
            r.extend_from_slice(&a.to_le_bytes());
        }
        r.extend_from_slice(text.as_bytes());
        r
    }

    #[test]
    fn decodes_every_field() {
        let r = record(
            kind::EXEC,
            7,
            "sh",
            [0x401000, 0x5555_0000, 0, 0],
            "/bin/hello",
        );
        let a = decode(&r).unwrap();
        assert_eq!(a.kind, kind::EXEC);
        assert_eq!(a.pid, 7);
        assert_eq!(a.comm, "sh");
        assert_eq!(a.args, [0x401000, 0x5555_0000, 0, 0]);
        assert_eq!(a.text, "/bin/hello");
    }

    #[test]
    fn refuses_bad_sizes() {
        let mut r = record(kind::FORK, 1, "init", [2, 0, 0, 0], "");
        assert_eq!(decode(&r[..20]), Err(AnnotationError::Short));
        r[2] = 10;
        assert_eq!(decode(&r), Err(AnnotationError::BadSize(10)));
        r[2..4].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(record_size(&r), Err(AnnotationError::BadSize(1000)));
    }

    #[test]
    fn follows_fork_exec_and_switch() {
        let mut s = OsState::new();
        let apply = |s: &mut OsState, r: Vec<u8>| s.apply(&decode(&r).unwrap());
        apply(&mut s, record(kind::SWITCH, 1, "init", [0, 1, 0, 0], ""));
        assert_eq!(s.current().map(|t| t.pid), Some(1));
        apply(
            &mut s,
            record(kind::EXEC, 1, "init", [0x401000, 0, 0, 0], "/bin/init"),
        );
        apply(&mut s, record(kind::FORK, 1, "init", [2, 0, 0, 0], ""));
        // The child inherits the parent's program until it execs.
        assert_eq!(
            s.task(2).and_then(|t| t.exe.clone()).as_deref(),
            Some("/bin/init")
        );
        apply(&mut s, record(kind::SWITCH, 2, "init", [1, 2, 0, 0], ""));
        apply(
            &mut s,
            record(
                kind::EXEC,
                2,
                "hello",
                [0x1000, 0x5555_5555_4000, 0, 0],
                "/bin/hello",
            ),
        );
        let t = s.current().unwrap();
        assert_eq!((t.pid, t.comm.as_str()), (2, "hello"));
        assert_eq!(
            (t.exe.as_deref(), t.load_bias),
            (Some("/bin/hello"), 0x5555_5555_4000)
        );
        apply(&mut s, record(kind::SWITCH, 0, "", [2, 0, 0, 0], ""));
        assert!(s.current().is_none());
    }
}
