//! OS annotations: what the guest kernel tells vmscope through the trace registers of the
//! paravirtual port (`devices::pvport`, +0x10..+0x17), decoded into trace events, and the
//! emulator's view of the running task that follows from them.
//!
//! The protocol (register offsets, record kinds and codes, the record layout) lives in the
//! `trace-abi` crate, which the guest kernel links too. The guest emits a record whatever
//! the host does with it, so a run executes the same instructions with and without
//! `--fault-trace` (the traces of two runs stay comparable).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use trace_abi::{
    kind, outcome, reclaim, record_size, sigaction, writeback, RecordError, HEADER,
};

/// One decoded record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub kind: u16,
    pub pid: u32,
    pub comm: String,
    pub args: [u64; 4],
    pub text: String,
}

/// Decode a record (at least the bytes [`record_size`] said).
pub fn decode(rec: &[u8]) -> Result<Annotation, RecordError> {
    let r = trace_abi::decode(rec)?;
    Ok(Annotation {
        kind: r.kind,
        pid: r.pid,
        comm: c_string(&r.comm),
        args: r.args,
        text: String::from_utf8_lossy(r.text).into_owned(),
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
        assert_eq!(decode(&r[..20]), Err(RecordError::Short));
        r[2] = 10;
        assert_eq!(decode(&r), Err(RecordError::BadSize(10)));
        r[2..4].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(record_size(&r), Err(RecordError::BadSize(1000)));
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
